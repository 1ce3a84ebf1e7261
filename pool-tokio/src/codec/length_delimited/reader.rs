//! [`FrameReader`]: a `Stream` of pooled frames that reads large bodies
//! straight into their frame buffers and waits for the pool's budget
//! instead of overdrawing it (cancel-safe).

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::BufMut;
use futures_core::{Future, Stream};
use tokio::io::AsyncRead;

use super::{budget_error, PooledLengthDelimitedCodec, State, Step, DIRECT_READ, READ_BUFFER};
use crate::error::TryCheckoutError;
use crate::pool::{BytesPool, PooledBytes};

impl PooledLengthDelimitedCodec {
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
