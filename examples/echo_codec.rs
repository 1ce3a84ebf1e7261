//! A TCP echo service on loopback speaking `LengthDelimitedCodec`, driven by
//! a built-in client with many concurrent connections. Runs twice, with
//! pooled buffers and with fresh ones, and prints throughput, allocations
//! per request and the pool's statistics.
//!
//! Pooled mode: the server speaks the same wire format through
//! `PooledLengthDelimitedCodec` in `BytesPool::framed`: the `Framed` read
//! and write buffers come from the pool, each decoded request is a pooled
//! buffer of its own size class (copied out of the read buffer as it
//! arrives, so the read buffer is never pinned by a frame), and each
//! response is built in a pooled buffer of its class, encoded, and
//! returned. Every buffer goes back to the pool, on whatever worker drops
//! it: no allocation per request once the pool is warm.
//! Fresh mode is tokio-util's `LengthDelimitedCodec` with a `BytesMut`
//! allocated per response, as a service without a pool would write it.
//!
//! At the end it prints what the pool did: checkouts, hits, misses, and
//! discards by reason.
//!
//! Run with `cargo run --release --example echo_codec`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use pool_tokio::{BytesPool, PooledLengthDelimitedCodec};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

#[global_allocator]
static ALLOC: examples::CountingAlloc = examples::CountingAlloc;

/// Client connections open at once.
const CONCURRENT: usize = 64;
/// Connections each client worker opens one after another.
const CONNECTIONS_PER_WORKER: usize = 8;
/// Requests per connection.
const REQUESTS: usize = 200;
/// Each mode stops early at this deadline.
const DEADLINE: Duration = Duration::from_secs(15);
/// Request payload sizes, cycled.
const SIZES: [usize; 5] = [64, 512, 1500, 4000, 12_000];
/// Read and write buffer size of every connection, both modes: large
/// enough for the largest frame, so neither mode regrows its buffers.
const FRAME_BUFFER: usize = 32 << 10;
/// Bytes the server prepends to each echoed payload.
const HEADER: usize = 8;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Pooled,
    Fresh,
}

async fn serve(listener: TcpListener, mode: Mode, pool: BytesPool) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        stream.set_nodelay(true).ok();
        let pool = pool.clone();
        tokio::spawn(async move {
            match mode {
                Mode::Pooled => {
                    let codec = PooledLengthDelimitedCodec::new(&pool);
                    let mut framed =
                        pool.framed_with_capacity(stream, codec, FRAME_BUFFER, FRAME_BUFFER);
                    while let Some(Ok(frame)) = framed.next().await {
                        // A pooled buffer of the response's class: a hit
                        // once the pool is warm.
                        let mut response = pool.checkout(frame.len() + HEADER);
                        response.put_u64(frame.len() as u64);
                        response.put_slice(&frame);
                        drop(frame);
                        if framed.send(response).await.is_err() {
                            break;
                        }
                    }
                }
                Mode::Fresh => {
                    let mut framed =
                        Framed::with_capacity(stream, LengthDelimitedCodec::new(), FRAME_BUFFER);
                    while let Some(Ok(frame)) = framed.next().await {
                        let mut out = BytesMut::with_capacity(frame.len() + HEADER);
                        out.put_u64(frame.len() as u64);
                        out.put_slice(&frame);
                        drop(frame);
                        if framed.send(out.freeze()).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
    }
}

/// One client connection: `REQUESTS` request/response round trips.
async fn connection(
    addr: SocketAddr,
    payloads: &[Bytes],
    deadline: Instant,
) -> std::io::Result<(u64, u64)> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut requests, mut bytes) = (0, 0);
    macro_rules! round_trips {
        ($framed:expr) => {{
            let framed = &mut $framed;
            for i in 0..REQUESTS {
                if Instant::now() > deadline {
                    break;
                }
                let payload = &payloads[i % payloads.len()];
                framed.send(payload.clone()).await?;
                let reply = framed
                    .next()
                    .await
                    .ok_or(std::io::ErrorKind::UnexpectedEof)??;
                assert_eq!(reply.len(), payload.len() + HEADER);
                assert_eq!(&reply[HEADER..], &payload[..]);
                requests += 1;
                bytes += reply.len() as u64 + payload.len() as u64;
            }
        }};
    }
    // The load generator is the same plain client in both modes: only the
    // server changes.
    round_trips!(Framed::with_capacity(
        stream,
        LengthDelimitedCodec::new(),
        FRAME_BUFFER
    ));
    Ok((requests, bytes))
}

struct Report {
    requests: u64,
    bytes: u64,
    elapsed: Duration,
    allocations: u64,
}

async fn run(mode: Mode, pool: BytesPool) -> std::io::Result<Report> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(serve(listener, mode, pool.clone()));
    let payloads: Vec<Bytes> = SIZES
        .iter()
        .enumerate()
        .map(|(i, &n)| Bytes::from(vec![b'a' + i as u8; n]))
        .collect();
    let start = Instant::now();
    let deadline = start + DEADLINE;
    let allocations = examples::allocations();
    let workers: Vec<_> = (0..CONCURRENT)
        .map(|_| {
            let payloads = payloads.clone();
            tokio::spawn(async move {
                let (mut requests, mut bytes) = (0, 0);
                for _ in 0..CONNECTIONS_PER_WORKER {
                    let (r, b) = connection(addr, &payloads, deadline).await?;
                    requests += r;
                    bytes += b;
                }
                Ok::<_, std::io::Error>((requests, bytes))
            })
        })
        .collect();
    let (mut requests, mut bytes) = (0, 0);
    for w in workers {
        let (r, b) = w.await.expect("client worker panicked")?;
        requests += r;
        bytes += b;
    }
    let elapsed = start.elapsed();
    let allocations = examples::allocations() - allocations;
    server.abort();
    Ok(Report {
        requests,
        bytes,
        elapsed,
        allocations,
    })
}

