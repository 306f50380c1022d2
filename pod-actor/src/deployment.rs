//! The deployment actor: the reference way for an actix service to run pods.
//!
//! A [`Deployment`] runs N replicas of one pod config (named `NAME/rep-0`,
//! `NAME/rep-1`, …) under one shared [`Supervisor`], the way Jina's
//! `Deployment` runs its replica set, and addresses them only through actor
//! messages:
//!
//! - [`StartDeployment`] starts every replica at once and waits for them
//!   concurrently; the first failure closes the replicas already started, in
//!   reverse order, and is returned with the failing pod's name and cause.
//! - [`Route`] sends a request round-robin to a replica, skipping replicas
//!   that are not ready and retrying on the next one a request whose replica
//!   died, so a replica that is restarting costs no request. Replicas may
//!   be in-process runtimes or process pods that serve requests over their
//!   request channel.
//! - [`Scale`] starts new replicas (and waits for them) or closes the
//!   surplus ones, newest first.
//! - [`GetDeploymentStatus`] and [`CloseDeployment`] (reverse start order).
//! - [`Deployment::with_events`] delivers every replica's [`PodEvent`],
//!   tagged with the replica's name, from before its start.
//!
//! Replicas start together ([`StartOrder::Concurrent`]): N replicas whose
//! setup takes a second are all ready after a second. [`AnyDeployment`]
//! holds deployments of any runtime type for one status view and one
//! ordered close; [`DeploymentsConfig`] reads a file of deployments.
//!
//! # Example
//!
//! Three replicas of an in-process runtime, routed to, reported on and
//! closed (this block is compiled and run by the tests):
//!
//! ```
//! use actix::Actor;
//! use pod_actor::deployment::{
//!     CloseDeployment, Deployment, GetDeploymentStatus, Route, StartDeployment,
//! };
//! use pod_actor::{Pod, PodConfig, PodState, RuntimeSpec};
//! use runtime_actor::{Runtime, RuntimeContext, RuntimeError, RuntimeFactory};
//!
//! struct Upper;
//!
//! impl Runtime for Upper {
//!     type Request = String;
//!     type Response = String;
//!     async fn setup(&mut self, _: &mut RuntimeContext) -> Result<(), RuntimeError> {
//!         Ok(())
//!     }
//!     async fn handle(&mut self, s: String) -> Result<String, RuntimeError> {
//!         Ok(s.to_uppercase())
//!     }
//! }
//!
//! #[actix::main]
//! async fn main() {
//!     let template = PodConfig::new("upper", RuntimeSpec::InProcess { name: "upper".into() });
//!     let build = |config| Ok(Pod::new(config, RuntimeFactory::new(|_| Upper)));
//!     let upper = Deployment::new("upper", 3, template, build).start();
//!
//!     let started = upper.send(StartDeployment).await.unwrap().unwrap();
//!     assert_eq!(started[2].pod, "upper/rep-2");
//!     let answer = upper.send(Route::<Upper>("pods".into())).await.unwrap();
//!     assert_eq!(answer.unwrap(), "PODS");
//!     let status = upper.send(GetDeploymentStatus).await.unwrap();
//!     assert!(status.replicas.iter().all(|r| r.state == PodState::Running));
//!     let closed = upper.send(CloseDeployment).await.unwrap();
//!     assert_eq!(closed[0].0, "upper/rep-2", "the last started closes first");
//! }
//! ```

use std::fmt;

mod file;

pub use file::{DeploymentConfig, DeploymentsConfig};

use std::sync::Arc;

use actix::dev::{MessageResponse, OneshotSender};
use actix::{
    Actor, ActorFutureExt, Addr, Context, Handler, Message, Recipient, ResponseActFuture,
    WrapFuture,
};
use futures::future::{join_all, try_join_all};
use runtime_actor::{catch_outside, FailureCause, Runtime};
use serde::{Deserialize, Serialize};
use supervisor::{Shutdown, StartOrder, Supervisor, SupervisorStatus};

use crate::pod::{Routed, Then};
use crate::{
    CallError, Close, CloseReport, GetStatus, Pod, PodConfig, PodError, PodEvent, PodStatus,
    StartAndWait, Started, SubscribeEvents,
};

