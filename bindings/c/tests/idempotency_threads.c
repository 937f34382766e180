/*
 * idempotency_threads.c: 8 threads racing on the same keys through seawall_idem_acquire.
 *
 * 1. Race (system clock, default options): every thread asks for every key (each thread in
 *    its own order) and, when it owns a key, "works" for a moment and completes it with
 *    bytes that name the thread. Each key's work runs exactly once and every thread ends
 *    with the same bytes for a key (the owner's record, which it returns too). Repeated
 *    with fresh caches so that many interleavings are tried.
 * 2. Crashing owners (manual clock advanced by a clock thread): the first owner of each key
 *    "crashes" (abandons its lease and frees it), the second overruns its lease and then
 *    tries to complete (refused: SEAWALL_E_LEASE_LOST); the threads that were waiting take
 *    over as each lease expires. Still exactly one completed result per key, the same
 *    bytes for every thread, and no stale owner ever overwrote it.
 *
 * Build: gcc idempotency_threads.c $(pkg-config --cflags --libs seawall) -pthread
 * The last line is "N passed, M failed".
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "check.h"

#define THREADS 8
#define KEYS 24
#define RESULT_MAX 64

typedef struct {
    seawall_idem_cache *cache;
    seawall_clock *clock;        /* the manual clock (crash variant), else NULL */
    int crash;                   /* crash variant */
    atomic_int runs[KEYS];       /* times the work of a key ran to completion */
    atomic_int attempts[KEYS];   /* times a key was handed out (crash variant: decides the fate) */
    atomic_int completed[KEYS];  /* completes that succeeded */
    atomic_int stale_refused;    /* overrunning owners refused with SEAWALL_E_LEASE_LOST */
    atomic_int lost_normal;      /* normal owners whose lease expired before they completed */
    atomic_int errors;           /* unexpected statuses */
    atomic_int done_threads;
    char results[THREADS][KEYS][RESULT_MAX];
    size_t result_len[THREADS][KEYS];
} world;

typedef struct {
    world *w;
    int id;
} worker_arg;

static void sleep_us(long us) {
    struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000L};
    nanosleep(&ts, NULL);
}

static void keep(world *w, int t, int k, const seawall_idem_record *rec) {
    const uint8_t *data;
    size_t len;
    if (seawall_idem_record_result(rec, &data, &len) != SEAWALL_OK || len >= RESULT_MAX) {
        atomic_fetch_add(&w->errors, 1);
        return;
    }
    memcpy(w->results[t][k], data, len);
    w->result_len[t][k] = len;
}

static uint64_t clock_now(seawall_clock *c) {
    uint64_t ms = 0;
    seawall_clock_now_ms(c, &ms);
    return ms;
}

/* One thread's pass over every key: acquire until it holds a result for the key. */
static void *worker(void *p) {
    worker_arg *a = p;
    world *w = a->w;
    for (int i = 0; i < KEYS; i++) {
        int k = (i + a->id * 3) % KEYS;
        char key[32];
        int n = snprintf(key, sizeof key, "order-%d", k);
        for (;;) {
            seawall_idem_begin_result r;
            seawall_status st = seawall_idem_acquire(w->cache, (const uint8_t *)key, (size_t)n,
                                                     (const uint8_t *)"payload", 7, &r);
            if (st != SEAWALL_OK) {
                fprintf(stderr, "acquire %s: %s: %s\n", key, seawall_status_name(st), seawall_last_error());
                atomic_fetch_add(&w->errors, 1);
                break;
            }
            if (r.outcome == SEAWALL_IDEM_REPLAY) {
                keep(w, a->id, k, r.record);
                seawall_idem_record_free(r.record);
                break;
            }
            if (r.outcome != SEAWALL_IDEM_EXECUTE || r.lease == NULL) {
                atomic_fetch_add(&w->errors, 1);
                break;
            }
            int fate = w->crash ? atomic_fetch_add(&w->attempts[k], 1) : 2;
            if (fate == 0) { /* crash: outcome unknown, the lease is left to expire */
                seawall_idem_abandon(w->cache, r.lease);
                seawall_idem_lease_free(r.lease);
                continue; /* this thread's client retries */
            }
            if (fate == 1) { /* overrun: still "working" when the lease expires, then completes */
                seawall_idem_lease_info info;
                seawall_idem_lease_get_info(r.lease, &info);
                while (clock_now(w->clock) < info.expires_at_ms) sleep_us(100);
                st = seawall_idem_complete(w->cache, r.lease, (const uint8_t *)"STALE", 5, NULL, NULL);
                if (st == SEAWALL_E_LEASE_LOST)
                    atomic_fetch_add(&w->stale_refused, 1);
                else
                    atomic_fetch_add(&w->errors, 1);
                seawall_idem_lease_free(r.lease);
                continue;
            }
            sleep_us(200); /* the work */
            atomic_fetch_add(&w->runs[k], 1);
            char out[RESULT_MAX];
            int len = snprintf(out, sizeof out, "receipt for %s by thread %d", key, a->id);
            seawall_idem_record *rec = NULL;
            st = seawall_idem_complete(w->cache, r.lease, (const uint8_t *)out, (size_t)len, "text/plain", &rec);
            seawall_idem_lease_free(r.lease);
            if (st == SEAWALL_E_LEASE_LOST && w->crash) {
                /* Descheduled past its lease while the clock thread ran on: like a crash. */
                atomic_fetch_add(&w->lost_normal, 1);
                atomic_fetch_sub(&w->runs[k], 1);
                continue;
            }
            if (st != SEAWALL_OK) {
                fprintf(stderr, "complete %s: %s: %s\n", key, seawall_status_name(st), seawall_last_error());
                atomic_fetch_add(&w->errors, 1);
                break;
            }
            atomic_fetch_add(&w->completed[k], 1);
            keep(w, a->id, k, rec);
            seawall_idem_record_free(rec);
            break;
        }
    }
    atomic_fetch_add(&w->done_threads, 1);
    return NULL;
}

