//! The byte budget: waiting, cancellation, errors, and aborted tasks.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use pool_core::BufferConfig;
use pool_tokio::{BytesPool, PooledBytes, TryCheckoutError};

fn budgeted(bytes: usize) -> BytesPool {
    BytesPool::builder().budget(bytes).build().unwrap()
}

#[tokio::test]
async fn checkout_async_waits_for_a_return_instead_of_allocating() {
    let pool = budgeted(16 << 10);
    let held: Vec<_> = (0..4).map(|_| pool.try_checkout(4096).unwrap()).collect();
    assert_eq!(pool.budget().unwrap().available(), 0);
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.checkout_async(4000).await.unwrap().capacity() }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!waiter.is_finished());
    assert_eq!(pool.stats().checkouts(), 4, "no checkout past the budget");
    drop(held);
    assert_eq!(waiter.await.unwrap(), 4096);
    let stats = pool.stats();
    assert_eq!(
        (stats.checkouts(), stats.hits(), stats.outstanding()),
        (5, 1, 0)
    );
    assert_eq!(pool.budget().unwrap().charged, 0);
}

#[tokio::test]
async fn try_checkout_reports_an_exhausted_budget_and_requests_over_it() {
    let pool = budgeted(8192);
    let a = pool.try_checkout(8000).unwrap(); // the 8 KiB class: all of it
    match pool.try_checkout(100) {
        Err(TryCheckoutError::BudgetExhausted {
            charge,
            available,
            budget,
        }) => assert_eq!((charge, available, budget), (512, 0, 8192)),
        other => panic!("expected an exhausted budget, got {other:?}"),
    }
    let err = pool.try_checkout(8193).unwrap_err();
    assert!(matches!(
        err,
        TryCheckoutError::ExceedsBudget {
            charge: 10240, // the class of 8193 bytes
            budget: 8192
        }
    ));
    assert!(err.to_string().contains("raise the budget"), "{err}");
    // Waiting can never serve it either: an error, not a hang.
    assert!(pool.checkout_async(9000).await.is_err());
    drop(a);
    assert!(pool.try_checkout(8192).is_ok());
}

#[test]
fn plain_checkout_never_waits_and_counts_overdrafts() {
    let pool = budgeted(4096);
    let a = pool.checkout(4096);
    let b = pool.checkout(4096);
    assert_eq!((a.budget_charge(), b.budget_charge()), (4096, 0));
    let budget = pool.budget().unwrap();
    assert_eq!((budget.charged, budget.overdrafts), (4096, 1));
    drop((a, b));
    assert_eq!(pool.budget().unwrap().charged, 0);
}

#[test]
fn budget_settings_are_validated() {
    let err = BytesPool::builder().budget(0).build().unwrap_err();
    assert!(err.to_string().contains("`budget` = 0"), "{err}");
    let pool = budgeted(4096);
    let err = pool.reconfigure(pool.config().min_class(8192)).unwrap_err();
    assert!(err.to_string().contains("budget"), "{err}");
    assert_eq!(pool.config().get_min_class(), 512, "nothing changed");
}

