'use strict';
// A redis-server of the tests' own on 127.0.0.1: an ephemeral port, no persistence, killed
// by `stop()`. Needs `redis-server` on the PATH (scripts/bootstrap.sh installs it); a test
// that cannot start one fails (it is never skipped).

const net = require('node:net');
const { spawn } = require('node:child_process');

const { RedisStore } = require('seawall');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A loopback port that was free a moment ago. */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Starts redis-server and waits (up to 10 s) until it answers: `{ url, stop() }`. */
async function startRedis() {
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}/0`;
  const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const stop = () => server.kill('SIGKILL');
  let spawnError;
  server.on('error', (err) => (spawnError = err));
  const probe = new RedisStore({ url, connectTimeout: 200, reconnectDelay: 10, reconnectMaxDelay: 20 });
  const started = Date.now();
  for (;;) {
    if (spawnError) throw new Error(`cannot start redis-server (install it: scripts/bootstrap.sh): ${spawnError.message}`);
    try {
      await probe.ping();
      return { url, stop };
    } catch (err) {
      if (Date.now() - started > 10_000) {
        stop();
        throw new Error(`redis-server did not answer on ${url}: ${err.message}`);
      }
      await sleep(50);
    }
  }
}

module.exports = { freePort, startRedis };
