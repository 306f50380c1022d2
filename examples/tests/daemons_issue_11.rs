//! Process pods that hold real daemons: a daemon that leaves the process
//! group, an owner that dies, a main process that hands over, children that
//! drop privileges, hostile datagrams on the notify socket, and the
//! diagnostics a stuck start gives. Run with real programs: redis-server,
//! `/bin/sh`, `setsid`, `setpriv`, `sleep`, and the project's worker.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use actix::{Actor, Addr};
use pod_actor::{
    Call, Close, ConfigFormat, GetStatus, Pod, PodConfig, PodError, PodState, Start,
    WaitStartSuccess,
};
use runtime_actor::{Containment, ProcessInfo, ProcessRequest, ProcessRuntime};
use support::{alive, gone, TempDir};

const WORKER: &str = env!("CARGO_BIN_EXE_worker");
const PARENT: &str = env!("CARGO_BIN_EXE_parent");

type ProcessPod = Addr<Pod<ProcessRuntime>>;

fn pod(toml: &str) -> ProcessPod {
    let config =
        PodConfig::from_str_with_env(toml, ConfigFormat::Toml, "test", &Default::default())
            .unwrap_or_else(|e| panic!("{e}\n{toml}"));
    Pod::from_process_config(config).unwrap().start()
}

async fn info(pod: &ProcessPod) -> ProcessInfo {
    pod.send(Call::<ProcessRuntime>(ProcessRequest::Info))
        .await
        .unwrap()
        .unwrap()
        .into_info()
        .unwrap()
}

