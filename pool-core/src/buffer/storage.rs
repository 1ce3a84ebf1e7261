//! What a [`BufferPool`](crate::BufferPool) holds: the [`Buffer`] trait,
//! implemented for `Vec<u8>` and (feature `bytes`) `bytes::BytesMut`.

use std::mem::MaybeUninit;

/// A growable byte buffer that a [`BufferPool`](crate::BufferPool) can hold.
///
/// Implemented for `Vec<u8>`, and for `bytes::BytesMut` with the `bytes`
/// feature.
///
/// A pool keeps a returned buffer only if it is exactly the allocation it
/// lent: once [`clear`](Buffer::clear)ed (and, if that is not enough,
/// [`reclaim`](Buffer::reclaim)ed), its [`capacity`](Buffer::capacity) must
/// be the class size and its [`as_ptr`](Buffer::as_ptr) the address it had
/// at checkout. So `with_capacity(n)` must give exactly `n` bytes of
/// capacity, or the pool never keeps the buffer.
///
/// ```
/// use pool_core::Buffer;
/// let mut v = <Vec<u8> as Buffer>::with_capacity(4096);
/// let start = Buffer::as_ptr(&v);
/// v.extend_from_slice(b"old");
/// assert!(v.reclaim(4096));
/// assert!(v.is_empty() && Buffer::capacity(&v) == 4096 && Buffer::as_ptr(&v) == start);
/// ```
pub trait Buffer: Send + Sized + 'static {
    /// A new, empty buffer of exactly `capacity` bytes of capacity.
    fn with_capacity(capacity: usize) -> Self;

    /// Bytes the buffer can hold without reallocating.
    fn capacity(&self) -> usize;

    /// The address of the buffer's first byte (its view's start). After a
    /// successful `reclaim` of the whole allocation this is where the
    /// allocation starts.
    fn as_ptr(&self) -> *const u8;

    /// Sets the length to 0, keeping the memory. Called on every return;
    /// when the cleared buffer already spans exactly its class from where
    /// it started, the pool keeps it without calling `reclaim`.
    fn clear(&mut self);

    /// Makes a returned buffer ready for reuse: length 0, and at least
    /// `class_size` bytes of capacity that no other handle can read or
    /// write, without allocating. Returns false when that is impossible
    /// (for `BytesMut`, while a split-off part still shares the memory it
    /// needs); the pool then drops the buffer instead of handing it out
    /// again.
    fn reclaim(&mut self, class_size: usize) -> bool;

    /// Overwrites the whole capacity with zeros (after `reclaim`), for
    /// pools built with
    /// [`BufferConfig::zero_on_return`](crate::BufferConfig::zero_on_return).
    fn zero(&mut self);
}

/// A new buffer of a class of `size` bytes, on a miss. Out of line: the
/// allocation is the miss's cost anyway, and keeping it out keeps the
/// inlined hit (`fill` in `spine.rs`) small.
#[cold]
#[inline(never)]
pub(crate) fn new_buffer<B: Buffer>(size: usize) -> B {
    B::with_capacity(size)
}

impl Buffer for Vec<u8> {
    #[inline]
    fn with_capacity(capacity: usize) -> Self {
        Vec::with_capacity(capacity)
    }

    #[inline]
    fn capacity(&self) -> usize {
        Vec::capacity(self)
    }

    #[inline]
    fn as_ptr(&self) -> *const u8 {
        <[u8]>::as_ptr(self)
    }

    #[inline]
    fn clear(&mut self) {
        Vec::clear(self);
    }

    #[inline]
    fn reclaim(&mut self, class_size: usize) -> bool {
        Vec::clear(self);
        Vec::capacity(self) >= class_size
    }

    fn zero(&mut self) {
        Vec::clear(self);
        self.spare_capacity_mut().fill(MaybeUninit::new(0));
    }
}

#[cfg(feature = "bytes")]
impl Buffer for bytes::BytesMut {
    #[inline]
    fn with_capacity(capacity: usize) -> Self {
        bytes::BytesMut::with_capacity(capacity)
    }

    #[inline]
    fn capacity(&self) -> usize {
        bytes::BytesMut::capacity(self)
    }

    #[inline]
    fn as_ptr(&self) -> *const u8 {
        <[u8]>::as_ptr(self)
    }

    #[inline]
    fn clear(&mut self) {
        bytes::BytesMut::clear(self);
    }

    #[inline]
    fn reclaim(&mut self, class_size: usize) -> bool {
        bytes::BytesMut::clear(self);
        // Never allocates. Succeeds when this handle can reach `class_size`
        // bytes that no other handle can see: either it owns the allocation
        // alone again (every split-off part has been dropped; the view then
        // moves back to the allocation's start), or its own view already
        // spans them. The pool then also requires the view to start where
        // the allocation it lent started and to be exactly the class size,
        // which a buffer that was advanced while shared, or that grew, fails.
        // A split-off part may still exist then, but only one with zero
        // capacity (`split_to(0)`, `split_off(capacity)`): `bytes` keeps
        // views disjoint, so that part can neither read nor write any byte
        // this buffer reaches, and a `reserve` on it allocates anew while
        // this buffer lives.
        self.try_reclaim(class_size)
    }

    fn zero(&mut self) {
        bytes::BytesMut::clear(self);
        self.spare_capacity_mut().fill(MaybeUninit::new(0));
    }
}
