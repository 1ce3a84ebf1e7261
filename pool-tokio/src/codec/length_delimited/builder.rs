//! [`LengthDelimitedBuilder`]: the header layout and frame bound of a
//! [`PooledLengthDelimitedCodec`] (tokio-util's options and defaults), and
//! the constructors of a codec and of pooled framed values with it.

use std::io;

use super::{PooledLengthDelimitedCodec, State, DEFAULT_MAX_FRAME_LENGTH};
use crate::pool::BytesPool;

mod sealed {
    pub trait Sealed {}
}

/// The integer types a length field can be: `u8`, `u16`, `u32`, `u64` and
/// `usize` (as in tokio-util). Sealed.
pub trait LengthFieldType: sealed::Sealed {}

macro_rules! length_field_types {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl LengthFieldType for $t {}
    )*};
}
length_field_types!(u8, u16, u32, u64);
#[cfg(target_pointer_width = "64")]
length_field_types!(usize);

/// Configures a [`PooledLengthDelimitedCodec`]: the same options, with the
/// same defaults and meaning, as tokio-util's
/// `length_delimited::Builder` (a 4-byte big-endian length field at offset
/// 0, no adjustment, the header skipped, frames up to 8 MiB).
///
/// As in tokio-util, the encoder writes only the length field (of the body
/// length minus the adjustment) before the body; `length_field_offset` and
/// `num_skip` apply to decoding.
///
/// ```
/// use pool_tokio::{BytesPool, LengthDelimitedBuilder};
/// let pool = BytesPool::new();
/// let codec = LengthDelimitedBuilder::new()
///     .length_field_type::<u16>()
///     .little_endian()
///     .max_frame_length(1 << 20) // clipped to what a u16 can say
///     .new_codec(&pool)?;
/// assert_eq!(codec.max_frame_length(), 65_535);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LengthDelimitedBuilder {
    pub(super) max_frame_len: usize,
    pub(super) length_field_len: usize,
    pub(super) length_field_offset: usize,
    pub(super) length_adjustment: isize,
    pub(super) num_skip: Option<usize>,
    pub(super) big_endian: bool,
}

