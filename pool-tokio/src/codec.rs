//! `Framed`, `FramedRead` and `FramedWrite` whose buffers come from a pool.
//!
//! The pooled framed values run tokio-util's read loop and write path
//! themselves (`framed_io`) rather than wrapping tokio-util's types, for
//! two reasons: the read buffer stays a pooled, charged checkout even when
//! a codec's frames share it (tokio-util would `reserve` its way to plain
//! allocations), and the pooled length-delimited codec's frames are queued
//! by value and written vectored instead of being copied into the write
//! buffer.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Decoder, Encoder};

use crate::error::TryCheckoutError;
use crate::pool::{BytesPool, PooledBytes};

mod framed_io;
mod length_delimited;
mod pooled_decoder;

pub(crate) use framed_io::{lend_direct, queue_body, take_direct, Body, Direct};
use framed_io::{Owned, ReadSide, WriteSide};

pub use length_delimited::{
    FrameReader, LengthDelimitedBuilder, LengthFieldType, PooledLengthDelimitedCodec,
};
pub use pooled_decoder::PooledDecoder;

/// Each pooled framed buffer is at least this large (tokio-util's default
/// buffer size).
pub const DEFAULT_FRAME_BUFFER: usize = 8 * 1024;

/// A buffer of at least `capacity` (and 8 KiB), handed over cleared.
fn owned(pool: &BytesPool, capacity: usize) -> Owned {
    Owned::new(pool, capacity.max(DEFAULT_FRAME_BUFFER))
}

impl BytesPool {
    /// A [`PooledFramed`]: tokio-util's `Framed` (a `Stream` of decoded
    /// frames and a `Sink` of items) whose read and write buffers come from
    /// this pool, 8 KiB each. They go back when the value is dropped or
    /// taken apart with [`PooledFramed::into_parts`].
    ///
    /// Which path copies: with [`PooledLengthDelimitedCodec`], frames sent
    /// as `PooledBytes`, `Bytes` or `BytesMut` are queued by value and
    /// written vectored, never copied; any other codec or item is copied
    /// into the write buffer by `Encoder::encode`, as in tokio-util. On the
    /// read side, the same codec's large bodies (4 KiB or more left once the
    /// read buffer is drained) are read straight into the frame's pooled
    /// buffer; only headers, small frames and the bytes that came in with
    /// a header are copied out of the read buffer.
    ///
    /// ```
    /// use futures_util::{SinkExt, StreamExt};
    /// use tokio_util::codec::LinesCodec;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = pool_tokio::BytesPool::new();
    /// let (a, b) = tokio::io::duplex(1024);
    /// let mut left = pool.framed(a, LinesCodec::new());
    /// let mut right = pool.framed(b, LinesCodec::new());
    /// left.send("hello").await.unwrap();
    /// assert_eq!(right.next().await.unwrap().unwrap(), "hello");
    /// assert_eq!(pool.stats().outstanding(), 4);
    /// drop((left, right));
    /// assert_eq!(pool.stats().outstanding(), 0);
    /// # }
    /// ```
    pub fn framed<T, U>(&self, io: T, codec: U) -> PooledFramed<T, U> {
        self.framed_with_capacity(io, codec, DEFAULT_FRAME_BUFFER, DEFAULT_FRAME_BUFFER)
    }

    /// [`framed`](BytesPool::framed) with chosen buffer sizes (at least
    /// 8 KiB each, tokio-util's default). The write buffer's size is also
    /// the backpressure boundary: `poll_ready` writes while that many bytes
    /// (headers, encoded bytes and queued frames) are queued.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = pool_tokio::BytesPool::new();
    /// let (a, _b) = tokio::io::duplex(64);
    /// let framed = pool.framed_with_capacity(a, tokio_util::codec::BytesCodec::new(), 64 << 10, 16 << 10);
    /// assert_eq!(framed.read_buffer().capacity(), 64 << 10);
    /// assert_eq!(framed.write_buffer().capacity(), 16 << 10);
    /// # }
    /// ```
    pub fn framed_with_capacity<T, U>(
        &self,
        io: T,
        codec: U,
        read_capacity: usize,
        write_capacity: usize,
    ) -> PooledFramed<T, U> {
        PooledFramed {
            read: ReadSide::new(owned(self, read_capacity)),
            write: WriteSide::new(owned(self, write_capacity)),
            io,
            codec,
        }
    }

