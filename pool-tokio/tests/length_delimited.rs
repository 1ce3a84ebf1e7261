//! `PooledLengthDelimitedCodec` and `FrameReader` against tokio-util's
//! `LengthDelimitedCodec`: the same frames and errors from the same bytes
//! (except where `max_frame_length` bounds the frame length here and the
//! raw field there), the same bytes from the same frames, under every
//! builder option and any chunking; every frame the encoder accepts
//! decodes; frames from the pool, back to it from any thread.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use pool_tokio::{BytesPool, LengthDelimitedBuilder, PooledDecoder, PooledLengthDelimitedCodec};
use proptest::prelude::*;
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::codec::{length_delimited, Decoder, Encoder, LengthDelimitedCodec};

/// One set of builder options, applied to both codecs.
#[derive(Debug, Clone, Copy)]
struct Opts {
    offset: usize,
    field_len: usize,
    adjustment: isize,
    num_skip: Option<usize>,
    endian: u8,
    max: usize,
}

impl Opts {
    fn tokio(&self) -> LengthDelimitedCodec {
        let mut b = length_delimited::Builder::new();
        b.length_field_offset(self.offset)
            .length_field_length(self.field_len)
            .length_adjustment(self.adjustment)
            .max_frame_length(self.max);
        if let Some(n) = self.num_skip {
            b.num_skip(n);
        }
        match self.endian {
            0 => b.big_endian(),
            1 => b.little_endian(),
            _ => b.native_endian(),
        };
        b.new_codec()
    }

    fn pooled(&self, pool: &BytesPool) -> PooledLengthDelimitedCodec {
        let mut b = LengthDelimitedBuilder::new();
        b.length_field_offset(self.offset)
            .length_field_length(self.field_len)
            .length_adjustment(self.adjustment)
            .max_frame_length(self.max);
        if let Some(n) = self.num_skip {
            b.num_skip(n);
        }
        match self.endian {
            0 => b.big_endian(),
            1 => b.little_endian(),
            _ => b.native_endian(),
        };
        b.new_codec(pool).unwrap()
    }

    fn big(&self) -> bool {
        match self.endian {
            0 => true,
            1 => false,
            _ => cfg!(target_endian = "big"),
        }
    }

    /// A stream of frames laid out as these options describe, with random
    /// bytes in the other header positions and the bodies.
    fn wire(&self, lens: &[u16], noise: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut noise = noise.iter().copied().cycle();
        for &v in lens {
            let v = v as u64 & max_field(self.field_len);
            let start = out.len();
            out.extend((0..self.offset).map(|_| noise.next().unwrap_or(0)));
            let bytes = if self.big() {
                v.to_be_bytes()[8 - self.field_len..].to_vec()
            } else {
                v.to_le_bytes()[..self.field_len].to_vec()
            };
            out.extend(bytes);
            let skip = self.num_skip.unwrap_or(self.offset + self.field_len);
            let n = (v as i64 + self.adjustment as i64).max(0) as usize;
            let total = skip + n;
            while out.len() - start < total {
                out.push(noise.next().unwrap_or(0));
            }
        }
        out
    }
}

/// Whether tokio-util's decoder and this one agree on a header whose
/// length field says `v`: tokio-util checks `max_frame_length` against `v`,
/// this codec against the frame length `v + adjustment` (issue 18, case 8).
/// `max` is the limit after clipping (the same in both).
fn limits_agree(o: &Opts, max: usize, v: u64) -> bool {
    let n = v as i128 + o.adjustment as i128;
    let tokio = if v > max as u64 {
        Err(io::ErrorKind::InvalidData)
    } else if n < 0 {
        Err(io::ErrorKind::InvalidInput)
    } else {
        Ok(())
    };
    let pooled = if n < 0 {
        Err(io::ErrorKind::InvalidInput)
    } else if n > max as i128 {
        Err(io::ErrorKind::InvalidData)
    } else {
        Ok(())
    };
    tokio == pooled
}

