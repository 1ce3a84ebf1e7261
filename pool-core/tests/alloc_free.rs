//! With a counting global allocator: once warm, checking out and returning
//! allocates nothing, on one thread and across threads.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::LazyLock;
use std::thread;

use pool_core::{BufferPool, Pool};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);

std::thread_local! {
    /// Set on the threads whose allocations are counted, so that the test
    /// harness's own threads do not add noise.
    static COUNTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn counted() -> bool {
    COUNTING.load(Ordering::Relaxed) && COUNTED.try_with(|c| c.get()).unwrap_or(false)
}

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counted() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counted() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

static BUFFERS: LazyLock<BufferPool<Vec<u8>>> = LazyLock::new(BufferPool::new);
static STRINGS: LazyLock<Pool<String>> = LazyLock::new(Pool::new);

/// Allocations made by `f` on counted threads (this one, and the consumer
/// threads that mark themselves). Tests in this file run one at a time.
fn allocations(f: impl FnOnce()) -> u64 {
    COUNTED.with(|c| c.set(true));
    ALLOCS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    f();
    COUNTING.store(false, Ordering::SeqCst);
    ALLOCS.load(Ordering::SeqCst)
}

fn one_request() {
    let mut buf = BUFFERS.checkout(4096);
    buf.extend_from_slice(&[1; 1000]);
    let mut s = STRINGS.checkout();
    s.push_str("status: ok");
}

#[test]
fn steady_state_checkouts_allocate_nothing() {
    // Warm-up: first use creates the thread cache and the buffers.
    for _ in 0..100 {
        one_request();
    }
    let n = allocations(|| {
        for _ in 0..100_000 {
            one_request();
        }
    });
    assert_eq!(n, 0, "allocations in 100,000 warm requests");

    // Producer to consumer: every return is remote, batches cross through
    // the depot, and their vessels are recycled.
    let run = |messages: usize| {
        let (tx, rx) = mpsc::sync_channel(64);
        let consumer = thread::spawn(move || {
            COUNTED.with(|c| c.set(true));
            for b in rx {
                drop::<pool_core::PooledBuf<'static, Vec<u8>>>(b);
            }
        });
        for _ in 0..messages {
            let mut b = BUFFERS.checkout(4096);
            b.push(1);
            tx.send(b).unwrap();
        }
        drop(tx);
        consumer.join().unwrap();
    };
    run(10_000);
    // The consumer thread's own start-up allocates (thread, channel,
    // its cache); count them separately by running once with no messages.
    let baseline = allocations(|| run(0));
    let n = allocations(|| run(100_000));
    let per_message = n.saturating_sub(baseline) as f64 / 100_000.0;
    assert!(
        per_message < 0.01,
        "{n} allocations ({baseline} baseline) for 100,000 cross-thread messages"
    );
}
