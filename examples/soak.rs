//! Soak: a TCP echo service on loopback speaking `LengthDelimitedCodec` on
//! pooled buffers (`BytesPool::framed`), driven for a bounded time by many
//! client connections, while faults are injected. Every frame carries a
//! checksum of its payload, its connection id and its sequence number; the
//! client verifies each echo.
//!
//! Injected all the time:
//! - frame sizes across every class and above the largest one (unpooled);
//! - client connections aborted at random points (their frames are not
//!   counted as lost);
//! - holder tasks that keep a `PooledBytes` or a frozen `Bytes` clone of an
//!   echoed frame for a random time, half of them aborted while holding it;
//!   those that finish verify their bytes did not change;
//! - blocking-pool churn: `spawn_blocking` tasks that check buffers out and
//!   return them there or hand them back to the async side, on a runtime
//!   whose blocking threads exit after a few milliseconds idle.
//!
//! Checked: zero corrupted frames; zero lost frames on connections not
//! aborted; retained bytes within the configured bound throughout; when the
//! runtime is gone, zero buffers outstanding and retained bytes within the
//! bound of the one thread left.
//!
//! Long run: `cargo run --release --example soak -- --seconds 60`
//! (options: `--seconds S`, `--concurrent N`, `--abort-percent P`,
//! `--seed N`). A short run is a test: `cargo test -p examples --example soak`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes};
use futures_util::{SinkExt, StreamExt};
use pool_core::BufferConfig;
use pool_tokio::BytesPool;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::LengthDelimitedCodec;

/// Frame header: connection id (u32), sequence number (u32); trailer: the
/// checksum (u64) of header and body.
const HEADER: usize = 8;
const TRAILER: usize = 8;
/// The largest frame sent: well above the largest class.
const MAX_FRAME: usize = 160 << 10;
/// Frames a client has in flight before it reads echoes.
const WINDOW: usize = 4;
/// Worker threads of the runtime.
const WORKERS: usize = 4;
/// Blocking threads at most; they exit after `BLOCKING_KEEP_ALIVE` idle,
/// so the blocking pool keeps starting new threads.
const MAX_BLOCKING: usize = 8;
const BLOCKING_KEEP_ALIVE: Duration = Duration::from_millis(5);
/// How often the sampler reads the pool's retained bytes.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

/// What a run does.
#[derive(Debug, Clone, Copy)]
struct Settings {
    /// Clients stop opening connections after this.
    duration: Duration,
    /// Client connections open at once.
    concurrent: usize,
    /// Percent of connections aborted at a random point.
    abort_percent: u64,
    seed: u64,
}

/// The pool under test: classes 512 B ..= 64 KiB, small per-thread and
/// global bounds so that batches move and bounds are hit all the time.
fn pool_config() -> BufferConfig {
    BufferConfig::new()
        .min_class(512)
        .max_class(64 << 10)
        .thread_capacity(16)
        .thread_bytes(128 << 10)
        .depot_capacity(64)
        .depot_bytes(4 << 20)
        .decay_interval(Duration::from_millis(100))
}

/// A small, fast, seedable generator (xorshift64*).
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// A frame size: a class picked uniformly (512 B ..= 64 KiB, and the
    /// range above it), then a size within it.
    fn frame_size(&mut self) -> usize {
        let shift = 9 + self.below(9) as u32; // 512 .. 128 Ki
        let hi = (1usize << shift).min(MAX_FRAME);
        let lo = (hi / 2).max(HEADER + TRAILER);
        lo + self.below((hi - lo) as u64 + 1) as usize
    }
}

