//! `PooledBytes`, the checkout guard, and the owner behind a frozen one.
//!
//! The whole return path is [`give_back`]: the guard's `Drop`, a frozen
//! buffer's last `Bytes` clone and a taken-apart `Framed` all end there,
//! except the guard's common return (uncharged, untracked, on a thread that
//! caches), which is one `BufferPool::give_back` and, for a discard, its
//! event.

use std::fmt;
use std::io;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};

use bytes::buf::UninitSlice;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use pool_core::{Returned, Source, Ticket};

use crate::diagnostics::{self, Track};
use crate::pool::{BytesPool, Handle, Inner};

/// Returns a buffer and its budget charge to the pool.
#[inline]
fn give_back(handle: &Handle, buf: BytesMut, ticket: Ticket, charge: usize, track: Track) {
    let inner = handle.inner();
    // A charged buffer whose memory a split-off part still uses keeps its
    // charge until the part drops (see `pinned`).
    let (buf, ticket, charge, track) = match &inner.budget {
        Some(budget) if charge > 0 => {
            match budget
                .pinned
                .hold_if_shared(handle, buf, ticket, charge, track)
            {
                Some(back) => back,
                None => return,
            }
        }
        _ => (buf, ticket, charge, track),
    };
    give_back_unique(inner, buf, ticket, charge, track);
}

/// Returns a buffer to the pool and its charge to the budget, with the
/// observers told; the buffer is not held aside whatever its state.
pub(crate) fn give_back_unique(
    inner: &Inner,
    buf: BytesMut,
    ticket: Ticket,
    charge: usize,
    track: Track,
) {
    diagnostics::on_return(inner, track);
    let class = ticket.class_size();
    let capacity = buf.capacity();
    let returned = inner.pool.give_back(buf, ticket);
    crate::tracing::returned(&inner.settings, class, capacity, returned);
    crate::runtime::after_return(inner);
    // After the buffer is back, so that a woken waiter can find it.
    if charge > 0 {
        if let Some(budget) = &inner.budget {
            budget.release(charge);
        }
    }
}

#[cold]
#[inline(never)]
fn give_back_cold(handle: &Handle, buf: BytesMut, ticket: Ticket, charge: usize, track: Track) {
    give_back(handle, buf, ticket, charge, track);
}

/// A [`BytesMut`] checked out of a [`BytesPool`]; dropping it returns the
/// buffer to the pool, on whatever thread drops it.
///
/// Derefs to `BytesMut`, and implements [`BufMut`], [`Buf`] and
/// [`io::Write`], so it goes wherever a `BytesMut` goes: `read_buf(&mut
/// buf)`, a codec's `decode(&mut buf)`, `write!(buf, ...)`,
/// `write_all_buf(&mut buf)` (which consumes the bytes from the front),
/// `http_body_util::Full::new(buf)`. It is `Send + Sync + 'static`, so a
/// task can hold it across `.await` and move between workers. It compares
/// equal to byte slices, `Vec<u8>`, `Bytes` and `str` with the same bytes;
/// [`Clone`] checks out a new pooled buffer (see [`clone`](Self::clone)).
///
/// # Reading into it: `read_buf`, not `read`
///
/// **A fresh checkout is empty (length 0).** `AsyncReadExt::read(&mut buf)`
/// reads into the buffer's *initialised length*, so on a fresh checkout it
/// reads nothing and returns `Ok(0)`, which looks exactly like end of
/// stream. Use **`read_buf(&mut buf)`**, which appends into the spare
/// capacity and returns `Ok(0)` only at end of stream. If an API needs an
/// initialised `&mut [u8]`, check out with
/// [`BytesPool::checkout_zeroed`] (length `n`, zero-filled):
///
/// ```
/// use tokio::io::AsyncReadExt;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let mut input: &[u8] = b"hello";
/// let mut buf = pool_tokio::checkout(64);
/// assert_eq!(input.read(&mut buf).await?, 0); // length 0: reads nothing!
/// assert_eq!(input.read_buf(&mut buf).await?, 5); // appends: right
/// let mut slice = pool_tokio::checkout_zeroed(3);
/// let mut more: &[u8] = b"abc";
/// assert_eq!(more.read(&mut slice[..]).await?, 3); // length 3: fine
/// assert_eq!(slice, b"abc"[..]);
/// # Ok(())
/// # }
/// ```
///
/// Split-off parts (`split_to`, `split_off`, `split`) share its memory and
/// stay valid after it is dropped: the pool sees the memory is still shared
/// and drops the buffer instead of reusing it. [`freeze`](Self::freeze)
/// turns it into `Bytes` without a copy; the memory comes back to the pool
/// when the last clone drops.
///
/// ```
/// use std::io::Write;
/// use bytes::BufMut;
///
/// let mut buf = pool_tokio::checkout(64);
/// buf.put_slice(b"status: ");
/// write!(buf, "{}", 200)?;
/// assert_eq!(&buf[..], b"status: 200");
/// let body = buf.freeze(); // no copy
/// assert_eq!(&body[..], b"status: 200");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct PooledBytes {
    /// Owned by the guard while `ticket` is `Some`; moved out (by `Drop` or
    /// `into_raw`) exactly when `ticket` is taken. No `Option` around the
    /// buffer: reaching it is a field access, and moving it is one copy.
    buf: ManuallyDrop<BytesMut>,
    ticket: Option<Ticket>,
    charge: usize,
    /// Zero-sized without the `diagnostics` feature.
    track: Track,
    handle: Handle,
}

