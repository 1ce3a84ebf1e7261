//! The read loop and the write queue behind the pooled framed values.
//!
//! Read side ([`ReadSide`]): tokio-util's `FramedImpl::poll_next` loop,
//! with one change: the read buffer is always a pooled checkout. Before
//! each read it takes back its whole class in place if it can; where it
//! cannot (split-off frames still share the allocation) it checks out a
//! fresh buffer, copies the unconsumed bytes over and drops the old guard.
//! A codec that reserves inside `decode` can still move the buffer to an
//! allocation of its own; that is seen right after `decode` returns (the
//! view left the allocation the guard was checked out with) and the bytes
//! move into a pooled checkout of that size.
//!
//! Large bodies of the pooled length-delimited codec skip the read buffer:
//! when [`PooledLengthDelimitedCodec`](super::PooledLengthDelimitedCodec)
//! has drained the read buffer into a frame that still lacks at least
//! 4 KiB, it hands the frame (a body in progress) to the framed value
//! through [`lend_direct`], which keeps it in its [`ReadSide`] and reads the
//! rest of the body straight into the frame's own pooled buffer. The frame
//! goes back to the codec at the start of the next `decode` call
//! ([`take_direct`]), so the codec yields it as usual. The same kind of
//! thread-local hand-off as the write side's (below), keyed by the codec's
//! and the read buffer's addresses; a codec that does not look never sees
//! it, so every other `Decoder` reads as before. The body in progress lives
//! in the framed value, so a dropped `next()` future loses nothing.
//!
//! Write side ([`WriteSide`]): the write buffer plus a queue of bodies
//! taken by value. An `Encoder` writes into the write buffer as usual;
//! [`PooledLengthDelimitedCodec`](super::PooledLengthDelimitedCodec) writes
//! only the header there and hands the body to the queue through
//! [`queue_body`], so a body is never copied. Flushing writes the stream
//! (write buffer bytes interleaved with queued bodies at the positions they
//! were queued) with vectored writes where the I/O object supports them.
//!
//! Why a thread-local hand-off rather than a trait: the `Sink<I>` of a
//! pooled framed value is generic over `U: Encoder<I>` (any codec), and the
//! pooled codec implements `Encoder<PooledBytes>` and `Encoder<Bytes>`, so
//! a dedicated `Sink<PooledBytes>` for it would overlap the generic one,
//! and a trait with a blanket impl cannot be overridden for one codec on
//! stable Rust. Instead the framed value lends its queue for the length of
//! one `encode` call, keyed by the addresses of its codec and of its write
//! buffer; only the pooled codec looks, and only when both match.

use std::cell::Cell;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Decoder, Encoder};

use crate::pool::BytesPool;
use crate::pooled::PooledBytes;

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

/// A frame whose body is being read: `frame` holds the bytes so far, `len`
/// is the frame's full length.
#[derive(Debug)]
pub(crate) struct Direct {
    pub(crate) frame: PooledBytes,
    pub(crate) len: usize,
}

thread_local! {
    /// `(codec address, read buffer address, lending allowed)` of the
    /// framed value whose `decode` call is running on this thread;
    /// `(0, 0, false)` when none is.
    static READ_LENT: Cell<(usize, usize, bool)> = const { Cell::new((0, 0, false)) };
    /// The body in progress, in transit between the framed value and the
    /// codec for the length of one `decode` call.
    static DIRECT: Cell<Option<Direct>> = const { Cell::new(None) };
}

#[inline]
fn read_key<C>(codec: &C, src: &BytesMut) -> (usize, usize) {
    (codec as *const C as usize, src as *const BytesMut as usize)
}

/// Called by the pooled codec at the start of `decode`: the body in
/// progress that the framed value decoding with `codec` from `src` read
/// into since the last call, if any.
pub(crate) fn take_direct<C>(codec: &C, src: &BytesMut) -> Option<Direct> {
    let key = read_key(codec, src);
    match READ_LENT.try_with(Cell::get) {
        Ok((c, b, _)) if (c, b) == key && c != 0 => DIRECT.with(Cell::take),
        _ => None,
    }
}

