//! Flushing a thread's caches when the thread exits.
//!
//! `thread_local::ThreadLocal` does not drop a slot when its thread exits:
//! the slot passes to the next thread that gets the same id. Without this
//! module the objects cached by an exited thread would sit unused until then.
//! Each thread that touches a pool registers the pool here (a `Weak`, so the
//! registration does not keep the pool alive); a `std` thread-local whose
//! destructor runs at thread exit hands every registered pool's cache for
//! this thread back to the pool's global overflow.
//!
//! Ordering: `Shared::local_slow` calls `ThreadLocal::get_or` (which
//! registers `thread_local`'s own id guard) *before* registering here, and
//! thread-local destructors run in reverse order of registration, so this
//! destructor runs while the thread still owns its `ThreadLocal` slots.

use std::cell::RefCell;
use std::sync::Weak;

/// A pool that can hand the current thread's cache back.
pub(crate) trait FlushOnExit: Send + Sync {
    /// Moves whatever the current thread caches to the global overflow.
    fn flush_current_thread(&self);
}

struct Registry(RefCell<Vec<Weak<dyn FlushOnExit>>>);

impl Drop for Registry {
    fn drop(&mut self) {
        for pool in self.0.get_mut().drain(..) {
            if let Some(pool) = pool.upgrade() {
                pool.flush_current_thread();
            }
        }
    }
}

std::thread_local! {
    static REGISTRY: Registry = const { Registry(RefCell::new(Vec::new())) };
}

/// Registers `pool` for a flush when the current thread exits. Returns false
/// when the thread is already tearing down its thread-locals.
pub(crate) fn register(pool: Weak<dyn FlushOnExit>) -> bool {
    REGISTRY
        .try_with(|registry| {
            let Ok(mut pools) = registry.0.try_borrow_mut() else {
                return false;
            };
            // Forget pools that have been dropped, so a thread that sees many
            // short-lived pools does not accumulate registrations.
            pools.retain(|p| p.strong_count() > 0);
            if !pools
                .iter()
                .any(|p| p.as_ptr() as *const () == pool.as_ptr() as *const ())
            {
                pools.push(pool);
            }
            true
        })
        .unwrap_or(false)
}

/// Whether this thread's thread-locals are still usable (false while the
/// thread is tearing them down, when no new cache may be created).
pub(crate) fn alive() -> bool {
    REGISTRY.try_with(|_| ()).is_ok()
}
