//! No user code runs under a lock of the pool, the config mutex included:
//! a value whose `Drop` reads the pool's settings (`config()`), formats the
//! pool (`{:?}`) or uses it must not hang when the pool drops it inside
//! `reconfigure`, `trim`, `maintain` or `flush_thread`.
//!
//! Each scenario runs in a child process: there it runs on a thread, and the
//! child gives up after 10 s (`recv_timeout`) and exits with status 3,
//! leaving the hung thread behind; the parent kills a child that still runs
//! after 20 s. A regression is a failure, never a hang.

mod common;

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc;
use std::sync::LazyLock;
use std::thread;
use std::time::Duration;

use pool_core::{Buffer, BufferConfig, BufferPool, Pool, PoolConfig, Recycler};

use common::{is_child, run_child};

const NOTHING: u8 = 0;
const CONFIG: u8 = 1;
const DEBUG: u8 = 2;
/// `config()`, `{:?}`, `stats()` and a checkout and return of the same pool.
const EVERYTHING: u8 = 3;

/// What a value's `Drop` does with its pool.
static MODE: AtomicU8 = AtomicU8::new(NOTHING);

/// A value whose `Drop` reads `READERS`.
struct Reader;

impl Drop for Reader {
    fn drop(&mut self) {
        match MODE.load(Ordering::SeqCst) {
            CONFIG => {
                let _ = READERS.config();
            }
            DEBUG => {
                let _ = format!("{:?}", *READERS);
            }
            EVERYTHING => {
                let _ = READERS.config();
                let _ = format!("{:?}", *READERS);
                let _ = READERS.stats();
                drop(READERS.checkout());
            }
            _ => {}
        }
    }
}

type Readers = Pool<Reader, Recycler<fn() -> Reader, fn(&mut Reader)>>;

static READERS: LazyLock<Readers> = LazyLock::new(|| {
    Pool::with_recycler(Recycler::new(
        (|| Reader) as fn() -> Reader,
        (|_: &mut Reader| ()) as fn(&mut Reader),
    ))
});

/// A buffer whose `Drop` reads `BUFFERS`.
struct ReaderBuf(Vec<u8>);

impl Buffer for ReaderBuf {
    fn with_capacity(capacity: usize) -> Self {
        ReaderBuf(Vec::with_capacity(capacity))
    }
    fn capacity(&self) -> usize {
        self.0.capacity()
    }
    fn as_ptr(&self) -> *const u8 {
        self.0.as_ptr()
    }
    fn clear(&mut self) {
        self.0.clear();
    }
    fn reclaim(&mut self, class_size: usize) -> bool {
        self.0.clear();
        self.0.capacity() >= class_size
    }
    fn zero(&mut self) {}
}

impl Drop for ReaderBuf {
    fn drop(&mut self) {
        match MODE.load(Ordering::SeqCst) {
            CONFIG => {
                let _ = BUFFERS.config();
            }
            DEBUG => {
                let _ = format!("{:?}", *BUFFERS);
            }
            _ => {}
        }
    }
}

static BUFFERS: LazyLock<BufferPool<ReaderBuf>> = LazyLock::new(BufferPool::new);

/// In the child: runs `scenario` on a thread with `mode` set; prints
/// `RESULT finished`, or exits with status 3 after 10 s.
fn within_ten_seconds(mode: u8, scenario: fn()) {
    MODE.store(mode, Ordering::SeqCst);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        scenario();
        let _ = tx.send(());
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(()) => println!("RESULT finished"),
        Err(e) => {
            println!("RESULT hung ({e:?}) after 10 s");
            std::process::exit(3);
        }
    }
}

/// In the parent: the child scenario `name` finished in time.
fn expect_finished(name: &str) {
    let child = run_child(name, Duration::from_secs(20));
    child.assert_success();
    assert_eq!(child.line("RESULT"), Some("finished"), "{}", child.stdout);
}

/// Values in this thread's cache and in the depot, then a reconfigure that
/// drops them (smaller cache, no depot).
fn reconfigure_readers() {
    READERS.prewarm(64);
    let held: Vec<_> = (0..8).map(|_| READERS.checkout()).collect();
    drop(held);
    READERS
        .reconfigure(READERS.config().thread_capacity(2).depot_capacity(0))
        .unwrap();
}

fn reconfigure_buffers() {
    BUFFERS.prewarm_class(4096, 64);
    let held: Vec<_> = (0..8).map(|_| BUFFERS.checkout(4096)).collect();
    drop(held);
    BUFFERS
        .reconfigure(BufferConfig::new().thread_capacity(2).depot_capacity(0))
        .unwrap();
}

#[test]
fn pool_reconfigure_with_a_drop_that_reads_config_finishes() {
    const NAME: &str = "pool_reconfigure_with_a_drop_that_reads_config_finishes";
    if is_child(NAME) {
        return within_ten_seconds(CONFIG, reconfigure_readers);
    }
    expect_finished(NAME);
}

#[test]
fn pool_reconfigure_with_a_drop_that_formats_the_pool_finishes() {
    const NAME: &str = "pool_reconfigure_with_a_drop_that_formats_the_pool_finishes";
    if is_child(NAME) {
        return within_ten_seconds(DEBUG, reconfigure_readers);
    }
    expect_finished(NAME);
}

#[test]
fn buffer_pool_reconfigure_with_a_drop_that_reads_config_finishes() {
    const NAME: &str = "buffer_pool_reconfigure_with_a_drop_that_reads_config_finishes";
    if is_child(NAME) {
        return within_ten_seconds(CONFIG, reconfigure_buffers);
    }
    expect_finished(NAME);
}

#[test]
fn buffer_pool_reconfigure_with_a_drop_that_formats_the_pool_finishes() {
    const NAME: &str = "buffer_pool_reconfigure_with_a_drop_that_formats_the_pool_finishes";
    if is_child(NAME) {
        return within_ten_seconds(DEBUG, reconfigure_buffers);
    }
    expect_finished(NAME);
}

/// A `Drop` that reads, formats and uses the pool, run by every
/// maintenance operation that drops values.
#[test]
fn a_drop_that_uses_the_pool_during_trim_maintain_flush_and_reconfigure_finishes() {
    const NAME: &str =
        "a_drop_that_uses_the_pool_during_trim_maintain_flush_and_reconfigure_finishes";
    if is_child(NAME) {
        return within_ten_seconds(EVERYTHING, || {
            READERS.prewarm(64);
            let held: Vec<_> = (0..8).map(|_| READERS.checkout()).collect();
            drop(held);
            READERS.trim();
            let held: Vec<_> = (0..8).map(|_| READERS.checkout()).collect();
            drop(held);
            READERS.flush_thread();
            READERS
                .reconfigure(
                    PoolConfig::new()
                        .thread_capacity(2)
                        .depot_capacity(0)
                        .decay_interval(Duration::from_millis(1)),
                )
                .unwrap();
            let held: Vec<_> = (0..8).map(|_| READERS.checkout()).collect();
            drop(held);
            READERS.maintain();
            thread::sleep(Duration::from_millis(5));
            READERS.maintain();
            READERS.reconfigure(PoolConfig::new()).unwrap();
        });
    }
    expect_finished(NAME);
}
