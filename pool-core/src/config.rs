//! The builders, [`PoolConfig`] and [`BufferConfig`], and [`ConfigError`].
//!
//! A builder only records settings. `limits.rs` validates them and
//! resolves them into the per-class table a pool runs on.

pub(crate) mod limits;

use std::fmt;
use std::time::Duration;

/// Largest size class, in bytes: 1 GiB.
pub const MAX_CLASS_SIZE: usize = 1 << MAX_SHIFT;
/// `log2(MAX_CLASS_SIZE)`.
pub(crate) const MAX_SHIFT: u32 = 30;
/// Most classes per doubling [`BufferConfig::classes_per_doubling`]
/// accepts: 8 keeps the worst-case rounding at 1/8 of a request and every
/// class index of the 1 GiB range below 255 (a ticket stores it in a `u8`).
///
/// ```
/// let config = pool_core::BufferConfig::new().classes_per_doubling(pool_core::MAX_CLASSES_PER_DOUBLING);
/// assert!(config.validate().is_ok());
/// ```
pub const MAX_CLASSES_PER_DOUBLING: usize = 8;
/// Most objects a thread may cache per class. Far above any useful value;
/// it keeps a typo (an extra few zeros) from pinning gigabytes per thread.
pub const MAX_THREAD_CAPACITY: usize = 1 << 16;

/// A setting rejected by a builder: which one, the value given, and what
/// would be accepted.
///
/// ```
/// use pool_core::PoolConfig;
///
/// let err = PoolConfig::new().thread_capacity(0).validate().unwrap_err();
/// assert_eq!(err.setting(), "thread_capacity");
/// assert_eq!(
///     err.to_string(),
///     "invalid pool setting `thread_capacity` = 0: expected 1 ..= 65536 objects per thread"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    setting: &'static str,
    value: String,
    expected: String,
}

impl ConfigError {
    pub(crate) fn new(
        setting: &'static str,
        value: impl fmt::Display,
        expected: impl Into<String>,
    ) -> Self {
        ConfigError {
            setting,
            value: value.to_string(),
            expected: expected.into(),
        }
    }

    /// The name of the builder method whose value was rejected.
    ///
    /// ```
    /// # use pool_core::BufferConfig;
    /// let err = BufferConfig::new().min_class(4096).max_class(512).validate().unwrap_err();
    /// assert_eq!(err.setting(), "max_class");
    /// ```
    pub fn setting(&self) -> &'static str {
        self.setting
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid pool setting `{}` = {}: expected {}",
            self.setting, self.value, self.expected
        )
    }
}

impl std::error::Error for ConfigError {}

