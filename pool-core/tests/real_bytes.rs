//! Memory bounds hold in real bytes, measured by a counting global
//! allocator: the live heap bytes the pool holds (live bytes with every
//! guard and frame dropped, minus live bytes before the pool was built)
//! never exceed the configured bound plus the bookkeeping slack of
//! `common::slack`, and `stats().retained_bytes()` equals that figure
//! within the same slack.
//!
//! A returned `BytesMut` is kept only if it is exactly the allocation lent:
//! after the pool clears it and reclaims its class size it starts where it
//! started at checkout and has exactly its class's capacity. A buffer that
//! grew, or that shares its allocation with a live split-off part of
//! non-zero capacity, is dropped and counted. Patterns: grow and advance
//! (issue 9's reproduction), split and freeze with live frames, 1 MiB
//! buffers, many threads, thread churn; and a zero-capacity sibling, which
//! may keep an allocation alive but never sees it reused.
//!
//! Every live-byte test holds `common::one_at_a_time()`.

mod common;

use std::thread;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use pool_core::{BufferConfig, BufferPool, Returned};

use common::{is_child, live, mib, one_at_a_time, run_child, slack, CHILD_LIMIT};

/// A test whose body runs in a child process (this test binary re-run on
/// that one test), so that no other test of this binary allocates while it
/// measures the live heap.
macro_rules! measured_test {
    ($(#[doc = $doc:expr])* fn $name:ident() $body:block) => {
        $(#[doc = $doc])*
        #[test]
        fn $name() {
            const NAME: &str = stringify!($name);
            if is_child(NAME) {
                $body
                return;
            }
            let child = run_child(NAME, CHILD_LIMIT);
            print!("{}", child.stdout);
            child.assert_success();
        }
    };
}

/// Issue 9's pattern: check out 16 KiB, `reserve(1 MiB)`, fill, `advance`
/// until 20 KiB is left, drop.
fn grow_and_advance(pool: &BufferPool<BytesMut>) {
    let mut b = pool.checkout(16 << 10);
    b.reserve(1 << 20);
    let cap = b.capacity();
    b.put_bytes(0xA5, cap);
    b.advance(cap - (20 << 10));
    drop(b);
}

/// Checks the pool's figures against the allocator once everything the
/// test held is dropped; prints them. `threads`: threads that used the
/// pool (for the bookkeeping slack).
#[track_caller]
fn assert_real_bytes(
    what: &str,
    pool: &BufferPool<BytesMut>,
    base: i64,
    bound: i64,
    threads: usize,
) -> i64 {
    let s = pool.stats();
    let held = live() - base;
    let retained = s.retained_bytes() as i64;
    println!(
        "{what}: the pool holds {held} bytes ({:.2} MiB) against a bound of {:.2} MiB; \
         retained_bytes() {retained}, depot_bytes {}",
        mib(held),
        mib(bound),
        s.depot_bytes
    );
    assert!(
        held <= bound + slack(threads),
        "{what}: the pool holds {:.2} MiB, bound {:.2} MiB\n{s}",
        mib(held),
        mib(bound)
    );
    assert!(
        (held - retained).abs() <= slack(threads),
        "{what}: retained_bytes() says {retained}, the allocator {held}\n{s}"
    );
    assert!(
        s.depot_bytes as i64 <= retained,
        "{what}: depot_bytes above retained_bytes\n{s}"
    );
    held
}

/// Issue 9's reproduction: 512 buffers checked out at once, each grown and
/// advanced, then all dropped. After each drop, what the pool holds (live
/// bytes minus those of the buffers still out) stays within the bound, so a
/// pool that pins them fails at once.
fn grow_and_advance_512(config: BufferConfig, what: &str) {
    let _one = one_at_a_time();
    let base = live();
    let pool = config.build::<BytesMut>().unwrap();
    let bound = (config.get_depot_bytes() + config.thread_bytes_bound()) as i64;
    let mut out: Vec<_> = (0..512)
        .map(|_| {
            let mut b = pool.checkout(16 << 10);
            b.reserve(1 << 20);
            let cap = b.capacity();
            b.put_bytes(0xA5, cap);
            b.advance(cap - (20 << 10));
            (b, cap as i64)
        })
        .collect();
    let mut out_bytes: i64 = out.iter().map(|(_, cap)| cap).sum();
    let mut i = 0;
    while let Some((b, cap)) = out.pop() {
        drop(b);
        out_bytes -= cap;
        i += 1;
        let held = live() - base - out_bytes;
        assert!(
            held <= bound + slack(1),
            "{what}: after {i} grown-and-advanced buffers came back the pool holds {:.2} MiB, bound {:.2} MiB\n{}",
            mib(held),
            mib(bound),
            pool.stats()
        );
    }
    drop(out);
    assert_real_bytes(what, &pool, base, bound, 1);
    let s = pool.stats();
    assert_eq!(s.total().discarded.total(), 512, "every one dropped\n{s}");
    assert_eq!(s.retained_objects(), 0, "{s}");
    let again = pool.checkout(16 << 10);
    assert_eq!(again.capacity(), 16 << 10, "a 16 KiB checkout is 16 KiB");
}

measured_test! {
    fn grow_and_advance_512_times_within_the_default_bound() {
        grow_and_advance_512(BufferConfig::new(), "grow-and-advance x512, default bounds");
    }
}

measured_test! {
    fn grow_and_advance_512_times_within_a_1_mib_depot() {
        grow_and_advance_512(
            BufferConfig::new().depot_bytes(1 << 20),
            "grow-and-advance x512, depot_bytes 1 MiB",
        );
    }
}

measured_test! {
    /// `thread_bytes` in real bytes: with no depot, the pool holds only this
    /// thread's cache, which may hold at most `thread_bytes_bound()`. 64
    /// grown-and-advanced 16 KiB buffers come back at once.
    fn thread_bytes_bound_holds_in_real_bytes() {
        let _one = one_at_a_time();
        let base = live();
        let config = BufferConfig::new().thread_bytes(64 << 10).depot_capacity(0);
        let pool = config.build::<BytesMut>().unwrap();
        let bound = config.thread_bytes_bound() as i64;
        let out: Vec<_> = (0..64)
            .map(|_| {
                let mut b = pool.checkout(16 << 10);
                b.reserve(1 << 20);
                let cap = b.capacity();
                b.put_bytes(1, cap);
                b.advance(cap - (20 << 10));
                b
            })
            .collect();
        drop(out);
        assert_real_bytes("thread_bytes 64 KiB, no depot", &pool, base, bound, 1);
    }
}

measured_test! {
    /// `max_retained` in real bytes: with a largest class of 16 KiB (so
    /// `max_retained` 16 KiB), a buffer grown to 1 MiB and advanced to a
    /// 16 KiB view is a 1 MiB allocation, and is dropped.
    fn max_retained_holds_in_real_bytes() {
        let _one = one_at_a_time();
        let base = live();
        let config = BufferConfig::new().max_class(16 << 10);
        let pool = config.build::<BytesMut>().unwrap();
        let bound = (config.get_depot_bytes() + config.thread_bytes_bound()) as i64;
        let out: Vec<_> = (0..32)
            .map(|_| {
                let (mut b, ticket) = pool.take(16 << 10);
                b.reserve(1 << 20);
                let cap = b.capacity();
                b.put_bytes(1, cap);
                b.advance(cap - (16 << 10));
                (b, ticket)
            })
            .collect();
        for (b, ticket) in out {
            let verdict = pool.give_back(b, ticket);
            assert!(
                matches!(verdict, Returned::Discarded(_)),
                "kept a 1 MiB allocation under max_retained 16 KiB: {verdict:?}"
            );
        }
        let held = assert_real_bytes("max_retained 16 KiB", &pool, base, bound, 1);
        assert!(held <= slack(1), "{held} bytes held after dropping every buffer");
    }
}

/// Issue 9's third reproduction: a 4 KiB-class buffer grown to 8 KiB with
/// `split_to(4096).freeze()` alive is dropped, and no later checkout hands
/// out memory of that allocation.
#[test]
fn a_grown_buffer_with_a_live_frame_is_dropped_not_handed_out() {
    let pool = BufferPool::<BytesMut>::new();
    let (mut b, ticket) = pool.take(4096);
    b.put_bytes(7, 8192);
    let total = b.capacity();
    let frame = b.split_to(4096).freeze();
    let verdict = pool.give_back(b, ticket);
    assert!(
        matches!(verdict, Returned::Discarded(_)),
        "kept a grown buffer sharing its allocation with a live frame: {verdict:?}"
    );
    let start = frame.as_ptr() as usize;
    for _ in 0..4 {
        let mut again = pool.checkout(4096);
        let p = again.as_ptr() as usize;
        assert!(
            p + again.capacity() <= start || p >= start + total,
            "handed out {p:#x} inside the frame's allocation {start:#x}..+{total}"
        );
        again.put_bytes(9, 4096);
    }
    assert!(frame.iter().all(|&x| x == 7));
}

/// Whether `b`'s whole capacity lies clear of every frame's bytes.
#[track_caller]
fn assert_clear_of(b: &BytesMut, frames: &[Bytes]) {
    let (p, n) = (b.as_ptr() as usize, b.capacity());
    for f in frames {
        let (q, m) = (f.as_ptr() as usize, f.len());
        assert!(
            p + n <= q || q + m <= p,
            "checked out {p:#x}..+{n}, overlapping a live frame at {q:#x}..+{m}"
        );
    }
}

measured_test! {
    /// 256 buffers of the 16 KiB class checked out at once: every other one
    /// grows to 32 KiB and has its first 16 KiB split off and frozen, the
    /// others have a 100-byte frame split off; then all come back, with every
    /// frame alive. Every buffer is dropped (grown, or sharing its
    /// allocation); 256 checkouts made while the frames live overlap none of
    /// them; once the frames are gone the figures are real.
    fn split_and_freeze_with_live_frames() {
        let _one = one_at_a_time();
        let base = live();
        let config = BufferConfig::new().depot_bytes(1 << 20);
        let pool = config.build::<BytesMut>().unwrap();
        let bound = (config.get_depot_bytes() + config.thread_bytes_bound()) as i64;
        let mut out: Vec<_> = (0..256).map(|_| pool.checkout(16 << 10)).collect();
        let mut frames = Vec::with_capacity(256);
        for (i, b) in out.iter_mut().enumerate() {
            if i % 2 == 0 {
                b.put_bytes(i as u8, 32 << 10);
                frames.push(b.split_to(16 << 10).freeze());
            } else {
                b.put_bytes(i as u8, 100);
                frames.push(b.split_to(100).freeze());
            }
        }
        drop(out);
        let s = pool.stats();
        assert_eq!(s.total().discarded.total(), 256, "every one dropped\n{s}");
        let again: Vec<_> = (0..256)
            .map(|_| {
                let mut b = pool.checkout(16 << 10);
                assert_clear_of(&b, &frames);
                b.put_bytes(0xEE, 16 << 10);
                b
            })
            .collect();
        drop(again);
        for (i, f) in frames.iter().enumerate() {
            assert!(f.iter().all(|&x| x == i as u8), "frame {i} was overwritten");
        }
        drop(frames);
        assert_real_bytes("split-and-freeze x256", &pool, base, bound, 1);
    }
}

measured_test! {
    /// 1 MiB buffers (the largest class): frames dropped before the return
    /// (kept whole), frames alive at the return (dropped), growth past 1 MiB
    /// (dropped), and an advance without growth (reclaimed whole, kept).
    fn one_mib_buffers_with_frames() {
        let _one = one_at_a_time();
        let base = live();
        let config = BufferConfig::new().depot_bytes(8 << 20);
        let pool = config.build::<BytesMut>().unwrap();
        let bound = (config.get_depot_bytes() + config.thread_bytes_bound()) as i64;
        let mut frames = Vec::new();
        for i in 0..64usize {
            let mut b = pool.checkout(1 << 20);
            assert_eq!(b.capacity(), 1 << 20);
            assert_clear_of(&b, &frames);
            match i % 4 {
                0 => {
                    b.put_bytes(1, 1 << 20);
                    drop(b.split_to(256 << 10).freeze());
                }
                1 => {
                    b.put_bytes(i as u8, 1 << 20);
                    frames.push(b.split_to(256 << 10).freeze());
                }
                2 => b.put_bytes(2, (1 << 20) + 1),
                _ => {
                    b.put_bytes(3, 1 << 20);
                    b.advance(512 << 10);
                }
            }
            drop(b);
            let held = live() - base;
            let frame_bytes = frames.len() as i64 * (1 << 20);
            assert!(
                held - frame_bytes <= bound + slack(1),
                "after {} buffers the pool holds about {:.2} MiB, bound {:.2} MiB",
                i + 1,
                mib(held - frame_bytes),
                mib(bound)
            );
        }
        for (j, f) in frames.iter().enumerate() {
            let i = 4 * j + 1;
            assert!(f.iter().all(|&x| x == i as u8), "frame {j} was overwritten");
        }
        drop(frames);
        assert_real_bytes("1 MiB buffers x64", &pool, base, bound, 1);
        let s = pool.stats();
        assert_eq!(
            s.total().discarded.total(),
            32,
            "live frames and growth dropped, the rest kept\n{s}"
        );
    }
}

measured_test! {
    /// Four threads at once, each 64 rounds of grow-and-advance between
    /// ordinary 16 KiB and 4 KiB checkouts; then they exit.
    fn many_threads_within_bounds() {
        let _one = one_at_a_time();
        let base = live();
        const THREADS: usize = 4;
        let config = BufferConfig::new().depot_bytes(4 << 20);
        let pool = config.build::<BytesMut>().unwrap();
        let bound = (config.get_depot_bytes() + (THREADS + 1) * config.thread_bytes_bound()) as i64;
        // Each thread holds at most one grown buffer and two ordinary ones.
        let in_flight = THREADS as i64 * ((1 << 20) + (20 << 10));
        // Joined one by one: `join` waits for the thread's exit flush (its
        // thread-local destructors), which the end of a scope does not.
        thread::scope(|s| {
            let threads: Vec<_> = (0..THREADS).map(|_| {
                s.spawn(|| {
                    for i in 0..64 {
                        let a = pool.checkout(16 << 10);
                        let b = pool.checkout(4096);
                        grow_and_advance(&pool);
                        drop((a, b));
                        let held = live() - base;
                        assert!(
                            held <= bound + in_flight + slack(THREADS + 1),
                            "round {i}: {:.2} MiB live, bound {:.2} MiB",
                            mib(held),
                            mib(bound)
                        );
                    }
                })
            }).collect();
            for t in threads {
                t.join().unwrap();
            }
        });
        assert_real_bytes("4 threads", &pool, base, bound, THREADS + 1);
        pool.trim();
        assert_eq!(pool.stats().retained_bytes(), 0);
        let held = live() - base;
        assert!(held <= slack(THREADS + 1), "after trim the pool holds {held} bytes");
    }
}

measured_test! {
    /// 24 rounds of 4 threads that come and go, each doing grow-and-advance
    /// and ordinary checkouts: after each round, with every thread gone, the
    /// pool holds at most the depot's bound; after `trim()`, nothing.
    fn thread_churn_within_bounds() {
        let _one = one_at_a_time();
        let base = live();
        let config = BufferConfig::new().depot_bytes(4 << 20);
        let pool = config.build::<BytesMut>().unwrap();
        let bound = config.get_depot_bytes() as i64;
        for round in 0..24 {
            // Joined one by one: see `many_threads_within_bounds`.
            thread::scope(|s| {
                let threads: Vec<_> = (0..4).map(|t| {
                    let pool = &pool;
                    s.spawn(move || {
                        for _ in 0..4 {
                            grow_and_advance(pool);
                        }
                        let held: Vec<_> = (0..8)
                            .map(|j| pool.checkout(if (j + t) % 2 == 0 { 16 << 10 } else { 4096 }))
                            .collect();
                        drop(held);
                    })
                }).collect();
                for t in threads {
                    t.join().unwrap();
                }
            });
            let held = live() - base;
            assert!(
                held <= bound + slack(8),
                "after round {round} (every thread gone) the pool holds {:.2} MiB, bound {:.2} MiB\n{}",
                mib(held),
                mib(bound),
                pool.stats()
            );
        }
        assert_real_bytes("thread churn", &pool, base, bound, 8);
        pool.trim();
        let s = pool.stats();
        assert_eq!(s.retained_bytes(), 0, "{s}");
        assert_eq!(s.outstanding(), 0, "{s}");
        let held = live() - base;
        assert!(held <= slack(8), "after trim the pool holds {held} bytes");
    }
}

/// A zero-capacity sibling (`split_off(capacity)`, `split_to(0)`) may keep
/// the allocation of a kept buffer alive, but never sees it reused: its view
/// stays empty, `reserve` on it never returns memory a pooled checkout
/// hands out while that checkout lives, and writes through later checkouts
/// never show through it.
#[test]
fn a_zero_capacity_sibling_never_sees_reuse() {
    for split_off in [true, false] {
        let pool = BufferPool::<BytesMut>::new();
        let mut g = pool.checkout(4096);
        let mut sibling = if split_off {
            let cap = g.capacity();
            g.split_off(cap)
        } else {
            g.split_to(0)
        };
        assert_eq!(sibling.capacity(), 0);
        drop(g);
        let mut a = pool.checkout(4096);
        a.put_bytes(0xAB, 4096);
        assert!(sibling.is_empty() && sibling.capacity() == 0);
        sibling.reserve(100);
        let (p, n) = (a.as_ptr() as usize, a.capacity());
        let (q, m) = (sibling.as_ptr() as usize, sibling.capacity());
        assert!(
            q + m <= p || p + n <= q,
            "reserve on the sibling returned {q:#x}..+{m}, inside the pooled buffer {p:#x}..+{n}"
        );
        sibling.put_slice(b"sibling");
        assert!(a.iter().all(|&x| x == 0xAB), "the pooled buffer changed");
        drop(a);
        for _ in 0..8 {
            let mut c = pool.checkout(4096);
            let (p, n) = (c.as_ptr() as usize, c.capacity());
            let (q, m) = (sibling.as_ptr() as usize, sibling.capacity());
            assert!(
                q + m <= p || p + n <= q,
                "checked out {p:#x}..+{n}, overlapping the sibling's memory {q:#x}..+{m}"
            );
            c.put_bytes(0xCD, 4096);
        }
        assert_eq!(&sibling[..], b"sibling");
    }
}
