// Node: seawall beside opossum and cockatiel, in one process (issue 8).
//
//   cd target/bench/npm-app && node --expose-gc ../../../bench/node_overhead.js   (bench/run.sh does this)
//   SEAWALL_BENCH_SMOKE=1 node bench/node_overhead.js                              (a few seconds, every row)
//
// Packages are resolved from the current directory first (an npm project with the seawall
// tarball and, for the peer rows, opossum@8 and cockatiel@3 installed), then from this file.
// A peer that is not installed gets rows that say so; seawall is required.
//
// Every speed scenario runs its variants round after round in this one process: each round
// runs every variant for one batch (the starting variant rotates), so the noise of a shared
// machine lands on all of them alike. Per variant: median ns per call over the rounds, min–max,
// overhead = guarded − bare in the same round (median over rounds), and for seawall's rows
// the overhead as a multiple of each peer's (`vs`: below 1 = cheaper than that peer).
//
// Writes target/bench/node.{md,json} (node-smoke.{md,json} for a smoke run; set
// SEAWALL_BENCH_OUT to write elsewhere) and prints the same table. Exits 0 unless something
// threw: targets that are not met are reported, not fatal.
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { createRequire } = require('node:module');
const { spawnSync } = require('node:child_process');
const { EventEmitter } = require('node:events');

