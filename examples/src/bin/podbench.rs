//! `podbench`: the project's figures, each measured beside its baseline in
//! the same run, printed as a table (or JSON with `--json`).
//!
//! `cargo run --release -p examples --bin podbench [-- --json] [-- --quick]`
//!
//! Every row gives our median, the baseline's median and their ratio. What
//! each row measures, and the aims, are in BENCHMARKS.md. `--quick` takes
//! fewer samples (for CI); the figures are then rougher.

use std::io::Write;
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, ActorContext, Addr, Arbiter, Context, Handler, Message, Supervised, System};
use pod_actor::{
    Call, Close, ConfigFormat, GetRole, PlacementKind, Pod, PodConfig, RuntimeSpec, Start, Started,
    Subscribe, WaitStartSuccess,
};
use runtime_actor::{
    Placement, ProcessRequest, ProcessRuntime, Runtime, RuntimeActor, RuntimeConfig,
    RuntimeContext, RuntimeError, RuntimeFactory,
};
use supervisor::{Supervisor, SupervisorConfig};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::Notify;

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

struct Row {
    figure: &'static str,
    unit: &'static str,
    ours: f64,
    baseline_name: &'static str,
    baseline: f64,
    aim: &'static str,
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

async fn started_pod(placement: PlacementKind) -> Addr<Pod<Echo>> {
    let pod = Pod::new(config(placement), RuntimeFactory::new(|_| Echo)).start();
    pod.send(Start).await.unwrap().unwrap();
    pod.send(WaitStartSuccess).await.unwrap().unwrap();
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

// ===== the rows =====

async fn deployment_rows(n: usize, rows: &mut Vec<Row>) {
    // Both sides interleaved, in turns, after a warm-up of each.
    deployment_start(8).await;
    deployment_start(1).await;
    let (mut eight, mut one) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        if i % 2 == 0 {
            eight.push(deployment_start(8).await);
            one.push(deployment_start(1).await);
        } else {
            one.push(deployment_start(1).await);
            eight.push(deployment_start(8).await);
        }
    }
    rows.push(Row {
        figure: "deployment of 8 replicas (200 ms setup each) -> all Started",
        unit: "ms",
        ours: millis(median(eight)),
        baseline_name: "a deployment of 1 such replica",
        baseline: millis(median(one)),
        aim: "<= 1.2x",
    });
}

async fn start_rows(n: usize, rows: &mut Vec<Row>) {
    for (figure, placement) in [
        (
            "in-process pod start -> Started, dedicated",
            PlacementKind::Dedicated,
        ),
        (
            "in-process pod start -> Started, shared arbiter",
            PlacementKind::Shared,
        ),
    ] {
        // Each side in a run of its own: interleaving them lets one side's
        // teardown (a thread being joined) land in the other's timing.
        let mut ours = Vec::with_capacity(n);
        for _ in 0..n {
            let begun = Instant::now();
            let pod = started_pod(placement).await;
            ours.push(begun.elapsed());
            pod.send(Close::default()).await.unwrap();
        }
        let mut bare = Vec::with_capacity(n);
        for _ in 0..n {
            let begun = Instant::now();
            if placement == PlacementKind::Dedicated {
                let arbiter = Arbiter::new();
                let addr = Bare::start_in_arbiter(&arbiter.handle(), |_| Bare);
                addr.send(Ping(1)).await.unwrap();
                bare.push(begun.elapsed());
                arbiter.stop();
                let _ = arbiter.join();
            } else {
                Bare.start().send(Ping(1)).await.unwrap();
                bare.push(begun.elapsed());
            }
        }
        rows.push(Row {
            figure,
            unit: "us",
            ours: micros(median(ours)),
            baseline_name: if placement == PlacementKind::Dedicated {
                "bare actor on a new arbiter + 1 round trip"
            } else {
                "bare actor on the same arbiter + 1 round trip"
            },
            baseline: micros(median(bare)),
            aim: "<= 1.5x",
        });
    }
}

async fn restart_rows(n: usize, rows: &mut Vec<Row>) {
    let pod = started_pod(PlacementKind::Shared).await;
    let mut restarts = Vec::with_capacity(n);
    for _ in 0..n {
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
                break;
            }
            tokio::task::yield_now().await;
        }
        restarts.push(begun.elapsed());
    }
    pod.send(Close::default()).await.unwrap();
    let mut starts = Vec::with_capacity(n);
    for _ in 0..n {
        let begun = Instant::now();
        let pod = started_pod(PlacementKind::Shared).await;
        starts.push(begun.elapsed());
        pod.send(Close::default()).await.unwrap();
    }
    let restart = micros(median(restarts));
    rows.push(Row {
        figure: "restart after a panic -> next Started, zero backoff",
        unit: "us",
        ours: restart,
        baseline_name: "the pod's own start -> Started",
        baseline: micros(median(starts)),
        aim: "<= 2x",
    });

    let supervised = actix::Supervisor::start(|_| Bare);
    let mut actix_restarts = Vec::with_capacity(n);
    for _ in 0..n {
        let begun = Instant::now();
        supervised.do_send(Die);
        supervised.send(Ping(1)).await.unwrap();
        actix_restarts.push(begun.elapsed());
    }
    rows.push(Row {
        figure: "restart after a panic -> next Started, zero backoff",
        unit: "us",
        ours: restart,
        baseline_name: "actix::Supervisor restart after ctx.stop() (sees no panics)",
        baseline: micros(median(actix_restarts)),
        aim: "(reference)",
    });
}

