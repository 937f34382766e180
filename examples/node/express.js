'use strict';
// An Express service whose POST /orders is safe to retry: the Idempotency-Key middleware
// runs each order once per key, replays the stored response to retries and racing
// duplicates, and refuses a key reused for another order; deadlines() gives each request
// the client's budget (grpc-timeout) and answers 504 when it runs out.
// Run: npm install express, then node examples/node/express.js (it starts the service on a
// free port, sends it a few requests, prints what came back and exits).

const express = require('express');
const { IdempotencyCache } = require('seawall');
const { idempotency, deadlines } = require('seawall/express');

const orders = new IdempotencyCache({ name: 'orders' }); // or { store: new RedisStore({ url }) }
const app = express();
app.use(deadlines({ defaultTimeout: 5000 }));
let created = 0;
app.post('/orders', idempotency(orders, { required: true }), express.json(), async (req, res) => {
  await new Promise((r) => setTimeout(r, req.body.slow ? 200 : 20)); // the work
  created++;
  res.status(201).location(`/orders/${created}`).json({ id: created, item: req.body.item });
});

// --- a client, to show what each request gets ---
const server = app.listen(0, '127.0.0.1', async () => {
  const url = `http://127.0.0.1:${server.address().port}/orders`;
  const order = (key, body, headers = {}) =>
    fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(key && { 'idempotency-key': key }), ...headers },
      body: JSON.stringify(body),
    });
  const show = async (what, res) => {
    const type = res.headers.get('content-type');
    const body = await res.json();
    const replayed = res.headers.get('idempotent-replayed') === 'true' ? ' (replayed)' : '';
    console.log(
      `${what}: ${res.status}${replayed} ${type.startsWith('application/problem+json') ? body.type : JSON.stringify(body)}`,
    );
  };

  await show('first', await order('"7f3c9a2e"', { item: 'book' }));
  await show('retry', await order('"7f3c9a2e"', { item: 'book' }));
  await show('same key, other item', await order('"7f3c9a2e"', { item: 'lamp' }));
  await show('no key', await order(undefined, { item: 'book' }));
  const racing = await Promise.all([1, 2, 3].map(() => order('"b81d4fae"', { item: 'pen' })));
  const distinct = new Set(await Promise.all(racing.map((r) => r.text()))).size;
  console.log(`3 racing requests: ${distinct} distinct response, orders created: ${created}`);
  await show(
    'client budget 50 ms, 200 ms of work',
    await order('"c0ffee00"', { item: 'desk', slow: true }, { 'grpc-timeout': '50m' }),
  );
  await new Promise((r) => setTimeout(r, 250));
  await show('its retry, once done', await order('"c0ffee00"', { item: 'desk', slow: true }));
  server.close();
});
