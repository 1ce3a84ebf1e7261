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
//!   [`BytesPool`] builds your own (settings, an optional byte budget).
//! - [`PooledBytes`] derefs to `BytesMut` and is `BufMut` and `io::Write`;
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
//!   feature, trace events per checkout and discard (target `pool_tokio`)
//!   and a periodic report ([`BytesPool::spawn_reporter`]).
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
//! - `tracing` (default): per-buffer events at `trace` level with fields
//!   `class`, `outcome` (`hit`, `miss`, `discard`), `source` or `reason`,
//!   and `bytes`; debug spans `pool_report` and `pool_maintenance`. Without
//!   it the events compile to nothing. This crate never sets `tracing`'s
//!   `max_level_*` features.
//! - `diagnostics` (off): leak diagnostics. A pool built with
//!   `Builder::diagnostics` records the time, thread and (sampled)
//!   backtrace of each checkout until the buffer comes back;
//!   `BytesPool::held_longer_than` reports the buffers held too long, and
//!   [`BytesPool::assert_all_returned`] (always available) puts that report
//!   in its panic message. Without the feature the bookkeeping is compiled
//!   out; with it, a pool built without the switch pays one branch per
//!   checkout.

mod codec;
mod diagnostics;
mod error;
mod pool;
mod pooled;
mod runtime;
mod tracing;

use std::sync::LazyLock;

pub use codec::{
    FrameReader, LengthDelimitedBuilder, LengthFieldType, PooledDecoder, PooledFramed,
    PooledFramedRead, PooledFramedWrite, PooledLengthDelimitedCodec, PooledParts,
    DEFAULT_FRAME_BUFFER,
};
#[cfg(feature = "diagnostics")]
pub use diagnostics::{Diagnostics, LeakReport, Outstanding};
pub use error::{BuildError, CheckoutError};
pub use pool::{BudgetStats, Builder, BytesPool, Reservation};
pub use pooled::PooledBytes;

static DEFAULT_INNER: LazyLock<pool::Inner> =
    LazyLock::new(
        || match pool::Inner::new(pool_core::BufferConfig::new(), None) {
            Ok(inner) => inner,
            Err(e) => unreachable!("default settings are valid: {e}"),
        },
    );

static DEFAULT: LazyLock<BytesPool> = LazyLock::new(|| BytesPool::from_static(&DEFAULT_INNER));

/// The process-wide default pool (pool-core's default settings, no
/// budget), built on first use. Its guards hold a `&'static` reference.
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
/// # Panics
///
/// If `min_capacity` exceeds `isize::MAX`.
///
/// ```
/// let mut buf = pool_tokio::checkout(1000);
/// assert_eq!(buf.capacity(), 1024);
/// buf.extend_from_slice(b"hello");
/// ```
#[inline]
pub fn checkout(min_capacity: usize) -> PooledBytes {
    DEFAULT.checkout(min_capacity)
}
