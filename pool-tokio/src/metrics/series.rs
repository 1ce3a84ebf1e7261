//! The metrics a pool exports, their series, and what one pool last added
//! to each (`Exported`, kept in `Inner`; its `Drop` takes a dropped pool's
//! share out of its gauges). A leaf module: `metrics.rs` writes through it.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use metrics::{counter, describe_counter, describe_gauge, gauge, Label, SharedString};

/// The `class_bytes` label of requests above the largest class, the one
/// spelling of the unpooled class in events and metrics.
pub(crate) const UNPOOLED: &str = "unpooled";

/// A metric: its name (which ends in its unit), kind and HELP text.
pub(super) struct Metric {
    name: &'static str,
    counter: bool,
    help: &'static str,
}

pub(super) const CHECKOUTS: Metric = Metric {
    name: "pool_tokio_checkouts_total",
    counter: true,
    help: "Buffers checked out, by pool and size class.",
};
pub(super) const HITS: Metric = Metric {
    name: "pool_tokio_hits_total",
    counter: true,
    help: "Checkouts served by a kept buffer, by where it was kept (source: local thread cache or depot).",
};
pub(super) const MISSES: Metric = Metric {
    name: "pool_tokio_misses_total",
    counter: true,
    help: "Checkouts that allocated (every unpooled checkout is one).",
};
pub(super) const RETURNS: Metric = Metric {
    name: "pool_tokio_returns_total",
    counter: true,
    help: "Buffers handed back to the pool, kept or discarded.",
};
pub(super) const DISCARDS: Metric = Metric {
    name: "pool_tokio_discards_total",
    counter: true,
    help: "Returned buffers the pool dropped instead of keeping, by reason.",
};
pub(super) const REQUESTED_BYTES: Metric = Metric {
    name: "pool_tokio_requested_bytes_total",
    counter: true,
    help: "Bytes asked for by checkouts of the class (before rounding up to the class size).",
};
pub(super) const LENT_BYTES: Metric = Metric {
    name: "pool_tokio_lent_bytes_total",
    counter: true,
    help: "Bytes lent by checkouts of the class (checkouts times class size); over requested bytes, minus 1, is the waste.",
};
pub(super) const OUTSTANDING: Metric = Metric {
    name: "pool_tokio_outstanding_buffers",
    counter: false,
    help: "Buffers checked out and not yet returned.",
};
pub(super) const RETAINED: Metric = Metric {
    name: "pool_tokio_retained_buffers",
    counter: false,
    help: "Buffers the pool keeps for reuse (thread caches and depot).",
};
pub(super) const RETAINED_BYTES: Metric = Metric {
    name: "pool_tokio_retained_bytes",
    counter: false,
    help: "Bytes of the buffers the pool keeps for reuse.",
};
pub(super) const BUDGET_LIMIT: Metric = Metric {
    name: "pool_tokio_budget_limit_bytes",
    counter: false,
    help: "The pool's byte budget: most bytes checked out at once.",
};
pub(super) const BUDGET_CHARGED: Metric = Metric {
    name: "pool_tokio_budget_charged_bytes",
    counter: false,
    help: "Bytes charged to the budget by buffers checked out now.",
};
pub(super) const BUDGET_OVERDRAFTS: Metric = Metric {
    name: "pool_tokio_budget_overdrafts_total",
    counter: true,
    help: "Checkouts and growth served uncharged past an exhausted budget.",
};

/// Every metric, for `describe_*` and the docs' table.
pub(super) const METRICS: [&Metric; 13] = [
    &CHECKOUTS,
    &HITS,
    &MISSES,
    &RETURNS,
    &DISCARDS,
    &REQUESTED_BYTES,
    &LENT_BYTES,
    &OUTSTANDING,
    &RETAINED,
    &RETAINED_BYTES,
    &BUDGET_LIMIT,
    &BUDGET_CHARGED,
    &BUDGET_OVERDRAFTS,
];

