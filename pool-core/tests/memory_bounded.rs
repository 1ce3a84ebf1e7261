//! Memory stays bounded under adversarial patterns.
//!
//! 1. Producers always on one set of threads, consumers always on another:
//!    every return is remote. Retained bytes (the pool's own figure) and
//!    the process's RSS are sampled; both curves are printed, and the pool
//!    must stay within its configured bound at every sample and its RSS
//!    flat over the second half of the run. The same workload with fresh
//!    allocations is run and printed beside it, for comparison.
//! 2. A burst of 10x the normal concurrency, then idle with `maintain()`
//!    called as a timer would: retained bytes back to the floor (what the
//!    normal load keeps) within a few decay intervals.
//!
//! The run length comes from `SHARDPOOL_MEMORY_SECONDS` (default 1 s per
//! phase); the long run recorded in RELIABILITY.md is
//! `SHARDPOOL_MEMORY_SECONDS=30 cargo test --release -p pool-core --test memory_bounded -- --nocapture`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use pool_core::{BufferConfig, BufferPool};

/// Tests here measure the whole process's RSS: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const PRODUCERS: usize = 2;
const CONSUMERS: usize = 2;
/// Buffers in flight per consumer channel.
const IN_FLIGHT: usize = 64;
/// Samples per phase.
const SAMPLES: usize = 20;

fn seconds() -> f64 {
    std::env::var("SHARDPOOL_MEMORY_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0)
}

/// Resident set size of this process, in bytes (Linux; 0 elsewhere).
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn config() -> BufferConfig {
    BufferConfig::new()
        .min_class(1024)
        .max_class(64 << 10)
        .thread_bytes(256 << 10)
        .depot_bytes(8 << 20)
        .decay_interval(Duration::from_millis(50))
}

/// A cheap size sequence over the classes 1 KiB ..= 64 KiB.
fn size(i: usize) -> usize {
    let x = i.wrapping_mul(0x9E37_79B9) >> 7;
    1024 + x % (63 << 10)
}

/// Runs producers -> consumers for `run`, checking buffers out with
/// `take` (pooled or fresh), and samples `(retained, rss)` `SAMPLES` times.
fn producers_to_consumers<B: AsMut<Vec<u8>> + Send + 'static>(
    run: Duration,
    take: impl Fn(usize) -> B + Send + Sync + 'static,
    retained: impl Fn() -> u64,
) -> (Vec<(u64, u64)>, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let take = Arc::new(take);
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..CONSUMERS)
        .map(|_| mpsc::sync_channel::<B>(IN_FLIGHT))
        .unzip();
    let consumers: Vec<_> = rxs
        .into_iter()
        .map(|rx| {
            thread::spawn(move || {
                let mut n = 0u64;
                for mut b in rx {
                    let v = b.as_mut();
                    assert!(!v.is_empty() && v[0] == v[v.len() - 1], "mangled");
                    n += 1;
                } // every drop is a remote return
                n
            })
        })
        .collect();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (txs, stop, take) = (txs.clone(), stop.clone(), take.clone());
            thread::spawn(move || {
                let mut i = p * 1_000_003;
                while !stop.load(Ordering::Relaxed) {
                    let n = size(i);
                    let mut b = take(n);
                    // Every page written, so RSS counts what is kept.
                    b.as_mut().resize(n, i as u8);
                    if txs[i % CONSUMERS].send(b).is_err() {
                        break;
                    }
                    i += 1;
                }
            })
        })
        .collect();
    drop(txs);
    let mut curve = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        thread::sleep(run / SAMPLES as u32);
        curve.push((retained(), rss()));
    }
    stop.store(true, Ordering::Relaxed);
    for p in producers {
        p.join().unwrap();
    }
    let moved = consumers.into_iter().map(|c| c.join().unwrap()).sum();
    (curve, moved)
}

/// A `Vec<u8>` that owns itself, for the fresh-allocation run.
struct Fresh(Vec<u8>);

