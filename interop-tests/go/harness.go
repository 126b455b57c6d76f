// Shared pieces of the amqp091-go suite: the broker under test, unique names, a per-test context (T) that fails fast,
// closes what it opened and deletes what it declared, polling helpers, and a TCP proxy that can cut connections.
//
// Every test talks to the broker named by AMQP_URL (interop-tests/run sets it) and declares uniquely named queues and
// exchanges, so the suite can run against a shared RabbitMQ in differential mode. Tests assert what RabbitMQ does.

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

const defaultURL = "amqp://guest:guest@127.0.0.1:5672/%2f"

func amqpURL() string {
	if url := os.Getenv("AMQP_URL"); url != "" {
		return url
	}
	return defaultURL
}

func goVersion() string { return runtime.Version() }

// defaultConfig is what Dial uses (10 s heartbeat), with a bounded connect and handshake.
func defaultConfig() amqp.Config {
	return amqp.Config{Heartbeat: 10 * time.Second, Locale: "en_US", Dial: amqp.DefaultDial(10 * time.Second)}
}

// unique returns a name no other test or run uses.
func unique(stem string) string {
	b := make([]byte, 5)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return "interop.go." + stem + "." + hex.EncodeToString(b)
}

// errorCode is the reply code of a channel or connection error the broker sent, or 0.
func errorCode(err error) int {
	var amqpErr *amqp.Error
	if errors.As(err, &amqpErr) {
		return amqpErr.Code
	}
	return 0
}

// failure is what T.Fatalf panics with; T.run turns it back into a message.
type failure struct{ message string }

// skipped is what T.Skip panics with; T.run turns it into a skip reason.
type skipped struct{ reason string }

// outcome is how a test ended: failed with problem, skipped for skip, or passed (both empty).
type outcome struct{ problem, skip string }

// T is one test's context: an open connection and channel (Conn, Ch), more on request, all closed and every declared
// queue and exchange deleted when the test ends. Its assertions stop the test at the first failure.
type T struct {
	Conn *amqp.Connection
	Ch   *amqp.Channel

	mu        sync.Mutex
	cleanups  []func()
	queues    []string
	exchanges []string
}

func newT() *T { return &T{} }

func (t *T) run(fn func(*T)) (result outcome) {
	defer func() {
		if r := recover(); r != nil {
			switch r := r.(type) {
			case failure:
				result.problem = r.message
			case skipped:
				result.skip = r.reason
			default:
				result.problem = fmt.Sprintf("panic: %v\n%s", r, debug.Stack())
			}
		}
	}()
	t.Conn = t.Dial(defaultConfig())
	t.Ch = t.Channel(t.Conn)
	fn(t)
	return outcome{}
}

// Fatalf fails the test with a message naming the caller's line.
func (t *T) Fatalf(format string, args ...any) { fail(format, args...) }

// Skip stops the running test and counts it as skipped (something it needs, such as a TLS listener, is not there).
func (t *T) Skip(format string, args ...any) { panic(skipped{fmt.Sprintf(format, args...)}) }

// fail stops the running test (T.run recovers the panic) with a message naming the first caller outside this file.
func fail(format string, args ...any) {
	where := ""
	for skip := 1; skip < 8; skip++ {
		_, file, line, ok := runtime.Caller(skip)
		if ok && !strings.HasSuffix(file, "/harness.go") {
			where = fmt.Sprintf("%s:%d: ", file[strings.LastIndex(file, "/")+1:], line)
			break
		}
	}
	panic(failure{where + fmt.Sprintf(format, args...)})
}

// Check fails the test if err is not nil.
func (t *T) Check(err error, what string) {
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func (t *T) Equal(got, want any, what string) {
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: got %#v, want %#v", what, got, want)
	}
}

func (t *T) True(cond bool, format string, args ...any) {
	if !cond {
		t.Fatalf(format, args...)
	}
}

// Must returns v, failing the running test if err is not nil: Must(ch.Consume(...)).
func Must[V any](v V, err error) V {
	if err != nil {
		fail("%T: %v", v, err)
	}
	return v
}

// AssertClosedWith checks that err is the broker's channel (or connection) error with this code and a reply text
// starting with textPrefix (RabbitMQ's close texts; clients log and sometimes match them).
func (t *T) AssertClosedWith(err error, code int, textPrefix string) *amqp.Error {
	var amqpErr *amqp.Error
	if !errors.As(err, &amqpErr) {
		t.Fatalf("expected the broker to close with %d %q..., got %v", code, textPrefix, err)
	}
	t.Equal(amqpErr.Code, code, "reply code ("+amqpErr.Reason+")")
	t.True(strings.HasPrefix(amqpErr.Reason, textPrefix), "reply text %q does not start with %q", amqpErr.Reason, textPrefix)
	t.True(amqpErr.Server, "the error came from the library, not the broker")
	return amqpErr
}

