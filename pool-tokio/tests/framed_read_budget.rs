//! Issue 18, case 2: frames held from a pooled `Framed` with a foreign
//! codec (tokio-util's `LengthDelimitedCodec`, whose frames are `split_to`
//! views of the read buffer) live in pooled checkouts, never in
//! allocations the codec made past the pool. A counting global allocator
//! keeps the ledger.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use pool_tokio::BytesPool;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// Allocations at least this large hold frames (the test's small ones,
/// pipe and tasks included, stay below it).
const LARGE: usize = 4 << 10;

static LIVE_LARGE: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    /// Only the test thread's allocations count.
    static COUNTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn counted(size: usize) -> bool {
    size >= LARGE && COUNTED.try_with(|c| c.get()).unwrap_or(false)
}

struct Ledger;

// SAFETY: forwards every call to `System` unchanged; the bookkeeping is
// relaxed atomics and a const thread-local, which never allocate.
unsafe impl GlobalAlloc for Ledger {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counted(layout.size()) {
            LIVE_LARGE.fetch_add(layout.size() as isize, Relaxed);
        }
        // SAFETY: the caller's contract for `alloc` is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if counted(layout.size()) {
            LIVE_LARGE.fetch_sub(layout.size() as isize, Relaxed);
        }
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above; `realloc` is a dealloc plus an alloc here.
        unsafe {
            let new = self.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[global_allocator]
static A: Ledger = Ledger;

const FRAMES: usize = 100;
const FRAME: usize = 6_000;

/// Bytes the pool allocated for its classes (misses times class size).
fn pool_allocated(pool: &BytesPool) -> usize {
    let stats = pool.stats();
    stats
        .classes
        .iter()
        .map(|c| c.misses as usize * c.class_size.unwrap_or(0))
        .sum()
}

/// Receives and holds 100 frames of 6,000 B; returns the frames' bytes,
/// the large bytes live on this thread beyond the start, and the pool.
fn receive_and_hold() -> (Vec<bytes::BytesMut>, usize, BytesPool) {
    // One at a time: the ledger is global.
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let pool = BytesPool::builder().budget(128 << 10).build().unwrap();
    // The pool's per-thread bookkeeping (its cache slot, one entry per
    // class index, made on a thread's first use) is not lent memory: made
    // before the baseline, as in `budget_exact.rs`.
    drop(pool.checkout(1));
    pool.trim();
    let mut held = Vec::with_capacity(FRAMES);
    COUNTED.with(|c| c.set(true));
    let base = LIVE_LARGE.load(Relaxed);
    rt.block_on(async {
        let (a, b) = tokio::io::duplex(64 << 10);
        let mut tx = Framed::new(a, LengthDelimitedCodec::new());
        let mut rx = pool.framed(b, LengthDelimitedCodec::new());
        let payload = Bytes::from(vec![7u8; FRAME]);
        for _ in 0..FRAMES {
            tx.send(payload.clone()).await.unwrap();
            held.push(rx.next().await.unwrap().unwrap());
        }
    });
    let live = (LIVE_LARGE.load(Relaxed) - base) as usize;
    COUNTED.with(|c| c.set(false));
    (held, live, pool)
}

#[test]
fn held_frames_of_a_foreign_codec_live_in_pooled_checkouts() {
    let (held, live, pool) = receive_and_hold();
    let held_bytes: usize = held.iter().map(|f| f.len()).sum();
    assert_eq!(held_bytes, FRAMES * FRAME);
    assert!(
        live >= held_bytes,
        "the ledger sees the frames: {live} live"
    );
    // Every large allocation still alive was made by the pool for a
    // checkout, give or take the test's own (runtime and pipe; under
    // 8 KiB). Before: the codec's `reserve` on a shared read buffer made
    // plain allocations for nearly every frame: 837,120 B live beside
    // 16,384 B allocated by the pool.
    let pooled = pool_allocated(&pool);
    assert!(
        live <= pooled + (8 << 10),
        "{live} B live in large allocations, only {pooled} B allocated by the pool"
    );
    drop(held);
    let budget = pool.budget().unwrap();
    assert_eq!(budget.charged, 0);
    assert_eq!(pool.stats().outstanding(), 0);
}

/// What the budget reports once `PooledBytes`' drop keeps the charge of a
/// guard returned while split-off parts still share its allocation (a
/// change to `pooled.rs` made separately): the read buffers the framed
/// value let go of stay charged (or counted as overdrafts) while the held
/// frames keep them alive. Ignored until that change lands.
#[test]
fn held_frames_of_a_foreign_codec_stay_charged() {
    let (held, _live, pool) = receive_and_hold();
    let held_bytes: usize = held.iter().map(|f| f.len()).sum();
    let budget = pool.budget().unwrap();
    let covered = budget.charged + budget.overdrafts as usize * (8 << 10);
    assert!(
        covered >= held_bytes,
        "{held_bytes} B held, {} B charged, {} overdrafts",
        budget.charged,
        budget.overdrafts
    );
    drop(held);
    assert_eq!(pool.budget().unwrap().charged, 0);
}
