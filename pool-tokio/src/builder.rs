//! `Builder`: the settings of a new `BytesPool`, and the constructors that
//! go through it (`BytesPool::new`, `BytesPool::builder`).

use std::sync::Arc;

use pool_core::BufferConfig;

use crate::error::BuildError;
use crate::pool::{BytesPool, Handle, Inner};
use crate::settings::Settings;

/// Builds a [`BytesPool`]: pool-core settings and an optional byte budget.
///
/// ```
/// use pool_core::BufferConfig;
/// let pool = pool_tokio::BytesPool::builder()
///     .config(BufferConfig::new().max_class(256 << 10))
///     .budget(32 << 20)
///     .build()?;
/// assert_eq!(pool.config().get_max_class(), 256 << 10);
/// # Ok::<(), pool_tokio::BuildError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct Builder {
    config: BufferConfig,
    budget: Option<usize>,
    settings: Settings,
    #[cfg(feature = "diagnostics")]
    diagnostics: Option<crate::Diagnostics>,
}

impl Builder {
    /// The pool-core settings: classes, per-thread and global bounds, decay
    /// (default [`BufferConfig::new`]).
    ///
    /// ```
    /// let b = pool_tokio::BytesPool::builder().config(pool_core::BufferConfig::new().min_class(64));
    /// assert_eq!(b.build()?.checkout(1).capacity(), 64);
    /// # Ok::<(), pool_tokio::BuildError>(())
    /// ```
    pub fn config(mut self, config: BufferConfig) -> Self {
        self.config = config;
        self
    }

    /// A bound on the bytes checked out at once (each buffer charges its
    /// class size; an unpooled one its requested size), from `min_class`
    /// to `Semaphore::MAX_PERMITS`. Default: none. A miss is served by a
    /// larger class's idle buffer
    /// ([`fallback_classes`](pool_core::BufferConfig::fallback_classes))
    /// only if the budget has its extra bytes at once, and is then charged
    /// its size (see [`BytesPool`]'s budget notes).
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::builder().budget(1 << 20).build()?;
    /// assert_eq!(pool.budget().unwrap().limit, 1 << 20);
    /// # Ok::<(), pool_tokio::BuildError>(())
    /// ```
    pub fn budget(mut self, bytes: usize) -> Self {
        self.budget = Some(bytes);
        self
    }

    /// The pool's name, carried by its statistics reports, trace events
    /// (field `pool`) and metrics (label `pool`). Default
    /// [`DEFAULT_NAME`](crate::DEFAULT_NAME) (`"default"`, the
    /// [default pool](crate::default_pool)'s name). An empty name is
    /// refused by [`build`](Self::build) ([`BuildError::EmptyName`]).
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::builder().name("frames").build()?;
    /// assert_eq!(pool.name(), "frames");
    /// assert_eq!(pool_tokio::default_pool().name(), "default");
    /// # Ok::<(), pool_tokio::BuildError>(())
    /// ```
    pub fn name(mut self, name: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        self.settings.name = name.into();
        self
    }

    /// Bytes the idle decay that this crate drives (the
    /// [park hook](BytesPool::on_thread_park) and
    /// [`spawn_maintenance`](BytesPool::spawn_maintenance)) leaves retained:
    /// a decay step runs only while the pool retains more than this.
    /// Default 0: an idle pool gives back everything. One step frees
    /// whole depot batches untaken for a whole interval, so it can end
    /// below the floor by up to one step's worth.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::builder().idle_floor(1 << 20).build()?;
    /// assert_eq!(pool.idle_floor(), 1 << 20);
    /// # Ok::<(), pool_tokio::BuildError>(())
    /// ```
    pub fn idle_floor(mut self, bytes: usize) -> Self {
        self.settings.idle_floor = bytes;
        self
    }

    /// Whether the blocking threads (`spawn_blocking`) of a runtime built
    /// with this pool's hooks keep a per-thread cache. Default `false`: a
    /// buffer returned on a blocking thread goes on to the depot at once,
    /// and a checkout there takes one buffer out of a depot batch and puts
    /// the rest of the batch straight back
    /// ([`BufferPool::take_uncached`](pool_core::BufferPool::take_uncached)),
    /// so a blocking thread holds nothing between its checkouts and memory
    /// cached per thread is bounded by the workers, not by up to 512
    /// blocking threads (Netty caches only for its event-loop threads
    /// too). Workers always cache; so does a former worker, one that handed
    /// its core over in `block_in_place` and went back to tokio's blocking
    /// pool (no hook runs then), for closures tokio's own `spawn_blocking`
    /// runs on it ([`crate::spawn_blocking`]'s closures never cache). The
    /// price, on blocking threads only: each
    /// return flushes the thread's cache to the depot and each checkout
    /// served by the depot pushes the rest of its batch back (two depot
    /// round trips and a batch vector per checkout + return: 404 ns against
    /// 33 ns cached for 4 KiB in `examples/idle_memory.rs` on a 2-core VM,
    /// measured before checkouts stopped keeping the batch).
    /// See [`on_thread_start`](BytesPool::on_thread_start).
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::builder().blocking_cache(true).build()?;
    /// assert!(pool.blocking_cache());
    /// # Ok::<(), pool_tokio::BuildError>(())
    /// ```
    pub fn blocking_cache(mut self, cache: bool) -> Self {
        self.settings.blocking_cache = cache;
        self
    }

