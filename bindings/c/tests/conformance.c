/*
 * conformance.c: the C runner of the language-neutral breaker scenarios.
 *
 * Replays every JSON file in tests/conformance/breaker (format: tests/conformance/README.md)
 * against the C API on a manual clock, the same files the Rust, Python and Node runners
 * replay. A failing scenario does not stop the others; each failure is printed with its
 * file, step and expected vs actual value. The last line is "N passed, M failed"; the exit
 * status is non-zero when a scenario failed or when no scenario file was found.
 *
 * Usage: conformance [DIR]   (default: $SEAWALL_CONFORMANCE_DIR, else tests/conformance/breaker)
 * Build: gcc conformance.c $(pkg-config --cflags --libs seawall libcjson)
 */
#define _POSIX_C_SOURCE 200809L

#include "conformance_common.h"

#define RATE_EPSILON 1e-9
#define MAX_PERMITS 256
#define MAX_EVENTS 1024

typedef struct {
    char from[32], to[32], reason[64], breaker[256];
    uint64_t at_ms;
} event_rec;

typedef struct {
    char name[64];
    seawall_permit *permit;
    int done; /* an outcome was recorded (or it was cancelled) */
} named_permit;

typedef struct {
    conformance_run base; /* first: step, clock and failure message (conformance_common.h) */
    const char *breaker_name;
    seawall_breaker *breaker;
    named_permit permits[MAX_PERMITS];
    int npermits;
    event_rec events[MAX_EVENTS];
    int nevents;
    int overflow;
} run_t;

static void copy(char *dst, size_t n, const char *src) {
    snprintf(dst, n, "%s", src ? src : "(null)");
}

static void on_event(const seawall_state_change *e, void *user_data) {
    run_t *r = user_data;
    if (r->nevents == MAX_EVENTS) {
        r->overflow = 1;
        return;
    }
    event_rec *rec = &r->events[r->nevents++];
    copy(rec->from, sizeof rec->from, seawall_state_name(e->from));
    copy(rec->to, sizeof rec->to, seawall_state_name(e->to));
    copy(rec->reason, sizeof rec->reason, e->reason);
    copy(rec->breaker, sizeof rec->breaker, e->breaker);
    rec->at_ms = e->at_ms;
}

/* A whole number of milliseconds (C takes durations as uint64_t ms). */
static int millis(run_t *r, const cJSON *v, const char *what, uint64_t *out) {
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9e15 ||
        v->valuedouble != floor(v->valuedouble))
        return failf(r, "%s must be a whole, non-negative number of ms (C takes uint64_t ms)", what);
    *out = (uint64_t)v->valuedouble;
    return 0;
}

/* An expected retry_after_ms: a number of ms, or "inf" (UINT64_MAX in C). */
static int expected_retry(run_t *r, const cJSON *v, uint64_t *out) {
    if (cJSON_IsString(v) && strcmp(v->valuestring, "inf") == 0) {
        *out = UINT64_MAX;
        return 0;
    }
    return millis(r, v, "retry_after_ms", out);
}

static void show_ms(char *buf, size_t n, uint64_t ms) {
    if (ms == UINT64_MAX)
        snprintf(buf, n, "\"inf\"");
    else
        snprintf(buf, n, "%llu", (unsigned long long)ms);
}

/* Sets one config option the way a C user would: the JSON type picks the setter. */
static int set_option(run_t *r, seawall_breaker_config *cfg, const cJSON *kv, seawall_status *status) {
    option_t o;
    if (config_option(r, kv, &o)) return -1;
    switch (o.kind) {
    case OPTION_BOOL: *status = seawall_breaker_config_set_bool(cfg, o.key, o.b); break;
    case OPTION_INT: *status = seawall_breaker_config_set_int(cfg, o.key, o.i); break;
    case OPTION_DOUBLE: *status = seawall_breaker_config_set_double(cfg, o.key, o.d); break;
    case OPTION_STR: *status = seawall_breaker_config_set_str(cfg, o.key, o.s); break;
    }
    return 0;
}

