//! Size classes: every request gets the smallest class that fits, the
//! classes are the documented sizes, and the waste counters add up.

use pool_core::{BufferConfig, BufferPool, Pool, MAX_CLASS_SIZE};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

/// The largest power of two strictly below `class` (the base of its
/// doubling); 0 for class 1.
fn base(class: usize) -> usize {
    if class <= 1 {
        0
    } else {
        1 << (usize::BITS - 1 - (class - 1).leading_zeros())
    }
}

/// Checks, for every request size `0..=max_class` of `config`, that the
/// pool picks the smallest class of at least the request (or the smallest
/// class), and that the classes are what the docs say.
fn check_every_size(config: BufferConfig) {
    let n = config.get_classes_per_doubling();
    let pool = config.build::<Vec<u8>>().unwrap();
    let classes = config.class_sizes().unwrap();
    assert_eq!(classes[0], config.get_min_class(), "min_class is a class");
    assert_eq!(
        *classes.last().unwrap(),
        config.get_max_class(),
        "max_class is a class"
    );
    for pair in classes.windows(2) {
        assert!(pair[0] < pair[1], "strictly increasing: {pair:?}");
    }
    for &c in &classes {
        // Whole steps of the doubling: 2^k + (j+1) * 2^k / n, or any size up
        // to 2n, where the steps are one byte.
        let b = base(c);
        let step = (b / n).max(1);
        assert_eq!((c - b) % step, 0, "class {c} is a whole step above {b}");
        if c.is_power_of_two() {
            assert_eq!(
                pool.class_size_for(c),
                Some(c),
                "powers of two map to themselves"
            );
        }
    }
    let mut next = 0; // index into `classes` of the class serving `size`
    for size in 0..=config.get_max_class() {
        while classes[next] < size {
            next += 1;
        }
        let class = classes[next];
        assert_eq!(
            pool.class_size_for(size),
            Some(class),
            "request {size}, n = {n}"
        );
        if size > config.get_min_class() {
            // Less than one step (1/n of the doubling's base) of waste.
            if base(class) >= n {
                assert!(
                    class - size < base(class) / n,
                    "request {size} in class {class}, n = {n}"
                );
            } else {
                assert_eq!(class, size, "one-byte steps up to 2n");
            }
        }
    }
    assert_eq!(pool.class_size_for(config.get_max_class() + 1), None);
}

#[test]
fn every_request_up_to_the_default_max_class_gets_the_smallest_class_that_fits() {
    for n in [1, 2, 4, 8] {
        check_every_size(BufferConfig::new().classes_per_doubling(n));
    }
}

