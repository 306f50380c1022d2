use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;

use actix::dev::{MessageResponse, OneshotSender};
use actix::fut::wrap_future;
use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, MessageResult, Recipient,
    ResponseFuture,
};
use futures::channel::oneshot;
use tokio::time::Instant;

use crate::machine::{Answer, ChildPlan, Command, Input, Machine, ShutdownBy};
use crate::spec::Links;
use crate::{
    AddChild, ChildExited, ChildLeft, ChildReady, ChildReporter, ChildSpec, ChildStatus,
    ChildStopped, ChildVerdict, Error, GetStatus, NoRestart, Registration, RemoveChild, Restart,
    RestartChild, Shutdown, ShutdownReport, StartChild, StopChild, StopOutcome, StopReason,
    Subscribe, SubscribeChild, SupervisorConfig, SupervisorEvent, SupervisorStatus, Verdict,
    WhichChildren,
};

/// An OTP-style supervisor actor with paced restarts.
///
/// Unlike [`actix::Supervisor`], which rebuilds one actor whenever it stops,
/// this supervisor manages many children through a message protocol, so it
/// catches the failures children *report* (a runtime's panic, a process's
/// exit status), applies a [`Strategy`](crate::Strategy), limits restarts
/// with an [`Intensity`](crate::Intensity), paces them with a
/// [`Backoff`](crate::Backoff), and escalates to its parent when it gives up.
///
/// # Lifecycle
///
/// ```text
/// Idle ─start─► Starting ─all ready─► Running ─Shutdown / StopChild─► ShuttingDown ─► stopped / Idle
///                  │                     └── intensity exceeded ──► ShuttingDown ─► GaveUp
///                  └── a child fails before it is ready ──────────► ShuttingDown ─► GaveUp
/// ```
///
/// - A top-level supervisor starts its children, in order, when the actor
///   starts. One built with [`supervised`](Self::supervised) waits for its
///   parent's [`StartChild`].
/// - Each child gets [`StartChild`] and must report ready before the next
///   one gets its own; [`SupervisorEvent::ChildStarted`] fires at each ready.
///   If one fails first, the supervisor stops the others and gives up (OTP).
/// - On a child's exit: [`SupervisorEvent::ChildFailed`] (or `ChildExited`),
///   then a [`ChildVerdict`] to the child. If its [`RestartPolicy`](crate::RestartPolicy)
///   asks for a restart and the intensity allows it, the verdict is
///   [`Verdict::Restart`], the strategy's other children are stopped in
///   reverse start order, [`SupervisorEvent::ChildRestarting`] fires with the
///   backoff delay, and after it the children get [`RestartChild`] in start
///   order, each waiting for the previous to be ready;
///   [`SupervisorEvent::ChildRestarted`] fires at each ready. Otherwise the
///   verdict is [`Verdict::NoRestart`] with the reason.
/// - [`RemoveChild`] is never an exit: the child is stopped if it is up and
///   forgotten, without counting a restart or touching a sibling, at any
///   point of its start, run, restart or backoff.
/// - Giving up stops every child in reverse start order, fires
///   [`SupervisorEvent::GaveUp`], then reports `Failed { cause: "gave up: …" }`
///   to the parent and goes idle, or, without a parent, stops the actor.
/// - [`Shutdown`] stops every child in reverse start order and then the actor;
///   a parent's [`StopChild`] does the same but leaves it idle, ready for a
///   [`RestartChild`]. When the actor stops, every child still waiting for a
///   start gets [`NoRestart`].
///
/// The decisions are made by a plain state machine (`machine.rs`, tested
/// without actix); this actor delivers its messages and carries out its
/// commands.
///
/// # Differences from OTP
///
/// - Restarts are paced by a backoff (OTP restarts at once).
/// - A removal never counts as an exit; OTP's `terminate_child` does not
///   either, but OTP has no child that asks for its own removal.
/// - Children are actors that outlive their stop, so the supervisor tells
///   each stopped child whether a start will come ([`ChildVerdict`]).
pub struct Supervisor {
    machine: Machine<Reply>,
    links: HashMap<Arc<str>, (Registration, Links)>,
    /// Reused buffers of `run`.
    inputs: VecDeque<Input<Reply>>,
    commands: Vec<Command<Reply>>,
    subscribers: Vec<Recipient<SupervisorEvent>>,
    child_subscribers: HashMap<String, Vec<Recipient<SupervisorEvent>>>,
    parent: Option<ChildReporter>,
    deferred: bool,
}