/// Called by the pooled codec when `decode` leaves a large body in progress
/// with `src` drained: hands it to the framed value decoding with `codec`
/// from `src`, to read the rest straight into it; gives it back if no such
/// value is asking (tokio-util's `Framed`, a direct `decode` call, the end
/// of the stream).
pub(crate) fn lend_direct<C>(codec: &C, src: &BytesMut, body: Direct) -> Result<(), Direct> {
    let key = read_key(codec, src);
    match READ_LENT.try_with(Cell::get) {
        Ok((c, b, true)) if (c, b) == key && c != 0 => {}
        _ => return Err(body),
    }
    // One body per lent call.
    READ_LENT.with(|l| l.set((0, 0, false)));
    DIRECT.with(|d| d.set(Some(body)));
    Ok(())
}

/// Lends the read side to `codec` for one `decode` from `src`, carrying
/// the body in progress there; restores the previous lender when dropped,
/// even if `decode` panics.
struct ReadLend {
    prev: (usize, usize, bool),
}

impl ReadLend {
    fn new<C>(codec: &C, src: &BytesMut, allow: bool, body: Option<Direct>) -> ReadLend {
        let (c, b) = read_key(codec, src);
        let prev = READ_LENT.with(|l| l.replace((c, b, allow)));
        if body.is_some() {
            DIRECT.with(|d| d.set(body));
        }
        ReadLend { prev }
    }

    /// The body the codec handed over (or did not pick up).
    fn take(self) -> Option<Direct> {
        DIRECT.with(Cell::take)
    }
}

impl Drop for ReadLend {
    fn drop(&mut self) {
        READ_LENT.with(|l| l.set(self.prev));
        // A body left in transit by a `decode` that panicked is dropped, not
        // taken by the next framed value on this thread.
        drop(DIRECT.with(Cell::take));
    }
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

/// A pooled buffer owned by a framed value.
pub(crate) struct Owned {
    pub(crate) buf: PooledBytes,
    /// Growth charged to the budget, released with the buffer.
    growth: Growth,
    /// The capacity asked for at construction: what replacements check out.
    size: usize,
    /// Capacity of a buffer of that class (what "back to class" means).
    class_cap: usize,
    /// The view's bounds at checkout: the buffer is still the allocation it
    /// was checked out with while its view stays inside them.
    start: usize,
    end: usize,
    /// Capacity charged (checkout plus growth); `usize::MAX` without a
    /// budget. Write side only: an encoder's `reserve` grows the buffer.
    covered: usize,
}

/// Growth of a buffer charged to the budget; released when dropped.
struct Growth {
    pool: BytesPool,
    bytes: usize,
}

impl Growth {
    fn release(&mut self) {
        self.pool.release_budget(std::mem::take(&mut self.bytes));
    }
}

impl Drop for Growth {
    fn drop(&mut self) {
        self.release();
    }
}

impl Owned {
    pub(crate) fn new(pool: &BytesPool, size: usize) -> Owned {
        Self::with(pool, pool.checkout(size), size)
    }

    pub(crate) fn with(pool: &BytesPool, buf: PooledBytes, size: usize) -> Owned {
        let start = buf.as_ptr() as usize;
        let cap = buf.capacity();
        Owned {
            covered: if pool.budget().is_some() {
                cap
            } else {
                usize::MAX
            },
            buf,
            growth: Growth {
                pool: pool.clone(),
                bytes: 0,
            },
            size,
            class_cap: cap,
            start,
            end: start + cap,
        }
    }

    fn budgeted(&self) -> bool {
        self.covered != usize::MAX
    }

    #[inline]
    fn same_allocation(&self) -> bool {
        let p = self.buf.as_ptr() as usize;
        p >= self.start && p + self.buf.capacity() <= self.end
    }

    /// Swaps in `new` (a fresh checkout); the old guard goes back to the
    /// pool, with the growth charged for it.
    fn replace(&mut self, new: PooledBytes) -> PooledBytes {
        self.growth.release();
        let start = new.as_ptr() as usize;
        self.start = start;
        self.end = start + new.capacity();
        if self.budgeted() {
            self.covered = new.capacity();
        }
        std::mem::replace(&mut self.buf, new)
    }

