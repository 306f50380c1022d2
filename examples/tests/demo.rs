//! The demo binary, run as a user would.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DEMO: &str = env!("CARGO_BIN_EXE_demo");

#[test]
fn the_default_demo_exits_zero_and_answers_every_request() {
    let output = Command::new(DEMO).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("sent = 600, answered = 600, errors = 0, restarts = 2"),
        "{stdout}"
    );
    assert!(
        stdout.contains("encoder/rep-1    FAILED: panicked at"),
        "{stdout}"
    );
    assert!(
        stdout.contains("sidecar/rep-0    FAILED: killed by signal 9"),
        "{stdout}"
    );
    assert!(stdout.contains("sent = answered"), "{stdout}");
    assert!(
        stdout.contains("sidecar: 200 of 200 answered over the request channel"),
        "{stdout}"
    );
    assert!(
        stdout.contains("SIGKILL to the child process of sidecar/rep-0, with requests in flight"),
        "{stdout}"
    );
}

#[test]
fn the_demo_logs_through_tracing_as_rust_log_asks() {
    // By default: warnings, and a caught panic as one line, no report.
    let output = Command::new(DEMO)
        .env("RUST_BACKTRACE", "1")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let panics: Vec<_> = stderr
        .lines()
        .filter(|l| l.contains("a runtime panicked; its pod catches it"))
        .collect();
    assert_eq!(panics.len(), 1, "{stderr}");
    assert!(
        panics[0].contains("WARN") && panics[0].contains("panic=asked to crash"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("stack backtrace") && !stderr.contains("thread '"),
        "{stderr}"
    );
    assert!(
        stderr.lines().any(|l| l.contains("WARN pod{pod=encoder/rep-1 generation=0}")
            && l.contains("failed")),
        "{stderr}"
    );
    assert!(
        !stderr.contains(" INFO "),
        "INFO is off by default: {stderr}"
    );

    // RUST_LOG=info: every start, Started and close, in each pod's span.
    let output = Command::new(DEMO).env("RUST_LOG", "info").output().unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for fragment in [
        "INFO pod{pod=encoder/rep-0 generation=0}: pod_actor::pod: starting",
        "INFO pod{pod=encoder/rep-1 generation=1}: pod_actor::pod: started startup_ms=",
        "INFO pod{pod=sidecar/rep-0 generation=1}: pod_actor::pod: closed forced=false",
    ] {
        assert!(stderr.contains(fragment), "{fragment:?} not in:\n{stderr}");
    }
}

#[test]
fn the_demo_serves_its_pods_metrics_when_asked() {
    let path = std::env::temp_dir().join(format!("demo-metrics-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "[[deployment]]\nname = \"counter\"\nreplicas = 2\n[deployment.pod]\nruntime = { kind = \"in-process\", name = \"word-counter\" }\n",
    )
    .unwrap();
    let mut demo = Command::new(DEMO)
        .args(["--metrics", "127.0.0.1:0"])
        .arg(&path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(demo.stdout.take().unwrap());
    let (mut seen, mut url) = (String::new(), None);
    loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "ended early: {seen}"
        );
        seen.push_str(&line);
        if let Some(at) = line.trim().strip_prefix("== metrics at ") {
            url = Some(at.to_owned());
        }
        if line.contains("Ctrl-C closes") {
            break;
        }
    }
    let url = url.unwrap_or_else(|| panic!("no metrics address in {seen}"));
    let scraped = Command::new("curl")
        .args(["--silent", "--fail", "--max-time", "10", &url])
        .output()
        .expect("curl is installed (.ci/run installs it)");
    let metrics = String::from_utf8_lossy(&scraped.stdout);
    assert!(
        metrics.contains(r#"pod_state{pod="counter/rep-1",state="running"} 1"#),
        "{metrics}"
    );
    let pid = nix::unistd::Pid::from_raw(demo.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    stdout.read_to_string(&mut seen).unwrap();
    assert!(demo.wait().unwrap().success(), "{seen}");
    let _ = std::fs::remove_file(path);
}

#[test]
fn a_config_file_runs_until_ctrl_c_then_closes_gracefully() {
    let path = std::env::temp_dir().join(format!("demo-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        r#"
[[deployment]]
name = "counter"
replicas = 2

[deployment.pod]
runtime = { kind = "in-process", name = "word-counter" }
"#,
    )
    .unwrap();
    let mut demo = Command::new(DEMO)
        .arg(&path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(demo.stdout.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "ended early: {seen}"
        );
        seen.push_str(&line);
        if line.contains("Ctrl-C closes") {
            break;
        }
    }
    assert!(seen.contains("counter/rep-1"), "{seen}");
    let pid = nix::unistd::Pid::from_raw(demo.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    stdout.read_to_string(&mut seen).unwrap();
    assert!(demo.wait().unwrap().success(), "{seen}");
    assert!(seen.contains("closed counter/rep-1: graceful"), "{seen}");
    assert!(seen.contains("closed counter/rep-0: graceful"), "{seen}");
    let _ = std::fs::remove_file(path);
}

#[test]
fn a_bad_config_is_a_clear_error() {
    let path = std::env::temp_dir().join(format!("demo-bad-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "[[deployment]]\nname = \"x\"\nreplicas = 1\n[deployment.pod]\nruntime = { kind = \"in-process\", name = \"nope\" }\ntimeout_ctrl = 0\n",
    )
    .unwrap();
    let output = Command::new(DEMO).arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("`deployment[0].pod.timeout_ctrl`"),
        "{stderr}"
    );
    let _ = std::fs::remove_file(path);
}

#[test]
fn help_explains_the_two_modes_and_shows_a_complete_config() {
    let output = Command::new(DEMO).arg("--help").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert!(
        stdout.contains("Usage: demo [OPTIONS] [CONFIG]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Without CONFIG") && stdout.contains("With CONFIG"),
        "{stdout}"
    );
    // The config in the help is the embedded default, whole, and it loads.
    let printed = Command::new(DEMO).arg("--print-config").output().unwrap();
    assert!(printed.status.success());
    let config = String::from_utf8(printed.stdout).unwrap();
    assert!(stdout.contains(config.trim()), "{stdout}");
    pod_actor::deployment::DeploymentsConfig::from_str(
        &config,
        pod_actor::ConfigFormat::Toml,
        "--print-config",
    )
    .unwrap();
    // A wrong option says so, with exit 2.
    let wrong = Command::new(DEMO).arg("--bogus").output().unwrap();
    assert_eq!(wrong.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("unexpected argument '--bogus'"));
}

#[test]
fn ctrl_c_during_the_start_closes_what_started_and_exits_interrupted_issue_12() {
    let dir = std::env::temp_dir().join(format!("demo-slow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("slow.toml");
    std::fs::write(
        &path,
        r#"
[[deployment]]
name = "slow"
replicas = 1

[deployment.pod]
runtime = { kind = "process", command = "@self", args = ["worker", "--announce", "notify", "--startup-delay-ms", "60000"] }
timeout_ready = 120000
timeout_ctrl = 2000
"#,
    )
    .unwrap();
    let mut demo = Reaped(
        Command::new(DEMO)
            .arg(&path)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // The worker is running, still in its (minute-long) start.
    let deadline = Instant::now() + Duration::from_secs(30);
    let workers = loop {
        let (live, _) = support::children_of(demo.0.id());
        if !live.is_empty() {
            break live;
        }
        assert!(Instant::now() < deadline, "the worker never started");
        std::thread::sleep(Duration::from_millis(20));
    };
    let pid = nix::unistd::Pid::from_raw(demo.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let mut seen = String::new();
    demo.0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut seen)
        .unwrap();
    let status = demo.0.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen}");
    assert!(seen.contains("interrupted while starting"), "{seen}");
    for worker in workers {
        assert!(!support::alive(worker), "worker {worker} outlived the demo");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Kills and reaps the child if a test fails before it ended.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn a_huge_replica_count_is_refused_before_anything_is_made_issue_12() {
    for replicas in ["1000000", "9223372036854775807"] {
        let path =
            std::env::temp_dir().join(format!("demo-huge-{}-{replicas}.toml", std::process::id()));
        std::fs::write(
            &path,
            format!(
                "[[deployment]]\nname = \"many\"\nreplicas = {replicas}\n[deployment.pod]\nruntime = {{ kind = \"in-process\", name = \"word-counter\" }}\n"
            ),
        )
        .unwrap();
        let output = Command::new(DEMO).arg(&path).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{replicas}: {stderr}");
        assert!(
            stderr.contains("`deployment[0].replicas`") && stderr.contains("must be at most 4096"),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        let _ = std::fs::remove_file(path);
    }
}

#[test]
fn a_deeply_nested_config_is_a_clear_error_not_a_crash_issue_12() {
    let path = std::env::temp_dir().join(format!("demo-deep-{}.toml", std::process::id()));
    let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    std::fs::write(&path, format!("x = {deep}\n")).unwrap();
    let output = Command::new(DEMO).arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("nesting depth"), "{stderr}");
    let _ = std::fs::remove_file(path);
}

#[test]
fn many_deployments_are_refused_by_their_total_and_pod_errors_name_the_key_issue_12() {
    let dir = std::env::temp_dir().join(format!("demo-total-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let one = |i: usize| {
        format!("[[deployment]]\nname = \"d{i}\"\nreplicas = 4000\n[deployment.pod]\nruntime = {{ kind = \"in-process\", name = \"word-counter\" }}\n")
    };
    let cases = [
        (
            (0..3).map(one).collect::<String>(),
            "`deployment[1].replicas` in",
        ),
        (
            "[[deployment]]\nname = \"p\"\nreplicas = 1\n[deployment.pod]\nruntime = { kind = \"process\", command = \"@self\", probe = { address = \"127.0.0.1:1\" } }\n".to_owned(),
            "invalid `deployment[0].pod.runtime.probe.kind`",
        ),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let path = dir.join(format!("{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let output = Command::new(DEMO).arg(&path).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
    }
    let _ = std::fs::remove_dir_all(dir);
}