/// A reply the actor holds until the machine answers it.
enum Reply {
    Add(oneshot::Sender<Result<(), Error>>),
    Remove(oneshot::Sender<Result<StopOutcome, Error>>),
    Restart(oneshot::Sender<Result<(), Error>>),
    Shutdown(oneshot::Sender<ShutdownReport>),
    Parent(oneshot::Sender<ChildStopped>),
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reply::Add(_) => "Reply::Add",
            Reply::Remove(_) => "Reply::Remove",
            Reply::Restart(_) => "Reply::Restart",
            Reply::Shutdown(_) => "Reply::Shutdown",
            Reply::Parent(_) => "Reply::Parent",
        })
    }
}

impl Reply {
    fn send(self, answer: Answer) {
        match (self, answer) {
            (Reply::Add(tx), Answer::Added(r)) | (Reply::Restart(tx), Answer::Restarted(r)) => {
                let _ = tx.send(r);
            }
            (Reply::Remove(tx), Answer::Removed(r)) => {
                let _ = tx.send(r);
            }
            (Reply::Shutdown(tx), Answer::ShutDown(report)) => {
                let _ = tx.send(report);
            }
            (Reply::Parent(tx), Answer::StoppedByParent(stopped)) => {
                let _ = tx.send(stopped);
            }
            (reply, answer) => {
                tracing::error!(
                    ?reply,
                    ?answer,
                    "supervisor answered a request with the wrong reply"
                );
            }
        }
    }
}

// ===== impl Supervisor =====

impl Supervisor {
    /// A supervisor with no children yet.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if a configuration value is out of range.
    pub fn new(config: SupervisorConfig) -> Result<Self, Error> {
        config.validate()?;
        Ok(Supervisor {
            machine: Machine::new(config, Instant::now()),
            links: HashMap::new(),
            inputs: VecDeque::with_capacity(2),
            commands: Vec::with_capacity(8),
            subscribers: Vec::new(),
            child_subscribers: HashMap::new(),
            parent: None,
            deferred: false,
        })
    }

    /// Adds a child to the initial list; children start in the order added.
    ///
    /// # Errors
    ///
    /// [`Error::DuplicateChild`] if the id is taken.
    pub fn with_child(mut self, spec: ChildSpec) -> Result<Self, Error> {
        self.machine.admits(&spec.id)?;
        let plan = self.plan(spec);
        self.machine.register(plan);
        Ok(self)
    }

    /// What the machine needs of a spec; the recipients stay here, under the
    /// same id allocation.
    fn plan(&mut self, mut spec: ChildSpec) -> ChildPlan {
        spec.lost.defuse();
        let id: Arc<str> = std::mem::take(&mut spec.id).into();
        self.links
            .insert(Arc::clone(&id), (spec.registration, spec.links));
        ChildPlan {
            id,
            restart: spec.restart,
            shutdown: spec.shutdown,
            restart_on_start_failure: spec.restart_on_start_failure,
        }
    }

    /// Waits for a parent's [`StartChild`] before starting the children,
    /// so that a subtree starts in its parent's order.
    #[must_use]
    pub fn supervised(mut self) -> Self {
        self.deferred = true;
        self
    }

    /// Feeds one input to the machine and carries out what it decides,
    /// including what that feeds back.
    fn run(&mut self, input: Input<Reply>, ctx: &mut Context<Self>) {
        let mut inputs = std::mem::take(&mut self.inputs);
        let mut commands = std::mem::take(&mut self.commands);
        inputs.push_back(input);
        while let Some(input) = inputs.pop_front() {
            self.machine
                .handle_into(input, Instant::now(), &mut commands);
            for command in commands.drain(..) {
                if let Some(feedback) = self.execute(command, ctx) {
                    inputs.push_back(feedback);
                }
            }
        }
        self.inputs = inputs;
        self.commands = commands;
    }

