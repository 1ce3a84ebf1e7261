//! A pool's background threads: the park hook's idle thread, the decay
//! thread (`Builder::decay_thread`). The state they share with the pool,
//! `RuntimeSeen` (the runtime the decay thread reaches idle workers
//! through, and the idle thread's switches), is in `background/seen.rs`.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::pool::{BytesPool, Handle, Inner};

pub(crate) mod seen;

use self::seen::{lock, IdleState, IdleThread};

/// After a park's flush and decay step: arms the pool's idle thread (and
/// starts it, the first time) if the depot holds more than the idle floor.
/// Pools with a decay thread need none. Cost while armed or at the floor:
/// one uncontended lock.
pub(crate) fn arm_idle_thread(pool: &BytesPool) {
    let inner = pool.handle.inner();
    if inner.settings.decay_thread {
        return;
    }
    let idle = &inner.runtime.idle;
    let mut state = lock(&idle.state);
    // Read under the lock: the idle thread disarms under it after its own
    // read, so a push this park made is seen by one of the two.
    if state.armed || state.closed || inner.pool.depot_bytes() <= inner.settings.idle_floor {
        return;
    }
    state.armed = true;
    if state.started {
        idle.wake.notify_one();
        return;
    }
    state.started = true;
    let weak = WeakPool::of(&pool.handle);
    let shared = idle.clone();
    let spawned = std::thread::Builder::new()
        .name("pool-tokio-idle".into())
        .spawn(move || run_idle_thread(weak, &shared));
    if spawned.is_err() {
        // Resource limits: decay is left to parks and tasks.
        state.armed = false;
    }
}

