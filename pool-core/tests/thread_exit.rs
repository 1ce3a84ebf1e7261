//! Thread exit, in every destructor order and whatever the thread's first
//! pool operation was.
//!
//! A guard held in a user `thread_local!` is dropped while the thread tears
//! down its thread-locals, before or after the pool's own exit flush and
//! `thread_local`'s thread-id guard: the order is unspecified, and depends on
//! which was touched first. Both orders of first touch are tested.
//! Each such scenario runs in a child process (the test binary re-run on
//! one test), so that an abort ("thread local panicked on drop") is a
//! failed exit status here. The child prints its pool's figures after every
//! thread has exited and a second thread (which gets the first one's thread
//! id back) has used the pool, and after `trim()`; the parent checks them
//! exactly: nothing outstanding, nothing retained, and the allocator shows
//! the pool holding nothing, so no return landed in a dead thread's slot.
//!
//! The last tests check that the exit flush (and `flush_thread`) applies the
//! limits in force, not the ones the thread saw last.

mod common;

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, LazyLock};
use std::thread;

use pool_core::{BufferConfig, BufferPool, Pool, PoolConfig, Pooled, PooledBuf, Recycle};

use common::{is_child, run_child, slack, CHILD_LIMIT};

type Guard = PooledBuf<'static, Vec<u8>>;

static P: LazyLock<BufferPool<Vec<u8>>> = LazyLock::new(BufferPool::new);

std::thread_local! {
    static H: RefCell<Vec<Guard>> = const { RefCell::new(Vec::new()) };
}

/// The line a child prints: the figures of `P` once every thread that used
/// it has exited, a fresh thread has used it once, and `trim()` ran.
/// `threads`: most threads that used `P` at once (for the bookkeeping
/// slack).
fn buffer_report(base: i64, threads: usize) {
    // A second thread: with the first one gone it gets its thread id, and
    // with it whatever the first one left in its slot.
    thread::spawn(|| {
        drop(P.checkout(4096));
        drop(P.checkout(4096));
    })
    .join()
    .unwrap();
    P.trim();
    let s = P.stats();
    let held = common::live() - base;
    println!("HELD {held}");
    println!(
        "STATS outstanding={} retained_objects={} retained_bytes={} depot_bytes={} checkouts={} returns={} detached={} holds_nothing={}",
        s.outstanding(),
        s.retained_objects(),
        s.retained_bytes(),
        s.depot_bytes,
        s.checkouts(),
        s.total().returns + s.unpooled_returns,
        s.total().detached,
        held <= slack(threads),
    );
}

/// Runs `name` in a child; checks its exit status and its report.
fn expect_child(name: &str, stats: &str) {
    let child = run_child(name, CHILD_LIMIT);
    child.assert_success();
    assert_eq!(
        child.line("STATS"),
        Some(stats),
        "figures after every thread exited and trim() (HELD {:?})\n{}",
        child.line("HELD"),
        child.stdout
    );
}

/// The pool is touched before the thread-local: the pool's thread-locals
/// (the exit flush, `thread_local`'s id guard) register their destructors
/// before `H` does.
#[test]
fn guard_in_a_thread_local_touched_after_the_pool() {
    if is_child("guard_in_a_thread_local_touched_after_the_pool") {
        let base = common::live();
        thread::spawn(|| {
            drop(P.checkout(4096));
            H.with(|h| {
                h.borrow_mut().push(P.checkout(4096));
                h.borrow_mut().push(P.checkout(4 << 20));
            });
        })
        .join()
        .unwrap();
        buffer_report(base, 3);
        return;
    }
    expect_child(
        "guard_in_a_thread_local_touched_after_the_pool",
        "outstanding=0 retained_objects=0 retained_bytes=0 depot_bytes=0 checkouts=5 returns=5 detached=0 holds_nothing=true",
    );
}

/// The thread-local is touched before the pool: `H` registers its
/// destructor before the pool's thread-locals do.
#[test]
fn guard_in_a_thread_local_touched_before_the_pool() {
    if is_child("guard_in_a_thread_local_touched_before_the_pool") {
        let base = common::live();
        thread::spawn(|| {
            H.with(|h| {
                h.borrow_mut().push(P.checkout(4096));
                h.borrow_mut().push(P.checkout(4 << 20));
            });
            drop(P.checkout(512));
        })
        .join()
        .unwrap();
        buffer_report(base, 3);
        return;
    }
    expect_child(
        "guard_in_a_thread_local_touched_before_the_pool",
        "outstanding=0 retained_objects=0 retained_bytes=0 depot_bytes=0 checkouts=5 returns=5 detached=0 holds_nothing=true",
    );
}

