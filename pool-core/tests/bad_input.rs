//! Every bad setting or request has a documented result: an error naming
//! the setting, or a plain unpooled allocation. Never a panic deep inside.

use pool_core::{BufferConfig, BufferPool, CheckoutError, PoolConfig, MAX_CLASS_SIZE};

fn setting(r: Result<(), pool_core::ConfigError>) -> &'static str {
    r.unwrap_err().setting()
}

#[test]
fn zero_and_inverted_limits_are_errors_naming_the_setting() {
    assert_eq!(
        setting(PoolConfig::new().thread_capacity(0).validate()),
        "thread_capacity"
    );
    assert_eq!(
        setting(PoolConfig::new().thread_capacity(usize::MAX).validate()),
        "thread_capacity"
    );
    assert_eq!(setting(PoolConfig::new().batch(0).validate()), "batch");
    assert_eq!(
        setting(
            PoolConfig::new()
                .decay_interval(std::time::Duration::ZERO)
                .validate()
        ),
        "decay_interval"
    );
    assert_eq!(
        setting(BufferConfig::new().min_class(0).validate()),
        "min_class"
    );
    assert_eq!(
        setting(BufferConfig::new().max_class(0).validate()),
        "max_class"
    );
    assert_eq!(
        setting(
            BufferConfig::new()
                .min_class(8192)
                .max_class(4096)
                .validate()
        ),
        "max_class"
    );
    assert_eq!(
        setting(BufferConfig::new().max_class(MAX_CLASS_SIZE * 2).validate()),
        "max_class"
    );
    assert_eq!(
        setting(BufferConfig::new().min_class(3000).validate()),
        "min_class"
    );
    assert_eq!(
        setting(BufferConfig::new().max_retained(1).validate()),
        "max_retained"
    );
    assert_eq!(
        setting(BufferConfig::new().thread_capacity(0).validate()),
        "thread_capacity"
    );
}

#[test]
fn a_batch_larger_than_the_capacity_is_an_error() {
    let err = PoolConfig::new()
        .thread_capacity(8)
        .batch(9)
        .validate()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid pool setting `batch` = 9: expected 1 ..= thread_capacity (8)"
    );
    assert_eq!(
        setting(BufferConfig::new().thread_capacity(8).batch(9).validate()),
        "batch"
    );
}

#[test]
fn messages_say_what_to_change() {
    let err = BufferConfig::new()
        .max_class(3 << 20)
        .validate()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid pool setting `max_class` = 3145728: expected a power of two from 1 to 1073741824 bytes (try 4194304)"
    );
    let err = BufferConfig::new()
        .min_class(4096)
        .max_class(1024)
        .validate()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid pool setting `max_class` = 1024: expected at least min_class (4096)"
    );
    let err = BufferConfig::new()
        .classes_per_doubling(5)
        .validate()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid pool setting `classes_per_doubling` = 5: expected 1, 2, 4 or 8 classes per power of two"
    );
    let pool = BufferPool::<Vec<u8>>::new();
    let err = pool
        .reconfigure(pool.config().classes_per_doubling(8))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid pool setting `classes_per_doubling` = 8: expected 4, the spacing this pool was \
         built with (it cannot change on a live pool: build a new pool)"
    );
}

#[test]
fn zero_depot_capacity_is_valid_and_shares_nothing() {
    let pool = BufferConfig::new()
        .depot_capacity(0)
        .thread_capacity(2)
        .batch(1)
        .build::<Vec<u8>>()
        .unwrap();
    let held: Vec<_> = (0..5).map(|_| pool.checkout(512)).collect();
    drop(held);
    let c = *pool.stats().class(512).unwrap();
    assert_eq!((c.retained_local, c.retained_depot), (2, 0));
    assert_eq!(c.discarded.full, 3);
}

#[test]
fn a_zero_byte_checkout_gets_the_smallest_class() {
    let pool = BufferPool::<Vec<u8>>::new();
    let b = pool.checkout(0);
    assert!(b.is_pooled());
    assert_eq!(b.capacity(), 512);
}

#[test]
fn above_the_largest_class_is_a_plain_unpooled_allocation() {
    let pool = BufferConfig::new()
        .max_class(4096)
        .build::<Vec<u8>>()
        .unwrap();
    let b = pool.checkout(4097);
    assert!(!b.is_pooled());
    assert_eq!(b.capacity(), 4097);
    drop(b);
    let s = pool.stats();
    assert_eq!((s.unpooled_checkouts, s.unpooled_returns), (1, 1));
    assert_eq!(s.misses(), 1);
    assert_eq!(s.retained_objects(), 0, "unpooled buffers are never kept");
}

#[test]
fn usize_max_is_an_error_with_try_and_a_documented_panic_without() {
    let pool = BufferPool::<Vec<u8>>::new();
    let err = pool.try_checkout(usize::MAX).unwrap_err();
    assert_eq!(
        err,
        CheckoutError::TooLarge {
            requested: usize::MAX
        }
    );
    assert!(err.to_string().contains("ask for less"));
    let r = std::panic::catch_unwind(|| drop(pool.checkout(usize::MAX)));
    assert!(r.is_err(), "checkout(usize::MAX) panics as documented");
    // The pool is still fine, and nothing was counted as outstanding.
    assert_eq!(pool.stats().outstanding(), 0);
    assert!(pool.try_checkout(100).is_ok());
}

#[test]
fn prewarm_of_a_size_above_the_range_does_nothing() {
    let pool = BufferConfig::new()
        .max_class(4096)
        .build::<Vec<u8>>()
        .unwrap();
    assert_eq!(pool.prewarm_class(1 << 20, 10), 0);
    assert_eq!(pool.prewarm_class(usize::MAX, 10), 0);
    assert_eq!(pool.prewarm_class(0, 3), 3);
}

/// `depot_capacity` is only a cap: a huge one (it validates) sizes no
/// bookkeeping up front (`usize::MAX` overflowed in the first push).
#[test]
fn a_huge_depot_capacity_is_only_a_cap() {
    let config = BufferConfig::new().depot_capacity(usize::MAX);
    let pool = config.build::<Vec<u8>>().expect("valid settings");
    assert_eq!(pool.prewarm_class(1 << 20, 1), 1);
    let held: Vec<_> = (0..256).map(|_| pool.checkout(512)).collect();
    drop(held);
    pool.flush_thread();
    assert_eq!(pool.stats().class(512).unwrap().retained_depot, 256);
}

/// `prewarm` stores up to the depot's bounds, in batches cut to the room
/// left, and makes nothing a class never retains: no buffer made for
/// nothing, no discard counted for what was never returned.
#[test]
fn prewarm_fills_to_the_bounds_and_counts_no_discards() {
    let pool = BufferConfig::new()
        .depot_capacity(10)
        .build::<Vec<u8>>()
        .expect("valid settings"); // class 4096: batches of 8
    assert_eq!(pool.prewarm_class(4096, 16), 10);
    let c = *pool.stats().class(4096).unwrap();
    assert_eq!((c.retained_depot, c.returns, c.discarded.full), (10, 0, 0));

    let pool = BufferConfig::new()
        .max_retained(64 << 10)
        .build::<Vec<u8>>()
        .expect("valid settings");
    let stored = pool.prewarm(1);
    let s = pool.stats();
    assert_eq!(s.total().discarded.full, 0, "{s}");
    assert_eq!(s.retained_objects(), stored as u64);
}
