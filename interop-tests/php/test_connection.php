<?php
// Connection-level behaviour (heartbeat negotiation and liveness, a 16 MiB message over many body frames, properties
// and headers) and AMQP transactions.

namespace Interop;

use PhpAmqpLib\Message\AMQPMessage;
use PhpAmqpLib\Wire\AMQPTable;

class Heartbeats extends TestCase
{
    public function testServerProposes60Seconds(): void
    {
        // php-amqplib takes the lower of its own value and the server's connection.tune value.
        $this->assertEquals(60, $this->connect(600)->getHeartbeat(), 'negotiated from a client proposal of 600 s');
        $this->assertEquals(0, $this->connect(0)->getHeartbeat(), 'php-amqplib disables heartbeats when it asks for 0');
    }

    public function testNegotiatedHeartbeatKeepsAnIdleConnectionOpen(): void
    {
        $conn = $this->connect(2);
        $this->assertEquals(2, $conn->getHeartbeat());
        $ch = $conn->channel();
        $io = $conn->getIO();
        $lastRead = new \ReflectionProperty($io, 'last_read');
        $lastRead->setAccessible(true);

        // Idle for 6 s, waiting on the socket: php-amqplib sends its heartbeats from the wait loop and reads the
        // broker's. The broker sends one every timeout/2 = 1 s, so the last read is never older than ~1 s.
        $oldest = 0.0;
        $deadline = microtime(true) + 6;
        while (microtime(true) < $deadline) {
            pump($ch, 0.25);
            $oldest = max($oldest, microtime(true) - $lastRead->getValue($io));
        }
        $this->assertTrue($conn->isConnected(), 'connection closed during 6 s of heartbeats');
        $this->assertTrue($oldest < 2.5, sprintf('the broker was silent for %.1f s with a 2 s heartbeat', $oldest));

        $queue = $this->serverNamedQueue($ch);
        $ch->confirm_select();
        $ch->basic_publish(new AMQPMessage('alive'), '', $queue);
        $ch->wait_for_pending_acks(5);
        $this->assertEquals(['alive'], drain($ch, $queue));
    }
}

class LargeMessages extends TestCase
{
    public function test16MibMessageRoundTrip(): void
    {
        $queue = $this->queue('large');
        $body = str_repeat(random_bytes(1024), 16 * 1024); // 16 MiB, 128+ body frames at frame_max 131072
        $this->assertEquals(16 * 1024 * 1024, strlen($body));
        $this->ch->confirm_select();
        $this->ch->basic_publish(new AMQPMessage($body, ['message_id' => 'big']), '', $queue);
        $this->ch->wait_for_pending_acks(30);

        $got = null;
        $tag = $this->ch->basic_consume($queue, '', false, false, false, false, function (AMQPMessage $m) use (&$got) {
            $m->ack();
            $got = $m;
        });
        $this->waitFor([$this->ch], function () use (&$got) {
            return $got !== null;
        }, 'the 16 MiB delivery', 30);
        $this->ch->basic_cancel($tag);
        $this->assertEquals('big', $got->get('message_id'));
        $this->assertEquals(strlen($body), strlen($got->getBody()));
        $this->assertEquals(hash('sha256', $body), hash('sha256', $got->getBody()));
    }
}

class Properties extends TestCase
{
    public function testPropertiesAndHeadersRoundTrip(): void
    {
        $queue = $this->queue('props');
        $headers = [
            'string' => 'plain',
            'unicode' => "h\u{e9}llo \u{2713}",
            'int' => 42,
            'negative' => -7,
            'long' => 2 ** 40,
            'true' => true,
            'false' => false,
            'array' => [1, 'two', [3]],
            'table' => ['nested' => ['deeper' => 'yes'], 'n' => 1],
        ];
        [, , $user] = broker();
        $sent = [
            'content_type' => 'application/json',
            'content_encoding' => 'utf-8',
            'delivery_mode' => 2,
            'priority' => 5,
            'correlation_id' => 'corr-1',
            'reply_to' => 'reply.here',
            'expiration' => '60000',
            'message_id' => 'msg-1',
            'timestamp' => 1700000000,
            'type' => 'order.created',
            'user_id' => $user, // RabbitMQ refuses a user_id other than the authenticated user
            'app_id' => 'interop',
        ];
        $this->ch->confirm_select();
        $this->ch->basic_publish(
            new AMQPMessage('{"k": 1}', $sent + ['application_headers' => new AMQPTable($headers)]), '', $queue);
        $this->ch->basic_publish(new AMQPMessage(''), '', $queue); // no properties at all, empty body
        $this->ch->wait_for_pending_acks(5);

        $msg = $this->ch->basic_get($queue, true);
        $this->assertEquals('{"k": 1}', $msg->getBody());
        foreach ($sent as $name => $value) {
            $this->assertEquals($value, $msg->get($name), $name);
        }
        $this->assertEquals($headers, $msg->get('application_headers')->getNativeData(), 'headers');

        $msg = $this->ch->basic_get($queue, true);
        $this->assertEquals('', $msg->getBody());
        $this->assertEquals([], $msg->get_properties(), 'a message published without properties has none');
    }
}

class Transactions extends TestCase
{
    public function testTxCommitMakesPublishesAndAcksTakeEffect(): void
    {
        $queue = $this->queue('tx.commit');
        $this->ch->tx_select();
        $this->ch->basic_publish(new AMQPMessage('a'), '', $queue);
        $this->ch->basic_publish(new AMQPMessage('b'), '', $queue);
        usleep(300000);
        $this->assertEquals(0, $this->depth($queue), 'uncommitted publishes must not be visible');
        $this->ch->tx_commit();
        $this->waitDepth($queue, 2);

        $a = $this->ch->basic_get($queue);
        $b = $this->ch->basic_get($queue);
        $this->assertEquals(['a', 'b'], [$a->getBody(), $b->getBody()]);
        $a->ack();
        $b->ack();
        $this->ch->tx_commit();
        // The acks were committed: closing the channel requeues nothing.
        $this->ch->close();
        usleep(300000);
        $this->assertEquals(0, $this->depth($queue));
    }

    public function testTxRollbackDiscardsPublishesAndAcks(): void
    {
        $queue = $this->queue('tx.rollback');
        $this->ch->tx_select();
        $this->ch->basic_publish(new AMQPMessage('discarded'), '', $queue);
        $this->ch->tx_rollback();
        $this->ch->basic_publish(new AMQPMessage('kept'), '', $queue);
        $this->ch->tx_commit();
        $this->waitDepth($queue, 1);
        usleep(200000);
        $this->assertEquals(1, $this->depth($queue), 'the rolled-back publish must never arrive');

        $msg = $this->ch->basic_get($queue);
        $this->assertEquals('kept', $msg->getBody());
        $msg->ack();
        $this->ch->tx_rollback();
        // The ack was rolled back, so the message is still unacked here and comes back when the channel closes.
        $this->ch->close();
        $this->waitDepth($queue, 1);
        $msg = $this->conn->channel()->basic_get($queue, true);
        $this->assertEquals('kept', $msg->getBody());
        $this->assertEquals(true, $msg->isRedelivered());
    }
}
