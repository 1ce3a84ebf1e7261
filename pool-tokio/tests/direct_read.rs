//! A pooled framed value with the pooled length-delimited codec reads large
//! frame bodies straight into the frame's own pooled buffer, not through
//! its read buffer; frames stay whole however the bytes trickle in and
//! however often a `next()` future is dropped mid-body; taking the value
//! apart mid-body loses nothing.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures_util::{FutureExt, StreamExt};
use pool_tokio::{BytesPool, PooledBytes, PooledLengthDelimitedCodec};
use proptest::prelude::*;
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::codec::Decoder;

/// Where each read put its bytes: (address, length).
type Log = Rc<RefCell<Vec<(usize, usize)>>>;

/// An `AsyncRead` that hands out `data` at most `cuts[i]` bytes at a time,
/// is pending (and wakes itself) where `pending[i]` says so, and logs
/// where every read put its bytes.
struct Reader {
    data: Vec<u8>,
    at: usize,
    cuts: Vec<usize>,
    pending: Vec<bool>,
    i: usize,
    log: Log,
}

impl Reader {
    fn new(data: Vec<u8>, cuts: Vec<usize>, pending: Vec<bool>) -> (Reader, Log) {
        let log = Log::default();
        let reader = Reader {
            data,
            at: 0,
            cuts,
            pending,
            i: 0,
            log: log.clone(),
        };
        (reader, log)
    }
}

impl AsyncRead for Reader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let i = this.i;
        this.i += 1;
        if this.pending[i % this.pending.len()] {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let cut = this.cuts[i % this.cuts.len()];
        let n = cut.min(buf.remaining()).min(this.data.len() - this.at);
        let at = buf.filled().as_ptr() as usize + buf.filled().len();
        buf.put_slice(&this.data[this.at..this.at + n]);
        this.at += n;
        this.log.borrow_mut().push((at, n));
        Poll::Ready(Ok(()))
    }
}

/// Frame `i` of length `len`: bytes that say which frame and where.
fn payload(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 31 + j * 7) as u8).collect()
}

fn wire(payloads: &[Vec<u8>]) -> Vec<u8> {
    let mut wire = Vec::new();
    for p in payloads {
        wire.extend_from_slice(&(p.len() as u32).to_be_bytes());
        wire.extend_from_slice(p);
    }
    wire
}

/// Bytes the reads put inside `frame`'s own allocation.
fn read_into(log: &Log, frame: &PooledBytes) -> usize {
    let start = frame.as_ptr() as usize;
    let end = start + frame.capacity();
    log.borrow()
        .iter()
        .filter(|&&(at, n)| n > 0 && at >= start && at + n <= end)
        .map(|&(_, n)| n)
        .sum()
}

/// Polls `next()` with a fresh future each time, dropping it whenever it
/// is pending: the state of a frame in progress must live in the value.
fn drain<S: futures_core::Stream + Unpin>(stream: &mut S) -> Vec<S::Item> {
    let mut out = Vec::new();
    loop {
        match stream.next().now_or_never() {
            Some(Some(item)) => out.push(item),
            Some(None) => return out,
            None => {}
        }
    }
}

/// The body of a large frame goes from the socket into the frame's own
/// pooled buffer: at most the first read's worth (what came in with the
/// header) passes through the 8 KiB read buffer, which stays at its class.
#[test]
fn large_bodies_are_read_into_the_frame_not_through_the_read_buffer() {
    let pool = BytesPool::new();
    let payloads: Vec<Vec<u8>> = [1 << 20, 100_000, 10, 5_000, 300_000, 0, 64 << 10]
        .iter()
        .enumerate()
        .map(|(i, &len)| payload(i, len))
        .collect();
    for read_only in [false, true] {
        let (io, log) = Reader::new(wire(&payloads), vec![64 << 10, 3_000, 1 << 20], vec![false]);
        let codec = PooledLengthDelimitedCodec::new(&pool);
        // Frames are held to the end, so no two share an address.
        let (frames, read_cap) = if read_only {
            let mut framed = pool.framed_read(io, codec, 8192);
            let frames: Vec<_> = drain(&mut framed);
            (frames, framed.read_buffer().capacity())
        } else {
            let mut framed = pool.framed(io, codec);
            let frames: Vec<_> = drain(&mut framed);
            (frames, framed.read_buffer().capacity())
        };
        assert_eq!(read_cap, 8192);
        let frames: Vec<PooledBytes> = frames.into_iter().map(Result::unwrap).collect();
        assert_eq!(frames.len(), payloads.len());
        for (frame, p) in frames.iter().zip(&payloads) {
            assert_eq!(&frame[..], &p[..]);
            if p.len() >= 64 << 10 {
                let direct = read_into(&log, frame);
                assert!(
                    direct >= p.len() - 8192,
                    "{} of {} body bytes were read into the frame (read_only {read_only})",
                    direct,
                    p.len()
                );
                // The smallest of four classes per doubling that fits.
                let step = (p.len() - 1).next_power_of_two() / 8;
                assert_eq!(frame.class_size(), Some(p.len().div_ceil(step) * step));
            }
        }
    }
    assert_eq!(pool.stats().outstanding(), 0);
}

