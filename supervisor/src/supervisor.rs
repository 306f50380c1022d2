use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::Duration;

use actix::fut::wrap_future;
use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, MessageResult, Recipient,
    ResponseFuture,
};
use futures::channel::oneshot;
use tokio::time::Instant;

use crate::intensity::RestartLog;
use crate::{
    AddChild, Cause, ChildExit, ChildExited, ChildReady, ChildReporter, ChildSpec, ChildState,
    ChildStatus, ChildStopped, Error, GetStatus, RemoveChild, Restart, RestartChild, RestartPolicy,
    Shutdown, ShutdownReport, StartChild, StopChild, StopOutcome, Subscribe, SubscribeChild,
    SupervisorConfig, SupervisorEvent, SupervisorPhase, SupervisorStatus, WhichChildren,
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
/// - On a child's exit: [`SupervisorEvent::ChildFailed`] (or `ChildExited`);
///   then, if its [`RestartPolicy`] asks for it and the intensity allows it,
///   the strategy's other children are stopped in reverse start order,
///   [`SupervisorEvent::ChildRestarting`] fires with the backoff delay, and
///   after it the children get [`RestartChild`] in start order, each waiting
///   for the previous to be ready; [`SupervisorEvent::ChildRestarted`] fires
///   at each ready.
/// - Giving up stops every child in reverse start order, fires
///   [`SupervisorEvent::GaveUp`], then reports `Failed { cause: "gave up: …" }`
///   to the parent and goes idle, or, without a parent, stops the actor.
/// - [`Shutdown`] stops every child in reverse start order and then the actor;
///   a parent's [`StopChild`] does the same but leaves it idle, ready for a
///   [`RestartChild`].
///
/// Control work (starts, stops, removals, restart cycles) runs one job at a
/// time, in arrival order; backoff delays run outside that queue, so one
/// child waiting out a long delay never holds up another's restart.
pub struct Supervisor {
    config: SupervisorConfig,
    rng: fastrand::Rng,
    children: Vec<Child>,
    // Position of each id in `children`, which stays in start order.
    positions: HashMap<String, usize>,
    phase: SupervisorPhase,
    restarts: RestartLog,
    subscribers: Vec<Recipient<SupervisorEvent>>,
    child_subscribers: HashMap<String, Vec<Recipient<SupervisorEvent>>>,
    parent: Option<ChildReporter>,
    deferred: bool,
    queue: VecDeque<Task>,
    current: Option<Job>,
    next_generation: u64,
    next_token: u64,
}

struct Child {
    spec: ChildSpec,
    state: State,
    generation: u64,
    attempt: u32,
    restarts: u64,
    last_cause: Option<String>,
    last_latency: Option<Duration>,
    started_once: bool,
}

#[derive(Debug, Clone, Copy)]
struct RestartInfo {
    attempt: u32,
    since: Instant,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Pending,
    Starting { restart: Option<RestartInfo> },
    Running { since: Instant },
    Failed,
    Restarting { token: u64, info: RestartInfo },
    Stopping,
    Stopped,
    Exited,
}

enum Task {
    StartAll,
    Add {
        id: String,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Remove {
        id: String,
        reply: oneshot::Sender<Result<StopOutcome, Error>>,
    },
    Restart {
        id: String,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Failure {
        id: String,
        generation: u64,
        info: RestartInfo,
        delay: Duration,
    },
    Resume {
        token: u64,
    },
    Shutdown(ShutdownReply),
    GiveUp {
        reason: String,
        restarts: u32,
    },
}

enum ShutdownReply {
    Owner(oneshot::Sender<ShutdownReport>),
    Parent(oneshot::Sender<ChildStopped>),
}

struct Job {
    steps: VecDeque<Step>,
    awaiting: Awaiting,
    done: Done,
    stopped: Vec<(String, StopOutcome)>,
}

enum Step {
    Stop { id: String, forget: bool },
    Start { id: String },
}

#[derive(PartialEq, Eq)]
enum Awaiting {
    Nothing,
    Stop,
    Ready { id: String, generation: u64 },
}

enum Done {
    Nothing,
    StartAll,
    Add(oneshot::Sender<Result<(), Error>>),
    Remove {
        id: String,
        reply: oneshot::Sender<Result<StopOutcome, Error>>,
    },
    Restart(oneshot::Sender<Result<(), Error>>),
    Failure {
        ids: Vec<String>,
        info: RestartInfo,
        delay: Duration,
    },
    Shutdown(ShutdownReply),
    GiveUp {
        reason: String,
        restarts: u32,
    },
}

impl Job {
    fn new(steps: VecDeque<Step>, done: Done) -> Self {
        Job {
            steps,
            awaiting: Awaiting::Nothing,
            done,
            stopped: Vec::new(),
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
        let rng = match config.seed {
            Some(seed) => fastrand::Rng::with_seed(seed),
            None => fastrand::Rng::new(),
        };
        Ok(Supervisor {
            config,
            rng,
            children: Vec::new(),
            positions: HashMap::new(),
            phase: SupervisorPhase::Idle,
            restarts: RestartLog::default(),
            subscribers: Vec::new(),
            child_subscribers: HashMap::new(),
            parent: None,
            deferred: false,
            queue: VecDeque::new(),
            current: None,
            next_generation: 1,
            next_token: 1,
        })
    }

    /// Adds a child to the initial list; children start in the order added.
    ///
    /// # Errors
    ///
    /// [`Error::DuplicateChild`] if the id is taken.
    pub fn with_child(mut self, spec: ChildSpec) -> Result<Self, Error> {
        if self.index(&spec.id).is_some() {
            return Err(Error::DuplicateChild { id: spec.id });
        }
        self.push_child(spec);
        Ok(self)
    }

    /// Waits for a parent's [`StartChild`] before starting the children,
    /// so that a subtree starts in its parent's order.
    #[must_use]
    pub fn supervised(mut self) -> Self {
        self.deferred = true;
        self
    }

    fn index(&self, id: &str) -> Option<usize> {
        self.positions.get(id).copied()
    }

    fn push_child(&mut self, spec: ChildSpec) {
        self.positions.insert(spec.id.clone(), self.children.len());
        self.children.push(Child::new(spec));
    }

    fn remove_child(&mut self, index: usize) {
        let removed = self.children.remove(index);
        self.positions.remove(&removed.spec.id);
        for (offset, child) in self.children[index..].iter().enumerate() {
            if let Some(position) = self.positions.get_mut(&child.spec.id) {
                *position = index + offset;
            }
        }
    }

    fn emit(&mut self, event: SupervisorEvent) {
        tracing::debug!(?event, "supervisor event");
        self.subscribers.retain(|s| s.connected());
        for subscriber in &self.subscribers {
            subscriber.do_send(event.clone());
        }
        let send = |subscribers: &mut Vec<Recipient<SupervisorEvent>>| {
            subscribers.retain(|s| s.connected());
            for subscriber in subscribers.iter() {
                subscriber.do_send(event.clone());
            }
        };
        match event.child() {
            Some(id) => {
                if let Some(subscribers) = self.child_subscribers.get_mut(id) {
                    send(subscribers);
                }
            }
            None => self.child_subscribers.values_mut().for_each(send),
        }
    }

    fn enqueue(&mut self, task: Task, ctx: &mut Context<Self>) {
        self.queue.push_back(task);
        self.pump(ctx);
    }

    /// Runs queued work until it has to wait for a child or a timer.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        loop {
            let Some(mut job) = self.current.take() else {
                match self.queue.pop_front() {
                    Some(task) => {
                        self.current = self.begin(task);
                        continue;
                    }
                    None => return,
                }
            };
            if job.awaiting != Awaiting::Nothing {
                self.current = Some(job);
                return;
            }
            match job.steps.pop_front() {
                Some(Step::Stop { id, forget }) => {
                    if self.begin_stop(&id, forget, ctx) {
                        job.awaiting = Awaiting::Stop;
                    }
                    self.current = Some(job);
                }
                Some(Step::Start { id }) => {
                    if self.phase != SupervisorPhase::ShuttingDown {
                        let waits = self
                            .index(&id)
                            .is_some_and(|i| !self.children[i].spec.restart_on_start_failure);
                        if let Some(generation) = self.begin_start(&id, ctx) {
                            if waits {
                                job.awaiting = Awaiting::Ready { id, generation };
                            }
                        }
                    }
                    self.current = Some(job);
                }
                None => self.finish(job, ctx),
            }
        }
    }

    fn begin(&mut self, task: Task) -> Option<Job> {
        match task {
            Task::StartAll => {
                let mut steps = VecDeque::new();
                if self.phase == SupervisorPhase::Idle {
                    self.restarts.clear();
                    steps.extend(self.children.iter().map(|c| Step::Start {
                        id: c.spec.id.clone(),
                    }));
                }
                self.phase = SupervisorPhase::Starting;
                Some(Job::new(steps, Done::StartAll))
            }
            Task::Add { id, reply } => {
                Some(Job::new([Step::Start { id }].into(), Done::Add(reply)))
            }
            Task::Remove { id, reply } => Some(Job::new(
                [Step::Stop {
                    id: id.clone(),
                    forget: true,
                }]
                .into(),
                Done::Remove { id, reply },
            )),
            Task::Restart { id, reply } => Some(Job::new(
                [
                    Step::Stop {
                        id: id.clone(),
                        forget: false,
                    },
                    Step::Start { id },
                ]
                .into(),
                Done::Restart(reply),
            )),
            Task::Failure {
                id,
                generation,
                info,
                delay,
            } => self.plan_restart(&id, generation, info, delay),
            Task::Resume { token } => {
                let steps = self
                    .children
                    .iter()
                    .filter(|c| matches!(c.state, State::Restarting { token: t, .. } if t == token))
                    .map(|c| Step::Start {
                        id: c.spec.id.clone(),
                    })
                    .collect();
                Some(Job::new(steps, Done::Nothing))
            }
            Task::Shutdown(reply) => Some(Job::new(self.stop_all(), Done::Shutdown(reply))),
            Task::GiveUp { reason, restarts } => {
                Some(Job::new(self.stop_all(), Done::GiveUp { reason, restarts }))
            }
        }
    }

    fn stop_all(&self) -> VecDeque<Step> {
        self.children
            .iter()
            .rev()
            .map(|c| Step::Stop {
                id: c.spec.id.clone(),
                forget: false,
            })
            .collect()
    }

    /// The stop half of a restart cycle: which children the strategy takes
    /// down with the failed one.
    fn plan_restart(
        &mut self,
        id: &str,
        generation: u64,
        info: RestartInfo,
        delay: Duration,
    ) -> Option<Job> {
        let failed = self.index(id)?;
        let child = &self.children[failed];
        if child.generation != generation || !matches!(child.state, State::Failed) {
            return None;
        }
        let mut ids = Vec::new();
        let mut steps = VecDeque::new();
        for i in self.config.strategy.affected(failed, self.children.len()) {
            let sibling = &self.children[i];
            if i == failed {
                ids.push(sibling.spec.id.clone());
                continue;
            }
            let involved = matches!(
                sibling.state,
                State::Starting { .. }
                    | State::Running { .. }
                    | State::Failed
                    | State::Restarting { .. }
            );
            if !involved {
                continue;
            }
            // OTP: a temporary sibling taken down by the strategy is not restarted.
            let forget = sibling.spec.restart == RestartPolicy::Temporary;
            steps.push_front(Step::Stop {
                id: sibling.spec.id.clone(),
                forget,
            });
            if !forget {
                ids.push(sibling.spec.id.clone());
            }
        }
        Some(Job::new(steps, Done::Failure { ids, info, delay }))
    }

    fn finish(&mut self, job: Job, ctx: &mut Context<Self>) {
        match job.done {
            Done::Nothing => {}
            Done::StartAll => {
                self.phase = SupervisorPhase::Running;
                if let Some(parent) = &self.parent {
                    parent.ready();
                }
            }
            Done::Add(reply) | Done::Restart(reply) => {
                let _ = reply.send(Ok(()));
            }
            Done::Remove { id, reply } => {
                let outcome = job
                    .stopped
                    .iter()
                    .find(|(stopped, _)| *stopped == id)
                    .map_or(StopOutcome::NotRunning, |(_, outcome)| *outcome);
                let _ = reply.send(Ok(outcome));
            }
            Done::Failure { ids, info, delay } => {
                if self.phase == SupervisorPhase::ShuttingDown {
                    return;
                }
                let token = self.next_token;
                self.next_token += 1;
                for id in ids {
                    let Some(i) = self.index(&id) else { continue };
                    let child = &mut self.children[i];
                    if matches!(
                        child.state,
                        State::Failed | State::Stopped | State::Restarting { .. }
                    ) {
                        child.state = State::Restarting { token, info };
                        self.emit(SupervisorEvent::ChildRestarting {
                            id,
                            attempt: info.attempt,
                            delay,
                        });
                    }
                }
                if delay.is_zero() {
                    self.queue.push_front(Task::Resume { token });
                } else {
                    ctx.run_later(delay, move |act, ctx| {
                        act.enqueue(Task::Resume { token }, ctx);
                    });
                }
            }
            Done::Shutdown(reply) => {
                let report = ShutdownReport {
                    stopped: job.stopped,
                };
                match reply {
                    ShutdownReply::Owner(tx) => {
                        let _ = tx.send(report);
                        ctx.stop();
                    }
                    ShutdownReply::Parent(tx) => {
                        self.phase = SupervisorPhase::Idle;
                        let forced = report.stopped.iter().any(|(_, o)| {
                            !matches!(o, StopOutcome::Gracefully | StopOutcome::NotRunning)
                        });
                        let _ = tx.send(if forced {
                            ChildStopped::Forced
                        } else {
                            ChildStopped::Gracefully
                        });
                    }
                }
            }
            Done::GiveUp { reason, restarts } => {
                tracing::warn!(%reason, "supervisor gave up");
                self.emit(SupervisorEvent::GaveUp {
                    restarts,
                    within: self.config.intensity.within,
                    reason: reason.clone(),
                });
                match &self.parent {
                    Some(parent) => {
                        self.phase = SupervisorPhase::Idle;
                        self.restarts.clear();
                        parent.failed(format!("gave up: {reason}"));
                    }
                    None => ctx.stop(),
                }
            }
        }
    }

    /// Sends [`StartChild`] or [`RestartChild`]; returns the new generation,
    /// or `None` if the child is gone or already up.
    fn begin_start(&mut self, id: &str, ctx: &mut Context<Self>) -> Option<u64> {
        let now = Instant::now();
        let index = self.index(id)?;
        let generation = self.next_generation;
        let child = &mut self.children[index];
        if matches!(
            child.state,
            State::Starting { .. } | State::Running { .. } | State::Stopping
        ) {
            return None;
        }
        self.next_generation += 1;
        let addr = ctx.address();
        let reporter =
            ChildReporter::new(id, generation, addr.clone().recipient(), addr.recipient());
        let info = match child.state {
            State::Restarting { info, .. } => info,
            _ => RestartInfo {
                attempt: child.attempt,
                since: now,
            },
        };
        let restart = child.started_once.then_some(info);
        child.generation = generation;
        child.started_once = true;
        child.state = State::Starting { restart };
        let reachable = match restart {
            None => {
                let reachable = child.spec.start.connected();
                child.spec.start.do_send(StartChild { reporter });
                reachable
            }
            Some(info) => {
                child.restarts += 1;
                let reachable = child.spec.restart_to.connected();
                child.spec.restart_to.do_send(RestartChild {
                    reporter,
                    attempt: info.attempt,
                });
                reachable
            }
        };
        if !reachable {
            ctx.notify(ChildExited {
                id: id.to_owned(),
                generation,
                exit: ChildExit::Failed {
                    cause: "child mailbox is closed".to_owned(),
                },
            });
        }
        Some(generation)
    }

    /// Sends [`StopChild`] to a child that is up; returns whether a reply is
    /// awaited.
    fn begin_stop(&mut self, id: &str, forget: bool, ctx: &mut Context<Self>) -> bool {
        let Some(index) = self.index(id) else {
            return false;
        };
        let child = &mut self.children[index];
        if !matches!(child.state, State::Starting { .. } | State::Running { .. }) {
            if forget {
                self.remove_child(index);
            } else if !matches!(child.state, State::Pending | State::Exited) {
                child.state = State::Stopped;
            }
            return false;
        }
        child.state = State::Stopping;
        let timeout = child.spec.shutdown;
        let request = child.spec.stop.send(StopChild {
            id: id.to_owned(),
            timeout,
        });
        let stop = async move {
            match tokio::time::timeout(timeout, request).await {
                Ok(Ok(ChildStopped::Gracefully)) => StopOutcome::Gracefully,
                Ok(Ok(ChildStopped::Forced)) => StopOutcome::Forced,
                Ok(Err(_)) => StopOutcome::Unreachable,
                Err(_) => StopOutcome::TimedOut,
            }
        };
        let id = id.to_owned();
        ctx.spawn(
            wrap_future::<_, Self>(stop)
                .map(move |outcome, act, ctx| act.stop_finished(id, forget, outcome, ctx)),
        );
        true
    }

    fn stop_finished(
        &mut self,
        id: String,
        forget: bool,
        outcome: StopOutcome,
        ctx: &mut Context<Self>,
    ) {
        if outcome == StopOutcome::TimedOut {
            tracing::warn!(child = %id, "child did not stop within its shutdown timeout");
        }
        if let Some(index) = self.index(&id) {
            if forget {
                self.remove_child(index);
            } else if matches!(self.children[index].state, State::Stopping) {
                self.children[index].state = State::Stopped;
            }
        }
        self.emit(SupervisorEvent::ChildStopped {
            id: id.clone(),
            outcome,
        });
        if let Some(job) = &mut self.current {
            if job.awaiting == Awaiting::Stop {
                job.awaiting = Awaiting::Nothing;
                job.stopped.push((id, outcome));
            }
        }
        self.pump(ctx);
    }

    /// Puts a shutdown or give-up first in line: queued work is refused, and
    /// a job blocked on a child's readiness is abandoned, since that child
    /// may never become ready.
    fn begin_shutdown(&mut self, task: Task, ctx: &mut Context<Self>) {
        if self.phase == SupervisorPhase::ShuttingDown {
            if matches!(task, Task::Shutdown(_)) {
                self.queue.push_back(task);
            }
            return;
        }
        self.phase = SupervisorPhase::ShuttingDown;
        if let Some(mut job) = self.current.take() {
            if matches!(job.awaiting, Awaiting::Ready { .. }) {
                Self::refuse(job.done, Error::ShuttingDown);
            } else {
                job.steps.retain(|s| matches!(s, Step::Stop { .. }));
                self.current = Some(job);
            }
        }
        let mut kept = VecDeque::new();
        for queued in std::mem::take(&mut self.queue) {
            match queued {
                Task::Add { id, reply } => {
                    if let Some(index) = self.index(&id) {
                        if matches!(self.children[index].state, State::Pending) {
                            self.remove_child(index);
                        }
                    }
                    let _ = reply.send(Err(Error::ShuttingDown));
                }
                Task::Remove { reply, .. } => {
                    let _ = reply.send(Err(Error::ShuttingDown));
                }
                Task::Restart { reply, .. } => {
                    let _ = reply.send(Err(Error::ShuttingDown));
                }
                Task::Shutdown(_) => kept.push_back(queued),
                _ => {}
            }
        }
        self.queue = kept;
        self.queue.push_front(task);
        self.pump(ctx);
    }

    fn refuse(done: Done, error: Error) {
        match done {
            Done::Add(reply) | Done::Restart(reply) => {
                let _ = reply.send(Err(error));
            }
            Done::Remove { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            _ => {}
        }
    }

    fn give_up(&mut self, reason: String, restarts: u32, ctx: &mut Context<Self>) {
        self.begin_shutdown(Task::GiveUp { reason, restarts }, ctx);
    }

    fn on_ready(&mut self, msg: ChildReady, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let Some(index) = self.index(&msg.id) else {
            return;
        };
        let child = &mut self.children[index];
        let State::Starting { restart } = child.state else {
            return;
        };
        if child.generation != msg.generation {
            return;
        }
        child.state = State::Running { since: now };
        let event = match restart {
            Some(info) => {
                let latency = now.saturating_duration_since(info.since);
                child.last_latency = Some(latency);
                SupervisorEvent::ChildRestarted {
                    id: msg.id.clone(),
                    attempt: info.attempt,
                    latency,
                }
            }
            None => SupervisorEvent::ChildStarted { id: msg.id.clone() },
        };
        self.emit(event);
        let awaited = Awaiting::Ready {
            id: msg.id,
            generation: msg.generation,
        };
        if let Some(job) = &mut self.current {
            if job.awaiting == awaited {
                job.awaiting = Awaiting::Nothing;
                self.pump(ctx);
            }
        }
    }

    fn on_exit(&mut self, msg: ChildExited, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let Some(index) = self.index(&msg.id) else {
            return;
        };
        let child = &mut self.children[index];
        if child.generation != msg.generation {
            return;
        }
        let ready_for = match child.state {
            State::Running { since } => Some(now.saturating_duration_since(since)),
            State::Starting { .. } => None,
            _ => return,
        };
        child.state = State::Failed;
        let cause = match &msg.exit {
            ChildExit::Normal => None,
            ChildExit::Failed { cause } => Some(cause.clone()),
        };
        match &cause {
            Some(cause) => {
                child.last_cause = Some(cause.clone());
                self.emit(SupervisorEvent::ChildFailed {
                    id: msg.id.clone(),
                    cause: cause.clone(),
                });
            }
            None => self.emit(SupervisorEvent::ChildExited { id: msg.id.clone() }),
        }

        let awaited = Awaiting::Ready {
            id: msg.id.clone(),
            generation: msg.generation,
        };
        if self
            .current
            .as_ref()
            .is_some_and(|job| job.awaiting == awaited)
        {
            let cause = Cause(cause.unwrap_or_else(|| "exited before it was ready".to_owned()));
            if let Some(job) = self.current.take() {
                match job.done {
                    Done::Add(reply) => {
                        self.remove_child(index);
                        let _ = reply.send(Err(Error::ChildFailedToStart { id: msg.id, cause }));
                        self.pump(ctx);
                        return;
                    }
                    Done::StartAll => {
                        let reason = format!("child `{}` failed to start: {cause}", msg.id);
                        self.give_up(reason, 0, ctx);
                        return;
                    }
                    Done::Restart(reply) => {
                        let _ = reply.send(Err(Error::ChildFailedToStart {
                            id: msg.id.clone(),
                            cause,
                        }));
                    }
                    // A restart cycle stops here; this failure starts the next one.
                    _ => {}
                }
            }
        }

        let policy = self.children[index].spec.restart;
        if self.phase == SupervisorPhase::ShuttingDown || !policy.should_restart(&msg.exit) {
            if policy == RestartPolicy::Temporary {
                self.remove_child(index);
            } else {
                self.children[index].state = State::Exited;
            }
            self.pump(ctx);
            return;
        }
        let limit = self.config.intensity;
        if !self.restarts.record(&limit, now) {
            let reason = format!(
                "more than {} restarts within {:?}",
                limit.max_restarts, limit.within
            );
            self.give_up(reason, limit.max_restarts.saturating_add(1), ctx);
            return;
        }
        let backoff = self.config.backoff;
        let child = &mut self.children[index];
        if ready_for.is_some_and(|d| backoff.resets_after(d)) {
            child.attempt = 0;
        }
        child.attempt = child.attempt.saturating_add(1);
        let attempt = child.attempt;
        let delay = backoff.delay(attempt, self.rng.f64());
        self.enqueue(
            Task::Failure {
                id: msg.id,
                generation: msg.generation,
                info: RestartInfo {
                    attempt,
                    since: now,
                },
                delay,
            },
            ctx,
        );
    }

    fn status(&mut self) -> SupervisorStatus {
        let now = Instant::now();
        let restarts_in_window = self.restarts.count(&self.config.intensity, now);
        SupervisorStatus {
            phase: self.phase,
            strategy: self.config.strategy,
            restarts_in_window,
            children: self.children.iter().map(|c| c.status(now)).collect(),
        }
    }
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("config", &self.config)
            .field("phase", &self.phase)
            .field("children", &self.children.len())
            .field("subscribers", &self.subscribers.len())
            .field("queued", &self.queue.len())
            .finish_non_exhaustive()
    }
}

// ===== impl Child =====

impl Child {
    fn new(spec: ChildSpec) -> Self {
        Child {
            spec,
            state: State::Pending,
            generation: 0,
            attempt: 0,
            restarts: 0,
            last_cause: None,
            last_latency: None,
            started_once: false,
        }
    }

    fn status(&self, now: Instant) -> ChildStatus {
        let (state, uptime) = match self.state {
            State::Pending => (ChildState::Pending, None),
            State::Starting { .. } => (ChildState::Starting, None),
            State::Running { since } => (
                ChildState::Running,
                Some(now.saturating_duration_since(since)),
            ),
            State::Failed => (ChildState::Failed, None),
            State::Restarting { .. } => (ChildState::Restarting, None),
            State::Stopping => (ChildState::Stopping, None),
            State::Stopped => (ChildState::Stopped, None),
            State::Exited => (ChildState::Exited, None),
        };
        ChildStatus {
            id: self.spec.id.clone(),
            restart: self.spec.restart,
            state,
            restarts: self.restarts,
            attempt: self.attempt,
            last_cause: self.last_cause.clone(),
            last_restart_latency: self.last_latency,
            uptime,
        }
    }
}

// ===== impl Actor / Handlers =====

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if !self.deferred {
            self.enqueue(Task::StartAll, ctx);
        }
    }
}

