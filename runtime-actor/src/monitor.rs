use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use actix::{Addr, Arbiter, Recipient, WeakRecipient};
use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender};
use futures::StreamExt;
use tokio::sync::Notify;
use tokio::time::{self, Instant};

use crate::actor::RuntimeActor;
use crate::context::Signal;
use crate::error::{FailureCause, RequestError};
use crate::fate::Fate;
use crate::messages::{KillRuntime, RuntimeEvent, StopRuntime};
use crate::runtime::Runtime;

/// Who receives a generation's [`RuntimeEvent`]s: held strongly, or weakly
/// by an owner that must not be kept alive by its own runtime.
#[derive(Debug, Clone)]
pub(crate) enum Watcher {
    Strong(Recipient<RuntimeEvent>),
    Weak(WeakRecipient<RuntimeEvent>),
}

impl Watcher {
    fn tell(&self, event: RuntimeEvent) {
        match self {
            Watcher::Strong(watcher) => watcher.do_send(event),
            Watcher::Weak(watcher) => {
                if let Some(watcher) = watcher.upgrade() {
                    watcher.do_send(event);
                }
            }
        }
    }

    /// Holds the watcher strongly from now on: once the generation has
    /// failed it is about to end, and its last events need not upgrade the
    /// weak recipient one at a time.
    fn hold(&mut self) {
        if let Watcher::Weak(watcher) = self {
            if let Some(strong) = watcher.upgrade() {
                *self = Watcher::Strong(strong);
            }
        }
    }
}

/// What a generation's handles wait for: its readiness, then its exit.
///
/// Neither holds a failure, only whether there was one: the failure is the
/// one recorded in the generation's [`Fate`] before its report heard of it
/// (the first recorded stands). Read from there, it is neither copied nor
/// kept twice. A stop records none; a failure recorded after the report
/// settled a stop (a start deadline passing as the stopped runtime ends)
/// does not turn the stop into that failure.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    ready: Option<Readiness>,
    exit: Option<Ended>,
    /// Its report is gone (with the arbiter of its monitor): nothing more
    /// will be settled.
    closed: bool,
}

/// Whether a generation became ready, once that is decided.
#[derive(Debug, Clone, Copy)]
enum Readiness {
    /// Ready after its setup took this long.
    After(Duration),
    /// Failed or stopped first.
    Never(Ended),
}

/// How a generation ended (or ended before it was ready).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// Stopped: no failure.
    Stopped,
    /// With the failure its fate holds.
    Failed,
}

impl Ended {
    fn of(cause: &Option<FailureCause>) -> Self {
        match cause {
            Some(_) => Ended::Failed,
            None => Ended::Stopped,
        }
    }
}

/// A generation's outcome, settled by its report and awaited by its
/// handles: a mutex and one wait list (tokio's watch channel keeps eight,
/// 448 B a runtime). It lives in the generation's [`Fate`], which all of
/// them hold already.
#[derive(Debug, Default)]
pub(crate) struct Outcomes {
    state: Mutex<Outcome>,
    changed: Notify,
}

/// The report's side of a generation's [`Outcome`].
#[derive(Debug)]
pub(crate) struct Settle(Arc<Fate>);

/// The handles' side of a generation's [`Outcome`].
#[derive(Debug, Clone)]
pub(crate) struct Await(Arc<Fate>);

impl Settle {
    /// The generation's fate, whose outcome this settles.
    fn fate(&self) -> &Fate {
        &self.0
    }
}

impl Await {
    /// The generation's fate, whose outcome this awaits.
    pub(crate) fn fate(&self) -> &Arc<Fate> {
        &self.0
    }

    /// The failure that kept the generation from being ready, or that
    /// ended it: `None` when it was stopped.
    fn cause(&self, ended: Ended) -> Option<FailureCause> {
        match ended {
            Ended::Stopped => None,
            Ended::Failed => self.0.get().cloned(),
        }
    }

    /// Whether it became ready, and how long its setup took: once that is
    /// decided (`None` when its report went away first).
    pub(crate) async fn ready(&self) -> Option<Result<Duration, RequestError>> {
        let readiness = self.wait_for(|o| o.ready).await?;
        Some(match readiness {
            Readiness::After(setup) => Ok(setup),
            Readiness::Never(ended) => Err(RequestError::Exited {
                cause: self.cause(ended),
            }),
        })
    }

