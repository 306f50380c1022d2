//! `podrun`, one pod as a container's main process (issue 17): `/readyz`
//! follows the pod's readiness through starts and restarts, SIGTERM closes
//! the child gracefully and exits 0, orphans of the child are reaped, and a
//! config it cannot run is refused.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{alive, TempDir};

const PODRUN: &str = env!("CARGO_BIN_EXE_podrun");
const WORKER: &str = env!("CARGO_BIN_EXE_worker");

/// A running `podrun`, SIGKILLed and reaped when dropped.
struct Runner {
    child: Child,
    port: u16,
}

impl Runner {
    fn start(dir: &TempDir, config: &str) -> Runner {
        Runner::start_file(dir, "pod.toml", config)
    }

    fn start_file(dir: &TempDir, file: &str, config: &str) -> Runner {
        let path = dir.path(file);
        std::fs::write(&path, config).unwrap();
        Runner::spawn(Command::new(PODRUN).arg(&path))
    }

    /// Runs `command` (podrun, or what starts it) with `--listen` on a free
    /// port, until podrun says it serves.
    fn spawn(command: &mut Command) -> Runner {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = command
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.contains("serving /readyz"), "podrun said {line:?}");
        Runner { child, port }
    }

    /// The status code of `GET path`.
    fn get(&self, path: &str) -> u16 {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status in {response:?}"))
    }

    /// Polls `/readyz` (every 5 ms, at most 20 s) until it answers `code`.
    fn until_readyz(&self, code: u16) {
        let begun = Instant::now();
        while self.get("/readyz") != code {
            assert!(
                begun.elapsed() < Duration::from_secs(20),
                "/readyz never said {code}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The processes under the runner that run the worker (not the cgroup
    /// keeper that process pods start once per owner, nor podrun's own
    /// second process).
    fn children(&self) -> Vec<u32> {
        self.children_named("worker")
    }

    /// The processes under the runner whose executable is `name`.
    fn children_named(&self, name: &str) -> Vec<u32> {
        let mut found = Vec::new();
        let mut queue = vec![self.child.id()];
        while let Some(pid) = queue.pop() {
            for child in children_of(pid) {
                let exe = std::fs::read_link(format!("/proc/{child}/exe")).unwrap_or_default();
                if exe.ends_with(name) {
                    found.push(child);
                } else {
                    queue.push(child);
                }
            }
        }
        found
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }
}

/// Waits (at most 10 s, polling) until process `pid` is no longer alive;
/// fails saying `why` otherwise.
fn until_gone(pid: u32, why: &str) {
    let begun = Instant::now();
    while alive(pid) {
        assert!(begun.elapsed() < Duration::from_secs(10), "{why}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The children of `pid`, of every thread.
fn children_of(pid: u32) -> Vec<u32> {
    let mut all = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return all;
    };
    for task in tasks.flatten() {
        let text = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        all.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    all
}

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(args: &str, extra: &str) -> String {
    format!(
        r#"
name = "runner"
timeout_ctrl = 5000
{extra}
[runtime]
kind = "process"
command = "{WORKER}"
args = [{args}]
probe = {{ kind = "stdout", pattern = "ready and listening" }}
[restart]
backoff = {{ initial = 300, jitter = 0.0 }}
"#
    )
}

#[test]
fn readyz_follows_the_pods_readiness_through_a_restart() {
    let dir = TempDir::new();
    let runner = Runner::start(
        &dir,
        &config(r#""--announce", "stdout", "--startup-delay-ms", "400""#, ""),
    );
    // Starting: not ready, but alive.
    assert_eq!(runner.get("/readyz"), 503);
    assert_eq!(runner.get("/livez"), 200);
    runner.until_readyz(200);
    let first = runner.children();
    assert_eq!(first.len(), 1, "{first:?}");

    // The child dies: not ready while the pod restarts it (300 ms backoff,
    // then 400 ms of startup), then ready again with a new child.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first[0] as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    runner.until_readyz(503);
    assert_eq!(runner.get("/livez"), 200, "restarting is alive");
    runner.until_readyz(200);
    let second = runner.children();
    assert_eq!(second.len(), 1, "{second:?}");
    assert_ne!(second, first);
}

#[test]
fn sigterm_closes_the_child_gracefully_and_exits_zero() {
    let dir = TempDir::new();
    let mut runner = Runner::start(&dir, &config(r#""--announce", "stdout""#, ""));
    runner.until_readyz(200);
    let child = runner.children()[0];
    runner.signal(nix::sys::signal::Signal::SIGTERM);
    let status = runner.child.wait().unwrap();
    assert!(status.success(), "{status}");
    let mut out = String::new();
    runner
        .child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(out.contains("closed (graceful"), "{out}");
    assert!(!alive(child), "the child outlived its runner");
}

#[test]
fn orphans_of_the_child_are_reaped() {
    let dir = TempDir::new();
    let pidfile = dir.path("orphan.pid");
    // A subshell starts `sleep` and exits: the sleep is orphaned, and its
    // nearest subreaper is the runner.
    let script = format!(
        "(sleep 0.3 & echo $! > {pidfile}); exec {WORKER} --announce stdout",
        pidfile = pidfile.display()
    );
    let config = format!(
        r#"
name = "runner"
[runtime]
kind = "process"
command = "/bin/sh"
args = ["-c", {script:?}]
probe = {{ kind = "stdout", pattern = "ready and listening" }}
"#
    );
    let runner = Runner::start(&dir, &config);
    runner.until_readyz(200);
    let orphan: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Reaped: not even a zombie is left once it has ended.
    let begun = Instant::now();
    while std::path::Path::new(&format!("/proc/{orphan}")).exists() {
        assert!(
            begun.elapsed() < Duration::from_secs(10),
            "the orphan {orphan} was not reaped"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        runner.get("/readyz"),
        200,
        "the pod's own child is untouched"
    );
}

#[test]
fn a_config_podrun_cannot_run_is_refused() {
    let dir = TempDir::new();
    let path = dir.path("pod.toml");
    std::fs::write(
        &path,
        "name = \"x\"\nruntime = { kind = \"in-process\", name = \"echo\" }\n",
    )
    .unwrap();
    let out = Command::new(PODRUN).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("podrun runs a process pod"), "{said}");
}

#[test]
fn export_writes_manifests_whose_config_the_runner_runs() {
    let dir = TempDir::new();
    let deployments = dir.path("deployments.toml");
    std::fs::write(
        &deployments,
        format!(
            r#"
[[deployment]]
name = "echo"
replicas = 2
[deployment.pod.runtime]
kind = "process"
command = "{WORKER}"
args = ["--announce", "stdout"]
probe = {{ kind = "stdout", pattern = "ready and listening" }}
"#
        ),
    )
    .unwrap();
    // To stdout, as YAML.
    let out = Command::new(PODRUN)
        .args(["export", "kubernetes"])
        .arg(&deployments)
        .args(["--image", "registry.example/echo:1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let yaml = String::from_utf8(out.stdout).unwrap();
    let manifests = pod_actor::kubernetes::parse_yaml(&yaml).unwrap();
    let kinds: Vec<&str> = manifests.iter().map(|m| m.kind()).collect();
    assert_eq!(kinds, ["ConfigMap", "Deployment"]);

    // To a directory, one file per object; the ConfigMap's config is one
    // the runner runs.
    let manifests_dir = dir.path("manifests");
    let out = Command::new(PODRUN)
        .args(["export", "kubernetes"])
        .arg(&deployments)
        .args(["--image", "registry.example/echo:1", "--out"])
        .arg(&manifests_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut files: Vec<String> = std::fs::read_dir(&manifests_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, ["configmap-echo-pod.yaml", "deployment-echo.yaml"]);
    let text = std::fs::read_to_string(manifests_dir.join("configmap-echo-pod.yaml")).unwrap();
    let Some(pod_actor::kubernetes::Manifest::ConfigMap(map)) =
        pod_actor::kubernetes::parse_yaml(&text).unwrap().pop()
    else {
        panic!("a ConfigMap in {text}");
    };
    let json = map.data.unwrap().remove("pod.json").unwrap();
    let runner = Runner::start_file(&dir, "pod.json", &json);
    runner.until_readyz(200);
}

#[test]
fn export_refuses_what_kubernetes_cannot_run() {
    let dir = TempDir::new();
    let path = dir.path("pod.toml");
    std::fs::write(
        &path,
        "name = \"x\"\nruntime = { kind = \"in-process\", name = \"echo\" }\n",
    )
    .unwrap();
    let out = Command::new(PODRUN)
        .args(["export", "kubernetes"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("in-process runtime"), "{said}");
    let out = Command::new(PODRUN)
        .args(["export", "nomad", "x.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Runs podrun on `config` to its end (at most 20 s): its exit code, its
/// stdout and its stderr.
fn run_to_end(dir: &TempDir, config: &str) -> (Option<i32>, String, String) {
    let path = dir.path("run.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = Command::new(PODRUN)
        .arg(&path)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut out, mut err) = (String::new(), String::new());
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut err = String::new();
        stderr.read_to_string(&mut err).unwrap();
        err
    });
    stdout.read_to_string(&mut out).unwrap();
    err.push_str(&reader.join().unwrap());
    let begun = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            begun.elapsed() < Duration::from_secs(20),
            "podrun did not end"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    (status.code(), out, err)
}

fn job(policy: &str, script: &str) -> String {
    format!(
        "name = \"job\"\nrestart = {{ policy = \"{policy}\" }}\n[runtime]\nkind = \"process\"\n\
         command = \"/bin/sh\"\nargs = [\"-c\", {script:?}]\noutput_lines = 1\n\
         probe = {{ kind = \"none\" }}\n"
    )
}

#[test]
fn a_pod_that_ends_by_itself_exits_with_its_programs_status() {
    let dir = TempDir::new();
    // Exported as Jobs: a program that succeeds completes the Job.
    for policy in ["transient", "temporary"] {
        let (code, _, err) = run_to_end(&dir, &job(policy, "sleep 0.1; exit 0"));
        assert_eq!(code, Some(0), "{policy}: {err}");
    }
    let (code, _, err) = run_to_end(&dir, &job("temporary", "exit 3"));
    assert_eq!(code, Some(3), "{err}");
    let (code, _, err) = run_to_end(&dir, &job("temporary", "kill -9 $$"));
    assert_eq!(code, Some(128 + 9), "{err}");
}

#[test]
fn the_programs_output_is_podruns_output() {
    let dir = TempDir::new();
    let (_, out, err) = run_to_end(
        &dir,
        &job("temporary", "echo LINE-ONE; echo LINE-TWO >&2; exit 0"),
    );
    assert!(out.lines().any(|l| l == "LINE-ONE"), "stdout: {out}");
    assert!(err.lines().any(|l| l == "LINE-TWO"), "stderr: {err}");
}

#[test]
fn the_runners_own_children_are_not_taken_for_orphans() {
    // The pod's first start sets up the cgroup containment with a probe
    // child of its own, and the keeper: neither is an orphan to reap.
    let dir = TempDir::new();
    for run in 0..20 {
        let (code, _, err) = run_to_end(&dir, &job("temporary", "exit 0"));
        assert_eq!(code, Some(0), "run {run}: {err}");
        assert!(!err.contains("reaped by someone else"), "run {run}: {err}");
        assert!(!err.contains("process group only"), "run {run}: {err}");
    }
}

#[test]
fn killing_the_first_process_ends_the_pod() {
    let dir = TempDir::new();
    let mut runner = Runner::start(&dir, &config(r#""--announce", "stdout""#, ""));
    runner.until_readyz(200);
    let child = runner.children()[0];
    runner.child.kill().unwrap();
    runner.child.wait().unwrap();
    until_gone(child, "the pod's child outlived podrun");
}

#[test]
fn a_podrun_in_its_own_pid_namespace_is_not_taken_for_a_dead_owner() {
    if !nix::unistd::geteuid().is_root() || !std::path::Path::new("/usr/bin/unshare").exists() {
        println!("skipped: a pid namespace needs root and unshare");
        return;
    }
    // podrun as PID 1 of its own pid namespace, sharing this host's
    // cgroups: its owner mark (pid 1 or 2, a start time) means nothing
    // out here, and another owner must not judge it dead.
    let dir = TempDir::new();
    let path = dir.path("long.toml");
    std::fs::write(&path, config(r#""--announce", "stdout""#, "")).unwrap();
    let runner = Runner::spawn(
        Command::new("/usr/bin/unshare")
            .args(["--pid", "--fork", "--kill-child", "--mount-proc", PODRUN])
            .arg(&path),
    );
    runner.until_readyz(200);
    let child = runner.children();
    assert_eq!(child.len(), 1, "{child:?}");

    // Another owner on the host starts (and sweeps what dead owners left).
    let (code, _, err) = run_to_end(&dir, &job("temporary", "exit 0"));
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("removed what owners that died"), "{err}");
    assert!(alive(child[0]), "the namespaced pod's child was killed");
    assert_eq!(runner.get("/readyz"), 200);
}

#[test]
fn a_last_line_without_a_newline_is_not_lost() {
    let dir = TempDir::new();
    let (code, out, err) = run_to_end(&dir, &job("temporary", "printf 'last words'; exit 3"));
    assert_eq!(code, Some(3), "{err}");
    assert!(out.lines().any(|l| l == "last words"), "stdout: {out}");
}

#[test]
fn a_stdout_nobody_reads_does_not_stop_the_close() {
    // The program floods stdout and nobody reads podrun's: the lines wait
    // (and so does the program), but the close goes through.
    let dir = TempDir::new();
    let config = "name = \"flood\"\ntimeout_ctrl = 3000\n[runtime]\nkind = \"process\"\n\
                  command = \"/bin/sh\"\nargs = [\"-c\", \"echo ready; exec yes flood\"]\n\
                  probe = { kind = \"stdout\", pattern = \"ready\" }\n";
    // Its first line read, podrun's stdout is then left alone.
    let runner = Runner::start_file(&dir, "flood.toml", config);
    runner.until_readyz(200);
    let program = runner.children_named("yes");
    assert_eq!(program.len(), 1, "{program:?}");
    runner.signal(nix::sys::signal::Signal::SIGTERM);
    until_gone(program[0], "a full stdout held the close");
}

#[test]
fn a_sigterm_while_podrun_starts_never_kills_it_by_the_signal() {
    // Forwarded to the second process before it handles signals, a SIGTERM
    // waits (blocked) instead of killing it: podrun then exits 0, never
    // 128 + 15.
    let dir = TempDir::new();
    let path = dir.path("pod.toml");
    std::fs::write(&path, config(r#""--announce", "stdout""#, "")).unwrap();
    for delay in [5u64, 10, 20, 40] {
        let mut child = Command::new(PODRUN)
            .arg(&path)
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let status = child.wait().unwrap();
        assert_ne!(status.code(), Some(128 + 15), "{delay} ms: {status}");
    }
}
