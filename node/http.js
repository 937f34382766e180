'use strict';
// seawall's HTTP integrations for Node's request and response objects (node:http, Express,
// Connect): the Idempotency-Key middleware (draft-ietf-httpapi-idempotency-key-header),
// deadline propagation (grpc-timeout in, 504 out) and a fetch wrapper that hands the
// remaining budget on. Public entry point: `seawall/express` (express.js).
//
// docs/http.md is the contract, shared with the Python middleware: the key syntax, the
// fingerprint and store-key bytes, the stored-response layout and the problem bodies.
// Every decision about the cache (leases, fencing, waiting, sizes) is the core's; this file
// only speaks HTTP.

const crypto = require('node:crypto');
const http = require('node:http');
const { IdempotencyCache, currentDeadline, parseGrpcTimeout, timeout } = require('./index.js');

// --- errors, option checks ---------------------------------------------------------------

function shown(value) {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (value === null) return '<null>';
  if (Array.isArray(value)) return '<array>';
  return `<${typeof value}>`;
}

/** An option refused; worded like the core's configuration errors. */
function optionError(field, value, reason, Ctor = TypeError) {
  const v = shown(value);
  const err = new Ctor(`invalid configuration: ${field} = ${v}: ${reason}`);
  err.code = 'SEAWALL_CONFIG';
  err.field = field;
  err.value = v;
  err.reason = reason;
  return err;
}

function checkOptions(options, known, what) {
  if (options === undefined) return {};
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    const err = new TypeError(`invalid argument: ${what} options must be an object, got ${shown(options)}`);
    err.code = 'SEAWALL_INVALID_ARGUMENT';
    throw err;
  }
  for (const name of Object.keys(options)) {
    if (!known.includes(name)) {
      throw optionError(name, options[name], `unknown option of ${what} (known: ${known.join(', ')})`);
    }
  }
  return options;
}

function durationOption(field, value, { positive = false } = {}) {
  if (value === undefined) return undefined;
  if (typeof value !== 'number') throw optionError(field, value, 'expected a duration in ms (number)');
  if (!Number.isFinite(value) || value < 0 || (positive && value === 0)) {
    throw optionError(
      field,
      value,
      positive ? 'must be a finite number of ms > 0' : 'must be a finite number of ms >= 0',
      RangeError,
    );
  }
  return value;
}

