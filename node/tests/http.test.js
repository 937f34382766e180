'use strict';
// The language-neutral pieces of seawall's HTTP integrations (docs/http.md): the
// Idempotency-Key syntax, the fingerprint and store-key bytes (fixed vectors that the
// Python middleware must reproduce), and the stored-response layout read from record bytes
// written by hand in the core's record format.

const nodeTest = require('node:test');
const assert = require('node:assert/strict');

// Every test has a time limit: a regression that hangs a request fails instead of blocking the run.
const test = (name, fn) => nodeTest(name, { timeout: 20_000 }, fn);
test.before = nodeTest.before;
test.after = nodeTest.after;
const crypto = require('node:crypto');

const { IdempotencyRecord, fingerprint } = require('seawall');
const {
  parseIdempotencyKey,
  requestFingerprint,
  idempotencyStoreKey,
  storedResponse,
  deadlineFetch,
  PROBLEM_TYPE,
} = require('seawall/express');

test('Idempotency-Key: valid sf-strings and what they decode to', () => {
  const ok = [
    ['"8e03978e-40d5-43e8-bc93-6894a57f9324"', '8e03978e-40d5-43e8-bc93-6894a57f9324'],
    ['"a"', 'a'],
    ['  "a"  ', 'a'],
    ['"with space"', 'with space'],
    ['"q\\"uote"', 'q"uote'],
    ['"back\\\\slash"', 'back\\slash'],
    ['"k";a', 'k'],
    ['"k";a=1;b="x";c=?0;d=tok/en:1;e=:aGk=:;f=-1.5', 'k'],
    ['"k"; a=1', 'k'],
    [`"${'x'.repeat(255)}"`, 'x'.repeat(255)],
  ];
  for (const [value, key] of ok) assert.deepEqual(parseIdempotencyKey(value), { key }, value);
});

test('Idempotency-Key: refused values, each with a reason', () => {
  const bad = [
    ['8e03978e', /must be a Structured Field string/],
    ['token', /must be a Structured Field string/],
    ['""', /the key is empty/],
    [`"${'x'.repeat(256)}"`, /256 bytes long; a key is 1 to 255 bytes/],
    ['"open', /not closed/],
    ['"a\\nb"', /backslash may only escape/],
    ['"é"', /printable ASCII/],
    ['"tab\there"', /printable ASCII/],
    ['"a", "b"', /unexpected ", \\"b\\"" after the key/],
    ['"a" "b"', /after the key/],
    ['"a";A=1', /parameter name starts with a lowercase letter/],
    ['"a";b=', /not a Structured Field item/],
    ['"a";b=1.2345', /1 to 3 fractional digits/],
    ['"a";b=1234567890123456', /at most 15 digits/],
    ['"a";b=?2', /boolean/],
    ['"a";b=:not base64!:', /byte sequence/],
    ['', /must be a Structured Field string/],
  ];
  for (const [value, reason] of bad) {
    const r = parseIdempotencyKey(value);
    assert.equal(r.key, undefined, value);
    assert.match(r.error, reason, value);
  }
  assert.deepEqual(parseIdempotencyKey(undefined), { error: 'the field is missing' });
});

test('Idempotency-Key: allowUnquoted takes a bare key verbatim, but never quotes, backslashes, commas or spaces', () => {
  const o = { allowUnquoted: true };
  assert.deepEqual(parseIdempotencyKey('8e03978e-40d5', o), { key: '8e03978e-40d5' });
  assert.deepEqual(parseIdempotencyKey('"8e03978e-40d5"', o), { key: '8e03978e-40d5' });
  assert.deepEqual(parseIdempotencyKey('a:b/c;d=e', o), { key: 'a:b/c;d=e' });
  for (const v of ['a"b', 'a\\b', 'a,b', 'a b', 'é']) assert.ok(parseIdempotencyKey(v, o).error, v);
  assert.match(parseIdempotencyKey('k'.repeat(256), o).error, /256 bytes/);
});

test('fingerprint bytes: fixed vectors (docs/http.md; Python must produce the same)', () => {
  const b = requestFingerprint({
    method: 'POST',
    target: '/orders?currency=eur',
    headers: [
      ['x-account', 'acct_1'],
      ['x-absent', undefined],
    ],
    body: Buffer.from('{"amount":100}'),
  });
  assert.equal(
    b.toString('latin1'),
    'seawall-http-fingerprint/1\nPOST\n/orders?currency=eur\nx-account:acct_1\nx-absent\n\n{"amount":100}',
  );
  assert.equal(fingerprint(b), '39ff5d48f8acf5a7a589ad9a8ce57ada6c60dfd3b43dc13700057e2c338c9f02');
  assert.equal(fingerprint(b), crypto.createHash('sha256').update(b).digest('hex'), 'the core hashes the bytes with SHA-256');
  const empty = requestFingerprint({ method: 'POST', target: '/orders' });
  assert.equal(fingerprint(empty), 'ff7414096008c7afad793ccd4a76c2e787c04449e90735baf6e096418d988d9d');
  // Header values are bytes: Node holds them as latin1 characters.
  const raw = requestFingerprint({ method: 'POST', target: '/', headers: [['x-a', 'v\u00c3\u00a9']] });
  assert.deepEqual([...raw.subarray(raw.indexOf('x-a:') + 4, raw.indexOf('x-a:') + 7)], [0x76, 0xc3, 0xa9]);
});

