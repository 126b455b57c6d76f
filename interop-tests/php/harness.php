<?php
// Shared pieces of the php-amqplib interop suite: connecting to the broker under test, unique names, cleanup,
// pumping I/O while waiting, assertions, and the runner that prints one line per test and the `interop-summary:` line
// interop-tests/run parses.
//
// Every test talks to the broker named by AMQP_URL and creates its own uniquely named queues and exchanges, so the
// suite can run against a shared RabbitMQ in differential mode. Tests assert what RabbitMQ does; where Warren differs,
// the test fails and says what it saw. php-amqplib is single-threaded: nothing arrives unless a channel waits, so
// the helpers here pump the channels they are given.

namespace Interop;

use PhpAmqpLib\Channel\AMQPChannel;
use PhpAmqpLib\Connection\AMQPStreamConnection;
use PhpAmqpLib\Exception\AMQPProtocolChannelException;
use PhpAmqpLib\Exception\AMQPTimeoutException;
use PhpAmqpLib\Message\AMQPMessage;

const DEFAULT_URL = 'amqp://guest:guest@127.0.0.1:5672/%2f';

class AssertionFailed extends \Exception
{
}

function amqp_url(): string
{
    return getenv('AMQP_URL') ?: DEFAULT_URL;
}

/** The broker's address and credentials from AMQP_URL: [host, port, user, password, vhost]. */
function broker(): array
{
    $url = parse_url(amqp_url());
    $path = $url['path'] ?? '/';
    $vhost = $path === '' || $path === '/' ? '/' : rawurldecode(substr($path, 1));
    return [
        $url['host'] ?? '127.0.0.1',
        $url['port'] ?? 5672,
        rawurldecode($url['user'] ?? 'guest'),
        rawurldecode($url['pass'] ?? 'guest'),
        $vhost,
    ];
}

/**
 * Opens a connection to the broker under test. php-amqplib logs in with AMQPLAIN unless told otherwise; the
 * read/write timeout must exceed twice the heartbeat.
 */
function connect(int $heartbeat = 0, ?string $password = null, string $login_method = 'AMQPLAIN'): AMQPStreamConnection
{
    [$host, $port, $user, $pass, $vhost] = broker();
    $io_timeout = max(30, 2 * $heartbeat + 2);
    return new AMQPStreamConnection(
        $host, $port, $user, $password ?? $pass, $vhost,
        false, $login_method, null, 'en_US',
        10.0, $io_timeout, null, false, $heartbeat
    );
}

function unique(string $stem): string
{
    return 'interop.php.' . $stem . '.' . bin2hex(random_bytes(5));
}

/** Processes incoming frames on each channel in turn until `$predicate()` holds; returns whether it did. */
function pump_until(array $channels, callable $predicate, float $timeout = 5.0): bool
{
    $deadline = microtime(true) + $timeout;
    while (!$predicate()) {
        if (microtime(true) > $deadline) {
            return false;
        }
        foreach ($channels as $ch) {
            pump($ch, 0.02);
        }
    }
    return true;
}

/** Processes incoming frames on one channel for up to `$seconds` (one wait; returns after a frame or the time). */
function pump(AMQPChannel $ch, float $seconds): void
{
    try {
        $ch->wait(null, false, $seconds);
    } catch (AMQPTimeoutException $e) {
        // nothing arrived: fine
    }
}

/** Processes a channel's frames for the whole of `$seconds`. */
function pump_for(AMQPChannel $ch, float $seconds): void
{
    $deadline = microtime(true) + $seconds;
    while (($left = $deadline - microtime(true)) > 0) {
        pump($ch, min($left, 0.1));
    }
}

/** basic.get with auto-ack until the queue is empty; returns the bodies in order. */
function drain(AMQPChannel $ch, string $queue): array
{
    $bodies = [];
    while (($msg = $ch->basic_get($queue, true)) !== null) {
        $bodies[] = $msg->getBody();
    }
    return $bodies;
}

/**
 * A test: one open connection and channel ($this->conn, $this->ch), more on request, all closed and every declared
 * queue and exchange deleted afterwards. Subclasses define public test* methods.
 */
abstract class TestCase
{
    /** @var AMQPStreamConnection */
    protected $conn;
    /** @var AMQPChannel */
    protected $ch;
    private $connections = [];
    private $queues = [];
    private $exchanges = [];

    public function setUp(): void
    {
        $this->conn = $this->connect();
        $this->ch = $this->conn->channel();
    }

    public function tearDown(): void
    {
        foreach (array_reverse($this->connections) as $conn) {
            close_quietly($conn);
        }
        if (!$this->queues && !$this->exchanges) {
            return;
        }
        $cleaner = connect();
        try {
            foreach ([['queue_delete', $this->queues], ['exchange_delete', $this->exchanges]] as [$method, $names]) {
                foreach ($names as $name) {
                    $ch = $cleaner->channel();
                    try {
                        $ch->$method($name);
                        $ch->close();
                    } catch (AMQPProtocolChannelException $e) {
                        // already gone, or exclusive to a connection that is now closed
                    }
                }
            }
        } finally {
            close_quietly($cleaner);
        }
    }

    protected function connect(int $heartbeat = 0): AMQPStreamConnection
    {
        $conn = connect($heartbeat);
        $this->connections[] = $conn;
        return $conn;
    }

    /** Declares a uniquely named queue on $this->ch and returns its name. */
    protected function queue(string $stem, bool $durable = false, bool $exclusive = false, array $arguments = []): string
    {
        $name = unique($stem);
        $this->queues[] = $name;
        $this->ch->queue_declare($name, false, $durable, $exclusive, false, false, new \PhpAmqpLib\Wire\AMQPTable($arguments));
        return $name;
    }

