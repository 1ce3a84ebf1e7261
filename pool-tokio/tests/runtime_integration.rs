//! Runtime integration beyond the basic hooks: composing with the user's
//! own hooks, what `install` replaces, idle decay down to the floor, and
//! blocking threads that keep no cache.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pool_core::BufferConfig;
use pool_tokio::BytesPool;

fn counter() -> (Arc<AtomicUsize>, impl Fn() + Send + Sync + 'static) {
    let n = Arc::new(AtomicUsize::new(0));
    let hook = {
        let n = n.clone();
        move || {
            n.fetch_add(1, Ordering::Relaxed);
        }
    };
    (n, hook)
}

/// Parks the runtime's thread at least once (a timer it must wait for).
fn park_once(rt: &tokio::runtime::Runtime) {
    rt.block_on(async { tokio::time::sleep(Duration::from_millis(1)).await });
}

#[test]
fn install_replaces_a_hook_set_before_it_and_hooks_keeps_it() {
    let pool = BytesPool::new();

    // Documented: tokio keeps one park hook, so `install` replaces yours.
    let (replaced, hook) = counter();
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_time().on_thread_park(hook);
    pool.install(&mut builder);
    park_once(&builder.build().unwrap());
    assert_eq!(replaced.load(Ordering::Relaxed), 0);

    // Through `hooks`, yours runs after the pool's.
    let (kept, hook) = counter();
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_time();
    pool.hooks().on_thread_park(hook).install(&mut builder);
    drop(pool.checkout(4096)); // cached on this thread...
    park_once(&builder.build().unwrap());
    assert!(kept.load(Ordering::Relaxed) >= 1);
    // ...and handed to the depot by the pool's part of the hook.
    let class = *pool.stats().class(4096).unwrap();
    assert_eq!((class.retained_local, class.retained_depot), (0, 1));
}

#[test]
fn functions_for_your_own_hooks_do_the_pools_part() {
    let pool = BytesPool::new();
    let (parks, count) = counter();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .on_thread_park({
            let pool = pool.clone();
            move || {
                pool.thread_parking();
                count();
            }
        })
        .build()
        .unwrap();
    drop(pool.checkout(1024));
    park_once(&rt);
    assert!(parks.load(Ordering::Relaxed) >= 1);
    assert_eq!(pool.stats().class(1024).unwrap().retained_local, 0);
}

#[test]
fn hooks_of_two_pools_and_the_users_all_run_at_thread_stop() {
    let (a, b) = (BytesPool::new(), BytesPool::new());
    let (stops, hook) = counter();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2);
    a.hooks()
        .pool(&b)
        .on_thread_stop(hook)
        .install(&mut builder);
    let rt = builder.build().unwrap();
    rt.block_on(async {
        let (a, b) = (a.clone(), b.clone());
        tokio::spawn(async move {
            drop(a.checkout(4096));
            drop(b.checkout(4096));
        })
        .await
        .unwrap();
    });
    drop(rt);
    assert_eq!(stops.load(Ordering::Relaxed), 2, "one per worker");
    for pool in [&a, &b] {
        let class = *pool.stats().class(4096).unwrap();
        assert_eq!((class.retained_local, class.retained_depot), (0, 1));
    }
}

/// Waits (real time: pool-core's decay clock) until `done` or 10 s.
fn wait_until(rt: &tokio::runtime::Runtime, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() && Instant::now() < deadline {
        // A task on the runtime: wakes a worker, which parks again after.
        rt.block_on(async {
            tokio::spawn(tokio::time::sleep(Duration::from_millis(2)))
                .await
                .unwrap()
        });
    }
}

