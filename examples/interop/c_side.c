/*
 * C side of the cross-language Redis proof (scripts/test-interop.sh builds and runs it).
 *
 *   ./c_side replay-a-b-write-c     replays A (Python's) and B (Node's), checking the exact
 *                                   bytes and content type; completes key C with JSON bytes
 *   ./c_side race KEY START_MS
 *
 * Environment: SEAWALL_REDIS_URL, SEAWALL_INTEROP_PREFIX. Prints "PASS: ..." / "FAIL: ..."
 * lines, or for `race` one line "RACE c executed=<0|1> value=<bytes>"; exits 1 on a failure.
 *
 * The expected bytes are the compact JSON Python (json.dumps(v, separators=(",", ":"),
 * ensure_ascii=False)) and Node (JSON.stringify) write for values.json's A and B; C's
 * bytes are the compact JSON of values.json's C, so Python and Node read back the value.
 */
#define _POSIX_C_SOURCE 200809L

#include <seawall.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static const char A_JSON[] =
    "{\"key\":\"A\",\"by\":\"python\",\"amount\":1250,\"items\":[\"x\",\"y\"],\"ok\":true,\"note\":\"h\xc3\xa9llo \xe2\x9c\x93\"}";
static const char B_JSON[] =
    "{\"key\":\"B\",\"by\":\"node\",\"amount\":-3,\"nested\":{\"list\":[1,2,3],\"empty\":{}},\"none\":null}";
static const char C_JSON[] =
    "{\"key\":\"C\",\"by\":\"c\",\"amount\":7,\"nested\":{\"a\":[1,2,{\"b\":null}]},\"s\":\"quote \\\" and \\\\ slash\"}";

static int failed = 0;

static void check(int ok, const char *what, const char *detail) {
    printf("%s: c: %s%s%s\n", ok ? "PASS" : "FAIL", what, detail ? ": " : "", detail ? detail : "");
    fflush(stdout);
    if (!ok) failed++;
}

static seawall_idem_cache *make_cache(void) {
    const char *url = getenv("SEAWALL_REDIS_URL");
    const char *prefix = getenv("SEAWALL_INTEROP_PREFIX");
    if (!url || !prefix) {
        fprintf(stderr, "c_side: SEAWALL_REDIS_URL and SEAWALL_INTEROP_PREFIX are required\n");
        exit(2);
    }
    seawall_redis_config *rc = NULL;
    seawall_redis_store *store = NULL;
    seawall_idem_config *ic = NULL;
    seawall_idem_cache *cache = NULL;
    if (seawall_redis_config_new(&rc) != SEAWALL_OK ||
        seawall_redis_config_set_str(rc, "url", url) != SEAWALL_OK ||
        seawall_redis_config_set_str(rc, "prefix", prefix) != SEAWALL_OK ||
        seawall_redis_store_new(rc, &store) != SEAWALL_OK ||
        seawall_idem_config_new(&ic) != SEAWALL_OK ||
        seawall_idem_config_set_str(ic, "name", "interop") != SEAWALL_OK ||
        seawall_idem_config_set_redis_store(ic, store) != SEAWALL_OK ||
        seawall_idem_cache_new(ic, &cache) != SEAWALL_OK) {
        printf("FAIL: c: cannot create the cache: %s\n", seawall_last_error());
        exit(1);
    }
    seawall_redis_store_free(store); /* the cache keeps it */
    seawall_redis_config_free(rc);
    seawall_idem_config_free(ic);
    return cache;
}

/* The record's bytes as a NUL-terminated copy (for printing). */
static char *record_text(const seawall_idem_record *rec, size_t *out_len) {
    const uint8_t *data = NULL;
    size_t len = 0;
    if (seawall_idem_record_result(rec, &data, &len) != SEAWALL_OK) return NULL;
    char *s = malloc(len + 1);
    if (!s) return NULL;
    memcpy(s, data, len);
    s[len] = '\0';
    if (out_len) *out_len = len;
    return s;
}

