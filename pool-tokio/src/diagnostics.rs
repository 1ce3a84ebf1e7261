//! Leak diagnostics: where and when each outstanding buffer was checked
//! out, a report of those held too long, and a test helper that asserts
//! everything came back.
//!
//! Two switches, both off by default:
//!
//! - the cargo feature `diagnostics` compiles the bookkeeping in
//!   (`diagnostics/records.rs`). Without it, the guard's `Track` is a
//!   zero-sized type and every hook there is an empty `#[inline(always)]`
//!   function: guards are the same size and the fast path the same code as
//!   without this module.
//! - `Builder::diagnostics` turns it on for
//!   one pool. A pool built without it pays one branch on a plain field of
//!   the pool (`Option::is_some`, no atomic) per checkout and a test of the
//!   guard's own `Track` per return.
//!
//! When on, each checkout takes an id from one atomic counter, records the
//! checkout time, requested size, class, thread and (every Nth checkout, as
//! Netty's leak detector samples) a [`Backtrace`](std::backtrace::Backtrace) in a sharded mutex map;
//! the return removes the record. Records of buffers never returned (kept
//! by a `mem::forget`, a task that never ends, a cycle of `Arc`s) stay, and
//! `BytesPool::held_longer_than` lists them.
//!
//! [`BytesPool::assert_all_returned`] is always available: with the
//! bookkeeping on, its panic message is the report.

#[cfg(feature = "diagnostics")]
use std::time::Duration;

use crate::pool::BytesPool;

pub(crate) mod records;

#[cfg(feature = "diagnostics")]
pub use self::records::{Diagnostics, LeakReport, Outstanding};

impl BytesPool {
    /// Panics unless every buffer checked out of this pool has come back
    /// (or been [detached](crate::PooledBytes::detach)). A test helper: call
    /// it once the code under test is done.
    ///
    /// With the `diagnostics` feature and a pool built with
    /// `Builder::diagnostics`, the panic
    /// message lists each buffer still out: its size, age, the thread that
    /// checked it out and, when sampled, the backtrace of the checkout.
    /// Otherwise it gives the count and the pool's statistics.
    ///
    /// # Panics
    ///
    /// If any buffer is outstanding.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let buf = pool.checkout(100);
    /// drop(buf);
    /// pool.assert_all_returned();
    /// let kept = pool.checkout(100);
    /// assert!(std::panic::catch_unwind(|| pool.assert_all_returned()).is_err());
    /// # drop(kept);
    /// ```
    #[track_caller]
    pub fn assert_all_returned(&self) {
        let stats = self.stats();
        let outstanding = stats.outstanding();
        #[cfg(feature = "diagnostics")]
        if let Some(registry) = &self.handle.inner().diagnostics {
            let report = registry.report(std::time::Duration::ZERO);
            if outstanding > 0 || !report.entries.is_empty() {
                panic!(
                    "not every buffer came back to the pool: {outstanding} outstanding\n{report}"
                );
            }
            return;
        }
        if outstanding > 0 {
            panic!(
                "not every buffer came back to the pool: {outstanding} outstanding (build with \
                 the `diagnostics` feature and `Builder::diagnostics` to see where they were \
                 checked out)\n{stats}"
            );
        }
    }
}

#[cfg(feature = "diagnostics")]
impl BytesPool {
    /// The buffers of this pool checked out at least `threshold` ago
    /// and not yet returned, oldest first, with where they were checked
    /// out. Empty for a pool built without
    /// [`Builder::diagnostics`](crate::Builder::diagnostics).
    ///
    /// ```
    /// use std::time::Duration;
    /// use pool_tokio::{BytesPool, Diagnostics};
    /// let pool = BytesPool::builder().diagnostics(Diagnostics::new()).build()?;
    /// std::mem::forget(pool.checkout(100)); // a leak
    /// let report = pool.held_longer_than(Duration::ZERO);
    /// assert_eq!(report.entries.len(), 1);
    /// assert!(report.entries[0].backtrace.is_some());
    /// assert!(pool.held_longer_than(Duration::from_secs(3600)).is_empty());
    /// # Ok::<(), pool_tokio::BuildError>(())
    /// ```
    pub fn held_longer_than(&self, threshold: Duration) -> LeakReport {
        // Held buffers whose parts all dropped are back, as `stats` and
        // `assert_all_returned` see them.
        crate::pool::settle(self.handle.inner());
        match &self.handle.inner().diagnostics {
            Some(registry) => registry.report(threshold),
            None => LeakReport {
                threshold,
                entries: Vec::new(),
            },
        }
    }

    /// Whether this pool records its checkouts (built with
    /// [`Builder::diagnostics`](crate::Builder::diagnostics)).
    ///
    /// ```
    /// assert!(!pool_tokio::BytesPool::new().diagnostics_enabled());
    /// ```
    pub fn diagnostics_enabled(&self) -> bool {
        self.handle.inner().diagnostics.is_some()
    }
}
