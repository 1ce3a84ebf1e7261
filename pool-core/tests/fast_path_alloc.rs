//! No allocation on the fast path, counted by a global allocator on the
//! threads that do the pool operations only:
//!
//! - returns into a fresh thread cache (the pool built, the thread has done
//!   one checkout and return) allocate nothing: the cache's storage is
//!   reserved up front or on a slow path, not grown by returns;
//! - a steady producer-to-consumer flow over a channel allocates nothing
//!   per message after warm-up, batch vessels included (at most a bounded
//!   number of high-water allocations, whatever the scheduling).

mod common;

use std::sync::mpsc;
use std::thread;

use pool_core::{BufferPool, Pool, PooledBuf};

use common::{allocations, allocations_on_this_thread, count_this_thread};

/// Returns into the 4 KiB class of a fresh cache, as many as it holds.
#[test]
fn returns_into_a_fresh_buffer_cache_allocate_nothing() {
    let pool = BufferPool::<Vec<u8>>::new();
    let cap = pool.config().class_thread_capacity(4096);
    assert!(cap > 1);
    thread::scope(|s| {
        s.spawn(|| {
            drop(pool.checkout(4096));
            let held: Vec<_> = (0..cap).map(|_| pool.checkout(4096)).collect();
            let mut held = held.into_iter();
            let n = allocations_on_this_thread(|| {
                for g in held.by_ref() {
                    drop(g);
                }
            });
            assert_eq!(n, 0, "allocations in {cap} returns into a fresh cache");
            assert_eq!(pool.stats().class(4096).unwrap().retained_local, cap as u64);
        });
    });
}

/// The same for a generic pool (its thread capacity is 64).
#[test]
fn returns_into_a_fresh_object_cache_allocate_nothing() {
    let pool: Pool<String> = Pool::new();
    thread::scope(|s| {
        s.spawn(|| {
            drop(pool.checkout());
            let held: Vec<_> = (0..64).map(|_| pool.checkout()).collect();
            let mut held = held.into_iter();
            let n = allocations_on_this_thread(|| {
                for g in held.by_ref() {
                    drop(g);
                }
            });
            assert_eq!(n, 0, "allocations in 64 returns into a fresh cache");
            assert_eq!(pool.stats().total().retained_local, 64);
        });
    });
}

const WINDOW: usize = 10_000;

/// A producer checks 4 KiB buffers out and sends them over a bounded
/// channel to a consumer that drops them: every return is remote, and
/// batches move both ways through the depot. After a warm-up of 10,000
/// messages, three windows of 10,000 are counted on both threads, around
/// the pool operations only (the checkout, and the drop that returns): the
/// channel itself allocates when a thread first blocks on it, which is the
/// test's doing, not the pool's.
#[test]
fn a_steady_producer_to_consumer_flow_allocates_nothing_per_message() {
    let pool: &'static BufferPool<Vec<u8>> = Box::leak(Box::new(BufferPool::new()));
    for in_flight in [64, 512] {
        let (tx, rx) = mpsc::sync_channel::<PooledBuf<'static, Vec<u8>>>(in_flight);
        // Marks which tell the consumer where a window starts and ends.
        let (mark_tx, mark_rx) = mpsc::sync_channel::<bool>(1);
        let (done_tx, done_rx) = mpsc::sync_channel::<()>(1);
        let consumer = thread::spawn(move || {
            while let Ok(on) = mark_rx.recv() {
                done_tx.send(()).unwrap();
                for _ in 0..WINDOW {
                    let b = rx.recv().unwrap();
                    count_this_thread(on);
                    drop(b);
                    count_this_thread(false);
                }
                done_tx.send(()).unwrap();
            }
        });
        let window = |counted: bool| -> u64 {
            mark_tx.send(counted).unwrap();
            done_rx.recv().unwrap();
            let before = allocations();
            for i in 0..WINDOW {
                count_this_thread(counted);
                let mut b = pool.checkout(4096);
                count_this_thread(false);
                b.push(i as u8);
                tx.send(b).unwrap();
            }
            done_rx.recv().unwrap();
            allocations() - before
        };
        // Warm-up. First, every buffer that can ever be in use at once: the
        // channel's, both thread caches and a batch in transit.
        // Without this the pool would still be reaching its high-water mark
        // (one miss per buffer, once) whenever scheduling lets one thread
        // run far ahead: allocations, but not per message.
        let cap = pool.config().class_thread_capacity(4096);
        pool.prewarm_class(4096, in_flight + 3 * cap);
        window(false);
        let counts: Vec<u64> = (0..3).map(|_| window(true)).collect();
        drop(mark_tx);
        consumer.join().unwrap();
        println!("{in_flight} in flight: allocations per {WINDOW} messages: {counts:?}");
        assert_eq!(
            counts,
            [0; 3],
            "{in_flight} in flight: allocations per {WINDOW} messages after warm-up\n{}",
            pool.stats()
        );
    }
    assert_eq!(pool.stats().outstanding(), 0);
}
