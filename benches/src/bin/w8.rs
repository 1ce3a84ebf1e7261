//! `w8`: length-delimited echo over loopback, plain tokio-util `Framed` +
//! `LengthDelimitedCodec` against pool-tokio's pooled frame path, side by
//! side in one run.
//!
//! ```text
//! cargo run --release -p benches --bin w8 -- [--quick] [--runs N] [--seconds S]
//!     [--connections C] [--bins PATH,PATH]
//! ```
//!
//! Frame sizes are log-uniform over the power-of-two classes from 16 B to
//! 1 MiB (a class drawn uniformly, then a size uniform inside it); about
//! one connection in ten is aborted mid-frame; every echoed byte is
//! checked. Each (contender, allocator, run) is a fresh child process
//! (this binary with `--child`); contenders alternate order run by run.
//! `--bins` names other builds of this binary (`--features jemalloc`):
//! every run goes through each build. The server runs on a 2-worker
//! runtime whose threads alone are counted by the counting allocator; the
//! client runs on its own thread, uncounted.
//!
//! Contenders:
//! - `plain`: `Framed::new(tcp, LengthDelimitedCodec)`; each frame echoed
//!   with `send(frame.freeze())`.
//! - `pooled`: `PooledLengthDelimitedCodec::new_reader` over the read half
//!   (frames are pooled buffers of their class, large bodies read straight
//!   into them) and `write_frame` on the write half (one vectored write of
//!   header + body).
//! - `framed`: `pool.framed(tcp, PooledLengthDelimitedCodec)`, the drop-in
//!   path; large bodies are read straight into the frame (as `pooled`
//!   does), and each frame is echoed with `send(frame)`, which queues the
//!   pooled frame by value and writes header and body vectored (no copy).

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Buf;
use futures_util::{SinkExt, StreamExt};
use pool_tokio::{BytesPool, PooledLengthDelimitedCodec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

// ------------------------------------------------------------ allocator

#[cfg(feature = "jemalloc")]
type Inner = tikv_jemallocator::Jemalloc;
#[cfg(feature = "jemalloc")]
const INNER: Inner = tikv_jemallocator::Jemalloc;
#[cfg(not(feature = "jemalloc"))]
type Inner = std::alloc::System;
#[cfg(not(feature = "jemalloc"))]
const INNER: Inner = std::alloc::System;

const ALLOCATOR: &str = if cfg!(feature = "jemalloc") {
    "jemalloc"
} else {
    "glibc"
};

thread_local! {
    /// Set on the server's runtime threads.
    static SERVER: Cell<bool> = const { Cell::new(false) };
}
/// On during the measured window.
static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static ALLOC_BYTES: AtomicU64 = AtomicU64::new(0);

#[inline]
fn count(size: usize) {
    if COUNTING.load(Relaxed) && SERVER.try_with(Cell::get).unwrap_or(false) {
        ALLOCS.fetch_add(1, Relaxed);
        ALLOC_BYTES.fetch_add(size as u64, Relaxed);
    }
}

/// Counts allocations (number and bytes) made on server threads while
/// counting is on; forwards everything to the build's allocator.
struct Counting;

// SAFETY: forwards every call unchanged to `INNER`; the counting is relaxed
// atomics and a const thread-local read, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { INNER.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: as above.
        unsafe { INNER.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: as above.
        unsafe { INNER.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { INNER.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// ------------------------------------------------------------ memory

fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

// ------------------------------------------------------------ workload

/// The largest frame; the codecs accept up to twice that.
const MAX_FRAME: usize = 1 << 20;
/// Smallest class exponent (16 B) and largest (1 MiB).
const MIN_EXP: u32 = 4;
const MAX_EXP: u32 = 20;
/// Frames per connection before it closes and the client reconnects.
const FRAMES_PER_CONNECTION: u64 = 200;
/// One connection in `ABORT_EVERY` is aborted mid-frame.
const ABORT_EVERY: u64 = 10;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// A frame length: class 2^k with k uniform, then uniform in it.
    fn frame_len(&mut self) -> usize {
        let k = MIN_EXP + self.below((MAX_EXP - MIN_EXP + 1) as u64) as u32;
        let hi = 1usize << k;
        hi / 2 + 1 + self.below((hi / 2) as u64) as usize
    }
}

/// Payload source: frame bytes are a window of this at a random offset, so
/// the client allocates nothing per frame and every byte is checkable.
fn pattern() -> Arc<Vec<u8>> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    Arc::new((0..2 * MAX_FRAME).map(|_| rng.next() as u8).collect())
}

#[derive(Default)]
struct ClientTally {
    frames: u64,
    bytes: u64,
    corrupt: u64,
    lost: u64,
    aborted: u64,
    latencies_us: Vec<u32>,
}

async fn client_connection(
    addr: std::net::SocketAddr,
    pattern: &[u8],
    rng: &mut Rng,
    warm: Instant,
    stop: Instant,
    tally: &mut ClientTally,
    scratch: &mut [u8],
) {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        tally.lost += 1;
        return;
    };
    stream.set_nodelay(true).ok();
    let abort_at = if rng.below(ABORT_EVERY) == 0 {
        Some(rng.below(FRAMES_PER_CONNECTION))
    } else {
        None
    };
    for i in 0..FRAMES_PER_CONNECTION {
        if Instant::now() >= stop {
            return;
        }
        let len = rng.frame_len();
        let off = rng.below(MAX_FRAME as u64) as usize;
        let body = &pattern[off..off + len];
        let head = (len as u32).to_be_bytes();
        if abort_at == Some(i) {
            // Header and half the body, then hang up.
            let mut part = Buf::chain(&head[..], &body[..len / 2]);
            let _ = stream.write_all_buf(&mut part).await;
            tally.aborted += 1;
            return;
        }
        let start = Instant::now();
        let mut out = Buf::chain(&head[..], body);
        if stream.write_all_buf(&mut out).await.is_err() {
            tally.lost += 1;
            return;
        }
        let mut h = [0u8; 4];
        if stream.read_exact(&mut h).await.is_err() {
            tally.lost += 1;
            return;
        }
        if u32::from_be_bytes(h) as usize != len {
            tally.corrupt += 1;
            return;
        }
        let mut got = 0;
        let mut ok = true;
        while got < len {
            let n = (len - got).min(scratch.len());
            if stream.read_exact(&mut scratch[..n]).await.is_err() {
                tally.lost += 1;
                return;
            }
            ok &= scratch[..n] == body[got..got + n];
            got += n;
        }
        if !ok {
            tally.corrupt += 1;
        }
        if start >= warm {
            tally.frames += 1;
            tally.bytes += len as u64;
            tally
                .latencies_us
                .push(start.elapsed().as_micros().min(u32::MAX as u128) as u32);
        }
    }
}

async fn serve_plain(stream: TcpStream) {
    let codec = LengthDelimitedCodec::builder()
        .max_frame_length(2 * MAX_FRAME)
        .new_codec();
    let mut framed = Framed::new(stream, codec);
    while let Some(Ok(frame)) = framed.next().await {
        if framed.send(frame.freeze()).await.is_err() {
            break;
        }
    }
}

async fn serve_pooled(stream: TcpStream, pool: BytesPool) {
    let codec = match PooledLengthDelimitedCodec::builder()
        .max_frame_length(2 * MAX_FRAME)
        .new_codec(&pool)
    {
        Ok(c) => c,
        Err(_) => return,
    };
    let (read, mut write) = stream.into_split();
    let mut frames = codec.new_reader(read);
    while let Some(Ok(frame)) = frames.next().await {
        if frames
            .codec()
            .write_frame(&mut write, &frame)
            .await
            .is_err()
        {
            break;
        }
    }
}

async fn serve_framed(stream: TcpStream, pool: BytesPool) {
    let codec = match PooledLengthDelimitedCodec::builder()
        .max_frame_length(2 * MAX_FRAME)
        .new_codec(&pool)
    {
        Ok(c) => c,
        Err(_) => return,
    };
    let mut framed = pool.framed(stream, codec);
    while let Some(Ok(frame)) = framed.next().await {
        if framed.send(frame).await.is_err() {
            break;
        }
    }
}

struct ChildArgs {
    contender: String,
    seconds: f64,
    connections: usize,
}

fn child(args: ChildArgs) -> ExitCode {
    let pool = BytesPool::new();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder
        .worker_threads(2)
        .enable_all()
        .on_thread_start(|| SERVER.with(|s| s.set(true)));
    let server_rt = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("w8: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (pooled, framed) = match args.contender.as_str() {
        "plain" => (false, false),
        "pooled" => (true, false),
        "framed" => (true, true),
        other => {
            eprintln!("w8: unknown contender {other}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match server_rt.block_on(TcpListener::bind("127.0.0.1:0")) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("w8: bind: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().expect("bound");
    let accept_pool = pool.clone();
    server_rt.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            stream.set_nodelay(true).ok();
            if framed {
                tokio::spawn(serve_framed(stream, accept_pool.clone()));
            } else if pooled {
                tokio::spawn(serve_pooled(stream, accept_pool.clone()));
            } else {
                tokio::spawn(serve_plain(stream));
            }
        }
    });
    if pooled {
        let p = pool.clone();
        server_rt.spawn(async move {
            p.spawn_maintenance(Duration::from_millis(100));
        });
    }

    let pattern = pattern();
    let total = Duration::from_secs_f64(args.seconds);
    let warmup = total / 5;
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let start = Instant::now();
    let (warm, stop) = (start + warmup, start + total);
    let counter = std::thread::spawn(move || {
        std::thread::sleep(warm.saturating_duration_since(Instant::now()));
        COUNTING.store(true, Relaxed);
        std::thread::sleep(stop.saturating_duration_since(Instant::now()));
        COUNTING.store(false, Relaxed);
    });
    let tallies: Vec<ClientTally> = client_rt.block_on(async {
        let tasks: Vec<_> = (0..args.connections)
            .map(|c| {
                let pattern = pattern.clone();
                tokio::spawn(async move {
                    let mut rng = Rng(0xD1B5_4A32_D192_ED03 ^ ((c as u64 + 1) * 0x9E37_79B9));
                    let mut tally = ClientTally {
                        latencies_us: Vec::with_capacity(1 << 16),
                        ..ClientTally::default()
                    };
                    let mut scratch = vec![0u8; 64 << 10];
                    while Instant::now() < stop {
                        client_connection(
                            addr,
                            &pattern,
                            &mut rng,
                            warm,
                            stop,
                            &mut tally,
                            &mut scratch,
                        )
                        .await;
                    }
                    tally
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("client task"));
        }
        out
    });
    let measured = stop.saturating_duration_since(warm).as_secs_f64();
    let _ = counter.join();
    let peak_kib = status_kib("VmHWM:");
    // Idle: the server's connections end; maintenance (pooled) decays.
    std::thread::sleep(Duration::from_millis(if args.seconds < 3.0 {
        1200
    } else {
        2000
    }));
    let idle_kib = status_kib("VmRSS:");

    let mut t = ClientTally::default();
    let mut lat = Vec::new();
    for x in tallies {
        t.frames += x.frames;
        t.bytes += x.bytes;
        t.corrupt += x.corrupt;
        t.lost += x.lost;
        t.aborted += x.aborted;
        lat.extend(x.latencies_us);
    }
    lat.sort_unstable();
    let pct = |p: f64| -> u32 {
        if lat.is_empty() {
            0
        } else {
            lat[((lat.len() - 1) as f64 * p) as usize]
        }
    };
    let stats = pool.stats();
    let d = stats.total().discarded;
    let frames = t.frames.max(1) as f64;
    println!(
        "W8 contender={} allocator={ALLOCATOR} frames={} fps={:.0} mibps={:.1} allocs_per_frame={:.4} \
         bytes_per_frame={:.0} p50_us={} p99_us={} peak_mib={:.1} idle_mib={:.1} hit_rate={:.4} \
         checkouts={} discard_full={} discard_oversize={} discard_shared={} discard_trimmed={} \
         discard_other={} outstanding={} corrupt={} lost={} aborted={}",
        args.contender,
        t.frames,
        t.frames as f64 / measured,
        t.bytes as f64 / measured / (1u64 << 20) as f64,
        ALLOCS.load(Relaxed) as f64 / frames,
        ALLOC_BYTES.load(Relaxed) as f64 / frames,
        pct(0.50),
        pct(0.99),
        mib(peak_kib),
        mib(idle_kib),
        if pooled { stats.hit_rate() } else { 0.0 },
        stats.checkouts(),
        d.full,
        d.oversize,
        d.shared,
        d.trimmed,
        d.rejected + d.stale,
        stats.outstanding(),
        t.corrupt,
        t.lost,
        t.aborted,
    );
    drop(server_rt);
    ExitCode::SUCCESS
}

// ------------------------------------------------------------ parent

fn field(line: &str, key: &str) -> Option<f64> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .and_then(|v| v.parse().ok())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn spread(v: &[f64]) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo, hi)
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("--child") {
        let (Some(contender), Some(seconds), Some(connections)) =
            (argv.get(1), argv.get(2), argv.get(3))
        else {
            eprintln!("--child needs CONTENDER SECONDS CONNECTIONS");
            return ExitCode::FAILURE;
        };
        let (Ok(seconds), Ok(connections)) = (seconds.parse(), connections.parse()) else {
            eprintln!("--child: bad seconds or connections");
            return ExitCode::FAILURE;
        };
        return child(ChildArgs {
            contender: contender.clone(),
            seconds,
            connections,
        });
    }
    let mut quick = false;
    let mut runs: Option<usize> = None;
    let mut seconds: Option<f64> = None;
    let mut connections: Option<usize> = None;
    let mut bins: Vec<PathBuf> = vec![];
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().unwrap_or_default();
        match a.as_str() {
            "--quick" => quick = true,
            "--runs" => runs = value().parse().ok(),
            "--seconds" => seconds = value().parse().ok(),
            "--connections" => connections = value().parse().ok(),
            "--bins" => {
                bins = value()
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from)
                    .collect()
            }
            _ => {
                eprintln!(
                    "usage: w8 [--quick] [--runs N] [--seconds S] [--connections C] [--bins PATH,...]\n\
                     (unknown argument {a:?}; --runs, --seconds and --connections take numbers)"
                );
                return ExitCode::FAILURE;
            }
        }
    }
    let runs = runs.unwrap_or(if quick { 2 } else { 5 });
    let seconds = seconds.unwrap_or(if quick { 2.0 } else { 6.0 });
    let connections = connections.unwrap_or(if quick { 16 } else { 64 });
    let me = std::env::current_exe().expect("own path");
    let mut builds = vec![me];
    builds.extend(bins);
    eprintln!(
        "W8: {runs} runs x {} builds x 3 contenders, {seconds} s each ({} s warm-up), {connections} connections",
        builds.len(),
        seconds / 5.0
    );
    // (allocator, contender) -> lines
    let mut lines: Vec<(String, String, usize, String)> = Vec::new();
    for run in 0..runs {
        for bin in &builds {
            let mut order = ["plain", "pooled", "framed"];
            order.rotate_left(run % 3);
            for contender in order {
                let out = Command::new(bin)
                    .args([
                        "--child",
                        contender,
                        &seconds.to_string(),
                        &connections.to_string(),
                    ])
                    .output();
                let out = match out {
                    Ok(o) if o.status.success() => o,
                    Ok(o) => {
                        eprintln!("w8: child failed: {}", String::from_utf8_lossy(&o.stderr));
                        return ExitCode::FAILURE;
                    }
                    Err(e) => {
                        eprintln!("w8: cannot run {}: {e}", bin.display());
                        return ExitCode::FAILURE;
                    }
                };
                let text = String::from_utf8_lossy(&out.stdout).to_string();
                let Some(line) = text.lines().find(|l| l.starts_with("W8 ")) else {
                    eprintln!("w8: child printed no result");
                    return ExitCode::FAILURE;
                };
                eprintln!("{line}");
                let alloc = line
                    .split_whitespace()
                    .find_map(|kv| kv.strip_prefix("allocator="))
                    .unwrap_or("?")
                    .to_string();
                lines.push((alloc, contender.to_string(), run, line.to_string()));
            }
        }
    }
    report(&lines, runs, seconds, connections, quick);
    ExitCode::SUCCESS
}

