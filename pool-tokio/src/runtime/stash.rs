//! The per-thread stash of a built pool's references: the strong counts
//! of its `Arc` that guards gave up when they were returned on this
//! thread, handed to the next guards checked out here. A checkout and a
//! return on one thread then touch no shared reference count: a guard
//! takes its reference from the stash and gives it back there. Where
//! guards are checked out on one thread and returned on another, the
//! returning thread's stash fills up and parks half of it on the pool
//! (`Refs`, one atomic operation per `MOST / 2` counts), and the
//! checking-out thread's, run dry, takes what is parked (one more) before
//! it clones the `Arc`. A guard returned while the stash holds another
//! pool's counts, or after its pool closed, drops its count.
//!
//! A leaf module, generic over the `Arc`'s contents: `pool.rs` hands it
//! `Arc<Inner>`s, and says whether the pool is open (a `BytesPool` handle
//! of it lives).
//!
//! What the stash holds keeps the pool alive (the counts are real strong
//! counts), so it is given up: at thread exit; when a guard of another
//! pool is returned here; when a guard of a closed pool is returned here;
//! by `BytesPool::flush_thread` (the park and stop hooks, the decay
//! thread's flush tasks); and by the drop of any handle of the pool on
//! this thread.

use std::cell::Cell;
use std::mem;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// References kept at most per thread: a full stash parks `MOST / 2` of
/// them on the pool (`Refs`), for a thread whose stash runs dry (a
/// thread that only receives buffers checked out elsewhere hands them to
/// the thread that checks them out, 32 at a time).
pub(crate) const MOST: usize = 64;

/// A pool's side of the stash: its live handles (the pool is open while
/// any is) and the strong counts threads parked on it. Every count parked
/// is a strong count of the pool's `Arc` owned by `parked`; the last
/// handle's drop takes them all and drops them, and so does a park that
/// finds the pool closed (both ends `SeqCst`: one of the two sees the
/// other, so nothing stays parked on a closed pool).
pub(crate) struct Refs {
    handles: AtomicUsize,
    parked: Parked,
}

/// `Refs::parked` on a cache line of its own: threads that hand counts
/// over write it (once per `MOST / 2` buffers), every return reads
/// `handles`.
#[repr(align(128))]
struct Parked(AtomicUsize);

impl std::ops::Deref for Parked {
    type Target = AtomicUsize;
    fn deref(&self) -> &AtomicUsize {
        &self.0
    }
}

/// What the stash needs of the `Arc`'s contents: its `Refs`.
pub(crate) trait HasRefs {
    fn refs(&self) -> &Refs;
}

impl Refs {
    /// No handle yet, nothing parked.
    pub(crate) const fn new() -> Refs {
        Refs {
            handles: AtomicUsize::new(0),
            parked: Parked(AtomicUsize::new(0)),
        }
    }

    /// Whether a handle of the pool lives.
    #[inline]
    pub(crate) fn is_open(&self) -> bool {
        self.handles.load(Ordering::Relaxed) != 0
    }

    /// A handle was made (a closed pool opens again).
    pub(crate) fn open_one(&self) {
        self.handles.fetch_add(1, Ordering::SeqCst);
    }

    /// A handle of `arc`'s pool (`arc` itself) is dropping: at the last,
    /// the parked counts go.
    pub(crate) fn close_one<T: HasRefs>(arc: &Arc<T>) {
        if arc.refs().handles.fetch_sub(1, Ordering::SeqCst) == 1 {
            Self::unpark_all(arc);
        }
    }

    /// Drops every count parked on `arc`'s pool (`arc` keeps it alive
    /// meanwhile).
    fn unpark_all<T: HasRefs>(arc: &Arc<T>) {
        let n = arc.refs().parked.swap(0, Ordering::SeqCst);
        // SAFETY: `parked` owned those `n` strong counts of `arc`'s `Arc`;
        // the swap moved them to this call.
        unsafe { release_arcs::<T>(Arc::as_ptr(arc).cast(), n) };
    }

    /// Parks `n` strong counts of `arc`'s `Arc` that the caller owns.
    fn park<T: HasRefs>(arc: &Arc<T>, n: usize) {
        let refs = arc.refs();
        refs.parked.fetch_add(n, Ordering::SeqCst);
        if refs.handles.load(Ordering::SeqCst) == 0 {
            // Closed meanwhile: the last handle may have unparked before
            // this park.
            Self::unpark_all(arc);
        }
    }

    /// How many counts are parked now.
    #[cfg(test)]
    pub(crate) fn parked_now(&self) -> usize {
        self.parked.load(Ordering::Relaxed)
    }

    /// Takes every count parked (the caller owns them then).
    fn take(&self) -> usize {
        if self.parked.load(Ordering::Relaxed) == 0 {
            return 0;
        }
        self.parked.swap(0, Ordering::Acquire)
    }
}

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

