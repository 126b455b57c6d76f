// Connection loss and the reconnect an application does. amqp091-go has no automatic recovery (its documentation
// leaves reconnecting to the application, through NotifyClose), and the suite cannot restart the broker, so the
// connection runs through a loopback proxy that the test cuts: the client sees a network failure, the broker a
// dropped client that held an unacked delivery.

package main

import (
	"net/url"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func init() {
	register("recovery",
		test{"notify_close_on_connection_loss_then_reconnect_gets_the_requeued_message", recoveryReconnect},
	)
}

func recoveryReconnect(t *T) {
	target, err := url.Parse(amqpURL())
	t.Check(err, "AMQP_URL")
	proxy := t.NewProxy(target.Host)
	viaProxy := *target
	viaProxy.Host = proxy.Addr()
	queue := t.Queue("recovery.work", true, false, nil) // outlives any one connection

	conn := t.DialURL(viaProxy.String(), defaultConfig())
	closes := conn.NotifyClose(make(chan *amqp.Error, 1))
	ch := t.Channel(conn)
	t.Check(ch.Qos(1, 0, false), "basic.qos")
	deliveries := Must(ch.Consume(queue, "", false, false, false, false, nil))
	t.Publish(t.Ch, "", queue, false, amqp.Publishing{Body: []byte("held when the network fails")})
	first := t.Receive(deliveries, 5*time.Second, "the first delivery")
	t.Equal(first.Redelivered, false, "redelivered")

	t.Equal(proxy.CutAll(), 1, "proxied connections cut")
	select {
	case err := <-closes:
		t.True(err != nil, "NotifyClose reported a clean close for a lost connection")
		t.True(!err.Server, "the library, not the broker, reports a lost socket: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatalf("NotifyClose did not fire within 10 s of losing the connection")
	}
	t.True(conn.IsClosed(), "the connection is closed")
	select {
	case _, open := <-deliveries:
		t.True(!open, "a delivery arrived on a lost connection")
	case <-time.After(5 * time.Second):
		t.Fatalf("the consumer's delivery channel stayed open after the connection was lost")
	}

	// Reconnect as an application does: dial again, redeclare, consume again.
	again := t.DialURL(viaProxy.String(), defaultConfig())
	ch = t.Channel(again)
	_, err = ch.QueueDeclare(queue, true, false, false, false, nil)
	t.Check(err, "redeclare after reconnecting")
	deliveries = Must(ch.Consume(queue, "", false, false, false, false, nil))
	// The broker requeued the unacked message when the old connection dropped.
	d := t.Receive(deliveries, 10*time.Second, "the requeued message after reconnecting")
	t.Equal(string(d.Body), "held when the network fails", "body")
	t.True(d.Redelivered, "redelivered after the connection that held it was lost")
	t.Check(d.Ack(false), "ack")
	t.WaitDepth(queue, 0)
	t.Equal(int(proxy.Accepted.Load()), 2, "connections through the proxy")
}
