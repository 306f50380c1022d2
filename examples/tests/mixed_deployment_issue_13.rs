//! One view over in-process and process pods: a deployment of each held as
//! `AnyDeployment`, started, routed to, reported on and closed together, and
//! pods of both kinds as `AnyPod`.

use actix::Actor;
use futures::StreamExt;
use pod_actor::deployment::{AnyDeployment, Deployment, GetReplicas, Route};
use pod_actor::{AnyPod, PlacementKind, Pod, PodConfig, PodEvent, PodState, RuntimeSpec};
use runtime_actor::{
    ProcessRequest, ProcessRuntime, Runtime, RuntimeContext, RuntimeError, RuntimeFactory,
};

struct Upper;

impl Runtime for Upper {
    type Request = String;
    type Response = String;

    async fn setup(&mut self, _: &mut RuntimeContext) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn handle(&mut self, text: String) -> Result<String, RuntimeError> {
        Ok(text.to_uppercase())
    }
}

#[actix::test]
async fn one_view_starts_routes_reports_and_closes_both_kinds() {
    let mut upper = PodConfig::new(
        "upper",
        RuntimeSpec::InProcess {
            name: "upper".into(),
        },
    );
    upper.placement = PlacementKind::Shared;
    let upper = Deployment::new("upper", 2, upper, |config| {
        Ok(Pod::new(config, RuntimeFactory::new(|_| Upper)))
    })
    .start();
    let workers = PodConfig::new(
        "workers",
        RuntimeSpec::process(env!("CARGO_BIN_EXE_worker")).with_args(["--announce", "notify"]),
    );
    let workers = Deployment::new("workers", 2, workers, Pod::from_process_config).start();

    let all: Vec<AnyDeployment> = vec![upper.clone().into(), workers.clone().into()];
    for deployment in &all {
        assert_eq!(deployment.start().await.unwrap().len(), 2);
    }
    // Typed routes where the request type is known.
    assert_eq!(
        upper
            .send(Route::<Upper>("pods".into()))
            .await
            .unwrap()
            .unwrap(),
        "PODS"
    );
    let info = workers
        .send(Route::<ProcessRuntime>(ProcessRequest::Info))
        .await
        .unwrap()
        .unwrap()
        .into_info()
        .unwrap();
    assert!(info.pid > 0);

    // One status view over both.
    let mut names = Vec::new();
    for deployment in &all {
        let status = deployment.status().await.unwrap();
        assert!(status.replicas.iter().all(|s| s.state == PodState::Running));
        names.extend(
            status
                .replicas
                .into_iter()
                .map(|s| (s.name, s.pid.is_some())),
        );
    }
    assert_eq!(
        names,
        [
            ("upper/rep-0".to_owned(), false),
            ("upper/rep-1".to_owned(), false),
            ("workers/rep-0".to_owned(), true),
            ("workers/rep-1".to_owned(), true),
        ]
    );

    // Pods of both kinds as one type, with their events as a stream.
    let mut pods: Vec<(String, AnyPod)> = Vec::new();
    for (name, pod) in upper.send(GetReplicas::<Upper>::new()).await.unwrap() {
        pods.push((name, pod.into()));
    }
    for (name, pod) in workers
        .send(GetReplicas::<ProcessRuntime>::new())
        .await
        .unwrap()
    {
        pods.push((name, pod.into()));
    }
    let (_, last) = pods.last().unwrap();
    let mut events = last.events();
    for (name, pod) in &pods {
        assert_eq!(&pod.status().await.unwrap().name, name);
    }

    // Closed in reverse order, every replica gracefully.
    for deployment in all.iter().rev() {
        let reports = deployment.close().await;
        assert_eq!(reports.len(), 2);
        assert!(reports.iter().all(|(_, r)| !r.forced), "{reports:?}");
    }
    assert!(matches!(
        events.next().await,
        Some(PodEvent::Terminated { error: None })
    ));
    assert!(events.next().await.is_none());
    for (_, pod) in &pods {
        assert!(pod.join().await.is_ok());
    }
}
