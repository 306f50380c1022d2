//! `web`: an actix-web service that runs its work in pods, the way a user
//! embeds this library.
//!
//! `cargo run -p examples --bin web -- [--listen 127.0.0.1:8080]`
//!
//! - `POST /count` with a text body: routed to a replica of the `counter`
//!   deployment (two in-process pods), answered `{"words": N}`;
//! - `GET /status`: every deployment's status as JSON (in-process and
//!   process pods in one view, with the supervisors' restart statistics);
//! - `GET /metrics`: the pods' metrics in Prometheus text format.
//!
//! SIGTERM or Ctrl-C stops accepting connections, closes every pod
//! gracefully (reverse start order, each runtime's teardown run, the
//! `sidecar` child process stopped) *before* the HTTP server and the actix
//! `System` stop, then exits 0. A second signal exits at once, with 130.

use std::io::Write;
use std::net::TcpListener;
use std::process::ExitCode;

use actix::{Actor, Addr};
use actix_web::{web, App, HttpResponse, HttpServer};
use metrics_exporter_prometheus::PrometheusHandle;
use pod_actor::deployment::{AnyDeployment, Deployment, DeploymentsConfig, Route};
use pod_actor::{ConfigFormat, Pod, PodConfig, RuntimeSpec};
use runtime_actor::{Runtime, RuntimeContext, RuntimeError, RuntimeFactory};
use tokio::signal::unix::{signal, SignalKind};

const CONFIG: &str = r#"
[[deployment]]
name = "counter"
replicas = 2
[deployment.pod]
runtime = { kind = "in-process", name = "word-counter" }
timeout_ctrl = 2000
placement = "shared"

[[deployment]]
name = "sidecar"
replicas = 1
[deployment.pod]
runtime = { kind = "process", command = "@self", args = ["worker", "--announce", "notify"] }
timeout_ctrl = 2000
"#;

/// Counts words; says when its teardown runs.
struct WordCounter {
    name: String,
}

impl Runtime for WordCounter {
    type Request = String;
    type Response = usize;

    async fn setup(&mut self, ctx: &mut RuntimeContext) -> Result<(), RuntimeError> {
        self.name = ctx.name().to_owned();
        Ok(())
    }

    async fn handle(&mut self, text: String) -> Result<usize, RuntimeError> {
        Ok(text.split_whitespace().count())
    }

    async fn teardown(&mut self) {
        println!("teardown {}", self.name);
        let _ = std::io::stdout().flush();
    }
}

struct State {
    counter: Addr<Deployment<WordCounter>>,
    all: Vec<AnyDeployment>,
}

async fn count(state: web::Data<State>, body: String) -> HttpResponse {
    match state.counter.send(Route::<WordCounter>(body)).await {
        Ok(Ok(words)) => HttpResponse::Ok().json(serde_json::json!({ "words": words })),
        Ok(Err(e)) => HttpResponse::ServiceUnavailable().body(e.to_string()),
        Err(e) => HttpResponse::ServiceUnavailable().body(e.to_string()),
    }
}

async fn status(state: web::Data<State>) -> HttpResponse {
    let mut all = Vec::with_capacity(state.all.len());
    for deployment in &state.all {
        if let Some(status) = deployment.status().await {
            all.push(status);
        }
    }
    HttpResponse::Ok().json(all)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let listen = match args.as_slice() {
        [mode, rest @ ..] if mode == "worker" => examples::worker::run(rest.to_vec()),
        [] => "127.0.0.1:8080".to_owned(),
        [flag, addr] if flag == "--listen" => addr.clone(),
        [flag] if flag.starts_with("--listen=") => flag["--listen=".len()..].to_owned(),
        [flag] if flag == "--help" || flag == "-h" => {
            println!("usage: web [--listen ADDR]   (127.0.0.1:8080 by default)");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("usage: web [--listen ADDR]");
            return ExitCode::from(2);
        }
    };
    examples::logging::init();
    // Before any pod starts: pods register their metrics when they start.
    let metrics = match examples::metrics::install() {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("web: cannot install the metrics recorder: {e}");
            return ExitCode::FAILURE;
        }
    };
    match actix::System::new().block_on(serve(&listen, metrics)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("web: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(listen: &str, metrics: PrometheusHandle) -> Result<(), String> {
    let mut terminate = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let config = DeploymentsConfig::from_str(CONFIG, ConfigFormat::Toml, "the embedded config")
        .map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut counter = None;
    let mut all: Vec<AnyDeployment> = Vec::new();
    for deployment in config.deployments {
        let mut pod: PodConfig = deployment.pod;
        let any = match &mut pod.runtime {
            RuntimeSpec::Process { command, .. } => {
                *command = exe.display().to_string();
                Deployment::new(
                    deployment.name,
                    deployment.replicas,
                    pod,
                    Pod::from_process_config,
                )
                .start()
                .into()
            }
            _ => {
                let addr = Deployment::new(deployment.name, deployment.replicas, pod, |config| {
                    let factory = RuntimeFactory::new(|_| WordCounter {
                        name: String::new(),
                    });
                    Ok(Pod::new(config, factory))
                })
                .start();
                counter = Some(addr.clone());
                addr.into()
            }
        };
        all.push(any);
    }
    let counter = counter.ok_or("the config has no in-process deployment")?;
    for deployment in &all {
        if let Err(e) = deployment.start().await {
            close(&all).await;
            return Err(e.to_string());
        }
    }

    let listener =
        TcpListener::bind(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let state = web::Data::new(State {
        counter,
        all: all.clone(),
    });
    let metrics = web::Data::new(metrics);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(metrics.clone())
            .route("/count", web::post().to(count))
            .route("/status", web::get().to(status))
            .route("/metrics", web::get().to(examples::metrics::render))
    })
    .workers(1)
    // Our signals: the pods close first, then the server.
    .disable_signals()
    .listen(listener)
    .map_err(|e| e.to_string())?
    .run();
    let handle = server.handle();
    let running = actix_web::rt::spawn(server);
    println!("listening on http://{address}");
    let _ = std::io::stdout().flush();

    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    // A second signal does not wait for a close that hangs: the process
    // exits at once (the pods' children die with it: parent-death signal,
    // cgroup keeper).
    actix_web::rt::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        eprintln!("web: a second signal: exiting without waiting for the pods");
        std::process::exit(130);
    });
    // No new connections; requests in flight are answered while the pods
    // close (by a replica, or with 503 once none is left).
    handle.pause().await;
    close(&all).await;
    handle.stop(true).await;
    let _ = running.await;
    Ok(())
}

/// Closes every deployment, the last started first, and says how.
async fn close(all: &[AnyDeployment]) {
    for deployment in all.iter().rev() {
        for (pod, report) in deployment.close().await {
            let how = if report.forced { "forced" } else { "graceful" };
            println!("closed {pod}: {how}");
        }
    }
    let _ = std::io::stdout().flush();
}
