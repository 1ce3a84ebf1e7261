//! `BytesPool`: the pool handle, its builder, and the byte budget.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use bytes::BytesMut;
use pool_core::{BufferConfig, BufferPool, Stats};
use tokio::sync::{Semaphore, TryAcquireError};

use crate::error::{BuildError, TryCheckoutError};
use crate::pooled::PooledBytes;

/// The state behind every handle of one pool.
pub(crate) struct Inner {
    pub(crate) pool: BufferPool<BytesMut>,
    pub(crate) budget: Option<Budget>,
    /// Runtime, naming and tracing settings (`Builder::name` and friends).
    pub(crate) settings: Settings,
    /// The runtime the decay thread reaches idle workers through.
    pub(crate) runtime: crate::runtime::RuntimeSeen,
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
            runtime: crate::runtime::RuntimeSeen::default(),
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

/// An optional bound on the bytes checked out and not yet returned.
///
/// Design: a `tokio::sync::Semaphore` whose permits are bytes. A checkout
/// takes as many permits as its class size and `forget`s them; the return
/// adds them back. The semaphore is fair (first come, first served, so a
/// large request is not starved by small ones) and its `acquire_many` is
/// cancel-safe: a waiter dropped before it completes gives back any permits
/// already assigned to it and the next waiter is woken. Pools without a
/// budget never touch it.
pub(crate) struct Budget {
    limit: usize,
    semaphore: Semaphore,
    overdrafts: AtomicU64,
    /// Returned buffers whose memory split-off parts still use: still
    /// charged.
    pub(crate) pinned: crate::pinned::Pinned,
    /// The rate-limited overdraft WARN, with the pool's name.
    warn: crate::tracing::OverdraftWarn,
}

impl Budget {
    fn new(
        limit: usize,
        config: &BufferConfig,
        pool: std::borrow::Cow<'static, str>,
    ) -> Result<Budget, BuildError> {
        check_budget(limit, config)?;
        Ok(Budget {
            limit,
            semaphore: Semaphore::new(limit),
            overdrafts: AtomicU64::new(0),
            pinned: crate::pinned::Pinned::default(),
            warn: crate::tracing::OverdraftWarn::new(pool),
        })
    }

    /// The bytes a request of `n` charges: its class size under the
    /// settings in force, or `n` itself above the largest class. A guard
    /// releases exactly what it was charged, so a reconfiguration between
    /// the charge and the checkout can mis-size one charge, never unbalance
    /// the budget.
    fn charge(&self, pool: &BufferPool<BytesMut>, n: usize) -> Result<usize, TryCheckoutError> {
        check_size(n)?;
        let charge = pool.class_size_for(n).unwrap_or(n);
        if charge > self.limit {
            return Err(TryCheckoutError::ExceedsBudget {
                charge,
                budget: self.limit,
            });
        }
        if charge > u32::MAX as usize {
            return Err(TryCheckoutError::TooLarge {
                requested: n,
                limit: u32::MAX as usize,
            });
        }
        Ok(charge)
    }

    /// Takes `charge` bytes if the budget has them now, after settling
    /// held buffers whose parts have dropped if it does not.
    fn try_acquire(&self, inner: &Inner, charge: usize) -> Result<(), TryCheckoutError> {
        match self.try_take(charge) {
            Err(_) if crate::pinned::settle(inner) > 0 => self.try_take(charge),
            taken => taken,
        }
    }

    fn try_take(&self, charge: usize) -> Result<(), TryCheckoutError> {
        // `charge` fits in u32: checked by `charge`.
        match self.semaphore.try_acquire_many(charge as u32) {
            Ok(permit) => {
                permit.forget();
                Ok(())
            }
            Err(TryAcquireError::NoPermits) => Err(TryCheckoutError::BudgetExhausted {
                charge,
                available: self.semaphore.available_permits(),
                budget: self.limit,
            }),
            Err(TryAcquireError::Closed) => unreachable!("the budget semaphore is never closed"),
        }
    }

    /// Waits for `charge` bytes, first come first served. Held buffers are
    /// settled before waiting; while it waits, the settle thread returns
    /// their charge as their parts drop (see `pinned`).
    async fn acquire(&self, inner: &Inner, charge: usize) {
        if self.try_acquire(inner, charge).is_ok() {
            return;
        }
        match self.semaphore.acquire_many(charge as u32).await {
            Ok(permit) => permit.forget(),
            Err(_) => unreachable!("the budget semaphore is never closed"),
        }
    }

