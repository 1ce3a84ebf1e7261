//! The budget is exact: a property test over random mixes of every way to
//! take budget (`checkout`, `try_checkout`, `checkout_async` and `reserve`,
//! each possibly cancelled, `framed` and `framed_async` with frames held)
//! and every way to keep pooled memory alive after its guard (`split_to`,
//! `split_off`, `copy_to_bytes`, `freeze` and its slices, a codec's frames).
//! After every step a counting allocator's live bytes in pooled-size
//! allocations, less what the pool retains, are at most what the budget
//! charges plus what was served past it (overdrafts, uncharged by design)
//! and one frame-sized buffer per open framed value; at the end the budget
//! charges nothing and nothing is live.
//!
//! Deterministic: futures are polled by hand with a no-op waker (no
//! runtime, no timers), a duplex pipe carries the frames, and proptest runs
//! a fixed seed. Only the test's own thread counts allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_core::Stream;
use pool_core::BufferConfig;
use pool_tokio::{BytesPool, PooledBytes, PooledFramed, Reservation, TryCheckoutError};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use tokio::io::{AsyncWrite, DuplexStream};
use tokio_util::codec::LengthDelimitedCodec;

/// Allocations this large or larger are pooled memory: the smallest class
/// of the test pool. Everything else the test allocates stays below it
/// (its vectors are bounded, the pipes are small).
const COUNTED: usize = 4096;

static LIVE: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    /// Set on the test's thread: only allocations made there count (the
    /// pool's settle thread allocates its own bookkeeping, of a size that
    /// depends on its thread id). A counted allocation freed on another
    /// thread is still subtracted: each allocation carries its flag.
    static COUNTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Room in front of each allocation for its flag, keeping its alignment.
fn header(layout: Layout) -> usize {
    layout.align().max(16)
}

/// Counts the bytes of live allocations of `COUNTED` bytes or more made on
/// the test's thread.
struct Counting;

// SAFETY: every allocation is `System`'s, `header` bytes larger and
// aligned as asked; the pointer handed out is `header` bytes in (still
// aligned: `header` is a multiple of the alignment), and `dealloc`
// undoes exactly that. The flag byte lies inside the allocation.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pad = header(layout);
        // SAFETY: a non-zero size (pad >= 16) and the caller's alignment.
        let base = unsafe {
            System.alloc(Layout::from_size_align_unchecked(
                layout.size() + pad,
                layout.align(),
            ))
        };
        if base.is_null() {
            return base;
        }
        let counted = layout.size() >= COUNTED && COUNTING.try_with(|c| c.get()).unwrap_or(false);
        if counted {
            LIVE.fetch_add(layout.size() as isize, Relaxed);
        }
        // SAFETY: `base` has `pad` bytes before the caller's part.
        unsafe {
            *base = counted as u8;
            base.add(pad)
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let pad = header(layout);
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe {
            let base = ptr.sub(pad);
            if *base == 1 {
                LIVE.fetch_sub(layout.size() as isize, Relaxed);
            }
            System.dealloc(
                base,
                Layout::from_size_align_unchecked(layout.size() + pad, layout.align()),
            );
        }
    }
}

#[global_allocator]
static A: Counting = Counting;

const BUDGET: usize = 192 << 10;
/// The largest frame and request: one "buffer per framed value" of slack
/// is a read buffer grown to this (its class).
const MAX_LEN: usize = 16 << 10;
/// Bound on every list the test keeps (so its own vectors stay small).
const MAX_HELD: usize = 24;

struct Noop;
impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

type Pending<T> = Pin<Box<dyn Future<Output = T>>>;
type Framed = PooledFramed<DuplexStream, LengthDelimitedCodec>;

struct Conn {
    framed: Framed,
    peer: DuplexStream,
}

#[derive(Debug, Clone)]
enum Op {
    Checkout(usize),
    TryCheckout(usize),
    /// Poll once; keep waiting (`false`) or cancel (`true`) if pending.
    CheckoutAsync(usize, bool),
    Reserve(usize, bool),
    /// Draw from the `i`-th reservation.
    FromReservation(usize, usize),
    Framed,
    FramedAsync(bool),
    /// Send a frame of `len` bytes to the `i`-th connection and keep it.
    Frame(usize, usize),
    /// Split a part off the `i`-th guard: 0 split_to, 1 split_off,
    /// 2 copy_to_bytes, 3 freeze (whole, a slice kept).
    Part(usize, u8),
    DropGuard(usize),
    DropPart(usize),
    DropFrame(usize),
    DropConn(usize),
    DropReservation(usize),
    PollPending,
}

