//! `export_metrics` through the `metrics` facade, captured by a minimal
//! in-test recorder.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, Recorder, SharedString,
    Unit,
};
use pool_tokio::BytesPool;

/// The last value of every series, keyed by `name{label=value,...}`.
#[derive(Default, Clone)]
struct Capture(Arc<Mutex<BTreeMap<String, Arc<AtomicU64>>>>);

struct Value(Arc<AtomicU64>);

impl CounterFn for Value {
    fn increment(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    fn absolute(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }
}

impl GaugeFn for Value {
    fn increment(&self, _: f64) {
        unimplemented!("the exporter only sets gauges")
    }
    fn decrement(&self, _: f64) {
        unimplemented!("the exporter only sets gauges")
    }
    fn set(&self, v: f64) {
        self.0.store(v as u64, Ordering::Relaxed);
    }
}

impl Capture {
    fn slot(&self, key: &Key) -> Arc<AtomicU64> {
        let mut labels: Vec<_> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        self.0.lock().unwrap().entry(name).or_default().clone()
    }

    fn get(&self, series: &str) -> u64 {
        match self.0.lock().unwrap().get(series) {
            Some(v) => v.load(Ordering::Relaxed),
            None => panic!(
                "no series {series}; have {:?}",
                self.0.lock().unwrap().keys().collect::<Vec<_>>()
            ),
        }
    }
}

impl Recorder for Capture {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(Arc::new(Value(self.slot(key))))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(Arc::new(Value(self.slot(key))))
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[test]
fn every_series_carries_the_pool_and_class_and_matches_the_stats() {
    let pool = BytesPool::builder()
        .name("frames")
        .budget(1 << 20)
        .build()
        .unwrap();
    drop(pool.checkout(4096)); // miss
    let held = pool.checkout(4096); // local hit, outstanding
    let mut grown = pool.checkout(600);
    grown.reserve(8 << 10);
    drop(grown); // discarded: oversize
    drop(pool.checkout(2 << 20)); // unpooled: overdraft (above the budget)

    let capture = Capture::default();
    metrics::with_local_recorder(&capture, || pool.export_metrics());
    let get = |s: &str| capture.get(s);
    assert_eq!(get("pool_tokio_checkouts_total{class=4096,pool=frames}"), 2);
    assert_eq!(get("pool_tokio_misses_total{class=4096,pool=frames}"), 1);
    assert_eq!(
        get("pool_tokio_hits_total{class=4096,pool=frames,source=local}"),
        1
    );
    assert_eq!(
        get("pool_tokio_hits_total{class=4096,pool=frames,source=depot}"),
        0
    );
    assert_eq!(get("pool_tokio_outstanding{class=4096,pool=frames}"), 1);
    assert_eq!(get("pool_tokio_retained{class=4096,pool=frames}"), 0);
    assert_eq!(
        get("pool_tokio_discards_total{class=1024,pool=frames,reason=oversize}"),
        1
    );
    assert_eq!(
        get("pool_tokio_discards_total{class=1024,pool=frames,reason=full}"),
        0
    );
    assert_eq!(
        get("pool_tokio_checkouts_total{class=unpooled,pool=frames}"),
        1
    );
    assert_eq!(
        get("pool_tokio_discards_total{class=unpooled,pool=frames,reason=unpooled}"),
        1
    );
    assert_eq!(get("pool_tokio_budget_limit_bytes{pool=frames}"), 1 << 20);
    assert_eq!(get("pool_tokio_budget_charged_bytes{pool=frames}"), 4096);
    assert_eq!(get("pool_tokio_budget_overdrafts_total{pool=frames}"), 1);

    // Counters are absolute: exporting again after more traffic moves
    // them to the pool's new totals, not by a second increment.
    drop(held);
    drop(pool.checkout(4096));
    metrics::with_local_recorder(&capture, || pool.export_metrics());
    assert_eq!(get("pool_tokio_checkouts_total{class=4096,pool=frames}"), 3);
    assert_eq!(get("pool_tokio_outstanding{class=4096,pool=frames}"), 0);
    assert_eq!(
        get("pool_tokio_retained_bytes{class=4096,pool=frames}"),
        4096
    );
}

#[test]
fn pools_are_told_apart_by_name() {
    let (a, b) = (
        BytesPool::builder().name("a").build().unwrap(),
        BytesPool::new(),
    );
    drop(a.checkout(512));
    let capture = Capture::default();
    metrics::with_local_recorder(&capture, || {
        a.export_metrics();
        b.export_metrics();
    });
    assert_eq!(
        capture.get("pool_tokio_checkouts_total{class=512,pool=a}"),
        1
    );
    assert_eq!(
        capture.get("pool_tokio_checkouts_total{class=512,pool=default}"),
        0
    );
}