/// A checksum of `data`, eight bytes at a time.
fn checksum(data: &[u8]) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
        h = (h ^ w).wrapping_mul(0x0000_0100_0000_01B3).rotate_left(29);
    }
    for &b in chunks.remainder() {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

/// Builds a frame of `size` bytes (at least header + trailer) in a pooled
/// buffer.
fn make_frame(pool: &BytesPool, rng: &mut Rng, conn: u32, seq: u32, size: usize) -> Bytes {
    let mut buf = pool.checkout(size);
    buf.put_u32_le(conn);
    buf.put_u32_le(seq);
    while buf.len() + 8 <= size - TRAILER {
        buf.put_u64_le(rng.next());
    }
    while buf.len() < size - TRAILER {
        buf.put_u8(rng.next() as u8);
    }
    let sum = checksum(&buf);
    buf.put_u64_le(sum);
    buf.freeze()
}

/// Whether `frame` is intact: its trailer matches its contents.
fn intact(frame: &[u8]) -> bool {
    if frame.len() < HEADER + TRAILER {
        return false;
    }
    let (body, trailer) = frame.split_at(frame.len() - TRAILER);
    trailer.try_into().map(u64::from_le_bytes).ok() == Some(checksum(body))
}

fn header(frame: &[u8]) -> (u32, u32) {
    let word = |i: usize| u32::from_le_bytes([frame[i], frame[i + 1], frame[i + 2], frame[i + 3]]);
    (word(0), word(4))
}

/// Counters of one run, shared by every task.
#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    aborted_connections: AtomicU64,
    frames_sent: AtomicU64,
    frames_verified: AtomicU64,
    frames_sent_on_aborted: AtomicU64,
    corrupted: AtomicU64,
    lost: AtomicU64,
    bytes: AtomicU64,
    io_errors: AtomicU64,
    holders: AtomicU64,
    holders_aborted: AtomicU64,
    holders_verified: AtomicU64,
    blocking_tasks: AtomicU64,
    max_retained: AtomicU64,
    samples: AtomicU64,
    bound_violations: AtomicU64,
}

/// What a run found, for the report and the assertions.
#[derive(Debug)]
struct Figures {
    elapsed: Duration,
    counters: Arc<Counters>,
    blocking_threads: usize,
    retained_bound: u64,
    end_outstanding: u64,
    end_retained: u64,
    end_bound: u64,
    stats: pool_core::Stats,
}

/// What the server does with one received frame.
async fn echo_one(
    pool: &BytesPool,
    frame: bytes::BytesMut,
    rng: &mut Rng,
    holders: &Holders,
    counters: &Arc<Counters>,
    blocking_seen: &Arc<Mutex<HashSet<std::thread::ThreadId>>>,
) -> Bytes {
    match rng.below(8) {
        // The frame itself, frozen: it shares the read buffer's memory.
        0 | 1 => frame.freeze(),
        // Copied on a blocking thread into a buffer checked out there.
        2 => {
            counters.blocking_tasks.fetch_add(1, Relaxed);
            let (pool, seen) = (pool.clone(), blocking_seen.clone());
            let copy = tokio::task::spawn_blocking(move || {
                seen.lock().unwrap().insert(std::thread::current().id());
                let mut out = pool.checkout(frame.len());
                out.put_slice(&frame);
                out
            })
            .await;
            match copy {
                Ok(out) => out.freeze(),
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        }
        // Copied into a pooled buffer and frozen; sometimes a holder task
        // keeps a clone (or a pooled copy) for a while.
        _ => {
            let mut out = pool.checkout(frame.len());
            out.put_slice(&frame);
            drop(frame);
            let out = out.freeze();
            if rng.below(4) == 0 {
                holders.spawn(pool, out.clone(), rng, counters);
            }
            out
        }
    }
}

/// Tasks that keep buffers for a while; a reaper aborts half of them.
#[derive(Clone, Default)]
struct Holders(Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>);

impl Holders {
    fn spawn(&self, pool: &BytesPool, frame: Bytes, rng: &mut Rng, counters: &Arc<Counters>) {
        counters.holders.fetch_add(1, Relaxed);
        let hold = Duration::from_micros(rng.below(20_000));
        let pooled_copy = rng.below(2) == 0;
        let (pool, counters2) = (pool.clone(), counters.clone());
        let task = tokio::spawn(async move {
            // Either the frozen clone itself or a PooledBytes copy of it.
            let copy = pooled_copy.then(|| {
                let mut b = pool.checkout(frame.len());
                b.put_slice(&frame);
                b
            });
            tokio::time::sleep(hold).await;
            let ok = intact(&frame) && copy.as_ref().is_none_or(|c| intact(c));
            if ok {
                counters2.holders_verified.fetch_add(1, Relaxed);
            } else {
                counters2.corrupted.fetch_add(1, Relaxed);
            }
        });
        let mut tasks = self.0.lock().unwrap();
        tasks.retain(|t| !t.is_finished());
        // Abort every other holder at a random point of its hold.
        if rng.below(2) == 0 {
            let abort = task.abort_handle();
            let delay = Duration::from_micros(rng.below(20_000));
            let counters = counters.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if !abort.is_finished() {
                    abort.abort();
                    counters.holders_aborted.fetch_add(1, Relaxed);
                }
            });
        }
        tasks.push(task);
    }
}

