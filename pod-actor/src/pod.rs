use std::time::{Duration, SystemTime};

use actix::dev::{MessageResponse, OneshotSender};
use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, MessageResult, ResponseActFuture,
    Running, WrapFuture,
};
use futures::channel::oneshot;
use metrics::Histogram;
use runtime_actor::{
    FailureCause, Placement, ProcessRuntime, RequestError, Runtime, RuntimeActor, RuntimeConfig,
    RuntimeEvent, RuntimeFactory, RuntimeHandle, StopReport,
};
use supervisor::{
    AddChild, ChildExit, ChildLeft, ChildReporter, ChildSpec, ChildStopped, ChildVerdict,
    NoRestart, Registration, RestartChild, Solo, StartChild, StopChild, StopReason, Supervisor,
    Verdict,
};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::answer::{Answer, Waiters};
use crate::config::{PlacementKind, PodConfig, RuntimeSpec};
use crate::error::{CallError, PodError};
use crate::messages::{
    Call, Close, CloseReport, ForcedBy, GetRole, GetStatus, HealthTick, Join, Nudge, PodEvent,
    PodState, PodStatus, RestartDue, Start, StartAndWait, Started, Subscribe, SubscribeEvents,
    WaitStartSuccess,
};
use crate::metrics::PodMetrics;
use crate::registry::RuntimeRegistry;
use crate::subscribers::Subscribers;

/// Time a forced stop is given on top of `timeout_ctrl` before the
/// supervisor stops waiting for the pod's stop reply.
const STOP_MARGIN: Duration = Duration::from_secs(2);

/// A pod: the actor that owns one runtime's lifecycle, as Jina's
/// `jina.orchestrate.pods.Pod` does, with every step a message.
///
/// Whether a failed runtime is restarted is a supervisor's decision. A pod
/// built with [`Pod::supervised_by`] registers with that [`Supervisor`] (a
/// deployment's): it reports each exit and acts on the [`ChildVerdict`] it
/// gets back. A standalone pod decides by the same rules itself, from its
/// config's `restart` section ([`Solo`]: a supervisor of one child, with no
/// actor and no message in between).
///
/// # Lifecycle
///
/// ```text
///        Start               ready                  failure
/// Idle ────────► Starting ─────────► Running ──────────────► Failing
///                  ▲   │  (Started to         (PodEvent::Failed; the
///                  │   │   subscribers and     runtime is stopped, then
///                  │   │   waiters)            the exit is reported)
///                  │   │                                      │
///                  │   └── failure ───────────────────────────┤
///                  │                                          ▼ verdict
///                  └──── RestartChild ◄──── Restarting ◄── Restart { delay }
///                       (next generation)
///                                     NoRestart { reason } ──► Terminated
///
/// any state ── Close, or the last Addr dropped ──► Closing ──► Terminated
/// ```
///
/// - [`Started`] is sent once per generation, when the runtime reports
///   ready, to every subscriber; [`WaitStartSuccess`] waiters are answered at
///   the same moment.
/// - A failure before the first `Started` fails the start
///   ([`PodError::FailedToStart`], or [`PodError::Timeout`] past
///   `timeout_ready`) unless `restart.on_start_failure` lets the supervisor
///   retry. After it, a failure is restarted per the supervisor's verdict;
///   waiters during the restart wait for the next `Started`. When no restart
///   comes, waiters get [`PodError::ExitedEarly`] or [`PodError::GaveUp`]
///   (with the supervisor's reason).
/// - [`Close`] from any state: calls already accepted are answered, later
///   ones get [`CallError::Closed`]; the runtime is stopped the graceful way
///   (teardown, or SIGTERM for a process), also in the middle of its setup,
///   and by force after the timeout; waiters get [`PodError::Closed`]; the
///   pod leaves its supervisor (a removal, never counted as a crash); [`Join`]
///   resolves. The [`CloseReport`] says whether it was forced and why.
/// - Dropping the last [`Addr`] of a started pod closes it the same way
///   (graceful, within `timeout_ctrl`), then frees it: the supervisor and the
///   runtime hold the pod weakly.
/// - If the actix `System` stops under a pod (or the arbiter its runtime runs
///   on), the pod ends with [`PodError::ArbiterStopped`] and a forced close
///   report, and nothing is restarted. Close pods before stopping the System
///   to give them their graceful stop (see the crate docs).
pub struct Pod<R: Runtime> {
    /// Boxed: actix moves the pod several times as it starts it (into its
    /// context, into its task), and unboxed the config was 600 of the pod's
    /// 1,168 bytes.
    config: Box<PodConfig>,
    factory: RuntimeFactory<R>,
    placement: Option<Placement>,
    external: Option<Addr<Supervisor>>,
    /// A standalone pod's own restart decisions, from its start on.
    standalone: Option<Box<Standalone>>,
    /// The registration with a supervisor, until the pod leaves it.
    registration: Option<Registration>,
    state: PodState,
    runtime: Option<RuntimeHandle<R>>,
    /// Boxed, as the last failure: a standalone pod never has a reporter,
    /// a pod that never failed has no last failure, and a pod is moved
    /// whole several times as actix starts it.
    reporter: Option<Box<ChildReporter>>,
    generation: u64,
    spawned: u64,
    restarts: u64,
    current: Option<Started>,
    /// The span of the current generation (`pod`, `generation`).
    span: tracing::Span,
    /// Boxed: most programs do not measure, and a pod stays small.
    metrics: Option<Box<PodMetrics>>,
    /// The running generation's main process, from its spawn on.
    pid: Option<u32>,
    ever_started: bool,
    /// When the running generation became ready. Its wall-clock time is
    /// worked out when a status asks for it: a start reads the clock once.
    running_since: Option<Instant>,
    last_failure: Option<Box<FailureCause>>,
    subscribers: Subscribers<Started>,
    event_subscribers: Subscribers<PodEvent>,
    waiters: Waiters<Result<Started, PodError>>,
    /// Boxed, and made at the first close: a running pod stays small.
    ending: Option<Box<Ending>>,
    health: Health,
}

