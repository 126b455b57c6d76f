// AMQP transactions (tx.select / commit / rollback) covering both publishes and acks.

package main

import (
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func init() {
	register("tx",
		test{"tx_commit_makes_publishes_and_acks_take_effect", txCommit},
		test{"tx_rollback_discards_publishes_and_acks", txRollback},
	)
}

func txCommit(t *T) {
	queue := t.Queue("tx.commit", false, false, nil)
	t.Check(t.Ch.Tx(), "tx.select")
	t.Publish(t.Ch, "", queue, false, amqp.Publishing{Body: []byte("a")})
	t.Publish(t.Ch, "", queue, false, amqp.Publishing{Body: []byte("b")})
	time.Sleep(300 * time.Millisecond)
	t.Equal(t.Depth(queue), 0, "uncommitted publishes must not be visible")
	t.Check(t.Ch.TxCommit(), "tx.commit")
	t.WaitDepth(queue, 2)

	a := t.get(t.Ch, queue, false)
	b := t.get(t.Ch, queue, false)
	t.Equal([]string{string(a.Body), string(b.Body)}, []string{"a", "b"}, "bodies")
	t.Check(a.Ack(false), "ack")
	t.Check(b.Ack(false), "ack")
	t.Check(t.Ch.TxCommit(), "tx.commit")
	// The acks were committed: closing the channel requeues nothing.
	t.Check(t.Ch.Close(), "channel.close")
	time.Sleep(300 * time.Millisecond)
	t.Equal(t.Depth(queue), 0, "depth after committed acks")
}

func txRollback(t *T) {
	queue := t.Queue("tx.rollback", false, false, nil)
	t.Check(t.Ch.Tx(), "tx.select")
	t.Publish(t.Ch, "", queue, false, amqp.Publishing{Body: []byte("discarded")})
	t.Check(t.Ch.TxRollback(), "tx.rollback")
	t.Publish(t.Ch, "", queue, false, amqp.Publishing{Body: []byte("kept")})
	t.Check(t.Ch.TxCommit(), "tx.commit")
	t.WaitDepth(queue, 1)
	time.Sleep(200 * time.Millisecond)
	t.Equal(t.Depth(queue), 1, "the rolled-back publish must never arrive")

	msg := t.get(t.Ch, queue, false)
	t.Equal(string(msg.Body), "kept", "body")
	t.Check(msg.Ack(false), "ack")
	t.Check(t.Ch.TxRollback(), "tx.rollback")
	// The ack was rolled back, so the message is still unacked here and comes back when the channel closes.
	t.Check(t.Ch.Close(), "channel.close")
	t.WaitDepth(queue, 1)
	ch := t.Channel(t.Conn)
	again := t.get(ch, queue, true)
	t.Equal(string(again.Body), "kept", "body")
	t.True(again.Redelivered, "redelivered after the rolled-back ack")
}
