//! `RuntimeSeen`: the state a pool's background threads share with the
//! pool (kept in `Inner`): the runtime captured on misses for the decay
//! thread, and the idle thread's switches. A leaf module: `pool.rs` calls
//! `on_miss` with the one setting and the one field it needs.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The tokio runtime a pool last allocated under, for the decay thread to
/// reach idle workers through (see `Builder::decay_thread`).
/// Also holds the pool's idle thread (see `BytesPool::thread_parking`).
#[derive(Default)]
pub(crate) struct RuntimeSeen {
    handle: Mutex<Option<tokio::runtime::Handle>>,
    /// When the last capture ran, in ms since `started` plus one (0: never),
    /// so that misses capture at most every `CAPTURE_EVERY`.
    last: AtomicU64,
    started: OnceLock<Instant>,
    pub(super) idle: Arc<IdleThread>,
    /// Whether the pool's decay thread runs (`Builder::decay_thread`):
    /// set by the start, cleared by the thread as it ends, both under this
    /// lock, which orders them with the handle count the thread reads
    /// before it ends (`WeakPool::upgrade_or_end`).
    pub(super) decay_running: Mutex<bool>,
}

impl Drop for RuntimeSeen {
    /// The pool is gone: its idle thread ends.
    fn drop(&mut self) {
        let mut state = lock(&self.idle.state);
        state.closed = true;
        self.idle.wake.notify_all();
    }
}

/// The park hook's timer. Depot batches age only with time, and a worker
/// that stays parked runs no pool code again, so a park that leaves more
/// than the idle floor in the depot arms this thread: it runs decay steps
/// until the depot is down to the floor, then waits, without waking, until
/// a park arms it again.
#[derive(Debug, Default)]
pub(super) struct IdleThread {
    pub(super) state: Mutex<IdleState>,
    pub(super) wake: Condvar,
}

#[derive(Debug, Default)]
pub(super) struct IdleState {
    /// Steps are due: the depot held more than the floor at the last check.
    pub(super) armed: bool,
    /// A thread was started (or its start failed: not tried again).
    pub(super) started: bool,
    /// The pool was dropped.
    pub(super) closed: bool,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How often a miss may refresh the captured runtime: a service that builds
/// a new runtime is followed within this time.
const CAPTURE_EVERY: Duration = Duration::from_millis(100);

impl RuntimeSeen {
    pub(crate) fn handle(&self) -> Option<tokio::runtime::Handle> {
        self.handle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Drops the captured runtime handle (a runtime thread is stopping:
    /// `BytesPool::thread_stopping`); the next miss captures one again. A
    /// handle kept past its runtime's end would keep the runtime's state
    /// alive, and with it hooks that hold handles of this pool: a cycle
    /// that never frees the pool nor ends its decay thread.
    pub(crate) fn forget_runtime(&self) {
        let old = self.handle.lock().unwrap_or_else(|e| e.into_inner()).take();
        self.last.store(0, Relaxed);
        drop(old); // after the lock
    }
}

/// After a miss (a new allocation, the slow path anyway): on a pool with a
/// decay thread, remembers the current runtime, at most every
/// `CAPTURE_EVERY`. `decay_thread` is the pool's `Builder::decay_thread`
/// setting, `seen` its `RuntimeSeen`.
#[inline]
pub(crate) fn on_miss(decay_thread: bool, seen: &RuntimeSeen) {
    if decay_thread {
        capture_runtime(seen);
    }
}

/// Out of line: it runs only on misses of pools with a decay thread, and
/// its clock read, compare-exchange and lock would bloat every checkout it
/// is inlined into.
#[cold]
fn capture_runtime(seen: &RuntimeSeen) {
    let started = *seen.started.get_or_init(Instant::now);
    let now = started.elapsed().as_millis() as u64 + 1;
    let last = seen.last.load(Relaxed);
    if last != 0 && now.saturating_sub(last) < CAPTURE_EVERY.as_millis() as u64 {
        return;
    }
    // Relaxed: only elects which miss refreshes; the mutex orders the handle.
    if seen
        .last
        .compare_exchange(last, now, Relaxed, Relaxed)
        .is_err()
    {
        return;
    }
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        *seen.handle.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
    }
}