/// Builds one replica's pod from its config (the template, renamed).
pub type PodBuilder<R> = Box<dyn Fn(PodConfig) -> Result<Pod<R>, PodError>>;

/// N replicas of one pod config under one supervisor.
pub struct Deployment<R: Runtime> {
    name: String,
    replicas: usize,
    template: PodConfig,
    build: PodBuilder<R>,
    supervisor: Option<Addr<Supervisor>>,
    pods: Replicas<R>,
    next_index: usize,
    cursor: usize,
    phase: Phase,
    events: Option<Recipient<DeploymentEvent>>,
}

struct Replica<R: Runtime> {
    name: String,
    pod: Addr<Pod<R>>,
    /// Kept here because pods hold event subscribers weakly.
    _tagger: Option<Addr<Tagger>>,
}

/// The replicas, in the order they were added, and the list requests are
/// routed over: shared by the requests in flight, and made again only after
/// the replicas change.
struct Replicas<R: Runtime> {
    list: Vec<Replica<R>>,
    routes: Option<Arc<[Addr<Pod<R>>]>>,
}

impl<R: Runtime> Replicas<R> {
    fn new() -> Self {
        Replicas {
            list: Vec::new(),
            routes: None,
        }
    }

    fn len(&self) -> usize {
        self.list.len()
    }

    fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    fn iter(&self) -> std::slice::Iter<'_, Replica<R>> {
        self.list.iter()
    }

    fn extend(&mut self, added: impl IntoIterator<Item = Replica<R>>) {
        self.list.extend(added);
        self.routes = None;
    }

    fn retain(&mut self, keep: impl FnMut(&Replica<R>) -> bool) {
        self.list.retain(keep);
        self.routes = None;
    }

    fn split_off(&mut self, at: usize) -> Vec<Replica<R>> {
        self.routes = None;
        self.list.split_off(at)
    }

    fn take(&mut self) -> Vec<Replica<R>> {
        self.routes = None;
        std::mem::take(&mut self.list)
    }

    /// The pods to route over, as they are now.
    fn routes(&mut self) -> Arc<[Addr<Pod<R>>]> {
        let list = &self.list;
        let routes = self
            .routes
            .get_or_insert_with(|| list.iter().map(|replica| replica.pod.clone()).collect());
        Arc::clone(routes)
    }
}

impl<R: Runtime> Clone for Replica<R> {
    fn clone(&self) -> Self {
        Replica {
            name: self.name.clone(),
            pod: self.pod.clone(),
            _tagger: self._tagger.clone(),
        }
    }
}

/// A replica's [`PodEvent`], with the replica's name.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct DeploymentEvent {
    /// The replica (`NAME/rep-N`).
    pub pod: String,
    /// What happened.
    pub event: PodEvent,
}

/// Tags one replica's events with its name.
struct Tagger {
    pod: String,
    to: Recipient<DeploymentEvent>,
}

impl Actor for Tagger {
    type Context = Context<Self>;
}

impl Handler<PodEvent> for Tagger {
    type Result = ();

    fn handle(&mut self, event: PodEvent, _: &mut Context<Self>) {
        self.to.do_send(DeploymentEvent {
            pod: self.pod.clone(),
            event,
        });
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Busy,
    Running,
    Closed,
}

/// Why a deployment did not do what it was asked.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum DeploymentError {
    /// A replica failed to start; the replicas started with it were closed.
    Replica {
        /// The failing pod's name.
        pod: String,
        /// Why it failed.
        error: PodError,
    },
    /// The shared supervisor could not be made from the template's config.
    Supervisor(String),
    /// Another start or scale is in progress.
    Busy,
    /// The deployment was already started.
    AlreadyStarted,
    /// The deployment has not been started.
    NotStarted,
    /// The deployment is closed.
    Closed,
    /// More replicas were asked for than [`Deployment::MAX_REPLICAS`].
    TooManyReplicas {
        /// The number asked for.
        asked: usize,
        /// The limit.
        limit: usize,
    },
}