    /// Whether every checkout served from the pool (a hit) emits a `trace`
    /// event, with the `tracing` feature. Default `false`: only misses,
    /// discards and overdrafts are traced, each with its reason (one event
    /// per miss and discard; overdrafts at most one WARN a second).
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::builder().trace_hits(true).build()?;
    /// # drop(pool);
    /// # Ok::<(), pool_tokio::BuildError>(())
    /// ```
    pub fn trace_hits(mut self, trace: bool) -> Self {
        self.settings.trace_hits = trace;
        self
    }

    /// Whether a background thread drives this pool's idle decay, so that
    /// it needs no hooks and no task (default `false`; the
    /// [default pool](crate::default_pool) has one). The thread
    /// (`pool-tokio-decay`, asleep between steps) runs
    /// [`BytesPool::decay_to_floor`] four times per decay interval, and
    /// ends once no one can reach the pool: its last handle dropped and no
    /// buffer of it out (a guard, or a frozen buffer's clone, could make a
    /// handle again; a handle so made starts the thread again if it ended).
    ///
    /// It also reaches what idle workers cache, which only their own
    /// threads can touch: when the pool saw no checkout for a whole step
    /// and thread caches still hold more than the
    /// [idle floor](Builder::idle_floor), it spawns one short task per
    /// worker on the last tokio runtime that allocated for the pool; each
    /// hands its worker's cache to the depot and waits at most 5 ms for the
    /// others, so that work stealing spreads them over distinct workers.
    /// After five tries that miss a worker it waits for new traffic.
    /// With the park hook installed ([`BytesPool::install`]) caches are
    /// already empty when a worker idles and this never runs; the park
    /// hook's own idle thread (see [`BytesPool::thread_parking`]) is not
    /// started for a pool with a decay thread.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::builder().decay_thread(true).build()?;
    /// # drop(pool);
    /// # Ok::<(), pool_tokio::BuildError>(())
    /// ```
    pub fn decay_thread(mut self, on: bool) -> Self {
        self.settings.decay_thread = on;
        self
    }

    /// Builds the pool; fails, saying which setting and what to change, if
    /// one is out of range.
    ///
    /// ```
    /// let err = pool_tokio::BytesPool::builder().budget(100).build().unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     format!(
    ///         "invalid pool setting `budget` = 100: expected from min_class (512, so that one \
    ///          buffer fits) to {} bytes",
    ///         tokio::sync::Semaphore::MAX_PERMITS
    ///     )
    /// );
    /// ```
    pub fn build(self) -> Result<BytesPool, BuildError> {
        if self.settings.name.is_empty() {
            return Err(BuildError::EmptyName);
        }
        #[allow(unused_mut)] // set only with the `diagnostics` feature
        let mut inner = Inner::with_settings(self.config, self.budget, self.settings)?;
        #[cfg(feature = "diagnostics")]
        {
            inner.diagnostics = self
                .diagnostics
                .map(crate::diagnostics::records::Registry::new);
        }
        // Its first handle starts the decay thread, if set.
        Ok(BytesPool::from_handle(Handle::Shared(Arc::new(inner))))
    }

    /// Records where and when each buffer of this pool is checked out until
    /// it comes back, for [`BytesPool::held_longer_than`] and
    /// [`BytesPool::assert_all_returned`] (default: off). Only with the
    /// `diagnostics` feature.
    ///
    /// ```
    /// use pool_tokio::{BytesPool, Diagnostics};
    /// let pool = BytesPool::builder().diagnostics(Diagnostics::new()).build()?;
    /// assert!(pool.diagnostics_enabled());
    /// # Ok::<(), pool_tokio::BuildError>(())
    /// ```
    #[cfg(feature = "diagnostics")]
    pub fn diagnostics(mut self, settings: crate::Diagnostics) -> Self {
        self.diagnostics = Some(settings);
        self
    }
}

impl Builder {
    /// The builder `BytesPool::builder` returns: pool-core's defaults, no
    /// budget, default settings.
    pub(crate) fn new() -> Self {
        Builder {
            config: BufferConfig::new(),
            budget: None,
            settings: Settings::default(),
            #[cfg(feature = "diagnostics")]
            diagnostics: None,
        }
    }
}

impl Default for BytesPool {
    fn default() -> Self {
        Self::new()
    }
}

impl BytesPool {
    /// A pool with pool-core's default settings (classes 512 B ..= 1 MiB)
    /// and no budget.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// assert_eq!(pool.checkout(0).capacity(), 512);
    /// ```
    pub fn new() -> Self {
        match Self::builder().build() {
            Ok(pool) => pool,
            Err(e) => unreachable!("default settings are valid: {e}"),
        }
    }

    /// A builder, for a budget or settings.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::builder()
    ///     .config(pool_core::BufferConfig::new().min_class(1024))
    ///     .budget(16 << 20)
    ///     .build()?;
    /// assert_eq!(pool.budget().unwrap().limit, 16 << 20);
    /// # Ok::<(), pool_tokio::BuildError>(())
    /// ```
    pub fn builder() -> Builder {
        Builder::new()
    }
}
