//! Bad input, fuzzed: random builder settings (valid and not), then random
//! sequences of operations on several threads at once: checkouts of any
//! size (0, class boundaries, above the largest class, `usize::MAX` and
//! `isize::MAX + 1` through `try_checkout`), writes, splits, freezes,
//! clones, reserves past the class, detaches, reconfigurations (valid and
//! not), trims, decay and flushes.
//!
//! Checked: no panic (every operation used here is documented not to panic
//! for the inputs given); no aliasing (the memory range of every live
//! buffer, split part and frozen clone is registered, and a checkout that
//! overlaps one is a failure; each holder fills its memory with its own tag
//! and checks it is unchanged before it lets go); settings refused leave the
//! pool unchanged; the books balance when every thread is done.
//!
//! Cases: `PROPTEST_CASES` (default 128). The long run recorded in
//! RELIABILITY.md is `PROPTEST_CASES=50000 cargo test --release -p pool-tokio --test fuzz_ops -- --nocapture`.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pool_core::BufferConfig;
use pool_tokio::{BuildError, BytesPool, TryCheckoutError};
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};

const THREADS: usize = 3;

/// Settings names a refused configuration may blame.
const SETTINGS: [&str; 10] = [
    "min_class",
    "max_class",
    "classes_per_doubling",
    "thread_capacity",
    "thread_bytes",
    "batch",
    "depot_capacity",
    "depot_bytes",
    "max_retained",
    "decay_interval",
];

#[derive(Debug, Clone)]
struct Settings {
    min_class: usize,
    max_class: usize,
    /// Mostly the default 4; a reconfigure to another spacing is refused.
    classes_per_doubling: usize,
    thread_capacity: usize,
    thread_bytes: usize,
    batch: Option<usize>,
    depot_capacity: usize,
    depot_bytes: usize,
    max_retained: Option<usize>,
    zero_on_return: bool,
    decay_ms: u64,
    /// `fallback_classes`: mostly the default (half a doubling).
    fallback: Option<usize>,
}

impl Settings {
    fn config(&self) -> BufferConfig {
        let mut c = BufferConfig::new()
            .min_class(self.min_class)
            .max_class(self.max_class)
            .classes_per_doubling(self.classes_per_doubling)
            .thread_capacity(self.thread_capacity)
            .thread_bytes(self.thread_bytes)
            .depot_capacity(self.depot_capacity)
            .depot_bytes(self.depot_bytes)
            .zero_on_return(self.zero_on_return)
            .decay_interval(Duration::from_millis(self.decay_ms));
        if let Some(b) = self.batch {
            c = c.batch(b);
        }
        if let Some(m) = self.max_retained {
            c = c.max_retained(m);
        }
        if let Some(f) = self.fallback {
            c = c.fallback_classes(f);
        }
        c
    }
}

/// A class size, sometimes not a power of two, sometimes out of range.
fn class() -> impl Strategy<Value = usize> {
    prop_oneof![
        40 => (0u32..=16).prop_map(|s| 1usize << s),
        1 => Just(0usize),
        1 => Just(3000usize),
        1 => Just(1usize << 31),
        1 => Just(usize::MAX),
    ]
}

/// Settings, about one in three refused (one bad value, or a combination
/// that does not hold together).
fn settings() -> impl Strategy<Value = Settings> {
    (
        (class(), 0u32..5, class(), prop::bool::weighted(0.05)),
        prop_oneof![30 => 1usize..80, 1 => Just(0usize), 1 => Just(70_000usize)],
        prop_oneof![Just(0usize), 1usize..(1 << 20)],
        prop_oneof![8 => Just(None), 2 => (1usize..8).prop_map(Some), 1 => (0usize..100).prop_map(Some)],
        0usize..300,
        0usize..(16 << 20),
        prop_oneof![
            10 => Just(None),
            1 => prop_oneof![Just(0usize), 1usize..(4 << 20), Just(usize::MAX)].prop_map(Some)
        ],
        any::<bool>(),
        prop_oneof![30 => 1u64..50, 1 => Just(0u64)],
        prop_oneof![12 => Just(4usize), 1 => Just(1usize), 1 => Just(2usize), 1 => Just(8usize), 1 => Just(3usize)],
        prop_oneof![
            6 => Just(None),
            1 => Just(Some(0usize)),
            1 => (1usize..6).prop_map(Some),
            1 => Just(Some(usize::MAX))
        ],
    )
        .prop_map(
            |(
                (min_class, up, other_max, independent),
                thread_capacity,
                thread_bytes,
                batch,
                depot_capacity,
                depot_bytes,
                max_retained,
                zero_on_return,
                decay_ms,
                classes_per_doubling,
                fallback,
            )| Settings {
                min_class,
                classes_per_doubling,
                max_class: if independent {
                    other_max
                } else {
                    min_class.checked_shl(up).unwrap_or(min_class)
                },
                thread_capacity,
                thread_bytes,
                batch,
                depot_capacity,
                depot_bytes,
                max_retained,
                zero_on_return,
                decay_ms,
                fallback,
            },
        )
}

