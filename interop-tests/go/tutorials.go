// The six RabbitMQ tutorials (rabbitmq.com/tutorials, Go/amqp091-go), each turned into assertions on what arrives.

package main

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func init() {
	register("tutorials",
		test{"tutorial1_hello_world", tutorialHelloWorld},
		test{"tutorial2_work_queues_fair_dispatch_and_redelivery", tutorialWorkQueues},
		test{"tutorial3_publish_subscribe_fanout", tutorialFanout},
		test{"tutorial4_routing_direct", tutorialDirect},
		test{"tutorial5_topics", tutorialTopics},
		test{"tutorial6_rpc_with_exclusive_reply_queue_and_correlation_id", tutorialRPC},
	)
}

func tutorialHelloWorld(t *T) {
	queue := t.Queue("hello", false, false, nil)
	t.Publish(t.Ch, "", queue, false, amqp.Publishing{ContentType: "text/plain", Body: []byte("Hello World!")})

	deliveries := Must(t.Ch.Consume(queue, "", true, false, false, false, nil))
	d := t.Receive(deliveries, 10*time.Second, "Hello World!")
	t.Equal(string(d.Body), "Hello World!", "body")
	t.Equal(d.ContentType, "text/plain", "content type")
	t.Equal(d.Exchange, "", "exchange")
	t.Equal(d.RoutingKey, queue, "routing key")
	t.Equal(d.Redelivered, false, "redelivered")
	t.Equal(d.DeliveryTag, uint64(1), "delivery tag")
	t.NoDelivery(deliveries, 100*time.Millisecond, "one message was published")
	t.Equal(t.Depth(queue), 0, "depth")
}

func tutorialWorkQueues(t *T) {
	queue := t.Queue("task_queue", true, false, nil)
	send := func(body string) {
		ch, confirms := t.ConfirmChannel(t.Conn)
		defer ch.Close()
		t.Publish(ch, "", queue, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(body)})
		select {
		case c := <-confirms:
			t.True(c.Ack, "publish of %s nacked", body)
		case <-time.After(5 * time.Second):
			t.Fatalf("publish of %s not confirmed", body)
		}
	}
	worker := func() (*amqp.Channel, <-chan amqp.Delivery) {
		ch := t.Channel(t.Dial(defaultConfig()))
		t.Check(ch.Qos(1, 0, false), "basic.qos")
		return ch, Must(ch.Consume(queue, "", false, false, false, false, nil))
	}

	workerA, deliveriesA := worker()
	send("task1")
	task1 := t.Receive(deliveriesA, 5*time.Second, "worker A's task")

	_, deliveriesB := worker()
	send("task2")
	send("task3")
	task2 := t.Receive(deliveriesB, 5*time.Second, "worker B's task")

	// prefetch 1: each worker holds one unacked task, the third waits in the queue.
	t.Equal(string(task1.Body), "task1", "worker A's task")
	t.Equal(string(task2.Body), "task2", "worker B's task")
	t.Equal(task1.Redelivered, false, "task1 redelivered")
	t.Equal(task1.DeliveryMode, amqp.Persistent, "delivery mode")
	t.NoDelivery(deliveriesA, 300*time.Millisecond, "worker A holds its prefetch of 1")
	t.NoDelivery(deliveriesB, 50*time.Millisecond, "worker B holds its prefetch of 1")
	t.WaitDepth(queue, 1)

	// Worker A closes its channel without acking: its task goes back to the queue, B is still busy.
	t.Check(workerA.Close(), "worker A channel.close")
	t.WaitDepth(queue, 2)
	t.NoDelivery(deliveriesB, 200*time.Millisecond, "worker B has not acked yet")

	// B acks and gets task1 (requeued to its original position, ahead of task3) marked redelivered, then task3.
	t.Check(task2.Ack(false), "ack task2")
	again := t.Receive(deliveriesB, 5*time.Second, "the requeued task")
	t.Equal(string(again.Body), "task1", "the requeued task")
	t.True(again.Redelivered, "a requeued message must arrive with redelivered=true")
	t.Check(again.Ack(false), "ack task1")
	task3 := t.Receive(deliveriesB, 5*time.Second, "task3")
	t.Equal(string(task3.Body), "task3", "last task")
	t.Equal(task3.Redelivered, false, "task3 redelivered")
	t.Check(task3.Ack(false), "ack task3")
	t.WaitDepth(queue, 0)
	t.NoDelivery(deliveriesB, 100*time.Millisecond, "all three tasks were delivered")
}

