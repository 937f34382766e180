/*
 * conformance_idempotency.c: the C runner of the language-neutral idempotency scenarios.
 *
 * Replays every JSON file in tests/conformance/idempotency (format: tests/conformance/README.md,
 * "Idempotency scenarios") against the seawall_idem_* API on a manual clock, the same files the
 * Rust, Python and Node runners replay. Every step kind runs; unknown keys are failures (so a
 * typo cannot skip an expectation). Keys, results and fingerprint payloads go in as bytes with
 * their lengths, the way a C service passes them.
 *
 * A failing scenario does not stop the others; each failure is printed with its file, step
 * and expected vs actual value. The last line is "N passed, M failed"; the exit status is
 * non-zero when a scenario failed or when no scenario file was found.
 *
 * Usage: conformance_idempotency [DIR]
 *        (default: $SEAWALL_CONFORMANCE_IDEMPOTENCY_DIR, else tests/conformance/idempotency)
 * Build: gcc conformance_idempotency.c $(pkg-config --cflags --libs seawall libcjson) -lm
 */
#define _POSIX_C_SOURCE 200809L

#include "conformance_common.h"

#define MAX_NAMED 128
#define MAX_TEXT (1 << 20)

typedef struct {
    char name[64];
    seawall_idem_lease *lease;
} named_lease;

typedef struct {
    char name[64];
    seawall_idem_waiter *waiter;
} named_waiter;

typedef struct {
    conformance_run base; /* first: step, clock and failure message (conformance_common.h) */
    seawall_idem_cache *cache;
    named_lease leases[MAX_NAMED];
    int nleases;
    named_waiter waiters[MAX_NAMED];
    int nwaiters;
} run_t;

/* The keys every action step may carry to expect an error instead of success. */
static const char *const error_keys[] = {"expect_error", "message_contains", NULL};
/* Only `allowed`, and the error keys, may appear in an action step. */
#define check_action_keys(r, obj, allowed) check_keys_also(r, obj, allowed, error_keys)

static int string_of(run_t *r, const cJSON *v, const char *what, const char **out) {
    *out = "";
    if (!cJSON_IsString(v)) return failf(r, "%s must be a string", what);
    *out = v->valuestring;
    return 0;
}

static int whole(run_t *r, const cJSON *v, const char *what, uint64_t *out) {
    *out = 0;
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9e15 || v->valuedouble != floor(v->valuedouble))
        return failf(r, "%s must be a whole, non-negative number", what);
    *out = (uint64_t)v->valuedouble;
    return 0;
}

static int boolean(run_t *r, const cJSON *v, const char *what, int *out) {
    *out = 0;
    if (!cJSON_IsBool(v)) return failf(r, "%s must be a boolean", what);
    *out = cJSON_IsTrue(v);
    return 0;
}

/* The step's `field` string, repeated "repeat" times when given. Malloc'd; *len is its size. */
static int repeated(run_t *r, const cJSON *s, const char *field, char **out, size_t *len) {
    const char *base;
    if (string_of(r, get(s, field), field, &base)) return -1;
    uint64_t n = 1;
    const cJSON *rep = get(s, "repeat");
    if (rep && whole(r, rep, "repeat", &n)) return -1;
    size_t one = strlen(base);
    if (one * n > MAX_TEXT) return failf(r, "%s repeated is over %d bytes", field, MAX_TEXT);
    char *buf = malloc(one * n + 1);
    if (!buf) return failf(r, "out of memory");
    for (uint64_t i = 0; i < n; i++) memcpy(buf + i * one, base, one);
    buf[one * n] = '\0';
    *out = buf;
    *len = one * n;
    return 0;
}

/* ---- names ---------------------------------------------------------------------------- */

static named_lease *find_lease(run_t *r, const char *name) {
    for (int i = 0; i < r->nleases; i++)
        if (strcmp(r->leases[i].name, name) == 0) return &r->leases[i];
    return NULL;
}

static int lease_of(run_t *r, const cJSON *v, seawall_idem_lease **out) {
    const char *name;
    if (string_of(r, v, "a lease name", &name)) return -1;
    named_lease *l = find_lease(r, name);
    if (!l) return failf(r, "no lease named \"%s\"", name);
    *out = l->lease;
    return 0;
}

