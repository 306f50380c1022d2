use std::fmt;
use std::time::Duration;

use actix::{Message, MessageResponse, Recipient};
use serde::{Deserialize, Serialize};

use crate::{
    ChildReporter, ChildSpec, ChildStatus, Error, Registration, ShutdownReport, StopOutcome,
    SupervisorEvent, SupervisorStatus,
};

// ===== child protocol: supervisor → child =====

/// Start for the first time.
///
/// Sent by the supervisor to a child when the child is first started: in
/// start order when the supervisor starts, or when the child is added. The
/// child answers later through `reporter`: [`ChildReporter::ready`] once it
/// serves, [`ChildReporter::exited`] if it ends.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StartChild {
    /// Where to report readiness and exit.
    pub reporter: ChildReporter,
}

/// Start again.
///
/// Sent by the supervisor to a child it restarts: after the child's own exit
/// (once the backoff delay has passed), or after the strategy stopped it
/// because a sibling failed. The child reports through the new `reporter`;
/// reports sent through an older one are ignored.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RestartChild {
    /// Where to report readiness and exit for this start.
    pub reporter: ChildReporter,
    /// Restart attempt of the failed child since its last backoff reset,
    /// from 1; siblings restarted in the same cycle get the same number.
    pub attempt: u32,
}

/// Stop, within `timeout`.
///
/// Sent by the supervisor when it stops a child; `reason` says whether a
/// [`RestartChild`] follows. The child replies once it has stopped. A child
/// that does not reply within `timeout` is reported as
/// [`StopOutcome::TimedOut`] and the supervisor moves on, so any forced kill
/// must fit inside `timeout`.
#[derive(Debug, Message)]
#[rtype(result = "ChildStopped")]
pub struct StopChild {
    /// The child's id.
    pub id: String,
    /// How long the supervisor waits for the reply.
    pub timeout: Duration,
    /// Why it is stopped, and whether a restart follows.
    pub reason: StopReason,
}

/// Why the supervisor stops a child.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum StopReason {
    /// To start it again: a sibling's failure under one-for-all or
    /// rest-for-one, or an owner's [`Restart`]. A [`RestartChild`] follows,
    /// unless a [`ChildVerdict`] cancels it (the supervisor gave up or shut
    /// down in between).
    Restart,
    /// The supervisor is shutting down (its owner's [`Shutdown`], or its
    /// parent stopping it). No restart follows from this supervisor.
    Shutdown,
    /// The supervisor gave up: more restarts than its intensity allows.
    GaveUp {
        /// Why, as in [`SupervisorEvent::GaveUp`].
        reason: String,
    },
    /// The child was removed ([`RemoveChild`]) and is forgotten once stopped.
    Removed,
}

impl StopReason {
    /// Whether a [`RestartChild`] is expected after the stop.
    #[must_use]
    pub fn restarts(&self) -> bool {
        matches!(self, StopReason::Restart)
    }
}

/// The child's reply to [`StopChild`], sent once it has stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, MessageResponse, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ChildStopped {
    /// It stopped when asked.
    Gracefully,
    /// It had to be forced (for a process, killed after its grace period).
    Forced,
}

/// Where a child that is not running stands: the supervisor's answer to every
/// [`ChildExited`], and the cancellation of a restart it had announced.
///
/// Sent by the supervisor to the child, for the generation the exit was
/// about:
///
/// - after every [`ChildExited`] of the child's current generation, with
///   [`Verdict::Restart`] (a [`RestartChild`] follows after about `delay`) or
///   [`Verdict::NoRestart`] with the reason;
/// - when a restart announced by a verdict or by a [`StopReason::Restart`]
///   will not come after all (the supervisor gave up, shut down, or the child
///   was removed), with [`Verdict::NoRestart`];
/// - when [`AddChild`] is refused, with [`NoRestart::Refused`] and generation
///   0, so that a child that registered itself with `do_send` learns it too.
///
/// The policy lives in the supervisor only: a child acts on its verdicts
/// and does not decide for itself whether it will be restarted.
#[derive(Debug, Clone, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub struct ChildVerdict {
    /// The child's id.
    pub id: String,
    /// The start the verdict is about.
    pub generation: u64,
    /// The decision.
    pub verdict: Verdict,
}

/// The supervisor's decision about a child that is not running.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// A [`RestartChild`] follows once the strategy has stopped the siblings
    /// it takes down and about `delay` has passed.
    Restart {
        /// Restart attempt since the last backoff reset, from 1.
        attempt: u32,
        /// The backoff delay, jitter included.
        delay: Duration,
    },
    /// No [`RestartChild`] will come from this supervisor.
    NoRestart(NoRestart),
}

/// Why a child is not restarted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NoRestart {
    /// Its restart type is [`RestartPolicy::Temporary`](crate::RestartPolicy::Temporary);
    /// it is forgotten.
    Temporary,
    /// It is [`RestartPolicy::Transient`](crate::RestartPolicy::Transient)
    /// and exited normally.
    NormalExit,
    /// It failed before it was ready, in a start the supervisor waited for
    /// (an [`AddChild`], the initial start, or a [`Restart`]); see
    /// [`ChildSpec::with_restart_on_start_failure`](crate::ChildSpec::with_restart_on_start_failure).
    FailedToStart,
    /// The supervisor gave up: more restarts than its intensity allows.
    GaveUp {
        /// Why, as in [`SupervisorEvent::GaveUp`].
        reason: String,
    },
    /// The supervisor is shutting down.
    ShuttingDown,
    /// The child was removed.
    Removed,
    /// [`AddChild`] was refused: the child was never registered.
    Refused(Error),
}