/// Any size: zero, around class boundaries, above every class, impossible.
fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        2 => Just(0usize),
        6 => (0u32..=18, -1isize..=1).prop_map(|(s, d)| ((1isize << s) + d).max(0) as usize),
        6 => 0usize..(300 << 10),
        1 => (1usize << 20)..(2 << 20),
        1 => Just(usize::MAX),
        1 => Just(isize::MAX as usize + 1),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    TryCheckout(usize),
    /// Plain checkout, never above 2 MiB (larger requests are for
    /// `try_checkout`; `checkout` documents its panic past `isize::MAX`).
    Checkout(usize),
    Write(usize, usize),
    Split(usize, usize),
    Freeze(usize),
    CloneFrozen(usize),
    Reserve(usize, usize),
    DropGuard(usize),
    Detach(usize),
    Release(usize),
    Reconfigure(Settings),
    Trim,
    Maintain,
    Flush,
    Prewarm(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => size().prop_map(Op::TryCheckout),
        4 => (0usize..(2 << 20)).prop_map(Op::Checkout),
        4 => (any::<usize>(), 0usize..5000).prop_map(|(i, n)| Op::Write(i, n)),
        3 => (any::<usize>(), any::<usize>()).prop_map(|(i, a)| Op::Split(i, a)),
        2 => any::<usize>().prop_map(Op::Freeze),
        1 => any::<usize>().prop_map(Op::CloneFrozen),
        2 => (any::<usize>(), 0usize..(200 << 10)).prop_map(|(i, n)| Op::Reserve(i, n)),
        1 => any::<usize>().prop_map(Op::DropGuard),
        1 => any::<usize>().prop_map(Op::Detach),
        4 => any::<usize>().prop_map(Op::Release),
        1 => settings().prop_map(Op::Reconfigure),
        1 => Just(Op::Trim),
        1 => Just(Op::Maintain),
        1 => Just(Op::Flush),
        1 => (0usize..(256 << 10), 0usize..8).prop_map(|(s, n)| Op::Prewarm(s, n)),
    ]
}

/// The memory each live handle can see (`ptr .. ptr + capacity`), by
/// start, with the holder that owns the handle.
#[derive(Default)]
struct Live(Mutex<BTreeMap<usize, (usize, u64)>>);

impl Live {
    /// Registers `r` for `owner`. A buffer the pool handed out again
    /// (`reused`) must not overlap memory a live handle of another holder
    /// can see: that would be two holders sharing bytes. Other ranges (new
    /// allocations, views that moved) may overlap an entry another thread
    /// freed an instant ago (a `reserve` that reallocated) and has not
    /// unregistered yet; such stale entries are replaced.
    fn add(&self, r: Range<usize>, owner: u64, reused: bool) {
        if r.is_empty() {
            return;
        }
        let mut map = self.0.lock().unwrap();
        while let Some((&start, &(end, other))) = map.range(..r.end).next_back() {
            if end <= r.start {
                break;
            }
            assert!(
                !reused || other == owner,
                "aliasing: {r:x?} handed to holder {owner} overlaps {:x?} seen by holder {other}",
                start..end
            );
            map.remove(&start);
        }
        map.insert(r.start, (r.end, owner));
    }

    fn remove(&self, r: &Range<usize>, owner: u64) {
        let mut map = self.0.lock().unwrap();
        if map.get(&r.start).is_some_and(|&(_, o)| o == owner) {
            map.remove(&r.start);
        }
    }
}

