//! Decoding: reading a header (with the frame bound checked), filling a
//! frame of its own pooled class, the `Decoder` impl, and lending a large
//! body in progress to the pooled framed value to read straight into it.

use std::io;

use bytes::{Buf, BytesMut};
use tokio_util::codec::Decoder;

use super::{budget_error, PooledLengthDelimitedCodec, State, Step, DIRECT_READ};
use crate::pool::PooledBytes;

impl PooledLengthDelimitedCodec {
    /// Reads a header from `src` if one is complete: the frame length.
    fn decode_head(&self, src: &mut BytesMut) -> io::Result<Option<usize>> {
        let c = &self.config;
        if src.len() < c.num_head_bytes() {
            return Ok(None);
        }
        let mut field = &src[c.length_field_offset..c.length_field_offset + c.length_field_len];
        let n = if c.big_endian {
            field.get_uint(c.length_field_len)
        } else {
            field.get_uint_le(c.length_field_len)
        };
        // The frame length, checked against `max_frame_len` as the encoder
        // checks the body it writes: the same quantity both ways, so every
        // frame the encoder accepts decodes (tokio-util checks the raw field
        // here, and refuses its own frames when the adjustment is negative).
        let Some(len) = u64::try_from(i128::from(n) + c.length_adjustment as i128).ok() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "provided length would overflow after adjustment",
            ));
        };
        if len > c.max_frame_len as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "frame size too big: the header says {len} bytes (length field {n}, \
                     length_adjustment {}), over max_frame_length ({}); raise \
                     `max_frame_length` on the decoding side, or check that both ends use the \
                     same header layout",
                    c.length_adjustment, c.max_frame_len
                ),
            ));
        }
        // Checked against max_frame_len (a usize) above.
        let n = len as usize;
        if n > isize::MAX as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "frame size too big: {n} bytes cannot be allocated; lower `max_frame_length`"
                ),
            ));
        }
        let skip = c.get_num_skip();
        if skip == 0 && n == 0 {
            // The header stays in the stream and the frame takes none of
            // it: the same header would give an empty frame forever (as
            // tokio-util's codec does). Refuse it.
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "an empty frame with num_skip(0) consumes nothing, so its header would repeat \
                 forever; with num_skip(0) the length (after length_adjustment) must cover the \
                 header: raise length_adjustment, or skip the header with num_skip",
            ));
        }
        src.advance(skip);
        Ok(Some(n))
    }

    /// Moves body bytes from `src` into the frame; the frame when complete.
    #[inline]
    fn fill(&mut self, src: &mut BytesMut) -> Option<PooledBytes> {
        let State::Body { frame, len } = &mut self.state else {
            return None;
        };
        let take = (*len - frame.len()).min(src.len());
        if take > 0 {
            frame.extend_from_slice(&src[..take]);
            src.advance(take);
        }
        if frame.len() < *len {
            return None;
        }
        match std::mem::replace(&mut self.state, State::Head) {
            State::Body { frame, .. } => Some(frame),
            _ => unreachable!("matched above"),
        }
    }

    /// One decoding step. `wait` says whether the caller can wait for the
    /// budget (a [`FrameReader`](super::FrameReader)); if not, a frame the budget cannot cover
    /// is an overdraft.
    pub(super) fn step(&mut self, src: &mut BytesMut, wait: bool) -> io::Result<Step> {
        loop {
            match self.state {
                State::Lent(len) => self.state = State::Sized(len),
                State::Head => match self.decode_head(src)? {
                    Some(len) => self.state = State::Sized(len),
                    None => return Ok(Step::More),
                },
                State::Sized(len) => {
                    let frame = if wait {
                        let charge = self.pool.budget_charge_for(len).map_err(budget_error)?;
                        if !self.pool.try_take_budget(charge) {
                            return Ok(Step::Budget(len));
                        }
                        self.pool.serve(len, charge)
                    } else {
                        self.pool.checkout(len)
                    };
                    self.state = State::Body { frame, len };
                }
                State::Body { .. } => {
                    return Ok(match self.fill(src) {
                        Some(frame) => Step::Frame(frame),
                        None => Step::More,
                    })
                }
            }
        }
    }

    /// `src` is drained into a frame that lacks at least `DIRECT_READ`
    /// bytes: lend the frame to the pooled framed value decoding from
    /// `src`, if one is, to read the rest straight into it.
    #[inline]
    fn lend_body(&mut self, src: &BytesMut) {
        match &self.state {
            State::Body { frame, len } if src.is_empty() && *len - frame.len() >= DIRECT_READ => {}
            _ => return,
        }
        let State::Body { frame, len } = std::mem::replace(&mut self.state, State::Head) else {
            unreachable!("matched above")
        };
        self.state = State::Lent(len);
        if let Err(crate::codec::Direct { frame, len }) =
            crate::codec::lend_direct(self, src, crate::codec::Direct { frame, len })
        {
            self.state = State::Body { frame, len };
        }
    }
}

impl Decoder for PooledLengthDelimitedCodec {
    type Item = PooledBytes;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<PooledBytes>> {
        // A body a pooled framed value read into since the last call.
        if let Some(crate::codec::Direct { frame, len }) = crate::codec::take_direct(self, src) {
            self.state = State::Body { frame, len };
        }
        match self.step(src, false)? {
            Step::Frame(frame) => Ok(Some(frame)),
            Step::More => {
                self.lend_body(src);
                Ok(None)
            }
            Step::Budget(_) => unreachable!("a sync step never waits"),
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> io::Result<Option<PooledBytes>> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() && matches!(self.state, State::Head) => Ok(None),
            // tokio-util's error for a stream that ends inside a frame.
            None => Err(io::Error::other("bytes remaining on stream")),
        }
    }
}
