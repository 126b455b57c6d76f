// Shared pieces of the amqplib interop suite: the broker under test, unique names, a per-test context that closes
// what it opened and deletes what it declared, polling helpers, and a TCP proxy that can cut connections.
//
// Every test talks to the broker named by AMQP_URL (interop-tests/run sets it) and declares uniquely named queues and
// exchanges, so the suite can run against a shared RabbitMQ in differential mode without collisions. Tests assert
// what RabbitMQ does; where Warren differs, the test fails and says what it saw.
'use strict';

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const net = require('node:net');
const path = require('node:path');

const amqp = require('amqplib');

// amqplib's protocol definitions. The package's `exports` map hides lib/, so they are loaded by file path; the suite
// needs them only for tx.select/commit/rollback, which amqplib's API does not wrap (its public `Channel#rpc` does).
const defs = require(path.join(path.dirname(require.resolve('amqplib')), 'lib', 'defs.js'));

const DEFAULT_URL = 'amqp://guest:guest@127.0.0.1:5672/%2f';

function amqpUrl() {
  return process.env.AMQP_URL || DEFAULT_URL;
}

/** The broker URL with extra query parameters (`heartbeat`, ...) and optionally another port (a proxy's). */
function urlWith({ query = {}, port } = {}) {
  const url = new URL(amqpUrl());
  if (port !== undefined) {
    url.hostname = '127.0.0.1';
    url.port = String(port);
  }
  for (const [key, value] of Object.entries(query)) url.searchParams.set(key, String(value));
  return url.toString();
}