/* Keeps `lease` as `name` (taking ownership; replaces a lease of that name). */
static int keep_named_lease(run_t *r, const char *name, seawall_idem_lease *lease) {
    if (strlen(name) >= 64) {
        seawall_idem_lease_free(lease);
        return failf(r, "lease name too long");
    }
    named_lease *slot = find_lease(r, name);
    if (slot) {
        seawall_idem_lease_free(slot->lease);
    } else {
        if (r->nleases == MAX_NAMED) {
            seawall_idem_lease_free(lease);
            return failf(r, "too many leases");
        }
        slot = &r->leases[r->nleases++];
        snprintf(slot->name, sizeof slot->name, "%s", name);
    }
    slot->lease = lease;
    return 0;
}

static named_waiter *find_waiter(run_t *r, const char *name) {
    for (int i = 0; i < r->nwaiters; i++)
        if (strcmp(r->waiters[i].name, name) == 0) return &r->waiters[i];
    return NULL;
}

static int waiter_of(run_t *r, const cJSON *v, seawall_idem_waiter **out) {
    const char *name;
    if (string_of(r, v, "a waiter name", &name)) return -1;
    named_waiter *w = find_waiter(r, name);
    if (!w) return failf(r, "no waiter named \"%s\"", name);
    *out = w->waiter;
    return 0;
}

static int keep_waiter(run_t *r, const char *name, seawall_idem_waiter *waiter) {
    if (strlen(name) >= 64 || r->nwaiters == MAX_NAMED || find_waiter(r, name)) {
        seawall_idem_waiter_free(waiter);
        return failf(r, "cannot keep waiter \"%s\" (too long, too many, or the name is taken)", name);
    }
    named_waiter *slot = &r->waiters[r->nwaiters++];
    snprintf(slot->name, sizeof slot->name, "%s", name);
    slot->waiter = waiter;
    return 0;
}

static uint64_t token_of_lease(seawall_idem_lease *l) {
    seawall_idem_lease_info info;
    if (seawall_idem_lease_get_info(l, &info) != SEAWALL_OK) return UINT64_MAX;
    return info.token;
}

/* ---- configuration -------------------------------------------------------------------- */

/* Sets one option the way a C user would: the JSON type picks the setter. */
static int set_option(run_t *r, seawall_idem_config *cfg, const cJSON *kv, seawall_status *status) {
    option_t o;
    if (config_option(r, kv, &o)) return -1;
    switch (o.kind) {
    case OPTION_BOOL: *status = seawall_idem_config_set_bool(cfg, o.key, o.b); break;
    case OPTION_INT: *status = seawall_idem_config_set_int(cfg, o.key, o.i); break;
    case OPTION_DOUBLE: *status = seawall_idem_config_set_double(cfg, o.key, o.d); break;
    case OPTION_STR: *status = seawall_idem_config_set_str(cfg, o.key, o.s); break;
    }
    return 0;
}

/* Builds the cache through the C API; *status is the first non-OK status (or OK). */
static int build(conformance_run *run, const cJSON *config, seawall_status *status) {
    run_t *r = (run_t *)run;
    seawall_idem_config *cfg = NULL;
    *status = seawall_idem_config_new(&cfg);
    if (*status != SEAWALL_OK) return failf(r, "seawall_idem_config_new: %s", seawall_last_error());
    int rc = 0;
    for (const cJSON *kv = config->child; kv && *status == SEAWALL_OK && rc == 0; kv = kv->next)
        rc = set_option(r, cfg, kv, status);
    if (rc == 0 && *status == SEAWALL_OK) *status = seawall_idem_config_set_clock(cfg, r->base.clock);
    if (rc == 0 && *status == SEAWALL_OK) *status = seawall_idem_cache_new(cfg, &r->cache);
    seawall_idem_config_free(cfg);
    return rc;
}

/* ---- expectations --------------------------------------------------------------------- */

/* Checks a call's status against the step's "expect_error" / "message_contains".
 * Returns 0 when it matches; *was_error says whether the call failed (as expected). */