// The heap rows need global.gc(): run again with --expose-gc when it is missing.
if (typeof globalThis.gc !== 'function') {
  const r = spawnSync(process.execPath, ['--expose-gc', ...process.execArgv, __filename, ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  process.exit(r.status ?? 1);
}

const SMOKE = !!process.env.SEAWALL_BENCH_SMOKE && process.env.SEAWALL_BENCH_SMOKE !== '0';
const CFG = SMOKE
  ? { rounds: 3, batchMs: 1, failBatch: 20, levels: [0, 10, 40, 160], growth: [4, 8], heapCalls: 2000, heapRounds: 1 }
  : { rounds: 21, batchMs: 10, failBatch: 1000, levels: [0, 1000, 4000, 16000], growth: [32, 256], heapCalls: 1e6, heapRounds: 2 };
const OUT = process.env.SEAWALL_BENCH_OUT || path.resolve(__dirname, '..', 'target', 'bench');
const BASE = SMOKE ? 'node-smoke' : 'node';

// --- packages -----------------------------------------------------------------------------

const fromCwd = createRequire(path.join(process.cwd(), 'bench.js'));
function load(name) {
  for (const req of [fromCwd, require]) {
    try {
      return req(name);
    } catch (e) {
      if (e.code !== 'MODULE_NOT_FOUND') throw e;
    }
  }
  return null;
}
function versionOf(name) {
  const p = load(`${name}/package.json`);
  return p ? p.version : null;
}

const seawall = load('seawall');
if (seawall === null) {
  console.error('node_overhead.js: cannot find the seawall package (run it in an npm project that has it installed)');
  process.exit(1);
}
const { CircuitBreaker, IdempotencyCache } = seawall;
const Opossum = load('opossum');
const cockatiel = load('cockatiel');
const VERSIONS = {
  node: process.version,
  seawall: seawall.version,
  opossum: Opossum ? versionOf('opossum') : null,
  cockatiel: cockatiel ? versionOf('cockatiel') : null,
};
const PEERS = ['opossum', 'cockatiel'];
const installed = { opossum: Opossum !== null, cockatiel: cockatiel !== null };

// --- the calls ----------------------------------------------------------------------------

const asyncNoop = async () => undefined;
const BOOM = new Error('boom'); // one error object: the bare failing call allocates nothing either
const asyncFail = async () => {
  throw BOOM;
};
const HOUR = 3_600_000;
const check = (ok, what) => {
  if (!ok) throw new Error(`bench setup: ${what}`);
};

// --- measuring ----------------------------------------------------------------------------

const now = () => process.hrtime.bigint();

// With `gc`, a full gc() before each timed batch (after its setup), so no batch pays for the
// garbage of the one before it (opossum's window rows make megabytes); a batch's own garbage
// is still its own. Only the window rows use it: elsewhere it made some batches slower (a
// young generation shrunk by the full gc), and rotation spreads the garbage evenly.
async function timeBatch(v, n, gc = false) {
  if (v.prepare) await v.prepare(n);
  if (gc && !SMOKE) globalThis.gc();
  const t0 = now();
  await v.run(n);
  const ns = Number(now() - t0) / n;
  if (v.done) await v.done();
  return ns;
}

// Calls per batch so that one batch takes about `batchMs` (clamped to [min, max]), after a
// warm-up long enough for the JIT; `fixed` skips the calibration.
async function calibrate(v, { batchMs, min, max, fixed, gc }) {
  if (fixed) {
    await timeBatch(v, fixed, gc); // warm-up
    return fixed;
  }
  let n = Math.max(1, min);
  let ns;
  for (;;) {
    ns = await timeBatch(v, n, gc);
    if (ns * n >= batchMs * 1e6 || n >= max) break;
    n = Math.min(max, n * 4);
  }
  const calls = Math.max(min, Math.min(max, Math.round((batchMs * 1e6) / ns)));
  await timeBatch(v, calls, gc); // once more at the final size
  return calls;
}

async function interleave(variants, opts) {
  const live = variants.filter((v) => v.run);
  for (const v of live) v.calls = await calibrate(v, opts);
  for (const v of live) v.samples = [];
  for (let r = 0; r < opts.rounds; r++) {
    for (let k = 0; k < live.length; k++) {
      const v = live[(r + k) % live.length];
      v.samples.push(await timeBatch(v, v.calls, opts.gc));
    }
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

// The scenario as written to node.json: per variant median/min/max, overhead (median of the
// per-round differences to `bare`) and, for seawall's rows, overhead ÷ each peer's overhead.
function summarize(id, title, unit, variants) {
  const bare = variants.find((v) => v.id === 'bare');
  const rows = variants.map((v) => {
    if (!v.samples) {
      return { variant: v.id, note: v.note, median: null, min: null, max: null, overhead: null, vs: null };
    }
    const overhead =
      v === bare || !bare || !bare.samples ? null : median(v.samples.map((s, r) => s - bare.samples[r]));
    return {
      variant: v.id,
      note: v.note,
      median: median(v.samples),
      min: Math.min(...v.samples),
      max: Math.max(...v.samples),
      overhead,
      vs: null,
    };
  });
  for (const row of rows) {
    if (!row.variant.startsWith('seawall') || row.overhead === null) continue;
    const vs = {};
    for (const peer of rows) {
      if (PEERS.some((p) => peer.variant.startsWith(p)) && peer.overhead !== null) {
        vs[peer.variant] = row.overhead / peer.overhead;
      }
    }
    if (Object.keys(vs).length > 0) row.vs = vs;
  }
  return { scenario: id, title, unit, variants: rows };
}

function missing(peer, id, note) {
  return { id, note: `${note}: not installed`, peer };
}

// --- scenarios ----------------------------------------------------------------------------

const speed = { rounds: CFG.rounds, batchMs: CFG.batchMs, min: 8, max: 1 << 22 };
const cleanups = [];

async function asyncSuccess() {
  const b1 = new CircuitBreaker({ name: 'bench-execute' });
  const b2 = new CircuitBreaker({ name: 'bench-wrap' });
  const wrapped = b2.wrap(asyncNoop);
  const variants = [
    {
      id: 'bare',
      note: 'await asyncNoop()',
      run: async (n) => {
        for (let i = 0; i < n; i++) await asyncNoop();
      },
    },
    {
      id: 'seawall',
      note: 'await breaker.execute(asyncNoop), default policy (5 failures in a row)',
      run: async (n) => {
        for (let i = 0; i < n; i++) await b1.execute(asyncNoop);
      },
    },
    {
      id: 'seawall-wrap',
      note: 'await wrapped() (breaker.wrap(asyncNoop))',
      run: async (n) => {
        for (let i = 0; i < n; i++) await wrapped();
      },
    },
  ];
  if (Opossum) {
    const o1 = new Opossum(asyncNoop);
    const o2 = new Opossum(asyncNoop, { timeout: false });
    cleanups.push(() => o1.shutdown(), () => o2.shutdown());
    variants.push(
      {
        id: 'opossum',
        note: 'await breaker.fire(), defaults (10 s timeout: a timer per call)',
        run: async (n) => {
          for (let i = 0; i < n; i++) await o1.fire();
        },
      },
      {
        id: 'opossum-notimeout',
        note: 'await breaker.fire(), timeout: false',
        run: async (n) => {
          for (let i = 0; i < n; i++) await o2.fire();
        },
      },
    );
  } else {
    variants.push(missing('opossum', 'opossum', 'opossum defaults'), missing('opossum', 'opossum-notimeout', 'opossum timeout: false'));
  }
  if (cockatiel) {
    const { circuitBreaker, handleAll, ConsecutiveBreaker } = cockatiel;
    const c = circuitBreaker(handleAll, { halfOpenAfter: 10_000, breaker: new ConsecutiveBreaker(5) });
    variants.push({
      id: 'cockatiel',
      note: 'await policy.execute(asyncNoop), ConsecutiveBreaker(5)',
      run: async (n) => {
        for (let i = 0; i < n; i++) await c.execute(asyncNoop);
      },
    });
  } else {
    variants.push(missing('cockatiel', 'cockatiel', 'cockatiel ConsecutiveBreaker(5)'));
  }
  await interleave(variants, speed);
  check(b1.state === 'closed' && b1.snapshot().successes > 0, 'seawall counted the successes');
  return summarize('async_success', 'closed, async success', 'ns/call', variants);
}

// A failing call: a fresh breaker each round (made before the batch is timed) and
// CFG.failBatch failing calls, so every library starts each batch from an empty history
// (opossum's cost per failure grows with its window: see the window rows).
async function failure() {
  let sb;
  const variants = [
    {
      id: 'bare',
      note: 'await asyncFail() (throws one preallocated Error)',
      run: async (n) => {
        for (let i = 0; i < n; i++) {
          try {
            await asyncFail();
          } catch (e) {
            if (e !== BOOM) throw e;
          }
        }
      },
    },
    {
      id: 'seawall',
      note: 'execute, consecutiveFailures 1e9 (never trips)',
      prepare: () => {
        sb = new CircuitBreaker({ name: 'bench-fail', consecutiveFailures: 1e9 });
      },
      run: async (n) => {
        for (let i = 0; i < n; i++) {
          try {
            await sb.execute(asyncFail);
          } catch (e) {
            if (e !== BOOM) throw e;
          }
        }
      },
      done: () => check(sb.state === 'closed' && sb.snapshot().failures > 0, 'seawall stayed closed'),
    },
  ];
  if (Opossum) {
    let o1;
    let o2;
    variants.push(
      {
        id: 'opossum',
        note: 'fire(), defaults (10 s timeout, rolling percentiles), errorThresholdPercentage 100 (never trips)',
        prepare: () => {
          o1 = new Opossum(asyncFail, { errorThresholdPercentage: 100 });
        },
        run: async (n) => {
          for (let i = 0; i < n; i++) {
            try {
              await o1.fire();
            } catch (e) {
              if (e !== BOOM) throw e;
            }
          }
        },
        done: () => {
          check(o1.closed, 'opossum stayed closed');
          o1.shutdown();
        },
      },
      {
        id: 'opossum-lean',
        note: 'fire(), timeout: false, rollingPercentilesEnabled: false, errorThresholdPercentage 100',
        prepare: () => {
          o2 = new Opossum(asyncFail, { errorThresholdPercentage: 100, timeout: false, rollingPercentilesEnabled: false });
        },
        run: async (n) => {
          for (let i = 0; i < n; i++) {
            try {
              await o2.fire();
            } catch (e) {
              if (e !== BOOM) throw e;
            }
          }
        },
        done: () => {
          check(o2.closed, 'opossum stayed closed');
          o2.shutdown();
        },
      },
    );
  } else {
    variants.push(missing('opossum', 'opossum', 'opossum defaults'), missing('opossum', 'opossum-lean', 'opossum lean'));
  }
  if (cockatiel) {
    const { circuitBreaker, handleAll, ConsecutiveBreaker, CircuitState } = cockatiel;
    let c;
    variants.push({
      id: 'cockatiel',
      note: 'execute, ConsecutiveBreaker(1e9) (never trips)',
      prepare: () => {
        c = circuitBreaker(handleAll, { halfOpenAfter: 10_000, breaker: new ConsecutiveBreaker(1e9) });
      },
      run: async (n) => {
        for (let i = 0; i < n; i++) {
          try {
            await c.execute(asyncFail);
          } catch (e) {
            if (e !== BOOM) throw e;
          }
        }
      },
      done: () => check(c.state === CircuitState.Closed, 'cockatiel stayed closed'),
    });
  } else {
    variants.push(missing('cockatiel', 'cockatiel', 'cockatiel ConsecutiveBreaker(1e9)'));
  }
  await interleave(variants, { ...speed, fixed: CFG.failBatch });
  return summarize('failure', `closed, failure (a fresh breaker per round, ${CFG.failBatch} failing calls)`, 'ns/call', variants);
}

async function openRejection() {
  const trip = async (f) => {
    try {
      await f();
    } catch (e) {
      if (e !== BOOM) throw e;
    }
  };
  const sw = new CircuitBreaker({ name: 'bench-open', consecutiveFailures: 1, openDuration: HOUR });
  await trip(() => sw.execute(asyncFail));
  check(sw.state === 'open', `seawall is open (${sw.state})`);
  const swForced = new CircuitBreaker({ name: 'bench-forced' });
  swForced.forceOpen();
  for (const b of [sw, swForced]) {
    try {
      await b.execute(asyncNoop);
      check(false, 'seawall rejected the call');
    } catch (e) {
      check(e instanceof Error && e.code === 'SEAWALL_BREAKER_OPEN', `seawall rejects with an Error with code (${e && e.code})`);
    }
  }
  const variants = [
    {
      id: 'bare',
      note: 'await asyncNoop() (what a rejected call skips)',
      run: async (n) => {
        for (let i = 0; i < n; i++) await asyncNoop();
      },
    },
    {
      id: 'seawall',
      note: 'execute on an open breaker (opened by a failure, 1 h), err.code checked',
      run: async (n) => {
        for (let i = 0; i < n; i++) {
          try {
            await sw.execute(asyncNoop);
          } catch (e) {
            if (e.code !== 'SEAWALL_BREAKER_OPEN') throw e;
          }
        }
      },
    },
    {
      id: 'seawall-forced',
      note: 'execute after forceOpen(), err.code checked',
      run: async (n) => {
        for (let i = 0; i < n; i++) {
          try {
            await swForced.execute(asyncNoop);
          } catch (e) {
            if (e.code !== 'SEAWALL_BREAKER_OPEN') throw e;
          }
        }
      },
    },
  ];
  if (Opossum) {
    const o = new Opossum(asyncFail, { resetTimeout: HOUR });
    cleanups.push(() => o.shutdown());
    await trip(() => o.fire());
    check(o.opened, 'opossum is open');
    variants.push({
      id: 'opossum',
      note: 'fire() on an open breaker (opened by a failure), err.code EOPENBREAKER checked',
      run: async (n) => {
        for (let i = 0; i < n; i++) {
          try {
            await o.fire();
          } catch (e) {
            if (e.code !== 'EOPENBREAKER') throw e;
          }
        }
      },
    });
  } else {
    variants.push(missing('opossum', 'opossum', 'opossum'));
  }
  if (cockatiel) {
    const { circuitBreaker, handleAll, ConsecutiveBreaker, BrokenCircuitError, CircuitState } = cockatiel;
    const c = circuitBreaker(handleAll, { halfOpenAfter: HOUR, breaker: new ConsecutiveBreaker(1) });
    await trip(() => c.execute(asyncFail));
    check(c.state === CircuitState.Open, 'cockatiel is open');
    variants.push({
      id: 'cockatiel',
      note: 'execute on an open breaker (opened by a failure), instanceof BrokenCircuitError checked',
      run: async (n) => {
        for (let i = 0; i < n; i++) {
          try {
            await c.execute(asyncNoop);
          } catch (e) {
            if (!(e instanceof BrokenCircuitError)) throw e;
          }
        }
      },
    });
  } else {
    variants.push(missing('cockatiel', 'cockatiel', 'cockatiel'));
  }
  await interleave(variants, speed);
  return summarize('open_rejection', 'open, rejection', 'ns/call', variants);
}

// The cost of a failing call against the number of failures already in the window: each
// round makes fresh breakers, records `level` failures in them (untimed), then times a batch
// of failing calls (so the window holds level .. level + batch failures while timed).
// Thresholds are out of reach, so nothing trips.
async function windowGrowth(level) {
  const fail = async (f, k) => {
    for (let i = 0; i < k; i++) {
      try {
        await f();
      } catch (e) {
        if (e !== BOOM) throw e;
      }
    }
  };
  const size = 100_000; // count windows: larger than every level + batch
  let sc;
  let st;
  const variants = [
    {
      id: 'bare',
      note: 'await asyncFail()',
      run: async (n) => {
        for (let i = 0; i < n; i++) {
          try {
            await asyncFail();
          } catch (e) {
            if (e !== BOOM) throw e;
          }
        }
      },
    },
    {
      id: 'seawall-count',
      note: `count window of ${size}, failureRateThreshold 1, minimumCalls ${size}`,
      prepare: async () => {
        sc = new CircuitBreaker({ name: 'bench-count', window: 'count', windowSize: size, failureRateThreshold: 1, minimumCalls: size });
        await fail(() => sc.execute(asyncFail), level);
        check(sc.snapshot().windowCalls === level, `seawall count window holds ${level}`);
      },
      run: async (n) => {
        for (let i = 0; i < n; i++) {
          try {
            await sc.execute(asyncFail);
          } catch (e) {
            if (e !== BOOM) throw e;
          }
        }
      },
      done: () => check(sc.state === 'closed', 'seawall (count) stayed closed'),
    },
    {
      id: 'seawall-time',
      note: 'time window 600 s / 60 buckets, failureRateThreshold 1, minimumCalls 1e9',
      prepare: async () => {
        st = new CircuitBreaker({
          name: 'bench-time',
          window: 'time',
          windowDuration: 600_000,
          windowBuckets: 60,
          failureRateThreshold: 1,
          minimumCalls: 1e9,
        });
        await fail(() => st.execute(asyncFail), level);
        check(st.snapshot().windowCalls === level, `seawall time window holds ${level}`);
      },
      run: async (n) => {
        for (let i = 0; i < n; i++) {
          try {
            await st.execute(asyncFail);
          } catch (e) {
            if (e !== BOOM) throw e;
          }
        }
      },
      done: () => check(st.state === 'closed', 'seawall (time) stayed closed'),
    },
  ];
  if (Opossum) {
    // opossum's window is its rolling stats (time buckets). The `level` failures are put in
    // it through its Status (`fires` and `failures` counted, a latency of 0 pushed: what a
    // failing fire() records), since recording them by fire() would take seconds per round.
    const opossumVariant = (id, note, options) => {
      let o;
      return {
        id,
        note,
        prepare: () => {
          o = new Opossum(asyncFail, { errorThresholdPercentage: 100, rollingCountTimeout: 600_000, rollingCountBuckets: 60, ...options });
          const status = o.status;
          for (let i = 0; i < level; i++) {
            status.increment('fires');
            status.increment('failures', 0);
          }
          check(o.stats.failures === level, `opossum window holds ${level}`);
        },
        run: async (n) => {
          for (let i = 0; i < n; i++) {
            try {
              await o.fire();
            } catch (e) {
              if (e !== BOOM) throw e;
            }
          }
        },
        done: () => {
          check(o.closed, 'opossum stayed closed');
          o.shutdown();
        },
      };
    };
    variants.push(
      opossumVariant('opossum', 'rolling window 600 s / 60 buckets, errorThresholdPercentage 100, other options default (10 s timeout, percentiles)', {}),
      opossumVariant('opossum-lean', 'the same, timeout: false, rollingPercentilesEnabled: false', {
        timeout: false,
        rollingPercentilesEnabled: false,
      }),
    );
  } else {
    variants.push(missing('opossum', 'opossum', 'opossum'), missing('opossum', 'opossum-lean', 'opossum lean'));
  }
  if (cockatiel) {
    const { circuitBreaker, handleAll, CountBreaker, SamplingBreaker, CircuitState } = cockatiel;
    const cockatielVariant = (id, note, makeBreaker) => {
      let c;
      return {
        id,
        note,
        prepare: async () => {
          c = circuitBreaker(handleAll, { halfOpenAfter: 10_000, breaker: makeBreaker() });
          await fail(() => c.execute(asyncFail), level);
        },
        run: async (n) => {
          for (let i = 0; i < n; i++) {
            try {
              await c.execute(asyncFail);
            } catch (e) {
              if (e !== BOOM) throw e;
            }
          }
        },
        done: () => check(c.state === CircuitState.Closed, `${id} stayed closed`),
      };
    };
    variants.push(
      cockatielVariant('cockatiel-count', `CountBreaker size ${size}, minimumNumberOfCalls ${size}`, () =>
        new CountBreaker({ threshold: 0.5, size, minimumNumberOfCalls: size }),
      ),
      cockatielVariant('cockatiel-time', 'SamplingBreaker 600 s, minimumRps 1e9', () =>
        new SamplingBreaker({ threshold: 0.5, duration: 600_000, minimumRps: 1e9 }),
      ),
    );
  } else {
    variants.push(missing('cockatiel', 'cockatiel-count', 'cockatiel CountBreaker'), missing('cockatiel', 'cockatiel-time', 'cockatiel SamplingBreaker'));
  }
  // Batches of 32..256 calls (~20 ms), so the window stays near `level` while timed.
  await interleave(variants, { rounds: CFG.rounds, batchMs: SMOKE ? 1 : 20, min: CFG.growth[0], max: CFG.growth[1], gc: true });
  const shown = level >= 1000 && level % 1000 === 0 ? `${level / 1000}k` : String(level);
  return summarize(`failure_window_${shown}`, `failure, ${level} failures already in the window`, 'ns/call', variants);
}

// Heap growth: heapUsed after gc() before and after CFG.heapCalls calls, per variant, in
// rounds (the starting variant rotates). Each figure is one measurement, after gc() on both sides.
async function heap() {
  const ok = new CircuitBreaker({ name: 'heap-success' });
  const bad = new CircuitBreaker({ name: 'heap-failure', consecutiveFailures: 1e9 });
  const open = new CircuitBreaker({ name: 'heap-open', consecutiveFailures: 1, openDuration: HOUR });
  try {
    await open.execute(asyncFail);
  } catch (e) {
    if (e !== BOOM) throw e;
  }
  check(open.state === 'open', 'the heap breaker is open');
  const variants = [
    {
      id: 'bare',
      note: 'await asyncNoop()',
      run: async (n) => {
        for (let i = 0; i < n; i++) await asyncNoop();
      },
    },
    {
      id: 'seawall-success',
      note: 'execute(asyncNoop), closed',
      run: async (n) => {
        for (let i = 0; i < n; i++) await ok.execute(asyncNoop);
      },
    },
    {
      id: 'seawall-failure',
      note: 'execute(asyncFail), closed (consecutiveFailures 1e9)',
      run: async (n) => {
        for (let i = 0; i < n; i++) {
          try {
            await bad.execute(asyncFail);
          } catch (e) {
            if (e !== BOOM) throw e;
          }
        }
      },
    },
    {
      id: 'seawall-open',
      note: 'execute(asyncNoop), open: rejected',
      run: async (n) => {
        for (let i = 0; i < n; i++) {
          try {
            await open.execute(asyncNoop);
          } catch (e) {
            if (e.code !== 'SEAWALL_BREAKER_OPEN') throw e;
          }
        }
      },
    },
  ];
  const heapUsed = () => {
    globalThis.gc();
    globalThis.gc();
    return process.memoryUsage().heapUsed;
  };
  const warm = Math.min(CFG.heapCalls, 100_000);
  for (const v of variants) {
    await v.run(warm);
    v.samples = [];
  }
  for (let r = 0; r < CFG.heapRounds; r++) {
    for (let k = 0; k < variants.length; k++) {
      const v = variants[(r + k) % variants.length];
      const before = heapUsed();
      await v.run(CFG.heapCalls);
      v.samples.push(heapUsed() - before);
    }
  }
  return summarize('heap', `heap growth over ${CFG.heapCalls.toLocaleString('en-US')} calls (heapUsed after gc())`, 'bytes', variants);
}

// Idempotency on the memory store: `cache.run(key, fn)` with a new key each call (fresh:
// claim, fn, JSON.stringify, complete, JSON.parse) and with keys already completed (replay).
// What a call into the addon costs, each way a binding can make one (the issue's crossing
// table): the designs of the hot paths follow from these numbers.
async function crossings() {
  const floor = seawall._internal && seawall._internal.floor;
  const inlined = (x) => x + 1;
  const variants = [
    {
      id: 'bare',
      note: 'an inlined JS function',
      run: (n) => {
        let s = 0;
        for (let i = 0; i < n; i++) s = inlined(s);
        check(s === n, 'inlined');
      },
    },
  ];
  if (!floor) {
    variants.push({ id: 'napi', note: 'this seawall build has no crossing probes (_internal.floor)' });
    return summarize('crossings', 'napi crossings', 'ns/call', variants);
  }
  const raw = floor.rawNoop();
  const ext = floor.makeExternal();
  const obj = new floor.FloorObject();
  variants.push(
    {
      id: 'raw function',
      note: 'a raw Node-API function (napi_create_function), no arguments: how the hot paths are made',
      run: (n) => {
        for (let i = 0; i < n; i++) raw();
      },
    },
    {
      id: 'napi fn',
      note: 'a #[napi] free function, no arguments',
      run: (n) => {
        for (let i = 0; i < n; i++) floor.noop();
      },
    },
    {
      id: 'napi fn(u32)',
      note: 'a #[napi] free function taking and returning a u32',
      run: (n) => {
        let s = 0;
        for (let i = 0; i < n; i++) s = floor.u32(i & 1023);
        check(s === (n - 1) % 1024 || n === 0, 'u32');
      },
    },
    {
      id: 'napi fn(External)',
      note: 'a #[napi] free function taking an External (a native handle)',
      run: (n) => {
        for (let i = 0; i < n; i++) floor.external(ext);
      },
    },
    {
      id: 'napi method',
      note: 'a #[napi] class method, no arguments',
      run: (n) => {
        for (let i = 0; i < n; i++) obj.method();
      },
    },
  );
  await interleave(variants, speed);
  return summarize('crossings', 'napi crossings', 'ns/call', variants);
}

async function idempotency() {
  const RESULT = { id: 42, status: 'ok' };
  const work = async () => RESULT;
  let replayRuns = 0;
  const replayWork = async () => {
    replayRuns++;
    return RESULT;
  };
  const fresh = new IdempotencyCache({ name: 'bench-fresh' });
  const roomy = new IdempotencyCache({ name: 'bench-fresh-roomy', maxEntries: 1_000_000, maxBytes: 1 << 30 });
  const replay = new IdempotencyCache({ name: 'bench-replay' });
  const REPLAY_KEYS = 1024;
  const rkeys = Array.from({ length: REPLAY_KEYS }, (_, i) => `replay-${i}`);
  for (const k of rkeys) await replay.run(k, replayWork);
  check(replayRuns === REPLAY_KEYS, 'replay keys stored');
  const again = await replay.run(rkeys[0], replayWork);
  check(replayRuns === REPLAY_KEYS && again.id === 42 && again.status === 'ok', 'a replay returns the stored result');
  let seq = 0;
  let keys = [];
  const variants = [
    {
      id: 'bare',
      note: 'await work() (an async fn returning a small object)',
      run: async (n) => {
        for (let i = 0; i < n; i++) await work();
      },
    },
    {
      id: 'seawall-fresh',
      note: 'cache.run(newKey, work): default memory store (maxEntries 10000: at the bound, each run evicts one)',
      prepare: (n) => {
        keys = new Array(n);
        for (let i = 0; i < n; i++) keys[i] = `fresh-${seq++}`;
      },
      run: async (n) => {
        for (let i = 0; i < n; i++) await fresh.run(keys[i], work);
      },
    },
    {
      id: 'seawall-fresh-roomy',
      note: 'the same on a store with maxEntries 1e6 (never at its bound here: nothing evicted)',
      prepare: (n) => {
        keys = new Array(n);
        for (let i = 0; i < n; i++) keys[i] = `fresh-${seq++}`;
      },
      run: async (n) => {
        for (let i = 0; i < n; i++) await roomy.run(keys[i], work);
      },
    },
    {
      id: 'seawall-replay',
      note: `cache.run(storedKey, work): ${REPLAY_KEYS} keys completed before, fn never runs`,
      run: async (n) => {
        for (let i = 0; i < n; i++) await replay.run(rkeys[i & (REPLAY_KEYS - 1)], replayWork);
      },
    },
  ];
  await interleave(variants, speed);
  check(replayRuns === REPLAY_KEYS, `replays never ran fn (it ran ${replayRuns - REPLAY_KEYS} times)`);
  return summarize('idempotency', 'idempotency cache.run, memory store', 'ns/call', variants);
}

// --- targets ------------------------------------------------------------------------------

const fmt = (x, digits) => {
  if (x === null || x === undefined || Number.isNaN(x)) return '—';
  const d = digits ?? (Math.abs(x) >= 100 ? 0 : 1);
  return x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
};
const signed = (x) => (x === null ? '—' : (x >= 0 ? '+' : '−') + fmt(Math.abs(x)));

function targets(scenarios) {
  const sc = (id) => scenarios.find((s) => s.scenario === id);
  const row = (id, v) => sc(id)?.variants.find((r) => r.variant === v);
  const have = (r) => r && r.median !== null;
  const out = [];
  const add = (target, measured, met) => out.push({ target, measured, met });

  // 1. async execute overhead against cockatiel's and opossum's.
  const sw = row('async_success', 'seawall');
  const ck = row('async_success', 'cockatiel');
  const op = row('async_success', 'opossum');
  if (have(ck)) {
    const ratio = sw.overhead / ck.overhead;
    add(
      "async execute overhead ≤ cockatiel's (aim: half)",
      `seawall ${signed(sw.overhead)} ns, cockatiel ${signed(ck.overhead)} ns: ${fmt(ratio, 2)}× cockatiel's${ratio <= 0.5 ? ' (aim of half met)' : ' (aim of half not met)'}`,
      ratio <= 1,
    );
  } else add("async execute overhead ≤ cockatiel's (aim: half)", 'not judged: cockatiel not installed', false);
  if (have(op)) {
    const times = op.overhead / sw.overhead;
    add(
      "async execute overhead ≥ 10× less than opossum's (defaults)",
      `seawall ${signed(sw.overhead)} ns, opossum ${signed(op.overhead)} ns: ${fmt(times, 1)}× less`,
      times >= 10,
    );
  } else add("async execute overhead ≥ 10× less than opossum's (defaults)", 'not judged: opossum not installed', false);

  // 2. open rejection: cost per rejected call (whole call, not only the overhead).
  const so = row('open_rejection', 'seawall');
  for (const peer of ['opossum', 'cockatiel']) {
    const p = row('open_rejection', peer);
    const what = `open rejection ≥ 3× cheaper than ${peer} (ns per rejected call)`;
    if (!have(p)) {
      add(what, `not judged: ${peer} not installed`, false);
      continue;
    }
    const times = p.median / so.median;
    const overheadTimes = p.overhead / so.overhead;
    add(
      what,
      `seawall ${fmt(so.median)} ns, ${peer} ${fmt(p.median)} ns: ${fmt(times, 1)}× cheaper (overheads ${signed(so.overhead)} vs ${signed(p.overhead)}: ${fmt(overheadTimes, 1)}×)`,
      times >= 3,
    );
  }

  // 3. failure cost constant in the window contents.
  const levels = scenarios.filter((s) => s.scenario.startsWith('failure_window_'));
  const first = levels[0];
  const last = levels[levels.length - 1];
  for (const v of ['seawall-count', 'seawall-time']) {
    const a = first.variants.find((r) => r.variant === v);
    const b = last.variants.find((r) => r.variant === v);
    const ratio = b.overhead / a.overhead;
    const slack = 50; // ns: a difference this small is noise, whatever the ratio
    add(
      `failure cost constant in recorded failures (${v}): overhead at ${last.scenario.slice(15)} ≤ 1.5× overhead at ${first.scenario.slice(15)}, or within ${slack} ns`,
      `${levels.map((s) => `${s.scenario.slice(15)}: ${signed(s.variants.find((r) => r.variant === v).overhead)} ns`).join(', ')}; ratio ${fmt(ratio, 2)}`,
      ratio <= 1.5 || b.overhead - a.overhead <= slack,
    );
  }

  // 4. heap flat.
  const limit = 1 << 20;
  for (const v of ['seawall-success', 'seawall-failure', 'seawall-open']) {
    const r = row('heap', v);
    add(
      `heap flat over ${CFG.heapCalls.toLocaleString('en-US')} calls (${v}): heapUsed growth ≤ 1 MiB in every round`,
      `max ${fmt(r.max, 0)} bytes over ${CFG.heapRounds} round(s) (min ${fmt(r.min, 0)}; bare: max ${fmt(row('heap', 'bare').max, 0)})`,
      r.max <= limit,
    );
  }

  // 5. idempotency.
  const fr = row('idempotency', 'seawall-fresh');
  const rp = row('idempotency', 'seawall-replay');
  add('idempotency replay overhead ≤ 1 µs', `${signed(rp.overhead)} ns`, rp.overhead <= 1000);
  const roomy = row('idempotency', 'seawall-fresh-roomy');
  add(
    'idempotency fresh run overhead ≤ 2 µs (default memory store)',
    `${signed(fr.overhead)} ns at the store's bound (each run evicts one); ${signed(roomy.overhead)} ns below it`,
    fr.overhead <= 2000,
  );
  return out;
}

// --- output -------------------------------------------------------------------------------

function markdown(report) {
  const lines = [];
  const v = report.versions;
  const peers = PEERS.map((p) => `${p} ${v[p] ?? 'not installed'}`).join(', ');
  lines.push(
    `## Node: seawall beside opossum and cockatiel (${report.date.slice(0, 16).replace('T', ' ')} UTC, ${report.cpus} CPUs${SMOKE ? ', SMOKE RUN: figures meaningless' : ''})`,
    '',
    `Node ${v.node}, seawall ${v.seawall}, ${peers}. One process, variants interleaved round by round (${report.rounds} rounds; ~${CFG.batchMs} ms batches, ${CFG.failBatch} calls per failure batch, ${CFG.growth[0]}–${CFG.growth[1]} calls per window batch); ns per call: median (min–max) over the rounds; overhead = guarded − bare, median over rounds of the same-round difference; vs = this overhead ÷ the peer's (below 1: cheaper). Heap: bytes of heapUsed growth over the calls, after gc().`,
    '',
    '| scenario | variant | median | min–max | overhead | vs peers | notes |',
    '|---|---|---:|---:|---:|---|---|',
  );
  for (const s of report.scenarios) {
    for (const r of s.variants) {
      const unit = s.unit === 'bytes' ? ' B' : '';
      const vs = r.vs ? Object.entries(r.vs).map(([p, x]) => `${fmt(x, 2)}× ${p}`).join(', ') : '';
      lines.push(
        `| ${s.title} | ${r.variant} | ${r.median === null ? '—' : fmt(r.median) + unit} | ${r.median === null ? '—' : `${fmt(r.min)}–${fmt(r.max)}`} | ${signed(r.overhead)} | ${vs} | ${r.note} |`,
      );
    }
  }
  const levels = report.scenarios.filter((s) => s.scenario.startsWith('failure_window_'));
  lines.push('', 'Overhead (ns) of a failing call against the failures already in the window:', '');
  lines.push(`| variant | ${levels.map((s) => s.scenario.slice(15)).join(' | ')} | last ÷ first |`);
  lines.push(`|---|${levels.map(() => '---:').join('|')}|---:|`);
  for (const r of levels[0].variants) {
    if (r.variant === 'bare') continue;
    const os_ = levels.map((s) => s.variants.find((x) => x.variant === r.variant).overhead);
    const ratio = os_[0] === null ? null : os_[os_.length - 1] / os_[0];
    lines.push(`| ${r.variant} | ${os_.map((x) => (x === null ? 'not installed' : signed(x))).join(' | ')} | ${ratio === null ? '—' : fmt(ratio, 2) + '×'} |`);
  }
  lines.push('', '| target | measured | met |', '|---|---|---|');
  for (const t of report.targets) lines.push(`| ${t.target} | ${t.measured} | ${SMOKE ? '— (smoke)' : t.met ? 'yes' : 'no'} |`);
  return lines.join('\n') + '\n';
}

function table(report) {
  const out = [];
  for (const s of report.scenarios) {
    out.push(`\n${s.title} (${s.unit})`);
    for (const r of s.variants) {
      if (r.median === null) {
        out.push(`  ${r.variant.padEnd(18)} ${r.note}`);
        continue;
      }
      const vs = r.vs ? '  ' + Object.entries(r.vs).map(([p, x]) => `${fmt(x, 2)}× ${p}`).join(', ') : '';
      out.push(
        `  ${r.variant.padEnd(18)} ${fmt(r.median).padStart(11)}  (${fmt(r.min)}–${fmt(r.max)})`.padEnd(56) +
          `${r.overhead === null ? '' : signed(r.overhead).padStart(10)}${vs}`,
      );
    }
  }
  out.push('\ntargets');
  for (const t of report.targets) out.push(`  [${SMOKE ? 'smoke' : t.met ? 'met' : 'NOT MET'}] ${t.target}: ${t.measured}`);
  return out.join('\n');
}

async function main() {
  const started = Date.now();
  const cpus = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  console.log(
    `node ${process.version}, seawall ${VERSIONS.seawall}, opossum ${VERSIONS.opossum ?? 'not installed'}, cockatiel ${VERSIONS.cockatiel ?? 'not installed'}; ${CFG.rounds} rounds${SMOKE ? ' (SMOKE RUN)' : ''}`,
  );
  const scenarios = [];
  const step = async (name, f) => {
    const t = Date.now();
    scenarios.push(await f());
    console.log(`  ${name}: ${((Date.now() - t) / 1000).toFixed(1)} s`);
  };
  await step('async success', asyncSuccess);
  await step('failure', failure);
  await step('open rejection', openRejection);
  for (const level of CFG.levels) await step(`failure, ${level} in the window`, () => windowGrowth(level));
  await step('heap', heap);
  await step('idempotency', idempotency);
  await step('napi crossings', crossings);
  for (const f of cleanups) f();
  const report = {
    language: 'node',
    date: new Date().toISOString(),
    cpus,
    rounds: CFG.rounds,
    smoke: SMOKE,
    versions: VERSIONS,
    scenarios,
    targets: [],
  };
  report.targets = targets(scenarios);
  console.log(table(report));
  fs.mkdirSync(OUT, { recursive: true });
  fs.writeFileSync(path.join(OUT, `${BASE}.md`), markdown(report));
  fs.writeFileSync(path.join(OUT, `${BASE}.json`), JSON.stringify(report, null, 2) + '\n');
  console.log(`\nwrote ${path.join(OUT, BASE)}.{md,json} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