function functionOption(field, value) {
  if (value === undefined) return undefined;
  if (typeof value !== 'function') throw optionError(field, value, 'expected a function');
  return value;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/; // an HTTP field name / method (RFC 9110 token)

function namesOption(field, value, fallback, { lower = true, reject } = {}) {
  if (value === undefined) return fallback;
  if (!Array.isArray(value)) throw optionError(field, value, 'expected an array of names');
  const out = [];
  for (const v of value) {
    if (typeof v !== 'string' || !TOKEN.test(v)) throw optionError(field, v, 'expected an HTTP token (a header or method name)');
    const n = lower ? v.toLowerCase() : v.toUpperCase();
    if (reject !== undefined && reject.has(n))
      throw optionError(field, v, 'this header is never stored or replayed (see docs/http.md)');
    if (!out.includes(n)) out.push(n);
  }
  return out;
}

// --- problem responses (RFC 9457) ---------------------------------------------------------

const PROBLEM_TYPE = 'urn:seawall:problem:';

// slug -> [status, title]: identical in every language (docs/http.md).
const PROBLEMS = {
  'idempotency-key-missing': [400, 'Idempotency-Key header is missing'],
  'idempotency-key-invalid': [400, 'Idempotency-Key header is invalid'],
  'request-too-large': [413, 'Request content is too large'],
  'idempotency-key-in-progress': [409, 'A request with this Idempotency-Key is still being processed'],
  'idempotency-key-reused': [422, 'Idempotency-Key was already used with a different request'],
  'idempotency-store-unavailable': [503, 'The idempotency store is unavailable'],
  'response-too-large': [500, 'The response is too large to store'],
  'stored-response-unreadable': [500, 'The stored response cannot be replayed'],
  'invalid-timeout': [400, 'The request timeout header is invalid'],
  'deadline-exceeded': [504, 'The request deadline was exceeded'],
};

/** The problem+json document of `slug` (RFC 9457), as a string. */
function problemBody(slug, detail) {
  const [status, title] = PROBLEMS[slug];
  return JSON.stringify({ type: PROBLEM_TYPE + slug, title, status, detail });
}

/**
 * Answers with the problem `slug`. `fresh`: drop the headers set so far (a route's, when
 * the answer replaces what it wrote). `headers`: extra response headers.
 */
function sendProblem(res, slug, detail, headers, fresh = false) {
  const body = problemBody(slug, detail);
  if (fresh) for (const name of res.getHeaderNames()) res.removeHeader(name);
  res.statusCode = PROBLEMS[slug][0];
  res.setHeader('Content-Type', 'application/problem+json');
  res.setHeader('Cache-Control', 'no-store');
  if (headers !== undefined) for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(res.req !== undefined && res.req.method === 'HEAD' ? undefined : body);
}

// --- the Idempotency-Key header (an RFC 8941 sf-string) -----------------------------------

const MAX_KEY_BYTES = 255;

const isDigit = (c) => c >= 0x30 && c <= 0x39;
const isLcAlpha = (c) => c >= 0x61 && c <= 0x7a;
const isAlpha = (c) => isLcAlpha(c) || (c >= 0x41 && c <= 0x5a);
const TCHAR = new Set([...`!#$%&'*+-.^_\`|~`].map((ch) => ch.charCodeAt(0)));
const isTchar = (c) => isAlpha(c) || isDigit(c) || TCHAR.has(c);

// Parses an sf-string at `s[i]` (a DQUOTE). Returns [value, next index] or a reason string.
function sfString(s, i) {
  let out = '';
  for (i++; ;) {
    if (i >= s.length) return 'the quoted string is not closed';
    const c = s.charCodeAt(i++);
    if (c === 0x5c) {
      const d = i < s.length ? s.charCodeAt(i++) : -1;
      if (d !== 0x22 && d !== 0x5c) return 'a backslash may only escape \\" or \\\\';
      out += String.fromCharCode(d);
    } else if (c === 0x22) {
      return [out, i];
    } else if (c < 0x20 || c > 0x7e) {
      return 'a string holds printable ASCII only (0x20-0x7E)';
    } else {
      out += String.fromCharCode(c);
    }
  }
}

// Parses an RFC 8941 bare item at `s[i]`; returns the next index or a reason string.
function sfBareItem(s, i) {
  const c = s.charCodeAt(i);
  if (c === 0x2d || isDigit(c)) {
    // Integer (at most 15 digits) or decimal (at most 12 + 3 digits).
    let j = c === 0x2d ? i + 1 : i;
    let digits = 0;
    let dot = -1;
    if (!isDigit(s.charCodeAt(j))) return 'a number needs a digit';
    for (; j < s.length; j++) {
      const d = s.charCodeAt(j);
      if (isDigit(d)) digits++;
      else if (d === 0x2e && dot === -1) {
        if (digits > 12) return 'a decimal has at most 12 integer digits';
        dot = digits;
      } else break;
      if (dot === -1 && digits > 15) return 'an integer has at most 15 digits';
    }
    if (dot !== -1 && (digits === dot || digits - dot > 3)) return 'a decimal has 1 to 3 fractional digits';
    return j;
  }
  if (c === 0x22) {
    const r = sfString(s, i);
    return typeof r === 'string' ? r : r[1];
  }
  if (c === 0x2a || isAlpha(c)) {
    let j = i + 1;
    while (j < s.length && (isTchar(s.charCodeAt(j)) || s[j] === ':' || s[j] === '/')) j++;
    return j;
  }
  if (c === 0x3a) {
    const end = s.indexOf(':', i + 1);
    if (end === -1 || !/^[A-Za-z0-9+/=]*$/.test(s.slice(i + 1, end))) return 'a byte sequence is not closed or not base64';
    return end + 1;
  }
  if (c === 0x3f) {
    if (s[i + 1] !== '0' && s[i + 1] !== '1') return 'a boolean is ?0 or ?1';
    return i + 2;
  }
  return 'a parameter value is not a Structured Field item';
}

// Parses RFC 8941 parameters (";key[=item]"...) at `s[i]`; returns the next index or a reason.
function sfParameters(s, i) {
  while (i < s.length && s[i] === ';') {
    i++;
    while (s[i] === ' ') i++;
    const c = s.charCodeAt(i);
    if (!(isLcAlpha(c) || c === 0x2a)) return 'a parameter name starts with a lowercase letter or *';
    i++;
    while (i < s.length) {
      const d = s.charCodeAt(i);
      if (isLcAlpha(d) || isDigit(d) || d === 0x5f || d === 0x2d || d === 0x2e || d === 0x2a) i++;
      else break;
    }
    if (s[i] === '=') {
      const r = sfBareItem(s, i + 1);
      if (typeof r === 'string') return r;
      i = r;
    }
  }
  return i;
}

/**
 * Parses an `Idempotency-Key` field value: an RFC 8941 Structured Field Item whose value is
 * a String (`"..."`, printable ASCII, `\"` and `\\` escaped); parameters are parsed and
 * ignored. With `allowUnquoted`, a value that is not quoted is taken as the key when it is
 * 1 to 255 visible ASCII characters without `"`, `\` or `,`. Returns `{ key }`, or
 * `{ error }` saying why the value is refused (empty, over 255 bytes, malformed).
 */
function parseIdempotencyKey(value, options) {
  const allowUnquoted = checkOptions(options, ['allowUnquoted'], 'parseIdempotencyKey()').allowUnquoted === true;
  if (typeof value !== 'string') return { error: 'the field is missing' };
  let i = 0;
  while (value[i] === ' ') i++;
  let key;
  if (value[i] === '"') {
    const r = sfString(value, i);
    if (typeof r === 'string') return { error: `${r} (expected a quoted string such as "8e03978e-40d5-43e8")` };
    key = r[0];
    const p = sfParameters(value, r[1]);
    if (typeof p === 'string') return { error: p };
    let j = p;
    while (value[j] === ' ') j++;
    if (j !== value.length) {
      const rest = JSON.stringify(value.slice(j, j + 10));
      return { error: `unexpected ${rest} after the key (one key per request: a quoted string, optionally ;parameters)` };
    }
  } else if (allowUnquoted && /^[\x21\x23-\x2b\x2d-\x5b\x5d-\x7e]+$/.test(value.trim())) {
    key = value.trim();
  } else {
    const got = JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
    return { error: `it must be a Structured Field string: a quoted string such as "8e03978e-40d5-43e8", got ${got}` };
  }
  if (key.length === 0) return { error: 'the key is empty (a key is 1 to 255 bytes)' };
  if (key.length > MAX_KEY_BYTES) return { error: `the key is ${key.length} bytes long; a key is 1 to 255 bytes` };
  return { key };
}

// --- what identifies a request -----------------------------------------------------------

/** The request target as received (path and query; `req.originalUrl` under Express). */
function requestTarget(req) {
  let t = typeof req.originalUrl === 'string' ? req.originalUrl : req.url;
  if (typeof t !== 'string' || t.length === 0) return '/';
  if (t[0] !== '/') {
    // The absolute form a proxy may send (`POST http://host/orders`): its path and query.
    const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/.exec(t);
    if (m !== null) t = t.slice(m[0].length) || '/';
    if (t[0] === '?') t = `/${t}`;
  }
  return t.endsWith('?') ? t.slice(0, -1) : t;
}

function pathOf(target) {
  const q = target.indexOf('?');
  return q === -1 ? target : target.slice(0, q);
}

/** Every value of request header `name` (lowercase), joined with ", ", or undefined. */
function headerValue(req, name) {
  const d = req.headersDistinct;
  if (d !== undefined) {
    const v = d[name];
    return v === undefined ? undefined : v.join(', ');
  }
  const raw = req.rawHeaders;
  let out;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].toLowerCase() === name) out = out === undefined ? raw[i + 1] : `${out}, ${raw[i + 1]}`;
  }
  return out;
}

