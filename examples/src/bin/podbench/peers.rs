//! The `peers` rows (built with `--features peers`): the pod's start,
//! restart and round trip beside the same work done by kameo and by ractor,
//! in the same actix System (a tokio current-thread runtime: the peers'
//! `tokio::spawn`ed actors run on the same thread as the pod).
//!
//! Every peer row does the same work on both sides: the same u64 in and
//! u64 out, the handler's panic caught and the actor's state rebuilt, zero
//! backoff everywhere (the pod's restart policy has none here, and neither
//! kameo's supervisor nor this ractor supervisor waits), the panic hook
//! silent (set in `main`). Side A is a pod on the shared arbiter, side B the
//! peer, so the ratio is pod / peer.
//!
//! Each side's sample runs in a task of its kind: the pod's in an actix
//! task (`paired`), the peer's in a tokio task (`native`), beside the
//! peer's actors. A peer awaited from an actix task would pay, at each
//! answer, a wake of the thread's `block_on` future (its actors are not in
//! actix's local task set): about 0.4 µs a round trip that is actix's
//! mixing with tokio's tasks, not the peer's.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::Addr;
use pod_actor::{Call, Close, PlacementKind, Pod};

use crate::{
    floor, median_row, paired, percentile_rows, pod_restart, started_pod, timed, Echo, Row, FAILED,
};

/// A check of the peers' own work failed: reported, and podbench exits 1.
fn check(ok: bool, what: &str) {
    if !ok {
        eprintln!("podbench: peers: {what}");
        FAILED.store(true, Ordering::SeqCst);
    }
}

