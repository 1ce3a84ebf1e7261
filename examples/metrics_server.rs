//! A Prometheus endpoint for pool metrics (pool-tokio's `metrics` feature
//! and `metrics-exporter-prometheus`), on loopback only.
//!
//! Two named pools serve a synthetic workload (requests of mixed sizes,
//! some frames split off and kept, which the pool must discard as shared);
//! one `spawn_metrics_for` task exports their statistics every second, and
//! `http://127.0.0.1:PORT/metrics` serves them.
//!
//! ```text
//! cargo run --release -p examples --example metrics_server -- --port 9184
//! curl -s http://127.0.0.1:9184/metrics | grep pool_tokio
//! cargo run -p examples --example metrics_server -- --once   # smoke test
//! ```
//!
//! With `--once` it runs the workload once, scrapes its own endpoint, prints
//! the `pool_tokio_*` series and what the pools did, and exits (non-zero if
//! the scrape lacks them). Without it, it serves until interrupted.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::BufMut;
use metrics_exporter_prometheus::PrometheusBuilder;
use pool_tokio::BytesPool;

struct Args {
    port: u16,
    once: bool,
}

fn usage() -> ! {
    eprintln!("usage: metrics_server [--port P (default: a free one)] [--once]");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args = Args {
        port: 0,
        once: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--once" => args.once = true,
            "--port" => {
                args.port = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            _ => usage(),
        }
    }
    args
}

/// A free loopback port (bound, read, released).
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// One round of traffic: `n` requests across both pools.
async fn workload(requests: &BytesPool, frames: &BytesPool, n: usize) {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (requests, frames) = (requests.clone(), frames.clone());
            tokio::spawn(async move {
                let size = 300 << (i % 6); // 300 B .. 9.6 KB
                let mut req = requests.checkout(size);
                req.put_bytes(b'r', size);
                tokio::task::yield_now().await; // may move to another worker
                let mut frame = frames.checkout(4096);
                frame.put_bytes(b'f', 100);
                if i % 10 == 0 {
                    // A frame kept past its buffer: that buffer is discarded.
                    let kept = frame.split_to(10);
                    drop(frame);
                    drop(kept);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("workload task");
    }
}

/// `GET /metrics` over a plain TCP connection; returns the body.
fn scrape(addr: SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response
        .split_once("\r\n\r\n")
        .map_or(response.clone(), |(_, body)| body.to_string()))
}

fn report(pool: &BytesPool) {
    let stats = pool.stats();
    let d = stats.total().discarded;
    println!("pool {:?}:\n{stats}", pool.name());
    println!(
        "  discards by reason: full {} oversize {} shared {} stale {} rejected {} trimmed {}",
        d.full, d.oversize, d.shared, d.stale, d.rejected, d.trimmed
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args();
    let requests = BytesPool::builder()
        .name("requests")
        .budget(8 << 20)
        .build()?;
    let frames = BytesPool::builder().name("frames").build()?;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2).enable_all();
    requests.hooks().pool(&frames).install(&mut builder);
    let runtime = builder.build()?;
    let port = if args.port == 0 {
        free_port()?
    } else {
        args.port
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));

    let scraped = runtime.block_on(async {
        // Spawns the HTTP listener on this runtime; loopback only.
        PrometheusBuilder::new()
            .with_http_listener(addr)
            .install()?;
        println!("metrics_server: serving http://{addr}/metrics");
        // One task exports both pools.
        let exporter = BytesPool::spawn_metrics_for(
            [requests.clone(), frames.clone()],
            Duration::from_secs(1),
        );
        let scraped = if args.once {
            workload(&requests, &frames, 1000).await;
            BytesPool::export_metrics_for(&[requests.clone(), frames.clone()]);
            let body = tokio::task::spawn_blocking(move || scrape(addr)).await??;
            Some(body)
        } else {
            loop {
                workload(&requests, &frames, 1000).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        };
        exporter.abort();
        Ok::<_, Box<dyn std::error::Error>>(scraped)
    })?;
    report(&requests);
    report(&frames);
    if let Some(body) = scraped {
        let series: Vec<&str> = body
            .lines()
            .filter(|l| l.starts_with("pool_tokio_") && !l.ends_with(" 0"))
            .collect();
        println!(
            "scraped {} non-zero pool_tokio series, among them:",
            series.len()
        );
        for line in series.iter().take(12) {
            println!("  {line}");
        }
        let want = [
            "pool_tokio_checkouts_total{pool=\"requests\"",
            "pool_tokio_discards_total{pool=\"frames\",class_bytes=\"4096\",reason=\"shared\"}",
            "pool_tokio_budget_limit_bytes{pool=\"requests\"}",
        ];
        for w in want {
            if !body.lines().any(|l| l.starts_with(w)) {
                return Err(format!("the scrape has no series starting with {w}").into());
            }
        }
    }
    drop(runtime);
    Ok(())
}
