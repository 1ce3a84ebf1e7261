//! Statistics snapshots.

use std::fmt;

use crate::engine::Sums;
// Re-exported where they were defined before, for the crate's own imports.
pub(crate) use crate::outcome::{Discard, Returned, Source};

/// Why returned values were dropped instead of kept, by count.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Discards {
    /// A full depot (object or byte bound) refused a batch.
    pub full: u64,
    /// The buffer was no longer exactly the allocation lent (it grew, or
    /// its start moved).
    pub oversize: u64,
    /// The recycling policy's `reset` returned false.
    pub rejected: u64,
    /// A split-off part still shared the buffer's memory.
    pub shared: u64,
    /// The value's class left the configured range while it was out (or it
    /// was returned on a thread that was tearing down).
    pub stale: u64,
    /// Dropped from caches or the depot by `trim`, idle decay or a
    /// lowered bound.
    pub trimmed: u64,
}

impl Discards {
    /// All discards together.
    ///
    /// ```
    /// assert_eq!(pool_core::Discards::default().total(), 0);
    /// ```
    pub fn total(&self) -> u64 {
        self.full + self.oversize + self.rejected + self.shared + self.stale + self.trimmed
    }

    fn add(&mut self, o: &Discards) {
        self.full += o.full;
        self.oversize += o.oversize;
        self.rejected += o.rejected;
        self.shared += o.shared;
        self.stale += o.stale;
        self.trimmed += o.trimmed;
    }
}

/// Counters of one size class (or of a whole generic pool).
///
/// `checkouts = local_hits + depot_hits + misses`; `outstanding =
/// checkouts - returns - detached`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClassStats {
    /// The class's buffer size; `None` for a generic pool.
    pub class_size: Option<usize>,
    /// Checkouts served by this class.
    pub checkouts: u64,
    /// Served from the checking-out thread's cache.
    pub local_hits: u64,
    /// Served after taking a batch from the depot.
    pub depot_hits: u64,
    /// Served by a new allocation because cache and depot were empty.
    pub misses: u64,
    /// Values handed back (kept or discarded).
    pub returns: u64,
    /// Values taken out for good.
    pub detached: u64,
    /// Batches taken from the depot.
    pub batches_taken: u64,
    /// Batches pushed to the depot (accepted or not).
    pub batches_pushed: u64,
    /// Values dropped, by reason.
    pub discarded: Discards,
    /// Checked out and not yet returned.
    pub outstanding: u64,
    /// Values in thread caches.
    pub retained_local: u64,
    /// Values in the depot.
    pub retained_depot: u64,
    /// Bytes asked for by this class's checkouts (the sum of their
    /// `min_capacity`; 0 for a generic pool).
    pub requested_bytes: u64,
    /// Bytes lent by this class's checkouts: checkouts × class size (0 for
    /// a generic pool).
    pub lent_bytes: u64,
}

impl ClassStats {
    /// Checkouts served without a new allocation.
    ///
    /// ```
    /// let mut c = pool_core::ClassStats::default();
    /// c.local_hits = 3;
    /// c.depot_hits = 1;
    /// assert_eq!(c.hits(), 4);
    /// ```
    pub fn hits(&self) -> u64 {
        self.local_hits + self.depot_hits
    }

    /// `hits / checkouts`, a fraction from 0 to 1, or 0 with no checkouts.
    /// Where it is shown as a percentage (the `Display` table of [`Stats`],
    /// pool-tokio's reporter) it is named `hit_pct`.
    ///
    /// ```
    /// let mut c = pool_core::ClassStats::default();
    /// (c.checkouts, c.local_hits) = (4, 3);
    /// assert_eq!(c.hit_rate(), 0.75);
    /// ```
    pub fn hit_rate(&self) -> f64 {
        ratio(self.hits(), self.checkouts)
    }

    /// Values the pool keeps (thread caches and depot).
    ///
    /// ```
    /// let mut c = pool_core::ClassStats::default();
    /// (c.retained_local, c.retained_depot) = (2, 5);
    /// assert_eq!(c.retained(), 7);
    /// ```
    pub fn retained(&self) -> u64 {
        self.retained_local + self.retained_depot
    }

    /// Bytes the pool keeps in this class: retained × class size, which is
    /// the real size of every kept allocation (a buffer is kept only at
    /// exactly its class size).
    ///
    /// ```
    /// let mut c = pool_core::ClassStats::default();
    /// (c.class_size, c.retained_depot) = (Some(4096), 2);
    /// assert_eq!(c.retained_bytes(), 8192);
    /// ```
    pub fn retained_bytes(&self) -> u64 {
        self.retained() * self.class_size.unwrap_or(0) as u64
    }