/// A strong count of `arc` for a guard: one the stash holds, else (out of
/// line) one parked on the pool, else a clone. The stash's last count
/// stays (until the stash is given up), so that `ptr` always names a live
/// allocation of the type `release` was made for while the stash is in
/// use: a checkout and return on one thread take it from 2 counts to 1
/// and back, never through 0.
#[inline(always)]
pub(crate) fn acquire<T: HasRefs>(arc: &Arc<T>) -> Arc<T> {
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
        acquire_cold(arc)
    }
}

/// The stash is dry: the counts parked on the pool, one for the guard and
/// the rest into the stash; none parked, a clone.
#[cold]
#[inline(never)]
fn acquire_cold<T: HasRefs>(arc: &Arc<T>) -> Arc<T> {
    let taken = arc.refs().take();
    if taken == 0 {
        return Arc::clone(arc);
    }
    if taken > 1 {
        stash_in(arc, taken - 1);
    }
    // SAFETY: `take` moved `taken` strong counts of `arc`'s `Arc` to this
    // call; `stash_in` took all but this one.
    unsafe { Arc::from_raw(Arc::as_ptr(arc)) }
}

/// Puts `n` strong counts of `arc`'s `Arc`, owned by the caller, into the
/// stash (giving up another pool's), or drops them on a thread that is
/// exiting.
fn stash_in<T: HasRefs>(arc: &Arc<T>, n: usize) {
    let ptr = Arc::as_ptr(arc).cast::<()>();
    let taken = STASH.try_with(|s| {
        if s.ptr.get() == ptr && s.held.get() != 0 {
            s.held.set(s.held.get() + n);
            return Some((ptr, 0, release_none as unsafe fn(*const (), usize)));
        }
        // The exit destructor gives the stash up; without it (the thread
        // is tearing down) the stash takes nothing.
        if s.closed.get() || AT_EXIT.try_with(|_| ()).is_err() {
            return None;
        }
        Some((
            s.ptr.replace(ptr),
            s.held.replace(n),
            s.release.replace(release_arcs::<T>),
        ))
    });
    match taken {
        // The counts moved to the stash, which is consistent again; now the
        // other pool's counts go (maybe its last references: its destructor
        // may run and come back here).
        // SAFETY: the stash owned `old_held` strong counts of the `Arc` at
        // `old`, of the type `old_release` was made for; they left it above.
        Ok(Some((old, old_held, old_release))) => unsafe { old_release(old, old_held) },
        // SAFETY: the caller owns the `n` counts, which no stash took.
        _ => unsafe { release_arcs::<T>(ptr, n) },
    }
}