impl AsMut<Vec<u8>> for Fresh {
    fn as_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

/// A pooled guard, borrowing a leaked pool.
struct Pooled(pool_core::PooledBuf<'static, Vec<u8>>);

impl AsMut<Vec<u8>> for Pooled {
    fn as_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

#[test]
fn remote_returns_keep_retained_bytes_and_rss_flat() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let run = Duration::from_secs_f64(seconds());
    let config = config();
    let pool: &'static BufferPool<Vec<u8>> = Box::leak(Box::new(config.build().unwrap()));
    // Producers, consumers and this thread's caches, plus the depot.
    let bound = config.get_depot_bytes() as u64
        + (PRODUCERS + CONSUMERS + 1) as u64 * config.thread_bytes_bound() as u64;

    let (pooled, moved) = producers_to_consumers(
        run,
        move |n| Pooled(pool.checkout(n)),
        move || pool.stats().retained_bytes(),
    );
    let (fresh, fresh_moved) = producers_to_consumers(run, |n| Fresh(Vec::with_capacity(n)), || 0);

    println!(
        "producers {PRODUCERS} -> consumers {CONSUMERS}, {:.1?} per run: {moved} pooled buffers, {fresh_moved} fresh",
        run
    );
    println!(
        "{:>6} {:>14} {:>12} {:>12}",
        "t", "retained MiB", "RSS MiB", "fresh RSS"
    );
    for (i, ((kept, rss), (_, fresh_rss))) in pooled.iter().zip(&fresh).enumerate() {
        println!(
            "{:>5.2}s {:>14.2} {:>12.1} {:>12.1}",
            run.as_secs_f64() * (i + 1) as f64 / SAMPLES as f64,
            mib(*kept),
            mib(*rss),
            mib(*fresh_rss)
        );
    }
    let stats = pool.stats();
    println!("bound {:.2} MiB\n{stats}", mib(bound));

    assert!(moved > 0 && fresh_moved > 0);
    assert_eq!(stats.outstanding(), 0, "{stats}");
    for (i, (kept, _)) in pooled.iter().enumerate() {
        assert!(*kept <= bound, "sample {i}: {kept} retained, bound {bound}");
    }
    // Every return is remote, yet the producers are fed from the depot:
    // most checkouts are hits, not fresh allocations piling up.
    assert!(stats.total().depot_hits > 0, "{stats}");
    assert!(stats.hit_rate() > 0.5, "{stats}");
    // Flat: the second half's RSS peak is within the bound's worth of bytes
    // (plus 16 MiB for allocator and channel noise) of the first half's.
    let half = |c: &[(u64, u64)]| {
        let (a, b) = c.split_at(c.len() / 2);
        let peak = |s: &[(u64, u64)]| s.iter().map(|x| x.1).max().unwrap_or(0);
        (peak(a), peak(b))
    };
    let (first, second) = half(&pooled);
    assert!(
        second <= first + bound.min(16 << 20) + (16 << 20),
        "RSS grew from {:.1} MiB to {:.1} MiB",
        mib(first),
        mib(second)
    );
}

#[test]
fn a_burst_of_ten_times_the_load_decays_back_to_the_floor() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    const NORMAL: usize = 2;
    const HELD: usize = 8;
    let config = config().thread_capacity(8);
    let decay = config.get_decay_interval();
    let pool = Arc::new(config.build::<Vec<u8>>().unwrap());
    let work = |pool: &BufferPool<Vec<u8>>, seed: usize| {
        let held: Vec<_> = (0..HELD).map(|j| pool.checkout(size(seed + j))).collect();
        drop(held);
    };
    // The normal load: NORMAL threads, HELD buffers each at a time.
    let stop = Arc::new(AtomicBool::new(false));
    let normal: Vec<_> = (0..NORMAL)
        .map(|t| {
            let (pool, stop) = (pool.clone(), stop.clone());
            thread::spawn(move || {
                let mut i = t * 7919;
                while !stop.load(Ordering::Relaxed) {
                    work(&pool, i);
                    i += HELD;
                    thread::sleep(Duration::from_micros(200));
                }
            })
        })
        .collect();
    let settle = |what: &str| {
        // Let the normal load run with decay for a few intervals: the floor.
        let until = Instant::now() + decay * 4;
        while Instant::now() < until {
            pool.maintain();
            thread::sleep(decay / 4);
        }
        let floor = pool.stats().retained_bytes();
        println!("{what}: {:.2} MiB retained", mib(floor));
        floor
    };
    let floor = settle("floor under the normal load");

    // The burst: 10x the threads, all holding their buffers at once.
    let burst_threads = NORMAL * 10;
    let barrier = Arc::new(Barrier::new(burst_threads));
    let burst: Vec<_> = (0..burst_threads)
        .map(|t| {
            let (pool, barrier) = (pool.clone(), barrier.clone());
            thread::spawn(move || {
                for round in 0..20 {
                    let held: Vec<_> = (0..HELD)
                        .map(|j| pool.checkout(size(t * 131 + round * 17 + j)))
                        .collect();
                    barrier.wait();
                    drop(held);
                }
            }) // each exits with a full cache, handed to the depot
        })
        .collect();
    for b in burst {
        b.join().unwrap();
    }
    let peak = pool.stats().retained_bytes();
    println!(
        "after a burst of {burst_threads} threads: {:.2} MiB retained",
        mib(peak)
    );
    assert!(
        peak > floor,
        "the burst left memory to decay ({peak} <= {floor})"
    );

    // Idle but for the normal load; maintain() as a timer would call it.
    // Counted in decay steps, not wall-clock deadlines: each round sleeps
    // longer than a step (so maintain() runs one whatever the scheduling),
    // and three rounds are more than three decay intervals, after which
    // every batch the burst left untaken has aged out.
    let slack = (NORMAL * HELD * (64 << 10)) as u64;
    let mut curve = Vec::new();
    let start = Instant::now();
    for _ in 0..3 {
        thread::sleep(decay + decay / 4);
        pool.maintain();
        curve.push((start.elapsed(), pool.stats().retained_bytes()));
    }
    stop.store(true, Ordering::Relaxed);
    for n in normal {
        n.join().unwrap();
    }
    for (t, b) in &curve {
        println!("  {:>8.1?} {:>8.2} MiB", t, mib(*b));
    }
    let (after, now) = curve[curve.len() - 1];
    println!(
        "after 3 decay rounds ({after:.1?}): {:.2} MiB retained; floor {:.2} MiB; decay interval {decay:?}",
        mib(now),
        mib(floor)
    );
    // The floor itself moves a little with the normal load: allow one
    // normal working set of slack (what NORMAL threads hold at once).
    assert!(
        now <= floor + slack,
        "not back to the floor after 3 decay rounds: {curve:?}"
    );
    assert_eq!(pool.stats().outstanding(), 0);
}
