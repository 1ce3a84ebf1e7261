//! The per-thread cache: the only module with `unsafe`.
//!
//! A [`Local`] lives in a `thread_local::ThreadLocal` slot. Its cached objects
//! sit in an `UnsafeCell` that only the thread owning the slot touches, so a
//! checkout or a return is a `Vec::pop` or `Vec::push` with no lock, no
//! borrow flag and no atomic read-modify-write. Its counters are atomics
//! written only by the owner (a relaxed load and a relaxed store, which
//! compile to plain moves) so that `stats()` can sum them from any thread.

use std::cell::UnsafeCell;

use crate::loom::{AtomicU64, Ordering};

/// A monotonically increasing counter written by one thread, read by any.
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        // Relaxed load + store instead of `fetch_add`: only the owning thread
        // writes this counter, so no update can be lost, and the store is a
        // plain `mov` rather than a locked instruction. Readers want a
        // snapshot, not a synchronization point.
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    #[inline]
    pub(crate) fn bump(&self) {
        self.add(1);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Per-thread, per-class counters. See `stats.rs` for what each one means.
#[derive(Debug, Default)]
pub(crate) struct ClassCounters {
    pub(crate) local_hits: Counter,
    pub(crate) global_hits: Counter,
    pub(crate) misses: Counter,
    pub(crate) returns: Counter,
    pub(crate) detached: Counter,
    pub(crate) rejected: Counter,
    pub(crate) oversize: Counter,
    pub(crate) shared: Counter,
    pub(crate) stale: Counter,
    pub(crate) batches_pushed: Counter,
    pub(crate) objects_pushed: Counter,
    pub(crate) batches_taken: Counter,
    pub(crate) objects_taken: Counter,
    pub(crate) trimmed: Counter,
}

/// One class's share of a thread's cache.
#[derive(Debug)]
pub(crate) struct ClassCache<T> {
    /// Cached objects; the top of the stack is the most recently returned.
    pub(crate) items: Vec<T>,
    /// An empty vessel for the next batch pushed to the depot.
    pub(crate) vessel: Option<Vec<T>>,
    /// Most objects kept; 0 when the class is outside the configured range.
    pub(crate) cap: usize,
    /// Objects moved to or from the depot at once (1 ..= cap).
    pub(crate) batch: usize,
    /// The depot's object bound for this class.
    pub(crate) global: usize,
}

impl<T> ClassCache<T> {
    const EMPTY: usize = 0;

    pub(crate) fn new() -> Self {
        ClassCache {
            items: Vec::new(),
            vessel: None,
            cap: Self::EMPTY,
            batch: 1,
            global: 0,
        }
    }
}

/// Everything in a thread's cache that only the owner touches.
#[derive(Debug)]
pub(crate) struct State<T> {
    /// The pool's epoch this cache last caught up with. `u64::MAX` forces the
    /// next operation onto the slow path (new slot, or slot inherited from an
    /// exited thread).
    pub(crate) epoch: u64,
    pub(crate) trim_gen: u64,
    pub(crate) decay_gen: u64,
    pub(crate) config_gen: u64,
    pub(crate) classes: Box<[ClassCache<T>]>,
}

/// A thread's cache and counters for one pool.
pub(crate) struct Local<T> {
    state: UnsafeCell<State<T>>,
    /// Set while `with` runs, to catch re-entrance in debug builds.
    #[cfg(debug_assertions)]
    busy: std::cell::Cell<bool>,
    pub(crate) counters: Box<[ClassCounters]>,
}

impl<T> std::fmt::Debug for Local<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local").finish_non_exhaustive()
    }
}

// SAFETY: `Local<T>` moves between threads only as a whole (when the
// `ThreadLocal` that holds it is dropped, or when its slot passes to a new
// thread after the previous owner exited, which `thread_local` orders
// through its id-allocation mutex). Sending it sends the `T`s it caches,
// hence `T: Send`.
unsafe impl<T: Send> Send for Local<T> {}

// SAFETY: shared references reach other threads only through
// `ThreadLocal::iter` (for statistics), and those threads read nothing but
// `counters`, which are atomics. The `UnsafeCell` state is reached only
// through `with`, whose contract limits it to the owning thread.
unsafe impl<T: Send> Sync for Local<T> {}

impl<T> Local<T> {
    pub(crate) fn new(classes: usize) -> Self {
        Local {
            state: UnsafeCell::new(State {
                epoch: u64::MAX,
                trim_gen: 0,
                decay_gen: 0,
                config_gen: u64::MAX,
                classes: (0..classes).map(|_| ClassCache::new()).collect(),
            }),
            #[cfg(debug_assertions)]
            busy: std::cell::Cell::new(false),
            counters: (0..classes).map(|_| ClassCounters::default()).collect(),
        }
    }

    /// Runs `f` with exclusive access to the cache.
    ///
    /// # Safety
    ///
    /// - The calling thread owns this slot: `self` came from
    ///   `ThreadLocal::get` or `ThreadLocal::get_or` on this thread.
    /// - `f` runs no user code (no constructor, reset policy, `Buffer`
    ///   method or destructor of `T`) and does not call `with` again, so no
    ///   second `&mut State` can exist while the first is alive. Objects to
    ///   drop are returned out of `f` and dropped by the caller.
    #[inline]
    pub(crate) unsafe fn with<R>(&self, f: impl FnOnce(&mut State<T>) -> R) -> R {
        #[cfg(debug_assertions)]
        {
            assert!(!self.busy.replace(true), "pool cache re-entered");
        }
        // SAFETY: by the caller's contract only this thread reaches the
        // state, and no other `&mut` to it is alive (checked in debug builds
        // by `busy`).
        let r = f(unsafe { &mut *self.state.get() });
        #[cfg(debug_assertions)]
        self.busy.set(false);
        r
    }
}
