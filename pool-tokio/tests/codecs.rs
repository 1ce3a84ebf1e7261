//! Pooled `Framed`, `FramedRead` and `FramedWrite` with tokio-util's codecs.

use std::time::Duration;

use bytes::{BufMut, Bytes};
use futures_util::{SinkExt, StreamExt};
use pool_tokio::BytesPool;
use tokio_util::codec::{BytesCodec, LengthDelimitedCodec, LinesCodec};

#[tokio::test]
async fn length_delimited_round_trip_on_pooled_buffers() {
    let pool = BytesPool::new();
    let (a, b) = tokio::io::duplex(1 << 16);
    let mut client = pool.framed(a, LengthDelimitedCodec::new());
    let mut server = pool.framed(b, LengthDelimitedCodec::new());
    assert_eq!(pool.stats().outstanding(), 4);
    for i in 0..100u32 {
        let payload = Bytes::from(vec![i as u8; 10 + i as usize * 37]);
        client.send(payload.clone()).await.unwrap();
        let frame = server.next().await.unwrap().unwrap();
        assert_eq!(frame, payload);
        server.send(frame.freeze()).await.unwrap();
        assert_eq!(client.next().await.unwrap().unwrap(), payload);
    }
    drop((client, server));
    let stats = pool.stats();
    assert_eq!(stats.outstanding(), 0);
    assert_eq!(stats.total().returns, 4);
}

#[tokio::test]
async fn lines_codec_with_framed_read_and_write() {
    let pool = BytesPool::new();
    let (a, b) = tokio::io::duplex(1 << 16);
    let (ra, wa) = tokio::io::split(a);
    let (rb, wb) = tokio::io::split(b);
    let mut writer = pool.framed_write(wa, LinesCodec::new(), 8192);
    let mut reader = pool.framed_read(rb, LinesCodec::new(), 16 << 10);
    assert_eq!(reader.read_buffer().capacity(), 16 << 10);
    for line in ["alpha", "beta", "", "gamma delta"] {
        writer.send(line).await.unwrap();
    }
    for line in ["alpha", "beta", "", "gamma delta"] {
        assert_eq!(reader.next().await.unwrap().unwrap(), line);
    }
    // A partial line stays in the read buffer and comes out of into_parts.
    let mut raw = writer.into_parts();
    tokio::io::AsyncWriteExt::write_all(&mut raw.io, b"unfinish")
        .await
        .unwrap();
    let waited = tokio::time::timeout(Duration::from_millis(20), reader.next()).await;
    assert!(waited.is_err(), "no complete line yet");
    let parts = reader.into_parts();
    assert_eq!(&parts.read_buf.as_ref().unwrap()[..], b"unfinish");
    assert_eq!(pool.stats().outstanding(), 2); // both parts' buffers
    drop((parts, raw, ra, wb));
    assert_eq!(pool.stats().outstanding(), 0);
}

#[tokio::test]
async fn bytes_codec_echo_and_buffers_handed_over_cleared() {
    let pool = BytesPool::new();
    // Dirty a buffer of the class Framed will get, and return it.
    let mut dirty = pool.checkout(8192);
    dirty.put_slice(b"STALE DATA THAT MUST NOT BE READ");
    drop(dirty);
    let (a, b) = tokio::io::duplex(1 << 16);
    let mut server = pool.framed(b, BytesCodec::new());
    assert!(server.read_buffer().is_empty() && server.write_buffer().is_empty());
    let mut client = pool.framed(a, BytesCodec::new());
    client.send(Bytes::from_static(b"fresh")).await.unwrap();
    let got = server.next().await.unwrap().unwrap();
    assert_eq!(&got[..], b"fresh");
    server.send(got.freeze()).await.unwrap();
    assert_eq!(&client.next().await.unwrap().unwrap()[..], b"fresh");
    assert!(pool.stats().hits() >= 1, "the dirty buffer was reused");
    drop((client, server));
    assert_eq!(pool.stats().outstanding(), 0);
}

#[tokio::test]
async fn framed_pieces_go_back_on_into_parts_and_drop() {
    let pool = BytesPool::new();
    let (a, _b) = tokio::io::duplex(64);
    let mut framed = pool.framed(a, LengthDelimitedCodec::new());
    framed.write_buffer_mut().put_slice(b"unwritten");
    let parts = framed.into_parts();
    assert_eq!(&parts.write_buf.as_ref().unwrap()[..], b"unwritten");
    assert_eq!(pool.stats().outstanding(), 2);
    let read_buf = parts.read_buf.unwrap();
    drop(parts.write_buf);
    assert_eq!(pool.stats().outstanding(), 1);
    drop(read_buf);
    assert_eq!(pool.stats().outstanding(), 0);
    assert_eq!(pool.stats().total().discarded.total(), 0);
}
