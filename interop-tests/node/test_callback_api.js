// The same client through its callback API (`amqplib/callback_api`): tutorials 1 and 2, a confirm channel, a channel
// error and a server-sent consumer cancel, written as callback code is written, each wrapped in one promise for the
// runner. Every connection is also handed to the test context, which closes it if the test fails half-way.
'use strict';

const assert = require('node:assert/strict');

const amqpCallback = require('amqplib/callback_api');

const { amqpUrl, unique, watchChannel, watchConnection } = require('./harness');

/** Runs callback-style `body(done)` as a promise; an assertion thrown inside a callback fails it too. */
function callbackTest(body) {
  return new Promise((resolve, reject) => {
    const done = (err) => (err ? reject(err) : resolve());
    try {
      body(done);
    } catch (err) {
      reject(err);
    }
  });
}

/** Wraps a callback so an assertion failing inside it rejects the test instead of escaping into amqplib. */
function guard(done, fn) {
  return (...args) => {
    try {
      fn(...args);
    } catch (err) {
      done(err);
    }
  };
}

/** Opens a callback-API connection registered with the context; `then(conn)` runs once it is open. */
function connect(t, done, then) {
  amqpCallback.connect(amqpUrl(), { timeout: 10000 }, (err, conn) => {
    if (err) return done(err);
    watchConnection(conn);
    t.closeLater({ close: () => new Promise((resolve) => conn.close(() => resolve())) });
    then(conn);
  });
}

const tests = {
  hello_world(t) {
    const queue = unique('cb.hello');
    t.deleteLater({ queue });
    return callbackTest((done) => {
      connect(t, done, (conn) => {
        conn.createChannel((err, ch) => {
          if (err) return done(err);
          watchChannel(ch);
          ch.assertQueue(queue, { durable: false }, (err) => {
            if (err) return done(err);
            ch.sendToQueue(queue, Buffer.from('Hello World!'));
            ch.consume(
              queue,
              guard(done, (msg) => {
                assert.equal(msg.content.toString(), 'Hello World!');
                assert.equal(msg.fields.routingKey, queue);
                assert.equal(msg.fields.redelivered, false);
                done();
              }),
              { noAck: true },
              (err, ok) => {
                if (err) return done(err);
                assert.match(ok.consumerTag, /^amq\.ctag-/, 'server-generated consumer tag');
              },
            );
          });
        });
      });
    });
  },

  work_queue_unacked_message_goes_to_the_other_worker(t) {
    const queue = unique('cb.tasks');
    t.deleteLater({ queue });
    return callbackTest((done) => {
      connect(t, done, (conn) => {
        // Two workers on their own channels with prefetch 1; the first closes its channel without acking.
        const worker = (name, onMessage, then) => {
          conn.createChannel((err, ch) => {
            if (err) return done(err);
            watchChannel(ch);
            ch.assertQueue(queue, { durable: true }, (err) => {
              if (err) return done(err);
              ch.prefetch(1, false, (err) => {
                if (err) return done(err);
                ch.consume(queue, guard(done, (msg) => onMessage(ch, msg)), { noAck: false }, (err) => {
                  if (err) return done(err);
                  then(ch);
                });
              });
            });
          });
        };
        worker(
          'A',
          (chA, msg) => {
            assert.equal(msg.content.toString(), 'task');
            assert.equal(msg.fields.redelivered, false);
            // Worker A dies holding the task; only then does worker B start.
            chA.close((err) => {
              if (err) return done(err);
              worker(
                'B',
                (chB, again) => {
                  assert.equal(again.content.toString(), 'task');
                  assert.equal(again.fields.redelivered, true, 'the task comes back marked redelivered');
                  chB.ack(again);
                  chB.checkQueue(queue, (err, ok) => {
                    if (err) return done(err);
                    assert.equal(ok.messageCount, 0);
                    done();
                  });
                },
                () => {},
              );
            });
          },
          (chA) => chA.sendToQueue(queue, Buffer.from('task'), { persistent: true }),
        );
      });
    });
  },

  confirm_channel_callbacks_and_wait_for_confirms(t) {
    const queue = unique('cb.confirm');
    t.deleteLater({ queue });
    return callbackTest((done) => {
      connect(t, done, (conn) => {
        conn.createConfirmChannel((err, ch) => {
          if (err) return done(err);
          watchChannel(ch);
          ch.assertQueue(queue, { durable: true }, (err) => {
            if (err) return done(err);
            const acked = [];
            for (let i = 0; i < 20; i++) {
              ch.sendToQueue(queue, Buffer.from(`m${i}`), { persistent: true }, (err) => acked.push(err));
            }
            ch.waitForConfirms(
              guard(done, (err) => {
                assert.equal(err, undefined);
                assert.deepEqual(acked, new Array(20).fill(null));
                ch.checkQueue(queue, (err, ok) => {
                  if (err) return done(err);
                  assert.equal(ok.messageCount, 20);
                  done();
                });
              }),
            );
          });
        });
      });
    });
  },

  channel_error_reaches_the_callback_and_the_error_event(t) {
    const missing = unique('cb.missing');
    return callbackTest((done) => {
      connect(t, done, (conn) => {
        conn.createChannel((err, ch) => {
          if (err) return done(err);
          const events = [];
          ch.on('error', (err) => events.push(['error', err.code]));
          ch.on(
            'close',
            guard(done, () => {
              events.push(['close']);
              assert.deepEqual(events, [['callback', 404], ['error', 404], ['close']]);
              // The connection is still usable.
              conn.createChannel((err, other) => {
                if (err) return done(err);
                other.assertQueue('', { exclusive: true }, (err, ok) => {
                  if (err) return done(err);
                  assert.match(ok.queue, /^amq\.gen-/);
                  done();
                });
              });
            }),
          );
          ch.checkQueue(
            missing,
            guard(done, (err) => {
              assert.ok(err, 'passive declare of a missing queue succeeded');
              assert.match(err.message, new RegExp(`NOT_FOUND - no queue '${missing.replace(/\./g, '\\.')}'`));
              events.push(['callback', err.code]);
            }),
          );
        });
      });
    });
  },

  consumer_cancelled_by_server_gets_null(t) {
    const queue = unique('cb.cancel');
    t.deleteLater({ queue });
    return callbackTest((done) => {
      connect(t, done, (conn) => {
        conn.createChannel((err, ch) => {
          if (err) return done(err);
          watchChannel(ch);
          ch.assertQueue(queue, { durable: false }, (err) => {
            if (err) return done(err);
            ch.consume(
              queue,
              guard(done, (msg) => {
                assert.equal(msg, null, 'only the cancel is expected: the queue is empty');
                setTimeout(() => {
                  assert.equal(ch.isClosed, false, 'a server-side cancel must leave the channel open');
                  done();
                }, 200);
              }),
              { noAck: true },
              (err) => {
                if (err) return done(err);
                conn.createChannel((err, deleter) => {
                  if (err) return done(err);
                  deleter.deleteQueue(queue, {}, (err) => err && done(err));
                });
              },
            );
          });
        });
      });
    });
  },
};

module.exports = { tests };
