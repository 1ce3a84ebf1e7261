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

/// Request sizes, by round. Threads send the even rounds' buffers to a
/// thread of the other parity (`(me + 1 + i) % THREADS` with `i` even and
/// `THREADS` even), so one size per parity flows one way only: class 112
/// is checked out only on even threads and returned only on odd ones (or
/// on the main thread), class 2048 the other way round.
const EVEN_SIZES: [usize; 6] = [1, 64, 100, 1000, 4096, 5000];
const ODD_SIZES: [usize; 6] = [1, 64, 2000, 1000, 4096, 5000];
const _: () = assert!(THREADS % 2 == 0, "the one-way classes need an even ring");

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
                let sizes = if me % 2 == 0 { EVEN_SIZES } else { ODD_SIZES };
                let receive = |rx: &mpsc::Receiver<OwnedPooledBuf<Vec<u8>>>| {
                    while let Ok(buf) = rx.try_recv() {
                        if buf.is_pooled() {
                            holders.release(buf.as_ptr() as usize);
                        }
                        drop(buf); // a remote return
                    }
                };
                barrier.wait();
                let mut sent = 0;
                for i in 0..ROUNDS {
                    if i == ROUNDS / 2 {
                        // Halfway, one handshake: every buffer sent so far
                        // is returned before anyone checks out again, so
                        // the one-way classes' returns (which overflow the
                        // receivers' caches into the depot) happen-before
                        // the second half's checkouts on the other side.
                        barrier.wait(); // every first-half send is done
                        receive(&rx);
                        barrier.wait(); // every first-half return is done
                    }
                    let size = sizes[i % 6];
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
                    receive(&rx);
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
    // The depot is exercised whatever the schedule (under Miri the run is
    // too short to fill a cache). In each one-way class the first half's
    // returns (hundreds per receiver) all land, before the second
    // handshake, on threads that never check that class out, so their
    // caches (8) overflow: pushes are certain. The first push into an
    // empty depot is accepted, and only a take removes it (nothing here
    // trims or decays), so at the handshake either a take has happened or
    // the depot holds a batch; in the second half each sender's cache of
    // that class (at most 8, never refilled locally) runs dry within 9
    // checkouts, and it takes from the depot before it allocates.
    for (size, dir) in [(112, "even -> odd"), (2048, "odd -> even")] {
        let class = stats.class(size).unwrap();
        assert!(
            cfg!(miri) || class.batches_pushed > 0,
            "class {size} ({dir}): {class:?}"
        );
        assert!(
            cfg!(miri) || class.batches_taken > 0,
            "class {size} ({dir}): {class:?}"
        );
    }
    assert!(total.batches_pushed > 0, "{total:?}");
    // Retained memory stays within the bounds: the depot holds at most 64
    // per class; each of the (exited) threads flushed its cache into it.
    for class in &stats.classes {
        assert!(class.retained_depot <= 64, "{class:?}");
    }
}

/// Values each producer checks out (and sends) per round: more than a
/// thread cache holds (4), so each round runs every producer's cache dry.
const PER_ROUND: usize = 8;
/// Rounds: `ROUNDS / 4` values per producer in all (two rounds under Miri).
const HANDSHAKES: usize = if cfg!(miri) {
    2
} else {
    ROUNDS / 4 / PER_ROUND
};

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
    // Producers check out and send; only the consumer returns. Each round
    // has two handshakes: `sent` (every checkout and send of the round is
    // done) before the consumer receives and drops anything, and
    // `returned` (the consumer has dropped all of them) before any
    // producer checks out again. So a round's returns happen-before the
    // next round's checkouts, whatever the schedule.
    let sent = Arc::new(Barrier::new(THREADS + 1));
    let returned = Arc::new(Barrier::new(THREADS + 1));
    let (tx, rx) = mpsc::channel::<pool_core::OwnedPooled<String, _>>();
    let consumer = {
        let (sent, returned) = (sent.clone(), returned.clone());
        thread::spawn(move || {
            let mut n = 0;
            for _ in 0..HANDSHAKES {
                sent.wait();
                for _ in 0..THREADS * PER_ROUND {
                    let s = rx.recv().unwrap();
                    assert!(s.starts_with("from "), "{s}");
                    n += 1;
                }
                returned.wait();
            }
            assert!(rx.recv().is_err(), "a producer sent more than it should");
            n
        })
    };
    let producers: Vec<_> = (0..THREADS)
        .map(|p| {
            let (pool, tx) = (pool.clone(), tx.clone());
            let (sent, returned) = (sent.clone(), returned.clone());
            thread::spawn(move || {
                for _ in 0..HANDSHAKES {
                    for _ in 0..PER_ROUND {
                        let mut s = pool.checkout_owned();
                        assert!(s.is_empty());
                        s.push_str("from ");
                        s.push_str(&p.to_string());
                        tx.send(s).unwrap();
                    }
                    sent.wait();
                    returned.wait();
                }
            })
        })
        .collect();
    drop(tx);
    for p in producers {
        p.join().unwrap();
    }
    assert_eq!(consumer.join().unwrap(), THREADS * PER_ROUND * HANDSHAKES);
    let stats = pool.stats();
    let total = stats.total();
    assert_eq!(stats.outstanding(), 0);
    // Producers never see a local return: every hit comes through batches
    // the consumer pushed. Each round the consumer alone returns 32 values
    // into a cache of 4, so it pushes, and the depot holds at least one
    // batch when the round ends (the first push into an empty depot is
    // accepted; nothing takes while the consumer returns). In the next
    // round each producer's cache (at most 4) runs dry within its 8
    // checkouts, and the first to run dry takes a batch before it
    // allocates: at least one depot hit per round after the first.
    assert!(
        total.depot_hits >= (HANDSHAKES - 1) as u64,
        "{HANDSHAKES} rounds:\n{stats}"
    );
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
