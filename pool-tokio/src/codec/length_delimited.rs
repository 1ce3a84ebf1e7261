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

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_core::{Future, Stream};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::{Decoder, Encoder};

use crate::error::TryCheckoutError;
use crate::pool::BytesPool;
use crate::pooled::PooledBytes;

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

mod sealed {
    pub trait Sealed {}
}

/// The integer types a length field can be: `u8`, `u16`, `u32`, `u64` and
/// `usize` (as in tokio-util). Sealed.
pub trait LengthFieldType: sealed::Sealed {}

macro_rules! length_field_types {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl LengthFieldType for $t {}
    )*};
}
length_field_types!(u8, u16, u32, u64);
#[cfg(target_pointer_width = "64")]
length_field_types!(usize);

/// Configures a [`PooledLengthDelimitedCodec`]: the same options, with the
/// same defaults and meaning, as tokio-util's
/// `length_delimited::Builder` (a 4-byte big-endian length field at offset
/// 0, no adjustment, the header skipped, frames up to 8 MiB).
///
/// As in tokio-util, the encoder writes only the length field (of the body
/// length minus the adjustment) before the body; `length_field_offset` and
/// `num_skip` apply to decoding.
///
/// ```
/// use pool_tokio::{BytesPool, LengthDelimitedBuilder};
/// let pool = BytesPool::new();
/// let codec = LengthDelimitedBuilder::new()
///     .length_field_type::<u16>()
///     .little_endian()
///     .max_frame_length(1 << 20) // clipped to what a u16 can say
///     .new_codec(&pool)?;
/// assert_eq!(codec.max_frame_length(), 65_535);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LengthDelimitedBuilder {
    max_frame_len: usize,
    length_field_len: usize,
    length_field_offset: usize,
    length_adjustment: isize,
    num_skip: Option<usize>,
    big_endian: bool,
}

