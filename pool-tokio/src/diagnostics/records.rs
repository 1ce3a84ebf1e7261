//! The bookkeeping of leak diagnostics (see `diagnostics.rs`): the guard's
//! `Track`, the hooks `pool.rs` calls on checkout and return with the
//! pool's `Records` (never the pool), and, with the feature, the records
//! themselves (`Registry`) and the report types.

#[cfg(feature = "diagnostics")]
pub use enabled::{Diagnostics, LeakReport, Outstanding};

#[cfg(feature = "diagnostics")]
pub(crate) use enabled::Registry;

/// A pool's diagnostics state, kept in `Inner`: its records when built
/// with `Builder::diagnostics`.
#[cfg(feature = "diagnostics")]
pub(crate) type Records = Option<Registry>;

/// Nothing without the `diagnostics` feature.
#[cfg(not(feature = "diagnostics"))]
pub(crate) type Records = ();

/// A guard's diagnostics record id (none when the pool does not track).
#[cfg(feature = "diagnostics")]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Track(Option<std::num::NonZeroU64>);

/// Zero-sized without the `diagnostics` feature.
#[cfg(not(feature = "diagnostics"))]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Track;

/// Whether `track` names a diagnostics record (its return must be noted).
#[cfg(feature = "diagnostics")]
#[inline(always)]
pub(crate) fn tracking(track: &Track) -> bool {
    track.0.is_some()
}

/// Whether `track` names a diagnostics record: never without the feature.
#[cfg(not(feature = "diagnostics"))]
#[inline(always)]
pub(crate) fn tracking(_track: &Track) -> bool {
    false
}

/// Records a checkout of `requested` bytes served from `class`.
#[cfg(feature = "diagnostics")]
#[inline]
pub(crate) fn on_checkout(records: &Records, requested: usize, class: Option<usize>) -> Track {
    match records {
        None => Track(None),
        Some(registry) => Track(Some(registry.record(requested, class))),
    }
}

/// Records a checkout (nothing to do without the feature).
#[cfg(not(feature = "diagnostics"))]
#[inline(always)]
pub(crate) fn on_checkout(_records: &Records, _requested: usize, _class: Option<usize>) -> Track {
    Track
}

/// Forgets the record of a buffer that came back (or was detached).
#[cfg(feature = "diagnostics")]
#[inline]
pub(crate) fn on_return(records: &Records, track: Track) {
    if let (Some(id), Some(registry)) = (track.0, records) {
        registry.remove(id);
    }
}

/// Forgets a record (nothing to do without the feature).
#[cfg(not(feature = "diagnostics"))]
#[inline(always)]
pub(crate) fn on_return(_records: &Records, _track: Track) {}

#[cfg(feature = "diagnostics")]
mod enabled {
    use std::backtrace::Backtrace;
    use std::collections::HashMap;
    use std::fmt;
    use std::num::NonZeroU64;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    use std::sync::{Arc, Mutex, PoisonError};
    use std::time::{Duration, Instant};

    /// Record maps, by id; a power of two so that the shard is `id & mask`.
    /// Consecutive ids land on different shards, so threads checking out at
    /// once rarely meet on one lock.
    const SHARDS: usize = 16;

    /// Most entries a report prints in full (the rest are counted), so that
    /// a panic message stays readable.
    const PRINTED: usize = 16;

    /// Settings of the leak diagnostics of one pool; see
    /// [`Builder::diagnostics`](crate::Builder::diagnostics).
    ///
    /// ```
    /// use pool_tokio::{BytesPool, Diagnostics};
    /// let pool = BytesPool::builder()
    ///     .diagnostics(Diagnostics::new().backtrace_every(100))
    ///     .build()?;
    /// # drop(pool);
    /// # Ok::<(), pool_tokio::BuildError>(())
    /// ```
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Diagnostics {
        backtrace_every: u64,
    }

    impl Default for Diagnostics {
        fn default() -> Self {
            Self::new()
        }
    }

    impl Diagnostics {
        /// Track every checkout and capture a backtrace for each (the
        /// thorough setting, for tests).
        ///
        /// ```
        /// assert_eq!(pool_tokio::Diagnostics::new().get_backtrace_every(), 1);
        /// ```
        pub const fn new() -> Self {
            Diagnostics { backtrace_every: 1 }
        }

        /// Capture a backtrace for one checkout in `n` (the first, then
        /// every `n`th); 0 captures none. Every checkout is still tracked
        /// with its time, size and thread. A capture costs microseconds;
        /// sampling keeps a service usable with diagnostics on.
        ///
        /// ```
        /// let d = pool_tokio::Diagnostics::new().backtrace_every(0);
        /// assert_eq!(d.get_backtrace_every(), 0);
        /// ```
        pub const fn backtrace_every(mut self, n: u64) -> Self {
            self.backtrace_every = n;
            self
        }

        /// The sampling period set.
        ///
        /// ```
        /// assert_eq!(pool_tokio::Diagnostics::new().backtrace_every(8).get_backtrace_every(), 8);
        /// ```
        pub const fn get_backtrace_every(&self) -> u64 {
            self.backtrace_every
        }
    }

    struct Record {
        at: Instant,
        requested: usize,
        class_size: Option<usize>,
        thread: String,
        backtrace: Option<Arc<Backtrace>>,
    }

    /// The records of one pool's outstanding buffers.
    pub(crate) struct Registry {
        config: Diagnostics,
        next: AtomicU64,
        shards: [Mutex<HashMap<u64, Record>>; SHARDS],
    }

    impl Registry {
        pub(crate) fn new(config: Diagnostics) -> Self {
            Registry {
                config,
                next: AtomicU64::new(1),
                shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            }
        }