/// What a pod holds only once it closes or ends: how it ended, and who
/// waits for that.
#[derive(Debug, Default)]
struct Ending {
    terminal: Option<PodError>,
    close_report: Option<CloseReport>,
    closers: Waiters<CloseReport>,
    stop_replies: Vec<oneshot::Sender<ChildStopped>>,
    joiners: Waiters<Result<(), PodError>>,
}

/// How a pod without a supervisor restarts its runtime.
#[derive(Debug)]
struct Standalone {
    solo: Solo,
    /// The timer of the restart to come: a task holding the pod weakly, so
    /// that a backoff does not keep a pod nobody holds alive.
    timer: Option<JoinHandle<()>>,
}

impl Standalone {
    fn cancel_timer(&mut self) {
        if let Some(timer) = self.timer.take() {
            timer.abort();
        }
    }
}

#[derive(Debug, Default)]
struct Health {
    ticker: Option<JoinHandle<()>>,
    in_flight: bool,
    failures: u32,
}

// ===== impl Pod (construction) =====

impl<R: Runtime> Pod<R> {
    /// A pod running the runtime `factory` builds, configured by `config`.
    pub fn new(config: PodConfig, factory: RuntimeFactory<R>) -> Self {
        Pod {
            config: Box::new(config),
            factory,
            placement: None,
            external: None,
            standalone: None,
            registration: None,
            state: PodState::Idle,
            runtime: None,
            reporter: None,
            generation: 0,
            spawned: 0,
            restarts: 0,
            current: None,
            span: tracing::Span::none(),
            metrics: None,
            pid: None,
            ever_started: false,
            running_since: None,
            last_failure: None,
            subscribers: Subscribers::new(),
            event_subscribers: Subscribers::new(),
            waiters: Waiters::default(),
            ending: None,
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

    fn ending(&mut self) -> &mut Ending {
        self.ending.get_or_insert_with(Box::default)
    }

    /// Why the pod ended, once it has.
    fn terminal(&self) -> Option<&PodError> {
        self.ending.as_ref()?.terminal.as_ref()
    }

    fn close_report(&self) -> Option<&CloseReport> {
        self.ending.as_ref()?.close_report.as_ref()
    }

    fn runtime_placement(&self) -> Placement {
        match (&self.placement, self.config.placement) {
            (Some(placement), _) => placement.clone(),
            (None, PlacementKind::Dedicated) => Placement::Dedicated,
            (None, PlacementKind::Shared) => Placement::Current,
            (None, PlacementKind::Auto) => match self.config.runtime {
                RuntimeSpec::Process { .. } | RuntimeSpec::Container { .. } => Placement::Current,
                RuntimeSpec::InProcess { .. } => Placement::Dedicated,
            },
        }
    }
}

impl Pod<ProcessRuntime> {
    /// A pod whose runtime is the OS child process its config describes
    /// (`runtime.kind = "process"`), or the container (`"container"`: the
    /// engine's `run` as the child, stopped with `timeout_ctrl`).
    ///
    /// # Errors
    ///
    /// [`PodError::WrongRuntimeKind`] for any other kind of runtime.
    pub fn from_process_config(config: PodConfig) -> Result<Self, PodError> {
        let mut spec = config
            .runtime
            .process_spec()
            .ok_or(PodError::WrongRuntimeKind {
                expected: "process\" or \"container",
            })?;
        if let Some(container) = spec.container_spec() {
            let container = container.clone().stop_timeout(config.timeout_ctrl());
            spec = spec.container(container);
        }
        Ok(Pod::new(config, ProcessRuntime::factory(spec)))
    }
}

// ===== impl Pod (lifecycle) =====

impl<R: Runtime> Pod<R> {
    fn emit(&mut self, event: PodEvent) {
        self.tell(&event);
    }

    /// Logs and measures `event`, and sends it to the event subscribers.
    fn tell(&mut self, event: &PodEvent) {
        self.log(event);
        self.measure(event);
        self.event_subscribers.send(event);
    }

    fn set_state(&mut self, state: PodState) {
        self.state = state;
        if let Some(metrics) = &self.metrics {
            metrics.state(state);
        }
    }

    /// Records `event` through the `metrics` facade (see [`crate::metrics`]).
    fn measure(&mut self, event: &PodEvent) {
        if self.metrics.is_none() && crate::metrics::enabled() {
            // Registered at the first event after metrics were enabled; the
            // call path only clones a handle.
            let metrics = Box::new(PodMetrics::new(&self.config.name));
            metrics.state(self.state);
            self.metrics = Some(metrics);
        }
        let Some(metrics) = &self.metrics else {
            return;
        };
        match event {
            PodEvent::Started(started) => metrics.started(started.startup),
            PodEvent::Failed { cause, .. } => metrics.failed(cause),
            PodEvent::Restarting { .. } => metrics.restarted(),
            _ => {}
        }
    }

    /// Says `event` to `tracing`, in the pod's span (`pod`, `generation`):
    /// INFO for a start, Started and a close; WARN for a failure, an
    /// unhealthy check and a restart; ERROR when the pod ends with an error.
    fn log(&mut self, event: &PodEvent) {
        let span = &self.span;
        match event {
            PodEvent::Starting { generation } => {
                // At ERROR level, so that it is enabled whenever any of the
                // pod's events is: a filter at `warn` must still say which
                // pod failed.
                self.span = tracing::error_span!("pod", pod = %self.config.name, generation);
                tracing::info!(parent: &self.span, "starting");
            }
            PodEvent::Progressed { note, .. } => {
                tracing::debug!(parent: span, note = %note, "progressed");
            }
            PodEvent::Started(started) => tracing::info!(
                parent: span,
                startup_ms = started.startup.as_secs_f64() * 1e3,
                pid = started.pid,
                restarts = started.restarts,
                "started"
            ),
            PodEvent::Unhealthy {
                reason,
                consecutive,
                ..
            } => tracing::warn!(parent: span, reason = %reason, consecutive, "unhealthy"),
            PodEvent::Failed { cause, .. } => {
                tracing::warn!(parent: span, cause = %cause, "failed")
            }
            PodEvent::Restarting { attempt, delay } => tracing::warn!(
                parent: span,
                attempt,
                delay_ms = delay.as_secs_f64() * 1e3,
                "restarting"
            ),
            PodEvent::Terminated { error: None } => {
                let report = self.close_report();
                tracing::info!(
                    parent: span,
                    forced = report.map(|r| r.forced),
                    took_ms = report.map(|r| r.took.as_secs_f64() * 1e3),
                    "closed"
                )
            }
            PodEvent::Terminated { error: Some(error) } => {
                tracing::error!(parent: span, error = %error, "terminated")
            }
        }
    }

    fn begin(&mut self, ctx: &mut Context<Self>) -> Result<(), PodError> {
        let Some(supervisor) = self.external.clone() else {
            let solo = Solo::new(
                self.config.supervisor_config(),
                self.config.restart_policy(),
                self.config.restart.on_start_failure,
            )
            .map_err(PodError::Supervisor)?;
            self.standalone = Some(Box::new(Standalone { solo, timer: None }));
            self.spawn_generation(ctx);
            return Ok(());
        };
        if !supervisor.connected() {
            return Err(PodError::Supervisor(supervisor::Error::ShuttingDown));
        }
        self.set_state(PodState::Starting);
        // Held weakly: the pod holds its supervisor, not the other way round.
        let spec = ChildSpec::weak(self.config.name.clone(), &ctx.address())
            .with_restart(self.config.restart_policy())
            .with_shutdown(
                self.config.timeout_ctrl() + RuntimeConfig::DEFAULT_KILL_GRACE + STOP_MARGIN,
            )
            .with_restart_on_start_failure(self.config.restart.on_start_failure);
        // Queued at once with do_send, so that a removal sent later at close
        // cannot overtake it. The supervisor answers with a start or a
        // refusal (a verdict); if it stops with the message unread, the
        // dropped spec tells us (tell_if_lost).
        self.registration = Some(spec.registration());
        supervisor.do_send(AddChild(spec.tell_if_lost()));
        Ok(())
    }

    /// Leaves the supervisor: a removal, never an exit. A standalone pod
    /// drops the restart it was waiting for. Idempotent.
    fn leave(&mut self) {
        if let Some(standalone) = &mut self.standalone {
            standalone.cancel_timer();
        }
        let Some(registration) = self.registration.take() else {
            return;
        };
        if let Some(supervisor) = &self.external {
            supervisor.do_send(ChildLeft {
                id: self.config.name.clone(),
                registration,
            });
        }
    }

    fn spawn_generation(&mut self, ctx: &mut Context<Self>) {
        let generation = self.spawned;
        self.spawned += 1;
        self.generation = generation;
        let config = RuntimeConfig::new(self.config.name.as_str())
            .generation(generation)
            .env(self.config.runtime_env())
            .placement(self.runtime_placement())
            .start_timeout(self.config.timeout_ready())
            .stop_timeout(self.config.timeout_ctrl())
            .weak_watcher(ctx.address().downgrade().recipient());
        self.runtime = Some(RuntimeActor::spawn(config, self.factory.clone()));
        self.pid = None;
        self.set_state(PodState::Starting);
        self.emit(PodEvent::Starting { generation });
    }

    fn on_ready(&mut self, startup: Duration, pid: Option<u32>, ctx: &mut Context<Self>) {
        self.set_state(PodState::Running);
        self.ever_started = true;
        let now = Instant::now();
        self.running_since = Some(now);
        let started = Started {
            pod: self.config.name.clone(),
            role: self.config.role,
            generation: self.generation,
            restarts: self.restarts,
            startup,
            pid: self.pid.or(pid),
        };
        if let Some(reporter) = &self.reporter {
            reporter.ready();
        }
        if let Some(standalone) = &mut self.standalone {
            standalone.solo.ready(now);
        }
        self.subscribers.send(&started);
        self.waiters.answer(|| Ok(started.clone()));
        // Told as an event, then kept as the current start: no copy for it.
        let event = PodEvent::Started(started);
        self.tell(&event);
        if let PodEvent::Started(started) = event {
            self.current = Some(started);
        }
        self.arm_health(ctx);
    }

    /// Stops serving: no `Started` is current, no health check runs.
    fn suspend(&mut self) {
        self.current = None;
        self.running_since = None;
        self.disarm_health();
    }

    /// Acts now on a failure the running generation's runtime recorded and
    /// has not told yet.
    ///
    /// A runtime on another arbiter answers its callers (the one whose
    /// request made it fail among them) before its monitor tells the pod,
    /// and a caller who had that answer may ask the pod at once. The pod
    /// then acts as if told, and answers as it will once told: the event
    /// that follows finds it failing already.
    fn heed_failure(&mut self, ctx: &mut Context<Self>) {
        if self.state != PodState::Running {
            return;
        }
        if let Some(cause) = self.runtime.as_ref().and_then(RuntimeHandle::failure) {
            self.on_failure(cause, ctx);
        }
    }

    /// The runtime of the current generation failed (it said so, or the pod
    /// judged it unhealthy): stop what is left of it, then report the exit
    /// and wait for the supervisor's verdict.
    fn on_failure(&mut self, cause: FailureCause, ctx: &mut Context<Self>) {
        if !matches!(self.state, PodState::Starting | PodState::Running) {
            return;
        }
        // Whoever told it (the runtime's event, a heeded failure, a health
        // check), the process is gone or going.
        self.pid = None;
        if matches!(cause, FailureCause::Lost) {
            // The runtime's arbiter was stopped under it: the System is
            // stopping (or whoever owns a shared arbiter stopped it).
            // Nothing can be restarted there; this is not a crash.
            self.ending().close_report = Some(CloseReport::forced(ForcedBy::ArbiterStopped));
            self.terminate(Some(PodError::ArbiterStopped));
            return;
        }
        self.set_state(PodState::Failing);
        self.last_failure = Some(Box::new(cause.clone()));
        self.suspend();
        let generation = self.generation;
        self.emit(PodEvent::Failed {
            generation,
            cause: cause.clone(),
        });
        let Some(runtime) = self.runtime.clone() else {
            return;
        };
        // Reported from a future of the context, even when the runtime has
        // already ended (a runtime in place that failed by itself has, by
        // the time its pod hears of it): the context polls it only after
        // the mailbox, so that a Close queued behind the failure is read
        // first and no new generation is started only to be closed.
        ctx.spawn(
            runtime
                .stop(self.config.timeout_ctrl())
                .into_actor(self)
                .map(move |_, act, ctx| act.report_exit(generation, cause, ctx)),
        );
    }

    /// The failed runtime has ended: tell the supervisor, whose verdict
    /// decides what comes next (at once, for a standalone pod).
    fn report_exit(&mut self, generation: u64, cause: FailureCause, ctx: &mut Context<Self>) {
        if self.generation != generation || self.state != PodState::Failing {
            return;
        }
        // A child process that finished with code 0 ended normally: a
        // transient pod is then not restarted.
        let normal = matches!(
            cause,
            FailureCause::Exited {
                code: Some(0),
                signal: None,
                ..
            }
        );
        // The cause's text is written only for whoever reads it.
        let exit = |text: &dyn Fn() -> String| match normal {
            true => ChildExit::Normal,
            false => ChildExit::Failed { cause: text() },
        };
        if let Some(standalone) = &mut self.standalone {
            // A solo decides by how the child ended, not by the text of
            // the cause: none is written for it (the pod keeps the cause).
            let verdict = standalone.solo.exited(&exit(&String::new), Instant::now());
            self.apply_verdict(verdict, ctx);
        } else if let Some(reporter) = &self.reporter {
            reporter.exited(exit(&|| cause.to_string()));
        }
    }

    fn on_verdict(&mut self, msg: ChildVerdict, ctx: &mut Context<Self>) {
        if matches!(self.state, PodState::Closing | PodState::Terminated) {
            return;
        }
        if let Verdict::NoRestart(NoRestart::Refused(e)) = msg.verdict {
            self.leave_refused();
            self.end(PodError::Supervisor(e), ctx);
            return;
        }
        let current = self
            .reporter
            .as_deref()
            .map_or(0, ChildReporter::generation);
        if msg.generation != current {
            return;
        }
        self.apply_verdict(msg.verdict, ctx);
    }

    /// Acts on the verdict about the current generation's exit.
    fn apply_verdict(&mut self, verdict: Verdict, ctx: &mut Context<Self>) {
        match verdict {
            Verdict::Restart { attempt, delay } => {
                self.set_state(PodState::Restarting);
                self.emit(PodEvent::Restarting { attempt, delay });
                self.schedule_restart(delay, ctx);
            }
            Verdict::NoRestart(why) => {
                let error = self.no_restart_error(why);
                self.end(error, ctx);
            }
            _ => {}
        }
    }

    /// A standalone pod restarts after `delay` itself (a supervised one
    /// waits for its supervisor's [`RestartChild`]).
    fn schedule_restart(&mut self, delay: Duration, ctx: &mut Context<Self>) {
        let Some(standalone) = &mut self.standalone else {
            return;
        };
        standalone.cancel_timer();
        if delay.is_zero() {
            self.restart(ctx);
            return;
        }
        let pod = ctx.address().downgrade();
        let generation = self.generation;
        standalone.timer = Some(actix_rt::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Some(pod) = pod.upgrade() {
                pod.do_send(RestartDue { generation });
            }
        }));
    }

