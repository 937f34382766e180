//! Metrics in the Prometheus text exposition format (version 0.0.4).
//!
//! The counters live in the primitives as atomics on their hot paths; this module only
//! renders them, so a scrape costs one snapshot per primitive. We render the format by
//! hand rather than through a Prometheus crate: the crates keep their own registry of
//! metric objects, so every counter would exist twice (or need a custom collector per
//! scrape), while the text format is a few lines of documented syntax. The tests parse
//! the output with a real parser (Python's `prometheus_client`), and every language
//! serves this one rendering, so names, labels and help text are identical everywhere.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `seawall_breaker_state` | gauge (1 for the current state) | `breaker`, `state` |
//! | `seawall_breaker_calls_total` | counter | `breaker`, `outcome` = `success`, `failure`, `timeout`, `ignored`, `rejected` |
//! | `seawall_breaker_slow_calls_total` | counter | `breaker` |
//! | `seawall_breaker_fallbacks_total` | counter (rejected calls served by a fallback: degraded) | `breaker` |
//! | `seawall_breaker_transitions_total` | counter | `breaker`, `from`, `to` |
//! | `seawall_breaker_failure_rate`, `seawall_breaker_slow_call_rate` | gauge (current window) | `breaker` |
//! | `seawall_idempotency_requests_total` | counter (what `begin` answered) | `cache`, `result` = `execute`, `replay`, `in_progress`, `mismatch` |
//! | `seawall_idempotency_events_total` | counter | `cache`, `event` = `waited`, `taken_over`, `completed`, `released`, `abandoned`, `lease_lost`, `store_error`, `unprotected` |
//! | `seawall_health_status` | gauge (1 for the current status) | `status` |
//! | `seawall_health_check_up` | gauge (1 passing, 0 failing) | `check`, `kind` |

use std::fmt::Write;

use crate::breaker::{Snapshot, State};
use crate::health::HealthStatus;
use crate::idempotency::IdempotencyStats;
use crate::registry::Health;

/// Escapes a label value: backslash, double quote and newline.
pub fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn float(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else {
        format!("{x}")
    }
}

/// Renders breaker snapshots and a health report.
pub(crate) fn render(breakers: &[Snapshot], caches: &[(String, IdempotencyStats)], health: &Health) -> String {
    crate::failpoint::hit(crate::failpoint::Site::RegistryRender);
    let mut out = String::new();
    let label = |s: &Snapshot| escape_label(&s.name);

    family(&mut out, "seawall_breaker_state", "gauge", "Breaker state: 1 for the current state, 0 for the others.");
    for s in breakers {
        for st in State::ALL {
            let v = u8::from(s.state == st);
            let _ = writeln!(out, "seawall_breaker_state{{breaker=\"{}\",state=\"{}\"}} {v}", label(s), st.as_str());
        }
    }
    family(&mut out, "seawall_breaker_calls_total", "counter", "Calls through the breaker, by outcome.");
    for s in breakers {
        let failures_without_timeouts = s.failures.saturating_sub(s.timeouts);
        for (outcome, n) in [
            ("success", s.successes),
            ("failure", failures_without_timeouts),
            ("timeout", s.timeouts),
            ("ignored", s.ignored),
            ("rejected", s.rejected),
        ] {
            let _ = writeln!(out, "seawall_breaker_calls_total{{breaker=\"{}\",outcome=\"{outcome}\"}} {n}", label(s));
        }
    }
    family(&mut out, "seawall_breaker_slow_calls_total", "counter", "Calls at least slow_call_duration long.");
    for s in breakers {
        let _ = writeln!(out, "seawall_breaker_slow_calls_total{{breaker=\"{}\"}} {}", label(s), s.slow);
    }
    family(
        &mut out,
        "seawall_breaker_fallbacks_total",
        "counter",
        "Rejected calls answered by a fallback (degraded service).",
    );
    for s in breakers {
        let _ = writeln!(out, "seawall_breaker_fallbacks_total{{breaker=\"{}\"}} {}", label(s), s.fallbacks);
    }
    family(&mut out, "seawall_breaker_transitions_total", "counter", "Breaker state changes, by from and to state.");
    for s in breakers {
        for (from, to, n) in &s.transitions {
            let _ = writeln!(
                out,
                "seawall_breaker_transitions_total{{breaker=\"{}\",from=\"{}\",to=\"{}\"}} {n}",
                label(s),
                from.as_str(),
                to.as_str()
            );
        }
    }
    family(&mut out, "seawall_breaker_failure_rate", "gauge", "Failures / recorded calls in the current window.");
    for s in breakers {
        let _ = writeln!(out, "seawall_breaker_failure_rate{{breaker=\"{}\"}} {}", label(s), float(s.failure_rate));
    }
    family(&mut out, "seawall_breaker_slow_call_rate", "gauge", "Slow calls / recorded calls in the current window.");
    for s in breakers {
        let _ = writeln!(out, "seawall_breaker_slow_call_rate{{breaker=\"{}\"}} {}", label(s), float(s.slow_call_rate));
    }
    family(&mut out, "seawall_idempotency_requests_total", "counter", "Idempotency requests, by what begin answered.");
    for (name, st) in caches {
        for (result, n) in [
            ("execute", st.executed),
            ("replay", st.replayed),
            ("in_progress", st.in_progress),
            ("mismatch", st.mismatched),
        ] {
            let _ = writeln!(
                out,
                "seawall_idempotency_requests_total{{cache=\"{}\",result=\"{result}\"}} {n}",
                escape_label(name)
            );
        }
    }
    family(&mut out, "seawall_idempotency_events_total", "counter", "Idempotency lease and store events.");
    for (name, st) in caches {
        for (event, n) in [
            ("waited", st.waited),
            ("taken_over", st.taken_over),
            ("completed", st.completed),
            ("released", st.released),
            ("abandoned", st.abandoned),
            ("lease_lost", st.lease_lost),
            ("store_error", st.store_errors),
            ("unprotected", st.unprotected),
        ] {
            let _ = writeln!(
                out,
                "seawall_idempotency_events_total{{cache=\"{}\",event=\"{event}\"}} {n}",
                escape_label(name)
            );
        }
    }
    family(&mut out, "seawall_health_status", "gauge", "Service health: 1 for the current status, 0 for the others.");
    for st in [HealthStatus::Ok, HealthStatus::Degraded, HealthStatus::Down] {
        let _ = writeln!(out, "seawall_health_status{{status=\"{}\"}} {}", st.as_str(), u8::from(health.status == st));
    }
    family(&mut out, "seawall_health_check_up", "gauge", "Health check or breaker: 1 passing, 0 failing.");
    for c in &health.checks {
        let _ = writeln!(
            out,
            "seawall_health_check_up{{check=\"{}\",kind=\"{}\"}} {}",
            escape_label(&c.name),
            c.kind,
            u8::from(c.ok)
        );
    }
    out
}