/// Which class a series belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Class {
    /// A pool-wide series (the budget's): no `class_bytes` label.
    Pool,
    Size(usize),
    Unpooled,
}

/// One series of one pool: metric name, class and the third label's value
/// (`source` or `reason`; empty for none).
type SeriesKey = (&'static str, Class, &'static str);

/// What one pool last added to each series, and for which recorder.
#[derive(Debug, Default)]
pub(crate) struct Exported(pub(super) Mutex<State>);

#[derive(Debug, Default)]
pub(super) struct State {
    /// The `pool` label of the last export, for [`Exported`]'s `Drop`.
    pub(super) pool: Option<SharedString>,
    /// The address of the recorder the figures went to; another recorder
    /// (one installed after earlier exports went to the no-op recorder, or
    /// a local one) starts from zero and so receives the whole totals.
    pub(super) recorder: usize,
    pub(super) last: HashMap<SeriesKey, u64>,
    /// Classes with series: a class once exported stays exported (its
    /// gauges may fall back to 0), an idle class never is.
    pub(super) classes: HashSet<Class>,
}

impl Drop for Exported {
    /// A dropped pool takes its share out of its gauges (nothing is checked
    /// out or kept any more), so pools that share a series leave it right;
    /// its counters stay.
    fn drop(&mut self) {
        let state = self.0.get_mut().unwrap_or_else(PoisonError::into_inner);
        let Some(pool) = state.pool.take() else {
            return;
        };
        if state.recorder != recorder_id() {
            return;
        }
        let last = std::mem::take(&mut state.last);
        let mut w = Writer { state, pool };
        for ((name, class, extra), value) in last {
            let Some(metric) = METRICS.iter().find(|m| m.name == name && !m.counter) else {
                continue;
            };
            if value != 0 {
                w.state.last.insert((name, class, extra), value);
                // Gauges have no third label.
                w.write(metric, class, ("", extra), 0);
            }
        }
    }
}

/// Adds one pool's changes to the recorder's series.
pub(super) struct Writer<'a> {
    pub(super) state: &'a mut State,
    pub(super) pool: SharedString,
}

impl Writer<'_> {
    pub(super) fn write(
        &mut self,
        metric: &Metric,
        class: Class,
        extra: (&'static str, &'static str),
        now: u64,
    ) {
        let last = self
            .state
            .last
            .insert((metric.name, class, extra.1), now)
            .unwrap_or(0);
        let mut labels = Vec::with_capacity(3);
        labels.push(Label::new("pool", self.pool.clone()));
        match class {
            Class::Pool => {}
            Class::Size(size) => labels.push(Label::new("class_bytes", size.to_string())),
            Class::Unpooled => labels.push(Label::from_static_parts("class_bytes", UNPOOLED)),
        }
        if !extra.0.is_empty() {
            labels.push(Label::from_static_parts(extra.0, extra.1));
        }
        if metric.counter {
            // Counters never go back: a figure below the last one (not
            // seen from pool-core's cumulative counters) adds nothing.
            counter!(metric.name, labels).increment(now.saturating_sub(last));
        } else {
            let g = gauge!(metric.name, labels);
            if now >= last {
                g.increment((now - last) as f64);
            } else {
                g.decrement((last - now) as f64);
            }
        }
    }
}

/// HELP text of every metric, in the current recorder. No unit: the
/// names already end in theirs, and an exporter's unit suffix
/// (`PrometheusBuilder::set_enable_unit_suffix`) would double it, on the
/// samples and not on their HELP, which `promtool` rejects.
pub(super) fn describe() {
    for m in METRICS {
        if m.counter {
            describe_counter!(m.name, m.help);
        } else {
            describe_gauge!(m.name, m.help);
        }
    }
}

/// The address of the recorder the `metrics` macros use now.
pub(super) fn recorder_id() -> usize {
    metrics::with_recorder(|r| r as *const dyn metrics::Recorder as *const () as usize)
}
