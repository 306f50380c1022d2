//! Jina's pods as actix actors: start, readiness, close and join as messages.
//!
//! A [`Pod`] owns the lifecycle of one runtime (a
//! [`runtime_actor::Runtime`]) the way `jina.orchestrate.pods.Pod` owns its
//! process: it starts it, learns the moment it is ready, watches it, restarts
//! it through a [`Supervisor`](supervisor::Supervisor) (crate
//! `pod-supervisor`), and closes it. Everything is a
//! message: [`Start`], [`WaitStartSuccess`] (or both in one,
//! [`StartAndWait`]), [`Subscribe`] (→ [`Started`]),
//! [`SubscribeEvents`] (→ [`PodEvent`]), [`Call`], [`GetStatus`], [`GetRole`],
//! [`Close`] and [`Join`]. Code outside actix uses the blocking
//! [`PodHandle`], Jina's synchronous API.
//!
//! A pod is configured by a [`PodConfig`], loaded from TOML, YAML or JSON
//! with environment overrides, in Jina's names and units (`timeout_ready`
//! and `timeout_ctrl` in milliseconds).
//!
//! A [`deployment`] runs replicas of one pod config and routes requests to
//! them. A process pod with a request channel (`runtime.channel`) serves
//! requests as bytes ([`ProcessRequest::Call`](runtime_actor::ProcessRequest::Call)),
//! or as serde values through [`typed`].
//!
//! What it fixes in the original: readiness is an event, not a 100 ms poll;
//! a failed start says why; a start timeout closes the runtime before the
//! error is returned; a close that hangs is forced and reported; a runtime
//! that dies after it was ready is seen at once and restarted per policy.
//!
//! # Promises
//!
//! - **A close is never a crash.** Closing a pod (or dropping its last
//!   [`Addr`](actix::Addr)) removes it from its supervisor: at any point of
//!   its start, run, restart or backoff, nothing is restarted, counted
//!   against the restart limit, or done to its siblings.
//! - **Every accepted call is answered.** A [`Call`] the pod accepted before
//!   [`Close`] is answered by the runtime before its teardown; later calls
//!   get [`CallError::Closed`].
//! - **A close is graceful whatever the state.** A runtime still in its
//!   setup is stopped through the same path as a running one (teardown, or
//!   SIGTERM for a process, within `timeout_ctrl`, then forced), and the
//!   [`CloseReport`] says truthfully whether it was forced and why.
//! - **Nothing outlives its owner.** Supervisors and runtimes hold pods
//!   weakly; a pod whose last address is dropped closes itself and frees its
//!   runtime, thread and supervisor entry.
//!
//! # Closing pods before the actix System stops
//!
//! When an actix `System` stops, every arbiter stops under the actors on it:
//! no graceful stop can run any more. Pods then end at once with
//! [`PodError::ArbiterStopped`] and a forced [`CloseReport`], and nothing is
//! restarted; a process child is killed by its parent-death signal. To give
//! runtimes their graceful stop, close the pods first and let the System
//! stop afterwards. With actix-web, keep `HttpServer`'s default signal
//! handling (which returns from `run().await` on SIGINT or SIGTERM and
//! leaves the System running; do not call `system_exit()`):
//!
//! ```ignore
//! #[actix_web::main]
//! async fn main() -> std::io::Result<()> {
//!     let pod = Pod::new(config, factory).start();
//!     pod.send(Start).await.expect("pod is running")?;
//!     HttpServer::new(move || App::new() /* routes that Call the pod */)
//!         .bind(("127.0.0.1", 8080))?
//!         .run()
//!         .await?; // returns after SIGINT or SIGTERM; the System still runs
//!     let report = pod.send(Close::default()).await; // teardown runs here
//!     Ok(()) // the System stops when main returns
//! }
//! ```
//!
//! (`tests/system_shutdown.rs` runs this order with a stand-in for the
//! server, and the other one.)
//!
//! # Examples
//!
//! Start a pod, receive its `Started`, call it, close it:
//!
//! ```
//! use actix::{Actor, Context, Handler};
//! use pod_actor::{Call, Close, Pod, PodConfig, RuntimeSpec, Start, Started, Subscribe};
//! use runtime_actor::{Runtime, RuntimeContext, RuntimeError, RuntimeFactory};
//! use tokio::sync::mpsc;
//!
//! struct Doubler;
//!
//! impl Runtime for Doubler {
//!     type Request = u32;
//!     type Response = u32;
//!     async fn setup(&mut self, _: &mut RuntimeContext) -> Result<(), RuntimeError> {
//!         Ok(())
//!     }
//!     async fn handle(&mut self, n: u32) -> Result<u32, RuntimeError> {
//!         Ok(n * 2)
//!     }
//! }
//!
//! /// Forwards `Started` to a channel.
//! struct Readiness(mpsc::UnboundedSender<Started>);
//! impl Actor for Readiness {
//!     type Context = Context<Self>;
//! }
//! impl Handler<Started> for Readiness {
//!     type Result = ();
//!     fn handle(&mut self, started: Started, _: &mut Context<Self>) {
//!         let _ = self.0.send(started);
//!     }
//! }
//!
//! # #[actix::main]
//! # async fn main() {
//! let config = PodConfig::new(
//!     "doubler",
//!     RuntimeSpec::InProcess { name: "doubler".into() },
//! );
//! let pod = Pod::new(config, RuntimeFactory::new(|_| Doubler)).start();
//!
//! let (tx, mut started) = mpsc::unbounded_channel();
//! // Held weakly by the pod: the subscriber lives as long as we keep `readiness`.
//! let readiness = Readiness(tx).start();
//! pod.send(Subscribe(readiness.clone().recipient())).await.unwrap();
//! pod.send(Start).await.unwrap().unwrap();
//!
//! let started = started.recv().await.unwrap();
//! assert_eq!((started.pod.as_str(), started.generation), ("doubler", 0));
//! assert_eq!(pod.send(Call::<Doubler>(21)).await.unwrap().unwrap(), 42);
//!
//! let report = pod.send(Close::default()).await.unwrap();
//! assert!(report.graceful());
//! # }
//! ```

// Library code answers bad input and OS failures with an error, never a
// panic; the lints keep it so (tests may unwrap).
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod answer;
mod any;
mod config;
mod error;
mod handle;
mod limits;
mod messages;
pub mod metrics;
mod pod;
mod registry;
mod stream;
mod subscribers;

pub mod deployment;
#[cfg(feature = "kubernetes")]
pub mod kubernetes;
pub mod typed;

pub use crate::answer::Answer;
pub use crate::any::AnyPod;
pub use crate::config::{
    BackoffConfig, ChannelConfig, ConfigError, ConfigFormat, HealthConfig, NotifyAccessKind,
    PlacementKind, PodConfig, PodRole, ProbeConfig, RestartConfig, RestartKind, RuntimeSpec,
};
pub use crate::error::{CallError, PodError};
pub use crate::handle::{JoinTimedOut, PodHandle};
pub use crate::messages::{
    Call, Close, CloseReport, ForcedBy, GetRole, GetStatus, Join, PodEvent, PodState, PodStatus,
    Start, StartAndWait, Started, Subscribe, SubscribeEvents, WaitStartSuccess,
};
pub use crate::pod::{CallAnswer, Pod, StartAnswer};
pub use crate::registry::RuntimeRegistry;
pub use crate::stream::PodEvents;
