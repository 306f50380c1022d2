//! `parent`: starts one process runtime running the given command, prints the
//! child's pid on stdout once it is ready, and then waits for ever. With
//! `--config FILE`, starts the pod a TOML config describes (a process or a
//! container) and prints its pid once `Started`.
//!
//! `cargo run -p examples --bin parent -- /path/to/worker --announce none`
//! `cargo run -p examples --bin parent -- --config pod.toml`
//!
//! The tests that kill a pod's owner with SIGKILL run it, kill it, and
//! check what survived. It never ends by itself.

use std::io::Write;
use std::process::ExitCode;

use runtime_actor::{
    ProcessRequest, ProcessResponse, ProcessRuntime, ProcessSpec, RuntimeActor, RuntimeConfig,
};

#[actix::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(command) = args.next() else {
        eprintln!("usage: parent COMMAND [ARGS...] | parent --config FILE");
        return ExitCode::from(2);
    };
    if command == "--config" {
        let Some(path) = args.next() else {
            eprintln!("usage: parent --config FILE");
            return ExitCode::from(2);
        };
        return run_config(&path).await;
    }
    let spec = ProcessSpec::new(command)
        .args(args)
        .probe(runtime_actor::ReadinessProbe::None);
    let runtime = RuntimeActor::spawn(RuntimeConfig::new("parent"), ProcessRuntime::factory(spec));
    if let Err(e) = runtime.ready().await {
        eprintln!("parent: the child did not start: {e}");
        return ExitCode::FAILURE;
    }
    match runtime.call(ProcessRequest::Info).await {
        Ok(ProcessResponse::Info(info)) => {
            println!("{}", info.pid);
            let _ = std::io::stdout().flush();
        }
        Ok(other) => {
            eprintln!("parent: expected the process information, got {other:?}");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("parent: {e}");
            return ExitCode::FAILURE;
        }
    }
    std::future::pending::<ExitCode>().await
}

/// Starts the pod of the config at `path`, prints its pid once `Started`,
/// and waits for ever.
async fn run_config(path: &str) -> ExitCode {
    use actix::Actor;
    use pod_actor::{ConfigFormat, Pod, PodConfig, StartAndWait};

    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("parent: cannot read {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config =
        match PodConfig::from_str_with_env(&text, ConfigFormat::Toml, path, &Default::default()) {
            Ok(config) => config,
            Err(e) => {
                eprintln!("parent: {e}");
                return ExitCode::FAILURE;
            }
        };
    let pod = match Pod::from_process_config(config) {
        Ok(pod) => pod.start(),
        Err(e) => {
            eprintln!("parent: {e}");
            return ExitCode::FAILURE;
        }
    };
    match pod.send(StartAndWait).await {
        Ok(Ok(started)) => {
            println!("{}", started.pid.unwrap_or(0));
            let _ = std::io::stdout().flush();
        }
        Ok(Err(e)) => {
            eprintln!("parent: the pod did not start: {e}");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("parent: {e}");
            return ExitCode::FAILURE;
        }
    }
    std::future::pending::<ExitCode>().await
}