async fn serve(
    listener: TcpListener,
    pool: BytesPool,
    seed: u64,
    holders: Holders,
    counters: Arc<Counters>,
    blocking_seen: Arc<Mutex<HashSet<std::thread::ThreadId>>>,
) {
    let mut n = 0u64;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        n += 1;
        stream.set_nodelay(true).ok();
        let (pool, holders, counters, seen) = (
            pool.clone(),
            holders.clone(),
            counters.clone(),
            blocking_seen.clone(),
        );
        tokio::spawn(async move {
            let mut rng = Rng::new(seed ^ (n << 32));
            let codec = LengthDelimitedCodec::builder()
                .max_frame_length(MAX_FRAME)
                .new_codec();
            let mut framed = pool.framed(stream, codec);
            while let Some(Ok(frame)) = framed.next().await {
                let reply = echo_one(&pool, frame, &mut rng, &holders, &counters, &seen).await;
                if framed.send(reply).await.is_err() {
                    break;
                }
            }
        });
    }
}

/// One client connection: sends `frames` frames, `WINDOW` in flight, and
/// verifies every echo. Returns frames verified.
async fn client(
    addr: SocketAddr,
    pool: BytesPool,
    conn: u32,
    frames: u32,
    seed: u64,
    counters: Arc<Counters>,
    sent_here: Arc<AtomicU64>,
) -> std::io::Result<u64> {
    let mut rng = Rng::new(seed ^ conn as u64);
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let codec = LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec();
    let mut framed = pool.framed(stream, codec);
    let (mut next_send, mut next_recv) = (0u32, 0u32);
    while next_recv < frames {
        while next_send < frames && next_send - next_recv < WINDOW as u32 {
            let size = rng.frame_size();
            let frame = make_frame(&pool, &mut rng, conn, next_send, size);
            framed.feed(frame).await?;
            next_send += 1;
            sent_here.fetch_add(1, Relaxed);
            counters.frames_sent.fetch_add(1, Relaxed);
        }
        SinkExt::<Bytes>::flush(&mut framed).await?;
        let Some(echo) = framed.next().await else {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        };
        let echo = echo?;
        if !intact(&echo) || header(&echo) != (conn, next_recv) {
            counters.corrupted.fetch_add(1, Relaxed);
        } else {
            counters.frames_verified.fetch_add(1, Relaxed);
            counters.bytes.fetch_add(echo.len() as u64, Relaxed);
        }
        next_recv += 1;
    }
    Ok(next_recv as u64)
}