    /// The next generation, after a restart verdict.
    fn restart(&mut self, ctx: &mut Context<Self>) {
        if self.state != PodState::Restarting {
            return;
        }
        self.restarts += 1;
        self.spawn_generation(ctx);
    }

    /// A refused registration was never a registration: nothing to leave.
    fn leave_refused(&mut self) {
        self.registration = None;
    }

    /// Reports the generation the supervisor starts to it through
    /// `reporter`, in the box of the last one when there was one.
    fn report_to(&mut self, reporter: ChildReporter) {
        match &mut self.reporter {
            Some(current) => **current = reporter,
            None => self.reporter = Some(Box::new(reporter)),
        }
    }

    fn no_restart_error(&self, why: NoRestart) -> PodError {
        let cause = self.last_failure.as_deref().cloned();
        match why {
            NoRestart::GaveUp { reason } => PodError::GaveUp { reason, cause },
            NoRestart::ShuttingDown => PodError::Supervisor(supervisor::Error::ShuttingDown),
            NoRestart::Removed => PodError::Removed,
            NoRestart::Refused(e) => PodError::Supervisor(e),
            // FailedToStart, Temporary, NormalExit, and any later reason.
            _ => match cause {
                Some(FailureCause::TimedOut { after, waiting_for }) if !self.ever_started => {
                    PodError::Timeout { after, waiting_for }
                }
                Some(cause) if !self.ever_started => PodError::FailedToStart { cause },
                cause => PodError::ExitedEarly { cause },
            },
        }
    }

