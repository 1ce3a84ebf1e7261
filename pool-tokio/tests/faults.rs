//! Faults not covered elsewhere (see RELIABILITY.md for the full list):
//! runtime thread churn (blocking threads that come and go by the
//! thousand, runtimes started and stopped) with retained memory within the
//! bounds, and allocation failure, which is not papered over: an impossible
//! size is an error from `try_checkout`, and a size the allocator cannot
//! serve aborts the process as `Vec` does in std.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BufMut;
use pool_core::BufferConfig;
use pool_tokio::{BytesPool, TryCheckoutError};

#[test]
fn blocking_thread_and_runtime_churn_stays_within_bounds() {
    let config = BufferConfig::new()
        .max_class(64 << 10)
        .thread_bytes(128 << 10)
        .depot_bytes(2 << 20)
        .depot_capacity(64);
    let pool = BytesPool::with_config(config).unwrap();
    const WORKERS: usize = 2;
    const BLOCKING: usize = 16;
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let mut tasks = 0u64;
    // Several runtimes in a row, each with blocking threads that exit
    // after 1 ms idle: hundreds of short-lived threads over the test.
    for round in 0..4 {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder
            .worker_threads(WORKERS)
            .max_blocking_threads(BLOCKING)
            .thread_keep_alive(Duration::from_millis(1))
            .enable_time();
        pool.install(&mut builder);
        let rt = builder.build().unwrap();
        rt.block_on(async {
            for wave in 0..40 {
                // All BLOCKING tasks of a wave meet at a barrier: each runs
                // on a thread of its own, whatever the scheduling.
                let barrier = Arc::new(std::sync::Barrier::new(BLOCKING));
                let handles: Vec<_> = (0..BLOCKING)
                    .map(|i| {
                        let (pool, seen) = (pool.clone(), seen.clone());
                        let barrier = barrier.clone();
                        tokio::task::spawn_blocking(move || {
                            seen.lock().unwrap().insert(std::thread::current().id());
                            barrier.wait();
                            // Fill the thread's caches, keep one to hand back.
                            let held: Vec<_> = (0..24)
                                .map(|j| {
                                    let mut b = pool.checkout(512 << ((i + j + wave) % 8));
                                    b.put_bytes(j as u8, 64);
                                    b
                                })
                                .collect();
                            let mut held = held.into_iter();
                            let back = held.next();
                            drop(held);
                            back
                        })
                    })
                    .collect();
                for h in handles {
                    drop(h.await.unwrap()); // returned on a worker
                    tasks += 1;
                }
                // Idle past the keep-alive: the blocking threads exit.
                tokio::time::sleep(Duration::from_millis(3)).await;
                let retained = pool.stats().retained_bytes();
                let bound = config.get_depot_bytes() as u64
                    + (WORKERS + BLOCKING + 1) as u64 * config.thread_bytes_bound() as u64;
                assert!(
                    retained <= bound,
                    "round {round} wave {wave}: {retained} retained, bound {bound}"
                );
            }
        });
        drop(rt);
        // Every runtime thread is gone and flushed its caches: what is left
        // is the depot, within its bound, and the cache of this thread
        // (`block_on` ran here and dropped the buffers handed back).
        let stats = pool.stats();
        assert_eq!(stats.outstanding(), 0, "{stats}");
        assert!(
            stats.depot_bytes <= config.get_depot_bytes(),
            "{} in the depot",
            stats.depot_bytes
        );
        let local_bytes: u64 = stats
            .classes
            .iter()
            .map(|c| c.retained_local * c.class_size.unwrap_or(0) as u64)
            .sum();
        assert!(
            local_bytes <= config.thread_bytes_bound() as u64,
            "{local_bytes} bytes in thread caches after every runtime thread exited\n{stats}"
        );
    }
    let threads = seen.lock().unwrap().len();
    println!("{tasks} blocking tasks on {threads} distinct threads");
    // At least one wave's worth by construction (the barrier); usually
    // hundreds, as idle threads exit after 1 ms and new ones start.
    assert!(threads >= BLOCKING, "only {threads} blocking threads");
    pool.assert_all_returned();
}

#[test]
fn impossible_sizes_are_errors_not_allocations() {
    for pool in [
        BytesPool::new(),
        BytesPool::builder().budget(1 << 20).build().unwrap(),
    ] {
        for n in [usize::MAX, isize::MAX as usize + 1] {
            match pool.try_checkout(n) {
                Err(TryCheckoutError::TooLarge { requested, .. }) => assert_eq!(requested, n),
                other => panic!("{n}: expected TooLarge, got {other:?}"),
            }
        }
        assert_eq!(pool.stats().checkouts(), 0, "nothing was allocated");
    }
    // On a budgeted pool a request past one wait's reach (u32::MAX) is
    // refused too, before any allocation.
    let pool = BytesPool::builder().budget(1 << 20).build().unwrap();
    assert!(matches!(
        pool.try_checkout(isize::MAX as usize),
        Err(TryCheckoutError::TooLarge { .. }) | Err(TryCheckoutError::ExceedsBudget { .. })
    ));
}

/// Set in the child process of the test below.
const CHILD: &str = "POOL_TOKIO_FAULTS_OOM_CHILD";

#[test]
fn allocation_failure_aborts_as_in_std() {
    if std::env::var_os(CHILD).is_some() {
        // A size that passes every check (it is at most isize::MAX) but no
        // allocator can serve: the allocation fails, and like `Vec` the
        // pool does not hide it.
        let buf = pool_tokio::BytesPool::new().checkout(isize::MAX as usize);
        println!("unreachable: got {} bytes", buf.capacity());
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "allocation_failure_aborts_as_in_std",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "the child survived:\n{stdout}\n{stderr}"
    );
    assert!(!stdout.contains("unreachable"), "{stdout}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(out.status.signal(), Some(6), "SIGABRT expected: {stderr}");
    }
    assert!(
        stderr.contains("memory allocation of") && stderr.contains("failed"),
        "std's allocation-failure message expected:\n{stderr}"
    );
}
