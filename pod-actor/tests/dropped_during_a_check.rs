//! A pod whose last address is dropped while a health check is in flight
//! closes then, even though the check keeps it alive a while: an address
//! upgraded from a weak one meanwhile finds it closing, not running with
//! nobody reading its runtime's events.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use pod_actor::{
    GetStatus, HealthConfig, Join, PlacementKind, Pod, PodConfig, PodState, RuntimeSpec, Start,
    WaitStartSuccess,
};
use runtime_actor::{Runtime, RuntimeContext, RuntimeError, RuntimeFactory};

/// Healthy after a 2 s check; counts its drops.
struct SlowCheck {
    dropped: Arc<AtomicUsize>,
}

impl Drop for SlowCheck {
    fn drop(&mut self) {
        self.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

impl Runtime for SlowCheck {
    type Request = u64;
    type Response = u64;

    async fn setup(&mut self, _: &mut RuntimeContext) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn handle(&mut self, n: u64) -> Result<u64, RuntimeError> {
        Ok(n)
    }

    async fn health(&mut self) -> Result<(), RuntimeError> {
        tokio::time::sleep(Duration::from_secs(2)).await;
        Ok(())
    }
}

#[actix::test]
async fn a_pod_dropped_during_a_health_check_closes_and_an_upgrade_finds_it_closing() {
    tokio::time::pause();
    let mut config = PodConfig::new(
        "checked",
        RuntimeSpec::InProcess {
            name: "slow-check".into(),
        },
    );
    config.placement = PlacementKind::Shared;
    config.health = Some(HealthConfig {
        interval: 100,
        timeout: 10_000,
        failure_threshold: 1000,
    });
    let dropped = Arc::new(AtomicUsize::new(0));
    let factory = {
        let dropped = Arc::clone(&dropped);
        RuntimeFactory::new(move |_| SlowCheck {
            dropped: Arc::clone(&dropped),
        })
    };
    let pod = Pod::new(config, factory).start();
    pod.send(Start).await.unwrap().unwrap();
    pod.send(WaitStartSuccess).await.unwrap().unwrap();
    // The first check is in flight, for 2 s.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let weak = pod.downgrade();
    drop(pod);
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let pod = weak.upgrade().expect("the check keeps the pod alive");
    let status = pod.send(GetStatus).await.unwrap();
    assert!(
        matches!(status.state, PodState::Closing | PodState::Terminated),
        "{status:?}"
    );
    pod.send(Join).await.unwrap().expect("closed, not failed");
    assert_eq!(dropped.load(Ordering::SeqCst), 1, "the runtime is freed");
}