impl Handler<ChildReady> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: ChildReady, ctx: &mut Context<Self>) {
        self.on_ready(msg, ctx);
    }
}

impl Handler<ChildExited> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: ChildExited, ctx: &mut Context<Self>) {
        self.on_exit(msg, ctx);
    }
}

impl Handler<AddChild> for Supervisor {
    type Result = ResponseFuture<Result<(), Error>>;

    fn handle(&mut self, AddChild(spec): AddChild, ctx: &mut Context<Self>) -> Self::Result {
        let refused = if self.phase == SupervisorPhase::ShuttingDown {
            Some(Err(Error::ShuttingDown))
        } else if self.index(&spec.id).is_some() {
            Some(Err(Error::DuplicateChild {
                id: spec.id.clone(),
            }))
        } else {
            None
        };
        if let Some(result) = refused {
            return Box::pin(async move { result });
        }
        let id = spec.id.clone();
        self.push_child(spec);
        if self.phase == SupervisorPhase::Idle {
            return Box::pin(async { Ok(()) });
        }
        let (reply, rx) = oneshot::channel();
        self.enqueue(Task::Add { id, reply }, ctx);
        Box::pin(async move { rx.await.unwrap_or(Err(Error::ShuttingDown)) })
    }
}

impl Handler<RemoveChild> for Supervisor {
    type Result = ResponseFuture<Result<StopOutcome, Error>>;

