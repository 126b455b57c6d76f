<?php
// Channel errors as php-amqplib raises them (reply codes and RabbitMQ's close texts), and that the connection
// survives them.

namespace Interop;

use PhpAmqpLib\Connection\AbstractConnection;
use PhpAmqpLib\Message\AMQPMessage;
use PhpAmqpLib\Wire\AMQPTable;

class ChannelErrors extends TestCase
{
    private function assertConnectionStillUsable(AbstractConnection $conn): void
    {
        $ch = $conn->channel();
        $queue = $this->serverNamedQueue($ch);
        $ch->basic_publish(new AMQPMessage('still fine'), '', $queue);
        $ch->close();
    }

    public function testExclusiveQueueFromAnotherConnectionIs405(): void
    {
        $queue = $this->queue('exclusive', false, true);
        $other = $this->connect();
        $locked = "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '$queue' in vhost '/'";

        $this->assertChannelClosed(405, $locked, function () use ($other, $queue) {
            $other->channel()->queue_declare($queue, false, false, true, false);
        });
        $this->assertChannelClosed(405, $locked, function () use ($other, $queue) {
            $other->channel()->queue_declare($queue, true);
        });
        $this->assertChannelClosed(405, $locked, function () use ($other, $queue) {
            $other->channel()->basic_consume($queue, '', false, true, false, false, function () {
            });
        });
        $this->assertChannelClosed(405, $locked, function () use ($other, $queue) {
            $other->channel()->basic_get($queue, true);
        });
        $this->assertChannelClosed(405, $locked, function () use ($other, $queue) {
            $other->channel()->queue_delete($queue);
        });
        $this->assertTrue($other->isConnected(), 'a channel error must not close the connection');
        $this->assertConnectionStillUsable($other);

        // The owner is unaffected.
        $this->ch->basic_publish(new AMQPMessage('mine'), '', $queue);
        $this->waitDepth($queue, 1);
    }

    public function testPassiveDeclareOfMissingQueueIs404(): void
    {
        $missing = unique('no-such-queue');
        $e = $this->assertChannelClosed(404, "NOT_FOUND - no queue '$missing' in vhost '/'", function () use ($missing) {
            $this->ch->queue_declare($missing, true);
        });
        $this->assertEquals("NOT_FOUND - no queue '$missing' in vhost '/'", $e->getMessage());
        $this->assertEquals(false, $this->ch->is_open(), 'the channel is closed after the error');
        $this->assertTrue($this->conn->isConnected(), 'a channel error must not close the connection');
        $this->assertConnectionStillUsable($this->conn);
    }

    public function testPassiveDeclareOfMissingExchangeIs404(): void
    {
        $missing = unique('no-such-exchange');
        $this->assertChannelClosed(404, "NOT_FOUND - no exchange '$missing' in vhost '/'", function () use ($missing) {
            $this->ch->exchange_declare($missing, 'direct', true);
        });
    }

    public function testRedeclareWithOtherArgumentsIs406(): void
    {
        $queue = $this->queue('args', false, false, ['x-message-ttl' => 60000]);
        // The same arguments again are fine.
        $this->ch->queue_declare($queue, false, false, false, false, false, new AMQPTable(['x-message-ttl' => 60000]));

        $this->assertChannelClosed(406,
            "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '$queue' in vhost '/'",
            function () use ($queue) {
                $this->ch->queue_declare($queue, false, false, false, false, false, new AMQPTable(['x-message-ttl' => 1000]));
            });
        $this->ch = $this->conn->channel();
        $this->assertChannelClosed(406,
            "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '$queue' in vhost '/'",
            function () use ($queue) {
                $this->ch->queue_declare($queue, false, true, false, false, false, new AMQPTable(['x-message-ttl' => 60000]));
            });
        $this->ch = $this->conn->channel();
        $exchange = $this->exchange('args', 'direct');
        $this->assertChannelClosed(406,
            "PRECONDITION_FAILED - inequivalent arg 'type' for exchange '$exchange' in vhost '/'",
            function () use ($exchange) {
                $this->ch->exchange_declare($exchange, 'fanout', false, false, false);
            });
        // The queue kept its original definition.
        $this->ch = $this->conn->channel();
        $this->ch->queue_declare($queue, false, false, false, false, false, new AMQPTable(['x-message-ttl' => 60000]));
        $this->assertConnectionStillUsable($this->conn);
    }

    public function testWrongPasswordIsRefused(): void
    {
        foreach (['AMQPLAIN', 'PLAIN'] as $method) {
            try {
                connect(0, 'definitely-not-the-password', $method)->close();
                $this->fail("a wrong password was accepted ($method)");
            } catch (\PhpAmqpLib\Exception\AMQPConnectionClosedException $e) {
                // RabbitMQ advertises authentication_failure_close and closes with 403 ACCESS_REFUSED.
                $this->assertEquals(403, $e->getCode(), "close code for a wrong password ($method): " . $e->getMessage());
                $this->assertTrue(strpos($e->getMessage(), 'ACCESS_REFUSED') === 0, $e->getMessage());
            }
        }
        // And the right password works with both mechanisms.
        connect(0, null, 'PLAIN')->close();
        connect(0, null, 'AMQPLAIN')->close();
    }
}