static int expect_outcome(run_t *r, const cJSON *s, const char *what, seawall_status st, int *was_error) {
    const cJSON *want = get(s, "expect_error");
    const char *code = NULL;
    if (want && string_of(r, want, "expect_error", &code)) return -1;
    *was_error = st != SEAWALL_OK;
    if (!code) {
        if (st != SEAWALL_OK)
            return failf(r, "%s: expected success, got %s (%s)", what, seawall_status_name(st), seawall_last_error());
        return 0;
    }
    if (st == SEAWALL_OK) return failf(r, "%s: expected error %s, but it succeeded", what, code);
    if (strcmp(seawall_status_name(st), code) != 0)
        return failf(r, "%s: expected error %s, got %s (%s)", what, code, seawall_status_name(st), seawall_last_error());
    const cJSON *part = get(s, "message_contains");
    if (part) {
        const char *p;
        if (string_of(r, part, "message_contains", &p)) return -1;
        if (!strstr(seawall_last_error(), p))
            return failf(r, "%s: expected the message to contain \"%s\", got: %s", what, p, seawall_last_error());
    }
    return 0;
}

/* Metadata of a record equals the list of [name, value] pairs `want`. */
static int metadata_matches(run_t *r, const cJSON *want, const seawall_idem_record *rec, char *why, size_t n) {
    if (!cJSON_IsArray(want)) return failf(r, "metadata must be a list of [name, value] pairs");
    size_t count;
    if (seawall_idem_record_metadata_count(rec, &count) != SEAWALL_OK)
        return failf(r, "seawall_idem_record_metadata_count: %s", seawall_last_error());
    size_t i = 0;
    for (const cJSON *p = want->child; p; p = p->next, i++) {
        const cJSON *k = cJSON_GetArrayItem(p, 0), *v = cJSON_GetArrayItem(p, 1);
        if (!cJSON_IsArray(p) || cJSON_GetArraySize(p) != 2 || !cJSON_IsString(k) || !cJSON_IsString(v))
            return failf(r, "a metadata pair must be [name, value] strings");
        if (i >= count) {
            snprintf(why, n, "metadata: expected %d pairs, got %zu; ", cJSON_GetArraySize(want), count);
            return 0;
        }
        const char *name, *value;
        size_t name_len, value_len;
        if (seawall_idem_record_metadata_get(rec, i, &name, &name_len, &value, &value_len) != SEAWALL_OK)
            return failf(r, "seawall_idem_record_metadata_get: %s", seawall_last_error());
        if (strcmp(name, k->valuestring) != 0 || strcmp(value, v->valuestring) != 0 ||
            name_len != strlen(name) || value_len != strlen(value)) {
            snprintf(why, n, "metadata[%zu]: expected [%s, %s], got [%s, %s]; ", i, k->valuestring, v->valuestring,
                     name, value);
            return 0;
        }
    }
    if (i != count) snprintf(why, n, "metadata: expected %zu pairs, got %zu; ", i, count);
    return 0;
}

