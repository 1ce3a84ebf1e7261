//! Runtime integration: thread-stop flush, park-time decay, the maintenance
//! task.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pool_core::BufferConfig;
use pool_tokio::BytesPool;

#[test]
fn stopping_workers_flush_their_caches_to_the_depot() {
    let pool = BytesPool::new();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2);
    pool.install(&mut builder);
    let rt = builder.build().unwrap();
    rt.block_on(async {
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move { drop(pool.checkout(4096)) })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    drop(rt);
    let class = *pool.stats().class(4096).unwrap();
    assert_eq!(class.outstanding, 0);
    assert!(class.retained_depot >= 1, "{class:?}");
    assert_eq!(class.retained_local, 0, "no cache left on stopped threads");
}

#[test]
fn park_hook_runs_idle_decay() {
    let pool = BytesPool::with_config(BufferConfig::new().decay_interval(Duration::from_millis(5)))
        .unwrap();
    pool.prewarm(4096, 8);
    let parks = Arc::new(AtomicUsize::new(0));
    let hook = pool.on_thread_park();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .on_thread_park({
            let parks = parks.clone();
            move || {
                parks.fetch_add(1, Ordering::Relaxed);
                hook();
            }
        })
        .build()
        .unwrap();
    rt.block_on(async {
        // Let the worker park repeatedly for well over two decay periods.
        let mut waited = Duration::ZERO;
        while pool.stats().retained_bytes() > 0 && waited < Duration::from_secs(10) {
            rt_sleep(Duration::from_millis(2)).await;
            waited += Duration::from_millis(2);
        }
    });
    assert!(parks.load(Ordering::Relaxed) > 0);
    assert_eq!(pool.stats().retained_bytes(), 0, "{}", pool.stats());
}

async fn rt_sleep(d: Duration) {
    tokio::spawn(tokio::time::sleep(d)).await.unwrap();
}

#[tokio::test]
async fn maintenance_task_frees_idle_buffers_and_keeps_busy_ones() {
    let pool =
        BytesPool::with_config(BufferConfig::new().decay_interval(Duration::from_millis(10)))
            .unwrap();
    pool.prewarm(4096, 8);
    pool.prewarm(1024, 8);
    let task = pool.spawn_maintenance(Duration::from_millis(3));
    let mut waited = Duration::ZERO;
    while pool.stats().class(4096).unwrap().retained() > 0 && waited < Duration::from_secs(10) {
        // Keep the 1 KiB class busy.
        drop(pool.checkout(1024));
        tokio::time::sleep(Duration::from_millis(1)).await;
        waited += Duration::from_millis(1);
    }
    let stats = pool.stats();
    assert_eq!(stats.class(4096).unwrap().retained(), 0, "{stats}");
    assert!(stats.class(1024).unwrap().retained() > 0, "{stats}");
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
}

#[test]
#[should_panic(expected = "non-zero")]
fn maintenance_interval_must_be_non_zero() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        BytesPool::new().spawn_maintenance(Duration::ZERO);
    });
}
