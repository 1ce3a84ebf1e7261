//! The blocking-thread mark: what this crate's hooks have learnt about the
//! current thread, and the cache policy read from it at checkout and at
//! return. A leaf module: `pool.rs` calls it with the one setting it needs
//! (`blocking_cache`), never with the pool.

use std::cell::Cell;

use bytes::BytesMut;
use pool_core::BufferPool;

/// What this crate's hooks have learnt about the current thread.
const UNKNOWN: u8 = 0;
/// `on_thread_start` ran and the thread never parked: a blocking thread
/// (tokio parks only workers), or a worker before its first park.
pub(crate) const RUNTIME_UNPARKED: u8 = 1;
/// The thread parked at least once: a worker.
pub(crate) const WORKER: u8 = 2;

thread_local! {
    static THREAD_KIND: Cell<u8> = const { Cell::new(UNKNOWN) };
}

#[inline]
pub(crate) fn thread_kind() -> u8 {
    // `try_with`: returns also run during thread teardown.
    THREAD_KIND.try_with(Cell::get).unwrap_or(UNKNOWN)
}

pub(crate) fn set_thread_kind(kind: u8) {
    let _ = THREAD_KIND.try_with(|k| k.set(kind));
}

/// After a buffer went back to `pool` on this thread: on a blocking thread
/// of a pool without [`Builder::blocking_cache`](crate::Builder::blocking_cache)
/// (`blocking_cache` false), moves this thread's cache on to the depot, so
/// it keeps nothing.
#[inline(always)]
pub(crate) fn after_return(pool: &BufferPool<BytesMut>, blocking_cache: bool) {
    if !keeps_cache(blocking_cache) {
        flush_blocking(pool);
    }
}

/// Whether this thread may cache: keep buffers it returns, and the rest of
/// a depot batch it checks out of (false on a blocking thread of a pool
/// without `blocking_cache`).
///
/// The thread's mark is tested first: on a worker (the common case) the
/// pool's setting is never loaded, 2 instructions fewer on each side of a
/// W1 operation (`PooledBytes` 185 to 181), no change in time
/// (`benches/RESULTS.md`, "W1 time per instruction").
#[inline(always)]
pub(crate) fn keeps_cache(blocking_cache: bool) -> bool {
    thread_kind() != RUNTIME_UNPARKED || blocking_cache
}

/// Out of line: only blocking threads of a pool without `blocking_cache`
/// get here, and the flush (a pass over the thread's caches, depot locks)
/// would only bloat the return it follows.
#[cold]
fn flush_blocking(pool: &BufferPool<BytesMut>) {
    pool.flush_thread();
}
