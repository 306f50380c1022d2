//! The actix-web example, end to end: started on 127.0.0.1, driven with a
//! real HTTP client (curl), scraped for metrics, then sent SIGTERM: every
//! pod closes gracefully, every runtime's teardown runs, and no child
//! process is left.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

const WEB: &str = env!("CARGO_BIN_EXE_web");

fn curl(args: &[&str]) -> String {
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "--fail", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl is installed (.ci/run installs it)");
    assert!(
        output.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Kills the service if the test fails before it ended.
struct Service(std::process::Child);

impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn the_service_serves_reports_and_closes_every_pod_on_sigterm() {
    let mut service = Service(
        Command::new(WEB)
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut stdout = BufReader::new(service.0.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();

    // A route into the deployment.
    let answer = curl(&["--data", "pods on actix", &format!("{base}/count")]);
    assert_eq!(answer, r#"{"words":3}"#);

    // One status view over the in-process and the process deployment.
    let status: serde_json::Value =
        serde_json::from_str(&curl(&[&format!("{base}/status")])).unwrap();
    let deployments = status.as_array().unwrap();
    assert_eq!(deployments.len(), 2, "{status}");
    let replicas: Vec<&serde_json::Value> = deployments
        .iter()
        .flat_map(|d| d["replicas"].as_array().unwrap())
        .collect();
    assert_eq!(replicas.len(), 3);
    assert!(replicas.iter().all(|r| r["state"] == "running"), "{status}");
    assert!(replicas.iter().all(|r| r["uptime_ms"].is_f64()), "{status}");
    assert_eq!(deployments[0]["supervisor"]["phase"], "running", "{status}");
    let sidecar = replicas[2]["pid"].as_u64().expect("the sidecar's pid") as u32;
    assert!(support::alive(sidecar));

    // Metrics, scraped over HTTP in Prometheus text format.
    let metrics = curl(&[&format!("{base}/metrics")]);
    for expected in [
        r#"pod_state{pod="counter/rep-0",state="running"} 1"#,
        r#"pod_state{pod="sidecar/rep-0",state="running"} 1"#,
        r#"pod_restarts_total{pod="counter/rep-1"} 0"#,
        "# TYPE pod_call_seconds summary",
        r#"pod_startup_seconds_count{pod="sidecar/rep-0"} 1"#,
    ] {
        assert!(
            metrics.contains(expected),
            "{expected:?} not in:\n{metrics}"
        );
    }

    // SIGTERM: the pods close before the server and the System stop.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(service.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(service.0.wait().unwrap().success(), "{rest}");
    for expected in [
        "teardown counter/rep-0",
        "teardown counter/rep-1",
        "closed sidecar/rep-0: graceful",
        "closed counter/rep-1: graceful",
        "closed counter/rep-0: graceful",
    ] {
        assert!(rest.contains(expected), "{expected:?} not in:\n{rest}");
    }
    let sidecar_closed = rest.find("closed sidecar/rep-0").unwrap();
    assert!(
        sidecar_closed < rest.find("closed counter/rep-1").unwrap(),
        "reverse start order: {rest}"
    );
    assert!(
        !support::alive(sidecar),
        "the sidecar's process outlived the service"
    );
}
