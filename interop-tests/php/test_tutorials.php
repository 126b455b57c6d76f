<?php
// The six RabbitMQ tutorials (rabbitmq.com/tutorials, PHP/php-amqplib), each turned into assertions on what arrives.

namespace Interop;

use PhpAmqpLib\Message\AMQPMessage;

class Tutorials extends TestCase
{
    public function testTutorial1HelloWorld(): void
    {
        $queue = $this->queue('hello');
        $this->ch->basic_publish(new AMQPMessage('Hello World!'), '', $queue);

        $received = [];
        $tag = $this->ch->basic_consume($queue, '', false, true, false, false, function (AMQPMessage $msg) use (&$received) {
            $received[] = $msg;
        });
        $this->waitFor([$this->ch], function () use (&$received) {
            return count($received) > 0;
        }, 'the message', 10);
        $this->ch->basic_cancel($tag);

        $this->assertEquals(1, count($received));
        $msg = $received[0];
        $this->assertEquals('Hello World!', $msg->getBody());
        $this->assertEquals('', $msg->getExchange());
        $this->assertEquals($queue, $msg->getRoutingKey());
        $this->assertEquals(false, $msg->isRedelivered());
        $this->assertEquals(0, $this->depth($queue));
    }

    public function testTutorial2WorkQueuesFairDispatchAndRedelivery(): void
    {
        $queue = $this->queue('task_queue', true);
        $this->ch->confirm_select();
        $persistent = ['delivery_mode' => AMQPMessage::DELIVERY_MODE_PERSISTENT];

        $workerA = $this->connect()->channel();
        $workerA->basic_qos(null, 1, null);
        $gotA = [];
        $workerA->basic_consume($queue, '', false, false, false, false, function (AMQPMessage $m) use (&$gotA) {
            $gotA[] = $m;
        });
        $this->ch->basic_publish(new AMQPMessage('task1', $persistent), '', $queue);
        $this->waitFor([$workerA], function () use (&$gotA) {
            return count($gotA) > 0;
        }, "worker A's task");

        $workerB = $this->connect()->channel();
        $workerB->basic_qos(null, 1, null);
        $gotB = [];
        $workerB->basic_consume($queue, '', false, false, false, false, function (AMQPMessage $m) use (&$gotB) {
            $gotB[] = $m;
        });
        $this->ch->basic_publish(new AMQPMessage('task2', $persistent), '', $queue);
        $this->ch->basic_publish(new AMQPMessage('task3', $persistent), '', $queue);
        $this->ch->wait_for_pending_acks(5);
        $this->waitFor([$workerB], function () use (&$gotB) {
            return count($gotB) > 0;
        }, "worker B's task");

        // prefetch 1: each worker holds one unacked task, the third waits in the queue.
        pump_for($workerA, 0.3);
        pump_for($workerB, 0.3);
        $bodies = function (array $msgs) {
            return array_map(function (AMQPMessage $m) {
                return $m->getBody();
            }, $msgs);
        };
        $this->assertEquals(['task1'], $bodies($gotA));
        $this->assertEquals(['task2'], $bodies($gotB));
        $this->assertEquals(false, $gotA[0]->isRedelivered());
        $this->assertEquals(2, $gotA[0]->get('delivery_mode'));
        $this->waitDepth($queue, 1);

        // Worker A's channel closes without acking: its task goes back to the queue, B is still busy.
        $workerA->close();
        $this->waitDepth($queue, 2);
        pump_for($workerB, 0.3);
        $this->assertEquals(['task2'], $bodies($gotB));

        // B acks and gets task1 (requeued to its original position, ahead of task3) marked redelivered, then task3.
        $gotB[0]->ack();
        $this->waitFor([$workerB], function () use (&$gotB) {
            return count($gotB) == 2;
        }, 'task1 redelivered to B');
        $this->assertEquals('task1', $gotB[1]->getBody());
        $this->assertEquals(true, $gotB[1]->isRedelivered(), 'a requeued message must arrive with redelivered=true');
        $gotB[1]->ack();
        $this->waitFor([$workerB], function () use (&$gotB) {
            return count($gotB) == 3;
        }, 'task3 at B');
        $this->assertEquals('task3', $gotB[2]->getBody());
        $this->assertEquals(false, $gotB[2]->isRedelivered());
        $gotB[2]->ack();
        $this->waitDepth($queue, 0);
    }

    public function testTutorial3PublishSubscribeFanout(): void
    {
        $exchange = $this->exchange('logs', 'fanout');
        $this->ch->confirm_select();
        $this->ch->basic_publish(new AMQPMessage('before anyone listens'), $exchange);
        $this->ch->wait_for_pending_acks(5);

        $subscribers = [];
        for ($i = 0; $i < 2; $i++) {
            $ch = $this->connect()->channel();
            $queue = $this->serverNamedQueue($ch);
            $this->assertTrue(strpos($queue, 'amq.gen-') === 0, "server-named queue $queue");
            $ch->queue_bind($queue, $exchange);
            $subscribers[] = [$ch, $queue];
        }
        $this->assertTrue($subscribers[0][1] !== $subscribers[1][1], 'two server-named queues got the same name');

        $this->ch->basic_publish(new AMQPMessage('log-1'), $exchange, 'ignored.key');
        $this->ch->basic_publish(new AMQPMessage('log-2'), $exchange);
        $this->ch->wait_for_pending_acks(5);
        foreach ($subscribers as [$ch, $queue]) {
            $got = [];
            $ch->basic_consume($queue, '', false, true, false, false, function (AMQPMessage $m) use (&$got) {
                $got[] = [$m->getExchange(), $m->getBody()];
            });
            $this->waitFor([$ch], function () use (&$got) {
                return count($got) >= 2;
            }, 'two log lines');
            pump_for($ch, 0.1);
            $this->assertEquals([[$exchange, 'log-1'], [$exchange, 'log-2']], $got);
        }

        // An exclusive queue goes away with its connection.
        [$firstCh, $firstQueue] = $subscribers[0];
        $firstCh->getConnection()->close();
        $this->waitGone($firstQueue);
    }

