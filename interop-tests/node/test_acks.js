// basic.get and the ways a consumer settles a delivery: ack, nack (with and without requeue, multiple) and reject.
'use strict';

const assert = require('node:assert/strict');

const { sleep, waitFor } = require('./harness');

/** Publishes on a confirm channel, so every body is in the queue when this returns. */
async function publish(t, queue, ...bodies) {
  if (!t.confirming) t.confirming = await t.channel(t.conn, { confirm: true });
  for (const body of bodies) t.confirming.sendToQueue(queue, Buffer.from(body));
  await t.confirming.waitForConfirms();
}

/** Consumes one message with manual ack on `ch`, then cancels the consumer (the delivery stays unacked). */
async function nextDelivery(ch, queue) {
  const got = [];
  const { consumerTag } = await ch.consume(queue, (msg) => msg && got.push(msg), { noAck: false });
  await waitFor(() => got.length, { what: `a delivery from ${queue}` });
  await ch.cancel(consumerTag);
  assert.equal(got.length, 1, 'prefetch 1 delivers one message at a time');
  return got[0];
}

const tests = {
  async basic_get(t) {
    const queue = await t.queue('get');
    assert.equal(await t.ch.get(queue), false, 'basic.get-empty on an empty queue');

    await publish(t, queue, 'a', 'b', 'c');
    let msg = await t.ch.get(queue);
    assert.equal(msg.content.toString(), 'a');
    assert.equal(msg.fields.messageCount, 2, 'basic.get-ok message_count counts what is left');
    assert.equal(msg.fields.deliveryTag, 1);
    assert.equal(msg.fields.redelivered, false);
    assert.deepEqual([msg.fields.exchange, msg.fields.routingKey], ['', queue]);
    t.ch.ack(msg);

    msg = await t.ch.get(queue, { noAck: true });
    assert.deepEqual([msg.content.toString(), msg.fields.messageCount, msg.fields.deliveryTag], ['b', 1, 2]);

    msg = await t.ch.get(queue); // not acked
    assert.deepEqual([msg.content.toString(), msg.fields.messageCount, msg.fields.deliveryTag], ['c', 0, 3]);
    assert.equal(await t.ch.get(queue), false);

    // Closing the channel returns the unacked message, now marked redelivered.
    await t.ch.close();
    t.ch = await t.channel();
    await t.waitDepth(queue, 1);
    msg = await t.ch.get(queue, { noAck: true });
    assert.equal(msg.content.toString(), 'c');
    assert.equal(msg.fields.redelivered, true);
    assert.equal(msg.fields.deliveryTag, 1, 'delivery tags are per channel and start at 1');
  },

  async nack_with_requeue_redelivers(t) {
    const queue = await t.queue('nack.requeue');
    await publish(t, queue, 'retry me');
    const consumer = await t.channel();
    await consumer.prefetch(1);
    let msg = await nextDelivery(consumer, queue);
    assert.deepEqual([msg.content.toString(), msg.fields.redelivered], ['retry me', false]);
    consumer.nack(msg, false, true);

    msg = await nextDelivery(consumer, queue);
    assert.equal(msg.content.toString(), 'retry me');
    assert.equal(msg.fields.redelivered, true, 'a nacked-and-requeued message comes back with redelivered=true');
    consumer.ack(msg);
    await sleep(200);
    assert.equal(await t.depth(queue), 0);
    assert.equal(await t.ch.get(queue), false);
  },

  async nack_without_requeue_discards(t) {
    const queue = await t.queue('nack.drop');
    await publish(t, queue, 'poison', 'fine');
    let msg = await t.ch.get(queue);
    assert.equal(msg.content.toString(), 'poison');
    t.ch.nack(msg, false, false);
    msg = await t.ch.get(queue, { noAck: true });
    assert.equal(msg.content.toString(), 'fine');
    assert.equal(await t.ch.get(queue), false, 'a nack without requeue drops the message');
    // Not hidden somewhere either: closing the channel brings nothing back.
    await t.ch.close();
    await sleep(200);
    assert.equal(await t.depth(queue), 0);
  },

  async nack_multiple_requeues_all_up_to_the_tag(t) {
    const queue = await t.queue('nack.multiple');
    await publish(t, queue, '1', '2', '3', '4');
    const held = [];
    for (let i = 0; i < 3; i++) held.push(await t.ch.get(queue));
    assert.deepEqual(
      held.map((m) => m.fields.deliveryTag),
      [1, 2, 3],
    );
    t.ch.nack(held[1], true, true); // settles 1 and 2, leaves 3 unacked
    await t.waitDepth(queue, 3);
    const bodies = [];
    for (let i = 0; i < 3; i++) {
      const msg = await t.ch.get(queue, { noAck: true });
      bodies.push([msg.content.toString(), msg.fields.redelivered]);
    }
    bodies.sort();
    assert.deepEqual(bodies, [
      ['1', true],
      ['2', true],
      ['4', false],
    ]);
    t.ch.ack(held[2]);
    await t.ch.close();
    await sleep(200);
    assert.equal(await t.depth(queue), 0);
  },

  async reject_with_and_without_requeue(t) {
    const queue = await t.queue('reject');
    await publish(t, queue, 'm');
    const consumer = await t.channel();
    let msg = await nextDelivery(consumer, queue);
    assert.equal(msg.fields.redelivered, false);
    consumer.reject(msg, true);

    msg = await nextDelivery(consumer, queue);
    assert.equal(msg.content.toString(), 'm');
    assert.equal(msg.fields.redelivered, true);
    consumer.reject(msg, false);
    await sleep(200);
    assert.equal(await t.depth(queue), 0);
    await consumer.close();
    await sleep(200);
    assert.equal(await t.depth(queue), 0, 'a message rejected without requeue must not come back');
  },
};

module.exports = { tests };
