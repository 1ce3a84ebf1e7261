//! A `PooledBytes` kept in a user `thread_local!` (a per-thread scratch
//! buffer) is dropped while its thread tears down, in an order relative to
//! the pool's own thread-locals that the standard library leaves
//! unspecified. Each scenario runs in a child process (this test binary
//! re-run on one test), so that an abort ("thread local panicked on drop")
//! is a failed exit status here. The child prints the default pool's
//! figures once the thread has exited, a second thread (which gets the
//! first one's thread id back) has used the pool, and `trim()` ran; the
//! parent checks them exactly.

use std::cell::RefCell;
use std::io::Read;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use pool_tokio::PooledBytes;

const CHILD_ENV: &str = "SHARDPOOL_TEST_CHILD";

std::thread_local! {
    static SCRATCH: RefCell<Option<PooledBytes>> = const { RefCell::new(None) };
}

fn is_child(name: &str) -> bool {
    std::env::var(CHILD_ENV).is_ok_and(|v| v == name)
}

/// Runs test `name` of this binary in a child process (killed after 30 s);
/// returns its exit code (`None`: a signal, an abort, or killed) and its
/// output.
fn run_child(name: &str) -> (Option<i32>, String, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        thread::sleep(Duration::from_millis(5));
    };
    (status.code(), out.join().unwrap(), err.join().unwrap())
}

/// In the child: a second thread uses the default pool, then `trim()`; the
/// figures.
fn report() {
    thread::spawn(|| {
        drop(pool_tokio::checkout(4096));
        drop(pool_tokio::checkout(4096));
    })
    .join()
    .unwrap();
    let pool = pool_tokio::default_pool();
    pool.trim();
    let s = pool.stats();
    println!(
        "\nSTATS outstanding={} retained_objects={} retained_bytes={} depot_bytes={} checkouts={} returns={}",
        s.outstanding(),
        s.retained_objects(),
        s.retained_bytes(),
        s.depot_bytes,
        s.checkouts(),
        s.total().returns + s.unpooled_returns,
    );
}

/// In the parent: the child `name` exited with status 0 and printed `stats`.
fn expect_child(name: &str, stats: &str) {
    let (code, out, err) = run_child(name);
    assert_eq!(
        code,
        Some(0),
        "child exited with {code:?}\n--- stdout\n{out}\n--- stderr\n{err}"
    );
    let line = out.lines().rev().find_map(|l| l.strip_prefix("STATS "));
    assert_eq!(line, Some(stats), "{out}");
}

/// Issue 8's reproduction: the thread's only operation is an unpooled
/// checkout (2 MiB, above the largest class), kept in a thread-local.
#[test]
fn an_unpooled_checkout_in_a_thread_local() {
    const NAME: &str = "an_unpooled_checkout_in_a_thread_local";
    if is_child(NAME) {
        thread::spawn(|| SCRATCH.with(|s| *s.borrow_mut() = Some(pool_tokio::checkout(2 << 20))))
            .join()
            .unwrap();
        return report();
    }
    expect_child(
        NAME,
        "outstanding=0 retained_objects=0 retained_bytes=0 depot_bytes=0 checkouts=3 returns=3",
    );
}

/// A pooled scratch buffer in a thread-local touched before the pool.
#[test]
fn a_scratch_buffer_in_a_thread_local_touched_before_the_pool() {
    const NAME: &str = "a_scratch_buffer_in_a_thread_local_touched_before_the_pool";
    if is_child(NAME) {
        thread::spawn(|| {
            SCRATCH.with(|s| *s.borrow_mut() = Some(pool_tokio::checkout(4096)));
            drop(pool_tokio::checkout(2 << 20));
        })
        .join()
        .unwrap();
        return report();
    }
    expect_child(
        NAME,
        "outstanding=0 retained_objects=0 retained_bytes=0 depot_bytes=0 checkouts=4 returns=4",
    );
}

/// A pooled scratch buffer in a thread-local touched after the pool.
#[test]
fn a_scratch_buffer_in_a_thread_local_touched_after_the_pool() {
    const NAME: &str = "a_scratch_buffer_in_a_thread_local_touched_after_the_pool";
    if is_child(NAME) {
        thread::spawn(|| {
            drop(pool_tokio::checkout(4096));
            SCRATCH.with(|s| *s.borrow_mut() = Some(pool_tokio::checkout(4096)));
        })
        .join()
        .unwrap();
        return report();
    }
    expect_child(
        NAME,
        "outstanding=0 retained_objects=0 retained_bytes=0 depot_bytes=0 checkouts=4 returns=4",
    );
}

/// The thread's first operation is unpooled, then a pooled scratch buffer
/// is kept in the thread-local.
#[test]
fn an_unpooled_first_operation_then_a_scratch_buffer_in_a_thread_local() {
    const NAME: &str = "an_unpooled_first_operation_then_a_scratch_buffer_in_a_thread_local";
    if is_child(NAME) {
        thread::spawn(|| {
            SCRATCH.with(|s| {
                drop(pool_tokio::checkout(2 << 20));
                *s.borrow_mut() = Some(pool_tokio::checkout(4096));
            })
        })
        .join()
        .unwrap();
        return report();
    }
    expect_child(
        NAME,
        "outstanding=0 retained_objects=0 retained_bytes=0 depot_bytes=0 checkouts=4 returns=4",
    );
}