/* {"result", "result_bytes", "content_type", "metadata", "error", "created_ms", "expires_ms", "token_of"} */
static int check_record(run_t *r, const cJSON *want, const seawall_idem_record *rec) {
    static const char *const keys[] = {"result", "result_bytes", "content_type", "metadata", "error",
                                       "created_ms", "expires_ms", "token_of", NULL};
    if (!want) return 0;
    if (!cJSON_IsObject(want)) return failf(r, "\"record\" must be an object");
    if (check_keys(r, want, keys)) return -1;
    const uint8_t *data;
    size_t len;
    const char *ct;
    size_t ct_len;
    seawall_idem_record_info info;
    if (seawall_idem_record_result(rec, &data, &len) != SEAWALL_OK ||
        seawall_idem_record_content_type(rec, &ct, &ct_len) != SEAWALL_OK ||
        seawall_idem_record_get_info(rec, &info) != SEAWALL_OK)
        return failf(r, "reading the record: %s", seawall_last_error());
    char wrong[4096] = "";
    size_t used = 0;
#define WRONG(...) (used = strlen(wrong), snprintf(wrong + used, sizeof wrong - used, __VA_ARGS__))
    for (const cJSON *f = want->child; f; f = f->next) {
        const char *k = f->string;
        if (strcmp(k, "result") == 0) {
            const char *w;
            if (string_of(r, f, "result", &w)) return -1;
            if (strlen(w) != len || memcmp(w, data, len) != 0)
                WRONG("result: expected \"%s\", got \"%.*s\"; ", w, (int)(len > 200 ? 200 : len), (const char *)data);
        } else if (strcmp(k, "result_bytes") == 0) {
            uint64_t w;
            if (whole(r, f, "result_bytes", &w)) return -1;
            if (w != len) WRONG("result_bytes: expected %llu, got %zu; ", (unsigned long long)w, len);
        } else if (strcmp(k, "content_type") == 0) {
            const char *w;
            if (string_of(r, f, "content_type", &w)) return -1;
            if (strcmp(w, ct) != 0 || ct_len != strlen(w))
                WRONG("content_type: expected \"%s\", got \"%s\"; ", w, ct);
        } else if (strcmp(k, "metadata") == 0) {
            char why[1024] = "";
            if (metadata_matches(r, f, rec, why, sizeof why)) return -1;
            if (why[0]) WRONG("%s", why);
        } else if (strcmp(k, "error") == 0) {
            int w;
            if (boolean(r, f, "error", &w)) return -1;
            if (w != (int)info.error) WRONG("error: expected %d, got %d; ", w, (int)info.error);
        } else if (strcmp(k, "created_ms") == 0 || strcmp(k, "expires_ms") == 0) {
            uint64_t w;
            if (whole(r, f, k, &w)) return -1;
            uint64_t got = k[0] == 'c' ? info.created_ms : info.expires_ms;
            if (w != got) WRONG("%s: expected %llu, got %llu; ", k, (unsigned long long)w, (unsigned long long)got);
        } else if (strcmp(k, "token_of") == 0) {
            seawall_idem_lease *l;
            if (lease_of(r, f, &l)) return -1;
            uint64_t t = token_of_lease(l);
            if (t != info.token)
                WRONG("token_of: expected %s's token %llu, got %llu; ", f->valuestring, (unsigned long long)t,
                      (unsigned long long)info.token);
        }
    }
#undef WRONG
    if (wrong[0]) return failf(r, "record: %s", wrong);
    return 0;
}

/* A lease from execute (begin or poll): check token_above / took_over / protected, keep it as "as". */
static int keep_lease(run_t *r, const cJSON *s, seawall_idem_lease *lease) {
    seawall_idem_lease_info info;
    if (seawall_idem_lease_get_info(lease, &info) != SEAWALL_OK) {
        seawall_idem_lease_free(lease);
        return failf(r, "seawall_idem_lease_info: %s", seawall_last_error());
    }
    int rc = 0;
    const cJSON *above = get(s, "token_above");
    if (above) {
        seawall_idem_lease *other;
        rc = lease_of(r, above, &other);
        if (rc == 0 && info.token <= token_of_lease(other))
            rc = failf(r, "expected a token above %s's (%llu), got %llu", above->valuestring,
                       (unsigned long long)token_of_lease(other), (unsigned long long)info.token);
    }
    const char *fields[] = {"took_over", "protected"};
    int actual[] = {info.took_over, info.is_protected};
    for (int i = 0; i < 2 && rc == 0; i++) {
        const cJSON *v = get(s, fields[i]);
        int want;
        if (!v) continue;
        rc = boolean(r, v, fields[i], &want);
        if (rc == 0 && want != actual[i])
            rc = failf(r, "expected %s = %s, got %s", fields[i], want ? "true" : "false", actual[i] ? "true" : "false");
    }
    const cJSON *as = get(s, "as");
    if (rc == 0 && as) {
        const char *name;
        rc = string_of(r, as, "as", &name);
        if (rc == 0) return keep_named_lease(r, name, lease);
    }
    seawall_idem_lease_free(lease); /* unnamed: left to expire, as a dropped lease is */
    return rc;
}

static void free_result(seawall_idem_begin_result *res) {
    seawall_idem_lease_free(res->lease);
    seawall_idem_record_free(res->record);
    seawall_idem_waiter_free(res->waiter);
    res->lease = NULL;
    res->record = NULL;
    res->waiter = NULL;
}

/* ---- steps ---------------------------------------------------------------------------- */