/// Waits (bounded, 10 s) until `done` holds.
async fn eventually<T>(what: &str, mut done: impl FnMut() -> Option<T>) -> T {
    for _ in 0..1000 {
        if let Some(value) = done() {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what} did not happen within 10 s");
}

/// The pod's pid while it is still starting.
async fn pid_while_starting(pod: &ProcessPod) -> u32 {
    for _ in 0..1000 {
        let status = pod.send(GetStatus).await.unwrap();
        assert_eq!(status.state, PodState::Starting);
        if let Some(pid) = status.pid {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no pid within 10 s of the start");
}

/// Waits until the pod runs generation `generation`, and returns its pid.
async fn running(pod: &ProcessPod, generation: u64) -> u32 {
    for _ in 0..1000 {
        let status = pod.send(GetStatus).await.unwrap();
        if status.state == PodState::Running && status.generation == generation {
            return status.pid.expect("a running process pod has a pid");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("generation {generation} was not running within 10 s");
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn cgroup_of(info: &ProcessInfo) -> PathBuf {
    match &info.containment {
        Containment::Cgroup { path } => path.clone(),
        other => panic!("this host allows cgroup v2 containment, got {other:?}"),
    }
}

fn kill9(pid: u32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

/// A shell that starts a daemon (subshell + `setsid`: the double fork of a
/// classic daemon, out of the process group and session), writes its pid to
/// `$DAEMON`, says `up`, and sleeps.
const DAEMONIZING: &str = r#"( setsid sh -c 'echo $$ > "$DAEMON.tmp"; mv "$DAEMON.tmp" "$DAEMON"; exec sleep 3600' </dev/null >/dev/null 2>&1 & ); echo up; exec sleep 3600"#;

fn daemonizing_pod(name: &str, daemon: &Path) -> ProcessPod {
    pod(&format!(
        r#"
name = "{name}"
timeout_ready = 10000
timeout_ctrl = 5000
[env]
DAEMON = "{daemon}"
[restart.backoff]
initial = 0
jitter = 0.0
[runtime]
kind = "process"
command = "/bin/sh"
args = ["-c", {DAEMONIZING:?}]
[runtime.probe]
kind = "stdout"
pattern = "up"
"#,
        daemon = daemon.display()
    ))
}

// ===== containment =====

#[actix::test]
async fn a_daemon_that_left_the_group_is_gone_after_close_and_after_a_restart() {
    let dir = TempDir::new();
    let daemon_file = dir.path("daemon");
    let pod = daemonizing_pod("daemonizing", &daemon_file);
    pod.send(Start).await.unwrap().unwrap();
    let started = pod.send(WaitStartSuccess).await.unwrap().unwrap();
    let first = eventually("the daemon's pid", || read_pid(&daemon_file)).await;
    let main = started.pid.unwrap();
    // It really left: another session, so the process group cannot reach it.
    let session = nix::unistd::getsid(Some(nix::unistd::Pid::from_raw(first as i32))).unwrap();
    assert_eq!(
        session.as_raw() as u32,
        first,
        "the daemon leads its own session"
    );

    let info = info(&pod).await;
    let cgroup = cgroup_of(&info);
    assert!(info.processes.contains(&first), "{info:?}");
    assert!(info.processes.contains(&main), "{info:?}");

    // A restart ends the whole tree of the failed generation.
    std::fs::remove_file(&daemon_file).unwrap();
    kill9(main);
    running(&pod, 1).await;
    assert!(
        gone(first).await,
        "the daemon of generation 0 outlived its restart"
    );
    assert!(
        !cgroup.exists(),
        "the cgroup of generation 0 is left: {}",
        cgroup.display()
    );
    let second = eventually("the second daemon's pid", || read_pid(&daemon_file)).await;

    let report = pod.send(Close::default()).await.unwrap();
    assert!(!report.forced, "{report:?}");
    assert!(!alive(second), "the daemon outlived the pod's close");
}

#[test]
fn a_daemon_dies_within_a_second_of_its_owner_being_killed() {
    let dir = TempDir::new();
    let daemon_file = dir.path("daemon");
    let (mut owner, child) = Owner::spawn(
        Command::new(PARENT)
            .args(["/bin/sh", "-c", DAEMONIZING])
            .env("DAEMON", &daemon_file)
            .stderr(Stdio::null()),
    );
    let daemon = wait_blocking(|| read_pid(&daemon_file));
    assert!(alive(child) && alive(daemon));

    kill9(owner.0.id());
    owner.0.wait().unwrap();
    let killed = Instant::now();
    while (alive(daemon) || alive(child)) && killed.elapsed() < Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!alive(daemon), "the daemon outlived its owner by a second");
    assert!(!alive(child), "the child outlived its owner by a second");
}

/// A directory (or a cgroup) removed when dropped, even by a failed
/// assertion.
struct Removed(PathBuf);

impl Drop for Removed {
    fn drop(&mut self) {
        // A cgroup goes with rmdir alone; a plain directory with its files.
        if std::fs::remove_dir(&self.0).is_err() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// An owner process, SIGKILLed and reaped when dropped (so a failed
/// assertion leaves nothing running).
struct Owner(std::process::Child);

impl Owner {
    /// Spawns an owner process that prints its pod's child pid as its first
    /// line: the owner, and that pid.
    fn spawn(command: &mut Command) -> (Owner, u32) {
        let mut owner = Owner(command.stdout(Stdio::piped()).spawn().unwrap());
        let mut line = String::new();
        BufReader::new(owner.0.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        match line.trim().parse() {
            Ok(pid) => (owner, pid),
            Err(_) => {
                let mut said = String::new();
                if let Some(mut stderr) = owner.0.stderr.take() {
                    let _ = stderr.read_to_string(&mut said);
                }
                panic!("the owner's pod did not start: {said}");
            }
        }
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_blocking<T>(mut done: impl FnMut() -> Option<T>) -> T {
    for _ in 0..1000 {
        if let Some(value) = done() {
            return value;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("not within 10 s");
}

/// Where this process's cgroup v2 is, as the runtime finds it.
fn own_cgroup_dir() -> PathBuf {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mount = mountinfo
        .lines()
        .find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            (right.split_whitespace().next()? == "cgroup2")
                .then(|| left.split_whitespace().nth(4))?
        })
        .expect("a cgroup2 mount");
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let own = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap()
        .to_owned();
    Path::new(mount).join(own.trim_start_matches('/'))
}

fn start_time(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    rest.split_whitespace().nth(19).unwrap().parse().unwrap()
}

#[test]
fn what_a_dead_owner_left_is_removed_by_the_next_owner() {
    // A dead owner: a process that ran and was reaped.
    let mut dead = Command::new("/bin/sleep").arg("3600").spawn().unwrap();
    let (dead_pid, dead_start) = (dead.id(), start_time(dead.id()));
    dead.kill().unwrap();
    dead.wait().unwrap();

    // Its cgroup, with a process still running in it, as if its keeper had
    // been killed too.
    let stale = own_cgroup_dir().join(format!("pod-actor-{dead_pid}-{dead_start}"));
    let run = stale.join("0-left-behind");
    std::fs::create_dir_all(&run).unwrap();
    let mut leftover = Command::new("/bin/sleep").arg("3600").spawn().unwrap();
    std::fs::write(run.join("cgroup.procs"), leftover.id().to_string()).unwrap();

    // Its notify socket directory, and one of another user's that looks the
    // same and must be left alone.
    let tmp = std::env::temp_dir();
    let stale_socket = tmp.join(format!("pod-notify-{dead_pid}-{dead_start}-abcdef"));
    std::fs::create_dir(&stale_socket).unwrap();
    std::fs::write(stale_socket.join("notify.sock"), b"").unwrap();
    let foreign = Removed(tmp.join(format!("pod-notify-{dead_pid}-{dead_start}-foreign")));
    std::fs::create_dir(&foreign.0).unwrap();
    std::os::unix::fs::chown(&foreign.0, Some(65534), Some(65534)).unwrap();

    // The next owner starts a pod.
    let (owner, _) = Owner::spawn(
        Command::new(PARENT)
            .args([WORKER, "--announce", "none"])
            .stderr(Stdio::null()),
    );

    let status = wait_blocking(|| leftover.try_wait().unwrap());
    assert!(!status.success(), "the leftover was killed: {status}");
    assert!(!stale.exists(), "the dead owner's cgroup was removed");
    assert!(
        !stale_socket.exists(),
        "the dead owner's socket was removed"
    );
    assert!(foreign.0.exists(), "another user's directory was touched");
    drop(owner);
}

// ===== real daemons =====

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn ping(port: u16) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(b"PING\r\n").unwrap();
    let mut answer = [0u8; 7];
    stream.read_exact(&mut answer).unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[actix::test]
async fn redis_server_under_a_pod_starts_restarts_and_closes() {
    let redis = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
        .into_iter()
        .find(|path| Path::new(path).exists())
        .expect("redis-server is installed (.ci/run installs Debian's redis-server)");
    let dir = TempDir::new();
    let port = free_port();
    let pod = pod(&format!(
        r#"
name = "redis"
timeout_ready = 10000
timeout_ctrl = 5000
[restart.backoff]
initial = 0
jitter = 0.0
[runtime]
kind = "process"
command = "{redis}"
args = ["--port", "{port}", "--bind", "127.0.0.1", "--supervised", "systemd", "--daemonize", "no",
        "--save", "", "--appendonly", "no", "--dir", "{dir}"]
"#,
        dir = dir.0.display()
    ));
    pod.send(Start).await.unwrap().unwrap();
    let started = pod.send(WaitStartSuccess).await.unwrap().unwrap();
    assert_eq!(
        ping(port),
        "+PONG\r\n",
        "PING answers as soon as the pod is started"
    );
    let first = started.pid.unwrap();

    kill9(first);
    let second = running(&pod, 1).await;
    assert_ne!(second, first);
    assert!(!alive(first));
    assert_eq!(ping(port), "+PONG\r\n");
    let cgroup = cgroup_of(&info(&pod).await);

    let report = pod.send(Close::default()).await.unwrap();
    assert!(
        !report.forced,
        "redis closes gracefully on SIGTERM: {report:?}"
    );
    assert!(!alive(second));
    assert!(!cgroup.exists(), "nothing is left: {}", cgroup.display());
}

#[actix::test]
async fn a_main_process_that_hands_over_is_followed() {
    let pod = pod(&format!(
        r#"
name = "forking"
timeout_ready = 10000
timeout_ctrl = 5000
[restart.backoff]
initial = 0
jitter = 0.0
[runtime]
kind = "process"
command = "{WORKER}"
args = ["--hand-over"]
"#
    ));
    pod.send(Start).await.unwrap().unwrap();
    let started = pod.send(WaitStartSuccess).await.unwrap().unwrap();
    let info = info(&pod).await;
    assert_ne!(info.main_pid, info.pid, "{info:?}");
    assert_eq!(
        started.pid,
        Some(info.main_pid),
        "Started names the new main process"
    );
    assert!(gone(info.pid).await, "the forking process exited");
    // Its exit is not the runtime's: the pod still runs generation 0.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(running(&pod, 0).await, info.main_pid);

    // The main process's death is the runtime's.
    kill9(info.main_pid);
    let next = running(&pod, 1).await;
    assert_ne!(next, info.main_pid);
    let cgroup = cgroup_of(&crate::info(&pod).await);
    let report = pod.send(Close::default()).await.unwrap();
    assert!(!report.forced, "{report:?}");
    assert!(!alive(next));
    assert!(!cgroup.exists());
}

/// Runs `sh -c script` whose READY=1 is sent by a child of the shell, not
/// by the main process.
fn forked_ready_pod(access: &str, timeout_ready: u64) -> ProcessPod {
    let script = format!(r#""{WORKER}" --send "READY=1"; exec sleep 3600"#);
    pod(&format!(
        r#"
name = "forked-ready"
timeout_ready = {timeout_ready}
timeout_ctrl = 5000
[runtime]
kind = "process"
command = "/bin/sh"
args = ["-c", {script:?}]
notify_access = "{access}"
"#
    ))
}

#[actix::test]
async fn notify_access_main_refuses_a_forked_ready_and_says_so() {
    let pod = forked_ready_pod("main", 1500);
    pod.send(Start).await.unwrap().unwrap();
    match pod.send(WaitStartSuccess).await.unwrap() {
        Err(e @ PodError::Timeout { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("READY=1 on the notify socket from the main process"),
                "{text}"
            );
            assert!(text.contains("ignored 1 datagram(s)"), "{text}");
            assert!(
                text.contains("notify_access = main does not allow"),
                "{text}"
            );
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[actix::test]
async fn notify_access_all_takes_a_forked_ready() {
    let pod = forked_ready_pod("all", 10_000);
    pod.send(Start).await.unwrap().unwrap();
    pod.send(WaitStartSuccess).await.unwrap().unwrap();
    assert!(!pod.send(Close::default()).await.unwrap().forced);
}

// ===== identity =====

/// A copy of the worker that another user can run: the test's directory is
/// private to root, so it goes in a directory others may enter.
fn worker_for_others(dir: &TempDir) -> PathBuf {
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o711)).unwrap();
    let copy = dir.path("worker");
    std::fs::copy(WORKER, &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    copy
}

fn proc_status(pid: u32, key: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap()
        .trim()
        .to_owned()
}

#[actix::test]
async fn a_child_that_drops_privileges_with_setpriv_can_still_notify() {
    let dir = TempDir::new();
    let worker = worker_for_others(&dir);
    let pod = pod(&format!(
        r#"
name = "setpriv"
timeout_ready = 10000
timeout_ctrl = 5000
[runtime]
kind = "process"
command = "setpriv"
args = ["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", "{worker}", "--announce", "notify"]
"#,
        worker = worker.display()
    ));
    pod.send(Start).await.unwrap().unwrap();
    let started = pod.send(WaitStartSuccess).await.unwrap().unwrap();
    let pid = started.pid.unwrap();
    assert!(
        proc_status(pid, "Uid:").starts_with("65534"),
        "it did drop privileges"
    );
    assert!(!pod.send(Close::default()).await.unwrap().forced);
}

#[actix::test]
async fn user_group_and_umask_are_set_by_the_pod() {
    let dir = TempDir::new();
    let worker = worker_for_others(&dir);
    let pod = pod(&format!(
        r#"
name = "as-nobody"
timeout_ready = 10000
timeout_ctrl = 5000
[runtime]
kind = "process"
command = "{worker}"
args = ["--announce", "notify"]
user = "nobody"
umask = "0027"
"#,
        worker = worker.display()
    ));
    pod.send(Start).await.unwrap().unwrap();
    let pid = pod
        .send(WaitStartSuccess)
        .await
        .unwrap()
        .unwrap()
        .pid
        .unwrap();
    assert_eq!(proc_status(pid, "Uid:"), "65534\t65534\t65534\t65534");
    assert_eq!(proc_status(pid, "Gid:"), "65534\t65534\t65534\t65534");
    assert_eq!(proc_status(pid, "Groups:"), "65534");
    assert_eq!(proc_status(pid, "Umask:"), "0027");
    assert!(!pod.send(Close::default()).await.unwrap().forced);

    let unknown = crate::pod(&format!(
        r#"
name = "unknown-user"
[runtime]
kind = "process"
command = "{WORKER}"
user = "no-such-user-here"
"#
    ));
    unknown.send(Start).await.unwrap().unwrap();
    let err = unknown.send(WaitStartSuccess).await.unwrap().unwrap_err();
    assert!(
        err.to_string().contains("unknown user `no-such-user-here`"),
        "{err}"
    );
}

#[actix::test]
async fn the_stop_signal_is_the_one_configured() {
    let dir = TempDir::new();
    let mark = dir.path("mark");
    let script = r#"trap 'echo int > "$MARK"; exit 0' INT; trap '' TERM; echo up; while :; do sleep 0.02; done"#;
    let pod = pod(&format!(
        r#"
name = "stop-signal"
timeout_ready = 10000
timeout_ctrl = 5000
[env]
MARK = "{mark}"
[runtime]
kind = "process"
command = "/bin/sh"
args = ["-c", {script:?}]
stop_signal = "SIGINT"
[runtime.probe]
kind = "stdout"
pattern = "up"
"#,
        mark = mark.display()
    ));
    pod.send(Start).await.unwrap().unwrap();
    pod.send(WaitStartSuccess).await.unwrap().unwrap();
    let report = pod.send(Close::default()).await.unwrap();
    assert!(!report.forced, "SIGINT ends it gracefully: {report:?}");
    assert_eq!(std::fs::read_to_string(&mark).unwrap(), "int\n");
}

// ===== the notify socket =====

fn notify_socket_of(pid: u32) -> PathBuf {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    environ
        .split(|&b| b == 0)
        .find_map(|var| var.strip_prefix(b"NOTIFY_SOCKET="))
        .map(|path| PathBuf::from(String::from_utf8_lossy(path).into_owned()))
        .expect("the child got NOTIFY_SOCKET")
}

#[actix::test]
async fn no_datagram_stops_readiness_or_the_watchdog() {
    let pod = pod(&format!(
        r#"
name = "hostile-datagrams"
timeout_ready = 10000
timeout_ctrl = 5000
[runtime]
kind = "process"
command = "{WORKER}"
args = ["--startup-delay-ms", "700", "--watchdog"]
watchdog = 300
"#
    ));
    pod.send(Start).await.unwrap().unwrap();
    let pid = pid_while_starting(&pod).await;
    let path = notify_socket_of(pid);

    // The socket is in a directory of its own that others may enter but
    // neither list nor write, and anyone may send to it.
    let dir = path.parent().unwrap();
    let meta = std::fs::symlink_metadata(dir).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o711, "{}", dir.display());
    assert_eq!(meta.uid(), nix::unistd::getuid().as_raw());
    assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o666);

    let stranger = UnixDatagram::unbound().unwrap();
    stranger.set_nonblocking(true).unwrap();
    // A descriptor (what FDSTORE=1 sends): the listener must close its copy.
    let (read_end, write_end) = nix::unistd::pipe().unwrap();
    let mut read_end = std::fs::File::from(read_end);
    {
        use std::os::fd::AsRawFd;
        let fds = [write_end.as_raw_fd()];
        let addr = nix::sys::socket::UnixAddr::new(&path).unwrap();
        nix::sys::socket::sendmsg(
            stranger.as_raw_fd(),
            &[std::io::IoSlice::new(b"FDSTORE=1\nREADY=1\n")],
            &[nix::sys::socket::ControlMessage::ScmRights(&fds)],
            nix::sys::socket::MsgFlags::empty(),
            Some(&addr),
        )
        .unwrap();
    }
    drop(write_end);
    // Oversized, garbage, and a flood.
    let _ = stranger.send_to(&vec![b'A'; 64 * 1024], &path);
    let _ = stranger.send_to(b"\xff\xfe\x00READY=1", &path);
    for _ in 0..10_000 {
        let _ = stranger.send_to(b"READY=1\nWATCHDOG=1\n", &path);
    }
    // None of it made the pod ready.
    assert_eq!(pod.send(GetStatus).await.unwrap().state, PodState::Starting);

    // The child's own READY=1 still counts, and its watchdog still feeds.
    let started = pod.send(WaitStartSuccess).await.unwrap().unwrap();
    assert_eq!(started.pid, Some(pid));
    let mut rest = Vec::new();
    read_end.read_to_end(&mut rest).unwrap(); // EOF: every write end was closed
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        running(&pod, 0).await,
        pid,
        "the watchdog was fed all along"
    );
    assert!(!pod.send(Close::default()).await.unwrap().forced);
    assert!(
        !path.exists() && !dir.exists(),
        "the socket and its directory are removed on close"
    );
}

#[actix::test]
async fn squatting_the_old_predictable_socket_names_changes_nothing() {
    // Another local user could take the names a pod used to bind.
    let tmp = std::env::temp_dir();
    let squatted: Vec<PathBuf> = (0..64)
        .map(|n| tmp.join(format!("pod-notify-{}-{n}.sock", std::process::id())))
        .collect();
    for path in &squatted {
        std::fs::create_dir(path).unwrap();
    }
    let pod = pod(&format!(
        r#"
name = "squatted"
timeout_ready = 10000
[runtime]
kind = "process"
command = "{WORKER}"
"#
    ));
    pod.send(Start).await.unwrap().unwrap();
    let started = pod.send(WaitStartSuccess).await;
    for path in &squatted {
        std::fs::remove_dir(path).unwrap();
    }
    started.unwrap().unwrap();
    assert!(!pod.send(Close::default()).await.unwrap().forced);
}

// ===== diagnostics =====

#[actix::test]
async fn a_start_timeout_names_the_probe_its_tries_and_its_last_error() {
    let port = free_port();
    let pod = pod(&format!(
        r#"
name = "never-listens"
timeout_ready = 800
timeout_ctrl = 2000
[runtime]
kind = "process"
command = "/bin/sleep"
args = ["3600"]
[runtime.probe]
kind = "tcp"
address = "127.0.0.1:{port}"
interval = 50
"#
    ));
    pod.send(Start).await.unwrap().unwrap();
    // The pid is known while it starts.
    let pid = pid_while_starting(&pod).await;
    assert!(alive(pid));
    let err = pod.send(WaitStartSuccess).await.unwrap().unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&format!("waiting for the tcp probe to 127.0.0.1:{port} (")),
        "{text}"
    );
    assert!(
        text.contains(" tries, last error: Connection refused"),
        "{text}"
    );
    assert!(gone(pid).await);
}

#[actix::test]
async fn a_failure_carries_the_last_lines_of_output() {
    let script = r#"i=1; while [ $i -le 30 ]; do echo "line $i"; i=$((i+1)); done; exit 4"#;
    let config = |lines: &str| {
        format!(
            r#"
name = "chatty"
[runtime]
kind = "process"
command = "/bin/sh"
args = ["-c", {script:?}]
{lines}
"#
        )
    };
    for (lines, first) in [("", 11), ("output_lines = 5", 26)] {
        let pod = pod(&config(lines));
        pod.send(Start).await.unwrap().unwrap();
        match pod.send(WaitStartSuccess).await.unwrap() {
            Err(PodError::FailedToStart {
                cause: runtime_actor::FailureCause::Exited { code, output, .. },
            }) => {
                assert_eq!(code, Some(4));
                let expected: Vec<String> = (first..=30).map(|i| format!("line {i}")).collect();
                assert_eq!(output, expected, "{lines}");
            }
            other => panic!("expected FailedToStart, got {other:?}"),
        }
    }
}

// ===== found by the outside attack =====

#[actix::test]
async fn an_exit_after_stopping_1_is_still_an_exit() {
    // STOPPING=1 is what the child says, not a stop anyone asked for.
    let script = format!(
        r#""{WORKER}" --send READY=1; sleep 0.2; "{WORKER}" --send STOPPING=1; sleep 0.2; exit 3"#
    );
    let pod = pod(&format!(
        r#"
name = "says-stopping"
timeout_ready = 10000
[restart.backoff]
initial = 0
jitter = 0.0
[runtime]
kind = "process"
command = "/bin/sh"
args = ["-c", {script:?}]
notify_access = "all"
"#
    ));
    pod.send(Start).await.unwrap().unwrap();
    pod.send(WaitStartSuccess).await.unwrap().unwrap();
    running(&pod, 1).await;
    let status = pod.send(GetStatus).await.unwrap();
    assert!(
        status
            .last_failure
            .as_deref()
            .unwrap_or_default()
            .contains("exited with code 3"),
        "{status:?}"
    );
    pod.send(Close::default()).await.unwrap();
}

#[actix::test]
async fn a_forced_close_leaves_no_cgroup_behind() {
    let script = r#"trap '' TERM; echo up; while :; do sleep 0.05; done"#;
    let pod = pod(&format!(
        r#"
name = "ignores-term"
timeout_ready = 10000
timeout_ctrl = 300
[runtime]
kind = "process"
command = "/bin/sh"
args = ["-c", {script:?}]
[runtime.probe]
kind = "stdout"
pattern = "up"
"#
    ));
    pod.send(Start).await.unwrap().unwrap();
    pod.send(WaitStartSuccess).await.unwrap().unwrap();
    let cgroup = cgroup_of(&info(&pod).await);
    let report = pod.send(Close::default()).await.unwrap();
    assert!(report.forced, "{report:?}");
    eventually("the cgroup's removal", || (!cgroup.exists()).then_some(())).await;
}

#[actix::test]
async fn a_main_that_daemonizes_before_ready_is_told_so() {
    let port = free_port();
    let pod = pod(&format!(
        r#"
name = "daemonizes"
timeout_ready = 10000
[runtime]
kind = "process"
command = "/bin/sh"
args = ["-c", "( setsid sleep 3600 </dev/null >/dev/null 2>&1 & ); echo forked; exit 0"]
[runtime.probe]
kind = "tcp"
address = "127.0.0.1:{port}"
"#
    ));
    pod.send(Start).await.unwrap().unwrap();
    let err = pod.send(WaitStartSuccess).await.unwrap().unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("1 other process(es) of the pod still ran"),
        "{text}"
    );
    assert!(
        text.contains("probably put itself in the background"),
        "{text}"
    );
    assert!(
        text.contains("exited with code 0; last output: forked"),
        "{text}"
    );
}

// ===== the fallback: the process group only =====

#[actix::test]
async fn without_a_cgroup_the_group_is_held_and_mainpid_still_followed() {
    use runtime_actor::{FailureCause, ProcessSpec, RuntimeConfig};
    let config = RuntimeConfig::new("group-only")
        .start_timeout(Some(Duration::from_secs(10)))
        .stop_timeout(Duration::from_secs(5));

    // A forking daemon hands over within its process group.
    let spec = ProcessSpec::new(WORKER)
        .args(["--hand-over"])
        .without_cgroup();
    let (runtime, mut events) = support::spawn(spec, config.clone());
    events.until_ready().await;
    let info = support::info(&runtime).await;
    match &info.containment {
        Containment::ProcessGroup { reason } => assert!(reason.contains("process group only")),
        other => panic!("expected the process group, got {other:?}"),
    }
    assert_ne!(info.main_pid, info.pid);
    assert!(gone(info.pid).await, "the forking process exits");
    let processes = support::info(&runtime).await.processes;
    assert_eq!(processes, [info.main_pid], "the group holds the new main");
    kill9(info.main_pid);
    match events.until_failed().await {
        FailureCause::Exited { .. } => {}
        other => panic!("the main's end is the runtime's end, got {other:?}"),
    }
    events.until_exited().await;

    // A grandchild in the group ends with the close.
    let spec = ProcessSpec::new(WORKER)
        .args(["--spawn-grandchild"])
        .without_cgroup();
    let (runtime, mut events) = support::spawn(spec, config);
    events.until_ready().await;
    let mut processes = Vec::new();
    for _ in 0..1000 {
        processes = support::info(&runtime).await.processes;
        if processes.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        processes.len(),
        2,
        "the worker and its grandchild: {processes:?}"
    );
    assert!(runtime.stop(Duration::from_secs(5)).await.graceful());
    for pid in processes {
        assert!(gone(pid).await, "{pid} outlived the close");
    }
}

/// The main process's pid, SIGKILLed when dropped (a failed assertion
/// must not leave a handed-over main running: it is not our child).
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if alive(self.0) {
            kill9(self.0);
        }
    }
}

#[actix::test]
async fn without_a_cgroup_a_group_id_taken_by_another_process_is_never_signalled() {
    use std::os::unix::process::CommandExt;

    use runtime_actor::{FailureCause, NotifyAccess, ProcessSpec, RuntimeConfig};
    // The main hands over to a process in a session of its own; the spawned
    // shell exits, and its group is empty from then on.
    let script = format!(
        r#"setsid sh -c '"{WORKER}" --send "MAINPID=$$\nREADY=1"; while :; do sleep 0.05; done' & sleep 0.3; exit 0"#
    );
    let spec = ProcessSpec::new("/bin/sh")
        .args(["-c", &script])
        .notify_access(NotifyAccess::All)
        .without_cgroup();
    let config = RuntimeConfig::new("group-reuse")
        .start_timeout(Some(Duration::from_secs(10)))
        .stop_timeout(Duration::from_secs(5));
    let (runtime, mut events) = support::spawn(spec, config);
    events.until_ready().await;
    let info = support::info(&runtime).await;
    let _main = KillOnDrop(info.main_pid);
    assert_ne!(info.main_pid, info.pid);
    // Reaped, not only dead: a zombie keeps its pid, and no stranger could
    // take it.
    assert!(
        support::reaped(info.pid).await,
        "the spawned shell was never reaped"
    );

    // An unrelated process takes the empty group's id for a group of its own.
    let mut stranger = None;
    for _ in 0..200 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (info.pid - 1).to_string()).unwrap();
        let mut child = Command::new("/bin/sleep")
            .arg("3600")
            .process_group(0)
            .spawn()
            .unwrap();
        if child.id() == info.pid {
            stranger = Some(child);
            break;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // Another process or thread took it first (other tests run beside
        // this one): it may be gone in a moment.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut stranger = stranger.expect("other processes took the pid 200 times in a row");
    // The pod lists it nowhere, and its end does not signal that group.
    let processes = support::info(&runtime).await.processes;
    assert_eq!(processes, [info.main_pid]);
    kill9(info.main_pid);
    assert!(matches!(
        events.until_failed().await,
        FailureCause::Exited { .. }
    ));
    events.until_exited().await;
    let untouched = stranger.try_wait().unwrap().is_none();
    stranger.kill().unwrap();
    stranger.wait().unwrap();
    assert!(
        untouched,
        "the pod signalled a process group that is not its own"
    );
}

#[actix::test]
async fn without_a_cgroup_a_forced_close_still_ends_the_group() {
    use runtime_actor::{NotifyAccess, ProcessSpec, RuntimeConfig};
    // The main hands over to a process in another session that ignores
    // SIGTERM; the spawned shell leaves a member behind in its group.
    let script = format!(
        r#"sleep 3600 & echo $! > "$MEMBER"; setsid sh -c 'trap "" TERM; "{WORKER}" --send "MAINPID=$$\nREADY=1"; while :; do sleep 0.05; done' & sleep 0.3; exit 0"#
    );
    let dir = TempDir::new();
    let member_file = dir.path("member");
    let spec = ProcessSpec::new("/bin/sh")
        .args(["-c", &script])
        .env("MEMBER", member_file.display().to_string())
        .notify_access(NotifyAccess::All)
        .without_cgroup();
    let config = RuntimeConfig::new("group-forced")
        .start_timeout(Some(Duration::from_secs(10)))
        .stop_timeout(Duration::from_millis(300));
    let (runtime, mut events) = support::spawn(spec, config);
    events.until_ready().await;
    let info = support::info(&runtime).await;
    let _main = KillOnDrop(info.main_pid);
    let member = eventually("the member's pid", || read_pid(&member_file)).await;
    let _member = KillOnDrop(member);
    assert!(gone(info.pid).await);
    let processes = support::info(&runtime).await.processes;
    assert!(processes.contains(&member), "{processes:?}");

    let report = runtime.stop(Duration::from_millis(300)).await;
    assert!(!report.graceful(), "{report:?}");
    assert!(
        gone(info.main_pid).await,
        "the main outlived a forced close"
    );
    assert!(
        gone(member).await,
        "a member of the group outlived a forced close"
    );
}

#[test]
fn an_owner_that_may_not_move_processes_falls_back_to_the_process_group() {
    // A cgroup delegated only in part: its directory belongs to the owner's
    // user, its `cgroup.procs` does not (so no process can be moved below).
    let dir = TempDir::new();
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o711)).unwrap();
    let parent = dir.path("parent");
    std::fs::copy(PARENT, &parent).unwrap();
    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cgroup = Removed(own_cgroup_dir().join(format!("pod-test-{}", std::process::id())));
    std::fs::create_dir(&cgroup.0).unwrap();
    std::os::unix::fs::chown(&cgroup.0, Some(65534), Some(65534)).unwrap();

    let script = r#"echo $$ > "$CGROUP/cgroup.procs" && exec setpriv --reuid=65534 --regid=65534 --clear-groups -- "$PARENT" /bin/sleep 3600"#;
    let (owner, child) = Owner::spawn(
        Command::new("/bin/sh")
            .args(["-c", script])
            .env("CGROUP", &cgroup.0)
            .env("PARENT", &parent)
            .stderr(Stdio::piped()),
    );
    // It runs beside its owner, held by its process group.
    let cgroup_of_child = std::fs::read_to_string(format!("/proc/{child}/cgroup")).unwrap();
    let name = cgroup.0.file_name().unwrap().to_str().unwrap();
    assert!(
        cgroup_of_child.trim_end().ends_with(&format!("/{name}")),
        "{cgroup_of_child}"
    );
    drop(owner);
    wait_blocking(|| (!alive(child)).then_some(()));
    // Nothing of the owner is left below the delegated cgroup.
    let left: Vec<_> = std::fs::read_dir(&cgroup.0)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    wait_blocking(|| std::fs::remove_dir(&cgroup.0).ok());
}
