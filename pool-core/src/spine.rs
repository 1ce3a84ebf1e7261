//! The spine of pool-core: a [`BufferPool`] hit and a same-thread return,
//! read top to bottom in this one file, with the types they touch.
//!
//! In reading order: the fast pointer (`FAST`, [`fast`], [`fast_class`],
//! [`set_fast`]); a thread's cache ([`Class`], one stack per class index,
//! and [`Slot`]) with the fast operations on it (`Class::pop`, `Class::push_from`); the
//! engine's hot halves ([`Engine::take_or`], [`Engine::put_fast_if`],
//! [`Engine::guarded`], [`Engine::put_fast`]); and `BufferPool`'s checkout
//! and common return (`checkout`, `take`, `fill`, `slot_for`, `origin`,
//! `give_back`, `keep_fast`, `give_back_slot`).
//!
//! - A hit: `BufferPool::checkout` → `fill` → `slot_for` (`Hot::range`) →
//!   `Engine::take_or` → `fast_class` → `Slot::epoch` → `Class::pop`, one
//!   counter bump; then `origin`.
//! - A same-thread return: the guard's `Drop` (in `buffer.rs`, one call) →
//!   `give_back_slot` → `keep_fast` → `Engine::put_fast_if` → `guarded`
//!   (the clear and the checks) → `put_fast` → `fast_class` →
//!   `Class::push_from`, one counter bump.
//!
//! Everything else is out of line, reached through `#[cold]` functions
//! whose comments say why: a miss through `Engine::take_or_slow`
//! (`engine/mod.rs`, then `take_slow` in `engine/slow.rs`) or
//! `take_unpooled` (`buffer.rs`); a refused, unpooled or roomless return
//! through `give_back_cold` (`buffer.rs`, then `put_slow` in
//! `engine/slow.rs`). The rest of each type stays with its concern: `Class`
//! and `Slot` in `engine/cache.rs` (claim, release, refill, spill, limits,
//! the slow path's `pop_into`), `Engine` in `engine/` (construction,
//! catch-up, upkeep, exit, `put` and `put_or_drop` for `Pool`),
//! `BufferPool` and its guards in `buffer.rs` (construction, the other
//! checkouts, the guards' `Deref`, `detach` and `Drop`, whose one call is
//! `give_back_slot`) and `buffer/upkeep.rs`.
//!
//! The types are defined here so that this file imports only leaves (the
//! loom shim, `outcome.rs`, `config.rs`, `config/limits.rs`,
//! `engine/counters.rs`, `engine/depot.rs`, `buffer/storage.rs`,
//! `buffer/ticket.rs`), which never import it back.
//!
//! Its `unsafe`: the fast pointer's dereferences (the slot, and the
//! unchecked class index into the class array it holds, `fast_class`), the
//! stacks' cell and the
//! whole-value copy into one (`Class::items`, `Class::push_from`), the
//! unchecked class index (`Slot::class`), `unsafe impl Sync for Slot`, the
//! volatile move in [`unmerged`], the return guard's `ManuallyDrop`
//! handling ([`Engine::guarded`], `OnUnwind`) and the move out of a
//! returning buffer in `give_back_slot`.

use std::cell::Cell;
use std::mem::ManuallyDrop;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_utils::CachePadded;

use crate::buffer::storage::{new_buffer, Buffer};
use crate::buffer::ticket::{Ticket, UNPOOLED};
use crate::config::limits::{Limits, Spacing};
use crate::config::BufferConfig;
use crate::engine::counters::ClassCounters;
use crate::engine::depot::{Budget, Depot};
use crate::loom::{AtomicU64, AtomicUsize, Mutex, Ordering, ThreadLocal, UnsafeCell};
use crate::outcome::{Discard, FastPut, Returned, Source, Tried};

// 1. The fast pointer: this thread's slot of the last pool it used.

#[cfg(not(loom))]
std::thread_local! {
    /// `(pool id, slot, the slot's class array)` of the last pool this
    /// thread used. Destructor-free. The class array's address is here so
    /// that the hot path reaches a class in one load fewer than through
    /// the slot (W1 98 to 96 instructions, 2-6% faster side by side:
    /// `benches/RESULTS.md`, "The class array in the fast pointer"). It is
    /// derivable (`slot.classes.as_ptr()`), so `set_fast` is its only writer.
    static FAST: Cell<(u64, *const (), *const ())> = const { Cell::new((0, std::ptr::null(), std::ptr::null())) };
}

