//! One small adapter per contender.
//!
//! Each adapter is a unit struct whose pool lives in a `static` (so guards
//! are `'static`, as they would be in a server). The single-type pools
//! (everything except pool-core and fresh allocation) hand out whatever
//! `BytesMut` they hold: the adapter replaces a buffer smaller than the
//! request with a new one, which happens only while the pool warms up
//! because the runner measures one size per process.

use std::cell::{RefCell, UnsafeCell};
use std::hint::black_box;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::sync::{LazyLock, Mutex};

use bytes::BytesMut;
use crossbeam_queue::ArrayQueue;

/// Bytes written by the non-filling workloads (plus the last byte).
const PAYLOAD: [u8; 64] = [0x5a; 64];

/// Buffers the bounded textbook pools hold at most (`Mutex<Vec>`,
/// `ArrayQueue`, opool): as many as pool-core's default depot
/// holds per class.
const BOUNDED_POOL_CAPACITY: usize = 1024;

/// The contender whose figures are the denominator of every ratio.
pub const THIS_PROJECT: &str = "pool-core";

/// Every contender's name, in table order.
pub const CONTENDERS: &[&str] = &[
    "pool-core",
    "pool-core-burst",
    "pool-tokio",
    "pool-tokio-built",
    "tls-floor",
    "tls-unsafecell",
    "fresh-bytesmut",
    "fresh-vec-zeroed",
    "sharded-slab",
    "lockfree-linear",
    "lockfree-spin",
    "object-pool",
    "opool",
    "mutex-vec",
    "arrayqueue",
];

