//! Lifecycle v2 (issue 10): a close is never a crash, every accepted call is
//! answered, nothing outlives its owner. One test per reproduced breakage.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use actix::{Actor, Arbiter};
use pod_actor::{
    Call, CallError, Close, ForcedBy, GetStatus, Join, Pod, PodError, PodEvent, PodHandle,
    PodState, Start, WaitStartSuccess,
};
use runtime_actor::Placement;
use supervisor::{
    Backoff, GetStatus as SupervisorStatus, Intensity, Subscribe, Supervisor, SupervisorConfig,
    SupervisorEvent, SupervisorPhase, WhichChildren,
};
use support::{
    config, eventually, pod, subscribe_events, subscribe_started, Gate, Req, Script, Setup,
};

const HOUR: Duration = Duration::from_secs(3600);

/// Collects a supervisor's events.
struct Events(tokio::sync::mpsc::UnboundedReceiver<SupervisorEvent>);

struct EventProbe(tokio::sync::mpsc::UnboundedSender<SupervisorEvent>);

impl Actor for EventProbe {
    type Context = actix::Context<Self>;
}

impl actix::Handler<SupervisorEvent> for EventProbe {
    type Result = ();
    fn handle(&mut self, event: SupervisorEvent, _: &mut actix::Context<Self>) {
        let _ = self.0.send(event);
    }
}

async fn supervisor_events(sup: &actix::Addr<Supervisor>) -> (Events, actix::Addr<EventProbe>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let probe = EventProbe(tx).start();
    sup.send(Subscribe(probe.clone().recipient()))
        .await
        .unwrap();
    (Events(rx), probe)
}

impl Events {
    fn drain(&mut self) -> Vec<SupervisorEvent> {
        let mut out = Vec::new();
        while let Ok(event) = self.0.try_recv() {
            out.push(event);
        }
        out
    }
}

// ===== 1. closing a pod that is restarting is not a crash =====

#[actix::test]
async fn closing_a_pod_during_its_restart_setup_leaves_the_sibling_and_the_count_alone() {
    tokio::time::pause();
    let shared = Supervisor::new(
        SupervisorConfig::default()
            .with_intensity(Intensity::new(1, Duration::from_secs(60)))
            .with_backoff(Backoff::immediate()),
    )
    .unwrap()
    .start();
    let (mut events, _probe) = supervisor_events(&shared).await;
    let healthy = Script::new(Setup::Ok);
    let flaky = Script::then(Setup::Ok, Setup::Sleep(HOUR));
    let a = Pod::new(config("a"), support::factory(&healthy))
        .supervised_by(shared.clone())
        .start();
    let b = Pod::new(config("b"), support::factory(&flaky))
        .supervised_by(shared.clone())
        .start();
    for pod in [&a, &b] {
        pod.send(Start).await.unwrap().unwrap();
        pod.send(WaitStartSuccess).await.unwrap().unwrap();
    }
    events.drain();
    let mut b_events = subscribe_events(&b).await;
    let _ = b.send(Call(Req::Panic)).await;
    // B's restart is in its (endless) setup when it is closed.
    loop {
        if let PodEvent::Starting { generation: 1 } = b_events.next().await {
            break;
        }
    }
    let report = b.send(Close::default()).await.unwrap();
    assert!(report.graceful(), "{report:?}");
    assert_eq!(flaky.teardowns.load(Ordering::SeqCst), 1);

    support::idle_for(Duration::from_secs(10)).await;
    let status = shared.send(SupervisorStatus).await.unwrap();
    assert_eq!(status.phase, SupervisorPhase::Running);
    assert_eq!(status.restarts_in_window, 1, "the close was counted");
    let ids: Vec<_> = status.children.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["a"]);
    let a_status = a.send(GetStatus).await.unwrap();
    assert_eq!(
        (a_status.state, a_status.generation),
        (PodState::Running, 0)
    );
    assert_eq!(healthy.teardowns.load(Ordering::SeqCst), 0);
    assert_eq!(a.send(Call(Req::Echo(5))).await.unwrap().unwrap(), "5");
    let seen = events.drain();
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e, SupervisorEvent::GaveUp { .. }) || e.child() == Some("a")),
        "{seen:?}"
    );
}

