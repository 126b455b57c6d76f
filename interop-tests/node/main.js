// Runs the amqplib interop suite: every test_*.js module here, one result line per test, then the summary line that
// interop-tests/run parses (`interop-summary: passed=N failed=N skipped=N`).
//
// A test module exports `tests`, an object of `async (t) => {...}` functions; `t` is a harness.TestContext with an
// open connection and channel. Tests run one at a time, each bounded by INTEROP_TEST_TIMEOUT seconds (default 60).
//
// Usage: AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f node main.js [-k PATTERN]...
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const TEST_TIMEOUT_MS = 1000 * Number(process.env.INTEROP_TEST_TIMEOUT || 60);

function parseArgs(argv) {
  const patterns = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '-k' && i + 1 < argv.length) patterns.push(argv[++i]);
    else throw new Error(`unknown argument ${argv[i]} (usage: main.js [-k PATTERN]...)`);
  }
  return patterns;
}

function indent(text) {
  return String(text)
    .trimEnd()
    .split('\n')
    .map((line) => `      ${line}`)
    .join('\n');
}

// An error thrown where no test awaits it (a callback of the callback API, an event handler) fails the running test
// rather than killing the process.
let failCurrent = null;
function onStrayError(err) {
  if (failCurrent) failCurrent(err);
  else console.log(`stray error outside any test:\n${indent(err && err.stack ? err.stack : err)}`);
}
process.on('uncaughtException', onStrayError);
process.on('unhandledRejection', onStrayError);

async function runOne(harness, fn) {
  const t = new harness.TestContext();
  let timer;
  const stray = new Promise((_, reject) => {
    failCurrent = reject;
    timer = setTimeout(() => reject(new Error(`test took longer than ${TEST_TIMEOUT_MS / 1000} s`)), TEST_TIMEOUT_MS);
  });
  stray.catch(() => {});
  try {
    await Promise.race([
      (async () => {
        await t.open();
        await fn(t);
      })(),
      stray,
    ]);
  } finally {
    clearTimeout(timer);
    failCurrent = null;
    await Promise.race([t.cleanup().catch(() => {}), harness.sleep(15000)]);
  }
}

async function main() {
  const patterns = parseArgs(process.argv.slice(2));
  let harness;
  try {
    harness = require('./harness');
  } catch (err) {
    console.log(`FAIL  amqplib is not loadable (npm ci in interop-tests/node): ${err.message}`);
    console.log('interop-summary: passed=0 failed=1 skipped=0');
    return 1;
  }
  // package.json is outside amqplib's `exports` map, so it is read by path.
  const version = require(path.join(path.dirname(require.resolve('amqplib')), 'package.json')).version;
  console.log(`amqplib ${version} on Node ${process.versions.node}, AMQP_URL=${harness.amqpUrl()}`);
  try {
    const conn = await harness.amqp.connect(harness.amqpUrl(), { timeout: 10000 });
    await conn.close();
  } catch (err) {
    console.log(`FAIL  cannot connect to the broker at ${harness.amqpUrl()}: ${err.message}`);
    console.log('interop-summary: passed=0 failed=1 skipped=0');
    return 1;
  }

  let passed = 0;
  let failed = 0;
  const modules = fs
    .readdirSync(__dirname)
    .filter((name) => /^test_.*\.js$/.test(name))
    .sort();
  for (const file of modules) {
    const { tests } = require(path.join(__dirname, file));
    const group = file.replace(/^test_|\.js$/g, '');
    for (const [name, fn] of Object.entries(tests)) {
      const fullName = `${group}.${name}`;
      if (patterns.length && !patterns.some((p) => fullName.includes(p))) continue;
      const started = Date.now();
      let error = null;
      try {
        await runOne(harness, fn);
      } catch (err) {
        error = err;
      }
      const took = `(${((Date.now() - started) / 1000).toFixed(2)}s)`;
      if (error) {
        failed += 1;
        console.log(`FAIL  ${fullName} ${took}`);
        console.log(indent(error && error.stack ? error.stack : error));
      } else {
        passed += 1;
        console.log(`PASS  ${fullName} ${took}`);
      }
    }
  }
  console.log(`interop-summary: passed=${passed} failed=${failed} skipped=0`);
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.log(`FAIL  the suite itself crashed:\n${indent(err.stack || err)}`);
    console.log('interop-summary: passed=0 failed=1 skipped=0');
    process.exit(1);
  },
);
