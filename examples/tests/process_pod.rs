//! Pods whose runtime is an OS child process, configured from a file's text.

use std::time::Duration;

use actix::Actor;
use pod_actor::{
    Call, Close, ConfigFormat, GetStatus, Join, Pod, PodConfig, PodError, PodState, Start,
    WaitStartSuccess,
};
use runtime_actor::{FailureCause, ProcessRequest};

const WORKER: &str = env!("CARGO_BIN_EXE_worker");

fn config(policy: &str, args: &[&str]) -> PodConfig {
    let args: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
    let text = format!(
        r#"
name = "worker-pod"
timeout_ready = 20000
timeout_ctrl = 2000

[env]
POD_GREETING = "hello"

[restart]
policy = "{policy}"
max_restarts = 5

[restart.backoff]
initial = 0
jitter = 0.0

[runtime]
kind = "process"
command = "{WORKER}"
args = [{}]
"#,
        args.join(", ")
    );
    PodConfig::from_str_with_env(&text, ConfigFormat::Toml, "test", &Default::default()).unwrap()
}

#[actix::test]
async fn a_process_pod_starts_reports_its_pid_and_closes() {
    let pod = Pod::from_process_config(config("permanent", &[]))
        .unwrap()
        .start();
    pod.send(Start).await.unwrap().unwrap();
    let started = pod.send(WaitStartSuccess).await.unwrap().unwrap();
    let pid = started.pid.expect("a process pod reports its pid");
    let status = pod.send(GetStatus).await.unwrap();
    assert_eq!((status.state, status.pid), (PodState::Running, Some(pid)));
    let info = pod
        .send(Call(ProcessRequest::Info))
        .await
        .unwrap()
        .unwrap()
        .into_info()
        .unwrap();
    assert_eq!(info.pid, pid);
    let report = pod.send(Close::default()).await.unwrap();
    assert!(report.graceful(), "{report:?}");
    assert!(pod.send(Join).await.unwrap().is_ok());
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}/cmdline")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z"))
    );
}

#[actix::test]
async fn a_killed_child_is_restarted_by_a_permanent_pod() {
    let pod = Pod::from_process_config(config("permanent", &[]))
        .unwrap()
        .start();
    pod.send(Start).await.unwrap().unwrap();
    let first = pod.send(WaitStartSuccess).await.unwrap().unwrap();
    pod.send(Call(ProcessRequest::Signal(9)))
        .await
        .unwrap()
        .unwrap();
    // The kill is seen asynchronously; once it is, a waiter waits for the
    // next Started. Bounded: a child that is never restarted fails the test.
    let mut second = first.clone();
    for _ in 0..500 {
        second = pod.send(WaitStartSuccess).await.unwrap().unwrap();
        if second.generation != first.generation {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!((second.generation, second.restarts), (1, 1));
    assert_ne!(second.pid, first.pid);
    let status = pod.send(GetStatus).await.unwrap();
    let last_failure = status.last_failure.unwrap();
    assert!(
        last_failure.starts_with("killed by signal 9"),
        "{last_failure}"
    );
    pod.send(Close::default()).await.unwrap();
}

#[actix::test]
async fn a_transient_pod_whose_child_exits_zero_is_not_restarted() {
    let pod = Pod::from_process_config(config("transient", &["--exit-after-ms", "200"]))
        .unwrap()
        .start();
    pod.send(Start).await.unwrap().unwrap();
    pod.send(WaitStartSuccess).await.unwrap().unwrap();
    // Join resolves when the pod ends, with why when it did not end by a close.
    assert!(matches!(
        pod.send(Join).await.unwrap(),
        Err(PodError::ExitedEarly { .. })
    ));
    match pod.send(WaitStartSuccess).await.unwrap() {
        Err(PodError::ExitedEarly {
            cause: Some(FailureCause::Exited { code: Some(0), .. }),
        }) => {}
        other => panic!("expected ExitedEarly with code 0, got {other:?}"),
    }
    assert_eq!(pod.send(GetStatus).await.unwrap().restarts, 0);
}

#[actix::test]
async fn a_child_failing_at_start_fails_the_pod_with_its_output() {
    let pod = Pod::from_process_config(config("permanent", &["--fail-startup", "3"]))
        .unwrap()
        .start();
    pod.send(Start).await.unwrap().unwrap();
    match pod.send(WaitStartSuccess).await.unwrap() {
        Err(e @ PodError::FailedToStart { .. }) => assert_eq!(
            e.to_string(),
            "runtime failed to start: exited with code 3; last 3 lines of output:\n    \
             loading config\n    opening weights.bin\n    cannot load model: weights.bin missing"
        ),
        other => panic!("expected FailedToStart, got {other:?}"),
    }
}

#[test]
fn an_in_process_constructor_refuses_a_process_config() {
    let registry = pod_actor::RuntimeRegistry::<runtime_actor::ProcessRuntime>::new();
    let err = Pod::from_config(config("permanent", &[]), &registry).unwrap_err();
    assert_eq!(
        err.to_string(),
        "this pod needs `runtime.kind = \"in-process\"`"
    );
}
