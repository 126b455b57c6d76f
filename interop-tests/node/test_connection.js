// Connection-level behaviour: heartbeat negotiation and liveness, a 16 MiB message split over many body frames, and
// basic properties and header tables of every type amqplib can encode.
'use strict';

const assert = require('node:assert/strict');
const crypto = require('node:crypto');

const { amqpUrl, drain, sleep, urlWith, waitFor } = require('./harness');

const tests = {
  async heartbeat_negotiated_and_connection_survives_idle_time(t) {
    // Without a preference amqplib takes the server's proposal: RabbitMQ proposes 60 s in connection.tune.
    const defaulted = await t.connect({ url: amqpUrl() });
    assert.equal(defaulted.connection.heartbeat, 60, 'the heartbeat the server proposed');
    await defaulted.close();

    // Asking for 2 s negotiates the lower of the two.
    const conn = await t.connect({ url: urlWith({ query: { heartbeat: 2 } }) });
    assert.equal(conn.connection.heartbeat, 2);
    const socket = conn.connection.stream;
    const receivedBefore = socket.bytesRead;
    await sleep(5000); // amqplib sends a heartbeat every second and gives up after two silent intervals
    assert.equal(conn.isClosed, false, `connection closed during 5 s of heartbeats: ${conn.closedWith}`);
    const heartbeatBytes = socket.bytesRead - receivedBefore;
    // A heartbeat frame is 8 bytes; the broker sends one every timeout/2 = 1 s, so 5 s must show at least two.
    assert.ok(heartbeatBytes >= 16, `broker sent ${heartbeatBytes} bytes while idle`);

    const ch = await t.channel(conn, { confirm: true });
    const { queue } = await ch.assertQueue('', { exclusive: true });
    ch.sendToQueue(queue, Buffer.from('alive'));
    await ch.waitForConfirms();
    assert.deepEqual(await drain(ch, queue), ['alive']);
  },

  async message_of_16_mib_round_trip(t) {
    const queue = await t.queue('large');
    const body = Buffer.alloc(16 * 1024 * 1024);
    body.fill(crypto.randomBytes(1024)); // 16 MiB: 128+ body frames at frame_max 131072
    const ch = await t.channel(t.conn, { confirm: true });
    ch.sendToQueue(queue, body, { messageId: 'big' });
    await ch.waitForConfirms();

    const received = [];
    await t.ch.consume(queue, (msg) => {
      received.push(msg);
      t.ch.ack(msg);
    });
    await waitFor(() => received.length, { timeout: 30000, what: 'the 16 MiB message' });
    const [msg] = received;
    assert.equal(msg.properties.messageId, 'big');
    assert.equal(msg.content.length, body.length);
    const digest = (b) => crypto.createHash('sha256').update(b).digest('hex');
    assert.equal(digest(msg.content), digest(body));
    await t.waitDepth(queue, 0);
  },

  async properties_and_headers_round_trip(t) {
    const queue = await t.queue('props');
    const headers = {
      string: 'plain',
      unicode: 'h\u00e9llo \u2713',
      byte: 42,
      negative: -7,
      short: 1000,
      int: 100000,
      long: 2 ** 40,
      double: 3.5,
      true: true,
      false: false,
      void: null,
      bytes: Buffer.from([0x00, 0xff, 0x72, 0x61, 0x77]),
      decimal: { '!': 'decimal', value: { places: 2, digits: 314 } },
      timestamp: { '!': 'timestamp', value: 1704164645 },
      array: [1, 'two', [3], { four: 4 }],
      table: { nested: { deeper: 'yes' }, n: 1 },
      'empty-table': {},
      'empty-array': [],
    };
    const user = decodeURIComponent(new URL(amqpUrl()).username || 'guest');
    const sent = {
      contentType: 'application/json',
      contentEncoding: 'utf-8',
      headers,
      deliveryMode: 2,
      priority: 5,
      correlationId: 'corr-1',
      replyTo: 'reply.here',
      expiration: '60000',
      messageId: 'msg-1',
      timestamp: 1700000000,
      type: 'order.created',
      userId: user, // RabbitMQ refuses a user_id other than the authenticated user
      appId: 'interop',
    };
    const ch = await t.channel(t.conn, { confirm: true });
    ch.sendToQueue(queue, Buffer.from('{"k": 1}'), sent);
    ch.sendToQueue(queue, Buffer.alloc(0)); // no properties, empty body
    await ch.waitForConfirms();

    let msg = await t.ch.get(queue, { noAck: true });
    assert.equal(msg.content.toString(), '{"k": 1}');
    for (const name of Object.keys(sent)) {
      if (name !== 'headers') assert.equal(msg.properties[name], sent[name], name);
    }
    for (const [key, value] of Object.entries(headers)) {
      assert.deepEqual(msg.properties.headers[key], value, `header ${key}`);
    }
    assert.deepEqual(Object.keys(msg.properties.headers).sort(), Object.keys(headers).sort(), 'added or dropped headers');

    msg = await t.ch.get(queue, { noAck: true });
    assert.equal(msg.content.length, 0);
    for (const name of ['contentType', 'deliveryMode', 'messageId', 'timestamp', 'correlationId']) {
      assert.equal(msg.properties[name], undefined, name);
    }
    const empty = msg.properties.headers;
    assert.ok(empty === undefined || Object.keys(empty).length === 0, `headers ${JSON.stringify(empty)}`);
  },
};

module.exports = { tests };