/* Builds the breaker through the C API; *status is the first non-OK status (or OK). */
static int build(conformance_run *run, const cJSON *config, seawall_status *status) {
    run_t *r = (run_t *)run;
    seawall_breaker_config *cfg = NULL;
    *status = seawall_breaker_config_new(&cfg);
    if (*status != SEAWALL_OK) return failf(r, "seawall_breaker_config_new: %s", seawall_last_error());
    int rc = 0;
    for (const cJSON *kv = config->child; kv && *status == SEAWALL_OK && rc == 0; kv = kv->next)
        rc = set_option(r, cfg, kv, status);
    if (rc == 0 && *status == SEAWALL_OK) *status = seawall_breaker_config_set_clock(cfg, r->base.clock);
    if (rc == 0 && *status == SEAWALL_OK) *status = seawall_breaker_new(cfg, &r->breaker);
    seawall_breaker_config_free(cfg);
    return rc;
}

static named_permit *find_permit(run_t *r, const char *name) {
    for (int i = 0; i < r->npermits; i++)
        if (strcmp(r->permits[i].name, name) == 0) return &r->permits[i];
    return NULL;
}

/* Records `outcome` on `p` (or cancels it); *status receives the C status. */
static int apply(run_t *r, seawall_permit *p, const char *outcome, uint64_t ms, seawall_status *status) {
    if (strcmp(outcome, "success") == 0)
        *status = seawall_permit_success(p, ms);
    else if (strcmp(outcome, "failure") == 0)
        *status = seawall_permit_failure(p, ms);
    else if (strcmp(outcome, "timeout") == 0)
        *status = seawall_permit_timeout(p, ms);
    else if (strcmp(outcome, "ignore") == 0)
        *status = seawall_permit_ignore(p);
    else if (strcmp(outcome, "cancel") == 0)
        *status = seawall_permit_cancel(p);
    else
        return failf(r, "unknown outcome \"%s\"", outcome);
    return 0;
}