    /// A fresh checkout of at least `capacity` holding the unconsumed
    /// bytes of `from`.
    fn fresh(&self, capacity: usize, from: &[u8]) -> PooledBytes {
        let mut fresh = self.growth.pool.checkout(capacity.max(self.size));
        fresh.extend_from_slice(from);
        fresh
    }

    /// Charges growth of the buffer past what is covered (write side).
    #[inline]
    fn settle(&mut self) {
        if self.buf.capacity() > self.covered {
            self.charge_growth();
        }
    }

    #[cold]
    fn charge_growth(&mut self) {
        let more = self.buf.capacity() - self.covered;
        self.covered = self.buf.capacity();
        self.growth.bytes += self.growth.pool.charge_growth(more);
    }

    /// Takes the buffer out (for `into_parts`), releasing the growth charge.
    pub(crate) fn into_buf(mut self) -> PooledBytes {
        self.growth.release();
        self.buf
    }

    pub(crate) fn pool(&self) -> &BytesPool {
        &self.growth.pool
    }
}

/// The read half of a pooled framed value.
pub(crate) struct ReadSide {
    pub(crate) buf: Owned,
    /// A body in progress that the pooled length-delimited codec lent to
    /// be read into directly; the read buffer is empty while it is here
    /// (unless a caller filled it through `read_buffer_mut`).
    direct: Option<Direct>,
    eof: bool,
    is_readable: bool,
    has_errored: bool,
}

impl ReadSide {
    pub(crate) fn new(buf: Owned) -> ReadSide {
        ReadSide {
            buf,
            direct: None,
            eof: false,
            is_readable: false,
            has_errored: false,
        }
    }

