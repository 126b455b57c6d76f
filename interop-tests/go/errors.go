// Channel and connection errors as amqp091-go reports them (*amqp.Error): reply codes, RabbitMQ's close texts, and
// that the connection survives a channel error.

package main

import (
	"errors"
	"net/url"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func init() {
	register("errors",
		test{"exclusive_queue_from_another_connection_is_405", errorsExclusive405},
		test{"passive_declare_of_missing_queue_is_404", errorsPassiveQueue404},
		test{"passive_declare_of_missing_exchange_is_404", errorsPassiveExchange404},
		test{"publish_to_missing_exchange_closes_the_channel_with_404", errorsPublishMissingExchange},
		test{"redeclare_with_other_arguments_is_406", errorsRedeclare406},
		test{"wrong_password_is_refused", errorsWrongPassword},
		test{"server_advertises_capabilities", errorsCapabilities},
	)
}

func (t *T) assertConnectionStillUsable(conn *amqp.Connection) {
	t.True(!conn.IsClosed(), "a channel error must not close the connection")
	ch := t.Channel(conn)
	defer ch.Close()
	queue := t.ServerNamedQueue(ch)
	t.Publish(ch, "", queue, false, amqp.Publishing{Body: []byte("still fine")})
}

func errorsExclusive405(t *T) {
	queue := t.Queue("exclusive", false, true, nil)
	other := t.Dial(defaultConfig())
	locked := "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '" + queue + "' in vhost '/'"
	attempts := map[string]func(ch *amqp.Channel) error{
		"queue.declare": func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare(queue, false, false, true, false, nil)
			return err
		},
		"passive queue.declare": func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclarePassive(queue, false, false, true, false, nil)
			return err
		},
		"basic.consume": func(ch *amqp.Channel) error {
			_, err := ch.Consume(queue, "", true, false, false, false, nil)
			return err
		},
		"basic.get": func(ch *amqp.Channel) error {
			_, _, err := ch.Get(queue, true)
			return err
		},
		"queue.delete": func(ch *amqp.Channel) error {
			_, err := ch.QueueDelete(queue, false, false, false)
			return err
		},
	}
	for _, what := range []string{"queue.declare", "passive queue.declare", "basic.consume", "basic.get", "queue.delete"} {
		ch := t.Channel(other)
		err := attempts[what](ch)
		t.True(err != nil, "%s of another connection's exclusive queue succeeded", what)
		t.AssertClosedWith(err, 405, locked)
	}
	t.assertConnectionStillUsable(other)

	// The owner is unaffected.
	t.Publish(t.Ch, "", queue, false, amqp.Publishing{Body: []byte("mine")})
	t.WaitDepth(queue, 1)
}

func errorsPassiveQueue404(t *T) {
	missing := unique("no-such-queue")
	_, err := t.Ch.QueueDeclarePassive(missing, false, false, false, false, nil)
	closed := t.AssertClosedWith(err, 404, "NOT_FOUND - no queue '"+missing+"' in vhost '/'")
	t.Equal(closed.Reason, "NOT_FOUND - no queue '"+missing+"' in vhost '/'", "reply text")
	t.True(closed.Recover, "404 is a soft (channel) error")
	t.True(t.Ch.IsClosed(), "the channel is closed")
	t.assertConnectionStillUsable(t.Conn)
}

func errorsPassiveExchange404(t *T) {
	missing := unique("no-such-exchange")
	err := t.Ch.ExchangeDeclarePassive(missing, amqp.ExchangeDirect, false, false, false, false, nil)
	t.AssertClosedWith(err, 404, "NOT_FOUND - no exchange '"+missing+"' in vhost '/'")
}

func errorsPublishMissingExchange(t *T) {
	missing := unique("no-such-exchange")
	closes := t.Ch.NotifyClose(make(chan *amqp.Error, 1))
	t.Publish(t.Ch, missing, "k", false, amqp.Publishing{Body: []byte("x")})
	select {
	case err := <-closes:
		t.AssertClosedWith(err, 404, "NOT_FOUND - no exchange '"+missing+"' in vhost '/'")
	case <-time.After(5 * time.Second):
		t.Fatalf("publishing to a missing exchange did not close the channel")
	}
	t.assertConnectionStillUsable(t.Conn)
}

func errorsRedeclare406(t *T) {
	queue := t.Queue("args", false, false, amqp.Table{"x-message-ttl": int32(60000)})
	// The same arguments again are fine.
	_, err := t.Ch.QueueDeclare(queue, false, false, false, false, amqp.Table{"x-message-ttl": int32(60000)})
	t.Check(err, "identical redeclare")

	_, err = t.Ch.QueueDeclare(queue, false, false, false, false, amqp.Table{"x-message-ttl": int32(1000)})
	t.AssertClosedWith(err, 406,
		"PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '"+queue+"' in vhost '/'")
	t.Ch = t.Channel(t.Conn)
	_, err = t.Ch.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-message-ttl": int32(60000)})
	t.AssertClosedWith(err, 406, "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '"+queue+"' in vhost '/'")
	t.Ch = t.Channel(t.Conn)
	exchange := t.Exchange("args", amqp.ExchangeDirect)
	err = t.Ch.ExchangeDeclare(exchange, amqp.ExchangeFanout, false, false, false, false, nil)
	t.AssertClosedWith(err, 406,
		"PRECONDITION_FAILED - inequivalent arg 'type' for exchange '"+exchange+"' in vhost '/'")
	// The queue kept its original definition.
	t.Ch = t.Channel(t.Conn)
	_, err = t.Ch.QueueDeclare(queue, false, false, false, false, amqp.Table{"x-message-ttl": int32(60000)})
	t.Check(err, "redeclare with the original arguments")
	t.assertConnectionStillUsable(t.Conn)
}

func errorsWrongPassword(t *T) {
	u, err := url.Parse(amqpURL())
	t.Check(err, "AMQP_URL")
	u.User = url.UserPassword(u.User.Username(), "definitely-not-the-password")
	conn, err := amqp.DialConfig(u.String(), defaultConfig())
	if err == nil {
		conn.Close()
		t.Fatalf("a wrong password was accepted")
	}
	// amqp091-go reports any failure after start-ok as ErrCredentials (RabbitMQ closes with 403 ACCESS_REFUSED).
	t.True(errors.Is(err, amqp.ErrCredentials), "expected ErrCredentials, got %v", err)
}

func errorsCapabilities(t *T) {
	capabilities, ok := t.Conn.Properties["capabilities"].(amqp.Table)
	t.True(ok, "no capabilities table in the server properties: %#v", t.Conn.Properties)
	for _, name := range []string{"publisher_confirms", "basic.nack", "consumer_cancel_notify",
		"exchange_exchange_bindings", "per_consumer_qos", "authentication_failure_close"} {
		t.Equal(capabilities[name], true, "capability "+name)
	}
	t.True(t.Conn.Properties["product"] != nil && t.Conn.Properties["version"] != nil, "product and version")
	t.Equal([]int{t.Conn.Major, t.Conn.Minor}, []int{0, 9}, "protocol version in connection.start")
}
