//! The resolved settings a pool runs on: the per-class table ([`Limits`],
//! one [`ClassLimits`] per class index), the class arithmetic
//! ([`Spacing`]), and the validation that turns a builder into them
//! ([`PoolConfig::limits`], [`BufferConfig::limits`]): the one place
//! settings become per-class bounds.

use std::num::NonZeroUsize;
use std::time::Duration;

use super::{
    default_batch, BufferConfig, ConfigError, PoolConfig, MAX_CLASSES_PER_DOUBLING, MAX_CLASS_SIZE,
    MAX_THREAD_CAPACITY,
};

/// How a size-classed pool spaces its classes: `n = 2^log2` classes per
/// power of two. Sizes in `(2^k, 2^(k+1)]` (for `2^k >= n`) fall into `n`
/// classes of sizes `2^k + (j+1) * 2^(k-log2)`, `j` in `0..n`; sizes up to
/// `2n` are each a class of their own. The index of a class counts every
/// class from size 1 up, whatever the configured range, so that a runtime
/// change of `min_class` or `max_class` needs no re-indexing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Spacing {
    log2: u32,
    /// `1 << log2`; non-zero, so that `x | n` is too and its top bit
    /// needs no zero check.
    n: NonZeroUsize,
}

impl Spacing {
    pub(crate) const fn new(log2: u32) -> Self {
        let n = match NonZeroUsize::new(1 << log2) {
            Some(n) => n,
            None => panic!("1 << log2 is not zero"),
        };
        Spacing { log2, n }
    }

    /// Classes per doubling.
    pub(crate) const fn per_doubling(self) -> usize {
        1 << self.log2
    }

    /// The index of the smallest class of at least `size` bytes, `size >= 1`.
    /// Branch-free: with `x = size - 1`, the top bit of `x | n` gives the
    /// doubling, the next `log2` bits of `x` the class within it (an exact
    /// power of two is the last class of the doubling below it).
    #[inline(always)]
    pub(crate) fn index(self, size: usize) -> usize {
        debug_assert!(size >= 1);
        let x = size - 1;
        // The top bit of `x | n` is at least `log2`, so the shift is at
        // least 0; `m = x >> shift` is in `n..2n` (or `x` itself below `n`).
        // The class's size is `(m + 1) << shift`; the pool reads it from
        // its table instead, off the index's critical path.
        let shift = (self.n | x).ilog2() - self.log2;
        let m = x >> shift;
        shift as usize * self.n.get() + m
    }

    /// The size of class `index` (the inverse of [`index`](Self::index) on
    /// class sizes).
    pub(crate) const fn size(self, index: usize) -> usize {
        let n = 1usize << self.log2;
        let shift = (index >> self.log2).saturating_sub(1);
        (index - shift * n + 1) << shift
    }

    /// How many classes there are from size 1 to [`MAX_CLASS_SIZE`].
    pub(crate) fn count(self) -> usize {
        self.index(MAX_CLASS_SIZE) + 1
    }
}

/// The resolved settings of one class, built once from a config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClassLimits {
    /// Bytes of a buffer of this class (0 for generic pools and for the
    /// unpooled slot).
    pub(crate) size: usize,
    /// Most values one thread caches; 0 when the class is not retained.
    pub(crate) cap: usize,
    /// Values moved between a thread and the depot at once.
    pub(crate) batch: usize,
    /// Most values the depot holds.
    pub(crate) depot_objects: usize,
    /// A large class: its share of `thread_bytes` is below one buffer, so
    /// a thread keeps one at most, and the large classes together keep at
    /// most `thread_bytes` (see `Limits::loose_bytes`).
    pub(crate) loose: bool,
}

impl ClassLimits {
    /// Most bytes one thread caches in this class.
    #[cfg(test)]
    pub(crate) fn thread_bytes(&self) -> usize {
        self.cap.saturating_mul(self.size)
    }
}

