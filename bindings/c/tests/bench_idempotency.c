/*
 * bench_idempotency.c: the per-call cost of the idempotency cache from C, on the memory
 * store and the system clock, beside a bare call, in one run:
 *
 *   bare      a call to a function that does nothing (not inlined)
 *   replay    seawall_idem_begin on a completed key (with a 32-byte payload fingerprint),
 *             reading the result bytes, freeing the record
 *   fresh     seawall_idem_begin on a new key + seawall_idem_complete (16-byte result) +
 *             freeing the lease
 *
 * Each figure is the best of 3 runs. It also checks that every replay returned the stored
 * bytes and every fresh begin executed, so it fails when the cache misbehaves.
 * Usage: bench_idempotency [FRESH_KEYS] [REPLAYS]   (defaults 100000, 500000)
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <seawall.h>

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static volatile int sink;
__attribute__((noinline)) static int bare(const uint8_t *key, size_t len) {
    sink += (int)len + key[0];
    return sink;
}

static const uint8_t payload[32] = "{\"amount\":100,\"currency\":\"EUR\"}";

int main(int argc, char **argv) {
    long fresh_n = argc > 1 ? atol(argv[1]) : 100000;
    long replay_n = argc > 2 ? atol(argv[2]) : 500000;
    int failures = 0;
    char (*keys)[24] = malloc((size_t)fresh_n * 3 * sizeof *keys);
    size_t *lens = malloc((size_t)fresh_n * 3 * sizeof *lens);
    if (!keys || !lens) return 1;
    for (long i = 0; i < fresh_n * 3; i++) lens[i] = (size_t)snprintf(keys[i], sizeof keys[i], "order-%ld", i);

    seawall_idem_config *cfg;
    seawall_idem_cache *cache;
    if (seawall_idem_config_new(&cfg) != SEAWALL_OK ||
        seawall_idem_config_set_int(cfg, "max_entries", fresh_n * 3 + 10) != SEAWALL_OK ||
        seawall_idem_cache_new(cfg, &cache) != SEAWALL_OK) {
        fprintf(stderr, "setup: %s\n", seawall_last_error());
        return 1;
    }
    seawall_idem_config_free(cfg);

    double best_bare = 1e18, best_replay = 1e18, best_fresh = 1e18;
    for (int run = 0; run < 3; run++) {
        double t0 = now_ns();
        for (long i = 0; i < replay_n; i++) bare((const uint8_t *)keys[i % fresh_n], lens[i % fresh_n]);
        double t = (now_ns() - t0) / (double)replay_n;
        if (t < best_bare) best_bare = t;

        /* fresh: keys [run * fresh_n, (run + 1) * fresh_n) */
        t0 = now_ns();
        for (long i = run * fresh_n; i < (run + 1) * fresh_n; i++) {
            seawall_idem_begin_result r;
            if (seawall_idem_begin(cache, (const uint8_t *)keys[i], lens[i], payload, sizeof payload, &r) !=
                    SEAWALL_OK ||
                r.outcome != SEAWALL_IDEM_EXECUTE) {
                failures++;
                continue;
            }
            if (seawall_idem_complete(cache, r.lease, (const uint8_t *)"{\"charge\":\"ch\"}", 16, "application/json",
                                      NULL) != SEAWALL_OK)
                failures++;
            seawall_idem_lease_free(r.lease);
        }
        t = (now_ns() - t0) / (double)fresh_n;
        if (t < best_fresh) best_fresh = t;

        /* replay: keys of the first fresh run, round robin */
        t0 = now_ns();
        for (long i = 0; i < replay_n; i++) {
            long k = i % fresh_n;
            seawall_idem_begin_result r;
            const uint8_t *data;
            size_t len;
            if (seawall_idem_begin(cache, (const uint8_t *)keys[k], lens[k], payload, sizeof payload, &r) !=
                    SEAWALL_OK ||
                r.outcome != SEAWALL_IDEM_REPLAY || seawall_idem_record_result(r.record, &data, &len) != SEAWALL_OK ||
                len != 16 || data[2] != 'c') {
                failures++;
            }
            seawall_idem_record_free(r.record);
        }
        t = (now_ns() - t0) / (double)replay_n;
        if (t < best_replay) best_replay = t;
    }
    printf("bare call:                          %8.1f ns\n", best_bare);
    printf("replayed begin (+ result, free):    %8.1f ns\n", best_replay);
    printf("fresh begin + complete (+ free):    %8.1f ns\n", best_fresh);
    seawall_idem_stats st;
    seawall_idem_cache_stats(cache, &st);
    if (st.executed != (uint64_t)fresh_n * 3 || st.replayed != (uint64_t)replay_n * 3) failures++;
    seawall_idem_cache_free(cache);
    free(keys);
    free(lens);
    printf("%d failures\n", failures);
    return failures != 0;
}