    fn execute(
        &mut self,
        command: Command<Reply>,
        ctx: &mut Context<Self>,
    ) -> Option<Input<Reply>> {
        match command {
            Command::Start {
                id,
                generation,
                attempt,
            } => {
                let addr = ctx.address();
                let reporter =
                    ChildReporter::new(&id, generation, addr.clone().recipient(), addr.recipient());
                let links = self.links.get(id.as_str()).map(|(_, links)| links);
                let sent = match attempt {
                    None => links
                        .and_then(|l| l.start.get())
                        .map(|r| r.do_send(StartChild { reporter })),
                    Some(attempt) => links
                        .and_then(|l| l.restart.get())
                        .map(|r| r.do_send(RestartChild { reporter, attempt })),
                };
                if sent.is_none() {
                    tracing::warn!(child = %id, "child actor is gone; forgetting it");
                    return Some(Input::Gone { id, generation });
                }
            }
            Command::Stop {
                id,
                generation,
                timeout,
                reason,
            } => {
                let Some(stop) = self
                    .links
                    .get(id.as_str())
                    .map(|(_, links)| links)
                    .and_then(|l| l.stop.get())
                else {
                    return Some(Input::Stopped {
                        id,
                        generation,
                        outcome: StopOutcome::Unreachable,
                    });
                };
                let request = stop.send(StopChild {
                    id: id.clone(),
                    timeout,
                    reason,
                });
                let stop = async move {
                    match tokio::time::timeout(timeout, request).await {
                        Ok(Ok(ChildStopped::Gracefully)) => StopOutcome::Gracefully,
                        Ok(Ok(ChildStopped::Forced)) => StopOutcome::Forced,
                        Ok(Err(_)) => StopOutcome::Unreachable,
                        Err(_) => StopOutcome::TimedOut,
                    }
                };
                ctx.spawn(wrap_future::<_, Self>(stop).map(move |outcome, act, ctx| {
                    if outcome == StopOutcome::TimedOut {
                        tracing::warn!(child = %id, "child did not stop within its shutdown timeout");
                    }
                    act.run(
                        Input::Stopped {
                            id,
                            generation,
                            outcome,
                        },
                        ctx,
                    );
                }));
            }
            Command::Verdict {
                id,
                generation,
                verdict,
            } => {
                if let Some(to) = self
                    .links
                    .get(id.as_str())
                    .map(|(_, links)| links)
                    .and_then(|l| l.verdict.get())
                {
                    to.do_send(ChildVerdict {
                        id,
                        generation,
                        verdict,
                    });
                }
            }
            Command::Emit(event) => self.emit(event),
            Command::Answer { ticket, answer } => ticket.send(answer),
            Command::Schedule { token, delay } => {
                ctx.run_later(delay, move |act, ctx| act.run(Input::Timer { token }, ctx));
            }
            Command::Forget { id } => {
                self.links.remove(id.as_str());
                self.child_subscribers.remove(&id);
            }
            Command::ReadyToParent => {
                if let Some(parent) = &self.parent {
                    parent.ready();
                }
            }
            Command::FailToParent { reason } => {
                if let Some(parent) = &self.parent {
                    parent.failed(reason);
                }
            }
            Command::StopActor => ctx.stop(),
        }
        None
    }

