//! A log pipeline: producer tasks fill pooled log entries (a timestamp and
//! a message buffer) and send them to consumer tasks on other worker
//! threads, which batch them into pooled byte buffers and write the batches
//! out. One million entries; every entry is returned by another task than
//! the one that took it, often on another worker thread.
//!
//! Run with `cargo run --release --example log_pipeline`.

use std::fmt::Write as _;
use std::sync::LazyLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use pool_core::{Pool, Pooled, Reset};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

#[global_allocator]
static ALLOC: examples::CountingAlloc = examples::CountingAlloc;

/// A log entry: a timestamp and a message buffer that keeps its capacity
/// from one use to the next.
#[derive(Debug, Default)]
struct LogEntry {
    timestamp_micros: u64,
    level: &'static str,
    message: String,
}

impl Reset for LogEntry {
    fn reset(&mut self) {
        self.timestamp_micros = 0;
        self.level = "";
        self.message.clear();
    }
    fn heap_bytes(&self) -> usize {
        self.message.capacity()
    }
}

static ENTRIES: LazyLock<Pool<LogEntry>> = LazyLock::new(Pool::new);

const ENTRIES_TOTAL: usize = 1_000_000;
const PRODUCERS: usize = 4;
const CONSUMERS: usize = 2;
/// Entries a consumer writes out at once.
const BATCH: usize = 256;
const LEVELS: [&str; 4] = ["DEBUG", "INFO", "WARN", "ERROR"];

type Entry = Pooled<'static, LogEntry>;

async fn producer(id: usize, consumers: Vec<mpsc::Sender<Entry>>) {
    let per_producer = ENTRIES_TOTAL / PRODUCERS;
    let detail = "x".repeat(1500);
    for i in 0..per_producer {
        let mut entry = ENTRIES.checkout();
        entry.timestamp_micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        entry.level = LEVELS[i % LEVELS.len()];
        write!(
            entry.message,
            "producer={id} seq={i} user={} path=/api/v1/items/{} status={}",
            i % 977,
            i % 131,
            [200, 201, 404, 500][i % 4]
        )
        .expect("writing to a String");
        if i & 63 == 0 {
            // Some entries carry a long payload.
            entry.message.push_str(" detail=");
            entry.message.push_str(&detail);
        }
        consumers[i % consumers.len()]
            .send(entry)
            .await
            .expect("consumer alive");
    }
}

async fn consumer(mut rx: mpsc::Receiver<Entry>) -> (usize, usize) {
    let mut out = tokio::io::sink();
    let (mut entries, mut bytes) = (0, 0);
    let mut batch = pool_tokio::checkout(64 << 10);
    let mut in_batch = 0;
    while let Some(entry) = rx.recv().await {
        writeln!(
            batch,
            "{} {:5} {}",
            entry.timestamp_micros, entry.level, entry.message
        )
        .expect("writing to a buffer");
        drop(entry); // back to the pool, on this thread
        entries += 1;
        in_batch += 1;
        if in_batch == BATCH {
            bytes += batch.len();
            out.write_all(&batch).await.expect("sink");
            // A fresh pooled buffer per batch; the old one goes back.
            batch = pool_tokio::checkout(64 << 10);
            in_batch = 0;
        }
    }
    bytes += batch.len();
    out.write_all(&batch).await.expect("sink");
    (entries, bytes)
}

fn main() {
    let buffers = pool_tokio::default_pool();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    buffers.install(&mut builder);
    let rt = builder.build().expect("runtime");
    let allocations = examples::allocations();
    let start = Instant::now();
    let (entries, bytes) = rt.block_on(async {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..CONSUMERS).map(|_| mpsc::channel(1024)).unzip();
        let consumers: Vec<_> = rxs
            .into_iter()
            .map(|rx| tokio::spawn(consumer(rx)))
            .collect();
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|id| tokio::spawn(producer(id, txs.clone())))
            .collect();
        drop(txs);
        for p in producers {
            p.await.expect("producer panicked");
        }
        let mut total = (0, 0);
        for c in consumers {
            let (e, b) = c.await.expect("consumer panicked");
            total = (total.0 + e, total.1 + b);
        }
        total
    });
    let elapsed = start.elapsed();
    let allocations = examples::allocations() - allocations;
    drop(rt);

    println!(
        "{entries} log entries ({} MiB written) from {PRODUCERS} producers to {CONSUMERS} consumers \
         in {elapsed:.2?}: {:.0} entries/s, {:.3} allocations per entry",
        bytes >> 20,
        entries as f64 / elapsed.as_secs_f64(),
        allocations as f64 / entries as f64
    );
    let stats = ENTRIES.stats();
    println!("\nlog entries:\n{stats}");
    println!("\nbatch buffers:\n{}", buffers.stats());
    assert_eq!(entries, ENTRIES_TOTAL);
    assert_eq!(stats.outstanding(), 0, "every entry came back");
    assert_eq!(
        buffers.stats().outstanding(),
        0,
        "every batch buffer came back"
    );
}