async fn drive(settings: Settings, pool: BytesPool, counters: Arc<Counters>) -> usize {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local address");
    let holders = Holders::default();
    let blocking_seen = Arc::new(Mutex::new(HashSet::new()));
    let server = tokio::spawn(serve(
        listener,
        pool.clone(),
        settings.seed,
        holders.clone(),
        counters.clone(),
        blocking_seen.clone(),
    ));
    // Blocking-pool churn beside the echo traffic.
    let churn = {
        let (pool, counters, seen) = (pool.clone(), counters.clone(), blocking_seen.clone());
        tokio::spawn(async move {
            let mut rng = Rng::new(settings.seed ^ 0xB10C);
            loop {
                let sizes: Vec<usize> = (0..1 + rng.below(6)).map(|_| rng.frame_size()).collect();
                let (p, s) = (pool.clone(), seen.clone());
                counters.blocking_tasks.fetch_add(1, Relaxed);
                let back = tokio::task::spawn_blocking(move || {
                    s.lock().unwrap().insert(std::thread::current().id());
                    let mut kept = Vec::new();
                    for (i, size) in sizes.into_iter().enumerate() {
                        let mut b = p.checkout(size);
                        b.put_bytes(i as u8, size.min(4096));
                        if i % 2 == 0 {
                            kept.push(b); // returned on a worker
                        }
                    }
                    kept
                })
                .await
                .expect("blocking task");
                drop(back);
                // Idle past the keep-alive now and then: the thread exits.
                let pause = if rng.below(4) == 0 {
                    BLOCKING_KEEP_ALIVE * 3
                } else {
                    Duration::from_micros(200)
                };
                tokio::time::sleep(pause).await;
            }
        })
    };
    let deadline = Instant::now() + settings.duration;
    let next_conn = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..settings.concurrent)
        .map(|w| {
            let (pool, counters, next_conn) = (pool.clone(), counters.clone(), next_conn.clone());
            tokio::spawn(async move {
                let mut rng = Rng::new(settings.seed ^ (w as u64) << 40);
                while Instant::now() < deadline {
                    let conn = next_conn.fetch_add(1, Relaxed) as u32;
                    counters.connections.fetch_add(1, Relaxed);
                    let frames = 1 + rng.below(48) as u32;
                    let doomed = rng.below(100) < settings.abort_percent;
                    let sent = Arc::new(AtomicU64::new(0));
                    let task = tokio::spawn(client(
                        addr,
                        pool.clone(),
                        conn,
                        frames,
                        settings.seed,
                        counters.clone(),
                        sent.clone(),
                    ));
                    if doomed {
                        let at = Duration::from_micros(rng.below(30_000));
                        let abort = task.abort_handle();
                        tokio::spawn(async move {
                            tokio::time::sleep(at).await;
                            abort.abort();
                        });
                    }
                    match task.await {
                        Ok(Ok(verified)) => {
                            // Every frame of a finished connection came back.
                            counters
                                .lost
                                .fetch_add(frames as u64 - verified.min(frames as u64), Relaxed);
                        }
                        Ok(Err(_)) => {
                            // An I/O error on loopback without an abort loses
                            // the connection's outstanding frames.
                            counters.io_errors.fetch_add(1, Relaxed);
                            counters.lost.fetch_add(frames as u64, Relaxed);
                        }
                        Err(e) if e.is_cancelled() => {
                            counters.aborted_connections.fetch_add(1, Relaxed);
                            counters
                                .frames_sent_on_aborted
                                .fetch_add(sent.load(Relaxed), Relaxed);
                        }
                        Err(e) => std::panic::resume_unwind(e.into_panic()),
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await.expect("client worker panicked");
    }
    churn.abort();
    server.abort();
    let _ = churn.await;
    let _ = server.await;
    // Holders still running are aborted when the runtime drops.
    let n = blocking_seen.lock().unwrap().len();
    n
}

fn run(settings: Settings) -> Figures {
    let config = pool_config();
    let pool = BytesPool::with_config(config).expect("valid settings");
    let counters = Arc::new(Counters::default());
    // Bound while running: the depot plus every cache of every
    // thread that can be alive at once (workers, blocking threads, and the
    // thread in block_on).
    let retained_bound = config.get_depot_bytes() as u64
        + (WORKERS + MAX_BLOCKING + 1) as u64 * config.thread_bytes_bound() as u64;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder
        .worker_threads(WORKERS)
        .max_blocking_threads(MAX_BLOCKING)
        .thread_keep_alive(BLOCKING_KEEP_ALIVE)
        .enable_all();
    pool.install(&mut builder);
    let rt = builder.build().expect("runtime");
    let start = Instant::now();
    // Samples retained bytes from a plain thread, whatever the runtime does.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (pool, counters, stop) = (pool.clone(), counters.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Relaxed) {
                let retained = pool.stats().retained_bytes();
                counters.max_retained.fetch_max(retained, Relaxed);
                counters.samples.fetch_add(1, Relaxed);
                if retained > retained_bound {
                    counters.bound_violations.fetch_add(1, Relaxed);
                }
                std::thread::sleep(SAMPLE_EVERY);
            }
        })
    };
    let blocking_threads = rt.block_on(drive(settings, pool.clone(), counters.clone()));
    drop(rt); // every task, aborted or not, is dropped here
    let elapsed = start.elapsed();
    stop.store(true, Relaxed);
    sampler.join().expect("sampler");
    let stats = pool.stats();
    Figures {
        elapsed,
        counters,
        blocking_threads,
        retained_bound,
        end_outstanding: stats.outstanding(),
        end_retained: stats.retained_bytes(),
        // Workers and blocking threads flushed their caches as they stopped;
        // what is left is the depot and this thread's cache.
        end_bound: config.get_depot_bytes() as u64 + config.thread_bytes_bound() as u64,
        stats,
    }
}

