//! The demo: deployments of pods driven from actix, with a failure injected
//! and every request accounted for.
//!
//! `cargo run --release -p examples --bin demo` runs the embedded default
//! config: three in-process `encoder` replicas and two `sidecar` pods that
//! are OS child processes (this binary in worker mode) serving requests over
//! their request channel. It prints every lifecycle event and a status
//! table, sends traffic to both, makes one encoder panic and SIGKILLs a
//! sidecar with requests in flight, shows both restarted and that no request
//! was lost (sent = answered), closes everything and exits 0.
//!
//! `cargo run --release -p examples --bin demo -- my-deployments.toml` runs
//! that config until Ctrl-C, then closes gracefully. `--help` explains the
//! format.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use actix::{Actor, Addr, Context, Handler};
use examples::fmt::{human, Table};
use pod_actor::deployment::{
    CloseDeployment, Deployment, DeploymentConfig, DeploymentEvent, DeploymentsConfig,
    GetDeploymentStatus, GetReplicas, Route, StartDeployment,
};
use pod_actor::{
    Call, ConfigFormat, Pod, PodConfig, PodError, PodEvent, PodStatus, RuntimeRegistry,
    RuntimeSpec, WaitStartSuccess,
};
use runtime_actor::{
    ProcessRequest, ProcessResponse, ProcessRuntime, Runtime, RuntimeContext, RuntimeError,
    RuntimeFactory,
};
use tokio::signal::unix::{signal, SignalKind};

const DEFAULT_CONFIG: &str = r#"
# Three in-process replicas of a word counter, restarted at once on failure.
[[deployment]]
name = "encoder"
replicas = 3

[deployment.pod]
runtime = { kind = "in-process", name = "word-counter" }
timeout_ready = 10000
timeout_ctrl = 2000
placement = "shared"
restart = { max_restarts = 5, within = 10000, backoff = { initial = 0, jitter = 0.0 } }

# Two OS child processes (this binary in worker mode), ready by sd_notify,
# answering requests over their request channel (fd 3).
[[deployment]]
name = "sidecar"
replicas = 2

[deployment.pod]
runtime = { kind = "process", command = "@self", args = ["worker", "--announce", "notify"], channel = {} }
timeout_ready = 10000
timeout_ctrl = 2000
restart = { backoff = { initial = 50, jitter = 0.0 } }
env = { SIDECAR_MODE = "demo" }
"#;

/// What `--help` says after the options: the modes, and a complete config.
fn after_help() -> String {
    format!(
        "Without CONFIG: run the embedded default config (shown below): start \
         three in-process replicas and two child-process pods, send traffic to \
         both, make a replica panic and SIGKILL a child with requests in flight, \
         show the restarts and that every request was answered, then close; \
         exits 0 when all of that held.

With CONFIG: run its deployments until Ctrl-C or SIGTERM, then close them \
gracefully (exit 0). Before all is running, Ctrl-C closes what has started, \
in reverse start order, and exits 130.

`demo worker ARGS` runs the scriptable worker child process (`demo worker \
--help`). RUST_LOG sets what the pods log on stderr (warn by default).

A CONFIG holds [[deployment]] tables: `name`, `replicas`, and a \
[deployment.pod] table in the pod config format. In-process runtimes by name: \
word-counter. A process command `@self` means this binary. The default \
config, complete (`demo --print-config` prints it):
{DEFAULT_CONFIG}"
    )
}

/// Runs deployments of pods on actix.
#[derive(Debug, clap::Parser)]
#[command(name = "demo", after_help = after_help())]
struct Args {
    /// A TOML file of deployments to run until Ctrl-C
    config: Option<std::path::PathBuf>,
    /// Serve the pods' metrics in Prometheus text format at
    /// http://ADDR/metrics (port 0 picks one)
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// Print the embedded default config and exit
    #[arg(long)]
    print_config: bool,
}

// ===== the in-process runtime =====

/// Counts words; the text `crash` makes it panic, to show a restart.
struct WordCounter;

impl Runtime for WordCounter {
    type Request = String;
    type Response = usize;

    async fn setup(&mut self, _: &mut RuntimeContext) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn handle(&mut self, text: String) -> Result<usize, RuntimeError> {
        if text == "crash" {
            panic!("asked to crash");
        }
        Ok(text.split_whitespace().count())
    }
}

// ===== config =====

