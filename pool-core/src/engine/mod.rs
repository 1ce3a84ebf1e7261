//! The engine behind both pool types: per-thread caches in front of one
//! bounded depot per class.
//!
//! The whole checkout/return fast path is in `spine.rs`: the `Engine`
//! type, its hot halves ([`Engine::take_or`], [`Engine::put_fast_if`],
//! [`Engine::put_fast`], [`Engine::guarded`]) and the cache they touch: one
//! thread-local load, one relaxed load of the pool's epoch, a length check
//! and a whole-value copy. Values cross the out-of-line paths by value
//! through `unmerged`, so that an inlined checkout-use-return keeps the
//! value in registers (no whole-value copy out of memory just written field
//! by field: no store-forwarding stall). Here: building an engine, the cold
//! halves the fast path calls ([`Engine::take_or_slow`],
//! [`Engine::put_slow_or_drop`]), [`Engine::put`] and the full returns
//! ([`Engine::put_or_drop`]), and the rest, out of line, one job per module:
//!
//! - `cache.rs`: the slow operations of a thread's slot and its stacks (the
//!   claim, refill, spill, limits); their `unsafe` (`Class::pop_into`,
//!   `slot_from_raw`).
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
//! The engine's `unsafe` outside `spine.rs`: here, `assume_init` of a
//! value a slow path wrote and the drops of returning values not kept;
//! `cache.rs`'s; one call in `upkeep.rs`.
//!
//! Values are opaque here: constructors, reset policies and `Buffer`
//! methods run in `pool.rs`, `buffer.rs` and `spine.rs`. Values the engine
//! must drop are collected and dropped after every counter is updated and
//! no lock is held, so a panicking `Drop` leaves the books exact.

pub(crate) mod cache;
mod catch_up;
pub(crate) mod counters;
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
use crate::spine::{CountOnUnwind, Engine, Gens, Hot};

use self::counters::ClassCounters;
use self::depot::{Budget, Depot};

pub(crate) use self::counters::Sums;

impl Hot {
    /// How many classes above a missed one may serve it, and whether they
    /// stop at 1.5x its size (read on misses only).
    pub(crate) fn fallback(&self) -> (usize, bool) {
        // Relaxed: settings read as hints; see `Hot::range`.
        (
            self.fallback.load(Ordering::Relaxed),
            self.fallback_capped.load(Ordering::Relaxed) != 0,
        )
    }

    fn set(&self, limits: &Limits) {
        // Relaxed: hints, as in `Hot::range`; the caches' own limits change through
        // `catch_up`, ordered by the generation counters.
        self.min_class
            .store(1 << limits.min_shift, Ordering::Relaxed);
        self.max_index.store(limits.max_index, Ordering::Relaxed);
        self.zero
            .store(limits.zero_on_return as usize, Ordering::Relaxed);
        self.fallback.store(limits.fallback, Ordering::Relaxed);
        self.fallback_capped
            .store(limits.fallback_capped as usize, Ordering::Relaxed);
    }
}

/// Pool ids, never reused, so that a stale fast pointer never matches.
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

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
            fallback: AtomicUsize::new(0),
            fallback_capped: AtomicUsize::new(0),
            spacing: limits.spacing,
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

    /// The rest of a return that [`Engine::put_fast_if`] accepted but found
    /// no room for: the slow put alone (the fast one was just tried), or a
    /// drop counted as stale. The caller never uses `src` again. Cold: a
    /// full or missing cache is the rare return, and its batch push stays
    /// out of the guard's inlined `Drop`.
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

    /// Everything but a hit in this thread's cache, for [`Engine::take_or`].
    /// Out of line so that the inlined hit stays a few instructions: finding
    /// or claiming the slot, catching up, a depot batch and `create` (user
    /// code) are all here, and the value comes back by value.
    #[cold]
    #[inline(never)]
    pub(crate) fn take_or_slow(
        self: &Arc<Self>,
        class: usize,
        requested: Option<usize>,
        most: usize,
        create: impl FnOnce() -> T,
    ) -> (T, Source, usize) {
        let mut dst = MaybeUninit::uninit();
        let (source, served) = self.take_slow(class, most, &mut dst);
        if source != Source::New {
            self.count_requested(served, requested.unwrap_or(0));
            // SAFETY: `take_slow` wrote a value into `dst` whenever it
            // returned a source other than `New` (`Class::pop_into`
            // returned true).
            return (unsafe { dst.assume_init() }, source, served);
        }
        let value = create();
        self.count_miss(class, requested.unwrap_or(0));
        (value, Source::New, class)
    }

    /// Checkout as a value, like [`Engine::take_or`], that leaves this
    /// thread's cache holding no more than before: a batch taken from the
    /// depot goes back at once, less the value handed out.
    pub(crate) fn take_or_uncached(
        self: &Arc<Self>,
        class: usize,
        requested: usize,
        most: usize,
        create: impl FnOnce() -> T,
    ) -> (T, Source, usize) {
        let mut dst = MaybeUninit::uninit();
        let (source, served, dropped) = self.take_uncached_slow(class, most, &mut dst);
        if source != Source::New {
            self.count_requested(served, requested);
            // SAFETY: `take_slow` wrote a value into `dst` whenever it
            // returned a source other than `New`.
            let value = unsafe { dst.assume_init() };
            if !dropped.is_empty() {
                // User `Drop`s run after the checkout was counted: a panic
                // in one drops `value` too, counted as a return.
                let unwind = CountOnUnwind {
                    engine: self,
                    class: served,
                    why: Discard::Rejected,
                };
                drop(dropped);
                unwind.disarm();
            }
            return (value, source, served);
        }
        debug_assert!(dropped.is_empty(), "nothing taken, nothing spilled");
        let value = create();
        self.count_miss(class, requested);
        (value, Source::New, class)
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
