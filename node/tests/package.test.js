'use strict';
// The package itself: versions agree with the workspace, and the tests run against the
// installed package, not the repository's copy.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const repo = process.env.SEAWALL_REPO || path.resolve(__dirname, '..', '..');

function workspaceVersion() {
  const toml = fs.readFileSync(path.join(repo, 'Cargo.toml'), 'utf8');
  const section = toml.split(/^\[workspace\.package\]\s*$/m)[1];
  assert.ok(section, 'Cargo.toml has a [workspace.package] section');
  const m = section.match(/^version\s*=\s*"([^"]+)"/m);
  assert.ok(m, 'workspace.package.version found');
  return m[1];
}

test('the package version, the native version and the workspace version agree', () => {
  const want = workspaceVersion();
  const seawall = require('seawall');
  assert.equal(seawall.version, want, "require('seawall').version");
  assert.equal(require('seawall/package.json').version, want, 'package.json version');
  assert.equal(require('seawall/package.json').name, 'seawall');
});

test("require('seawall') resolves to the installed package, outside the repository", () => {
  const resolved = fs.realpathSync(require.resolve('seawall'));
  const root = fs.realpathSync(repo);
  const rel = path.relative(root, resolved);
  assert.ok(
    rel.startsWith('..') || path.isAbsolute(rel),
    `seawall resolved to ${resolved}, inside the repository ${root}; run scripts/test-node.sh, which installs the packed package`,
  );
  assert.ok(resolved.includes(`${path.sep}node_modules${path.sep}seawall${path.sep}`), `${resolved} is in node_modules`);
});

test('the installed package ships its native addon, types and no runtime dependencies', () => {
  const dir = path.dirname(require.resolve('seawall/package.json'));
  const pkg = require('seawall/package.json');
  const files = fs.readdirSync(dir);
  assert.ok(files.some((f) => /^seawall\..+\.node$/.test(f)), `a .node binary in ${files.join(', ')}`);
  assert.ok(files.includes('index.d.ts'), 'index.d.ts is shipped');
  assert.equal(pkg.types, 'index.d.ts');
  assert.equal(pkg.dependencies, undefined, 'no runtime dependencies');
  assert.ok(!files.includes('tests'), 'tests are not shipped');
});

test('the exports map exposes the package entry only (plus package.json)', () => {
  assert.throws(() => require('seawall/index.d.ts'), { code: 'ERR_PACKAGE_PATH_NOT_EXPORTED' });
  const api = require('seawall');
  for (const name of [
    'CircuitBreaker',
    'ManualClock',
    'SystemClock',
    'Permit',
    'version',
    'Deadline',
    'CancelToken',
    'timeout',
    'withDeadline',
    'currentDeadline',
    'parseGrpcTimeout',
    'formatGrpcTimeout',
    'IdempotencyCache',
    'IdempotencyRecord',
    'MemoryStore',
    'Lease',
    'Waiter',
    'RunContext',
    'Registry',
    'observability',
    'canonicalJson',
    'fingerprint',
    'jsonSerializer',
  ]) {
    assert.ok(name in api, `exports ${name}`);
  }
});
