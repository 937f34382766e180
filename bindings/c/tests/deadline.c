/*
 * deadline.c: the C API's contract for deadlines, grpc-timeout values, cancel tokens and
 * timers: NULL arguments and free(NULL) for every function, bad durations refused with a
 * message naming the argument and value, buffer sizes, callbacks (once, on which thread,
 * removal, removal waiting for a run in progress, freeing from inside a callback), the
 * manual clock firing timers inside seawall_clock_advance_ms, and the system clock's timer
 * thread really cancelling a token (generous bounds: a 20 ms deadline, up to 2 s to see it).
 *
 * Build: gcc deadline.c -pthread $(pkg-config --cflags --libs seawall)
 * Prints "N passed, M failed" last; exits non-zero when a check failed.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "check.h"

#define CHECK_NULL_ARG(call, param)                             \
    do {                                                        \
        CHECK_STATUS(call, SEAWALL_E_INVALID_ARGUMENT);         \
        CHECK_CONTAINS(seawall_last_error(), param " is NULL"); \
    } while (0)

#define CHECK_NEAR(actual, expected)                                                      \
    do {                                                                                  \
        double a_ = (actual), e_ = (expected);                                            \
        if (fabs(a_ - e_) <= 1e-9) {                                                      \
            atomic_fetch_add(&check_passed, 1);                                           \
        } else {                                                                          \
            char detail_[128];                                                            \
            snprintf(detail_, sizeof detail_, "got %.17g, want %.17g", a_, e_);           \
            check_fail_at(__LINE__, #actual, detail_);                                    \
        }                                                                                 \
    } while (0)

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* What a cancel callback saw. */
typedef struct {
    atomic_int calls;
    atomic_int started;
    atomic_int finished;
    seawall_cancel_reason reason;
    pthread_t thread;
    long sleep_ms;                 /* sleep this long inside the callback */
    seawall_cancel_token *free_me; /* free this token from inside the callback */
    seawall_cancel_token *remove_from;
    uint64_t remove_id; /* remove this callback (itself) from inside */
    seawall_status inner_status;
    bool inner_removed;
} seen_t;

static void record(seawall_cancel_reason reason, void *user_data) {
    seen_t *s = user_data;
    s->reason = reason;
    s->thread = pthread_self();
    atomic_fetch_add(&s->started, 1);
    if (s->sleep_ms) sleep_ms(s->sleep_ms);
    if (s->remove_from) s->inner_status = seawall_cancel_token_remove_callback(s->remove_from, s->remove_id, &s->inner_removed);
    if (s->free_me) seawall_cancel_token_free(s->free_me);
    atomic_fetch_add(&s->calls, 1);
    atomic_fetch_add(&s->finished, 1);
}

static void names(void) {
    CHECK_STR(seawall_status_name(SEAWALL_E_IDEMPOTENCY_IN_PROGRESS), "SEAWALL_IDEMPOTENCY_IN_PROGRESS");
    CHECK_STR(seawall_status_name(SEAWALL_E_IDEMPOTENCY_MISMATCH), "SEAWALL_IDEMPOTENCY_MISMATCH");
    CHECK_STR(seawall_status_name(SEAWALL_E_STORE_UNAVAILABLE), "SEAWALL_STORE_UNAVAILABLE");
    CHECK_STR(seawall_status_name(SEAWALL_E_LEASE_LOST), "SEAWALL_LEASE_LOST");
    CHECK_STR(seawall_status_name(SEAWALL_E_CANCELLED), "SEAWALL_CANCELLED");
    CHECK_STR(seawall_status_name((seawall_status)11), "SEAWALL_UNKNOWN");
    CHECK(SEAWALL_E_IDEMPOTENCY_IN_PROGRESS == 6 && SEAWALL_E_IDEMPOTENCY_MISMATCH == 7 &&
          SEAWALL_E_STORE_UNAVAILABLE == 8 && SEAWALL_E_LEASE_LOST == 9 && SEAWALL_E_CANCELLED == 10);
    CHECK_STR(seawall_cancel_reason_name(SEAWALL_CANCEL_NONE), "none");
    CHECK_STR(seawall_cancel_reason_name(SEAWALL_CANCEL_CANCELLED), "cancelled");
    CHECK_STR(seawall_cancel_reason_name(SEAWALL_CANCEL_DEADLINE_EXCEEDED), "deadline_exceeded");
    CHECK_STR(seawall_cancel_reason_name((seawall_cancel_reason)3), "unknown");
    CHECK_STR(seawall_cancel_reason_name((seawall_cancel_reason)-1), "unknown");
    CHECK(SEAWALL_GRPC_TIMEOUT_BUFSIZE == 10);
}

