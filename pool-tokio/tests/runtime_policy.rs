//! The runtime policy the docs promise, under attack (issue 18): blocking
//! threads keep no cache by default (case 4), and a quiet service with
//! only the runtime hooks installed gives its memory back (case 5).

use std::time::{Duration, Instant};

use pool_core::BufferConfig;
use pool_tokio::{BytesPool, PooledBytes};

/// A multi-thread runtime with `pool`'s hooks installed.
fn runtime(pool: &BytesPool, workers: usize) -> tokio::runtime::Runtime {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(workers).enable_time();
    pool.install(&mut builder);
    builder.build().unwrap()
}

/// Checks out `n` buffers of `size` bytes, each in its own `spawn_blocking`
/// task, and hands them back unreturned.
fn blocking_checkouts(
    rt: &tokio::runtime::Runtime,
    pool: &BytesPool,
    n: usize,
    size: usize,
) -> Vec<PooledBytes> {
    rt.block_on(async {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let pool = pool.clone();
                tokio::task::spawn_blocking(move || pool.checkout(size))
            })
            .collect();
        let mut held = Vec::new();
        for t in tasks {
            held.push(t.await.unwrap());
        }
        held
    })
}

#[test]
fn a_blocking_checkout_leaves_no_batch_on_its_thread() {
    let pool = BytesPool::new();
    pool.prewarm(4096, 256);
    let rt = runtime(&pool, 2);
    // Only blocking threads touch the pool; nothing returns until the end.
    let held = blocking_checkouts(&rt, &pool, 1, 4096);
    let class = *pool.stats().class(4096).unwrap();
    assert_eq!(class.retained_local, 0, "a batch stayed cached: {class:?}");
    assert_eq!(class.retained_depot, 255, "{class:?}");
    let held2 = blocking_checkouts(&rt, &pool, 16, 4096);
    let class = *pool.stats().class(4096).unwrap();
    assert_eq!(class.retained_local, 0, "{class:?}");
    assert_eq!(class.retained_depot, 256 - 17, "{class:?}");
    assert_eq!(class.hits(), 17, "every checkout was served by the depot");
    drop((held, held2));
}

#[test]
fn a_blocking_return_is_not_kept_on_its_thread() {
    let pool = BytesPool::new();
    let rt = runtime(&pool, 1);
    let bufs: Vec<_> = (0..8).map(|_| pool.checkout(4096)).collect();
    rt.block_on(async { tokio::task::spawn_blocking(move || drop(bufs)).await })
        .unwrap();
    let class = *pool.stats().class(4096).unwrap();
    // The test thread keeps the cache it made; the blocking thread nothing.
    assert_eq!(
        (class.retained_local, class.retained_depot),
        (0, 8),
        "{class:?}"
    );
}

#[test]
fn blocking_cache_opts_blocking_threads_back_in() {
    let pool = BytesPool::builder().blocking_cache(true).build().unwrap();
    pool.prewarm(4096, 256);
    let rt = runtime(&pool, 1);
    let held = blocking_checkouts(&rt, &pool, 1, 4096);
    let class = *pool.stats().class(4096).unwrap();
    assert!(
        class.retained_local > 0,
        "a batch is cached there: {class:?}"
    );
    drop(held);
}