impl fmt::Display for DeploymentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeploymentError::Replica { pod, error } => write!(f, "replica `{pod}`: {error}"),
            DeploymentError::Supervisor(reason) => write!(f, "supervisor: {reason}"),
            DeploymentError::Busy => f.write_str("deployment is starting or scaling"),
            DeploymentError::AlreadyStarted => f.write_str("deployment was already started"),
            DeploymentError::NotStarted => f.write_str("deployment has not been started"),
            DeploymentError::Closed => f.write_str("deployment is closed"),
            DeploymentError::TooManyReplicas { asked, limit } => {
                write!(f, "{asked} replicas asked for, at most {limit} allowed")
            }
        }
    }
}

impl std::error::Error for DeploymentError {}

// ===== messages =====

/// Starts every replica and resolves once all are ready (with their
/// `Started`, in replica order) or one has failed.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Vec<Started>, DeploymentError>")]
pub struct StartDeployment;

/// A request for one replica, chosen round-robin among those that are ready.
///
/// The request goes from replica to replica without a task or a future of
/// the deployment's: each replica hands its answer (or its refusal) on
/// where its runtime gives it. So the request's `Clone` (for the next
/// replica) and `Drop` (once answered) run there too, on the runtime's
/// thread for a replica on a dedicated arbiter; both are guarded, and
/// should be quick.
///
/// A replica that is not ready, or busy ([`CallError::Busy`]: its request
/// channel is full), is skipped. A request whose replica ended
/// before answering is retried on the next replica, so requests should be
/// safe to repeat: at most once when the replica panicked or failed with an
/// error (the request itself may have caused it), on every replica when it
/// was killed, timed out or judged unhealthy. A request that timed out
/// ([`CallError::TimedOut`]) is not retried: it may have been done.
pub struct Route<R: Runtime>(pub R::Request);

impl<R: Runtime> Message for Route<R> {
    type Result = Result<R::Response, CallError>;
}

impl<R: Runtime> fmt::Debug for Route<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Route").finish_non_exhaustive()
    }
}

/// Changes the number of replicas: new ones are started and waited for;
/// surplus ones are closed, newest first.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<(), DeploymentError>")]
pub struct Scale {
    /// The number of replicas wanted.
    pub replicas: usize,
}

/// Asks for the deployment's status: every replica's, in start order, and
/// the shared supervisor's restart statistics.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "DeploymentStatus")]
pub struct GetDeploymentStatus;

/// A deployment's status, answered to [`GetDeploymentStatus`]; serializable
/// for status pages and readable back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentStatus {
    /// The deployment's name.
    pub name: String,
    /// Every replica's status, in start order.
    pub replicas: Vec<PodStatus>,
    /// The shared supervisor's status (restarts in the intensity window, and
    /// per replica: restarts, backoff attempt, last cause, restart latency);
    /// `None` before the start and after the close.
    pub supervisor: Option<SupervisorStatus>,
}

/// Asks for the replicas' names and addresses, in start order (to subscribe
/// to them, say).
pub struct GetReplicas<R: Runtime>(std::marker::PhantomData<fn() -> R>);

impl<R: Runtime> GetReplicas<R> {
    /// The message.
    pub fn new() -> Self {
        GetReplicas(std::marker::PhantomData)
    }
}

impl<R: Runtime> Default for GetReplicas<R> {
    fn default() -> Self {
        GetReplicas::new()
    }
}

impl<R: Runtime> fmt::Debug for GetReplicas<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GetReplicas")
    }
}

impl<R: Runtime> Message for GetReplicas<R> {
    type Result = Vec<(String, Addr<Pod<R>>)>;
}

/// Closes every replica in reverse start order, then the supervisor.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Vec<(String, CloseReport)>")]
pub struct CloseDeployment;

// ===== impl Deployment =====

/// See [`Deployment::MAX_REPLICAS`].
pub(crate) const MAX_REPLICAS: usize = 4096;

impl<R: Runtime> Deployment<R> {
    /// The most replicas one deployment runs; a start or scale that asks for
    /// more fails with [`DeploymentError::TooManyReplicas`] before anything
    /// is made. A [`DeploymentsConfig`] holds at most this many in all.
    pub const MAX_REPLICAS: usize = MAX_REPLICAS;

    /// A deployment `name` of `replicas` pods built by `build` from
    /// `template` (whose `restart` section configures the shared supervisor).
    pub fn new(
        name: impl Into<String>,
        replicas: usize,
        template: PodConfig,
        build: impl Fn(PodConfig) -> Result<Pod<R>, PodError> + 'static,
    ) -> Self {
        Deployment {
            name: name.into(),
            replicas,
            template,
            build: Box::new(build),
            supervisor: None,
            pods: Replicas::new(),
            next_index: 0,
            cursor: 0,
            phase: Phase::Idle,
            events: None,
        }
    }