async fn call_rows(n: usize, rows: &mut Vec<Row>) {
    let pod = started_pod(PlacementKind::Shared).await;
    let runtime = RuntimeActor::spawn(
        RuntimeConfig::new("direct").placement(Placement::Shared(Arbiter::current())),
        RuntimeFactory::new(|_| Echo),
    );
    runtime.ready().await.unwrap();
    let mut ours = Vec::with_capacity(n);
    let mut direct = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let begun = Instant::now();
        pod.send(Call::<Echo>(i)).await.unwrap().unwrap();
        ours.push(begun.elapsed());
        let begun = Instant::now();
        runtime
            .addr()
            .send(runtime_actor::Request(i))
            .await
            .unwrap()
            .unwrap();
        direct.push(begun.elapsed());
    }
    for (figure, p) in [
        ("Call through the pod, p50", 0.5),
        ("Call through the pod, p99", 0.99),
    ] {
        rows.push(Row {
            figure,
            unit: "us",
            ours: micros(percentile(ours.clone(), p)),
            baseline_name: "direct send to the runtime actor",
            baseline: micros(percentile(direct.clone(), p)),
            aim: "<= 1.3x",
        });
    }
    let total = |samples: &[Duration]| samples.iter().sum::<Duration>().as_secs_f64();
    rows.push(Row {
        figure: "Call through the pod, throughput",
        unit: "calls/s",
        ours: n as f64 / total(&ours),
        baseline_name: "direct send to the runtime actor",
        baseline: n as f64 / total(&direct),
        aim: ">= 1/1.3x",
    });
    pod.send(Close::default()).await.unwrap();
    runtime.stop(Duration::from_secs(5)).await;
}

async fn process_rows(n: usize, rows: &mut Vec<Row>) {
    let exe = std::env::current_exe().unwrap().display().to_string();
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
    let config =
        PodConfig::from_str_with_env(&text, ConfigFormat::Toml, "podbench", &Default::default())
            .unwrap();
    let mut ours = Vec::with_capacity(n);
    for _ in 0..n {
        let begun = Instant::now();
        let pod = Pod::<ProcessRuntime>::from_process_config(config.clone())
            .unwrap()
            .start();
        pod.send(Start).await.unwrap().unwrap();
        pod.send(WaitStartSuccess).await.unwrap().unwrap();
        ours.push(begun.elapsed());
        pod.send(Close::default()).await.unwrap();
    }
    let mut raw = Vec::with_capacity(n);
    for _ in 0..n {
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
        raw.push(begun.elapsed());
        let _ = child.kill().await;
    }
    rows.push(Row {
        figure: "process pod start -> Started (stdout probe)",
        unit: "us",
        ours: micros(median(ours)),
        baseline_name: "raw tokio::process spawn + reading the ready line",
        baseline: micros(median(raw)),
        aim: "<= 1.2x",
    });
}