    /// A [`PooledFramedRead`] (tokio-util's `FramedRead`) whose read buffer
    /// (at least 8 KiB) comes from this pool and goes back when it is
    /// dropped or taken apart.
    ///
    /// ```
    /// use futures_util::StreamExt;
    /// use tokio_util::codec::BytesCodec;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = pool_tokio::BytesPool::new();
    /// let mut reader = pool.framed_read(&b"some bytes"[..], BytesCodec::new(), 8192);
    /// assert_eq!(&reader.next().await.unwrap().unwrap()[..], b"some bytes");
    /// drop(reader);
    /// assert_eq!(pool.stats().outstanding(), 0);
    /// # }
    /// ```
    pub fn framed_read<T, D>(&self, io: T, decoder: D, capacity: usize) -> PooledFramedRead<T, D> {
        PooledFramedRead {
            read: ReadSide::new(owned(self, capacity)),
            io,
            decoder,
        }
    }

    /// A [`PooledFramedWrite`] (tokio-util's `FramedWrite`) whose write
    /// buffer (at least 8 KiB, also the backpressure boundary in bytes
    /// queued) comes from this pool and goes back when it is dropped or
    /// taken apart. With [`PooledLengthDelimitedCodec`] it copies no body
    /// (see [`PooledFramed`]).
    ///
    /// ```
    /// use futures_util::SinkExt;
    /// use tokio_util::codec::LengthDelimitedCodec;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = pool_tokio::BytesPool::new();
    /// let mut writer = pool.framed_write(Vec::new(), LengthDelimitedCodec::new(), 8192);
    /// writer.send(bytes::Bytes::from_static(b"abc")).await.unwrap();
    /// let parts = writer.into_parts();
    /// assert_eq!(parts.io, b"\0\0\0\x03abc");
    /// # }
    /// ```
    pub fn framed_write<T, E>(
        &self,
        io: T,
        encoder: E,
        capacity: usize,
    ) -> PooledFramedWrite<T, E> {
        PooledFramedWrite {
            write: WriteSide::new(owned(self, capacity)),
            io,
            encoder,
        }
    }

    /// [`framed`](BytesPool::framed), waiting (cancel-safe, first come
    /// first served) until the budget covers both buffers instead of
    /// overdrawing it: one wait for both, holding nothing meanwhile (two
    /// callers that each held one buffer while waiting for the other could
    /// hold the whole budget between them). Fails at once with
    /// [`TryCheckoutError::ExceedsBudget`] if the whole budget is less than
    /// the two buffers' charge. Immediate on a pool without a budget.
    ///
    /// The framed value's buffers then stay charged until it is dropped;
    /// see the budget notes on [`BytesPool`] for the deadlock that waiting
    /// while holding budgeted buffers can build.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), pool_tokio::TryCheckoutError> {
    /// let pool = pool_tokio::BytesPool::builder().budget(16 << 10).build().unwrap();
    /// let (a, b) = tokio::io::duplex(64);
    /// let first = pool.framed_async(a, tokio_util::codec::BytesCodec::new()).await?;
    /// assert_eq!(pool.budget().unwrap().available(), 0);
    /// let second = tokio::spawn({
    ///     let pool = pool.clone();
    ///     async move { pool.framed_async(b, tokio_util::codec::BytesCodec::new()).await.map(drop) }
    /// });
    /// tokio::task::yield_now().await;
    /// assert!(!second.is_finished()); // waits for the budget...
    /// drop(first); // ...until the first one's buffers come back
    /// second.await.unwrap()?;
    /// assert_eq!(pool.budget().unwrap().overdrafts, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn framed_async<T, U>(
        &self,
        io: T,
        codec: U,
    ) -> Result<PooledFramed<T, U>, TryCheckoutError> {
        // Both charges in one wait (see `take_budget_for_each`); no await
        // point after it: once charged, the guards own the bytes. Each of
        // its class exactly: a larger idle buffer would be swapped back to
        // class at the first read.
        let charge = self.take_budget_for_each(DEFAULT_FRAME_BUFFER, 2).await?;
        let read = self.serve_within(DEFAULT_FRAME_BUFFER, charge, 0);
        let write = self.serve_within(DEFAULT_FRAME_BUFFER, charge, 0);
        Ok(PooledFramed {
            read: ReadSide::new(Owned::with(self, read, DEFAULT_FRAME_BUFFER)),
            write: WriteSide::new(Owned::with(self, write, DEFAULT_FRAME_BUFFER)),
            io,
            codec,
        })
    }
}