#[tokio::test]
async fn a_dropped_waiter_loses_nothing_and_wakes_the_next() {
    let pool = budgeted(8192);
    let half = pool.checkout_async(4096).await.unwrap();
    // First in line: wants everything, so it is assigned the free half and
    // keeps waiting for the rest.
    let first = tokio::spawn({
        let pool = pool.clone();
        async move { pool.checkout_async(8192).await.map(drop) }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    // Second in line: fair queueing keeps it behind the first.
    let second = tokio::spawn({
        let pool = pool.clone();
        async move { pool.checkout_async(4096).await.map(|b| b.capacity()) }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(!first.is_finished() && !second.is_finished());
    // Cancelling the first hands what it had to the second, no return needed.
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    let got = tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .expect("the next waiter was woken")
        .unwrap();
    assert_eq!(got.unwrap(), 4096);
    drop(half);
    let budget = pool.budget().unwrap();
    assert_eq!(budget.charged, 0);
    assert_eq!(pool.stats().outstanding(), 0);
}

#[test]
fn aborted_tasks_holding_buffers_return_everything() {
    let pool = budgeted(1 << 20);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut tasks = Vec::new();
        // The first holder says when it holds its buffers, so that the
        // abort below certainly meets buffers out (no sleep to guess). The
        // others start only then: started together, they could fill the
        // budget first (64 x 4 buffers are more than 1 MiB, and a waiter
        // for 1 MiB queues everyone behind it) and leave the first holder
        // waiting for ever, and the test with it.
        let (holding, held_now) = tokio::sync::oneshot::channel::<()>();
        let mut holding = Some(holding);
        let mut held_now = Some(held_now);
        for i in 0..64 {
            let pool = pool.clone();
            let signal = holding.take();
            tasks.push(tokio::spawn(async move {
                let mut held = Vec::new();
                for j in 0..4 {
                    held.push(pool.checkout_async(512 << ((i + j) % 6)).await.unwrap());
                }
                let frozen = pool.checkout_async(1000).await.unwrap().freeze();
                if let Some(signal) = signal {
                    let _ = signal.send(());
                }
                std::future::pending::<()>().await;
                drop((held, frozen));
            }));
            if let Some(first) = held_now.take() {
                first.await.unwrap();
            }
        }
        // And tasks still waiting for budget when they are aborted.
        for _ in 0..8 {
            let pool = pool.clone();
            tasks.push(tokio::spawn(async move {
                let _ = pool.checkout_async(1 << 20).await;
            }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await; // let others run too
        assert!(pool.stats().outstanding() > 0);
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            assert!(t.await.unwrap_err().is_cancelled());
        }
    });
    drop(rt);
    let stats = pool.stats();
    assert_eq!(stats.outstanding(), 0, "{stats}");
    assert_eq!(stats.total().returns, stats.checkouts());
    assert_eq!(pool.budget().unwrap().charged, 0);
    // The whole budget is usable again.
    assert!(pool.try_checkout(1 << 20).is_ok());
}

/// Issue 18, case 3: parts split off a budgeted buffer keep its memory
/// alive, so the buffer's charge stays until the last part drops. Before,
/// dropping the guard released the charge at once: 64 checkouts of 16 KiB
/// under a 256 KiB budget all succeeded and 1 MiB lived uncharged.
#[test]
fn split_parts_keep_their_buffers_charge_until_they_drop() {
    use bytes::{Buf, BufMut};
    let pool = budgeted(256 << 10);
    let mut parts = Vec::new();
    let mut served = 0;
    for i in 0..64usize {
        let Ok(mut buf) = pool.try_checkout(16 << 10) else {
            continue;
        };
        served += 1;
        buf.put_bytes(i as u8, 16 << 10);
        // Every way of splitting a part off, in turn.
        match i % 4 {
            0 => parts.push(buf.copy_to_bytes(16 << 10)),
            1 => parts.push(buf.split_to(100).freeze()),
            2 => parts.push(buf.split_off(1000).freeze()),
            _ => parts.push(buf.split().freeze()),
        }
        drop(buf);
    }
    assert_eq!(served, 16, "the budget holds 16 buffers of 16 KiB");
    let budget = pool.budget().unwrap();
    assert_eq!((budget.charged, budget.held_shared), (256 << 10, 256 << 10));
    assert_eq!(pool.stats().outstanding(), 16);
    assert!(matches!(
        pool.try_checkout(4096),
        Err(TryCheckoutError::BudgetExhausted { .. })
    ));
    // Dropping half the parts frees half the budget.
    parts.truncate(8);
    let budget = pool.budget().unwrap();
    assert_eq!((budget.charged, budget.held_shared), (128 << 10, 128 << 10));
    drop(parts);
    let budget = pool.budget().unwrap();
    assert_eq!((budget.charged, budget.held_shared), (0, 0));
    let stats = pool.stats();
    assert_eq!(stats.outstanding(), 0);
    // Each buffer came back whole once its parts were gone: kept, reused.
    assert_eq!(stats.total().discarded.shared, 0);
    assert!(pool.try_checkout(16 << 10).unwrap().source().is_hit());
}

/// A task waiting for budget that only a held buffer's parts are holding
/// is woken when the last part drops, with no other traffic on the pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_is_served_when_the_parts_of_a_held_buffer_drop() {
    let pool = budgeted(16 << 10);
    let mut buf = pool.try_checkout(16 << 10).unwrap();
    buf.extend_from_slice(&[1; 64]);
    let part = buf.split_to(64);
    drop(buf);
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move {
            let wait = pool.checkout_async(16 << 10);
            started_tx.send(()).unwrap();
            wait.await.unwrap().capacity()
        }
    });
    started_rx.await.unwrap();
    assert_eq!(pool.budget().unwrap().charged, 16 << 10);
    drop(part);
    // Nothing else touches the pool: the settle thread notices.
    let served = tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .expect("the waiter was never served")
        .unwrap();
    assert_eq!(served, 16 << 10);
    assert_eq!(pool.budget().unwrap().charged, 0);
    assert_eq!(pool.stats().outstanding(), 0);
}

/// A frozen buffer carries its charge until its last clone drops; a
/// detached one leaves the budget (it is no longer the pool's memory).
#[test]
fn frozen_buffers_hold_their_charge_and_detached_ones_leave_the_budget() {
    let pool = budgeted(64 << 10);
    let mut buf = pool.try_checkout(8192).unwrap();
    buf.extend_from_slice(b"frame");
    let frozen = buf.freeze();
    let slice = frozen.slice(1..3);
    drop(frozen);
    assert_eq!(pool.budget().unwrap().charged, 8192);
    drop(slice);
    assert_eq!(pool.budget().unwrap().charged, 0);
    let detached = pool.try_checkout(8192).unwrap().detach();
    assert_eq!(pool.budget().unwrap().charged, 0);
    assert_eq!(detached.capacity(), 8192);
}

/// A request charged under one class range and served under another: the
/// charge is the class size it had when charged (3072 B), the buffer an
/// unpooled one of the request's size (3000 B) once the range shrank
/// below it. Its return must still find it unshared: the pool checks
/// sharing against the charge, so such a buffer was once held aside as
/// "shared" for good, outstanding and charged forever.
#[tokio::test]
async fn a_request_charged_before_a_reconfigure_comes_back_whole() {
    use std::future::Future;
    use std::task::Poll;
    let config = pool_core::BufferConfig::new().max_class(4096);
    let pool = BytesPool::builder()
        .config(config)
        .budget(8192)
        .build()
        .unwrap();
    let held: Vec<_> = (0..2).map(|_| pool.try_checkout(4096).unwrap()).collect();
    let mut waiter = Box::pin(pool.checkout_async(3000));
    // One poll: charged 3072 (the class in force), then waiting.
    std::future::poll_fn(|cx| {
        assert!(waiter.as_mut().poll(cx).is_pending());
        Poll::Ready(())
    })
    .await;
    pool.reconfigure(config.max_class(2048)).unwrap();
    drop(held);
    let buf = waiter.await.unwrap();
    assert!(buf.class_size().is_none(), "served unpooled");
    assert!(buf.capacity() >= 3000);
    drop(buf);
    let stats = pool.stats();
    assert_eq!(stats.outstanding(), 0, "{stats}");
    assert_eq!(pool.budget().unwrap().charged, 0);
}

/// A guard that outgrew its share of a split buffer: `reserve` while a
/// split-off part still holds the front reallocates the guard to a new,
/// smaller allocation (bytes keeps at most 64 KiB of the old capacity as
/// its hint). Its return can never reclaim the class size from that one,
/// so it was held aside as "shared" for good: outstanding and charged.
/// Now it goes back like any reallocated buffer (dropped, counted), and
/// its charge with it; the part keeps the old allocation alive, uncharged,
/// until it drops. Pooled and unpooled alike. (Found by `fuzz_ops` in a
/// 50,000-case release run.)
#[test]
fn a_guard_reallocated_after_a_split_comes_back_whole() {
    let pool = budgeted(4 << 20);
    for request in [200_000, 1_500_000] {
        let mut buf = pool.try_checkout(request).unwrap();
        let lent = buf.capacity();
        buf.extend_from_slice(&vec![7u8; request]);
        let part = buf.split_to(request); // the guard keeps the tail
        buf.reserve(lent - request + 1); // past the tail: reallocates
        assert!(buf.capacity() < lent, "{} >= {lent}", buf.capacity());
        drop(buf);
        assert_eq!(pool.budget().unwrap().held_shared, 0);
        assert_eq!(pool.stats().outstanding(), 0, "{}", pool.stats());
        assert_eq!(part.len(), request);
        drop(part);
    }
    assert_eq!(pool.budget().unwrap().charged, 0);
}

/// A budget charges each buffer what it lends: a miss served by a larger
/// class's idle buffer is charged that buffer's size when the budget has
/// the extra bytes, and is served by its own class when it does not; the
/// budget never charges less than is lent, whichever way the pool is
/// reconfigured (here or through `buffer_pool()`).
#[test]
fn a_budgeted_pool_charges_a_larger_buffer_what_it_lends() {
    let pool = BytesPool::builder().budget(3584 + 3072).build().unwrap();
    assert_eq!(pool.config().get_fallback_classes(), 2);
    pool.prewarm(3584, 2);
    let a = pool.try_checkout(3000).unwrap();
    assert_eq!(
        a.capacity(),
        3584,
        "a larger idle buffer, the budget has room"
    );
    assert_eq!(a.budget_charge(), 3584);
    assert_eq!(pool.budget().unwrap().charged, 3584);
    // 3072 left: room for the 3072 charged, not for the 512 more that the
    // second idle 3584-byte buffer would lend.
    let b = pool.try_checkout(3000).unwrap();
    assert_eq!((b.capacity(), b.budget_charge()), (3072, 3072));
    let budget = pool.budget().unwrap();
    assert_eq!(budget.charged, a.capacity() + b.capacity());
    assert_eq!(budget.overdrafts, 0);
    drop((a, b));
    assert_eq!(pool.budget().unwrap().charged, 0);
    assert_eq!(pool.stats().outstanding(), 0);

    // Through the pool-core pool underneath: the same accounting.
    pool.buffer_pool()
        .reconfigure(BufferConfig::new().fallback_classes(4))
        .unwrap();
    pool.trim();
    pool.prewarm(5120, 1);
    let held = pool.try_checkout(3000).unwrap();
    assert_eq!(held.capacity(), 5120, "three classes up");
    assert_eq!(pool.budget().unwrap().charged, 5120);
    drop(held);
    assert_eq!(pool.budget().unwrap().charged, 0);

    // The same without a budget: the larger buffer, uncharged.
    let plain = BytesPool::new();
    plain.prewarm(3584, 1);
    assert_eq!(plain.checkout(3000).capacity(), 3584);
}

type Waiter<'a> = Pin<Box<dyn Future<Output = Result<PooledBytes, TryCheckoutError>> + 'a>>;

/// Requests charged under one class layout and served after a
/// `reconfigure` raised the smallest class are charged what they are lent
/// (topped up), so the budget still bounds the bytes out.
#[tokio::test]
async fn waiters_charged_before_the_smallest_class_rises_are_topped_up() {
    let pool = BytesPool::builder().budget(64 << 10).build().unwrap();
    let held = pool.try_checkout(64 << 10).unwrap();
    let mut waiters: Vec<Waiter<'_>> = (0..8)
        .map(|_| Box::pin(pool.checkout_async(600)) as Waiter<'_>)
        .collect();
    // One poll each: charged 640 (the class of 600 now), then waiting.
    std::future::poll_fn(|cx| {
        for w in &mut waiters {
            assert!(w.as_mut().poll(cx).is_pending());
        }
        Poll::Ready(())
    })
    .await;
    pool.reconfigure(pool.config().min_class(4096)).unwrap();
    drop(held);
    let mut served = Vec::new();
    for w in waiters {
        served.push(w.await.unwrap());
    }
    let lent: usize = served.iter().map(|b| b.capacity()).sum();
    assert_eq!(lent, 8 * 4096);
    assert_eq!(pool.budget().unwrap().charged, lent);
    while let Ok(b) = pool.try_checkout(4096) {
        served.push(b);
    }
    let live: usize = served.iter().map(|b| b.capacity()).sum();
    let budget = pool.budget().unwrap();
    assert!(live <= budget.limit, "{live} lent, budget {budget:?}");
    assert_eq!(budget.overdrafts, 0);
    drop(served);
    assert_eq!(pool.budget().unwrap().charged, 0);

    // Charged its size above the largest class, served pooled once the
    // largest class rose: charged the class.
    let config = BufferConfig::new().max_class(1 << 20);
    let pool = BytesPool::builder()
        .config(config)
        .budget(4 << 20)
        .build()
        .unwrap();
    let held = pool.try_checkout(4 << 20).unwrap();
    let mut waiter = Box::pin(pool.checkout_async(1_100_000));
    std::future::poll_fn(|cx| {
        assert!(waiter.as_mut().poll(cx).is_pending());
        Poll::Ready(())
    })
    .await;
    pool.reconfigure(config.max_class(2 << 20)).unwrap();
    drop(held);
    let buf = waiter.await.unwrap();
    assert_eq!(buf.class_size(), Some(1_310_720));
    assert_eq!(pool.budget().unwrap().charged, buf.capacity());
    drop(buf);
    assert_eq!(pool.budget().unwrap().charged, 0);
}

/// When the budget cannot top such a request up, it is served anyway, an
/// overdraft of the difference (counted), and balances when it returns.
#[tokio::test]
async fn a_waiter_the_budget_cannot_top_up_is_an_overdraft() {
    let pool = BytesPool::builder().budget(8192).build().unwrap();
    let held = pool.try_checkout(8192).unwrap();
    let mut waiter = Box::pin(pool.checkout_async(600));
    std::future::poll_fn(|cx| {
        assert!(waiter.as_mut().poll(cx).is_pending());
        Poll::Ready(())
    })
    .await;
    pool.reconfigure(pool.config().min_class(8192)).unwrap();
    drop(held); // 640 of it to the waiter, the rest free
    let other = pool.try_reserve(8192 - 640).unwrap();
    let buf = waiter.await.unwrap();
    assert_eq!((buf.capacity(), buf.budget_charge()), (8192, 640));
    let budget = pool.budget().unwrap();
    assert_eq!(budget.overdrafts, 1);
    drop((buf, other));
    assert_eq!(pool.budget().unwrap().charged, 0);
}

/// On a blocking thread (which keeps no cache) a budgeted checkout is
/// bounded by the budget's headroom too: the larger idle buffer it cannot
/// afford stays idle, and nothing is overdrawn.
#[test]
fn a_blocking_thread_takes_a_larger_buffer_only_within_the_budget() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let pool = BytesPool::builder().budget(3072 + 512).build().unwrap();
    pool.prewarm(4096, 1);
    let p = pool.clone();
    let (capacity, charge) = rt
        .block_on(async move {
            pool_tokio::spawn_blocking(move || {
                let buf = p.try_checkout(3000).unwrap();
                (buf.capacity(), buf.budget_charge())
            })
            .await
        })
        .unwrap();
    assert_eq!((capacity, charge), (3072, 3072), "4096 is past the reach");
    let budget = pool.budget().unwrap();
    assert_eq!((budget.charged, budget.overdrafts), (0, 0));
    assert_eq!(pool.stats().class(4096).unwrap().retained_depot, 1);
}

/// An overdraft (a `checkout` past an exhausted budget, uncharged) is
/// served by its own class, never by a larger idle buffer whose extra
/// bytes the budget does not have either.
#[test]
fn an_overdraft_is_served_by_its_own_class() {
    let pool = BytesPool::builder().budget(8192).build().unwrap();
    let held = pool.try_checkout(8192).unwrap();
    pool.prewarm(3584, 1);
    let buf = pool.checkout(3000);
    assert_eq!((buf.capacity(), buf.budget_charge()), (3072, 0));
    assert_eq!(pool.budget().unwrap().overdrafts, 1);
    assert_eq!(pool.stats().class(3584).unwrap().retained_depot, 1);
    drop((buf, held));
    assert_eq!(pool.budget().unwrap().charged, 0);
}
