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

    /// Batches cut to the depot's room: none is refused (or counted).
    fn prewarm(&mut self, count: usize) {
        let mut stored = 0;
        while stored < count {
            let room = self.global.saturating_sub(self.depot_len());
            let n = self.batch.min(count - stored).min(room);
            if n == 0 || !self.push(n) {
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

/// The same kind of model for a `BufferPool<BytesMut>` whose buffers grow
/// (`reserve` past the class), advance, and have parts split off (frames
/// kept alive or dropped at once, and zero-capacity siblings). The model
/// knows each buffer's real allocation and predicts, for every return,
/// whether the pool keeps it: only when it is exactly the allocation lent
/// (never grew; no live split-off part of non-zero capacity; no
/// zero-capacity sibling alive when its view has moved, for then it cannot
/// be reclaimed whole). It predicts the counters, the retained and depot
/// bytes in real sizes, and checks that no checkout overlaps a live frame
/// and no frame's bytes change.
#[cfg(feature = "bytes")]
mod bytes_model {
    use bytes::{Buf, BufMut, Bytes, BytesMut};
    use pool_core::{BufferConfig, Returned, Ticket};
    use proptest::prelude::*;

    /// Classes 512 ..= 4096.
    const CLASSES: [usize; 4] = [512, 1024, 2048, 4096];

    #[derive(Debug, Clone)]
    enum Op {
        /// Check out from class `.0`, asking for `.1` (mod the class) bytes
        /// less than its size.
        Checkout(usize, usize),
        Return(usize),
        /// `reserve` twice the class size on a held buffer.
        Grow(usize),
        /// Write some bytes into a held buffer and `advance` past them.
        Advance(usize, usize),
        /// Write some bytes (maybe none) and split them off with
        /// `split_to`; the part is kept alive (`true`) or dropped at once.
        Split(usize, usize, bool),
        DropFrame(usize),
        Trim,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => (0usize..4, any::<usize>()).prop_map(|(c, r)| Op::Checkout(c, r)),
            8 => any::<usize>().prop_map(Op::Return),
            2 => any::<usize>().prop_map(Op::Grow),
            2 => (any::<usize>(), any::<usize>()).prop_map(|(i, k)| Op::Advance(i, k)),
            3 => (any::<usize>(), any::<usize>(), any::<bool>()).prop_map(|(i, k, keep)| Op::Split(i, k, keep)),
            2 => any::<usize>().prop_map(Op::DropFrame),
            1 => Just(Op::Trim),
        ]
    }

    /// A buffer checked out, as the model sees it.
    struct Held {
        buf: BytesMut,
        ticket: Ticket,
        class: usize,
        /// Where its allocation starts (a checkout is exactly the allocation
        /// lent, so its start at checkout). Parts are matched to buffers by
        /// allocation, not by checkout: a zero-capacity sibling split off in
        /// an earlier checkout still shares the allocation when it is
        /// handed out again.
        alloc: usize,
        grown: bool,
        /// The view's start moved since checkout (advance, or a non-empty
        /// part split off the front).
        moved: bool,
    }

    /// A split-off part, alive.
    struct Frame {
        /// The allocation the part shares (alive while the part is).
        alloc: usize,
        /// A frozen non-empty part and the byte it was filled with, or a
        /// zero-capacity sibling.
        part: Result<(Bytes, u8), BytesMut>,
    }

    /// One class: values in this thread's cache, batches in the depot.
    #[derive(Debug, Default, Clone)]
    struct Class {
        local: usize,
        depot: Vec<usize>,
    }

    #[derive(Debug, Default)]
    struct Model {
        cap: usize,
        batch: usize,
        depot_objects: usize,
        depot_bytes: usize,
        classes: [Class; 4],
        checkouts: u64,
        local_hits: u64,
        depot_hits: u64,
        misses: u64,
        returns: u64,
        dropped_on_return: u64,
        full: u64,
        trimmed: u64,
    }

    impl Model {
        fn depot_used(&self) -> usize {
            self.classes
                .iter()
                .zip(CLASSES)
                .map(|(c, size)| c.depot.iter().sum::<usize>() * size)
                .sum()
        }

        fn retained_bytes(&self) -> usize {
            self.classes
                .iter()
                .zip(CLASSES)
                .map(|(c, size)| (c.local + c.depot.iter().sum::<usize>()) * size)
                .sum()
        }

        fn retained(&self) -> usize {
            self.classes
                .iter()
                .map(|c| c.local + c.depot.iter().sum::<usize>())
                .sum()
        }

        fn checkout(&mut self, class: usize) {
            self.checkouts += 1;
            let c = &mut self.classes[class];
            if c.local > 0 {
                c.local -= 1;
                self.local_hits += 1;
            } else if let Some(n) = c.depot.pop() {
                c.local += n - 1;
                self.depot_hits += 1;
            } else {
                self.misses += 1;
            }
        }

        fn give_back(&mut self, class: usize, kept: bool) {
            self.returns += 1;
            if !kept {
                self.dropped_on_return += 1;
                return;
            }
            if self.classes[class].local >= self.cap {
                let n = self.batch.min(self.classes[class].local);
                let fits = self.classes[class].depot.iter().sum::<usize>() + n
                    <= self.depot_objects
                    && self.depot_used() + n * CLASSES[class] <= self.depot_bytes;
                if fits {
                    self.classes[class].depot.push(n);
                } else {
                    self.full += n as u64;
                }
                self.classes[class].local -= n;
            }
            self.classes[class].local += 1;
        }

        fn trim(&mut self) {
            self.trimmed += self.retained() as u64;
            for c in &mut self.classes {
                *c = Class::default();
            }
        }
    }

    fn overlaps(a: (usize, usize), b: (usize, usize)) -> bool {
        a.0 < b.0 + b.1 && b.0 < a.0 + a.1
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: if cfg!(miri) { 4 } else { 256 },
            ..ProptestConfig::default()
        })]

        #[test]
        fn buffer_pool_matches_the_model_in_real_bytes(
            cap in 1usize..8,
            batch in 1usize..8,
            depot_objects in 0usize..24,
            depot_kib in 0usize..64,
            ops in prop::collection::vec(op(), 1..150),
        ) {
            let batch = batch.min(cap);
            let depot_bytes = depot_kib << 10;
            let pool = BufferConfig::new()
                .min_class(512)
                .max_class(4096)
                .thread_capacity(cap)
                .thread_bytes(1 << 30)
                .batch(batch)
                .depot_capacity(depot_objects)
                .depot_bytes(depot_bytes)
                .build::<BytesMut>()
                .unwrap();
            let mut model = Model { cap, batch, depot_objects, depot_bytes, ..Model::default() };
            let mut held: Vec<Held> = Vec::new();
            let mut frames: Vec<Frame> = Vec::new();
            let mut fill = 0u8;
            for op in ops {
                match op {
                    Op::Checkout(class, r) => {
                        let size = CLASSES[class];
                        // Any request above the class below (7/8 of the
                        // size, four classes per doubling) gets this class.
                        let (mut buf, ticket) = pool.take(size - r % (size / 8));
                        model.checkout(class);
                        prop_assert_eq!(buf.len(), 0);
                        prop_assert_eq!(buf.capacity(), size, "a checkout has exactly its class's capacity");
                        let range = (buf.as_ptr() as usize, buf.capacity());
                        for f in &frames {
                            if let Ok((bytes, _)) = &f.part {
                                prop_assert!(
                                    !overlaps(range, (bytes.as_ptr() as usize, bytes.len())),
                                    "a checkout overlaps a live frame"
                                );
                            }
                        }
                        // Write over the whole buffer: a live frame that
                        // shared it would show it.
                        fill = fill.wrapping_add(1);
                        buf.put_bytes(fill, size);
                        buf.clear();
                        let alloc = range.0;
                        held.push(Held { buf, ticket, class, alloc, grown: false, moved: false });
                    }
                    Op::Return(i) if !held.is_empty() => {
                        let h = held.swap_remove(i % held.len());
                        let live_parts = frames.iter().filter(|f| f.alloc == h.alloc && f.part.is_ok()).count();
                        let siblings = frames.iter().filter(|f| f.alloc == h.alloc && f.part.is_err()).count();
                        let kept = !h.grown && live_parts == 0 && !(siblings > 0 && h.moved);
                        let verdict = pool.give_back(h.buf, h.ticket);
                        prop_assert_eq!(
                            verdict == Returned::Kept,
                            kept,
                            "verdict {:?}; grown {}, moved {}, {} live parts, {} zero-capacity siblings",
                            verdict, h.grown, h.moved, live_parts, siblings
                        );
                        model.give_back(h.class, kept);
                    }
                    Op::Grow(i) if !held.is_empty() => {
                        let n = held.len();
                        let h = &mut held[i % n];
                        h.buf.reserve(2 * CLASSES[h.class]);
                        h.grown = true;
                    }
                    Op::Advance(i, k) if !held.is_empty() => {
                        let n = held.len();
                        let h = &mut held[i % n];
                        let room = h.buf.capacity() - h.buf.len();
                        if room > 0 {
                            h.buf.put_bytes(0x5A, 1 + k % room);
                            let len = h.buf.len();
                            h.buf.advance(len);
                            h.moved = true;
                        }
                    }
                    Op::Split(i, k, keep) if !held.is_empty() => {
                        let n = held.len();
                        let h = &mut held[i % n];
                        let room = h.buf.capacity() - h.buf.len();
                        fill = fill.wrapping_add(1);
                        h.buf.clear();
                        h.buf.put_bytes(fill, k % (room + 1));
                        let len = h.buf.len();
                        let part = h.buf.split_to(len);
                        // After growth the buffer is on a new allocation the
                        // pool never takes back (it is discarded): its parts
                        // can share nothing the pool hands out.
                        let alloc = if h.grown { 0 } else { h.alloc };
                        if len > 0 {
                            h.moved = true;
                            if keep {
                                frames.push(Frame { alloc, part: Ok((part.freeze(), fill)) });
                            }
                        } else if keep {
                            prop_assert_eq!(part.capacity(), 0);
                            frames.push(Frame { alloc, part: Err(part) });
                        }
                    }
                    Op::DropFrame(j) if !frames.is_empty() => {
                        let f = frames.swap_remove(j % frames.len());
                        match &f.part {
                            Ok((bytes, byte)) => prop_assert!(
                                bytes.iter().all(|b| b == byte),
                                "a frame's bytes changed while it was alive"
                            ),
                            Err(sibling) => prop_assert!(sibling.is_empty() && sibling.capacity() == 0),
                        }
                    }
                    Op::Return(_) | Op::Grow(_) | Op::Advance(..) | Op::Split(..) | Op::DropFrame(_) => {}
                    Op::Trim => {
                        pool.trim();
                        model.trim();
                    }
                }
                let s = pool.stats();
                let t = s.total();
                prop_assert_eq!(t.checkouts, model.checkouts);
                prop_assert_eq!(t.local_hits, model.local_hits);
                prop_assert_eq!(t.depot_hits, model.depot_hits);
                prop_assert_eq!(t.misses, model.misses);
                prop_assert_eq!(t.returns, model.returns);
                prop_assert_eq!(s.outstanding(), held.len() as u64);
                prop_assert_eq!(
                    t.discarded.oversize + t.discarded.shared + t.discarded.rejected + t.discarded.stale,
                    model.dropped_on_return
                );
                prop_assert_eq!(t.discarded.full, model.full);
                prop_assert_eq!(t.discarded.trimmed, model.trimmed);
                prop_assert_eq!(s.retained_objects(), model.retained() as u64);
                prop_assert_eq!(s.retained_bytes(), model.retained_bytes() as u64, "retained bytes, real sizes");
                prop_assert_eq!(s.depot_bytes, model.depot_used(), "depot bytes, real sizes");
                prop_assert!(s.depot_bytes <= depot_bytes);
                for f in &frames {
                    if let Err(sibling) = &f.part {
                        prop_assert!(sibling.is_empty() && sibling.capacity() == 0);
                    }
                }
            }
        }
    }
}