/// The pieces of a taken-apart pooled framed value. Unread and unwritten
/// data stay in the buffers, which are still pooled guards: dropping them
/// returns them.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let pool = pool_tokio::BytesPool::new();
/// let framed = pool.framed(tokio::io::empty(), tokio_util::codec::BytesCodec::new());
/// let parts = framed.into_parts();
/// assert!(parts.read_buf.as_ref().unwrap().is_empty());
/// assert_eq!(pool.stats().outstanding(), 2);
/// drop(parts);
/// assert_eq!(pool.stats().outstanding(), 0);
/// # }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct PooledParts<T, U> {
    /// The I/O object.
    pub io: T,
    /// The codec.
    pub codec: U,
    /// The read buffer, with any data read and not yet decoded (`None` for
    /// a `PooledFramedWrite`).
    pub read_buf: Option<PooledBytes>,
    /// The write buffer, with any data encoded and not yet written (`None`
    /// for a `PooledFramedRead`).
    pub write_buf: Option<PooledBytes>,
}

/// A pooled `Framed`: a `Stream` of decoded frames and a `Sink` of items
/// over one I/O object, with pooled read and write buffers. From
/// [`BytesPool::framed`].
///
/// It behaves as tokio-util's `Framed` does (same read loop, same end of
/// stream and error handling, the same `Encoder`/`Decoder` contracts), with
/// these differences:
///
/// - **Writing.** With [`PooledLengthDelimitedCodec`], a [`PooledBytes`],
///   `Bytes` or `BytesMut` frame is queued by value: only its header goes
///   into the write buffer, and flushing writes header and body with
///   vectored writes (`poll_write_vectored`; one slice per write where the
///   I/O object is not vectored, so wrap such an object in a
///   `tokio::io::BufWriter`). **No body is copied**; a pooled frame goes
///   back to the pool once written. Every other codec and item (`&[u8]`,
///   custom codecs, tokio-util's codecs) goes through `Encoder::encode`,
///   which **copies** the item into the write buffer; after a frame larger
///   than the write buffer, the grown buffer goes back to the pool once
///   written and one of the configured size is checked out. (A codec of
///   yours that holds a `PooledLengthDelimitedCodec` as its first field and
///   passes the write buffer straight to its `encode` gets the queueing
///   too; such a wrapper must not rewrite what the inner codec wrote, since
///   the body is not in the write buffer.)
/// - **Backpressure** counts bytes queued, header and bodies alike
///   ([`queued_bytes`](Self::queued_bytes)): `poll_ready` writes until fewer
///   than [`backpressure_boundary`](Self::backpressure_boundary) bytes (the
///   write buffer's size) are queued.
/// - **Reading.** The read buffer is always a pooled checkout. Before each
///   read it takes its whole size back in place if no frame shares it;
///   where frames from a codec that splits them off the buffer (tokio-util's
///   `LengthDelimitedCodec`, `BytesCodec`, `LinesCodec`) still share it, a
///   fresh pooled buffer takes the unconsumed bytes (a copy of at most one
///   read's worth) and the old one goes back to the pool. A codec that
///   grows the buffer inside `decode` gets a pooled buffer of that size the
///   same way; once empty, a grown buffer goes back for one of its class.
///   With [`PooledLengthDelimitedCodec`], a body that still lacks 4 KiB or
///   more once the read buffer is drained is read **straight into the
///   frame's own pooled buffer** (as [`FrameReader`] does): the read buffer
///   carries only headers, small frames and what arrived with a header,
///   so it stays at its class and large bodies are not copied. The body in
///   progress is kept in the framed value, so a `next()` future dropped
///   mid-body loses nothing; [`into_parts`](Self::into_parts) puts it back
///   in front of the read buffer, where the codec (which still knows the
///   frame's length) reads it. Other codecs read through the read buffer
///   as in tokio-util.
///
/// `Unpin` I/O objects and codecs only (pin a `!Unpin` one with `Box::pin`
/// first). Dropping it returns both buffers and any queued frames.
///
/// ```
/// use futures_util::{SinkExt, StreamExt};
/// use pool_tokio::{BytesPool, PooledLengthDelimitedCodec};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let pool = BytesPool::new();
/// let (a, b) = tokio::io::duplex(64 << 10);
/// let mut left = pool.framed(a, PooledLengthDelimitedCodec::new(&pool));
/// let mut right = pool.framed(b, PooledLengthDelimitedCodec::new(&pool));
/// let mut frame = pool.checkout(20_000);
/// frame.extend_from_slice(&[7; 20_000]);
/// left.send(frame).await?; // queued by value, written vectored: no copy
/// let got = right.next().await.unwrap()?;
/// assert_eq!(got.len(), 20_000);
/// // Only the 4-byte header went through the write buffer.
/// assert_eq!(left.write_buffer().capacity(), 8192);
/// # Ok(())
/// # }
/// ```
pub struct PooledFramed<T, U> {
    io: T,
    codec: U,
    read: ReadSide,
    write: WriteSide,
}

