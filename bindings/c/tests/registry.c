/*
 * registry.c: the registry, health checks and metrics from C.
 *
 * - get-or-create shares one breaker between handles and threads; the bound on breakers;
 * - exact counts in the Prometheus text after 8 threads x N calls through handles taken
 *   from the registry by each thread;
 * - health: a critical open breaker is "down", a non-critical one "degraded"; checks that
 *   pass, fail with a message, are cached for their interval (on a manual clock), and a
 *   check that hangs fails at its timeout without hanging seawall_registry_health; its
 *   user_data is released only after its run returned;
 * - the buffer rules of the rendering functions (too small, NULL, exact size).
 *
 * Build: gcc registry.c $(pkg-config --cflags --libs seawall) -pthread
 * With an argument, also writes the final Prometheus exposition to that file.
 * The last line is "N passed, M failed".
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "check.h"

#define THREADS 8
#define CALLS 5000

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(long ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The whole Prometheus text (malloc'd), grown as the function asks. */
static char *prometheus(seawall_registry *reg) {
    size_t cap = 64, need = 0;
    char *buf = malloc(cap);
    while (buf && seawall_registry_prometheus(reg, buf, cap, &need) == SEAWALL_E_INVALID_ARGUMENT && need > cap) {
        free(buf);
        cap = need;
        buf = malloc(cap);
    }
    return buf;
}

static char *health_json(seawall_registry *reg) {
    size_t need = 0;
    seawall_registry_health_json(reg, NULL, 0, &need);
    char *buf = malloc(need + 4096);
    if (buf && seawall_registry_health_json(reg, buf, need + 4096, &need) != SEAWALL_OK) buf[0] = '\0';
    return buf;
}

/* The value of the sample line that starts with `series` followed by a space, or -1. */
static double sample(const char *text, const char *series) {
    size_t n = strlen(series);
    for (const char *line = text; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        if (strncmp(line, series, n) == 0 && line[n] == ' ') return strtod(line + n + 1, NULL);
    }
    return -1;
}

/* ---- concurrency ---------------------------------------------------------------------- */

typedef struct {
    seawall_registry *reg;
    int id;
    atomic_int *errors;
} worker_arg;

static void *worker(void *p) {
    worker_arg *a = p;
    seawall_breaker *b = NULL;
    if (seawall_registry_breaker(a->reg, "payments", NULL, &b) != SEAWALL_OK) {
        atomic_fetch_add(a->errors, 1);
        return NULL;
    }
    for (int i = 0; i < CALLS; i++) {
        seawall_permit *permit;
        if (seawall_breaker_try_acquire(b, &permit, NULL) != SEAWALL_OK) {
            atomic_fetch_add(a->errors, 1);
            continue;
        }
        seawall_status st;
        switch (i % 4) {
        case 0: st = seawall_permit_failure(permit, 0); break;
        case 1: st = seawall_permit_timeout(permit, 0); break;
        case 2: st = seawall_permit_ignore(permit); break;
        default: st = seawall_permit_success(permit, 0); break;
        }
        if (st != SEAWALL_OK) atomic_fetch_add(a->errors, 1);
        seawall_permit_free(permit);
    }
    seawall_breaker_free(b); /* the breaker stays in the registry */
    return NULL;
}

