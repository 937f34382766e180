/*
 * api.c: the C API's contract, function by function: NULL arguments, free(NULL), strings
 * that are not UTF-8, configuration errors naming field and value, double outcomes, the
 * panic guard, status and state names, the per-thread last error, listeners (order,
 * removal, re-entrancy, removal on free), clocks and the manual states.
 *
 * Build: gcc api.c -pthread $(pkg-config --cflags --libs seawall) -DSEAWALL_EXPECTED_VERSION="\"X.Y.Z\""
 * Prints "N passed, M failed" last; exits non-zero when a check failed.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"

#ifndef SEAWALL_EXPECTED_VERSION
#error "build with -DSEAWALL_EXPECTED_VERSION=\"\\\"X.Y.Z\\\"\" (the pkg-config version)"
#endif

#define CHECK_NULL_ARG(call, param)                             \
    do {                                                        \
        CHECK_STATUS(call, SEAWALL_E_INVALID_ARGUMENT);         \
        CHECK_CONTAINS(seawall_last_error(), param " is NULL"); \
    } while (0)

/* A manual clock and a breaker "api" on it, with extra integer options (NULL-terminated). */
static seawall_breaker *make_breaker(seawall_clock *clock, const char *name, const char *const *keys,
                                     const int64_t *values) {
    seawall_breaker_config *cfg = NULL;
    seawall_breaker *b = NULL;
    CHECK_OK(seawall_breaker_config_new(&cfg));
    CHECK_OK(seawall_breaker_config_set_str(cfg, "name", name));
    for (int i = 0; keys && keys[i]; i++) CHECK_OK(seawall_breaker_config_set_int(cfg, keys[i], values[i]));
    CHECK_OK(seawall_breaker_config_set_clock(cfg, clock));
    CHECK_OK(seawall_breaker_new(cfg, &b));
    seawall_breaker_config_free(cfg);
    return b;
}

static void names(void) {
    CHECK_STR(seawall_version(), SEAWALL_EXPECTED_VERSION);
    CHECK_STR(seawall_status_name(SEAWALL_OK), "SEAWALL_OK");
    CHECK_STR(seawall_status_name(SEAWALL_E_INVALID_ARGUMENT), "SEAWALL_INVALID_ARGUMENT");
    CHECK_STR(seawall_status_name(SEAWALL_E_CONFIG), "SEAWALL_CONFIG");
    CHECK_STR(seawall_status_name(SEAWALL_E_BREAKER_OPEN), "SEAWALL_BREAKER_OPEN");
    CHECK_STR(seawall_status_name(SEAWALL_E_PERMIT_CONSUMED), "SEAWALL_PERMIT_CONSUMED");
    CHECK_STR(seawall_status_name(SEAWALL_E_TIMEOUT), "SEAWALL_TIMEOUT");
    CHECK_STR(seawall_status_name(SEAWALL_E_INTERNAL), "SEAWALL_INTERNAL");
    CHECK_STR(seawall_status_name((seawall_status)42), "SEAWALL_UNKNOWN");
    CHECK_STR(seawall_status_name((seawall_status)-1), "SEAWALL_UNKNOWN");
    CHECK(SEAWALL_E_INVALID_ARGUMENT == 1 && SEAWALL_E_CONFIG == 2 && SEAWALL_E_BREAKER_OPEN == 3 &&
          SEAWALL_E_PERMIT_CONSUMED == 4 && SEAWALL_E_TIMEOUT == 5 && SEAWALL_E_INTERNAL == 99);
    CHECK_STR(seawall_state_name(SEAWALL_STATE_CLOSED), "closed");
    CHECK_STR(seawall_state_name(SEAWALL_STATE_OPEN), "open");
    CHECK_STR(seawall_state_name(SEAWALL_STATE_HALF_OPEN), "half_open");
    CHECK_STR(seawall_state_name(SEAWALL_STATE_FORCED_OPEN), "forced_open");
    CHECK_STR(seawall_state_name(SEAWALL_STATE_DISABLED), "disabled");
    CHECK_STR(seawall_state_name((seawall_state)7), "unknown");
}

