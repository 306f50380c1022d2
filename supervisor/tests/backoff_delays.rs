//! Delays before restarts: the exponential sequence, jitter bounds and seed,
//! reset after readiness, and immediate restarts.

mod support;

use std::time::Duration;

use pod_supervisor::{Backoff, Intensity, SupervisorConfig, SupervisorEvent};
use support::{child, failed, supervise, Events, Log};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn config(backoff: Backoff) -> SupervisorConfig {
    SupervisorConfig::default()
        .with_intensity(Intensity::new(1_000, Duration::from_secs(3600)))
        .with_backoff(backoff)
}

/// Fails the child once and returns the announced delay and the measured
/// failure → ready latency.
async fn fail_once(
    child: &actix::Addr<support::TestChild>,
    events: &mut Events,
) -> (Duration, Duration) {
    child.send(failed("boom")).await.unwrap();
    let mut delay = None;
    // The paused clock wakes timers on millisecond ticks, hence the
    // `+ 2 ms` in the latency checks: a timer's deadline is rounded up to
    // the next tick of the time driver, and the clock, advanced by whole
    // ticks, keeps the sub-millisecond phase it started with (tokio's
    // `park_thread_timeout`), up to one more millisecond.
    loop {
        match events.next().await {
            SupervisorEvent::ChildRestarting { delay: d, .. } => delay = Some(d),
            SupervisorEvent::ChildRestarted { latency, .. } => {
                return (delay.expect("restarting before restarted"), latency)
            }
            _ => {}
        }
    }
}

async fn delays(backoff: Backoff, seed: u64, n: usize) -> Vec<Duration> {
    let log = Log::default();
    let (a_addr, a) = child("a", &log).spawn();
    let (_sup, mut events) = supervise(config(backoff).with_seed(seed), vec![a]).await;
    let mut out = Vec::new();
    for _ in 0..n {
        let (delay, latency) = fail_once(&a_addr, &mut events).await;
        assert!(
            latency >= delay && latency < delay + ms(2),
            "{latency:?} vs {delay:?}"
        );
        out.push(delay);
    }
    out
}

#[actix::test]
async fn delays_grow_exponentially_up_to_max_without_jitter() {
    tokio::time::pause();
    let backoff = Backoff::new(ms(100), 2.0, ms(1000))
        .with_jitter(0.0)
        .with_reset_after(Duration::from_secs(3600));
    let got = delays(backoff, 1, 6).await;
    assert_eq!(
        got,
        [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
    );
}

#[actix::test]
async fn jittered_delays_stay_in_bounds_and_follow_the_seed() {
    tokio::time::pause();
    let backoff = Backoff::new(ms(100), 2.0, ms(1000))
        .with_jitter(0.5)
        .with_reset_after(Duration::from_secs(3600));
    let got = delays(backoff, 7, 6).await;
    let mut spread = false;
    for (n, d) in got.iter().enumerate() {
        let base = backoff.base_delay(n as u32 + 1);
        assert!(
            *d <= base && *d >= base / 2,
            "attempt {}: {d:?} vs {base:?}",
            n + 1
        );
        spread |= *d != base;
    }
    assert!(spread, "jitter never shortened a delay: {got:?}");
    assert_eq!(delays(backoff, 7, 6).await, got, "same seed, same delays");
    assert_ne!(
        delays(backoff, 8, 6).await,
        got,
        "another seed, other delays"
    );
}

#[actix::test]
async fn attempts_reset_after_reset_after_of_readiness() {
    tokio::time::pause();
    let backoff = Backoff::new(ms(100), 2.0, ms(10_000))
        .with_jitter(0.0)
        .with_reset_after(Duration::from_secs(5));
    let log = Log::default();
    let (a_addr, a) = child("a", &log).spawn();
    let (_sup, mut events) = supervise(config(backoff), vec![a]).await;
    assert_eq!(fail_once(&a_addr, &mut events).await.0, ms(100));
    assert_eq!(fail_once(&a_addr, &mut events).await.0, ms(200));
    // Ready for less than `reset_after`: the sequence goes on.
    support::idle(ms(4_900)).await;
    assert_eq!(fail_once(&a_addr, &mut events).await.0, ms(400));
    // Ready for `reset_after`: back to the first delay.
    support::idle(ms(5_000)).await;
    assert_eq!(fail_once(&a_addr, &mut events).await.0, ms(100));
    assert_eq!(fail_once(&a_addr, &mut events).await.0, ms(200));
}

#[actix::test]
async fn zero_initial_restarts_at_once() {
    tokio::time::pause();
    let log = Log::default();
    let (a_addr, a) = child("a", &log).spawn();
    let (_sup, mut events) = supervise(config(Backoff::immediate()), vec![a]).await;
    for _ in 0..3 {
        assert_eq!(
            fail_once(&a_addr, &mut events).await,
            (Duration::ZERO, Duration::ZERO)
        );
    }
}

#[actix::test]
async fn a_long_backoff_does_not_hold_up_another_childs_restart() {
    tokio::time::pause();
    let backoff = Backoff::new(ms(100), 100.0, Duration::from_secs(60)).with_jitter(0.0);
    let log = Log::default();
    let (a_addr, a) = child("a", &log).spawn();
    let (b_addr, b) = child("b", &log).spawn();
    let (_sup, mut events) = supervise(config(backoff), vec![a, b]).await;
    fail_once(&a_addr, &mut events).await;
    // a's second delay is 10 s; b's first, 100 ms, passes first.
    a_addr.send(failed("boom")).await.unwrap();
    let (delay, latency) = fail_once(&b_addr, &mut events).await;
    assert_eq!(delay, ms(100));
    assert!(latency >= ms(100) && latency <= ms(101), "{latency:?}");
    log.take();
    events
        .until(|e| matches!(e, SupervisorEvent::ChildRestarted { id, .. } if id == "a"))
        .await;
    assert_eq!(log.take(), ["restart:a"]);
}