/// The frames of `lens` whose headers both decoders judge alike: those on
/// which their limits differ by design are covered by the round-trip
/// properties below.
fn agreeing(o: &Opts, pool: &BytesPool, lens: Vec<u16>) -> Vec<u16> {
    let max = o.pooled(pool).max_frame_length();
    lens.into_iter()
        .filter(|&v| limits_agree(o, max, v as u64 & max_field(o.field_len)))
        .collect()
}

fn max_field(len: usize) -> u64 {
    match 1u64.checked_shl(8 * len as u32) {
        Some(s) => s - 1,
        None => u64::MAX,
    }
}

fn opts() -> impl Strategy<Value = Opts> {
    (
        0usize..4,
        1usize..=8,
        -6isize..6,
        proptest::option::of(0usize..12),
        0u8..3,
        prop_oneof![Just(8 << 20), 0usize..3000],
    )
        .prop_map(
            |(offset, field_len, adjustment, num_skip, endian, max)| Opts {
                offset,
                field_len,
                adjustment,
                num_skip,
                endian,
                max,
            },
        )
}

/// What a decoder made of a stream: frames, then the error or end.
#[derive(Debug, PartialEq)]
enum Out {
    Frame(Vec<u8>),
    Error(io::ErrorKind),
}

/// Feeds `wire` to `decoder` in the chunks given by `cuts`, as a framed
/// reader would (decode after each chunk, `decode_eof` at the end).
fn run<D>(mut decoder: D, wire: &[u8], cuts: &[usize]) -> Vec<Out>
where
    D: Decoder<Error = io::Error>,
    D::Item: AsRef<[u8]>,
{
    let mut out = Vec::new();
    let mut src = BytesMut::new();
    let mut at = 0;
    let mut cuts = cuts.iter().copied().cycle();
    loop {
        let eof = at >= wire.len();
        if !eof {
            let n = cuts.next().unwrap_or(wire.len()).clamp(1, wire.len() - at);
            src.extend_from_slice(&wire[at..at + n]);
            at += n;
        }
        loop {
            let r = if eof {
                decoder.decode_eof(&mut src)
            } else {
                decoder.decode(&mut src)
            };
            match r {
                Ok(Some(f)) => out.push(Out::Frame(f.as_ref().to_vec())),
                Ok(None) if eof => return out,
                Ok(None) => break,
                Err(e) => {
                    out.push(Out::Error(e.kind()));
                    return out;
                }
            }
        }
    }
}

/// tokio-util ends quietly when the stream stops right after a header
/// (its buffer is empty); this codec reports the truncated frame.
fn same_up_to_truncation(tokio: &[Out], pooled: &[Out]) -> bool {
    tokio == pooled
        || (pooled.len() == tokio.len() + 1
            && pooled[..tokio.len()] == *tokio
            && pooled.last() == Some(&Out::Error(io::ErrorKind::Other)))
}