    public function testTutorial4RoutingDirect(): void
    {
        $exchange = $this->exchange('direct_logs', 'direct');
        $errorsOnly = $this->serverNamedQueue($this->ch);
        $this->ch->queue_bind($errorsOnly, $exchange, 'error');
        $everything = $this->serverNamedQueue($this->ch);
        foreach (['info', 'warning', 'error'] as $severity) {
            $this->ch->queue_bind($everything, $exchange, $severity);
        }

        $this->ch->confirm_select();
        foreach (['info', 'warning', 'error', 'debug'] as $severity) {
            $this->ch->basic_publish(new AMQPMessage($severity), $exchange, $severity);
        }
        $this->ch->wait_for_pending_acks(5);
        $this->assertEquals(['error'], drain($this->ch, $errorsOnly));
        $this->assertEquals(['info', 'warning', 'error'], drain($this->ch, $everything));

        // Unbinding stops the flow for that key only.
        $this->ch->queue_unbind($everything, $exchange, 'info');
        $this->ch->basic_publish(new AMQPMessage('info-2'), $exchange, 'info');
        $this->ch->basic_publish(new AMQPMessage('warning-2'), $exchange, 'warning');
        $this->ch->wait_for_pending_acks(5);
        $this->assertEquals(['warning-2'], drain($this->ch, $everything));
    }

    public function testTutorial5Topics(): void
    {
        $exchange = $this->exchange('topic_logs', 'topic');
        $q1 = $this->serverNamedQueue($this->ch);
        $this->ch->queue_bind($q1, $exchange, '*.orange.*');
        $q2 = $this->serverNamedQueue($this->ch);
        $this->ch->queue_bind($q2, $exchange, '*.*.rabbit');
        $this->ch->queue_bind($q2, $exchange, 'lazy.#');
        $all = $this->serverNamedQueue($this->ch);
        $this->ch->queue_bind($all, $exchange, '#');

        $keys = [
            'quick.orange.rabbit',      // Q1, Q2
            'lazy.orange.elephant',     // Q1, Q2
            'quick.orange.fox',         // Q1
            'lazy.brown.fox',           // Q2
            'lazy.pink.rabbit',         // Q2, once although two bindings match
            'quick.brown.fox',          // nobody but '#'
            'orange',                   // nobody but '#'
            'quick.orange.male.rabbit', // nobody but '#'
            'lazy.orange.male.rabbit',  // Q2
            'lazy',                     // Q2: '#' matches zero words
        ];
        $this->ch->confirm_select();
        foreach ($keys as $key) {
            $this->ch->basic_publish(new AMQPMessage($key), $exchange, $key);
        }
        $this->ch->wait_for_pending_acks(5);

        $this->assertEquals(['quick.orange.rabbit', 'lazy.orange.elephant', 'quick.orange.fox'], drain($this->ch, $q1));
        $this->assertEquals(['quick.orange.rabbit', 'lazy.orange.elephant', 'lazy.brown.fox', 'lazy.pink.rabbit',
            'lazy.orange.male.rabbit', 'lazy'], drain($this->ch, $q2));
        $this->assertEquals($keys, drain($this->ch, $all));
    }

    public function testTutorial6RpcWithExclusiveReplyQueueAndCorrelationId(): void
    {
        $rpcQueue = $this->queue('rpc_queue');
        $fib = function (int $n) use (&$fib) {
            return $n < 2 ? $n : $fib($n - 1) + $fib($n - 2);
        };

        $server = $this->connect()->channel();
        $server->basic_qos(null, 1, null);
        $server->basic_consume($rpcQueue, '', false, false, false, false, function (AMQPMessage $req) use ($fib) {
            $reply = new AMQPMessage((string)$fib((int)$req->getBody()), ['correlation_id' => $req->get('correlation_id')]);
            $req->getChannel()->basic_publish($reply, '', $req->get('reply_to'));
            $req->ack();
        });

        $client = $this->connect()->channel();
        $callbackQueue = $this->serverNamedQueue($client);
        $this->assertTrue(strpos($callbackQueue, 'amq.gen-') === 0, "server-named reply queue $callbackQueue");
        $responses = [];
        $client->basic_consume($callbackQueue, '', false, true, false, false, function (AMQPMessage $m) use (&$responses) {
            $responses[$m->get('correlation_id')] = (int)$m->getBody();
        });

        $requests = [];
        foreach ([0, 1, 10, 20] as $n) {
            $correlationId = bin2hex(random_bytes(16));
            $requests[$correlationId] = $n;
            $client->basic_publish(
                new AMQPMessage((string)$n, ['reply_to' => $callbackQueue, 'correlation_id' => $correlationId]),
                '',
                $rpcQueue
            );
        }
        $this->waitFor([$server, $client], function () use (&$responses, $requests) {
            return count($responses) >= count($requests);
        }, count($requests) . ' RPC replies', 10);
        $expected = array_map($fib, $requests);
        ksort($expected);
        ksort($responses);
        $this->assertEquals($expected, $responses);
    }
}
