// Direct reply-to (amq.rabbitmq.reply-to) with amqplib: an RPC round trip across two connections, and the 406 for a
// reply consumer that would acknowledge.
'use strict';

const assert = require('node:assert/strict');

const { assertChannelClosed, waitFor } = require('./harness');

const PSEUDO = 'amq.rabbitmq.reply-to';
const BASIC_CONSUME = { classId: 60, methodId: 20 };

const tests = {
  async rpc_round_trip_across_connections(t) {
    const requests = await t.queue('rpc');
    const replies = [];
    await t.ch.consume(PSEUDO, (msg) => replies.push(msg), { noAck: true });
    t.ch.sendToQueue(requests, Buffer.from('ping'), { replyTo: PSEUDO, correlationId: 'c1' });

    // The responder, on another connection, answers to whatever reply_to the request carries.
    const responder = await t.channel(await t.connect(), { confirm: true });
    const seen = [];
    await responder.consume(
      requests,
      (msg) => {
        seen.push(msg);
        responder.publish('', msg.properties.replyTo, Buffer.from(`pong:${msg.content}`), {
          correlationId: msg.properties.correlationId,
        });
      },
      { noAck: true },
    );
    await waitFor(() => replies.length > 0, { what: 'the reply' });

    assert.equal(seen.length, 1);
    const replyTo = seen[0].properties.replyTo;
    assert.ok(replyTo.startsWith(`${PSEUDO}.`), `the broker rewrote reply_to to a reply name, not ${replyTo}`);
    assert.equal(seen[0].properties.correlationId, 'c1');
    await responder.waitForConfirms();

    const [reply] = replies;
    assert.equal(reply.content.toString(), 'pong:ping');
    assert.equal(reply.properties.correlationId, 'c1');
    assert.equal(reply.fields.exchange, '');
    assert.equal(reply.fields.routingKey, replyTo);
    assert.equal(replies.length, 1, 'one reply only');
    assert.equal(t.ch.isClosed, false);
  },

  async reply_consumer_must_be_no_ack(t) {
    await assertChannelClosed(() => t.ch.consume(PSEUDO, () => {}, { noAck: false }), {
      code: 406,
      text: 'PRECONDITION_FAILED - reply consumer cannot acknowledge',
      ...BASIC_CONSUME,
    });
    assert.equal(t.conn.isClosed, false, 'a channel error must not close the connection');
  },
};

module.exports = { tests };