static int step_begin(run_t *r, const cJSON *s) {
    static const char *const keys[] = {"begin", "repeat", "fingerprint", "as", "expect", "token_above", "took_over",
                                       "protected", "retry_after_ms", "completed", "record", NULL};
    if (check_action_keys(r, s, keys)) return -1;
    char *key;
    size_t key_len;
    if (repeated(r, s, "begin", &key, &key_len)) return -1;
    const cJSON *fp = get(s, "fingerprint");
    const char *payload = NULL; /* no "fingerprint": none (NULL); "" is the empty payload's */
    if (fp && string_of(r, fp, "fingerprint", &payload)) {
        free(key);
        return -1;
    }
    seawall_idem_begin_result res;
    seawall_status st = seawall_idem_begin(r->cache, (const uint8_t *)key, key_len, (const uint8_t *)payload,
                                           payload ? strlen(payload) : 0, &res);
    free(key);
    int was_error;
    if (expect_outcome(r, s, "begin", st, &was_error)) {
        free_result(&res);
        return -1;
    }
    if (was_error) {
        if (res.outcome != SEAWALL_IDEM_ERROR || res.lease || res.record || res.waiter)
            return failf(r, "a failed begin left outcome %s and handles set", seawall_idem_outcome_name(res.outcome));
        return 0;
    }
    const char *want;
    if (string_of(r, get(s, "expect"), "expect", &want)) {
        free_result(&res);
        return -1;
    }
    const char *got = res.outcome == SEAWALL_IDEM_IN_PROGRESS && res.waiter ? "wait"
                                                                              : seawall_idem_outcome_name(res.outcome);
    if (strcmp(got, want) != 0) {
        failf(r, "begin: expected %s, got %s (retry_after_ms %llu, mismatch_completed %d)", want, got,
              (unsigned long long)res.retry_after_ms, (int)res.mismatch_completed);
        free_result(&res);
        return -1;
    }
    int rc = 0;
    switch (res.outcome) {
    case SEAWALL_IDEM_EXECUTE:
        if (res.record || res.waiter) rc = failf(r, "execute came with a record or waiter");
        rc = rc ? rc : keep_lease(r, s, res.lease);
        res.lease = NULL;
        break;
    case SEAWALL_IDEM_REPLAY:
        if (res.lease || res.waiter) rc = failf(r, "replay came with a lease or waiter");
        rc = rc ? rc : check_record(r, get(s, "record"), res.record);
        break;
    case SEAWALL_IDEM_MISMATCH: {
        const cJSON *c = get(s, "completed");
        int w;
        if (c && (rc = boolean(r, c, "completed", &w)) == 0 && w != (int)res.mismatch_completed)
            rc = failf(r, "mismatch: expected completed = %d, got %d", w, (int)res.mismatch_completed);
        break;
    }
    case SEAWALL_IDEM_IN_PROGRESS: {
        const cJSON *ra = get(s, "retry_after_ms");
        uint64_t w;
        if (ra && (rc = whole(r, ra, "retry_after_ms", &w)) == 0 && w != res.retry_after_ms)
            rc = failf(r, "in_progress: expected retry_after_ms %llu, got %llu", (unsigned long long)w,
                       (unsigned long long)res.retry_after_ms);
        if (rc == 0 && res.waiter) {
            const char *name;
            if (string_of(r, get(s, "as"), "a \"wait\" begin's \"as\"", &name)) {
                rc = -1;
            } else {
                rc = keep_waiter(r, name, res.waiter);
                res.waiter = NULL;
            }
        }
        break;
    }
    default:
        rc = failf(r, "unexpected outcome %d", (int)res.outcome);
    }
    free_result(&res);
    return rc;
}

/* The output of a complete / fail step; malloc'd parts released by free_output. */
typedef struct {
    seawall_idem_output out;
    char *result;
    seawall_idem_metadata *pairs;
} output_t;

static void free_output(output_t *o) {
    free(o->result);
    free(o->pairs);
}

