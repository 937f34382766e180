//! The registry: named breakers and health checks, one snapshot, one Prometheus text and
//! one health report (the core's `Registry`).
//!
//! Breakers are the core's: `breaker(name, options)` gets or creates one in the core
//! registry and hands JS a `NativeBreaker` over it (with its own event queue), plus the
//! breaker's identity so the JS layer can keep one JS object per core breaker.
//!
//! Health checks written in JavaScript run on the event loop, so they are registered as
//! external checks (`Registry::add_external_check`): the JS layer takes the due runs
//! (`checksDue`), runs them bounded by their timeouts, and reports each back
//! (`finishCheck`, `timeOutCheck`); the interval cache, the timeout bookkeeping and the
//! report are the core's `Checks`. The check each idempotency cache's store gets
//! (`idempotency:<name>`, kind `store`) is the core's own: `runStoreChecks()` runs the due
//! ones on the thread pool (a Redis `PING` never blocks the event loop).

use napi::bindgen_prelude::*;
use napi_derive::napi;
use seawall::health::{CheckConfig, KIND_CHECK};
use seawall::registry::{health_value, DEFAULT_MAX_BREAKERS};
use seawall::{CircuitBreaker, ConfigValue, Registry, SharedClock};

use crate::breaker::NativeBreaker;
use crate::clock::{system_clock, ManualClock};
use crate::errors::{config_value, duration_ms, guard, throw};
use crate::idempotency::{NativeIdempotencyCache, NativeWakeup, NODE_STYLE};

/// The native registry behind the JS `Registry`.
#[napi]
pub struct NativeRegistry {
    registry: Registry,
}

/// A due run of a JS check: run it, then `finishCheck(name, run, error)`.
#[napi(object)]
pub struct DueCheck {
    pub name: String,
    pub run: f64,
    /// Its timeout in ms.
    pub timeout: f64,
}

fn identity(b: &CircuitBreaker) -> f64 {
    // Two handles on one core breaker share its name and state; the address of the
    // snapshot's `Arc` is not public, so the breaker's config address stands in: it lives
    // as long as the breaker and is distinct for distinct breakers.
    b.config() as *const _ as usize as f64
}

#[napi]
impl NativeRegistry {
    /// `maxBreakers` is read by the core's count rule (a whole number >= 1).
    #[napi(constructor, catch_unwind)]
    pub fn new(env: Env, clock: Option<&ManualClock>, max_breakers: Option<Unknown<'_>>) -> Result<Self> {
        guard(env.raw(), || {
            let clock: SharedClock = match clock {
                Some(c) => c.shared(),
                None => system_clock().clone(),
            };
            let max = match max_breakers {
                Some(v) if v.get_type()? != ValueType::Undefined => {
                    let value = config_value(&v)?;
                    NODE_STYLE.count("max_breakers", &value, u32::MAX).map_err(|e| throw(env.raw(), e.into()))? as usize
                }
                _ => DEFAULT_MAX_BREAKERS,
            };
            Ok(Self { registry: Registry::with(clock, max) })
        })
    }

    /// Gets or creates the breaker `name` (options used only when creating). Returns the
    /// JS handle; `info` receives its identity and whether it was created.
    #[napi(catch_unwind)]
    pub fn breaker(
        &self,
        env: Env,
        name: String,
        options: Option<Object<'_>>,
        clock: Option<&ManualClock>,
        mut info: Object<'_>,
    ) -> Result<NativeBreaker> {
        guard(env.raw(), || {
            let existing = self.registry.get_breaker(&name);
            let created = existing.is_none();
            let breaker = match existing {
                // Touch it (recency for the registry's bound); the options are not used.
                Some(_) => self.registry.breaker(&name, seawall::BreakerConfig::default()),
                None => self.registry.breaker(&name, NativeBreaker::config(env, options, clock)?),
            }
            .map_err(|e| throw(env.raw(), e.into()))?;
            info.set("id", identity(&breaker))?;
            info.set("created", created)?;
            Ok(NativeBreaker::wrap(breaker))
        })
    }

    /// The identity of the breaker `name` (touching it), or `null`.
    #[napi(catch_unwind)]
    pub fn touch(&self, env: Env, name: String) -> Result<Option<f64>> {
        guard(env.raw(), || {
            if self.registry.get_breaker(&name).is_none() {
                return Ok(None);
            }
            let b = self.registry.breaker(&name, seawall::BreakerConfig::default()).map_err(|e| throw(env.raw(), e.into()))?;
            Ok(Some(identity(&b)))
        })
    }

