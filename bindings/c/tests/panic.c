/*
 * panic.c: panic containment through the real entry points. seawall_internal_test_arm_panic
 * makes the core panic once at a site (see core/src/failpoint.rs); the C call that reaches
 * it must return SEAWALL_E_INTERNAL with the panic's message, never unwind into C or
 * abort, and the object must be usable afterwards (docs/hardening.md, "Panic containment").
 */
#include <stdint.h>
#include <stdlib.h>

#include "check.h"

#define KEY(s) (const uint8_t *)(s), sizeof(s) - 1

static seawall_state state_of(seawall_breaker *b) {
    seawall_state s = SEAWALL_STATE_CLOSED;
    CHECK_OK(seawall_breaker_state(b, &s));
    return s;
}

static void fail_once(seawall_breaker *b, seawall_status want) {
    seawall_permit *p = NULL;
    CHECK_OK(seawall_breaker_try_acquire(b, &p, NULL));
    CHECK_STATUS(seawall_permit_failure(p, 0), want);
    seawall_permit_free(p);
}

static void test_breaker(void) {
    seawall_breaker_config *cfg = NULL;
    seawall_breaker *b = NULL;
    CHECK_OK(seawall_breaker_config_new(&cfg));
    CHECK_OK(seawall_breaker_config_set_int(cfg, "consecutive_failures", 2));
    CHECK_OK(seawall_breaker_new(cfg, &b));
    seawall_breaker_config_free(cfg);
    fail_once(b, SEAWALL_OK);
    CHECK_OK(seawall_internal_test_arm_panic("breaker.trip"));
    fail_once(b, SEAWALL_E_INTERNAL); /* the failure that trips panics inside the core */
    CHECK_CONTAINS(seawall_last_error(), "panic");
    CHECK_CONTAINS(seawall_last_error(), "breaker.trip");
    CHECK(state_of(b) == SEAWALL_STATE_CLOSED); /* still closed, lock released */
    fail_once(b, SEAWALL_OK);
    CHECK(state_of(b) == SEAWALL_STATE_OPEN); /* and the next failure trips it */
    seawall_breaker_free(b);
}

static void test_idempotency(void) {
    seawall_idem_config *cfg = NULL;
    seawall_idem_cache *cache = NULL;
    CHECK_OK(seawall_idem_config_new(&cfg));
    CHECK_OK(seawall_idem_cache_new(cfg, &cache));
    seawall_idem_config_free(cfg);
    seawall_idem_begin_result res;
    CHECK_OK(seawall_internal_test_arm_panic("idempotency.begin"));
    CHECK_STATUS(seawall_idem_begin(cache, KEY("order-1"), NULL, 0, &res), SEAWALL_E_INTERNAL);
    CHECK_CONTAINS(seawall_last_error(), "idempotency.begin");
    CHECK(res.outcome == SEAWALL_IDEM_ERROR && res.lease == NULL);
    CHECK_OK(seawall_idem_begin(cache, KEY("order-1"), NULL, 0, &res)); /* nothing was claimed */
    CHECK(res.outcome == SEAWALL_IDEM_EXECUTE && res.lease != NULL);
    CHECK_OK(seawall_idem_release(cache, res.lease));
    seawall_idem_lease_free(res.lease);
    seawall_idem_cache_free(cache);
}

static void test_registry(void) {
    seawall_registry *reg = NULL;
    seawall_breaker *db = NULL;
    CHECK_OK(seawall_registry_new(NULL, 0, &reg));
    CHECK_OK(seawall_registry_breaker(reg, "db", NULL, &db));
    size_t size = 1 << 16, needed = 0;
    char *buf = malloc(size);
    CHECK_OK(seawall_internal_test_arm_panic("registry.render"));
    CHECK_STATUS(seawall_registry_prometheus(reg, buf, size, &needed), SEAWALL_E_INTERNAL);
    CHECK_CONTAINS(seawall_last_error(), "registry.render");
    CHECK_OK(seawall_registry_prometheus(reg, buf, size, &needed));
    CHECK_CONTAINS(buf, "seawall_breaker_state{breaker=\"db\"");
    free(buf);
    seawall_breaker_free(db);
    seawall_registry_free(reg);
}

int main(void) {
    CHECK_STATUS(seawall_internal_test_arm_panic("nowhere"), SEAWALL_E_INVALID_ARGUMENT);
    CHECK_CONTAINS(seawall_last_error(), "site = \"nowhere\"");
    CHECK_STATUS(seawall_internal_test_arm_panic(NULL), SEAWALL_E_INVALID_ARGUMENT);
    test_breaker();
    test_idempotency();
    test_registry();
    CHECK_OK(seawall_internal_test_arm_panic("registry.render"));
    seawall_internal_test_disarm_panics();
    seawall_registry *reg = NULL;
    char buf[4096];
    size_t needed = 0;
    CHECK_OK(seawall_registry_new(NULL, 0, &reg));
    CHECK_OK(seawall_registry_prometheus(reg, buf, sizeof buf, &needed)); /* disarmed */
    seawall_registry_free(reg);
    return check_report();
}
