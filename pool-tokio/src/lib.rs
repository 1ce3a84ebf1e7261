//! Pooled `BytesMut` for tokio services (work in progress).
