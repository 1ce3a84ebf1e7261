//! The pooled `Framed`: setup that is cancelled loses no budget, the sink
//! of the pooled length-delimited codec queues frames by value and writes
//! them vectored (checked against tokio-util's `Framed` on the peer), and
//! the read side keeps every buffer it uses a pooled, charged checkout.

use futures_util::FutureExt;
use pool_tokio::BytesPool;
use tokio_util::codec::BytesCodec;

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