    /// Gets or creates the idempotency cache `name` (options used only when creating; the
    /// core registry keeps it, and reports its counts in the snapshot and the metrics).
    #[napi(catch_unwind)]
    pub fn idempotency_cache(
        &self,
        env: Env,
        name: String,
        options: Option<Object<'_>>,
        clock: Option<&ManualClock>,
        store: Option<Unknown<'_>>,
        wakeup: &NativeWakeup,
    ) -> Result<NativeIdempotencyCache> {
        guard(env.raw(), || {
            let config = NativeIdempotencyCache::config(env, options, clock, store)?;
            let cache = self.registry.idempotency_cache(&name, config).map_err(|e| throw(env.raw(), e.into()))?;
            Ok(NativeIdempotencyCache::wrap(cache, wakeup))
        })
    }

    /// Forgets a breaker; false when there was none.
    #[napi(catch_unwind)]
    pub fn remove_breaker(&self, name: String) -> bool {
        self.registry.remove_breaker(&name)
    }

    /// Names of the breakers the registry holds.
    #[napi(catch_unwind)]
    pub fn breaker_names(&self) -> Vec<String> {
        self.registry.breakers().iter().map(|b| b.name().to_owned()).collect()
    }

    /// Registers a JS check (`timeout`, `interval`, `critical` through the core's
    /// `CheckConfig::set`).
    #[napi(catch_unwind)]
    pub fn add_check(&self, env: Env, name: String, options: Option<Object<'_>>) -> Result<()> {
        guard(env.raw(), || {
            let mut config = CheckConfig::default();
            if let Some(opts) = options {
                for key in Object::keys(&opts)? {
                    let Some(v) = opts.get::<Unknown<'_>>(&key)? else { continue };
                    if v.get_type()? == ValueType::Undefined {
                        continue;
                    }
                    let value: ConfigValue = config_value(&v)?;
                    config.set(NODE_STYLE, &key, value).map_err(|e| throw(env.raw(), e.into()))?;
                }
            }
            self.registry.add_external_check(&name, config).map_err(|e| throw(env.raw(), e))
        })
    }

    #[napi(catch_unwind)]
    pub fn remove_check(&self, name: String) -> bool {
        self.registry.remove_check(&name)
    }

    /// The JS checks to run now (marked running by the core).
    #[napi(catch_unwind)]
    pub fn checks_due(&self) -> Vec<DueCheck> {
        let now = self.registry.clock().now();
        self.registry
            .checks()
            .due_of_kind(now, KIND_CHECK)
            .into_iter()
            .map(|d| DueCheck { name: d.name, run: d.run as f64, timeout: duration_ms(d.timeout) })
            .collect()
    }

    /// Records the result of a run: `error` is `null` when the check passed.
    #[napi(catch_unwind)]
    pub fn finish_check(&self, name: String, run: f64, error: Option<String>) {
        let now = self.registry.clock().now();
        let result = match error {
            None => Ok(()),
            Some(e) => Err(e),
        };
        self.registry.checks().finish(&name, run as u64, result, now);
    }

    /// Runs the due checks of the idempotency caches' stores on the thread pool (each
    /// bounded by its timeout); resolves when they are recorded.
    #[napi(catch_unwind)]
    pub fn run_store_checks(&self) -> AsyncTask<StoreChecksTask> {
        AsyncTask::new(StoreChecksTask { registry: self.registry.clone() })
    }

    /// Fails a run for outliving its timeout.
    #[napi(catch_unwind)]
    pub fn time_out_check(&self, name: String, run: f64) {
        let now = self.registry.clock().now();
        self.registry.checks().time_out(&name, run as u64, now);
    }

    /// The health report from the results at hand (the core's JSON: `{ status, checks }`).
    #[napi(catch_unwind)]
    pub fn report(&self) -> String {
        health_value(&self.registry.report()).to_string()
    }

    /// Everything as JSON text (the core's `snapshot_json`).
    #[napi(catch_unwind)]
    pub fn snapshot(&self) -> String {
        self.registry.snapshot_json().to_string()
    }

    /// The Prometheus text exposition (version 0.0.4).
    #[napi(catch_unwind)]
    pub fn prometheus(&self) -> String {
        self.registry.prometheus()
    }

    /// Ms on the registry's clock.
    #[napi(catch_unwind)]
    pub fn now(&self) -> f64 {
        duration_ms(self.registry.clock().now())
    }
}

/// `runStoreChecks()` off the event loop.
pub struct StoreChecksTask {
    registry: Registry,
}

impl Task for StoreChecksTask {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> Result<()> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.registry.run_store_checks()))
            .map_err(|p| Error::new(Status::GenericFailure, crate::errors::panic_message(&*p)))
    }

    fn resolve(&mut self, _env: Env, _out: ()) -> Result<()> {
        Ok(())
    }
}
