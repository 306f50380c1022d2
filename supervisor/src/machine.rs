//! The supervisor's decisions as a plain state machine: inputs in, commands
//! out, no actix. The [`Supervisor`](crate::Supervisor) actor feeds it the
//! messages it receives and carries out the commands it returns.
//!
//! # Invariants
//!
//! 1. **One decision per exit.** Every [`Input::Exited`] of a child's current
//!    generation, while the child is starting or running, gets exactly one
//!    [`Command::Verdict`]: a restart (then a [`Command::Start`] follows,
//!    unless a later `NoRestart` verdict cancels it) or no restart, with the
//!    reason. Exits of older generations, and exits while the supervisor is
//!    stopping the child, are expected and ignored.
//! 2. **A removal is never an exit.** [`Input::Remove`] forgets the child
//!    (after stopping it if it is up) without counting a restart, without a
//!    strategy, and without any sibling noticing; it never waits behind the
//!    job queue, and it releases any job waiting for that child.
//! 3. **Control work runs one job at a time**, in arrival order: starts,
//!    restart cycles, owner restarts, shutdown. A job waits for at most one
//!    thing (a child's readiness or a stop reply). Backoff delays run outside
//!    the queue, as timers. In a concurrent start
//!    ([`StartOrder::Concurrent`]), the jobs that start the children and add
//!    a child wait for nothing: every child starts at once.
//! 4. **Nothing left hanging.** Every ticket (a reply the actor holds) is
//!    answered exactly once; a child waiting for a restart that will not come
//!    is told so; when the actor is to stop, every queued request is
//!    answered first.
//! 5. **No quadratic path.** Children are found by id in a hash map and kept
//!    in start order in a B-tree keyed by registration number, so adding or
//!    removing one costs `O(log n)` whatever the order.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::solo::{Decision, Pacing};
use crate::{
    ChildExit, ChildState, ChildStatus, ChildStopped, Error, NoRestart, RestartPolicy,
    ShutdownReport, StartOrder, StopOutcome, StopReason, Strategy, SupervisorConfig,
    SupervisorEvent, SupervisorPhase, SupervisorStatus, Verdict,
};

/// What the machine needs to know of a child: no recipients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChildPlan {
    /// Shared with the actor's map of recipients: one allocation per id.
    pub(crate) id: Arc<str>,
    pub(crate) restart: RestartPolicy,
    pub(crate) shutdown: Duration,
    pub(crate) restart_on_start_failure: bool,
}

/// Who asked for a shutdown: the owner, or a parent removing us, stops the
/// actor; a parent's stop leaves it idle for a later restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShutdownBy {
    Owner,
    Parent,
    ParentRemoval,
}

/// Everything that can happen to a supervisor. `T` is the ticket of a reply
/// the actor holds (a oneshot sender; a number in tests).
#[derive(Debug)]
pub(crate) enum Input<T> {
    /// Start the children in order: the actor started, or the parent said
    /// [`StartChild`](crate::StartChild).
    StartAll,
    /// The parent restarts this subtree ([`RestartChild`](crate::RestartChild)):
    /// as OTP re-runs a supervisor's init, children added at run time are
    /// forgotten, then the others start in order.
    ParentRestart,
    /// Register a child the actor has admitted (see [`Machine::admits`]).
    Add {
        plan: ChildPlan,
        ticket: T,
    },
    Remove {
        id: String,
        ticket: T,
    },
    Restart {
        id: String,
        ticket: T,
    },
    Shutdown {
        ticket: T,
        by: ShutdownBy,
    },
    Ready {
        id: String,
        generation: u64,
    },
    Exited {
        id: String,
        generation: u64,
        exit: ChildExit,
    },
    /// The reply to a [`Command::Stop`] (or its timeout).
    Stopped {
        id: String,
        generation: u64,
        outcome: StopOutcome,
    },
    /// A [`Command::Schedule`] timer fired.
    Timer {
        token: u64,
    },
    /// Our parent will not restart us: the actor stops, and the children
    /// waiting for a start are told none will come.
    Abandoned {
        why: NoRestart,
    },
    /// A [`Command::Start`] found the child's mailbox closed.
    Gone {
        id: String,
        generation: u64,
    },
    /// The child closes itself ([`ChildLeft`](crate::ChildLeft)).
    Left {
        id: String,
    },
}

/// What the actor must do.
#[derive(Debug, PartialEq)]
pub(crate) enum Command<T> {
    /// Send [`StartChild`](crate::StartChild) (`attempt: None`) or
    /// [`RestartChild`](crate::RestartChild), with a reporter for `generation`.
    Start {
        id: String,
        generation: u64,
        attempt: Option<u32>,
    },
    /// Send [`StopChild`](crate::StopChild) and feed the outcome back as
    /// [`Input::Stopped`].
    Stop {
        id: String,
        generation: u64,
        timeout: Duration,
        reason: StopReason,
    },
    /// Send a [`ChildVerdict`](crate::ChildVerdict).
    Verdict {
        id: String,
        generation: u64,
        verdict: Verdict,
    },
    Emit(SupervisorEvent),
    Answer {
        ticket: T,
        answer: Answer,
    },
    /// Feed [`Input::Timer`] back after `delay`.
    Schedule {
        token: u64,
        delay: Duration,
    },
    /// The child is gone: drop its recipients and subscribers.
    Forget {
        id: String,
    },
    ReadyToParent,
    FailToParent {
        reason: String,
    },
    StopActor,
}