    /// Ends the pod with `error`, after stopping a runtime that still runs.
    fn end(&mut self, error: PodError, ctx: &mut Context<Self>) {
        match self.live_runtime() {
            Some(runtime) => self.stop_then_terminate(runtime, None, Some(error), ctx),
            None => self.terminate(Some(error)),
        }
    }

    fn live_runtime(&self) -> Option<RuntimeHandle<R>> {
        self.runtime.clone().filter(|r| !r.has_exited())
    }

    fn stop_then_terminate(
        &mut self,
        runtime: RuntimeHandle<R>,
        timeout: Option<Duration>,
        error: Option<PodError>,
        ctx: &mut Context<Self>,
    ) {
        self.set_state(PodState::Closing);
        self.suspend();
        let timeout = timeout.unwrap_or_else(|| self.config.timeout_ctrl());
        ctx.spawn(
            runtime
                .stop(timeout)
                .into_actor(self)
                .map(|report, act, _| {
                    act.ending().close_report = Some(CloseReport::from_stop(&report));
                    act.terminate(error);
                }),
        );
    }

    /// Closes the pod: every later call is refused, the runtime is stopped
    /// the graceful way, the supervisor forgets the pod.
    fn begin_close(&mut self, timeout: Option<Duration>, ctx: &mut Context<Self>) {
        self.set_state(PodState::Closing);
        self.suspend();
        self.waiters.answer(|| Err(PodError::Closed));
        self.leave();
        match self.live_runtime() {
            Some(runtime) => self.stop_then_terminate(runtime, timeout, None, ctx),
            None => self.terminate(None),
        }
    }