static void null_arguments(void) {
    seawall_clock *clock = NULL;
    seawall_deadline *d = NULL, *untouched = (seawall_deadline *)&clock;
    seawall_cancel_token *t = NULL;
    seawall_timer *timer = NULL;
    uint64_t u = 0;
    double x = 0;
    bool flag = false;
    seawall_cancel_reason reason;
    char buf[SEAWALL_GRPC_TIMEOUT_BUFSIZE];

    CHECK_OK(seawall_manual_clock_new(&clock));
    CHECK_OK(seawall_deadline_after_ms(clock, 100, &d));
    CHECK_OK(seawall_cancel_token_new(&t));

    CHECK_NULL_ARG(seawall_deadline_after_ms(NULL, 100, &untouched), "clock");
    CHECK(untouched == (seawall_deadline *)&clock);
    CHECK_NULL_ARG(seawall_deadline_after_ms(clock, 100, NULL), "out_deadline");
    CHECK_NULL_ARG(seawall_deadline_from_grpc_timeout(NULL, "1S", &untouched), "clock");
    CHECK_NULL_ARG(seawall_deadline_from_grpc_timeout(clock, NULL, &untouched), "header");
    CHECK_NULL_ARG(seawall_deadline_from_grpc_timeout(clock, "1S", NULL), "out_deadline");
    CHECK(untouched == (seawall_deadline *)&clock);
    CHECK_NULL_ARG(seawall_deadline_remaining_ms(NULL, &u), "deadline");
    CHECK_NULL_ARG(seawall_deadline_remaining_ms(d, NULL), "out_ms");
    CHECK_NULL_ARG(seawall_deadline_remaining_ms_double(NULL, &x), "deadline");
    CHECK_NULL_ARG(seawall_deadline_remaining_ms_double(d, NULL), "out_ms");
    CHECK_NULL_ARG(seawall_deadline_expired(NULL, &flag), "deadline");
    CHECK_NULL_ARG(seawall_deadline_expired(d, NULL), "out_expired");
    CHECK_NULL_ARG(seawall_deadline_earliest(NULL, d, &untouched), "a");
    CHECK_NULL_ARG(seawall_deadline_earliest(d, NULL, &untouched), "b");
    CHECK_NULL_ARG(seawall_deadline_earliest(d, d, NULL), "out_deadline");
    CHECK(untouched == (seawall_deadline *)&clock);
    CHECK_NULL_ARG(seawall_deadline_budget_ms(NULL, 0.5, 0, &x), "deadline");
    CHECK_NULL_ARG(seawall_deadline_budget_ms(d, 0.5, 0, NULL), "out_ms");
    CHECK_NULL_ARG(seawall_deadline_to_grpc_timeout(NULL, buf, sizeof buf), "deadline");
    CHECK_NULL_ARG(seawall_deadline_to_grpc_timeout(d, NULL, 10), "buf");
    CHECK_NULL_ARG(seawall_grpc_timeout_parse_ms(NULL, &x), "header");
    CHECK_NULL_ARG(seawall_grpc_timeout_parse_ms("1S", NULL), "out_ms");
    CHECK_NULL_ARG(seawall_grpc_timeout_format_ms(1, NULL, 10), "buf");

    CHECK_NULL_ARG(seawall_cancel_token_new(NULL), "out_token");
    CHECK_NULL_ARG(seawall_cancel_token_cancel(NULL), "token");
    CHECK_NULL_ARG(seawall_cancel_token_is_cancelled(NULL, &flag), "token");
    CHECK_NULL_ARG(seawall_cancel_token_is_cancelled(t, NULL), "out_cancelled");
    CHECK_NULL_ARG(seawall_cancel_token_reason(NULL, &reason), "token");
    CHECK_NULL_ARG(seawall_cancel_token_reason(t, NULL), "out_reason");
    CHECK_NULL_ARG(seawall_cancel_token_on_cancel(NULL, record, NULL, &u), "token");
    CHECK_NULL_ARG(seawall_cancel_token_on_cancel(t, NULL, NULL, &u), "callback");
    CHECK_NULL_ARG(seawall_cancel_token_remove_callback(NULL, 1, &flag), "token");
    CHECK_NULL_ARG(seawall_cancel_token_cancel_at(NULL, d, &timer), "token");
    CHECK_NULL_ARG(seawall_cancel_token_cancel_at(t, NULL, &timer), "deadline");
    CHECK_NULL_ARG(seawall_cancel_token_cancel_at(t, d, NULL), "out_timer");
    CHECK(timer == NULL);

    /* None of the NULL calls above cancelled the token or scheduled anything. */
    CHECK_OK(seawall_clock_advance_ms(clock, 1000));
    CHECK_OK(seawall_cancel_token_is_cancelled(t, &flag));
    CHECK(!flag);
    CHECK_OK(seawall_cancel_token_reason(t, &reason));
    CHECK(reason == SEAWALL_CANCEL_NONE);

    /* free(NULL) is a no-op for every new kind of handle. */
    seawall_deadline_free(NULL);
    seawall_cancel_token_free(NULL);
    seawall_timer_free(NULL);
    CHECK(1);

    seawall_cancel_token_free(t);
    seawall_deadline_free(d);
    seawall_clock_free(clock);
}

