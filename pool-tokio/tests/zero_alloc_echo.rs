//! A counting global allocator shows that the echo path allocates nothing
//! per request once warm: pooled `Framed` buffers, a pooled scratch buffer
//! per request, frames split off the read buffer and echoed frozen.

use bytes::{BufMut, Bytes};
use futures_util::{SinkExt, StreamExt};
use pool_tokio::BytesPool;
use tokio_util::codec::LengthDelimitedCodec;

// Counts the allocations of the current thread (every request here runs
// on one current-thread runtime).
#[path = "support/thread_allocations.rs"]
mod thread_allocations;
use thread_allocations::allocations;

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