impl Default for LengthDelimitedBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl LengthDelimitedBuilder {
    /// tokio-util's defaults: `u32` big-endian length at offset 0, no
    /// adjustment, skip the header, at most 8 MiB per frame.
    ///
    /// ```
    /// let b = pool_tokio::LengthDelimitedBuilder::new();
    /// assert_eq!(b.new_codec(&pool_tokio::BytesPool::new())?.max_frame_length(), 8 << 20);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new() -> Self {
        LengthDelimitedBuilder {
            max_frame_len: DEFAULT_MAX_FRAME_LENGTH,
            length_field_len: 4,
            length_field_offset: 0,
            length_adjustment: 0,
            num_skip: None,
            big_endian: true,
        }
    }

    /// The length field is big-endian (the default).
    ///
    /// ```
    /// let _ = pool_tokio::LengthDelimitedBuilder::new().big_endian();
    /// ```
    pub fn big_endian(&mut self) -> &mut Self {
        self.big_endian = true;
        self
    }

    /// The length field is little-endian.
    ///
    /// ```
    /// let _ = pool_tokio::LengthDelimitedBuilder::new().little_endian();
    /// ```
    pub fn little_endian(&mut self) -> &mut Self {
        self.big_endian = false;
        self
    }

    /// The length field is in this machine's byte order.
    ///
    /// ```
    /// let _ = pool_tokio::LengthDelimitedBuilder::new().native_endian();
    /// ```
    pub fn native_endian(&mut self) -> &mut Self {
        self.big_endian = cfg!(target_endian = "big");
        self
    }

    /// The largest frame accepted, default 8 MiB; clipped to the largest
    /// frame the length field can describe (its largest value plus
    /// `length_adjustment`). Encoding and decoding check the same quantity,
    /// the frame's length: the body's length when encoding, the length
    /// field's value plus `length_adjustment` when decoding. So every frame
    /// the encoder accepts decodes, with any layout.
    ///
    /// tokio-util checks the raw field value when decoding instead. This
    /// codec still reads every stream tokio-util's encoder writes within
    /// the limit (its encoder checks the body, as this one does); it
    /// differs only on a header that no encoder with the same settings
    /// writes: with a positive adjustment, a field within the limit whose
    /// frame is over it is refused here; with a negative one, a field over
    /// the limit whose frame is within it is read here.
    ///
    /// ```
    /// use tokio_util::codec::{Decoder, Encoder};
    /// let pool = pool_tokio::BytesPool::new();
    /// // A one-byte length that counts itself: frames up to 254 bytes.
    /// let mut codec = pool_tokio::LengthDelimitedBuilder::new()
    ///     .length_field_type::<u8>()
    ///     .length_adjustment(-1)
    ///     .new_codec(&pool)?;
    /// assert_eq!(codec.max_frame_length(), 254);
    /// let mut wire = bytes::BytesMut::new();
    /// codec.encode(&[7u8; 254][..], &mut wire)?;
    /// assert_eq!(wire[0], 255); // the field: 254 bytes of body, plus itself
    /// assert_eq!(codec.decode(&mut wire)?.unwrap().len(), 254);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// ```
    /// let _ = pool_tokio::LengthDelimitedBuilder::new().max_frame_length(1 << 20);
    /// ```
    pub fn max_frame_length(&mut self, val: usize) -> &mut Self {
        self.max_frame_len = val;
        self
    }

    /// The length field's width as a type (`u8` ..= `u64`). Default `u32`.
    ///
    /// ```
    /// let _ = pool_tokio::LengthDelimitedBuilder::new().length_field_type::<u64>();
    /// ```
    pub fn length_field_type<T: LengthFieldType>(&mut self) -> &mut Self {
        self.length_field_len = std::mem::size_of::<T>();
        self
    }

    /// The length field's width in bytes, 1 to 8 (checked by
    /// [`new_codec`](Self::new_codec)). Default 4.
    ///
    /// ```
    /// let _ = pool_tokio::LengthDelimitedBuilder::new().length_field_length(3);
    /// ```
    pub fn length_field_length(&mut self, val: usize) -> &mut Self {
        self.length_field_len = val;
        self
    }

    /// Bytes before the length field in the header. Default 0.
    ///
    /// ```
    /// let _ = pool_tokio::LengthDelimitedBuilder::new().length_field_offset(2);
    /// ```
    pub fn length_field_offset(&mut self, val: usize) -> &mut Self {
        self.length_field_offset = val;
        self
    }

    /// Added to the length field's value to get the frame length (negative
    /// when the field counts header bytes). Default 0.
    ///
    /// ```
    /// let _ = pool_tokio::LengthDelimitedBuilder::new().length_adjustment(-2);
    /// ```
    pub fn length_adjustment(&mut self, val: isize) -> &mut Self {
        self.length_adjustment = val;
        self
    }

    /// Header bytes skipped before the frame starts; 0 keeps the whole
    /// header in the frame. Default: offset plus field length.
    ///
    /// ```
    /// let _ = pool_tokio::LengthDelimitedBuilder::new().num_skip(0);
    /// ```
    pub fn num_skip(&mut self, val: usize) -> &mut Self {
        self.num_skip = Some(val);
        self
    }

    /// Builds a codec whose frames come from `pool`; fails, saying what to
    /// change, if the length field's width is not 1 to 8 bytes (tokio-util
    /// panics there).
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let err = pool_tokio::LengthDelimitedBuilder::new()
    ///     .length_field_length(9)
    ///     .new_codec(&pool)
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("from 1 to 8"), "{err}");
    /// ```
    pub fn new_codec(&self, pool: &BytesPool) -> io::Result<PooledLengthDelimitedCodec> {
        if !(1..=8).contains(&self.length_field_len) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "length_field_length = {}: expected from 1 to 8 bytes",
                    self.length_field_len
                ),
            ));
        }
        let mut config = *self;
        let max_field = match 1u64.checked_shl(8 * config.length_field_len as u32) {
            Some(shl) => shl - 1,
            None => u64::MAX,
        };
        let allowed = max_field.saturating_add_signed(config.length_adjustment as i64);
        let allowed = usize::try_from(allowed).unwrap_or(usize::MAX);
        config.max_frame_len = config.max_frame_len.min(allowed);
        Ok(PooledLengthDelimitedCodec {
            config,
            pool: pool.clone(),
            state: State::Head,
        })
    }

    fn num_head_bytes(&self) -> usize {
        (self.length_field_offset + self.length_field_len).max(self.num_skip.unwrap_or(0))
    }

    fn get_num_skip(&self) -> usize {
        self.num_skip
            .unwrap_or(self.length_field_offset + self.length_field_len)
    }

    /// [`new_codec`](LengthDelimitedBuilder::new_codec) in a pooled
    /// `Framed` over `io` ([`BytesPool::framed`]), as tokio-util's
    /// `new_framed`; fails as `new_codec` does.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use futures_util::{SinkExt, StreamExt};
    /// let pool = pool_tokio::BytesPool::new();
    /// let (a, b) = tokio::io::duplex(1024);
    /// let builder = pool_tokio::LengthDelimitedBuilder::new();
    /// let mut left = builder.new_framed(&pool, a)?;
    /// let mut right = builder.new_framed(&pool, b)?;
    /// left.send(bytes::Bytes::from_static(b"hi")).await?;
    /// assert_eq!(right.next().await.unwrap()?, &b"hi"[..]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn new_framed<T>(
        &self,
        pool: &BytesPool,
        io: T,
    ) -> io::Result<super::PooledFramed<T, PooledLengthDelimitedCodec>> {
        Ok(pool.framed(io, self.new_codec(pool)?))
    }

    /// [`new_codec`](LengthDelimitedBuilder::new_codec) in a pooled
    /// `FramedRead` over `io` ([`BytesPool::framed_read`], a read buffer of
    /// [`DEFAULT_FRAME_BUFFER`](super::DEFAULT_FRAME_BUFFER)), as
    /// tokio-util's `new_read`; fails as `new_codec` does.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let read = pool_tokio::LengthDelimitedBuilder::new().new_read(&pool, tokio::io::empty())?;
    /// # drop(read);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new_read<T>(
        &self,
        pool: &BytesPool,
        io: T,
    ) -> io::Result<super::PooledFramedRead<T, PooledLengthDelimitedCodec>> {
        Ok(pool.framed_read(io, self.new_codec(pool)?, super::DEFAULT_FRAME_BUFFER))
    }

    /// [`new_codec`](LengthDelimitedBuilder::new_codec) in a pooled
    /// `FramedWrite` over `io` ([`BytesPool::framed_write`], a write buffer
    /// of [`DEFAULT_FRAME_BUFFER`](super::DEFAULT_FRAME_BUFFER)), as
    /// tokio-util's `new_write`; fails as `new_codec` does.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let write = pool_tokio::LengthDelimitedBuilder::new().new_write(&pool, tokio::io::sink())?;
    /// # drop(write);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new_write<T>(
        &self,
        pool: &BytesPool,
        io: T,
    ) -> io::Result<super::PooledFramedWrite<T, PooledLengthDelimitedCodec>> {
        Ok(pool.framed_write(io, self.new_codec(pool)?, super::DEFAULT_FRAME_BUFFER))
    }
}

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

    /// Reads a header from `src` if one is complete: the frame length.
    fn decode_head(&self, src: &mut BytesMut) -> io::Result<Option<usize>> {
        let c = &self.config;
        if src.len() < c.num_head_bytes() {
            return Ok(None);
        }
        let mut field = &src[c.length_field_offset..c.length_field_offset + c.length_field_len];
        let n = if c.big_endian {
            field.get_uint(c.length_field_len)
        } else {
            field.get_uint_le(c.length_field_len)
        };
        // The frame length, checked against `max_frame_len` as the encoder
        // checks the body it writes: the same quantity both ways, so every
        // frame the encoder accepts decodes (tokio-util checks the raw field
        // here, and refuses its own frames when the adjustment is negative).
        let Some(len) = u64::try_from(i128::from(n) + c.length_adjustment as i128).ok() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "provided length would overflow after adjustment",
            ));
        };
        if len > c.max_frame_len as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "frame size too big: the header says {len} bytes (length field {n}, \
                     length_adjustment {}), over max_frame_length ({}); raise \
                     `max_frame_length` on the decoding side, or check that both ends use the \
                     same header layout",
                    c.length_adjustment, c.max_frame_len
                ),
            ));
        }
        // Checked against max_frame_len (a usize) above.
        let n = len as usize;
        if n > isize::MAX as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "frame size too big: {n} bytes cannot be allocated; lower `max_frame_length`"
                ),
            ));
        }
        let skip = c.get_num_skip();
        if skip == 0 && n == 0 {
            // The header stays in the stream and the frame takes none of
            // it: the same header would give an empty frame forever (as
            // tokio-util's codec does). Refuse it.
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "an empty frame with num_skip(0) consumes nothing, so its header would repeat \
                 forever; with num_skip(0) the length (after length_adjustment) must cover the \
                 header: raise length_adjustment, or skip the header with num_skip",
            ));
        }
        src.advance(skip);
        Ok(Some(n))
    }

    /// The header for a body of `len` bytes, in the first `.1` bytes.
    fn head(&self, len: usize) -> io::Result<([u8; 8], usize)> {
        let c = &self.config;
        if len > c.max_frame_len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "frame size too big: {len} bytes, over max_frame_length ({}); raise \
                     `max_frame_length` on both ends, or split the payload",
                    c.max_frame_len
                ),
            ));
        }
        let n = if c.length_adjustment < 0 {
            len.checked_add(c.length_adjustment.unsigned_abs())
        } else {
            len.checked_sub(c.length_adjustment as usize)
        };
        let n = n.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "provided length would overflow after adjustment",
            )
        })?;
        let mut head = [0u8; 8];
        let mut out = &mut head[..];
        if c.big_endian {
            out.put_uint(n as u64, c.length_field_len);
        } else {
            out.put_uint_le(n as u64, c.length_field_len);
        }
        Ok((head, c.length_field_len))
    }

    /// Moves body bytes from `src` into the frame; the frame when complete.
    #[inline]
    fn fill(&mut self, src: &mut BytesMut) -> Option<PooledBytes> {
        let State::Body { frame, len } = &mut self.state else {
            return None;
        };
        let take = (*len - frame.len()).min(src.len());
        if take > 0 {
            frame.extend_from_slice(&src[..take]);
            src.advance(take);
        }
        if frame.len() < *len {
            return None;
        }
        match std::mem::replace(&mut self.state, State::Head) {
            State::Body { frame, .. } => Some(frame),
            _ => unreachable!("matched above"),
        }
    }

    /// One decoding step. `wait` says whether the caller can wait for the
    /// budget (a [`FrameReader`]); if not, a frame the budget cannot cover
    /// is an overdraft.
    fn step(&mut self, src: &mut BytesMut, wait: bool) -> io::Result<Step> {
        loop {
            match self.state {
                State::Lent(len) => self.state = State::Sized(len),
                State::Head => match self.decode_head(src)? {
                    Some(len) => self.state = State::Sized(len),
                    None => return Ok(Step::More),
                },
                State::Sized(len) => {
                    let frame = if wait {
                        let charge = self.pool.budget_charge_for(len).map_err(budget_error)?;
                        if !self.pool.try_take_budget(charge) {
                            return Ok(Step::Budget(len));
                        }
                        self.pool.serve(len, charge)
                    } else {
                        self.pool.checkout(len)
                    };
                    self.state = State::Body { frame, len };
                }
                State::Body { .. } => {
                    return Ok(match self.fill(src) {
                        Some(frame) => Step::Frame(frame),
                        None => Step::More,
                    })
                }
            }
        }
    }

    /// Writes one frame to `io`: the header and the body with one
    /// `write_all_buf` of a chained buffer, which is a vectored write where
    /// `io` supports it (`TcpStream` and its halves do): the body is never
    /// copied. Does not flush (a `TcpStream` needs none; a `BufWriter`
    /// does). Fails, without writing, for a frame over `max_frame_length`.
    ///
    /// Use it for large frames; for many small ones, a `FramedWrite` (which
    /// batches them in its write buffer) makes fewer system calls.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe, as tokio's `AsyncWriteExt::write_all` is not: if the
    /// future is dropped before it completes (a `tokio::select!` branch
    /// that lost, a `tokio::time::timeout` that expired), a prefix of the
    /// frame, header included, may already be written, and nothing
    /// remembers the rest. The stream is then out of step: a frame written
    /// after it follows a partial one, and the peer reads garbage. So after
    /// a cancelled `write_frame`, shut the writer down rather than write to
    /// it again. Where a connection must outlive a cancelled write, send
    /// frames through a `FramedWrite` with this codec instead
    /// (`SinkExt::send`, at the cost of copying the body into its write
    /// buffer): an encoded frame stays in that buffer, so a cancelled send
    /// leaves the rest of it to the next flush and the stream stays whole.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let codec = pool_tokio::PooledLengthDelimitedCodec::new(pool_tokio::default_pool());
    /// let mut out = Vec::new();
    /// codec.write_frame(&mut out, b"abc").await?;
    /// assert_eq!(out, b"\0\0\0\x03abc");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn write_frame<W>(&self, io: &mut W, frame: &[u8]) -> io::Result<()>
    where
        W: AsyncWrite + Unpin,
    {
        let (head, n) = self.head(frame.len())?;
        let mut buf = (&head[..n]).chain(frame);
        io.write_all_buf(&mut buf).await
    }

    /// A [`FrameReader`] over `io` with this codec: a `Stream` of pooled
    /// frames that reads large bodies straight into their frame buffers
    /// and waits for the pool's budget instead of overdrawing it.
    ///
    /// ```
    /// use futures_util::StreamExt;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let pool = pool_tokio::BytesPool::new();
    /// let mut reader = pool_tokio::PooledLengthDelimitedCodec::new(&pool)
    ///     .new_reader(&b"\0\0\0\x02hi\0\0\0\x00"[..]);
    /// assert_eq!(&reader.next().await.unwrap()?[..], b"hi");
    /// assert_eq!(&reader.next().await.unwrap()?[..], b"");
    /// assert!(reader.next().await.is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn new_reader<R: AsyncRead>(self, io: R) -> FrameReader<R> {
        FrameReader {
            buf: None,
            io,
            codec: self,
            wait: None,
            eof: false,
            done: false,
        }
    }
}