func tutorialFanout(t *T) {
	exchange := t.Exchange("logs", amqp.ExchangeFanout)
	publisher, confirms := t.ConfirmChannel(t.Conn)
	waitAcks := func(n int) {
		for i := 0; i < n; i++ {
			select {
			case c := <-confirms:
				t.True(c.Ack, "publish nacked")
			case <-time.After(5 * time.Second):
				t.Fatalf("publish not confirmed")
			}
		}
	}
	t.Publish(publisher, exchange, "", false, amqp.Publishing{Body: []byte("before anyone listens")})
	waitAcks(1)

	type subscriber struct {
		conn       *amqp.Connection
		queue      string
		deliveries <-chan amqp.Delivery
	}
	var subs []subscriber
	for i := 0; i < 2; i++ {
		conn := t.Dial(defaultConfig())
		ch := t.Channel(conn)
		queue := t.ServerNamedQueue(ch)
		t.Check(ch.QueueBind(queue, "", exchange, false, nil), "queue.bind")
		subs = append(subs, subscriber{conn, queue, Must(ch.Consume(queue, "", true, false, false, false, nil))})
	}
	t.True(subs[0].queue != subs[1].queue, "two server-named queues share the name %s", subs[0].queue)

	t.Publish(publisher, exchange, "ignored.key", false, amqp.Publishing{Body: []byte("log-1")})
	t.Publish(publisher, exchange, "", false, amqp.Publishing{Body: []byte("log-2")})
	waitAcks(2)
	for _, sub := range subs {
		first := t.Receive(sub.deliveries, 5*time.Second, "log-1")
		second := t.Receive(sub.deliveries, 5*time.Second, "log-2")
		t.Equal([]string{string(first.Body), string(second.Body)}, []string{"log-1", "log-2"}, "log lines")
		t.Equal(first.Exchange, exchange, "exchange")
		t.Equal(first.RoutingKey, "ignored.key", "routing key")
	}

	// An exclusive queue goes away with its connection.
	t.Check(subs[0].conn.Close(), "connection.close")
	t.WaitGone(subs[0].queue)
}

func tutorialDirect(t *T) {
	exchange := t.Exchange("direct_logs", amqp.ExchangeDirect)
	errorsOnly := t.ServerNamedQueue(t.Ch)
	t.Check(t.Ch.QueueBind(errorsOnly, "error", exchange, false, nil), "queue.bind")
	everything := t.ServerNamedQueue(t.Ch)
	for _, severity := range []string{"info", "warning", "error"} {
		t.Check(t.Ch.QueueBind(everything, severity, exchange, false, nil), "queue.bind")
	}

	publisher, confirms := t.ConfirmChannel(t.Conn)
	publish := func(keys ...string) {
		for _, key := range keys {
			t.Publish(publisher, exchange, key, false, amqp.Publishing{Body: []byte(key)})
		}
		for range keys {
			c := <-confirms
			t.True(c.Ack, "publish nacked")
		}
	}
	publish("info", "warning", "error", "debug")
	t.Equal(t.Drain(t.Ch, errorsOnly), []string{"error"}, "errors-only queue")
	t.Equal(t.Drain(t.Ch, everything), []string{"info", "warning", "error"}, "everything queue")

	// Unbinding stops the flow for that key only.
	t.Check(t.Ch.QueueUnbind(everything, "info", exchange, nil), "queue.unbind")
	publish("info", "warning")
	t.Equal(t.Drain(t.Ch, everything), []string{"warning"}, "after unbinding info")
}

