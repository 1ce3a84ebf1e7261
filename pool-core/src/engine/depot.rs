//! The bounded depot ("depot") of one class.
//!
//! Threads never exchange single objects through the depot: a thread whose
//! cache is full pushes a whole batch (one `Vec<T>`) in one locked operation,
//! and a thread whose cache is empty takes a whole batch in one locked
//! operation. The lock is therefore taken once per `batch` checkouts or
//! returns at most, and never on the fast path.
//!
//! Bounds: at most `max_objects` objects per class (held by the depot itself,
//! so a bound lowered by `reconfigure` binds every push that follows), and,
//! shared by every class
//! of a pool, at most the [`Budget`]'s limit in bytes. A batch that does not
//! fit is handed back to the caller, which drops it outside the lock.
//!
//! No user code (constructors, reset policies, destructors of `T`) ever runs
//! while the lock is held: every operation that removes objects returns them
//! to the caller to drop.

use crossbeam_utils::{Backoff, CachePadded};

use crate::loom::{lock, AtomicUsize, Mutex, Ordering};

/// Empty batch vessels kept for reuse, per class, at least. A vessel is a
/// `Vec<T>` with the capacity of one batch. In a steady
/// producer-to-consumer flow every batch in flight needs one; with fewer
/// spares than that, consumers allocate vessels that producers free. So a
/// depot keeps as many spares as it could hold batches of the size it
/// serves (its object bound over the batch size, 129 for 1024 objects in
/// batches of 8), and never fewer than this.
const MIN_SPARE_VESSELS: usize = 64;

/// The first reservation of a depot's batch list (and the least it grows
/// by after): it doubles from there up to its bound, so a bound far above
/// use sizes nothing up front.
const MIN_GROWTH: usize = 64;

/// A byte budget shared by all depots of one pool.
#[derive(Debug)]
pub(crate) struct Budget {
    used: CachePadded<AtomicUsize>,
    limit: AtomicUsize,
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Self {
        Budget {
            used: CachePadded::new(AtomicUsize::new(0)),
            limit: AtomicUsize::new(limit),
        }
    }

    pub(crate) fn set_limit(&self, limit: usize) {
        // SeqCst: with the SeqCst load of `used` after it (`used`) and the
        // pair in `try_reserve`, either the caller sees a reservation made
        // under the old limit, or that reservation sees the new limit.
        self.limit.store(limit, Ordering::SeqCst);
    }

    pub(crate) fn used(&self) -> usize {
        // SeqCst: see `set_limit`.
        self.used.load(Ordering::SeqCst)
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Reserves `bytes`, or returns false when that would pass the limit.
    fn try_reserve(&self, bytes: usize) -> bool {
        if bytes == 0 {
            return true;
        }
        let limit = self.limit.load(Ordering::Relaxed);
        let backoff = Backoff::new();
        // Relaxed throughout: the budget only counts bytes; the objects
        // themselves move under the depot's mutex, which orders them.
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let Some(next) = used.checked_add(bytes).filter(|&n| n <= limit) else {
                return false;
            };
            match self
                .used
                .compare_exchange_weak(used, next, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => {
                    // A limit lowered meanwhile (see `set_limit`) refuses
                    // what it no longer admits.
                    if next > self.limit.load(Ordering::SeqCst) {
                        self.release(bytes);
                        return false;
                    }
                    return true;
                }
                Err(actual) => {
                    used = actual;
                    backoff.spin();
                }
            }
        }
    }

    fn release(&self, bytes: usize) {
        if bytes != 0 {
            let prev = self.used.fetch_sub(bytes, Ordering::Relaxed);
            debug_assert!(prev >= bytes, "budget released {bytes} of {prev}");
        }
    }
}

/// Counters kept by a depot, read by `stats()`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DepotCounters {
    /// Objects currently held.
    pub(crate) objects: u64,
    /// Batches accepted from threads (prewarm included).
    pub(crate) batches_in: u64,
    /// Batches handed to threads.
    pub(crate) batches_out: u64,
    /// Objects dropped because the depot or the byte budget was full.
    pub(crate) discarded_full: u64,
    /// Objects released by `trim` or idle decay.
    pub(crate) released: u64,
}

struct Inner<T> {
    full: Vec<Vec<T>>,
    spares: Vec<Vec<T>>,
    objects: usize,
    /// Most objects held (the class's `depot_capacity`).
    max_objects: usize,
    /// When each batch in `full` was pushed (nanoseconds on the pool's
    /// clock), in the same order. Takes pop the newest, so these never
    /// decrease from bottom to top, and the bottom batches are those no
    /// thread has needed for longest.
    stamps: Vec<u64>,
    batches_in: u64,
    batches_out: u64,
    discarded_full: u64,
    released: u64,
}