#[cfg(loom)]
loom::thread_local! {
    static FAST: Cell<(u64, *const (), *const ())> = Cell::new((0, std::ptr::null(), std::ptr::null()));
}

/// This thread's slot of the pool with id `pool`, if it is the last pool
/// this thread used. The borrow of `_engine` bounds the slot's lifetime.
#[inline(always)]
pub(crate) fn fast<T, E>(pool: u64, engine: &E) -> Option<&Slot<T>> {
    // Class 0 exists in every pool.
    fast_class::<T, E>(pool, engine, 0).map(|(slot, _)| slot)
}

/// Makes `slot` (claimed by this thread, in the pool with id `pool`) the
/// target of [`fast`] and [`fast_class`].
pub(crate) fn set_fast<T>(pool: u64, slot: &Slot<T>) {
    let classes = slot.classes.as_ptr() as *const ();
    FAST.with(|f| f.set((pool, slot as *const Slot<T> as *const (), classes)));
}

/// This thread's slot of the pool with id `pool` and the slot's class
/// `class`, reached straight from the fast pointer (no load of the class
/// array's address out of the slot), if it is the last pool this thread
/// used. No bounds check: `class` must be below the engine's class count,
/// as for [`Slot::class`]. The borrow of `_engine` bounds the lifetimes.
#[inline(always)]
pub(crate) fn fast_class<T, E>(
    pool: u64,
    _engine: &E,
    class: usize,
) -> Option<(&Slot<T>, &Class<T>)> {
    let (id, slot, classes) = FAST.with(Cell::get);
    if id == pool {
        // SAFETY: `FAST` holds `(pool, slot, ..)` only after `set_fast`
        // stored them on this thread, where `slot` is a `Slot<T>` of the pool
        // with id `pool`, claimed by this thread. Pool ids are never reused,
        // so the pool is `_engine`'s, which is alive while `_engine` is
        // borrowed and owns the slot (a `ThreadLocal` never moves or frees
        // its entries while it lives). The slot stays claimed by this thread
        // until its exit flush, which clears `FAST` first.
        let slot = unsafe { &*(slot as *const Slot<T>) };
        debug_assert!(class < slot.classes.len());
        // SAFETY: `classes` is `slot`'s class array, stored beside it by
        // `set_fast`: a boxed slice, never replaced or moved while the slot
        // lives. `class` is below the engine's class count, its length
        // (see `Slot::class`).
        let class = unsafe { &*(classes as *const Class<T>).add(class) };
        Some((slot, class))
    } else {
        None
    }
}

/// Forgets the fast pointer (at thread exit).
pub(crate) fn clear_fast() {
    let _ = FAST.try_with(|f| f.set((0, std::ptr::null(), std::ptr::null())));
}

// 2. A thread's cache: one `Class` stack per class index, in a `Slot`.

/// One class's share of a thread's cache. `repr(C)` keeps the fields the
/// fast path touches (`items`, `room`, the first counters) on one line.
///
/// A thread has one per class index of the pool (117 with four classes
/// per doubling, the unpooled slot included), most of them never used: a
/// class's stack is reserved only at the first return into it, so an
/// unused class costs this struct and no allocation.
#[repr(C)]
pub(crate) struct Class<T> {
    /// The stack; the top is the most recently returned value. Its capacity
    /// is always at least `room`, so pushes below `room` never allocate.
    pub(crate) items: UnsafeCell<Vec<T>>,
    /// Values the fast path may push: `cap` once the stack's storage is
    /// reserved (at the first return, on the slow path), 0 before.
    pub(crate) room: Cell<usize>,
    /// Most values kept; 0 when the class is not retained.
    pub(crate) cap: Cell<usize>,
    pub(crate) counters: ClassCounters,
    /// Values moved to or from the depot at once (1 ..= cap).
    pub(crate) batch: Cell<usize>,
    /// An empty vessel for the next batch pushed to the depot.
    pub(crate) vessel: Cell<Option<Vec<T>>>,
    /// A large class (its share of `thread_bytes` is below one buffer). It
    /// is *closed* (`room` 0) until a return opens it on the slow path,
    /// which first closes other large classes (their buffers to the depot)
    /// so that the open ones fit the thread's bound for large classes
    /// together; an open class then takes and returns on the fast path.
    pub(crate) loose: Cell<bool>,
}

