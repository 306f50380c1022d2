use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::env::RuntimeEnv;
use crate::error::{FailureCause, RuntimeError};
use crate::fate::Fate;
use crate::monitor::Signals;

/// What the actor tells its monitor (or its report, in place), which turns
/// these into [`RuntimeEvent`](crate::RuntimeEvent)s for the watcher.
#[derive(Debug)]
pub(crate) enum Signal {
    Progressed { note: String, extend: Duration },
    Waiting { what: String },
    Process { pid: u32 },
    Ready { setup: Duration, pid: Option<u32> },
    Failed { cause: FailureCause },
    Exited { cause: Option<FailureCause> },
}

/// Given to [`Runtime::setup`](crate::Runtime::setup): who the runtime is, and how it talks back.
#[derive(Debug)]
pub struct RuntimeContext {
    name: Arc<str>,
    generation: u64,
    env: RuntimeEnv,
    signals: Signals,
    reporter: FailureReporter,
    pid: Option<u32>,
}

impl RuntimeContext {
    pub(crate) fn new(
        name: Arc<str>,
        generation: u64,
        env: RuntimeEnv,
        signals: Signals,
        reporter: FailureReporter,
    ) -> Self {
        RuntimeContext {
            name,
            generation,
            env,
            signals,
            reporter,
            pid: None,
        }
    }

    /// The name of the pod that owns the runtime.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Which start this is: 0 for the first, one more for every restart.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The pod's environment.
    pub fn env(&self) -> &RuntimeEnv {
        &self.env
    }

    /// Reports progress during setup and pushes the start deadline to at least
    /// `extend` from now (systemd's `EXTEND_TIMEOUT_USEC`). The deadline never
    /// moves earlier. The watcher sees
    /// [`RuntimeEvent::Progressed`](crate::RuntimeEvent::Progressed).
    pub fn extend_deadline(&self, extend: Duration, note: impl Into<String>) {
        self.signals.send(Signal::Progressed {
            note: note.into(),
            extend,
        });
    }

    /// Says what setup is waiting for, in words (the process runtime: its
    /// probe, the tries so far and the last error). The latest description
    /// is kept and named by [`FailureCause::TimedOut`] if the start deadline
    /// passes.
    pub fn waiting_for(&self, what: impl Into<String>) {
        self.signals.send(Signal::Waiting { what: what.into() });
    }

    /// Records the OS process the runtime runs in, when it is a child
    /// process. The watcher hears of it at once
    /// ([`RuntimeEvent::Process`](crate::RuntimeEvent::Process)), and again
    /// with [`RuntimeEvent::Ready`](crate::RuntimeEvent::Ready).
    pub fn set_pid(&mut self, pid: u32) {
        self.pid = Some(pid);
        self.signals.send(Signal::Process { pid });
    }

    /// A handle that tasks spawned by the runtime use to report a new main
    /// process (sd_notify's `MAINPID=`).
    pub fn pid_reporter(&self) -> PidReporter {
        PidReporter {
            signals: self.signals.clone(),
        }
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// A handle that tasks spawned by the runtime use to fail it.
    pub fn failure_reporter(&self) -> FailureReporter {
        self.reporter.clone()
    }

    /// Whether the generation has a failure recorded (a start deadline that
    /// passed, say).
    pub(crate) fn failure_recorded(&self) -> bool {
        self.reporter.fate.get().is_some()
    }
}

/// Reports the runtime's main process from outside setup; see
/// [`RuntimeContext::pid_reporter`].
#[derive(Debug, Clone)]
pub struct PidReporter {
    signals: Signals,
}

impl PidReporter {
    /// The runtime's main process is now `pid`.
    pub fn report(&self, pid: u32) {
        self.signals.send(Signal::Process { pid });
    }
}

/// Fails a runtime from outside its request path, such as a task it spawned.
///
/// It can be cloned and sent to any thread. Reports to a runtime that has
/// already ended are ignored.
#[derive(Clone)]
pub struct FailureReporter {
    fate: Arc<Fate>,
}

impl FailureReporter {
    pub(crate) fn new(fate: Arc<Fate>) -> Self {
        FailureReporter { fate }
    }

    /// Fails the runtime with [`FailureCause::Error`].
    pub fn fail(&self, error: RuntimeError) {
        self.report(FailureCause::Error(error));
    }

    /// Fails the runtime with any cause (the process runtime reports exits
    /// this way).
    pub fn report(&self, cause: FailureCause) {
        self.fate.report(cause);
    }
}

impl fmt::Debug for FailureReporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailureReporter")
            .field("reported", &self.fate.was_reported())
            .finish()
    }
}
