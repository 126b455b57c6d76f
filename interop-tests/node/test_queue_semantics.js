// Queue semantics as amqplib applications rely on them: message TTL and per-message expiration, length limits
// (drop-head, and reject-publish nacked to a confirm channel), dead-lettering with x-death (a retry loop), message and
// consumer priorities, single active consumer, the quorum queue delivery limit and queue expiry. Each test passes
// against RabbitMQ 3.10 as well.
'use strict';

const assert = require('node:assert/strict');

const { drain, sleep, unique, waitFor } = require('./harness');

/** Publishes messages ([body, options] pairs or bodies) on a confirm channel and waits until the broker acked all. */
async function publish(t, queue, ...messages) {
  if (!t.confirming) t.confirming = await t.channel(t.conn, { confirm: true });
  for (const message of messages) {
    const [body, options] = Array.isArray(message) ? message : [message, {}];
    t.confirming.sendToQueue(queue, Buffer.from(body), options);
  }
  await t.confirming.waitForConfirms();
}

/** basic.get with manual ack until a message comes. */
async function getOne(ch, queue) {
  return waitFor(() => ch.get(queue, { noAck: false }), { what: `a message in ${queue}` });
}

/** The x-death entries of a message as [queue, reason, count] triples, in header order. */
function deaths(msg) {
  const headers = msg.properties.headers || {};
  return (headers['x-death'] || []).map((d) => [d.queue, d.reason, Number(d.count)]);
}