fn budget_error(e: TryCheckoutError) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{e} (a frame this size can never be checked out; lower max_frame_length)"),
    )
}

impl Decoder for PooledLengthDelimitedCodec {
    type Item = PooledBytes;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<PooledBytes>> {
        // A body a pooled framed value read into since the last call.
        if let Some(super::Direct { frame, len }) = super::take_direct(self, src) {
            self.state = State::Body { frame, len };
        }
        match self.step(src, false)? {
            Step::Frame(frame) => Ok(Some(frame)),
            Step::More => {
                self.lend_body(src);
                Ok(None)
            }
            Step::Budget(_) => unreachable!("a sync step never waits"),
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> io::Result<Option<PooledBytes>> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() && matches!(self.state, State::Head) => Ok(None),
            // tokio-util's error for a stream that ends inside a frame.
            None => Err(io::Error::other("bytes remaining on stream")),
        }
    }
}

impl Encoder<&[u8]> for PooledLengthDelimitedCodec {
    type Error = io::Error;

    fn encode(&mut self, data: &[u8], dst: &mut BytesMut) -> io::Result<()> {
        let (head, n) = self.head(data.len())?;
        dst.reserve(n + data.len());
        dst.put_slice(&head[..n]);
        dst.put_slice(data);
        Ok(())
    }
}

