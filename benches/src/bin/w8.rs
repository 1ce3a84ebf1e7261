//! `w8`: length-delimited echo over loopback, plain tokio-util `Framed` +
//! `LengthDelimitedCodec` against pool-tokio's pooled frame paths, and a
//! per-frame `checkout` against its fresh-allocation twin, side by side in
//! one run.
//!
//! ```text
//! cargo run --release -p benches --bin w8 -- [--quick] [--runs N] [--seconds S]
//!     [--connections C,C,...] [--in-flight F] [--idle S] [--modes M,M,...]
//!     [--bins PATH,PATH]
//! ```
//!
//! Frame sizes are log-uniform from 16 B to 1 MiB (a power of two drawn
//! uniformly, then a size uniform up to it); about one connection in ten
//! is aborted mid-frame; every echoed byte is checked. Each (connection
//! count, build, contender, run) is a fresh child process (this binary
//! with `--child`); contenders rotate order run by run. `--bins` names
//! other builds of this binary (`--features jemalloc`): every run goes
//! through each build. The server runs on a 2-worker runtime whose
//! threads (blocking threads included) alone are counted by the counting
//! allocator; the client runs on its own thread, uncounted. Each client
//! connection has one frame in flight, and at most `--in-flight` (default
//! 128) connections have one at a time, so 2,000 connections stay open
//! without 2,000 frames of up to 1 MiB in flight at once; latency is
//! measured from the write of a frame, after its turn came. Both ends
//! raise `RLIMIT_NOFILE` to its hard limit.
//!
//! Contenders (the twin each is compared with in brackets):
//! - `plain`: `Framed::new(tcp, LengthDelimitedCodec)`; each frame echoed
//!   with `send(frame.freeze())`.
//! - `pooled` (`plain`): `PooledLengthDelimitedCodec::new_reader` over the
//!   read half (frames are pooled buffers of their class, large bodies
//!   read straight into them) and `write_frame` on the write half (one
//!   vectored write of header + body).
//! - `framed` (`plain`): `pool.framed(tcp, PooledLengthDelimitedCodec)`,
//!   the drop-in path; large bodies are read straight into the frame (as
//!   `pooled` does), and each frame is echoed with `send(frame)`, which
//!   queues the pooled frame by value and writes header and body vectored
//!   (no copy).
//! - `checkout` (`fresh`): a reader task reads frames with tokio-util's
//!   `FramedRead` + `LengthDelimitedCodec`; per frame it checks out
//!   `4 + len` bytes, copies header and frame in, freezes the buffer and
//!   sends the `Bytes` over a channel to the connection's writer task,
//!   which writes it; one frame in `BLOCKING_EVERY` is then handed to a
//!   `spawn_blocking` closure that reads it and drops it there (a service
//!   that archives a frame). So buffers are dropped on other workers and
//!   on blocking threads. The pool's runtime hooks are installed
//!   (`BytesPool::hooks`), so blocking threads keep no cache.
//! - `fresh`: the same with `BytesMut::with_capacity(4 + len)`.
//!
//! Variants for the investigation: a contender name takes `+` modifiers,
//! `checkout+nofreeze+noblock`: `nofreeze` sends the `PooledBytes` (or
//! `BytesMut`) itself; `noblock` drops nothing on blocking threads;
//! `hooks` installs the pool's runtime hooks (`BytesPool::hooks`; on by
//! default for `checkout`, whose buffers drop on blocking threads), and
//! `nohooks` does not; `parkgap=MS` installs them with the park hook run
//! at most once per `MS` on each thread;
//! `nomaint` runs no maintenance task; `bcache` sets
//! `Builder::blocking_cache(true)`; `pblock` hands frames to
//! `pool_tokio::spawn_blocking` instead of tokio's; `tb=N` sets `thread_bytes(N)`;
//! `maxret=N` sets `max_retained(N)`; `depot=N` sets `depot_bytes(N)`;
//! `fb=N` sets `fallback_classes(N)`;
//! `decay=MS` sets `decay_interval`; `budget=N` builds the pool with a
//! byte budget of `N` (`Builder::budget`; at least the largest reply,
//! `4 + MAX_FRAME`) and checks each reply out with `checkout_async`,
//! which waits while the budget is spent. A variant of `checkout` is compared
//! with `fresh` carrying the same `nofreeze`/`noblock` if that ran, else
//! with `fresh`.
//!
//! Waste is the bytes lent (each checkout's class size) over the bytes
//! requested, minus one, summed over the measured window.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use pool_core::BufferConfig;
use pool_tokio::{BytesPool, PooledBytes, PooledLengthDelimitedCodec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::codec::{Framed, FramedRead, LengthDelimitedCodec};

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
    /// A frame length: 2^k with k uniform, then uniform in (2^(k-1), 2^k].
    fn frame_len(&mut self) -> usize {
        let k = MIN_EXP + self.below((MAX_EXP - MIN_EXP + 1) as u64) as u32;
        let hi = 1usize << k;
        hi / 2 + 1 + self.below((hi / 2) as u64) as usize
    }
}