static int output_of(run_t *r, const cJSON *s, output_t *o) {
    memset(o, 0, sizeof *o);
    size_t len = 0;
    if (get(s, "result")) {
        if (repeated(r, s, "result", &o->result, &len)) return -1;
    } else {
        o->result = calloc(1, 1);
    }
    o->out.result = (const uint8_t *)o->result;
    o->out.result_len = len;
    const cJSON *ct = get(s, "content_type");
    o->out.content_type = NULL; /* NULL is "" */
    if (ct && string_of(r, ct, "content_type", &o->out.content_type)) return -1;
    const cJSON *md = get(s, "metadata");
    if (md) {
        if (!cJSON_IsArray(md)) return failf(r, "metadata must be a list of [name, value] pairs");
        int n = cJSON_GetArraySize(md);
        o->pairs = calloc((size_t)n + 1, sizeof *o->pairs);
        if (!o->pairs) return failf(r, "out of memory");
        int i = 0;
        for (const cJSON *p = md->child; p; p = p->next, i++) {
            const cJSON *k = cJSON_GetArrayItem(p, 0), *v = cJSON_GetArrayItem(p, 1);
            if (!cJSON_IsArray(p) || cJSON_GetArraySize(p) != 2 || !cJSON_IsString(k) || !cJSON_IsString(v))
                return failf(r, "a metadata pair must be [name, value] strings");
            o->pairs[i].name = k->valuestring;
            o->pairs[i].value = v->valuestring;
        }
        o->out.metadata = o->pairs;
        o->out.metadata_count = (size_t)n;
    }
    return 0;
}

static int step_complete(run_t *r, const cJSON *s) {
    static const char *const keys[] = {"complete", "result", "repeat", "content_type", "metadata", "record", NULL};
    if (check_action_keys(r, s, keys)) return -1;
    seawall_idem_lease *lease;
    if (lease_of(r, get(s, "complete"), &lease)) return -1;
    output_t o;
    if (output_of(r, s, &o)) {
        free_output(&o);
        return -1;
    }
    seawall_idem_record *rec = (seawall_idem_record *)&o; /* must be overwritten with NULL or a record */
    seawall_status st;
    if (get(s, "metadata"))
        st = seawall_idem_complete_output(r->cache, lease, &o.out, &rec);
    else
        st = seawall_idem_complete(r->cache, lease, o.out.result, o.out.result_len, o.out.content_type, &rec);
    free_output(&o);
    int was_error, rc = expect_outcome(r, s, "complete", st, &was_error);
    if (rc == 0 && was_error && rec != NULL) rc = failf(r, "a failed complete did not set *out_record to NULL");
    if (rc == 0 && !was_error) rc = rec ? check_record(r, get(s, "record"), rec) : failf(r, "complete gave no record");
    if (!was_error) seawall_idem_record_free(rec);
    return rc;
}

static int step_fail(run_t *r, const cJSON *s) {
    static const char *const keys[] = {"fail", "result", "content_type", "expect", "record", NULL};
    if (check_action_keys(r, s, keys)) return -1;
    seawall_idem_lease *lease;
    if (lease_of(r, get(s, "fail"), &lease)) return -1;
    output_t o;
    int with_output = get(s, "result") != NULL;
    if (with_output && output_of(r, s, &o)) {
        free_output(&o);
        return -1;
    }
    seawall_idem_record *rec = NULL;
    seawall_status st = seawall_idem_fail(r->cache, lease, with_output ? &o.out : NULL, &rec);
    if (with_output) free_output(&o);
    int was_error, rc = expect_outcome(r, s, "fail", st, &was_error);
    if (rc == 0 && !was_error) {
        const char *got = rec ? "stored" : "released";
        const cJSON *want = get(s, "expect");
        const char *w;
        if (want && (rc = string_of(r, want, "expect", &w)) == 0 && strcmp(w, got) != 0)
            rc = failf(r, "fail: expected %s, got %s", w, got);
        if (rc == 0 && rec) rc = check_record(r, get(s, "record"), rec);
        if (rc == 0 && !rec && get(s, "record")) rc = failf(r, "fail: a record was expected, but the key was released");
    }
    seawall_idem_record_free(rec);
    return rc;
}

