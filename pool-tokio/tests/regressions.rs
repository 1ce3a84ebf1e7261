//! Regression tests for two pool-core issues the reliability work found
//! (see RELIABILITY.md, "Regressions"): one fixed, one a documented,
//! harmless case whose guarantee is checked here.

use bytes::BytesMut;
use pool_tokio::BytesPool;

/// A handle split off with zero capacity (`split_to(0)`, `split()` of an
/// empty buffer, `split_off(capacity)`) still shares the allocation while
/// the guard keeps its whole capacity. The pool may keep and reuse such a
/// buffer: what it promises is that no other handle can see the bytes of a
/// reused buffer, and a zero-capacity handle sees none. Checked here: the
/// sibling stays empty and unchanged while the reused buffer is written.
#[test]
fn a_zero_capacity_sibling_never_sees_a_reused_buffer() {
    let pool = BytesPool::new();
    let mut guard = pool.checkout(512);
    let mut part: BytesMut = guard.split_to(0);
    assert_eq!(part.capacity(), 0);
    drop(guard);
    let mut again = pool.checkout(512);
    again.extend_from_slice(&[0xAB; 512]);
    assert!(part.is_empty() && part.capacity() == 0);
    // Growing the sibling cannot reach into the reused buffer: it is
    // shared, so `bytes` gives it fresh memory.
    part.extend_from_slice(b"sibling");
    assert!(again.iter().all(|&b| b == 0xAB));
    assert_eq!(&part[..], b"sibling");
}

/// `reconfigure` with a lower `depot_bytes` releases what the depot held
/// beyond the new bound at once (whole batches, largest classes first), so
/// "the depot never holds more than `depot_bytes`" holds throughout. It
/// once only lowered the bound for future pushes.
#[test]
fn lowering_depot_bytes_releases_the_surplus() {
    let pool = BytesPool::new();
    assert_eq!(pool.prewarm(256 << 10, 7), 7);
    pool.reconfigure(pool.config().depot_bytes(512 << 10))
        .unwrap();
    let held = pool.stats().depot_bytes;
    assert!(
        held <= 512 << 10,
        "{held} bytes kept over a bound of 512 KiB"
    );
}
