//! The per-thread cache: the only module with `unsafe`.
//!
//! A [`Local`] lives in a `thread_local::ThreadLocal` slot. Its cached objects
//! sit in an `UnsafeCell` that only the thread owning the slot touches, so a
//! checkout or a return is a `Vec::pop` or `Vec::push` with no lock, no
//! borrow flag and no atomic read-modify-write. Its counters are atomics
//! written only by the owner (a relaxed load and a relaxed store, which
//! compile to plain moves) so that `stats()` can sum them from any thread.
//!
//! [`pop_into`] and [`push_from`] move a value between a cache and a
//! guard's `Option<T>` slot as one whole-value copy. The safe equivalents
//! (`*dst = items.pop()`, `items.push(src.take().unwrap())`) first read the
//! `Option`'s niche word on its own and the rest separately; for a 32-byte
//! `BytesMut` that split load straddles the two 16-byte stores that wrote the
//! value a few instructions earlier, defeats store-to-load forwarding, and
//! cost about a quarter of the whole checkout + return (measured: 25.5 ns
//! down to 19.7 ns per 4 KiB checkout + 64-byte write + return, one thread,
//! same binary and run).

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
    pub(crate) depot_hits: Counter,
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

/// Moves the last value of `items` into `dst`, which must be `None`.
/// Returns false, leaving both untouched, when `items` is empty.
#[inline]
pub(crate) fn pop_into<T>(items: &mut Vec<T>, dst: &mut Option<T>) -> bool {
    let Some(last) = items.len().checked_sub(1) else {
        return false;
    };
    debug_assert!(dst.is_none(), "pop_into would drop a value in place");
    // SAFETY: `last < len`, so slot `last` holds an initialised value. After
    // `set_len(last)` the vector no longer owns it, so the read moves it out
    // exactly once.
    unsafe {
        items.set_len(last);
        *dst = Some(std::ptr::read(items.as_ptr().add(last)));
    }
    true
}

/// Moves the value in `src` onto the end of `items`, leaving `src` `None`.
/// Does nothing when `src` is `None`. May grow `items` (allocation only,
/// never user code).
#[inline]
pub(crate) fn push_from<T>(items: &mut Vec<T>, src: &mut Option<T>) {
    let Some(value) = src.as_ref() else {
        return;
    };
    items.reserve(1);
    let len = items.len();
    // SAFETY: `reserve(1)` left room for one element at index `len`. The
    // copy duplicates the value's bytes there and `set_len` makes the vector
    // its owner; writing `None` over `src` (`ptr::write` drops nothing)
    // then retires the other copy, so the value is owned exactly once.
    // `value` is not used after the copy.
    unsafe {
        std::ptr::copy_nonoverlapping(value as *const T, items.as_mut_ptr().add(len), 1);
        items.set_len(len + 1);
        std::ptr::write(src, None);
    }
}

#[cfg(test)]
mod tests {
    use super::{pop_into, push_from};

    #[test]
    fn values_move_between_cache_and_slot_exactly_once() {
        // Heap-owning values: under Miri a double drop, a leak or a use of
        // moved-out memory is reported.
        let mut items = Vec::new();
        let mut slot = Some(String::from("first"));
        push_from(&mut items, &mut slot);
        assert!(slot.is_none());
        push_from(&mut items, &mut slot); // `None`: nothing happens
        assert_eq!(items, ["first"]);
        slot = Some(String::from("second"));
        push_from(&mut items, &mut slot);
        assert!(pop_into(&mut items, &mut slot));
        assert_eq!(slot.take().as_deref(), Some("second"));
        assert!(pop_into(&mut items, &mut slot));
        assert_eq!(slot.as_deref(), Some("first"));
        assert!(items.is_empty());
        let mut other = None;
        assert!(!pop_into(&mut items, &mut other));
        assert!(other.is_none());
    }

    #[test]
    fn push_grows_a_full_vector() {
        let mut items: Vec<Vec<u8>> = Vec::with_capacity(1);
        for i in 0..10u8 {
            push_from(&mut items, &mut Some(vec![i; 3]));
        }
        assert_eq!(items.len(), 10);
        assert_eq!(items[9], [9, 9, 9]);
    }
}
