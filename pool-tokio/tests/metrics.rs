//! `export_metrics` through the `metrics` facade, captured by a minimal
//! in-test recorder, and a Prometheus scrape checked by promtool (where it
//! is installed) or by the same rules in text.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, Recorder, SharedString,
    Unit,
};
use pool_tokio::BytesPool;

/// Every value each series took, keyed by `name{label=value,...}`.
#[derive(Default, Clone)]
struct Capture(Arc<Mutex<BTreeMap<String, Vec<f64>>>>);

struct Value(Capture, String);

impl Value {
    fn update(&self, f: impl FnOnce(f64) -> f64) {
        let mut map = (self.0).0.lock().unwrap();
        let values = map.get_mut(&self.1).unwrap();
        let v = f(*values.last().unwrap());
        values.push(v);
    }
}

impl CounterFn for Value {
    fn increment(&self, n: u64) {
        self.update(|v| v + n as f64);
    }
    fn absolute(&self, n: u64) {
        self.update(|_| n as f64);
    }
}

impl GaugeFn for Value {
    fn increment(&self, n: f64) {
        self.update(|v| v + n);
    }
    fn decrement(&self, n: f64) {
        self.update(|v| v - n);
    }
    fn set(&self, n: f64) {
        self.update(|_| n);
    }
}

impl Capture {
    fn value(&self, key: &Key) -> Value {
        let mut labels: Vec<_> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        self.0
            .lock()
            .unwrap()
            .entry(name.clone())
            .or_insert_with(|| vec![0.0]);
        Value(self.clone(), name)
    }

    fn get(&self, series: &str) -> u64 {
        let map = self.0.lock().unwrap();
        match map.get(series) {
            Some(v) => *v.last().unwrap() as u64,
            // With the one lock held (a second would wait for good).
            None => panic!(
                "no series {series}; have {:?}",
                map.keys().collect::<Vec<_>>()
            ),
        }
    }

    fn has(&self, series: &str) -> bool {
        self.0.lock().unwrap().contains_key(series)
    }

    fn series(&self) -> Vec<String> {
        self.0.lock().unwrap().keys().cloned().collect()
    }

    /// Every value `series` took, in order.
    fn history(&self, series: &str) -> Vec<f64> {
        self.0.lock().unwrap()[series].clone()
    }
}

