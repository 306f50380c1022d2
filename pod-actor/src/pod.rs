use std::time::Duration;

use actix::{
    Actor, ActorFutureExt, Addr, Arbiter, AsyncContext, Context, Handler, MessageResult,
    ResponseActFuture, ResponseFuture, SpawnHandle, WeakRecipient, WrapFuture,
};
use futures::channel::oneshot;
use runtime_actor::{
    FailureCause, Placement, ProcessRuntime, RequestError, Runtime, RuntimeActor, RuntimeConfig,
    RuntimeEvent, RuntimeFactory, RuntimeHandle,
};
use supervisor::{
    AddChild, ChildExit, ChildReporter, ChildSpec, ChildStopped, RemoveChild, RestartChild,
    Shutdown, StartChild, StopChild, SubscribeChild, Supervisor, SupervisorEvent,
};
use tokio::time::Instant;

use crate::config::{PlacementKind, PodConfig, RuntimeSpec};
use crate::error::{CallError, PodError};
use crate::messages::{
    Call, Close, CloseReport, GetRole, GetStatus, Join, PodEvent, PodState, PodStatus, Start,
    Started, Subscribe, SubscribeEvents, WaitStartSuccess,
};
use crate::registry::RuntimeRegistry;

/// Time a forced stop is given on top of `timeout_ctrl` before the
/// supervisor stops waiting for the pod's stop reply.
const STOP_MARGIN: Duration = Duration::from_secs(2);

/// A pod: the actor that owns one runtime's lifecycle, as Jina's
/// `jina.orchestrate.pods.Pod` does, with every step a message.
///
/// The runtime is started and restarted by a [`Supervisor`]: a standalone pod
/// makes one of its own from its config's `restart` section; a pod built with
/// [`Pod::supervised_by`] registers with an existing one (a deployment's).
///
/// # Lifecycle
///
/// ```text
///        Start               ready                  failure
/// Idle ────────► Starting ─────────► Running ──────────────► Failing
///                  ▲   │  (Started to         (PodEvent::Failed; the
///                  │   │   subscribers and     runtime is stopped, then
///                  │   │   waiters)            the supervisor is told)
///                  │   │                                      │
///                  │   └── failure before the first Started ──┤
///                  │       (fails the start unless            │
///                  │        restart.on_start_failure)         ▼
///                  └──── RestartChild ◄──── Restarting ◄── restart coming
///                       (next generation)      │
///                                              └─ none coming / GaveUp ─► Terminated
///
/// any state ── Close ──► Closing ──(runtime stopped)──► Terminated
/// ```
///
/// - [`Started`] is sent once per generation, when the runtime reports
///   ready, to every subscriber; [`WaitStartSuccess`] waiters are answered at
///   the same moment.
/// - Before the first `Started`, a failure answers waiters with
///   [`PodError::FailedToStart`] (or [`PodError::Timeout`] when
///   `timeout_ready` passed, after the pod was closed), unless
///   `restart.on_start_failure` lets the supervisor retry.
/// - After it, a failure is restarted per the restart policy; waiters during
///   the restart wait for the next `Started`. When no restart is coming
///   (a transient or temporary policy, or the supervisor gave up), waiters
///   get [`PodError::ExitedEarly`].
/// - [`Close`] from any state stops the runtime (gracefully, then by force
///   after the timeout), answers waiters [`PodError::Closed`], and resolves
///   [`Join`].
pub struct Pod<R: Runtime> {
    config: PodConfig,
    factory: RuntimeFactory<R>,
    placement: Option<Placement>,
    external: Option<Addr<Supervisor>>,
    own: Option<Addr<Supervisor>>,
    state: PodState,
    runtime: Option<RuntimeHandle<R>>,
    reporter: Option<ChildReporter>,
    generation: u64,
    spawned: u64,
    restarts: u32,
    current: Option<Started>,
    ever_started: bool,
    running_since: Option<Instant>,
    last_failure: Option<FailureCause>,
    terminal: Option<PodError>,
    close_report: Option<CloseReport>,
    subscribers: Vec<WeakRecipient<Started>>,
    event_subscribers: Vec<WeakRecipient<PodEvent>>,
    waiters: Vec<oneshot::Sender<Result<Started, PodError>>>,
    closers: Vec<oneshot::Sender<CloseReport>>,
    stop_replies: Vec<oneshot::Sender<ChildStopped>>,
    joiners: Vec<oneshot::Sender<Result<(), PodError>>>,
    health: Health,
}

