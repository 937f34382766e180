'use strict';
// The Node example of the README.
//
// Run: node examples/node/breaker.js (with the seawall package installed)

const { CircuitBreaker, ManualClock } = require('seawall');

async function fetchPrice(up) {
  if (!up) throw new Error('connection refused');
  return 42;
}

async function main() {
  const clock = new ManualClock(); // for an exact run; leave it out to use the system clock
  const breaker = new CircuitBreaker({ name: 'prices', consecutiveFailures: 2, openDuration: 10_000, clock });
  breaker.on('stateChange', (e) => console.log(`event: ${e.from} -> ${e.to} (${e.reason})`));

  for (let i = 0; i < 2; i++) {
    await breaker.execute(fetchPrice, false).catch((err) => console.log(`failed: ${err.message}`));
  }
  await breaker.execute(fetchPrice, true).catch((err) => {
    console.log(`rejected: ${err.code}, retry after ${err.retryAfter} ms`);
  });
  clock.advance(10_000);
  const price = await breaker.execute(fetchPrice, true); // the probe succeeds
  console.log(`price = ${price}, state = ${breaker.state}`);

  // wrap() keeps the function's signature; the fallback answers only when the breaker rejects.
  const quotes = new CircuitBreaker({ name: 'quotes', consecutiveFailures: 1, clock, fallback: () => 'cached' });
  const getQuote = quotes.wrap(fetchPrice);
  await getQuote(false).catch((err) => console.log(`failed: ${err.message}`));
  console.log(`quote = ${await getQuote(true)}, state = ${quotes.state}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
