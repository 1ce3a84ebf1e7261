//! The slow operations of a thread's cache for one pool: building a
//! [`Slot`] and its [`Class`] stacks, the claim and release, refills and
//! spills through the depot, new limits, trims. The types and their fast
//! operations (the stacks' cell, `Class::pop`, `Class::push_from`, the fast
//! pointer, `unsafe impl Sync for Slot`) are in `spine.rs`. The `unsafe`
//! here: `Class::pop_into` (the slow path's pop, straight into the
//! caller's place) and `slot_from_raw`.
//!
//! A [`Slot`] lives in the pool's `thread_local::ThreadLocal`, which owns
//! it. A thread *claims* a slot (an atomic owner word) before it uses it and
//! releases it when it exits; only the claiming thread touches the slot's
//! cells. The stacks are plain `Vec`s whose capacity is reserved on slow
//! paths, so a checkout or a return is a length check and one whole-value
//! copy: no lock, no borrow flag, no atomic read-modify-write, no
//! allocation. The counters are atomics written only by the owner, so that
//! `stats()` can sum them from any thread.
//!
//! The fast path reaches the slot through `spine::fast`: a destructor-free
//! `const` thread-local holding the id of the last pool this thread used and
//! a pointer to its slot. Reading it is a plain TLS load; it registers no
//! destructor, so it is readable at any point of thread teardown.
//!
//! Lifecycle of a slot:
//!
//! ```text
//!   free (owner 0) ──claim (CAS, Acquire)──▶ owned by thread t ──exit flush──▶ free
//!        ▲                                    │  fast path: only t
//!        └──── release (store 0, Release) ◀───┘  stats: counters only
//! ```

use std::cell::Cell;
use std::mem::MaybeUninit;

use crate::engine::counters::ClassCounters;
use crate::engine::depot::Transfer;
use crate::loom::{AtomicUsize, Ordering, UnsafeCell};
use crate::spine::{Class, Slot};

impl<T> Class<T> {
    fn new() -> Self {
        Class {
            items: UnsafeCell::new(Vec::new()),
            room: Cell::new(0),
            cap: Cell::new(0),
            counters: ClassCounters::default(),
            batch: Cell::new(1),
            vessel: Cell::new(None),
            loose: Cell::new(false),
        }
    }

    /// Moves the top value into `dst`. False, touching nothing, when empty.
    #[inline(always)]
    pub(crate) fn pop_into(&self, dst: &mut MaybeUninit<T>) -> bool {
        let items = self.items();
        let Some(top) = items.len().checked_sub(1) else {
            return false;
        };
        // SAFETY: `top < len`, so slot `top` holds a value. After
        // `set_len(top)` the vector no longer owns it, so the copy moves it
        // out exactly once (a whole-value copy, written straight into the
        // caller's slot).
        unsafe {
            items.set_len(top);
            std::ptr::copy_nonoverlapping(items.as_ptr().add(top), dst.as_mut_ptr(), 1);
        }
        true
    }

    pub(crate) fn len(&self) -> usize {
        self.items().len()
    }

    /// Reserves the stack's storage for `cap` values, if not yet done, so
    /// that the fast path can push. Slow path only (it may allocate).
    pub(crate) fn make_room(&self) {
        let cap = self.cap.get();
        if self.room.get() < cap {
            let items = self.items();
            items.reserve_exact(cap.saturating_sub(items.len()));
            self.room.set(cap);
        }
    }

    pub(crate) fn cap(&self) -> usize {
        self.cap.get()
    }

    /// Whether this is a large class (see `loose`).
    pub(crate) fn is_loose(&self) -> bool {
        self.loose.get()
    }

    /// Marks this class large or not; a large class starts closed. Call
    /// after [`set_limits`](Self::set_limits).
    pub(crate) fn set_loose(&self, loose: bool) {
        self.loose.set(loose);
        if loose {
            self.close();
        }
    }

    /// Whether the fast path may return into this class.
    pub(crate) fn is_open(&self) -> bool {
        self.room.get() > 0
    }

    /// Closes a large class to the fast path's returns.
    pub(crate) fn close(&self) {
        self.room.set(0);
    }

    pub(crate) fn batch(&self) -> usize {
        self.batch.get()
    }

    /// Applies new bounds and moves what no longer fits into `dropped`.
    /// A stack that has storage gets room for `cap` values at once (so the
    /// fast path never allocates); one that has none yet gets it at its
    /// first return ([`make_room`](Self::make_room)). Returns how many
    /// values were cut.
    pub(crate) fn set_limits(&self, cap: usize, batch: usize, dropped: &mut Vec<T>) -> usize {
        let items = self.items();
        let cut = items.len().saturating_sub(cap);
        dropped.extend(items.drain(..cut));
        if cap == 0 {
            *items = Vec::new();
            self.room.set(0);
        } else if items.capacity() == 0 {
            self.room.set(0);
        } else {
            items.reserve_exact(cap - items.len());
            self.room.set(cap);
        }
        self.cap.set(cap);
        self.batch.set(batch.clamp(1, cap.max(1)));
        self.vessel.set(None);
        cut
    }

