//! `PooledBytes`: traits, checkouts, errors, the default pool, and returns
//! across runtime workers.

use std::io::Write;
use std::sync::{mpsc, Arc, Barrier};
use std::thread;

use bytes::BufMut;
use pool_core::{BufferConfig, Source};
use pool_tokio::{BytesPool, PooledBytes, TryCheckoutError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn assert_send_sync_static<T: Send + Sync + 'static>() {}
fn assert_send_static<T: Send + 'static>(_: &T) {}

#[test]
fn guard_is_send_sync_static() {
    assert_send_sync_static::<PooledBytes>();
    assert_send_sync_static::<BytesPool>();
}

#[test]
fn spawned_future_holding_a_guard_across_await_is_send() {
    let pool = BytesPool::new();
    let fut = async move {
        let mut buf = pool.checkout(100);
        tokio::task::yield_now().await;
        buf.put_slice(b"held across an await");
        let frozen = buf.freeze();
        tokio::task::yield_now().await;
        frozen.len()
    };
    // Compile-time: `tokio::spawn` requires exactly this.
    assert_send_static(&fut);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    assert_eq!(rt.block_on(async { tokio::spawn(fut).await }).unwrap(), 20);
}

#[test]
fn derefs_bufmut_write_asref_debug() {
    let pool = BytesPool::new();
    let mut buf = pool.checkout(10);
    buf.put_u16(0x0102);
    buf.extend_from_slice(b"ab");
    write!(buf, "-{}", 42).unwrap();
    assert_eq!(buf.as_ref(), b"\x01\x02ab-42");
    buf.as_mut()[2] = b'A';
    assert_eq!(&buf[..], b"\x01\x02Ab-42");
    assert!(buf.remaining_mut() > 0);
    let debug = format!("{buf:?}");
    assert!(
        debug.contains("PooledBytes") && debug.contains("class_size: Some(512)"),
        "{debug}"
    );
}

#[tokio::test]
async fn read_buf_and_write_all_buf_take_the_guard() {
    let pool = BytesPool::new();
    let (mut a, mut b) = tokio::io::duplex(1 << 16);
    a.write_all(b"request bytes").await.unwrap();
    drop(a);
    let mut buf = pool.checkout(4096);
    while b.read_buf(&mut buf).await.unwrap() > 0 {}
    assert_eq!(&buf[..], b"request bytes");
    let mut out = Vec::new();
    out.write_all_buf(&mut *buf).await.unwrap();
    assert_eq!(out, b"request bytes");
}

#[test]
fn returned_buffer_comes_back_cleared_and_counted() {
    let pool = BytesPool::new();
    let mut buf = pool.checkout(3000);
    assert_eq!(
        (buf.capacity(), buf.class_size(), buf.source()),
        (3072, Some(3072), Source::New)
    );
    buf.put_bytes(7, 3000);
    drop(buf);
    let again = pool.checkout(3072);
    assert_eq!(again.source(), Source::Local);
    assert!(again.is_empty());
    drop(again);
    let stats = pool.stats();
    assert_eq!(
        (
            stats.checkouts(),
            stats.hits(),
            stats.misses(),
            stats.outstanding()
        ),
        (2, 1, 1, 0)
    );
}

#[test]
fn try_checkout_reports_impossible_sizes() {
    let pool = BytesPool::new();
    let err = pool.try_checkout(usize::MAX).unwrap_err();
    assert!(matches!(
        err,
        TryCheckoutError::TooLarge {
            requested: usize::MAX,
            ..
        }
    ));
    assert!(err.to_string().contains("ask for less"), "{err}");
    let big = pool.try_checkout(4 << 20).unwrap();
    assert_eq!((big.class_size(), big.source()), (None, Source::Unpooled));
    drop(big);
    assert_eq!(pool.stats().outstanding(), 0);
}

#[test]
#[should_panic(expected = "cannot check out")]
fn checkout_panics_on_impossible_size() {
    let _ = BytesPool::new().checkout(usize::MAX);
}

#[test]
fn settings_pass_through_and_are_validated() {
    let pool = BytesPool::builder()
        .config(BufferConfig::new().min_class(1024).max_class(8192))
        .build()
        .unwrap();
    assert_eq!(pool.checkout(1).capacity(), 1024);
    assert_eq!(pool.checkout(9000).class_size(), None);
    let err = BytesPool::builder()
        .config(BufferConfig::new().max_class(3000))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("max_class"), "{err}");
    pool.reconfigure(pool.config().min_class(2048)).unwrap();
    assert_eq!(pool.checkout(1).capacity(), 2048);
    assert!(pool.reconfigure(pool.config().min_class(3)).is_err());
}

