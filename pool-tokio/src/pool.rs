//! `BytesPool`: the pool handle, its shared state (`Inner`, `Settings`,
//! `Handle`) and checkout. The budget is in `budget.rs`, the builder in
//! `builder.rs`.

use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::BytesMut;
use pool_core::{BufferConfig, BufferPool, Stats};

pub(crate) use crate::budget::Budget;
use crate::budget::{check_budget, check_size, BudgetStats, Reservation};
use crate::builder::Builder;
use crate::error::{BuildError, TryCheckoutError};
use crate::pooled::PooledBytes;

/// The state behind every handle of one pool.
pub(crate) struct Inner {
    pub(crate) pool: BufferPool<BytesMut>,
    pub(crate) budget: Option<Budget>,
    /// Runtime, naming and tracing settings (`Builder::name` and friends).
    pub(crate) settings: Settings,
    /// The runtime the decay thread reaches idle workers through.
    pub(crate) runtime: crate::background::RuntimeSeen,
    /// Leak diagnostics, for pools built with `Builder::diagnostics`.
    #[cfg(feature = "diagnostics")]
    pub(crate) diagnostics: Option<crate::diagnostics::Registry>,
    /// What `export_metrics` last added to each series.
    #[cfg(feature = "metrics")]
    pub(crate) exported: crate::metrics::Exported,
}

/// The settings of a pool that are pool-tokio's own (not pool-core's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    /// Carried by statistics reports, trace events and metrics.
    pub(crate) name: std::borrow::Cow<'static, str>,
    /// Bytes that idle decay driven by this crate leaves retained.
    pub(crate) idle_floor: usize,
    /// Whether blocking threads of a runtime with this pool's hooks keep a
    /// per-thread cache.
    pub(crate) blocking_cache: bool,
    /// Whether every hit is traced (misses and discards always are).
    pub(crate) trace_hits: bool,
    /// Whether a background thread drives idle decay (`Builder::decay_thread`).
    pub(crate) decay_thread: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            name: std::borrow::Cow::Borrowed(DEFAULT_NAME),
            idle_floor: 0,
            blocking_cache: false,
            trace_hits: false,
            decay_thread: false,
        }
    }
}

/// The name of a pool built without [`Builder::name`], the
/// [default pool](crate::default_pool)'s included.
pub const DEFAULT_NAME: &str = "default";

impl Inner {
    pub(crate) fn new(config: BufferConfig, budget: Option<usize>) -> Result<Inner, BuildError> {
        Self::with_settings(config, budget, Settings::default())
    }

    pub(crate) fn with_settings(
        config: BufferConfig,
        budget: Option<usize>,
        settings: Settings,
    ) -> Result<Inner, BuildError> {
        let pool = BufferPool::with_config(config)?;
        let budget = match budget {
            None => None,
            Some(limit) => Some(Budget::new(limit, &config, settings.name.clone())?),
        };
        Ok(Inner {
            pool,
            budget,
            settings,
            runtime: crate::background::RuntimeSeen::default(),
            #[cfg(feature = "diagnostics")]
            diagnostics: None,
            #[cfg(feature = "metrics")]
            exported: Default::default(),
        })
    }
}

