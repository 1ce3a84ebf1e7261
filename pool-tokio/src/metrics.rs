//! Export of a pool's statistics through the `metrics` crate facade
//! (feature `metrics`), named and described by Prometheus conventions.
//!
//! Each export writes every series' total over the pools that share its
//! name (counters `absolute`, gauges `set`), so pools that share a name add
//! up in one series instead of overwriting each other's figures (issue: two
//! unnamed pools rewound each other's counters), and any recorder (a fresh
//! one per scrape, two alternating) sees the same figures. A pool's drop
//! exports it a last time and takes its gauges' share out. The metrics,
//! the totals and the per-pool export state (`Exported`) are in
//! `metrics/series.rs`.

use std::time::Duration;

use metrics::SharedString;
use tokio::task::JoinHandle;

use crate::pool::BytesPool;

pub(crate) mod series;

use self::series::{describe, BudgetFigures};

impl BytesPool {
    /// Records the pool's statistics now in the installed `metrics`
    /// recorder (any exporter: Prometheus, StatsD, ...), with HELP text
    /// (`describe_*`; no unit: every name ends in its own, `_bytes`,
    /// `_total`, so an exporter's unit suffix does not double it). Every series is labelled `pool` (the
    /// pool's [name](crate::Builder::name)); per class series also
    /// `class_bytes` (the class size in bytes, or `unpooled` for requests
    /// above the largest class):
    ///
    /// | metric | kind | labels |
    /// |---|---|---|
    /// | `pool_tokio_checkouts_total` | counter | pool, class_bytes |
    /// | `pool_tokio_hits_total` | counter | pool, class_bytes, source (`local`, `depot`); pooled classes only |
    /// | `pool_tokio_misses_total` | counter | pool, class_bytes |
    /// | `pool_tokio_returns_total` | counter | pool, class_bytes |
    /// | `pool_tokio_discards_total` | counter | pool, class_bytes, reason (`full`, `oversize`, `shared`, `stale`, `rejected`, `trimmed`); pooled classes, reasons seen only |
    /// | `pool_tokio_requested_bytes_total` | counter | pool, class_bytes; pooled classes only |
    /// | `pool_tokio_lent_bytes_total` | counter | pool, class_bytes; pooled classes only |
    /// | `pool_tokio_outstanding_buffers` | gauge | pool, class_bytes |
    /// | `pool_tokio_retained_buffers` | gauge | pool, class_bytes; pooled classes only |
    /// | `pool_tokio_retained_bytes` | gauge | pool, class_bytes; pooled classes only |
    /// | `pool_tokio_budget_limit_bytes` | gauge | pool (pools with a budget) |
    /// | `pool_tokio_budget_charged_bytes` | gauge | pool (pools with a budget) |
    /// | `pool_tokio_budget_overdrafts_total` | counter | pool (pools with a budget) |
    ///
    /// Only what can be non-zero is exported: a class gets series once it
    /// has activity (a checkout, a return or buffers kept, as after
    /// [`prewarm`](BytesPool::prewarm)), the unpooled class once it has a
    /// checkout, a discard reason once it occurred. Unpooled buffers have
    /// no hits, retained buffers, discards or byte series: every one is a
    /// miss, lent exactly what it asked for, and every one returned is
    /// dropped (`returns_total` counts them).
    ///
    /// What rounding up to class sizes costs, as [`Stats::waste`](pool_core::Stats::waste)
    /// reports it, is in PromQL `sum(rate(pool_tokio_lent_bytes_total[5m])) /
    /// sum(rate(pool_tokio_requested_bytes_total[5m])) - 1` (per class: by
    /// `class_bytes`).
    ///
    /// Each call writes every series' whole total (counters with
    /// `absolute`, gauges with `set`), so calling it more or less often
    /// changes only how fresh the figures are, any recorder (one installed
    /// since, a fresh one per scrape, two fed in turn) receives the same
    /// figures, and pools that share a name (say two pools built without
    /// [`name`](crate::Builder::name), both `default`) add up in one
    /// series, counters and gauges alike, instead of overwriting each
    /// other. Name pools to tell them apart. When a pool that was exported
    /// is freed, it is exported once more into the recorder of the thread
    /// that frees it (what it did since its last export counts), and its
    /// share leaves the gauges; its counters' figures stay in their
    /// series, which never go back. Costs one
    /// [`stats`](BytesPool::stats) snapshot, a process-wide lock and a
    /// recorder lookup per series: call it from a timer
    /// ([`spawn_metrics`](BytesPool::spawn_metrics),
    /// [`spawn_metrics_for`](BytesPool::spawn_metrics_for)) or before a
    /// scrape, not per request. Without an installed recorder it does
    /// nothing but the snapshot.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::builder().name("bodies").build()?;
    /// drop(pool.checkout(4096));
    /// pool.export_metrics(); // no recorder installed here: a no-op
    /// # Ok::<(), pool_tokio::BuildError>(())
    /// ```
    pub fn export_metrics(&self) {
        describe();
        self.export_described();
    }

    /// [`export_metrics`](BytesPool::export_metrics) without the
    /// `describe_*` calls.
    fn export_described(&self) {
        let stats = self.stats();
        let budget = self
            .budget()
            .map(|b| BudgetFigures::new(b.limit, b.charged, b.overdrafts));
        let inner = self.handle.inner();
        let pool: SharedString = match &inner.settings.name {
            std::borrow::Cow::Borrowed(name) => SharedString::const_str(name),
            std::borrow::Cow::Owned(name) => name.clone().into(),
        };
        inner.exported.export(pool, &stats, budget);
    }

    /// Exports several pools at once, describing the metrics once: what
    /// [`export_metrics`](BytesPool::export_metrics) does for each.
    ///
    /// ```
    /// let a = pool_tokio::BytesPool::builder().name("requests").build()?;
    /// let b = pool_tokio::BytesPool::builder().name("frames").build()?;
    /// pool_tokio::BytesPool::export_metrics_for(&[a, b]); // no recorder here: a no-op
    /// # Ok::<(), pool_tokio::BuildError>(())
    /// ```
    pub fn export_metrics_for(pools: &[BytesPool]) {
        describe();
        for pool in pools {
            pool.export_described();
        }
    }

    /// Spawns a task that calls [`export_metrics`](BytesPool::export_metrics)
    /// every `interval` (first at once). Runs until aborted. For several
    /// pools, one [`spawn_metrics_for`](BytesPool::spawn_metrics_for) task
    /// does the same work.
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
        BytesPool::spawn_metrics_for([self.clone()], interval)
    }

    /// Spawns one task that exports every pool of `pools`
    /// ([`export_metrics_for`](BytesPool::export_metrics_for)) every
    /// `interval` (first at once). Runs until aborted.
    ///
    /// # Panics
    ///
    /// If `interval` is zero, or outside a tokio runtime.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use pool_tokio::BytesPool;
    /// let requests = BytesPool::builder().name("requests").build().unwrap();
    /// let frames = BytesPool::builder().name("frames").build().unwrap();
    /// let exporter = BytesPool::spawn_metrics_for([requests, frames], std::time::Duration::from_secs(5));
    /// exporter.abort();
    /// # }
    /// ```
    pub fn spawn_metrics_for(
        pools: impl IntoIterator<Item = BytesPool>,
        interval: Duration,
    ) -> JoinHandle<()> {
        let pools: Vec<BytesPool> = pools.into_iter().collect();
        crate::runtime::spawn_every("metrics", interval, move || {
            BytesPool::export_metrics_for(&pools)
        })
    }
}