static void null_arguments(void) {
    seawall_clock *clock = NULL;
    seawall_breaker_config *cfg = NULL;
    seawall_breaker *b = NULL;
    seawall_permit *p = NULL;
    uint64_t u = 0;
    bool flag = false;
    const char *text = NULL;
    seawall_state state;
    seawall_snapshot snap;

    CHECK_OK(seawall_manual_clock_new(&clock));
    CHECK_OK(seawall_breaker_config_new(&cfg));
    CHECK_OK(seawall_breaker_config_set_clock(cfg, clock));
    CHECK_OK(seawall_breaker_new(cfg, &b));
    CHECK_OK(seawall_breaker_try_acquire(b, &p, NULL));

    CHECK_NULL_ARG(seawall_system_clock_new(NULL), "out_clock");
    CHECK_NULL_ARG(seawall_manual_clock_new(NULL), "out_clock");
    CHECK_NULL_ARG(seawall_clock_advance_ms(NULL, 1), "clock");
    CHECK_NULL_ARG(seawall_clock_now_ms(NULL, &u), "clock");
    CHECK_NULL_ARG(seawall_clock_now_ms(clock, NULL), "out_ms");

    CHECK_NULL_ARG(seawall_breaker_config_new(NULL), "out_config");
    CHECK_NULL_ARG(seawall_breaker_config_set_int(NULL, "window_size", 5), "config");
    CHECK_NULL_ARG(seawall_breaker_config_set_int(cfg, NULL, 5), "key");
    CHECK_NULL_ARG(seawall_breaker_config_set_double(NULL, "backoff_multiplier", 2.0), "config");
    CHECK_NULL_ARG(seawall_breaker_config_set_double(cfg, NULL, 2.0), "key");
    CHECK_NULL_ARG(seawall_breaker_config_set_str(NULL, "name", "x"), "config");
    CHECK_NULL_ARG(seawall_breaker_config_set_str(cfg, NULL, "x"), "key");
    CHECK_NULL_ARG(seawall_breaker_config_set_str(cfg, "name", NULL), "value");
    CHECK_NULL_ARG(seawall_breaker_config_set_bool(NULL, "name", true), "config");
    CHECK_NULL_ARG(seawall_breaker_config_set_bool(cfg, NULL, true), "key");
    CHECK_NULL_ARG(seawall_breaker_config_set_clock(NULL, clock), "config");
    CHECK_NULL_ARG(seawall_breaker_config_set_clock(cfg, NULL), "clock");

    seawall_breaker *untouched = (seawall_breaker *)&u;
    CHECK_NULL_ARG(seawall_breaker_new(NULL, &untouched), "config");
    CHECK(untouched == (seawall_breaker *)&u);
    CHECK_NULL_ARG(seawall_breaker_new(cfg, NULL), "out_breaker");
    CHECK_NULL_ARG(seawall_breaker_name(NULL, &text), "breaker");
    CHECK_NULL_ARG(seawall_breaker_name(b, NULL), "out_name");
    CHECK_NULL_ARG(seawall_breaker_state(NULL, &state), "breaker");
    CHECK_NULL_ARG(seawall_breaker_state(b, NULL), "out_state");
    CHECK_NULL_ARG(seawall_breaker_snapshot(NULL, &snap), "breaker");
    CHECK_NULL_ARG(seawall_breaker_snapshot(b, NULL), "out_snapshot");
    CHECK_NULL_ARG(seawall_breaker_needs_duration(NULL, &flag), "breaker");
    CHECK_NULL_ARG(seawall_breaker_needs_duration(b, NULL), "out_needs");
    CHECK_NULL_ARG(seawall_breaker_force_open(NULL), "breaker");
    CHECK_NULL_ARG(seawall_breaker_disable(NULL), "breaker");
    CHECK_NULL_ARG(seawall_breaker_reset(NULL), "breaker");
    CHECK_NULL_ARG(seawall_breaker_try_acquire(NULL, &p, NULL), "breaker");
    CHECK_NULL_ARG(seawall_breaker_try_acquire(b, NULL, NULL), "out_permit");
    CHECK_NULL_ARG(seawall_breaker_on_state_change(NULL, NULL, NULL, &u), "breaker");
    CHECK_NULL_ARG(seawall_breaker_on_state_change(b, NULL, NULL, &u), "callback");
    CHECK_NULL_ARG(seawall_breaker_remove_listener(NULL, 0), "breaker");

    CHECK_NULL_ARG(seawall_permit_success(NULL, 0), "permit");
    CHECK_NULL_ARG(seawall_permit_failure(NULL, 0), "permit");
    CHECK_NULL_ARG(seawall_permit_timeout(NULL, 0), "permit");
    CHECK_NULL_ARG(seawall_permit_ignore(NULL), "permit");
    CHECK_NULL_ARG(seawall_permit_cancel(NULL), "permit");
    CHECK_NULL_ARG(seawall_permit_is_probe(NULL, &flag), "permit");
    CHECK_NULL_ARG(seawall_permit_is_probe(p, NULL), "out_is_probe");

    /* The NULL calls above changed nothing: the permit is still live and counts once. */
    CHECK_OK(seawall_permit_success(p, 0));
    CHECK_OK(seawall_breaker_snapshot(b, &snap));
    CHECK_U64(snap.successes, 1);
    CHECK_U64(snap.rejected, 0);

    /* free(NULL) is a no-op for every kind of handle. */
    seawall_permit_free(NULL);
    seawall_breaker_free(NULL);
    seawall_breaker_config_free(NULL);
    seawall_clock_free(NULL);
    CHECK(1);

    seawall_permit_free(p);
    seawall_breaker_free(b);
    seawall_breaker_config_free(cfg);
    seawall_clock_free(clock);
}

