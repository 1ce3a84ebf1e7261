//! Trace events per checkout and discard, and the periodic report, captured
//! by a minimal in-test subscriber.
#![cfg(feature = "tracing")]

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BufMut;
use pool_tokio::BytesPool;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

#[derive(Debug, Clone)]
struct Captured {
    target: String,
    level: Level,
    /// The innermost entered span's name, if any.
    span: Option<String>,
    fields: BTreeMap<String, String>,
}

#[derive(Default)]
struct Capture {
    events: Mutex<Vec<Captured>>,
    spans: Mutex<BTreeMap<u64, String>>,
    /// Each span's fields, by id.
    span_fields: Mutex<BTreeMap<u64, BTreeMap<String, String>>>,
    stack: Mutex<Vec<u64>>,
    next: AtomicU64,
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

#[derive(Clone, Default)]
struct Sub(Arc<Capture>);

impl Subscriber for Sub {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let id = self.0.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.0
            .spans
            .lock()
            .unwrap()
            .insert(id, attrs.metadata().name().to_string());
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        self.0.span_fields.lock().unwrap().insert(id, fields);
        Id::from_u64(id)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let span = self
            .0
            .stack
            .lock()
            .unwrap()
            .last()
            .and_then(|id| self.0.spans.lock().unwrap().get(id).cloned());
        self.0.events.lock().unwrap().push(Captured {
            target: event.metadata().target().to_string(),
            level: *event.metadata().level(),
            span,
            fields,
        });
    }
    fn enter(&self, id: &Id) {
        self.0.stack.lock().unwrap().push(id.into_u64());
    }
    fn exit(&self, _: &Id) {
        self.0.stack.lock().unwrap().pop();
    }
}

fn capture<R>(f: impl FnOnce() -> R) -> (R, Vec<Captured>) {
    let sub = Sub::default();
    let r = tracing::subscriber::with_default(sub.clone(), f);
    let events = sub.0.events.lock().unwrap().clone();
    (r, events)
}

/// The workload of the per-buffer event tests: a miss, a hit, a shared
/// discard, a miss and an oversize discard.
fn workload(pool: &BytesPool) {
    drop(pool.checkout(3000)); // miss
    let mut b = pool.checkout(3000); // hit
    b.put_slice(b"xy");
    let frame = b.split_to(1);
    drop(b); // discarded: still shared with `frame`
    drop(frame);
    let mut grown = pool.checkout(600);
    grown.reserve(8 << 10);
    drop(grown); // discarded: oversize
}

type Summary = Vec<(String, String, String)>;

fn summarize(events: &[Captured], name: &str) -> Summary {
    let ours: Vec<_> = events.iter().filter(|e| e.target == "pool_tokio").collect();
    assert!(ours.iter().all(|e| e.level == Level::TRACE));
    let get = |e: &Captured, k: &str| e.fields.get(k).cloned().unwrap_or_default();
    assert!(ours.iter().all(|e| get(e, "pool") == name), "{ours:?}");
    ours.iter()
        .map(|e| {
            (
                get(e, "outcome"),
                get(e, "class"),
                get(e, "reason") + "/" + &get(e, "source"),
            )
        })
        .collect()
}

fn s(a: &str, b: &str, c: &str) -> (String, String, String) {
    (a.to_string(), b.to_string(), c.to_string())
}

#[test]
fn misses_and_discards_are_traced_with_reasons_and_hits_are_not() {
    let pool = BytesPool::builder().name("frames").build().unwrap();
    let ((), events) = capture(|| workload(&pool));
    assert_eq!(
        summarize(&events, "frames"),
        vec![
            s("miss", "3072", "pool_empty/new"),
            s("discard", "3072", "shared/"),
            s("miss", "640", "pool_empty/new"),
            s("discard", "640", "oversize/"),
        ]
    );
    let first = events.iter().find(|e| e.target == "pool_tokio").unwrap();
    assert_eq!(first.fields["bytes"], "3000");
}

#[test]
fn hits_are_traced_when_asked() {
    let pool = BytesPool::builder().trace_hits(true).build().unwrap();
    let ((), events) = capture(|| {
        workload(&pool);
        drop(pool.checkout(1 << 21)); // above the largest class
    });
    assert_eq!(
        summarize(&events, "default"),
        vec![
            s("miss", "3072", "pool_empty/new"),
            s("hit", "3072", "/local"),
            s("discard", "3072", "shared/"),
            s("miss", "640", "pool_empty/new"),
            s("discard", "640", "oversize/"),
            s("miss", "unpooled", "above_max_class/unpooled"),
            s("discard", "unpooled", "unpooled/"),
        ]
    );
}

#[test]
fn reporter_is_silent_when_nothing_changed() {
    let pool = BytesPool::new();
    let ((), events) = capture(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let reporter = pool.spawn_reporter(Duration::from_secs(1));
            tokio::time::sleep(Duration::from_millis(10_500)).await; // ten ticks
            reporter.abort();
        });
    });
    let ours: Vec<_> = events.iter().filter(|e| e.target == "pool_tokio").collect();
    assert!(ours.is_empty(), "{ours:?}");
}

#[test]
fn reporter_emits_per_class_hit_rates_in_a_debug_span() {
    let pool = BytesPool::new();
    let ((), events) = capture(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let reporter = pool.spawn_reporter(Duration::from_secs(1));
            tokio::task::yield_now().await; // first tick: nothing yet
            for _ in 0..4 {
                drop(pool.checkout(4096));
            }
            drop(pool.checkout(100));
            tokio::time::sleep(Duration::from_millis(1500)).await;
            reporter.abort();
        });
    });
    let reports: Vec<_> = events
        .iter()
        .filter(|e| e.target == "pool_tokio" && e.level == Level::DEBUG)
        .collect();
    assert!(
        reports
            .iter()
            .all(|e| e.span.as_deref() == Some("pool_report")),
        "{reports:?}"
    );
    let class = |size: &str| {
        reports
            .iter()
            .find(|e| e.fields.get("class").map(String::as_str) == Some(size))
            .unwrap_or_else(|| panic!("no report for class {size}: {reports:?}"))
    };
    let c4k = class("4096");
    assert_eq!(c4k.fields["checkouts"], "4");
    assert_eq!(c4k.fields["hit_pct"], "75.0");
    assert_eq!(c4k.fields["pool"], "default");
    assert_eq!(class("512").fields["hit_pct"], "0.0");
    assert!(reports
        .iter()
        .any(|e| e.fields.get("message").map(String::as_str) == Some("pool report")));
}

#[test]
fn maintenance_passes_run_in_a_debug_span() {
    let pool = BytesPool::new();
    pool.prewarm(4096, 2);
    let sub = Sub::default();
    let freed = tracing::subscriber::with_default(sub.clone(), || pool.trim());
    assert_eq!(freed, 2 * 4096);
    let names: Vec<_> = sub.0.spans.lock().unwrap().values().cloned().collect();
    assert_eq!(names, vec!["pool_maintenance".to_string()]);
    // With the pool's name (it had none before).
    let fields: Vec<_> = sub
        .0
        .span_fields
        .lock()
        .unwrap()
        .values()
        .cloned()
        .collect();
    assert_eq!(fields[0]["pool"], "default");
    assert_eq!(fields[0]["kind"], "trim");
}
