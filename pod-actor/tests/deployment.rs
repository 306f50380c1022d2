//! The deployment actor: start, routing, failure, scaling and close order.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Actor, Addr};
use pod_actor::deployment::{
    CloseDeployment, Deployment, DeploymentError, GetDeploymentStatus, GetReplicas, Route, Scale,
    StartDeployment,
};
use pod_actor::{Call, Close, PlacementKind, Pod, PodConfig, PodError, PodState, RuntimeSpec};
use runtime_actor::{Runtime, RuntimeContext, RuntimeError, RuntimeFactory};

/// What the replicas of one test did.
#[derive(Debug, Default)]
struct Log {
    live: AtomicI32,
    teardowns: Mutex<Vec<String>>,
}

#[derive(Debug, Clone)]
enum Req {
    Echo(u32),
    Panic,
    /// Which replica answers: the N of its name's `rep-N`.
    Index,
    /// Replica N stops the arbiter its runtime runs on and never answers;
    /// any other answers its index.
    StopArbiterOn(u32),
    /// Never answered.
    Hold,
}

struct Replica {
    log: Arc<Log>,
    name: String,
    fail_setup: bool,
    up: bool,
}

impl Replica {
    /// The N of its name's `rep-N`.
    fn index(&self) -> Result<u32, RuntimeError> {
        self.name
            .rsplit('-')
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| RuntimeError::new(format!("no index in {}", self.name)))
    }
}

impl Runtime for Replica {
    type Request = Req;
    type Response = u32;

