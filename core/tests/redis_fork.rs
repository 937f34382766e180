//! A store used before a `fork` works in the child: the child builds its own runtime and
//! connections (pre-fork servers such as gunicorn create the app, then fork workers).
//! Alone in its test binary, so no other test thread is running when it forks.
#![cfg(all(feature = "redis", target_os = "linux"))]

use std::sync::Arc;
use std::time::{Duration, Instant};

use seawall::idempotency::{Fingerprint, Output};
use seawall::store::redis::{RedisStore, RedisStoreConfig};
use seawall::store::{Claim, Store};

mod redis_support;
use redis_support::RedisServer;

#[test]
fn a_forked_child_builds_its_own_connections() {
    let server = RedisServer::start();
    let s = Arc::new(RedisStore::new(RedisStoreConfig::new(server.url())).unwrap());
    let fp = Fingerprint::NONE;
    // The parent has connected (runtime, I/O thread, notifier thread all running).
    assert!(matches!(s.claim("parent", &fp, Duration::from_secs(5)).unwrap(), Claim::Acquired { .. }));

    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // The child: no printing (another thread of the parent may have held stdout).
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            match s.claim("child", &fp, Duration::from_secs(5)) {
                Ok(Claim::Acquired { token, .. }) => {
                    s.complete("child", token, Output::new(&b"from the child"[..], ""), Duration::from_secs(60)).is_ok()
                }
                _ => false,
            }
        }));
        unsafe { libc::_exit(if matches!(ok, Ok(true)) { 0 } else { 1 }) };
    }
    // The parent: wait for the child, at most 20 s.
    let started = Instant::now();
    let status = loop {
        let mut status = 0;
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("the forked child hung");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "the child failed (status {status})");
    match s.claim("child", &fp, Duration::from_secs(5)).unwrap() {
        Claim::Completed(r) => assert_eq!(r.result(), b"from the child"),
        other => panic!("{other:?}"),
    }
}