fn op() -> impl Strategy<Value = Op> {
    let len = 1usize..=MAX_LEN;
    let i = 0usize..MAX_HELD;
    prop_oneof![
        3 => len.clone().prop_map(Op::Checkout),
        3 => len.clone().prop_map(Op::TryCheckout),
        3 => (len.clone(), any::<bool>()).prop_map(|(n, c)| Op::CheckoutAsync(n, c)),
        1 => (len.clone(), any::<bool>()).prop_map(|(n, c)| Op::Reserve(n * 2, c)),
        2 => (i.clone(), len.clone()).prop_map(|(i, n)| Op::FromReservation(i, n)),
        1 => Just(Op::Framed),
        1 => any::<bool>().prop_map(Op::FramedAsync),
        4 => (i.clone(), 1usize..=MAX_LEN - 4).prop_map(|(i, n)| Op::Frame(i, n)),
        4 => (i.clone(), 0u8..4).prop_map(|(i, k)| Op::Part(i, k)),
        3 => i.clone().prop_map(Op::DropGuard),
        3 => i.clone().prop_map(Op::DropPart),
        2 => i.clone().prop_map(Op::DropFrame),
        1 => i.clone().prop_map(Op::DropConn),
        1 => i.clone().prop_map(Op::DropReservation),
        2 => Just(Op::PollPending),
    ]
}

#[derive(Default)]
struct World {
    guards: Vec<PooledBytes>,
    parts: Vec<Bytes>,
    frames: Vec<BytesMut>,
    conns: Vec<Conn>,
    reservations: Vec<Reservation>,
    waiting: Vec<Pending<Result<PooledBytes, TryCheckoutError>>>,
    waiting_reservations: Vec<Pending<Result<Reservation, TryCheckoutError>>>,
    waiting_conns: Vec<(Pending<Result<Framed, TryCheckoutError>>, DuplexStream)>,
    /// Bytes served uncharged (overdrafts), still alive or not: an upper
    /// bound of the live bytes the budget does not see.
    uncharged: usize,
}

impl World {
    fn new() -> World {
        World {
            guards: Vec::with_capacity(MAX_HELD),
            parts: Vec::with_capacity(MAX_HELD),
            frames: Vec::with_capacity(MAX_HELD),
            conns: Vec::with_capacity(MAX_HELD),
            reservations: Vec::with_capacity(MAX_HELD),
            waiting: Vec::with_capacity(MAX_HELD),
            waiting_reservations: Vec::with_capacity(MAX_HELD),
            waiting_conns: Vec::with_capacity(MAX_HELD),
            uncharged: 0,
        }
    }

    fn keep_guard(&mut self, buf: PooledBytes) {
        if buf.budget_charge() == 0 {
            self.uncharged += buf.capacity();
        }
        if self.guards.len() < MAX_HELD {
            self.guards.push(buf);
        }
    }
}

fn poll_once<T>(fut: &mut Pending<T>) -> Poll<T> {
    let waker = Waker::from(Arc::new(Noop));
    fut.as_mut().poll(&mut Context::from_waker(&waker))
}

fn pool() -> BytesPool {
    BytesPool::builder()
        .config(BufferConfig::new().min_class(COUNTED).max_class(64 << 10))
        .budget(BUDGET)
        .build()
        .unwrap()
}

