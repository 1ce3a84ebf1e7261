//! Runtime integration: thread hooks (composable with the user's own), the
//! maintenance task, the reporter. The blocking-thread mark they set and
//! the cache policy read from it are in `runtime/mark.rs`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::pool::BytesPool;

pub(crate) mod mark;
pub(crate) mod stash;

use self::mark::{set_thread_kind, thread_kind, RUNTIME_UNPARKED, WORKER};

impl BytesPool {
    /// What to call from your own
    /// [`on_thread_start`](tokio::runtime::Builder::on_thread_start) hook
    /// (or let [`hooks`](BytesPool::hooks) / [`install`](BytesPool::install)
    /// do it): marks the thread as a runtime thread. Until it first parks
    /// (only workers park), nothing is cached on it unless
    /// [`Builder::blocking_cache`](crate::Builder::blocking_cache) is set:
    /// buffers it returns go on to the depot, and a checkout served by the
    /// depot leaves the rest of its batch there. That keeps `spawn_blocking`
    /// threads, up to 512 of them, from each holding a cache.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let rt = tokio::runtime::Builder::new_multi_thread()
    ///     .worker_threads(1)
    ///     .on_thread_start({
    ///         let pool = pool.clone();
    ///         move || {
    ///             pool.thread_started();
    ///             // ... your own start-up work
    ///         }
    ///     })
    ///     .build()?;
    /// let p = pool.clone();
    /// rt.block_on(async { tokio::task::spawn_blocking(move || drop(p.checkout(4096))).await })
    ///     .unwrap();
    /// let class = *pool.stats().class(4096).unwrap();
    /// assert_eq!((class.retained_local, class.retained_depot), (0, 1)); // not cached there
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn thread_started(&self) {
        if thread_kind() != WORKER {
            set_thread_kind(RUNTIME_UNPARKED);
        }
    }

    /// What to call from your own
    /// [`on_thread_park`](tokio::runtime::Builder::on_thread_park) hook:
    /// marks the thread as a worker, hands its cache to the depot
    /// ([`flush_thread`](BytesPool::flush_thread): an idle worker never
    /// runs pool code, so this is the last chance to make its cache
    /// reachable by decay), gives up the references to built pools that
    /// its returns left in the thread's stash (whichever pool they are of:
    /// see [`BytesPool`]), and runs cheap idle decay
    /// ([`maintain`](BytesPool::maintain)) while the pool retains more than
    /// its [idle floor](crate::Builder::idle_floor).
    ///
    /// Decay frees only batches that sat in the depot for a whole decay
    /// interval, and a worker that stays parked runs no pool code again, so
    /// a park that leaves more than the idle floor in the depot also arms
    /// the pool's idle thread (`pool-tokio-idle`, one per pool, started by
    /// the first such park): it runs a decay step every quarter interval
    /// until the depot is down to the floor, then sleeps without waking
    /// until a park arms it again, and ends with the pool. So a quiet
    /// service gives its memory back, down to the floor, with only the
    /// hooks installed (issue 18: 6,242,304 B kept 3 s after traffic
    /// stopped, 0 B now). A pool with a
    /// [decay thread](crate::Builder::decay_thread) has no idle thread.
    ///
    /// Cost per park: a pass over this thread's per-class caches, the
    /// depot lock once per class that holds buffers, and one uncontended
    /// lock; with a non-zero idle floor also a
    /// [`stats`](BytesPool::stats) snapshot.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// drop(pool.checkout(4096));
    /// pool.thread_parking(); // as the runtime would, before this thread idles
    /// assert_eq!(pool.stats().class(4096).unwrap().retained_depot, 1);
    /// ```
    pub fn thread_parking(&self) {
        set_thread_kind(WORKER);
        // `flush_thread` without its stash step: all of it goes here.
        self.handle.inner().pool.flush_thread();
        stash::give_up_here();
        self.decay_to_floor();
        crate::background::arm_idle_thread(self);
    }

    /// What to call from your own
    /// [`on_thread_stop`](tokio::runtime::Builder::on_thread_stop) hook:
    /// hands the stopping thread's cache to the depot, so buffers cached
    /// by workers and blocking threads that exit are reused at once, and
    /// gives up the thread's stash of pool references.
    /// (pool-core also does this when a thread exits; the hook does it
    /// before the runtime's thread-local teardown, when it cannot fail.)
    /// It also drops the runtime handle a pool with a
    /// [decay thread](crate::Builder::decay_thread) keeps to reach idle
    /// workers (the next miss captures one again): kept past the runtime's
    /// end, it would keep the runtime's state alive, and with it hooks that
    /// hold handles of this pool, which would then never be freed.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// drop(pool.checkout(4096));
    /// pool.thread_stopping();
    /// assert_eq!(pool.stats().class(4096).unwrap().retained_depot, 1);
    /// ```
    pub fn thread_stopping(&self) {
        // `flush_thread` without its stash step: all of it goes here.
        self.handle.inner().pool.flush_thread();
        stash::give_up_here();
        self.handle.inner().runtime.forget_runtime();
    }

