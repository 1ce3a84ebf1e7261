//! A counting global allocator shows that the echo path allocates nothing
//! per request once warm: pooled `Framed` buffers, a pooled scratch buffer
//! per request, frames split off the read buffer and echoed frozen.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::{BufMut, Bytes};
use futures_util::{SinkExt, StreamExt};
use pool_tokio::BytesPool;
use tokio_util::codec::LengthDelimitedCodec;

/// Counts allocations made by the current thread (the test's runtime is
/// single-threaded, so that is all of the echo path's).
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: the allocator also runs during thread teardown.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: forwards every call to `System` unchanged; counting touches only a
// thread-local `Cell` that needs no allocation (`const` initialised).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract for `alloc` is `System`'s.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn echo_path_allocates_nothing_per_request_at_steady_state() {
    const WARMUP: usize = 200;
    const REQUESTS: usize = 5_000;
    let pool = BytesPool::new().leak();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let payloads: Vec<Bytes> = (0..16)
        .map(|i| Bytes::from(vec![i as u8; 50 + i * 200]))
        .collect();
    let (before, after, echoed) = rt.block_on(async {
        let (a, b) = tokio::io::duplex(64 << 10);
        let mut client = pool.framed(a, LengthDelimitedCodec::new());
        let mut server = pool.framed(b, LengthDelimitedCodec::new());
        let mut echoed = 0usize;
        let mut before = 0;
        for i in 0..WARMUP + REQUESTS {
            if i == WARMUP {
                before = allocations();
            }
            let request = &payloads[i % payloads.len()];
            client.send(request.clone()).await.unwrap();
            let frame = server.next().await.unwrap().unwrap();
            // Per-request scratch space from the pool.
            let mut scratch = pool.checkout(frame.len() + 16);
            scratch.put_slice(&frame[..frame.len().min(16)]);
            drop(scratch);
            server.send(frame.freeze()).await.unwrap();
            let reply = client.next().await.unwrap().unwrap();
            assert_eq!(&reply[..], &request[..]);
            echoed += reply.len();
        }
        (before, allocations(), echoed)
    });
    let per_request = (after - before) as f64 / REQUESTS as f64;
    println!("{REQUESTS} requests, {echoed} bytes echoed, {per_request} allocations per request");
    assert_eq!(
        after - before,
        0,
        "allocations during {REQUESTS} warm requests"
    );
    let stats = pool.stats();
    assert!(stats.hit_rate() > 0.99, "{stats}");

    // The counter works: a plain allocation on this thread is seen.
    let seen = allocations();
    drop(std::hint::black_box(vec![0u8; 100]));
    assert_eq!(allocations(), seen + 1);
}