    /// Its exit, with its failure if it failed, once it has exited.
    pub(crate) fn exit(&self) -> Option<Option<FailureCause>> {
        self.peek(|o| o.exit).map(|ended| self.cause(ended))
    }

    /// Whether it has exited.
    pub(crate) fn has_exited(&self) -> bool {
        self.peek(|o| o.exit.is_some())
    }

    /// Waits for its exit, with its failure if it failed (`None` when its
    /// report went away first).
    pub(crate) async fn exited(&self) -> Option<Option<FailureCause>> {
        let ended = self.wait_for(|o| o.exit).await?;
        Some(self.cause(ended))
    }
}

/// The two sides of `fate`'s outcome, nothing settled yet.
pub(crate) fn outcome(fate: &Arc<Fate>) -> (Settle, Await) {
    (Settle(Arc::clone(fate)), Await(Arc::clone(fate)))
}

impl Settle {
    /// Changes the outcome; the waiters hear of it when `change` says it
    /// changed anything.
    fn modify(&self, change: impl FnOnce(&mut Outcome) -> bool) {
        let outcome = &self.0.outcome;
        let changed = change(&mut lock(&outcome.state));
        if changed {
            outcome.changed.notify_waiters();
        }
    }
}

impl Drop for Settle {
    fn drop(&mut self) {
        let outcome = &self.0.outcome;
        lock(&outcome.state).closed = true;
        outcome.changed.notify_waiters();
    }
}

impl Await {
    /// Reads the outcome as it is now.
    fn peek<T>(&self, read: impl FnOnce(&Outcome) -> T) -> T {
        read(&lock(&self.0.outcome.state))
    }

    /// Waits until `read` finds what it looks for; `None` when the report
    /// went away without settling it.
    async fn wait_for<T>(&self, mut read: impl FnMut(&Outcome) -> Option<T>) -> Option<T> {
        loop {
            // Registered before the outcome is read, so that a change
            // between the read and the wait is not missed.
            let outcomes = &self.0.outcome;
            let notified = outcomes.changed.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            {
                let outcome = lock(&outcomes.state);
                if let Some(found) = read(&outcome) {
                    return Some(found);
                }
                if outcome.closed {
                    return None;
                }
            }
            notified.await;
        }
    }
}

/// Where a generation's [`Signal`]s go.
#[derive(Clone)]
pub(crate) enum Signals {
    /// To its monitor, a task on the owner's arbiter: the runtime runs on
    /// another one.
    Monitor(UnboundedSender<Signal>),
    /// Into its report at once: the runtime runs in place, on its owner's
    /// arbiter, where a monitor task would only add a task and a hop to
    /// every start. The actor then keeps the start deadline itself.
    Direct(Arc<Mutex<Report>>),
}

impl Signals {
    pub(crate) fn send(&self, signal: Signal) {
        match self {
            Signals::Monitor(monitor) => {
                let _ = monitor.unbounded_send(signal);
            }
            Signals::Direct(report) => lock(report).on(signal),
        }
    }
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Signals::Monitor(_) => "Signals::Monitor",
            Signals::Direct(_) => "Signals::Direct",
        })
    }
}

/// A generation's report or outcome. Each is held only for the length of
/// one signal or one read, by code that calls nothing of the user's: a
/// panic cannot poison it, and a poisoned one would still hold a
/// consistent value.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What one generation tells its watcher and its handles, from its
/// signals: the events, the start deadline, readiness and the exit.
pub(crate) struct Report {
    watcher: Option<Watcher>,
    generation: u64,
    begun: Instant,
    /// The start deadline, until the runtime is ready or has failed.
    pub(crate) deadline: Option<Instant>,
    waiting_for: Option<String>,
    failed: bool,
    /// Settles the outcome, and records a timeout in the generation's fate.
    outcome: Settle,
}

impl Report {
    pub(crate) fn new(
        watcher: Option<Watcher>,
        generation: u64,
        start_timeout: Option<Duration>,
        outcome: Settle,
    ) -> Self {
        let begun = Instant::now();
        Report {
            watcher,
            generation,
            begun,
            deadline: start_timeout.and_then(|t| begun.checked_add(t)),
            waiting_for: None,
            failed: false,
            outcome,
        }
    }