    /// One idle decay step ([`maintain`](BytesPool::maintain)) if the pool
    /// retains more than its [idle floor](crate::Builder::idle_floor);
    /// returns whether a step ran.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::builder().idle_floor(1 << 20).build()?;
    /// pool.prewarm(4096, 4);
    /// assert!(!pool.decay_to_floor()); // 16 KiB retained: under the floor
    /// # Ok::<(), pool_tokio::BuildError>(())
    /// ```
    pub fn decay_to_floor(&self) -> bool {
        let floor = self.idle_floor();
        if floor > 0 && self.stats().retained_bytes() <= floor as u64 {
            return false;
        }
        self.maintain()
    }

    /// A hook for [`tokio::runtime::Builder::on_thread_stop`]:
    /// [`thread_stopping`](BytesPool::thread_stopping) as a closure.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let rt = tokio::runtime::Builder::new_multi_thread()
    ///     .worker_threads(2)
    ///     .on_thread_stop(pool.on_thread_stop())
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
        move || pool.thread_stopping()
    }

    /// A hook for [`tokio::runtime::Builder::on_thread_park`]:
    /// [`thread_parking`](BytesPool::thread_parking) as a closure.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let hook = pool.on_thread_park();
    /// hook(); // what the runtime calls before a worker parks
    /// ```
    pub fn on_thread_park(&self) -> impl Fn() + Send + Sync + 'static {
        let pool = self.clone();
        move || pool.thread_parking()
    }

    /// A hook for [`tokio::runtime::Builder::on_thread_start`]:
    /// [`thread_started`](BytesPool::thread_started) as a closure.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let rt = tokio::runtime::Builder::new_multi_thread()
    ///     .on_thread_start(pool.on_thread_start())
    ///     .build()?;
    /// # drop(rt);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn on_thread_start(&self) -> impl Fn() + Send + Sync + 'static {
        let pool = self.clone();
        move || pool.thread_started()
    }

    /// The runtime hooks of this pool, to combine with your own hooks and
    /// other pools' before installing them all on a runtime builder (tokio
    /// keeps one hook of each kind, so hooks set one after the other
    /// replace each other).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    ///
    /// let (frames, bodies) = (pool_tokio::BytesPool::new(), pool_tokio::BytesPool::new());
    /// let stops = Arc::new(AtomicUsize::new(0));
    /// let mut builder = tokio::runtime::Builder::new_multi_thread();
    /// builder.worker_threads(2);
    /// frames
    ///     .hooks()
    ///     .pool(&bodies)
    ///     .on_thread_stop({
    ///         let stops = stops.clone();
    ///         move || { stops.fetch_add(1, Ordering::Relaxed); }
    ///     })
    ///     .install(&mut builder);
    /// drop(builder.build()?);
    /// assert_eq!(stops.load(Ordering::Relaxed), 2); // yours ran, beside both pools'
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn hooks(&self) -> RuntimeHooks {
        RuntimeHooks {
            pools: vec![self.clone()],
            on_thread_start: None,
            on_thread_stop: None,
            on_thread_park: None,
        }
    }

    /// Sets this pool's three hooks on a runtime builder
    /// (`on_thread_start`, `on_thread_stop`, `on_thread_park`); the same as
    /// `self.hooks().install(builder)`.
    ///
    /// **It replaces hooks of those kinds set on `builder` before, and
    /// hooks set after it replace it**: tokio keeps one hook of each kind
    /// and cannot be asked for the one it holds. To keep your own hooks,
    /// either pass them through [`hooks`](BytesPool::hooks), which calls
    /// yours after the pool's, or set only your own and call
    /// [`thread_started`](BytesPool::thread_started),
    /// [`thread_parking`](BytesPool::thread_parking) and
    /// [`thread_stopping`](BytesPool::thread_stopping) from them.
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
        self.hooks().install(builder)
    }

    /// Spawns a task that runs idle decay ([`BytesPool::decay_to_floor`])
    /// every `interval`, in a debug span, so memory left idle in the depot
    /// for a whole decay interval is freed, down to the
    /// [idle floor](crate::Builder::idle_floor), even if no worker parks.
    /// A debug event `idle decay` reports a step that freed something.
    /// Runs until aborted. Must be called within a tokio runtime.
    ///
    /// A thread cache is reached only by its own thread: what an idle
    /// worker holds comes to the depot when it parks
    /// ([`thread_parking`](BytesPool::thread_parking), installed by
    /// [`install`](BytesPool::install), which also keeps decay going while
    /// workers stay parked). Without the park hook each worker keeps up to
    /// one batch per class it used until it runs pool code again.
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
        let pool = self.clone();
        spawn_every("maintenance", interval, move || {
            let _span = crate::tracing::maintenance_span(pool.name(), "decay");
            let before = pool.stats().retained_bytes();
            if pool.decay_to_floor() {
                let after = pool.stats().retained_bytes();
                let _ = (before, after);
                if after != before {
                    crate::tracing::event!(
                        debug,
                        pool = pool.name(),
                        retained_before = before,
                        retained_after = after,
                        "idle decay"
                    );
                }
            }
        })
    }

    /// Spawns a task that, every `interval`, emits the pool's per-class
    /// statistics as `debug` events (target `pool_tokio`, field `pool` the
    /// pool's name) inside a `pool_report` debug span: checkouts, hits and
    /// misses since the last report, the hit rate over that interval and
    /// overall (as percentages, `hit_pct` and `total_hit_pct`), discards
    /// since the last report by reason, buffers outstanding and kept.
    /// Classes without activity in the interval are skipped, and an
    /// interval in which nothing changed emits nothing. Runs until aborted.
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
        let pool = self.clone();
        let mut last = pool.stats();
        spawn_every("report", interval, move || {
            let now = pool.stats();
            report(pool.name(), &last, &now);
            last = now;
        })
    }
}

