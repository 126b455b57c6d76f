// AMQP over TLS with amqplib. interop-tests/run starts Warren with a TLS listener and sets AMQPS_URL and
// AMQPS_CA_FILE; without them (a broker given with --broker-url, say) there are no TLS tests.
'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');

const { drain } = require('./harness');

const url = process.env.AMQPS_URL;
const caFile = process.env.AMQPS_CA_FILE;

const tests = url && caFile ? {
  async publish_and_get_over_tls(t) {
    const conn = await t.connect({ url, options: { ca: [fs.readFileSync(caFile)] } });
    const ch = await t.channel(conn, { confirm: true });
    const { queue } = await ch.assertQueue('', { exclusive: true });
    ch.sendToQueue(queue, Buffer.from('over tls'));
    await ch.waitForConfirms();
    assert.deepEqual(await drain(ch, queue), ['over tls']);
  },

  async a_client_that_does_not_trust_the_certificate_is_refused(t) {
    await assert.rejects(t.connect({ url }), /certificate/i);
  },
} : {};

module.exports = { tests };
