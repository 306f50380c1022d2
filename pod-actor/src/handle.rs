use std::fmt;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::{mpsc, Arc};
use std::task::{Context as TaskContext, Poll, Wake, Waker};
use std::thread::JoinHandle;
use std::time::Duration;

use actix::{Actor, Addr, System};
use futures::executor::block_on;
use runtime_actor::{Runtime, RuntimeFactory};

use crate::config::{PodConfig, PodRole};
use crate::error::{CallError, PodError};
use crate::messages::{
    Call, Close, CloseReport, GetStatus, Join, PodStatus, Start, StartAndWait, Started,
    WaitStartSuccess,
};
use crate::pod::Pod;

/// A pod driven from code outside actix: Jina's synchronous `Pod` API.
///
/// [`PodHandle::spawn`] runs the [`Pod`] in an actix system on a thread of
/// its own; every method blocks the calling thread until the pod answers.
/// Dropping the handle closes the pod (Jina's context-manager exit) and stops
/// that thread.
///
/// # Examples
///
/// ```
/// use pod_actor::{PodConfig, PodHandle, RuntimeSpec};
/// use runtime_actor::{Runtime, RuntimeContext, RuntimeError, RuntimeFactory};
///
/// struct Echo;
///
/// impl Runtime for Echo {
///     type Request = String;
///     type Response = String;
///     async fn setup(&mut self, _: &mut RuntimeContext) -> Result<(), RuntimeError> {
///         Ok(())
///     }
///     async fn handle(&mut self, s: String) -> Result<String, RuntimeError> {
///         Ok(s)
///     }
/// }
///
/// let config = PodConfig::new("echo", RuntimeSpec::InProcess { name: "echo".into() });
/// let pod = PodHandle::spawn(config, RuntimeFactory::new(|_| Echo)).unwrap();
/// pod.start().unwrap();
/// let started = pod.wait_start_success().unwrap();
/// assert_eq!(started.generation, 0);
/// assert_eq!(pod.call("hi".to_owned()).unwrap(), "hi");
/// assert!(pod.close().graceful());
/// pod.join(None).unwrap().unwrap();
/// ```
pub struct PodHandle<R: Runtime> {
    addr: Addr<Pod<R>>,
    role: PodRole,
    system: System,
    thread: Option<JoinHandle<()>>,
}

/// [`PodHandle::join`] gave up waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinTimedOut {
    /// How long it waited.
    pub after: Duration,
}

impl fmt::Display for JoinTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pod did not terminate within {:?}", self.after)
    }
}

impl std::error::Error for JoinTimedOut {}

impl<R: Runtime> PodHandle<R> {
    /// Starts an actix system on a new thread and the pod in it. The pod is
    /// not started yet: call [`start`](PodHandle::start).
    ///
    /// # Errors
    ///
    /// The OS error when the thread cannot be spawned.
    pub fn spawn(config: PodConfig, factory: RuntimeFactory<R>) -> io::Result<Self> {
        let role = config.role;
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("pod:{}", config.name))
            .spawn(move || {
                let system = System::new();
                system.block_on(async move {
                    let addr = Pod::new(config, factory).start();
                    let _ = tx.send((addr, System::current()));
                });
                let _ = system.run();
            })?;
        let (addr, system) = rx
            .recv()
            .map_err(|_| io::Error::other("the pod's thread ended before the pod started"))?;
        Ok(PodHandle {
            addr,
            role,
            system,
            thread: Some(thread),
        })
    }

    /// The pod's address, for sending it messages directly.
    pub fn addr(&self) -> &Addr<Pod<R>> {
        &self.addr
    }

    /// Starts the pod without waiting for it to be ready.
    ///
    /// # Errors
    ///
    /// As [`Start`].
    pub fn start(&self) -> Result<(), PodError> {
        block_on(self.addr.send(Start)).unwrap_or(Err(PodError::Closed))
    }

    /// Starts the pod and blocks until it is ready or cannot become ready
    /// (Jina's `start()`, which waits unless `noblock_on_start`).
    ///
    /// # Errors
    ///
    /// As [`StartAndWait`]: those of [`start`](Self::start), then those of
    /// [`wait_start_success`](Self::wait_start_success) (never
    /// [`PodError::NotStarted`]).
    pub fn start_and_wait(&self) -> Result<Started, PodError> {
        block_on(self.addr.send(StartAndWait)).unwrap_or(Err(PodError::Closed))
    }

    /// Blocks until the pod is ready or cannot become ready.
    ///
    /// # Errors
    ///
    /// As [`WaitStartSuccess`]: [`PodError::FailedToStart`],
    /// [`PodError::ExitedEarly`], [`PodError::Timeout`] (the pod is closed by
    /// then), [`PodError::Closed`] or [`PodError::NotStarted`].
    pub fn wait_start_success(&self) -> Result<Started, PodError> {
        block_on(self.addr.send(WaitStartSuccess)).unwrap_or(Err(PodError::Closed))
    }

    /// Sends a request to the runtime and blocks for its answer.
    ///
    /// # Errors
    ///
    /// As [`Call`].
    pub fn call(&self, req: R::Request) -> Result<R::Response, CallError> {
        block_on(self.addr.send(Call::<R>(req))).unwrap_or(Err(CallError::Closed))
    }

    /// Closes the pod: graceful, then forced after `timeout_ctrl`. A pod
    /// that went away before answering is reported forced
    /// ([`ForcedBy::ReplyLost`](crate::ForcedBy::ReplyLost)): nothing
    /// confirms that it closed gracefully.
    pub fn close(&self) -> CloseReport {
        block_on(self.addr.send(Close::default())).unwrap_or_else(|_| CloseReport::reply_lost())
    }

    /// Blocks until the pod has terminated, for at most `timeout` (`None`
    /// waits for ever, as Jina's `join()` does).
    ///
    /// # Errors
    ///
    /// [`JoinTimedOut`] when the pod had not terminated in time; inside,
    /// [`PodError::NotStarted`] when it was never started.
    pub fn join(&self, timeout: Option<Duration>) -> Result<Result<(), PodError>, JoinTimedOut> {
        let join = self.addr.send(Join);
        let Some(timeout) = timeout else {
            return Ok(block_on(join).unwrap_or(Err(PodError::ArbiterStopped)));
        };
        // Timed on this thread: the pod's own thread may be the one that is
        // blocked (a runtime stuck in blocking code on a shared placement).
        match block_on_until(join, std::time::Instant::now() + timeout) {
            Some(joined) => Ok(joined.unwrap_or(Err(PodError::ArbiterStopped))),
            None => Err(JoinTimedOut { after: timeout }),
        }
    }

    /// The pod's role (Jina's `role` property).
    pub fn role(&self) -> PodRole {
        self.role
    }

    /// The pod's status.
    ///
    /// # Errors
    ///
    /// [`PodError::Closed`] when the pod's system has stopped.
    pub fn status(&self) -> Result<PodStatus, PodError> {
        block_on(self.addr.send(GetStatus)).map_err(|_| PodError::Closed)
    }
}

/// Polls `future` on this thread until it resolves or `deadline` passes.
fn block_on_until<F: Future>(future: F, deadline: std::time::Instant) -> Option<F::Output> {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = TaskContext::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return Some(output);
        }
        let left = deadline.checked_duration_since(std::time::Instant::now())?;
        if left.is_zero() {
            return None;
        }
        std::thread::park_timeout(left);
    }
}

impl<R: Runtime> Drop for PodHandle<R> {
    fn drop(&mut self) {
        let _ = self.close();
        self.system.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl<R: Runtime> fmt::Debug for PodHandle<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PodHandle")
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}
