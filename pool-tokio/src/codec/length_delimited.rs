//! A length-delimited codec whose frames come from the pool.
//!
//! Wire-compatible with tokio-util's `LengthDelimitedCodec` (same builder
//! options, same defaults, same bytes on the wire; `max_frame_length`
//! bounds the frame length both ways, where tokio-util's decoder bounds
//! the raw length field), but each decoded frame
//! is a [`PooledBytes`] of the frame's own size class: the header gives the
//! size, a buffer of that class is checked out, and the body goes into it:
//! read straight into it (bodies of 4 KiB or more, once the read buffer is
//! drained) in a [`FrameReader`] and in a pooled framed value
//! ([`BytesPool::framed`], [`BytesPool::framed_read`]), copied from the
//! read buffer as it arrives everywhere else (tokio-util's own `Framed`,
//! small bodies, the part of a body that came in with its header). The
//! read buffer never holds a frame alive (no
//! `split_to` view of it escapes), so it stays one small reusable buffer
//! whatever the frame sizes are, and every frame is its own allocation that
//! the pool takes back whole when the frame drops, on whatever thread.
//!
//! Two ways to read:
//! - [`PooledLengthDelimitedCodec`] is a tokio-util `Decoder`/`Encoder`, for
//!   `Framed`, `FramedRead` and [`BytesPool::framed`] (which reads large
//!   bodies straight into the frame, as `FrameReader` does; tokio-util's
//!   `Framed` copies them through its read buffer). Decoding cannot wait,
//!   so on a pool with a budget a frame the budget cannot cover is served
//!   as an overdraft (counted, traced at WARN).
//! - [`FrameReader`] (from [`PooledLengthDelimitedCodec::new_reader`]) is a
//!   `Stream` of frames that reads large bodies straight into the frame's
//!   buffer (no copy through a read buffer) and, on a pool with a budget,
//!   waits for the budget before it checks a frame out (cancel-safe).
//!
//! Two ways to write:
//! - The `Encoder` impls. In a pooled framed value ([`BytesPool::framed`],
//!   [`BytesPool::framed_write`]), a `PooledBytes`, `Bytes` or `BytesMut`
//!   frame is queued by value: only the header goes into the write buffer,
//!   and the framed value writes header and body vectored, with no copy of
//!   the body. Everywhere else (tokio-util's own `Framed`/`FramedWrite`),
//!   and for `&[u8]`, they copy header and body into the write buffer, as
//!   tokio-util's codec does: `Encoder::encode` only sees a `BytesMut` to
//!   fill.
//! - [`write_frame`](PooledLengthDelimitedCodec::write_frame) writes header
//!   and body with one `write_all_buf` of a chained buffer: a vectored write
//!   where the I/O object supports it (`TcpStream` does), no copy of the
//!   body at all.
//!
//! The code lives in submodules, one concern each: `builder.rs` (the
//! options and the constructors), `decode.rs` (headers, bodies, the
//! `Decoder` and the direct-read lending), `encode.rs` (headers, the
//! `Encoder` impls and [`write_frame`](PooledLengthDelimitedCodec::write_frame))
//! and `reader.rs` ([`FrameReader`]); this file holds the codec type and
//! its decoding state.

use std::fmt;
use std::io;

use crate::error::TryCheckoutError;
use crate::pool::{BytesPool, PooledBytes};

mod builder;
mod decode;
mod encode;
mod reader;

pub use builder::{LengthDelimitedBuilder, LengthFieldType};
pub use reader::FrameReader;

/// tokio-util's default maximum frame length (8 MiB).
const DEFAULT_MAX_FRAME_LENGTH: usize = 8 * 1024 * 1024;

/// Size of a [`FrameReader`]'s read buffer: it holds headers and small
/// frames only (large bodies are read into the frame itself), so one
/// pooled class serves every connection whatever its frame sizes.
const READ_BUFFER: usize = 8 * 1024;

/// Bodies at least this long are read straight into the frame buffer by a
/// [`FrameReader`] once the read buffer is drained; smaller ones go through
/// the read buffer, where one read can bring many frames.
/// The same bound applies in a pooled framed value ([`BytesPool::framed`],
/// [`BytesPool::framed_read`]).
const DIRECT_READ: usize = 4 * 1024;

/// Where the decoder is in the stream.
enum State {
    /// Waiting for a header.
    Head,
    /// A header said `len` bytes; no buffer checked out yet (a
    /// [`FrameReader`] waiting for the budget).
    Sized(usize),
    /// Filling `frame` up to `len` bytes.
    Body { frame: PooledBytes, len: usize },
    /// The frame of `len` bytes is lent to the pooled framed value reading
    /// its body straight into it; it comes back at the next `decode`. If it
    /// does not (the framed value was taken apart, and put the body so far
    /// back in front of its read buffer), this is `Sized(len)`.
    Lent(usize),
}

