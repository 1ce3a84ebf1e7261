//! Lifecycle and faults: thread exit, thread churn, trim, idle decay,
//! reconfiguration with guards out, panicking policies, panicking threads,
//! pools dropped while guards are out.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use pool_core::{BufferConfig, BufferPool, Pool, PoolConfig, Recycle, Recycler};

/// A value that counts how many of its kind are alive.
struct Tracked(Arc<AtomicUsize>);

impl Tracked {
    fn new(live: &Arc<AtomicUsize>) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        Tracked(live.clone())
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn tracked_pool(config: PoolConfig) -> (Arc<AtomicUsize>, Pool<Tracked, impl Recycle<Tracked>>) {
    let live = Arc::new(AtomicUsize::new(0));
    let l = live.clone();
    let pool = config
        .build(Recycler::new(
            move || Tracked::new(&l),
            |_: &mut Tracked| (),
        ))
        .unwrap();
    (live, pool)
}

#[test]
fn exiting_threads_hand_their_cache_to_the_depot() {
    let (live, pool) = tracked_pool(PoolConfig::new().thread_capacity(8).depot_capacity(1000));
    let pool = Arc::new(pool);
    let p = pool.clone();
    thread::spawn(move || {
        let held: Vec<_> = (0..8).map(|_| p.checkout()).collect();
        drop(held); // all 8 cached by this thread
        assert_eq!(p.stats().total().retained_local, 8);
    })
    .join()
    .unwrap();
    let stats = pool.stats().total();
    assert_eq!(stats.retained_local, 0, "{stats:?}");
    assert_eq!(stats.retained_depot, 8, "{stats:?}");
    assert_eq!(live.load(Ordering::SeqCst), 8);
    // And this thread reuses them.
    let again: Vec<_> = (0..8).map(|_| pool.checkout()).collect();
    assert_eq!(pool.stats().total().misses, 8, "no new value was created");
    drop(again);
}

#[test]
fn thousands_of_short_lived_threads_stay_within_bounds() {
    const GLOBAL: usize = 256;
    const CAP: usize = 16;
    let (live, pool) = tracked_pool(
        PoolConfig::new()
            .thread_capacity(CAP)
            .batch(8)
            .depot_capacity(GLOBAL),
    );
    let pool = Arc::new(pool);
    let threads = if cfg!(miri) { 24 } else { 2000 };
    for round in 0..threads / 8 {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let p = pool.clone();
                thread::spawn(move || {
                    let held: Vec<_> = (0..CAP + round % 5).map(|_| p.checkout()).collect();
                    drop(held);
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let retained = pool.stats().retained_objects() as usize;
        assert!(retained <= GLOBAL, "round {round}: {retained} kept");
        assert_eq!(live.load(Ordering::SeqCst), retained, "nothing stranded");
    }
    let stats = pool.stats();
    assert_eq!(stats.outstanding(), 0);
    assert!(stats.hit_rate() > 0.5, "{stats}");
}

#[test]
fn trim_releases_depot_and_caches() {
    let (live, pool) = tracked_pool(PoolConfig::new().thread_capacity(8));
    pool.prewarm(100);
    let held: Vec<_> = (0..8).map(|_| pool.checkout()).collect();
    drop(held);
    assert!(live.load(Ordering::SeqCst) >= 100);
    pool.trim();
    assert_eq!(pool.stats().retained_objects(), 0);
    assert_eq!(live.load(Ordering::SeqCst), 0);
    assert!(pool.stats().total().discarded.trimmed >= 100);
}

#[test]
fn trim_reaches_other_threads_at_their_next_operation() {
    let (live, pool) = tracked_pool(PoolConfig::new().thread_capacity(8).depot_capacity(0));
    let pool = Arc::new(pool);
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let (returned, all_returned) = std::sync::mpsc::channel::<()>();
    let p = pool.clone();
    let t = thread::spawn(move || {
        drop((0..8).map(|_| p.checkout()).collect::<Vec<_>>());
        returned.send(()).unwrap();
        wait.recv().unwrap();
        drop(p.checkout()); // next operation: catches up with the trim
    });
    // The channel orders the thread's returns before what follows here.
    all_returned.recv().unwrap();
    assert_eq!(pool.stats().total().returns, 8);
    assert_eq!(live.load(Ordering::SeqCst), 8);
    pool.trim();
    go.send(()).unwrap();
    t.join().unwrap();
    // 8 trimmed; the one checkout after the trim created a value that went
    // back into that thread's cache and then to the depot (capacity 0:
    // dropped) when the thread exited.
    assert_eq!(live.load(Ordering::SeqCst), 0);
}

#[test]
fn idle_decay_frees_what_nobody_used_for_a_whole_period() {
    let (live, pool) = tracked_pool(
        PoolConfig::new()
            .thread_capacity(4)
            .decay_interval(Duration::from_millis(20)),
    );
    pool.prewarm(64);
    // A busy thread that uses 4 at a time keeps its cache; the depot's
    // unused surplus goes.
    for _ in 0..3 {
        thread::sleep(Duration::from_millis(25));
        let held: Vec<_> = (0..4).map(|_| pool.checkout()).collect();
        drop(held);
        pool.maintain();
    }
    let kept = live.load(Ordering::SeqCst);
    assert!(kept <= 8, "{kept} still alive after idle decay");
    assert!(kept >= 2, "the working set survives decay");
}

#[test]
fn reconfigure_with_guards_out() {
    let pool = BufferPool::<Vec<u8>>::new();
    let small = pool.checkout(512);
    let mid = pool.checkout(4096);
    pool.reconfigure(pool.config().min_class(4096).thread_capacity(2))
        .unwrap();
    assert_eq!(pool.checkout(10).capacity(), 4096);
    drop(small); // class gone: dropped
    drop(mid); // class kept
    let stats = pool.stats();
    assert_eq!(stats.outstanding(), 0);
    assert_eq!(stats.total().discarded.stale, 1);
    assert!(
        stats.class(512).is_some(),
        "a class with activity stays listed"
    );
    // Bad settings change nothing.
    let before = pool.config();
    assert!(pool.reconfigure(before.max_class(1000)).is_err());
    assert_eq!(pool.config(), before);
}

#[test]
fn lowering_bounds_shrinks_what_is_kept() {
    let pool = BufferConfig::new().build::<Vec<u8>>().unwrap();
    pool.prewarm_class(4096, 100);
    let drop_guards: Vec<_> = (0..32).map(|_| pool.checkout(4096)).collect();
    drop(drop_guards);
    pool.reconfigure(pool.config().depot_capacity(10).thread_capacity(4))
        .unwrap();
    let c = *pool.stats().class(4096).unwrap();
    assert!(c.retained_depot <= 10, "{c:?}");
    assert!(c.retained_local <= 4, "{c:?}");
}

#[test]
fn a_panicking_reset_policy_drops_the_value_and_the_pool_stays_usable() {
    let live = Arc::new(AtomicUsize::new(0));
    let l = live.clone();
    let pool = Pool::with_recycler(Recycler::new(
        move || Tracked::new(&l),
        |t: &mut Tracked| {
            if t.0.load(Ordering::SeqCst) == 1 {
                panic!("reset failed");
            }
        },
    ));
    let guard = pool.checkout();
    let r = catch_unwind(AssertUnwindSafe(|| drop(guard)));
    assert!(r.is_err());
    assert_eq!(live.load(Ordering::SeqCst), 0, "the value was dropped");
    let a = pool.checkout();
    let b = pool.checkout();
    drop(a);
    drop(b);
    assert_eq!(pool.stats().retained_objects(), 2);
}

#[test]
fn guards_held_by_a_panicking_thread_come_back_on_unwind() {
    let pool = Arc::new(BufferPool::<Vec<u8>>::new());
    let p = pool.clone();
    let r = thread::spawn(move || {
        let _a = p.checkout_owned(1000);
        let _b = p.checkout_owned(100_000);
        panic!("worker failed");
    })
    .join();
    assert!(r.is_err());
    let stats = pool.stats();
    assert_eq!(stats.outstanding(), 0, "{stats}");
    assert_eq!(stats.retained_objects(), 2, "{stats}");
}

#[test]
fn dropping_the_pool_with_owned_guards_out_keeps_them_valid() {
    let live = Arc::new(AtomicUsize::new(0));
    let l = live.clone();
    let pool = Arc::new(Pool::with_recycler(Recycler::new(
        move || Tracked::new(&l),
        |_: &mut Tracked| (),
    )));
    let guards: Vec<_> = (0..10).map(|_| pool.checkout_owned()).collect();
    drop(pool.checkout_owned()); // one cached
    drop(pool);
    assert_eq!(live.load(Ordering::SeqCst), 11);
    thread::spawn(move || drop(guards)).join().unwrap();
    // The last guard dropped the pool, and the pool its cached values.
    assert_eq!(live.load(Ordering::SeqCst), 0);
}

#[test]
fn detached_values_leave_the_books() {
    let (live, pool) = tracked_pool(PoolConfig::new());
    let g = pool.checkout();
    let v = pool_core::Pooled::detach(g);
    assert_eq!(pool.stats().outstanding(), 0);
    assert_eq!(pool.stats().total().detached, 1);
    drop(v);
    assert_eq!(live.load(Ordering::SeqCst), 0);
}

/// Issue 18, case 7: a detached unpooled buffer is not a discard (the pool
/// drops nothing; the buffer leaves whole), so it is not counted as a
/// return either: one dropped and one detached unpooled buffer read as one
/// return and one detach, not two returns (which the metrics export reads
/// as two discards).
#[test]
fn a_detached_unpooled_buffer_is_not_counted_as_a_discard() {
    let pool = pool_core::BufferConfig::new()
        .max_class(4096)
        .build::<Vec<u8>>()
        .unwrap();
    drop(pool.checkout(8192)); // returned: dropped, one discard
    let kept = pool_core::PooledBuf::detach(pool.checkout(8192));
    let s = pool.stats();
    assert_eq!(s.unpooled_checkouts, 2, "{s}");
    assert_eq!(s.unpooled_returns, 1, "only the dropped one came back: {s}");
    assert_eq!(s.unpooled_detached, 1, "{s}");
    assert_eq!(s.outstanding(), 0, "{s}");
    assert_eq!(kept.capacity(), 8192);
}

/// `take_uncached` (issue 18, case 4): served from this thread's cache if
/// it holds one, else from a depot batch whose rest goes straight back, else
/// a new buffer; the cache never grows and the books stay exact.
#[test]
fn take_uncached_never_grows_this_threads_cache() {
    use pool_core::Source;
    let pool = BufferPool::<Vec<u8>>::new();
    let local = |p: &BufferPool<Vec<u8>>| p.stats().class(4096).unwrap().retained_local;
    let (buf, ticket) = pool.take_uncached(4096);
    assert_eq!(ticket.source(), Source::New);
    pool.give_back(buf, ticket); // kept in this thread's cache
    assert_eq!(local(&pool), 1);
    let (buf, ticket) = pool.take_uncached(4096);
    assert_eq!(
        ticket.source(),
        Source::Local,
        "the cache is used, not refilled"
    );
    assert_eq!(local(&pool), 0);
    pool.give_back(buf, ticket);
    pool.flush_thread();
    pool.prewarm_class(4096, 40);
    let depot = pool.stats().class(4096).unwrap().retained_depot;
    let (buf, ticket) = pool.take_uncached(4096);
    assert_eq!(ticket.source(), Source::Depot);
    let class = *pool.stats().class(4096).unwrap();
    assert_eq!(
        (class.retained_local, class.retained_depot),
        (0, depot - 1),
        "{class:?}"
    );
    pool.give_back(buf, ticket);
    let s = pool.stats();
    assert_eq!(s.outstanding(), 0, "{s}");
    assert_eq!(s.total().discarded.total(), 0, "{s}");
}

/// A buffer that records whether the pool zeroed it.
struct Spy {
    inner: Vec<u8>,
    zeroed: bool,
}

impl pool_core::Buffer for Spy {
    fn with_capacity(capacity: usize) -> Self {
        Spy {
            inner: Vec::with_capacity(capacity),
            zeroed: false,
        }
    }
    fn capacity(&self) -> usize {
        self.inner.capacity()
    }
    fn as_ptr(&self) -> *const u8 {
        self.inner.as_ptr()
    }
    fn clear(&mut self) {
        self.inner.clear();
    }
    fn reclaim(&mut self, class_size: usize) -> bool {
        self.inner.reclaim(class_size)
    }
    fn zero(&mut self) {
        self.inner.zero();
        self.zeroed = true;
    }
}

#[test]
fn zero_on_return_zeroes_every_returned_buffer() {
    for on in [false, true] {
        let pool = BufferConfig::new()
            .zero_on_return(on)
            .build::<Spy>()
            .unwrap();
        let mut b = pool.checkout(512);
        b.inner.extend_from_slice(&[0xAA; 512]);
        drop(b);
        assert_eq!(pool.checkout(512).zeroed, on);
    }
}

#[test]
fn vec_zero_overwrites_bytes_beyond_the_length() {
    use pool_core::Buffer;
    let mut v: Vec<u8> = Vec::with_capacity(512);
    v.extend_from_slice(&[0xAA; 512]);
    v.truncate(10);
    v.zero();
    assert!(v.is_empty());
    // SAFETY: `zero` initialised every byte of the capacity, and 512 bytes
    // fit the capacity.
    unsafe { v.set_len(512) };
    assert!(v.iter().all(|&b| b == 0));
}

/// A decay interval shortened by `reconfigure` takes effect within its
/// own quarter, not at the deadline the old interval set (a quarter hour
/// here).
#[test]
fn a_shortened_decay_interval_takes_effect_at_once() {
    let pool = PoolConfig::new()
        .decay_interval(Duration::from_secs(3600))
        .build(Recycler::new(String::new, String::clear))
        .expect("valid settings");
    assert!(pool.maintain(), "a first step, the next due in 15 minutes");
    pool.reconfigure(pool.config().decay_interval(Duration::from_millis(50)))
        .expect("valid settings");
    assert_eq!(pool.prewarm(32), 32);
    std::thread::sleep(Duration::from_millis(200)); // four intervals
    pool.maintain();
    pool.maintain();
    assert_eq!(
        pool.stats().retained_objects(),
        0,
        "unused for four intervals"
    );
}

/// Classes that a reconfigure makes large (a lower `thread_bytes`) keep
/// what they held only within the large classes' byte bound: the
/// reconfiguring thread's cache fits `thread_bytes_bound` at once.
#[test]
fn a_reconfigure_that_makes_classes_large_keeps_the_thread_bound() {
    let pool = pool_core::BufferConfig::new()
        .thread_bytes(64 << 20) // every class up to 1 MiB is small
        .build::<Vec<u8>>()
        .expect("valid settings");
    let sizes: Vec<usize> = pool
        .config()
        .class_sizes()
        .expect("valid settings")
        .into_iter()
        .filter(|&c| c > 64 << 10)
        .collect();
    let held: Vec<_> = sizes.iter().map(|&s| pool.checkout(s)).collect();
    drop(held); // one buffer cached per class above 64 KiB
    let new = pool.config().thread_bytes(256 << 10); // all of them large now
    pool.reconfigure(new).expect("valid settings"); // this thread catches up
    let local: u64 = pool
        .stats()
        .classes
        .iter()
        .map(|c| c.retained_local * c.class_size.unwrap_or(0) as u64)
        .sum();
    let bound = new.thread_bytes_bound() as u64;
    assert!(
        local <= bound,
        "this thread keeps {local} bytes, its bound is {bound}"
    );
}
