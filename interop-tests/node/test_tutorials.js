// The six RabbitMQ tutorials (rabbitmq.com/tutorials, JavaScript/amqplib promise API), each turned into assertions on
// what arrives.
'use strict';

const assert = require('node:assert/strict');
const crypto = require('node:crypto');

const { drain, sleep, waitFor } = require('./harness');

/** A consumer callback that records deliveries, acking them when asked to. */
function collector(ch, { ack = false } = {}) {
  const deliveries = [];
  const onMessage = (msg) => {
    if (msg === null) return;
    deliveries.push(msg);
    if (ack) ch.ack(msg);
  };
  onMessage.deliveries = deliveries;
  onMessage.bodies = () => deliveries.map((m) => m.content.toString());
  return onMessage;
}

const tests = {
  async tutorial1_hello_world(t) {
    const queue = await t.queue('hello', { durable: false });
    t.ch.sendToQueue(queue, Buffer.from('Hello World!'));

    const got = collector(t.ch);
    await t.ch.consume(queue, got, { noAck: true });
    await waitFor(() => got.deliveries.length, { timeout: 10000, what: 'the message' });

    const msg = got.deliveries[0];
    assert.equal(msg.content.toString(), 'Hello World!');
    assert.equal(msg.fields.exchange, '');
    assert.equal(msg.fields.routingKey, queue);
    assert.equal(msg.fields.redelivered, false);
    assert.equal(msg.fields.deliveryTag, 1);
    await sleep(100);
    assert.equal(got.deliveries.length, 1);
    assert.equal(await t.depth(queue), 0);
  },

  async tutorial2_work_queues_fair_dispatch_and_redelivery(t) {
    const queue = await t.queue('task_queue', { durable: true });
    const publisher = await t.channel(t.conn, { confirm: true });
    const send = async (body) => {
      publisher.sendToQueue(queue, Buffer.from(body), { persistent: true });
      await publisher.waitForConfirms();
    };

    const workerA = await t.channel(await t.connect());
    await workerA.prefetch(1);
    const gotA = collector(workerA);
    await workerA.consume(queue, gotA, { noAck: false });
    await send('task1');
    await waitFor(() => gotA.deliveries.length, { what: 'worker A to get a task' });

    const workerB = await t.channel(await t.connect());
    await workerB.prefetch(1);
    const gotB = collector(workerB);
    await workerB.consume(queue, gotB, { noAck: false });
    await send('task2');
    await send('task3');
    await waitFor(() => gotB.deliveries.length, { what: 'worker B to get a task' });

    // prefetch 1: each worker holds one unacked task, the third waits in the queue.
    await sleep(300);
    assert.deepEqual(gotA.bodies(), ['task1']);
    assert.deepEqual(gotB.bodies(), ['task2']);
    assert.equal(gotA.deliveries[0].fields.redelivered, false);
    assert.equal(gotA.deliveries[0].properties.deliveryMode, 2);
    await t.waitDepth(queue, 1);

    // Worker A closes its channel without acking: its task goes back to the queue, B is still busy.
    await workerA.close();
    await t.waitDepth(queue, 2);
    await sleep(200);
    assert.deepEqual(gotB.bodies(), ['task2']);

    // B acks and gets task1 (requeued to its original position, ahead of task3) marked redelivered, then task3.
    workerB.ack(gotB.deliveries[0]);
    await waitFor(() => gotB.deliveries.length === 2, { what: 'the requeued task' });
    assert.equal(gotB.deliveries[1].content.toString(), 'task1');
    assert.equal(gotB.deliveries[1].fields.redelivered, true, 'a requeued message must arrive with redelivered=true');
    workerB.ack(gotB.deliveries[1]);
    await waitFor(() => gotB.deliveries.length === 3, { what: 'task3' });
    assert.equal(gotB.deliveries[2].content.toString(), 'task3');
    assert.equal(gotB.deliveries[2].fields.redelivered, false);
    workerB.ack(gotB.deliveries[2]);
    await t.waitDepth(queue, 0);
    await sleep(100);
    assert.equal(gotB.deliveries.length, 3);
  },

  async tutorial3_publish_subscribe_fanout(t) {
    const exchange = await t.exchange('logs', 'fanout', { durable: false });
    const publisher = await t.channel(t.conn, { confirm: true });
    publisher.publish(exchange, '', Buffer.from('before anyone listens'));
    await publisher.waitForConfirms();

    const subscribers = [];
    for (let i = 0; i < 2; i++) {
      const conn = await t.connect();
      const ch = await t.channel(conn);
      const { queue } = await ch.assertQueue('', { exclusive: true });
      assert.match(queue, /^amq\.gen-/, 'server-named queue');
      await ch.bindQueue(queue, exchange, '');
      const got = collector(ch);
      await ch.consume(queue, got, { noAck: true });
      subscribers.push({ conn, queue, got });
    }
    assert.notEqual(subscribers[0].queue, subscribers[1].queue);

    publisher.publish(exchange, 'ignored.key', Buffer.from('log-1'));
    publisher.publish(exchange, '', Buffer.from('log-2'));
    await publisher.waitForConfirms();
    for (const { got } of subscribers) {
      await waitFor(() => got.deliveries.length >= 2, { what: 'two log lines' });
      assert.deepEqual(got.bodies(), ['log-1', 'log-2']);
      assert.equal(got.deliveries[0].fields.exchange, exchange);
      assert.equal(got.deliveries[0].fields.routingKey, 'ignored.key');
    }

    // An exclusive queue goes away with its connection.
    await subscribers[0].conn.close();
    await t.waitGone(subscribers[0].queue);
  },

  async tutorial4_routing_direct(t) {
    const exchange = await t.exchange('direct_logs', 'direct', { durable: false });
    const errorsOnly = (await t.ch.assertQueue('', { exclusive: true })).queue;
    await t.ch.bindQueue(errorsOnly, exchange, 'error');
    const everything = (await t.ch.assertQueue('', { exclusive: true })).queue;
    for (const severity of ['info', 'warning', 'error']) await t.ch.bindQueue(everything, exchange, severity);

    const publisher = await t.channel(t.conn, { confirm: true });
    for (const severity of ['info', 'warning', 'error', 'debug']) {
      publisher.publish(exchange, severity, Buffer.from(severity));
    }
    await publisher.waitForConfirms();
    assert.deepEqual(await drain(t.ch, errorsOnly), ['error']);
    assert.deepEqual(await drain(t.ch, everything), ['info', 'warning', 'error']);

    // Unbinding stops the flow for that key only.
    await t.ch.unbindQueue(everything, exchange, 'info');
    publisher.publish(exchange, 'info', Buffer.from('info-2'));
    publisher.publish(exchange, 'warning', Buffer.from('warning-2'));
    await publisher.waitForConfirms();
    assert.deepEqual(await drain(t.ch, everything), ['warning-2']);
  },

  async tutorial5_topics(t) {
    const exchange = await t.exchange('topic_logs', 'topic', { durable: false });
    const declare = async (...patterns) => {
      const { queue } = await t.ch.assertQueue('', { exclusive: true });
      for (const pattern of patterns) await t.ch.bindQueue(queue, exchange, pattern);
      return queue;
    };
    const q1 = await declare('*.orange.*');
    const q2 = await declare('*.*.rabbit', 'lazy.#');
    const all = await declare('#');

    const keys = [
      'quick.orange.rabbit', // Q1, Q2
      'lazy.orange.elephant', // Q1, Q2
      'quick.orange.fox', // Q1
      'lazy.brown.fox', // Q2
      'lazy.pink.rabbit', // Q2, once although two bindings match
      'quick.brown.fox', // nobody but '#'
      'orange', // nobody but '#'
      'quick.orange.male.rabbit', // nobody but '#'
      'lazy.orange.male.rabbit', // Q2
      'lazy', // Q2: '#' matches zero words
    ];
    const publisher = await t.channel(t.conn, { confirm: true });
    for (const key of keys) publisher.publish(exchange, key, Buffer.from(key));
    await publisher.waitForConfirms();

    assert.deepEqual(await drain(t.ch, q1), ['quick.orange.rabbit', 'lazy.orange.elephant', 'quick.orange.fox']);
    assert.deepEqual(await drain(t.ch, q2), [
      'quick.orange.rabbit',
      'lazy.orange.elephant',
      'lazy.brown.fox',
      'lazy.pink.rabbit',
      'lazy.orange.male.rabbit',
      'lazy',
    ]);
    assert.deepEqual(await drain(t.ch, all), keys);
  },

  async tutorial6_rpc_with_exclusive_reply_queue_and_correlation_id(t) {
    const rpcQueue = await t.queue('rpc_queue', { durable: false });
    const fib = (n) => (n < 2 ? n : fib(n - 1) + fib(n - 2));

    const server = await t.channel(await t.connect());
    await server.prefetch(1);
    await server.consume(rpcQueue, (msg) => {
      const n = Number.parseInt(msg.content.toString(), 10);
      server.sendToQueue(msg.properties.replyTo, Buffer.from(String(fib(n))), {
        correlationId: msg.properties.correlationId,
      });
      server.ack(msg);
    });

    const client = await t.channel(await t.connect());
    const { queue: callbackQueue } = await client.assertQueue('', { exclusive: true });
    assert.match(callbackQueue, /^amq\.gen-/);
    const responses = new Map();
    await client.consume(
      callbackQueue,
      (msg) => responses.set(msg.properties.correlationId, Number.parseInt(msg.content.toString(), 10)),
      { noAck: true },
    );

    const requests = new Map();
    for (const n of [0, 1, 10, 20]) {
      const correlationId = crypto.randomUUID();
      requests.set(correlationId, n);
      client.sendToQueue(rpcQueue, Buffer.from(String(n)), { correlationId, replyTo: callbackQueue });
    }
    await waitFor(() => responses.size >= requests.size, {
      timeout: 10000,
      what: `all ${requests.size} RPC replies`,
    });
    const expected = new Map([...requests].map(([id, n]) => [id, fib(n)]));
    assert.deepEqual(responses, expected);
  },
};

module.exports = { tests };