/// A length-delimited `Decoder` and `Encoder`, wire-compatible with
/// tokio-util's `LengthDelimitedCodec`, whose decoded frames are
/// [`PooledBytes`] of their own size class. Built by
/// [`LengthDelimitedBuilder::new_codec`] or
/// [`new`](PooledLengthDelimitedCodec::new).
///
/// The header gives the frame's size; a buffer of that class is checked
/// out and the body goes into it (see *Reading*), so the read
/// buffer never holds a frame alive and stays one small reusable buffer
/// whatever the frame sizes, and each frame goes back to the pool whole
/// when dropped, on whatever thread. Frames larger than the pool's largest
/// class are plain allocations of exactly their size, dropped on return.
///
/// Reading:
/// - as a `Decoder` (in `Framed`, `FramedRead`, [`BytesPool::framed`]):
///   decoding cannot wait, so on a pool with a budget a frame the budget
///   cannot cover is an overdraft (counted, traced at WARN). In a pooled
///   framed value ([`BytesPool::framed`], [`BytesPool::framed_read`]), once
///   the read buffer is drained into a frame that lacks 4 KiB or more, the
///   framed value reads the rest of the body **straight into the frame**
///   (no copy; only the header and what came in with it pass through the
///   read buffer). In tokio-util's own `Framed`/`FramedRead`, body bytes
///   are **copied** from the read buffer into the frame as they arrive;
/// - through [`new_reader`](Self::new_reader), a [`FrameReader`] that reads
///   large bodies straight into the frame and waits for the budget.
///
/// Writing:
/// - in a pooled framed value ([`BytesPool::framed`],
///   [`BytesPool::framed_write`]), `send` of a `PooledBytes`, `Bytes` or
///   `BytesMut` **queues the frame by value** and writes header and body
///   vectored: **no copy**, and a pooled frame goes back to the pool once
///   written;
/// - in tokio-util's own `Framed`/`FramedWrite`, and for `&[u8]` items,
///   the `Encoder` impls **copy** header and body into the write buffer,
///   as tokio-util's codec does (`Encoder::encode` only sees a `BytesMut`
///   to fill);
/// - [`write_frame`](Self::write_frame) writes one frame with one vectored
///   write and **no copy**, on any `AsyncWrite`.
///
/// Unlike tokio-util's codec, a stream that ends right after a header,
/// before any body byte, is an error ("bytes remaining on stream") rather
/// than a quiet end, and decoding checks `max_frame_length` against the
/// frame length (the field plus `length_adjustment`), as encoding does,
/// not against the raw field: every frame this codec encodes decodes (see
/// [`LengthDelimitedBuilder::max_frame_length`]).
///
/// ```
/// use futures_util::{SinkExt, StreamExt};
/// use pool_tokio::{BytesPool, PooledLengthDelimitedCodec};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let pool = BytesPool::new();
/// let (a, b) = tokio::io::duplex(64 << 10);
/// // A plain tokio-util peer on one side...
/// let mut peer = tokio_util::codec::Framed::new(a, tokio_util::codec::LengthDelimitedCodec::new());
/// // ...pooled frames on the other.
/// let mut framed = pool.framed(b, PooledLengthDelimitedCodec::new(&pool));
/// peer.send(bytes::Bytes::from_static(b"hello")).await?;
/// let frame = framed.next().await.unwrap()?;
/// assert_eq!((&frame[..], frame.class_size()), (&b"hello"[..], Some(512)));
/// framed.send(frame).await?; // echo it back; the frame returns to the pool
/// assert_eq!(&peer.next().await.unwrap()?[..], b"hello");
/// # Ok(())
/// # }
/// ```
pub struct PooledLengthDelimitedCodec {
    config: LengthDelimitedBuilder,
    pool: BytesPool,
    state: State,
}

impl fmt::Debug for PooledLengthDelimitedCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Head => "head".to_string(),
            State::Sized(len) => format!("sized({len})"),
            State::Body { frame, len } => format!("body({}/{len})", frame.len()),
            State::Lent(len) => format!("lent({len})"),
        };
        f.debug_struct("PooledLengthDelimitedCodec")
            .field("config", &self.config)
            .field("state", &state)
            .finish()
    }
}

/// What one decoding step found.
enum Step {
    Frame(PooledBytes),
    /// Needs more input.
    More,
    /// A header asks for `len` bytes and the budget cannot cover them now.
    Budget(usize),
}

impl PooledLengthDelimitedCodec {
    /// A codec with tokio-util's defaults (`u32` big-endian length, frames
    /// up to 8 MiB) whose frames come from `pool`.
    ///
    /// ```
    /// let codec = pool_tokio::PooledLengthDelimitedCodec::new(pool_tokio::default_pool());
    /// assert_eq!(codec.max_frame_length(), 8 << 20);
    /// ```
    pub fn new(pool: &BytesPool) -> Self {
        match LengthDelimitedBuilder::new().new_codec(pool) {
            Ok(codec) => codec,
            Err(e) => unreachable!("the defaults are valid: {e}"),
        }
    }

    /// A builder, for other header layouts (see [`LengthDelimitedBuilder`]).
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let codec = pool_tokio::PooledLengthDelimitedCodec::builder()
    ///     .length_field_type::<u8>()
    ///     .new_codec(&pool)?;
    /// assert_eq!(codec.max_frame_length(), 255);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn builder() -> LengthDelimitedBuilder {
        LengthDelimitedBuilder::new()
    }

    /// The largest frame accepted (after clipping to the length field).
    ///
    /// ```
    /// let codec = pool_tokio::PooledLengthDelimitedCodec::new(&pool_tokio::BytesPool::new());
    /// assert_eq!(codec.max_frame_length(), 8 * 1024 * 1024);
    /// ```
    pub fn max_frame_length(&self) -> usize {
        self.config.max_frame_len
    }

    /// The pool frames come from.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let codec = pool_tokio::PooledLengthDelimitedCodec::new(&pool);
    /// drop(codec.pool().checkout(10));
    /// assert_eq!(pool.stats().checkouts(), 1);
    /// ```
    pub fn pool(&self) -> &BytesPool {
        &self.pool
    }
}

fn budget_error(e: TryCheckoutError) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{e} (a frame this size can never be checked out; lower max_frame_length)"),
    )
}