/// A pooled `FramedRead`: a `Stream` of decoded frames with a pooled read
/// buffer, from [`BytesPool::framed_read`]. Reads as [`PooledFramed`] does;
/// dropping it returns the buffer.
pub struct PooledFramedRead<T, D> {
    io: T,
    decoder: D,
    read: ReadSide,
}

/// A pooled `FramedWrite`: a `Sink` of items with a pooled write buffer,
/// from [`BytesPool::framed_write`]. Writes as [`PooledFramed`] does (no
/// copy of a body with [`PooledLengthDelimitedCodec`]); dropping it returns
/// the buffer and any queued frames.
///
/// ```
/// use futures_util::SinkExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let pool = pool_tokio::BytesPool::new();
/// let codec = pool_tokio::PooledLengthDelimitedCodec::new(&pool);
/// let mut writer = pool.framed_write(Vec::new(), codec, 8192);
/// writer.send(bytes::Bytes::from_static(b"abc")).await?;
/// assert_eq!(writer.get_ref(), b"\0\0\0\x03abc");
/// # Ok(())
/// # }
/// ```
pub struct PooledFramedWrite<T, E> {
    io: T,
    encoder: E,
    write: WriteSide,
}

/// Accessors shared by the three types.
macro_rules! io_accessors {
    ($ty:ident, $codec:ident, $make:literal) => {
        impl<T, $codec> $ty<T, $codec> {
            /// The I/O object.
            ///
            /// ```
            /// let pool = pool_tokio::BytesPool::new();
            /// let io: Vec<u8> = b"abc".to_vec();
            #[doc = concat!("let framed = pool.", $make, ";")]
            /// assert_eq!(framed.get_ref(), b"abc");
            /// ```
            pub fn get_ref(&self) -> &T {
                &self.io
            }

            /// The I/O object, mutably. Bytes read or written through it
            /// directly bypass the buffers (and the frames queued).
            ///
            /// ```
            /// let pool = pool_tokio::BytesPool::new();
            /// let io: Vec<u8> = Vec::new();
            #[doc = concat!("let mut framed = pool.", $make, ";")]
            /// framed.get_mut().push(1);
            /// assert_eq!(framed.get_ref(), &[1]);
            /// ```
            pub fn get_mut(&mut self) -> &mut T {
                &mut self.io
            }
        }

        impl<T: fmt::Debug, $codec: fmt::Debug> fmt::Debug for $ty<T, $codec> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.debug(f.debug_struct(stringify!($ty)).field("io", &self.io))
                    .finish()
            }
        }
    };
}

