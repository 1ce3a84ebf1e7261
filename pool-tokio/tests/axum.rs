//! A `PooledBody` returned from an axum handler, served by axum's `Router`
//! through hyper over an in-memory connection: a counting global allocator
//! compares the allocations per response with a static body's, and each
//! response must carry the right `content-length` (not chunked) and give
//! its buffer back to the pool.

use axum::routing::get;
use axum::Router;
use bytes::{BufMut, Bytes};
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use pool_tokio::{BytesPool, PooledBody};

// Counts the allocations of the current thread (every request here runs
// on one current-thread runtime).
#[path = "support/thread_allocations.rs"]
mod thread_allocations;
use thread_allocations::allocations;

const BODY: usize = 4096;
static STATIC_BODY: [u8; BODY] = [b'x'; BODY];
const WARMUP: usize = 50;
const RESPONSES: usize = 500;

static POOL: std::sync::LazyLock<BytesPool> = std::sync::LazyLock::new(|| BytesPool::new().leak());

/// The handler under test: no adapter, the pooled body is the response.
async fn pooled() -> PooledBody {
    let mut buf = POOL.checkout(BODY);
    buf.put_bytes(b'x', BODY);
    PooledBody::new(buf)
}

/// The floor: axum's own static body (`Bytes::from_static`, boxed by axum).
async fn static_body() -> &'static [u8] {
    &STATIC_BODY
}

/// Serves `router` on one hyper HTTP/1.1 connection over an in-memory
/// pipe, both ends on this thread; returns the allocations of `RESPONSES`
/// request/response pairs after `WARMUP` unmeasured ones, checking every
/// response's headers and length.
fn axum_allocations(router: Router) -> u64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (client_io, server_io) = tokio::io::duplex(64 << 10);
        let server = tokio::spawn(
            hyper::server::conn::http1::Builder::new()
                // hyper renders its cached `Date` header anew once a
                // second, which allocates: a measurement that spans a
                // second boundary would count one more.
                .auto_date_header(false)
                .serve_connection(TokioIo::new(server_io), TowerToHyperService::new(router)),
        );
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(client_io))
                .await
                .unwrap();
        let client = tokio::spawn(conn);
        let mut before = 0;
        for i in 0..WARMUP + RESPONSES {
            if i == WARMUP {
                before = allocations();
            }
            let request = Request::builder().uri("/").body(Empty::new()).unwrap();
            let response = sender.send_request(request).await.unwrap();
            assert_eq!(response.status(), 200);
            let headers = response.headers();
            assert_eq!(headers["content-length"], "4096", "{headers:?}");
            assert!(!headers.contains_key("transfer-encoding"), "{headers:?}");
            let mut body = response.into_body();
            let mut len = 0;
            while let Some(frame) = body.frame().await {
                if let Some(data) = frame.unwrap().data_ref() {
                    len += data.len();
                }
            }
            assert_eq!(len, BODY);
        }
        let spent = allocations() - before;
        drop(sender);
        client.await.unwrap().unwrap();
        server.await.unwrap().unwrap();
        spent
    })
}

#[test]
fn axum_sends_a_pooled_body_with_content_length_and_at_most_one_allocation_more() {
    let floor = axum_allocations(Router::new().route("/", get(static_body)));
    let pooled = axum_allocations(Router::new().route("/", get(pooled)));
    // `cargo test -p pool-tokio --features axum --test axum -- --nocapture`
    // prints the figures the README quotes.
    println!(
        "per response through axum + hyper: static body {:.3}, pooled body {:.3} allocations",
        floor as f64 / RESPONSES as f64,
        pooled as f64 / RESPONSES as f64,
    );
    assert!(floor > 0, "axum and hyper allocate per request");
    // axum boxes every body (a static one too); the pooled one adds
    // `freeze`'s owner box at most.
    assert!(
        pooled <= floor + RESPONSES as u64,
        "pooled body: {pooled} allocations in {RESPONSES} responses, static body: {floor}"
    );
    let stats = POOL.stats();
    assert_eq!(stats.outstanding(), 0, "{stats}");
    assert_eq!(stats.total().discarded.total(), 0, "{stats}");
    assert_eq!(
        stats.misses(),
        1,
        "one buffer served every response: {stats}"
    );
}
