'use strict';
// Node side of the cross-language Redis proof (scripts/test-interop.sh runs it from a
// project where the packed seawall tarball is installed).
//
//   node node_side.js replay-a-write-b     # replays A (Python's), completes key B
//   node node_side.js replay-c             # replays C (C's)
//   node node_side.js race KEY START_MS
//
// Environment: SEAWALL_REDIS_URL, SEAWALL_INTEROP_PREFIX. Prints "PASS: ..." / "FAIL: ..."
// lines, or for `race` one line "RACE node executed=<0|1> value=<compact JSON>"; exits 1 on
// a failure.
const assert = require('node:assert');
const path = require('node:path');
const { IdempotencyCache, RedisStore } = require('seawall');

const VALUES = require(path.join(__dirname, 'values.json'));
const store = new RedisStore({ url: process.env.SEAWALL_REDIS_URL, prefix: process.env.SEAWALL_INTEROP_PREFIX });
const cache = new IdempotencyCache({ name: 'interop', store });
let failed = 0;

function check(ok, what) {
  console.log(`${ok ? 'PASS' : 'FAIL'}: ${what}`);
  if (!ok) failed++;
}

function deepEqual(a, b) {
  try {
    assert.deepStrictEqual(a, b);
    return true;
  } catch {
    return false;
  }
}

async function run(key, value, work) {
  let executed = false;
  const result = await cache.run(key, async () => {
    executed = true;
    return work ? work() : value;
  });
  return { executed, result };
}

async function expectReplay(key, expected, wroteBy) {
  const { executed, result } = await run(key, { must: 'not run' });
  check(!executed, `node: key ${key} replays (written by ${wroteBy}), the function did not run`);
  check(deepEqual(result, expected), `node: key ${key} replays the value ${wroteBy} stored: ${JSON.stringify(result)}`);
}

async function main(argv) {
  const mode = argv[2];
  if (mode === 'replay-a-write-b') {
    await expectReplay('A', VALUES.A, 'python');
    const { executed, result } = await run('B', VALUES.B);
    check(executed, 'node: key B is fresh and executes');
    check(deepEqual(result, VALUES.B), 'node: key B returns the stored value');
  } else if (mode === 'replay-c') {
    await expectReplay('C', VALUES.C, 'c');
  } else if (mode === 'race') {
    const key = argv[3];
    const startMs = Number(argv[4]);
    await new Promise((r) => setTimeout(r, Math.max(0, startMs - Date.now())));
    const { executed, result } = await run(key, null, async () => {
      await new Promise((r) => setTimeout(r, 500)); // hold the lease: the others are duplicates in progress
      return { winner: 'node' };
    });
    console.log(`RACE node executed=${executed ? 1 : 0} value=${JSON.stringify(result)}`);
    // Informational: 1 when this process found the key in progress and waited for the owner.
    console.log(`race-info node waited=${cache.stats().waited}`);
  } else {
    console.error('usage: node node_side.js replay-a-write-b | replay-c | race KEY START_MS');
    return 2;
  }
  return failed ? 1 : 0;
}

main(process.argv).then(
  (code) => process.exit(code),
  (err) => {
    console.log(`FAIL: node: ${err && err.code ? err.code + ': ' : ''}${err && err.message}`);
    process.exit(1);
  },
);