    fn tell(&self, event: RuntimeEvent) {
        if let Some(watcher) = &self.watcher {
            watcher.tell(event);
        }
    }

    /// Settles the outcome [`RuntimeHandle::ready`](crate::RuntimeHandle::ready)
    /// waits for, once.
    fn settle(&self, outcome: Readiness) {
        self.outcome.modify(|o| {
            let unset = o.ready.is_none();
            if unset {
                o.ready = Some(outcome);
            }
            unset
        });
    }

    pub(crate) fn on(&mut self, signal: Signal) {
        let generation = self.generation;
        match signal {
            Signal::Progressed { note, extend } => {
                if let Some(at) = self.deadline {
                    // An extension past what the clock can count (say
                    // `Duration::MAX`, "as long as it takes") lifts the
                    // deadline instead of overflowing.
                    self.deadline = Instant::now()
                        .checked_add(extend)
                        .map(|until| at.max(until));
                }
                self.tell(RuntimeEvent::Progressed {
                    generation,
                    note,
                    extend,
                });
            }
            Signal::Waiting { what } => self.waiting_for = Some(what),
            Signal::Process { pid } => {
                if !self.failed {
                    self.tell(RuntimeEvent::Process { generation, pid });
                }
            }
            Signal::Ready { setup, pid } => {
                self.deadline = None;
                if !self.failed {
                    self.settle(Readiness::After(setup));
                    self.tell(RuntimeEvent::Ready {
                        generation,
                        setup,
                        pid,
                    });
                }
            }
            Signal::Failed { cause } => {
                self.deadline = None;
                if !self.failed {
                    if let Some(watcher) = &mut self.watcher {
                        watcher.hold();
                    }
                    self.fail(cause);
                }
            }
            Signal::Exited { cause } => {
                self.ending(&cause);
                self.ended(cause);
            }
        }
    }

    fn fail(&mut self, cause: FailureCause) {
        self.failed = true;
        self.settle(Readiness::Never(Ended::Failed));
        self.tell(RuntimeEvent::Failed {
            generation: self.generation,
            cause,
        });
    }

    /// The start deadline has passed: the runtime fails with
    /// [`FailureCause::TimedOut`] unless it already failed. The caller
    /// stops it.
    pub(crate) fn time_out(&mut self) {
        self.deadline = None;
        let cause = FailureCause::TimedOut {
            after: self.begun.elapsed(),
            waiting_for: self.waiting_for.take(),
        };
        // Set here, by whoever keeps the deadline: a monitor must not wait
        // for the actor, whose thread may be the thing that is blocked.
        if self.outcome.fate().set(cause.clone()).is_ok() {
            self.fail(cause);
        }
    }

    /// The actor has ended: a failure nobody reported yet is told, and
    /// readiness settled for good.
    fn ending(&mut self, cause: &Option<FailureCause>) {
        if let (Some(cause), false) = (cause, self.failed) {
            self.tell(RuntimeEvent::Failed {
                generation: self.generation,
                cause: cause.clone(),
            });
        }
        self.settle(Readiness::Never(Ended::of(cause)));
    }

    /// The generation is over (its thread joined, when it had one): the
    /// handles and the watcher hear of it, and the watcher is let go.
    fn ended(&mut self, cause: Option<FailureCause>) {
        self.outcome.modify(|o| {
            o.exit = Some(Ended::of(&cause));
            true
        });
        self.tell(RuntimeEvent::Exited {
            generation: self.generation,
            cause,
        });
        self.watcher = None;
    }
}