/**
 * The canonical bytes of a request that its fingerprint (SHA-256, computed by the core)
 * is taken of (docs/http.md):
 *
 *     "seawall-http-fingerprint/1" LF  METHOD LF  target LF
 *     for each fingerprint header, in the configured order:  name ":" value LF  (absent: name LF)
 *     LF  body
 *
 * `target` is the path and, when it is not empty, "?" and the query, as received. Text is
 * taken byte for byte (Node holds header bytes as latin1 characters).
 */
function requestFingerprint({ method, target, headers = [], body }) {
  let head = `seawall-http-fingerprint/1\n${method}\n${target}\n`;
  for (const [name, value] of headers) head += value === undefined ? `${name}\n` : `${name}:${value}\n`;
  head += '\n';
  const b = body === undefined ? Buffer.alloc(0) : typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  return Buffer.concat([Buffer.from(head, 'latin1'), b]);
}

/**
 * The key the cache stores a request's response under (docs/http.md): `prefix` followed by
 * the lowercase hex SHA-256 of
 *
 *     "seawall-http-key/1" LF  METHOD LF  path LF  identity LF  key
 *
 * (identity in UTF-8, "" without one). Scoped by method, path and identity, so one caller
 * can never replay another's response, and always short enough for the core (at most
 * 255 bytes with the prefix).
 */
function idempotencyStoreKey({ method, path, identity = '', key, prefix = 'http:' }) {
  const h = crypto.createHash('sha256');
  h.update(Buffer.from(`seawall-http-key/1\n${method}\n${path}\n`, 'latin1'));
  h.update(Buffer.from(`${identity}\n`, 'utf8'));
  h.update(Buffer.from(key, 'latin1'));
  return prefix + h.digest('hex');
}

// --- the request body ---------------------------------------------------------------------

class BodyTooLarge {
  constructor(size, known) {
    this.size = size; // bytes seen (or announced) so far
    this.known = known; // true: Content-Length said so; false: reading crossed the limit
  }
}

/**
 * Reads the whole request body (at most `limit` bytes) and puts it back into the stream
 * (`unshift`), so body parsers after the middleware read it as if nothing had: resolves
 * with the Buffer, or with a BodyTooLarge. A body that an earlier middleware consumed is
 * taken from `req.rawBody` (a Buffer or string) when it is there.
 */
function readBody(req, limit) {
  const announced = req.headers['content-length'];
  if (announced !== undefined && /^[0-9]+$/.test(announced) && Number(announced) > limit) {
    return Promise.resolve(new BodyTooLarge(Number(announced), true));
  }
  if (req.readableEnded || req.readableFlowing === true || req._body === true) {
    const raw = req.rawBody;
    if (Buffer.isBuffer(raw) || raw instanceof Uint8Array)
      return Promise.resolve(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength));
    if (typeof raw === 'string') return Promise.resolve(Buffer.from(raw, 'utf8'));
    const err = new Error(
      'seawall idempotency(): the request body was already read by an earlier middleware (a body parser?), and its ' +
        'bytes are needed for the fingerprint: mount idempotency() before the body parsers, or keep the raw body in ' +
        'req.rawBody (express.json({ verify: (req, res, buf) => { req.rawBody = buf } }))',
    );
    err.code = 'SEAWALL_BODY_CONSUMED';
    return Promise.reject(err);
  }
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    const cleanup = () => {
      req.off('readable', onReadable);
      req.off('error', onError);
      req.off('close', onClose);
      req.off('end', onEnd);
    };
    const finish = () => {
      cleanup();
      const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size);
      // Not ended yet ('end' is emitted only once the buffer is empty): the body goes back
      // in front, for whoever reads the request next.
      if (body.length > 0) req.unshift(body);
      resolve(body);
    };
    function onReadable() {
      let c;
      while ((c = req.read()) !== null) {
        size += c.length;
        if (size > limit) {
          cleanup();
          resolve(new BodyTooLarge(size, false));
          return;
        }
        chunks.push(c);
      }
      if (req.complete) finish();
    }
    function onEnd() {
      // Only reached when the stream ended while nothing was left to put back.
      cleanup();
      resolve(Buffer.concat(chunks, size));
    }
    function onError(err) {
      cleanup();
      reject(err);
    }
    function onClose() {
      if (req.complete) return;
      cleanup();
      const err = new Error('the client closed the connection before the request body was complete');
      err.code = 'ECONNRESET';
      reject(err);
    }
    req.on('readable', onReadable);
    req.on('error', onError);
    req.on('close', onClose);
    req.on('end', onEnd);
  });
}

// --- the stored response (docs/http.md: "The stored response") ----------------------------

const FORMAT_NAME = 'seawall-http';
const FORMAT_VERSION = '1';

/** Response headers replayed by default (besides Content-Type, which is always kept). */
const DEFAULT_REPLAY_HEADERS = Object.freeze([
  'cache-control',
  'content-disposition',
  'content-encoding',
  'content-language',
  'content-location',
  'etag',
  'expires',
  'last-modified',
  'link',
  'location',
  'retry-after',
  'vary',
]);

// Never stored nor replayed: framing and connection headers, and what replay sets itself.
const NEVER_REPLAYED = new Set([
  'content-type',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'proxy-connection',
  'upgrade',
  'trailer',
  'te',
  'date',
  'idempotent-replayed',
]);

function headerStrings(v) {
  if (Array.isArray(v)) return v.map(String);
  return v === undefined ? [] : [String(v)];
}

/**
 * The cache output for a response: the body bytes, its Content-Type, and metadata
 * `seawall-http: 1`, `status: NNN`, then `h:<name>: value` for each allow-listed header
 * (one pair per value, in the order the response set them).
 */
function responseOutput(status, contentType, headers, allow, body) {
  const metadata = [
    [FORMAT_NAME, FORMAT_VERSION],
    ['status', String(status)],
  ];
  for (const [name, value] of headers) {
    if (allow.has(name)) for (const v of headerStrings(value)) metadata.push([`h:${name}`, v]);
  }
  return { result: body, contentType: contentType === undefined ? '' : String(contentType), metadata };
}

/**
 * Reads a stored response from a record: `{ status, contentType, headers: [[name, value]],
 * body }`, or `{ error }` when the record is not a stored HTTP response of a version this
 * build reads.
 */