static void config_errors(void) {
    seawall_breaker_config *cfg = NULL;
    seawall_breaker *b = NULL;
    CHECK_OK(seawall_breaker_config_new(&cfg));

    CHECK_STATUS(seawall_breaker_config_set_int(cfg, "\xff\xfe", 1), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "UTF-8");
    CHECK_STATUS(seawall_breaker_config_set_str(cfg, "name", "bad \xc3\x28"), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "value is not valid UTF-8");

    CHECK_STATUS(seawall_breaker_config_set_int(cfg, "window_size", 0), SEAWALL_E_CONFIG);
    CHECK_CONTAINS(seawall_last_error(), "window_size = 0");
    CHECK_CONTAINS(seawall_last_error(), "at least 1");
    CHECK_STATUS(seawall_breaker_config_set_int(cfg, "consecutive_failures", -3), SEAWALL_E_CONFIG);
    CHECK_CONTAINS(seawall_last_error(), "consecutive_failures = -3");
    CHECK_STATUS(seawall_breaker_config_set_double(cfg, "open_duration", NAN), SEAWALL_E_CONFIG);
    CHECK_CONTAINS(seawall_last_error(), "open_duration = nanms"); /* printf spelling */
    CHECK_STATUS(seawall_breaker_config_set_double(cfg, "open_duration", -5), SEAWALL_E_CONFIG);
    CHECK_CONTAINS(seawall_last_error(), "open_duration = -5.0ms"); /* a double, shown as one */
    CHECK_STATUS(seawall_breaker_config_set_double(cfg, "failure_rate_threshold", 1.5), SEAWALL_E_CONFIG);
    CHECK_CONTAINS(seawall_last_error(), "failure_rate_threshold = 1.5");
    CHECK_STATUS(seawall_breaker_config_set_double(cfg, "backoff_multiplier", INFINITY), SEAWALL_E_CONFIG);
    CHECK_CONTAINS(seawall_last_error(), "backoff_multiplier = inf");
    CHECK_STATUS(seawall_breaker_config_set_str(cfg, "window", "sliding"), SEAWALL_E_CONFIG);
    CHECK_CONTAINS(seawall_last_error(), "window = \"sliding\"");
    CHECK_STATUS(seawall_breaker_config_set_str(cfg, "window_size", "10"), SEAWALL_E_CONFIG);
    CHECK_CONTAINS(seawall_last_error(), "window_size");
    CHECK_STATUS(seawall_breaker_config_set_int(cfg, "name", 42), SEAWALL_E_CONFIG);
    CHECK_CONTAINS(seawall_last_error(), "name = 42");
    CHECK_STATUS(seawall_breaker_config_set_bool(cfg, "minimum_calls", true), SEAWALL_E_CONFIG);
    CHECK_CONTAINS(seawall_last_error(), "minimum_calls = true");
    CHECK_STATUS(seawall_breaker_config_set_int(cfg, "max_failures", 3), SEAWALL_E_CONFIG);
    CHECK_CONTAINS(seawall_last_error(), "max_failures");
    CHECK_CONTAINS(seawall_last_error(), "unknown option");

    /* Refused values left the configuration as it was: it still builds. */
    CHECK_OK(seawall_breaker_new(cfg, &b));
    seawall_breaker_free(b);
    b = NULL;

    /* Rules between options are checked when the breaker is built. */
    CHECK_OK(seawall_breaker_config_set_int(cfg, "half_open_success_threshold", 3));
    CHECK_STATUS(seawall_breaker_new(cfg, &b), SEAWALL_E_CONFIG);
    CHECK(b == NULL);
    CHECK_CONTAINS(seawall_last_error(), "half_open_success_threshold = 3");
    CHECK_CONTAINS(seawall_last_error(), "half_open_max_calls");
    CHECK_OK(seawall_breaker_config_set_int(cfg, "half_open_max_calls", 3));
    CHECK_OK(seawall_breaker_config_set_str(cfg, "window", "time"));
    CHECK_OK(seawall_breaker_config_set_int(cfg, "window_duration", 1000));
    CHECK_OK(seawall_breaker_config_set_int(cfg, "window_buckets", 3));
    CHECK_STATUS(seawall_breaker_new(cfg, &b), SEAWALL_E_CONFIG);
    CHECK_CONTAINS(seawall_last_error(), "window_buckets = 3");
    CHECK_OK(seawall_breaker_config_set_int(cfg, "window_buckets", 4));
    CHECK_OK(seawall_breaker_new(cfg, &b));
    CHECK(b != NULL);
    /* The last error stays until the next failure, whatever succeeds in between. */
    CHECK_CONTAINS(seawall_last_error(), "window_buckets = 3");
    seawall_breaker_free(b);
    seawall_breaker_config_free(cfg);
}

