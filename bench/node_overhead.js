// Per-call overhead of a guarded no-op call in Node, next to a bare call and opossum.
// Run by bench/run.sh in an npm project with the seawall tarball and opossum installed.
'use strict';
const { CircuitBreaker, version } = require('seawall');
let Opossum = null;
try { Opossum = require('opossum'); } catch { /* the peer is optional when run by hand */ }

const N = 200_000;

async function bestNs(fn) {
  let best = Infinity;
  for (let r = 0; r < 5; r++) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < N; i++) await fn();
    best = Math.min(best, Number(process.hrtime.bigint() - t) / N);
  }
  return best;
}

async function main() {
  const noop = () => undefined;
  const asyncNoop = async () => undefined;
  const breaker = new CircuitBreaker({ name: 'bench' });
  const rows = [];
  rows.push(['bare: await noop()', await bestNs(() => noop())]);
  rows.push(['bare: await asyncNoop()', await bestNs(() => asyncNoop())]);
  rows.push(['seawall execute(noop)', await bestNs(() => breaker.execute(noop))]);
  rows.push(['seawall execute(asyncNoop)', await bestNs(() => breaker.execute(asyncNoop))]);
  const wrapped = breaker.wrap(asyncNoop);
  rows.push(['seawall wrap(asyncNoop)()', await bestNs(() => wrapped())]);
  if (Opossum) {
    const peer = new Opossum(asyncNoop, { timeout: false });
    rows.push(['opossum fire() (peer, timeout off)', await bestNs(() => peer.fire())]);
    peer.shutdown();
  }
  const bare = rows[0][1];
  console.log(`node ${process.version}, seawall ${version}, best of 5 x ${N} calls`);
  for (const [label, ns] of rows) {
    const extra = label.startsWith('bare') ? '' : `  (+${(ns - bare).toFixed(0)} ns over bare, x${(ns / bare).toFixed(1)})`;
    console.log(`${label.padEnd(40)} ${ns.toFixed(0).padStart(8)} ns/call${extra}`);
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
