//! `BytesMut` in a buffer pool: split-off parts share memory, so a buffer
//! comes back only when it owns its memory alone again.

use bytes::{BufMut, BytesMut};
use pool_core::{BufferPool, Discard, Returned};

#[test]
fn a_buffer_with_a_live_frame_is_never_handed_out_again() {
    let pool = BufferPool::<BytesMut>::new();
    let (mut buf, ticket) = pool.take(8192);
    buf.put_slice(&[7; 100]);
    let frame = buf.split_to(100).freeze();
    assert_eq!(
        pool.give_back(buf, ticket),
        Returned::Discarded(Discard::Shared)
    );
    for _ in 0..100 {
        let mut b = pool.checkout(8192);
        b.put_slice(&[9; 8192]);
    }
    assert_eq!(&frame[..], &[7; 100][..], "the frame's bytes never changed");
}

#[test]
fn a_buffer_whose_frames_are_gone_is_reclaimed_whole() {
    let pool = BufferPool::<BytesMut>::new();
    let (mut buf, ticket) = pool.take(8192);
    let ptr = buf.as_ptr();
    buf.put_slice(&[7; 100]);
    drop(buf.split_to(100).freeze());
    assert_eq!(pool.give_back(buf, ticket), Returned::Kept);
    let again = pool.checkout(8192);
    assert_eq!(
        again.as_ptr(),
        ptr,
        "same allocation, reclaimed from the front"
    );
    assert!(again.is_empty());
    assert!(again.capacity() >= 8192);
}

#[test]
fn a_buffer_that_grew_past_its_class_is_dropped() {
    let pool = BufferPool::<BytesMut>::new();
    let mut b = pool.checkout(512);
    b.reserve(4096);
    drop(b);
    assert_eq!(pool.stats().total().discarded.oversize, 1);
    assert_eq!(pool.stats().retained_objects(), 0);
}

#[test]
fn returned_bytes_are_never_readable_again() {
    let pool = BufferPool::<BytesMut>::new();
    let mut b = pool.checkout(4096);
    b.put_slice(b"secret");
    drop(b);
    let b = pool.checkout(4096);
    assert_eq!(b.len(), 0);
    assert_eq!(&b[..], b"");
}

/// `try_give_back_fast_in_place`: a buffer the fast path keeps is moved out
/// of the caller's place (the next checkout gets the same allocation); one
/// it refuses (shared with a live frame, or grown) stays in place, whole,
/// for a full `give_back`, which counts why.
#[test]
fn a_buffer_returned_in_place_is_kept_or_left_whole() {
    use std::mem::ManuallyDrop;

    let pool = BufferPool::<BytesMut>::new();
    drop(pool.checkout(4096)); // this thread's cache of the class exists

    let (buf, ticket) = pool.take(4096);
    let ptr = buf.as_ptr();
    let mut place = ManuallyDrop::new(buf);
    // SAFETY: `place` is not used after a `true` return.
    assert!(unsafe { pool.try_give_back_fast_in_place(&mut place, &ticket) });
    assert_eq!(pool.checkout(4096).as_ptr(), ptr, "kept, then handed out");

    let (mut buf, ticket) = pool.take(4096);
    buf.put_slice(&[7; 100]);
    let frame = buf.split_to(100).freeze();
    let mut place = ManuallyDrop::new(buf);
    // SAFETY: as above.
    assert!(!unsafe { pool.try_give_back_fast_in_place(&mut place, &ticket) });
    assert_eq!(&frame[..], &[7; 100][..], "the frame's bytes are untouched");
    // SAFETY: refused, so `place` still owns the buffer.
    let buf = unsafe { ManuallyDrop::take(&mut place) };
    assert!(buf.is_empty(), "left cleared");
    assert_eq!(
        pool.give_back(buf, ticket),
        Returned::Discarded(Discard::Shared)
    );

    let (mut buf, ticket) = pool.take(4096);
    buf.reserve(64 << 10); // grew past its class
    let mut place = ManuallyDrop::new(buf);
    // SAFETY: as above.
    assert!(!unsafe { pool.try_give_back_fast_in_place(&mut place, &ticket) });
    // SAFETY: refused, so `place` still owns the buffer.
    let buf = unsafe { ManuallyDrop::take(&mut place) };
    assert!(buf.capacity() >= 64 << 10);
    assert_eq!(
        pool.give_back(buf, ticket),
        Returned::Discarded(Discard::Oversize)
    );
    assert_eq!(pool.stats().outstanding(), 0, "every buffer counted back");
    drop(frame);

    // Unpooled (above the largest class): refused, left as it was.
    let (mut buf, ticket) = pool.take(2 << 20);
    buf.put_slice(b"big");
    let mut place = ManuallyDrop::new(buf);
    // SAFETY: as above.
    assert!(!unsafe { pool.try_give_back_fast_in_place(&mut place, &ticket) });
    // SAFETY: refused, so `place` still owns the buffer.
    let buf = unsafe { ManuallyDrop::take(&mut place) };
    assert_eq!(&buf[..], b"big", "an unpooled buffer is not cleared");
    assert_eq!(
        pool.give_back(buf, ticket),
        Returned::Discarded(Discard::Unpooled)
    );
}

/// A whole buffer that finds this thread's cache full is refused in place
/// and kept by the full return (the slow put), never lost or counted twice.
#[test]
fn a_buffer_returned_in_place_into_a_full_cache_is_left_for_the_full_return() {
    use std::mem::ManuallyDrop;

    let pool = pool_core::BufferConfig::new()
        .thread_capacity(2)
        .batch(1)
        .build::<BytesMut>()
        .expect("valid settings");
    let out: Vec<_> = (0..3).map(|_| pool.take(4096)).collect();
    let mut refused = 0;
    for (buf, ticket) in out {
        let ptr = buf.as_ptr();
        let mut place = ManuallyDrop::new(buf);
        // SAFETY: `place` is not used after a `true` return.
        if !unsafe { pool.try_give_back_fast_in_place(&mut place, &ticket) } {
            refused += 1;
            // SAFETY: refused, so `place` still owns the buffer.
            let buf = unsafe { ManuallyDrop::take(&mut place) };
            assert_eq!(buf.as_ptr(), ptr, "the same buffer, written back");
            assert_eq!(pool.give_back(buf, ticket), Returned::Kept);
        }
    }
    assert!(refused >= 1, "a cache of 2 cannot take 3 on the fast path");
    let stats = pool.stats();
    assert_eq!(stats.outstanding(), 0, "{stats}");
    assert_eq!(stats.total().returns, 3, "{stats}");
}
