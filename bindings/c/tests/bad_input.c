/*
 * bad_input.c: every function of seawall.h given the inputs a C caller gets wrong, and
 * the exact status and message they get back (docs/bad-input.md, "## C", cites the
 * sections below by name). For each: NULL for every pointer argument, zero / huge / NaN /
 * infinite / negative numbers, strings that are not UTF-8, unknown option names, values of
 * the wrong type, out-of-range enum numbers, buffers too small, a second outcome on one
 * permit or lease, and handles freed while others still use what they made. Every refused
 * call must leave the object as it was: the sections check that it still works afterwards.
 *
 * Nothing here may crash, leak or touch freed memory: scripts/test-c-sanitize.sh runs it
 * under AddressSanitizer + UndefinedBehaviorSanitizer + LeakSanitizer and under valgrind.
 *
 *
 * Build: gcc bad_input.c -pthread -lm $(pkg-config --cflags --libs seawall)
 * Prints "N passed, M failed" last; exits non-zero when a check failed.
 */
#define _POSIX_C_SOURCE 200809L

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "check.h"

/* ---- expectations ----------------------------------------------------------------------- */

/* `got` is `want`, and (for a failure) seawall_last_error() contains every needle. */
static void expect_at(int line, const char *what, seawall_status got, seawall_status want,
                      const char *const *needles) {
    char detail[1024];
    if (got != want) {
        snprintf(detail, sizeof detail, "got %s, want %s (last error: %s)", seawall_status_name(got),
                 seawall_status_name(want), seawall_last_error());
        check_fail_at(line, what, detail);
        return;
    }
    atomic_fetch_add(&check_passed, 1);
    if (want == SEAWALL_OK) return;
    const char *msg = seawall_last_error();
    for (; *needles; needles++) {
        if (msg != NULL && strstr(msg, *needles) != NULL) {
            atomic_fetch_add(&check_passed, 1);
        } else {
            snprintf(detail, sizeof detail, "message \"%s\" does not contain \"%s\"", msg ? msg : "(null)",
                     *needles);
            check_fail_at(line, what, detail);
        }
    }
}

/* EXPECT(call, status, "needle", ...): the status, and every needle in the message. */
#define EXPECT(call, want, ...) \
    expect_at(__LINE__, #call, (call), (want), (const char *const[]){__VA_ARGS__, NULL})
/* A NULL argument: SEAWALL_E_INVALID_ARGUMENT naming the parameter. */
#define EXPECT_NULL(call, param) EXPECT(call, SEAWALL_E_INVALID_ARGUMENT, "invalid argument: " param " is NULL")
#define EXPECT_CONFIG(call, ...) EXPECT(call, SEAWALL_E_CONFIG, "invalid configuration: ", __VA_ARGS__)
#define EXPECT_INVALID(call, ...) EXPECT(call, SEAWALL_E_INVALID_ARGUMENT, "invalid argument: ", __VA_ARGS__)

#define KEY(s) (const uint8_t *)(s), strlen(s)
#define BYTES(s) (const uint8_t *)(s), strlen(s)

/* A pointer value that is not NULL and must come back unchanged (never dereferenced). */
#define POISON(type) ((type *)(uintptr_t)0x5eaba11)

static seawall_clock *manual_clock(void) {
    seawall_clock *c = NULL;
    CHECK_OK(seawall_manual_clock_new(&c));
    return c;
}

static seawall_breaker *breaker_on(seawall_clock *clock, int64_t consecutive_failures) {
    seawall_breaker_config *cfg = NULL;
    seawall_breaker *b = NULL;
    CHECK_OK(seawall_breaker_config_new(&cfg));
    CHECK_OK(seawall_breaker_config_set_str(cfg, "name", "bad"));
    CHECK_OK(seawall_breaker_config_set_int(cfg, "consecutive_failures", consecutive_failures));
    CHECK_OK(seawall_breaker_config_set_int(cfg, "open_duration", 1000));
    CHECK_OK(seawall_breaker_config_set_clock(cfg, clock));
    CHECK_OK(seawall_breaker_new(cfg, &b));
    seawall_breaker_config_free(cfg);
    return b;
}

/* A cache on `clock` (lease 1000 ms, wait_timeout 5000 ms) with extra options. */
static seawall_idem_cache *cache_on(seawall_clock *clock, const char *str_key, const char *str_value,
                                    const char *bool_key) {
    seawall_idem_config *cfg = NULL;
    seawall_idem_cache *cache = NULL;
    CHECK_OK(seawall_idem_config_new(&cfg));
    CHECK_OK(seawall_idem_config_set_clock(cfg, clock));
    CHECK_OK(seawall_idem_config_set_int(cfg, "lease", 1000));
    CHECK_OK(seawall_idem_config_set_int(cfg, "wait_timeout", 5000));
    CHECK_OK(seawall_idem_config_set_int(cfg, "max_result_bytes", 16));
    if (str_key) CHECK_OK(seawall_idem_config_set_str(cfg, str_key, str_value));
    if (bool_key) CHECK_OK(seawall_idem_config_set_bool(cfg, bool_key, true));
    CHECK_OK(seawall_idem_cache_new(cfg, &cache));
    seawall_idem_config_free(cfg);
    return cache;
}

static seawall_idem_key_state peek_state(const seawall_idem_cache *cache, const char *key) {
    seawall_idem_key_state st = (seawall_idem_key_state)-1;
    CHECK_OK(seawall_idem_peek(cache, KEY(key), &st, NULL));
    return st;
}

/* The result of a failed begin/acquire/poll: nothing handed out. */
static int nothing_handed_out(const seawall_idem_begin_result *r) {
    return r->outcome == SEAWALL_IDEM_ERROR && r->lease == NULL && r->record == NULL && r->waiter == NULL;
}

/* ---- names: out-of-range enum numbers ------------------------------------------------- */

static void names(void) {
    const int bad[] = {-1, 5, 7, 11, 98, 100, INT_MAX, INT_MIN};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int n = bad[i];
        if (n != 5) CHECK_STR(seawall_state_name((seawall_state)n), "unknown");
        if (n != 5) CHECK_STR(seawall_idem_outcome_name((seawall_idem_outcome)n), "unknown");
        CHECK_STR(seawall_cancel_reason_name((seawall_cancel_reason)n), "unknown");
        CHECK_STR(seawall_idem_key_state_name((seawall_idem_key_state)n), "unknown");
        CHECK_STR(seawall_health_status_name((seawall_health_status)n), "unknown");
        if (n != 5 && n != 7) CHECK_STR(seawall_status_name((seawall_status)n), "SEAWALL_UNKNOWN");
    }
    CHECK_STR(seawall_state_name((seawall_state)5), "unknown");
    CHECK_STR(seawall_idem_outcome_name((seawall_idem_outcome)7), "unknown");
    CHECK_STR(seawall_status_name((seawall_status)12), "SEAWALL_UNKNOWN");
    /* The in-range spellings (one each; api.c and idempotency.c check all of them). */
    CHECK_STR(seawall_cancel_reason_name(SEAWALL_CANCEL_NONE), "none");
    CHECK_STR(seawall_idem_key_state_name(SEAWALL_IDEM_KEY_COMPLETED), "completed");
    CHECK_STR(seawall_health_status_name(SEAWALL_HEALTH_DOWN), "down");
    CHECK_STR(seawall_status_name(SEAWALL_E_CANCELLED), "SEAWALL_CANCELLED");
    /* Never NULL. */
    CHECK(seawall_version() != NULL && seawall_version()[0] != '\0');
    CHECK(seawall_last_error() != NULL);
    /* A panic inside the library comes back as a status, never an unwind into C. */
    EXPECT(seawall_internal_test_panic(), SEAWALL_E_INTERNAL, "internal error", "deliberate panic");
    /* The fault-injection switch of the tests refuses what is not a site (and arms nothing). */
    EXPECT_NULL(seawall_internal_test_arm_panic(NULL), "site");
    EXPECT_INVALID(seawall_internal_test_arm_panic("nowhere"), "site = \"nowhere\"", "not a fault site");
    EXPECT_INVALID(seawall_internal_test_arm_panic(""), "site = \"\"", "not a fault site");
    EXPECT_INVALID(seawall_internal_test_arm_panic("breaker.trip\xff"), "site is not valid UTF-8");
    seawall_internal_test_disarm_panics(); /* nothing armed: a no-op */
}

/* ---- clocks ------------------------------------------------------------------------------ */

static void clocks(void) {
    seawall_clock *m = manual_clock(), *sys = NULL;
    uint64_t now = 7;
    EXPECT_NULL(seawall_system_clock_new(NULL), "out_clock");
    EXPECT_NULL(seawall_manual_clock_new(NULL), "out_clock");
    EXPECT_NULL(seawall_clock_advance_ms(NULL, 1), "clock");
    EXPECT_NULL(seawall_clock_now_ms(NULL, &now), "clock");
    EXPECT_NULL(seawall_clock_now_ms(m, NULL), "out_ms");
    CHECK_OK(seawall_system_clock_new(&sys));
    EXPECT_INVALID(seawall_clock_advance_ms(sys, 1), "clock is not a manual clock");
    /* Huge: advancing saturates at the clock's range (2^64 ns, about 584 years), never wraps. */
    CHECK_OK(seawall_clock_advance_ms(m, 5));
    CHECK_OK(seawall_clock_advance_ms(m, UINT64_MAX));
    CHECK_OK(seawall_clock_now_ms(m, &now));
    CHECK_U64(now, UINT64_MAX / 1000000);
    CHECK_OK(seawall_clock_advance_ms(m, UINT64_MAX));
    CHECK_OK(seawall_clock_now_ms(m, &now));
    CHECK_U64(now, UINT64_MAX / 1000000);
    /* Zero is a no-op. */
    seawall_clock *z = manual_clock();
    CHECK_OK(seawall_clock_advance_ms(z, 0));
    CHECK_OK(seawall_clock_now_ms(z, &now));
    CHECK_U64(now, 0);
    seawall_clock_free(NULL);
    seawall_clock_free(z);
    seawall_clock_free(sys);
    seawall_clock_free(m);
}

/* ---- breaker configuration ------------------------------------------------------------ */

