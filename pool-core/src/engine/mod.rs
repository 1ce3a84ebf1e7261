//! The engine behind both pool types: per-thread caches in front of one
//! bounded depot per class.
//!
//! The whole checkout/return fast path is [`Engine::take_or`] and
//! [`Engine::put`] below: one thread-local load, one relaxed load of the
//! pool's epoch, a length check and a whole-value copy. Values cross the
//! out-of-line paths by value through [`unmerged`], so that an inlined
//! checkout-use-return keeps the value in registers (no whole-value copy
//! out of memory just written field by field: no store-forwarding stall).
//! Everything else is out of line, one job per module:
//!
//! - `cache.rs`: a thread's slot (stacks, counters, the claim) and the fast
//!   pointer; the cache's `unsafe` (the rest is here, in `unmerged` and
//!   the return guards, and one call in `upkeep.rs`).
//! - `slow.rs`: misses and full caches (batch take and push), finding or
//!   claiming this thread's slot, counts made off the fast path.
//! - `catch_up.rs`: bringing a slot up to date with trims, decay ticks and
//!   configuration changes.
//! - `upkeep.rs`: pool-wide operations (trim, decay, reconfigure, prewarm,
//!   statistics) and the exit flush.
//! - `depot.rs`: the depot and the byte budget.
//! - `exit.rs`: the per-thread registry that flushes slots at thread exit.
//! - `counters.rs`: the counters, defined once.
//!
//! Values are opaque here: constructors, reset policies and `Buffer`
//! methods run in `pool.rs` and `buffer.rs`. Values the engine must drop
//! are collected and dropped after every counter is updated and no lock is
//! held, so a panicking `Drop` leaves the books exact.

pub(crate) mod cache;
mod catch_up;
mod counters;
pub(crate) mod depot;
mod exit;
mod slow;
mod upkeep;

use std::mem::{ManuallyDrop, MaybeUninit};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_utils::CachePadded;

use crate::config::limits::Limits;
use crate::loom::{AtomicU64, AtomicUsize, Mutex, Ordering, ThreadLocal};
use crate::outcome::{Discard, Returned, Source};

use self::cache::Slot;
use self::counters::ClassCounters;
use self::depot::{Budget, Depot};

pub(crate) use self::counters::Sums;

/// Generation counters. `epoch` is bumped whenever any of the others is,
/// so the fast path checks one word.
#[derive(Debug)]
struct Gens {
    epoch: AtomicU64,
    trim: AtomicU64,
    decay: AtomicU64,
    config: AtomicU64,
}

/// Read-mostly settings needed outside the caches (by `buffer.rs` and
/// `buffer/upkeep.rs`).
#[derive(Debug)]
pub(crate) struct Hot {
    /// The class range: the smallest class's size and the largest class's
    /// index. Two words, read separately: each is a hint (see `range`).
    min_class: AtomicUsize,
    max_index: AtomicUsize,
    /// Whether returned buffers are zeroed.
    zero: AtomicUsize,
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

    fn set(&self, limits: &Limits) {
        // Relaxed: hints, as above; the caches' own limits change through
        // `catch_up`, ordered by the generation counters.
        self.min_class
            .store(1 << limits.min_shift, Ordering::Relaxed);
        self.max_index.store(limits.max_index, Ordering::Relaxed);
        self.zero
            .store(limits.zero_on_return as usize, Ordering::Relaxed);
    }
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

/// What [`Engine::put_fast_if`] did with a returning value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FastPut {
    /// Moved into this thread's cache.
    Kept,
    /// The check said no: nothing moved, the full return path must run.
    Refused,
    /// The check accepted it, but this thread's cache was not at hand or
    /// was full: nothing moved; only the slow put is left to try.
    NoRoom,
}

/// Pool ids, never reused, so that a stale fast pointer never matches.
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

pub(crate) struct Engine<T: Send + 'static> {
    /// This pool's id for the fast pointer.
    id: u64,
    gens: CachePadded<Gens>,
    pub(crate) hot: CachePadded<Hot>,
    /// The owner of every thread's slot.
    slots: ThreadLocal<Slot<T>>,
    depots: Box<[Depot<T>]>,
    budget: Budget,
    /// The limits in force. Never held while user code runs.
    limits: Mutex<Arc<Limits>>,
    born: Instant,
    /// Nanoseconds after `born` when the next decay tick is due.
    decay_due: AtomicU64,
    /// Counts made on threads that have no slot (tearing down).
    orphans: Box<[ClassCounters]>,
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
        // SAFETY: only reached while unwinding out of `prepare` in
        // `put_or_drop`: `value` points at the caller's live value, no other
        // reference to it is in use, and the caller never uses it again.
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