impl<T> Class<T> {
    /// The stack, for the owner only.
    #[allow(clippy::mut_from_ref)]
    #[inline(always)]
    pub(crate) fn items(&self) -> &mut Vec<T> {
        // SAFETY: a `Class` is reached only through a `Slot` its thread has
        // claimed (see `Slot`), so only one thread ever touches `items`, and
        // within it every `&mut` lives inside one method of `Class`'s impls
        // (here and in `engine/cache.rs`) that runs no user code and does
        // not call another, so no two overlap.
        self.items.with_mut(|items| unsafe { &mut *items })
    }

    /// The top value, moved out; `None`, touching nothing, when empty.
    #[inline(always)]
    pub(crate) fn pop(&self) -> Option<T> {
        self.items().pop()
    }

    /// Moves the value out of `src` onto the stack if there is room. On
    /// true the caller must treat `src` as moved out (never drop it); on
    /// false nothing happened.
    #[inline(always)]
    pub(crate) fn push_from(&self, src: &ManuallyDrop<T>) -> bool {
        let items = self.items();
        let len = items.len();
        if len >= self.room.get() {
            return false;
        }
        debug_assert!(len < items.capacity(), "cache storage below its room");
        // SAFETY: `len < room <= capacity` (storage is reserved whenever
        // `room` is set, in `set_limits` and `make_room`), so index `len`
        // is inside the allocation. The copy duplicates the value there and `set_len`
        // makes the vector its owner; the caller retires the other copy.
        unsafe {
            std::ptr::copy_nonoverlapping(&**src as *const T, items.as_mut_ptr().add(len), 1);
            items.set_len(len + 1);
        }
        true
    }
}

/// A thread's cache and counters for one pool.
pub(crate) struct Slot<T> {
    /// The pool epoch this cache last caught up with; `u64::MAX` forces the
    /// next operation onto the slow path.
    pub(crate) epoch: Cell<u64>,
    /// 0 when free, else the token of the thread that claimed it.
    pub(crate) owner: AtomicUsize,
    /// Generations of trim, decay and configuration last applied.
    pub(crate) trim_gen: Cell<u64>,
    pub(crate) decay_gen: Cell<u64>,
    pub(crate) config_gen: Cell<u64>,
    pub(crate) classes: Box<[Class<T>]>,
    /// Large classes are `first_loose..` (see `Class::loose`); together
    /// they keep at most `loose_bytes` (or the one buffer just returned).
    pub(crate) first_loose: Cell<usize>,
    pub(crate) loose_bytes: Cell<usize>,
}

// SAFETY: other threads reach a `Slot` through `ThreadLocal::iter` (for
// statistics: they read only the atomic counters) and through `claim` (an
// atomic compare-exchange on `owner`). Every `Cell` and `UnsafeCell` is
// touched only by the thread that claimed the slot, between its claim
// (Acquire) and its release (Release), so no two threads ever race on them.
// The values cached are `T: Send`.
unsafe impl<T: Send> Sync for Slot<T> {}

impl<T> Slot<T> {
    #[inline(always)]
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.get()
    }

    /// Class `class` of this cache, without a bounds check on the fast path.
    #[inline(always)]
    pub(crate) fn class(&self, class: usize) -> &Class<T> {
        debug_assert!(class < self.classes.len());
        // SAFETY: every caller passes a class index below the engine's class
        // count, which is the length of `classes` (`Engine::new` builds both
        // from the same number; `BufferPool` maps requests above its largest
        // class to its last, counter-only slot, and `Pool` uses class 0).
        unsafe { self.classes.get_unchecked(class) }
    }
}

// 3. The engine and its hot halves (the cold ones are in `engine/`).

/// Generation counters. `epoch` is bumped whenever any of the others is,
/// so the fast path checks one word.
#[derive(Debug)]
pub(crate) struct Gens {
    pub(crate) epoch: AtomicU64,
    pub(crate) trim: AtomicU64,
    pub(crate) decay: AtomicU64,
    pub(crate) config: AtomicU64,
}

/// Read-mostly settings needed outside the caches (by `BufferPool`, here
/// and in `buffer.rs` and `buffer/upkeep.rs`).
#[derive(Debug)]
pub(crate) struct Hot {
    /// The class range: the smallest class's size and the largest class's
    /// index. Two words, read separately: each is a hint (see `range`).
    pub(crate) min_class: AtomicUsize,
    pub(crate) max_index: AtomicUsize,
    /// Whether returned buffers are zeroed.
    pub(crate) zero: AtomicUsize,
    /// How many classes above a missed one may serve it, and (non-zero)
    /// whether they also stop at 1.5x the missed class's size; both read
    /// on misses only.
    pub(crate) fallback: AtomicUsize,
    pub(crate) fallback_capped: AtomicUsize,
    /// The class spacing, fixed at build.
    pub(crate) spacing: Spacing,
}