/// The depot of one class.
pub(crate) struct Depot<T> {
    /// Objects held. Written only under the lock; read without it as a hint
    /// so that a thread finding the depot empty does not take the lock.
    hint: CachePadded<AtomicUsize>,
    /// Bytes one object of this class accounts for (0 for untyped sizes).
    object_bytes: usize,
    inner: CachePadded<Mutex<Inner<T>>>,
}

impl<T> std::fmt::Debug for Depot<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Depot")
            .field("objects", &self.hint.load(Ordering::Relaxed))
            .field("object_bytes", &self.object_bytes)
            .finish_non_exhaustive()
    }
}

/// What a rejected push gives back: the batch, to drop outside the lock.
pub(crate) type Rejected<T> = Vec<T>;

impl<T> Depot<T> {
    pub(crate) fn new(object_bytes: usize, max_objects: usize) -> Self {
        Depot {
            hint: CachePadded::new(AtomicUsize::new(0)),
            object_bytes,
            inner: CachePadded::new(Mutex::new(Inner {
                full: Vec::new(),
                spares: Vec::new(),
                objects: 0,
                max_objects,
                stamps: Vec::new(),
                batches_in: 0,
                batches_out: 0,
                discarded_full: 0,
                released: 0,
            })),
        }
    }

    /// How many more objects fit now, by the object bound and `budget`'s
    /// bytes: a hint (a push may still race another).
    pub(crate) fn room(&self, budget: &Budget) -> usize {
        let inner = lock(&self.inner);
        let by_count = inner.max_objects.saturating_sub(inner.objects);
        let by_bytes = budget.limit().saturating_sub(budget.used()) / self.object_bytes.max(1);
        by_count.min(by_bytes)
    }

    /// Bytes one object of this class accounts for.
    pub(crate) fn object_bytes(&self) -> usize {
        self.object_bytes
    }

    /// Pushes a whole batch. On success returns an empty vessel for the
    /// caller's next batch, if one is spare. When the batch would pass
    /// the object bound or the byte budget, returns it untouched in `Err`.
    pub(crate) fn push(
        &self,
        batch: Vec<T>,
        budget: &Budget,
        now: u64,
    ) -> Result<Option<Vec<T>>, Rejected<T>> {
        if batch.is_empty() {
            return Ok(Some(batch));
        }
        let n = batch.len();
        let bytes = n.saturating_mul(self.object_bytes);
        let mut inner = lock(&self.inner);
        if inner.objects + n > inner.max_objects || !budget.try_reserve(bytes) {
            inner.discarded_full += n as u64;
            return Err(batch);
        }
        inner.objects += n;
        inner.batches_in += 1;
        if inner.full.len() == inner.full.capacity() {
            // Double, up to every batch of this size the bound admits: a
            // bound far above use (`depot_capacity` is only a cap) must not
            // size the bookkeeping up front (`usize::MAX` overflowed here;
            // 2^20 reserved 33 MiB for one 1 MiB buffer).
            let room = (inner.max_objects / n)
                .saturating_add(1)
                .saturating_sub(inner.full.len());
            let grow = room.min(inner.full.len().max(MIN_GROWTH));
            inner.full.reserve(grow);
            inner.stamps.reserve(grow);
        }
        inner.full.push(batch);
        // Clocks read on different threads may disagree a little; keep the
        // stamps ordered so that decay can cut from the bottom.
        let stamp = inner.stamps.last().map_or(now, |&last| last.max(now));
        inner.stamps.push(stamp);
        // Relaxed: a hint only; the batch itself is published by the mutex.
        self.hint.store(inner.objects, Ordering::Relaxed);
        Ok(inner.spares.pop())
    }

    /// Takes a whole batch, or `None` when the depot is empty. On success
    /// the caller's empty `vessel`, if any, is kept here for reuse (the
    /// emptied batch becomes the caller's next vessel).
    pub(crate) fn take(&self, budget: &Budget, vessel: &mut Option<Vec<T>>) -> Option<Vec<T>> {
        // Relaxed: reading a stale zero only means this checkout allocates
        // instead of reusing; a stale non-zero is checked under the lock.
        if self.hint.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut inner = lock(&self.inner);
        let batch = inner.full.pop()?;
        inner.stamps.pop();
        let n = batch.len();
        inner.objects -= n;
        inner.batches_out += 1;
        let spare_bound = (inner.max_objects / n.max(1))
            .saturating_add(1)
            .max(MIN_SPARE_VESSELS);
        if inner.spares.len() < spare_bound {
            if let Some(v) = vessel.take() {
                debug_assert!(v.is_empty(), "a vessel must be empty");
                if inner.spares.len() == inner.spares.capacity() {
                    // Double, up to every spare this depot may keep.
                    let room = spare_bound - inner.spares.len();
                    let grow = room.min(inner.spares.len().max(MIN_GROWTH));
                    inner.spares.reserve_exact(grow);
                }
                inner.spares.push(v);
            }
        }
        self.hint.store(inner.objects, Ordering::Relaxed);
        budget.release(n.saturating_mul(self.object_bytes));
        Some(batch)
    }