/// The reply a ticket gets.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Answer {
    Added(Result<(), Error>),
    Removed(Result<StopOutcome, Error>),
    Restarted(Result<(), Error>),
    ShutDown(ShutdownReport),
    StoppedByParent(ChildStopped),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RestartInfo {
    attempt: u32,
    since: Instant,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Registered, never started (or not since the parent restarted us).
    Pending,
    Starting {
        restart: Option<RestartInfo>,
    },
    Running {
        since: Instant,
    },
    /// A stop was sent; `remove` forgets the child once it replies.
    Stopping {
        reason: StopReason,
        remove: bool,
    },
    /// Exited; a restart verdict was sent and the strategy's stop phase is
    /// queued.
    Failed {
        info: RestartInfo,
        delay: Duration,
    },
    /// Part of a restart cycle, waiting for its timer.
    Waiting {
        token: u64,
        info: RestartInfo,
    },
    /// Stopped so that it starts again within the current job (a strategy's
    /// sibling, an owner's restart).
    Held,
    /// Stopped by a shutdown or give-up; no restart pending.
    Stopped,
    /// Ended on its own, or failed to start; no restart pending.
    Exited,
}

impl State {
    fn is_up(&self) -> bool {
        matches!(self, State::Starting { .. } | State::Running { .. })
    }

    fn awaits_restart(&self) -> bool {
        matches!(
            self,
            State::Failed { .. } | State::Waiting { .. } | State::Held
        )
    }
}

#[derive(Debug)]
struct Child<T> {
    id: Arc<str>,
    restart: RestartPolicy,
    shutdown: Duration,
    restart_on_start_failure: bool,
    order: u64,
    state: State,
    generation: u64,
    attempt: u32,
    restarts: u64,
    last_cause: Option<String>,
    last_latency: Option<Duration>,
    started_once: bool,
    /// Added while the supervisor ran: forgotten when the parent restarts it.
    dynamic: bool,
    removals: Vec<T>,
}

#[derive(Debug)]
enum Task<T> {
    StartAll,
    Add { id: String, ticket: T },
    Restart { id: String, ticket: T },
    Failure { id: String, generation: u64 },
    Resume { token: u64 },
    Shutdown { ticket: T, by: ShutdownBy },
    GiveUp { reason: String, restarts: u32 },
}

#[derive(Debug)]
struct Job<T> {
    steps: VecDeque<Step>,
    awaiting: Awaiting,
    done: Done<T>,
    stopped: Vec<(String, StopOutcome)>,
    error: Option<Error>,
}

#[derive(Debug)]
enum Step {
    Stop {
        id: String,
        reason: StopReason,
    },
    /// Start the child; with a token, only if it still waits in that cycle.
    Start {
        id: String,
        cycle: Option<u64>,
    },
}

#[derive(Debug, PartialEq, Eq)]
enum Awaiting {
    Nothing,
    Stop { id: String, generation: u64 },
    Ready { id: String, generation: u64 },
}

#[derive(Debug)]
enum Done<T> {
    StartAll,
    Add(T, String),
    Restart(T, String),
    Failure {
        ids: Vec<String>,
        info: RestartInfo,
        delay: Duration,
    },
    Resume,
    Shutdown(T, ShutdownBy),
    GiveUp {
        reason: String,
        restarts: u32,
    },
}

impl<T> Job<T> {
    fn new(steps: VecDeque<Step>, done: Done<T>) -> Self {
        Job {
            steps,
            awaiting: Awaiting::Nothing,
            done,
            stopped: Vec::new(),
            error: None,
        }
    }
}

/// The supervisor's state and decisions.
pub(crate) struct Machine<T> {
    config: SupervisorConfig,
    children: HashMap<Arc<str>, Child<T>>,
    order: BTreeMap<u64, Arc<str>>,
    next_order: u64,
    phase: SupervisorPhase,
    /// Why children are not restarted while shutting down.
    closing: Option<NoRestart>,
    /// Restarts in the intensity window, and the jitter's generator.
    pacing: Pacing,
    has_parent: bool,
    queue: VecDeque<Task<T>>,
    current: Option<Job<T>>,
    cycles: HashMap<u64, Vec<String>>,
    next_generation: u64,
    next_token: u64,
    now: Instant,
    out: Vec<Command<T>>,
}

// ===== impl Machine: construction and queries =====

impl<T: fmt::Debug> Machine<T> {
    pub(crate) fn new(config: SupervisorConfig, now: Instant) -> Self {
        Machine {
            pacing: Pacing::new(config.seed),
            config,
            children: HashMap::new(),
            order: BTreeMap::new(),
            next_order: 0,
            phase: SupervisorPhase::Idle,
            closing: None,
            has_parent: false,
            queue: VecDeque::new(),
            current: None,
            cycles: HashMap::new(),
            next_generation: 1,
            next_token: 1,
            now,
            out: Vec::new(),
        }
    }

    /// Whether a child with this id may be added now.
    pub(crate) fn admits(&self, id: &str) -> Result<(), Error> {
        if self.phase == SupervisorPhase::ShuttingDown {
            Err(Error::ShuttingDown)
        } else if self.children.contains_key(id) {
            Err(Error::DuplicateChild { id: id.to_owned() })
        } else {
            Ok(())
        }
    }

