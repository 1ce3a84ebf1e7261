#![cfg_attr(docsrs, feature(doc_cfg))]
//! Thread-local sharded object and buffer pools with a batched, bounded
//! depot.
//!
//! Every thread that uses a pool gets its own cache. Checking out and
//! returning on a thread touch only that thread's cache: no lock, no atomic
//! read-modify-write on shared memory, no allocation. When a thread's cache
//! is full, its oldest batch (by default half its capacity) moves to the
//! pool's depot in one locked operation; when it is empty, it takes a
//! whole batch from the depot before it allocates. So a value dropped on
//! another thread than the one it came from is an ordinary return, and
//! producers on some threads with consumers on others share one bounded
//! set of buffers instead of piling them up where they are dropped.
//!
//! # Usage
//!
//! ```
//! use std::sync::LazyLock;
//! use pool_core::{BufferPool, Pool};
//!
//! // Size-classed byte buffers: 512 B to 1 MiB by default.
//! static BUFFERS: LazyLock<BufferPool<Vec<u8>>> = LazyLock::new(BufferPool::new);
//! // Any value with a reset policy: here `String`s, cleared on return.
//! static STRINGS: LazyLock<Pool<String>> = LazyLock::new(Pool::new);
//!
//! let handles: Vec<_> = (0..4)
//!     .map(|i| {
//!         std::thread::spawn(move || {
//!             for _ in 0..1000 {
//!                 let mut buf = BUFFERS.checkout(4096);
//!                 buf.extend_from_slice(b"payload");
//!                 let mut line = STRINGS.checkout();
//!                 line.push_str("worker ");
//!                 line.push_str(&i.to_string());
//!             } // both go back to this thread's cache here
//!         })
//!     })
//!     .collect();
//! for h in handles {
//!     h.join().unwrap();
//! }
//! let stats = BUFFERS.stats();
//! assert_eq!(stats.checkouts(), 4000);
//! assert_eq!(stats.outstanding(), 0);
//! assert!(stats.hit_rate() > 0.99);
//! ```
//!
//! # Bounds and lifecycle
//!
//! - Per thread: at most `thread_capacity` values per class (and, for
//!   buffers, `thread_bytes` bytes per power of two, split among its
//!   classes; a class whose share is below one buffer keeps at most one,
//!   and all such large classes together at most `thread_bytes`, or the
//!   one buffer just returned).
//! - Depot: at most `depot_capacity` values per class and, for
//!   buffers, `depot_bytes` bytes in all. Batches that do not fit are
//!   dropped and counted.
//! - A returned buffer is cleared and kept only if it is exactly the
//!   allocation lent (its class size, starting where it started) and no
//!   other handle can read or write its bytes: bounds and statistics count
//!   real bytes.
//! - [`Pool::trim`] releases the depot and this thread's cache at once,
//!   every other thread's cache at that thread's next checkout or
//!   slow-path return; [`Pool::maintain`], called from a timer or a
//!   runtime's park hook, frees depot values unused for a whole decay
//!   interval and moves each thread's surplus beyond one batch to the
//!   depot at its next operation.
//! - A thread that exits hands its cache to the depot, under the limits in
//!   force, whatever order its thread-local destructors run in.
//! - Settings change at runtime with [`Pool::reconfigure`].
//!
//! # Safety and correctness
//!
//! The `unsafe` code is mostly in `src/spine.rs`, the checkout and return
//! fast path: the per-thread slot (stacks that only the thread which
//! claimed the slot touches, and a destructor-free thread-local pointer to
//! the last slot used), the moves of values in and out of it (a volatile
//! move, the return guards' `ManuallyDrop` handling) and `unsafe impl Sync`
//! for the slot. The rest: the slow paths' pop and `assume_init` of a value
//! they wrote (`src/engine/cache.rs`, `src/engine/mod.rs`), one call in the
//! exit flush, and the guards' `ManuallyDrop` handling in `pool.rs` and
//! `buffer.rs`. One public function is `unsafe`:
//! [`BufferPool::try_give_back_fast_in_place`], a return that works on
//! the caller's `ManuallyDrop` place (its Safety section says what the
//! caller must do after). Every block states why it is sound. The depot protocol, the
//! slot handoff between an exiting thread and the next owner of its id, and
//! catch-up with trims, decay ticks and reconfigures racing the fast path
//! are model-checked with `loom` (`scripts/loom.sh`), the unsafe code runs
//! under Miri (`scripts/miri.sh`), and a proptest model checks the
//! accounting against a reference.
//!
//! # Features
//!
//! - `bytes` (off): implements [`Buffer`] for `bytes::BytesMut`, so a
//!   size-classed [`BufferPool<BytesMut>`](BufferPool) can hold it
//!   (pool-tokio turns this on). Without it pool-core does not depend on
//!   `bytes`.
//!
//! No feature is on by default.
#![warn(
    clippy::undocumented_unsafe_blocks,
    unsafe_op_in_unsafe_fn,
    missing_docs
)]

mod buffer;
mod config;
mod engine;
mod loom;
mod outcome;
mod pool;
mod recycle;
mod spine;
mod stats;

pub use buffer::{Buffer, BufferPool, CheckoutError, OwnedPooledBuf, PooledBuf, Ticket};
pub use config::{
    BufferConfig, ConfigError, PoolConfig, MAX_CLASSES_PER_DOUBLING, MAX_CLASS_SIZE,
    MAX_THREAD_CAPACITY,
};
pub use outcome::{Discard, Returned, Source};
pub use pool::{OwnedPooled, Pool, Pooled};
pub use recycle::{DefaultRecycle, Keep, Recycle, Recycler, Reset};
pub use stats::{ClassStats, Discards, Stats};

#[cfg(all(test, loom))]
mod loom_tests;
