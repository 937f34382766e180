/*
 * A circuit breaker in front of a flaky call, from C.
 *
 * Build: gcc breaker.c $(pkg-config --cflags --libs seawall) -o breaker
 * (a manual clock makes the run instant and exact; use seawall_system_clock_new in production)
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <seawall.h>

static void must(seawall_status status) {
    if (status != SEAWALL_OK) {
        fprintf(stderr, "seawall: %s: %s\n", seawall_status_name(status), seawall_last_error());
        exit(1);
    }
}

/* The dependency: returns 0 and a price, or -1 when it is down. */
static int fetch_price(bool up, int *price) {
    if (!up) return -1;
    *price = 42;
    return 0;
}

/* Runs fetch_price under the breaker: 0 on success, -1 when it failed, 1 when rejected. */
static int guarded_fetch(seawall_breaker *breaker, seawall_clock *clock, bool up, int *price) {
    seawall_permit *permit = NULL;
    seawall_rejection why;
    seawall_status status = seawall_breaker_try_acquire(breaker, &permit, &why);
    if (status == SEAWALL_E_BREAKER_OPEN) {
        printf("rejected (%s); retry after %llu ms\n", seawall_state_name(why.state),
               (unsigned long long)why.retry_after_ms);
        return 1;
    }
    must(status);
    uint64_t start = 0, end = 0;
    must(seawall_clock_now_ms(clock, &start));
    int rc = fetch_price(up, price);
    must(seawall_clock_now_ms(clock, &end));
    must(rc == 0 ? seawall_permit_success(permit, end - start) : seawall_permit_failure(permit, end - start));
    seawall_permit_free(permit);
    return rc;
}

static void on_change(const seawall_state_change *e, void *user_data) {
    (void)user_data;
    printf("event: %s -> %s (%s)\n", seawall_state_name(e->from), seawall_state_name(e->to), e->reason);
}

int main(void) {
    seawall_clock *clock = NULL;
    seawall_breaker_config *config = NULL;
    seawall_breaker *breaker = NULL;
    must(seawall_manual_clock_new(&clock));
    must(seawall_breaker_config_new(&config));
    must(seawall_breaker_config_set_str(config, "name", "prices"));
    must(seawall_breaker_config_set_int(config, "consecutive_failures", 2));
    must(seawall_breaker_config_set_int(config, "open_duration", 10000)); /* ms */
    must(seawall_breaker_config_set_clock(config, clock));
    must(seawall_breaker_new(config, &breaker));
    seawall_breaker_config_free(config);
    must(seawall_breaker_on_state_change(breaker, on_change, NULL, NULL));

    int price = 0;
    guarded_fetch(breaker, clock, false, &price); /* fails */
    guarded_fetch(breaker, clock, false, &price); /* fails: the breaker opens */
    guarded_fetch(breaker, clock, true, &price);  /* rejected without calling */
    must(seawall_clock_advance_ms(clock, 10000));
    if (guarded_fetch(breaker, clock, true, &price) != 0) return 1; /* the probe succeeds */

    seawall_state state;
    must(seawall_breaker_state(breaker, &state));
    printf("price = %d, state = %s\n", price, seawall_state_name(state));
    seawall_breaker_free(breaker);
    seawall_clock_free(clock);
    return state == SEAWALL_STATE_CLOSED ? 0 : 1;
}
