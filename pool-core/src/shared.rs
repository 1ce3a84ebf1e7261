//! The engine behind both pool types: per-thread caches in front of one
//! bounded depot per class. The whole checkout/return fast path is
//! [`Shared::take`] and [`Shared::put`]; everything else here is `#[cold]`.
//!
//! Objects are opaque to this module: constructors, reset policies and
//! `Buffer` methods run in `pool.rs` and `buffer.rs`, never while a cache or
//! a depot is borrowed. Objects that must be dropped are handed back out of
//! `Local::with` and dropped after it.

use std::sync::{Arc, Weak};
use std::time::Instant;

use crossbeam_utils::CachePadded;
use thread_local::ThreadLocal;

use crate::config::Limits;
use crate::depot::{Budget, Depot, DepotCounters};
use crate::exit::{self, FlushOnExit};
use crate::local::{pop_into, push_from, ClassCache, ClassCounters, Local, State};
use crate::loom::{lock, AtomicU64, AtomicUsize, Mutex, Ordering};

/// Generation counters, read together on slow paths. `epoch` is bumped
/// whenever any of the others is, so the fast path checks one word.
#[derive(Debug)]
struct Gens {
    epoch: AtomicU64,
    trim: AtomicU64,
    decay: AtomicU64,
    config: AtomicU64,
}

/// Read-mostly settings needed outside the caches (by `buffer.rs`).
#[derive(Debug)]
pub(crate) struct Hot {
    /// `min_shift << 8 | max_shift` of the class range.
    range: AtomicUsize,
    /// `max_retained` (capped at `usize::MAX >> 1`), with the top bit set
    /// when returned buffers are zeroed: one load on the return path.
    retention: AtomicUsize,
}

const ZERO_BIT: usize = 1 << (usize::BITS - 1);

fn retention_word(limits: &Limits) -> usize {
    let max = limits.max_retained.min(!ZERO_BIT);
    if limits.zero_on_return {
        max | ZERO_BIT
    } else {
        max
    }
}

impl Hot {
    /// `(max_retained, zero_on_return)`.
    #[inline]
    pub(crate) fn retention(&self) -> (usize, bool) {
        // Relaxed: a limit read as a hint, like `range`.
        let w = self.retention.load(Ordering::Relaxed);
        (w & !ZERO_BIT, w & ZERO_BIT != 0)
    }

    /// The configured class range as `(min_shift, max_shift)`.
    #[inline]
    pub(crate) fn range(&self) -> (u32, u32) {
        // Relaxed: a slightly stale range only means one buffer is served
        // from (or returned to) the range in force a moment ago; the caches
        // still check each class against their own limits.
        let r = self.range.load(Ordering::Relaxed);
        ((r >> 8) as u32, (r & 0xff) as u32)
    }
}

/// Summed counters of one class.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sums {
    pub(crate) local_hits: u64,
    pub(crate) depot_hits: u64,
    pub(crate) misses: u64,
    pub(crate) returns: u64,
    pub(crate) detached: u64,
    pub(crate) rejected: u64,
    pub(crate) oversize: u64,
    pub(crate) shared: u64,
    pub(crate) stale: u64,
    pub(crate) batches_pushed: u64,
    pub(crate) objects_pushed: u64,
    pub(crate) batches_taken: u64,
    pub(crate) objects_taken: u64,
    pub(crate) trimmed: u64,
    pub(crate) depot: DepotCounters,
}

impl Sums {
    fn add(&mut self, c: &ClassCounters) {
        self.local_hits += c.local_hits.get();
        self.depot_hits += c.depot_hits.get();
        self.misses += c.misses.get();
        self.returns += c.returns.get();
        self.detached += c.detached.get();
        self.rejected += c.rejected.get();
        self.oversize += c.oversize.get();
        self.shared += c.shared.get();
        self.stale += c.stale.get();
        self.batches_pushed += c.batches_pushed.get();
        self.objects_pushed += c.objects_pushed.get();
        self.batches_taken += c.batches_taken.get();
        self.objects_taken += c.objects_taken.get();
        self.trimmed += c.trimmed.get();
    }
}