impl Hot {
    /// Whether returned buffers are zeroed.
    #[inline]
    pub(crate) fn zero_on_return(&self) -> bool {
        // Relaxed: a setting read as a hint; see `range`.
        self.zero.load(Ordering::Relaxed) != 0
    }

    /// The configured class range as `(min_class, max_index)`.
    #[inline]
    pub(crate) fn range(&self) -> (usize, usize) {
        // Relaxed: a slightly stale range (or one word of the old range
        // and one of the new) only means one buffer is served from (or
        // returned to) a class of the range in force a moment ago; the
        // caches still check each class against their own limits, and
        // every index up to either range's `max_index` is a class.
        (
            self.min_class.load(Ordering::Relaxed),
            self.max_index.load(Ordering::Relaxed),
        )
    }
}

pub(crate) struct Engine<T: Send + 'static> {
    /// This pool's id for the fast pointer.
    pub(crate) id: u64,
    pub(crate) gens: CachePadded<Gens>,
    pub(crate) hot: CachePadded<Hot>,
    /// The owner of every thread's slot.
    pub(crate) slots: ThreadLocal<Slot<T>>,
    pub(crate) depots: Box<[Depot<T>]>,
    pub(crate) budget: Budget,
    /// The limits in force. Never held while user code runs.
    pub(crate) limits: Mutex<Arc<Limits>>,
    pub(crate) born: Instant,
    /// Nanoseconds after `born` when the next decay tick is due.
    pub(crate) decay_due: AtomicU64,
    /// Counts made on threads that have no slot (tearing down).
    pub(crate) orphans: Box<[ClassCounters]>,
}

/// `value`, moved through a place of its own that the optimiser may not
/// merge with the caller's. For values that come out of (or go into) an
/// out-of-line slow path: a by-value result or argument is passed through
/// memory, and if the compiler makes that memory the caller's guard itself,
/// the guard lives in memory on the fast path too, where whole-value copies
/// right after field stores stall on store forwarding. Free on the fast
/// path (only the slow path's own copy is read back).
#[inline(always)]
pub(crate) fn unmerged<V>(value: V) -> V {
    let place = ManuallyDrop::new(value);
    // SAFETY: a plain move out of `place`, which is never used or dropped
    // again; volatile only so that the read stays a read of `place`.
    unsafe { std::ptr::read_volatile(&*place) }
}

/// Drops a returning value and counts the return as `Rejected` when user
/// code preparing it panicked.
struct OnUnwind<'a, T: Send + 'static> {
    engine: &'a Arc<Engine<T>>,
    class: usize,
    value: *mut ManuallyDrop<T>,
}

impl<T: Send + 'static> Drop for OnUnwind<'_, T> {
    fn drop(&mut self) {
        self.engine.count_discard(self.class, Discard::Rejected);
        // SAFETY: only reached while unwinding out of the user code that
        // `guarded` runs: `value` points at the caller's live value, no
        // other reference to it is in use, and the caller never uses it
        // again (see `guarded`).
        unsafe { ManuallyDrop::drop(&mut *self.value) };
    }
}

/// Counts a return (as `why`) if dropped while unwinding: armed around user
/// code that runs after a checkout was counted but before the caller got
/// its guard, so that a panic there leaves `outstanding` exact.
pub(crate) struct CountOnUnwind<'a, T: Send + 'static> {
    pub(crate) engine: &'a Arc<Engine<T>>,
    pub(crate) class: usize,
    pub(crate) why: Discard,
}

impl<T: Send + 'static> CountOnUnwind<'_, T> {
    /// The user code returned: count nothing.
    #[inline(always)]
    pub(crate) fn disarm(self) {
        std::mem::forget(self);
    }
}

impl<T: Send + 'static> Drop for CountOnUnwind<'_, T> {
    fn drop(&mut self) {
        self.engine.count_discard(self.class, self.why);
    }
}