    /// Whether a reservation of `bytes` could ever be served.
    fn check_reservation(&self, bytes: usize) -> Result<(), TryCheckoutError> {
        if bytes > self.limit {
            return Err(TryCheckoutError::ExceedsBudget {
                charge: bytes,
                budget: self.limit,
            });
        }
        if bytes > u32::MAX as usize {
            return Err(TryCheckoutError::TooLarge {
                requested: bytes,
                limit: u32::MAX as usize,
            });
        }
        Ok(())
    }

    /// Counts an overdraft of `bytes` and says so at WARN level, at most
    /// once a second per pool (`crate::tracing::OverdraftWarn`).
    #[cold]
    fn overdraft(&self, bytes: usize, what: &'static str) {
        let overdrafts = self.overdrafts.fetch_add(1, Relaxed) + 1;
        self.warn.overdraft(
            bytes,
            what,
            overdrafts,
            self.limit,
            self.semaphore.available_permits(),
        );
    }

    /// Charges `bytes` of growth if the budget has them; otherwise counts
    /// an overdraft and charges nothing. Returns the bytes charged.
    pub(crate) fn charge_growth(&self, inner: &Inner, bytes: usize) -> usize {
        let charge = bytes.min(u32::MAX as usize);
        match self.try_acquire(inner, charge) {
            Ok(()) => charge,
            Err(_) => {
                self.overdraft(bytes, "growth");
                0
            }
        }
    }

    #[inline]
    pub(crate) fn release(&self, charge: usize) {
        self.semaphore.add_permits(charge);
    }
}

fn check_budget(limit: usize, config: &BufferConfig) -> Result<(), BuildError> {
    let min = config.get_min_class();
    if limit < min || limit > Semaphore::MAX_PERMITS {
        return Err(BuildError::Budget {
            budget: limit,
            expected: format!(
                "from min_class ({min}, so that one buffer fits) to {} bytes",
                Semaphore::MAX_PERMITS
            ),
        });
    }
    Ok(())
}

fn check_size(n: usize) -> Result<(), TryCheckoutError> {
    if n > isize::MAX as usize {
        Err(TryCheckoutError::TooLarge {
            requested: n,
            limit: isize::MAX as usize,
        })
    } else {
        Ok(())
    }
}

/// A snapshot of a pool's byte budget.
///
/// ```
/// let pool = pool_tokio::BytesPool::builder().budget(1 << 20).build()?;
/// let held = pool.checkout(3000); // charges its 3 KiB class
/// let budget = pool.budget().unwrap();
/// assert_eq!((budget.limit, budget.charged, budget.available()), (1 << 20, 3072, (1 << 20) - 3072));
/// # drop(held);
/// # Ok::<(), pool_tokio::BuildError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BudgetStats {
    /// The budget: most bytes checked out at once.
    pub limit: usize,
    /// Bytes charged by buffers checked out now, and by buffers whose
    /// memory is still live because of a checkout: a guard returned while a
    /// part split off it (`split_to`, `copy_to_bytes`, a codec's frame) is
    /// alive keeps its charge until the last part drops (see
    /// [`held_shared`](Self::held_shared)); a frozen buffer keeps it until
    /// its last `Bytes` clone drops. What leaves the budget: a
    /// [`detach`](crate::PooledBytes::detach)ed buffer (the caller's own
    /// from then on) and growth of a plain guard past its class (an
    /// allocation of the caller's: check out the size you need; framed
    /// values do charge their buffers' growth).
    pub charged: usize,
    /// Overdrafts: checkouts by [`BytesPool::checkout`] (and by the sync
    /// framed and codec paths built on it) served past an exhausted budget,
    /// uncharged, because that method never waits nor fails; and buffer
    /// growth inside framed values the budget could not cover. Each one is
    /// counted here; the first is also a WARN-level event (target
    /// `pool_tokio`, `outcome = "overdraft"`) with the `pool`, the bytes
    /// and what overdrew (`checkout` or `growth`), later ones at most one
    /// WARN a second per pool, whose `suppressed` field counts the
    /// overdrafts since the previous WARN.
    pub overdrafts: u64,
    /// Of `charged`, the bytes of buffers that were returned while a part
    /// split off them (`split_to`, `copy_to_bytes`, a codec's frame) was
    /// still alive: their memory is live, so their charge stays until the
    /// last part drops.
    ///
    /// ```
    /// use bytes::Buf;
    ///
    /// let pool = pool_tokio::BytesPool::builder().budget(64 << 10).build()?;
    /// let mut buf = pool.try_checkout(16 << 10).unwrap();
    /// buf.extend_from_slice(&[7; 1000]);
    /// let part = buf.copy_to_bytes(1000); // shares the buffer's memory
    /// drop(buf);
    /// assert_eq!(pool.budget().unwrap().charged, 16 << 10);
    /// assert_eq!(pool.budget().unwrap().held_shared, 16 << 10);
    /// drop(part);
    /// assert_eq!(pool.budget().unwrap().charged, 0);
    /// # Ok::<(), pool_tokio::BuildError>(())
    /// ```
    pub held_shared: usize,
}

