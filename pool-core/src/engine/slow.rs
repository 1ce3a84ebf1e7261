//! Off the fast path: finding this thread's slot, misses and full caches
//! (one batch through the depot), and counts made outside the fast path.

use std::mem::{ManuallyDrop, MaybeUninit};
use std::sync::{Arc, Weak};

use super::depot::ClassDepot;
use super::exit::{self, ExitFlush};
use crate::outcome::{Discard, Source};
use crate::spine::{self, Engine, Slot};

impl<T: Send + 'static> Engine<T> {
    /// This thread's slot, claimed, or `None` when the thread is tearing
    /// down or its slot is still held by an exiting thread that had the
    /// same `thread_local` id. Makes it the fast pointer's target.
    #[inline]
    pub(super) fn slot<'a>(self: &'a Arc<Self>) -> Option<&'a Slot<T>> {
        match spine::fast(self.id, &**self) {
            Some(slot) => Some(slot),
            None => self.slot_slow(),
        }
    }

    #[cold]
    #[inline(never)]
    fn slot_slow<'a>(self: &'a Arc<Self>) -> Option<&'a Slot<T>> {
        // First: a thread tearing down never touches `thread_local` again.
        let token = exit::token()?;
        let slot = match self.slots.get() {
            Some(slot) => slot,
            None => self.slots.get_or(|| Slot::new(self.depots.len())),
        };
        if !slot.owned_by(token) {
            if !slot.claim(token) {
                // The previous owner of this id is still exiting: run
                // uncached until it releases the slot.
                return None;
            }
            let weak: Weak<dyn ExitFlush> = Arc::downgrade(self) as Weak<Engine<T>>;
            if !exit::register(weak, slot as *const Slot<T> as *const ()) {
                slot.release();
                return None;
            }
            // A claimed slot starts clean: its previous owner's flush left
            // it empty, and `epoch == u64::MAX` makes the first operation
            // catch up with the limits in force.
            debug_assert_eq!(slot.epoch(), u64::MAX);
        }
        spine::set_fast(self.id, slot);
        Some(slot)
    }

    /// A miss in this thread's cache: catch up, then a batch of `class`
    /// from its depot, then an idle buffer of a larger class of at most
    /// `most` bytes. Returns where the value came from (`New`: `dst` untouched)
    /// and the class that served it.
    #[cold]
    #[inline(never)]
    pub(super) fn take_slow(
        self: &Arc<Self>,
        class: usize,
        most: usize,
        dst: &mut MaybeUninit<T>,
    ) -> (Source, usize) {
        let Some(slot) = self.slot() else {
            return (Source::New, class);
        };
        // Dropped before anything is taken: a panicking `Drop` then leaves
        // no value half handed out.
        drop(self.catch_up(slot));
        match self.take_class(slot, class, dst) {
            Source::New => self.take_larger(slot, class, most, dst),
            source => (source, class),
        }
    }

    /// A value of `class` into `dst`: from `slot`'s cache, else a batch
    /// from the class's depot (`New`: none, `dst` untouched).
    fn take_class(&self, slot: &Slot<T>, class: usize, dst: &mut MaybeUninit<T>) -> Source {
        let c = slot.class(class);
        if c.pop_into(dst) {
            c.counters.local_hits.bump();
            return Source::Local;
        }
        if c.cap() == 0 {
            return Source::New;
        }
        self.take_batch(slot, class, dst)
    }

    /// A miss in `class` that its own depot cannot serve: a buffer of one
    /// of the next `fallback_classes` classes (`Hot::fallback`), from this
    /// thread's cache or that class's depot, so that an idle larger buffer
    /// serves the request instead of a new allocation (the pool's memory
    /// then follows demand across neighbouring classes instead of growing
    /// to each class's own peak), of at most `most` bytes. Returns the
    /// class served.
    fn take_larger(
        &self,
        slot: &Slot<T>,
        class: usize,
        most: usize,
        dst: &mut MaybeUninit<T>,
    ) -> (Source, usize) {
        let (_, max_index) = self.hot.range();
        let (depth, capped) = self.hot.fallback();
        let mut last = class.saturating_add(depth).min(max_index);
        let spacing = self.hot.spacing;
        // By default also at most 1.5x the missed class: that binds only
        // below `classes_per_doubling` bytes, where classes are a byte apart.
        let size = spacing.size(class);
        let most = if capped {
            most.min(size + size / 2)
        } else {
            most
        };
        while last > class && spacing.size(last) > most {
            last -= 1;
        }
        for j in class + 1..=last {
            match self.take_class(slot, j, dst) {
                Source::New => continue,
                source => return (source, j),
            }
        }
        (Source::New, class)
    }

    /// A batch of `class` from its depot into `slot`'s cache, one value of
    /// it into `dst`.
    fn take_batch(&self, slot: &Slot<T>, class: usize, dst: &mut MaybeUninit<T>) -> Source {
        let c = slot.class(class);
        match c.refill(&self.class_depot(class)) {
            Some(n) if c.pop_into(dst) => {
                c.counters.depot_hits.bump();
                c.counters.batches_taken.bump();
                c.counters.objects_taken.add(n as u64);
                Source::Depot
            }
            Some(n) => {
                // An empty batch: cannot happen (the depot refuses them),
                // but count it rather than lose track.
                c.counters.batches_taken.bump();
                c.counters.objects_taken.add(n as u64);
                Source::New
            }
            None => Source::New,
        }
    }

    /// A checkout that leaves this thread's cache holding no more than
    /// before: a value the cache holds is used, but a batch taken from the
    /// depot on a miss goes back at once, less the value handed out. For
    /// threads that should keep no cache. Returns where the value came from
    /// (`New`: `dst` untouched) and what the depot refused on the way back,
    /// for the caller to drop.
    #[cold]
    #[inline(never)]
    pub(super) fn take_uncached_slow(
        self: &Arc<Self>,
        class: usize,
        most: usize,
        dst: &mut MaybeUninit<T>,
    ) -> (Source, usize, Vec<T>) {
        let (source, served) = self.take_slow(class, most, dst);
        let mut dropped = Vec::new();
        if source == Source::Depot {
            if let Some(slot) = self.slot() {
                let c = slot.class(served);
                while c.len() > 0 {
                    self.spill_one(served, slot, &mut dropped);
                }
            }
        }
        (source, served, dropped)
    }

    #[cold]
    #[inline(never)]
    pub(super) fn put_slow(self: &Arc<Self>, class: usize, src: &ManuallyDrop<T>) -> bool {
        let Some(slot) = self.slot() else {
            self.orphans[class].returns.bump_shared();
            self.orphans[class].stale.bump_shared();
            return false;
        };
        let mut dropped = self.catch_up(slot);
        let c = slot.class(class);
        c.counters.returns.bump();
        if c.cap() == 0 {
            c.counters.stale.bump();
            drop(dropped);
            return false;
        }
        // Usually one batch; more after a refill with a batch pushed under a
        // larger, since-lowered bound.
        while c.len() >= c.cap() {
            self.spill_one(class, slot, &mut dropped);
        }
        if c.is_loose() && !c.is_open() {
            self.open_loose(slot, class, &mut dropped);
        }
        // The first return into this class reserves its stack (and opens a
        // large one).
        c.make_room();
        let kept = c.push_from(src);
        debug_assert!(kept, "a spilled cache has room");
        if !kept {
            c.counters.stale.bump();
        }
        drop(dropped);
        kept
    }

    /// Makes room among `slot`'s large classes for `opening` to open: the
    /// open ones (each holding at most one buffer) must fit the thread's
    /// bound for large classes together, or `opening` alone if it is
    /// larger. Closes the largest others, their buffers to the depot, until
    /// they do. Large classes are few (16 by default) and their buffers large, so
    /// this walk, only when a class opens, costs little beside the buffer.
    fn open_loose(&self, slot: &Slot<T>, opening: usize, dropped: &mut Vec<T>) {
        self.fit_loose_with(slot, Some(opening), dropped);
    }

    /// Closes whole large classes of `slot`, largest first, their buffers
    /// to the depot, until what they hold fits the large classes' byte
    /// bound (after a reconfigure made classes large or lowered the bound).
    pub(super) fn fit_loose(&self, slot: &Slot<T>, dropped: &mut Vec<T>) {
        self.fit_loose_with(slot, None, dropped);
    }

    /// [`fit_loose`](Self::fit_loose), counting `opening` (if any) as
    /// holding one buffer and never closing it.
    fn fit_loose_with(&self, slot: &Slot<T>, opening: Option<usize>, dropped: &mut Vec<T>) {
        let (first, bound) = slot.loose();
        let classes = slot.classes().len();
        let opening_bytes = opening.map_or(0, |o| self.class_bytes(o));
        let bound = bound.max(opening_bytes);
        loop {
            // What the large classes could hold (`opening` open).
            let mut bytes = opening_bytes;
            let mut largest = None;
            for i in (first..classes).filter(|&i| Some(i) != opening) {
                let c = slot.class(i);
                let n = c.len().max(c.is_open() as usize);
                if n > 0 {
                    bytes = bytes.saturating_add(n.saturating_mul(self.class_bytes(i)));
                    largest = Some(i);
                }
            }
            match largest {
                Some(i) if bytes > bound => {
                    let c = slot.class(i);
                    c.close();
                    while c.len() > 0 {
                        self.spill_one(i, slot, dropped);
                    }
                }
                _ => return,
            }
        }
    }

    /// The depot of `class` as a thread cache sees it.
    pub(super) fn class_depot(&self, class: usize) -> ClassDepot<'_, T> {
        ClassDepot {
            depot: &self.depots[class],
            budget: &self.budget,
            now: self.clock(),
        }
    }

    /// Counts a checkout served by a new value (after it was created, so
    /// that a panicking constructor leaves no checkout behind).
    /// `requested` is the bytes asked for (0 for generic pools).
    #[cold]
    pub(crate) fn count_miss(self: &Arc<Self>, class: usize, requested: usize) {
        match self.slot() {
            Some(slot) => {
                let c = &slot.class(class).counters;
                c.misses.bump();
                c.requested.add(requested as u64);
            }
            None => {
                self.orphans[class].misses.bump_shared();
                self.orphans[class].requested.add_shared(requested as u64);
            }
        }
    }

    /// Adds the bytes a checkout served off the fast path asked for.
    #[cold]
    pub(crate) fn count_requested(self: &Arc<Self>, class: usize, requested: usize) {
        if requested == 0 {
            return;
        }
        match self.slot() {
            Some(slot) => slot.class(class).counters.requested.add(requested as u64),
            None => self.orphans[class].requested.add_shared(requested as u64),
        }
    }

    /// Counts a return that the caller drops instead of putting back.
    #[cold]
    pub(crate) fn count_discard(self: &Arc<Self>, class: usize, why: Discard) {
        let own;
        let c = match self.slot() {
            Some(slot) => {
                own = true;
                &slot.class(class).counters
            }
            None => {
                own = false;
                &self.orphans[class]
            }
        };
        let bump = |counter: &super::counters::Counter| {
            if own {
                counter.bump()
            } else {
                counter.bump_shared()
            }
        };
        bump(&c.returns);
        match why {
            Discard::Rejected => bump(&c.rejected),
            Discard::Oversize => bump(&c.oversize),
            Discard::Shared => bump(&c.shared),
            Discard::Stale => bump(&c.stale),
            Discard::Unpooled => {}
        }
    }

    /// Counts a value taken out of the pool for good.
    #[cold]
    pub(crate) fn count_detach(self: &Arc<Self>, class: usize) {
        match self.slot() {
            Some(slot) => slot.class(class).counters.detached.bump(),
            None => self.orphans[class].detached.bump_shared(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::BufferConfig;

    /// The fallback's `pop_into` of another class's cache and depot, and
    /// the return of the borrowed buffer to its own class, here and on
    /// another thread (Miri runs this: `scripts/miri.sh`, `--lib`).
    #[test]
    fn a_miss_served_by_a_larger_class_comes_back_to_that_class() {
        let pool = BufferConfig::new()
            .min_class(64)
            .max_class(256)
            .build::<Vec<u8>>()
            .unwrap();
        // 64, 80, 96, 112, 128, ...: 96 and 112 are one and two classes up.
        drop(pool.checkout(96)); // into this thread's cache
        assert_eq!(pool.prewarm_class(112, 1), 1); // into the depot
        let mut from_cache = pool.checkout(80);
        assert_eq!(from_cache.capacity(), 96);
        let from_depot = pool.checkout(80);
        assert_eq!(from_depot.capacity(), 112);
        let new = pool.checkout(80);
        assert_eq!(new.capacity(), 80);
        from_cache.extend_from_slice(&[7; 90]);
        std::thread::scope(|s| {
            s.spawn(|| {
                drop(from_depot);
                // To the depot now, not at thread exit (which may still
                // run after the scope ends, beside the stats read below).
                pool.flush_thread();
            });
        });
        drop((from_cache, new));
        let stats = pool.stats();
        assert_eq!(stats.outstanding(), 0);
        let held = |size| {
            let c = stats.class(size).unwrap();
            c.retained_local + c.retained_depot
        };
        assert_eq!((held(80), held(96), held(112)), (1, 1, 1));
        // The next checkout of 96 bytes gets the one it lent, emptied.
        let again = pool.checkout(96);
        assert!(again.is_empty());
        assert_eq!(again.capacity(), 96);
    }
}
