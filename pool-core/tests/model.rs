//! A reference model of one thread's cache and the depot, checked
//! against the real pool after every operation of random sequences: hits,
//! misses, batches, bounds, discards and the number of live values.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pool_core::{Pool, PoolConfig, Recycler};
use proptest::prelude::*;

struct Tracked(Arc<AtomicUsize>);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Debug, Clone)]
enum Op {
    Checkout,
    Return(usize),
    Detach(usize),
    Trim,
    Prewarm(usize),
    Reconfigure {
        cap: usize,
        batch: usize,
        global: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => Just(Op::Checkout),
        8 => any::<usize>().prop_map(Op::Return),
        1 => any::<usize>().prop_map(Op::Detach),
        1 => Just(Op::Trim),
        1 => (0usize..40).prop_map(Op::Prewarm),
        1 => (1usize..12, 1usize..12, 0usize..48).prop_map(|(cap, b, global)| Op::Reconfigure {
            cap,
            batch: b.min(cap),
            global
        }),
    ]
}

/// What the pool should hold and have counted.
#[derive(Debug, Default)]
struct Model {
    cap: usize,
    batch: usize,
    global: usize,
    local: usize,
    depot: Vec<usize>,
    checkouts: u64,
    local_hits: u64,
    depot_hits: u64,
    misses: u64,
    full: u64,
    trimmed: u64,
    detached: u64,
}

impl Model {
    fn depot_len(&self) -> usize {
        self.depot.iter().sum()
    }

    fn push(&mut self, n: usize) -> bool {
        if self.depot_len() + n <= self.global {
            self.depot.push(n);
            true
        } else {
            self.full += n as u64;
            false
        }
    }

    fn checkout(&mut self) {
        self.checkouts += 1;
        if self.local > 0 {
            self.local -= 1;
            self.local_hits += 1;
        } else if let Some(n) = self.depot.pop() {
            self.local += n - 1;
            self.depot_hits += 1;
        } else {
            self.misses += 1;
        }
    }

    fn give_back(&mut self) {
        // A return never leaves the cache above its cap: batches leave
        // until there is room (more than one only after taking a batch
        // pushed under a larger, since-lowered cap).
        while self.local >= self.cap {
            let n = self.batch.min(self.local);
            self.push(n);
            self.local -= n;
        }
        self.local += 1;
    }

    fn trim(&mut self) {
        self.trimmed += (self.depot_len() + self.local) as u64;
        self.depot.clear();
        self.local = 0;
    }

    fn prewarm(&mut self, count: usize) {
        let mut stored = 0;
        while stored < count {
            let n = self.batch.min(count - stored);
            if !self.push(n) {
                break;
            }
            stored += n;
        }
    }

    fn reconfigure(&mut self, cap: usize, batch: usize, global: usize) {
        while self.depot_len() > global {
            let n = self.depot.pop().unwrap();
            self.trimmed += n as u64;
        }
        if self.local > cap {
            self.trimmed += (self.local - cap) as u64;
            self.local = cap;
        }
        (self.cap, self.batch, self.global) = (cap, batch, global);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 4 } else { 256 },
        ..ProptestConfig::default()
    })]

    #[test]
    fn pool_matches_the_model(
        cap in 1usize..12,
        batch in 1usize..12,
        global in 0usize..48,
        ops in prop::collection::vec(op(), 1..200),
    ) {
        let batch = batch.min(cap);
        let live = Arc::new(AtomicUsize::new(0));
        let l = live.clone();
        let pool: Pool<Tracked, _> = PoolConfig::new()
            .thread_capacity(cap)
            .batch(batch)
            .depot_capacity(global)
            .build(Recycler::new(
                move || {
                    l.fetch_add(1, Ordering::SeqCst);
                    Tracked(l.clone())
                },
                |_: &mut Tracked| (),
            ))
            .unwrap();
        let mut model = Model { cap, batch, global, ..Model::default() };
        let mut held = Vec::new();
        let mut detached = Vec::new();
        for op in ops {
            match op {
                Op::Checkout => {
                    held.push(pool.checkout());
                    model.checkout();
                }
                Op::Return(i) if !held.is_empty() => {
                    drop(held.swap_remove(i % held.len()));
                    model.give_back();
                }
                Op::Detach(i) if !held.is_empty() => {
                    detached.push(pool_core::Pooled::detach(held.swap_remove(i % held.len())));
                    model.detached += 1;
                }
                Op::Return(_) | Op::Detach(_) => {}
                Op::Trim => {
                    pool.trim();
                    model.trim();
                }
                Op::Prewarm(n) => {
                    pool.prewarm(n);
                    model.prewarm(n);
                }
                Op::Reconfigure { cap, batch, global } => {
                    pool.reconfigure(
                        pool.config().thread_capacity(cap).batch(batch).depot_capacity(global),
                    )
                    .unwrap();
                    model.reconfigure(cap, batch, global);
                }
            }
            let s = pool.stats().total();
            prop_assert_eq!(s.checkouts, model.checkouts);
            prop_assert_eq!(s.checkouts, s.local_hits + s.depot_hits + s.misses);
            prop_assert_eq!(s.local_hits, model.local_hits);
            prop_assert_eq!(s.depot_hits, model.depot_hits);
            prop_assert_eq!(s.misses, model.misses);
            prop_assert_eq!(s.outstanding, held.len() as u64);
            prop_assert_eq!(s.detached, model.detached);
            prop_assert_eq!(s.retained_local, model.local as u64);
            prop_assert_eq!(s.retained_depot, model.depot_len() as u64);
            prop_assert!(s.retained_depot <= model.global as u64);
            prop_assert_eq!(s.discarded.full, model.full);
            prop_assert_eq!(s.discarded.trimmed, model.trimmed);
            // Every value the pool created is held, detached, or kept: none
            // is lost, none is kept twice.
            prop_assert_eq!(
                live.load(Ordering::SeqCst),
                held.len() + detached.len() + model.local + model.depot_len()
            );
        }
    }
}
