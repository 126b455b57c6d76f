<?php
// Direct reply-to (amq.rabbitmq.reply-to) with php-amqplib: an RPC round trip across two connections.

namespace Interop;

use PhpAmqpLib\Message\AMQPMessage;

class DirectReplyTo extends TestCase
{
    private const PSEUDO = 'amq.rabbitmq.reply-to';

    public function testRpcRoundTripAcrossConnections(): void
    {
        $requests = $this->queue('rpc');

        // The requester consumes the pseudo-queue with no-ack before it publishes.
        $replies = [];
        $this->ch->basic_consume(self::PSEUDO, '', false, true, false, false, function (AMQPMessage $m) use (&$replies) {
            $replies[] = $m;
        });

        // The responder, on another connection, answers to whatever reply_to the request carries.
        $responder = $this->connect()->channel();
        $seen = [];
        $responder->basic_consume($requests, '', false, true, false, false, function (AMQPMessage $req) use (&$seen) {
            $seen[] = $req;
            $reply = new AMQPMessage('pong:' . $req->getBody(), ['correlation_id' => $req->get('correlation_id')]);
            $req->getChannel()->basic_publish($reply, '', $req->get('reply_to'));
        });

        $this->ch->basic_publish(
            new AMQPMessage('ping', ['reply_to' => self::PSEUDO, 'correlation_id' => 'c1']),
            '',
            $requests
        );
        $this->waitFor([$responder, $this->ch], function () use (&$replies) {
            return count($replies) > 0;
        }, 'the reply');

        $this->assertEquals(1, count($seen), 'requests seen');
        $replyTo = $seen[0]->get('reply_to');
        $this->assertTrue(strpos($replyTo, self::PSEUDO . '.') === 0,
            "the broker rewrote reply_to to a reply name, not '$replyTo'");
        $this->assertEquals('c1', $seen[0]->get('correlation_id'), "the request's correlation id");
        $reply = $replies[0];
        $this->assertEquals('pong:ping', $reply->getBody(), 'reply body');
        $this->assertEquals('c1', $reply->get('correlation_id'), 'reply correlation id');
        $this->assertEquals('', $reply->getExchange(), 'reply exchange');
        $this->assertEquals($replyTo, $reply->getRoutingKey(), 'reply routing key');
        pump_for($this->ch, 0.2);
        $this->assertEquals(1, count($replies), 'one reply only');
        $this->assertTrue($this->ch->is_open(), "the requester's channel is open");
    }
}
