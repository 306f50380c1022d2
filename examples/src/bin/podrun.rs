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
//! and `podrun` exits 0. A pod that ends by itself (a `transient` or
//! `temporary` one whose program exited, or one that gave up) makes it exit
//! with the program's status: its code, or 128 + its signal.
//!
//! Two processes, as tini does: the first is the container's PID 1 (or a
//! subreaper elsewhere); it reaps every orphan that reaches it with
//! `waitpid(-1)`, forwards SIGTERM and SIGINT, and exits with the status of
//! the second, which runs the pod and never reaps what it did not start.
//! The program's output lines are copied to podrun's stdout and stderr, for
//! `kubectl logs`.
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

use actix::Actor;
use actix_web::{web, App, HttpResponse, HttpServer};
use futures::StreamExt;
use pod_actor::{Close, Pod, PodConfig, PodEvent, PodEvents, RuntimeSpec, Start};
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
    // First of all, in the first process: a SIGTERM that comes while the
    // config loads waits for the loop that forwards it (a PID 1 ignores
    // signals it has no handler for).
    if std::env::var_os(WORKER_VAR).is_none() {
        let _ = reaper::waited().thread_block();
    }
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
    // Checked before anything is started, by the first process too.
    let loaded = match load(&config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("podrun: {e}");
            return ExitCode::from(2);
        }
    };
    if std::env::var_os(WORKER_VAR).is_none() {
        return reaper::run();
    }
    // The first process blocks the signals it waits for and a child
    // inherits its mask: they stay blocked (a SIGTERM forwarded now stays
    // pending) until `run` has its handlers.
    // Without the first process there is no one to reap or to say how the
    // pod ended: its end closes the pod.
    let first = std::env::var(WORKER_VAR)
        .ok()
        .and_then(|pid| pid.parse::<i32>().ok());
    let orphaned = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM).is_err()
        || first != Some(nix::unistd::getppid().as_raw());
    if orphaned {
        eprintln!("podrun: its first process is gone");
        return ExitCode::FAILURE;
    }
    examples::logging::init();
    match actix::System::new().block_on(run(loaded, &listen)) {
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

/// Set in the environment of the second process: it runs the pod.
const WORKER_VAR: &str = "PODRUN_WORKER";

/// The first process: reaps orphans, forwards the stop signals, and exits
/// as the second one does.
mod reaper {
    use std::process::{Command, ExitCode};

    use nix::sys::signal::{kill, SigSet, Signal};
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    use nix::unistd::Pid;

    pub(super) fn run() -> ExitCode {
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            eprintln!("podrun: cannot become a subreaper: {e}");
        }
        // Taken by sigwait below, not by handlers: blocked before the
        // second process exists (which unblocks them for itself).
        let signals = waited();
        if let Err(e) = signals.thread_block() {
            eprintln!("podrun: cannot block signals: {e}");
            return ExitCode::FAILURE;
        }
        let exe = match std::env::current_exe() {
            Ok(exe) => exe,
            Err(e) => {
                eprintln!("podrun: cannot find its own executable: {e}");
                return ExitCode::FAILURE;
            }
        };
        let worker = match Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env(super::WORKER_VAR, std::process::id().to_string())
            .spawn()
        {
            Ok(child) => Pid::from_raw(child.id() as i32),
            Err(e) => {
                eprintln!("podrun: cannot start the pod's process: {e}");
                return ExitCode::FAILURE;
            }
        };
        loop {
            match signals.wait() {
                Ok(Signal::SIGCHLD) => {
                    if let Some(code) = reap(worker) {
                        return code;
                    }
                }
                Ok(signal) => {
                    let _ = kill(worker, signal);
                }
                Err(e) => {
                    eprintln!("podrun: sigwait: {e}");
                    let _ = kill(worker, Signal::SIGKILL);
                }
            }
        }
    }

    /// The signals the first process waits for.
    pub(super) fn waited() -> SigSet {
        let mut signals = SigSet::empty();
        for signal in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT] {
            signals.add(signal);
        }
        signals
    }

    /// Reaps every child that has ended: the second process's end is ours.
    fn reap(worker: Pid) -> Option<ExitCode> {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == worker => {
                    return Some(ExitCode::from(u8::try_from(code).unwrap_or(1)));
                }
                Ok(WaitStatus::Signaled(pid, signal, _)) if pid == worker => {
                    return Some(ExitCode::from(128u8.saturating_add(signal as u8)));
                }
                Ok(WaitStatus::StillAlive) => return None,
                Ok(_) => continue,
                // No child left: the second process is gone too.
                Err(_) => return Some(ExitCode::FAILURE),
            }
        }
    }
}

