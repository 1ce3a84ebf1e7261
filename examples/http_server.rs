//! An HTTP/1.1 server (hyper 1.x) on 127.0.0.1 that answers every request
//! with a fixed-size body, for a bounded time, and then reports requests
//! served, allocations per request and the default pool's statistics. Load
//! it with an external client; `benches/w7.sh` runs it under `wrk`.
//!
//! The body is built per response in one of five ways (`--mode`):
//!
//! - `pooled-body`: `pool_tokio::checkout(n)`, filled, and sent as a
//!   `pool_tokio::PooledBody` (feature `http-body`): hyper's `Data` is the
//!   pooled buffer itself, which goes back to the pool when hyper drops it
//!   after writing. No `Bytes`, no owner box: no allocation on the body
//!   path.
//! - `pooled`: `pool_tokio::checkout(n)`, filled, then `.freeze()`. The
//!   buffer comes from the pool and goes back when hyper drops the body;
//!   `freeze` costs one small owner allocation (`Bytes::from_owner`) per
//!   response.
//! - `pooled-scratch`: each connection checks out one pooled scratch buffer;
//!   each response is written into it and split off (`split().freeze()`, no
//!   copy). Once hyper has written and dropped the previous body, the
//!   scratch buffer owns its memory again and the next response reuses it:
//!   no allocation on the body path. The buffer goes back to the pool when
//!   the connection ends.
//! - `fresh`: a new `BytesMut` per response, as a server without a pool.
//! - `static`: `Bytes::from_static`, no body allocation at all. This is the
//!   floor: the allocations hyper itself makes per request (request headers
//!   and the like), which no body strategy removes.
//!
//! Allocations are counted by [`examples::CountingAlloc`] across all
//! threads and reported over the steady-state window only: from one second
//! after the first request to the last 100 ms sample during which requests
//! were still being served, so connection setup and teardown are excluded.
//!
//! Run with `cargo run --release --example http_server -- --mode pooled
//! --seconds 10 --port 8080 --body-size 4096`, then load
//! `http://127.0.0.1:8080/`. On exit it prints a `W7 ...` summary line.

use std::cell::RefCell;
use std::convert::Infallible;
use std::future::ready;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use pool_tokio::PooledBody;
use tokio::net::TcpListener;

#[global_allocator]
static ALLOC: examples::CountingAlloc = examples::CountingAlloc;

/// Requests answered so far.
static REQUESTS: AtomicU64 = AtomicU64::new(0);
/// Largest body `--body-size` accepts (the `static` mode slices this).
const MAX_BODY: usize = 64 << 10;
static STATIC_BODY: [u8; MAX_BODY] = [b'x'; MAX_BODY];
/// Sampling period of requests and allocations.
const SAMPLE: Duration = Duration::from_millis(100);
/// Time after the first request that the steady-state window starts.
const WARMUP: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    PooledBody,
    Pooled,
    PooledScratch,
    Fresh,
    Static,
}

impl Mode {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pooled-body" => Mode::PooledBody,
            "pooled" => Mode::Pooled,
            "pooled-scratch" => Mode::PooledScratch,
            "fresh" => Mode::Fresh,
            "static" => Mode::Static,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Mode::PooledBody => "pooled-body",
            Mode::Pooled => "pooled",
            Mode::PooledScratch => "pooled-scratch",
            Mode::Fresh => "fresh",
            Mode::Static => "static",
        }
    }
}

#[derive(Debug)]
struct Args {
    mode: Mode,
    seconds: u64,
    port: u16,
    body_size: usize,
}

