//! Errors of checkouts and of building a pool.

use std::fmt;

use pool_core::ConfigError;

/// Why [`BytesPool::try_checkout`](crate::BytesPool::try_checkout) or
/// [`BytesPool::checkout_async`](crate::BytesPool::checkout_async) could not
/// serve a request.
///
/// ```
/// use pool_tokio::{BytesPool, CheckoutError};
///
/// let pool = BytesPool::builder().budget(64 << 10).build()?;
/// let held = pool.try_checkout(64 << 10)?;
/// let err = pool.try_checkout(1).unwrap_err();
/// assert!(matches!(err, CheckoutError::BudgetExhausted { .. }));
/// println!("{err}");
/// drop(held);
/// assert!(pool.try_checkout(1).is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckoutError {
    /// The request can never be served: larger than any allocation
    /// (`isize::MAX`), or, on a pool with a budget, larger than one wait on
    /// the budget can take (`u32::MAX` bytes).
    TooLarge {
        /// Bytes asked for.
        requested: usize,
        /// The largest request this pool can serve.
        limit: usize,
    },
    /// The request alone is larger than the pool's whole byte budget, so
    /// waiting could never serve it.
    ExceedsBudget {
        /// Bytes the request would charge (its class size).
        charge: usize,
        /// The pool's budget.
        budget: usize,
    },
    /// The budget has too few bytes left right now; a return will free
    /// some. Only [`try_checkout`](crate::BytesPool::try_checkout) reports
    /// this; [`checkout_async`](crate::BytesPool::checkout_async) waits.
    BudgetExhausted {
        /// Bytes the request would charge (its class size).
        charge: usize,
        /// Bytes of the budget not charged now.
        available: usize,
        /// The pool's budget.
        budget: usize,
    },
}

impl fmt::Display for CheckoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CheckoutError::TooLarge { requested, limit } => write!(
                f,
                "cannot check out {requested} bytes: this pool serves at most {limit} bytes \
                 per checkout; ask for less or split the data"
            ),
            CheckoutError::ExceedsBudget { charge, budget } => write!(
                f,
                "cannot check out {charge} bytes: more than the pool's whole budget of \
                 {budget} bytes; raise the budget or ask for less"
            ),
            CheckoutError::BudgetExhausted {
                charge,
                available,
                budget,
            } => write!(
                f,
                "byte budget exhausted: {charge} bytes asked for, {available} of {budget} \
                 available; wait with `checkout_async`, return buffers sooner, or raise the budget"
            ),
        }
    }
}

impl std::error::Error for CheckoutError {}

/// Why [`Builder::build`](crate::Builder::build) refused its settings.
///
/// ```
/// let err = pool_tokio::BytesPool::builder().budget(0).build().unwrap_err();
/// assert!(err.to_string().contains("budget"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// A setting of the underlying [`pool_core::BufferConfig`] is out of
    /// range.
    Config(ConfigError),
    /// The byte budget is out of range.
    Budget {
        /// The budget asked for.
        budget: usize,
        /// What it must be.
        expected: String,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Config(e) => fmt::Display::fmt(e, f),
            BuildError::Budget { budget, expected } => {
                write!(
                    f,
                    "invalid pool setting `budget` = {budget}: expected {expected}"
                )
            }
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Config(e) => Some(e),
            BuildError::Budget { .. } => None,
        }
    }
}

impl From<ConfigError> for BuildError {
    fn from(e: ConfigError) -> Self {
        BuildError::Config(e)
    }
}
