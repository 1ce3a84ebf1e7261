//! A [`BufferPool`]'s upkeep, off the checkout/return path: prewarming,
//! trim, idle decay, reconfigure and the thread flush; and what it reports
//! (its settings, depot bytes, statistics).

use super::{Buffer, BufferPool};
use crate::config::{BufferConfig, ConfigError};
use crate::loom::lock;
use crate::stats::Stats;

impl<B: Buffer> BufferPool<B> {
    /// Creates `count` buffers in every class of the configured range and
    /// stores them in the depot, within its bounds (the byte
    /// bound fills from the smallest class up). Returns how many were
    /// stored.
    ///
    /// ```
    /// let pool = pool_core::BufferConfig::new().min_class(1024).max_class(4096).build::<Vec<u8>>()?;
    /// assert_eq!(pool.prewarm(10), 90); // 9 classes: 1024, 1280, ..., 3584, 4096
    /// drop(pool.checkout(2000));
    /// assert_eq!(pool.stats().misses(), 0);
    /// # Ok::<(), pool_core::ConfigError>(())
    /// ```
    pub fn prewarm(&self, count: usize) -> usize {
        let (min_class, max_index) = self.engine.hot.range();
        let min_index = self.spacing.index(min_class);
        (min_index..=max_index)
            .map(|index| self.prewarm_class(self.sizes[index], count))
            .sum()
    }

    /// Creates `count` buffers of the class serving `size` bytes and stores
    /// them in the depot, within its bounds. Returns how many were
    /// stored (0 for a size above the largest class).
    ///
    /// ```
    /// let pool = pool_core::BufferPool::<Vec<u8>>::new();
    /// assert_eq!(pool.prewarm_class(4096, 8), 8);
    /// assert_eq!(pool.prewarm_class(1 << 30, 8), 0);
    /// ```
    pub fn prewarm_class(&self, size: usize, count: usize) -> usize {
        let Some((slot, size)) = self.slot_for(size) else {
            return 0;
        };
        self.engine
            .prewarm(slot as usize, count, || B::with_capacity(size))
    }

    /// Drops every buffer the depot holds and asks every thread's
    /// cache to drop its buffers at its next checkout or slow-path return (this thread's at
    /// once). Returns the bytes dropped from the depot.
    ///
    /// ```
    /// let pool = pool_core::BufferPool::<Vec<u8>>::new();
    /// pool.prewarm_class(4096, 16);
    /// assert_eq!(pool.trim(), 16 * 4096);
    /// assert_eq!(pool.stats().retained_bytes(), 0);
    /// ```
    pub fn trim(&self) -> usize {
        self.engine.trim().1
    }

    /// Idle decay; see [`Pool::maintain`](crate::Pool::maintain).
    ///
    /// ```
    /// let pool = pool_core::BufferPool::<Vec<u8>>::new();
    /// pool.maintain(); // cheap when nothing is due
    /// ```
    pub fn maintain(&self) -> bool {
        self.engine.maintain()
    }

    /// Changes the settings of a live pool, class range included. Guards
    /// already out stay valid; a buffer returning to a class that is no
    /// longer in the range is dropped (on another thread, whose cache
    /// catches up at its next checkout or slow-path return, the fast return
    /// may keep it until then, when it is dropped as trimmed). Caches
    /// follow the new bounds as [`Pool::reconfigure`](crate::Pool::reconfigure)
    /// says. On error nothing changes.
    ///
    /// ```
    /// let pool = pool_core::BufferPool::<Vec<u8>>::new();
    /// let held = pool.checkout(512);
    /// pool.reconfigure(pool.config().min_class(4096))?;
    /// drop(held); // its 512 B class is gone: dropped, not kept
    /// assert_eq!(pool.checkout(1).capacity(), 4096);
    /// # Ok::<(), pool_core::ConfigError>(())
    /// ```
    pub fn reconfigure(&self, config: BufferConfig) -> Result<(), ConfigError> {
        let limits = config.limits()?;
        if limits.spacing != self.spacing {
            return Err(ConfigError::new(
                "classes_per_doubling",
                config.get_classes_per_doubling(),
                format!(
                    "{}, the spacing this pool was built with (it cannot change on a live pool: \
                     build a new pool)",
                    self.spacing.per_doubling()
                ),
            ));
        }
        let released = {
            let mut current = lock(&self.config);
            *current = config;
            self.engine.reconfigure(limits)
        };
        // Dropped with no lock held: a buffer's `Drop` may use the pool.
        drop(released);
        Ok(())
    }

    /// Hands this thread's cache to the depot now (what happens
    /// anyway when the thread exits). For a runtime's thread-stop hook.
    ///
    /// ```
    /// let pool = pool_core::BufferPool::<Vec<u8>>::new();
    /// drop(pool.checkout(4096));
    /// pool.flush_thread();
    /// assert_eq!(pool.stats().class(4096).unwrap().retained_depot, 1);
    /// ```
    pub fn flush_thread(&self) {
        self.engine.flush_thread();
    }

    /// Bytes the depot holds now ([`Stats::depot_bytes`] without a
    /// snapshot: one atomic load), for callers that check it often.
    ///
    /// ```
    /// let pool = pool_core::BufferPool::<Vec<u8>>::new();
    /// pool.prewarm_class(4096, 2);
    /// assert_eq!(pool.depot_bytes(), 8192);
    /// ```
    pub fn depot_bytes(&self) -> usize {
        self.engine.depot_bytes()
    }

    /// The settings in force.
    ///
    /// ```
    /// let pool = pool_core::BufferPool::<Vec<u8>>::new();
    /// assert_eq!(pool.config().get_max_class(), 1 << 20);
    /// ```
    pub fn config(&self) -> BufferConfig {
        *lock(&self.config)
    }

    /// A snapshot of the pool's counters, per class, summed over all
    /// threads. See [`Pool::stats`](crate::Pool::stats).
    ///
    /// ```
    /// let pool = pool_core::BufferPool::<Vec<u8>>::new();
    /// drop(pool.checkout(4096));
    /// drop(pool.checkout(4096));
    /// let stats = pool.stats();
    /// let class = stats.class(4096).unwrap();
    /// assert_eq!((class.checkouts, class.local_hits, class.misses), (2, 1, 1));
    /// ```
    pub fn stats(&self) -> Stats {
        let (min_class, max_index) = self.engine.hot.range();
        let min_index = self.spacing.index(min_class);
        let sums = self.engine.sums();
        let in_range = |slot: usize| (min_index..=max_index).contains(&slot);
        Stats::from_sums(
            sums,
            |slot| (slot < self.classes).then(|| (self.sizes[slot], in_range(slot))),
            self.engine.depot_bytes(),
            true,
        )
    }
}
