/*
 * threads.c: 8 threads hammer one breaker through the C API while a ninth advances its
 * manual clock, so that the breaker cycles closed -> open -> half_open -> closed/open
 * many times. Checks:
 *  - half-open never has more than half_open_max_calls (3) probe permits out at once,
 *    counted independently of the library with an atomic counter of probes held;
 *  - the snapshot's counts add up to the calls made (successes, failures, ignored,
 *    rejected, each exactly);
 *  - state changes reach the listener in order (each event starts where the last ended);
 *  - no deadlock: the run ends within a bounded time (a watchdog kills it otherwise).
 *
 * Why probes held can be counted exactly: a worker holds a read lock from before it asks
 * for a permit until after it has recorded the outcome, and the clock only moves under the
 * write lock. A new half-open period can only start once the clock has moved past the
 * open duration (1 ms, never 0), so every probe of an earlier period has been recorded by
 * then: the probes held at any moment all belong to one half-open period.
 *
 * Build: gcc threads.c -pthread $(pkg-config --cflags --libs seawall)
 * Usage: threads [ITERATIONS_PER_THREAD]   Prints "N passed, M failed" last.
 */
#define _GNU_SOURCE /* pthread_rwlockattr_setkind_np: a writer must not starve */

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sched.h>
#include <unistd.h>

#include "check.h"

#define WORKERS 8
#define MAX_PROBES 3
#define WATCHDOG_SECONDS 60

static seawall_breaker *breaker;
static seawall_clock *clock_;
static pthread_rwlock_t clock_lock;
static atomic_int workers_done;
static atomic_int probes_held;
static atomic_int probes_max;
static atomic_int probe_violations;
static atomic_int snapshot_violations;
static atomic_int unexpected_status;
static long iterations = 25000;

typedef struct {
    unsigned id;
    uint64_t successes, failures, ignored, cancelled, rejected, probes;
} worker_t;

/* Events, checked for order by the listener itself. */
static pthread_mutex_t events_mu = PTHREAD_MUTEX_INITIALIZER;
static seawall_state last_to = SEAWALL_STATE_CLOSED;
static uint64_t events_total, events_out_of_order, to_half_open, to_closed, reentrant_failures;

static void on_change(const seawall_state_change *e, void *user_data) {
    (void)user_data;
    pthread_mutex_lock(&events_mu);
    if (e->from != last_to) events_out_of_order++;
    last_to = e->to;
    events_total++;
    if (e->to == SEAWALL_STATE_HALF_OPEN) to_half_open++;
    if (e->to == SEAWALL_STATE_CLOSED) to_closed++;
    pthread_mutex_unlock(&events_mu);
    /* A listener may call back into the breaker, also while other threads use it. */
    seawall_state s;
    if (seawall_breaker_state(breaker, &s) != SEAWALL_OK) __atomic_add_fetch(&reentrant_failures, 1, __ATOMIC_RELAXED);
}

