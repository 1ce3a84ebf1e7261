//! A panic in any user hook reaches the caller, leaves the pool usable and
//! every figure of `stats()` exact: `outstanding()` equals the guards
//! really alive, `retained_objects()` and `retained_bytes()` what is really
//! cached (counted by the values themselves), and later checkouts and
//! returns work.
//!
//! Hooks: a `Recycler`'s `create` and `reset`, a `Keep` policy,
//! `Reset::heap_bytes`, each method of a user `Buffer`, and a value's `Drop`
//! run by the pool: while a checkout catches up after `trim()`, during
//! `trim()`, during `reconfigure`, and during thread exit (in a child
//! process, where a panic in a thread-local destructor would abort).

mod common;

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::thread;

use pool_core::{
    Buffer, BufferConfig, BufferPool, Keep, Pool, PoolConfig, Recycle, Recycler, Reset,
};

use common::{is_child, payload_text, run_child, CHILD_LIMIT};

/// Runs `f`, which must panic with `expected`; returns nothing.
#[track_caller]
fn expect_panic(expected: &str, f: impl FnOnce()) {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(()) => {
            panic!("expected the hook's panic `{expected}` to reach the caller; nothing panicked")
        }
        Err(p) => assert_eq!(payload_text(&*p), expected, "the hook's own payload"),
    }
}

/// The books of a generic pool against the truth: `held` guards alive,
/// `live` values alive in all (held ones included).
#[track_caller]
fn assert_books<T: Send, R: Recycle<T>>(pool: &Pool<T, R>, held: usize, live: usize, when: &str) {
    let s = pool.stats();
    let t = s.total();
    assert_eq!(s.outstanding(), held as u64, "{when}: outstanding\n{s}");
    assert_eq!(
        s.retained_objects(),
        (live - held) as u64,
        "{when}: retained ({live} alive, {held} held)\n{s}"
    );
    assert_eq!(
        t.checkouts,
        t.local_hits + t.depot_hits + t.misses,
        "{when}\n{s}"
    );
}

/// After a panic: the books are exact, and checkouts and returns still
/// work and keep them exact.
#[track_caller]
fn assert_usable<T: Send, R: Recycle<T>>(
    pool: &Pool<T, R>,
    held: usize,
    live: impl Fn() -> usize,
    when: &str,
) {
    assert_books(pool, held, live(), when);
    let more: Vec<_> = (0..70).map(|_| pool.checkout()).collect();
    assert_books(
        pool,
        held + 70,
        live(),
        &format!("{when}, then 70 checkouts"),
    );
    drop(more);
    assert_books(pool, held, live(), &format!("{when}, then 70 returns"));
}

/// A value that counts the live values of its pool, and panics when
/// dropped if armed.
struct Bomb {
    armed: bool,
    live: Arc<AtomicUsize>,
}

impl Drop for Bomb {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
        if self.armed {
            panic!("Bomb::drop");
        }
    }
}

fn bomb_pool(config: PoolConfig) -> (Arc<AtomicUsize>, Arc<Pool<Bomb, impl Recycle<Bomb>>>) {
    let live = Arc::new(AtomicUsize::new(0));
    let l = live.clone();
    let pool = config
        .build(Recycler::new(
            move || {
                l.fetch_add(1, Ordering::SeqCst);
                Bomb {
                    armed: false,
                    live: l.clone(),
                }
            },
            |_: &mut Bomb| (),
        ))
        .unwrap();
    (live, Arc::new(pool))
}

/// A policy whose hooks panic once each time `armed` is set.
fn flaky_pool(
    create_armed: Arc<AtomicBool>,
    reset_armed: Arc<AtomicBool>,
) -> (Arc<AtomicUsize>, Pool<Bomb, impl Recycle<Bomb>>) {
    let live = Arc::new(AtomicUsize::new(0));
    let l = live.clone();
    let pool = Pool::with_recycler(Recycler::new(
        move || {
            if create_armed.swap(false, Ordering::SeqCst) {
                panic!("create");
            }
            l.fetch_add(1, Ordering::SeqCst);
            Bomb {
                armed: false,
                live: l.clone(),
            }
        },
        move |_: &mut Bomb| {
            if reset_armed.swap(false, Ordering::SeqCst) {
                panic!("reset");
            }
        },
    ));
    (live, pool)
}

