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
//!
//! The two halves live in submodules: `read.rs` (the read loop and the
//! direct-read hand-off) and `write.rs` (the write queue and the body
//! hand-off); this file holds what both own, the pooled buffer [`Owned`]
//! with its budget charge for growth.

mod read;
mod write;

pub(crate) use read::{lend_direct, take_direct, Direct, ReadSide};
pub(crate) use write::{queue_body, Body, WriteSide};

use crate::pool::{BytesPool, PooledBytes};

/// A pooled buffer owned by a framed value.
pub(crate) struct Owned {
    pub(crate) buf: PooledBytes,
    /// Growth charged to the budget, released with the buffer.
    growth: Growth,
    /// The capacity asked for at construction: what replacements check out.
    size: usize,
    /// Capacity of a buffer of `size`'s class (what "back to class" means):
    /// not of the buffer first lent, which a miss may have served from a
    /// larger class.
    class_cap: usize,
    /// The view's bounds at checkout: the buffer is still the allocation it
    /// was checked out with while its view stays inside them.
    start: usize,
    end: usize,
    /// The bounds of the allocation the view is in now, as far as seen:
    /// the lent one's until a codec reallocates the buffer, then the new
    /// one's (see `settle`).
    cur: usize,
    cur_end: usize,
    /// Bytes charged for the current allocation (checkout plus growth);
    /// `usize::MAX` without a budget. Write side only: an encoder's
    /// `reserve` grows the buffer.
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
    /// A buffer of `size`'s class (not a larger idle one: see `class_cap`).
    pub(crate) fn new(pool: &BytesPool, size: usize) -> Owned {
        Self::with(pool, pool.checkout_exact(size), size)
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
            class_cap: pool.buffer_pool().class_size_for(size).unwrap_or(cap),
            start,
            end: start + cap,
            cur: start,
            cur_end: start + cap,
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
        (self.cur, self.cur_end) = (self.start, self.end);
        if self.budgeted() {
            self.covered = new.capacity();
        }
        std::mem::replace(&mut self.buf, new)
    }

    /// Swaps the buffer, empty and grown or moved past its class, for a
    /// fresh one of its class. The fresh one is charged only once the old
    /// one went back (with its charge, unless parts of it are still held,
    /// and its growth's): on a budget they exhausted, their bytes then
    /// cover it, where a checkout first would overdraw and leave the fresh
    /// buffer uncharged for the framed value's life.
    fn back_to_class(&mut self) {
        let fresh = self.growth.pool.serve_within(self.size, 0, 0);
        drop(self.replace(fresh));
        self.growth.pool.charge_served(&mut self.buf, self.size);
    }

    /// A fresh checkout of at least `capacity` holding the unconsumed
    /// bytes of `from`.
    fn fresh(&self, capacity: usize, from: &[u8]) -> PooledBytes {
        let mut fresh = self.growth.pool.checkout(capacity.max(self.size));
        fresh.extend_from_slice(from);
        fresh
    }

    /// Bytes of the current allocation in front of the view (written off
    /// it with `advance`), which `capacity()` leaves out. Read before a
    /// codec may reallocate the buffer, for [`settle`](Self::settle).
    #[inline]
    pub(crate) fn front(&self) -> usize {
        let p = self.buf.as_ptr() as usize;
        if p >= self.cur && p <= self.cur_end {
            p - self.cur
        } else {
            0
        }
    }

    /// Charges growth of the buffer past what is covered (write side), after
    /// a codec call that had `front` bytes in front of the view.
    #[inline]
    fn settle(&mut self, front: usize) {
        let p = self.buf.as_ptr() as usize;
        let cap = self.buf.capacity();
        if p < self.cur || p + cap > self.cur_end {
            self.moved(front);
        } else if p - self.cur + cap > self.covered {
            self.charge_growth();
        }
    }

    /// The codec reallocated the buffer. `BytesMut` keeps the bytes in front
    /// of the view when it reallocates a buffer it owns alone (its
    /// `reserve` grows the whole allocation, front included), so the new
    /// allocation starts `front` bytes before the view; where it does not
    /// (a shared buffer is copied out, front left behind) this charges up
    /// to `front` bytes too many until the buffer drains, never too few.
    #[cold]
    fn moved(&mut self, front: usize) {
        let p = self.buf.as_ptr() as usize;
        self.cur = p.saturating_sub(front);
        self.cur_end = p + self.buf.capacity();
        self.charge_growth();
    }

    /// Charges the current allocation's growth since the last charge to the
    /// budget.
    ///
    /// Out of line: a buffer grows past its class rarely, and `settle` runs
    /// after every poll; the budget's charge (and a possible overdraft)
    /// stays out of that loop.
    #[cold]
    fn charge_growth(&mut self) {
        let size = self.cur_end - self.cur;
        if self.budgeted() && size > self.covered {
            let more = size - self.covered;
            self.covered = size;
            self.growth.bytes += self.growth.pool.charge_growth(more);
        }
    }

    /// Takes the buffer out (for `into_parts`). On a budgeted pool, a buffer
    /// a codec grew past its class (so reallocated: growth never stays in
    /// the lent allocation) comes out as a fresh checkout holding its bytes, charged
    /// like any checkout, and the grown one goes back with its growth
    /// charge: a guard handed out must be charged what it lends, and the
    /// growth charge is exact only while nothing copied the buffer out of
    /// a shared allocation (see `moved`).
    pub(crate) fn into_buf(mut self) -> PooledBytes {
        // The growth's charge goes back first, so that a fresh checkout
        // finds it in the budget; for the copy, the grown buffer's bytes
        // are out uncharged beside it.
        self.growth.release();
        if self.same_allocation() || !self.budgeted() {
            return self.buf;
        }
        let fresh = self.fresh(self.buf.len(), &self.buf);
        drop(self.replace(fresh));
        self.buf
    }

    pub(crate) fn pool(&self) -> &BytesPool {
        &self.growth.pool
    }
}
