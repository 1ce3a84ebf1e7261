//! Errors of checkouts and of building a pool.

use std::fmt;
use std::io;

use pool_core::ConfigError;

/// Why [`BytesPool::try_checkout`](crate::BytesPool::try_checkout) or
/// [`BytesPool::checkout_async`](crate::BytesPool::checkout_async) could not
/// serve a request.
///
/// # Why not `CheckoutError`
///
/// pool-core already exports a [`pool_core::CheckoutError`] (one variant,
/// an impossible size). Two public types of one name made
/// `use pool_core::*; use pool_tokio::*;` ambiguous (the
/// `ambiguous_glob_imports` lint) at every use. This type has more to say
/// (the budget), so it cannot simply be pool-core's re-exported; it has its
/// own name instead, and converts from pool-core's
/// (`From<pool_core::CheckoutError>`).
///
/// In an I/O function, `?` turns it into an [`io::Error`] (kind
/// `InvalidInput` for a request that can never be served, `OutOfMemory`
/// for an exhausted budget; the message says what to change, and
/// [`io::Error::get_ref`] gives this error back).
///
/// ```
/// use pool_tokio::{BytesPool, TryCheckoutError};
///
/// let pool = BytesPool::builder().budget(64 << 10).build()?;
/// let held = pool.try_checkout(64 << 10)?;
/// let err = pool.try_checkout(1).unwrap_err();
/// assert!(matches!(err, TryCheckoutError::BudgetExhausted { .. }));
/// println!("{err}");
/// drop(held);
/// assert!(pool.try_checkout(1).is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TryCheckoutError {
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

impl fmt::Display for TryCheckoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TryCheckoutError::TooLarge { requested, limit } => write!(
                f,
                "cannot check out {requested} bytes: this pool serves at most {limit} bytes \
                 per checkout; ask for less or split the data"
            ),
            TryCheckoutError::ExceedsBudget { charge, budget } => write!(
                f,
                "cannot check out {charge} bytes: more than the pool's whole budget of \
                 {budget} bytes; raise the budget or ask for less"
            ),
            TryCheckoutError::BudgetExhausted {
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

impl std::error::Error for TryCheckoutError {}

impl From<pool_core::CheckoutError> for TryCheckoutError {
    /// pool-core's only refusal: a size no allocation can have.
    ///
    /// ```
    /// let core = pool_core::BufferPool::<bytes::BytesMut>::new()
    ///     .try_checkout(usize::MAX)
    ///     .unwrap_err();
    /// let err = pool_tokio::TryCheckoutError::from(core);
    /// assert!(matches!(err, pool_tokio::TryCheckoutError::TooLarge { .. }));
    /// ```
    fn from(e: pool_core::CheckoutError) -> Self {
        match e {
            pool_core::CheckoutError::TooLarge { requested } => TryCheckoutError::TooLarge {
                requested,
                limit: isize::MAX as usize,
            },
            // pool-core's enum is non-exhaustive; a future refusal is still
            // one about the size asked for.
            _ => TryCheckoutError::TooLarge {
                requested: usize::MAX,
                limit: isize::MAX as usize,
            },
        }
    }
}

impl TryCheckoutError {
    /// The [`io::ErrorKind`] this error becomes in an [`io::Error`]:
    /// `InvalidInput` for a request that can never be served (too large,
    /// or more than the whole budget), `OutOfMemory` for a budget that is
    /// exhausted now. (Not `WouldBlock`: async I/O code reads that kind as
    /// "not ready, poll again", which would hide the error.)
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::builder().budget(4096).build()?;
    /// let held = pool.try_checkout(4096)?;
    /// let err = pool.try_checkout(1).unwrap_err();
    /// assert_eq!(err.io_kind(), std::io::ErrorKind::OutOfMemory);
    /// # drop(held);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn io_kind(&self) -> io::ErrorKind {
        match self {
            TryCheckoutError::BudgetExhausted { .. } => io::ErrorKind::OutOfMemory,
            TryCheckoutError::TooLarge { .. } | TryCheckoutError::ExceedsBudget { .. } => {
                io::ErrorKind::InvalidInput
            }
        }
    }
}

