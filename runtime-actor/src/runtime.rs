use std::fmt;
use std::sync::Arc;

use futures::future::LocalBoxFuture;

use crate::context::RuntimeContext;
use crate::env::RuntimeEnv;
use crate::error::{RequestError, RuntimeError};

/// User code hosted by a [`RuntimeActor`](crate::RuntimeActor).
///
/// A runtime lives on one arbiter thread for its whole life, so neither it nor
/// its futures need to be `Send`. It is built fresh for every generation by a
/// [`RuntimeFactory`] on that thread; no state survives a restart.
///
/// Every call into it is guarded: a panic becomes
/// [`FailureCause::Panicked`](crate::FailureCause::Panicked) and stops this runtime only.
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
    /// Any error fails the start, with [`FailureCause::Error`](crate::FailureCause::Error).
    async fn setup(&mut self, ctx: &mut RuntimeContext) -> Result<(), RuntimeError>;

    /// Answers one request. Requests are handled one at a time, in order
    /// (unless [`dispatch`](Runtime::dispatch) answers them later).
    ///
    /// # Errors
    ///
    /// The error answers this request; a [fatal](RuntimeError::fatal) one
    /// also fails the runtime.
    async fn handle(&mut self, req: Self::Request) -> Result<Self::Response, RuntimeError>;

    /// Decides how one request is answered: by [`handle`](Runtime::handle),
    /// in order (the default), or by a future that runs beside the requests
    /// that follow, for a runtime that can have many in flight at once (a
    /// child process on a request channel). Answers then arrive in whatever
    /// order their futures complete.
    ///
    /// It is called for every request and must not block; a panic in it is
    /// caught as in `handle`. A later answer that is a
    /// [fatal](RuntimeError::fatal) [`RequestError::Runtime`] fails the
    /// runtime, as from `handle`. A graceful stop waits for every answer in
    /// flight before `teardown` runs; a forced stop or a failure answers
    /// them [`RequestError::Exited`].
    fn dispatch(&mut self, req: Self::Request) -> Dispatch<Self::Request, Self::Response> {
        Dispatch::Handle(req)
    }

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
    ///
    /// It also runs when a stop (or a missed start deadline) interrupts
    /// `setup`: the setup future is dropped at its current await point and
    /// `teardown` undoes what it had done, so it must cope with a runtime that
    /// is only partly set up.
    async fn teardown(&mut self) {}
}

/// How a request is answered; see [`Runtime::dispatch`].
#[must_use = "a request that is neither handled nor answered later gets no answer"]
pub enum Dispatch<Q, A> {
    /// By [`Runtime::handle`], in order.
    Handle(Q),
    /// By this future, beside the requests that follow. It owns what it
    /// needs (it must not borrow the runtime).
    Later(LocalBoxFuture<'static, Result<A, RequestError>>),
}

impl<Q, A> fmt::Debug for Dispatch<Q, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dispatch::Handle(_) => f.write_str("Handle(..)"),
            Dispatch::Later(_) => f.write_str("Later(..)"),
        }
    }
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
