//! The pooled `Framed`: setup that is cancelled loses no budget, the sink
//! of the pooled length-delimited codec queues frames by value and writes
//! them vectored (checked against tokio-util's `Framed` on the peer), and
//! the read side keeps every buffer it uses a pooled checkout while frames
//! of a foreign codec share it.

use std::cell::RefCell;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, SinkExt, StreamExt};
use pool_tokio::{BytesPool, PooledLengthDelimitedCodec};
use proptest::prelude::*;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::codec::{BytesCodec, FramedRead, LengthDelimitedCodec};

/// Issue 18, case 1: `framed_async` cancelled while it waits for its second
/// buffer gives the first one back (guard and charge).
#[test]
fn cancelled_framed_async_gives_back_its_first_buffer() {
    let pool = BytesPool::builder().budget(16 << 10).build().unwrap();
    let held = pool.checkout(8 << 10);
    let (a, _b) = tokio::io::duplex(64);
    // One poll (with a no-op waker): the read buffer is served, the write
    // buffer waits for the budget; then the future is dropped.
    let setup = pool.framed_async(a, BytesCodec::new()).now_or_never();
    assert!(setup.is_none(), "the second buffer waits for the budget");
    drop(held);
    let budget = pool.budget().unwrap();
    assert_eq!((budget.charged, budget.overdrafts), (0, 0));
    assert_eq!(pool.stats().outstanding(), 0);
}

/// An `AsyncWrite` that takes at most `cuts[i]` bytes per write (vectored
/// or not, as told), is sometimes not ready (`pending[i]`, after waking
/// itself), and counts the bytes it took straight from the memory of a
/// frame sent by value (`frames`: address and length of each, registered
/// before it is sent and kept alive to the end, so that no address is
/// another allocation's at the time it is seen).
struct Chunky {
    out: Vec<u8>,
    frames: Rc<RefCell<Vec<(usize, usize)>>>,
    from_frames: usize,
    cuts: Vec<usize>,
    pending: Vec<bool>,
    i: usize,
    was_pending: bool,
    vectored: bool,
}

impl Chunky {
    fn new(cuts: Vec<usize>, pending: Vec<bool>, vectored: bool) -> Self {
        Chunky {
            out: Vec::new(),
            frames: Rc::default(),
            from_frames: 0,
            cuts,
            pending,
            i: 0,
            was_pending: false,
            vectored,
        }
    }

    /// The next write's limit, or `None` to be not ready this time.
    fn next(&mut self, cx: &mut Context<'_>) -> Option<usize> {
        let i = self.i;
        self.i += 1;
        // Never twice in a row, so that every write is taken eventually.
        if self.pending[i % self.pending.len()] && !self.was_pending {
            self.was_pending = true;
            cx.waker().wake_by_ref();
            return None;
        }
        self.was_pending = false;
        Some(self.cuts[i % self.cuts.len()])
    }

    fn take(&mut self, slices: &[IoSlice<'_>], mut limit: usize) -> usize {
        let mut n = 0;
        for s in slices {
            let k = s.len().min(limit);
            if k == 0 {
                continue;
            }
            self.out.extend_from_slice(&s[..k]);
            let p = s.as_ptr() as usize;
            if self
                .frames
                .borrow()
                .iter()
                .any(|&(f, len)| p >= f && p + k <= f + len)
            {
                self.from_frames += k;
            }
            n += k;
            limit -= k;
        }
        n
    }
}

impl AsyncWrite for Chunky {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.next(cx) {
            None => Poll::Pending,
            Some(cut) => Poll::Ready(Ok(self.take(&[IoSlice::new(buf)], cut))),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        assert!(
            self.vectored,
            "a writer that is not vectored gets poll_write"
        );
        match self.next(cx) {
            None => Poll::Pending,
            Some(cut) => Poll::Ready(Ok(self.take(bufs, cut))),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.vectored
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// An `AsyncRead` that hands out `data` at most `cuts[i]` bytes at a time.
struct Trickle {
    data: Vec<u8>,
    at: usize,
    cuts: Vec<usize>,
    i: usize,
}

impl AsyncRead for Trickle {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let cut = this.cuts[this.i % this.cuts.len()];
        this.i += 1;
        let n = cut.min(buf.remaining()).min(this.data.len() - this.at);
        buf.put_slice(&this.data[this.at..this.at + n]);
        this.at += n;
        Poll::Ready(Ok(()))
    }
}

/// What a frame is sent as.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Pooled,
    Bytes,
    BytesMut,
    Slice,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Pooled),
        Just(Kind::Bytes),
        Just(Kind::BytesMut),
        Just(Kind::Slice)
    ]
}

/// Frame `i` of length `len`: bytes that say which frame and where.
fn payload(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 31 + j * 7) as u8).collect()
}

