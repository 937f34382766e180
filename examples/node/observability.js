'use strict';
// Observability: one registry for breakers and health checks, served as /health and
// /metrics by a plain `http` server on 127.0.0.1 (an ephemeral port), then queried.
// Run: node examples/node/observability.js

const http = require('node:http');
const { Registry, observability } = require('seawall');

const registry = new Registry();
// A critical dependency and a non-critical one (the service works without it, degraded).
const db = registry.breaker('db', { consecutiveFailures: 3 });
const recommendations = registry.breaker('recommendations', {
  consecutiveFailures: 1,
  critical: false,
  fallback: () => [], // served degraded: counted in seawall_breaker_fallbacks_total
});
registry.addCheck('disk', () => true, { timeout: 1000 });
registry.on('event', (e) => console.log(`event: ${e.type} ${e.breaker}${e.to ? ` -> ${e.to}` : ''}`));

function get(port, path) {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode, type: res.headers['content-type'], body }));
      })
      .on('error', reject);
  });
}

async function main() {
  const server = http.createServer(observability.handler(registry));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  try {
    await db.execute(() => 'row');
    let r = await get(port, '/health');
    console.log(`/health: ${r.status} ${JSON.parse(r.body).status}`);

    await recommendations.execute(() => Promise.reject(new Error('timeout'))).catch(() => {});
    const recs = await recommendations.execute(() => ['fresh']); // open: the fallback answers
    console.log(`recommendations while open: ${JSON.stringify(recs)}`);
    r = await get(port, '/health');
    console.log(`/health: ${r.status} ${JSON.parse(r.body).status}`);

    db.forceOpen();
    r = await get(port, '/health');
    console.log(`/health: ${r.status} ${JSON.parse(r.body).status}`);

    r = await get(port, '/metrics');
    console.log(`/metrics: ${r.status} ${r.type}`);
    for (const line of r.body.split('\n')) {
      if (/^seawall_breaker_(fallbacks_total|calls_total\{breaker="db",outcome="success"\})|^seawall_health_status/.test(line)) {
        console.log(`  ${line}`);
      }
    }
  } finally {
    server.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
