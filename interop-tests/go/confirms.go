// Publisher confirms through amqp091-go: NotifyPublish (ordered confirmations) and PublishWithDeferredConfirm, and
// mandatory publishing: an unroutable mandatory message comes back on NotifyReturn and is still confirmed.

package main

import (
	"fmt"
	"net"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func init() {
	register("confirms",
		test{"notify_publish_acks_every_publish_in_order", confirmsNotifyPublish},
		test{"publish_with_deferred_confirm", confirmsDeferred},
		test{"mandatory_unroutable_is_returned_and_confirmed", confirmsMandatoryReturn},
	)
}

func confirmsNotifyPublish(t *T) {
	queue := t.Queue("confirm", true, false, nil)
	ch, confirms := t.ConfirmChannel(t.Conn)
	for i := 0; i < 50; i++ {
		t.Publish(ch, "", queue, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(fmt.Sprintf("persistent-%d", i))})
	}
	for i := 0; i < 50; i++ {
		t.Publish(ch, "", queue, false, amqp.Publishing{Body: []byte(fmt.Sprintf("transient-%d", i))})
	}
	for tag := uint64(1); tag <= 100; tag++ {
		select {
		case c := <-confirms:
			// The library delivers confirmations in publish order, one per tag, whatever `multiple` the broker used.
			t.Equal(c.DeliveryTag, tag, "confirmation order")
			t.True(c.Ack, "publish %d was nacked", tag)
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d of 100 publishes confirmed", tag-1)
		}
	}
	t.Equal(t.Depth(queue), 100, "depth")
	bodies := t.Drain(t.Ch, queue)
	t.Equal(bodies[:2], []string{"persistent-0", "persistent-1"}, "first bodies")
	t.Equal(bodies[99], "transient-49", "last body")
}

// gatedConn holds back what the broker sends while its gate is shut. amqp091-go 1.5.0 registers a deferred
// confirmation only after sending the publish, so an ack that arrives in between is dropped and Wait never returns
// (upstream issue #182, fixed in later releases); shutting the gate around each publish closes that window, which a
// broker on loopback otherwise hits a few times in a hundred.
type gatedConn struct {
	net.Conn
	gate sync.RWMutex
}

func (c *gatedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.gate.RLock() // waits while a publish is being registered
	c.gate.RUnlock()
	return n, err
}

func confirmsDeferred(t *T) {
	queue := t.Queue("confirm.deferred", true, false, nil)
	var gated *gatedConn
	config := defaultConfig()
	config.Dial = func(network, addr string) (net.Conn, error) {
		conn, err := amqp.DefaultDial(10*time.Second)(network, addr)
		if err != nil {
			return nil, err
		}
		gated = &gatedConn{Conn: conn}
		return gated, nil
	}
	ch := t.Channel(t.Dial(config))
	t.Check(ch.Confirm(false), "confirm.select")
	t.Equal(ch.GetNextPublishSeqNo(), uint64(1), "first publish sequence number")
	var pending []*amqp.DeferredConfirmation
	for i := 0; i < 20; i++ {
		gated.gate.Lock()
		dc, err := ch.PublishWithDeferredConfirm("", queue, false, false,
			amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(fmt.Sprintf("m%d", i))})
		gated.gate.Unlock()
		t.Check(err, "publish")
		t.Equal(dc.DeliveryTag, uint64(i+1), "deferred confirmation tag")
		pending = append(pending, dc)
	}
	for _, dc := range pending {
		t.True(waitConfirm(dc, 5*time.Second), "publish %d not acked within 5 s", dc.DeliveryTag)
	}
	t.Equal(t.Depth(queue), 20, "depth")
}

func confirmsMandatoryReturn(t *T) {
	ch, confirms := t.ConfirmChannel(t.Conn)
	returns := ch.NotifyReturn(make(chan amqp.Return, 10))
	nextConfirm := func() amqp.Confirmation {
		select {
		case c := <-confirms:
			return c
		case <-time.After(5 * time.Second):
			t.Fatalf("publish not confirmed within 5 s")
		}
		return amqp.Confirmation{}
	}
	nextReturn := func() amqp.Return {
		select {
		case r := <-returns:
			return r
		case <-time.After(5 * time.Second):
			t.Fatalf("no basic.return within 5 s")
		}
		return amqp.Return{}
	}

	key := unique("nowhere")
	t.Publish(ch, "amq.direct", key, true, amqp.Publishing{MessageId: "m-1", Body: []byte("lost")})
	r := nextReturn()
	t.Equal(r.ReplyCode, uint16(312), "reply code")
	t.Equal(r.ReplyText, "NO_ROUTE", "reply text")
	t.Equal(r.Exchange, "amq.direct", "exchange")
	t.Equal(r.RoutingKey, key, "routing key")
	t.Equal(string(r.Body), "lost", "body")
	t.Equal(r.MessageId, "m-1", "message id")
	c := nextConfirm()
	t.True(c.Ack, "an unroutable message is acked (after its return)")
	t.Equal(c.DeliveryTag, uint64(1), "tag")

	// The same through the default exchange to a queue that does not exist.
	missing := unique("no-such-queue")
	t.Publish(ch, "", missing, true, amqp.Publishing{Body: []byte("lost again")})
	t.Equal(nextReturn().RoutingKey, missing, "returned routing key")
	t.True(nextConfirm().Ack, "ack")

	// Without mandatory an unroutable message is confirmed and dropped silently; a routable mandatory one is kept.
	t.Publish(ch, "amq.direct", key, false, amqp.Publishing{Body: []byte("dropped")})
	t.True(nextConfirm().Ack, "ack")
	queue := t.Queue("routable", false, false, nil)
	t.Publish(ch, "", queue, true, amqp.Publishing{Body: []byte("kept")})
	t.True(nextConfirm().Ack, "ack")
	select {
	case r := <-returns:
		t.Fatalf("unexpected basic.return %q", r.Body)
	case <-time.After(100 * time.Millisecond):
	}
	t.Equal(t.Drain(t.Ch, queue), []string{"kept"}, "routable queue")
	t.True(!ch.IsClosed(), "the channel stays open")
}
