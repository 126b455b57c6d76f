// AMQP transactions (tx.select / commit / rollback) covering both publishes and acks. amqplib has no wrapper for the
// tx class, so these go through its public Channel#rpc with the method definitions from amqplib's own lib/defs.js.
'use strict';

const assert = require('node:assert/strict');

const { defs, sleep } = require('./harness');

const txSelect = (ch) => ch.rpc(defs.TxSelect, {}, defs.TxSelectOk);
const txCommit = (ch) => ch.rpc(defs.TxCommit, {}, defs.TxCommitOk);
const txRollback = (ch) => ch.rpc(defs.TxRollback, {}, defs.TxRollbackOk);

const tests = {
  async tx_commit_makes_publishes_and_acks_take_effect(t) {
    const queue = await t.queue('tx.commit');
    await txSelect(t.ch);
    t.ch.sendToQueue(queue, Buffer.from('a'));
    t.ch.sendToQueue(queue, Buffer.from('b'));
    await sleep(300);
    assert.equal(await t.depth(queue), 0, 'uncommitted publishes must not be visible');
    await txCommit(t.ch);
    await t.waitDepth(queue, 2);

    const a = await t.ch.get(queue);
    const b = await t.ch.get(queue);
    assert.deepEqual([a.content.toString(), b.content.toString()], ['a', 'b']);
    t.ch.ack(a);
    t.ch.ack(b);
    await txCommit(t.ch);
    // The acks were committed: closing the channel requeues nothing.
    await t.ch.close();
    await sleep(300);
    assert.equal(await t.depth(queue), 0);
  },

  async tx_rollback_discards_publishes_and_acks(t) {
    const queue = await t.queue('tx.rollback');
    await txSelect(t.ch);
    t.ch.sendToQueue(queue, Buffer.from('discarded'));
    await txRollback(t.ch);
    t.ch.sendToQueue(queue, Buffer.from('kept'));
    await txCommit(t.ch);
    await t.waitDepth(queue, 1);
    await sleep(200);
    assert.equal(await t.depth(queue), 1, 'the rolled-back publish must never arrive');

    const msg = await t.ch.get(queue);
    assert.equal(msg.content.toString(), 'kept');
    t.ch.ack(msg);
    await txRollback(t.ch);
    // The ack was rolled back, so the message is still unacked here and comes back when the channel closes.
    await t.ch.close();
    await t.waitDepth(queue, 1);
    const ch = await t.channel();
    const again = await ch.get(queue, { noAck: true });
    assert.equal(again.content.toString(), 'kept');
    assert.equal(again.fields.redelivered, true);
  },
};

module.exports = { tests };
