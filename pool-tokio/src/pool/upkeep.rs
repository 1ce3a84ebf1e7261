//! `BytesPool`'s settings and upkeep: what a service reads of a live pool
//! (its settings, name, idle floor) and the maintenance it may call itself
//! (`reconfigure`, `trim`, `maintain`, `flush_thread`, `prewarm`), beside
//! the checkouts and statistics in `pool.rs`.

use bytes::BytesMut;
use pool_core::{BufferConfig, BufferPool};

use super::{BytesPool, Handle};
use crate::budget::semaphore::check_budget;
use crate::error::BuildError;
use crate::runtime::stash;

impl BytesPool {
    /// The settings in force.
    ///
    /// ```
    /// assert_eq!(pool_tokio::BytesPool::new().config(), pool_core::BufferConfig::new());
    /// ```
    pub fn config(&self) -> BufferConfig {
        self.handle.inner().pool.config()
    }

    /// The pool's name ([`Builder::name`](crate::Builder::name); `"default"` unless set).
    ///
    /// ```
    /// assert_eq!(pool_tokio::BytesPool::new().name(), "default");
    /// ```
    pub fn name(&self) -> &str {
        &self.handle.inner().settings.name
    }

    /// The bytes idle decay leaves retained ([`Builder::idle_floor`](crate::Builder::idle_floor)).
    ///
    /// ```
    /// assert_eq!(pool_tokio::BytesPool::new().idle_floor(), 0);
    /// ```
    pub fn idle_floor(&self) -> usize {
        self.handle.inner().settings.idle_floor
    }

    /// Whether blocking threads keep a per-thread cache
    /// ([`Builder::blocking_cache`](crate::Builder::blocking_cache)).
    ///
    /// ```
    /// assert!(!pool_tokio::BytesPool::new().blocking_cache());
    /// ```
    pub fn blocking_cache(&self) -> bool {
        self.handle.inner().settings.blocking_cache
    }

    /// Changes the settings of a live pool (see
    /// [`BufferPool::reconfigure`]). On a pool with a budget, the smallest
    /// class must still fit in it. On error nothing changes.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// pool.reconfigure(pool.config().min_class(4096))?;
    /// assert_eq!(pool.checkout(1).capacity(), 4096);
    /// # Ok::<(), pool_tokio::BuildError>(())
    /// ```
    pub fn reconfigure(&self, config: BufferConfig) -> Result<(), BuildError> {
        let inner = self.handle.inner();
        if let Some(budget) = &inner.budget {
            check_budget(budget.limit, &config)?;
        }
        inner.pool.reconfigure(config)?;
        Ok(())
    }

    /// Drops every buffer the pool keeps (see [`BufferPool::trim`]);
    /// returns the bytes freed from the depot.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// pool.prewarm(4096, 4);
    /// assert_eq!(pool.trim(), 4 * 4096);
    /// ```
    pub fn trim(&self) -> usize {
        let _span = crate::tracing::maintenance_span(self.name(), "trim");
        self.handle.inner().pool.trim()
    }

    /// Idle decay (see [`BufferPool::maintain`]): cheap; frees what stayed
    /// unused for a whole decay interval. Returns true if a decay tick ran.
    ///
    /// ```
    /// pool_tokio::BytesPool::new().maintain();
    /// ```
    pub fn maintain(&self) -> bool {
        self.handle.inner().pool.maintain()
    }

    /// Hands this thread's cache to the depot (see
    /// [`BufferPool::flush_thread`]), and gives up the references to this
    /// pool that guards returned on this thread left in its stash (see
    /// [`BytesPool`]).
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// drop(pool.checkout(4096));
    /// pool.flush_thread();
    /// assert_eq!(pool.stats().class(4096).unwrap().retained_depot, 1);
    /// ```
    pub fn flush_thread(&self) {
        self.handle.inner().pool.flush_thread();
        if let Handle::Shared(arc) = &self.handle {
            stash::give_up_pool(arc);
        }
    }

    /// Creates `count` buffers of the class serving `size` bytes in the
    /// depot, so the first checkouts do not allocate; returns how
    /// many were stored.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// assert_eq!(pool.prewarm(8192, 16), 16);
    /// drop(pool.checkout(8192));
    /// assert_eq!(pool.stats().misses(), 0);
    /// ```
    pub fn prewarm(&self, size: usize, count: usize) -> usize {
        self.handle.inner().pool.prewarm_class(size, count)
    }

    /// The underlying pool-core pool, for anything not wrapped here.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// assert_eq!(pool.buffer_pool().stats(), pool.stats());
    /// ```
    pub fn buffer_pool(&self) -> &BufferPool<BytesMut> {
        &self.handle.inner().pool
    }
}