impl BudgetStats {
    /// Bytes that can be checked out now without waiting.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::builder().budget(8192).build()?;
    /// assert_eq!(pool.budget().unwrap().available(), 8192);
    /// # Ok::<(), pool_tokio::BuildError>(())
    /// ```
    pub fn available(&self) -> usize {
        self.limit - self.charged
    }
}

/// Bytes of a pool's budget set aside for one task, from
/// [`BytesPool::reserve`]: checkouts from it draw on the reserved bytes and
/// never wait, so a task that reserves its worst case up front cannot be
/// caught in the hold-and-wait deadlock (see [`BytesPool`]'s budget notes).
///
/// A buffer checked out from a reservation carries its charge like any
/// other and gives it back to the pool's budget when it is dropped (not to
/// the reservation: a reservation only shrinks). What is left goes back to
/// the budget when the reservation drops. On a pool without a budget a
/// reservation is free and serves any checkout.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), pool_tokio::TryCheckoutError> {
/// let pool = pool_tokio::BytesPool::builder().budget(64 << 10).build().unwrap();
/// // A request that needs a 16 KiB frame and a 4 KiB reply: reserve both.
/// let mut reservation = pool.reserve(20 << 10).await?;
/// let frame = reservation.checkout(16 << 10).expect("reserved");
/// let reply = reservation.checkout(4096).expect("reserved");
/// assert_eq!(reservation.remaining(), 0);
/// assert!(reservation.checkout(1).is_none(), "beyond the reservation");
/// drop((frame, reply, reservation));
/// assert_eq!(pool.budget().unwrap().charged, 0);
/// # Ok(())
/// # }
/// ```
#[must_use = "a reservation holds budget until it is dropped"]
pub struct Reservation {
    pool: BytesPool,
    /// Reserved bytes not yet drawn (`usize::MAX` on a pool without a
    /// budget).
    remaining: usize,
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("remaining", &self.remaining)
            .finish()
    }
}