static void clocks(void) {
    seawall_clock *manual = NULL, *sys = NULL;
    uint64_t t = 99, t2 = 0;
    CHECK_OK(seawall_manual_clock_new(&manual));
    CHECK_OK(seawall_clock_now_ms(manual, &t));
    CHECK_U64(t, 0);
    CHECK_OK(seawall_clock_advance_ms(manual, 250));
    CHECK_OK(seawall_clock_advance_ms(manual, 0));
    CHECK_OK(seawall_clock_now_ms(manual, &t));
    CHECK_U64(t, 250);
    CHECK_OK(seawall_system_clock_new(&sys));
    CHECK_OK(seawall_clock_now_ms(sys, &t));
    CHECK_OK(seawall_clock_now_ms(sys, &t2));
    CHECK(t2 >= t);
    CHECK_STATUS(seawall_clock_advance_ms(sys, 10), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "not a manual clock");
    seawall_clock_free(sys);
    seawall_clock_free(manual);
}

static void permits_and_states(void) {
    seawall_clock *clock = NULL;
    CHECK_OK(seawall_manual_clock_new(&clock));
    const char *keys[] = {"consecutive_failures", "open_duration", NULL};
    const int64_t values[] = {2, 1000};
    seawall_breaker *b = make_breaker(clock, "api", keys, values);
    seawall_permit *p = NULL, *q = NULL;
    seawall_rejection rej;
    seawall_state state;
    seawall_snapshot snap;
    bool flag = true;
    const char *name = NULL;

    CHECK_OK(seawall_breaker_name(b, &name));
    CHECK_STR(name, "api");
    CHECK_OK(seawall_breaker_needs_duration(b, &flag));
    CHECK(!flag);

    /* One outcome per permit; every further one is refused and changes nothing. */
    CHECK_OK(seawall_breaker_try_acquire(b, &p, &rej));
    CHECK(p != NULL);
    CHECK_OK(seawall_permit_is_probe(p, &flag));
    CHECK(!flag);
    CHECK_OK(seawall_permit_success(p, 5));
    CHECK_STATUS(seawall_permit_success(p, 5), SEAWALL_E_PERMIT_CONSUMED);
    CHECK_CONTAINS(seawall_last_error(), "already recorded");
    CHECK_STATUS(seawall_permit_failure(p, 5), SEAWALL_E_PERMIT_CONSUMED);
    CHECK_STATUS(seawall_permit_timeout(p, 5), SEAWALL_E_PERMIT_CONSUMED);
    CHECK_STATUS(seawall_permit_ignore(p), SEAWALL_E_PERMIT_CONSUMED);
    CHECK_STATUS(seawall_permit_cancel(p), SEAWALL_E_PERMIT_CONSUMED);
    seawall_permit_free(p);
    CHECK_OK(seawall_breaker_snapshot(b, &snap));
    CHECK_U64(snap.successes, 1);
    CHECK_U64(snap.failures, 0);

    /* Two failures in a row open it; a rejection says which state and for how long. */
    for (int i = 0; i < 2; i++) {
        CHECK_OK(seawall_breaker_try_acquire(b, &p, NULL));
        CHECK_OK(seawall_permit_failure(p, 1));
        seawall_permit_free(p);
    }
    CHECK_OK(seawall_breaker_state(b, &state));
    CHECK(state == SEAWALL_STATE_OPEN);
    p = (seawall_permit *)&rej;
    CHECK_STATUS(seawall_breaker_try_acquire(b, &p, &rej), SEAWALL_E_BREAKER_OPEN);
    CHECK(p == NULL);
    CHECK(rej.state == SEAWALL_STATE_OPEN);
    CHECK_U64(rej.retry_after_ms, 1000);
    CHECK_CONTAINS(seawall_last_error(), "circuit breaker 'api' is open");
    CHECK_OK(seawall_clock_advance_ms(clock, 400));
    CHECK_STATUS(seawall_breaker_try_acquire(b, &p, &rej), SEAWALL_E_BREAKER_OPEN);
    CHECK_U64(rej.retry_after_ms, 600);
    CHECK_STATUS(seawall_breaker_try_acquire(b, &p, NULL), SEAWALL_E_BREAKER_OPEN);
    CHECK_OK(seawall_breaker_snapshot(b, &snap));
    CHECK(snap.state == SEAWALL_STATE_OPEN);
    CHECK_U64(snap.retry_after_ms, 600);
    CHECK_U64(snap.rejected, 3);
    CHECK_STR(snap.name, "api");

    /* Half-open: one probe at a time; freeing a probe without an outcome frees its slot. */
    CHECK_OK(seawall_clock_advance_ms(clock, 600));
    CHECK_OK(seawall_breaker_state(b, &state));
    CHECK(state == SEAWALL_STATE_HALF_OPEN);
    CHECK_OK(seawall_breaker_try_acquire(b, &p, NULL));
    CHECK_OK(seawall_permit_is_probe(p, &flag));
    CHECK(flag);
    CHECK_STATUS(seawall_breaker_try_acquire(b, &q, &rej), SEAWALL_E_BREAKER_OPEN);
    CHECK(rej.state == SEAWALL_STATE_HALF_OPEN);
    CHECK_U64(rej.retry_after_ms, 0);
    CHECK_OK(seawall_breaker_snapshot(b, &snap));
    CHECK_U64(snap.half_open_in_flight, 1);
    seawall_permit_free(p); /* cancellation */
    CHECK_OK(seawall_breaker_snapshot(b, &snap));
    CHECK_U64(snap.half_open_in_flight, 0);
    CHECK_OK(seawall_breaker_try_acquire(b, &p, NULL));
    CHECK_OK(seawall_permit_success(p, 3));
    seawall_permit_free(p);
    CHECK_OK(seawall_breaker_state(b, &state));
    CHECK(state == SEAWALL_STATE_CLOSED);

    /* Timeouts are failures that are also counted as timeouts; ignore counts only there. */
    CHECK_OK(seawall_breaker_try_acquire(b, &p, NULL));
    CHECK_OK(seawall_permit_timeout(p, 30));
    seawall_permit_free(p);
    CHECK_OK(seawall_breaker_try_acquire(b, &p, NULL));
    CHECK_OK(seawall_permit_ignore(p));
    seawall_permit_free(p);
    CHECK_OK(seawall_breaker_snapshot(b, &snap));
    CHECK_U64(snap.timeouts, 1);
    CHECK_U64(snap.failures, 3);
    CHECK_U64(snap.ignored, 1);
    CHECK_U64(snap.consecutive_failures, 1);

    /* Manual states. */
    CHECK_OK(seawall_breaker_force_open(b));
    CHECK_STATUS(seawall_breaker_try_acquire(b, &p, &rej), SEAWALL_E_BREAKER_OPEN);
    CHECK(rej.state == SEAWALL_STATE_FORCED_OPEN);
    CHECK(rej.retry_after_ms == UINT64_MAX);
    CHECK_OK(seawall_breaker_snapshot(b, &snap));
    CHECK(snap.state == SEAWALL_STATE_FORCED_OPEN);
    CHECK(snap.retry_after_ms == UINT64_MAX);
    CHECK_OK(seawall_breaker_disable(b));
    for (int i = 0; i < 5; i++) {
        CHECK_OK(seawall_breaker_try_acquire(b, &p, NULL));
        CHECK_OK(seawall_permit_failure(p, 0));
        seawall_permit_free(p);
    }
    CHECK_OK(seawall_breaker_state(b, &state));
    CHECK(state == SEAWALL_STATE_DISABLED);
    CHECK_OK(seawall_breaker_reset(b));
    CHECK_OK(seawall_breaker_snapshot(b, &snap));
    CHECK(snap.state == SEAWALL_STATE_CLOSED);
    CHECK_U64(snap.failures, 8);
    CHECK_U64(snap.consecutive_failures, 0);

    /* A permit outlives its breaker handle. */
    CHECK_OK(seawall_breaker_try_acquire(b, &p, NULL));
    seawall_breaker_free(b);
    CHECK_OK(seawall_permit_success(p, 0));
    seawall_permit_free(p);
    seawall_clock_free(clock);
}