proptest! {
    // A fixed seed: the same 400 cases every run, so the suite is
    // deterministic. Once, in a random run under heavy load, this suite was
    // killed for memory (a reader that yielded without end, or a reference
    // run that did): the stream is now bounded below, so such a case fails
    // with its input instead. Explore other seeds by changing this one.
    #![proptest_config(ProptestConfig {
        cases: 400,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5EED_F00D),
        ..ProptestConfig::default()
    })]

    #[test]
    fn decodes_what_tokio_util_decodes(
        o in opts(),
        lens in proptest::collection::vec(0u16..2000, 0..8),
        noise in proptest::collection::vec(any::<u8>(), 1..64),
        cut in 0usize..200,
        cuts in proptest::collection::vec(1usize..700, 1..8),
        truncate in any::<bool>(),
    ) {
        let pool = BytesPool::new();
        let lens = agreeing(&o, &pool, lens);
        let mut wire = o.wire(&lens, &noise);
        if truncate && !wire.is_empty() {
            wire.truncate(wire.len() - 1 - cut % wire.len());
        }
        let tokio = run(o.tokio(), &wire, &cuts);
        let pooled = run(o.pooled(&pool), &wire, &cuts);
        prop_assert!(same_up_to_truncation(&tokio, &pooled), "tokio-util {tokio:?}\npooled {pooled:?}");
        prop_assert_eq!(pool.stats().outstanding(), 0);
    }

    #[test]
    fn encodes_what_tokio_util_encodes(
        o in opts(),
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..3000), 0..6),
    ) {
        let pool = BytesPool::new();
        let (mut tokio, mut pooled) = (o.tokio(), o.pooled(&pool));
        for p in &payloads {
            let mut a = BytesMut::new();
            let ra = tokio.encode(Bytes::copy_from_slice(p), &mut a).map_err(|e| e.kind());
            let mut b = BytesMut::new();
            let rb = pooled.encode(&p[..], &mut b).map_err(|e| e.kind());
            prop_assert_eq!(&ra, &rb);
            if ra.is_ok() {
                prop_assert_eq!(&a, &b);
                let mut pb = pool.checkout(p.len());
                pb.extend_from_slice(p);
                let mut c = BytesMut::new();
                pooled.encode(pb, &mut c).unwrap();
                prop_assert_eq!(&a, &c);
                let mut d = BytesMut::new();
                pooled.encode(Bytes::copy_from_slice(p), &mut d).unwrap();
                prop_assert_eq!(&a, &d);
                let mut e = Vec::new();
                futures_util::FutureExt::now_or_never(pooled.write_frame(&mut e, p)).unwrap().unwrap();
                prop_assert_eq!(&a[..], &e[..]);
            }
        }
    }

    #[test]
    fn frame_reader_yields_tokio_util_frames_under_any_chunking(
        o in opts(),
        lens in proptest::collection::vec(0u16..20_000, 0..6),
        noise in proptest::collection::vec(any::<u8>(), 1..64),
        cuts in proptest::collection::vec(1usize..9000, 1..8),
    ) {
        let pool = BytesPool::new();
        let lens = agreeing(&o, &pool, lens);
        let wire = o.wire(&lens, &noise);
        let tokio = run(o.tokio(), &wire, &cuts);
        let reader = o.pooled(&pool).new_reader(Chunks::new(&wire, &cuts));
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        // Bounded: a reader that never ends fails here, with its input,
        // rather than filling memory.
        // (Every frame takes at least one byte of the wire, header included.)
        let limit = wire.len() + 2;
        let pooled = rt.block_on(reader.map(|r| match r {
            Ok(f) => Out::Frame(f.to_vec()),
            Err(e) => Out::Error(e.kind()),
        }).take(limit + 1).collect::<Vec<_>>());
        prop_assert!(pooled.len() <= limit, "the reader did not end: {} items from {} bytes", pooled.len(), wire.len());
        // The stream ends after an error.
        let pooled: Vec<Out> = {
            let mut v = Vec::new();
            for x in pooled { let err = matches!(x, Out::Error(_)); v.push(x); if err { break } }
            v
        };
        prop_assert!(same_up_to_truncation(&tokio, &pooled), "tokio-util {tokio:?}\npooled {pooled:?}");
        prop_assert_eq!(pool.stats().outstanding(), 0);
    }
}

/// Layouts for the round-trip properties: adjustments wide enough to
/// count any header, and one that counts more than a one-byte field holds.
fn layouts() -> impl Strategy<Value = Opts> {
    (
        0usize..4,
        1usize..=8,
        prop_oneof![-12isize..12, -300isize..300],
        proptest::option::of(0usize..16),
        0u8..3,
        prop_oneof![Just(8 << 20), 0usize..700],
    )
        .prop_map(
            |(offset, field_len, adjustment, num_skip, endian, max)| Opts {
                offset,
                field_len,
                adjustment,
                num_skip,
                endian,
                max,
            },
        )
}