static void breaker_config(void) {
    seawall_breaker_config *cfg = NULL;
    seawall_breaker *b = NULL;
    seawall_clock *clock = manual_clock();
    EXPECT_NULL(seawall_breaker_config_new(NULL), "out_config");
    CHECK_OK(seawall_breaker_config_new(&cfg));

    /* NULL handle, NULL key, key or value not UTF-8: for every setter. */
    EXPECT_NULL(seawall_breaker_config_set_int(NULL, "window_size", 5), "config");
    EXPECT_NULL(seawall_breaker_config_set_int(cfg, NULL, 5), "key");
    EXPECT_INVALID(seawall_breaker_config_set_int(cfg, "window\xff", 5), "key is not valid UTF-8",
                   "offset 6");
    EXPECT_NULL(seawall_breaker_config_set_double(NULL, "backoff_multiplier", 2), "config");
    EXPECT_NULL(seawall_breaker_config_set_double(cfg, NULL, 2), "key");
    EXPECT_INVALID(seawall_breaker_config_set_double(cfg, "\xc3\x28", 2), "key is not valid UTF-8", "offset 0");
    EXPECT_NULL(seawall_breaker_config_set_str(NULL, "name", "x"), "config");
    EXPECT_NULL(seawall_breaker_config_set_str(cfg, NULL, "x"), "key");
    EXPECT_NULL(seawall_breaker_config_set_str(cfg, "name", NULL), "value");
    EXPECT_INVALID(seawall_breaker_config_set_str(cfg, "\xff", "x"), "key is not valid UTF-8");
    EXPECT_INVALID(seawall_breaker_config_set_str(cfg, "name", "pri\xe9s"), "value is not valid UTF-8",
                   "offset 3");
    EXPECT_NULL(seawall_breaker_config_set_bool(NULL, "critical", true), "config");
    EXPECT_NULL(seawall_breaker_config_set_bool(cfg, NULL, true), "key");
    EXPECT_INVALID(seawall_breaker_config_set_bool(cfg, "\xff", true), "key is not valid UTF-8");
    EXPECT_NULL(seawall_breaker_config_set_clock(NULL, clock), "config");
    EXPECT_NULL(seawall_breaker_config_set_clock(cfg, NULL), "clock");

    /* Unknown option names (also the other languages' spellings). */
    EXPECT_CONFIG(seawall_breaker_config_set_int(cfg, "max_failures", 3), "max_failures", "unknown option");
    EXPECT_CONFIG(seawall_breaker_config_set_int(cfg, "window-size", 3), "window-size", "unknown option");
    /* The other languages' spelling is the same option, and errors use the name as given. */
    EXPECT_CONFIG(seawall_breaker_config_set_int(cfg, "windowSize", 0), "window_size = 0", "must be at least 1");
    EXPECT_CONFIG(seawall_breaker_config_set_str(cfg, "", "x"), "unknown option");
    EXPECT_CONFIG(seawall_breaker_config_set_bool(cfg, "enabled", true), "enabled", "unknown option");

    /* Wrong value types. */
    EXPECT_CONFIG(seawall_breaker_config_set_str(cfg, "window_size", "10"), "window_size = \"10\"");
    EXPECT_CONFIG(seawall_breaker_config_set_int(cfg, "name", 42), "name = 42", "expected a string");
    EXPECT_CONFIG(seawall_breaker_config_set_int(cfg, "window", 1), "window = 1", "expected a string");
    EXPECT_CONFIG(seawall_breaker_config_set_bool(cfg, "minimum_calls", true), "minimum_calls = true");
    EXPECT_CONFIG(seawall_breaker_config_set_bool(cfg, "open_duration", false), "open_duration = false");
    EXPECT_CONFIG(seawall_breaker_config_set_double(cfg, "consecutive_failures", 2.5),
                  "consecutive_failures = 2.5", "must be a whole number");
    EXPECT_CONFIG(seawall_breaker_config_set_int(cfg, "critical", 0), "critical = 0");

    /* Counts: zero, negative, huge. */
    EXPECT_CONFIG(seawall_breaker_config_set_int(cfg, "window_size", 0), "window_size = 0", "must be at least 1");
    EXPECT_CONFIG(seawall_breaker_config_set_int(cfg, "consecutive_failures", -3), "consecutive_failures = -3");
    EXPECT_CONFIG(seawall_breaker_config_set_int(cfg, "window_size", INT64_MAX),
                  "window_size = 9223372036854775807", "must be at most 1000000");
    EXPECT_CONFIG(seawall_breaker_config_set_int(cfg, "consecutive_failures", INT64_MAX),
                  "consecutive_failures = 9223372036854775807", "must be at most 4294967295");
    EXPECT_CONFIG(seawall_breaker_config_set_int(cfg, "minimum_calls", INT64_MIN),
                  "minimum_calls = -9223372036854775808");
    EXPECT_CONFIG(seawall_breaker_config_set_double(cfg, "half_open_max_calls", NAN), "half_open_max_calls = nan");

    /* Durations (ms): negative, NaN, infinite, too large, the smallest negative double. */
    EXPECT_CONFIG(seawall_breaker_config_set_int(cfg, "open_duration", -1), "open_duration = -1ms",
                  "must not be negative");
    EXPECT_CONFIG(seawall_breaker_config_set_double(cfg, "open_duration", -5), "open_duration = -5.0ms");
    EXPECT_CONFIG(seawall_breaker_config_set_double(cfg, "open_duration", NAN), "open_duration = nanms",
                  "must be a number, not NaN");
    EXPECT_CONFIG(seawall_breaker_config_set_double(cfg, "slow_call_duration", INFINITY),
                  "slow_call_duration = infms", "is too large");
    EXPECT_CONFIG(seawall_breaker_config_set_double(cfg, "probe_timeout", -INFINITY), "probe_timeout = -infms",
                  "must not be negative");
    EXPECT_CONFIG(seawall_breaker_config_set_double(cfg, "window_duration", 1e300), "window_duration = 1e300ms",
                  "is too large");
    EXPECT_CONFIG(seawall_breaker_config_set_double(cfg, "open_duration", -5e-324), "open_duration = -5e-324ms",
                  "must not be negative");
    EXPECT_CONFIG(seawall_breaker_config_set_int(cfg, "window_duration", 0), "window_duration = 0ms",
                  "must be greater than zero");

    /* Rates and the multiplier. */
    EXPECT_CONFIG(seawall_breaker_config_set_double(cfg, "failure_rate_threshold", 0),
                  "failure_rate_threshold = 0.0", "must be in (0, 1]");
    EXPECT_CONFIG(seawall_breaker_config_set_double(cfg, "failure_rate_threshold", 1.5),
                  "failure_rate_threshold = 1.5");
    EXPECT_CONFIG(seawall_breaker_config_set_double(cfg, "slow_call_rate_threshold", NAN),
                  "slow_call_rate_threshold = nan");
    EXPECT_CONFIG(seawall_breaker_config_set_double(cfg, "slow_call_rate_threshold", -0.1),
                  "slow_call_rate_threshold = -0.1");
    EXPECT_CONFIG(seawall_breaker_config_set_double(cfg, "backoff_multiplier", 0.5), "backoff_multiplier = 0.5",
                  "must be a finite number >= 1");
    EXPECT_CONFIG(seawall_breaker_config_set_double(cfg, "backoff_multiplier", INFINITY), "backoff_multiplier = inf");

    /* Text values outside their set. */
    EXPECT_CONFIG(seawall_breaker_config_set_str(cfg, "window", "sliding"), "window = \"sliding\"");
    EXPECT_CONFIG(seawall_breaker_config_set_str(cfg, "window", ""), "window = \"\"");

    /* Every refusal above left the configuration as it was: it builds, with the defaults. */
    CHECK_OK(seawall_breaker_config_set_clock(cfg, clock));
    CHECK_OK(seawall_breaker_new(cfg, &b));
    seawall_snapshot snap;
    CHECK_OK(seawall_breaker_snapshot(b, &snap));
    CHECK_STR(snap.name, "");
    CHECK(snap.state == SEAWALL_STATE_CLOSED);
    bool needs = true;
    CHECK_OK(seawall_breaker_needs_duration(b, &needs));
    CHECK(!needs); /* the refused slow_call_duration did not stick */
    seawall_breaker_free(b);
    b = NULL;

    /* Accepted edge values: -0.0 ms is zero; the largest count; a huge duration. */
    CHECK_OK(seawall_breaker_config_set_double(cfg, "open_duration", -0.0));
    CHECK_OK(seawall_breaker_config_set_int(cfg, "consecutive_failures", 4294967295LL));
    CHECK_OK(seawall_breaker_config_set_int(cfg, "open_duration", INT64_MAX));

    /* Options that do not fit together: refused when the breaker is built, naming both. */
    EXPECT_NULL(seawall_breaker_new(NULL, &b), "config");
    EXPECT_NULL(seawall_breaker_new(cfg, NULL), "out_breaker");
    CHECK_OK(seawall_breaker_config_set_int(cfg, "half_open_success_threshold", 3));
    b = POISON(seawall_breaker);
    EXPECT_CONFIG(seawall_breaker_new(cfg, &b), "half_open_success_threshold = 3", "half_open_max_calls");
    CHECK(b == POISON(seawall_breaker)); /* not written on failure */
    b = NULL;
    CHECK_OK(seawall_breaker_config_set_int(cfg, "half_open_max_calls", 3));
    CHECK_OK(seawall_breaker_new(cfg, &b));
    seawall_breaker_free(b);

    seawall_breaker_config_free(NULL);
    seawall_breaker_config_free(cfg);
    seawall_clock_free(clock);
}

/* ---- breakers and listeners -------------------------------------------------------------- */

static void on_change(const seawall_state_change *e, void *user_data) {
    (void)e;
    atomic_fetch_add((atomic_int *)user_data, 1);
}

