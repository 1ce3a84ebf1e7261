//! Each `Buffer` hook runs once per return, and the fast put is tried once
//! (issue 16): a buffer returned into a full cache is cleared once and,
//! being exactly the allocation lent, never reclaimed; one that grew is
//! cleared once and reclaimed once.

use std::cell::Cell;

use pool_core::{Buffer, BufferConfig, BufferPool, Returned};

thread_local! {
    static CLEARS: Cell<usize> = const { Cell::new(0) };
    static RECLAIMS: Cell<usize> = const { Cell::new(0) };
}

/// A `Vec<u8>` that counts the hooks a return runs on it.
struct Counting(Vec<u8>);

impl Buffer for Counting {
    fn with_capacity(capacity: usize) -> Self {
        Counting(Vec::with_capacity(capacity))
    }
    fn capacity(&self) -> usize {
        self.0.capacity()
    }
    fn as_ptr(&self) -> *const u8 {
        self.0.as_ptr()
    }
    fn clear(&mut self) {
        CLEARS.with(|c| c.set(c.get() + 1));
        self.0.clear();
    }
    fn reclaim(&mut self, class_size: usize) -> bool {
        RECLAIMS.with(|c| c.set(c.get() + 1));
        self.0.clear();
        self.0.capacity() >= class_size
    }
    fn zero(&mut self) {
        self.0.clear();
        self.0.resize(self.0.capacity(), 0);
        self.0.clear();
    }
}

/// The hooks run since the last call: (clears, reclaims).
fn hooks() -> (usize, usize) {
    (
        CLEARS.with(|c| c.replace(0)),
        RECLAIMS.with(|c| c.replace(0)),
    )
}

/// A pool whose thread cache holds `CAP` buffers of a class, filled: the
/// next return of that class finds no room.
const CAP: usize = 2;

fn full_cache() -> (BufferPool<Counting>, Vec<(Counting, pool_core::Ticket)>) {
    let pool = BufferConfig::new()
        .thread_capacity(CAP)
        .batch(1)
        .build::<Counting>()
        .expect("valid settings");
    let out: Vec<_> = (0..=CAP).map(|_| pool.take(4096)).collect();
    (pool, out)
}

#[test]
fn a_return_into_a_full_cache_clears_once_and_never_reclaims() {
    let (pool, mut out) = full_cache();
    let last = out.pop().expect("CAP + 1 buffers");
    for (buf, ticket) in out {
        assert_eq!(pool.give_back(buf, ticket), Returned::Kept);
    }
    let class = *pool.stats().class(4096).unwrap();
    assert_eq!(class.retained_local, CAP as u64, "the cache is full");
    hooks();

    let (buf, ticket) = last;
    assert_eq!(pool.give_back(buf, ticket), Returned::Kept);
    assert_eq!(
        hooks(),
        (1, 0),
        "(clears, reclaims) of one return into a full cache"
    );
}

#[test]
fn a_guard_dropped_into_a_full_cache_clears_once_and_never_reclaims() {
    let pool = BufferConfig::new()
        .thread_capacity(CAP)
        .batch(1)
        .build::<Counting>()
        .expect("valid settings");
    let guards: Vec<_> = (0..=CAP).map(|_| pool.checkout(4096)).collect();
    let mut guards = guards.into_iter();
    let last = guards.next_back().expect("CAP + 1 guards");
    drop(guards);
    hooks();
    drop(last);
    assert_eq!(
        hooks(),
        (1, 0),
        "(clears, reclaims) of one drop into a full cache"
    );
    assert_eq!(pool.stats().outstanding(), 0);
}

#[test]
fn a_grown_buffer_is_cleared_once_and_reclaimed_once() {
    let pool = BufferPool::<Counting>::new();
    drop(pool.checkout(4096)); // this thread's cache exists
    let (mut buf, ticket) = pool.take(4096);
    buf.0.reserve(64 << 10); // not the allocation lent
    hooks();
    assert!(matches!(
        pool.give_back(buf, ticket),
        Returned::Discarded(_)
    ));
    assert_eq!(hooks(), (1, 1), "(clears, reclaims) of one grown return");
}
