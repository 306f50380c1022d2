//! The process runtime with real child processes (the `worker` binary), on
//! loopback only. These run on the real clock: the children do.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use runtime_actor::{
    FailureCause, ProcessRequest, ProcessRuntime, ProcessSpec, ReadinessProbe, RuntimeConfig,
    RuntimeEvent, RuntimeHandle,
};

mod support;

use support::{alive, gone, spawn};

const WORKER: &str = env!("CARGO_BIN_EXE_worker");
const STOP: Duration = Duration::from_secs(10);

fn config() -> RuntimeConfig {
    RuntimeConfig::new("worker-pod").start_timeout(Some(Duration::from_secs(20)))
}

fn worker(args: &[&str]) -> ProcessSpec {
    ProcessSpec::new(WORKER).args(args.iter().copied())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn pid_of(runtime: &RuntimeHandle<ProcessRuntime>) -> u32 {
    support::info(runtime).await.pid
}

// ===== readiness =====

#[actix::test]
async fn each_probe_kind_reaches_ready() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let cases = [
        ("notify", worker(&["--announce", "notify"])),
        (
            "stdout",
            worker(&["--announce", "stdout"]).probe(ReadinessProbe::Stdout {
                pattern: "ready and listening".into(),
            }),
        ),
        (
            "tcp",
            worker(&[
                "--announce",
                "none",
                "--listen",
                &listen,
                "--startup-delay-ms",
                "200",
            ])
            .probe(ReadinessProbe::Tcp {
                address: listen.clone(),
                interval: Duration::from_millis(20),
                timeout: Duration::from_secs(1),
            }),
        ),
        (
            "http",
            worker(&[
                "--announce",
                "none",
                "--listen",
                &listen,
                "--startup-delay-ms",
                "200",
            ])
            .probe(ReadinessProbe::Http {
                url: format!("http://{listen}/"),
                interval: Duration::from_millis(20),
                timeout: Duration::from_secs(1),
            }),
        ),
        (
            "none",
            worker(&["--announce", "none"]).probe(ReadinessProbe::None),
        ),
    ];
    for (kind, spec) in cases {
        let (runtime, mut events) = spawn(spec, config());
        match events.next().await {
            RuntimeEvent::Ready { pid, .. } => assert!(pid.is_some(), "{kind}: no pid"),
            other => panic!("{kind}: expected Ready, got {other:?}"),
        }
        let pid = pid_of(&runtime).await;
        assert!(alive(pid), "{kind}");
        let report = runtime.stop(STOP).await;
        assert!(report.graceful(), "{kind}: {report:?}");
        assert!(!alive(pid), "{kind}: the child outlived its stop");
    }
}

#[actix::test]
async fn the_status_line_is_kept() {
    let (runtime, mut events) = spawn(worker(&[]), config());
    assert!(matches!(events.next().await, RuntimeEvent::Ready { .. }));
    let info = support::info(&runtime).await;
    assert!(info.status.unwrap().starts_with("listening on 127.0.0.1:"));
    runtime.stop(STOP).await;
}

#[actix::test]
async fn extend_timeout_lets_a_slow_starter_pass_its_deadline() {
    let slow = ["--startup-delay-ms", "1500"];
    let short = config().start_timeout(Some(Duration::from_millis(700)));
    let (_runtime, mut events) = spawn(worker(&slow), short.clone());
    assert!(matches!(
        events.until_failed().await,
        FailureCause::TimedOut { .. }
    ));

    let extended = worker(&["--startup-delay-ms", "1500", "--extend-timeout-ms", "10000"]);
    let (runtime, mut events) = spawn(extended, short);
    loop {
        match events.next().await {
            RuntimeEvent::Progressed { .. } => continue,
            RuntimeEvent::Ready { setup, .. } => {
                assert!(setup >= Duration::from_millis(1500));
                break;
            }
            other => panic!("expected Ready after the extension, got {other:?}"),
        }
    }
    runtime.stop(STOP).await;
}

#[actix::test]
async fn a_missed_watchdog_fails_the_runtime() {
    let spec = worker(&["--watchdog", "--stop-watchdog-after-ms", "300"])
        .watchdog(Duration::from_millis(400));
    let (_runtime, mut events) = spawn(spec, config());
    assert!(matches!(events.next().await, RuntimeEvent::Ready { .. }));
    match events.until_failed().await {
        FailureCause::Unhealthy { reason } => assert!(reason.contains("WATCHDOG"), "{reason}"),
        other => panic!("expected a watchdog failure, got {other:?}"),
    }
}