impl PooledBytes {
    #[inline]
    pub(crate) fn new(
        buf: BytesMut,
        ticket: Ticket,
        charge: usize,
        track: Track,
        handle: Handle,
    ) -> Self {
        PooledBytes {
            buf: ManuallyDrop::new(buf),
            ticket: Some(ticket),
            charge,
            track,
            handle,
        }
    }

    /// Takes the guard apart without returning the buffer.
    #[inline]
    pub(crate) fn into_raw(mut self) -> (BytesMut, Lease) {
        let Some(ticket) = self.ticket.take() else {
            unreachable!("a guard holds its buffer until dropped")
        };
        // SAFETY: `ticket` was `Some`, so the guard still owned `buf`; with
        // `ticket` now `None`, `Drop` will not touch `buf` again.
        let buf = unsafe { ManuallyDrop::take(&mut self.buf) };
        (
            buf,
            Lease {
                ticket,
                charge: self.charge,
                track: self.track,
            },
        )
    }

    /// Rebuilds a guard from [`into_raw`](Self::into_raw)'s parts.
    #[inline]
    pub(crate) fn from_raw(buf: BytesMut, lease: Lease, handle: Handle) -> Self {
        Self::new(buf, lease.ticket, lease.charge, lease.track, handle)
    }

    #[inline]
    fn ticket(&self) -> &Ticket {
        match &self.ticket {
            Some(ticket) => ticket,
            None => unreachable!("a guard holds its buffer until dropped"),
        }
    }