impl Recorder for Capture {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(Arc::new(self.value(key)))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(Arc::new(self.value(key)))
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[test]
fn every_series_carries_the_pool_and_class_and_matches_the_stats() {
    let pool = BytesPool::builder()
        .name("per-series")
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
    let c4k = "class_bytes=4096,pool=per-series";
    assert_eq!(get(&format!("pool_tokio_checkouts_total{{{c4k}}}")), 2);
    assert_eq!(get(&format!("pool_tokio_misses_total{{{c4k}}}")), 1);
    assert_eq!(
        get(&format!("pool_tokio_hits_total{{{c4k},source=local}}")),
        1
    );
    assert_eq!(
        get(&format!("pool_tokio_hits_total{{{c4k},source=depot}}")),
        0
    );
    assert_eq!(get(&format!("pool_tokio_outstanding_buffers{{{c4k}}}")), 1);
    assert_eq!(get(&format!("pool_tokio_retained_buffers{{{c4k}}}")), 0);
    assert_eq!(
        get("pool_tokio_discards_total{class_bytes=640,pool=per-series,reason=oversize}"),
        1
    );
    // Discard reasons that never occurred have no series.
    assert!(!capture.has("pool_tokio_discards_total{class_bytes=640,pool=per-series,reason=full}"));
    // Requested and lent bytes: 600 B asked for, 640 B lent.
    let c640 = "class_bytes=640,pool=per-series";
    assert_eq!(
        get(&format!("pool_tokio_requested_bytes_total{{{c640}}}")),
        600
    );
    assert_eq!(get(&format!("pool_tokio_lent_bytes_total{{{c640}}}")), 640);
    assert_eq!(
        get(&format!("pool_tokio_requested_bytes_total{{{c4k}}}")),
        2 * 4096
    );
    assert_eq!(
        get(&format!("pool_tokio_lent_bytes_total{{{c4k}}}")),
        2 * 4096
    );
    let unpooled = "class_bytes=unpooled,pool=per-series";
    assert_eq!(get(&format!("pool_tokio_checkouts_total{{{unpooled}}}")), 1);
    assert_eq!(get(&format!("pool_tokio_misses_total{{{unpooled}}}")), 1);
    assert_eq!(get(&format!("pool_tokio_returns_total{{{unpooled}}}")), 1);
    assert_eq!(
        get(&format!("pool_tokio_outstanding_buffers{{{unpooled}}}")),
        0
    );
    assert_eq!(
        get("pool_tokio_budget_limit_bytes{pool=per-series}"),
        1 << 20
    );
    assert_eq!(
        get("pool_tokio_budget_charged_bytes{pool=per-series}"),
        4096
    );
    assert_eq!(
        get("pool_tokio_budget_overdrafts_total{pool=per-series}"),
        1
    );
    // No series for label pairs that cannot be non-zero, nor idle classes.
    for series in capture.series() {
        assert!(
            !(series.contains("class_bytes=unpooled")
                && (series.contains("hits_total")
                    || series.contains("discards_total")
                    || series.contains("_bytes_total")
                    || series.contains("retained"))),
            "impossible series {series}"
        );
        assert!(
            series.contains("class_bytes=4096")
                || series.contains("class_bytes=640")
                || series.contains("class_bytes=unpooled")
                || series.starts_with("pool_tokio_budget_"),
            "series of an idle class: {series}"
        );
    }

    // Exporting again after more traffic moves every series to the pool's
    // new figures.
    drop(held);
    drop(pool.checkout(4096));
    metrics::with_local_recorder(&capture, || pool.export_metrics());
    assert_eq!(get(&format!("pool_tokio_checkouts_total{{{c4k}}}")), 3);
    assert_eq!(get(&format!("pool_tokio_outstanding_buffers{{{c4k}}}")), 0);
    assert_eq!(get(&format!("pool_tokio_retained_bytes{{{c4k}}}")), 4096);
    assert_eq!(get("pool_tokio_budget_charged_bytes{pool=per-series}"), 0);

    // A dropped pool takes its share out of its gauges; counters stay.
    metrics::with_local_recorder(&capture, || drop(pool));
    assert_eq!(get(&format!("pool_tokio_retained_bytes{{{c4k}}}")), 0);
    assert_eq!(get("pool_tokio_budget_limit_bytes{pool=per-series}"), 0);
    assert_eq!(get(&format!("pool_tokio_checkouts_total{{{c4k}}}")), 3);
}

#[test]
fn pools_are_told_apart_by_name() {
    let (a, b) = (
        BytesPool::builder().name("a").build().unwrap(),
        BytesPool::new(),
    );
    drop(a.checkout(512));
    drop(b.checkout(1024));
    let capture = Capture::default();
    metrics::with_local_recorder(&capture, || BytesPool::export_metrics_for(&[a, b]));
    assert_eq!(
        capture.get("pool_tokio_checkouts_total{class_bytes=512,pool=a}"),
        1
    );
    assert_eq!(
        capture.get("pool_tokio_checkouts_total{class_bytes=1024,pool=default}"),
        1
    );
    assert!(!capture.has("pool_tokio_checkouts_total{class_bytes=512,pool=default}"));
}

/// Issue 18, case 6: two pools without a name (both `default`) exported
/// alternately used to write each one's absolute figures into the same
/// series, so the counter went back and forth (a reset, to Prometheus).
/// Now every export writes the sum over the pools of that name: the
/// series never goes back.
#[test]
fn unnamed_pools_add_up_in_one_series_and_counters_never_go_back() {
    let (a, b) = (BytesPool::new(), BytesPool::new());
    let capture = Capture::default();
    let series = "pool_tokio_checkouts_total{class_bytes=4096,pool=default}";
    let retained = "pool_tokio_retained_buffers{class_bytes=4096,pool=default}";
    metrics::with_local_recorder(&capture, || {
        for round in 1..=3 {
            for _ in 0..3 {
                drop(a.checkout(4096));
            }
            drop(b.checkout(4096));
            a.export_metrics();
            b.export_metrics();
            assert_eq!(capture.get(series), 4 * round);
        }
    });
    let history = capture.history(series);
    assert!(
        history.windows(2).all(|w| w[0] <= w[1]),
        "the counter went back: {history:?}"
    );
    // Gauges add up too: each pool keeps one 4 KiB buffer.
    assert_eq!(capture.get(retained), 2);
    metrics::with_local_recorder(&capture, || drop(a));
    assert_eq!(capture.get(retained), 1);
}

/// The number of `pool_tokio_*` metric names.
const METRIC_NAMES: usize = 13;

/// A Prometheus scrape of two pools, rendered by
/// `metrics-exporter-prometheus`.
fn scrape_two_pools(used: bool) -> String {
    scrape_two_pools_with(used, false)
}

/// `scrape_two_pools`, with the exporter's unit suffixes on or off.
fn scrape_two_pools_with(used: bool, unit_suffix: bool) -> String {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_enable_unit_suffix(unit_suffix)
        .build_recorder();
    let handle = recorder.handle();
    let requests = BytesPool::builder()
        .name("requests")
        .budget(1 << 20)
        .build()
        .unwrap();
    let frames = BytesPool::builder().name("frames").build().unwrap();
    if used {
        let held = requests.checkout(3000);
        drop(requests.checkout(3000));
        drop(requests.checkout(4 << 20)); // unpooled and an overdraft
        let mut frame = frames.checkout(4096);
        frame.extend_from_slice(&[7; 100]);
        let kept = frame.split_to(10);
        drop(frame); // discarded: shared
        drop(kept);
        drop(held);
    }
    metrics::with_local_recorder(&recorder, || {
        BytesPool::export_metrics_for(&[requests.clone(), frames.clone()])
    });
    handle.render()
}

/// The `pool_tokio_*` samples of a scrape.
fn samples(scrape: &str) -> Vec<&str> {
    scrape
        .lines()
        .filter(|l| l.starts_with("pool_tokio_"))
        .collect()
}

#[test]
fn idle_pools_export_few_series() {
    let idle = scrape_two_pools(false);
    // Only the budget's three series: no class has activity.
    assert_eq!(samples(&idle).len(), 3, "{idle}");
    assert!(samples(&idle).len() <= 2 * METRIC_NAMES);
    // After traffic, per class in use: checkouts, 2 hits, misses, returns,
    // requested and lent bytes, outstanding, retained buffers and bytes
    // (10) and each discard reason seen; unpooled: checkouts, misses,
    // returns, outstanding (4); budget 3. requests: 10 + 4 + 3; frames:
    // 10 + 1 (shared). (Before: 357 series for two pools, 308 always 0.)
    let used = scrape_two_pools(true);
    assert_eq!(samples(&used).len(), 28, "{used}");
}

/// Prometheus' own linter where it is installed (`promtool`, in Debian's
/// and Ubuntu's `prometheus` package), then the rules it checks that this
/// exporter could break, in text: every metric has HELP and TYPE, counters
/// end in `_total`, gauges name a unit or a noun, no label is empty.
#[test]
fn a_scrape_passes_promtool_check_metrics() {
    let scrape = scrape_two_pools(true);
    promtool_check(&scrape);
    check_text(&scrape);
}

/// With the exporter's unit suffixes on, names are as they were (each
/// already ends in its unit: none is passed, none doubled) and the scrape
/// still passes promtool (a doubled `_bytes_bytes` on the samples, not on
/// their HELP, did not).
#[test]
fn a_scrape_with_unit_suffixes_passes_promtool_too() {
    let plain = scrape_two_pools_with(true, false);
    let suffixed = scrape_two_pools_with(true, true);
    let names = |s: &str| -> std::collections::BTreeSet<String> {
        samples(s)
            .iter()
            .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&suffixed), names(&plain), "{suffixed}");
    promtool_check(&suffixed);
    check_text(&suffixed);
}

