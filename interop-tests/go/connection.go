// Connection-level behaviour: heartbeat negotiation and liveness, a 16 MiB message split over many body frames, and
// basic properties and header tables of every field type amqp091-go encodes.

package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"net"
	"net/url"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func init() {
	register("connection",
		test{"heartbeat_negotiated_and_connection_survives_idle_time", connectionHeartbeat},
		test{"message_of_16_mib_round_trip", connectionLargeMessage},
		test{"properties_and_headers_round_trip", connectionProperties},
	)
}

func connectionHeartbeat(t *T) {
	// A heartbeat under 1 s in Config means "use the server's": RabbitMQ proposes 60 s in connection.tune.
	defaulted := t.Dial(amqp.Config{Heartbeat: 0, Locale: "en_US", Dial: amqp.DefaultDial(10 * time.Second)})
	t.Equal(defaulted.Config.Heartbeat, 60*time.Second, "the heartbeat the server proposed")
	t.Check(defaulted.Close(), "connection.close")

	// Asking for 2 s negotiates the lower of the two. The dialer counts what the broker sends.
	var counted *countingConn
	config := amqp.Config{Heartbeat: 2 * time.Second, Locale: "en_US", Dial: func(network, addr string) (net.Conn, error) {
		conn, err := amqp.DefaultDial(10*time.Second)(network, addr)
		if err != nil {
			return nil, err
		}
		counted = &countingConn{Conn: conn}
		return counted, nil
	}}
	conn := t.Dial(config)
	t.Equal(conn.Config.Heartbeat, 2*time.Second, "negotiated heartbeat")
	closes := conn.NotifyClose(make(chan *amqp.Error, 1))
	before := counted.read.Load()
	// The library sends a heartbeat every second and drops the connection after three silent intervals.
	select {
	case err := <-closes:
		t.Fatalf("connection closed during 5 s of heartbeats: %v", err)
	case <-time.After(5 * time.Second):
	}
	heartbeatBytes := counted.read.Load() - before
	// A heartbeat frame is 8 bytes; the broker sends one every timeout/2 = 1 s, so 5 s must show at least two.
	t.True(heartbeatBytes >= 16, "broker sent %d bytes while idle", heartbeatBytes)

	ch := t.Channel(conn)
	queue := t.ServerNamedQueue(ch)
	t.Publish(ch, "", queue, false, amqp.Publishing{Body: []byte("alive")})
	t.WaitFor(5*time.Second, func() string { return "the message" }, func() bool {
		q, err := ch.QueueDeclarePassive(queue, false, false, true, false, nil)
		t.Check(err, "passive queue.declare")
		return q.Messages == 1
	})
	t.Equal(t.Drain(ch, queue), []string{"alive"}, "after idling")
}

func connectionLargeMessage(t *T) {
	queue := t.Queue("large", false, false, nil)
	block := make([]byte, 1024)
	_, _ = rand.Read(block)
	body := bytes.Repeat(block, 16*1024) // 16 MiB: 128+ body frames at frame_max 131072
	ch, confirms := t.ConfirmChannel(t.Conn)
	t.Publish(ch, "", queue, false, amqp.Publishing{MessageId: "big", Body: body})
	t.AwaitAcks(confirms, 1, 30*time.Second)

	deliveries := Must(t.Ch.Consume(queue, "", false, false, false, false, nil))
	d := t.Receive(deliveries, 30*time.Second, "the 16 MiB message")
	t.Check(d.Ack(false), "ack")
	t.Equal(d.MessageId, "big", "message id")
	t.Equal(len(d.Body), len(body), "length")
	t.Equal(sha256.Sum256(d.Body), sha256.Sum256(body), "sha256")
	t.WaitDepth(queue, 0)
}

func connectionProperties(t *T) {
	queue := t.Queue("props", false, false, nil)
	headers := amqp.Table{
		"string":      "plain",
		"unicode":     "h\u00e9llo \u2713",
		"int8":        int8(-7),
		"uint8":       byte(200),
		"int16":       int16(-1000),
		"int32":       int32(100000),
		"int64":       int64(1) << 40,
		"float32":     float32(1.5),
		"float64":     3.25,
		"true":        true,
		"false":       false,
		"void":        nil,
		"bytes":       []byte{0x00, 0xff, 'r', 'a', 'w'},
		"decimal":     amqp.Decimal{Scale: 2, Value: 314},
		"timestamp":   time.Unix(1704164645, 0),
		"array":       []interface{}{int32(1), "two", []interface{}{int32(3)}, amqp.Table{"four": int32(4)}},
		"table":       amqp.Table{"nested": amqp.Table{"deeper": "yes"}, "n": int32(1)},
		"empty-table": amqp.Table{},
		"empty-array": []interface{}{},
	}
	u, err := url.Parse(amqpURL())
	t.Check(err, "AMQP_URL")
	sent := amqp.Publishing{
		ContentType:     "application/json",
		ContentEncoding: "utf-8",
		Headers:         headers,
		DeliveryMode:    amqp.Persistent,
		Priority:        5,
		CorrelationId:   "corr-1",
		ReplyTo:         "reply.here",
		Expiration:      "60000",
		MessageId:       "msg-1",
		Timestamp:       time.Unix(1700000000, 0),
		Type:            "order.created",
		UserId:          u.User.Username(), // RabbitMQ refuses a user_id other than the authenticated user
		AppId:           "interop",
		Body:            []byte(`{"k": 1}`),
	}
	t.PublishConfirmedMessages(queue, sent, amqp.Publishing{}) // the second: no properties, empty body

	got := t.get(t.Ch, queue, true)
	t.Equal(string(got.Body), `{"k": 1}`, "body")
	t.Equal(
		[]any{got.ContentType, got.ContentEncoding, got.DeliveryMode, got.Priority, got.CorrelationId, got.ReplyTo,
			got.Expiration, got.MessageId, got.Timestamp.Unix(), got.Type, got.UserId, got.AppId},
		[]any{sent.ContentType, sent.ContentEncoding, sent.DeliveryMode, sent.Priority, sent.CorrelationId, sent.ReplyTo,
			sent.Expiration, sent.MessageId, sent.Timestamp.Unix(), sent.Type, sent.UserId, sent.AppId},
		"properties")
	for key, want := range headers {
		value, ok := got.Headers[key]
		t.True(ok, "header %q dropped", key)
		if array, isArray := want.([]interface{}); isArray && len(array) == 0 {
			decoded, _ := value.([]interface{}) // amqp091-go decodes an empty field array as a nil slice
			t.True(value != nil && len(decoded) == 0, "header %s: got %#v, want an empty array", key, value)
			continue
		}
		if stamp, isTime := want.(time.Time); isTime {
			gotStamp, _ := value.(time.Time)
			t.Equal(gotStamp.Unix(), stamp.Unix(), "header "+key)
			continue
		}
		t.Equal(value, want, "header "+key)
	}
	t.Equal(len(got.Headers), len(headers), "the broker added or dropped headers")

	empty := t.get(t.Ch, queue, true)
	t.Equal(len(empty.Body), 0, "empty body")
	t.Equal([]any{empty.ContentType, empty.DeliveryMode, empty.MessageId, empty.Timestamp.IsZero(), len(empty.Headers)},
		[]any{"", uint8(0), "", true, 0}, "no properties")
}
