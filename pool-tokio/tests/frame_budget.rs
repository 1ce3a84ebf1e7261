//! The byte budget on the frame paths: many connections with large frames
//! never hold more than the budget (a counting global allocator keeps the
//! ledger), waiters that are cancelled lose none of it, and what the sync
//! paths cannot wait for is a counted overdraft.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering::Relaxed};

use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use pool_core::BufferConfig;
use pool_tokio::{BytesPool, PooledLengthDelimitedCodec};
use tokio::io::AsyncWriteExt;

/// Allocations at least this large are frames (everything else in the
/// test, duplex pipes included, stays below it).
const LARGE: usize = 32 << 10;

static LIVE_LARGE: AtomicIsize = AtomicIsize::new(0);
static PEAK_LARGE: AtomicIsize = AtomicIsize::new(0);
static LARGE_ALLOCS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Set on the test runtime's workers: only their allocations count, so
    /// tests running beside this one in the binary do not blur the ledger.
    static COUNTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn counted(size: usize) -> bool {
    size >= LARGE && COUNTED.try_with(|c| c.get()).unwrap_or(false)
}

/// Counts the bytes of live allocations of `LARGE` bytes or more made on
/// the counted threads. (A counted allocation freed elsewhere would stay
/// in the ledger: that can only overstate the peak.)
struct Ledger;

// SAFETY: forwards every call to `System` unchanged; the bookkeeping is
// relaxed atomics, which never allocate.
unsafe impl GlobalAlloc for Ledger {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counted(layout.size()) {
            LARGE_ALLOCS.fetch_add(1, Relaxed);
            let live =
                LIVE_LARGE.fetch_add(layout.size() as isize, Relaxed) + layout.size() as isize;
            PEAK_LARGE.fetch_max(live, Relaxed);
        }
        // SAFETY: the caller's contract for `alloc` is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if counted(layout.size()) {
            LIVE_LARGE.fetch_sub(layout.size() as isize, Relaxed);
        }
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above; `realloc` is a dealloc plus an alloc here.
        unsafe {
            let new = self.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[global_allocator]
static A: Ledger = Ledger;

const BUDGET: usize = 1 << 20;

/// A pool with a 1 MiB budget that keeps no frame-sized buffer (classes
/// up to 16 KiB; larger frames are exact-size allocations charged at their
/// size and freed on return), so every large allocation alive is a frame
/// checked out now: the ledger then measures exactly what the budget
/// bounds, and retained memory (bounded by the pool's settings, not by
/// the budget) does not blur it.
fn pool() -> BytesPool {
    BytesPool::builder()
        .config(BufferConfig::new().max_class(16 << 10))
        .budget(BUDGET)
        .build()
        .unwrap()
}

#[test]
fn many_connections_with_large_frames_never_hold_more_than_the_budget() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .on_thread_start(|| COUNTED.with(|c| c.set(true)))
        .build()
        .unwrap();
    let pool = pool();
    const CONNECTIONS: usize = 24;
    const FRAMES: usize = 12;
    // Each frame is 100-250 KiB: 24 connections each holding one would
    // want about 4 MiB, four times the budget.
    let payload: Bytes = (0..256 << 10)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    let base = LIVE_LARGE.load(Relaxed);
    PEAK_LARGE.store(base, Relaxed);
    let before = LARGE_ALLOCS.load(Relaxed);
    let total = rt.block_on(async {
        let mut tasks = Vec::new();
        for c in 0..CONNECTIONS {
            let (mut tx, rx) = tokio::io::duplex(4096);
            let codec = PooledLengthDelimitedCodec::new(&pool);
            let sent = payload.clone();
            tasks.push(tokio::spawn(async move {
                for f in 0..FRAMES {
                    let len = (100 << 10) + ((c * 7 + f * 13) % 150) * 1024;
                    codec.write_frame(&mut tx, &sent[..len]).await.unwrap();
                }
                tx.shutdown().await.unwrap();
            }));
            let mut reader = PooledLengthDelimitedCodec::new(&pool).new_reader(rx);
            let payload = payload.clone();
            tasks.push(tokio::spawn(async move {
                // Holds each frame across an await, then drops it before
                // asking for the next. (Holding it while waiting for the
                // next is the deadlock the budget docs describe: with
                // every connection doing so, the budget can be all held
                // by waiters.)
                let mut n = 0usize;
                while let Some(frame) = reader.next().await {
                    let frame = frame.unwrap();
                    tokio::task::yield_now().await;
                    assert_eq!(&frame[..], &payload[..frame.len()]);
                    n += 1;
                }
                assert_eq!(n, FRAMES);
            }));
        }
        let n = tasks.len();
        for t in tasks {
            t.await.unwrap();
        }
        n
    });
    assert_eq!(total, 2 * CONNECTIONS);
    let peak = (PEAK_LARGE.load(Relaxed) - base) as usize;
    let budget = pool.budget().unwrap();
    assert_eq!(budget.overdrafts, 0, "the reader waits, never overdraws");
    assert_eq!(budget.charged, 0, "everything came back");
    assert!(
        LARGE_ALLOCS.load(Relaxed) - before >= CONNECTIONS * FRAMES,
        "every frame was a large allocation the ledger saw"
    );
    assert!(
        peak <= BUDGET,
        "frames alive at once peaked at {peak} bytes, over the {BUDGET}-byte budget"
    );
    assert_eq!(pool.stats().outstanding(), 0);
}