#[test]
fn default_classes_are_four_per_doubling() {
    let classes = BufferConfig::new().class_sizes().unwrap();
    assert_eq!(
        &classes[..9],
        [512, 640, 768, 896, 1024, 1280, 1536, 1792, 2048]
    );
    assert_eq!(classes.len(), 11 * 4 + 1); // 512 B ..= 1 MiB
    let pool = BufferPool::<Vec<u8>>::new();
    for (request, class) in [
        (0, 512),
        (513, 640),
        (3000, 3072),
        (4096, 4096),
        (4097, 5120),
    ] {
        assert_eq!(
            pool.checkout(request).capacity(),
            class,
            "request {request}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 2 } else { 64 },
        rng_seed: RngSeed::Fixed(0x5eed_c1a5),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random ranges and spacings, every request size of the range (the
    /// ranges stay small so that each case checks all of them).
    #[test]
    fn the_smallest_class_that_fits_for_any_range(
        min_shift in 0u32..12,
        span in 0u32..6,
        p in 0u32..4,
    ) {
        check_every_size(
            BufferConfig::new()
                .min_class(1 << min_shift)
                .max_class(1 << (min_shift + span))
                .classes_per_doubling(1 << p),
        );
    }

    /// Large requests, sampled: the same rule up to 1 GiB.
    #[test]
    fn the_smallest_class_that_fits_up_to_the_largest_class(
        size in 1usize..=MAX_CLASS_SIZE,
        p in 0u32..4,
    ) {
        let n = 1usize << p;
        let config = BufferConfig::new().min_class(1).max_class(MAX_CLASS_SIZE).classes_per_doubling(n);
        let pool = config.build::<Vec<u8>>().unwrap();
        let class = pool.class_size_for(size).unwrap();
        let b = base(class);
        prop_assert!(class >= size);
        prop_assert!((class - size) * n <= b, "{size} -> {class}");
        // The class below serves less than `size`.
        if class > 1 {
            let below = pool.class_size_for(class - ((b / n).max(1))).unwrap();
            prop_assert!(below < size || below == class, "{size} -> {class}, below {below}");
        }
    }
}

#[test]
fn spacing_is_checked_and_fixed_for_a_live_pool() {
    for bad in [0, 3, 16] {
        let err = BufferConfig::new()
            .classes_per_doubling(bad)
            .validate()
            .unwrap_err();
        assert_eq!(err.setting(), "classes_per_doubling");
        assert!(err.to_string().contains("1, 2, 4 or 8"), "{err}");
    }
    let pool = BufferPool::<Vec<u8>>::new();
    let err = pool
        .reconfigure(pool.config().classes_per_doubling(1))
        .unwrap_err();
    assert_eq!(err.setting(), "classes_per_doubling");
    assert!(err.to_string().contains("build a new pool"), "{err}");
    assert_eq!(
        pool.config().get_classes_per_doubling(),
        4,
        "nothing changed"
    );
    // A range change keeps the classes it shares with the old range.
    drop(pool.checkout(1280));
    pool.reconfigure(pool.config().min_class(1024).max_class(4096))
        .unwrap();
    assert_eq!(pool.checkout(1100).capacity(), 1280);
    assert_eq!(pool.stats().class(1280).unwrap().local_hits, 1);
}

#[test]
fn waste_counts_what_was_requested_and_lent() {
    let pool = BufferPool::<Vec<u8>>::new();
    // Misses, local hits, a depot hit, an uncached take and an unpooled
    // request, each counted once.
    let requests = [100, 512, 600, 640, 3000, 3072, 4097];
    for &r in &requests {
        drop(pool.checkout(r));
    }
    pool.prewarm_class(8192, 4);
    let (buf, ticket) = pool.take_uncached(7500);
    pool.give_back(buf, ticket);
    let big = pool.checkout(4 << 20);
    drop(big);

    let s = pool.stats();
    let class = |size| *s.class(size).unwrap();
    let expect = [
        (512, 100 + 512, 2),
        (640, 600 + 640, 2),
        (3072, 3000 + 3072, 2),
        (5120, 4097, 1),
        (8192, 7500, 1),
    ];
    for (size, requested, checkouts) in expect {
        let c = class(size);
        assert_eq!(c.checkouts, checkouts, "class {size}");
        assert_eq!(c.requested_bytes, requested, "class {size}");
        assert_eq!(c.lent_bytes, checkouts * size as u64, "class {size}");
        let waste = (checkouts * size as u64) as f64 / requested as f64 - 1.0;
        assert!(
            (c.waste() - waste).abs() < 1e-12,
            "class {size}: {}",
            c.waste()
        );
    }
    let requested: u64 = expect.iter().map(|e| e.1).sum();
    let lent: u64 = expect.iter().map(|e| e.2 * e.0 as u64).sum();
    assert_eq!(
        (s.total().requested_bytes, s.total().lent_bytes),
        (requested, lent)
    );
    assert!((s.waste() - (lent as f64 / requested as f64 - 1.0)).abs() < 1e-12);
    assert_eq!(
        s.unpooled_checkouts, 1,
        "the 4 MiB request is not in the waste"
    );
    assert!(s
        .to_string()
        .contains(&format!("waste_pct {:.1}", s.waste() * 100.0)));

    // A generic pool lends no bytes.
    let strings: Pool<String> = Pool::new();
    drop(strings.checkout());
    assert_eq!(strings.stats().total().requested_bytes, 0);
    assert_eq!(strings.stats().waste(), 0.0);
}

#[test]
fn power_of_two_classes_come_back_with_one_per_doubling() {
    let pool = BufferConfig::new()
        .classes_per_doubling(1)
        .build::<Vec<u8>>()
        .unwrap();
    assert_eq!(pool.checkout(3000).capacity(), 4096);
    assert_eq!(pool.checkout(513).capacity(), 1024);
    drop(pool.checkout(3000));
    assert_eq!(pool.stats().class(4096).unwrap().requested_bytes, 6000);
}

#[test]
fn a_ticket_given_to_another_pool_never_lands_in_a_class_it_does_not_fit() {
    use pool_core::{Discard, Returned};
    let four = BufferConfig::new().min_class(1).build::<Vec<u8>>().unwrap();
    let pow2 = BufferConfig::new()
        .min_class(1)
        .classes_per_doubling(1)
        .build::<Vec<u8>>()
        .unwrap();
    // Index 9 is 12 B with four classes per doubling, 512 B with one.
    let (buf, ticket) = four.take(12);
    assert_eq!((buf.capacity(), ticket.class_size()), (12, Some(12)));
    // Dropped, not kept in the 512 B class (a 12 B `Vec` cannot reclaim
    // 512 bytes).
    assert_eq!(
        pow2.give_back(buf, ticket),
        Returned::Discarded(Discard::Shared)
    );
    // An index past the other pool's classes is treated as unpooled.
    let (buf, ticket) = four.take(1 << 20);
    assert_eq!(
        pow2.give_back(buf, ticket),
        Returned::Discarded(Discard::Unpooled)
    );
    assert_eq!(pow2.stats().retained_objects(), 0);
}

/// A thread keeps at most `thread_bytes` in all large classes together
/// (those whose share of a doubling's `thread_bytes` is below one buffer),
/// or the one buffer it just returned: returning one buffer of each large
/// class keeps the last (1 MiB) and sends the rest to the depot, where
/// any thread finds them. A loop on one large buffer still hits locally.
#[test]
fn large_classes_keep_thread_bytes_in_all_or_the_buffer_just_returned() {
    let pool = BufferPool::<Vec<u8>>::new();
    let config = pool.config();
    let share = config.get_thread_bytes() / config.get_classes_per_doubling();
    let large: Vec<usize> = config
        .class_sizes()
        .unwrap()
        .into_iter()
        .filter(|&c| c > share)
        .collect();
    assert_eq!(large.len(), 16, "80 KiB ..= 1 MiB");
    assert!(large.iter().all(|&c| config.class_thread_capacity(c) == 1));
    std::thread::scope(|s| {
        s.spawn(|| {
            let held: Vec<_> = large.iter().map(|&c| pool.checkout(c)).collect();
            drop(held);
            let stats = pool.stats();
            let (mut local, mut depot) = (0, 0);
            for &c in &large {
                let class = stats.class(c).unwrap();
                local += class.retained_local as usize * c;
                depot += class.retained_depot;
            }
            assert_eq!(local, 1 << 20, "the 1 MiB buffer, returned last\n{stats}");
            assert_eq!(depot, 15, "{stats}");
            assert!(local <= config.thread_bytes_bound());
            for _ in 0..3 {
                drop(pool.checkout(1 << 20));
            }
            let hits = pool.stats().class(1 << 20).unwrap().local_hits;
            assert_eq!(hits, 3, "a loop on one large buffer hits locally");
            // Smaller large buffers fit beside each other within thread_bytes.
            drop(pool.checkout(80 << 10));
            drop(pool.checkout(96 << 10));
            let stats = pool.stats();
            let kept: Vec<_> = [80 << 10, 96 << 10, 1 << 20]
                .iter()
                .map(|&c| stats.class(c).unwrap().retained_local)
                .collect();
            assert_eq!(kept, [1, 1, 0], "80 + 96 KiB within 256 KiB\n{stats}");
        });
    });
}

/// A miss whose class has nothing idle takes an idle buffer of one of the
/// next `fallback_classes` classes (the nearest first, from this thread's
/// cache or the depot), counted in that class, before it allocates; past
/// them, or with the fallback off, it allocates a buffer of its own class.
#[test]
fn a_miss_takes_an_idle_buffer_of_the_next_classes_before_allocating() {
    // 2560, 3072, 3584, 4096, 5120: 4096 is two classes above 3072.
    let pool = BufferConfig::new().build::<Vec<u8>>().unwrap();
    assert_eq!(BufferConfig::new().get_fallback_classes(), 2);
    assert_eq!(pool.prewarm_class(5120, 1), 1); // three classes up: unused
    assert_eq!(pool.prewarm_class(4096, 1), 1);
    assert_eq!(pool.prewarm_class(3584, 1), 1);
    let a = pool.checkout(3000);
    assert_eq!(a.capacity(), 3584, "the nearest larger class first");
    let b = pool.checkout(3000);
    assert_eq!(b.capacity(), 4096);
    let c = pool.checkout(3000);
    assert_eq!(c.capacity(), 3072, "5120 is past the fallback: allocated");
    let stats = pool.stats();
    let class = |size| *stats.class(size).unwrap();
    assert_eq!(
        (class(3072).checkouts, class(3072).misses),
        (1, 1),
        "only the allocation counts in the requested class"
    );
    for size in [3584, 4096] {
        let s = class(size);
        assert_eq!((s.checkouts, s.depot_hits), (1, 1), "class {size}");
        assert_eq!(
            s.requested_bytes, 3000,
            "class {size}: its waste counts the request"
        );
        assert_eq!(s.lent_bytes, size as u64, "class {size}");
    }
    assert_eq!(class(5120).retained_depot, 1);
    drop((a, b, c));
    let stats = pool.stats();
    assert_eq!(stats.outstanding(), 0);
    // Each went back to the class it belongs to, here in this thread.
    for size in [3072, 3584, 4096] {
        assert_eq!(stats.class(size).unwrap().retained_local, 1, "class {size}");
    }

    // This thread's cache of a larger class serves too; and the fallback
    // off, a miss allocates its own class even beside idle larger buffers.
    let pool = BufferConfig::new().build::<Vec<u8>>().unwrap();
    drop(pool.checkout(3500));
    assert_eq!(pool.checkout(3000).capacity(), 3584);
    let exact = BufferConfig::new()
        .fallback_classes(0)
        .build::<Vec<u8>>()
        .unwrap();
    assert_eq!(exact.prewarm_class(3584, 1), 1);
    drop(exact.checkout(3584)); // the prewarmed one, now in this thread
    assert_eq!(exact.checkout(3000).capacity(), 3072);
    assert_eq!(exact.stats().class(3584).unwrap().retained_local, 1);
}

/// A thread that keeps no cache (`take_uncached`) falls back as well, and
/// the batch it took from the larger class's depot goes back at once.
#[test]
fn an_uncached_miss_falls_back_and_keeps_nothing() {
    let pool = BufferConfig::new().batch(4).build::<Vec<u8>>().unwrap();
    assert_eq!(pool.prewarm_class(3584, 4), 4);
    let (buf, ticket) = pool.take_uncached(3000);
    assert_eq!((buf.capacity(), ticket.class_size()), (3584, Some(3584)));
    let class = *pool.stats().class(3584).unwrap();
    assert_eq!((class.retained_local, class.retained_depot), (0, 3));
    pool.give_back(buf, ticket);
    assert_eq!(pool.stats().outstanding(), 0);
}

/// The default fallback never lends more than 1.5x the missed class, even
/// among the smallest classes, which are a byte apart (1, 2, 3, 4, 5, ...:
/// two classes above 1 is 3); a depth set explicitly is taken as set.
#[test]
fn the_default_fallback_stops_at_one_and_a_half_times_the_class() {
    let pool = BufferConfig::new()
        .min_class(1)
        .max_class(64)
        .build::<Vec<u8>>()
        .unwrap();
    let sizes = BufferConfig::new()
        .min_class(1)
        .max_class(64)
        .class_sizes()
        .unwrap();
    for (i, &class) in sizes.iter().enumerate() {
        // Everything above this class idle, nothing of the class itself.
        let above = &sizes[i + 1..];
        for &size in above {
            pool.prewarm_class(size, 1);
        }
        let lent = pool.checkout(class).capacity();
        assert!(
            2 * lent <= 3 * class,
            "class {class} lent a {lent}-byte buffer"
        );
        pool.trim();
    }
    // 1 -> 2 would be 2x: allocated; 4 -> 6 is 1.5x: served.
    pool.prewarm_class(2, 1);
    assert_eq!(pool.checkout(1).capacity(), 1);
    pool.prewarm_class(6, 1);
    assert_eq!(pool.checkout(4).capacity(), 6);

    let deep = BufferConfig::new()
        .min_class(1)
        .max_class(64)
        .fallback_classes(2)
        .build::<Vec<u8>>()
        .unwrap();
    deep.prewarm_class(3, 1);
    assert_eq!(
        deep.checkout(1).capacity(),
        3,
        "set explicitly: two classes up"
    );
}
