//! The bottom of every path: the state behind every handle (`Inner`) and
//! `Handle` (`&'static` or `Arc`); `BytesPool` with `checkout` and `serve`,
//! which every checkout ends in; the guard `PooledBytes` with its `Drop`.
//!
//! The whole return path is [`give_back`] in this file: the guard's
//! `Drop`, a frozen buffer's last `Bytes` clone and a taken-apart `Framed`
//! all end there, except the guard's common return (uncharged, untracked,
//! on a thread that caches, kept by pool-core's fast path), which is one
//! `BufferPool::try_give_back_fast_in_place` on the buffer where it lies
//! (and, for a built pool, its handle given up). Budgeted buffers that
//! split-off parts still share are held aside (`pinned.rs`) and settled
//! from here (`settle`).
//!
//! The guard's API is in `pooled.rs`, the budgeted paths in `budget.rs`,
//! the builder in `builder.rs`: they import this file. This file imports
//! only leaf modules, and calls the observers (diagnostics, tracing, the
//! blocking-thread mark, the decay thread's runtime capture) with the
//! fields they need, never with `Inner`.

use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use crossbeam_utils::CachePadded;
use pool_core::{BufferConfig, BufferPool, Stats, Ticket};

use crate::background::seen::{on_miss, RuntimeSeen};
use crate::budget::semaphore::{Budget, BudgetStats};
use crate::diagnostics::records::{self as diagnostics, Records, Track};
use crate::error::{BuildError, TryCheckoutError};
use crate::pinned::Hold;
use crate::runtime::mark::{after_return, keeps_cache};
use crate::runtime::stash;
use crate::settings::Settings;

mod handles;
mod upkeep;

/// The state behind every handle of one pool.
pub(crate) struct Inner {
    pub(crate) pool: BufferPool<BytesMut>,
    pub(crate) budget: Option<Budget>,
    /// Runtime, naming and tracing settings (`Builder::name` and friends).
    pub(crate) settings: Settings,
    /// The runtime the decay thread reaches idle workers through.
    pub(crate) runtime: RuntimeSeen,
    /// Leak diagnostics, for pools built with `Builder::diagnostics`
    /// (nothing without the `diagnostics` feature).
    pub(crate) diagnostics: Records,
    /// What `export_metrics` last added to each series.
    #[cfg(feature = "metrics")]
    pub(crate) exported: crate::metrics::series::Exported,
    /// Live `BytesPool` handles a user holds, of an `Arc` pool (guards,
    /// the threads' stashes and the background threads' own handles not
    /// counted; a leaked handle counts for good). At 0 the pool is closed:
    /// a returned guard gives its reference up at once instead of stashing
    /// it, and once no buffer is out the background threads end. On a cache
    /// line of its own: every return reads it, and a handle's clone or drop
    /// writes it.
    pub(crate) handles: CachePadded<AtomicUsize>,
}

impl Inner {
    /// Whether a `BytesPool` handle of this pool is alive.
    #[inline]
    pub(crate) fn is_open(&self) -> bool {
        self.handles.load(Ordering::Relaxed) != 0
    }

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
            runtime: RuntimeSeen::default(),
            diagnostics: Records::default(),
            #[cfg(feature = "metrics")]
            exported: Default::default(),
            handles: CachePadded::new(AtomicUsize::new(0)),
        })
    }
}

#[cfg(feature = "metrics")]
impl Drop for Inner {
    /// A pool exported to metrics is exported a last time, and its share
    /// leaves the gauges (`metrics::series`).
    fn drop(&mut self) {
        self.exported.retire(|| {
            let budget = self.budget.as_ref().map(|b| b.stats()).map(|b| {
                crate::metrics::series::BudgetFigures::new(b.limit, b.charged, b.overdrafts)
            });
            (self.pool.stats(), budget)
        });
    }
}