#[test]
fn an_idle_runtime_gives_everything_back_with_the_hooks_installed() {
    let pool =
        BytesPool::with_config(BufferConfig::new().decay_interval(Duration::from_millis(20)))
            .unwrap();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2).enable_time();
    pool.install(&mut builder);
    let rt = builder.build().unwrap();
    rt.block_on(async {
        // Traffic over both workers, every buffer returned on a worker, a
        // few at a time: what a worker caches stays within one batch,
        // which pool-core's own decay never takes from a thread cache.
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let held: Vec<_> = (0..2).map(|_| pool.checkout(512 << (i % 5))).collect();
                    tokio::task::yield_now().await;
                    drop(held);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    assert_eq!(pool.stats().checkouts(), 128);
    wait_until(&rt, || pool.stats().retained_bytes() == 0);
    let stats = pool.stats();
    assert_eq!(
        stats.retained_bytes(),
        0,
        "the default floor is 0:\n{stats}"
    );
    assert_eq!(stats.outstanding(), 0);
}

#[test]
fn decay_leaves_what_is_under_the_floor() {
    let pool = BytesPool::builder()
        .config(BufferConfig::new().decay_interval(Duration::from_millis(5)))
        .idle_floor(64 << 10)
        .build()
        .unwrap();
    pool.prewarm(4096, 8); // 32 KiB, under the floor
    let started = Instant::now();
    // Five decay intervals of steps: none runs.
    while started.elapsed() < Duration::from_millis(25) {
        assert!(!pool.decay_to_floor());
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(pool.stats().retained_bytes(), 32 << 10);
    // Over the floor, decay runs and frees what stayed untaken.
    pool.prewarm(4096, 32);
    let deadline = Instant::now() + Duration::from_secs(10);
    while pool.stats().retained_bytes() > 64 << 10 && Instant::now() < deadline {
        pool.decay_to_floor();
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(pool.stats().retained_bytes() <= 64 << 10);
}

fn blocking_runtime(pool: &BytesPool) -> tokio::runtime::Runtime {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(1);
    pool.install(&mut builder);
    builder.build().unwrap()
}

/// Checkouts and returns of 4 KiB buffers on `threads` blocking threads at
/// once (each waits for all the others before returning, so none reuses
/// another's thread), then the class's statistics.
fn on_blocking_threads(pool: &BytesPool, threads: usize) -> pool_core::ClassStats {
    let rt = blocking_runtime(pool);
    let barrier = Arc::new(std::sync::Barrier::new(threads));
    rt.block_on(async {
        let tasks: Vec<_> = (0..threads)
            .map(|_| {
                let (pool, barrier) = (pool.clone(), barrier.clone());
                tokio::task::spawn_blocking(move || {
                    let held: Vec<_> = (0..4).map(|_| pool.checkout(4096)).collect();
                    barrier.wait();
                    drop(held);
                    drop(pool.checkout(4096)); // and once more, from the depot
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    // The blocking threads are still alive (keep-alive 10 s): what they
    // cache is still theirs.
    let class = *pool.stats().class(4096).unwrap();
    drop(rt);
    class
}

#[test]
fn blocking_threads_keep_no_cache_by_default() {
    let pool = BytesPool::new();
    let class = on_blocking_threads(&pool, 8);
    assert_eq!(class.outstanding, 0);
    assert_eq!(class.retained_local, 0, "{class:?}");
    assert_eq!(class.retained_depot, 32, "{class:?}");
}

#[test]
fn blocking_threads_cache_when_configured() {
    let pool = BytesPool::builder().blocking_cache(true).build().unwrap();
    let class = on_blocking_threads(&pool, 8);
    assert_eq!(class.outstanding, 0);
    assert!(class.retained_local > 0, "{class:?}");
}

/// `#[tokio::main(flavor = "current_thread")]` shape: no hooks, the block_on
/// thread is the only worker and stays busy in `block_on`; the decay
/// thread alone must bring retained memory to 0, its cache included.
#[test]
fn the_decay_thread_needs_no_hooks() {
    let pool = BytesPool::builder()
        .config(BufferConfig::new().decay_interval(Duration::from_millis(20)))
        .decay_thread(true)
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let retained = rt.block_on(async {
        let held: Vec<_> = (0..6).map(|i| pool.checkout(512 << i)).collect();
        drop(held); // cached on this thread, within one batch per class
        assert!(pool.stats().classes.iter().any(|c| c.retained_local > 0));
        let deadline = Instant::now() + Duration::from_secs(10);
        while pool.stats().retained_bytes() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        pool.stats().retained_bytes()
    });
    assert_eq!(retained, 0, "{}", pool.stats());
}

#[test]
fn the_decay_thread_leaves_the_floor() {
    let pool = BytesPool::builder()
        .config(BufferConfig::new().decay_interval(Duration::from_millis(5)))
        .decay_thread(true)
        .idle_floor(64 << 10)
        .build()
        .unwrap();
    pool.prewarm(4096, 8); // 32 KiB, under the floor
    std::thread::sleep(Duration::from_millis(50)); // ten decay intervals
    assert_eq!(pool.stats().retained_bytes(), 32 << 10);
}