    /// Sends every replica's [`PodEvent`]s, tagged with its name, to
    /// `events`, from before each replica starts.
    #[must_use]
    pub fn with_events(mut self, events: Recipient<DeploymentEvent>) -> Self {
        self.events = Some(events);
        self
    }

    /// Builds and starts `count` new replica actors (not yet their runtimes).
    fn add_replicas(&mut self, count: usize) -> Result<Vec<Replica<R>>, DeploymentError> {
        let asked = self.pods.len().saturating_add(count);
        if asked > Self::MAX_REPLICAS {
            return Err(DeploymentError::TooManyReplicas {
                asked,
                limit: Self::MAX_REPLICAS,
            });
        }
        let supervisor = self.supervisor.clone().ok_or(DeploymentError::NotStarted)?;
        let mut added = Vec::with_capacity(count);
        for _ in 0..count {
            let name = format!("{}/rep-{}", self.name, self.next_index);
            self.next_index += 1;
            let mut config = self.template.clone();
            config.name = name.clone();
            let pod = (self.build)(config)
                .map_err(|error| DeploymentError::Replica {
                    pod: name.clone(),
                    error,
                })?
                .supervised_by(supervisor.clone())
                .start();
            let tagger = self.events.clone().map(|to| {
                let tagger = Tagger {
                    pod: name.clone(),
                    to,
                }
                .start();
                pod.do_send(SubscribeEvents(tagger.clone().recipient()));
                tagger
            });
            added.push(Replica {
                name,
                pod,
                _tagger: tagger,
            });
        }
        self.pods.extend(added.iter().cloned());
        Ok(added)
    }

    /// Starts `added` and waits for all; on the first failure, closes them
    /// in reverse order and removes them.
    fn launch(
        &mut self,
        added: Vec<Replica<R>>,
    ) -> ResponseActFuture<Self, Result<Vec<Started>, DeploymentError>> {
        self.phase = Phase::Busy;
        let replicas = added.clone();
        let started = async move {
            let waits = replicas.iter().map(|replica| {
                let (name, pod) = (replica.name.clone(), replica.pod.clone());
                async move {
                    let fail = |error| DeploymentError::Replica {
                        pod: name.clone(),
                        error,
                    };
                    pod.send(StartAndWait)
                        .await
                        .unwrap_or(Err(PodError::Closed))
                        .map_err(fail)
                }
            });
            let outcome = try_join_all(waits).await;
            if outcome.is_err() {
                for replica in replicas.iter().rev() {
                    let _ = replica.pod.send(Close::default()).await;
                }
            }
            outcome
        };
        Box::pin(started.into_actor(self).map(move |outcome, act, _| {
            if outcome.is_err() {
                act.pods
                    .retain(|pod| !added.iter().any(|gone| gone.name == pod.name));
            }
            match act.phase {
                // A close arrived meanwhile: it stands.
                Phase::Closed => {}
                // A first start that failed leaves nothing running: back to
                // idle, its supervisor shut down, so that a start can be
                // tried again.
                _ if outcome.is_err() && act.pods.is_empty() => {
                    act.phase = Phase::Idle;
                    act.next_index = 0;
                    if let Some(supervisor) = act.supervisor.take() {
                        supervisor.do_send(Shutdown);
                    }
                }
                _ => act.phase = Phase::Running,
            }
            outcome
        }))
    }
}

impl<R: Runtime> Actor for Deployment<R> {
    type Context = Context<Self>;
}

impl<R: Runtime> fmt::Debug for Deployment<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deployment")
            .field("name", &self.name)
            .field("replicas", &self.pods.len())
            .field("phase", &self.phase)
            .finish()
    }
}

impl<R: Runtime> Handler<StartDeployment> for Deployment<R> {
    type Result = ResponseActFuture<Self, Result<Vec<Started>, DeploymentError>>;

