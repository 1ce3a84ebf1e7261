//! Size-classed byte buffers: [`BufferPool`] and its guards, [`PooledBuf`]
//! and [`OwnedPooledBuf`]. The whole checkout and return is in this file:
//! class selection (`slot_for`), the hit (`fill`, through the engine's
//! `take_or`), and the return (the guards' `Drop`, `give_back`, the fast
//! `keep_fast` and the one cold path). The rest by concern:
//!
//! - `storage.rs`: the [`Buffer`] trait and its impls.
//! - `ticket.rs`: [`Ticket`] and [`CheckoutError`].
//! - `upkeep.rs`: prewarm, trim, maintain, reconfigure, flush and stats.
//!
//! `storage.rs` and `ticket.rs` are leaves; `upkeep.rs` imports this file,
//! which never imports it.

mod storage;
mod ticket;
mod upkeep;

use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use crate::config::limits::Spacing;
use crate::config::{BufferConfig, ConfigError};
use crate::engine::{unmerged, CountOnUnwind, Engine, FastPut};
use crate::loom::{lock, Mutex};
use crate::stats::{Discard, Returned, Source};

pub use self::storage::Buffer;
use self::ticket::{check_size, UNPOOLED};
pub use self::ticket::{CheckoutError, Ticket};

/// How far the fast return got with a buffer it did not keep, so that
/// the full return does not repeat it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tried {
    /// Nothing done: an unpooled buffer.
    No,
    /// Cleared, and not exactly the allocation lent (or to be zeroed):
    /// `reclaim` and the checks are left, then the whole put.
    Refused,
    /// Cleared and exactly the allocation lent, but this thread's cache had
    /// no room: only the slow put is left.
    NoRoom,
}

/// A pool of byte buffers in size classes, four per power of two by
/// default (512, 640, 768, 896, 1024, 1280, ... bytes; see
/// [`BufferConfig::classes_per_doubling`]).
///
/// A checkout of `n` bytes gets a buffer of the smallest class of at least
/// `n` bytes (a 0-byte request gets the smallest class), so with the
/// default spacing no buffer is more than 25% larger than its request (or
/// than the smallest class). [`Stats::waste`](crate::Stats::waste)
/// reports what the rounding costs. A request above
/// the largest class gets a plain allocation of exactly `n` bytes, counted
/// as unpooled and dropped on return. Each returned buffer is cleared
/// (length 0: no stale bytes are readable) and kept only if it is exactly
/// the allocation lent: its class size, starting where it started, shared
/// with no live split-off part. A buffer that grew, or whose memory a frame
/// still uses, is dropped (and counted), so every byte the pool reports or
/// bounds is a real byte of an allocation it holds.
///
/// ```
/// use pool_core::BufferPool;
///
/// let pool = BufferPool::<Vec<u8>>::new();
/// let mut buf = pool.checkout(3000);
/// assert_eq!(buf.capacity(), 3072);
/// buf.extend_from_slice(b"request body");
/// drop(buf); // back into this thread's 3 KiB cache
/// let again = pool.checkout(2900);
/// assert!(again.is_empty());
/// assert_eq!(pool.stats().hits(), 1);
/// ```
pub struct BufferPool<B: Buffer> {
    engine: Arc<Engine<B>>,
    config: Mutex<BufferConfig>,
    /// The class spacing, fixed at build.
    spacing: Spacing,
    /// The size of each class index (the class table's size column, which
    /// no reconfigure changes), 0 past the last class: indexed by any `u8`
    /// slot without a bounds check.
    sizes: [usize; 256],
    /// How many classes there are; also the engine's index of the unpooled
    /// counters.
    classes: usize,
}

impl<B: Buffer> fmt::Debug for BufferPool<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferPool")
            .field("buffer", &std::any::type_name::<B>())
            .field("config", &*lock(&self.config))
            .finish_non_exhaustive()
    }
}