    fn emit(&mut self, event: SupervisorEvent) {
        // Structured fields; the pods say the same at INFO and WARN.
        match &event {
            SupervisorEvent::GaveUp { reason, .. } => tracing::warn!(%reason, "supervisor gave up"),
            SupervisorEvent::ChildStarted { id } => tracing::debug!(child = %id, "child started"),
            SupervisorEvent::ChildFailed { id, cause } => {
                tracing::debug!(child = %id, %cause, "child failed")
            }
            SupervisorEvent::ChildExited { id } => tracing::debug!(child = %id, "child exited"),
            SupervisorEvent::ChildRestarting { id, attempt, delay } => tracing::debug!(
                child = %id,
                attempt,
                delay_ms = delay.as_secs_f64() * 1e3,
                "child restarting"
            ),
            SupervisorEvent::ChildRestarted {
                id,
                attempt,
                latency,
            } => tracing::debug!(
                child = %id,
                attempt,
                latency_ms = latency.as_secs_f64() * 1e3,
                "child restarted"
            ),
            SupervisorEvent::ChildStopped { id, outcome } => {
                tracing::debug!(child = %id, outcome = ?outcome, "child stopped")
            }
        }
        let send = |subscribers: &mut Vec<Recipient<SupervisorEvent>>| {
            subscribers.retain(|s| s.connected());
            for subscriber in subscribers.iter() {
                subscriber.do_send(event.clone());
            }
        };
        send(&mut self.subscribers);
        match event.child() {
            Some(id) => {
                if let Some(subscribers) = self.child_subscribers.get_mut(id) {
                    send(subscribers);
                }
            }
            None => self.child_subscribers.values_mut().for_each(send),
        }
    }
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("config", self.machine.config())
            .field("phase", &self.machine.phase())
            .field("children", &self.machine.len())
            .field("subscribers", &self.subscribers.len())
            .field("queued", &self.machine.queued())
            .finish_non_exhaustive()
    }
}

// ===== impl Actor / Handlers =====

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if !self.deferred {
            self.run(Input::StartAll, ctx);
        }
    }
}

impl Handler<ChildReady> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: ChildReady, ctx: &mut Context<Self>) {
        self.run(
            Input::Ready {
                id: msg.id,
                generation: msg.generation,
            },
            ctx,
        );
    }
}

impl Handler<ChildExited> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: ChildExited, ctx: &mut Context<Self>) {
        self.run(
            Input::Exited {
                id: msg.id,
                generation: msg.generation,
                exit: msg.exit,
            },
            ctx,
        );
    }
}

impl Handler<ChildLeft> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: ChildLeft, ctx: &mut Context<Self>) {
        // Only the registration that leaves: the id may belong to a newer
        // child by now (or to another one that was refused this one).
        let current = self.links.get(msg.id.as_str()).map(|(r, _)| *r);
        if current == Some(msg.registration) {
            self.run(Input::Left { id: msg.id }, ctx);
        }
    }
}

/// The answer to [`AddChild`]: a refusal at once, or the supervisor's
/// answer once the child is in. A child that registers itself with
/// `do_send` (as a pod does) asks for no answer, and none is awaited: no
/// task is spent on it.
pub struct AddAnswer(Result<oneshot::Receiver<Result<(), Error>>, Error>);

impl MessageResponse<Supervisor, AddChild> for AddAnswer {
    fn handle(self, _: &mut Context<Supervisor>, tx: Option<OneshotSender<Result<(), Error>>>) {
        let Some(tx) = tx else {
            return;
        };
        match self.0 {
            Err(refused) => {
                let _ = tx.send(Err(refused));
            }
            Ok(answer) => {
                actix_rt::spawn(async move {
                    let _ = tx.send(answer.await.unwrap_or(Err(Error::ShuttingDown)));
                });
            }
        }
    }
}

impl fmt::Debug for AddAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AddAnswer")
            .field(&self.0.as_ref().map(|_| "pending"))
            .finish()
    }
}

impl Handler<AddChild> for Supervisor {
    type Result = AddAnswer;

    fn handle(&mut self, AddChild(mut spec): AddChild, ctx: &mut Context<Self>) -> Self::Result {
        if let Err(e) = self.machine.admits(&spec.id) {
            spec.lost.defuse();
            // Told to the child too, which may have registered with do_send.
            if let Some(to) = spec.links.verdict.get() {
                to.do_send(ChildVerdict {
                    id: spec.id.clone(),
                    generation: 0,
                    verdict: Verdict::NoRestart(NoRestart::Refused(e.clone())),
                });
            }
            return AddAnswer(Err(e));
        }
        let plan = self.plan(spec);
        let (tx, rx) = oneshot::channel();
        self.run(
            Input::Add {
                plan,
                ticket: Reply::Add(tx),
            },
            ctx,
        );
        AddAnswer(Ok(rx))
    }
}