static void breakers(void) {
    seawall_clock *clock = manual_clock();
    seawall_breaker *b = breaker_on(clock, 1), *other = breaker_on(clock, 1);
    seawall_permit *p = NULL;
    seawall_rejection rej;
    seawall_state state;
    seawall_snapshot snap;
    const char *name;
    bool flag;
    uint64_t id = 0, other_id = 0;
    atomic_int changes = 0;

    EXPECT_NULL(seawall_breaker_name(NULL, &name), "breaker");
    EXPECT_NULL(seawall_breaker_name(b, NULL), "out_name");
    EXPECT_NULL(seawall_breaker_state(NULL, &state), "breaker");
    EXPECT_NULL(seawall_breaker_state(b, NULL), "out_state");
    EXPECT_NULL(seawall_breaker_snapshot(NULL, &snap), "breaker");
    EXPECT_NULL(seawall_breaker_snapshot(b, NULL), "out_snapshot");
    EXPECT_NULL(seawall_breaker_needs_duration(NULL, &flag), "breaker");
    EXPECT_NULL(seawall_breaker_needs_duration(b, NULL), "out_needs");
    EXPECT_NULL(seawall_breaker_force_open(NULL), "breaker");
    EXPECT_NULL(seawall_breaker_disable(NULL), "breaker");
    EXPECT_NULL(seawall_breaker_reset(NULL), "breaker");
    EXPECT_NULL(seawall_breaker_try_acquire(NULL, &p, &rej), "breaker");
    EXPECT_NULL(seawall_breaker_try_acquire(b, NULL, &rej), "out_permit");
    EXPECT_NULL(seawall_breaker_on_state_change(NULL, on_change, &changes, &id), "breaker");
    EXPECT_NULL(seawall_breaker_on_state_change(b, NULL, &changes, &id), "callback");
    EXPECT_NULL(seawall_breaker_remove_listener(NULL, 1), "breaker");

    /* The refused calls took no permit and counted nothing. */
    CHECK_OK(seawall_breaker_snapshot(b, &snap));
    CHECK_U64(snap.successes + snap.failures + snap.rejected, 0);

    /* Listener ids: unknown, removed twice, or another breaker's. */
    CHECK_OK(seawall_breaker_on_state_change(b, on_change, &changes, &id));
    CHECK_OK(seawall_breaker_on_state_change(other, on_change, &changes, &other_id));
    EXPECT_INVALID(seawall_breaker_remove_listener(b, 999999), "no listener with id 999999 on this breaker");
    EXPECT_INVALID(seawall_breaker_remove_listener(b, UINT64_MAX),
                   "no listener with id 18446744073709551615 on this breaker");
    if (other_id != id) {
        char want[96];
        snprintf(want, sizeof want, "no listener with id %llu on this breaker", (unsigned long long)other_id);
        EXPECT_INVALID(seawall_breaker_remove_listener(b, other_id), want);
    }
    CHECK_OK(seawall_breaker_remove_listener(b, id));
    EXPECT_INVALID(seawall_breaker_remove_listener(b, id), "no listener with id");
    /* `other`'s listener survived the attempt to remove it through `b`. */
    CHECK_OK(seawall_breaker_force_open(other));
    CHECK_U64(atomic_load(&changes), 1);

    /* A refused acquire: *out_permit is NULL; out_rejection may be NULL. */
    CHECK_OK(seawall_breaker_force_open(b));
    p = POISON(seawall_permit);
    EXPECT(seawall_breaker_try_acquire(b, &p, NULL), SEAWALL_E_BREAKER_OPEN, "circuit breaker 'bad' is forced_open");
    CHECK(p == NULL);
    CHECK_OK(seawall_breaker_reset(b));

    /* Freed while permits are out: the permits stay valid (api.c checks the listener side). */
    CHECK_OK(seawall_breaker_try_acquire(b, &p, NULL));
    seawall_breaker_free(b);
    CHECK_OK(seawall_permit_failure(p, 3));
    EXPECT(seawall_permit_success(p, 3), SEAWALL_E_PERMIT_CONSUMED, "already recorded");
    seawall_permit_free(p);

    seawall_breaker_free(NULL);
    seawall_breaker_free(other);
    seawall_clock_free(clock);
}

/* ---- permits ------------------------------------------------------------------------------ */

static void permits(void) {
    seawall_clock *clock = manual_clock();
    seawall_breaker_config *cfg = NULL;
    seawall_breaker *b = NULL;
    seawall_permit *p = NULL;
    seawall_snapshot snap;
    bool probe = true;
    CHECK_OK(seawall_breaker_config_new(&cfg));
    CHECK_OK(seawall_breaker_config_set_int(cfg, "slow_call_duration", 100));
    CHECK_OK(seawall_breaker_config_set_int(cfg, "consecutive_failures", 1000));
    CHECK_OK(seawall_breaker_config_set_clock(cfg, clock));
    CHECK_OK(seawall_breaker_new(cfg, &b));
    seawall_breaker_config_free(cfg);

    EXPECT_NULL(seawall_permit_success(NULL, 0), "permit");
    EXPECT_NULL(seawall_permit_failure(NULL, 0), "permit");
    EXPECT_NULL(seawall_permit_timeout(NULL, 0), "permit");
    EXPECT_NULL(seawall_permit_ignore(NULL), "permit");
    EXPECT_NULL(seawall_permit_cancel(NULL), "permit");
    EXPECT_NULL(seawall_permit_is_probe(NULL, &probe), "permit");
    CHECK_OK(seawall_breaker_try_acquire(b, &p, NULL));
    EXPECT_NULL(seawall_permit_is_probe(p, NULL), "out_is_probe");

    /* A huge duration: counted, as slow, without overflow. */
    CHECK_OK(seawall_permit_success(p, UINT64_MAX));
    /* Double outcome: every second outcome (or cancel) is refused and counts nothing. */
    EXPECT(seawall_permit_success(p, 0), SEAWALL_E_PERMIT_CONSUMED, "an outcome was already recorded on this permit");
    EXPECT(seawall_permit_failure(p, 0), SEAWALL_E_PERMIT_CONSUMED, "already recorded");
    EXPECT(seawall_permit_timeout(p, 0), SEAWALL_E_PERMIT_CONSUMED, "already recorded");
    EXPECT(seawall_permit_ignore(p), SEAWALL_E_PERMIT_CONSUMED, "already recorded");
    EXPECT(seawall_permit_cancel(p), SEAWALL_E_PERMIT_CONSUMED, "already recorded");
    CHECK_OK(seawall_permit_is_probe(p, &probe)); /* reading a used permit is fine */
    CHECK(!probe);
    seawall_permit_free(p);

    /* Cancelled, then an outcome: refused too. */
    CHECK_OK(seawall_breaker_try_acquire(b, &p, NULL));
    CHECK_OK(seawall_permit_cancel(p));
    EXPECT(seawall_permit_failure(p, 5), SEAWALL_E_PERMIT_CONSUMED, "already recorded");
    EXPECT(seawall_permit_cancel(p), SEAWALL_E_PERMIT_CONSUMED, "already recorded");
    seawall_permit_free(p);

    /* Freed without an outcome: a cancellation, counted nowhere. */
    CHECK_OK(seawall_breaker_try_acquire(b, &p, NULL));
    seawall_permit_free(p);
    seawall_permit_free(NULL);

    CHECK_OK(seawall_breaker_snapshot(b, &snap));
    CHECK_U64(snap.successes, 1);
    CHECK_U64(snap.slow, 1);
    CHECK_U64(snap.failures, 0);
    CHECK_U64(snap.ignored, 0);
    seawall_breaker_free(b);
    seawall_clock_free(clock);
}

/* ---- deadlines and grpc-timeout ------------------------------------------------------------ */

static void deadlines(void) {
    seawall_clock *clock = manual_clock(), *other = manual_clock(), *sys = NULL;
    seawall_deadline *d = NULL, *e = NULL, *s = NULL, *out = POISON(seawall_deadline);
    uint64_t u = 0;
    double x = 0;
    bool flag = false;
    char buf[SEAWALL_GRPC_TIMEOUT_BUFSIZE];
    CHECK_OK(seawall_system_clock_new(&sys));
    CHECK_OK(seawall_deadline_after_ms(clock, 250, &d));

    EXPECT_NULL(seawall_deadline_after_ms(NULL, 1, &out), "clock");
    EXPECT_NULL(seawall_deadline_after_ms(clock, 1, NULL), "out_deadline");
    EXPECT_NULL(seawall_deadline_from_grpc_timeout(NULL, "1S", &out), "clock");
    EXPECT_NULL(seawall_deadline_from_grpc_timeout(clock, NULL, &out), "header");
    EXPECT_NULL(seawall_deadline_from_grpc_timeout(clock, "1S", NULL), "out_deadline");
    EXPECT_NULL(seawall_deadline_remaining_ms(NULL, &u), "deadline");
    EXPECT_NULL(seawall_deadline_remaining_ms(d, NULL), "out_ms");
    EXPECT_NULL(seawall_deadline_remaining_ms_double(NULL, &x), "deadline");
    EXPECT_NULL(seawall_deadline_remaining_ms_double(d, NULL), "out_ms");
    EXPECT_NULL(seawall_deadline_expired(NULL, &flag), "deadline");
    EXPECT_NULL(seawall_deadline_expired(d, NULL), "out_expired");
    EXPECT_NULL(seawall_deadline_earliest(NULL, d, &out), "a");
    EXPECT_NULL(seawall_deadline_earliest(d, NULL, &out), "b");
    EXPECT_NULL(seawall_deadline_earliest(d, d, NULL), "out_deadline");
    EXPECT_NULL(seawall_deadline_budget_ms(NULL, 0.5, 0, &x), "deadline");
    EXPECT_NULL(seawall_deadline_budget_ms(d, 0.5, 0, NULL), "out_ms");
    EXPECT_NULL(seawall_deadline_to_grpc_timeout(NULL, buf, sizeof buf), "deadline");
    EXPECT_NULL(seawall_deadline_to_grpc_timeout(d, NULL, sizeof buf), "buf");
    EXPECT_NULL(seawall_grpc_timeout_parse_ms(NULL, &x), "header");
    EXPECT_NULL(seawall_grpc_timeout_parse_ms("1S", NULL), "out_ms");
    EXPECT_NULL(seawall_grpc_timeout_format_ms(1, NULL, sizeof buf), "buf");
    CHECK(out == POISON(seawall_deadline)); /* never written by a failed call */

    /* Budgets: negative, NaN, infinite, too large, the smallest negative double. */
    EXPECT_INVALID(seawall_deadline_after_ms(clock, -1, &out), "ms = -1.0ms", "must not be negative");
    EXPECT_INVALID(seawall_deadline_after_ms(clock, NAN, &out), "ms = nanms", "must be a number, not NaN");
    EXPECT_INVALID(seawall_deadline_after_ms(clock, INFINITY, &out), "ms = infms", "must be finite");
    EXPECT_INVALID(seawall_deadline_after_ms(clock, -INFINITY, &out), "ms = -infms", "must not be negative");
    EXPECT_INVALID(seawall_deadline_after_ms(clock, 1e300, &out), "ms = 1e300ms", "is too large");
    EXPECT_INVALID(seawall_deadline_after_ms(clock, -5e-324, &out), "ms = -5e-324ms", "must not be negative");
    CHECK(out == POISON(seawall_deadline));
    /* Accepted edges: 0 and -0.0 are already expired; 10^15 ms formats as the largest value. */
    CHECK_OK(seawall_deadline_after_ms(clock, -0.0, &e));
    CHECK_OK(seawall_deadline_expired(e, &flag));
    CHECK(flag);
    seawall_deadline_free(e);
    CHECK_OK(seawall_deadline_after_ms(clock, 1e15, &e));
    CHECK_OK(seawall_deadline_to_grpc_timeout(e, buf, sizeof buf));
    CHECK_STR(buf, "99999999H");
    seawall_deadline_free(e);

    /* grpc-timeout values: malformed, not UTF-8. */
    const char *malformed[] = {"", "3s", " 1S", "1S ", "-1S", "+1S", "123456789m", "1.5S", "S", "1", "1SS", "0x1S"};
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
        char quoted[32];
        snprintf(quoted, sizeof quoted, "\"%s\"", malformed[i]);
        EXPECT_INVALID(seawall_grpc_timeout_parse_ms(malformed[i], &x), "grpc-timeout", quoted);
        EXPECT_INVALID(seawall_deadline_from_grpc_timeout(clock, malformed[i], &out), "grpc-timeout", quoted);
    }
    EXPECT_INVALID(seawall_grpc_timeout_parse_ms("1\xff" "S", &x), "header is not valid UTF-8", "offset 1");
    EXPECT_INVALID(seawall_deadline_from_grpc_timeout(clock, "\xff", &out), "header is not valid UTF-8");
    CHECK(out == POISON(seawall_deadline));

    /* Deadlines of different clocks cannot be compared. */
    CHECK_OK(seawall_deadline_after_ms(other, 10, &e));
    CHECK_OK(seawall_deadline_after_ms(sys, 10, &s));
    EXPECT_INVALID(seawall_deadline_earliest(d, e, &out), "different clocks");
    EXPECT_INVALID(seawall_deadline_earliest(s, d, &out), "different clocks");
    CHECK(out == POISON(seawall_deadline));
    seawall_deadline_free(e);
    seawall_deadline_free(s);

    /* Budget shares: a fraction outside [0, 1] or NaN; a bad min_ms. */
    EXPECT_INVALID(seawall_deadline_budget_ms(d, 1.5, 0, &x), "fraction = 1.5");
    EXPECT_INVALID(seawall_deadline_budget_ms(d, -0.1, 0, &x), "fraction = -0.1");
    EXPECT_INVALID(seawall_deadline_budget_ms(d, NAN, 0, &x), "fraction = NaN");
    EXPECT_INVALID(seawall_deadline_budget_ms(d, INFINITY, 0, &x), "fraction = inf");
    EXPECT_INVALID(seawall_deadline_budget_ms(d, 0.5, -5, &x), "min_ms = -5.0ms", "must not be negative");
    EXPECT_INVALID(seawall_deadline_budget_ms(d, 0.5, NAN, &x), "min_ms = nanms");
    EXPECT_INVALID(seawall_deadline_budget_ms(d, 0.5, INFINITY, &x), "min_ms = infms");
    CHECK_OK(seawall_deadline_budget_ms(d, 0.4, 5, &x)); /* the deadline is unchanged */
    CHECK(x == 100.0);

    /* Buffers: zero length, one byte short; `buf` then holds "" (when len > 0). */
    memcpy(buf, "xxxxxxxxx", 10);
    EXPECT_INVALID(seawall_deadline_to_grpc_timeout(d, buf, 0), "buf is too small: len = 0");
    CHECK(buf[0] == 'x'); /* len 0: not written at all */
    EXPECT_INVALID(seawall_deadline_to_grpc_timeout(d, buf, 7), "buf is too small: len = 7", "\"250000u\" needs 8 bytes");
    CHECK_STR(buf, "");
    CHECK_OK(seawall_deadline_to_grpc_timeout(d, buf, 8));
    CHECK_STR(buf, "250000u");
    EXPECT_INVALID(seawall_grpc_timeout_format_ms(3000, buf, 8), "buf is too small: len = 8", "\"3000000u\" needs 9");
    CHECK_STR(buf, "");
    EXPECT_INVALID(seawall_grpc_timeout_format_ms(-1, buf, sizeof buf), "ms = -1.0ms");
    EXPECT_INVALID(seawall_grpc_timeout_format_ms(NAN, buf, sizeof buf), "ms = nanms");
    EXPECT_INVALID(seawall_grpc_timeout_format_ms(INFINITY, buf, sizeof buf), "ms = infms");
    EXPECT_INVALID(seawall_grpc_timeout_format_ms(1e300, buf, sizeof buf), "ms = 1e300ms", "is too large");
    CHECK_OK(seawall_grpc_timeout_format_ms(1e12, buf, sizeof buf)); /* huge but finite: the coarsest unit that fits */
    CHECK_STR(buf, "16666667M");

    /* A deadline on a clock saturated at its range: still answers, never wraps. */
    seawall_clock *sat = manual_clock();
    CHECK_OK(seawall_clock_advance_ms(sat, UINT64_MAX));
    CHECK_OK(seawall_deadline_after_ms(sat, 1000, &e));
    CHECK_OK(seawall_deadline_remaining_ms(e, &u));
    CHECK(u <= 1000);
    seawall_deadline_free(e);
    seawall_clock_free(sat);

    seawall_deadline_free(NULL);
    seawall_deadline_free(d);
    seawall_clock_free(sys);
    seawall_clock_free(other);
    seawall_clock_free(clock);
}

