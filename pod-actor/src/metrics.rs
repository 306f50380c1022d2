//! What a pod reports through the [`metrics`] facade, per pod (label
//! `pod`).
//!
//! Off until the program says so: install a recorder (a Prometheus
//! exporter, say), then call [`enable`]; pods record from their next event
//! on (a start, a failure, a restart). A program that does not measure pays
//! nothing on a pod's start or calls.
//!
//! Series are never removed: a pod's stay, ending at `state="terminated"`,
//! after the pod is gone. A deployment that scales up and down for a long
//! time names new replicas each time; an exporter's idle timeout (for
//! Prometheus, `PrometheusBuilder::idle_timeout`) bounds what it keeps.
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `pod_state` | gauge | `pod`, `state` | 1 for the state the pod is in, 0 for the others (set one after the other: a scrape at that instant may see two at 1) |
//! | `pod_restarts_total` | counter | `pod` | restarts the supervisor decided |
//! | `pod_failures_total` | counter | `pod`, `cause` | failures by kind: `panicked`, `error`, `exited`, `unhealthy`, `timed_out`, `lost` |
//! | `pod_startup_seconds` | histogram | `pod` | per generation, from building the runtime to the end of its setup ([`Started::startup`](crate::Started::startup)) |
//! | `pod_call_seconds` | histogram | `pod` | a call's round trip through the pod |

use std::sync::atomic::{AtomicBool, Ordering};

use metrics::{Counter, Gauge, Histogram};
use runtime_actor::FailureCause;

use crate::messages::PodState;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns the pods' metrics on, for pods that start from now on; call it
/// once the process's recorder is installed.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether [`enable`] was called.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

const STATES: [(PodState, &str); 7] = [
    (PodState::Idle, "idle"),
    (PodState::Starting, "starting"),
    (PodState::Running, "running"),
    (PodState::Failing, "failing"),
    (PodState::Restarting, "restarting"),
    (PodState::Closing, "closing"),
    (PodState::Terminated, "terminated"),
];

/// One pod's handles, registered once (at its start) so that the call path
/// looks nothing up.
pub(crate) struct PodMetrics {
    pod: String,
    states: Vec<(PodState, Gauge)>,
    restarts: Counter,
    startup: Histogram,
    call: Histogram,
}

impl PodMetrics {
    pub(crate) fn new(pod: &str) -> Self {
        let name = pod.to_owned();
        PodMetrics {
            states: STATES
                .iter()
                .map(|&(state, label)| {
                    let gauge =
                        metrics::gauge!("pod_state", "pod" => name.clone(), "state" => label);
                    (state, gauge)
                })
                .collect(),
            restarts: metrics::counter!("pod_restarts_total", "pod" => name.clone()),
            startup: metrics::histogram!("pod_startup_seconds", "pod" => name.clone()),
            call: metrics::histogram!("pod_call_seconds", "pod" => name.clone()),
            pod: name,
        }
    }

    pub(crate) fn state(&self, now: PodState) {
        // The new state first: a scrape in between sees two states, never
        // none.
        for (state, gauge) in &self.states {
            if *state == now {
                gauge.set(1.0);
            }
        }
        for (state, gauge) in &self.states {
            if *state != now {
                gauge.set(0.0);
            }
        }
    }

    pub(crate) fn restarted(&self) {
        self.restarts.increment(1);
    }

    pub(crate) fn failed(&self, cause: &FailureCause) {
        let kind = match cause {
            FailureCause::Panicked { .. } => "panicked",
            FailureCause::Error(_) => "error",
            FailureCause::Exited { .. } => "exited",
            FailureCause::Unhealthy { .. } => "unhealthy",
            FailureCause::TimedOut { .. } => "timed_out",
            _ => "lost",
        };
        metrics::counter!("pod_failures_total", "pod" => self.pod.clone(), "cause" => kind)
            .increment(1);
    }

    pub(crate) fn started(&self, startup: std::time::Duration) {
        self.startup.record(startup.as_secs_f64());
    }

    /// The handle calls record their round trip in.
    pub(crate) fn call(&self) -> Histogram {
        self.call.clone()
    }
}
