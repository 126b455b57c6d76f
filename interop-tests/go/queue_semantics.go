// Queue semantics as amqp091-go applications rely on them: message TTL and per-message expiration (dead-lettered with
// its original expiration), length limits (drop-head dead-lettering with reason maxlen, reject-publish nacked to a
// confirm channel), a retry loop counted in x-death, message and consumer priorities, single active consumer, and the
// quorum queue delivery limit. Each test passes against RabbitMQ 3.10 as well.

package main

import (
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func init() {
	register("queue_semantics",
		test{"message_ttl_drops_what_nobody_took_in_time", qsemMessageTTL},
		test{"expired_message_is_dead_lettered_with_its_original_expiration", qsemExpiredDeadLettered},
		test{"max_length_drops_the_oldest_to_the_dead_letter_queue", qsemMaxLengthDeadLetters},
		test{"reject_publish_nacks_what_does_not_fit", qsemRejectPublish},
		test{"a_retry_loop_counts_its_rounds_in_x_death", qsemRetryLoop},
		test{"priorities_deliver_the_highest_first_to_a_prefetch_one_consumer", qsemPriorities},
		test{"consumer_priorities_prefer_the_higher_consumer_while_it_has_credit", qsemConsumerPriorities},
		test{"single_active_consumer_fails_over_when_the_active_one_cancels", qsemSingleActiveConsumer},
		test{"quorum_delivery_limit_dead_letters_after_the_redeliveries", qsemQuorumDeliveryLimit},
	)
}

// death is one x-death entry, reduced to what the tests compare.
type death struct {
	Queue, Reason string
	Count         int64
}

func deaths(t *T, headers amqp.Table) []death {
	out := []death{}
	raw, ok := headers["x-death"]
	if !ok {
		return out
	}
	entries, ok := raw.([]interface{})
	t.True(ok, "x-death is %T, not an array", raw)
	for _, e := range entries {
		table, ok := e.(amqp.Table)
		t.True(ok, "an x-death entry is %T, not a table", e)
		count, ok := table["count"].(int64)
		t.True(ok, "x-death count is %T, not a long", table["count"])
		out = append(out, death{fmt.Sprint(table["queue"]), fmt.Sprint(table["reason"]), count})
	}
	return out
}

// firstDeath is the first (most recent) x-death entry as the broker sent it.
func firstDeath(t *T, headers amqp.Table) amqp.Table {
	entries, ok := headers["x-death"].([]interface{})
	t.True(ok && len(entries) > 0, "no x-death header in %v", headers)
	return entries[0].(amqp.Table)
}

// getOne polls basic.get (manual ack) until a message comes.
func (t *T) getOne(ch *amqp.Channel, queue string) amqp.Delivery {
	var msg amqp.Delivery
	t.WaitFor(5*time.Second, func() string { return "a message in " + queue }, func() bool {
		var ok bool
		var err error
		msg, ok, err = ch.Get(queue, false)
		t.Check(err, "basic.get")
		return ok
	})
	return msg
}

func qsemMessageTTL(t *T) {
	// A second: long enough that the depth check right after the publish does not race the TTL on a busy machine.
	queue := t.Queue("ttl", false, false, amqp.Table{"x-message-ttl": int32(1000)})
	t.PublishConfirmed(queue, "short-lived")
	t.Equal(t.Depth(queue), 1, "depth right after the publish")
	t.WaitDepth(queue, 0)
	t.Equal(t.Drain(t.Ch, queue), []string{}, "what is left")
}

func qsemExpiredDeadLettered(t *T) {
	dead := t.Queue("expired.dead", false, false, nil)
	queue := t.Queue("expiration", false, false, amqp.Table{
		"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead,
	})
	t.PublishConfirmedMessages(queue, amqp.Publishing{Body: []byte("too late"), Expiration: "100"})
	msg := t.getOne(t.Ch, dead)
	t.Equal(string(msg.Body), "too late", "body")
	t.Equal(msg.Expiration, "", "the expiration property is removed on dead-lettering")
	t.Equal(deaths(t, msg.Headers), []death{{queue, "expired", 1}}, "x-death")
	entry := firstDeath(t, msg.Headers)
	t.Equal(entry["original-expiration"], "100", "x-death original-expiration")
	t.Equal(entry["exchange"], "", "x-death exchange")
	t.Equal(entry["routing-keys"], []interface{}{queue}, "x-death routing-keys")
	t.Equal(msg.Headers["x-first-death-reason"], "expired", "x-first-death-reason")
	t.Check(msg.Ack(false), "ack")
	t.WaitDepth(queue, 0)
}

func qsemMaxLengthDeadLetters(t *T) {
	dead := t.Queue("maxlen.dead", false, false, nil)
	queue := t.Queue("maxlen", false, false, amqp.Table{
		"x-max-length": int32(2), "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead,
	})
	t.PublishConfirmed(queue, "1", "2", "3", "4")
	t.Equal(t.Drain(t.Ch, queue), []string{"3", "4"}, "what the queue kept")
	t.WaitDepth(dead, 2)
	for _, want := range []string{"1", "2"} {
		msg := t.getOne(t.Ch, dead)
		t.Equal(string(msg.Body), want, "body pushed out")
		t.Equal(deaths(t, msg.Headers), []death{{queue, "maxlen", 1}}, "x-death of "+want)
		t.Check(msg.Ack(false), "ack")
	}
}

func qsemRejectPublish(t *T) {
	queue := t.Queue("full", false, false, amqp.Table{"x-max-length": int32(1), "x-overflow": "reject-publish"})
	ch, confirms := t.ConfirmChannel(t.Conn)
	outcome := func(body string) bool {
		t.Publish(ch, "", queue, false, amqp.Publishing{Body: []byte(body)})
		select {
		case c := <-confirms:
			return c.Ack
		case <-time.After(5 * time.Second):
			t.Fatalf("no confirmation for %q", body)
		}
		return false
	}
	t.Equal(outcome("fits"), true, "ack for what fits")
	t.Equal(outcome("refused"), false, "ack for what overflows (false: a nack)")
	t.Equal(t.Drain(t.Ch, queue), []string{"fits"}, "what the queue kept")
	t.Equal(outcome("fits again"), true, "ack once there is room again")
	t.Equal(t.Drain(t.Ch, queue), []string{"fits again"}, "what the queue kept")
}

func qsemRetryLoop(t *T) {
	work, retry := unique("work"), unique("retry")
	t.DeleteLater(work, "")
	t.DeleteLater(retry, "")
	_, err := t.Ch.QueueDeclare(work, false, false, false, false, amqp.Table{
		"x-dead-letter-exchange": "", "x-dead-letter-routing-key": retry,
	})
	t.Check(err, "declare the work queue")
	_, err = t.Ch.QueueDeclare(retry, false, false, false, false, amqp.Table{
		"x-message-ttl": int32(50), "x-dead-letter-exchange": "", "x-dead-letter-routing-key": work,
	})
	t.Check(err, "declare the retry queue")
	t.PublishConfirmedMessages(work, amqp.Publishing{Body: []byte("flaky"), Headers: amqp.Table{"attempt": "first"}})
	for attempt := 1; attempt <= 3; attempt++ {
		msg := t.getOne(t.Ch, work)
		t.Equal(string(msg.Body), "flaky", "body")
		t.Equal(msg.Headers["attempt"], "first", "the publisher's headers survive dead-lettering")
		if attempt == 1 {
			t.Equal(deaths(t, msg.Headers), []death{}, "x-death of the first delivery")
		} else {
			n := int64(attempt - 1)
			// The most recent death first; each (queue, reason) pair has one entry whose count goes up.
			t.Equal(deaths(t, msg.Headers), []death{{retry, "expired", n}, {work, "rejected", n}},
				fmt.Sprintf("x-death of attempt %d", attempt))
			t.Equal(msg.Headers["x-first-death-reason"], "rejected", "x-first-death-reason")
			t.Equal(msg.Headers["x-first-death-queue"], work, "x-first-death-queue")
			// RabbitMQ 3.13 (which Warren follows) also sends x-last-death-*; 3.10 does not have them yet.
			if reason, sent := msg.Headers["x-last-death-reason"]; sent {
				t.Equal(reason, "expired", "x-last-death-reason")
				t.Equal(msg.Headers["x-last-death-queue"], retry, "x-last-death-queue")
			}
		}
		t.Check(msg.Reject(false), "reject")
	}
}

func qsemPriorities(t *T) {
	queue := t.Queue("prio", false, false, amqp.Table{"x-max-priority": int32(10)})
	t.PublishConfirmedMessages(queue,
		amqp.Publishing{Body: []byte("none")},
		amqp.Publishing{Body: []byte("low"), Priority: 1},
		amqp.Publishing{Body: []byte("top"), Priority: 9},
		amqp.Publishing{Body: []byte("mid"), Priority: 5},
	)
	ch := t.Channel(t.Conn)
	t.Check(ch.Qos(1, 0, false), "basic.qos")
	deliveries := Must(ch.Consume(queue, "", false, false, false, false, nil))
	got := []string{}
	for len(got) < 4 {
		d := t.Receive(deliveries, 5*time.Second, "the next message by priority")
		got = append(got, string(d.Body))
		t.Check(d.Ack(false), "ack")
	}
	t.Equal(got, []string{"top", "mid", "low", "none"}, "delivery order")
}

func qsemConsumerPriorities(t *T) {
	queue := t.Queue("cprio", false, false, nil)
	high, low := t.Channel(t.Conn), t.Channel(t.Conn)
	t.Check(high.Qos(2, 0, false), "basic.qos")
	lowDeliveries := Must(low.Consume(queue, "", true, false, false, false, amqp.Table{"x-priority": int32(1)}))
	highDeliveries := Must(high.Consume(queue, "", false, false, false, false, amqp.Table{"x-priority": int32(10)}))
	// The higher consumer takes what its prefetch allows (it never acks); the rest goes to the lower one.
	t.PublishConfirmed(queue, "m0", "m1", "m2", "m3", "m4")
	gotHigh, gotLow := []string{}, []string{}
	for i := 0; i < 2; i++ {
		gotHigh = append(gotHigh, string(t.Receive(highDeliveries, 5*time.Second, "the higher consumer's share").Body))
	}
	for i := 0; i < 3; i++ {
		gotLow = append(gotLow, string(t.Receive(lowDeliveries, 5*time.Second, "the lower consumer's share").Body))
	}
	t.Equal(gotHigh, []string{"m0", "m1"}, "the higher consumer's deliveries")
	t.Equal(gotLow, []string{"m2", "m3", "m4"}, "the lower consumer's deliveries")
	t.NoDelivery(highDeliveries, 100*time.Millisecond, "the higher consumer has no credit left")
}

func qsemSingleActiveConsumer(t *T) {
	queue := t.Queue("sac", false, false, amqp.Table{"x-single-active-consumer": true})
	first, second := t.Channel(t.Conn), t.Channel(t.Conn)
	firstDeliveries := Must(first.Consume(queue, "first", true, false, false, false, nil))
	secondDeliveries := Must(second.Consume(queue, "second", true, false, false, false, nil))
	t.PublishConfirmed(queue, "a0", "a1", "a2")
	for _, want := range []string{"a0", "a1", "a2"} {
		t.Equal(string(t.Receive(firstDeliveries, 5*time.Second, "the active consumer's share").Body), want, "body")
	}
	t.NoDelivery(secondDeliveries, 200*time.Millisecond, "the second consumer waits while the first is active")

	t.Check(first.Cancel("first", false), "basic.cancel")
	t.PublishConfirmed(queue, "b0", "b1", "b2")
	for _, want := range []string{"b0", "b1", "b2"} {
		t.Equal(string(t.Receive(secondDeliveries, 5*time.Second, "the new active consumer's share").Body), want, "body")
	}
}

func qsemQuorumDeliveryLimit(t *T) {
	dead := t.Queue("dead", false, false, nil)
	queue := t.Queue("quorum", true, false, amqp.Table{
		"x-queue-type": "quorum", "x-delivery-limit": int32(1),
		"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead,
	})
	t.PublishConfirmed(queue, "poison")

	first := t.getOne(t.Ch, queue)
	t.Equal(first.Redelivered, false, "redelivered on the first delivery")
	// RabbitMQ 3.10 sends x-delivery-count 0 on the first delivery; 3.13 (which Warren follows) leaves the header out
	// until the message comes back.
	if count, sent := first.Headers["x-delivery-count"]; sent {
		t.Equal(count, int64(0), "x-delivery-count on the first delivery")
	}
	t.Check(first.Reject(true), "reject with requeue")
	second := t.getOne(t.Ch, queue)
	t.Equal(string(second.Body), "poison", "body")
	t.Equal(second.Redelivered, true, "redelivered on the second delivery")
	t.Equal(second.Headers["x-delivery-count"], int64(1), "x-delivery-count")
	// Returned a second time, more often than the limit allows: dead-lettered instead of redelivered.
	t.Check(second.Reject(true), "reject with requeue")

	msg := t.getOne(t.Ch, dead)
	t.Equal(string(msg.Body), "poison", "dead-lettered body")
	t.Equal(deaths(t, msg.Headers), []death{{queue, "delivery_limit", 1}}, "x-death")
	t.Equal(msg.Headers["x-first-death-reason"], "delivery_limit", "x-first-death-reason")
	t.Check(msg.Ack(false), "ack")
	t.WaitDepth(queue, 0)
	t.assertEmpty(t.Ch, queue)
}
