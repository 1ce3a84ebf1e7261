//! Charged buffers that came back while split-off parts still share their
//! memory: the budget keeps their charge until the parts are gone.
//!
//! A `PooledBytes` of a budgeted pool is charged its class size. When it is
//! dropped while a frame split off it (`split_to`, `copy_to_bytes`, a
//! codec's frame) is still alive, the allocation it was lent is still live,
//! so its charge must stay. The guard's own handle (cleared, length 0) is
//! kept here instead of being dropped; once every part has dropped, that
//! handle is the allocation's only owner again (`try_reclaim` succeeds), the
//! buffer goes back to the pool and the charge to the budget.
//!
//! Nothing tells us when a part drops, so entries are checked ("settled"):
//! - before a budgeted request is refused, overdrawn or made to wait, and
//!   before [`BytesPool::budget`](crate::BytesPool::budget) and
//!   [`BytesPool::stats`](crate::BytesPool::stats) report;
//! - by a short-lived thread of the pool's, every [`SETTLE_EVERY`] while
//!   anything is held here (so a task waiting for budget is woken when the
//!   last part of a held buffer drops, with no other traffic). The thread
//!   ends after [`LINGER`] with nothing held and is started again by the
//!   next entry.
//!
//! Pools without a budget never come here: their shared buffers are
//! dropped on return, as pool-core does (the allocation lives on with its
//! parts, and nothing bounds it).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use bytes::BytesMut;
use pool_core::Ticket;

use crate::diagnostics::Track;
use crate::pool::{Handle, Inner};

/// How often the settle thread checks held buffers.
const SETTLE_EVERY: Duration = Duration::from_millis(2);
/// How long the settle thread stays with nothing held before it ends.
const LINGER: Duration = Duration::from_millis(200);

/// A returned guard whose allocation was still shared.
pub(crate) struct Entry {
    pub(crate) buf: BytesMut,
    pub(crate) ticket: Ticket,
    pub(crate) charge: usize,
    pub(crate) track: Track,
    /// The size to reclaim: the class size, or the charge of an unpooled
    /// buffer (never past its capacity: see `Budget::fit_unpooled`).
    size: usize,
}

#[derive(Default)]
struct Held {
    entries: Vec<Entry>,
    /// Whether a settle thread is running (set and cleared under the lock,
    /// so an entry pushed as the thread ends is never left unwatched).
    thread: bool,
}

/// The held buffers of one budgeted pool.
#[derive(Default)]
pub(crate) struct Pinned {
    /// `entries.len()`, readable without the lock: the common case (nothing
    /// held) costs one load.
    len: AtomicUsize,
    held: Mutex<Held>,
    /// Held by each settle from taking buffers out to having returned them
    /// (and, on the settle thread, flushed them to the depot): whoever
    /// settles next, or reads the budget or statistics, sees all of it.
    settling: Mutex<()>,
}

impl Pinned {
    fn lock(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes charged to buffers held here.
    pub(crate) fn charged(&self) -> usize {
        if self.len.load(Ordering::Acquire) == 0 {
            return 0;
        }
        self.lock().entries.iter().map(|e| e.charge).sum()
    }

    /// Buffers held here.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Clears `buf` and, if its allocation is still shared with a split-off
    /// part, keeps it here with its charge (starting the settle thread if
    /// none runs). Otherwise hands everything back for a normal return.
    pub(crate) fn hold_if_shared(
        &self,
        handle: &Handle,
        mut buf: BytesMut,
        ticket: Ticket,
        charge: usize,
        track: Track,
    ) -> Option<(BytesMut, Ticket, usize, Track)> {
        let size = ticket.class_size().unwrap_or(charge);
        buf.clear();
        // Never allocates; fails only while another handle shares the bytes
        // this one would need (see pool-core's `Buffer::reclaim`).
        if buf.try_reclaim(size) {
            return Some((buf, ticket, charge, track));
        }
        let start = {
            let mut held = self.lock();
            held.entries.push(Entry {
                buf,
                ticket,
                charge,
                track,
                size,
            });
            // Release: pairs with the Acquire loads in `charged`, `len` and
            // `settle`, so a reader that sees the count sees the entry.
            self.len.store(held.entries.len(), Ordering::Release);
            !std::mem::replace(&mut held.thread, true)
        };
        if start {
            start_settle_thread(handle);
        }
        None
    }

    /// Takes out every held buffer that is its allocation's only owner
    /// again. The caller returns them (outside the lock: a return may run
    /// hooks and wake waiters).
    fn reunited(&self) -> Vec<Entry> {
        if self.len.load(Ordering::Acquire) == 0 {
            return Vec::new();
        }
        let mut held = self.lock();
        let mut out = Vec::new();
        let mut i = 0;
        while i < held.entries.len() {
            let entry = &mut held.entries[i];
            if entry.buf.try_reclaim(entry.size) {
                out.push(held.entries.swap_remove(i));
            } else {
                i += 1;
            }
        }
        self.len.store(held.entries.len(), Ordering::Release);
        out
    }

    /// Whether the settle thread should end: nothing held. Clears the
    /// running flag under the lock when it says yes.
    fn thread_may_end(&self) -> bool {
        let mut held = self.lock();
        if held.entries.is_empty() {
            held.thread = false;
            true
        } else {
            false
        }
    }
}

/// Returns every held buffer of `inner`'s pool whose parts have all
/// dropped, releasing their charge. Returns the bytes released.
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
    let _settling = budget
        .pinned
        .settling
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let mut released = 0;
    for entry in budget.pinned.reunited() {
        released += entry.charge;
        crate::pooled::give_back_unique(inner, entry.buf, entry.ticket, entry.charge, entry.track);
    }
    if flush && released > 0 {
        inner.pool.flush_thread();
    }
    released
}

/// Starts the thread that settles `handle`'s held buffers while there are
/// any. It holds the pool: a pool dropped while parts of its buffers live
/// on is freed once they are gone. A failure to spawn (resource limits)
/// leaves settling to the pool's own calls (budget requests, `budget()`,
/// `stats()`).
fn start_settle_thread(handle: &Handle) {
    let fallback = handle.clone();
    let handle = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("pool-tokio-settle".into())
        .spawn(move || {
            let inner = handle.inner();
            let Some(budget) = &inner.budget else { return };
            let mut idle = Duration::ZERO;
            loop {
                std::thread::sleep(SETTLE_EVERY);
                // Returns on this thread go to its cache: flushed on.
                settle_then(inner, true);
                if budget.pinned.len() > 0 {
                    idle = Duration::ZERO;
                    continue;
                }
                idle += SETTLE_EVERY;
                if idle >= LINGER && budget.pinned.thread_may_end() {
                    return;
                }
            }
        });
    if spawned.is_err() {
        if let Some(budget) = &fallback.inner().budget {
            // The next held buffer tries again.
            budget.pinned.lock().thread = false;
        }
    }
}
