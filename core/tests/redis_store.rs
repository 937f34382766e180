//! The Redis store on a real `redis-server`, on the server's own clock (`TIME`).
//!
//! Each test starts its own server on a free loopback port (see `redis_support`) and runs
//! under a time bound. The exact, step-by-step semantics (boundaries to the millisecond)
//! are replayed by `redis_conformance.rs` on a manual clock; here the same behaviours run
//! in real time with short leases and generous bounds, plus what only a real server and
//! real processes show: two stores (two "processes") sharing one Redis, four real
//! processes racing, waiters woken across stores by pub/sub, the server killed, paused
//! and restarted, the script cache flushed, round trips per operation.
#![cfg(feature = "redis")]

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use redis::Commands;
use seawall::idempotency::{Acquired, Begin, Fingerprint, Output, RunError};
use seawall::store::redis::{RedisStore, RedisStoreConfig, REDIS_OPTION_NAMES};
use seawall::store::{Claim, Peek, Store};
use seawall::{ConfigValue, DurationUnit, ErrorCode, IdempotencyCache, IdempotencyConfig, Naming, Record, Style};

mod redis_support;
use redis_support::{bounded, eventually, RedisServer};

const FP: Fingerprint = Fingerprint::NONE;

fn store_with(url: &str, f: impl FnOnce(&mut RedisStoreConfig)) -> Arc<RedisStore> {
    let mut c = RedisStoreConfig::new(url);
    f(&mut c);
    Arc::new(RedisStore::new(c).unwrap())
}

fn store(url: &str) -> Arc<RedisStore> {
    store_with(url, |_| {})
}

fn cache_on(store: &Arc<RedisStore>, f: impl FnOnce(&mut IdempotencyConfig)) -> IdempotencyCache {
    let mut c = IdempotencyConfig::named("redis-test").with_store(store.clone());
    f(&mut c);
    IdempotencyCache::new(c).unwrap()
}

fn acquired(c: Claim) -> (u64, bool) {
    match c {
        Claim::Acquired { token, took_over, .. } => (token, took_over),
        other => panic!("expected Acquired, got {other:?}"),
    }
}

/// The server's clock in ms.
/// A claim on a corrupted entry: refused with `StoreUnavailable`, and the message says why
/// in one of the `reasons`; never a claim result.
fn assert_refused(r: Result<Claim, seawall::Error>, what: &str, reasons: &[&str]) {
    match r {
        Err(e) => {
            assert_eq!(e.code(), ErrorCode::StoreUnavailable, "{what}: {e}");
            let m = e.to_string();
            assert!(reasons.iter().any(|why| m.contains(why)), "{what}: {m}");
        }
        Ok(c) => panic!("{what}: a corrupted entry gave {c:?}"),
    }
}