#[tokio::test]
async fn cancelled_waiters_lose_no_budget() {
    let pool = pool();
    // Everything but one read buffer's worth is held.
    let held = pool.try_checkout(BUDGET - (128 << 10)).unwrap();
    let held_small: Vec<_> = (0..15)
        .map(|_| pool.try_checkout(8 << 10).unwrap())
        .collect();
    assert_eq!(pool.budget().unwrap().available(), 8 << 10);
    let frame = vec![5u8; 200 << 10];
    let mut readers = Vec::new();
    for _ in 0..6 {
        // Room for the whole frame, so writes never wait for the reader.
        let (mut tx, rx) = tokio::io::duplex(256 << 10);
        // The header and the first bytes are there to read.
        tx.write_all(&(frame.len() as u32).to_be_bytes())
            .await
            .unwrap();
        tx.write_all(&frame[..1000]).await.unwrap();
        readers.push((tx, PooledLengthDelimitedCodec::new(&pool).new_reader(rx)));
    }
    // Each reader waits: the first for its frame (it got the last read
    // buffer's worth), the others for their read buffers.
    for (_, reader) in &mut readers {
        assert!(
            reader.next().now_or_never().is_none(),
            "waits for the budget"
        );
    }
    assert_eq!(pool.budget().unwrap().available(), 0);
    // Cancel every other waiter, then free the budget.
    let mut kept = Vec::new();
    for (i, r) in readers.into_iter().enumerate() {
        if i % 2 == 1 {
            kept.push(r);
        }
    }
    drop((held, held_small));
    // The first cancelled reader's read buffer went to the first kept
    // waiter (first come, first served), and the held bytes covered the
    // other two: three read buffers set aside for the kept waiters, and
    // nothing charged for the cancelled ones.
    assert_eq!(pool.budget().unwrap().charged, 3 * (8 << 10));
    for (tx, reader) in &mut kept {
        tx.write_all(&frame[1000..]).await.unwrap();
        let got = reader.next().await.unwrap().unwrap();
        assert_eq!(got.len(), frame.len());
    }
    drop(kept);
    let budget = pool.budget().unwrap();
    assert_eq!((budget.charged, budget.overdrafts), (0, 0));
    // The whole budget can be taken again: nothing was lost.
    assert!(pool.try_checkout(BUDGET).is_ok());
}

