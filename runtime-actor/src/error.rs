use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// An error returned by user code behind [`Runtime`](crate::Runtime).
///
/// A plain error answers the one request (or health check) that produced it;
/// a [fatal](RuntimeError::fatal) error also fails the runtime, which is then
/// stopped and reported to its watcher with [`FailureCause::Error`].
#[derive(Clone)]
pub struct RuntimeError {
    message: String,
    fatal: bool,
    source: Option<Arc<dyn StdError + Send + Sync>>,
}

impl RuntimeError {
    /// An error that answers one request and leaves the runtime serving.
    pub fn new(message: impl Into<String>) -> Self {
        RuntimeError {
            message: message.into(),
            fatal: false,
            source: None,
        }
    }

    /// An error after which the runtime cannot go on: it fails and is stopped.
    ///
    /// Errors returned by `setup` are always fatal.
    pub fn fatal(message: impl Into<String>) -> Self {
        RuntimeError {
            fatal: true,
            ..RuntimeError::new(message)
        }
    }

    /// Attaches the underlying error, reported through [`StdError::source`].
    #[must_use]
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// The message given when the error was made.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether this error fails the runtime.
    pub fn is_fatal(&self) -> bool {
        self.fatal
    }
}

impl fmt::Debug for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeError")
            .field("message", &self.message)
            .field("fatal", &self.fatal)
            .field("source", &self.source.as_ref().map(|s| s.to_string()))
            .finish()
    }
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for RuntimeError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}

/// Where a panic happened, as reported by the panic hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanicLocation {
    /// The source file.
    pub file: String,
    /// The line, from 1.
    pub line: u32,
    /// The column, from 1.
    pub column: u32,
}

impl fmt::Display for PanicLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// Why a runtime failed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum FailureCause {
    /// User code panicked; the panic was caught at the runtime's boundary.
    Panicked {
        /// The panic message (`"<non-string panic payload>"` when it was not a string).
        message: String,
        /// Where it panicked, when the crate's panic hook saw it.
        location: Option<PanicLocation>,
    },
    /// `setup` returned an error, or a request, health check or spawned task
    /// reported a [fatal](RuntimeError::fatal) one.
    Error(RuntimeError),
    /// A child process exited; the process runtime reports this.
    Exited {
        /// The exit code, when it exited by itself.
        code: Option<i32>,
        /// The signal that ended it, when one did.
        signal: Option<i32>,
        /// The last lines it wrote to stdout and stderr, oldest first.
        output: Vec<String>,
    },
    /// The runtime failed its liveness checks.
    Unhealthy {
        /// What the last failed check said.
        reason: String,
    },
    /// The runtime was not ready before its start deadline.
    TimedOut {
        /// How long it had, extensions included.
        after: Duration,
        /// What it was waiting for when the time ran out, as the runtime
        /// last described it (the process runtime names its probe, the tries
        /// and the last error).
        waiting_for: Option<String>,
    },
    /// The runtime's actor ended although no stop was asked for (its arbiter
    /// was stopped under it).
    Lost,
}

impl fmt::Display for FailureCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureCause::Panicked {
                message,
                location: Some(location),
            } => write!(f, "panicked at {location}: {message}"),
            FailureCause::Panicked {
                message,
                location: None,
            } => write!(f, "panicked: {message}"),
            FailureCause::Error(e) => write!(f, "error: {e}"),
            FailureCause::Exited {
                code,
                signal,
                output,
            } => {
                match (code, signal) {
                    (_, Some(signal)) => write!(f, "killed by signal {signal}")?,
                    (Some(code), None) => write!(f, "exited with code {code}")?,
                    (None, None) => f.write_str("exited")?,
                }
                write_output(f, output)
            }
            FailureCause::Unhealthy { reason } => write!(f, "unhealthy: {reason}"),
            FailureCause::TimedOut {
                after,
                waiting_for: Some(what),
            } => write!(f, "not ready after {after:?}; waiting for {what}"),
            FailureCause::TimedOut {
                after,
                waiting_for: None,
            } => write!(f, "not ready after {after:?}"),
            FailureCause::Lost => f.write_str("stopped without a stop request"),
        }
    }
}

/// The last lines of a child's output, one per line under the cause.
fn write_output(f: &mut fmt::Formatter<'_>, output: &[String]) -> fmt::Result {
    match output {
        [] => Ok(()),
        [line] => write!(f, "; last output: {line}"),
        lines => {
            write!(f, "; last {} lines of output:", lines.len())?;
            lines.iter().try_for_each(|line| write!(f, "\n    {line}"))
        }
    }
}

impl StdError for FailureCause {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            FailureCause::Error(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a request or health check sent to a runtime got no answer from it.
///
/// This is the crate's error type: every request is answered, with the
/// runtime's response or with one of these.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum RequestError {
    /// The runtime has not reported ready yet.
    NotReady,
    /// The runtime is being stopped and takes no new work.
    Stopping,
    /// The runtime ended before it answered.
    Exited {
        /// Why it ended, when it failed.
        cause: Option<FailureCause>,
    },
    /// The runtime answered with an error.
    Runtime(RuntimeError),
    /// The runtime did not answer within the time the caller allowed.
    TimedOut {
        /// The time allowed.
        after: Duration,
    },
    /// The runtime already had as many requests in flight as it takes, so
    /// this one was not sent: it was not seen, and may be sent again (to
    /// another replica, or later).
    Busy {
        /// How many requests it takes at once.
        limit: usize,
    },
    /// The request is larger than the runtime takes (a process pod's
    /// `runtime.channel.max_frame`), so it was not sent.
    TooLarge {
        /// Its size, in bytes.
        size: usize,
        /// The largest the runtime takes.
        limit: usize,
    },
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::NotReady => f.write_str("runtime is not ready"),
            RequestError::Stopping => f.write_str("runtime is stopping"),
            RequestError::Exited { cause: Some(cause) } => {
                write!(f, "runtime exited before answering ({cause})")
            }
            RequestError::Exited { cause: None } => f.write_str("runtime exited before answering"),
            RequestError::Runtime(_) => f.write_str("runtime answered with an error"),
            RequestError::TimedOut { after } => {
                write!(f, "runtime did not answer within {after:?}")
            }
            RequestError::Busy { limit } => {
                write!(f, "runtime is busy ({limit} requests in flight)")
            }
            RequestError::TooLarge { size, limit } => {
                write!(
                    f,
                    "request of {size} bytes not sent: the runtime takes at most {limit}"
                )
            }
        }
    }
}

impl StdError for RequestError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            RequestError::Runtime(e) => Some(e),
            RequestError::Exited { cause: Some(cause) } => Some(cause),
            _ => None,
        }
    }
}
