//! The per-thread counters, defined once.
//!
//! `counters!` generates, from one list of names, the counters a thread
//! keeps per class ([`ClassCounters`]), their sums over threads
//! ([`Sums`]), and the code that adds one to the other. `stats.rs` derives
//! every public figure from [`Sums`].

use crate::loom::{AtomicU64, Ordering};

/// A monotonically increasing counter, written by one thread, read by any.
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only the thread that owns the counter may call this.
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        // Relaxed load + store instead of `fetch_add`: only the owning
        // thread writes this counter, so no update can be lost, and the store
        // is a plain `mov` rather than a locked instruction. Readers want a
        // snapshot, not a synchronization point.
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Adds one. Only the thread that owns the counter may call this.
    #[inline]
    pub(crate) fn bump(&self) {
        self.add(1);
    }

    /// Adds one from any thread (for the rare counts made where a thread
    /// has no cache of its own).
    pub(crate) fn bump_shared(&self) {
        self.add_shared(1);
    }

    /// Adds `n` from any thread, like [`bump_shared`](Self::bump_shared).
    pub(crate) fn add_shared(&self, n: u64) {
        // Relaxed: a count, it publishes nothing.
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// Per-thread, per-class counters.
        #[derive(Debug, Default)]
        pub(crate) struct ClassCounters {
            $($(#[$doc])* pub(crate) $name: Counter,)*
        }

        /// The counters of one class summed over threads, plus the depot's.
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub(crate) struct Sums {
            $($(#[$doc])* pub(crate) $name: u64,)*
            /// The depot's own counters for this class.
            pub(crate) depot: crate::engine::depot::DepotCounters,
        }

        impl Sums {
            pub(crate) fn add(&mut self, c: &ClassCounters) {
                $(self.$name += c.$name.get();)*
            }
        }
    };
}

// The first three are the fast path's: with `Class`'s `repr(C)` they
// share the stack's cache line.
counters! {
    /// Checkouts served from the thread's own cache.
    local_hits,
    /// Values handed back, kept or not.
    returns,
    /// Bytes asked for by this class's checkouts (the sum of their
    /// `min_capacity`; 0 for generic pools).
    requested,
    /// Checkouts served from a batch just taken from the depot.
    depot_hits,
    /// Checkouts that allocated (counted once the value exists).
    misses,
    /// Values taken out of the pool for good.
    detached,
    /// Returns refused by the reset or keep policy (or whose reset panicked).
    rejected,
    /// Returns that grew past their class or left it.
    oversize,
    /// Returns still sharing their memory with another handle.
    shared,
    /// Returns whose class is no longer retained, or made while the thread
    /// was tearing down.
    stale,
    /// Batches this thread pushed to the depot.
    batches_pushed,
    /// Objects in those batches.
    objects_pushed,
    /// Batches this thread took from the depot.
    batches_taken,
    /// Objects in those batches.
    objects_taken,
    /// Objects dropped from this thread's cache by trim, or by a lowered
    /// bound.
    trimmed,
}
