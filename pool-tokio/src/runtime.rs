//! Runtime integration: thread hooks, the maintenance task, the reporter.

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::pool::BytesPool;

/// A debug span around a maintenance pass (`None` without the feature).
pub(crate) fn trim_span(kind: &'static str) -> impl Drop {
    let _ = kind;
    #[cfg(feature = "tracing")]
    let span = tracing::debug_span!(target: "pool_tokio", "pool_maintenance", kind).entered();
    #[cfg(not(feature = "tracing"))]
    let span = DropNothing;
    span
}

#[cfg(not(feature = "tracing"))]
struct DropNothing;

#[cfg(not(feature = "tracing"))]
impl Drop for DropNothing {
    fn drop(&mut self) {}
}

impl BytesPool {
    /// A hook for [`tokio::runtime::Builder::on_thread_stop`]: hands the
    /// stopping thread's cache to the pool's depot, so buffers
    /// cached by workers and blocking threads that exit are reused at once.
    /// (pool-core also does this when a thread exits; the hook does it
    /// before the runtime's thread-local teardown, when it cannot fail.)
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let rt = tokio::runtime::Builder::new_multi_thread()
    ///     .worker_threads(2)
    ///     .on_thread_stop(pool.on_thread_stop())
    ///     .on_thread_park(pool.on_thread_park())
    ///     .build()?;
    /// let p = pool.clone();
    /// rt.block_on(async move {
    ///     tokio::spawn(async move { drop(p.checkout(4096)) }).await.unwrap();
    /// });
    /// drop(rt); // the workers stop and flush
    /// assert_eq!(pool.stats().class(4096).unwrap().retained_depot, 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn on_thread_stop(&self) -> impl Fn() + Send + Sync + 'static {
        let pool = self.clone();
        move || pool.flush_thread()
    }

    /// A hook for [`tokio::runtime::Builder::on_thread_park`]: cheap idle
    /// decay ([`BytesPool::maintain`]) each time a worker is about to idle,
    /// so a quiet service gives back memory without a timer.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let hook = pool.on_thread_park();
    /// hook(); // what the runtime calls before a worker parks
    /// ```
    pub fn on_thread_park(&self) -> impl Fn() + Send + Sync + 'static {
        let pool = self.clone();
        move || {
            pool.maintain();
        }
    }

    /// Sets both hooks on a runtime builder ([`on_thread_stop`] and
    /// [`on_thread_park`]; they replace hooks set before).
    ///
    /// [`on_thread_stop`]: BytesPool::on_thread_stop
    /// [`on_thread_park`]: BytesPool::on_thread_park
    ///
    /// ```
    /// let mut builder = tokio::runtime::Builder::new_multi_thread();
    /// pool_tokio::default_pool().install(&mut builder);
    /// let rt = builder.build()?;
    /// # drop(rt);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn install<'a>(
        &self,
        builder: &'a mut tokio::runtime::Builder,
    ) -> &'a mut tokio::runtime::Builder {
        builder
            .on_thread_stop(self.on_thread_stop())
            .on_thread_park(self.on_thread_park())
    }

    /// Spawns a task that runs idle decay ([`BytesPool::maintain`]) every
    /// `interval`, in a debug span, so memory left idle for a whole decay
    /// interval is freed even on threads that never park. Runs until
    /// aborted. Must be called within a tokio runtime.
    ///
    /// # Panics
    ///
    /// If `interval` is zero, or outside a tokio runtime.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::time::Duration;
    /// let pool = pool_tokio::BytesPool::with_config(
    ///     pool_core::BufferConfig::new().decay_interval(Duration::from_millis(10)),
    /// ).unwrap();
    /// pool.prewarm(4096, 8);
    /// let task = pool.spawn_maintenance(Duration::from_millis(5));
    /// // Nobody takes the buffers for a whole decay interval: freed.
    /// let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    /// while pool.stats().retained_bytes() > 0 && tokio::time::Instant::now() < deadline {
    ///     tokio::time::sleep(Duration::from_millis(5)).await;
    /// }
    /// assert_eq!(pool.stats().retained_bytes(), 0);
    /// task.abort();
    /// # }
    /// ```
    pub fn spawn_maintenance(&self, interval: Duration) -> JoinHandle<()> {
        assert!(!interval.is_zero(), "maintenance interval must be non-zero");
        let pool = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let _span = trim_span("decay");
                let before = pool.stats().retained_bytes();
                if pool.maintain() {
                    let after = pool.stats().retained_bytes();
                    let _ = (before, after);
                    crate::tracing::event!(
                        debug,
                        retained_before = before,
                        retained_after = after,
                        "idle decay"
                    );
                }
            }
        })
    }

    /// Spawns a task that, every `interval`, emits the pool's per-class
    /// statistics as `debug` events (target `pool_tokio`) inside a
    /// `pool_report` debug span: checkouts, hits and misses since the last
    /// report, the hit rate over that interval and overall, discards,
    /// buffers outstanding and kept. Classes without activity in the
    /// interval are skipped. Runs until aborted.
    ///
    /// # Panics
    ///
    /// If `interval` is zero, or outside a tokio runtime.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = pool_tokio::BytesPool::new();
    /// let reporter = pool.spawn_reporter(std::time::Duration::from_secs(10));
    /// drop(pool.checkout(100));
    /// reporter.abort();
    /// # }
    /// ```
    #[cfg(feature = "tracing")]
    pub fn spawn_reporter(&self, interval: Duration) -> JoinHandle<()> {
        assert!(!interval.is_zero(), "report interval must be non-zero");
        let pool = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last = pool.stats();
            loop {
                ticker.tick().await;
                let now = pool.stats();
                report(&last, &now);
                last = now;
            }
        })
    }
}

/// Emits one report: an event per class active since `last`, then a total.
#[cfg(feature = "tracing")]
fn report(last: &pool_core::Stats, now: &pool_core::Stats) {
    let _span = tracing::debug_span!(target: "pool_tokio", "pool_report").entered();
    let rate = |hits: u64, checkouts: u64| {
        if checkouts == 0 {
            0.0
        } else {
            hits as f64 / checkouts as f64
        }
    };
    for class in &now.classes {
        let before = last
            .classes
            .iter()
            .find(|c| c.class_size == class.class_size)
            .copied()
            .unwrap_or_default();
        let checkouts = class.checkouts - before.checkouts.min(class.checkouts);
        if checkouts == 0 {
            continue;
        }
        let hits = class.hits().saturating_sub(before.hits());
        tracing::debug!(
            target: "pool_tokio",
            class = class.class_size.unwrap_or(0),
            checkouts,
            hits,
            misses = checkouts.saturating_sub(hits),
            hit_rate = rate(hits, checkouts),
            total_hit_rate = class.hit_rate(),
            discarded = class.discarded.total(),
            outstanding = class.outstanding,
            kept = class.retained(),
            "class report"
        );
    }
    tracing::debug!(
        target: "pool_tokio",
        checkouts = now.checkouts().saturating_sub(last.checkouts()),
        hit_rate = rate(
            now.hits().saturating_sub(last.hits()),
            now.checkouts().saturating_sub(last.checkouts())
        ),
        total_hit_rate = now.hit_rate(),
        outstanding = now.outstanding(),
        retained_bytes = now.retained_bytes(),
        "pool report"
    );
}
