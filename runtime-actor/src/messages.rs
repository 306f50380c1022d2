use std::fmt;
use std::time::Duration;

use actix::Message;

use crate::error::{FailureCause, RequestError};
use crate::reply::Reply;
use crate::runtime::Runtime;

/// The lifecycle of one runtime generation, sent to the watcher given to
/// [`RuntimeActor::spawn`](crate::RuntimeActor::spawn).
///
/// For each generation the watcher receives, in this order: any number of
/// `Progressed` and `Process`; at most one `Ready`; at most one `Failed`, the first failure,
/// as soon as it is known; and exactly one `Exited`, last, once the runtime's
/// actor is gone and (for a dedicated placement) its arbiter thread joined.
/// A watcher that restarts runtimes ignores events of older generations.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
#[non_exhaustive]
pub enum RuntimeEvent {
    /// Setup reported progress and extended the start deadline.
    Progressed {
        /// The generation that reported.
        generation: u64,
        /// What the runtime said.
        note: String,
        /// How far from the report the deadline now reaches, at least.
        extend: Duration,
    },
    /// The runtime's main process is now `pid`: sent when a child process
    /// is spawned, and when it hands over to another (sd_notify's
    /// `MAINPID=`).
    Process {
        /// The generation it belongs to.
        generation: u64,
        /// The process.
        pid: u32,
    },
    /// Setup succeeded; requests are now handled.
    Ready {
        /// The generation that is ready.
        generation: u64,
        /// How long building and setting up the runtime took.
        setup: Duration,
        /// The child process, for a runtime that runs one.
        pid: Option<u32>,
    },
    /// The runtime failed and is being stopped.
    Failed {
        /// The generation that failed.
        generation: u64,
        /// Why.
        cause: FailureCause,
    },
    /// The runtime's actor has ended.
    Exited {
        /// The generation that ended.
        generation: u64,
        /// The failure that ended it; `None` when it stopped on request.
        cause: Option<FailureCause>,
    },
}

impl RuntimeEvent {
    /// The generation the event is about.
    pub fn generation(&self) -> u64 {
        match self {
            RuntimeEvent::Progressed { generation, .. }
            | RuntimeEvent::Process { generation, .. }
            | RuntimeEvent::Ready { generation, .. }
            | RuntimeEvent::Failed { generation, .. }
            | RuntimeEvent::Exited { generation, .. } => *generation,
        }
    }
}

/// A request for the runtime, answered by [`Runtime::handle`].
///
/// Sent by the runtime's owner, usually through
/// [`RuntimeHandle::call`](crate::RuntimeHandle::call). The answer is
/// [`RequestError::NotReady`] before the runtime is ready and
/// [`RequestError::Stopping`] once a stop was asked for.
pub struct Request<R: Runtime>(pub R::Request);

impl<R: Runtime> Message for Request<R> {
    type Result = Result<R::Response, RequestError>;
}

impl<R: Runtime> fmt::Debug for Request<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Request").finish_non_exhaustive()
    }
}

/// Asks the runtime for a liveness check, answered by [`Runtime::health`].
///
/// Sent by the runtime's owner, usually through
/// [`RuntimeHandle::check_health`](crate::RuntimeHandle::check_health).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<(), RequestError>")]
pub struct CheckHealth;

/// Asks for a graceful stop: queued requests are answered, then `teardown`
/// runs. During setup, setup is abandoned instead. Sent by
/// [`RuntimeHandle::stop`](crate::RuntimeHandle::stop).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub(crate) struct StopRuntime;

/// Stops the actor at once, dropping whatever user code is doing. Sent when a
/// stop or start deadline passes.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub(crate) struct KillRuntime {
    pub(crate) cause: Option<FailureCause>,
}

/// A request with its way back, queued with `do_send` so that it keeps its
/// place before a later [`StopRuntime`]. Sent by
/// [`RuntimeHandle::call`](crate::RuntimeHandle::call) and
/// [`RuntimeHandle::call_with`](crate::RuntimeHandle::call_with).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Ask<R: Runtime> {
    pub(crate) req: R::Request,
    pub(crate) reply: Reply<R::Response>,
}

/// A health check with its way back, queued like [`Ask`].
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct AskHealth {
    pub(crate) reply: Reply<()>,
}
