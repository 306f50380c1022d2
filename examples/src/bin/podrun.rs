//! `podrun`: one pod as a container's main process, for Kubernetes.
//!
//! `podrun CONFIG [--listen ADDR]` runs the process pod that the config
//! file (TOML, YAML or JSON) describes, with its probes (notify, stdout,
//! tcp, http), restarts and stop signal, and serves on `ADDR`
//! (`0.0.0.0:8086` by default):
//!
//! - `GET /readyz`: 200 once the pod is `Started`, 503 while it starts or
//!   restarts (Kubernetes' readiness and startup probes), so that sd_notify
//!   and stdout readiness, which the kubelet cannot see, count;
//! - `GET /livez`: 200 while the pod is alive (starting, running or
//!   restarting), 503 once it has given up.
//!
//! SIGTERM (or SIGINT) closes the pod, gracefully within its `timeout_ctrl`,
//! and `podrun` exits 0; a pod that gave up makes it exit 1. As a
//! container's PID 1 it reaps the orphans its child leaves (it is their
//! subreaper anywhere else too).
//!
//! `podrun export kubernetes CONFIG [--image IMAGE] [--namespace NS]
//! [--out DIR]` writes the Kubernetes manifests of a deployments file (or
//! of one pod's config) as YAML, to stdout or one file per object in DIR;
//! what has no equivalent is said on stderr and at the top of the YAML.
//! Process pods run `podrun` in IMAGE (see `pod_actor::kubernetes`).

use std::io::Write;
use std::net::TcpListener;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use actix_web::{web, App, HttpResponse, HttpServer};
use futures::StreamExt;
use pod_actor::{Close, GetStatus, Pod, PodConfig, PodEvent, PodEvents, RuntimeSpec, Start};
use runtime_actor::ProcessRuntime;
use tokio::signal::unix::{signal, SignalKind};

const USAGE: &str = "usage: podrun CONFIG [--listen ADDR]   (ADDR is 0.0.0.0:8086 by default)
       podrun export kubernetes CONFIG [--image IMAGE] [--namespace NS] [--out DIR]";

/// What the probes answer.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    Starting = 0,
    Ready = 1,
    Restarting = 2,
    Ended = 3,
}

#[derive(Clone)]
struct Probes(Arc<AtomicU8>);

impl Probes {
    fn set(&self, phase: Phase) {
        self.0.store(phase as u8, Ordering::SeqCst);
    }

    fn phase(&self) -> Phase {
        match self.0.load(Ordering::SeqCst) {
            1 => Phase::Ready,
            2 => Phase::Restarting,
            3 => Phase::Ended,
            _ => Phase::Starting,
        }
    }
}

async fn readyz(probes: web::Data<Probes>) -> HttpResponse {
    match probes.phase() {
        Phase::Ready => HttpResponse::Ok().body("ready\n"),
        Phase::Starting => HttpResponse::ServiceUnavailable().body("starting\n"),
        Phase::Restarting => HttpResponse::ServiceUnavailable().body("restarting\n"),
        Phase::Ended => HttpResponse::ServiceUnavailable().body("ended\n"),
    }
}