/// Settings of a generic object pool ([`Pool`](crate::Pool)); also its
/// builder.
///
/// Defaults suit a typical service: each thread caches up to 64 objects and
/// moves them to and from the shared depot 32 at a time; the depot
/// holds at most 1024 objects; objects unused for half a second are freed
/// by idle decay.
///
/// ```
/// use pool_core::{PoolConfig, Recycler};
///
/// let pool = PoolConfig::new()
///     .thread_capacity(128)
///     .batch(16)
///     .depot_capacity(4096)
///     .build(Recycler::new(String::new, |s: &mut String| s.clear()))?;
/// assert_eq!(pool.config().get_thread_capacity(), 128);
/// # Ok::<(), pool_core::ConfigError>(())
/// ```
///
/// The config is a `Copy` value and each setter returns a changed copy, so
/// a setter whose result is dropped changes nothing; they are
/// `#[must_use]`, and the compiler says so:
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// let config = pool_core::PoolConfig::new();
/// config.thread_capacity(128); // error: unused return value
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    thread_capacity: usize,
    batch: Option<usize>,
    depot_capacity: usize,
    decay_interval: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl PoolConfig {
    /// The default settings.
    ///
    /// ```
    /// let config = pool_core::PoolConfig::new();
    /// assert_eq!(config.get_thread_capacity(), 64);
    /// assert_eq!(config.get_batch(), 32);
    /// ```
    pub const fn new() -> Self {
        PoolConfig {
            thread_capacity: 64,
            batch: None,
            depot_capacity: 1024,
            decay_interval: Duration::from_millis(500),
        }
    }

    /// Most objects one thread caches (1 ..= 65536; default 64).
    ///
    /// Lowered by a `reconfigure`, it holds at each thread's next
    /// checkout or slow-path return, with one exception: a checkout that
    /// takes a depot batch pushed under the old bound keeps that batch, and
    /// the thread's next return spills down to the new bound.
    ///
    /// ```
    /// let config = pool_core::PoolConfig::new().thread_capacity(8);
    /// assert_eq!(config.get_thread_capacity(), 8);
    /// ```
    #[must_use = "a setter returns the changed config and leaves `self` as it was: use the result"]
    pub const fn thread_capacity(mut self, objects: usize) -> Self {
        self.thread_capacity = objects;
        self
    }

    /// Objects moved between a thread's cache and the depot in one
    /// operation (1 ..= `thread_capacity`; default half the thread capacity).
    ///
    /// ```
    /// let config = pool_core::PoolConfig::new().thread_capacity(8).batch(2);
    /// assert_eq!(config.get_batch(), 2);
    /// ```
    #[must_use = "a setter returns the changed config and leaves `self` as it was: use the result"]
    pub const fn batch(mut self, objects: usize) -> Self {
        self.batch = Some(objects);
        self
    }

    /// Most objects the depot holds (default 1024). 0 is valid: the
    /// threads then share nothing, and a full thread cache drops its surplus.
    /// Batches move whole: below one [`batch`](Self::batch), the depot
    /// keeps nothing (each batch is dropped, counted `full`).
    ///
    /// ```
    /// let config = pool_core::PoolConfig::new().depot_capacity(0);
    /// assert_eq!(config.get_depot_capacity(), 0);
    /// ```
    #[must_use = "a setter returns the changed config and leaves `self` as it was: use the result"]
    pub const fn depot_capacity(mut self, objects: usize) -> Self {
        self.depot_capacity = objects;
        self
    }

    /// How long a value may sit unused before idle decay frees it
    /// (non-zero; default 500 ms). See
    /// [`Pool::maintain`](crate::Pool::maintain).
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = pool_core::PoolConfig::new().decay_interval(Duration::from_millis(250));
    /// assert_eq!(config.get_decay_interval(), Duration::from_millis(250));
    /// ```
    #[must_use = "a setter returns the changed config and leaves `self` as it was: use the result"]
    pub const fn decay_interval(mut self, period: Duration) -> Self {
        self.decay_interval = period;
        self
    }

    /// The per-thread capacity set.
    ///
    /// ```
    /// assert_eq!(pool_core::PoolConfig::new().get_thread_capacity(), 64);
    /// ```
    pub const fn get_thread_capacity(&self) -> usize {
        self.thread_capacity
    }

    /// The batch size in effect (the one set, or half the thread capacity).
    ///
    /// ```
    /// assert_eq!(pool_core::PoolConfig::new().thread_capacity(1).get_batch(), 1);
    /// ```
    pub const fn get_batch(&self) -> usize {
        match self.batch {
            Some(b) => b,
            None => default_batch(self.thread_capacity),
        }
    }

    /// The depot capacity set.
    ///
    /// ```
    /// assert_eq!(pool_core::PoolConfig::new().get_depot_capacity(), 1024);
    /// ```
    pub const fn get_depot_capacity(&self) -> usize {
        self.depot_capacity
    }

    /// The idle-decay period set.
    ///
    /// ```
    /// # use std::time::Duration;
    /// assert_eq!(pool_core::PoolConfig::new().get_decay_interval(), Duration::from_millis(500));
    /// ```
    pub const fn get_decay_interval(&self) -> Duration {
        self.decay_interval
    }

    /// Checks every setting without building a pool.
    ///
    /// ```
    /// let err = pool_core::PoolConfig::new().thread_capacity(4).batch(8).validate().unwrap_err();
    /// assert_eq!(err.to_string(), "invalid pool setting `batch` = 8: expected 1 ..= thread_capacity (4)");
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.limits().map(|_| ())
    }

    /// Builds a pool with these settings and `recycler`.
    ///
    /// ```
    /// use pool_core::{PoolConfig, Recycler};
    /// let pool = PoolConfig::new().build(Recycler::new(Vec::<u32>::new, |v: &mut Vec<u32>| v.clear()))?;
    /// assert_eq!(pool.checkout().len(), 0);
    /// # Ok::<(), pool_core::ConfigError>(())
    /// ```
    pub fn build<T, R>(self, recycler: R) -> Result<crate::Pool<T, R>, ConfigError>
    where
        T: Send + 'static,
        R: crate::Recycle<T>,
    {
        crate::Pool::with_config(recycler, self)
    }
}