impl PooledLengthDelimitedCodec {
    /// `src` is drained into a frame that lacks at least `DIRECT_READ`
    /// bytes: lend the frame to the pooled framed value decoding from
    /// `src`, if one is, to read the rest straight into it.
    #[inline]
    fn lend_body(&mut self, src: &BytesMut) {
        match &self.state {
            State::Body { frame, len } if src.is_empty() && *len - frame.len() >= DIRECT_READ => {}
            _ => return,
        }
        let State::Body { frame, len } = std::mem::replace(&mut self.state, State::Head) else {
            unreachable!("matched above")
        };
        self.state = State::Lent(len);
        if let Err(super::Direct { frame, len }) =
            super::lend_direct(self, src, super::Direct { frame, len })
        {
            self.state = State::Body { frame, len };
        }
    }

    /// Header into `dst`, then the body: queued by value when a pooled
    /// framed value is encoding into its own write buffer, else copied.
    fn encode_body(&mut self, body: super::Body, dst: &mut BytesMut) -> io::Result<()> {
        let (head, n) = self.head(body.chunk().len())?;
        if let Some(body) = super::queue_body(self, dst, &head[..n], body) {
            dst.reserve(n + body.chunk().len());
            dst.put_slice(&head[..n]);
            dst.put_slice(body.chunk());
        }
        Ok(())
    }
}

