//! `Settings`: the settings of a pool that are pool-tokio's own (not
//! pool-core's), and `DEFAULT_NAME`. A leaf module: the builder sets them,
//! `pool.rs` keeps them in `Inner`, and the observers (`tracing.rs`, the
//! blocking-thread mark) read them.

use std::borrow::Cow;

/// The settings of a pool that are pool-tokio's own (not pool-core's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    /// Carried by statistics reports, trace events and metrics.
    pub(crate) name: Cow<'static, str>,
    /// Bytes that idle decay driven by this crate leaves retained.
    pub(crate) idle_floor: usize,
    /// Whether blocking threads of a runtime with this pool's hooks keep a
    /// per-thread cache.
    pub(crate) blocking_cache: bool,
    /// Whether every hit is traced (misses and discards always are).
    pub(crate) trace_hits: bool,
    /// Whether a background thread drives idle decay (`Builder::decay_thread`).
    pub(crate) decay_thread: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            name: Cow::Borrowed(DEFAULT_NAME),
            idle_floor: 0,
            blocking_cache: false,
            trace_hits: false,
            decay_thread: false,
        }
    }
}

/// The name of a pool built without [`Builder::name`](crate::Builder::name),
/// the [default pool](crate::default_pool)'s included.
pub const DEFAULT_NAME: &str = "default";
