//! Framed values on a budget: `framed_async` waits once for both buffers
//! (two callers never hold one each while waiting for the other, and a
//! budget that can never cover both is an error, not a wait for ever), and
//! a buffer going back to its class is charged only after the old one went
//! back (no overdraft on a budget the old one exhausted).

use std::future::Future;
use std::task::Poll;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use pool_tokio::{BytesPool, Reservation, TryCheckoutError};
use tokio::io::AsyncWriteExt;
use tokio_util::codec::{BytesCodec, LengthDelimitedCodec};

#[tokio::test]
async fn two_framed_async_callers_do_not_deadlock() {
    let pool = BytesPool::builder().budget(16384).build().unwrap();
    let x1 = pool.try_checkout(8192).unwrap();
    let x2 = pool.try_checkout(8192).unwrap();
    let spawn = |pool: BytesPool| {
        tokio::spawn(async move {
            let (io, _peer) = tokio::io::duplex(64);
            pool.framed_async(io, BytesCodec::new()).await.map(drop)
        })
    };
    let (a, b) = (spawn(pool.clone()), spawn(pool.clone()));
    tokio::task::yield_now().await; // both wait
    drop(x1);
    drop(x2);
    let both = async { (a.await.unwrap(), b.await.unwrap()) };
    let done = tokio::time::timeout(Duration::from_secs(10), both).await;
    let (a, b) = done.unwrap_or_else(|_| panic!("deadlock: {:?}", pool.budget().unwrap()));
    a.unwrap();
    b.unwrap();
    assert_eq!(pool.budget().unwrap().charged, 0);
    assert_eq!(pool.budget().unwrap().overdrafts, 0);
}

#[tokio::test]
async fn framed_async_past_the_whole_budget_is_an_error() {
    let pool = BytesPool::builder().budget(12288).build().unwrap();
    let (io, _peer) = tokio::io::duplex(64);
    let mut fut = Box::pin(pool.framed_async(io, BytesCodec::new()));
    let first = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
    match first {
        Poll::Ready(Err(TryCheckoutError::ExceedsBudget { charge, budget })) => {
            assert_eq!((charge, budget), (16384, 12288));
        }
        Poll::Ready(other) => panic!("{:?}", other.map(drop)),
        Poll::Pending => panic!("waits for ever, holding {:?}", pool.budget().unwrap()),
    }
    assert_eq!(pool.budget().unwrap().charged, 0);
}

#[tokio::test]
async fn framed_async_takes_buffers_of_its_class_and_never_overdraws() {
    let pool = BytesPool::builder().budget(10240 + 8192).build().unwrap();
    pool.prewarm(10240, 1); // an idle larger buffer a checkout could take
    let (mut tx, rx) = tokio::io::duplex(1 << 16);
    let mut framed = pool.framed_async(rx, BytesCodec::new()).await.unwrap();
    assert_eq!(framed.read_buffer().capacity(), 8192, "its class");
    tx.write_all(b"hello").await.unwrap();
    let frame = framed.next().await.unwrap().unwrap();
    assert_eq!(&frame[..], b"hello");
    drop(frame);
    assert_eq!(pool.budget().unwrap().overdrafts, 0);
    drop(framed);
    assert_eq!(pool.budget().unwrap().charged, 0);
}

/// The write buffer an encoder grew goes back to its class once drained,
/// on a budget another task has taken the rest of.
#[tokio::test]
async fn a_drained_write_buffer_goes_back_to_class_without_an_overdraft() {
    let pool = BytesPool::builder().budget(16384 + 65536).build().unwrap();
    let (tx, _rx) = tokio::io::duplex(1 << 20);
    let mut framed = pool.framed(tx, BytesCodec::new());
    framed
        .feed(bytes::Bytes::from(vec![1u8; 40_000]))
        .await
        .unwrap();
    let grown = framed.write_buffer().capacity();
    assert!(grown >= 40_000);
    let before = pool.budget().unwrap();
    assert_eq!(before.overdrafts, 0, "{before:?}");
    let rest = pool.try_reserve(before.available()).unwrap();
    SinkExt::<bytes::Bytes>::flush(&mut framed).await.unwrap(); // drained
    assert!(framed.write_buffer().capacity() < grown, "back to class");
    swapped_in_and_charged(&pool, rest, framed);
}

/// The read buffer a decoder grew for a large frame goes back to its
/// class once empty, on a budget another task has taken the rest of.
#[tokio::test]
async fn an_emptied_read_buffer_goes_back_to_class_without_an_overdraft() {
    let pool = BytesPool::builder().budget(16384 + 65536).build().unwrap();
    let (mut tx, rx) = tokio::io::duplex(1 << 20);
    let mut framed = pool.framed(rx, LengthDelimitedCodec::new());
    let mut wire = (40_000u32).to_be_bytes().to_vec();
    wire.extend_from_slice(&[7; 40_000]);
    tx.write_all(&wire).await.unwrap();
    let frame = framed.next().await.unwrap().unwrap();
    assert_eq!(frame.len(), 40_000);
    drop(frame);
    let before = pool.budget().unwrap();
    let rest = pool.try_reserve(before.available()).unwrap();
    tx.write_all(&[0, 0, 0, 2, 1, 2]).await.unwrap();
    let frame = framed.next().await.unwrap().unwrap();
    assert_eq!(&frame[..], &[1, 2]);
    drop(frame);
    swapped_in_and_charged(&pool, rest, framed);
}

/// After a framed value's buffer went back to its class while `rest` held
/// the rest of the budget: no overdraft, and once `rest` is gone both of
/// its buffers are charged (the fresh one too), nothing once it is gone.
fn swapped_in_and_charged<F>(pool: &BytesPool, rest: Reservation, framed: F) {
    let after = pool.budget().unwrap();
    assert_eq!(after.overdrafts, 0, "{after:?}");
    drop(rest);
    let both = pool.budget().unwrap().charged;
    assert_eq!(both, 2 * 8192, "the fresh buffer is charged, as the other");
    drop(framed);
    assert_eq!(pool.budget().unwrap().charged, 0);
}