impl fmt::Display for NoRestart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoRestart::Temporary => f.write_str("temporary children are not restarted"),
            NoRestart::NormalExit => f.write_str("transient child exited normally"),
            NoRestart::FailedToStart => f.write_str("failed before it was ready"),
            NoRestart::GaveUp { reason } => write!(f, "supervisor gave up: {reason}"),
            NoRestart::ShuttingDown => f.write_str("supervisor is shutting down"),
            NoRestart::Removed => f.write_str("removed from its supervisor"),
            NoRestart::Refused(e) => write!(f, "not registered: {e}"),
        }
    }
}

// ===== child protocol: child → supervisor =====

/// How a child ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChildExit {
    /// It finished its work; transient children are not restarted.
    Normal,
    /// It failed.
    Failed {
        /// What went wrong, as text: the supervisor knows no runtime types.
        cause: String,
    },
}

/// The child is ready.
///
/// Sent by a child to its supervisor (through [`ChildReporter::ready`]) once
/// per start, when it serves.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct ChildReady {
    /// The child's id.
    pub id: String,
    /// The start this report belongs to.
    pub generation: u64,
}

/// The child exited.
///
/// Sent by a child to its supervisor (through [`ChildReporter::exited`]) when
/// it ends on its own, before or after it was ready. Exits while the
/// supervisor is stopping the child are expected and ignored.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct ChildExited {
    /// The child's id.
    pub id: String,
    /// The start this report belongs to.
    pub generation: u64,
    /// How it ended.
    pub exit: ChildExit,
}

/// The child left: it closes itself and is to be forgotten.
///
/// Sent by a child that ends on its own owner's request (a pod being
/// closed). The supervisor forgets it at once and sends it nothing more: no
/// [`StopChild`] (the child stops itself), no restart, no verdict. Like
/// [`RemoveChild`], it is never an exit: nothing is counted against the
/// intensity and no sibling is touched; a job waiting for the child moves on.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct ChildLeft {
    /// The child's id.
    pub id: String,
    /// The registration it leaves ([`ChildSpec::registration`]); a child
    /// registered under the same id since then is not touched.
    pub registration: Registration,
}

// ===== control: anyone → supervisor =====

/// Add a child at run time and start it.
///
/// Sent by the owner of a supervisor. Replies once the child is ready, or
/// with [`Error::ChildFailedToStart`] (the child is then forgotten),
/// [`Error::DuplicateChild`] or [`Error::ShuttingDown`]. An idle supervisor
/// (waiting for its parent) registers the child and replies at once; the
/// child starts with the others. A supervisor that starts its children
/// together ([`StartOrder::Concurrent`](crate::StartOrder::Concurrent))
/// replies as soon as the child is told to start; a failed first start then
/// reaches the child as its verdict
/// ([`NoRestart::FailedToStart`](crate::NoRestart::FailedToStart)).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), Error>")]
pub struct AddChild(pub ChildSpec);

/// Stop a child and forget it.
///
/// Sent by the owner of a supervisor. Replies with how the child stopped, or
/// [`Error::UnknownChild`] or [`Error::ShuttingDown`].
#[derive(Debug, Message)]
#[rtype(result = "Result<StopOutcome, Error>")]
pub struct RemoveChild {
    /// The child to remove.
    pub id: String,
}

/// Restart one child now: stop it if it runs, then start it again.
///
/// Sent by the owner of a supervisor. No backoff, no strategy, not counted
/// against the intensity. Replies once the child is ready, or with
/// [`Error::UnknownChild`], [`Error::ShuttingDown`], [`Error::NotStarted`] or
/// [`Error::ChildFailedToStart`].
#[derive(Debug, Message)]
#[rtype(result = "Result<(), Error>")]
pub struct Restart {
    /// The child to restart.
    pub id: String,
}

/// Receive every [`SupervisorEvent`] from now on.
///
/// Sent by anyone. Subscribers whose mailbox is closed are dropped silently.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Subscribe(pub Recipient<SupervisorEvent>);

/// Receive the [`SupervisorEvent`]s about one child, and the
/// supervisor-wide ones ([`SupervisorEvent::GaveUp`]), from now on.
///
/// Sent by anyone who wants to follow one child. Unlike [`Subscribe`], the
/// cost of an event does not grow with the number of children followed, so
/// thousands can be. Only a registered child can be followed (a subscription
/// for an unknown id is ignored), and the subscription ends when the child
/// is forgotten.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SubscribeChild {
    /// The child's id.
    pub id: String,
    /// Who receives the events.
    pub subscriber: Recipient<SupervisorEvent>,
}

/// Ask for every child's status, in start order (OTP's `which_children`).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Vec<ChildStatus>")]
pub struct WhichChildren;

/// Ask for the supervisor's status and its children's.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "SupervisorStatus")]
pub struct GetStatus;

/// Stop every child in reverse start order, each within its shutdown
/// timeout, then stop the supervisor actor.
///
/// Sent by the owner of a top-level supervisor. Replies once every child has
/// stopped or timed out.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "ShutdownReport")]
pub struct Shutdown;