static int step_poll(run_t *r, const cJSON *s) {
    static const char *const keys[] = {"poll", "expect", "as", "token_above", "took_over", "protected", "record",
                                       "lease_expires_in_ms", "timeout_in_ms", NULL};
    if (check_action_keys(r, s, keys)) return -1;
    seawall_idem_waiter *w;
    if (waiter_of(r, get(s, "poll"), &w)) return -1;
    seawall_idem_begin_result res;
    seawall_status st = seawall_idem_waiter_poll(w, &res);
    int was_error;
    if (expect_outcome(r, s, "poll", st, &was_error)) {
        free_result(&res);
        return -1;
    }
    if (was_error) {
        if (res.lease || res.record || res.waiter) return failf(r, "a failed poll handed out a handle");
        return 0;
    }
    const cJSON *want_v = get(s, "expect");
    const char *want = "(nothing)";
    if (want_v && string_of(r, want_v, "expect", &want)) {
        free_result(&res);
        return -1;
    }
    const char *got = seawall_idem_outcome_name(res.outcome);
    if (strcmp(want, got) != 0) {
        failf(r, "poll: expected %s, got %s", want, got);
        free_result(&res);
        return -1;
    }
    int rc = 0;
    if (res.outcome == SEAWALL_IDEM_PENDING) {
        const char *f[] = {"lease_expires_in_ms", "timeout_in_ms"};
        uint64_t actual[] = {res.retry_after_ms, res.timeout_in_ms};
        for (int i = 0; i < 2 && rc == 0; i++) {
            const cJSON *v = get(s, f[i]);
            uint64_t x;
            if (v && (rc = whole(r, v, f[i], &x)) == 0 && x != actual[i])
                rc = failf(r, "poll: expected %s %llu, got %llu", f[i], (unsigned long long)x,
                           (unsigned long long)actual[i]);
        }
    } else if (res.outcome == SEAWALL_IDEM_EXECUTE) {
        rc = keep_lease(r, s, res.lease);
        res.lease = NULL;
    } else if (res.outcome == SEAWALL_IDEM_REPLAY) {
        rc = check_record(r, get(s, "record"), res.record);
    }
    free_result(&res);
    return rc;
}

static int step_expect_stats(run_t *r, const cJSON *s) {
    static const char *const keys[] = {"expect_stats", NULL};
    if (check_keys(r, s, keys)) return -1;
    const cJSON *e = get(s, "expect_stats");
    if (!cJSON_IsObject(e)) return failf(r, "expect_stats must be an object");
    seawall_idem_stats st;
    if (seawall_idem_cache_stats(r->cache, &st) != SEAWALL_OK) return failf(r, "seawall_idem_stats: %s", seawall_last_error());
    const struct {
        const char *name;
        uint64_t value;
    } fields[] = {
        {.name = "executed", .value = st.executed},         {.name = "replayed", .value = st.replayed},
        {.name = "in_progress", .value = st.in_progress},   {.name = "mismatched", .value = st.mismatched},
        {.name = "waited", .value = st.waited},             {.name = "taken_over", .value = st.taken_over},
        {.name = "completed", .value = st.completed},       {.name = "released", .value = st.released},
        {.name = "lease_lost", .value = st.lease_lost},     {.name = "store_errors", .value = st.store_errors},
        {.name = "unprotected", .value = st.unprotected},   {.name = "abandoned", .value = st.abandoned},
    };
    char wrong[2048] = "";
    for (const cJSON *f = e->child; f; f = f->next) {
        size_t i, n = sizeof fields / sizeof fields[0];
        for (i = 0; i < n && strcmp(fields[i].name, f->string) != 0; i++) {
        }
        if (i == n) return failf(r, "unknown stats field \"%s\"", f->string);
        uint64_t w;
        if (whole(r, f, f->string, &w)) return -1;
        if (w != fields[i].value) {
            size_t used = strlen(wrong);
            snprintf(wrong + used, sizeof wrong - used, "%s: expected %llu, got %llu; ", f->string,
                     (unsigned long long)w, (unsigned long long)fields[i].value);
        }
    }
    if (wrong[0]) return failf(r, "expect_stats: %s", wrong);
    return 0;
}