    /// What rounding requests up to the class size cost: `lent_bytes /
    /// requested_bytes - 1` (0.25: a quarter more memory lent than asked
    /// for), or 0 when nothing was requested. A request below the smallest
    /// class counts its own size, so tiny requests show as waste.
    ///
    /// ```
    /// let pool = pool_core::BufferPool::<Vec<u8>>::new();
    /// drop(pool.checkout(2560)); // exactly a class
    /// drop(pool.checkout(2049)); // rounded up to 2560
    /// let class = *pool.stats().class(2560).unwrap();
    /// assert_eq!((class.requested_bytes, class.lent_bytes), (2560 + 2049, 2 * 2560));
    /// assert!((class.waste() - (5120.0 / 4609.0 - 1.0)).abs() < 1e-12);
    /// ```
    pub fn waste(&self) -> f64 {
        waste(self.lent_bytes, self.requested_bytes)
    }

    fn from_sums(s: &Sums, class_size: Option<usize>) -> Self {
        let checkouts = s.local_hits + s.depot_hits + s.misses;
        let local_discards = s.rejected + s.oversize + s.shared + s.stale;
        // Values that entered this class's thread caches, minus those that
        // left. Computed in i128: counters of a live pool are read at
        // slightly different moments.
        let cached = (s.returns as i128 - local_discards as i128) + s.objects_taken as i128
            - (s.local_hits + s.depot_hits) as i128
            - s.objects_pushed as i128
            - s.trimmed as i128;
        let outstanding = checkouts as i128 - s.returns as i128 - s.detached as i128;
        ClassStats {
            class_size,
            checkouts,
            local_hits: s.local_hits,
            depot_hits: s.depot_hits,
            misses: s.misses,
            returns: s.returns,
            detached: s.detached,
            batches_taken: s.batches_taken,
            batches_pushed: s.batches_pushed,
            discarded: Discards {
                full: s.depot.discarded_full,
                oversize: s.oversize,
                rejected: s.rejected,
                shared: s.shared,
                stale: s.stale,
                trimmed: s.trimmed + s.depot.released,
            },
            outstanding: outstanding.max(0) as u64,
            retained_local: cached.max(0) as u64,
            retained_depot: s.depot.objects,
            requested_bytes: s.requested,
            lent_bytes: checkouts.saturating_mul(class_size.unwrap_or(0) as u64),
        }
    }

    fn add(&mut self, o: &ClassStats) {
        self.checkouts += o.checkouts;
        self.local_hits += o.local_hits;
        self.depot_hits += o.depot_hits;
        self.misses += o.misses;
        self.returns += o.returns;
        self.detached += o.detached;
        self.batches_taken += o.batches_taken;
        self.batches_pushed += o.batches_pushed;
        self.discarded.add(&o.discarded);
        self.outstanding += o.outstanding;
        self.retained_local += o.retained_local;
        self.retained_depot += o.retained_depot;
        self.requested_bytes += o.requested_bytes;
        self.lent_bytes += o.lent_bytes;
    }
}