    fn handle(&mut self, _: StartDeployment, _: &mut Context<Self>) -> Self::Result {
        let refused = match self.phase {
            Phase::Idle => None,
            Phase::Busy => Some(DeploymentError::Busy),
            Phase::Running => Some(DeploymentError::AlreadyStarted),
            Phase::Closed => Some(DeploymentError::Closed),
        };
        let refused = refused.or_else(|| {
            (self.replicas > Self::MAX_REPLICAS).then_some(DeploymentError::TooManyReplicas {
                asked: self.replicas,
                limit: Self::MAX_REPLICAS,
            })
        });
        if let Some(refused) = refused {
            return Box::pin(actix::fut::ready(Err(refused)));
        }
        // Replicas start together, as Jina starts them: N replicas whose
        // setup takes a second are ready after a second.
        let config = self
            .template
            .supervisor_config()
            .with_start_order(StartOrder::Concurrent);
        let supervisor = match Supervisor::new(config) {
            Ok(supervisor) => supervisor.start(),
            Err(e) => {
                return Box::pin(actix::fut::ready(Err(DeploymentError::Supervisor(
                    e.to_string(),
                ))))
            }
        };
        self.supervisor = Some(supervisor);
        match self.add_replicas(self.replicas) {
            Ok(added) => self.launch(added),
            Err(e) => Box::pin(actix::fut::ready(Err(e))),
        }
    }
}

impl<R: Runtime> Deployment<R> {
    /// The answer to a request routed from here: the next replica in turn
    /// gets it first.
    pub(crate) fn route<T>(
        &mut self,
        req: R::Request,
        map: fn(Result<R::Response, CallError>) -> Result<T, CallError>,
    ) -> RouteAnswer<R, T> {
        let first = self.cursor;
        self.cursor = self.cursor.wrapping_add(1);
        RouteAnswer {
            pods: self.pods.routes(),
            first,
            req,
            map,
        }
    }
}

impl<R: Runtime> Handler<Route<R>> for Deployment<R>
where
    R::Request: Clone,
{
    type Result = RouteAnswer<R, R::Response>;

    fn handle(&mut self, Route(req): Route<R>, _: &mut Context<Self>) -> Self::Result {
        self.route(req, |answer| answer)
    }
}

/// The answer to a [`Route`] (or a typed route): the request goes to one
/// replica, and on to the next when that one cannot serve it, each replica's
/// answer handed straight to the next step, the last step's to the caller.
/// No task and no future sit in between; past the first replica, the
/// deployment itself takes no part.
pub struct RouteAnswer<R: Runtime, T> {
    pods: Arc<[Addr<Pod<R>>]>,
    first: usize,
    req: R::Request,
    /// From the runtime's answer to the message's (a typed route decodes).
    map: fn(Result<R::Response, CallError>) -> Result<T, CallError>,
}

impl<R, M, T> MessageResponse<Deployment<R>, M> for RouteAnswer<R, T>
where
    R: Runtime,
    R::Request: Clone,
    M: Message<Result = Result<T, CallError>>,
    T: Send + 'static,
{
    fn handle(
        self,
        _: &mut Context<Deployment<R>>,
        tx: Option<OneshotSender<Result<T, CallError>>>,
    ) {
        let RouteAnswer {
            pods,
            first,
            req,
            map,
        } = self;
        Router {
            left: pods.len(),
            next: first,
            pods,
            retried: false,
            last: CallError::NotReady,
            req,
            tx,
            map,
        }
        .try_next();
    }
}

impl<R: Runtime, T> fmt::Debug for RouteAnswer<R, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteAnswer")
            .field("replicas", &self.pods.len())
            .finish_non_exhaustive()
    }
}

/// One routed request on its way: the replicas it may still try, and where
/// its answer goes.
struct Router<R: Runtime, T> {
    pods: Arc<[Addr<Pod<R>>]>,
    /// The next replica to try (modulo their number), and how many are
    /// left to try.
    next: usize,
    left: usize,
    /// Whether a replica already ended under this request.
    retried: bool,
    /// Why the replicas tried so far did not answer.
    last: CallError,
    req: R::Request,
    tx: Option<OneshotSender<Result<T, CallError>>>,
    map: fn(Result<R::Response, CallError>) -> Result<T, CallError>,
}