    /// Turns the buffer's contents into [`Bytes`] without copying. The
    /// memory goes back to the pool when the last clone of the `Bytes` (and
    /// of any slice of it) drops.
    ///
    /// **Cost: one small heap allocation per call** (the shared owner box
    /// of `Bytes::from_owner`, about 64 bytes), so a frozen pooled buffer
    /// per response allocates as often as a fresh `BytesMut` would. Use it
    /// for APIs that need `Bytes`. Where any [`Buf`] will do, pass the
    /// guard itself instead: it is a `Buf` (for example
    /// `http_body_util::Full::new(buf)`, or with the `http-body` feature
    /// `PooledBody`), which allocates nothing.
    ///
    /// For many small responses on one connection, that allocation can be
    /// avoided: keep one guard per connection as a scratch buffer and hand
    /// out `buf.split().freeze()` for each response. Each split-off part
    /// shares the scratch memory; once the previous responses are dropped,
    /// `reserve` reuses it without allocating. The pool takes the buffer
    /// back when the guard drops, and drops it instead if a response is
    /// still alive (see `examples/echo_codec.rs`):
    ///
    /// ```
    /// use bytes::BufMut;
    ///
    /// let pool = pool_tokio::BytesPool::new();
    /// let mut scratch = pool.checkout(4096);
    /// for i in 0..3u8 {
    ///     scratch.reserve(64); // reuses the memory: the last response is gone
    ///     scratch.put_slice(&[i; 64]);
    ///     let response: bytes::Bytes = scratch.split().freeze();
    ///     assert_eq!(response[0], i);
    /// } // each `response` dropped here
    /// drop(scratch);
    /// assert_eq!(pool.stats().total().discarded.total(), 0); // back, kept
    /// ```
    ///
    /// Freezing the whole guard:
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let mut buf = pool.checkout(4096);
    /// buf.extend_from_slice(b"frozen");
    /// let a = buf.freeze();
    /// let b = a.slice(1..3);
    /// drop(a);
    /// assert_eq!(pool.stats().outstanding(), 1); // `b` still holds it
    /// assert_eq!(&b[..], b"ro");
    /// drop(b);
    /// assert_eq!(pool.stats().outstanding(), 0);
    /// assert_eq!(pool.stats().total().discarded.total(), 0); // kept for reuse
    /// ```
    pub fn freeze(self) -> Bytes {
        let handle = self.handle.clone();
        let (buf, lease) = self.into_raw();
        Bytes::from_owner(Frozen {
            buf: Some((buf, lease)),
            handle,
        })
    }

    /// Takes the buffer out of the pool for good (it will not come back;
    /// the pool counts it as detached, and its budget charge is released).
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let buf: bytes::BytesMut = pool.checkout(100).detach();
    /// assert_eq!(buf.capacity(), 512);
    /// assert_eq!(pool.stats().outstanding(), 0);
    /// ```
    pub fn detach(self) -> BytesMut {
        let handle = self.handle.clone();
        let (buf, lease) = self.into_raw();
        let inner = handle.inner();
        diagnostics::on_return(inner, lease.track);
        inner.pool.forget(lease.ticket);
        if let Some(budget) = &inner.budget {
            if lease.charge > 0 {
                budget.release(lease.charge);
            }
        }
        buf
    }

    /// The size class the buffer came from; `None` for a request above the
    /// largest class (a plain allocation, dropped on return).
    ///
    /// ```
    /// assert_eq!(pool_tokio::checkout(3000).class_size(), Some(3072));
    /// ```
    pub fn class_size(&self) -> Option<usize> {
        self.ticket().class_size()
    }

    /// Where the buffer came from: this thread's cache, the depot, a
    /// new allocation, or an unpooled one.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// assert_eq!(pool.checkout(10).source(), pool_core::Source::New);
    /// assert_eq!(pool.checkout(10).source(), pool_core::Source::Local);
    /// ```
    pub fn source(&self) -> Source {
        self.ticket().source()
    }

    /// The bytes this buffer charges to the pool's budget (0 without a
    /// budget, or for an overdraft).
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::builder().budget(1 << 20).build()?;
    /// assert_eq!(pool.checkout(1000).budget_charge(), 1024);
    /// # Ok::<(), pool_tokio::BuildError>(())
    /// ```
    pub fn budget_charge(&self) -> usize {
        self.charge
    }

    /// A handle to the pool this buffer goes back to.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let buf = pool.checkout(10);
    /// assert_eq!(buf.pool().stats().outstanding(), 1);
    /// ```
    pub fn pool(&self) -> BytesPool {
        BytesPool {
            handle: self.handle.clone(),
        }
    }
}

impl Clone for PooledBytes {
    /// A pooled copy: checks out a buffer of the same class from the same
    /// pool (charged to its budget like [`BytesPool::checkout`], so it
    /// never waits) and copies the bytes into it. This is the method
    /// `pooled.clone()` calls; it never returns an unpooled `BytesMut`.
    /// For a cheap shared copy, [`freeze`](PooledBytes::freeze) once and
    /// clone the `Bytes`.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let mut a = pool.checkout(1000);
    /// a.extend_from_slice(b"payload");
    /// let b: pool_tokio::PooledBytes = a.clone();
    /// assert_eq!(b, a);
    /// assert_eq!(b.class_size(), Some(1024));
    /// assert_eq!(pool.stats().outstanding(), 2);
    /// ```
    fn clone(&self) -> Self {
        let size = self.class_size().unwrap_or(0).max(self.len());
        let mut copy = self.pool().checkout(size);
        copy.extend_from_slice(self);
        copy
    }
}