static int step_acquire(run_t *r, const cJSON *s) {
    static const char *const keys[] = {"acquire", "expect", "retry_after_ms", "rejected_state", NULL};
    if (check_keys(r, s, keys)) return -1;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(s, "acquire");
    const cJSON *expect = cJSON_GetObjectItemCaseSensitive(s, "expect");
    if (!cJSON_IsString(name) || strlen(name->valuestring) >= sizeof r->permits[0].name)
        return failf(r, "acquire: the permit name must be a (short) string");
    if (!cJSON_IsString(expect) ||
        (strcmp(expect->valuestring, "permit") != 0 && strcmp(expect->valuestring, "rejected") != 0))
        return failf(r, "acquire: \"expect\" must be \"permit\" or \"rejected\"");
    const char *n = name->valuestring;
    seawall_permit *p = (seawall_permit *)1; /* must be overwritten */
    seawall_rejection rej = {SEAWALL_STATE_CLOSED, 12345};
    seawall_status st = seawall_breaker_try_acquire(r->breaker, &p, &rej);
    char ms[32];
    if (strcmp(expect->valuestring, "permit") == 0) {
        if (cJSON_GetObjectItemCaseSensitive(s, "retry_after_ms") || cJSON_GetObjectItemCaseSensitive(s, "rejected_state"))
            return failf(r, "retry_after_ms / rejected_state only go with \"expect\": \"rejected\"");
        if (st != SEAWALL_OK) {
            show_ms(ms, sizeof ms, rej.retry_after_ms);
            return failf(r, "acquire \"%s\": expected a permit, got %s (state %s, retry_after_ms %s)", n,
                         seawall_status_name(st), seawall_state_name(rej.state), ms);
        }
        if (p == NULL) return failf(r, "acquire \"%s\": SEAWALL_OK but the permit is NULL", n);
        named_permit *old = find_permit(r, n);
        if (old && !old->done) {
            seawall_permit_free(p);
            return failf(r, "permit \"%s\" is still outstanding; use another name", n);
        }
        if (!old) {
            if (r->npermits == MAX_PERMITS) {
                seawall_permit_free(p);
                return failf(r, "too many permits");
            }
            old = &r->permits[r->npermits++];
            copy(old->name, sizeof old->name, n);
        } else {
            seawall_permit_free(old->permit);
        }
        old->permit = p;
        old->done = 0;
        return 0;
    }
    /* expect rejected */
    if (st == SEAWALL_OK) {
        bool probe = false;
        seawall_permit_is_probe(p, &probe);
        seawall_permit_free(p);
        return failf(r, "acquire \"%s\": expected a rejection, got a permit%s", n, probe ? " (a half-open probe)" : "");
    }
    if (st != SEAWALL_E_BREAKER_OPEN)
        return failf(r, "acquire \"%s\": expected SEAWALL_E_BREAKER_OPEN, got %s: %s", n, seawall_status_name(st),
                     seawall_last_error());
    if (p != NULL) return failf(r, "acquire \"%s\": rejected, but *out_permit was not set to NULL", n);
    const cJSON *retry = cJSON_GetObjectItemCaseSensitive(s, "retry_after_ms");
    if (retry) {
        uint64_t want;
        if (expected_retry(r, retry, &want)) return -1;
        if (want != rej.retry_after_ms) {
            char w[32];
            show_ms(w, sizeof w, want);
            show_ms(ms, sizeof ms, rej.retry_after_ms);
            return failf(r, "acquire \"%s\": expected retry_after_ms %s, got %s", n, w, ms);
        }
    }
    const cJSON *state = cJSON_GetObjectItemCaseSensitive(s, "rejected_state");
    if (state) {
        if (!cJSON_IsString(state)) return failf(r, "rejected_state must be a string");
        if (strcmp(state->valuestring, seawall_state_name(rej.state)) != 0)
            return failf(r, "acquire \"%s\": expected rejected_state %s, got %s", n, state->valuestring,
                         seawall_state_name(rej.state));
    }
    char quoted[300];
    snprintf(quoted, sizeof quoted, "'%s'", r->breaker_name);
    if (!strstr(seawall_last_error(), quoted))
        return failf(r, "the rejection message does not name breaker %s: %s", quoted, seawall_last_error());
    return 0;
}

static int duration_of(run_t *r, const cJSON *s, uint64_t *ms) {
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(s, "duration_ms");
    *ms = 0;
    return d ? millis(r, d, "duration_ms", ms) : 0;
}

static int step_record(run_t *r, const cJSON *s) {
    static const char *const keys[] = {"record", "outcome", "duration_ms", "expect_error", NULL};
    if (check_keys(r, s, keys)) return -1;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(s, "record");
    const cJSON *outcome = cJSON_GetObjectItemCaseSensitive(s, "outcome");
    const cJSON *expect_error = cJSON_GetObjectItemCaseSensitive(s, "expect_error");
    if (!cJSON_IsString(name)) return failf(r, "record: the permit name must be a string");
    if (!cJSON_IsString(outcome)) return failf(r, "record: \"outcome\" (a string) is required");
    if (expect_error && !cJSON_IsString(expect_error)) return failf(r, "expect_error must be a string");
    uint64_t ms;
    if (duration_of(r, s, &ms)) return -1;
    named_permit *np = find_permit(r, name->valuestring);
    if (!np) return failf(r, "record: no permit named \"%s\" was acquired", name->valuestring);
    seawall_status st;
    if (apply(r, np->permit, outcome->valuestring, ms, &st)) return -1;
    if (st == SEAWALL_OK) np->done = 1;
    const char *got = seawall_status_name(st);
    if (!expect_error) {
        if (st != SEAWALL_OK)
            return failf(r, "record \"%s\" %s: expected success, got error %s: %s", name->valuestring,
                         outcome->valuestring, got, seawall_last_error());
        return 0;
    }
    if (st == SEAWALL_OK)
        return failf(r, "record \"%s\" %s: expected error %s, but it was accepted", name->valuestring,
                     outcome->valuestring, expect_error->valuestring);
    if (strcmp(got, expect_error->valuestring) != 0)
        return failf(r, "record \"%s\" %s: expected error %s, got %s", name->valuestring, outcome->valuestring,
                     expect_error->valuestring, got);
    return 0;
}