fn report(s: &Settings, f: &Figures) {
    let c = &f.counters;
    let get = |a: &AtomicU64| a.load(Relaxed);
    println!(
        "soak: {:.1?} on loopback, {} workers, {} concurrent connections, seed {}",
        f.elapsed, WORKERS, s.concurrent, s.seed
    );
    println!(
        "connections: {} ({} aborted at random points)",
        get(&c.connections),
        get(&c.aborted_connections)
    );
    println!(
        "frames: {} sent, {} verified ({:.1} MiB), {} sent on aborted connections",
        get(&c.frames_sent),
        get(&c.frames_verified),
        get(&c.bytes) as f64 / (1 << 20) as f64,
        get(&c.frames_sent_on_aborted)
    );
    println!(
        "faults: {} holder tasks ({} aborted while holding, {} verified their bytes), {} blocking tasks on {} distinct blocking threads",
        get(&c.holders),
        get(&c.holders_aborted),
        get(&c.holders_verified),
        get(&c.blocking_tasks),
        f.blocking_threads
    );
    println!(
        "retained bytes: max {} of bound {} over {} samples ({} over the bound); at the end {} of bound {}",
        get(&c.max_retained),
        f.retained_bound,
        get(&c.samples),
        get(&c.bound_violations),
        f.end_retained,
        f.end_bound
    );
    println!(
        "lost: corrupted {}, lost {}, io errors {}, outstanding at the end {}",
        get(&c.corrupted),
        get(&c.lost),
        get(&c.io_errors),
        f.end_outstanding
    );
    println!("pool statistics:\n{}", f.stats);
}

/// Panics unless the run lost and exposed nothing.
fn check(f: &Figures) {
    let c = &f.counters;
    assert_eq!(c.corrupted.load(Relaxed), 0, "corrupted frames");
    assert_eq!(
        c.lost.load(Relaxed),
        0,
        "lost frames on connections not aborted"
    );
    assert_eq!(c.io_errors.load(Relaxed), 0, "I/O errors on loopback");
    assert!(c.frames_verified.load(Relaxed) > 0, "no traffic");
    assert_eq!(f.end_outstanding, 0, "buffers never returned:\n{}", f.stats);
    assert_eq!(
        c.bound_violations.load(Relaxed),
        0,
        "retained bytes over the bound"
    );
    assert!(
        f.end_retained <= f.end_bound,
        "{} retained at the end, bound {}",
        f.end_retained,
        f.end_bound
    );
}

fn parse_args() -> Settings {
    let mut s = Settings {
        duration: Duration::from_secs(10),
        concurrent: 64,
        abort_percent: 20,
        seed: 0x5EED,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_default();
        let num = || -> f64 {
            value
                .parse()
                .unwrap_or_else(|_| panic!("{flag} needs a number, got {value:?}"))
        };
        match flag.as_str() {
            "--seconds" => s.duration = Duration::from_secs_f64(num()),
            "--concurrent" => s.concurrent = num() as usize,
            "--abort-percent" => s.abort_percent = num() as u64,
            "--seed" => s.seed = num() as u64,
            _ => panic!("unknown option {flag}; see the top of examples/soak.rs"),
        }
    }
    s
}

fn main() {
    let settings = parse_args();
    let figures = run(settings);
    report(&settings, &figures);
    check(&figures);
    println!("soak: PASS (nothing corrupted, nothing lost, everything returned)");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_soak_loses_and_exposes_nothing() {
        let settings = Settings {
            duration: Duration::from_secs(3),
            concurrent: 16,
            abort_percent: 20,
            seed: 0x5EED,
        };
        let figures = run(settings);
        report(&settings, &figures);
        check(&figures);
        let c = &figures.counters;
        // The faults really happened.
        assert!(
            c.aborted_connections.load(Relaxed) > 0,
            "no connection aborted"
        );
        assert!(c.holders_aborted.load(Relaxed) > 0, "no holder aborted");
        assert!(c.holders_verified.load(Relaxed) > 0, "no holder finished");
        assert!(figures.blocking_threads > 1, "no blocking-thread churn");
        assert!(
            figures.stats.unpooled_checkouts > 0,
            "no frame above the classes"
        );
    }

    #[test]
    fn checksum_catches_a_changed_byte() {
        let pool = BytesPool::new();
        let frame = make_frame(&pool, &mut Rng::new(1), 7, 9, 1000);
        assert!(intact(&frame));
        assert_eq!(header(&frame), (7, 9));
        let mut bad = frame.to_vec();
        bad[500] ^= 1;
        assert!(!intact(&bad));
    }
}