/// Spawns a task that calls `tick` every `interval` (a missed tick is
/// delayed, not bunched up), for the pool's periodic tasks.
///
/// # Panics
///
/// If `interval` is zero (named `what` in the message).
pub(crate) fn spawn_every(
    what: &str,
    interval: Duration,
    mut tick: impl FnMut() + Send + 'static,
) -> JoinHandle<()> {
    assert!(!interval.is_zero(), "{what} interval must be non-zero");
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            tick();
        }
    })
}

/// A hit rate as a percentage rounded to 0.1, 0 for no checkouts.
#[cfg(feature = "tracing")]
fn pct(hits: u64, checkouts: u64) -> f64 {
    if checkouts == 0 {
        0.0
    } else {
        (hits as f64 * 1000.0 / checkouts as f64).round() / 10.0
    }
}

/// Emits one report, unless nothing changed since `last`: an event per
/// class active since then, then a total.
#[cfg(feature = "tracing")]
fn report(name: &str, last: &pool_core::Stats, now: &pool_core::Stats) {
    if now == last {
        return;
    }
    let _span = tracing::debug_span!(target: "pool_tokio", "pool_report", pool = name).entered();
    for class in &now.classes {
        let before = last
            .classes
            .iter()
            .find(|c| c.class_size == class.class_size)
            .copied()
            .unwrap_or_default();
        let checkouts = class.checkouts - before.checkouts.min(class.checkouts);
        let discarded = class
            .discarded
            .total()
            .saturating_sub(before.discarded.total());
        if checkouts == 0 && discarded == 0 {
            continue;
        }
        let hits = class.hits().saturating_sub(before.hits());
        let d = |now: u64, then: u64| now.saturating_sub(then);
        tracing::debug!(
            target: "pool_tokio",
            pool = name,
            class = class.class_size.unwrap_or(0),
            checkouts,
            hits,
            misses = checkouts.saturating_sub(hits),
            hit_pct = pct(hits, checkouts),
            total_hit_pct = pct(class.hits(), class.checkouts),
            discarded,
            discarded_full = d(class.discarded.full, before.discarded.full),
            discarded_oversize = d(class.discarded.oversize, before.discarded.oversize),
            discarded_shared = d(class.discarded.shared, before.discarded.shared),
            discarded_stale = d(class.discarded.stale, before.discarded.stale),
            discarded_rejected = d(class.discarded.rejected, before.discarded.rejected),
            discarded_trimmed = d(class.discarded.trimmed, before.discarded.trimmed),
            outstanding = class.outstanding,
            retained = class.retained(),
            "class report"
        );
    }
    let checkouts = now.checkouts().saturating_sub(last.checkouts());
    tracing::debug!(
        target: "pool_tokio",
        pool = name,
        checkouts,
        hit_pct = pct(now.hits().saturating_sub(last.hits()), checkouts),
        total_hit_pct = pct(now.hits(), now.checkouts()),
        outstanding = now.outstanding(),
        retained_bytes = now.retained_bytes(),
        "pool report"
    );
}

type Hook = Arc<dyn Fn() + Send + Sync + 'static>;