/// How a guard reaches its pool: a plain reference for pools that live for
/// the whole program (no reference count at all), an `Arc`
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

    /// Gives a guard's handle up: an open `Arc` pool's strong count into
    /// this thread's stash (`runtime::stash::give_up`), else dropped (a
    /// closed pool's also empties the stash of it).
    #[inline]
    pub(crate) fn give_up(self) {
        if let Handle::Shared(arc) = self {
            let open = arc.is_open();
            stash::give_up(arc, open);
        }
    }

    /// A clone for a guard checked out on this thread: an `Arc` pool's
    /// reference comes from this thread's stash when it holds one (a guard
    /// returned here gave it up), so that a checkout and a return on one
    /// thread touch no shared count (`runtime::stash`).
    #[inline(always)]
    pub(crate) fn for_guard(&self) -> Handle {
        match self {
            Handle::Static(inner) => Handle::Static(inner),
            Handle::Shared(arc) => Handle::Shared(stash::acquire(arc)),
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
/// A pool built with [`Builder::budget`](crate::Builder::budget) bounds the
/// bytes checked out at once: every buffer charges the bytes it lends, its
/// class size (an unpooled one its size), until it comes back, on every
/// path. A miss is served by a larger class's idle buffer
/// ([`BufferConfig::fallback_classes`]) only if the budget has that
/// buffer's extra bytes at once, which it then charges too; else by a
/// buffer of the request's class. A checkout that loses that headroom to
/// another thread meanwhile, or whose class a `reconfigure` raised after
/// it was charged, overdraws the difference instead; an overdraft,
/// uncharged, is always of the request's class; every overdraft is
/// counted in [`BudgetStats::overdrafts`]. The paths: [`checkout`](BytesPool::checkout)
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
///   its buffers out of the [`Reservation`](crate::Reservation), which never waits;
/// - drop (or finish with) each frame before asking for the next, so a
///   waiter holds at most its read buffer (8 KiB for a `FrameReader`), and
///   give the budget room for every connection's read buffer plus the
///   largest frame's class: below that, readers that hold only their read
///   buffers can still wait on each other (two readers of 12 KB frames on
///   a 24 KiB budget do);
/// - admit at most `budget / per-connection worst case` connections at
///   once (a `tokio::sync::Semaphore` of connection slots in front of the
///   budget), so those admitted can always be served;
/// - use [`try_checkout`](BytesPool::try_checkout) where holding is
///   unavoidable and shed load (close the connection, reply "busy") on
///   [`TryCheckoutError::BudgetExhausted`].
///
/// Guards of a pool built here hold an `Arc` of it, but a checkout and a
/// return on one thread touch no shared count: a returned guard leaves its
/// reference in a per-thread stash (at most 64 of one pool per thread),
/// and the next checkout on that thread takes it from there. A guard
/// returned on another thread than the one that checked it out costs one
/// atomic operation at its checkout and one at its return (as every guard
/// did before the stash), as does one returned while that thread's stash
/// holds another pool's references.
///
/// What a stash holds keeps the pool allocated. Once the last handle
/// (`BytesPool`) is dropped the pool is closed: a guard returned after
/// that gives its reference up at once, with the returning thread's stash
/// of the pool, and once no buffer of it is out either its background
/// threads end. A thread's stash is also given up at thread exit, by
/// [`flush_thread`](BytesPool::flush_thread), by the park and stop hooks
/// of any pool (whatever pool the stash holds), when a guard of another
/// built pool is returned there, and by the drop of the pool's last
/// handle there. So a closed pool stays allocated, with the buffers it
/// keeps, only while a thread that returned its guards before it closed
/// does none of these (a thread outside a runtime with the hooks that uses
/// no other built pool).
/// [`leak`](BytesPool::leak) makes a pool that lives for the rest of the
/// program and whose guards hold a plain reference, like the
/// [default pool](crate::default_pool).
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
pub struct BytesPool {
    pub(crate) handle: Handle,
    /// Counted in `Inner::handles` (every handle a user holds); the
    /// background threads' own are not, so that they never keep a pool
    /// open (`BytesPool::uncounted`).
    pub(crate) counted: bool,
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

impl BytesPool {
    pub(crate) fn from_static(inner: &'static Inner) -> Self {
        BytesPool {
            handle: Handle::Static(inner),
            counted: false,
        }
    }

    /// Checks out an empty buffer of at least `min_capacity` bytes (its
    /// class size, or on a miss a larger idle buffer: see
    /// [`BufferConfig::fallback_classes`] and the budget notes on
    /// [`BytesPool`]). Never waits and
    /// never fails: on a pool whose budget is exhausted it is served anyway, uncharged, and counted in
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
        self.serve(min_capacity, self.sync_charge(min_capacity))
    }

    /// The charge of a checkout that cannot wait nor fail: 0 without a
    /// budget, else its charge or an overdraft (out of line).
    #[inline(always)]
    pub(crate) fn sync_charge(&self, n: usize) -> usize {
        match &self.handle.inner().budget {
            None => 0,
            Some(budget) => self.overdraft_charge(budget, n),
        }
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

    /// Charges a checkout of `n` to `budget`, or overdraws it.
    ///
    /// Out of line: only pools with a budget come here, and the charge
    /// (size checks, the semaphore, settling held buffers, the overdraft's
    /// count and WARN) would otherwise be inlined into every `checkout`.
    #[cold]
    fn overdraft_charge(&self, budget: &Budget, n: usize) -> usize {
        let inner = self.handle.inner();
        match budget
            .charge(&inner.pool, n)
            .and_then(|c| budget.try_acquire(c, || settle(inner)).map(|()| c))
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
        self.serve_within(n, charge, usize::MAX)
    }

    /// [`serve`](Self::serve), served by a larger class's idle buffer only
    /// up to `most` bytes (0: never).
    #[inline(always)]
    pub(crate) fn serve_within(&self, n: usize, charge: usize, most: usize) -> PooledBytes {
        let inner = self.handle.inner();
        // A charged checkout may be served by a larger class's idle buffer
        // only as far as the budget's headroom now reaches (a hint: `fit`
        // below decides); an overdraft (uncharged) by none; a checkout of
        // a pool without a budget, by any class that may serve it.
        let most = match &inner.budget {
            Some(budget) if charge != 0 => budget.reach(charge).min(most),
            Some(_) => 0,
            None => most,
        };
        let (buf, ticket) = if keeps_cache(inner.settings.blocking_cache) {
            inner.pool.take_within(n, most)
        } else {
            // A blocking thread: no batch stays cached here.
            inner.pool.take_uncached_within(n, most)
        };
        if !ticket.source().is_hit() {
            on_miss(inner.settings.decay_thread, &inner.runtime);
        }
        let charge = fitted(&inner.budget, charge, &ticket, &buf);
        crate::tracing::checkout(&inner.settings, &ticket, n);
        let track = diagnostics::on_checkout(&inner.diagnostics, n, ticket.class_size());
        PooledBytes::new(buf, ticket, charge, track, self.handle.for_guard())
    }

    /// Charges `guard`, served uncharged (`serve_within(n, 0, 0)`), as
    /// [`checkout_exact`](Self::checkout_exact) would have charged it: its
    /// class's bytes if the budget has them now, else an overdraft
    /// (counted, uncharged).
    pub(crate) fn charge_served(&self, guard: &mut PooledBytes, n: usize) {
        let budget = &self.handle.inner().budget;
        let Some(b) = budget else {
            return;
        };
        let charge = self.overdraft_charge(b, n);
        guard.charge = fitted(budget, charge, &guard.ticket, &guard.buf);
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
        settle(inner);
        inner.pool.stats()
    }

    /// The budget's state, or `None` for a pool without one.
    ///
    /// ```
    /// assert!(pool_tokio::BytesPool::new().budget().is_none());
    /// ```
    pub fn budget(&self) -> Option<BudgetStats> {
        let inner = self.handle.inner();
        settle(inner);
        inner.budget.as_ref().map(Budget::stats)
    }
}

/// A [`BytesMut`] checked out of a [`BytesPool`]; dropping it returns the
/// buffer to the pool, on whatever thread drops it.
///
/// Derefs to `BytesMut`, and implements [`BufMut`](bytes::BufMut), [`Buf`](bytes::Buf) and
/// [`io::Write`](std::io::Write), so it goes wherever a `BytesMut` goes: `read_buf(&mut
/// buf)`, a codec's `decode(&mut buf)`, `write!(buf, ...)`,
/// `write_all_buf(&mut buf)` (which consumes the bytes from the front),
/// `http_body_util::Full::new(buf)`. It is `Send + Sync + 'static`, so a
/// task can hold it across `.await` and move between workers. It compares
/// equal to byte slices, `Vec<u8>`, `Bytes` and `str` with the same bytes;
/// [`Clone`] checks out a new pooled buffer (see [`clone`](Self::clone)).
///
/// # Reading into it: `read_buf`, not `read`
///
/// **A fresh checkout is empty (length 0).** `AsyncReadExt::read(&mut buf)`
/// reads into the buffer's *initialised length*, so on a fresh checkout it
/// reads nothing and returns `Ok(0)`, which looks exactly like end of
/// stream. Use **`read_buf(&mut buf)`**, which appends into the spare
/// capacity and returns `Ok(0)` only at end of stream. If an API needs an
/// initialised `&mut [u8]`, check out with
/// [`BytesPool::checkout_zeroed`] (length `n`, zero-filled):
///
/// ```
/// use tokio::io::AsyncReadExt;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let mut input: &[u8] = b"hello";
/// let mut buf = pool_tokio::checkout(64);
/// assert_eq!(input.read(&mut buf).await?, 0); // length 0: reads nothing!
/// assert_eq!(input.read_buf(&mut buf).await?, 5); // appends: right
/// let mut slice = pool_tokio::checkout_zeroed(3);
/// let mut more: &[u8] = b"abc";
/// assert_eq!(more.read(&mut slice[..]).await?, 3); // length 3: fine
/// assert_eq!(slice, b"abc"[..]);
/// # Ok(())
/// # }
/// ```
///
/// Split-off parts (`split_to`, `split_off`, `split`) share its memory and
/// stay valid after it is dropped: the pool sees the memory is still shared
/// and drops the buffer instead of reusing it. [`freeze`](Self::freeze)
/// turns it into `Bytes` without a copy; the memory comes back to the pool
/// when the last clone drops.
///
/// ```
/// use std::io::Write;
/// use bytes::BufMut;
///
/// let mut buf = pool_tokio::checkout(64);
/// buf.put_slice(b"status: ");
/// write!(buf, "{}", 200)?;
/// assert_eq!(&buf[..], b"status: 200");
/// let body = buf.freeze(); // no copy
/// assert_eq!(&body[..], b"status: 200");
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct PooledBytes {
    /// Owned by the guard until `Drop` or `into_raw` moves it out, each of
    /// which consumes the guard. No `Option` around it (nor around
    /// `ticket`): reaching it is a field access, moving it is one copy, and
    /// `Drop` tests no tag.
    buf: ManuallyDrop<BytesMut>,
    ticket: Ticket,
    pub(crate) charge: usize,
    /// Zero-sized without the `diagnostics` feature.
    track: Track,
    /// Dropped by `Drop` itself (or `into_raw`), so that the guard's drop
    /// glue is `Drop` alone: no `Arc` release or unwinding path of its own
    /// around it.
    handle: ManuallyDrop<Handle>,
}

// `Drop`, `into_raw` and `give_back_cold` move the ticket out with
// `ptr::read` and leave the field in place: sound only while a `Ticket`
// has no drop glue (plain numbers).
const _: () = assert!(!std::mem::needs_drop::<Ticket>());

impl PooledBytes {
    #[inline]
    pub(crate) fn new(
        buf: BytesMut,
        ticket: Ticket,
        charge: usize,
        track: Track,
        handle: Handle,
    ) -> Self {
        PooledBytes {
            buf: ManuallyDrop::new(buf),
            ticket,
            charge,
            track,
            handle: ManuallyDrop::new(handle),
        }
    }

    /// Takes the guard apart without returning the buffer; the handle
    /// comes out with it (moved: a built pool's reference count is not
    /// touched).
    #[inline]
    pub(crate) fn into_raw(self) -> (BytesMut, Lease, Handle) {
        let mut guard = ManuallyDrop::new(self);
        // SAFETY: `guard` is never dropped, so `Drop` does not run: each
        // field with an owner is moved out once, here, and `guard` is not
        // used after.
        let (buf, ticket, handle) = unsafe {
            (
                ManuallyDrop::take(&mut guard.buf),
                ptr::read(&guard.ticket),
                ManuallyDrop::take(&mut guard.handle),
            )
        };
        (
            buf,
            Lease {
                ticket,
                charge: guard.charge,
                track: guard.track,
            },
            handle,
        )
    }

    /// Rebuilds a guard from [`into_raw`](Self::into_raw)'s parts.
    #[inline]
    pub(crate) fn from_raw(buf: BytesMut, lease: Lease, handle: Handle) -> Self {
        Self::new(buf, lease.ticket, lease.charge, lease.track, handle)
    }

    #[inline]
    pub(crate) fn ticket(&self) -> &Ticket {
        &self.ticket
    }

    /// How the guard reaches its pool.
    #[inline]
    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }
}

/// A checked-out buffer's accounting, apart from the buffer (while a
/// `Framed` owns the buffer).
#[derive(Debug)]
pub(crate) struct Lease {
    pub(crate) ticket: Ticket,
    pub(crate) charge: usize,
    pub(crate) track: Track,
}

impl Drop for PooledBytes {
    #[inline]
    fn drop(&mut self) {
        // The common return: nothing charged, nothing tracked, a thread
        // that keeps a cache, and room in its cache for the exact
        // allocation lent. Then pool-core's fast return, on the buffer in
        // place (`try_give_back_fast_in_place`: read out of the guard
        // once, written back only if refused), is all there is to do.
        // Everything else (a full or missing cache, a grown or shared
        // buffer, the budget, diagnostics, a blocking thread's flush) is
        // one call to `give_back_cold`, which takes the guard by reference;
        // the full return there clears and checks the buffer and tries the
        // fast put a second time. 173 instructions per W1 operation
        // instead of 181 (185 at e70cc28), and 5-11% faster at 256 B-64 KiB
        // side by side (`benches/RESULTS.md`, "W1 time per instruction").
        let inner = self.handle.inner();
        if self.charge == 0
            && !diagnostics::tracking(&self.track)
            && keeps_cache(inner.settings.blocking_cache)
            // SAFETY: `Drop` runs once, on a guard that still owns its
            // buffer, taken with `self.ticket`; once kept it is never
            // touched again (the function returns below).
            && unsafe { inner.pool.try_give_back_fast_in_place(&mut self.buf, &self.ticket) }
        {
            if let Handle::Shared(_) = *self.handle {
                // SAFETY: as above, for the handle.
                unsafe { release(&mut self.handle) };
            }
            return;
        }
        // SAFETY: `Drop` runs once, on a guard that still owns its buffer,
        // ticket and handle.
        unsafe { give_back_cold(self) };
    }
}

impl Deref for PooledBytes {
    type Target = BytesMut;

    #[inline]
    fn deref(&self) -> &BytesMut {
        &self.buf
    }
}

impl DerefMut for PooledBytes {
    #[inline]
    fn deref_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }
}

/// Returns a buffer and its budget charge to the pool: the guard's full
/// return, a frozen buffer's last clone and a taken-apart framed value.
#[inline]
pub(crate) fn give_back(
    handle: &Handle,
    buf: BytesMut,
    ticket: Ticket,
    charge: usize,
    track: Track,
) {
    let inner = handle.inner();
    // A charged buffer whose memory a split-off part still uses keeps its
    // charge until the part drops (see `pinned`).
    let (buf, ticket, charge, track) = match &inner.budget {
        Some(budget) if charge > 0 => {
            match budget.pinned.hold_if_shared(buf, ticket, charge, track) {
                Hold::Unique(buf, ticket, charge, track) => (buf, ticket, charge, track),
                Hold::Held { start_thread } => {
                    if start_thread {
                        start_settle_thread(handle);
                    }
                    return;
                }
            }
        }
        _ => (buf, ticket, charge, track),
    };
    give_back_unique(inner, buf, ticket, charge, track);
}

/// Returns a buffer to the pool and its charge to the budget, with the
/// observers told; the buffer is not held aside whatever its state.
fn give_back_unique(inner: &Inner, buf: BytesMut, ticket: Ticket, charge: usize, track: Track) {
    diagnostics::on_return(&inner.diagnostics, track);
    let class = ticket.class_size();
    let capacity = buf.capacity();
    let returned = inner.pool.give_back(buf, ticket);
    crate::tracing::returned(&inner.settings, class, capacity, returned);
    after_return(&inner.pool, inner.settings.blocking_cache);
    // After the buffer is back, so that a woken waiter can find it.
    if charge > 0 {
        if let Some(budget) = &inner.budget {
            budget.release(charge);
        }
    }
}

/// The guard's return when its fast path does not apply: `give_back`, in
/// full.
///
/// Out of line, with the guard by reference: charged, tracked and
/// blocking-thread returns are the rare ones. Inlined, the whole of
/// `give_back` would be in every `drop`; called with the buffer and ticket
/// by value, `Drop` copied the ticket to the stack for the call on every
/// return (a 16-byte load of fields the checkout had just stored 8 bytes at
/// a time). By reference, nothing is copied: W1 178-179 instructions instead
/// of 194, and faster side by side (`benches/RESULTS.md`, "`PooledBytes`'s
/// drop, without copies").
///
/// # Safety
///
/// `guard` still owns its buffer, ticket and handle, and is not used after.
#[cold]
#[inline(never)]
unsafe fn give_back_cold(guard: &mut PooledBytes) {
    // SAFETY: the caller's promise.
    let (buf, ticket, handle) = unsafe {
        (
            ManuallyDrop::take(&mut guard.buf),
            ptr::read(&guard.ticket),
            ManuallyDrop::take(&mut guard.handle),
        )
    };
    give_back(&handle, buf, ticket, guard.charge, guard.track);
    handle.give_up();
}

/// Gives up a guard's `Arc` handle: into this thread's stash of the pool's
/// references (`runtime::stash`), else dropped.
///
/// Out of line but not cold (every fast return to an `Arc` pool comes
/// here): inlined, the stash's step and its cold path grow the drop glue
/// that every guard's drop runs, the static default pool's too (inlined,
/// side by side: a built pool 8-10% faster, the default pool 8-15% slower
/// at 256 B and 4 KiB; `benches/RESULTS.md`, "W1 time per instruction").
///
/// # Safety
///
/// `handle` is not used after.
#[inline(never)]
unsafe fn release(handle: &mut ManuallyDrop<Handle>) {
    // SAFETY: the caller's promise.
    unsafe { ManuallyDrop::take(handle) }.give_up();
}

/// A checkout's `charge` made to fit the buffer lent (`buf`, taken with
/// `ticket`): a charged checkout served by another class than its
/// charge's is charged that class (`Budget::fit`). Everything but `charge`
/// is read only for a charged checkout: on the common, uncharged one this
/// is one test.
#[inline(always)]
fn fitted(budget: &Option<Budget>, charge: usize, ticket: &Ticket, buf: &BytesMut) -> usize {
    if charge != 0 && ticket.class_size() != Some(charge) {
        if let Some(budget) = budget {
            return budget.fit(charge, ticket.class_size(), buf.capacity());
        }
    }
    charge
}

/// Returns every held buffer of `inner`'s pool whose parts have all
/// dropped, releasing their charge (see `pinned`). Returns the bytes
/// released.
pub(crate) fn settle(inner: &Inner) -> usize {
    settle_then(inner, false)
}

/// `settle`; with `flush`, also hands this thread's cache to the depot
/// before anyone else can look (the settle thread, which serves no
/// checkouts of its own).
fn settle_then(inner: &Inner, flush: bool) -> usize {
    let Some(budget) = &inner.budget else {
        return 0;
    };
    budget.pinned.settle(
        |entry| give_back_unique(inner, entry.buf, entry.ticket, entry.charge, entry.track),
        |released| {
            if flush && released > 0 {
                inner.pool.flush_thread();
            }
        },
    )
}

/// Starts the thread that settles `handle`'s held buffers while there are
/// any (`Pinned::run_settle_thread`). It holds the pool: a pool dropped
/// while parts of its buffers live on is freed once they are gone. A
/// failure to spawn (resource limits) leaves settling to the pool's own
/// calls (budget requests, `budget()`, `stats()`).
fn start_settle_thread(handle: &Handle) {
    let held = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("pool-tokio-settle".into())
        .spawn(move || {
            let inner = held.inner();
            if let Some(budget) = &inner.budget {
                // Returns on this thread go to its cache: flushed on.
                budget.pinned.run_settle_thread(|| {
                    settle_then(inner, true);
                });
            }
        });
    if spawned.is_err() {
        if let Some(budget) = &handle.inner().budget {
            // The next held buffer tries again.
            budget.pinned.settle_thread_failed();
        }
    }
}

/// The guard's `unsafe` paths (its `Drop` on both handles, the cold return
/// of a charged guard, `into_raw` through `freeze` and `detach`), small
/// enough for Miri: `scripts/miri.sh` runs them.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_way_a_guard_ends_gives_back_each_part_once() {
        // A `Static` handle on a static of the test's own: the default
        // pool starts a decay thread, and a leaked pool would be reported
        // as a leak by Miri.
        static INNER: std::sync::LazyLock<Inner> = std::sync::LazyLock::new(|| {
            Inner::with_settings(BufferConfig::new(), None, Settings::default()).unwrap()
        });
        let shared = BytesPool::new();
        let leaked = &BytesPool::from_static(&INNER);
        // No decay thread: Miri wants every thread joined by the end.
        let budgeted = BytesPool::builder()
            .budget(1 << 20)
            .decay_thread(false)
            .build()
            .unwrap();
        for pool in [&shared, leaked, &budgeted] {
            let mut buf = pool.checkout(100);
            buf.extend_from_slice(b"abc");
            drop(buf); // the common return, or the cold one when charged
            let mut frozen = pool.checkout(100);
            frozen.extend_from_slice(b"frozen");
            let bytes = frozen.freeze();
            let tail = bytes.slice(2..);
            drop(bytes);
            assert_eq!(&tail[..], b"ozen");
            drop(tail);
            let detached = pool.checkout(100).detach();
            assert_eq!(detached.capacity(), 512);
            // Returns the fast path refuses, the buffer written back into
            // the guard for the full return: grown past its class, and
            // shared with a live part.
            let mut grown = pool.checkout(100);
            grown.reserve(64 << 10);
            drop(grown);
            let mut shared_part = pool.checkout(100);
            shared_part.extend_from_slice(b"part");
            let part = shared_part.split_to(2).freeze();
            drop(shared_part);
            assert_eq!(&part[..], b"pa");
            drop(part);
            let stats = pool.stats();
            assert_eq!(stats.outstanding(), 0, "{stats}");
            assert_eq!(stats.total().returns, 4);
            assert_eq!(stats.total().detached, 1);
            assert_eq!(stats.total().discarded.oversize, 1, "{stats}");
        }
        assert_eq!(budgeted.budget().unwrap().charged, 0);
    }

    /// The `Arc` behind a built pool's handle.
    pub(super) fn arc(pool: &BytesPool) -> &Arc<Inner> {
        match &pool.handle {
            Handle::Shared(arc) => arc,
            Handle::Static(_) => unreachable!("a built pool"),
        }
    }

    /// A built pool's checkouts and returns on one thread touch no shared
    /// count once the thread's stash holds the pool's references: the
    /// strong count stays where the first round left it.
    #[test]
    fn checkouts_and_returns_on_one_thread_leave_the_reference_count_alone() {
        let pool = BytesPool::new();
        drop(pool.checkout(100));
        drop(pool.checkout(100));
        let settled = Arc::strong_count(arc(&pool));
        for _ in 0..100 {
            let mut buf = pool.checkout(100);
            buf.extend_from_slice(b"x");
            assert_eq!(Arc::strong_count(arc(&pool)), settled);
            drop(buf);
            // Frozen, the guard's handle moves into the owner and back.
            let frozen = pool.checkout(100).freeze();
            assert_eq!(Arc::strong_count(arc(&pool)), settled);
            drop(frozen);
            assert_eq!(Arc::strong_count(arc(&pool)), settled);
            drop(pool.checkout(100).detach());
            assert_eq!(Arc::strong_count(arc(&pool)), settled);
        }
        assert_eq!(Arc::strong_count(arc(&pool)), settled);
        assert!(settled <= 3, "{settled}");
        // A guard dropped on another thread, whose stash is its own.
        let buf = pool.checkout(100);
        std::thread::spawn(move || drop(buf)).join().unwrap();
        assert_eq!(Arc::strong_count(arc(&pool)), settled - 1);
    }

    /// A pool used and dropped on one thread is freed at once; one whose
    /// guards were returned on a thread that exits, once it has; the
    /// stash of `flush_thread`'s thread is given up.
    #[test]
    fn a_dropped_pool_is_freed_once_its_stashed_references_go() {
        let pool = BytesPool::new();
        let weak = Arc::downgrade(arc(&pool));
        drop(pool.checkout(100));
        drop(pool.checkout(100));
        drop(pool);
        assert!(weak.upgrade().is_none(), "freed with its last handle");

        let pool = BytesPool::new();
        let weak = Arc::downgrade(arc(&pool));
        let theirs = pool.clone();
        std::thread::spawn(move || (0..3).for_each(|_| drop(theirs.checkout(100))))
            .join()
            .unwrap();
        drop(pool.checkout(100));
        drop(pool.checkout(100));
        pool.flush_thread();
        assert_eq!(Arc::strong_count(arc(&pool)), 1);
        drop(pool);
        assert!(weak.upgrade().is_none());
    }
}