static void slow_calls(void) {
    seawall_clock *clock = NULL;
    CHECK_OK(seawall_manual_clock_new(&clock));
    seawall_breaker_config *cfg = NULL;
    seawall_breaker *b = NULL;
    seawall_permit *p = NULL;
    seawall_snapshot snap;
    bool needs = false;
    CHECK_OK(seawall_breaker_config_new(&cfg));
    CHECK_OK(seawall_breaker_config_set_double(cfg, "slow_call_duration", 100.0));
    CHECK_OK(seawall_breaker_config_set_double(cfg, "slow_call_rate_threshold", 0.5));
    CHECK_OK(seawall_breaker_config_set_int(cfg, "minimum_calls", 4));
    CHECK_OK(seawall_breaker_config_set_clock(cfg, clock));
    CHECK_OK(seawall_breaker_new(cfg, &b));
    seawall_breaker_config_free(cfg);
    /* The clock handle may go: the breaker keeps its own reference. */
    CHECK_OK(seawall_breaker_needs_duration(b, &needs));
    CHECK(needs);
    uint64_t durations[] = {99, 100, 250};
    for (int i = 0; i < 3; i++) {
        CHECK_OK(seawall_breaker_try_acquire(b, &p, NULL));
        CHECK_OK(seawall_permit_success(p, durations[i]));
        seawall_permit_free(p);
    }
    CHECK_OK(seawall_breaker_snapshot(b, &snap));
    CHECK_U64(snap.slow, 2);
    CHECK_U64(snap.window_calls, 3);
    CHECK(fabs(snap.slow_call_rate - 2.0 / 3.0) < 1e-9);
    seawall_clock_free(clock);
    CHECK_OK(seawall_breaker_try_acquire(b, &p, NULL));
    CHECK_OK(seawall_permit_failure(p, 100));
    seawall_permit_free(p);
    CHECK_OK(seawall_breaker_snapshot(b, &snap));
    CHECK(snap.state == SEAWALL_STATE_OPEN);
    CHECK(fabs(snap.slow_call_rate - 0.75) < 1e-9);
    seawall_breaker_free(b);
}