#[derive(Debug, Default)]
struct Health {
    timer: Option<SpawnHandle>,
    in_flight: bool,
    failures: u32,
}

// ===== impl Pod (construction) =====

impl<R: Runtime> Pod<R> {
    /// A pod running the runtime `factory` builds, configured by `config`.
    pub fn new(config: PodConfig, factory: RuntimeFactory<R>) -> Self {
        Pod {
            config,
            factory,
            placement: None,
            external: None,
            own: None,
            state: PodState::Idle,
            runtime: None,
            reporter: None,
            generation: 0,
            spawned: 0,
            restarts: 0,
            current: None,
            ever_started: false,
            running_since: None,
            last_failure: None,
            terminal: None,
            close_report: None,
            subscribers: Vec::new(),
            event_subscribers: Vec::new(),
            waiters: Vec::new(),
            closers: Vec::new(),
            stop_replies: Vec::new(),
            joiners: Vec::new(),
            health: Health::default(),
        }
    }

    /// A pod whose in-process runtime is picked from `registry` by the
    /// config's `runtime.name`.
    ///
    /// # Errors
    ///
    /// [`PodError::UnknownRuntime`] when no runtime is registered under that
    /// name.
    pub fn from_config(config: PodConfig, registry: &RuntimeRegistry<R>) -> Result<Self, PodError> {
        let factory = match &config.runtime {
            RuntimeSpec::InProcess { name } => registry
                .get(name)
                .cloned()
                .ok_or_else(|| PodError::UnknownRuntime { name: name.clone() })?,
            _ => {
                return Err(PodError::WrongRuntimeKind {
                    expected: "in-process",
                })
            }
        };
        Ok(Pod::new(config, factory))
    }

    /// Registers the pod, on [`Start`], with `supervisor` instead of one of
    /// its own; that supervisor's strategy, intensity and backoff then apply.
    #[must_use]
    pub fn supervised_by(mut self, supervisor: Addr<Supervisor>) -> Self {
        self.external = Some(supervisor);
        self
    }

    /// Places the runtime explicitly, overriding the config's `placement`
    /// (a `shared` placement otherwise means the pod's own arbiter).
    #[must_use]
    pub fn with_placement(mut self, placement: Placement) -> Self {
        self.placement = Some(placement);
        self
    }

    fn name(&self) -> &str {
        &self.config.name
    }

    fn runtime_placement(&self) -> Placement {
        match (&self.placement, self.config.placement) {
            (Some(placement), _) => placement.clone(),
            (None, PlacementKind::Dedicated) => Placement::Dedicated,
            (None, PlacementKind::Shared) => Placement::Shared(Arbiter::current()),
        }
    }
}

impl Pod<ProcessRuntime> {
    /// A pod whose runtime is the OS child process its config describes
    /// (`runtime.kind = "process"`).
    ///
    /// # Errors
    ///
    /// [`PodError::WrongRuntimeKind`] for any other kind of runtime.
    pub fn from_process_config(config: PodConfig) -> Result<Self, PodError> {
        let spec = config
            .runtime
            .process_spec()
            .ok_or(PodError::WrongRuntimeKind {
                expected: "process",
            })?;
        Ok(Pod::new(config, ProcessRuntime::factory(spec)))
    }
}

// ===== impl Pod (lifecycle) =====

impl<R: Runtime> Pod<R> {
    fn emit(&mut self, event: PodEvent) {
        self.event_subscribers.retain(|weak| match weak.upgrade() {
            Some(subscriber) if subscriber.connected() => {
                subscriber.do_send(event.clone());
                true
            }
            _ => false,
        });
    }

    fn begin(&mut self, ctx: &mut Context<Self>) -> Result<(), PodError> {
        let supervisor = match &self.external {
            Some(supervisor) => supervisor.clone(),
            None => {
                let own = Supervisor::new(self.config.supervisor_config())
                    .map_err(|e| PodError::Supervisor {
                        reason: e.to_string(),
                    })?
                    .start();
                self.own = Some(own.clone());
                own
            }
        };
        self.state = PodState::Starting;
        supervisor.do_send(SubscribeChild {
            id: self.config.name.clone(),
            subscriber: ctx.address().recipient(),
        });
        let spec = ChildSpec::new(self.config.name.clone(), &ctx.address())
            .with_restart(self.config.restart_policy())
            .with_shutdown(
                self.config.timeout_ctrl() + RuntimeConfig::DEFAULT_KILL_GRACE + STOP_MARGIN,
            )
            .with_restart_on_start_failure(self.config.restart.on_start_failure);
        ctx.spawn(
            supervisor
                .send(AddChild(spec))
                .into_actor(self)
                .map(|added, act, _| {
                    let refusal = match added {
                        Ok(Ok(())) | Ok(Err(supervisor::Error::ChildFailedToStart { .. })) => None,
                        Ok(Err(e)) => Some(e.to_string()),
                        Err(e) => Some(format!("supervisor unreachable: {e}")),
                    };
                    if let (Some(reason), None) = (refusal, &act.runtime) {
                        act.terminate(Some(PodError::Supervisor { reason }));
                    }
                }),
        );
        Ok(())
    }

