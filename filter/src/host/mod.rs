//! The only module that imports proxy-wasm: the VM entry point, the root context (one per
//! worker: configuration and the verdict cache) and the HTTP context that feeds `decide` and
//! applies its effects. No decisions are made here.

mod http;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, LogLevel, MetricType};

use crate::cache::AuthCache;
use crate::config::Config;
use crate::metrics::{GateMetrics, MetricsHost};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(GateRoot::default()) });
}}

/// Per-worker state shared by every request the worker handles.
struct GateRoot {
    config: Rc<Config>,
    cache: Rc<RefCell<AuthCache>>,
    /// Mixed into request-id seeds so ids stay distinct even if the host's randomness fails.
    counter: Rc<RefCell<u64>>,
    /// Ids of the filter's Envoy stats on this worker (defined at configure time).
    metrics: GateMetrics,
}

impl Default for GateRoot {
    fn default() -> Self {
        let config = Config::default();
        let cache = AuthCache::new(config.cache_capacity);
        Self {
            config: Rc::new(config),
            cache: Rc::new(RefCell::new(cache)),
            counter: Rc::new(RefCell::new(0)),
            metrics: GateMetrics::default(),
        }
    }
}

/// proxy-wasm's metric calls; a refusal is logged once and the counter skipped.
struct HostMetrics;

impl MetricsHost for HostMetrics {
    fn define_counter(&self, name: &str) -> Option<u32> {
        match hostcalls::define_metric(MetricType::Counter, name) {
            Ok(id) => Some(id),
            Err(status) => {
                log::warn!("gate: cannot define the metric {name}: {status:?}");
                None
            }
        }
    }

    fn increment(&self, id: u32, delta: u64) {
        let delta = i64::try_from(delta).unwrap_or(i64::MAX);
        if let Err(status) = hostcalls::increment_metric(id, delta) {
            log::debug!("gate: cannot increment metric {id}: {status:?}");
        }
    }
}

/// Reports the cache lookups counted since the last report.
fn report_lookups(metrics: &GateMetrics, cache: &RefCell<AuthCache>) {
    let lookups = cache.borrow_mut().take_lookups();
    metrics.record_lookups(&HostMetrics, lookups);
}

impl Context for GateRoot {}

impl RootContext for GateRoot {
    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        let bytes = hostcalls::get_buffer(
            BufferType::PluginConfiguration,
            0,
            plugin_configuration_size,
        )
        .ok()
        .flatten()
        .unwrap_or_default();
        match Config::parse(&bytes) {
            Ok(config) => {
                if self.metrics == GateMetrics::default() {
                    self.metrics = GateMetrics::define(&HostMetrics);
                }
                self.cache = Rc::new(RefCell::new(AuthCache::new(config.cache_capacity)));
                self.config = Rc::new(config);
                true
            }
            Err(reason) => {
                log::error!("{reason}");
                false
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let sequence = {
            let mut counter = self.counter.borrow_mut();
            *counter = counter.wrapping_add(1);
            *counter
        };
        Some(Box::new(http::GateHttp::new(
            Rc::clone(&self.config),
            Rc::clone(&self.cache),
            self.metrics,
            new_request_id(context_id, sequence),
        )))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Milliseconds since the epoch from the host clock (0 if the host cannot tell).
fn now_ms() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A fresh `req_...` id from the WASI random source, with time and a counter mixed in.
fn new_request_id(context_id: u32, sequence: u64) -> String {
    let mut seed = [0u8; 48];
    if getrandom::fill(&mut seed[..32]).is_err() {
        log::warn!("random source unavailable; request ids fall back to time and counter");
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    seed[32..40].copy_from_slice(&(nanos ^ u64::from(context_id)).to_le_bytes());
    seed[40..48].copy_from_slice(&sequence.to_le_bytes());
    crate::request_id::from_seed(&seed)
}
