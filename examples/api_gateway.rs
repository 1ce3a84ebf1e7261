//! An API gateway's hot path: many concurrent requests on a multi-thread
//! runtime, each calling two (simulated) backends and building its response
//! in a pooled `String` (the JSON body) and a pooled byte buffer (headers
//! and body), frozen into `Bytes` for the connection writer without a copy.
//!
//! Run with `cargo run --release --example api_gateway`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pool_core::Pool;
use pool_tokio::BytesPool;
use tokio::sync::mpsc;

#[global_allocator]
static ALLOC: examples::CountingAlloc = examples::CountingAlloc;

/// JSON body builders, cleared on return; dropped if they grew past 64 KiB.
static BODIES: LazyLock<Pool<String>> = LazyLock::new(Pool::new);

const REQUESTS: usize = 200_000;
/// Requests in flight at once.
const CONCURRENCY: usize = 1_000;
const ROUTES: [&str; 4] = ["/users", "/orders", "/inventory", "/search"];

/// A simulated backend call: a short wait, then a few records.
async fn backend(route: usize, id: usize) -> impl Iterator<Item = (usize, u64)> {
    if id & 15 == 0 {
        tokio::time::sleep(Duration::from_micros(200)).await;
    } else {
        tokio::task::yield_now().await;
    }
    let records = 2 + (id + route) % (8 << route);
    (0..records).map(move |i| (i, (id * 31 + i * 7) as u64))
}

/// Handles one request: returns the full response, frozen.
async fn handle(pool: &BytesPool, id: usize) -> Bytes {
    let route = id % ROUTES.len();
    let mut body = BODIES.checkout();
    body.push_str("{\"route\":\"");
    body.push_str(ROUTES[route]);
    write!(body, "\",\"request\":{id},\"items\":[").unwrap();
    for (n, (i, value)) in backend(route, id).await.enumerate() {
        if n > 0 {
            body.push(',');
        }
        write!(body, "{{\"id\":{i},\"value\":{value}}}").unwrap();
    }
    let (_, extra) = backend(route, id + 1).await.size_hint();
    write!(body, "],\"related\":{}}}", extra.unwrap_or(0)).unwrap();

    let mut response = pool.checkout(body.len() + 128);
    write!(
        response,
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    response.extend_from_slice(body.as_bytes());
    response.freeze() // the body `String` goes back to its pool here
}

fn main() {
    let pool = pool_tokio::default_pool().clone();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    pool.install(&mut builder);
    let rt = builder.build().expect("runtime");
    let allocations = examples::allocations();
    let start = Instant::now();
    let (responses, bytes) = rt.block_on(async {
        // Connection writers: receive finished responses, "write" and drop
        // them on their own worker.
        let (tx, mut rx) = mpsc::channel::<Bytes>(CONCURRENCY);
        let writer = tokio::spawn(async move {
            let (mut n, mut bytes) = (0usize, 0usize);
            while let Some(response) = rx.recv().await {
                assert!(response.starts_with(b"HTTP/1.1 200 OK"));
                bytes += response.len();
                n += 1;
            }
            (n, bytes)
        });
        let per_task = REQUESTS / CONCURRENCY;
        let tasks: Vec<_> = (0..CONCURRENCY)
            .map(|t| {
                let (pool, tx) = (pool.clone(), tx.clone());
                tokio::spawn(async move {
                    for i in 0..per_task {
                        let response = handle(&pool, t * per_task + i).await;
                        tx.send(response).await.expect("writer alive");
                    }
                })
            })
            .collect();
        drop(tx);
        for t in tasks {
            t.await.expect("request task panicked");
        }
        writer.await.expect("writer panicked")
    });
    let elapsed = start.elapsed();
    let allocations = examples::allocations() - allocations;
    drop(rt);

    println!(
        "{responses} responses ({} MiB) from {CONCURRENCY} concurrent request tasks in {elapsed:.2?}: \
         {:.0} requests/s, {:.2} allocations per request",
        bytes >> 20,
        responses as f64 / elapsed.as_secs_f64(),
        allocations as f64 / responses as f64
    );
    let stats = pool.stats();
    println!("\nresponse buffers:\n{stats}");
    println!("\nbody strings:\n{}", BODIES.stats());
    assert_eq!(responses, REQUESTS);
    assert_eq!(stats.outstanding(), 0, "every response buffer came back");
    assert_eq!(BODIES.stats().outstanding(), 0, "every body came back");
}
