//! An overdraft is never silent: each one is a WARN event with its bytes
//! and what overdrew, beside the counter.
#![cfg(feature = "tracing")]

use std::fmt;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// (level, `outcome`, `what`, `bytes`) of one event.
type Seen = (Level, String, String, String);

/// Records every event.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Seen>>>);

#[derive(Default)]
struct Fields {
    outcome: String,
    what: String,
    bytes: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let v = format!("{value:?}").trim_matches('"').to_string();
        match field.name() {
            "outcome" => self.outcome = v,
            "what" => self.what = v,
            "bytes" => self.bytes = v,
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
        self.0
            .lock()
            .unwrap()
            .push((*event.metadata().level(), f.outcome, f.what, f.bytes));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn each_overdraft_is_a_warn_event() {
    let capture = Capture::default();
    let pool = pool_tokio::BytesPool::builder()
        .budget(8192)
        .build()
        .unwrap();
    tracing::subscriber::with_default(capture.clone(), || {
        let a = pool.checkout(8192); // charged
        let b = pool.checkout(4096); // overdraft
        let c = pool.checkout(100); // overdraft
        drop((a, b, c));
        let _d = pool.checkout(8192); // charged again
    });
    let warns: Vec<_> = capture
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.0 == Level::WARN)
        .cloned()
        .collect();
    assert_eq!(
        warns,
        vec![
            (
                Level::WARN,
                "overdraft".into(),
                "checkout".into(),
                "4096".into()
            ),
            (
                Level::WARN,
                "overdraft".into(),
                "checkout".into(),
                "100".into()
            ),
        ]
    );
    assert_eq!(pool.budget().unwrap().overdrafts, 2);
}
