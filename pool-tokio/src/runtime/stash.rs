//! The per-thread stash of a built pool's references: the strong counts
//! of its `Arc` that guards gave up when they were returned on this
//! thread, handed to the next guards checked out here. A checkout and a
//! return on one thread then touch no shared reference count: a guard
//! takes its reference from the stash and gives it back there. A guard
//! returned on another thread than it was checked out on still clones the
//! `Arc` at its checkout (the checking-out thread's stash runs dry) and
//! drops it at its return (the returning thread's is full), as does one
//! returned while the stash holds another pool's counts, or after its
//! pool closed.
//!
//! A leaf module, generic over the `Arc`'s contents: `pool.rs` hands it
//! `Arc<Inner>`s, and says whether the pool is open (a user's `BytesPool`
//! handle of it lives; the background threads' handles are not counted).
//!
//! What the stash holds keeps the pool alive (the counts are real strong
//! counts), so it is given up: at thread exit; when a guard of another
//! pool is returned here; when a guard of a closed pool is returned here;
//! by `BytesPool::flush_thread` (the park and stop hooks, the decay
//! thread's flush tasks); and by the drop of the pool's last handle on
//! this thread.

use std::cell::Cell;
use std::mem;
use std::sync::Arc;

/// References kept at most per thread: beyond it, a returned guard drops
/// its own (a thread that only receives buffers checked out elsewhere).
pub(crate) const MOST: usize = 64;

struct Stash {
    /// The `Arc` data pointer whose strong counts are held here; compared,
    /// never dereferenced (it may dangle while `held` is 0).
    ptr: Cell<*const ()>,
    held: Cell<usize>,
    /// Drops `n` strong counts of the `Arc` at a pointer (monomorphised
    /// for the `Arc`'s type when the stash took its first count).
    release: Cell<unsafe fn(*const (), usize)>,
    /// This thread's exit already gave the stash up: hold nothing more.
    closed: Cell<bool>,
}

/// A `release` for a stash that holds nothing.
unsafe fn release_none(_: *const (), _: usize) {}

/// Drops `n` strong counts of the `Arc<T>` whose data pointer is `ptr`.
///
/// # Safety
///
/// The caller owns `n` strong counts of that `Arc<T>`.
unsafe fn release_arcs<T>(ptr: *const (), n: usize) {
    for _ in 0..n {
        // SAFETY: the caller owns `n` strong counts of the `Arc<T>` at
        // `ptr`; each pass gives up one of them.
        unsafe { Arc::decrement_strong_count(ptr.cast::<T>()) };
    }
}

thread_local! {
    /// Destructor-free, so reachable in every thread-local destructor.
    static STASH: Stash = const {
        Stash {
            ptr: Cell::new(std::ptr::null()),
            held: Cell::new(0),
            release: Cell::new(release_none),
            closed: Cell::new(false),
        }
    };
    /// Registered on the stash's first count: gives it up at thread exit.
    static AT_EXIT: AtExit = const { AtExit };
}

struct AtExit;

impl Drop for AtExit {
    fn drop(&mut self) {
        let _ = STASH.try_with(|s| {
            s.closed.set(true);
            give_up_all(s);
        });
    }
}

/// Empties the stash, then drops what it held. The stash is consistent
/// before the drop, which may run a pool's destructor (and guards' drops
/// that come back here).
fn give_up_all(s: &Stash) {
    let (ptr, held, release) = (s.ptr.get(), s.held.replace(0), s.release.get());
    // SAFETY: the stash owned `held` strong counts of the `Arc` at `ptr`,
    // of the type `release` was made for; they are no longer in it.
    unsafe { release(ptr, held) };
}