func (t *T) addCleanup(fn func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, fn)
}

// Dial opens a connection that is closed when the test ends.
func (t *T) Dial(config amqp.Config) *amqp.Connection {
	return t.DialURL(amqpURL(), config)
}

func (t *T) DialURL(url string, config amqp.Config) *amqp.Connection {
	conn, err := amqp.DialConfig(url, config)
	t.Check(err, "dial "+url)
	t.addCleanup(func() { _ = conn.Close() })
	return conn
}

func (t *T) Channel(conn *amqp.Connection) *amqp.Channel {
	return Must(conn.Channel())
}

// ConfirmChannel opens a channel in confirm mode with a buffered NotifyPublish listener.
func (t *T) ConfirmChannel(conn *amqp.Connection) (*amqp.Channel, chan amqp.Confirmation) {
	ch := t.Channel(conn)
	t.Check(ch.Confirm(false), "confirm.select")
	return ch, ch.NotifyPublish(make(chan amqp.Confirmation, 1000))
}

// Queue declares a uniquely named (non-durable) queue on t.Ch and returns its name.
func (t *T) Queue(stem string, durable, exclusive bool, args amqp.Table) string {
	name := unique(stem)
	t.DeleteLater(name, "")
	_, err := t.Ch.QueueDeclare(name, durable, false, exclusive, false, args)
	t.Check(err, "queue.declare "+name)
	return name
}

func (t *T) Exchange(stem, kind string) string {
	name := unique(stem)
	t.DeleteLater("", name)
	t.Check(t.Ch.ExchangeDeclare(name, kind, false, false, false, false, nil), "exchange.declare "+name)
	return name
}

// ServerNamedQueue declares an exclusive queue with a broker-generated name (amq.gen-...).
func (t *T) ServerNamedQueue(ch *amqp.Channel) string {
	q, err := ch.QueueDeclare("", false, false, true, false, nil)
	t.Check(err, "queue.declare (server-named)")
	t.True(strings.HasPrefix(q.Name, "amq.gen-"), "server-named queue %q", q.Name)
	return q.Name
}

func (t *T) DeleteLater(queue, exchange string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if queue != "" {
		t.queues = append(t.queues, queue)
	}
	if exchange != "" {
		t.exchanges = append(t.exchanges, exchange)
	}
}

// Publish publishes on ch with a 5 s deadline.
func (t *T) Publish(ch *amqp.Channel, exchange, key string, mandatory bool, msg amqp.Publishing) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t.Check(ch.PublishWithContext(ctx, exchange, key, mandatory, false, msg), "basic.publish")
}

// PublishConfirmed publishes bodies to a queue through the default exchange on a confirm channel and waits until the
// broker has acked every one, so they are all in the queue when it returns.
func (t *T) PublishConfirmed(queue string, bodies ...string) {
	msgs := make([]amqp.Publishing, len(bodies))
	for i, body := range bodies {
		msgs[i] = amqp.Publishing{Body: []byte(body)}
	}
	t.PublishConfirmedMessages(queue, msgs...)
}

// PublishConfirmedMessages publishes whole messages to a queue on a confirm channel and waits for every ack.
//
// It waits on NotifyPublish, not on PublishWithDeferredConfirm: amqp091-go 1.5.0 registers a deferred confirmation
// only after it has sent the publish, so an ack that arrives first is dropped and Wait never returns (upstream
// issue #182, fixed in later releases). A fast broker on loopback wins that race a few times in a hundred.
func (t *T) PublishConfirmedMessages(queue string, msgs ...amqp.Publishing) {
	ch, confirms := t.ConfirmChannel(t.Conn)
	defer ch.Close()
	for _, msg := range msgs {
		t.Publish(ch, "", queue, false, msg)
	}
	t.AwaitAcks(confirms, len(msgs), 5*time.Second)
}

// AwaitAcks takes n confirmations from a NotifyPublish listener, failing on a nack or when one takes too long.
func (t *T) AwaitAcks(confirms <-chan amqp.Confirmation, n int, timeout time.Duration) {
	for i := 0; i < n; i++ {
		select {
		case c, open := <-confirms:
			t.True(open, "the channel closed with %d of %d publishes unconfirmed", n-i, n)
			t.True(c.Ack, "publish %d was nacked", c.DeliveryTag)
		case <-time.After(timeout):
			t.Fatalf("only %d of %d publishes confirmed within %s", i, n, timeout)
		}
	}
}

// waitConfirm waits for a deferred confirmation; false on a nack or a timeout.
func waitConfirm(dc *amqp.DeferredConfirmation, timeout time.Duration) bool {
	result := make(chan bool, 1)
	go func() { result <- dc.Wait() }()
	select {
	case ack := <-result:
		return ack
	case <-time.After(timeout):
		return false
	}
}