/// `promtool check metrics` on `scrape`, where promtool is installed.
fn promtool_check(scrape: &str) {
    match std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(mut child) => {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(scrape.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            let findings = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.status.success() && findings.trim().is_empty(),
                "promtool check metrics: {findings}\n{scrape}"
            );
        }
        Err(e) => eprintln!("promtool not installed ({e}): text checks only"),
    }
}

/// The rules promtool checks that this exporter could break, in text:
/// every metric has HELP and TYPE, counters end in `_total`, gauges name a
/// unit or a noun, no label is empty.
fn check_text(scrape: &str) {
    let mut names = std::collections::BTreeSet::new();
    for line in samples(scrape) {
        let name = line.split(['{', ' ']).next().unwrap();
        names.insert(name.to_string());
        assert!(!line.contains("=\"\""), "an empty label: {line}");
    }
    assert!(names.len() >= 8, "{scrape}");
    for name in &names {
        let help = format!("# HELP {name} ");
        let ty = scrape
            .lines()
            .find_map(|l| l.strip_prefix(&format!("# TYPE {name} ")))
            .unwrap_or_else(|| panic!("no TYPE for {name}:\n{scrape}"));
        assert!(
            scrape.lines().any(|l| l.starts_with(&help)),
            "no HELP for {name}:\n{scrape}"
        );
        match ty {
            "counter" => assert!(name.ends_with("_total"), "{name}"),
            "gauge" => assert!(
                name.ends_with("_bytes") || name.ends_with("_buffers"),
                "gauge {name} names no unit or noun"
            ),
            other => panic!("{name} is a {other}"),
        }
    }
}

