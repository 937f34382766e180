'use strict';
// Idempotency: a payment that must be charged once, however often the request is retried
// or raced. Run: node examples/node/idempotency.js (after scripts/build-node.sh; from an
// npm project that installed the package, or with NODE_PATH pointing at it).
//
// The lease and the TTL run on a ManualClock so the output is the same on every run; the
// "payment provider" is a real 10 ms timer, and the duplicates really wait for it.

const { IdempotencyCache, ManualClock } = require('seawall');

const clock = new ManualClock();
const payments = new IdempotencyCache({ name: 'payments', clock, lease: 5000 });
let charges = 0;

// The handler of POST /orders/:id/charge: the key says "this order's charge", the
// fingerprint says "with this payload" (the same key with another amount is refused).
function charge(orderId, amount) {
  return payments.run(
    `charge:${orderId}`,
    async () => {
      charges++;
      await new Promise((resolve) => setTimeout(resolve, 10)); // the payment provider
      return { chargeId: `ch_${charges}`, orderId, amount };
    },
    { fingerprint: { orderId, amount } },
  );
}

async function main() {
  // 1. A client times out and retries while the first request is still running: five
  //    concurrent requests for one order. One charge; every caller gets its result.
  const results = await Promise.all(Array.from({ length: 5 }, () => charge('o-1', 100)));
  const same = results.every((r) => r.chargeId === results[0].chargeId);
  console.log(`5 concurrent requests: ${charges} charge; every caller got ${results[0].chargeId}: ${same}`);

  // 2. A retry an hour later gets the stored result (kept for the TTL, 24 h by default).
  clock.advance(3_600_000);
  console.log(`retry an hour later: ${(await charge('o-1', 100)).chargeId}, charges = ${charges}`);

  // 3. The same key with another payload is a client bug (HTTP 422).
  try {
    await charge('o-1', 999);
  } catch (err) {
    console.log(`same key, another amount: ${err.code}`);
  }

  // 4. An owner fails after side effects (outcome unknown): it abandons its claim, the
  //    duplicate waits until the lease expires, then takes over and runs.
  const owner = payments.run('charge:o-2', (ctx) => {
    ctx.abandon();
    throw new Error('crashed after calling the provider');
  });
  const duplicate = payments.run('charge:o-2', (ctx) => `recovered (took over: ${ctx.tookOver})`);
  await owner.catch((err) => console.log(`owner: ${err.message}`));
  clock.advance(5000);
  console.log(`duplicate, once the lease expired: ${await duplicate}`);

  const s = payments.stats();
  console.log(`stats: executed=${s.executed} replayed=${s.replayed} mismatched=${s.mismatched} takenOver=${s.takenOver}`);
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
