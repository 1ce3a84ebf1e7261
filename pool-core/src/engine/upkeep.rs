//! Pool-wide operations (trim, idle decay, reconfigure, prewarm,
//! statistics) and the flushes of a thread's slot (on request and at
//! thread exit).

use std::sync::Arc;

use super::cache;
use super::exit::ExitFlush;
use super::Sums;
use crate::config::limits::Limits;
use crate::loom::{lock, AtomicU64, Ordering};
use crate::spine::{Engine, Slot};

/// Decay steps per decay interval: a batch is freed between one interval
/// and a quarter more after the last thread stopped needing it.
const DECAY_STEPS: u64 = 4;

/// Values an operation released, to be dropped by the caller once it holds
/// no lock (a batch per entry).
pub(crate) type Released<T> = Vec<Vec<T>>;

impl<T: Send + 'static> Engine<T> {
    fn bump(&self, which: &AtomicU64) {
        // Release: pairs with the Acquire loads in `catch_up`.
        which.fetch_add(1, Ordering::Release);
        self.gens.epoch.fetch_add(1, Ordering::Release);
    }

    /// Catches this thread's slot up, if it can have one.
    fn catch_up_current(self: &Arc<Self>) -> Vec<T> {
        match self.slot() {
            Some(slot) => self.catch_up(slot),
            None => Vec::new(),
        }
    }

    /// Releases everything the depots hold, and asks every thread to drop
    /// its cache at its next checkout or slow-path return (this thread's at once). Returns
    /// `(objects, bytes)` released from the depots.
    pub(crate) fn trim(self: &Arc<Self>) -> (usize, usize) {
        self.bump(&self.gens.trim);
        let mut released = Vec::new();
        let (mut objects, mut bytes) = (0, 0);
        for (i, depot) in self.depots.iter().enumerate() {
            for batch in depot.drain(&self.budget) {
                objects += batch.len();
                bytes += batch.len().saturating_mul(self.class_bytes(i));
                released.push(batch);
            }
        }
        let mine = self.catch_up_current();
        drop(released);
        drop(mine);
        (objects, bytes)
    }

    /// Idle decay, at most every quarter of the decay interval: frees the
    /// batches that have sat in a depot, untaken, for a whole interval, and
    /// asks every thread to move its surplus (beyond one batch) to the
    /// depots at its next checkout or slow-path return, where it ages the same way. Then
    /// catches this thread up. Returns true if this call ran a decay step.
    pub(crate) fn maintain(self: &Arc<Self>) -> bool {
        let now = self.clock();
        // Relaxed: the deadline only elects which caller runs the step; the
        // compare-exchange below makes that election exact.
        let due = self.decay_due.load(Ordering::Relaxed);
        let mut ticked = false;
        let mut released = Vec::new();
        if now >= due {
            let period = self.limits().decay_interval.as_nanos() as u64;
            if self
                .decay_due
                .compare_exchange(
                    due,
                    now.saturating_add(period / DECAY_STEPS),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                let cutoff = now.saturating_sub(period);
                for depot in self.depots.iter() {
                    released.extend(depot.decay(&self.budget, cutoff));
                }
                self.bump(&self.gens.decay);
                ticked = true;
            }
        }
        let mine = self.catch_up_current();
        drop(released);
        drop(mine);
        ticked
    }

    /// Installs new limits: depot contents beyond the new bounds are
    /// released; thread caches adapt at their next checkout or slow-path return (this thread's
    /// at once). Runs no user code: the caller drops what is returned, after
    /// releasing its own locks.
    pub(crate) fn reconfigure(self: &Arc<Self>, limits: Limits) -> (Released<T>, Vec<T>) {
        let mut released = Vec::new();
        {
            let mut current = lock(&self.limits);
            self.budget.set_limit(limits.depot_bytes);
            self.hot.set(&limits);
            for (i, depot) in self.depots.iter().enumerate() {
                released.extend(depot.shrink_to(limits.classes[i].depot_objects, &self.budget));
            }
            // A lowered byte bound: first let every push in progress finish
            // (one admitted under the old limit then shows in its depot;
            // any later one sees the new limit), then release whole
            // batches, largest classes first, until the depots fit it.
            for depot in self.depots.iter() {
                depot.settle();
            }
            for depot in self.depots.iter().rev() {
                while self.budget.used() > self.budget.limit() {
                    match depot.release_one(&self.budget) {
                        Some(batch) => released.push(batch),
                        None => break,
                    }
                }
            }
            // A shorter decay interval takes effect within its own quarter,
            // not at the deadline the old one set. Relaxed, as `maintain`.
            let step = limits.decay_interval.as_nanos() as u64 / DECAY_STEPS;
            self.decay_due
                .fetch_min(self.clock().saturating_add(step), Ordering::Relaxed);
            *current = Arc::new(limits);
        }
        self.bump(&self.gens.config);
        let mine = self.catch_up_current();
        (released, mine)
    }

    /// Stores up to `count` values of `class`, made by `make`, in the depot.
    /// Returns how many were stored. `make` is user code: it runs with no
    /// lock held, one batch at a time.
    pub(crate) fn prewarm(&self, class: usize, count: usize, mut make: impl FnMut() -> T) -> usize {
        let limits = self.limits();
        let batch = limits.classes[class].batch.max(1);
        let mut stored = 0;
        while stored < count {
            // Sized to the room left: a batch the depot would refuse is
            // made for nothing and counted as a discard (a class it never
            // retains has none).
            let room = self.depots[class].room(&self.budget);
            let n = batch.min(count - stored).min(room);
            if n == 0 {
                break;
            }
            let items: Vec<T> = (0..n).map(|_| make()).collect();
            match self.depots[class].push(items, &self.budget, self.clock()) {
                Ok(_) => stored += n,
                Err(rejected) => {
                    drop(rejected);
                    break;
                }
            }
        }
        stored
    }

    /// Sums every thread's counters and the depot's, per class.
    pub(crate) fn sums(&self) -> Vec<Sums> {
        let mut sums = vec![Sums::default(); self.classes()];
        for slot in self.slots.iter() {
            for (s, c) in sums.iter_mut().zip(slot.classes()) {
                s.add(&c.counters);
            }
        }
        for (i, s) in sums.iter_mut().enumerate() {
            s.depot = self.depots[i].counters();
            s.add(&self.orphans[i]);
        }
        sums
    }

    /// Slots no thread holds (read with Acquire: pairs with the Release of
    /// `Slot::release`, so a thread's exit flush happens before what the
    /// caller reads next). For loom models, whose `join` returns before the
    /// joined thread's thread-local destructors have run.
    #[cfg(loom)]
    pub(crate) fn released_slots(&self) -> usize {
        self.slots.iter().filter(|s| s.is_released()).count()
    }

    /// This thread's cache of `class` as its next slow-path operation
    /// leaves it once caught up: `(cached, cap, batch)`, or `None` when the
    /// fast pointer does not lead to a slot of this pool. For loom models,
    /// which check what a trim, a decay tick or a reconfigure asked of the
    /// owner.
    #[cfg(loom)]
    pub(crate) fn caught_up(&self, class: usize) -> Option<(usize, usize, usize)> {
        let slot = crate::spine::fast(self.id, self)?;
        drop(self.catch_up(slot));
        let c = slot.class(class);
        Some((c.len(), c.cap(), c.batch()))
    }

    /// Moves everything `slot` caches to the depots under the limits in
    /// force. Returns what must be dropped (refused, or trimmed).
    /// Keeps each class's spare vessel unless `exiting`, so that a thread
    /// which flushes at every park allocates no new one at its next spill.
    fn flush_slot(&self, slot: &Slot<T>, exiting: bool) -> Vec<T> {
        let mut dropped = self.catch_up(slot);
        for (i, c) in slot.classes().iter().enumerate() {
            while c.len() > 0 {
                self.spill_one(i, slot, &mut dropped);
            }
            if exiting {
                c.forget_vessel();
            }
        }
        dropped
    }

    /// Hands this thread's cache to the depots now.
    pub(crate) fn flush_thread(self: &Arc<Self>) {
        if let Some(slot) = self.slot() {
            drop(self.flush_slot(slot, false));
        }
    }
}

impl<T: Send + 'static> ExitFlush for Engine<T> {
    fn flush_exiting(&self, slot: *const ()) {
        // SAFETY: the exit registry recorded `slot` as this thread's claimed
        // slot of this pool, and the pool is alive (`&self`).
        let slot: &Slot<T> = unsafe { cache::slot_from_raw(slot) };
        let dropped = self.flush_slot(slot, true);
        slot.release();
        drop(dropped);
    }
}
