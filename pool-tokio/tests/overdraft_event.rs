//! An overdraft is never silent, and an overload does not flood the logs:
//! the first overdraft is a WARN event with the pool, its bytes and what
//! overdrew, later ones at most one WARN a second per pool, each counted.
#![cfg(feature = "tracing")]

use std::fmt;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// (level, `outcome`, `what`, `bytes`, `pool`) of one event.
type Seen = (Level, String, String, String, String);

/// Records every event.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Seen>>>);

#[derive(Default)]
struct Fields {
    outcome: String,
    what: String,
    bytes: String,
    pool: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let v = format!("{value:?}").trim_matches('"').to_string();
        match field.name() {
            "outcome" => self.outcome = v,
            "what" => self.what = v,
            "bytes" => self.bytes = v,
            "pool" => self.pool = v,
            _ => {}
        }
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut f = Fields::default();
        event.record(&mut f);
        self.0.lock().unwrap().push((
            *event.metadata().level(),
            f.outcome,
            f.what,
            f.bytes,
            f.pool,
        ));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

impl Capture {
    fn warns(&self) -> Vec<Seen> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.0 == Level::WARN)
            .cloned()
            .collect()
    }
}

#[test]
fn the_first_overdraft_is_a_warn_event_with_the_pool() {
    let capture = Capture::default();
    let pool = pool_tokio::BytesPool::builder()
        .name("uploads")
        .budget(8192)
        .build()
        .unwrap();
    tracing::subscriber::with_default(capture.clone(), || {
        let a = pool.checkout(8192); // charged
        let b = pool.checkout(4096); // overdraft: logged
        let c = pool.checkout(100); // overdraft: counted, not logged
        drop((a, b, c));
        let _d = pool.checkout(8192); // charged again
    });
    // Unless the test thread stalled for a second between the two
    // overdrafts, the second is only counted.
    let warns = capture.warns();
    assert!(!warns.is_empty() && warns.len() <= 2, "{warns:?}");
    assert_eq!(
        warns[0],
        (
            Level::WARN,
            "overdraft".into(),
            "checkout".into(),
            "4096".into(),
            "uploads".into()
        )
    );
    assert_eq!(pool.budget().unwrap().overdrafts, 2);
}

/// Issue 17: 100 checkouts of 4 KiB against a 64 KiB budget logged 84 WARN
/// lines, without the pool. Now 10,000 overdrafts log at most one WARN per
/// second of the run (the limiter's own test fixes the clock), each with
/// the pool's name; the counter has every one.
#[test]
fn ten_thousand_overdrafts_log_at_most_one_warn_a_second_each_with_the_pool() {
    let capture = Capture::default();
    let pool = pool_tokio::BytesPool::builder()
        .name("uploads")
        .budget(64 << 10)
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    tracing::subscriber::with_default(capture.clone(), || {
        let held: Vec<_> = (0..16).map(|_| pool.checkout(4096)).collect();
        for _ in 0..10_000 {
            drop(pool.checkout(4096)); // overdraft
        }
        drop(held);
    });
    let elapsed = started.elapsed().as_secs();
    let warns = capture.warns();
    assert!(
        !warns.is_empty() && warns.len() as u64 <= 1 + elapsed,
        "{} WARN lines in {elapsed} s",
        warns.len()
    );
    assert!(warns.len() <= 10, "{} WARN lines", warns.len());
    assert!(warns.iter().all(|w| w.4 == "uploads"), "{warns:?}");
    assert_eq!(pool.budget().unwrap().overdrafts, 10_000);
}