/* ---- cancel tokens and timers ------------------------------------------------------------- */

static void count_cancel(seawall_cancel_reason reason, void *user_data) {
    (void)reason;
    atomic_fetch_add((atomic_int *)user_data, 1);
}

static void cancel_tokens(void) {
    seawall_clock *clock = manual_clock();
    seawall_cancel_token *t = NULL, *u = NULL;
    seawall_deadline *d = NULL;
    seawall_timer *timer = POISON(seawall_timer);
    seawall_cancel_reason reason;
    bool flag = true;
    uint64_t id = 0, uid = 0;
    atomic_int calls = 0;
    CHECK_OK(seawall_cancel_token_new(&t));
    CHECK_OK(seawall_cancel_token_new(&u));
    CHECK_OK(seawall_deadline_after_ms(clock, 100, &d));

    EXPECT_NULL(seawall_cancel_token_new(NULL), "out_token");
    EXPECT_NULL(seawall_cancel_token_cancel(NULL), "token");
    EXPECT_NULL(seawall_cancel_token_is_cancelled(NULL, &flag), "token");
    EXPECT_NULL(seawall_cancel_token_is_cancelled(t, NULL), "out_cancelled");
    EXPECT_NULL(seawall_cancel_token_reason(NULL, &reason), "token");
    EXPECT_NULL(seawall_cancel_token_reason(t, NULL), "out_reason");
    EXPECT_NULL(seawall_cancel_token_on_cancel(NULL, count_cancel, &calls, &id), "token");
    EXPECT_NULL(seawall_cancel_token_on_cancel(t, NULL, &calls, &id), "callback");
    EXPECT_NULL(seawall_cancel_token_remove_callback(NULL, 1, &flag), "token");
    EXPECT_NULL(seawall_cancel_token_cancel_at(NULL, d, &timer), "token");
    EXPECT_NULL(seawall_cancel_token_cancel_at(t, NULL, &timer), "deadline");
    EXPECT_NULL(seawall_cancel_token_cancel_at(t, d, NULL), "out_timer");
    CHECK(timer == POISON(seawall_timer));

    /* Callback ids: 0, unknown, another token's, removed twice. */
    CHECK_OK(seawall_cancel_token_on_cancel(t, count_cancel, &calls, &id));
    CHECK_OK(seawall_cancel_token_on_cancel(u, count_cancel, &calls, &uid));
    CHECK_OK(seawall_cancel_token_on_cancel(u, count_cancel, &calls, &uid));
    EXPECT_INVALID(seawall_cancel_token_remove_callback(t, 0, &flag), "no callback with id 0 on this token");
    EXPECT_INVALID(seawall_cancel_token_remove_callback(t, UINT64_MAX, &flag),
                   "no callback with id 18446744073709551615 on this token");
    EXPECT_INVALID(seawall_cancel_token_remove_callback(t, uid, &flag), "no callback with id 2 on this token");
    CHECK_OK(seawall_cancel_token_remove_callback(t, id, &flag));
    CHECK(flag);
    CHECK_OK(seawall_cancel_token_remove_callback(t, id, NULL)); /* again: nothing left to remove */
    CHECK_OK(seawall_cancel_token_remove_callback(t, id, &flag));
    CHECK(!flag);

    /* Cancelled twice: the first reason stays, callbacks run once. */
    CHECK_OK(seawall_cancel_token_cancel_at(u, d, &timer));
    CHECK_OK(seawall_cancel_token_cancel(u));
    CHECK_OK(seawall_cancel_token_cancel(u));
    CHECK_OK(seawall_clock_advance_ms(clock, 100)); /* the timer fires on a cancelled token */
    CHECK_OK(seawall_cancel_token_reason(u, &reason));
    CHECK(reason == SEAWALL_CANCEL_CANCELLED);
    CHECK_U64(atomic_load(&calls), 2);
    /* A callback added to a cancelled token runs at once, once; out_id may be NULL. */
    CHECK_OK(seawall_cancel_token_on_cancel(u, count_cancel, &calls, NULL));
    CHECK_U64(atomic_load(&calls), 3);
    seawall_timer_free(timer);

    /* Freed in any order: token and deadline before the timer that uses them. */
    seawall_cancel_token *v = NULL;
    CHECK_OK(seawall_cancel_token_new(&v));
    CHECK_OK(seawall_cancel_token_on_cancel(v, count_cancel, &calls, NULL));
    timer = NULL;
    CHECK_OK(seawall_cancel_token_cancel_at(v, d, &timer)); /* already passed: cancels at once */
    CHECK_U64(atomic_load(&calls), 4);
    seawall_deadline *later = NULL;
    CHECK_OK(seawall_deadline_after_ms(clock, 50, &later));
    seawall_timer *t2 = NULL;
    CHECK_OK(seawall_cancel_token_cancel_at(t, later, &t2));
    seawall_cancel_token_free(t); /* no callback left; the timer stays harmless */
    seawall_deadline_free(later);
    CHECK_OK(seawall_clock_advance_ms(clock, 50));
    seawall_timer_free(t2);
    seawall_timer_free(timer);

    seawall_timer_free(NULL);
    seawall_cancel_token_free(NULL);
    seawall_cancel_token_free(v);
    seawall_cancel_token_free(u);
    seawall_deadline_free(d);
    seawall_clock_free(clock);
}

/* ---- idempotency configuration --------------------------------------------------------------- */