fn usage() -> ! {
    eprintln!(
        "usage: http_server [--mode pooled-body|pooled|pooled-scratch|fresh|static] [--seconds N] \
         [--port P] [--body-size BYTES (<= {MAX_BODY})]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args = Args {
        mode: Mode::Pooled,
        seconds: 10,
        port: 8080,
        body_size: 4096,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--mode" => args.mode = Mode::parse(&value).unwrap_or_else(|| usage()),
            "--seconds" => args.seconds = value.parse().unwrap_or_else(|_| usage()),
            "--port" => args.port = value.parse().unwrap_or_else(|_| usage()),
            "--body-size" => args.body_size = value.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    if args.body_size > MAX_BODY {
        usage();
    }
    args
}

/// Serves one connection with pooled bodies until the client closes it.
async fn connection_pooled_body(stream: tokio::net::TcpStream, n: usize) {
    let service = service_fn(move |_req: Request<hyper::body::Incoming>| {
        let mut buf = pool_tokio::checkout(n);
        buf.put_bytes(b'x', n);
        REQUESTS.fetch_add(1, Relaxed);
        ready(Ok::<_, Infallible>(Response::new(PooledBody::new(buf))))
    });
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// Serves one connection until the client closes it.
async fn connection(stream: tokio::net::TcpStream, mode: Mode, n: usize) {
    stream.set_nodelay(true).ok();
    if mode == Mode::PooledBody {
        return connection_pooled_body(stream, n).await;
    }
    // Only `pooled-scratch` uses it; the connection owns it, so it goes
    // back to the pool when the connection ends.
    let scratch = RefCell::new(match mode {
        Mode::PooledScratch => Some(pool_tokio::checkout(n)),
        _ => None,
    });
    let service = service_fn(move |_req: Request<hyper::body::Incoming>| {
        let body: Bytes = match mode {
            Mode::Pooled => {
                let mut buf = pool_tokio::checkout(n);
                buf.put_bytes(b'x', n);
                buf.freeze()
            }
            Mode::PooledScratch => {
                let mut guard = scratch.borrow_mut();
                let buf = guard.as_mut().expect("checked out for this mode");
                // Reclaims the whole buffer once the previous body is gone.
                buf.reserve(n);
                buf.put_bytes(b'x', n);
                buf.split().freeze()
            }
            Mode::Fresh => {
                let mut buf = BytesMut::with_capacity(n);
                buf.put_bytes(b'x', n);
                buf.freeze()
            }
            Mode::Static => Bytes::from_static(&STATIC_BODY[..n]),
            Mode::PooledBody => unreachable!("served by connection_pooled_body"),
        };
        REQUESTS.fetch_add(1, Relaxed);
        ready(Ok::<_, Infallible>(Response::new(Full::new(body))))
    });
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// (time, requests, allocations) every [`SAMPLE`].
type Sample = (Instant, u64, u64);

/// Allocations per request and requests over the steady-state window.
fn steady_state(samples: &[Sample]) -> Option<(f64, u64)> {
    let first = samples.iter().position(|s| s.1 > 0)?;
    let start = samples[first..]
        .iter()
        .position(|s| s.0 >= samples[first].0 + WARMUP)?
        + first;
    // Last sample after which requests still increased: the interval that
    // follows it was fully under load, so `end` excludes the teardown.
    let end = (start + 1..samples.len())
        .rev()
        .find(|&i| samples[i].1 > samples[i - 1].1)?
        .checked_sub(1)?;
    if end <= start {
        return None;
    }
    let requests = samples[end].1 - samples[start].1;
    let allocations = samples[end].2 - samples[start].2;
    (requests > 0).then(|| (allocations as f64 / requests as f64, requests))
}

fn main() -> std::io::Result<()> {
    let args = parse_args();
    let pool = pool_tokio::default_pool();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    pool.install(&mut builder);
    let runtime = builder.build()?;
    let started = Instant::now();
    let samples = runtime.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", args.port)).await?;
        println!(
            "http_server: mode {}, body {} B, {} s, listening on http://{}/",
            args.mode.name(),
            args.body_size,
            args.seconds,
            listener.local_addr()?
        );
        let (mode, n) = (args.mode, args.body_size);
        let acceptor = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        tokio::spawn(connection(stream, mode, n));
                    }
                    Err(e) => eprintln!("accept: {e}"),
                }
            }
        });
        let deadline = started + Duration::from_secs(args.seconds);
        let mut samples: Vec<Sample> =
            Vec::with_capacity((args.seconds as usize + 1) * 1000 / SAMPLE.as_millis() as usize);
        let mut tick = tokio::time::interval(SAMPLE);
        while Instant::now() < deadline {
            tick.tick().await;
            if samples.len() < samples.capacity() {
                samples.push((
                    Instant::now(),
                    REQUESTS.load(Relaxed),
                    examples::allocations(),
                ));
            }
        }
        acceptor.abort();
        Ok::<_, std::io::Error>(samples)
    })?;
    let total = REQUESTS.load(Relaxed);
    let stats = pool.stats();
    println!("requests served: {total}");
    let (per_request, window) = match steady_state(&samples) {
        Some((p, w)) => {
            println!("allocations per request: {p:.3} (steady state, {w} requests)");
            (format!("{p:.3}"), w)
        }
        None => {
            println!("allocations per request: n/a (no steady-state window)");
            ("n/a".into(), 0)
        }
    };
    println!("pool statistics (default pool):\n{stats}");
    let d = stats.total().discarded;
    println!(
        "discards by reason: full {} oversize {} shared {} stale {} rejected {} trimmed {}",
        d.full, d.oversize, d.shared, d.stale, d.rejected, d.trimmed
    );
    let hit_rate = if stats.checkouts() > 0 {
        format!("{:.1}%", stats.hit_rate() * 100.0)
    } else {
        "-".into()
    };
    println!(
        "W7 mode={} requests={total} window_requests={window} allocs_per_request={per_request} \
         hit_rate={hit_rate} checkouts={}",
        args.mode.name(),
        stats.checkouts()
    );
    drop(runtime);
    Ok(())
}
