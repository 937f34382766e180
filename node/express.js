'use strict';
// seawall for Express (and Connect, or node:http with a `next`): the Idempotency-Key
// middleware, deadline propagation and a fetch wrapper that hands the remaining budget on.
//
//   const { idempotency, deadlines, fetchWithDeadline } = require('seawall/express');
//   app.use(deadlines());                                   // grpc-timeout in, 504 out
//   app.post('/orders', idempotency(cache), express.json(), createOrder);
//
// Nothing here requires Express itself. Semantics, stored-response layout and the bytes
// that identify a request: docs/http.md (shared with the Python middleware).

const h = require('./http.js');

module.exports = {
  idempotency: h.idempotency,
  deadlines: h.deadlines,
  fetchWithDeadline: h.fetchWithDeadline,
  deadlineFetch: h.deadlineFetch,
  requestSignal: h.requestSignal,
  requestDeadline: h.requestDeadline,
  parseIdempotencyKey: h.parseIdempotencyKey,
  requestFingerprint: h.requestFingerprint,
  idempotencyStoreKey: h.idempotencyStoreKey,
  storedResponse: h.storedResponse,
  DEFAULT_REPLAY_HEADERS: h.DEFAULT_REPLAY_HEADERS,
  PROBLEM_TYPE: h.PROBLEM_TYPE,
};