fn print(mode: Mode, r: &Report) {
    let secs = r.elapsed.as_secs_f64();
    println!(
        "{:>6}: {} requests in {:.2?}: {:.0} requests/s, {:.1} MiB/s, {:.2} allocations per request",
        format!("{mode:?}").to_lowercase(),
        r.requests,
        r.elapsed,
        r.requests as f64 / secs,
        r.bytes as f64 / secs / (1 << 20) as f64,
        r.allocations as f64 / r.requests.max(1) as f64,
    );
}

fn main() -> std::io::Result<()> {
    let pool = pool_tokio::default_pool().clone();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    pool.install(&mut builder);
    let rt = builder.build()?;
    println!(
        "echo over loopback: {} connections ({CONCURRENT} at once) x {REQUESTS} requests, payloads {SIZES:?} bytes",
        CONCURRENT * CONNECTIONS_PER_WORKER
    );
    let fresh = rt.block_on(run(Mode::Fresh, pool.clone()))?;
    print(Mode::Fresh, &fresh);
    let pooled = rt.block_on(run(Mode::Pooled, pool.clone()))?;
    print(Mode::Pooled, &pooled);
    // Let the servers' connection tasks see the clients hang up.
    rt.block_on(async { tokio::time::sleep(Duration::from_millis(100)).await });
    drop(rt);
    println!(
        "pooled/fresh throughput: {:.2}x",
        (pooled.requests as f64 / pooled.elapsed.as_secs_f64())
            / (fresh.requests as f64 / fresh.elapsed.as_secs_f64())
    );
    let stats = pool.stats();
    println!("\npool statistics (pooled run):\n{stats}");
    let total = stats.total();
    let d = total.discarded;
    println!(
        "pool: {} checkouts, {} hits ({:.2}%), {} misses; discarded: {} full, {} oversize, \
         {} shared, {} rejected, {} stale, {} trimmed",
        stats.checkouts(),
        stats.hits(),
        stats.hit_rate() * 100.0,
        stats.misses(),
        d.full,
        d.oversize,
        d.shared,
        d.rejected,
        d.stale,
        d.trimmed,
    );
    assert_eq!(stats.outstanding(), 0, "every buffer came back");
    Ok(())
}
