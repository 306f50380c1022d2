//! A process pod's start → `Started` beside a raw `tokio::process` spawn of
//! the same worker that reads the same ready announcement, and a process
//! pod's restart after SIGKILL, in one run.
//!
//! `cargo bench -p examples --bench process`; with `CI` set the samples are
//! fewer and shorter.

// criterion_group! generates undocumented public functions.
#![allow(missing_docs)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use actix::{Actor, Addr, System};
use criterion::{criterion_group, criterion_main, Criterion};
use pod_actor::{Call, Close, ConfigFormat, Pod, PodConfig, Start, WaitStartSuccess};
use runtime_actor::{ProcessRequest, ProcessRuntime};
use tokio::io::{AsyncBufReadExt, BufReader};

const WORKER: &str = env!("CARGO_BIN_EXE_worker");

fn config(probe: &str) -> PodConfig {
    let (announce, probe) = match probe {
        "stdout" => (
            "stdout",
            r#"{ kind = "stdout", pattern = "ready and listening" }"#,
        ),
        _ => ("notify", r#"{ kind = "notify" }"#),
    };
    let text = format!(
        r#"
name = "bench"
[restart]
max_restarts = 1000000
[restart.backoff]
initial = 0
jitter = 0.0
[runtime]
kind = "process"
command = "{WORKER}"
args = ["--announce", "{announce}"]
probe = {probe}
"#
    );
    PodConfig::from_str_with_env(&text, ConfigFormat::Toml, "bench", &Default::default()).unwrap()
}

async fn started_pod(probe: &str) -> Addr<Pod<ProcessRuntime>> {
    let pod = Pod::from_process_config(config(probe)).unwrap().start();
    pod.send(Start).await.unwrap().unwrap();
    pod.send(WaitStartSuccess).await.unwrap().unwrap();
    pod
}

fn criterion() -> Criterion {
    let c = Criterion::default();
    if std::env::var_os("CI").is_some() {
        c.sample_size(10)
            .measurement_time(Duration::from_secs(1))
            .warm_up_time(Duration::from_millis(200))
    } else {
        c.sample_size(30)
    }
}

fn start(c: &mut Criterion) {
    let system = System::new();
    let mut group = c.benchmark_group("process_start_to_ready");
    for probe in ["stdout", "notify"] {
        group.bench_function(format!("pod_{probe}_probe"), |b| {
            b.iter_custom(|iters| {
                system.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let begun = Instant::now();
                        let pod = started_pod(probe).await;
                        total += begun.elapsed();
                        pod.send(Close::default()).await.unwrap();
                    }
                    total
                })
            })
        });
    }
    group.bench_function("raw_tokio_spawn_read_stdout_line", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let begun = Instant::now();
                    let mut child = tokio::process::Command::new(WORKER)
                        .args(["--announce", "stdout"])
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped())
                        .spawn()
                        .unwrap();
                    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
                    while let Some(line) = lines.next_line().await.unwrap() {
                        if line.contains("ready and listening") {
                            break;
                        }
                    }
                    total += begun.elapsed();
                    child.kill().await.unwrap();
                }
                total
            })
        })
    });
    group.finish();
}

fn restart(c: &mut Criterion) {
    let system = System::new();
    let mut group = c.benchmark_group("process_restart_after_sigkill");
    let pod = system.block_on(started_pod("notify"));
    group.bench_function("pod_zero_backoff", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let begun = Instant::now();
                for _ in 0..iters {
                    let before = pod.send(WaitStartSuccess).await.unwrap().unwrap();
                    pod.send(Call(ProcessRequest::Signal(9)))
                        .await
                        .unwrap()
                        .unwrap();
                    // The kill is observed asynchronously: wait for the next
                    // generation's Started.
                    loop {
                        let now = pod.send(WaitStartSuccess).await.unwrap().unwrap();
                        if now.generation != before.generation {
                            break;
                        }
                        tokio::task::yield_now().await;
                    }
                }
                begun.elapsed()
            })
        })
    });
    system.block_on(pod.send(Close::default())).unwrap();
    group.finish();
}

criterion_group! {
    name = process;
    config = criterion();
    targets = start, restart
}
criterion_main!(process);
