// RabbitMQ's routing extensions with amqplib: sender-selected distribution (the CC and BCC headers) and the
// consistent-hash exchange (x-consistent-hash, RabbitMQ's rabbitmq_consistent_hash_exchange plugin).
'use strict';

const assert = require('node:assert/strict');

const { drain } = require('./harness');

const tests = {
  async cc_and_bcc_headers_add_routing_keys(t) {
    const exchange = await t.exchange('ssd', 'direct');
    const queues = {};
    for (const key of ['main', 'copy', 'blind']) {
      queues[key] = (await t.ch.assertQueue('', { exclusive: true })).queue;
      await t.ch.bindQueue(queues[key], exchange, key);
    }

    const publisher = await t.channel(t.conn, { confirm: true });
    publisher.publish(exchange, 'main', Buffer.from('m'), { headers: { CC: ['copy'], BCC: ['blind'] } });
    await publisher.waitForConfirms();

    for (const [key, queue] of Object.entries(queues)) {
      const msg = await t.ch.get(queue, { noAck: true });
      assert.ok(msg, `queue bound to ${key} got the message`);
      assert.equal(msg.content.toString(), 'm', key);
      assert.deepEqual(msg.properties.headers.CC, ['copy'], `CC is delivered (${key})`);
      assert.ok(!('BCC' in msg.properties.headers), `BCC is not delivered (${key}): ${JSON.stringify(msg.properties.headers)}`);
      assert.equal(msg.fields.routingKey, 'main', key);
      assert.equal(await t.ch.get(queue, { noAck: true }), false, `queue bound to ${key} got one copy only`);
    }
  },

  async consistent_hash_exchange(t) {
    const exchange = await t.exchange('chx', 'x-consistent-hash');
    const light = (await t.ch.assertQueue('', { exclusive: true })).queue;
    const heavy = (await t.ch.assertQueue('', { exclusive: true })).queue;
    // The binding key is the weight.
    await t.ch.bindQueue(light, exchange, '1');
    await t.ch.bindQueue(heavy, exchange, '3');

    const publisher = await t.channel(t.conn, { confirm: true });
    const keys = Array.from({ length: 2000 }, (_, i) => `key-${i}`);
    for (const key of keys) publisher.publish(exchange, key, Buffer.from(key));
    await publisher.waitForConfirms();
    const lightKeys = await drain(t.ch, light);
    const heavyKeys = await drain(t.ch, heavy);

    // Every message in exactly one queue, shared about 1:3.
    assert.equal(lightKeys.length + heavyKeys.length, keys.length, 'messages routed');
    assert.deepEqual([...lightKeys, ...heavyKeys].sort(), [...keys].sort(), 'each message once');
    assert.ok(lightKeys.length > 350 && lightKeys.length < 700, `the weight-1 queue got ${lightKeys.length} of 2000`);

    // The same routing key always lands in the same queue.
    const lightSet = new Set(lightKeys);
    const again = keys.slice(0, 200);
    for (const key of again) publisher.publish(exchange, key, Buffer.from(key));
    for (let i = 0; i < 20; i++) publisher.publish(exchange, 'always-the-same', Buffer.from('same'));
    await publisher.waitForConfirms();
    const lightAgain = await drain(t.ch, light);
    const heavyAgain = await drain(t.ch, heavy);
    assert.deepEqual(
      lightAgain.filter((body) => body !== 'same'),
      again.filter((key) => lightSet.has(key)),
      'keys sent again went to the weight-1 queue as before',
    );
    assert.deepEqual(
      heavyAgain.filter((body) => body !== 'same'),
      again.filter((key) => !lightSet.has(key)),
      'keys sent again went to the weight-3 queue as before',
    );
    const same = [lightAgain, heavyAgain].map((bodies) => bodies.filter((body) => body === 'same').length);
    assert.ok(same.includes(20) && same.includes(0), `a repeated key split ${same[0]}/${same[1]}`);
  },
};

module.exports = { tests };
