//! Leak diagnostics (feature `diagnostics`): a buffer kept by `mem::forget`
//! and one held by a task that never ends are found, with where they were
//! checked out; everything that comes back leaves no record.
//!
//! Run with `cargo test -p pool-tokio --features diagnostics --test diagnostics`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use bytes::BufMut;
use futures_util::{SinkExt, StreamExt};
use pool_tokio::{BytesPool, Diagnostics};
use tokio_util::codec::LengthDelimitedCodec;

fn tracked(every: u64) -> BytesPool {
    BytesPool::builder()
        .diagnostics(Diagnostics::new().backtrace_every(every))
        .build()
        .unwrap()
}

fn panic_message(f: impl FnOnce()) -> String {
    let err = catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
    match err.downcast::<String>() {
        Ok(s) => *s,
        Err(e) => e.downcast::<&str>().map(|s| s.to_string()).unwrap(),
    }
}

#[inline(never)]
fn forgets_a_buffer(pool: &BytesPool) {
    let mut buf = pool.checkout(3000);
    buf.put_slice(b"kept forever");
    std::mem::forget(buf);
}

#[test]
fn a_forgotten_buffer_is_reported_with_its_checkout_site() {
    let pool = tracked(1);
    drop(pool.checkout(100)); // returned: no record
    forgets_a_buffer(&pool);
    let report = pool.held_longer_than(Duration::ZERO);
    assert_eq!(report.entries.len(), 1, "{report}");
    let leak = &report.entries[0];
    assert_eq!((leak.requested, leak.class_size), (3000, Some(3072)));
    assert_eq!(leak.id, 2, "the second checkout");
    let message = panic_message(|| pool.assert_all_returned());
    assert!(message.contains("1 outstanding"), "{message}");
    assert!(
        message.contains("checkout #2 of 3000 bytes (class 3072)"),
        "{message}"
    );
    assert!(
        message.contains("forgets_a_buffer"),
        "the backtrace names the function that checked it out:\n{message}"
    );
}

#[inline(never)]
async fn never_ending_task(pool: BytesPool, checked_out: tokio::sync::oneshot::Sender<()>) {
    let mut buf = pool.checkout(64 << 10);
    buf.put_slice(b"held by a task that never ends");
    let _ = checked_out.send(());
    std::future::pending::<()>().await;
    drop(buf);
}

#[test]
fn a_task_that_never_ends_is_reported_once_held_past_the_threshold() {
    let pool = tracked(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("diag-worker")
        .enable_time()
        .build()
        .unwrap();
    let (checked_out, holding) = tokio::sync::oneshot::channel();
    let stuck = rt.spawn(never_ending_task(pool.clone(), checked_out));
    // Busy tasks whose buffers come back.
    rt.block_on(async {
        let tasks: Vec<_> = (0..32)
            .map(|i| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let b = pool.checkout(512 << (i % 5));
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    b.freeze()
                })
            })
            .collect();
        for t in tasks {
            drop(t.await.unwrap());
        }
        // Measured from the stuck task's checkout, however late it ran.
        holding.await.unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
    });
    let report = pool.held_longer_than(Duration::from_millis(50));
    assert_eq!(report.entries.len(), 1, "{report}");
    let leak = &report.entries[0];
    assert_eq!(leak.class_size, Some(64 << 10));
    assert!(leak.age >= Duration::from_millis(50));
    assert_eq!(leak.thread, "diag-worker");
    let text = report.to_string();
    assert!(text.contains("never_ending_task"), "{text}");
    // A threshold longer than the run reports nothing.
    assert!(pool.held_longer_than(Duration::from_secs(3600)).is_empty());
    // Ending the task returns the buffer and clears the record.
    stuck.abort();
    let _ = rt.block_on(stuck);
    drop(rt);
    pool.assert_all_returned();
}

