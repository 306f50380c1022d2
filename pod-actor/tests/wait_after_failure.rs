//! A `WaitStartSuccess` sent right after a call was answered with the
//! runtime's failure waits for the next generation: it is never answered
//! with the `Started` of the generation that just died.
//!
//! With a runtime on an arbiter of its own, the failure reaches the pod
//! through the runtime's monitor, a task on the pod's arbiter, while the
//! failed call's answer goes straight to its caller. The caller can then
//! ask before the pod has heard of the failure.

use actix::Actor;
use pod_actor::{
    Call, CallError, Close, PlacementKind, Pod, PodConfig, PodError, RestartKind, RuntimeSpec,
    Start, WaitStartSuccess,
};
use runtime_actor::{Runtime, RuntimeContext, RuntimeError, RuntimeFactory};

/// Panics on `u64::MAX`, echoes anything else.
struct Fragile;

impl Runtime for Fragile {
    type Request = u64;
    type Response = u64;

    async fn setup(&mut self, _: &mut RuntimeContext) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn handle(&mut self, n: u64) -> Result<u64, RuntimeError> {
        assert_ne!(n, u64::MAX, "asked to fail");
        Ok(n)
    }
}

fn config(placement: PlacementKind, restart: RestartKind) -> PodConfig {
    let mut config = PodConfig::new(
        "fragile",
        RuntimeSpec::InProcess {
            name: "fragile".into(),
        },
    );
    config.placement = placement;
    config.restart.policy = restart;
    config.restart.backoff.initial = 0;
    config.restart.backoff.jitter = 0.0;
    config.restart.max_restarts = 1_000;
    config
}

/// Crashes the runtime `rounds` times; after each crash's answer, asks at
/// once for the start to wait on.
async fn crash_then_wait(placement: PlacementKind, rounds: u64) {
    let pod = Pod::new(
        config(placement, RestartKind::Permanent),
        RuntimeFactory::new(|_| Fragile),
    )
    .start();
    pod.send(Start).await.unwrap().unwrap();
    let mut generation = pod
        .send(WaitStartSuccess)
        .await
        .unwrap()
        .unwrap()
        .generation;
    for _ in 0..rounds {
        let crashed = pod.send(Call::<Fragile>(u64::MAX)).await.unwrap();
        assert!(
            matches!(crashed, Err(CallError::RuntimeExited { .. })),
            "{crashed:?}"
        );
        let next = pod.send(WaitStartSuccess).await.unwrap().unwrap();
        assert!(
            next.generation > generation,
            "generation {} died, and WaitStartSuccess answered with it ({placement:?})",
            generation
        );
        generation = next.generation;
        assert_eq!(pod.send(Call::<Fragile>(7)).await.unwrap().unwrap(), 7);
    }
    pod.send(Close::default()).await.unwrap();
}

#[actix_rt::test]
async fn a_wait_after_a_crash_gets_the_next_start_dedicated() {
    crash_then_wait(PlacementKind::Dedicated, 20).await;
}

#[actix_rt::test]
async fn a_wait_after_a_crash_gets_the_next_start_shared() {
    crash_then_wait(PlacementKind::Shared, 20).await;
}

/// With no restart to come, the wait gets how the pod ended.
#[actix_rt::test]
async fn a_wait_after_a_crash_with_no_restart_gets_the_end() {
    for placement in [PlacementKind::Dedicated, PlacementKind::Shared].repeat(10) {
        let pod = Pod::new(
            config(placement, RestartKind::Temporary),
            RuntimeFactory::new(|_| Fragile),
        )
        .start();
        pod.send(Start).await.unwrap().unwrap();
        pod.send(WaitStartSuccess).await.unwrap().unwrap();
        let crashed = pod.send(Call::<Fragile>(u64::MAX)).await.unwrap();
        assert!(
            matches!(crashed, Err(CallError::RuntimeExited { .. })),
            "{crashed:?}"
        );
        let waited = pod.send(WaitStartSuccess).await.unwrap();
        assert!(
            matches!(waited, Err(PodError::ExitedEarly { .. })),
            "{placement:?}: {waited:?}"
        );
    }
}
