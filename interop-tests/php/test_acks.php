<?php
// basic.get and the ways a consumer settles a delivery (nack with and without requeue, reject), publisher confirms,
// mandatory publishing with basic.return, and a server-sent basic.cancel when a consumed queue is deleted.

namespace Interop;

use PhpAmqpLib\Channel\AMQPChannel;
use PhpAmqpLib\Exception\AMQPBasicCancelException;
use PhpAmqpLib\Message\AMQPMessage;

class Acks extends TestCase
{
    private $confirming = false;

    private function publish(string $queue, string ...$bodies): void
    {
        if (!$this->confirming) {
            $this->ch->confirm_select();
            $this->confirming = true;
        }
        foreach ($bodies as $body) {
            $this->ch->basic_publish(new AMQPMessage($body), '', $queue);
        }
        $this->ch->wait_for_pending_acks(5);
    }

    /** Consumes one message with manual ack on `$ch`, then cancels the consumer (its delivery stays unacked). */
    private function nextDelivery(AMQPChannel $ch, string $queue): AMQPMessage
    {
        $got = [];
        $tag = $ch->basic_consume($queue, '', false, false, false, false, function (AMQPMessage $m) use (&$got) {
            $got[] = $m;
        });
        $this->waitFor([$ch], function () use (&$got) {
            return count($got) > 0;
        }, 'a delivery');
        $ch->basic_cancel($tag);
        return $got[0];
    }

    public function testBasicGet(): void
    {
        $queue = $this->queue('get');
        $this->assertEquals(null, $this->ch->basic_get($queue), 'basic.get-empty on an empty queue');

        $this->publish($queue, 'a', 'b', 'c');
        $msg = $this->ch->basic_get($queue);
        $this->assertEquals('a', $msg->getBody());
        $this->assertEquals(2, $msg->getMessageCount(), 'basic.get-ok message_count counts what is left');
        $this->assertEquals(1, $msg->getDeliveryTag());
        $this->assertEquals(false, $msg->isRedelivered());
        $this->assertEquals(['', $queue], [$msg->getExchange(), $msg->getRoutingKey()]);
        $msg->ack();

        $msg = $this->ch->basic_get($queue, true);
        $this->assertEquals(['b', 1, 2], [$msg->getBody(), $msg->getMessageCount(), $msg->getDeliveryTag()]);
        $msg = $this->ch->basic_get($queue); // not acked
        $this->assertEquals(['c', 0, 3], [$msg->getBody(), $msg->getMessageCount(), $msg->getDeliveryTag()]);
        $this->assertEquals(null, $this->ch->basic_get($queue));

        // Closing the channel returns the unacked message, now marked redelivered.
        $this->ch->close();
        $this->ch = $this->conn->channel();
        $this->waitDepth($queue, 1);
        $msg = $this->ch->basic_get($queue, true);
        $this->assertEquals('c', $msg->getBody());
        $this->assertEquals(true, $msg->isRedelivered());
        $this->assertEquals(1, $msg->getDeliveryTag(), 'delivery tags are per channel and start at 1');
    }

    public function testNackWithRequeueRedelivers(): void
    {
        $queue = $this->queue('nack.requeue');
        $this->publish($queue, 'retry me');
        $consumer = $this->conn->channel();
        $msg = $this->nextDelivery($consumer, $queue);
        $this->assertEquals(['retry me', false], [$msg->getBody(), $msg->isRedelivered()]);
        $msg->nack(true);

        $msg = $this->nextDelivery($consumer, $queue);
        $this->assertEquals('retry me', $msg->getBody());
        $this->assertEquals(true, $msg->isRedelivered(), 'a nacked-and-requeued message comes back with redelivered=true');
        $msg->ack();
        usleep(200000);
        $this->assertEquals(0, $this->depth($queue));
        $this->assertEquals(null, $this->ch->basic_get($queue));
    }

    public function testNackWithoutRequeueDiscards(): void
    {
        $queue = $this->queue('nack.drop');
        $this->publish($queue, 'poison', 'fine');
        $msg = $this->ch->basic_get($queue);
        $this->assertEquals('poison', $msg->getBody());
        $msg->nack(false);
        $this->assertEquals('fine', $this->ch->basic_get($queue, true)->getBody());
        $this->assertEquals(null, $this->ch->basic_get($queue), 'a nack without requeue drops the message');
        // Not hidden somewhere either: closing the channel brings nothing back.
        $this->ch->close();
        usleep(200000);
        $this->assertEquals(0, $this->depth($queue));
    }

    public function testNackMultipleRequeuesAllUpToTheTag(): void
    {
        $queue = $this->queue('nack.multiple');
        $this->publish($queue, '1', '2', '3', '4');
        $tags = [];
        for ($i = 0; $i < 3; $i++) {
            $tags[] = $this->ch->basic_get($queue)->getDeliveryTag();
        }
        $this->assertEquals([1, 2, 3], $tags);
        $this->ch->basic_nack($tags[1], true, true); // settles 1 and 2, leaves 3 unacked
        $this->waitDepth($queue, 3);
        $got = [];
        for ($i = 0; $i < 3; $i++) {
            $msg = $this->ch->basic_get($queue, true);
            $got[] = [$msg->getBody(), $msg->isRedelivered()];
        }
        sort($got);
        $this->assertEquals([['1', true], ['2', true], ['4', false]], $got);
        $this->ch->basic_ack($tags[2]);
        $this->ch->close();
        usleep(200000);
        $this->assertEquals(0, $this->depth($queue));
    }

