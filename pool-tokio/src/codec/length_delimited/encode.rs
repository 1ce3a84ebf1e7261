//! Encoding: the header for a body, [`write_frame`](PooledLengthDelimitedCodec::write_frame)
//! (header and body in one vectored write), and the `Encoder` impls, which
//! queue a body by value in a pooled framed value and copy it elsewhere.

use std::io;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio_util::codec::Encoder;

use super::PooledLengthDelimitedCodec;
use crate::pool::PooledBytes;

impl PooledLengthDelimitedCodec {
    /// The header for a body of `len` bytes, in the first `.1` bytes.
    fn head(&self, len: usize) -> io::Result<([u8; 8], usize)> {
        let c = &self.config;
        if len > c.max_frame_len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "frame size too big: {len} bytes, over max_frame_length ({}); raise \
                     `max_frame_length` on both ends, or split the payload",
                    c.max_frame_len
                ),
            ));
        }
        let n = if c.length_adjustment < 0 {
            len.checked_add(c.length_adjustment.unsigned_abs())
        } else {
            len.checked_sub(c.length_adjustment as usize)
        };
        let n = n.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "provided length would overflow after adjustment",
            )
        })?;
        // A field of fewer than 8 bytes holds less than `u64`: a larger
        // value would be written truncated, which no decoder reads back.
        let bits = 8 * c.length_field_len as u32;
        if bits < 64 && (n as u64) >> bits != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "length field value {n} (the {len}-byte frame with length_adjustment {}) \
                     does not fit a {}-byte length field; widen `length_field_length` or \
                     change `length_adjustment`",
                    c.length_adjustment, c.length_field_len
                ),
            ));
        }
        let mut head = [0u8; 8];
        let mut out = &mut head[..];
        if c.big_endian {
            out.put_uint(n as u64, c.length_field_len);
        } else {
            out.put_uint_le(n as u64, c.length_field_len);
        }
        Ok((head, c.length_field_len))
    }

    /// Writes one frame to `io`: the header and the body with one
    /// `write_all_buf` of a chained buffer, which is a vectored write where
    /// `io` supports it (`TcpStream` and its halves do): the body is never
    /// copied. Does not flush (a `TcpStream` needs none; a `BufWriter`
    /// does). Fails, without writing, for a frame over `max_frame_length` or
    /// one whose length field value does not fit `length_field_length` bytes.
    ///
    /// Use it for large frames; for many small ones, a `FramedWrite` (which
    /// batches them in its write buffer) makes fewer system calls.
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe, as tokio's `AsyncWriteExt::write_all` is not: if the
    /// future is dropped before it completes (a `tokio::select!` branch
    /// that lost, a `tokio::time::timeout` that expired), a prefix of the
    /// frame, header included, may already be written, and nothing
    /// remembers the rest. The stream is then out of step: a frame written
    /// after it follows a partial one, and the peer reads garbage. So after
    /// a cancelled `write_frame`, shut the writer down rather than write to
    /// it again. Where a connection must outlive a cancelled write, send
    /// frames through a `FramedWrite` with this codec instead
    /// (`SinkExt::send`, at the cost of copying the body into its write
    /// buffer): an encoded frame stays in that buffer, so a cancelled send
    /// leaves the rest of it to the next flush and the stream stays whole.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let codec = pool_tokio::PooledLengthDelimitedCodec::new(pool_tokio::default_pool());
    /// let mut out = Vec::new();
    /// codec.write_frame(&mut out, b"abc").await?;
    /// assert_eq!(out, b"\0\0\0\x03abc");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn write_frame<W>(&self, io: &mut W, frame: &[u8]) -> io::Result<()>
    where
        W: AsyncWrite + Unpin,
    {
        let (head, n) = self.head(frame.len())?;
        let mut buf = (&head[..n]).chain(frame);
        io.write_all_buf(&mut buf).await
    }

    /// Header into `dst`, then the body: queued by value when a pooled
    /// framed value is encoding into its own write buffer, else copied.
    fn encode_body(&mut self, body: crate::codec::Body, dst: &mut BytesMut) -> io::Result<()> {
        let (head, n) = self.head(body.chunk().len())?;
        if let Some(body) = crate::codec::queue_body(self, dst, &head[..n], body) {
            dst.reserve(n + body.chunk().len());
            dst.put_slice(&head[..n]);
            dst.put_slice(body.chunk());
        }
        Ok(())
    }
}

impl Encoder<&[u8]> for PooledLengthDelimitedCodec {
    type Error = io::Error;

    fn encode(&mut self, data: &[u8], dst: &mut BytesMut) -> io::Result<()> {
        let (head, n) = self.head(data.len())?;
        dst.reserve(n + data.len());
        dst.put_slice(&head[..n]);
        dst.put_slice(data);
        Ok(())
    }
}

impl Encoder<PooledBytes> for PooledLengthDelimitedCodec {
    type Error = io::Error;

    /// In a pooled framed value ([`BytesPool::framed`](crate::BytesPool::framed),
    /// [`framed_write`](crate::BytesPool::framed_write)): writes the header and
    /// queues the frame by value (no copy; it goes back to the pool once
    /// written). Elsewhere (tokio-util's `Framed`): copies the frame into
    /// the write buffer and returns it to the pool.
    fn encode(&mut self, data: PooledBytes, dst: &mut BytesMut) -> io::Result<()> {
        self.encode_body(crate::codec::Body::Pooled(data), dst)
    }
}

impl Encoder<Bytes> for PooledLengthDelimitedCodec {
    type Error = io::Error;

    /// Queued by value in a pooled framed value, copied elsewhere (as for
    /// `PooledBytes`).
    fn encode(&mut self, data: Bytes, dst: &mut BytesMut) -> io::Result<()> {
        self.encode_body(crate::codec::Body::Shared(data), dst)
    }
}

impl Encoder<BytesMut> for PooledLengthDelimitedCodec {
    type Error = io::Error;

    /// Queued by value (frozen, which does not copy) in a pooled framed
    /// value, copied elsewhere (as for `PooledBytes`).
    fn encode(&mut self, data: BytesMut, dst: &mut BytesMut) -> io::Result<()> {
        self.encode_body(crate::codec::Body::Shared(data.freeze()), dst)
    }
}
