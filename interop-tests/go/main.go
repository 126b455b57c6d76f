// Command interop runs the amqp091-go interop suite against the broker named by AMQP_URL: every registered test, one
// result line per test, then the summary line that interop-tests/run parses
// (`interop-summary: passed=N failed=N skipped=N`).
//
// Usage: AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f ./interop [-run SUBSTRING]...
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// A test that runs longer than this is stuck (a lost delivery, a missing reply): fail it instead of hanging the run.
var testTimeout = func() time.Duration {
	if s, err := strconv.Atoi(os.Getenv("INTEROP_TEST_TIMEOUT")); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 60 * time.Second
}()

type test struct {
	name string
	fn   func(t *T)
}

var registry []test

// register adds a file's tests under its group name, in the order given.
func register(group string, tests ...test) {
	for _, tc := range tests {
		registry = append(registry, test{group + "." + tc.name, tc.fn})
	}
}

type patterns []string

func (p *patterns) String() string     { return strings.Join(*p, ",") }
func (p *patterns) Set(s string) error { *p = append(*p, s); return nil }

func main() {
	var only patterns
	flag.Var(&only, "run", "only tests whose name contains this (repeatable)")
	flag.Parse()

	fmt.Printf("amqp091-go (Debian golang-github-rabbitmq-amqp091-go-dev) on %s, AMQP_URL=%s\n", goVersion(), amqpURL())
	conn, err := amqp.DialConfig(amqpURL(), defaultConfig())
	if err != nil {
		fmt.Printf("FAIL  cannot connect to the broker at %s: %v\n", amqpURL(), err)
		fmt.Println("interop-summary: passed=0 failed=1 skipped=0")
		os.Exit(1)
	}
	conn.Close()

	passed, failed, skips := 0, 0, 0
	for _, tc := range registry {
		if len(only) > 0 && !containsAny(tc.name, only) {
			continue
		}
		started := time.Now()
		result := runOne(tc)
		took := fmt.Sprintf("(%.2fs)", time.Since(started).Seconds())
		switch {
		case result.problem != "":
			failed++
			fmt.Printf("FAIL  %s %s\n%s\n", tc.name, took, indent(result.problem))
		case result.skip != "":
			skips++
			fmt.Printf("SKIP  %s: %s\n", tc.name, result.skip)
		default:
			passed++
			fmt.Printf("PASS  %s %s\n", tc.name, took)
		}
	}
	fmt.Printf("interop-summary: passed=%d failed=%d skipped=%d\n", passed, failed, skips)
	if failed > 0 {
		os.Exit(1)
	}
}

// runOne runs a test in its own goroutine, bounded by testTimeout, then its cleanups; it returns how it ended.
func runOne(tc test) outcome {
	t := newT()
	done := make(chan outcome, 1)
	go func() {
		done <- t.run(tc.fn)
	}()
	var result outcome
	select {
	case result = <-done:
	case <-time.After(testTimeout):
		result.problem = fmt.Sprintf("test took longer than %s", testTimeout)
	}
	t.cleanup()
	return result
}

func containsAny(name string, subs []string) bool {
	for _, s := range subs {
		if strings.Contains(name, s) {
			return true
		}
	}
	return false
}

func indent(text string) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	for i, line := range lines {
		lines[i] = "      " + line
	}
	return strings.Join(lines, "\n")
}