    /// Ends the pod for good and answers everyone who waits on it.
    fn terminate(&mut self, error: Option<PodError>) {
        if self.state == PodState::Terminated {
            return;
        }
        self.set_state(PodState::Terminated);
        self.suspend();
        self.leave();
        // Nothing more to report.
        self.reporter = None;
        let terminal = error.clone().unwrap_or(PodError::Closed);
        self.ending().terminal = Some(terminal.clone());
        self.waiters.answer(|| Err(terminal));
        let joined = error.clone().map_or(Ok(()), Err);
        // Told before those who close or join hear: whoever's close or join
        // returns finds the event sent to every subscriber already.
        self.emit(PodEvent::Terminated { error });
        let ending = self.ending();
        let report = ending
            .close_report
            .get_or_insert_with(CloseReport::graceful_now)
            .clone();
        ending.closers.answer(|| report.clone());
        let stopped = if report.forced {
            ChildStopped::Forced
        } else {
            ChildStopped::Gracefully
        };
        for reply in std::mem::take(&mut ending.stop_replies) {
            let _ = reply.send(stopped);
        }
        ending.joiners.answer(|| joined);
    }

    // ===== health =====

    fn arm_health(&mut self, ctx: &mut Context<Self>) {
        let Some(interval) = self.config.health.as_ref().map(|h| h.interval) else {
            return;
        };
        self.disarm_health();
        self.health.failures = 0;
        let interval = Duration::from_millis(interval);
        let generation = self.generation;
        // A task of its own holding the pod weakly: a timer in the pod's
        // context would keep the pod alive after its last address is gone.
        let pod = ctx.address().downgrade();
        self.health.ticker = Some(actix_rt::spawn(async move {
            let mut ticks = tokio::time::interval_at(Instant::now() + interval, interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match pod.upgrade() {
                    Some(pod) => pod.do_send(HealthTick { generation }),
                    None => return,
                }
            }
        }));
    }

    fn disarm_health(&mut self) {
        if let Some(ticker) = self.health.ticker.take() {
            ticker.abort();
        }
        self.health.in_flight = false;
    }