impl Encoder<PooledBytes> for PooledLengthDelimitedCodec {
    type Error = io::Error;

    /// In a pooled framed value ([`BytesPool::framed`],
    /// [`framed_write`](BytesPool::framed_write)): writes the header and
    /// queues the frame by value (no copy; it goes back to the pool once
    /// written). Elsewhere (tokio-util's `Framed`): copies the frame into
    /// the write buffer and returns it to the pool.
    fn encode(&mut self, data: PooledBytes, dst: &mut BytesMut) -> io::Result<()> {
        self.encode_body(super::Body::Pooled(data), dst)
    }
}

impl Encoder<Bytes> for PooledLengthDelimitedCodec {
    type Error = io::Error;

    /// Queued by value in a pooled framed value, copied elsewhere (as for
    /// `PooledBytes`).
    fn encode(&mut self, data: Bytes, dst: &mut BytesMut) -> io::Result<()> {
        self.encode_body(super::Body::Shared(data), dst)
    }
}

impl Encoder<BytesMut> for PooledLengthDelimitedCodec {
    type Error = io::Error;

    /// Queued by value (frozen, which does not copy) in a pooled framed
    /// value, copied elsewhere (as for `PooledBytes`).
    fn encode(&mut self, data: BytesMut, dst: &mut BytesMut) -> io::Result<()> {
        self.encode_body(super::Body::Shared(data.freeze()), dst)
    }
}

