//! loom models of the depot protocol (push, take, drain (trim), decay and
//! shrink racing each other), of the slot handoff between an exiting
//! thread and the next owner of its `thread_local` id, of trim and
//! reconfigure racing a thread that returns and exits, and of catch-up
//! (a trim, a decay tick or a reconfigure racing the owner's fast-path
//! take and put), with tiny capacities.
//!
//! Run with `scripts/loom.sh`. Each model checks that no object is lost or
//! duplicated and that the object and byte bounds hold in every
//! interleaving. The catch-up models also say which weakened ordering
//! makes them fail.

use loom::sync::Arc;
use loom::thread;

use crate::engine::depot::{Budget, ClassDepot, Depot};
use crate::spine::Slot;

/// Bytes per object in the models.
const OBJ: usize = 8;

fn batch(ids: std::ops::Range<u32>) -> Vec<u32> {
    ids.collect()
}

/// Collects ids, failing on a duplicate.
fn settle(seen: &mut Vec<u32>, ids: impl IntoIterator<Item = u32>) {
    for id in ids {
        assert!(!seen.contains(&id), "object {id} seen twice");
        seen.push(id);
    }
}

#[test]
fn push_take_trim_conserve_objects() {
    loom::model(|| {
        // Room for two batches of two by count, and three objects by bytes.
        let depot = Arc::new(Depot::<u32>::new(OBJ, 4));
        let budget = Arc::new(Budget::new(3 * OBJ));

        let pusher = {
            let (depot, budget) = (depot.clone(), budget.clone());
            thread::spawn(move || {
                let mut rejected = Vec::new();
                for ids in [0..2, 2..4] {
                    if let Err(b) = depot.push(batch(ids), &budget, 0) {
                        rejected.extend(b);
                    }
                }
                rejected
            })
        };
        let taker = {
            let (depot, budget) = (depot.clone(), budget.clone());
            thread::spawn(move || {
                let mut vessel = None;
                depot.take(&budget, &mut vessel).unwrap_or_default()
            })
        };
        let trimmer = {
            let (depot, budget) = (depot.clone(), budget.clone());
            thread::spawn(move || {
                depot
                    .drain(&budget)
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
            })
        };

        let mut seen = Vec::new();
        settle(&mut seen, pusher.join().unwrap());
        settle(&mut seen, taker.join().unwrap());
        settle(&mut seen, trimmer.join().unwrap());
        let left = depot.drain(&budget);
        settle(&mut seen, left.into_iter().flatten());
        seen.sort_unstable();
        assert_eq!(seen, vec![0, 1, 2, 3], "every object accounted for once");
        assert_eq!(budget.used(), 0, "the byte budget returns to zero");
        let c = depot.counters();
        assert_eq!(c.objects, 0);
        assert!(c.batches_in >= c.batches_out);
    });
}

#[test]
fn concurrent_pushes_respect_bounds() {
    loom::model(|| {
        // Two classes' depots share one byte budget, as in a pool; their
        // locks do not serialize each other, only the budget does. The
        // budget has room for one batch.
        let depots = Arc::new([Depot::<u32>::new(OBJ, 8), Depot::<u32>::new(OBJ, 8)]);
        let budget = Arc::new(Budget::new(2 * OBJ));
        let threads: Vec<_> = [0..2, 2..4]
            .into_iter()
            .enumerate()
            .map(|(i, ids)| {
                let (depots, budget) = (depots.clone(), budget.clone());
                thread::spawn(move || {
                    let accepted = depots[i].push(batch(ids), &budget, 0).is_ok();
                    assert!(budget.used() <= 2 * OBJ, "byte bound exceeded");
                    accepted
                })
            })
            .collect();
        let accepted = threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|&a| a)
            .count();
        assert_eq!(accepted, 1, "exactly one batch fits the byte budget");
        let held: u64 = depots.iter().map(|d| d.counters().objects).sum();
        let dropped: u64 = depots.iter().map(|d| d.counters().discarded_full).sum();
        assert_eq!((held, dropped), (2, 2));
        assert_eq!(budget.used(), 2 * OBJ);
    });
}

