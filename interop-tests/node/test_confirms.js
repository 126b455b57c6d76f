// Publisher confirms through amqplib's ConfirmChannel (per-publish callbacks and waitForConfirms), and mandatory
// publishing: an unroutable mandatory message comes back as a 'return' event before its confirm.
'use strict';

const assert = require('node:assert/strict');

const { drain, unique, waitFor } = require('./harness');

const tests = {
  async confirm_channel_calls_back_once_per_publish(t) {
    const queue = await t.queue('confirm', { durable: true });
    const ch = await t.channel(t.conn, { confirm: true });
    const outcomes = new Array(100).fill(undefined);
    for (let i = 0; i < 50; i++) {
      ch.sendToQueue(queue, Buffer.from(`persistent-${i}`), { persistent: true }, (err) => {
        assert.equal(outcomes[i], undefined, `confirm callback ${i} called twice`);
        outcomes[i] = err;
      });
    }
    for (let i = 50; i < 100; i++) {
      ch.sendToQueue(queue, Buffer.from(`transient-${i - 50}`), {}, (err) => {
        assert.equal(outcomes[i], undefined, `confirm callback ${i} called twice`);
        outcomes[i] = err;
      });
    }
    await ch.waitForConfirms();
    // Every callback ran with null (an ack); a nack would pass an Error.
    assert.deepEqual(outcomes, new Array(100).fill(null));
    assert.equal(await t.depth(queue), 100);
    const bodies = await drain(t.ch, queue);
    assert.deepEqual(bodies.slice(0, 2), ['persistent-0', 'persistent-1']);
    assert.equal(bodies[99], 'transient-49');
  },

  async mandatory_unroutable_is_returned_then_confirmed(t) {
    const ch = await t.channel(t.conn, { confirm: true });
    const events = [];
    ch.on('return', (msg) => events.push(['return', msg]));
    const publish = (exchange, key, body, options) =>
      new Promise((resolve) => {
        ch.publish(exchange, key, Buffer.from(body), options, (err) => {
          events.push([err ? 'nack' : 'ack', body]);
          resolve();
        });
      });

    const key = unique('nowhere');
    await publish('amq.direct', key, 'lost', { mandatory: true, messageId: 'm-1' });
    // RabbitMQ sends basic.return before the basic.ack of an unroutable mandatory message.
    assert.deepEqual(
      events.map(([kind]) => kind),
      ['return', 'ack'],
    );
    const returned = events[0][1];
    assert.equal(returned.fields.replyCode, 312);
    assert.equal(returned.fields.replyText, 'NO_ROUTE');
    assert.equal(returned.fields.exchange, 'amq.direct');
    assert.equal(returned.fields.routingKey, key);
    assert.equal(returned.content.toString(), 'lost');
    assert.equal(returned.properties.messageId, 'm-1');

    // The same through the default exchange to a queue that does not exist.
    events.length = 0;
    const missing = unique('no-such-queue');
    await publish('', missing, 'lost again', { mandatory: true });
    assert.deepEqual(
      events.map(([kind]) => kind),
      ['return', 'ack'],
    );
    assert.equal(events[0][1].fields.routingKey, missing);

    // Without mandatory an unroutable message is confirmed and dropped silently; a routable mandatory one is kept.
    events.length = 0;
    await publish('amq.direct', key, 'dropped', {});
    const queue = await t.queue('routable');
    await publish('', queue, 'kept', { mandatory: true });
    assert.deepEqual(
      events.map(([kind]) => kind),
      ['ack', 'ack'],
    );
    assert.deepEqual(await drain(t.ch, queue), ['kept']);
    assert.equal(ch.isClosed, false, 'the channel stays open');
  },

  async mandatory_return_without_confirms(t) {
    const returns = [];
    t.ch.on('return', (msg) => returns.push(msg));
    const key = unique('nowhere');
    t.ch.publish('amq.direct', key, Buffer.from('plain channel'), { mandatory: true, correlationId: 'c-9' });
    await waitFor(() => returns.length, { what: 'basic.return' });
    assert.equal(returns[0].fields.replyCode, 312);
    assert.equal(returns[0].fields.routingKey, key);
    assert.equal(returns[0].properties.correlationId, 'c-9');
    assert.equal(returns[0].content.toString(), 'plain channel');
  },
};

module.exports = { tests };