/// Loads the deployments (the library's format and rules), with `@self` as
/// a process command standing for this binary.
fn load(text: &str, origin: &str) -> Result<Vec<(String, usize, PodConfig)>, String> {
    let config =
        DeploymentsConfig::from_str(text, ConfigFormat::Toml, origin).map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let mut deployments = Vec::new();
    for DeploymentConfig {
        name,
        replicas,
        mut pod,
        ..
    } in config.deployments
    {
        if let RuntimeSpec::Process { command, .. } = &mut pod.runtime {
            if command == "@self" {
                *command = exe.display().to_string();
            }
        }
        deployments.push((name, replicas, pod));
    }
    Ok(deployments)
}

// ===== printing =====

/// Prints every replica's lifecycle events as they happen.
struct Printer {
    since: Instant,
}

impl Actor for Printer {
    type Context = Context<Self>;
}

impl Handler<DeploymentEvent> for Printer {
    type Result = ();

    fn handle(&mut self, DeploymentEvent { pod, event }: DeploymentEvent, _: &mut Context<Self>) {
        let what = match event {
            PodEvent::Starting { generation } => format!("starting generation {generation}"),
            PodEvent::Progressed { note, .. } => format!("progress: {note}"),
            PodEvent::Started(started) => format!(
                "STARTED generation {} in {}{}",
                started.generation,
                human(started.startup),
                started
                    .pid
                    .map(|p| format!(" (pid {p})"))
                    .unwrap_or_default()
            ),
            PodEvent::Unhealthy { reason, .. } => format!("unhealthy: {reason}"),
            PodEvent::Failed { cause, .. } => format!("FAILED: {cause}"),
            PodEvent::Restarting { attempt, delay } => {
                format!("restarting (attempt {attempt}) in {}", human(delay))
            }
            PodEvent::Terminated { error: None } => "terminated (closed)".to_owned(),
            PodEvent::Terminated { error: Some(e) } => format!("terminated: {e}"),
            other => format!("{other:?}"),
        };
        println!(
            "[{:>8.3}s] {pod:<16} {what}",
            self.since.elapsed().as_secs_f64()
        );
    }
}

