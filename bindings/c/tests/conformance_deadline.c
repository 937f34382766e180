/*
 * conformance_deadline.c: the C runner of the language-neutral deadline scenarios.
 *
 * Replays every JSON file in tests/conformance/deadline (format: tests/conformance/README.md,
 * "Deadline scenarios") against the C API on manual clocks, the same files the Rust, Python
 * and Node runners replay. Every step runs, the bad-duration ones included: C passes
 * durations as double milliseconds, so "NaN", "Infinity", "-Infinity" and negative values
 * reach the core's checks as they are. Each token also carries a cancel callback, checked
 * at every "expect_token": it ran exactly once, with the token's reason, iff the token is
 * cancelled (so a timer fired by seawall_clock_advance_ms ran it before the call returned).
 *
 * A failing scenario does not stop the others; each failure is printed with its file, step
 * and expected vs actual value. The last line is "N passed, M failed"; the exit status is
 * non-zero when a scenario failed or when no scenario file was found.
 *
 * Usage: conformance_deadline [DIR]
 *        (default: $SEAWALL_CONFORMANCE_DEADLINE_DIR, else tests/conformance/deadline)
 * Build: gcc conformance_deadline.c $(pkg-config --cflags --libs seawall libcjson) -lm
 */
#define _POSIX_C_SOURCE 200809L

#include "conformance_common.h"

#define MAX_NAMED 64
#define MAX_TIMERS 256
#define MS_EPSILON 1e-9

typedef struct {
    char name[64];
    seawall_clock *clock;
} named_clock;

typedef struct {
    char name[64];
    seawall_deadline *deadline;
} named_deadline;

typedef struct {
    char name[64];
    seawall_cancel_token *token;
    int calls;                     /* how many times its cancel callback ran */
    seawall_cancel_reason seen;    /* the reason the callback received */
} named_token;

typedef struct {
    conformance_run base; /* first: the failure message (conformance_common.h) */
    named_clock clocks[MAX_NAMED];
    int nclocks;
    named_deadline deadlines[MAX_NAMED];
    int ndeadlines;
    named_token tokens[MAX_NAMED];
    int ntokens;
    seawall_timer *timers[MAX_TIMERS];
    int ntimers;
} run_t;

static int name_of(run_t *r, const cJSON *v, const char *what, const char **out) {
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= 64)
        return failf(r, "%s must be a name (a string of at most 63 bytes)", what);
    *out = v->valuestring;
    return 0;
}

/* The clock named by the step's "clock" key, "main" when absent. */
static int clock_of(run_t *r, const cJSON *s, seawall_clock **out) {
    const cJSON *c = get(s, "clock");
    const char *name = "main";
    if (c && name_of(r, c, "clock", &name)) return -1;
    for (int i = 0; i < r->nclocks; i++)
        if (strcmp(r->clocks[i].name, name) == 0) {
            *out = r->clocks[i].clock;
            return 0;
        }
    return failf(r, "no clock \"%s\"", name);
}

static int add_clock(run_t *r, const char *name) {
    if (r->nclocks == MAX_NAMED) return failf(r, "too many clocks");
    named_clock *c = &r->clocks[r->nclocks];
    if (seawall_manual_clock_new(&c->clock) != SEAWALL_OK)
        return failf(r, "seawall_manual_clock_new: %s", seawall_last_error());
    snprintf(c->name, sizeof c->name, "%s", name);
    r->nclocks++;
    return 0;
}

static named_deadline *find_deadline(run_t *r, const char *name) {
    for (int i = 0; i < r->ndeadlines; i++)
        if (strcmp(r->deadlines[i].name, name) == 0) return &r->deadlines[i];
    return NULL;
}

static int deadline_of(run_t *r, const cJSON *v, seawall_deadline **out) {
    const char *name = "";
    if (name_of(r, v, "a deadline name", &name)) return -1;
    named_deadline *d = find_deadline(r, name);
    if (!d) return failf(r, "no deadline \"%s\"", name);
    *out = d->deadline;
    return 0;
}

/* Stores `d` under `name`, replacing (and freeing) a deadline of that name. */
static int put_deadline(run_t *r, const char *name, seawall_deadline *d) {
    named_deadline *slot = find_deadline(r, name);
    if (slot) {
        seawall_deadline_free(slot->deadline);
    } else {
        if (r->ndeadlines == MAX_NAMED) {
            seawall_deadline_free(d);
            return failf(r, "too many deadlines");
        }
        slot = &r->deadlines[r->ndeadlines++];
        snprintf(slot->name, sizeof slot->name, "%s", name);
    }
    slot->deadline = d;
    return 0;
}