impl<T: Send + 'static> Engine<T> {
    /// Checkout: a value of `class` from this thread's cache, or else (out
    /// of line) from a batch of the depot, or else made by `create` (user
    /// code, run outside the engine) and counted as a miss once it exists.
    /// `requested` (bytes asked for, for size-classed pools) is added to the
    /// class's `requested` counter: one add on the hit path; `None`
    /// compiles to nothing.
    ///
    /// The value comes back by value, never through a pointer the caller
    /// passed in, so that an inlined checkout can keep it in registers,
    /// with the class that served it: `class`, but for a miss served by a
    /// larger class (`fallback_classes`, of at most `most` bytes).
    #[inline(always)]
    pub(crate) fn take_or(
        self: &Arc<Self>,
        class: usize,
        requested: Option<usize>,
        most: usize,
        create: impl FnOnce() -> T,
    ) -> (T, Source, usize) {
        if let Some((slot, c)) = fast_class::<T, _>(self.id, &**self, class) {
            // Relaxed: a stale epoch only delays catching up by one
            // operation; `catch_up` reads the generations with Acquire.
            if slot.epoch() == self.gens.epoch.load(Ordering::Relaxed) {
                if let Some(value) = c.pop() {
                    c.counters.local_hits.bump();
                    if let Some(n) = requested {
                        c.counters.requested.add(n as u64);
                    }
                    return (value, Source::Local, class);
                }
            }
        }
        unmerged(self.take_or_slow(class, requested, most, create))
    }

    /// The fast half of [`Engine::put`]: false, touching nothing, when this
    /// thread's cache is not at hand or is full.
    #[inline(always)]
    pub(crate) fn put_fast(&self, class: usize, src: &ManuallyDrop<T>) -> bool {
        if let Some((_, c)) = fast_class::<T, _>(self.id, self, class) {
            if c.push_from(src) {
                c.counters.returns.bump();
                return true;
            }
        }
        false
    }

    /// The common return, for `BufferPool`: if `check` (user code) accepts
    /// the value and this thread's cache has room, moves it in and returns
    /// true. Otherwise returns false with nothing done or counted, and the
    /// caller takes the full path. A panic in `check` drops the value and
    /// counts the return as `Rejected`.
    #[inline(always)]
    pub(crate) fn put_fast_if(
        self: &Arc<Self>,
        class: usize,
        src: &mut ManuallyDrop<T>,
        check: impl FnOnce(&mut T) -> bool,
    ) -> FastPut {
        if !self.guarded(class, src, check) {
            FastPut::Refused
        } else if self.put_fast(class, src) {
            FastPut::Kept
        } else {
            FastPut::NoRoom
        }
    }

    /// Runs `f` (user code) on the returning value in `src`. If it panics,
    /// the value is dropped and the return counted as `Rejected` before the
    /// panic goes on (the caller must then never use `src` again, which
    /// unwinding guarantees here; for the caller of
    /// `BufferPool::try_give_back_fast_in_place`, whose buffer's bits are
    /// still in its own place, that function's safety contract does).
    #[inline(always)]
    pub(crate) fn guarded<R>(
        self: &Arc<Self>,
        class: usize,
        src: &mut ManuallyDrop<T>,
        f: impl FnOnce(&mut T) -> R,
    ) -> R {
        let unwind = OnUnwind {
            engine: self,
            class,
            value: src,
        };
        // SAFETY: `unwind.value` is `src`, live and owned by the caller;
        // this `&mut` ends before `unwind` is forgotten or dropped.
        let r = f(unsafe { &mut **unwind.value });
        std::mem::forget(unwind);
        r
    }
}

// 4. `BufferPool`'s checkout and common return (the rest: `buffer.rs`).

/// A pool of byte buffers in size classes, four per power of two by
/// default (512, 640, 768, 896, 1024, 1280, ... bytes; see
/// [`BufferConfig::classes_per_doubling`]).
///
/// A checkout of `n` bytes gets a buffer of the smallest class of at least
/// `n` bytes (a 0-byte request gets the smallest class), so with the
/// default spacing the class is at most 25% larger than the request (or
/// is the smallest class). When that class has no buffer idle, in this
/// thread's cache or the depot, an idle buffer of one of the next
/// [`fallback_classes`](BufferConfig::fallback_classes) classes serves it
/// (by default two, never past 1.5x the class) before a new buffer of the
/// class is allocated. [`Stats::waste`](crate::Stats::waste)
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
    pub(crate) engine: Arc<Engine<B>>,
    pub(crate) config: Mutex<BufferConfig>,
    /// The class spacing, fixed at build.
    pub(crate) spacing: Spacing,
    /// The size of each class index (the class table's size column, which
    /// no reconfigure changes), 0 past the last class: indexed by any `u8`
    /// slot without a bounds check.
    pub(crate) sizes: [usize; 256],
    /// How many classes there are; also the engine's index of the unpooled
    /// counters.
    pub(crate) classes: usize,
}

