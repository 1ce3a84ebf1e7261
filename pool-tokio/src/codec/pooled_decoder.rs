//! Pooled frames for any decoder: copy each decoded frame into a pooled
//! buffer of its own (its class, or a larger idle one on a miss).

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::pool::{BytesPool, PooledBytes};

/// Wraps any tokio-util [`Decoder`] whose frames are bytes (`BytesMut`,
/// `Bytes`, `String`, `Vec<u8>`: anything `AsRef<[u8]>`) so that each frame
/// is copied into a [`PooledBytes`] of its own size class and the inner
/// frame dropped at once. Encoding is the inner codec's.
///
/// What it buys: codecs like `LinesCodec`, `BytesCodec` or
/// `LengthDelimitedCodec` return `split_to` views of the read buffer, which
/// keep the read buffer's memory alive for as long as the frame lives, so
/// the next read reallocates and the pooled read buffer is dropped instead
/// of reused. Copied out, frames live in their own pooled buffers and the
/// read buffer stays unique and reusable. The cost is one copy per frame,
/// and the inner codec's own per-frame allocation stays (`LinesCodec`
/// allocates a `String` per line); for length-delimited framing
/// [`PooledLengthDelimitedCodec`](crate::PooledLengthDelimitedCodec) needs
/// neither.
///
/// ```
/// use futures_util::StreamExt;
/// use pool_tokio::{BytesPool, PooledDecoder};
/// use tokio_util::codec::LinesCodec;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let pool = BytesPool::new();
/// let codec = PooledDecoder::new(&pool, LinesCodec::new());
/// let mut lines = pool.framed_read(&b"one\ntwo\n"[..], codec, 0);
/// let one = lines.next().await.unwrap().unwrap();
/// assert_eq!((&one[..], one.class_size()), (&b"one"[..], Some(512)));
/// assert_eq!(&lines.next().await.unwrap().unwrap()[..], b"two");
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct PooledDecoder<D> {
    inner: D,
    pool: BytesPool,
}

impl<D> PooledDecoder<D> {
    /// Wraps `inner`; frames come from `pool`.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let codec = pool_tokio::PooledDecoder::new(&pool, tokio_util::codec::BytesCodec::new());
    /// # let _ = codec;
    /// ```
    pub fn new(pool: &BytesPool, inner: D) -> Self {
        PooledDecoder {
            inner,
            pool: pool.clone(),
        }
    }

    /// The inner codec.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let codec = pool_tokio::PooledDecoder::new(&pool, tokio_util::codec::LinesCodec::new_with_max_length(80));
    /// assert_eq!(codec.get_ref().max_length(), 80);
    /// ```
    pub fn get_ref(&self) -> &D {
        &self.inner
    }

    /// The inner codec, mutably.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let mut codec = pool_tokio::PooledDecoder::new(&pool, tokio_util::codec::LengthDelimitedCodec::new());
    /// codec.get_mut().set_max_frame_length(1024);
    /// ```
    pub fn get_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    /// Unwraps the inner codec.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let codec = pool_tokio::PooledDecoder::new(&pool, tokio_util::codec::BytesCodec::new());
    /// let _inner: tokio_util::codec::BytesCodec = codec.into_inner();
    /// ```
    pub fn into_inner(self) -> D {
        self.inner
    }

    fn pooled(&self, frame: &[u8]) -> PooledBytes {
        let mut buf = self.pool.checkout(frame.len());
        buf.extend_from_slice(frame);
        buf
    }
}

impl<D> Decoder for PooledDecoder<D>
where
    D: Decoder,
    D::Item: AsRef<[u8]>,
{
    type Item = PooledBytes;
    type Error = D::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<PooledBytes>, D::Error> {
        Ok(self.inner.decode(src)?.map(|f| self.pooled(f.as_ref())))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<PooledBytes>, D::Error> {
        Ok(self.inner.decode_eof(src)?.map(|f| self.pooled(f.as_ref())))
    }
}

impl<I, D: Encoder<I>> Encoder<I> for PooledDecoder<D> {
    type Error = D::Error;

    fn encode(&mut self, item: I, dst: &mut BytesMut) -> Result<(), D::Error> {
        self.inner.encode(item, dst)
    }
}
