/*
 * idempotency.c: the contract of the seawall_idem_* API beyond the shared scenarios: NULL
 * and bad arguments (non-UTF-8 keys, NULL payloads with a length), configuration errors,
 * bytes with NUL inside, metadata, the record byte format (the example of
 * docs/idempotency.md, byte for byte), reject mode and acquire, blocking waits bounded in
 * real time, cancelling a waiter from another thread, on_done callbacks and the threads
 * they run on, renew / abandon / fail, lease lost, fail-open, stats.
 *
 * Build: gcc idempotency.c $(pkg-config --cflags --libs seawall) -pthread
 * The last line is "N passed, M failed".
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

#define KEY(s) (const uint8_t *)(s), strlen(s)
#define PAYLOAD(s) (const uint8_t *)(s), strlen(s)

static seawall_clock *manual_clock(void) {
    seawall_clock *c = NULL;
    CHECK_OK(seawall_manual_clock_new(&c));
    return c;
}

/* A cache with options given as "name=value" pairs (ints, or strings), and an optional clock. */
static seawall_idem_cache *cache_with(seawall_clock *clock, const char *const *options) {
    seawall_idem_config *cfg = NULL;
    seawall_idem_cache *cache = NULL;
    CHECK_OK(seawall_idem_config_new(&cfg));
    for (const char *const *o = options; o && *o; o += 2) {
        char *end;
        long long v = strtoll(o[1], &end, 10);
        if (*end == '\0')
            CHECK_OK(seawall_idem_config_set_int(cfg, o[0], v));
        else
            CHECK_OK(seawall_idem_config_set_str(cfg, o[0], o[1]));
    }
    if (clock) CHECK_OK(seawall_idem_config_set_clock(cfg, clock));
    CHECK_OK(seawall_idem_cache_new(cfg, &cache));
    seawall_idem_config_free(cfg);
    return cache;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(long ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The record's result equals `len` bytes at `want`. */
static int result_is(const seawall_idem_record *rec, const void *want, size_t len) {
    const uint8_t *data = NULL;
    size_t n = 0;
    if (seawall_idem_record_result(rec, &data, &n) != SEAWALL_OK) return 0;
    return n == len && data != NULL && memcmp(data, want, len) == 0;
}

#define CHECK_NULL_ARG(call, what)                                        \
    do {                                                                  \
        CHECK_STATUS(call, SEAWALL_E_INVALID_ARGUMENT);                   \
        CHECK_CONTAINS(seawall_last_error(), what " is NULL");            \
    } while (0)

static void test_null_arguments(void) {
    seawall_idem_cache *cache = cache_with(NULL, NULL);
    seawall_idem_begin_result res;
    seawall_idem_config *cfg = NULL;
    CHECK_NULL_ARG(seawall_idem_config_new(NULL), "out_config");
    CHECK_OK(seawall_idem_config_new(&cfg));
    CHECK_NULL_ARG(seawall_idem_config_set_int(NULL, "ttl", 1), "config");
    CHECK_NULL_ARG(seawall_idem_config_set_int(cfg, NULL, 1), "key");
    CHECK_NULL_ARG(seawall_idem_config_set_str(cfg, "name", NULL), "value");
    CHECK_NULL_ARG(seawall_idem_config_set_clock(cfg, NULL), "clock");
    CHECK_NULL_ARG(seawall_idem_cache_new(NULL, &cache), "config");
    CHECK_NULL_ARG(seawall_idem_cache_new(cfg, NULL), "out_cache");
    seawall_idem_config_free(cfg);

    CHECK_NULL_ARG(seawall_idem_begin(NULL, KEY("k"), NULL, 0, &res), "cache");
    CHECK_NULL_ARG(seawall_idem_begin(cache, KEY("k"), NULL, 0, NULL), "out");
    CHECK_NULL_ARG(seawall_idem_begin(cache, NULL, 1, NULL, 0, &res), "key");
    CHECK(res.outcome == SEAWALL_IDEM_ERROR && res.lease == NULL && res.record == NULL && res.waiter == NULL);
    CHECK_STATUS(seawall_idem_begin(cache, KEY("k"), NULL, 3, &res), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "fingerprint_payload is NULL but fingerprint_len is 3");
    CHECK_NULL_ARG(seawall_idem_acquire(cache, NULL, 0, NULL, 0, &res), "key");
    CHECK_NULL_ARG(seawall_idem_complete(cache, NULL, NULL, 0, NULL, NULL), "lease");
    CHECK_NULL_ARG(seawall_idem_release(cache, NULL), "lease");
    CHECK_NULL_ARG(seawall_idem_renew(NULL, NULL, NULL), "cache");
    CHECK_NULL_ARG(seawall_idem_abandon(cache, NULL), "lease");
    CHECK_NULL_ARG(seawall_idem_fail(cache, NULL, NULL, NULL), "lease");
    CHECK_NULL_ARG(seawall_idem_waiter_poll(NULL, &res), "waiter");
    CHECK_NULL_ARG(seawall_idem_waiter_wait(NULL, 0, &res), "waiter");
    CHECK_NULL_ARG(seawall_idem_waiter_cancel(NULL), "waiter");
    CHECK_NULL_ARG(seawall_idem_waiter_on_done(NULL, NULL, NULL), "waiter");
    CHECK_NULL_ARG(seawall_idem_lease_get_info(NULL, NULL), "lease");
    CHECK_NULL_ARG(seawall_idem_record_result(NULL, NULL, NULL), "record");
    CHECK_NULL_ARG(seawall_idem_record_encode(NULL, NULL), "record");
    CHECK_NULL_ARG(seawall_idem_record_decode(NULL, 0, NULL), "out_record");
    CHECK_NULL_ARG(seawall_idem_cache_stats(cache, NULL), "out_stats");
    seawall_idem_key_state ks;
    CHECK_NULL_ARG(seawall_idem_peek(cache, KEY("k"), NULL, NULL), "out_state");
    CHECK_NULL_ARG(seawall_idem_peek(cache, NULL, 0, &ks, NULL), "key");
    /* Freeing NULL does nothing; so does freeing an empty seawall_bytes, twice. */
    seawall_idem_cache_free(NULL);
    seawall_idem_config_free(NULL);
    seawall_idem_lease_free(NULL);
    seawall_idem_waiter_free(NULL);
    seawall_idem_record_free(NULL);
    seawall_bytes empty = {NULL, 0};
    seawall_bytes_free(&empty);
    seawall_bytes_free(NULL);
    seawall_idem_cache_free(cache);
}

static void test_keys(void) {
    seawall_idem_cache *cache = cache_with(NULL, NULL);
    seawall_idem_begin_result res;
    const uint8_t bad[] = {'o', 'r', 'd', 0xff, 'x'};
    CHECK_STATUS(seawall_idem_begin(cache, bad, sizeof bad, NULL, 0, &res), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "not valid UTF-8 (invalid byte at offset 3)");
    CHECK(res.outcome == SEAWALL_IDEM_ERROR && res.lease == NULL);
    CHECK_STATUS(seawall_idem_acquire(cache, bad, sizeof bad, NULL, 0, &res), SEAWALL_E_INVALID_ARGUMENT);
    seawall_idem_key_state ks;
    CHECK_STATUS(seawall_idem_peek(cache, bad, sizeof bad, &ks, NULL), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_STATUS(seawall_idem_begin(cache, (const uint8_t *)"", 0, NULL, 0, &res), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "empty");
    uint8_t long_key[256];
    memset(long_key, 'k', sizeof long_key);
    CHECK_STATUS(seawall_idem_begin(cache, long_key, 256, NULL, 0, &res), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "256 bytes");
    /* 255 bytes is fine, and a NUL byte is part of a key: "a\0b" and "a\0c" are two keys. */
    CHECK_OK(seawall_idem_begin(cache, long_key, 255, NULL, 0, &res));
    CHECK(res.outcome == SEAWALL_IDEM_EXECUTE);
    seawall_idem_lease_info info;
    CHECK_OK(seawall_idem_lease_get_info(res.lease, &info));
    CHECK(info.key_len == 255 && memcmp(info.key, long_key, 255) == 0 && info.token > 0 && info.is_protected &&
          !info.took_over);
    seawall_idem_lease_free(res.lease);
    CHECK_OK(seawall_idem_begin(cache, (const uint8_t *)"a\0b", 3, NULL, 0, &res));
    CHECK(res.outcome == SEAWALL_IDEM_EXECUTE);
    seawall_idem_lease_free(res.lease);
    CHECK_OK(seawall_idem_begin(cache, (const uint8_t *)"a\0c", 3, NULL, 0, &res));
    CHECK(res.outcome == SEAWALL_IDEM_EXECUTE);
    seawall_idem_lease_free(res.lease);
    /* Nothing was claimed by the refused keys. */
    seawall_idem_stats st;
    CHECK_OK(seawall_idem_cache_stats(cache, &st));
    CHECK_U64(st.executed, 3);
    seawall_idem_cache_free(cache);
}

static void test_config_errors(void) {
    seawall_idem_config *cfg = NULL;
    seawall_idem_cache *cache = NULL;
    CHECK_OK(seawall_idem_config_new(&cfg));
    CHECK_STATUS(seawall_idem_config_set_int(cfg, "ttl", -1), SEAWALL_E_CONFIG);
    CHECK_CONTAINS(seawall_last_error(), "ttl = -1ms");
    CHECK_STATUS(seawall_idem_config_set_double(cfg, "wait_timeout", NAN), SEAWALL_E_CONFIG);
    CHECK_CONTAINS(seawall_last_error(), "wait_timeout");
    CHECK_STATUS(seawall_idem_config_set_str(cfg, "on_duplicate", "queue"), SEAWALL_E_CONFIG);
    CHECK_CONTAINS(seawall_last_error(), "\"wait\" or \"reject\"");
    CHECK_STATUS(seawall_idem_config_set_int(cfg, "cache_errors", 1), SEAWALL_E_CONFIG);
    CHECK_CONTAINS(seawall_last_error(), "cache_errors");
    CHECK_STATUS(seawall_idem_config_set_bool(cfg, "ttl", true), SEAWALL_E_CONFIG);
    CHECK_STATUS(seawall_idem_config_set_int(cfg, "leese", 5), SEAWALL_E_CONFIG);
    CHECK_CONTAINS(seawall_last_error(), "leese");
    CHECK_STATUS(seawall_idem_config_set_double(cfg, "max_entries", 2.5), SEAWALL_E_CONFIG);
    CHECK_STATUS(seawall_idem_config_set_str(cfg, "name", "\xff"), SEAWALL_E_INVALID_ARGUMENT);
    /* Refused values left the defaults: this configuration still builds... */
    CHECK_OK(seawall_idem_cache_new(cfg, &cache));
    seawall_idem_cache_free(cache);
    cache = NULL;
    /* ...until options that do not fit together are set. */
    CHECK_OK(seawall_idem_config_set_int(cfg, "max_bytes", 100));
    CHECK_STATUS(seawall_idem_cache_new(cfg, &cache), SEAWALL_E_CONFIG);
    CHECK_CONTAINS(seawall_last_error(), "max_result_bytes");
    CHECK(cache == NULL);
    CHECK_OK(seawall_idem_config_set_bool(cfg, "cache_errors", true));
    CHECK_OK(seawall_idem_config_set_double(cfg, "lease_duration", 1500.5));
    CHECK_OK(seawall_idem_config_set_int(cfg, "max_result_bytes", 100));
    CHECK_OK(seawall_idem_cache_new(cfg, &cache));
    seawall_idem_cache_free(cache);
    seawall_idem_config_free(cfg);
}

/* begin -> complete -> replay with bytes that contain NULs, a content type and metadata;
 * the record's fingerprint is the SHA-256 of the payload. */
static void test_complete_and_replay(void) {
    seawall_clock *clock = manual_clock();
    seawall_idem_cache *cache = cache_with(clock, NULL);
    seawall_idem_begin_result res;
    CHECK_OK(seawall_clock_advance_ms(clock, 1500));
    CHECK_OK(seawall_idem_begin(cache, KEY("order-1"), PAYLOAD("abc"), &res));
    CHECK(res.outcome == SEAWALL_IDEM_EXECUTE && res.lease && !res.record && !res.waiter);
    const uint8_t body[] = {'{', 0, 1, 2, '}'};
    seawall_idem_metadata md[] = {{"status", "201"}, {"set-cookie", "a=1"}, {"set-cookie", "b=2"}};
    seawall_idem_output out = {.result = body, .result_len = sizeof body, .content_type = "application/x-demo",
                               .metadata = md, .metadata_count = 3};
    seawall_idem_record *mine = NULL;
    CHECK_OK(seawall_idem_complete_output(cache, res.lease, &out, &mine));
    CHECK(mine != NULL && result_is(mine, body, sizeof body));
    seawall_idem_lease_info li;
    CHECK_OK(seawall_idem_lease_get_info(res.lease, &li));
    /* A finished lease is spent. */
    CHECK_STATUS(seawall_idem_complete(cache, res.lease, body, 1, NULL, NULL), SEAWALL_E_LEASE_LOST);
    CHECK_CONTAINS(seawall_last_error(), "already completed");
    CHECK_STATUS(seawall_idem_release(cache, res.lease), SEAWALL_E_LEASE_LOST);
    seawall_idem_lease_free(res.lease);

    CHECK_OK(seawall_idem_begin(cache, KEY("order-1"), PAYLOAD("abc"), &res));
    CHECK(res.outcome == SEAWALL_IDEM_REPLAY && res.record && !res.lease && !res.waiter);
    seawall_idem_record *rec = res.record;
    CHECK(result_is(rec, body, sizeof body));
    const char *ct = NULL;
    size_t ct_len = 0;
    CHECK_OK(seawall_idem_record_content_type(rec, &ct, &ct_len));
    CHECK_STR(ct, "application/x-demo");
    CHECK_U64(ct_len, strlen("application/x-demo"));
    size_t count = 0;
    CHECK_OK(seawall_idem_record_metadata_count(rec, &count));
    CHECK_U64(count, 3);
    const char *name, *value;
    size_t vlen = 0;
    CHECK_OK(seawall_idem_record_metadata_get(rec, 2, &name, NULL, &value, &vlen));
    CHECK_STR(name, "set-cookie");
    CHECK_STR(value, "b=2");
    CHECK_U64(vlen, 3);
    CHECK_STATUS(seawall_idem_record_metadata_get(rec, 3, &name, NULL, &value, NULL), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "index = 3: the record has 3 metadata pairs");
    seawall_idem_record_info info;
    CHECK_OK(seawall_idem_record_get_info(rec, &info));
    CHECK_U64(info.created_ms, 1500);
    CHECK_U64(info.expires_ms, 1500 + 86400000ull);
    CHECK_U64(info.token, li.token);
    CHECK(!info.error);
    static const uint8_t sha_abc[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
                                        0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
                                        0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    CHECK(memcmp(info.fingerprint, sha_abc, 32) == 0);
    /* The caller's record and the replay are the same record. */
    seawall_idem_record_info mine_info;
    CHECK_OK(seawall_idem_record_get_info(mine, &mine_info));
    CHECK(memcmp(&mine_info.fingerprint, &info.fingerprint, 32) == 0 && mine_info.token == info.token);
    seawall_idem_record_free(mine);

    /* Another payload: a mismatch, reported (SEAWALL_OK) by begin, refused by acquire. */
    CHECK_OK(seawall_idem_begin(cache, KEY("order-1"), PAYLOAD("abd"), &res));
    CHECK(res.outcome == SEAWALL_IDEM_MISMATCH && res.mismatch_completed && !res.record);
    CHECK_STATUS(seawall_idem_acquire(cache, KEY("order-1"), PAYLOAD("abd"), &res), SEAWALL_E_IDEMPOTENCY_MISMATCH);
    CHECK(res.outcome == SEAWALL_IDEM_MISMATCH && !res.record && !res.lease);
    CHECK_STR(seawall_status_name(SEAWALL_E_IDEMPOTENCY_MISMATCH), "SEAWALL_IDEMPOTENCY_MISMATCH");
    /* No fingerprint (NULL) is not the fingerprint of an empty payload. */
    CHECK_OK(seawall_idem_begin(cache, KEY("order-1"), NULL, 0, &res));
    CHECK(res.outcome == SEAWALL_IDEM_MISMATCH);
    CHECK_OK(seawall_idem_acquire(cache, KEY("order-1"), PAYLOAD("abc"), &res));
    CHECK(res.outcome == SEAWALL_IDEM_REPLAY && result_is(res.record, body, sizeof body));
    seawall_idem_record_free(res.record);

    /* peek changes nothing and hands a completed key's record out. */
    seawall_idem_key_state ks;
    seawall_idem_record *peeked = NULL;
    CHECK_OK(seawall_idem_peek(cache, KEY("order-1"), &ks, &peeked));
    CHECK(ks == SEAWALL_IDEM_KEY_COMPLETED && peeked && result_is(peeked, body, sizeof body));
    seawall_idem_record_free(peeked);
    CHECK_OK(seawall_idem_peek(cache, KEY("nobody"), &ks, &peeked));
    CHECK(ks == SEAWALL_IDEM_KEY_ABSENT && peeked == NULL);
    CHECK_STR(seawall_idem_key_state_name(SEAWALL_IDEM_KEY_IN_PROGRESS), "in_progress");

    seawall_idem_stats st;
    CHECK_OK(seawall_idem_cache_stats(cache, &st));
    CHECK_U64(st.executed, 1);
    CHECK_U64(st.completed, 1);
    CHECK_U64(st.replayed, 2);
    CHECK_U64(st.mismatched, 3);
    CHECK_U64(st.lease_lost, 2);
    CHECK_U64(st.waiting, 0);

    /* Past the TTL the key runs again. */
    CHECK_OK(seawall_clock_advance_ms(clock, 86400000ull));
    CHECK_OK(seawall_idem_begin(cache, KEY("order-1"), PAYLOAD("abc"), &res));
    CHECK(res.outcome == SEAWALL_IDEM_EXECUTE);
    seawall_idem_lease_free(res.lease);

    /* Encode / decode round trip; the bytes outlive the record. */
    seawall_bytes enc = {NULL, 0};
    CHECK_OK(seawall_idem_record_encode(rec, &enc));
    seawall_idem_record_free(rec);
    CHECK(enc.data != NULL && enc.len > 64 && memcmp(enc.data, "SWR\x02", 4) == 0);
    seawall_idem_record *back = NULL;
    CHECK_OK(seawall_idem_record_decode(enc.data, enc.len, &back));
    CHECK(back && result_is(back, body, sizeof body));
    CHECK_OK(seawall_idem_record_metadata_get(back, 0, &name, NULL, &value, NULL));
    CHECK_STR(value, "201");
    seawall_idem_record_free(back);
    seawall_bytes_free(&enc);
    CHECK(enc.data == NULL && enc.len == 0);
    seawall_bytes_free(&enc);
    seawall_idem_cache_free(cache);
    seawall_clock_free(clock);
}

/* The example of docs/idempotency.md, byte for byte, and the decoder's refusals. */
static void test_record_format(void) {
    uint8_t ex[] = {0x53, 0x57, 0x52, 0x02, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2,
                    0,    0,    0,    0,    0,    0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                    0,    0,    0,    0,    0,    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x74, 0, 0, 0, 0, 0,
                    2,    0x6f, 0x6b,
                    /* CRC-32C of bytes 0-8 and 64-75, then of bytes 0-64 */
                    0xe7, 0x29, 0x7c, 0x37, 0x8c, 0x74, 0x66, 0xd5};
    seawall_idem_record *rec = NULL;
    CHECK_OK(seawall_idem_record_decode(ex, sizeof ex, &rec));
    seawall_idem_record_info info;
    CHECK_OK(seawall_idem_record_get_info(rec, &info));
    CHECK(info.error && info.token == 1 && info.created_ms == 2 && info.expires_ms == 3);
    uint8_t zeros[32] = {0};
    CHECK(memcmp(info.fingerprint, zeros, 32) == 0);
    CHECK(result_is(rec, "ok", 2));
    const char *ct;
    CHECK_OK(seawall_idem_record_content_type(rec, &ct, NULL));
    CHECK_STR(ct, "t");
    seawall_bytes enc = {NULL, 0};
    CHECK_OK(seawall_idem_record_encode(rec, &enc));
    CHECK(enc.len == sizeof ex && memcmp(enc.data, ex, sizeof ex) == 0);
    seawall_bytes_free(&enc);
    seawall_idem_record_free(rec);

    seawall_idem_record *bad = NULL; /* a failed decode writes nothing */
    ex[3] = 1;
    CHECK_STATUS(seawall_idem_record_decode(ex, sizeof ex, &bad), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "record format version 1 is not supported (this build reads version 2)");
    ex[3] = 2;
    CHECK_STATUS(seawall_idem_record_decode(ex, sizeof ex - 1, &bad), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "truncated checksums");
    CHECK_STATUS(seawall_idem_record_decode(ex, sizeof ex - 9, &bad), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "truncated result");
    ex[73] ^= 0x01; /* the result's "o": a corrupted value */
    CHECK_STATUS(seawall_idem_record_decode(ex, sizeof ex, &bad), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "body checksum mismatch");
    ex[73] ^= 0x01;
    ex[4] ^= 0x01; /* the error flag */
    CHECK_STATUS(seawall_idem_record_decode(ex, sizeof ex, &bad), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "checksum mismatch");
    ex[4] ^= 0x01;
    ex[15] ^= 0x01; /* the token */
    CHECK_STATUS(seawall_idem_record_decode(ex, sizeof ex, &bad), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "header checksum mismatch");
    ex[15] ^= 0x01;
    CHECK_STATUS(seawall_idem_record_decode((const uint8_t *)"nope", 4, &bad), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "not a seawall record");
    CHECK_STATUS(seawall_idem_record_decode(NULL, 0, &bad), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_STATUS(seawall_idem_record_decode(NULL, 5, &bad), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "data is NULL but its length is 5");
    CHECK(bad == NULL);
}

static void test_reject_mode_and_limits(void) {
    seawall_clock *clock = manual_clock();
    const char *const opts[] = {"on_duplicate", "reject", "lease", "10000", "max_result_bytes", "8", NULL};
    seawall_idem_cache *cache = cache_with(clock, opts);
    seawall_idem_begin_result owner, dup;
    CHECK_OK(seawall_idem_begin(cache, KEY("k"), PAYLOAD("p"), &owner));
    CHECK(owner.outcome == SEAWALL_IDEM_EXECUTE);
    CHECK_OK(seawall_clock_advance_ms(clock, 4000));
    CHECK_OK(seawall_idem_begin(cache, KEY("k"), PAYLOAD("p"), &dup));
    CHECK(dup.outcome == SEAWALL_IDEM_IN_PROGRESS && dup.waiter == NULL && dup.retry_after_ms == 6000);
    CHECK_STATUS(seawall_idem_acquire(cache, KEY("k"), PAYLOAD("p"), &dup), SEAWALL_E_IDEMPOTENCY_IN_PROGRESS);
    CHECK(dup.outcome == SEAWALL_IDEM_IN_PROGRESS && dup.retry_after_ms == 6000 && dup.lease == NULL);
    CHECK_CONTAINS(seawall_last_error(), "\"k\"");
    uint64_t left = 0;
    CHECK_OK(seawall_idem_renew(cache, owner.lease, &left));
    CHECK_U64(left, 10000);
    CHECK_OK(seawall_idem_renew(cache, owner.lease, NULL));
    /* Over max_result_bytes: refused, nothing stored, the key released at once. */
    seawall_idem_record *rec = (seawall_idem_record *)&left;
    CHECK_STATUS(seawall_idem_complete(cache, owner.lease, (const uint8_t *)"123456789", 9, "text/plain", &rec),
                 SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "9 bytes, over max_result_bytes (8)");
    CHECK(rec == NULL);
    seawall_idem_key_state ks;
    CHECK_OK(seawall_idem_peek(cache, KEY("k"), &ks, NULL));
    CHECK(ks == SEAWALL_IDEM_KEY_ABSENT);
    seawall_idem_lease_free(owner.lease);
    /* A bad content type / metadata text is refused before anything happens. */
    CHECK_OK(seawall_idem_begin(cache, KEY("k"), PAYLOAD("p"), &owner));
    CHECK(owner.outcome == SEAWALL_IDEM_EXECUTE);
    CHECK_STATUS(seawall_idem_complete(cache, owner.lease, (const uint8_t *)"x", 1, "\xc3", NULL),
                 SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "content_type is not valid UTF-8");
    seawall_idem_metadata md[] = {{"status", NULL}};
    seawall_idem_output out = {.result = (const uint8_t *)"x", .result_len = 1, .metadata = md, .metadata_count = 1};
    CHECK_STATUS(seawall_idem_complete_output(cache, owner.lease, &out, NULL), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "output.metadata[0].value is NULL");
    out.metadata = NULL;
    CHECK_STATUS(seawall_idem_complete_output(cache, owner.lease, &out, NULL), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "output.metadata is NULL but output.metadata_count is 1");
    CHECK_OK(seawall_idem_peek(cache, KEY("k"), &ks, NULL));
    CHECK(ks == SEAWALL_IDEM_KEY_IN_PROGRESS);
    /* An empty result (NULL, 0) is a result. */
    CHECK_OK(seawall_idem_complete(cache, owner.lease, NULL, 0, NULL, &rec));
    CHECK(result_is(rec, "", 0));
    seawall_idem_record_free(rec);
    seawall_idem_lease_free(owner.lease);
    seawall_idem_cache_free(cache);
    seawall_clock_free(clock);
}

static void test_fail_abandon_lease_lost(void) {
    seawall_clock *clock = manual_clock();
    const char *const opts[] = {"lease", "1000", "on_duplicate", "reject", NULL};
    seawall_idem_cache *cache = cache_with(clock, opts);
    seawall_idem_begin_result res;
    seawall_idem_record *rec = NULL;
    /* Without cache_errors, fail releases (even with an error output). */
    CHECK_OK(seawall_idem_begin(cache, KEY("a"), NULL, 0, &res));
    seawall_idem_output err = {.result = (const uint8_t *)"boom", .result_len = 4, .content_type = "text/plain"};
    CHECK_OK(seawall_idem_fail(cache, res.lease, &err, &rec));
    CHECK(rec == NULL);
    seawall_idem_lease_free(res.lease);
    CHECK_OK(seawall_idem_begin(cache, KEY("a"), NULL, 0, &res));
    CHECK(res.outcome == SEAWALL_IDEM_EXECUTE);
    /* abandon: the claim stays until the lease expires; then the next begin takes over. */
    CHECK_OK(seawall_idem_abandon(cache, res.lease));
    seawall_idem_begin_result dup;
    CHECK_OK(seawall_idem_begin(cache, KEY("a"), NULL, 0, &dup));
    CHECK(dup.outcome == SEAWALL_IDEM_IN_PROGRESS && dup.retry_after_ms == 1000);
    CHECK_OK(seawall_clock_advance_ms(clock, 1000));
    CHECK_STATUS(seawall_idem_complete(cache, res.lease, (const uint8_t *)"late", 4, NULL, &rec), SEAWALL_E_LEASE_LOST);
    CHECK_CONTAINS(seawall_last_error(), "its lease expired");
    CHECK_STATUS(seawall_idem_renew(cache, res.lease, NULL), SEAWALL_E_LEASE_LOST);
    CHECK_OK(seawall_idem_begin(cache, KEY("a"), NULL, 0, &dup));
    CHECK(dup.outcome == SEAWALL_IDEM_EXECUTE);
    seawall_idem_lease_info a, b;
    CHECK_OK(seawall_idem_lease_get_info(res.lease, &a));
    CHECK_OK(seawall_idem_lease_get_info(dup.lease, &b));
    CHECK(b.took_over && b.token > a.token && b.expires_at_ms == 2000);
    CHECK_STATUS(seawall_idem_release(cache, res.lease), SEAWALL_E_LEASE_LOST);
    CHECK_CONTAINS(seawall_last_error(), "another owner holds the key now");
    CHECK_OK(seawall_idem_release(cache, dup.lease));
    seawall_idem_lease_free(res.lease);
    seawall_idem_lease_free(dup.lease);
    seawall_idem_stats st;
    CHECK_OK(seawall_idem_cache_stats(cache, &st));
    CHECK_U64(st.abandoned, 1);
    CHECK_U64(st.released, 2);
    CHECK_U64(st.taken_over, 1);
    CHECK_U64(st.lease_lost, 3);
    seawall_idem_cache_free(cache);

    /* With cache_errors, fail stores the error; without an output it still releases. */
    seawall_idem_config *cfg;
    CHECK_OK(seawall_idem_config_new(&cfg));
    CHECK_OK(seawall_idem_config_set_bool(cfg, "cache_errors", true));
    CHECK_OK(seawall_idem_cache_new(cfg, &cache));
    seawall_idem_config_free(cfg);
    CHECK_OK(seawall_idem_begin(cache, KEY("e"), NULL, 0, &res));
    CHECK_OK(seawall_idem_fail(cache, res.lease, &err, &rec));
    seawall_idem_record_info info;
    CHECK(rec != NULL);
    CHECK_OK(seawall_idem_record_get_info(rec, &info));
    CHECK(info.error && result_is(rec, "boom", 4));
    seawall_idem_record_free(rec);
    seawall_idem_lease_free(res.lease);
    CHECK_OK(seawall_idem_begin(cache, KEY("e"), NULL, 0, &res));
    CHECK(res.outcome == SEAWALL_IDEM_REPLAY);
    CHECK_OK(seawall_idem_record_get_info(res.record, &info));
    CHECK(info.error);
    seawall_idem_record_free(res.record);
    CHECK_OK(seawall_idem_begin(cache, KEY("e2"), NULL, 0, &res));
    CHECK_OK(seawall_idem_fail(cache, res.lease, NULL, &rec));
    CHECK(rec == NULL);
    seawall_idem_lease_free(res.lease);
    seawall_idem_cache_free(cache);
    seawall_clock_free(clock);
}

static void test_fail_open(void) {
    const char *const opts[] = {"max_entries", "1", "on_store_error", "run", NULL};
    seawall_idem_cache *cache = cache_with(NULL, opts);
    seawall_idem_begin_result a, b;
    CHECK_OK(seawall_idem_begin(cache, KEY("a"), NULL, 0, &a));
    CHECK_OK(seawall_idem_begin(cache, KEY("b"), NULL, 0, &b));
    seawall_idem_lease_info info;
    CHECK_OK(seawall_idem_lease_get_info(b.lease, &info));
    CHECK(b.outcome == SEAWALL_IDEM_EXECUTE && !info.is_protected && info.token == 0);
    seawall_idem_record *rec = NULL;
    CHECK_OK(seawall_idem_complete(cache, b.lease, (const uint8_t *)"x", 1, NULL, &rec));
    CHECK(rec && result_is(rec, "x", 1));
    seawall_idem_record_free(rec);
    seawall_idem_lease_free(a.lease);
    seawall_idem_lease_free(b.lease);
    seawall_idem_cache_free(cache);
    /* Without "run", a full store is SEAWALL_E_STORE_UNAVAILABLE. */
    const char *const strict[] = {"max_entries", "1", NULL};
    cache = cache_with(NULL, strict);
    CHECK_OK(seawall_idem_begin(cache, KEY("a"), NULL, 0, &a));
    CHECK_STATUS(seawall_idem_begin(cache, KEY("b"), NULL, 0, &b), SEAWALL_E_STORE_UNAVAILABLE);
    CHECK_CONTAINS(seawall_last_error(), "live leases are never evicted");
    CHECK(b.outcome == SEAWALL_IDEM_ERROR && b.lease == NULL);
    seawall_idem_lease_free(a.lease);
    seawall_idem_cache_free(cache);
}

/* ---- waiters -------------------------------------------------------------------------- */

typedef struct {
    seawall_idem_cache *cache;
    seawall_idem_lease *lease;
    seawall_idem_waiter *waiter;
    long delay_ms;
} helper_arg;

static void *complete_later(void *p) {
    helper_arg *a = p;
    sleep_ms(a->delay_ms);
    seawall_idem_complete(a->cache, a->lease, (const uint8_t *)"42", 2, "application/json", NULL);
    return NULL;
}

static void *cancel_later(void *p) {
    helper_arg *a = p;
    sleep_ms(a->delay_ms);
    seawall_idem_waiter_cancel(a->waiter);
    return NULL;
}

static void test_blocking_wait(void) {
    seawall_idem_cache *cache = cache_with(NULL, NULL); /* system clock, wait mode */
    seawall_idem_begin_result owner, dup, got;
    CHECK_OK(seawall_idem_begin(cache, KEY("w"), PAYLOAD("p"), &owner));
    CHECK_OK(seawall_idem_begin(cache, KEY("w"), PAYLOAD("p"), &dup));
    CHECK(dup.outcome == SEAWALL_IDEM_IN_PROGRESS && dup.waiter != NULL);
    CHECK(dup.retry_after_ms > 29000 && dup.retry_after_ms <= 30000);
    CHECK_STATUS(seawall_idem_waiter_wait(dup.waiter, -1, &got), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "timeout_ms");
    CHECK_STATUS(seawall_idem_waiter_wait(dup.waiter, NAN, &got), SEAWALL_E_INVALID_ARGUMENT);
    /* A real-time bound that passes first: still pending, with the times left. */
    double t0 = now_ms();
    CHECK_OK(seawall_idem_waiter_wait(dup.waiter, 30, &got));
    double waited = now_ms() - t0;
    CHECK(got.outcome == SEAWALL_IDEM_PENDING && got.timeout_in_ms > 29000 && got.retry_after_ms > 29000);
    CHECK(waited >= 25 && waited < 5000);
    CHECK_OK(seawall_idem_waiter_wait(dup.waiter, 0, &got));
    CHECK(got.outcome == SEAWALL_IDEM_PENDING);
    /* The owner completes on another thread: the blocked wait wakes with the record. */
    helper_arg a = {.cache = cache, .lease = owner.lease, .delay_ms = 50};
    pthread_t t;
    pthread_create(&t, NULL, complete_later, &a);
    t0 = now_ms();
    CHECK_OK(seawall_idem_waiter_wait(dup.waiter, INFINITY, &got));
    waited = now_ms() - t0;
    pthread_join(t, NULL);
    CHECK(got.outcome == SEAWALL_IDEM_REPLAY && result_is(got.record, "42", 2));
    CHECK(waited < 5000);
    seawall_idem_record_free(got.record);
    CHECK_OK(seawall_idem_waiter_wait(dup.waiter, INFINITY, &got));
    CHECK(got.outcome == SEAWALL_IDEM_TAKEN && got.record == NULL);
    CHECK_OK(seawall_idem_waiter_poll(dup.waiter, &got));
    CHECK(got.outcome == SEAWALL_IDEM_TAKEN);
    seawall_idem_waiter_free(dup.waiter);
    seawall_idem_lease_free(owner.lease);

    /* Cancelled from another thread while blocked. */
    CHECK_OK(seawall_idem_begin(cache, KEY("c"), NULL, 0, &owner));
    CHECK_OK(seawall_idem_begin(cache, KEY("c"), NULL, 0, &dup));
    helper_arg c = {.waiter = dup.waiter, .delay_ms = 30};
    pthread_create(&t, NULL, cancel_later, &c);
    CHECK_STATUS(seawall_idem_waiter_wait(dup.waiter, 10000, &got), SEAWALL_E_CANCELLED);
    CHECK_CONTAINS(seawall_last_error(), "stopped waiting for idempotency key \"c\"");
    CHECK(got.outcome == SEAWALL_IDEM_ERROR && got.record == NULL && got.lease == NULL);
    pthread_join(t, NULL);
    seawall_idem_waiter_free(dup.waiter);

    /* The owner releases: the waiter takes over; a later duplicate waits for *it*. */
    CHECK_OK(seawall_idem_begin(cache, KEY("c"), NULL, 0, &dup));
    CHECK_OK(seawall_idem_release(cache, owner.lease));
    CHECK_OK(seawall_idem_waiter_wait(dup.waiter, 10000, &got));
    CHECK(got.outcome == SEAWALL_IDEM_EXECUTE && got.lease != NULL);
    seawall_idem_lease_info li;
    CHECK_OK(seawall_idem_lease_get_info(got.lease, &li));
    CHECK(li.took_over);
    seawall_idem_lease_free(got.lease);
    seawall_idem_waiter_free(dup.waiter);
    seawall_idem_lease_free(owner.lease);
    seawall_idem_cache_free(cache);
}

typedef struct {
    int calls;
    seawall_status status;
    seawall_idem_outcome outcome;
    pthread_t thread;
    char message[256];
    char result[16];
    seawall_idem_lease *lease;
} done_rec;

static void on_done(seawall_status status, const seawall_idem_begin_result *r, const char *message, void *user_data) {
    done_rec *d = user_data;
    d->calls++;
    d->status = status;
    d->outcome = r->outcome;
    d->thread = pthread_self();
    snprintf(d->message, sizeof d->message, "%s", message ? message : "(null)");
    if (r->record) {
        const uint8_t *data;
        size_t len;
        seawall_idem_record_result(r->record, &data, &len);
        snprintf(d->result, sizeof d->result, "%.*s", (int)len, (const char *)data);
        seawall_idem_record_free(r->record); /* the callback's to free */
    }
    d->lease = r->lease; /* kept: the test finishes it */
}

static void test_on_done(void) {
    seawall_clock *clock = manual_clock();
    const char *const opts[] = {"lease", "1000", "wait_timeout", "60000", NULL};
    seawall_idem_cache *cache = cache_with(clock, opts);
    seawall_idem_begin_result owner, dup;
    done_rec d1 = {0}, d2 = {0}, d3 = {0}, d4 = {0};

    /* Resolved by the owner's completion, on the completing thread (here). */
    CHECK_OK(seawall_idem_begin(cache, KEY("k"), NULL, 0, &owner));
    CHECK_OK(seawall_idem_begin(cache, KEY("k"), NULL, 0, &dup));
    CHECK_NULL_ARG(seawall_idem_waiter_on_done(dup.waiter, NULL, NULL), "callback");
    CHECK_OK(seawall_idem_waiter_on_done(dup.waiter, on_done, &d1));
    CHECK(d1.calls == 0);
    CHECK_OK(seawall_idem_complete(cache, owner.lease, (const uint8_t *)"v1", 2, NULL, NULL));
    CHECK(d1.calls == 1 && d1.status == SEAWALL_OK && d1.outcome == SEAWALL_IDEM_REPLAY);
    CHECK(pthread_equal(d1.thread, pthread_self()));
    CHECK_STR(d1.result, "v1");
    CHECK_STR(d1.message, "(null)");
    /* Registered after the outcome was taken: at once, with the "handed over" error. */
    CHECK_OK(seawall_idem_waiter_on_done(dup.waiter, on_done, &d2));
    CHECK(d2.calls == 1 && d2.status == SEAWALL_E_INVALID_ARGUMENT && d2.outcome == SEAWALL_IDEM_ERROR);
    CHECK_CONTAINS(d2.message, "already handed over");
    seawall_idem_waiter_free(dup.waiter);
    seawall_idem_lease_free(owner.lease);

    /* Resolved by the owner's lease expiring: on the thread that advances the clock. */
    CHECK_OK(seawall_idem_begin(cache, KEY("x"), NULL, 0, &owner));
    CHECK_OK(seawall_idem_begin(cache, KEY("x"), NULL, 0, &dup));
    CHECK_OK(seawall_idem_waiter_on_done(dup.waiter, on_done, &d3));
    CHECK_OK(seawall_clock_advance_ms(clock, 999));
    CHECK(d3.calls == 0);
    CHECK_OK(seawall_clock_advance_ms(clock, 1));
    CHECK(d3.calls == 1 && d3.status == SEAWALL_OK && d3.outcome == SEAWALL_IDEM_EXECUTE && d3.lease != NULL);
    CHECK_OK(seawall_idem_complete(cache, d3.lease, (const uint8_t *)"v3", 2, NULL, NULL));
    CHECK_STATUS(seawall_idem_complete(cache, owner.lease, (const uint8_t *)"old", 3, NULL, NULL),
                 SEAWALL_E_LEASE_LOST);
    seawall_idem_lease_free(d3.lease);
    seawall_idem_lease_free(owner.lease);
    seawall_idem_waiter_free(dup.waiter);

    /* Freed before it resolves: cancelled, the callback runs inside the free. */
    CHECK_OK(seawall_idem_begin(cache, KEY("y"), NULL, 0, &owner));
    CHECK_OK(seawall_idem_begin(cache, KEY("y"), NULL, 0, &dup));
    CHECK_OK(seawall_idem_waiter_on_done(dup.waiter, on_done, &d4));
    seawall_idem_waiter_free(dup.waiter);
    CHECK(d4.calls == 1 && d4.status == SEAWALL_E_CANCELLED);
    CHECK_CONTAINS(d4.message, "stopped waiting");
    seawall_idem_stats st;
    CHECK_OK(seawall_idem_cache_stats(cache, &st));
    CHECK_U64(st.waiting, 0);
    CHECK_U64(st.waited, 3);
    seawall_idem_lease_free(owner.lease);
    seawall_idem_cache_free(cache);
    seawall_clock_free(clock);
}

static void test_names(void) {
    CHECK_STR(seawall_idem_outcome_name(SEAWALL_IDEM_ERROR), "error");
    CHECK_STR(seawall_idem_outcome_name(SEAWALL_IDEM_EXECUTE), "execute");
    CHECK_STR(seawall_idem_outcome_name(SEAWALL_IDEM_REPLAY), "replay");
    CHECK_STR(seawall_idem_outcome_name(SEAWALL_IDEM_IN_PROGRESS), "in_progress");
    CHECK_STR(seawall_idem_outcome_name(SEAWALL_IDEM_MISMATCH), "mismatch");
    CHECK_STR(seawall_idem_outcome_name(SEAWALL_IDEM_PENDING), "pending");
    CHECK_STR(seawall_idem_outcome_name(SEAWALL_IDEM_TAKEN), "taken");
    CHECK_STR(seawall_idem_outcome_name((seawall_idem_outcome)42), "unknown");
    CHECK_STR(seawall_idem_key_state_name((seawall_idem_key_state)-1), "unknown");
    CHECK_STR(seawall_status_name(SEAWALL_E_LEASE_LOST), "SEAWALL_LEASE_LOST");
    CHECK_STR(seawall_status_name(SEAWALL_E_STORE_UNAVAILABLE), "SEAWALL_STORE_UNAVAILABLE");
    CHECK_STR(seawall_status_name(SEAWALL_E_IDEMPOTENCY_IN_PROGRESS), "SEAWALL_IDEMPOTENCY_IN_PROGRESS");
}

int main(void) {
    test_null_arguments();
    test_keys();
    test_config_errors();
    test_complete_and_replay();
    test_record_format();
    test_reject_mode_and_limits();
    test_fail_abandon_lease_lost();
    test_fail_open();
    test_blocking_wait();
    test_on_done();
    test_names();
    return check_report();
}