static void idem_config(void) {
    seawall_clock *clock = manual_clock();
    seawall_idem_config *cfg = NULL;
    seawall_idem_cache *cache = POISON(seawall_idem_cache);
    EXPECT_NULL(seawall_idem_config_new(NULL), "out_config");
    CHECK_OK(seawall_idem_config_new(&cfg));

    EXPECT_NULL(seawall_idem_config_set_int(NULL, "ttl", 1), "config");
    EXPECT_NULL(seawall_idem_config_set_int(cfg, NULL, 1), "key");
    EXPECT_INVALID(seawall_idem_config_set_int(cfg, "t\xfftl", 1), "key is not valid UTF-8", "offset 1");
    EXPECT_NULL(seawall_idem_config_set_double(NULL, "ttl", 1), "config");
    EXPECT_NULL(seawall_idem_config_set_double(cfg, NULL, 1), "key");
    EXPECT_NULL(seawall_idem_config_set_str(NULL, "name", "x"), "config");
    EXPECT_NULL(seawall_idem_config_set_str(cfg, NULL, "x"), "key");
    EXPECT_NULL(seawall_idem_config_set_str(cfg, "name", NULL), "value");
    EXPECT_INVALID(seawall_idem_config_set_str(cfg, "name", "\xff"), "value is not valid UTF-8");
    EXPECT_NULL(seawall_idem_config_set_bool(NULL, "cache_errors", true), "config");
    EXPECT_NULL(seawall_idem_config_set_bool(cfg, NULL, true), "key");
    EXPECT_NULL(seawall_idem_config_set_clock(NULL, clock), "config");
    EXPECT_NULL(seawall_idem_config_set_clock(cfg, NULL), "clock");
    EXPECT_NULL(seawall_idem_config_set_redis_store(NULL, NULL), "config");
    EXPECT_NULL(seawall_idem_config_set_redis_store(cfg, NULL), "store");

    EXPECT_CONFIG(seawall_idem_config_set_int(cfg, "leese", 5), "leese", "unknown option");
    EXPECT_CONFIG(seawall_idem_config_set_bool(cfg, "cache-errors", true), "cache-errors", "unknown option");
    EXPECT_CONFIG(seawall_idem_config_set_int(cfg, "name", 3), "name = 3", "expected a string");
    EXPECT_CONFIG(seawall_idem_config_set_int(cfg, "cache_errors", 1), "cache_errors = 1");
    EXPECT_CONFIG(seawall_idem_config_set_bool(cfg, "ttl", true), "ttl = true");
    EXPECT_CONFIG(seawall_idem_config_set_str(cfg, "max_entries", "10"), "max_entries = \"10\"");
    EXPECT_CONFIG(seawall_idem_config_set_int(cfg, "ttl", -1), "ttl = -1ms", "must not be negative");
    EXPECT_CONFIG(seawall_idem_config_set_double(cfg, "wait_timeout", NAN), "wait_timeout = nanms");
    EXPECT_CONFIG(seawall_idem_config_set_double(cfg, "lease", INFINITY), "lease = infms", "is too large");
    EXPECT_CONFIG(seawall_idem_config_set_int(cfg, "lease", 0), "lease = 0ms", "must be greater than zero");
    EXPECT_CONFIG(seawall_idem_config_set_int(cfg, "max_entries", 0), "max_entries = 0", "must be at least 1");
    EXPECT_CONFIG(seawall_idem_config_set_double(cfg, "max_entries", 2.5), "max_entries = 2.5",
                  "must be a whole number");
    EXPECT_CONFIG(seawall_idem_config_set_int(cfg, "max_result_bytes", -1), "max_result_bytes = -1");
    EXPECT_CONFIG(seawall_idem_config_set_str(cfg, "on_duplicate", "queue"), "on_duplicate = \"queue\"");
    EXPECT_CONFIG(seawall_idem_config_set_str(cfg, "on_store_error", "ignore"), "on_store_error = \"ignore\"",
                  "must be \"fail\" or \"run\"");

    EXPECT_NULL(seawall_idem_cache_new(NULL, &cache), "config");
    EXPECT_NULL(seawall_idem_cache_new(cfg, NULL), "out_cache");
    /* Options that do not fit together: refused when the cache is built. */
    CHECK_OK(seawall_idem_config_set_int(cfg, "max_bytes", 1000));
    CHECK_OK(seawall_idem_config_set_int(cfg, "max_result_bytes", 5000));
    EXPECT_CONFIG(seawall_idem_cache_new(cfg, &cache), "max_result_bytes = 5000", "max_bytes");
    CHECK(cache == POISON(seawall_idem_cache));
    /* Refused values left the rest as it was: it builds once the conflict is gone. */
    CHECK_OK(seawall_idem_config_set_int(cfg, "max_result_bytes", 100));
    cache = NULL;
    CHECK_OK(seawall_idem_cache_new(cfg, &cache));
    seawall_idem_cache_free(cache);
    seawall_idem_config_free(NULL);
    seawall_idem_config_free(cfg);
    seawall_clock_free(clock);
}

/* ---- idempotency keys and payloads ----------------------------------------------------------- */

static void idem_keys(void) {
    seawall_clock *clock = manual_clock();
    seawall_idem_cache *cache = cache_on(clock, NULL, NULL, NULL);
    seawall_idem_begin_result r;
    seawall_idem_key_state ks;
    seawall_idem_record *rec = POISON(seawall_idem_record);

    EXPECT_NULL(seawall_idem_begin(NULL, KEY("k"), NULL, 0, &r), "cache");
    EXPECT_NULL(seawall_idem_begin(cache, KEY("k"), NULL, 0, NULL), "out");
    EXPECT_NULL(seawall_idem_begin(cache, NULL, 0, NULL, 0, &r), "key");
    CHECK(nothing_handed_out(&r));
    EXPECT_NULL(seawall_idem_begin(cache, NULL, 3, NULL, 0, &r), "key");
    EXPECT_NULL(seawall_idem_acquire(NULL, KEY("k"), NULL, 0, &r), "cache");
    EXPECT_NULL(seawall_idem_acquire(cache, KEY("k"), NULL, 0, NULL), "out");
    EXPECT_NULL(seawall_idem_acquire(cache, NULL, 1, NULL, 0, &r), "key");
    CHECK(nothing_handed_out(&r));
    EXPECT_NULL(seawall_idem_peek(NULL, KEY("k"), &ks, &rec), "cache");
    CHECK(rec == NULL); /* out_record is cleared first */
    EXPECT_NULL(seawall_idem_peek(cache, KEY("k"), NULL, NULL), "out_state");
    EXPECT_NULL(seawall_idem_peek(cache, NULL, 1, &ks, NULL), "key");

    /* Keys: empty, too long, not UTF-8 (the offset of the bad byte). */
    uint8_t long_key[300];
    memset(long_key, 'k', sizeof long_key);
    const uint8_t bad_utf8[] = {'o', 'r', 'd', 0xc3, 0x28};
    typedef seawall_status (*begin_fn)(const seawall_idem_cache *, const uint8_t *, size_t, const uint8_t *, size_t,
                                       seawall_idem_begin_result *);
    begin_fn fns[] = {seawall_idem_begin, seawall_idem_acquire};
    for (int i = 0; i < 2; i++) {
        EXPECT_INVALID(fns[i](cache, (const uint8_t *)"", 0, NULL, 0, &r), "idempotency key is empty (0 bytes)",
                       "1 to 255 bytes");
        CHECK(nothing_handed_out(&r));
        EXPECT_INVALID(fns[i](cache, long_key, 256, NULL, 0, &r), "idempotency key is 256 bytes long");
        EXPECT_INVALID(fns[i](cache, long_key, 300, NULL, 0, &r), "idempotency key is 300 bytes long");
        /* An absurd length (a failed size computation) is refused before anything is read. */
        EXPECT_INVALID(fns[i](cache, long_key, SIZE_MAX, NULL, 0, &r), "bytes long");
        EXPECT_INVALID(fns[i](cache, bad_utf8, sizeof bad_utf8, NULL, 0, &r),
                       "idempotency key is not valid UTF-8 (invalid byte at offset 3)");
        CHECK(nothing_handed_out(&r));
        /* A fingerprint pointer NULL with a length. */
        EXPECT_INVALID(fns[i](cache, KEY("k"), NULL, 3, &r), "fingerprint_payload is NULL but fingerprint_len is 3");
        CHECK(nothing_handed_out(&r));
    }
    EXPECT_INVALID(seawall_idem_peek(cache, (const uint8_t *)"", 0, &ks, NULL), "idempotency key is empty");
    EXPECT_INVALID(seawall_idem_peek(cache, long_key, 256, &ks, NULL), "256 bytes long");
    EXPECT_INVALID(seawall_idem_peek(cache, bad_utf8, sizeof bad_utf8, &ks, NULL), "offset 3");

    /* Nothing was claimed by any refused call. */
    seawall_idem_stats st;
    CHECK_OK(seawall_idem_cache_stats(cache, &st));
    CHECK_U64(st.executed, 0);
    CHECK(peek_state(cache, "k") == SEAWALL_IDEM_KEY_ABSENT);
    EXPECT_NULL(seawall_idem_cache_stats(NULL, &st), "cache");
    EXPECT_NULL(seawall_idem_cache_stats(cache, NULL), "out_stats");

    /* Accepted: 255 bytes, a NUL byte inside a key, an empty (non-NULL) payload. */
    CHECK_OK(seawall_idem_begin(cache, long_key, 255, NULL, 0, &r));
    CHECK(r.outcome == SEAWALL_IDEM_EXECUTE);
    seawall_idem_lease_free(r.lease);
    CHECK_OK(seawall_idem_begin(cache, (const uint8_t *)"a\0b", 3, (const uint8_t *)"", 0, &r));
    CHECK(r.outcome == SEAWALL_IDEM_EXECUTE);
    seawall_idem_lease_free(r.lease);
    CHECK(peek_state(cache, "a") == SEAWALL_IDEM_KEY_ABSENT); /* "a\0b" is not "a" */

    seawall_idem_cache_free(NULL);
    seawall_idem_cache_free(cache);
    seawall_clock_free(clock);
}

/* ---- leases: complete, fail, release, renew, abandon ---------------------------------------- */

static seawall_idem_lease *claim(seawall_idem_cache *cache, const char *key) {
    seawall_idem_begin_result r;
    CHECK_OK(seawall_idem_begin(cache, KEY(key), NULL, 0, &r));
    CHECK(r.outcome == SEAWALL_IDEM_EXECUTE && r.lease != NULL);
    return r.lease;
}