#[actix::test]
async fn a_fed_watchdog_keeps_the_runtime() {
    let spec = worker(&["--watchdog"]).watchdog(Duration::from_millis(300));
    let (runtime, mut events) = spawn(spec, config());
    assert!(matches!(events.next().await, RuntimeEvent::Ready { .. }));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(events.try_next().is_none(), "no failure while fed");
    assert!(runtime.stop(STOP).await.graceful());
}

#[actix::test]
async fn a_datagram_from_another_process_is_ignored() {
    let (runtime, mut events) = spawn(worker(&["--hang-startup"]), config());
    let pid = child_with_arg("--hang-startup").await;
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let path = environ
        .split(|&b| b == 0)
        .find_map(|var| var.strip_prefix(b"NOTIFY_SOCKET="))
        .map(|path| std::path::PathBuf::from(String::from_utf8_lossy(path).into_owned()))
        .expect("the child got NOTIFY_SOCKET");
    // This test process is not the child: its READY=1 must not count.
    let stranger = std::os::unix::net::UnixDatagram::unbound().unwrap();
    stranger.send_to(b"READY=1\n", &path).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(events.try_next().is_none(), "a stranger's READY=1 counted");
    assert!(alive(pid));
    runtime.stop(STOP).await;
}

/// The pid of this process's child whose command line has `arg`.
async fn child_with_arg(arg: &str) -> u32 {
    for _ in 0..500 {
        let (live, _) = support::children();
        let found = live.into_iter().find(|&pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|line| line.split(|&b| b == 0).any(|a| a == arg.as_bytes()))
        });
        if let Some(pid) = found {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("no child with {arg} appeared");
}

// ===== exits =====

fn echo(port_of: &str, lines: usize) {
    let mut stream = TcpStream::connect(port_of).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    for n in 0..lines {
        // The worker may crash after any answer: a closed pipe ends this.
        if writeln!(stream, "line {n}").is_err() {
            return;
        }
        let mut answer = String::new();
        if reader.read_line(&mut answer).unwrap_or(0) == 0 {
            return;
        }
    }
}

async fn address_of(runtime: &RuntimeHandle<ProcessRuntime>) -> String {
    let status = support::info(runtime).await.status.unwrap();
    status.trim_start_matches("listening on ").to_owned()
}

#[actix::test]
async fn exits_are_classified() {
    /// Worker args, what to do once ready, expected code and signal.
    type Case = (
        &'static [&'static str],
        &'static str,
        Option<i32>,
        Option<i32>,
    );
    let cases: [Case; 4] = [
        (&["--exit-after-ms", "100"], "wait", Some(0), None),
        (
            &["--crash-after", "1", "--crash-signal", "exit"],
            "echo",
            Some(3),
            None,
        ),
        (
            &["--crash-after", "1", "--crash-signal", "segv"],
            "echo",
            None,
            Some(11),
        ),
        (&[], "sigkill", None, Some(9)),
    ];
    for (args, action, code, signal) in cases {
        let (runtime, mut events) = spawn(worker(args), config());
        assert!(matches!(events.next().await, RuntimeEvent::Ready { .. }));
        match action {
            "echo" => {
                let address = address_of(&runtime).await;
                tokio::task::spawn_blocking(move || echo(&address, 2))
                    .await
                    .unwrap();
            }
            "sigkill" => {
                runtime.call(ProcessRequest::Signal(9)).await.unwrap();
            }
            _ => {}
        }
        match events.until_failed().await {
            FailureCause::Exited {
                code: c, signal: s, ..
            } => assert_eq!((c, s), (code, signal), "{args:?}"),
            other => panic!("{args:?}: expected Exited, got {other:?}"),
        }
        events.until_exited().await;
    }
}

#[actix::test]
async fn a_child_that_ignores_sigterm_is_killed_after_the_stop_timeout() {
    let (runtime, mut events) = spawn(worker(&["--ignore-sigterm"]), config());
    assert!(matches!(events.next().await, RuntimeEvent::Ready { .. }));
    let pid = pid_of(&runtime).await;
    let report = runtime.stop(Duration::from_millis(300)).await;
    assert!(report.forced && !report.stuck, "{report:?}");
    assert!(report.took >= Duration::from_millis(300));
    assert!(gone(pid).await, "the child survived its forced stop");
}

