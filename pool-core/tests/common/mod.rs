//! Shared by the integration tests that include it with `mod common;`:
//!
//! - A counting global allocator. It keeps the process's live heap bytes
//!   (so a test can measure what a pool really holds: live bytes after,
//!   minus live bytes before) and counts allocations made on threads that
//!   switched counting on (so a test can show a path makes none, whatever
//!   the test harness's own threads do).
//! - A child-process runner: a test re-runs its own test binary on itself
//!   (`--exact <name>`), with an environment variable that tells the child
//!   to run the scenario. A scenario that aborts the process, or hangs, is
//!   then a failed exit status in the parent rather than a dead harness.
//!
//! Each test binary compiles this module on its own and uses part of it.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The slack allowed between what the allocator shows a pool holding and
/// what the pool's statistics and bounds say: the pool's own bookkeeping
/// (the pool itself, its thread-cache table, batch vessels), which does not
/// grow with the buffers it holds. Measured on the base engine: under
/// 20 KiB for one thread. The defects these tests catch are off by MiB.
pub(crate) const SLACK_BASE: i64 = 64 << 10;
/// Bookkeeping slack per thread that used the pool: its cache slot,
/// counters, and cache storage reserved up front.
pub(crate) const SLACK_PER_THREAD: i64 = 64 << 10;

/// The slack for a pool used by `threads` threads.
pub(crate) fn slack(threads: usize) -> i64 {
    SLACK_BASE + SLACK_PER_THREAD * threads as i64
}

/// Forwards every call to the system allocator; keeps `LIVE` (bytes
/// allocated and not yet freed, all threads) and `ALLOCS` (allocations and
/// reallocations on threads whose `COUNTED` flag is set).
pub(crate) struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);
static ALLOCS: AtomicU64 = AtomicU64::new(0);

std::thread_local! {
    /// Set on the threads whose allocations `ALLOCS` counts. `const` and
    /// without a destructor, so reading it allocates nothing and works at
    /// any point of thread teardown.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn counted() -> bool {
    COUNTED.try_with(Cell::get).unwrap_or(false)
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged; the counters are plain atomics and never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
            if counted() {
                ALLOCS.fetch_add(1, Ordering::Relaxed);
            }
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
            if counted() {
                ALLOCS.fetch_add(1, Ordering::Relaxed);
            }
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
            if counted() {
                ALLOCS.fetch_add(1, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Live heap bytes of the whole process.
pub(crate) fn live() -> i64 {
    LIVE.load(Ordering::SeqCst)
}

/// Allocations made by `f` on this thread (and on any other thread that
/// called [`count_this_thread`] meanwhile).
pub(crate) fn allocations_on_this_thread(f: impl FnOnce()) -> u64 {
    let before = ALLOCS.load(Ordering::SeqCst);
    COUNTED.with(|c| c.set(true));
    f();
    COUNTED.with(|c| c.set(false));
    ALLOCS.load(Ordering::SeqCst) - before
}

/// Switches counting of this thread's allocations on or off.
pub(crate) fn count_this_thread(on: bool) {
    COUNTED.with(|c| c.set(on));
}

/// Allocations counted so far, on every counted thread.
pub(crate) fn allocations() -> u64 {
    ALLOCS.load(Ordering::SeqCst)
}

/// Tests that measure the process's live bytes run one at a time.
static MEASURING: Mutex<()> = Mutex::new(());

/// Holds the lock that keeps live-byte measurements of one test binary
/// from overlapping (a panicking test leaves it usable).
pub(crate) fn one_at_a_time() -> MutexGuard<'static, ()> {
    MEASURING.lock().unwrap_or_else(|e| e.into_inner())
}

/// `bytes` in MiB, for messages.
pub(crate) fn mib(bytes: i64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// The environment variable naming the scenario a child process runs.
pub(crate) const CHILD_ENV: &str = "SHARDPOOL_TEST_CHILD";

/// Whether this process is the child running the scenario of test `name`.
pub(crate) fn is_child(name: &str) -> bool {
    std::env::var(CHILD_ENV).is_ok_and(|v| v == name)
}

/// What a child process did.
#[derive(Debug)]
pub(crate) struct Child {
    /// Its exit code; `None` when a signal ended it (an abort) or it was
    /// killed for running past its time.
    pub(crate) code: Option<i32>,
    /// Whether it was killed for running past its time.
    pub(crate) timed_out: bool,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Child {
    /// What follows `KEY ` on the last line of the child's output that
    /// holds it (the test harness may print its own words before it).
    pub(crate) fn line(&self, key: &str) -> Option<&str> {
        let prefix = format!("{key} ");
        self.stdout
            .lines()
            .rev()
            .find_map(|l| l.find(prefix.as_str()).map(|i| &l[i + prefix.len()..]))
    }

    /// Panics unless the child exited with status 0.
    #[track_caller]
    pub(crate) fn assert_success(&self) {
        assert!(
            self.code == Some(0) && !self.timed_out,
            "child exited with {:?}{}\n--- stdout\n{}\n--- stderr\n{}",
            self.code,
            if self.timed_out {
                " (killed: timed out)"
            } else {
                ""
            },
            tail(&self.stdout),
            tail(&self.stderr)
        );
    }
}

fn tail(s: &str) -> &str {
    let start = s.len().saturating_sub(4000);
    let start = (start..=s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    &s[start..]
}

/// Runs the test `name` of this test binary in a child process with
/// [`CHILD_ENV`] set to `name`; kills it after `limit`.
pub(crate) fn run_child(name: &str, limit: Duration) -> Child {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut child = Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, name)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the test binary");
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            let _ = child.kill();
            break child.wait().expect("wait for the killed child");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Child {
        code: status.code(),
        timed_out,
        stdout: reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

/// The time a child scenario gets before it counts as hung.
pub(crate) const CHILD_LIMIT: Duration = Duration::from_secs(30);

/// The text of a panic payload.
pub(crate) fn payload_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string payload>".to_string()
    }
}