static void idem_leases(void) {
    seawall_clock *clock = manual_clock();
    seawall_idem_cache *cache = cache_on(clock, NULL, NULL, "cache_errors");
    seawall_idem_lease *l = claim(cache, "k");
    seawall_idem_record *rec = POISON(seawall_idem_record);
    seawall_idem_lease_info info;
    uint64_t left = 0;
    seawall_idem_output out = {BYTES("ok"), "text/plain", NULL, 0};

    EXPECT_NULL(seawall_idem_lease_get_info(NULL, &info), "lease");
    EXPECT_NULL(seawall_idem_lease_get_info(l, NULL), "out_info");
    EXPECT_NULL(seawall_idem_complete(NULL, l, BYTES("x"), NULL, &rec), "cache");
    CHECK(rec == NULL); /* out_record is NULL on every failure */
    EXPECT_NULL(seawall_idem_complete(cache, NULL, BYTES("x"), NULL, &rec), "lease");
    EXPECT_NULL(seawall_idem_complete_output(NULL, l, &out, &rec), "cache");
    EXPECT_NULL(seawall_idem_complete_output(cache, NULL, &out, &rec), "lease");
    EXPECT_NULL(seawall_idem_complete_output(cache, l, NULL, &rec), "output");
    EXPECT_NULL(seawall_idem_fail(NULL, l, NULL, &rec), "cache");
    EXPECT_NULL(seawall_idem_fail(cache, NULL, NULL, &rec), "lease");
    EXPECT_NULL(seawall_idem_release(NULL, l), "cache");
    EXPECT_NULL(seawall_idem_release(cache, NULL), "lease");
    EXPECT_NULL(seawall_idem_renew(NULL, l, &left), "cache");
    EXPECT_NULL(seawall_idem_renew(cache, NULL, &left), "lease");
    EXPECT_NULL(seawall_idem_abandon(NULL, l), "cache");
    EXPECT_NULL(seawall_idem_abandon(cache, NULL), "lease");

    /* Bad outputs: refused before the store is touched, so the lease still holds the key. */
    EXPECT_INVALID(seawall_idem_complete(cache, l, NULL, 4, "x", &rec), "result is NULL but its length is 4");
    EXPECT_INVALID(seawall_idem_complete(cache, l, BYTES("x"), "app/\xff", &rec), "content_type is not valid UTF-8",
                   "offset 4");
    seawall_idem_output o = out;
    o.result = NULL;
    EXPECT_INVALID(seawall_idem_complete_output(cache, l, &o, &rec), "output.result is NULL but its length is 2");
    o = out;
    o.content_type = "\xff";
    EXPECT_INVALID(seawall_idem_complete_output(cache, l, &o, &rec), "content_type is not valid UTF-8");
    o = out;
    o.metadata_count = 2;
    EXPECT_INVALID(seawall_idem_complete_output(cache, l, &o, &rec),
                   "output.metadata is NULL but output.metadata_count is 2");
    seawall_idem_metadata pairs[2] = {{"status", "201"}, {NULL, "x"}};
    o.metadata = pairs;
    EXPECT_NULL(seawall_idem_complete_output(cache, l, &o, &rec), "output.metadata[1].name");
    pairs[1].name = "location";
    pairs[1].value = NULL;
    EXPECT_NULL(seawall_idem_complete_output(cache, l, &o, &rec), "output.metadata[1].value");
    pairs[1].value = "/x\xff";
    EXPECT_INVALID(seawall_idem_complete_output(cache, l, &o, &rec), "output.metadata[1].value is not valid UTF-8",
                   "offset 2");
    EXPECT_INVALID(seawall_idem_fail(cache, l, &o, &rec), "output.metadata[1].value is not valid UTF-8");
    CHECK(rec == NULL);
    CHECK(peek_state(cache, "k") == SEAWALL_IDEM_KEY_IN_PROGRESS);

    /* A result over max_result_bytes (16): refused, nothing stored, the key released. */
    EXPECT_INVALID(seawall_idem_complete(cache, l, BYTES("0123456789abcdefX"), NULL, &rec),
                   "result is 17 bytes, over max_result_bytes (16)", "nothing was stored and the key was released");
    CHECK(rec == NULL);
    CHECK(peek_state(cache, "k") == SEAWALL_IDEM_KEY_ABSENT);
    /* ...so every later use of that lease has lost the key. */
    EXPECT(seawall_idem_complete(cache, l, BYTES("x"), NULL, &rec), SEAWALL_E_LEASE_LOST, "\"k\"", "no longer held");
    EXPECT(seawall_idem_renew(cache, l, &left), SEAWALL_E_LEASE_LOST, "no longer held");
    EXPECT(seawall_idem_release(cache, l), SEAWALL_E_LEASE_LOST, "no longer held");
    seawall_idem_lease_free(l);

    /* Double outcome: a second complete, a release, renew or fail after completing. */
    l = claim(cache, "k");
    CHECK_OK(seawall_idem_complete(cache, l, BYTES("done"), NULL, &rec));
    CHECK(rec != NULL);
    seawall_idem_record_free(rec);
    EXPECT(seawall_idem_complete(cache, l, BYTES("again"), NULL, &rec), SEAWALL_E_LEASE_LOST,
           "lease on idempotency key \"k\"", "it was already completed");
    CHECK(rec == NULL);
    EXPECT(seawall_idem_complete_output(cache, l, &out, NULL), SEAWALL_E_LEASE_LOST, "already completed");
    EXPECT(seawall_idem_release(cache, l), SEAWALL_E_LEASE_LOST, "already completed");
    EXPECT(seawall_idem_renew(cache, l, &left), SEAWALL_E_LEASE_LOST, "already completed");
    EXPECT(seawall_idem_fail(cache, l, NULL, &rec), SEAWALL_E_LEASE_LOST, "already completed");
    EXPECT(seawall_idem_fail(cache, l, &out, &rec), SEAWALL_E_LEASE_LOST, "already completed");
    CHECK_OK(seawall_idem_abandon(cache, l)); /* changes nothing, twice */
    CHECK_OK(seawall_idem_abandon(cache, l));
    /* The stored result is the first one. */
    seawall_idem_key_state ks;
    CHECK_OK(seawall_idem_peek(cache, KEY("k"), &ks, &rec));
    CHECK(ks == SEAWALL_IDEM_KEY_COMPLETED && rec != NULL);
    const uint8_t *data = NULL;
    size_t n = 0;
    CHECK_OK(seawall_idem_record_result(rec, &data, &n));
    CHECK(n == 4 && memcmp(data, "done", 4) == 0);
    seawall_idem_record_free(rec);
    seawall_idem_lease_free(l);

    /* An expired lease: LEASE_LOST saying so. */
    l = claim(cache, "e");
    CHECK_OK(seawall_clock_advance_ms(clock, 1000));
    EXPECT(seawall_idem_complete(cache, l, BYTES("late"), NULL, NULL), SEAWALL_E_LEASE_LOST, "its lease expired");
    EXPECT(seawall_idem_renew(cache, l, NULL), SEAWALL_E_LEASE_LOST, "its lease expired");
    seawall_idem_lease_free(l);

    /* A lease freed unfinished is not released: the key is held until the lease expires. */
    l = claim(cache, "f");
    seawall_idem_lease_free(l);
    CHECK(peek_state(cache, "f") == SEAWALL_IDEM_KEY_IN_PROGRESS);
    CHECK_OK(seawall_clock_advance_ms(clock, 1000));
    CHECK(peek_state(cache, "f") == SEAWALL_IDEM_KEY_ABSENT);

    /* A huge renew is the lease duration, not more; fail without cache_errors output releases. */
    l = claim(cache, "g");
    CHECK_OK(seawall_idem_renew(cache, l, &left));
    CHECK_U64(left, 1000);
    rec = POISON(seawall_idem_record);
    CHECK_OK(seawall_idem_fail(cache, l, NULL, &rec));
    CHECK(rec == NULL);
    CHECK(peek_state(cache, "g") == SEAWALL_IDEM_KEY_ABSENT);
    seawall_idem_lease_free(l);

    seawall_idem_lease_free(NULL);
    seawall_idem_cache_free(cache);
    seawall_clock_free(clock);
}

/* ---- waiters ------------------------------------------------------------------------------------ */

typedef struct {
    atomic_int calls;
    seawall_status status;
    seawall_idem_outcome outcome;
} done_log;

static void on_done(seawall_status status, const seawall_idem_begin_result *r, const char *msg, void *user_data) {
    done_log *log = user_data;
    (void)msg;
    log->status = status;
    log->outcome = r->outcome;
    seawall_idem_lease_free(r->lease);
    seawall_idem_record_free(r->record);
    atomic_fetch_add(&log->calls, 1);
}

static void idem_waiters(void) {
    seawall_clock *clock = manual_clock();
    seawall_idem_cache *cache = cache_on(clock, NULL, NULL, NULL);
    seawall_idem_lease *owner = claim(cache, "w");
    seawall_idem_begin_result dup, got;
    done_log log = {0, SEAWALL_OK, SEAWALL_IDEM_ERROR};
    CHECK_OK(seawall_idem_begin(cache, KEY("w"), NULL, 0, &dup));
    CHECK(dup.outcome == SEAWALL_IDEM_IN_PROGRESS && dup.waiter != NULL);

    EXPECT_NULL(seawall_idem_waiter_poll(NULL, &got), "waiter");
    EXPECT_NULL(seawall_idem_waiter_poll(dup.waiter, NULL), "out");
    EXPECT_NULL(seawall_idem_waiter_wait(NULL, 0, &got), "waiter");
    EXPECT_NULL(seawall_idem_waiter_wait(dup.waiter, 0, NULL), "out");
    EXPECT_NULL(seawall_idem_waiter_cancel(NULL), "waiter");
    EXPECT_NULL(seawall_idem_waiter_on_done(NULL, on_done, &log), "waiter");
    EXPECT_NULL(seawall_idem_waiter_on_done(dup.waiter, NULL, &log), "callback");
    EXPECT_INVALID(seawall_idem_waiter_wait(dup.waiter, -1, &got), "timeout_ms = -1.0ms", "must not be negative");
    CHECK(nothing_handed_out(&got));
    EXPECT_INVALID(seawall_idem_waiter_wait(dup.waiter, NAN, &got), "timeout_ms = nanms");
    EXPECT_INVALID(seawall_idem_waiter_wait(dup.waiter, -INFINITY, &got), "timeout_ms = -infms");
    EXPECT_INVALID(seawall_idem_waiter_wait(dup.waiter, 1e300, &got), "timeout_ms = 1e300ms", "is too large");
    /* The refused calls did not resolve it. */
    CHECK_OK(seawall_idem_waiter_poll(dup.waiter, &got));
    CHECK(got.outcome == SEAWALL_IDEM_PENDING);

    /* Cancelled: the error once, then "taken"; cancelling again changes nothing. */
    CHECK_OK(seawall_idem_waiter_cancel(dup.waiter));
    CHECK_OK(seawall_idem_waiter_cancel(dup.waiter));
    EXPECT(seawall_idem_waiter_wait(dup.waiter, 0, &got), SEAWALL_E_CANCELLED, "cancel");
    CHECK(nothing_handed_out(&got));
    CHECK_OK(seawall_idem_waiter_poll(dup.waiter, &got));
    CHECK(got.outcome == SEAWALL_IDEM_TAKEN && got.lease == NULL && got.record == NULL);
    /* A callback on a waiter already handed over runs at once with "taken". */
    CHECK_OK(seawall_idem_waiter_on_done(dup.waiter, on_done, &log));
    CHECK_U64(atomic_load(&log.calls), 1);
    seawall_idem_waiter_free(dup.waiter);

    /* Freed while waiting: cancelled, its callback runs inside free with SEAWALL_E_CANCELLED. */
    CHECK_OK(seawall_idem_begin(cache, KEY("w"), NULL, 0, &dup));
    CHECK_OK(seawall_idem_waiter_on_done(dup.waiter, on_done, &log));
    CHECK_U64(atomic_load(&log.calls), 1);
    seawall_idem_waiter_free(dup.waiter);
    CHECK_U64(atomic_load(&log.calls), 2);
    CHECK(log.status == SEAWALL_E_CANCELLED);
    seawall_idem_waiter_free(NULL);

    /* The owner is unaffected by all of it. */
    CHECK_OK(seawall_idem_complete(cache, owner, BYTES("r"), NULL, NULL));
    seawall_idem_lease_free(owner);
    seawall_idem_cache_free(cache);
    seawall_clock_free(clock);
}

/* ---- records and the record format ------------------------------------------------------------ */