#[test]
fn a_panic_in_create_leaves_the_books_exact() {
    let armed = Arc::new(AtomicBool::new(false));
    let (live, pool) = flaky_pool(armed.clone(), Arc::new(AtomicBool::new(false)));
    let held = pool.checkout();
    armed.store(true, Ordering::SeqCst);
    expect_panic("create", || drop(pool.checkout()));
    assert_usable(
        &pool,
        1,
        || live.load(Ordering::SeqCst),
        "create panicked in checkout",
    );
    // And in prewarm, part-way.
    let n = Arc::new(AtomicUsize::new(0));
    let m = n.clone();
    let l = live.clone();
    let pool2 = Pool::with_recycler(Recycler::new(
        move || {
            if m.fetch_add(1, Ordering::SeqCst) == 5 {
                panic!("create");
            }
            l.fetch_add(1, Ordering::SeqCst);
            Bomb {
                armed: false,
                live: l.clone(),
            }
        },
        |_: &mut Bomb| (),
    ));
    let before = live.load(Ordering::SeqCst);
    expect_panic("create", || {
        pool2.prewarm(40);
    });
    let live2 = || live.load(Ordering::SeqCst) - before;
    assert_usable(&pool2, 0, live2, "create panicked in prewarm");
    drop(held);
}

#[test]
fn a_panic_in_reset_leaves_the_books_exact() {
    let armed = Arc::new(AtomicBool::new(false));
    let (live, pool) = flaky_pool(Arc::new(AtomicBool::new(false)), armed.clone());
    let held = pool.checkout();
    drop(pool.checkout()); // one value cached
    let g = pool.checkout();
    armed.store(true, Ordering::SeqCst);
    expect_panic("reset", || drop(g));
    assert_usable(&pool, 1, || live.load(Ordering::SeqCst), "reset panicked");
    drop(held);
    assert_books(&pool, 0, live.load(Ordering::SeqCst), "all returned");
}

/// A `Keep` verdict that panics when its flag is set.
struct PanickyKeep(bool);

impl Keep for PanickyKeep {
    fn keep(self) -> bool {
        if self.0 {
            panic!("Keep::keep");
        }
        true
    }
}

#[test]
fn a_panic_in_a_keep_policy_leaves_the_books_exact() {
    let armed = Arc::new(AtomicBool::new(false));
    let a = armed.clone();
    let live = Arc::new(AtomicUsize::new(0));
    let l = live.clone();
    let pool = Pool::with_recycler(Recycler::new(
        move || {
            l.fetch_add(1, Ordering::SeqCst);
            Bomb {
                armed: false,
                live: l.clone(),
            }
        },
        move |_: &mut Bomb| PanickyKeep(a.swap(false, Ordering::SeqCst)),
    ));
    let held = pool.checkout();
    drop(pool.checkout());
    let g = pool.checkout();
    armed.store(true, Ordering::SeqCst);
    expect_panic("Keep::keep", || drop(g));
    assert_usable(&pool, 1, || live.load(Ordering::SeqCst), "keep panicked");
    drop(held);
}

static HEAVY_LIVE: AtomicUsize = AtomicUsize::new(0);
static HEAVY_ARMED: AtomicBool = AtomicBool::new(false);

/// A `Default + Reset` value whose `heap_bytes` panics when armed.
struct Heavy;

impl Default for Heavy {
    fn default() -> Self {
        HEAVY_LIVE.fetch_add(1, Ordering::SeqCst);
        Heavy
    }
}