impl<B: Buffer> Default for BufferPool<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: Buffer> BufferPool<B> {
    /// A pool with the default settings (see [`BufferConfig`]).
    ///
    /// ```
    /// let pool = pool_core::BufferPool::<Vec<u8>>::new();
    /// assert_eq!(pool.checkout(0).capacity(), 512);
    /// ```
    pub fn new() -> Self {
        match Self::with_config(BufferConfig::new()) {
            Ok(pool) => pool,
            Err(e) => unreachable!("default settings are valid: {e}"),
        }
    }

    /// A pool with the given settings; fails if a setting is out of range.
    ///
    /// ```
    /// use pool_core::{BufferConfig, BufferPool};
    /// let err = BufferPool::<Vec<u8>>::with_config(BufferConfig::new().max_class(100)).unwrap_err();
    /// assert!(err.to_string().contains("max_class"));
    /// ```
    pub fn with_config(config: BufferConfig) -> Result<Self, ConfigError> {
        let limits = config.limits()?;
        let spacing = limits.spacing;
        let classes = spacing.count();
        debug_assert!(classes < UNPOOLED as usize);
        let mut sizes = [0; 256];
        for (size, class) in sizes.iter_mut().zip(&limits.classes[..classes]) {
            *size = class.size;
        }
        Ok(BufferPool {
            engine: Arc::new(Engine::new(limits)),
            config: Mutex::new(config),
            spacing,
            sizes,
            classes,
        })
    }

    /// The engine's index of the counters of `slot` (the unpooled slot,
    /// and any slot this pool does not have, map to the last entry).
    #[inline(always)]
    fn counter_index(&self, slot: u8) -> usize {
        (slot as usize).min(self.classes)
    }

    /// `ticket`'s slot and class size as this pool knows them: the size
    /// always comes from this pool's table (one load, no bounds check), so
    /// that a ticket from another pool (a misuse) never puts a buffer in a
    /// class it does not fit, and a slot this pool does not have has size
    /// 0, which every return path treats as unpooled.
    #[inline(always)]
    fn own(&self, ticket: &Ticket) -> (u8, usize) {
        (ticket.slot, self.sizes[ticket.slot as usize])
    }