/// Everything one checkout became: the guard, parts split off it, frozen
/// clones, and the memory each can see.
struct Holder {
    tag: u8,
    id: u64,
    guard: Option<pool_tokio::PooledBytes>,
    parts: Vec<BytesMut>,
    frozen: Vec<Bytes>,
    views: Vec<Range<usize>>,
}

fn view(ptr: *const u8, len: usize) -> Range<usize> {
    ptr as usize..ptr as usize + len
}

impl Holder {
    fn check(&self) {
        let ok = |s: &[u8]| s.iter().all(|&b| b == self.tag);
        if let Some(g) = &self.guard {
            assert!(ok(g), "holder {} guard changed under it", self.id);
        }
        for p in &self.parts {
            assert!(ok(p), "holder {} split part changed under it", self.id);
        }
        for f in &self.frozen {
            assert!(ok(f), "holder {} frozen bytes changed under it", self.id);
        }
    }

    /// Unregisters every view (before a handle is dropped: once it is, its
    /// memory may be handed out again).
    fn forget_views(&mut self, live: &Live) {
        for r in self.views.drain(..) {
            live.remove(&r, self.id);
        }
    }

    /// Registers the views of the handles held now.
    fn refresh(&mut self, live: &Live) {
        self.forget_views(live);
        let mut views: Vec<Range<usize>> = self
            .parts
            .iter()
            .map(|p| view(p.as_ptr(), p.capacity()))
            .collect();
        views.extend(self.frozen.iter().map(|f| view(f.as_ptr(), f.len())));
        if let Some(g) = &self.guard {
            views.push(view(g.as_ptr(), g.capacity()));
        }
        for v in views {
            if !v.is_empty() {
                live.add(v.clone(), self.id, false);
                self.views.push(v);
            }
        }
    }

    fn release(mut self, live: &Live) {
        self.check();
        self.forget_views(live);
        drop(self);
    }
}