io_accessors!(
    PooledFramed,
    U,
    "framed(io, tokio_util::codec::BytesCodec::new())"
);
io_accessors!(
    PooledFramedRead,
    D,
    "framed_read(io, tokio_util::codec::BytesCodec::new(), 0)"
);
io_accessors!(
    PooledFramedWrite,
    E,
    "framed_write(io, tokio_util::codec::BytesCodec::new(), 0)"
);

impl<T, U> PooledFramed<T, U> {
    fn debug<'a, 'b>(&self, f: &'a mut fmt::DebugStruct<'a, 'b>) -> &'a mut fmt::DebugStruct<'a, 'b>
    where
        U: fmt::Debug,
    {
        f.field("codec", &self.codec)
            .field("read_buffer", &self.read.buf.buf.len())
            .field("queued_bytes", &self.write.queued())
    }

    /// The codec.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let framed = pool.framed(tokio::io::empty(), pool_tokio::PooledLengthDelimitedCodec::new(&pool));
    /// assert_eq!(framed.codec().max_frame_length(), 8 << 20);
    /// ```
    pub fn codec(&self) -> &U {
        &self.codec
    }

    /// The codec, mutably.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let mut framed = pool.framed(tokio::io::empty(), tokio_util::codec::LinesCodec::new());
    /// assert_eq!(framed.codec_mut().max_length(), usize::MAX);
    /// ```
    pub fn codec_mut(&mut self) -> &mut U {
        &mut self.codec
    }

    /// The read buffer: bytes read and not yet decoded.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let framed = pool.framed(tokio::io::empty(), tokio_util::codec::BytesCodec::new());
    /// assert_eq!(framed.read_buffer().capacity(), 8192);
    /// ```
    pub fn read_buffer(&self) -> &BytesMut {
        &self.read.buf.buf
    }

    /// The read buffer, mutably. A buffer moved to another allocation
    /// (by `reserve`) is moved back into a pooled one before the next read.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let mut framed = pool.framed(tokio::io::empty(), tokio_util::codec::BytesCodec::new());
    /// assert!(framed.read_buffer_mut().try_reclaim(8192));
    /// ```
    pub fn read_buffer_mut(&mut self) -> &mut BytesMut {
        &mut self.read.buf.buf
    }

    /// The write buffer: encoded bytes not yet written (with the pooled
    /// length-delimited codec, only the headers of queued frames).
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let framed = pool.framed(tokio::io::sink(), tokio_util::codec::BytesCodec::new());
    /// assert!(framed.write_buffer().is_empty());
    /// ```
    pub fn write_buffer(&self) -> &BytesMut {
        &self.write.buf.buf
    }

    /// The write buffer, mutably: bytes put here are written after the
    /// frames already queued. It holds the whole pending stream: frame
    /// bodies the pooled codec queued by value are copied into it first (a
    /// copy paid only by this call, and only while bodies are queued), so
    /// that clearing it discards every pending frame, as with tokio-util's
    /// `FramedWrite`.
    ///
    /// ```
    /// use bytes::BufMut;
    /// let pool = pool_tokio::BytesPool::new();
    /// let mut framed = pool.framed(tokio::io::sink(), tokio_util::codec::BytesCodec::new());
    /// framed.write_buffer_mut().put_slice(b"raw");
    /// assert_eq!(framed.queued_bytes(), 3);
    /// ```
    pub fn write_buffer_mut(&mut self) -> &mut BytesMut {
        self.write.buffer_mut()
    }

    /// Bytes queued and not yet written: the write buffer's and those of
    /// the frames queued by value.
    ///
    /// ```
    /// use futures_util::SinkExt;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let pool = pool_tokio::BytesPool::new();
    /// let (a, _b) = tokio::io::duplex(64);
    /// let mut framed = pool.framed(a, pool_tokio::PooledLengthDelimitedCodec::new(&pool));
    /// framed.feed(bytes::Bytes::from(vec![0; 1000])).await?;
    /// assert_eq!(framed.queued_bytes(), 1004); // header and body
    /// # Ok(())
    /// # }
    /// ```
    pub fn queued_bytes(&self) -> usize {
        self.write.queued()
    }

    /// How many bytes may be queued before `poll_ready` writes: the write
    /// buffer's size unless set.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let framed = pool.framed_with_capacity(tokio::io::sink(), tokio_util::codec::BytesCodec::new(), 8192, 16 << 10);
    /// assert_eq!(framed.backpressure_boundary(), 16 << 10);
    /// ```
    pub fn backpressure_boundary(&self) -> usize {
        self.write.boundary
    }

    /// Sets the backpressure boundary (bytes queued, headers and bodies;
    /// 0 flushes every item, as with tokio-util).
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let mut framed = pool.framed(tokio::io::sink(), tokio_util::codec::BytesCodec::new());
    /// framed.set_backpressure_boundary(1 << 20);
    /// assert_eq!(framed.backpressure_boundary(), 1 << 20);
    /// ```
    pub fn set_backpressure_boundary(&mut self, boundary: usize) {
        self.write.boundary = boundary;
    }

    /// Takes the value apart: the I/O object, the codec, and both buffers as
    /// pooled guards, with any unprocessed data. Frames queued by value and
    /// not yet written are copied into the write buffer, in order. On a
    /// budgeted pool a buffer a codec grew past its class comes out as a
    /// fresh checkout holding the same bytes (copied), charged like any
    /// `checkout` (its class, or an overdraft, counted, where the budget
    /// lacks it).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = pool_tokio::BytesPool::new();
    /// let mut framed = pool.framed(tokio::io::empty(), tokio_util::codec::BytesCodec::new());
    /// framed.write_buffer_mut().extend_from_slice(b"pending");
    /// let parts = framed.into_parts();
    /// assert_eq!(&parts.write_buf.as_ref().unwrap()[..], b"pending");
    /// # }
    /// ```
    pub fn into_parts(self) -> PooledParts<T, U> {
        PooledParts {
            io: self.io,
            codec: self.codec,
            read_buf: Some(self.read.into_buf()),
            write_buf: Some(self.write.into_buf()),
        }
    }
}

impl<T, D> PooledFramedRead<T, D> {
    fn debug<'a, 'b>(&self, f: &'a mut fmt::DebugStruct<'a, 'b>) -> &'a mut fmt::DebugStruct<'a, 'b>
    where
        D: fmt::Debug,
    {
        f.field("decoder", &self.decoder)
            .field("read_buffer", &self.read.buf.buf.len())
    }

    /// The decoder.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let reader = pool.framed_read(tokio::io::empty(), tokio_util::codec::LinesCodec::new(), 0);
    /// assert_eq!(reader.decoder().max_length(), usize::MAX);
    /// ```
    pub fn decoder(&self) -> &D {
        &self.decoder
    }

    /// The decoder, mutably.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let mut reader = pool.framed_read(tokio::io::empty(), tokio_util::codec::BytesCodec::new(), 0);
    /// let _codec: &mut tokio_util::codec::BytesCodec = reader.decoder_mut();
    /// ```
    pub fn decoder_mut(&mut self) -> &mut D {
        &mut self.decoder
    }

    /// The read buffer: bytes read and not yet decoded.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let reader = pool.framed_read(tokio::io::empty(), tokio_util::codec::BytesCodec::new(), 16 << 10);
    /// assert_eq!(reader.read_buffer().capacity(), 16 << 10);
    /// ```
    pub fn read_buffer(&self) -> &BytesMut {
        &self.read.buf.buf
    }

    /// The read buffer, mutably.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let mut reader = pool.framed_read(tokio::io::empty(), tokio_util::codec::BytesCodec::new(), 0);
    /// assert!(reader.read_buffer_mut().is_empty());
    /// ```
    pub fn read_buffer_mut(&mut self) -> &mut BytesMut {
        &mut self.read.buf.buf
    }

    /// Takes the value apart: the I/O object, the decoder, and the read
    /// buffer (as `read_buf`) with any data not yet decoded (on a budgeted
    /// pool, a buffer a codec grew past its class comes out as a fresh
    /// checkout holding the same bytes, charged like any `checkout`).
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let reader = pool.framed_read(tokio::io::empty(), tokio_util::codec::BytesCodec::new(), 0);
    /// let parts = reader.into_parts();
    /// assert!(parts.write_buf.is_none());
    /// assert_eq!(parts.read_buf.unwrap().capacity(), 8192);
    /// ```
    pub fn into_parts(self) -> PooledParts<T, D> {
        PooledParts {
            io: self.io,
            codec: self.decoder,
            read_buf: Some(self.read.into_buf()),
            write_buf: None,
        }
    }
}

impl<T, E> PooledFramedWrite<T, E> {
    fn debug<'a, 'b>(&self, f: &'a mut fmt::DebugStruct<'a, 'b>) -> &'a mut fmt::DebugStruct<'a, 'b>
    where
        E: fmt::Debug,
    {
        f.field("encoder", &self.encoder)
            .field("queued_bytes", &self.write.queued())
    }

    /// The encoder.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let writer = pool.framed_write(tokio::io::sink(), tokio_util::codec::LinesCodec::new(), 0);
    /// assert_eq!(writer.encoder().max_length(), usize::MAX);
    /// ```
    pub fn encoder(&self) -> &E {
        &self.encoder
    }

    /// The encoder, mutably.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let mut writer = pool.framed_write(tokio::io::sink(), tokio_util::codec::BytesCodec::new(), 0);
    /// let _codec: &mut tokio_util::codec::BytesCodec = writer.encoder_mut();
    /// ```
    pub fn encoder_mut(&mut self) -> &mut E {
        &mut self.encoder
    }

    /// The write buffer: encoded bytes not yet written.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let writer = pool.framed_write(tokio::io::sink(), tokio_util::codec::BytesCodec::new(), 0);
    /// assert_eq!(writer.write_buffer().capacity(), 8192);
    /// ```
    pub fn write_buffer(&self) -> &BytesMut {
        &self.write.buf.buf
    }

    /// The write buffer, mutably: bytes put here are written after the
    /// frames already queued. It holds the whole pending stream (see
    /// [`PooledFramed::write_buffer_mut`]): clearing it discards every
    /// pending frame.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let mut writer = pool.framed_write(tokio::io::sink(), tokio_util::codec::BytesCodec::new(), 0);
    /// writer.write_buffer_mut().extend_from_slice(b"raw");
    /// assert_eq!(writer.queued_bytes(), 3);
    /// ```
    pub fn write_buffer_mut(&mut self) -> &mut BytesMut {
        self.write.buffer_mut()
    }

    /// Bytes queued and not yet written (write buffer and queued frames).
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let writer = pool.framed_write(tokio::io::sink(), tokio_util::codec::BytesCodec::new(), 0);
    /// assert_eq!(writer.queued_bytes(), 0);
    /// ```
    pub fn queued_bytes(&self) -> usize {
        self.write.queued()
    }

    /// How many bytes may be queued before `poll_ready` writes.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let writer = pool.framed_write(tokio::io::sink(), tokio_util::codec::BytesCodec::new(), 32 << 10);
    /// assert_eq!(writer.backpressure_boundary(), 32 << 10);
    /// ```
    pub fn backpressure_boundary(&self) -> usize {
        self.write.boundary
    }

    /// Sets the backpressure boundary (bytes queued).
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let mut writer = pool.framed_write(tokio::io::sink(), tokio_util::codec::BytesCodec::new(), 0);
    /// writer.set_backpressure_boundary(4096);
    /// assert_eq!(writer.backpressure_boundary(), 4096);
    /// ```
    pub fn set_backpressure_boundary(&mut self, boundary: usize) {
        self.write.boundary = boundary;
    }

    /// Takes the value apart: the I/O object, the encoder, and the write
    /// buffer (as `write_buf`) with any data not yet written (queued frames
    /// copied in, in order; on a budgeted pool, a buffer a codec grew past
    /// its class comes out as a fresh checkout holding the same bytes,
    /// charged like any `checkout`).
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let writer = pool.framed_write(Vec::<u8>::new(), tokio_util::codec::BytesCodec::new(), 0);
    /// let parts = writer.into_parts();
    /// assert!(parts.read_buf.is_none());
    /// assert!(parts.write_buf.unwrap().is_empty());
    /// ```
    pub fn into_parts(self) -> PooledParts<T, E> {
        PooledParts {
            io: self.io,
            codec: self.encoder,
            read_buf: None,
            write_buf: Some(self.write.into_buf()),
        }
    }
}

impl<T, U> Stream for PooledFramed<T, U>
where
    T: AsyncRead + Unpin,
    U: Decoder + Unpin,
{
    type Item = Result<U::Item, U::Error>;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        this.read.poll_next(&mut this.io, &mut this.codec, cx)
    }
}

impl<T, D> Stream for PooledFramedRead<T, D>
where
    T: AsyncRead + Unpin,
    D: Decoder + Unpin,
{
    type Item = Result<D::Item, D::Error>;

    #[inline]
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        this.read.poll_next(&mut this.io, &mut this.decoder, cx)
    }
}

macro_rules! sink {
    ($ty:ident, $codec:ident, $field:ident) => {
        /// `Encoder::encode` into the write buffer; with
        /// [`PooledLengthDelimitedCodec`] and a `PooledBytes`, `Bytes` or
        /// `BytesMut` item, the body is queued by value instead (no copy).
        impl<T, I, $codec> Sink<I> for $ty<T, $codec>
        where
            T: AsyncWrite + Unpin,
            $codec: Encoder<I> + Unpin,
            $codec::Error: From<io::Error>,
        {
            type Error = $codec::Error;

            #[inline]
            fn poll_ready(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<Result<(), Self::Error>> {
                let this = self.get_mut();
                this.write.poll_ready(&mut this.io, cx).map_err(Into::into)
            }

            #[inline]
            fn start_send(self: Pin<&mut Self>, item: I) -> Result<(), Self::Error> {
                let this = self.get_mut();
                this.write.start_send(&mut this.$field, item)
            }

            #[inline]
            fn poll_flush(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<Result<(), Self::Error>> {
                let this = self.get_mut();
                this.write.poll_flush(&mut this.io, cx).map_err(Into::into)
            }

            #[inline]
            fn poll_close(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<Result<(), Self::Error>> {
                let this = self.get_mut();
                this.write.poll_close(&mut this.io, cx).map_err(Into::into)
            }
        }
    };
}

sink!(PooledFramed, U, codec);
sink!(PooledFramedWrite, E, encoder);
