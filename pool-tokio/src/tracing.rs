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

use std::borrow::Cow;
#[cfg(feature = "tracing")]
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
#[cfg(feature = "tracing")]
use std::time::{Duration, Instant};

use pool_core::{Returned, Source, Ticket};

use crate::settings::Settings;

/// The `class` field of an event: the class size in bytes, or `unpooled`
/// for requests above the largest class (the spelling the metrics' label
/// uses). Recorded as a string either way, so that a log pipeline sees one
/// type for the field.
#[allow(dead_code)] // used only with the `tracing` feature
struct Class(Option<usize>);

impl std::fmt::Display for Class {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(size) => write!(f, "{size}"),
            None => f.write_str("unpooled"),
        }
    }
}

/// At most one overdraft WARN per this interval per pool: the first
/// overdraft is logged at once, later ones within the interval are only
/// counted, and the next WARN says how many were left out (`suppressed`).
/// A second: often enough to see an overload start and go on, rarely
/// enough that 10,000 overdrafts a second do not flood the logs.
#[cfg(feature = "tracing")]
pub(crate) const OVERDRAFT_WARN_INTERVAL: Duration = Duration::from_secs(1);

/// The overdraft WARN of one pool's budget, rate-limited (see
/// `OVERDRAFT_WARN_INTERVAL`). Lock-free: two atomics, touched only on
/// overdrafts.
#[derive(Debug)]
pub(crate) struct OverdraftWarn {
    #[cfg(feature = "tracing")]
    pool: Cow<'static, str>,
    /// The clock's zero for `next`.
    #[cfg(feature = "tracing")]
    start: Instant,
    /// Nanoseconds after `start` from which the next WARN may be logged.
    #[cfg(feature = "tracing")]
    next: AtomicU64,
    /// Overdrafts not logged since the last WARN.
    #[cfg(feature = "tracing")]
    suppressed: AtomicU64,
}

impl OverdraftWarn {
    /// The limiter of the pool named `pool`.
    pub(crate) fn new(pool: Cow<'static, str>) -> OverdraftWarn {
        let _ = &pool;
        OverdraftWarn {
            #[cfg(feature = "tracing")]
            pool,
            #[cfg(feature = "tracing")]
            start: Instant::now(),
            #[cfg(feature = "tracing")]
            next: AtomicU64::new(0),
            #[cfg(feature = "tracing")]
            suppressed: AtomicU64::new(0),
        }
    }

    /// Whether an overdraft at `now` is logged; if so, how many were left
    /// out since the last WARN. Exactly one caller wins each interval.
    #[cfg(feature = "tracing")]
    fn admit(&self, now: Instant) -> Option<u64> {
        let at = now.saturating_duration_since(self.start).as_nanos() as u64;
        let next = self.next.load(Relaxed);
        if at >= next
            && self
                .next
                .compare_exchange(
                    next,
                    at + OVERDRAFT_WARN_INTERVAL.as_nanos() as u64,
                    Relaxed,
                    Relaxed,
                )
                .is_ok()
        {
            Some(self.suppressed.swap(0, Relaxed))
        } else {
            self.suppressed.fetch_add(1, Relaxed);
            None
        }
    }

    /// An overdraft of `bytes` (by `what`: `checkout` or `growth`), the
    /// budget's `overdrafts`-th: a WARN, unless one was logged for this
    /// pool less than `OVERDRAFT_WARN_INTERVAL` ago.
    ///
    /// Out of line: called only on overdrafts, and the clock read and the
    /// event's formatting would bloat its caller.
    #[cold]
    pub(crate) fn overdraft(
        &self,
        bytes: usize,
        what: &'static str,
        overdrafts: u64,
        budget: usize,
        available: usize,
    ) {
        let _ = (bytes, what, overdrafts, budget, available);
        #[cfg(feature = "tracing")]
        if let Some(suppressed) = self.admit(Instant::now()) {
            event!(
                warn,
                pool = &*self.pool,
                bytes,
                what,
                overdrafts,
                suppressed,
                budget,
                available,
                outcome = "overdraft",
                "budget exhausted: served uncharged (use the async or try_ variant to wait or \
                 refuse); at most one such warning per second per pool, `suppressed` counts \
                 the overdrafts since the last one"
            );
        }
    }
}

/// A debug span around a maintenance pass of the pool named `pool`
/// (`kind`: `trim`, `decay`, `idle`; nothing without the feature).
pub(crate) fn maintenance_span(pool: &str, kind: &'static str) -> impl Drop {
    let _ = (pool, kind);
    #[cfg(feature = "tracing")]
    let span = tracing::debug_span!(target: "pool_tokio", "pool_maintenance", pool, kind).entered();
    #[cfg(not(feature = "tracing"))]
    let span = NoSpan;
    span
}

#[cfg(not(feature = "tracing"))]
struct NoSpan;

#[cfg(not(feature = "tracing"))]
impl Drop for NoSpan {
    fn drop(&mut self) {}
}

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
                    class = %Class(ticket.class_size()),
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
                class = %Class(ticket.class_size()),
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
            class = %Class(class),
            outcome = "discard",
            reason = reason.as_str(),
            bytes = capacity,
            "discard"
        );
    }
}

#[cfg(all(test, feature = "tracing"))]
mod tests {
    use super::*;

    /// 10,000 overdrafts spread evenly over `seconds` on an injected
    /// clock: how many are logged, and the `suppressed` counts they carry.
    fn logged(seconds: u64) -> (usize, u64) {
        let warn = OverdraftWarn::new(Cow::Borrowed("p"));
        let step = Duration::from_secs(seconds) / 10_000;
        let (mut lines, mut suppressed) = (0, 0);
        for i in 0..10_000 {
            if let Some(n) = warn.admit(warn.start + step * i) {
                lines += 1;
                suppressed += n;
            }
        }
        (lines, suppressed)
    }

    #[test]
    fn ten_thousand_overdrafts_in_a_second_are_one_warn() {
        // Before: one WARN per overdraft, 10,000 lines.
        let (lines, suppressed) = logged(1);
        assert_eq!(lines, 1);
        // Counted, not lost: the next WARN would report them.
        assert_eq!(suppressed, 0);
    }

    #[test]
    fn over_ten_seconds_at_most_one_warn_a_second_reports_what_it_left_out() {
        let (lines, suppressed) = logged(10);
        assert_eq!(lines, 10);
        // Every one is either logged or counted in a later WARN, except
        // those after the last WARN (one interval's worth at most).
        assert!(suppressed >= 10_000 - 10 - 1_000, "{suppressed}");
    }
}