/* Listeners: a log of "tag:from>to@at(reason)" lines shared by the callbacks. */
typedef struct {
    char lines[32][96];
    int n;
    seawall_breaker *breaker; /* for the re-entrant listener */
    int reentrant_ok;
} event_log;

static void log_event(event_log *log, const char *tag, const seawall_state_change *e) {
    if (log->n < 32)
        snprintf(log->lines[log->n++], sizeof log->lines[0], "%s:%s:%s>%s@%llu(%s)", tag, e->breaker,
                 seawall_state_name(e->from), seawall_state_name(e->to), (unsigned long long)e->at_ms, e->reason);
}

static void listener_a(const seawall_state_change *e, void *user_data) {
    event_log *log = user_data;
    log_event(log, "a", e);
    /* A listener may call back into the breaker. */
    seawall_state state;
    seawall_snapshot snap;
    if (seawall_breaker_state(log->breaker, &state) == SEAWALL_OK &&
        seawall_breaker_snapshot(log->breaker, &snap) == SEAWALL_OK && state == e->to)
        log->reentrant_ok++;
}

static void listener_b(const seawall_state_change *e, void *user_data) {
    log_event(user_data, "b", e);
}

static atomic_int event_count;

static void count_events(const seawall_state_change *e, void *user_data) {
    (void)e;
    (void)user_data;
    atomic_fetch_add(&event_count, 1);
}