pub(crate) use crate::stats::{Discard, Source};

/// Decay steps per decay interval: a batch is freed between one interval
/// and a quarter more after the last thread stopped needing it.
const DECAY_STEPS: u64 = 4;

/// Counters for operations made where no thread cache is available (a
/// thread tearing down its thread-locals). Rare, so plain `fetch_add`.
#[derive(Debug, Default)]
struct Orphans {
    misses: std::sync::atomic::AtomicU64,
    returns: std::sync::atomic::AtomicU64,
}

pub(crate) struct Shared<T: Send + 'static> {
    /// Padded so that two threads' slots, which `ThreadLocal` stores side
    /// by side, never share a cache line.
    locals: ThreadLocal<CachePadded<Local<T>>>,
    depots: Box<[Depot<T>]>,
    budget: Budget,
    gens: CachePadded<Gens>,
    pub(crate) hot: CachePadded<Hot>,
    limits: Mutex<Arc<Limits>>,
    born: Instant,
    /// Nanoseconds after `born` when the next decay tick is due.
    decay_due: AtomicU64,
    orphans: Box<[Orphans]>,
    /// Bytes each object of a class accounts for (0 for generic pools).
    class_bytes: fn(usize) -> usize,
}

impl<T: Send + 'static> std::fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("classes", &self.depots.len())
            .field("depot_bytes", &self.budget.used())
            .finish_non_exhaustive()
    }
}

enum Took {
    Local,
    Global(usize),
    Miss,
}