#[test]
fn decay_and_shrink_race_with_take() {
    loom::model(|| {
        let depot = Arc::new(Depot::<u32>::new(OBJ, 8));
        let budget = Arc::new(Budget::new(usize::MAX));
        // Pushed at times 10, 20 and 30 on the pool's clock.
        for (t, ids) in [(10, 0..1), (20, 1..2), (30, 2..3)] {
            depot.push(batch(ids), &budget, t).unwrap();
        }
        // Nothing was pushed at or before time 5.
        assert!(depot.decay(&budget, 5).is_empty());

        let taker = {
            let (depot, budget) = (depot.clone(), budget.clone());
            thread::spawn(move || {
                let mut vessel = None;
                depot.take(&budget, &mut vessel).unwrap_or_default()
            })
        };
        let decayer = {
            let (depot, budget) = (depot.clone(), budget.clone());
            thread::spawn(move || {
                depot
                    .decay(&budget, 20)
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
            })
        };
        let shrinker = {
            let (depot, budget) = (depot.clone(), budget.clone());
            thread::spawn(move || {
                depot
                    .shrink_to(2, &budget)
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
            })
        };
        let mut seen = Vec::new();
        settle(&mut seen, taker.join().unwrap());
        settle(&mut seen, decayer.join().unwrap());
        settle(&mut seen, shrinker.join().unwrap());
        settle(&mut seen, depot.drain(&budget).into_iter().flatten());
        seen.sort_unstable();
        assert_eq!(seen, vec![0, 1, 2]);
        assert_eq!(budget.used(), 0);
    });
}

/// Moves `ids` into class 0 of `slot` (claimed by the caller) through the
/// fast-path push.
fn fill(slot: &Slot<u32>, ids: std::ops::Range<u32>) {
    for id in ids {
        let v = std::mem::ManuallyDrop::new(id);
        assert!(slot.class(0).push_from(&v), "room below the cap");
    }
}

#[test]
fn an_exiting_owner_hands_its_slot_to_the_next_thread() {
    loom::model(|| {
        // The exiting thread's flush (spill everything, release) races the
        // next thread with the same id, which claims the slot (retrying,
        // as it runs uncached until then) and takes from the depot. Every
        // value ends up exactly once: in the slot, the depot or a checkout.
        let slot = Arc::new(Slot::<u32>::new(1));
        let depot = Arc::new(Depot::<u32>::new(OBJ, 4));
        let budget = Arc::new(Budget::new(usize::MAX));
        assert!(slot.claim(1));
        let mut dropped = Vec::new();
        slot.class(0).set_limits(2, 2, &mut dropped);
        slot.class(0).make_room();
        fill(&slot, 0..2);

        let exiting = {
            let (slot, depot, budget) = (slot.clone(), depot.clone(), budget.clone());
            thread::spawn(move || {
                let d = ClassDepot {
                    depot: &*depot,
                    budget: &*budget,
                    now: 0,
                };
                let (n, rejected) = slot.class(0).spill(&d);
                assert_eq!((n, rejected), (2, None));
                slot.class(0).forget_vessel();
                slot.release();
            })
        };
        let next = {
            let (slot, depot, budget) = (slot.clone(), depot.clone(), budget.clone());
            thread::spawn(move || {
                while !slot.claim(2) {
                    thread::yield_now();
                }
                let c = slot.class(0);
                assert_eq!(c.len(), 0, "a claimed slot starts clean");
                let d = ClassDepot {
                    depot: &*depot,
                    budget: &*budget,
                    now: 0,
                };
                let mut got = Vec::new();
                if c.refill(&d).is_some() {
                    let mut dst = std::mem::MaybeUninit::uninit();
                    while c.pop_into(&mut dst) {
                        // SAFETY: `pop_into` returned true: `dst` holds a value.
                        got.push(unsafe { dst.assume_init() });
                    }
                }
                c.forget_vessel();
                slot.release();
                got
            })
        };
        exiting.join().unwrap();
        let mut seen = Vec::new();
        settle(&mut seen, next.join().unwrap());
        settle(&mut seen, depot.drain(&budget).into_iter().flatten());
        seen.sort_unstable();
        assert_eq!(seen, vec![0, 1]);
    });
}

