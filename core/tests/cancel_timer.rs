//! Cancel tokens and the shared timer on the real clock (generous bounds: the machines are
//! shared) and on the manual clock (exact).

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use seawall::{CancelReason, CancelToken, Clock, Deadline, ManualClock, SystemClock};

#[test]
fn system_timer_cancels_a_token_on_time() {
    let token = CancelToken::new();
    let (tx, rx) = mpsc::channel();
    token.on_cancel(move |r| tx.send((r, Instant::now())).unwrap());
    let start = Instant::now();
    let _guard = token.cancel_at(&Deadline::after(SystemClock::shared(), Duration::from_millis(30)));
    let (reason, at) = rx.recv_timeout(Duration::from_secs(5)).expect("the timer thread cancels the token");
    assert_eq!(reason, CancelReason::DeadlineExceeded);
    assert!(at - start >= Duration::from_millis(30), "not before the deadline: {:?}", at - start);
}

#[test]
fn dropping_the_guard_unschedules_the_timer() {
    let token = CancelToken::new();
    let fired = Arc::new(AtomicUsize::new(0));
    let f = fired.clone();
    token.on_cancel(move |_| {
        f.fetch_add(1, SeqCst);
    });
    let guard = token.cancel_at(&Deadline::after(SystemClock::shared(), Duration::from_millis(20)));
    drop(guard);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(fired.load(SeqCst), 0);
    assert!(!token.is_cancelled());
}

#[test]
fn timers_fire_in_due_order_on_the_system_clock() {
    let (tx, rx) = mpsc::channel();
    let clock = SystemClock;
    let now = clock.now();
    for (i, ms) in [(0, 60u64), (1, 20), (2, 40)] {
        let tx = tx.clone();
        clock.schedule(now + Duration::from_millis(ms), Box::new(move || tx.send(i).unwrap()));
    }
    let order: Vec<i32> = (0..3).map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap()).collect();
    assert_eq!(order, [1, 2, 0]);
}

#[test]
fn cancel_runs_callbacks_once_and_children_follow() {
    let token = CancelToken::new();
    let child = token.child();
    let grandchild = child.child();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    token.on_cancel(move |_| {
        c.fetch_add(1, SeqCst);
    });
    let c = count.clone();
    let id = token.on_cancel(move |_| {
        c.fetch_add(100, SeqCst);
    });
    assert!(token.remove(id));
    assert!(token.cancel());
    assert!(!token.cancel(), "only the first cancel counts");
    assert_eq!(count.load(SeqCst), 1);
    assert_eq!(grandchild.reason(), Some(CancelReason::Cancelled));
    // A callback added after cancellation runs at once.
    let c = count.clone();
    token.on_cancel(move |_| {
        c.fetch_add(10, SeqCst);
    });
    assert_eq!(count.load(SeqCst), 11);
    // Cancelling a child leaves the parent alone.
    let parent = CancelToken::new();
    parent.child().cancel();
    assert!(!parent.is_cancelled());
}

#[test]
fn a_callback_may_cancel_another_token_and_panics_are_contained() {
    let a = CancelToken::new();
    let b = CancelToken::new();
    let b2 = b.clone();
    a.on_cancel(|_| panic!("callback bug"));
    a.on_cancel(move |_| {
        b2.cancel();
    });
    a.cancel();
    assert!(b.is_cancelled());
}

#[test]
fn manual_clock_fires_timers_inside_advance_exactly() {
    let clock = ManualClock::shared();
    let token = CancelToken::new();
    let _g = token.cancel_at(&Deadline::after(clock.clone(), Duration::from_millis(100)));
    assert_eq!(clock.pending_timers(), 1);
    clock.advance(Duration::from_millis(99));
    assert!(!token.is_cancelled());
    clock.advance(Duration::from_millis(1));
    assert_eq!(token.reason(), Some(CancelReason::DeadlineExceeded));
    assert_eq!(clock.pending_timers(), 0);
}