/// Payload source: frame bytes are a window of this at a random offset, so
/// the client allocates nothing per frame and every byte is checkable.
fn pattern() -> Vec<u8> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    (0..2 * MAX_FRAME).map(|_| rng.next() as u8).collect()
}

/// Client connections with a frame in flight at once, by default.
const IN_FLIGHT: usize = 128;
/// One frame in this many goes on to a blocking thread (`checkout`, `fresh`).
const BLOCKING_EVERY: u64 = 4;
/// Frames queued between a `checkout`/`fresh` reader and its writer.
const CHANNEL: usize = 16;

/// Bytes requested of and lent by the pool in the measured window.
static REQUESTED: AtomicU64 = AtomicU64::new(0);
static LENT: AtomicU64 = AtomicU64::new(0);
/// Server connection tasks alive.
static OPEN: AtomicUsize = AtomicUsize::new(0);

/// Counts a checkout of `requested` bytes that lent `class` bytes.
#[inline]
fn lent(requested: usize, class: Option<usize>) {
    if COUNTING.load(Relaxed) {
        REQUESTED.fetch_add(requested as u64, Relaxed);
        LENT.fetch_add(class.unwrap_or(requested) as u64, Relaxed);
    }
}

/// Held by a server connection's tasks: `OPEN` counts it.
struct Open;

impl Open {
    fn new() -> Open {
        OPEN.fetch_add(1, Relaxed);
        Open
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Relaxed);
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns (before, after).
fn raise_nofile() -> (libc::rlim_t, libc::rlim_t) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable `rlimit` for the call's duration.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return (0, 0);
    }
    let before = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: `lim` is a valid `rlimit`; a soft limit up to the hard one
        // needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return (before, before);
        }
    }
    (before, lim.rlim_cur)
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

/// The client's shared state: the payload, the turns and their scratch
/// buffers (one per turn, so 2,000 connections need no 2,000 buffers).
struct Client {
    pattern: Vec<u8>,
    turns: Semaphore,
    scratch: Mutex<Vec<Vec<u8>>>,
}

/// A scratch buffer taken for one frame; back to the client on drop.
struct Scratch<'a> {
    client: &'a Client,
    buf: Vec<u8>,
}

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        self.client
            .scratch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(buf);
    }
}