    /// Registers an initial child (before the supervisor starts).
    pub(crate) fn register(&mut self, plan: ChildPlan) {
        self.insert(plan, false);
    }

    /// From now on, the parent is told when the children are up or given up on.
    pub(crate) fn set_parent(&mut self) {
        self.has_parent = true;
    }

    pub(crate) fn phase(&self) -> SupervisorPhase {
        self.phase
    }

    pub(crate) fn len(&self) -> usize {
        self.children.len()
    }

    pub(crate) fn queued(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn config(&self) -> &SupervisorConfig {
        &self.config
    }

    pub(crate) fn status(&mut self, now: Instant) -> SupervisorStatus {
        SupervisorStatus {
            phase: self.phase,
            strategy: self.config.strategy,
            restarts_in_window: self.pacing.restarts.count(&self.config.intensity, now) as u64,
            children: self
                .order
                .values()
                .filter_map(|id| self.children.get(id))
                .map(|c| c.status(now))
                .collect(),
        }
    }

    /// Handles one input; returns the commands to carry out, in order.
    #[cfg(test)]
    pub(crate) fn handle(&mut self, input: Input<T>, now: Instant) -> Vec<Command<T>> {
        let mut out = Vec::new();
        self.handle_into(input, now, &mut out);
        out
    }

    /// Handles one input; appends the commands to carry out, in order.
    pub(crate) fn handle_into(&mut self, input: Input<T>, now: Instant, out: &mut Vec<Command<T>>) {
        self.now = now;
        match input {
            Input::StartAll => self.enqueue(Task::StartAll),
            Input::ParentRestart => self.parent_restart(),
            Input::Add { plan, ticket } => self.add(plan, ticket),
            Input::Remove { id, ticket } => self.remove(id, ticket),
            Input::Restart { id, ticket } => self.restart(id, ticket),
            Input::Shutdown { ticket, by } => self.begin_shutdown(Task::Shutdown { ticket, by }),
            Input::Ready { id, generation } => self.on_ready(&id, generation),
            Input::Exited {
                id,
                generation,
                exit,
            } => self.on_exit(&id, generation, exit),
            Input::Stopped {
                id,
                generation,
                outcome,
            } => self.on_stopped(&id, generation, outcome),
            Input::Timer { token } => {
                if self.cycles.contains_key(&token) {
                    self.enqueue(Task::Resume { token });
                }
            }
            Input::Gone { id, generation } => self.gone(&id, generation),
            Input::Left { id } => self.left(&id),
            Input::Abandoned { why } => {
                if self.phase == SupervisorPhase::Idle && self.has_parent {
                    self.closing = Some(why);
                    self.stop_actor();
                }
            }
        }
        out.append(&mut self.out);
    }
}

// ===== impl Machine: inputs =====

impl<T: fmt::Debug> Machine<T> {
    fn insert(&mut self, plan: ChildPlan, dynamic: bool) {
        let order = self.next_order;
        self.next_order += 1;
        let id = plan.id;
        self.order.insert(order, Arc::clone(&id));
        self.children.insert(
            Arc::clone(&id),
            Child {
                id,
                restart: plan.restart,
                shutdown: plan.shutdown,
                restart_on_start_failure: plan.restart_on_start_failure,
                order,
                state: State::Pending,
                generation: 0,
                attempt: 0,
                restarts: 0,
                last_cause: None,
                last_latency: None,
                started_once: false,
                dynamic,
                removals: Vec::new(),
            },
        );
    }

    /// Drops a child from every map, answering its pending removals.
    fn forget(&mut self, id: &str, outcome: StopOutcome) {
        let Some(child) = self.children.remove(id) else {
            return;
        };
        self.order.remove(&child.order);
        for ticket in child.removals {
            self.out.push(Command::Answer {
                ticket,
                answer: Answer::Removed(Ok(outcome)),
            });
        }
        self.out.push(Command::Forget { id: id.to_owned() });
    }

    fn verdict(&mut self, id: &str, generation: u64, verdict: Verdict) {
        self.out.push(Command::Verdict {
            id: id.to_owned(),
            generation,
            verdict,
        });
    }

    fn emit(&mut self, event: SupervisorEvent) {
        self.out.push(Command::Emit(event));
    }

    fn answer(&mut self, ticket: T, answer: Answer) {
        self.out.push(Command::Answer { ticket, answer });
    }

    fn add(&mut self, plan: ChildPlan, ticket: T) {
        if let Err(e) = self.admits(&plan.id) {
            self.answer(ticket, Answer::Added(Err(e)));
            return;
        }
        let id = plan.id.to_string();
        if self.phase == SupervisorPhase::Idle {
            // Starts with the others, when the parent starts us.
            self.insert(plan, false);
            self.answer(ticket, Answer::Added(Ok(())));
            return;
        }
        self.insert(plan, true);
        self.enqueue(Task::Add { id, ticket });
    }