/// A buffer checked out of a [`BufferPool`], borrowing the pool.
///
/// Derefs to the buffer. Dropping it returns the buffer on the dropping
/// thread. `Send` when `B` is; `'static` when the pool is in a `static`.
pub struct PooledBuf<'a, B: Buffer> {
    pub(crate) buf: ManuallyDrop<B>,
    pub(crate) origin: usize,
    pub(crate) slot: u8,
    pub(crate) size: usize,
    pub(crate) pool: &'a BufferPool<B>,
}

/// A buffer checked out by [`BufferPool::checkout_owned`]; owns an `Arc` of
/// the pool and is always `'static`.
pub struct OwnedPooledBuf<B: Buffer> {
    pub(crate) buf: ManuallyDrop<B>,
    pub(crate) origin: usize,
    pub(crate) slot: u8,
    pub(crate) size: usize,
    pub(crate) pool: Arc<BufferPool<B>>,
}

impl<B: Buffer> BufferPool<B> {
    /// The engine's index of the counters of `slot` (the unpooled slot,
    /// and any slot this pool does not have, map to the last entry).
    #[inline(always)]
    pub(crate) fn counter_index(&self, slot: u8) -> usize {
        (slot as usize).min(self.classes)
    }

    /// `ticket`'s slot and class size as this pool knows them: the size
    /// always comes from this pool's table (one load, no bounds check), so
    /// that a ticket from another pool (a misuse) never puts a buffer in a
    /// class it does not fit, and a slot this pool does not have has size
    /// 0, which every return path treats as unpooled.
    #[inline(always)]
    pub(crate) fn own(&self, ticket: &Ticket) -> (u8, usize) {
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
        let (buf, slot, size, _) = self.fill(min_capacity, usize::MAX);
        PooledBuf {
            origin: self.origin(&buf, slot),
            buf: ManuallyDrop::new(buf),
            slot,
            size,
            pool: self,
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
        let (buf, slot, size, source) = self.fill(min_capacity, usize::MAX);
        self.lend(buf, slot, size, source)
    }

    /// `buf` with the ticket that brings it back to `slot`.
    #[inline(always)]
    pub(crate) fn lend(&self, buf: B, slot: u8, size: usize, source: Source) -> (B, Ticket) {
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

    /// The class slot serving `min_capacity` bytes and its size, or `None`
    /// above the largest class. No branch but the clamp to the range and
    /// that test: see [`Spacing::index`]; the size is one load from the
    /// class table.
    #[inline(always)]
    pub(crate) fn slot_for(&self, min_capacity: usize) -> Option<(u8, usize)> {
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
    pub(crate) fn origin(&self, buf: &B, slot: u8) -> usize {
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

    /// A buffer for `min_capacity` bytes, its slot and class size; a miss
    /// served by a larger class only up to `most` bytes. The hit path is
    /// forced inline; misses and unpooled requests are out of line.
    #[inline(always)]
    pub(crate) fn fill(&self, min_capacity: usize, most: usize) -> (B, u8, usize, Source) {
        match self.slot_for(min_capacity) {
            Some((slot, size)) => {
                let (buf, source, served) =
                    self.engine
                        .take_or(slot as usize, Some(min_capacity), most, || new_buffer(size));
                // `served` is `slot` but after a miss served by a larger
                // class (out of line): `max_index` < 255.
                let served = served as u8;
                (buf, served, self.sizes[served as usize], source)
            }
            None => {
                let buf = unmerged(self.take_unpooled(min_capacity));
                (buf, UNPOOLED, 0, Source::Unpooled)
            }
        }
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

    /// The fast return: `Ok` if the buffer in `src` was kept (moved out).
    /// Otherwise nothing is moved or counted, and the error says what is
    /// left for the full path.
    #[inline(always)]
    /// `size` is 0 for unpooled buffers (and slots this pool does not
    /// have): only then may `slot` be past the last class.
    pub(crate) fn keep_fast(
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
    pub(crate) fn give_back_slot(
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
}