static void bad_durations(void) {
    seawall_clock *clock = NULL;
    seawall_deadline *d = NULL, *untouched = (seawall_deadline *)&clock;
    char buf[SEAWALL_GRPC_TIMEOUT_BUFSIZE] = "x";
    double x = -1;
    CHECK_OK(seawall_manual_clock_new(&clock));

    CHECK_STATUS(seawall_deadline_after_ms(clock, -1, &untouched), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "ms = -1.0ms"); /* a double, shown as one */
    CHECK_CONTAINS(seawall_last_error(), "must not be negative");
    CHECK_STATUS(seawall_deadline_after_ms(clock, -0.5, &untouched), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "ms = -0.5ms");
    CHECK_STATUS(seawall_deadline_after_ms(clock, NAN, &untouched), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "ms = ");
    CHECK_CONTAINS(seawall_last_error(), "not NaN");
    CHECK_STATUS(seawall_deadline_after_ms(clock, INFINITY, &untouched), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "ms = ");
    CHECK_CONTAINS(seawall_last_error(), "must be finite");
    CHECK_STATUS(seawall_deadline_after_ms(clock, -INFINITY, &untouched), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "must not be negative");
    CHECK(untouched == (seawall_deadline *)&clock);

    CHECK_OK(seawall_deadline_after_ms(clock, 100, &d));
    CHECK_STATUS(seawall_deadline_budget_ms(d, 0.4, -5, &x), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "min_ms = -5.0ms");
    CHECK_CONTAINS(seawall_last_error(), "must not be negative");
    CHECK_STATUS(seawall_deadline_budget_ms(d, 0.4, NAN, &x), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_STATUS(seawall_deadline_budget_ms(d, 0.4, INFINITY, &x), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "min_ms = infms: must be finite");
    CHECK_STATUS(seawall_deadline_budget_ms(d, NAN, 0, &x), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "fraction");
    CHECK_STATUS(seawall_deadline_budget_ms(d, -0.1, 0, &x), SEAWALL_E_INVALID_ARGUMENT);
    CHECK(x == -1);

    CHECK_STATUS(seawall_grpc_timeout_format_ms(-1, buf, sizeof buf), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "ms = -1.0ms");
    CHECK_STATUS(seawall_grpc_timeout_format_ms(NAN, buf, sizeof buf), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_STATUS(seawall_grpc_timeout_format_ms(INFINITY, buf, sizeof buf), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_STR(buf, "x");

    /* Malformed headers: the message quotes the value. */
    CHECK_STATUS(seawall_deadline_from_grpc_timeout(clock, "3s", &untouched), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "grpc-timeout \"3s\"");
    CHECK_STATUS(seawall_grpc_timeout_parse_ms("123456789m", &x), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "8 digits");
    CHECK_STATUS(seawall_grpc_timeout_parse_ms("1\xff" "S", &x), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "header is not valid UTF-8");
    CHECK(x == -1);
    CHECK(untouched == (seawall_deadline *)&clock);

    seawall_deadline_free(d);
    seawall_clock_free(clock);
}

static void manual_deadlines(void) {
    seawall_clock *clock = NULL, *other = NULL, *sys1 = NULL, *sys2 = NULL;
    seawall_deadline *d = NULL, *e = NULL, *f = NULL, *g = NULL, *s1 = NULL, *s2 = NULL;
    uint64_t u = 0;
    double x = 0;
    bool expired = true;
    char buf[SEAWALL_GRPC_TIMEOUT_BUFSIZE];
    CHECK_OK(seawall_manual_clock_new(&clock));
    CHECK_OK(seawall_manual_clock_new(&other));

    CHECK_OK(seawall_deadline_after_ms(clock, 1000, &d));
    CHECK_OK(seawall_clock_advance_ms(clock, 999));
    CHECK_OK(seawall_deadline_remaining_ms(d, &u));
    CHECK_U64(u, 1);
    CHECK_OK(seawall_deadline_remaining_ms_double(d, &x));
    CHECK_NEAR(x, 1.0);
    CHECK_OK(seawall_deadline_expired(d, &expired));
    CHECK(!expired);
    CHECK_OK(seawall_deadline_to_grpc_timeout(d, buf, sizeof buf));
    CHECK_STR(buf, "1000000n");
    CHECK_OK(seawall_clock_advance_ms(clock, 1));
    CHECK_OK(seawall_deadline_expired(d, &expired));
    CHECK(expired);
    CHECK_OK(seawall_deadline_remaining_ms_double(d, &x));
    CHECK(x == 0);
    CHECK_OK(seawall_deadline_to_grpc_timeout(d, buf, sizeof buf));
    CHECK_STR(buf, "0n");

    /* Sub-millisecond budgets: 0.25 ms is 0 whole ms but not expired. */
    CHECK_OK(seawall_deadline_after_ms(clock, 0.25, &e));
    CHECK_OK(seawall_deadline_remaining_ms(e, &u));
    CHECK_U64(u, 0);
    CHECK_OK(seawall_deadline_remaining_ms_double(e, &x));
    CHECK_NEAR(x, 0.25);
    CHECK_OK(seawall_deadline_expired(e, &expired));
    CHECK(!expired);

    /* Earliest: a new handle, the inputs unchanged; the clock handle may go first. */
    CHECK_OK(seawall_deadline_after_ms(clock, 500, &f));
    CHECK_OK(seawall_deadline_earliest(f, e, &g));
    CHECK_OK(seawall_deadline_remaining_ms_double(g, &x));
    CHECK_NEAR(x, 0.25);
    seawall_deadline_free(g);
    g = NULL;
    CHECK_OK(seawall_deadline_budget_ms(f, 0.4, 5, &x));
    CHECK_NEAR(x, 200);
    CHECK_OK(seawall_deadline_budget_ms(f, 0.001, 5, &x));
    CHECK_NEAR(x, 5);
    CHECK_STATUS(seawall_deadline_budget_ms(f, 2.0, 0, &x), SEAWALL_E_INVALID_ARGUMENT); /* a fraction is at most 1 */
    CHECK_OK(seawall_deadline_budget_ms(f, 1.0, 0, &x));
    CHECK_NEAR(x, 500);
    CHECK_OK(seawall_deadline_budget_ms(e, 0.4, 5, &x));
    CHECK_NEAR(x, 0.25);

    CHECK_OK(seawall_deadline_after_ms(other, 10, &g));
    CHECK_STATUS(seawall_deadline_earliest(f, g, &s1), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "different clocks");
    CHECK(s1 == NULL);

    /* Every system clock handle is the same clock: their deadlines compare. */
    CHECK_OK(seawall_system_clock_new(&sys1));
    CHECK_OK(seawall_system_clock_new(&sys2));
    CHECK_OK(seawall_deadline_after_ms(sys1, 60000, &s1));
    CHECK_OK(seawall_deadline_after_ms(sys2, 30000, &s2));
    seawall_deadline *s3 = NULL;
    CHECK_OK(seawall_deadline_earliest(s1, s2, &s3));
    CHECK_OK(seawall_deadline_remaining_ms(s3, &u));
    CHECK(u <= 30000 && u > 20000);
    CHECK_STATUS(seawall_deadline_earliest(s1, f, &g), SEAWALL_E_INVALID_ARGUMENT);

    /* The clock handle may be freed before its deadlines. */
    seawall_clock_free(other);
    CHECK_OK(seawall_deadline_remaining_ms(g, &u));
    CHECK_U64(u, 10);

    seawall_deadline_free(s3);
    seawall_deadline_free(s2);
    seawall_deadline_free(s1);
    seawall_clock_free(sys2);
    seawall_clock_free(sys1);
    seawall_deadline_free(g);
    seawall_deadline_free(f);
    seawall_deadline_free(e);
    seawall_deadline_free(d);
    seawall_clock_free(clock);
}

static void buffers(void) {
    seawall_clock *clock = NULL;
    seawall_deadline *d = NULL;
    char buf[32];
    double x = 0;
    CHECK_OK(seawall_manual_clock_new(&clock));
    CHECK_OK(seawall_deadline_after_ms(clock, 250, &d));

    /* "250000u" needs 8 bytes with its NUL. */
    memset(buf, 'x', sizeof buf);
    CHECK_STATUS(seawall_deadline_to_grpc_timeout(d, buf, 7), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "buf is too small");
    CHECK_CONTAINS(seawall_last_error(), "len = 7");
    CHECK_CONTAINS(seawall_last_error(), "needs 8 bytes");
    CHECK(buf[0] == '\0' && buf[1] == 'x'); /* an empty string, nothing beyond */
    memset(buf, 'x', sizeof buf);
    CHECK_STATUS(seawall_deadline_to_grpc_timeout(d, buf, 0), SEAWALL_E_INVALID_ARGUMENT);
    CHECK(buf[0] == 'x'); /* len 0: not even the NUL */
    CHECK_OK(seawall_deadline_to_grpc_timeout(d, buf, 8));
    CHECK_STR(buf, "250000u");
    CHECK(buf[8] == 'x');

    CHECK_STATUS(seawall_grpc_timeout_format_ms(3000, buf, 8), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "\"3000000u\" needs 9 bytes");
    CHECK_STR(buf, "");
    CHECK_OK(seawall_grpc_timeout_format_ms(3000, buf, 9));
    CHECK_STR(buf, "3000000u");

    /* The longest values fit SEAWALL_GRPC_TIMEOUT_BUFSIZE: 8 digits, a unit, the NUL. */
    char small[SEAWALL_GRPC_TIMEOUT_BUFSIZE];
    CHECK_OK(seawall_grpc_timeout_format_ms(99.999999, small, sizeof small));
    CHECK_STR(small, "99999999n");
    CHECK_OK(seawall_grpc_timeout_format_ms(1e15, small, sizeof small)); /* saturates */
    CHECK_U64(strlen(small), 9);
    CHECK_STR(small, "99999999H");
    /* Too large for a duration at all: refused, never an infinite timeout. */
    CHECK_STATUS(seawall_grpc_timeout_format_ms(1e300, small, sizeof small), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "ms = 1e300ms: is too large");
    seawall_deadline *far = NULL;
    CHECK_OK(seawall_deadline_after_ms(clock, 1e15, &far));
    CHECK_OK(seawall_deadline_to_grpc_timeout(far, small, sizeof small));
    CHECK(strlen(small) <= 9);
    seawall_deadline_free(far);

    /* Parse, including fractions of a millisecond. */
    CHECK_OK(seawall_grpc_timeout_parse_ms("7u", &x));
    CHECK_NEAR(x, 0.007);
    CHECK_OK(seawall_grpc_timeout_parse_ms("1H", &x));
    CHECK_NEAR(x, 3600000);
    CHECK_OK(seawall_grpc_timeout_parse_ms(small, &x)); /* what we format, we parse */

    seawall_deadline_free(d);
    seawall_clock_free(clock);
}

static void manual_tokens(void) {
    seawall_clock *clock = NULL;
    seawall_deadline *d = NULL;
    seawall_cancel_token *t = NULL, *t2 = NULL, *t3 = NULL;
    seawall_timer *timer = NULL, *timer2 = NULL;
    seen_t a = {0}, b = {0}, late = {0}, removed = {0};
    uint64_t id_a = 0, id_b = 0, id_removed = 0, id_late = 0;
    bool flag = false;
    seawall_cancel_reason reason;
    CHECK_OK(seawall_manual_clock_new(&clock));
    CHECK_OK(seawall_deadline_after_ms(clock, 100, &d));

    CHECK_OK(seawall_cancel_token_new(&t));
    CHECK_OK(seawall_cancel_token_on_cancel(t, record, &a, &id_a));
    CHECK_OK(seawall_cancel_token_on_cancel(t, record, &b, &id_b));
    CHECK_OK(seawall_cancel_token_on_cancel(t, record, &removed, &id_removed));
    CHECK(id_a != id_b && id_b != id_removed && id_a != 0);
    CHECK_OK(seawall_cancel_token_on_cancel(t, record, &late, NULL)); /* out_id may be NULL */
    CHECK_OK(seawall_cancel_token_remove_callback(t, id_removed, &flag));
    CHECK(flag);
    CHECK_OK(seawall_cancel_token_remove_callback(t, id_removed, &flag)); /* again: not removed now */
    CHECK(!flag);
    CHECK_OK(seawall_cancel_token_remove_callback(t, id_removed, NULL)); /* out_removed may be NULL */
    CHECK_STATUS(seawall_cancel_token_remove_callback(t, 0, &flag), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "no callback with id 0");
    CHECK_STATUS(seawall_cancel_token_remove_callback(t, 123456, &flag), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "no callback with id 123456");

    CHECK_OK(seawall_cancel_token_cancel_at(t, d, &timer));
    CHECK(timer != NULL);
    /* The deadline handle may go: the timer keeps what it needs. */
    seawall_deadline_free(d);
    d = NULL;
    CHECK_OK(seawall_clock_advance_ms(clock, 99));
    CHECK_OK(seawall_cancel_token_is_cancelled(t, &flag));
    CHECK(!flag);
    CHECK_U64(atomic_load(&a.calls), 0);
    /* Timers fire inside seawall_clock_advance_ms, on the advancing thread. */
    CHECK_OK(seawall_clock_advance_ms(clock, 1));
    CHECK_U64(atomic_load(&a.calls), 1);
    CHECK_U64(atomic_load(&b.calls), 1);
    CHECK_U64(atomic_load(&late.calls), 1);
    CHECK_U64(atomic_load(&removed.calls), 0);
    CHECK(a.reason == SEAWALL_CANCEL_DEADLINE_EXCEEDED);
    CHECK(pthread_equal(a.thread, pthread_self()));
    CHECK_OK(seawall_cancel_token_reason(t, &reason));
    CHECK(reason == SEAWALL_CANCEL_DEADLINE_EXCEEDED);
    /* Cancelled once: a later cancel keeps the first reason and runs nothing again. */
    CHECK_OK(seawall_cancel_token_cancel(t));
    CHECK_OK(seawall_cancel_token_reason(t, &reason));
    CHECK(reason == SEAWALL_CANCEL_DEADLINE_EXCEEDED);
    CHECK_U64(atomic_load(&a.calls), 1);
    /* A callback that ran cannot be removed any more. */
    CHECK_OK(seawall_cancel_token_remove_callback(t, id_a, &flag));
    CHECK(!flag);
    /* Registering on a cancelled token runs the callback at once, on this thread. */
    seen_t now = {0};
    CHECK_OK(seawall_cancel_token_on_cancel(t, record, &now, &id_late));
    CHECK_U64(atomic_load(&now.calls), 1);
    CHECK(now.reason == SEAWALL_CANCEL_DEADLINE_EXCEEDED);
    CHECK(pthread_equal(now.thread, pthread_self()));
    CHECK_OK(seawall_cancel_token_remove_callback(t, id_late, &flag));
    CHECK(!flag);
    seawall_timer_free(timer); /* fired: freeing only releases it */

    /* A timer freed before its deadline never cancels. */
    seen_t never = {0};
    CHECK_OK(seawall_cancel_token_new(&t2));
    CHECK_OK(seawall_cancel_token_on_cancel(t2, record, &never, NULL));
    CHECK_OK(seawall_deadline_after_ms(clock, 10, &d));
    CHECK_OK(seawall_cancel_token_cancel_at(t2, d, &timer2));
    seawall_timer_free(timer2);
    CHECK_OK(seawall_clock_advance_ms(clock, 1000));
    CHECK_OK(seawall_cancel_token_is_cancelled(t2, &flag));
    CHECK(!flag);
    CHECK_U64(atomic_load(&never.calls), 0);

    /* A deadline already past cancels at once (manual clock), on this thread. */
    seen_t at_once = {0};
    CHECK_OK(seawall_cancel_token_on_cancel(t2, record, &at_once, NULL));
    CHECK_OK(seawall_cancel_token_cancel_at(t2, d, &timer2));
    CHECK_U64(atomic_load(&at_once.calls), 1);
    CHECK(at_once.reason == SEAWALL_CANCEL_DEADLINE_EXCEEDED);
    CHECK_U64(atomic_load(&never.calls), 1); /* every callback of the token ran */
    seawall_timer_free(timer2);
    seawall_deadline_free(d);
    d = NULL;

    /* Freeing a token removes its callbacks: its timer may still fire, harmlessly. */
    seen_t orphan = {0};
    CHECK_OK(seawall_cancel_token_new(&t3));
    CHECK_OK(seawall_cancel_token_on_cancel(t3, record, &orphan, NULL));
    CHECK_OK(seawall_deadline_after_ms(clock, 5, &d));
    CHECK_OK(seawall_cancel_token_cancel_at(t3, d, &timer));
    seawall_cancel_token_free(t3);
    CHECK_OK(seawall_clock_advance_ms(clock, 10));
    CHECK_U64(atomic_load(&orphan.calls), 0);
    seawall_timer_free(timer);
    seawall_deadline_free(d);

    /* A callback may remove itself and free its token (cancelled by the clock's timer). */
    seen_t self = {0}, sibling = {0};
    CHECK_OK(seawall_cancel_token_new(&t3));
    CHECK_OK(seawall_cancel_token_on_cancel(t3, record, &self, &self.remove_id));
    CHECK_OK(seawall_cancel_token_on_cancel(t3, record, &sibling, NULL));
    self.remove_from = t3;
    self.free_me = t3;
    CHECK_OK(seawall_deadline_after_ms(clock, 5, &d));
    CHECK_OK(seawall_cancel_token_cancel_at(t3, d, &timer));
    CHECK_OK(seawall_clock_advance_ms(clock, 5));
    CHECK_U64(atomic_load(&self.calls), 1);
    CHECK_OK(self.inner_status);
    CHECK(!self.inner_removed); /* it was running: not removed */
    /* The sibling came after it and was removed with the token, before it ran. */
    CHECK_U64(atomic_load(&sibling.calls), 0);
    seawall_timer_free(timer);
    seawall_deadline_free(d);

    /* The same, cancelled by hand: the callback frees the token inside _cancel. */
    seen_t freer = {0};
    CHECK_OK(seawall_cancel_token_new(&t3));
    CHECK_OK(seawall_cancel_token_on_cancel(t3, record, &freer, NULL));
    freer.free_me = t3;
    CHECK_OK(seawall_cancel_token_cancel(t3));
    CHECK_U64(atomic_load(&freer.calls), 1);
    CHECK(freer.reason == SEAWALL_CANCEL_CANCELLED);

    seawall_cancel_token_free(t2);
    seawall_cancel_token_free(t);
    seawall_clock_free(clock);
}

/* Polls until `flag` is set or `limit_ms` passes; the time it took, or -1. */
static double wait_for(atomic_int *flag, double limit_ms) {
    double start = now_ms();
    while (!atomic_load(flag)) {
        if (now_ms() - start > limit_ms) return -1;
        sleep_ms(1);
    }
    return now_ms() - start;
}

static void system_clock_timer(void) {
    seawall_clock *sys = NULL;
    seawall_deadline *d = NULL;
    seawall_cancel_token *t = NULL;
    seawall_timer *timer = NULL;
    seen_t seen = {0};
    bool cancelled = false, expired = false;
    seawall_cancel_reason reason;
    CHECK_OK(seawall_system_clock_new(&sys));

    /* A 20 ms deadline cancels the token from the timer thread; up to 2 s to see it. */
    CHECK_OK(seawall_cancel_token_new(&t));
    CHECK_OK(seawall_cancel_token_on_cancel(t, record, &seen, NULL));
    double start = now_ms();
    CHECK_OK(seawall_deadline_after_ms(sys, 20, &d));
    CHECK_OK(seawall_cancel_token_cancel_at(t, d, &timer));
    while (!cancelled && now_ms() - start < 2000) {
        sleep_ms(1);
        CHECK_STATUS(seawall_cancel_token_is_cancelled(t, &cancelled), SEAWALL_OK);
    }
    double took = now_ms() - start;
    CHECK(cancelled);
    CHECK(took >= 19.0); /* not before the deadline (1 ms for clock granularity) */
    CHECK_OK(seawall_deadline_expired(d, &expired));
    CHECK(expired);
    CHECK_OK(seawall_cancel_token_reason(t, &reason));
    CHECK(reason == SEAWALL_CANCEL_DEADLINE_EXCEEDED);
    CHECK(wait_for(&seen.finished, 2000) >= 0);
    CHECK_U64(atomic_load(&seen.calls), 1);
    CHECK(seen.reason == SEAWALL_CANCEL_DEADLINE_EXCEEDED);
    CHECK(!pthread_equal(seen.thread, pthread_self())); /* the timer thread */
    printf("system clock: token cancelled by the timer thread %.1f ms after a 20 ms deadline\n", took);
    seawall_timer_free(timer);
    seawall_cancel_token_free(t);
    seawall_deadline_free(d);

    /* A timer freed before its deadline: the callback never runs. */
    seen_t never = {0};
    CHECK_OK(seawall_cancel_token_new(&t));
    CHECK_OK(seawall_cancel_token_on_cancel(t, record, &never, NULL));
    CHECK_OK(seawall_deadline_after_ms(sys, 50, &d));
    CHECK_OK(seawall_cancel_token_cancel_at(t, d, &timer));
    seawall_timer_free(timer);
    sleep_ms(150);
    CHECK_OK(seawall_deadline_expired(d, &expired));
    CHECK(expired);
    CHECK_OK(seawall_cancel_token_is_cancelled(t, &cancelled));
    CHECK(!cancelled);
    CHECK_U64(atomic_load(&never.calls), 0);
    seawall_cancel_token_free(t);
    seawall_deadline_free(d);

    /* A deadline already past on the system clock: cancelled very soon, by the timer thread. */
    seen_t soon = {0};
    CHECK_OK(seawall_cancel_token_new(&t));
    CHECK_OK(seawall_cancel_token_on_cancel(t, record, &soon, NULL));
    CHECK_OK(seawall_deadline_after_ms(sys, 0, &d));
    CHECK_OK(seawall_cancel_token_cancel_at(t, d, &timer));
    CHECK(wait_for(&soon.finished, 2000) >= 0);
    CHECK(soon.reason == SEAWALL_CANCEL_DEADLINE_EXCEEDED);
    seawall_timer_free(timer);
    seawall_cancel_token_free(t);
    seawall_deadline_free(d);

    seawall_clock_free(sys);
}

/* Removing a callback (or freeing its token) while it runs on the timer thread waits for it. */
static void removal_waits_for_a_running_callback(void) {
    seawall_clock *sys = NULL;
    seawall_deadline *d = NULL;
    seawall_cancel_token *t = NULL;
    seawall_timer *timer = NULL;
    uint64_t id = 0;
    bool removed = true;
    CHECK_OK(seawall_system_clock_new(&sys));
    CHECK_OK(seawall_deadline_after_ms(sys, 5, &d));

    seen_t slow = {.sleep_ms = 200};
    CHECK_OK(seawall_cancel_token_new(&t));
    CHECK_OK(seawall_cancel_token_on_cancel(t, record, &slow, &id));
    CHECK_OK(seawall_cancel_token_cancel_at(t, d, &timer));
    CHECK(wait_for(&slow.started, 2000) >= 0);
    CHECK_U64(atomic_load(&slow.finished), 0); /* still sleeping in the callback */
    CHECK_OK(seawall_cancel_token_remove_callback(t, id, &removed));
    CHECK(!removed);                              /* it ran */
    CHECK_U64(atomic_load(&slow.finished), 1);    /* and remove waited for it to end */
    seawall_timer_free(timer);
    seawall_cancel_token_free(t);

    seen_t slow2 = {.sleep_ms = 200};
    CHECK_OK(seawall_cancel_token_new(&t));
    CHECK_OK(seawall_cancel_token_on_cancel(t, record, &slow2, NULL));
    CHECK_OK(seawall_cancel_token_cancel_at(t, d, &timer));
    CHECK(wait_for(&slow2.started, 2000) >= 0);
    seawall_cancel_token_free(t); /* waits too */
    CHECK_U64(atomic_load(&slow2.finished), 1);
    seawall_timer_free(timer);

    seawall_deadline_free(d);
    seawall_clock_free(sys);
}

/* Many threads register callbacks and cancel one token at once: each callback runs once. */
#define THREADS 8
#define PER_THREAD 200
static seawall_cancel_token *shared_token;
static atomic_int shared_calls;
static atomic_int go;

static void count(seawall_cancel_reason reason, void *user_data) {
    (void)user_data;
    if (reason == SEAWALL_CANCEL_CANCELLED) atomic_fetch_add(&shared_calls, 1);
}

static void *hammer(void *arg) {
    long i = (long)(intptr_t)arg;
    while (!atomic_load(&go)) {
    }
    int failures = 0;
    for (int k = 0; k < PER_THREAD; k++) {
        if (seawall_cancel_token_on_cancel(shared_token, count, NULL, NULL) != SEAWALL_OK) failures++;
        if (i % 2 == 0 && k == PER_THREAD / 2 && seawall_cancel_token_cancel(shared_token) != SEAWALL_OK) failures++;
    }
    return (void *)(intptr_t)failures;
}

static void threads(void) {
    pthread_t th[THREADS];
    CHECK_OK(seawall_cancel_token_new(&shared_token));
    for (long i = 0; i < THREADS; i++) CHECK(pthread_create(&th[i], NULL, hammer, (void *)(intptr_t)i) == 0);
    atomic_store(&go, 1);
    long failures = 0;
    for (int i = 0; i < THREADS; i++) {
        void *f;
        CHECK(pthread_join(th[i], &f) == 0);
        failures += (long)(intptr_t)f;
    }
    CHECK_U64(failures, 0);
    CHECK_U64(atomic_load(&shared_calls), THREADS * PER_THREAD);
    seawall_cancel_token_free(shared_token);
}

int main(void) {
    names();
    null_arguments();
    bad_durations();
    manual_deadlines();
    buffers();
    manual_tokens();
    system_clock_timer();
    removal_waits_for_a_running_callback();
    threads();
    return check_report();
}