fn waste(lent: u64, requested: u64) -> f64 {
    if requested == 0 {
        0.0
    } else {
        lent as f64 / requested as f64 - 1.0
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// A snapshot of a pool's counters: per class, and unpooled requests.
///
/// The counters are read one after another while other threads run, so a
/// buffer moving between a thread's cache and the depot at that moment (a
/// spill, a flush, a thread's exit) can show in both `retained_local` and
/// `retained_depot`. Once no thread is using the pool (thread exits
/// included: a scoped thread's exit flush may still run after its scope
/// ends) the figures add up.
///
/// ```
/// let pool = pool_core::BufferPool::<Vec<u8>>::new();
/// drop(pool.checkout(100));
/// drop(pool.checkout(100));
/// drop(pool.checkout(8 << 20)); // above the largest class
/// let s = pool.stats();
/// assert_eq!((s.checkouts(), s.hits(), s.misses(), s.unpooled_checkouts), (3, 1, 2, 1));
/// assert_eq!(s.outstanding(), 0);
/// println!("{s}"); // a table, one row per class in use
/// ```
///
/// The table names its columns as the fields and methods do (`retained`
/// for [`ClassStats::retained`]), except `hit_pct` and `waste_pct`:
/// [`ClassStats::hit_rate`] and [`ClassStats::waste`] as percentages:
///
/// ```
/// let pool = pool_core::BufferPool::<Vec<u8>>::new();
/// drop(pool.checkout(4096));
/// drop(pool.checkout(4096));
/// let table = pool.stats().to_string();
/// let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
/// assert_eq!(
///     header,
///     [
///         "class", "checkouts", "local_hit", "depot_hit", "miss", "hit_pct", "discarded", "out",
///         "retained", "waste_pct"
///     ]
/// );
/// assert!(table.contains("   4K          2          1         0         1    50.0"), "{table}");
/// assert!(table.ends_with("1 retained (4096 bytes), waste_pct 0.0"), "{table}");
/// drop(pool.checkout(1100)); // lent 1280: 16.4% waste
/// let table = pool.stats().to_string();
/// assert!(table.contains("1280B          1"), "{table}");
/// assert!(table.lines().any(|l| l.starts_with("    1280B") && l.ends_with("16.4")), "{table}");
/// ```
#[derive(Debug, Default, Clone, PartialEq)]
#[non_exhaustive]
pub struct Stats {
    /// Per class: every class of the configured range, and any other class
    /// with activity. One entry for a generic pool.
    pub classes: Vec<ClassStats>,
    /// Checkouts above the largest class (plain allocations; each is a
    /// miss).
    pub unpooled_checkouts: u64,
    /// Unpooled buffers returned (and dropped: each is a discard).
    pub unpooled_returns: u64,
    /// Unpooled buffers taken out for good (`detach`, `forget`): neither
    /// returns nor discards, the pool dropped nothing.
    pub unpooled_detached: u64,
    /// Bytes the depot holds (the byte bound's gauge).
    pub depot_bytes: usize,
}

impl Stats {
    pub(crate) fn from_sums(
        sums: Vec<Sums>,
        class: impl Fn(usize) -> Option<(usize, bool)>,
        depot_bytes: usize,
        sized: bool,
    ) -> Stats {
        let mut stats = Stats {
            depot_bytes,
            ..Stats::default()
        };
        for (slot, s) in sums.iter().enumerate() {
            match class(slot) {
                Some((size, in_range)) => {
                    let c = ClassStats::from_sums(s, Some(size));
                    if in_range || c != ClassStats::from_sums(&Sums::default(), Some(size)) {
                        stats.classes.push(c);
                    }
                }
                None if sized => {
                    stats.unpooled_checkouts = s.misses;
                    stats.unpooled_returns = s.returns;
                    stats.unpooled_detached = s.detached;
                }
                None => stats.classes.push(ClassStats::from_sums(s, None)),
            }
        }
        // A snapshot may be kept (pool-tokio caches one): no spare room.
        stats.classes.shrink_to_fit();
        stats
    }

    /// The class serving `size`-byte buffers, if listed.
    ///
    /// ```
    /// let pool = pool_core::BufferPool::<Vec<u8>>::new();
    /// assert!(pool.stats().class(4096).is_some());
    /// assert!(pool.stats().class(3000).is_none()); // not a class size
    /// ```
    pub fn class(&self, size: usize) -> Option<&ClassStats> {
        self.classes.iter().find(|c| c.class_size == Some(size))
    }

    /// All classes summed (unpooled requests not included).
    ///
    /// ```
    /// let pool: pool_core::Pool<String> = pool_core::Pool::new();
    /// drop(pool.checkout());
    /// assert_eq!(pool.stats().total().checkouts, 1);
    /// ```
    pub fn total(&self) -> ClassStats {
        let mut t = ClassStats::default();
        for c in &self.classes {
            t.add(c);
        }
        t
    }

    /// All checkouts, unpooled included.
    ///
    /// ```
    /// let pool: pool_core::Pool<String> = pool_core::Pool::new();
    /// assert_eq!(pool.stats().checkouts(), 0);
    /// ```
    pub fn checkouts(&self) -> u64 {
        self.total().checkouts + self.unpooled_checkouts
    }

    /// Checkouts served without allocating.
    ///
    /// ```
    /// let pool: pool_core::Pool<String> = pool_core::Pool::new();
    /// assert_eq!(pool.stats().hits(), 0);
    /// ```
    pub fn hits(&self) -> u64 {
        self.total().hits()
    }

    /// Checkouts that allocated: empty pool, or above the largest class.
    ///
    /// ```
    /// let pool: pool_core::Pool<String> = pool_core::Pool::new();
    /// drop(pool.checkout());
    /// assert_eq!(pool.stats().misses(), 1);
    /// ```
    pub fn misses(&self) -> u64 {
        self.total().misses + self.unpooled_checkouts
    }

    /// `hits / checkouts`, a fraction from 0 to 1, or 0 with no checkouts
    /// (`hit_pct`, a percentage, in the `Display` table).
    ///
    /// ```
    /// let pool: pool_core::Pool<String> = pool_core::Pool::new();
    /// assert_eq!(pool.stats().hit_rate(), 0.0);
    /// ```
    pub fn hit_rate(&self) -> f64 {
        ratio(self.hits(), self.checkouts())
    }

    /// Values checked out and not yet returned, unpooled included.
    ///
    /// ```
    /// let pool: pool_core::Pool<String> = pool_core::Pool::new();
    /// let held = pool.checkout();
    /// assert_eq!(pool.stats().outstanding(), 1);
    /// drop(held);
    /// assert_eq!(pool.stats().outstanding(), 0);
    /// ```
    pub fn outstanding(&self) -> u64 {
        self.total().outstanding
            + self
                .unpooled_checkouts
                .saturating_sub(self.unpooled_returns + self.unpooled_detached)
    }

    /// Values kept by the pool, in thread caches and the depot.
    ///
    /// ```
    /// let pool: pool_core::Pool<String> = pool_core::Pool::new();
    /// drop(pool.checkout());
    /// assert_eq!(pool.stats().retained_objects(), 1);
    /// ```
    pub fn retained_objects(&self) -> u64 {
        self.total().retained()
    }

    /// Nominal bytes kept by the pool (0 for a generic pool).
    ///
    /// ```
    /// let pool = pool_core::BufferPool::<Vec<u8>>::new();
    /// drop(pool.checkout(4096));
    /// assert_eq!(pool.stats().retained_bytes(), 4096);
    /// ```
    pub fn retained_bytes(&self) -> u64 {
        self.classes.iter().map(ClassStats::retained_bytes).sum()
    }

    /// Pool-wide [`ClassStats::waste`]: bytes lent over bytes requested,
    /// minus 1, over every class (unpooled requests, lent exactly what they
    /// ask for, are not included). 0 for a generic pool.
    ///
    /// ```
    /// let pool = pool_core::BufferPool::<Vec<u8>>::new();
    /// drop(pool.checkout(4096)); // a class: no waste
    /// drop(pool.checkout(5000)); // lent 5120
    /// let s = pool.stats();
    /// assert_eq!((s.total().requested_bytes, s.total().lent_bytes), (9096, 9216));
    /// assert!((s.waste() - (9216.0 / 9096.0 - 1.0)).abs() < 1e-12);
    /// ```
    pub fn waste(&self) -> f64 {
        self.total().waste()
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:>9} {:>10} {:>10} {:>9} {:>9} {:>7} {:>9} {:>8} {:>9} {:>9}",
            "class",
            "checkouts",
            "local_hit",
            "depot_hit",
            "miss",
            "hit_pct",
            "discarded",
            "out",
            "retained",
            "waste_pct"
        )?;
        let row = |f: &mut fmt::Formatter<'_>, name: String, c: &ClassStats| {
            writeln!(
                f,
                "{:>9} {:>10} {:>10} {:>9} {:>9} {:>7.1} {:>9} {:>8} {:>9} {:>9.1}",
                name,
                c.checkouts,
                c.local_hits,
                c.depot_hits,
                c.misses,
                c.hit_rate() * 100.0,
                c.discarded.total(),
                c.outstanding,
                c.retained(),
                c.waste() * 100.0
            )
        };
        for c in self
            .classes
            .iter()
            .filter(|c| c.checkouts > 0 || c.retained() > 0)
        {
            // Whole units only: 1280 B is `1280B`, not a rounded `1K`.
            let name = match c.class_size {
                Some(n) if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{}M", n >> 20),
                Some(n) if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{}K", n >> 10),
                Some(n) => format!("{n}B"),
                None => "all".to_string(),
            };
            row(f, name, c)?;
        }
        if self.unpooled_checkouts > 0 {
            writeln!(
                f,
                "{:>9} {:>10} {:>10} {:>9} {:>9}",
                "unpooled", self.unpooled_checkouts, 0, 0, self.unpooled_checkouts
            )?;
        }
        write!(
            f,
            "total: {} checkouts, hit_pct {:.1}, {} outstanding, {} retained ({} bytes), waste_pct {:.1}",
            self.checkouts(),
            self.hit_rate() * 100.0,
            self.outstanding(),
            self.retained_objects(),
            self.retained_bytes(),
            self.waste() * 100.0
        )
    }
}