/* Advances the manual clock by 10 ms every 0.5 ms of real time until the workers finish. */
static void *clock_thread(void *p) {
    world *w = p;
    while (atomic_load(&w->done_threads) < THREADS) {
        seawall_clock_advance_ms(w->clock, 10);
        sleep_us(500);
    }
    return NULL;
}

static void check_world(world *w, const char *what) {
    int ran_once = 0, same = 0, completed_once = 0;
    for (int k = 0; k < KEYS; k++) {
        ran_once += atomic_load(&w->runs[k]) == 1;
        completed_once += atomic_load(&w->completed[k]) == 1;
        int all_same = w->result_len[0][k] > 0;
        for (int t = 1; t < THREADS; t++)
            all_same &= w->result_len[t][k] == w->result_len[0][k] &&
                        memcmp(w->results[t][k], w->results[0][k], w->result_len[0][k]) == 0;
        all_same &= memcmp(w->results[0][k], "receipt for ", 12) == 0;
        same += all_same;
        if (!all_same || atomic_load(&w->completed[k]) != 1)
            fprintf(stderr, "%s: key %d ran %d times, completed %d times, results differ: %d\n", what, k,
                    atomic_load(&w->runs[k]), atomic_load(&w->completed[k]), !all_same);
    }
    CHECK(ran_once == KEYS);
    CHECK(completed_once == KEYS);
    CHECK(same == KEYS);
    CHECK(atomic_load(&w->errors) == 0);
    seawall_idem_stats st;
    CHECK_OK(seawall_idem_cache_stats(w->cache, &st));
    CHECK_U64(st.completed, KEYS);
    CHECK_U64(st.waiting, 0);
    CHECK_U64(st.replayed + st.completed, (uint64_t)THREADS * KEYS);
}

static void run_world(world *w) {
    pthread_t threads[THREADS], ticker;
    worker_arg args[THREADS];
    if (w->clock) pthread_create(&ticker, NULL, clock_thread, w);
    for (int t = 0; t < THREADS; t++) {
        args[t] = (worker_arg){.w = w, .id = t};
        pthread_create(&threads[t], NULL, worker, &args[t]);
    }
    for (int t = 0; t < THREADS; t++) pthread_join(threads[t], NULL);
    if (w->clock) pthread_join(ticker, NULL);
}

static void race(int round) {
    world *w = calloc(1, sizeof *w);
    seawall_idem_config *cfg;
    CHECK_OK(seawall_idem_config_new(&cfg));
    CHECK_OK(seawall_idem_cache_new(cfg, &w->cache));
    seawall_idem_config_free(cfg);
    run_world(w);
    char what[32];
    snprintf(what, sizeof what, "race %d", round);
    check_world(w, what);
    seawall_idem_stats st;
    CHECK_OK(seawall_idem_cache_stats(w->cache, &st));
    CHECK_U64(st.executed, KEYS);
    CHECK_U64(st.taken_over, 0);
    seawall_idem_cache_free(w->cache);
    free(w);
}

static void crashes(void) {
    world *w = calloc(1, sizeof *w);
    w->crash = 1;
    CHECK_OK(seawall_manual_clock_new(&w->clock));
    seawall_idem_config *cfg;
    CHECK_OK(seawall_idem_config_new(&cfg));
    CHECK_OK(seawall_idem_config_set_int(cfg, "lease", 1000));
    CHECK_OK(seawall_idem_config_set_int(cfg, "wait_timeout", 24 * 3600 * 1000));
    CHECK_OK(seawall_idem_config_set_clock(cfg, w->clock));
    CHECK_OK(seawall_idem_cache_new(cfg, &w->cache));
    seawall_idem_config_free(cfg);
    run_world(w);
    check_world(w, "crashes");
    CHECK(atomic_load(&w->stale_refused) == KEYS); /* every overrunning owner was fenced off */
    seawall_idem_stats st;
    CHECK_OK(seawall_idem_cache_stats(w->cache, &st));
    CHECK_U64(st.abandoned, KEYS);
    /* Each crash and each overrun was followed by exactly one takeover. */
    CHECK_U64(st.taken_over, 2 * KEYS + (uint64_t)atomic_load(&w->lost_normal));
    CHECK_U64(st.executed, 3 * KEYS + (uint64_t)atomic_load(&w->lost_normal));
    CHECK(st.lease_lost >= KEYS);
    printf("crashes: %d keys, %d crashed and %d overrunning owners, %llu takeovers, %d extra expiries\n", KEYS,
           KEYS, atomic_load(&w->stale_refused), (unsigned long long)st.taken_over, atomic_load(&w->lost_normal));
    seawall_idem_cache_free(w->cache);
    seawall_clock_free(w->clock);
    free(w);
}

int main(void) {
    for (int round = 0; round < 5; round++) race(round);
    crashes();
    return check_report();
}
