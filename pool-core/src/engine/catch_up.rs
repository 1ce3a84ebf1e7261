//! Bringing a thread's slot up to date with trims, decay ticks and
//! configuration changes, on that thread's next slow-path operation.

use crate::loom::Ordering;
use crate::spine::{Engine, Slot};

impl<T: Send + 'static> Engine<T> {
    /// Applies to `slot` (claimed by this thread) every trim, decay tick and
    /// configuration change it has not seen. Returns the values to drop,
    /// which the caller drops after its own bookkeeping.
    #[cold]
    pub(super) fn catch_up(&self, slot: &Slot<T>) -> Vec<T> {
        // Acquire: pairs with the Release in `bump`, so the limits and the
        // depot state that a trim or reconfigure left are visible here.
        let epoch = self.gens.epoch.load(Ordering::Acquire);
        let mut dropped = Vec::new();
        if slot.epoch() == epoch {
            return dropped;
        }
        // Read after `epoch`: a change that lands in between is applied now
        // and again (harmlessly) at the next operation, whose epoch differs.
        let trim = self.gens.trim.load(Ordering::Acquire);
        let decay = self.gens.decay.load(Ordering::Acquire);
        let config = self.gens.config.load(Ordering::Acquire);
        slot.set_epoch(epoch);
        if slot.trim_gen.get() != trim {
            slot.trim_gen.set(trim);
            for c in slot.classes() {
                let n = c.drain_into(&mut dropped);
                c.counters.trimmed.add(n as u64);
            }
        }
        if slot.config_gen.get() != config {
            slot.config_gen.set(config);
            let limits = self.limits();
            for (c, l) in slot.classes().iter().zip(limits.classes.iter()) {
                let cut = c.set_limits(l.cap, l.batch, &mut dropped);
                c.set_loose(l.loose);
                c.counters.trimmed.add(cut as u64);
            }
            slot.set_loose(limits.first_loose, limits.loose_bytes);
            // Classes that became large keep what they held: bring them
            // under the large classes' byte bound now (a return into one
            // of them would, through `open_loose`, but a thread may never
            // make one).
            self.fit_loose(slot, &mut dropped);
        }
        if slot.decay_gen.get() != decay {
            slot.decay_gen.set(decay);
            // Idle decay, thread side: move what lies beyond one batch to the
            // depot, whose own decay frees what stays unused there.
            for (i, c) in slot.classes().iter().enumerate() {
                while c.len() > c.batch() {
                    self.spill_one(i, slot, &mut dropped);
                }
            }
        }
        dropped
    }

    /// Pushes one batch of class `class` of `slot` to the depot; what the
    /// depot refuses goes to `dropped`.
    pub(super) fn spill_one(&self, class: usize, slot: &Slot<T>, dropped: &mut Vec<T>) {
        let c = slot.class(class);
        let (n, rejected) = c.spill(&self.class_depot(class));
        if n > 0 {
            c.counters.batches_pushed.bump();
            c.counters.objects_pushed.add(n as u64);
        }
        dropped.extend(rejected.into_iter().flatten());
    }
}
