// Consumer cancel notification: deleting a queue cancels its consumers with a server-sent basic.cancel, which
// amqp091-go reports on NotifyCancel and by closing the consumer's delivery channel. The channel stays open.

package main

import (
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func init() {
	register("consumer_cancel",
		test{"delivery_channel_closes_and_notify_cancel_fires_when_queue_is_deleted", cancelByServer},
		test{"client_cancel_closes_the_delivery_channel_without_notify_cancel", cancelByClient},
	)
}

func cancelByServer(t *T) {
	queue := t.Queue("cancel", false, false, nil)
	cancels := t.Ch.NotifyCancel(make(chan string, 4))
	t.Publish(t.Ch, "", queue, false, amqp.Publishing{Body: []byte("before delete")})
	deliveries := Must(t.Ch.Consume(queue, "doomed", true, false, false, false, nil))
	t.Equal(string(t.Receive(deliveries, 5*time.Second, "the first delivery").Body), "before delete", "body")

	// Another connection deletes the queue under the consumer.
	deleter := t.Channel(t.Dial(defaultConfig()))
	_, err := deleter.QueueDelete(queue, false, false, false)
	t.Check(err, "queue.delete")

	select {
	case tag := <-cancels:
		t.Equal(tag, "doomed", "cancelled consumer tag")
	case <-time.After(5 * time.Second):
		t.Fatalf("no basic.cancel within 5 s of deleting the queue")
	}
	select {
	case d, open := <-deliveries:
		t.True(!open, "unexpected delivery %q after the cancel", d.Body)
	case <-time.After(5 * time.Second):
		t.Fatalf("the delivery channel is still open 5 s after basic.cancel")
	}
	select {
	case tag := <-cancels:
		t.Fatalf("a second basic.cancel for %s", tag)
	case <-time.After(200 * time.Millisecond):
	}

	t.True(!t.Ch.IsClosed(), "a server-side cancel must leave the channel open")
	spare := t.ServerNamedQueue(t.Ch)
	t.assertEmpty(t.Ch, spare) // the channel still works
}

func cancelByClient(t *T) {
	queue := t.Queue("cancel.client", false, false, nil)
	cancels := t.Ch.NotifyCancel(make(chan string, 4))
	deliveries := Must(t.Ch.Consume(queue, "mine", true, false, false, false, nil))
	t.Check(t.Ch.Cancel("mine", false), "basic.cancel")
	select {
	case _, open := <-deliveries:
		t.True(!open, "unexpected delivery")
	case <-time.After(5 * time.Second):
		t.Fatalf("the delivery channel is still open after basic.cancel-ok")
	}
	_, err := t.Ch.QueueDelete(queue, false, false, false)
	t.Check(err, "queue.delete")
	select {
	case tag := <-cancels:
		t.Fatalf("NotifyCancel fired for %s after the client cancelled", tag)
	case <-time.After(200 * time.Millisecond):
	}
}
