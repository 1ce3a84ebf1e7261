//! The budget's state (see `budget.rs`): the semaphore `Budget` kept in
//! `Inner`, its snapshot `BudgetStats`, and the checks of budget settings
//! and request sizes. A leaf module: settling held buffers, which needs the
//! pool, comes in as a closure from the caller.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use bytes::BytesMut;
use pool_core::{BufferConfig, BufferPool};
use tokio::sync::{Semaphore, TryAcquireError};

use crate::error::{BuildError, TryCheckoutError};

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
    pub(crate) limit: usize,
    pub(crate) semaphore: Semaphore,
    pub(crate) overdrafts: AtomicU64,
    /// Returned buffers whose memory split-off parts still use: still
    /// charged.
    pub(crate) pinned: crate::pinned::Pinned,
    /// The rate-limited overdraft WARN, with the pool's name.
    warn: crate::tracing::OverdraftWarn,
}

impl Budget {
    pub(crate) fn new(
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

    /// The bytes a request of `n` charges before it is served: its class
    /// size under the settings in force, or `n` itself above the largest
    /// class. [`fit`](Self::fit) then fits the charge to the buffer lent (a
    /// larger class's, or a class a `reconfigure` moved meanwhile); a guard
    /// releases exactly what it was charged, so the budget always balances.
    pub(crate) fn charge(
        &self,
        pool: &BufferPool<BytesMut>,
        n: usize,
    ) -> Result<usize, TryCheckoutError> {
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
    /// held buffers whose parts have dropped if it does not (`settle`: the
    /// pool's `pool::settle`, which returns the bytes it released).
    pub(crate) fn try_acquire(
        &self,
        charge: usize,
        settle: impl FnOnce() -> usize,
    ) -> Result<(), TryCheckoutError> {
        match self.try_take(charge) {
            Err(_) if settle() > 0 => self.try_take(charge),
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
    pub(crate) async fn acquire(&self, charge: usize, settle: impl FnOnce() -> usize) {
        if self.try_acquire(charge, settle).is_ok() {
            return;
        }
        match self.semaphore.acquire_many(charge as u32).await {
            Ok(permit) => permit.forget(),
            Err(_) => unreachable!("the budget semaphore is never closed"),
        }
    }

    /// Whether a reservation of `bytes` could ever be served.
    pub(crate) fn check_reservation(&self, bytes: usize) -> Result<(), TryCheckoutError> {
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
    ///
    /// Out of line: overdrafts happen only on an exhausted budget, and the
    /// WARN's rate limit (a clock read, atomics) would bloat the checkout.
    #[cold]
    pub(crate) fn overdraft(&self, bytes: usize, what: &'static str) {
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
    pub(crate) fn charge_growth(&self, bytes: usize, settle: impl FnOnce() -> usize) -> usize {
        let charge = bytes.min(u32::MAX as usize);
        match self.try_acquire(charge, settle) {
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

    /// The largest buffer a checkout charged `charge` may be lent: its
    /// charge and the budget's headroom now. A hint (another thread may
    /// take the headroom meanwhile): [`fit`](Self::fit) decides.
    #[inline]
    pub(crate) fn reach(&self, charge: usize) -> usize {
        charge.saturating_add(self.semaphore.available_permits())
    }

    /// The charge of a checkout charged `charge` and lent a buffer of class
    /// `class` (`None`: unpooled) and `capacity` bytes, when they differ:
    /// what is lent, the class size (an unpooled buffer's charge stays its
    /// request, but never past its capacity).
    ///
    /// - Lent more (a miss served by a larger class's idle buffer, within
    ///   [`reach`](Self::reach)): the difference comes from the budget; if
    ///   the budget lacks it now (another thread took the headroom
    ///   meanwhile, or a `reconfigure` between the charge and the checkout
    ///   raised the class), it is an overdraft: served anyway, counted and
    ///   traced, as a `checkout` past an exhausted budget is.
    /// - Lent less (a `reconfigure` lowered the class, or the largest class
    ///   below the request, which is then served unpooled at its size): the
    ///   surplus goes back. A charge past an unpooled buffer's capacity
    ///   would read as shared for good when it returns (see `pinned`):
    ///   held, outstanding and charged for ever.
    #[cold]
    #[inline(never)]
    pub(crate) fn fit(&self, charge: usize, class: Option<usize>, capacity: usize) -> usize {
        let lent = class.unwrap_or(capacity.min(charge));
        if lent < charge {
            self.release(charge - lent);
            return lent;
        }
        if lent > charge && self.try_take(lent - charge).is_err() {
            self.overdraft(lent - charge, "checkout");
            return charge;
        }
        lent
    }

    /// The budget's state now (the caller settles held buffers first).
    pub(crate) fn stats(&self) -> BudgetStats {
        BudgetStats {
            limit: self.limit,
            charged: self.limit - self.semaphore.available_permits().min(self.limit),
            overdrafts: self.overdrafts.load(Relaxed),
            held_shared: self.pinned.charged(),
        }
    }
}

pub(crate) fn check_budget(limit: usize, config: &BufferConfig) -> Result<(), BuildError> {
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

pub(crate) fn check_size(n: usize) -> Result<(), TryCheckoutError> {
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
    /// values do charge their buffers' growth). A guard that such growth
    /// reallocated while a split-off part held the rest of its buffer
    /// gives its charge back when it is returned, while the part keeps the
    /// old allocation alive until it drops.
    ///
    /// Also counted: bytes set aside and not yet checked out, a
    /// [`Reservation`](crate::Reservation)'s unspent bytes and those a
    /// waiting request (`checkout_async`, `framed_async`, `reserve`, a
    /// `FrameReader`) has been given while it waits for the rest: first
    /// come, first served, they are that request's and go back if it is
    /// dropped.
    pub charged: usize,
    /// Overdrafts: checkouts by
    /// [`BytesPool::checkout`](crate::BytesPool::checkout) (and by the sync
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
