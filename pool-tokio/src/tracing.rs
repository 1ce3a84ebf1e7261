//! The crate's one tracing macro and the per-buffer events built on it.
//!
//! Everything here compiles to nothing without the `tracing` feature. With
//! it, a disabled event costs a static level check and one relaxed load (see
//! the `tracing` crate); per-buffer events are at `trace` level so that a
//! subscriber at `debug` or above rejects them at the callsite.

/// Forwards to a `tracing` macro (`trace`, `debug`, ...) when the `tracing`
/// feature is on; expands to nothing otherwise, arguments included. Every
/// event and span of this crate has the target `pool_tokio`.
macro_rules! event {
    ($level:ident, $($arg:tt)*) => {
        #[cfg(feature = "tracing")]
        tracing::$level!(target: "pool_tokio", $($arg)*);
    };
}
pub(crate) use event;

use pool_core::{Returned, Ticket};

/// A checkout: hit (from a thread cache or the depot) or miss (new or
/// unpooled allocation).
#[inline(always)]
pub(crate) fn checkout(ticket: &Ticket, requested: usize) {
    let _ = (ticket, requested);
    event!(
        trace,
        class = ticket.class_size().unwrap_or(0),
        outcome = if ticket.source().is_hit() {
            "hit"
        } else {
            "miss"
        },
        source = ticket.source().as_str(),
        bytes = requested,
        "checkout"
    );
}

/// A return the pool did not keep, with the reason.
#[inline(always)]
pub(crate) fn returned(class: Option<usize>, capacity: usize, returned: Returned) {
    let _ = (class, capacity);
    if let Returned::Discarded(reason) = returned {
        let _ = reason;
        event!(
            trace,
            class = class.unwrap_or(0),
            outcome = "discard",
            reason = reason.as_str(),
            bytes = capacity,
            "discard"
        );
    }
}