const fn default_batch(cap: usize) -> usize {
    if cap >= 2 {
        cap / 2
    } else {
        1
    }
}

/// Settings of a size-classed buffer pool ([`BufferPool`](crate::BufferPool));
/// also its builder.
///
/// Classes run from `min_class` to `max_class` (both powers of two), with
/// [`classes_per_doubling`](Self::classes_per_doubling) classes per power of
/// two (default 4: 512, 640, 768, 896, 1024, 1280, ...). A checkout of `n`
/// bytes is served by the smallest class of at least `n` bytes, so a
/// request is rounded up by at most a quarter of the power of two below it
/// (at most 25% of the request, 20% of the class), where power-of-two
/// classes round up by as much as the request itself; when that class has
/// nothing idle, by a larger class's idle buffer (see
/// [`fallback_classes`](Self::fallback_classes)).
/// A thread caches, per class, at most `thread_capacity` buffers and its
/// share of `thread_bytes` (which counts per power of two, split evenly
/// among that doubling's classes), so a thread holds many small buffers
/// and few large ones. A class whose share is below one buffer is *large*:
/// a thread keeps at most one buffer of it, and at most `thread_bytes` in
/// all large classes together (but always the buffer just given back); the
/// others go to the depot, where every thread finds them. A miss takes an
/// idle buffer of one of the next [`fallback_classes`](Self::fallback_classes)
/// classes before it allocates.
///
/// Defaults: classes 512 B ..= 1 MiB, four per doubling; per thread 64
/// buffers per class and 256 KiB per doubling (64 KiB per class, so
/// classes above 64 KiB are large); depot 1024 buffers per class and 64 MiB in all; a
/// buffer whose capacity passed 1 MiB is dropped on return; buffers unused
/// for 500 ms are freed by idle decay; a miss may take a buffer up to two
/// classes larger (never over 1.5x its class).
///
/// ```
/// use pool_core::BufferConfig;
///
/// let pool = BufferConfig::new()
///     .min_class(1024)
///     .max_class(64 * 1024)
///     .depot_bytes(16 << 20)
///     .build::<Vec<u8>>()?;
/// assert_eq!(pool.checkout(1500).capacity(), 1536);
/// assert_eq!(pool.checkout(1537).capacity(), 1792);
/// # Ok::<(), pool_core::ConfigError>(())
/// ```
///
/// The config is a `Copy` value and each setter returns a changed copy:
/// `pool.config().min_class(4096);` changes neither the pool nor anything
/// else. The setters are `#[must_use]`, so the compiler says so; change a
/// running pool with `reconfigure(pool.config().min_class(4096))`:
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// let pool = pool_core::BufferPool::<Vec<u8>>::new();
/// pool.config().min_class(4096); // error: unused return value
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferConfig {
    min_class: usize,
    max_class: usize,
    classes_per_doubling: usize,
    thread_capacity: usize,
    thread_bytes: usize,
    batch: Option<usize>,
    depot_capacity: usize,
    depot_bytes: usize,
    max_retained: Option<usize>,
    zero_on_return: bool,
    decay_interval: Duration,
    fallback_classes: Option<usize>,
}

