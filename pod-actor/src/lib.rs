//! Jina's pods as actix actors: start, readiness, close and join as messages.
//!
//! A [`Pod`] owns the lifecycle of one runtime (a
//! [`runtime_actor::Runtime`]) the way `jina.orchestrate.pods.Pod` owns its
//! process: it starts it, learns the moment it is ready, watches it, restarts
//! it through a [`supervisor::Supervisor`], and closes it. Everything is a
//! message: [`Start`], [`WaitStartSuccess`], [`Subscribe`] (→ [`Started`]),
//! [`SubscribeEvents`] (→ [`PodEvent`]), [`Call`], [`GetStatus`], [`GetRole`],
//! [`Close`] and [`Join`]. Code outside actix uses the blocking
//! [`PodHandle`], Jina's synchronous API.
//!
//! A pod is configured by a [`PodConfig`], loaded from TOML, YAML or JSON
//! with environment overrides, in Jina's names and units (`timeout_ready`
//! and `timeout_ctrl` in milliseconds).
//!
//! What it fixes in the original: readiness is an event, not a 100 ms poll;
//! a failed start says why; a start timeout closes the runtime before the
//! error is returned; a close that hangs is forced and reported; a runtime
//! that dies after it was ready is seen at once and restarted per policy.
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

mod config;
mod error;
mod handle;
mod messages;
mod pod;
mod registry;

pub use crate::config::{
    BackoffConfig, ConfigError, ConfigFormat, HealthConfig, PlacementKind, PodConfig, PodRole,
    ProbeConfig, RestartConfig, RestartKind, RuntimeSpec,
};
pub use crate::error::{CallError, PodError};
pub use crate::handle::{JoinTimedOut, PodHandle};
pub use crate::messages::{
    Call, Close, CloseReport, ForcedBy, GetRole, GetStatus, Join, PodEvent, PodState, PodStatus,
    Start, Started, Subscribe, SubscribeEvents, WaitStartSuccess,
};
pub use crate::pod::Pod;
pub use crate::registry::RuntimeRegistry;