fn run_thread(pool: BytesPool, ops: Vec<Op>, live: Arc<Live>, base: u64) {
    let mut holders: Vec<Holder> = Vec::new();
    let mut next_id = base;
    let pick = |n: usize, i: usize| if n == 0 { None } else { Some(i % n) };
    for op in ops {
        count(&TALLY.operations);
        match op {
            Op::TryCheckout(n) | Op::Checkout(n) => {
                let overdrafts = pool.budget().map(|b| b.overdrafts);
                let got = match op {
                    Op::TryCheckout(_) => match pool.try_checkout(n) {
                        Ok(g) => Some(g),
                        Err(e) => {
                            match e {
                                TryCheckoutError::TooLarge { requested, limit } => {
                                    count(&TALLY.too_large);
                                    assert_eq!(requested, n);
                                    assert!(n > limit);
                                }
                                TryCheckoutError::ExceedsBudget { budget, .. }
                                | TryCheckoutError::BudgetExhausted { budget, .. } => {
                                    count(&TALLY.budget_refused);
                                    assert!(pool.budget().is_some_and(|b| b.limit == budget));
                                }
                                other => panic!("undocumented error {other:?}"),
                            }
                            assert!(!e.to_string().is_empty());
                            None
                        }
                    },
                    _ => Some(pool.checkout(n)),
                };
                if let Some(g) = got {
                    count(&TALLY.checkouts);
                    assert!(g.is_empty(), "a checked-out buffer is not empty");
                    assert!(g.capacity() >= n, "{} < {n}", g.capacity());
                    // A charged pooled buffer is charged what it lends,
                    // unless the difference was overdrawn (counted).
                    if let (Some(class), true) = (g.class_size(), g.budget_charge() != 0) {
                        assert!(
                            g.budget_charge() == class
                                || pool.budget().map(|b| b.overdrafts) > overdrafts,
                            "charged {} for a {class}-byte buffer",
                            g.budget_charge()
                        );
                    }
                    next_id += 1;
                    let r = view(g.as_ptr(), g.capacity());
                    live.add(r.clone(), next_id, g.source().is_hit());
                    holders.push(Holder {
                        tag: next_id as u8,
                        id: next_id,
                        guard: Some(g),
                        parts: Vec::new(),
                        frozen: Vec::new(),
                        views: vec![r],
                    });
                }
            }
            Op::Write(i, n) => {
                if let Some(h) = pick(holders.len(), i).map(|i| &mut holders[i]) {
                    if let Some(g) = &mut h.guard {
                        g.extend_from_slice(&vec![h.tag; n]);
                    }
                    h.refresh(&live);
                }
            }
            Op::Split(i, at) => {
                if let Some(h) = pick(holders.len(), i).map(|i| &mut holders[i]) {
                    if let Some(g) = &mut h.guard {
                        let at = if g.is_empty() { 0 } else { at % (g.len() + 1) };
                        h.parts.push(g.split_to(at));
                    }
                    h.refresh(&live);
                }
            }
            Op::Freeze(i) => {
                if let Some(h) = pick(holders.len(), i).map(|i| &mut holders[i]) {
                    if let Some(g) = h.guard.take() {
                        h.frozen.push(g.freeze());
                    }
                    h.refresh(&live);
                }
            }
            Op::CloneFrozen(i) => {
                if let Some(h) = pick(holders.len(), i).map(|i| &mut holders[i]) {
                    if let Some(f) = h.frozen.first() {
                        let len = f.len();
                        h.frozen.push(f.slice(len / 2..));
                    }
                    h.refresh(&live);
                }
            }
            Op::Reserve(i, n) => {
                if let Some(h) = pick(holders.len(), i).map(|i| &mut holders[i]) {
                    if let Some(g) = &mut h.guard {
                        g.reserve(n);
                    }
                    h.refresh(&live);
                }
            }
            Op::DropGuard(i) => {
                if let Some(h) = pick(holders.len(), i).map(|i| &mut holders[i]) {
                    h.check();
                    h.forget_views(&live);
                    drop(h.guard.take());
                    h.refresh(&live);
                }
            }
            Op::Detach(i) => {
                if let Some(h) = pick(holders.len(), i).map(|i| &mut holders[i]) {
                    if let Some(g) = h.guard.take() {
                        h.parts.push(g.detach());
                    }
                    h.refresh(&live);
                }
            }
            Op::Release(i) => {
                if let Some(i) = pick(holders.len(), i) {
                    holders.swap_remove(i).release(&live);
                }
            }
            Op::Reconfigure(s) => {
                match pool.reconfigure(s.config()) {
                    Ok(()) => {
                        MAX_GLOBAL_BYTES.fetch_max(s.depot_bytes, Relaxed);
                    }
                    Err(e) => {
                        count(&TALLY.reconfigure_refused);
                        assert_refused(&e);
                        // Another thread may have changed it meanwhile; this
                        // call at least did not install the refused one.
                        // (A budgeted pool installs it with no fallback.)
                        let installed = pool.config();
                        assert_ne!(installed, s.config(), "refused but installed: {e}");
                        assert_ne!(
                            installed,
                            s.config().fallback_classes(0),
                            "refused but installed: {e}"
                        );
                    }
                }
            }
            Op::Trim => {
                pool.trim();
            }
            Op::Maintain => {
                pool.maintain();
            }
            Op::Flush => pool.flush_thread(),
            Op::Prewarm(s, n) => {
                pool.prewarm(s, n);
            }
        }
        for h in &holders {
            h.check();
        }
    }
    for h in holders {
        h.release(&live);
    }
}

fn assert_refused(e: &BuildError) {
    match e {
        BuildError::Config(c) => assert!(SETTINGS.contains(&c.setting()), "{e}"),
        BuildError::Budget { .. } => (),
        other => panic!("undocumented error {other:?}"),
    }
    assert!(!e.to_string().is_empty());
}

fn budget() -> impl Strategy<Value = Option<usize>> {
    prop_oneof![
        4 => Just(None),
        1 => Just(Some(0usize)),
        1 => Just(Some(100usize)),
        2 => (4096usize..(8 << 20)).prop_map(Some),
        1 => Just(Some(usize::MAX)),
    ]
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(128)
}

/// What the runs tried, summed over every case, for the report.
#[derive(Default)]
struct Tally {
    cases: AtomicU64,
    operations: AtomicU64,
    settings_refused: AtomicU64,
    reconfigure_refused: AtomicU64,
    too_large: AtomicU64,
    budget_refused: AtomicU64,
    checkouts: AtomicU64,
}

/// The largest `depot_bytes` in force during the current case: the bound
/// checked, since threads of a case reconfigure while others push (a push
/// admitted under a larger bound may land just before the lower one).
static MAX_GLOBAL_BYTES: AtomicUsize = AtomicUsize::new(0);

