//! Recycling policies: how a generic pool creates, resets and judges values.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;

/// How a [`Pool`](crate::Pool) makes new values and makes returned ones
/// ready for reuse.
///
/// `reset` runs on every return, on the returning thread, before the value
/// is cached. It must leave the value as good as new (no stale contents)
/// and returns whether the value is worth keeping: a value that grew too
/// large, or that `reset` could not clean, is dropped instead.
///
/// ```
/// use pool_core::{Pool, Recycle};
///
/// struct Frames;
/// impl Recycle<Vec<u8>> for Frames {
///     fn create(&self) -> Vec<u8> {
///         Vec::with_capacity(1024)
///     }
///     fn reset(&self, v: &mut Vec<u8>) -> bool {
///         v.clear();
///         v.capacity() <= 64 * 1024 // drop buffers that grew past 64 KiB
///     }
/// }
///
/// let pool = Pool::with_recycler(Frames);
/// pool.checkout().extend_from_slice(b"hello");
/// assert!(pool.checkout().is_empty());
/// ```
pub trait Recycle<T>: Send + Sync + 'static {
    /// Makes a new value, on a miss.
    fn create(&self) -> T;

    /// Resets a returned value; `false` drops it instead of keeping it.
    fn reset(&self, value: &mut T) -> bool;
}

/// What a reset closure may return: `()` (always keep) or `bool` (keep?).
pub trait Keep {
    /// Whether to keep the value.
    fn keep(self) -> bool;
}

impl Keep for () {
    #[inline]
    fn keep(self) -> bool {
        true
    }
}

impl Keep for bool {
    #[inline]
    fn keep(self) -> bool {
        self
    }
}

/// A [`Recycle`] policy made of two closures.
///
/// The reset closure returns `()` to always keep the value, or `bool` to
/// decide.
///
/// ```
/// use pool_core::{Pool, Recycler};
///
/// #[derive(Default)]
/// struct LogEntry {
///     timestamp: u64,
///     message: String,
/// }
///
/// let pool = Pool::with_recycler(Recycler::new(LogEntry::default, |e: &mut LogEntry| {
///     e.timestamp = 0;
///     e.message.clear();
///     e.message.capacity() <= 4096
/// }));
/// let mut entry = pool.checkout();
/// entry.timestamp = 42;
/// entry.message.push_str("started");
/// drop(entry);
/// let entry = pool.checkout();
/// assert_eq!((entry.timestamp, entry.message.as_str()), (0, ""));
/// ```
#[derive(Clone, Copy)]
pub struct Recycler<C, R> {
    create: C,
    reset: R,
}

impl<C, R> Recycler<C, R> {
    /// A policy that creates values with `create` and resets them with
    /// `reset`.
    ///
    /// ```
    /// let recycler = pool_core::Recycler::new(String::new, |s: &mut String| s.clear());
    /// let pool = pool_core::Pool::with_recycler(recycler);
    /// assert_eq!(pool.checkout().as_str(), "");
    /// ```
    pub const fn new(create: C, reset: R) -> Self {
        Recycler { create, reset }
    }
}

impl<C, R> fmt::Debug for Recycler<C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recycler").finish_non_exhaustive()
    }
}

impl<T, C, R, K> Recycle<T> for Recycler<C, R>
where
    C: Fn() -> T + Send + Sync + 'static,
    R: Fn(&mut T) -> K + Send + Sync + 'static,
    K: Keep,
{
    #[inline]
    fn create(&self) -> T {
        (self.create)()
    }

    #[inline]
    fn reset(&self, value: &mut T) -> bool {
        (self.reset)(value).keep()
    }
}

/// Types that can be emptied in place, keeping their allocation.
///
/// ```
/// use pool_core::Reset;
/// let mut s = String::from("stale");
/// s.reset();
/// assert!(s.is_empty() && s.capacity() >= 5);
/// assert_eq!(s.heap_bytes(), s.capacity());
/// ```
pub trait Reset {
    /// Empties the value in place.
    fn reset(&mut self);