static uint32_t next_random(uint32_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static void *worker(void *arg) {
    worker_t *w = arg;
    uint32_t rng = 2463534242u + w->id * 7919u;
    for (long i = 0; i < iterations; i++) {
        pthread_rwlock_rdlock(&clock_lock);
        seawall_permit *p = NULL;
        seawall_status st = seawall_breaker_try_acquire(breaker, &p, NULL);
        if (st == SEAWALL_OK) {
            bool probe = false;
            if (seawall_permit_is_probe(p, &probe) != SEAWALL_OK) atomic_fetch_add(&unexpected_status, 1);
            if (probe) {
                w->probes++;
                int held = atomic_fetch_add(&probes_held, 1) + 1;
                if (held > MAX_PROBES) atomic_fetch_add(&probe_violations, 1);
                int max = atomic_load(&probes_max);
                while (held > max && !atomic_compare_exchange_weak(&probes_max, &max, held)) {
                }
                sched_yield(); /* let other threads try for a slot while this one is held */
            }
            uint32_t r = next_random(&rng) % 100;
            /* The counter goes down before the slot is freed, so it never over-counts. */
            if (probe) atomic_fetch_sub(&probes_held, 1);
            if (r < 62) {
                st = seawall_permit_success(p, r);
                w->successes++;
            } else if (r < 92) {
                st = seawall_permit_failure(p, r);
                w->failures++;
            } else if (r < 96) {
                st = seawall_permit_ignore(p);
                w->ignored++;
            } else {
                w->cancelled++; /* freed without an outcome */
            }
            if (st != SEAWALL_OK) atomic_fetch_add(&unexpected_status, 1);
            seawall_permit_free(p);
        } else if (st == SEAWALL_E_BREAKER_OPEN) {
            w->rejected++;
            pthread_rwlock_unlock(&clock_lock);
            sched_yield(); /* back off a little, so the clock thread gets its turn */
            continue;
        } else {
            atomic_fetch_add(&unexpected_status, 1);
        }
        if (i % 997 == 0) {
            seawall_snapshot snap;
            if (seawall_breaker_snapshot(breaker, &snap) != SEAWALL_OK || snap.half_open_in_flight > MAX_PROBES)
                atomic_fetch_add(&snapshot_violations, 1);
        }
        pthread_rwlock_unlock(&clock_lock);
    }
    atomic_fetch_add(&workers_done, 1);
    return NULL;
}

static void *ticker(void *arg) {
    uint64_t *ticks = arg;
    while (atomic_load(&workers_done) < WORKERS) {
        pthread_rwlock_wrlock(&clock_lock);
        if (seawall_clock_advance_ms(clock_, 1) != SEAWALL_OK) atomic_fetch_add(&unexpected_status, 1);
        (*ticks)++;
        pthread_rwlock_unlock(&clock_lock);
        sched_yield();
    }
    return NULL;
}

static void watchdog(int sig) {
    (void)sig;
    static const char msg[] = "threads: no progress within the time limit (deadlock?)\n0 passed, 1 failed\n";
    if (write(STDOUT_FILENO, msg, sizeof msg - 1) < 0) _exit(3);
    _exit(2);
}

int main(int argc, char **argv) {
    if (argc > 1) iterations = atol(argv[1]);
    signal(SIGALRM, watchdog);
    alarm(WATCHDOG_SECONDS);

    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&clock_lock, &attr);

    seawall_breaker_config *cfg = NULL;
    CHECK_OK(seawall_manual_clock_new(&clock_));
    CHECK_OK(seawall_breaker_config_new(&cfg));
    CHECK_OK(seawall_breaker_config_set_str(cfg, "name", "threads"));
    CHECK_OK(seawall_breaker_config_set_int(cfg, "consecutive_failures", 2));
    CHECK_OK(seawall_breaker_config_set_int(cfg, "open_duration", 1));
    CHECK_OK(seawall_breaker_config_set_int(cfg, "half_open_max_calls", MAX_PROBES));
    CHECK_OK(seawall_breaker_config_set_int(cfg, "half_open_success_threshold", MAX_PROBES));
    CHECK_OK(seawall_breaker_config_set_clock(cfg, clock_));
    CHECK_OK(seawall_breaker_new(cfg, &breaker));
    seawall_breaker_config_free(cfg);
    if (!breaker) return check_report();
    CHECK_OK(seawall_breaker_on_state_change(breaker, on_change, NULL, NULL));

    pthread_t threads[WORKERS], tick;
    worker_t w[WORKERS] = {{0}};
    uint64_t ticks = 0;
    CHECK(pthread_create(&tick, NULL, ticker, &ticks) == 0);
    for (unsigned i = 0; i < WORKERS; i++) {
        w[i].id = i;
        CHECK(pthread_create(&threads[i], NULL, worker, &w[i]) == 0);
    }
    for (unsigned i = 0; i < WORKERS; i++) CHECK(pthread_join(threads[i], NULL) == 0);
    CHECK(pthread_join(tick, NULL) == 0);

    worker_t sum = {0};
    for (unsigned i = 0; i < WORKERS; i++) {
        sum.successes += w[i].successes;
        sum.failures += w[i].failures;
        sum.ignored += w[i].ignored;
        sum.cancelled += w[i].cancelled;
        sum.rejected += w[i].rejected;
        sum.probes += w[i].probes;
    }
    uint64_t calls = (uint64_t)WORKERS * (uint64_t)iterations;
    seawall_snapshot snap;
    CHECK_OK(seawall_breaker_snapshot(breaker, &snap));
    CHECK_U64(snap.successes, sum.successes);
    CHECK_U64(snap.failures, sum.failures);
    CHECK_U64(snap.ignored, sum.ignored);
    CHECK_U64(snap.rejected, sum.rejected);
    CHECK_U64(snap.successes + snap.failures + snap.ignored + snap.rejected, calls - sum.cancelled);
    CHECK_U64(snap.half_open_in_flight, 0);
    CHECK_U64(atomic_load(&probe_violations), 0);
    CHECK_U64(atomic_load(&snapshot_violations), 0);
    CHECK_U64(atomic_load(&unexpected_status), 0);
    CHECK(atomic_load(&probes_max) <= MAX_PROBES);
    CHECK_U64(events_out_of_order, 0);
    CHECK_U64(reentrant_failures, 0);
    /* The run really cycled through half-open, both ways out of it. */
    CHECK(to_half_open > 0);
    CHECK(to_closed > 0);
    CHECK(sum.probes > 0);
    CHECK(events_total > 3);

    fprintf(stderr,
            "threads: %llu calls, %llu rejected, %llu probes (at most %d out at once), %llu state changes "
            "(%llu to half_open, %llu to closed), %llu clock ticks\n",
            (unsigned long long)calls, (unsigned long long)sum.rejected, (unsigned long long)sum.probes,
            atomic_load(&probes_max), (unsigned long long)events_total, (unsigned long long)to_half_open,
            (unsigned long long)to_closed, (unsigned long long)ticks);
    seawall_breaker_free(breaker);
    seawall_clock_free(clock_);
    pthread_rwlock_destroy(&clock_lock);
    return check_report();
}
