// basic.get and the ways a consumer settles a delivery: ack, nack (with and without requeue, multiple) and reject.

package main

import (
	"sort"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func init() {
	register("acks",
		test{"basic_get", acksBasicGet},
		test{"nack_with_requeue_redelivers", acksNackRequeue},
		test{"nack_without_requeue_discards", acksNackDiscard},
		test{"nack_multiple_requeues_all_up_to_the_tag", acksNackMultiple},
		test{"reject_with_and_without_requeue", acksReject},
	)
}

// get does one basic.get that must find a message.
func (t *T) get(ch *amqp.Channel, queue string, autoAck bool) amqp.Delivery {
	msg, ok, err := ch.Get(queue, autoAck)
	t.Check(err, "basic.get")
	t.True(ok, "basic.get-empty: expected a message in %s", queue)
	return msg
}

func (t *T) assertEmpty(ch *amqp.Channel, queue string) {
	msg, ok, err := ch.Get(queue, false)
	t.Check(err, "basic.get")
	t.True(!ok, "expected basic.get-empty, got %q", msg.Body)
}

// nextDelivery consumes one message with manual ack, then cancels the consumer (its delivery stays unacked).
func (t *T) nextDelivery(ch *amqp.Channel, queue string) amqp.Delivery {
	t.Check(ch.Qos(1, 0, false), "basic.qos")
	deliveries := Must(ch.Consume(queue, "next", false, false, false, false, nil))
	d := t.Receive(deliveries, 5*time.Second, "a delivery from "+queue)
	t.Check(ch.Cancel("next", false), "basic.cancel")
	for range deliveries { // the library closes it once basic.cancel-ok arrives
	}
	return d
}

func acksBasicGet(t *T) {
	queue := t.Queue("get", false, false, nil)
	t.assertEmpty(t.Ch, queue)

	t.PublishConfirmed(queue, "a", "b", "c")
	msg := t.get(t.Ch, queue, false)
	t.Equal(string(msg.Body), "a", "body")
	t.Equal(msg.MessageCount, uint32(2), "basic.get-ok message_count counts what is left")
	t.Equal(msg.DeliveryTag, uint64(1), "delivery tag")
	t.Equal(msg.Redelivered, false, "redelivered")
	t.Equal([]string{msg.Exchange, msg.RoutingKey}, []string{"", queue}, "exchange and routing key")
	t.Check(msg.Ack(false), "ack")

	msg = t.get(t.Ch, queue, true)
	t.Equal([]any{string(msg.Body), msg.MessageCount, msg.DeliveryTag}, []any{"b", uint32(1), uint64(2)}, "second get")
	msg = t.get(t.Ch, queue, false) // not acked
	t.Equal([]any{string(msg.Body), msg.MessageCount, msg.DeliveryTag}, []any{"c", uint32(0), uint64(3)}, "third get")
	t.assertEmpty(t.Ch, queue)

	// Closing the channel returns the unacked message, now marked redelivered.
	t.Check(t.Ch.Close(), "channel.close")
	t.Ch = t.Channel(t.Conn)
	t.WaitDepth(queue, 1)
	msg = t.get(t.Ch, queue, true)
	t.Equal(string(msg.Body), "c", "body")
	t.True(msg.Redelivered, "redelivered after its channel closed")
	t.Equal(msg.DeliveryTag, uint64(1), "delivery tags are per channel and start at 1")
}

func acksNackRequeue(t *T) {
	queue := t.Queue("nack.requeue", false, false, nil)
	t.PublishConfirmed(queue, "retry me")
	consumer := t.Channel(t.Conn)
	d := t.nextDelivery(consumer, queue)
	t.Equal([]any{string(d.Body), d.Redelivered}, []any{"retry me", false}, "first delivery")
	t.Check(d.Nack(false, true), "nack")

	d = t.nextDelivery(consumer, queue)
	t.Equal(string(d.Body), "retry me", "body")
	t.True(d.Redelivered, "a nacked-and-requeued message comes back with redelivered=true")
	t.Check(d.Ack(false), "ack")
	time.Sleep(200 * time.Millisecond)
	t.Equal(t.Depth(queue), 0, "depth")
	t.assertEmpty(t.Ch, queue)
}

func acksNackDiscard(t *T) {
	queue := t.Queue("nack.drop", false, false, nil)
	t.PublishConfirmed(queue, "poison", "fine")
	msg := t.get(t.Ch, queue, false)
	t.Equal(string(msg.Body), "poison", "body")
	t.Check(msg.Nack(false, false), "nack")
	t.Equal(string(t.get(t.Ch, queue, true).Body), "fine", "body")
	t.assertEmpty(t.Ch, queue) // a nack without requeue drops the message
	// Not hidden somewhere either: closing the channel brings nothing back.
	t.Check(t.Ch.Close(), "channel.close")
	time.Sleep(200 * time.Millisecond)
	t.Equal(t.Depth(queue), 0, "depth")
}

func acksNackMultiple(t *T) {
	queue := t.Queue("nack.multiple", false, false, nil)
	t.PublishConfirmed(queue, "1", "2", "3", "4")
	var held []amqp.Delivery
	for i := 0; i < 3; i++ {
		held = append(held, t.get(t.Ch, queue, false))
	}
	t.Equal([]uint64{held[0].DeliveryTag, held[1].DeliveryTag, held[2].DeliveryTag}, []uint64{1, 2, 3}, "tags")
	t.Check(held[1].Nack(true, true), "nack multiple") // settles 1 and 2, leaves 3 unacked
	t.WaitDepth(queue, 3)
	type seen struct {
		body        string
		redelivered bool
	}
	var got []seen
	for i := 0; i < 3; i++ {
		msg := t.get(t.Ch, queue, true)
		got = append(got, seen{string(msg.Body), msg.Redelivered})
	}
	sort.Slice(got, func(i, j int) bool { return got[i].body < got[j].body })
	t.Equal(got, []seen{{"1", true}, {"2", true}, {"4", false}}, "after nack multiple")
	t.Check(held[2].Ack(false), "ack 3")
	t.Check(t.Ch.Close(), "channel.close")
	time.Sleep(200 * time.Millisecond)
	t.Equal(t.Depth(queue), 0, "depth")
}

func acksReject(t *T) {
	queue := t.Queue("reject", false, false, nil)
	t.PublishConfirmed(queue, "m")
	consumer := t.Channel(t.Conn)
	d := t.nextDelivery(consumer, queue)
	t.Equal(d.Redelivered, false, "redelivered")
	t.Check(d.Reject(true), "reject requeue")

	d = t.nextDelivery(consumer, queue)
	t.Equal(string(d.Body), "m", "body")
	t.True(d.Redelivered, "redelivered after reject with requeue")
	t.Check(d.Reject(false), "reject")
	time.Sleep(200 * time.Millisecond)
	t.Equal(t.Depth(queue), 0, "depth")
	t.Check(consumer.Close(), "channel.close")
	time.Sleep(200 * time.Millisecond)
	t.Equal(t.Depth(queue), 0, "a message rejected without requeue must not come back")
}