    fn spawn_generation(&mut self, reporter: ChildReporter, ctx: &mut Context<Self>) {
        if matches!(self.state, PodState::Closing | PodState::Terminated) {
            // Tell the supervisor this start ended, so it does not wait for a
            // readiness that will never come; the removal sent at close
            // then forgets the pod.
            reporter.exited(ChildExit::Normal);
            return;
        }
        let generation = self.spawned;
        self.spawned += 1;
        self.generation = generation;
        self.reporter = Some(reporter);
        let config = RuntimeConfig::new(self.config.name.as_str())
            .generation(generation)
            .env(self.config.runtime_env())
            .placement(self.runtime_placement())
            .start_timeout(self.config.timeout_ready())
            .watcher(ctx.address().recipient());
        self.runtime = Some(RuntimeActor::spawn(config, self.factory.clone()));
        self.state = PodState::Starting;
        self.emit(PodEvent::Starting { generation });
    }

    fn on_ready(&mut self, startup: Duration, pid: Option<u32>, ctx: &mut Context<Self>) {
        self.state = PodState::Running;
        self.ever_started = true;
        self.running_since = Some(Instant::now());
        let started = Started {
            pod: self.config.name.clone(),
            role: self.config.role,
            generation: self.generation,
            restarts: self.restarts,
            startup,
            pid,
        };
        self.current = Some(started.clone());
        if let Some(reporter) = &self.reporter {
            reporter.ready();
        }
        self.subscribers.retain(|weak| match weak.upgrade() {
            Some(subscriber) if subscriber.connected() => {
                subscriber.do_send(started.clone());
                true
            }
            _ => false,
        });
        for waiter in self.waiters.drain(..) {
            let _ = waiter.send(Ok(started.clone()));
        }
        self.emit(PodEvent::Started(started));
        self.arm_health(ctx);
    }

    /// The runtime of the current generation failed (it said so, or the pod
    /// judged it unhealthy): stop what is left of it, then decide.
    fn on_failure(&mut self, cause: FailureCause, ctx: &mut Context<Self>) {
        if !matches!(self.state, PodState::Starting | PodState::Running) {
            return;
        }
        self.state = PodState::Failing;
        self.last_failure = Some(cause.clone());
        self.current = None;
        self.running_since = None;
        self.disarm_health(ctx);
        let generation = self.generation;
        self.emit(PodEvent::Failed {
            generation,
            cause: cause.clone(),
        });
        let Some(runtime) = self.runtime.clone() else {
            return;
        };
        ctx.spawn(
            runtime
                .stop(self.config.timeout_ctrl())
                .into_actor(self)
                .map(move |_, act, _| act.after_failure(generation, cause)),
        );
    }

    /// The failed runtime has ended: tell the supervisor, and end the pod if
    /// no restart is coming.
    fn after_failure(&mut self, generation: u64, cause: FailureCause) {
        if self.generation != generation || self.state != PodState::Failing {
            return;
        }
        // A child process that finished with code 0 ended normally: a
        // transient pod is then not restarted.
        let exit = match &cause {
            FailureCause::Exited {
                code: Some(0),
                signal: None,
                ..
            } => ChildExit::Normal,
            cause => ChildExit::Failed {
                cause: cause.to_string(),
            },
        };
        let terminal = if !self.ever_started && !self.config.restart.on_start_failure {
            Some(match cause {
                FailureCause::TimedOut { after } => PodError::Timeout { after },
                cause => PodError::FailedToStart { cause },
            })
        } else if !self.config.restart_policy().should_restart(&exit) {
            Some(self.no_restart_error(Some(cause)))
        } else {
            None
        };
        if let Some(reporter) = &self.reporter {
            reporter.exited(exit);
        }
        match terminal {
            Some(error) => self.terminate(Some(error)),
            None => self.state = PodState::Restarting,
        }
    }