/// A wait for `charge` bytes of budget; yields the charge once taken.
/// Boxed once per wait (only when the budget is short), never per frame.
type BudgetWait = Pin<Box<dyn Future<Output = usize> + Send>>;

fn wait_for(pool: &BytesPool, charge: usize) -> BudgetWait {
    let pool = pool.clone();
    Box::pin(async move {
        pool.take_budget(charge).await;
        charge
    })
}

/// A `Stream` of length-delimited frames as [`PooledBytes`], from
/// [`PooledLengthDelimitedCodec::new_reader`].
///
/// Compared with the codec in tokio-util's `FramedRead`:
/// - bodies of 4 KiB or more are read straight into the frame's own
///   buffer once the read buffer is drained: no copy, and a read per
///   socket-buffer-full rather than per read buffer (a pooled framed value,
///   [`BytesPool::framed`], does the same);
/// - on a pool with a budget it waits (asynchronously, first come first
///   served) until the budget covers the next frame instead of overdrawing
///   it. Cancel-safe: a reader dropped while waiting gives back what was
///   set aside for it. See [`BytesPool`]'s budget docs for the deadlock a
///   reader that holds its own frames while it waits can build.
///
/// Its read buffer (8 KiB, from the pool, charged to the budget) is checked
/// out at the first poll and returned when the reader is dropped or
/// [`into_inner`](FrameReader::into_inner) is called. A stream that ends
/// inside a frame yields an error, as tokio-util's codec does; the partial
/// frame goes back to the pool.
///
/// ```
/// use futures_util::StreamExt;
/// use pool_tokio::{BytesPool, PooledLengthDelimitedCodec};
/// use tokio::io::AsyncWriteExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let pool = BytesPool::new();
/// let (mut tx, rx) = tokio::io::duplex(256 << 10); // room for the frame
/// let codec = PooledLengthDelimitedCodec::new(&pool);
/// codec.write_frame(&mut tx, &vec![7u8; 100_000]).await?;
/// let mut frames = codec.new_reader(rx);
/// let frame = frames.next().await.unwrap()?;
/// assert_eq!((frame.len(), frame.class_size()), (100_000, Some(112 << 10)));
/// # Ok(())
/// # }
/// ```
pub struct FrameReader<R> {
    buf: Option<PooledBytes>,
    io: R,
    codec: PooledLengthDelimitedCodec,
    wait: Option<BudgetWait>,
    eof: bool,
    /// Ended (or failed): yields `None` from now on, as `FramedRead` does.
    done: bool,
}

impl<R: fmt::Debug> fmt::Debug for FrameReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameReader")
            .field("io", &self.io)
            .field("codec", &self.codec)
            .field("waiting_for_budget", &self.wait.is_some())
            .finish()
    }
}

impl<R> FrameReader<R> {
    /// The I/O object.
    ///
    /// ```
    /// let codec = pool_tokio::PooledLengthDelimitedCodec::new(pool_tokio::default_pool());
    /// assert!(codec.new_reader(&b""[..]).get_ref().is_empty());
    /// ```
    pub fn get_ref(&self) -> &R {
        &self.io
    }

