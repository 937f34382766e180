/*
 * conformance_common.h: what the C conformance runners share (conformance.c,
 * conformance_deadline.c, conformance_idempotency.c): reading a scenario file, failure
 * messages, checks of a file's keys and top level, a config option as a C user passes it,
 * the expected configuration error, and main's walk over the scenario directory with its
 * report. Static functions, included once by each runner (like check.h).
 *
 * Each runner's run_t starts with a conformance_run named `base` (the part this code
 * uses); failf(r, ...) writes why the scenario failed into it and returns -1. The breaker
 * and idempotency runners describe themselves in a conformance_runner (build, steps,
 * release) and conformance_run_file replays a file with it.
 */
#ifndef SEAWALL_TEST_CONFORMANCE_COMMON_H
#define SEAWALL_TEST_CONFORMANCE_COMMON_H

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <seawall.h>

/* Not every runner uses every helper. */
#define CONFORMANCE_FN static __attribute__((unused))

static int conformance_failf(char *msg, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
CONFORMANCE_FN int conformance_failf(char *msg, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, n, fmt, ap);
    va_end(ap);
    return -1;
}

/* The first member, `base`, of every runner's run_t. */
typedef struct {
    int step;             /* the step being run; -1: the file or its config */
    seawall_clock *clock; /* the scenario's manual clock (breaker and idempotency runners) */
    char msg[4096];       /* why the scenario failed */
} conformance_run;

/* Writes why the scenario failed into r->base.msg; returns -1. */
#define failf(r, ...) conformance_failf((r)->base.msg, sizeof (r)->base.msg, __VA_ARGS__)

CONFORMANCE_FN const cJSON *get(const cJSON *obj, const char *key) {
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

/* Only `allowed` (and, when `also` is not NULL, the keys of `also`) may appear in `obj`
 * (catches typos in scenario files). Both lists end with NULL. */
CONFORMANCE_FN int conformance_check_keys(char *msg, size_t n, const cJSON *obj, const char *const *allowed,
                                  const char *const *also) {
    for (const cJSON *kv = obj->child; kv; kv = kv->next) {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++) ok |= strcmp(kv->string, *a) == 0;
        for (const char *const *a = also; a && *a; a++) ok |= strcmp(kv->string, *a) == 0;
        if (!ok) return conformance_failf(msg, n, "unknown key \"%s\"", kv->string);
    }
    return 0;
}

#define check_keys(r, obj, allowed) conformance_check_keys((r)->base.msg, sizeof (r)->base.msg, obj, allowed, NULL)
#define check_keys_also(r, obj, allowed, also) \
    conformance_check_keys((r)->base.msg, sizeof (r)->base.msg, obj, allowed, also)

/* The whole file, NUL-terminated (malloc'd), or NULL when it cannot be read. */
CONFORMANCE_FN char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len - 1 == 0) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf) buf[len] = '\0';
    return buf;
}

/* ---- breaker and idempotency files: "name", "config", then steps or a config error ---- */

/* The top level of a file: only its keys, a "name" string and a "config" object. */
CONFORMANCE_FN int conformance_scenario_config(char *msg, size_t n, const cJSON *doc, const cJSON **config) {
    static const char *const keys[] = {"name", "config", "steps", "expect_config_error", NULL};
    if (!cJSON_IsObject(doc)) return conformance_failf(msg, n, "the file is not a JSON object");
    if (conformance_check_keys(msg, n, doc, keys, NULL)) return -1;
    if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(doc, "name")))
        return conformance_failf(msg, n, "missing \"name\" (a string)");
    *config = cJSON_GetObjectItemCaseSensitive(doc, "config");
    if (!cJSON_IsObject(*config)) return conformance_failf(msg, n, "missing \"config\" (an object)");
    return 0;
}