static void test_counts_under_threads(const char *out_path) {
    seawall_registry *reg = NULL;
    CHECK_OK(seawall_registry_new(NULL, 0, &reg));
    atomic_int errors = 0;
    pthread_t t[THREADS];
    worker_arg args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (worker_arg){.reg = reg, .id = i, .errors = &errors};
        pthread_create(&t[i], NULL, worker, &args[i]);
    }
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    CHECK(atomic_load(&errors) == 0);
    char *text = prometheus(reg);
    CHECK(text != NULL);
    const double quarter = (double)THREADS * CALLS / 4;
    CHECK(sample(text, "seawall_breaker_calls_total{breaker=\"payments\",outcome=\"success\"}") == quarter);
    CHECK(sample(text, "seawall_breaker_calls_total{breaker=\"payments\",outcome=\"failure\"}") == quarter);
    CHECK(sample(text, "seawall_breaker_calls_total{breaker=\"payments\",outcome=\"timeout\"}") == quarter);
    CHECK(sample(text, "seawall_breaker_calls_total{breaker=\"payments\",outcome=\"ignored\"}") == quarter);
    CHECK(sample(text, "seawall_breaker_calls_total{breaker=\"payments\",outcome=\"rejected\"}") == 0);
    CHECK(sample(text, "seawall_breaker_state{breaker=\"payments\",state=\"closed\"}") == 1);
    CHECK(sample(text, "seawall_health_status{status=\"ok\"}") == 1);
    CHECK_CONTAINS(text, "# TYPE seawall_breaker_calls_total counter\n");
    CHECK_CONTAINS(text, "# HELP seawall_breaker_state ");
    /* The same numbers through a handle taken now, and in the JSON snapshot. */
    seawall_breaker *b = NULL;
    CHECK_OK(seawall_registry_breaker(reg, "payments", NULL, &b));
    seawall_snapshot snap;
    CHECK_OK(seawall_breaker_snapshot(b, &snap));
    CHECK_U64(snap.successes, THREADS * CALLS / 4);
    CHECK_U64(snap.failures, THREADS * CALLS / 2); /* timeouts are failures too */
    seawall_breaker_free(b);
    char json[8192];
    size_t need = 0;
    CHECK_OK(seawall_registry_snapshot_json(reg, json, sizeof json, &need));
    CHECK(need == strlen(json) + 1);
    CHECK_CONTAINS(json, "\"payments\":{");
    CHECK_CONTAINS(json, "\"successes\":10000");
    CHECK_CONTAINS(json, "\"health\":{\"checks\":");
    if (out_path) {
        FILE *f = fopen(out_path, "w");
        CHECK(f != NULL);
        if (f) {
            fputs(text, f);
            fclose(f);
        }
    }
    free(text);
    seawall_registry_free(reg);
}

/* ---- buffers -------------------------------------------------------------------------- */

