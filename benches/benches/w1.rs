//! criterion micro-benchmarks for W1 at 4 KiB: pool-core's checkout +
//! write + return against a fresh `BytesMut::with_capacity(4096)` and the
//! bare thread-local floor, on one thread and on two threads started
//! behind a `Barrier` (`iter_custom`, per-thread time).
//!
//! `cargo bench -p benches --bench w1` (add `--features jemalloc` or
//! `--features mimalloc` for another global allocator).

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use benches::workloads::w1_op;
use benches::{Contender, FreshBytesMut, PoolCore, ThreadLocalFloor, ALLOCATOR};
use criterion::{criterion_main, BenchmarkGroup, Criterion};

/// The W1 buffer size.
const SIZE: usize = 4096;
/// Threads in the multi-thread group.
const THREADS: usize = 2;

fn single<C: Contender>(
    g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    c: &'static C,
) {
    g.bench_function(C::NAME, |b| b.iter(|| w1_op(c, black_box(SIZE), false)));
}

/// `THREADS` threads each run `iters` operations after a barrier; the
/// result is the mean per-thread time, so the figure is per-thread ns/op.
fn threaded<C: Contender>(
    g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    c: &'static C,
) {
    g.bench_function(C::NAME, |b| {
        b.iter_custom(|iters| {
            let barrier = Barrier::new(THREADS);
            let total: Duration = std::thread::scope(|s| {
                let handles: Vec<_> = (0..THREADS)
                    .map(|_| {
                        s.spawn(|| {
                            for _ in 0..1000 {
                                w1_op(c, SIZE, false);
                            }
                            barrier.wait();
                            let start = Instant::now();
                            for _ in 0..iters {
                                w1_op(c, black_box(SIZE), false);
                            }
                            start.elapsed()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                    .sum()
            });
            total / THREADS as u32
        })
    });
}

fn w1_4k(c: &mut Criterion) {
    let mut g = c.benchmark_group(format!("w1_4k_{ALLOCATOR}"));
    single(&mut g, &PoolCore);
    single(&mut g, &FreshBytesMut);
    single(&mut g, &ThreadLocalFloor);
    g.finish();
    let mut g = c.benchmark_group(format!("w1_4k_{THREADS}threads_{ALLOCATOR}"));
    threaded(&mut g, &PoolCore);
    threaded(&mut g, &FreshBytesMut);
    threaded(&mut g, &ThreadLocalFloor);
    g.finish();
}

/// The group, with short measurement times so the whole run takes seconds.
fn benches() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20)
        .configure_from_args();
    w1_4k(&mut c);
}

criterion_main!(benches);