/** A name no other test or run uses. */
function unique(stem) {
  return `interop.node.${stem}.${crypto.randomBytes(5).toString('hex')}`;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `predicate` (sync or async) every 20 ms until it returns something truthy; fails after `timeout` ms. */
async function waitFor(predicate, { timeout = 5000, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** basic.get with auto-ack until the queue is empty; returns the bodies as strings, in order. */
async function drain(ch, queue) {
  const bodies = [];
  for (;;) {
    const msg = await ch.get(queue, { noAck: true });
    if (msg === false) return bodies;
    bodies.push(msg.content.toString());
  }
}

/** Marks a channel's server-side close on the channel itself instead of letting an unhandled 'error' event throw. */
function watchChannel(ch) {
  ch.closedWith = null;
  ch.isClosed = false;
  ch.on('error', (err) => {
    ch.closedWith = err;
  });
  ch.on('close', () => {
    ch.isClosed = true;
  });
  return ch;
}

function watchConnection(conn) {
  conn.closedWith = null;
  conn.isClosed = false;
  conn.on('error', (err) => {
    conn.closedWith = err;
  });
  conn.on('close', () => {
    conn.isClosed = true;
  });
  return conn;
}

async function closeQuietly(closable) {
  try {
    await closable.close();
  } catch {
    // already closed by the broker, or the socket is gone: nothing left to release
  }
}

/**
 * What one test gets: an open connection and channel (`t.conn`, `t.ch`), more on request, all closed and every
 * declared queue and exchange deleted when the test ends.
 */
class TestContext {
  constructor() {
    this._cleanups = [];
    this._queues = [];
    this._exchanges = [];
  }

  async open() {
    this.conn = await this.connect();
    this.ch = await this.channel();
  }

  /** A promise-API connection (amqplib.connect) closed when the test ends. */
  async connect({ url = amqpUrl(), options = {} } = {}) {
    const conn = watchConnection(await amqp.connect(url, { timeout: 10000, ...options }));
    this.closeLater(conn);
    return conn;
  }

  /** Registers anything with an async close() to be closed (quietly) when the test ends, last first. */
  closeLater(closable) {
    this._cleanups.push(() => closeQuietly(closable));
    return closable;
  }

  async channel(conn = this.conn, { confirm = false } = {}) {
    return watchChannel(confirm ? await conn.createConfirmChannel() : await conn.createChannel());
  }

  /** Declares a uniquely named queue on `t.ch` and returns its name. */
  async queue(stem, options = {}) {
    const name = unique(stem);
    this._queues.push(name);
    await this.ch.assertQueue(name, options);
    return name;
  }

  async exchange(stem, type, options = {}) {
    const name = unique(stem);
    this._exchanges.push(name);
    await this.ch.assertExchange(name, type, options);
    return name;
  }

  deleteLater({ queue, exchange } = {}) {
    if (queue) this._queues.push(queue);
    if (exchange) this._exchanges.push(exchange);
  }

  /** The queue's ready-message count, read with a passive declare on a throwaway channel of `t.conn`. */
  async depth(queue) {
    const ch = await this.channel();
    const ok = await ch.checkQueue(queue);
    await closeQuietly(ch);
    return ok.messageCount;
  }

  async waitDepth(queue, expected, timeout = 5000) {
    let seen;
    await waitFor(
      async () => {
        seen = await this.depth(queue);
        return seen === expected;
      },
      { timeout, what: `queue ${queue} to hold ${expected} ready messages (it holds ${seen})` },
    );
  }

  /** Waits until a passive declare of `queue` fails with 404 (an exclusive or auto-delete queue going away). */
  async waitGone(queue, timeout = 5000) {
    await waitFor(
      async () => {
        try {
          await this.depth(queue);
          return false;
        } catch (err) {
          // 405: still exclusive to a connection the broker is closing; it goes once that connection is gone.
          if (err.code === 405) return false;
          assert.equal(err.code, 404, err.message);
          return true;
        }
      },
      { timeout, what: `queue ${queue} to be deleted` },
    );
  }

  async cleanup() {
    for (const cleanup of this._cleanups.reverse()) await cleanup();
    if (this._queues.length === 0 && this._exchanges.length === 0) return;
    const conn = watchConnection(await amqp.connect(amqpUrl(), { timeout: 10000 }));
    try {
      for (const [kind, names] of [
        ['Queue', this._queues],
        ['Exchange', this._exchanges],
      ]) {
        for (const name of names) {
          const ch = watchChannel(await conn.createChannel());
          try {
            await ch[`delete${kind}`](name);
            await ch.close();
          } catch {
            // already gone, or exclusive to a connection that is now closed
          }
        }
      }
    } finally {
      await closeQuietly(conn);
    }
  }
}

/**
 * Awaits `action` and checks that the broker closed the channel with `code` (and, when given, the class and method
 * of the failed operation) and a reply text starting with `textPrefix` (RabbitMQ's close texts; clients log and
 * sometimes match them). amqplib puts the reply text in the error message, quoted.
 */
async function assertChannelClosed(action, { code, text, classId, methodId }) {
  let error = null;
  try {
    await action();
  } catch (err) {
    error = err;
  }
  assert.ok(error, `expected the broker to close the channel with ${code}, but the operation succeeded`);
  assert.equal(error.code, code, error.message);
  const quoted = error.message.match(/with message "(.*)"$/s);
  assert.ok(quoted, `no reply text in ${JSON.stringify(error.message)}`);
  assert.ok(quoted[1].startsWith(text), `reply text ${JSON.stringify(quoted[1])} does not start with ${JSON.stringify(text)}`);
  if (classId !== undefined) assert.deepEqual([error.classId, error.methodId], [classId, methodId], 'class and method');
  return error;
}

/**
 * A loopback TCP proxy in front of the broker. `cutAll()` destroys every proxied socket pair, which looks to the
 * client like a network failure and to the broker like a dropped client: what automatic recovery is for.
 */
class CuttableProxy {
  constructor(target) {
    this.target = target;
    this.pairs = new Set();
    this.accepted = 0;
    this.server = net.createServer((client) => this._accept(client));
  }

  listen() {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => resolve(this.server.address().port));
    });
  }

  _accept(client) {
    this.accepted += 1;
    const upstream = net.connect({ host: this.target.hostname, port: Number(this.target.port) || 5672 });
    const pair = [client, upstream];
    this.pairs.add(pair);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      this.pairs.delete(pair);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  cutAll() {
    const count = this.pairs.size;
    for (const [client, upstream] of [...this.pairs]) {
      client.destroy();
      upstream.destroy();
    }
    this.pairs.clear();
    return count;
  }

  close() {
    this.cutAll();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

module.exports = {
  amqp,
  amqpUrl,
  assertChannelClosed,
  closeQuietly,
  CuttableProxy,
  defs,
  drain,
  sleep,
  TestContext,
  unique,
  urlWith,
  waitFor,
  watchChannel,
  watchConnection,
};