/* An "expect_config_error" object against the status of the build (`noun`: what was built). */
CONFORMANCE_FN int conformance_check_config_error(char *msg, size_t n, const cJSON *expected, seawall_status status,
                                          const char *noun) {
    static const char *const keys[] = {"field", "type_error", NULL};
    if (!cJSON_IsObject(expected)) return conformance_failf(msg, n, "\"expect_config_error\" must be an object");
    if (conformance_check_keys(msg, n, expected, keys, NULL)) return -1;
    const cJSON *field = cJSON_GetObjectItemCaseSensitive(expected, "field");
    if (!cJSON_IsString(field)) return conformance_failf(msg, n, "\"expect_config_error\" needs \"field\" (a string)");
    const cJSON *type_error = cJSON_GetObjectItemCaseSensitive(expected, "type_error");
    if (type_error && !cJSON_IsBool(type_error)) return conformance_failf(msg, n, "\"type_error\" must be a boolean");
    /* "type_error" concerns Node (TypeError); C has one status for every config error. */
    if (status == SEAWALL_OK)
        return conformance_failf(msg, n, "expected SEAWALL_E_CONFIG naming \"%s\", but the %s was built",
                                 field->valuestring, noun);
    if (status != SEAWALL_E_CONFIG)
        return conformance_failf(msg, n, "expected SEAWALL_E_CONFIG naming \"%s\", got %s: %s", field->valuestring,
                                 seawall_status_name(status), seawall_last_error());
    if (strcmp(seawall_status_name(status), "SEAWALL_CONFIG") != 0)
        return conformance_failf(msg, n, "seawall_status_name(SEAWALL_E_CONFIG) is %s", seawall_status_name(status));
    if (!strstr(seawall_last_error(), field->valuestring))
        return conformance_failf(msg, n, "expected a config error naming \"%s\", got: %s", field->valuestring,
                                 seawall_last_error());
    return 0;
}

/* After the build (`status`): a file with "expect_config_error" is checked and done (1 when
 * it passed, -1 when not); otherwise *steps is its non-empty "steps" array, the build must
 * have succeeded, and 0 is returned. */
CONFORMANCE_FN int conformance_scenario_steps(char *msg, size_t n, const cJSON *doc, seawall_status status,
                                      const char *noun, const cJSON **steps) {
    const cJSON *expect_error = cJSON_GetObjectItemCaseSensitive(doc, "expect_config_error");
    *steps = cJSON_GetObjectItemCaseSensitive(doc, "steps");
    if (expect_error) {
        if (*steps) return conformance_failf(msg, n, "a scenario with \"expect_config_error\" must not have \"steps\"");
        return conformance_check_config_error(msg, n, expect_error, status, noun) ? -1 : 1;
    }
    if (!cJSON_IsArray(*steps) || cJSON_GetArraySize(*steps) == 0)
        return conformance_failf(msg, n, "missing \"steps\" (a non-empty array)");
    if (status != SEAWALL_OK)
        return conformance_failf(msg, n, "expected the %s to build, got %s: %s", noun, seawall_status_name(status),
                                 seawall_last_error());
    return 0;
}

/* One config option as a C user passes it: the key without its "_ms" suffix, and the JSON
 * type picks the setter (bool, int for a whole number in range, double, string; "NaN",
 * "Infinity" and "-Infinity" are doubles). */
typedef enum { OPTION_BOOL, OPTION_INT, OPTION_DOUBLE, OPTION_STR } option_kind;

typedef struct {
    char key[128];
    option_kind kind;
    bool b;
    int64_t i;
    double d;
    const char *s;
} option_t;

CONFORMANCE_FN const char *json_type(const cJSON *v) {
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsArray(v)) return "array";
    if (cJSON_IsObject(v)) return "object";
    return "unknown";
}

CONFORMANCE_FN int conformance_option(char *msg, size_t n, const cJSON *kv, option_t *o) {
    snprintf(o->key, sizeof o->key, "%s", kv->string ? kv->string : "(null)");
    size_t len = strlen(o->key);
    if (len > 3 && strcmp(o->key + len - 3, "_ms") == 0) o->key[len - 3] = '\0';
    if (cJSON_IsBool(kv)) {
        o->kind = OPTION_BOOL;
        o->b = cJSON_IsTrue(kv);
    } else if (cJSON_IsNumber(kv)) {
        double d = kv->valuedouble;
        if (d >= -9.2e18 && d <= 9.2e18 && d == floor(d)) {
            o->kind = OPTION_INT;
            o->i = (int64_t)d;
        } else {
            o->kind = OPTION_DOUBLE;
            o->d = d;
        }
    } else if (cJSON_IsString(kv)) {
        const char *s = kv->valuestring;
        o->kind = OPTION_DOUBLE;
        if (strcmp(s, "NaN") == 0) {
            o->d = NAN;
        } else if (strcmp(s, "Infinity") == 0) {
            o->d = INFINITY;
        } else if (strcmp(s, "-Infinity") == 0) {
            o->d = -INFINITY;
        } else {
            o->kind = OPTION_STR;
            o->s = s;
        }
    } else {
        return conformance_failf(msg, n,
                                 "config \"%s\": a JSON %s has no C equivalent (the C API takes numbers, "
                                 "strings and booleans)",
                                 kv->string, json_type(kv));
    }
    return 0;
}

#define config_option(r, kv, o) conformance_option((r)->base.msg, sizeof (r)->base.msg, kv, o)