function storedResponse(record) {
  const md = record.metadata;
  if (md.length < 2 || md[0][0] !== FORMAT_NAME) {
    return { error: 'the record under this key is not a stored HTTP response (no "seawall-http" metadata)' };
  }
  if (md[0][1] !== FORMAT_VERSION) {
    return { error: `stored HTTP response format ${JSON.stringify(md[0][1])} is not supported (this build reads "1")` };
  }
  if (md[1][0] !== 'status' || !/^[2-5][0-9][0-9]$/.test(md[1][1])) {
    return { error: `the stored response has no valid status (${JSON.stringify(md[1])})` };
  }
  const headers = [];
  for (let i = 2; i < md.length; i++) {
    const [name, value] = md[i];
    if (!name.startsWith('h:')) continue; // later additions to format 1: ignored
    const h = name.slice(2);
    if (!TOKEN.test(h) || NEVER_REPLAYED.has(h) || /[\r\n\0]/.test(value)) continue;
    headers.push([h, value]);
  }
  return { status: Number(md[1][1]), contentType: record.contentType, headers, body: record.result };
}

/** Answers with a stored response, plus `Idempotent-Replayed: true`. */
function sendStored(res, stored) {
  res.statusCode = stored.status;
  const multi = new Map();
  for (const [name, value] of stored.headers) {
    const prev = multi.get(name);
    if (prev === undefined) multi.set(name, value);
    else multi.set(name, Array.isArray(prev) ? [...prev, value] : [prev, value]);
  }
  for (const [name, value] of multi) res.setHeader(name, value);
  if (stored.contentType !== '') res.setHeader('Content-Type', stored.contentType);
  else res.removeHeader('Content-Type');
  res.setHeader('Idempotent-Replayed', 'true');
  const body = stored.body;
  const bodiless = stored.status === 204 || stored.status === 304;
  if (!bodiless) res.setHeader('Content-Length', body.length);
  res.end(bodiless || res.req.method === 'HEAD' ? undefined : body);
}

// --- capturing the response a route writes -------------------------------------------------

// The response's own state, whatever an inner middleware put in front of it.
const realHeadersSent = Object.getOwnPropertyDescriptor(http.OutgoingMessage.prototype, 'headersSent').get;
const realHeaderNames = http.OutgoingMessage.prototype.getHeaderNames;

function toBuffer(chunk, encoding) {
  if (chunk === undefined || chunk === null) return undefined;
  if (typeof chunk === 'string') return Buffer.from(chunk, typeof encoding === 'string' ? encoding : 'utf8');
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  throw new TypeError(`The "chunk" argument must be of type string or an instance of Buffer or Uint8Array, got ${shown(chunk)}`);
}

// Own properties of `res` replaced while capturing (restored afterwards as they were).
const CAPTURED = [
  'writeHead',
  'write',
  'end',
  'flushHeaders',
  'setHeader',
  'appendHeader',
  'getHeader',
  'getHeaders',
  'getHeaderNames',
  'hasHeader',
  'removeHeader',
  'headersSent',
];

function headersSentError() {
  const err = new Error('Cannot set headers after they are sent to the client');
  err.code = 'ERR_HTTP_HEADERS_SENT';
  return err;
}

/**
 * Holds a route's response instead of sending it: status, headers (in a header map of its
 * own, so nothing another middleware does to `res` meanwhile, such as a 504, mixes with
 * them) and body chunks (up to `limit` bytes). When the status is known (the first
 * writeHead, write or end), `decide(status)` says whether it is to be stored; if not, the
 * capture steps aside and the response streams as usual (`onPass`). Otherwise, when the
 * route ends the response, `onEnd(capture)` stores and then sends it (`send`).
 */
class Capture {
  constructor(res, limit, decide, onPass, onEnd) {
    this.res = res;
    this.limit = limit;
    this.decide = decide;
    this.onPass = onPass;
    this.onEnd = onEnd;
    this.committed = false;
    this.ended = false;
    this.status = 200;
    this.statusSet = false; // writeHead gave the status
    this.statusMessage = undefined;
    this.headers = new Map(); // lowercase name -> [name as set, value]
    this.chunks = [];
    this.size = 0;
    this.oversize = false;
    this.callbacks = [];
    this.saved = new Map();
  }

  install() {
    const res = this.res;
    for (const name of res.getHeaderNames()) this.headers.set(name, [name, res.getHeader(name)]);
    for (const name of CAPTURED) this.saved.set(name, Object.getOwnPropertyDescriptor(res, name));
    const cap = this;
    const h = this.headers;
    res.writeHead = function writeHead(status, reason, headers) {
      return cap.writeHead(status, reason, headers);
    };
    res.write = function write(chunk, encoding, cb) {
      return cap.write(chunk, encoding, cb);
    };
    res.end = function end(chunk, encoding, cb) {
      return cap.end(chunk, encoding, cb);
    };
    res.flushHeaders = function flushHeaders() {};
    res.setHeader = function setHeader(name, value) {
      if (cap.committed) throw headersSentError();
      http.validateHeaderName(name);
      if (Array.isArray(value)) for (const v of value) http.validateHeaderValue(name, v);
      else http.validateHeaderValue(name, value);
      h.set(name.toLowerCase(), [name, value]);
      return this;
    };
    res.appendHeader = function appendHeader(name, value) {
      if (cap.committed) throw headersSentError();
      http.validateHeaderName(name);
      const key = name.toLowerCase();
      const prev = h.get(key);
      const add = Array.isArray(value) ? value : [value];
      for (const v of add) http.validateHeaderValue(name, v);
      h.set(key, prev === undefined ? [name, value] : [prev[0], [].concat(prev[1], add)]);
      return this;
    };
    res.getHeader = function getHeader(name) {
      const e = h.get(String(name).toLowerCase());
      return e === undefined ? undefined : e[1];
    };
    res.getHeaders = function getHeaders() {
      const out = Object.create(null);
      for (const [k, e] of h) out[k] = e[1];
      return out;
    };
    res.getHeaderNames = function getHeaderNames() {
      return [...h.keys()];
    };
    res.hasHeader = function hasHeader(name) {
      return h.has(String(name).toLowerCase());
    };
    res.removeHeader = function removeHeader(name) {
      if (cap.committed) throw headersSentError();
      h.delete(String(name).toLowerCase());
    };
    Object.defineProperty(res, 'headersSent', { configurable: true, enumerable: false, get: () => cap.committed });
  }