#[tokio::test]
async fn frozen_detached_and_framed_buffers_leave_no_record_once_back() {
    let pool = tracked(1);
    let frozen = {
        let mut b = pool.checkout(1000);
        b.put_slice(b"frozen");
        b.freeze()
    };
    let clone = frozen.slice(1..3);
    drop(frozen);
    assert_eq!(pool.held_longer_than(Duration::ZERO).entries.len(), 1);
    drop(clone);
    let detached = pool.checkout(100).detach();
    drop(detached);
    let (a, b) = tokio::io::duplex(1 << 16);
    let mut left = pool.framed(a, LengthDelimitedCodec::new());
    let mut right = pool.framed(b, LengthDelimitedCodec::new());
    left.send(bytes::Bytes::from_static(b"hello"))
        .await
        .unwrap();
    assert_eq!(&right.next().await.unwrap().unwrap()[..], b"hello");
    assert_eq!(pool.held_longer_than(Duration::ZERO).entries.len(), 4);
    let parts = left.into_parts();
    drop((parts, right));
    // Budget-charged and unpooled checkouts are tracked too.
    drop(pool.try_checkout(4 << 20).unwrap());
    pool.assert_all_returned();
    assert!(pool.held_longer_than(Duration::ZERO).is_empty());
}

#[test]
fn backtraces_are_sampled_every_nth_checkout() {
    let pool = tracked(4);
    let held: Vec<_> = (0..12).map(|_| pool.checkout(512)).collect();
    let report = pool.held_longer_than(Duration::ZERO);
    assert_eq!(report.entries.len(), 12);
    let mut sampled: Vec<u64> = report
        .entries
        .iter()
        .filter(|e| e.backtrace.is_some())
        .map(|e| e.id)
        .collect();
    sampled.sort_unstable();
    assert_eq!(sampled, [1, 5, 9]);
    assert!(report.to_string().contains("not sampled"));
    drop(held);
    pool.assert_all_returned();
    // 0: times and threads only.
    let pool = tracked(0);
    let held = pool.checkout(1);
    assert!(pool.held_longer_than(Duration::ZERO).entries[0]
        .backtrace
        .is_none());
    drop(held);
}

#[test]
fn pools_without_the_switch_record_nothing() {
    let pool = BytesPool::new();
    assert!(!pool.diagnostics_enabled());
    let held = pool.checkout(100);
    assert!(pool.held_longer_than(Duration::ZERO).is_empty());
    let message = panic_message(|| pool.assert_all_returned());
    assert!(message.contains("1 outstanding"), "{message}");
    assert!(message.contains("`diagnostics`"), "{message}");
    drop(held);
    pool.assert_all_returned();
}

#[test]
fn records_are_dropped_on_any_thread_and_the_report_stays_short() {
    let pool = tracked(1);
    let held: Vec<_> = (0..40).map(|_| pool.checkout(512)).collect();
    let text = pool.held_longer_than(Duration::ZERO).to_string();
    assert!(text.starts_with("40 buffer(s)"), "{text}");
    assert!(text.contains("... and 24 more"), "{text}");
    std::thread::spawn(move || drop(held)).join().unwrap();
    pool.assert_all_returned();
}

/// A buffer returned while a split part lived is held aside (on a pool
/// with a budget) until the part drops; once it has, the report no longer
/// lists it, as `stats` and `assert_all_returned` no longer count it.
#[test]
fn a_held_buffer_whose_parts_dropped_is_not_reported() {
    let pool = BytesPool::builder()
        .budget(1 << 20)
        .diagnostics(Diagnostics::new())
        .build()
        .unwrap();
    let mut buf = pool.checkout(4096);
    buf.put_slice(&[1; 100]);
    let part = buf.split_to(10).freeze();
    drop(buf); // held aside: `part` shares it
    assert_eq!(pool.held_longer_than(Duration::ZERO).entries.len(), 1);
    drop(part);
    let report = pool.held_longer_than(Duration::ZERO);
    assert!(report.is_empty(), "{report}");
    assert_eq!(pool.stats().outstanding(), 0);
}
