//! Charged buffers that came back while split-off parts still share their
//! memory: the budget keeps their charge until the parts are gone.
//!
//! A `PooledBytes` of a budgeted pool is charged the class size of the
//! buffer it lends (its request's class, or a larger one's that served a
//! miss). When it is
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
//!
//! A leaf module: what needs the pool (returning a settled buffer, starting
//! the settle thread with a handle of the pool) is `pool.rs`'s `settle`
//! and `start_settle_thread`, which call in here with closures.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use bytes::BytesMut;
use pool_core::Ticket;

use crate::diagnostics::records::Track;

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
    /// buffer (never past its capacity: see `Budget::fit`).
    size: usize,
}

/// What [`Pinned::hold_if_shared`] did with a returned buffer.
pub(crate) enum Hold {
    /// Not shared: everything back, for a normal return.
    Unique(BytesMut, Ticket, usize, Track),
    /// Held here with its charge; `start_thread`: no settle thread runs,
    /// the caller starts one.
    Held { start_thread: bool },
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
    /// part, keeps it here with its charge (saying whether the caller must
    /// start the settle thread: none runs). Otherwise hands everything back
    /// for a normal return.
    pub(crate) fn hold_if_shared(
        &self,
        mut buf: BytesMut,
        ticket: Ticket,
        charge: usize,
        track: Track,
    ) -> Hold {
        let size = ticket.class_size().unwrap_or(charge);
        buf.clear();
        // A guard reallocated since its checkout (a `reserve` past what a
        // split left it) no longer holds the lent allocation: nothing here
        // can see when the parts that do drop, and its own allocation can
        // never give back `size`. It goes back like any reallocated buffer
        // (dropped), with its charge; the parts keep the old allocation
        // alive, uncharged, until they drop. The whole view is tested, not
        // its start alone: a new allocation may begin right where the lent
        // one ends (allocators without inline headers place large blocks
        // back to back), and one held for that would be held for good.
        let at = buf.as_ptr() as usize;
        let lent = ticket.origin();
        if at < lent || at.saturating_add(buf.capacity()) > lent.saturating_add(size) {
            return Hold::Unique(buf, ticket, charge, track);
        }
        // Never allocates; fails only while another handle shares the bytes
        // this one would need (see pool-core's `Buffer::reclaim`).
        if buf.try_reclaim(size) {
            return Hold::Unique(buf, ticket, charge, track);
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
        Hold::Held {
            start_thread: start,
        }
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

    /// Settles: takes out every held buffer that is its allocation's only
    /// owner again and hands each to `give_back` (which returns it and its
    /// charge), then calls `then` with the bytes released, all under the
    /// `settling` lock. Returns the bytes released.
    pub(crate) fn settle(
        &self,
        mut give_back: impl FnMut(Entry),
        then: impl FnOnce(usize),
    ) -> usize {
        let _settling = self.settling.lock().unwrap_or_else(|e| e.into_inner());
        let mut released = 0;
        for entry in self.reunited() {
            released += entry.charge;
            give_back(entry);
        }
        then(released);
        released
    }

    /// The settle thread's loop: `settle` every [`SETTLE_EVERY`] while
    /// anything is held here; returns after [`LINGER`] with nothing held.
    pub(crate) fn run_settle_thread(&self, mut settle: impl FnMut()) {
        let mut idle = Duration::ZERO;
        loop {
            std::thread::sleep(SETTLE_EVERY);
            settle();
            if self.len() > 0 {
                idle = Duration::ZERO;
                continue;
            }
            idle += SETTLE_EVERY;
            if idle >= LINGER && self.thread_may_end() {
                return;
            }
        }
    }

    /// The settle thread could not be spawned (resource limits): the next
    /// held buffer tries again, and until then settling is left to the
    /// pool's own calls (budget requests, `budget()`, `stats()`).
    pub(crate) fn settle_thread_failed(&self) {
        self.lock().thread = false;
    }
}
