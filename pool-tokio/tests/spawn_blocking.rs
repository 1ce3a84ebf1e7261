//! `pool_tokio::spawn_blocking` on a runtime without the pool's hooks: a
//! buffer dropped in the closure goes to the depot, where a worker finds
//! it; one dropped in tokio's `spawn_blocking` stays in that thread's cache.

use pool_tokio::BytesPool;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .expect("runtime")
}

/// (retained in thread caches, retained in the depot) of the 4 KiB class.
fn retained(pool: &BytesPool) -> (u64, u64) {
    let class = *pool.stats().class(4096).expect("4 KiB class");
    (class.retained_local, class.retained_depot)
}

#[test]
fn pool_spawn_blocking_returns_to_the_depot() {
    let rt = runtime();
    let pool = BytesPool::new();
    let buf = pool.checkout(4096);
    rt.block_on(async move { pool_tokio::spawn_blocking(move || drop(buf)).await })
        .expect("closure");
    assert_eq!(retained(&pool), (0, 1));
    // A worker's checkout finds it.
    let p = pool.clone();
    let source = rt
        .block_on(rt.spawn(async move { p.checkout(4096).source() }))
        .expect("task");
    assert_eq!(source, pool_core::Source::Depot);
}

#[test]
fn tokio_spawn_blocking_without_hooks_caches_on_the_blocking_thread() {
    let rt = runtime();
    let pool = BytesPool::new();
    let buf = pool.checkout(4096);
    rt.block_on(async move { tokio::task::spawn_blocking(move || drop(buf)).await })
        .expect("closure");
    // What `pool_tokio::spawn_blocking` (or the hooks) is for.
    assert_eq!(retained(&pool), (1, 0));
}

#[test]
fn the_mark_ends_with_the_closure() {
    let rt = runtime();
    let pool = BytesPool::new();
    let p = pool.clone();
    rt.block_on(async { pool_tokio::spawn_blocking(|| ()).await })
        .expect("closure");
    // The same blocking thread (the only idle one) caches again afterwards,
    // as a thread no hook marked does.
    let buf = pool.checkout(4096);
    rt.block_on(async move { tokio::task::spawn_blocking(move || drop(buf)).await })
        .expect("closure");
    assert_eq!(retained(&p), (1, 0));
}

/// A worker that hands its core over in `block_in_place` goes back to
/// tokio's blocking pool still marked a worker: closures
/// `pool_tokio::spawn_blocking` runs there are blocking work all the same
/// and keep no cache.
#[test]
fn a_former_workers_blocking_closures_keep_no_cache() {
    use std::time::Duration;

    let pool = BytesPool::new();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(1).enable_time();
    pool.install(&mut builder);
    let rt = builder.build().unwrap();
    let former = rt.block_on(async {
        tokio::spawn(async {
            tokio::time::sleep(Duration::from_millis(20)).await; // parked: a worker
            let me = std::thread::current().id();
            // Another thread takes the core over meanwhile.
            tokio::task::block_in_place(|| std::thread::sleep(Duration::from_millis(200)));
            me
        })
        .await
        .unwrap()
    });
    let mut landed = false;
    for _ in 0..200 {
        let p = pool.clone();
        landed = rt
            .block_on(async move {
                pool_tokio::spawn_blocking(move || {
                    if std::thread::current().id() != former {
                        return false;
                    }
                    drop(p.checkout(4096));
                    true
                })
                .await
            })
            .unwrap();
        if landed {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(landed, "no blocking closure ran on the former worker");
    let class = *pool.stats().class(4096).unwrap();
    assert_eq!(
        (class.retained_local, class.retained_depot),
        (0, 1),
        "cached on the former worker: {class:?}"
    );
}
