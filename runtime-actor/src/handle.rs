use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Actor, Addr, Arbiter, ArbiterHandle, Recipient, WeakRecipient};
use tokio::time::{self, Instant};

use crate::actor::{self, Launch, Op, RuntimeActor};
use crate::env::RuntimeEnv;
use crate::error::{FailureCause, RequestError, RuntimeError};
use crate::fate::Fate;
use crate::lane::Lane;
use crate::messages::{Ask, AskHealth, KillRuntime, RuntimeEvent, StopRuntime};
use crate::monitor::{self, monitor, Await, Monitor, Report, Signals, Watcher};
use crate::reply::Reply;
use crate::runtime::{Runtime, RuntimeFactory};

/// Where a runtime's actor runs.
#[derive(Debug, Clone, Default)]
pub enum Placement {
    /// On an arbiter (thread) of its own, stopped and joined when the runtime
    /// ends: the isolation of Jina's one process per pod, at the cost of a
    /// thread. The default.
    #[default]
    Dedicated,
    /// On an existing arbiter, shared with other light runtimes. A runtime that
    /// blocks this thread blocks its neighbours; a panic does not harm them.
    Shared(ArbiterHandle),
    /// On the arbiter of whoever spawns it, shared as with
    /// [`Placement::Shared`], and started in place: no trip through the
    /// arbiter's queue, so the cheapest start. Only in an actix context.
    Current,
}

/// How to start one runtime generation.
#[derive(Debug, Clone)]
#[must_use = "a config does nothing until it is passed to RuntimeActor::spawn"]
pub struct RuntimeConfig {
    name: Arc<str>,
    generation: u64,
    env: RuntimeEnv,
    placement: Placement,
    start_timeout: Option<Duration>,
    stop_timeout: Duration,
    kill_grace: Duration,
    watcher: Option<Watcher>,
}

impl RuntimeConfig {
    /// How long a forced stop waits for the runtime's actor to end before it
    /// reports the runtime stuck, unless [`RuntimeConfig::kill_grace`] says
    /// otherwise.
    pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(1);

    /// How long a runtime that failed its start deadline is given to stop
    /// gracefully, unless [`RuntimeConfig::stop_timeout`] says otherwise.
    pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(5);

    /// A config for the pod `name`: generation 0, empty environment, a
    /// dedicated arbiter and no start deadline.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        RuntimeConfig {
            name: name.into(),
            generation: 0,
            env: RuntimeEnv::new(),
            placement: Placement::Dedicated,
            start_timeout: None,
            stop_timeout: RuntimeConfig::DEFAULT_STOP_TIMEOUT,
            kill_grace: RuntimeConfig::DEFAULT_KILL_GRACE,
            watcher: None,
        }
    }

    /// Who receives the generation's [`RuntimeEvent`]s. Without one, the
    /// handle's [`ready`](RuntimeHandle::ready) and
    /// [`stop`](RuntimeHandle::stop) still tell the owner what happened.
    /// The runtime keeps the watcher alive until it has exited.
    pub fn watcher(mut self, watcher: Recipient<RuntimeEvent>) -> Self {
        self.watcher = Some(Watcher::Strong(watcher));
        self
    }

    /// Like [`watcher`](RuntimeConfig::watcher), but held weakly: an owner
    /// that watches its own runtime this way is not kept alive by it, so
    /// dropping the owner's last address can end both.
    pub fn weak_watcher(mut self, watcher: WeakRecipient<RuntimeEvent>) -> Self {
        self.watcher = Some(Watcher::Weak(watcher));
        self
    }

    /// Which start this is; events carry it so stale ones can be ignored.
    pub fn generation(mut self, generation: u64) -> Self {
        self.generation = generation;
        self
    }

    /// The pod's environment, given to the factory and the runtime.
    pub fn env(mut self, env: RuntimeEnv) -> Self {
        self.env = env;
        self
    }

    /// Where the runtime's actor runs.
    pub fn placement(mut self, placement: Placement) -> Self {
        self.placement = placement;
        self
    }

    /// The time setup may take, counted from the spawn, before the runtime
    /// fails with [`FailureCause::TimedOut`] and is killed.
    /// [`RuntimeContext::extend_deadline`](crate::RuntimeContext::extend_deadline)
    /// pushes it back. `None` waits for ever.
    pub fn start_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// How long a runtime that missed its start deadline has for its
    /// abandoned setup and `teardown` before it is stopped by force (the
    /// owner's own [`RuntimeHandle::stop`] deadline applies as well).
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.stop_timeout = timeout;
        self
    }

    /// How long a kill may take before the runtime is reported stuck.
    pub fn kill_grace(mut self, grace: Duration) -> Self {
        self.kill_grace = grace;
        self
    }
}