/// A buffer source under test: check out, write, read, return.
///
/// `Buf` is what crosses threads and `.await` points in W3 and W4, so it
/// must be `Send`; returning goes through [`put`](Contender::put) (for
/// guard-based pools that is a drop).
pub trait Contender: Sync + 'static {
    /// The checked-out buffer (a guard, a key or a plain buffer).
    type Buf: Send + 'static;

    /// Name used in tables and on the command line.
    const NAME: &'static str;

    /// An empty buffer of at least `n` bytes of capacity.
    fn checkout(&'static self, n: usize) -> Self::Buf;

    /// Writes into the buffer: 64 bytes and the byte at `n - 1`, or all
    /// `n` bytes when `full`.
    fn write(&'static self, buf: &mut Self::Buf, n: usize, full: bool);

    /// Reads one byte the writer wrote.
    fn read(&'static self, buf: &Self::Buf) -> u8;

    /// Returns the buffer (or frees it).
    fn put(&'static self, buf: Self::Buf);

    /// Called once when the idle phase of W5 starts and every `tick` of it;
    /// pools with trimming do their idle work here. Returns what was called,
    /// for the report.
    fn idle_tick(&'static self) -> &'static str {
        "nothing"
    }

    /// Drops everything retained, where the pool can; returns what was
    /// called.
    fn trim(&'static self) -> &'static str {
        "nothing (no trim API)"
    }

    /// Bytes the pool says it retains, where it has statistics.
    fn retained_bytes(&'static self) -> Option<u64> {
        None
    }
}

/// Writes into a `BytesMut` as the workloads ask: 64 bytes and the byte at
/// `n - 1` (length 64 after), or all `n` bytes when `full` (length `n`).
///
/// Straight into the spare capacity, which every contender hands out at
/// `n` bytes or more: no `reserve`, no reallocation and no panic path, so
/// nothing takes the buffer's address (an unwinding path would, to drop
/// it) and an inlined checkout-write-return can keep the `BytesMut` in
/// registers, as a server's own code may.
#[inline(always)]
fn write_bytes(buf: &mut BytesMut, n: usize, full: bool) {
    let len = buf.len();
    let spare = buf.spare_capacity_mut();
    if n <= PAYLOAD.len() || spare.len() < n {
        too_small(n, spare.len());
    }
    let written = if full {
        spare[..n].fill(MaybeUninit::new(0xa5));
        n
    } else {
        for (dst, &src) in spare[..PAYLOAD.len()].iter_mut().zip(&PAYLOAD) {
            dst.write(src);
        }
        spare[n - 1].write(1);
        PAYLOAD.len()
    };
    // SAFETY: the `written` bytes after the old length were initialised
    // just above (the check above keeps them within capacity).
    unsafe { buf.set_len(len + written) };
    black_box(buf.as_ptr());
}

/// A contender handed out a buffer with less room than asked: a broken
/// adapter. `extern "C"`, so it cannot unwind (a panic aborts) and the
/// loops need no unwinding path around the write.
#[cold]
#[inline(never)]
extern "C" fn too_small(n: usize, room: usize) -> ! {
    eprintln!("W1 wants {n} bytes (more than 64) of spare capacity; the buffer has {room}");
    std::process::abort()
}

#[inline(always)]
fn read_bytes(buf: &BytesMut) -> u8 {
    black_box(buf[0])
}

/// A `BytesMut` of at least `n` bytes, from whatever a single-type pool
/// handed out (cleared by the pool).
#[inline(always)]
fn fit(buf: BytesMut, n: usize) -> BytesMut {
    if buf.capacity() >= n {
        buf
    } else {
        refit(buf, n)
    }
}

/// [`fit`] in place, for pools that hand out guards.
#[inline(always)]
fn fit_mut(buf: &mut BytesMut, n: usize) {
    if buf.capacity() < n {
        refit_mut(buf, n);
    }
}

#[cold]
#[inline(never)]
fn refit_mut(buf: &mut BytesMut, n: usize) {
    *buf = BytesMut::with_capacity(n);
}

/// Replaces a buffer too small for the request (only while a single-type
/// pool warms up). Out of line and by value, so that the common path of
/// [`fit`] never takes the buffer's address.
#[cold]
#[inline(never)]
fn refit(buf: BytesMut, n: usize) -> BytesMut {
    drop(buf);
    BytesMut::with_capacity(n)
}

/// Size the single-type pools create new buffers at (set by the runner
/// before any checkout; a buffer that is too small is replaced anyway).
static CREATE_SIZE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(4096);

/// Sets the size single-type pools create new buffers at.
pub fn set_create_size(n: usize) {
    CREATE_SIZE.store(n, std::sync::atomic::Ordering::Relaxed);
}

fn new_buf() -> BytesMut {
    BytesMut::with_capacity(CREATE_SIZE.load(std::sync::atomic::Ordering::Relaxed))
}

macro_rules! guard_contender {
    ($ty:ident, $name:literal, $buf:ty, |$n:ident| $checkout:expr $(, { $($extra:tt)* })?) => {
        impl Contender for $ty {
            type Buf = $buf;
            const NAME: &'static str = $name;
            #[inline(always)]
            fn checkout(&'static self, $n: usize) -> Self::Buf {
                $checkout
            }
            #[inline(always)]
            fn write(&'static self, buf: &mut Self::Buf, n: usize, full: bool) {
                write_bytes(buf, n, full)
            }
            #[inline(always)]
            fn read(&'static self, buf: &Self::Buf) -> u8 {
                read_bytes(buf)
            }
            #[inline(always)]
            fn put(&'static self, buf: Self::Buf) {
                drop(buf)
            }
            $($($extra)*)?
        }
    };
}

/// A pool-core `BufferPool<BytesMut>` in a `static`, with its idle hook,
/// trim and statistics.
macro_rules! pool_core_contender {
    ($ty:ident, $name:literal, $pool:ident) => {
        guard_contender!(
            $ty,
            $name,
            pool_core::PooledBuf<'static, BytesMut>,
            |n| $pool.checkout(n),
            {
                fn idle_tick(&'static self) -> &'static str {
                    $pool.maintain();
                    "BufferPool::maintain()"
                }
                fn trim(&'static self) -> &'static str {
                    $pool.trim();
                    "BufferPool::trim()"
                }
                fn retained_bytes(&'static self) -> Option<u64> {
                    Some($pool.stats().retained_bytes())
                }
            }
        );
    };
}

// ---------------------------------------------------------------- pool-core

static POOL_CORE: LazyLock<pool_core::BufferPool<BytesMut>> =
    LazyLock::new(pool_core::BufferPool::new);

/// This project: pool-core's `BufferPool<BytesMut>` with default settings,
/// in a `static LazyLock`; `checkout(n)` and drop of the guard.
#[derive(Debug)]
pub struct PoolCore;

pool_core_contender!(PoolCore, "pool-core", POOL_CORE);

/// Bytes the [`PoolCoreBurst`] pool may keep in its depot: room
/// for the whole W5 burst (2,000 x 64 KiB = 125 MiB).
pub const BURST_GLOBAL_BYTES: usize = 256 << 20;
/// Idle decay interval of the [`PoolCoreBurst`] pool: short enough that
/// a burst untaken for this long is freed within W5's idle second.
pub const BURST_DECAY: std::time::Duration = std::time::Duration::from_millis(300);

static POOL_CORE_BURST: LazyLock<pool_core::BufferPool<BytesMut>> = LazyLock::new(|| {
    match pool_core::BufferConfig::new()
        .depot_capacity(4096)
        .depot_bytes(BURST_GLOBAL_BYTES)
        .decay_interval(BURST_DECAY)
        .build()
    {
        Ok(pool) => pool,
        Err(e) => panic!("burst settings are valid: {e}"),
    }
});

/// pool-core configured for bursts (run in W5 only by default): global
/// depot of 4,096 buffers per class and [`BURST_GLOBAL_BYTES`], idle
/// decay every [`BURST_DECAY`]. Shows what the bounds and the decay do
/// when the burst fits.
#[derive(Debug)]
pub struct PoolCoreBurst;

pool_core_contender!(PoolCoreBurst, "pool-core-burst", POOL_CORE_BURST);

/// The pool-core pool the [`PoolCore`] adapter uses (for its statistics).
pub fn pool_core_pool() -> &'static pool_core::BufferPool<BytesMut> {
    &POOL_CORE
}

// ---------------------------------------------------------------- pool-tokio

/// This project's tokio layer: `pool_tokio::checkout(n)` from the
/// process-wide default pool (pool-core's defaults, no budget; pool-tokio
/// built without its `tracing` feature unless benches' own `tracing`
/// feature turns it on, as W6 does), `PooledBytes` guard dropped on return.
#[derive(Debug)]
pub struct PoolTokio;

guard_contender!(
    PoolTokio,
    "pool-tokio",
    pool_tokio::PooledBytes,
    |n| pool_tokio::checkout(n),
    {
        fn idle_tick(&'static self) -> &'static str {
            pool_tokio::default_pool().maintain();
            "BytesPool::maintain()"
        }
        fn trim(&'static self) -> &'static str {
            pool_tokio::default_pool().trim();
            "BytesPool::trim()"
        }
        fn retained_bytes(&'static self) -> Option<u64> {
            Some(pool_tokio::default_pool().stats().retained_bytes())
        }
    }
);

/// A pool built by `BytesPool::builder().build()` (pool-core's defaults,
/// no budget) in a `static`: guards reach it through an `Arc`, as every
/// pool a service builds for itself does (the default pool's guards hold
/// a `&'static`).
static POOL_TOKIO_BUILT: LazyLock<pool_tokio::BytesPool> =
    LazyLock::new(|| match pool_tokio::BytesPool::builder().build() {
        Ok(pool) => pool,
        Err(e) => panic!("default settings are valid: {e}"),
    });

/// This project's tokio layer on a pool of its own:
/// `POOL_TOKIO_BUILT.checkout(n)`, the guard dropped on return.
#[derive(Debug)]
pub struct PoolTokioBuilt;

guard_contender!(
    PoolTokioBuilt,
    "pool-tokio-built",
    pool_tokio::PooledBytes,
    |n| POOL_TOKIO_BUILT.checkout(n),
    {
        fn idle_tick(&'static self) -> &'static str {
            POOL_TOKIO_BUILT.maintain();
            "BytesPool::maintain()"
        }
        fn trim(&'static self) -> &'static str {
            POOL_TOKIO_BUILT.trim();
            "BytesPool::trim()"
        }
        fn retained_bytes(&'static self) -> Option<u64> {
            Some(POOL_TOKIO_BUILT.stats().retained_bytes())
        }
    }
);

// ---------------------------------------------------------------- fresh

/// Fresh `BytesMut::with_capacity(n)` per checkout, dropped on return.
#[derive(Debug)]
pub struct FreshBytesMut;

guard_contender!(FreshBytesMut, "fresh-bytesmut", BytesMut, |n| {
    BytesMut::with_capacity(n)
});

/// Fresh zeroed `vec![0u8; n]` per checkout (what Go's `make` does).
#[derive(Debug)]
pub struct FreshVec;

impl Contender for FreshVec {
    type Buf = Vec<u8>;
    const NAME: &'static str = "fresh-vec-zeroed";
    #[inline(always)]
    fn checkout(&'static self, n: usize) -> Vec<u8> {
        vec![0u8; n]
    }
    #[inline(always)]
    fn write(&'static self, buf: &mut Vec<u8>, n: usize, full: bool) {
        if full {
            buf[..n].fill(0xa5);
        } else {
            buf[..PAYLOAD.len()].copy_from_slice(&PAYLOAD);
            buf[n - 1] = 1;
        }
        black_box(buf.as_ptr());
    }
    #[inline(always)]
    fn read(&'static self, buf: &Vec<u8>) -> u8 {
        black_box(buf[0])
    }
    #[inline(always)]
    fn put(&'static self, buf: Vec<u8>) {
        drop(buf)
    }
}

// ---------------------------------------------------------------- the floor

/// A floor stack: the buffers of one thread, in a destructor-free
/// thread-local (`ManuallyDrop`), so that reaching it is a plain TLS access
/// with no lazy destructor registration, which could unwind (and would then
/// force the buffer being pushed out of registers into memory, to drop it).
/// [`FloorExit`] frees the buffers at thread exit.
type FloorStack = ManuallyDrop<Vec<BytesMut>>;

thread_local! {
    static FLOOR: RefCell<FloorStack> = const { RefCell::new(ManuallyDrop::new(Vec::new())) };
    static RAW_FLOOR: UnsafeCell<FloorStack> = const { UnsafeCell::new(ManuallyDrop::new(Vec::new())) };
    static FLOOR_EXIT: FloorExit = const { FloorExit };
}

/// Frees both floor stacks' buffers when its thread exits (armed by every
/// floor checkout, before a buffer is in hand).
struct FloorExit;

impl Drop for FloorExit {
    fn drop(&mut self) {
        let _ = FLOOR.try_with(|s| {
            if let Ok(mut stack) = s.try_borrow_mut() {
                drop(std::mem::take(&mut **stack));
            }
        });
        // SAFETY: this thread's stack; no floor operation is running on
        // this thread while its thread-locals are destroyed.
        let _ = RAW_FLOOR.try_with(|s| drop(std::mem::take(unsafe { &mut **s.get() })));
    }
}

#[inline(always)]
fn arm_floor_exit() {
    FLOOR_EXIT.with(|_| {});
}

/// Pushes onto a floor stack, growing it out of line first if full: no
/// panic path while `buf` is alive (see [`write_bytes`]).
#[inline(always)]
fn push(stack: &mut Vec<BytesMut>, buf: BytesMut) {
    if stack.len() == stack.capacity() {
        grow(stack);
    }
    let len = stack.len();
    // SAFETY: `len < capacity` (ensured just above: `grow` leaves room or
    // aborts), so slot `len` is inside the allocation; `set_len` makes the
    // vector the owner of the value written there.
    unsafe {
        stack.as_mut_ptr().add(len).write(buf);
        stack.set_len(len + 1);
    }
}

/// Makes room in a full floor stack; `extern "C"`: aborts rather than
/// unwinds.
#[cold]
#[inline(never)]
extern "C" fn grow(stack: &mut Vec<BytesMut>) {
    stack.reserve(64);
}

/// The `RefCell` floor stack was re-entered: a broken adapter.
#[cold]
#[inline(never)]
extern "C" fn floor_broken() -> ! {
    eprintln!("the thread-local floor stack was re-entered");
    std::process::abort()
}

/// The floor: a bare `thread_local!` `RefCell<Vec<BytesMut>>` stack with no
/// bounds, no statistics and no cross-thread care (a buffer returns to the
/// stack of whichever thread returns it).
#[derive(Debug)]
pub struct ThreadLocalFloor;

impl Contender for ThreadLocalFloor {
    type Buf = BytesMut;
    const NAME: &'static str = "tls-floor";
    #[inline(always)]
    fn checkout(&'static self, n: usize) -> BytesMut {
        arm_floor_exit();
        // No `fit`: the stack holds only buffers this adapter created at
        // the one size its process measures (the write checks it).
        FLOOR
            .with(|s| s.borrow_mut().pop())
            .unwrap_or_else(|| BytesMut::with_capacity(n))
    }
    #[inline(always)]
    fn write(&'static self, buf: &mut BytesMut, n: usize, full: bool) {
        write_bytes(buf, n, full)
    }
    #[inline(always)]
    fn read(&'static self, buf: &BytesMut) -> u8 {
        read_bytes(buf)
    }
    #[inline(always)]
    fn put(&'static self, mut buf: BytesMut) {
        buf.clear();
        // The cell's address, so that the closure does not capture the
        // buffer (a closure that does is not inlined).
        let cell: *const RefCell<FloorStack> = FLOOR.with(|s| s as *const _);
        // SAFETY: this thread's `FLOOR`, which lives as long as the thread;
        // the reference ends with this call.
        match unsafe { &*cell }.try_borrow_mut() {
            Ok(mut stack) => push(&mut stack, buf),
            Err(_) => floor_broken(),
        }
    }
}

/// This thread's [`ThreadLocalUnsafeCell`] stack. The pointer stays valid
/// for the life of the thread (thread-local storage never moves); only this
/// thread uses it, and no reference made from it outlives one pop or push.
#[inline(always)]
fn raw_floor() -> *mut Vec<BytesMut> {
    RAW_FLOOR.with(|s| {
        let stack: *mut FloorStack = s.get();
        stack.cast::<Vec<BytesMut>>()
    })
}

/// The lower floor: the same stack in an `UnsafeCell` (no borrow flag),
/// popped and pushed in place. What a thread-local cache costs with nothing
/// but the stack.
#[derive(Debug)]
pub struct ThreadLocalUnsafeCell;

impl Contender for ThreadLocalUnsafeCell {
    type Buf = BytesMut;
    const NAME: &'static str = "tls-unsafecell";
    #[inline(always)]
    fn checkout(&'static self, n: usize) -> BytesMut {
        arm_floor_exit();
        // No `fit`, as in `ThreadLocalFloor`.
        // SAFETY: see `raw_floor`: this thread's stack, alive, and no other
        // reference to it exists while this `&mut` does (nothing here
        // re-enters it).
        unsafe { (*raw_floor()).pop() }.unwrap_or_else(|| BytesMut::with_capacity(n))
    }
    #[inline(always)]
    fn write(&'static self, buf: &mut BytesMut, n: usize, full: bool) {
        write_bytes(buf, n, full)
    }
    #[inline(always)]
    fn read(&'static self, buf: &BytesMut) -> u8 {
        read_bytes(buf)
    }
    #[inline(always)]
    fn put(&'static self, mut buf: BytesMut) {
        buf.clear();
        // SAFETY: as in `checkout`.
        push(unsafe { &mut *raw_floor() }, buf);
    }
}

// ---------------------------------------------------------------- textbook pools

static MUTEX_VEC: Mutex<Vec<BytesMut>> = Mutex::new(Vec::new());

/// Textbook `Mutex<Vec<BytesMut>>` pool, bounded at 1024 buffers.
#[derive(Debug)]
pub struct MutexVec;

impl Contender for MutexVec {
    type Buf = BytesMut;
    const NAME: &'static str = "mutex-vec";
    #[inline(always)]
    fn checkout(&'static self, n: usize) -> BytesMut {
        let popped = MUTEX_VEC.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match popped {
            Some(buf) => fit(buf, n),
            None => BytesMut::with_capacity(n),
        }
    }
    #[inline(always)]
    fn write(&'static self, buf: &mut BytesMut, n: usize, full: bool) {
        write_bytes(buf, n, full)
    }
    #[inline(always)]
    fn read(&'static self, buf: &BytesMut) -> u8 {
        read_bytes(buf)
    }
    #[inline(always)]
    fn put(&'static self, mut buf: BytesMut) {
        buf.clear();
        let mut stack = MUTEX_VEC.lock().unwrap_or_else(|e| e.into_inner());
        if stack.len() < BOUNDED_POOL_CAPACITY {
            stack.push(buf);
        }
    }
}

static ARRAY_QUEUE: LazyLock<ArrayQueue<BytesMut>> =
    LazyLock::new(|| ArrayQueue::new(BOUNDED_POOL_CAPACITY));

/// crossbeam-queue `ArrayQueue<BytesMut>` pool of 1024 buffers; a return
/// to a full queue drops the buffer.
#[derive(Debug)]
pub struct ArrayQueuePool;

impl Contender for ArrayQueuePool {
    type Buf = BytesMut;
    const NAME: &'static str = "arrayqueue";
    #[inline(always)]
    fn checkout(&'static self, n: usize) -> BytesMut {
        match ARRAY_QUEUE.pop() {
            Some(buf) => fit(buf, n),
            None => BytesMut::with_capacity(n),
        }
    }
    #[inline(always)]
    fn write(&'static self, buf: &mut BytesMut, n: usize, full: bool) {
        write_bytes(buf, n, full)
    }
    #[inline(always)]
    fn read(&'static self, buf: &BytesMut) -> u8 {
        read_bytes(buf)
    }
    #[inline(always)]
    fn put(&'static self, mut buf: BytesMut) {
        buf.clear();
        let _ = ARRAY_QUEUE.push(buf);
    }
}

// ---------------------------------------------------------------- crates.io pools

static OBJECT_POOL: LazyLock<object_pool::Pool<BytesMut>> =
    LazyLock::new(|| object_pool::Pool::new(0, new_buf));

/// `object-pool` 0.6: `Pool::pull(fallback)`, `Reusable` guard (a mutex
/// around a `Vec`, unbounded). The buffer is cleared at checkout (the crate
/// has no reset hook).
#[derive(Debug)]
pub struct ObjectPool;

guard_contender!(
    ObjectPool,
    "object-pool",
    object_pool::Reusable<'static, BytesMut>,
    |n| {
        let mut g = OBJECT_POOL.pull(new_buf);
        g.clear();
        fit_mut(&mut g, n);
        g
    }
);

static LOCKFREE_LINEAR: LazyLock<lockfree_object_pool::LinearObjectPool<BytesMut>> =
    LazyLock::new(|| lockfree_object_pool::LinearObjectPool::new(new_buf, BytesMut::clear));

/// `lockfree-object-pool` 0.1: `LinearObjectPool::pull`, cleared on reset.
#[derive(Debug)]
pub struct LockfreeLinear;

guard_contender!(
    LockfreeLinear,
    "lockfree-linear",
    lockfree_object_pool::LinearReusable<'static, BytesMut>,
    |n| {
        let mut g = LOCKFREE_LINEAR.pull();
        fit_mut(&mut g, n);
        g
    }
);

static LOCKFREE_SPIN: LazyLock<lockfree_object_pool::SpinLockObjectPool<BytesMut>> =
    LazyLock::new(|| lockfree_object_pool::SpinLockObjectPool::new(new_buf, BytesMut::clear));

/// `lockfree-object-pool` 0.1: `SpinLockObjectPool::pull`, cleared on reset.
#[derive(Debug)]
pub struct LockfreeSpin;

guard_contender!(
    LockfreeSpin,
    "lockfree-spin",
    lockfree_object_pool::SpinLockReusable<'static, BytesMut>,
    |n| {
        let mut g = LOCKFREE_SPIN.pull();
        fit_mut(&mut g, n);
        g
    }
);

/// opool's allocator: creates at the runner's size, clears on return.
#[derive(Debug)]
pub struct OpoolAlloc;

impl opool::PoolAllocator<BytesMut> for OpoolAlloc {
    #[inline]
    fn allocate(&self) -> BytesMut {
        new_buf()
    }
    #[inline]
    fn reset(&self, obj: &mut BytesMut) {
        obj.clear();
    }
}

static OPOOL: LazyLock<opool::Pool<OpoolAlloc, BytesMut>> =
    LazyLock::new(|| opool::Pool::new(BOUNDED_POOL_CAPACITY, OpoolAlloc));

/// `opool` 0.1: the concurrent `Pool` (a bounded `ArrayQueue`) of 1024,
/// `get()` and its `RefGuard`. (Its `LocalPool` is `!Send` and cannot
/// cross threads or `.await`, so it is not a contender.)
#[derive(Debug)]
pub struct Opool;

guard_contender!(
    Opool,
    "opool",
    opool::RefGuard<'static, OpoolAlloc, BytesMut>,
    |n| {
        let mut g = OPOOL.get();
        fit_mut(&mut g, n);
        g
    }
);

/// A `BytesMut` slot in sharded-slab's pool.
///
/// The pool only hands out shared `Ref`s by key; the adapter's `Buf` is a
/// unique key (not `Clone`), and only its holder touches the buffer, so the
/// cell is never accessed from two places at once.
#[derive(Debug, Default)]
pub struct SlabBuf(UnsafeCell<BytesMut>);

// SAFETY: every access goes through the unique `SlabKey` that owns the slot
// (see `ShardedSlab`), so the `BytesMut` is reached by one thread at a time;
// `BytesMut` is `Send`.
unsafe impl Sync for SlabBuf {}

impl sharded_slab::Clear for SlabBuf {
    fn clear(&mut self) {
        self.0.get_mut().clear();
    }
}

static SHARDED_SLAB: LazyLock<sharded_slab::Pool<SlabBuf>> = LazyLock::new(sharded_slab::Pool::new);

/// The unique key of a checked-out sharded-slab slot.
#[derive(Debug)]
pub struct SlabKey(usize);

/// `sharded-slab` 0.1 `Pool`: `create()` (writes the slot through its
/// `RefMut`), `get(key)` to write and read, `clear(key)` to return: its
/// keyed usage.
#[derive(Debug)]
pub struct ShardedSlab;

impl Contender for ShardedSlab {
    type Buf = SlabKey;
    const NAME: &'static str = "sharded-slab";
    #[inline(always)]
    fn checkout(&'static self, n: usize) -> SlabKey {
        let Some(mut slot) = SHARDED_SLAB.create() else {
            panic!("sharded-slab pool is full");
        };
        fit_mut(slot.0.get_mut(), n);
        SlabKey(slot.key())
    }
    #[inline(always)]
    fn write(&'static self, buf: &mut SlabKey, n: usize, full: bool) {
        let Some(slot) = SHARDED_SLAB.get(buf.0) else {
            panic!("sharded-slab lost a checked-out key");
        };
        // SAFETY: `buf` is the unique key of this slot (see `SlabBuf`), and
        // we hold `&mut` to it: nobody else touches the cell now.
        let bytes = unsafe { &mut *slot.0.get() };
        write_bytes(bytes, n, full);
    }
    #[inline(always)]
    fn read(&'static self, buf: &SlabKey) -> u8 {
        let Some(slot) = SHARDED_SLAB.get(buf.0) else {
            panic!("sharded-slab lost a checked-out key");
        };
        // SAFETY: as in `write`; reading through the unique key's holder.
        read_bytes(unsafe { &*slot.0.get() })
    }
    #[inline(always)]
    fn put(&'static self, buf: SlabKey) {
        SHARDED_SLAB.clear(buf.0);
    }
}

// ---------------------------------------------------------------- dispatch

/// A workload to run on a contender chosen by name; see [`for_contender`].
pub trait Visit {
    /// What the workload returns.
    type Output;
    /// Runs the workload on `c`.
    fn visit<C: Contender>(self, c: &'static C) -> Self::Output;
}

/// Runs `v` on the contender called `name`; `None` for an unknown name.
pub fn for_contender<V: Visit>(name: &str, v: V) -> Option<V::Output> {
    Some(match name {
        "pool-core" => v.visit(&PoolCore),
        "pool-core-burst" => v.visit(&PoolCoreBurst),
        "pool-tokio" => v.visit(&PoolTokio),
        "pool-tokio-built" => v.visit(&PoolTokioBuilt),
        "tls-floor" => v.visit(&ThreadLocalFloor),
        "tls-unsafecell" => v.visit(&ThreadLocalUnsafeCell),
        "fresh-bytesmut" => v.visit(&FreshBytesMut),
        "fresh-vec-zeroed" => v.visit(&FreshVec),
        "sharded-slab" => v.visit(&ShardedSlab),
        "lockfree-linear" => v.visit(&LockfreeLinear),
        "lockfree-spin" => v.visit(&LockfreeSpin),
        "object-pool" => v.visit(&ObjectPool),
        "opool" => v.visit(&Opool),
        "mutex-vec" => v.visit(&MutexVec),
        "arrayqueue" => v.visit(&ArrayQueuePool),
        _ => return None,
    })
}
