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
    // Concurrently, on up to 16 blocking threads. (One may find every
    // batch held by the others for a moment and allocate: a miss.)
    let held2 = blocking_checkouts(&rt, &pool, 16, 4096);
    let class = *pool.stats().class(4096).unwrap();
    assert_eq!(class.retained_local, 0, "{class:?}");
    assert_eq!(class.checkouts, 17, "{class:?}");
    assert_eq!(class.retained_depot, 256 - class.hits(), "{class:?}");
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

/// Traffic on `rt`'s workers: 64 tasks, each 40 times holding a 4 KiB and
/// an 8 KiB buffer across a yield.
fn traffic(rt: &tokio::runtime::Runtime, pool: &BytesPool) {
    rt.block_on(async {
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    for _ in 0..40 {
                        let held = (pool.checkout(4096), pool.checkout(8192));
                        tokio::task::yield_now().await;
                        drop(held);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
}

/// Waits (at most `limit`) until `pool` retains at most `bytes`; returns
/// what it retains then.
fn wait_for_retained(pool: &BytesPool, bytes: u64, limit: Duration) -> u64 {
    let deadline = Instant::now() + limit;
    loop {
        let retained = pool.stats().retained_bytes();
        if retained <= bytes || Instant::now() >= deadline {
            return retained;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_quiet_service_with_only_the_hooks_gives_its_memory_back() {
    let pool =
        BytesPool::with_config(BufferConfig::new().decay_interval(Duration::from_millis(40)))
            .unwrap();
    let rt = runtime(&pool, 2);
    traffic(&rt, &pool);
    // Traffic has stopped: the workers park and stay parked, so no pool
    // code runs on them again; no task, no decay thread.
    let after_traffic = pool.stats().retained_bytes();
    assert!(after_traffic > 0, "the traffic left memory to give back");
    let left = wait_for_retained(&pool, 0, Duration::from_secs(10));
    eprintln!("retained: {after_traffic} B when traffic stopped, {left} B once quiet");
    assert_eq!(left, 0, "kept while quiet: {}", pool.stats());
    drop(rt);
}

/// Set in the child process of `the_idle_thread_ends_with_its_pool`.
#[cfg(target_os = "linux")]
const CHILD_ENV: &str = "POOL_TOKIO_RUNTIME_POLICY_CHILD";

/// Threads of this process named `pool-tokio-idle`.
#[cfg(target_os = "linux")]
fn idle_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end() == "pool-tokio-idle")
        .count()
}

/// The park hook's idle thread starts once per pool and ends when the pool
/// is dropped. In a child process, so that no other test's pool has one.
#[cfg(target_os = "linux")]
#[test]
fn the_idle_thread_ends_with_its_pool() {
    if std::env::var(CHILD_ENV).is_err() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "the_idle_thread_ends_with_its_pool",
                "--nocapture",
            ])
            .env(CHILD_ENV, "1")
            .output()
            .unwrap();
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "child: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let pool =
        BytesPool::with_config(BufferConfig::new().decay_interval(Duration::from_millis(40)))
            .unwrap();
    let rt = runtime(&pool, 2);
    for _ in 0..3 {
        traffic(&rt, &pool);
        assert_eq!(wait_for_retained(&pool, 0, Duration::from_secs(10)), 0);
    }
    assert_eq!(
        idle_threads(),
        1,
        "one idle thread per pool, however often armed"
    );
    drop(rt);
    drop(pool);
    let deadline = Instant::now() + Duration::from_secs(10);
    while idle_threads() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(idle_threads(), 0, "the idle thread outlived its pool");
}