static int step_call(run_t *r, const cJSON *s) {
    static const char *const keys[] = {"call", "duration_ms", "times", NULL};
    if (check_keys(r, s, keys)) return -1;
    const cJSON *outcome = cJSON_GetObjectItemCaseSensitive(s, "call");
    if (!cJSON_IsString(outcome)) return failf(r, "call: the outcome must be a string");
    uint64_t ms, times = 1;
    if (duration_of(r, s, &ms)) return -1;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(s, "times");
    if (t && (millis(r, t, "times", &times) || times < 1)) return failf(r, "times must be a whole number >= 1");
    for (uint64_t i = 1; i <= times; i++) {
        seawall_permit *p = NULL;
        seawall_rejection rej = {SEAWALL_STATE_CLOSED, 0};
        seawall_status st = seawall_breaker_try_acquire(r->breaker, &p, &rej);
        if (st != SEAWALL_OK) {
            char w[32];
            show_ms(w, sizeof w, rej.retry_after_ms);
            return failf(r, "call %s #%llu of %llu: expected a permit, got %s (state %s, retry_after_ms %s)",
                         outcome->valuestring, (unsigned long long)i, (unsigned long long)times,
                         seawall_status_name(st), seawall_state_name(rej.state), w);
        }
        int rc = apply(r, p, outcome->valuestring, ms, &st);
        seawall_permit_free(p);
        if (rc) return -1;
        if (st != SEAWALL_OK)
            return failf(r, "call %s #%llu of %llu: the outcome was refused with %s", outcome->valuestring,
                         (unsigned long long)i, (unsigned long long)times, seawall_status_name(st));
    }
    return 0;
}

static int snapshot_field(run_t *r, const seawall_snapshot *snap, const cJSON *want, char *wrong, size_t n) {
    const char *f = want->string;
    const struct {
        const char *name;
        uint64_t value;
    } counts[] = {
        {"successes", snap->successes},
        {"failures", snap->failures},
        {"slow", snap->slow},
        {"ignored", snap->ignored},
        {"rejected", snap->rejected},
        {"timeouts", snap->timeouts},
        {"window_calls", snap->window_calls},
        {"consecutive_failures", snap->consecutive_failures},
        {"half_open_in_flight", snap->half_open_in_flight},
    };
    size_t used = strlen(wrong);
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        if (strcmp(f, counts[i].name) != 0) continue;
        uint64_t w;
        if (millis(r, want, f, &w)) return failf(r, "snapshot field %s must be a whole number", f);
        if (w != counts[i].value)
            snprintf(wrong + used, n - used, "%s: expected %llu, got %llu; ", f, (unsigned long long)w,
                     (unsigned long long)counts[i].value);
        return 0;
    }
    if (strcmp(f, "failure_rate") == 0 || strcmp(f, "slow_call_rate") == 0) {
        double actual = f[0] == 'f' ? snap->failure_rate : snap->slow_call_rate;
        if (!cJSON_IsNumber(want)) return failf(r, "snapshot field %s must be a number", f);
        if (fabs(want->valuedouble - actual) > RATE_EPSILON)
            snprintf(wrong + used, n - used, "%s: expected %.17g, got %.17g; ", f, want->valuedouble, actual);
        return 0;
    }
    if (strcmp(f, "state") == 0) {
        if (!cJSON_IsString(want)) return failf(r, "snapshot field state must be a string");
        if (strcmp(want->valuestring, seawall_state_name(snap->state)) != 0)
            snprintf(wrong + used, n - used, "state: expected %s, got %s; ", want->valuestring,
                     seawall_state_name(snap->state));
        return 0;
    }
    if (strcmp(f, "retry_after_ms") == 0) {
        uint64_t w;
        if (expected_retry(r, want, &w)) return -1;
        if (w != snap->retry_after_ms) {
            char a[32], b[32];
            show_ms(a, sizeof a, w);
            show_ms(b, sizeof b, snap->retry_after_ms);
            snprintf(wrong + used, n - used, "retry_after_ms: expected %s, got %s; ", a, b);
        }
        return 0;
    }
    return failf(r, "unknown snapshot field \"%s\"", f);
}