    /// Removes every batch (for `trim`). The caller drops them.
    pub(crate) fn drain(&self, budget: &Budget) -> Vec<Vec<T>> {
        let mut inner = lock(&self.inner);
        let n = inner.objects;
        inner.objects = 0;
        inner.released += n as u64;
        // The bookkeeping too (stamps, the spare vessels and their list):
        // plain data and empty `Vec`s, no user code. Sized for every batch
        // the bound admits, it grows again at the next high-water mark.
        inner.stamps = Vec::new();
        inner.spares = Vec::new();
        self.hint.store(0, Ordering::Relaxed);
        budget.release(n.saturating_mul(self.object_bytes));
        std::mem::take(&mut inner.full)
    }

    /// Idle decay: releases the batches pushed at or before `cutoff` (on
    /// the pool's clock), which no thread has taken since. The caller drops
    /// what is returned.
    pub(crate) fn decay(&self, budget: &Budget, cutoff: u64) -> Vec<Vec<T>> {
        let mut inner = lock(&self.inner);
        let old = inner.stamps.partition_point(|&stamp| stamp <= cutoff);
        inner.stamps.drain(..old);
        let out: Vec<Vec<T>> = inner.full.drain(..old).collect();
        let n: usize = out.iter().map(Vec::len).sum();
        inner.objects -= n;
        inner.released += n as u64;
        if inner.full.is_empty() {
            inner.spares.clear();
        }
        self.hint.store(inner.objects, Ordering::Relaxed);
        budget.release(n.saturating_mul(self.object_bytes));
        out
    }

    /// Sets the object bound, then releases whole batches until at most
    /// `max_objects` remain. Every push that takes the lock after this sees
    /// the new bound. The caller drops what is returned.
    pub(crate) fn shrink_to(&self, max_objects: usize, budget: &Budget) -> Vec<Vec<T>> {
        let mut inner = lock(&self.inner);
        inner.max_objects = max_objects;
        let mut out = Vec::new();
        while inner.objects > max_objects {
            let Some(batch) = inner.full.pop() else { break };
            inner.stamps.pop();
            inner.objects -= batch.len();
            inner.released += batch.len() as u64;
            budget.release(batch.len().saturating_mul(self.object_bytes));
            out.push(batch);
        }
        self.hint.store(inner.objects, Ordering::Relaxed);
        out
    }

    /// Releases one batch, if any (to bring the byte budget under a
    /// lowered limit). The caller drops it.
    pub(crate) fn release_one(&self, budget: &Budget) -> Option<Vec<T>> {
        let mut inner = lock(&self.inner);
        let batch = inner.full.pop()?;
        inner.stamps.pop();
        inner.objects -= batch.len();
        inner.released += batch.len() as u64;
        budget.release(batch.len().saturating_mul(self.object_bytes));
        self.hint.store(inner.objects, Ordering::Relaxed);
        Some(batch)
    }

    /// Waits for a push in progress to finish (takes and drops the lock),
    /// so that a batch admitted under an older byte limit is visible.
    pub(crate) fn settle(&self) {
        drop(lock(&self.inner));
    }

    pub(crate) fn counters(&self) -> DepotCounters {
        let inner = lock(&self.inner);
        DepotCounters {
            objects: inner.objects as u64,
            batches_in: inner.batches_in,
            batches_out: inner.batches_out,
            discarded_full: inner.discarded_full,
            released: inner.released,
        }
    }
}

/// Where a cache sends full batches and takes them from: the depot of one
/// class with the bounds in force. A trait so that the cache can be tested
/// alone (see the tests in `cache.rs`).
pub(crate) trait Transfer<T> {
    /// Takes a batch. On success the caller's empty `vessel`, if any, may be
    /// kept for reuse (taken out of the `Option`).
    fn take(&self, vessel: &mut Option<Vec<T>>) -> Option<Vec<T>>;
    /// Offers a full batch. On success returns an empty vessel for the
    /// next batch, if one is spare; on refusal the batch comes back.
    fn push(&self, batch: Vec<T>) -> Result<Option<Vec<T>>, Vec<T>>;
}

/// One class's depot with the bounds in force: what a thread cache pushes
/// batches to and takes them from.
pub(crate) struct ClassDepot<'a, T> {
    pub(crate) depot: &'a Depot<T>,
    pub(crate) budget: &'a Budget,
    pub(crate) now: u64,
}

impl<T> Transfer<T> for ClassDepot<'_, T> {
    fn take(&self, vessel: &mut Option<Vec<T>>) -> Option<Vec<T>> {
        self.depot.take(self.budget, vessel)
    }

    fn push(&self, batch: Vec<T>) -> Result<Option<Vec<T>>, Vec<T>> {
        self.depot.push(batch, self.budget, self.now)
    }
}