    async fn setup(&mut self, ctx: &mut RuntimeContext) -> Result<(), RuntimeError> {
        self.name = ctx.name().to_owned();
        if self.fail_setup {
            return Err(RuntimeError::new("cannot reach the model store"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.log.live.fetch_add(1, Ordering::SeqCst);
        self.up = true;
        Ok(())
    }

    async fn handle(&mut self, req: Req) -> Result<u32, RuntimeError> {
        match req {
            Req::Echo(n) => {
                tokio::time::sleep(Duration::from_millis(1)).await;
                Ok(n)
            }
            Req::Panic => panic!("replica {} lost its GPU", self.name),
            Req::Index => self.index(),
            Req::Hold => std::future::pending().await,
            Req::StopArbiterOn(n) => {
                let index = self.index()?;
                if index == n {
                    actix::Arbiter::current().stop();
                    std::future::pending::<()>().await;
                }
                Ok(index)
            }
        }
    }

    async fn teardown(&mut self) {
        // Teardown also runs after a setup that a close interrupted.
        if std::mem::take(&mut self.up) {
            self.log.live.fetch_sub(1, Ordering::SeqCst);
        }
        self.log.teardowns.lock().unwrap().push(self.name.clone());
    }
}

fn template() -> PodConfig {
    let mut config = PodConfig::new(
        "template",
        RuntimeSpec::InProcess {
            name: "replica".into(),
        },
    );
    config.placement = PlacementKind::Shared;
    config.restart.backoff.initial = 10;
    config.restart.backoff.jitter = 0.0;
    config
}

/// A deployment whose replica named `failing` (if any) fails its setup.
fn deployment(
    replicas: usize,
    failing: Option<&'static str>,
) -> (Addr<Deployment<Replica>>, Arc<Log>) {
    deployment_failing(replicas, move |name| failing == Some(name))
}

/// A deployment whose replicas fail their setup when `fails` says so of the
/// replica's name (asked each time a replica is built).
fn deployment_failing(
    replicas: usize,
    fails: impl Fn(&str) -> bool + 'static,
) -> (Addr<Deployment<Replica>>, Arc<Log>) {
    deployment_of(template(), replicas, fails)
}

/// The same, from `template`.
fn deployment_of(
    template: PodConfig,
    replicas: usize,
    fails: impl Fn(&str) -> bool + 'static,
) -> (Addr<Deployment<Replica>>, Arc<Log>) {
    let log = Arc::new(Log::default());
    let shared = Arc::clone(&log);
    let build = move |config: PodConfig| {
        let fail_setup = fails(&config.name);
        let log = Arc::clone(&shared);
        let factory = RuntimeFactory::new(move |_| Replica {
            log: Arc::clone(&log),
            name: String::new(),
            fail_setup,
            up: false,
        });
        Ok::<_, PodError>(Pod::new(config, factory))
    };
    (
        Deployment::new("encoder", replicas, template, build).start(),
        log,
    )
}

#[actix::test]
async fn all_replicas_become_ready_and_are_named_after_the_deployment() {
    tokio::time::pause();
    let (deployment, log) = deployment(3, None);
    let started = deployment.send(StartDeployment).await.unwrap().unwrap();
    let names: Vec<_> = started.iter().map(|s| s.pod.as_str()).collect();
    assert_eq!(names, ["encoder/rep-0", "encoder/rep-1", "encoder/rep-2"]);
    assert_eq!(log.live.load(Ordering::SeqCst), 3);
    let status = deployment.send(GetDeploymentStatus).await.unwrap();
    assert!(status.replicas.iter().all(|s| s.state == PodState::Running));
    // For machines: it reads back from JSON as it was.
    let json = serde_json::to_string(&status).unwrap();
    assert!(
        json.contains("\"uptime_ms\":") && json.contains("\"since_unix_ms\":"),
        "{json}"
    );
    let back: pod_actor::deployment::DeploymentStatus = serde_json::from_str(&json).unwrap();
    assert_eq!(serde_json::to_string(&back).unwrap(), json);
    assert_eq!(back.replicas[2].name, "encoder/rep-2");
    let supervisor = status.supervisor.expect("the shared supervisor's status");
    assert_eq!(supervisor.children.len(), 3);
    assert!(matches!(
        deployment.send(StartDeployment).await.unwrap(),
        Err(DeploymentError::AlreadyStarted)
    ));
}

#[actix::test]
async fn one_replica_failing_at_start_fails_the_deployment_and_leaves_nothing_running() {
    tokio::time::pause();
    let (deployment, log) = deployment(3, Some("encoder/rep-1"));
    match deployment.send(StartDeployment).await.unwrap() {
        Err(DeploymentError::Replica { pod, error }) => {
            assert_eq!(pod, "encoder/rep-1");
            assert!(
                matches!(&error, PodError::FailedToStart { .. }),
                "{error:?}"
            );
            assert!(error.to_string().contains("cannot reach the model store"));
        }
        other => panic!("expected the replica's failure, got {other:?}"),
    }
    assert_eq!(
        log.live.load(Ordering::SeqCst),
        0,
        "a replica was left running"
    );
    assert!(deployment
        .send(GetDeploymentStatus)
        .await
        .unwrap()
        .replicas
        .is_empty());
}

#[actix::test]
async fn a_replica_panicking_under_steady_traffic_loses_no_request() {
    tokio::time::pause();
    let (deployment, _log) = deployment(3, None);
    deployment.send(StartDeployment).await.unwrap().unwrap();
    let replicas = deployment.send(GetReplicas::new()).await.unwrap();
    let victim = replicas[1].1.clone();
    let mut sent = 0u32;
    let mut answered = 0u32;
    for round in 0..50u32 {
        if round == 10 {
            let _ = victim.send(Call::<Replica>(Req::Panic)).await;
        }
        let batch: Vec<_> = (0..6)
            .map(|i| deployment.send(Route::<Replica>(Req::Echo(round * 6 + i))))
            .collect();
        sent += 6;
        for (i, answer) in futures::future::join_all(batch)
            .await
            .into_iter()
            .enumerate()
        {
            assert_eq!(answer.unwrap().unwrap(), round * 6 + i as u32);
            answered += 1;
        }
    }
    assert_eq!(sent, answered);
    let status = deployment.send(GetDeploymentStatus).await.unwrap();
    assert_eq!(status.replicas[1].restarts, 1, "{status:?}");
    // The supervisor's statistics agree.
    let children = status.supervisor.unwrap().children;
    assert_eq!(children[1].restarts, 1, "{children:?}");
}

#[actix::test]
async fn scale_up_waits_for_new_replicas_and_scale_down_closes_the_newest_first() {
    tokio::time::pause();
    let (deployment, log) = deployment(2, None);
    deployment.send(StartDeployment).await.unwrap().unwrap();
    deployment
        .send(Scale { replicas: 5 })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(log.live.load(Ordering::SeqCst), 5);
    let names: Vec<_> = deployment
        .send(GetDeploymentStatus)
        .await
        .unwrap()
        .replicas
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names.last().map(String::as_str), Some("encoder/rep-4"));

    deployment
        .send(Scale { replicas: 2 })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        *log.teardowns.lock().unwrap(),
        ["encoder/rep-4", "encoder/rep-3", "encoder/rep-2"]
    );
    assert_eq!(log.live.load(Ordering::SeqCst), 2);
    for n in 0..4 {
        assert_eq!(
            deployment
                .send(Route::<Replica>(Req::Echo(n)))
                .await
                .unwrap()
                .unwrap(),
            n
        );
    }
}

/// Which replicas answer `n` routed requests, in the order they answer.
async fn route_indexes(deployment: &Addr<Deployment<Replica>>, n: usize) -> Vec<u32> {
    let mut answered = Vec::with_capacity(n);
    for _ in 0..n {
        let index = deployment.send(Route::<Replica>(Req::Index)).await.unwrap();
        answered.push(index.unwrap());
    }
    answered
}

#[actix::test]
async fn routes_follow_the_replicas_as_they_change() {
    tokio::time::pause();
    let (deployment, _log) = deployment(2, None);
    deployment.send(StartDeployment).await.unwrap().unwrap();
    assert_eq!(route_indexes(&deployment, 4).await, [0, 1, 0, 1]);
    deployment
        .send(Scale { replicas: 3 })
        .await
        .unwrap()
        .unwrap();
    let mut after_up = route_indexes(&deployment, 3).await;
    after_up.sort_unstable();
    assert_eq!(after_up, [0, 1, 2], "the new replica takes its turn");
    deployment
        .send(Scale { replicas: 1 })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(route_indexes(&deployment, 3).await, [0, 0, 0]);
}

#[actix::test]
async fn a_request_for_a_replica_closed_under_the_deployment_goes_to_the_next() {
    tokio::time::pause();
    let (deployment, _log) = deployment(2, None);
    deployment.send(StartDeployment).await.unwrap().unwrap();
    let replicas = deployment.send(GetReplicas::new()).await.unwrap();
    // Closed behind the deployment's back: it still lists the replica.
    let report = replicas[0].1.send(Close::default()).await.unwrap();
    assert!(report.graceful(), "{report:?}");
    assert_eq!(route_indexes(&deployment, 4).await, [1, 1, 1, 1]);
}

/// A replica whose runtime's arbiter stops under a request answers it
/// from the drop of the request's reply, on that arbiter's thread as it
/// goes; the request goes on from there to the next replica (an arbiter
/// stopped is not the request's doing).
#[actix::test]
async fn a_request_whose_replica_loses_its_arbiter_is_answered_by_the_next() {
    let mut template = template();
    template.placement = PlacementKind::Dedicated;
    let (deployment, _log) = deployment_of(template, 2, |_| false);
    deployment.send(StartDeployment).await.unwrap().unwrap();
    let answer = deployment
        .send(Route::<Replica>(Req::StopArbiterOn(0)))
        .await
        .unwrap();
    assert_eq!(answer.unwrap(), 1);
    let closed = deployment.send(CloseDeployment).await.unwrap();
    assert_eq!(closed.len(), 2, "{closed:?}");
}

/// Requests in flight when the System their deployment runs in stops are
/// all answered: their callers, in another System, do not hang.
#[test]
fn requests_in_flight_when_the_deployment_s_system_stops_are_all_answered() {
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let owner = std::thread::spawn(move || {
        let system = actix::System::new();
        system.block_on(async move {
            let (deployment, _log) = deployment(2, None);
            deployment.send(StartDeployment).await.unwrap().unwrap();
            ready_tx
                .send((deployment, actix::System::current()))
                .unwrap();
        });
        system.run().unwrap();
    });
    let (deployment, owner_system) = ready.recv().unwrap();
    actix::System::new().block_on(async move {
        let held: Vec<_> = (0..8)
            .map(|_| deployment.send(Route::<Replica>(Req::Hold)))
            .collect();
        // Give the requests time to reach their replicas (not needed for
        // the answers: any that did not are answered all the same).
        tokio::time::sleep(Duration::from_millis(100)).await;
        owner_system.stop();
        let answers =
            tokio::time::timeout(Duration::from_secs(60), futures::future::join_all(held))
                .await
                .expect("every request in flight is answered");
        for answer in answers {
            assert!(
                !matches!(answer, Ok(Ok(_))),
                "a held request cannot succeed: {answer:?}"
            );
        }
    });
    owner.join().unwrap();
}

#[actix::test]
async fn close_goes_in_reverse_start_order() {
    tokio::time::pause();
    let (deployment, log) = deployment(3, None);
    deployment.send(StartDeployment).await.unwrap().unwrap();
    let reports = deployment.send(CloseDeployment).await.unwrap();
    let order: Vec<_> = reports.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(order, ["encoder/rep-2", "encoder/rep-1", "encoder/rep-0"]);
    assert!(reports.iter().all(|(_, report)| report.graceful()));
    assert_eq!(
        *log.teardowns.lock().unwrap(),
        ["encoder/rep-2", "encoder/rep-1", "encoder/rep-0"]
    );
    assert!(matches!(
        deployment.send(Scale { replicas: 4 }).await.unwrap(),
        Err(DeploymentError::Closed)
    ));
}

#[actix::test]
async fn a_poison_request_is_retried_once_not_on_every_replica() {
    tokio::time::pause();
    let (deployment, _log) = deployment(4, None);
    deployment.send(StartDeployment).await.unwrap().unwrap();
    let answer = deployment.send(Route::<Replica>(Req::Panic)).await.unwrap();
    assert!(
        matches!(answer, Err(pod_actor::CallError::RuntimeExited { .. })),
        "{answer:?}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let restarts: Vec<_> = deployment
        .send(GetDeploymentStatus)
        .await
        .unwrap()
        .replicas
        .iter()
        .map(|s| s.restarts)
        .collect();
    assert_eq!(restarts.iter().sum::<u64>(), 2, "{restarts:?}");
}

#[actix::test]
async fn more_replicas_than_the_limit_are_refused_before_any_is_made() {
    tokio::time::pause();
    let limit = Deployment::<Replica>::MAX_REPLICAS;
    let (too_many, log) = deployment(limit + 1, None);
    match too_many.send(StartDeployment).await.unwrap() {
        Err(DeploymentError::TooManyReplicas { asked, limit: l }) => {
            assert_eq!((asked, l), (limit + 1, limit));
        }
        other => panic!("expected TooManyReplicas, got {other:?}"),
    }
    assert_eq!(log.live.load(Ordering::SeqCst), 0);

    let (one, _log) = deployment(1, None);
    one.send(StartDeployment).await.unwrap().unwrap();
    assert!(matches!(
        one.send(Scale {
            replicas: usize::MAX
        })
        .await
        .unwrap(),
        Err(DeploymentError::TooManyReplicas { .. })
    ));
    assert_eq!(
        one.send(GetDeploymentStatus).await.unwrap().replicas.len(),
        1
    );
}

/// A replica whose setup takes `SETUP` (a model that loads).
struct Loading;

const SETUP: Duration = Duration::from_secs(1);

impl Runtime for Loading {
    type Request = ();
    type Response = ();

    async fn setup(&mut self, _: &mut RuntimeContext) -> Result<(), RuntimeError> {
        tokio::time::sleep(SETUP).await;
        Ok(())
    }

    async fn handle(&mut self, (): ()) -> Result<(), RuntimeError> {
        Ok(())
    }
}

#[actix::test]
async fn replicas_start_together_not_one_after_another() {
    tokio::time::pause();
    let build =
        |config: PodConfig| Ok::<_, PodError>(Pod::new(config, RuntimeFactory::new(|_| Loading)));
    let deployment = Deployment::new("loading", 8, template(), build).start();
    let begun = tokio::time::Instant::now();
    let started = deployment.send(StartDeployment).await.unwrap().unwrap();
    let took = begun.elapsed();
    assert_eq!(started.len(), 8);
    // All eight after one setup's time, as Jina starts them (in order, it
    // would be eight seconds).
    assert!(
        took >= SETUP && took < SETUP + Duration::from_millis(100),
        "{took:?}"
    );
    for s in &started {
        assert!(
            s.startup >= SETUP && s.startup < SETUP + Duration::from_millis(100),
            "{s:?}"
        );
    }
    let closed = deployment.send(CloseDeployment).await.unwrap();
    let order: Vec<_> = closed.iter().map(|(name, _)| name.as_str()).collect();
    let expected: Vec<String> = (0..8).rev().map(|i| format!("loading/rep-{i}")).collect();
    assert_eq!(order, expected, "closed in reverse start order");
}

#[actix::test]
async fn a_failed_start_can_be_tried_again() {
    tokio::time::pause();
    // rep-1 fails its setup on the first try only.
    let first = std::sync::atomic::AtomicBool::new(true);
    let (deployment, log) = deployment_failing(3, move |name| {
        name == "encoder/rep-1" && first.swap(false, Ordering::SeqCst)
    });
    assert!(matches!(
        deployment.send(StartDeployment).await.unwrap(),
        Err(DeploymentError::Replica { .. })
    ));
    let status = deployment.send(GetDeploymentStatus).await.unwrap();
    assert!(
        status.replicas.is_empty() && status.supervisor.is_none(),
        "{status:?}"
    );
    assert_eq!(log.live.load(Ordering::SeqCst), 0);
    // Tried again: a new supervisor, the same names.
    let started = deployment.send(StartDeployment).await.unwrap().unwrap();
    let names: Vec<_> = started.iter().map(|s| s.pod.as_str()).collect();
    assert_eq!(names, ["encoder/rep-0", "encoder/rep-1", "encoder/rep-2"]);
    assert_eq!(log.live.load(Ordering::SeqCst), 3);
    deployment.send(CloseDeployment).await.unwrap();
}

#[actix::test]
async fn a_close_during_a_start_or_a_scale_stands() {
    tokio::time::pause();
    let (starting, log) = deployment(4, None);
    let start = starting.send(StartDeployment);
    let close = starting.send(CloseDeployment);
    let (started, _) = futures::future::join(start, close).await;
    assert!(started.unwrap().is_err(), "the close cut the start short");
    assert!(matches!(
        starting.send(StartDeployment).await.unwrap(),
        Err(DeploymentError::Closed)
    ));
    assert!(matches!(
        starting.send(Scale { replicas: 2 }).await.unwrap(),
        Err(DeploymentError::Closed)
    ));
    assert_eq!(log.live.load(Ordering::SeqCst), 0);

    let (scaling, log) = deployment(2, None);
    scaling.send(StartDeployment).await.unwrap().unwrap();
    let scale = scaling.send(Scale { replicas: 1 });
    let close = scaling.send(CloseDeployment);
    let (_, _) = futures::future::join(scale, close).await;
    assert!(matches!(
        scaling.send(Scale { replicas: 3 }).await.unwrap(),
        Err(DeploymentError::Closed)
    ));
    assert_eq!(log.live.load(Ordering::SeqCst), 0);
}