impl Default for BufferConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl BufferConfig {
    /// The default settings.
    ///
    /// ```
    /// let config = pool_core::BufferConfig::new();
    /// assert_eq!((config.get_min_class(), config.get_max_class()), (512, 1 << 20));
    /// ```
    pub const fn new() -> Self {
        BufferConfig {
            min_class: 512,
            max_class: 1 << 20,
            classes_per_doubling: 4,
            thread_capacity: 64,
            thread_bytes: 256 << 10,
            batch: None,
            depot_capacity: 1024,
            depot_bytes: 64 << 20,
            max_retained: None,
            zero_on_return: false,
            decay_interval: Duration::from_millis(500),
            fallback_classes: None,
        }
    }

    /// Size of the smallest class, a power of two from 1 to 1 GiB (default
    /// 512). Requests below it get a buffer of this size.
    ///
    /// ```
    /// let pool = pool_core::BufferConfig::new().min_class(64).build::<Vec<u8>>()?;
    /// assert_eq!(pool.checkout(1).capacity(), 64);
    /// # Ok::<(), pool_core::ConfigError>(())
    /// ```
    #[must_use = "a setter returns the changed config and leaves `self` as it was: use the result"]
    pub const fn min_class(mut self, bytes: usize) -> Self {
        self.min_class = bytes;
        self
    }

    /// Size of the largest class, a power of two from `min_class` to 1 GiB
    /// (default 1 MiB). Larger requests are served by a plain allocation that
    /// is not kept on return.
    ///
    /// ```
    /// let pool = pool_core::BufferConfig::new().max_class(4096).build::<Vec<u8>>()?;
    /// let big = pool.checkout(10_000);
    /// assert!(!big.is_pooled());
    /// # Ok::<(), pool_core::ConfigError>(())
    /// ```
    #[must_use = "a setter returns the changed config and leaves `self` as it was: use the result"]
    pub const fn max_class(mut self, bytes: usize) -> Self {
        self.max_class = bytes;
        self
    }

    /// Classes per power of two: 1, 2, 4 or 8 (default 4). With `n`
    /// classes per doubling, the sizes from `2^k` (exclusive) to `2^(k+1)`
    /// are split into `n` equal steps, so a request is rounded up by less
    /// than `2^k / n` bytes: at most 1/n of the request. 1 gives the
    /// power-of-two classes of earlier releases (up to twice the request).
    /// More classes waste less memory per buffer but spread reuse over more
    /// caches. Fixed when the pool is built: a
    /// [`reconfigure`](crate::BufferPool::reconfigure) that changes it fails.
    ///
    /// ```
    /// use pool_core::BufferConfig;
    /// let four = BufferConfig::new().build::<Vec<u8>>()?;
    /// assert_eq!(four.checkout(3000).capacity(), 3072);
    /// let pow2 = BufferConfig::new().classes_per_doubling(1).build::<Vec<u8>>()?;
    /// assert_eq!(pow2.checkout(3000).capacity(), 4096);
    /// let err = BufferConfig::new().classes_per_doubling(3).validate().unwrap_err();
    /// assert_eq!(err.setting(), "classes_per_doubling");
    /// # Ok::<(), pool_core::ConfigError>(())
    /// ```
    #[must_use = "a setter returns the changed config and leaves `self` as it was: use the result"]
    pub const fn classes_per_doubling(mut self, classes: usize) -> Self {
        self.classes_per_doubling = classes;
        self
    }