/// Validated limits: the per-class table and the pool-wide bounds.
/// Immutable; a reconfigure installs a new one, with the same spacing and
/// so the same class count and sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Limits {
    /// One entry per class index (a size-classed pool's last entry is its
    /// unpooled slot; a generic pool has one entry).
    pub(crate) classes: Box<[ClassLimits]>,
    pub(crate) spacing: Spacing,
    /// `log2(min_class)`.
    pub(crate) min_shift: u32,
    /// Index of the largest class.
    pub(crate) max_index: usize,
    /// Index of the first large class (`classes.len()` when none): every
    /// class from it to `max_index` is large.
    pub(crate) first_loose: usize,
    /// Most bytes one thread keeps in all large classes together (always
    /// at least the buffer just returned).
    pub(crate) loose_bytes: usize,
    pub(crate) depot_bytes: usize,
    pub(crate) zero_on_return: bool,
    pub(crate) decay_interval: Duration,
    /// Classes above a missed one that may serve it (0: none).
    pub(crate) fallback: usize,
    /// Whether those classes also stop at 1.5x the missed class's size
    /// (the default depth; a depth set explicitly is taken as it is).
    pub(crate) fallback_capped: bool,
}

impl Limits {
    /// Index of the smallest class.
    pub(crate) fn min_index(&self) -> usize {
        self.spacing.index(1 << self.min_shift)
    }
}

/// The checks both builders share.
fn check_common(
    thread_capacity: usize,
    batch: Option<usize>,
    decay_interval: Duration,
) -> Result<(), ConfigError> {
    if !(1..=MAX_THREAD_CAPACITY).contains(&thread_capacity) {
        return Err(ConfigError::new(
            "thread_capacity",
            thread_capacity,
            format!("1 ..= {MAX_THREAD_CAPACITY} objects per thread"),
        ));
    }
    if let Some(batch) = batch {
        if batch == 0 || batch > thread_capacity {
            return Err(ConfigError::new(
                "batch",
                batch,
                format!("1 ..= thread_capacity ({thread_capacity})"),
            ));
        }
    }
    if decay_interval.is_zero() {
        return Err(ConfigError::new(
            "decay_interval",
            format!("{decay_interval:?}"),
            "a non-zero duration",
        ));
    }
    Ok(())
}

impl PoolConfig {
    /// Validates the settings and resolves them into a generic pool's
    /// one-entry table.
    pub(crate) fn limits(&self) -> Result<Limits, ConfigError> {
        check_common(self.thread_capacity, self.batch, self.decay_interval)?;
        Ok(Limits {
            classes: Box::new([ClassLimits {
                size: 0,
                cap: self.thread_capacity,
                batch: self.get_batch(),
                depot_objects: self.depot_capacity,
                loose: false,
            }]),
            spacing: Spacing::new(0),
            min_shift: 0,
            max_index: 0,
            first_loose: 1,
            loose_bytes: 0,
            depot_bytes: usize::MAX,
            zero_on_return: false,
            decay_interval: self.decay_interval,
            fallback: 0,
            fallback_capped: false,
        })
    }
}

