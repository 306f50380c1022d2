//! Container pods on podman (issue 16): the project's worker in a container
//! built from a root filesystem directory (a static busybox, the worker and
//! its libraries mounted read-only), with no registry. Readiness by notify
//! through `--sdnotify=container` and by a tcp probe on a published port;
//! a SIGKILLed container restarted as a new one; close, restart and a dead
//! owner leave no container behind; start failures read with the engine's
//! and the child's last lines.
//!
//! Each test runs where podman can run a container here, and prints one
//! line saying why it is skipped where it cannot. `.ci/run` installs podman,
//! runc and busybox-static, so on CI they run.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use actix::{Actor, Addr};
use pod_actor::{Call, Close, ConfigFormat, Pod, PodConfig, Start, Started, WaitStartSuccess};
use runtime_actor::{ContainerInfo, ProcessRequest, ProcessRuntime};
use support::TempDir;

const WORKER: &str = env!("CARGO_BIN_EXE_worker");
const PARENT: &str = env!("CARGO_BIN_EXE_parent");
const LABEL_POD: &str = "io.pod-actor.pod";

type ContainerPod = Addr<Pod<ProcessRuntime>>;

/// The worker in a root filesystem of a static busybox (mounted read-only,
/// with its libraries).
struct Rootfs(examples::rootfs::Rootfs);

impl Rootfs {
    fn build() -> Result<Rootfs, String> {
        examples::rootfs::Rootfs::build(Path::new(WORKER), "/bin/worker").map(Rootfs)
    }

    fn path(&self) -> PathBuf {
        self.0.path().to_owned()
    }

    /// A pod config: the worker in this root filesystem.
    fn config(&self, name: &str, extra: &str, args: &[&str]) -> String {
        let args: Vec<String> = args.iter().map(|s| format!("{s:?}")).collect();
        format!(
            r#"
name = {name:?}
timeout_ready = 20000
timeout_ctrl = 5000
[runtime]
{runtime}command = "/bin/worker"
args = [{args}]
{extra}
[restart]
max_restarts = 5
backoff = {{ initial = 0, jitter = 0.0 }}
"#,
            runtime = self.0.runtime_toml(),
            args = args.join(", "),
        )
    }
}

/// Whether podman can run a container here: the reason when it cannot.
fn engine() -> Result<(), &'static str> {
    static CHECK: OnceLock<Result<(), String>> = OnceLock::new();
    let check = CHECK.get_or_init(|| Rootfs::build()?.0.check_engine());
    check.as_ref().map(|_| ()).map_err(String::as_str)
}

macro_rules! require_engine {
    () => {
        if let Err(why) = engine() {
            println!("skipped: {why}");
            return;
        }
    };
}

fn container_pod(toml: &str) -> ContainerPod {
    let config =
        PodConfig::from_str_with_env(toml, ConfigFormat::Toml, "test", &Default::default())
            .unwrap_or_else(|e| panic!("{e}\n{toml}"));
    Pod::from_process_config(config).unwrap().start()
}

async fn started(pod: &ContainerPod) -> Started {
    pod.send(Start).await.unwrap().unwrap();
    pod.send(WaitStartSuccess).await.unwrap().unwrap()
}

/// Why the pod's start failed, in words.
async fn start_error(pod: &ContainerPod) -> String {
    pod.send(Start).await.unwrap().unwrap();
    let err = pod.send(WaitStartSuccess).await.unwrap();
    err.expect_err("the start was to fail").to_string()
}

async fn container(pod: &ContainerPod) -> ContainerInfo {
    let info = pod
        .send(Call::<ProcessRuntime>(ProcessRequest::Info))
        .await
        .unwrap()
        .unwrap()
        .into_info()
        .unwrap();
    *info
        .container
        .expect("a container pod's info names its container")
}

/// The containers labelled for pod `name`, running or not.
fn containers_of(name: &str) -> Vec<String> {
    // By the label's key, the value compared here: podman's filter splits
    // values on commas.
    let format = format!("{{{{.Names}}}}\t{{{{index .Labels \"{LABEL_POD}\"}}}}");
    let out = Command::new("podman")
        .args(["ps", "--all", "--format", &format, "--filter"])
        .arg(format!("label={LABEL_POD}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .filter(|(_, pod)| *pod == name)
        .map(|(container, _)| container.to_owned())
        .collect()
}

/// A pod name no other test (or earlier run) uses.
fn unique(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

/// Removes what a failed test left, by label.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for name in containers_of(&self.0) {
            let _ = Command::new("podman")
                .args(["rm", "--force", "--time", "0", &name])
                .output();
        }
    }
}