static void expect_replay(seawall_idem_cache *cache, const char *key, const char *expected, const char *by) {
    char what[160];
    seawall_idem_begin_result r;
    seawall_status st = seawall_idem_acquire(cache, (const uint8_t *)key, strlen(key), NULL, 0, &r);
    snprintf(what, sizeof what, "key %s (written by %s) replays", key, by);
    if (st != SEAWALL_OK) {
        check(0, what, seawall_last_error());
        return;
    }
    if (r.outcome != SEAWALL_IDEM_REPLAY) {
        check(0, what, seawall_idem_outcome_name(r.outcome));
        if (r.lease) {
            seawall_idem_release(cache, r.lease);
            seawall_idem_lease_free(r.lease);
        }
        return;
    }
    check(1, what, NULL);
    size_t len = 0;
    char *got = record_text(r.record, &len);
    snprintf(what, sizeof what, "key %s holds exactly the bytes %s wrote", key, by);
    check(got && len == strlen(expected) && memcmp(got, expected, len) == 0, what, got ? got : "(no result)");
    free(got);
    const char *ct = NULL;
    size_t ct_len = 0;
    snprintf(what, sizeof what, "key %s has content type application/json", key);
    int ct_ok = seawall_idem_record_content_type(r.record, &ct, &ct_len) == SEAWALL_OK && ct &&
                ct_len == strlen("application/json") && memcmp(ct, "application/json", ct_len) == 0;
    check(ct_ok, what, NULL);
    seawall_idem_record_free(r.record);
}

static void sleep_ms(long ms) {
    if (ms <= 0) return;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long long now_epoch_ms(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "replay-a-b-write-c") == 0) {
        seawall_idem_cache *cache = make_cache();
        expect_replay(cache, "A", A_JSON, "python");
        expect_replay(cache, "B", B_JSON, "node");
        seawall_idem_begin_result r;
        seawall_status st = seawall_idem_acquire(cache, (const uint8_t *)"C", 1, NULL, 0, &r);
        int exec = st == SEAWALL_OK && r.outcome == SEAWALL_IDEM_EXECUTE;
        check(exec, "key C is fresh and executes", st == SEAWALL_OK ? seawall_idem_outcome_name(r.outcome) : seawall_last_error());
        if (exec) {
            seawall_idem_record *rec = NULL;
            st = seawall_idem_complete(cache, r.lease, (const uint8_t *)C_JSON, strlen(C_JSON), "application/json", &rec);
            check(st == SEAWALL_OK, "key C completes with JSON bytes", st == SEAWALL_OK ? NULL : seawall_last_error());
            seawall_idem_lease_free(r.lease);
            seawall_idem_record_free(rec);
        } else if (st == SEAWALL_OK) {
            seawall_idem_record_free(r.record);
        }
        seawall_idem_cache_free(cache);
    } else if (strcmp(mode, "race") == 0 && argc == 4) {
        seawall_idem_cache *cache = make_cache();
        const char *key = argv[2];
        sleep_ms((long)(atoll(argv[3]) - now_epoch_ms()));
        seawall_idem_begin_result r;
        seawall_status st = seawall_idem_acquire(cache, (const uint8_t *)key, strlen(key), NULL, 0, &r);
        if (st != SEAWALL_OK) {
            printf("FAIL: c: race acquire: %s: %s\n", seawall_status_name(st), seawall_last_error());
            return 1;
        }
        int executed = r.outcome == SEAWALL_IDEM_EXECUTE;
        seawall_idem_record *rec = r.record;
        if (executed) {
            static const char WIN[] = "{\"winner\":\"c\"}";
            sleep_ms(500); /* hold the lease: the others are duplicates in progress */
            st = seawall_idem_complete(cache, r.lease, (const uint8_t *)WIN, strlen(WIN), "application/json", &rec);
            seawall_idem_lease_free(r.lease);
            if (st != SEAWALL_OK) {
                printf("FAIL: c: race complete: %s\n", seawall_last_error());
                return 1;
            }
        }
        char *got = rec ? record_text(rec, NULL) : NULL;
        printf("RACE c executed=%d value=%s\n", executed, got ? got : "(none)");
        free(got);
        seawall_idem_record_free(rec);
        seawall_idem_cache_free(cache);
    } else {
        fprintf(stderr, "usage: c_side replay-a-b-write-c | race KEY START_MS\n");
        return 2;
    }
    return failed ? 1 : 0;
}