/// When a built pool is freed and its threads end, now that threads stash
/// its references (`runtime::stash`). Not run under Miri (the decay
/// thread is detached).
#[cfg(test)]
mod lifetime_tests {
    use std::sync::{Arc, Weak};
    use std::time::{Duration, Instant};

    use super::tests::arc;
    use super::*;

    /// A pool with a decay thread stepping every millisecond.
    fn decaying_pool() -> BytesPool {
        BytesPool::builder()
            .config(BufferConfig::new().decay_interval(Duration::from_millis(4)))
            .decay_thread(true)
            .build()
            .unwrap()
    }

    /// Waits up to 10 s for `done`.
    fn eventually(what: &str, mut done: impl FnMut() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(start.elapsed() < Duration::from_secs(10), "{what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// A guard that outlives its pool's last handle, on one thread: its
    /// return frees the pool (a closed pool's guard is never stashed), with
    /// the stash cold or warm.
    #[test]
    fn a_guard_returned_after_the_last_handle_frees_the_pool() {
        for warm in [false, true] {
            std::thread::spawn(move || {
                let pool = BytesPool::new();
                let weak: Weak<Inner> = Arc::downgrade(arc(&pool));
                if warm {
                    drop(pool.checkout(100));
                    drop(pool.checkout(100));
                }
                let buf = pool.checkout(100);
                let frozen = pool.checkout(100).freeze();
                drop(pool);
                drop(buf);
                assert!(weak.upgrade().is_some(), "`frozen` holds it");
                drop(frozen);
                assert!(weak.upgrade().is_none(), "warm: {warm}");
            })
            .join()
            .unwrap();
        }
    }

    /// The decay thread ends once no one can reach the pool: no handle
    /// and no buffer out (a guard or frozen buffer could make a handle),
    /// also while a thread's stash keeps the pool allocated.
    #[test]
    fn the_decay_thread_ends_once_the_pool_is_out_of_reach() {
        let pool = decaying_pool();
        let weak = Arc::downgrade(arc(&pool));
        eventually("the decay thread holds a weak reference", || {
            Weak::weak_count(&weak) == 2
        });
        // Closed with a buffer out: the decay thread goes on (it decays
        // the depot), and a handle made from the guard opens the pool again.
        let (spare, guard) = (pool.checkout(100), pool.checkout(100));
        drop(spare);
        pool.flush_thread();
        assert!(arc(&pool).pool.depot_bytes() > 0);
        drop(pool);
        eventually(
            "the decay thread decays a closed pool with `guard` out",
            || weak.upgrade().unwrap().pool.depot_bytes() == 0,
        );
        assert_eq!(Weak::weak_count(&weak), 2, "still running: `guard` is out");
        let pool = guard.pool();
        drop(guard);
        // Another thread returns a guard while the pool is open, and lives
        // on with the count in its stash.
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let (dropped, returned) = std::sync::mpsc::channel::<()>();
        let theirs = pool.checkout(100);
        let stasher = std::thread::spawn(move || {
            drop(theirs);
            dropped.send(()).unwrap();
            wait.recv().unwrap();
        });
        returned.recv().unwrap();
        drop(pool); // closed, nothing out: out of reach
        eventually("the decay thread ended", || Weak::weak_count(&weak) == 1);
        assert!(weak.upgrade().is_some(), "the other thread's stash");
        // A handle made now (as a guard's `pool()` can, racing the thread's
        // last look at the pool) opens it again and starts the thread again.
        let reopened = BytesPool::from_handle(Handle::Shared(weak.upgrade().unwrap()));
        eventually("the decay thread started again", || {
            Weak::weak_count(&weak) == 2
        });
        drop(reopened);
        eventually("the decay thread ended again", || {
            Weak::weak_count(&weak) == 1
        });
        go.send(()).unwrap();
        stasher.join().unwrap();
        assert!(weak.upgrade().is_none());
    }

    /// The park hook's idle thread ends when, armed, it finds the pool out
    /// of reach; a park of the pool opened again starts another.
    #[test]
    fn the_idle_thread_starts_again_for_a_pool_opened_again() {
        let pool = BytesPool::builder()
            .config(BufferConfig::new().decay_interval(Duration::from_secs(4)))
            .build()
            .unwrap();
        let inner = Arc::clone(arc(&pool));
        let weak = Arc::downgrade(&inner);
        drop(pool.checkout(100));
        pool.thread_parking(); // the depot holds more than the floor: armed
        assert_eq!(Weak::weak_count(&weak), 2, "the idle thread started");
        drop(pool); // closed, nothing out; `inner` keeps it allocated
        eventually("the idle thread ended", || Weak::weak_count(&weak) == 1);
        assert!(inner.pool.depot_bytes() > 0, "not decayed: too young");
        let pool = BytesPool::from_handle(Handle::Shared(inner));
        pool.thread_parking();
        assert_eq!(Weak::weak_count(&weak), 2, "the idle thread started again");
    }

    /// A background thread's handle (not counted) keeps no pool open: a
    /// guard returned while one lives, after the last user handle, still
    /// frees the pool with it.
    #[test]
    fn a_background_handle_keeps_no_pool_open() {
        std::thread::spawn(|| {
            let pool = BytesPool::new();
            let weak = Arc::downgrade(arc(&pool));
            drop(pool.checkout(100));
            let background = BytesPool::uncounted(pool.handle.clone());
            let buf = pool.checkout(100);
            drop(pool);
            drop(buf); // closed: not stashed
            assert!(!arc(&background).is_open());
            assert_eq!(Arc::strong_count(arc(&background)), 1, "`background`'s own");
            drop(background);
            assert!(weak.upgrade().is_none());
        })
        .join()
        .unwrap();
    }

    /// A worker's park hook, of any pool, gives up its whole stash: a pool
    /// closed after the worker returned its guards is freed then.
    #[test]
    fn any_pools_park_hook_gives_the_stash_up() {
        let (p, q) = (BytesPool::new(), BytesPool::new());
        let weak = Arc::downgrade(arc(&p));
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let (dropped, returned) = std::sync::mpsc::channel::<()>();
        let buf = p.checkout(100);
        let worker = std::thread::spawn(move || {
            drop(buf); // P open: stashed here
            dropped.send(()).unwrap();
            wait.recv().unwrap();
            q.thread_parking(); // Q's hook
            dropped.send(()).unwrap();
            wait.recv().unwrap();
        });
        returned.recv().unwrap();
        drop(p);
        assert!(weak.upgrade().is_some(), "the worker's stash");
        go.send(()).unwrap();
        returned.recv().unwrap();
        assert!(weak.upgrade().is_none());
        go.send(()).unwrap();
        worker.join().unwrap();
    }

    /// Pools used and dropped on threads that live on are freed, while
    /// their decay threads take handles of their own now and then.
    #[test]
    fn pools_dropped_on_living_threads_are_freed() {
        let barrier = Arc::new(std::sync::Barrier::new(21));
        let (tx, rx) = std::sync::mpsc::channel();
        let threads: Vec<_> = (0..20)
            .map(|_| {
                let (barrier, tx) = (barrier.clone(), tx.clone());
                std::thread::spawn(move || {
                    let pool = decaying_pool();
                    let weak = Arc::downgrade(arc(&pool));
                    for _ in 0..200 {
                        drop(pool.checkout(100));
                        std::thread::yield_now();
                    }
                    drop(pool);
                    tx.send(weak).unwrap();
                    barrier.wait(); // the thread, and its stash, live on
                })
            })
            .collect();
        let weaks: Vec<Weak<Inner>> = (0..20).map(|_| rx.recv().unwrap()).collect();
        eventually("every pool freed", || {
            weaks.iter().all(|w| w.upgrade().is_none())
        });
        barrier.wait();
        threads.into_iter().for_each(|t| t.join().unwrap());
    }

    /// A pool with a decay thread and its hooks on a runtime that
    /// allocated for it: the pool keeps the runtime's handle (captured on
    /// a miss), the runtime's state keeps the hooks, the hooks keep
    /// handles of the pool. The stop hooks drop the runtime's handle, so
    /// dropping the runtime and the pool frees it.
    #[test]
    fn a_runtime_with_the_hooks_of_a_decaying_pool_does_not_keep_it() {
        for decay in [false, true] {
            let pool = BytesPool::builder().decay_thread(decay).build().unwrap();
            let weak = Arc::downgrade(arc(&pool));
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(1);
            pool.install(&mut builder);
            let rt = builder.build().unwrap();
            drop(builder); // it holds the hooks too
            let p = pool.clone();
            rt.block_on(async move { tokio::spawn(async move { drop(p.checkout(100)) }).await })
                .unwrap();
            let captured = pool.handle.inner().runtime.handle().is_some();
            assert_eq!(captured, decay, "a miss captured the runtime");
            drop(rt);
            drop(pool);
            eventually(&format!("decay_thread({decay}): freed"), || {
                weak.upgrade().is_none()
            });
        }
    }

    /// Buffers held aside while a split part lives, settled by a
    /// background thread's `stats`, leave that thread's cache: nothing
    /// there is kept for good.
    #[test]
    fn the_decay_thread_keeps_no_settled_buffers() {
        let pool = BytesPool::builder()
            .config(BufferConfig::new().decay_interval(Duration::from_millis(4)))
            .budget(16 << 20)
            .decay_thread(true)
            .build()
            .unwrap();
        for _ in 0..10 {
            let parts: Vec<_> = std::thread::spawn({
                let pool = pool.clone();
                move || {
                    let parts: Vec<_> = (0..32)
                        .map(|_| {
                            let mut buf = pool.checkout(4096);
                            buf.extend_from_slice(&[7; 64]);
                            buf.split_to(8).freeze() // `buf` is held aside
                        })
                        .collect();
                    pool.flush_thread();
                    parts
                }
            })
            .join()
            .unwrap();
            drop(parts); // settled by the settle thread or the decay thread
            std::thread::sleep(Duration::from_millis(20));
        }
        eventually("nothing retained", || {
            pool.flush_thread(); // what this thread's `stats` settled
            pool.stats().retained_bytes() == 0
        });
    }

    /// A budgeted pool's returns (the cold path: every checkout is
    /// charged) leave the reference count alone too.
    #[test]
    fn a_budgeted_pools_returns_leave_the_reference_count_alone() {
        let pool = BytesPool::builder()
            .budget(1 << 20)
            .decay_thread(false)
            .build()
            .unwrap();
        drop(pool.checkout(100));
        drop(pool.checkout(100));
        let settled = Arc::strong_count(arc(&pool));
        for _ in 0..100 {
            let buf = pool.checkout(100);
            assert_eq!(Arc::strong_count(arc(&pool)), settled);
            drop(buf);
        }
        assert_eq!(stash::held(arc(&pool)), 2);
    }
}
