//! The one place that chooses between `std` and `loom` synchronization types.
//!
//! The engine imports its atomics, locks, the cell behind each cache stack
//! and its `ThreadLocal` from here, so the depot protocol, the slot handoff
//! between an exiting thread and the next owner, and catch-up with trims,
//! decay ticks and reconfigures can be model-checked with
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

/// The owner of every thread's slot: `thread_local::ThreadLocal`, or under
/// loom a stand-in keyed by loom's thread ids (loom runs every modelled
/// thread on one OS thread, so a real thread-local would be shared).
#[cfg(not(loom))]
pub(crate) use thread_local::ThreadLocal;

#[cfg(loom)]
pub(crate) use self::stand_in::ThreadLocal;

#[cfg(loom)]
mod stand_in {
    /// `thread_local::ThreadLocal`'s API for loom models: one boxed value
    /// per loom thread, never moved or freed while the owner lives. A std
    /// mutex (not modelled: loom runs one thread at a time, so it never
    /// contends) keeps the stand-in itself out of the explored state space.
    pub(crate) struct ThreadLocal<T> {
        values: std::sync::Mutex<Vec<(loom::thread::ThreadId, Box<T>)>>,
    }

    impl<T> ThreadLocal<T> {
        pub(crate) fn new() -> Self {
            ThreadLocal {
                values: std::sync::Mutex::new(Vec::new()),
            }
        }

        pub(crate) fn get(&self) -> Option<&T> {
            let me = loom::thread::current().id();
            let values = self.values.lock().unwrap();
            let found = values.iter().find(|(id, _)| *id == me)?;
            let ptr: *const T = &*found.1;
            // SAFETY: the box is never moved or dropped before `self` is.
            Some(unsafe { &*ptr })
        }

        pub(crate) fn get_or(&self, create: impl FnOnce() -> T) -> &T {
            if let Some(v) = self.get() {
                return v;
            }
            let me = loom::thread::current().id();
            let boxed = Box::new(create());
            let ptr: *const T = &*boxed;
            self.values.lock().unwrap().push((me, boxed));
            // SAFETY: as in `get`.
            unsafe { &*ptr }
        }

        pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
            let values = self.values.lock().unwrap();
            let ptrs: Vec<*const T> = values.iter().map(|(_, b)| &**b as *const T).collect();
            // SAFETY: as in `get`.
            ptrs.into_iter().map(|p| unsafe { &*p })
        }
    }

    impl<T> std::fmt::Debug for ThreadLocal<T> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("ThreadLocal").finish_non_exhaustive()
        }
    }
}
