//! A guard reallocated after a split, whose new allocation starts right
//! where the lent one ends: allocators without inline headers (jemalloc's
//! extents, for one) place large blocks back to back. A bump allocator
//! (its own test binary: it replaces the global allocator) makes that
//! layout certain. The guard's return must see a new allocation, not hold
//! it for good as if a part still shared the lent one.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use pool_tokio::BytesPool;

const ARENA: usize = 16 << 20;
/// Allocations of at least this many bytes come from the arena.
const LARGE: usize = 64 << 10;

#[repr(align(4096))]
struct Arena(UnsafeCell<[u8; ARENA]>);
// SAFETY: the arena is only handed out in disjoint blocks (`NEXT` only
// grows), each owned by the allocation it serves.
unsafe impl Sync for Arena {}
static SPACE: Arena = Arena(UnsafeCell::new([0; ARENA]));
static NEXT: AtomicUsize = AtomicUsize::new(0);
/// Whether large allocations come from the arena: only while the test
/// lays out its two buffers (a failing assertion's backtrace, never freed
/// in the arena, would exhaust it).
static ARMED: AtomicBool = AtomicBool::new(false);

/// Large allocations back to back from the arena (never reused) while
/// `ARMED`; the rest from `System`.
struct BackToBack;

// SAFETY: a large block is a slice of `SPACE` no other block overlaps,
// aligned as asked (null once the arena is spent); everything else is
// `System`'s, and `dealloc` hands `System` only what it allocated.
unsafe impl GlobalAlloc for BackToBack {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() < LARGE || !ARMED.load(Relaxed) {
            // SAFETY: the caller's `layout` is passed on as given.
            return unsafe { System.alloc(layout) };
        }
        let base = SPACE.0.get() as usize;
        let mut at = NEXT.load(Relaxed);
        loop {
            let start = (base + at).next_multiple_of(layout.align()) - base;
            if start + layout.size() > ARENA {
                return std::ptr::null_mut();
            }
            match NEXT.compare_exchange(at, start + layout.size(), Relaxed, Relaxed) {
                Ok(_) => return (base + start) as *mut u8,
                Err(now) => at = now,
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let base = SPACE.0.get() as usize;
        if (ptr as usize) < base || ptr as usize >= base + ARENA {
            // SAFETY: not from the arena, so `System` allocated it with
            // this `layout`.
            unsafe { System.dealloc(ptr, layout) }
        }
    }
}

#[global_allocator]
static ALLOCATOR: BackToBack = BackToBack;

#[test]
fn a_reallocated_guard_next_to_its_old_allocation_is_not_held_for_good() {
    let pool = BytesPool::builder().budget(4 << 20).build().unwrap();
    ARMED.store(true, Relaxed);
    let mut buf = pool.try_checkout(200_000).unwrap();
    let (lent, size) = (buf.as_ptr() as usize, buf.capacity());
    buf.resize(200_000, 7); // no allocation
    let part = buf.split_to(200_000); // the guard keeps the tail
    buf.reserve(size - 200_000 + 1); // past the tail: a new allocation
    ARMED.store(false, Relaxed);
    assert_eq!(
        buf.as_ptr() as usize,
        lent + size,
        "the layout this test needs"
    );
    drop(buf);
    drop(part); // the lent allocation is gone too
    let start = Instant::now();
    loop {
        let budget = pool.budget().unwrap();
        if budget.held_shared == 0 && budget.charged == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "held for good: {budget:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(pool.stats().outstanding(), 0);
}
