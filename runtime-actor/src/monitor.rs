use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix::{Arbiter, Recipient, WeakRecipient};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;
use tokio::time::{self, Instant};

use crate::context::Signal;
use crate::error::{FailureCause, RequestError};
use crate::messages::{KillRuntime, RuntimeEvent, StopRuntime};

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

/// What the monitor of one generation holds; it runs on the owner's arbiter.
pub(crate) struct Monitor {
    pub(crate) signals: UnboundedReceiver<Signal>,
    pub(crate) watcher: Option<Watcher>,
    pub(crate) generation: u64,
    pub(crate) start_timeout: Option<Duration>,
    pub(crate) stop_timeout: Duration,
    pub(crate) stop: Recipient<StopRuntime>,
    pub(crate) kill: Recipient<KillRuntime>,
    pub(crate) arbiter: Option<Arbiter>,
    pub(crate) cause: Arc<OnceLock<FailureCause>>,
    pub(crate) ready: watch::Sender<Option<Result<Duration, RequestError>>>,
    pub(crate) exit: watch::Sender<Option<Option<FailureCause>>>,
}

impl Monitor {
    fn tell(&self, event: RuntimeEvent) {
        if let Some(watcher) = &self.watcher {
            watcher.tell(event);
        }
    }

    /// Settles the outcome [`RuntimeHandle::ready`](crate::RuntimeHandle::ready)
    /// waits for, once.
    fn settle(&self, outcome: Result<Duration, RequestError>) {
        self.ready.send_if_modified(|ready| {
            let unset = ready.is_none();
            if unset {
                *ready = Some(outcome);
            }
            unset
        });
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Watches one generation from the owner's arbiter until it has exited.
///
/// A start deadline that passes fails the runtime with
/// [`FailureCause::TimedOut`] and stops it the graceful way first (setup
/// abandoned, `teardown` run), then by force once the stop timeout has
/// passed too.
pub(crate) async fn monitor(mut m: Monitor) {
    let generation = m.generation;
    let begun = Instant::now();
    let mut deadline = m.start_timeout.map(|t| begun + t);
    let mut kill_at: Option<Instant> = None;
    let mut failed = false;
    let mut waiting_for: Option<String> = None;
    let cause = loop {
        tokio::select! {
            biased;
            signal = m.signals.recv() => match signal {
                Some(Signal::Progressed { note, extend }) => {
                    if let Some(at) = deadline.as_mut() {
                        *at = (*at).max(Instant::now() + extend);
                    }
                    m.tell(RuntimeEvent::Progressed { generation, note, extend });
                }
                Some(Signal::Waiting { what }) => waiting_for = Some(what),
                Some(Signal::Process { pid }) => {
                    if !failed {
                        m.tell(RuntimeEvent::Process { generation, pid });
                    }
                }
                Some(Signal::Ready { setup, pid }) => {
                    deadline = None;
                    if !failed {
                        m.settle(Ok(setup));
                        m.tell(RuntimeEvent::Ready { generation, setup, pid });
                    }
                }
                Some(Signal::Failed { cause }) => {
                    deadline = None;
                    if !failed {
                        failed = true;
                        if let Some(watcher) = &mut m.watcher {
                            watcher.hold();
                        }
                        m.settle(Err(RequestError::Exited { cause: Some(cause.clone()) }));
                        m.tell(RuntimeEvent::Failed { generation, cause });
                    }
                }
                Some(Signal::Exited { cause }) => break cause,
                // The actor was never built: its arbiter was already gone.
                None => break Some(m.cause.get_or_init(|| FailureCause::Lost).clone()),
            },
            () = sleep_until(deadline) => {
                deadline = None;
                let cause = FailureCause::TimedOut {
                    after: begun.elapsed(),
                    waiting_for: waiting_for.take(),
                };
                // Set here, not by the actor: its thread may be the thing
                // that is blocked.
                if m.cause.set(cause.clone()).is_ok() {
                    failed = true;
                    m.settle(Err(RequestError::Exited { cause: Some(cause.clone()) }));
                    m.tell(RuntimeEvent::Failed { generation, cause });
                }
                m.stop.do_send(StopRuntime);
                kill_at = Some(Instant::now() + m.stop_timeout);
            }
            () = sleep_until(kill_at) => {
                kill_at = None;
                m.kill.do_send(KillRuntime { cause: None });
                if let Some(arbiter) = &m.arbiter {
                    arbiter.stop();
                }
            }
        }
    };
    if let (Some(cause), false) = (&cause, failed) {
        m.tell(RuntimeEvent::Failed {
            generation,
            cause: cause.clone(),
        });
    }
    m.settle(Err(RequestError::Exited {
        cause: cause.clone(),
    }));
    if let Some(arbiter) = m.arbiter.take() {
        arbiter.stop();
        join_off_thread(arbiter).await;
    }
    let _ = m.exit.send(Some(cause.clone()));
    m.tell(RuntimeEvent::Exited { generation, cause });
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