#[tokio::test]
async fn sync_paths_overdraw_loudly_and_framed_growth_is_charged() {
    let pool = BytesPool::builder().budget(64 << 10).build().unwrap();
    // The sync codec in a `Framed` cannot wait: past the budget, its
    // frames are overdrafts.
    let (a, b) = tokio::io::duplex(64 << 10);
    let mut tx = tokio_util::codec::Framed::new(a, tokio_util::codec::LengthDelimitedCodec::new());
    let mut rx = pool.framed(b, PooledLengthDelimitedCodec::new(&pool));
    let mut frames = Vec::new();
    for _ in 0..4 {
        tx.send(Bytes::from(vec![1u8; 20_000])).await.unwrap();
        frames.push(rx.next().await.unwrap().unwrap());
    }
    let budget = pool.budget().unwrap();
    // 16 KiB of framed buffers plus 20 KiB frames (20,000 B fills the
    // 20 KiB class): the third frame is the first that does not fit.
    assert_eq!(budget.overdrafts, 2);
    assert_eq!(budget.charged, (16 << 10) + 2 * (20 << 10));
    drop((frames, rx));
    assert_eq!(pool.budget().unwrap().charged, 0);

    // tokio-util's own codec grows the pooled read buffer to the frame
    // size; the framed value charges that growth while it holds it.
    let pool = BytesPool::builder().budget(1 << 20).build().unwrap();
    // The pipe holds 16 KiB, so the reader waits mid-frame with the grown
    // buffer: the framed value sees it between polls.
    let (a, b) = tokio::io::duplex(16 << 10);
    let mut tx = tokio_util::codec::Framed::new(a, tokio_util::codec::LengthDelimitedCodec::new());
    let mut rx = pool.framed(b, tokio_util::codec::LengthDelimitedCodec::new());
    let sender = tokio::spawn(async move {
        tx.send(Bytes::from(vec![1u8; 300_000])).await.unwrap();
        tx
    });
    let frame = rx.next().await.unwrap().unwrap();
    let _tx = sender.await.unwrap();
    let charged = pool.budget().unwrap().charged;
    assert!(
        charged >= 300_000 + (8 << 10),
        "growth charged: {charged} bytes for a 300 kB frame"
    );
    drop((frame, rx));
    let budget = pool.budget().unwrap();
    assert_eq!((budget.charged, budget.overdrafts), (0, 0));
}

/// `into_parts` hands a buffer a codec grew to the caller with the growth
/// still charged: the budget keeps bounding the bytes out until the part
/// drops.
#[tokio::test]
async fn into_parts_keeps_the_growth_charged_with_the_grown_buffer() {
    let pool = BytesPool::builder().budget(128 << 10).build().unwrap();
    let (a, _b) = tokio::io::duplex(64);
    let mut framed = pool.framed(a, tokio_util::codec::BytesCodec::new());
    // `BytesCodec` copies the item into the write buffer, which grows past
    // its 8 KiB class (the pipe takes 64 bytes: the rest stays queued).
    framed.feed(Bytes::from(vec![1u8; 100_000])).await.unwrap();
    let held = framed.read_buffer().capacity() + framed.write_buffer().capacity();
    assert_eq!(pool.budget().unwrap().charged, held);
    let parts = framed.into_parts();
    let (read, write) = (parts.read_buf.unwrap(), parts.write_buf.unwrap());
    assert_eq!(write.len(), 100_000, "the unwritten bytes come along");
    assert_eq!(
        pool.budget().unwrap().charged,
        read.capacity() + write.capacity()
    );
    assert_eq!(write.budget_charge(), write.capacity());
    // Others get what is left, no more.
    let mut others = Vec::new();
    while let Ok(b) = pool.try_checkout(8192) {
        others.push(b);
    }
    let live =
        read.capacity() + write.capacity() + others.iter().map(|b| b.capacity()).sum::<usize>();
    let budget = pool.budget().unwrap();
    assert!(live <= budget.limit, "{live} lent, budget {budget:?}");
    drop((read, write, others));
    let budget = pool.budget().unwrap();
    assert_eq!((budget.charged, budget.overdrafts), (0, 0));
}

