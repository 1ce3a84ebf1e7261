//! Size-classed byte buffers: [`BufferPool`] and its guards, [`PooledBuf`]
//! and [`OwnedPooledBuf`]. The types, the checkout's hit (`checkout`,
//! `take`, `fill`, `slot_for`, `origin`) and the common return
//! (`give_back`, `give_back_slot`, `keep_fast`) are in `spine.rs`, beside
//! the engine's hot path they inline. Here: building a pool, the other
//! checkouts (`try_checkout`, `checkout_owned`, `take_uncached`), the fast
//! return alone for other crates' guards (`try_give_back_fast`, and
//! `try_give_back_fast_in_place`, an `unsafe fn` whose caller must not
//! touch a buffer it kept: it moves the buffer out of the caller's place
//! and back unless kept), the cold paths (`take_unpooled`,
//! `give_back_cold`), `forget`, and the guards' `Deref`, `detach` and
//! `Drop` (one call of `give_back_slot`). The rest by concern:
//!
//! - `storage.rs`: the [`Buffer`] trait and its impls.
//! - `ticket.rs`: [`Ticket`] and [`CheckoutError`].
//! - `upkeep.rs`: prewarm, trim, maintain, reconfigure, flush and stats.
//!
//! `storage.rs` and `ticket.rs` are leaves; `upkeep.rs` imports this file,
//! which never imports it.

pub(crate) mod storage;
pub(crate) mod ticket;
mod upkeep;

use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use crate::config::{BufferConfig, ConfigError};
use crate::loom::{lock, Mutex};
use crate::outcome::Tried;
use crate::spine::Engine;
use crate::stats::{Discard, Returned, Source};

