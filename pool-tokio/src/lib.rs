#![cfg_attr(docsrs, feature(doc_cfg))]
//! Pooled [`BytesMut`](bytes::BytesMut) buffers for tokio services, built on
//! [`pool_core`]'s thread-local sharded pool.
//!
//! A service checks a buffer out, reads or encodes into it, holds it across
//! `.await` while its task hops between workers, and drops it wherever it
//! ends: the buffer goes back to the dropping thread's cache, and batches
//! move between threads through a bounded depot.
//!
//! - [`checkout`] serves from a lazily built process-wide pool whose
//!   guards hold a `&'static` reference: no reference count per checkout.
//!   [`BytesPool`] builds your own (settings, an optional byte budget),
//!   reached through an `Arc` whose count a checkout and return on one
//!   thread do not touch (a per-thread stash of the pool's references; a
//!   guard returned on another thread costs one atomic operation at its
//!   checkout and one at its return), or `&'static` too through
//!   [`BytesPool::leak`].
//! - [`PooledBytes`] derefs to `BytesMut` and is `BufMut`, `Buf` and
//!   `io::Write`; it compares equal to byte slices and `str`, and clones
//!   into the pool;
//!   [`PooledBytes::freeze`] turns it into `Bytes` without a copy, and the
//!   memory comes back when the last clone drops. Frames split off it
//!   (`split_to`) stay valid: the pool never reuses memory another handle
//!   can see.
//! - [`BytesPool::framed`], [`framed_read`](BytesPool::framed_read) and
//!   [`framed_write`](BytesPool::framed_write) give tokio-util codecs pooled
//!   buffers, returned when the framed value is dropped or taken apart.
//! - [`BytesPool::checkout_async`] waits for returns instead of allocating
//!   past a byte budget; [`BytesPool::try_checkout`] says why it cannot
//!   serve.
//! - Runtime hooks ([`BytesPool::install`]), a maintenance task
//!   ([`BytesPool::spawn_maintenance`]) and, with the default `tracing`
//!   feature, trace events per miss (per hit too with
//!   `Builder::trace_hits`) and per discarded return (target `pool_tokio`)
//!   and a periodic report (`BytesPool::spawn_reporter`).
//!
//! # Usage
//!
//! ```
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let (mut client, mut server) = tokio::io::duplex(64 << 10);
//! let echo = tokio::spawn(async move {
//!     let mut buf = pool_tokio::checkout(16 << 10);
//!     while server.read_buf(&mut buf).await? > 0 {
//!         server.write_all_buf(&mut *buf).await?;
//!     }
//!     Ok::<_, std::io::Error>(())
//! }); // the buffer goes back to the pool when the task ends
//!
//! client.write_all(b"ping").await?;
//! let mut reply = pool_tokio::checkout(4);
//! client.read_buf(&mut reply).await?;
//! assert_eq!(&reply[..], b"ping");
//! drop(client);
//! echo.await.unwrap()?;
//! assert_eq!(pool_tokio::default_pool().stats().outstanding(), 1); // `reply`
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! - `tracing` (default): per-buffer events at `trace` level, one per
//!   miss (`outcome = "miss"`, `reason` `pool_empty` or `above_max_class`)
//!   and per discarded return (`outcome = "discard"`, `reason`: a returned
//!   buffer the pool refused; buffers a full depot or a trim drops later
//!   are counted in the statistics and metrics, `discarded.full` and
//!   `discarded.trimmed`, not traced one by one), with fields `pool`
//!   (the pool's name), `class` (the class size in bytes, or `unpooled`
//!   above the largest class, as in the metrics; a string either way) and
//!   `bytes`, and on checkouts `source`; hits only with
//!   `Builder::trace_hits`. Overdrafts
//!   of a budget at WARN, at most one a second per pool (field
//!   `suppressed`: the overdrafts since the previous WARN). Debug spans
//!   `pool_report` (field `pool`) and `pool_maintenance` (fields `pool`
//!   and `kind`: `trim`, `decay` or `idle`). Without it the events compile
//!   to nothing and
//!   `BytesPool::spawn_reporter` (a periodic statistics report as events)
//!   does not exist. This crate never sets `tracing`'s `max_level_*`
//!   features.
//! - `http-body` (off): `PooledBody`, an `http_body::Body` whose data is
//!   the pooled buffer itself, so hyper sends it and drops it back into the
//!   pool with no allocation per response (`freeze` costs one).
//! - `axum` (off; turns on `http-body`): `PooledBody` implements axum's
//!   `IntoResponse` and converts into `axum_core::body::Body`, so a handler
//!   returns it with no adapter; the buffer is frozen into `Bytes` without a
//!   copy (one small owner box per response), the exact length is kept for
//!   `content-length`, and the buffer comes back to the pool once sent.
//! - `metrics` (off): `BytesPool::export_metrics` and
//!   `BytesPool::spawn_metrics` (`export_metrics_for` and
//!   `spawn_metrics_for` for several pools at once) record per pool and
//!   class checkouts, hits, misses, discards by reason, outstanding and
//!   retained buffers and the budget in the `metrics` facade, with HELP
//!   text and units, and only for classes in use (see
//!   `examples/metrics_server.rs` for a Prometheus endpoint).
//! - `diagnostics` (off): leak diagnostics. A pool built with
//!   `Builder::diagnostics` records the time, thread and (sampled)
//!   backtrace of each checkout until the buffer comes back;
//!   `BytesPool::held_longer_than` reports the buffers held too long, and
//!   [`BytesPool::assert_all_returned`] (always available) puts that report
//!   in its panic message. Without the feature the bookkeeping is compiled
//!   out (and `Diagnostics`, `LeakReport`, `Outstanding`,
//!   `Builder::diagnostics`, `BytesPool::held_longer_than` and
//!   `BytesPool::diagnostics_enabled` do not exist); with it, a pool built
//!   without the switch pays one branch per checkout.
//!
//! On docs.rs every item is documented with all features on, and items
//! that need a feature say which.