    /// How many classes above a missed one may serve it (default: half of
    /// [`classes_per_doubling`](Self::classes_per_doubling), so 2, at most
    /// half a doubling up, and by default never a buffer over 1.5x the
    /// missed class; see
    /// [`get_fallback_classes`](Self::get_fallback_classes)).
    ///
    /// A checkout whose class has no buffer in this thread's cache nor in
    /// the depot takes an idle buffer of one of the next `classes` classes
    /// (the nearest first, from this thread's cache or the depot) before it
    /// allocates. The buffer lent is then larger than the class of the
    /// request, is counted in the class it belongs to (its hits, its
    /// requested bytes and so its waste) and goes back to that class. Under
    /// a mix of sizes, buffers then serve neighbouring classes' peaks
    /// instead of each class keeping its own: fewer bytes retained for the
    /// same hit rate, a little more waste. 0 turns it off; a value past
    /// the largest class stops there.
    ///
    /// Left unset, the fallback also stops at classes of 1.5x the missed
    /// class's size. That binds only on classes under
    /// `classes_per_doubling` bytes, which are a byte apart (1, 2, 3, ...:
    /// two classes above 1 is 3). A depth set here is taken as set, whatever
    /// the sizes (4 of 4 per doubling lend up to 2x the class). For one
    /// checkout bounded otherwise, see
    /// [`BufferPool::take_within`](crate::BufferPool::take_within).
    ///
    /// ```
    /// use pool_core::BufferConfig;
    /// let pool = BufferConfig::new().build::<Vec<u8>>()?;
    /// drop(pool.checkout(3500)); // a 3584-byte buffer, idle in this thread
    /// assert_eq!(pool.checkout(3000).capacity(), 3584); // class 3072 had none
    /// let exact = BufferConfig::new().fallback_classes(0).build::<Vec<u8>>()?;
    /// drop(exact.checkout(3500));
    /// assert_eq!(exact.checkout(3000).capacity(), 3072);
    /// # Ok::<(), pool_core::ConfigError>(())
    /// ```
    #[must_use = "a setter returns the changed config and leaves `self` as it was: use the result"]
    pub const fn fallback_classes(mut self, classes: usize) -> Self {
        self.fallback_classes = Some(classes);
        self
    }

    /// Most buffers one thread caches per class (1 ..= 65536; default 64).
    ///
    /// Lowered by a `reconfigure`, it holds at each thread's next
    /// checkout or slow-path return, with one exception: a checkout that
    /// takes a depot batch pushed under the old bound keeps that batch, and
    /// the thread's next return spills down to the new bound.
    ///
    /// ```
    /// let config = pool_core::BufferConfig::new().thread_capacity(16);
    /// assert_eq!(config.get_thread_capacity(), 16);
    /// ```
    #[must_use = "a setter returns the changed config and leaves `self` as it was: use the result"]
    pub const fn thread_capacity(mut self, buffers: usize) -> Self {
        self.thread_capacity = buffers;
        self
    }

    /// Most bytes one thread caches per power of two of class sizes, split
    /// evenly among its classes (default 256 KiB: 64 KiB for each of four
    /// classes). A class whose share is below one buffer is large (see
    /// [`class_thread_capacity`](Self::class_thread_capacity)): one
    /// buffer per thread at most, `thread_bytes` over all large classes.
    ///
    /// ```
    /// let config = pool_core::BufferConfig::new().thread_bytes(64 << 10);
    /// assert_eq!(config.class_thread_capacity(4096), 4); // 16 KiB each
    /// assert_eq!(config.class_thread_capacity(1 << 20), 1);
    /// let old = config.classes_per_doubling(1); // one class: all of it
    /// assert_eq!(old.class_thread_capacity(4096), 16);
    /// ```
    #[must_use = "a setter returns the changed config and leaves `self` as it was: use the result"]
    pub const fn thread_bytes(mut self, bytes: usize) -> Self {
        self.thread_bytes = bytes;
        self
    }

    /// Buffers moved between a thread and the depot at once
    /// (1 ..= `thread_capacity`; default half a class's thread capacity).
    /// It is capped per class by that class's thread capacity.
    ///
    /// ```
    /// let config = pool_core::BufferConfig::new().batch(8);
    /// assert_eq!(config.get_batch(), Some(8));
    /// ```
    #[must_use = "a setter returns the changed config and leaves `self` as it was: use the result"]
    pub const fn batch(mut self, buffers: usize) -> Self {
        self.batch = Some(buffers);
        self
    }

    /// Most buffers the depot holds per class (default 1024; 0
    /// means threads share nothing). Batches move whole: a class whose
    /// [`batch`](Self::batch) is larger keeps nothing in the depot (each
    /// batch is dropped, counted `full`), and so does one whose batch's
    /// bytes exceed [`depot_bytes`](Self::depot_bytes).
    ///
    /// ```
    /// let config = pool_core::BufferConfig::new().depot_capacity(10);
    /// assert_eq!(config.get_depot_capacity(), 10);
    /// ```
    #[must_use = "a setter returns the changed config and leaves `self` as it was: use the result"]
    pub const fn depot_capacity(mut self, buffers: usize) -> Self {
        self.depot_capacity = buffers;
        self
    }