/// Gives up a guard's strong count: into the stash when it holds `arc`'s
/// pool, has room and the pool is open (a handle of it lives), else out of
/// line.
#[inline(always)]
pub(crate) fn give_up<T: HasRefs>(arc: Arc<T>) {
    let ptr = Arc::as_ptr(&arc).cast::<()>();
    let open = arc.refs().is_open();
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

/// The pool is closed, or the stash is full, empty, or holds another pool:
/// a closed pool's count drops, and so do the stash's counts of it; a full
/// stash parks half its counts on the pool and keeps this one; an empty
/// stash, or one of another pool, takes it (giving up the other pool's).
#[cold]
#[inline(never)]
fn give_up_cold<T: HasRefs>(arc: Arc<T>, open: bool) {
    if !open {
        give_up_pool(&arc);
        return;
    }
    let ptr = Arc::as_ptr(&arc).cast::<()>();
    let full = STASH
        .try_with(|s| {
            let full = s.ptr.get() == ptr && s.held.get() >= MOST;
            if full {
                s.held.set(s.held.get() - MOST / 2);
            }
            full
        })
        .unwrap_or(false);
    if full {
        // The stash's `MOST / 2` counts now belong to this call.
        Refs::park(&arc, MOST / 2);
    }
    stash_in(&arc, 1);
    // The count went into the stash (or was dropped by `stash_in`).
    mem::forget(arc);
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

    use super::{acquire, give_up, give_up_pool, held, HasRefs, Refs, MOST};

    /// A stand-in for a pool: its `Refs` and some data.
    struct Pool {
        refs: Refs,
        data: u64,
    }

    impl HasRefs for Pool {
        fn refs(&self) -> &Refs {
            &self.refs
        }
    }

    /// A pool with one open handle (the returned `Arc`).
    fn open(data: u64) -> Arc<Pool> {
        let pool = Arc::new(Pool {
            refs: Refs::new(),
            data,
        });
        pool.refs.open_one();
        pool
    }

    /// A checkout and return on one thread: after the first, no clone.
    #[test]
    fn a_return_and_checkout_on_one_thread_reuse_one_count() {
        let pool = open(1);
        for _ in 0..100 {
            let guard = acquire(&pool);
            assert_eq!(guard.data, 1);
            give_up(guard);
        }
        // The handle, the stash's kept count, and the one the loop passes
        // back and forth.
        assert_eq!((held(&pool), Arc::strong_count(&pool)), (2, 3));
        give_up_pool(&pool);
        assert_eq!((held(&pool), Arc::strong_count(&pool)), (0, 1));
    }

    /// Guards returned here but checked out elsewhere fill the stash up to
    /// `MOST`; then half of it is parked on the pool, where a thread whose
    /// stash runs dry takes it.
    #[test]
    fn a_full_stash_parks_half_on_the_pool_for_a_dry_one() {
        let pool = open(7);
        let guards: Vec<_> = (0..MOST + 1).map(|_| Arc::clone(&pool)).collect();
        guards.into_iter().for_each(give_up);
        assert_eq!(held(&pool), MOST / 2 + 1);
        assert_eq!(
            pool.refs.parked.load(std::sync::atomic::Ordering::Relaxed),
            MOST / 2
        );
        assert_eq!(Arc::strong_count(&pool), MOST + 2);
        // Another thread's dry stash takes the parked counts: no clone
        // (but for the count its stash keeps back, the last of them).
        let theirs = Arc::clone(&pool);
        let taken = std::thread::spawn(move || {
            let guards: Vec<_> = (0..MOST / 2 - 1).map(|_| acquire(&theirs)).collect();
            let strong = Arc::strong_count(&theirs);
            drop(guards);
            strong
        })
        .join()
        .unwrap();
        assert_eq!(taken, MOST + 3, "the thread's handle and no clone");
        assert_eq!(
            pool.refs.parked.load(std::sync::atomic::Ordering::Relaxed),
            0
        );
        give_up_pool(&pool);
        assert_eq!(Arc::strong_count(&pool), 1);
    }

    /// A guard of another pool takes the stash over: the first pool's
    /// counts go, and a pool whose handles are gone is freed then.
    #[test]
    fn another_pools_guard_gives_the_first_pools_counts_up() {
        let first = open(1);
        let weak: Weak<Pool> = Arc::downgrade(&first);
        give_up(acquire(&first));
        give_up(acquire(&first));
        assert!(held(&first) >= 1);
        drop(first); // dropped without closing: the stash keeps it alive
        assert!(weak.upgrade().is_some(), "the stash keeps it alive");
        let second = open(2);
        give_up(acquire(&second));
        assert!(weak.upgrade().is_none(), "freed when the stash moved on");
        assert_eq!(held(&second), 1);
        give_up_pool(&second);
        assert_eq!(Arc::strong_count(&second), 1);
    }

    /// A closed pool's returned guard drops its count and empties the
    /// stash of the pool, so its last references go with its last guard;
    /// closing drops what is parked.
    #[test]
    fn a_closed_pools_guard_empties_the_stash_of_it() {
        let pool = open(3);
        let parked: Vec<_> = (0..MOST + 1).map(|_| Arc::clone(&pool)).collect();
        parked.into_iter().for_each(give_up);
        let guard = acquire(&pool);
        assert_eq!(held(&pool), MOST / 2);
        let weak = Arc::downgrade(&pool);
        Refs::close_one(&pool); // the last handle
        assert_eq!(
            Arc::strong_count(&pool),
            1 + MOST / 2 + 1,
            "parked counts dropped"
        );
        drop(pool);
        give_up(guard);
        assert!(weak.upgrade().is_none());
    }

    /// Parking races the last handle's drop: nothing stays parked.
    #[test]
    fn a_park_racing_the_close_leaves_nothing_parked() {
        for _ in 0..if cfg!(miri) { 4 } else { 200 } {
            let pool = open(4);
            let weak = Arc::downgrade(&pool);
            let theirs: Vec<_> = (0..MOST + 1).map(|_| Arc::clone(&pool)).collect();
            let parker = std::thread::spawn(move || theirs.into_iter().for_each(give_up));
            Refs::close_one(&pool);
            drop(pool);
            parker.join().unwrap();
            assert!(weak.upgrade().is_none());
        }
    }

    /// Thread exit gives the stash up, guards returned in other
    /// thread-locals' destructors after it included.
    #[test]
    fn thread_exit_gives_the_stash_up() {
        struct LateGuard(std::cell::Cell<Option<Arc<Pool>>>);
        impl Drop for LateGuard {
            fn drop(&mut self) {
                if let Some(guard) = self.0.take() {
                    give_up(guard);
                }
            }
        }
        thread_local! {
            static LATE: LateGuard = const { LateGuard(std::cell::Cell::new(None)) };
        }
        let pool = open(9);
        let theirs = Arc::clone(&pool);
        std::thread::spawn(move || {
            for _ in 0..10 {
                give_up(acquire(&theirs));
            }
            LATE.with(|late| late.0.set(Some(acquire(&theirs))));
            drop(theirs);
        })
        .join()
        .unwrap();
        assert_eq!(Arc::strong_count(&pool), 1);
    }
}
