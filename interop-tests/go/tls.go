// AMQP over TLS with amqp091-go. interop-tests/run starts Warren with a TLS listener and sets AMQPS_URL and
// AMQPS_CA_FILE (a CA made for the run; the server certificate names 127.0.0.1 and localhost); without them (a
// broker given with --broker-url, say) these tests are skipped.

package main

import (
	"crypto/tls"
	"crypto/x509"
	"net/url"
	"os"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func init() {
	register("tls",
		test{"publish_confirm_and_consume_over_tls", tlsPublishConfirmConsume},
		test{"a_client_that_does_not_trust_the_certificate_is_refused", tlsUntrusted},
		test{"plain_amqp_to_the_tls_port_fails_without_hanging", tlsPlainToTLSPort},
	)
}

// tlsSettings is the broker's amqps URL and a TLS config that trusts the run's CA, or skips the test.
func tlsSettings(t *T) (string, *tls.Config) {
	url, caFile := os.Getenv("AMQPS_URL"), os.Getenv("AMQPS_CA_FILE")
	if url == "" || caFile == "" {
		t.Skip("AMQPS_URL and AMQPS_CA_FILE are not set")
	}
	pem, err := os.ReadFile(caFile)
	t.Check(err, "read "+caFile)
	roots := x509.NewCertPool()
	t.True(roots.AppendCertsFromPEM(pem), "no PEM certificate in %s", caFile)
	// ServerName is left empty: amqp091-go takes the URL's host (127.0.0.1), which the certificate's IP SAN names.
	return url, &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
}

func tlsPublishConfirmConsume(t *T) {
	url, config := tlsSettings(t)
	conn, err := amqp.DialTLS(url, config)
	t.Check(err, "DialTLS "+url)
	t.addCleanup(func() { _ = conn.Close() })
	t.True(conn.ConnectionState().HandshakeComplete, "the TLS handshake is not complete")

	ch := t.Channel(conn)
	queue := t.ServerNamedQueue(ch)
	t.Check(ch.Confirm(false), "confirm.select")
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 1))
	t.Publish(ch, "", queue, false, amqp.Publishing{Body: []byte("over tls")})
	t.AwaitAcks(confirms, 1, 5*time.Second)

	deliveries := Must(ch.Consume(queue, "", false, false, false, false, nil))
	d := t.Receive(deliveries, 5*time.Second, "the message published over TLS")
	t.Equal(string(d.Body), "over tls", "body")
	t.Check(d.Ack(false), "basic.ack")
}

func tlsUntrusted(t *T) {
	url, _ := tlsSettings(t)
	// The system's roots, which do not hold the run's CA.
	conn, err := amqp.DialTLS(url, &tls.Config{})
	if err == nil {
		conn.Close()
		t.Fatalf("the connection succeeded without trusting the broker's CA")
	}
	t.True(strings.Contains(err.Error(), "certificate"), "expected a certificate error, got %v", err)
}

func tlsPlainToTLSPort(t *T) {
	tlsURL, _ := tlsSettings(t)
	u, err := url.Parse(tlsURL)
	t.Check(err, "parse "+tlsURL)
	if u.Port() == "" {
		u.Host += ":5671"
	}
	u.Scheme = "amqp"
	// The protocol header is not a TLS ClientHello: the broker drops the connection and the client reports an error
	// (within the dial's 10 s bound, not by hanging).
	started := time.Now()
	conn, err := amqp.DialConfig(u.String(), defaultConfig())
	if err == nil {
		conn.Close()
		t.Fatalf("a plain AMQP connection to the TLS port %s succeeded", u.Host)
	}
	t.True(time.Since(started) < 10*time.Second, "the refusal took %s: %v", time.Since(started), err)
}
