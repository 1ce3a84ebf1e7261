//! The generic object pool and its checkout guards.

use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use crate::config::{ConfigError, PoolConfig};
use crate::loom::{lock, Mutex};
use crate::recycle::{DefaultRecycle, Recycle, Reset};
use crate::spine::Engine;
use crate::stats::{Discard, Stats};

/// The only class of a generic pool.
const CLASS: usize = 0;

/// A pool of reusable values of type `T`, with a per-thread cache on every
/// thread that uses it and a bounded depot between them.
///
/// `R` is the [`Recycle`] policy that creates and resets values. Checking
/// out and returning on one thread touches only that thread's cache.
///
/// [`checkout`](Pool::checkout) returns a guard that borrows the pool: with
/// the pool in a `static` the guard is `'static`, and costs no reference
/// count. [`checkout_owned`](Pool::checkout_owned) returns a guard that owns
/// an `Arc` of the pool, for pools that are not `'static`.
///
/// ```
/// use std::sync::LazyLock;
/// use pool_core::Pool;
///
/// static STRINGS: LazyLock<Pool<String>> = LazyLock::new(Pool::new);
///
/// let mut s = STRINGS.checkout();
/// s.push_str("built in a pooled String");
/// // The guard is 'static: it can move to another thread, and returns the
/// // String to the pool on whichever thread drops it.
/// std::thread::spawn(move || assert_eq!(s.len(), 24)).join().unwrap();
/// assert_eq!(STRINGS.stats().total().returns, 1);
/// ```
pub struct Pool<T: Send + 'static, R = DefaultRecycle> {
    engine: Arc<Engine<T>>,
    recycler: R,
    config: Mutex<PoolConfig>,
}

impl<T: Send + 'static, R> fmt::Debug for Pool<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("type", &std::any::type_name::<T>())
            .field("config", &*lock(&self.config))
            .finish_non_exhaustive()
    }
}

impl<T: Send + Default + Reset + 'static> Pool<T> {
    /// A pool with the default settings and [`DefaultRecycle`].
    ///
    /// ```
    /// let pool: pool_core::Pool<Vec<u64>> = pool_core::Pool::new();
    /// pool.checkout().push(7);
    /// assert!(pool.checkout().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::with_recycler(DefaultRecycle::new())
    }
}

impl<T: Send + Default + Reset + 'static> Default for Pool<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Send + 'static, R: Recycle<T>> Pool<T, R> {
    /// A pool with the default settings and the given policy.
    ///
    /// ```
    /// use pool_core::{Pool, Recycler};
    /// let pool = Pool::with_recycler(Recycler::new(|| String::with_capacity(256), String::clear));
    /// assert!(pool.checkout().capacity() >= 256);
    /// ```
    pub fn with_recycler(recycler: R) -> Self {
        match Self::with_config(recycler, PoolConfig::new()) {
            Ok(pool) => pool,
            Err(e) => unreachable!("default settings are valid: {e}"),
        }
    }

    /// A pool with the given settings and policy; fails if a setting is out
    /// of range. [`PoolConfig::build`] is the same, written builder-first.
    ///
    /// ```
    /// use pool_core::{Pool, PoolConfig, Recycler};
    /// let r = Recycler::new(String::new, String::clear);
    /// let err = Pool::with_config(r, PoolConfig::new().batch(0)).unwrap_err();
    /// assert_eq!(err.setting(), "batch");
    /// ```
    pub fn with_config(recycler: R, config: PoolConfig) -> Result<Self, ConfigError> {
        let limits = config.limits()?;
        Ok(Pool {
            engine: Arc::new(Engine::new(limits)),
            recycler,
            config: Mutex::new(config),
        })
    }