static named_token *find_token(run_t *r, const char *name) {
    for (int i = 0; i < r->ntokens; i++)
        if (strcmp(r->tokens[i].name, name) == 0) return &r->tokens[i];
    return NULL;
}

static int token_of(run_t *r, const cJSON *v, named_token **out) {
    const char *name = "";
    if (name_of(r, v, "a token name", &name)) return -1;
    *out = find_token(r, name);
    if (!*out) return failf(r, "no token \"%s\"", name);
    return 0;
}

static void on_cancel(seawall_cancel_reason reason, void *user_data) {
    named_token *t = user_data;
    t->calls++;
    t->seen = reason;
}

/* A duration in ms as C passes it: a JSON number, or "NaN" / "Infinity" / "-Infinity". */
static int duration_ms(run_t *r, const cJSON *v, const char *what, double *out) {
    if (cJSON_IsNumber(v)) {
        *out = v->valuedouble;
        return 0;
    }
    if (cJSON_IsString(v)) {
        if (strcmp(v->valuestring, "NaN") == 0) *out = NAN;
        else if (strcmp(v->valuestring, "Infinity") == 0) *out = INFINITY;
        else if (strcmp(v->valuestring, "-Infinity") == 0) *out = -INFINITY;
        else return failf(r, "%s: unknown number \"%s\"", what, v->valuestring);
        return 0;
    }
    return failf(r, "%s must be a number or \"NaN\", \"Infinity\", \"-Infinity\"", what);
}

static int whole_ms(run_t *r, const cJSON *v, const char *what, uint64_t *out) {
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9e15 || v->valuedouble != floor(v->valuedouble))
        return failf(r, "%s must be a whole, non-negative number of ms", what);
    *out = (uint64_t)v->valuedouble;
    return 0;
}

/* {"expect": {"d1": {"remaining_ms": 150, "expired": false, "grpc": "150000u"}}} */
static int expect_deadlines(run_t *r, const cJSON *exp) {
    if (!cJSON_IsObject(exp)) return failf(r, "expect must map deadline names to fields");
    char wrong[2048] = "";
    size_t used = 0;
    for (const cJSON *kv = exp->child; kv; kv = kv->next) {
        named_deadline *nd = find_deadline(r, kv->string);
        if (!nd) return failf(r, "no deadline \"%s\"", kv->string);
        if (!cJSON_IsObject(kv)) return failf(r, "expect.%s must be an object", kv->string);
        for (const cJSON *f = kv->child; f; f = f->next) {
            used = strlen(wrong);
            if (strcmp(f->string, "remaining_ms") == 0) {
                uint64_t want, got;
                if (whole_ms(r, f, "remaining_ms", &want)) return -1;
                if (seawall_deadline_remaining_ms(nd->deadline, &got) != SEAWALL_OK)
                    return failf(r, "seawall_deadline_remaining_ms: %s", seawall_last_error());
                if (got != want)
                    snprintf(wrong + used, sizeof wrong - used, "%s.remaining_ms: expected %llu, got %llu; ",
                             kv->string, (unsigned long long)want, (unsigned long long)got);
            } else if (strcmp(f->string, "expired") == 0) {
                bool got;
                if (!cJSON_IsBool(f)) return failf(r, "expired must be a boolean");
                if (seawall_deadline_expired(nd->deadline, &got) != SEAWALL_OK)
                    return failf(r, "seawall_deadline_expired: %s", seawall_last_error());
                if (got != (bool)cJSON_IsTrue(f))
                    snprintf(wrong + used, sizeof wrong - used, "%s.expired: expected %s, got %s; ", kv->string,
                             cJSON_IsTrue(f) ? "true" : "false", got ? "true" : "false");
            } else if (strcmp(f->string, "grpc") == 0) {
                char buf[SEAWALL_GRPC_TIMEOUT_BUFSIZE];
                if (!cJSON_IsString(f)) return failf(r, "grpc must be a string");
                if (seawall_deadline_to_grpc_timeout(nd->deadline, buf, sizeof buf) != SEAWALL_OK)
                    return failf(r, "seawall_deadline_to_grpc_timeout: %s", seawall_last_error());
                if (strcmp(buf, f->valuestring) != 0)
                    snprintf(wrong + used, sizeof wrong - used, "%s.grpc: expected \"%s\", got \"%s\"; ",
                             kv->string, f->valuestring, buf);
            } else {
                return failf(r, "unknown deadline field \"%s\"", f->string);
            }
        }
    }
    if (wrong[0]) return failf(r, "%s", wrong);
    return 0;
}