use self::storage::new_buffer;
pub use self::storage::Buffer;
use self::ticket::{check_size, UNPOOLED};
pub use self::ticket::{CheckoutError, Ticket};
pub use crate::spine::{BufferPool, OwnedPooledBuf, PooledBuf};

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
        let (buf, slot, size, _) = self.fill(min_capacity, usize::MAX);
        OwnedPooledBuf {
            origin: self.origin(&buf, slot),
            buf: ManuallyDrop::new(buf),
            slot,
            size,
            pool: Arc::clone(self),
        }
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
    #[inline]
    pub fn take_uncached(&self, min_capacity: usize) -> (B, Ticket) {
        self.take_uncached_within(min_capacity, usize::MAX)
    }

    /// [`take_uncached`](BufferPool::take_uncached) with the bound of
    /// [`take_within`](BufferPool::take_within): a miss is served by a
    /// larger class's idle buffer only if its class is at most
    /// `max_capacity` bytes.
    ///
    /// # Panics
    ///
    /// As [`checkout`](BufferPool::checkout).
    ///
    /// ```
    /// let pool = pool_core::BufferPool::<Vec<u8>>::new();
    /// pool.prewarm_class(3584, 1);
    /// let (buf, ticket) = pool.take_uncached_within(3000, 3072);
    /// assert_eq!(buf.capacity(), 3072); // the idle 3584 is past the bound
    /// pool.give_back(buf, ticket);
    /// ```
    #[inline]
    pub fn take_uncached_within(&self, min_capacity: usize, max_capacity: usize) -> (B, Ticket) {
        let (buf, slot, size, source) = match self.slot_for(min_capacity) {
            Some((slot, size)) => {
                let (buf, source, served) =
                    self.engine
                        .take_or_uncached(slot as usize, min_capacity, max_capacity, || {
                            new_buffer(size)
                        });
                let served = served as u8;
                (buf, served, self.sizes[served as usize], source)
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

    /// Like [`take`](BufferPool::take), but a miss is served by a larger
    /// class's idle buffer (see
    /// [`BufferConfig::fallback_classes`](crate::BufferConfig::fallback_classes))
    /// only if that buffer's class is at most `max_capacity` bytes; else
    /// the buffer is of the request's class (or unpooled above the largest
    /// class), whatever `max_capacity` says. `take_within(n, 0)` never
    /// serves from a larger class. For a caller that can lend only so many
    /// bytes, such as a byte budget with little left.
    ///
    /// # Panics
    ///
    /// As [`checkout`](BufferPool::checkout).
    ///
    /// ```
    /// let pool = pool_core::BufferPool::<Vec<u8>>::new();
    /// drop(pool.checkout(3500)); // a 3584-byte buffer, idle in this thread
    /// let (buf, ticket) = pool.take_within(3000, 3500);
    /// assert_eq!((buf.capacity(), ticket.class_size()), (3072, Some(3072)));
    /// pool.give_back(buf, ticket);
    /// let (buf, ticket) = pool.take_within(3000, 4096);
    /// assert_eq!((buf.capacity(), ticket.class_size()), (3072, Some(3072))); // its own class first
    /// let (larger, ticket2) = pool.take_within(3000, 4096);
    /// assert_eq!(larger.capacity(), 3584);
    /// # pool.give_back(buf, ticket); pool.give_back(larger, ticket2);
    /// ```
    #[inline(always)]
    pub fn take_within(&self, min_capacity: usize, max_capacity: usize) -> (B, Ticket) {
        let (buf, slot, size, source) = self.fill(min_capacity, max_capacity);
        self.lend(buf, slot, size, source)
    }

    /// The size of the class of a request of `min_capacity` bytes under the
    /// settings in force, or `None` when the request is above the largest
    /// class (an unpooled allocation of exactly `min_capacity` bytes). A
    /// miss may still be served by a larger class's idle buffer (see
    /// [`BufferConfig::fallback_classes`](crate::BufferConfig::fallback_classes)).
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
        // SAFETY: `src` holds the live buffer taken with `ticket`; it is
        // not touched after a `true` return, and a panicking `Buffer`
        // method unwinds out of this function, past `src`, which is never
        // dropped.
        if unsafe { self.try_give_back_fast_in_place(&mut src, &ticket) } {
            Ok(())
        } else {
            Err((ManuallyDrop::into_inner(src), ticket))
        }
    }

    /// [`try_give_back_fast`](BufferPool::try_give_back_fast) on a buffer
    /// the caller keeps in place: true if it was kept, moved out of `buf`
    /// into this thread's cache; false if the fast path does not apply,
    /// with the buffer back in `buf` (cleared, unless it is unpooled) for
    /// a full [`give_back`](BufferPool::give_back) with the same ticket.
    /// For guards whose `Drop` holds the buffer in a field: the buffer is
    /// read out of `buf` once and written back only if refused, so the
    /// caller moves nothing out of its guard on the common return.
    ///
    /// # Safety
    ///
    /// `buf` holds a live buffer taken from this pool with `ticket`. After
    /// a `true` return the caller must treat `buf` as moved out: never read,
    /// write, drop or take it again; and `ticket` is spent (handing it to
    /// another return is not undefined behaviour, but counts a return that
    /// did not happen). The same holds if a [`Buffer`] method
    /// panics in here: the buffer is then dropped (and counted as a
    /// rejected return) before the panic goes on, so the caller, unwinding,
    /// must not drop `buf` either (a `ManuallyDrop` field is not dropped by
    /// unwinding).
    ///
    /// ```
    /// use std::mem::ManuallyDrop;
    ///
    /// let pool = pool_core::BufferPool::<Vec<u8>>::new();
    /// drop(pool.checkout(100)); // this thread's cache now exists
    /// let (buf, ticket) = pool.take(100);
    /// let mut buf = ManuallyDrop::new(buf);
    /// // SAFETY: `buf` is not used after a `true` return.
    /// if !unsafe { pool.try_give_back_fast_in_place(&mut buf, &ticket) } {
    ///     // SAFETY: not kept, so `buf` still owns the buffer.
    ///     pool.give_back(unsafe { ManuallyDrop::take(&mut buf) }, ticket);
    /// }
    /// assert_eq!(pool.stats().outstanding(), 0);
    /// ```
    #[inline(always)]
    pub unsafe fn try_give_back_fast_in_place(
        &self,
        buf: &mut ManuallyDrop<B>,
        ticket: &Ticket,
    ) -> bool {
        let (slot, size) = self.own(ticket);
        // The buffer is moved to a local first and, if refused, written
        // back: the checks and the copy into the cache then work on
        // registers. Copied from `buf` in place, the 32-byte value was
        // read back with two 16-byte loads right after the caller's 8-byte
        // field stores (and the clear's), a store-forwarding stall on
        // every return (W1 2.5 ns slower side by side).
        // SAFETY: the caller's promise: `buf` holds a live buffer. It is
        // written back below unless kept, so `buf` owns it again then.
        let mut src = ManuallyDrop::new(unsafe { ManuallyDrop::take(buf) });
        match self.keep_fast(&mut src, slot, size, ticket.origin) {
            Ok(()) => true,
            Err(_) => {
                *buf = src;
                false
            }
        }
    }

    /// A request above the largest class: a plain allocation of exactly
    /// `min_capacity` bytes, counted as a miss. Out of line: rare, and its
    /// size check and panic would otherwise sit in every inlined checkout.
    #[cold]
    #[inline(never)]
    pub(crate) fn take_unpooled(&self, min_capacity: usize) -> B {
        if let Err(e) = check_size(min_capacity) {
            panic!("{e}");
        }
        let buf = B::with_capacity(min_capacity);
        self.engine.count_miss(self.classes, min_capacity);
        buf
    }

    /// Everything but the common return: unpooled buffers, buffers to
    /// reclaim, zero or discard, full caches. Takes the buffer by value: a
    /// pointer to the caller's guard would make the guard's storage escape,
    /// and keep the common return from holding the buffer in registers.
    /// `tried` is what the fast return already did, which is not repeated.
    /// Out of line so that the guard's inlined `Drop` holds only the fast
    /// return.
    #[cold]
    #[inline(never)]
    pub(crate) fn give_back_cold(
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

    /// An unpooled buffer's return: counted and dropped. Out of line: rare,
    /// and only `give_back_cold` calls it.
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