    fn handle(&mut self, msg: RemoveChild, ctx: &mut Context<Self>) -> Self::Result {
        let Some(index) = self.index(&msg.id) else {
            return Box::pin(async move { Err(Error::UnknownChild { id: msg.id }) });
        };
        match self.phase {
            SupervisorPhase::ShuttingDown => Box::pin(async { Err(Error::ShuttingDown) }),
            SupervisorPhase::Idle => {
                self.remove_child(index);
                Box::pin(async { Ok(StopOutcome::NotRunning) })
            }
            SupervisorPhase::Starting | SupervisorPhase::Running => {
                let (reply, rx) = oneshot::channel();
                self.enqueue(Task::Remove { id: msg.id, reply }, ctx);
                Box::pin(async move { rx.await.unwrap_or(Err(Error::ShuttingDown)) })
            }
        }
    }
}

impl Handler<Restart> for Supervisor {
    type Result = ResponseFuture<Result<(), Error>>;

    fn handle(&mut self, msg: Restart, ctx: &mut Context<Self>) -> Self::Result {
        let refused = match self.phase {
            SupervisorPhase::ShuttingDown => Some(Error::ShuttingDown),
            SupervisorPhase::Idle => Some(Error::NotStarted),
            _ if self.index(&msg.id).is_none() => Some(Error::UnknownChild { id: msg.id.clone() }),
            _ => None,
        };
        if let Some(error) = refused {
            return Box::pin(async move { Err(error) });
        }
        let (reply, rx) = oneshot::channel();
        self.enqueue(Task::Restart { id: msg.id, reply }, ctx);
        Box::pin(async move { rx.await.unwrap_or(Err(Error::ShuttingDown)) })
    }
}