#[actix::test]
async fn a_standalone_pod_closed_during_a_restart_setup_restarts_nothing_more() {
    tokio::time::pause();
    let script = Script::then(Setup::Ok, Setup::Sleep(HOUR));
    let mut config = config("zero-backoff");
    config.restart.backoff.initial = 0;
    let pod = pod(config, &script);
    let mut events = subscribe_events(&pod).await;
    pod.send(Start).await.unwrap().unwrap();
    pod.send(WaitStartSuccess).await.unwrap().unwrap();
    let _ = pod.send(Call(Req::Panic)).await;
    loop {
        if let PodEvent::Starting { generation: 1 } = events.next().await {
            break;
        }
    }
    let report = pod.send(Close::default()).await.unwrap();
    assert!(report.graceful(), "{report:?}");
    support::idle_for(Duration::from_secs(10)).await;
    let mut rest = Vec::new();
    while let Some(event) = events.try_next() {
        rest.push(event);
    }
    assert!(
        matches!(rest.last(), Some(PodEvent::Terminated { error: None })),
        "{rest:?}"
    );
    assert!(
        !rest
            .iter()
            .any(|e| matches!(e, PodEvent::Restarting { .. } | PodEvent::Starting { .. })),
        "{rest:?}"
    );
    assert_eq!(pod.send(GetStatus).await.unwrap().generation, 1);
    assert_eq!(script.live(), 0);
}

// ===== 2. calls accepted before a close are answered =====

#[actix::test]
async fn calls_sent_right_before_close_are_answered_and_later_ones_are_closed() {
    tokio::time::pause();
    let script = Script::new(Setup::Ok);
    let pod = pod(config("busy"), &script);
    pod.send(Start).await.unwrap().unwrap();
    pod.send(WaitStartSuccess).await.unwrap().unwrap();
    // Sent back to back, in this order, before any is awaited.
    let slow = pod.send(Call(Req::Sleep(Duration::from_millis(50))));
    let echo = pod.send(Call(Req::Echo(3)));
    let close = pod.send(Close::default());
    let late = pod.send(Call(Req::Echo(4)));
    let (slow, echo, report, late) = tokio::join!(slow, echo, close, late);
    assert_eq!(slow.unwrap().unwrap(), "slept");
    assert_eq!(echo.unwrap().unwrap(), "3");
    assert!(report.unwrap().graceful());
    assert!(matches!(late.unwrap(), Err(CallError::Closed)));
    assert_eq!(script.teardowns.load(Ordering::SeqCst), 1);
}

// ===== 3. a pod dropped without Close is closed and freed =====

#[actix::test]
async fn dropping_the_last_address_closes_the_pod_gracefully_and_frees_it() {
    tokio::time::pause();
    let script = Script::new(Setup::Ok);
    // Health checks too: their timer must not keep the pod alive.
    let pod = pod(support::with_health(config("orphan"), 100, 3), &script);
    let mut started = subscribe_started(&pod).await;
    pod.send(Start).await.unwrap().unwrap();
    started.next().await;
    drop(pod);
    eventually(|| script.live() == 0).await;
    assert_eq!(script.teardowns.load(Ordering::SeqCst), 1);
    assert_eq!(script.built.load(Ordering::SeqCst), 1);
}

/// A standalone pod waits out its backoff with a timer that holds it
/// weakly: dropped meanwhile, it ends at once and restarts nothing.
#[actix::test]
async fn a_standalone_pod_dropped_during_its_backoff_ends_and_restarts_nothing() {
    tokio::time::pause();
    let script = Script::new(Setup::Ok);
    let mut config = config("backing-off");
    config.restart.backoff.initial = 30_000;
    config.restart.backoff.jitter = 0.0;
    let pod = pod(config, &script);
    let mut events = subscribe_events(&pod).await;
    pod.send(Start).await.unwrap().unwrap();
    pod.send(WaitStartSuccess).await.unwrap().unwrap();
    let _ = pod.send(Call(Req::Panic)).await;
    loop {
        if let PodEvent::Restarting { delay, .. } = events.next().await {
            assert_eq!(delay, Duration::from_secs(30));
            break;
        }
    }
    drop(pod);
    assert!(matches!(
        events.next().await,
        PodEvent::Terminated { error: None }
    ));
    support::idle_for(Duration::from_secs(60)).await;
    assert_eq!(script.built.load(Ordering::SeqCst), 1);
    assert_eq!(script.live(), 0);
    assert!(events.try_next().is_none());
}

