//! One shared timer facility, for the few things that must happen at a time.
//!
//! Nothing in seawall needs a timer per call: time-driven state changes are evaluated
//! lazily. Some callers do need an action *at* a time, such as cancelling a token when a
//! deadline passes while synchronous code runs. Those go here:
//!
//! - on the system clock, into one queue served by one lazily started thread per process
//!   (re-created in a forked child, where the parent's thread does not exist);
//! - on a [`ManualClock`](crate::ManualClock), into the clock's own queue, fired by
//!   `advance` in due order, so tests are exact.
//!
//! The queue is a binary heap keyed by due time with lazy removal: scheduling and
//! cancelling are O(log n) and O(1), and at most one wake-up is pending at a time. A
//! hashed timing wheel would make scheduling O(1) but needs a tick; with the few timers
//! seawall keeps, the heap is simpler and exact.
//!
//! ```
//! use std::sync::{Arc, atomic::{AtomicBool, Ordering}};
//! use std::time::Duration;
//! use seawall::{Clock, ManualClock};
//!
//! let clock = ManualClock::new();
//! let fired = Arc::new(AtomicBool::new(false));
//! let f = fired.clone();
//! clock.schedule(Duration::from_millis(10), Box::new(move || f.store(true, Ordering::SeqCst)));
//! clock.advance(Duration::from_millis(9));
//! assert!(!fired.load(Ordering::SeqCst));
//! clock.advance(Duration::from_millis(1));
//! assert!(fired.load(Ordering::SeqCst));
//! ```

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use std::sync::{Condvar as StdCondvar, Mutex as StdMutex};

use crate::clock::{Clock, SystemClock};

/// Work to run once when a timer fires.
pub type TimerFn = Box<dyn FnOnce() + Send>;

/// Identifies a scheduled timer, for cancellation. Unique in the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId(u64);

pub(crate) fn next_id() -> TimerId {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    TimerId(NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Timers ordered by due time (ties in scheduling order).
#[derive(Default)]
pub(crate) struct TimerQueue {
    heap: BinaryHeap<Reverse<(Duration, u64)>>,
    pending: HashMap<u64, TimerFn>,
}

impl TimerQueue {
    pub(crate) fn push(&mut self, at: Duration, f: TimerFn) -> TimerId {
        let id = next_id();
        self.heap.push(Reverse((at, id.0)));
        self.pending.insert(id.0, f);
        id
    }

    /// Removes a timer and hands its closure back, so the caller drops it after releasing
    /// the lock (dropping it may run user code).
    pub(crate) fn cancel(&mut self, id: TimerId) -> Option<TimerFn> {
        let removed = self.pending.remove(&id.0);
        if self.pending.is_empty() {
            self.heap.clear();
        }
        removed
    }

    /// Due time of the earliest live timer (dropping cancelled ones from the top).
    pub(crate) fn next_due(&mut self) -> Option<Duration> {
        while let Some(Reverse((at, id))) = self.heap.peek() {
            if self.pending.contains_key(id) {
                return Some(*at);
            }
            self.heap.pop();
        }
        None
    }

    /// Removes and returns the earliest timer if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Duration) -> Option<TimerFn> {
        match self.next_due() {
            Some(at) if at <= now => {
                let Reverse((_, id)) = self.heap.pop()?;
                self.pending.remove(&id)
            }
            _ => None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }
}

/// Runs a timer callback; a panic is reported and contained.
pub(crate) fn fire(f: TimerFn) {
    if catch_unwind(AssertUnwindSafe(f)).is_err() {
        eprintln!("seawall: a timer callback panicked; ignored");
    }
}

/// The timer thread's state. It uses the standard library's mutex and condvar, not
/// `parking_lot`'s: a forked child inherits `parking_lot`'s global table of parked threads
/// with entries for threads that do not exist there, and parking on it can crash the child
/// (parking_lot issue #515). The standard ones park on a futex in the object itself.
struct Global {
    queue: StdMutex<TimerQueue>,
    wake: StdCondvar,
}

/// The process's timer thread, started on first use and again in a forked child.
fn global() -> Arc<Global> {
    static SLOT: Mutex<Option<(u32, Arc<Global>)>> = Mutex::new(None);
    let pid = std::process::id();
    let mut slot = SLOT.lock();
    if let Some((owner, g)) = slot.as_ref() {
        if *owner == pid {
            return Arc::clone(g);
        }
    }
    let g = Arc::new(Global { queue: StdMutex::new(TimerQueue::default()), wake: StdCondvar::new() });
    let worker = Arc::clone(&g);
    std::thread::Builder::new()
        .name("seawall-timer".into())
        .spawn(move || run(&worker))
        .expect("seawall: cannot start the timer thread");
    *slot = Some((pid, Arc::clone(&g)));
    g
}

fn run(g: &Global) {
    let clock = SystemClock;
    let lock = || g.queue.lock().unwrap_or_else(|e| e.into_inner());
    let mut q = lock();
    loop {
        let now = clock.now();
        if let Some(f) = q.pop_due(now) {
            drop(q);
            fire(f);
            q = lock();
            continue;
        }
        q = match q.next_due() {
            Some(at) => g.wake.wait_timeout(q, at - now).unwrap_or_else(|e| e.into_inner()).0,
            None => g.wake.wait(q).unwrap_or_else(|e| e.into_inner()),
        };
    }
}

/// Runs `f` at system-clock time `at` on the timer thread.
pub(crate) fn schedule_system(at: Duration, f: TimerFn) -> TimerId {
    let g = global();
    let mut q = g.queue.lock().unwrap_or_else(|e| e.into_inner());
    let earliest = q.next_due();
    let id = q.push(at, f);
    if earliest.is_none_or(|e| at < e) {
        g.wake.notify_one();
    }
    id
}

/// Cancels a timer of the timer thread; false when it already ran or was cancelled.
pub(crate) fn cancel_system(id: TimerId) -> bool {
    let removed = global().queue.lock().unwrap_or_else(|e| e.into_inner()).cancel(id);
    removed.is_some() // the closure is dropped here, outside the lock
}

/// Timers scheduled on the timer thread and not yet run (for tests and metrics).
pub fn pending_system_timers() -> usize {
    global().queue.lock().unwrap_or_else(|e| e.into_inner()).len()
}

/// Unschedules its timer when dropped, so nothing is left pending after a call settles.
#[must_use = "dropping the guard unschedules the timer"]
pub struct TimerGuard {
    clock: crate::clock::SharedClock,
    id: Option<TimerId>,
}

impl TimerGuard {
    pub(crate) fn new(clock: crate::clock::SharedClock, id: TimerId) -> Self {
        Self { clock, id: Some(id) }
    }

    /// A guard with nothing scheduled (the work was due at once).
    pub(crate) fn inert(clock: crate::clock::SharedClock) -> Self {
        Self { clock, id: None }
    }

    /// Leaves the timer scheduled (it fires, or stays until the process ends).
    pub fn detach(mut self) {
        self.id = None;
    }
}

impl Drop for TimerGuard {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.clock.cancel_timer(id);
        }
    }
}