async fn client_connection(
    addr: std::net::SocketAddr,
    client: &Client,
    rng: &mut Rng,
    warm: Instant,
    stop: Instant,
    tally: &mut ClientTally,
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
    let pattern = &client.pattern[..];
    for i in 0..FRAMES_PER_CONNECTION {
        if Instant::now() >= stop {
            return;
        }
        let Ok(_turn) = client.turns.acquire().await else {
            return;
        };
        let mut scratch = Scratch {
            client,
            buf: client
                .scratch
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop()
                .unwrap_or_else(|| vec![0u8; 64 << 10]),
        };
        let scratch = &mut scratch.buf;
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

// ------------------------------------------------------------ contenders

/// What a contender runs: its base and `+` modifiers.
#[derive(Debug, Clone, Default)]
struct Mode {
    base: String,
    nofreeze: bool,
    noblock: bool,
    hooks: bool,
    park_gap_ms: Option<u64>,
    nomaint: bool,
    bcache: bool,
    pblock: bool,
    thread_bytes: Option<usize>,
    max_retained: Option<usize>,
    depot_bytes: Option<usize>,
    decay_ms: Option<u64>,
    fallback: Option<usize>,
    budget: Option<usize>,
}

const BASES: [&str; 5] = ["plain", "pooled", "framed", "checkout", "fresh"];

impl Mode {
    fn parse(name: &str) -> Result<Mode, String> {
        let mut parts = name.split('+');
        let base = parts.next().unwrap_or_default();
        if !BASES.contains(&base) {
            return Err(format!(
                "unknown contender {base:?}: expected one of {}",
                BASES.join(", ")
            ));
        }
        let mut m = Mode {
            base: base.to_string(),
            // The setup README prescribes for a service whose buffers drop
            // on blocking threads: the pool's runtime hooks.
            hooks: base == "checkout",
            ..Mode::default()
        };
        for p in parts {
            let num = |v: &str| -> Result<usize, String> {
                v.parse()
                    .map_err(|_| format!("modifier {p:?} of {name:?} needs a whole number"))
            };
            match p.split_once('=') {
                None if p == "nofreeze" => m.nofreeze = true,
                None if p == "noblock" => m.noblock = true,
                None if p == "hooks" => m.hooks = true,
                None if p == "nohooks" => m.hooks = false,
                None if p == "nomaint" => m.nomaint = true,
                None if p == "bcache" => m.bcache = true,
                None if p == "pblock" => m.pblock = true,
                Some(("tb", v)) => m.thread_bytes = Some(num(v)?),
                Some(("maxret", v)) => m.max_retained = Some(num(v)?),
                Some(("depot", v)) => m.depot_bytes = Some(num(v)?),
                Some(("fb", v)) => m.fallback = Some(num(v)?),
                Some(("budget", v)) => {
                    let bytes = num(v)?;
                    if bytes < 4 + MAX_FRAME {
                        return Err(format!(
                            "modifier {p:?} of {name:?}: the budget must hold the largest reply, \
                             at least {} bytes",
                            4 + MAX_FRAME
                        ));
                    }
                    m.budget = Some(bytes);
                }
                Some(("decay", v)) => m.decay_ms = Some(num(v)? as u64),
                Some(("parkgap", v)) => {
                    m.hooks = true;
                    m.park_gap_ms = Some(num(v)? as u64)
                }
                _ => {
                    return Err(format!(
                        "unknown modifier {p:?} in {name:?}: expected nofreeze, noblock, hooks, \
                         nohooks, nomaint, bcache, pblock, tb=N, maxret=N, depot=N, fb=N, budget=N, decay=MS \
                         or parkgap=MS"
                    ))
                }
            }
        }
        Ok(m)
    }

    fn pooled(&self) -> bool {
        matches!(self.base.as_str(), "pooled" | "framed" | "checkout")
    }

    fn pool(&self) -> Result<BytesPool, String> {
        let mut config = BufferConfig::new();
        if let Some(b) = self.thread_bytes {
            config = config.thread_bytes(b);
        }
        if let Some(b) = self.max_retained {
            config = config.max_retained(b);
        }
        if let Some(b) = self.depot_bytes {
            config = config.depot_bytes(b);
        }
        if let Some(ms) = self.decay_ms {
            config = config.decay_interval(Duration::from_millis(ms));
        }
        if let Some(n) = self.fallback {
            config = config.fallback_classes(n);
        }
        let mut builder = BytesPool::builder()
            .config(config)
            .blocking_cache(self.bcache);
        if let Some(bytes) = self.budget {
            builder = builder.budget(bytes);
        }
        builder.build().map_err(|e| e.to_string())
    }
}

/// The contender `name` is compared with, given the contenders that ran.
fn twin(name: &str, ran: &[String]) -> Option<String> {
    let m = Mode::parse(name).ok()?;
    match m.base.as_str() {
        "pooled" | "framed" => Some("plain".into()),
        "checkout" => {
            let mut t = String::from("fresh");
            if m.nofreeze {
                t.push_str("+nofreeze");
            }
            if m.noblock {
                t.push_str("+noblock");
            }
            Some(if ran.contains(&t) { t } else { "fresh".into() })
        }
        _ => None,
    }
}

async fn serve_plain(stream: TcpStream) {
    let _open = Open::new();
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
    let _open = Open::new();
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
        lent(frame.len(), frame.class_size());
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
    let _open = Open::new();
    let codec = match PooledLengthDelimitedCodec::builder()
        .max_frame_length(2 * MAX_FRAME)
        .new_codec(&pool)
    {
        Ok(c) => c,
        Err(_) => return,
    };
    let mut framed = pool.framed(stream, codec);
    while let Some(Ok(frame)) = framed.next().await {
        lent(frame.len(), frame.class_size());
        if framed.send(frame).await.is_err() {
            break;
        }
    }
}

/// A reply on its way from a `checkout`/`fresh` reader to its writer.
enum Reply {
    Frozen(Bytes),
    Pooled(PooledBytes),
    Fresh(BytesMut),
}

impl Reply {
    fn bytes(&self) -> &[u8] {
        match self {
            Reply::Frozen(b) => b,
            Reply::Pooled(b) => b,
            Reply::Fresh(b) => b,
        }
    }
}

/// What an archiving service would read of a frame before dropping it.
fn checksum(data: &[u8]) -> u64 {
    data.iter()
        .step_by(64)
        .fold(0u64, |h, &b| h.rotate_left(5) ^ u64::from(b))
}

/// `checkout` (with a pool) and `fresh` (without): a reader task copies
/// each frame into a buffer of its own and sends it to a writer task.
async fn serve_copy(stream: TcpStream, pool: Option<BytesPool>, mode: Arc<Mode>) {
    let open = Open::new();
    let (read, mut write) = stream.into_split();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Reply>(CHANNEL);
    let blocking = !mode.noblock;
    let pblock = mode.pblock;
    tokio::spawn(async move {
        let _open = open;
        let mut n = 0u64;
        while let Some(reply) = rx.recv().await {
            if write.write_all(reply.bytes()).await.is_err() {
                break;
            }
            n += 1;
            if blocking && n.is_multiple_of(BLOCKING_EVERY) {
                let archive = move || {
                    std::hint::black_box(checksum(reply.bytes()));
                    drop(reply);
                };
                if pblock {
                    drop(pool_tokio::spawn_blocking(archive));
                } else {
                    drop(tokio::task::spawn_blocking(archive));
                }
            }
        }
    });
    let codec = LengthDelimitedCodec::builder()
        .max_frame_length(2 * MAX_FRAME)
        .new_codec();
    let mut frames = FramedRead::new(read, codec);
    while let Some(Ok(frame)) = frames.next().await {
        let len = frame.len();
        let reply = match &pool {
            Some(pool) => {
                let mut buf = match mode.budget {
                    None => pool.checkout(4 + len),
                    // Waits while the budget is spent; `budget=N` is at
                    // least the largest reply, so it is never refused.
                    Some(_) => match pool.checkout_async(4 + len).await {
                        Ok(buf) => buf,
                        Err(e) => unreachable!("a reply within the budget: {e}"),
                    },
                };
                lent(4 + len, buf.class_size());
                buf.put_u32(len as u32);
                buf.put_slice(&frame);
                if mode.nofreeze {
                    Reply::Pooled(buf)
                } else {
                    Reply::Frozen(buf.freeze())
                }
            }
            None => {
                let mut buf = BytesMut::with_capacity(4 + len);
                buf.put_u32(len as u32);
                buf.put_slice(&frame);
                if mode.nofreeze {
                    Reply::Fresh(buf)
                } else {
                    Reply::Frozen(buf.freeze())
                }
            }
        };
        drop(frame);
        if tx.send(reply).await.is_err() {
            break;
        }
    }
}

struct ChildArgs {
    contender: String,
    seconds: f64,
    connections: usize,
    in_flight: usize,
    idle: f64,
}

fn child(args: ChildArgs) -> ExitCode {
    raise_nofile();
    let mode = match Mode::parse(&args.contender) {
        Ok(m) => Arc::new(m),
        Err(e) => {
            eprintln!("w8: {e}");
            return ExitCode::FAILURE;
        }
    };
    let pool = match mode.pool() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("w8: pool: {e}");
            return ExitCode::FAILURE;
        }
    };
    let pooled = mode.pooled();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2).enable_all();
    let mark = || SERVER.with(|s| s.set(true));
    if let Some(gap) = mode.park_gap_ms {
        // The pool's hooks, with the park hook run at most once per `gap`
        // on each thread (always at its first park, which marks a worker).
        let gap = Duration::from_millis(gap);
        let (start, stop, park) = (pool.clone(), pool.clone(), pool.clone());
        builder
            .on_thread_start(move || {
                mark();
                start.thread_started();
            })
            .on_thread_stop(move || stop.thread_stopping())
            .on_thread_park(move || {
                thread_local! {
                    static LAST: Cell<Option<Instant>> = const { Cell::new(None) };
                }
                let now = Instant::now();
                if LAST.get().is_none_or(|t| now.duration_since(t) >= gap) {
                    LAST.set(Some(now));
                    park.thread_parking();
                }
            });
    } else if mode.hooks {
        pool.hooks().on_thread_start(mark).install(&mut builder);
    } else {
        builder.on_thread_start(mark);
    }
    let server_rt = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("w8: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = server_rt.block_on(async {
        let socket = TcpSocket::new_v4()?;
        socket.bind("127.0.0.1:0".parse().expect("address"))?;
        // Room for 2,000 connections arriving at once.
        socket.listen(4096)
    });
    let listener = match listener {
        Ok(l) => l,
        Err(e) => {
            eprintln!("w8: bind: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().expect("bound");
    let accept_pool = pool.clone();
    let accept_mode = mode.clone();
    server_rt.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            stream.set_nodelay(true).ok();
            let pool = accept_pool.clone();
            match accept_mode.base.as_str() {
                "framed" => drop(tokio::spawn(serve_framed(stream, pool))),
                "pooled" => drop(tokio::spawn(serve_pooled(stream, pool))),
                "checkout" => drop(tokio::spawn(serve_copy(
                    stream,
                    Some(pool),
                    accept_mode.clone(),
                ))),
                "fresh" => drop(tokio::spawn(serve_copy(stream, None, accept_mode.clone()))),
                _ => drop(tokio::spawn(serve_plain(stream))),
            }
        }
    });
    if pooled && !mode.nomaint {
        let p = pool.clone();
        server_rt.spawn(async move {
            p.spawn_maintenance(Duration::from_millis(100));
        });
    }

    let client = Arc::new(Client {
        pattern: pattern(),
        turns: Semaphore::new(args.in_flight.max(1)),
        scratch: Mutex::new(
            (0..args.in_flight.clamp(1, args.connections.max(1)))
                .map(|_| vec![0u8; 64 << 10])
                .collect(),
        ),
    });
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
                let client = client.clone();
                tokio::spawn(async move {
                    let mut rng = Rng(0xD1B5_4A32_D192_ED03 ^ ((c as u64 + 1) * 0x9E37_79B9));
                    let mut tally = ClientTally::default();
                    while Instant::now() < stop {
                        client_connection(addr, &client, &mut rng, warm, stop, &mut tally).await;
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
    drop(client_rt);
    let measured = stop.saturating_duration_since(warm).as_secs_f64();
    let _ = counter.join();
    let peak_kib = status_kib("VmHWM:");
    let threads = status_kib("Threads:");
    // What the pool keeps at the end of the traffic: in thread caches (as
    // far as their owners have not flushed them) and in the depot.
    let busy = pool.stats();
    let retained_mib = busy.retained_bytes() as f64 / (1u64 << 20) as f64;
    let local_mib = busy
        .classes
        .iter()
        .map(|c| c.retained_local * c.class_size.unwrap_or(0) as u64)
        .sum::<u64>() as f64
        / (1u64 << 20) as f64;
    // Idle: the server's connections end; maintenance (pooled) decays.
    std::thread::sleep(Duration::from_secs_f64(args.idle));
    let idle_kib = status_kib("VmRSS:");
    let open = OPEN.load(Relaxed);

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
    let requested = REQUESTED.load(Relaxed);
    let waste = if requested == 0 {
        0.0
    } else {
        LENT.load(Relaxed) as f64 / requested as f64 - 1.0
    };
    println!(
        "W8 contender={} allocator={ALLOCATOR} connections={} frames={} fps={:.0} mibps={:.1} \
         allocs_per_frame={:.4} bytes_per_frame={:.0} p50_us={} p99_us={} peak_mib={:.1} \
         idle_mib={:.1} retained_mib={:.1} local_mib={:.1} waste={:.4} hit_rate={:.4} checkouts={} discard_full={} \
         discard_oversize={} discard_shared={} discard_trimmed={} discard_other={} \
         outstanding={} open={} threads={} corrupt={} lost={} aborted={}",
        args.contender,
        args.connections,
        t.frames,
        t.frames as f64 / measured,
        t.bytes as f64 / measured / (1u64 << 20) as f64,
        ALLOCS.load(Relaxed) as f64 / frames,
        ALLOC_BYTES.load(Relaxed) as f64 / frames,
        pct(0.50),
        pct(0.99),
        mib(peak_kib),
        mib(idle_kib),
        retained_mib,
        local_mib,
        waste,
        if pooled { stats.hit_rate() } else { 0.0 },
        stats.checkouts(),
        d.full,
        d.oversize,
        d.shared,
        d.trimmed,
        d.rejected + d.stale,
        stats.outstanding(),
        open,
        threads,
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

/// One child's result line and what it ran.
struct Row {
    connections: usize,
    allocator: String,
    contender: String,
    run: usize,
    line: String,
}

const USAGE: &str = "usage: w8 [--quick] [--runs N] [--seconds S] [--connections C,C,...] \
     [--in-flight F] [--idle S] [--modes M,M,...] [--bins PATH,...]";

fn list<T: std::str::FromStr>(v: &str) -> Option<Vec<T>> {
    v.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().ok())
        .collect()
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("--child") {
        let parsed = (|| {
            Some(ChildArgs {
                contender: argv.get(1)?.clone(),
                seconds: argv.get(2)?.parse().ok()?,
                connections: argv.get(3)?.parse().ok()?,
                in_flight: argv.get(4)?.parse().ok()?,
                idle: argv.get(5)?.parse().ok()?,
            })
        })();
        let Some(args) = parsed else {
            eprintln!(
                "--child needs CONTENDER SECONDS CONNECTIONS IN_FLIGHT IDLE_SECONDS (numbers)"
            );
            return ExitCode::FAILURE;
        };
        return child(args);
    }
    let mut quick = false;
    let mut runs: Option<usize> = None;
    let mut seconds: Option<f64> = None;
    let mut idle: Option<f64> = None;
    let mut in_flight = IN_FLIGHT;
    let mut connections: Option<Vec<usize>> = None;
    let mut modes: Option<Vec<String>> = None;
    let mut bins: Vec<PathBuf> = vec![];
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        let v = match a.as_str() {
            "--quick" => {
                quick = true;
                continue;
            }
            _ => it.next().cloned().unwrap_or_default(),
        };
        let ok = match a.as_str() {
            "--runs" => v.parse().map(|n| runs = Some(n)).is_ok(),
            "--seconds" => v.parse().map(|s| seconds = Some(s)).is_ok(),
            "--idle" => v.parse().map(|s| idle = Some(s)).is_ok(),
            "--in-flight" => v.parse().map(|n| in_flight = n).is_ok(),
            "--connections" => list(&v).map(|c| connections = Some(c)).is_some(),
            "--modes" => {
                let m: Vec<String> = v
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                match m.iter().find_map(|m| Mode::parse(m).err()) {
                    Some(e) => {
                        eprintln!("w8: --modes: {e}");
                        return ExitCode::FAILURE;
                    }
                    None => {
                        modes = Some(m);
                        true
                    }
                }
            }
            "--bins" => {
                bins = v
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from)
                    .collect();
                true
            }
            _ => false,
        };
        if !ok {
            eprintln!(
                "{USAGE}\n(bad argument {a:?} {v:?}: --runs, --seconds, --idle and --in-flight take \
                 a number, --connections a comma-separated list of numbers)"
            );
            return ExitCode::FAILURE;
        }
    }
    let runs = runs.unwrap_or(if quick { 2 } else { 5 });
    let seconds = seconds.unwrap_or(if quick { 2.0 } else { 6.0 });
    let idle = idle.unwrap_or(if quick { 1.2 } else { 2.0 });
    let connections = connections.unwrap_or(if quick { vec![16] } else { vec![64, 2000] });
    let modes = modes.unwrap_or_else(|| BASES.map(String::from).to_vec());
    let (before, after) = raise_nofile();
    if before != after {
        eprintln!("W8: RLIMIT_NOFILE soft limit raised from {before} to {after} (the hard limit)");
    }
    let me = std::env::current_exe().expect("own path");
    let mut builds = vec![me];
    builds.extend(bins);
    eprintln!(
        "W8: {runs} runs x {} builds x {} contenders x connections {connections:?}, {seconds} s each \
         ({} s warm-up, {idle} s idle), at most {in_flight} frames in flight",
        builds.len(),
        modes.len(),
        seconds / 5.0
    );
    let mut rows: Vec<Row> = Vec::new();
    for &conns in &connections {
        for run in 0..runs {
            for bin in &builds {
                let mut order = modes.clone();
                let turn = run % order.len().max(1);
                order.rotate_left(turn);
                for contender in order {
                    let out = Command::new(bin)
                        .args([
                            "--child",
                            &contender,
                            &seconds.to_string(),
                            &conns.to_string(),
                            &in_flight.to_string(),
                            &idle.to_string(),
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
                    let allocator = line
                        .split_whitespace()
                        .find_map(|kv| kv.strip_prefix("allocator="))
                        .unwrap_or("?")
                        .to_string();
                    rows.push(Row {
                        connections: conns,
                        allocator,
                        contender,
                        run,
                        line: line.to_string(),
                    });
                }
            }
        }
    }
    for &conns in &connections {
        report(&rows, conns, &modes, runs, seconds, in_flight, quick);
    }
    ExitCode::SUCCESS
}

/// The targets of an unmodified contender against its twin.
fn targets(contender: &str) -> &'static str {
    match contender {
        "framed" => ">= 1.15x, <= 0.5x, <= 0.05",
        "pooled" => ">= 1.3x, <= 0.2x",
        "checkout" => ">= 1.0x, <= 1.0x",
        _ => "-",
    }
}

fn report(
    rows: &[Row],
    conns: usize,
    modes: &[String],
    runs: usize,
    seconds: f64,
    in_flight: usize,
    quick: bool,
) {
    let rows: Vec<&Row> = rows.iter().filter(|r| r.connections == conns).collect();
    let mut allocators: Vec<String> = rows.iter().map(|r| r.allocator.clone()).collect();
    allocators.sort();
    allocators.dedup();
    println!(
        "\n### W8: length-delimited echo, {conns} connections (at most {in_flight} frames in flight), \
         frames 16 B-1 MiB log-uniform, 1 in {ABORT_EVERY} connections aborted mid-frame; \
         {runs} runs of {seconds} s{}\n",
        if quick { " (--quick)" } else { "" }
    );
    println!("Medians over runs, spread (min-max) in brackets; corrupt, lost, outstanding and open summed.\n");
    println!(
        "| allocator | contender | frames/s | MiB/s | allocs/frame | p99 µs | peak RSS MiB | \
         RSS after idle MiB | waste | hit rate | corrupt | lost | outstanding | open |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let get = |a: &str, c: &str, key: &str| -> Vec<f64> {
        rows.iter()
            .filter(|r| r.allocator == a && r.contender == c)
            .filter_map(|r| field(&r.line, key))
            .collect()
    };
    let cell = |a: &str, c: &str, key: &str, prec: usize| {
        let mut v = get(a, c, key);
        let (lo, hi) = spread(&v);
        let m = median(&mut v);
        format!("{m:.prec$} [{lo:.prec$}-{hi:.prec$}]")
    };
    for a in &allocators {
        for c in modes {
            let sum = |key: &str| get(a, c, key).iter().sum::<f64>();
            let pooled = Mode::parse(c).map(|m| m.pooled()).unwrap_or(false);
            println!(
                "| {a} | {c} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                cell(a, c, "fps", 0),
                cell(a, c, "mibps", 0),
                cell(a, c, "allocs_per_frame", 3),
                cell(a, c, "p99_us", 0),
                cell(a, c, "peak_mib", 0),
                cell(a, c, "idle_mib", 0),
                if pooled {
                    cell(a, c, "waste", 3)
                } else {
                    "-".into()
                },
                if pooled {
                    cell(a, c, "hit_rate", 4)
                } else {
                    "-".into()
                },
                sum("corrupt"),
                sum("lost"),
                sum("outstanding"),
                sum("open"),
            );
        }
    }
    println!(
        "\nPer-run ratios to the twin in the same run: median [min-max]. Targets: frames/s, peak RSS, \
         allocs/frame.\n"
    );
    println!(
        "| allocator | contender / twin | frames/s | peak RSS | RSS after idle | p99 | \
         allocs/frame | waste | targets |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---|");
    for a in &allocators {
        for c in modes {
            let Some(t) = twin(c, modes) else { continue };
            let ratio = |key: &str| -> String {
                let mut r: Vec<f64> = (0..runs)
                    .filter_map(|run| {
                        let f = |c: &str| {
                            rows.iter()
                                .find(|r| r.allocator == *a && r.contender == c && r.run == run)
                                .and_then(|r| field(&r.line, key))
                        };
                        Some(f(c)? / f(&t)?)
                    })
                    .collect();
                let (lo, hi) = spread(&r);
                format!("{:.2}x [{lo:.2}-{hi:.2}]", median(&mut r))
            };
            println!(
                "| {a} | {c} / {t} | {} | {} | {} | {} | {} | {} | {} |",
                ratio("fps"),
                ratio("peak_mib"),
                ratio("idle_mib"),
                ratio("p99_us"),
                cell(a, c, "allocs_per_frame", 3),
                cell(a, c, "waste", 3),
                targets(c),
            );
        }
    }
    let mut discards = String::new();
    for key in [
        "checkouts",
        "discard_full",
        "discard_oversize",
        "discard_shared",
        "discard_trimmed",
        "discard_other",
        "aborted",
    ] {
        let total: f64 = rows.iter().filter_map(|r| field(&r.line, key)).sum();
        discards.push_str(&format!(" {key}={total:.0}"));
    }
    println!("\nAll runs at {conns} connections, summed:{discards}");
}