/// How a guard reaches its pool: a plain reference for pools that live for
/// the whole program (no reference count touched per checkout), an `Arc`
/// otherwise.
#[derive(Clone)]
pub(crate) enum Handle {
    Static(&'static Inner),
    Shared(Arc<Inner>),
}

impl Handle {
    #[inline]
    pub(crate) fn inner(&self) -> &Inner {
        match self {
            Handle::Static(inner) => inner,
            Handle::Shared(inner) => inner,
        }
    }
}

/// A pool of [`BytesMut`] buffers in size classes (four per power of two
/// by default, see [`BufferConfig::classes_per_doubling`]), with an
/// optional budget on the bytes checked out.
///
/// A cheap handle: clones share one pool. Checking out and returning on one
/// thread touch only that thread's cache (see [`pool_core`]); a buffer
/// dropped on another thread, as tasks moved by work stealing do all the
/// time, is an ordinary return there.
///
/// # The byte budget
///
/// A pool built with [`Builder::budget`] bounds the bytes checked out at
/// once: every buffer charges its class size (an unpooled one its size)
/// until it comes back, on every path: [`checkout`](BytesPool::checkout)
/// and its variants, the framed values ([`framed`](BytesPool::framed) and
/// friends, which also charge a codec's growth of their buffers as they see
/// it after each poll), and pooled frames
/// ([`PooledLengthDelimitedCodec`](crate::PooledLengthDelimitedCodec),
/// [`PooledDecoder`](crate::PooledDecoder), [`FrameReader`](crate::FrameReader)).
///
/// - Paths that can wait do: [`checkout_async`](BytesPool::checkout_async),
///   [`framed_async`](BytesPool::framed_async) and `FrameReader` wait, first
///   come first served, and are cancel-safe.
/// - Paths that cannot wait nor fail (`checkout`, the framed constructors,
///   a codec's `decode`, growth) serve past an exhausted budget,
///   uncharged: an *overdraft*, counted in [`BudgetStats::overdrafts`] and
///   traced at WARN (target `pool_tokio`, `outcome = "overdraft"`, at most
///   one WARN a second per pool, with a `suppressed` count).
/// - [`try_checkout`](BytesPool::try_checkout) refuses instead.
///
/// **The deadlock you can build.** Waiting is safe only while the waiter
/// holds nothing that others wait for. A task that holds budgeted buffers
/// (a frame it has not dropped, a framed value) while it waits for more
/// can, with enough such tasks, hold the whole budget between them while
/// every one of them waits: nothing is ever returned (24 connections
/// that each keep their previous 100-250 KiB frame while a `FrameReader`
/// waits for the next one hang on a 1 MiB budget). Ways out:
/// - reserve a task's worst case up front with
///   [`reserve`](BytesPool::reserve) (one wait, holding nothing) and check
///   its buffers out of the [`Reservation`], which never waits;
/// - drop (or finish with) each frame before asking for the next, so a
///   waiter holds at most its read buffer;
/// - admit at most `budget / per-connection worst case` connections at
///   once (a `tokio::sync::Semaphore` of connection slots in front of the
///   budget), so those admitted can always be served;
/// - use [`try_checkout`](BytesPool::try_checkout) where holding is
///   unavoidable and shed load (close the connection, reply "busy") on
///   [`TryCheckoutError::BudgetExhausted`].
///
/// Guards of a pool built here hold an `Arc` of it (one atomic increment
/// per checkout and one decrement per return); [`leak`](BytesPool::leak)
/// makes a pool that lives for the rest of the program and whose guards
/// hold a plain reference, like the [default pool](crate::default_pool).
///
/// ```
/// use pool_core::BufferConfig;
/// use pool_tokio::BytesPool;
///
/// let pool = BytesPool::with_config(BufferConfig::new().max_class(64 << 10))?;
/// let mut buf = pool.checkout(1500);
/// buf.extend_from_slice(b"GET / HTTP/1.1\r\n");
/// assert_eq!(buf.capacity(), 1536); // four classes per doubling
/// drop(buf);
/// assert_eq!(pool.checkout(1536).len(), 0); // reused, cleared
/// assert_eq!(pool.stats().hits(), 1);
/// # Ok::<(), pool_core::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct BytesPool {
    pub(crate) handle: Handle,
}

impl fmt::Debug for BytesPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BytesPool")
            .field("name", &self.name())
            .field("static", &matches!(self.handle, Handle::Static(_)))
            .field("config", &self.config())
            .field("budget", &self.budget())
            .finish()
    }
}

impl Default for BytesPool {
    fn default() -> Self {
        Self::new()
    }
}

impl BytesPool {
    /// A pool with pool-core's default settings (classes 512 B ..= 1 MiB)
    /// and no budget.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// assert_eq!(pool.checkout(0).capacity(), 512);
    /// ```
    pub fn new() -> Self {
        match Self::builder().build() {
            Ok(pool) => pool,
            Err(e) => unreachable!("default settings are valid: {e}"),
        }
    }

    /// A pool with the given settings and no budget.
    ///
    /// ```
    /// let err = pool_tokio::BytesPool::with_config(pool_core::BufferConfig::new().min_class(1000))
    ///     .unwrap_err();
    /// assert_eq!(err.setting(), "min_class");
    /// ```
    pub fn with_config(config: BufferConfig) -> Result<Self, pool_core::ConfigError> {
        let inner = match Inner::new(config, None) {
            Ok(inner) => inner,
            Err(BuildError::Config(e)) => return Err(e),
            Err(e) => unreachable!("no budget, so only a setting can be wrong: {e}"),
        };
        Ok(BytesPool {
            handle: Handle::Shared(Arc::new(inner)),
        })
    }

