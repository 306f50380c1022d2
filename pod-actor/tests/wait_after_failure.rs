//! Whoever asks a pod right after a call was answered with its runtime's
//! failure hears of that failure: a `WaitStartSuccess` waits for the next
//! generation, a `Subscribe` gets no `Started` of the generation that just
//! died, a `GetStatus` does not say it runs.
//!
//! With a runtime on an arbiter of its own, the failure reaches the pod
//! through the runtime's monitor, a task on the pod's arbiter, while the
//! failed call's answer goes straight to its caller. The caller can then
//! ask before the pod has heard of the failure; the pod acts on the failure
//! the runtime recorded.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix::Actor;
use pod_actor::{
    Call, CallError, Close, GetStatus, HealthConfig, PlacementKind, Pod, PodConfig, PodError,
    PodState, RestartKind, RuntimeSpec, Start, WaitStartSuccess,
};
use runtime_actor::{FailureCause, Runtime, RuntimeContext, RuntimeError, RuntimeFactory};
use support::subscribe_started;

/// Panics on `u64::MAX`, echoes anything else; its health check panics
/// once `sick` is set.
#[derive(Default)]
struct Fragile {
    sick: Arc<AtomicBool>,
}

impl Runtime for Fragile {
    type Request = u64;
    type Response = u64;

    async fn setup(&mut self, ctx: &mut RuntimeContext) -> Result<(), RuntimeError> {
        // As a runtime that runs a process says which.
        ctx.set_pid(PID);
        Ok(())
    }

    async fn handle(&mut self, n: u64) -> Result<u64, RuntimeError> {
        assert_ne!(n, u64::MAX, "asked to fail");
        Ok(n)
    }

    async fn health(&mut self) -> Result<(), RuntimeError> {
        assert!(!self.sick.load(Ordering::SeqCst), "health check exploded");
        Ok(())
    }
}

/// The process a `Fragile` says it runs (none is started).
const PID: u32 = 4242;

fn fragile() -> RuntimeFactory<Fragile> {
    RuntimeFactory::new(|_| Fragile::default())
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

#[actix_rt::test]
async fn a_wait_after_a_crash_gets_the_next_start_dedicated() {
    crash_then_wait(PlacementKind::Dedicated).await;
}

#[actix_rt::test]
async fn a_wait_after_a_crash_gets_the_next_start_shared() {
    crash_then_wait(PlacementKind::Shared).await;
}

/// After each crash's answer, asks at once for the start to wait on: the
/// next generation's, which serves.
async fn crash_then_wait(placement: PlacementKind) {
    crash_then(placement, 20, |pod, died| async move {
        let next = pod.send(WaitStartSuccess).await.unwrap().unwrap();
        assert!(
            next.generation > died,
            "generation {died} died, and WaitStartSuccess answered with it ({placement:?})"
        );
        assert_eq!(pod.send(Call::<Fragile>(7)).await.unwrap().unwrap(), 7);
    })
    .await;
}

/// With no restart to come, the wait gets how the pod ended.
#[actix_rt::test]
async fn a_wait_after_a_crash_with_no_restart_gets_the_end() {
    for placement in [PlacementKind::Dedicated, PlacementKind::Shared].repeat(10) {
        let pod = Pod::new(config(placement, RestartKind::Temporary), fragile()).start();
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

/// Crashes the runtime with a call, then `ask`s the pod at once, `rounds`
/// times; `ask` gets the pod and the generation that died.
async fn crash_then<F, Fut>(placement: PlacementKind, rounds: u64, ask: F)
where
    F: Fn(actix::Addr<Pod<Fragile>>, u64) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let pod = Pod::new(config(placement, RestartKind::Permanent), fragile()).start();
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
        ask(pod.clone(), generation).await;
        generation = pod
            .send(WaitStartSuccess)
            .await
            .unwrap()
            .unwrap()
            .generation;
    }
    pod.send(Close::default()).await.unwrap();
}

#[actix_rt::test]
async fn a_subscriber_after_a_crash_gets_no_start_of_the_dead_generation() {
    crash_then(PlacementKind::Dedicated, 10, |pod, died| async move {
        // Held here: a pod holds its subscribers weakly.
        let mut started = subscribe_started(&pod).await;
        let first = started.next().await;
        drop(started);
        assert!(
            first.generation > died,
            "generation {died} died, and the subscriber got its Started"
        );
    })
    .await;
}

#[actix_rt::test]
async fn a_status_after_a_crash_does_not_say_the_dead_generation_runs() {
    crash_then(PlacementKind::Dedicated, 10, |pod, died| async move {
        let status = pod.send(GetStatus).await.unwrap();
        assert!(
            status.generation > died || status.state != PodState::Running,
            "generation {died} died, and the status says it runs: {status:?}"
        );
        if status.generation == died {
            assert_eq!(status.pid, None, "the dead generation's pid: {status:?}");
            let failure = status.last_failure.unwrap_or_default();
            assert!(failure.contains("asked to fail"), "{failure}");
        } else if status.state == PodState::Running {
            assert_eq!(status.pid, Some(PID), "{status:?}");
        }
    })
    .await;
}

/// A health check that panics fails the runtime of that panic, wherever the
/// runtime runs: not of an unhealthy answer counted by the pod.
#[actix_rt::test]
async fn a_check_that_panics_is_the_cause_in_every_placement() {
    for placement in [PlacementKind::Dedicated, PlacementKind::Shared] {
        let mut config = config(placement, RestartKind::Temporary);
        config.health = Some(HealthConfig {
            interval: 5,
            timeout: 1_000,
            failure_threshold: 1,
        });
        let sick = Arc::new(AtomicBool::new(false));
        let factory = {
            let sick = Arc::clone(&sick);
            RuntimeFactory::new(move |_| Fragile {
                sick: Arc::clone(&sick),
            })
        };
        let pod = Pod::new(config, factory).start();
        pod.send(Start).await.unwrap().unwrap();
        pod.send(WaitStartSuccess).await.unwrap().unwrap();
        sick.store(true, Ordering::SeqCst);
        pod.send(pod_actor::Join).await.unwrap().unwrap_err();
        let ended = pod.send(WaitStartSuccess).await.unwrap();
        match ended {
            Err(PodError::ExitedEarly {
                cause: Some(FailureCause::Panicked { message, .. }),
            }) => assert!(message.contains("health check exploded"), "{message}"),
            other => panic!("{placement:?}: {other:?}"),
        }
    }
}