impl Default for LengthDelimitedBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl LengthDelimitedBuilder {
    /// tokio-util's defaults: `u32` big-endian length at offset 0, no
    /// adjustment, skip the header, at most 8 MiB per frame.
    ///
    /// ```
    /// let b = pool_tokio::LengthDelimitedBuilder::new();
    /// assert_eq!(b.new_codec(&pool_tokio::BytesPool::new())?.max_frame_length(), 8 << 20);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new() -> Self {
        LengthDelimitedBuilder {
            max_frame_len: DEFAULT_MAX_FRAME_LENGTH,
            length_field_len: 4,
            length_field_offset: 0,
            length_adjustment: 0,
            num_skip: None,
            big_endian: true,
        }
    }

    /// The length field is big-endian (the default).
    ///
    /// ```
    /// let _ = pool_tokio::LengthDelimitedBuilder::new().big_endian();
    /// ```
    pub fn big_endian(&mut self) -> &mut Self {
        self.big_endian = true;
        self
    }

    /// The length field is little-endian.
    ///
    /// ```
    /// let _ = pool_tokio::LengthDelimitedBuilder::new().little_endian();
    /// ```
    pub fn little_endian(&mut self) -> &mut Self {
        self.big_endian = false;
        self
    }

    /// The length field is in this machine's byte order.
    ///
    /// ```
    /// let _ = pool_tokio::LengthDelimitedBuilder::new().native_endian();
    /// ```
    pub fn native_endian(&mut self) -> &mut Self {
        self.big_endian = cfg!(target_endian = "big");
        self
    }

    /// The largest frame accepted, default 8 MiB; clipped to the largest
    /// frame the length field can describe (its largest value plus
    /// `length_adjustment`). Encoding and decoding check the same quantity,
    /// the frame's length: the body's length when encoding, the length
    /// field's value plus `length_adjustment` when decoding. So every frame
    /// the encoder accepts decodes, with any layout.
    ///
    /// tokio-util checks the raw field value when decoding instead. This
    /// codec still reads every stream tokio-util's encoder writes within
    /// the limit (its encoder checks the body, as this one does); it
    /// differs only on a header that no encoder with the same settings
    /// writes: with a positive adjustment, a field within the limit whose
    /// frame is over it is refused here; with a negative one, a field over
    /// the limit whose frame is within it is read here.
    ///
    /// ```
    /// use tokio_util::codec::{Decoder, Encoder};
    /// let pool = pool_tokio::BytesPool::new();
    /// // A one-byte length that counts itself: frames up to 254 bytes.
    /// let mut codec = pool_tokio::LengthDelimitedBuilder::new()
    ///     .length_field_type::<u8>()
    ///     .length_adjustment(-1)
    ///     .new_codec(&pool)?;
    /// assert_eq!(codec.max_frame_length(), 254);
    /// let mut wire = bytes::BytesMut::new();
    /// codec.encode(&[7u8; 254][..], &mut wire)?;
    /// assert_eq!(wire[0], 255); // the field: 254 bytes of body, plus itself
    /// assert_eq!(codec.decode(&mut wire)?.unwrap().len(), 254);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// ```
    /// let _ = pool_tokio::LengthDelimitedBuilder::new().max_frame_length(1 << 20);
    /// ```
    pub fn max_frame_length(&mut self, val: usize) -> &mut Self {
        self.max_frame_len = val;
        self
    }

    /// The length field's width as a type (`u8` ..= `u64`). Default `u32`.
    ///
    /// ```
    /// let _ = pool_tokio::LengthDelimitedBuilder::new().length_field_type::<u64>();
    /// ```
    pub fn length_field_type<T: LengthFieldType>(&mut self) -> &mut Self {
        self.length_field_len = std::mem::size_of::<T>();
        self
    }

    /// The length field's width in bytes, 1 to 8 (checked by
    /// [`new_codec`](Self::new_codec)). Default 4.
    ///
    /// ```
    /// let _ = pool_tokio::LengthDelimitedBuilder::new().length_field_length(3);
    /// ```
    pub fn length_field_length(&mut self, val: usize) -> &mut Self {
        self.length_field_len = val;
        self
    }

    /// Bytes before the length field in the header. Default 0.
    ///
    /// ```
    /// let _ = pool_tokio::LengthDelimitedBuilder::new().length_field_offset(2);
    /// ```
    pub fn length_field_offset(&mut self, val: usize) -> &mut Self {
        self.length_field_offset = val;
        self
    }

    /// Added to the length field's value to get the frame length (negative
    /// when the field counts header bytes). Default 0.
    ///
    /// ```
    /// let _ = pool_tokio::LengthDelimitedBuilder::new().length_adjustment(-2);
    /// ```
    pub fn length_adjustment(&mut self, val: isize) -> &mut Self {
        self.length_adjustment = val;
        self
    }

    /// Header bytes skipped before the frame starts; 0 keeps the whole
    /// header in the frame. Default: offset plus field length.
    ///
    /// ```
    /// let _ = pool_tokio::LengthDelimitedBuilder::new().num_skip(0);
    /// ```
    pub fn num_skip(&mut self, val: usize) -> &mut Self {
        self.num_skip = Some(val);
        self
    }

    /// Builds a codec whose frames come from `pool`; fails, saying what to
    /// change, if the length field's width is not 1 to 8 bytes (tokio-util
    /// panics there).
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let err = pool_tokio::LengthDelimitedBuilder::new()
    ///     .length_field_length(9)
    ///     .new_codec(&pool)
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("from 1 to 8"), "{err}");
    /// ```
    pub fn new_codec(&self, pool: &BytesPool) -> io::Result<PooledLengthDelimitedCodec> {
        if !(1..=8).contains(&self.length_field_len) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "length_field_length = {}: expected from 1 to 8 bytes",
                    self.length_field_len
                ),
            ));
        }
        let mut config = *self;
        let max_field = match 1u64.checked_shl(8 * config.length_field_len as u32) {
            Some(shl) => shl - 1,
            None => u64::MAX,
        };
        let allowed = max_field.saturating_add_signed(config.length_adjustment as i64);
        let allowed = usize::try_from(allowed).unwrap_or(usize::MAX);
        config.max_frame_len = config.max_frame_len.min(allowed);
        Ok(PooledLengthDelimitedCodec {
            config,
            pool: pool.clone(),
            state: State::Head,
        })
    }

    pub(super) fn num_head_bytes(&self) -> usize {
        (self.length_field_offset + self.length_field_len).max(self.num_skip.unwrap_or(0))
    }

    pub(super) fn get_num_skip(&self) -> usize {
        self.num_skip
            .unwrap_or(self.length_field_offset + self.length_field_len)
    }

    /// [`new_codec`](LengthDelimitedBuilder::new_codec) in a pooled
    /// `Framed` over `io` ([`BytesPool::framed`]), as tokio-util's
    /// `new_framed`; fails as `new_codec` does.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use futures_util::{SinkExt, StreamExt};
    /// let pool = pool_tokio::BytesPool::new();
    /// let (a, b) = tokio::io::duplex(1024);
    /// let builder = pool_tokio::LengthDelimitedBuilder::new();
    /// let mut left = builder.new_framed(&pool, a)?;
    /// let mut right = builder.new_framed(&pool, b)?;
    /// left.send(bytes::Bytes::from_static(b"hi")).await?;
    /// assert_eq!(right.next().await.unwrap()?, &b"hi"[..]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn new_framed<T>(
        &self,
        pool: &BytesPool,
        io: T,
    ) -> io::Result<crate::codec::PooledFramed<T, PooledLengthDelimitedCodec>> {
        Ok(pool.framed(io, self.new_codec(pool)?))
    }

    /// [`new_codec`](LengthDelimitedBuilder::new_codec) in a pooled
    /// `FramedRead` over `io` ([`BytesPool::framed_read`], a read buffer of
    /// [`DEFAULT_FRAME_BUFFER`](crate::codec::DEFAULT_FRAME_BUFFER)), as
    /// tokio-util's `new_read`; fails as `new_codec` does.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let read = pool_tokio::LengthDelimitedBuilder::new().new_read(&pool, tokio::io::empty())?;
    /// # drop(read);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new_read<T>(
        &self,
        pool: &BytesPool,
        io: T,
    ) -> io::Result<crate::codec::PooledFramedRead<T, PooledLengthDelimitedCodec>> {
        Ok(pool.framed_read(
            io,
            self.new_codec(pool)?,
            crate::codec::DEFAULT_FRAME_BUFFER,
        ))
    }

    /// [`new_codec`](LengthDelimitedBuilder::new_codec) in a pooled
    /// `FramedWrite` over `io` ([`BytesPool::framed_write`], a write buffer
    /// of [`DEFAULT_FRAME_BUFFER`](crate::codec::DEFAULT_FRAME_BUFFER)), as
    /// tokio-util's `new_write`; fails as `new_codec` does.
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new();
    /// let write = pool_tokio::LengthDelimitedBuilder::new().new_write(&pool, tokio::io::sink())?;
    /// # drop(write);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new_write<T>(
        &self,
        pool: &BytesPool,
        io: T,
    ) -> io::Result<crate::codec::PooledFramedWrite<T, PooledLengthDelimitedCodec>> {
        Ok(pool.framed_write(
            io,
            self.new_codec(pool)?,
            crate::codec::DEFAULT_FRAME_BUFFER,
        ))
    }
}