    /// A builder, for a budget or settings.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::builder()
    ///     .config(pool_core::BufferConfig::new().min_class(1024))
    ///     .budget(16 << 20)
    ///     .build()?;
    /// assert_eq!(pool.budget().unwrap().limit, 16 << 20);
    /// # Ok::<(), pool_tokio::BuildError>(())
    /// ```
    pub fn builder() -> Builder {
        Builder::new()
    }

    pub(crate) fn from_static(inner: &'static Inner) -> Self {
        BytesPool {
            handle: Handle::Static(inner),
        }
    }

    /// Makes this pool live for the rest of the program: the returned
    /// handle's guards hold a plain `&'static` reference, so checkouts and
    /// returns touch no reference count. For pools built once at start-up.
    /// Costs one small allocation, never freed (nor is the pool).
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new().leak();
    /// let buf = pool.checkout(100);
    /// std::thread::spawn(move || drop(buf)).join().unwrap();
    /// assert_eq!(pool.stats().outstanding(), 0);
    /// ```
    pub fn leak(self) -> BytesPool {
        match self.handle {
            Handle::Static(_) => self,
            Handle::Shared(arc) => {
                let inner: &'static Arc<Inner> = Box::leak(Box::new(arc));
                BytesPool::from_static(inner)
            }
        }
    }

    /// Checks out an empty buffer of at least `min_capacity` bytes (its
    /// class size). Never waits and never fails: on a pool whose budget is
    /// exhausted it is served anyway, uncharged, and counted in
    /// [`BudgetStats::overdrafts`]; use
    /// [`checkout_async`](BytesPool::checkout_async) to wait for the budget
    /// or [`try_checkout`](BytesPool::try_checkout) to be refused.
    ///
    /// **Empty means length 0: read into it with `read_buf(&mut buf)`, not
    /// `read(&mut buf)`**, which sees no room and returns `Ok(0)` as at end
    /// of stream (or use [`checkout_zeroed`](BytesPool::checkout_zeroed)).
    ///
    /// # Panics
    ///
    /// If `min_capacity` exceeds `isize::MAX`.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let mut buf = pool.checkout(600);
    /// assert!(buf.is_empty() && buf.capacity() == 640);
    /// buf.extend_from_slice(b"hello");
    /// ```
    #[inline(always)]
    pub fn checkout(&self, min_capacity: usize) -> PooledBytes {
        let inner = self.handle.inner();
        let charge = match &inner.budget {
            None => 0,
            Some(budget) => self.overdraft_charge(budget, min_capacity),
        };
        self.serve(min_capacity, charge)
    }

    /// Checks out a buffer whose **length** is `len`, zero-filled, ready
    /// for APIs that write into an initialised `&mut [u8]`:
    /// `AsyncReadExt::read(&mut buf[..])`, `read_exact`, `std::io::Read`.
    /// Otherwise like [`checkout`](BytesPool::checkout) (class size, budget,
    /// overdraft).
    ///
    /// A plain [`checkout`](BytesPool::checkout) is empty: `read` into it
    /// returns `Ok(0)` at once, which looks like end of stream. Prefer
    /// `read_buf(&mut buf)` on a plain checkout: it appends into the spare
    /// capacity and skips the zeroing this method pays (`len` bytes written
    /// per checkout).
    ///
    /// # Panics
    ///
    /// If `len` exceeds `isize::MAX`.
    ///
    /// ```
    /// use tokio::io::AsyncReadExt;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let pool = pool_tokio::BytesPool::new();
    /// let mut buf = pool.checkout_zeroed(1024);
    /// assert_eq!(buf.len(), 1024);
    /// let mut input: &[u8] = b"request";
    /// let n = input.read(&mut buf).await?;
    /// buf.truncate(n);
    /// assert_eq!(buf, "request");
    /// # Ok(())
    /// # }
    /// ```
    pub fn checkout_zeroed(&self, len: usize) -> PooledBytes {
        let mut buf = self.checkout(len);
        buf.resize(len, 0);
        buf
    }