/// A connection to a pod's worker child that speaks the request channel's
/// protocol without the pod (the worker's `--channel-listen` socket): the
/// raw baseline of the channel rows, to the same process.
struct RawChannel {
    read: BufReader<tokio::net::unix::OwnedReadHalf>,
    write: tokio::net::unix::OwnedWriteHalf,
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
    async fn round_trips(&mut self, first: u64, count: u64, payload: &[u8]) {
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
        pod.send(Start).await.unwrap().unwrap();
        pod.send(WaitStartSuccess).await.unwrap().unwrap();
        let mut raw = RawChannel::connect(&socket).await;
        let payload = b"a request of 32 bytes, echoed...";
        let call = |pod: &Addr<Pod<ProcessRuntime>>| {
            pod.send(Call::<ProcessRuntime>(ProcessRequest::call(&payload[..])))
        };
        // A warm-up, then both sides in turns, the first side alternating.
        let mut id = 1;
        for _ in 0..100 {
            call(&pod).await.unwrap().unwrap();
            raw.round_trips(id, 1, payload).await;
            id += 1;
        }
        let (mut ours, mut direct) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for i in 0..n {
            for side in [i % 2, 1 - i % 2] {
                let begun = Instant::now();
                if side == 0 {
                    call(&pod).await.unwrap().unwrap();
                    ours.push(begun.elapsed());
                } else {
                    raw.round_trips(id, 1, payload).await;
                    id += 1;
                    direct.push(begun.elapsed());
                }
            }
        }
        for (figure, p) in [(p50, 0.5), (p99, 0.99)] {
            rows.push(Row {
                figure,
                unit: "us",
                ours: micros(percentile(ours.clone(), p)),
                baseline_name: "the same frames to the same child, no pod",
                baseline: micros(percentile(direct.clone(), p)),
                aim: "<= 1.5x",
            });
        }
        if let Some(figure) = throughput {
            rows.push(Row {
                figure: p50,
                unit: "us",
                ours: micros(percentile(ours, 0.5)),
                baseline_name: "Jina's gRPC round trip to a worker pod (not this run)",
                baseline: JINA_GRPC_ROUND_TRIP_US,
                aim: "<= 0.1x",
            });
            // Six turns a side, the first of each a warm-up.
            let (mut ours, mut direct) = (Vec::new(), Vec::new());
            for turn in 0..6 {
                for side in [turn % 2, 1 - turn % 2] {
                    let begun = Instant::now();
                    if side == 0 {
                        let calls: Vec<_> = (0..pipelined).map(|_| call(&pod)).collect();
                        for answer in futures::future::join_all(calls).await {
                            answer.unwrap().unwrap();
                        }
                    } else {
                        raw.round_trips(id, pipelined as u64, payload).await;
                        id += pipelined as u64;
                    }
                    if turn > 0 {
                        let rate = pipelined as f64 / begun.elapsed().as_secs_f64();
                        if side == 0 {
                            ours.push(rate)
                        } else {
                            direct.push(rate)
                        }
                    }
                }
            }
            let median_rate = |mut rates: Vec<f64>| {
                rates.sort_by(f64::total_cmp);
                rates[rates.len() / 2]
            };
            rows.push(Row {
                figure,
                unit: "calls/s",
                ours: median_rate(ours),
                baseline_name: "the same frames to the same child at once, no pod",
                baseline: median_rate(direct),
                aim: "(reference)",
            });
        }
        pod.send(Close::default()).await.unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Jina's raw gRPC round trip to a worker pod, measured on this machine
/// kind (see BENCHMARKS.md); a reference, not measured by this run.
const JINA_GRPC_ROUND_TRIP_US: f64 = 1300.0;

async fn many_rows(count: usize, rows: &mut Vec<Row>) {
    // Pods under one shared supervisor, as a deployment runs them.
    let supervisor = Supervisor::new(SupervisorConfig::default())
        .unwrap()
        .start();
    let rss_before = rss_bytes();
    let begun = Instant::now();
    let mut pods = Vec::with_capacity(count);
    for i in 0..count {
        let mut config = config(PlacementKind::Shared);
        config.name = format!("pod-{i}");
        let pod = Pod::new(config, RuntimeFactory::new(|_| Echo))
            .supervised_by(supervisor.clone())
            .start();
        pod.do_send(Start);
        pods.push(pod);
    }
    for pod in &pods {
        pod.send(WaitStartSuccess).await.unwrap().unwrap();
    }
    let ours = begun.elapsed();
    let pod_bytes = rss_bytes().saturating_sub(rss_before) as f64 / count as f64;

    let rss_before = rss_bytes();
    let begun = Instant::now();
    let mut bare = Vec::with_capacity(count);
    for _ in 0..count {
        bare.push(Bare.start());
    }
    for addr in &bare {
        addr.send(Ping(1)).await.unwrap();
    }
    let baseline = begun.elapsed();
    let bare_bytes = rss_bytes().saturating_sub(rss_before) as f64 / count as f64;
    rows.push(Row {
        figure: "10,000 pods on a shared arbiter, all Started",
        unit: "ms",
        ours: ours.as_secs_f64() * 1e3,
        baseline_name: "10,000 bare actors started + 1 round trip each",
        baseline: baseline.as_secs_f64() * 1e3,
        aim: "< 1000 ms",
    });
    rows.push(Row {
        figure: "memory per pod (RSS delta / 10,000)",
        unit: "bytes",
        ours: pod_bytes,
        baseline_name: "memory per bare actor",
        baseline: bare_bytes,
        aim: "< 16 KiB",
    });
    for pod in pods.iter().rev() {
        pod.send(Close::default()).await.unwrap();
    }
}

async fn fanout_rows(count: usize, n: usize, rows: &mut Vec<Row>) {
    let mut ours = Vec::with_capacity(n);
    let mut baseline = Vec::with_capacity(n);
    for _ in 0..n {
        let tally = Tally::new(count);
        let counters: Vec<_> = (0..count).map(|_| Counter(tally.clone()).start()).collect();
        let pod = Pod::new(config(PlacementKind::Shared), RuntimeFactory::new(|_| Echo)).start();
        for counter in &counters {
            pod.do_send(Subscribe(counter.clone().recipient()));
        }
        // A round trip, so every Subscribe has been handled.
        pod.send(GetRole).await.unwrap();
        // Only the broadcast is timed: from the runtime's Ready to the last
        // subscriber, less the pod's start measured alone just before.
        let single = {
            let begun = Instant::now();
            let alone = started_pod(PlacementKind::Shared).await;
            let took = begun.elapsed();
            alone.send(Close::default()).await.unwrap();
            took
        };
        let begun = Instant::now();
        pod.send(Start).await.unwrap().unwrap();
        tally.reached().await;
        ours.push(begun.elapsed().saturating_sub(single));
        pod.send(Close::default()).await.unwrap();

        let tally = Tally::new(count);
        let counters: Vec<_> = (0..count).map(|_| Counter(tally.clone()).start()).collect();
        let begun = Instant::now();
        for counter in &counters {
            counter.do_send(Ping(0));
        }
        tally.reached().await;
        baseline.push(begun.elapsed());
    }
    rows.push(Row {
        figure: "Started fan-out to 10,000 subscribers",
        unit: "ms",
        ours: median(ours).as_secs_f64() * 1e3,
        baseline_name: "10,000 do_sends",
        baseline: median(baseline).as_secs_f64() * 1e3,
        aim: "(reference)",
    });
}

// ===== output =====

fn print_table(rows: &[Row]) {
    let mut table = examples::fmt::Table::new(
        &["FIGURE", "OURS", "BASELINE", "RATIO", "AIM", "BASELINE IS"],
        &[false, true, true, true, false, false],
        80,
    );
    for row in rows {
        let unit = short(row.unit);
        table.row(vec![
            row.figure.to_owned(),
            format!("{:.1} {unit}", row.ours),
            format!("{:.1} {unit}", row.baseline),
            format!("{:.2}x", row.ours / row.baseline),
            row.aim.to_owned(),
            row.baseline_name.to_owned(),
        ]);
    }
    print!("{}", table.render());
}

fn short(unit: &str) -> &str {
    match unit {
        "calls/s" => "/s",
        "bytes" => "B",
        other => other,
    }
}

/// One row as `--json` writes it.
#[derive(serde::Serialize)]
struct JsonRow<'a> {
    figure: &'a str,
    unit: &'a str,
    ours: f64,
    baseline: f64,
    ratio: f64,
    baseline_name: &'a str,
    aim: &'a str,
}

fn print_json(rows: &[Row]) {
    let rows: Vec<JsonRow<'_>> = rows
        .iter()
        .map(|r| JsonRow {
            figure: r.figure,
            unit: r.unit,
            ours: r.ours,
            baseline: r.baseline,
            ratio: r.ours / r.baseline,
            baseline_name: r.baseline_name,
            aim: r.aim,
        })
        .collect();
    match serde_json::to_string_pretty(&rows) {
        Ok(json) => println!("{json}"),
        Err(e) => eprintln!("podbench: cannot write JSON: {e}"),
    }
}

/// Measures the project's figures, each beside its baseline in the same
/// run (see BENCHMARKS.md).
#[derive(Debug, clap::Parser)]
#[command(name = "podbench")]
struct Args {
    /// Print the rows as JSON instead of a table
    #[arg(long)]
    json: bool,
    /// Fewer samples, for CI: rougher figures
    #[arg(long)]
    quick: bool,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("worker") {
        examples::worker::run(args[1..].to_vec());
    }
    let Args { json, quick } = <Args as clap::Parser>::parse();
    // The restart rows panic on purpose; printing each panic would be most
    // of what they measure.
    std::panic::set_hook(Box::new(|_| {}));
    let (n, process_n, fanout_n) = if quick { (200, 10, 1) } else { (2000, 50, 5) };
    let rows = System::new().block_on(async move {
        let mut rows = Vec::new();
        start_rows(n, &mut rows).await;
        restart_rows(n, &mut rows).await;
        call_rows(n * 10, &mut rows).await;
        process_rows(process_n, &mut rows).await;
        channel_rows(n * 5, if quick { 1000 } else { 10_000 }, &mut rows).await;
        deployment_rows(if quick { 3 } else { 10 }, &mut rows).await;
        many_rows(10_000, &mut rows).await;
        fanout_rows(10_000, fanout_n, &mut rows).await;
        rows
    });
    if json {
        print_json(&rows);
    } else {
        print_table(&rows);
    }
    let _ = std::io::stdout().flush();
    ExitCode::SUCCESS
}
