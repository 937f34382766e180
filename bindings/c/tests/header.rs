//! The committed header `include/seawall.h` must be exactly what cbindgen generates from
//! this crate with `bindings/c/cbindgen.toml`.
//!
//! After changing the C API, regenerate the header with:
//!
//! ```text
//! SEAWALL_BLESS=1 cargo test --release -p seawall-ffi --test header
//! ```
//!
//! (or `scripts/test-c.sh --bless`), then commit `include/seawall.h`.

use std::path::PathBuf;

fn generate() -> String {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("read bindings/c/cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src/lib.rs"))
        .generate()
        .expect("cbindgen failed to generate the header");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("the header is UTF-8")
}

#[test]
fn header_is_up_to_date() {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let path = crate_dir.join("../../include/seawall.h");
    let fresh = generate();
    if std::env::var_os("SEAWALL_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &fresh).expect("write include/seawall.h");
        eprintln!("wrote {}", path.display());
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != fresh {
        let first = committed
            .lines()
            .zip(fresh.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(fresh.lines().count()));
        panic!(
            "include/seawall.h is out of date with bindings/c/src (first difference at line {}).\n\
             Regenerate it with:\n    SEAWALL_BLESS=1 cargo test --release -p seawall-ffi --test header\n\
             and commit the result.",
            first + 1
        );
    }
}

#[test]
fn header_declares_the_spec_names() {
    let h = generate();
    for name in [
        "seawall_breaker_new",
        "seawall_breaker_free",
        "seawall_breaker_try_acquire",
        "seawall_permit_success",
        "seawall_permit_failure",
        "seawall_permit_ignore",
        "seawall_permit_free",
        "seawall_breaker_state",
        "seawall_breaker_snapshot",
        "seawall_breaker_force_open",
        "seawall_breaker_disable",
        "seawall_breaker_reset",
        "seawall_last_error",
        "seawall_manual_clock_new",
        "seawall_clock_advance_ms",
        "seawall_clock_free",
        "typedef struct seawall_breaker seawall_breaker;",
        "typedef enum seawall_status {",
        "SEAWALL_STATE_HALF_OPEN = 2",
        "const char *seawall_state_name(seawall_state state);",
        "const char *seawall_status_name(seawall_status status);",
        "SEAWALL_E_IDEMPOTENCY_IN_PROGRESS = 6",
        "SEAWALL_E_IDEMPOTENCY_MISMATCH = 7",
        "SEAWALL_E_STORE_UNAVAILABLE = 8",
        "SEAWALL_E_LEASE_LOST = 9",
        "SEAWALL_E_CANCELLED = 10",
        "#define SEAWALL_GRPC_TIMEOUT_BUFSIZE 10",
        "typedef struct seawall_deadline seawall_deadline;",
        "seawall_deadline_after_ms(const struct seawall_clock *clock,",
        "seawall_deadline_from_grpc_timeout",
        "seawall_deadline_remaining_ms(",
        "seawall_deadline_remaining_ms_double",
        "seawall_deadline_expired",
        "seawall_deadline_earliest",
        "seawall_deadline_budget_ms",
        "seawall_deadline_to_grpc_timeout",
        "seawall_grpc_timeout_parse_ms",
        "seawall_grpc_timeout_format_ms",
        "seawall_deadline_free",
        "typedef struct seawall_cancel_token seawall_cancel_token;",
        "typedef struct seawall_timer seawall_timer;",
        "SEAWALL_CANCEL_NONE = 0",
        "SEAWALL_CANCEL_CANCELLED = 1",
        "SEAWALL_CANCEL_DEADLINE_EXCEEDED = 2",
        "const char *seawall_cancel_reason_name(seawall_cancel_reason reason);",
        "typedef void (*seawall_cancel_fn)(enum seawall_cancel_reason reason, void *user_data);",
        "seawall_cancel_token_new",
        "seawall_cancel_token_cancel(",
        "seawall_cancel_token_is_cancelled",
        "seawall_cancel_token_reason",
        "seawall_cancel_token_on_cancel",
        "seawall_cancel_token_remove_callback",
        "seawall_cancel_token_cancel_at",
        "seawall_timer_free",
        "seawall_cancel_token_free",
        // Idempotency cache (issue 4).
        "typedef struct seawall_idem_cache seawall_idem_cache;",
        "typedef struct seawall_idem_lease seawall_idem_lease;",
        "typedef struct seawall_idem_record seawall_idem_record;",
        "typedef struct seawall_idem_waiter seawall_idem_waiter;",
        "SEAWALL_IDEM_ERROR = 0",
        "SEAWALL_IDEM_EXECUTE = 1",
        "SEAWALL_IDEM_TAKEN = 6",
        "const char *seawall_idem_outcome_name(seawall_idem_outcome outcome);",
        "const char *seawall_idem_key_state_name(seawall_idem_key_state state);",
        "seawall_idem_config_new",
        "seawall_idem_config_set_int",
        "seawall_idem_config_set_double",
        "seawall_idem_config_set_str",
        "seawall_idem_config_set_bool",
        "seawall_idem_config_set_clock",
        "seawall_idem_cache_new",
        "seawall_idem_cache_free",
        "enum seawall_status seawall_idem_begin(const struct seawall_idem_cache *cache,",
        "seawall_idem_acquire",
        "seawall_idem_complete(",
        "seawall_idem_complete_output",
        "seawall_idem_release",
        "seawall_idem_fail",
        "seawall_idem_renew",
        "seawall_idem_abandon",
        "seawall_idem_lease_free",
        "seawall_idem_waiter_poll",
        "seawall_idem_waiter_wait",
        "seawall_idem_waiter_cancel",
        "seawall_idem_waiter_on_done",
        "seawall_idem_waiter_free",
        "seawall_idem_peek",
        "seawall_idem_cache_stats",
        "seawall_idem_record_result(",
        "seawall_idem_record_content_type",
        "seawall_idem_record_metadata_count",
        "seawall_idem_record_metadata_get",
        "seawall_idem_record_get_info",
        "seawall_idem_record_encode",
        "seawall_idem_record_decode",
        "seawall_idem_record_free",
        "void seawall_bytes_free(struct seawall_bytes *bytes);",
        "uint8_t fingerprint[32];",
        // Registry, health, metrics (issue 6).
        "typedef struct seawall_registry seawall_registry;",
        "seawall_registry_new(const struct seawall_clock *clock,",
        "seawall_registry_free",
        "seawall_registry_breaker(",
        "seawall_registry_add_check(",
        "typedef int (*seawall_check_fn)(void *user_data, char *message, size_t message_size);",
        "#define SEAWALL_CHECK_MESSAGE_SIZE 512",
        "seawall_registry_health(",
        "SEAWALL_HEALTH_DEGRADED = 1",
        "const char *seawall_health_status_name(seawall_health_status status);",
        "seawall_registry_prometheus(",
        "seawall_registry_health_json(",
        "seawall_registry_snapshot_json(",
    ] {
        assert!(h.contains(name), "the header lacks {name:?}");
    }
    assert!(
        !h.contains("StateArg")
            && !h.contains("StatusArg")
            && !h.contains("CancelReasonArg")
            && !h.contains("IdemOutcomeArg")
            && !h.contains("KeyStateArg")
            && !h.contains("HealthStatusArg"),
        "internal type names leaked into the header"
    );
}