test('store keys: fixed vectors (docs/http.md), scoped by method, path and identity', () => {
  assert.equal(
    idempotencyStoreKey({ method: 'POST', path: '/orders', key: 'order-1' }),
    'http:973109c04d5956190edf56742ab68999acf34400410a2dcd70627a6522ed2d5b',
  );
  assert.equal(
    idempotencyStoreKey({ method: 'POST', path: '/orders', identity: 'acct_1', key: 'order-1' }),
    'http:6f8051b4a7e3ecf42ba447c4518ccd01db33638af082b48861930f8b706b3ff3',
  );
  assert.equal(
    idempotencyStoreKey({ method: 'POST', path: '/orders', identity: 'zoë', key: 'order-1', prefix: 'billing:' }),
    'billing:27a4ba367795bc1165217565b7100a1776476297a8fb51883c72f6e774a5f913',
  );
  const keys = new Set([
    idempotencyStoreKey({ method: 'POST', path: '/orders', key: 'k' }),
    idempotencyStoreKey({ method: 'PATCH', path: '/orders', key: 'k' }),
    idempotencyStoreKey({ method: 'POST', path: '/orders/', key: 'k' }),
    idempotencyStoreKey({ method: 'POST', path: '/orders', identity: 'a', key: 'k' }),
    idempotencyStoreKey({ method: 'POST', path: '/orders', identity: 'a\nk', key: '' }),
  ]);
  assert.equal(keys.size, 5);
});

const { withChecksums } = require('./support/record');

// A record in the core's format (version 2, docs/idempotency.md), written byte by byte.
function recordBytes({ result, contentType, metadata, token = 7n }) {
  const parts = [];
  const u16 = (n) => Buffer.from([n >> 8, n & 255]);
  const u32 = (n) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  const head = Buffer.alloc(64);
  head.write('SWR', 0, 'latin1');
  head[3] = 2;
  head.writeBigUInt64BE(token, 8);
  head.writeBigUInt64BE(1000n, 16);
  head.writeBigUInt64BE(2000n, 24);
  parts.push(head, u16(Buffer.byteLength(contentType)), Buffer.from(contentType), u16(metadata.length));
  for (const [n, v] of metadata) parts.push(u16(Buffer.byteLength(n)), Buffer.from(n), u32(Buffer.byteLength(v)), Buffer.from(v));
  parts.push(u32(result.length), result);
  return withChecksums(Buffer.concat(parts));
}

test('the stored response read from record bytes written by hand (any language writes the same)', () => {
  const bytes = recordBytes({
    result: Buffer.from('{"id":1}'),
    contentType: 'application/json',
    metadata: [
      ['seawall-http', '1'],
      ['status', '201'],
      ['h:location', '/orders/1'],
      ['h:set-cookie', 'a=1'],
      ['h:set-cookie', 'b=2'],
      ['h:content-length', '999'], // never replayed: framing is recomputed
      ['later-field', 'ignored'],
    ],
  });
  const record = IdempotencyRecord.decode(bytes);
  assert.deepEqual(Buffer.from(record.encode()), bytes, 'the core reads and writes the same bytes');
  const r = storedResponse(record);
  assert.equal(r.status, 201);
  assert.equal(r.contentType, 'application/json');
  assert.deepEqual(r.headers, [
    ['location', '/orders/1'],
    ['set-cookie', 'a=1'],
    ['set-cookie', 'b=2'],
  ]);
  assert.equal(Buffer.from(r.body).toString(), '{"id":1}');

  const notHttp = storedResponse(
    IdempotencyRecord.decode(recordBytes({ result: Buffer.from('1'), contentType: 'application/json', metadata: [] })),
  );
  assert.match(notHttp.error, /not a stored HTTP response/);
  const v2 = storedResponse(
    IdempotencyRecord.decode(
      recordBytes({
        result: Buffer.alloc(0),
        contentType: '',
        metadata: [
          ['seawall-http', '2'],
          ['status', '200'],
        ],
      }),
    ),
  );
  assert.match(v2.error, /format "2" is not supported/);
  const noStatus = storedResponse(
    IdempotencyRecord.decode(
      recordBytes({
        result: Buffer.alloc(0),
        contentType: '',
        metadata: [
          ['seawall-http', '1'],
          ['status', '99'],
        ],
      }),
    ),
  );
  assert.match(noStatus.error, /no valid status/);
});

test('problem types and deadlineFetch option errors', () => {
  assert.equal(PROBLEM_TYPE, 'urn:seawall:problem:');
  assert.throws(
    () => deadlineFetch('fetch'),
    (e) => e.code === 'SEAWALL_CONFIG' && e.field === 'fetch',
  );
  assert.throws(
    () => deadlineFetch(undefined, { grpcTimeout: 'yes' }),
    (e) => e.field === 'grpcTimeout' && e.value === '"yes"',
  );
  assert.throws(
    () => deadlineFetch(undefined, { header: 'x' }),
    (e) => e.field === 'header' && /unknown option/.test(e.message),
  );
});

test('seawall/express is exported by the package with its types, and loads without Express', () => {
  const pkg = require('seawall/package.json');
  assert.deepEqual(pkg.exports['./express'], { types: './express.d.ts', default: './express.js' });
  for (const f of ['express.js', 'express.d.ts', 'http.js']) assert.ok(pkg.files.includes(f), f);
  assert.equal(pkg.dependencies, undefined, 'express is not a dependency: the middleware only uses node:http objects');
  const fs = require('node:fs');
  const path = require('node:path');
  const dir = path.dirname(require.resolve('seawall/package.json'));
  for (const f of ['express.js', 'express.d.ts', 'http.js'])
    assert.ok(fs.existsSync(path.join(dir, f)), `${f} is in the installed package`);
  assert.throws(() => require('seawall/http.js'), { code: 'ERR_PACKAGE_PATH_NOT_EXPORTED' });
});
