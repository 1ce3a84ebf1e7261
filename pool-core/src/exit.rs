//! Flushing a thread's caches when the thread exits.
//!
//! `thread_local::ThreadLocal` does not drop a slot when its thread exits:
//! the slot passes to the next thread that gets the same id. Without this
//! module the objects cached by an exited thread would sit unused until then.
//! Each thread that touches a pool registers the pool here (a `Weak`, so the
//! registration does not keep the pool alive); a `std` thread-local whose
//! destructor runs at thread exit hands every registered pool's cache for
//! this thread back to the pool's depot.
//!
//! Ordering: `Shared::local_slow` calls `ThreadLocal::get_or` (which
//! registers `thread_local`'s own id guard) *before* registering here, and
//! thread-local destructors run in reverse order of registration, so this
//! destructor runs while the thread still owns its `ThreadLocal` slots.

use std::cell::{Cell, RefCell};
use std::sync::Weak;

/// A pool that can hand the current thread's cache back.
pub(crate) trait FlushOnExit: Send + Sync {
    /// Moves whatever the current thread caches to the depot.
    fn flush_current_thread(&self);
}

struct Registry(RefCell<Vec<Weak<dyn FlushOnExit>>>);

impl Drop for Registry {
    fn drop(&mut self) {
        // From here on, pool operations on this thread bypass the caches.
        let _ = EXITING.try_with(|e| e.set(true));
        for pool in self.0.get_mut().drain(..) {
            if let Some(pool) = pool.upgrade() {
                pool.flush_current_thread();
            }
        }
    }
}

std::thread_local! {
    static REGISTRY: Registry = const { Registry(RefCell::new(Vec::new())) };
    /// Set when this thread's registry is being destroyed. A `const`
    /// thread-local without a destructor: readable at any point of teardown,
    /// and reading it registers nothing.
    static EXITING: Cell<bool> = const { Cell::new(false) };
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

/// Whether this thread is tearing down its thread-locals, when no new cache
/// may be created. Must not touch `REGISTRY`: initialising it before
/// `thread_local`'s id guard would reverse the destructor order that
/// `flush_current_thread` relies on.
pub(crate) fn exiting() -> bool {
    EXITING.try_with(Cell::get).unwrap_or(true)
}