fn print_table(statuses: &[PodStatus]) {
    let mut table = Table::new(
        &["POD", "STATE", "GEN", "RESTARTS", "UPTIME", "LAST CAUSE"],
        &[false, false, true, true, true, false],
        60,
    );
    for s in statuses {
        table.row(vec![
            s.name.clone(),
            format!("{:?}", s.state).to_lowercase(),
            s.generation.to_string(),
            s.restarts.to_string(),
            s.uptime.map_or_else(|| "-".into(), human),
            s.last_failure.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    print!("{}", table.render());
    let _ = std::io::stdout().flush();
}

// ===== running =====

type Encoders = Addr<Deployment<WordCounter>>;
type Processes = Addr<Deployment<ProcessRuntime>>;

/// Builds the deployments of `config` (in-process and process ones apart).
fn build(
    config: Vec<(String, usize, PodConfig)>,
    printer: &Addr<Printer>,
) -> (Vec<Encoders>, Vec<Processes>) {
    let mut encoders = Vec::new();
    let mut processes = Vec::new();
    for (name, replicas, template) in config {
        match &template.runtime {
            RuntimeSpec::Process { .. } => {
                processes.push(
                    Deployment::new(name, replicas, template, Pod::from_process_config)
                        .with_events(printer.clone().recipient())
                        .start(),
                );
            }
            _ => {
                let registry = RuntimeRegistry::new()
                    .register("word-counter", RuntimeFactory::new(|_| WordCounter));
                let build = move |config: PodConfig| Pod::from_config(config, &registry);
                encoders.push(
                    Deployment::new(name, replicas, template, build)
                        .with_events(printer.clone().recipient())
                        .start(),
                );
            }
        }
    }
    (encoders, processes)
}

async fn statuses(encoders: &[Encoders], processes: &[Processes]) -> Vec<PodStatus> {
    let mut all = Vec::new();
    for d in encoders {
        all.extend(
            d.send(GetDeploymentStatus)
                .await
                .map(|s| s.replicas)
                .unwrap_or_default(),
        );
    }
    for d in processes {
        all.extend(
            d.send(GetDeploymentStatus)
                .await
                .map(|s| s.replicas)
                .unwrap_or_default(),
        );
    }
    all
}

async fn start_all(encoders: &[Encoders], processes: &[Processes]) -> Result<(), String> {
    for d in encoders {
        d.send(StartDeployment)
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
    }
    for d in processes {
        d.send(StartDeployment)
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn close_all(encoders: &[Encoders], processes: &[Processes]) -> bool {
    let mut graceful = true;
    for d in processes.iter().rev() {
        for (name, report) in d.send(CloseDeployment).await.unwrap_or_default() {
            println!("  closed {name}: {}", describe(&report));
            graceful &= report.graceful();
        }
    }
    for d in encoders.iter().rev() {
        for (name, report) in d.send(CloseDeployment).await.unwrap_or_default() {
            println!("  closed {name}: {}", describe(&report));
            graceful &= report.graceful();
        }
    }
    graceful
}

fn describe(report: &pod_actor::CloseReport) -> String {
    let how = if report.stuck {
        "forced, stuck"
    } else if report.forced {
        "forced"
    } else {
        "graceful"
    };
    format!("{how} in {}", human(report.took))
}

/// Waits for `pod` to be ready again at a generation past `after`.
async fn restarted<R: Runtime>(pod: &Addr<Pod<R>>, after: u64) -> Result<u64, PodError> {
    for _ in 0..1000 {
        let started = pod
            .send(WaitStartSuccess)
            .await
            .map_err(|_| PodError::Closed)??;
        if started.generation > after {
            return Ok(started.generation);
        }
        actix::clock::sleep(Duration::from_millis(5)).await;
    }
    Err(PodError::NotStarted)
}

async fn run_default(since: Instant, stop: Stop) -> Result<Ended, String> {
    let printer = Printer { since }.start();
    let (encoders, processes) = build(
        load(DEFAULT_CONFIG, "the embedded default config")?,
        &printer,
    );
    let scenario = default_scenario(&encoders, &processes);
    tokio::select! {
        ended = scenario => ended.map(|()| Ended::Completed),
        () = stop => {
            println!("== interrupted: closing what has started (reverse start order)");
            close_all(&encoders, &processes).await;
            Ok(Ended::Interrupted)
        }
    }
}

/// Starts the default deployments, drives traffic with two failures, and
/// closes them.
async fn default_scenario(encoders: &[Encoders], processes: &[Processes]) -> Result<(), String> {
    println!(
        "== starting 2 deployments: encoder (3 in-process replicas), \
         sidecar (2 processes, over their request channel)"
    );
    if let Err(e) = start_all(encoders, processes).await {
        close_all(encoders, processes).await;
        return Err(e);
    }
    print_table(&statuses(encoders, processes).await);

    let encoder = &encoders[0];
    let replica = encoder
        .send(GetReplicas::new())
        .await
        .map_err(|e| e.to_string())?;
    let sidecars = &processes[0];
    let sidecar = sidecars
        .send(GetReplicas::new())
        .await
        .map_err(|e| e.to_string())?;
    let (sent, mut answered, mut errors) = (600u32, 0u32, 0u32);
    let mut over_channel = 0u32;
    println!(
        "== sending {sent} requests round-robin (4 of 6 to encoder, 2 to sidecar), \
         with two failures injected"
    );
    for round in 0..(sent / 6) {
        if round == 20 {
            println!("== injecting a panic into {}", replica[1].0);
            let _ = replica[1].1.send(Call::<WordCounter>("crash".into())).await;
        }
        let encoded: Vec<_> = (0..4)
            .map(|i| encoder.send(Route::<WordCounter>(format!("request {round} {i}"))))
            .collect();
        // The worker answers `sleep MS TEXT` with TEXT after MS ms: in
        // round 40 the answers are still to come when a sidecar is killed.
        let delay = if round == 40 { 200 } else { 0 };
        let echoed: Vec<_> = (0..2)
            .map(|i| {
                let text = format!("answer {round} {i}");
                let routed = sidecars.send(Route::<ProcessRuntime>(ProcessRequest::call(format!(
                    "sleep {delay} {text}"
                ))));
                async move { (text, routed.await) }
            })
            .collect();
        let mut generation = None;
        if round == 40 {
            println!(
                "== sending SIGKILL to the child process of {}, with requests in flight",
                sidecar[0].0
            );
            let pod = &sidecar[0].1;
            generation = Some(
                pod.send(WaitStartSuccess)
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?
                    .generation,
            );
            pod.send(Call::<ProcessRuntime>(ProcessRequest::Signal(9)))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
        }
        for answer in futures::future::join_all(encoded).await {
            match answer {
                Ok(Ok(3)) => answered += 1,
                other => {
                    errors += 1;
                    eprintln!("request failed: {other:?}");
                }
            }
        }
        for (text, answer) in futures::future::join_all(echoed).await {
            match answer {
                Ok(Ok(ProcessResponse::Reply(reply))) if reply == text.as_bytes() => {
                    answered += 1;
                    over_channel += 1;
                }
                other => {
                    errors += 1;
                    eprintln!("request failed: {other:?}");
                }
            }
        }
        if let Some(generation) = generation {
            let again = restarted(&sidecar[0].1, generation)
                .await
                .map_err(|e| format!("the sidecar did not come back: {e}"))?;
            println!("== {} is back at generation {again}", sidecar[0].0);
        }
    }
    restarted(&replica[1].1, 0)
        .await
        .map_err(|e| format!("the replica did not come back: {e}"))?;
    println!("== status after the failures");
    let after = statuses(encoders, processes).await;
    print_table(&after);
    let restarts: u64 = after.iter().map(|s| s.restarts).sum();
    println!("sent = {sent}, answered = {answered}, errors = {errors}, restarts = {restarts}");
    println!(
        "sidecar: {over_channel} of {} answered over the request channel",
        sent / 3
    );
    println!("== closing (reverse start order)");
    let graceful = close_all(encoders, processes).await;
    if answered != sent {
        return Err(format!("{} requests were not answered", sent - answered));
    }
    if restarts < 2 {
        return Err(format!("expected 2 restarts, saw {restarts}"));
    }
    if !graceful {
        return Err("a close had to be forced".into());
    }
    println!("sent = answered: every request got its answer");
    Ok(())
}

async fn run_file(path: &str, since: Instant, mut stop: Stop) -> Result<Ended, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let printer = Printer { since }.start();
    let (encoders, processes) = build(load(&text, path)?, &printer);
    let started = tokio::select! {
        started = start_all(&encoders, &processes) => Some(started),
        () = &mut stop => None,
    };
    match started {
        Some(Ok(())) => {}
        Some(Err(e)) => {
            close_all(&encoders, &processes).await;
            return Err(e);
        }
        None => {
            println!("== interrupted while starting: closing what has started");
            close_all(&encoders, &processes).await;
            return Ok(Ended::Interrupted);
        }
    }
    print_table(&statuses(&encoders, &processes).await);
    println!("== running; Ctrl-C closes");
    stop.await;
    println!("== closing (reverse start order)");
    close_all(&encoders, &processes).await;
    Ok(Ended::Completed)
}

/// How a run ended, when it did not fail.
enum Ended {
    Completed,
    /// SIGINT or SIGTERM arrived first; what had started was closed.
    Interrupted,
}

/// Resolves at the first SIGINT or SIGTERM.
type Stop = std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

/// Listens for SIGINT and SIGTERM from now on: installed before anything
/// starts, so a signal during the start closes what has started instead of
/// killing the process.
fn listen_for_stop() -> Result<Stop, String> {
    let listen = |kind| signal(kind).map_err(|e| format!("cannot listen for signals: {e}"));
    let (mut interrupt, mut terminate) = (
        listen(SignalKind::interrupt())?,
        listen(SignalKind::terminate())?,
    );
    Ok(Box::pin(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    }))
}

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().collect();
    if raw.get(1).map(String::as_str) == Some("worker") {
        examples::worker::run(raw[2..].to_vec());
    }
    let args = <Args as clap::Parser>::parse_from(raw);
    if args.print_config {
        print!("{}", DEFAULT_CONFIG.trim_start());
        return ExitCode::SUCCESS;
    }
    let metrics_at = args.metrics;
    let path = args.config.map(|p| p.display().to_string());
    let since = Instant::now();
    examples::logging::init();
    let outcome = actix::System::new().block_on(async move {
        // Before any pod starts: pods register their metrics then.
        let _metrics = match &metrics_at {
            Some(at) => {
                let served = examples::metrics::serve(at)
                    .map_err(|e| format!("cannot serve metrics on {at}: {e}"))?;
                println!("== metrics at http://{}/metrics", served.address);
                Some(served)
            }
            None => None,
        };
        let stop = listen_for_stop()?;
        match path {
            Some(path) => run_file(&path, since, stop).await,
            None => run_default(since, stop).await,
        }
    });
    match outcome {
        Ok(Ended::Completed) => ExitCode::SUCCESS,
        // 128 + SIGINT, as a shell reports an interrupted program.
        Ok(Ended::Interrupted) => ExitCode::from(130),
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}