/// A value that counts how many of its kind are alive.
struct Tracked(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

type TrackedPool =
    crate::Pool<Tracked, crate::Recycler<Box<dyn Fn() -> Tracked + Send + Sync>, fn(&mut Tracked)>>;

/// A generic pool of `Tracked` values: caches of 2, batches of 1, a depot
/// of `depot` values.
fn tracked_pool(
    depot: usize,
) -> (
    Arc<TrackedPool>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    tracked_pool_with(
        crate::PoolConfig::new()
            .thread_capacity(2)
            .batch(1)
            .depot_capacity(depot),
    )
}

/// A generic pool of `Tracked` values built from `config`.
fn tracked_pool_with(
    config: crate::PoolConfig,
) -> (
    Arc<TrackedPool>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let live = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let l = live.clone();
    let create: Box<dyn Fn() -> Tracked + Send + Sync> = Box::new(move || {
        l.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Tracked(l.clone())
    });
    let reset: fn(&mut Tracked) = |_| ();
    let pool = config.build(crate::Recycler::new(create, reset)).unwrap();
    (Arc::new(pool), live)
}

/// A thread that checks out, returns (its cache fills and spills) and
/// exits (its exit flush), against `other` on the main thread.
fn worker_against(pool: &Arc<TrackedPool>, other: impl FnOnce(&TrackedPool)) {
    let worker = {
        let pool = pool.clone();
        thread::spawn(move || {
            let (a, b, c) = (pool.checkout(), pool.checkout(), pool.checkout());
            drop((a, b, c));
            drop(pool.checkout());
        })
    };
    other(pool);
    worker.join().unwrap();
    // loom's `join` returns before the worker's thread-local destructors
    // (its exit flush) have run, unlike std's; wait for the release of its
    // slot, whose Release store orders the flush before what follows.
    while pool.engine().released_slots() == 0 {
        thread::yield_now();
    }
}

#[test]
fn trim_races_a_returning_and_exiting_thread() {
    loom::model(|| {
        let (pool, live) = tracked_pool(4);
        worker_against(&pool, |pool| {
            pool.trim();
        });
        let s = pool.stats();
        assert_eq!(s.outstanding(), 0, "{s}");
        // Every value alive is kept exactly once, in a cache or the depot:
        // none leaked, none stranded in a released slot.
        let alive = live.load(std::sync::atomic::Ordering::Relaxed) as u64;
        assert_eq!(alive, s.retained_objects(), "{s}");
        pool.trim();
        assert_eq!(live.load(std::sync::atomic::Ordering::Relaxed), 0);
    });
}

#[test]
fn reconfigure_races_the_exit_flush_and_the_new_limits_win() {
    loom::model(|| {
        let (pool, live) = tracked_pool(4);
        worker_against(&pool, |pool| {
            pool.reconfigure(pool.config().depot_capacity(0)).unwrap();
        });
        let s = pool.stats();
        assert_eq!(s.outstanding(), 0, "{s}");
        assert_eq!(
            s.total().retained_depot,
            0,
            "the exit flush obeyed depot_capacity(0)\n{s}"
        );
        let alive = live.load(std::sync::atomic::Ordering::Relaxed) as u64;
        assert_eq!(alive, s.retained_objects(), "{s}");
    });
}

/// The cache state a model's owner thread reports: `(cached, cap, batch)`
/// of class 0 once caught up (see `Engine::caught_up`).
type CacheState = (usize, usize, usize);

/// The race of the catch-up models. An owner thread fills its cache to the
/// cap (2 values, through the slow path) and says so; then it checks one
/// value out and returns it on the fast path while a second thread runs
/// `bump` (a pool operation that bumps a generation with Release). Once
/// `bump` has returned (an Acquire flag), the owner catches up as its next
/// slow-path operation would and `check`s its cache. (The bump waits for
/// the fill so that what it asks of the owner concerns a full cache: a
/// cache filled after a trim or a decay tick legitimately keeps it.) Then
/// both threads exit (their exit flushes) and every value alive must be
/// kept exactly once, with the depot within its bound.
fn fast_path_against(config: crate::PoolConfig, bump: fn(&TrackedPool), check: fn(CacheState)) {
    use loom::sync::atomic::{AtomicBool, Ordering};

    let (pool, live) = tracked_pool_with(config);
    let filled = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let owner = {
        let (pool, filled, done) = (pool.clone(), filled.clone(), done.clone());
        thread::spawn(move || {
            drop((pool.checkout(), pool.checkout()));
            // Release: pairs with the bumper's Acquire load.
            filled.store(true, Ordering::Release);
            // The fast path: a hit in this thread's cache and a return
            // into it, unless the epoch check sends the take to catch up.
            drop(pool.checkout());
            while !done.load(Ordering::Acquire) {
                thread::yield_now();
            }
            let state = pool.engine().caught_up(0).expect("the owner has a slot");
            check(state);
        })
    };
    let bumper = {
        let (pool, filled, done) = (pool.clone(), filled.clone(), done.clone());
        thread::spawn(move || {
            while !filled.load(Ordering::Acquire) {
                thread::yield_now();
            }
            bump(&pool);
            // Release: pairs with the owner's Acquire load, so the owner's
            // catch-up comes after `bump` returned.
            done.store(true, Ordering::Release);
        })
    };
    owner.join().unwrap();
    bumper.join().unwrap();
    // As in `worker_against`: wait for both exit flushes.
    while pool.engine().released_slots() < 2 {
        thread::yield_now();
    }
    let s = pool.stats();
    assert_eq!(s.outstanding(), 0, "{s}");
    let alive = live.load(std::sync::atomic::Ordering::Relaxed) as u64;
    assert_eq!(
        alive,
        s.retained_objects(),
        "no value lost or kept twice\n{s}"
    );
    assert!(
        s.total().retained_depot as usize <= config.get_depot_capacity(),
        "the depot bound holds\n{s}"
    );
}

/// Idle decay (`Engine::maintain`: a tick bumps the decay generation) races
/// the owner's fast-path take and put; the owner's next slow-path operation
/// moves its surplus beyond one batch to the depot. The decay interval is
/// an hour, so the tick frees nothing from the depot (no batch is that old;
/// the depot side of decay is `decay_and_shrink_race_with_take`) and only
/// the thread side is in play.
///
/// Shown to fail (checked by hand, then restored): with the epoch's
/// `fetch_add` in `Engine::bump` (`engine/upkeep.rs`) weakened from Release
/// to Relaxed, the owner's take can read the new epoch without seeing the
/// decay generation bumped before it, record the epoch, skip the spill and
/// never catch up again. loom's failing output starts
/// `thread 'loom_tests::decay_races_the_fast_path_and_the_owner_spills_its_surplus'
/// (…) panicked at pool-core/src/loom_tests.rs:…`, then `the decay tick
/// left at most one batch in the cache: (2, 2, 1)`, and the test binary
/// aborts (a panic on a loom thread does not unwind). Weakening the Acquire
/// load of the epoch in `Engine::catch_up` fails the same way. Weakening
/// only the generation's own `fetch_add` in `bump`, or the Acquire loads of
/// the three generations after the epoch's in `catch_up`, does not fail
/// this model or any other: the epoch's Release/Acquire pair already
/// orders them.
#[test]
fn decay_races_the_fast_path_and_the_owner_spills_its_surplus() {
    loom::model(|| {
        fast_path_against(
            crate::PoolConfig::new()
                .thread_capacity(2)
                .batch(1)
                .depot_capacity(4)
                .decay_interval(std::time::Duration::from_secs(3600)),
            |pool| assert!(pool.maintain(), "the first maintain ticks"),
            |(cached, cap, batch)| {
                assert_eq!((cap, batch), (2, 1));
                assert!(
                    cached <= batch,
                    "the decay tick left at most one batch in the cache: {:?}",
                    (cached, cap, batch)
                );
            },
        );
    });
}

/// Catch-up after a reconfigure that lowers the thread cap from 2 to 1
/// (`Engine::reconfigure` bumps the config generation), racing the owner's
/// fast-path take and put: the owner's next slow-path operation applies
/// the new cap and drops what no longer fits.
///
/// Shown to fail (checked by hand, then restored): with the Acquire load
/// of the epoch in `Engine::catch_up` (`engine/catch_up.rs`) weakened to
/// Relaxed, the owner can read the new epoch but the old config
/// generation, record the epoch with the old cap and keep two values under
/// a cap of one. loom's failing output starts
/// `thread 'loom_tests::reconfigure_races_the_fast_path_and_the_owner_catches_up'
/// (…) panicked at pool-core/src/loom_tests.rs:…`, then ``assertion `left
/// == right` failed: the new cap applies: (2, 2, 1)``. Weakening the
/// epoch's Release in `Engine::bump` fails the same way.
#[test]
fn reconfigure_races_the_fast_path_and_the_owner_catches_up() {
    loom::model(|| {
        fast_path_against(
            crate::PoolConfig::new()
                .thread_capacity(2)
                .batch(1)
                .depot_capacity(4),
            |pool| {
                pool.reconfigure(pool.config().thread_capacity(1)).unwrap();
            },
            |state| assert_eq!(state.1, 1, "the new cap applies: {state:?}"),
        );
    });
}

/// Catch-up after a trim (`Engine::trim` bumps the trim generation), racing
/// the owner's fast-path take and put: the owner's next slow-path
/// operation drops what its cache held at the trim, so at most the value
/// returned after it (the racing put) is left.
///
/// Shown to fail (checked by hand, then restored) by either weakening
/// named above (the epoch's Release in `Engine::bump`, its Acquire in
/// `Engine::catch_up`): loom's failing output starts
/// `thread 'loom_tests::trim_races_the_fast_path_and_the_owner_catches_up'
/// (…) panicked at pool-core/src/loom_tests.rs:…`, then `the trim emptied
/// the cache: (2, 2, 1)`.
#[test]
fn trim_races_the_fast_path_and_the_owner_catches_up() {
    loom::model(|| {
        fast_path_against(
            crate::PoolConfig::new()
                .thread_capacity(2)
                .batch(1)
                .depot_capacity(4),
            |pool| {
                pool.trim();
            },
            |state| assert!(state.0 <= 1, "the trim emptied the cache: {state:?}"),
        );
    });
}
