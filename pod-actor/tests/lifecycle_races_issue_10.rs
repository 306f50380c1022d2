//! Seeded, randomised races of issue 10: a pod is closed (or dropped) at a
//! random point of its start, readiness, failure, backoff or restart setup,
//! alone or beside a sibling under a shared supervisor. Whatever the point:
//! no generation starts after the close, the sibling is untouched, the
//! intensity counts only real failures, every waiter and every accepted call
//! gets exactly one answer, and nothing is left (runtimes, threads).
//!
//! One test in this file, so that the thread count is this test's own.

mod support;

use std::time::Duration;

use actix::{Actor, Addr};
use futures::future::join_all;
use pod_actor::{
    Call, CallError, Close, GetStatus, PlacementKind, Pod, PodConfig, PodError, PodEvent, PodState,
    Start, WaitStartSuccess,
};
use supervisor::{Backoff, GetStatus as SupervisorStatus, Intensity, Supervisor, SupervisorConfig};
use support::{config, subscribe_events, Req, Script, Scripted, Setup};

/// Seeds run on the paused clock, runtimes on the test's arbiter.
const SEEDS: u64 = 150;
/// Seeds run on the real clock, runtimes on arbiters of their own.
const DEDICATED_SEEDS: u64 = 24;
const HOUR: Duration = Duration::from_secs(3600);

/// Where the pod is when it is closed or dropped.
#[derive(Debug, Clone, Copy)]
enum Point {
    BeforeStart,
    DuringSetup,
    Ready,
    AfterFailure,
    DuringBackoff,
    DuringRestartSetup,
}

const POINTS: [Point; 6] = [
    Point::BeforeStart,
    Point::DuringSetup,
    Point::Ready,
    Point::AfterFailure,
    Point::DuringBackoff,
    Point::DuringRestartSetup,
];

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |tasks| tasks.count())
}

struct Scenario {
    seed: u64,
    point: Point,
    drop_instead: bool,
    shared: bool,
    dedicated: bool,
    backoff_ms: u64,
    /// How long anything may take before it counts as hanging.
    limit: Duration,
}

impl Scenario {
    fn new(seed: u64, dedicated: bool) -> Scenario {
        let mut rng = fastrand::Rng::with_seed(seed);
        Scenario {
            seed,
            point: POINTS[rng.usize(..POINTS.len())],
            drop_instead: rng.bool(),
            shared: rng.bool(),
            dedicated,
            backoff_ms: [0, 10, 200][rng.usize(..3)],
            // Paused time jumps; real time (dedicated threads) does not.
            limit: if dedicated {
                Duration::from_secs(30)
            } else {
                HOUR
            },
        }
    }

    async fn within<F: std::future::Future>(&self, what: &str, future: F) -> F::Output {
        tokio::time::timeout(self.limit, future)
            .await
            .unwrap_or_else(|_| panic!("seed {} ({:?}): {what} hung", self.seed, self.point))
    }