/// What the monitor of one generation holds; it runs on the owner's arbiter.
pub(crate) struct Monitor<R: Runtime> {
    pub(crate) signals: UnboundedReceiver<Signal>,
    pub(crate) report: Report,
    pub(crate) stop_timeout: Duration,
    pub(crate) runtime: Addr<RuntimeActor<R>>,
    pub(crate) arbiter: Option<Arbiter>,
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Watches one generation that runs on another arbiter, from the owner's,
/// until it has exited.
///
/// A start deadline that passes fails the runtime with
/// [`FailureCause::TimedOut`] and stops it the graceful way first (setup
/// abandoned, `teardown` run), then by force once the stop timeout has
/// passed too.
pub(crate) async fn monitor<R: Runtime>(mut m: Monitor<R>) {
    let mut kill_at: Option<Instant> = None;
    let cause = loop {
        tokio::select! {
            biased;
            signal = m.signals.next() => match signal {
                Some(Signal::Exited { cause }) => break cause,
                Some(signal) => m.report.on(signal),
                // The actor was never built: its arbiter was already gone.
                None => break Some(m.report.outcome.fate().get_or_init(|| FailureCause::Lost).clone()),
            },
            () = sleep_until(m.report.deadline) => {
                m.report.time_out();
                m.runtime.do_send(StopRuntime);
                // None, a stop timeout past what the clock can count: never
                // forced.
                kill_at = Instant::now().checked_add(m.stop_timeout);
            }
            () = sleep_until(kill_at) => {
                kill_at = None;
                m.runtime.do_send(KillRuntime { cause: None });
                if let Some(arbiter) = &m.arbiter {
                    arbiter.stop();
                }
            }
        }
    };
    m.report.ending(&cause);
    if let Some(arbiter) = m.arbiter.take() {
        arbiter.stop();
        join_off_thread(arbiter).await;
    }
    m.report.ended(cause);
}

/// Joins a stopped arbiter's thread without blocking the caller's.
async fn join_off_thread(arbiter: Arbiter) {
    let (joined, on_joined) = futures::channel::oneshot::channel();
    let joiner = std::thread::Builder::new()
        .name("runtime-joiner".into())
        .spawn(move || {
            let _ = arbiter.join();
            let _ = joined.send(());
        });
    match joiner {
        Ok(_) => {
            let _ = on_joined.await;
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not spawn a thread to join a runtime's arbiter")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report whose generation has a start deadline (one that passed
    /// already, as the first `time_out` then finds).
    fn report() -> (Report, Await) {
        let fate = Arc::new(Fate::default());
        let (settle, outcome) = super::outcome(&fate);
        let report = Report::new(None, 0, Some(Duration::ZERO), settle);
        (report, outcome)
    }

    /// The monitor's start deadline can pass while a runtime that was
    /// stopped during setup is ending: its actor saw no failure and says
    /// so, then the deadline records `TimedOut` before the monitor reads
    /// that. The stop stays a stop; only the readiness says why it never
    /// came.
    #[tokio::test]
    async fn a_deadline_passing_as_a_stopped_runtime_ends_leaves_the_exit_a_stop() {
        let (mut report, outcome) = report();
        report.time_out();
        report.on(Signal::Exited { cause: None });
        assert_eq!(outcome.exit().map(|cause| cause.is_some()), Some(false));
        assert!(matches!(
            outcome.ready().await,
            Some(Err(RequestError::Exited {
                cause: Some(FailureCause::TimedOut { .. })
            }))
        ));
        assert!(outcome.exited().await.is_some_and(|cause| cause.is_none()));
    }

    /// A generation that failed reads its failure back from its fate, in
    /// the readiness and in the exit alike.
    #[tokio::test]
    async fn a_failure_is_read_back_from_the_fate() {
        let (mut report, outcome) = report();
        let cause = FailureCause::Lost;
        let _ = outcome.fate().set(cause.clone());
        report.on(Signal::Failed { cause });
        assert!(outcome.exit().is_none());
        report.on(Signal::Exited {
            cause: outcome.fate().get().cloned(),
        });
        assert!(matches!(outcome.exit(), Some(Some(FailureCause::Lost))));
        assert!(matches!(
            outcome.ready().await,
            Some(Err(RequestError::Exited {
                cause: Some(FailureCause::Lost)
            }))
        ));
    }

    /// A generation stopped before it was ready has no failure to tell.
    #[tokio::test]
    async fn a_stop_before_ready_has_no_cause() {
        let (mut report, outcome) = report();
        report.on(Signal::Exited { cause: None });
        assert!(matches!(
            outcome.ready().await,
            Some(Err(RequestError::Exited { cause: None }))
        ));
        assert!(matches!(outcome.exit(), Some(None)));
    }
}