impl Handler<RemoveChild> for Supervisor {
    type Result = ResponseFuture<Result<StopOutcome, Error>>;

    fn handle(&mut self, msg: RemoveChild, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.run(
            Input::Remove {
                id: msg.id,
                ticket: Reply::Remove(tx),
            },
            ctx,
        );
        Box::pin(async move { rx.await.unwrap_or(Err(Error::ShuttingDown)) })
    }
}

impl Handler<Restart> for Supervisor {
    type Result = ResponseFuture<Result<(), Error>>;

    fn handle(&mut self, msg: Restart, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.run(
            Input::Restart {
                id: msg.id,
                ticket: Reply::Restart(tx),
            },
            ctx,
        );
        Box::pin(async move { rx.await.unwrap_or(Err(Error::ShuttingDown)) })
    }
}

impl Handler<Subscribe> for Supervisor {
    type Result = ();

    fn handle(&mut self, Subscribe(subscriber): Subscribe, _: &mut Context<Self>) {
        if !self.subscribers.contains(&subscriber) {
            self.subscribers.push(subscriber);
        }
    }
}

impl Handler<SubscribeChild> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: SubscribeChild, _: &mut Context<Self>) {
        // Only for a registered child: the entry goes when the child does.
        if !self.links.contains_key(msg.id.as_str()) {
            return;
        }
        let subscribers = self.child_subscribers.entry(msg.id).or_default();
        if !subscribers.contains(&msg.subscriber) {
            subscribers.push(msg.subscriber);
        }
    }
}

impl Handler<WhichChildren> for Supervisor {
    type Result = MessageResult<WhichChildren>;

    fn handle(&mut self, _: WhichChildren, _: &mut Context<Self>) -> Self::Result {
        let children: Vec<ChildStatus> = self.machine.status(Instant::now()).children;
        MessageResult(children)
    }
}

impl Handler<GetStatus> for Supervisor {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, _: &mut Context<Self>) -> Self::Result {
        let status: SupervisorStatus = self.machine.status(Instant::now());
        MessageResult(status)
    }
}

impl Handler<Shutdown> for Supervisor {
    type Result = ResponseFuture<ShutdownReport>;

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.run(
            Input::Shutdown {
                ticket: Reply::Shutdown(tx),
                by: ShutdownBy::Owner,
            },
            ctx,
        );
        Box::pin(async move { rx.await.unwrap_or_default() })
    }
}

// ===== impl child side: a supervisor under a supervisor =====

impl Handler<StartChild> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: StartChild, ctx: &mut Context<Self>) {
        self.parent = Some(msg.reporter);
        self.machine.set_parent();
        self.run(Input::StartAll, ctx);
    }
}

impl Handler<RestartChild> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: RestartChild, ctx: &mut Context<Self>) {
        self.parent = Some(msg.reporter);
        self.machine.set_parent();
        self.run(Input::ParentRestart, ctx);
    }
}

impl Handler<StopChild> for Supervisor {
    type Result = ResponseFuture<ChildStopped>;

    fn handle(&mut self, msg: StopChild, ctx: &mut Context<Self>) -> Self::Result {
        let by = match msg.reason {
            StopReason::Removed => ShutdownBy::ParentRemoval,
            _ => ShutdownBy::Parent,
        };
        let (tx, rx) = oneshot::channel();
        self.run(
            Input::Shutdown {
                ticket: Reply::Parent(tx),
                by,
            },
            ctx,
        );
        Box::pin(async move { rx.await.unwrap_or(ChildStopped::Forced) })
    }
}

impl Handler<ChildVerdict> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: ChildVerdict, ctx: &mut Context<Self>) {
        if let Verdict::NoRestart(why) = msg.verdict {
            self.run(Input::Abandoned { why }, ctx);
        }
    }
}