/// Sends one frame of `len` bytes through `conn` and returns it as the
/// pooled `Framed` decodes it.
fn exchange(conn: &mut Conn, len: usize) -> BytesMut {
    let waker = Waker::from(Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    let header = (len as u32).to_be_bytes();
    let mut sent = 0;
    let total = 4 + len;
    for _ in 0..100_000 {
        if sent < total {
            // The frame is written from a small stack chunk at a time (a
            // Vec of the whole frame would be a counted allocation).
            let mut chunk = [0u8; 512];
            let n = (total - sent).min(chunk.len());
            for (k, byte) in chunk[..n].iter_mut().enumerate() {
                let at = sent + k;
                *byte = if at < 4 { header[at] } else { (at % 251) as u8 };
            }
            if let Poll::Ready(Ok(written)) =
                Pin::new(&mut conn.peer).poll_write(&mut cx, &chunk[..n])
            {
                sent += written;
            }
        }
        if let Poll::Ready(item) = Pin::new(&mut conn.framed).poll_next(&mut cx) {
            let frame = item.expect("the peer is open").expect("a valid frame");
            assert_eq!(frame.len(), len);
            assert!(frame
                .iter()
                .enumerate()
                .all(|(k, b)| *b == ((k + 4) % 251) as u8));
            return frame;
        }
    }
    panic!("a {len}-byte frame never arrived");
}

fn step(pool: &BytesPool, w: &mut World, op: Op) {
    match op {
        Op::Checkout(n) => {
            let buf = pool.checkout(n);
            w.keep_guard(buf);
        }
        Op::TryCheckout(n) => {
            if let Ok(buf) = pool.try_checkout(n) {
                w.keep_guard(buf);
            }
        }
        Op::CheckoutAsync(n, cancel) => {
            let p = pool.clone();
            let mut fut: Pending<_> = Box::pin(async move { p.checkout_async(n).await });
            match poll_once(&mut fut) {
                Poll::Ready(r) => w.keep_guard(r.unwrap()),
                Poll::Pending if cancel || w.waiting.len() >= MAX_HELD => drop(fut),
                Poll::Pending => w.waiting.push(fut),
            }
        }
        Op::Reserve(n, cancel) => {
            let p = pool.clone();
            let mut fut: Pending<_> = Box::pin(async move { p.reserve(n).await });
            match poll_once(&mut fut) {
                Poll::Ready(r) if w.reservations.len() < MAX_HELD => {
                    w.reservations.push(r.unwrap())
                }
                Poll::Ready(r) => drop(r),
                Poll::Pending if cancel || w.waiting_reservations.len() >= MAX_HELD => drop(fut),
                Poll::Pending => w.waiting_reservations.push(fut),
            }
        }
        Op::FromReservation(i, n) => {
            if let Some(r) = w.reservations.get_mut(i) {
                if let Some(buf) = r.checkout(n) {
                    w.keep_guard(buf);
                }
            }
        }
        Op::Framed => {
            if w.conns.len() < MAX_HELD {
                let (io, peer) = tokio::io::duplex(1024);
                let before = pool.budget().unwrap().overdrafts;
                let framed = pool.framed(io, LengthDelimitedCodec::new());
                // Each buffer that overdrew is served uncharged.
                let overdrawn = (pool.budget().unwrap().overdrafts - before) as usize;
                w.uncharged += overdrawn * pool_tokio::DEFAULT_FRAME_BUFFER;
                w.conns.push(Conn { framed, peer });
            }
        }
        Op::FramedAsync(cancel) => {
            let (io, peer) = tokio::io::duplex(1024);
            let p = pool.clone();
            let mut fut: Pending<_> =
                Box::pin(async move { p.framed_async(io, LengthDelimitedCodec::new()).await });
            match poll_once(&mut fut) {
                Poll::Ready(r) if w.conns.len() < MAX_HELD => w.conns.push(Conn {
                    framed: r.unwrap(),
                    peer,
                }),
                Poll::Ready(r) => drop(r),
                Poll::Pending if cancel || w.waiting_conns.len() >= MAX_HELD => drop(fut),
                Poll::Pending => w.waiting_conns.push((fut, peer)),
            }
        }
        Op::Frame(i, len) => {
            if let Some(conn) = w.conns.get_mut(i) {
                let frame = exchange(conn, len);
                if w.frames.len() < MAX_HELD {
                    w.frames.push(frame);
                }
            }
        }
        Op::Part(i, kind) => {
            // Within the guard's room: growing a guard past its class is an
            // allocation of the caller's, which no budget sees (documented
            // on `BudgetStats::charged`). At least 2 bytes, so that every
            // part is a real view.
            if let Some(buf) = w.guards.get_mut(i).filter(|b| b.capacity() >= 2) {
                let n = buf.capacity().min(MAX_LEN);
                if buf.len() < n {
                    let fill = n - buf.len();
                    buf.put_bytes(0xA5, fill);
                }
                let len = buf.len();
                let part = match kind {
                    0 => buf.split_to(len / 2).freeze(),
                    1 => buf.split_off(len / 3).freeze(),
                    2 => buf.copy_to_bytes(len),
                    _ => {
                        let whole = w.guards.swap_remove(i).freeze();
                        whole.slice(1..whole.len().min(100))
                    }
                };
                if w.parts.len() < MAX_HELD {
                    w.parts.push(part);
                }
            }
        }
        Op::DropGuard(i) => {
            if i < w.guards.len() {
                w.guards.swap_remove(i);
            }
        }
        Op::DropPart(i) => {
            if i < w.parts.len() {
                w.parts.swap_remove(i);
            }
        }
        Op::DropFrame(i) => {
            if i < w.frames.len() {
                w.frames.swap_remove(i);
            }
        }
        Op::DropConn(i) => {
            if i < w.conns.len() {
                w.conns.swap_remove(i);
            }
        }
        Op::DropReservation(i) => {
            if i < w.reservations.len() {
                drop(w.reservations.swap_remove(i));
            }
        }
        Op::PollPending => {
            let mut k = 0;
            while k < w.waiting.len() {
                match poll_once(&mut w.waiting[k]) {
                    Poll::Ready(r) => {
                        drop(w.waiting.swap_remove(k));
                        w.keep_guard(r.unwrap());
                    }
                    Poll::Pending => k += 1,
                }
            }
            let mut k = 0;
            while k < w.waiting_reservations.len() {
                match poll_once(&mut w.waiting_reservations[k]) {
                    Poll::Ready(r) => {
                        drop(w.waiting_reservations.swap_remove(k));
                        if w.reservations.len() < MAX_HELD {
                            w.reservations.push(r.unwrap());
                        }
                    }
                    Poll::Pending => k += 1,
                }
            }
            let mut k = 0;
            while k < w.waiting_conns.len() {
                match poll_once(&mut w.waiting_conns[k].0) {
                    Poll::Ready(r) => {
                        let (_, peer) = w.waiting_conns.swap_remove(k);
                        if w.conns.len() < MAX_HELD {
                            w.conns.push(Conn {
                                framed: r.unwrap(),
                                peer,
                            });
                        }
                    }
                    Poll::Pending => k += 1,
                }
            }
        }
    }
}

/// Live bytes in pooled-size allocations that the pool does not retain.
fn live_lent(pool: &BytesPool, base: isize) -> isize {
    // Budget and stats first (each settles held buffers); the allocator
    // last, so that anything the settle thread does in between can only
    // lower the figure.
    let retained = pool.stats().retained_bytes() as isize;
    LIVE.load(Relaxed) - base - retained
}

fn check(pool: &BytesPool, w: &World, base: isize, op: &Op) {
    let budget = pool.budget().unwrap();
    assert!(budget.charged <= budget.limit, "{budget:?}");
    let live = live_lent(pool, base);
    // Overdrafts served uncharged; one frame-sized read buffer of slack per
    // open framed value (its growth is charged as it is seen).
    let slack = w.uncharged + (w.conns.len() + w.waiting_conns.len()) * MAX_LEN;
    assert!(
        live <= (budget.charged + slack) as isize,
        "after {op:?}: {live} live bytes lent, {} charged, {slack} slack ({budget:?})",
        budget.charged,
    );
}

fn run(ops: Vec<Op>) {
    let pool = pool();
    // The test's own lists, allocated before the baseline.
    let before = LIVE.load(Relaxed);
    let mut w = World::new();
    let lists = LIVE.load(Relaxed) - before;
    // The pool's per-thread bookkeeping (its cache slot, made on a thread's
    // first use; a statistics cache) is not lent memory: made before the
    // baseline.
    drop(pool.checkout(1));
    pool.trim();
    let _ = (pool.stats(), pool.budget());
    let base = LIVE.load(Relaxed);
    for op in ops {
        step(&pool, &mut w, op.clone());
        check(&pool, &w, base, &op);
    }
    drop(w);
    let budget = pool.budget().unwrap();
    assert_eq!((budget.charged, budget.held_shared), (0, 0), "{budget:?}");
    let stats = pool.stats();
    assert_eq!(stats.outstanding(), 0, "{stats}");
    pool.trim();
    // The lists are gone too. (Below zero when bookkeeping made before the
    // baseline, such as a thread cache's storage, was freed since.)
    let live = live_lent(&pool, base - lists);
    assert!(live <= 0, "{live} bytes of pooled memory still live");
}

#[test]
fn the_budget_counts_every_live_pooled_byte() {
    let config = Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[18; 32]);
    let mut runner = TestRunner::new_with_rng(config, rng);
    COUNTING.with(|c| c.set(true));
    // Issue 18, case 2: frames of a foreign codec held from a pooled
    // `Framed` (tokio-util's frames are views of the read buffer).
    run(std::iter::once(Op::Framed)
        .chain(std::iter::repeat(Op::Frame(0, 6000)).take(MAX_HELD))
        .collect());
    // Issue 18, case 3: parts of every kind kept after their guards.
    run((0..MAX_HELD)
        .flat_map(|i| {
            [
                Op::TryCheckout(16 << 10),
                Op::Part(0, (i % 4) as u8),
                Op::DropGuard(0),
            ]
        })
        .collect());
    runner
        .run(&proptest::collection::vec(op(), 1..120), |ops| {
            run(ops);
            Ok(())
        })
        .unwrap();
}