    /// Checks out an empty buffer of at least `min_capacity` bytes.
    ///
    /// # Panics
    ///
    /// If `min_capacity` exceeds `isize::MAX` (as `Vec::with_capacity`
    /// does); [`try_checkout`](BufferPool::try_checkout) returns an error
    /// instead.
    ///
    /// ```
    /// let pool = pool_core::BufferPool::<Vec<u8>>::new();
    /// let buf = pool.checkout(600);
    /// assert!(buf.is_empty());
    /// assert_eq!(buf.capacity(), 640);
    /// ```
    #[inline(always)]
    pub fn checkout(&self, min_capacity: usize) -> PooledBuf<'_, B> {
        let (buf, slot, size, _) = self.fill(min_capacity);
        PooledBuf {
            origin: self.origin(&buf, slot),
            buf: ManuallyDrop::new(buf),
            slot,
            size,
            pool: self,
        }
    }

    /// Like [`checkout`](BufferPool::checkout), but returns an error instead
    /// of panicking for an impossible size.
    ///
    /// ```
    /// let pool = pool_core::BufferPool::<Vec<u8>>::new();
    /// assert!(pool.try_checkout(usize::MAX).is_err());
    /// assert_eq!(pool.try_checkout(10)?.capacity(), 512);
    /// # Ok::<(), pool_core::CheckoutError>(())
    /// ```
    pub fn try_checkout(&self, min_capacity: usize) -> Result<PooledBuf<'_, B>, CheckoutError> {
        check_size(min_capacity)?;
        Ok(self.checkout(min_capacity))
    }

    /// Like [`checkout`](BufferPool::checkout), but the guard owns an `Arc`
    /// of the pool, so it is `'static` even when the pool is not in a
    /// `static`.
    ///
    /// # Panics
    ///
    /// As [`checkout`](BufferPool::checkout).
    ///
    /// ```
    /// use std::sync::Arc;
    /// let pool = Arc::new(pool_core::BufferPool::<Vec<u8>>::new());
    /// let mut buf = pool.checkout_owned(100);
    /// std::thread::spawn(move || buf.push(1)).join().unwrap();
    /// assert_eq!(pool.stats().outstanding(), 0);
    /// ```
    #[inline(always)]
    pub fn checkout_owned(self: &Arc<Self>, min_capacity: usize) -> OwnedPooledBuf<B> {
        let (buf, slot, size, _) = self.fill(min_capacity);
        OwnedPooledBuf {
            origin: self.origin(&buf, slot),
            buf: ManuallyDrop::new(buf),
            slot,
            size,
            pool: Arc::clone(self),
        }
    }

    /// The low-level checkout behind the guards, for crates that wrap
    /// buffers in guards of their own: an empty buffer and the [`Ticket`]
    /// to hand back with it to [`give_back`](BufferPool::give_back).
    ///
    /// # Panics
    ///
    /// As [`checkout`](BufferPool::checkout).
    ///
    /// ```
    /// let pool = pool_core::BufferPool::<Vec<u8>>::new();
    /// let (mut buf, ticket) = pool.take(100);
    /// buf.push(1);
    /// pool.give_back(buf, ticket);
    /// assert_eq!(pool.stats().outstanding(), 0);
    /// ```
    #[inline(always)]
    pub fn take(&self, min_capacity: usize) -> (B, Ticket) {
        let (buf, slot, size, source) = self.fill(min_capacity);
        self.lend(buf, slot, size, source)
    }

    /// `buf` with the ticket that brings it back to `slot`.
    #[inline(always)]
    fn lend(&self, buf: B, slot: u8, size: usize, source: Source) -> (B, Ticket) {
        let origin = self.origin(&buf, slot);
        (
            buf,
            Ticket {
                slot,
                source,
                origin,
                size,
            },
        )
    }

    /// Like [`take`](BufferPool::take), but leaves this thread's cache
    /// holding no more than before: on a miss in the cache, one buffer
    /// comes from a depot batch and the rest of the batch goes straight
    /// back to the depot, instead of staying cached on this thread. For
    /// threads that should keep no cache (a runtime's blocking threads),
    /// together with [`flush_thread`](BufferPool::flush_thread) after a
    /// return. Costs two depot round trips on a hit in the depot.
    ///
    /// # Panics
    ///
    /// As [`checkout`](BufferPool::checkout).
    ///
    /// ```
    /// let pool = pool_core::BufferPool::<Vec<u8>>::new();
    /// pool.prewarm_class(4096, 8);
    /// let (buf, ticket) = pool.take_uncached(4096);
    /// assert_eq!(ticket.source(), pool_core::Source::Depot);
    /// let class = *pool.stats().class(4096).unwrap();
    /// assert_eq!((class.retained_local, class.retained_depot), (0, 7)); // no batch kept here
    /// pool.give_back(buf, ticket);
    /// ```
    pub fn take_uncached(&self, min_capacity: usize) -> (B, Ticket) {
        let (buf, slot, size, source) = match self.slot_for(min_capacity) {
            Some((slot, size)) => {
                let (buf, source) =
                    self.engine
                        .take_or_uncached(slot as usize, min_capacity, || new_buffer(size));
                (buf, slot, size, source)
            }
            None => (
                self.take_unpooled(min_capacity),
                UNPOOLED,
                0,
                Source::Unpooled,
            ),
        };
        self.lend(buf, slot, size, source)
    }

    /// The size of the class that would serve a request of `min_capacity`
    /// bytes under the settings in force, or `None` when the request is
    /// above the largest class (an unpooled allocation of exactly
    /// `min_capacity` bytes).
    ///
    /// ```
    /// let pool = pool_core::BufferPool::<Vec<u8>>::new();
    /// assert_eq!(pool.class_size_for(0), Some(512));
    /// assert_eq!(pool.class_size_for(3000), Some(3072));
    /// assert_eq!(pool.class_size_for(2 << 20), None);
    /// ```
    pub fn class_size_for(&self, min_capacity: usize) -> Option<usize> {
        self.slot_for(min_capacity).map(|(_, size)| size)
    }

    /// The class slot serving `min_capacity` bytes and its size, or `None`
    /// above the largest class. No branch but the clamp to the range and
    /// that test: see [`Spacing::index`]; the size is one load from the
    /// class table.
    #[inline(always)]
    fn slot_for(&self, min_capacity: usize) -> Option<(u8, usize)> {
        let (min_class, max_index) = self.engine.hot.range();
        let index = self.spacing.index(min_capacity.max(min_class));
        if index <= max_index {
            // `max_index` < 255: the `u8` indexes the table unchecked.
            let slot = index as u8;
            Some((slot, self.sizes[slot as usize]))
        } else {
            None
        }
    }

    /// Where `buf`, just checked out of `slot`, starts. `as_ptr` is user
    /// code: if it panics, the buffer (still the caller's local) is dropped
    /// and the checkout balanced by a counted return.
    #[inline(always)]
    fn origin(&self, buf: &B, slot: u8) -> usize {
        let why = if slot != UNPOOLED {
            Discard::Rejected
        } else {
            Discard::Unpooled
        };
        let unwind = CountOnUnwind {
            engine: &self.engine,
            class: self.counter_index(slot),
            why,
        };
        let origin = buf.as_ptr() as usize;
        unwind.disarm();
        origin
    }

    /// A buffer for `min_capacity` bytes, its slot and class size. The hit
    /// path is forced inline; misses and unpooled requests are out of line.
    #[inline(always)]
    fn fill(&self, min_capacity: usize) -> (B, u8, usize, Source) {
        match self.slot_for(min_capacity) {
            Some((slot, size)) => {
                let (buf, source) = self
                    .engine
                    .take_or(slot as usize, Some(min_capacity), || new_buffer(size));
                (buf, slot, size, source)
            }
            None => {
                let buf = unmerged(self.take_unpooled(min_capacity));
                (buf, UNPOOLED, 0, Source::Unpooled)
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn take_unpooled(&self, min_capacity: usize) -> B {
        if let Err(e) = check_size(min_capacity) {
            panic!("{e}");
        }
        let buf = B::with_capacity(min_capacity);
        self.engine.count_miss(self.classes, min_capacity);
        buf
    }

    /// Returns a buffer taken with [`take`](BufferPool::take), on any
    /// thread. The buffer is cleared; it is kept only if it is the sole
    /// owner of its memory and did not outgrow its class.
    ///
    /// Returns what became of it.
    ///
    /// ```
    /// let pool = pool_core::BufferPool::<Vec<u8>>::new();
    /// let (mut buf, ticket) = pool.take(512);
    /// buf.reserve(8192); // grew far past its class: dropped on return
    /// pool.give_back(buf, ticket);
    /// assert_eq!(pool.stats().total().discarded.oversize, 1);
    /// ```
    #[inline(always)]
    pub fn give_back(&self, buf: B, ticket: Ticket) -> Returned {
        let (slot, size) = self.own(&ticket);
        self.give_back_slot(&mut ManuallyDrop::new(buf), slot, size, ticket.origin)
    }

    /// The common case of [`give_back`](BufferPool::give_back) alone: keeps
    /// the buffer if that takes nothing but the fast path (the exact
    /// allocation lent, room in this thread's cache, no zeroing), and
    /// otherwise hands both back (the buffer cleared) for a full
    /// `give_back`, which then clears and checks it again and retries the
    /// fast put. For crates whose guards do more work on the rare path, so
    /// that the common return stays a leaf function; where the rare path
    /// ends in `give_back` anyway, calling `give_back` alone runs each
    /// [`Buffer`] hook at most once per return.
    ///
    /// ```
    /// let pool = pool_core::BufferPool::<Vec<u8>>::new();
    /// let (buf, ticket) = pool.take(100);
    /// drop(pool.checkout(100)); // this thread's cache now exists
    /// assert!(pool.try_give_back_fast(buf, ticket).is_ok());
    /// let (mut buf, ticket) = pool.take(100);
    /// buf.reserve(10_000); // grew: not the allocation lent
    /// let (buf, ticket) = pool.try_give_back_fast(buf, ticket).unwrap_err();
    /// pool.give_back(buf, ticket);
    /// assert_eq!(pool.stats().total().discarded.oversize, 1);
    /// ```
    #[inline(always)]
    pub fn try_give_back_fast(&self, buf: B, ticket: Ticket) -> Result<(), (B, Ticket)> {
        let mut src = ManuallyDrop::new(buf);
        let (slot, size) = self.own(&ticket);
        match self.keep_fast(&mut src, slot, size, ticket.origin) {
            Ok(()) => Ok(()),
            Err(_) => Err((ManuallyDrop::into_inner(src), ticket)),
        }
    }

    /// The fast return: `Ok` if the buffer in `src` was kept (moved out).
    /// Otherwise nothing is moved or counted, and the error says what is
    /// left for the full path.
    #[inline(always)]
    /// `size` is 0 for unpooled buffers (and slots this pool does not
    /// have): only then may `slot` be past the last class.
    fn keep_fast(
        &self,
        src: &mut ManuallyDrop<B>,
        slot: u8,
        size: usize,
        origin: usize,
    ) -> Result<(), Tried> {
        if size == 0 {
            return Err(Tried::No);
        }
        debug_assert!((slot as usize) < self.classes);
        let zero = self.engine.hot.zero_on_return();
        let whole = |buf: &mut B| {
            buf.clear();
            !zero && buf.capacity() == size && buf.as_ptr() as usize == origin
        };
        match self.engine.put_fast_if(slot as usize, src, whole) {
            FastPut::Kept => Ok(()),
            FastPut::Refused => Err(Tried::Refused),
            FastPut::NoRoom => Err(Tried::NoRoom),
        }
    }

    /// Returns the buffer in `src` to class `slot` of `size` bytes (as this
    /// pool lent it); the caller never uses `src` again. Kept only if it is
    /// exactly the allocation lent (starting at `origin`, the class size):
    /// not grown, not moved, not shared.
    #[inline(always)]
    fn give_back_slot(
        &self,
        src: &mut ManuallyDrop<B>,
        slot: u8,
        size: usize,
        origin: usize,
    ) -> Returned {
        let tried = match self.keep_fast(src, slot, size, origin) {
            Ok(()) => return Returned::Kept,
            Err(tried) => tried,
        };
        // SAFETY: the caller never uses `src` again, so the buffer is moved
        // out of it exactly once, here.
        let buf = unsafe { ManuallyDrop::take(src) };
        self.give_back_cold(unmerged(buf), slot, size, origin, tried)
    }

    /// Everything but the common return: unpooled buffers, buffers to
    /// reclaim, zero or discard, full caches. Takes the buffer by value: a
    /// pointer to the caller's guard would make the guard's storage escape,
    /// and keep the common return from holding the buffer in registers.
    /// `tried` is what the fast return already did, which is not repeated.
    #[cold]
    #[inline(never)]
    fn give_back_cold(
        &self,
        buf: B,
        slot: u8,
        size: usize,
        origin: usize,
        tried: Tried,
    ) -> Returned {
        let src = &mut ManuallyDrop::new(buf);
        if size == 0 {
            return self.give_back_unpooled(src);
        }
        let zero = self.engine.hot.zero_on_return();
        if tried == Tried::NoRoom {
            // Cleared and checked by the fast return, which found no room:
            // only the slow put is left.
            return self.engine.put_slow_or_drop(slot as usize, src);
        }
        self.engine.put_or_drop(slot as usize, src, |buf| {
            if !buf.reclaim(size) {
                return Err(Discard::Shared);
            }
            if buf.capacity() != size || buf.as_ptr() as usize != origin {
                return Err(Discard::Oversize);
            }
            if zero {
                buf.zero();
            }
            Ok(())
        })
    }

    #[cold]
    #[inline(never)]
    fn give_back_unpooled(&self, src: &mut ManuallyDrop<B>) -> Returned {
        self.engine.count_discard(self.classes, Discard::Unpooled);
        // SAFETY: the caller never uses `src` again.
        unsafe { ManuallyDrop::drop(src) };
        Returned::Discarded(Discard::Unpooled)
    }

    /// Accounts for a buffer taken with [`take`](BufferPool::take) that
    /// will never come back (kept for good, or handed to code that frees
    /// it). Without this the pool reports it as outstanding.
    ///
    /// ```
    /// let pool = pool_core::BufferPool::<Vec<u8>>::new();
    /// let (buf, ticket) = pool.take(64);
    /// pool.forget(ticket);
    /// drop(buf);
    /// assert_eq!(pool.stats().outstanding(), 0);
    /// ```
    pub fn forget(&self, ticket: Ticket) {
        let (slot, _) = self.own(&ticket);
        self.engine.count_detach(self.counter_index(slot));
    }
}

/// A new buffer of a class of `size` bytes, on a miss.
#[cold]
#[inline(never)]
fn new_buffer<B: Buffer>(size: usize) -> B {
    B::with_capacity(size)
}

/// A buffer checked out of a [`BufferPool`], borrowing the pool.
///
/// Derefs to the buffer. Dropping it returns the buffer on the dropping
/// thread. `Send` when `B` is; `'static` when the pool is in a `static`.
pub struct PooledBuf<'a, B: Buffer> {
    buf: ManuallyDrop<B>,
    origin: usize,
    slot: u8,
    size: usize,
    pool: &'a BufferPool<B>,
}

/// A buffer checked out by [`BufferPool::checkout_owned`]; owns an `Arc` of
/// the pool and is always `'static`.
pub struct OwnedPooledBuf<B: Buffer> {
    buf: ManuallyDrop<B>,
    origin: usize,
    slot: u8,
    size: usize,
    pool: Arc<BufferPool<B>>,
}

macro_rules! buf_guard_impls {
    ($guard:ident $(<$lt:lifetime>)?) => {
        impl<$($lt,)? B: Buffer> $guard<$($lt,)? B> {
            /// Takes the buffer out of the pool for good; the pool counts it
            /// as detached.
            ///
            /// ```
            /// let pool = pool_core::BufferPool::<Vec<u8>>::new();
            /// let v: Vec<u8> = pool_core::PooledBuf::detach(pool.checkout(10));
            /// assert_eq!(v.capacity(), 512);
            /// assert_eq!(pool.stats().outstanding(), 0);
            /// ```
            pub fn detach(this: Self) -> B {
                this.pool.engine.count_detach(this.pool.counter_index(this.slot));
                let mut this = ManuallyDrop::new(this);
                // SAFETY: `this` is never dropped (`ManuallyDrop`), so the
                // buffer is moved out exactly once and the pool handle is
                // released exactly once, here.
                unsafe {
                    let buf = ManuallyDrop::take(&mut this.buf);
                    std::ptr::drop_in_place(&mut this.pool);
                    buf
                }
            }

            /// Whether the buffer came from a size class (false for a
            /// request above the largest class).
            ///
            /// ```
            /// let pool = pool_core::BufferPool::<Vec<u8>>::new();
            /// assert!(pool.checkout(10).is_pooled());
            /// assert!(!pool.checkout(4 << 20).is_pooled());
            /// ```
            pub fn is_pooled(&self) -> bool {
                self.slot != UNPOOLED
            }
        }

        impl<$($lt,)? B: Buffer> Deref for $guard<$($lt,)? B> {
            type Target = B;
            #[inline]
            fn deref(&self) -> &B {
                &self.buf
            }
        }

        impl<$($lt,)? B: Buffer> DerefMut for $guard<$($lt,)? B> {
            #[inline]
            fn deref_mut(&mut self) -> &mut B {
                &mut self.buf
            }
        }

        impl<$($lt,)? B: Buffer> Drop for $guard<$($lt,)? B> {
            #[inline(always)]
            fn drop(&mut self) {
                let _ = self.pool.give_back_slot(&mut self.buf, self.slot, self.size, self.origin);
            }
        }

        impl<$($lt,)? B: Buffer + fmt::Debug> fmt::Debug for $guard<$($lt,)? B> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&**self, f)
            }
        }
    };
}

buf_guard_impls!(PooledBuf<'a>);
buf_guard_impls!(OwnedPooledBuf);
