//! Many threads check out, hand guards to other threads, and return them
//! there. No buffer may ever be held by two holders at once, and the books
//! must balance when everyone is done.

use std::collections::HashSet;
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use pool_core::{BufferConfig, BufferPool, OwnedPooledBuf, PoolConfig, Recycler};

const THREADS: usize = 4;
const ROUNDS: usize = if cfg!(miri) { 20 } else { 20_000 };

/// Addresses currently checked out. Inserting an address that is already
/// present means two holders share one buffer.
struct Holders(Mutex<HashSet<usize>>);

impl Holders {
    fn acquire(&self, addr: usize) {
        assert!(
            self.0.lock().unwrap().insert(addr),
            "buffer {addr:#x} handed to two holders at once"
        );
    }
    fn release(&self, addr: usize) {
        assert!(
            self.0.lock().unwrap().remove(&addr),
            "released a buffer not held"
        );
    }
}

#[test]
fn cross_thread_buffers_are_never_shared_and_books_balance() {
    // Small caches and batches so that the depot is exercised constantly.
    let pool = Arc::new(
        BufferConfig::new()
            .min_class(64)
            .max_class(4096)
            .thread_capacity(8)
            .batch(4)
            .depot_capacity(64)
            .build::<Vec<u8>>()
            .unwrap(),
    );
    let holders = Arc::new(Holders(Mutex::new(HashSet::new())));
    let barrier = Arc::new(Barrier::new(THREADS));
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..THREADS)
        .map(|_| mpsc::channel::<OwnedPooledBuf<Vec<u8>>>())
        .unzip();
    let workers: Vec<_> = rxs
        .into_iter()
        .enumerate()
        .map(|(me, rx)| {
            let (pool, holders, barrier, txs) =
                (pool.clone(), holders.clone(), barrier.clone(), txs.clone());
            thread::spawn(move || {
                barrier.wait();
                let mut sent = 0;
                for i in 0..ROUNDS {
                    let size = [1, 64, 100, 1000, 4096, 5000][i % 6];
                    let mut buf = pool.checkout_owned(size);
                    assert!(buf.is_empty(), "a checked-out buffer has stale contents");
                    assert!(buf.capacity() >= size);
                    if buf.is_pooled() {
                        holders.acquire(buf.as_ptr() as usize);
                    }
                    buf.extend_from_slice(&(me as u32).to_le_bytes());
                    // Half the buffers go to another thread, half stay.
                    if i % 2 == 0 {
                        txs[(me + 1 + i) % THREADS].send(buf).unwrap();
                        sent += 1;
                    } else {
                        if buf.is_pooled() {
                            holders.release(buf.as_ptr() as usize);
                        }
                        drop(buf);
                    }
                    while let Ok(buf) = rx.try_recv() {
                        if buf.is_pooled() {
                            holders.release(buf.as_ptr() as usize);
                        }
                        drop(buf); // a remote return
                    }
                }
                drop(txs);
                (rx, sent)
            })
        })
        .collect();
    drop(txs);
    let mut sent = 0;
    let leftovers: Vec<_> = workers
        .into_iter()
        .map(|w| {
            let (rx, s) = w.join().unwrap();
            sent += s;
            rx
        })
        .collect();
    for rx in leftovers {
        for buf in rx.try_iter() {
            if buf.is_pooled() {
                holders.release(buf.as_ptr() as usize);
            }
        }
    }
    assert!(sent > 0);
    let stats = pool.stats();
    let total = stats.total();
    assert_eq!(stats.checkouts(), (THREADS * ROUNDS) as u64);
    assert_eq!(
        total.checkouts,
        total.local_hits + total.depot_hits + total.misses
    );
    assert_eq!(stats.outstanding(), 0, "every buffer came back:\n{stats}");
    assert!(holders.0.lock().unwrap().is_empty());
    assert!(total.batches_pushed > 0, "{total:?}");
    // Under Miri the run is too short for a cache to run dry.
    assert!(cfg!(miri) || total.batches_taken > 0, "{total:?}");
    // Retained memory stays within the bounds: the depot holds at most 64
    // per class; each of the (exited) threads flushed its cache into it.
    for class in &stats.classes {
        assert!(class.retained_depot <= 64, "{class:?}");
    }
}

#[test]
fn generic_pool_survives_many_threads_returning_elsewhere() {
    let pool = Arc::new(
        PoolConfig::new()
            .thread_capacity(4)
            .batch(2)
            .depot_capacity(16)
            .build(Recycler::new(String::new, String::clear))
            .unwrap(),
    );
    let (tx, rx) = mpsc::channel::<pool_core::OwnedPooled<String, _>>();
    let consumer = thread::spawn(move || {
        let mut n = 0;
        for s in rx {
            assert!(s.starts_with("from "), "{s}");
            n += 1;
        }
        n
    });
    let producers: Vec<_> = (0..THREADS)
        .map(|p| {
            let (pool, tx) = (pool.clone(), tx.clone());
            thread::spawn(move || {
                for _ in 0..ROUNDS / 4 {
                    let mut s = pool.checkout_owned();
                    assert!(s.is_empty());
                    s.push_str("from ");
                    s.push_str(&p.to_string());
                    tx.send(s).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    for p in producers {
        p.join().unwrap();
    }
    assert_eq!(consumer.join().unwrap(), THREADS * (ROUNDS / 4));
    let stats = pool.stats();
    assert_eq!(stats.outstanding(), 0);
    // Producers never see a local return: every hit after the first fill
    // comes through batches the consumer pushed to the depot.
    assert!(stats.total().depot_hits > 0, "{stats}");
    assert!(stats.retained_objects() <= 16 + 4, "{stats}");
}

#[test]
fn borrowed_guards_of_a_static_pool_cross_threads() {
    static POOL: std::sync::LazyLock<BufferPool<Vec<u8>>> =
        std::sync::LazyLock::new(BufferPool::new);
    let guards: Vec<_> = (0..100).map(|_| POOL.checkout(1000)).collect();
    thread::spawn(move || drop(guards)).join().unwrap();
    assert_eq!(POOL.stats().outstanding(), 0);
    assert_eq!(POOL.stats().class(1024).unwrap().returns, 100);
}
