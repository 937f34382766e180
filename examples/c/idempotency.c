/*
 * An idempotent "charge" endpoint, from C: a client retries the same request (same
 * Idempotency-Key, same body) and the charge runs once; every retry gets the first
 * response, status included. The same key with another body is refused (HTTP 422). A
 * failure before any side effect releases the key, so the retry runs the charge again.
 *
 * Build: gcc idempotency.c $(pkg-config --cflags --libs seawall) -o idempotency
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <seawall.h>

static void must(seawall_status status) {
    if (status != SEAWALL_OK) {
        fprintf(stderr, "seawall: %s: %s\n", seawall_status_name(status), seawall_last_error());
        exit(1);
    }
}

static int charges; /* how many times the card was actually charged */

/* The operation: charges the card, or fails (before charging) when `fail` is set. */
static int charge(const char *body, char *receipt, size_t size, int fail) {
    if (fail) return -1;
    charges++;
    snprintf(receipt, size, "{\"charge\":\"ch_%d\",\"request\":%s}", charges, body);
    return 0;
}

/* Prints a stored response: status from the metadata, then the body. */
static void respond(const char *how, const seawall_idem_record *rec) {
    const uint8_t *body;
    size_t len;
    const char *name, *status = "200";
    size_t n = 0;
    must(seawall_idem_record_result(rec, &body, &len));
    must(seawall_idem_record_metadata_count(rec, &n));
    for (size_t i = 0; i < n; i++) {
        const char *value;
        must(seawall_idem_record_metadata_get(rec, i, &name, NULL, &value, NULL));
        if (strcmp(name, "status") == 0) status = value;
    }
    printf("%s -> %s %.*s\n", how, status, (int)len, (const char *)body);
}

/* The request handler: blocks while a duplicate of this request is being served elsewhere. */
static void handle(seawall_idem_cache *cache, const char *key, const char *body, int fail) {
    seawall_idem_begin_result r;
    seawall_status st = seawall_idem_acquire(cache, (const uint8_t *)key, strlen(key), (const uint8_t *)body,
                                             strlen(body), &r);
    if (st == SEAWALL_E_IDEMPOTENCY_MISMATCH) {
        printf("key %s, other body -> 422 (%s)\n", key, seawall_status_name(st));
        return;
    }
    if (st == SEAWALL_E_IDEMPOTENCY_IN_PROGRESS) {
        printf("key %s -> 409, retry after %llu ms\n", key, (unsigned long long)r.retry_after_ms);
        return;
    }
    must(st);
    if (r.outcome == SEAWALL_IDEM_REPLAY) {
        respond("replayed", r.record);
        seawall_idem_record_free(r.record);
        return;
    }
    /* SEAWALL_IDEM_EXECUTE: this request owns the key. */
    char receipt[256];
    if (charge(body, receipt, sizeof receipt, fail) != 0) {
        must(seawall_idem_fail(cache, r.lease, NULL, NULL)); /* nothing happened: let a retry run */
        seawall_idem_lease_free(r.lease);
        printf("failed before charging -> 503 (key released)\n");
        return;
    }
    seawall_idem_metadata md[] = {{"status", "201"}};
    seawall_idem_output out = {.result = (const uint8_t *)receipt, .result_len = strlen(receipt),
                               .content_type = "application/json", .metadata = md, .metadata_count = 1};
    seawall_idem_record *rec = NULL;
    must(seawall_idem_complete_output(cache, r.lease, &out, &rec));
    seawall_idem_lease_free(r.lease);
    respond("executed", rec); /* exactly what every retry will get */
    seawall_idem_record_free(rec);
}

int main(void) {
    seawall_idem_config *config = NULL;
    seawall_idem_cache *cache = NULL;
    must(seawall_idem_config_new(&config));
    must(seawall_idem_config_set_str(config, "name", "payments"));
    must(seawall_idem_config_set_int(config, "ttl", 24 * 3600 * 1000)); /* ms */
    must(seawall_idem_config_set_int(config, "lease", 30000));
    must(seawall_idem_cache_new(config, &cache));
    seawall_idem_config_free(config);

    const char *body = "{\"amount\":100}";
    handle(cache, "key-1", body, 1); /* fails before charging */
    handle(cache, "key-1", body, 0); /* the retry runs */
    handle(cache, "key-1", body, 0); /* retries replay */
    handle(cache, "key-1", body, 0);
    handle(cache, "key-1", "{\"amount\":999}", 0);

    seawall_idem_stats st;
    must(seawall_idem_cache_stats(cache, &st));
    printf("charges: %d; executed %llu, replayed %llu, released %llu, mismatched %llu\n", charges,
           (unsigned long long)st.executed, (unsigned long long)st.replayed, (unsigned long long)st.released,
           (unsigned long long)st.mismatched);
    seawall_idem_cache_free(cache);
    return 0;
}