impl From<PooledBytes> for Bytes {
    /// [`PooledBytes::freeze`]: no copy, one small allocation; the memory
    /// returns to the pool when the last `Bytes` clone drops.
    ///
    /// ```
    /// let mut buf = pool_tokio::checkout(16);
    /// buf.extend_from_slice(b"abc");
    /// let bytes = bytes::Bytes::from(buf);
    /// assert_eq!(bytes, &b"abc"[..]);
    /// ```
    fn from(buf: PooledBytes) -> Self {
        buf.freeze()
    }
}

impl From<PooledBytes> for BytesMut {
    /// [`PooledBytes::detach`]: the buffer leaves the pool for good and
    /// its budget charge is released.
    ///
    /// ```
    /// let mut buf = pool_tokio::checkout(16);
    /// buf.extend_from_slice(b"abc");
    /// let owned = bytes::BytesMut::from(buf);
    /// assert_eq!(&owned[..], b"abc");
    /// ```
    fn from(buf: PooledBytes) -> Self {
        buf.detach()
    }
}

/// `PartialEq` in both directions with a type that can be viewed as bytes.
macro_rules! eq_bytes {
    ($($ty:ty),*) => {$(
        impl PartialEq<$ty> for PooledBytes {
            #[inline]
            fn eq(&self, other: &$ty) -> bool {
                self[..] == AsRef::<[u8]>::as_ref(other)[..]
            }
        }

        impl PartialEq<PooledBytes> for $ty {
            #[inline]
            fn eq(&self, other: &PooledBytes) -> bool {
                other == self
            }
        }
    )*};
}

eq_bytes!([u8], &[u8], Vec<u8>, Bytes, BytesMut, str, &str);

impl<const N: usize> PartialEq<[u8; N]> for PooledBytes {
    /// ```
    /// let mut buf = pool_tokio::checkout(4);
    /// buf.extend_from_slice(b"ok");
    /// assert_eq!(buf, *b"ok");
    /// ```
    #[inline]
    fn eq(&self, other: &[u8; N]) -> bool {
        self[..] == other[..]
    }
}

impl PartialEq for PooledBytes {
    /// Equal bytes; the pool, class and capacity do not matter.
    ///
    /// ```
    /// let (mut a, mut b) = (pool_tokio::checkout(10), pool_tokio::checkout(5000));
    /// a.extend_from_slice(b"x");
    /// b.extend_from_slice(b"x");
    /// assert_eq!(a, b);
    /// assert_eq!(a, "x");
    /// assert_eq!(a, b"x"[..]);
    /// assert_eq!(a, bytes::Bytes::from_static(b"x"));
    /// ```
    #[inline]
    fn eq(&self, other: &PooledBytes) -> bool {
        self[..] == other[..]
    }
}

impl Eq for PooledBytes {}

/// A checked-out buffer's accounting, apart from the buffer (while a
/// `Framed` owns the buffer).
#[derive(Debug)]
pub(crate) struct Lease {
    ticket: Ticket,
    charge: usize,
    track: Track,
}

impl Drop for PooledBytes {
    #[inline]
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            // SAFETY: `ticket` was `Some`, so the guard still owned `buf`;
            // it is moved out once, here, and never touched again.
            let buf = unsafe { ManuallyDrop::take(&mut self.buf) };
            let inner = self.handle.inner();
            // The common return: nothing charged, nothing tracked, a thread
            // that keeps a cache. Then pool-core's return is all there is
            // to do, in one pass (its fast path, else its full one, each
            // `Buffer` hook run once), and the only event is a discard's.
            if self.charge == 0
                && !diagnostics::tracking(&self.track)
                && crate::runtime::keeps_cache(inner)
            {
                let class = ticket.class_size();
                let capacity = buf.capacity();
                let returned = inner.pool.give_back(buf, ticket);
                if returned != Returned::Kept {
                    crate::tracing::returned(&inner.settings, class, capacity, returned);
                }
                return;
            }
            give_back_cold(&self.handle, buf, ticket, self.charge, self.track);
        }
    }
}