impl<R, T> Router<R, T>
where
    R: Runtime,
    R::Request: Clone,
    T: Send + 'static,
{
    /// Sends a copy of the request to the next replica that is still there,
    /// or answers with why none could take it.
    fn try_next(mut self) {
        let pods = Arc::clone(&self.pods);
        while self.left > 0 {
            self.left -= 1;
            let pod = &pods[self.next % pods.len()];
            self.next = self.next.wrapping_add(1);
            if !pod.connected() {
                self.last = CallError::Closed;
                continue;
            }
            // The request's `Clone` and `Drop` are the program's code, and
            // run wherever the routing is (here, or where a replica
            // answered): each is guarded, so that a panic in them answers
            // this request (or, in `Drop`, is logged) and leaves every
            // replica serving.
            let copy = match catch_outside(|| self.req.clone()) {
                Ok(copy) => copy,
                Err(panic) => return self.finish(Err(routing_panicked(panic))),
            };
            pod.do_send(Routed::new(
                copy,
                Then::new(move |answer| self.on_answer(answer)),
            ));
            return;
        }
        let last = std::mem::replace(&mut self.last, CallError::NotReady);
        self.finish(Err(last));
    }

    fn on_answer(mut self, answer: Result<R::Response, CallError>) {
        match answer {
            Err(CallError::RuntimeExited { cause }) => {
                // A panic or an error may have been this request's doing:
                // retry it once only, so a poison request cannot take every
                // replica down. A kill, a failed health check or a timeout
                // was not its doing.
                let maybe_poison = matches!(
                    cause,
                    None | Some(FailureCause::Panicked { .. } | FailureCause::Error(_))
                );
                if maybe_poison && self.retried {
                    return self.finish(Err(CallError::RuntimeExited { cause }));
                }
                self.retried |= maybe_poison;
                self.last = CallError::RuntimeExited { cause };
                self.try_next();
            }
            // Not seen by that replica: the next may take it.
            Err(e @ (CallError::NotReady | CallError::Closed | CallError::Busy { .. })) => {
                self.last = e;
                self.try_next();
            }
            answer => self.finish(answer),
        }
    }

    fn finish(self, answer: Result<R::Response, CallError>) {
        let Router { req, tx, map, .. } = self;
        if let Err(panic) = catch_outside(move || drop(req)) {
            tracing::error!(%panic, "dropping a routed request panicked; its answer stands");
        }
        let answer = map(answer);
        if let Some(tx) = tx {
            let _ = tx.send(answer);
        }
    }
}

/// The answer to a request whose own types' code (the request's `Clone`, a
/// typed answer's `Deserialize`) panicked while it was routed; the panic is
/// logged.
pub(crate) fn routing_panicked(message: String) -> CallError {
    tracing::error!(panic = %message, "a routed request's own code panicked");
    CallError::RequestPanicked { message }
}

impl<R: Runtime> Handler<Scale> for Deployment<R> {
    type Result = ResponseActFuture<Self, Result<(), DeploymentError>>;

    fn handle(&mut self, scale: Scale, _: &mut Context<Self>) -> Self::Result {
        match self.phase {
            Phase::Running => {}
            Phase::Idle => return Box::pin(actix::fut::ready(Err(DeploymentError::NotStarted))),
            Phase::Busy => return Box::pin(actix::fut::ready(Err(DeploymentError::Busy))),
            Phase::Closed => return Box::pin(actix::fut::ready(Err(DeploymentError::Closed))),
        }
        let current = self.pods.len();
        if scale.replicas >= current {
            return match self.add_replicas(scale.replicas - current) {
                Ok(added) => {
                    self.replicas = scale.replicas;
                    Box::pin(self.launch(added).map(|outcome, _, _| outcome.map(drop)))
                }
                Err(e) => Box::pin(actix::fut::ready(Err(e))),
            };
        }
        self.replicas = scale.replicas;
        self.phase = Phase::Busy;
        let surplus: Vec<_> = self.pods.split_off(scale.replicas);
        let close = async move {
            for replica in surplus.iter().rev() {
                let _ = replica.pod.send(Close::default()).await;
            }
        };
        Box::pin(close.into_actor(self).map(|(), act, _| {
            if act.phase != Phase::Closed {
                act.phase = Phase::Running;
            }
            Ok(())
        }))
    }
}

impl<R: Runtime> Handler<GetDeploymentStatus> for Deployment<R> {
    type Result = ResponseActFuture<Self, DeploymentStatus>;

