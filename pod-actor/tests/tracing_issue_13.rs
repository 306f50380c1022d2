//! What operators see in their logs: a pod's start, Started, failures,
//! restarts, give-up and close as structured `tracing` events in the pod's
//! span, and caught panics as one event instead of a panic report.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::Actor;
use pod_actor::{
    Call, Close, Join, PlacementKind, Pod, PodConfig, RuntimeSpec, Start, WaitStartSuccess,
};
use runtime_actor::{Runtime, RuntimeContext, RuntimeError, RuntimeFactory};

/// Everything written by the subscriber, shared with the test.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The one line holding every fragment, or a failure listing them all.
    fn line(&self, fragments: &[&str]) -> String {
        let lines = self.lines();
        lines
            .iter()
            .find(|line| fragments.iter().all(|f| line.contains(f)))
            .cloned()
            .unwrap_or_else(|| panic!("no line with {fragments:?} in:\n{}", lines.join("\n")))
    }
}

fn capture() -> (Capture, tracing::subscriber::DefaultGuard) {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::DEBUG)
        .without_time()
        .finish();
    (capture, tracing::subscriber::set_default(subscriber))
}

struct Flaky;

impl Runtime for Flaky {
    type Request = bool;
    type Response = ();

    async fn setup(&mut self, _: &mut RuntimeContext) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn handle(&mut self, crash: bool) -> Result<(), RuntimeError> {
        if crash {
            panic!("lost the model");
        }
        Ok(())
    }
}

fn config(name: &str, max_restarts: u32) -> PodConfig {
    let mut config = PodConfig::new(
        name,
        RuntimeSpec::InProcess {
            name: "flaky".into(),
        },
    );
    config.placement = PlacementKind::Shared;
    config.restart.backoff.initial = 10;
    config.restart.backoff.jitter = 0.0;
    config.restart.max_restarts = max_restarts;
    config
}

#[actix::test]
async fn a_pods_life_is_in_its_span_at_the_right_levels() {
    let (logs, _guard) = capture();
    runtime_actor::panics_to_tracing();
    let pod = Pod::new(config("encoder", 5), RuntimeFactory::new(|_| Flaky)).start();
    pod.send(Start).await.unwrap().unwrap();
    pod.send(WaitStartSuccess).await.unwrap().unwrap();
    let _ = pod.send(Call::<Flaky>(true)).await.unwrap();
    for _ in 0..200 {
        if pod.send(Call::<Flaky>(false)).await.unwrap().is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    pod.send(Close::default()).await.unwrap();

    let span = "pod{pod=encoder generation=0}";
    logs.line(&[" INFO ", span, "starting"]);
    logs.line(&[" INFO ", span, "started", "startup_ms="]);
    // The panic: one event, with its message and location, no report.
    logs.line(&[
        " WARN ",
        "a runtime panicked; its pod catches it",
        "panic=lost the model",
        "location=pod-actor/tests/tracing_issue_13.rs:",
    ]);
    logs.line(&[
        " WARN ",
        span,
        "failed",
        "cause=panicked at pod-actor/tests/tracing_issue_13.rs:",
        "lost the model",
    ]);
    logs.line(&[" WARN ", span, "restarting", "attempt=1", "delay_ms=10"]);
    logs.line(&[
        " INFO ",
        "pod{pod=encoder generation=1}",
        "started",
        "restarts=1",
    ]);
    logs.line(&[
        " INFO ",
        "pod{pod=encoder generation=1}",
        "closed",
        "forced=false",
        "took_ms=",
    ]);
    // Structured fields, not Debug dumps.
    assert!(
        logs.lines()
            .iter()
            .all(|l| !l.contains("Panicked {") && !l.contains("Duration")),
        "{:#?}",
        logs.lines()
    );
}

#[actix::test]
async fn a_give_up_is_an_error() {
    let (logs, _guard) = capture();
    runtime_actor::panics_to_tracing();
    let pod = Pod::new(config("fragile", 0), RuntimeFactory::new(|_| Flaky)).start();
    pod.send(Start).await.unwrap().unwrap();
    pod.send(WaitStartSuccess).await.unwrap().unwrap();
    let _ = pod.send(Call::<Flaky>(true)).await.unwrap();
    assert!(pod.send(Join).await.unwrap().is_err());
    logs.line(&[
        "ERROR pod{pod=fragile generation=0}",
        "terminated",
        "error=supervisor gave up",
    ]);
}

#[actix::test]
async fn events_of_a_pod_that_has_ended_end_at_once() {
    use futures::StreamExt;
    // Captured although nothing is read: tracing caches whether a callsite
    // is enabled for all threads at once, and a thread with no subscriber
    // that hits the pod's `closed` event first can make the other tests'
    // subscribers miss it.
    let (_logs, _guard) = capture();
    use pod_actor::{PodEvent, PodEvents};
    let pod = Pod::new(config("ended", 5), RuntimeFactory::new(|_| Flaky)).start();
    pod.send(Start).await.unwrap().unwrap();
    pod.send(Close::default()).await.unwrap();
    // Terminated: the end is said at once, then the stream ends.
    let mut events = PodEvents::of(&pod);
    assert!(matches!(
        events.next().await,
        Some(PodEvent::Terminated { error: None })
    ));
    assert!(events.next().await.is_none());
    let any = pod_actor::AnyPod::from(pod.clone());
    assert!(matches!(
        any.events().next().await,
        Some(PodEvent::Terminated { .. })
    ));

    // Gone: nothing to say, the stream ends.
    let arbiter = actix::Arbiter::new();
    let gone = Pod::start_in_arbiter(&arbiter.handle(), |_| {
        Pod::new(config("gone", 5), RuntimeFactory::new(|_| Flaky))
    });
    arbiter.stop();
    let _ = arbiter.join();
    let mut events = PodEvents::of(&gone);
    assert!(events.next().await.is_none());
}
