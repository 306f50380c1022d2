//! Calls, restarts, health, close and join; messages at the wrong time.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use actix::Actor;
use pod_actor::{
    Call, CallError, Close, GetRole, GetStatus, Join, Pod, PodError, PodEvent, PodRole, PodState,
    RestartKind, Start, WaitStartSuccess,
};
use runtime_actor::FailureCause;
use supervisor::{Supervisor, SupervisorConfig, WhichChildren};
use support::{config, pod, subscribe_events, subscribe_started, with_health, Req, Script, Setup};

#[actix::test]
async fn start_then_close_like_jinas_pod_context_manager() {
    tokio::time::pause();
    let script = Script::new(Setup::Ok);
    let pod = pod(config("executor0"), &script);
    pod.send(Start).await.unwrap().unwrap();
    pod.send(WaitStartSuccess).await.unwrap().unwrap();
    assert_eq!(pod.send(Call(Req::Echo(7))).await.unwrap().unwrap(), "7");
    let report = pod.send(Close::default()).await.unwrap();
    assert!(report.graceful() && !report.stuck, "{report:?}");
    assert_eq!(script.teardowns.load(Ordering::SeqCst), 1);
    assert_eq!(
        pod.send(GetStatus).await.unwrap().state,
        PodState::Terminated
    );
}

#[actix::test]
async fn close_twice_returns_the_first_report() {
    tokio::time::pause();
    let script = Script::new(Setup::Ok);
    let pod = pod(config("executor0"), &script);
    pod.send(Start).await.unwrap().unwrap();
    pod.send(WaitStartSuccess).await.unwrap().unwrap();
    let (first, concurrent) = tokio::join!(pod.send(Close::default()), pod.send(Close::default()));
    let again = pod.send(Close::default()).await.unwrap();
    assert_eq!(first.unwrap(), again);
    assert_eq!(concurrent.unwrap(), again);
    assert_eq!(script.teardowns.load(Ordering::SeqCst), 1, "torn down once");
}

#[actix::test]
async fn join_resolves_once_the_pod_has_closed() {
    tokio::time::pause();
    let script = Script::new(Setup::Ok);
    let pod = pod(config("executor0"), &script);
    assert!(matches!(
        pod.send(Join).await.unwrap(),
        Err(PodError::NotStarted)
    ));
    pod.send(Start).await.unwrap().unwrap();
    pod.send(WaitStartSuccess).await.unwrap().unwrap();
    let join = pod.send(Join);
    let close = async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        pod.send(Close::default()).await.unwrap()
    };
    let (joined, _) = tokio::join!(join, close);
    assert!(joined.unwrap().is_ok());
    assert!(pod.send(Join).await.unwrap().is_ok(), "join after close");
}

#[actix::test]
async fn messages_at_the_wrong_time_get_defined_answers() {
    tokio::time::pause();
    let script = Script::new(Setup::Sleep(Duration::from_secs(10)));
    let pod = pod(config("executor0"), &script);
    assert!(matches!(
        pod.send(Call(Req::Echo(1))).await.unwrap(),
        Err(CallError::NotReady)
    ));
    pod.send(Start).await.unwrap().unwrap();
    assert!(matches!(
        pod.send(Start).await.unwrap(),
        Err(PodError::AlreadyStarted)
    ));
    assert!(matches!(
        pod.send(Call(Req::Echo(1))).await.unwrap(),
        Err(CallError::NotReady)
    ));
    pod.send(Close::default()).await.unwrap();
    assert!(matches!(
        pod.send(Start).await.unwrap(),
        Err(PodError::Closed)
    ));
    assert!(matches!(
        pod.send(Call(Req::Echo(1))).await.unwrap(),
        Err(CallError::Closed)
    ));
}

#[actix::test]
async fn a_call_in_flight_when_the_runtime_dies_gets_the_cause() {
    tokio::time::pause();
    let script = Script::new(Setup::Ok);
    let pod = pod(config("executor0"), &script);
    pod.send(Start).await.unwrap().unwrap();
    pod.send(WaitStartSuccess).await.unwrap().unwrap();
    let slow = pod.send(Call(Req::Sleep(Duration::from_secs(1))));
    let panics = pod.send(Call(Req::Panic));
    let queued = pod.send(Call(Req::Echo(3)));
    let (slow, panics, queued) = tokio::join!(slow, panics, queued);
    assert_eq!(slow.unwrap().unwrap(), "slept");
    for answer in [panics.unwrap(), queued.unwrap()] {
        assert!(
            matches!(
                answer,
                Err(CallError::RuntimeExited {
                    cause: Some(FailureCause::Panicked { .. })
                })
            ),
            "{answer:?}"
        );
    }
}

