//! Thread exit: handing a thread's caches back when the thread ends.
//!
//! `thread_local::ThreadLocal` does not drop a slot when its thread exits:
//! the slot passes to the next thread that gets the same id. So each thread
//! that claims a slot records it here (a `Weak` of the pool and the slot's
//! address), and a `std` thread-local whose destructor runs at thread exit
//! flushes every recorded slot to its pool's depot and releases it.
//!
//! Correct in every destructor order, whatever the thread did first:
//! - The registry records raw slot addresses, so the flush never calls into
//!   `thread_local` (whose own id guard may already be gone: then
//!   `ThreadLocal::get_or` would panic, and a panic in a TLS destructor
//!   aborts the process).
//! - A slot is released only by this flush. If `thread_local` frees this
//!   thread's id first and a new thread gets it, that thread finds the slot
//!   still claimed and runs uncached until the release (`Slot::claim`).
//! - Once the flush has begun the thread is *dead* to every pool: later
//!   operations (a guard dropped by a later TLS destructor, a value dropped
//!   by the flush itself) bypass the caches and are counted, never stored
//!   in a slot.
//! - Before the first registration the thread touches a `ThreadLocal` of
//!   its own, so that `thread_local`'s id guard is registered before this
//!   registry: where destructors run in reverse order of registration (every
//!   platform std supports today), the flush then runs while the thread still
//!   holds its id. The claim above keeps other orders correct too.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Weak;

#[cfg(not(loom))]
use thread_local::ThreadLocal;

/// A pool that can flush one of its slots that the current thread owns.
pub(crate) trait ExitFlush: Send + Sync {
    /// Flushes the slot at `slot` (an address recorded with `register`) to
    /// the depot under the limits in force, releases it, and drops what
    /// the depot refused.
    fn flush_exiting(&self, slot: *const ());
}

struct Registry(RefCell<Vec<(Weak<dyn ExitFlush>, *const ())>>);

impl Drop for Registry {
    fn drop(&mut self) {
        // `try_with`: destructor-free in std (always there), but loom's
        // stand-ins may be destroyed first.
        let _ = STATE.try_with(|s| s.set(DEAD));
        crate::spine::clear_fast();
        let entries = std::mem::take(self.0.get_mut());
        for (pool, slot) in entries {
            // A panic here (a value's `Drop`, run for what the depot
            // refused) would abort the process: catch it and go on with the
            // other pools. The panic hook has reported it already.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if let Some(pool) = pool.upgrade() {
                    pool.flush_exiting(slot);
                }
            }));
        }
    }
}

const FRESH: u8 = 0;
const LIVE: u8 = 1;
const DEAD: u8 = 2;

#[cfg(not(loom))]
std::thread_local! {
    static REGISTRY: Registry = const { Registry(RefCell::new(Vec::new())) };
    /// FRESH until this thread first uses a pool, LIVE after, DEAD from the
    /// moment its registry is destroyed. Destructor-free: readable at any
    /// point of teardown.
    static STATE: Cell<u8> = const { Cell::new(FRESH) };
    /// This thread's owner token for slot claims (never 0, never reused).
    static TOKEN: Cell<usize> = const { Cell::new(0) };
}

// Under loom, per modelled thread; loom runs their destructors when each
// modelled thread ends, as std does at thread exit.
#[cfg(loom)]
loom::thread_local! {
    static REGISTRY: Registry = Registry(RefCell::new(Vec::new()));
    static STATE: Cell<u8> = Cell::new(FRESH);
    static TOKEN: Cell<usize> = Cell::new(0);
}

/// Touched once per thread before the registry, to order destructors.
#[cfg(not(loom))]
static ORDER: ThreadLocal<()> = ThreadLocal::new();

static NEXT_TOKEN: AtomicUsize = AtomicUsize::new(1);

/// This thread's owner token, or `None` when the thread is tearing down
/// (or cannot register for exit), in which case no slot may be used.
#[inline]
pub(crate) fn token() -> Option<usize> {
    match STATE.try_with(Cell::get).unwrap_or(DEAD) {
        LIVE => TOKEN.try_with(Cell::get).ok(),
        FRESH => first_use(),
        _ => None,
    }
}

#[cold]
fn first_use() -> Option<usize> {
    // If `thread_local`'s id guard was already destroyed (this thread used
    // some `ThreadLocal` and is now tearing down), `get_or` panics: treat
    // that as teardown.
    #[cfg(not(loom))]
    let ordered = std::panic::catch_unwind(|| {
        ORDER.get_or(|| ());
    })
    .is_ok();
    #[cfg(loom)]
    let ordered = true;
    let registered = ordered && REGISTRY.try_with(|_| ()).is_ok();
    if !registered {
        let _ = STATE.try_with(|s| s.set(DEAD));
        return None;
    }
    // Relaxed: a unique number, it publishes nothing.
    let token = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
    let stored = TOKEN.try_with(|t| t.set(token)).is_ok();
    if !stored || STATE.try_with(|s| s.set(LIVE)).is_err() {
        return None;
    }
    Some(token)
}

/// Records a slot this thread has just claimed, to be flushed when the
/// thread exits. False when the thread is already tearing down (the caller
/// must then release the slot and not use it).
pub(crate) fn register(pool: Weak<dyn ExitFlush>, slot: *const ()) -> bool {
    REGISTRY
        .try_with(|registry| {
            let Ok(mut entries) = registry.0.try_borrow_mut() else {
                return false;
            };
            // Forget pools that have been dropped, so that a thread that sees
            // many short-lived pools does not accumulate records.
            entries.retain(|(p, _)| p.strong_count() > 0);
            entries.push((pool, slot));
            true
        })
        .unwrap_or(false)
}