/* {"expect_token": {"t1": null | "cancelled" | "deadline_exceeded"}} */
static int expect_tokens(run_t *r, const cJSON *exp) {
    if (!cJSON_IsObject(exp)) return failf(r, "expect_token must map token names to states");
    char wrong[2048] = "";
    size_t used = 0;
    for (const cJSON *kv = exp->child; kv; kv = kv->next) {
        named_token *t = find_token(r, kv->string);
        if (!t) return failf(r, "no token \"%s\"", kv->string);
        if (!cJSON_IsNull(kv) && !cJSON_IsString(kv))
            return failf(r, "expect_token.%s must be null or a reason", kv->string);
        const char *want = cJSON_IsNull(kv) ? "null" : kv->valuestring;
        seawall_cancel_reason reason;
        bool cancelled;
        if (seawall_cancel_token_reason(t->token, &reason) != SEAWALL_OK ||
            seawall_cancel_token_is_cancelled(t->token, &cancelled) != SEAWALL_OK)
            return failf(r, "reading token %s: %s", kv->string, seawall_last_error());
        const char *got = reason == SEAWALL_CANCEL_NONE ? "null" : seawall_cancel_reason_name(reason);
        used = strlen(wrong);
        if (strcmp(got, want) != 0)
            snprintf(wrong + used, sizeof wrong - used, "token %s: expected %s, got %s; ", kv->string, want, got);
        else if (cancelled != (reason != SEAWALL_CANCEL_NONE))
            snprintf(wrong + used, sizeof wrong - used, "token %s: is_cancelled %d disagrees with reason %s; ",
                     kv->string, cancelled, got);
        else if (t->calls != (cancelled ? 1 : 0) || (cancelled && t->seen != reason))
            snprintf(wrong + used, sizeof wrong - used,
                     "token %s (%s): its callback ran %d times (want %d) with reason %s; ", kv->string, got,
                     t->calls, cancelled ? 1 : 0, seawall_cancel_reason_name(t->seen));
    }
    if (wrong[0]) return failf(r, "%s", wrong);
    return 0;
}

/* Runs one step. Returns -1 on a runner or expectation failure (r->base.msg says why);
 * otherwise 0, with *api the status of the API call the step makes (for "expect_error"). */