#[actix::test]
async fn a_dropped_replica_leaves_its_shared_supervisor() {
    tokio::time::pause();
    let shared = Supervisor::new(SupervisorConfig::default())
        .unwrap()
        .start();
    let script = Script::new(Setup::Ok);
    let keep = Pod::new(config("dep/rep-0"), support::factory(&script))
        .supervised_by(shared.clone())
        .start();
    let gone = Pod::new(config("dep/rep-1"), support::factory(&script))
        .supervised_by(shared.clone())
        .start();
    for pod in [&keep, &gone] {
        pod.send(Start).await.unwrap().unwrap();
        pod.send(WaitStartSuccess).await.unwrap().unwrap();
    }
    drop(gone);
    eventually(|| script.live() == 1).await;
    let children = shared.send(WhichChildren).await.unwrap();
    let ids: Vec<_> = children.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["dep/rep-0"]);
    assert_eq!(children[0].restarts, 0);
}

// ===== 5. an arbiter stopped under a pod is a forced close, not a crash =====

#[actix::test]
async fn a_runtime_arbiter_stopped_under_the_pod_ends_it_forced_without_a_restart() {
    let arbiter = Arbiter::new();
    let shared = Supervisor::new(SupervisorConfig::default())
        .unwrap()
        .start();
    let script = Script::new(Setup::Ok);
    let pod = Pod::new(config("stranded"), support::factory(&script))
        .supervised_by(shared.clone())
        .with_placement(Placement::Shared(arbiter.handle()))
        .start();
    pod.send(Start).await.unwrap().unwrap();
    pod.send(WaitStartSuccess).await.unwrap().unwrap();
    arbiter.stop();
    assert!(matches!(
        pod.send(Join).await.unwrap(),
        Err(PodError::ArbiterStopped)
    ));
    let report = pod.send(Close::default()).await.unwrap();
    assert!(report.forced, "{report:?}");
    assert_eq!(report.forced_by, Some(ForcedBy::ArbiterStopped));
    let status = shared.send(SupervisorStatus).await.unwrap();
    assert_eq!(status.restarts_in_window, 0);
    assert!(status.children.is_empty(), "{status:?}");
    let _ = std::thread::spawn(move || arbiter.join()).join();
}

#[actix::test]
async fn a_pod_whose_arbiter_stops_mid_close_answers_everyone_and_tells_its_subscribers() {
    let arbiter = Arbiter::new();
    let script = Script::new(Setup::Ok);
    let mut config = config("mid-close");
    config.placement = pod_actor::PlacementKind::Dedicated;
    let factory = support::factory(&script);
    let pod = Pod::<support::Scripted>::start_in_arbiter(&arbiter.handle(), move |_| {
        Pod::new(config, factory)
    });
    let mut events = subscribe_events(&pod).await;
    pod.send(Start).await.unwrap().unwrap();
    pod.send(WaitStartSuccess).await.unwrap().unwrap();
    let gate = Gate::default();
    pod.do_send(Call(Req::Block(gate.clone())));
    let close = pod.send(Close {
        timeout: Some(Duration::from_secs(30)),
    });
    let join = pod.send(Join);
    let stop = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        arbiter.stop();
    };
    // Neither hangs: the pod, dropped with its arbiter, answers both as it
    // goes, and says why the close was not graceful.
    let (closed, joined, ()) = tokio::join!(close, join, stop);
    let report = closed.expect("the close is answered");
    assert!(report.forced, "{report:?}");
    assert_eq!(report.forced_by, Some(ForcedBy::ArbiterStopped));
    assert!(
        matches!(joined, Ok(Err(PodError::ArbiterStopped))),
        "{joined:?}"
    );
    loop {
        match events.next().await {
            PodEvent::Terminated { error } => {
                assert!(matches!(error, Some(PodError::ArbiterStopped)), "{error:?}");
                break;
            }
            PodEvent::Restarting { .. } => panic!("a restart was scheduled"),
            _ => {}
        }
    }
    gate.open();
    let _ = std::thread::spawn(move || arbiter.join()).join();
    // The runtime's own arbiter ended with it, owner gone or not.
    eventually(|| script.live() == 0).await;
}