impl Drop for Heavy {
    fn drop(&mut self) {
        HEAVY_LIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Reset for Heavy {
    fn reset(&mut self) {}
    fn heap_bytes(&self) -> usize {
        if HEAVY_ARMED.swap(false, Ordering::SeqCst) {
            panic!("Reset::heap_bytes");
        }
        0
    }
}

#[test]
fn a_panic_in_heap_bytes_leaves_the_books_exact() {
    let pool: Pool<Heavy> = Pool::new();
    let held = pool.checkout();
    drop(pool.checkout());
    let g = pool.checkout();
    HEAVY_ARMED.store(true, Ordering::SeqCst);
    expect_panic("Reset::heap_bytes", || drop(g));
    assert_usable(
        &pool,
        1,
        || HEAVY_LIVE.load(Ordering::SeqCst),
        "heap_bytes panicked",
    );
    drop(held);
}

/// Which `PanicBuf` method panics next, on this thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hook {
    WithCapacity,
    Capacity,
    AsPtr,
    Clear,
    Reclaim,
    Zero,
    Drop,
}

std::thread_local! {
    static ARMED: Cell<Option<Hook>> = const { Cell::new(None) };
    /// `PanicBuf`s alive on this thread, and their bytes. Each test uses
    /// them on its own thread only.
    static BUFS: Cell<i64> = const { Cell::new(0) };
    static BUF_BYTES: Cell<i64> = const { Cell::new(0) };
}

fn arm(hook: Hook) {
    ARMED.with(|a| a.set(Some(hook)));
}

/// Panics if `hook` is armed (once).
fn trip(hook: Hook) {
    let fire = ARMED
        .try_with(|a| {
            if a.get() == Some(hook) {
                a.set(None);
                true
            } else {
                false
            }
        })
        .unwrap_or(false);
    if fire {
        panic!("PanicBuf::{hook:?}");
    }
}

fn was_tripped() -> bool {
    ARMED.with(|a| a.get().is_none())
}

/// A user `Buffer` whose every method can be made to panic.
struct PanicBuf(Vec<u8>);

impl Buffer for PanicBuf {
    fn with_capacity(capacity: usize) -> Self {
        trip(Hook::WithCapacity);
        let v = Vec::with_capacity(capacity);
        BUFS.with(|b| b.set(b.get() + 1));
        BUF_BYTES.with(|b| b.set(b.get() + v.capacity() as i64));
        PanicBuf(v)
    }
    fn capacity(&self) -> usize {
        trip(Hook::Capacity);
        self.0.capacity()
    }
    fn as_ptr(&self) -> *const u8 {
        trip(Hook::AsPtr);
        self.0.as_ptr()
    }
    fn clear(&mut self) {
        trip(Hook::Clear);
        self.0.clear();
    }
    fn reclaim(&mut self, class_size: usize) -> bool {
        trip(Hook::Reclaim);
        self.0.clear();
        self.0.capacity() >= class_size
    }
    fn zero(&mut self) {
        trip(Hook::Zero);
        self.0.clear();
        self.0.resize(self.0.capacity(), 0);
        self.0.clear();
    }
}

impl Drop for PanicBuf {
    fn drop(&mut self) {
        let _ = BUFS.try_with(|b| b.set(b.get() - 1));
        let _ = BUF_BYTES.try_with(|b| b.set(b.get() - self.0.capacity() as i64));
        trip(Hook::Drop);
    }
}

/// The books of a `PanicBuf` pool against the buffers alive: `held` guards
/// alive holding `held_bytes`.
#[track_caller]
fn assert_buffer_books(pool: &BufferPool<PanicBuf>, held: usize, held_bytes: i64, when: &str) {
    let s = pool.stats();
    let (bufs, bytes) = (BUFS.with(Cell::get), BUF_BYTES.with(Cell::get));
    assert_eq!(s.outstanding(), held as u64, "{when}: outstanding\n{s}");
    assert_eq!(
        s.retained_objects() as i64,
        bufs - held as i64,
        "{when}: retained ({bufs} buffers alive, {held} held)\n{s}"
    );
    assert_eq!(
        s.retained_bytes() as i64,
        bytes - held_bytes,
        "{when}: retained bytes ({bytes} alive, {held_bytes} held)\n{s}"
    );
}

/// One checkout served from the cache, its return, one checkout that
/// misses (a class nothing is cached in) and its return.
fn hit_return_miss_return(pool: &BufferPool<PanicBuf>) {
    let g = pool.checkout(4096);
    drop(g);
    let m = pool.checkout(1 << 16);
    drop(m);
}

fn buffer_hook_panics(hook: Hook) {
    let pool = BufferConfig::new()
        .zero_on_return(true)
        .build::<PanicBuf>()
        .unwrap();
    let held = pool.checkout(4096);
    drop(pool.checkout(4096)); // one 4 KiB buffer cached
    assert_buffer_books(&pool, 1, 4096, "before");
    arm(hook);
    expect_panic(&format!("PanicBuf::{hook:?}"), || {
        hit_return_miss_return(&pool)
    });
    assert!(was_tripped());
    let when = format!("{hook:?} panicked");
    assert_buffer_books(&pool, 1, 4096, &when);
    hit_return_miss_return(&pool);
    assert_buffer_books(&pool, 1, 4096, &format!("{when}, then more traffic"));
    let more: Vec<_> = (0..10).map(|_| pool.checkout(4096)).collect();
    assert_buffer_books(&pool, 11, 11 * 4096, &format!("{when}, then 10 held"));
    drop(more);
    drop(held);
    assert_buffer_books(&pool, 0, 0, &format!("{when}, all returned"));
}

#[test]
fn a_panic_in_buffer_with_capacity_leaves_the_books_exact() {
    buffer_hook_panics(Hook::WithCapacity);
}

#[test]
fn a_panic_in_buffer_capacity_leaves_the_books_exact() {
    buffer_hook_panics(Hook::Capacity);
}

#[test]
fn a_panic_in_buffer_as_ptr_leaves_the_books_exact() {
    buffer_hook_panics(Hook::AsPtr);
}

#[test]
fn a_panic_in_buffer_clear_leaves_the_books_exact() {
    buffer_hook_panics(Hook::Clear);
}

#[test]
fn a_panic_in_buffer_reclaim_leaves_the_books_exact() {
    buffer_hook_panics(Hook::Reclaim);
}

#[test]
fn a_panic_in_buffer_zero_leaves_the_books_exact() {
    buffer_hook_panics(Hook::Zero);
}

#[test]
fn a_panic_in_buffer_with_capacity_on_an_unpooled_checkout_leaves_the_books_exact() {
    let pool = BufferPool::<PanicBuf>::new();
    let held = pool.checkout(4096);
    arm(Hook::WithCapacity);
    expect_panic("PanicBuf::WithCapacity", || drop(pool.checkout(4 << 20)));
    assert_buffer_books(&pool, 1, 4096, "with_capacity panicked, unpooled");
    drop(pool.checkout(4 << 20));
    drop(held);
    assert_buffer_books(&pool, 0, 0, "all returned");
}

/// Three guards held, four values cached (one armed); another thread trims
/// (and, with `refill`, then leaves a batch in the depot); this thread's
/// next checkout catches up, dropping its cache.
fn panicking_drop_in_catch_up(refill: bool) {
    let (live, pool) = bomb_pool(PoolConfig::new());
    let held: Vec<_> = (0..3).map(|_| pool.checkout()).collect();
    let mut cached: Vec<_> = (0..4).map(|_| pool.checkout()).collect();
    cached[1].armed = true;
    drop(cached);
    let p = pool.clone();
    thread::spawn(move || {
        p.trim();
        if refill {
            let more: Vec<_> = (0..8).map(|_| p.checkout()).collect();
            drop(more);
            p.flush_thread();
        }
    })
    .join()
    .unwrap();
    expect_panic("Bomb::drop", || drop(pool.checkout()));
    assert_usable(
        &pool,
        3,
        || live.load(Ordering::SeqCst),
        "drop panicked in catch-up",
    );
    drop(held);
    assert_books(&pool, 0, live.load(Ordering::SeqCst), "all returned");
}

#[test]
fn a_panicking_drop_while_a_checkout_catches_up_after_trim() {
    panicking_drop_in_catch_up(false);
}

#[test]
fn a_panicking_drop_while_a_checkout_catches_up_after_trim_and_takes_a_batch() {
    panicking_drop_in_catch_up(true);
}

#[test]
fn a_panicking_drop_during_trim() {
    let (live, pool) = bomb_pool(PoolConfig::new());
    let held = pool.checkout();
    // An armed value in the depot.
    let mut cached: Vec<_> = (0..4).map(|_| pool.checkout()).collect();
    cached[2].armed = true;
    drop(cached);
    pool.flush_thread();
    expect_panic("Bomb::drop", || {
        pool.trim();
    });
    assert_usable(
        &pool,
        1,
        || live.load(Ordering::SeqCst),
        "drop panicked in trim (depot)",
    );
    // An armed value in this thread's cache.
    let mut cached: Vec<_> = (0..4).map(|_| pool.checkout()).collect();
    cached[0].armed = true;
    drop(cached);
    expect_panic("Bomb::drop", || {
        pool.trim();
    });
    assert_usable(
        &pool,
        1,
        || live.load(Ordering::SeqCst),
        "drop panicked in trim (cache)",
    );
    drop(held);
}

/// After a `reconfigure` that panicked: `config()` answers (no poisoned
/// lock) and the limits in force are the ones it reports; another
/// `reconfigure` works.
fn assert_config_in_force<T: Send, R: Recycle<T>>(pool: &Pool<T, R>, live: impl Fn() -> usize) {
    let cfg = pool.config();
    pool.trim();
    let held: Vec<_> = (0..70).map(|_| pool.checkout()).collect();
    drop(held);
    let expected = 70.min(cfg.get_thread_capacity() + cfg.get_depot_capacity()) as u64;
    let s = pool.stats();
    assert_eq!(
        s.retained_objects(),
        expected,
        "config() reports {cfg:?}, but the pool keeps what other limits allow\n{s}"
    );
    assert_books(pool, 0, live(), "after the panicking reconfigure");
    pool.reconfigure(PoolConfig::new()).unwrap();
    assert_eq!(pool.config(), PoolConfig::new());
}

#[test]
fn a_panicking_drop_during_pool_reconfigure() {
    let (live, pool) = bomb_pool(PoolConfig::new());
    let mut cached: Vec<_> = (0..8).map(|_| pool.checkout()).collect();
    cached[3].armed = true;
    drop(cached);
    pool.flush_thread(); // 8 values in the depot, one armed
    let new = pool.config().thread_capacity(2).depot_capacity(0);
    expect_panic("Bomb::drop", || {
        let _ = pool.reconfigure(new);
    });
    assert_books(
        &pool,
        0,
        live.load(Ordering::SeqCst),
        "drop panicked in reconfigure",
    );
    assert_config_in_force(&pool, || live.load(Ordering::SeqCst));
}

#[test]
fn a_panicking_drop_during_buffer_pool_reconfigure() {
    let pool = BufferPool::<PanicBuf>::new();
    let cached: Vec<_> = (0..8).map(|_| pool.checkout(4096)).collect();
    drop(cached);
    pool.flush_thread(); // 8 buffers in the depot
    let new = pool.config().thread_capacity(2).depot_capacity(0);
    arm(Hook::Drop);
    expect_panic("PanicBuf::Drop", || {
        let _ = pool.reconfigure(new);
    });
    assert_buffer_books(&pool, 0, 0, "drop panicked in reconfigure");
    let cfg = pool.config();
    pool.trim();
    let held: Vec<_> = (0..70).map(|_| pool.checkout(4096)).collect();
    drop(held);
    let expected = 70.min(cfg.class_thread_capacity(4096) + cfg.get_depot_capacity()) as u64;
    let s = pool.stats();
    assert_eq!(
        s.retained_objects(),
        expected,
        "config() reports {cfg:?}, but the pool keeps what other limits allow\n{s}"
    );
    assert_buffer_books(&pool, 0, 0, "after the panicking reconfigure");
    pool.reconfigure(BufferConfig::new()).unwrap();
    assert_eq!(pool.config(), BufferConfig::new());
}

static EXIT_LIVE: AtomicUsize = AtomicUsize::new(0);

struct ExitBomb(bool);

impl Drop for ExitBomb {
    fn drop(&mut self) {
        EXIT_LIVE.fetch_sub(1, Ordering::SeqCst);
        if self.0 {
            panic!("ExitBomb::drop");
        }
    }
}

fn exit_bomb() -> ExitBomb {
    EXIT_LIVE.fetch_add(1, Ordering::SeqCst);
    ExitBomb(false)
}

type ExitPool = Pool<ExitBomb, Recycler<fn() -> ExitBomb, fn(&mut ExitBomb)>>;

/// A depot that takes nothing: the exit flush drops what the thread cached.
static EXIT_POOL: LazyLock<ExitPool> = LazyLock::new(|| {
    PoolConfig::new()
        .depot_capacity(0)
        .build(Recycler::new(
            exit_bomb as fn() -> ExitBomb,
            (|_: &mut ExitBomb| ()) as fn(&mut ExitBomb),
        ))
        .unwrap()
});

/// A value's `Drop` panics while the exit flush drops the thread's cache:
/// no abort, and the books stay exact.
#[test]
fn a_panicking_drop_during_thread_exit() {
    const NAME: &str = "a_panicking_drop_during_thread_exit";
    if is_child(NAME) {
        thread::spawn(|| {
            let mut cached: Vec<_> = (0..4).map(|_| EXIT_POOL.checkout()).collect();
            cached[1].0 = true;
            drop(cached);
        })
        .join()
        .unwrap();
        thread::spawn(|| drop(EXIT_POOL.checkout())).join().unwrap();
        EXIT_POOL.trim();
        let s = EXIT_POOL.stats();
        println!(
            "STATS outstanding={} retained_objects={} checkouts={} returns={} live_values={}",
            s.outstanding(),
            s.retained_objects(),
            s.checkouts(),
            s.total().returns,
            EXIT_LIVE.load(Ordering::SeqCst)
        );
        return;
    }
    let child = run_child(NAME, CHILD_LIMIT);
    child.assert_success();
    assert_eq!(
        child.line("STATS"),
        Some("outstanding=0 retained_objects=0 checkouts=5 returns=5 live_values=0"),
        "{}",
        child.stdout
    );
}

/// A `Buffer` method that panics during `try_give_back_fast_in_place`:
/// the buffer is dropped once, by the pool (counted as a rejected return),
/// and the caller's place, a `ManuallyDrop`, is left alone.
#[test]
fn a_panic_in_a_buffer_method_during_an_in_place_return_drops_it_once() {
    use std::mem::ManuallyDrop;

    let pool = BufferPool::<PanicBuf>::new();
    drop(pool.checkout(4096)); // this thread's cache exists, one buffer in it
    assert_eq!(BUFS.with(Cell::get), 1);
    let (buf, ticket) = pool.take(4096); // that buffer
    let mut place = ManuallyDrop::new(buf);
    arm(Hook::Clear);
    expect_panic("PanicBuf::Clear", || {
        // SAFETY: `place` is never used again: kept, or dropped by the
        // pool when a method panics.
        let _ = unsafe { pool.try_give_back_fast_in_place(&mut place, &ticket) };
    });
    assert!(was_tripped());
    assert_eq!(BUFS.with(Cell::get), 0, "dropped once, by the pool");
    assert_buffer_books(&pool, 0, 0, "after the panic");
    hit_return_miss_return(&pool);
    assert_buffer_books(&pool, 0, 0, "after more traffic");
}
