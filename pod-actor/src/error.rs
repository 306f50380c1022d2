use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use runtime_actor::{FailureCause, RuntimeError};

use crate::typed::{CodecError, Direction};

/// Why a pod did not start, or refused what was asked of it.
///
/// The first three variants are Jina's outcomes of `wait_start_success`
/// (`RuntimeFailToStart`, `RuntimeRunForeverEarlyError`, `TimeoutError`), now
/// carrying their cause.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum PodError {
    /// The runtime failed before it was ever ready, and no restart is coming.
    FailedToStart {
        /// Why it failed.
        cause: FailureCause,
    },
    /// The runtime was ready, then ended, and no restart is coming.
    ExitedEarly {
        /// Why it ended; `None` when it finished normally.
        cause: Option<FailureCause>,
    },
    /// The runtime was not ready within `timeout_ready`; the pod was closed
    /// before this error was returned.
    Timeout {
        /// The time allowed, extensions included.
        after: Duration,
        /// What the runtime was waiting for (a process runtime names its
        /// probe, the tries and the last error).
        waiting_for: Option<String>,
    },
    /// The pod was closed before it was ready.
    Closed,
    /// The pod has not been started.
    NotStarted,
    /// `Start` was sent to a pod that had already been started.
    AlreadyStarted,
    /// The supervisor gave up (more restarts than its intensity allows) and
    /// stopped the pod; no restart is coming.
    GaveUp {
        /// The supervisor's reason, e.g. "more than 1 restarts within 60s".
        reason: String,
        /// The pod's own last failure, if it failed (its source).
        cause: Option<FailureCause>,
    },
    /// The supervisor refused the pod, could not be made, or shut down.
    Supervisor(supervisor::Error),
    /// The pod was removed from its supervisor by the supervisor's owner.
    Removed,
    /// The arbiter under the pod or its runtime was stopped (the actix
    /// `System` stopping, say): the pod ended without a graceful stop, and
    /// nothing was restarted.
    ArbiterStopped,
    /// The config names an in-process runtime that is not registered.
    UnknownRuntime {
        /// The name in `runtime.name`.
        name: String,
    },
    /// The config's `runtime.kind` is not the kind this constructor builds.
    WrongRuntimeKind {
        /// The kind the constructor builds.
        expected: &'static str,
    },
}

impl fmt::Display for PodError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PodError::FailedToStart { cause } => write!(f, "runtime failed to start: {cause}"),
            PodError::ExitedEarly { cause: Some(cause) } => {
                write!(f, "runtime ended after it was ready: {cause}")
            }
            PodError::ExitedEarly { cause: None } => {
                f.write_str("runtime ended after it was ready")
            }
            PodError::Timeout {
                after,
                waiting_for: Some(what),
            } => write!(f, "runtime not ready after {after:?}; waiting for {what}"),
            PodError::Timeout {
                after,
                waiting_for: None,
            } => write!(f, "runtime not ready after {after:?}"),
            PodError::Closed => f.write_str("pod was closed"),
            PodError::NotStarted => f.write_str("pod has not been started"),
            PodError::AlreadyStarted => f.write_str("pod was already started"),
            PodError::GaveUp { reason, .. } => write!(f, "supervisor gave up: {reason}"),
            PodError::Supervisor(_) => f.write_str("supervisor refused or stopped the pod"),
            PodError::Removed => f.write_str("pod was removed from its supervisor"),
            PodError::ArbiterStopped => f.write_str("arbiter stopped under the pod"),
            PodError::WrongRuntimeKind { expected } => {
                write!(f, "this pod needs `runtime.kind = \"{expected}\"`")
            }
            PodError::UnknownRuntime { name } => {
                write!(
                    f,
                    "no in-process runtime registered as `{name}` (runtime.name)"
                )
            }
        }
    }
}

impl StdError for PodError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            PodError::FailedToStart { cause } => Some(cause),
            PodError::ExitedEarly { cause } | PodError::GaveUp { cause, .. } => {
                cause.as_ref().map(|c| c as &(dyn StdError + 'static))
            }
            PodError::Supervisor(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a [`Call`](crate::Call) got no answer from the runtime.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CallError {
    /// The pod is not ready: not started yet, starting, or restarting.
    NotReady,
    /// The pod is closing or closed.
    Closed,
    /// The runtime ended while the call was queued or in flight.
    RuntimeExited {
        /// Why it ended, when it failed.
        cause: Option<FailureCause>,
    },
    /// The runtime answered with an error.
    Runtime(RuntimeError),
    /// The runtime did not answer in time (a process pod's
    /// `runtime.channel.timeout`); it may still have done the work.
    TimedOut {
        /// The time allowed.
        after: Duration,
    },
    /// The runtime had as many requests in flight as it takes; this one was
    /// not sent, and may be sent again.
    Busy {
        /// How many requests it takes at once.
        limit: usize,
    },
    /// The request is larger than the runtime takes (a process pod's
    /// `runtime.channel.max_frame`); it was not sent.
    TooLarge {
        /// Its size, in bytes.
        size: usize,
        /// The largest the runtime takes.
        limit: usize,
    },
    /// The child's answer to a typed request could not be decoded
    /// ([`typed`](crate::typed)); or, converted with `?` from
    /// `TypedCall::new`, the request could not be encoded and was not sent.
    Codec(CodecError),
    /// Code of the request's own types panicked while a deployment routed
    /// it: the request's `Clone` (no replica got it from that try on) or a
    /// typed answer's `Deserialize`. The deployment serves on.
    RequestPanicked {
        /// The panic's message.
        message: String,
    },
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::NotReady => f.write_str("pod is not ready"),
            CallError::Closed => f.write_str("pod is closed"),
            CallError::RuntimeExited { cause: Some(cause) } => {
                write!(f, "runtime exited before answering ({cause})")
            }
            CallError::RuntimeExited { cause: None } => {
                f.write_str("runtime exited before answering")
            }
            CallError::Runtime(_) => f.write_str("runtime answered with an error"),
            CallError::TimedOut { after } => write!(f, "runtime did not answer within {after:?}"),
            CallError::Busy { limit } => {
                write!(f, "runtime is busy ({limit} requests in flight)")
            }
            CallError::TooLarge { size, limit } => {
                write!(
                    f,
                    "request of {size} bytes not sent: the runtime takes at most {limit}"
                )
            }
            CallError::Codec(e) => match e.direction() {
                Direction::Encode => f.write_str("request not sent: it cannot be encoded"),
                Direction::Decode => f.write_str("the child's answer cannot be decoded"),
            },
            CallError::RequestPanicked { message } => {
                write!(
                    f,
                    "the request's own code panicked while it was routed: {message}"
                )
            }
        }
    }
}

impl StdError for CallError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            CallError::Runtime(e) => Some(e),
            CallError::RuntimeExited { cause: Some(cause) } => Some(cause),
            CallError::Codec(e) => Some(e),
            _ => None,
        }
    }
}