    async fn until(&self, mut done: impl FnMut() -> bool) {
        self.within("cleanup", async {
            while !done() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }

    fn config(&self, name: &str) -> PodConfig {
        let mut config = config(name);
        if self.dedicated {
            config.placement = PlacementKind::Dedicated;
        }
        config.restart.backoff.initial = self.backoff_ms;
        config.restart.max_restarts = 3;
        config.restart.within = 60_000;
        config
    }
}

#[actix::test]
async fn close_or_drop_at_any_point_keeps_every_promise() {
    let baseline = threads();
    tokio::time::pause();
    for seed in 0..SEEDS {
        run(Scenario::new(seed, false)).await;
    }
    tokio::time::resume();
    for seed in 0..DEDICATED_SEEDS {
        run(Scenario::new(seed, true)).await;
    }
    // Dedicated arbiters and their joiners are gone, whatever the point.
    let settled = Scenario::new(0, true);
    settled.until(|| threads() <= baseline).await;
}

async fn run(s: Scenario) {
    let label = format!(
        "seed {} ({:?}, drop {}, shared {}, dedicated {}, backoff {} ms)",
        s.seed, s.point, s.drop_instead, s.shared, s.dedicated, s.backoff_ms
    );
    let shared = s.shared.then(|| {
        Supervisor::new(
            SupervisorConfig::default()
                .with_intensity(Intensity::new(5, Duration::from_secs(3600)))
                .with_backoff(Backoff::new(
                    Duration::from_millis(s.backoff_ms),
                    2.0,
                    Duration::from_secs(1),
                ))
                .with_seed(s.seed),
        )
        .unwrap()
        .start()
    });
    let sibling_script = Script::new(Setup::Ok);
    let sibling = shared.as_ref().map(|sup| {
        Pod::new(s.config("sibling"), support::factory(&sibling_script))
            .supervised_by(sup.clone())
            .start()
    });
    if let Some(sibling) = &sibling {
        sibling.send(Start).await.unwrap().unwrap();
        sibling.send(WaitStartSuccess).await.unwrap().unwrap();
    }

    // Setups take 20 ms, restarts' setups take an hour: a close during a
    // restart's setup is the race that used to spin.
    let script = Script::then(Setup::Sleep(Duration::from_millis(20)), Setup::Sleep(HOUR));
    let mut pod = Pod::new(s.config("target"), support::factory(&script));
    if let Some(sup) = &shared {
        pod = pod.supervised_by(sup.clone());
    }
    let pod = pod.start();
    let mut events = subscribe_events(&pod).await;
    let mut failures = 0;
    let mut waiters = Vec::new();
    let mut calls = Vec::new();

    if !matches!(s.point, Point::BeforeStart) {
        pod.send(Start).await.unwrap().unwrap();
        waiters.push(pod.send(WaitStartSuccess));
    }
    match s.point {
        Point::BeforeStart => {}
        Point::DuringSetup => {
            until(&s, &mut events, |e| matches!(e, PodEvent::Starting { .. })).await
        }
        Point::Ready => until(&s, &mut events, |e| matches!(e, PodEvent::Started(_))).await,
        Point::AfterFailure | Point::DuringBackoff | Point::DuringRestartSetup => {
            until(&s, &mut events, |e| matches!(e, PodEvent::Started(_))).await;
            calls.push(pod.send(Call(Req::Sleep(Duration::from_millis(5)))));
            let _ = pod.send(Call(Req::Panic)).await;
            failures += 1;
            waiters.push(pod.send(WaitStartSuccess));
            match s.point {
                Point::AfterFailure => {
                    until(&s, &mut events, |e| matches!(e, PodEvent::Failed { .. })).await
                }
                Point::DuringBackoff => {
                    until(&s, &mut events, |e| {
                        matches!(e, PodEvent::Restarting { .. })
                    })
                    .await
                }
                _ => {
                    until(&s, &mut events, |e| {
                        matches!(e, PodEvent::Starting { generation: 1 })
                    })
                    .await
                }
            }
        }
    }
    // Calls made right before the close: accepted ones must be answered.
    calls.push(pod.send(Call(Req::Echo(1))));
    let counted_before = match &shared {
        Some(sup) => sup.send(SupervisorStatus).await.unwrap().restarts_in_window,
        None => failures,
    };

    if s.drop_instead {
        drop(pod);
    } else {
        let report = s.within("close", pod.send(Close::default())).await.unwrap();
        assert!(report.graceful(), "{label}: {report:?}");
        assert_eq!(
            pod.send(GetStatus).await.unwrap().state,
            PodState::Terminated,
            "{label}"
        );
        assert!(
            matches!(
                pod.send(Call(Req::Echo(2))).await.unwrap(),
                Err(CallError::Closed)
            ),
            "{label}"
        );
    }

    // Every waiter and call: exactly one answer, none hanging.
    for waited in s.within("a waiter", join_all(waiters)).await {
        match waited {
            Ok(Ok(_)) | Ok(Err(PodError::Closed)) | Err(_) => {}
            Ok(Err(other)) => panic!("{label}: a waiter got {other:?}"),
        }
    }
    for answered in s.within("a call", join_all(calls)).await {
        match answered {
            Ok(Ok(_)) | Err(_) => {}
            Ok(Err(CallError::NotReady | CallError::Closed | CallError::RuntimeExited { .. })) => {}
            Ok(Err(other)) => panic!("{label}: a call got {other:?}"),
        }
    }

    // Nothing runs any more, and nothing starts later.
    s.until(|| script.live() == 0).await;
    // Long enough for a backoff to run out, had the close not cancelled it.
    support::idle_for(if s.dedicated {
        Duration::from_millis(250)
    } else {
        Duration::from_secs(10)
    })
    .await;
    assert_eq!(
        script.live(),
        0,
        "{label}: a generation started after the close"
    );
    let built = script.built.load(std::sync::atomic::Ordering::SeqCst);
    let expected_max = 1 + u32::from(failures > 0);
    assert!(built <= expected_max, "{label}: {built} runtimes built");
    let mut after = Vec::new();
    while let Some(event) = events.try_next() {
        after.push(event);
    }
    if let Some(end) = after
        .iter()
        .position(|e| matches!(e, PodEvent::Terminated { .. }))
    {
        assert!(
            !after[end..]
                .iter()
                .any(|e| matches!(e, PodEvent::Starting { .. } | PodEvent::Restarting { .. })),
            "{label}: {after:?}"
        );
    }

    if let (Some(sup), Some(sibling)) = (&shared, &sibling) {
        let status = sup.send(SupervisorStatus).await.unwrap();
        // Only the real failure may count (it may have been reported just
        // before the close), never the close itself.
        let counted = status.restarts_in_window;
        assert!(
            counted >= counted_before && counted <= failures,
            "{label}: {counted} restarts counted for {failures} failures"
        );
        let ids: Vec<_> = status.children.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["sibling"], "{label}");
        let sib = sibling.send(GetStatus).await.unwrap();
        assert_eq!(
            (sib.state, sib.generation),
            (PodState::Running, 0),
            "{label}"
        );
        close_sibling(sibling).await;
        s.until(|| sibling_script.live() == 0).await;
    }
}

async fn close_sibling(sibling: &Addr<Pod<Scripted>>) {
    assert!(sibling.send(Close::default()).await.unwrap().graceful());
}

async fn until(
    s: &Scenario,
    events: &mut support::Inbox<PodEvent>,
    pred: impl Fn(&PodEvent) -> bool,
) {
    loop {
        if pred(&s.within("an event", events.next()).await) {
            return;
        }
    }
}
