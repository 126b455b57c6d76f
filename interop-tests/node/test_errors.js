// Channel and connection errors as amqplib sees them: reply codes, the class and method of the failed operation,
// RabbitMQ's close texts, and that the connection survives a channel error.
'use strict';

const assert = require('node:assert/strict');

const { amqp, amqpUrl, assertChannelClosed, unique } = require('./harness');

// Class and method ids of the operations whose failure the broker reports in channel.close.
const QUEUE_DECLARE = [50, 10];
const QUEUE_DELETE = [50, 40];
const EXCHANGE_DECLARE = [40, 10];
const BASIC_CONSUME = [60, 20];
const BASIC_GET = [60, 70];

function op([classId, methodId]) {
  return { classId, methodId };
}

async function assertConnectionStillUsable(t, conn) {
  const ch = await t.channel(conn, { confirm: true });
  const { queue } = await ch.assertQueue('', { exclusive: true });
  ch.sendToQueue(queue, Buffer.from('still fine'));
  await ch.waitForConfirms();
  await ch.close();
  assert.equal(conn.isClosed, false);
}

const tests = {
  async exclusive_queue_from_another_connection_is_405(t) {
    const queue = await t.queue('exclusive', { exclusive: true });
    const other = await t.connect();
    const text = `RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '${queue}' in vhost '/'`;
    const attempts = [
      [QUEUE_DECLARE, (ch) => ch.assertQueue(queue, { exclusive: true })],
      [QUEUE_DECLARE, (ch) => ch.checkQueue(queue)],
      [BASIC_CONSUME, (ch) => ch.consume(queue, () => {}, { noAck: true })],
      [BASIC_GET, (ch) => ch.get(queue)],
      [QUEUE_DELETE, (ch) => ch.deleteQueue(queue)],
    ];
    for (const [method, attempt] of attempts) {
      const ch = await t.channel(other);
      await assertChannelClosed(() => attempt(ch), { code: 405, text, ...op(method) });
    }
    await assertConnectionStillUsable(t, other);

    // The owner is unaffected.
    t.ch.sendToQueue(queue, Buffer.from('mine'));
    await t.waitDepth(queue, 1);
  },

  async passive_declare_of_missing_queue_is_404(t) {
    const missing = unique('no-such-queue');
    const err = await assertChannelClosed(() => t.ch.checkQueue(missing), {
      code: 404,
      text: `NOT_FOUND - no queue '${missing}' in vhost '/'`,
      ...op(QUEUE_DECLARE),
    });
    assert.match(err.message, /^Operation failed: QueueDeclare; 404 \(NOT-FOUND\)/);
    assert.equal(t.ch.isClosed, true);
    assert.equal(t.conn.isClosed, false, 'a channel error must not close the connection');
    await assertConnectionStillUsable(t, t.conn);
  },

  async passive_declare_of_missing_exchange_is_404(t) {
    const missing = unique('no-such-exchange');
    await assertChannelClosed(() => t.ch.checkExchange(missing), {
      code: 404,
      text: `NOT_FOUND - no exchange '${missing}' in vhost '/'`,
      ...op(EXCHANGE_DECLARE),
    });
  },

  async publish_to_missing_exchange_closes_the_channel_with_404(t) {
    const missing = unique('no-such-exchange');
    const ch = await t.channel(t.conn, { confirm: true });
    ch.publish(missing, 'k', Buffer.from('x'));
    await assert.rejects(ch.waitForConfirms(), /channel closed/);
    assert.ok(ch.closedWith, "the channel emitted no 'error'");
    assert.equal(ch.closedWith.code, 404);
    assert.match(ch.closedWith.message, new RegExp(`NOT_FOUND - no exchange '${missing.replace(/\./g, '\\.')}' in vhost '/'`));
    assert.deepEqual([ch.closedWith.classId, ch.closedWith.methodId], [60, 40], 'basic.publish');
  },

  async redeclare_with_other_arguments_is_406(t) {
    const queue = await t.queue('args', { arguments: { 'x-message-ttl': 60000 } });
    // The same arguments again are fine.
    await t.ch.assertQueue(queue, { arguments: { 'x-message-ttl': 60000 } });

    await assertChannelClosed(() => t.ch.assertQueue(queue, { arguments: { 'x-message-ttl': 1000 } }), {
      code: 406,
      text: `PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '${queue}' in vhost '/'`,
      ...op(QUEUE_DECLARE),
    });
    t.ch = await t.channel();
    await assertChannelClosed(
      () => t.ch.assertQueue(queue, { durable: false, arguments: { 'x-message-ttl': 60000 } }),
      {
        code: 406,
        text: `PRECONDITION_FAILED - inequivalent arg 'durable' for queue '${queue}' in vhost '/'`,
        ...op(QUEUE_DECLARE),
      },
    );
    t.ch = await t.channel();
    const exchange = await t.exchange('args', 'direct');
    await assertChannelClosed(() => t.ch.assertExchange(exchange, 'fanout'), {
      code: 406,
      text: `PRECONDITION_FAILED - inequivalent arg 'type' for exchange '${exchange}' in vhost '/'`,
      ...op(EXCHANGE_DECLARE),
    });
    // The queue kept its original definition.
    t.ch = await t.channel();
    await t.ch.assertQueue(queue, { arguments: { 'x-message-ttl': 60000 } });
    await assertConnectionStillUsable(t, t.conn);
  },

  async wrong_password_is_refused(t) {
    const url = new URL(amqpUrl());
    url.password = 'definitely-not-the-password';
    // RabbitMQ advertises authentication_failure_close and closes with 403 ACCESS_REFUSED during the handshake.
    await assert.rejects(amqp.connect(url.toString(), { timeout: 10000 }), (err) => {
      assert.match(err.message, /403 \(ACCESS-REFUSED\)/);
      return true;
    });
    assert.ok(t.conn);
  },

  async server_advertises_capabilities(t) {
    const properties = t.conn.connection.serverProperties;
    const capabilities = properties.capabilities || {};
    for (const name of [
      'publisher_confirms',
      'basic.nack',
      'consumer_cancel_notify',
      'exchange_exchange_bindings',
      'per_consumer_qos',
      'authentication_failure_close',
    ]) {
      assert.equal(capabilities[name], true, `capability ${name}: ${capabilities[name]}`);
    }
    assert.ok(properties.product, 'product');
    assert.ok(properties.version, 'version');
  },
};

module.exports = { tests };
