//! `spawn_blocking`: tokio's, with the blocking thread marked as one for
//! every pool while the closure runs (for runtimes without the hooks).

use tokio::task::JoinHandle;

use crate::runtime::mark::{set_thread_kind, thread_kind, RUNTIME_UNPARKED};

/// While alive, the current thread counts as a blocking thread for every
/// pool, as if the runtime hooks had marked it, whatever its mark said: a
/// blocking closure runs on tokio's blocking pool, and a thread marked a
/// worker there is a former worker (one that handed its core over in
/// `block_in_place` and went back to the blocking pool). The thread's
/// earlier mark comes back on drop.
struct BlockingScope {
    before: u8,
}

impl BlockingScope {
    fn enter() -> BlockingScope {
        let before = thread_kind();
        set_thread_kind(RUNTIME_UNPARKED);
        BlockingScope { before }
    }
}

impl Drop for BlockingScope {
    fn drop(&mut self) {
        set_thread_kind(self.before);
    }
}

/// [`tokio::task::spawn_blocking`], with the blocking thread treated as one
/// by every pool while `f` runs: buffers returned there go on to the depot
/// instead of into a cache of that thread, and checkouts there leave the
/// rest of a depot batch in the depot (unless a pool was built with
/// [`Builder::blocking_cache`](crate::Builder::blocking_cache)).
///
/// The runtime hooks ([`BytesPool::install`](crate::BytesPool::install), or
/// [`thread_started`](crate::BytesPool::thread_started) from your own
/// `on_thread_start`) do this for every blocking thread. Without them
/// (`#[tokio::main]`, or a runtime built by a library) a pool cannot tell a
/// blocking thread from a worker, so each blocking thread that drops
/// buffers keeps them in a cache of its own, which the workers never reach:
/// in W8's per-frame checkout with one frame in four dropped on a blocking
/// thread, 3.75x-4.02x the peak RSS of fresh allocations and a hit rate of
/// 83-94% (benches/RESULTS.md, "W8 grown"). Use this function for closures
/// that drop or check out pooled buffers on such a runtime.
///
/// Also with the hooks installed: a worker that hands its core over in
/// `tokio::task::block_in_place` goes back to tokio's blocking pool still
/// marked a worker (no hook runs then), so closures that tokio's own
/// `spawn_blocking` later runs on that thread cache as a worker's would.
/// Closures spawned with this function never do.
///
/// # Panics
///
/// Outside a tokio runtime, as `tokio::task::spawn_blocking`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let pool = pool_tokio::BytesPool::new(); // no hooks on this runtime
/// let buf = pool.checkout(4096);
/// pool_tokio::spawn_blocking(move || drop(buf)).await.unwrap();
/// let class = *pool.stats().class(4096).unwrap();
/// assert_eq!((class.retained_local, class.retained_depot), (0, 1)); // not cached there
/// # }
/// ```
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        let _scope = BlockingScope::enter();
        f()
    })
}
