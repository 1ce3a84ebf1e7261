//! The read half of a pooled framed value: [`ReadSide`], tokio-util's read
//! loop on a buffer kept pooled, and the thread-local hand-off
//! ([`take_direct`], [`lend_direct`]) through which the pooled
//! length-delimited codec lends a large body in progress to be read straight
//! into its frame. See the parent module for the design.

use std::cell::Cell;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{BufMut, BytesMut};
use tokio::io::AsyncRead;
use tokio_util::codec::Decoder;

use super::Owned;
use crate::pool::PooledBytes;

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
                        // The body read so far stays in the frame (the
                        // codec still expects its rest): reading resumes
                        // after the error, as tokio-util's does.
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
    ///
    /// Out of line: a codec that reallocates the read buffer is the
    /// exception (a checkout and a copy), and the read loop checks for it
    /// after every decode.
    #[cold]
    fn adopt(&mut self, anchor: Option<BytesMut>) {
        let fresh = self.buf.fresh(self.buf.buf.capacity(), &self.buf.buf);
        let old = self.buf.replace(fresh);
        // The old guard goes back around its own allocation (the anchor),
        // not around the one the codec made, which drops here.
        let (moved, lease, handle) = old.into_raw();
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
            owned.back_to_class();
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
