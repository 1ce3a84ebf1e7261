//! Export of a pool's statistics through the `metrics` crate facade
//! (feature `metrics`).

use std::time::Duration;

use metrics::{counter, gauge, SharedString};
use tokio::task::JoinHandle;

use crate::pool::BytesPool;

/// The `class` label of a size class: its size in bytes, or `unpooled` for
/// requests above the largest class.
fn class_label(class: Option<usize>) -> SharedString {
    match class {
        Some(size) => size.to_string().into(),
        None => SharedString::const_str("unpooled"),
    }
}

impl BytesPool {
    /// Records the pool's statistics now in the installed `metrics`
    /// recorder (any exporter: Prometheus, StatsD, ...), every series
    /// labelled `pool` (the pool's [name](crate::Builder::name)) and, per
    /// class, `class` (the class size in bytes, or `unpooled`):
    ///
    /// | metric | kind | labels |
    /// |---|---|---|
    /// | `pool_tokio_checkouts_total` | counter | pool, class |
    /// | `pool_tokio_hits_total` | counter | pool, class, source (`local`, `depot`) |
    /// | `pool_tokio_misses_total` | counter | pool, class |
    /// | `pool_tokio_returns_total` | counter | pool, class |
    /// | `pool_tokio_discards_total` | counter | pool, class, reason (`full`, `oversize`, `shared`, `stale`, `rejected`, `trimmed`; `unpooled` for class `unpooled`) |
    /// | `pool_tokio_outstanding` | gauge | pool, class |
    /// | `pool_tokio_retained` | gauge | pool, class (buffers kept) |
    /// | `pool_tokio_retained_bytes` | gauge | pool, class |
    /// | `pool_tokio_budget_limit_bytes` | gauge | pool (pools with a budget) |
    /// | `pool_tokio_budget_charged_bytes` | gauge | pool |
    /// | `pool_tokio_budget_overdrafts_total` | counter | pool |
    ///
    /// Counters are set to their absolute values (the pool's own counters
    /// are cumulative), so calling this more or less often changes only
    /// how fresh the figures are. Costs one [`stats`](BytesPool::stats)
    /// snapshot and a recorder lookup per series: call it from a timer
    /// ([`spawn_metrics`](BytesPool::spawn_metrics)) or before a scrape,
    /// not per request. Without an installed recorder it does nothing but
    /// the snapshot.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::builder().name("bodies").build()?;
    /// drop(pool.checkout(4096));
    /// pool.export_metrics(); // no recorder installed here: a no-op
    /// # Ok::<(), pool_tokio::BuildError>(())
    /// ```
    pub fn export_metrics(&self) {
        let stats = self.stats();
        let pool: SharedString = match &self.handle.inner().settings.name {
            std::borrow::Cow::Borrowed(name) => SharedString::const_str(name),
            std::borrow::Cow::Owned(name) => name.clone().into(),
        };
        let mut unpooled = pool_core::ClassStats::default();
        unpooled.checkouts = stats.unpooled_checkouts;
        unpooled.misses = stats.unpooled_checkouts;
        unpooled.returns = stats.unpooled_returns;
        unpooled.detached = stats.unpooled_detached;
        unpooled.outstanding = stats
            .unpooled_checkouts
            .saturating_sub(stats.unpooled_returns + stats.unpooled_detached);
        for c in stats.classes.iter().chain(std::iter::once(&unpooled)) {
            let labels = [("pool", pool.clone()), ("class", class_label(c.class_size))];
            counter!("pool_tokio_checkouts_total", &labels).absolute(c.checkouts);
            counter!("pool_tokio_misses_total", &labels).absolute(c.misses);
            counter!("pool_tokio_returns_total", &labels).absolute(c.returns);
            for (source, hits) in [("local", c.local_hits), ("depot", c.depot_hits)] {
                let labels = [
                    labels[0].clone(),
                    labels[1].clone(),
                    ("source", SharedString::const_str(source)),
                ];
                counter!("pool_tokio_hits_total", &labels).absolute(hits);
            }
            let d = &c.discarded;
            let reasons = match c.class_size {
                // Every unpooled buffer is dropped on return (a detached
                // one is not returned, so not a discard).
                None => vec![("unpooled", c.returns)],
                Some(_) => vec![
                    ("full", d.full),
                    ("oversize", d.oversize),
                    ("shared", d.shared),
                    ("stale", d.stale),
                    ("rejected", d.rejected),
                    ("trimmed", d.trimmed),
                ],
            };
            for (reason, n) in reasons {
                let labels = [
                    labels[0].clone(),
                    labels[1].clone(),
                    ("reason", SharedString::const_str(reason)),
                ];
                counter!("pool_tokio_discards_total", &labels).absolute(n);
            }
            gauge!("pool_tokio_outstanding", &labels).set(c.outstanding as f64);
            gauge!("pool_tokio_retained", &labels).set(c.retained() as f64);
            gauge!("pool_tokio_retained_bytes", &labels).set(c.retained_bytes() as f64);
        }
        if let Some(budget) = self.budget() {
            let labels = [("pool", pool)];
            gauge!("pool_tokio_budget_limit_bytes", &labels).set(budget.limit as f64);
            gauge!("pool_tokio_budget_charged_bytes", &labels).set(budget.charged as f64);
            counter!("pool_tokio_budget_overdrafts_total", &labels).absolute(budget.overdrafts);
        }
    }

    /// Spawns a task that calls [`export_metrics`](BytesPool::export_metrics)
    /// every `interval` (first at once). Runs until aborted.
    ///
    /// # Panics
    ///
    /// If `interval` is zero, or outside a tokio runtime.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = pool_tokio::BytesPool::new();
    /// let exporter = pool.spawn_metrics(std::time::Duration::from_secs(5));
    /// exporter.abort();
    /// # }
    /// ```
    pub fn spawn_metrics(&self, interval: Duration) -> JoinHandle<()> {
        let pool = self.clone();
        crate::runtime::spawn_every("metrics", interval, move || pool.export_metrics())
    }
}
