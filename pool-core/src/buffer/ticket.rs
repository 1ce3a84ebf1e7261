//! What the low-level checkout hands out besides the buffer, or instead
//! of it: the [`Ticket`] that brings a buffer back to its class, and
//! [`CheckoutError`].

use std::fmt;

use crate::outcome::Source;

/// The slot of a checkout above the largest class, in tickets and guards.
/// The engine counts those in its last class entry (`BufferPool::unpooled`).
pub(crate) const UNPOOLED: u8 = u8::MAX;

/// Which class a checked-out buffer came from, so that it goes back to the
/// right one however its capacity changed. Returned by
/// [`BufferPool::take`](crate::BufferPool::take), consumed by
/// [`BufferPool::give_back`](crate::BufferPool::give_back) or
/// [`BufferPool::forget`](crate::BufferPool::forget).
#[must_use = "give the ticket back with its buffer, or the buffer counts as outstanding forever"]
#[derive(Debug, PartialEq, Eq)]
pub struct Ticket {
    pub(crate) slot: u8,
    pub(crate) source: Source,
    /// Where the lent allocation starts.
    pub(crate) origin: usize,
    /// The class size (0 when unpooled).
    pub(crate) size: usize,
}

impl Ticket {
    /// Where the buffer came from (this thread's cache, the depot, a new
    /// allocation, or an unpooled one).
    ///
    /// ```
    /// let pool = pool_core::BufferPool::<Vec<u8>>::new();
    /// let (buf, ticket) = pool.take(1 << 30);
    /// assert_eq!(ticket.source(), pool_core::Source::Unpooled);
    /// # pool.give_back(buf, ticket);
    /// ```
    pub fn source(&self) -> Source {
        self.source
    }

    /// The class size the buffer came from, or `None` for a request above
    /// the largest class (an unpooled allocation).
    ///
    /// ```
    /// let pool = pool_core::BufferPool::<Vec<u8>>::new();
    /// let (buf, ticket) = pool.take(1000);
    /// assert_eq!(ticket.class_size(), Some(1024));
    /// pool.give_back(buf, ticket);
    /// let (buf, ticket) = pool.take(1100);
    /// assert_eq!(ticket.class_size(), Some(1280));
    /// pool.give_back(buf, ticket);
    /// ```
    pub fn class_size(&self) -> Option<usize> {
        (self.slot != UNPOOLED).then_some(self.size)
    }

    /// The address where the lent allocation starts (the buffer's
    /// `as_ptr()` at checkout), pooled or not: with the capacity lent it
    /// tells whether a buffer still uses that allocation or was
    /// reallocated since.
    ///
    /// ```
    /// let pool = pool_core::BufferPool::<Vec<u8>>::new();
    /// let (mut buf, ticket) = pool.take(1000);
    /// assert_eq!(ticket.origin(), buf.as_ptr() as usize);
    /// buf.reserve(1 << 20); // outgrows the class: a new allocation
    /// assert_ne!(ticket.origin(), buf.as_ptr() as usize);
    /// pool.give_back(buf, ticket); // dropped, not kept
    /// ```
    pub fn origin(&self) -> usize {
        self.origin
    }
}

/// Why [`BufferPool::try_checkout`](crate::BufferPool::try_checkout) could
/// not serve a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckoutError {
    /// The request is larger than any allocation can be (`isize::MAX`).
    TooLarge {
        /// The capacity asked for.
        requested: usize,
    },
}

impl fmt::Display for CheckoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckoutError::TooLarge { requested } => write!(
                f,
                "cannot check out {requested} bytes: no allocation can exceed {} bytes; \
                 ask for less or split the data",
                isize::MAX
            ),
        }
    }
}

impl std::error::Error for CheckoutError {}

pub(crate) fn check_size(n: usize) -> Result<(), CheckoutError> {
    if n > isize::MAX as usize {
        Err(CheckoutError::TooLarge { requested: n })
    } else {
        Ok(())
    }
}