fn kill9(pid: u32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

#[actix::test]
async fn a_container_pod_is_ready_by_notify_and_closes_leaving_nothing() {
    require_engine!();
    let rootfs = Rootfs::build().unwrap();
    let name = unique("notify");
    let _cleanup = Cleanup(name.clone());
    let pod = container_pod(&rootfs.config(&name, "", &[]));
    let started = started(&pod).await;

    let info = container(&pod).await;
    assert!(info.name.starts_with(&format!("{name}-")), "{info:?}");
    let id = info.id.clone().expect("the container's id, after ready");
    // Started carries the container's main process, as the host sees it:
    // the worker.
    let pid = started.pid.expect("a pid in Started");
    assert_eq!(info.main_pid, Some(pid));
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(exe.ends_with("worker"), "{exe:?}");
    assert_eq!(containers_of(&name), vec![info.name.clone()]);

    let report = pod.send(Close::default()).await.unwrap();
    assert!(!report.forced, "{report:?}");
    assert!(containers_of(&name).is_empty(), "the container was removed");
    assert!(support::gone(pid).await, "its process is gone");
    let inspect = Command::new("podman")
        .args(["inspect", &id])
        .output()
        .unwrap();
    assert!(!inspect.status.success(), "podman still knows {id}");
}

#[actix::test]
async fn a_tcp_probe_reaches_a_published_port() {
    require_engine!();
    let rootfs = Rootfs::build().unwrap();
    let name = unique("tcp");
    let _cleanup = Cleanup(name.clone());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let extra = format!(
        "ports = [\"{port}:7000\"]\nprobe = {{ kind = \"tcp\", address = \"127.0.0.1:{port}\" }}"
    );
    let pod = container_pod(&rootfs.config(
        &name,
        &extra,
        &["--announce", "none", "--listen", "0.0.0.0:7000"],
    ));
    started(&pod).await;
    let info = container(&pod).await;
    assert_eq!(info.ports.len(), 1);
    assert_eq!(
        info.ports[0].to_string(),
        format!("127.0.0.1:{port}:7000/tcp")
    );
    // The worker echoes a line over the published port.
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::io::Write::write_all(&mut stream, b"hello\n").unwrap();
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line).unwrap();
    assert_eq!(line, "hello\n");
    pod.send(Close::default()).await.unwrap();
    assert!(containers_of(&name).is_empty());
}

