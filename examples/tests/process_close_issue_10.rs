//! A process pod closed (or timed out) while its child is still starting
//! stops it the graceful way: the child gets SIGTERM, runs its trap, and
//! the close is reported graceful. Run with `/bin/sh`, a real program with a
//! TERM trap, not the project's worker.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use actix::Actor;
use pod_actor::{Close, ConfigFormat, Pod, PodConfig, PodError, Start, WaitStartSuccess};
use support::TempDir;

/// A shell that says it is up, never prints the ready line, and writes
/// `term` to `$MARK` when it gets SIGTERM.
fn config(dir: &Path, timeout_ready: i64) -> PodConfig {
    let script =
        r#"trap 'echo term > "$MARK"; exit 0' TERM; echo up > "$UP"; while :; do sleep 0.02; done"#;
    let text = format!(
        r#"
name = "sh-pod"
timeout_ready = {timeout_ready}
timeout_ctrl = 5000

[env]
MARK = "{mark}"
UP = "{up}"

[runtime]
kind = "process"
command = "/bin/sh"
args = ["-c", {script:?}]

[runtime.probe]
kind = "stdout"
pattern = "never printed"
"#,
        mark = dir.join("mark").display(),
        up = dir.join("up").display(),
    );
    PodConfig::from_str_with_env(&text, ConfigFormat::Toml, "test", &Default::default()).unwrap()
}

async fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[actix::test]
async fn close_during_a_process_start_sends_sigterm_and_is_graceful() {
    let dir = TempDir::new();
    let pod = Pod::from_process_config(config(&dir.0, 20_000))
        .unwrap()
        .start();
    pod.send(Start).await.unwrap().unwrap();
    wait_for(&dir.0.join("up")).await;
    let report = pod.send(Close::default()).await.unwrap();
    assert!(report.graceful(), "{report:?}");
    let mark = std::fs::read_to_string(dir.0.join("mark")).unwrap();
    assert_eq!(mark.trim(), "term");
}

#[actix::test]
async fn a_start_timeout_stops_the_process_with_sigterm_first() {
    let dir = TempDir::new();
    let pod = Pod::from_process_config(config(&dir.0, 500))
        .unwrap()
        .start();
    pod.send(Start).await.unwrap().unwrap();
    match pod.send(WaitStartSuccess).await.unwrap() {
        Err(PodError::Timeout { .. }) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
    let mark = std::fs::read_to_string(dir.0.join("mark")).unwrap();
    assert_eq!(mark.trim(), "term");
}