/// How a [`RuntimeHandle::stop`] went.
#[derive(Debug, Clone)]
pub struct StopReport {
    /// The runtime did not end within the stop deadline and was stopped by
    /// force (its actor stopped, and its arbiter, when dedicated).
    pub forced: bool,
    /// Even the forced stop did not end it within the kill grace: its thread
    /// is stuck in blocking code and is left behind.
    pub stuck: bool,
    /// How long the stop took.
    pub took: Duration,
    /// The failure that ended the runtime, if it failed rather than stopped
    /// (a panic in teardown, say).
    pub cause: Option<FailureCause>,
}

impl StopReport {
    /// Whether teardown finished within the deadline.
    pub fn graceful(&self) -> bool {
        !self.forced
    }
}

/// The owner's side of one runtime generation: requests, health checks and
/// stop. Cloning it is cheap (one reference count: an actix `Addr` clone
/// allocates); every clone addresses the same runtime.
pub struct RuntimeHandle<R: Runtime>(Arc<Shared<R>>);

struct Shared<R: Runtime> {
    addr: Addr<RuntimeActor<R>>,
    /// Started in place ([`Placement::Current`]), on the owner's thread:
    /// the lane that takes the owner's requests straight into the runtime's
    /// queue, on the thread they share.
    lane: Option<Lane>,
    generation: u64,
    arbiter: Option<ArbiterHandle>,
    /// Awaits the outcome; through it, the generation's fate (its failure
    /// cause, for replies).
    outcome: Await,
    kill_grace: Duration,
}

// ===== impl RuntimeActor (spawn) =====

impl<R: Runtime> RuntimeActor<R> {
    /// Starts one generation of a runtime and the monitor that watches it.
    ///
    /// The runtime is built by `factory` on its arbiter and set up there. The
    /// monitor runs on the caller's arbiter: it enforces the start deadline,
    /// sends [`RuntimeEvent`]s to the config's watcher, and joins a dedicated
    /// arbiter's thread before it reports `Exited`. In place
    /// ([`Placement::Current`]) there is no monitor task: the runtime's actor,
    /// on the same thread, does the same itself.
    ///
    /// # Panics
    ///
    /// Panics when called outside an actix system (it spawns on the current
    /// arbiter), like [`actix::Actor::start`]. When a dedicated arbiter
    /// cannot be created (the OS has no thread or descriptor left), it does
    /// not panic: the generation fails at once with
    /// [`FailureCause::Error`] giving the OS's reason.
    pub fn spawn(config: RuntimeConfig, factory: RuntimeFactory<R>) -> RuntimeHandle<R> {
        let fate = Arc::new(Fate::default());
        // A dedicated arbiter can fail to start (no thread, no descriptors
        // left): the generation then fails at once, with the OS's reason,
        // on the caller's arbiter instead.
        let in_place = matches!(config.placement, Placement::Current);
        let lane = in_place.then(Lane::next);
        let (dedicated, arbiter) = match config.placement {
            Placement::Dedicated => match Arbiter::try_new() {
                Ok(arbiter) => {
                    let handle = arbiter.handle();
                    (Some(arbiter), handle)
                }
                Err(e) => {
                    let error = RuntimeError::fatal(format!(
                        "cannot start the runtime's arbiter thread: {e}"
                    ))
                    .with_source(e);
                    // Set before the actor starts: it fails at once with it.
                    let _ = fate.set(FailureCause::Error(error));
                    (None, Arbiter::current())
                }
            },
            Placement::Shared(handle) => (None, handle),
            Placement::Current => (None, Arbiter::current()),
        };
        let (outcome_tx, outcome) = monitor::outcome(&fate);
        let report = Report::new(
            config.watcher,
            config.generation,
            config.start_timeout,
            outcome_tx,
        );
        // In place, the signals go straight into the report; elsewhere, to
        // a monitor on this arbiter, which sees the runtime fail even when
        // its thread is blocked.
        let (signals, monitored) = match in_place {
            true => (Signals::Direct(Arc::new(Mutex::new(report))), None),
            false => {
                let (signals, signals_rx) = futures::channel::mpsc::unbounded();
                (Signals::Monitor(signals), Some((signals_rx, report)))
            }
        };
        let launch = Launch {
            factory,
            env: config.env,
            name: Arc::clone(&config.name),
            generation: config.generation,
            signals,
            stop_timeout: config.stop_timeout,
            fate: Arc::clone(&fate),
            dedicated: dedicated.is_some(),
            lane,
        };
        let addr = match in_place {
            true => RuntimeActor::new(launch).start(),
            false => RuntimeActor::start_in_arbiter(&arbiter, move |_| RuntimeActor::new(launch)),
        };
        let dedicated_handle = dedicated.as_ref().map(|_| arbiter);
        if let Some((signals, report)) = monitored {
            actix_rt::spawn(monitor(Monitor {
                signals,
                report,
                stop_timeout: config.stop_timeout,
                runtime: addr.clone(),
                arbiter: dedicated,
            }));
        }
        RuntimeHandle(Arc::new(Shared {
            addr,
            lane,
            generation: config.generation,
            arbiter: dedicated_handle,
            outcome,
            kill_grace: config.kill_grace,
        }))
    }
}