  restore() {
    const res = this.res;
    for (const [name, desc] of this.saved) {
      if (desc === undefined) delete res[name];
      else Object.defineProperty(res, name, desc);
    }
    this.saved.clear();
  }

  // Puts the captured headers on `res` (through the methods in place after `restore`).
  #applyHeaders() {
    const res = this.res;
    for (const name of res.getHeaderNames()) if (!this.headers.has(name)) res.removeHeader(name);
    for (const [, [name, value]] of this.headers) res.setHeader(name, value);
  }

  // The status is final: store (keep capturing) or step aside. Returns true to capture.
  commit() {
    if (this.committed) return true;
    this.committed = true;
    if (!this.statusSet) this.status = this.res.statusCode;
    if (this.decide(this.status)) return true;
    this.restore();
    this.#applyHeaders();
    this.res.statusCode = this.status;
    if (this.statusMessage !== undefined) this.res.statusMessage = this.statusMessage;
    this.onPass(this);
    return false;
  }

  writeHead(status, reason, headers) {
    const res = this.res;
    if (typeof reason !== 'string') {
      headers = reason;
      reason = undefined;
    }
    if (!this.committed) {
      this.status = Number(status);
      this.statusSet = true;
      res.statusCode = this.status;
      if (reason !== undefined) this.statusMessage = reason;
      if (Array.isArray(headers)) {
        const grouped = new Map();
        const pairs = headers.length > 0 && Array.isArray(headers[0]) ? headers : [];
        if (pairs.length === 0) for (let i = 0; i + 1 < headers.length; i += 2) pairs.push([headers[i], headers[i + 1]]);
        for (const [k, v] of pairs) {
          const n = String(k);
          const prev = grouped.get(n.toLowerCase());
          grouped.set(n.toLowerCase(), prev === undefined ? [n, v] : [prev[0], [].concat(prev[1], v)]);
        }
        for (const [, [k, v]] of grouped) res.setHeader(k, v);
      } else if (headers !== null && typeof headers === 'object') {
        for (const k of Object.keys(headers)) res.setHeader(k, headers[k]);
      }
    }
    if (!this.commit()) return res.writeHead(this.status, this.statusMessage);
    return res;
  }

  #keep(chunk, encoding) {
    const b = toBuffer(chunk, encoding);
    if (b === undefined || b.length === 0 || this.oversize) return;
    this.size += b.length;
    if (this.size > this.limit) {
      this.oversize = true; // it cannot be stored: drop what was kept (memory stays bounded)
      this.chunks = [];
      return;
    }
    this.chunks.push(b);
  }

  write(chunk, encoding, cb) {
    if (typeof encoding === 'function') {
      cb = encoding;
      encoding = undefined;
    }
    if (this.ended) {
      const err = new Error('write after end');
      err.code = 'ERR_STREAM_WRITE_AFTER_END';
      if (typeof cb === 'function') process.nextTick(cb, err);
      return false;
    }
    if (!this.commit()) return this.res.write(chunk, encoding, cb);
    this.#keep(chunk, encoding);
    if (typeof cb === 'function') this.callbacks.push(cb);
    return true;
  }

  end(chunk, encoding, cb) {
    if (typeof chunk === 'function') {
      cb = chunk;
      chunk = undefined;
    } else if (typeof encoding === 'function') {
      cb = encoding;
      encoding = undefined;
    }
    if (this.ended) return this.res;
    if (!this.commit()) return this.res.end(chunk, encoding, cb);
    this.ended = true;
    this.#keep(chunk, encoding);
    if (typeof cb === 'function') this.callbacks.push(cb);
    this.restore();
    this.onEnd(this);
    return this.res;
  }

  /** The body kept (when not oversize). */
  body() {
    return this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.size);
  }

  /** `[name, value]` of every header the response has, in the order they were set. */
  headerList() {
    return [...this.headers].map(([k, e]) => [k, e[1]]);
  }

  /** Sends what was captured through the methods in place now (after `restore`). */
  send(body) {
    const res = this.res;
    this.#applyHeaders();
    res.statusCode = this.status;
    if (this.statusMessage !== undefined) res.statusMessage = this.statusMessage;
    const cbs = this.callbacks;
    res.end(body, cbs.length === 0 ? undefined : () => cbs.forEach((cb) => cb()));
  }
}

// --- the idempotency middleware -------------------------------------------------------------

const IDEMPOTENCY_OPTIONS = [
  'methods',
  'required',
  'onDuplicate',
  'identity',
  'fingerprintHeaders',
  'replayHeaders',
  'shouldStore',
  'maxBodyBytes',
  'allowUnquotedKey',
  'keyPrefix',
];

/** Statuses stored by default: below 500, except "try again" answers (408, 425, 429). */
function defaultShouldStore(status) {
  return status < 500 && status !== 408 && status !== 425 && status !== 429;
}

function retryAfterSeconds(ms) {
  return String(Math.max(1, Math.ceil((Number(ms) || 0) / 1000)));
}

/**
 * The Idempotency-Key middleware: `(req, res, next)` for Express, Connect or node:http.
 * See express.d.ts and docs/http.md.
 */