    /// Moves every cached value into `dropped` (trim); keeps the storage.
    pub(crate) fn drain_into(&self, dropped: &mut Vec<T>) -> usize {
        let items = self.items();
        let n = items.len();
        dropped.append(items);
        self.vessel.set(None);
        n
    }

    /// Frees the spare vessel (an empty `Vec`: no user code).
    pub(crate) fn forget_vessel(&self) {
        self.vessel.set(None);
    }

    /// Fills the empty stack with a batch from `depot`. Returns the batch's
    /// size, or `None` when the depot had nothing.
    pub(crate) fn refill(&self, depot: &impl Transfer<T>) -> Option<usize> {
        let mut vessel = self.vessel.take();
        let taken = depot.take(&mut vessel);
        let Some(mut batch) = taken else {
            self.vessel.set(vessel);
            return None;
        };
        let items = self.items();
        let n = batch.len();
        // A batch pushed under a larger, since-lowered bound may not fit the
        // storage: growing it is a slow-path allocation, and the surplus
        // leaves again at the next spill.
        items.append(&mut batch);
        // The emptied batch is the next vessel (an empty `Vec` freed here
        // if one is left: no user code).
        self.vessel.set(Some(vessel.unwrap_or(batch)));
        Some(n)
    }

    /// Moves the oldest `batch` values (or all, if fewer) to `depot`; the
    /// most recently returned stay, warm in this core's cache. Returns how
    /// many left, and those the depot refused, for the caller to drop.
    pub(crate) fn spill(&self, depot: &impl Transfer<T>) -> (usize, Option<Vec<T>>) {
        let items = self.items();
        let n = self.batch.get().min(items.len());
        if n == 0 {
            return (0, None);
        }
        let mut vessel = self.vessel.take().unwrap_or_default();
        vessel.extend(items.drain(..n));
        match depot.push(vessel) {
            Ok(spare) => {
                self.vessel.set(spare);
                (n, None)
            }
            Err(rejected) => (n, Some(rejected)),
        }
    }
}

impl<T> std::fmt::Debug for Slot<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").finish_non_exhaustive()
    }
}

impl<T> Slot<T> {
    pub(crate) fn new(classes: usize) -> Self {
        Slot {
            epoch: Cell::new(u64::MAX),
            owner: AtomicUsize::new(0),
            trim_gen: Cell::new(0),
            decay_gen: Cell::new(0),
            config_gen: Cell::new(u64::MAX),
            classes: (0..classes).map(|_| Class::new()).collect(),
            first_loose: Cell::new(classes),
            loose_bytes: Cell::new(0),
        }
    }

    /// The index of the first large class and the most bytes this thread
    /// keeps in the large classes together, as last caught up.
    pub(crate) fn loose(&self) -> (usize, usize) {
        (self.first_loose.get(), self.loose_bytes.get())
    }

    pub(crate) fn set_loose(&self, first: usize, bytes: usize) {
        self.first_loose.set(first);
        self.loose_bytes.set(bytes);
    }

    pub(crate) fn set_epoch(&self, epoch: u64) {
        self.epoch.set(epoch);
    }

    pub(crate) fn classes(&self) -> &[Class<T>] {
        &self.classes
    }

