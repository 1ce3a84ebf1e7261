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
    PoolCoreBurst, PoolTokio, PoolTokioBuilt, ShardedSlab, SlabBuf, SlabKey, ThreadLocalFloor,
    ThreadLocalUnsafeCell, Visit, BURST_DECAY, BURST_GLOBAL_BYTES, CONTENDERS, THIS_PROJECT,
};

#[cfg(all(feature = "jemalloc", feature = "mimalloc"))]
compile_error!("choose at most one of the features `jemalloc` and `mimalloc`");

#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[cfg(all(feature = "mimalloc", not(feature = "jemalloc")))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Whether this build has pool-tokio's `tracing` feature (the benches'
/// `tracing` feature).
pub const TRACING: bool = cfg!(feature = "tracing");

/// The label rows of this build carry: [`ALLOCATOR`], plus `+tracing`
/// when [`TRACING`].
pub fn build_label() -> String {
    if TRACING {
        format!("{ALLOCATOR}+tracing")
    } else {
        ALLOCATOR.to_string()
    }
}

/// Installs, as the global default, a subscriber whose filter rejects
/// `trace` events (enables `debug` and above) and records nothing. Returns
/// false in a build without the `tracing` feature or if a global default
/// was already set.
pub fn install_rejecting_subscriber() -> bool {
    #[cfg(feature = "tracing")]
    {
        tracing::subscriber::set_global_default(reject::RejectTrace).is_ok()
    }
    #[cfg(not(feature = "tracing"))]
    {
        false
    }
}

#[cfg(feature = "tracing")]
mod reject {
    use tracing::level_filters::LevelFilter;
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Level, Metadata, Subscriber};

    /// Enables `debug` and above, rejects `trace`; records nothing.
    #[derive(Debug)]
    pub(crate) struct RejectTrace;

    impl Subscriber for RejectTrace {
        fn enabled(&self, metadata: &Metadata<'_>) -> bool {
            *metadata.level() <= Level::DEBUG
        }
        fn max_level_hint(&self) -> Option<LevelFilter> {
            Some(LevelFilter::DEBUG)
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, _: &Event<'_>) {}
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }
}

/// The global allocator this build uses: `jemalloc`, `mimalloc` or
/// `system` (glibc's malloc on Linux).
pub const ALLOCATOR: &str = if cfg!(feature = "jemalloc") {
    "jemalloc"
} else if cfg!(feature = "mimalloc") {
    "mimalloc"
} else {
    "system"
};
