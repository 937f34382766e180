// Type definitions for seawall/express: the Idempotency-Key middleware, deadline
// propagation and a fetch wrapper, for Express, Connect and node:http (with a `next`).
// Semantics and the stored-response layout: docs/http.md. Durations are milliseconds.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Deadline, IdempotencyCache, IdempotencyRecord } from './index';

/** A Connect/Express middleware. Express's `Request`/`Response` are accepted. */
export type Middleware = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;

export interface IdempotencyOptions {
  /** Methods the middleware applies to (others pass through untouched). Default `['POST', 'PATCH']`. */
  methods?: readonly string[];
  /**
   * Answer 400 (`idempotency-key-missing`) when a covered request has no `Idempotency-Key`.
   * Default false: such requests pass through unprotected.
   */
  required?: boolean;
  /**
   * A duplicate that arrives while the first request runs: `'wait'` for its response (up to
   * the cache's `waitTimeout`, then 409) or `'reject'` at once with 409 and `Retry-After`.
   * Default: the cache's `onDuplicate` (itself `'wait'` by default).
   */
  onDuplicate?: 'wait' | 'reject';
  /**
   * Who is calling (an account, a tenant, an API key id): keys are scoped by it, so one
   * caller can never replay another's response. May return a Promise. `undefined` means
   * anonymous (one shared scope). Runs before the body is read.
   */
  identity?: (req: IncomingMessage) => string | undefined | null | Promise<string | undefined | null>;
  /** Request headers that are part of the fingerprint (same key + another value: 422). Default none. */
  fingerprintHeaders?: readonly string[];
  /**
   * Response headers stored and replayed (case-insensitive). Content-Type is always kept;
   * Content-Length, Transfer-Encoding, Connection and other framing headers never are.
   * Default `DEFAULT_REPLAY_HEADERS`. Headers outside the list (Set-Cookie...) are never
   * written to the store.
   */
  replayHeaders?: readonly string[];
  /**
   * Whether a response with this status is stored (and replayed to retries) or the key is
   * released once it is sent (so a retry runs again). Default: stored below 500, except
   * 408, 425 and 429.
   */
  shouldStore?: (status: number, req: IncomingMessage) => boolean;
  /** Largest request body read for the fingerprint; larger ones get 413. Default 1 MiB. */
  maxBodyBytes?: number;
  /**
   * Also accept an unquoted key (`Idempotency-Key: 8e03978e-...`), as many clients send.
   * Default false (the draft's sf-string only).
   */
  allowUnquotedKey?: boolean;
  /** Prefix of the store keys (docs/http.md); services that share a key space must agree on it. Default `'http:'`. */
  keyPrefix?: string;
}

/**
 * The Idempotency-Key middleware (draft-ietf-httpapi-idempotency-key-header) over an
 * `IdempotencyCache`. Mount it before the body parsers (it reads the raw body for the
 * fingerprint and hands it on). Answers: the route's response, stored; a replay with
 * `Idempotent-Replayed: true`; problem+json 400 (missing / invalid key), 409 (in progress),
 * 413 (body too large), 422 (key reused with another payload), 500 (response over the
 * cache's `maxResultBytes`), 503 (store unavailable).
 */
export function idempotency(cache: IdempotencyCache, options?: IdempotencyOptions): Middleware;

export interface DeadlinesOptions {
  /** Read the `grpc-timeout` request header (`'250m'`, `'3S'`). Default true. */
  grpcTimeout?: boolean;
  /** Also read this header as a whole number of milliseconds (e.g. `'request-timeout'`). Default none. */
  timeoutHeader?: string | null;
  /** The budget of a request that sends none, in ms. Default: no deadline. */
  defaultTimeout?: number;
  /** The most a client may ask for, in ms. Default: no cap. */
  maxTimeout?: number;
}

/**
 * Deadline propagation: the rest of the request runs under the client's budget as the
 * ambient deadline (`currentDeadline()`, nested `timeout()`s, `fetchWithDeadline`), and is
 * answered 504 (problem+json) if it passes first. A malformed header gets 400.
 */
export function deadlines(options?: DeadlinesOptions): Middleware;

/** Aborted when the request's deadline passes or its client disconnects; `undefined` without `deadlines()` or a deadline. */
export function requestSignal(req: IncomingMessage): AbortSignal | undefined;

/** The request's deadline under `deadlines()`, or `undefined`. */
export function requestDeadline(req: IncomingMessage): Deadline | undefined;

export interface DeadlineFetchOptions {
  /** Send `grpc-timeout`. Default true. */
  grpcTimeout?: boolean;
  /** Also send the remaining ms in this header. Default none. */
  timeoutHeader?: string | null;
}

/**
 * `fetch` under the ambient deadline: sends what remains (`grpc-timeout`), aborts at the
 * deadline (rejecting with `SEAWALL_TIMEOUT`), refuses to send once it has passed. Plain
 * `fetch` without an ambient deadline. Headers the caller set are kept.
 */
export function fetchWithDeadline(input: string | URL | Request, init?: RequestInit): Promise<Response>;

/** Makes a `fetchWithDeadline` over another fetch implementation or with other headers. */
export function deadlineFetch(
  fetchImpl?: typeof fetch | null,
  options?: DeadlineFetchOptions,
): (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/** Parses an `Idempotency-Key` value (an RFC 8941 sf-string): `{ key }` or `{ error }`. */
export function parseIdempotencyKey(
  value: string | undefined,
  options?: { allowUnquoted?: boolean },
): { key: string; error?: undefined } | { key?: undefined; error: string };

/** The canonical request bytes whose SHA-256 is the fingerprint (docs/http.md). */
export function requestFingerprint(request: {
  method: string;
  target: string;
  headers?: ReadonlyArray<readonly [string, string | undefined]>;
  body?: Uint8Array | string;
}): Buffer;

/** The store key of a request's response (docs/http.md). */
export function idempotencyStoreKey(parts: {
  method: string;
  path: string;
  identity?: string;
  key: string;
  prefix?: string;
}): string;

/** A record read as a stored HTTP response, or `{ error }` when it is not one. */
export function storedResponse(
  record: IdempotencyRecord,
): { status: number; contentType: string; headers: Array<[string, string]>; body: Buffer; error?: undefined } | { error: string };

/** The response headers replayed by default. */
export const DEFAULT_REPLAY_HEADERS: readonly string[];

/** The prefix of every problem `type` (`'urn:seawall:problem:'`). */
export const PROBLEM_TYPE: string;