/// A strong count of `arc` for a guard: one the stash holds, else a clone.
/// The stash's last count stays (until the stash is given up), so that
/// `ptr` always names a live allocation of the type `release` was made for
/// while the stash is in use: a checkout and return on one thread take it
/// from 2 counts to 1 and back, never through 0.
#[inline(always)]
pub(crate) fn acquire<T>(arc: &Arc<T>) -> Arc<T> {
    let ptr = Arc::as_ptr(arc);
    let took = STASH.try_with(|s| {
        let held = s.held.get();
        let mine = s.ptr.get() == ptr.cast::<()>() && held > 1;
        if mine {
            s.held.set(held - 1);
        }
        mine
    });
    if matches!(took, Ok(true)) {
        // SAFETY: the stash held a strong count of the `Arc` at `ptr` (the
        // same pointer, with counts held: the same live allocation, `arc`'s),
        // and it now moves to the returned `Arc`.
        unsafe { Arc::from_raw(ptr) }
    } else {
        Arc::clone(arc)
    }
}

/// Gives up a guard's strong count: into the stash when it holds `arc`'s
/// pool, has room and the pool is `open` (a handle of it lives), else out
/// of line.
#[inline(always)]
pub(crate) fn give_up<T>(arc: Arc<T>, open: bool) {
    let ptr = Arc::as_ptr(&arc).cast::<()>();
    let kept = STASH.try_with(|s| {
        let held = s.held.get();
        let mine = open && s.ptr.get() == ptr && held != 0 && held < MOST;
        if mine {
            s.held.set(held + 1);
        }
        mine
    });
    if matches!(kept, Ok(true)) {
        // The count now belongs to the stash.
        mem::forget(arc);
    } else {
        give_up_cold(arc, open);
    }
}

/// The stash is empty, holds another pool, or is full, or the pool is
/// closed: an empty stash, or one of another pool, takes the count of an
/// open pool (giving up the other pool's); a full one, or one whose thread
/// is exiting, lets the count drop; a closed pool's count drops and so do
/// the stash's counts of it.
#[cold]
#[inline(never)]
fn give_up_cold<T>(arc: Arc<T>, open: bool) {
    let ptr = Arc::as_ptr(&arc).cast::<()>();
    if !open {
        give_up_pool(&arc);
        return;
    }
    let taken = STASH.try_with(|s| {
        let full = s.ptr.get() == ptr && s.held.get() != 0;
        // The exit destructor gives the stash up; without it (the thread
        // is tearing down) the stash takes nothing.
        if full || s.closed.get() || AT_EXIT.try_with(|_| ()).is_err() {
            return None;
        }
        Some((
            s.ptr.replace(ptr),
            s.held.replace(1),
            s.release.replace(release_arcs::<T>),
        ))
    });
    match taken {
        Ok(Some((old, old_held, old_release))) => {
            // The count moved to the stash, which is consistent again; now
            // the other pool's counts go (maybe its last references: its
            // destructor may run and come back here).
            mem::forget(arc);
            // SAFETY: the stash owned `old_held` strong counts of the `Arc`
            // at `old`, of the type `old_release` was made for; they left it
            // above.
            unsafe { old_release(old, old_held) };
        }
        _ => drop(arc),
    }
}

/// Gives up what the stash holds, whichever pool's (a worker about to
/// park, or stopping).
pub(crate) fn give_up_here() {
    let _ = STASH.try_with(give_up_all);
}

/// Gives up what the stash holds if it holds `arc`'s pool's references.
pub(crate) fn give_up_pool<T>(arc: &Arc<T>) {
    let ptr = Arc::as_ptr(arc).cast::<()>();
    let _ = STASH.try_with(|s| {
        if s.ptr.get() == ptr {
            give_up_all(s);
        }
    });
}

/// How many references of `arc`'s pool this thread's stash holds.
#[cfg(test)]
pub(crate) fn held<T>(arc: &Arc<T>) -> usize {
    let ptr = Arc::as_ptr(arc).cast::<()>();
    STASH
        .try_with(|s| if s.ptr.get() == ptr { s.held.get() } else { 0 })
        .unwrap_or(0)
}

/// The stash alone, on `Arc`s of its own (run under Miri by
/// `scripts/miri.sh`: its `unsafe` moves strong counts in and out).
#[cfg(test)]
mod tests {
    use std::sync::{Arc, Weak};

