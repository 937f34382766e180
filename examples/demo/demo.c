/*
 * The demo scenario of examples/demo/README.md, from C, on a manual clock.
 * Its stdout must be byte-for-byte the same as the Rust, Python and Node demos'.
 *
 * Build: gcc demo.c $(pkg-config --cflags --libs seawall) -o demo
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <seawall.h>

/* Exits with the library's message when a seawall call fails. */
static void must(seawall_status status, const char *what) {
    if (status != SEAWALL_OK) {
        fprintf(stderr, "demo: %s: %s: %s\n", what, seawall_status_name(status), seawall_last_error());
        exit(1);
    }
}

static bool dependency_fails(uint64_t t_ms) {
    return (t_ms >= 2000 && t_ms < 5000) || (t_ms >= 9000 && t_ms < 15000);
}

static void print_event(const seawall_state_change *e, void *user_data) {
    (void)user_data;
    printf("%6llu ms  %s: %s -> %s (%s)\n", (unsigned long long)e->at_ms, e->breaker,
           seawall_state_name(e->from), seawall_state_name(e->to), e->reason);
}

int main(void) {
    seawall_clock *clock = NULL;
    seawall_breaker_config *config = NULL;
    seawall_breaker *breaker = NULL;

    must(seawall_manual_clock_new(&clock), "manual clock");
    must(seawall_breaker_config_new(&config), "config");
    must(seawall_breaker_config_set_str(config, "name", "inventory"), "name");
    must(seawall_breaker_config_set_int(config, "consecutive_failures", 3), "consecutive_failures");
    must(seawall_breaker_config_set_int(config, "open_duration", 2000), "open_duration");
    must(seawall_breaker_config_set_int(config, "open_duration_max", 8000), "open_duration_max");
    must(seawall_breaker_config_set_double(config, "backoff_multiplier", 2.0), "backoff_multiplier");
    must(seawall_breaker_config_set_int(config, "half_open_max_calls", 2), "half_open_max_calls");
    must(seawall_breaker_config_set_int(config, "half_open_success_threshold", 2), "half_open_success_threshold");
    must(seawall_breaker_config_set_clock(config, clock), "clock");
    must(seawall_breaker_new(config, &breaker), "breaker");
    seawall_breaker_config_free(config);
    must(seawall_breaker_on_state_change(breaker, print_event, NULL, NULL), "listener");

    fprintf(stderr, "c: flaky dependency behind a breaker, 40 ticks of 500 ms\n");
    for (uint64_t i = 0; i < 40; i++) {
        uint64_t t = i * 500;
        seawall_permit *permit = NULL;
        seawall_status status = seawall_breaker_try_acquire(breaker, &permit, NULL);
        if (status == SEAWALL_OK) {
            if (dependency_fails(t))
                must(seawall_permit_failure(permit, 10), "failure");
            else
                must(seawall_permit_success(permit, 10), "success");
            seawall_permit_free(permit);
        } else if (status != SEAWALL_E_BREAKER_OPEN) {
            must(status, "try_acquire");
        }
        must(seawall_clock_advance_ms(clock, 500), "advance");
    }

    seawall_snapshot s;
    must(seawall_breaker_snapshot(breaker, &s), "snapshot");
    printf("summary: state=%s successes=%llu failures=%llu rejected=%llu\n", seawall_state_name(s.state),
           (unsigned long long)s.successes, (unsigned long long)s.failures, (unsigned long long)s.rejected);
    seawall_breaker_free(breaker);
    seawall_clock_free(clock);
    return 0;
}