/// Runtime hooks for one or more pools, together with your own hooks, to
/// install on a [`tokio::runtime::Builder`] at once (see
/// [`BytesPool::hooks`]). Each installed hook calls every pool's part in the
/// order the pools were added, then yours.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
///
/// let pool = pool_tokio::BytesPool::new();
/// let parks = Arc::new(AtomicUsize::new(0));
/// let mut builder = tokio::runtime::Builder::new_current_thread();
/// builder.enable_time();
/// pool.hooks()
///     .on_thread_park({
///         let parks = parks.clone();
///         move || { parks.fetch_add(1, Ordering::Relaxed); }
///     })
///     .install(&mut builder);
/// builder.build()?.block_on(async { tokio::time::sleep(std::time::Duration::from_millis(1)).await });
/// assert!(parks.load(Ordering::Relaxed) >= 1);
/// # Ok::<(), std::io::Error>(())
/// ```
#[must_use = "hooks do nothing until `install` is called"]
pub struct RuntimeHooks {
    pools: Vec<BytesPool>,
    on_thread_start: Option<Hook>,
    on_thread_stop: Option<Hook>,
    on_thread_park: Option<Hook>,
}

impl fmt::Debug for RuntimeHooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeHooks")
            .field(
                "pools",
                &self.pools.iter().map(BytesPool::name).collect::<Vec<_>>(),
            )
            .field("on_thread_start", &self.on_thread_start.is_some())
            .field("on_thread_stop", &self.on_thread_stop.is_some())
            .field("on_thread_park", &self.on_thread_park.is_some())
            .finish()
    }
}

impl RuntimeHooks {
    /// Adds another pool's hooks.
    ///
    /// ```
    /// let (a, b) = (pool_tokio::BytesPool::new(), pool_tokio::BytesPool::new());
    /// let mut builder = tokio::runtime::Builder::new_multi_thread();
    /// a.hooks().pool(&b).install(&mut builder);
    /// ```
    pub fn pool(mut self, pool: &BytesPool) -> Self {
        self.pools.push(pool.clone());
        self
    }

    /// Your `on_thread_start` hook, called after the pools' (replaces one
    /// given here before).
    ///
    /// ```
    /// let mut builder = tokio::runtime::Builder::new_multi_thread();
    /// pool_tokio::default_pool().hooks().on_thread_start(|| ()).install(&mut builder);
    /// ```
    pub fn on_thread_start(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_thread_start = Some(Arc::new(f));
        self
    }

    /// Your `on_thread_stop` hook, called after the pools' (replaces one
    /// given here before).
    ///
    /// ```
    /// let mut builder = tokio::runtime::Builder::new_multi_thread();
    /// pool_tokio::default_pool().hooks().on_thread_stop(|| ()).install(&mut builder);
    /// ```
    pub fn on_thread_stop(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_thread_stop = Some(Arc::new(f));
        self
    }

    /// Your `on_thread_park` hook, called after the pools' (replaces one
    /// given here before).
    ///
    /// ```
    /// let mut builder = tokio::runtime::Builder::new_multi_thread();
    /// pool_tokio::default_pool().hooks().on_thread_park(|| ()).install(&mut builder);
    /// ```
    pub fn on_thread_park(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_thread_park = Some(Arc::new(f));
        self
    }

    /// Sets `on_thread_start`, `on_thread_stop` and `on_thread_park` on
    /// `builder`, each calling every pool's part and then yours. Replaces
    /// hooks of those kinds set on `builder` before (tokio keeps one of
    /// each): give yours here instead.
    ///
    /// ```
    /// let mut builder = tokio::runtime::Builder::new_multi_thread();
    /// pool_tokio::default_pool().hooks().install(&mut builder);
    /// drop(builder.build()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn install(self, builder: &mut tokio::runtime::Builder) -> &mut tokio::runtime::Builder {
        let pools: Arc<[BytesPool]> = self.pools.into();
        let start = {
            let (pools, user) = (pools.clone(), self.on_thread_start);
            move || {
                pools.iter().for_each(BytesPool::thread_started);
                if let Some(user) = &user {
                    user();
                }
            }
        };
        let stop = {
            let (pools, user) = (pools.clone(), self.on_thread_stop);
            move || {
                pools.iter().for_each(BytesPool::thread_stopping);
                if let Some(user) = &user {
                    user();
                }
            }
        };
        let park = {
            let user = self.on_thread_park;
            move || {
                pools.iter().for_each(BytesPool::thread_parking);
                if let Some(user) = &user {
                    user();
                }
            }
        };
        builder
            .on_thread_start(start)
            .on_thread_stop(stop)
            .on_thread_park(park)
    }
}