/// Taken apart in the middle of a body read into the frame: the body so
/// far is in front of the read buffer, and the codec (which still knows
/// the length) decodes the frame from there.
#[test]
fn into_parts_mid_body_gives_the_body_back_to_the_codec() {
    let pool = BytesPool::new();
    let body = payload(3, 200_000);
    let wire = wire(std::slice::from_ref(&body));
    let cut = 120_000;
    // Out of bytes, the reader is pending (no end of stream).
    let (io, _log) = Reader::new(wire[..cut].to_vec(), vec![16 << 10], vec![false]);
    let mut framed = pool.framed(Stalling(io), PooledLengthDelimitedCodec::new(&pool));
    assert!(framed.next().now_or_never().is_none());
    assert!(format!("{:?}", framed.codec()).contains("lent(200000)"));
    let parts = framed.into_parts();
    let mut codec = parts.codec;
    let mut buf = BytesMut::from(&parts.read_buf.unwrap()[..]);
    assert_eq!(buf.len(), cut - 4);
    assert!(codec.decode(&mut buf).unwrap().is_none());
    buf.extend_from_slice(&wire[cut..]);
    let frame = codec.decode(&mut buf).unwrap().unwrap();
    assert_eq!(&frame[..], &body[..]);
    drop((frame, codec, parts.io, parts.write_buf));
    assert_eq!(pool.stats().outstanding(), 0);
}

/// An `AsyncRead` that is pending once its inner reader is out of bytes
/// (no end of stream).
struct Stalling(Reader);

impl AsyncRead for Stalling {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.0.at == self.0.data.len() {
            return Poll::Pending;
        }
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

/// A stream that ends inside a body read into the frame is an error, as
/// tokio-util's codec says ("bytes remaining on stream"), then ends; the
/// partial frame goes back to the pool.
#[test]
fn a_stream_that_ends_inside_a_direct_body_is_an_error() {
    let pool = BytesPool::new();
    let wire = wire(&[payload(0, 10), payload(1, 100_000)]);
    let (io, _log) = Reader::new(wire[..50_000].to_vec(), vec![20_000], vec![false]);
    let mut framed = pool.framed(io, PooledLengthDelimitedCodec::new(&pool));
    let got = drain(&mut framed);
    assert_eq!(got.len(), 2);
    assert_eq!(&got[0].as_ref().unwrap()[..], &payload(0, 10)[..]);
    let err = got[1].as_ref().unwrap_err();
    assert!(
        err.to_string().contains("bytes remaining on stream"),
        "{err}"
    );
    drop((got, framed));
    assert_eq!(pool.stats().outstanding(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0xD1EC_7B0D),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Frames of every size (large ones read straight into the frame) come
    /// out whole and in order from `framed` and `framed_read`, however the
    /// bytes trickle in and however often a pending `next()` future is
    /// dropped, with or without a budget; once all is dropped, nothing is
    /// outstanding or charged.
    #[test]
    fn trickled_frames_come_out_whole_with_dropped_futures(
        lens in proptest::collection::vec(
            prop_oneof![0usize..64, 0usize..30_000, 0usize..300_000], 0..12),
        cuts in proptest::collection::vec(1usize..70_000, 1..8),
        pending in proptest::collection::vec(proptest::bool::weighted(0.3), 1..6),
        budget in any::<bool>(),
        read_only in any::<bool>(),
    ) {
        let pool = if budget {
            BytesPool::builder().budget(256 << 10).build().unwrap()
        } else {
            BytesPool::new()
        };
        let payloads: Vec<Vec<u8>> =
            lens.iter().enumerate().map(|(i, &len)| payload(i, len)).collect();
        let mut pending = pending;
        pending[0] = false;
        let (io, _log) = Reader::new(wire(&payloads), cuts, pending);
        let codec = PooledLengthDelimitedCodec::new(&pool);
        let got: Vec<Vec<u8>> = if read_only {
            drain(&mut pool.framed_read(io, codec, 8192))
        } else {
            drain(&mut pool.framed(io, codec))
        }
        .into_iter()
        .map(|f| f.unwrap().to_vec())
        .collect();
        prop_assert_eq!(got, payloads);
        prop_assert_eq!(pool.stats().outstanding(), 0);
        if let Some(b) = pool.budget() {
            prop_assert_eq!(b.charged, 0);
        }
    }
}
