//! Cross-process wake-ups: a pub/sub connection subscribed to the channels of the keys
//! this process waits on, and a notifier thread that hands events to the store's
//! subscribers (the caches), outside every lock and off the async runtime.
//!
//! A key is *watched* from the moment a claim finds it in progress (that is when a cache
//! may start waiting on it) until its owner's lease has expired plus a margin; each claim
//! that finds it in progress again extends that. Its channel is subscribed on the pub/sub
//! connection, and once Redis confirms the subscription the key is *re-checked* with one
//! `peek`: if it was completed or freed in the meantime (between the claim that saw it in
//! progress and the moment the subscription took effect), the subscribers get the event
//! they missed; if it is still in progress, nothing happens and the next change arrives as
//! a message. The same re-check runs for every watched key after the pub/sub connection
//! was lost (messages may have been missed); when even the re-check fails (Redis is
//! down), the subscribers are told to look for themselves (`Completed { record: None }`:
//! the cache claims again, and its waiters get `StoreUnavailable` at once instead of
//! waiting out the lease). Whatever else happens, the cache's own timer at the owner's
//! lease expiry claims again, so no waiter depends on a message alone.
//!
//! Messages: `c` + origin + the encoded record (a completion; without the record when it
//! is over 64 KiB: the waiters claim to read it), `r` + origin (a release). The origin (8
//! bytes) names the store instance that sent it: a store skips its own messages, because
//! it told its subscribers already, on the completing thread.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::redis::Msg;
use futures_util::StreamExt;
use tokio::sync::mpsc::UnboundedReceiver;

use super::link::Link;
use super::Shared;
use crate::idempotency::Record;
use crate::store::Peek;

/// Most keys watched at once; beyond it, waiters rely on the lease-expiry re-check.
pub(super) const MAX_WATCHED: usize = 100_000;
/// A key stays watched this long after its owner's lease was due to expire.
pub(super) const WATCH_MARGIN: Duration = Duration::from_secs(5);
/// How often the pub/sub task drops expired watches and pings the server.
const TICK: Duration = Duration::from_secs(1);

/// What the notifier thread delivers.
pub(super) enum Note {
    /// A key was completed; the record when it is at hand.
    Completed(String, Option<Record>),
    /// A key was released (or its lease expired).
    Released(String),
    /// Look for yourselves: the store could not.
    Recheck(String),
}

/// The notifier thread: delivers notes to the subscribers until every sender is gone.
pub(super) fn spawn_notifier(shared: Arc<Shared>) -> mpsc::Sender<Note> {
    let (tx, rx) = mpsc::channel::<Note>();
    let spawned = std::thread::Builder::new().name("seawall-redis-notify".into()).spawn(move || {
        for note in rx {
            shared.deliver(note);
        }
    });
    if let Err(e) = spawned {
        eprintln!(
            "seawall: cannot start the redis store's notifier thread ({e}); waiters fall back to lease-expiry checks"
        );
    }
    tx
}

/// The note for a message, unless it is this store's own.
fn note_of(shared: &Shared, msg: &Msg) -> Option<Note> {
    let key = shared.key_of_channel(msg.get_channel_name().as_bytes())?;
    let payload = msg.get_payload_bytes();
    let (kind, rest) = payload.split_first()?;
    if rest.len() < 8 {
        return Some(Note::Recheck(key));
    }
    let (origin, rest) = rest.split_at(8);
    if origin == shared.origin.to_be_bytes() {
        return None;
    }
    Some(match kind {
        b'c' if rest.is_empty() => Note::Completed(key, None),
        b'c' => Note::Completed(key, Record::decode(rest).ok()),
        b'r' => Note::Released(key),
        _ => Note::Recheck(key),
    })
}

/// Looks at `key` again and tells the subscribers what they missed, if anything.
async fn recheck(shared: &Shared, link: &Link, notes: &mpsc::Sender<Note>, key: String) {
    let note = match super::peek_async(shared, link, &key).await {
        Ok(Peek::InProgress { .. }) => return,
        Ok(Peek::Completed(record)) => Note::Completed(key, Some(record)),
        Ok(Peek::Absent) => Note::Released(key),
        Err(_) => Note::Recheck(key),
    };
    let _ = notes.send(note);
}

