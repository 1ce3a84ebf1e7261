//! `Framed`, `FramedRead` and `FramedWrite` whose buffers come from a pool.
//!
//! tokio-util's framed types own their buffers; the way in is to swap ours
//! into a framed value built with capacity 0 (no allocation), and the way
//! out is `into_parts`. The wrappers here keep each buffer's ticket beside
//! the framed value and give the buffers back when taken apart or dropped.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures_core::Stream;
use futures_sink::Sink;
use tokio_util::codec::{Decoder, Encoder, Framed, FramedParts, FramedRead, FramedWrite};

use crate::error::TryCheckoutError;
use crate::pool::{BytesPool, Handle};
use crate::pooled::{Lease, PooledBytes};

mod length_delimited;
mod pooled_decoder;

pub use length_delimited::{
    FrameReader, LengthDelimitedBuilder, LengthFieldType, PooledLengthDelimitedCodec,
};
pub use pooled_decoder::PooledDecoder;

/// tokio-util's default buffer size; also the floor `Framed::from_parts`
/// reserves up to, so a smaller pooled buffer would be reallocated at once.
pub const DEFAULT_FRAME_BUFFER: usize = 8 * 1024;

/// Checks a buffer out and hands it over cleared (a non-empty read buffer
/// would be taken for data already read).
fn lease(pool: &BytesPool, capacity: usize) -> (BytesMut, Lease) {
    pool.checkout(capacity.max(DEFAULT_FRAME_BUFFER)).into_raw()
}

/// A checked-out buffer's accounting while a framed value owns the buffer.
///
/// Growth: a codec's `reserve` can grow the buffer past its class. On a
/// pool with a budget, the framed value charges the growth (the largest
/// capacity seen above the checkout's) after each poll, as an overdraft if
/// the budget lacks it, and gives it back when the buffer is returned.
struct Leased {
    lease: Option<Lease>,
    handle: Handle,
    /// Capacity at checkout plus growth charged so far; `usize::MAX` on a
    /// pool without a budget (nothing to charge).
    covered: usize,
    /// Growth charged to the budget.
    growth: usize,
}

impl Leased {
    /// Charges growth of `buf` past what is covered.
    #[inline]
    fn settle(&mut self, buf: &BytesMut) {
        if buf.capacity() > self.covered {
            self.charge_growth(buf.capacity());
        }
    }

    #[cold]
    fn charge_growth(&mut self, capacity: usize) {
        let more = capacity - self.covered;
        self.covered = capacity;
        let pool = BytesPool {
            handle: self.handle.clone(),
        };
        self.growth += pool.charge_growth(more);
    }

    /// Puts `buf` back under its ticket as a guard (returned when dropped),
    /// and gives back the growth charged.
    fn rejoin(&mut self, buf: BytesMut) -> PooledBytes {
        let growth = std::mem::take(&mut self.growth);
        if growth > 0 {
            BytesPool {
                handle: self.handle.clone(),
            }
            .release_budget(growth);
        }
        match self.lease.take() {
            Some(lease) => PooledBytes::from_raw(buf, lease, self.handle.clone()),
            None => unreachable!("a framed value gives its buffers back once"),
        }
    }
}

