//! A `Close` that reaches the pod right behind its runtime's failure is read
//! before the pod acts on the failure: the pod closes, and no generation is
//! started only to be closed at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use actix::{Actor, Addr};
use futures::StreamExt;
use pod_actor::{
    Call, Close, Join, PlacementKind, Pod, PodConfig, PodEvent, PodEvents, RestartKind,
    RuntimeSpec, Start, WaitStartSuccess,
};
use runtime_actor::{FailureReporter, Runtime, RuntimeContext, RuntimeError, RuntimeFactory};

/// Fails itself through its reporter on `u64::MAX`; the first generation,
/// dropped once the failure is told, asks its pod to close, so that the
/// `Close` lands right behind the failure's event.
struct Crashing {
    generation: u64,
    pod: Arc<OnceLock<Addr<Pod<Crashing>>>>,
    reporter: Option<FailureReporter>,
}

impl Drop for Crashing {
    fn drop(&mut self) {
        if self.generation == 0 {
            if let Some(pod) = self.pod.get() {
                pod.do_send(Close::default());
            }
        }
    }
}

impl Runtime for Crashing {
    type Request = u64;
    type Response = u64;

    async fn setup(&mut self, ctx: &mut RuntimeContext) -> Result<(), RuntimeError> {
        self.reporter = Some(ctx.failure_reporter());
        Ok(())
    }

    async fn handle(&mut self, n: u64) -> Result<u64, RuntimeError> {
        if let (u64::MAX, Some(reporter)) = (n, &self.reporter) {
            reporter.fail(RuntimeError::new("asked to fail"));
        }
        Ok(n)
    }
}

async fn close_right_behind_a_crash(restart: RestartKind) -> (Vec<PodEvent>, u64) {
    let mut config = PodConfig::new(
        "crashing",
        RuntimeSpec::InProcess {
            name: "crashing".into(),
        },
    );
    config.placement = PlacementKind::Shared;
    config.restart.policy = restart;
    config.restart.backoff.initial = 0;
    config.restart.backoff.jitter = 0.0;
    let builds = Arc::new(AtomicU64::new(0));
    let pod_slot = Arc::new(OnceLock::new());
    let factory = {
        let (builds, pod_slot) = (Arc::clone(&builds), Arc::clone(&pod_slot));
        RuntimeFactory::new(move |_| Crashing {
            generation: builds.fetch_add(1, Ordering::SeqCst),
            pod: Arc::clone(&pod_slot),
            reporter: None,
        })
    };
    let pod = Pod::new(config, factory).start();
    let _ = pod_slot.set(pod.clone());
    let mut events = PodEvents::of(&pod);
    pod.send(Start).await.unwrap().unwrap();
    pod.send(WaitStartSuccess).await.unwrap().unwrap();
    let reported = pod.send(Call::<Crashing>(u64::MAX)).await.unwrap();
    assert_eq!(reported.ok(), Some(u64::MAX));
    pod.send(Join).await.unwrap().expect("closed, not failed");
    let mut seen = Vec::new();
    while let Some(event) = events.next().await {
        seen.push(event);
    }
    (seen, builds.load(Ordering::SeqCst))
}

#[actix::test]
async fn a_close_behind_a_failure_closes_the_pod_without_a_restart() {
    for restart in [RestartKind::Permanent, RestartKind::Temporary] {
        let (events, builds) = close_right_behind_a_crash(restart).await;
        assert_eq!(builds, 1, "{restart:?}: no new generation; {events:?}");
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, PodEvent::Restarting { .. })),
            "{restart:?}: {events:?}"
        );
        assert!(
            matches!(events.last(), Some(PodEvent::Terminated { error: None })),
            "{restart:?}: {events:?}"
        );
    }
}