/// A Prometheus scrape of `pool` through a recorder made for it alone.
fn scrape_fresh(pool: &BytesPool) -> String {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    metrics::with_local_recorder(&recorder, || pool.export_metrics());
    recorder.handle().render()
}

/// The sample of `scrape` whose line starts with `prefix`.
fn sample<'a>(scrape: &'a str, prefix: &str) -> Option<&'a str> {
    scrape.lines().find(|l| l.starts_with(prefix))
}

/// Every export writes whole totals: a fresh recorder per scrape (one may
/// even sit where the last one was) gets the pool's figures, not what
/// changed since the last export, and a gauge never goes below zero.
#[test]
fn a_fresh_recorder_per_scrape_gets_the_whole_totals() {
    let pool = BytesPool::builder().name("per-scrape").build().unwrap();
    drop(pool.checkout(4096));
    let held = pool.checkout(4096);
    let first = scrape_fresh(&pool);
    drop(held);
    drop(pool.checkout(4096));
    let second = scrape_fresh(&pool);
    let checkouts = "pool_tokio_checkouts_total{pool=\"per-scrape\",class_bytes=\"4096\"}";
    let outstanding = "pool_tokio_outstanding_buffers{pool=\"per-scrape\",class_bytes=\"4096\"}";
    assert_eq!(sample(&first, checkouts), Some(&*format!("{checkouts} 2")));
    assert_eq!(sample(&second, checkouts), Some(&*format!("{checkouts} 3")));
    assert_eq!(
        sample(&first, outstanding),
        Some(&*format!("{outstanding} 1"))
    );
    assert_eq!(
        sample(&second, outstanding),
        Some(&*format!("{outstanding} 0"))
    );
}

/// Two recorders fed in turn (a Prometheus one and a StatsD one, say) each
/// see the pool's figures, not a multiple of them.
#[test]
fn recorders_fed_in_turn_each_see_the_pools_figures() {
    let pool = BytesPool::builder().name("in-turn").build().unwrap();
    let (a, b) = (Capture::default(), Capture::default());
    let series = "pool_tokio_checkouts_total{class_bytes=4096,pool=in-turn}";
    for _ in 0..3 {
        drop(pool.checkout(4096));
        metrics::with_local_recorder(&a, || pool.export_metrics());
        metrics::with_local_recorder(&b, || pool.export_metrics());
    }
    assert_eq!(
        (a.get(series), b.get(series)),
        (3, 3),
        "{:?}",
        a.history(series)
    );
}

/// What a pool did between its last export and its drop counts: its drop
/// exports it a last time.
#[test]
fn a_dropped_pool_is_exported_a_last_time() {
    let capture = Capture::default();
    let pool = BytesPool::builder().name("short-lived").build().unwrap();
    metrics::with_local_recorder(&capture, || {
        drop(pool.checkout(4096));
        pool.export_metrics();
        drop(pool.checkout(4096));
        drop(pool.checkout(4096));
        drop(pool);
    });
    let series = "pool_tokio_checkouts_total{class_bytes=4096,pool=short-lived}";
    assert_eq!(capture.get(series), 3);
    let retained = "pool_tokio_retained_buffers{class_bytes=4096,pool=short-lived}";
    assert_eq!(capture.get(retained), 0, "its gauges' share left with it");
}
