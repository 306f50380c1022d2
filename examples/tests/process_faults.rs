//! Children that misbehave: floods, closed pipes, grandchildren, noisy
//! notifications, and a child that never reads its stdin.

use std::time::{Duration, Instant};

use runtime_actor::{
    Placement, ProcessRuntime, ProcessSpec, ReadinessProbe, RuntimeConfig, RuntimeHandle,
};

mod support;

use support::alive;

const WORKER: &str = env!("CARGO_BIN_EXE_worker");
const STOP: Duration = Duration::from_secs(10);

async fn ready(spec: ProcessSpec) -> (RuntimeHandle<ProcessRuntime>, support::Events) {
    let config = RuntimeConfig::new("faulty").start_timeout(Some(Duration::from_secs(20)));
    let (runtime, mut events) = support::spawn(spec, config);
    events.until_ready().await;
    (runtime, events)
}

#[actix::test]
async fn a_child_flooding_stdout_neither_blocks_nor_grows_the_pod() {
    let spec = ProcessSpec::new(WORKER).args(["--flood-stdout"]);
    let (runtime, _events) = ready(spec).await;
    let begun = Instant::now();
    let mut answers = 0;
    while begun.elapsed() < Duration::from_millis(500) {
        let info = support::info(&runtime).await;
        assert!(info.output.len() <= 20, "the tail is bounded");
        answers += 1;
    }
    assert!(
        answers > 10,
        "the pod kept answering while the child flooded"
    );
    let last = support::info(&runtime).await.output;
    assert!(last.iter().any(|l| l.contains("flood line")), "{last:?}");
    assert!(runtime.stop(STOP).await.graceful());
}

/// The number of the last `flood line N` a pod has read.
async fn last_flood_line(runtime: &RuntimeHandle<ProcessRuntime>) -> u64 {
    support::info(runtime)
        .await
        .output
        .iter()
        .rev()
        .find_map(|line| {
            line.strip_prefix("flood line ")?
                .split(':')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

#[actix::test]
async fn a_child_flooding_stdout_yields_its_arbiter_every_few_hundred_lines() {
    // On this thread's arbiter, as a process pod's runtime is by default.
    let config = RuntimeConfig::new("flood")
        .start_timeout(Some(Duration::from_secs(20)))
        .placement(Placement::Shared(actix::Arbiter::current()));
    let spec = ProcessSpec::new(WORKER).args(["--flood-stdout"]);
    let (runtime, mut events) = support::spawn(spec, config);
    events.until_ready().await;
    // Requests to the pod from this thread are answered between the
    // reader's turns: how many lines did it read between two answers?
    let (mut before, mut most) = (last_flood_line(&runtime).await, 0);
    for _ in 0..500 {
        let now = last_flood_line(&runtime).await;
        most = most.max(now.saturating_sub(before));
        before = now;
    }
    assert!(before > 10_000, "the child flooded only {before} lines");
    // tokio's budget is 128 a turn; without it a turn ran through
    // everything buffered, tens of thousands of lines.
    assert!(most <= 512, "{most} lines between two answers");
    assert!(runtime.stop(STOP).await.graceful());
}

#[actix::test]
async fn a_child_that_closes_its_stdout_early_is_still_served_and_stopped() {
    let spec = ProcessSpec::new("/bin/sh")
        .args(["-c", "exec 1>&-; echo 'stdout closed' >&2; exec sleep 30"])
        .probe(ReadinessProbe::None);
    let (runtime, _events) = ready(spec).await;
    let pid = support::info(&runtime).await.pid;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let info = support::info(&runtime).await;
    assert!(info.output.iter().any(|l| l == "stdout closed"), "{info:?}");
    assert!(runtime.stop(STOP).await.graceful());
    assert!(!alive(pid));
}

#[actix::test]
async fn a_grandchild_does_not_outlive_the_close() {
    let spec = ProcessSpec::new(WORKER).args(["--spawn-grandchild"]);
    let (runtime, _events) = ready(spec).await;
    let mut grandchild = None;
    for _ in 0..200 {
        let info = support::info(&runtime).await;
        grandchild = info
            .output
            .iter()
            .find_map(|l| l.strip_prefix("grandchild ")?.trim().parse::<u32>().ok());
        if grandchild.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let grandchild = grandchild.expect("the worker named its grandchild");
    assert!(alive(grandchild));
    assert!(runtime.stop(STOP).await.graceful());
    for _ in 0..500 {
        if !alive(grandchild) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the grandchild {grandchild} outlived the close");
}

#[actix::test]
async fn garbage_datagrams_and_a_second_ready_change_nothing() {
    let spec = ProcessSpec::new(WORKER).args(["--notify-noise"]);
    let (runtime, mut events) = ready(spec).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(events.try_next().is_none(), "one Ready, nothing else");
    let info = support::info(&runtime).await;
    assert_eq!(info.status.as_deref(), Some("ready again"));
    assert!(runtime.stop(STOP).await.graceful());
}

#[actix::test]
async fn a_child_that_never_reads_stdin_starts_and_stops() {
    let spec = ProcessSpec::new("/bin/sleep")
        .args(["30"])
        .probe(ReadinessProbe::None);
    let (runtime, _events) = ready(spec).await;
    let pid = support::info(&runtime).await.pid;
    let report = runtime.stop(STOP).await;
    assert!(report.graceful(), "{report:?}");
    assert!(!alive(pid));
}
