//! `PooledBody`: an `http_body::Body` that sends one pooled buffer, with no
//! allocation of its own (feature `http-body`).

use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};

use crate::PooledBytes;

/// An [`http_body::Body`] (http-body 1.x) made of one [`PooledBytes`],
/// sent as a single data frame whose `Data` is the guard itself.
///
/// hyper writes the frame and drops it, and the buffer goes back to the
/// pool there, on whatever thread. Nothing is allocated on the way: no
/// `Bytes`, no `Bytes::from_owner` box (the one allocation
/// [`PooledBytes::freeze`] costs), no boxed body. A steady-state response
/// built in a pooled buffer thus allocates no more than a response with a
/// static body (`tests/http_body.rs` counts it).
///
/// The length is exact ([`Body::size_hint`]), so hyper sends a
/// `content-length` header rather than chunked encoding. `Full::new(buf)`
/// of `http_body_util` does the same job (a `PooledBytes` is a `Buf`); this
/// type spares the dependency and names the intent.
///
/// With feature `axum` it is also an axum response (`IntoResponse`, and
/// `From<PooledBody>` for `axum_core::body::Body`): its data is then frozen
/// into `Bytes`, which costs one small owner box per response.
///
/// ```
/// use http_body::Body;
///
/// let mut buf = pool_tokio::checkout(4096);
/// buf.extend_from_slice(b"hello");
/// let body = pool_tokio::PooledBody::new(buf);
/// assert_eq!(body.size_hint().exact(), Some(5));
/// let response = http::Response::new(body); // hand it to hyper
/// # drop(response);
/// ```
pub struct PooledBody {
    data: Option<PooledBytes>,
}

impl PooledBody {
    /// A body that sends `buf`'s bytes; an empty `buf` makes an empty body
    /// (the buffer is returned when the body drops).
    ///
    /// ```
    /// use http_body::Body;
    /// let body = pool_tokio::PooledBody::new(pool_tokio::checkout(16));
    /// assert!(body.is_end_stream());
    /// ```
    #[inline]
    pub fn new(buf: PooledBytes) -> Self {
        PooledBody {
            data: (!buf.is_empty()).then_some(buf),
        }
    }

    /// An empty body, holding no buffer.
    ///
    /// ```
    /// use http_body::Body;
    /// assert_eq!(pool_tokio::PooledBody::empty().size_hint().exact(), Some(0));
    /// ```
    #[inline]
    pub fn empty() -> Self {
        PooledBody { data: None }
    }

    /// The buffer back, if the body was not sent yet.
    ///
    /// ```
    /// let mut buf = pool_tokio::checkout(16);
    /// buf.extend_from_slice(b"x");
    /// let body = pool_tokio::PooledBody::new(buf);
    /// assert_eq!(body.into_inner().unwrap(), "x");
    /// ```
    pub fn into_inner(self) -> Option<PooledBytes> {
        self.data
    }
}

impl From<PooledBytes> for PooledBody {
    /// [`PooledBody::new`].
    ///
    /// ```
    /// let body: pool_tokio::PooledBody = pool_tokio::checkout(16).into();
    /// # drop(body);
    /// ```
    #[inline]
    fn from(buf: PooledBytes) -> Self {
        PooledBody::new(buf)
    }
}

impl Default for PooledBody {
    fn default() -> Self {
        PooledBody::empty()
    }
}

impl fmt::Debug for PooledBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledBody")
            .field("len", &self.data.as_ref().map_or(0, |b| b.len()))
            .finish()
    }
}

impl Body for PooledBody {
    type Data = PooledBytes;
    type Error = Infallible;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<PooledBytes>, Infallible>>> {
        // `PooledBody` is `Unpin`: every field is.
        Poll::Ready(self.get_mut().data.take().map(|buf| Ok(Frame::data(buf))))
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.data.is_none()
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.as_ref().map_or(0, |b| b.len() as u64))
    }
}

/// The body axum sends for a [`PooledBody`] (feature `axum`): the same
/// single frame, its data frozen into [`Bytes`](bytes::Bytes) when hyper
/// polls it, and the same exact length.
#[cfg(feature = "axum")]
struct FrozenBody(PooledBody);

#[cfg(feature = "axum")]
impl Body for FrozenBody {
    type Data = bytes::Bytes;
    type Error = Infallible;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<bytes::Bytes>, Infallible>>> {
        // `FrozenBody` is `Unpin`: its field is. `freeze` is no copy: the
        // `Bytes` owns the pooled buffer, which goes back to the pool when
        // the last clone of it drops (one small owner box, bytes' cost).
        Poll::Ready(
            self.get_mut()
                .0
                .data
                .take()
                .map(|buf| Ok(Frame::data(buf.freeze()))),
        )
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}

#[cfg(feature = "axum")]
impl From<PooledBody> for axum_core::body::Body {
    /// An axum [`Body`](axum_core::body::Body) that sends the pooled buffer
    /// as [`Bytes`](bytes::Bytes) with no copy (feature `axum`).
    ///
    /// axum's `Body` needs `Data = Bytes`, so the buffer is frozen
    /// ([`PooledBytes::freeze`]) when hyper polls the body: one small owner
    /// box, and the buffer goes back to the pool when hyper has written
    /// and dropped it. The exact length is kept, so hyper sends
    /// `content-length`. axum boxes every body (`Body::new`), a static
    /// one too; with that, a pooled response costs one allocation more
    /// than a static one (`tests/axum.rs` counts it).
    ///
    /// ```
    /// use http_body::Body as _;
    ///
    /// let mut buf = pool_tokio::checkout(4096);
    /// buf.extend_from_slice(b"hello");
    /// let body = axum_core::body::Body::from(pool_tokio::PooledBody::new(buf));
    /// assert_eq!(body.size_hint().exact(), Some(5));
    /// ```
    fn from(body: PooledBody) -> Self {
        axum_core::body::Body::new(FrozenBody(body))
    }
}

#[cfg(feature = "axum")]
impl axum_core::response::IntoResponse for PooledBody {
    /// A `200 OK` response with this body and no headers of its own (add a
    /// `content-type` with a tuple, as for any axum body); hyper adds
    /// `content-length` from the exact length (feature `axum`). The body
    /// is `Body::from(self)`, which says what it allocates: one small owner
    /// box more than a static body.
    ///
    /// ```
    /// use axum_core::response::{IntoResponse, Response};
    /// use http_body::Body as _;
    ///
    /// // An axum handler: `async fn hello() -> PooledBody` or, with a
    /// // content type, `-> impl IntoResponse`.
    /// async fn hello() -> impl IntoResponse {
    ///     let mut buf = pool_tokio::checkout(4096);
    ///     buf.extend_from_slice(b"hello");
    ///     ([("content-type", "text/plain")], pool_tokio::PooledBody::new(buf))
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let response: Response = hello().await.into_response();
    /// assert_eq!(response.status(), 200);
    /// assert_eq!(response.headers()["content-type"], "text/plain");
    /// assert_eq!(response.body().size_hint().exact(), Some(5));
    /// # });
    /// ```
    fn into_response(self) -> axum_core::response::Response {
        axum_core::response::Response::new(self.into())
    }
}