static int step_expect_snapshot(run_t *r, const cJSON *s) {
    static const char *const keys[] = {"expect_snapshot", NULL};
    if (check_keys(r, s, keys)) return -1;
    const cJSON *expected = cJSON_GetObjectItemCaseSensitive(s, "expect_snapshot");
    if (!cJSON_IsObject(expected)) return failf(r, "expect_snapshot must be an object");
    seawall_snapshot snap;
    seawall_status st = seawall_breaker_snapshot(r->breaker, &snap);
    if (st != SEAWALL_OK) return failf(r, "seawall_breaker_snapshot: %s", seawall_last_error());
    if (strcmp(snap.name, r->breaker_name) != 0)
        return failf(r, "snapshot name is \"%s\", expected \"%s\"", snap.name, r->breaker_name);
    char wrong[2048] = "";
    for (const cJSON *f = expected->child; f; f = f->next)
        if (snapshot_field(r, &snap, f, wrong, sizeof wrong)) return -1;
    if (wrong[0]) return failf(r, "expect_snapshot: %s", wrong);
    return 0;
}

static void append(char *buf, size_t n, const char *from, const char *to, const char *at, const char *reason) {
    size_t used = strlen(buf);
    snprintf(buf + used, n - used, "%s{from: %s, to: %s, at_ms: %s, reason: %s}", used > 1 ? ", " : "", from, to,
             at, reason);
}

static int step_expect_events(run_t *r, const cJSON *s) {
    static const char *const keys[] = {"expect_events", NULL};
    static const char *const event_keys[] = {"from", "to", "at_ms", "reason", NULL};
    if (check_keys(r, s, keys)) return -1;
    const cJSON *expected = cJSON_GetObjectItemCaseSensitive(s, "expect_events");
    if (!cJSON_IsArray(expected)) return failf(r, "expect_events must be an array");
    if (r->overflow) return failf(r, "more than %d events", MAX_EVENTS);
    char want[8192] = "[", got[8192] = "[";
    for (const cJSON *e = expected->child; e; e = e->next) {
        if (!cJSON_IsObject(e)) return failf(r, "each expected event must be an object");
        if (check_keys(r, e, event_keys)) return -1;
        const char *k[] = {"from", "to", "reason"};
        const char *v[3];
        for (int i = 0; i < 3; i++) {
            const cJSON *x = cJSON_GetObjectItemCaseSensitive(e, k[i]);
            if (!cJSON_IsString(x)) return failf(r, "an expected event needs \"%s\" (a string)", k[i]);
            v[i] = x->valuestring;
        }
        uint64_t at;
        if (millis(r, cJSON_GetObjectItemCaseSensitive(e, "at_ms"), "at_ms", &at)) return -1;
        char at_s[32];
        show_ms(at_s, sizeof at_s, at);
        append(want, sizeof want, v[0], v[1], at_s, v[2]);
    }
    for (int i = 0; i < r->nevents; i++) {
        const event_rec *e = &r->events[i];
        if (strcmp(e->breaker, r->breaker_name) != 0)
            return failf(r, "an event names breaker \"%s\", expected \"%s\"", e->breaker, r->breaker_name);
        char at_s[32];
        show_ms(at_s, sizeof at_s, e->at_ms);
        append(got, sizeof got, e->from, e->to, at_s, e->reason);
    }
    strncat(want, "]", sizeof want - strlen(want) - 1);
    strncat(got, "]", sizeof got - strlen(got) - 1);
    if (strcmp(want, got) != 0) return failf(r, "expect_events:\n      expected %s\n      got      %s", want, got);
    return 0;
}