fn server_ms(conn: &mut redis::Connection) -> u64 {
    let (s, us): (u64, u64) = redis::cmd("TIME").query(conn).unwrap();
    s * 1000 + us / 1000
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[test]
fn records_are_stored_in_the_versioned_format_with_the_servers_time() {
    bounded(Duration::from_secs(30), || {
        let server = RedisServer::start();
        let s = store(&server.url());
        let mut conn = server.conn();
        let before = server_ms(&mut conn);
        let (token, took_over) = acquired(s.claim("order-1", &Fingerprint::of(b"p"), Duration::from_secs(30)).unwrap());
        assert!(!took_over);
        assert!(token >= before * 1024, "tokens start at server time x 1024: {token} vs {before}");
        let out =
            Output::new(&b"{\"id\":1}"[..], "application/json").with_metadata("status", "201").with_metadata("h", "v");
        let record = s.complete("order-1", token, out, Duration::from_secs(3600)).unwrap();
        let after = server_ms(&mut conn);
        assert!(
            (before..=after).contains(&record.created_ms()),
            "created {} not in [{before}, {after}]",
            record.created_ms()
        );
        assert_eq!(record.expires_ms() - record.created_ms(), 3_600_000);
        assert_eq!(record.token(), token);
        assert_eq!(record.fingerprint(), &Fingerprint::of(b"p"), "the script stamps the lease's fingerprint");

        // What Redis holds is exactly Record::encode of what every duplicate gets.
        let names = s.key_names("order-1");
        let raw: Vec<u8> = conn.get(&names.entry).unwrap();
        assert_eq!(&raw[..4], b"SWR\x02");
        assert_eq!(Record::decode(&raw).unwrap(), record);
        assert_eq!(raw, record.encode());

        // One hash tag for entry, counter and channel; the entry lives ttl + 60 s grace.
        let tag = |n: &str| n[n.find('{').unwrap()..=n.find('}').unwrap()].to_owned();
        assert!(names.entry.starts_with("seawall:idem:{"), "{}", names.entry);
        assert_eq!(tag(&names.entry), tag(&names.counter));
        assert_eq!(tag(&names.entry), tag(&names.channel));
        let entry_ttl: i64 = conn.pttl(&names.entry).unwrap();
        assert!((3_650_000..=3_660_000).contains(&entry_ttl), "entry PTTL {entry_ttl}");
        let counter_ttl: i64 = conn.pttl(&names.counter).unwrap();
        assert!(counter_ttl >= entry_ttl - 1000, "counter PTTL {counter_ttl} < entry PTTL {entry_ttl}");
        let counter: u64 = conn.get(&names.counter).unwrap();
        assert_eq!(counter, token);

        // A lease is a 64-byte "SWL" header with the record's layout, written twice.
        let (t2, _) = acquired(s.claim("order-2", &FP, Duration::from_millis(1500)).unwrap());
        let raw: Vec<u8> = conn.get(s.key_names("order-2").entry).unwrap();
        assert_eq!(raw.len(), 128);
        assert_eq!(raw[..64], raw[64..], "the two copies");
        assert_eq!(&raw[..4], b"SWL\x02");
        assert_eq!(u64::from_be_bytes(raw[8..16].try_into().unwrap()), t2);
        let (claimed, expires) =
            (u64::from_be_bytes(raw[16..24].try_into().unwrap()), u64::from_be_bytes(raw[24..32].try_into().unwrap()));
        assert_eq!(expires - claimed, 1500);
        match s.peek("order-2").unwrap() {
            Peek::InProgress { token, expires_in, .. } => {
                assert_eq!(token, t2);
                assert!(expires_in <= Duration::from_millis(1500) && expires_in > Duration::from_millis(500));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s.kind(), "redis");
    });
}

#[test]
fn two_stores_on_one_redis_replay_each_others_results_and_refuse_other_payloads() {
    bounded(Duration::from_secs(30), || {
        let server = RedisServer::start();
        let (a, b) = (store(&server.url()), store(&server.url()));
        let fp = Fingerprint::of(b"body");
        let (token, _) = acquired(a.claim("k", &fp, Duration::from_secs(30)).unwrap());
        match b.claim("k", &fp, Duration::from_secs(30)).unwrap() {
            Claim::InProgress { token: t, expires_in } => {
                assert_eq!(t, token);
                assert!(expires_in > Duration::from_secs(25) && expires_in <= Duration::from_secs(30));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            b.claim("k", &Fingerprint::of(b"other"), Duration::from_secs(30)).unwrap(),
            Claim::Mismatch { completed: false }
        );
        let written = a.complete("k", token, Output::new(&b"done"[..], "text/plain"), Duration::from_secs(60)).unwrap();
        match b.claim("k", &fp, Duration::from_secs(30)).unwrap() {
            Claim::Completed(r) => assert_eq!(r, written),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            b.claim("k", &Fingerprint::of(b"other"), Duration::from_secs(30)).unwrap(),
            Claim::Mismatch { completed: true }
        );
        // Another prefix, or another database, is another namespace.
        let other_prefix = store_with(&server.url(), |c| c.prefix = "elsewhere:".into());
        acquired(other_prefix.claim("k", &fp, Duration::from_secs(30)).unwrap());
        let db2 = store(&server.url_db(2));
        acquired(db2.claim("k", &fp, Duration::from_secs(30)).unwrap());
        let mut conn = server.conn();
        redis::cmd("SELECT").arg(2).exec(&mut conn).unwrap();
        assert!(conn.exists::<_, bool>(db2.key_names("k").entry).unwrap());
    });
}

/// Per key: every (result bytes, token) a caller got.
type Seen = Arc<Mutex<HashMap<usize, Vec<(Vec<u8>, u64)>>>>;

/// Each thread visits every key once, in its own order.
fn order(seed: usize, n: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    let mut s = (seed as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for i in (1..v.len()).rev() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        v.swap(i, (s % (i as u64 + 1)) as usize);
    }
    v
}

#[test]
fn two_caches_sharing_redis_run_each_key_once_with_8_threads_each() {
    bounded(Duration::from_secs(90), || {
        const KEYS: usize = 150;
        const THREADS: usize = 8;
        let server = RedisServer::start();
        let caches: Vec<IdempotencyCache> =
            (0..2).map(|_| cache_on(&store(&server.url()), |c| c.lease = Duration::from_secs(20))).collect();
        let runs: Arc<Vec<AtomicU64>> = Arc::new((0..KEYS).map(|_| AtomicU64::new(0)).collect());
        let seen: Seen = Arc::default();
        let barrier = Arc::new(Barrier::new(2 * THREADS));
        let handles: Vec<_> = (0..2 * THREADS)
            .map(|t| {
                let cache = caches[t % 2].clone();
                let (runs, seen, barrier) = (runs.clone(), seen.clone(), barrier.clone());
                thread::spawn(move || {
                    barrier.wait();
                    for i in order(t, KEYS) {
                        let record = cache
                            .run(&format!("key-{i}"), &Fingerprint::of(b"same"), || {
                                runs[i].fetch_add(1, SeqCst);
                                thread::sleep(Duration::from_micros(200)); // widen the race
                                Ok::<_, std::io::Error>(Output::new(
                                    format!("result of {i} by {t}").into_bytes(),
                                    "text/plain",
                                ))
                            })
                            .unwrap_or_else(|e| panic!("thread {t}, key {i}: {e}"));
                        seen.lock().unwrap().entry(i).or_default().push((record.result().to_vec(), record.token()));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        for (i, r) in runs.iter().enumerate() {
            assert_eq!(r.load(SeqCst), 1, "key-{i} ran {} times", r.load(SeqCst));
        }
        let seen = seen.lock().unwrap();
        for i in 0..KEYS {
            let got = &seen[&i];
            assert_eq!(got.len(), 2 * THREADS);
            assert!(got.iter().all(|g| g == &got[0]), "key-{i}: callers got different results: {got:?}");
        }
        let waited: u64 = caches.iter().map(|c| c.stats().waited).sum();
        println!("two caches x {THREADS} threads on {KEYS} keys: every key ran once ({waited} duplicates waited)");
    });
}

/// The worker of `four_processes_two_threads_each_run_1000_keys_once`: runs when the
/// test binary is started by that test with `SEAWALL_REDIS_CHILD_URL` set.
fn child_worker(url: &str, worker: usize) {
    let s = store(url);
    let cache = cache_on(&s, |c| c.lease = Duration::from_secs(20));
    let handles: Vec<_> = (0..2)
        .map(|t| {
            let (cache, url) = (cache.clone(), url.to_owned());
            thread::spawn(move || {
                let mut conn = redis::Client::open(url.as_str()).unwrap().get_connection().unwrap();
                for i in order(worker * 2 + t, 1000) {
                    let key = format!("proc-key-{i}");
                    let record = cache
                        .run(&key, &Fingerprint::of(key.as_bytes()), || {
                            // The side effect whose count proves exactly-once, across processes.
                            let _: u64 = conn.incr(format!("proof:{key}"), 1).unwrap();
                            Ok::<_, std::io::Error>(Output::new(format!("ran {key}").into_bytes(), "text/plain"))
                        })
                        .unwrap_or_else(|e| panic!("worker {worker}.{t}, {key}: {e}"));
                    assert_eq!(record.result(), format!("ran {key}").as_bytes());
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn four_processes_two_threads_each_run_1000_keys_once() {
    if let Ok(url) = std::env::var("SEAWALL_REDIS_CHILD_URL") {
        let worker = std::env::var("SEAWALL_REDIS_CHILD").unwrap().parse().unwrap();
        return child_worker(&url, worker);
    }
    bounded(Duration::from_secs(120), || {
        let server = RedisServer::start();
        let exe = std::env::current_exe().unwrap();
        let children: Vec<_> = (0..4)
            .map(|w| {
                Command::new(&exe)
                    .args([
                        "--exact",
                        "four_processes_two_threads_each_run_1000_keys_once",
                        "--nocapture",
                        "--test-threads",
                        "1",
                    ])
                    .env("SEAWALL_REDIS_CHILD_URL", server.url())
                    .env("SEAWALL_REDIS_CHILD", w.to_string())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("start a worker process")
            })
            .collect();
        for (w, c) in children.into_iter().enumerate() {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "worker process {w} failed: {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut conn = server.conn();
        let keys: Vec<String> = (0..1000).map(|i| format!("proof:proc-key-{i}")).collect();
        let counts: Vec<Option<u64>> = conn.mget(&keys).unwrap();
        let wrong: Vec<_> = counts.iter().enumerate().filter(|(_, c)| **c != Some(1)).take(5).collect();
        assert!(wrong.is_empty(), "keys not executed exactly once (key, count): {wrong:?}");
        println!("4 processes x 2 threads on 1000 keys: each key executed exactly once");
    });
}

#[test]
fn a_waiter_in_another_store_is_woken_by_the_completion_not_the_lease() {
    bounded(Duration::from_secs(30), || {
        let server = RedisServer::start();
        let (sa, sb) = (store(&server.url()), store(&server.url()));
        let a = cache_on(&sa, |_| {});
        let b = cache_on(&sb, |_| {}); // lease and wait_timeout 30 s
        let fp = Fingerprint::of(b"x");
        let Begin::Execute(lease) = a.begin("k", &fp).unwrap() else { panic!() };
        let Begin::InProgress(mut ip) = b.begin("k", &fp).unwrap() else { panic!() };
        let waiter = ip.waiter.take().expect("waits by default");
        assert!(eventually(Duration::from_secs(5), || sb.is_subscribed("k")), "store b never subscribed to k");
        let started = Instant::now();
        let completer = thread::spawn(move || {
            thread::sleep(Duration::from_millis(100));
            a.complete(&lease, Output::new(&b"from a"[..], "text/plain")).unwrap()
        });
        let outcome = waiter.wait(Some(Duration::from_secs(10))).expect("woken well before the 30 s lease");
        let took = started.elapsed();
        let written = completer.join().unwrap();
        match outcome.unwrap() {
            Acquired::Replay(r) => assert_eq!(r, written),
            Acquired::Execute(_) => panic!("expected the other store's result"),
        }
        assert!(took < Duration::from_secs(2), "woken after {took:?}: not by the completion");
        assert!(sb.stats().notifications >= 1, "{:?}", sb.stats());
        println!("cross-store wake-up after the owner's completion: {:.1} ms (owner slept 100 ms)", ms(took));

        // A release hands the key to the waiter in the other store, just as quickly.
        let Begin::Execute(lease) = b.begin("k2", &fp).unwrap() else { panic!() };
        let Begin::InProgress(mut ip) = cache_on(&sa, |_| {}).begin("k2", &fp).unwrap() else { panic!() };
        let waiter = ip.waiter.take().unwrap();
        let started = Instant::now();
        b.release(&lease).unwrap();
        match waiter.wait(Some(Duration::from_secs(10))).expect("woken by the release").unwrap() {
            Acquired::Execute(l) => {
                assert!(l.took_over());
                assert!(l.token() > lease.token());
            }
            Acquired::Replay(_) => panic!("nothing was completed"),
        }
        assert!(started.elapsed() < Duration::from_secs(2));
    });
}

#[test]
fn an_owner_that_crashed_is_taken_over_after_its_lease_and_then_refused() {
    bounded(Duration::from_secs(30), || {
        let server = RedisServer::start();
        let (sa, sb) = (store(&server.url()), store(&server.url()));
        let short = |c: &mut IdempotencyConfig| {
            c.lease = Duration::from_millis(400);
            c.wait_timeout = Some(Duration::from_secs(5));
        };
        let (a, b) = (cache_on(&sa, short), cache_on(&sb, short));
        let Begin::Execute(stale) = a.begin("k", &FP).unwrap() else { panic!() };
        // "a" crashes (never completes). A duplicate in "b" waits and takes over at expiry.
        let started = Instant::now();
        let Begin::InProgress(mut ip) = b.begin("k", &FP).unwrap() else { panic!() };
        let new = match ip.waiter.take().unwrap().wait(Some(Duration::from_secs(5))).expect("resolved").unwrap() {
            Acquired::Execute(l) => l,
            Acquired::Replay(_) => panic!("nothing was completed"),
        };
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(250) && took < Duration::from_secs(3), "took over after {took:?}");
        assert!(new.took_over());
        assert!(new.token() > stale.token());
        // The stale owner wakes up: every write is refused, naming the new owner.
        let e = a.complete(&stale, Output::new(&b"stale"[..], "")).unwrap_err();
        assert_eq!(e.code(), ErrorCode::LeaseLost);
        assert!(e.to_string().contains(&format!("another owner holds the key now (token {})", new.token())), "{e}");
        assert_eq!(a.release(&stale).unwrap_err().code(), ErrorCode::LeaseLost);
        assert_eq!(a.renew(&stale).unwrap_err().code(), ErrorCode::LeaseLost);
        let record = b.complete(&new, Output::new(&b"fresh"[..], "")).unwrap();
        let e = a.complete(&stale, Output::new(&b"stale"[..], "")).unwrap_err();
        assert!(e.to_string().contains(&format!("another owner completed the key (token {})", new.token())), "{e}");
        let Begin::Replay(r) = a.begin("k", &FP).unwrap() else { panic!() };
        assert_eq!(r, record);
        assert_eq!(a.stats().lease_lost, 4);

        // An expired lease nobody took is lost too, and the next claim reports the takeover.
        let Begin::Execute(l) = a.begin("k2", &FP).unwrap() else { panic!() };
        thread::sleep(Duration::from_millis(450));
        let e = a.complete(&l, Output::default()).unwrap_err();
        assert!(e.to_string().contains("its lease expired"), "{e}");
        let Begin::Execute(l2) = b.begin("k2", &FP).unwrap() else { panic!() };
        assert!(l2.took_over() && l2.token() > l.token());
        // renew keeps a long run alive past its first lease
        let Begin::Execute(long) = a.begin("k3", &FP).unwrap() else { panic!() };
        for _ in 0..3 {
            thread::sleep(Duration::from_millis(200));
            let left = a.renew(&long).unwrap();
            assert!(left <= Duration::from_millis(400) && left > Duration::from_millis(300), "{left:?}");
        }
        a.complete(&long, Output::new(&b"long"[..], "")).unwrap();
    });
}

#[test]
fn results_expire_after_their_ttl_on_the_servers_clock() {
    bounded(Duration::from_secs(30), || {
        let server = RedisServer::start();
        let s = store(&server.url());
        let cache = cache_on(&s, |c| c.ttl = Duration::from_millis(300));
        let r1 = cache.run("k", &FP, || Ok::<_, std::io::Error>(Output::new(&b"1"[..], ""))).unwrap();
        assert_eq!(cache.peek("k").unwrap().state(), "completed");
        let Begin::Replay(r) = cache.begin("k", &FP).unwrap() else { panic!() };
        assert_eq!(r, r1);
        thread::sleep(Duration::from_millis(350));
        assert_eq!(cache.peek("k").unwrap(), Peek::Absent, "expired by the script's clock, before Redis drops the key");
        assert!(server.conn().exists::<_, bool>(s.key_names("k").entry).unwrap(), "still in Redis during the grace");
        // Expired: the next caller runs again (another payload too), with a greater token.
        let Begin::Execute(l) = cache.begin("k", &Fingerprint::of(b"another")).unwrap() else { panic!() };
        assert!(l.token() > r1.token());
        assert!(!l.took_over(), "an expired result is not a crashed owner");
    });
}

#[test]
fn the_token_counter_outlives_the_entry_and_tokens_never_repeat() {
    bounded(Duration::from_secs(30), || {
        let server = RedisServer::start();
        let s = store(&server.url());
        let mut conn = server.conn();
        let names = s.key_names("k");
        let mut last = 0;
        for _ in 0..3 {
            let (t, _) = acquired(s.claim("k", &FP, Duration::from_secs(5)).unwrap());
            assert!(t > last);
            last = t;
            s.release("k", t).unwrap();
            assert!(!conn.exists::<_, bool>(&names.entry).unwrap(), "release deletes the entry");
            let counter: u64 = conn.get(&names.counter).unwrap();
            assert_eq!(counter, t, "the counter survives the deletion");
            let pttl: i64 = conn.pttl(&names.counter).unwrap();
            assert!(pttl > 60_000, "counter PTTL {pttl}");
        }
        // Even with the counter gone (expired, flushed), a new token is above every old one:
        // tokens never drop below the server's time x 1024. (A counter outlives its entry
        // by at least 60 s, far more than the millisecond this needs.)
        while server_ms(&mut conn) * 1024 <= last {
            thread::sleep(Duration::from_millis(1));
        }
        let _: () = conn.del(&names.counter).unwrap();
        let (t, _) = acquired(s.claim("k", &FP, Duration::from_secs(5)).unwrap());
        assert!(t > last, "{t} <= {last}");
        // A stale token of the same key is refused.
        let e = s.complete("k", last, Output::default(), Duration::from_secs(5)).unwrap_err();
        assert!(e.to_string().contains(&format!("another owner holds the key now (token {t})")), "{e}");
        s.complete("k", t, Output::default(), Duration::from_secs(5)).unwrap();
    });
}

#[test]
fn a_flushed_script_cache_is_reloaded() {
    bounded(Duration::from_secs(30), || {
        let server = RedisServer::start();
        let s = store(&server.url());
        acquired(s.claim("a", &FP, Duration::from_secs(5)).unwrap());
        let before = s.stats();
        redis::cmd("SCRIPT").arg("FLUSH").exec(&mut server.conn()).unwrap();
        acquired(s.claim("b", &FP, Duration::from_secs(5)).unwrap());
        let after = s.stats();
        assert_eq!(after.script_loads - before.script_loads, 1);
        assert_eq!(after.round_trips - before.round_trips, 3, "EVALSHA, SCRIPT LOAD, EVALSHA");
        acquired(s.claim("c", &FP, Duration::from_secs(5)).unwrap());
        assert_eq!(s.stats().round_trips - after.round_trips, 1);
    });
}

#[test]
fn with_redis_killed_calls_fail_fast_and_recover_after_a_restart() {
    bounded(Duration::from_secs(60), || {
        let mut server = RedisServer::start();
        let s = store_with(&server.url(), |c| {
            c.command_timeout = Duration::from_millis(500);
            c.reconnect_max_delay = Duration::from_millis(200);
        });
        let closed = cache_on(&s, |_| {});
        let open = cache_on(&s, |c| c.on_store_error = seawall::OnStoreError::Run);
        closed.run("before", &FP, || Ok::<_, std::io::Error>(Output::new(&b"ok"[..], ""))).unwrap();
        let Begin::Execute(held) = closed.begin("held", &FP).unwrap() else { panic!() };
        // A duplicate in another store waits on "held" (lease and wait: 30 s).
        let other = store(&server.url());
        let Begin::InProgress(mut ip) = cache_on(&other, |_| {}).begin("held", &FP).unwrap() else { panic!() };
        let waiter = ip.waiter.take().unwrap();
        assert!(eventually(Duration::from_secs(5), || other.is_subscribed("held")));

        server.kill();
        // The waiter learns of the outage from its lost pub/sub connection, not at the lease.
        let started = Instant::now();
        let e = waiter.wait(Some(Duration::from_secs(10))).expect("told well before the 30 s lease").unwrap_err();
        assert_eq!(e.code(), ErrorCode::StoreUnavailable, "{e}");
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        let mut slowest = Duration::ZERO;
        for i in 0..50 {
            let started = Instant::now();
            let e = closed.begin(&format!("k{i}"), &FP).unwrap_err();
            slowest = slowest.max(started.elapsed());
            assert_eq!(e.code(), ErrorCode::StoreUnavailable, "{e}");
            assert!(e.to_string().contains(&format!("redis at 127.0.0.1:{}/0", server.port())), "{e}");
            thread::sleep(Duration::from_millis(5));
        }
        assert!(slowest < Duration::from_millis(500), "slowest failure took {slowest:?}");
        println!("redis down: 50 calls failed with StoreUnavailable, slowest in {:.2} ms", ms(slowest));
        // Fail-open runs the operation unprotected; nothing is stored.
        let Begin::Execute(l) = open.begin("k", &FP).unwrap() else { panic!() };
        assert!(!l.is_protected());
        assert_eq!(open.complete(&l, Output::new(&b"unprotected"[..], "")).unwrap().result(), b"unprotected");
        assert_eq!(open.stats().unprotected, 1);
        // The work of a lease taken before the outage ran, but its result cannot be stored.
        let e = closed.complete(&held, Output::new(&b"lost"[..], "")).unwrap_err();
        assert_eq!(e.code(), ErrorCode::StoreUnavailable);
        assert!(e.to_string().contains("retried in the background"), "{e}");

        server.restart(); // empty: nothing was persisted
        let back = Instant::now();
        assert!(
            eventually(Duration::from_secs(5), || closed.begin("after", &FP).is_ok()),
            "no recovery within 5 s of the restart: {:?}",
            s.stats()
        );
        println!("recovered {:.0} ms after the restart", ms(back.elapsed()));
        let r = closed.run("after2", &FP, || Ok::<_, std::io::Error>(Output::new(&b"fine"[..], ""))).unwrap();
        let Begin::Replay(again) = closed.begin("after2", &FP).unwrap() else { panic!() };
        assert_eq!(again, r);
        // The held lease vanished with the server: its result is reported lost, not silently.
        assert!(eventually(Duration::from_secs(5), || s.stats().completions_lost == 1), "{:?}", s.stats());
        let st = s.stats();
        assert!(st.connects >= 2 && st.unavailable >= 50 && st.connected, "{st:?}");
    });
}

#[test]
fn a_completion_that_times_out_is_retried_in_the_background_and_lands() {
    bounded(Duration::from_secs(60), || {
        let server = RedisServer::start();
        let s = store_with(&server.url(), |c| {
            c.command_timeout = Duration::from_millis(200);
            c.connect_timeout = Duration::from_millis(200);
            c.reconnect_max_delay = Duration::from_millis(200);
            c.completion_retry_window = Duration::from_secs(20);
        });
        let cache = cache_on(&s, |c| c.lease = Duration::from_secs(20));
        let other = cache_on(&store(&server.url()), |_| {});
        let Begin::Execute(lease) = cache.begin("k", &FP).unwrap() else { panic!() };
        server.pause();
        let started = Instant::now();
        let e = cache.complete(&lease, Output::new(&b"worth keeping"[..], "text/plain")).unwrap_err();
        let took = started.elapsed();
        assert_eq!(e.code(), ErrorCode::StoreUnavailable);
        assert!(e.to_string().contains("no answer within command_timeout (200 ms)"), "{e}");
        assert!(e.to_string().contains("retried in the background"), "{e}");
        assert!(took < Duration::from_millis(900), "complete took {took:?}");
        assert_eq!(s.stats().completions_pending, 1);
        // The cache released the key after the failure; the store kept the lease instead,
        // so the result is not thrown away.
        assert_eq!(cache.stats().released, 0);
        thread::sleep(Duration::from_millis(300));
        server.resume();
        assert!(eventually(Duration::from_secs(10), || s.stats().completions_recovered == 1), "{:?}", s.stats());
        assert_eq!(s.stats().completions_pending, 0);
        match other.begin("k", &FP).unwrap() {
            Begin::Replay(r) => assert_eq!(r.result(), b"worth keeping"),
            other => panic!("expected the retried result, got {}", other.as_str()),
        }
    });
}

#[test]
fn round_trips_per_operation_and_per_call_cost() {
    bounded(Duration::from_secs(90), || {
        let server = RedisServer::start();
        let s = store(&server.url());
        let cache = cache_on(&s, |_| {});
        cache.run("warm", &FP, || Ok::<_, std::io::Error>(Output::default())).unwrap();
        let mut conn = server.conn();
        redis::cmd("CONFIG").arg("RESETSTAT").exec(&mut conn).unwrap();
        let evalsha_calls = |conn: &mut redis::Connection| -> u64 {
            let info: String = redis::cmd("INFO").arg("commandstats").query(conn).unwrap();
            info.lines()
                .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
                .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
        };
        const N: usize = 2000;
        let out = Output::new(&br#"{"id":"ch_1","amount":100}"#[..], "application/json");
        let before = s.stats().round_trips;
        let started = Instant::now();
        for i in 0..N {
            cache.run(&format!("fresh-{i}"), &FP, || Ok::<_, std::io::Error>(out.clone())).unwrap();
        }
        let fresh = started.elapsed();
        let fresh_trips = s.stats().round_trips - before;
        assert_eq!(fresh_trips, 2 * N as u64, "a fresh run is claim + complete");
        assert_eq!(evalsha_calls(&mut conn), 2 * N as u64);
        let before = s.stats().round_trips;
        let started = Instant::now();
        for i in 0..N {
            let r = cache
                .run(&format!("fresh-{i}"), &FP, || -> Result<Output, std::io::Error> { panic!("replays never run") })
                .unwrap();
            assert_eq!(r.result(), out.result.as_slice());
        }
        let replay = started.elapsed();
        assert_eq!(s.stats().round_trips - before, N as u64, "a replay is one claim");
        assert_eq!(evalsha_calls(&mut conn), 3 * N as u64);
        let started = Instant::now();
        for _ in 0..N {
            s.ping().unwrap();
        }
        let ping = started.elapsed();
        println!(
            "redis store, local redis-server, 1 thread: fresh run (claim + complete) {:.1} us/call, replay {:.1} us/call \
             (a bare PING round trip: {:.1} us); round trips: 2 per fresh run, 1 per replay",
            fresh.as_secs_f64() * 1e6 / N as f64,
            replay.as_secs_f64() * 1e6 / N as f64,
            ping.as_secs_f64() * 1e6 / N as f64
        );
        // The same from 8 threads at once, sharing the one multiplexed connection.
        let started = Instant::now();
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let (cache, out) = (cache.clone(), out.clone());
                thread::spawn(move || {
                    for i in 0..N / 8 {
                        cache.run(&format!("mt-{t}-{i}"), &FP, || Ok::<_, std::io::Error>(out.clone())).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        println!("8 threads: {:.0} fresh runs/s through one store", N as f64 / started.elapsed().as_secs_f64());
    });
}

#[test]
fn operation_errors_release_the_key_on_redis_too() {
    bounded(Duration::from_secs(30), || {
        let server = RedisServer::start();
        let s = store(&server.url());
        let cache = cache_on(&s, |_| {});
        let r: Result<Record, RunError<&str>> = cache.run("k", &FP, || Err("boom"));
        assert!(matches!(r, Err(RunError::Failed("boom"))));
        assert_eq!(cache.peek("k").unwrap(), Peek::Absent);
        let errors = cache_on(&s, |c| c.cache_errors = true);
        let Begin::Execute(l) = errors.begin("e", &FP).unwrap() else { panic!() };
        errors.fail(&l, Some(Output::new(&b"{\"error\":\"boom\"}"[..], "application/json"))).unwrap();
        let Begin::Replay(r) = cache.begin("e", &FP).unwrap() else { panic!() };
        assert!(r.is_error());
    });
}

#[test]
fn the_store_works_when_called_from_inside_a_tokio_runtime() {
    bounded(Duration::from_secs(30), || {
        let server = RedisServer::start();
        let s = store(&server.url());
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let got = rt.block_on(async {
            let (t, _) = acquired(s.claim("k", &FP, Duration::from_secs(5)).unwrap());
            s.complete("k", t, Output::new(&b"async app"[..], ""), Duration::from_secs(5)).unwrap()
        });
        assert_eq!(got.result(), b"async app");
        assert!(s.ping().unwrap() < Duration::from_secs(1));
    });
}

#[test]
fn a_store_that_never_reached_redis_fails_fast_and_says_where() {
    bounded(Duration::from_secs(30), || {
        // A port with nothing listening.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let s = store(&format!("redis://127.0.0.1:{port}/0"));
        let started = Instant::now();
        let e = s.claim("k", &FP, Duration::from_secs(1)).unwrap_err();
        assert_eq!(e.code(), ErrorCode::StoreUnavailable);
        assert!(e.to_string().contains(&format!("redis at 127.0.0.1:{port}/0 is unavailable: cannot connect")), "{e}");
        let e = s.claim("k", &FP, Duration::from_secs(1)).unwrap_err();
        assert!(e.to_string().contains("next connection attempt in"), "{e}");
        assert!(started.elapsed() < Duration::from_millis(500));
        assert!(s.ping().is_err());
        let st = s.stats();
        assert!(!st.connected && st.connect_failures >= 1, "{st:?}");
    });
}

#[test]
fn options_are_parsed_and_refused_by_the_core() {
    let node = Style { naming: Naming::Camel, unit: DurationUnit::Millis };
    let mut c = RedisStoreConfig::with_style(node);
    c.set("url", "redis://127.0.0.1:7777/3".into()).unwrap();
    c.set("commandTimeout", ConfigValue::Int(250)).unwrap();
    c.set("connectTimeout", ConfigValue::Float(1500.0)).unwrap();
    c.set("completionRetryWindow", ConfigValue::Int(0)).unwrap();
    assert_eq!(c.command_timeout, Duration::from_millis(250));
    assert_eq!(c.completion_retry_window, Duration::ZERO);
    let e = c.set("commandTimeout", ConfigValue::Int(0)).unwrap_err();
    assert_eq!((e.field.as_str(), e.value.as_str()), ("commandTimeout", "0ms"));
    let e = c.set("connectTimeout", ConfigValue::Str("1s".into())).unwrap_err();
    assert!(e.type_mismatch);
    let e = c.set("reconnectDelay", ConfigValue::Float(f64::NAN)).unwrap_err();
    assert_eq!(e.value, "NaNms");
    let e = c.set("prefix", "a{b}:".into()).unwrap_err();
    assert!(e.reason.contains("hash tag"), "{}", e.reason);
    let e = c.set("prefix", "p".repeat(129).into()).unwrap_err();
    assert!(e.reason.contains("129 bytes"), "{}", e.reason);
    let e = c.set("url", "http://example".into()).unwrap_err();
    assert_eq!(e.field, "url");
    assert!(e.reason.contains("not a Redis URL"), "{}", e.reason);
    let e = c.set("url", "rediss://user:secret@host:6380".into()).unwrap_err();
    assert!(e.reason.contains("TLS"), "{}", e.reason);
    assert!(!e.to_string().contains("secret"), "passwords never appear: {e}");
    let e = c.set("url", ConfigValue::Int(6379)).unwrap_err();
    assert!(e.type_mismatch);
    assert_eq!(c.set("maxEntries", ConfigValue::Int(1)).unwrap_err().reason, "unknown option");
    c.reconnect_delay = Duration::from_secs(5);
    let e = c.validate().unwrap_err();
    assert_eq!(e.field, "reconnectMaxDelay");
    let py = Style { naming: Naming::Snake, unit: DurationUnit::Seconds };
    let mut c = RedisStoreConfig::with_style(py);
    for name in REDIS_OPTION_NAMES {
        let v = match *name {
            "url" => "redis://localhost".into(),
            "prefix" => "app:".into(),
            _ => ConfigValue::Float(0.5),
        };
        c.set(name, v).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert_eq!(c.reconnect_max_delay, Duration::from_millis(500));
    let s = RedisStore::new(RedisStoreConfig::new("redis://:pw@127.0.0.1:1/0")).unwrap();
    assert!(!format!("{s:?}").contains("pw@"), "{s:?}");
}

#[test]
fn values_that_are_not_seawall_entries_are_refused_not_overwritten() {
    bounded(Duration::from_secs(30), || {
        let server = RedisServer::start();
        let s = store(&server.url());
        let mut conn = server.conn();
        let names = s.key_names("taken");
        let _: () = conn.set(&names.entry, "somebody else's value").unwrap();
        let e = s.claim("taken", &FP, Duration::from_secs(5)).unwrap_err();
        assert_eq!(e.code(), ErrorCode::StoreUnavailable);
        assert!(e.to_string().contains("does not hold a seawall entry"), "{e}");
        let v: String = conn.get(&names.entry).unwrap();
        assert_eq!(v, "somebody else's value");
        let names = s.key_names("hash");
        let _: () = conn.hset(&names.entry, "f", "v").unwrap();
        let e = s.peek("hash").unwrap_err();
        assert!(e.to_string().contains("WRONGTYPE"), "{e}");
        // The store stays usable.
        acquired(s.claim("fine", &FP, Duration::from_secs(5)).unwrap());
    });
}

/// Record format version 2 through the scripts: the complete script stamps the header and
/// writes its CRC-32C, which must be the one `Record::encode` writes, for records of every
/// shape (and the scripts' own check of it must accept them: an expired record is taken
/// over). A record corrupted in Redis (every single-bit flip of one) is refused with
/// `StoreUnavailable` by claim and peek: never replayed, never taken for expired (which
/// would run the operation again), never a fingerprint mismatch unless the header is
/// intact. A record of format version 1 is refused by name.
#[test]
fn records_carry_their_checksums_through_the_scripts_and_corrupted_ones_are_refused() {
    bounded(Duration::from_secs(60), || {
        let server = RedisServer::start();
        let s = store(&server.url());
        let mut conn = server.conn();
        let outputs = [
            Output::new(Vec::new(), ""),
            Output::new(&b"{\"ok\":true}"[..], "application/json").with_metadata("status", "201"),
            Output::new(&b"boom"[..], "text/plain").with_metadata("é", "😀").with_metadata("é", "").into_error(),
            Output::new(vec![0xa5; 200_000], "application/octet-stream"), // over the pub/sub inline limit
        ];
        for (i, out) in outputs.into_iter().enumerate() {
            let key = format!("shape-{i}");
            let fp = Fingerprint::of(key.as_bytes());
            let (token, _) = acquired(s.claim(&key, &fp, Duration::from_secs(30)).unwrap());
            let record = s.complete(&key, token, out, Duration::from_secs(60)).unwrap();
            let raw: Vec<u8> = conn.get(s.key_names(&key).entry).unwrap();
            assert_eq!(raw, record.encode(), "{key}: the script's CRC is Record::encode's");
            assert_eq!(s.claim(&key, &fp, Duration::from_secs(30)).unwrap(), Claim::Completed(record.clone()));
            assert_eq!(
                s.claim(&key, &FP, Duration::from_secs(30)).unwrap(),
                Claim::Mismatch { completed: true },
                "the script checked the header's CRC and accepted it"
            );
        }
        // Past its expiry (within the grace), the scripts check the header and take over.
        let fp = Fingerprint::of(b"short");
        let (token, _) = acquired(s.claim("short", &fp, Duration::from_secs(30)).unwrap());
        s.complete("short", token, Output::new(&b"x"[..], "t"), Duration::from_millis(1)).unwrap();
        thread::sleep(Duration::from_millis(5));
        assert_eq!(s.peek("short").unwrap(), Peek::Absent);
        let (later, took_over) = acquired(s.claim("short", &fp, Duration::from_secs(30)).unwrap());
        assert!(later > token && !took_over);

        // Every single-bit flip of a stored record.
        let fp = Fingerprint::of(b"flip");
        let (token, _) = acquired(s.claim("flip", &fp, Duration::from_secs(30)).unwrap());
        let out = Output::new(&b"{\"id\":7}"[..], "application/json").with_metadata("status", "201");
        let record = s.complete("flip", token, out, Duration::from_secs(3600)).unwrap();
        let entry = s.key_names("flip").entry;
        let good: Vec<u8> = conn.get(&entry).unwrap();
        let refused = |r, what: &str| {
            assert_refused(r, what, &[
                "checksum mismatch",
                "is corrupted",
                "format version",
                "not a seawall record",
                "does not hold a seawall entry",
                "cannot decode",
            ])
        };
        for at in 0..good.len() {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad[at] ^= 1 << bit;
                let _: () = redis::cmd("SET").arg(&entry).arg(&bad).arg("KEEPTTL").query(&mut conn).unwrap();
                let what = format!("bit {bit} at offset {at}");
                refused(s.claim("flip", &fp, Duration::from_secs(30)), &what);
                match s.claim("flip", &FP, Duration::from_secs(30)) {
                    // The stored fingerprint is genuine when the header is intact.
                    Ok(Claim::Mismatch { completed: true }) if (64..good.len() - 4).contains(&at) => {}
                    other => refused(other, &format!("{what}, another payload")),
                }
                match s.peek("flip") {
                    Err(e) => assert_eq!(e.code(), ErrorCode::StoreUnavailable, "{what}: {e}"),
                    Ok(p) => panic!("{what}: peek gave {p:?}"),
                }
            }
        }
        // An expiry corrupted into the past is not taken for expired.
        let mut past = good.clone();
        let expires = u64::from_be_bytes(good[24..32].try_into().unwrap());
        let bit = 63 - expires.leading_zeros() as usize; // its highest set bit
        past[31 - bit / 8] ^= 1 << (bit % 8);
        assert!(u64::from_be_bytes(past[24..32].try_into().unwrap()) < server_ms(&mut conn));
        let _: () = redis::cmd("SET").arg(&entry).arg(&past).arg("KEEPTTL").query(&mut conn).unwrap();
        let e = s.claim("flip", &fp, Duration::from_secs(30)).unwrap_err();
        assert!(e.to_string().contains("is corrupted (its header does not match its CRC-32C)"), "{e}");
        assert!(e.to_string().contains("flip"), "names the key: {e}");
        let e = IdempotencyCache::new(IdempotencyConfig::named("c").with_store(s.clone())).unwrap().begin("flip", &fp);
        assert_eq!(e.unwrap_err().code(), ErrorCode::StoreUnavailable);
        let e = s.complete("flip", token, Output::new(&b"again"[..], "t"), Duration::from_secs(60)).unwrap_err();
        assert!(e.to_string().contains("is corrupted"), "{e}");
        let left: Vec<u8> = conn.get(&entry).unwrap();
        assert_eq!(left, past, "a corrupted record is never overwritten");
        // Put back, it replays.
        let _: () = redis::cmd("SET").arg(&entry).arg(&good).arg("KEEPTTL").query(&mut conn).unwrap();
        assert_eq!(s.claim("flip", &fp, Duration::from_secs(30)).unwrap(), Claim::Completed(record));
        // A record of format version 1 (no checksums) is refused by name.
        let mut v1 = good[..good.len() - 8].to_vec();
        v1[3] = 1;
        let _: () = redis::cmd("SET").arg(&entry).arg(&v1).arg("KEEPTTL").query(&mut conn).unwrap();
        let e = s.claim("flip", &fp, Duration::from_secs(30)).unwrap_err();
        assert!(e.to_string().contains("holds a seawall record of format version 1; this build reads"), "{e}");
    });
}

/// A lease is stored twice over; a corrupted one (any single-bit flip, a truncation, a
/// lease of format version 1) is refused by every script with `StoreUnavailable`: never
/// taken over early by a duplicate (a flip in its expiry could otherwise free the key while
/// the owner still runs), never completed, renewed or released, never overwritten.
#[test]
fn corrupted_leases_are_refused_never_taken_over() {
    bounded(Duration::from_secs(60), || {
        let server = RedisServer::start();
        let s = store(&server.url());
        let mut conn = server.conn();
        let fp = Fingerprint::of(b"lease");
        let (token, _) = acquired(s.claim("held", &fp, Duration::from_secs(3600)).unwrap());
        let entry = s.key_names("held").entry;
        let good: Vec<u8> = conn.get(&entry).unwrap();
        assert_eq!(good.len(), 128);
        let refused = |r, what: &str| {
            assert_refused(r, what, &[
                "is corrupted (its two copies differ)",
                "format version",
                "does not hold a seawall entry",
                "is corrupted (its header",
            ])
        };
        let put = |conn: &mut redis::Connection, bytes: &[u8]| {
            let _: () = redis::cmd("SET").arg(&entry).arg(bytes).arg("KEEPTTL").query(conn).unwrap();
        };
        for at in 0..good.len() {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad[at] ^= 1 << bit;
                put(&mut conn, &bad);
                let what = format!("bit {bit} at offset {at}");
                refused(s.claim("held", &fp, Duration::from_secs(30)), &what);
                refused(s.claim("held", &FP, Duration::from_secs(30)), &format!("{what}, another payload"));
                assert_eq!(s.peek("held").unwrap_err().code(), ErrorCode::StoreUnavailable, "{what}");
            }
        }
        // An expiry corrupted into the past, in one copy or in both: never taken over.
        let expires = u64::from_be_bytes(good[24..32].try_into().unwrap());
        let bit = 63 - expires.leading_zeros() as usize;
        let mut past = good.clone();
        past[31 - bit / 8] ^= 1 << (bit % 8);
        assert!(u64::from_be_bytes(past[24..32].try_into().unwrap()) < server_ms(&mut conn));
        put(&mut conn, &past);
        refused(s.claim("held", &fp, Duration::from_secs(30)), "expiry in the past");
        let e = s.complete("held", token, Output::new(&b"r"[..], "t"), Duration::from_secs(60)).unwrap_err();
        assert!(e.to_string().contains("is corrupted (its two copies differ)") && e.to_string().contains("held"), "{e}");
        assert_eq!(s.renew("held", token, Duration::from_secs(30)).unwrap_err().code(), ErrorCode::StoreUnavailable);
        assert_eq!(s.release("held", token).unwrap_err().code(), ErrorCode::StoreUnavailable);
        let left: Vec<u8> = conn.get(&entry).unwrap();
        assert_eq!(left, past, "a corrupted lease is never overwritten");
        // Truncated (the header alone), and a version 1 lease: refused by name.
        put(&mut conn, &good[..64]);
        refused(s.claim("held", &fp, Duration::from_secs(30)), "the first copy alone");
        let mut v1 = good[..64].to_vec();
        v1[3] = 1;
        put(&mut conn, &v1);
        let e = s.claim("held", &fp, Duration::from_secs(30)).unwrap_err();
        assert!(e.to_string().contains("holds a seawall lease of format version 1; this build reads"), "{e}");
        // Put back, the owner completes and the result replays.
        put(&mut conn, &good);
        assert!(matches!(s.claim("held", &fp, Duration::from_secs(30)).unwrap(), Claim::InProgress { .. }));
        let record = s.complete("held", token, Output::new(&b"r"[..], "t"), Duration::from_secs(60)).unwrap();
        assert_eq!(s.claim("held", &fp, Duration::from_secs(30)).unwrap(), Claim::Completed(record));
    });
}

#[test]
fn a_registry_reports_its_redis_stores_health_and_its_recovery() {
    use seawall::{HealthStatus, ManualClock, Registry};
    bounded(Duration::from_secs(60), || {
        let mut server = RedisServer::start();
        let s = store_with(&server.url(), |c| {
            c.command_timeout = Duration::from_millis(500);
            c.reconnect_max_delay = Duration::from_millis(200);
        });
        let clock = ManualClock::shared(); // the checks' interval clock; Redis keeps real time
        let registry = Registry::with(clock.clone(), 10);
        let mut config = IdempotencyConfig::named("payments").with_store(s.clone());
        config.set("critical", ConfigValue::Bool(false)).unwrap();
        registry.idempotency_cache("payments", config).unwrap();
        registry.idempotency_cache("orders", IdempotencyConfig::default().with_store(s.clone())).unwrap();
        let h = registry.health();
        assert_eq!(h.status, HealthStatus::Ok, "{h:?}");
        assert_eq!(h.checks.iter().filter(|c| c.kind == "store" && c.ok).count(), 2, "{h:?}");

        server.kill();
        clock.advance(Duration::from_secs(5));
        let started = Instant::now();
        let h = registry.health();
        assert!(started.elapsed() < Duration::from_secs(5), "bounded by the check's timeout: {:?}", started.elapsed());
        assert_eq!(h.status, HealthStatus::Down, "orders is critical (on_store_error = fail): {h:?}");
        let payments = h.checks.iter().find(|c| c.name == "idempotency:payments").unwrap();
        assert_eq!((payments.ok, payments.status), (false, HealthStatus::Degraded));
        let why = payments.error.as_deref().unwrap();
        assert!(why.starts_with("redis store unavailable: ") && why.contains(&server.port().to_string()), "{why}");

        server.restart();
        assert!(
            eventually(Duration::from_secs(5), || {
                clock.advance(Duration::from_secs(5));
                registry.health().status == HealthStatus::Ok
            }),
            "health is ok again after the restart"
        );
    });
}
