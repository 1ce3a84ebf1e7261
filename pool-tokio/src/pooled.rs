//! `PooledBytes`'s API: `freeze` (the owner behind a frozen buffer,
//! `Frozen`), `detach`, its accessors, pooled `Clone`, equality with byte
//! types, `Buf`, `BufMut` and `io::Write`.
//!
//! The guard itself, its `Drop` and the whole return path (`give_back`) are
//! in `pool.rs`, beside the checkout: a frozen buffer's last `Bytes` clone
//! and a taken-apart `Framed` end in `give_back` too.

use std::fmt;
use std::io;

use bytes::buf::UninitSlice;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use pool_core::Source;

use crate::diagnostics::records::on_return;
use crate::pool::{give_back, BytesPool, Handle, Lease, PooledBytes};

impl PooledBytes {
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
        let (buf, lease, handle) = self.into_raw();
        Bytes::from_owner(Frozen {
            parts: Some((buf, lease, handle)),
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
        let (buf, lease, handle) = self.into_raw();
        let inner = handle.inner();
        on_return(&inner.diagnostics, lease.track);
        inner.pool.forget(lease.ticket);
        if let Some(budget) = &inner.budget {
            if lease.charge > 0 {
                budget.release(lease.charge);
            }
        }
        handle.give_up();
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
        BytesPool::from_handle(self.handle().clone())
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
    /// The guard's parts, its handle moved out of it (`None` only inside
    /// `Drop`).
    parts: Option<(BytesMut, Lease, Handle)>,
}

impl AsRef<[u8]> for Frozen {
    fn as_ref(&self) -> &[u8] {
        match &self.parts {
            Some((buf, _, _)) => buf,
            None => &[],
        }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        if let Some((buf, lease, handle)) = self.parts.take() {
            give_back(&handle, buf, lease.ticket, lease.charge, lease.track);
            handle.give_up();
        }
    }
}
