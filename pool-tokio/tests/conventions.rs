//! The conventions tokio users expect of a buffer type: `Buf`, `Clone` that
//! stays pooled, equality with byte types, conversions, `io::Error`, and
//! one error name across both crates (glob imports of both compile).
#![deny(ambiguous_glob_imports)]

use std::io;

use bytes::{Buf, Bytes, BytesMut};
#[allow(unused_imports)]
use pool_core::*;
use pool_tokio::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[test]
fn glob_imports_of_both_crates_name_each_error_once() {
    // Both names resolve without ambiguity: each crate's own type.
    let core: CheckoutError = BufferPool::<BytesMut>::new()
        .try_checkout(usize::MAX)
        .unwrap_err();
    let tokio_side: TryCheckoutError = core.into();
    assert!(matches!(
        tokio_side,
        TryCheckoutError::TooLarge {
            requested: usize::MAX,
            ..
        }
    ));
}

#[test]
fn clone_resolves_to_a_pooled_copy_of_the_same_class() {
    let pool = BytesPool::new();
    let mut a = pool.checkout(3000);
    a.extend_from_slice(b"abc");
    // Method resolution picks `PooledBytes: Clone`, not `BytesMut: Clone`
    // through `Deref`: the annotation would not compile otherwise.
    let b: PooledBytes = a.clone();
    assert_eq!(b, a);
    assert_eq!(b.class_size(), Some(3072));
    assert_eq!(pool.stats().outstanding(), 2);
    drop((a, b));
    assert_eq!(pool.stats().outstanding(), 0);
    assert_eq!(pool.stats().class(3072).unwrap().retained(), 2);
}

#[test]
fn clone_of_a_grown_buffer_keeps_every_byte() {
    let pool = BytesPool::new();
    let mut a = pool.checkout(512);
    a.extend_from_slice(&[7; 2000]); // grew past its class
    let b = a.clone();
    assert_eq!(b.len(), 2000);
    assert_eq!(b, a);
    assert!(b.capacity() >= 2000);
}

#[test]
fn clone_on_an_exhausted_budget_overdraws_like_checkout() {
    let pool = BytesPool::builder().budget(4096).build().unwrap();
    let a = pool.checkout(4096);
    let b = a.clone();
    assert_eq!((a.budget_charge(), b.budget_charge()), (4096, 0));
    assert_eq!(pool.budget().unwrap().overdrafts, 1);
}

#[tokio::test]
async fn buf_consumes_from_the_front_and_the_buffer_still_returns() {
    let pool = BytesPool::new();
    let mut buf = pool.checkout(4096);
    buf.extend_from_slice(b"0123456789");
    assert_eq!(buf.remaining(), 10);
    buf.advance(4);
    assert_eq!(buf.chunk(), b"456789");
    let mut out = Vec::new();
    out.write_all_buf(&mut buf).await.unwrap();
    assert_eq!(out, b"456789");
    assert!(!buf.has_remaining());
    drop(buf);
    let class = *pool.stats().class(4096).unwrap();
    assert_eq!((class.outstanding, class.retained()), (0, 1));
    assert_eq!(class.discarded.total(), 0);
    // The kept buffer has its whole class again.
    let again = pool.checkout(4096);
    assert_eq!(again.source(), Source::Local);
    assert!(again.capacity() >= 4096);
}

#[test]
fn equality_with_byte_types_in_both_directions() {
    let mut buf = checkout(16);
    buf.extend_from_slice(b"ok");
    let slice: &[u8] = b"ok";
    let (vec, bytes, bytes_mut) = (
        b"ok".to_vec(),
        Bytes::from_static(b"ok"),
        BytesMut::from(slice),
    );
    assert!(buf == *slice);
    assert!(*slice == buf);
    assert!(buf == slice);
    assert!(slice == buf);
    assert!(buf == vec);
    assert!(vec == buf);
    assert!(buf == bytes);
    assert!(bytes == buf);
    assert!(buf == bytes_mut);
    assert!(bytes_mut == buf);
    assert!(buf == *"ok");
    assert!(*"ok" == buf);
    assert!(buf == "ok");
    assert!("ok" == buf);
    assert!(buf == *b"ok");
    assert!(buf != "no" && buf != b"ok!"[..]);
}

#[test]
fn conversions_to_bytes_and_bytes_mut() {
    let pool = BytesPool::new();
    let mut buf = pool.checkout(512);
    buf.extend_from_slice(b"frozen");
    let bytes = Bytes::from(buf);
    assert_eq!(pool.stats().outstanding(), 1);
    drop(bytes);
    assert_eq!(pool.stats().outstanding(), 0);
    assert_eq!(pool.stats().class(512).unwrap().retained(), 1);

    let mut buf = pool.checkout(512);
    buf.extend_from_slice(b"owned");
    let owned = BytesMut::from(buf);
    assert_eq!(&owned[..], b"owned");
    let class = *pool.stats().class(512).unwrap();
    assert_eq!((class.outstanding, class.detached), (0, 1));
}

#[test]
fn checkout_errors_become_io_errors_that_say_what_to_change() {
    let pool = BytesPool::builder().budget(4096).build().unwrap();
    let held = pool.try_checkout(4096).unwrap();

    let exhausted: io::Error = pool.try_checkout(1).unwrap_err().into();
    assert_eq!(exhausted.kind(), io::ErrorKind::OutOfMemory);
    assert!(
        exhausted.to_string().contains("raise the budget"),
        "{exhausted}"
    );
    let inner = exhausted.get_ref().unwrap();
    assert!(matches!(
        inner.downcast_ref::<TryCheckoutError>(),
        Some(TryCheckoutError::BudgetExhausted { charge: 512, .. })
    ));

    let too_big: io::Error = pool.try_checkout(8192).unwrap_err().into();
    assert_eq!(too_big.kind(), io::ErrorKind::InvalidInput);
    assert!(too_big.to_string().contains("ask for less"), "{too_big}");

    let impossible: io::Error = pool.try_checkout(usize::MAX).unwrap_err().into();
    assert_eq!(impossible.kind(), io::ErrorKind::InvalidInput);
    drop(held);
}

#[tokio::test]
async fn read_on_an_empty_checkout_sees_no_room_and_the_zeroed_one_reads() {
    let (mut client, mut server) = tokio::io::duplex(64);
    client.write_all(b"request").await.unwrap();

    let mut empty = checkout(64);
    assert_eq!(
        server.read(&mut empty).await.unwrap(),
        0,
        "length 0: no room"
    );

    let mut zeroed = checkout_zeroed(64);
    assert_eq!(zeroed.len(), 64);
    let n = server.read(&mut zeroed).await.unwrap();
    zeroed.truncate(n);
    assert_eq!(zeroed, "request");

    client.write_all(b"more").await.unwrap();
    assert_eq!(server.read_buf(&mut empty).await.unwrap(), 4);
    assert_eq!(empty, "more");
}

#[test]
fn checkout_zeroed_zeroes_a_reused_buffer() {
    let pool = BytesPool::new();
    let mut dirty = pool.checkout(512);
    dirty.extend_from_slice(&[0xFF; 512]);
    drop(dirty);
    let clean = pool.checkout_zeroed(300);
    assert_eq!(clean.source(), Source::Local);
    assert_eq!(clean.len(), 300);
    assert!(clean.iter().all(|&b| b == 0));
}