    use super::{acquire, give_up, give_up_pool, held, MOST};

    /// A checkout and return on one thread: after the first, no clone.
    #[test]
    fn a_return_and_checkout_on_one_thread_reuse_one_count() {
        let pool = Arc::new(String::from("pool"));
        for _ in 0..100 {
            let guard = acquire(&pool);
            assert_eq!(&*guard, "pool");
            give_up(guard, true);
        }
        // The handle, the stash's kept count, and the one the loop passes
        // back and forth.
        assert_eq!((held(&pool), Arc::strong_count(&pool)), (2, 3));
        give_up_pool(&pool);
        assert_eq!((held(&pool), Arc::strong_count(&pool)), (0, 1));
    }

    /// Guards returned here but checked out elsewhere fill the stash up to
    /// `MOST`; the rest drop their counts.
    #[test]
    fn the_stash_holds_at_most_most_counts() {
        let pool = Arc::new(7u64);
        let guards: Vec<_> = (0..MOST + 10).map(|_| Arc::clone(&pool)).collect();
        guards.into_iter().for_each(|g| give_up(g, true));
        assert_eq!((held(&pool), Arc::strong_count(&pool)), (MOST, MOST + 1));
        // Checkouts take them back, all but the last.
        let taken: Vec<_> = (0..MOST + 10).map(|_| acquire(&pool)).collect();
        assert_eq!(held(&pool), 1);
        assert_eq!(Arc::strong_count(&pool), MOST + 11 + 1);
        drop(taken);
        give_up_pool(&pool);
        assert_eq!(Arc::strong_count(&pool), 1);
    }

    /// A guard of another pool takes the stash over: the first pool's
    /// counts go, and a pool whose handles are gone is freed then.
    #[test]
    fn another_pools_guard_gives_the_first_pools_counts_up() {
        let first = Arc::new(vec![1u8; 16]);
        let weak: Weak<Vec<u8>> = Arc::downgrade(&first);
        give_up(acquire(&first), true);
        give_up(acquire(&first), true);
        assert!(held(&first) >= 1);
        drop(first);
        assert!(weak.upgrade().is_some(), "the stash keeps it alive");
        let second = Arc::new(vec![2u8; 16]);
        give_up(acquire(&second), true);
        assert!(weak.upgrade().is_none(), "freed when the stash moved on");
        assert_eq!(held(&second), 1);
        give_up_pool(&second);
        assert_eq!(Arc::strong_count(&second), 1);
    }

    /// A closed pool's returned guard drops its count and empties the
    /// stash of the pool, so its last references go with its last guard.
    #[test]
    fn a_closed_pools_guard_empties_the_stash_of_it() {
        let pool = Arc::new(3i32);
        give_up(acquire(&pool), true);
        give_up(acquire(&pool), true);
        let guard = acquire(&pool);
        assert_eq!((held(&pool), Arc::strong_count(&pool)), (1, 3));
        let weak = Arc::downgrade(&pool);
        drop(pool); // the last handle
        give_up(guard, false);
        assert!(weak.upgrade().is_none());
    }

    /// Thread exit gives the stash up, guards returned in other
    /// thread-locals' destructors after it included.
    #[test]
    fn thread_exit_gives_the_stash_up() {
        struct LateGuard(std::cell::Cell<Option<Arc<u32>>>);
        impl Drop for LateGuard {
            fn drop(&mut self) {
                if let Some(guard) = self.0.take() {
                    give_up(guard, true);
                }
            }
        }
        thread_local! {
            static LATE: LateGuard = const { LateGuard(std::cell::Cell::new(None)) };
        }
        let pool = Arc::new(9u32);
        let theirs = Arc::clone(&pool);
        std::thread::spawn(move || {
            for _ in 0..10 {
                give_up(acquire(&theirs), true);
            }
            LATE.with(|late| late.0.set(Some(acquire(&theirs))));
            drop(theirs);
        })
        .join()
        .unwrap();
        assert_eq!(Arc::strong_count(&pool), 1);
    }
}
