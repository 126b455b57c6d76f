// Consumer cancel notification: deleting a queue cancels its consumers with a server-sent basic.cancel, which amqplib
// reports by calling the consumer callback with null. The channel stays open.
'use strict';

const assert = require('node:assert/strict');

const { sleep, waitFor } = require('./harness');

const tests = {
  async consumer_callback_gets_null_when_its_queue_is_deleted(t) {
    const queue = await t.queue('cancel');
    t.ch.sendToQueue(queue, Buffer.from('before delete'));
    const seen = [];
    const { consumerTag } = await t.ch.consume(queue, (msg) => seen.push(msg && msg.content.toString()), {
      noAck: true,
    });
    await waitFor(() => seen.length, { what: 'the first delivery' });

    // Another connection deletes the queue under the consumer.
    const deleter = await t.channel(await t.connect());
    await deleter.deleteQueue(queue);
    await waitFor(() => seen.length === 2, { what: 'the consumer callback with null (basic.cancel)' });
    await sleep(300); // a duplicate cancel or a stray delivery would show up here
    assert.deepEqual(seen, ['before delete', null]);
    assert.equal(t.ch.consumers.has(consumerTag), false, 'amqplib forgets a consumer the server cancelled');

    assert.equal(t.ch.isClosed, false, 'a server-side cancel must leave the channel open');
    const { queue: spare } = await t.ch.assertQueue('', { exclusive: true });
    assert.equal(await t.ch.get(spare), false, 'the channel still works');
  },

  async client_cancel_is_not_reported_as_server_cancel(t) {
    const queue = await t.queue('cancel.client');
    const seen = [];
    const { consumerTag } = await t.ch.consume(queue, (msg) => seen.push(msg), { noAck: true });
    const ok = await t.ch.cancel(consumerTag);
    assert.equal(ok.consumerTag, consumerTag, 'basic.cancel-ok echoes the tag');
    await t.ch.deleteQueue(queue);
    await sleep(200);
    assert.deepEqual(seen, [], 'no callback after the client cancelled');
  },
};

module.exports = { tests };