/// The reproduction of issue 8: the thread's only operation is an unpooled
/// checkout, kept in a thread-local.
#[test]
fn unpooled_first_operation_with_the_guard_in_a_thread_local() {
    if is_child("unpooled_first_operation_with_the_guard_in_a_thread_local") {
        let base = common::live();
        thread::spawn(|| H.with(|h| h.borrow_mut().push(P.checkout(4 << 20))))
            .join()
            .unwrap();
        buffer_report(base, 3);
        return;
    }
    expect_child(
        "unpooled_first_operation_with_the_guard_in_a_thread_local",
        "outstanding=0 retained_objects=0 retained_bytes=0 depot_bytes=0 checkouts=3 returns=3 detached=0 holds_nothing=true",
    );
}

/// The thread's first operation is an unpooled checkout, then pooled ones,
/// all kept in a thread-local.
#[test]
fn unpooled_first_operation_then_pooled_guards_in_a_thread_local() {
    if is_child("unpooled_first_operation_then_pooled_guards_in_a_thread_local") {
        let base = common::live();
        thread::spawn(|| {
            H.with(|h| {
                h.borrow_mut().push(P.checkout(4 << 20));
                h.borrow_mut().push(P.checkout(4096));
                h.borrow_mut().push(P.checkout(4096));
            })
        })
        .join()
        .unwrap();
        buffer_report(base, 3);
        return;
    }
    expect_child(
        "unpooled_first_operation_then_pooled_guards_in_a_thread_local",
        "outstanding=0 retained_objects=0 retained_bytes=0 depot_bytes=0 checkouts=5 returns=5 detached=0 holds_nothing=true",
    );
}

/// The thread's first operation is a detach (of a guard checked out on
/// another thread), then an unpooled guard kept in a thread-local: no
/// operation of this thread goes through the pool's caches.
#[test]
fn detach_first_operation_with_a_guard_in_a_thread_local() {
    if is_child("detach_first_operation_with_a_guard_in_a_thread_local") {
        let base = common::live();
        let g = P.checkout(4096);
        thread::spawn(move || {
            H.with(|h| {
                let v: Vec<u8> = PooledBuf::detach(g);
                drop(v);
                h.borrow_mut().push(P.checkout(4 << 20));
            })
        })
        .join()
        .unwrap();
        buffer_report(base, 3);
        return;
    }
    expect_child(
        "detach_first_operation_with_a_guard_in_a_thread_local",
        "outstanding=0 retained_objects=0 retained_bytes=0 depot_bytes=0 checkouts=4 returns=3 detached=1 holds_nothing=true",
    );
}

/// The thread's first operation is a discarded return (a buffer that grew,
/// checked out on another thread), then an unpooled guard kept in a
/// thread-local: no operation of this thread goes through the caches.
#[test]
fn discard_first_operation_with_a_guard_in_a_thread_local() {
    if is_child("discard_first_operation_with_a_guard_in_a_thread_local") {
        let base = common::live();
        let mut g = P.checkout(512);
        g.reserve(64 << 10);
        thread::spawn(move || {
            H.with(|h| {
                drop(g);
                h.borrow_mut().push(P.checkout(4 << 20));
            })
        })
        .join()
        .unwrap();
        buffer_report(base, 3);
        return;
    }
    expect_child(
        "discard_first_operation_with_a_guard_in_a_thread_local",
        "outstanding=0 retained_objects=0 retained_bytes=0 depot_bytes=0 checkouts=4 returns=4 detached=0 holds_nothing=true",
    );
}

/// Values of a generic pool alive right now.
static NESTED_LIVE: AtomicUsize = AtomicUsize::new(0);

/// A pooled value that can hold a guard of its own pool: dropping it
/// returns that guard.
struct Nested {
    inner: Option<Box<Pooled<'static, Nested, NestedRecycle>>>,
}