const tests = {
  async message_ttl_drops_what_nobody_took_in_time(t) {
    // A second: long enough that the depth check right after the publish does not race the TTL on a busy machine.
    const queue = await t.queue('ttl', { messageTtl: 1000 });
    await publish(t, queue, 'short-lived');
    assert.equal(await t.depth(queue), 1);
    await t.waitDepth(queue, 0);
    assert.deepEqual(await drain(t.ch, queue), []);
  },

  async per_message_expiration_expires_behind_a_message_that_does_not(t) {
    const queue = await t.queue('expiration');
    await publish(t, queue, 'stays', ['goes', { expiration: 100 }]);
    await sleep(400);
    // RabbitMQ expires only from the head: it may still count the expired message, but never delivers it.
    assert.deepEqual(await drain(t.ch, queue), ['stays']);
    await t.waitDepth(queue, 0);
  },

  async max_length_drops_the_oldest(t) {
    const queue = await t.queue('maxlen', { maxLength: 2 });
    await publish(t, queue, '1', '2', '3', '4');
    assert.equal(await t.depth(queue), 2);
    assert.deepEqual(await drain(t.ch, queue), ['3', '4']);
  },

  async reject_publish_nacks_what_does_not_fit(t) {
    const queue = await t.queue('full', { maxLength: 1, overflow: 'reject-publish' });
    const ch = await t.channel(t.conn, { confirm: true });
    const outcome = (body) =>
      new Promise((resolve) => ch.sendToQueue(queue, Buffer.from(body), {}, (err) => resolve(err ? 'nack' : 'ack')));
    assert.equal(await outcome('fits'), 'ack');
    assert.equal(await outcome('refused'), 'nack');
    assert.deepEqual(await drain(t.ch, queue), ['fits']);
    // Once there is room again the queue takes messages.
    assert.equal(await outcome('fits again'), 'ack');
    assert.deepEqual(await drain(t.ch, queue), ['fits again']);
  },

  async a_retry_loop_counts_its_rounds_in_x_death(t) {
    const work = unique('work');
    const retry = unique('retry');
    t.deleteLater({ queue: work });
    t.deleteLater({ queue: retry });
    await t.ch.assertQueue(work, { durable: false, deadLetterExchange: '', deadLetterRoutingKey: retry });
    await t.ch.assertQueue(retry, {
      durable: false,
      messageTtl: 50,
      deadLetterExchange: '',
      deadLetterRoutingKey: work,
    });
    await publish(t, work, ['flaky', { headers: { attempt: 'first' } }]);
    for (const attempt of [1, 2, 3]) {
      const msg = await getOne(t.ch, work);
      assert.equal(msg.content.toString(), 'flaky');
      assert.equal(msg.properties.headers.attempt, 'first', 'the publisher\'s headers survive dead-lettering');
      if (attempt === 1) {
        assert.deepEqual(deaths(msg), []);
      } else {
        const n = attempt - 1;
        // The most recent death first; each (queue, reason) pair has one entry whose count goes up.
        assert.deepEqual(deaths(msg), [
          [retry, 'expired', n],
          [work, 'rejected', n],
        ]);
        const [expired, rejected] = msg.properties.headers['x-death'];
        assert.deepEqual([expired.exchange, expired['routing-keys']], ['', [retry]]);
        assert.deepEqual([rejected.exchange, rejected['routing-keys']], ['', [work]]);
        assert.equal(msg.properties.headers['x-first-death-reason'], 'rejected');
        assert.equal(msg.properties.headers['x-first-death-queue'], work);
      }
      t.ch.reject(msg, false);
    }
  },

  async priorities_deliver_the_highest_first_to_a_prefetch_one_consumer(t) {
    const queue = await t.queue('prio', { durable: false, maxPriority: 10 });
    await publish(t, queue, 'none', ['low', { priority: 1 }], ['top', { priority: 9 }], ['mid', { priority: 5 }]);
    const ch = await t.channel();
    await ch.prefetch(1);
    const got = [];
    await ch.consume(
      queue,
      (msg) => {
        got.push(msg.content.toString());
        ch.ack(msg);
      },
      { noAck: false },
    );
    await waitFor(() => got.length === 4, { what: 'four deliveries' });
    assert.deepEqual(got, ['top', 'mid', 'low', 'none']);
  },

  async consumer_priorities_prefer_the_higher_consumer_while_it_has_credit(t) {
    const queue = await t.queue('cprio', { durable: false });
    const high = await t.channel();
    const low = await t.channel();
    await high.prefetch(2);
    const got = { high: [], low: [] };
    await low.consume(queue, (msg) => got.low.push(msg.content.toString()), { noAck: true, priority: 1 });
    await high.consume(queue, (msg) => got.high.push(msg.content.toString()), { noAck: false, priority: 10 });
    // The higher consumer takes what its prefetch allows (it never acks); the rest goes to the lower one.
    await publish(t, queue, 'm0', 'm1', 'm2', 'm3', 'm4');
    await waitFor(() => got.high.length + got.low.length === 5, { what: 'five deliveries' });
    assert.deepEqual(got, { high: ['m0', 'm1'], low: ['m2', 'm3', 'm4'] });
  },

  async single_active_consumer_fails_over_when_the_active_one_cancels(t) {
    const queue = await t.queue('sac', { durable: false, arguments: { 'x-single-active-consumer': true } });
    const first = await t.channel();
    const second = await t.channel();
    const got = { first: [], second: [] };
    const { consumerTag } = await first.consume(queue, (msg) => got.first.push(msg.content.toString()), {
      noAck: true,
    });
    await second.consume(queue, (msg) => got.second.push(msg.content.toString()), { noAck: true });
    await publish(t, queue, 'a0', 'a1', 'a2');
    await waitFor(() => got.first.length === 3, { what: 'three deliveries to the first consumer' });
    await sleep(200); // a delivery to the waiting consumer would show up here
    assert.deepEqual(got.second, []);

    await first.cancel(consumerTag);
    await publish(t, queue, 'b0', 'b1', 'b2');
    await waitFor(() => got.second.length === 3, { what: 'three deliveries to the second consumer' });
    assert.deepEqual(got, { first: ['a0', 'a1', 'a2'], second: ['b0', 'b1', 'b2'] });
  },

  async quorum_delivery_limit_dead_letters_after_the_redeliveries(t) {
    const dead = await t.queue('dead', { durable: false });
    const queue = await t.queue('quorum', {
      durable: true,
      deadLetterExchange: '',
      deadLetterRoutingKey: dead,
      arguments: { 'x-queue-type': 'quorum', 'x-delivery-limit': 1 },
    });
    await publish(t, queue, 'poison');

    const first = await getOne(t.ch, queue);
    assert.equal(first.fields.redelivered, false);
    // RabbitMQ 3.10 sends x-delivery-count 0 on the first delivery; 3.13 (which Warren follows) leaves the header out
    // until the message comes back.
    const count = (first.properties.headers || {})['x-delivery-count'];
    assert.ok(count === undefined || Number(count) === 0, `x-delivery-count ${count} on the first delivery`);
    t.ch.reject(first, true);
    const second = await getOne(t.ch, queue);
    assert.equal(second.content.toString(), 'poison');
    assert.equal(second.fields.redelivered, true);
    assert.equal(Number(second.properties.headers['x-delivery-count']), 1);
    // Returned a second time, more often than the limit allows: dead-lettered instead of redelivered.
    t.ch.reject(second, true);

    const dlx = await getOne(t.ch, dead);
    assert.equal(dlx.content.toString(), 'poison');
    assert.deepEqual(deaths(dlx), [[queue, 'delivery_limit', 1]]);
    assert.equal(dlx.properties.headers['x-first-death-reason'], 'delivery_limit');
    t.ch.ack(dlx);
    await t.waitDepth(queue, 0);
    assert.equal(await t.ch.get(queue), false);
  },

  async unused_queue_expires(t) {
    const queue = await t.queue('expires', { durable: false, expires: 300 });
    assert.equal(await t.depth(queue), 0);
    // Not polled: a passive declare counts as a use and would keep the queue alive.
    await sleep(1500);
    const ch = await t.channel();
    await assert.rejects(ch.checkQueue(queue), (err) => err.code === 404);
  },
};

module.exports = { tests };
