//! Host user code ("runtimes") in actix actors, so that a pod can start it,
//! learn when it is ready, send it work and stop it, whatever the code does.
//!
//! This is the lowest of the three crates: `pod-actor` owns one runtime
//! generation at a time through a [`RuntimeHandle`], and the supervisor
//! crate (`pod-supervisor`) decides when a failed one is started again. This crate knows
//! nothing of either.
//!
//! - A [`Runtime`] is user code with `setup`, `handle`, `health` and
//!   `teardown`. It is built by a [`RuntimeFactory`] on the thread where it
//!   runs, fresh for each generation, with the pod's [`RuntimeEnv`].
//! - [`RuntimeActor::spawn`] starts it on a [`Placement`] (its own arbiter, or
//!   a shared one) and starts a monitor on the caller's arbiter, which sends
//!   [`RuntimeEvent`]s (`Ready`, `Failed`, `Exited`, each with the generation)
//!   to a watcher.
//! - A panic in any call into user code becomes [`FailureCause::Panicked`]
//!   with the message and location; it stops that runtime and nothing else.
//! - Every request is answered: with the response, or with a
//!   [`RequestError`] that says why not.
//! - [`RuntimeHandle::stop`] runs `teardown` under a deadline, then forces the
//!   stop, and reports a runtime stuck in blocking code rather than waiting
//!   for it for ever.
//! - [`ProcessRuntime`] is a runtime that is an OS child process, ready by
//!   sd_notify, a stdout line, a TCP connect or an HTTP `GET`
//!   ([`ReadinessProbe`]), stopped with SIGTERM then SIGKILL to its process
//!   group, and always reaped. With a request channel ([`ChannelSpec`]) it
//!   also serves requests, many in flight at once
//!   ([`Runtime::dispatch`]).
//!
//! # Examples
//!
//! Start a runtime, wait until it is ready, call it, stop it:
//!
//! ```
//! use std::time::Duration;
//!
//! use actix::{Actor, Context, Handler};
//! use runtime_actor::{
//!     Runtime, RuntimeActor, RuntimeConfig, RuntimeContext, RuntimeError, RuntimeEvent,
//!     RuntimeFactory,
//! };
//! use tokio::sync::mpsc;
//!
//! struct Greeter {
//!     greeting: String,
//! }
//!
//! impl Runtime for Greeter {
//!     type Request = String;
//!     type Response = String;
//!
//!     async fn setup(&mut self, _ctx: &mut RuntimeContext) -> Result<(), RuntimeError> {
//!         Ok(())
//!     }
//!
//!     async fn handle(&mut self, name: String) -> Result<String, RuntimeError> {
//!         Ok(format!("{}, {name}", self.greeting))
//!     }
//! }
//!
//! /// Forwards runtime events to a channel.
//! struct Watcher(mpsc::UnboundedSender<RuntimeEvent>);
//!
//! impl Actor for Watcher {
//!     type Context = Context<Self>;
//! }
//!
//! impl Handler<RuntimeEvent> for Watcher {
//!     type Result = ();
//!     fn handle(&mut self, event: RuntimeEvent, _: &mut Context<Self>) {
//!         let _ = self.0.send(event);
//!     }
//! }
//!
//! # #[actix::main]
//! # async fn main() {
//! let (tx, mut events) = mpsc::unbounded_channel();
//! let watcher = Watcher(tx).start();
//!
//! let env = [("GREETING", "hello")].into_iter().collect();
//! let factory = RuntimeFactory::new(|env: &runtime_actor::RuntimeEnv| Greeter {
//!     greeting: env.get("GREETING").unwrap_or("hi").to_owned(),
//! });
//! let runtime = RuntimeActor::spawn(
//!     RuntimeConfig::new("greeter").env(env).watcher(watcher.recipient()),
//!     factory,
//! );
//!
//! assert!(matches!(events.recv().await, Some(RuntimeEvent::Ready { generation: 0, .. })));
//! assert_eq!(runtime.call("pod".to_owned()).await.unwrap(), "hello, pod");
//!
//! let report = runtime.stop(Duration::from_secs(5)).await;
//! assert!(report.graceful());
//! assert!(matches!(events.recv().await, Some(RuntimeEvent::Exited { cause: None, .. })));
//! # }
//! ```

// Library code answers bad input and OS failures with an error, never a
// panic; the lints keep it so (tests may unwrap).
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod actor;
mod context;
mod env;
mod error;
mod fate;
mod handle;
mod lane;
mod messages;
mod monitor;
mod notify;
mod panic;
mod process;
mod reply;
mod runtime;

pub use actor::{Queued, RuntimeActor};
/// The bytes of a request channel's frames (`bytes::Bytes`), re-exported so
/// that users need no dependency of their own.
pub use bytes::Bytes;
pub use context::{FailureReporter, PidReporter, RuntimeContext};
pub use env::RuntimeEnv;
pub use error::{FailureCause, PanicLocation, RequestError, RuntimeError};
pub use handle::{Placement, RuntimeConfig, RuntimeHandle, StopReport};
pub use messages::{CheckHealth, Request, RuntimeEvent};
pub use panic::{catch_outside, panic_is_caught, panics_to_tracing};
pub use process::{
    forwarded_output_written, ChannelSpec, ContainerInfo, ContainerSource, ContainerSpec,
    Containment, InvalidSpec, NotifyAccess, PortSpec, ProcessInfo, ProcessRequest, ProcessResponse,
    ProcessRuntime, ProcessSpec, ReadinessProbe,
};
pub use runtime::{Dispatch, Runtime, RuntimeFactory};