function idempotency(cache, options) {
  if (!(cache instanceof IdempotencyCache)) {
    const err = new TypeError(`invalid argument: cache = ${shown(cache)}: expected an IdempotencyCache`);
    err.code = 'SEAWALL_INVALID_ARGUMENT';
    throw err;
  }
  const o = checkOptions(options, IDEMPOTENCY_OPTIONS, 'idempotency()');
  const methods = new Set(namesOption('methods', o.methods, ['POST', 'PATCH'], { lower: false }));
  if (o.required !== undefined && typeof o.required !== 'boolean')
    throw optionError('required', o.required, 'expected a boolean');
  const required = o.required === true;
  if (o.allowUnquotedKey !== undefined && typeof o.allowUnquotedKey !== 'boolean') {
    throw optionError('allowUnquotedKey', o.allowUnquotedKey, 'expected a boolean');
  }
  const keyOptions = { allowUnquoted: o.allowUnquotedKey === true };
  let onDuplicate = o.onDuplicate;
  if (onDuplicate !== undefined && onDuplicate !== 'wait' && onDuplicate !== 'reject') {
    throw optionError(
      'onDuplicate',
      onDuplicate,
      'expected "wait" or "reject"',
      typeof onDuplicate === 'string' ? Error : TypeError,
    );
  }
  if (onDuplicate === undefined) onDuplicate = cache.options.onDuplicate;
  const identity = functionOption('identity', o.identity);
  const shouldStore = functionOption('shouldStore', o.shouldStore) ?? defaultShouldStore;
  const fingerprintHeaders = namesOption('fingerprintHeaders', o.fingerprintHeaders, []);
  const replay = new Set(namesOption('replayHeaders', o.replayHeaders, DEFAULT_REPLAY_HEADERS, { reject: NEVER_REPLAYED }));
  let maxBodyBytes = 1024 * 1024;
  if (o.maxBodyBytes !== undefined) {
    if (typeof o.maxBodyBytes !== 'number') throw optionError('maxBodyBytes', o.maxBodyBytes, 'expected a number of bytes');
    if (!Number.isSafeInteger(o.maxBodyBytes) || o.maxBodyBytes < 0) {
      throw optionError('maxBodyBytes', o.maxBodyBytes, 'must be a whole number of bytes >= 0', RangeError);
    }
    maxBodyBytes = o.maxBodyBytes;
  }
  const keyPrefix = o.keyPrefix ?? 'http:';
  if (typeof keyPrefix !== 'string') throw optionError('keyPrefix', keyPrefix, 'expected a string');
  if (Buffer.byteLength(keyPrefix) > MAX_KEY_BYTES - 64) {
    throw optionError(
      'keyPrefix',
      keyPrefix,
      `must be at most ${MAX_KEY_BYTES - 64} bytes (a store key is the prefix and 64 hex digits)`,
      RangeError,
    );
  }
  const maxResultBytes = cache.options.maxResultBytes;

  // Runs the route for `lease`: captures its response, stores it (or releases the key), sends it.
  function execute(req, res, next, lease) {
    let settled = false;
    const release = () => {
      if (settled) return;
      settled = true;
      try {
        cache.release(lease);
      } catch {
        // lease lost (expired and taken over) or store down: nothing of ours is left to undo
      }
    };
    const capture = new Capture(
      res,
      maxResultBytes,
      (status) => {
        try {
          return shouldStore(status, req) === true;
        } catch (err) {
          process.emitWarning(`seawall idempotency(): shouldStore threw (${err && err.message}); the response is not stored`, {
            type: 'SeawallWarning',
            code: 'SEAWALL_LISTENER_ERROR',
          });
          return false;
        }
      },
      () => {
        // Not stored (5xx by default): the key is released once the response is out, so a
        // retry runs the operation again.
        res.once('finish', release);
        res.once('close', release);
      },
      (cap) => {
        settled = true;
        if (cap.oversize) {
          try {
            cache.release(lease);
          } catch {
            // as above
          }
          sendProblem(
            res,
            'response-too-large',
            `the response body is over ${maxResultBytes} bytes (maxResultBytes of the idempotency cache): ` +
              'it was not stored and the key was released',
            undefined,
            true,
          );
          return;
        }
        const body = cap.body();
        const output = responseOutput(
          cap.status,
          cap.headers.has('content-type') ? cap.headers.get('content-type')[1] : undefined,
          cap.headerList(),
          replay,
          body,
        );
        try {
          cache.complete(lease, output);
        } catch (err) {
          if (err && err.code === 'SEAWALL_INVALID_ARGUMENT') {
            sendProblem(res, 'response-too-large', `${err.message}`, undefined, true);
            return;
          }
          // SEAWALL_LEASE_LOST (the run outlived its lease and another request took the key
          // over) or SEAWALL_STORE_UNAVAILABLE: this response is still the answer to this
          // request; only its replay is lost. Counted in cache.stats().
        }
        cap.send(body);
      },
    );
    capture.install();
    next();
  }

  function answer(req, res, next, outcome) {
    switch (outcome.kind) {
      case 'execute':
        return execute(req, res, next, outcome.lease);
      case 'replay': {
        const stored = storedResponse(outcome.record);
        if (stored.error !== undefined) return sendProblem(res, 'stored-response-unreadable', stored.error);
        return sendStored(res, stored);
      }
      case 'mismatch':
        return sendProblem(
          res,
          'idempotency-key-reused',
          'this Idempotency-Key was already used for a request with another payload; use a new key for a new request',
        );
      default:
        return inProgress(req, res, next, outcome);
    }
  }

  function rejectInProgress(res, retryAfter, waited) {
    const w = waited === undefined ? '' : ` after waiting ${Math.round(waited)} ms`;
    sendProblem(
      res,
      'idempotency-key-in-progress',
      `a request with this Idempotency-Key is still being processed${w}; retry after it completes`,
      { 'Retry-After': retryAfterSeconds(retryAfter) },
    );
  }

  async function inProgress(req, res, next, outcome) {
    const waiter = outcome.waiter;
    if (waiter === null || onDuplicate === 'reject') {
      if (waiter !== null) waiter.cancel();
      return rejectInProgress(res, outcome.retryAfter);
    }
    // Wait for the owner's result, not past the client: a client that goes away (or a
    // deadline answered with 504) cancels the wait.
    const onClose = () => waiter.cancel();
    res.once('close', onClose);
    let r;
    try {
      r = await waiter.result();
    } catch (err) {
      res.off('close', onClose);
      if (res.writableEnded || res.destroyed) return undefined;
      return failed(res, next, err);
    } finally {
      res.off('close', onClose);
    }
    if (r.kind === 'execute' && (res.writableEnded || res.destroyed)) {
      // The owner released the key (or crashed) and this waiter took it over, but its
      // client is gone: hand the key on.
      try {
        cache.release(r.lease);
      } catch {
        // lost already
      }
      return undefined;
    }
    return answer(req, res, next, r);
  }

  // A cache error as an answer: 409, 422, 503, or the error to `next`.
  function failed(res, next, err) {
    switch (err && err.code) {
      case 'SEAWALL_STORE_UNAVAILABLE':
        return sendProblem(res, 'idempotency-store-unavailable', `${err.message}; the request was not processed`, {
          'Retry-After': '1',
        });
      case 'SEAWALL_IDEMPOTENCY_IN_PROGRESS':
        return rejectInProgress(res, err.retryAfter, err.waited);
      case 'SEAWALL_IDEMPOTENCY_MISMATCH':
        return sendProblem(
          res,
          'idempotency-key-reused',
          'this Idempotency-Key was already used for a request with another payload; use a new key for a new request',
        );
      case 'SEAWALL_CANCELLED':
        return undefined;
      default:
        return next(err);
    }
  }

  async function handle(req, res, next) {
    const header = req.headers['idempotency-key'];
    if (header === undefined) {
      if (!required) return next();
      return sendProblem(
        res,
        'idempotency-key-missing',
        `${req.method} requests to this endpoint need an Idempotency-Key header`,
      );
    }
    const parsed = parseIdempotencyKey(header, keyOptions);
    if (parsed.error !== undefined) return sendProblem(res, 'idempotency-key-invalid', `Idempotency-Key: ${parsed.error}`);
    let who = '';
    if (identity !== undefined) {
      const id = await identity(req);
      if (id !== undefined && id !== null && typeof id !== 'string') {
        throw new TypeError(`seawall idempotency(): identity(req) must return a string (or undefined), got ${shown(id)}`);
      }
      who = id ?? '';
    }
    const body = await readBody(req, maxBodyBytes);
    if (body instanceof BodyTooLarge) {
      return sendProblem(
        res,
        'request-too-large',
        `the request content is ${body.known ? body.size : `over ${maxBodyBytes}`} bytes; ` +
          `this endpoint accepts at most ${maxBodyBytes}`,
        body.known && req.complete ? undefined : { Connection: 'close' },
      );
    }
    const target = requestTarget(req);
    const fp = requestFingerprint({
      method: req.method,
      target,
      headers: fingerprintHeaders.map((n) => [n, headerValue(req, n)]),
      body,
    });
    const storeKey = idempotencyStoreKey({
      method: req.method,
      path: pathOf(target),
      identity: who,
      key: parsed.key,
      prefix: keyPrefix,
    });
    let outcome;
    try {
      outcome = cache.begin(storeKey, { fingerprint: fp });
    } catch (err) {
      return failed(res, next, err);
    }
    return answer(req, res, next, outcome);
  }

  return function seawallIdempotency(req, res, next) {
    if (!methods.has(req.method)) return next();
    handle(req, res, next).catch((err) => {
      if (err && err.code === 'ECONNRESET') return; // the client went away while sending
      next(err);
    });
    return undefined;
  };
}