    /// Checks a value out: from this thread's cache, else a batch from the
    /// depot, else a new one from the policy. The value has been
    /// reset. Dropping the guard returns it, on whatever thread drops it.
    ///
    /// ```
    /// let pool: pool_core::Pool<String> = pool_core::Pool::new();
    /// let mut s = pool.checkout();
    /// s.push_str("hello");
    /// assert_eq!(&*s, "hello");
    /// ```
    #[inline]
    pub fn checkout(&self) -> Pooled<'_, T, R> {
        Pooled {
            value: ManuallyDrop::new(self.fill()),
            pool: self,
        }
    }

    /// Like [`checkout`](Pool::checkout), but the guard owns an `Arc` of the
    /// pool, so it is `'static` even when the pool is not in a `static`.
    /// Costs an atomic reference-count update at checkout and at return.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let pool: Arc<pool_core::Pool<String>> = Arc::new(pool_core::Pool::new());
    /// let mut s = pool.checkout_owned();
    /// std::thread::spawn(move || s.push_str("moved")).join().unwrap();
    /// assert_eq!(pool.stats().outstanding(), 0);
    /// ```
    #[inline]
    pub fn checkout_owned(self: &Arc<Self>) -> OwnedPooled<T, R> {
        OwnedPooled {
            value: ManuallyDrop::new(self.fill()),
            pool: Arc::clone(self),
        }
    }

    #[inline(always)]
    fn fill(&self) -> T {
        self.engine
            .take_or(CLASS, None, usize::MAX, || self.recycler.create())
            .0
    }

    /// Returns the value in `value`; the caller never uses it again.
    #[inline(always)]
    fn give_back(&self, value: &mut ManuallyDrop<T>) {
        let recycler = &self.recycler;
        let _ = self.engine.put_or_drop(CLASS, value, |v| {
            if recycler.reset(v) {
                Ok(())
            } else {
                Err(Discard::Rejected)
            }
        });
    }

    /// Creates `count` values and stores them in the depot, so
    /// the first checkouts do not allocate. Stops early at the depot's
    /// bound; returns how many were stored.
    ///
    /// ```
    /// let pool: pool_core::Pool<String> = pool_core::Pool::new();
    /// assert_eq!(pool.prewarm(100), 100);
    /// drop(pool.checkout());
    /// assert_eq!(pool.stats().total().misses, 0);
    /// ```
    pub fn prewarm(&self, count: usize) -> usize {
        self.engine.prewarm(CLASS, count, || self.recycler.create())
    }

    /// Drops every value the depot holds and asks every thread's
    /// cache to drop its values at its next checkout or slow-path return (this thread's at
    /// once). Guards already out are unaffected. Returns the number of
    /// values dropped from the depot.
    ///
    /// ```
    /// let pool: pool_core::Pool<String> = pool_core::Pool::new();
    /// pool.prewarm(64);
    /// assert_eq!(pool.trim(), 64);
    /// assert_eq!(pool.stats().retained_objects(), 0);
    /// ```
    pub fn trim(&self) -> usize {
        self.engine.trim().0
    }

    /// Idle decay, cheap enough to call from a runtime's park hook or a
    /// timer (it does real work at most every quarter of the decay
    /// interval): frees the values that have sat in the depot,
    /// untaken, for a whole decay interval, and asks every thread to move
    /// its surplus (beyond one batch) to the depot, where it ages the
    /// same way. Every call also brings this thread's cache up to date.
    /// Without calls to `maintain`, nothing decays. Returns true if this
    /// call ran a decay step.
    ///
    /// ```
    /// use std::time::Duration;
    /// use pool_core::{PoolConfig, Recycler};
    /// let pool = PoolConfig::new()
    ///     .decay_interval(Duration::from_millis(200))
    ///     .build(Recycler::new(String::new, String::clear))?;
    /// pool.prewarm(32);
    /// assert!(pool.maintain()); // too recent to free
    /// assert_eq!(pool.stats().retained_objects(), 32);
    /// std::thread::sleep(Duration::from_millis(250));
    /// pool.maintain(); // unused for a whole interval: freed
    /// assert_eq!(pool.stats().retained_objects(), 0);
    /// # Ok::<(), pool_core::ConfigError>(())
    /// ```
    pub fn maintain(&self) -> bool {
        self.engine.maintain()
    }

    /// Changes the settings of a live pool. Guards already out stay valid
    /// and return normally; caches shrink to the new bounds at their next
    /// checkout or slow-path return (this thread's at once). A thread that
    /// only returns, each into room its cache had under the old bounds
    /// (the fast return, which reads no shared state), fills it up to the
    /// old capacity until its next checkout or slow-path return. On error
    /// nothing changes.
    ///
    /// ```
    /// let pool: pool_core::Pool<String> = pool_core::Pool::new();
    /// let held = pool.checkout();
    /// pool.reconfigure(pool.config().thread_capacity(4))?;
    /// drop(held);
    /// assert_eq!(pool.config().get_thread_capacity(), 4);
    /// assert!(pool.reconfigure(pool.config().thread_capacity(0)).is_err());
    /// # Ok::<(), pool_core::ConfigError>(())
    /// ```
    pub fn reconfigure(&self, config: PoolConfig) -> Result<(), ConfigError> {
        let limits = config.limits()?;
        let released = {
            let mut current = lock(&self.config);
            *current = config;
            self.engine.reconfigure(limits)
        };
        // Dropped with no lock held: a `Drop` may use the pool.
        drop(released);
        Ok(())
    }

    /// Hands this thread's cache to the depot now (what happens
    /// anyway when the thread exits). For a runtime's thread-stop hook, or a
    /// thread about to sleep for long.
    ///
    /// ```
    /// let pool: pool_core::Pool<String> = pool_core::Pool::new();
    /// drop(pool.checkout());
    /// pool.flush_thread();
    /// assert_eq!(pool.stats().total().retained_depot, 1);
    /// ```
    pub fn flush_thread(&self) {
        self.engine.flush_thread();
    }

    /// The settings in force.
    ///
    /// ```
    /// let pool: pool_core::Pool<String> = pool_core::Pool::new();
    /// assert_eq!(pool.config(), pool_core::PoolConfig::new());
    /// ```
    pub fn config(&self) -> PoolConfig {
        *lock(&self.config)
    }

    /// The engine, for loom models.
    #[cfg(loom)]
    pub(crate) fn engine(&self) -> &Engine<T> {
        &self.engine
    }

    /// The recycling policy.
    ///
    /// ```
    /// let pool: pool_core::Pool<String> = pool_core::Pool::new();
    /// assert_eq!(pool.recycler().max_bytes(), 64 * 1024);
    /// ```
    pub fn recycler(&self) -> &R {
        &self.recycler
    }

    /// A snapshot of the pool's counters, summed over all threads. Exact
    /// when no other thread is using the pool; otherwise each counter is a
    /// recent value.
    ///
    /// ```
    /// let pool: pool_core::Pool<String> = pool_core::Pool::new();
    /// drop(pool.checkout());
    /// drop(pool.checkout());
    /// let s = pool.stats();
    /// assert_eq!((s.checkouts(), s.hits(), s.misses()), (2, 1, 1));
    /// assert_eq!(s.hit_rate(), 0.5);
    /// ```
    pub fn stats(&self) -> Stats {
        Stats::from_sums(
            self.engine.sums(),
            |_| None,
            self.engine.depot_bytes(),
            false,
        )
    }
}

