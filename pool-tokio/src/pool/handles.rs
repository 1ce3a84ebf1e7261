//! `BytesPool`'s handles: made (`with_config`, and `from_handle`, which
//! every handle of an `Arc` pool goes through), cloned and dropped, each
//! counted in `Inner::handles`, so that the pool closes at its last
//! handle (see `runtime::stash`); and `leak`, a handle counted for good.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use pool_core::BufferConfig;

use super::{BytesPool, Handle, Inner};
use crate::error::BuildError;
use crate::runtime::stash;

impl BytesPool {
    /// A handle of the pool `handle` reaches, counted among its handles
    /// (an `Arc` pool's). The first one, and the first after the pool
    /// closed (a guard's `pool()`), starts the pool's decay thread unless
    /// it still runs.
    pub(crate) fn from_handle(handle: Handle) -> BytesPool {
        if let Handle::Shared(arc) = &handle {
            if arc.handles.fetch_add(1, Ordering::Relaxed) == 0 && arc.settings.decay_thread {
                crate::background::start_decay_thread(&handle);
            }
        }
        BytesPool {
            handle,
            counted: true,
        }
    }

    /// A handle for the pool's own background threads and tasks, not
    /// counted: it neither keeps the pool open nor closes it, and its drop
    /// leaves the thread's stash alone.
    pub(crate) fn uncounted(handle: Handle) -> BytesPool {
        BytesPool {
            handle,
            counted: false,
        }
    }
}

impl Clone for BytesPool {
    fn clone(&self) -> Self {
        BytesPool::from_handle(self.handle.clone())
    }
}

impl Drop for BytesPool {
    /// At the last handle, closes the pool (see [`BytesPool`]) and gives
    /// up this thread's stash of its references (so that a pool used and
    /// dropped on one thread is freed at once). Any other handle's drop
    /// (a clone, `guard.pool()`) leaves the stash alone.
    fn drop(&mut self) {
        if let (Handle::Shared(arc), true) = (&self.handle, self.counted) {
            if arc.handles.fetch_sub(1, Ordering::Relaxed) == 1 {
                stash::give_up_pool(arc);
            }
        }
    }
}

impl BytesPool {
    /// A pool with the given settings and no budget.
    ///
    /// ```
    /// let err = pool_tokio::BytesPool::with_config(pool_core::BufferConfig::new().min_class(1000))
    ///     .unwrap_err();
    /// assert_eq!(err.setting(), "min_class");
    /// ```
    pub fn with_config(config: BufferConfig) -> Result<Self, pool_core::ConfigError> {
        let inner = match Inner::new(config, None) {
            Ok(inner) => inner,
            Err(BuildError::Config(e)) => return Err(e),
            Err(e) => unreachable!("no budget, so only a setting can be wrong: {e}"),
        };
        Ok(BytesPool::from_handle(Handle::Shared(Arc::new(inner))))
    }

    /// Makes this pool live for the rest of the program: the returned
    /// handle's guards hold a plain `&'static` reference, so checkouts and
    /// returns touch no reference count, also when a guard is returned on
    /// another thread than its checkout's, and no thread's stash holds the
    /// pool's references. For pools built once at start-up.
    /// Costs one small allocation, never freed (nor is the pool).
    ///
    /// ```
    /// let pool = pool_tokio::BytesPool::new().leak();
    /// let buf = pool.checkout(100);
    /// std::thread::spawn(move || drop(buf)).join().unwrap();
    /// assert_eq!(pool.stats().outstanding(), 0);
    /// ```
    pub fn leak(self) -> BytesPool {
        match &self.handle {
            Handle::Static(inner) => BytesPool::from_static(inner),
            Handle::Shared(arc) => {
                // Counted for good: the pool never closes (its background
                // threads go on).
                arc.handles.fetch_add(1, Ordering::Relaxed);
                let inner: &'static Arc<Inner> = Box::leak(Box::new(Arc::clone(arc)));
                BytesPool::from_static(inner)
            }
        }
    }
}