// --- deadlines ------------------------------------------------------------------------------

const DEADLINE_OPTIONS = ['grpcTimeout', 'timeoutHeader', 'defaultTimeout', 'maxTimeout'];
const contexts = new WeakMap(); // req -> the timeout() context of its deadline

// Response methods guarded while a deadline runs: after the 504 they do nothing, so a
// route that answers late neither throws ERR_HTTP_HEADERS_SENT nor crashes the process.
const GUARDED = ['writeHead', 'write', 'end', 'setHeader', 'appendHeader', 'removeHeader', 'flushHeaders', 'addTrailers'];

function installGuard(res) {
  const real = {};
  const saved = new Map();
  const guard = { expired: false, real };
  for (const name of GUARDED) {
    const fn = res[name];
    if (typeof fn !== 'function') continue;
    saved.set(name, Object.getOwnPropertyDescriptor(res, name));
    real[name] = fn;
    res[name] = function guarded(...args) {
      if (!guard.expired) return fn.apply(this, args);
      const cb = args[args.length - 1];
      if ((name === 'write' || name === 'end') && typeof cb === 'function') process.nextTick(cb);
      return name === 'write' ? true : this;
    };
  }
  guard.restore = () => {
    for (const [name, desc] of saved) {
      if (desc === undefined) delete res[name];
      else Object.defineProperty(res, name, desc);
    }
  };
  return guard;
}

/** Answers 504 through the real methods (the route's writes are swallowed from now on). */
function sendDeadlineExceeded(res, guard, ms) {
  guard.expired = true;
  if (res.destroyed || res.writableEnded) return;
  if (realHeadersSent.call(res)) {
    res.destroy(); // part of the response is out: cut it, so the client does not wait on
    return;
  }
  const r = guard.real;
  const body = problemBody('deadline-exceeded', `the request's deadline (${ms} ms) passed before the response was ready`);
  for (const name of realHeaderNames.call(res)) r.removeHeader.call(res, name);
  r.setHeader.call(res, 'Content-Type', 'application/problem+json');
  r.setHeader.call(res, 'Cache-Control', 'no-store');
  r.setHeader.call(res, 'Content-Length', Buffer.byteLength(body));
  // writeHead explicitly: `end` would otherwise call `this.writeHead`, which an inner
  // middleware (the idempotency capture) may hold.
  r.writeHead.call(res, 504);
  r.end.call(res, res.req !== undefined && res.req.method === 'HEAD' ? undefined : body);
}

/**
 * Deadline propagation for incoming requests: reads the client's budget (`grpc-timeout`,
 * and optionally a milliseconds header), runs the rest of the request with it as the
 * ambient deadline (`currentDeadline()`), and answers 504 when it passes before the
 * response. See express.d.ts and docs/http.md.
 */
