//! The workloads W1-W5, generic over [`Contender`].
//!
//! Each function measures one point (one contender, one size, one thread
//! count) and returns a [`Measurement`]. The runner calls each in a fresh
//! process, so a contender's pool and the allocator start empty and the
//! resident-memory figures belong to that contender alone.

use std::hint::black_box;
use std::sync::mpsc::sync_channel;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use crate::{rss, Contender};

/// How long and how often to measure.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Target length of one timed sample.
    pub sample: Duration,
    /// Timed samples per point; the median is reported.
    pub samples: usize,
    /// Target length of one timed W1 sample: short, so that most samples
    /// run without being preempted on a shared machine.
    pub w1_sample: Duration,
    /// Timed W1 samples per point; the minimum and the median are reported.
    pub w1_samples: usize,
    /// Messages each W3 producer sends.
    pub w3_messages: usize,
    /// Checkout-yield-write-drop iterations of each W4 task.
    pub w4_iterations: usize,
}

impl Budget {
    /// `--quick`: short samples, few of them.
    pub fn quick() -> Self {
        Budget {
            sample: Duration::from_millis(20),
            samples: 3,
            w1_sample: Duration::from_millis(2),
            w1_samples: 31,
            w3_messages: 50_000,
            w4_iterations: 5_000,
        }
    }

    /// The default, fuller run.
    pub fn full() -> Self {
        Budget {
            sample: Duration::from_millis(60),
            samples: 5,
            w1_sample: Duration::from_millis(2),
            w1_samples: 151,
            w3_messages: 150_000,
            w4_iterations: 20_000,
        }
    }
}

