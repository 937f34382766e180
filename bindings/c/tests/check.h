/*
 * check.h: the few assertion macros the C tests share. Every check counts as passed or
 * failed; a program ends with check_report(), which prints "N passed, M failed" as its
 * last line and returns the exit status (non-zero when a check failed or none ran).
 */
#ifndef SEAWALL_TEST_CHECK_H
#define SEAWALL_TEST_CHECK_H

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <seawall.h>

static atomic_int check_passed;
static atomic_int check_failed;

static void check_fail_at(int line, const char *what, const char *detail) {
    atomic_fetch_add(&check_failed, 1);
    fprintf(stderr, "FAIL line %d: %s%s%s\n", line, what, detail[0] ? ": " : "", detail);
}

#define CHECK(cond)                                                    \
    do {                                                               \
        if (cond) {                                                    \
            atomic_fetch_add(&check_passed, 1);                        \
        } else {                                                       \
            check_fail_at(__LINE__, #cond, "");                        \
        }                                                              \
    } while (0)

/* The call returns `want`; on a mismatch both status names and the last error are shown. */
#define CHECK_STATUS(call, want)                                                        \
    do {                                                                                \
        seawall_status got_ = (call);                                                   \
        seawall_status want_ = (want);                                                  \
        if (got_ == want_) {                                                            \
            atomic_fetch_add(&check_passed, 1);                                         \
        } else {                                                                        \
            char detail_[512];                                                          \
            snprintf(detail_, sizeof detail_, "got %s, want %s (last error: %s)",      \
                     seawall_status_name(got_), seawall_status_name(want_),            \
                     seawall_last_error());                                            \
            check_fail_at(__LINE__, #call, detail_);                                    \
        }                                                                               \
    } while (0)

#define CHECK_OK(call) CHECK_STATUS(call, SEAWALL_OK)

/* `haystack` contains `needle`. */
#define CHECK_CONTAINS(haystack, needle)                                                \
    do {                                                                                \
        const char *h_ = (haystack);                                                    \
        const char *n_ = (needle);                                                      \
        if (h_ != NULL && strstr(h_, n_) != NULL) {                                     \
            atomic_fetch_add(&check_passed, 1);                                         \
        } else {                                                                        \
            char detail_[512];                                                          \
            snprintf(detail_, sizeof detail_, "\"%s\" does not contain \"%s\"",        \
                     h_ ? h_ : "(null)", n_);                                           \
            check_fail_at(__LINE__, #haystack, detail_);                                \
        }                                                                               \
    } while (0)

#define CHECK_STR(actual, expected)                                                     \
    do {                                                                                \
        const char *a_ = (actual);                                                      \
        const char *e_ = (expected);                                                    \
        if (a_ != NULL && strcmp(a_, e_) == 0) {                                        \
            atomic_fetch_add(&check_passed, 1);                                         \
        } else {                                                                        \
            char detail_[512];                                                          \
            snprintf(detail_, sizeof detail_, "got \"%s\", want \"%s\"",               \
                     a_ ? a_ : "(null)", e_);                                           \
            check_fail_at(__LINE__, #actual, detail_);                                  \
        }                                                                               \
    } while (0)

#define CHECK_U64(actual, expected)                                                     \
    do {                                                                                \
        unsigned long long a_ = (unsigned long long)(actual);                           \
        unsigned long long e_ = (unsigned long long)(expected);                         \
        if (a_ == e_) {                                                                 \
            atomic_fetch_add(&check_passed, 1);                                         \
        } else {                                                                        \
            char detail_[128];                                                          \
            snprintf(detail_, sizeof detail_, "got %llu, want %llu", a_, e_);           \
            check_fail_at(__LINE__, #actual, detail_);                                  \
        }                                                                               \
    } while (0)

static int check_report(void) {
    int passed = atomic_load(&check_passed);
    int failed = atomic_load(&check_failed);
    printf("%d passed, %d failed\n", passed, failed);
    return (failed == 0 && passed > 0) ? 0 : 1;
}

#endif /* SEAWALL_TEST_CHECK_H */
