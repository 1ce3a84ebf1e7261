//! What the default pool keeps after traffic stops, and what blocking
//! threads cost, under three runtime setups:
//!
//! - `none`: `#[tokio::main]`-style runtime with no pool hooks (only the
//!   default pool's decay thread, which reaches idle workers through short
//!   tasks);
//! - `hooks`: the same runtime with `default_pool().install(&mut builder)`;
//! - for blocking threads, `spawn_blocking` work on 32 threads at once with
//!   the default policy (no per-thread cache there) and with
//!   `Builder::blocking_cache(true)`, and the ns per checkout + return on a
//!   blocking thread under each policy.
//!
//! ```text
//! cargo run --release -p examples --example idle_memory
//! ```
//!
//! Prints retained bytes over 3 idle seconds, then the blocking-thread
//! figures and the pools' discards by reason.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use bytes::BufMut;
use pool_tokio::BytesPool;

/// A burst over the runtime's workers: `tasks` tasks each holding a few
/// buffers of mixed classes across an await point.
async fn burst(pool: &BytesPool, tasks: usize) {
    let handles: Vec<_> = (0..tasks)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut held: Vec<_> = (0..3)
                    .map(|k| pool.checkout(512 << ((i + k) % 6)))
                    .collect();
                for b in &mut held {
                    b.put_u8(1);
                }
                tokio::task::yield_now().await;
                drop(held);
            })
        })
        .collect();
    for h in handles {
        h.await.expect("burst task");
    }
}

fn idle_run(setup: &str, pool: &BytesPool) -> std::io::Result<()> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2).enable_all();
    if setup == "hooks" {
        pool.install(&mut builder);
    }
    let rt = builder.build()?;
    rt.block_on(burst(pool, 2000));
    print!("setup {setup:<5}: retained after the burst");
    for tenth in 0..=30 {
        if tenth % 5 == 0 {
            print!(
                " | {:.1} s: {} B",
                tenth as f64 / 10.0,
                pool.stats().retained_bytes()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!();
    // Traffic again, so the next run starts from a used pool too.
    drop(rt);
    pool.trim();
    Ok(())
}

/// 32 blocking threads at once, each checks out and returns 64 buffers of
/// 4 KiB; returns (ns per checkout + return, bytes cached on those threads
/// while they are alive).
fn blocking_run(pool: &BytesPool) -> std::io::Result<(f64, u64)> {
    const THREADS: usize = 32;
    const ROUNDS: usize = 200_000;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(1).enable_all();
    pool.install(&mut builder);
    let rt = builder.build()?;
    let barrier = Arc::new(Barrier::new(THREADS));
    let pool2 = pool.clone();
    let elapsed = rt.block_on(async move {
        let tasks: Vec<_> = (0..THREADS)
            .map(|_| {
                let (pool, barrier) = (pool2.clone(), barrier.clone());
                tokio::task::spawn_blocking(move || {
                    let held: Vec<_> = (0..64).map(|_| pool.checkout(4096)).collect();
                    barrier.wait(); // all 32 threads alive at once
                    drop(held);
                    barrier.wait();
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("blocking task");
        }
        // One blocking thread, timed: checkout + write + return.
        let pool = pool2.clone();
        tokio::task::spawn_blocking(move || {
            let start = Instant::now();
            for _ in 0..ROUNDS {
                let mut b = pool.checkout(4096);
                b.put_u8(1);
                drop(b);
            }
            start.elapsed()
        })
        .await
        .expect("timed task")
    });
    let cached = pool
        .stats()
        .classes
        .iter()
        .map(|c| c.retained_local * c.class_size.unwrap_or(0) as u64)
        .sum();
    drop(rt);
    Ok((elapsed.as_nanos() as f64 / ROUNDS as f64, cached))
}

fn report(name: &str, pool: &BytesPool) {
    let d = pool.stats().total().discarded;
    println!(
        "{name}: discards by reason: full {} oversize {} shared {} stale {} rejected {} trimmed {}",
        d.full, d.oversize, d.shared, d.stale, d.rejected, d.trimmed
    );
}

fn main() -> std::io::Result<()> {
    let pool = pool_tokio::default_pool();
    println!(
        "default pool, decay interval {:?}, idle floor {} B",
        pool.config().get_decay_interval(),
        pool.idle_floor()
    );
    idle_run("none", pool)?;
    idle_run("hooks", pool)?;
    report("default pool", pool);

    let no_cache = BytesPool::new();
    let cache = BytesPool::builder()
        .blocking_cache(true)
        .build()
        .map_err(std::io::Error::other)?;
    for (name, p) in [
        ("no cache (default)", &no_cache),
        ("blocking_cache(true)", &cache),
    ] {
        let (ns, cached) = blocking_run(p)?;
        println!(
            "blocking threads, {name}: {ns:.1} ns per checkout + return on a blocking thread; \
             {cached} B cached on the blocking threads while 32 were alive"
        );
        report(name, p);
    }
    Ok(())
}
