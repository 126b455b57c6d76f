// Direct reply-to (amq.rabbitmq.reply-to) with amqp091-go: an RPC round trip across two connections, and the 406 for
// a reply consumer that would acknowledge.

package main

import (
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

const directReplyTo = "amq.rabbitmq.reply-to"

func init() {
	register("direct_reply_to",
		test{"rpc_round_trip_across_connections", directReplyToRoundTrip},
		test{"reply_consumer_must_be_no_ack", directReplyToMustBeNoAck},
	)
}

func directReplyToRoundTrip(t *T) {
	requests := t.Queue("rpc", false, false, nil)
	replies := Must(t.Ch.Consume(directReplyTo, "", true, false, false, false, nil))
	t.Publish(t.Ch, "", requests, false, amqp.Publishing{
		Body: []byte("ping"), ReplyTo: directReplyTo, CorrelationId: "c1",
	})

	// The responder, on another connection, answers to whatever reply_to the request carries.
	responder, confirms := t.ConfirmChannel(t.Dial(defaultConfig()))
	incoming := Must(responder.Consume(requests, "", true, false, false, false, nil))
	request := t.Receive(incoming, 5*time.Second, "the request")
	t.True(strings.HasPrefix(request.ReplyTo, directReplyTo+"."),
		"the broker rewrote reply_to to a reply name, not %q", request.ReplyTo)
	t.Equal(request.CorrelationId, "c1", "the request's correlation id")
	t.Publish(responder, "", request.ReplyTo, false, amqp.Publishing{
		Body: []byte("pong:" + string(request.Body)), CorrelationId: request.CorrelationId,
	})
	t.AwaitAcks(confirms, 1, 5*time.Second)

	reply := t.Receive(replies, 5*time.Second, "the reply")
	t.Equal(string(reply.Body), "pong:ping", "reply body")
	t.Equal(reply.CorrelationId, "c1", "reply correlation id")
	t.Equal(reply.Exchange, "", "reply exchange")
	t.Equal(reply.RoutingKey, request.ReplyTo, "reply routing key")
	t.NoDelivery(replies, 200*time.Millisecond, "one reply only")
	t.True(!t.Ch.IsClosed(), "the requester's channel is open")
}

func directReplyToMustBeNoAck(t *T) {
	_, err := t.Ch.Consume(directReplyTo, "", false, false, false, false, nil)
	t.True(err != nil, "an acknowledging consumer of %s was accepted", directReplyTo)
	t.AssertClosedWith(err, 406, "PRECONDITION_FAILED - reply consumer cannot acknowledge")
	t.assertConnectionStillUsable(t.Conn)
}