/// Decodes `wire` with tokio-util's own `LengthDelimitedCodec`.
fn tokio_util_frames(wire: &[u8]) -> Vec<Vec<u8>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(
        FramedRead::new(wire, LengthDelimitedCodec::new())
            .map(|f| f.unwrap().to_vec())
            .collect(),
    )
}

/// Sends the frames through a pooled framed value over `Chunky` and checks
/// what tokio-util reads back, the backpressure bound, and that no body
/// sent by value was copied. Returns the message on failure.
fn send_and_check(
    frames: &[(usize, Kind, bool)],
    cuts: Vec<usize>,
    pending: Vec<bool>,
    vectored: bool,
    write_only: bool,
) -> Result<(), TestCaseError> {
    let pool = BytesPool::new();
    let codec = PooledLengthDelimitedCodec::new(&pool);
    let writer = Chunky::new(cuts, pending, vectored);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let payloads: Vec<Vec<u8>> = frames
        .iter()
        .enumerate()
        .map(|(i, &(len, _, _))| payload(i, len))
        .collect();
    // The memory of each frame sent by value, to find it in the writes.
    let by_value = writer.frames.clone();
    let copies = frames.iter().any(|f| matches!(f.1, Kind::Slice));
    // Handles that keep each such frame's memory alive to the end, so that
    // no later allocation (a grown write buffer) can take its addresses.
    let mut keep: Vec<BytesMut> = Vec::new();
    let mut kept: Vec<Bytes> = Vec::new();
    let (wire, from_frames) = rt.block_on(async {
        macro_rules! run {
            ($framed:expr) => {{
                let mut framed = $framed;
                let boundary = framed.backpressure_boundary();
                for (i, &(len, kind, flush)) in frames.iter().enumerate() {
                    let p = &payloads[i];
                    match kind {
                        Kind::Pooled => {
                            let mut b = pool.checkout(len);
                            b.extend_from_slice(p);
                            by_value.borrow_mut().push((b.as_ptr() as usize, len));
                            keep.push(b.split_to(0));
                            framed.feed(b).await.unwrap();
                        }
                        Kind::Bytes => {
                            let b = Bytes::from(p.clone());
                            by_value.borrow_mut().push((b.as_ptr() as usize, len));
                            kept.push(b.clone());
                            framed.feed(b).await.unwrap();
                        }
                        Kind::BytesMut => {
                            let mut b = BytesMut::from(&p[..]);
                            by_value.borrow_mut().push((b.as_ptr() as usize, len));
                            keep.push(b.split_to(0));
                            framed.feed(b).await.unwrap();
                        }
                        Kind::Slice => framed.feed(&p[..]).await.unwrap(),
                    }
                    // `poll_ready` wrote until fewer than `boundary` bytes
                    // were queued; then this frame was queued.
                    prop_assert!(framed.queued_bytes() < boundary + 4 + len);
                    // Without `&[u8]` items (copied: the `Encoder` path)
                    // only headers go into the write buffer: it never grows.
                    if !copies {
                        prop_assert!(framed.write_buffer().capacity() <= 8192);
                    }
                    if flush {
                        SinkExt::<Bytes>::flush(&mut framed).await.unwrap();
                        prop_assert_eq!(framed.queued_bytes(), 0);
                    }
                }
                SinkExt::<Bytes>::close(&mut framed).await.unwrap();
                prop_assert_eq!(framed.queued_bytes(), 0);
                // Back to its class, whatever was copied into it.
                prop_assert_eq!(framed.write_buffer().capacity(), 8192);
                let parts = framed.into_parts();
                (parts.io.out, parts.io.from_frames)
            }};
        }
        Ok::<_, TestCaseError>(if write_only {
            run!(pool.framed_write(writer, codec, 8192))
        } else {
            run!(pool.framed(writer, codec))
        })
    })?;
    prop_assert_eq!(tokio_util_frames(&wire), payloads);
    // Every byte of every frame sent by value was written from the
    // frame's own memory.
    let sent_by_value: usize = by_value.borrow().iter().map(|&(_, len)| len).sum();
    prop_assert_eq!(from_frames, sent_by_value, "a body was copied");
    drop((keep, kept));
    prop_assert_eq!(pool.stats().outstanding(), 0);
    Ok(())
}