/// One measured point.
#[derive(Debug, Clone, Default)]
pub struct Measurement {
    /// Nanoseconds per operation: per thread for W1/W2, wall-clock per
    /// message or operation (all threads together) for W3/W4, per buffer of
    /// the second burst for W5.
    pub ns_per_op: f64,
    /// Million operations per second, all threads together.
    pub mops: f64,
    /// Peak resident set size during the measurement, in bytes.
    pub peak_rss: u64,
    /// Workload-specific figures (name, value), e.g. RSS after idle.
    pub extra: Vec<(&'static str, f64)>,
    /// What was called (W5's idle and trim calls), for the report.
    pub note: String,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One W1 operation: check out `n` bytes, write, return.
#[inline(always)]
pub fn w1_op<C: Contender>(c: &'static C, n: usize, full: bool) {
    let mut buf = c.checkout(n);
    c.write(&mut buf, n, full);
    c.put(buf);
}

/// Runs `iters` W1 operations and returns the elapsed time.
///
/// The loop is monomorphised per contender and per `full` (no dispatch,
/// closure or flag test per operation), reads the clock only before and
/// after the batch, and keeps nothing per operation but the contender's own
/// work: `black_box` hides the size from the optimiser on every operation
/// (so a pool computes its class each time, as it would for a request of
/// unknown size) and the written buffer's address is `black_box`ed by the
/// write.
#[inline(never)]
pub fn w1_loop<C: Contender>(c: &'static C, n: usize, full: bool, iters: u64) -> Duration {
    if full {
        w1_batch::<C, true>(c, n, iters)
    } else {
        w1_batch::<C, false>(c, n, iters)
    }
}

#[inline(always)]
fn w1_batch<C: Contender, const FULL: bool>(c: &'static C, n: usize, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        w1_op(c, black_box(n), FULL);
    }
    start.elapsed()
}

/// Iterations that take about `target` on this thread (after warming up).
fn calibrate<C: Contender>(c: &'static C, n: usize, full: bool, target: Duration) -> u64 {
    let mut iters = 16u64;
    loop {
        let t = w1_loop(c, n, full, iters);
        if t >= target / 4 || iters >= 1 << 34 {
            let per = t.as_secs_f64() / iters as f64;
            return ((target.as_secs_f64() / per.max(1e-10)) as u64).max(16);
        }
        iters *= 2;
    }
}

/// W1 / W1f: one thread checks out `n` bytes, writes 64 bytes and the last
/// byte (or fills all `n` when `full`), returns. Many short samples after
/// a warm-up; reports their minimum, the least disturbed sample (on a
/// shared machine a preempted or crowded sample only adds time), and their
/// median as the extra `median_ns`.
pub fn w1<C: Contender>(c: &'static C, n: usize, full: bool, budget: Budget) -> Measurement {
    rss::reset_peak();
    let iters = calibrate(c, n, full, budget.w1_sample);
    w1_loop(c, n, full, iters * 10);
    let mut samples: Vec<f64> = (0..budget.w1_samples)
        .map(|_| w1_loop(c, n, full, iters).as_nanos() as f64 / iters as f64)
        .collect();
    samples.sort_by(f64::total_cmp);
    let ns = samples[0];
    Measurement {
        ns_per_op: ns,
        mops: 1e3 / ns,
        peak_rss: rss::peak(),
        extra: vec![("median_ns", samples[samples.len() / 2])],
        ..Measurement::default()
    }
}

/// W2: `threads` threads on the one shared pool, each doing W1 at `n`
/// bytes, started together behind a `Barrier` after a warm-up of their
/// own. Reports the mean per-thread ns/op and the aggregate Mops/s (all
/// operations over the slowest thread's time); median of the samples by
/// per-thread cost.
pub fn w2<C: Contender>(c: &'static C, n: usize, threads: usize, budget: Budget) -> Measurement {
    rss::reset_peak();
    let cores = std::thread::available_parallelism().map_or(1, |p| p.get());
    let single = calibrate(c, n, false, budget.sample);
    // Oversubscribed threads share cores: keep the wall time bounded.
    let iters = (single as f64 * (cores as f64 / threads as f64).min(1.0)).max(64.0) as u64;
    let mut runs: Vec<(f64, f64)> = (0..budget.samples)
        .map(|_| {
            let barrier = Barrier::new(threads);
            let times: Vec<Duration> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads)
                    .map(|_| {
                        s.spawn(|| {
                            w1_loop(c, n, false, (iters / 8).max(16));
                            barrier.wait();
                            w1_loop(c, n, false, iters)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                    .collect()
            });
            let per_thread = times
                .iter()
                .map(|t| t.as_nanos() as f64 / iters as f64)
                .sum::<f64>()
                / threads as f64;
            let wall = times.iter().max().map_or(1.0, |t| t.as_nanos() as f64);
            (per_thread, (threads as u64 * iters) as f64 / wall * 1e3)
        })
        .collect();
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (ns, mops) = runs[runs.len() / 2];
    Measurement {
        ns_per_op: ns,
        mops,
        peak_rss: rss::peak(),
        ..Measurement::default()
    }
}

/// Buffers in flight per W3 channel.
pub const W3_CHANNEL_BOUND: usize = 256;

/// W3 cross-thread: `pairs` producer threads check out `n` bytes, write 64
/// bytes and the last byte, and send the buffer through a bounded channel
/// (one per pair, [`W3_CHANNEL_BOUND`] deep) to a consumer thread that
/// reads a byte and returns it: every return is remote. Reports wall-clock
/// ns per message, Mops/s and the growth of peak RSS over the baseline.
pub fn w3<C: Contender>(c: &'static C, n: usize, pairs: usize, budget: Budget) -> Measurement {
    let messages = budget.w3_messages;
    let base = rss::current();
    rss::reset_peak();
    let barrier = Barrier::new(2 * pairs + 1);
    let start = std::thread::scope(|s| {
        for _ in 0..pairs {
            let (tx, rx) = sync_channel::<C::Buf>(W3_CHANNEL_BOUND);
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                for _ in 0..messages {
                    let mut buf = c.checkout(n);
                    c.write(&mut buf, n, false);
                    if tx.send(buf).is_err() {
                        break;
                    }
                }
            });
            s.spawn(move || {
                barrier.wait();
                let mut sum = 0u8;
                while let Ok(buf) = rx.recv() {
                    sum = sum.wrapping_add(c.read(&buf));
                    c.put(buf);
                }
                black_box(sum);
            });
        }
        barrier.wait();
        Instant::now()
    });
    let wall = start.elapsed().as_nanos() as f64;
    let total = (messages * pairs) as f64;
    let peak = rss::peak();
    Measurement {
        ns_per_op: wall / total,
        mops: total / wall * 1e3,
        peak_rss: peak,
        extra: vec![(
            "rss_growth_mib",
            peak.saturating_sub(base) as f64 / rss::MIB,
        )],
        ..Measurement::default()
    }
}

/// Tasks per runtime worker in W4.
pub const W4_TASKS_PER_WORKER: usize = 4;

