use std::fmt;
use std::time::Duration;

use actix::dev::ToEnvelope;
use actix::{Actor, Addr, Handler, Message, Recipient, WeakRecipient};

use crate::{
    ChildExit, ChildExited, ChildReady, ChildVerdict, RestartChild, RestartPolicy, StartChild,
    StopChild,
};

/// How to supervise one child: its id, restart type, shutdown timeout and the
/// recipients of the child protocol.
///
/// Defaults follow OTP workers: [`RestartPolicy::Permanent`] and a 5 s
/// shutdown timeout. A child that is itself a [`Supervisor`](crate::Supervisor)
/// should get a shutdown timeout at least the sum of its own children's.
///
/// # Ownership
///
/// [`ChildSpec::new`] keeps the child actor alive for as long as it is
/// registered, as an owner would. [`ChildSpec::weak`] does not: use it for a
/// child that holds its supervisor's address itself (a pod that made its own
/// supervisor), so that the two do not keep each other alive in a cycle. A
/// weakly held child whose actor is gone is reported unreachable.
#[derive(Clone)]
pub struct ChildSpec {
    pub(crate) id: String,
    pub(crate) restart: RestartPolicy,
    pub(crate) shutdown: Duration,
    pub(crate) links: Links,
    pub(crate) restart_on_start_failure: bool,
}

/// The child-protocol recipients of one child, held strongly or weakly.
#[derive(Clone)]
pub(crate) struct Links {
    pub(crate) start: Link<StartChild>,
    pub(crate) restart: Link<RestartChild>,
    pub(crate) stop: Link<StopChild>,
    pub(crate) verdict: Link<ChildVerdict>,
}

pub(crate) enum Link<M: Message + Send>
where
    M::Result: Send,
{
    Strong(Recipient<M>),
    Weak(WeakRecipient<M>),
}

impl<M: Message + Send> Clone for Link<M>
where
    M::Result: Send,
{
    fn clone(&self) -> Self {
        match self {
            Link::Strong(r) => Link::Strong(r.clone()),
            Link::Weak(w) => Link::Weak(w.clone()),
        }
    }
}

impl<M: Message + Send> Link<M>
where
    M::Result: Send,
{
    fn new(recipient: Recipient<M>, weak: bool) -> Self {
        if weak {
            Link::Weak(recipient.downgrade())
        } else {
            Link::Strong(recipient)
        }
    }

    /// The recipient, if its actor is still there.
    pub(crate) fn get(&self) -> Option<Recipient<M>> {
        match self {
            Link::Strong(r) => r.connected().then(|| r.clone()),
            Link::Weak(w) => w.upgrade().filter(Recipient::connected),
        }
    }
}

impl ChildSpec {
    /// A child served by one actor that handles the whole child protocol.
    /// The supervisor keeps the actor alive while the child is registered.
    #[must_use]
    pub fn new<A>(id: impl Into<String>, addr: &Addr<A>) -> Self
    where
        A: Actor
            + Handler<StartChild>
            + Handler<RestartChild>
            + Handler<StopChild>
            + Handler<ChildVerdict>,
        A::Context: ToEnvelope<A, StartChild>
            + ToEnvelope<A, RestartChild>
            + ToEnvelope<A, StopChild>
            + ToEnvelope<A, ChildVerdict>,
    {
        ChildSpec::of_actor(id, addr, false)
    }

    /// Like [`ChildSpec::new`], but the supervisor holds the actor weakly: it
    /// does not keep it alive.
    #[must_use]
    pub fn weak<A>(id: impl Into<String>, addr: &Addr<A>) -> Self
    where
        A: Actor
            + Handler<StartChild>
            + Handler<RestartChild>
            + Handler<StopChild>
            + Handler<ChildVerdict>,
        A::Context: ToEnvelope<A, StartChild>
            + ToEnvelope<A, RestartChild>
            + ToEnvelope<A, StopChild>
            + ToEnvelope<A, ChildVerdict>,
    {
        ChildSpec::of_actor(id, addr, true)
    }

    fn of_actor<A>(id: impl Into<String>, addr: &Addr<A>, weak: bool) -> Self
    where
        A: Actor
            + Handler<StartChild>
            + Handler<RestartChild>
            + Handler<StopChild>
            + Handler<ChildVerdict>,
        A::Context: ToEnvelope<A, StartChild>
            + ToEnvelope<A, RestartChild>
            + ToEnvelope<A, StopChild>
            + ToEnvelope<A, ChildVerdict>,
    {
        ChildSpec::with_links(
            id,
            Links {
                start: Link::new(addr.clone().recipient(), weak),
                restart: Link::new(addr.clone().recipient(), weak),
                stop: Link::new(addr.clone().recipient(), weak),
                verdict: Link::new(addr.clone().recipient(), weak),
            },
        )
    }

    /// A child whose protocol messages go to separate recipients, held
    /// strongly.
    #[must_use]
    pub fn from_recipients(
        id: impl Into<String>,
        start: Recipient<StartChild>,
        restart: Recipient<RestartChild>,
        stop: Recipient<StopChild>,
        verdict: Recipient<ChildVerdict>,
    ) -> Self {
        ChildSpec::with_links(
            id,
            Links {
                start: Link::Strong(start),
                restart: Link::Strong(restart),
                stop: Link::Strong(stop),
                verdict: Link::Strong(verdict),
            },
        )
    }

    fn with_links(id: impl Into<String>, links: Links) -> Self {
        ChildSpec {
            id: id.into(),
            restart: RestartPolicy::Permanent,
            shutdown: Duration::from_secs(5),
            links,
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