proptest! {
    // A fixed seed: the same cases every run. Sizes are bounded (frames up
    // to 20 kB, up to 24 of them) so the suite runs in seconds.
    #![proptest_config(ProptestConfig {
        cases: 200,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0xF4A3_ED51),
        ..ProptestConfig::default()
    })]

    /// Issue 14, item 1: every frame arrives intact and in order at
    /// tokio-util's codec, whatever the sizes, kinds and write chunking.
    #[test]
    fn the_sink_writes_what_tokio_util_reads_and_copies_no_body(
        frames in proptest::collection::vec(
            (prop_oneof![0usize..64, 0usize..20_000], kind(), proptest::bool::weighted(0.2)),
            0..24,
        ),
        cuts in proptest::collection::vec(1usize..12_000, 1..8),
        pending in proptest::collection::vec(proptest::bool::weighted(0.3), 1..6),
        vectored in any::<bool>(),
        write_only in any::<bool>(),
    ) {
        send_and_check(&frames, cuts, pending, vectored, write_only)?;
    }

    /// Issue 18, case 2: frames of a foreign codec (tokio-util's, which
    /// splits them off the read buffer) arrive intact and in order however
    /// the bytes trickle in and whichever frames are held, with or without
    /// a budget; once all is dropped, nothing is outstanding or charged.
    #[test]
    fn the_read_side_yields_tokio_util_frames_while_frames_are_held(
        lens in proptest::collection::vec(prop_oneof![0usize..64, 0usize..30_000], 0..24),
        hold in proptest::collection::vec(any::<bool>(), 1..8),
        cuts in proptest::collection::vec(1usize..20_000, 1..8),
        budget in any::<bool>(),
    ) {
        let pool = if budget {
            BytesPool::builder().budget(64 << 10).build().unwrap()
        } else {
            BytesPool::new()
        };
        let payloads: Vec<Vec<u8>> = lens.iter().enumerate().map(|(i, &len)| payload(i, len)).collect();
        let mut wire = Vec::new();
        for p in &payloads {
            wire.extend_from_slice(&(p.len() as u32).to_be_bytes());
            wire.extend_from_slice(p);
        }
        let io = Trickle { data: wire, at: 0, cuts, i: 0 };
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let got = rt.block_on(async {
            let mut framed = pool.framed(io, LengthDelimitedCodec::new());
            let mut held = Vec::new();
            let mut got = Vec::new();
            while let Some(frame) = framed.next().await {
                let frame = frame.unwrap();
                got.push(frame.to_vec());
                if hold[got.len() % hold.len()] {
                    held.push(frame);
                }
            }
            got
        });
        prop_assert_eq!(got, payloads);
        prop_assert_eq!(pool.stats().outstanding(), 0);
        if let Some(b) = pool.budget() {
            prop_assert_eq!(b.charged, 0);
        }
    }
}

/// Issue 14, item 1: the `Encoder` path (any other codec) copies, and
/// after a frame larger than the write buffer, the grown buffer goes back
/// to the pool once written and one of the configured size takes its
/// place; the read buffer does the same once the large frame is decoded.
#[tokio::test]
async fn buffers_go_back_to_their_class_after_a_large_frame() {
    let pool = BytesPool::new();
    let (a, b) = tokio::io::duplex(1 << 20);
    let mut tx = pool.framed(a, LengthDelimitedCodec::new());
    let mut rx = pool.framed(b, LengthDelimitedCodec::new());
    tx.send(Bytes::from(vec![5u8; 100_000])).await.unwrap();
    // Written: the write buffer is 8 KiB again.
    assert_eq!(tx.write_buffer().capacity(), 8192);
    let frame = rx.next().await.unwrap().unwrap();
    assert_eq!(frame.len(), 100_000);
    drop(frame);
    tx.send(Bytes::from_static(b"small")).await.unwrap();
    assert_eq!(&rx.next().await.unwrap().unwrap()[..], b"small");
    // The read buffer went back to its class before the next read.
    assert!(rx.read_buffer().capacity() <= 8192);
    drop((tx, rx));
    assert_eq!(pool.stats().outstanding(), 0);
}

/// A read buffer replaced by a larger class's idle buffer (a miss served by
/// the fallback) settles there: later reads take it back in place instead
/// of checking out a buffer per read. Before, the replacement looked like a
/// buffer grown past its class, so each read swapped it for a fresh
/// checkout, which the fallback served with the same larger buffer again:
/// 100 checkouts in 100 reads.
#[tokio::test]
async fn a_read_buffer_from_a_larger_class_does_not_churn() {
    use tokio::io::AsyncWriteExt;
    for pool in [
        BytesPool::new(),
        BytesPool::builder().budget(1 << 20).build().unwrap(),
    ] {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let mut framed = pool.framed(a, BytesCodec::new());
        pool.prewarm(10240, 2);
        b.write_all(b"hello").await.unwrap();
        let f1 = framed.next().await.unwrap().unwrap(); // shares the read buffer
        b.write_all(b"hello").await.unwrap();
        let f2 = framed.next().await.unwrap().unwrap(); // read buffer replaced
        drop((f1, f2));
        let before = pool.stats().checkouts();
        for _ in 0..100 {
            b.write_all(b"hello").await.unwrap();
            drop(framed.next().await.unwrap().unwrap());
        }
        let checkouts = pool.stats().checkouts() - before;
        // The frames themselves are checkouts of `BytesCodec`'s split (not
        // of the pool): only read-buffer replacements count here.
        assert!(checkouts <= 2, "{checkouts} checkouts in 100 reads");
        drop(framed);
        assert_eq!(pool.stats().outstanding(), 0);
    }
}