static int step(conformance_run *run, const cJSON *s) {
    run_t *r = (run_t *)run;
    if (!cJSON_IsObject(s)) return failf(r, "a step must be an object");
    if (cJSON_GetObjectItemCaseSensitive(s, "acquire")) return step_acquire(r, s);
    if (cJSON_GetObjectItemCaseSensitive(s, "record")) return step_record(r, s);
    if (cJSON_GetObjectItemCaseSensitive(s, "call")) return step_call(r, s);
    if (cJSON_GetObjectItemCaseSensitive(s, "expect_snapshot")) return step_expect_snapshot(r, s);
    if (cJSON_GetObjectItemCaseSensitive(s, "expect_events")) return step_expect_events(r, s);
    const cJSON *v;
    if ((v = cJSON_GetObjectItemCaseSensitive(s, "advance_ms"))) {
        static const char *const keys[] = {"advance_ms", NULL};
        uint64_t ms;
        if (check_keys(r, s, keys) || millis(r, v, "advance_ms", &ms)) return -1;
        if (seawall_clock_advance_ms(r->base.clock, ms) != SEAWALL_OK)
            return failf(r, "seawall_clock_advance_ms: %s", seawall_last_error());
        return 0;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(s, "expect_state"))) {
        static const char *const keys[] = {"expect_state", NULL};
        if (check_keys(r, s, keys)) return -1;
        if (!cJSON_IsString(v)) return failf(r, "expect_state must be a string");
        seawall_state state;
        if (seawall_breaker_state(r->breaker, &state) != SEAWALL_OK)
            return failf(r, "seawall_breaker_state: %s", seawall_last_error());
        if (strcmp(v->valuestring, seawall_state_name(state)) != 0)
            return failf(r, "expect_state: expected %s, got %s", v->valuestring, seawall_state_name(state));
        return 0;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(s, "action"))) {
        static const char *const keys[] = {"action", NULL};
        if (check_keys(r, s, keys)) return -1;
        const char *a = cJSON_IsString(v) ? v->valuestring : "";
        seawall_status st;
        if (strcmp(a, "force_open") == 0)
            st = seawall_breaker_force_open(r->breaker);
        else if (strcmp(a, "disable") == 0)
            st = seawall_breaker_disable(r->breaker);
        else if (strcmp(a, "reset") == 0)
            st = seawall_breaker_reset(r->breaker);
        else
            return failf(r, "unknown action \"%s\"", a);
        if (st != SEAWALL_OK) return failf(r, "action %s: %s", a, seawall_last_error());
        return 0;
    }
    char *text = cJSON_PrintUnformatted(s);
    failf(r, "unknown step kind: %s", text ? text : "?");
    free(text);
    return -1;
}

/* The breaker's name (checked in rejections and events) and its state-change listener. */
static int ready(conformance_run *run, const cJSON *config) {
    run_t *r = (run_t *)run;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(config, "name");
    r->breaker_name = cJSON_IsString(name) ? name->valuestring : "";
    if (seawall_breaker_on_state_change(r->breaker, on_event, r, NULL) != SEAWALL_OK)
        return failf(r, "seawall_breaker_on_state_change: %s", seawall_last_error());
    return 0;
}

static void release(conformance_run *run) {
    run_t *r = (run_t *)run;
    for (int i = 0; i < r->npermits; i++) seawall_permit_free(r->permits[i].permit);
    seawall_breaker_free(r->breaker);
}

static const conformance_runner runner = {"breaker", sizeof(run_t), build, ready, step, release};

static int run_file(const char *dir, const char *file) {
    return conformance_run_file(&runner, dir, file);
}

int main(int argc, char **argv) {
    return conformance_main(argc, argv, "conformance", "SEAWALL_CONFORMANCE_DIR", "tests/conformance/breaker",
                            "breaker", run_file);
}