static int step(run_t *r, const cJSON *s, seawall_status *api) {
    *api = SEAWALL_OK;
    if (!cJSON_IsObject(s)) return failf(r, "a step must be an object");
    const cJSON *v;
    if ((v = get(s, "clock")) && cJSON_GetArraySize(s) == 1) {
        const char *name = "";
        if (name_of(r, v, "clock", &name)) return -1;
        return add_clock(r, name);
    }
    if ((v = get(s, "advance_ms"))) {
        static const char *const keys[] = {"advance_ms", "clock", NULL};
        seawall_clock *c;
        uint64_t ms;
        if (check_keys(r, s, keys) || clock_of(r, s, &c) || whole_ms(r, v, "advance_ms", &ms)) return -1;
        if (seawall_clock_advance_ms(c, ms) != SEAWALL_OK)
            return failf(r, "seawall_clock_advance_ms: %s", seawall_last_error());
        return 0;
    }
    if ((v = get(s, "deadline"))) {
        static const char *const keys[] = {"deadline", "after_ms", "grpc", "clock", "expect_error", NULL};
        const char *name = "";
        seawall_clock *c;
        seawall_deadline *d = NULL;
        if (check_keys(r, s, keys) || name_of(r, v, "deadline", &name) || clock_of(r, s, &c)) return -1;
        const cJSON *after = get(s, "after_ms"), *grpc = get(s, "grpc");
        if (!after == !grpc) return failf(r, "a deadline needs after_ms or grpc (one of them)");
        if (after) {
            double ms;
            if (duration_ms(r, after, "after_ms", &ms)) return -1;
            *api = seawall_deadline_after_ms(c, ms, &d);
        } else {
            if (!cJSON_IsString(grpc)) return failf(r, "grpc must be a string");
            *api = seawall_deadline_from_grpc_timeout(c, grpc->valuestring, &d);
        }
        if (*api != SEAWALL_OK) {
            if (d != NULL) return failf(r, "a failed call wrote a deadline");
            return 0;
        }
        return put_deadline(r, name, d);
    }
    if ((v = get(s, "grpc_format_ms"))) {
        static const char *const keys[] = {"grpc_format_ms", "expect", "expect_error", NULL};
        const cJSON *want = get(s, "expect");
        double ms;
        char buf[SEAWALL_GRPC_TIMEOUT_BUFSIZE];
        if (check_keys(r, s, keys) || duration_ms(r, v, "grpc_format_ms", &ms)) return -1;
        *api = seawall_grpc_timeout_format_ms(ms, buf, sizeof buf);
        if (*api != SEAWALL_OK) return 0;
        if (!cJSON_IsString(want)) return failf(r, "grpc_format_ms needs expect (a string)");
        if (strcmp(buf, want->valuestring) != 0)
            return failf(r, "grpc_format_ms %g: expected \"%s\", got \"%s\"", ms, want->valuestring, buf);
        return 0;
    }
    if ((v = get(s, "expect"))) {
        static const char *const keys[] = {"expect", NULL};
        if (check_keys(r, s, keys)) return -1;
        return expect_deadlines(r, v);
    }
    if ((v = get(s, "earliest"))) {
        static const char *const keys[] = {"earliest", "as", "expect_error", NULL};
        seawall_deadline *a, *b, *e = NULL;
        const char *as = "";
        if (check_keys(r, s, keys)) return -1;
        if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2) return failf(r, "earliest takes two names");
        if (deadline_of(r, cJSON_GetArrayItem(v, 0), &a) || deadline_of(r, cJSON_GetArrayItem(v, 1), &b) ||
            name_of(r, get(s, "as"), "as", &as))
            return -1;
        *api = seawall_deadline_earliest(a, b, &e);
        if (*api != SEAWALL_OK) {
            if (e != NULL) return failf(r, "a failed call wrote a deadline");
            return 0;
        }
        return put_deadline(r, as, e);
    }
    if ((v = get(s, "budget"))) {
        static const char *const keys[] = {"budget", "fraction", "min_ms", "expect_ms", "expect_error", NULL};
        seawall_deadline *d;
        double min_ms, got = -1;
        uint64_t want;
        const cJSON *fraction = get(s, "fraction");
        if (check_keys(r, s, keys) || deadline_of(r, v, &d) || duration_ms(r, get(s, "min_ms"), "min_ms", &min_ms))
            return -1;
        if (!cJSON_IsNumber(fraction)) return failf(r, "budget needs fraction (a number)");
        *api = seawall_deadline_budget_ms(d, fraction->valuedouble, min_ms, &got);
        if (*api != SEAWALL_OK) return 0;
        if (whole_ms(r, get(s, "expect_ms"), "expect_ms", &want)) return -1;
        if ((uint64_t)floor(got) != want)
            return failf(r, "budget: expected %llu ms, got %.9g ms", (unsigned long long)want, got);
        return 0;
    }
    if ((v = get(s, "grpc_parse"))) {
        static const char *const keys[] = {"grpc_parse", "expect_ms", "expect_error", NULL};
        double got = -1;
        const cJSON *want = get(s, "expect_ms");
        if (check_keys(r, s, keys)) return -1;
        if (!cJSON_IsString(v)) return failf(r, "grpc_parse must be a string");
        *api = seawall_grpc_timeout_parse_ms(v->valuestring, &got);
        if (*api != SEAWALL_OK) return 0;
        if (!cJSON_IsNumber(want)) return failf(r, "grpc_parse \"%s\" needs expect_ms", v->valuestring);
        if (fabs(got - want->valuedouble) > MS_EPSILON)
            return failf(r, "grpc_parse \"%s\": expected %.17g ms, got %.17g ms", v->valuestring,
                         want->valuedouble, got);
        return 0;
    }
    if ((v = get(s, "cancel_at"))) {
        static const char *const keys[] = {"cancel_at", "token", NULL};
        seawall_deadline *d;
        named_token *t;
        if (check_keys(r, s, keys) || deadline_of(r, v, &d) || token_of(r, get(s, "token"), &t)) return -1;
        if (r->ntimers == MAX_TIMERS) return failf(r, "too many timers");
        seawall_timer *timer = NULL;
        if (seawall_cancel_token_cancel_at(t->token, d, &timer) != SEAWALL_OK)
            return failf(r, "seawall_cancel_token_cancel_at: %s", seawall_last_error());
        r->timers[r->ntimers++] = timer;
        return 0;
    }
    if ((v = get(s, "token"))) {
        static const char *const keys[] = {"token", NULL};
        const char *name = "";
        if (check_keys(r, s, keys) || name_of(r, v, "token", &name)) return -1;
        if (find_token(r, name)) return failf(r, "token \"%s\" already exists", name);
        if (r->ntokens == MAX_NAMED) return failf(r, "too many tokens");
        named_token *t = &r->tokens[r->ntokens];
        memset(t, 0, sizeof *t);
        snprintf(t->name, sizeof t->name, "%s", name);
        if (seawall_cancel_token_new(&t->token) != SEAWALL_OK)
            return failf(r, "seawall_cancel_token_new: %s", seawall_last_error());
        r->ntokens++;
        if (seawall_cancel_token_on_cancel(t->token, on_cancel, t, NULL) != SEAWALL_OK)
            return failf(r, "seawall_cancel_token_on_cancel: %s", seawall_last_error());
        return 0;
    }
    if ((v = get(s, "cancel"))) {
        static const char *const keys[] = {"cancel", NULL};
        named_token *t;
        if (check_keys(r, s, keys) || token_of(r, v, &t)) return -1;
        if (seawall_cancel_token_cancel(t->token) != SEAWALL_OK)
            return failf(r, "seawall_cancel_token_cancel: %s", seawall_last_error());
        return 0;
    }
    if ((v = get(s, "expect_token"))) {
        static const char *const keys[] = {"expect_token", NULL};
        if (check_keys(r, s, keys)) return -1;
        return expect_tokens(r, v);
    }
    char *text = cJSON_PrintUnformatted(s);
    failf(r, "unknown step %s", text ? text : "?");
    free(text);
    return -1;
}

