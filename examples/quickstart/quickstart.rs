//! Quickstart: size-classed buffers checked out on producer threads,
//! returned on consumer threads, then the pool's statistics.
//!
//! Run with `cargo run --release --example quickstart`.

use std::sync::mpsc;
use std::sync::LazyLock;
use std::thread;
use std::time::Instant;

use pool_core::{BufferPool, OwnedPooledBuf, Pool, PooledBuf};

static BUFFERS: LazyLock<BufferPool<Vec<u8>>> = LazyLock::new(BufferPool::new);
static LINES: LazyLock<Pool<String>> = LazyLock::new(Pool::new);

const PRODUCERS: usize = 2;
const CONSUMERS: usize = 2;
const MESSAGES: usize = 200_000;

fn main() {
    let start = Instant::now();
    // Producers fill pooled buffers; consumers read and drop them, so every
    // return happens on another thread than the checkout.
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..CONSUMERS)
        .map(|_| mpsc::sync_channel::<PooledBuf<'static, Vec<u8>>>(256))
        .unzip();
    let consumers: Vec<_> = receivers
        .into_iter()
        .map(|rx| {
            thread::spawn(move || {
                let mut bytes = 0usize;
                for buf in rx {
                    let mut line = LINES.checkout();
                    line.push_str("got ");
                    line.push_str(&buf.len().to_string());
                    bytes += buf.len() + line.len();
                }
                bytes
            })
        })
        .collect();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let senders = senders.clone();
            thread::spawn(move || {
                for i in 0..MESSAGES / PRODUCERS {
                    let size = [200, 1500, 4000, 16_000][i % 4];
                    let mut buf = BUFFERS.checkout(size);
                    buf.resize(size, p as u8);
                    senders[i % CONSUMERS].send(buf).unwrap();
                }
            })
        })
        .collect();
    drop(senders);
    for p in producers {
        p.join().unwrap();
    }
    let bytes: usize = consumers.into_iter().map(|c| c.join().unwrap()).sum();
    let elapsed = start.elapsed();

    // An owned guard works with a pool that is not in a static.
    let local_pool = std::sync::Arc::new(BufferPool::<Vec<u8>>::new());
    let owned: OwnedPooledBuf<Vec<u8>> = local_pool.checkout_owned(64);
    thread::spawn(move || drop(owned)).join().unwrap();

    println!(
        "{MESSAGES} messages, {} MiB, {PRODUCERS} producer and {CONSUMERS} consumer threads, {:.0?}",
        bytes >> 20,
        elapsed
    );
    println!("\nbyte buffers:\n{}", BUFFERS.stats());
    println!("\nstrings:\n{}", LINES.stats());
    let stats = BUFFERS.stats();
    assert_eq!(stats.outstanding(), 0, "every buffer came back");
}