    fn parent_restart(&mut self) {
        let dynamic: Vec<String> = self
            .order
            .values()
            .filter(|id| self.children.get(*id).is_some_and(|c| c.dynamic))
            .map(|id| id.to_string())
            .collect();
        for id in dynamic {
            // Everything but an exited child may still wait for a start.
            if let Some(child) = self.children.get(id.as_str()) {
                if !matches!(child.state, State::Exited) {
                    let generation = child.generation;
                    self.verdict(&id, generation, Verdict::NoRestart(NoRestart::Removed));
                }
            }
            self.forget(&id, StopOutcome::NotRunning);
        }
        self.enqueue(Task::StartAll);
    }

    fn remove(&mut self, id: String, ticket: T) {
        let Some(child) = self.children.get_mut(id.as_str()) else {
            self.answer(ticket, Answer::Removed(Err(Error::UnknownChild { id })));
            return;
        };
        let generation = child.generation;
        match &mut child.state {
            State::Starting { .. } | State::Running { .. } => {
                child.state = State::Stopping {
                    reason: StopReason::Removed,
                    remove: true,
                };
                child.removals.push(ticket);
                let timeout = child.shutdown;
                self.out.push(Command::Stop {
                    id: id.clone(),
                    generation,
                    timeout,
                    reason: StopReason::Removed,
                });
                self.leave_jobs(&id);
            }
            State::Stopping { remove, .. } => {
                *remove = true;
                child.removals.push(ticket);
                self.leave_jobs(&id);
            }
            state => {
                if matches!(state, State::Pending) || state.awaits_restart() {
                    self.verdict(&id, generation, Verdict::NoRestart(NoRestart::Removed));
                }
                self.answer(ticket, Answer::Removed(Ok(StopOutcome::NotRunning)));
                self.forget(&id, StopOutcome::NotRunning);
                self.leave_jobs(&id);
            }
        }
        self.pump();
    }

    fn restart(&mut self, id: String, ticket: T) {
        let refused = match self.phase {
            SupervisorPhase::ShuttingDown => Some(Error::ShuttingDown),
            SupervisorPhase::Idle => Some(Error::NotStarted),
            _ if !self.children.contains_key(id.as_str()) => {
                Some(Error::UnknownChild { id: id.clone() })
            }
            _ => None,
        };
        match refused {
            Some(e) => self.answer(ticket, Answer::Restarted(Err(e))),
            None => self.enqueue(Task::Restart { id, ticket }),
        }
    }

    /// `id` is gone: a job waiting for it to be ready stops waiting, and a
    /// job that was about it (an add, an owner's restart) answers that it was
    /// removed.
    fn leave_jobs(&mut self, id: &str) {
        if let Some(job) = &mut self.current {
            if matches!(&job.awaiting, Awaiting::Ready { id: awaited, .. } if awaited == id) {
                job.awaiting = Awaiting::Nothing;
            }
            if matches!(&job.done, Done::Add(_, about) | Done::Restart(_, about) if about == id) {
                job.error = Some(Error::ChildRemoved { id: id.to_owned() });
            }
        }
    }

    /// The child closes itself: forgotten at once, sent nothing more.
    fn left(&mut self, id: &str) {
        if !self.children.contains_key(id) {
            return;
        }
        self.leave_jobs(id);
        if let Some(job) = &mut self.current {
            // Its stop reply may never come now: the job moves on.
            if matches!(&job.awaiting, Awaiting::Stop { id: awaited, .. } if awaited == id) {
                job.awaiting = Awaiting::Nothing;
            }
        }
        self.forget(id, StopOutcome::NotRunning);
        self.pump();
    }

    /// The child's actor is gone (its mailbox closed when it was to be
    /// started): it can never run again, so it is forgotten like a removal,
    /// not counted as a failure.
    fn gone(&mut self, id: &str, generation: u64) {
        let Some(child) = self.children.get(id) else {
            return;
        };
        if child.generation != generation || !matches!(child.state, State::Starting { .. }) {
            return;
        }
        self.leave_jobs(id);
        self.emit(SupervisorEvent::ChildStopped {
            id: id.to_owned(),
            outcome: StopOutcome::Unreachable,
        });
        self.forget(id, StopOutcome::Unreachable);
        self.pump();
    }

    fn on_ready(&mut self, id: &str, generation: u64) {
        let now = self.now;
        let Some(child) = self.children.get_mut(id) else {
            return;
        };
        let State::Starting { restart } = child.state else {
            return;
        };
        if child.generation != generation {
            return;
        }
        child.state = State::Running { since: now };
        let event = match restart {
            Some(info) => {
                let latency = now.saturating_duration_since(info.since);
                child.last_latency = Some(latency);
                SupervisorEvent::ChildRestarted {
                    id: id.to_owned(),
                    attempt: info.attempt,
                    latency,
                }
            }
            None => SupervisorEvent::ChildStarted { id: id.to_owned() },
        };
        self.emit(event);
        let awaited = Awaiting::Ready {
            id: id.to_owned(),
            generation,
        };
        if let Some(job) = &mut self.current {
            if job.awaiting == awaited {
                job.awaiting = Awaiting::Nothing;
                self.pump();
            }
        }
    }