    /// Most bytes the depot holds over all classes (default
    /// 64 MiB).
    ///
    /// ```
    /// let config = pool_core::BufferConfig::new().depot_bytes(1 << 30);
    /// assert_eq!(config.get_depot_bytes(), 1 << 30);
    /// ```
    #[must_use = "a setter returns the changed config and leaves `self` as it was: use the result"]
    pub const fn depot_bytes(mut self, bytes: usize) -> Self {
        self.depot_bytes = bytes;
        self
    }

    /// The largest class whose buffers are kept on return (at least
    /// `min_class`; default `max_class`). Classes above it are still served
    /// from size classes, but their buffers are dropped on return (counted
    /// as `stale`), so a pool can serve 1 MiB requests without keeping any.
    /// A returned buffer is kept only at exactly its class size, so nothing
    /// the pool keeps is ever larger than this.
    ///
    /// ```
    /// let pool = pool_core::BufferConfig::new().max_retained(64 << 10).build::<Vec<u8>>()?;
    /// drop(pool.checkout(1 << 20)); // served, not kept
    /// drop(pool.checkout(4096)); // kept
    /// assert_eq!(pool.stats().retained_bytes(), 4096);
    /// # Ok::<(), pool_core::ConfigError>(())
    /// ```
    #[must_use = "a setter returns the changed config and leaves `self` as it was: use the result"]
    pub const fn max_retained(mut self, bytes: usize) -> Self {
        self.max_retained = Some(bytes);
        self
    }

    /// Overwrite every returned buffer's whole capacity with zeros before it
    /// is kept (default off). For pools that carry secrets; costs a
    /// `memset` of the class size per return.
    ///
    /// ```
    /// let config = pool_core::BufferConfig::new().zero_on_return(true);
    /// assert!(config.get_zero_on_return());
    /// ```
    #[must_use = "a setter returns the changed config and leaves `self` as it was: use the result"]
    pub const fn zero_on_return(mut self, on: bool) -> Self {
        self.zero_on_return = on;
        self
    }

    /// How long a value may sit unused before idle decay frees it
    /// (non-zero; default 500 ms). See
    /// [`BufferPool::maintain`](crate::BufferPool::maintain).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let config = pool_core::BufferConfig::new().decay_interval(Duration::from_secs(5));
    /// assert_eq!(config.get_decay_interval(), Duration::from_secs(5));
    /// ```
    #[must_use = "a setter returns the changed config and leaves `self` as it was: use the result"]
    pub const fn decay_interval(mut self, period: Duration) -> Self {
        self.decay_interval = period;
        self
    }

    /// The smallest class set.
    ///
    /// ```
    /// assert_eq!(pool_core::BufferConfig::new().get_min_class(), 512);
    /// ```
    pub const fn get_min_class(&self) -> usize {
        self.min_class
    }

    /// The largest class set.
    ///
    /// ```
    /// assert_eq!(pool_core::BufferConfig::new().get_max_class(), 1 << 20);
    /// ```
    pub const fn get_max_class(&self) -> usize {
        self.max_class
    }

    /// The classes per doubling set.
    ///
    /// ```
    /// assert_eq!(pool_core::BufferConfig::new().get_classes_per_doubling(), 4);
    /// ```
    pub const fn get_classes_per_doubling(&self) -> usize {
        self.classes_per_doubling
    }

    /// How many classes above a missed one may serve it: the value set
    /// with [`fallback_classes`](Self::fallback_classes), else half of
    /// [`classes_per_doubling`](Self::get_classes_per_doubling) (2 by
    /// default; 0 for power-of-two classes).
    ///
    /// ```
    /// use pool_core::BufferConfig;
    /// assert_eq!(BufferConfig::new().get_fallback_classes(), 2);
    /// assert_eq!(BufferConfig::new().classes_per_doubling(1).get_fallback_classes(), 0);
    /// assert_eq!(BufferConfig::new().fallback_classes(0).get_fallback_classes(), 0);
    /// ```
    pub const fn get_fallback_classes(&self) -> usize {
        match self.fallback_classes {
            Some(n) => n,
            None => self.classes_per_doubling / 2,
        }
    }

