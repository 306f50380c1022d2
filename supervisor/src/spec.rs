use std::fmt;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix::dev::ToEnvelope;
use actix::{Actor, Addr, Handler, Message, Recipient, WeakRecipient};

use crate::{
    ChildExit, ChildExited, ChildReady, ChildVerdict, Error, NoRestart, RestartChild,
    RestartPolicy, StartChild, StopChild, Verdict,
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
    pub(crate) registration: Registration,
    pub(crate) restart: RestartPolicy,
    pub(crate) shutdown: Duration,
    pub(crate) links: Links,
    pub(crate) restart_on_start_failure: bool,
    pub(crate) lost: LostNotice,
}

/// Tells the child when its spec is dropped before a supervisor took or
/// refused it (see [`ChildSpec::tell_if_lost`]).
#[derive(Default)]
pub(crate) struct LostNotice(Option<Link<ChildVerdict>>, String);

impl LostNotice {
    /// The supervisor has answered the spec: nothing to tell.
    pub(crate) fn defuse(&mut self) {
        self.0 = None;
    }
}

impl Clone for LostNotice {
    /// A copy never tells: only the spec that was sent does.
    fn clone(&self) -> Self {
        LostNotice::default()
    }
}

impl Drop for LostNotice {
    fn drop(&mut self) {
        if let Some(child) = self.0.take().and_then(|link| link.get()) {
            child.do_send(ChildVerdict {
                id: std::mem::take(&mut self.1),
                generation: 0,
                verdict: Verdict::NoRestart(NoRestart::Refused(Error::ShuttingDown)),
            });
        }
    }
}

/// Which spec a child was registered with: ids can be reused once a child
/// is forgotten, registrations cannot. A child that leaves says which
/// registration it leaves ([`ChildLeft`](crate::ChildLeft)), so that a late
/// `ChildLeft` never removes a newer child of the same id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Registration(NonZeroU64);

impl Registration {
    fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // Never zero: it starts at 1, and 2^64 registrations do not happen.
        Registration(NonZeroU64::new(n).unwrap_or(NonZeroU64::MIN))
    }
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
        let links = if weak {
            // From one weak address: no strong sender is made at all.
            let weak = addr.downgrade();
            Links {
                start: Link::Weak(weak.clone().recipient()),
                restart: Link::Weak(weak.clone().recipient()),
                stop: Link::Weak(weak.clone().recipient()),
                verdict: Link::Weak(weak.recipient()),
            }
        } else {
            Links {
                start: Link::Strong(addr.clone().recipient()),
                restart: Link::Strong(addr.clone().recipient()),
                stop: Link::Strong(addr.clone().recipient()),
                verdict: Link::Strong(addr.clone().recipient()),
            }
        };
        ChildSpec::with_links(id, links)
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
            registration: Registration::next(),
            restart: RestartPolicy::Permanent,
            shutdown: Duration::from_secs(5),
            links,
            restart_on_start_failure: false,
            lost: LostNotice::default(),
        }
    }

    /// Tells the child if this spec is lost: when it is dropped before a
    /// supervisor took or refused it (its [`AddChild`](crate::AddChild) was
    /// still in the mailbox of a supervisor that stopped), the child receives
    /// a [`ChildVerdict`] with generation 0 and
    /// `NoRestart(Refused(ShuttingDown))`. With it, a child that registers
    /// itself with `do_send` always hears back: a start, a refusal, or this.
    /// Only the spec itself tells, not its clones.
    #[must_use]
    pub fn tell_if_lost(mut self) -> Self {
        self.lost = LostNotice(Some(self.links.verdict.clone()), self.id.clone());
        self
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

    /// The registration this spec makes when a supervisor takes it; each
    /// spec built has its own (clones share it).
    #[must_use]
    pub fn registration(&self) -> Registration {
        self.registration
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