fn report(
    lines: &[(String, String, usize, String)],
    runs: usize,
    seconds: f64,
    connections: usize,
    quick: bool,
) {
    let mut allocators: Vec<String> = lines.iter().map(|l| l.0.clone()).collect();
    allocators.dedup();
    allocators.sort();
    allocators.dedup();
    println!(
        "\n### W8: length-delimited echo, {connections} connections, frames 16 B-1 MiB log-uniform, \
         1 in {ABORT_EVERY} connections aborted mid-frame; {runs} runs of {seconds} s{}\n",
        if quick { " (--quick)" } else { "" }
    );
    println!("Medians over runs, spread (min-max) in brackets.\n");
    println!("| allocator | contender | frames/s | MiB/s | allocs/frame | bytes alloc/frame | p50 µs | p99 µs | peak RSS MiB | RSS after idle MiB | hit rate | corrupt | lost |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let get = |a: &str, c: &str, key: &str| -> Vec<f64> {
        lines
            .iter()
            .filter(|l| l.0 == a && l.1 == c)
            .filter_map(|l| field(&l.3, key))
            .collect()
    };
    for a in &allocators {
        for c in ["plain", "pooled", "framed"] {
            let cell = |key: &str, prec: usize| {
                let mut v = get(a, c, key);
                let (lo, hi) = spread(&v);
                let m = median(&mut v);
                format!("{m:.prec$} [{lo:.prec$}-{hi:.prec$}]")
            };
            let sum = |key: &str| get(a, c, key).iter().sum::<f64>();
            println!(
                "| {a} | {c} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                cell("fps", 0),
                cell("mibps", 0),
                cell("allocs_per_frame", 3),
                cell("bytes_per_frame", 0),
                cell("p50_us", 0),
                cell("p99_us", 0),
                cell("peak_mib", 0),
                cell("idle_mib", 0),
                if c != "plain" {
                    cell("hit_rate", 4)
                } else {
                    "-".into()
                },
                sum("corrupt"),
                sum("lost"),
            );
        }
    }
    println!("\n| allocator | contender | /plain frames/s (per-run ratios: median [min-max]) | /plain peak RSS | allocs/frame | hit rate |");
    println!("|---|---|---:|---:|---:|---:|");
    for (a, c) in allocators
        .iter()
        .flat_map(|a| ["pooled", "framed"].map(|c| (a, c)))
    {
        let ratio = |key: &str| -> (f64, f64, f64) {
            let mut r: Vec<f64> = (0..runs)
                .filter_map(|run| {
                    let f = |c: &str| {
                        lines
                            .iter()
                            .find(|l| l.0 == *a && l.1 == c && l.2 == run)
                            .and_then(|l| field(&l.3, key))
                    };
                    Some(f(c)? / f("plain")?)
                })
                .collect();
            let (lo, hi) = spread(&r);
            (median(&mut r), lo, hi)
        };
        let (f, flo, fhi) = ratio("fps");
        let (m, mlo, mhi) = ratio("peak_mib");
        let mut apf = get(a, c, "allocs_per_frame");
        let mut hit = get(a, c, "hit_rate");
        println!(
            "| {a} | {c} | {f:.2}x [{flo:.2}-{fhi:.2}] (target >= 1.15x) | {m:.2}x [{mlo:.2}-{mhi:.2}] (target <= 0.5x) | {:.3} (target <= 0.05) | {:.2}% (target >= 95%) |",
            median(&mut apf),
            median(&mut hit) * 100.0
        );
    }
    let mut discards = String::new();
    for key in [
        "checkouts",
        "discard_full",
        "discard_oversize",
        "discard_shared",
        "discard_trimmed",
        "discard_other",
        "outstanding",
        "aborted",
    ] {
        let total: f64 = lines
            .iter()
            .filter(|l| l.1 != "plain")
            .filter_map(|l| field(&l.3, key))
            .sum();
        discards.push_str(&format!(" {key}={total:.0}"));
    }
    println!("\nPooled and framed runs, summed:{discards}");
}