    /// Whether no fallback depth was set (the default's 1.5x cap applies).
    pub(crate) const fn fallback_is_default(&self) -> bool {
        self.fallback_classes.is_none()
    }

    /// The class sizes of the configured range, smallest first.
    ///
    /// ```
    /// let config = pool_core::BufferConfig::new().min_class(1024).max_class(4096);
    /// assert_eq!(config.class_sizes()?, [1024, 1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096]);
    /// let pow2 = config.classes_per_doubling(1);
    /// assert_eq!(pow2.class_sizes()?, [1024, 2048, 4096]);
    /// # Ok::<(), pool_core::ConfigError>(())
    /// ```
    pub fn class_sizes(&self) -> Result<Vec<usize>, ConfigError> {
        let limits = self.limits()?;
        Ok(limits.classes[limits.min_index()..=limits.max_index]
            .iter()
            .map(|c| c.size)
            .collect())
    }

    /// The per-thread buffer count set.
    ///
    /// ```
    /// assert_eq!(pool_core::BufferConfig::new().get_thread_capacity(), 64);
    /// ```
    pub const fn get_thread_capacity(&self) -> usize {
        self.thread_capacity
    }

    /// The per-thread byte bound set.
    ///
    /// ```
    /// assert_eq!(pool_core::BufferConfig::new().get_thread_bytes(), 256 << 10);
    /// ```
    pub const fn get_thread_bytes(&self) -> usize {
        self.thread_bytes
    }

    /// The batch size set, if any.
    ///
    /// ```
    /// assert_eq!(pool_core::BufferConfig::new().get_batch(), None);
    /// ```
    pub const fn get_batch(&self) -> Option<usize> {
        self.batch
    }

    /// The per-class global capacity set.
    ///
    /// ```
    /// assert_eq!(pool_core::BufferConfig::new().get_depot_capacity(), 1024);
    /// ```
    pub const fn get_depot_capacity(&self) -> usize {
        self.depot_capacity
    }

    /// The global byte bound set.
    ///
    /// ```
    /// assert_eq!(pool_core::BufferConfig::new().get_depot_bytes(), 64 << 20);
    /// ```
    pub const fn get_depot_bytes(&self) -> usize {
        self.depot_bytes
    }

    /// The largest class kept on return.
    ///
    /// ```
    /// assert_eq!(pool_core::BufferConfig::new().max_class(4096).get_max_retained(), 4096);
    /// ```
    pub const fn get_max_retained(&self) -> usize {
        match self.max_retained {
            Some(m) => m,
            None => self.max_class,
        }
    }

    /// Whether returned buffers are zeroed.
    ///
    /// ```
    /// assert!(!pool_core::BufferConfig::new().get_zero_on_return());
    /// ```
    pub const fn get_zero_on_return(&self) -> bool {
        self.zero_on_return
    }

    /// The idle-decay period set.
    ///
    /// ```
    /// # use std::time::Duration;
    /// assert_eq!(pool_core::BufferConfig::new().get_decay_interval(), Duration::from_millis(500));
    /// ```
    pub const fn get_decay_interval(&self) -> Duration {
        self.decay_interval
    }

