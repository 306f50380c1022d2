//! A runtime actor's start → ready and request round trip, each beside a bare
//! actix actor doing the same work in the same run.
//!
//! `cargo bench -p runtime-actor --bench runtime_actor`; with `CI` set the
//! samples are fewer and shorter.

// criterion_group! generates undocumented public functions.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use actix::{Actor, Arbiter, ArbiterHandle, Context, Handler, Message, Recipient, System};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use runtime_actor::{
    Placement, Runtime, RuntimeActor, RuntimeConfig, RuntimeContext, RuntimeError, RuntimeEvent,
    RuntimeFactory, RuntimeHandle,
};
use tokio::sync::mpsc;

// ===== the runtime and its bare twin =====

struct Echo;

impl Runtime for Echo {
    type Request = u64;
    type Response = u64;

    async fn setup(&mut self, _: &mut RuntimeContext) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn handle(&mut self, req: u64) -> Result<u64, RuntimeError> {
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

struct Probe(mpsc::UnboundedSender<RuntimeEvent>);

impl Actor for Probe {
    type Context = Context<Self>;
}

impl Handler<RuntimeEvent> for Probe {
    type Result = ();

    fn handle(&mut self, event: RuntimeEvent, _: &mut Context<Self>) {
        let _ = self.0.send(event);
    }
}

async fn spawn_ready(
    placement: Placement,
    watcher: &Recipient<RuntimeEvent>,
    events: &mut mpsc::UnboundedReceiver<RuntimeEvent>,
) -> RuntimeHandle<Echo> {
    let runtime = RuntimeActor::spawn(
        RuntimeConfig::new("bench")
            .placement(placement)
            .watcher(watcher.clone()),
        RuntimeFactory::new(|_| Echo),
    );
    loop {
        if let Some(RuntimeEvent::Ready { .. }) = events.recv().await {
            return runtime;
        }
    }
}

async fn stop(runtime: RuntimeHandle<Echo>, events: &mut mpsc::UnboundedReceiver<RuntimeEvent>) {
    runtime.stop(Duration::from_secs(5)).await;
    while let Some(event) = events.recv().await {
        if let RuntimeEvent::Exited { .. } = event {
            break;
        }
    }
}

fn join(arbiter: Arbiter) {
    arbiter.stop();
    let _ = arbiter.join();
}

// ===== benches =====

fn config() -> Criterion {
    let c = Criterion::default();
    if std::env::var_os("CI").is_some() {
        c.sample_size(10)
            .measurement_time(Duration::from_millis(500))
            .warm_up_time(Duration::from_millis(200))
    } else {
        c
    }
}

fn start_to_ready(c: &mut Criterion) {
    let system = System::new();
    let mut group = c.benchmark_group("start_to_ready");

    group.bench_function("runtime_dedicated", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let (tx, mut events) = mpsc::unbounded_channel();
                let watcher = Probe(tx).start().recipient();
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let begun = Instant::now();
                    let runtime = spawn_ready(Placement::Dedicated, &watcher, &mut events).await;
                    total += begun.elapsed();
                    stop(runtime, &mut events).await;
                }
                total
            })
        })
    });
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
                    join(arbiter);
                }
                total
            })
        })
    });

    group.bench_function("runtime_same_arbiter", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let (tx, mut events) = mpsc::unbounded_channel();
                let watcher = Probe(tx).start().recipient();
                let here = Placement::Shared(Arbiter::current());
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let begun = Instant::now();
                    let runtime = spawn_ready(here.clone(), &watcher, &mut events).await;
                    total += begun.elapsed();
                    stop(runtime, &mut events).await;
                }
                total
            })
        })
    });
    group.bench_function("bare_same_arbiter_round_trip", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let begun = Instant::now();
                    let addr = Bare.start();
                    addr.send(Ping(1)).await.unwrap();
                    total += begun.elapsed();
                }
                total
            })
        })
    });
    group.finish();
}

fn round_trip(c: &mut Criterion) {
    let system = System::new();
    let mut group = c.benchmark_group("round_trip");
    group.throughput(Throughput::Elements(1));

    for (label, dedicated) in [("dedicated", true), ("same_arbiter", false)] {
        let (runtime, bare, arbiter) = system.block_on(async {
            let (tx, mut events) = mpsc::unbounded_channel();
            let watcher = Probe(tx).start().recipient();
            let arbiter = dedicated.then(Arbiter::new);
            let handle: ArbiterHandle = arbiter
                .as_ref()
                .map(Arbiter::handle)
                .unwrap_or_else(Arbiter::current);
            let runtime =
                spawn_ready(Placement::Shared(handle.clone()), &watcher, &mut events).await;
            let bare = Bare::start_in_arbiter(&handle, |_| Bare);
            (runtime, bare, arbiter)
        });
        group.bench_function(format!("runtime_call_{label}"), |b| {
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
        group.bench_function(format!("bare_send_{label}"), |b| {
            b.iter_custom(|iters| {
                system.block_on(async {
                    let begun = Instant::now();
                    for n in 0..iters {
                        bare.send(Ping(n)).await.unwrap();
                    }
                    begun.elapsed()
                })
            })
        });
        system.block_on(runtime.stop(Duration::from_secs(5)));
        if let Some(arbiter) = arbiter {
            join(arbiter);
        }
    }
    group.finish();
}

criterion_group! {
    name = runtime_actor;
    config = config();
    targets = start_to_ready, round_trip
}
criterion_main!(runtime_actor);
