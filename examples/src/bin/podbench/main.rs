//! `podbench`: the project's figures, each measured beside its baseline in
//! the same run, printed as a table (or JSON with `--json`).
//!
//! `cargo run --release -p examples --bin podbench [-- --json | --markdown] [-- --runs N] [-- --quick]`
//!
//! In every row both sides are measured in turns, sample by sample after a
//! warm-up, the side that goes first alternating, so that a change of load
//! lands on both. Each sample runs in a task, as a service's code does
//! (see `paired`). The whole table is measured in several runs (5 by
//! default); each row gives the median over the runs of our median, the
//! baseline's and their ratio, with the ratio's spread, and the load
//! average as each run began. What each row measures, and the aims, are in
//! BENCHMARKS.md, whose table `--markdown` prints (or `--render FILE` from
//! a saved `--json`). `--quick` takes one run of fewer samples (for CI).
//!
//! Built with `--features peers`, a group `peers` compares the pod with
//! kameo and ractor doing the same work (`peers.rs`; see BENCHMARKS.md).

use std::io::Write;
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, ActorContext, Addr, Arbiter, Context, Handler, Message, Supervised, System};
use pod_actor::{
    Call, Close, ConfigFormat, GetRole, PlacementKind, Pod, PodConfig, RuntimeSpec, Start,
    StartAndWait, Started, Subscribe, WaitStartSuccess,
};
use runtime_actor::{
    Placement, ProcessRequest, ProcessRuntime, Runtime, RuntimeActor, RuntimeConfig,
    RuntimeContext, RuntimeError, RuntimeFactory,
};
use supervisor::{Supervisor, SupervisorConfig};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::Notify;

mod container;
mod floor;
#[cfg(feature = "peers")]
mod peers;

// ===== the workloads =====

struct Echo;

impl Runtime for Echo {
    type Request = u64;
    type Response = u64;

    async fn setup(&mut self, _: &mut RuntimeContext) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn handle(&mut self, n: u64) -> Result<u64, RuntimeError> {
        if n == u64::MAX {
            panic!("asked to fail");
        }
        Ok(n + 1)
    }
}

struct Bare;

impl Actor for Bare {
    type Context = Context<Self>;
}

impl Supervised for Bare {}

#[derive(Message)]
#[rtype(result = "u64")]
struct Ping(u64);

impl Handler<Ping> for Bare {
    type Result = u64;

