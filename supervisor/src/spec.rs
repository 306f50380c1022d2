use std::fmt;
use std::time::Duration;

use actix::dev::ToEnvelope;
use actix::{Actor, Addr, Handler, Recipient};

use crate::{
    ChildExit, ChildExited, ChildReady, RestartChild, RestartPolicy, StartChild, StopChild,
};

/// How to supervise one child: its id, restart type, shutdown timeout and the
/// recipients of the child protocol.
///
/// Defaults follow OTP workers: [`RestartPolicy::Permanent`] and a 5 s
/// shutdown timeout. A child that is itself a [`Supervisor`](crate::Supervisor)
/// should get a shutdown timeout at least the sum of its own children's.
#[derive(Clone)]
pub struct ChildSpec {
    pub(crate) id: String,
    pub(crate) restart: RestartPolicy,
    pub(crate) shutdown: Duration,
    pub(crate) start: Recipient<StartChild>,
    pub(crate) restart_to: Recipient<RestartChild>,
    pub(crate) stop: Recipient<StopChild>,
    pub(crate) restart_on_start_failure: bool,
}

impl ChildSpec {
    /// A child served by one actor that handles the whole child protocol.
    #[must_use]
    pub fn new<A>(id: impl Into<String>, addr: &Addr<A>) -> Self
    where
        A: Actor + Handler<StartChild> + Handler<RestartChild> + Handler<StopChild>,
        A::Context:
            ToEnvelope<A, StartChild> + ToEnvelope<A, RestartChild> + ToEnvelope<A, StopChild>,
    {
        ChildSpec::from_recipients(
            id,
            addr.clone().recipient(),
            addr.clone().recipient(),
            addr.clone().recipient(),
        )
    }

    /// A child whose protocol messages go to separate recipients.
    #[must_use]
    pub fn from_recipients(
        id: impl Into<String>,
        start: Recipient<StartChild>,
        restart: Recipient<RestartChild>,
        stop: Recipient<StopChild>,
    ) -> Self {
        ChildSpec {
            id: id.into(),
            restart: RestartPolicy::Permanent,
            shutdown: Duration::from_secs(5),
            start,
            restart_to: restart,
            stop,
            restart_on_start_failure: false,
        }
    }

    /// Sets the restart type.
    #[must_use]
    pub fn with_restart(mut self, restart: RestartPolicy) -> Self {
        self.restart = restart;
        self
    }

    /// Sets how long the child has to answer [`StopChild`].
    #[must_use]
    pub fn with_shutdown(mut self, shutdown: Duration) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Whether a failure before the child's first ready is restarted like
    /// any other failure (Jina's `restart.on_start_failure`).
    ///
    /// By default (`false`, OTP's rule) the supervisor waits for the child to
    /// be ready before it moves on, and a failure before that fails the start:
    /// [`AddChild`](crate::AddChild) answers
    /// [`Error::ChildFailedToStart`](crate::Error::ChildFailedToStart) and the
    /// child is forgotten. With `true` the supervisor does not wait: it moves
    /// on once the start is sent, and an early failure is restarted per the
    /// child's policy, paced by the backoff and counted against the intensity.
    #[must_use]
    pub fn with_restart_on_start_failure(mut self, restart: bool) -> Self {
        self.restart_on_start_failure = restart;
        self
    }

    /// The child's id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The child's restart type.
    #[must_use]
    pub fn restart(&self) -> RestartPolicy {
        self.restart
    }

    /// The child's shutdown timeout.
    #[must_use]
    pub fn shutdown(&self) -> Duration {
        self.shutdown
    }
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("id", &self.id)
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .field("restart_on_start_failure", &self.restart_on_start_failure)
            .finish_non_exhaustive()
    }
}

/// The child's way back to its supervisor, handed over in [`StartChild`] and
/// [`RestartChild`].
///
/// It carries the generation of this start, so reports from an earlier
/// incarnation (a late exit after a restart) are ignored by the supervisor.
#[derive(Clone)]
pub struct ChildReporter {
    pub(crate) id: String,
    pub(crate) generation: u64,
    pub(crate) ready: Recipient<ChildReady>,
    pub(crate) exited: Recipient<ChildExited>,
}

impl ChildReporter {
    /// A reporter that sends to the given recipients; the supervisor builds
    /// its own, this is for tests and adapters.
    #[must_use]
    pub fn new(
        id: impl Into<String>,
        generation: u64,
        ready: Recipient<ChildReady>,
        exited: Recipient<ChildExited>,
    ) -> Self {
        ChildReporter {
            id: id.into(),
            generation,
            ready,
            exited,
        }
    }

    /// The child's id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Which start this reporter belongs to.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Reports that the child is ready.
    pub fn ready(&self) {
        self.ready.do_send(ChildReady {
            id: self.id.clone(),
            generation: self.generation,
        });
    }

    /// Reports that the child exited.
    pub fn exited(&self, exit: ChildExit) {
        self.exited.do_send(ChildExited {
            id: self.id.clone(),
            generation: self.generation,
            exit,
        });
    }

    /// Reports that the child failed with `cause`.
    pub fn failed(&self, cause: impl Into<String>) {
        self.exited(ChildExit::Failed {
            cause: cause.into(),
        });
    }
}

impl fmt::Debug for ChildReporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildReporter")
            .field("id", &self.id)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}
