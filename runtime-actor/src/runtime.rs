use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use actix::Recipient;
use tokio::sync::mpsc::UnboundedSender;

use crate::error::{FailureCause, RuntimeError};
use crate::messages::ReportFailure;

/// User code hosted by a [`RuntimeActor`](crate::RuntimeActor).
///
/// A runtime lives on one arbiter thread for its whole life, so neither it nor
/// its futures need to be `Send`. It is built fresh for every generation by a
/// [`RuntimeFactory`] on that thread; no state survives a restart.
///
/// Every call into it is guarded: a panic becomes
/// [`FailureCause::Panicked`] and stops this runtime only.
///
/// # Examples
///
/// ```
/// use runtime_actor::{Runtime, RuntimeContext, RuntimeError};
///
/// struct Upper;
///
/// impl Runtime for Upper {
///     type Request = String;
///     type Response = String;
///
///     async fn setup(&mut self, _ctx: &mut RuntimeContext) -> Result<(), RuntimeError> {
///         Ok(())
///     }
///
///     async fn handle(&mut self, req: String) -> Result<String, RuntimeError> {
///         Ok(req.to_uppercase())
///     }
/// }
/// ```
// The futures are deliberately not `Send`: a runtime never leaves its thread.
#[allow(async_fn_in_trait)]
pub trait Runtime: 'static {
    /// What callers send.
    type Request: Send + 'static;
    /// What the runtime answers.
    type Response: Send + 'static;

    /// Brings the runtime up. `Ok` means ready: the watcher receives
    /// [`RuntimeEvent::Ready`](crate::RuntimeEvent::Ready) and requests flow.
    ///
    /// # Errors
    ///
    /// Any error fails the start, with [`FailureCause::Error`].
    async fn setup(&mut self, ctx: &mut RuntimeContext) -> Result<(), RuntimeError>;

    /// Answers one request. Requests are handled one at a time, in order.
    ///
    /// # Errors
    ///
    /// The error answers this request; a [fatal](RuntimeError::fatal) one
    /// also fails the runtime.
    async fn handle(&mut self, req: Self::Request) -> Result<Self::Response, RuntimeError>;

    /// A liveness check, run between requests when the owner asks for one.
    ///
    /// # Errors
    ///
    /// An error means "unhealthy"; the owner decides how many it tolerates.
    /// A [fatal](RuntimeError::fatal) one fails the runtime at once.
    async fn health(&mut self) -> Result<(), RuntimeError> {
        Ok(())
    }

    /// Graceful stop, run once after the requests already queued are answered.
    /// It runs under the deadline given to
    /// [`RuntimeHandle::stop`](crate::RuntimeHandle::stop); past it the runtime
    /// is stopped by force.
    async fn teardown(&mut self) {}
}

/// Builds a runtime for one generation, on the thread where it will run.
pub struct RuntimeFactory<R> {
    make: Arc<dyn Fn(&RuntimeEnv) -> R + Send + Sync>,
}

impl<R: Runtime> RuntimeFactory<R> {
    /// Wraps a function that builds the runtime from the pod's environment.
    pub fn new(make: impl Fn(&RuntimeEnv) -> R + Send + Sync + 'static) -> Self {
        RuntimeFactory {
            make: Arc::new(make),
        }
    }

    pub(crate) fn build(&self, env: &RuntimeEnv) -> R {
        (self.make)(env)
    }
}

impl<R> Clone for RuntimeFactory<R> {
    fn clone(&self) -> Self {
        RuntimeFactory {
            make: Arc::clone(&self.make),
        }
    }
}

impl<R> fmt::Debug for RuntimeFactory<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeFactory")
            .field("runtime", &std::any::type_name::<R>())
            .finish()
    }
}

/// The environment of one pod, handed to the factory and the runtime.
///
/// It replaces mutating the process environment (`std::env::set_var` is
/// unsound once threads run): each runtime sees its own map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeEnv {
    vars: BTreeMap<String, String>,
}

impl RuntimeEnv {
    /// An empty environment.
    pub fn new() -> Self {
        RuntimeEnv::default()
    }

    /// Sets `key` to `value`, returning the previous value.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) -> Option<String> {
        self.vars.insert(key.into(), value.into())
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }

    /// All variables, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// How many variables are set.
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    /// Whether no variable is set.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for RuntimeEnv {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut env = RuntimeEnv::new();
        env.extend(iter);
        env
    }
}

impl<K: Into<String>, V: Into<String>> Extend<(K, V)> for RuntimeEnv {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

/// What the actor tells its monitor; the monitor turns these into
/// [`RuntimeEvent`](crate::RuntimeEvent)s for the watcher.
#[derive(Debug)]
pub(crate) enum Signal {
    Progressed { note: String, extend: Duration },
    Ready { setup: Duration, pid: Option<u32> },
    Failed { cause: FailureCause },
    Exited { cause: Option<FailureCause> },
}

/// Given to [`Runtime::setup`]: who the runtime is, and how it talks back.
#[derive(Debug)]
pub struct RuntimeContext {
    name: Arc<str>,
    generation: u64,
    env: RuntimeEnv,
    signals: UnboundedSender<Signal>,
    reporter: FailureReporter,
    pid: Option<u32>,
}

impl RuntimeContext {
    pub(crate) fn new(
        name: Arc<str>,
        generation: u64,
        env: RuntimeEnv,
        signals: UnboundedSender<Signal>,
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
        let _ = self.signals.send(Signal::Progressed {
            note: note.into(),
            extend,
        });
    }

    /// Records the OS process the runtime runs in, when it is a child
    /// process; it travels with [`RuntimeEvent::Ready`](crate::RuntimeEvent::Ready).
    pub fn set_pid(&mut self, pid: u32) {
        self.pid = Some(pid);
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// A handle that tasks spawned by the runtime use to fail it.
    pub fn failure_reporter(&self) -> FailureReporter {
        self.reporter.clone()
    }
}

/// Fails a runtime from outside its request path, such as a task it spawned.
///
/// It can be cloned and sent to any thread. Reports to a runtime that has
/// already ended are ignored.
#[derive(Clone)]
pub struct FailureReporter {
    actor: Recipient<ReportFailure>,
}

impl FailureReporter {
    pub(crate) fn new(actor: Recipient<ReportFailure>) -> Self {
        FailureReporter { actor }
    }

    /// Fails the runtime with [`FailureCause::Error`].
    pub fn fail(&self, error: RuntimeError) {
        self.report(FailureCause::Error(error));
    }

    /// Fails the runtime with any cause (the process runtime reports exits
    /// this way).
    pub fn report(&self, cause: FailureCause) {
        self.actor.do_send(ReportFailure { cause });
    }
}

impl fmt::Debug for FailureReporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailureReporter")
            .field("connected", &self.actor.connected())
            .finish()
    }
}
