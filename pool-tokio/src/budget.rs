//! The byte budget: `BytesPool`'s budgeted paths (`try_checkout`,
//! `checkout_async`, `reserve`, the framed values' growth charging and
//! their checkout back to class, `checkout_exact`) and
//! `Reservation`. The semaphore `Budget` kept in each pool, its snapshot
//! `BudgetStats` and the checks of budget settings and request sizes are in
//! `budget/semaphore.rs`.

use std::fmt;

use crate::error::TryCheckoutError;
use crate::pool::PooledBytes;
use crate::pool::{settle, BytesPool};

pub(crate) mod semaphore;

use self::semaphore::check_size;
pub use self::semaphore::BudgetStats;

impl BytesPool {
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
                budget.try_acquire(charge, || settle(self.handle.inner()))?;
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
                budget.acquire(charge, || settle(self.handle.inner())).await;
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
        budget.acquire(bytes, || settle(self.handle.inner())).await;
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
        budget.try_acquire(bytes, || settle(self.handle.inner()))?;
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

    /// [`checkout`](Self::checkout), but never served by a larger class's
    /// idle buffer: for a framed value taking its buffer back to its class
    /// (a larger one would look grown past it, and be swapped again).
    pub(crate) fn checkout_exact(&self, min_capacity: usize) -> PooledBytes {
        self.serve_within(min_capacity, self.sync_charge(min_capacity), 0)
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
            Some(budget) => budget
                .try_acquire(charge, || settle(self.handle.inner()))
                .is_ok(),
        }
    }

    /// Waits until the budget has the charges of `count` checkouts of `n`
    /// bytes, all in one wait, and takes them; returns one checkout's
    /// charge, for each `serve_within` to own (0 on a pool without a
    /// budget). One wait, not `count`: a caller holding its first buffer
    /// while it waits for the next could, with others doing the same, hold
    /// the whole budget while each of them waits; and a budget that cannot
    /// cover them all fails now (`ExceedsBudget`, with their sum) instead
    /// of a wait for ever. Cancel-safe.
    pub(crate) async fn take_budget_for_each(
        &self,
        n: usize,
        count: usize,
    ) -> Result<usize, TryCheckoutError> {
        let charge = self.budget_charge_for(n)?;
        if let Some(budget) = &self.handle.inner().budget {
            let all = charge.saturating_mul(count);
            budget.check_reservation(all)?;
            budget.acquire(all, || settle(self.handle.inner())).await;
        }
        Ok(charge)
    }

    /// Waits until the budget has `charge` bytes and takes them.
    /// Cancel-safe: bytes set aside for a dropped waiter go back.
    pub(crate) async fn take_budget(&self, charge: usize) {
        if let Some(budget) = &self.handle.inner().budget {
            budget.acquire(charge, || settle(self.handle.inner())).await;
        }
    }

    /// Charges `bytes` of growth of a buffer already checked out (an
    /// overdraft, counted and traced at WARN, if the budget lacks them);
    /// returns the bytes charged, to be given back with
    /// [`release_budget`](Self::release_budget).
    pub(crate) fn charge_growth(&self, bytes: usize) -> usize {
        match &self.handle.inner().budget {
            Some(budget) if bytes > 0 => {
                budget.charge_growth(bytes, || settle(self.handle.inner()))
            }
            _ => 0,
        }
    }

    /// Gives `bytes` back to the budget.
    pub(crate) fn release_budget(&self, bytes: usize) {
        if let (Some(budget), true) = (&self.handle.inner().budget, bytes > 0) {
            budget.release(bytes);
        }
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
    pub(crate) pool: BytesPool,
    /// Reserved bytes not yet drawn (`usize::MAX` on a pool without a
    /// budget).
    pub(crate) remaining: usize,
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
    /// Never waits. A miss served by a larger class's idle buffer charges
    /// that buffer's extra bytes to the pool's budget, not the reservation,
    /// and only if the budget has them at once.
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