impl<T: Send + 'static> std::fmt::Debug for Engine<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("classes", &self.depots.len())
            .field("depot_bytes", &self.budget.used())
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> Engine<T> {
    /// An engine with one class per entry of `limits.classes`, whose
    /// sizes it keeps for good (a reconfigure must keep them).
    pub(crate) fn new(limits: Limits) -> Self {
        let classes = limits.classes.len();
        let hot = Hot {
            min_class: AtomicUsize::new(1),
            max_index: AtomicUsize::new(0),
            zero: AtomicUsize::new(0),
        };
        hot.set(&limits);
        Engine {
            // Relaxed: a unique number, it publishes nothing.
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            gens: CachePadded::new(Gens {
                epoch: AtomicU64::new(0),
                trim: AtomicU64::new(0),
                decay: AtomicU64::new(0),
                config: AtomicU64::new(0),
            }),
            hot: CachePadded::new(hot),
            slots: ThreadLocal::new(),
            depots: (0..classes)
                .map(|i| Depot::new(limits.classes[i].size, limits.classes[i].depot_objects))
                .collect(),
            budget: Budget::new(limits.depot_bytes),
            limits: Mutex::new(Arc::new(limits)),
            born: Instant::now(),
            decay_due: AtomicU64::new(0),
            orphans: (0..classes).map(|_| ClassCounters::default()).collect(),
        }
    }

    /// Return: moves the value in `src` (already reset by the caller) into
    /// this thread's cache, pushing a batch to the depot when it is full
    /// (after catching up).
    /// True: `src` was moved out and must not be dropped. False: the caller
    /// drops it (counted here as a `stale` discard).
    #[inline(always)]
    pub(crate) fn put(self: &Arc<Self>, class: usize, src: &ManuallyDrop<T>) -> bool {
        // No epoch check: a value returned into a cache that a trim or a
        // lowered bound has not reached yet is dropped, with the rest, when
        // the thread next catches up (its next checkout, or the next return
        // that finds the cache full). The cache never exceeds the cap it
        // last caught up with.
        self.put_fast(class, src) || self.put_slow(class, src)
    }

    /// The fast half of [`Engine::put`]: false, touching nothing, when this
    /// thread's cache is not at hand or is full.
    #[inline(always)]
    fn put_fast(&self, class: usize, src: &ManuallyDrop<T>) -> bool {
        if let Some(slot) = cache::fast(self.id, self) {
            let c = slot.class(class);
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

    /// The rest of a return that [`Engine::put_fast_if`] accepted but found
    /// no room for: the slow put alone (the fast one was just tried), or a
    /// drop counted as stale. The caller never uses `src` again.
    #[cold]
    pub(crate) fn put_slow_or_drop(
        self: &Arc<Self>,
        class: usize,
        src: &mut ManuallyDrop<T>,
    ) -> Returned {
        if self.put_slow(class, src) {
            return Returned::Kept;
        }
        // SAFETY: `put_slow` returned false, so it left `src` in place; the
        // caller never uses it again.
        unsafe { ManuallyDrop::drop(src) };
        Returned::Discarded(Discard::Stale)
    }

    /// Runs `f` (user code) on the returning value in `src`. If it panics,
    /// the value is dropped and the return counted as `Rejected` before the
    /// panic goes on (the caller must then never use `src` again, which
    /// unwinding guarantees).
    #[inline(always)]
    fn guarded<R>(
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

    /// Checkout: a value of `class` from this thread's cache, or else (out
    /// of line) from a batch of the depot, or else made by `create` (user
    /// code, run outside the engine) and counted as a miss once it exists.
    /// `requested` (bytes asked for, for size-classed pools) is added to the
    /// class's `requested` counter: one add on the hit path; `None`
    /// compiles to nothing.
    ///
    /// The value comes back by value, never through a pointer the caller
    /// passed in, so that an inlined checkout can keep it in registers.
    #[inline(always)]
    pub(crate) fn take_or(
        self: &Arc<Self>,
        class: usize,
        requested: Option<usize>,
        create: impl FnOnce() -> T,
    ) -> (T, Source) {
        if let Some(slot) = cache::fast(self.id, &**self) {
            // Relaxed: a stale epoch only delays catching up by one
            // operation; `catch_up` reads the generations with Acquire.
            if slot.epoch() == self.gens.epoch.load(Ordering::Relaxed) {
                let c = slot.class(class);
                if let Some(value) = c.pop() {
                    c.counters.local_hits.bump();
                    if let Some(n) = requested {
                        c.counters.requested.add(n as u64);
                    }
                    return (value, Source::Local);
                }
            }
        }
        unmerged(self.take_or_slow(class, requested, create))
    }

    /// Everything but a hit in this thread's cache, for [`Engine::take_or`].
    #[cold]
    #[inline(never)]
    fn take_or_slow(
        self: &Arc<Self>,
        class: usize,
        requested: Option<usize>,
        create: impl FnOnce() -> T,
    ) -> (T, Source) {
        let mut dst = MaybeUninit::uninit();
        let source = self.take_slow(class, &mut dst);
        if source != Source::New {
            self.count_requested(class, requested.unwrap_or(0));
            // SAFETY: `take_slow` wrote a value into `dst` whenever it
            // returned a source other than `New` (`Class::pop_into`
            // returned true).
            return (unsafe { dst.assume_init() }, source);
        }
        let value = create();
        self.count_miss(class, requested.unwrap_or(0));
        (value, Source::New)
    }

    /// Checkout as a value, like [`Engine::take_or`], that leaves this
    /// thread's cache holding no more than before: a batch taken from the
    /// depot goes back at once, less the value handed out.
    pub(crate) fn take_or_uncached(
        self: &Arc<Self>,
        class: usize,
        requested: usize,
        create: impl FnOnce() -> T,
    ) -> (T, Source) {
        let mut dst = MaybeUninit::uninit();
        let (source, dropped) = self.take_uncached_slow(class, &mut dst);
        if source != Source::New {
            self.count_requested(class, requested);
            // SAFETY: `take_slow` wrote a value into `dst` whenever it
            // returned a source other than `New`.
            let value = unsafe { dst.assume_init() };
            if !dropped.is_empty() {
                // User `Drop`s run after the checkout was counted: a panic
                // in one drops `value` too, counted as a return.
                let unwind = CountOnUnwind {
                    engine: self,
                    class,
                    why: Discard::Rejected,
                };
                drop(dropped);
                unwind.disarm();
            }
            return (value, source);
        }
        debug_assert!(dropped.is_empty(), "nothing taken, nothing spilled");
        let value = create();
        self.count_miss(class, requested);
        (value, Source::New)
    }

    /// Return of the value in `src`, which the caller owns and must not use
    /// afterwards: `prepare` (user code: reset, keep policy, `Buffer`
    /// methods) says whether to keep it, or why not. If `prepare` panics the
    /// value is dropped and the return counted as `Rejected`, then the panic
    /// goes on. A value not kept is counted and dropped here.
    #[inline(always)]
    pub(crate) fn put_or_drop(
        self: &Arc<Self>,
        class: usize,
        src: &mut ManuallyDrop<T>,
        prepare: impl FnOnce(&mut T) -> Result<(), Discard>,
    ) -> Returned {
        match self.guarded(class, src, prepare) {
            Ok(()) if self.put(class, src) => Returned::Kept,
            Ok(()) => {
                // SAFETY: `put` returned false, so it left `src` in place;
                // the caller never uses it again.
                unsafe { ManuallyDrop::drop(src) };
                Returned::Discarded(Discard::Stale)
            }
            Err(why) => {
                self.count_discard(class, why);
                // SAFETY: as above: the caller never uses `src` again.
                unsafe { ManuallyDrop::drop(src) };
                Returned::Discarded(why)
            }
        }
    }

    pub(crate) fn classes(&self) -> usize {
        self.depots.len()
    }

    pub(crate) fn limits(&self) -> Arc<Limits> {
        Arc::clone(&crate::loom::lock(&self.limits))
    }

    /// Bytes an object of `class` accounts for (its depot's, from the
    /// class table the engine was built with).
    pub(crate) fn class_bytes(&self, class: usize) -> usize {
        self.depots[class].object_bytes()
    }

    /// Bytes the depots hold.
    pub(crate) fn depot_bytes(&self) -> usize {
        self.budget.used()
    }

    /// Nanoseconds since the pool was built: the clock that stamps batches
    /// pushed to the depots.
    fn clock(&self) -> u64 {
        self.born.elapsed().as_nanos() as u64
    }
}