async fn run(config: PodConfig, listen: &str) -> Result<ExitCode, String> {
    let mut terminate = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    reaper::waited()
        .thread_unblock()
        .map_err(|e| format!("cannot unblock signals: {e}"))?;

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

    let spec = config
        .runtime
        .process_spec()
        .ok_or("not a process pod")?
        .forward_output(true);
    let pod = Pod::new(config, ProcessRuntime::factory(spec)).start();
    let mut events = PodEvents::of(&pod);
    pod.send(Start)
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    say(&format!(
        "podrun: serving /readyz and /livez on http://{address}"
    ));

    // The program's own status, for a pod that ends by itself.
    let mut last_exit = None;
    let code = loop {
        tokio::select! {
            event = events.next() => match event {
                Some(PodEvent::Started(started)) => {
                    tracing::info!(pid = ?started.pid, generation = started.generation, "ready");
                    probes.set(Phase::Ready);
                }
                Some(PodEvent::Failed { cause, .. }) => {
                    last_exit = exit_code(&cause);
                    probes.set(Phase::Restarting)
                }
                Some(PodEvent::Restarting { .. }) => probes.set(Phase::Restarting),
                Some(PodEvent::Terminated { error }) => {
                    probes.set(Phase::Ended);
                    if let Some(error) = &error {
                        eprintln!("podrun: the pod ended: {error}");
                    }
                    break match (last_exit, error) {
                        (Some(code), _) => ExitCode::from(code),
                        (None, None) => ExitCode::SUCCESS,
                        (None, Some(_)) => ExitCode::FAILURE,
                    };
                }
                Some(_) => {}
                None => break ExitCode::FAILURE,
            },
            _ = terminate.recv() => break close(&pod, &probes).await,
            _ = interrupt.recv() => break close(&pod, &probes).await,
        }
    };
    handle.stop(true).await;
    let _ = serving.await;
    // The program's last lines go out before podrun does.
    if !runtime_actor::forwarded_output_written(std::time::Duration::from_secs(1)).await {
        eprintln!("podrun: the program's last lines were not all written (stdout full)");
    }
    Ok(code)
}

async fn close(pod: &actix::Addr<Pod<ProcessRuntime>>, probes: &Probes) -> ExitCode {
    probes.set(Phase::Restarting);
    match pod.send(Close::default()).await {
        Ok(report) => {
            probes.set(Phase::Ended);
            let how = if report.forced { "forced" } else { "graceful" };
            say(&format!(
                "podrun: closed ({how}, {} ms)",
                report.took.as_millis()
            ));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("podrun: the pod is gone: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A line of podrun's own on stdout, which is also the program's log: a
/// closed stdout is not a reason to panic.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// The status a shell would give for the program's end: its code, or
/// 128 + its signal; none for an end that was not an exit.
fn exit_code(cause: &runtime_actor::FailureCause) -> Option<u8> {
    match cause {
        runtime_actor::FailureCause::Exited {
            code: Some(code), ..
        } => Some(u8::try_from(*code).unwrap_or(1)),
        runtime_actor::FailureCause::Exited {
            signal: Some(signal),
            ..
        } => Some(128u8.saturating_add(u8::try_from(*signal).unwrap_or(0))),
        _ => None,
    }
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
        let Some(value) = arg.starts_with("--").then(|| args.next().cloned()) else {
            match (&path, arg.as_str()) {
                (None, config) => path = Some(config.to_owned()),
                (Some(_), extra) => {
                    eprintln!("podrun: one config only, got `{extra}` too\n{USAGE}");
                    return ExitCode::from(2);
                }
            }
            continue;
        };
        let Some(value) = value else {
            eprintln!("podrun: `{arg}` needs a value\n{USAGE}");
            return ExitCode::from(2);
        };
        match arg.as_str() {
            "--image" => options.image = Some(value),
            "--namespace" => options.namespace = Some(value),
            "--out" => out = Some(value),
            flag => {
                eprintln!("podrun: unknown option `{flag}`\n{USAGE}");
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