proptest! {
    // A fixed seed, as above: the same cases every run.
    #![proptest_config(ProptestConfig {
        cases: 600,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x0018_C0DE),
        ..ProptestConfig::default()
    })]

    /// Issue 18, case 8: every frame the encoder accepts decodes on a codec
    /// with the same settings, whatever the layout. The encoder writes the
    /// length field and the body; the test adds the `offset` bytes before
    /// the field (the encoder leaves them to the caller, as tokio-util's
    /// does) and, for a `num_skip` past the header, bytes after the body so
    /// that the frame is complete. The decoded frame is then the `len`
    /// bytes after `num_skip`, the body itself when the header is skipped.
    /// tokio-util's encoder writes the same bytes, so this codec reads
    /// every stream it writes within the limit.
    #[test]
    fn every_frame_the_encoder_accepts_decodes(
        o in layouts(),
        lens in proptest::collection::vec(0usize..900, 1..6),
        noise in any::<u8>(),
    ) {
        let pool = BytesPool::new();
        let mut codec = o.pooled(&pool);
        let mut tokio = o.tokio();
        let head = o.offset + o.field_len;
        let skip = o.num_skip.unwrap_or(head);
        for len in lens {
            let body: Vec<u8> = (0..len).map(|i| (i as u8) ^ noise).collect();
            let mut encoded = BytesMut::new();
            let accepted = codec.encode(&body[..], &mut encoded);
            let mut theirs = BytesMut::new();
            let tokio_accepted = tokio.encode(Bytes::copy_from_slice(&body), &mut theirs);
            prop_assert_eq!(accepted.is_ok(), tokio_accepted.is_ok());
            if accepted.is_err() {
                continue;
            }
            prop_assert_eq!(&encoded, &theirs, "tokio-util writes the same bytes");
            prop_assert!(len <= codec.max_frame_length());
            let mut wire = BytesMut::from(&vec![noise; o.offset][..]);
            wire.extend_from_slice(&encoded);
            wire.extend_from_slice(&vec![noise; skip.saturating_sub(head)]);
            let expected = wire[skip..skip + len].to_vec();
            let mut decoder = o.pooled(&pool);
            match decoder.decode(&mut wire) {
                Ok(Some(frame)) => prop_assert_eq!(&frame[..], &expected[..], "{:?}", o),
                Ok(None) => prop_assert!(false, "a complete frame waits for more: {:?}", o),
                // The one refusal by design: with num_skip(0) an empty frame
                // would consume nothing.
                Err(e) => prop_assert!(
                    skip == 0 && len == 0 && e.kind() == io::ErrorKind::InvalidData,
                    "{:?} refused a {}-byte frame it encoded: {}", o, len, e
                ),
            }
        }
        prop_assert_eq!(pool.stats().outstanding(), 0);
    }

    /// Streams of encoded frames, with the header skipped (the layouts in
    /// which encoder and decoder are inverses): any chunking gives back
    /// exactly the bodies, through the `Decoder` and the `FrameReader`.
    #[test]
    fn encoded_streams_round_trip_under_any_chunking(
        o in layouts(),
        bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..900), 0..6),
        cuts in proptest::collection::vec(1usize..700, 1..8),
    ) {
        let o = Opts { offset: 0, num_skip: None, ..o };
        let pool = BytesPool::new();
        let mut codec = o.pooled(&pool);
        let mut wire = BytesMut::new();
        let mut expected = Vec::new();
        for body in &bodies {
            if codec.encode(&body[..], &mut wire).is_ok() {
                expected.push(Out::Frame(body.clone()));
            }
        }
        prop_assert_eq!(&run(o.pooled(&pool), &wire, &cuts), &expected, "{:?}", o);
        let reader = o.pooled(&pool).new_reader(Chunks::new(&wire, &cuts));
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let read = rt.block_on(reader.map(|r| match r {
            Ok(f) => Out::Frame(f.to_vec()),
            Err(e) => Out::Error(e.kind()),
        }).take(expected.len() + 1).collect::<Vec<_>>());
        prop_assert_eq!(&read, &expected, "{:?}", o);
        prop_assert_eq!(pool.stats().outstanding(), 0);
    }
}

