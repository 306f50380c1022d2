//! The restart limit: `max_restarts` pass, one more gives up, old restarts
//! slide out of the window.

mod support;

use std::time::Duration;

use pod_supervisor::{Backoff, GetStatus, Intensity, SupervisorConfig, SupervisorEvent};
use support::{child, failed, is_gave_up, is_restarted, supervise, Log};

fn config(max: u32, within: Duration) -> SupervisorConfig {
    SupervisorConfig::default()
        .with_intensity(Intensity::new(max, within))
        .with_backoff(Backoff::immediate())
}

#[actix::test]
async fn max_restarts_pass_and_one_more_gives_up() {
    tokio::time::pause();
    let log = Log::default();
    let (a_addr, a) = child("a", &log).spawn();
    let (_b, b) = child("b", &log).spawn();
    let (_c, c) = child("c", &log).spawn();
    let (sup, mut events) = supervise(config(3, Duration::from_secs(10)), vec![a, b, c]).await;
    log.take();
    for _ in 0..3 {
        a_addr.send(failed("boom")).await.unwrap();
        events.until(is_restarted("a")).await;
    }
    assert_eq!(log.take(), ["restart:a", "restart:a", "restart:a"]);
    assert_eq!(sup.send(GetStatus).await.unwrap().restarts_in_window, 3);

    a_addr.send(failed("boom")).await.unwrap();
    let gave_up = events.until(is_gave_up).await;
    let SupervisorEvent::GaveUp {
        restarts, within, ..
    } = gave_up
    else {
        unreachable!()
    };
    assert_eq!((restarts, within), (4, Duration::from_secs(10)));
    // The failed child is already down; the others stop in reverse order.
    assert_eq!(log.take(), ["stop:c", "stop:b"]);
    // Without a parent, the supervisor actor stops after giving up.
    assert!(sup.send(GetStatus).await.is_err());
}

#[actix::test]
async fn old_restarts_slide_out_of_the_window() {
    tokio::time::pause();
    let log = Log::default();
    let (a_addr, a) = child("a", &log).spawn();
    let (sup, mut events) = supervise(config(2, Duration::from_secs(5)), vec![a]).await;
    for _ in 0..2 {
        a_addr.send(failed("boom")).await.unwrap();
        events.until(is_restarted("a")).await;
    }
    support::idle(Duration::from_millis(4_900)).await;
    assert_eq!(sup.send(GetStatus).await.unwrap().restarts_in_window, 2);
    support::idle(Duration::from_millis(100)).await;
    assert_eq!(sup.send(GetStatus).await.unwrap().restarts_in_window, 0);

    for _ in 0..2 {
        a_addr.send(failed("boom")).await.unwrap();
        events.until(is_restarted("a")).await;
    }
    a_addr.send(failed("boom")).await.unwrap();
    events.until(is_gave_up).await;
}

#[actix::test]
async fn the_window_slides_per_restart_not_per_bucket() {
    tokio::time::pause();
    let log = Log::default();
    let (a_addr, a) = child("a", &log).spawn();
    let (_sup, mut events) = supervise(config(2, Duration::from_secs(5)), vec![a]).await;
    // Restarts at 0 s and 3 s; at 6 s only the 3 s one is in the window, so a
    // third passes, but a fourth at 6 s makes three within 5 s.
    a_addr.send(failed("boom")).await.unwrap();
    events.until(is_restarted("a")).await;
    support::idle(Duration::from_secs(3)).await;
    a_addr.send(failed("boom")).await.unwrap();
    events.until(is_restarted("a")).await;
    support::idle(Duration::from_secs(3)).await;
    a_addr.send(failed("boom")).await.unwrap();
    events.until(is_restarted("a")).await;
    a_addr.send(failed("boom")).await.unwrap();
    events.until(is_gave_up).await;
}