function deadlines(options) {
  const o = checkOptions(options, DEADLINE_OPTIONS, 'deadlines()');
  if (o.grpcTimeout !== undefined && typeof o.grpcTimeout !== 'boolean')
    throw optionError('grpcTimeout', o.grpcTimeout, 'expected a boolean');
  const grpc = o.grpcTimeout !== false;
  let msHeader = null;
  if (o.timeoutHeader !== undefined && o.timeoutHeader !== null) {
    if (typeof o.timeoutHeader !== 'string' || !TOKEN.test(o.timeoutHeader)) {
      throw optionError('timeoutHeader', o.timeoutHeader, 'expected a header name (or null)');
    }
    msHeader = o.timeoutHeader.toLowerCase();
  }
  const defaultTimeout = durationOption('defaultTimeout', o.defaultTimeout);
  const maxTimeout = durationOption('maxTimeout', o.maxTimeout);

  return function seawallDeadlines(req, res, next) {
    let ms;
    if (grpc) {
      const h = req.headers['grpc-timeout'];
      if (h !== undefined) {
        try {
          ms = parseGrpcTimeout(h);
        } catch (err) {
          return sendProblem(res, 'invalid-timeout', `grpc-timeout: ${err.message}`);
        }
      }
    }
    if (msHeader !== null) {
      const h = req.headers[msHeader];
      if (h !== undefined) {
        if (!/^[0-9]{1,15}$/.test(h)) {
          return sendProblem(
            res,
            'invalid-timeout',
            `${msHeader}: expected a whole number of milliseconds (1 to 15 digits), got ${JSON.stringify(h.slice(0, 40))}`,
          );
        }
        const v = Number(h);
        ms = ms === undefined ? v : Math.min(ms, v);
      }
    }
    if (ms === undefined) ms = defaultTimeout;
    if (ms === undefined) return next();
    if (maxTimeout !== undefined && ms > maxTimeout) ms = maxTimeout;

    const guard = installGuard(res);
    const caller = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) {
        const err = new Error('the client closed the connection before the response was sent');
        err.code = 'ECONNRESET';
        caller.abort(err);
      }
    };
    res.once('close', onClose);
    timeout(
      ms,
      (ctx) =>
        new Promise((resolve) => {
          contexts.set(req, ctx);
          res.once('finish', resolve);
          res.once('close', resolve);
          next();
        }),
      { signal: caller.signal },
    ).then(
      () => {
        res.off('close', onClose);
        guard.restore();
      },
      (err) => {
        res.off('close', onClose);
        if (err && err.code === 'SEAWALL_TIMEOUT') sendDeadlineExceeded(res, guard, ms);
        // else: the client went away; nothing to answer
      },
    );
    return undefined;
  };
}

/**
 * The AbortSignal of a request running under `deadlines()`: aborted when its deadline
 * passes or its client disconnects. `undefined` for a request without a deadline.
 */
function requestSignal(req) {
  const ctx = contexts.get(req);
  return ctx === undefined ? undefined : ctx.signal;
}

/** The deadline of a request running under `deadlines()`, or `undefined`. */
function requestDeadline(req) {
  const ctx = contexts.get(req);
  return ctx === undefined ? undefined : ctx.deadline;
}

// --- outgoing requests: the remaining budget on the wire -----------------------------------

const FETCH_OPTIONS = ['grpcTimeout', 'timeoutHeader'];

function deadlineError(what, cause) {
  const err = new Error(`timed out: the deadline passed ${what}`, cause === undefined ? undefined : { cause });
  err.name = 'TimeoutError';
  err.code = 'SEAWALL_TIMEOUT';
  return err;
}

function anySignal(signals) {
  if (typeof AbortSignal.any === 'function') return AbortSignal.any(signals);
  const c = new AbortController(); // Node < 20.3
  for (const s of signals) {
    if (s.aborted) {
      c.abort(s.reason);
      break;
    }
    s.addEventListener('abort', () => c.abort(s.reason), { once: true });
  }
  return c.signal;
}

/**
 * Wraps a fetch function (default: the global `fetch`, looked up at each call) so that,
 * under an ambient deadline (`currentDeadline()`), every request carries what remains of
 * it (`grpc-timeout`, and `timeoutHeader` in ms when configured) and is aborted when it
 * passes (rejecting with `SEAWALL_TIMEOUT`); a deadline already passed rejects without
 * sending anything. Without an ambient deadline it is plain fetch.
 */
function deadlineFetch(fetchImpl, options) {
  if (fetchImpl !== undefined && fetchImpl !== null && typeof fetchImpl !== 'function') {
    throw optionError('fetch', fetchImpl, 'expected a fetch function');
  }
  const o = checkOptions(options, FETCH_OPTIONS, 'deadlineFetch()');
  if (o.grpcTimeout !== undefined && typeof o.grpcTimeout !== 'boolean')
    throw optionError('grpcTimeout', o.grpcTimeout, 'expected a boolean');
  const grpc = o.grpcTimeout !== false;
  let msHeader = null;
  if (o.timeoutHeader !== undefined && o.timeoutHeader !== null) {
    if (typeof o.timeoutHeader !== 'string' || !TOKEN.test(o.timeoutHeader)) {
      throw optionError('timeoutHeader', o.timeoutHeader, 'expected a header name (or null)');
    }
    msHeader = o.timeoutHeader;
  }
  return async function fetchWithDeadline(input, init) {
    const f = fetchImpl ?? globalThis.fetch;
    const deadline = currentDeadline();
    if (deadline === undefined) return f(input, init);
    const target = input instanceof Request ? input.url : String(input);
    const left = deadline.remaining();
    if (left <= 0) throw deadlineError(`before the request to ${target} was sent`);
    const base =
      init !== undefined && init !== null && init.headers !== undefined
        ? init.headers
        : input instanceof Request
          ? input.headers
          : undefined;
    const headers = new Headers(base);
    if (grpc && !headers.has('grpc-timeout')) headers.set('grpc-timeout', deadline.toGrpcTimeout());
    if (msHeader !== null && !headers.has(msHeader)) headers.set(msHeader, String(Math.max(1, Math.ceil(left))));
    const timer = AbortSignal.timeout(Math.max(1, Math.ceil(left)));
    const own = init !== undefined && init !== null ? init.signal : undefined;
    const signal = own ? anySignal([own, timer]) : timer;
    try {
      return await f(input, { ...init, headers, signal });
    } catch (err) {
      if (timer.aborted && !(own && own.aborted)) throw deadlineError(`before ${target} answered`, err);
      throw err;
    }
  };
}

const fetchWithDeadline = deadlineFetch();

module.exports = {
  idempotency,
  deadlines,
  deadlineFetch,
  fetchWithDeadline,
  requestSignal,
  requestDeadline,
  parseIdempotencyKey,
  requestFingerprint,
  idempotencyStoreKey,
  storedResponse,
  DEFAULT_REPLAY_HEADERS,
  PROBLEM_TYPE,
};
