//! The one place that chooses between `std` and `loom` synchronization types.
//!
//! The engine imports its atomics, locks and the cell behind each cache
//! stack from here, so the depot protocol and the slot handoff between an
//! exiting thread and the next owner can be model-checked with
//! `RUSTFLAGS="--cfg loom"` (`scripts/loom.sh`). Counters of the exit
//! registry and pool ids (plain unique numbers) use `std` atomics directly.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, ignoring poisoning.
///
/// No code that can panic (user code included) ever runs while one of the
/// pool's locks is held, so a poisoned lock still guards consistent data.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    #[cfg(loom)]
    {
        mutex.lock().unwrap()
    }
    #[cfg(not(loom))]
    {
        mutex
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A cell whose accesses loom tracks under `cfg(loom)`; a plain
/// `std::cell::UnsafeCell` otherwise.
#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

/// A cell whose accesses loom tracks under `cfg(loom)`; a plain
/// `std::cell::UnsafeCell` otherwise.
#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        UnsafeCell(std::cell::UnsafeCell::new(value))
    }

    /// Runs `f` with a raw pointer to the value (loom records a write).
    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}