    #[cold]
    fn overdraft_charge(&self, budget: &Budget, n: usize) -> usize {
        match budget
            .charge(&self.handle.inner().pool, n)
            .and_then(|c| budget.try_acquire(self.handle.inner(), c).map(|()| c))
        {
            Ok(charge) => charge,
            Err(TryCheckoutError::TooLarge { requested, limit })
                if limit == isize::MAX as usize =>
            {
                panic!("{}", TryCheckoutError::TooLarge { requested, limit })
            }
            Err(_) => {
                budget.overdraft(n, "checkout");
                0
            }
        }
    }

    /// Serves a checkout whose `charge` the caller has already taken from
    /// the budget (0 for none); the guard releases it.
    #[inline(always)]
    pub(crate) fn serve(&self, n: usize, charge: usize) -> PooledBytes {
        let inner = self.handle.inner();
        let (buf, ticket) = if crate::runtime::keeps_cache(inner) {
            inner.pool.take(n)
        } else {
            // A blocking thread: no batch stays cached here.
            inner.pool.take_uncached(n)
        };
        let mut charge = charge;
        if !ticket.source().is_hit() {
            crate::background::on_miss(inner);
            if let (None, Some(budget)) = (ticket.class_size(), &inner.budget) {
                charge = budget.fit_unpooled(charge, buf.capacity());
            }
        }
        crate::tracing::checkout(&inner.settings, &ticket, n);
        let track = crate::diagnostics::on_checkout(inner, n, ticket.class_size());
        PooledBytes::new(buf, ticket, charge, track, self.handle.clone())
    }

