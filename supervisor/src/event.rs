use std::time::Duration;

use actix::Message;
use serde::{Deserialize, Serialize};

/// How a child's stop ended, as seen by the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum StopOutcome {
    /// The child replied that it stopped when asked.
    Gracefully,
    /// The child replied that it had to be forced.
    Forced,
    /// The child did not reply within its shutdown timeout.
    TimedOut,
    /// The child's mailbox was closed.
    Unreachable,
    /// The child was not running, so nothing was sent.
    NotRunning,
}

/// What happened in a supervisor, sent to every subscriber.
///
/// Sent by the supervisor to the recipients given in
/// [`Subscribe`](crate::Subscribe), as it happens.
#[derive(Debug, Clone, PartialEq, Message, Serialize, Deserialize)]
#[rtype(result = "()")]
#[non_exhaustive]
pub enum SupervisorEvent {
    /// A child became ready for the first time.
    ChildStarted {
        /// The child.
        id: String,
    },
    /// A child failed.
    ChildFailed {
        /// The child.
        id: String,
        /// What it reported.
        cause: String,
    },
    /// A child exited normally.
    ChildExited {
        /// The child.
        id: String,
    },
    /// A child will be restarted after `delay`.
    ChildRestarting {
        /// The child.
        id: String,
        /// Restart attempt since the last backoff reset, from 1.
        attempt: u32,
        /// The backoff delay, jitter included.
        delay: Duration,
    },
    /// A restarted child is ready again.
    ChildRestarted {
        /// The child.
        id: String,
        /// The attempt that succeeded.
        attempt: u32,
        /// From the failure report (or restart request) to readiness,
        /// backoff included.
        latency: Duration,
    },
    /// The supervisor stopped a child.
    ChildStopped {
        /// The child.
        id: String,
        /// How the stop ended.
        outcome: StopOutcome,
    },
    /// The supervisor gave up: it stopped all children in reverse start order
    /// and reported failure to its parent, if any.
    GaveUp {
        /// Restarts counted in the window when it gave up.
        restarts: u32,
        /// The intensity window.
        within: Duration,
        /// Why, as also reported to the parent.
        reason: String,
    },
}

impl SupervisorEvent {
    /// The child the event is about; `None` for supervisor-wide events.
    #[must_use]
    pub fn child(&self) -> Option<&str> {
        match self {
            SupervisorEvent::ChildStarted { id }
            | SupervisorEvent::ChildFailed { id, .. }
            | SupervisorEvent::ChildExited { id }
            | SupervisorEvent::ChildRestarting { id, .. }
            | SupervisorEvent::ChildRestarted { id, .. }
            | SupervisorEvent::ChildStopped { id, .. } => Some(id),
            SupervisorEvent::GaveUp { .. } => None,
        }
    }
}