#[actix::test]
async fn calls_during_a_restart_are_not_ready_and_served_after() {
    tokio::time::pause();
    let script = Script::new(Setup::Ok);
    let pod = pod(config("executor0"), &script);
    let mut started = subscribe_started(&pod).await;
    pod.send(Start).await.unwrap().unwrap();
    started.next().await;
    let _ = pod.send(Call(Req::Panic)).await;
    assert!(matches!(
        pod.send(Call(Req::Echo(1))).await.unwrap(),
        Err(CallError::NotReady)
    ));
    let waited = pod.send(WaitStartSuccess).await.unwrap().unwrap();
    assert_eq!(
        waited.generation, 1,
        "a waiter during a restart waits for the next Started"
    );
    assert_eq!(started.next().await.generation, 1);
    assert_eq!(pod.send(Call(Req::Echo(2))).await.unwrap().unwrap(), "2");
    let status = pod.send(GetStatus).await.unwrap();
    assert_eq!((status.restarts, status.generation), (1, 1));
    assert!(status
        .last_failure
        .unwrap()
        .contains("request handler panicked"));
}

#[actix::test]
async fn a_restart_waits_for_the_backoff() {
    tokio::time::pause();
    let script = Script::new(Setup::Ok);
    let mut config = config("executor0");
    config.restart.backoff.initial = 2_000;
    let pod = pod(config, &script);
    let mut events = subscribe_events(&pod).await;
    pod.send(Start).await.unwrap().unwrap();
    pod.send(WaitStartSuccess).await.unwrap().unwrap();
    let failed_at = tokio::time::Instant::now();
    let _ = pod.send(Call(Req::Panic)).await;
    loop {
        match events.next().await {
            PodEvent::Restarting { attempt, delay } => {
                assert_eq!((attempt, delay), (1, Duration::from_secs(2)));
                break;
            }
            _ => continue,
        }
    }
    pod.send(WaitStartSuccess).await.unwrap().unwrap();
    assert!(failed_at.elapsed() >= Duration::from_secs(2));
}

#[actix::test]
async fn a_temporary_pod_that_fails_after_ready_exits_early() {
    tokio::time::pause();
    let script = Script::new(Setup::Ok);
    let mut config = config("executor0");
    config.restart.policy = RestartKind::Temporary;
    let pod = pod(config, &script);
    pod.send(Start).await.unwrap().unwrap();
    pod.send(WaitStartSuccess).await.unwrap().unwrap();
    let _ = pod.send(Call(Req::Panic)).await;
    assert!(matches!(
        pod.send(Join).await.unwrap(),
        Err(PodError::ExitedEarly { .. })
    ));
    assert!(matches!(
        pod.send(WaitStartSuccess).await.unwrap(),
        Err(PodError::ExitedEarly {
            cause: Some(FailureCause::Panicked { .. })
        })
    ));
}

#[actix::test]
async fn too_many_restarts_give_up_and_end_the_pod_with_the_reason_issue_10() {
    tokio::time::pause();
    let script = Script::new(Setup::Ok);
    let mut config = config("executor0");
    config.restart.max_restarts = 2;
    config.restart.within = 60_000;
    let pod = pod(config, &script);
    pod.send(Start).await.unwrap().unwrap();
    for generation in 0..3 {
        let started = pod.send(WaitStartSuccess).await.unwrap().unwrap();
        assert_eq!(started.generation, generation);
        let _ = pod.send(Call(Req::Panic)).await;
    }
    // The supervisor's reason reaches Join, WaitStartSuccess and the status,
    // with the pod's own last failure as the error's source.
    let check = |error: PodError| {
        assert!(
            error.to_string().contains("more than 2 restarts"),
            "{error}"
        );
        let source = std::error::Error::source(&error).expect("the last failure");
        assert!(source.to_string().contains("panicked"), "{source}");
    };
    match pod.send(Join).await.unwrap() {
        Err(error @ PodError::GaveUp { .. }) => check(error),
        other => panic!("expected GaveUp, got {other:?}"),
    }
    match pod.send(WaitStartSuccess).await.unwrap() {
        Err(error @ PodError::GaveUp { .. }) => check(error),
        other => panic!("expected GaveUp, got {other:?}"),
    }
    let status = pod.send(GetStatus).await.unwrap();
    assert_eq!(status.restarts, 2);
    assert!(status.error.unwrap().contains("more than 2 restarts"));
}

#[actix::test]
async fn an_unhealthy_runtime_is_restarted_after_the_threshold() {
    tokio::time::pause();
    let script = Script::new(Setup::Ok);
    let pod = pod(with_health(config("executor0"), 1_000, 3), &script);
    let mut events = subscribe_events(&pod).await;
    pod.send(Start).await.unwrap().unwrap();
    pod.send(WaitStartSuccess).await.unwrap().unwrap();
    script.healthy.store(false, Ordering::SeqCst);
    let mut unhealthy = 0;
    let cause = loop {
        match events.next().await {
            PodEvent::Unhealthy { consecutive, .. } => {
                unhealthy += 1;
                assert_eq!(consecutive, unhealthy);
            }
            PodEvent::Failed { cause, .. } => break cause,
            _ => {}
        }
    };
    assert_eq!(unhealthy, 3);
    assert!(
        matches!(cause, FailureCause::Unhealthy { ref reason } if reason.contains("queue stalled"))
    );
    script.healthy.store(true, Ordering::SeqCst);
    let started = pod.send(WaitStartSuccess).await.unwrap().unwrap();
    assert_eq!(started.generation, 1);
}