    fn handle(&mut self, Ping(n): Ping, _: &mut Context<Self>) -> u64 {
        n + 1
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Die;

impl Handler<Die> for Bare {
    type Result = ();

    fn handle(&mut self, _: Die, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// Counts what it receives and wakes the bench at a target.
#[derive(Clone)]
struct Tally {
    count: Arc<AtomicUsize>,
    target: usize,
    done: Arc<Notify>,
}

impl Tally {
    fn new(target: usize) -> Tally {
        Tally {
            count: Arc::new(AtomicUsize::new(0)),
            target,
            done: Arc::new(Notify::new()),
        }
    }

    fn hit(&self) {
        if self.count.fetch_add(1, Ordering::SeqCst) + 1 == self.target {
            self.done.notify_one();
        }
    }

    async fn reached(&self) {
        if self.count.load(Ordering::SeqCst) < self.target {
            self.done.notified().await;
        }
    }
}

struct Counter(Tally);

impl Actor for Counter {
    type Context = Context<Self>;
}

impl Handler<Started> for Counter {
    type Result = ();

    fn handle(&mut self, _: Started, _: &mut Context<Self>) {
        self.0.hit();
    }
}

impl Handler<Ping> for Counter {
    type Result = u64;

    fn handle(&mut self, Ping(n): Ping, _: &mut Context<Self>) -> u64 {
        self.0.hit();
        n
    }
}

// ===== measuring =====

/// One row as a group measures it.
#[derive(serde::Serialize)]
struct Row {
    figure: &'static str,
    unit: &'static str,
    ours: f64,
    baseline_name: &'static str,
    baseline: f64,
    aim: &'static str,
}

/// A row of the two sides' medians, in µs, from their samples as
/// [`paired`] gives them.
fn median_row(
    figure: &'static str,
    baseline_name: &'static str,
    aim: &'static str,
    (ours, baseline): (Vec<Duration>, Vec<Duration>),
) -> Row {
    Row {
        figure,
        unit: "us",
        ours: micros(median(ours)),
        baseline_name,
        baseline: micros(median(baseline)),
        aim,
    }
}

/// A throughput row: `count` answers a sample, from each side's median
/// sample.
fn rate_row(
    figure: &'static str,
    unit: &'static str,
    baseline_name: &'static str,
    aim: &'static str,
    count: usize,
    (ours, baseline): (Vec<Duration>, Vec<Duration>),
) -> Row {
    let rate = |d: Duration| count as f64 / d.as_secs_f64();
    Row {
        figure,
        unit,
        ours: rate(median(ours)),
        baseline_name,
        baseline: rate(median(baseline)),
        aim,
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn percentile(mut samples: Vec<Duration>, p: f64) -> Duration {
    samples.sort();
    let at = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[at]
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Both sides of a row in turns: a warm-up of each, then `n` pairs, the
/// side that goes first alternating, so that a change of load lands on
/// both. Each closure measures one sample.
///
/// Each sample runs in a task of its own on this arbiter, as the code of
/// an actix service does, not in `block_on`'s future: every wake of that
/// future parks the runtime's thread once (an `epoll_wait`), about 0.3 µs
/// that no actor or task pays and that both sides would carry into every
/// await they make. A peer's side moves to a tokio task of its own
/// (`peers::native`), where its actors run.
async fn paired<A, B, FA, FB>(
    warmup: usize,
    n: usize,
    mut ours: FA,
    mut base: FB,
) -> (Vec<Duration>, Vec<Duration>)
where
    FA: FnMut() -> A,
    A: std::future::Future<Output = Duration> + 'static,
    FB: FnMut() -> B,
    B: std::future::Future<Output = Duration> + 'static,
{
    for _ in 0..warmup {
        in_task(ours()).await;
        in_task(base()).await;
    }
    let (mut a, mut b) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        if i % 2 == 0 {
            a.push(in_task(ours()).await);
            b.push(in_task(base()).await);
        } else {
            b.push(in_task(base()).await);
            a.push(in_task(ours()).await);
        }
    }
    (a, b)
}

/// One sample in an actix task of its own (see [`paired`]); a sample that
/// panicked (a failed check) fails the run.
async fn in_task<T: 'static>(sample: impl std::future::Future<Output = T> + 'static) -> T {
    match actix_rt::spawn(sample).await {
        Ok(measured) => measured,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// The p50 and p99 rows of one comparison of latencies, in µs.
fn percentile_rows(
    rows: &mut Vec<Row>,
    figures: [&'static str; 2],
    (ours, baseline): (&[Duration], &[Duration]),
    baseline_name: &'static str,
    aim: &'static str,
) {
    for (figure, p) in figures.into_iter().zip([0.5, 0.99]) {
        rows.push(Row {
            figure,
            unit: "us",
            ours: micros(percentile(ours.to_vec(), p)),
            baseline_name,
            baseline: micros(percentile(baseline.to_vec(), p)),
            aim,
        });
    }
}

/// Times `count` requests made at once by `send` (given each one's
/// number), until every one is answered.
async fn all_answered<S, F, T, E>(count: usize, send: S) -> Duration
where
    S: Fn(usize) -> F,
    F: std::future::Future<Output = Result<Result<T, E>, actix::MailboxError>>,
    E: std::fmt::Debug,
{
    timed(async move {
        let sent: Vec<_> = (0..count).map(send).collect();
        for answer in futures::future::join_all(sent).await {
            answer.unwrap().unwrap();
        }
    })
    .await
}

/// Times one future.
async fn timed(work: impl std::future::Future<Output = ()>) -> Duration {
    let begun = Instant::now();
    work.await;
    begun.elapsed()
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn config(placement: PlacementKind) -> PodConfig {
    let mut config = PodConfig::new(
        "bench",
        RuntimeSpec::InProcess {
            name: "echo".into(),
        },
    );
    config.placement = placement;
    config.restart.backoff.initial = 0;
    config.restart.backoff.jitter = 0.0;
    config.restart.max_restarts = u32::MAX;
    config
}

/// How a caller starts a pod and learns it is `Started`.
#[derive(Debug, Clone, Copy)]
enum Awaits {
    /// One `StartAndWait`, answered with `Started`: one message and one
    /// await, as a bare actor's start with one round trip.
    InOne,
    /// Both sent together (the mailbox keeps their order), one await for
    /// both answers.
    Together,
    /// `Start`'s answer awaited before `WaitStartSuccess` is sent.
    OneByOne,
}

/// A pod started until `Started`, with `StartAndWait`.
async fn started_pod(placement: PlacementKind) -> Addr<Pod<Echo>> {
    started_pod_awaiting(placement, Awaits::InOne).await
}

async fn started_pod_awaiting(placement: PlacementKind, awaits: Awaits) -> Addr<Pod<Echo>> {
    let pod = Pod::new(config(placement), RuntimeFactory::new(|_| Echo)).start();
    match awaits {
        Awaits::InOne => {
            pod.send(StartAndWait).await.unwrap().unwrap();
        }
        Awaits::Together => {
            let (start, started) = tokio::join!(pod.send(Start), pod.send(WaitStartSuccess));
            start.unwrap().unwrap();
            started.unwrap().unwrap();
        }
        Awaits::OneByOne => {
            pod.send(Start).await.unwrap().unwrap();
            pod.send(WaitStartSuccess).await.unwrap().unwrap();
        }
    }
    pod
}

/// A replica whose setup takes 200 ms, as a model that loads.
struct Loading;

const LOADING: Duration = Duration::from_millis(200);

impl Runtime for Loading {
    type Request = ();
    type Response = ();

    async fn setup(&mut self, _: &mut RuntimeContext) -> Result<(), RuntimeError> {
        tokio::time::sleep(LOADING).await;
        Ok(())
    }

    async fn handle(&mut self, (): ()) -> Result<(), RuntimeError> {
        Ok(())
    }
}

/// Starts a deployment of `replicas` loading replicas; the time until all
/// are Started.
async fn deployment_start(replicas: usize) -> Duration {
    use pod_actor::deployment::{CloseDeployment, Deployment, StartDeployment};
    let mut template = config(PlacementKind::Dedicated);
    template.name = "loading".into();
    let build = |config: PodConfig| {
        Ok::<_, pod_actor::PodError>(Pod::new(config, RuntimeFactory::new(|_| Loading)))
    };
    let deployment = Deployment::new("loading", replicas, template, build).start();
    let begun = Instant::now();
    deployment.send(StartDeployment).await.unwrap().unwrap();
    let took = begun.elapsed();
    deployment.send(CloseDeployment).await.unwrap();
    took
}

/// How many replicas the routing rows' deployment has.
const ROUTED_REPLICAS: usize = 8;

/// Requests routed by a deployment of [`ROUTED_REPLICAS`] replicas on this
/// arbiter, against the same calls sent by the caller to its pods in turn.
async fn route_rows(n: usize, pipelined: usize, rows: &mut Vec<Row>) {
    use pod_actor::deployment::{CloseDeployment, Deployment, GetReplicas, Route, StartDeployment};
    let build = |config: PodConfig| {
        Ok::<_, pod_actor::PodError>(Pod::new(config, RuntimeFactory::new(|_| Echo)))
    };
    let deployment = Deployment::new(
        "echo",
        ROUTED_REPLICAS,
        config(PlacementKind::Shared),
        build,
    )
    .start();
    deployment.send(StartDeployment).await.unwrap().unwrap();
    let pods: Vec<Addr<Pod<Echo>>> = deployment
        .send(GetReplicas::new())
        .await
        .unwrap()
        .into_iter()
        .map(|(_, pod)| pod)
        .collect();
    let turn = std::cell::Cell::new(0_usize);
    let next_pod = || {
        let pod = pods[turn.get() % pods.len()].clone();
        turn.set(turn.get() + 1);
        pod
    };
    let (ours, baseline) = paired(
        n / 10,
        n,
        || {
            let deployment = deployment.clone();
            timed(async move {
                deployment.send(Route::<Echo>(1)).await.unwrap().unwrap();
            })
        },
        || {
            let pod = next_pod();
            timed(async move {
                pod.send(Call::<Echo>(1)).await.unwrap().unwrap();
            })
        },
    )
    .await;
    percentile_rows(
        rows,
        [
            "Route through a deployment of 8 replicas, p50",
            "Route through a deployment of 8 replicas, p99",
        ],
        (&ours, &baseline),
        "Call to its pods in turn, by the caller",
        "(reference)",
    );
    // `pipelined` requests at once, answers per second.
    let samples = paired(
        1,
        10,
        || {
            let deployment = deployment.clone();
            all_answered(pipelined, move |i| deployment.send(Route::<Echo>(i as u64)))
        },
        || {
            let pods = pods.clone();
            all_answered(pipelined, move |i| {
                pods[i % pods.len()].send(Call::<Echo>(i as u64))
            })
        },
    )
    .await;
    rows.push(rate_row(
        "Routes through a deployment of 8 replicas, pipelined, per second",
        "routes/s",
        "the same Calls to its pods in turn, by the caller",
        "(reference)",
        pipelined,
        samples,
    ));
    deployment.send(CloseDeployment).await.unwrap();
}

// ===== the rows =====

async fn deployment_rows(n: usize, rows: &mut Vec<Row>) {
    let (eight, one) = paired(1, n, || deployment_start(8), || deployment_start(1)).await;
    rows.push(Row {
        figure: "deployment of 8 replicas (200 ms setup each) -> all Started",
        unit: "ms",
        ours: millis(median(eight)),
        baseline_name: "a deployment of 1 such replica",
        baseline: millis(median(one)),
        aim: "<= 1.2x",
    });
}

/// A pod started until `Started` with `StartAndWait`; closed (its thread
/// joined, when it has one) before the next sample.
async fn pod_start(placement: PlacementKind) -> Duration {
    pod_start_awaiting(placement, Awaits::InOne).await
}

async fn pod_start_awaiting(placement: PlacementKind, awaits: Awaits) -> Duration {
    let begun = Instant::now();
    let pod = started_pod_awaiting(placement, awaits).await;
    let took = begun.elapsed();
    pod.send(Close::default()).await.unwrap();
    took
}

/// A bare actor started and answering one message, as `pod_start`.
async fn bare_start(placement: PlacementKind) -> Duration {
    if placement == PlacementKind::Dedicated {
        let begun = Instant::now();
        let arbiter = Arbiter::new();
        let addr = Bare::start_in_arbiter(&arbiter.handle(), |_| Bare);
        addr.send(Ping(1)).await.unwrap();
        let took = begun.elapsed();
        arbiter.stop();
        let _ = arbiter.join();
        took
    } else {
        timed(async {
            Bare.start().send(Ping(1)).await.unwrap();
        })
        .await
    }
}

async fn start_rows(n: usize, rows: &mut Vec<Row>) {
    // The shared rows first: the dedicated row's 2,000 arbiter threads,
    // started and joined, leave a process in which both sides of a shared
    // start run slower, the pod more.
    let shared = |awaits| pod_start_awaiting(PlacementKind::Shared, awaits);
    for (awaits, figure, aim) in [
        (
            Awaits::InOne,
            "in-process pod start -> Started, shared arbiter",
            "<= 2x",
        ),
        // The two messages a start took before `StartAndWait`, sent
        // together; then one by one, where the second await costs the
        // caller a turn of its own.
        (
            Awaits::Together,
            "in-process pod start -> Started, shared arbiter, Start and WaitStartSuccess sent together",
            "(reference)",
        ),
        (
            Awaits::OneByOne,
            "in-process pod start -> Started, shared arbiter, Start and WaitStartSuccess awaited one by one",
            "(reference)",
        ),
    ] {
        let samples = paired(
            n / 10,
            n,
            || shared(awaits),
            || bare_start(PlacementKind::Shared),
        )
        .await;
        rows.push(median_row(
            figure,
            "bare actor on the same arbiter + 1 round trip",
            aim,
            samples,
        ));
    }
    // What actix itself asks of two actors doing a start's steps: how much
    // of the pod's start is the pod's own work.
    let (ours, floor) = paired(n / 10, n, || shared(Awaits::InOne), floor::two_actor_start).await;
    rows.push(median_row(
        "in-process pod start -> Started, shared arbiter",
        "two bare actors: one starts the other, told Ready; Go and Wait in one message",
        "(reference)",
        (ours, floor),
    ));
    let (ours, bare) = paired(
        n / 10,
        n,
        || pod_start(PlacementKind::Dedicated),
        || bare_start(PlacementKind::Dedicated),
    )
    .await;
    rows.push(median_row(
        "in-process pod start -> Started, dedicated arbiter",
        "bare actor on a new arbiter + 1 round trip",
        "<= 1.5x",
        (ours, bare),
    ));
}

/// A panic in the pod's runtime, until the next generation is `Started`.
async fn pod_restart(pod: Addr<Pod<Echo>>) -> Duration {
    let before = pod
        .send(WaitStartSuccess)
        .await
        .unwrap()
        .unwrap()
        .generation;
    let begun = Instant::now();
    let _ = pod.send(Call::<Echo>(u64::MAX)).await;
    loop {
        let now = pod.send(WaitStartSuccess).await.unwrap().unwrap();
        if now.generation > before {
            return begun.elapsed();
        }
        tokio::task::yield_now().await;
    }
}

async fn restart_rows(n: usize, default_n: usize, rows: &mut Vec<Row>) {
    let pod = started_pod(PlacementKind::Shared).await;
    let (restarts, starts) = paired(
        n / 10,
        n,
        || pod_restart(pod.clone()),
        // Two awaits, as the restart takes (the crashing Call, then
        // WaitStartSuccess).
        || pod_start_awaiting(PlacementKind::Shared, Awaits::OneByOne),
    )
    .await;
    let supervised = actix::Supervisor::start(|_| Bare);
    let (again, actix_restarts) = paired(
        n / 10,
        n,
        || pod_restart(pod.clone()),
        || {
            let supervised = supervised.clone();
            timed(async move {
                supervised.do_send(Die);
                supervised.send(Ping(1)).await.unwrap();
            })
        },
    )
    .await;
    pod.send(Close::default()).await.unwrap();
    // A reference: a restart is a panic caught and a start. It is judged
    // against actix::Supervisor's restart (below) and the peers' restarts.
    rows.push(median_row(
        "restart after a panic -> next Started, zero backoff",
        "the pod's own start -> Started, awaited one by one",
        "(reference)",
        (restarts, starts),
    ));
    rows.push(median_row(
        "restart after a panic -> next Started, zero backoff",
        "actix::Supervisor restart after ctx.stop() (catches no panic)",
        "(the floor)",
        (again, actix_restarts),
    ));

    // What a user sees: the default policy waits its first backoff.
    let mut defaults = Vec::with_capacity(default_n);
    for _ in 0..default_n {
        let mut config = PodConfig::new(
            "bench-default",
            RuntimeSpec::InProcess {
                name: "echo".into(),
            },
        );
        config.placement = PlacementKind::Shared;
        let pod = Pod::new(config, RuntimeFactory::new(|_| Echo)).start();
        pod.send(StartAndWait).await.unwrap().unwrap();
        defaults.push(in_task(pod_restart(pod.clone())).await);
        pod.send(Close::default()).await.unwrap();
    }
    let first = Duration::from_millis(pod_actor::BackoffConfig::default().initial);
    rows.push(Row {
        figure: "restart after a panic -> next Started, default policy",
        unit: "ms",
        ours: millis(median(defaults)),
        baseline_name: "the default policy's first backoff (100 ms, jitter 10 %)",
        baseline: millis(first),
        aim: "(reference)",
    });
}

async fn call_rows(n: usize, pipelined: usize, rows: &mut Vec<Row>) {
    let pod = started_pod(PlacementKind::Shared).await;
    let runtime = RuntimeActor::spawn(
        RuntimeConfig::new("direct").placement(Placement::Shared(Arbiter::current())),
        RuntimeFactory::new(|_| Echo),
    );
    runtime.ready().await.unwrap();
    let direct = runtime.addr();
    let (ours, baseline) = paired(
        n / 10,
        n,
        || {
            let pod = pod.clone();
            timed(async move {
                pod.send(Call::<Echo>(1)).await.unwrap().unwrap();
            })
        },
        || {
            let direct = direct.clone();
            timed(async move {
                direct
                    .send(runtime_actor::Request(1))
                    .await
                    .unwrap()
                    .unwrap();
            })
        },
    )
    .await;
    percentile_rows(
        rows,
        ["Call through the pod, p50", "Call through the pod, p99"],
        (&ours, &baseline),
        "direct send to the runtime actor",
        "<= 1.3x",
    );
    // `pipelined` calls at once, answers per second.
    let samples = paired(
        1,
        10,
        || {
            let pod = pod.clone();
            all_answered(pipelined, move |i| pod.send(Call::<Echo>(i as u64)))
        },
        || {
            let direct = direct.clone();
            all_answered(pipelined, move |i| {
                direct.send(runtime_actor::Request(i as u64))
            })
        },
    )
    .await;
    rows.push(rate_row(
        "Calls through the pod, pipelined, per second",
        "calls/s",
        "the same sends straight to the runtime actor",
        ">= 1/1.3x",
        pipelined,
        samples,
    ));
    pod.send(Close::default()).await.unwrap();
    runtime.stop(Duration::from_secs(5)).await;
}

/// A process pod from `config` until `Started`, then closed.
async fn process_pod_start(config: PodConfig) -> Duration {
    let begun = Instant::now();
    let pod = Pod::<ProcessRuntime>::from_process_config(config)
        .unwrap()
        .start();
    pod.send(StartAndWait).await.unwrap().unwrap();
    let took = begun.elapsed();
    pod.send(Close::default()).await.unwrap();
    took
}

/// The worker spawned with tokio until its ready line, then killed.
async fn raw_spawn(exe: String) -> Duration {
    let begun = Instant::now();
    let mut child = tokio::process::Command::new(&exe)
        .args(["worker", "--announce", "stdout"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.contains("ready and listening") {
            break;
        }
    }
    let took = begun.elapsed();
    let _ = child.kill().await;
    took
}

/// The process pod config of the process rows: the worker, ready by a
/// stdout line.
fn worker_config(exe: &str) -> PodConfig {
    let text = format!(
        r#"
name = "bench-process"
[runtime]
kind = "process"
command = "{exe}"
args = ["worker", "--announce", "stdout"]
probe = {{ kind = "stdout", pattern = "ready and listening" }}
"#
    );
    PodConfig::from_str_with_env(&text, ConfigFormat::Toml, "podbench", &Default::default())
        .unwrap()
}

async fn process_rows(n: usize, rows: &mut Vec<Row>) {
    let exe = std::env::current_exe().unwrap().display().to_string();
    let config = worker_config(&exe);
    let (ours, raw) = paired(
        2,
        n,
        || process_pod_start(config.clone()),
        || raw_spawn(exe.clone()),
    )
    .await;
    rows.push(median_row(
        "process pod start -> Started (stdout probe)",
        "raw tokio::process spawn + reading the ready line",
        "<= 1.2x",
        (ours, raw),
    ));
}

/// `podbench spawn MIB N`: with MIB mebibytes resident in this fresh
/// process, N process pod starts and N raw spawns of the worker, in turns;
/// printed as the two medians in µs.
fn spawn_probe(resident_mib: usize, n: usize) -> ExitCode {
    // Touched, so that it is resident, and kept until the end.
    let resident: Vec<u8> = vec![1; resident_mib << 20];
    let exe = match std::env::current_exe() {
        Ok(exe) => exe.display().to_string(),
        Err(e) => {
            eprintln!("podbench: cannot find this binary: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (pod, raw) = System::new().block_on(async move {
        let config = worker_config(&exe);
        paired(
            2,
            n,
            || process_pod_start(config.clone()),
            || raw_spawn(exe.clone()),
        )
        .await
    });
    println!(
        "{} {} {}",
        micros(median(pod)),
        micros(median(raw)),
        std::hint::black_box(&resident).len() >> 20
    );
    ExitCode::SUCCESS
}

/// Runs `podbench spawn` in a fresh process: the medians of the pod start
/// and of the raw spawn, in µs.
async fn spawn_in_child(resident_mib: usize, n: usize) -> (f64, f64) {
    probe(&["spawn", &resident_mib.to_string(), &n.to_string()]).await
}

/// Spawn cost against the owner's size: the same starts in a fresh small
/// owner and in a fresh owner with 1 GiB resident, which goes first
/// alternating by run.
async fn spawn_rows(n: usize, run: u32, rows: &mut Vec<Row>) {
    let (small, big) = if run % 2 == 0 {
        let small = spawn_in_child(0, n).await;
        (small, spawn_in_child(1024, n).await)
    } else {
        let big = spawn_in_child(1024, n).await;
        (spawn_in_child(0, n).await, big)
    };
    rows.push(Row {
        figure: "process pod start, owner with 1 GiB resident",
        unit: "us",
        ours: big.0,
        baseline_name: "the same in a small owner",
        baseline: small.0,
        aim: "<= 1.2x",
    });
    rows.push(Row {
        figure: "raw tokio::process spawn, owner with 1 GiB resident",
        unit: "us",
        ours: big.1,
        baseline_name: "the same in a small owner",
        baseline: small.1,
        aim: "(reference)",
    });
}

/// A connection to a pod's worker child that speaks the request channel's
/// protocol without the pod (the worker's `--channel-listen` socket): the
/// raw baseline of the channel rows, to the same process.
struct RawChannel {
    read: BufReader<tokio::net::unix::OwnedReadHalf>,
    write: tokio::net::unix::OwnedWriteHalf,
    /// The id of the next request.
    next: u64,
}

impl RawChannel {
    async fn connect(path: &std::path::Path) -> RawChannel {
        // The worker listens once it has announced readiness: soon after.
        for _ in 0..500 {
            if let Ok(stream) = tokio::net::UnixStream::connect(path).await {
                let (read, write) = stream.into_split();
                return RawChannel {
                    read: BufReader::new(read),
                    write,
                    next: 1,
                };
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the worker does not listen on {}", path.display());
    }

    async fn answer(&mut self) -> Vec<u8> {
        let length = self.read.read_u32().await.unwrap() as usize;
        let mut body = vec![0; length];
        self.read.read_exact(&mut body).await.unwrap();
        body.split_off(9)
    }

    /// Sends `count` requests at once, then reads every answer.
    async fn round_trips(&mut self, count: u64, payload: &[u8]) {
        let first = self.next;
        self.next += count;
        let mut frames = Vec::new();
        for id in first..first + count {
            frames.extend_from_slice(&(9 + payload.len() as u32).to_be_bytes());
            frames.extend_from_slice(&id.to_be_bytes());
            frames.push(0);
            frames.extend_from_slice(payload);
        }
        self.write.write_all(&frames).await.unwrap();
        for _ in 0..count {
            assert_eq!(self.answer().await, payload);
        }
    }
}

/// Request round trips and pipelined throughput through a process pod's
/// request channel, against the same frames sent to the same child without
/// the pod. `pipelined` requests are in flight at once.
async fn channel_rows(n: usize, pipelined: usize, rows: &mut Vec<Row>) {
    let exe = std::env::current_exe().unwrap().display().to_string();
    let dir = nix::unistd::mkdtemp(&std::env::temp_dir().join("podbench-XXXXXX")).unwrap();
    for (placement, p50, p99, throughput) in [
        (
            PlacementKind::Auto,
            "process pod request round trip (channel), p50",
            "process pod request round trip (channel), p99",
            Some("process pod requests pipelined, throughput"),
        ),
        (
            PlacementKind::Dedicated,
            "process pod request round trip, dedicated arbiter, p50",
            "process pod request round trip, dedicated arbiter, p99",
            None,
        ),
    ] {
        let socket = dir.join(format!("{placement:?}.sock"));
        let mut runtime = RuntimeSpec::process(&exe).with_args([
            "worker",
            "--announce",
            "notify",
            "--channel-listen",
            &socket.display().to_string(),
        ]);
        if let RuntimeSpec::Process { channel, .. } = &mut runtime {
            *channel = Some(pod_actor::ChannelConfig {
                max_in_flight: pipelined as u64,
                ..Default::default()
            });
        }
        let mut config = PodConfig::new("bench-channel", runtime);
        config.placement = placement;
        let pod = Pod::<ProcessRuntime>::from_process_config(config)
            .unwrap()
            .start();
        pod.send(StartAndWait).await.unwrap().unwrap();
        let raw = std::rc::Rc::new(tokio::sync::Mutex::new(RawChannel::connect(&socket).await));
        let payload: &'static [u8] = b"a request of 32 bytes, echoed...";
        // `count` calls at once through the pod, or the same frames straight
        // to the child; the time until every answer is in.
        let through_pod = |count: usize| {
            let pod = pod.clone();
            timed(async move {
                let calls: Vec<_> = (0..count)
                    .map(|_| pod.send(Call::<ProcessRuntime>(ProcessRequest::call(payload))))
                    .collect();
                for answer in futures::future::join_all(calls).await {
                    answer.unwrap().unwrap();
                }
            })
        };
        let straight = |count: usize| {
            let raw = std::rc::Rc::clone(&raw);
            timed(async move { raw.lock().await.round_trips(count as u64, payload).await })
        };
        let (ours, direct) = paired(100, n, || through_pod(1), || straight(1)).await;
        percentile_rows(
            rows,
            [p50, p99],
            (&ours, &direct),
            "the same frames to the same child, no pod",
            "<= 1.5x",
        );
        if let Some(figure) = throughput {
            rows.push(Row {
                figure: p50,
                unit: "us",
                ours: micros(percentile(ours, 0.5)),
                baseline_name: "Jina's gRPC round trip to a worker pod (not this run)",
                baseline: JINA_GRPC_ROUND_TRIP_US,
                aim: "<= 0.1x",
            });
            let samples = paired(1, 5, || through_pod(pipelined), || straight(pipelined)).await;
            rows.push(rate_row(
                figure,
                "calls/s",
                "the same frames to the same child at once, no pod",
                "(reference)",
                pipelined,
                samples,
            ));
        }
        pod.send(Close::default()).await.unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Jina's raw gRPC round trip to a worker pod, measured on this machine
/// kind (see BENCHMARKS.md); a reference, not measured by this run.
const JINA_GRPC_ROUND_TRIP_US: f64 = 1300.0;

/// `count` pods on this arbiter, all started: under one shared supervisor
/// (as a deployment runs them), or each standalone (deciding its restarts
/// itself); how long until every one answered `WaitStartSuccess`, and the
/// RSS they added per pod. They are closed after `then` ran.
async fn many_pods(
    count: usize,
    standalone: bool,
    then: impl std::future::Future<Output = ()>,
) -> (Duration, f64) {
    let supervisor = (!standalone).then(|| {
        Supervisor::new(SupervisorConfig::default())
            .unwrap()
            .start()
    });
    let rss_before = rss_bytes();
    let begun = Instant::now();
    let mut pods = Vec::with_capacity(count);
    for i in 0..count {
        let mut config = config(PlacementKind::Shared);
        config.name = format!("pod-{i}");
        let mut pod = Pod::new(config, RuntimeFactory::new(|_| Echo));
        if let Some(supervisor) = &supervisor {
            pod = pod.supervised_by(supervisor.clone());
        }
        let pod = pod.start();
        pod.do_send(Start);
        pods.push(pod);
    }
    for pod in &pods {
        pod.send(WaitStartSuccess).await.unwrap().unwrap();
    }
    let took = begun.elapsed();
    let bytes = rss_bytes().saturating_sub(rss_before) as f64 / count as f64;
    then.await;
    for pod in pods.iter().rev() {
        pod.send(Close::default()).await.unwrap();
    }
    (took, bytes)
}

/// `count` bare actors started and answering one message each, as
/// `many_pods`.
async fn many_bare(count: usize) -> (Duration, f64) {
    let rss_before = rss_bytes();
    let begun = Instant::now();
    let mut bare = Vec::with_capacity(count);
    for _ in 0..count {
        bare.push(Bare.start());
    }
    for addr in &bare {
        addr.send(Ping(1)).await.unwrap();
    }
    (
        begun.elapsed(),
        rss_bytes().saturating_sub(rss_before) as f64 / count as f64,
    )
}

/// `podbench many pods|bare`: one side of the 10,000 rows, measured in
/// this fresh process (a heap that earlier rows grew and freed would hide
/// the growth, and make the side measured second look cheaper), printed as
/// the milliseconds until all answered and the bytes of RSS per actor.
fn many_probe(side: &str, count: usize) -> ExitCode {
    // In a task of the side's kind, as `paired`'s samples.
    let (took, bytes) = System::new().block_on(async move {
        match side {
            "pods" => in_task(many_pods(count, false, async {})).await,
            "standalone" => in_task(many_pods(count, true, async {})).await,
            #[cfg(feature = "peers")]
            "kameo" => peers::native(peers::many_kameo(count)).await,
            #[cfg(feature = "peers")]
            "ractor" => peers::native(peers::many_ractor(count)).await,
            _ => in_task(many_bare(count)).await,
        }
    });
    println!("{} {bytes}", millis(took));
    ExitCode::SUCCESS
}

/// A measurement failed: the report says so, and podbench exits 1.
static FAILED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Runs `podbench ARGS` in a fresh process and reads the two numbers it
/// prints; a probe that fails is reported, and its numbers are NaN.
async fn probe(args: &[&str]) -> (f64, f64) {
    let exe = std::env::current_exe().unwrap();
    let output = tokio::process::Command::new(exe).args(args).output().await;
    let parsed = output
        .as_ref()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout);
            let mut numbers = text.split_whitespace().map(str::parse::<f64>);
            Some((numbers.next()?.ok()?, numbers.next()?.ok()?))
        });
    parsed.unwrap_or_else(|| {
        FAILED.store(true, std::sync::atomic::Ordering::SeqCst);
        let why = match &output {
            Ok(o) => format!(
                "{}: {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => e.to_string(),
        };
        eprintln!(
            "podbench: the probe `podbench {}` failed ({why})",
            args.join(" ")
        );
        (f64::NAN, f64::NAN)
    })
}

/// Runs one side of the 10,000 rows in a fresh process.
pub(crate) async fn many_in_child(side: &str) -> (f64, f64) {
    probe(&["many", side]).await
}

async fn many_rows(run: u32, rows: &mut Vec<Row>) {
    // Each side in a fresh process; which goes first alternates by run.
    let sides = ["pods", "standalone", "bare"];
    let mut measured = std::collections::HashMap::new();
    for i in 0..sides.len() {
        let side = sides[(i + run as usize) % sides.len()];
        measured.insert(side, many_in_child(side).await);
    }
    let (pods, standalone, bare) = (measured["pods"], measured["standalone"], measured["bare"]);
    for (figure, memory, ours) in [
        (
            "10,000 pods under one supervisor on a shared arbiter, all Started",
            "memory per pod under one supervisor (RSS delta / 10,000)",
            pods,
        ),
        (
            "10,000 standalone pods on a shared arbiter, all Started",
            "memory per standalone pod (RSS delta / 10,000)",
            standalone,
        ),
    ] {
        rows.push(Row {
            figure,
            unit: "ms",
            ours: ours.0,
            baseline_name: "10,000 bare actors started + 1 round trip each",
            baseline: bare.0,
            aim: "< 1000 ms",
        });
        rows.push(Row {
            figure: memory,
            unit: "bytes",
            ours: ours.1,
            baseline_name: "memory per bare actor",
            baseline: bare.1,
            aim: "< 16 KiB",
        });
    }
}

/// Pods (or bare arbiters) kept on dedicated arbiters by `podbench
/// threads`: enough for thread and descriptor costs to show.
const THREADS: usize = 2_000;
/// How many starts each end of the `threads` rows takes its median over.
const THREADS_WINDOW: usize = 100;

/// `podbench threads pods|bare [COUNT]`: `COUNT` (`THREADS`) dedicated
/// pods (or bare actors on arbiters of their own, answering one message)
/// started one after the other and kept, in this fresh process; prints the
/// median start of the first `THREADS_WINDOW` and of the last, in µs.
fn threads_probe(side: &str, count: usize) -> ExitCode {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    // Four descriptors a dedicated runtime: the usual 1,024 fits 250.
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
    let side = side.to_owned();
    let (first, last) = System::new().block_on(in_task(async move {
        let mut starts = Vec::with_capacity(count);
        let mut pods = Vec::new();
        let mut arbiters = Vec::new();
        for i in 0..count {
            let begun = Instant::now();
            if side == "pods" {
                let mut config = config(PlacementKind::Dedicated);
                config.name = format!("pod-{i}");
                let pod = Pod::new(config, RuntimeFactory::new(|_| Echo)).start();
                pod.send(StartAndWait).await.unwrap().unwrap();
                pods.push(pod);
            } else {
                let arbiter = Arbiter::new();
                let addr = Bare::start_in_arbiter(&arbiter.handle(), |_| Bare);
                addr.send(Ping(1)).await.unwrap();
                arbiters.push((arbiter, addr));
            }
            starts.push(begun.elapsed());
        }
        let last = median(starts.split_off(count - THREADS_WINDOW));
        let first = median(starts[..THREADS_WINDOW].to_vec());
        for pod in pods.iter().rev() {
            pod.send(Close::default()).await.unwrap();
        }
        for (arbiter, _) in &arbiters {
            arbiter.stop();
        }
        (micros(first), micros(last))
    }));
    println!("{first} {last}");
    ExitCode::SUCCESS
}

async fn threads_rows(run: u32, rows: &mut Vec<Row>) {
    // Each side in a fresh process; which goes first alternates by run.
    let (pods, bare) = if run % 2 == 0 {
        let pods = probe(&["threads", "pods"]).await;
        (pods, probe(&["threads", "bare"]).await)
    } else {
        let bare = probe(&["threads", "bare"]).await;
        (probe(&["threads", "pods"]).await, bare)
    };
    rows.push(Row {
        figure: "dedicated pod start, first 100 of 2,000 kept (median)",
        unit: "us",
        ours: pods.0,
        baseline_name: "a bare actor on a new arbiter + 1 round trip, first 100 of 2,000 kept",
        baseline: bare.0,
        aim: "(reference)",
    });
    rows.push(Row {
        figure: "dedicated pod start, last 100 of 2,000 kept (median)",
        unit: "us",
        ours: pods.1,
        baseline_name: "a bare actor on a new arbiter + 1 round trip, last 100 of 2,000 kept",
        baseline: bare.1,
        aim: "<= the first 100's ratio",
    });
}

/// From a pod's `Start` until `count` subscribers have its `Started`, less
/// the pod's start measured alone just before: only the broadcast.
async fn fanout(count: usize) -> Duration {
    let tally = Tally::new(count);
    let counters: Vec<_> = (0..count).map(|_| Counter(tally.clone()).start()).collect();
    let pod = Pod::new(config(PlacementKind::Shared), RuntimeFactory::new(|_| Echo)).start();
    for counter in &counters {
        pod.do_send(Subscribe(counter.clone().recipient()));
    }
    // A round trip, so every Subscribe has been handled.
    pod.send(GetRole).await.unwrap();
    let single = pod_start(PlacementKind::Shared).await;
    let begun = Instant::now();
    pod.send(Start).await.unwrap().unwrap();
    tally.reached().await;
    let took = begun.elapsed().saturating_sub(single);
    pod.send(Close::default()).await.unwrap();
    took
}

/// One actor `do_send`ing to `count` counters, until all have it.
async fn do_sends(count: usize) -> Duration {
    let tally = Tally::new(count);
    let counters: Vec<_> = (0..count).map(|_| Counter(tally.clone()).start()).collect();
    let begun = Instant::now();
    for counter in &counters {
        counter.do_send(Ping(0));
    }
    tally.reached().await;
    begun.elapsed()
}

async fn fanout_rows(count: usize, n: usize, rows: &mut Vec<Row>) {
    let (ours, baseline) = paired(0, n, || fanout(count), || do_sends(count)).await;
    rows.push(Row {
        figure: "Started fan-out to 10,000 subscribers",
        unit: "ms",
        ours: millis(median(ours)),
        baseline_name: "10,000 do_sends",
        baseline: millis(median(baseline)),
        aim: "(reference)",
    });
}

// ===== runs and output =====

/// A row as its group's process printed it (`podbench --group`).
#[derive(serde::Deserialize)]
struct Measured {
    figure: String,
    unit: String,
    #[serde(deserialize_with = "nan_from_null")]
    ours: f64,
    baseline_name: String,
    #[serde(deserialize_with = "nan_from_null")]
    baseline: f64,
    aim: String,
}

/// What one run measured, and the load average when it began.
struct Run {
    load: [f64; 3],
    rows: Vec<Measured>,
}

/// Measures one group of one run in a fresh podbench process, and reads
/// its rows back.
///
/// A row's figures then depend on its own group only: in one process, the
/// heap, the threads and the timers that earlier groups (and earlier runs)
/// left behind slowed some rows more than their baselines.
fn run_group(group: &str, run_index: u32, quick: bool) -> Result<Vec<Measured>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find podbench itself: {e}"))?;
    let mut command = std::process::Command::new(exe);
    command
        .args(["--group", group, "--run-index", &run_index.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    if quick {
        command.arg("--quick");
    }
    let output = command
        .output()
        .map_err(|e| format!("cannot run podbench --group {group}: {e}"))?;
    let rows: Vec<Measured> = serde_json::from_slice(&output.stdout).map_err(|e| {
        format!(
            "podbench --group {group} ({}) printed no rows: {e}",
            output.status
        )
    })?;
    if !output.status.success() {
        // Its rows are printed, with a failed measurement's figures NaN.
        FAILED.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    Ok(rows)
}

fn load_average() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut fields = text
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(f64::NAN));
    [(); 3].map(|()| fields.next().unwrap_or(f64::NAN))
}

/// The machine the figures were measured on.
#[derive(serde::Serialize, serde::Deserialize)]
struct Machine {
    cpu: String,
    cpus: usize,
    memory_gib: f64,
    kernel: String,
}

impl Machine {
    fn this() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
            .map_or("unknown", |(_, name)| name.trim())
            .to_owned();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned();
        Machine {
            cpu,
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory_gib: kib / (1024.0 * 1024.0),
            kernel,
        }
    }
}

/// A row over all runs: the median of each side, and of the ratios with
/// their spread.
#[derive(serde::Serialize, serde::Deserialize)]
struct Summary {
    figure: String,
    unit: String,
    #[serde(deserialize_with = "nan_from_null")]
    ours: f64,
    #[serde(deserialize_with = "nan_from_null")]
    baseline: f64,
    #[serde(deserialize_with = "nan_from_null")]
    ratio: f64,
    #[serde(deserialize_with = "nan_from_null")]
    ratio_min: f64,
    #[serde(deserialize_with = "nan_from_null")]
    ratio_max: f64,
    baseline_name: String,
    aim: String,
}

/// What `--json` writes and `--render` reads.
#[derive(serde::Serialize, serde::Deserialize)]
struct Report {
    machine: Machine,
    runs: usize,
    quick: bool,
    /// The load average (1, 5 and 15 minutes) as each run began.
    load: Vec<[f64; 3]>,
    rows: Vec<Summary>,
}

/// The median of the finite values; NaN when there is none (a failed
/// probe, a baseline of zero).
fn median_of(values: Vec<f64>) -> f64 {
    let mut values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// JSON has no NaN: serde_json writes it as null, read back as NaN here.
fn nan_from_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    <Option<f64> as serde::Deserialize>::deserialize(d).map(|v| v.unwrap_or(f64::NAN))
}

fn summarize(runs: Vec<Run>, quick: bool) -> Report {
    let load = runs.iter().map(|r| r.load).collect();
    let count = runs.len();
    let rows = (0..runs[0].rows.len())
        .map(|i| {
            let all: Vec<&Measured> = runs.iter().map(|r| &r.rows[i]).collect();
            let ratios: Vec<f64> = all
                .iter()
                .map(|r| r.ours / r.baseline)
                .filter(|r| r.is_finite())
                .collect();
            Summary {
                figure: all[0].figure.clone(),
                unit: all[0].unit.clone(),
                ours: median_of(all.iter().map(|r| r.ours).collect()),
                baseline: median_of(all.iter().map(|r| r.baseline).collect()),
                ratio: median_of(ratios.clone()),
                ratio_min: ratios.iter().copied().reduce(f64::min).unwrap_or(f64::NAN),
                ratio_max: ratios.iter().copied().reduce(f64::max).unwrap_or(f64::NAN),
                baseline_name: all[0].baseline_name.clone(),
                aim: all[0].aim.clone(),
            }
        })
        .collect();
    Report {
        machine: Machine::this(),
        runs: count,
        quick,
        load,
        rows,
    }
}

fn header(report: &Report) -> String {
    let loads: Vec<String> = report
        .load
        .iter()
        .map(|[one, five, _]| format!("{one:.2}/{five:.2}"))
        .collect();
    format!(
        "{} run(s){} on {} ({} CPUs, {:.0} GiB, Linux {}); load average (1/5 min) as each run began: {}",
        report.runs,
        if report.quick { ", --quick" } else { "" },
        report.machine.cpu,
        report.machine.cpus,
        report.machine.memory_gib,
        report.machine.kernel,
        loads.join(", ")
    )
}

fn spread(row: &Summary) -> String {
    if row.ratio_min.is_finite() && row.ratio_max.is_finite() {
        format!("{:.2}-{:.2}", row.ratio_min, row.ratio_max)
    } else {
        "-".to_owned()
    }
}

fn print_table(report: &Report) {
    println!("{}", header(report));
    let mut table = examples::fmt::Table::new(
        &[
            "FIGURE",
            "OURS",
            "BASELINE",
            "RATIO",
            "SPREAD",
            "AIM",
            "BASELINE IS",
        ],
        &[false, true, true, true, true, false, false],
        80,
    );
    for row in &report.rows {
        let unit = short(&row.unit);
        table.row(vec![
            row.figure.clone(),
            format!("{:.1} {unit}", row.ours),
            format!("{:.1} {unit}", row.baseline),
            format!("{:.2}x", row.ratio),
            spread(row),
            row.aim.clone(),
            row.baseline_name.clone(),
        ]);
    }
    print!("{}", table.render());
}

/// The report as BENCHMARKS.md shows it.
fn print_markdown(report: &Report) {
    println!("{}.\n", header(report));
    println!("| figure | ours | baseline | ratio | spread over runs | aim | baseline is |");
    println!("|---|---:|---:|---:|---:|---|---|");
    for row in &report.rows {
        let unit = short(&row.unit);
        println!(
            "| {} | {:.1} {unit} | {:.1} {unit} | {:.2}× | {} | {} | {} |",
            row.figure,
            row.ours,
            row.baseline,
            row.ratio,
            spread(row),
            row.aim.replace("<=", "≤").replace(">=", "≥"),
            row.baseline_name
        );
    }
}

fn short(unit: &str) -> &str {
    match unit {
        "calls/s" => "/s",
        "bytes" => "B",
        other => other,
    }
}

/// Measures the project's figures, each beside its baseline in the same
/// run, both sides in turns; every row is measured in each of several runs
/// and reported as the median over them, with the spread of its ratio (see
/// BENCHMARKS.md).
#[derive(Debug, clap::Parser)]
#[command(name = "podbench")]
struct Args {
    /// Print the report as JSON instead of a table
    #[arg(long)]
    json: bool,
    /// Print the report as a Markdown table (BENCHMARKS.md)
    #[arg(long, conflicts_with = "json")]
    markdown: bool,
    /// Measure nothing: print the report saved by `--json` in FILE as
    /// Markdown
    #[arg(long, value_name = "FILE", conflicts_with_all = ["json", "markdown", "runs", "only", "quick"])]
    render: Option<std::path::PathBuf>,
    /// How many runs of every row (5 by default, 1 with --quick)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: Option<u32>,
    /// Fewer samples, for CI: rougher figures
    #[arg(long)]
    quick: bool,
    /// Measure only these groups of rows (start, restart, call, process,
    /// spawn, channel, deployment, many, fanout; peers when built with
    /// `--features peers`)
    #[arg(long, value_name = "GROUP", value_delimiter = ',', value_parser = group)]
    only: Vec<String>,
    /// Measure one group once, in this process, and print its rows as JSON:
    /// how a run measures each group in a fresh process
    #[arg(long, value_name = "GROUP", value_parser = group, hide = true, conflicts_with_all = ["json", "markdown", "render", "runs", "only"])]
    group: Option<String>,
    /// The run a `--group` process measures for (the `many` and `threads`
    /// rows alternate which side goes first with it)
    #[arg(
        long,
        value_name = "N",
        requires = "group",
        hide = true,
        default_value_t = 0
    )]
    run_index: u32,
}

/// The groups of rows, in the order they run, each in a fresh process.
const GROUPS: &[&str] = &[
    "start",
    "restart",
    "call",
    "process",
    "spawn",
    "channel",
    "deployment",
    "many",
    "fanout",
    "threads",
    "container",
    // kameo and ractor beside the pod: only with the `peers` feature, so
    // that a default build compiles neither.
    #[cfg(feature = "peers")]
    "peers",
];

/// A group of `--only`; `peers` without the feature says how to build it.
fn group(name: &str) -> Result<String, String> {
    if GROUPS.contains(&name) {
        Ok(name.to_owned())
    } else if name == "peers" {
        Err(
            "the peers group (kameo and ractor) is built only with the `peers` \
             feature: cargo run --release -p examples --features peers --bin podbench \
             -- --only peers"
                .to_owned(),
        )
    } else {
        Err(format!(
            "no such group; the groups are {}",
            GROUPS.join(", ")
        ))
    }
}

/// One run of a group's rows, in this process.
async fn run(group: &str, quick: bool, run_index: u32) -> Vec<Row> {
    let (n, process_n, fanout_n, default_n) = if quick {
        (200, 10, 1, 3)
    } else {
        (2000, 50, 5, 10)
    };
    let pipelined = if quick { 1000 } else { 10_000 };
    let container_n = if quick { 2 } else { 10 };
    let mut rows = Vec::new();
    match group {
        "start" => start_rows(n, &mut rows).await,
        "restart" => restart_rows(n, default_n, &mut rows).await,
        "call" => call_rows(n * 10, pipelined, &mut rows).await,
        "process" => process_rows(process_n, &mut rows).await,
        "spawn" => spawn_rows(process_n, run_index, &mut rows).await,
        "channel" => channel_rows(n * 5, pipelined, &mut rows).await,
        "deployment" => {
            deployment_rows(if quick { 3 } else { 10 }, &mut rows).await;
            route_rows(n * 10, pipelined, &mut rows).await;
        }
        "many" => many_rows(run_index, &mut rows).await,
        "fanout" => fanout_rows(10_000, fanout_n, &mut rows).await,
        "threads" => threads_rows(run_index, &mut rows).await,
        "container" => container::container_rows(container_n, &mut rows).await,
        #[cfg(feature = "peers")]
        "peers" => peers::peer_rows(n, n * 10, run_index, &mut rows).await,
        other => unreachable!("the group {other} has no rows"),
    }
    rows
}

fn usage(text: &str) -> ExitCode {
    eprintln!("usage: {text}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("worker") => examples::worker::run(args[1..].to_vec()),
        Some("many") => {
            return match args.get(1).map(String::as_str) {
                Some(side @ ("pods" | "standalone" | "bare")) => many_probe(side, 10_000),
                #[cfg(feature = "peers")]
                Some(side @ ("kameo" | "ractor")) => many_probe(side, 10_000),
                _ => usage(
                    "podbench many pods|standalone|bare (and kameo|ractor with the peers feature)",
                ),
            }
        }
        Some("threads") => {
            return match args.get(1).map(String::as_str) {
                Some(side @ ("pods" | "bare")) => {
                    match args.get(2).map_or(Ok(THREADS), |n| n.parse::<usize>()) {
                        Ok(count @ THREADS_WINDOW..) => threads_probe(side, count),
                        _ => usage("podbench threads pods|bare [COUNT, at least 100]"),
                    }
                }
                _ => usage("podbench threads pods|bare [COUNT, at least 100]"),
            }
        }
        Some("spawn") => {
            let number = |i: usize| args.get(i).and_then(|a| a.parse::<usize>().ok());
            return match (number(1), number(2)) {
                // At most 64 GiB resident, at least one sample.
                (Some(mib @ 0..=65_536), Some(n @ 1..)) => spawn_probe(mib, n),
                _ => usage("podbench spawn MIB N (MIB at most 65536, N at least 1)"),
            };
        }
        _ => {}
    }
    let args = <Args as clap::Parser>::parse();
    if let Some(path) = &args.render {
        let report = std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|text| serde_json::from_str::<Report>(&text).map_err(|e| e.to_string()));
        return match report {
            Ok(report) => {
                print_markdown(&report);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("podbench: cannot read the report {}: {e}", path.display());
                ExitCode::FAILURE
            }
        };
    }
    let quick = args.quick;
    if let Some(group) = args.group {
        // The restart rows panic on purpose; printing each panic would be
        // most of what they measure.
        std::panic::set_hook(Box::new(|_| {}));
        let rows = System::new().block_on(run(&group, quick, args.run_index));
        return match serde_json::to_string(&rows) {
            Ok(json) => {
                println!("{json}");
                let _ = std::io::stdout().flush();
                if FAILED.load(std::sync::atomic::Ordering::SeqCst) {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(e) => {
                eprintln!("podbench: cannot write JSON: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let runs = args.runs.unwrap_or(if quick { 1 } else { 5 });
    let wanted = |group: &str| args.only.is_empty() || args.only.iter().any(|g| g == group);
    let mut measured = Vec::new();
    for i in 0..runs {
        let load = load_average();
        if !args.json && !args.markdown {
            eprintln!(
                "podbench: run {} of {runs} (load average {:.2})",
                i + 1,
                load[0]
            );
        }
        let mut rows = Vec::new();
        for &group in GROUPS.iter().filter(|g| wanted(g)) {
            match run_group(group, i, quick) {
                Ok(group_rows) => rows.extend(group_rows),
                Err(e) => {
                    eprintln!("podbench: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        measured.push(Run { load, rows });
    }
    let report = summarize(measured, quick);
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("podbench: cannot write JSON: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else if args.markdown {
        print_markdown(&report);
    } else {
        print_table(&report);
    }
    let _ = std::io::stdout().flush();
    if FAILED.load(std::sync::atomic::Ordering::SeqCst) {
        eprintln!("podbench: a measurement failed (its figures are NaN)");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