/// A value checked out of a [`Pool`], borrowing the pool.
///
/// Derefs to the value. Dropping it resets the value and returns it to the
/// pool on the dropping thread. `Send` when `T` is; `'static` when the pool
/// is in a `static`.
pub struct Pooled<'a, T: Send + 'static, R: Recycle<T> = DefaultRecycle> {
    value: ManuallyDrop<T>,
    pool: &'a Pool<T, R>,
}

/// A value checked out of a [`Pool`] by
/// [`checkout_owned`](Pool::checkout_owned); owns an `Arc` of the pool.
///
/// Everything said of [`Pooled`] holds, and it is always `'static`.
pub struct OwnedPooled<T: Send + 'static, R: Recycle<T> = DefaultRecycle> {
    value: ManuallyDrop<T>,
    pool: Arc<Pool<T, R>>,
}

macro_rules! guard_impls {
    ($guard:ident $(<$lt:lifetime>)?) => {
        impl<$($lt,)? T: Send + 'static, R: Recycle<T>> $guard<$($lt,)? T, R> {
            /// Takes the value out of the pool for good: it will not be
            /// returned, and the pool counts it as detached.
            ///
            /// ```
            /// let pool: pool_core::Pool<String> = pool_core::Pool::new();
            /// let mut s = pool.checkout();
            /// s.push_str("kept");
            /// let s: String = pool_core::Pooled::detach(s);
            /// assert_eq!(s, "kept");
            /// assert_eq!(pool.stats().outstanding(), 0);
            /// ```
            pub fn detach(this: Self) -> T {
                this.pool.engine.count_detach(CLASS);
                let mut this = ManuallyDrop::new(this);
                // SAFETY: `this` is never dropped (`ManuallyDrop`), so the
                // value is moved out exactly once and the pool handle is
                // released exactly once, here.
                unsafe {
                    let value = ManuallyDrop::take(&mut this.value);
                    std::ptr::drop_in_place(&mut this.pool);
                    value
                }
            }
        }

        impl<$($lt,)? T: Send + 'static, R: Recycle<T>> Deref for $guard<$($lt,)? T, R> {
            type Target = T;
            #[inline]
            fn deref(&self) -> &T {
                &self.value
            }
        }

        impl<$($lt,)? T: Send + 'static, R: Recycle<T>> DerefMut for $guard<$($lt,)? T, R> {
            #[inline]
            fn deref_mut(&mut self) -> &mut T {
                &mut self.value
            }
        }

        impl<$($lt,)? T: Send + 'static, R: Recycle<T>> Drop for $guard<$($lt,)? T, R> {
            #[inline]
            fn drop(&mut self) {
                self.pool.give_back(&mut self.value);
            }
        }

        impl<$($lt,)? T: Send + fmt::Debug + 'static, R: Recycle<T>> fmt::Debug for $guard<$($lt,)? T, R> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&**self, f)
            }
        }

        impl<$($lt,)? T: Send + fmt::Display + 'static, R: Recycle<T>> fmt::Display for $guard<$($lt,)? T, R> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&**self, f)
            }
        }
    };
}

guard_impls!(Pooled<'a>);
guard_impls!(OwnedPooled);