/// The idle thread: while armed, a decay step every quarter decay interval
/// (pool-core runs one at most that often); disarmed once the depot holds
/// no more than the floor. Ends with the pool.
fn run_idle_thread(weak: WeakPool, idle: &IdleThread) {
    let mut state = lock(&idle.state);
    loop {
        while !state.armed && !state.closed {
            state = idle.wake.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        if state.closed {
            return;
        }
        drop(state);
        let Some(pool) = weak.upgrade_or_end(idle_lock, idle_ends) else {
            return;
        };
        let period = (pool.config().get_decay_interval() / 4).max(Duration::from_millis(1));
        drop(pool);
        state = lock(&idle.state);
        state = idle
            .wake
            .wait_timeout_while(state, period, |s| !s.closed)
            .unwrap_or_else(|e| e.into_inner())
            .0;
        if state.closed {
            return;
        }
        drop(state);
        let Some(pool) = weak.upgrade_or_end(idle_lock, idle_ends) else {
            return;
        };
        let _span = crate::tracing::maintenance_span(pool.name(), "idle");
        pool.decay_to_floor();
        // Settled buffers (`decay_to_floor`'s `stats`) leave this thread.
        pool.buffer_pool().flush_thread();
        {
            let mut state = lock(&idle.state);
            if pool.buffer_pool().depot_bytes() <= pool.idle_floor() {
                state.armed = false;
            }
        }
        // Without the lock: dropping the last handle takes it
        // (`RuntimeSeen::drop`).
        drop(pool);
        state = lock(&idle.state);
    }
}

/// The lock a park arms the idle thread under.
fn idle_lock(inner: &Inner) -> &Mutex<IdleState> {
    &inner.runtime.idle.state
}

/// The idle thread ends for a pool out of reach: the next park's arming
/// (of a pool open again) starts another.
fn idle_ends(state: &mut IdleState) {
    state.started = false;
    state.armed = false;
}

/// The lock a decay thread's start takes.
fn decay_lock(inner: &Inner) -> &Mutex<bool> {
    &inner.runtime.decay_running
}

/// The decay thread ends: the next handle that opens the pool starts
/// another.
fn decay_ends(running: &mut bool) {
    *running = false;
}

/// Tries after which the decay thread stops asking workers to flush until
/// the pool sees traffic again.
const FLUSH_TRIES: u32 = 5;
/// How long a flush task waits for the other workers' tasks.
const FLUSH_WAIT: Duration = Duration::from_millis(5);

/// Starts a pool's decay thread (see `Builder::decay_thread`) unless it
/// runs: a built pool's at its first handle, and again at its first handle
/// after it closed (`BytesPool::from_handle`); the default pool's on first
/// use. The thread holds a weak reference and ends once no one can reach
/// the pool (`WeakPool::upgrade_or_end`). A failure to spawn (resource
/// limits) leaves decay to the hooks and tasks until the next start.
pub(crate) fn start_decay_thread(handle: &Handle) {
    let mut running = lock(&handle.inner().runtime.decay_running);
    if *running {
        return;
    }
    let weak = WeakPool::of(handle);
    *running = std::thread::Builder::new()
        .name("pool-tokio-decay".into())
        .spawn(move || run_decay_thread(weak))
        .is_ok();
}

fn run_decay_thread(weak: WeakPool) {
    let mut last_checkouts = u64::MAX;
    let mut tries = 0;
    loop {
        let Some(pool) = weak.upgrade_or_end(decay_lock, decay_ends) else {
            return;
        };
        // A quarter interval: pool-core runs a step at most that often.
        let period = (pool.config().get_decay_interval() / 4).max(Duration::from_millis(1));
        drop(pool);
        std::thread::sleep(period);
        let Some(pool) = weak.upgrade_or_end(decay_lock, decay_ends) else {
            return;
        };
        pool.decay_to_floor();
        let stats = pool.stats();
        // `stats` settles held buffers whose parts dropped into this
        // thread's cache, which nothing else would ever flush.
        pool.buffer_pool().flush_thread();
        if stats.checkouts() != last_checkouts {
            last_checkouts = stats.checkouts();
            tries = 0;
            continue; // traffic in this step: not idle
        }
        let cached: u64 = stats
            .classes
            .iter()
            .map(|c| c.retained_local * c.class_size.unwrap_or(0) as u64)
            .sum();
        if cached == 0 || stats.retained_bytes() <= pool.idle_floor() as u64 || tries >= FLUSH_TRIES
        {
            continue;
        }
        if let Some(handle) = pool.handle.inner().runtime.handle() {
            tries += 1;
            flush_workers(&handle, &pool);
        }
    }
}

/// A pool reference that does not keep a built pool alive.
enum WeakPool {
    Static(&'static Inner),
    Shared(std::sync::Weak<Inner>),
}

impl WeakPool {
    fn of(handle: &Handle) -> WeakPool {
        match handle {
            Handle::Static(inner) => WeakPool::Static(inner),
            Handle::Shared(arc) => WeakPool::Shared(Arc::downgrade(arc)),
        }
    }

    /// The pool, for a background thread's step; `None` ends the thread. It looks
    /// at the pool, and marks itself ended (`end`), under the lock its
    /// start takes (`mutex`: the decay thread's `decay_running`, the idle
    /// thread's state, which a park arms it under): a handle that opens
    /// the pool again meanwhile, or a park of it, is either seen here (the
    /// thread goes on) or finds the thread ended and starts another.
    fn upgrade_or_end<S>(
        &self,
        mutex: fn(&Inner) -> &Mutex<S>,
        end: fn(&mut S),
    ) -> Option<BytesPool> {
        let arc = match self {
            WeakPool::Static(inner) => return Some(BytesPool::from_static(inner)),
            // Freed: no handle can be made any more.
            WeakPool::Shared(weak) => weak.upgrade()?,
        };
        let mut state = lock(mutex(&arc));
        if in_reach(&arc) {
            drop(state);
            return Some(BytesPool::uncounted(Handle::Shared(arc)));
        }
        end(&mut state);
        // The lock goes before `arc`, which may be the pool's last
        // reference (`RuntimeSeen::drop` takes the idle thread's lock).
        drop(state);
        None
    }
}

/// Whether anyone can reach the pool: a handle, or a buffer out whose guard
/// or frozen clone could make one. A pool out of reach is gone for its
/// threads, even while threads' stashes keep it allocated. The threads'
/// own handles are not counted: they keep no pool open.
fn in_reach(inner: &Inner) -> bool {
    inner.is_open() || inner.pool.stats().outstanding() > 0
}

/// Spawns one task per worker of `handle`'s runtime; each flushes its
/// worker's cache, then waits up to `FLUSH_WAIT` for the others, so that
/// the tasks (stolen by idle workers while one waits) land on distinct
/// workers. Best effort: a busy worker may be missed, never blocked for
/// more than `FLUSH_WAIT`.
fn flush_workers(handle: &tokio::runtime::Handle, pool: &BytesPool) {
    let workers = handle.metrics().num_workers().max(1);
    let done = Arc::new((Mutex::new(0usize), Condvar::new()));
    for _ in 0..workers {
        let (pool, done) = (BytesPool::uncounted(pool.handle.clone()), done.clone());
        // Dropped at once, unrun, if that runtime has shut down.
        drop(handle.spawn(async move {
            pool.flush_thread();
            let (count, all) = &*done;
            let mut n = count.lock().unwrap_or_else(|e| e.into_inner());
            *n += 1;
            all.notify_all();
            let _ = all
                .wait_timeout_while(n, FLUSH_WAIT, |n| *n < workers)
                .unwrap_or_else(|e| e.into_inner());
        }));
    }
}