    /// Claims a free slot for the thread with `token` (non-zero). True if
    /// this thread now owns it (or already did).
    pub(crate) fn claim(&self, token: usize) -> bool {
        // Relaxed for the cheap check: seeing our own token means we stored
        // it, on this thread.
        if self.owner.load(Ordering::Relaxed) == token {
            return true;
        }
        // Acquire: pairs with the Release in `release`, so everything the
        // previous owner did to the cells happens before we touch them.
        self.owner
            .compare_exchange(0, token, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Whether the thread with `token` owns this slot.
    pub(crate) fn owned_by(&self, token: usize) -> bool {
        self.owner.load(Ordering::Relaxed) == token
    }

    /// Whether no thread holds the slot (Acquire: pairs with `release`).
    #[cfg(loom)]
    pub(crate) fn is_released(&self) -> bool {
        self.owner.load(Ordering::Acquire) == 0
    }

    /// Gives the slot up. Its cells must be empty of values by now.
    pub(crate) fn release(&self) {
        debug_assert!(self.classes.iter().all(|c| c.len() == 0));
        self.epoch.set(u64::MAX);
        // Release: pairs with the Acquire in `claim`.
        self.owner.store(0, Ordering::Release);
    }
}

/// The slot behind a pointer that the exit registry stored.
///
/// # Safety
///
/// `ptr` came from `slot as *const Slot<T> as *const ()` for a slot of a
/// pool that is still alive, and the caller holds a reference to that pool
/// for `'a`.
pub(crate) unsafe fn slot_from_raw<'a, T>(ptr: *const ()) -> &'a Slot<T> {
    // SAFETY: by the caller's contract the pointer is a live `Slot<T>`.
    unsafe { &*(ptr as *const Slot<T>) }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::mem::ManuallyDrop;

    /// A depot that keeps everything: the local cache tested alone.
    #[derive(Default)]
    struct VecDepot(RefCell<Vec<Vec<String>>>, RefCell<Vec<Vec<String>>>);

    impl Transfer<String> for VecDepot {
        fn take(&self, vessel: &mut Option<Vec<String>>) -> Option<Vec<String>> {
            let batch = self.0.borrow_mut().pop()?;
            self.1.borrow_mut().extend(vessel.take());
            Some(batch)
        }
        fn push(&self, batch: Vec<String>) -> Result<Option<Vec<String>>, Vec<String>> {
            self.0.borrow_mut().push(batch);
            Ok(self.1.borrow_mut().pop())
        }
    }

    fn put(c: &Class<String>, s: &str) -> bool {
        let v = ManuallyDrop::new(s.to_string());
        let kept = c.push_from(&v);
        if !kept {
            drop(ManuallyDrop::into_inner(v));
        }
        kept
    }

    fn pop(c: &Class<String>) -> Option<String> {
        let mut dst = MaybeUninit::uninit();
        // SAFETY: `pop_into` initialised `dst` when it returned true.
        c.pop_into(&mut dst).then(|| unsafe { dst.assume_init() })
    }

    #[test]
    fn values_move_between_cache_and_caller_exactly_once() {
        // Heap-owning values: under Miri a double drop, a leak or a use of
        // moved-out memory is reported.
        let c = Class::new();
        let mut dropped = Vec::new();
        c.set_limits(2, 1, &mut dropped);
        assert!(!put(&c, "lazy"), "no storage before the first slow return");
        c.make_room();
        assert!(put(&c, "first"));
        assert!(put(&c, "second"));
        assert!(!put(&c, "third"), "full at cap");
        assert_eq!(pop(&c).as_deref(), Some("second"));
        assert_eq!(pop(&c).as_deref(), Some("first"));
        assert_eq!(pop(&c), None);
        assert!(dropped.is_empty());
    }

    #[test]
    fn spill_and_refill_move_whole_batches_and_recycle_vessels() {
        let c = Class::new();
        let depot = VecDepot::default();
        let mut dropped = Vec::new();
        c.set_limits(4, 2, &mut dropped);
        c.make_room();
        for s in ["a", "b", "c", "d"] {
            assert!(put(&c, s));
        }
        assert_eq!(c.spill(&depot), (2, None));
        assert_eq!(c.len(), 2);
        assert_eq!(depot.0.borrow()[0], ["a", "b"], "the oldest leave");
        assert_eq!(pop(&c).as_deref(), Some("d"));
        assert_eq!(pop(&c).as_deref(), Some("c"));
        assert_eq!(c.refill(&depot), Some(2));
        assert_eq!(pop(&c).as_deref(), Some("b"));
        // The emptied batch is now this cache's vessel: the next spill
        // allocates nothing new for it.
        assert!(put(&c, "e"));
        assert_eq!(c.spill(&depot), (2, None));
        assert_eq!(depot.0.borrow()[0], ["a", "e"]);
        assert_eq!(c.refill(&VecDepot::default()), None);
    }

    #[test]
    fn lowering_the_cap_cuts_the_oldest_and_storage_is_reserved() {
        let c = Class::new();
        let mut dropped = Vec::new();
        c.set_limits(8, 4, &mut dropped);
        assert_eq!(c.items().capacity(), 0, "reserved lazily");
        c.make_room();
        assert!(c.items().capacity() >= 8);
        for s in ["a", "b", "c"] {
            assert!(put(&c, s));
        }
        assert_eq!(c.set_limits(1, 4, &mut dropped), 2);
        assert_eq!(dropped, ["a", "b"]);
        assert_eq!(c.batch(), 1);
        assert_eq!(pop(&c).as_deref(), Some("c"));
        c.set_limits(0, 1, &mut dropped);
        assert!(!put(&c, "x"));
    }

    #[test]
    fn a_slot_is_owned_by_one_thread_at_a_time() {
        let s: Slot<String> = Slot::new(1);
        assert!(s.claim(7));
        assert!(s.claim(7));
        assert!(!s.claim(8));
        s.release();
        assert!(s.claim(8));
        assert!(s.owned_by(8));
    }
}