/* A breaker or idempotency runner: what conformance_run_file needs of it. Its callbacks
 * get the run's `base` (the first member of its run_t, so a cast gives the run_t back). */
typedef struct {
    const char *noun; /* what a config builds, in messages: "breaker", "cache" */
    size_t size;      /* sizeof its run_t */
    /* Builds the object on run->clock through the C API; *status: the first non-OK status. */
    int (*build)(conformance_run *run, const cJSON *config, seawall_status *status);
    /* Optional: called when the object is built, before the first step. */
    int (*ready)(conformance_run *run, const cJSON *config);
    int (*step)(conformance_run *run, const cJSON *s);
    /* Frees what the run holds, but its clock and the run itself. */
    void (*release)(conformance_run *run);
} conformance_runner;

CONFORMANCE_FN int conformance_run_doc(const conformance_runner *rn, conformance_run *run, const cJSON *doc) {
    const cJSON *config = NULL, *steps = NULL;
    if (conformance_scenario_config(run->msg, sizeof run->msg, doc, &config)) return -1;
    if (seawall_manual_clock_new(&run->clock) != SEAWALL_OK)
        return conformance_failf(run->msg, sizeof run->msg, "seawall_manual_clock_new: %s", seawall_last_error());
    seawall_status status;
    if (rn->build(run, config, &status)) return -1;
    int rc = conformance_scenario_steps(run->msg, sizeof run->msg, doc, status, rn->noun, &steps);
    if (rc) return rc > 0 ? 0 : -1;
    if (rn->ready && rn->ready(run, config)) return -1;
    run->step = 0;
    for (const cJSON *s = steps->child; s; s = s->next, run->step++)
        if (rn->step(run, s)) return -1;
    return 0;
}

/* Replays dir/file on a fresh run; prints "ok   FILE", "FAIL FILE [config]: why" (the file
 * or its config) or "FAIL FILE [step N]: why". 0 when it passed. */
CONFORMANCE_FN int conformance_run_file(const conformance_runner *rn, const char *dir, const char *file) {
    conformance_run *run = calloc(1, rn->size);
    if (!run) {
        printf("FAIL %s: out of memory\n", file);
        return -1;
    }
    run->step = -1;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int rc;
    char *text = read_file(path);
    cJSON *doc = text ? cJSON_Parse(text) : NULL;
    if (!text)
        rc = conformance_failf(run->msg, sizeof run->msg, "cannot read %s", path);
    else if (!doc)
        rc = conformance_failf(run->msg, sizeof run->msg, "invalid JSON near: %.40s",
                               cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() : "?");
    else
        rc = conformance_run_doc(rn, run, doc);
    if (rc == 0)
        printf("ok   %s\n", file);
    else if (run->step < 0)
        printf("FAIL %s [config]: %s\n", file, run->msg);
    else
        printf("FAIL %s [step %d]: %s\n", file, run->step, run->msg);
    rn->release(run);
    seawall_clock_free(run->clock);
    cJSON_Delete(doc);
    free(text);
    free(run);
    return rc;
}

/* ---- main ------------------------------------------------------------------------------ */

CONFORMANCE_FN int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replays every *.json file of the directory (argv[1], else $env, else default_dir) in name
 * order with run_file (0: passed; it prints the file's line). Prints
 * "conformance (C): P of N <kind> scenarios passed" and, last, "P passed, F failed"; returns
 * the exit status: non-zero when a scenario failed or when no scenario file was found. */
CONFORMANCE_FN int conformance_main(int argc, char **argv, const char *prog, const char *env, const char *default_dir,
                            const char *kind, int (*run_file)(const char *dir, const char *file)) {
    const char *dir = argc > 1 ? argv[1] : getenv(env);
    if (!dir) dir = default_dir;
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "%s: cannot open scenario directory %s\n", prog, dir);
        printf("0 passed, 1 failed\n");
        return 1;
    }
    char **files = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **bigger = realloc(files, cap * sizeof *files);
            if (!bigger) return 1;
            files = bigger;
        }
        files[n++] = strdup(e->d_name);
    }
    closedir(d);
    if (n == 0) {
        fprintf(stderr, "%s: no scenario files (*.json) found in %s\n", prog, dir);
        printf("0 passed, 1 failed\n");
        return 1;
    }
    qsort(files, n, sizeof *files, by_name);
    int passed = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        if (run_file(dir, files[i]) == 0)
            passed++;
        else
            failed++;
        free(files[i]);
    }
    free(files);
    printf("conformance (C): %d of %zu %s scenarios passed\n", passed, n, kind);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}

#endif /* SEAWALL_TEST_CONFORMANCE_COMMON_H */
