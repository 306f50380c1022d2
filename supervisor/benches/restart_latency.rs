//! Restart latency (child reports failure → restarted child ready) of
//! `pod_supervisor::Supervisor` with zero backoff, one-for-one, against actix's
//! own `actix::Supervisor` in the same run; and the cost of supervising many
//! children (time to start them all in order, memory per child, and adding
//! then removing them one by one in start order, reverse order and a
//! shuffled order, at two sizes: a per-child cost that grows with the size
//! would be a quadratic path).
//!
//! Run with `cargo bench -p supervisor`. With `CI` set, the workload shrinks
//! from 10,000 to 1,000 children and the measurement is shorter.

use std::time::{Duration, Instant};

use actix::{Actor, ActorContext, Addr, Context, Handler, Message, Supervised, System};
use criterion::{criterion_main, Criterion, Throughput};
use futures::channel::mpsc;
use futures::StreamExt;
use pod_supervisor::{
    Backoff, ChildReporter, ChildSpec, ChildStopped, ChildVerdict, Intensity, RestartChild,
    StartChild, StopChild, Supervisor, SupervisorConfig,
};

fn ci() -> bool {
    std::env::var_os("CI").is_some()
}

fn children() -> usize {
    if ci() {
        1_000
    } else {
        10_000
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Crash;

// ===== a child of our supervisor =====

struct Child {
    reporter: Option<ChildReporter>,
    started: mpsc::UnboundedSender<()>,
}

impl Actor for Child {
    type Context = Context<Self>;
}

impl Child {
    fn ready(&mut self, reporter: ChildReporter) {
        reporter.ready();
        self.reporter = Some(reporter);
        let _ = self.started.unbounded_send(());
    }
}

impl Handler<StartChild> for Child {
    type Result = ();

    fn handle(&mut self, msg: StartChild, _: &mut Context<Self>) {
        self.ready(msg.reporter);
    }
}

impl Handler<RestartChild> for Child {
    type Result = ();

    fn handle(&mut self, msg: RestartChild, _: &mut Context<Self>) {
        self.ready(msg.reporter);
    }
}

impl Handler<StopChild> for Child {
    type Result = ChildStopped;

    fn handle(&mut self, _: StopChild, _: &mut Context<Self>) -> ChildStopped {
        ChildStopped::Gracefully
    }
}

impl Handler<ChildVerdict> for Child {
    type Result = ();

    fn handle(&mut self, _: ChildVerdict, _: &mut Context<Self>) {}
}

impl Handler<Crash> for Child {
    type Result = ();

    fn handle(&mut self, _: Crash, _: &mut Context<Self>) {
        if let Some(reporter) = &self.reporter {
            reporter.failed("crash");
        }
    }
}

// ===== an actor under actix::Supervisor =====

struct ActixChild {
    started: mpsc::UnboundedSender<()>,
}

impl Actor for ActixChild {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        let _ = self.started.unbounded_send(());
    }
}

impl Supervised for ActixChild {}

impl Handler<Crash> for ActixChild {
    type Result = ();

    fn handle(&mut self, _: Crash, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

fn unlimited() -> SupervisorConfig {
    SupervisorConfig::default()
        .with_backoff(Backoff::immediate())
        .with_intensity(Intensity::new(u32::MAX, Duration::from_nanos(1)))
}

async fn ours(iters: u64) -> Duration {
    let (tx, mut started) = mpsc::unbounded();
    let child = Child {
        reporter: None,
        started: tx,
    }
    .start();
    let sup = Supervisor::new(unlimited())
        .unwrap()
        .with_child(ChildSpec::new("child", &child))
        .unwrap()
        .start();
    started.next().await;
    let t0 = Instant::now();
    for _ in 0..iters {
        child.do_send(Crash);
        started.next().await;
    }
    let elapsed = t0.elapsed();
    drop(sup);
    elapsed
}

async fn actix_baseline(iters: u64) -> Duration {
    let (tx, mut started) = mpsc::unbounded();
    let addr = actix::Supervisor::start(move |_| ActixChild { started: tx });
    started.next().await;
    let t0 = Instant::now();
    for _ in 0..iters {
        addr.do_send(Crash);
        started.next().await;
    }
    t0.elapsed()
}

fn spawn_children(n: usize) -> (Vec<Addr<Child>>, mpsc::UnboundedReceiver<()>) {
    let (tx, rx) = mpsc::unbounded();
    let addrs = (0..n)
        .map(|_| {
            Child {
                reporter: None,
                started: tx.clone(),
            }
            .start()
        })
        .collect();
    (addrs, rx)
}

fn supervisor_of(addrs: &[Addr<Child>]) -> Supervisor {
    addrs
        .iter()
        .enumerate()
        .fold(Supervisor::new(unlimited()).unwrap(), |sup, (i, addr)| {
            sup.with_child(ChildSpec::new(format!("child-{i}"), addr))
                .unwrap()
        })
}

async fn start_all(n: usize) -> Duration {
    let (addrs, mut started) = spawn_children(n);
    let sup = supervisor_of(&addrs);
    let t0 = Instant::now();
    let sup = sup.start();
    for _ in 0..n {
        started.next().await;
    }
    let elapsed = t0.elapsed();
    drop(sup);
    elapsed
}

/// The order in which children are removed.
#[derive(Debug, Clone, Copy)]
enum Order {
    Start,
    Reverse,
    Shuffled,
}

/// Adds `n` children one by one (each ready before the next), then removes
/// them one by one in `order`; the time of both.
async fn add_then_remove(n: usize, order: Order) -> Duration {
    let (addrs, _started) = spawn_children(n);
    let sup = Supervisor::new(unlimited()).unwrap().start();
    let t0 = Instant::now();
    for (i, addr) in addrs.iter().enumerate() {
        let spec = ChildSpec::new(format!("child-{i}"), addr);
        let _ = sup.send(pod_supervisor::AddChild(spec)).await;
    }
    let mut ids: Vec<usize> = (0..n).collect();
    match order {
        Order::Start => {}
        Order::Reverse => ids.reverse(),
        Order::Shuffled => fastrand::Rng::with_seed(n as u64).shuffle(&mut ids),
    }
    for i in ids {
        let id = format!("child-{i}");
        let _ = sup.send(pod_supervisor::RemoveChild { id }).await;
    }
    t0.elapsed()
}

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // Linux x86-64 page size.
    Some(pages * 4096)
}

async fn memory_report(n: usize) {
    let Some(before) = rss_bytes() else {
        eprintln!("memory: /proc/self/statm unavailable");
        return;
    };
    let (addrs, mut started) = spawn_children(n);
    let children = rss_bytes().unwrap_or(before);
    let sup = supervisor_of(&addrs).start();
    for _ in 0..n {
        started.next().await;
    }
    let supervised = rss_bytes().unwrap_or(children);
    let (tx, mut actix_started) = mpsc::unbounded();
    let actix_addrs: Vec<_> = (0..n)
        .map(|_| {
            let tx = tx.clone();
            actix::Supervisor::start(move |_| ActixChild { started: tx })
        })
        .collect();
    for _ in 0..n {
        actix_started.next().await;
    }
    let with_actix = rss_bytes().unwrap_or(supervised);
    let per = |delta: u64| delta as f64 / n as f64;
    eprintln!(
        "memory, {n} children: child actor {:.0} B each; supervision by pod_supervisor::Supervisor \
         {:.0} B per child; an actor under actix::Supervisor {:.0} B each (RSS deltas)",
        per(children.saturating_sub(before)),
        per(supervised.saturating_sub(children)),
        per(with_actix.saturating_sub(supervised)),
    );
    drop((sup, addrs, actix_addrs));
}

fn restart_latency(c: &mut Criterion) {
    let mut group = c.benchmark_group("restart_latency");
    group.throughput(Throughput::Elements(1));
    group.bench_function("supervisor_one_for_one_zero_backoff", |b| {
        b.iter_custom(|iters| System::new().block_on(ours(iters)));
    });
    group.bench_function("actix_supervisor", |b| {
        b.iter_custom(|iters| System::new().block_on(actix_baseline(iters)));
    });
    group.finish();
}

fn supervise_many(c: &mut Criterion) {
    let n = children();
    System::new().block_on(memory_report(n));
    let mut group = c.benchmark_group("supervise_many");
    group.throughput(Throughput::Elements(n as u64));
    group.sample_size(10);
    group.bench_function(format!("ordered_start_{n}"), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| System::new().block_on(start_all(n)))
                .sum()
        });
    });
    group.finish();

    let mut group = c.benchmark_group("add_then_remove");
    group.sample_size(10);
    for size in [n / 10, n] {
        group.throughput(Throughput::Elements(size as u64));
        for order in [Order::Start, Order::Reverse, Order::Shuffled] {
            group.bench_function(format!("{order:?}_{size}"), |b| {
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| System::new().block_on(add_then_remove(size, order)))
                        .sum()
                });
            });
        }
    }
    group.finish();
}

fn config() -> Criterion {
    let (warm_up, measure) = if ci() {
        (Duration::from_millis(100), Duration::from_millis(500))
    } else {
        (Duration::from_millis(500), Duration::from_secs(2))
    };
    Criterion::default()
        .sample_size(20)
        .warm_up_time(warm_up)
        .measurement_time(measure)
}

/// The group entry point (generated by criterion).
mod group {
    #![allow(missing_docs)]

    use super::{config, restart_latency, supervise_many};
    use criterion::criterion_group;

    criterion_group! {
        name = benches;
        config = config();
        targets = restart_latency, supervise_many
    }
}

criterion_main!(group::benches);
