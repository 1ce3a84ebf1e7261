//! The write half of a pooled framed value: [`WriteSide`], the write
//! buffer plus a queue of bodies taken by value and written vectored, and
//! the thread-local hand-off ([`queue_body`]) through which the pooled
//! length-delimited codec queues a body instead of copying it. See the
//! parent module for the design.

use std::cell::Cell;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::AsyncWrite;
use tokio_util::codec::Encoder;

use super::Owned;
use crate::pool::PooledBytes;

/// At most this many slices per vectored write (tokio-util's own bound in
/// `poll_write_buf`; well under every platform's `IOV_MAX`).
const MAX_SLICES: usize = 64;

/// A frame body queued by value.
#[derive(Debug)]
pub(crate) enum Body {
    Pooled(PooledBytes),
    Shared(Bytes),
}

impl Body {
    #[inline]
    pub(crate) fn chunk(&self) -> &[u8] {
        match self {
            Body::Pooled(b) => b,
            Body::Shared(b) => b,
        }
    }

    #[inline]
    fn len(&self) -> usize {
        self.chunk().len()
    }

    #[inline]
    fn advance(&mut self, n: usize) {
        match self {
            Body::Pooled(b) => Buf::advance(b, n),
            Body::Shared(b) => b.advance(n),
        }
    }
}

thread_local! {
    /// `(codec address, write buffer address)` of the framed value whose
    /// `encode` call is running on this thread; `(0, 0)` when none is.
    static LENT: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
    /// The body the pooled codec queued during that call, with the write
    /// buffer's length right after its header.
    static QUEUED: Cell<Option<(usize, Body)>> = const { Cell::new(None) };
}

/// Called by the pooled codec's `Encoder` impls: if `codec` is encoding
/// for a pooled framed value into that value's write buffer `dst`, writes
/// `head` into `dst`, queues `body` by value and returns `None`; otherwise
/// gives `body` back for the caller to copy.
pub(crate) fn queue_body<C>(
    codec: &C,
    dst: &mut BytesMut,
    head: &[u8],
    body: Body,
) -> Option<Body> {
    let key = (codec as *const C as usize, dst as *const BytesMut as usize);
    match LENT.try_with(Cell::get) {
        Ok(lent) if lent == key && key.0 != 0 => {}
        _ => return Some(body),
    }
    dst.extend_from_slice(head);
    // One body per lent call.
    LENT.with(|l| l.set((0, 0)));
    QUEUED.with(|q| q.set(Some((dst.len(), body))));
    None
}

/// Lends the queue to `codec` for one `encode` into `dst`; restores the
/// previous lender when dropped, even if `encode` panics.
struct Lend {
    prev: (usize, usize),
}

impl Lend {
    fn new<C>(codec: &C, dst: &mut BytesMut) -> Lend {
        let key = (codec as *const C as usize, dst as *const BytesMut as usize);
        Lend {
            prev: LENT.with(|l| l.replace(key)),
        }
    }

    fn take(self) -> Option<(usize, Body)> {
        QUEUED.with(Cell::take)
    }
}

impl Drop for Lend {
    fn drop(&mut self) {
        LENT.with(|l| l.set(self.prev));
        // A body queued by a call that then failed is dropped, not sent
        // with the next frame.
        drop(QUEUED.with(Cell::take));
    }
}

struct Queued {
    /// Where the body goes: its offset in the stream of write-buffer bytes.
    at: u64,
    body: Body,
}

/// The write half of a pooled framed value.
pub(crate) struct WriteSide {
    pub(crate) buf: Owned,
    queue: VecDeque<Queued>,
    /// Stream offset of the write buffer's first byte.
    base: u64,
    /// Bytes of queued bodies not yet written.
    bodies: usize,
    pub(crate) boundary: usize,
}

impl WriteSide {
    pub(crate) fn new(buf: Owned) -> WriteSide {
        let boundary = buf.buf.capacity();
        WriteSide {
            buf,
            queue: VecDeque::new(),
            base: 0,
            bodies: 0,
            boundary,
        }
    }

    /// The write buffer holding the whole pending stream, for a caller that
    /// edits it: bodies queued by value are copied in at their places
    /// first (a copy paid only here), so that clearing it discards every
    /// pending frame, as with tokio-util's `FramedWrite`.
    pub(crate) fn buffer_mut(&mut self) -> &mut BytesMut {
        if !self.queue.is_empty() {
            let front = self.buf.front();
            let mut pending = Vec::with_capacity(self.queued());
            self.for_each_pending(|run| pending.extend_from_slice(run));
            self.queue.clear();
            self.bodies = 0;
            self.buf.buf.clear();
            self.buf.buf.extend_from_slice(&pending);
            // Growth past the class is charged like an encoder's.
            self.buf.settle(front);
        }
        &mut self.buf.buf
    }

    /// Bytes queued and not yet written: the write buffer's and the bodies'.
    #[inline]
    pub(crate) fn queued(&self) -> usize {
        self.buf.buf.len() + self.bodies
    }