    fn no_restart_error(&self, cause: Option<FailureCause>) -> PodError {
        match cause {
            Some(cause) if !self.ever_started => PodError::FailedToStart { cause },
            cause => PodError::ExitedEarly { cause },
        }
    }

    /// Ends the pod for good and answers everyone who waits on it.
    fn terminate(&mut self, error: Option<PodError>) {
        if self.state == PodState::Terminated {
            return;
        }
        self.state = PodState::Terminated;
        self.current = None;
        self.running_since = None;
        let terminal = error.clone().unwrap_or(PodError::Closed);
        self.terminal = Some(terminal.clone());
        for waiter in self.waiters.drain(..) {
            let _ = waiter.send(Err(terminal.clone()));
        }
        let report = self.close_report.clone().unwrap_or(CloseReport {
            forced: false,
            stuck: false,
            took: Duration::ZERO,
        });
        for closer in self.closers.drain(..) {
            let _ = closer.send(report.clone());
        }
        let stopped = if report.forced {
            ChildStopped::Forced
        } else {
            ChildStopped::Gracefully
        };
        for reply in self.stop_replies.drain(..) {
            let _ = reply.send(stopped);
        }
        for joiner in self.joiners.drain(..) {
            let _ = joiner.send(Ok(()));
        }
        if let Some(own) = self.own.take() {
            own.do_send(Shutdown);
        }
        self.emit(PodEvent::Terminated { error });
    }

    fn begin_close(&mut self, timeout: Option<Duration>, ctx: &mut Context<Self>) {
        let before_ready = !matches!(self.state, PodState::Running);
        self.state = PodState::Closing;
        self.current = None;
        self.disarm_health(ctx);
        for waiter in self.waiters.drain(..) {
            let _ = waiter.send(Err(PodError::Closed));
        }
        if before_ready {
            // A supervisor waiting for this start would hold its queue (and
            // the removal below) until a readiness that is not coming.
            if let Some(reporter) = &self.reporter {
                reporter.exited(ChildExit::Normal);
            }
        }
        if let Some(external) = &self.external {
            external.do_send(RemoveChild {
                id: self.config.name.clone(),
            });
        }
        let timeout = timeout.unwrap_or_else(|| self.config.timeout_ctrl());
        match self.runtime.clone() {
            Some(runtime) => {
                ctx.spawn(
                    runtime
                        .stop(timeout)
                        .into_actor(self)
                        .map(|report, act, _| {
                            act.close_report = Some(CloseReport {
                                forced: report.forced,
                                stuck: report.stuck,
                                took: report.took,
                            });
                            act.terminate(None);
                        }),
                );
            }
            None => self.terminate(None),
        }
    }

    // ===== health =====

    fn arm_health(&mut self, ctx: &mut Context<Self>) {
        let Some(health) = &self.config.health else {
            return;
        };
        self.health.failures = 0;
        let interval = Duration::from_millis(health.interval);
        self.health.timer = Some(ctx.run_interval(interval, |act, ctx| act.check_health(ctx)));
    }

    fn disarm_health(&mut self, ctx: &mut Context<Self>) {
        if let Some(timer) = self.health.timer.take() {
            ctx.cancel_future(timer);
        }
    }

    fn check_health(&mut self, ctx: &mut Context<Self>) {
        let (Some(health), Some(runtime)) = (&self.config.health, &self.runtime) else {
            return;
        };
        if self.health.in_flight || self.state != PodState::Running {
            return;
        }
        self.health.in_flight = true;
        let threshold = health.failure_threshold;
        let generation = self.generation;
        let check = runtime.check_health(Duration::from_millis(health.timeout));
        ctx.spawn(check.into_actor(self).map(move |outcome, act, ctx| {
            act.health.in_flight = false;
            if act.generation != generation || act.state != PodState::Running {
                return;
            }
            let reason = match outcome {
                Ok(()) => {
                    act.health.failures = 0;
                    return;
                }
                Err(RequestError::Runtime(e)) => e.message().to_owned(),
                Err(e) => e.to_string(),
            };
            act.health.failures += 1;
            let consecutive = act.health.failures;
            act.emit(PodEvent::Unhealthy {
                generation,
                reason: reason.clone(),
                consecutive,
            });
            if consecutive >= threshold {
                let cause = FailureCause::Unhealthy {
                    reason: format!("{consecutive} health checks failed in a row, last: {reason}"),
                };
                if let Some(runtime) = &act.runtime {
                    runtime.fail(cause.clone());
                }
                act.on_failure(cause, ctx);
            }
        }));
    }
}