#[actix::test]
async fn a_missing_executable_is_a_clear_error_naming_it() {
    let (_runtime, mut events) = spawn(ProcessSpec::new("/nonexistent/bin/executor"), config());
    match events.until_failed().await {
        FailureCause::Error(e) => {
            let message = e.to_string();
            assert!(message.contains("/nonexistent/bin/executor"), "{message}");
            assert!(message.contains("No such file or directory"), "{message}");
        }
        other => panic!("expected a spawn error, got {other:?}"),
    }
}

#[actix::test]
async fn spawn_failures_name_the_os_error() {
    let not_executable = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let cases = [
        (ProcessSpec::new(not_executable), "Permission denied"),
        (
            worker(&[]).cwd("/nonexistent/workspace"),
            "in `/nonexistent/workspace`: No such file or directory",
        ),
    ];
    for (spec, expected) in cases {
        let (_runtime, mut events) = spawn(spec, config());
        match events.until_failed().await {
            FailureCause::Error(e) => {
                let message = e.to_string();
                assert!(message.contains(expected), "{message}");
                assert!(message.starts_with("cannot start `"), "{message}");
            }
            other => panic!("expected a spawn error, got {other:?}"),
        }
    }
}

#[actix::test]
async fn a_start_failure_carries_the_tail_of_stderr() {
    let (_runtime, mut events) = spawn(worker(&["--fail-startup", "3"]), config());
    match events.until_failed().await {
        FailureCause::Exited { code, output, .. } => {
            assert_eq!(code, Some(3));
            assert!(
                output.iter().any(|l| l.contains("weights.bin missing")),
                "{output:?}"
            );
        }
        other => panic!("expected Exited with output, got {other:?}"),
    }
}

#[actix::test]
async fn the_pod_env_reaches_the_child_and_the_parent_env_is_untouched() {
    let spec = ProcessSpec::new("/bin/sh")
        .args(["-c", "echo \"model=$MODEL\"; exec sleep 30"])
        .clean_env()
        .probe(ReadinessProbe::Stdout {
            pattern: "model=clip".into(),
        });
    let env = [("MODEL", "clip")].into_iter().collect();
    let (runtime, mut events) = spawn(spec, config().env(env));
    assert!(matches!(events.next().await, RuntimeEvent::Ready { .. }));
    assert!(std::env::var_os("MODEL").is_none());
    runtime.stop(STOP).await;
}

#[actix::test]
async fn no_zombie_after_two_hundred_start_crash_cycles() {
    for generation in 0..200 {
        let spec = worker(&["--announce", "none"]).probe(ReadinessProbe::None);
        let (runtime, mut events) = spawn(spec, config().generation(generation));
        assert!(matches!(events.next().await, RuntimeEvent::Ready { .. }));
        runtime.call(ProcessRequest::Signal(9)).await.unwrap();
        events.until_failed().await;
        events.until_exited().await;
    }
    let mut zombies = support::children().1;
    for _ in 0..100 {
        if zombies.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        zombies = support::children().1;
    }
    assert!(zombies.is_empty(), "zombies left: {zombies:?}");
}

#[actix::test]
async fn killing_the_parent_with_sigkill_leaves_no_child_alive() {
    let mut parent = std::process::Command::new(env!("CARGO_BIN_EXE_parent"))
        .args([WORKER, "--announce", "none"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(parent.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let child: u32 = line
        .trim()
        .parse()
        .expect("the parent printed its child's pid");
    assert!(alive(child));
    parent.kill().unwrap();
    parent.wait().unwrap();
    assert!(gone(child).await, "the child outlived its SIGKILLed parent");
}

/// The lines a running child wrote before it ended are read before its end
/// is told: the last one is in the cause, without its newline, even behind
/// a flood that takes the reader many turns after the exit.
#[actix::test]
async fn an_exit_is_told_after_the_last_lines_are_read() {
    let spec = ProcessSpec::new("/bin/sh")
        .args(["-c", "sleep 0.2; seq 1 50000; printf 'last words'; exit 3"])
        .probe(ReadinessProbe::None)
        .output_lines(1);
    let (_runtime, mut events) = spawn(spec, config());
    events.until_ready().await;
    match events.until_failed().await {
        FailureCause::Exited {
            code: Some(3),
            output,
            ..
        } => assert_eq!(output, ["last words"]),
        other => panic!("expected Exited with code 3, got {other:?}"),
    }
    events.until_exited().await;
}