/// A peer's sample in a tokio task of its own, where the peer's actors
/// run; a sample that panicked (a failed check) fails the run.
pub(super) async fn native<T: Send + 'static>(
    sample: impl Future<Output = T> + Send + 'static,
) -> T {
    match tokio::spawn(sample).await {
        Ok(measured) => measured,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

// ===== kameo =====

/// A kameo actor that answers `n + 1` and panics on `KameoDie`.
#[derive(Clone)]
struct KameoEcho;

/// How many times a `KameoEcho` started: the restart row checks that every
/// sample restarted it.
static KAMEO_STARTS: AtomicUsize = AtomicUsize::new(0);

impl kameo::Actor for KameoEcho {
    type Args = Self;
    type Error = kameo::error::Infallible;

    async fn on_start(
        state: Self,
        _: kameo::actor::ActorRef<Self>,
    ) -> Result<Self, kameo::error::Infallible> {
        KAMEO_STARTS.fetch_add(1, Ordering::Relaxed);
        Ok(state)
    }
}

struct KameoPing(u64);

impl kameo::message::Message<KameoPing> for KameoEcho {
    type Reply = u64;

    async fn handle(
        &mut self,
        KameoPing(n): KameoPing,
        _: &mut kameo::message::Context<Self, u64>,
    ) -> u64 {
        n + 1
    }
}

struct KameoDie;

impl kameo::message::Message<KameoDie> for KameoEcho {
    type Reply = ();

    async fn handle(&mut self, _: KameoDie, _: &mut kameo::message::Context<Self, ()>) {
        panic!("asked to fail");
    }
}

/// The supervisor of the supervised `KameoEcho`: kameo's own supervision
/// (one for one), nothing of its own.
struct KameoSupervisor;

impl kameo::Actor for KameoSupervisor {
    type Args = ();
    type Error = kameo::error::Infallible;

    async fn on_start(
        (): (),
        _: kameo::actor::ActorRef<Self>,
    ) -> Result<Self, kameo::error::Infallible> {
        Ok(KameoSupervisor)
    }
}

/// A kameo actor spawned until it answered one ask; then stopped, and its
/// end awaited (outside the time) before the next sample.
async fn kameo_start() -> Duration {
    native(async {
        use kameo::actor::Spawn;
        let begun = Instant::now();
        let actor = KameoEcho::spawn(KameoEcho);
        assert_eq!(actor.ask(KameoPing(1)).await.unwrap(), 2);
        let took = begun.elapsed();
        actor.stop_gracefully().await.unwrap();
        actor.wait_for_shutdown().await;
        took
    })
    .await
}

async fn kameo_supervised() -> (
    kameo::actor::ActorRef<KameoSupervisor>,
    kameo::actor::ActorRef<KameoEcho>,
) {
    use kameo::actor::Spawn;
    let supervisor = KameoSupervisor::spawn(());
    let child = KameoEcho::supervise(&supervisor, KameoEcho)
        .restart_policy(kameo::supervision::RestartPolicy::Permanent)
        // No limit: the rows restart it thousands of times a second.
        .restart_limit(u32::MAX, Duration::from_secs(1))
        .spawn()
        .await;
    (supervisor, child)
}

/// The supervised kameo child panics in a handler (`tell(Die)`); kameo's
/// supervisor restarts it behind the same `ActorRef` (the mailbox stays),
/// and the time runs until the next ask is answered.
async fn kameo_restart(child: kameo::actor::ActorRef<KameoEcho>) -> Duration {
    native(timed(async move {
        child.tell(KameoDie).await.unwrap();
        assert_eq!(child.ask(KameoPing(1)).await.unwrap(), 2);
    }))
    .await
}

// ===== ractor =====

/// A ractor actor that answers `n + 1` and panics on `Die`.
struct RactorEcho;

enum RactorMsg {
    Ping(u64, ractor::RpcReplyPort<u64>),
    Die,
}

impl ractor::Actor for RactorEcho {
    type Msg = RactorMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(
        &self,
        _: ractor::ActorRef<RactorMsg>,
        (): (),
    ) -> Result<(), ractor::ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ractor::ActorRef<RactorMsg>,
        message: RactorMsg,
        _: &mut (),
    ) -> Result<(), ractor::ActorProcessingErr> {
        match message {
            RactorMsg::Ping(n, reply) => {
                let _ = reply.send(n + 1);
            }
            RactorMsg::Die => panic!("asked to fail"),
        }
        Ok(())
    }
}

async fn ractor_ping(actor: &ractor::ActorRef<RactorMsg>, n: u64) -> u64 {
    match actor
        .call(|reply| RactorMsg::Ping(n, reply), None)
        .await
        .unwrap()
    {
        ractor::rpc::CallResult::Success(answer) => answer,
        _ => panic!("the ractor actor did not answer"),
    }
}

/// A ractor actor spawned until it answered one call; then stopped, and
/// its end (the join handle) awaited outside the time.
async fn ractor_start() -> Duration {
    native(async {
        use ractor::Actor;
        let begun = Instant::now();
        let (actor, ended) = RactorEcho::spawn(None, RactorEcho, ()).await.unwrap();
        assert_eq!(ractor_ping(&actor, 1).await, 2);
        let took = begun.elapsed();
        actor.stop(None);
        ended.await.unwrap();
        took
    })
    .await
}

/// A ractor supervisor: ractor has no restart policy of its own (an
/// `ActorRef` dies with its actor), so this respawns the child linked on
/// `ActorFailed`, at once, and hands out the new `ActorRef`.
struct RactorSupervisor;

type Generation = (ractor::ActorRef<RactorMsg>, u64);

enum SupervisorMsg {
    /// The current child and its generation.
    Current(ractor::RpcReplyPort<Generation>),
    /// The child of a generation after this one: at once if it is there,
    /// else as soon as it is respawned.
    After(u64, ractor::RpcReplyPort<Generation>),
}

struct SupervisorState {
    child: ractor::ActorRef<RactorMsg>,
    generation: u64,
    /// Who waits for a generation after the current one.
    waiting: Vec<ractor::RpcReplyPort<Generation>>,
}

impl ractor::Actor for RactorSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ractor::ActorRef<SupervisorMsg>,
        (): (),
    ) -> Result<SupervisorState, ractor::ActorProcessingErr> {
        let (child, _) = RactorEcho::spawn_linked(None, RactorEcho, (), myself.get_cell()).await?;
        Ok(SupervisorState {
            child,
            generation: 0,
            waiting: Vec::new(),
        })
    }

    async fn handle(
        &self,
        _: ractor::ActorRef<SupervisorMsg>,
        message: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ractor::ActorProcessingErr> {
        match message {
            SupervisorMsg::After(generation, reply) if state.generation <= generation => {
                state.waiting.push(reply);
            }
            SupervisorMsg::After(_, reply) | SupervisorMsg::Current(reply) => {
                let _ = reply.send((state.child.clone(), state.generation));
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ractor::ActorRef<SupervisorMsg>,
        event: ractor::SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ractor::ActorProcessingErr> {
        if let ractor::SupervisionEvent::ActorFailed(who, _) = event {
            if who.get_id() == state.child.get_id() {
                let (child, _) =
                    RactorEcho::spawn_linked(None, RactorEcho, (), myself.get_cell()).await?;
                state.child = child;
                state.generation += 1;
                for reply in state.waiting.drain(..) {
                    let _ = reply.send((state.child.clone(), state.generation));
                }
            }
        }
        Ok(())
    }
}

/// The supervised ractor child panics in a handler (a cast of `Die`); the
/// supervisor respawns it on `ActorFailed`; the time runs until the new
/// child (asked of the supervisor: the old `ActorRef` is dead) answered a
/// call.
async fn ractor_restart(
    supervisor: ractor::ActorRef<SupervisorMsg>,
    current: Arc<Mutex<Generation>>,
) -> Duration {
    let (child, generation) = lock(&current).clone();
    native(async move {
        let begun = Instant::now();
        child.send_message(RactorMsg::Die).unwrap();
        let next = ractor_call(&supervisor, |reply| SupervisorMsg::After(generation, reply)).await;
        assert_eq!(ractor_ping(&next.0, 1).await, 2);
        let took = begun.elapsed();
        *lock(&current) = next;
        took
    })
    .await
}

fn lock<T>(current: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    current
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

// ===== the rows =====

/// A panic in the pod's runtime until the next generation is `Started`
/// (`pod_restart`), then one Call answered: until the next answer, as the
/// peers' restarts.
async fn pod_restart_then_call(pod: Addr<Pod<Echo>>) -> Duration {
    let restarted = pod_restart(pod.clone()).await;
    let begun = Instant::now();
    assert_eq!(pod.send(Call::<Echo>(1)).await.unwrap().unwrap(), 2);
    restarted + begun.elapsed()
}

/// A pod on the shared arbiter started until `Started` (`started_pod`),
/// then one Call answered; closed after the time, before the next sample.
async fn pod_start_then_call() -> Duration {
    let begun = Instant::now();
    let pod = started_pod(PlacementKind::Shared).await;
    assert_eq!(pod.send(Call::<Echo>(1)).await.unwrap().unwrap(), 2);
    let took = begun.elapsed();
    pod.send(Close::default()).await.unwrap();
    took
}

/// The median of the times and the median of the memory figures of a
/// side's processes.
fn medians(samples: Vec<(f64, f64)>) -> (f64, f64) {
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (
        median(samples.iter().map(|s| s.0).collect()),
        median(samples.iter().map(|s| s.1).collect()),
    )
}

/// Two bare actix actors started until ready, then one call through both
/// (`floor.rs`): the least a pod's start with a first call costs in actix,
/// two actors being what a pod is. Both gone, outside the time, before the
/// next sample.
async fn floor_start_then_call() -> Duration {
    let begun = Instant::now();
    let two = floor::started().await;
    assert_eq!(two.outer.send(floor::Hop(1)).await.unwrap(), 2);
    let took = begun.elapsed();
    two.end().await;
    took
}

/// A row of medians in µs, pod / peer: a reference, with no aim of its own.
fn row(
    figure: &'static str,
    baseline_name: &'static str,
    samples: (Vec<Duration>, Vec<Duration>),
) -> Row {
    median_row(figure, baseline_name, "(reference)", samples)
}

async fn ractor_call<T: Send + 'static>(
    actor: &ractor::ActorRef<SupervisorMsg>,
    message: impl FnOnce(ractor::RpcReplyPort<T>) -> SupervisorMsg,
) -> T {
    match actor.call(message, None).await.unwrap() {
        ractor::rpc::CallResult::Success(answer) => answer,
        _ => panic!("the ractor supervisor did not answer"),
    }
}

/// The `peers` group: `n` samples of each start and restart row, `calls`
/// of each round trip row, after a tenth as many of warm-up.
pub(super) async fn peer_rows(n: usize, calls: usize, run: u32, rows: &mut Vec<Row>) {
    let warmup = n / 10;

    // Spawn -> ready, each side torn down (and its end awaited) after the
    // time, before the next sample.
    rows.push(row(
        "spawn -> ready: pod (StartAndWait, one Call) / kameo (spawn, one ask)",
        "kameo: Spawn::spawn, one ask answered",
        paired(warmup, n, pod_start_then_call, kameo_start).await,
    ));
    rows.push(row(
        "spawn -> ready: pod (StartAndWait, one Call) / ractor (spawn, one call)",
        "ractor: Actor::spawn, one call answered",
        paired(warmup, n, pod_start_then_call, ractor_start).await,
    ));
    // What two bare actix actors cost doing the same (a pod is two actors,
    // where a peer is one).
    rows.push(row(
        "spawn -> ready: actix floor, two bare actors (started, one call) / kameo",
        "kameo: Spawn::spawn, one ask answered",
        paired(warmup, n, floor_start_then_call, kameo_start).await,
    ));
    rows.push(row(
        "spawn -> ready: actix floor, two bare actors (started, one call) / ractor",
        "ractor: Actor::spawn, one call answered",
        paired(warmup, n, floor_start_then_call, ractor_start).await,
    ));

    // Restart after a panic in a handler until the next answer.
    let pod = started_pod(PlacementKind::Shared).await;
    let (kameo_supervisor, kameo_child) = kameo_supervised().await;
    kameo_child.wait_for_startup().await;
    let starts = KAMEO_STARTS.load(Ordering::Relaxed);
    rows.push(row(
        "restart after a panic -> next answer: pod (Started, one Call) / kameo",
        "kameo: supervised child panics on a tell, restarted, one ask",
        paired(
            warmup,
            n,
            || pod_restart_then_call(pod.clone()),
            || kameo_restart(kameo_child.clone()),
        )
        .await,
    ));
    check(
        KAMEO_STARTS.load(Ordering::Relaxed) - starts == warmup + n,
        "kameo's child did not restart once a sample",
    );
    kameo_supervisor.stop_gracefully().await.unwrap();
    kameo_supervisor.wait_for_shutdown().await;
    kameo_child.wait_for_shutdown().await;

    let (ractor_supervisor, supervisor_ended) =
        <RactorSupervisor as ractor::Actor>::spawn(None, RactorSupervisor, ())
            .await
            .unwrap();
    let current = Arc::new(Mutex::new(
        ractor_call(&ractor_supervisor, SupervisorMsg::Current).await,
    ));
    rows.push(row(
        "restart after a panic -> next answer: pod (Started, one Call) / ractor",
        "ractor: linked child panics, respawned on ActorFailed, new ref, one call",
        paired(
            warmup,
            n,
            || pod_restart_then_call(pod.clone()),
            || ractor_restart(ractor_supervisor.clone(), Arc::clone(&current)),
        )
        .await,
    ));
    let (child, generation) = lock(&current).clone();
    check(
        generation as usize == warmup + n,
        "ractor's child was not respawned once a sample",
    );
    child.stop_and_wait(None, None).await.unwrap();
    ractor_supervisor.stop(None);
    supervisor_ended.await.unwrap();

    // Round trips, u64 in and u64 out, to actors already started.
    let kameo_actor = <KameoEcho as kameo::actor::Spawn>::spawn(KameoEcho);
    let (ractor_actor, ractor_ended) = <RactorEcho as ractor::Actor>::spawn(None, RactorEcho, ())
        .await
        .unwrap();
    let through_pod = || {
        let pod = pod.clone();
        timed(async move {
            assert_eq!(pod.send(Call::<Echo>(1)).await.unwrap().unwrap(), 2);
        })
    };
    let through_kameo = || {
        let actor = kameo_actor.clone();
        native(timed(async move {
            assert_eq!(actor.ask(KameoPing(1)).await.unwrap(), 2);
        }))
    };
    let through_ractor = || {
        let actor = ractor_actor.clone();
        native(timed(async move {
            assert_eq!(ractor_ping(&actor, 1).await, 2);
        }))
    };
    let (ours, kameo) = paired(calls / 10, calls, through_pod, through_kameo).await;
    percentile_rows(
        rows,
        [
            "round trip, p50: pod (one Call) / kameo (one ask), u64 -> u64",
            "round trip, p99: pod (one Call) / kameo (one ask), u64 -> u64",
        ],
        (&ours, &kameo),
        "kameo: one ask to a running actor",
        "(reference)",
    );
    let (ours, ractor) = paired(calls / 10, calls, through_pod, through_ractor).await;
    percentile_rows(
        rows,
        [
            "round trip, p50: pod (one Call) / ractor (one call), u64 -> u64",
            "round trip, p99: pod (one Call) / ractor (one call), u64 -> u64",
        ],
        (&ours, &ractor),
        "ractor: one call to a running actor",
        "(reference)",
    );
    // The same for two bare actix actors, a call going through both.
    let two = floor::started().await;
    let outer = two.outer.clone();
    let through_floor = || {
        let outer = outer.clone();
        timed(async move {
            assert_eq!(outer.send(floor::Hop(1)).await.unwrap(), 2);
        })
    };
    let (ours, two_actors) = paired(calls / 10, calls, through_pod, through_floor).await;
    percentile_rows(
        rows,
        [
            "round trip, p50: pod (one Call) / actix floor, two bare actors",
            "round trip, p99: pod (one Call) / actix floor, two bare actors",
        ],
        (&ours, &two_actors),
        "two bare actix actors: a mailbox, then a queue the second serves",
        "(reference)",
    );
    let (two_actors, kameo) = paired(calls / 10, calls, through_floor, through_kameo).await;
    percentile_rows(
        rows,
        [
            "round trip, p50: actix floor, two bare actors / kameo (one ask)",
            "round trip, p99: actix floor, two bare actors / kameo (one ask)",
        ],
        (&two_actors, &kameo),
        "kameo: one ask to a running actor",
        "(reference)",
    );
    let (two_actors, ractor) = paired(calls / 10, calls, through_floor, through_ractor).await;
    percentile_rows(
        rows,
        [
            "round trip, p50: actix floor, two bare actors / ractor (one call)",
            "round trip, p99: actix floor, two bare actors / ractor (one call)",
        ],
        (&two_actors, &ractor),
        "ractor: one call to a running actor",
        "(reference)",
    );
    drop(outer);
    two.end().await;
    kameo_actor.stop_gracefully().await.unwrap();
    kameo_actor.wait_for_shutdown().await;
    ractor_actor.stop(None);
    ractor_ended.await.unwrap();
    pod.send(Close::default()).await.unwrap();
    many_peer_rows(run, rows).await;
}

/// `count` kameo actors spawned, each until it answered one ask: the time
/// and the RSS growth per actor (a fresh process: `podbench many kameo`).
pub(super) async fn many_kameo(count: usize) -> (Duration, f64) {
    use kameo::actor::Spawn;
    let rss_before = super::rss_bytes();
    let begun = Instant::now();
    let actors: Vec<_> = (0..count).map(|_| KameoEcho::spawn(KameoEcho)).collect();
    for actor in &actors {
        assert_eq!(actor.ask(KameoPing(1)).await.unwrap(), 2);
    }
    let took = begun.elapsed();
    let bytes = super::rss_bytes().saturating_sub(rss_before) as f64 / count as f64;
    (took, bytes)
}

/// `count` ractor actors spawned, each until it answered one call, as
/// [`many_kameo`].
pub(super) async fn many_ractor(count: usize) -> (Duration, f64) {
    use ractor::Actor;
    let rss_before = super::rss_bytes();
    let begun = Instant::now();
    let mut actors = Vec::with_capacity(count);
    for _ in 0..count {
        actors.push(RactorEcho::spawn(None, RactorEcho, ()).await.unwrap());
    }
    for (actor, _) in &actors {
        assert_eq!(ractor_ping(actor, 1).await, 2);
    }
    let took = begun.elapsed();
    let bytes = super::rss_bytes().saturating_sub(rss_before) as f64 / count as f64;
    (took, bytes)
}

/// Pairs of fresh processes that each run of [`many_peer_rows`] takes for
/// each peer: one sample a side was at the mercy of the VM's speed from one
/// process to the next.
const MANY_PAIRS: usize = 3;

/// 10,000 standalone pods (each deciding its own restarts; the peers'
/// actors are spawned under no supervisor at all) against 10,000 kameo and
/// ractor actors: until all answered, and memory per actor; each side in a
/// fresh process, [`MANY_PAIRS`] pairs a run, the first side alternating,
/// and each side's medians. The `many` group measures pods under one shared
/// supervisor, as a deployment runs them.
pub(super) async fn many_peer_rows(run: u32, rows: &mut Vec<Row>) {
    for (peer, started, started_baseline, memory, memory_baseline) in [
        (
            "kameo",
            "10,000 ready: standalone pods (Start, Started) / kameo (spawn, one ask)",
            "kameo: 10,000 actors spawned, one ask each; a fresh process",
            "memory per actor: standalone pod / kameo",
            "kameo: RSS growth per actor",
        ),
        (
            "ractor",
            "10,000 ready: standalone pods (Start, Started) / ractor (spawn, one call)",
            "ractor: 10,000 actors spawned, one call each; a fresh process",
            "memory per actor: standalone pod / ractor",
            "ractor: RSS growth per actor",
        ),
    ] {
        let (mut pods, mut other) = (Vec::new(), Vec::new());
        for pair in 0..MANY_PAIRS {
            if (run as usize + pair) % 2 == 0 {
                pods.push(super::many_in_child("standalone").await);
                other.push(super::many_in_child(peer).await);
            } else {
                other.push(super::many_in_child(peer).await);
                pods.push(super::many_in_child("standalone").await);
            }
        }
        let (pods, other) = (medians(pods), medians(other));
        rows.push(Row {
            figure: started,
            unit: "ms",
            ours: pods.0,
            baseline_name: started_baseline,
            baseline: other.0,
            aim: "(reference)",
        });
        rows.push(Row {
            figure: memory,
            unit: "bytes",
            ours: pods.1,
            baseline_name: memory_baseline,
            baseline: other.1,
            aim: "(reference)",
        });
    }
}