impl<R: Runtime> Actor for Pod<R> {
    type Context = Context<Self>;
}

impl<R: Runtime> std::fmt::Debug for Pod<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pod")
            .field("name", &self.name())
            .field("state", &self.state)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

// ===== owner messages =====

impl<R: Runtime> Handler<Start> for Pod<R> {
    type Result = Result<(), PodError>;

    fn handle(&mut self, _: Start, ctx: &mut Context<Self>) -> Self::Result {
        match self.state {
            PodState::Idle => self.begin(ctx),
            PodState::Closing | PodState::Terminated => Err(PodError::Closed),
            _ => Err(PodError::AlreadyStarted),
        }
    }
}

impl<R: Runtime> Handler<WaitStartSuccess> for Pod<R> {
    type Result = ResponseFuture<Result<Started, PodError>>;

    fn handle(&mut self, _: WaitStartSuccess, _: &mut Context<Self>) -> Self::Result {
        let now = match (&self.state, &self.current, &self.terminal) {
            (PodState::Idle, _, _) => Some(Err(PodError::NotStarted)),
            (PodState::Running, Some(started), _) => Some(Ok(started.clone())),
            (PodState::Terminated, _, Some(terminal)) => Some(Err(terminal.clone())),
            (PodState::Closing | PodState::Terminated, _, _) => Some(Err(PodError::Closed)),
            _ => None,
        };
        if let Some(answer) = now {
            return Box::pin(async move { answer });
        }
        let (tx, rx) = oneshot::channel();
        self.waiters.push(tx);
        Box::pin(async move { rx.await.unwrap_or(Err(PodError::Closed)) })
    }
}

impl<R: Runtime> Handler<Subscribe> for Pod<R> {
    type Result = ();

    fn handle(&mut self, Subscribe(subscriber): Subscribe, _: &mut Context<Self>) {
        if let Some(started) = &self.current {
            subscriber.do_send(started.clone());
        }
        self.subscribers.push(subscriber.downgrade());
    }
}

impl<R: Runtime> Handler<SubscribeEvents> for Pod<R> {
    type Result = ();

    fn handle(&mut self, SubscribeEvents(subscriber): SubscribeEvents, _: &mut Context<Self>) {
        self.event_subscribers.push(subscriber.downgrade());
    }
}

impl<R: Runtime> Handler<Call<R>> for Pod<R> {
    type Result = ResponseFuture<Result<R::Response, CallError>>;

    fn handle(&mut self, Call(req): Call<R>, _: &mut Context<Self>) -> Self::Result {
        let refused = match (&self.state, &self.runtime) {
            (PodState::Running, Some(runtime)) => Err(runtime.call(req)),
            (PodState::Closing | PodState::Terminated, _) => Ok(CallError::Closed),
            _ => Ok(CallError::NotReady),
        };
        match refused {
            Ok(refusal) => Box::pin(async move { Err(refusal) }),
            Err(call) => Box::pin(async move {
                call.await.map_err(|e| match e {
                    RequestError::Exited { cause } => CallError::RuntimeExited { cause },
                    RequestError::Runtime(e) => CallError::Runtime(e),
                    _ => CallError::NotReady,
                })
            }),
        }
    }
}

impl<R: Runtime> Handler<GetStatus> for Pod<R> {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, _: &mut Context<Self>) -> Self::Result {
        MessageResult(PodStatus {
            name: self.config.name.clone(),
            role: self.config.role,
            state: self.state,
            generation: self.generation,
            restarts: self.restarts,
            uptime: self.running_since.map(|since| since.elapsed()),
            pid: self.current.as_ref().and_then(|started| started.pid),
            last_failure: self.last_failure.as_ref().map(ToString::to_string),
        })
    }
}

impl<R: Runtime> Handler<GetRole> for Pod<R> {
    type Result = MessageResult<GetRole>;

    fn handle(&mut self, _: GetRole, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.config.role)
    }
}

impl<R: Runtime> Handler<Close> for Pod<R> {
    type Result = ResponseFuture<CloseReport>;

    fn handle(&mut self, close: Close, ctx: &mut Context<Self>) -> Self::Result {
        match self.state {
            PodState::Idle => self.terminate(None),
            PodState::Terminated | PodState::Closing => {}
            _ => self.begin_close(close.timeout, ctx),
        }
        if self.state == PodState::Terminated {
            let report = self.close_report.clone().unwrap_or(CloseReport {
                forced: false,
                stuck: false,
                took: Duration::ZERO,
            });
            return Box::pin(async move { report });
        }
        let (tx, rx) = oneshot::channel();
        self.closers.push(tx);
        Box::pin(async move {
            rx.await.unwrap_or(CloseReport {
                forced: false,
                stuck: false,
                took: Duration::ZERO,
            })
        })
    }
}