#[tokio::test]
async fn reservations_wait_once_then_never_and_cancelled_ones_lose_nothing() {
    let pool = pool();
    let held = pool.try_checkout(BUDGET / 2).unwrap();
    // A reservation for the other half is served at once.
    let mut first = pool.try_reserve(BUDGET / 2).unwrap();
    // Further reservations wait; cancel some of them.
    let mut waiters: Vec<_> = (0..4).map(|_| Box::pin(pool.reserve(BUDGET / 4))).collect();
    for w in &mut waiters {
        assert!(w.as_mut().now_or_never().is_none(), "waits for the budget");
    }
    drop(waiters.drain(..2));
    // Checkouts from a reservation never wait, even with the budget gone.
    let a = first.checkout(BUDGET / 4).unwrap();
    let b = first.checkout(BUDGET / 4).unwrap();
    assert!(first.checkout(1).is_none(), "the reservation is spent");
    drop((a, b, first, held));
    // The two waiters left are served; the cancelled ones took nothing.
    let mut served = Vec::new();
    for w in waiters {
        served.push(w.await.unwrap());
    }
    assert_eq!(pool.budget().unwrap().charged, BUDGET / 2);
    drop(served);
    let budget = pool.budget().unwrap();
    assert_eq!((budget.charged, budget.overdrafts), (0, 0));
    assert!(pool.try_reserve(BUDGET).is_ok());
}

/// An encoder that grows the buffer, then refuses the item.
struct GrowThenFail;

impl tokio_util::codec::Encoder<usize> for GrowThenFail {
    type Error = std::io::Error;
    fn encode(&mut self, n: usize, dst: &mut bytes::BytesMut) -> std::io::Result<()> {
        dst.reserve(n);
        Err(std::io::Error::other("refused after reserving"))
    }
}

/// A codec's growth is charged even when its `encode` then fails; growth
/// after a partial write is charged with the bytes written off the front
/// (which `capacity()` does not show); and a grown write buffer handed out
/// by `into_parts` is charged what it lends: it comes out as a fresh
/// checkout of its class holding the unwritten bytes.
#[tokio::test]
async fn growth_is_charged_after_a_failed_encode_and_a_partial_write() {
    let pool = BytesPool::builder().budget(256 << 10).build().unwrap();
    let mut framed = pool.framed_write(tokio::io::sink(), GrowThenFail, 0);
    assert!(framed.send(200_000usize).await.is_err());
    let capacity = framed.write_buffer().capacity();
    assert!(
        capacity >= 200_000,
        "the codec grew the buffer to {capacity}"
    );
    let budget = pool.budget().unwrap();
    assert_eq!((budget.charged, budget.overdrafts), (capacity, 0));
    let write = framed.into_parts().write_buf.unwrap();
    assert_eq!(write.budget_charge(), write.capacity());
    assert_eq!(pool.budget().unwrap().charged, write.capacity());
    drop(write);
    assert_eq!(pool.budget().unwrap().charged, 0);

    let pool = BytesPool::builder().budget(1 << 20).build().unwrap();
    let (a, _b) = tokio::io::duplex(4096);
    let mut framed = pool.framed_write(a, tokio_util::codec::BytesCodec::new(), 0);
    framed.feed(Bytes::from(vec![1u8; 8000])).await.unwrap();
    // One flush poll: the pipe takes 4096 bytes, then is full.
    std::future::poll_fn(|cx| {
        let r = futures_util::Sink::<Bytes>::poll_flush(std::pin::Pin::new(&mut framed), cx);
        assert!(r.is_pending());
        std::task::Poll::Ready(())
    })
    .await;
    assert_eq!(framed.write_buffer().len(), 8000 - 4096);
    // Reallocates, with the 4096 bytes written still in front of the view:
    // `BytesMut` grows the whole allocation, front included, which the
    // view's capacity leaves out. The framed value charges all of it.
    framed.feed(Bytes::from(vec![2u8; 20_000])).await.unwrap();
    let allocation = 4096 + framed.write_buffer().capacity();
    assert_eq!(pool.budget().unwrap().charged, allocation);
    let mut write = framed.into_parts().write_buf.unwrap();
    assert_eq!(write.len(), 8000 - 4096 + 20_000, "no byte lost");
    assert!(write[..8000 - 4096].iter().all(|&b| b == 1));
    assert!(write[8000 - 4096..].iter().all(|&b| b == 2));
    let charge = write.budget_charge();
    assert_eq!(
        (charge, pool.budget().unwrap().charged),
        (write.capacity(), charge)
    );
    write.clear();
    assert!(
        !write.try_reclaim(charge + 1),
        "the allocation is what is charged"
    );
    drop(write);
    let budget = pool.budget().unwrap();
    assert_eq!((budget.charged, budget.overdrafts), (0, 0));
}