    fn check_health(&mut self, generation: u64, ctx: &mut Context<Self>) {
        let (Some(health), Some(runtime)) = (&self.config.health, &self.runtime) else {
            return;
        };
        if self.health.in_flight || self.state != PodState::Running || self.generation != generation
        {
            return;
        }
        self.health.in_flight = true;
        let threshold = health.failure_threshold;
        let check = runtime.check_health(Duration::from_millis(health.timeout));
        ctx.spawn(check.into_actor(self).map(move |outcome, act, ctx| {
            act.health.in_flight = false;
            if act.generation != generation {
                return;
            }
            // A runtime that failed by itself meanwhile (a check that
            // panicked, say) failed of that, not of an unhealthy answer.
            act.heed_failure(ctx);
            if act.state != PodState::Running {
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

    /// The last strong address is gone: close gracefully, then stop.
    fn stopping(&mut self, ctx: &mut Context<Self>) -> Running {
        if tokio::runtime::Handle::try_current().is_err() {
            // Polled one last time while the arbiter's runtime is dropped
            // (actix does so when an arbiter or the System stops): nothing
            // asynchronous can run any more.
            self.lost_arbiter();
            return Running::Stop;
        }
        match self.state {
            PodState::Idle | PodState::Terminated => Running::Stop,
            PodState::Closing => Running::Continue,
            _ => {
                tracing::debug!(pod = %self.config.name, "last address dropped: closing");
                self.begin_close(None, ctx);
                if self.state == PodState::Terminated {
                    return Running::Stop;
                }
                // actix does not poll what `stopping` spawned until the actor
                // is woken again: a message wakes it.
                ctx.address().do_send(Nudge);
                Running::Continue
            }
        }
    }
}

impl<R: Runtime> Drop for Pod<R> {
    /// Dropped without having terminated: its arbiter (or the whole System)
    /// was stopped under it. Everyone waiting still gets an answer.
    fn drop(&mut self) {
        self.lost_arbiter();
    }
}

impl<R: Runtime> Pod<R> {
    /// The pod's arbiter is going away under it: answer everyone now.
    fn lost_arbiter(&mut self) {
        self.disarm_health();
        if matches!(self.state, PodState::Idle | PodState::Terminated) {
            return;
        }
        self.ending().close_report = Some(CloseReport::forced(ForcedBy::ArbiterStopped));
        self.terminate(Some(PodError::ArbiterStopped));
    }
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

impl<R: Runtime> Handler<StartAndWait> for Pod<R> {
    type Result = StartAnswer;

    fn handle(&mut self, _: StartAndWait, ctx: &mut Context<Self>) -> Self::Result {
        if let Err(e) = self.handle(Start, ctx) {
            return Answer::now(Err(e));
        }
        self.handle(WaitStartSuccess, ctx)
    }
}

impl<R: Runtime> Handler<WaitStartSuccess> for Pod<R> {
    type Result = StartAnswer;

    fn handle(&mut self, _: WaitStartSuccess, ctx: &mut Context<Self>) -> Self::Result {
        self.heed_failure(ctx);
        let now = match (&self.state, &self.current, self.terminal()) {
            (PodState::Idle, _, _) => Err(PodError::NotStarted),
            (PodState::Running, Some(started), _) => Ok(started.clone()),
            (PodState::Terminated, _, Some(terminal)) => Err(terminal.clone()),
            (PodState::Closing | PodState::Terminated, _, _) => Err(PodError::Closed),
            _ => return self.waiters.later(),
        };
        Answer::now(now)
    }
}

impl<R: Runtime> Handler<Subscribe> for Pod<R> {
    type Result = ();

    fn handle(&mut self, Subscribe(subscriber): Subscribe, ctx: &mut Context<Self>) {
        self.heed_failure(ctx);
        if !self.subscribers.add(&subscriber) {
            return;
        }
        if let Some(started) = &self.current {
            subscriber.do_send(started.clone());
        }
    }
}

impl<R: Runtime> Handler<SubscribeEvents> for Pod<R> {
    type Result = ();

    fn handle(&mut self, SubscribeEvents(subscriber): SubscribeEvents, _: &mut Context<Self>) {
        if self.state == PodState::Terminated {
            // Nothing more will happen: the end, at once.
            let error = match self.terminal() {
                Some(PodError::Closed) | None => None,
                Some(e) => Some(e.clone()),
            };
            subscriber.do_send(PodEvent::Terminated { error });
            return;
        }
        self.event_subscribers.add(&subscriber);
    }
}

impl<R: Runtime> Pod<R> {
    /// Takes a call, or refuses it at once when the pod does not serve.
    #[inline]
    pub(crate) fn take_call(
        &mut self,
        req: R::Request,
        ctx: &mut Context<Self>,
    ) -> Result<TakenCall<R>, CallError> {
        self.heed_failure(ctx);
        let refusal = match (&self.state, &self.runtime) {
            (PodState::Running, Some(runtime)) => {
                return Ok(TakenCall {
                    runtime: runtime.clone(),
                    req,
                    // Timed only when measured.
                    timed: self.metrics.as_ref().map(|m| (m.call(), Instant::now())),
                });
            }
            (PodState::Closing | PodState::Terminated, _) => CallError::Closed,
            _ => CallError::NotReady,
        };
        drop_refused(req);
        Err(refusal)
    }
}

/// Drops a request the pod refused. Its `Drop` is the program's code: a
/// panic there is logged, and the pod goes on.
fn drop_refused<T>(req: T) {
    if let Err(panic) = runtime_actor::catch_outside(move || drop(req)) {
        tracing::error!(%panic, "dropping the request of a refused call panicked");
    }
}

/// A call the pod took, to be queued with its runtime.
pub(crate) struct TakenCall<R: Runtime> {
    runtime: RuntimeHandle<R>,
    req: R::Request,
    timed: Option<(Histogram, Instant)>,
}

/// The answer to [`WaitStartSuccess`] and [`StartAndWait`]: given at once
/// when the start is decided (or refused), or else when it is.
pub type StartAnswer = Answer<Result<Started, PodError>>;

/// The answer to a [`Call`] (or a typed call): the request is queued with
/// the runtime as the message is handled, so that a `Close` right behind it
/// cannot overtake it, and the runtime answers straight into the caller's
/// reply channel. No task sits in between, and nothing holds the pod: a
/// call in flight does not keep a pod whose last address was dropped from
/// closing (and so from stopping its runtime).
pub struct CallAnswer<R: Runtime, T> {
    call: Result<TakenCall<R>, CallError>,
    /// From the runtime's answer to the message's (a typed call decodes).
    map: fn(Result<R::Response, CallError>) -> Result<T, CallError>,
}

impl<R: Runtime, T> CallAnswer<R, T> {
    pub(crate) fn new(
        call: Result<TakenCall<R>, CallError>,
        map: fn(Result<R::Response, CallError>) -> Result<T, CallError>,
    ) -> Self {
        CallAnswer { call, map }
    }
}

impl<R, M, T> MessageResponse<Pod<R>, M> for CallAnswer<R, T>
where
    R: Runtime,
    M: actix::Message<Result = Result<T, CallError>>,
    T: Send + 'static,
{
    fn handle(self, _: &mut Context<Pod<R>>, tx: Option<OneshotSender<Result<T, CallError>>>) {
        let call = match self.call {
            Ok(call) => call,
            Err(refusal) => {
                if let Some(tx) = tx {
                    let _ = tx.send(Err(refusal));
                }
                return;
            }
        };
        let map = self.map;
        // Queued even when nobody waits for the answer (do_send).
        call.queue(move |answer| {
            if let Some(tx) = tx {
                let _ = tx.send(map(answer));
            }
        });
    }
}

impl<R: Runtime> TakenCall<R> {
    /// Queues the call with the runtime; its answer goes to `answer`, where
    /// the runtime gives it.
    fn queue(self, answer: impl FnOnce(Result<R::Response, CallError>) + Send + 'static) {
        let TakenCall {
            runtime,
            req,
            timed,
        } = self;
        runtime.call_with(req, move |given| {
            let took = timed.map(|(histogram, begun)| (histogram, begun.elapsed()));
            // The caller first: a recorder that panics cannot cost it its
            // answer.
            answer(given.map_err(call_error));
            if let Some((histogram, took)) = took {
                histogram.record(took.as_secs_f64());
            }
        });
    }
}

/// A request a deployment routes to this pod: its answer, or the pod's
/// refusal, goes to `then`, which takes it on to the caller or to the next
/// replica.
pub(crate) struct Routed<R: Runtime> {
    /// Taken by the pod; dropped unread otherwise (see `Drop`).
    req: Option<R::Request>,
    then: Option<Then<R::Response>>,
}

impl<R: Runtime> Routed<R> {
    pub(crate) fn new(req: R::Request, then: Then<R::Response>) -> Self {
        Routed {
            req: Some(req),
            then: Some(then),
        }
    }
}

impl<R: Runtime> actix::Message for Routed<R> {
    type Result = ();
}

impl<R: Runtime> Drop for Routed<R> {
    /// Dropped unread (by actix's mailbox as it closes, or by a send that
    /// found it closed), where a panic has no place: the request's `Drop`
    /// is the program's code, and is guarded; then `then`, dropped with the
    /// message, passes the answer on.
    fn drop(&mut self) {
        if let Some(req) = self.req.take() {
            drop_refused(req);
        }
    }
}

impl<R: Runtime> Handler<Routed<R>> for Pod<R> {
    type Result = ();

    fn handle(&mut self, mut routed: Routed<R>, ctx: &mut Context<Self>) {
        let (Some(req), Some(then)) = (routed.req.take(), routed.then.take()) else {
            return;
        };
        match self.take_call(req, ctx) {
            Ok(call) => call.queue(move |answer| then.give(answer)),
            Err(refusal) => then.give(Err(refusal)),
        }
    }
}

/// Where one routed request's answer goes, given exactly once: by the pod
/// that took or refused the request, or, when no pod read it (its mailbox
/// closed with the request in it), [`CallError::Closed`] as it is dropped.
pub(crate) struct Then<T>(Option<NextStep<T>>);

/// What a routed request's answer goes through next.
type NextStep<T> = Box<dyn FnOnce(Result<T, CallError>) + Send>;

impl<T> Then<T> {
    pub(crate) fn new(then: impl FnOnce(Result<T, CallError>) + Send + 'static) -> Self {
        Then(Some(Box::new(then)))
    }

    pub(crate) fn give(mut self, answer: Result<T, CallError>) {
        if let Some(then) = self.0.take() {
            then(answer);
        }
    }
}

impl<T> Drop for Then<T> {
    fn drop(&mut self) {
        let Some(then) = self.0.take() else {
            return;
        };
        // Dropped by actix's mailbox, which is no place for a panic.
        if let Err(panic) = runtime_actor::catch_outside(move || then(Err(CallError::Closed))) {
            tracing::error!(%panic, "routing a request no replica read panicked");
        }
    }
}

impl<R: Runtime, T> std::fmt::Debug for CallAnswer<R, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let refused = self.call.as_ref().err();
        f.debug_struct("CallAnswer")
            .field("refused", &refused)
            .finish_non_exhaustive()
    }
}

/// A runtime's answer to a call, as the pod's caller hears it.
fn call_error(e: RequestError) -> CallError {
    match e {
        RequestError::Exited { cause } => CallError::RuntimeExited { cause },
        RequestError::Runtime(e) => CallError::Runtime(e),
        RequestError::TimedOut { after } => CallError::TimedOut { after },
        RequestError::Busy { limit } => CallError::Busy { limit },
        RequestError::TooLarge { size, limit } => CallError::TooLarge { size, limit },
        // Refused after this pod took the call: the runtime is stopping
        // under it (a restart or a close).
        _ => CallError::NotReady,
    }
}

impl<R: Runtime> Handler<Call<R>> for Pod<R> {
    type Result = CallAnswer<R, R::Response>;

    fn handle(&mut self, Call(req): Call<R>, ctx: &mut Context<Self>) -> Self::Result {
        CallAnswer::new(self.take_call(req, ctx), |answer| answer)
    }
}

impl<R: Runtime> Handler<GetStatus> for Pod<R> {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, ctx: &mut Context<Self>) -> Self::Result {
        self.heed_failure(ctx);
        let error = match (&self.state, self.terminal()) {
            (PodState::Terminated, Some(PodError::Closed)) => None,
            (PodState::Terminated, Some(e)) => Some(e.to_string()),
            _ => None,
        };
        let uptime = self.running_since.map(|since| since.elapsed());
        MessageResult(PodStatus {
            name: self.config.name.clone(),
            role: self.config.role,
            state: self.state,
            generation: self.generation,
            restarts: self.restarts,
            uptime,
            since: uptime.map(|uptime| {
                let now = SystemTime::now();
                now.checked_sub(uptime).unwrap_or(now)
            }),
            pid: self.pid,
            last_failure: self.last_failure.as_ref().map(ToString::to_string),
            error,
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
    type Result = Answer<CloseReport>;

    fn handle(&mut self, close: Close, ctx: &mut Context<Self>) -> Self::Result {
        match self.state {
            PodState::Idle => self.terminate(None),
            PodState::Terminated | PodState::Closing => {}
            _ => self.begin_close(close.timeout, ctx),
        }
        if self.state == PodState::Terminated {
            let report = self
                .close_report()
                .cloned()
                .unwrap_or_else(CloseReport::graceful_now);
            return Answer::now(report);
        }
        self.ending().closers.later()
    }
}

impl<R: Runtime> Handler<Join> for Pod<R> {
    type Result = Answer<Result<(), PodError>>;

    fn handle(&mut self, _: Join, _: &mut Context<Self>) -> Self::Result {
        match (self.state, self.terminal()) {
            (PodState::Idle, _) => Answer::now(Err(PodError::NotStarted)),
            (PodState::Terminated, Some(PodError::Closed) | None) => Answer::now(Ok(())),
            (PodState::Terminated, Some(e)) => Answer::now(Err(e.clone())),
            _ => self.ending().joiners.later(),
        }
    }
}

impl<R: Runtime> Handler<Nudge> for Pod<R> {
    type Result = ();

    fn handle(&mut self, _: Nudge, _: &mut Context<Self>) {}
}

impl<R: Runtime> Handler<RestartDue> for Pod<R> {
    type Result = ();

    fn handle(&mut self, due: RestartDue, ctx: &mut Context<Self>) {
        if due.generation == self.generation {
            self.restart(ctx);
        }
    }
}

impl<R: Runtime> Handler<HealthTick> for Pod<R> {
    type Result = ();

    fn handle(&mut self, tick: HealthTick, ctx: &mut Context<Self>) {
        self.check_health(tick.generation, ctx);
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
            RuntimeEvent::Process { pid, .. } => self.pid = Some(pid),
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
        // A start that crossed our removal: the supervisor forgets us when
        // the removal arrives, and stops waiting for this start.
        if matches!(self.state, PodState::Closing | PodState::Terminated) {
            return;
        }
        self.report_to(msg.reporter);
        self.spawn_generation(ctx);
    }
}

impl<R: Runtime> Handler<RestartChild> for Pod<R> {
    type Result = ();

    fn handle(&mut self, msg: RestartChild, ctx: &mut Context<Self>) {
        if matches!(self.state, PodState::Closing | PodState::Terminated) {
            return;
        }
        self.restarts += 1;
        self.report_to(msg.reporter);
        self.spawn_generation(ctx);
    }
}

impl<R: Runtime> Handler<StopChild> for Pod<R> {
    type Result = ResponseActFuture<Self, ChildStopped>;

    fn handle(&mut self, msg: StopChild, ctx: &mut Context<Self>) -> Self::Result {
        if matches!(self.state, PodState::Idle | PodState::Terminated) {
            return Box::pin(actix::fut::ready(ChildStopped::Gracefully));
        }
        if msg.reason == StopReason::Removed && self.state != PodState::Closing {
            // Removed by the supervisor's owner: that ends the pod.
            self.registration = None;
            match self.live_runtime() {
                Some(runtime) => {
                    self.stop_then_terminate(runtime, None, Some(PodError::Removed), ctx)
                }
                None => self.terminate(Some(PodError::Removed)),
            }
        }
        if matches!(self.state, PodState::Closing | PodState::Terminated) {
            if self.state == PodState::Terminated {
                let forced = self.close_report().is_some_and(|r| r.forced);
                let stopped = if forced {
                    ChildStopped::Forced
                } else {
                    ChildStopped::Gracefully
                };
                return Box::pin(actix::fut::ready(stopped));
            }
            let (tx, rx) = oneshot::channel();
            self.ending().stop_replies.push(tx);
            return Box::pin(
                async move { rx.await.unwrap_or(ChildStopped::Forced) }.into_actor(self),
            );
        }
        // Stopped for a strategy restart, a shutdown or a give-up: a
        // RestartChild follows, or a verdict saying none will.
        self.set_state(PodState::Restarting);
        self.suspend();
        let Some(runtime) = self.live_runtime() else {
            return Box::pin(actix::fut::ready(ChildStopped::Gracefully));
        };
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

impl<R: Runtime> Handler<ChildVerdict> for Pod<R> {
    type Result = ();

    fn handle(&mut self, msg: ChildVerdict, ctx: &mut Context<Self>) {
        self.on_verdict(msg, ctx);
    }
}

impl CloseReport {
    fn from_stop(report: &StopReport) -> Self {
        CloseReport {
            forced: report.forced,
            stuck: report.stuck,
            took: report.took,
            forced_by: report.forced.then_some(ForcedBy::Timeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use runtime_actor::{ProcessSpec, RuntimeContext, RuntimeError};

    use super::*;

    struct Idle;

    impl Runtime for Idle {
        type Request = ();
        type Response = ();

        async fn setup(&mut self, _: &mut RuntimeContext) -> Result<(), RuntimeError> {
            Ok(())
        }

        async fn handle(&mut self, (): ()) -> Result<(), RuntimeError> {
            Ok(())
        }
    }

    fn placement(runtime: RuntimeSpec, kind: PlacementKind) -> Placement {
        let mut config = PodConfig::new("p", runtime);
        config.placement = kind;
        match &config.runtime {
            RuntimeSpec::Process { .. } | RuntimeSpec::Container { .. } => Pod::new(
                config,
                ProcessRuntime::factory(ProcessSpec::new("/bin/true")),
            )
            .runtime_placement(),
            RuntimeSpec::InProcess { .. } => {
                Pod::new(config, RuntimeFactory::new(|_| Idle)).runtime_placement()
            }
        }
    }

    /// A request whose `Drop` panics.
    struct Bomb;

    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("the request's drop panicked");
        }
    }

    struct Touchy;

    impl Runtime for Touchy {
        type Request = Bomb;
        type Response = ();

        async fn setup(&mut self, _: &mut RuntimeContext) -> Result<(), RuntimeError> {
            Ok(())
        }

        async fn handle(&mut self, _: Bomb) -> Result<(), RuntimeError> {
            Ok(())
        }
    }

    /// Dropped unread (by a mailbox closing under it): the request's
    /// panicking `Drop` is contained, and the answer still goes on.
    #[test]
    fn a_routed_request_dropped_unread_contains_its_drop_and_answers() {
        let (tx, answers) = std::sync::mpsc::channel();
        let routed = Routed::<Touchy>::new(Bomb, Then::new(move |answer| tx.send(answer).unwrap()));
        drop(routed);
        assert!(matches!(answers.try_recv(), Ok(Err(CallError::Closed))));
    }

    #[test]
    fn a_routed_request_no_pod_read_is_answered_closed_and_once() {
        let (tx, answers) = std::sync::mpsc::channel();
        drop(Then::<u32>::new(move |answer| tx.send(answer).unwrap()));
        assert!(matches!(answers.try_recv(), Ok(Err(CallError::Closed))));
        let (tx, answers) = std::sync::mpsc::channel();
        Then::<u32>::new(move |answer| tx.send(answer).unwrap()).give(Ok(3));
        assert!(matches!(answers.try_recv(), Ok(Ok(3))));
        assert!(
            answers.try_recv().is_err(),
            "given once, not again by its drop"
        );
    }

    #[actix::test]
    async fn auto_places_a_process_runtime_beside_its_pod_and_user_code_apart() {
        let process = || RuntimeSpec::process("/bin/true");
        let in_process = || RuntimeSpec::InProcess { name: "x".into() };
        assert!(matches!(
            placement(process(), PlacementKind::Auto),
            Placement::Current
        ));
        let container: PodConfig = PodConfig::from_str_with_env(
            "name = \"c\"\nruntime = { kind = \"container\", image = \"x\" }",
            crate::ConfigFormat::Toml,
            "test",
            &Default::default(),
        )
        .unwrap();
        assert!(matches!(
            placement(container.runtime, PlacementKind::Auto),
            Placement::Current
        ));
        assert!(matches!(
            placement(in_process(), PlacementKind::Auto),
            Placement::Dedicated
        ));
        // Said outright, either kind goes where it is told.
        assert!(matches!(
            placement(process(), PlacementKind::Dedicated),
            Placement::Dedicated
        ));
        assert!(matches!(
            placement(in_process(), PlacementKind::Shared),
            Placement::Current
        ));
    }
}