static void cleanup(run_t *r) {
    for (int i = 0; i < r->ntimers; i++) seawall_timer_free(r->timers[i]);
    for (int i = 0; i < r->ntokens; i++) seawall_cancel_token_free(r->tokens[i].token);
    for (int i = 0; i < r->ndeadlines; i++) seawall_deadline_free(r->deadlines[i].deadline);
    for (int i = 0; i < r->nclocks; i++) seawall_clock_free(r->clocks[i].clock);
}

/* Replays one file; prints why it failed. 0 when it passed. */
static int run_file(const char *dir, const char *file) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    char *text = read_file(path);
    if (!text) {
        printf("FAIL %s: cannot read it\n", file);
        return -1;
    }
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *steps = root ? get(root, "steps") : NULL;
    if (!cJSON_IsArray(steps)) {
        printf("FAIL %s: not JSON with a \"steps\" array\n", file);
        cJSON_Delete(root);
        return -1;
    }
    run_t *r = calloc(1, sizeof *r);
    if (!r) return -1;
    int rc = add_clock(r, "main");
    int i = 0;
    for (const cJSON *s = steps->child; s && rc == 0; s = s->next, i++) {
        seawall_status api;
        rc = step(r, s, &api);
        if (rc) break;
        const cJSON *err = get(s, "expect_error");
        if (err && !cJSON_IsString(err)) {
            rc = failf(r, "expect_error must be a code string");
        } else if (err && api == SEAWALL_OK) {
            rc = failf(r, "expected error %s, got success", err->valuestring);
        } else if (err && strcmp(seawall_status_name(api), err->valuestring) != 0) {
            rc = failf(r, "expected error %s, got %s (%s)", err->valuestring, seawall_status_name(api),
                       seawall_last_error());
        } else if (!err && api != SEAWALL_OK) {
            rc = failf(r, "unexpected error %s: %s", seawall_status_name(api), seawall_last_error());
        }
        if (rc) break;
    }
    if (rc) {
        const cJSON *name = get(root, "name");
        printf("FAIL %s (%s): step %d: %s\n", file, cJSON_IsString(name) ? name->valuestring : "?", i, r->base.msg);
    }
    cleanup(r);
    free(r);
    cJSON_Delete(root);
    return rc;
}

int main(int argc, char **argv) {
    return conformance_main(argc, argv, "conformance_deadline", "SEAWALL_CONFORMANCE_DEADLINE_DIR",
                            "tests/conformance/deadline", "deadline", run_file);
}