impl Deref for PooledBytes {
    type Target = BytesMut;

    #[inline]
    fn deref(&self) -> &BytesMut {
        &self.buf
    }
}

impl DerefMut for PooledBytes {
    #[inline]
    fn deref_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }
}

impl AsRef<[u8]> for PooledBytes {
    #[inline]
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl AsMut<[u8]> for PooledBytes {
    #[inline]
    fn as_mut(&mut self) -> &mut [u8] {
        self
    }
}

impl fmt::Debug for PooledBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledBytes")
            .field("class_size", &self.class_size())
            .field("capacity", &self.capacity())
            .field("bytes", &**self)
            .finish()
    }
}

impl io::Write for PooledBytes {
    #[inline]
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.extend_from_slice(data);
        Ok(data.len())
    }

    #[inline]
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.extend_from_slice(data);
        Ok(())
    }

    #[inline]
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// SAFETY: every method forwards to `BytesMut`'s own `BufMut` implementation
// on the one buffer this guard holds, so the trait's contract (the bytes
// `chunk_mut` exposes belong to the buffer; `advance_mut(cnt)` is called
// only after `cnt` of them were initialised) is exactly `BytesMut`'s.
unsafe impl BufMut for PooledBytes {
    #[inline]
    fn remaining_mut(&self) -> usize {
        BufMut::remaining_mut(&**self)
    }

    #[inline]
    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: our caller upholds `advance_mut`'s contract for this
        // buffer's `chunk_mut`, which is the inner buffer's.
        unsafe { BufMut::advance_mut(&mut **self, cnt) }
    }

    #[inline]
    fn chunk_mut(&mut self) -> &mut UninitSlice {
        BufMut::chunk_mut(&mut **self)
    }

    #[inline]
    fn put_slice(&mut self, src: &[u8]) {
        self.extend_from_slice(src);
    }

    #[inline]
    fn put_bytes(&mut self, val: u8, cnt: usize) {
        BufMut::put_bytes(&mut **self, val, cnt);
    }
}

/// Reading consumes from the front (`advance` moves the start of the view);
/// the buffer still returns to the pool when the guard drops, where the
/// pool reclaims its whole capacity.
///
/// ```
/// use bytes::Buf;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use tokio::io::AsyncWriteExt;
/// let mut buf = pool_tokio::checkout(64);
/// buf.extend_from_slice(b"hello world");
/// buf.advance(6);
/// assert_eq!(buf.chunk(), b"world");
/// let mut out = Vec::new();
/// out.write_all_buf(&mut buf).await?; // consumes it
/// assert_eq!((out.as_slice(), buf.remaining()), (&b"world"[..], 0));
/// # Ok(())
/// # }
/// ```
impl Buf for PooledBytes {
    #[inline]
    fn remaining(&self) -> usize {
        Buf::remaining(&**self)
    }

    #[inline]
    fn chunk(&self) -> &[u8] {
        Buf::chunk(&**self)
    }

    #[inline]
    fn advance(&mut self, cnt: usize) {
        Buf::advance(&mut **self, cnt)
    }

    #[inline]
    fn copy_to_bytes(&mut self, len: usize) -> Bytes {
        // `BytesMut`'s own: splits the bytes off without copying (they share
        // the allocation, so the pool drops rather than reuses it later).
        Buf::copy_to_bytes(&mut **self, len)
    }
}

/// The owner behind a frozen buffer's `Bytes`: returns the buffer when the
/// last clone drops.
struct Frozen {
    buf: Option<(BytesMut, Lease)>,
    handle: Handle,
}

impl AsRef<[u8]> for Frozen {
    fn as_ref(&self) -> &[u8] {
        match &self.buf {
            Some((buf, _)) => buf,
            None => &[],
        }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        if let Some((buf, lease)) = self.buf.take() {
            give_back(&self.handle, buf, lease.ticket, lease.charge, lease.track);
        }
    }
}
