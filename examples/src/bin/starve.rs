//! `starve`: starts pods under a lowered open-file limit and says how each
//! start ended, and whether anything panicked.
//!
//! `cargo run -p examples --bin starve -- dedicated|shared|process PODS LIMIT`
//!
//! `dedicated` and `shared` start in-process pods on that placement;
//! `process` starts process pods (`/bin/sleep`, ready once spawned) on a
//! shared arbiter, each needing a notify socket and pipes.
//!
//! It prints one line, `started=N failed=N panics=N children_left=N
//! first_error=...` (children of this process still running or unreaped
//! once every pod is closed), and
//! exits non-zero if anything panicked. The descriptor-exhaustion test runs
//! it: a service that runs out of descriptors must get a typed error for
//! each pod that cannot start, never a panic.

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::Addr;
use actix::{Actor, System};
use futures::future::join_all;
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use pod_actor::{
    Close, PlacementKind, Pod, PodConfig, ProbeConfig, RuntimeSpec, Start, WaitStartSuccess,
};
use runtime_actor::{Runtime, RuntimeContext, RuntimeError, RuntimeFactory};

struct Idle;

impl Runtime for Idle {
    type Request = ();
    type Response = ();

    async fn setup(&mut self, _: &mut RuntimeContext) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn handle(&mut self, (): ()) -> Result<(), RuntimeError> {
        Ok(())
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, pods, limit] = args.as_slice() else {
        eprintln!("usage: starve dedicated|shared|process PODS LIMIT");
        return ExitCode::from(2);
    };
    let (Ok(pods), Ok(limit)) = (pods.parse::<usize>(), limit.parse::<u64>()) else {
        eprintln!("starve: PODS and LIMIT are numbers");
        return ExitCode::from(2);
    };
    if !matches!(mode.as_str(), "dedicated" | "shared" | "process") {
        eprintln!("starve: unknown mode {mode:?}");
        return ExitCode::from(2);
    }
    let hard = getrlimit(Resource::RLIMIT_NOFILE).map_or(limit, |(_, hard)| hard);
    if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, limit, hard) {
        eprintln!("starve: cannot lower the open-file limit: {e}");
        return ExitCode::FAILURE;
    }
    let panics = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&panics);
    std::panic::set_hook(Box::new(move |info| {
        counted.fetch_add(1, Ordering::SeqCst);
        eprintln!("starve: panic: {info}");
    }));
    let mode = mode.clone();
    let (started, failed, first_error) = System::new().block_on(async move {
        match mode.as_str() {
            "process" => {
                let pods = (0..pods).filter_map(|i| {
                    let mut runtime = RuntimeSpec::process("/bin/sleep").with_args(["30"]);
                    if let RuntimeSpec::Process { probe, .. } = &mut runtime {
                        *probe = ProbeConfig::None;
                    }
                    let mut config = PodConfig::new(format!("starved-{i}"), runtime);
                    config.placement = PlacementKind::Shared;
                    Pod::from_process_config(config).ok().map(Actor::start)
                });
                start_all(pods.collect()).await
            }
            placement => {
                let placement = match placement {
                    "dedicated" => PlacementKind::Dedicated,
                    _ => PlacementKind::Shared,
                };
                let pods = (0..pods).map(|i| {
                    let runtime = RuntimeSpec::InProcess {
                        name: "idle".into(),
                    };
                    let mut config = PodConfig::new(format!("starved-{i}"), runtime);
                    config.placement = placement;
                    Pod::new(config, RuntimeFactory::new(|_| Idle)).start()
                });
                start_all(pods.collect()).await
            }
        }
    });
    let panics = panics.load(Ordering::SeqCst);
    let children = children_left();
    println!(
        "started={started} failed={failed} panics={panics} children_left={children} first_error={}",
        first_error.unwrap_or_default()
    );
    if panics == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Starts every pod, waits for each start to end, closes them all, and
/// counts `(started, failed, first error)`.
async fn start_all<R: Runtime>(pods: Vec<Addr<Pod<R>>>) -> (usize, usize, Option<String>) {
    for pod in &pods {
        pod.do_send(Start);
    }
    let outcomes = join_all(pods.iter().map(|pod| pod.send(WaitStartSuccess))).await;
    let (mut started, mut failed, mut first_error) = (0, 0, None);
    for outcome in outcomes {
        match outcome {
            Ok(Ok(_)) => started += 1,
            Ok(Err(e)) => {
                failed += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
            Err(e) => {
                failed += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    join_all(pods.iter().map(|pod| pod.send(Close::default()))).await;
    (started, failed, first_error)
}

/// How many children of this process are still running or unreaped: a
/// zombie is counted (and reaped), a running child counts once.
fn children_left() -> usize {
    use nix::errno::Errno;
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let mut left = 0;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Err(Errno::ECHILD) => return left,
            Ok(WaitStatus::StillAlive) | Err(_) => return left + 1,
            Ok(_) => left += 1,
        }
    }
}