/// A length field too narrow for the value a frame needs (a negative
/// `length_adjustment` past what the field holds) is refused by the
/// encoder, which used to write it truncated (300 as `[44]`), a header its
/// own decoder then refused.
#[test]
fn the_encoder_refuses_a_length_its_field_cannot_hold() {
    let pool = BytesPool::new();
    for adjustment in [-256isize, -300] {
        let mut codec = LengthDelimitedBuilder::new()
            .length_field_length(1)
            .length_adjustment(adjustment)
            .new_codec(&pool)
            .unwrap();
        let mut wire = BytesMut::new();
        let err = codec.encode(&b""[..], &mut wire).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(
            err.to_string()
                .contains("does not fit a 1-byte length field"),
            "{err}"
        );
        assert!(wire.is_empty(), "nothing written");
    }
    // The widest value a field holds still encodes, and decodes back.
    let mut codec = LengthDelimitedBuilder::new()
        .length_field_length(1)
        .length_adjustment(-255)
        .new_codec(&pool)
        .unwrap();
    let mut wire = BytesMut::new();
    codec.encode(&b""[..], &mut wire).unwrap();
    assert_eq!(&wire[..], &[255]);
    assert!(codec.decode(&mut wire).unwrap().unwrap().is_empty());
}

#[test]
fn a_length_that_counts_itself_decodes_the_largest_frame_it_encodes() {
    // Issue 18, case 8, as filed: a one-byte field with
    // `length_adjustment(-1)` clips to 254; a 254-byte frame encodes as
    // field 255 and decodes back. And a field of 215 with adjustment -213
    // is a 2-byte frame, within max_frame_length (42).
    let pool = BytesPool::new();
    for (adjustment, len) in [(-1isize, 254usize), (-213, 2), (-213, 42)] {
        let mut codec = LengthDelimitedBuilder::new()
            .length_field_type::<u8>()
            .length_adjustment(adjustment)
            .new_codec(&pool)
            .unwrap();
        let mut wire = BytesMut::new();
        codec.encode(&vec![1u8; len][..], &mut wire).unwrap();
        let frame = codec.decode(&mut wire).unwrap().unwrap();
        assert_eq!(frame.len(), len, "adjustment {adjustment}");
        assert!(wire.is_empty());
    }
    // Over the limit both ways, and the decoder names the frame length.
    let mut codec = LengthDelimitedBuilder::new()
        .length_field_type::<u8>()
        .length_adjustment(-1)
        .max_frame_length(10)
        .new_codec(&pool)
        .unwrap();
    assert!(codec.encode(&[0u8; 11][..], &mut BytesMut::new()).is_err());
    let mut wire = BytesMut::new();
    codec.encode(&[0u8; 10][..], &mut wire).unwrap();
    assert_eq!(wire[0], 11, "a field over the limit, a frame within it");
    assert_eq!(codec.decode(&mut wire).unwrap().unwrap().len(), 10);
    let err = codec.decode(&mut BytesMut::from(&[12u8][..])).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    let msg = err.to_string();
    assert!(
        msg.contains("says 11 bytes") && msg.contains("max_frame_length (10)"),
        "{msg}"
    );
    assert_eq!(pool.stats().outstanding(), 0);
}

/// Issue 18, case 9, pinned as documented: a `write_frame` dropped
/// mid-frame leaves a prefix of the frame on the wire and nothing resumes
/// it, so a next frame corrupts the stream; a cancelled `FramedWrite` send
/// (the documented safe pattern) keeps the stream whole.
#[tokio::test]
async fn a_cancelled_write_frame_leaves_a_partial_frame_and_a_framed_write_does_not() {
    use futures_util::FutureExt;
    use tokio::io::AsyncReadExt;

    let pool = BytesPool::new();
    let codec = PooledLengthDelimitedCodec::new(&pool);
    let body = vec![7u8; 100];

    // The pipe takes 16 bytes, then the write waits: one poll, then dropped.
    let (mut tx, mut rx) = tokio::io::duplex(16);
    assert!(codec.write_frame(&mut tx, &body).now_or_never().is_none());
    let mut sent = vec![0u8; 16];
    rx.read_exact(&mut sent).await.unwrap();
    let mut whole = Vec::new();
    codec.write_frame(&mut whole, &body).await.unwrap();
    assert_eq!(sent, whole[..16], "a prefix of the frame went out");
    let next = async {
        codec.write_frame(&mut tx, b"next").await.unwrap();
        drop(tx);
    };
    let mut rest = Vec::new();
    let ((), read) = tokio::join!(next, rx.read_to_end(&mut rest));
    read.unwrap();
    assert_eq!(
        rest, b"\0\0\0\x04next",
        "the rest of the first frame never follows"
    );
    sent.extend_from_slice(&rest);
    let frames = run(LengthDelimitedCodec::new(), &sent, &[sent.len()]);
    assert_eq!(
        frames,
        [Out::Error(io::ErrorKind::Other)],
        "the peer sees one truncated frame, not two frames"
    );

    // The safe pattern: the encoded frame waits in the write buffer.
    let (tx, rx) = tokio::io::duplex(16);
    let mut sink = tokio_util::codec::FramedWrite::new(tx, PooledLengthDelimitedCodec::new(&pool));
    assert!(sink
        .send(Bytes::from(body.clone()))
        .now_or_never()
        .is_none());
    let write = async {
        sink.send(Bytes::from_static(b"next")).await.unwrap();
        SinkExt::<Bytes>::close(&mut sink).await.unwrap();
    };
    let read = tokio_util::codec::FramedRead::new(rx, LengthDelimitedCodec::new())
        .map(|f| f.unwrap().to_vec())
        .collect::<Vec<_>>();
    let ((), frames) = tokio::join!(write, read);
    assert_eq!(frames, [body, b"next".to_vec()]);
    assert_eq!(pool.stats().outstanding(), 0);
}