    fn on_exit(&mut self, id: &str, generation: u64, exit: ChildExit) {
        let now = self.now;
        let Some(child) = self.children.get_mut(id) else {
            return;
        };
        if child.generation != generation {
            return;
        }
        let (ready_for, was_first_start) = match child.state {
            State::Running { since } => (Some(now.saturating_duration_since(since)), false),
            State::Starting { restart } => (None, restart.is_none()),
            _ => return,
        };
        child.state = State::Exited;
        let cause = match &exit {
            ChildExit::Normal => None,
            ChildExit::Failed { cause } => Some(cause.clone()),
        };
        match &cause {
            Some(cause) => {
                child.last_cause = Some(cause.clone());
                self.emit(SupervisorEvent::ChildFailed {
                    id: id.to_owned(),
                    cause: cause.clone(),
                });
            }
            None => self.emit(SupervisorEvent::ChildExited { id: id.to_owned() }),
        }

        let awaited = Awaiting::Ready {
            id: id.to_owned(),
            generation,
        };
        if self.current.as_ref().is_some_and(|j| j.awaiting == awaited) {
            let cause = crate::Cause(cause.unwrap_or_else(|| "exited before it was ready".into()));
            let failed = Error::ChildFailedToStart {
                id: id.to_owned(),
                cause: cause.clone(),
            };
            let no_start = Verdict::NoRestart(NoRestart::FailedToStart);
            if let Some(mut job) = self.current.take() {
                match job.done {
                    Done::Add(ticket, _) => {
                        self.verdict(id, generation, no_start);
                        self.forget(id, StopOutcome::NotRunning);
                        self.answer(ticket, Answer::Added(Err(failed)));
                        self.pump();
                        return;
                    }
                    Done::Restart(ticket, _) => {
                        // OTP's restart_child: the child stays stopped, the
                        // supervisor carries on.
                        self.verdict(id, generation, no_start);
                        self.answer(ticket, Answer::Restarted(Err(failed)));
                        self.pump();
                        return;
                    }
                    Done::StartAll => {
                        self.verdict(id, generation, no_start);
                        let reason = format!("child `{id}` failed to start: {cause}");
                        self.begin_shutdown(Task::GiveUp {
                            reason,
                            restarts: 0,
                        });
                        return;
                    }
                    // A restart cycle goes on with its other children; this
                    // failure is decided below like any other.
                    _ => {
                        job.awaiting = Awaiting::Nothing;
                        self.current = Some(job);
                    }
                }
            }
        }

        // A first start that nobody waited for (a concurrent start) fails
        // alone: the child is not restarted, and is forgotten.
        if was_first_start
            && self.config.start_order == StartOrder::Concurrent
            && !self.children[id].restart_on_start_failure
            && self.phase != SupervisorPhase::ShuttingDown
        {
            self.verdict(id, generation, Verdict::NoRestart(NoRestart::FailedToStart));
            self.forget(id, StopOutcome::NotRunning);
            self.pump();
            return;
        }

        let policy = self.children[id].restart;
        if self.phase == SupervisorPhase::ShuttingDown {
            let why = self.closing.clone().unwrap_or(NoRestart::ShuttingDown);
            self.verdict(id, generation, Verdict::NoRestart(why));
            self.pump();
            return;
        }
        let Some(child) = self.children.get_mut(id) else {
            return;
        };
        let decision = self.pacing.decide(
            &self.config,
            policy,
            &exit,
            &mut child.attempt,
            ready_for,
            now,
        );
        let (attempt, delay) = match decision {
            Decision::Keep(why) => {
                self.verdict(id, generation, Verdict::NoRestart(why));
                if policy == RestartPolicy::Temporary {
                    self.forget(id, StopOutcome::NotRunning);
                }
                self.pump();
                return;
            }
            Decision::GiveUp { reason } => {
                self.verdict(
                    id,
                    generation,
                    Verdict::NoRestart(NoRestart::GaveUp {
                        reason: reason.clone(),
                    }),
                );
                self.begin_shutdown(Task::GiveUp {
                    reason,
                    restarts: self.config.intensity.max_restarts.saturating_add(1),
                });
                return;
            }
            Decision::Restart { attempt, delay } => (attempt, delay),
        };
        child.state = State::Failed {
            info: RestartInfo {
                attempt,
                since: now,
            },
            delay,
        };
        self.verdict(id, generation, Verdict::Restart { attempt, delay });
        self.enqueue(Task::Failure {
            id: id.to_owned(),
            generation,
        });
    }

    fn on_stopped(&mut self, id: &str, generation: u64, outcome: StopOutcome) {
        let Some(child) = self.children.get_mut(id) else {
            return;
        };
        let State::Stopping { reason, remove } = &child.state else {
            return;
        };
        if child.generation != generation {
            return;
        }
        let (restarts, remove) = (reason.restarts(), *remove);
        self.emit(SupervisorEvent::ChildStopped {
            id: id.to_owned(),
            outcome,
        });
        let shutting_down = self.phase == SupervisorPhase::ShuttingDown;
        if remove {
            self.forget(id, outcome);
        } else if let Some(child) = self.children.get_mut(id) {
            child.state = if restarts && !shutting_down {
                State::Held
            } else {
                State::Stopped
            };
        }
        let awaited = Awaiting::Stop {
            id: id.to_owned(),
            generation,
        };
        if let Some(job) = &mut self.current {
            if job.awaiting == awaited {
                job.awaiting = Awaiting::Nothing;
                job.stopped.push((id.to_owned(), outcome));
            }
        }
        self.pump();
    }
}

// ===== impl Machine: the job queue =====

impl<T: fmt::Debug> Machine<T> {
    fn enqueue(&mut self, task: Task<T>) {
        self.queue.push_back(task);
        self.pump();
    }