mod background;
mod blocking;
#[cfg(feature = "http-body")]
mod body;
mod budget;
mod builder;
mod codec;
mod diagnostics;
mod error;
#[cfg(feature = "metrics")]
mod metrics;
mod pinned;
mod pool;
mod pooled;
mod runtime;
mod settings;
mod tracing;

use std::sync::LazyLock;

pub use blocking::spawn_blocking;
#[cfg(feature = "http-body")]
pub use body::PooledBody;
pub use budget::{BudgetStats, Reservation};
pub use builder::Builder;
pub use codec::{
    FrameReader, LengthDelimitedBuilder, LengthFieldType, PooledDecoder, PooledFramed,
    PooledFramedRead, PooledFramedWrite, PooledLengthDelimitedCodec, PooledParts,
    DEFAULT_FRAME_BUFFER,
};
#[cfg(feature = "diagnostics")]
pub use diagnostics::{Diagnostics, LeakReport, Outstanding};
pub use error::{BuildError, TryCheckoutError};
pub use pool::{BytesPool, PooledBytes};
pub use runtime::RuntimeHooks;
pub use settings::DEFAULT_NAME;

static DEFAULT_INNER: LazyLock<pool::Inner> = LazyLock::new(|| {
    let settings = settings::Settings {
        decay_thread: true,
        ..settings::Settings::default()
    };
    match pool::Inner::with_settings(pool_core::BufferConfig::new(), None, settings) {
        Ok(inner) => inner,
        Err(e) => unreachable!("default settings are valid: {e}"),
    }
});

static DEFAULT: LazyLock<BytesPool> = LazyLock::new(|| {
    let pool = BytesPool::from_static(&DEFAULT_INNER);
    background::start_decay_thread(&pool.handle);
    pool
});

/// The process-wide default pool (pool-core's default settings, no
/// budget, named `"default"`), built on first use. Its guards hold a
/// `&'static` reference.
///
/// Idle decay needs no setup: on first use it starts one background
/// thread (`pool-tokio-decay`, asleep between steps; see
/// [`Builder::decay_thread`]) that frees what stayed unused for a whole
/// decay interval, also under `#[tokio::main]`, and reaches idle workers'
/// caches through short tasks on the runtime. With the hooks installed
/// ([`BytesPool::install`]) a worker hands its cache over itself when it
/// parks, which is surer and cheaper.
///
/// ```
/// let pool = pool_tokio::default_pool();
/// drop(pool.checkout(100));
/// assert!(pool.stats().checkouts() >= 1);
/// ```
pub fn default_pool() -> &'static BytesPool {
    &DEFAULT
}

/// Checks out an empty buffer of at least `min_capacity` bytes from the
/// [default pool](default_pool).
///
/// **Empty means length 0: read into it with `read_buf(&mut buf)`, not
/// `read(&mut buf)`**, which sees no room and returns `Ok(0)` as at end of
/// stream (or use [`checkout_zeroed`]).
///
/// # Panics
///
/// If `min_capacity` exceeds `isize::MAX`.
///
/// ```
/// let mut buf = pool_tokio::checkout(1000);
/// assert_eq!(buf.capacity(), 1024);
/// buf.extend_from_slice(b"hello");
/// ```
#[inline(always)]
pub fn checkout(min_capacity: usize) -> PooledBytes {
    DEFAULT.checkout(min_capacity)
}

/// Checks out a buffer of **length** `len`, zero-filled, from the
/// [default pool](default_pool), for `read(&mut buf)` and other APIs that
/// fill an initialised slice (see [`BytesPool::checkout_zeroed`]). A plain
/// [`checkout`] has length 0: read into it with `read_buf`, never `read`.
///
/// # Panics
///
/// If `len` exceeds `isize::MAX`.
///
/// ```
/// let buf = pool_tokio::checkout_zeroed(100);
/// assert_eq!((buf.len(), buf.capacity()), (100, 512));
/// assert!(buf.iter().all(|&b| b == 0));
/// ```
pub fn checkout_zeroed(len: usize) -> PooledBytes {
    DEFAULT.checkout_zeroed(len)
}