impl<R: Runtime> Handler<Join> for Pod<R> {
    type Result = ResponseFuture<Result<(), PodError>>;

    fn handle(&mut self, _: Join, _: &mut Context<Self>) -> Self::Result {
        match self.state {
            PodState::Idle => Box::pin(async { Err(PodError::NotStarted) }),
            PodState::Terminated => Box::pin(async { Ok(()) }),
            _ => {
                let (tx, rx) = oneshot::channel();
                self.joiners.push(tx);
                Box::pin(async move { rx.await.unwrap_or(Ok(())) })
            }
        }
    }
}

// ===== from the runtime =====

impl<R: Runtime> Handler<RuntimeEvent> for Pod<R> {
    type Result = ();

    fn handle(&mut self, event: RuntimeEvent, ctx: &mut Context<Self>) {
        if self.runtime.is_none() || event.generation() != self.generation {
            return;
        }
        match event {
            RuntimeEvent::Progressed {
                generation, note, ..
            } => self.emit(PodEvent::Progressed { generation, note }),
            RuntimeEvent::Ready { setup, pid, .. } if self.state == PodState::Starting => {
                self.on_ready(setup, pid, ctx)
            }
            RuntimeEvent::Failed { cause, .. } => self.on_failure(cause, ctx),
            _ => {}
        }
    }
}

// ===== from the supervisor =====

impl<R: Runtime> Handler<StartChild> for Pod<R> {
    type Result = ();

    fn handle(&mut self, msg: StartChild, ctx: &mut Context<Self>) {
        self.spawn_generation(msg.reporter, ctx);
    }
}

impl<R: Runtime> Handler<RestartChild> for Pod<R> {
    type Result = ();

    fn handle(&mut self, msg: RestartChild, ctx: &mut Context<Self>) {
        if !matches!(self.state, PodState::Closing | PodState::Terminated) {
            self.restarts += 1;
        }
        self.spawn_generation(msg.reporter, ctx);
    }
}

impl<R: Runtime> Handler<StopChild> for Pod<R> {
    type Result = ResponseActFuture<Self, ChildStopped>;

    fn handle(&mut self, _: StopChild, ctx: &mut Context<Self>) -> Self::Result {
        match (self.state, self.runtime.clone()) {
            (PodState::Closing, _) => {
                let (tx, rx) = oneshot::channel();
                self.stop_replies.push(tx);
                Box::pin(
                    async move { rx.await.unwrap_or(ChildStopped::Gracefully) }.into_actor(self),
                )
            }
            (PodState::Idle | PodState::Terminated, _) | (_, None) => {
                Box::pin(actix::fut::ready(ChildStopped::Gracefully))
            }
            (_, Some(runtime)) => {
                // A stop for a strategy restart or a give-up: a restart, or
                // the supervisor's GaveUp, follows.
                self.state = PodState::Restarting;
                self.current = None;
                self.running_since = None;
                self.disarm_health(ctx);
                Box::pin(
                    runtime
                        .stop(self.config.timeout_ctrl())
                        .into_actor(self)
                        .map(|report, _, _| {
                            if report.forced {
                                ChildStopped::Forced
                            } else {
                                ChildStopped::Gracefully
                            }
                        }),
                )
            }
        }
    }
}

impl<R: Runtime> Handler<SupervisorEvent> for Pod<R> {
    type Result = ();

    fn handle(&mut self, event: SupervisorEvent, _: &mut Context<Self>) {
        match event {
            SupervisorEvent::ChildRestarting { id, attempt, delay } if id == self.config.name => {
                self.emit(PodEvent::Restarting { attempt, delay })
            }
            SupervisorEvent::GaveUp { reason, .. }
                if !matches!(self.state, PodState::Closing | PodState::Terminated) =>
            {
                let error = match self.last_failure.clone() {
                    Some(cause) => self.no_restart_error(Some(cause)),
                    None => PodError::Supervisor { reason },
                };
                if let Some(runtime) = &self.runtime {
                    // Normally stopped already by the supervisor's StopChild.
                    actix::spawn(runtime.stop(self.config.timeout_ctrl()));
                }
                self.terminate(Some(error));
            }
            _ => {}
        }
    }
}
