//! The command connection: one multiplexed connection shared by every thread, rebuilt
//! after a failure with exponential backoff, failing fast in between.
//!
//! States: `Up` (a live connection; every call pipelines on it), `Down` (the last attempt
//! or command failed; calls before `retry_at` fail at once with `StoreUnavailable`
//! naming the cause and when the next attempt is, and the first call after it tries to
//! connect while concurrent callers wait for that one attempt). A command that fails at
//! the connection level, or gets no answer within `command_timeout`, turns `Up` into `Down`
//! with an immediate retry; each failed connection attempt doubles the wait, from
//! `reconnect_delay` up to `reconnect_max_delay`. So with Redis down every call returns
//! within microseconds (connection refused) or `connect_timeout` (an address that does
//! not answer), and a Redis that comes back is used again within `reconnect_max_delay`.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::redis::aio::MultiplexedConnection;
use ::redis::{AsyncConnectionConfig, Client, Cmd, ErrorKind, RedisError, Value};
use parking_lot::Mutex;

use super::Counters;
use crate::error::Error;

/// Why a query failed.
pub(super) enum Fail {
    /// The server does not have the script cached (`NOSCRIPT`): load it and try again.
    NoScript,
    /// Anything else, as the caller will see it.
    Unavailable(Error),
}

enum State {
    Up { conn: MultiplexedConnection, generation: u64 },
    Down { retry_at: Instant, next_delay: Duration, error: String, generation: u64 },
}

pub(super) struct Link {
    client: Client,
    config: AsyncConnectionConfig,
    /// `host:port/db`, for messages (never the password).
    pub(super) target: String,
    connect_timeout: Duration,
    command_timeout: Duration,
    min_delay: Duration,
    max_delay: Duration,
    state: Mutex<State>,
    connecting: tokio::sync::Mutex<()>,
    counts: Arc<Counters>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// True when `e` means the connection is unusable (rebuild it), not that one command failed.
fn connection_level(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_unrecoverable_error()
        || e.is_timeout()
        || e.is_connection_refusal()
        || matches!(e.kind(), ErrorKind::ReadOnly | ErrorKind::BusyLoadingError | ErrorKind::MasterDown)
}

impl Link {
    pub(super) fn new(
        client: Client,
        target: String,
        connect_timeout: Duration,
        command_timeout: Duration,
        min_delay: Duration,
        max_delay: Duration,
        counts: Arc<Counters>,
    ) -> Self {
        Link {
            config: AsyncConnectionConfig::new().set_connection_timeout(connect_timeout),
            client,
            target,
            connect_timeout,
            command_timeout,
            min_delay,
            max_delay,
            state: Mutex::new(State::Down {
                retry_at: Instant::now(),
                next_delay: min_delay,
                error: "not connected yet".into(),
                generation: 0,
            }),
            connecting: tokio::sync::Mutex::new(()),
            counts,
        }
    }

    pub(super) fn counts(&self) -> &Counters {
        &self.counts
    }

    pub(super) fn is_up(&self) -> bool {
        matches!(*self.state.lock(), State::Up { .. })
    }

    fn unavailable(&self, why: &str, retry_in: Option<Duration>) -> Error {
        self.counts.unavailable.fetch_add(1, Relaxed);
        match retry_in {
            Some(d) => Error::StoreUnavailable(format!(
                "redis at {} is unavailable: {why} (next connection attempt in {:.0} ms)",
                self.target,
                ms(d).ceil()
            )),
            None => Error::StoreUnavailable(format!("redis at {} is unavailable: {why}", self.target)),
        }
    }

    /// The live connection; an error when down and not due for an attempt; `None` when an
    /// attempt is due.
    fn ready(&self) -> Result<Option<(MultiplexedConnection, u64)>, Error> {
        match &*self.state.lock() {
            State::Up { conn, generation } => Ok(Some((conn.clone(), *generation))),
            State::Down { retry_at, error, .. } => {
                let now = Instant::now();
                if now < *retry_at {
                    Err(self.unavailable(error, Some(*retry_at - now)))
                } else {
                    Ok(None)
                }
            }
        }
    }

    async fn connection(&self) -> Result<(MultiplexedConnection, u64), Error> {
        if let Some(c) = self.ready()? {
            return Ok(c);
        }
        // One attempt at a time; callers that arrive meanwhile wait for its outcome.
        let _one = self.connecting.lock().await;
        if let Some(c) = self.ready()? {
            return Ok(c);
        }
        let attempt = tokio::time::timeout(
            self.connect_timeout,
            self.client.get_multiplexed_async_connection_with_config(&self.config),
        )
        .await;
        let error = match attempt {
            Ok(Ok(conn)) => {
                self.counts.connects.fetch_add(1, Relaxed);
                let mut st = self.state.lock();
                let generation = match &*st {
                    State::Down { generation, .. } | State::Up { generation, .. } => generation + 1,
                };
                *st = State::Up { conn: conn.clone(), generation };
                return Ok((conn, generation));
            }
            Ok(Err(e)) => format!("cannot connect: {e}"),
            Err(_) => format!("cannot connect within connect_timeout ({} ms)", ms(self.connect_timeout)),
        };
        self.counts.connect_failures.fetch_add(1, Relaxed);
        let mut st = self.state.lock();
        let (delay, generation) = match &*st {
            State::Down { next_delay, generation, .. } => (*next_delay, *generation),
            State::Up { generation, .. } => (self.min_delay, *generation),
        };
        *st = State::Down {
            retry_at: Instant::now() + delay,
            next_delay: (delay * 2).min(self.max_delay),
            error: error.clone(),
            generation,
        };
        drop(st);
        Err(self.unavailable(&error, Some(delay)))
    }

    /// The connection of `generation` failed: drop it; the next call reconnects at once.
    fn broken(&self, generation: u64, error: String) {
        let mut st = self.state.lock();
        if let State::Up { generation: g, .. } = &*st {
            if *g == generation {
                *st = State::Down { retry_at: Instant::now(), next_delay: self.min_delay, error, generation };
            }
        }
    }

    /// Sends one command and reads its answer, within `command_timeout`.
    pub(super) async fn query(&self, cmd: &Cmd) -> Result<Value, Fail> {
        let (mut conn, generation) = self.connection().await.map_err(Fail::Unavailable)?;
        self.counts.round_trips.fetch_add(1, Relaxed);
        let answer = tokio::time::timeout(self.command_timeout, conn.send_packed_command(cmd)).await;
        // Server errors come back as values; make them errors (NOSCRIPT among them).
        match answer.map(|r| r.and_then(Value::extract_error)) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if e.kind() == ErrorKind::NoScriptError => Err(Fail::NoScript),
            Ok(Err(e)) => {
                let why = e.to_string();
                if connection_level(&e) {
                    self.broken(generation, format!("the connection failed: {why}"));
                    Err(Fail::Unavailable(self.unavailable(&format!("the connection failed: {why}"), None)))
                } else {
                    Err(Fail::Unavailable(self.unavailable(&format!("the server refused the command: {why}"), None)))
                }
            }
            Err(_) => {
                let why = format!("no answer within command_timeout ({} ms)", ms(self.command_timeout));
                self.broken(generation, why.clone());
                Err(Fail::Unavailable(self.unavailable(&why, None)))
            }
        }
    }
}