// Depth is the queue's ready-message count, read with a passive declare on a throwaway channel (a failed passive
// declare closes its channel). It returns the broker's error instead of failing, for WaitGone.
func (t *T) depth(queue string) (int, error) {
	ch, err := t.Conn.Channel()
	if err != nil {
		return 0, err
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	return q.Messages, err
}

func (t *T) Depth(queue string) int {
	n, err := t.depth(queue)
	t.Check(err, "passive queue.declare "+queue)
	return n
}

func (t *T) WaitDepth(queue string, expected int) {
	seen := -1
	t.WaitFor(5*time.Second, func() string {
		return fmt.Sprintf("queue %s to hold %d ready messages (it holds %d)", queue, expected, seen)
	},
		func() bool {
			seen = t.Depth(queue)
			return seen == expected
		})
}

// WaitGone waits until a passive declare of queue fails with 404 (an exclusive or auto-delete queue going away).
func (t *T) WaitGone(queue string) {
	t.WaitFor(5*time.Second, func() string { return "queue " + queue + " to be deleted" }, func() bool {
		_, err := t.depth(queue)
		switch errorCode(err) {
		case 404:
			return true
		case 0, 405: // still there, or still exclusive to a connection the broker is closing
			return false
		}
		t.Fatalf("passive declare of %s: %v", queue, err)
		return false
	})
}

// WaitFor polls cond every 20 ms until it holds, failing after timeout.
func (t *T) WaitFor(timeout time.Duration, what func() string, cond func() bool) {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Receive takes the next delivery from a consumer within timeout.
func (t *T) Receive(deliveries <-chan amqp.Delivery, timeout time.Duration, what string) amqp.Delivery {
	select {
	case d, ok := <-deliveries:
		t.True(ok, "the consumer's delivery channel closed while waiting for %s", what)
		return d
	case <-time.After(timeout):
		t.Fatalf("no delivery within %s: %s", timeout, what)
	}
	return amqp.Delivery{}
}

// NoDelivery checks that nothing arrives on a consumer for a while.
func (t *T) NoDelivery(deliveries <-chan amqp.Delivery, wait time.Duration, what string) {
	select {
	case d, ok := <-deliveries:
		if ok {
			t.Fatalf("unexpected delivery %q: %s", d.Body, what)
		}
	case <-time.After(wait):
	}
}

// Drain does basic.get with auto-ack until the queue is empty and returns the bodies in order.
func (t *T) Drain(ch *amqp.Channel, queue string) []string {
	bodies := []string{}
	for {
		msg, ok, err := ch.Get(queue, true)
		t.Check(err, "basic.get")
		if !ok {
			return bodies
		}
		bodies = append(bodies, string(msg.Body))
	}
}

func (t *T) cleanup() {
	t.mu.Lock()
	cleanups, queues, exchanges := t.cleanups, t.queues, t.exchanges
	t.mu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	if len(queues) == 0 && len(exchanges) == 0 {
		return
	}
	conn, err := amqp.DialConfig(amqpURL(), defaultConfig())
	if err != nil {
		return
	}
	defer conn.Close()
	for _, name := range queues {
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(name, false, false, false) // already gone, or exclusive to a closed connection
			_ = ch.Close()
		}
	}
	for _, name := range exchanges {
		if ch, err := conn.Channel(); err == nil {
			_ = ch.ExchangeDelete(name, false, false)
			_ = ch.Close()
		}
	}
}

// countingConn counts the bytes read from the broker (heartbeat frames included).
type countingConn struct {
	net.Conn
	read atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// CuttableProxy is a loopback TCP proxy in front of the broker. CutAll destroys every proxied socket pair, which
// looks to the client like a network failure and to the broker like a dropped client.
type CuttableProxy struct {
	listener net.Listener
	target   string
	mu       sync.Mutex
	conns    []net.Conn
	Accepted atomic.Int32
}

func (t *T) NewProxy(target string) *CuttableProxy {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	t.Check(err, "proxy listen")
	p := &CuttableProxy{listener: listener, target: target}
	go p.serve()
	t.addCleanup(p.Close)
	return p
}

func (p *CuttableProxy) Addr() string { return p.listener.Addr().String() }

func (p *CuttableProxy) serve() {
	for {
		client, err := p.listener.Accept()
		if err != nil {
			return
		}
		p.Accepted.Add(1)
		upstream, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, client, upstream)
		p.mu.Unlock()
		go pipe(client, upstream)
		go pipe(upstream, client)
	}
}

func pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
}

// CutAll closes every proxied connection and returns how many client connections were cut.
func (p *CuttableProxy) CutAll() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	n := len(p.conns) / 2
	p.conns = nil
	return n
}

func (p *CuttableProxy) Close() {
	p.listener.Close()
	p.CutAll()
}