impl BytesPool {
    /// A [`Framed`] (a `Stream` of decoded frames and a `Sink` of items)
    /// whose read and write buffers come from this pool, 8 KiB each. They go
    /// back when the value is dropped or taken apart with
    /// [`PooledFramed::into_parts`].
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
    /// 8 KiB each, tokio-util's floor). The write buffer's size is also its
    /// backpressure boundary: `poll_ready` flushes once that much is
    /// buffered.
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
        let (read_buf, read_lease) = lease(self, read_capacity);
        let (write_buf, write_lease) = lease(self, write_capacity);
        let boundary = write_buf.capacity();
        let read = self.leased_for(read_lease, &read_buf);
        let write = self.leased_for(write_lease, &write_buf);
        let mut framed = Framed::with_capacity(io, codec, 0);
        *framed.read_buffer_mut() = read_buf;
        *framed.write_buffer_mut() = write_buf;
        framed.set_backpressure_boundary(boundary);
        PooledFramed {
            framed: Some(framed),
            read,
            write,
        }
    }

    /// A [`FramedRead`] whose read buffer (at least 8 KiB) comes from this
    /// pool and goes back when it is dropped or taken apart.
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
        let (buf, lease) = lease(self, capacity);
        let read = self.leased_for(lease, &buf);
        let mut framed = FramedRead::with_capacity(io, decoder, 0);
        *framed.read_buffer_mut() = buf;
        PooledFramedRead {
            framed: Some(framed),
            read,
        }
    }

    /// A [`FramedWrite`] whose write buffer (at least 8 KiB, also the
    /// backpressure boundary) comes from this pool and goes back when it is
    /// dropped or taken apart.
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
        let (buf, lease) = lease(self, capacity);
        let boundary = buf.capacity();
        let write = self.leased_for(lease, &buf);
        let mut framed = FramedWrite::with_capacity(io, encoder, 0);
        *framed.write_buffer_mut() = buf;
        framed.set_backpressure_boundary(boundary);
        PooledFramedWrite {
            framed: Some(framed),
            write,
        }
    }

    /// [`framed`](BytesPool::framed), waiting (cancel-safe, first come
    /// first served) until the budget covers both buffers instead of
    /// overdrawing it. Immediate on a pool without a budget.
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
        // Both stay guards until both are served: a future dropped while it
        // waits for the second returns the first (buffer and charge).
        let read = self.checkout_async(DEFAULT_FRAME_BUFFER).await?;
        let write = self.checkout_async(DEFAULT_FRAME_BUFFER).await?;
        let (read_buf, read_lease) = read.into_raw();
        let (write_buf, write_lease) = write.into_raw();
        let boundary = write_buf.capacity();
        let read = self.leased_for(read_lease, &read_buf);
        let write = self.leased_for(write_lease, &write_buf);
        let mut framed = Framed::with_capacity(io, codec, 0);
        *framed.read_buffer_mut() = read_buf;
        *framed.write_buffer_mut() = write_buf;
        framed.set_backpressure_boundary(boundary);
        Ok(PooledFramed {
            framed: Some(framed),
            read,
            write,
        })
    }

    fn leased_for(&self, lease: Lease, buf: &BytesMut) -> Leased {
        Leased {
            lease: Some(lease),
            handle: self.handle.clone(),
            covered: match self.handle.inner().budget {
                Some(_) => buf.capacity(),
                None => usize::MAX,
            },
            growth: 0,
        }
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

macro_rules! delegate_framed {
    ($ty:ident, $inner:ident, $codec:ident) => {
        impl<T, $codec> $ty<T, $codec> {
            #[inline]
            fn framed_ref(&self) -> &$inner<T, $codec> {
                match &self.framed {
                    Some(f) => f,
                    None => unreachable!("the framed value is present until dropped"),
                }
            }

            #[inline]
            fn framed_mut(&mut self) -> &mut $inner<T, $codec> {
                match &mut self.framed {
                    Some(f) => f,
                    None => unreachable!("the framed value is present until dropped"),
                }
            }
        }

        impl<T, $codec> Deref for $ty<T, $codec> {
            type Target = $inner<T, $codec>;
            #[inline]
            fn deref(&self) -> &Self::Target {
                self.framed_ref()
            }
        }

        impl<T, $codec> DerefMut for $ty<T, $codec> {
            #[inline]
            fn deref_mut(&mut self) -> &mut Self::Target {
                self.framed_mut()
            }
        }

        impl<T: fmt::Debug, $codec: fmt::Debug> fmt::Debug for $ty<T, $codec> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($ty))
                    .field(self.framed_ref())
                    .finish()
            }
        }
    };
}

