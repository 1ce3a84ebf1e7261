//! Side-by-side comparison of pool-core against allocators and pool crates.
//!
//! Every contender sits behind one small adapter implementing
//! [`Contender`]: check a buffer out, write into it, read it, return it.
//! The workloads in [`workloads`] are generic over that trait, so the
//! `compare` runner (`src/bin/compare.rs`) and the criterion benches
//! (`benches/*.rs`) measure every contender through the same code.
//!
//! The global allocator is chosen at build time: the `jemalloc` feature
//! installs tikv-jemallocator, `mimalloc` installs mimalloc, neither keeps
//! the system allocator. [`ALLOCATOR`] names the one in force, and every
//! row the runner prints carries it.
//!
//! Adding a contender: write a unit struct implementing [`Contender`] in
//! `contenders.rs`, then add one line to [`for_contender`] and its name to
//! [`CONTENDERS`].

mod contenders;
pub mod rss;
pub mod workloads;

pub use contenders::{
    for_contender, pool_core_pool, set_create_size, ArrayQueuePool, Contender, FreshBytesMut,
    FreshVec, LockfreeLinear, LockfreeSpin, MutexVec, ObjectPool, Opool, OpoolAlloc, PoolCore,
    PoolCoreBurst, PoolTokio, ShardedSlab, SlabBuf, SlabKey, ThreadLocalFloor, Visit, BURST_DECAY,
    BURST_GLOBAL_BYTES, CONTENDERS, THIS_PROJECT,
};

#[cfg(all(feature = "jemalloc", feature = "mimalloc"))]
compile_error!("choose at most one of the features `jemalloc` and `mimalloc`");

#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[cfg(all(feature = "mimalloc", not(feature = "jemalloc")))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The global allocator this build uses: `jemalloc`, `mimalloc` or
/// `system` (glibc's malloc on Linux).
pub const ALLOCATOR: &str = if cfg!(feature = "jemalloc") {
    "jemalloc"
} else if cfg!(feature = "mimalloc") {
    "mimalloc"
} else {
    "system"
};