#[actix::test]
async fn a_killed_container_is_restarted_as_a_new_one() {
    require_engine!();
    let rootfs = Rootfs::build().unwrap();
    let name = unique("restart");
    let _cleanup = Cleanup(name.clone());
    let pod = container_pod(&rootfs.config(&name, "", &[]));
    let first = started(&pod).await;
    let before = container(&pod).await;
    kill9(first.pid.unwrap());

    let mut again = None;
    for _ in 0..400 {
        match pod.send(WaitStartSuccess).await.unwrap() {
            Ok(started) if started.generation > first.generation => {
                again = Some(started);
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let again = again.expect("the pod started again within 20 s");
    let after = container(&pod).await;
    assert_ne!(after.name, before.name);
    assert_ne!(after.id, before.id);
    assert_ne!(again.pid, first.pid);
    // The killed one was removed, not left exited.
    assert_eq!(containers_of(&name), vec![after.name.clone()]);
    pod.send(Close::default()).await.unwrap();
    assert!(containers_of(&name).is_empty());
}

#[actix::test]
async fn what_a_dead_owner_left_is_removed_before_the_next_start() {
    require_engine!();
    let rootfs = Rootfs::build().unwrap();
    let name = unique("leftover");
    let _cleanup = Cleanup(name.clone());
    let dir = TempDir::new();
    let config = dir.path("pod.toml");
    std::fs::write(&config, rootfs.config(&name, "", &[])).unwrap();

    // An owner process runs the pod, and is SIGKILLed: its container stays.
    let mut owner = Command::new(PARENT)
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(owner.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    if line.trim().is_empty() {
        let mut said = String::new();
        owner
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut said)
            .unwrap();
        panic!("the owner's pod did not start: {said}");
    }
    owner.kill().unwrap();
    owner.wait().unwrap();
    let left = containers_of(&name);
    assert_eq!(
        left.len(),
        1,
        "the dead owner's container is left: {left:?}"
    );

    // The next owner of a pod of that name removes it, and says so.
    let pod = container_pod(&rootfs.config(&name, "", &[]));
    started(&pod).await;
    let info = container(&pod).await;
    assert_eq!(info.leftovers_removed, 1);
    assert_eq!(containers_of(&name), vec![info.name.clone()]);
    pod.send(Close::default()).await.unwrap();
    assert!(containers_of(&name).is_empty());
}

#[actix::test]
async fn start_failures_say_why() {
    require_engine!();
    let rootfs = Rootfs::build().unwrap();

    // A root filesystem that is not there: said before the engine runs.
    let name = unique("norootfs");
    let missing = rootfs
        .config(&name, "", &[])
        .replace(&rootfs.path().display().to_string(), "/nonexistent/rootfs");
    let pod = container_pod(&missing);
    let text = start_error(&pod).await;
    assert!(
        text.contains("/nonexistent/rootfs") && text.contains("No such file"),
        "{text}"
    );

    // An image the engine does not have: never pulled, said at once.
    let name = unique("noimage");
    let _cleanup = Cleanup(name.clone());
    let config = rootfs.config(&name, "", &[]).replace(
        &format!("rootfs = {:?}", rootfs.path().display().to_string()),
        "image = \"localhost/no-such-image:1\"",
    );
    let pod = container_pod(&config);
    let text = start_error(&pod).await;
    assert!(text.contains("no-such-image"), "{text}");
    assert!(containers_of(&name).is_empty());

    // A command that fails: its exit code and last lines.
    let name = unique("failing");
    let _cleanup = Cleanup(name.clone());
    let pod = container_pod(&rootfs.config(&name, "", &["--fail-startup", "3"]));
    let text = start_error(&pod).await;
    assert!(
        text.contains("code 3") || text.contains("status 3"),
        "{text}"
    );
    assert!(text.contains("weights.bin missing"), "{text}");
    assert!(
        containers_of(&name).is_empty(),
        "the failed container was removed"
    );

    // A command that is not in the image: the engine's own words.
    let name = unique("nocommand");
    let _cleanup = Cleanup(name.clone());
    let config = rootfs.config(&name, "", &[]).replace(
        "command = \"/bin/worker\"",
        "command = \"/bin/no-such-program\"",
    );
    let pod = container_pod(&config);
    let text = start_error(&pod).await;
    assert!(text.contains("no-such-program"), "{text}");
    assert!(containers_of(&name).is_empty());
}

#[actix::test]
async fn a_port_taken_on_the_host_and_a_missing_engine_say_so() {
    // No engine at all: said before anything runs (no podman needed).
    let toml = "name = \"noengine\"\n[runtime]\nkind = \"container\"\nimage = \"x\"\n\
                engine = \"/nonexistent/podman\"\n";
    let pod = container_pod(toml);
    let text = start_error(&pod).await;
    assert!(
        text.contains("container engine `/nonexistent/podman` does not exist"),
        "{text}"
    );

    require_engine!();
    let rootfs = Rootfs::build().unwrap();
    let name = unique("porttaken");
    let _cleanup = Cleanup(name.clone());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let pod = container_pod(&rootfs.config(&name, &format!("ports = [\"{port}:7000\"]"), &[]));
    let text = start_error(&pod).await;
    assert!(text.contains("address already in use"), "{text}");
    assert!(
        containers_of(&name).is_empty(),
        "the failed container was removed"
    );
}

#[actix::test]
async fn the_stop_goes_through_the_engine_with_the_configured_signal() {
    require_engine!();
    let rootfs = Rootfs::build().unwrap();
    // SIGINT is what the worker answers with `interrupted`; SIGTERM it
    // would ignore (`--ignore-sigterm`), so only the configured signal,
    // delivered by `podman stop`, ends it gracefully.
    let name = unique("stopsignal");
    let _cleanup = Cleanup(name.clone());
    let pod = container_pod(&rootfs.config(
        &name,
        "stop_signal = \"SIGINT\"\noutput_lines = 50",
        &["--ignore-sigterm"],
    ));
    started(&pod).await;
    let report = pod.send(Close::default()).await.unwrap();
    assert!(!report.forced, "{report:?}");
    assert!(
        report.took < Duration::from_secs(4),
        "stopped by its signal, not by the kill after the timeout: {report:?}"
    );
    assert!(containers_of(&name).is_empty());
}

#[test]
fn a_dropped_runtime_leaves_no_container() {
    if let Err(why) = engine() {
        println!("skipped: {why}");
        return;
    }
    let rootfs = Rootfs::build().unwrap();
    let name = unique("dropped");
    let _cleanup = Cleanup(name.clone());
    let config = rootfs.config(&name, "", &[]);
    // A System whose arbiter stops under the pod: the runtime is dropped,
    // not closed.
    let system = actix::System::new();
    system.block_on(async {
        let pod = container_pod(&config);
        started(&pod).await;
        assert_eq!(containers_of(&name).len(), 1);
    });
    drop(system);
    let mut left = containers_of(&name);
    for _ in 0..200 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        left = containers_of(&name);
    }
    assert!(
        left.is_empty(),
        "the container outlived its runtime: {left:?}"
    );
}

#[actix::test]
async fn a_close_right_after_the_start_is_graceful() {
    require_engine!();
    let rootfs = Rootfs::build().unwrap();
    // Before podman has created the container, `podman stop` finds none:
    // the close then signals podman itself, which gives up the start.
    for (i, delay) in (0u64..=80).step_by(10).enumerate() {
        let name = unique(&format!("earlyclose{i}"));
        let _cleanup = Cleanup(name.clone());
        let pod = container_pod(&rootfs.config(&name, "", &["--startup-delay-ms", "4000"]));
        pod.send(Start).await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let report = pod.send(Close::default()).await.unwrap();
        assert!(
            !report.forced,
            "closed {delay} ms after the start: {report:?}"
        );
        assert!(containers_of(&name).is_empty(), "{delay} ms: left behind");
    }
}

#[actix::test]
async fn a_forced_close_returns_with_the_container_gone() {
    require_engine!();
    let rootfs = Rootfs::build().unwrap();
    let name = unique("forced");
    let _cleanup = Cleanup(name.clone());
    // SIGTERM ignored: the close runs out of its 2 s and is forced.
    let config = rootfs
        .config(&name, "", &["--ignore-sigterm"])
        .replace("timeout_ctrl = 5000", "timeout_ctrl = 2000");
    let pod = container_pod(&config);
    started(&pod).await;
    let report = pod.send(Close::default()).await.unwrap();
    assert!(report.forced, "{report:?}");
    assert!(
        containers_of(&name).is_empty(),
        "the container outlived its forced close"
    );
}

#[actix::test]
async fn names_the_engine_would_misread_start_and_close() {
    require_engine!();
    let rootfs = Rootfs::build().unwrap();
    // The engine's label filter splits on commas and reads quotes as CSV.
    for odd in ["a=b,c=d", "quote\\\"back", "with space"] {
        let name = unique(odd);
        let _cleanup = Cleanup(name.clone());
        let pod = container_pod(&rootfs.config(&name, "", &[]));
        let started = started(&pod).await;
        assert!(started.pid.is_some());
        pod.send(Close::default()).await.unwrap();
        assert!(containers_of(&name).is_empty(), "{name}: left behind");
    }
}

#[test]
fn invalid_container_configs_name_their_key() {
    let cases = [
        ("", "runtime.image"),
        ("image = \"a\"\nrootfs = \"/b\"", "runtime.rootfs"),
        ("rootfs = \"relative\"", "runtime.rootfs"),
        ("image = \"a\"\nports = [\"80\"]", "runtime.ports[0]"),
        (
            "image = \"a\"\nports = [\"8080:80/sctp\"]",
            "runtime.ports[0]",
        ),
        ("image = \"a\"\nvolumes = [\"\"]", "runtime.volumes"),
        ("image = \"a\"\nengine = \"\"", "runtime.engine"),
        (
            "image = \"a\"\nstop_signal = \"SIGNOPE\"",
            "runtime.stop_signal",
        ),
    ];
    for (runtime, key) in cases {
        let toml = format!("name = \"c\"\n[runtime]\nkind = \"container\"\n{runtime}\n");
        let err =
            PodConfig::from_str_with_env(&toml, ConfigFormat::Toml, "test", &Default::default())
                .expect_err(&toml);
        assert!(err.to_string().contains(key), "{key}: {err}");
    }
}