    /// How many buffers of a `class_size`-byte class one thread caches:
    /// its share of [`thread_bytes`](Self::thread_bytes) (which is per
    /// power of two, split evenly among its classes) in buffers, at most
    /// `thread_capacity`, and at least one. A class whose share is below one
    /// buffer is *large*: a thread keeps at most one buffer of it, and at
    /// most `thread_bytes` in all large classes together, but always the
    /// buffer it was just given back.
    ///
    /// ```
    /// let config = pool_core::BufferConfig::new(); // 256 KiB per doubling, 4 classes
    /// assert_eq!(config.class_thread_capacity(512), 64);
    /// assert_eq!(config.class_thread_capacity(16 << 10), 4);
    /// assert_eq!(config.class_thread_capacity(64 << 10), 1);
    /// assert_eq!(config.class_thread_capacity(80 << 10), 1); // a large class
    /// ```
    pub const fn class_thread_capacity(&self, class_size: usize) -> usize {
        let by_bytes = match self.class_share().checked_div(class_size) {
            Some(n) => n,
            None => usize::MAX,
        };
        let cap = if by_bytes < self.thread_capacity {
            by_bytes
        } else {
            self.thread_capacity
        };
        if cap == 0 {
            1
        } else {
            cap
        }
    }

    /// The most bytes one thread's caches can hold under these settings:
    /// the sum over the class range of each class's thread capacity times
    /// its size, with the large classes (see
    /// [`class_thread_capacity`](Self::class_thread_capacity)) counted
    /// together as `thread_bytes`, or their largest class if that is more
    /// (real sizes: a buffer is kept only at exactly its class size). With [`get_depot_bytes`](Self::get_depot_bytes) it bounds what
    /// a pool retains: the depot's bytes plus this per thread that uses the
    /// pool. 0 for settings that [`validate`](Self::validate) rejects.
    ///
    /// ```
    /// let config = pool_core::BufferConfig::new()
    ///     .min_class(1024)
    ///     .max_class(4096)
    ///     .thread_bytes(8192)
    ///     .classes_per_doubling(1);
    /// // 8 x 1 KiB + 4 x 2 KiB + 2 x 4 KiB
    /// assert_eq!(config.thread_bytes_bound(), 24 * 1024);
    /// // Four classes per doubling share each doubling's 8 KiB: 2 KiB each,
    /// // so the classes above 2 KiB are large and keep 8 KiB together.
    /// let four = config.classes_per_doubling(4);
    /// let small: usize = four.class_sizes()?.iter().filter(|&&c| c <= 2048)
    ///     .map(|&c| four.class_thread_capacity(c) * c).sum();
    /// assert_eq!(four.thread_bytes_bound(), small + 8192);
    /// # Ok::<(), pool_core::ConfigError>(())
    /// ```
    pub fn thread_bytes_bound(&self) -> usize {
        let Ok(sizes) = self.class_sizes() else {
            return 0;
        };
        let retained = sizes.iter().filter(|&&c| c <= self.get_max_retained());
        let (mut small, mut large) = (0usize, 0usize);
        for &class in retained {
            if self.is_large_class(class) {
                large = large.max(class);
            } else {
                small =
                    small.saturating_add(self.class_thread_capacity(class).saturating_mul(class));
            }
        }
        if large > 0 {
            large = large.max(self.thread_bytes);
        }
        small.saturating_add(large)
    }

    /// Bytes of `thread_bytes` each class of a doubling may cache.
    const fn class_share(&self) -> usize {
        match self.thread_bytes.checked_div(self.classes_per_doubling) {
            Some(n) => n,
            None => self.thread_bytes,
        }
    }

    /// Whether a class of `class_size` bytes is large: its share of
    /// `thread_bytes` is below one buffer.
    fn is_large_class(&self, class_size: usize) -> bool {
        self.class_share() < class_size
    }

    /// Checks every setting without building a pool.
    ///
    /// ```
    /// let err = pool_core::BufferConfig::new().min_class(1000).validate().unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "invalid pool setting `min_class` = 1000: expected a power of two from 1 to 1073741824 bytes (try 1024)"
    /// );
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.limits().map(|_| ())
    }

    /// Builds a pool of `B` buffers with these settings.
    ///
    /// ```
    /// let pool = pool_core::BufferConfig::new().build::<Vec<u8>>()?;
    /// assert_eq!(pool.checkout(100).capacity(), 512);
    /// # Ok::<(), pool_core::ConfigError>(())
    /// ```
    pub fn build<B: crate::Buffer>(self) -> Result<crate::BufferPool<B>, ConfigError> {
        crate::BufferPool::with_config(self)
    }
}