    /// Encodes `item`; the pooled codec queues its body by value.
    pub(crate) fn start_send<I, E: Encoder<I>>(
        &mut self,
        codec: &mut E,
        item: I,
    ) -> Result<(), E::Error> {
        let front = self.buf.front();
        let dst: &mut BytesMut = &mut self.buf.buf;
        let lend = Lend::new(codec, dst);
        if let Err(e) = codec.encode(item, dst) {
            drop(lend);
            // The codec may have grown the buffer before it failed: that
            // growth is charged like any other.
            self.buf.settle(front);
            return Err(e);
        }
        if let Some((at, body)) = lend.take() {
            if body.len() > 0 {
                self.bodies += body.len();
                self.queue.push_back(Queued {
                    at: self.base + at as u64,
                    body,
                });
            }
        }
        self.buf.settle(front);
        Ok(())
    }

    pub(crate) fn poll_ready<T: AsyncWrite + Unpin>(
        &mut self,
        io: &mut T,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        // A boundary of 0 flushes every item, as tokio-util's does: there
        // is nothing to write once nothing is queued.
        while self.queued() > 0 && self.queued() >= self.boundary {
            ready!(self.poll_write_some(io, cx))?;
        }
        Poll::Ready(Ok(()))
    }

    pub(crate) fn poll_flush<T: AsyncWrite + Unpin>(
        &mut self,
        io: &mut T,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while self.queued() > 0 {
            ready!(self.poll_write_some(io, cx))?;
        }
        ready!(Pin::new(io).poll_flush(cx))?;
        Poll::Ready(Ok(()))
    }

    pub(crate) fn poll_close<T: AsyncWrite + Unpin>(
        &mut self,
        io: &mut T,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        ready!(self.poll_flush(io, cx))?;
        Pin::new(io).poll_shutdown(cx)
    }

    /// One write of the front of the stream: vectored (write-buffer runs
    /// and bodies, up to 64 slices) where `io` says it writes vectored,
    /// else the first slice alone.
    fn poll_write_some<T: AsyncWrite + Unpin>(
        &mut self,
        io: &mut T,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        let vectored = io.is_write_vectored();
        let written = {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let mut n = 0;
            let wb: &[u8] = &self.buf.buf;
            let mut off = 0;
            for q in &self.queue {
                let at = (q.at - self.base) as usize;
                if at > off {
                    slices[n] = IoSlice::new(&wb[off..at]);
                    n += 1;
                    off = at;
                    if n == MAX_SLICES || !vectored {
                        break;
                    }
                }
                slices[n] = IoSlice::new(q.body.chunk());
                n += 1;
                if n == MAX_SLICES || !vectored {
                    break;
                }
            }
            if n == 0 || (vectored && n < MAX_SLICES && off < wb.len()) {
                slices[n] = IoSlice::new(&wb[off..]);
                n += 1;
            }
            let poll = if vectored {
                Pin::new(&mut *io).poll_write_vectored(cx, &slices[..n])
            } else {
                Pin::new(&mut *io).poll_write(cx, &slices[0])
            };
            ready!(poll)?
        };
        if written == 0 {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "failed to write frame to transport",
            )));
        }
        self.advance(written);
        Poll::Ready(Ok(()))
    }

    /// Consumes `n` written bytes from the front of the stream; bodies
    /// written whole go back to the pool (or drop) here.
    fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let pre = match self.queue.front() {
                Some(q) => (q.at - self.base) as usize,
                None => self.buf.buf.len(),
            };
            if pre > 0 {
                let k = pre.min(n);
                self.buf.buf.advance(k);
                self.base += k as u64;
                n -= k;
                continue;
            }
            let Some(q) = self.queue.front_mut() else {
                unreachable!("more bytes written than queued")
            };
            let k = q.body.len().min(n);
            q.body.advance(k);
            self.bodies -= k;
            n -= k;
            if q.body.len() == 0 {
                self.queue.pop_front();
            }
        }
        if self.queued() == 0 {
            self.drained();
        }
    }

    /// Everything is written: the write buffer's view goes back to its
    /// start, and a buffer an encoder grew past its class goes back to the
    /// pool for one of its class.
    fn drained(&mut self) {
        let owned = &mut self.buf;
        // An encoder's `reserve` grew or moved it.
        if !owned.same_allocation() {
            owned.back_to_class();
        } else {
            let _ = owned.buf.try_reclaim(owned.class_cap);
        }
    }

    /// The unwritten stream as one pooled buffer (for `into_parts`): queued
    /// bodies are copied into it at their places.
    pub(crate) fn into_buf(self) -> PooledBytes {
        if self.queue.is_empty() {
            return self.buf.into_buf();
        }
        let mut flat = self.buf.pool().checkout(self.queued());
        self.for_each_pending(|run| flat.extend_from_slice(run));
        flat
    }

    /// The unwritten stream in order, run by run: the write buffer's bytes
    /// with the queued bodies at their places.
    fn for_each_pending(&self, mut f: impl FnMut(&[u8])) {
        let wb: &[u8] = &self.buf.buf;
        let mut off = 0;
        for q in &self.queue {
            let at = (q.at - self.base) as usize;
            f(&wb[off..at]);
            off = at;
            f(q.body.chunk());
        }
        f(&wb[off..]);
    }
}