/// The `Terminated` event is out before the close returns, as it was when
/// a task relayed the close's answer. The closer is a task, as a service's
/// code is, beside the probe on the same thread: woken by the event before
/// the closer is woken by its answer, the probe has forwarded it.
#[actix::test]
async fn a_close_returns_with_the_terminated_event_out() {
    let script = Script::new(Setup::Ok);
    let pod = pod(config("told-first"), &script);
    let mut events = subscribe_events(&pod).await;
    pod.send(Start).await.unwrap().unwrap();
    pod.send(WaitStartSuccess).await.unwrap().unwrap();
    let seen = actix::spawn(async move {
        let report = pod.send(Close::default()).await.unwrap();
        assert!(report.graceful(), "{report:?}");
        let mut seen = Vec::new();
        while let Some(event) = events.try_next() {
            seen.push(event);
        }
        seen
    })
    .await
    .unwrap();
    assert!(
        matches!(seen.last(), Some(PodEvent::Terminated { error: None })),
        "{seen:?}"
    );
}

#[test]
fn a_close_whose_reply_is_lost_is_reported_forced() {
    let script = Script::new(Setup::Ok);
    let handle = PodHandle::spawn(config("vanishing"), support::factory(&script)).unwrap();
    handle.start().unwrap();
    handle.wait_start_success().unwrap();
    // The runtime shares the pod's thread and stops the pod's System.
    let _ = handle.call(Req::StopSystem);
    while handle.status().is_ok() {
        std::thread::yield_now();
    }
    let report = handle.close();
    assert!(report.forced, "{report:?}");
    assert_eq!(report.forced_by, Some(ForcedBy::ReplyLost));
}

// ===== 6. the smaller ones =====

#[actix::test]
async fn subscribing_twice_delivers_each_started_once() {
    tokio::time::pause();
    let script = Script::new(Setup::Ok);
    let pod = pod(config("twice"), &script);
    let mut started = subscribe_started(&pod).await;
    pod.send(pod_actor::Subscribe(started.probe.clone().recipient()))
        .await
        .unwrap();
    pod.send(Start).await.unwrap().unwrap();
    assert_eq!(started.next().await.generation, 0);
    let _ = pod.send(Call(Req::Panic)).await;
    assert_eq!(started.next().await.generation, 1);
    support::idle_for(Duration::from_secs(1)).await;
    assert!(started.try_next().is_none());
}

#[test]
fn join_with_a_timeout_returns_while_the_pods_thread_is_blocked() {
    let script = Script::new(Setup::Ok);
    // Shared placement: the runtime runs on the pod's own thread.
    let handle = PodHandle::spawn(config("blocker"), support::factory(&script)).unwrap();
    handle.start().unwrap();
    handle.wait_start_success().unwrap();
    let gate = Gate::default();
    handle.addr().do_send(Call(Req::Block(gate.clone())));
    // Opens the gate late if join never returns, so a failure cannot hang.
    let rescue = {
        let gate = gate.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(20));
            gate.open();
        })
    };
    let joined = handle.join(Some(Duration::from_millis(200)));
    let still_blocked = !gate.is_open();
    assert!(joined.is_err(), "{joined:?}");
    assert!(still_blocked, "join only returned once the thread was free");
    gate.open();
    drop(handle);
    drop(rescue);
}

// ===== found by attacking the change =====

#[actix::test]
async fn a_pod_dropped_before_its_first_start_is_not_a_crash_of_the_deployment() {
    tokio::time::pause();
    let shared = Supervisor::new(
        SupervisorConfig::default()
            .with_strategy(supervisor::Strategy::OneForAll)
            .with_intensity(Intensity::new(1, Duration::from_secs(60)))
            .with_backoff(Backoff::immediate()),
    )
    .unwrap()
    .start();
    let healthy = Script::new(Setup::Ok);
    let other = Script::new(Setup::Ok);
    let a = Pod::new(config("a"), support::factory(&healthy))
        .supervised_by(shared.clone())
        .start();
    a.send(Start).await.unwrap().unwrap();
    a.send(WaitStartSuccess).await.unwrap().unwrap();
    let mut eager = config("b");
    eager.restart.on_start_failure = true;
    let b = Pod::new(eager, support::factory(&other))
        .supervised_by(shared.clone())
        .start();
    b.do_send(Start);
    drop(b);
    support::idle_for(Duration::from_secs(10)).await;
    let status = shared.send(SupervisorStatus).await.unwrap();
    assert_eq!(status.restarts_in_window, 0);
    assert_eq!(status.phase, SupervisorPhase::Running);
    let a_status = a.send(GetStatus).await.unwrap();
    assert_eq!(
        (a_status.state, a_status.generation),
        (PodState::Running, 0)
    );
    assert_eq!(other.live(), 0);
}