func tutorialTopics(t *T) {
	exchange := t.Exchange("topic_logs", amqp.ExchangeTopic)
	declare := func(patterns ...string) string {
		queue := t.ServerNamedQueue(t.Ch)
		for _, pattern := range patterns {
			t.Check(t.Ch.QueueBind(queue, pattern, exchange, false, nil), "queue.bind "+pattern)
		}
		return queue
	}
	q1 := declare("*.orange.*")
	q2 := declare("*.*.rabbit", "lazy.#")
	all := declare("#")

	keys := []string{
		"quick.orange.rabbit",      // Q1, Q2
		"lazy.orange.elephant",     // Q1, Q2
		"quick.orange.fox",         // Q1
		"lazy.brown.fox",           // Q2
		"lazy.pink.rabbit",         // Q2, once although two bindings match
		"quick.brown.fox",          // nobody but '#'
		"orange",                   // nobody but '#'
		"quick.orange.male.rabbit", // nobody but '#'
		"lazy.orange.male.rabbit",  // Q2
		"lazy",                     // Q2: '#' matches zero words
	}
	publisher, confirms := t.ConfirmChannel(t.Conn)
	for _, key := range keys {
		t.Publish(publisher, exchange, key, false, amqp.Publishing{Body: []byte(key)})
	}
	for range keys {
		t.True((<-confirms).Ack, "publish nacked")
	}
	t.Equal(t.Drain(t.Ch, q1), []string{"quick.orange.rabbit", "lazy.orange.elephant", "quick.orange.fox"}, "Q1")
	t.Equal(t.Drain(t.Ch, q2), []string{"quick.orange.rabbit", "lazy.orange.elephant", "lazy.brown.fox",
		"lazy.pink.rabbit", "lazy.orange.male.rabbit", "lazy"}, "Q2")
	t.Equal(t.Drain(t.Ch, all), keys, "'#' queue")
}

func fib(n int) int {
	if n < 2 {
		return n
	}
	return fib(n-1) + fib(n-2)
}

func tutorialRPC(t *T) {
	rpcQueue := t.Queue("rpc_queue", false, false, nil)

	// The server: prefetch 1, replies to reply_to with the request's correlation_id, then acks.
	server := t.Channel(t.Dial(defaultConfig()))
	t.Check(server.Qos(1, 0, false), "basic.qos")
	requests := Must(server.Consume(rpcQueue, "", false, false, false, false, nil))
	serverErrors := make(chan error, 1)
	go func() {
		for d := range requests {
			n, _ := strconv.Atoi(string(d.Body))
			err := server.Publish("", d.ReplyTo, false, false, amqp.Publishing{
				CorrelationId: d.CorrelationId,
				Body:          []byte(strconv.Itoa(fib(n))),
			})
			if err == nil {
				err = d.Ack(false)
			}
			if err != nil {
				serverErrors <- err
				return
			}
		}
	}()

	client := t.Channel(t.Dial(defaultConfig()))
	callbackQueue := t.ServerNamedQueue(client)
	replies := Must(client.Consume(callbackQueue, "", true, false, false, false, nil))

	sent := map[string]int{}
	for _, n := range []int{0, 1, 10, 20} {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		correlationID := hex.EncodeToString(b)
		sent[correlationID] = n
		t.Publish(client, "", rpcQueue, false, amqp.Publishing{
			ReplyTo:       callbackQueue,
			CorrelationId: correlationID,
			Body:          []byte(strconv.Itoa(n)),
		})
	}
	got := map[string]int{}
	for len(got) < len(sent) {
		select {
		case err := <-serverErrors:
			t.Fatalf("RPC server: %v", err)
		case d := <-replies:
			value, err := strconv.Atoi(string(d.Body))
			t.Check(err, "reply body")
			got[d.CorrelationId] = value
		case <-time.After(10 * time.Second):
			t.Fatalf("got %d of %d RPC replies", len(got), len(sent))
		}
	}
	want := map[string]int{}
	for id, n := range sent {
		want[id] = fib(n)
	}
	t.Equal(got, want, "replies by correlation id")
}
