//! Test support for the Redis store: a real `redis-server` per test, on a free loopback
//! port, with no persistence (or, with `start_durable`, an append-only file fsynced on every
//! write, so a restarted server has every acknowledged write); and a time bound for every
//! test.
//!
//! The server binary is `redis-server` on PATH, or `$SEAWALL_REDIS_SERVER`. When it is
//! missing the tests FAIL (they never skip): install it with `apt-get install -y
//! redis-server` (scripts/bootstrap.sh does).
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A `redis-server` started for one test, killed when dropped.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    durable: bool,
}

fn binary() -> String {
    std::env::var("SEAWALL_REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned())
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    l.local_addr().unwrap().port()
}

impl RedisServer {
    /// Starts a server on a free loopback port and waits until it answers `PING`.
    pub fn start() -> RedisServer {
        Self::start_with(false)
    }

    /// Like `start`, with `appendonly yes` and `appendfsync always`: a write the server
    /// acknowledged survives a SIGKILL and `restart`.
    pub fn start_durable() -> RedisServer {
        Self::start_with(true)
    }

    fn start_with(durable: bool) -> RedisServer {
        let dir = std::env::temp_dir().join(format!("seawall-redis-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).expect("create a scratch directory for redis-server");
        let mut last = String::new();
        for _ in 0..5 {
            let mut s = RedisServer { child: None, port: free_port(), dir: dir.clone(), durable };
            match s.spawn() {
                Ok(()) => return s,
                Err(e) => last = e,
            }
        }
        panic!("could not start redis-server: {last}");
    }

    fn spawn(&mut self) -> Result<(), String> {
        let bin = binary();
        let mut cmd = Command::new(&bin);
        // If the test process dies (a time bound hit, a crash), the server goes with it.
        #[cfg(target_os = "linux")]
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(if self.durable { ["--appendonly", "yes", "--appendfsync", "always"] } else { ["--appendonly", "no", "--appendfsync", "everysec"] })
            .args(["--daemonize", "no", "--loglevel", "warning", "--databases", "4"])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "`{bin}` was not found: the Redis store tests need a real redis-server \
                 (Debian: apt-get install -y redis-server; scripts/bootstrap.sh installs it; \
                 or set SEAWALL_REDIS_SERVER to its path)"
            ),
            Err(e) => panic!("cannot run `{bin}`: {e}"),
        };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                return Err(format!("redis-server exited with {status} on port {}: {err}", self.port));
            }
            if self.ping() {
                self.child = Some(child);
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(format!("redis-server on port {} did not answer PING within 10 s", self.port))
    }

    fn ping(&self) -> bool {
        let Ok(client) = redis::Client::open(self.url()) else { return false };
        let Ok(mut c) = client.get_connection_with_timeout(Duration::from_millis(200)) else { return false };
        redis::cmd("PING").query::<String>(&mut c).is_ok()
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        self.url_db(0)
    }

    /// `redis://127.0.0.1:PORT/DB`.
    pub fn url_db(&self, db: u8) -> String {
        format!("redis://127.0.0.1:{}/{db}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A plain synchronous connection, to look at what the store wrote.
    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(2))
            .expect("connect to the test redis-server")
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server is running").id()
    }

    /// SIGKILL, and wait for the process to go.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port (empty unless durable).
    pub fn restart(&mut self) {
        self.kill();
        let started = Instant::now();
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(e) if started.elapsed() > Duration::from_secs(10) => panic!("cannot restart redis-server: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([sig, &self.pid().to_string()]).status().map(|s| s.success());
        assert!(matches!(ok, Ok(true)), "kill {sig} failed");
    }

    /// SIGSTOP: the server keeps its sockets but answers nothing.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT.
    pub fn resume(&self) {
        self.signal("-CONT");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill").args(["-CONT", &c.id().to_string()]).status();
        }
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `f` on its own thread and fails the test if it has not finished within `limit`.
pub fn bounded<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => {
            let _ = handle.join();
            v
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the test thread sent nothing and did not panic"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("test did not finish within {limit:?}"),
    }
}

/// Polls `cond` every 5 ms until it holds or `limit` passes; returns whether it held.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if started.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