// ===== impl RuntimeHandle =====

impl<R: Runtime> RuntimeHandle<R> {
    /// The generation this handle addresses.
    pub fn generation(&self) -> u64 {
        self.0.generation
    }

    /// The runtime actor's address, for sending [`Request`](crate::Request)s directly.
    ///
    /// Messages sent there keep their order with each other, but not with
    /// the handle's requests: a runtime in place takes those on its own
    /// thread straight into its queue, past its mailbox.
    pub fn addr(&self) -> &Addr<RuntimeActor<R>> {
        &self.0.addr
    }

    /// The failure that ended (or is ending) the runtime, once there is one.
    ///
    /// Known as the failure happens, on the runtime's thread: before its
    /// [`RuntimeEvent::Failed`](crate::RuntimeEvent::Failed) reaches the
    /// watcher, and before the request that caused it is answered.
    #[inline]
    pub fn failure(&self) -> Option<FailureCause> {
        self.0.outcome.fate().get().cloned()
    }

    /// Resolves when the runtime is ready, with how long its setup took.
    ///
    /// # Errors
    ///
    /// [`RequestError::Exited`] with the cause when it failed (or was
    /// stopped) before it was ready.
    pub fn ready(&self) -> impl Future<Output = Result<Duration, RequestError>> + 'static {
        let outcome = self.0.outcome.clone();
        async move {
            outcome
                .ready()
                .await
                .unwrap_or(Err(RequestError::Exited { cause: None }))
        }
    }

    /// Whether the runtime has ended and its monitor reported `Exited`.
    pub fn has_exited(&self) -> bool {
        self.0.outcome.has_exited()
    }

    /// Sends a request to the runtime and resolves with its answer.
    ///
    /// The request is queued at once, not when the future is first polled,
    /// so requests and a [`stop`](RuntimeHandle::stop) reach the runtime in
    /// the order they were made: a request made before a stop is answered
    /// before `teardown` runs. The future owns what it needs, so it can
    /// outlive the handle.
    ///
    /// # Errors
    ///
    /// [`RequestError::NotReady`] before the runtime is ready,
    /// [`RequestError::Stopping`] after a stop, [`RequestError::Runtime`] when
    /// the runtime answered with an error, and [`RequestError::Exited`] with the
    /// cause when it ended before it answered.
    pub fn call(
        &self,
        req: R::Request,
    ) -> impl Future<Output = Result<R::Response, RequestError>> + 'static {
        let (reply, answer) = Reply::awaited(Arc::clone(self.0.outcome.fate()));
        self.ask(Op::Request(req, reply));
        answer
    }

    /// Sends a request to the runtime and hands its answer to `answer`,
    /// which runs exactly once, with the same answers as
    /// [`call`](RuntimeHandle::call)'s future.
    ///
    /// It is the cheaper way when the answer only has to be passed on (into
    /// an actix reply channel, say): no future, no task. The request is
    /// queued at once, like `call`'s. `answer` runs where the answer is
    /// given, usually on the runtime's thread, so it must be short and must
    /// not block; it runs here when the runtime's actor is already gone. A
    /// panic in it is caught and logged (an ERROR event), and the runtime
    /// goes on serving.
    pub fn call_with(
        &self,
        req: R::Request,
        answer: impl FnOnce(Result<R::Response, RequestError>) + Send + 'static,
    ) {
        self.ask(Op::Request(
            req,
            Reply::callback(answer, Arc::clone(self.0.outcome.fate())),
        ));
    }

    /// Queues a request or a health check: in place, on the runtime's
    /// thread, straight into its queue; otherwise through the actor's
    /// mailbox. The owner's messages keep the order they were made in: while
    /// any it sent through the mailbox (from another thread, or a stop) is
    /// still on its way, the next ones follow it there.
    fn ask(&self, op: Op<R>) {
        let fate = self.0.outcome.fate();
        let op = match self.0.lane {
            Some(lane) if fate.lane_clear() => match actor::ask_in_place(lane, op) {
                None => return,
                Some(op) => op,
            },
            _ => op,
        };
        if self.0.lane.is_some() {
            fate.mailing();
        }
        match op {
            Op::Request(req, reply) => self.0.addr.do_send(Ask { req, reply }),
            Op::Health(reply) => self.0.addr.do_send(AskHealth { reply }),
            // An owner asks for a teardown with a stop.
            Op::Teardown => {}
        }
    }

    /// Sends a stop or a kill to the actor; from now on this owner's
    /// requests follow it through the mailbox.
    fn send_stop(&self, kill: Option<KillRuntime>) {
        match kill {
            Some(kill) => self.0.addr.do_send(kill),
            None => self.0.addr.do_send(StopRuntime),
        }
        self.0.outcome.fate().stop_mailed();
    }

    /// Runs [`Runtime::health`] between requests, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`RuntimeHandle::call`], plus [`RequestError::TimedOut`] when the
    /// check took longer than `timeout`.
    pub fn check_health(
        &self,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), RequestError>> + 'static {
        let (reply, check) = Reply::awaited(Arc::clone(self.0.outcome.fate()));
        self.ask(Op::Health(reply));
        async move {
            time::timeout(timeout, check)
                .await
                .unwrap_or(Err(RequestError::TimedOut { after: timeout }))
        }
    }

    /// Fails the runtime from outside with `cause`: it is stopped at once,
    /// without teardown, and reported `Failed` then `Exited` with that cause.
    ///
    /// This is how an owner acts on a decision the runtime cannot make about
    /// itself, such as [`FailureCause::Unhealthy`] after too many failed
    /// health checks. A runtime whose thread is blocked ends when it unblocks;
    /// follow with [`stop`](RuntimeHandle::stop) to bound the wait.
    pub fn fail(&self, cause: FailureCause) {
        self.send_stop(Some(KillRuntime { cause: Some(cause) }));
    }

    /// Stops the runtime: gracefully within `timeout`, then by force.
    ///
    /// Queued requests are answered and `teardown` runs; a runtime still in
    /// setup has its setup dropped. Past `timeout` the actor is stopped (and a
    /// dedicated arbiter with it); if even that does not end it within the
    /// kill grace, its thread is blocked and the report says it is stuck.
    /// Stopping a runtime that has already ended returns at once.
    pub fn stop(&self, timeout: Duration) -> impl Future<Output = StopReport> + 'static {
        let handle = self.clone();
        async move {
            let Shared {
                lane,
                arbiter,
                outcome: exit,
                kill_grace,
                ..
            } = &*handle.0;
            let kill_grace = *kill_grace;
            // Already ended (a failed runtime usually is by the time its
            // owner hears of it): no stop to send, no timer to arm, and no
            // time taken.
            let ended = exit.exit();
            if let Some(cause) = ended {
                return StopReport {
                    forced: false,
                    stuck: false,
                    took: Duration::ZERO,
                    cause,
                };
            }
            let begun = Instant::now();
            handle.send_stop(None);
            // In place, a runtime that stops at once (most do) has ended by
            // the time this task runs again: it gets that turn before the
            // timeout's timer is armed, which costs an idle thread a write
            // to its driver's waker.
            if lane.is_some() {
                yield_once().await;
            }
            let mut forced = false;
            let mut ended = match exit.exit() {
                Some(cause) => Some(cause),
                None => time::timeout(timeout, wait_exit(exit)).await.ok(),
            };
            if ended.is_none() {
                forced = true;
                handle.send_stop(Some(KillRuntime { cause: None }));
                if let Some(arbiter) = arbiter {
                    arbiter.stop();
                }
                ended = time::timeout(kill_grace, wait_exit(exit)).await.ok();
            }
            StopReport {
                forced,
                stuck: ended.is_none(),
                took: begun.elapsed(),
                cause: ended.flatten(),
            }
        }
    }
}

impl<R: Runtime> Clone for RuntimeHandle<R> {
    fn clone(&self) -> Self {
        RuntimeHandle(Arc::clone(&self.0))
    }
}

impl<R: Runtime> fmt::Debug for RuntimeHandle<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeHandle")
            .field("runtime", &std::any::type_name::<R>())
            .field("generation", &self.0.generation)
            .field("exited", &self.has_exited())
            .finish()
    }
}

/// Pending once, waking its task at once: the task runs again after the
/// tasks already woken on its thread. (`tokio::task::yield_now` defers the
/// wake until the thread has polled its driver, a system call.)
async fn yield_once() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}

/// Resolves with the exit cause once the monitor has reported `Exited`.
async fn wait_exit(exit: &Await) -> Option<FailureCause> {
    // None: the monitor is gone with its arbiter, nothing will report any
    // more.
    exit.exited().await.flatten()
}