static void test_buffers(void) {
    seawall_registry *reg = NULL;
    CHECK_OK(seawall_registry_new(NULL, 0, &reg));
    seawall_breaker *b = NULL;
    CHECK_OK(seawall_registry_breaker(reg, "db", NULL, &b));
    size_t need = 0;
    CHECK_STATUS(seawall_registry_prometheus(reg, NULL, 0, &need), SEAWALL_E_INVALID_ARGUMENT);
    CHECK(need > 100);
    CHECK_CONTAINS(seawall_last_error(), "buf is too small");
    char small[16];
    memset(small, 'x', sizeof small);
    size_t need2 = 0;
    CHECK_STATUS(seawall_registry_prometheus(reg, small, sizeof small, &need2), SEAWALL_E_INVALID_ARGUMENT);
    CHECK(need2 == need && small[0] == '\0');
    char *exact = malloc(need);
    CHECK_STATUS(seawall_registry_prometheus(reg, exact, need - 1, NULL), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_OK(seawall_registry_prometheus(reg, exact, need, &need2));
    CHECK(strlen(exact) == need - 1 && need2 == need);
    CHECK_CONTAINS(exact, "seawall_breaker_state{breaker=\"db\",state=\"closed\"} 1\n");
    free(exact);
    CHECK_STATUS(seawall_registry_health_json(reg, small, sizeof small, &need), SEAWALL_E_INVALID_ARGUMENT);
    CHECK(need > sizeof small && small[0] == '\0');
    CHECK_STATUS(seawall_registry_snapshot_json(reg, small, 0, &need), SEAWALL_E_INVALID_ARGUMENT);
    CHECK(small[0] == '\0' && need > 16);
    CHECK_STATUS(seawall_registry_prometheus(NULL, small, sizeof small, &need), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "registry is NULL");
    seawall_breaker_free(b);
    seawall_registry_free(reg);
}

/* ---- registry basics ------------------------------------------------------------------ */

static void test_get_or_create_and_bound(void) {
    seawall_registry *reg = NULL;
    CHECK_STATUS(seawall_registry_new(NULL, 0, NULL), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_OK(seawall_registry_new(NULL, 2, &reg));
    seawall_breaker_config *cfg;
    CHECK_OK(seawall_breaker_config_new(&cfg));
    CHECK_OK(seawall_breaker_config_set_int(cfg, "consecutive_failures", 3));
    seawall_breaker *a1 = NULL, *a2 = NULL, *b = NULL, *c = NULL;
    CHECK_OK(seawall_registry_breaker(reg, "a", cfg, &a1));
    CHECK_OK(seawall_registry_breaker(reg, "a", NULL, &a2)); /* existing: keeps its configuration */
    CHECK(a1 != a2);
    CHECK_OK(seawall_breaker_force_open(a1));
    seawall_state s;
    CHECK_OK(seawall_breaker_state(a2, &s));
    CHECK(s == SEAWALL_STATE_FORCED_OPEN);
    const char *name;
    CHECK_OK(seawall_breaker_name(a2, &name));
    CHECK_STR(name, "a");
    CHECK_OK(seawall_breaker_reset(a2));
    for (int i = 0; i < 3; i++) {
        seawall_permit *p;
        CHECK_OK(seawall_breaker_try_acquire(a2, &p, NULL));
        CHECK_OK(seawall_permit_failure(p, 0));
        seawall_permit_free(p);
    }
    CHECK_OK(seawall_breaker_state(a1, &s));
    CHECK(s == SEAWALL_STATE_OPEN); /* a2 used a1's consecutive_failures = 3 */
    CHECK_OK(seawall_breaker_reset(a1));
    /* Errors: names and configurations go through the core's checks. */
    CHECK_STATUS(seawall_registry_breaker(reg, "", NULL, &b), SEAWALL_E_CONFIG);
    CHECK_CONTAINS(seawall_last_error(), "needs a name");
    CHECK_STATUS(seawall_registry_breaker(reg, NULL, NULL, &b), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_STATUS(seawall_registry_breaker(reg, "\xff", NULL, &b), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_STATUS(seawall_registry_breaker(reg, "b", NULL, NULL), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_OK(seawall_breaker_config_set_int(cfg, "half_open_max_calls", 1));
    CHECK_OK(seawall_breaker_config_set_int(cfg, "half_open_success_threshold", 2));
    CHECK_STATUS(seawall_registry_breaker(reg, "bad", cfg, &b), SEAWALL_E_CONFIG);
    CHECK(b == NULL);
    seawall_breaker_config_free(cfg);
    /* Bounded: a third name forgets the least recently used one ("b"; "a" was used last). */
    CHECK_OK(seawall_registry_breaker(reg, "b", NULL, &b));
    seawall_breaker *again = NULL;
    CHECK_OK(seawall_registry_breaker(reg, "a", NULL, &again));
    seawall_breaker_free(again);
    CHECK_OK(seawall_registry_breaker(reg, "c", NULL, &c));
    char *text = prometheus(reg);
    CHECK(text && strstr(text, "breaker=\"a\"") && strstr(text, "breaker=\"c\"") && !strstr(text, "breaker=\"b\""));
    free(text);
    CHECK_OK(seawall_breaker_force_open(b)); /* a forgotten breaker still works through its handle */
    CHECK_OK(seawall_breaker_state(b, &s));
    CHECK(s == SEAWALL_STATE_FORCED_OPEN);
    seawall_health_status h;
    CHECK_OK(seawall_registry_health(reg, &h));
    CHECK(h == SEAWALL_HEALTH_OK); /* ...but is no longer reported */
    bool removed = false;
    CHECK_OK(seawall_registry_remove_breaker(reg, "c", &removed));
    CHECK(removed);
    CHECK_OK(seawall_registry_remove_breaker(reg, "c", &removed));
    CHECK(!removed);
    seawall_breaker_free(a1);
    seawall_breaker_free(a2);
    seawall_breaker_free(b);
    seawall_breaker_free(c);
    seawall_registry_free(reg);
    seawall_registry_free(NULL);
}

/* ---- health --------------------------------------------------------------------------- */

static void test_breaker_health(void) {
    seawall_registry *reg = NULL;
    CHECK_OK(seawall_registry_new(NULL, 0, &reg));
    seawall_breaker_config *cfg;
    CHECK_OK(seawall_breaker_config_new(&cfg));
    CHECK_OK(seawall_breaker_config_set_bool(cfg, "critical", false));
    CHECK_STATUS(seawall_breaker_config_set_int(cfg, "critical", 0), SEAWALL_E_CONFIG);
    CHECK_CONTAINS(seawall_last_error(), "critical");
    seawall_breaker *db = NULL, *recs = NULL;
    CHECK_OK(seawall_registry_breaker(reg, "db", NULL, &db));              /* critical by default */
    CHECK_OK(seawall_registry_breaker(reg, "recommendations", cfg, &recs)); /* not critical */
    seawall_breaker_config_free(cfg);
    seawall_health_status h;
    CHECK_STATUS(seawall_registry_health(reg, NULL), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_OK(seawall_registry_health(reg, &h));
    CHECK(h == SEAWALL_HEALTH_OK);
    CHECK_OK(seawall_breaker_force_open(recs));
    CHECK_OK(seawall_registry_health(reg, &h));
    CHECK(h == SEAWALL_HEALTH_DEGRADED);
    CHECK_STR(seawall_health_status_name(h), "degraded");
    char *json = health_json(reg);
    CHECK_CONTAINS(json, "\"status\":\"degraded\"");
    CHECK_CONTAINS(json, "\"recommendations\":{");
    CHECK_CONTAINS(json, "\"error\":\"breaker is forced_open\"");
    free(json);
    CHECK_OK(seawall_breaker_force_open(db));
    CHECK_OK(seawall_registry_health(reg, &h));
    CHECK(h == SEAWALL_HEALTH_DOWN);
    char *text = prometheus(reg);
    CHECK(sample(text, "seawall_health_status{status=\"down\"}") == 1);
    CHECK(sample(text, "seawall_health_status{status=\"ok\"}") == 0);
    CHECK(sample(text, "seawall_health_check_up{check=\"db\",kind=\"breaker\"}") == 0);
    free(text);
    CHECK_OK(seawall_breaker_reset(db));
    CHECK_OK(seawall_breaker_reset(recs));
    CHECK_OK(seawall_registry_health(reg, &h));
    CHECK(h == SEAWALL_HEALTH_OK);
    CHECK_STR(seawall_health_status_name(SEAWALL_HEALTH_OK), "ok");
    CHECK_STR(seawall_health_status_name(SEAWALL_HEALTH_DOWN), "down");
    CHECK_STR(seawall_health_status_name((seawall_health_status)7), "unknown");
    seawall_breaker_free(db);
    seawall_breaker_free(recs);
    seawall_registry_free(reg);
}

typedef struct {
    atomic_int runs;
    atomic_int fail;      /* 1: fail with a message; 2: fail without one */
    atomic_int released;  /* free_user_data calls */
    atomic_int hang;      /* hang until cleared */
    atomic_int returned;  /* runs that returned */
} check_state;

static int check_fn(void *user_data, char *message, size_t size) {
    check_state *c = user_data;
    atomic_fetch_add(&c->runs, 1);
    while (atomic_load(&c->hang)) sleep_ms(5);
    atomic_fetch_add(&c->returned, 1);
    switch (atomic_load(&c->fail)) {
    case 1: snprintf(message, size, "connection refused by db:5432"); return 1;
    case 2: return 7;
    default: return 0;
    }
}

static void release_fn(void *user_data) {
    check_state *c = user_data;
    atomic_fetch_add(&c->released, 1);
}

static void test_checks(void) {
    seawall_clock *clock = NULL;
    CHECK_OK(seawall_manual_clock_new(&clock));
    seawall_registry *reg = NULL;
    CHECK_OK(seawall_registry_new(clock, 0, &reg));
    static check_state db, cache;
    CHECK_OK(seawall_registry_add_check(reg, "db", check_fn, &db, 1000, 5000, true, release_fn));
    CHECK_OK(seawall_registry_add_check(reg, "cache", check_fn, &cache, 1000, 0, false, release_fn));
    seawall_health_status h;
    /* Interval: a flood of health requests runs "db" once per 5 s; "cache" (0) every time. */
    for (int i = 0; i < 5; i++) CHECK_OK(seawall_registry_health(reg, &h));
    CHECK(h == SEAWALL_HEALTH_OK);
    CHECK(atomic_load(&db.runs) == 1 && atomic_load(&cache.runs) == 5);
    CHECK_OK(seawall_clock_advance_ms(clock, 4999));
    CHECK_OK(seawall_registry_health(reg, &h));
    CHECK(atomic_load(&db.runs) == 1);
    CHECK_OK(seawall_clock_advance_ms(clock, 1));
    CHECK_OK(seawall_registry_health(reg, &h));
    CHECK(atomic_load(&db.runs) == 2);
    /* A failing non-critical check degrades, with its message; a critical one is down. */
    atomic_store(&cache.fail, 1);
    CHECK_OK(seawall_registry_health(reg, &h));
    CHECK(h == SEAWALL_HEALTH_DEGRADED);
    char *json = health_json(reg);
    CHECK_CONTAINS(json, "\"error\":\"connection refused by db:5432\"");
    CHECK_CONTAINS(json, "\"kind\":\"check\"");
    free(json);
    atomic_store(&cache.fail, 2);
    json = health_json(reg);
    CHECK_CONTAINS(json, "\"error\":\"check returned 7\"");
    free(json);
    atomic_store(&db.fail, 1);
    CHECK_OK(seawall_clock_advance_ms(clock, 5000));
    CHECK_OK(seawall_registry_health(reg, &h));
    CHECK(h == SEAWALL_HEALTH_DOWN);
    char *text = prometheus(reg);
    CHECK(sample(text, "seawall_health_check_up{check=\"db\",kind=\"check\"}") == 0);
    free(text);
    /* Configuration of checks goes through the core's checks. */
    CHECK_STATUS(seawall_registry_add_check(reg, "x", check_fn, &db, 0, 0, true, NULL), SEAWALL_E_CONFIG);
    CHECK_CONTAINS(seawall_last_error(), "timeout");
    CHECK_STATUS(seawall_registry_add_check(reg, "x", check_fn, &db, 10, -1, true, NULL), SEAWALL_E_CONFIG);
    CHECK_CONTAINS(seawall_last_error(), "interval");
    CHECK_STATUS(seawall_registry_add_check(reg, "x", NULL, &db, 10, 0, true, NULL), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "check is NULL");
    CHECK_STATUS(seawall_registry_add_check(reg, "", check_fn, &db, 10, 0, true, NULL), SEAWALL_E_CONFIG);
    CHECK_CONTAINS(seawall_last_error(), "name = \"\": a health check needs a name");
    /* Removing a check releases its user_data (no run is in progress). */
    bool removed = false;
    CHECK(atomic_load(&cache.released) == 0);
    CHECK_OK(seawall_registry_remove_check(reg, "cache", &removed));
    CHECK(removed);
    /* Released by whichever thread lets go last: here, or the run's thread as it ends. */
    for (int i = 0; i < 400 && atomic_load(&cache.released) == 0; i++) sleep_ms(5);
    CHECK(atomic_load(&cache.released) == 1);
    CHECK_OK(seawall_registry_remove_check(reg, "cache", &removed));
    CHECK(!removed);
    seawall_registry_free(reg);
    for (int i = 0; i < 400 && atomic_load(&db.released) == 0; i++) sleep_ms(5);
    CHECK(atomic_load(&db.released) == 1);
    sleep_ms(20);
    CHECK(atomic_load(&db.released) == 1 && atomic_load(&cache.released) == 1); /* once each */
    seawall_clock_free(clock);
}

static void test_hanging_check(void) {
    seawall_registry *reg = NULL;
    CHECK_OK(seawall_registry_new(NULL, 0, &reg));
    static check_state stuck, fine;
    atomic_store(&stuck.hang, 1);
    CHECK_OK(seawall_registry_add_check(reg, "stuck", check_fn, &stuck, 100, 0, true, release_fn));
    CHECK_OK(seawall_registry_add_check(reg, "fine", check_fn, &fine, 1000, 0, false, release_fn));
    double t0 = now_ms();
    seawall_health_status h;
    CHECK_OK(seawall_registry_health(reg, &h));
    double took = now_ms() - t0;
    CHECK(h == SEAWALL_HEALTH_DOWN);
    CHECK(took >= 90 && took < 2000); /* waited for the timeout, not for the check */
    CHECK(atomic_load(&fine.runs) == 1 && atomic_load(&stuck.runs) == 1 && atomic_load(&stuck.returned) == 0);
    char *json = health_json(reg); /* a second health run: no second run of the hanging check */
    CHECK_CONTAINS(json, "the previous run has not returned");
    CHECK_CONTAINS(json, "\"status\":\"down\"");
    free(json);
    t0 = now_ms();
    CHECK_OK(seawall_registry_health(reg, &h));
    CHECK(now_ms() - t0 < 1000);
    CHECK(atomic_load(&stuck.runs) == 1);
    /* Freeing the registry does not wait for the hanging run, nor release user data early:
     * the run still holds the registry's checks, so both are released when it returns. */
    t0 = now_ms();
    seawall_registry_free(reg);
    CHECK(now_ms() - t0 < 1000);
    CHECK(atomic_load(&stuck.released) == 0 && atomic_load(&fine.released) == 0);
    atomic_store(&stuck.hang, 0);
    for (int i = 0; i < 400 && atomic_load(&stuck.released) == 0; i++) sleep_ms(5);
    CHECK(atomic_load(&stuck.returned) == 1 && atomic_load(&stuck.released) == 1);
    for (int i = 0; i < 400 && atomic_load(&fine.released) == 0; i++) sleep_ms(5);
    CHECK(atomic_load(&fine.released) == 1);
}

static void test_timed_out_check_message(void) {
    seawall_registry *reg = NULL;
    CHECK_OK(seawall_registry_new(NULL, 0, &reg));
    static check_state slow;
    atomic_store(&slow.hang, 1);
    CHECK_OK(seawall_registry_add_check(reg, "slow", check_fn, &slow, 50, 60000, false, release_fn));
    seawall_health_status h;
    CHECK_OK(seawall_registry_health(reg, &h));
    CHECK(h == SEAWALL_HEALTH_DEGRADED);
    char *json = health_json(reg); /* within the interval: the cached timeout */
    CHECK_CONTAINS(json, "\"error\":\"timed out after 50 ms\"");
    CHECK_CONTAINS(json, "\"status\":\"degraded\"");
    free(json);
    atomic_store(&slow.hang, 0);
    seawall_registry_free(reg);
    for (int i = 0; i < 400 && atomic_load(&slow.released) == 0; i++) sleep_ms(5);
    CHECK(atomic_load(&slow.released) == 1);
}

/* Each idempotency cache in a registry: counted in the metrics, and its store is a health
 * check (`idempotency:<name>`, kind "store"): down or degraded per the cache's `critical`. */
static void test_idempotency_caches_and_store_health(void) {
    seawall_registry *reg = NULL;
    CHECK_OK(seawall_registry_new(NULL, 0, &reg));
    seawall_idem_cache *local = NULL, *same = NULL, *search = NULL, *payments = NULL;
    CHECK_OK(seawall_registry_idem_cache(reg, "local", NULL, &local)); /* memory store */
    CHECK_OK(seawall_registry_idem_cache(reg, "local", NULL, &same));
    CHECK_STATUS(seawall_registry_idem_cache(reg, "", NULL, &same), SEAWALL_E_CONFIG);
    CHECK_STATUS(seawall_registry_idem_cache(reg, NULL, NULL, &same), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_STATUS(seawall_registry_idem_cache(reg, "x", NULL, NULL), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "out_cache");

    /* A Redis store nobody listens on (port 1 on loopback: refused at once). */
    seawall_redis_config *rc = NULL;
    seawall_redis_store *gone = NULL;
    CHECK_OK(seawall_redis_config_new(&rc));
    CHECK_OK(seawall_redis_config_set_str(rc, "url", "redis://127.0.0.1:1"));
    CHECK_OK(seawall_redis_config_set_double(rc, "connect_timeout", 200));
    CHECK_OK(seawall_redis_store_new(rc, &gone));
    seawall_redis_config_free(rc);
    seawall_idem_config *ic = NULL;
    CHECK_OK(seawall_idem_config_new(&ic));
    CHECK_OK(seawall_idem_config_set_redis_store(ic, gone));
    CHECK_OK(seawall_idem_config_set_str(ic, "on_store_error", "run")); /* runs unprotected */
    CHECK_OK(seawall_registry_idem_cache(reg, "search", ic, &search));
    seawall_health_status h;
    CHECK_OK(seawall_registry_health(reg, &h));
    CHECK(h == SEAWALL_HEALTH_DEGRADED);
    char *json = health_json(reg);
    CHECK_CONTAINS(json, "\"idempotency:search\":{");
    CHECK_CONTAINS(json, "\"kind\":\"store\"");
    CHECK_CONTAINS(json, "redis store unavailable: ");
    free(json);
    CHECK_OK(seawall_idem_config_set_str(ic, "on_store_error", "fail")); /* critical by default */
    CHECK_OK(seawall_registry_idem_cache(reg, "payments", ic, &payments));
    CHECK_OK(seawall_registry_health(reg, &h));
    CHECK(h == SEAWALL_HEALTH_DOWN);
    char *text = prometheus(reg);
    CHECK(sample(text, "seawall_health_check_up{check=\"idempotency:payments\",kind=\"store\"}") == 0);
    CHECK(sample(text, "seawall_health_check_up{check=\"idempotency:local\",kind=\"store\"}") == 1);
    free(text);
    CHECK_STATUS(seawall_idem_config_set_int(ic, "critical", 1), SEAWALL_E_CONFIG);
    CHECK_CONTAINS(seawall_last_error(), "critical");
    seawall_idem_config_free(ic);
    seawall_redis_store_free(gone);
    seawall_idem_cache_free(local);
    seawall_idem_cache_free(same);
    seawall_idem_cache_free(search);
    seawall_idem_cache_free(payments);
    seawall_registry_free(reg);
}

int main(int argc, char **argv) {
    test_get_or_create_and_bound();
    test_buffers();
    test_breaker_health();
    test_idempotency_caches_and_store_health();
    test_checks();
    test_hanging_check();
    test_timed_out_check_message();
    test_counts_under_threads(argc > 1 ? argv[1] : NULL);
    return check_report();
}