/// W4 tokio: a multi-thread runtime of `workers` workers runs
/// [`W4_TASKS_PER_WORKER`] tasks per worker; each task, per iteration,
/// checks out `n` bytes, holds the buffer across
/// `tokio::task::yield_now().await` (so it may migrate), then writes and
/// returns it. Reports wall-clock ns per operation and Mops/s; median of
/// the samples.
pub fn w4<C: Contender>(c: &'static C, n: usize, workers: usize, budget: Budget) -> Measurement {
    rss::reset_peak();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("cannot build the tokio runtime: {e}"),
    };
    let iterations = budget.w4_iterations;
    let tasks = W4_TASKS_PER_WORKER * workers;
    let run = || {
        rt.block_on(async {
            let start = Instant::now();
            let handles: Vec<_> = (0..tasks)
                .map(|_| {
                    tokio::spawn(async move {
                        for _ in 0..iterations {
                            let mut buf = c.checkout(n);
                            tokio::task::yield_now().await;
                            c.write(&mut buf, n, false);
                            c.put(buf);
                        }
                    })
                })
                .collect();
            for h in handles {
                if let Err(e) = h.await {
                    std::panic::resume_unwind(e.into_panic());
                }
            }
            start.elapsed()
        })
    };
    run(); // warm-up
    let total = (tasks * iterations) as f64;
    let ns = median(
        (0..budget.samples)
            .map(|_| run().as_nanos() as f64 / total)
            .collect(),
    );
    Measurement {
        ns_per_op: ns,
        mops: 1e3 / ns,
        peak_rss: rss::peak(),
        ..Measurement::default()
    }
}

/// Buffers in one W5 burst.
pub const W5_BURST: usize = 2_000;
/// Length of W5's idle phase.
pub const W5_IDLE: Duration = Duration::from_secs(1);
/// Interval between idle ticks in W5's idle phase.
pub const W5_TICK: Duration = Duration::from_millis(100);

/// W5 burst and idle: check out [`W5_BURST`] buffers of `n` bytes, fill
/// each, return all; twice. The second burst is timed (ns per buffer).
/// Then an idle second during which [`Contender::idle_tick`] is called
/// every [`W5_TICK`] (pool-core: `BufferPool::maintain()`), then
/// [`Contender::trim`] (pool-core: `BufferPool::trim()`). Extras: RSS after
/// the second burst, after the idle second, and after the trim, in MiB;
/// under glibc also after `malloc_trim(0)` (memory the program freed but
/// glibc kept); for pools with statistics, the bytes the pool says it
/// retains after the idle second and after the trim.
pub fn w5<C: Contender>(c: &'static C, n: usize) -> Measurement {
    rss::reset_peak();
    let burst = || {
        let start = Instant::now();
        let mut held = Vec::with_capacity(W5_BURST);
        for _ in 0..W5_BURST {
            let mut buf = c.checkout(n);
            c.write(&mut buf, n, true);
            held.push(buf);
        }
        for buf in held {
            c.put(buf);
        }
        start.elapsed()
    };
    burst();
    let second = burst();
    let after = rss::current();
    let idle_start = Instant::now();
    let mut idle_call = "nothing";
    while idle_start.elapsed() < W5_IDLE {
        idle_call = c.idle_tick();
        std::thread::sleep(W5_TICK);
    }
    c.idle_tick();
    let idle = rss::current();
    let retained_idle = c.retained_bytes();
    let trim_call = c.trim();
    let trimmed = rss::current();
    let retained_trim = c.retained_bytes();
    let released = rss::release_free_memory().then(rss::current);
    let ns = second.as_nanos() as f64 / W5_BURST as f64;
    let mut extra = vec![
        ("rss_after_mib", after as f64 / rss::MIB),
        ("rss_idle_mib", idle as f64 / rss::MIB),
        ("rss_trim_mib", trimmed as f64 / rss::MIB),
    ];
    if let Some(r) = released {
        extra.push(("rss_malloc_trim_mib", r as f64 / rss::MIB));
    }
    if let (Some(i), Some(t)) = (retained_idle, retained_trim) {
        extra.push(("pool_retained_idle_mib", i as f64 / rss::MIB));
        extra.push(("pool_retained_trim_mib", t as f64 / rss::MIB));
    }
    Measurement {
        ns_per_op: ns,
        mops: 1e3 / ns,
        peak_rss: rss::peak(),
        extra,
        note: format!("idle: {idle_call} every 100 ms for 1 s; then {trim_call}"),
    }
}
