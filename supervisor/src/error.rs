use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a child failed, as reported by the child itself.
///
/// The supervisor knows nothing of runtimes, so causes cross the child
/// protocol as text. This type lets [`Error::ChildFailedToStart`] expose the
/// cause through [`std::error::Error::source`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Cause(pub String);

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Cause {}

/// Errors returned by the supervisor and by configuration validation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A child with this id is already registered.
    DuplicateChild {
        /// The id given twice.
        id: String,
    },
    /// No child with this id is registered.
    UnknownChild {
        /// The id asked for.
        id: String,
    },
    /// The supervisor is stopping its children (it was told to shut down or
    /// it gave up), so it takes no new work.
    ShuttingDown,
    /// The supervisor is idle: it waits for its parent to start it.
    NotStarted,
    /// A child exited before it reported ready; it was not kept.
    ChildFailedToStart {
        /// The child's id.
        id: String,
        /// What the child reported (its source).
        cause: Cause,
    },
    /// The child was removed before the request about it was done (an
    /// [`AddChild`](crate::AddChild) or [`Restart`](crate::Restart) whose
    /// child was removed before it was ready).
    ChildRemoved {
        /// The child's id.
        id: String,
    },
    /// A configuration value is out of range.
    InvalidConfig {
        /// The offending field, e.g. `backoff.multiplier`.
        field: &'static str,
        /// What the value must satisfy.
        reason: &'static str,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::DuplicateChild { id } => write!(f, "duplicate child id `{id}`"),
            Error::UnknownChild { id } => write!(f, "unknown child `{id}`"),
            Error::ShuttingDown => f.write_str("supervisor is shutting down"),
            Error::NotStarted => f.write_str("supervisor has not started its children"),
            Error::ChildFailedToStart { id, .. } => write!(f, "child `{id}` failed to start"),
            Error::ChildRemoved { id } => write!(f, "child `{id}` was removed"),
            Error::InvalidConfig { field, reason } => write!(f, "invalid {field}: {reason}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::ChildFailedToStart { cause, .. } => Some(cause),
            _ => None,
        }
    }
}