impl<T: Send + 'static> Shared<T> {
    pub(crate) fn new(classes: usize, limits: Limits, class_bytes: fn(usize) -> usize) -> Self {
        let hot = Hot {
            range: AtomicUsize::new(((limits.min_shift as usize) << 8) | limits.max_shift as usize),
            retention: AtomicUsize::new(retention_word(&limits)),
        };
        Shared {
            locals: ThreadLocal::new(),
            depots: (0..classes).map(|i| Depot::new(class_bytes(i))).collect(),
            budget: Budget::new(limits.depot_bytes),
            gens: CachePadded::new(Gens {
                epoch: AtomicU64::new(0),
                trim: AtomicU64::new(0),
                decay: AtomicU64::new(0),
                config: AtomicU64::new(0),
            }),
            hot: CachePadded::new(hot),
            decay_due: AtomicU64::new(0),
            limits: Mutex::new(Arc::new(limits)),
            born: Instant::now(),
            orphans: (0..classes).map(|_| Orphans::default()).collect(),
            class_bytes,
        }
    }

    pub(crate) fn classes(&self) -> usize {
        self.depots.len()
    }

    pub(crate) fn limits(&self) -> Arc<Limits> {
        Arc::clone(&lock(&self.limits))
    }

    /// This thread's cache, created on first use. `None` only while the
    /// thread is tearing down its thread-locals.
    #[inline(always)]
    fn local(self: &Arc<Self>) -> Option<&Local<T>> {
        match self.locals.get() {
            Some(local) => Some(&**local),
            None => self.local_slow(),
        }
    }

    #[cold]
    #[inline(never)]
    fn local_slow(self: &Arc<Self>) -> Option<&Local<T>> {
        if exit::exiting() {
            return None;
        }
        Some(
            &**self
                .locals
                .get_or(|| CachePadded::new(Local::new(self.classes()))),
        )
    }

    /// Takes an object of `class` from this thread's cache, or a batch from
    /// the depot, into `dst` (which must be `None`). Returns where it came
    /// from; `Source::New` means `dst` is still `None` and the caller
    /// creates one (counted as a miss). Writing into the caller's slot keeps
    /// the fast path free of copies of `T`.
    #[inline(always)]
    pub(crate) fn take_into(self: &Arc<Self>, class: usize, dst: &mut Option<T>) -> Source {
        debug_assert!(dst.is_none());
        let Some(local) = self.local() else {
            self.orphans[class]
                .misses
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Source::New;
        };
        // Relaxed: a stale epoch only delays catching up by one operation;
        // `catch_up` reads the generations again with Acquire.
        let epoch = self.gens.epoch.load(Ordering::Relaxed);
        // SAFETY: `local` is this thread's slot (from `self.local()`), and
        // the closure runs no user code.
        let hit = unsafe {
            local.with(|st| st.epoch == epoch && pop_into(&mut st.classes[class].items, dst))
        };
        if hit {
            local.counters[class].local_hits.bump();
            Source::Local
        } else {
            self.take_slow(local, class, dst)
        }
    }

    #[cold]
    #[inline(never)]
    fn take_slow(self: &Arc<Self>, local: &Local<T>, class: usize, dst: &mut Option<T>) -> Source {
        let dropped = self.catch_up(local);
        let depot = &self.depots[class];
        let budget = &self.budget;
        // SAFETY: `local` is this thread's slot (the caller got it from
        // `self.local()`); the closure runs no user code: it moves objects
        // between vectors and takes the depot's lock, under which no user
        // code runs either.
        let source = unsafe {
            local.with(|st| {
                let cc = &mut st.classes[class];
                *dst = cc.items.pop();
                if dst.is_some() {
                    return Took::Local;
                }
                if cc.cap == 0 {
                    return Took::Miss;
                }
                let Some(mut batch) = depot.take(budget, &mut cc.vessel) else {
                    return Took::Miss;
                };
                let n = batch.len();
                cc.items.append(&mut batch);
                if cc.vessel.is_none() {
                    cc.vessel = Some(batch);
                }
                *dst = cc.items.pop();
                if dst.is_some() {
                    Took::Global(n)
                } else {
                    Took::Miss
                }
            })
        };
        drop(dropped);
        let counters = &local.counters[class];
        match source {
            Took::Local => {
                counters.local_hits.bump();
                Source::Local
            }
            Took::Global(n) => {
                counters.depot_hits.bump();
                counters.batches_taken.bump();
                counters.objects_taken.add(n as u64);
                Source::Depot
            }
            Took::Miss => {
                counters.misses.bump();
                Source::New
            }
        }
    }

    /// Returns the object in `src` (already reset by the caller) to this
    /// thread's cache, pushing a batch to the depot when the cache is full;
    /// `src` is left `None`. Returns false if the object was dropped instead
    /// (its class left the range, or the thread is tearing down).
    #[inline(always)]
    pub(crate) fn put_from(self: &Arc<Self>, class: usize, src: &mut Option<T>) -> bool {
        let Some(local) = self.local() else {
            self.orphans[class]
                .returns
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            *src = None;
            return false;
        };
        // Relaxed: see `take_into`.
        let epoch = self.gens.epoch.load(Ordering::Relaxed);
        // SAFETY: `local` is this thread's slot (from `self.local()`), and
        // the closure runs no user code (an object left in `src` is dropped
        // by the slow path, after `with`).
        let kept = unsafe {
            local.with(|st| {
                let cc = &mut st.classes[class];
                if st.epoch == epoch && cc.items.len() < cc.cap {
                    push_from(&mut cc.items, src);
                    true
                } else {
                    false
                }
            })
        };
        if kept {
            local.counters[class].returns.bump();
            true
        } else {
            match src.take() {
                Some(value) => self.put_slow(local, class, value),
                None => false,
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn put_slow(self: &Arc<Self>, local: &Local<T>, class: usize, value: T) -> bool {
        let mut dropped = self.catch_up(local);
        let counters = &local.counters[class];
        counters.returns.bump();
        // SAFETY: as in `take_slow`.
        let (stale, pushed) = unsafe {
            local.with(|st| {
                let cc = &mut st.classes[class];
                if cc.cap == 0 {
                    return (Some(value), None);
                }
                let pushed = (cc.items.len() >= cc.cap).then(|| self.push_batch(class, cc));
                cc.items.push(value);
                (None, pushed)
            })
        };
        let kept = stale.is_none();
        if let Some(value) = stale {
            counters.stale.bump();
            dropped.push(value);
        }
        if let Some((n, rejected)) = pushed {
            counters.batches_pushed.bump();
            counters.objects_pushed.add(n as u64);
            drop(rejected);
        }
        kept
    }

    /// Counts a return that the caller dropped instead of putting back.
    #[cold]
    pub(crate) fn discard(self: &Arc<Self>, class: usize, why: Discard) {
        let Some(local) = self.local() else {
            self.orphans[class]
                .returns
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return;
        };
        let c = &local.counters[class];
        c.returns.bump();
        match why {
            Discard::Rejected => c.rejected.bump(),
            Discard::Oversize => c.oversize.bump(),
            Discard::Shared => c.shared.bump(),
            Discard::Stale => c.stale.bump(),
            Discard::Unpooled => {}
        }
    }

    /// Counts a checkout served without the pool (above the largest class).
    #[cold]
    pub(crate) fn miss(self: &Arc<Self>, class: usize) {
        match self.local() {
            Some(local) => local.counters[class].misses.bump(),
            None => {
                self.orphans[class]
                    .misses
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// Counts a value taken out of the pool for good.
    pub(crate) fn detach(self: &Arc<Self>, class: usize) {
        if let Some(local) = self.local() {
            local.counters[class].detached.bump();
        } else {
            // Seen as a return in the books so outstanding still balances.
            self.orphans[class]
                .returns
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Brings this thread's cache up to date with trims, decay ticks and
    /// configuration changes. Returns the objects to drop.
    #[cold]
    fn catch_up(self: &Arc<Self>, local: &Local<T>) -> Vec<T> {
        // Acquire: pairs with the Release in `bump`, so the limits and the
        // depot state that a trim or reconfigure left are visible here.
        let epoch = self.gens.epoch.load(Ordering::Acquire);
        // SAFETY: `local` is this thread's slot; reading a field runs no
        // user code.
        let (seen, config_seen) = unsafe { local.with(|st| (st.epoch, st.config_gen)) };
        if seen == epoch {
            return Vec::new();
        }
        if seen == u64::MAX {
            // A new slot, or one inherited from an exited thread: make sure
            // this thread hands it back when it exits.
            let weak: Weak<dyn FlushOnExit> = Arc::downgrade(self) as Weak<Shared<T>>;
            exit::register(weak);
        }
        let trim = self.gens.trim.load(Ordering::Acquire);
        let decay = self.gens.decay.load(Ordering::Acquire);
        let config = self.gens.config.load(Ordering::Acquire);
        let limits = (config_seen != config).then(|| self.limits());
        let mut dropped = Vec::new();
        // SAFETY: `local` is this thread's slot; the closure moves objects
        // between vectors and the depots, and runs no user code.
        unsafe {
            local.with(|st| {
                st.epoch = epoch;
                if st.trim_gen != trim {
                    st.trim_gen = trim;
                    for (cc, c) in st.classes.iter_mut().zip(local.counters.iter()) {
                        c.trimmed.add(cc.items.len() as u64);
                        dropped.append(&mut cc.items);
                        cc.vessel = None;
                    }
                }
                if let Some(limits) = &limits {
                    st.config_gen = config;
                    for (i, (cc, c)) in st.classes.iter_mut().zip(local.counters.iter()).enumerate()
                    {
                        cc.cap = limits.cap[i];
                        cc.batch = limits.batch[i].max(1);
                        cc.global = limits.depot_objects[i];
                        if cc.items.len() > cc.cap {
                            let excess = cc.items.len() - cc.cap;
                            c.trimmed.add(excess as u64);
                            dropped.extend(cc.items.drain(..excess));
                        }
                        if cc.cap == 0 {
                            cc.items = Vec::new();
                        }
                        cc.vessel = None;
                    }
                }
                if st.decay_gen != decay {
                    st.decay_gen = decay;
                    // Idle decay, thread side: move a batch beyond the first
                    // to the depot, whose own decay frees what stays unused.
                    self.spill(st, local, &mut dropped, |cc| cc.items.len() > cc.batch);
                }
            });
        }
        dropped
    }

    /// Pushes one batch of each class whose cache satisfies `when` to the
    /// depot. Rejected objects go to `dropped`.
    fn spill(
        &self,
        st: &mut State<T>,
        local: &Local<T>,
        dropped: &mut Vec<T>,
        when: impl Fn(&ClassCache<T>) -> bool,
    ) {
        for (i, cc) in st.classes.iter_mut().enumerate() {
            while !cc.items.is_empty() && when(cc) {
                let (n, rejected) = self.push_batch(i, cc);
                let c = &local.counters[i];
                c.batches_pushed.bump();
                c.objects_pushed.add(n as u64);
                if let Some(mut rejected) = rejected {
                    dropped.append(&mut rejected);
                }
            }
        }
    }

    /// Moves the oldest `batch` objects of `cc` (a cache of `class`) to
    /// the class's depot; the most recently returned stay, warm in this
    /// core's cache. Returns how many left the cache, and those the depot
    /// refused, for the caller to drop outside the cache. Runs no user code.
    fn push_batch(&self, class: usize, cc: &mut ClassCache<T>) -> (usize, Option<Vec<T>>) {
        let n = cc.batch.max(1).min(cc.items.len());
        let mut batch = cc.vessel.take().unwrap_or_default();
        batch.extend(cc.items.drain(..n));
        match self.depots[class].push(batch, cc.global, &self.budget, self.clock()) {
            Ok(vessel) => {
                cc.vessel = vessel;
                (n, None)
            }
            Err(rejected) => (n, Some(rejected)),
        }
    }

    fn bump(&self, which: &AtomicU64) {
        // Release: pairs with the Acquire loads in `catch_up`.
        which.fetch_add(1, Ordering::Release);
        self.gens.epoch.fetch_add(1, Ordering::Release);
    }

    /// Catches this thread's cache up, if it has one, without creating one.
    fn catch_up_current(self: &Arc<Self>) {
        if let Some(local) = self.locals.get() {
            drop(self.catch_up(local));
        }
    }

    /// Releases everything the depots hold, and asks every thread to drop
    /// its cache at its next operation. Returns `(objects, bytes)` released
    /// from the depots.
    pub(crate) fn trim(self: &Arc<Self>) -> (usize, usize) {
        self.bump(&self.gens.trim);
        let mut released = Vec::new();
        let (mut objects, mut bytes) = (0, 0);
        for (i, depot) in self.depots.iter().enumerate() {
            for batch in depot.drain(&self.budget) {
                objects += batch.len();
                bytes += batch.len().saturating_mul(self.class_bytes(i));
                released.push(batch);
            }
        }
        self.catch_up_current();
        drop(released);
        (objects, bytes)
    }

    /// Nanoseconds since the pool was built: the clock that stamps batches
    /// pushed to the depots.
    fn clock(&self) -> u64 {
        self.born.elapsed().as_nanos() as u64
    }

    /// Idle decay, at most every quarter of the decay interval: frees the
    /// batches that have sat in a depot, untaken, for a whole interval, and
    /// asks every thread to move its surplus (beyond one batch) to the
    /// depots at its next operation, where it ages the same way. Then
    /// catches this thread up. Returns true if this call ran a decay step.
    pub(crate) fn maintain(self: &Arc<Self>) -> bool {
        let now = self.clock();
        // Relaxed: the deadline only elects which caller runs the step; the
        // compare-exchange below makes that election exact.
        let due = self.decay_due.load(Ordering::Relaxed);
        let mut ticked = false;
        if now >= due {
            let period = self.limits().decay_interval.as_nanos() as u64;
            if self
                .decay_due
                .compare_exchange(
                    due,
                    now.saturating_add(period / DECAY_STEPS),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                let cutoff = now.saturating_sub(period);
                let mut released = Vec::new();
                for depot in self.depots.iter() {
                    released.extend(depot.decay(&self.budget, cutoff));
                }
                self.bump(&self.gens.decay);
                drop(released);
                ticked = true;
            }
        }
        self.catch_up_current();
        ticked
    }

    /// Installs new limits. Depot contents beyond the new bounds are
    /// released; thread caches shrink at their next operation.
    pub(crate) fn reconfigure(self: &Arc<Self>, limits: Limits) {
        let mut released = Vec::new();
        {
            let mut current = lock(&self.limits);
            self.budget.set_limit(limits.depot_bytes);
            // Relaxed: these are read on fast paths as hints; the caches'
            // own limits change through `catch_up`.
            self.hot.range.store(
                ((limits.min_shift as usize) << 8) | limits.max_shift as usize,
                Ordering::Relaxed,
            );
            self.hot
                .retention
                .store(retention_word(&limits), Ordering::Relaxed);
            for (i, depot) in self.depots.iter().enumerate() {
                released.extend(depot.shrink_to(limits.depot_objects[i], &self.budget));
            }
            // A lowered byte bound: release whole batches, largest classes
            // first, until what the depots hold fits it.
            for depot in self.depots.iter().rev() {
                while self.budget.used() > self.budget.limit() {
                    match depot.release_one(&self.budget) {
                        Some(batch) => released.push(batch),
                        None => break,
                    }
                }
            }
            *current = Arc::new(limits);
        }
        self.bump(&self.gens.config);
        self.catch_up_current();
        drop(released);
    }

    /// Creates up to `count` objects of `class` with `make` and stores them
    /// in the depot. Returns how many were stored.
    pub(crate) fn prewarm(&self, class: usize, count: usize, mut make: impl FnMut() -> T) -> usize {
        let limits = self.limits();
        let batch = limits.batch[class].max(1);
        let mut stored = 0;
        while stored < count {
            let n = batch.min(count - stored);
            let items: Vec<T> = (0..n).map(|_| make()).collect();
            match self.depots[class].push(
                items,
                limits.depot_objects[class],
                &self.budget,
                self.clock(),
            ) {
                Ok(_) => stored += n,
                Err(rejected) => {
                    drop(rejected);
                    break;
                }
            }
        }
        stored
    }

    /// Sums every thread's counters and the depot's, per class.
    pub(crate) fn sums(&self) -> Vec<Sums> {
        let mut sums = vec![Sums::default(); self.classes()];
        for local in self.locals.iter() {
            for (s, c) in sums.iter_mut().zip(local.counters.iter()) {
                s.add(c);
            }
        }
        for (i, s) in sums.iter_mut().enumerate() {
            s.depot = self.depots[i].counters();
            let o = &self.orphans[i];
            s.misses += o.misses.load(std::sync::atomic::Ordering::Relaxed);
            let orphaned = o.returns.load(std::sync::atomic::Ordering::Relaxed);
            s.returns += orphaned;
            s.stale += orphaned;
        }
        sums
    }

    /// Bytes an object of `class` accounts for.
    pub(crate) fn class_bytes(&self, class: usize) -> usize {
        (self.class_bytes)(class)
    }

    /// Bytes the depots hold.
    pub(crate) fn depot_bytes(&self) -> usize {
        self.budget.used()
    }
}

impl<T: Send + 'static> Shared<T> {
    /// Hands this thread's cache to the depots now.
    pub(crate) fn flush_thread(&self) {
        self.flush_current_thread();
    }
}

impl<T: Send + 'static> FlushOnExit for Shared<T> {
    fn flush_current_thread(&self) {
        let Some(local) = self.locals.get() else {
            return;
        };
        let mut dropped = Vec::new();
        // SAFETY: `local` is this thread's slot (`ThreadLocal::get` on this
        // thread, which still owns its id: see `exit.rs`); the closure runs
        // no user code.
        unsafe {
            local.with(|st| {
                // Whoever inherits this slot registers it again.
                st.epoch = u64::MAX;
                self.spill(st, local, &mut dropped, |cc| !cc.items.is_empty());
                for cc in st.classes.iter_mut() {
                    cc.vessel = None;
                }
            });
        }
        drop(dropped);
    }
}
