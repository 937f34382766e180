/*
 * redis.c: the idempotency cache on a real Redis, from C.
 *
 * Needs SEAWALL_REDIS_URL (scripts/test-c.sh starts its own redis-server on a free
 * 127.0.0.1 port and sets it; the test fails, never skips, without it).
 *
 * 1. Two stores on one Redis (as two processes would have), two caches, 8 threads racing
 *    through both on the same keys: each key's work runs exactly once, every thread gets
 *    the same bytes, and a record written through one cache replays through the other.
 * 2. Configuration errors name the field; NULL arguments are refused.
 * 3. A Redis that is not there: calls fail fast with SEAWALL_E_STORE_UNAVAILABLE.
 *
 * The last line is "N passed, M failed".
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "check.h"

#define THREADS 8
#define KEYS 40

typedef struct {
    seawall_idem_cache *caches[2];
    char prefix[64];
    atomic_int runs[KEYS];
    atomic_int errors;
    char results[THREADS][KEYS][64];
} world;

typedef struct {
    world *w;
    int id;
} worker_arg;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static void *worker(void *p) {
    worker_arg *a = p;
    world *w = a->w;
    seawall_idem_cache *cache = w->caches[a->id % 2];
    for (int i = 0; i < KEYS; i++) {
        int k = (i + a->id * 5) % KEYS;
        char key[32];
        int n = snprintf(key, sizeof key, "order-%d", k);
        seawall_idem_begin_result r;
        seawall_status st = seawall_idem_acquire(cache, (const uint8_t *)key, (size_t)n, (const uint8_t *)"p", 1, &r);
        if (st != SEAWALL_OK) {
            fprintf(stderr, "acquire: %s: %s\n", seawall_status_name(st), seawall_last_error());
            atomic_fetch_add(&w->errors, 1);
            continue;
        }
        seawall_idem_record *rec = r.record;
        if (r.outcome == SEAWALL_IDEM_EXECUTE) {
            atomic_fetch_add(&w->runs[k], 1);
            char out[64];
            int len = snprintf(out, sizeof out, "receipt %d by %d", k, a->id);
            st = seawall_idem_complete(cache, r.lease, (const uint8_t *)out, (size_t)len, "text/plain", &rec);
            seawall_idem_lease_free(r.lease);
            if (st != SEAWALL_OK) {
                fprintf(stderr, "complete: %s: %s\n", seawall_status_name(st), seawall_last_error());
                atomic_fetch_add(&w->errors, 1);
                continue;
            }
        }
        const uint8_t *data;
        size_t len;
        if (seawall_idem_record_result(rec, &data, &len) == SEAWALL_OK && len < 64) {
            memcpy(w->results[a->id][k], data, len);
        } else {
            atomic_fetch_add(&w->errors, 1);
        }
        seawall_idem_record_free(rec);
    }
    return NULL;
}

static seawall_idem_cache *cache_on(const char *url, const char *prefix, double command_timeout_ms) {
    seawall_redis_config *rc = NULL;
    seawall_redis_store *store = NULL;
    seawall_idem_config *ic = NULL;
    seawall_idem_cache *cache = NULL;
    CHECK_OK(seawall_redis_config_new(&rc));
    CHECK_OK(seawall_redis_config_set_str(rc, "url", url));
    CHECK_OK(seawall_redis_config_set_str(rc, "prefix", prefix));
    CHECK_OK(seawall_redis_config_set_double(rc, "command_timeout", command_timeout_ms));
    CHECK_OK(seawall_redis_config_set_double(rc, "connect_timeout", command_timeout_ms));
    CHECK_OK(seawall_redis_store_new(rc, &store));
    CHECK_OK(seawall_idem_config_new(&ic));
    CHECK_OK(seawall_idem_config_set_redis_store(ic, store));
    CHECK_OK(seawall_idem_cache_new(ic, &cache));
    seawall_redis_store_free(store); /* the cache keeps it alive */
    seawall_redis_config_free(rc);
    seawall_idem_config_free(ic);
    return cache;
}