#[actix::test]
async fn each_pod_gets_its_own_env() {
    tokio::time::pause();
    let script = Script::new(Setup::Ok);
    let mut a = config("a");
    a.env.insert("MODEL".into(), "clip".into());
    let mut b = config("b");
    b.env.insert("MODEL".into(), "bert".into());
    let (a, b) = (pod(a, &script), pod(b, &script));
    for pod in [&a, &b] {
        pod.send(Start).await.unwrap().unwrap();
        pod.send(WaitStartSuccess).await.unwrap().unwrap();
    }
    assert_eq!(
        a.send(Call(Req::Env("MODEL"))).await.unwrap().unwrap(),
        "clip"
    );
    assert_eq!(
        b.send(Call(Req::Env("MODEL"))).await.unwrap().unwrap(),
        "bert"
    );
    assert!(std::env::var_os("MODEL").is_none());
}

#[actix::test]
async fn role_comes_from_the_config() {
    let script = Script::new(Setup::Ok);
    let mut config = config("gateway");
    config.role = PodRole::Gateway;
    let pod = pod(config, &script);
    assert_eq!(pod.send(GetRole).await.unwrap(), PodRole::Gateway);
}

#[actix::test]
async fn pods_under_a_shared_supervisor_register_with_it_and_leave_on_close() {
    tokio::time::pause();
    let script = Script::new(Setup::Ok);
    let shared = Supervisor::new(SupervisorConfig::default())
        .unwrap()
        .start();
    let pods: Vec<_> = ["dep/rep-0", "dep/rep-1"]
        .into_iter()
        .map(|name| {
            Pod::new(config(name), support::factory(&script))
                .supervised_by(shared.clone())
                .start()
        })
        .collect();
    for pod in &pods {
        pod.send(Start).await.unwrap().unwrap();
        pod.send(WaitStartSuccess).await.unwrap().unwrap();
    }
    let children = shared.send(WhichChildren).await.unwrap();
    let ids: Vec<_> = children.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["dep/rep-0", "dep/rep-1"]);

    let _ = pods[0].send(Call(Req::Panic)).await;
    assert_eq!(
        pods[0]
            .send(WaitStartSuccess)
            .await
            .unwrap()
            .unwrap()
            .generation,
        1
    );
    assert_eq!(shared.send(WhichChildren).await.unwrap()[0].restarts, 1);

    pods[1].send(Close::default()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let children = shared.send(WhichChildren).await.unwrap();
    let ids: Vec<_> = children.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["dep/rep-0"], "a closed pod leaves its supervisor");
}

/// A runtime whose teardown never finishes.
struct Stubborn;

impl runtime_actor::Runtime for Stubborn {
    type Request = ();
    type Response = ();

    async fn setup(
        &mut self,
        _: &mut runtime_actor::RuntimeContext,
    ) -> Result<(), runtime_actor::RuntimeError> {
        Ok(())
    }

    async fn handle(&mut self, _: ()) -> Result<(), runtime_actor::RuntimeError> {
        Ok(())
    }

    async fn teardown(&mut self) {
        std::future::pending::<()>().await;
    }
}

#[actix::test]
async fn a_close_whose_teardown_hangs_is_forced_after_the_timeout() {
    tokio::time::pause();
    let pod = Pod::new(
        config("stubborn"),
        runtime_actor::RuntimeFactory::new(|_| Stubborn),
    )
    .start();
    pod.send(Start).await.unwrap().unwrap();
    pod.send(WaitStartSuccess).await.unwrap().unwrap();
    let report = pod
        .send(Close {
            timeout: Some(Duration::from_secs(3)),
        })
        .await
        .unwrap();
    assert!(report.forced && !report.stuck, "{report:?}");
    assert!(report.took >= Duration::from_secs(3) && report.took < Duration::from_millis(3010));
    assert!(pod.send(Join).await.unwrap().is_ok());
}

#[actix::test]
async fn from_config_picks_the_registered_runtime_by_name() {
    tokio::time::pause();
    let script = Script::new(Setup::Ok);
    let registry =
        pod_actor::RuntimeRegistry::new().register("scripted", support::factory(&script));
    let pod = Pod::from_config(config("executor0"), &registry)
        .unwrap()
        .start();
    pod.send(Start).await.unwrap().unwrap();
    pod.send(WaitStartSuccess).await.unwrap().unwrap();

    let mut unknown = config("executor1");
    unknown.runtime = pod_actor::RuntimeSpec::InProcess {
        name: "clip".into(),
    };
    let err = Pod::from_config(unknown, &registry).unwrap_err();
    assert!(matches!(&err, PodError::UnknownRuntime { name } if name == "clip"));
    assert_eq!(
        err.to_string(),
        "no in-process runtime registered as `clip` (runtime.name)"
    );
}