async fn livez(probes: web::Data<Probes>) -> HttpResponse {
    match probes.phase() {
        Phase::Ended => HttpResponse::ServiceUnavailable().body("ended\n"),
        _ => HttpResponse::Ok().body("alive\n"),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [export, target, rest @ ..] = args.as_slice() {
        if export == "export" {
            return match target.as_str() {
                "kubernetes" => export_kubernetes(rest),
                other => {
                    eprintln!("podrun: cannot export to `{other}`: only `kubernetes`\n{USAGE}");
                    ExitCode::from(2)
                }
            };
        }
    }
    let (config, listen) = match args.as_slice() {
        [flag] if flag == "--help" || flag == "-h" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        [config] => (config.clone(), "0.0.0.0:8086".to_owned()),
        [config, flag, addr] if flag == "--listen" => (config.clone(), addr.clone()),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    examples::logging::init();
    let config = match load(&config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("podrun: {e}");
            return ExitCode::from(2);
        }
    };
    become_subreaper();
    match actix::System::new().block_on(run(config, &listen)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("podrun: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: &str) -> Result<PodConfig, String> {
    let config = PodConfig::from_file(path).map_err(|e| e.to_string())?;
    match &config.runtime {
        RuntimeSpec::Process { .. } => Ok(config),
        _ => Err(format!(
            "{path}: podrun runs a process pod (`runtime.kind = \"process\"`): an in-process \
             runtime has no program to run, and a container is what podrun runs in"
        )),
    }
}

/// Orphans of the pod's processes become ours (as they would be PID 1's),
/// so that [`reap_orphans`] can reap them.
fn become_subreaper() {
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        eprintln!("podrun: cannot become a subreaper: {e}");
    }
}

async fn run(config: PodConfig, listen: &str) -> Result<ExitCode, String> {
    let mut terminate = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut child_ended = signal(SignalKind::child()).map_err(|e| e.to_string())?;

    let probes = Probes(Arc::new(AtomicU8::new(Phase::Starting as u8)));
    let listener =
        TcpListener::bind(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let data = web::Data::new(probes.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/readyz", web::get().to(readyz))
            .route("/livez", web::get().to(livez))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .map_err(|e| e.to_string())?
    .run();
    let handle = server.handle();
    let serving = actix_web::rt::spawn(server);

    let pod = Pod::from_process_config(config)
        .map_err(|e| e.to_string())?
        .start();
    let mut events = PodEvents::of(&pod);
    pod.send(Start)
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    println!("podrun: serving /readyz and /livez on http://{address}");
    let _ = std::io::stdout().flush();

    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let code = loop {
        tokio::select! {
            event = events.next() => match event {
                Some(PodEvent::Started(started)) => {
                    tracing::info!(pid = ?started.pid, generation = started.generation, "ready");
                    probes.set(Phase::Ready);
                }
                Some(PodEvent::Failed { .. } | PodEvent::Restarting { .. }) => {
                    probes.set(Phase::Restarting)
                }
                Some(PodEvent::Terminated { error }) => {
                    probes.set(Phase::Ended);
                    if let Some(error) = error {
                        eprintln!("podrun: the pod ended: {error}");
                        break ExitCode::FAILURE;
                    }
                    break ExitCode::SUCCESS;
                }
                Some(_) => {}
                None => break ExitCode::FAILURE,
            },
            _ = terminate.recv() => break close(&pod, &probes).await,
            _ = interrupt.recv() => break close(&pod, &probes).await,
            _ = child_ended.recv() => reap_orphans(&pod).await,
            _ = tick.tick() => reap_orphans(&pod).await,
        }
    };
    reap_orphans(&pod).await;
    handle.stop(true).await;
    let _ = serving.await;
    Ok(code)
}

async fn close(pod: &actix::Addr<Pod<ProcessRuntime>>, probes: &Probes) -> ExitCode {
    probes.set(Phase::Restarting);
    match pod.send(Close::default()).await {
        Ok(report) => {
            probes.set(Phase::Ended);
            let how = if report.forced { "forced" } else { "graceful" };
            println!("podrun: closed ({how}, {} ms)", report.took.as_millis());
            let _ = std::io::stdout().flush();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("podrun: the pod is gone: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Reaps the zombies among this process's children, except the pod's
/// main process, which its runtime reaps (through its pidfd) to read the
/// exit status.
async fn reap_orphans(pod: &actix::Addr<Pod<ProcessRuntime>>) {
    let zombies = zombie_children();
    if zombies.is_empty() {
        return;
    }
    let main = pod.send(GetStatus).await.ok().and_then(|status| status.pid);
    for pid in zombies.into_iter().filter(|&pid| Some(pid) != main) {
        let _ = nix::sys::wait::waitpid(
            nix::unistd::Pid::from_raw(pid as i32),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        );
        tracing::debug!(pid, "reaped an orphan");
    }
}

/// This process's children (of every thread) that are zombies.
fn zombie_children() -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut zombies = Vec::new();
    for task in tasks.flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for pid in children
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
        {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat
                .rfind(')')
                .and_then(|end| stat[end + 1..].split_whitespace().next());
            if state == Some("Z") {
                zombies.push(pid);
            }
        }
    }
    zombies
}

/// `podrun export kubernetes CONFIG [--image IMAGE] [--namespace NS] [--out DIR]`.
fn export_kubernetes(args: &[String]) -> ExitCode {
    use pod_actor::deployment::DeploymentsConfig;
    use pod_actor::kubernetes::{export_deployments, export_pod, ExportOptions};

    let mut path = None;
    let mut out = None;
    let mut options = ExportOptions::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = |args: &mut std::slice::Iter<'_, String>| args.next().cloned();
        match arg.as_str() {
            "--image" => options.image = value(&mut args),
            "--namespace" => options.namespace = value(&mut args),
            "--out" => out = value(&mut args),
            flag if flag.starts_with('-') => {
                eprintln!("podrun: unknown option `{flag}`\n{USAGE}");
                return ExitCode::from(2);
            }
            config if path.is_none() => path = Some(config.to_owned()),
            extra => {
                eprintln!("podrun: one config only, got `{extra}` too\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(path) = path else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    options.origin = path.clone();
    // A deployments file, or one pod's config.
    let exported = match DeploymentsConfig::from_file(&path) {
        Ok(config) => export_deployments(&config, &options).map_err(|e| e.to_string()),
        Err(deployments) => match PodConfig::from_file(&path) {
            Ok(pod) => export_pod(&pod, 1, &options).map_err(|e| e.to_string()),
            Err(pod) => Err(format!(
                "{path} is neither a deployments file ({deployments}) nor a pod config ({pod})"
            )),
        },
    };
    let export = match exported {
        Ok(export) => export,
        Err(e) => {
            eprintln!("podrun: {e}");
            return ExitCode::FAILURE;
        }
    };
    for warning in &export.warnings {
        eprintln!("podrun: warning: {warning}");
    }
    match out {
        None => {
            print!("{}", export.to_yaml());
            let _ = std::io::stdout().flush();
        }
        Some(dir) => {
            if let Err(e) = std::fs::create_dir_all(&dir) {
                eprintln!("podrun: cannot create {dir}: {e}");
                return ExitCode::FAILURE;
            }
            for (name, text) in export.files() {
                let file = std::path::Path::new(&dir).join(&name);
                if let Err(e) = std::fs::write(&file, text) {
                    eprintln!("podrun: cannot write {}: {e}", file.display());
                    return ExitCode::FAILURE;
                }
                println!("{}", file.display());
            }
        }
    }
    ExitCode::SUCCESS
}
