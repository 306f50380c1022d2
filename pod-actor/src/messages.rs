use std::fmt;
use std::time::{Duration, SystemTime};

use actix::{Message, Recipient};
use runtime_actor::{FailureCause, Runtime};
use serde::{Deserialize, Serialize};

use crate::config::PodRole;
use crate::error::{CallError, PodError};

// ===== commands =====

/// Starts the pod's runtime without waiting for it (Jina's `start()` with
/// `noblock_on_start`).
///
/// Sent by the pod's owner, once. The pod registers with its supervisor,
/// which starts the runtime; readiness arrives as [`Started`]. Answers
/// [`PodError::AlreadyStarted`] when sent again and [`PodError::Closed`] after
/// a close.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<(), PodError>")]
pub struct Start;

/// Starts the pod's runtime and answers once it is ready or cannot become
/// ready (Jina's `start()`, which waits unless `noblock_on_start`).
///
/// [`Start`] and then [`WaitStartSuccess`] in one message, both taken in
/// the same turn: it answers as `Start` does when the pod cannot start
/// ([`PodError::AlreadyStarted`], [`PodError::Closed`], or
/// [`PodError::Supervisor`] when the restart config is invalid or the
/// supervisor is shutting down), and otherwise as `WaitStartSuccess` does,
/// with the first [`Started`] or the reason there is none. A pod that has
/// ended (its start failed, say) answers `Closed`, as to `Start`;
/// `WaitStartSuccess` and [`Join`] tell why it ended.
///
/// # Examples
///
/// ```
/// use actix::Actor;
/// use pod_actor::{Pod, PodConfig, RuntimeSpec, StartAndWait};
/// use runtime_actor::{Runtime, RuntimeContext, RuntimeError, RuntimeFactory};
///
/// struct Echo;
///
/// impl Runtime for Echo {
///     type Request = u64;
///     type Response = u64;
///
///     async fn setup(&mut self, _: &mut RuntimeContext) -> Result<(), RuntimeError> {
///         Ok(())
///     }
///
///     async fn handle(&mut self, n: u64) -> Result<u64, RuntimeError> {
///         Ok(n)
///     }
/// }
///
/// # #[actix::main]
/// # async fn main() {
/// let config = PodConfig::new("echo", RuntimeSpec::InProcess { name: "echo".into() });
/// let pod = Pod::new(config, RuntimeFactory::new(|_| Echo)).start();
/// let started = pod.send(StartAndWait).await.unwrap().unwrap();
/// assert_eq!((started.pod.as_str(), started.generation), ("echo", 0));
/// # }
/// ```
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Started, PodError>")]
pub struct StartAndWait;

/// Resolves once the pod is ready or cannot become ready (Jina's
/// `wait_start_success`).
///
/// Sent by anyone, any number of times, concurrently; every waiter gets the
/// answer. A waiter during a restart waits for the next [`Started`].
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Started, PodError>")]
pub struct WaitStartSuccess;

/// Receive [`Started`] now if the pod is ready, and after every (re)start.
///
/// Sent by anyone. The pod holds the subscriber weakly: it does not keep the
/// subscriber alive, and a dead one is dropped without error.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Subscribe(pub Recipient<Started>);

/// Receive every [`PodEvent`] from now on. Held weakly, like [`Subscribe`].
/// A pod that has already terminated sends [`PodEvent::Terminated`] at once.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SubscribeEvents(pub Recipient<PodEvent>);

/// A request for the pod's runtime.
///
/// Sent by the pod's users. Answered by the runtime, or with
/// [`CallError::NotReady`] at once while the pod is not ready; a call queued
/// or in flight when the runtime dies gets [`CallError::RuntimeExited`]. No
/// call is left unanswered.
pub struct Call<R: Runtime>(pub R::Request);

impl<R: Runtime> Message for Call<R> {
    type Result = Result<R::Response, CallError>;
}

impl<R: Runtime> fmt::Debug for Call<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Call").finish_non_exhaustive()
    }
}

/// Asks for the pod's [`PodStatus`].
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "PodStatus")]
pub struct GetStatus;

/// Asks for the pod's [`PodRole`] (Jina's `role` property).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "PodRole")]
pub struct GetRole;

/// Closes the pod (Jina's `close()`): graceful teardown, forced after the
/// timeout.
///
/// Sent by the pod's owner. Idempotent: a second close gets the first one's
/// report. Calls the pod accepted before the close are answered; later ones
/// get [`CallError::Closed`]. Safe while starting: the start is stopped the
/// graceful way too (setup abandoned, teardown run), and waiters get
/// [`PodError::Closed`]. Safe while restarting: the pending restart is
/// cancelled, and the close never counts as a failure.
#[derive(Debug, Clone, Copy, Default, Message)]
#[rtype(result = "CloseReport")]
pub struct Close {
    /// The graceful part of the close; `None` uses the config's `timeout_ctrl`.
    pub timeout: Option<Duration>,
}

/// Resolves once the pod has terminated (Jina's `join()`): `Ok` when it was
/// closed, or the error that ended it otherwise ([`PodError::GaveUp`] with
/// the supervisor's reason, [`PodError::ExitedEarly`], …). Callers add their
/// own timeout. Before `Start` it resolves at once with
/// [`PodError::NotStarted`].
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<(), PodError>")]
pub struct Join;

// ===== events =====