impl Reservation {
    /// Reserved bytes not yet drawn (`usize::MAX` on a pool without a
    /// budget).
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::builder().budget(1 << 20).build().unwrap();
    /// let r = pool.try_reserve(8192)?;
    /// assert_eq!(r.remaining(), 8192);
    /// # Ok::<(), pool_tokio::TryCheckoutError>(())
    /// ```
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// Checks out a buffer of at least `min_capacity` bytes charged to the
    /// reservation; `None` if what is left of the reservation does not
    /// cover its class size (reserve more, or check out from the pool).
    /// Never waits.
    ///
    /// # Panics
    ///
    /// If `min_capacity` exceeds `isize::MAX`.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::builder().budget(1 << 20).build().unwrap();
    /// let mut r = pool.try_reserve(4096)?;
    /// assert!(r.checkout(5000).is_none()); // a 5 KiB class
    /// assert_eq!(r.checkout(3000).unwrap().budget_charge(), 3072);
    /// # Ok::<(), pool_tokio::TryCheckoutError>(())
    /// ```
    pub fn checkout(&mut self, min_capacity: usize) -> Option<PooledBytes> {
        let charge = match self.pool.budget_charge_for(min_capacity) {
            Ok(charge) => charge,
            Err(TryCheckoutError::TooLarge { requested, limit })
                if limit == isize::MAX as usize =>
            {
                panic!("{}", TryCheckoutError::TooLarge { requested, limit })
            }
            Err(_) => return None,
        };
        if self.pool.handle.inner().budget.is_none() {
            return Some(self.pool.serve(min_capacity, 0));
        }
        if charge > self.remaining {
            return None;
        }
        self.remaining -= charge;
        Some(self.pool.serve(min_capacity, charge))
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.pool.handle.inner().budget.is_some() {
            self.pool.release_budget(self.remaining);
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
        Builder {
            config: BufferConfig::new(),
            budget: None,
            settings: Settings::default(),
            #[cfg(feature = "diagnostics")]
            diagnostics: None,
        }
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
        if !ticket.source().is_hit() {
            crate::runtime::on_miss(inner);
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

/// Builds a [`BytesPool`]: pool-core settings and an optional byte budget.
///
/// ```
/// use pool_core::BufferConfig;
/// let pool = pool_tokio::BytesPool::builder()
///     .config(BufferConfig::new().max_class(256 << 10))
///     .budget(32 << 20)
///     .build()?;
/// assert_eq!(pool.config().get_max_class(), 256 << 10);
/// # Ok::<(), pool_tokio::BuildError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct Builder {
    config: BufferConfig,
    budget: Option<usize>,
    settings: Settings,
    #[cfg(feature = "diagnostics")]
    diagnostics: Option<crate::Diagnostics>,
}

impl Builder {
    /// The pool-core settings: classes, per-thread and global bounds, decay
    /// (default [`BufferConfig::new`]).
    ///
    /// ```
    /// let b = pool_tokio::BytesPool::builder().config(pool_core::BufferConfig::new().min_class(64));
    /// assert_eq!(b.build()?.checkout(1).capacity(), 64);
    /// # Ok::<(), pool_tokio::BuildError>(())
    /// ```
    pub fn config(mut self, config: BufferConfig) -> Self {
        self.config = config;
        self
    }

    /// A bound on the bytes checked out at once (each buffer charges its
    /// class size; an unpooled one its requested size), from `min_class`
    /// to `Semaphore::MAX_PERMITS`. Default: none.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::builder().budget(1 << 20).build()?;
    /// assert_eq!(pool.budget().unwrap().limit, 1 << 20);
    /// # Ok::<(), pool_tokio::BuildError>(())
    /// ```
    pub fn budget(mut self, bytes: usize) -> Self {
        self.budget = Some(bytes);
        self
    }

    /// The pool's name, carried by its statistics reports, trace events
    /// (field `pool`) and metrics (label `pool`). Default
    /// [`DEFAULT_NAME`] (`"default"`, the
    /// [default pool](crate::default_pool)'s name).
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::builder().name("frames").build()?;
    /// assert_eq!(pool.name(), "frames");
    /// assert_eq!(pool_tokio::default_pool().name(), "default");
    /// # Ok::<(), pool_tokio::BuildError>(())
    /// ```
    pub fn name(mut self, name: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        self.settings.name = name.into();
        self
    }

    /// Bytes the idle decay that this crate drives (the
    /// [park hook](BytesPool::on_thread_park) and
    /// [`spawn_maintenance`](BytesPool::spawn_maintenance)) leaves retained:
    /// a decay step runs only while the pool retains more than this.
    /// Default 0: an idle pool gives back everything. One step frees
    /// whole depot batches untaken for a whole interval, so it can end
    /// below the floor by up to one step's worth.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::builder().idle_floor(1 << 20).build()?;
    /// assert_eq!(pool.idle_floor(), 1 << 20);
    /// # Ok::<(), pool_tokio::BuildError>(())
    /// ```
    pub fn idle_floor(mut self, bytes: usize) -> Self {
        self.settings.idle_floor = bytes;
        self
    }

    /// Whether the blocking threads (`spawn_blocking`) of a runtime built
    /// with this pool's hooks keep a per-thread cache. Default `false`: a
    /// buffer returned on a blocking thread goes on to the depot at once,
    /// and a checkout there takes one buffer out of a depot batch and puts
    /// the rest of the batch straight back
    /// ([`BufferPool::take_uncached`](pool_core::BufferPool::take_uncached)),
    /// so a blocking thread holds nothing between its checkouts and memory
    /// cached per thread is bounded by the workers, not by up to 512
    /// blocking threads (Netty caches only for its event-loop threads
    /// too). Workers always cache. The price, on blocking threads only: each
    /// return flushes the thread's cache to the depot and each checkout
    /// served by the depot pushes the rest of its batch back (two depot
    /// round trips and a batch vector per checkout + return: 404 ns against
    /// 33 ns cached for 4 KiB in `examples/idle_memory.rs` on a 2-core VM,
    /// measured before checkouts stopped keeping the batch).
    /// See [`on_thread_start`](BytesPool::on_thread_start).
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::builder().blocking_cache(true).build()?;
    /// assert!(pool.blocking_cache());
    /// # Ok::<(), pool_tokio::BuildError>(())
    /// ```
    pub fn blocking_cache(mut self, cache: bool) -> Self {
        self.settings.blocking_cache = cache;
        self
    }

    /// Whether every checkout served from the pool (a hit) emits a `trace`
    /// event, with the `tracing` feature. Default `false`: only misses,
    /// discards and overdrafts are traced, each with its reason (one event
    /// per miss and discard; overdrafts at most one WARN a second).
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::builder().trace_hits(true).build()?;
    /// # drop(pool);
    /// # Ok::<(), pool_tokio::BuildError>(())
    /// ```
    pub fn trace_hits(mut self, trace: bool) -> Self {
        self.settings.trace_hits = trace;
        self
    }

    /// Whether a background thread drives this pool's idle decay, so that
    /// it needs no hooks and no task (default `false`; the
    /// [default pool](crate::default_pool) has one). The thread
    /// (`pool-tokio-decay`, asleep between steps) runs
    /// [`BytesPool::decay_to_floor`] four times per decay interval, and
    /// ends when the last handle of the pool is dropped.
    ///
    /// It also reaches what idle workers cache, which only their own
    /// threads can touch: when the pool saw no checkout for a whole step
    /// and thread caches still hold more than the
    /// [idle floor](Builder::idle_floor), it spawns one short task per
    /// worker on the last tokio runtime that allocated for the pool; each
    /// hands its worker's cache to the depot and waits at most 5 ms for the
    /// others, so that work stealing spreads them over distinct workers.
    /// After five tries that miss a worker it waits for new traffic.
    /// With the park hook installed ([`BytesPool::install`]) caches are
    /// already empty when a worker idles and this never runs; the park
    /// hook's own idle thread (see [`BytesPool::thread_parking`]) is not
    /// started for a pool with a decay thread.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::builder().decay_thread(true).build()?;
    /// # drop(pool);
    /// # Ok::<(), pool_tokio::BuildError>(())
    /// ```
    pub fn decay_thread(mut self, on: bool) -> Self {
        self.settings.decay_thread = on;
        self
    }

    /// Builds the pool; fails, saying which setting and what to change, if
    /// one is out of range.
    ///
    /// ```
    /// let err = pool_tokio::BytesPool::builder().budget(100).build().unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     format!(
    ///         "invalid pool setting `budget` = 100: expected from min_class (512, so that one \
    ///          buffer fits) to {} bytes",
    ///         tokio::sync::Semaphore::MAX_PERMITS
    ///     )
    /// );
    /// ```
    pub fn build(self) -> Result<BytesPool, BuildError> {
        #[allow(unused_mut)] // set only with the `diagnostics` feature
        let mut inner = Inner::with_settings(self.config, self.budget, self.settings)?;
        #[cfg(feature = "diagnostics")]
        {
            inner.diagnostics = self.diagnostics.map(crate::diagnostics::Registry::new);
        }
        let pool = BytesPool {
            handle: Handle::Shared(Arc::new(inner)),
        };
        if pool.handle.inner().settings.decay_thread {
            crate::runtime::start_decay_thread(&pool);
        }
        Ok(pool)
    }

    /// Records where and when each buffer of this pool is checked out until
    /// it comes back, for [`BytesPool::held_longer_than`] and
    /// [`BytesPool::assert_all_returned`] (default: off). Only with the
    /// `diagnostics` feature.
    ///
    /// ```
    /// use pool_tokio::{BytesPool, Diagnostics};
    /// let pool = BytesPool::builder().diagnostics(Diagnostics::new()).build()?;
    /// assert!(pool.diagnostics_enabled());
    /// # Ok::<(), pool_tokio::BuildError>(())
    /// ```
    #[cfg(feature = "diagnostics")]
    pub fn diagnostics(mut self, settings: crate::Diagnostics) -> Self {
        self.diagnostics = Some(settings);
        self
    }
}
