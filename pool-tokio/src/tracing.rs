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

use pool_core::{Returned, Source, Ticket};

use crate::pool::Settings;

/// Why a checkout allocated, for the `reason` field of a miss.
#[allow(dead_code)] // used only with the `tracing` feature
fn miss_reason(source: Source) -> &'static str {
    match source {
        Source::Unpooled => "above_max_class",
        _ => "pool_empty",
    }
}

/// A checkout: one event per miss (new or unpooled allocation), with its
/// reason; hits (a thread cache or the depot) only with
/// `Builder::trace_hits`.
#[inline(always)]
pub(crate) fn checkout(settings: &Settings, ticket: &Ticket, requested: usize) {
    let _ = (settings, ticket, requested);
    #[cfg(feature = "tracing")]
    {
        let source = ticket.source();
        if source.is_hit() {
            if settings.trace_hits {
                event!(
                    trace,
                    pool = &*settings.name,
                    class = ticket.class_size().unwrap_or(0),
                    outcome = "hit",
                    source = source.as_str(),
                    bytes = requested,
                    "checkout"
                );
            }
        } else {
            event!(
                trace,
                pool = &*settings.name,
                class = ticket.class_size().unwrap_or(0),
                outcome = "miss",
                source = source.as_str(),
                reason = miss_reason(source),
                bytes = requested,
                "checkout"
            );
        }
    }
}

/// A return the pool did not keep, with the reason.
#[inline(always)]
pub(crate) fn returned(
    settings: &Settings,
    class: Option<usize>,
    capacity: usize,
    returned: Returned,
) {
    let _ = (settings, class, capacity);
    if let Returned::Discarded(reason) = returned {
        let _ = reason;
        event!(
            trace,
            pool = &*settings.name,
            class = class.unwrap_or(0),
            outcome = "discard",
            reason = reason.as_str(),
            bytes = capacity,
            "discard"
        );
    }
}