impl From<TryCheckoutError> for io::Error {
    /// An [`io::Error`] of kind [`TryCheckoutError::io_kind`] whose message
    /// is this error's and whose [`get_ref`](io::Error::get_ref) is this
    /// error, so `?` works in I/O code.
    ///
    /// ```
    /// async fn read_request(pool: &pool_tokio::BytesPool) -> std::io::Result<usize> {
    ///     let buf = pool.try_checkout(1 << 20)?; // TryCheckoutError -> io::Error
    ///     Ok(buf.capacity())
    /// }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let pool = pool_tokio::BytesPool::builder().budget(4096).build().unwrap();
    /// let err = read_request(&pool).await.unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// assert!(err.to_string().contains("raise the budget or ask for less"));
    /// assert!(err.get_ref().unwrap().is::<pool_tokio::TryCheckoutError>());
    /// # }
    /// ```
    fn from(e: TryCheckoutError) -> Self {
        io::Error::new(e.io_kind(), e)
    }
}

/// Why [`Builder::build`](crate::Builder::build) refused its settings.
/// Converts into an [`io::Error`] (kind `InvalidInput`) for `?` in I/O
/// code.
///
/// ```
/// let err = pool_tokio::BytesPool::builder().budget(0).build().unwrap_err();
/// assert!(err.to_string().contains("budget"));
/// ```
///
/// [`Config`](BuildError::Config) is a transparent wrapper: its message is
/// the [`ConfigError`]'s and its [`source`](std::error::Error::source) is
/// the `ConfigError`'s own (none), so an error chain prints the message
/// once.
///
/// ```
/// use std::error::Error;
/// let config = pool_core::BufferConfig::new().min_class(3000); // not a power of two
/// let err = pool_tokio::BytesPool::builder().config(config).build().unwrap_err();
/// assert!(matches!(err, pool_tokio::BuildError::Config(_)));
/// assert!(err.to_string().contains("min_class"));
/// assert!(err.source().is_none());
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
    /// The pool's [name](crate::Builder::name) is empty: it is the `pool`
    /// label of every metric and the `pool` field of every event, and an
    /// empty label is no label to Prometheus.
    ///
    /// ```
    /// let err = pool_tokio::BytesPool::builder().name("").build().unwrap_err();
    /// assert!(matches!(err, pool_tokio::BuildError::EmptyName));
    /// assert!(err.to_string().contains("`name`"));
    /// ```
    EmptyName,
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
            BuildError::EmptyName => f.write_str(
                "invalid pool setting `name` = \"\": expected a non-empty name (the `pool` \
                 label of every metric and field of every event)",
            ),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // Transparent: `Display` already is `e`'s message, so `e` as
            // the source would print it twice in a chain.
            BuildError::Config(e) => e.source(),
            BuildError::Budget { .. } | BuildError::EmptyName => None,
        }
    }
}

impl From<ConfigError> for BuildError {
    fn from(e: ConfigError) -> Self {
        BuildError::Config(e)
    }
}

impl From<BuildError> for io::Error {
    /// An [`io::Error`] of kind [`InvalidInput`](io::ErrorKind::InvalidInput)
    /// whose message is this error's and whose
    /// [`get_ref`](io::Error::get_ref) is this error, so a pool can be
    /// built with `?` in a function that returns `io::Result`.
    ///
    /// ```
    /// fn start(budget: usize) -> std::io::Result<pool_tokio::BytesPool> {
    ///     Ok(pool_tokio::BytesPool::builder().budget(budget).build()?)
    /// }
    /// let err = start(0).unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// assert!(err.get_ref().unwrap().is::<pool_tokio::BuildError>());
    /// ```
    fn from(e: BuildError) -> Self {
        io::Error::new(io::ErrorKind::InvalidInput, e)
    }
}