static void listeners(void) {
    seawall_clock *clock = NULL;
    CHECK_OK(seawall_manual_clock_new(&clock));
    const char *keys[] = {"consecutive_failures", "open_duration", NULL};
    const int64_t values[] = {1, 100};
    seawall_breaker *b = make_breaker(clock, "lst", keys, values);
    event_log log = {.n = 0, .breaker = b, .reentrant_ok = 0};
    uint64_t id_a = 0, id_b = 0;
    seawall_permit *p = NULL;

    CHECK_OK(seawall_breaker_on_state_change(b, listener_a, &log, &id_a));
    CHECK_OK(seawall_breaker_on_state_change(b, listener_b, &log, &id_b));
    CHECK(id_a != id_b);
    /* user_data and out_listener_id may be NULL. */
    CHECK_OK(seawall_breaker_on_state_change(b, count_events, NULL, NULL));

    CHECK_OK(seawall_clock_advance_ms(clock, 7));
    CHECK_OK(seawall_breaker_try_acquire(b, &p, NULL));
    CHECK_OK(seawall_permit_failure(p, 0));
    seawall_permit_free(p);
    CHECK_OK(seawall_clock_advance_ms(clock, 100));
    CHECK_OK(seawall_breaker_try_acquire(b, &p, NULL)); /* open -> half_open at 107 */
    CHECK_OK(seawall_permit_success(p, 0));            /* half_open -> closed */
    seawall_permit_free(p);
    CHECK_OK(seawall_breaker_remove_listener(b, id_b));
    CHECK_STATUS(seawall_breaker_remove_listener(b, id_b), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "no listener with id");
    CHECK_STATUS(seawall_breaker_remove_listener(b, 123456), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_OK(seawall_breaker_force_open(b));
    CHECK_OK(seawall_breaker_reset(b));
    CHECK_OK(seawall_breaker_reset(b)); /* no change, no event */

    const char *want[] = {
        "a:lst:closed>open@7(consecutive_failures)",    "b:lst:closed>open@7(consecutive_failures)",
        "a:lst:open>half_open@107(open_duration_elapsed)", "b:lst:open>half_open@107(open_duration_elapsed)",
        "a:lst:half_open>closed@107(probe_successes)",  "b:lst:half_open>closed@107(probe_successes)",
        "a:lst:closed>forced_open@107(force_open)",     "a:lst:forced_open>closed@107(reset)",
    };
    int nwant = (int)(sizeof want / sizeof want[0]);
    CHECK_U64(log.n, nwant);
    for (int i = 0; i < nwant && i < log.n; i++) CHECK_STR(log.lines[i], want[i]);
    CHECK_U64(log.reentrant_ok, 5);
    CHECK_U64(atomic_load(&event_count), 5);

    /* Freeing the breaker removes its listeners: a permit that outlives it cannot call back. */
    CHECK_OK(seawall_breaker_try_acquire(b, &p, NULL));
    seawall_breaker_free(b);
    int before = log.n;
    CHECK_OK(seawall_permit_failure(p, 0)); /* would open the breaker */
    seawall_permit_free(p);
    CHECK_U64(log.n, before);
    seawall_clock_free(clock);
}

static void panic_guard(void) {
    CHECK_STATUS(seawall_internal_test_panic(), SEAWALL_E_INTERNAL);
    CHECK_CONTAINS(seawall_last_error(), "internal error");
    CHECK_CONTAINS(seawall_last_error(), "deliberate panic");
    /* The library goes on working after a caught panic. */
    seawall_clock *clock = NULL;
    CHECK_OK(seawall_manual_clock_new(&clock));
    seawall_clock_free(clock);
    CHECK_CONTAINS(seawall_last_error(), "deliberate panic");
}

static void *fail_on_other_thread(void *arg) {
    (void)arg;
    static char copy[256];
    seawall_breaker_config_new(NULL);
    snprintf(copy, sizeof copy, "%s", seawall_last_error());
    return copy;
}

static void last_error_is_per_thread(void) {
    seawall_breaker_config *cfg = NULL;
    CHECK_OK(seawall_breaker_config_new(&cfg));
    CHECK_STATUS(seawall_breaker_config_set_int(cfg, "minimum_calls", 0), SEAWALL_E_CONFIG);
    pthread_t t;
    void *other = NULL;
    CHECK(pthread_create(&t, NULL, fail_on_other_thread, NULL) == 0);
    CHECK(pthread_join(t, &other) == 0);
    CHECK_CONTAINS((const char *)other, "out_config is NULL");
    CHECK_CONTAINS(seawall_last_error(), "minimum_calls = 0");
    seawall_breaker_config_free(cfg);
}

static void *fresh_thread_error(void *arg) {
    int *empty = arg;
    const char *e = seawall_last_error();
    *empty = e != NULL && e[0] == '\0';
    return NULL;
}

int main(void) {
    /* Before any failure, the last error is an empty string (never NULL). */
    CHECK_STR(seawall_last_error(), "");
    names();
    null_arguments();
    config_errors();
    clocks();
    permits_and_states();
    slow_calls();
    listeners();
    panic_guard();
    last_error_is_per_thread();
    pthread_t t;
    int empty = 0;
    CHECK(pthread_create(&t, NULL, fresh_thread_error, &empty) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(empty);
    return check_report();
}
