//! `starve`: starts pods under a lowered open-file limit and says how each
//! start ended, and whether anything panicked.
//!
//! `cargo run -p examples --bin starve -- dedicated|shared PODS LIMIT`
//!
//! It prints one line, `started=N failed=N panics=N first_error=...`, and
//! exits non-zero if anything panicked. The descriptor-exhaustion test runs
//! it: a service that runs out of descriptors must get a typed error for
//! each pod that cannot start, never a panic.

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::{Actor, System};
use futures::future::join_all;
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use pod_actor::{Close, PlacementKind, Pod, PodConfig, RuntimeSpec, Start, WaitStartSuccess};
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
    let (placement, pods, limit) = match args.as_slice() {
        [placement, pods, limit] => {
            let placement = match placement.as_str() {
                "dedicated" => PlacementKind::Dedicated,
                "shared" => PlacementKind::Shared,
                other => {
                    eprintln!("starve: unknown placement {other:?}");
                    return ExitCode::from(2);
                }
            };
            match (pods.parse::<usize>(), limit.parse::<u64>()) {
                (Ok(pods), Ok(limit)) => (placement, pods, limit),
                _ => {
                    eprintln!("starve: PODS and LIMIT are numbers");
                    return ExitCode::from(2);
                }
            }
        }
        _ => {
            eprintln!("usage: starve dedicated|shared PODS LIMIT");
            return ExitCode::from(2);
        }
    };
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
    let (started, failed, first_error) = System::new().block_on(async move {
        let pods: Vec<_> = (0..pods)
            .map(|i| {
                let mut config = PodConfig::new(
                    format!("starved-{i}"),
                    RuntimeSpec::InProcess {
                        name: "idle".into(),
                    },
                );
                config.placement = placement;
                let pod = Pod::new(config, RuntimeFactory::new(|_| Idle)).start();
                pod.do_send(Start);
                pod
            })
            .collect();
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
    });
    let panics = panics.load(Ordering::SeqCst);
    println!(
        "started={started} failed={failed} panics={panics} first_error={}",
        first_error.unwrap_or_default()
    );
    if panics == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