    /// tokio-util's `FramedImpl::poll_next`, on a buffer kept pooled.
    pub(crate) fn poll_next<T, D>(
        &mut self,
        io: &mut T,
        codec: &mut D,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<D::Item, D::Error>>>
    where
        T: AsyncRead + Unpin,
        D: Decoder,
    {
        loop {
            if self.has_errored {
                self.is_readable = false;
                self.has_errored = false;
                return Poll::Ready(None);
            }
            if self.is_readable {
                let eof = self.eof;
                let decoded = self.decode(codec, |codec, buf| {
                    if eof {
                        codec.decode_eof(buf)
                    } else {
                        codec.decode(buf)
                    }
                });
                match decoded {
                    Err(e) => {
                        self.has_errored = true;
                        return Poll::Ready(Some(Err(e)));
                    }
                    Ok(Some(frame)) => return Poll::Ready(Some(Ok(frame))),
                    Ok(None) if eof => {
                        self.is_readable = false;
                        return Poll::Ready(None);
                    }
                    Ok(None) => self.is_readable = false,
                }
            }
            if let Some(d) = self.direct.as_mut().filter(|_| self.buf.buf.is_empty()) {
                // The rest of a large body, straight into the frame.
                let want = d.len - d.frame.len();
                let mut dst = (&mut *d.frame).limit(want);
                let read = tokio_util::io::poll_read_buf(Pin::new(&mut *io), cx, &mut dst);
                match ready!(read) {
                    Ok(0) => {
                        // `decode_eof` takes the frame back and says the
                        // stream ended inside it.
                        self.eof = true;
                        self.is_readable = true;
                    }
                    Ok(_) => {
                        self.eof = false;
                        // Complete: the codec takes it back and yields it.
                        self.is_readable = d.frame.len() == d.len;
                    }
                    Err(e) => {
                        self.direct = None;
                        self.has_errored = true;
                        return Poll::Ready(Some(Err(e.into())));
                    }
                }
                continue;
            }
            self.make_room();
            let read = tokio_util::io::poll_read_buf(Pin::new(&mut *io), cx, &mut *self.buf.buf);
            let n = match ready!(read) {
                Ok(n) => n,
                Err(e) => {
                    self.has_errored = true;
                    return Poll::Ready(Some(Err(e.into())));
                }
            };
            if n == 0 {
                if self.eof {
                    return Poll::Ready(None);
                }
                self.eof = true;
            } else {
                self.eof = false;
            }
            self.is_readable = true;
        }
    }

    /// Runs one `decode` and keeps the buffer pooled if the codec moved it.
    /// The body in progress (if any) goes to the codec for the call, and
    /// the one it lends (if any) comes back.
    #[inline]
    fn decode<D, R>(
        &mut self,
        codec: &mut D,
        decode: impl FnOnce(&mut D, &mut BytesMut) -> R,
    ) -> R {
        // On a pool with a budget, a zero-length handle keeps the checked-out
        // allocation reachable during the call: if the codec's `reserve`
        // moves the buffer while frames share it, the old guard still holds
        // that allocation when it is dropped (and its charge with it, for as
        // long as the frames keep the allocation alive).
        let anchor = if self.buf.budgeted() {
            Some(self.buf.buf.split_to(0))
        } else {
            None
        };
        let dst: &mut BytesMut = &mut self.buf.buf;
        let lend = ReadLend::new(&*codec, dst, !self.eof, self.direct.take());
        let out = decode(codec, dst);
        self.direct = lend.take();
        if !self.buf.same_allocation() {
            self.adopt(anchor);
        }
        out
    }

    /// The codec (or a caller through `read_buffer_mut`) moved the buffer
    /// to an allocation of its own: move its bytes into a pooled checkout
    /// of that size.
    #[cold]
    fn adopt(&mut self, anchor: Option<BytesMut>) {
        let fresh = self.buf.fresh(self.buf.buf.capacity(), &self.buf.buf);
        let old = self.buf.replace(fresh);
        // The old guard goes back around its own allocation (the anchor),
        // not around the one the codec made, which drops here.
        let handle = self.buf.pool().handle.clone();
        let (moved, lease) = old.into_raw();
        drop(PooledBytes::from_raw(
            anchor.unwrap_or_default(),
            lease,
            handle,
        ));
        drop(moved);
    }

    /// The read buffer with any data not yet decoded (for `into_parts`): a
    /// body in progress goes back in front of it, for the codec (which
    /// still knows the frame's length) to read it from there.
    pub(crate) fn into_buf(self) -> PooledBytes {
        let Some(d) = self.direct else {
            return self.buf.into_buf();
        };
        let mut flat = self.buf.fresh(d.frame.len() + self.buf.buf.len(), &d.frame);
        flat.extend_from_slice(&self.buf.buf);
        flat
    }

    /// Room for the next read: the whole class where possible, taken back
    /// in place (no allocation) while no frame shares the buffer; otherwise
    /// a fresh pooled buffer with the unconsumed bytes. A buffer that grew
    /// past its class goes back to it once empty.
    fn make_room(&mut self) {
        if !self.buf.same_allocation() {
            self.adopt(None);
        }
        let owned = &mut self.buf;
        let len = owned.buf.len();
        if len == 0 && owned.end - owned.start > owned.class_cap {
            let fresh = owned.pool().checkout(owned.size);
            drop(owned.replace(fresh));
            return;
        }
        let want = owned.class_cap.saturating_sub(len).max(1);
        if owned.buf.capacity() - len >= want || owned.buf.try_reclaim(want) {
            return;
        }
        let fresh = owned.fresh(len + want, &owned.buf);
        drop(owned.replace(fresh));
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
        let dst: &mut BytesMut = &mut self.buf.buf;
        let lend = Lend::new(codec, dst);
        codec.encode(item, dst)?;
        if let Some((at, body)) = lend.take() {
            if body.len() > 0 {
                self.bodies += body.len();
                self.queue.push_back(Queued {
                    at: self.base + at as u64,
                    body,
                });
            }
        }
        self.buf.settle();
        Ok(())
    }

    pub(crate) fn poll_ready<T: AsyncWrite + Unpin>(
        &mut self,
        io: &mut T,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while self.queued() >= self.boundary {
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
            let fresh = owned.pool().checkout(owned.size);
            drop(owned.replace(fresh));
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
        let wb: &[u8] = &self.buf.buf;
        let mut off = 0;
        for q in &self.queue {
            let at = (q.at - self.base) as usize;
            flat.extend_from_slice(&wb[off..at]);
            off = at;
            flat.extend_from_slice(q.body.chunk());
        }
        flat.extend_from_slice(&wb[off..]);
        flat
    }
}
