//! A pod's start → `Started`, restart after a panic → next `Started`, and a
//! `Call` through the pod, each beside the same work done with bare actix in
//! the same run.
//!
//! `cargo bench -p pod-actor --bench pod`; with `CI` set the samples are
//! fewer and shorter.

// criterion_group! generates undocumented public functions.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use actix::{Actor, Addr, Arbiter, Context, Handler, Message, System};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pod_actor::{
    Call, Close, PlacementKind, Pod, PodConfig, RuntimeSpec, Start, Started, Subscribe,
};
use runtime_actor::{
    Placement, Runtime, RuntimeActor, RuntimeConfig, RuntimeContext, RuntimeError, RuntimeFactory,
};
use tokio::sync::mpsc;

struct Echo;

impl Runtime for Echo {
    type Request = u64;
    type Response = u64;

    async fn setup(&mut self, _: &mut RuntimeContext) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn handle(&mut self, req: u64) -> Result<u64, RuntimeError> {
        if req == u64::MAX {
            panic!("asked to fail");
        }
        Ok(req + 1)
    }
}

struct Bare;

impl Actor for Bare {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "u64")]
struct Ping(u64);

impl Handler<Ping> for Bare {
    type Result = u64;

    fn handle(&mut self, Ping(n): Ping, _: &mut Context<Self>) -> u64 {
        n + 1
    }
}

struct Probe(mpsc::UnboundedSender<Started>);

impl Actor for Probe {
    type Context = Context<Self>;
}

impl Handler<Started> for Probe {
    type Result = ();

    fn handle(&mut self, started: Started, _: &mut Context<Self>) {
        let _ = self.0.send(started);
    }
}

fn pod_config(placement: PlacementKind) -> PodConfig {
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

/// Starts a pod and waits for its `Started` through a subscriber.
async fn started_pod(
    placement: PlacementKind,
) -> (
    Addr<Pod<Echo>>,
    Addr<Probe>,
    mpsc::UnboundedReceiver<Started>,
) {
    let pod = Pod::new(pod_config(placement), RuntimeFactory::new(|_| Echo)).start();
    let (tx, rx) = mpsc::unbounded_channel();
    let probe = Probe(tx).start();
    pod.send(Subscribe(probe.clone().recipient()))
        .await
        .unwrap();
    pod.send(Start).await.unwrap().unwrap();
    let mut rx = rx;
    rx.recv().await.unwrap();
    (pod, probe, rx)
}

fn config() -> Criterion {
    // The restart bench panics on purpose every iteration; printing each
    // panic (with a backtrace when RUST_BACKTRACE is set) would be most of
    // what it measured. The pods' own hook chains to this one.
    std::panic::set_hook(Box::new(|_| {}));
    let c = Criterion::default();
    if std::env::var_os("CI").is_some() {
        c.sample_size(10)
            .measurement_time(Duration::from_millis(500))
            .warm_up_time(Duration::from_millis(200))
    } else {
        c
    }
}

fn start(c: &mut Criterion) {
    let system = System::new();
    let mut group = c.benchmark_group("pod_start_to_started");
    for (label, placement) in [
        ("dedicated", PlacementKind::Dedicated),
        ("same_arbiter", PlacementKind::Shared),
    ] {
        group.bench_function(format!("pod_{label}"), |b| {
            b.iter_custom(|iters| {
                system.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let begun = Instant::now();
                        let (pod, _probe, _rx) = started_pod(placement).await;
                        total += begun.elapsed();
                        pod.send(Close::default()).await.unwrap();
                    }
                    total
                })
            })
        });
    }
    group.bench_function("bare_new_arbiter_round_trip", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let begun = Instant::now();
                    let arbiter = Arbiter::new();
                    let addr = Bare::start_in_arbiter(&arbiter.handle(), |_| Bare);
                    addr.send(Ping(1)).await.unwrap();
                    total += begun.elapsed();
                    arbiter.stop();
                    let _ = arbiter.join();
                }
                total
            })
        })
    });
    group.bench_function("bare_same_arbiter_round_trip", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let begun = Instant::now();
                for _ in 0..iters {
                    Bare.start().send(Ping(1)).await.unwrap();
                }
                begun.elapsed()
            })
        })
    });
    group.finish();
}

fn restart(c: &mut Criterion) {
    let system = System::new();
    let mut group = c.benchmark_group("pod_restart_to_started");
    for (label, placement) in [
        ("dedicated", PlacementKind::Dedicated),
        ("same_arbiter", PlacementKind::Shared),
    ] {
        let (pod, probe, rx) = system.block_on(started_pod(placement));
        let mut rx = Some(rx);
        group.bench_function(format!("panic_zero_backoff_{label}"), |b| {
            b.iter_custom(|iters| {
                let mut events = rx.take().unwrap();
                let pod = pod.clone();
                let (total, events) = system.block_on(async move {
                    let begun = Instant::now();
                    for _ in 0..iters {
                        let _ = pod.send(Call::<Echo>(u64::MAX)).await;
                        events.recv().await.unwrap();
                    }
                    (begun.elapsed(), events)
                });
                rx = Some(events);
                total
            })
        });
        drop(probe);
    }
    group.finish();
}

fn call(c: &mut Criterion) {
    let system = System::new();
    let mut group = c.benchmark_group("call");
    group.throughput(Throughput::Elements(1));
    let (pod, _probe, _rx) = system.block_on(started_pod(PlacementKind::Shared));
    group.bench_function("through_pod_same_arbiter", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let begun = Instant::now();
                for n in 0..iters {
                    pod.send(Call::<Echo>(n)).await.unwrap().unwrap();
                }
                begun.elapsed()
            })
        })
    });
    let runtime = system.block_on(async {
        let runtime = RuntimeActor::spawn(
            RuntimeConfig::new("direct").placement(Placement::Shared(Arbiter::current())),
            RuntimeFactory::new(|_| Echo),
        );
        runtime.ready().await.unwrap();
        runtime
    });
    group.bench_function("direct_to_runtime_actor_same_arbiter", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let begun = Instant::now();
                for n in 0..iters {
                    runtime.call(n).await.unwrap();
                }
                begun.elapsed()
            })
        })
    });
    group.finish();
}

criterion_group! {
    name = pod;
    config = config();
    targets = start, restart, call
}
criterion_main!(pod);