    /// The codec (its configuration and decoding state).
    ///
    /// ```
    /// let codec = pool_tokio::PooledLengthDelimitedCodec::new(pool_tokio::default_pool());
    /// assert_eq!(codec.new_reader(&b""[..]).codec().max_frame_length(), 8 << 20);
    /// ```
    pub fn codec(&self) -> &PooledLengthDelimitedCodec {
        &self.codec
    }

    /// Takes the reader apart: the I/O object. Bytes read and not yet
    /// decoded are lost; the buffers go back to the pool.
    ///
    /// ```
    /// let codec = pool_tokio::PooledLengthDelimitedCodec::new(pool_tokio::default_pool());
    /// let io: &[u8] = codec.new_reader(&b"x"[..]).into_inner();
    /// assert_eq!(io, b"x");
    /// ```
    pub fn into_inner(self) -> R {
        self.io
    }
}

impl<R: AsyncRead + Unpin> Stream for FrameReader<R> {
    type Item = io::Result<PooledBytes>;

    /// The next frame; `None` once the stream has ended or after an error.
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let next = ready!(this.poll_frame(cx));
        if !matches!(next, Some(Ok(_))) {
            this.done = true;
            // A partial frame goes back to the pool now.
            this.codec.state = State::Head;
        }
        Poll::Ready(next)
    }
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<PooledBytes>>> {
        let this = self;
        loop {
            if let Some(wait) = this.wait.as_mut() {
                let charge = ready!(wait.as_mut().poll(cx));
                this.wait = None;
                // No await point between taking the bytes and the guard
                // that owns them.
                if this.buf.is_none() {
                    this.buf = Some(this.codec.pool.serve(READ_BUFFER, charge));
                } else {
                    let State::Sized(len) = this.codec.state else {
                        unreachable!("a reader waits only for its read buffer or a sized frame")
                    };
                    let frame = this.codec.pool.serve(len, charge);
                    this.codec.state = State::Body { frame, len };
                }
            }
            let buf = match &mut this.buf {
                Some(buf) => buf,
                None => match this.codec.pool.try_checkout(READ_BUFFER) {
                    Ok(buf) => this.buf.insert(buf),
                    Err(TryCheckoutError::BudgetExhausted { charge, .. }) => {
                        this.wait = Some(wait_for(&this.codec.pool, charge));
                        continue;
                    }
                    Err(e) => return Poll::Ready(Some(Err(budget_error(e)))),
                },
            };
            match this.codec.step(buf, true) {
                Err(e) => return Poll::Ready(Some(Err(e))),
                Ok(Step::Frame(frame)) => return Poll::Ready(Some(Ok(frame))),
                Ok(Step::Budget(len)) => {
                    // Checked by `step`.
                    let charge = this.codec.pool.budget_charge_for(len).unwrap_or(len);
                    this.wait = Some(wait_for(&this.codec.pool, charge));
                    continue;
                }
                Ok(Step::More) => {}
            }
            if this.eof {
                return Poll::Ready(
                    if buf.is_empty() && matches!(this.codec.state, State::Head) {
                        None
                    } else {
                        Some(Err(io::Error::other("bytes remaining on stream")))
                    },
                );
            }
            let read = match &mut this.codec.state {
                State::Body { frame, len }
                    if buf.is_empty() && *len - frame.len() >= DIRECT_READ =>
                {
                    let want = *len - frame.len();
                    let mut dst = (&mut **frame).limit(want);
                    ready!(tokio_util::io::poll_read_buf(
                        Pin::new(&mut this.io),
                        cx,
                        &mut dst
                    ))
                }
                _ => {
                    // `step` drains the buffer down to at most a partial
                    // header, so this moves that to the front and never
                    // allocates; the buffer goes back to the pool whole.
                    let full = buf.class_size().unwrap_or(READ_BUFFER);
                    let want = full.saturating_sub(buf.len());
                    if !buf.try_reclaim(want) && buf.capacity() == buf.len() {
                        buf.reserve(1);
                    }
                    ready!(tokio_util::io::poll_read_buf(
                        Pin::new(&mut this.io),
                        cx,
                        &mut **buf
                    ))
                }
            };
            match read {
                Ok(0) => this.eof = true,
                Ok(_) => {}
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
        }
    }
}