impl BufferConfig {
    /// Validates the settings and resolves them into the class table: one
    /// entry per class index from size 1 up, plus the unpooled slot.
    pub(crate) fn limits(&self) -> Result<Limits, ConfigError> {
        let class_ok = |n: usize| n.is_power_of_two() && n <= MAX_CLASS_SIZE;
        let expected = |n: usize| {
            let hint = if n == 0 {
                "1".to_string()
            } else if n > MAX_CLASS_SIZE {
                MAX_CLASS_SIZE.to_string()
            } else {
                n.next_power_of_two().to_string()
            };
            format!("a power of two from 1 to {MAX_CLASS_SIZE} bytes (try {hint})")
        };
        if !class_ok(self.min_class) {
            return Err(ConfigError::new(
                "min_class",
                self.min_class,
                expected(self.min_class),
            ));
        }
        if !class_ok(self.max_class) {
            return Err(ConfigError::new(
                "max_class",
                self.max_class,
                expected(self.max_class),
            ));
        }
        if self.max_class < self.min_class {
            return Err(ConfigError::new(
                "max_class",
                self.max_class,
                format!("at least min_class ({})", self.min_class),
            ));
        }
        check_common(self.thread_capacity, self.batch, self.decay_interval)?;
        if self.get_max_retained() < self.min_class {
            return Err(ConfigError::new(
                "max_retained",
                self.get_max_retained(),
                format!("at least min_class ({})", self.min_class),
            ));
        }
        let n = self.classes_per_doubling;
        if !(n.is_power_of_two() && n <= MAX_CLASSES_PER_DOUBLING) {
            return Err(ConfigError::new(
                "classes_per_doubling",
                n,
                format!("1, 2, 4 or {MAX_CLASSES_PER_DOUBLING} classes per power of two"),
            ));
        }
        let spacing = Spacing::new(n.trailing_zeros());
        let min_index = spacing.index(self.min_class);
        let max_index = spacing.index(self.max_class);
        // One entry per class index from size 1 up, plus the unpooled slot
        // (size 0); classes outside the range keep nothing.
        // The batch setting as a plain number (0: the default per class),
        // read once: with `Option<usize>` in the loop the optimiser
        // compared the payload of a `None` (uninitialised bytes) before
        // selecting on the discriminant, which valgrind reports.
        let batch_setting = std::hint::black_box(self.batch.unwrap_or(0));
        let classes = (0..=spacing.count())
            .map(|i| {
                let size = if i < spacing.count() {
                    spacing.size(i)
                } else {
                    0
                };
                let mut class = ClassLimits {
                    size,
                    cap: 0,
                    batch: 1,
                    depot_objects: 0,
                    loose: false,
                };
                if (min_index..=max_index).contains(&i) {
                    let c = self.class_thread_capacity(size);
                    let batch = if batch_setting == 0 {
                        default_batch(c)
                    } else {
                        batch_setting
                    };
                    class.batch = batch.min(c);
                    if size <= self.get_max_retained() {
                        class.cap = c;
                        class.depot_objects = self.depot_capacity;
                        class.loose = self.is_large_class(size);
                    }
                }
                class
            })
            .collect::<Box<[ClassLimits]>>();
        // Large classes sit at the top of the range (sizes grow with the
        // index).
        let first_loose = classes
            .iter()
            .position(|c| c.loose)
            .unwrap_or(classes.len());
        Ok(Limits {
            classes,
            spacing,
            min_shift: self.min_class.trailing_zeros(),
            max_index,
            first_loose,
            loose_bytes: self.thread_bytes,
            depot_bytes: self.depot_bytes,
            zero_on_return: self.zero_on_return,
            decay_interval: self.decay_interval,
            fallback: self.get_fallback_classes(),
            fallback_capped: self.fallback_is_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MAX_SHIFT;

    #[test]
    fn spacing_one_is_the_power_of_two_index() {
        let s = Spacing::new(0);
        for shift in 0..=MAX_SHIFT {
            assert_eq!(s.index(1 << shift), shift as usize);
            assert_eq!(s.size(shift as usize), 1 << shift);
        }
        assert_eq!(s.count(), 31);
    }

    #[test]
    fn the_table_lists_each_class_once_with_its_bounds() {
        let config = BufferConfig::new()
            .min_class(1024)
            .max_class(2048)
            .thread_bytes(4096);
        let limits = config.limits().unwrap();
        let sizes: Vec<_> = limits.classes[limits.min_index()..=limits.max_index]
            .iter()
            .map(|c| (c.size, c.cap, c.thread_bytes(), c.loose))
            .collect();
        // 4096 bytes per doubling, four classes: 1024 bytes each, so every
        // class above 1024 is large.
        assert_eq!(
            sizes,
            [
                (1024, 1, 1024, false),
                (1280, 1, 1280, true),
                (1536, 1, 1536, true),
                (1792, 1, 1792, true),
                (2048, 1, 2048, true)
            ]
        );
        assert_eq!(limits.first_loose, limits.min_index() + 1);
        assert_eq!(limits.loose_bytes, 4096);
        let wide = config.thread_bytes(16 << 10).limits().unwrap();
        let caps: Vec<_> = wide.classes[wide.min_index()..=wide.max_index]
            .iter()
            .map(|c| (c.cap, c.loose))
            .collect();
        assert_eq!(
            caps,
            [(4, false), (3, false), (2, false), (2, false), (2, false)]
        );
        assert_eq!(wide.first_loose, wide.classes.len());
        assert_eq!(limits.classes.len(), Spacing::new(2).count() + 1);
        assert_eq!(limits.classes.last().unwrap().size, 0, "the unpooled slot");
        assert!(limits.classes[..limits.min_index()]
            .iter()
            .all(|c| c.cap == 0));
    }
}