impl Drop for Nested {
    fn drop(&mut self) {
        NESTED_LIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

struct NestedRecycle;

impl Recycle<Nested> for NestedRecycle {
    fn create(&self) -> Nested {
        NESTED_LIVE.fetch_add(1, Ordering::SeqCst);
        Nested { inner: None }
    }
    fn reset(&self, _: &mut Nested) -> bool {
        true // keeps the inner guard: it comes back when the value drops
    }
}

/// A depot that takes nothing: the exit flush drops every cached value.
static NP: LazyLock<Pool<Nested, NestedRecycle>> = LazyLock::new(|| {
    PoolConfig::new()
        .depot_capacity(0)
        .build(NestedRecycle)
        .unwrap()
});

/// A value dropped by the exit flush (the depot refuses it) returns a guard
/// of the same pool, during the flush. That return must not land in the
/// dead thread's slot, where the next thread with that id would inherit it
/// and never hand it back.
#[test]
fn a_guard_returned_during_the_exit_flush_is_not_stranded() {
    if is_child("a_guard_returned_during_the_exit_flush_is_not_stranded") {
        thread::spawn(|| {
            let a = NP.checkout();
            let c = NP.checkout();
            let mut b = NP.checkout();
            b.inner = Some(Box::new(c));
            drop(b); // cached, holding `c`
            drop(a);
        })
        .join()
        .unwrap();
        // Gets the first thread's id.
        thread::spawn(|| drop(NP.checkout())).join().unwrap();
        NP.trim();
        let s = NP.stats();
        println!(
            "STATS outstanding={} retained_objects={} checkouts={} returns={} live_values={}",
            s.outstanding(),
            s.retained_objects(),
            s.checkouts(),
            s.total().returns,
            NESTED_LIVE.load(Ordering::SeqCst),
        );
        return;
    }
    let child = run_child(
        "a_guard_returned_during_the_exit_flush_is_not_stranded",
        CHILD_LIMIT,
    );
    child.assert_success();
    assert_eq!(
        child.line("STATS"),
        Some("outstanding=0 retained_objects=0 checkouts=4 returns=4 live_values=0"),
        "{}",
        child.stdout
    );
}

/// Thread churn with guards in thread-locals, both destructor orders: after
/// every thread exited and `trim()`, the pool holds nothing.
#[test]
fn thread_churn_with_guards_in_thread_locals_leaves_nothing_behind() {
    if is_child("thread_churn_with_guards_in_thread_locals_leaves_nothing_behind") {
        let base = common::live();
        for round in 0..16 {
            let handles: Vec<_> = (0..4)
                .map(|t| {
                    thread::spawn(move || {
                        if (round + t) % 2 == 0 {
                            drop(P.checkout(4096));
                        }
                        H.with(|h| {
                            h.borrow_mut().push(P.checkout(4096));
                            h.borrow_mut().push(P.checkout(1024));
                        });
                        drop(P.checkout(1024));
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
        }
        buffer_report(base, 6);
        return;
    }
    let child = run_child(
        "thread_churn_with_guards_in_thread_locals_leaves_nothing_behind",
        CHILD_LIMIT,
    );
    child.assert_success();
    // 16 rounds x 4 threads: 3 checkouts each, one more on every other;
    // then 2 by the reporting thread.
    let checkouts = 16 * 4 * 3 + 16 * 2 + 2;
    assert_eq!(
        child.line("STATS").map(str::to_string),
        Some(format!(
            "outstanding=0 retained_objects=0 retained_bytes=0 depot_bytes=0 checkouts={checkouts} returns={checkouts} detached=0 holds_nothing=true"
        )),
        "HELD {:?}\n{}",
        child.line("HELD"),
        child.stdout
    );
}

/// Values of `Tracked` alive.
struct Tracked(Arc<AtomicUsize>);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn tracked_pool(
    config: PoolConfig,
) -> (Arc<AtomicUsize>, Arc<Pool<Tracked, impl Recycle<Tracked>>>) {
    let live = Arc::new(AtomicUsize::new(0));
    let l = live.clone();
    let pool = config
        .build(pool_core::Recycler::new(
            move || {
                l.fetch_add(1, Ordering::SeqCst);
                Tracked(l.clone())
            },
            |_: &mut Tracked| (),
        ))
        .unwrap();
    (live, Arc::new(pool))
}

/// A thread caches 8 values, the pool is reconfigured to a depot of 0
/// values, and the thread exits without touching the pool again: its exit
/// flush must apply the new bound, leaving nothing in the depot.
#[test]
fn the_exit_flush_applies_a_depot_capacity_lowered_to_zero() {
    let (live, pool) = tracked_pool(PoolConfig::new());
    let (cached_tx, cached_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let p = pool.clone();
    let t = thread::spawn(move || {
        let held: Vec<_> = (0..8).map(|_| p.checkout()).collect();
        drop(held);
        cached_tx.send(()).unwrap();
        go_rx.recv().unwrap();
    });
    cached_rx.recv().unwrap();
    pool.reconfigure(pool.config().depot_capacity(0)).unwrap();
    go_tx.send(()).unwrap();
    t.join().unwrap();
    let s = pool.stats();
    assert_eq!(s.total().retained_depot, 0, "{s}");
    assert_eq!(s.retained_objects(), 0, "{s}");
    assert_eq!(live.load(Ordering::SeqCst), 0, "values still alive");
    assert_eq!(s.outstanding(), 0);
}

/// The same through `flush_thread`, on a thread that has not caught up with
/// the reconfiguration.
#[test]
fn flush_thread_applies_a_depot_capacity_lowered_to_zero() {
    let (live, pool) = tracked_pool(PoolConfig::new());
    let held: Vec<_> = (0..8).map(|_| pool.checkout()).collect();
    drop(held);
    let p = pool.clone();
    thread::spawn(move || p.reconfigure(p.config().depot_capacity(0)).unwrap())
        .join()
        .unwrap();
    pool.flush_thread();
    let s = pool.stats();
    assert_eq!(s.total().retained_depot, 0, "{s}");
    assert_eq!(s.retained_objects(), 0, "{s}");
    assert_eq!(live.load(Ordering::SeqCst), 0, "values still alive");
}

/// A thread caches 512-byte and 4 KiB buffers, the pool's smallest class
/// becomes 4096, and the thread exits: the 512-byte buffers are dropped,
/// not parked in a class out of range. The pool's figures count only the
/// in-range buffers, and match the allocator's.
#[test]
fn the_exit_flush_applies_a_raised_min_class() {
    // In a child process: no other test allocates while this one measures.
    const NAME: &str = "the_exit_flush_applies_a_raised_min_class";
    if !is_child(NAME) {
        let child = run_child(NAME, CHILD_LIMIT);
        print!("{}", child.stdout);
        return child.assert_success();
    }
    let base = common::live();
    let pool = Arc::new(BufferConfig::new().build::<Vec<u8>>().unwrap());
    let (cached_tx, cached_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let p = pool.clone();
    let t = thread::spawn(move || {
        let small: Vec<_> = (0..8).map(|_| p.checkout(512)).collect();
        let large: Vec<_> = (0..4).map(|_| p.checkout(4096)).collect();
        drop(small);
        drop(large);
        cached_tx.send(()).unwrap();
        go_rx.recv().unwrap();
    });
    cached_rx.recv().unwrap();
    pool.reconfigure(pool.config().min_class(4096)).unwrap();
    go_tx.send(()).unwrap();
    t.join().unwrap();
    let s = pool.stats();
    let held = common::live() - base;
    println!("held {held} bytes; {s}");
    assert_eq!(s.class(512).map_or(0, |c| c.retained()), 0, "{s}");
    assert_eq!(s.depot_bytes, 4 * 4096, "{s}");
    assert_eq!(s.retained_bytes(), 4 * 4096, "{s}");
    assert!(
        (held - 4 * 4096).abs() <= slack(2),
        "the allocator shows {held} bytes held, the pool says {}",
        s.retained_bytes()
    );
}

/// `flush_thread` after a raised `min_class` on another thread.
#[test]
fn flush_thread_applies_a_raised_min_class() {
    let pool = Arc::new(BufferConfig::new().build::<Vec<u8>>().unwrap());
    let small: Vec<_> = (0..8).map(|_| pool.checkout(512)).collect();
    drop(small);
    let p = pool.clone();
    thread::spawn(move || p.reconfigure(p.config().min_class(4096)).unwrap())
        .join()
        .unwrap();
    pool.flush_thread();
    let s = pool.stats();
    assert_eq!(s.depot_bytes, 0, "{s}");
    assert_eq!(s.retained_bytes(), 0, "{s}");
    assert_eq!(s.class(512).map_or(0, |c| c.retained()), 0, "{s}");
}