impl Handler<Subscribe> for Supervisor {
    type Result = ();

    fn handle(&mut self, Subscribe(subscriber): Subscribe, _: &mut Context<Self>) {
        self.subscribers.push(subscriber);
    }
}

impl Handler<SubscribeChild> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: SubscribeChild, _: &mut Context<Self>) {
        self.child_subscribers
            .entry(msg.id)
            .or_default()
            .push(msg.subscriber);
    }
}

impl Handler<WhichChildren> for Supervisor {
    type Result = MessageResult<WhichChildren>;

    fn handle(&mut self, _: WhichChildren, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.status().children)
    }
}

impl Handler<GetStatus> for Supervisor {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.status())
    }
}

impl Handler<Shutdown> for Supervisor {
    type Result = ResponseFuture<ShutdownReport>;

    fn handle(&mut self, _: Shutdown, ctx: &mut Context<Self>) -> Self::Result {
        let (reply, rx) = oneshot::channel();
        self.begin_shutdown(Task::Shutdown(ShutdownReply::Owner(reply)), ctx);
        Box::pin(async move { rx.await.unwrap_or_default() })
    }
}

// ===== impl child side: a supervisor under a supervisor =====

impl Handler<StartChild> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: StartChild, ctx: &mut Context<Self>) {
        self.parent = Some(msg.reporter);
        self.enqueue(Task::StartAll, ctx);
    }
}

impl Handler<RestartChild> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: RestartChild, ctx: &mut Context<Self>) {
        self.parent = Some(msg.reporter);
        self.enqueue(Task::StartAll, ctx);
    }
}

impl Handler<StopChild> for Supervisor {
    type Result = ResponseFuture<ChildStopped>;

    fn handle(&mut self, _: StopChild, ctx: &mut Context<Self>) -> Self::Result {
        let (reply, rx) = oneshot::channel();
        self.begin_shutdown(Task::Shutdown(ShutdownReply::Parent(reply)), ctx);
        Box::pin(async move { rx.await.unwrap_or(ChildStopped::Forced) })
    }
}
