//! The metrics a pool exports, their series, and every series' total over
//! the pools that share its name (`TOTALS`: each live pool's last figures,
//! and what dropped pools' counters left). Every export writes absolute
//! totals (`Counter::absolute`, `Gauge::set`), so any recorder, new or
//! alternating, sees the same figures. A leaf module: `metrics.rs` exports
//! through it, and `Inner`'s drop retires a pool here (`retire`).

use std::collections::{HashMap, HashSet};
use std::sync::{LazyLock, Mutex, PoisonError};

use metrics::{counter, describe_counter, describe_gauge, gauge, Label, SharedString};
use pool_core::Stats;

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

/// A series of every pool of one name: the `pool` label, then the series.
type NamedKey = (SharedString, SeriesKey);

/// One series' figures: what each live pool last exported to it (keyed by
/// its `Exported`'s address) and, for a counter, what dropped pools left.
#[derive(Debug, Default)]
struct Total {
    retired: u64,
    live: HashMap<usize, u64>,
}

impl Total {
    fn sum(&self) -> u64 {
        self.live
            .values()
            .fold(self.retired, |sum, &v| sum.saturating_add(v))
    }
}

/// Every series' figures, process-wide: pools that share a name add up in
/// one series, counters and gauges alike, and a counter never goes back
/// when one of them is dropped. Bounded by the pool names in use times the
/// series per name.
static TOTALS: LazyLock<Mutex<HashMap<NamedKey, Total>>> = LazyLock::new(Default::default);

/// One pool's export state (kept in `Inner`).
#[derive(Debug, Default)]
pub(crate) struct Exported(Mutex<State>);

#[derive(Debug, Default)]
struct State {
    /// The `pool` label of the last export; `None` before the first.
    pool: Option<SharedString>,
    /// The series this pool has figures in (`TOTALS`), for `retire`.
    series: HashSet<SeriesKey>,
    /// Classes with series: a class once exported stays exported (its
    /// gauges may fall back to 0), an idle class never is.
    classes: HashSet<Class>,
}

/// A budget's figures, for its three series.
pub(crate) struct BudgetFigures {
    limit: u64,
    charged: u64,
    overdrafts: u64,
}

impl BudgetFigures {
    /// From a budget's `limit`, `charged` and `overdrafts` (`BudgetStats`).
    pub(crate) fn new(limit: usize, charged: usize, overdrafts: u64) -> BudgetFigures {
        BudgetFigures {
            limit: limit as u64,
            charged: charged as u64,
            overdrafts,
        }
    }
}

impl Exported {
    /// Writes the pool's figures (`stats`, `budget`) into the current
    /// recorder, as totals over every pool named `pool`.
    pub(crate) fn export(&self, pool: SharedString, stats: &Stats, budget: Option<BudgetFigures>) {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        state.pool = Some(pool.clone());
        let id = self as *const Exported as usize;
        let mut totals = TOTALS.lock().unwrap_or_else(PoisonError::into_inner);
        write_all(&mut state, &mut totals, id, &pool, stats, budget);
    }

    /// The pool is being freed: a last export of its figures (what it did
    /// since its last export counts too), then its share leaves every
    /// series: its counters' figures stay in them (as `retired`), its
    /// gauges' go (nothing is checked out or kept any more). Nothing for a
    /// pool never exported (`figures`, the pool's last figures, is not
    /// even called).
    pub(crate) fn retire(&self, figures: impl FnOnce() -> (Stats, Option<BudgetFigures>)) {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(pool) = state.pool.take() else {
            return;
        };
        let id = self as *const Exported as usize;
        let (stats, budget) = figures();
        let mut totals = TOTALS.lock().unwrap_or_else(PoisonError::into_inner);
        write_all(&mut state, &mut totals, id, &pool, &stats, budget);
        for key in state.series.drain() {
            let named = (pool.clone(), key);
            let Some(total) = totals.get_mut(&named) else {
                continue;
            };
            let mine = total.live.remove(&id).unwrap_or(0);
            let metric = METRICS.iter().find(|m| m.name == key.0);
            if metric.is_some_and(|m| m.counter) {
                total.retired = total.retired.saturating_add(mine);
            } else if let Some(metric) = metric {
                emit(metric, &pool, key.1, key.2, total.sum());
                if total.live.is_empty() {
                    totals.remove(&named);
                }
            }
        }
    }
}