#[test]
fn default_pool_and_leaked_pools_serve_static_guards() {
    let buf = pool_tokio::checkout(5000);
    assert_eq!(buf.capacity(), 5120);
    thread::spawn(move || drop(buf)).join().unwrap();
    let leaked = BytesPool::new().leak();
    let held: Vec<_> = (0..10).map(|_| leaked.checkout(100)).collect();
    assert_eq!(leaked.stats().outstanding(), 10);
    thread::spawn(move || drop(held)).join().unwrap();
    assert_eq!(leaked.stats().outstanding(), 0);
    assert!(format!("{leaked:?}").contains("static: true"));
}

#[test]
fn detach_takes_the_buffer_out_of_the_accounting() {
    let pool = BytesPool::builder().budget(1 << 20).build().unwrap();
    let buf = pool.checkout(100);
    assert_eq!(pool.budget().unwrap().charged, 512);
    let raw = buf.detach();
    assert_eq!(raw.capacity(), 512);
    let stats = pool.stats();
    assert_eq!((stats.outstanding(), stats.total().detached), (0, 1));
    assert_eq!(pool.budget().unwrap().charged, 0);
}

/// Two tasks that block their workers on a barrier at the same time must
/// run on two different workers: buffers checked out by one and dropped by
/// the other are returned on another worker than the one they left.
#[test]
fn buffers_taken_on_one_worker_return_on_another_balanced() {
    const N: usize = 200;
    let pool = BytesPool::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let (tx, rx) = mpsc::channel::<(thread::ThreadId, Vec<PooledBytes>)>();
    let producer = rt.spawn({
        let (pool, barrier) = (pool.clone(), barrier.clone());
        async move {
            let bufs: Vec<_> = (0..N)
                .map(|i| {
                    let mut b = pool.checkout([100, 1500, 9000][i % 3]);
                    b.put_bytes(i as u8, 64);
                    b
                })
                .collect();
            barrier.wait();
            tx.send((thread::current().id(), bufs)).unwrap();
        }
    });
    let consumer = rt.spawn(async move {
        barrier.wait();
        let (from, bufs) = rx.recv().unwrap();
        for (i, b) in bufs.iter().enumerate() {
            assert!(b[..].iter().all(|&x| x == i as u8));
        }
        drop(bufs);
        (from, thread::current().id())
    });
    rt.block_on(producer).unwrap();
    let (taken_on, returned_on) = rt.block_on(consumer).unwrap();
    assert_ne!(
        taken_on, returned_on,
        "the barrier puts the tasks on two workers"
    );

    // Then a free-for-all: tasks hop between workers at every await.
    rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<PooledBytes>(64);
        let producers: Vec<_> = (0..8)
            .map(|p| {
                let (pool, tx) = (pool.clone(), tx.clone());
                tokio::spawn(async move {
                    for i in 0..500 {
                        let mut b = pool.checkout_async(512 << (i % 4)).await.unwrap();
                        b.put_bytes(p, 10);
                        tokio::task::yield_now().await;
                        tx.send(b).await.unwrap();
                    }
                })
            })
            .collect();
        drop(tx);
        let consumer = tokio::spawn(async move {
            let mut n = 0;
            while let Some(b) = rx.recv().await {
                assert_eq!(b.len(), 10);
                n += 1;
            }
            n
        });
        for p in producers {
            p.await.unwrap();
        }
        assert_eq!(consumer.await.unwrap(), 8 * 500);
    });
    drop(rt);
    let stats = pool.stats();
    assert_eq!(stats.checkouts(), (N + 8 * 500) as u64);
    assert_eq!(stats.total().returns, stats.checkouts());
    assert_eq!(stats.outstanding(), 0);
    assert!(stats.hits() > 0, "{stats}");
}