    public function testRejectWithAndWithoutRequeue(): void
    {
        $queue = $this->queue('reject');
        $this->publish($queue, 'm');
        $consumer = $this->conn->channel();
        $msg = $this->nextDelivery($consumer, $queue);
        $this->assertEquals(false, $msg->isRedelivered());
        $msg->reject(true);

        $msg = $this->nextDelivery($consumer, $queue);
        $this->assertEquals('m', $msg->getBody());
        $this->assertEquals(true, $msg->isRedelivered());
        $msg->reject(false);
        usleep(200000);
        $this->assertEquals(0, $this->depth($queue));
        $consumer->close();
        usleep(200000);
        $this->assertEquals(0, $this->depth($queue), 'a message rejected without requeue must not come back');
    }
}

class PublisherConfirms extends TestCase
{
    public function testConfirmedPublishesAreAckedAndEnqueued(): void
    {
        $queue = $this->queue('confirm', true);
        $acked = [];
        $nacked = [];
        $this->ch->set_ack_handler(function (AMQPMessage $m) use (&$acked) {
            $acked[] = $m->getBody();
        });
        $this->ch->set_nack_handler(function (AMQPMessage $m) use (&$nacked) {
            $nacked[] = $m->getBody();
        });
        $this->ch->confirm_select();
        for ($i = 0; $i < 50; $i++) {
            $this->ch->basic_publish(new AMQPMessage("persistent-$i", ['delivery_mode' => 2]), '', $queue);
        }
        for ($i = 0; $i < 50; $i++) {
            $this->ch->basic_publish(new AMQPMessage("transient-$i"), '', $queue);
        }
        $this->ch->wait_for_pending_acks(10);
        $this->assertEquals(100, count($acked), 'acked publishes');
        $this->assertEquals([], $nacked, 'nacked publishes');
        $this->assertEquals(100, $this->depth($queue));
        $bodies = drain($this->ch, $queue);
        $this->assertEquals(['persistent-0', 'persistent-1'], array_slice($bodies, 0, 2));
        $this->assertEquals('transient-49', end($bodies));
    }

    public function testMandatoryUnroutableIsReturned(): void
    {
        $returned = [];
        $acked = 0;
        $this->ch->set_return_listener(function ($code, $text, $exchange, $key, AMQPMessage $m) use (&$returned) {
            $returned[] = [$code, $text, $exchange, $key, $m->getBody(), $m->get('message_id')];
        });
        $this->ch->set_ack_handler(function () use (&$acked) {
            $acked++;
        });
        $this->ch->confirm_select();
        $key = unique('nowhere');
        $this->ch->basic_publish(new AMQPMessage('lost', ['message_id' => 'm-1']), 'amq.direct', $key, true);
        $this->ch->wait_for_pending_acks_returns(5);
        $this->assertEquals([[312, 'NO_ROUTE', 'amq.direct', $key, 'lost', 'm-1']], $returned);
        $this->assertEquals(1, $acked, 'an unroutable message is still confirmed (acked)');

        // Without mandatory an unroutable message is confirmed and dropped silently; a routable one is not returned.
        $this->ch->basic_publish(new AMQPMessage('dropped'), 'amq.direct', $key);
        $queue = $this->queue('routable');
        $this->ch->basic_publish(new AMQPMessage('kept'), '', $queue, true);
        $this->ch->wait_for_pending_acks_returns(5);
        $this->assertEquals(3, $acked);
        $this->assertEquals(1, count($returned), 'only the mandatory unroutable publish comes back');
        $this->assertEquals(['kept'], drain($this->ch, $queue));
    }
}

class ConsumerCancelledByServer extends TestCase
{
    public function testDeletingTheQueueCancelsItsConsumer(): void
    {
        $queue = $this->queue('cancel');
        $tag = $this->ch->basic_consume($queue, '', false, true, false, false, function () {
        });
        $this->connect()->channel()->queue_delete($queue);

        $cancelled = null;
        $deadline = microtime(true) + 5;
        while ($cancelled === null && microtime(true) < $deadline) {
            try {
                pump($this->ch, 0.1);
            } catch (AMQPBasicCancelException $e) {
                // php-amqplib turns the server's basic.cancel into this exception
                $cancelled = $e->getConsumerTag();
            }
        }
        $this->assertEquals($tag, $cancelled, 'basic.cancel from the server for our consumer');
        $this->assertTrue($this->ch->is_open(), 'a server-side cancel must leave the channel open');
        $spare = $this->serverNamedQueue($this->ch);
        $this->assertEquals(null, $this->ch->basic_get($spare), 'the channel still works');
    }
}