/// The pod's runtime is ready.
///
/// Sent by the pod to every [`Subscribe`]r exactly once per generation, the
/// moment the runtime reports ready; a subscriber added later gets the
/// current one at once.
#[derive(Debug, Clone, PartialEq, Eq, Message, Serialize, Deserialize)]
#[rtype(result = "()")]
pub struct Started {
    /// The pod's name.
    pub pod: String,
    /// The pod's role.
    pub role: PodRole,
    /// Which start this is: 0 for the first, one more per restart.
    pub generation: u64,
    /// How many times the runtime has been restarted.
    pub restarts: u64,
    /// How long this generation took from spawn to ready (in JSON,
    /// `startup_ms`).
    #[serde(rename = "startup_ms", with = "supervisor::millis")]
    pub startup: Duration,
    /// The main process of a process runtime: the one spawned, or the one
    /// it handed over to with sd_notify's `MAINPID=`.
    pub pid: Option<u32>,
}

/// Every step of a pod's lifecycle, sent to [`SubscribeEvents`] subscribers.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
#[non_exhaustive]
pub enum PodEvent {
    /// A runtime generation is being started.
    Starting {
        /// The generation.
        generation: u64,
    },
    /// The starting runtime reported progress and extended its deadline.
    Progressed {
        /// The generation.
        generation: u64,
        /// What it said.
        note: String,
    },
    /// The runtime is ready.
    Started(Started),
    /// A health check failed.
    Unhealthy {
        /// The generation.
        generation: u64,
        /// What the check said.
        reason: String,
        /// Failed checks in a row.
        consecutive: u32,
    },
    /// The runtime failed.
    Failed {
        /// The generation.
        generation: u64,
        /// Why.
        cause: FailureCause,
    },
    /// The supervisor will restart the runtime after `delay`.
    Restarting {
        /// Restart attempt since the last backoff reset, from 1.
        attempt: u32,
        /// The backoff delay.
        delay: Duration,
    },
    /// The pod has terminated: closed, or failed with no restart to come.
    Terminated {
        /// Why, when it did not end by a close.
        error: Option<PodError>,
    },
}

// ===== replies =====

/// Where a pod is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PodState {
    /// Created, not started.
    Idle,
    /// A runtime generation is starting.
    Starting,
    /// The runtime is ready and serving.
    Running,
    /// The runtime failed; its end is being awaited.
    Failing,
    /// The runtime has ended and a restart is expected.
    Restarting,
    /// A close is in progress.
    Closing,
    /// The pod is done for good.
    Terminated,
}

/// The pod's status, answered to [`GetStatus`]; serializable for status
/// pages and readable back (durations as milliseconds, times as Unix
/// milliseconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodStatus {
    /// The pod's name.
    pub name: String,
    /// Its role.
    pub role: PodRole,
    /// Where it is.
    pub state: PodState,
    /// The current (or last) runtime generation.
    pub generation: u64,
    /// How many times the runtime has been restarted.
    pub restarts: u64,
    /// How long the current generation has been ready (in JSON,
    /// `uptime_ms`).
    #[serde(rename = "uptime_ms", with = "supervisor::millis::option")]
    pub uptime: Option<Duration>,
    /// When the current generation became ready, by the wall clock: `uptime`
    /// before the status was taken (in JSON, `since_unix_ms`).
    #[serde(rename = "since_unix_ms", with = "supervisor::millis::since_epoch")]
    pub since: Option<SystemTime>,
    /// The main process of a process runtime, from its spawn on (so also
    /// while it starts); `None` between a failure and the next spawn.
    pub pid: Option<u32>,
    /// The last failure, as text.
    pub last_failure: Option<String>,
    /// Why the pod terminated, when it did not end by a close (a give-up
    /// with the supervisor's reason, say).
    pub error: Option<String>,
}

/// How a [`Close`] went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloseReport {
    /// The runtime was not known to end gracefully: it was stopped by force
    /// after the timeout, or the close could not be carried out or confirmed
    /// ([`forced_by`](CloseReport::forced_by) says which).
    pub forced: bool,
    /// Even the forced stop did not end it: its thread is stuck in blocking
    /// code and was left behind.
    pub stuck: bool,
    /// How long the close took (in JSON, `took_ms`).
    #[serde(rename = "took_ms", with = "supervisor::millis")]
    pub took: Duration,
    /// Why the close was forced; `None` when it was graceful.
    pub forced_by: Option<ForcedBy>,
}

/// Why a close was not graceful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ForcedBy {
    /// Teardown (or the child's SIGTERM) did not end the runtime within the
    /// timeout.
    Timeout,
    /// The arbiter under the pod or its runtime was stopped (the actix
    /// `System` stopping, say): no graceful stop could run.
    ArbiterStopped,
    /// The pod went away before it answered, so nothing confirms a graceful
    /// end.
    ReplyLost,
}

impl CloseReport {
    /// Whether the runtime ended within the timeout.
    pub fn graceful(&self) -> bool {
        !self.forced
    }

    pub(crate) fn graceful_now() -> Self {
        CloseReport {
            forced: false,
            stuck: false,
            took: Duration::ZERO,
            forced_by: None,
        }
    }

    pub(crate) fn forced(by: ForcedBy) -> Self {
        CloseReport {
            forced: true,
            stuck: false,
            took: Duration::ZERO,
            forced_by: Some(by),
        }
    }

    pub(crate) fn reply_lost() -> Self {
        CloseReport::forced(ForcedBy::ReplyLost)
    }
}

/// Time for the next health check of `generation`. Sent by the pod's own
/// health ticker, which holds the pod weakly.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub(crate) struct HealthTick {
    pub(crate) generation: u64,
}

/// Time for a standalone pod's restart after `generation` failed. Sent by
/// the pod's restart timer, which holds the pod weakly.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub(crate) struct RestartDue {
    pub(crate) generation: u64,
}

/// Wakes the pod so that it polls what it spawned in `stopping`. Sent by the
/// pod to itself.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub(crate) struct Nudge;