        fn shard(&self, id: u64) -> std::sync::MutexGuard<'_, HashMap<u64, Record>> {
            // A panic while a shard is held cannot leave a map half-updated
            // (insert and remove are single calls), so a poisoned lock is
            // still usable.
            self.shards[id as usize & (SHARDS - 1)]
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        }

        /// Records a checkout; returns its id.
        ///
        /// Out of line: only pools built with `Builder::diagnostics` get
        /// here, and the clock read, thread name, backtrace and lock would
        /// bloat every checkout's `serve`.
        #[cold]
        pub(crate) fn record(&self, requested: usize, class_size: Option<usize>) -> NonZeroU64 {
            // Relaxed: ids need only be unique; nothing is published through
            // the counter.
            let id = self.next.fetch_add(1, Relaxed);
            let every = self.config.backtrace_every;
            let backtrace =
                (every != 0 && (id - 1) % every == 0).then(|| Arc::new(Backtrace::force_capture()));
            let current = std::thread::current();
            let thread = match current.name() {
                Some(name) => name.to_string(),
                None => format!("{:?}", current.id()),
            };
            let record = Record {
                at: Instant::now(),
                requested,
                class_size,
                thread,
                backtrace,
            };
            self.shard(id).insert(id, record);
            match NonZeroU64::new(id) {
                Some(id) => id,
                None => unreachable!("ids start at 1"),
            }
        }

        /// Removes the record of a buffer that came back.
        ///
        /// Out of line: only tracked guards get here, and they never take
        /// the guard's fast return.
        #[cold]
        pub(crate) fn remove(&self, id: NonZeroU64) {
            let id = id.get();
            let removed = self.shard(id).remove(&id);
            // Dropped outside the lock: a backtrace can be large.
            drop(removed);
        }

        pub(crate) fn report(&self, threshold: Duration) -> LeakReport {
            let now = Instant::now();
            let mut entries = Vec::new();
            for shard in &self.shards {
                let map = shard.lock().unwrap_or_else(PoisonError::into_inner);
                for (&id, r) in map.iter() {
                    let age = now.saturating_duration_since(r.at);
                    if age >= threshold {
                        entries.push(Outstanding {
                            id,
                            age,
                            requested: r.requested,
                            class_size: r.class_size,
                            thread: r.thread.clone(),
                            backtrace: r.backtrace.clone(),
                        });
                    }
                }
            }
            entries.sort_by(|a, b| b.age.cmp(&a.age).then(a.id.cmp(&b.id)));
            LeakReport { threshold, entries }
        }
    }

    /// One buffer still checked out, as recorded at its checkout.
    #[derive(Debug, Clone)]
    #[non_exhaustive]
    pub struct Outstanding {
        /// The checkout's sequence number in this pool, from 1.
        pub id: u64,
        /// How long ago it was checked out.
        pub age: Duration,
        /// Bytes asked for.
        pub requested: usize,
        /// Its class, or `None` for a request above the largest class.
        pub class_size: Option<usize>,
        /// Name (or id) of the thread that checked it out.
        pub thread: String,
        /// Where it was checked out, when this checkout was sampled.
        pub backtrace: Option<Arc<Backtrace>>,
    }

    /// Buffers of one pool held longer than a threshold; its `Display` is
    /// readable in a panic message. See
    /// [`BytesPool::held_longer_than`](crate::BytesPool::held_longer_than).
    ///
    /// ```
    /// use std::time::Duration;
    /// use pool_tokio::{BytesPool, Diagnostics};
    /// let pool = BytesPool::builder().diagnostics(Diagnostics::new()).build()?;
    /// let held = pool.checkout(3000);
    /// let report = pool.held_longer_than(Duration::ZERO);
    /// assert_eq!(report.entries.len(), 1);
    /// assert_eq!(report.entries[0].class_size, Some(3072));
    /// println!("{report}");
    /// # drop(held);
    /// # Ok::<(), pool_tokio::BuildError>(())
    /// ```
    #[derive(Debug, Clone)]
    #[non_exhaustive]
    pub struct LeakReport {
        /// The age below which buffers were left out.
        pub threshold: Duration,
        /// The buffers, oldest first.
        pub entries: Vec<Outstanding>,
    }

    impl LeakReport {
        /// True when no buffer was held longer than the threshold.
        ///
        /// ```
        /// let pool = pool_tokio::BytesPool::builder()
        ///     .diagnostics(pool_tokio::Diagnostics::new())
        ///     .build()?;
        /// assert!(pool.held_longer_than(std::time::Duration::ZERO).is_empty());
        /// # Ok::<(), pool_tokio::BuildError>(())
        /// ```
        pub fn is_empty(&self) -> bool {
            self.entries.is_empty()
        }
    }

    impl fmt::Display for LeakReport {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            writeln!(
                f,
                "{} buffer(s) held longer than {:?}:",
                self.entries.len(),
                self.threshold
            )?;
            for e in self.entries.iter().take(PRINTED) {
                let class = match e.class_size {
                    Some(c) => format!("class {c}"),
                    None => "unpooled".to_string(),
                };
                writeln!(
                    f,
                    "- checkout #{} of {} bytes ({class}), held {:.3?}, on thread `{}`",
                    e.id, e.requested, e.age, e.thread
                )?;
                match &e.backtrace {
                    Some(bt) => writeln!(f, "  checked out at:\n{bt}")?,
                    None => writeln!(f, "  (no backtrace: not sampled)")?,
                }
            }
            if self.entries.len() > PRINTED {
                writeln!(f, "... and {} more", self.entries.len() - PRINTED)?;
            }
            Ok(())
        }
    }
}