    /// Checks out a buffer, or says why not: the size is impossible, or the
    /// budget is exhausted now (or smaller than the request).
    ///
    /// ```
    /// use pool_tokio::{BytesPool, TryCheckoutError};
    /// let pool = BytesPool::builder().budget(8192).build()?;
    /// assert!(matches!(pool.try_checkout(usize::MAX), Err(TryCheckoutError::TooLarge { .. })));
    /// assert!(matches!(pool.try_checkout(10_000), Err(TryCheckoutError::ExceedsBudget { .. })));
    /// let a = pool.try_checkout(4096)?;
    /// let b = pool.try_checkout(4096)?;
    /// assert!(matches!(pool.try_checkout(1), Err(TryCheckoutError::BudgetExhausted { .. })));
    /// # drop((a, b));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_checkout(&self, min_capacity: usize) -> Result<PooledBytes, TryCheckoutError> {
        let charge = match &self.handle.inner().budget {
            None => {
                check_size(min_capacity)?;
                0
            }
            Some(budget) => {
                let charge = budget.charge(&self.handle.inner().pool, min_capacity)?;
                budget.try_acquire(self.handle.inner(), charge)?;
                charge
            }
        };
        Ok(self.serve(min_capacity, charge))
    }

    /// Checks out a buffer, waiting while the budget is exhausted until
    /// returns free enough bytes (immediately on a pool without a budget).
    /// Waiters are served first come, first served.
    ///
    /// Cancel-safe: dropping the future while it waits loses nothing (bytes
    /// set aside for it go back to the budget and the next waiter is woken).
    ///
    /// Fails only for a request that could never be served
    /// ([`TryCheckoutError::TooLarge`], [`TryCheckoutError::ExceedsBudget`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = pool_tokio::BytesPool::builder().budget(8192).build()?;
    /// let held = pool.checkout_async(8192).await?;
    /// let waiter = tokio::spawn({
    ///     let pool = pool.clone();
    ///     async move { pool.checkout_async(4096).await.map(|b| b.capacity()) }
    /// });
    /// tokio::task::yield_now().await;
    /// assert!(!waiter.is_finished()); // waits for a return...
    /// drop(held); // ...which wakes it
    /// assert_eq!(waiter.await??, 4096);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn checkout_async(
        &self,
        min_capacity: usize,
    ) -> Result<PooledBytes, TryCheckoutError> {
        let charge = match &self.handle.inner().budget {
            None => {
                check_size(min_capacity)?;
                0
            }
            Some(budget) => {
                let charge = budget.charge(&self.handle.inner().pool, min_capacity)?;
                budget.acquire(self.handle.inner(), charge).await;
                charge
            }
        };
        // No await point between taking the permits and building the
        // guard: once the bytes are charged, the guard owns them.
        Ok(self.serve(min_capacity, charge))
    }

    /// Sets `bytes` of the budget aside for one task (see [`Reservation`]),
    /// waiting until the budget has them: first come, first served, and
    /// cancel-safe (a dropped wait gives back what was set aside for it).
    /// Immediate on a pool without a budget. Fails only for a reservation
    /// that could never be served (over the whole budget, or over
    /// `u32::MAX` bytes).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), pool_tokio::TryCheckoutError> {
    /// let pool = pool_tokio::BytesPool::builder().budget(1 << 20).build().unwrap();
    /// let r = pool.reserve(256 << 10).await?;
    /// assert_eq!(pool.budget().unwrap().charged, 256 << 10);
    /// drop(r);
    /// assert_eq!(pool.budget().unwrap().charged, 0);
    /// assert!(pool.reserve(2 << 20).await.is_err()); // could never be served
    /// # Ok(())
    /// # }
    /// ```
    pub async fn reserve(&self, bytes: usize) -> Result<Reservation, TryCheckoutError> {
        let Some(budget) = &self.handle.inner().budget else {
            return Ok(self.unbounded_reservation());
        };
        budget.check_reservation(bytes)?;
        budget.acquire(self.handle.inner(), bytes).await;
        // No await point between taking the bytes and the value that owns them.
        Ok(Reservation {
            pool: self.clone(),
            remaining: bytes,
        })
    }

    /// [`reserve`](Self::reserve) without waiting: fails with
    /// [`TryCheckoutError::BudgetExhausted`] if the budget lacks the bytes now.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::builder().budget(8192).build().unwrap();
    /// let r = pool.try_reserve(8192)?;
    /// assert!(pool.try_reserve(1).is_err());
    /// drop(r);
    /// assert!(pool.try_reserve(1).is_ok());
    /// # Ok::<(), pool_tokio::TryCheckoutError>(())
    /// ```
    pub fn try_reserve(&self, bytes: usize) -> Result<Reservation, TryCheckoutError> {
        let Some(budget) = &self.handle.inner().budget else {
            return Ok(self.unbounded_reservation());
        };
        budget.check_reservation(bytes)?;
        budget.try_acquire(self.handle.inner(), bytes)?;
        Ok(Reservation {
            pool: self.clone(),
            remaining: bytes,
        })
    }

    fn unbounded_reservation(&self) -> Reservation {
        Reservation {
            pool: self.clone(),
            remaining: usize::MAX,
        }
    }

    /// The budget's charge for a checkout of `n` bytes, or why it can never
    /// be served; `Ok(0)` on a pool without a budget.
    pub(crate) fn budget_charge_for(&self, n: usize) -> Result<usize, TryCheckoutError> {
        match &self.handle.inner().budget {
            None => check_size(n).map(|()| 0),
            Some(budget) => budget.charge(&self.handle.inner().pool, n),
        }
    }

    /// Takes `charge` bytes from the budget now if it has them (true on a
    /// pool without one).
    pub(crate) fn try_take_budget(&self, charge: usize) -> bool {
        match &self.handle.inner().budget {
            None => true,
            Some(budget) => budget.try_acquire(self.handle.inner(), charge).is_ok(),
        }
    }

    /// Waits until the budget has `charge` bytes and takes them.
    /// Cancel-safe: bytes set aside for a dropped waiter go back.
    pub(crate) async fn take_budget(&self, charge: usize) {
        if let Some(budget) = &self.handle.inner().budget {
            budget.acquire(self.handle.inner(), charge).await;
        }
    }

    /// Charges `bytes` of growth of a buffer already checked out (an
    /// overdraft, counted and traced at WARN, if the budget lacks them);
    /// returns the bytes charged, to be given back with
    /// [`release_budget`](Self::release_budget).
    pub(crate) fn charge_growth(&self, bytes: usize) -> usize {
        match &self.handle.inner().budget {
            Some(budget) if bytes > 0 => budget.charge_growth(self.handle.inner(), bytes),
            _ => 0,
        }
    }

    /// Gives `bytes` back to the budget.
    pub(crate) fn release_budget(&self, bytes: usize) {
        if let (Some(budget), true) = (&self.handle.inner().budget, bytes > 0) {
            budget.release(bytes);
        }
    }

    /// A snapshot of the pool's counters (see [`pool_core::Stats`]; its
    /// `Display` is a table).
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// drop(pool.checkout(100));
    /// drop(pool.checkout(100));
    /// let stats = pool.stats();
    /// assert_eq!((stats.checkouts(), stats.hits(), stats.outstanding()), (2, 1, 0));
    /// println!("{stats}");
    /// ```
    pub fn stats(&self) -> Stats {
        let inner = self.handle.inner();
        crate::pinned::settle(inner);
        inner.pool.stats()
    }

    /// The budget's state, or `None` for a pool without one.
    ///
    /// ```
    /// assert!(pool_tokio::BytesPool::new().budget().is_none());
    /// ```
    pub fn budget(&self) -> Option<BudgetStats> {
        let inner = self.handle.inner();
        crate::pinned::settle(inner);
        inner.budget.as_ref().map(|b| BudgetStats {
            limit: b.limit,
            charged: b.limit - b.semaphore.available_permits().min(b.limit),
            overdrafts: b.overdrafts.load(Relaxed),
            held_shared: b.pinned.charged(),
        })
    }

    /// The settings in force.
    ///
    /// ```
    /// assert_eq!(pool_tokio::BytesPool::new().config(), pool_core::BufferConfig::new());
    /// ```
    pub fn config(&self) -> BufferConfig {
        self.handle.inner().pool.config()
    }

    /// The pool's name ([`Builder::name`]; `"default"` unless set).
    ///
    /// ```
    /// assert_eq!(pool_tokio::BytesPool::new().name(), "default");
    /// ```
    pub fn name(&self) -> &str {
        &self.handle.inner().settings.name
    }

    /// The bytes idle decay leaves retained ([`Builder::idle_floor`]).
    ///
    /// ```
    /// assert_eq!(pool_tokio::BytesPool::new().idle_floor(), 0);
    /// ```
    pub fn idle_floor(&self) -> usize {
        self.handle.inner().settings.idle_floor
    }

    /// Whether blocking threads keep a per-thread cache
    /// ([`Builder::blocking_cache`]).
    ///
    /// ```
    /// assert!(!pool_tokio::BytesPool::new().blocking_cache());
    /// ```
    pub fn blocking_cache(&self) -> bool {
        self.handle.inner().settings.blocking_cache
    }

    /// Changes the settings of a live pool (see
    /// [`BufferPool::reconfigure`]). On a pool with a budget, the smallest
    /// class must still fit in it. On error nothing changes.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// pool.reconfigure(pool.config().min_class(4096))?;
    /// assert_eq!(pool.checkout(1).capacity(), 4096);
    /// # Ok::<(), pool_tokio::BuildError>(())
    /// ```
    pub fn reconfigure(&self, config: BufferConfig) -> Result<(), BuildError> {
        let inner = self.handle.inner();
        if let Some(budget) = &inner.budget {
            check_budget(budget.limit, &config)?;
        }
        inner.pool.reconfigure(config)?;
        Ok(())
    }

    /// Drops every buffer the pool keeps (see [`BufferPool::trim`]);
    /// returns the bytes freed from the depot.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// pool.prewarm(4096, 4);
    /// assert_eq!(pool.trim(), 4 * 4096);
    /// ```
    pub fn trim(&self) -> usize {
        let _span = crate::tracing::maintenance_span(self.name(), "trim");
        self.handle.inner().pool.trim()
    }

    /// Idle decay (see [`BufferPool::maintain`]): cheap; frees what stayed
    /// unused for a whole decay interval. Returns true if a decay tick ran.
    ///
    /// ```
    /// pool_tokio::BytesPool::new().maintain();
    /// ```
    pub fn maintain(&self) -> bool {
        self.handle.inner().pool.maintain()
    }

    /// Hands this thread's cache to the depot (see
    /// [`BufferPool::flush_thread`]).
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// drop(pool.checkout(4096));
    /// pool.flush_thread();
    /// assert_eq!(pool.stats().class(4096).unwrap().retained_depot, 1);
    /// ```
    pub fn flush_thread(&self) {
        self.handle.inner().pool.flush_thread();
    }

    /// Creates `count` buffers of the class serving `size` bytes in the
    /// depot, so the first checkouts do not allocate; returns how
    /// many were stored.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// assert_eq!(pool.prewarm(8192, 16), 16);
    /// drop(pool.checkout(8192));
    /// assert_eq!(pool.stats().misses(), 0);
    /// ```
    pub fn prewarm(&self, size: usize, count: usize) -> usize {
        self.handle.inner().pool.prewarm_class(size, count)
    }

    /// The underlying pool-core pool, for anything not wrapped here.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// assert_eq!(pool.buffer_pool().stats(), pool.stats());
    /// ```
    pub fn buffer_pool(&self) -> &BufferPool<BytesMut> {
        &self.handle.inner().pool
    }
}
