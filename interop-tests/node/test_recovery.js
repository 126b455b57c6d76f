// amqplib's opt-in automatic recovery (`recovery` connect option, amqplib >= 1.1) against a real broker. The suite
// cannot restart the broker, so the connection runs through a loopback proxy that the test cuts: the client sees a
// network failure, the broker a dropped client (its exclusive queues go, its unacked deliveries are requeued).
'use strict';

const assert = require('node:assert/strict');

const { amqp, amqpUrl, CuttableProxy, urlWith, waitFor, watchChannel } = require('./harness');

const tests = {
  async recovery_reconnects_reruns_setup_and_gets_the_requeued_message(t) {
    const proxy = new CuttableProxy(new URL(amqpUrl()));
    const port = await proxy.listen();
    t.closeLater(proxy);
    const workQueue = await t.queue('recovery.work', { durable: true }); // outlives any one connection

    const setups = []; // one entry per (re)connection: its channel and server-named reply queue
    const deliveries = [];
    const events = [];
    const conn = await amqp.connect(urlWith({ port }), {
      timeout: 10000,
      recovery: {
        initialDelay: 100,
        maxDelay: 500,
        jitter: 0,
        maxRetries: 50,
        async setup(model) {
          const ch = watchChannel(await model.createChannel());
          const { queue } = await ch.assertQueue('', { exclusive: true });
          await ch.prefetch(1);
          await ch.consume(workQueue, (msg) => msg && deliveries.push({ ch, msg }), { noAck: false });
          setups.push({ ch, queue });
        },
      },
    });
    t.closeLater(conn);
    conn.on('disconnect', (err) => events.push(['disconnect', err && err.message]));
    conn.on('connect', () => events.push(['connect']));
    conn.on('error', () => {}); // the cut socket surfaces here too
    assert.equal(setups.length, 1);

    t.ch.sendToQueue(workQueue, Buffer.from('held when the network fails'));
    await waitFor(() => deliveries.length === 1, { what: 'the first delivery' });
    assert.equal(deliveries[0].msg.fields.redelivered, false);

    assert.equal(proxy.cutAll(), 1, 'one proxied connection to cut');
    await waitFor(() => setups.length === 2, { timeout: 15000, what: 'setup to run again after reconnecting' });
    assert.ok(
      events.some(([kind]) => kind === 'disconnect'),
      `no disconnect event: ${JSON.stringify(events)}`,
    );
    assert.equal(proxy.accepted, 2, 'one reconnection');

    // The broker requeued the unacked message when the old connection dropped; the recovered consumer gets it.
    await waitFor(() => deliveries.length === 2, { what: 'the requeued message on the recovered consumer' });
    const again = deliveries[1];
    assert.equal(again.ch, setups[1].ch);
    assert.equal(again.msg.content.toString(), 'held when the network fails');
    assert.equal(again.msg.fields.redelivered, true);
    again.ch.ack(again.msg);
    await t.waitDepth(workQueue, 0);

    // Server-named exclusive queues are per connection: the old one is gone, the new one has a new name.
    assert.notEqual(setups[1].queue, setups[0].queue);
    await t.waitGone(setups[0].queue);

    // Channels opened through the recovering connection now reach the new connection.
    const ch = watchChannel(await conn.createChannel());
    ch.sendToQueue(setups[1].queue, Buffer.from('after recovery'));
    // (The queue is exclusive to the recovered connection, so it is inspected through that connection.)
    await waitFor(async () => (await ch.checkQueue(setups[1].queue)).messageCount === 1, {
      what: 'a publish after recovery',
    });
    const msg = await ch.get(setups[1].queue, { noAck: true });
    assert.equal(msg.content.toString(), 'after recovery');
  },
};

module.exports = { tests };