static void idem_records(void) {
    seawall_clock *clock = manual_clock();
    seawall_idem_cache *cache = cache_on(clock, NULL, NULL, NULL);
    seawall_idem_lease *l = claim(cache, "r");
    seawall_idem_metadata pairs[] = {{"status", "201"}};
    seawall_idem_output out = {BYTES("body"), "text/plain", pairs, 1};
    seawall_idem_record *rec = NULL, *dec = POISON(seawall_idem_record);
    CHECK_OK(seawall_idem_complete_output(cache, l, &out, &rec));
    seawall_idem_lease_free(l);
    const uint8_t *data;
    const char *text, *name, *value;
    size_t n, count;
    seawall_idem_record_info info;
    seawall_bytes enc = {NULL, 0};

    EXPECT_NULL(seawall_idem_record_result(NULL, &data, &n), "record");
    EXPECT_NULL(seawall_idem_record_result(rec, NULL, &n), "out_data");
    EXPECT_NULL(seawall_idem_record_result(rec, &data, NULL), "out_len");
    EXPECT_NULL(seawall_idem_record_content_type(NULL, &text, &n), "record");
    EXPECT_NULL(seawall_idem_record_content_type(rec, NULL, &n), "out_text");
    EXPECT_NULL(seawall_idem_record_metadata_count(NULL, &count), "record");
    EXPECT_NULL(seawall_idem_record_metadata_count(rec, NULL), "out_count");
    EXPECT_NULL(seawall_idem_record_metadata_get(NULL, 0, &name, NULL, &value, NULL), "record");
    EXPECT_NULL(seawall_idem_record_metadata_get(rec, 0, NULL, NULL, &value, NULL), "out_name");
    EXPECT_NULL(seawall_idem_record_metadata_get(rec, 0, &name, NULL, NULL, NULL), "out_value");
    EXPECT_NULL(seawall_idem_record_get_info(NULL, &info), "record");
    EXPECT_NULL(seawall_idem_record_get_info(rec, NULL), "out_info");
    EXPECT_NULL(seawall_idem_record_encode(NULL, &enc), "record");
    EXPECT_NULL(seawall_idem_record_encode(rec, NULL), "out");
    EXPECT_NULL(seawall_idem_record_decode((const uint8_t *)"x", 1, NULL), "out_record");

    /* An index past the last pair. */
    EXPECT_INVALID(seawall_idem_record_metadata_get(rec, 1, &name, NULL, &value, NULL),
                   "index = 1: the record has 1 metadata pairs");
    EXPECT_INVALID(seawall_idem_record_metadata_get(rec, SIZE_MAX, &name, NULL, &value, NULL),
                   "index = 18446744073709551615");
    /* The length out-parameters are optional. */
    CHECK_OK(seawall_idem_record_content_type(rec, &text, NULL));
    CHECK_STR(text, "text/plain");

    /* Decoding: NULL with a length, empty, not a record, truncated, a trailing byte. */
    CHECK_OK(seawall_idem_record_encode(rec, &enc));
    CHECK(enc.data != NULL && enc.len > 8);
    EXPECT_INVALID(seawall_idem_record_decode(NULL, 5, &dec), "data is NULL but its length is 5");
    EXPECT_INVALID(seawall_idem_record_decode(NULL, 0, &dec), "cannot decode idempotency record",
                   "not a seawall record");
    EXPECT_INVALID(seawall_idem_record_decode((const uint8_t *)"nope", 4, &dec), "not a seawall record");
    EXPECT_INVALID(seawall_idem_record_decode(enc.data, enc.len - 1, &dec), "cannot decode idempotency record",
                   "truncated");
    uint8_t *other = malloc(enc.len);
    CHECK(other != NULL);
    if (other) {
        memcpy(other, enc.data, enc.len);
        other[3] = 9; /* the format version */
        EXPECT_INVALID(seawall_idem_record_decode(other, enc.len, &dec), "record format version 9 is not supported");
        free(other);
    }
    uint8_t *longer = malloc(enc.len + 1);
    CHECK(longer != NULL);
    if (longer) {
        memcpy(longer, enc.data, enc.len);
        longer[enc.len] = 0;
        EXPECT_INVALID(seawall_idem_record_decode(longer, enc.len + 1, &dec), "cannot decode idempotency record");
        free(longer);
    }
    CHECK(dec == POISON(seawall_idem_record));
    dec = NULL;
    CHECK_OK(seawall_idem_record_decode(enc.data, enc.len, &dec));
    seawall_idem_record_free(dec);

    /* seawall_bytes_free resets the struct: a second free (or NULL) does nothing. */
    seawall_bytes_free(&enc);
    CHECK(enc.data == NULL && enc.len == 0);
    seawall_bytes_free(&enc);
    seawall_bytes_free(NULL);

    /* A record outlives the cache it came from. */
    seawall_idem_cache_free(cache);
    CHECK_OK(seawall_idem_record_result(rec, &data, &n));
    CHECK(n == 4 && memcmp(data, "body", 4) == 0);
    seawall_idem_record_free(rec);
    seawall_idem_record_free(NULL);
    seawall_clock_free(clock);
}

/* ---- handles outliving their cache --------------------------------------------------------------- */

static void idem_free_while_out(void) {
    seawall_clock *clock = manual_clock();
    seawall_idem_cache *cache = cache_on(clock, NULL, NULL, NULL);
    seawall_idem_lease *owner = claim(cache, "o");
    seawall_idem_begin_result dup, got;
    CHECK_OK(seawall_idem_begin(cache, KEY("o"), NULL, 0, &dup));
    CHECK(dup.waiter != NULL);
    seawall_idem_cache_free(cache); /* lease and waiter are still out */
    seawall_idem_lease_info info;
    CHECK_OK(seawall_idem_lease_get_info(owner, &info));
    CHECK(info.key_len == 1 && info.key[0] == 'o');
    /* The waiter still works: the owner's lease expires on the clock, the waiter takes over. */
    CHECK_OK(seawall_clock_advance_ms(clock, 1000));
    CHECK_OK(seawall_idem_waiter_poll(dup.waiter, &got));
    CHECK(got.outcome == SEAWALL_IDEM_EXECUTE && got.lease != NULL);
    seawall_idem_lease_free(got.lease);
    seawall_idem_waiter_free(dup.waiter);
    seawall_idem_lease_free(owner);
    seawall_clock_free(clock);
}

/* A lease from one cache given to another (both memory stores number tokens from 1, so
 * the token alone would match): refused, and the other cache's key is unchanged. */
static void idem_lease_of_another_cache(void) {
    seawall_clock *clock = manual_clock();
    seawall_idem_cache *a = cache_on(clock, NULL, NULL, NULL), *b = cache_on(clock, NULL, NULL, NULL);
    seawall_idem_lease *la = claim(a, "k"), *lb = claim(b, "k");
    EXPECT_INVALID(seawall_idem_complete(b, la, BYTES("from a"), NULL, NULL), "lease = <idempotency key \"k\", token 1>",
                   "issued by another cache");
    EXPECT_INVALID(seawall_idem_release(b, la), "issued by another cache");
    EXPECT_INVALID(seawall_idem_renew(b, la, NULL), "issued by another cache");
    CHECK_OK(seawall_idem_complete(b, lb, BYTES("from b"), NULL, NULL));
    CHECK_OK(seawall_idem_complete(a, la, BYTES("from a"), NULL, NULL));
    seawall_idem_lease_free(la);
    seawall_idem_lease_free(lb);
    seawall_idem_cache_free(a);
    seawall_idem_cache_free(b);
    seawall_clock_free(clock);
}

/* ---- registry, checks and metrics ---------------------------------------------------------------- */

static atomic_int user_data_freed;

static void free_user_data(void *user_data) {
    (void)user_data;
    atomic_fetch_add(&user_data_freed, 1);
}

static int passing_check(void *user_data, char *message, size_t size) {
    (void)user_data;
    (void)message;
    (void)size;
    return 0;
}

/* A check that fills the whole message buffer (no NUL) with bytes that are not UTF-8. */
static int unterminated_check(void *user_data, char *message, size_t size) {
    (void)user_data;
    memset(message, 0xff, size);
    return 7;
}

