//! The outcome of one checkout or return: where a value came from
//! ([`Source`]) and what became of a returned value ([`Returned`], and why
//! it was dropped: [`Discard`]).
//!
//! Also the hot path's own outcomes, crate-private: what a fast put did
//! (`FastPut`) and how far a fast return got (`Tried`).
//!
//! A leaf module: the engine reports these and `stats.rs` counts them, and
//! it imports neither.

/// Where a checked-out value came from.
///
/// ```
/// let pool = pool_core::BufferPool::<Vec<u8>>::new();
/// let (buf, ticket) = pool.take(100);
/// assert_eq!(ticket.source(), pool_core::Source::New);
/// pool.give_back(buf, ticket);
/// let (buf, ticket) = pool.take(100);
/// assert_eq!(ticket.source(), pool_core::Source::Local);
/// assert!(ticket.source().is_hit());
/// # pool.give_back(buf, ticket);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// This thread's cache.
    Local,
    /// A batch taken from the depot.
    Depot,
    /// A new allocation: cache and depot were empty.
    New,
    /// A plain allocation for a request above the largest class.
    Unpooled,
}

impl Source {
    /// Whether the value was reused (a hit) rather than allocated.
    ///
    /// ```
    /// assert!(!pool_core::Source::New.is_hit());
    /// ```
    pub fn is_hit(self) -> bool {
        matches!(self, Source::Local | Source::Depot)
    }

    /// A short lowercase name, for logs and metrics labels.
    ///
    /// ```
    /// assert_eq!(pool_core::Source::Depot.as_str(), "depot");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Local => "local",
            Source::Depot => "depot",
            Source::New => "new",
            Source::Unpooled => "unpooled",
        }
    }
}

/// Why a returned value was dropped instead of kept.
///
/// ```
/// let pool = pool_core::BufferPool::<Vec<u8>>::new();
/// let (mut buf, ticket) = pool.take(512);
/// buf.reserve(1 << 16);
/// assert_eq!(
///     pool.give_back(buf, ticket),
///     pool_core::Returned::Discarded(pool_core::Discard::Oversize)
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Discard {
    /// The recycling policy's reset returned false.
    Rejected,
    /// The buffer is no longer exactly the allocation it was lent as: it
    /// grew (even in place), or its start moved and could not be moved back.
    Oversize,
    /// A split-off part still shares the buffer's memory.
    Shared,
    /// Its class is not retained (it left the configured range while the
    /// buffer was out, or lies above `max_retained`), or the returning
    /// thread was tearing down.
    Stale,
    /// It came from above the largest class and is never kept.
    Unpooled,
}

impl Discard {
    /// A short lowercase name, for logs and metrics labels.
    ///
    /// ```
    /// assert_eq!(pool_core::Discard::Shared.as_str(), "shared");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Discard::Rejected => "rejected",
            Discard::Oversize => "oversize",
            Discard::Shared => "shared",
            Discard::Stale => "stale",
            Discard::Unpooled => "unpooled",
        }
    }
}

/// What became of a returned value.
///
/// ```
/// let pool = pool_core::BufferPool::<Vec<u8>>::new();
/// let (buf, ticket) = pool.take(100);
/// assert_eq!(pool.give_back(buf, ticket), pool_core::Returned::Kept);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Returned {
    /// Cached for reuse.
    Kept,
    /// Dropped, for this reason.
    Discarded(Discard),
}

/// What `Engine::put_fast_if` (`spine.rs`) did with a returning value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FastPut {
    /// Moved into this thread's cache.
    Kept,
    /// The check said no: nothing moved, the full return path must run.
    Refused,
    /// The check accepted it, but this thread's cache was not at hand or
    /// was full: nothing moved; only the slow put is left to try.
    NoRoom,
}

/// How far the fast return got with a buffer it did not keep, so that
/// the full return does not repeat it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tried {
    /// Nothing done: an unpooled buffer.
    No,
    /// Cleared, and not exactly the allocation lent (or to be zeroed):
    /// `reclaim` and the checks are left, then the whole put.
    Refused,
    /// Cleared and exactly the allocation lent, but this thread's cache had
    /// no room: only the slow put is left.
    NoRoom,
}