    fn handle(&mut self, _: GetDeploymentStatus, _: &mut Context<Self>) -> Self::Result {
        let asks = self.pods.iter().map(|replica| replica.pod.send(GetStatus));
        let statuses = join_all(asks);
        let supervisor = self.supervisor.clone();
        let name = self.name.clone();
        Box::pin(
            async move {
                let supervisor = match supervisor {
                    Some(supervisor) => supervisor.send(supervisor::GetStatus).await.ok(),
                    None => None,
                };
                DeploymentStatus {
                    name,
                    replicas: statuses.await.into_iter().filter_map(Result::ok).collect(),
                    supervisor,
                }
            }
            .into_actor(self),
        )
    }
}

impl<R: Runtime> Handler<GetReplicas<R>> for Deployment<R> {
    type Result = Vec<(String, Addr<Pod<R>>)>;

    fn handle(&mut self, _: GetReplicas<R>, _: &mut Context<Self>) -> Self::Result {
        self.pods
            .iter()
            .map(|replica| (replica.name.clone(), replica.pod.clone()))
            .collect()
    }
}

impl<R: Runtime> Handler<CloseDeployment> for Deployment<R> {
    type Result = ResponseActFuture<Self, Vec<(String, CloseReport)>>;

    fn handle(&mut self, _: CloseDeployment, _: &mut Context<Self>) -> Self::Result {
        self.phase = Phase::Closed;
        let pods = self.pods.take();
        let supervisor = self.supervisor.take();
        let close = async move {
            let mut reports = Vec::with_capacity(pods.len());
            for replica in pods.iter().rev() {
                if let Ok(report) = replica.pod.send(Close::default()).await {
                    reports.push((replica.name.clone(), report));
                }
            }
            if let Some(supervisor) = supervisor {
                let _ = supervisor.send(Shutdown).await;
            }
            reports
        };
        Box::pin(close.into_actor(self))
    }
}

// ===== any deployment =====

/// A type-erased reference to a [`Deployment`] of any runtime: start, scale,
/// status and close, without [`Route`] (which needs the runtime's request
/// type). One `Vec<AnyDeployment>` holds in-process and process deployments
/// alike, for one status view and one ordered close.
///
/// Made with `AnyDeployment::from(addr)`; cheap to clone. A deployment that
/// is gone answers [`DeploymentError::Closed`], no status and no reports.
#[derive(Clone)]
pub struct AnyDeployment {
    start: Recipient<StartDeployment>,
    scale: Recipient<Scale>,
    status: Recipient<GetDeploymentStatus>,
    close: Recipient<CloseDeployment>,
}

impl<R: Runtime> From<Addr<Deployment<R>>> for AnyDeployment {
    fn from(deployment: Addr<Deployment<R>>) -> Self {
        AnyDeployment {
            start: deployment.clone().recipient(),
            scale: deployment.clone().recipient(),
            status: deployment.clone().recipient(),
            close: deployment.recipient(),
        }
    }
}

impl AnyDeployment {
    /// Starts every replica ([`StartDeployment`]).
    ///
    /// # Errors
    ///
    /// As [`StartDeployment`]'s answer.
    pub async fn start(&self) -> Result<Vec<Started>, DeploymentError> {
        self.start
            .send(StartDeployment)
            .await
            .unwrap_or(Err(DeploymentError::Closed))
    }

    /// Changes the number of replicas ([`Scale`]).
    ///
    /// # Errors
    ///
    /// As [`Scale`]'s answer.
    pub async fn scale(&self, replicas: usize) -> Result<(), DeploymentError> {
        self.scale
            .send(Scale { replicas })
            .await
            .unwrap_or(Err(DeploymentError::Closed))
    }

    /// The deployment's status; `None` when it is gone.
    pub async fn status(&self) -> Option<DeploymentStatus> {
        self.status.send(GetDeploymentStatus).await.ok()
    }

    /// Closes every replica in reverse start order ([`CloseDeployment`]).
    pub async fn close(&self) -> Vec<(String, CloseReport)> {
        self.close.send(CloseDeployment).await.unwrap_or_default()
    }
}

impl fmt::Debug for AnyDeployment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnyDeployment")
            .field("connected", &self.status.connected())
            .finish()
    }
}
