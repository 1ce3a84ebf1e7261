//! loom models of the depot protocol (push, take, drain (trim), decay and
//! shrink racing each other) and of the slot handoff between an exiting
//! thread and the next owner of its `thread_local` id, with tiny
//! capacities.
//!
//! Run with `scripts/loom.sh`. Each model checks that no object is lost or
//! duplicated and that the object and byte bounds hold in every
//! interleaving.

use loom::sync::Arc;
use loom::thread;

use crate::engine::cache::Slot;
use crate::engine::depot::{Budget, ClassDepot, Depot};

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
        let depot = Arc::new(Depot::<u32>::new(OBJ));
        let budget = Arc::new(Budget::new(3 * OBJ));

        let pusher = {
            let (depot, budget) = (depot.clone(), budget.clone());
            thread::spawn(move || {
                let mut rejected = Vec::new();
                for ids in [0..2, 2..4] {
                    if let Err(b) = depot.push(batch(ids), 4, &budget, 0) {
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
        let depots = Arc::new([Depot::<u32>::new(OBJ), Depot::<u32>::new(OBJ)]);
        let budget = Arc::new(Budget::new(2 * OBJ));
        let threads: Vec<_> = [0..2, 2..4]
            .into_iter()
            .enumerate()
            .map(|(i, ids)| {
                let (depots, budget) = (depots.clone(), budget.clone());
                thread::spawn(move || {
                    let accepted = depots[i].push(batch(ids), 8, &budget, 0).is_ok();
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
        let depot = Arc::new(Depot::<u32>::new(OBJ));
        let budget = Arc::new(Budget::new(usize::MAX));
        // Pushed at times 10, 20 and 30 on the pool's clock.
        for (t, ids) in [(10, 0..1), (20, 1..2), (30, 2..3)] {
            depot.push(batch(ids), 8, &budget, t).unwrap();
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
        let depot = Arc::new(Depot::<u32>::new(OBJ));
        let budget = Arc::new(Budget::new(usize::MAX));
        assert!(slot.claim(1));
        let mut dropped = Vec::new();
        slot.class(0).set_limits(2, 2, 4, &mut dropped);
        fill(&slot, 0..2);

        let exiting = {
            let (slot, depot, budget) = (slot.clone(), depot.clone(), budget.clone());
            thread::spawn(move || {
                let d = ClassDepot {
                    depot: &*depot,
                    budget: &*budget,
                    max_objects: 4,
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
                    max_objects: 4,
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