/// The keys whose watch has run out, removed from the watch list.
fn expired_watches(shared: &Shared) -> Vec<String> {
    let now = Instant::now();
    let mut out = Vec::new();
    shared.watched.lock().retain(|k, until| {
        let keep = *until > now;
        if !keep {
            out.push(k.clone());
        }
        keep
    });
    out
}

/// Runs until the store's engine shuts down (`rx` closes): keeps one pub/sub connection,
/// subscribed to the channel of every watched key.
pub(super) async fn pubsub_loop(
    shared: Arc<Shared>,
    link: Arc<Link>,
    notes: mpsc::Sender<Note>,
    mut rx: UnboundedReceiver<String>,
) {
    let mut delay = shared.reconnect_delay;
    let command_timeout = shared.command_timeout;
    let mut lost_before = false;
    loop {
        let connected = tokio::time::timeout(shared.connect_timeout, shared.client.get_async_pubsub()).await;
        let Ok(Ok(pubsub)) = connected else {
            if !lost_before {
                lost_before = true;
                let keys: Vec<String> = shared.watched.lock().keys().cloned().collect();
                for key in keys {
                    recheck(&shared, &link, &notes, key).await;
                }
            }
            // Wait, still taking (and dropping) watch requests: the watch list has them.
            let sleep = tokio::time::sleep(delay);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    _ = &mut sleep => break,
                    k = rx.recv() => if k.is_none() { return },
                }
            }
            delay = (delay * 2).min(shared.reconnect_max_delay);
            continue;
        };
        delay = shared.reconnect_delay;
        shared.pubsub_up.store(true, Relaxed);
        let (mut sink, mut stream) = pubsub.split();
        let mut pending: Vec<String> = shared.watched.lock().keys().cloned().collect();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        'connected: loop {
            // Subscribe what was asked for, one confirmed subscription at a time (so they
            // stay in order with unsubscriptions), re-checking each key once it holds.
            for key in std::mem::take(&mut pending) {
                if shared.subscribed.lock().contains(&key) || !shared.watched.lock().contains_key(&key) {
                    continue;
                }
                let channel = shared.channel_of(&key);
                let ok = matches!(tokio::time::timeout(command_timeout, sink.subscribe(channel)).await, Ok(Ok(())));
                if !ok {
                    recheck(&shared, &link, &notes, key).await;
                    break 'connected;
                }
                recheck(&shared, &link, &notes, key.clone()).await;
                shared.subscribed.lock().insert(key);
            }
            shared.counts.watched.store(shared.subscribed.lock().len() as u64, Relaxed);
            tokio::select! {
                m = stream.next() => match m {
                    Some(msg) => {
                        if let Some(note) = note_of(&shared, &msg) {
                            shared.counts.notifications.fetch_add(1, Relaxed);
                            let _ = notes.send(note);
                        }
                    }
                    None => break 'connected,
                },
                k = rx.recv() => match k {
                    Some(k) => pending.push(k),
                    None => return,
                },
                _ = tick.tick() => {
                    for key in expired_watches(&shared) {
                        if shared.subscribed.lock().remove(&key) {
                            let channel = shared.channel_of(&key);
                            if !matches!(tokio::time::timeout(command_timeout, sink.unsubscribe(channel)).await, Ok(Ok(()))) {
                                break 'connected;
                            }
                        }
                    }
                    if !shared.subscribed.lock().is_empty() {
                        // In subscribed mode the answer is ["pong", ""], not a string.
                        let pong = tokio::time::timeout(command_timeout, sink.ping::<::redis::Value>()).await;
                        if !matches!(pong, Ok(Ok(_))) {
                            break 'connected;
                        }
                    }
                }
            }
        }
        shared.pubsub_up.store(false, Relaxed);
        shared.subscribed.lock().clear();
        shared.counts.watched.store(0, Relaxed);
        drop(sink);
        drop(stream);
        // Messages may have been lost with the connection: look at every watched key.
        lost_before = true;
        let keys: Vec<String> = shared.watched.lock().keys().cloned().collect();
        for key in keys {
            recheck(&shared, &link, &notes, key).await;
        }
    }
}