int main(void) {
    const char *url = getenv("SEAWALL_REDIS_URL");
    CHECK(url != NULL && url[0] != '\0');
    if (url == NULL) return check_report();

    /* 1. Two caches, two stores, one Redis. */
    world *w = calloc(1, sizeof *w);
    snprintf(w->prefix, sizeof w->prefix, "c-test-%ld:", (long)time(NULL));
    w->caches[0] = cache_on(url, w->prefix, 1000);
    w->caches[1] = cache_on(url, w->prefix, 1000);
    seawall_redis_config *rc = NULL;
    seawall_redis_store *probe = NULL;
    CHECK_OK(seawall_redis_config_new(&rc));
    CHECK_OK(seawall_redis_config_set_str(rc, "url", url));
    CHECK_OK(seawall_redis_store_new(rc, &probe));
    double ping = -1;
    CHECK_OK(seawall_redis_store_ping(probe, &ping));
    CHECK(ping >= 0);
    seawall_redis_store_free(probe);

    pthread_t threads[THREADS];
    worker_arg args[THREADS];
    for (int t = 0; t < THREADS; t++) {
        args[t] = (worker_arg){.w = w, .id = t};
        pthread_create(&threads[t], NULL, worker, &args[t]);
    }
    for (int t = 0; t < THREADS; t++) pthread_join(threads[t], NULL);
    CHECK(atomic_load(&w->errors) == 0);
    int once = 1, same = 1;
    for (int k = 0; k < KEYS; k++) {
        if (atomic_load(&w->runs[k]) != 1) once = 0;
        for (int t = 1; t < THREADS; t++)
            if (strcmp(w->results[t][k], w->results[0][k]) != 0) same = 0;
    }
    CHECK(once);
    CHECK(same);

    /* A record completed through cache 0 replays through cache 1. */
    seawall_idem_begin_result r;
    CHECK_OK(seawall_idem_begin(w->caches[0], (const uint8_t *)"cross", 5, NULL, 0, &r));
    CHECK(r.outcome == SEAWALL_IDEM_EXECUTE);
    CHECK_OK(seawall_idem_complete(w->caches[0], r.lease, (const uint8_t *)"{\"id\":7}", 8, "application/json", NULL));
    seawall_idem_lease_free(r.lease);
    CHECK_OK(seawall_idem_begin(w->caches[1], (const uint8_t *)"cross", 5, NULL, 0, &r));
    CHECK(r.outcome == SEAWALL_IDEM_REPLAY);
    if (r.outcome == SEAWALL_IDEM_REPLAY) {
        const uint8_t *data;
        size_t len;
        CHECK_OK(seawall_idem_record_result(r.record, &data, &len));
        CHECK(len == 8 && memcmp(data, "{\"id\":7}", 8) == 0);
        seawall_idem_record_free(r.record);
    }
    seawall_idem_cache_free(w->caches[0]);
    seawall_idem_cache_free(w->caches[1]);
    free(w);

    /* 2. Bad input. */
    CHECK_STATUS(seawall_redis_config_set_str(rc, "prefix", "app:{x}:"), SEAWALL_E_CONFIG);
    CHECK_CONTAINS(seawall_last_error(), "prefix");
    CHECK_STATUS(seawall_redis_config_set_double(rc, "command_timeout", -5), SEAWALL_E_CONFIG);
    CHECK_CONTAINS(seawall_last_error(), "command_timeout");
    CHECK_STATUS(seawall_redis_config_set_str(rc, "bogus", "x"), SEAWALL_E_CONFIG);
    CHECK_STATUS(seawall_redis_config_set_str(rc, NULL, "x"), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_STATUS(seawall_redis_store_new(NULL, &probe), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_STATUS(seawall_redis_store_new(rc, NULL), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_STATUS(seawall_idem_config_set_redis_store(NULL, NULL), SEAWALL_E_INVALID_ARGUMENT);
    seawall_redis_store_free(NULL);
    seawall_redis_config_free(NULL);
    seawall_redis_config_free(rc);

    /* 3. Nothing listens on port 1: fail fast, never hang. */
    seawall_idem_cache *down = cache_on("redis://127.0.0.1:1/0", "down:", 200);
    double t0 = now_ms();
    seawall_status st = seawall_idem_begin(down, (const uint8_t *)"k", 1, NULL, 0, &r);
    double took = now_ms() - t0;
    CHECK(st == SEAWALL_E_STORE_UNAVAILABLE);
    CHECK(took < 2000);
    seawall_idem_cache_free(down);
    return check_report();
}