static TALLY: Tally = Tally {
    cases: AtomicU64::new(0),
    operations: AtomicU64::new(0),
    settings_refused: AtomicU64::new(0),
    reconfigure_refused: AtomicU64::new(0),
    too_large: AtomicU64::new(0),
    budget_refused: AtomicU64::new(0),
    checkouts: AtomicU64::new(0),
};

fn count(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

fn one_case(s: Settings, budget: Option<usize>, ops: Vec<Vec<Op>>) -> Result<(), TestCaseError> {
    count(&TALLY.cases);
    let mut builder = BytesPool::builder().config(s.config());
    if let Some(b) = budget {
        builder = builder.budget(b);
    }
    let pool = match builder.build() {
        Ok(pool) => {
            prop_assert_eq!(pool.config(), s.config());
            pool
        }
        Err(e) => {
            assert_refused(&e);
            count(&TALLY.settings_refused);
            // Exercise the operations on a pool with valid settings.
            BytesPool::new()
        }
    };
    MAX_GLOBAL_BYTES.store(pool.config().get_depot_bytes(), Relaxed);
    let live = Arc::new(Live::default());
    let threads: Vec<_> = ops
        .into_iter()
        .enumerate()
        .map(|(t, ops)| {
            let (pool, live) = (pool.clone(), live.clone());
            std::thread::spawn(move || run_thread(pool, ops, live, (t as u64) << 32))
        })
        .collect();
    for t in threads {
        if let Err(panic) = t.join() {
            std::panic::resume_unwind(panic);
        }
    }
    // The books balance.
    let stats = pool.stats();
    prop_assert_eq!(stats.outstanding(), 0, "{}", stats);
    let total = stats.total();
    prop_assert_eq!(total.checkouts, total.returns + total.detached, "{}", stats);
    prop_assert_eq!(
        total.checkouts,
        total.local_hits + total.depot_hits + total.misses
    );
    prop_assert_eq!(
        stats.unpooled_checkouts,
        stats.unpooled_returns + stats.unpooled_detached,
        "{}",
        stats
    );
    if let Some(b) = pool.budget() {
        prop_assert_eq!(b.charged, 0, "{:?}", b);
    }
    prop_assert!(live.0.lock().unwrap().is_empty());
    // The depot within the largest byte bound that was in force.
    let bound = MAX_GLOBAL_BYTES.load(Relaxed);
    prop_assert!(
        stats.depot_bytes <= bound,
        "{} > {}",
        stats.depot_bytes,
        bound
    );
    // And the pool still serves.
    drop(pool.try_checkout(0).unwrap());
    Ok(())
}

#[test]
fn random_settings_and_operations_from_several_threads() {
    let config = ProptestConfig {
        cases: cases(),
        ..ProptestConfig::default()
    };
    // A fixed seed: the same inputs every run, so "the bad inputs were
    // really tried" below cannot depend on luck. (Set PROPTEST_CASES for a
    // longer run over more of the same sequence.)
    let rng = proptest::test_runner::TestRng::deterministic_rng(config.rng_algorithm);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let strategy = (
        settings(),
        budget(),
        prop::collection::vec(prop::collection::vec(op(), 0..60), THREADS),
    );
    let start = std::time::Instant::now();
    if let Err(e) = runner.run(&strategy, |(s, budget, ops)| one_case(s, budget, ops)) {
        panic!("{e}");
    }
    let t = &TALLY;
    let get = |c: &AtomicU64| c.load(Relaxed);
    println!(
        "fuzz_ops: {} cases in {:.1?} ({THREADS} threads each): {} operations, {} checkouts served, \
         {} settings refused at build, {} reconfigurations refused, {} impossible sizes refused, \
         {} refused by the budget; no panic, no aliasing, books balanced",
        get(&t.cases),
        start.elapsed(),
        get(&t.operations),
        get(&t.checkouts),
        get(&t.settings_refused),
        get(&t.reconfigure_refused),
        get(&t.too_large),
        get(&t.budget_refused),
    );
    // The bad inputs were really tried.
    assert!(get(&t.settings_refused) > 0 && get(&t.reconfigure_refused) > 0);
    assert!(get(&t.too_large) > 0 && get(&t.budget_refused) > 0);
}