macro_rules! delegate_stream {
    ($ty:ident, $codec:ident) => {
        impl<T, $codec> Stream for $ty<T, $codec>
        where
            T: tokio::io::AsyncRead + Unpin,
            $codec: Decoder + Unpin,
        {
            type Item = Result<$codec::Item, $codec::Error>;

            #[inline]
            fn poll_next(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<Option<Self::Item>> {
                let this = &mut *self;
                let poll = Pin::new(this.framed_mut()).poll_next(cx);
                this.settle();
                poll
            }
        }
    };
}

macro_rules! delegate_sink {
    ($ty:ident, $codec:ident) => {
        impl<T, I, $codec> Sink<I> for $ty<T, $codec>
        where
            T: tokio::io::AsyncWrite + Unpin,
            $codec: Encoder<I> + Unpin,
            $codec::Error: From<std::io::Error>,
        {
            type Error = $codec::Error;

            #[inline]
            fn poll_ready(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<Result<(), Self::Error>> {
                let this = &mut *self;
                let poll = Pin::new(this.framed_mut()).poll_ready(cx);
                this.settle();
                poll
            }

            #[inline]
            fn start_send(mut self: Pin<&mut Self>, item: I) -> Result<(), Self::Error> {
                let this = &mut *self;
                let result = Pin::new(this.framed_mut()).start_send(item);
                this.settle();
                result
            }

            #[inline]
            fn poll_flush(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<Result<(), Self::Error>> {
                let this = &mut *self;
                let poll = Pin::new(this.framed_mut()).poll_flush(cx);
                this.settle();
                poll
            }

            #[inline]
            fn poll_close(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<Result<(), Self::Error>> {
                let this = &mut *self;
                let poll = Pin::new(this.framed_mut()).poll_close(cx);
                this.settle();
                poll
            }
        }
    };
}

/// A [`Framed`] with pooled read and write buffers, from
/// [`BytesPool::framed`].
///
/// Derefs to the `Framed` (codec, I/O object, buffers) and is a `Stream`
/// and `Sink` like it (for `Unpin` I/O objects and codecs; pin a `!Unpin`
/// one with `Box::pin` first). Dropping it returns both buffers.
pub struct PooledFramed<T, U> {
    framed: Option<Framed<T, U>>,
    read: Leased,
    write: Leased,
}

delegate_framed!(PooledFramed, Framed, U);

impl<T, U> PooledFramed<T, U> {
    #[inline]
    fn settle(&mut self) {
        if let Some(f) = &self.framed {
            self.read.settle(f.read_buffer());
            self.write.settle(f.write_buffer());
        }
    }
}
delegate_stream!(PooledFramed, U);
delegate_sink!(PooledFramed, U);

impl<T, U> PooledFramed<T, U> {
    /// Takes the value apart: the I/O object, the codec, and both buffers as
    /// pooled guards, with any unprocessed data.
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
    pub fn into_parts(mut self) -> PooledParts<T, U> {
        let parts: FramedParts<T, U> = match self.framed.take() {
            Some(f) => f.into_parts(),
            None => unreachable!("the framed value is present until dropped"),
        };
        PooledParts {
            io: parts.io,
            codec: parts.codec,
            read_buf: Some(self.read.rejoin(parts.read_buf)),
            write_buf: Some(self.write.rejoin(parts.write_buf)),
        }
    }
}

impl<T, U> Drop for PooledFramed<T, U> {
    fn drop(&mut self) {
        if let Some(f) = self.framed.take() {
            let parts = f.into_parts();
            drop(self.read.rejoin(parts.read_buf));
            drop(self.write.rejoin(parts.write_buf));
        }
    }
}

/// A [`FramedRead`] with a pooled read buffer, from
/// [`BytesPool::framed_read`]. A `Stream` of decoded frames; derefs to the
/// `FramedRead`; dropping it returns the buffer.
pub struct PooledFramedRead<T, D> {
    framed: Option<FramedRead<T, D>>,
    read: Leased,
}

delegate_framed!(PooledFramedRead, FramedRead, D);

impl<T, D> PooledFramedRead<T, D> {
    #[inline]
    fn settle(&mut self) {
        if let Some(f) = &self.framed {
            self.read.settle(f.read_buffer());
        }
    }
}
delegate_stream!(PooledFramedRead, D);

impl<T, D> PooledFramedRead<T, D> {
    /// Takes the value apart: the I/O object, the decoder, and the read
    /// buffer (as `read_buf`) with any data not yet decoded.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let reader = pool.framed_read(tokio::io::empty(), tokio_util::codec::BytesCodec::new(), 0);
    /// let parts = reader.into_parts();
    /// assert!(parts.write_buf.is_none());
    /// assert_eq!(parts.read_buf.unwrap().capacity(), 8192);
    /// ```
    pub fn into_parts(mut self) -> PooledParts<T, D> {
        let parts = match self.framed.take() {
            Some(f) => f.into_parts(),
            None => unreachable!("the framed value is present until dropped"),
        };
        PooledParts {
            io: parts.io,
            codec: parts.codec,
            read_buf: Some(self.read.rejoin(parts.read_buf)),
            write_buf: None,
        }
    }
}

impl<T, D> Drop for PooledFramedRead<T, D> {
    fn drop(&mut self) {
        if let Some(f) = self.framed.take() {
            drop(self.read.rejoin(f.into_parts().read_buf));
        }
    }
}

/// A [`FramedWrite`] with a pooled write buffer, from
/// [`BytesPool::framed_write`]. A `Sink` of items; derefs to the
/// `FramedWrite`; dropping it returns the buffer.
pub struct PooledFramedWrite<T, E> {
    framed: Option<FramedWrite<T, E>>,
    write: Leased,
}

delegate_framed!(PooledFramedWrite, FramedWrite, E);

impl<T, E> PooledFramedWrite<T, E> {
    #[inline]
    fn settle(&mut self) {
        if let Some(f) = &self.framed {
            self.write.settle(f.write_buffer());
        }
    }
}
delegate_sink!(PooledFramedWrite, E);

impl<T, E> PooledFramedWrite<T, E> {
    /// Takes the value apart: the I/O object, the encoder, and the write
    /// buffer (as `write_buf`) with any data not yet written.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let writer = pool.framed_write(Vec::<u8>::new(), tokio_util::codec::BytesCodec::new(), 0);
    /// let parts = writer.into_parts();
    /// assert!(parts.read_buf.is_none());
    /// assert!(parts.write_buf.unwrap().is_empty());
    /// ```
    pub fn into_parts(mut self) -> PooledParts<T, E> {
        let parts = match self.framed.take() {
            Some(f) => f.into_parts(),
            None => unreachable!("the framed value is present until dropped"),
        };
        PooledParts {
            io: parts.io,
            codec: parts.codec,
            read_buf: None,
            write_buf: Some(self.write.rejoin(parts.write_buf)),
        }
    }
}

impl<T, E> Drop for PooledFramedWrite<T, E> {
    fn drop(&mut self) {
        if let Some(f) = self.framed.take() {
            drop(self.write.rejoin(f.into_parts().write_buf));
        }
    }
}
