//! Frames split off a pooled buffer and frozen `Bytes` stay intact after the
//! guard is gone; the pool never hands out memory another handle can see.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use pool_tokio::BytesPool;

fn range_of(b: &[u8]) -> Range<usize> {
    let start = b.as_ptr() as usize;
    start..start + b.len()
}

fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

#[test]
fn frames_and_frozen_clones_outlive_their_guards_unchanged() {
    let pool = BytesPool::new();
    let mut frames: Vec<(u8, BytesMut)> = Vec::new();
    let mut frozen: Vec<(u8, Bytes)> = Vec::new();
    for i in 0..60u8 {
        let mut buf = pool.checkout(4096);
        buf.put_bytes(i, 1000);
        match i % 3 {
            // A frame split off, the guard dropped with the rest.
            0 => frames.push((i, buf.split_to(300))),
            // Frozen whole; only a slice of a clone is kept.
            1 => {
                let all = buf.freeze();
                frozen.push((i, all.clone().slice(100..900)));
            }
            // Split, then the remainder frozen.
            _ => {
                frames.push((i, buf.split_to(200)));
                frozen.push((i, buf.freeze()));
            }
        }
    }
    let live: Vec<Range<usize>> = frames
        .iter()
        .map(|(_, f)| range_of(f))
        .chain(frozen.iter().map(|(_, b)| range_of(b)))
        .collect();

    // Many new checkouts, each filled to its whole capacity.
    for _ in 0..5_000 {
        let mut b = pool.checkout(4096);
        let cap = b.capacity();
        b.put_bytes(0xEE, cap);
        let r = range_of(&b);
        assert!(
            live.iter().all(|l| !overlaps(l, &r)),
            "handed out memory a frame still sees"
        );
    }
    for (i, f) in &frames {
        assert!(f.iter().all(|b| b == i), "frame {i} changed");
    }
    for (i, b) in &frozen {
        assert!(b.iter().all(|x| x == i), "frozen buffer {i} changed");
    }
    // The 20 frozen buffers are still out; the 40 split ones went back and
    // were dropped as still shared.
    let stats = pool.stats();
    assert_eq!(stats.outstanding(), 40);
    assert_eq!(stats.total().discarded.shared, 20);

    drop(frames);
    drop(frozen);
    let stats = pool.stats();
    assert_eq!(stats.outstanding(), 0);
    // The frames were dropped first, so every frozen buffer (split ones
    // included) came back unique and was kept: no new shared discard.
    assert_eq!(stats.total().discarded.shared, 20);
    assert_eq!(stats.total().returns, 5_060);
}

#[test]
fn frozen_buffer_returns_when_the_last_clone_drops_and_is_reused() {
    let pool = BytesPool::new();
    let mut buf = pool.checkout(8192);
    buf.put_slice(b"payload");
    let ptr = buf.as_ptr();
    let a = buf.freeze();
    let b = a.clone();
    let c = b.slice(3..);
    drop((a, b));
    assert_eq!(pool.stats().outstanding(), 1);
    assert_eq!(&c[..], b"load");
    drop(c);
    assert_eq!(pool.stats().outstanding(), 0);
    // Kept (it was unique again), and reused with no copy in between.
    let again = pool.checkout(8192);
    assert_eq!(again.as_ptr(), ptr);
    assert!(again.is_empty());
}

#[test]
fn frozen_buffer_dropped_on_another_thread_is_returned() {
    let pool = BytesPool::builder().budget(1 << 20).build().unwrap();
    let mut buf = pool.checkout(1000);
    buf.put_slice(b"cross-thread");
    let frozen = buf.freeze();
    assert_eq!(pool.budget().unwrap().charged, 1024);
    std::thread::spawn(move || assert_eq!(&frozen[..], b"cross-thread"))
        .join()
        .unwrap();
    assert_eq!(pool.stats().outstanding(), 0);
    assert_eq!(pool.budget().unwrap().charged, 0);
}