static int step(conformance_run *run, const cJSON *s) {
    run_t *r = (run_t *)run;
    if (!cJSON_IsObject(s)) return failf(r, "a step must be an object");
    const cJSON *v;
    int was_error;
    if (get(s, "begin")) return step_begin(r, s);
    if (get(s, "complete")) return step_complete(r, s);
    if (get(s, "fail")) return step_fail(r, s);
    if (get(s, "poll")) return step_poll(r, s);
    if ((v = get(s, "release"))) {
        static const char *const keys[] = {"release", NULL};
        seawall_idem_lease *l;
        if (check_action_keys(r, s, keys) || lease_of(r, v, &l)) return -1;
        return expect_outcome(r, s, "release", seawall_idem_release(r->cache, l), &was_error);
    }
    if ((v = get(s, "renew"))) {
        static const char *const keys[] = {"renew", "remaining_ms", NULL};
        seawall_idem_lease *l;
        if (check_action_keys(r, s, keys) || lease_of(r, v, &l)) return -1;
        uint64_t left = UINT64_MAX, want;
        if (expect_outcome(r, s, "renew", seawall_idem_renew(r->cache, l, &left), &was_error)) return -1;
        const cJSON *rm = get(s, "remaining_ms");
        if (!was_error && rm) {
            if (whole(r, rm, "remaining_ms", &want)) return -1;
            if (want != left)
                return failf(r, "renew: expected remaining_ms %llu, got %llu", (unsigned long long)want,
                             (unsigned long long)left);
        }
        return 0;
    }
    if ((v = get(s, "cancel"))) {
        static const char *const keys[] = {"cancel", NULL};
        seawall_idem_waiter *w;
        if (check_keys(r, s, keys) || waiter_of(r, v, &w)) return -1;
        if (seawall_idem_waiter_cancel(w) != SEAWALL_OK)
            return failf(r, "seawall_idem_waiter_cancel: %s", seawall_last_error());
        return 0;
    }
    if ((v = get(s, "advance_ms"))) {
        static const char *const keys[] = {"advance_ms", NULL};
        uint64_t ms;
        if (check_keys(r, s, keys) || whole(r, v, "advance_ms", &ms)) return -1;
        if (seawall_clock_advance_ms(r->base.clock, ms) != SEAWALL_OK)
            return failf(r, "seawall_clock_advance_ms: %s", seawall_last_error());
        return 0;
    }
    if (get(s, "expect_key")) {
        static const char *const keys[] = {"expect_key", "repeat", "state", NULL};
        if (check_keys(r, s, keys)) return -1;
        const char *want;
        if (string_of(r, get(s, "state"), "state", &want)) return -1;
        char *key;
        size_t key_len;
        if (repeated(r, s, "expect_key", &key, &key_len)) return -1;
        seawall_idem_key_state state;
        seawall_idem_record *rec = NULL;
        seawall_status st = seawall_idem_peek(r->cache, (const uint8_t *)key, key_len, &state, &rec);
        free(key);
        if (st != SEAWALL_OK) return failf(r, "peek: %s", seawall_last_error());
        int completed = state == SEAWALL_IDEM_KEY_COMPLETED;
        seawall_idem_record_free(rec);
        if ((rec != NULL) != completed) return failf(r, "peek handed out a record iff completed: it did not");
        if (strcmp(seawall_idem_key_state_name(state), want) != 0)
            return failf(r, "expect_key: expected %s, got %s", want, seawall_idem_key_state_name(state));
        return 0;
    }
    if (get(s, "expect_stats")) return step_expect_stats(r, s);
    char *text = cJSON_PrintUnformatted(s);
    failf(r, "unknown step kind: %s", text ? text : "?");
    free(text);
    return -1;
}

/* ---- files ---------------------------------------------------------------------------- */

static void release(conformance_run *run) {
    run_t *r = (run_t *)run;
    for (int i = 0; i < r->nwaiters; i++) seawall_idem_waiter_free(r->waiters[i].waiter);
    for (int i = 0; i < r->nleases; i++) seawall_idem_lease_free(r->leases[i].lease);
    seawall_idem_cache_free(r->cache);
}

static const conformance_runner runner = {"cache", sizeof(run_t), build, NULL, step, release};

static int run_file(const char *dir, const char *file) {
    return conformance_run_file(&runner, dir, file);
}

int main(int argc, char **argv) {
    return conformance_main(argc, argv, "conformance_idempotency", "SEAWALL_CONFORMANCE_IDEMPOTENCY_DIR",
                            "tests/conformance/idempotency", "idempotency", run_file);
}