static void registry(void) {
    seawall_clock *clock = manual_clock();
    seawall_registry *reg = NULL;
    seawall_breaker *b = POISON(seawall_breaker);
    seawall_breaker_config *cfg = NULL;
    seawall_health_status hs;
    bool removed = true;
    size_t need = 0;
    char small[8];
    int token = 0;

    EXPECT_NULL(seawall_registry_new(clock, 0, NULL), "out_registry");
    CHECK_OK(seawall_registry_new(clock, 0, &reg)); /* 0: the default bound */

    EXPECT_NULL(seawall_registry_breaker(NULL, "a", NULL, &b), "registry");
    EXPECT_NULL(seawall_registry_breaker(reg, NULL, NULL, &b), "name");
    EXPECT_NULL(seawall_registry_breaker(reg, "a", NULL, NULL), "out_breaker");
    EXPECT_INVALID(seawall_registry_breaker(reg, "db\xff", NULL, &b), "name is not valid UTF-8", "offset 2");
    EXPECT_CONFIG(seawall_registry_breaker(reg, "", NULL, &b), "needs a name");
    CHECK_OK(seawall_breaker_config_new(&cfg));
    CHECK_OK(seawall_breaker_config_set_int(cfg, "half_open_success_threshold", 2));
    EXPECT_CONFIG(seawall_registry_breaker(reg, "a", cfg, &b), "half_open_success_threshold = 2");
    CHECK(b == POISON(seawall_breaker));
    seawall_breaker_config_free(cfg);

    EXPECT_NULL(seawall_registry_remove_breaker(NULL, "a", &removed), "registry");
    EXPECT_NULL(seawall_registry_remove_breaker(reg, NULL, &removed), "name");
    EXPECT_INVALID(seawall_registry_remove_breaker(reg, "\xff", &removed), "name is not valid UTF-8");
    CHECK_OK(seawall_registry_remove_breaker(reg, "never-added", &removed));
    CHECK(!removed);
    CHECK_OK(seawall_registry_remove_breaker(reg, "never-added", NULL));

    /* Idempotency caches by name: NULLs, names, a configuration the core refuses. */
    seawall_idem_cache *ic = POISON(seawall_idem_cache);
    seawall_idem_config *icfg = NULL;
    EXPECT_NULL(seawall_registry_idem_cache(NULL, "pay", NULL, &ic), "registry");
    EXPECT_NULL(seawall_registry_idem_cache(reg, NULL, NULL, &ic), "name");
    EXPECT_NULL(seawall_registry_idem_cache(reg, "pay", NULL, NULL), "out_cache");
    EXPECT_INVALID(seawall_registry_idem_cache(reg, "p\xffy", NULL, &ic), "name is not valid UTF-8", "offset 1");
    EXPECT_CONFIG(seawall_registry_idem_cache(reg, "", NULL, &ic), "name");
    CHECK_OK(seawall_idem_config_new(&icfg));
    CHECK_OK(seawall_idem_config_set_int(icfg, "max_bytes", 1000));
    CHECK_OK(seawall_idem_config_set_int(icfg, "max_result_bytes", 5000));
    EXPECT_CONFIG(seawall_registry_idem_cache(reg, "pay", icfg, &ic), "max_result_bytes = 5000");
    CHECK(ic == POISON(seawall_idem_cache));
    seawall_idem_config_free(icfg);

    /* Checks: NULLs, names, bad timeouts and intervals. Refused: free_user_data not called,
     * user_data stays the caller's. */
    atomic_store(&user_data_freed, 0);
    EXPECT_NULL(seawall_registry_add_check(NULL, "db", passing_check, &token, 10, 0, true, free_user_data),
                "registry");
    EXPECT_NULL(seawall_registry_add_check(reg, NULL, passing_check, &token, 10, 0, true, free_user_data), "name");
    EXPECT_NULL(seawall_registry_add_check(reg, "db", NULL, &token, 10, 0, true, free_user_data), "check");
    EXPECT_INVALID(seawall_registry_add_check(reg, "d\xff", passing_check, &token, 10, 0, true, free_user_data),
                   "name is not valid UTF-8");
    EXPECT_CONFIG(seawall_registry_add_check(reg, "", passing_check, &token, 10, 0, true, free_user_data),
                  "name = \"\": a health check needs a name");
    EXPECT_CONFIG(seawall_registry_add_check(reg, "db", passing_check, &token, 0, 0, true, free_user_data),
                  "timeout = 0.0ms", "must be greater than zero");
    EXPECT_CONFIG(seawall_registry_add_check(reg, "db", passing_check, &token, -1, 0, true, free_user_data),
                  "timeout = -1.0ms", "must not be negative");
    EXPECT_CONFIG(seawall_registry_add_check(reg, "db", passing_check, &token, NAN, 0, true, free_user_data),
                  "timeout = nanms");
    EXPECT_CONFIG(seawall_registry_add_check(reg, "db", passing_check, &token, INFINITY, 0, true, free_user_data),
                  "timeout = infms");
    EXPECT_CONFIG(seawall_registry_add_check(reg, "db", passing_check, &token, 10, -1, true, free_user_data),
                  "interval = -1.0ms");
    EXPECT_CONFIG(seawall_registry_add_check(reg, "db", passing_check, &token, 10, NAN, true, free_user_data),
                  "interval = nanms");
    EXPECT_CONFIG(seawall_registry_add_check(reg, "db", passing_check, &token, 10, INFINITY, true, free_user_data),
                  "interval = infms");
    CHECK_U64(atomic_load(&user_data_freed), 0);
    /* None of them was added. */
    CHECK_OK(seawall_registry_remove_check(reg, "db", &removed));
    CHECK(!removed);

    EXPECT_NULL(seawall_registry_remove_check(NULL, "db", &removed), "registry");
    EXPECT_NULL(seawall_registry_remove_check(reg, NULL, &removed), "name");
    EXPECT_INVALID(seawall_registry_remove_check(reg, "\xff", &removed), "name is not valid UTF-8");
    EXPECT_NULL(seawall_registry_health(NULL, &hs), "registry");
    EXPECT_NULL(seawall_registry_health(reg, NULL), "out_status");

    /* Buffers: NULL registry, NULL buffer, too small (then ""), out_needed optional. */
    typedef seawall_status (*render_fn)(const seawall_registry *, char *, size_t, size_t *);
    render_fn renders[] = {seawall_registry_prometheus, seawall_registry_health_json, seawall_registry_snapshot_json};
    seawall_breaker *a = NULL;
    CHECK_OK(seawall_registry_breaker(reg, "a", NULL, &a));
    for (int i = 0; i < 3; i++) {
        EXPECT_NULL(renders[i](NULL, small, sizeof small, &need), "registry");
        need = 0;
        EXPECT_INVALID(renders[i](reg, NULL, 0, &need), "buf is too small: len = 0");
        CHECK(need > sizeof small);
        memcpy(small, "xxxxxxx", 8);
        EXPECT_INVALID(renders[i](reg, small, sizeof small, NULL), "buf is too small: len = 8", "the text needs");
        CHECK_STR(small, "");
        char *buf = malloc(need);
        CHECK(buf != NULL);
        if (buf) {
            size_t again = 0;
            CHECK_OK(renders[i](reg, buf, need, &again));
            CHECK(again == need && strlen(buf) + 1 == need);
            free(buf);
        }
    }

    /* A check's message without a NUL, not UTF-8, under a name that needs escaping: read
     * up to the buffer's size, invalid bytes replaced, the name escaped in every output. */
    CHECK_OK(seawall_registry_add_check(reg, "q\"1\n", unterminated_check, NULL, 1000, 0, false, NULL));
    CHECK_OK(seawall_registry_health(reg, &hs));
    CHECK(hs == SEAWALL_HEALTH_DEGRADED);
    need = 0;
    EXPECT_INVALID(seawall_registry_health_json(reg, NULL, 0, &need), "buf is too small");
    char *json = malloc(need + 4096); /* the check may run again: leave room */
    CHECK(json != NULL);
    if (json) {
        CHECK_OK(seawall_registry_health_json(reg, json, need + 4096, NULL));
        CHECK_CONTAINS(json, "\"q\\\"1\\n\":{");
        /* 512 bytes 0xff, each replaced by U+FFFD (written as itself or escaped). */
        CHECK(strstr(json, "\xef\xbf\xbd") != NULL || strstr(json, "\\ufffd") != NULL);
        free(json);
    }
    char *prom = malloc(1 << 16);
    CHECK(prom != NULL);
    if (prom) {
        CHECK_OK(seawall_registry_prometheus(reg, prom, 1 << 16, NULL));
        CHECK_CONTAINS(prom, "check=\"q\\\"1\\n\"");
        free(prom);
    }
    CHECK_OK(seawall_registry_remove_check(reg, "q\"1\n", &removed));
    CHECK(removed);

    /* Freed while breaker handles are out: the handles keep working. */
    seawall_registry_free(reg);
    seawall_registry_free(NULL);
    CHECK_OK(seawall_breaker_force_open(a));
    seawall_state s;
    CHECK_OK(seawall_breaker_state(a, &s));
    CHECK(s == SEAWALL_STATE_FORCED_OPEN);
    seawall_breaker_free(a);
    CHECK_U64(atomic_load(&user_data_freed), 0);
    seawall_clock_free(clock);
}

/* ---- Redis store options (no server: these never connect, except the unreachable ping) ---------- */

static void redis_store(void) {
    seawall_redis_config *rc = NULL;
    seawall_redis_store *store = POISON(seawall_redis_store);
    double ms = 0;
    EXPECT_NULL(seawall_redis_config_new(NULL), "out_config");
    CHECK_OK(seawall_redis_config_new(&rc));
    EXPECT_NULL(seawall_redis_config_set_str(NULL, "url", "redis://x"), "config");
    EXPECT_NULL(seawall_redis_config_set_str(rc, NULL, "redis://x"), "key");
    EXPECT_NULL(seawall_redis_config_set_str(rc, "url", NULL), "value");
    EXPECT_INVALID(seawall_redis_config_set_str(rc, "url\xff", "x"), "key is not valid UTF-8");
    EXPECT_INVALID(seawall_redis_config_set_str(rc, "prefix", "p\xff"), "value is not valid UTF-8");
    EXPECT_NULL(seawall_redis_config_set_double(NULL, "command_timeout", 1), "config");
    EXPECT_NULL(seawall_redis_config_set_double(rc, NULL, 1), "key");

    EXPECT_CONFIG(seawall_redis_config_set_str(rc, "url", "http://x"), "url = \"http://x\"", "is not a Redis URL");
    EXPECT_CONFIG(seawall_redis_config_set_str(rc, "url", ""), "url = \"\"", "is not a Redis URL");
    EXPECT_CONFIG(seawall_redis_config_set_str(rc, "prefix", "app:{x}:"), "prefix = \"app:{x}:\"");
    EXPECT_CONFIG(seawall_redis_config_set_str(rc, "bogus", "x"), "bogus", "unknown option");
    EXPECT_CONFIG(seawall_redis_config_set_double(rc, "url", 1), "url = 1.0", "expected a string");
    EXPECT_CONFIG(seawall_redis_config_set_str(rc, "command_timeout", "5"), "command_timeout = \"5\"");
    EXPECT_CONFIG(seawall_redis_config_set_double(rc, "command_timeout", -5), "command_timeout = -5.0ms");
    EXPECT_CONFIG(seawall_redis_config_set_double(rc, "connect_timeout", NAN), "connect_timeout = nanms");
    EXPECT_CONFIG(seawall_redis_config_set_double(rc, "connect_timeout", INFINITY), "connect_timeout = infms");
    EXPECT_CONFIG(seawall_redis_config_set_double(rc, "connect_timeout", 0), "connect_timeout = 0.0ms",
                  "must be greater than zero");

    EXPECT_NULL(seawall_redis_store_new(NULL, &store), "config");
    EXPECT_NULL(seawall_redis_store_new(rc, NULL), "out_store");
    CHECK(store == POISON(seawall_redis_store));
    /* Nothing listens on port 1: the store is made (it connects on first use), pings fail fast. */
    CHECK_OK(seawall_redis_config_set_str(rc, "url", "redis://127.0.0.1:1/0"));
    CHECK_OK(seawall_redis_config_set_double(rc, "connect_timeout", 200));
    store = NULL;
    CHECK_OK(seawall_redis_store_new(rc, &store));
    EXPECT_NULL(seawall_redis_store_ping(NULL, &ms), "store");
    EXPECT_NULL(seawall_redis_store_ping(store, NULL), "out_ms");
    EXPECT(seawall_redis_store_ping(store, &ms), SEAWALL_E_STORE_UNAVAILABLE, "idempotency store unavailable",
           "127.0.0.1:1");
    /* A cache on it: begin fails with the store's status, nothing handed out. */
    seawall_idem_config *cfg = NULL;
    seawall_idem_cache *cache = NULL;
    seawall_idem_begin_result r;
    CHECK_OK(seawall_idem_config_new(&cfg));
    CHECK_OK(seawall_idem_config_set_redis_store(cfg, store));
    seawall_redis_store_free(store); /* the configuration keeps its own reference */
    CHECK_OK(seawall_idem_cache_new(cfg, &cache));
    EXPECT(seawall_idem_begin(cache, KEY("k"), NULL, 0, &r), SEAWALL_E_STORE_UNAVAILABLE, "127.0.0.1:1");
    CHECK(nothing_handed_out(&r));
    /* Memory-store bounds do not apply to a Redis store: refused, naming the option. */
    CHECK_OK(seawall_idem_config_set_int(cfg, "max_bytes", 10000));
    seawall_idem_cache *c2 = POISON(seawall_idem_cache);
    EXPECT_CONFIG(seawall_idem_cache_new(cfg, &c2), "max_bytes = 10000", "redis store");
    CHECK(c2 == POISON(seawall_idem_cache));
    seawall_idem_cache_free(cache);
    seawall_idem_config_free(cfg);
    seawall_redis_store_free(NULL);
    seawall_redis_config_free(NULL);
    seawall_redis_config_free(rc);
}

int main(void) {
    names();
    clocks();
    breaker_config();
    breakers();
    permits();
    deadlines();
    cancel_tokens();
    idem_config();
    idem_keys();
    idem_leases();
    idem_waiters();
    idem_records();
    idem_free_while_out();
    registry();
    redis_store();
    idem_lease_of_another_cache();
    return check_report();
}