#[actix::test]
async fn starting_under_a_supervisor_that_stopped_is_answered() {
    tokio::time::pause();
    let shared = Supervisor::new(SupervisorConfig::default())
        .unwrap()
        .start();
    let _ = shared.send(supervisor::Shutdown).await.unwrap();
    let script = Script::new(Setup::Ok);
    let late = Pod::new(config("late"), support::factory(&script))
        .supervised_by(shared.clone())
        .start();
    assert!(matches!(
        late.send(Start).await.unwrap(),
        Err(PodError::Supervisor(supervisor::Error::ShuttingDown))
    ));

    // The race: the registration is queued behind the shutdown.
    let shared = Supervisor::new(SupervisorConfig::default())
        .unwrap()
        .start();
    let racing = Pod::new(config("racing"), support::factory(&script))
        .supervised_by(shared.clone())
        .start();
    racing.do_send(Start);
    let _ = shared.send(supervisor::Shutdown).await;
    let waited = tokio::time::timeout(HOUR, racing.send(WaitStartSuccess))
        .await
        .expect("WaitStartSuccess hung")
        .unwrap();
    // Refused at Start (the pod stays idle), or ended by its supervisor.
    assert!(
        matches!(waited, Err(PodError::Supervisor(_) | PodError::NotStarted)),
        "{waited:?}"
    );
    let joined = tokio::time::timeout(HOUR, racing.send(Join))
        .await
        .expect("Join hung")
        .unwrap();
    assert!(joined.is_err(), "{joined:?}");
}

#[actix::test]
async fn a_refused_duplicate_that_closes_early_leaves_the_original_supervised() {
    tokio::time::pause();
    let shared = Supervisor::new(
        SupervisorConfig::default()
            .with_intensity(Intensity::new(5, Duration::from_secs(60)))
            .with_backoff(Backoff::immediate()),
    )
    .unwrap()
    .start();
    let script = Script::new(Setup::Ok);
    let original = Pod::new(config("x"), support::factory(&script))
        .supervised_by(shared.clone())
        .start();
    original.send(Start).await.unwrap().unwrap();
    original.send(WaitStartSuccess).await.unwrap().unwrap();
    // Same name: refused, but closed before the refusal reaches it.
    let duplicate_script = Script::new(Setup::Ok);
    let duplicate = Pod::new(config("x"), support::factory(&duplicate_script))
        .supervised_by(shared.clone())
        .start();
    let start = duplicate.send(Start);
    let close = duplicate.send(Close::default());
    start.await.unwrap().unwrap();
    let _ = close.await.unwrap();
    support::idle_for(Duration::from_millis(50)).await;
    let status = shared.send(SupervisorStatus).await.unwrap();
    let ids: Vec<_> = status.children.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["x"]);
    // Still supervised: a crash is restarted.
    let _ = original.send(Call(Req::Panic)).await;
    let restarted = tokio::time::timeout(HOUR, original.send(WaitStartSuccess))
        .await
        .expect("the original was left unsupervised")
        .unwrap()
        .unwrap();
    assert_eq!(restarted.generation, 1);
}

#[actix::test]
async fn errors_expose_their_cause_as_source() {
    tokio::time::pause();
    let script = Script::new(Setup::Ok);
    let pod = pod(config("sourced"), &script);
    pod.send(Start).await.unwrap().unwrap();
    pod.send(WaitStartSuccess).await.unwrap().unwrap();
    let error = pod.send(Call(Req::Panic)).await.unwrap().unwrap_err();
    let source = std::error::Error::source(&error).expect("the runtime's cause");
    assert!(
        source.to_string().contains("request handler panicked"),
        "{source}"
    );

    let failing = Script::new(Setup::Fail);
    let pod = support::pod(config("failing"), &failing);
    pod.send(Start).await.unwrap().unwrap();
    let error = pod.send(WaitStartSuccess).await.unwrap().unwrap_err();
    let cause = std::error::Error::source(&error).expect("the failure cause");
    let root = std::error::Error::source(cause).expect("the runtime's own error");
    assert!(root.to_string().contains("model file missing"), "{root}");
}