    /// Runs queued work until it has to wait for a child or a timer.
    fn pump(&mut self) {
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
                Some(Step::Stop { id, reason }) => {
                    if let Some(generation) = self.begin_stop(&id, reason) {
                        job.awaiting = Awaiting::Stop { id, generation };
                    }
                    self.current = Some(job);
                }
                Some(Step::Start { id, cycle }) => {
                    if self.phase != SupervisorPhase::ShuttingDown {
                        // A concurrent start does not wait for readiness;
                        // restart cycles and RestartChild always do.
                        let together = self.config.start_order == StartOrder::Concurrent
                            && matches!(job.done, Done::StartAll | Done::Add(..));
                        if let Some(generation) = self.begin_start(&id, cycle) {
                            let waits =
                                !self.children[id.as_str()].restart_on_start_failure && !together;
                            if waits {
                                job.awaiting = Awaiting::Ready { id, generation };
                            }
                        }
                    }
                    self.current = Some(job);
                }
                None => self.finish(job),
            }
        }
    }

    fn begin(&mut self, task: Task<T>) -> Option<Job<T>> {
        match task {
            Task::StartAll => {
                let mut steps = VecDeque::new();
                if self.phase == SupervisorPhase::Idle {
                    self.pacing.restarts.clear();
                    steps.extend(self.order.values().map(|id| Step::Start {
                        id: id.to_string(),
                        cycle: None,
                    }));
                }
                self.phase = SupervisorPhase::Starting;
                Some(Job::new(steps, Done::StartAll))
            }
            Task::Add { id, ticket } => {
                if !self.children.contains_key(id.as_str()) {
                    self.answer(ticket, Answer::Added(Err(Error::ChildRemoved { id })));
                    return None;
                }
                Some(Job::new(
                    [Step::Start {
                        id: id.clone(),
                        cycle: None,
                    }]
                    .into(),
                    Done::Add(ticket, id),
                ))
            }
            Task::Restart { id, ticket } => {
                if !self.children.contains_key(id.as_str()) {
                    self.answer(ticket, Answer::Restarted(Err(Error::ChildRemoved { id })));
                    return None;
                }
                Some(Job::new(
                    [
                        Step::Stop {
                            id: id.clone(),
                            reason: StopReason::Restart,
                        },
                        Step::Start {
                            id: id.clone(),
                            cycle: None,
                        },
                    ]
                    .into(),
                    Done::Restart(ticket, id),
                ))
            }
            Task::Failure { id, generation } => self.plan_restart(&id, generation),
            Task::Resume { token } => {
                let ids = self.cycles.remove(&token).unwrap_or_default();
                let steps = ids
                    .into_iter()
                    .map(|id| Step::Start {
                        id,
                        cycle: Some(token),
                    })
                    .collect();
                Some(Job::new(steps, Done::Resume))
            }
            Task::Shutdown { ticket, by } => {
                self.phase = SupervisorPhase::ShuttingDown;
                Some(Job::new(
                    self.stop_all(StopReason::Shutdown),
                    Done::Shutdown(ticket, by),
                ))
            }
            Task::GiveUp { reason, restarts } => Some(Job::new(
                self.stop_all(StopReason::GaveUp {
                    reason: reason.clone(),
                }),
                Done::GiveUp { reason, restarts },
            )),
        }
    }

    fn stop_all(&self, reason: StopReason) -> VecDeque<Step> {
        self.order
            .values()
            .rev()
            .map(|id| Step::Stop {
                id: id.to_string(),
                reason: reason.clone(),
            })
            .collect()
    }

    /// The ids, in start order, that a failure of `id` takes down.
    fn affected(&self, id: &str) -> Vec<String> {
        let Some(failed) = self.children.get(id) else {
            return Vec::new();
        };
        match self.config.strategy {
            Strategy::OneForOne => vec![id.to_owned()],
            Strategy::OneForAll => self.order.values().map(|id| id.to_string()).collect(),
            Strategy::RestForOne => self
                .order
                .range(failed.order..)
                .map(|(_, id)| id.to_string())
                .collect(),
        }
    }

    /// The stop half of a restart cycle: the siblings the strategy takes down
    /// with the failed child, stopped in reverse start order.
    fn plan_restart(&mut self, id: &str, generation: u64) -> Option<Job<T>> {
        let child = self.children.get(id)?;
        let State::Failed { info, delay } = child.state else {
            return None;
        };
        if child.generation != generation {
            return None;
        }
        let mut ids = Vec::new();
        let mut steps = VecDeque::new();
        for sibling_id in self.affected(id) {
            let Some(sibling) = self.children.get(sibling_id.as_str()) else {
                continue;
            };
            if sibling_id == id {
                ids.push(sibling_id);
                continue;
            }
            let involved = sibling.state.is_up() || sibling.state.awaits_restart();
            if !involved {
                continue;
            }
            // OTP: a temporary sibling taken down by the strategy is not restarted.
            if sibling.restart == RestartPolicy::Temporary {
                if sibling.state.awaits_restart() {
                    let generation = sibling.generation;
                    let why = Verdict::NoRestart(NoRestart::Temporary);
                    self.verdict(&sibling_id, generation, why);
                    self.forget(&sibling_id, StopOutcome::NotRunning);
                } else {
                    steps.push_front(Step::Stop {
                        id: sibling_id,
                        reason: StopReason::Removed,
                    });
                }
                continue;
            }
            steps.push_front(Step::Stop {
                id: sibling_id.clone(),
                reason: StopReason::Restart,
            });
            ids.push(sibling_id);
        }
        Some(Job::new(steps, Done::Failure { ids, info, delay }))
    }

    /// Starts a child that is not up; returns the new generation.
    fn begin_start(&mut self, id: &str, cycle: Option<u64>) -> Option<u64> {
        let now = self.now;
        let generation = self.next_generation;
        let child = self.children.get_mut(id)?;
        match (&child.state, cycle) {
            (State::Starting { .. } | State::Running { .. } | State::Stopping { .. }, _) => {
                return None
            }
            (State::Waiting { token, .. }, Some(cycle)) if *token != cycle => return None,
            (state, Some(_)) if !matches!(state, State::Waiting { .. }) => return None,
            _ => {}
        }
        self.next_generation += 1;
        let info = match child.state {
            State::Waiting { info, .. } | State::Failed { info, .. } => info,
            _ => RestartInfo {
                attempt: child.attempt,
                since: now,
            },
        };
        let restart = child.started_once.then_some(info);
        child.generation = generation;
        child.started_once = true;
        child.state = State::Starting { restart };
        if restart.is_some() {
            child.restarts += 1;
        }
        self.out.push(Command::Start {
            id: id.to_owned(),
            generation,
            attempt: restart.map(|info| info.attempt),
        });
        Some(generation)
    }

    /// Stops a child that is up (returns the generation whose stop reply to
    /// wait for); settles one that is not.
    fn begin_stop(&mut self, id: &str, reason: StopReason) -> Option<u64> {
        let child = self.children.get_mut(id)?;
        let generation = child.generation;
        match &child.state {
            State::Starting { .. } | State::Running { .. } => {
                let remove = reason == StopReason::Removed;
                child.state = State::Stopping {
                    reason: reason.clone(),
                    remove,
                };
                self.out.push(Command::Stop {
                    id: id.to_owned(),
                    generation,
                    timeout: child.shutdown,
                    reason,
                });
                Some(generation)
            }
            // Already being stopped (a removal, say): wait for that stop.
            State::Stopping { .. } => Some(generation),
            state if state.awaits_restart() => {
                // A shutdown leaves it stopped; whether a restart ever comes
                // is told when the supervisor itself is done (`stop_actor`).
                child.state = if reason.restarts() {
                    State::Held
                } else {
                    State::Stopped
                };
                None
            }
            _ => None,
        }
    }

    fn finish(&mut self, job: Job<T>) {
        match job.done {
            Done::StartAll => {
                self.phase = SupervisorPhase::Running;
                if self.has_parent {
                    self.out.push(Command::ReadyToParent);
                }
            }
            Done::Add(ticket, _) => {
                let result = job.error.map_or(Ok(()), Err);
                self.answer(ticket, Answer::Added(result));
            }
            Done::Restart(ticket, _) => {
                let result = job.error.map_or(Ok(()), Err);
                self.answer(ticket, Answer::Restarted(result));
            }
            Done::Failure { ids, info, delay } => {
                if self.phase == SupervisorPhase::ShuttingDown {
                    return;
                }
                let token = self.next_token;
                self.next_token += 1;
                let mut waiting = Vec::new();
                for id in ids {
                    let Some(child) = self.children.get_mut(id.as_str()) else {
                        continue;
                    };
                    if child.state.awaits_restart() {
                        child.state = State::Waiting { token, info };
                        self.out
                            .push(Command::Emit(SupervisorEvent::ChildRestarting {
                                id: id.clone(),
                                attempt: info.attempt,
                                delay,
                            }));
                        waiting.push(id);
                    }
                }
                if waiting.is_empty() {
                    return;
                }
                self.cycles.insert(token, waiting);
                if delay.is_zero() {
                    self.queue.push_front(Task::Resume { token });
                } else {
                    self.out.push(Command::Schedule { token, delay });
                }
            }
            Done::Resume => {}
            Done::Shutdown(ticket, by) => {
                let report = ShutdownReport {
                    stopped: job.stopped,
                };
                match by {
                    ShutdownBy::Owner => {
                        self.answer(ticket, Answer::ShutDown(report));
                        self.stop_actor();
                    }
                    ShutdownBy::Parent | ShutdownBy::ParentRemoval => {
                        self.phase = SupervisorPhase::Idle;
                        self.closing = None;
                        let forced = report.stopped.iter().any(|(_, o)| {
                            !matches!(o, StopOutcome::Gracefully | StopOutcome::NotRunning)
                        });
                        let stopped = if forced {
                            ChildStopped::Forced
                        } else {
                            ChildStopped::Gracefully
                        };
                        self.answer(ticket, Answer::StoppedByParent(stopped));
                        if by == ShutdownBy::ParentRemoval {
                            self.closing = Some(NoRestart::Removed);
                            self.stop_actor();
                        }
                    }
                }
            }
            Done::GiveUp { reason, restarts } => {
                self.emit(SupervisorEvent::GaveUp {
                    restarts,
                    within: self.config.intensity.within,
                    reason: reason.clone(),
                });
                if self.has_parent {
                    self.phase = SupervisorPhase::Idle;
                    self.closing = None;
                    self.pacing.restarts.clear();
                    self.out.push(Command::FailToParent {
                        reason: format!("gave up: {reason}"),
                    });
                } else {
                    self.stop_actor();
                }
            }
        }
    }

    /// Puts a shutdown or give-up first in line: queued work is refused, and
    /// a job blocked on a child's readiness is abandoned, since that child
    /// may never become ready.
    fn begin_shutdown(&mut self, task: Task<T>) {
        if self.phase == SupervisorPhase::ShuttingDown {
            if matches!(task, Task::Shutdown { .. }) {
                self.queue.push_back(task);
                self.pump();
            }
            return;
        }
        self.phase = SupervisorPhase::ShuttingDown;
        self.closing = Some(match &task {
            Task::GiveUp { reason, .. } => NoRestart::GaveUp {
                reason: reason.clone(),
            },
            _ => NoRestart::ShuttingDown,
        });
        if let Some(mut job) = self.current.take() {
            if matches!(job.awaiting, Awaiting::Ready { .. }) {
                self.refuse(job.done, Error::ShuttingDown);
            } else {
                job.steps.retain(|s| matches!(s, Step::Stop { .. }));
                self.current = Some(job);
            }
        }
        let mut kept = VecDeque::new();
        for queued in std::mem::take(&mut self.queue) {
            match queued {
                Task::Add { id, ticket } => {
                    if self
                        .children
                        .get(id.as_str())
                        .is_some_and(|c| matches!(c.state, State::Pending))
                    {
                        let why = Verdict::NoRestart(NoRestart::ShuttingDown);
                        self.verdict(&id, 0, why);
                        self.forget(&id, StopOutcome::NotRunning);
                    }
                    self.answer(ticket, Answer::Added(Err(Error::ShuttingDown)));
                }
                Task::Restart { ticket, .. } => {
                    self.answer(ticket, Answer::Restarted(Err(Error::ShuttingDown)));
                }
                Task::Shutdown { .. } => kept.push_back(queued),
                Task::StartAll
                | Task::Failure { .. }
                | Task::Resume { .. }
                | Task::GiveUp { .. } => {}
            }
        }
        self.queue = kept;
        self.queue.push_front(task);
        self.pump();
    }

    fn refuse(&mut self, done: Done<T>, error: Error) {
        match done {
            Done::Add(ticket, _) => self.answer(ticket, Answer::Added(Err(error))),
            Done::Restart(ticket, _) => self.answer(ticket, Answer::Restarted(Err(error))),
            _ => {}
        }
    }

    /// The actor is about to stop: every child that may still wait for a
    /// start learns that none will come, and queued requests are answered.
    fn stop_actor(&mut self) {
        let why = self.closing.clone().unwrap_or(NoRestart::ShuttingDown);
        let waiting: Vec<(String, u64)> = self
            .order
            .values()
            .filter_map(|id| self.children.get(id))
            .filter(|c| !matches!(c.state, State::Exited))
            .map(|c| (c.id.to_string(), c.generation))
            .collect();
        for (id, generation) in waiting {
            self.verdict(&id, generation, Verdict::NoRestart(why.clone()));
        }
        for task in std::mem::take(&mut self.queue) {
            match task {
                Task::Shutdown { ticket, by } => {
                    let answer = match by {
                        ShutdownBy::Owner => Answer::ShutDown(ShutdownReport::default()),
                        ShutdownBy::Parent | ShutdownBy::ParentRemoval => {
                            Answer::StoppedByParent(ChildStopped::Gracefully)
                        }
                    };
                    self.answer(ticket, answer);
                }
                Task::Add { ticket, .. } => {
                    self.answer(ticket, Answer::Added(Err(Error::ShuttingDown)))
                }
                Task::Restart { ticket, .. } => {
                    self.answer(ticket, Answer::Restarted(Err(Error::ShuttingDown)))
                }
                _ => {}
            }
        }
        self.out.push(Command::StopActor);
    }
}

// ===== impl Child =====

impl<T> Child<T> {
    fn status(&self, now: Instant) -> ChildStatus {
        let (state, uptime) = match self.state {
            State::Pending => (ChildState::Pending, None),
            State::Starting { .. } => (ChildState::Starting, None),
            State::Running { since } => (
                ChildState::Running,
                Some(now.saturating_duration_since(since)),
            ),
            State::Failed { .. } => (ChildState::Failed, None),
            State::Waiting { .. } => (ChildState::Restarting, None),
            State::Stopping { .. } => (ChildState::Stopping, None),
            State::Held | State::Stopped => (ChildState::Stopped, None),
            State::Exited => (ChildState::Exited, None),
        };
        ChildStatus {
            id: self.id.to_string(),
            restart: self.restart,
            state,
            restarts: self.restarts,
            attempt: u64::from(self.attempt),
            last_cause: self.last_cause.clone(),
            last_restart_latency: self.last_latency,
            uptime,
        }
    }
}

impl<T> fmt::Debug for Machine<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Machine")
            .field("phase", &self.phase)
            .field("children", &self.children.len())
            .field("queued", &self.queue.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