/// An `AsyncRead` that hands out `data` in chunks of the given sizes.
struct Chunks {
    data: Vec<u8>,
    at: usize,
    cuts: Vec<usize>,
    i: usize,
}

impl Chunks {
    fn new(data: &[u8], cuts: &[usize]) -> Self {
        Chunks {
            data: data.to_vec(),
            at: 0,
            cuts: cuts.to_vec(),
            i: 0,
        }
    }
}

impl AsyncRead for Chunks {
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

#[tokio::test]
async fn frames_cross_the_wire_both_ways_with_tokio_util() {
    let pool = BytesPool::new();
    let (a, b) = tokio::io::duplex(16 << 10);
    let mut plain = length_delimited::Builder::new()
        .little_endian()
        .length_field_type::<u16>()
        .new_framed(a);
    // Echoed frames are queued by value (no copy), so the write buffer
    // holds only headers, whatever the frame sizes.
    let mut pooled = pool.framed_with_capacity(
        b,
        LengthDelimitedBuilder::new()
            .little_endian()
            .length_field_type::<u16>()
            .new_codec(&pool)
            .unwrap(),
        8192,
        16 << 10,
    );
    let payloads: Vec<Vec<u8>> = (0..12).map(|i| vec![i as u8; (1 << i) * 7]).collect();
    let writer = tokio::spawn({
        let payloads = payloads.clone();
        async move {
            for p in payloads {
                plain.send(Bytes::from(p)).await.unwrap();
            }
            let mut echoed = Vec::new();
            while let Some(f) = plain.next().await {
                echoed.push(f.unwrap().to_vec());
                if echoed.len() == 12 {
                    break;
                }
            }
            echoed
        }
    });
    for p in &payloads {
        let frame = pooled.next().await.unwrap().unwrap();
        assert_eq!(&frame[..], &p[..]);
        // Every length 7 * 2^i above 512 is a class: 2^(i+2) + 3 * 2^i.
        assert_eq!(frame.class_size(), Some(p.len().max(512)));
        pooled.send(frame).await.unwrap();
    }
    assert_eq!(writer.await.unwrap(), payloads);
    drop(pooled);
    assert_eq!(pool.stats().outstanding(), 0);
    assert_eq!(
        pool.stats().total().discarded.total(),
        0,
        "read buffer, write buffer and frames all kept: none grew or was shared"
    );
}

#[test]
fn oversized_frames_are_io_errors_that_say_what_to_change() {
    let pool = BytesPool::new();
    let mut codec = LengthDelimitedBuilder::new()
        .max_frame_length(1000)
        .new_codec(&pool)
        .unwrap();
    let mut src = BytesMut::from(&b"\0\0\x04\0rest"[..]);
    let err = codec.decode(&mut src).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    let msg = err.to_string();
    assert!(
        msg.contains("1024") && msg.contains("1000") && msg.contains("raise `max_frame_length`"),
        "{msg}"
    );
    let err = codec
        .encode(&[0u8; 1001][..], &mut BytesMut::new())
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("max_frame_length (1000)"), "{err}");
    assert_eq!(
        pool.stats().checkouts(),
        0,
        "nothing checked out for a refused frame"
    );
}