    /// Heap bytes the value holds on to, used by [`DefaultRecycle`] to drop
    /// values that grew too large. The default is 0.
    fn heap_bytes(&self) -> usize {
        0
    }
}

impl Reset for String {
    fn reset(&mut self) {
        self.clear();
    }
    fn heap_bytes(&self) -> usize {
        self.capacity()
    }
}

impl<T> Reset for Vec<T> {
    fn reset(&mut self) {
        self.clear();
    }
    fn heap_bytes(&self) -> usize {
        self.capacity().saturating_mul(std::mem::size_of::<T>())
    }
}

impl<T> Reset for VecDeque<T> {
    fn reset(&mut self) {
        self.clear();
    }
    fn heap_bytes(&self) -> usize {
        self.capacity().saturating_mul(std::mem::size_of::<T>())
    }
}

impl<K, V, S> Reset for HashMap<K, V, S> {
    fn reset(&mut self) {
        self.clear();
    }
    fn heap_bytes(&self) -> usize {
        self.capacity()
            .saturating_mul(std::mem::size_of::<(K, V)>())
    }
}

impl<T, S> Reset for HashSet<T, S> {
    fn reset(&mut self) {
        self.clear();
    }
    fn heap_bytes(&self) -> usize {
        self.capacity().saturating_mul(std::mem::size_of::<T>())
    }
}

impl<K, V> Reset for BTreeMap<K, V> {
    fn reset(&mut self) {
        self.clear();
    }
}

impl<T: Reset + ?Sized> Reset for Box<T> {
    fn reset(&mut self) {
        (**self).reset();
    }
    fn heap_bytes(&self) -> usize {
        (**self).heap_bytes()
    }
}

/// The policy of [`Pool::new`](crate::Pool::new): create with `Default`,
/// reset with [`Reset`], and drop values holding more than a byte limit
/// (64 KiB by default), so one huge request does not pin its buffer forever.
///
/// ```
/// use pool_core::{DefaultRecycle, Pool};
///
/// let pool: Pool<String> = Pool::with_recycler(DefaultRecycle::with_max_bytes(16));
/// let mut s = pool.checkout();
/// s.push_str("a string longer than sixteen bytes");
/// drop(s); // too large: dropped, not kept
/// assert_eq!(pool.stats().total().discarded.rejected, 1);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct DefaultRecycle {
    max_bytes: usize,
}

impl DefaultRecycle {
    /// The default byte limit: 64 KiB, the size above which Go's `fmt` stops
    /// pooling its buffers.
    pub const DEFAULT_MAX_BYTES: usize = 64 * 1024;

    /// The default policy.
    ///
    /// ```
    /// let p = pool_core::DefaultRecycle::new();
    /// assert_eq!(p.max_bytes(), 64 * 1024);
    /// ```
    pub const fn new() -> Self {
        DefaultRecycle {
            max_bytes: Self::DEFAULT_MAX_BYTES,
        }
    }

    /// A policy that drops values holding more than `max_bytes`.
    ///
    /// ```
    /// let p = pool_core::DefaultRecycle::with_max_bytes(1024);
    /// assert_eq!(p.max_bytes(), 1024);
    /// ```
    pub const fn with_max_bytes(max_bytes: usize) -> Self {
        DefaultRecycle { max_bytes }
    }

    /// The byte limit.
    ///
    /// ```
    /// assert_eq!(pool_core::DefaultRecycle::default().max_bytes(), 65536);
    /// ```
    pub const fn max_bytes(&self) -> usize {
        self.max_bytes
    }
}

impl Default for DefaultRecycle {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Default + Reset> Recycle<T> for DefaultRecycle {
    #[inline]
    fn create(&self) -> T {
        T::default()
    }

    #[inline]
    fn reset(&self, value: &mut T) -> bool {
        value.reset();
        value.heap_bytes() <= self.max_bytes
    }
}