/// One export of every series the pool has figures for, under one hold of
/// `TOTALS` (`totals`): two pools of one name exporting at once write
/// their totals in the order they computed them.
fn write_all(
    state: &mut State,
    totals: &mut HashMap<NamedKey, Total>,
    id: usize,
    pool: &SharedString,
    stats: &Stats,
    budget: Option<BudgetFigures>,
) {
    let mut w = Writer {
        state,
        totals,
        id,
        pool,
    };
    for c in &stats.classes {
        let Some(size) = c.class_size else { continue };
        let class = Class::Size(size);
        let active = c.checkouts != 0 || c.returns != 0 || c.retained() != 0;
        if !active && !w.state.classes.contains(&class) {
            continue;
        }
        w.state.classes.insert(class);
        w.write(&CHECKOUTS, class, "", c.checkouts);
        w.write(&HITS, class, "local", c.local_hits);
        w.write(&HITS, class, "depot", c.depot_hits);
        w.write(&MISSES, class, "", c.misses);
        w.write(&RETURNS, class, "", c.returns);
        w.write(&REQUESTED_BYTES, class, "", c.requested_bytes);
        w.write(&LENT_BYTES, class, "", c.lent_bytes);
        let d = &c.discarded;
        for (reason, n) in [
            ("full", d.full),
            ("oversize", d.oversize),
            ("shared", d.shared),
            ("stale", d.stale),
            ("rejected", d.rejected),
            ("trimmed", d.trimmed),
        ] {
            if n != 0 {
                w.write(&DISCARDS, class, reason, n);
            }
        }
        w.write(&OUTSTANDING, class, "", c.outstanding);
        w.write(&RETAINED, class, "", c.retained());
        w.write(&RETAINED_BYTES, class, "", c.retained_bytes());
    }
    if stats.unpooled_checkouts != 0 {
        let u = Class::Unpooled;
        w.write(&CHECKOUTS, u, "", stats.unpooled_checkouts);
        w.write(&MISSES, u, "", stats.unpooled_checkouts);
        w.write(&RETURNS, u, "", stats.unpooled_returns);
        // A detached buffer is neither returned nor outstanding.
        let outstanding = stats
            .unpooled_checkouts
            .saturating_sub(stats.unpooled_returns + stats.unpooled_detached);
        w.write(&OUTSTANDING, u, "", outstanding);
    }
    if let Some(budget) = budget {
        let p = Class::Pool;
        w.write(&BUDGET_LIMIT, p, "", budget.limit);
        w.write(&BUDGET_CHARGED, p, "", budget.charged);
        w.write(&BUDGET_OVERDRAFTS, p, "", budget.overdrafts);
    }
}

/// Writes one pool's figures into `TOTALS` and the series' totals into the
/// recorder.
struct Writer<'a> {
    state: &'a mut State,
    totals: &'a mut HashMap<NamedKey, Total>,
    id: usize,
    pool: &'a SharedString,
}

impl Writer<'_> {
    /// `extra`: the third label's value (`source` for hits, `reason` for
    /// discards), empty for none.
    fn write(&mut self, metric: &Metric, class: Class, extra: &'static str, now: u64) {
        let key = (metric.name, class, extra);
        self.state.series.insert(key);
        let total = self.totals.entry((self.pool.clone(), key)).or_default();
        total.live.insert(self.id, now);
        emit(metric, self.pool, class, extra, total.sum());
    }
}

/// Sets one series to `value` in the current recorder.
fn emit(metric: &Metric, pool: &SharedString, class: Class, extra: &'static str, value: u64) {
    let mut labels = Vec::with_capacity(3);
    labels.push(Label::new("pool", pool.clone()));
    match class {
        Class::Pool => {}
        Class::Size(size) => labels.push(Label::new("class_bytes", size.to_string())),
        Class::Unpooled => labels.push(Label::from_static_parts("class_bytes", UNPOOLED)),
    }
    if !extra.is_empty() {
        let name = if metric.name == HITS.name {
            "source"
        } else {
            "reason"
        };
        labels.push(Label::from_static_parts(name, extra));
    }
    if metric.counter {
        counter!(metric.name, labels).absolute(value);
    } else {
        gauge!(metric.name, labels).set(value as f64);
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
