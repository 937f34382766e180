//! The Rust surface of the breaker: helpers, listeners, permits and config errors.
//! (Rule-by-rule behaviour is covered by the conformance scenarios.)

use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use seawall::{
    BreakerConfig, CallError, CircuitBreaker, ConfigValue, DurationUnit, Error, ErrorCode, ManualClock, Naming, Outcome,
    State, Style,
};

fn breaker(n: u32) -> (CircuitBreaker, Arc<ManualClock>) {
    let clock = ManualClock::shared();
    let b = CircuitBreaker::new(
        BreakerConfig { consecutive_failures: Some(n), open_duration: Duration::from_secs(1), ..BreakerConfig::named("t") }
            .with_clock(clock.clone()),
    )
    .unwrap();
    (b, clock)
}

/// Polls a future that never waits to completion (the test futures are ready at once).
fn block_on<F: Future>(f: F) -> F::Output {
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    let waker = Waker::from(Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    let mut f = pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

#[test]
fn call_counts_errors_and_rejects_when_open() {
    let (b, _) = breaker(2);
    assert_eq!(b.call(|| Ok::<_, ()>(1)), Ok(1));
    assert_eq!(b.call(|| Err::<(), _>("x")), Err(CallError::Failed("x")));
    assert_eq!(b.call(|| Err::<(), _>("y")), Err(CallError::Failed("y")));
    match b.call(|| Ok::<_, ()>(1)) {
        Err(CallError::Rejected(r)) => {
            assert_eq!(r.state, State::Open);
            assert_eq!(r.retry_after, Duration::from_secs(1));
            assert_eq!(&*r.breaker, "t");
        }
        other => panic!("{other:?}"),
    }
    let s = b.snapshot();
    assert_eq!((s.successes, s.failures, s.rejected), (1, 2, 1));
}

#[test]
fn call_classified_can_ignore_errors() {
    let (b, _) = breaker(1);
    let r = b.call_classified(|| Err::<(), _>("not found"), |_| Outcome::Ignore);
    assert_eq!(r, Err(CallError::Failed("not found")));
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.snapshot().ignored, 1);
}

#[test]
fn call_async_records_outcomes() {
    let (b, _) = breaker(1);
    let ok: Result<i32, CallError<()>> = block_on(b.call_async(|| async { Ok(5) }));
    assert_eq!(ok, Ok(5));
    let err: Result<i32, CallError<&str>> = block_on(b.call_async(|| async { Err("down") }));
    assert_eq!(err, Err(CallError::Failed("down")));
    assert_eq!(b.state(), State::Open);
}

#[test]
fn slow_calls_are_measured_on_the_breaker_clock() {
    let clock = ManualClock::shared();
    let b = CircuitBreaker::new(
        BreakerConfig {
            slow_call_rate_threshold: Some(1.0),
            slow_call_duration: Some(Duration::from_millis(100)),
            minimum_calls: 2,
            ..BreakerConfig::named("slow")
        }
        .with_clock(clock.clone()),
    )
    .unwrap();
    assert!(b.needs_duration());
    for _ in 0..2 {
        let r: Result<(), CallError<()>> = b.call(|| {
            clock.advance(Duration::from_millis(100));
            Ok(())
        });
        assert!(r.is_ok());
    }
    assert_eq!(b.state(), State::Open);
    assert_eq!(b.snapshot().slow, 2);
}

#[test]
fn dropping_a_permit_cancels_it() {
    let (b, clock) = breaker(1);
    b.try_acquire().unwrap().failure(Duration::ZERO);
    clock.advance(Duration::from_secs(1));
    let probe = b.try_acquire().unwrap();
    assert!(probe.is_probe());
    assert!(b.try_acquire().is_err(), "one probe at a time");
    drop(probe);
    let probe = b.try_acquire().expect("the slot was freed");
    probe.success(Duration::ZERO);
    assert_eq!(b.state(), State::Closed);
    let s = b.snapshot();
    assert_eq!((s.successes, s.failures, s.ignored), (1, 1, 0), "a cancellation counts nowhere");
}

#[test]
fn shared_permit_refuses_a_second_outcome() {
    let (b, _) = breaker(5);
    let p = b.try_acquire_shared().unwrap();
    p.record(Outcome::Success, Duration::ZERO).unwrap();
    let e = p.record(Outcome::Failure, Duration::ZERO).unwrap_err();
    assert_eq!(e, Error::PermitConsumed);
    assert_eq!(e.code().as_str(), "SEAWALL_PERMIT_CONSUMED");
    assert_eq!(p.cancel().unwrap_err().code(), ErrorCode::PermitConsumed);
    assert_eq!(b.snapshot().successes, 1);
}

#[test]
fn listeners_see_changes_in_order_and_may_reenter() {
    let (b, clock) = breaker(1);
    let log = Arc::new(Mutex::new(Vec::new()));
    let (l, b2) = (log.clone(), b.clone());
    b.on_state_change(move |e| {
        l.lock().unwrap().push(format!("{}->{}@{}", e.from, e.to, e.at.as_millis()));
        // Re-entering the breaker from a listener must not deadlock.
        let _ = b2.snapshot();
        if e.to == State::HalfOpen {
            b2.force_open();
        }
    });
    b.try_acquire().unwrap().failure(Duration::ZERO);
    clock.advance(Duration::from_secs(1));
    assert_eq!(b.state(), State::ForcedOpen);
    assert_eq!(
        *log.lock().unwrap(),
        ["closed->open@0", "open->half_open@1000", "half_open->forced_open@1000"]
    );
}

#[test]
fn a_panicking_listener_does_not_break_the_breaker() {
    let (b, _) = breaker(1);
    let seen = Arc::new(Mutex::new(0));
    b.on_state_change(|_| panic!("listener bug"));
    let s = seen.clone();
    let id = b.on_state_change(move |_| *s.lock().unwrap() += 1);
    b.try_acquire().unwrap().failure(Duration::ZERO);
    assert_eq!(b.state(), State::Open);
    assert_eq!(*seen.lock().unwrap(), 1, "later listeners still run");
    assert!(b.remove_listener(id));
    b.reset();
    assert_eq!(*seen.lock().unwrap(), 1);
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn config_errors_name_the_field_in_the_callers_spelling() {
    let mut js = BreakerConfig::with_style(Style { naming: Naming::Camel, unit: DurationUnit::Millis });
    let e = js.set("openDuration", ConfigValue::Int(-5)).unwrap_err();
    assert_eq!((e.field.as_str(), e.value.as_str()), ("openDuration", "-5ms"));
    let e = js.set("windowSize", ConfigValue::Str("ten".into())).unwrap_err();
    assert!(e.type_mismatch);
    assert!(e.to_string().contains("windowSize"), "{e}");
    let e = js.set("bogus", ConfigValue::Int(1)).unwrap_err();
    assert_eq!(e.field, "bogus");

    let mut py = BreakerConfig::with_style(Style { naming: Naming::Snake, unit: DurationUnit::Seconds });
    let e = py.set("slow_call_duration", ConfigValue::Float(f64::NAN)).unwrap_err();
    assert_eq!((e.field.as_str(), e.value.as_str()), ("slow_call_duration", "nans"));
    py.set("half_open_max_calls", ConfigValue::Int(2)).unwrap();
    py.set("half_open_success_threshold", ConfigValue::Int(3)).unwrap();
    let e = CircuitBreaker::new(py).unwrap_err();
    assert_eq!(e.field, "half_open_success_threshold");
    assert!(e.to_string().contains("half_open_max_calls (2)"), "{e}");
}

#[test]
fn typed_rust_config_is_validated_too() {
    let e = CircuitBreaker::new(BreakerConfig { window_size: 0, ..Default::default() }).unwrap_err();
    assert_eq!((e.field.as_str(), e.value.as_str()), ("window_size", "0"));
    let e = CircuitBreaker::new(BreakerConfig { failure_rate_threshold: Some(1.5), ..Default::default() }).unwrap_err();
    assert_eq!(e.field, "failure_rate_threshold");
}

#[test]
fn on_event_reports_rejections_timeouts_and_fallbacks_in_order() {
    let (b, clock) = breaker(1);
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    let id = b.on_event(move |e| l.lock().unwrap().push(e.kind().to_string()));
    clock.advance(Duration::from_millis(5));
    b.try_acquire().unwrap().timeout(Duration::from_millis(3));
    assert!(b.try_acquire().is_err());
    b.record_fallback();
    assert_eq!(*log.lock().unwrap(), ["timeout", "state_change", "rejected", "fallback"]);
    let s = b.snapshot();
    assert_eq!((s.timeouts, s.failures, s.rejected, s.fallbacks), (1, 1, 1, 1));
    assert!(b.remove_listener(id));
    assert!(b.try_acquire().is_err());
    assert_eq!(log.lock().unwrap().len(), 4, "no events after removal");
}

/// `record_successes(epoch, n)` is exactly `n` permits of that epoch recording successes:
/// the same counts, window and decisions; after a transition they are late (counted only).
#[test]
fn batched_successes_decide_like_one_permit_each() {
    use std::sync::atomic::Ordering::Acquire;
    use seawall::{ManualClock, Outcome, State};
    let clock = ManualClock::shared();
    let config = || {
        let mut c = BreakerConfig::default().with_clock(clock.clone());
        c.failure_rate_threshold = Some(0.5);
        c.window_size = 6;
        c.minimum_calls = 4;
        c
    };
    let (one, batched) = (CircuitBreaker::new(config()).unwrap(), CircuitBreaker::new(config()).unwrap());
    // S S F S F F: 3 failures of 6 -> opens on the last failure, in both.
    for step in ["S2", "F", "S1", "F", "F"] {
        let (outcome, n) = match step {
            "F" => (Outcome::Failure, 1),
            s => (Outcome::Success, s[1..].parse::<u64>().unwrap()),
        };
        for _ in 0..n {
            one.try_acquire_shared().unwrap().record(outcome, Duration::ZERO).unwrap();
        }
        let w = batched.state_word().load(Acquire);
        assert_eq!(w & 7, 0, "closed: admitted without calling in");
        match outcome {
            Outcome::Success => batched.record_successes(w >> 3, n),
            _ => batched.permit_for_epoch(w >> 3).record(outcome, Duration::ZERO).unwrap(),
        }
        let (a, b) = (one.snapshot(), batched.snapshot());
        assert_eq!((a.state, a.successes, a.failures, a.window_calls), (b.state, b.successes, b.failures, b.window_calls), "after {step}");
    }
    assert_eq!(batched.state(), State::Open);
    // Successes admitted before the transition and flushed after it are late: counted only.
    let stale = 0; // the epoch every call above was admitted in
    let before = batched.snapshot();
    batched.record_successes(stale, 5);
    let after = batched.snapshot();
    assert_eq!((after.state, after.successes, after.window_calls), (State::Open, before.successes + 5, before.window_calls));
}