#[test]
fn frames_returned_on_other_threads_come_back_to_the_pool() {
    let pool = BytesPool::new();
    let mut codec = PooledLengthDelimitedCodec::new(&pool);
    let mut wire = BytesMut::new();
    for round in 0..4 {
        for i in 0..8usize {
            codec
                .encode(&vec![i as u8; 100 << i][..], &mut wire)
                .unwrap();
        }
        let mut frames = Vec::new();
        while let Some(f) = codec.decode(&mut wire).unwrap() {
            frames.push(f);
        }
        assert_eq!(frames.len(), 8);
        // Dropped on two other threads, half each.
        let second = frames.split_off(4);
        // Each thread hands its cache to the depot before it ends (the
        // exit hook may run after `scope` returns).
        std::thread::scope(|s| {
            s.spawn(|| {
                drop(frames);
                pool.flush_thread();
            });
            s.spawn(|| {
                drop(second);
                pool.flush_thread();
            });
        });
        let stats = pool.stats();
        assert_eq!(stats.outstanding(), 0, "round {round}");
        assert_eq!(stats.total().discarded.total(), 0, "round {round}");
    }
    let stats = pool.stats();
    assert_eq!(stats.checkouts(), 32);
    assert_eq!(stats.total().returns, 32);
    assert!(stats.hits() >= 24, "later rounds reuse: {stats}");
}

#[tokio::test]
async fn pooled_decoder_gives_any_codec_pooled_frames_and_keeps_the_read_buffer() {
    let pool = BytesPool::new();
    let (a, b) = tokio::io::duplex(64 << 10);
    let mut plain = tokio_util::codec::Framed::new(a, LengthDelimitedCodec::new());
    let mut pooled = pool.framed(b, PooledDecoder::new(&pool, LengthDelimitedCodec::new()));
    let mut held = Vec::new();
    for i in 0..20usize {
        plain.send(Bytes::from(vec![i as u8; 3000])).await.unwrap();
        let frame = pooled.next().await.unwrap().unwrap();
        assert_eq!((frame.len(), frame[0]), (3000, i as u8));
        held.push(frame); // frames held do not pin the read buffer
    }
    assert!(
        pooled.read_buffer_mut().try_reclaim(8192),
        "the read buffer is unique and whole: no frame pins it"
    );
    drop((held, pooled));
    let stats = pool.stats();
    assert_eq!(stats.outstanding(), 0);
    assert_eq!(stats.total().discarded.total(), 0);
}

#[test]
fn bad_builder_settings_are_errors() {
    let pool = BytesPool::new();
    let err = LengthDelimitedBuilder::new()
        .length_field_length(0)
        .new_codec(&pool)
        .unwrap_err();
    assert!(err.to_string().contains("length_field_length = 0"), "{err}");
}

/// With `num_skip(0)` a frame that takes none of the stream (length 0 after
/// adjustment) would leave its header to be read again forever, as
/// tokio-util's codec does; this one refuses it.
#[test]
fn a_frame_that_consumes_nothing_is_an_error_not_an_endless_stream() {
    let pool = BytesPool::new();
    let mut codec = PooledLengthDelimitedCodec::builder()
        .length_field_length(1)
        .num_skip(0)
        .new_codec(&pool)
        .unwrap();
    let mut src = BytesMut::from(&[0u8, 0][..]);
    let err = codec.decode(&mut src).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("num_skip"), "{err}");
    // With the header covered by the adjustment, the same layout works.
    let mut codec = PooledLengthDelimitedCodec::builder()
        .length_field_length(1)
        .num_skip(0)
        .length_adjustment(1)
        .new_codec(&pool)
        .unwrap();
    let mut src = BytesMut::from(&[0u8, 0][..]);
    let frame = codec.decode(&mut src).unwrap().unwrap();
    assert_eq!(&frame[..], &[0u8][..]);
}