    protected function exchange(string $stem, string $type): string
    {
        $name = unique($stem);
        $this->exchanges[] = $name;
        $this->ch->exchange_declare($name, $type, false, false, false);
        return $name;
    }

    protected function deleteLater(?string $queue = null, ?string $exchange = null): void
    {
        if ($queue !== null) {
            $this->queues[] = $queue;
        }
        if ($exchange !== null) {
            $this->exchanges[] = $exchange;
        }
    }

    /** A server-named exclusive queue on `$ch`. */
    protected function serverNamedQueue(AMQPChannel $ch): string
    {
        [$name] = $ch->queue_declare('', false, false, true, false);
        return $name;
    }

    // --- observing the broker -----------------------------------------------------------------------------------

    /** The queue's ready-message count, by a passive declare on a throwaway channel. */
    protected function depth(string $queue): int
    {
        $ch = $this->conn->channel();
        try {
            [, $count] = $ch->queue_declare($queue, true);
            return $count;
        } finally {
            if ($ch->is_open()) {
                $ch->close();
            }
        }
    }

    protected function waitDepth(string $queue, int $expected, float $timeout = 5.0): void
    {
        $deadline = microtime(true) + $timeout;
        while (($seen = $this->depth($queue)) !== $expected) {
            if (microtime(true) > $deadline) {
                $this->fail("queue $queue holds $seen ready messages, expected $expected");
            }
            usleep(20000);
        }
    }

    protected function waitGone(string $queue, float $timeout = 5.0): void
    {
        $deadline = microtime(true) + $timeout;
        while (true) {
            try {
                $this->depth($queue);
            } catch (AMQPProtocolChannelException $e) {
                $this->assertEquals(404, $e->getCode(), $e->getMessage());
                return;
            }
            if (microtime(true) > $deadline) {
                $this->fail("queue $queue still exists after $timeout s");
            }
            usleep(50000);
        }
    }

    protected function waitFor(array $channels, callable $predicate, string $what, float $timeout = 5.0): void
    {
        if (!pump_until($channels, $predicate, $timeout)) {
            $this->fail("timed out after $timeout s waiting for $what");
        }
    }

    // --- assertions ---------------------------------------------------------------------------------------------

    protected function fail(string $message): void
    {
        throw new AssertionFailed($message);
    }

    protected function assertTrue($condition, string $message = 'assertion failed'): void
    {
        if ($condition !== true) {
            $this->fail($message);
        }
    }

    protected function assertEquals($expected, $actual, string $message = ''): void
    {
        if ($expected !== $actual) {
            $this->fail(($message !== '' ? "$message: " : '') . 'expected ' . var_export($expected, true)
                . ', got ' . var_export($actual, true));
        }
    }

    /**
     * Runs `$action` and checks that the broker closed the channel with `$code` and a reply text starting with
     * `$prefix` (RabbitMQ's close texts).
     */
    protected function assertChannelClosed(int $code, string $prefix, callable $action): AMQPProtocolChannelException
    {
        try {
            $action();
        } catch (AMQPProtocolChannelException $e) {
            $this->assertEquals($code, $e->getCode(), 'reply code (' . $e->getMessage() . ')');
            $this->assertTrue(strpos($e->getMessage(), $prefix) === 0,
                'reply text ' . var_export($e->getMessage(), true) . ' does not start with ' . var_export($prefix, true));
            return $e;
        }
        $this->fail("expected the broker to close the channel with $code, but nothing was raised");
    }
}

function close_quietly(AMQPStreamConnection $conn): void
{
    try {
        if ($conn->isConnected()) {
            $conn->close();
        }
    } catch (\Throwable $e) {
        // a connection the broker already dropped is fine to abandon here
    }
}

/** Runs every test* method of every TestCase subclass (or those whose name contains a pattern). Returns the exit status. */
function run(array $patterns): int
{
    $timeout = (int)(getenv('INTEROP_TEST_TIMEOUT') ?: 60);
    $passed = $failed = 0;
    $classes = array_filter(get_declared_classes(), function ($c) {
        return is_subclass_of($c, TestCase::class) && !(new \ReflectionClass($c))->isAbstract();
    });
    foreach ($classes as $class) {
        $methods = array_filter(get_class_methods($class), function ($m) {
            return strpos($m, 'test') === 0;
        });
        sort($methods);
        foreach ($methods as $method) {
            $name = (new \ReflectionClass($class))->getShortName() . '.' . $method;
            if ($patterns && !array_filter($patterns, function ($p) use ($name) {
                return strpos($name, $p) !== false;
            })) {
                continue;
            }
            $started = microtime(true);
            $error = null;
            $test = new $class();
            if (function_exists('pcntl_alarm')) {
                pcntl_alarm($timeout);  // a stuck test kills the process (SIGALRM): the summary is then missing
            }
            try {
                try {
                    $test->setUp();
                    $test->$method();
                } finally {
                    $test->tearDown();
                }
            } catch (\Throwable $e) {
                $error = $e;
            }
            if (function_exists('pcntl_alarm')) {
                pcntl_alarm(0);
            }
            $elapsed = microtime(true) - $started;
            if ($error) {
                $failed++;
                printf("%-5s %s (%.2fs)\n", 'FAIL', $name, $elapsed);
                printf("      %s: %s\n", get_class($error), $error->getMessage());
                foreach (array_slice(explode("\n", $error->getTraceAsString()), 0, 6) as $line) {
                    if (strpos($line, '/usr/share/php/') === false) {
                        echo "        $line\n";
                    }
                }
            } else {
                $passed++;
                printf("%-5s %s (%.2fs)\n", 'PASS', $name, $elapsed);
            }
        }
    }
    echo "interop-summary: passed=$passed failed=$failed skipped=0\n";
    return $failed ? 1 : 0;
}
