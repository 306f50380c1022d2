//! Container pods: the process runtime, with a container engine's CLI
//! (`podman run`, attached) as the child.
//!
//! The engine's CLI is the interface, so docker can follow: the child is
//! `ENGINE run --name … --label … [options] IMAGE|--rootfs DIR [COMMAND ARGS…]`
//! in the foreground. Its output is the container's output, its exit is the
//! container's exit, and the process runtime's probes, restarts and output
//! tails apply as they are. What a container adds:
//!
//! - **Readiness by notify** through `--sdnotify=container`: the engine sends
//!   `MAINPID=` naming its monitor (conmon), and the container's `READY=1`
//!   comes from that monitor (sometimes before the `MAINPID=`: kept until
//!   then). The runtime trusts the pid the engine names for notifications,
//!   and keeps watching the engine's CLI, whose exit status is the
//!   container's. With another probe, `--sdnotify=conmon` still names the
//!   monitor, whose child is the container's main process.
//! - **Names and labels**: `<pod>-<owner mark>-<n>`, labelled with the pod's
//!   name, the owner's mark (pid and start time, and the pid namespace when
//!   it is not the host's) and the generation.
//! - **Leftovers**: before the first start of a pod name in an owner,
//!   containers with that label whose owner process is dead are removed,
//!   and reported.
//! - **Stop through the engine** (`stop -t`, with the stop signal given at
//!   `run`), then a forced removal, on close, on restart and when the
//!   runtime is dropped: a container is never left behind by a live owner.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::process::Command;

use super::probe::InvalidSpec;
use super::procfs;

/// The label keys the runtime sets; [`LABEL_POD`] selects a pod's containers.
pub(crate) const LABEL_POD: &str = "io.pod-actor.pod";
/// The owner process, as its mark (`<pid>-<start time>`).
pub(crate) const LABEL_OWNER: &str = "io.pod-actor.owner";
/// The runtime generation that started the container.
pub(crate) const LABEL_GENERATION: &str = "io.pod-actor.generation";

/// The most processes podman's monitor (conmon) runs with, and so the most
/// a container's init may keep.
const NPROC_CAP: u64 = 32_768;

/// How long an engine command (`stop` aside) may take before it is given up.
const ENGINE_COMMAND: Duration = Duration::from_secs(30);

/// What a container pod runs, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    engine: PathBuf,
    source: ContainerSource,
    ports: Vec<PortSpec>,
    volumes: Vec<String>,
    network: Option<String>,
    memory: Option<String>,
    cpus: Option<String>,
    pids_limit: Option<u64>,
    ulimits: Vec<String>,
    user: Option<String>,
    engine_args: Vec<String>,
    stop_timeout: Duration,
}

/// Where the container's root filesystem comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerSource {
    /// An image the engine has (never pulled: `--pull=never`).
    Image(String),
    /// A root filesystem directory (`--rootfs`).
    Rootfs(PathBuf),
}

impl fmt::Display for ContainerSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContainerSource::Image(image) => write!(f, "image `{image}`"),
            ContainerSource::Rootfs(dir) => write!(f, "root filesystem `{}`", dir.display()),
        }
    }
}

/// A published port: `[HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp]`, bound
/// to 127.0.0.1 unless an address is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSpec {
    /// The host address it is bound to.
    pub host_ip: IpAddr,
    /// The port on the host.
    pub host_port: u16,
    /// The port inside the container.
    pub container_port: u16,
    /// `true` for UDP, `false` for TCP.
    pub udp: bool,
}

impl FromStr for PortSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<PortSpec, String> {
        let (rest, udp) = match text.rsplit_once('/') {
            Some((rest, "tcp")) => (rest, false),
            Some((rest, "udp")) => (rest, true),
            Some((_, other)) => {
                return Err(format!(
                    "must end in /tcp or /udp if it names a protocol, got `/{other}`"
                ))
            }
            None => (text, false),
        };
        let port = |s: &str, what: &str| {
            s.parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| format!("{what} must be a port from 1 to 65535, got `{s}`"))
        };
        let (host, container) = rest.rsplit_once(':').ok_or_else(|| {
            format!("must be `[HOST_IP:]HOST_PORT:CONTAINER_PORT[/PROTO]`, got `{text}`")
        })?;
        let container_port = port(container, "the container port")?;
        let (host_ip, host_port) = match host.rsplit_once(':') {
            Some((ip, host_port)) => {
                let ip = ip.trim_start_matches('[').trim_end_matches(']');
                let ip = ip
                    .parse::<IpAddr>()
                    .map_err(|_| format!("the host address must be an IP address, got `{ip}`"))?;
                (ip, port(host_port, "the host port")?)
            }
            None => (IpAddr::from([127, 0, 0, 1]), port(host, "the host port")?),
        };
        Ok(PortSpec {
            host_ip,
            host_port,
            container_port,
            udp,
        })
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = if self.udp { "udp" } else { "tcp" };
        match self.host_ip {
            IpAddr::V6(ip) => write!(f, "[{ip}]")?,
            IpAddr::V4(ip) => write!(f, "{ip}")?,
        }
        write!(f, ":{}:{}/{proto}", self.host_port, self.container_port)
    }
}

/// A container pod's part of [`ProcessInfo`](crate::ProcessInfo).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    /// The engine's binary.
    pub engine: PathBuf,
    /// The container's name.
    pub name: String,
    /// Its id, once the engine said it (after readiness).
    pub id: Option<String>,
    /// What it runs.
    pub source: ContainerSource,
    /// Its main process as the host sees it, once the engine said it.
    pub main_pid: Option<u32>,
    /// Its published ports.
    pub ports: Vec<PortSpec>,
    /// How many containers of dead owners were removed before this start.
    pub leftovers_removed: usize,
}

impl ContainerSpec {
    /// Runs an image the engine already has.
    pub fn image(image: impl Into<String>) -> ContainerSpec {
        ContainerSpec::new(ContainerSource::Image(image.into()))
    }

    /// Runs a root filesystem directory.
    pub fn rootfs(dir: impl Into<PathBuf>) -> ContainerSpec {
        ContainerSpec::new(ContainerSource::Rootfs(dir.into()))
    }

    fn new(source: ContainerSource) -> ContainerSpec {
        ContainerSpec {
            engine: PathBuf::from("podman"),
            source,
            ports: Vec::new(),
            volumes: Vec::new(),
            network: None,
            memory: None,
            cpus: None,
            pids_limit: None,
            ulimits: Vec::new(),
            user: None,
            engine_args: Vec::new(),
            stop_timeout: Duration::from_secs(10),
        }
    }

    /// The engine's binary; `podman` (looked up in `PATH`) by default.
    #[must_use]
    pub fn engine(mut self, engine: impl Into<PathBuf>) -> Self {
        self.engine = engine.into();
        self
    }

    /// Publishes a port.
    #[must_use]
    pub fn port(mut self, port: PortSpec) -> Self {
        self.ports.push(port);
        self
    }

    /// Mounts a volume, as the engine's `-v` takes it (`HOST:CONTAINER[:OPTS]`).
    #[must_use]
    pub fn volume(mut self, volume: impl Into<String>) -> Self {
        self.volumes.push(volume.into());
        self
    }

    /// The network mode (`--network`): `host`, `none`, `bridge`, ….
    #[must_use]
    pub fn network(mut self, network: impl Into<String>) -> Self {
        self.network = Some(network.into());
        self
    }

    /// A memory limit (`--memory`, e.g. `512m`).
    #[must_use]
    pub fn memory(mut self, memory: impl Into<String>) -> Self {
        self.memory = Some(memory.into());
        self
    }

    /// A CPU limit (`--cpus`, e.g. `1.5`).
    #[must_use]
    pub fn cpus(mut self, cpus: impl Into<String>) -> Self {
        self.cpus = Some(cpus.into());
        self
    }

    /// A limit on the container's processes (`--pids-limit`).
    #[must_use]
    pub fn pids_limit(mut self, limit: u64) -> Self {
        self.pids_limit = Some(limit);
        self
    }

    /// A resource limit (`--ulimit`, e.g. `nofile=1024:1024`). Where none is
    /// given for `nofile` and `nproc`, the container gets the owner's own
    /// limits: an engine's defaults can exceed what the host permits.
    #[must_use]
    pub fn ulimit(mut self, ulimit: impl Into<String>) -> Self {
        self.ulimits.push(ulimit.into());
        self
    }

    /// The user inside the container (`--user`, `NAME|UID[:GROUP|GID]`).
    #[must_use]
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Options passed to `ENGINE run` as they are, before the image (e.g.
    /// `--runtime runc`).
    #[must_use]
    pub fn engine_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.engine_args.extend(args.into_iter().map(Into::into));
        self
    }

    /// How long `ENGINE stop` waits for the container after its stop
    /// signal before killing it (whole seconds, rounded up); 10 s by default.
    #[must_use]
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.stop_timeout = timeout;
        self
    }

    /// The `nofile` and `nproc` limits a container gets where its spec
    /// gives none, as `--ulimit` values (`nofile=SOFT:HARD`): the owner's
    /// own. An engine's defaults (podman: a million descriptors) can be
    /// more than the host allows, and the container then fails in its
    /// runtime's init; podman runs its monitor, whose limits the
    /// container's init starts with, with at most 32,768 processes.
    pub fn owner_ulimits() -> Vec<String> {
        use nix::sys::resource::{getrlimit, Resource, RLIM_INFINITY};
        let limit = |v: u64| match v {
            RLIM_INFINITY => "-1".to_owned(),
            v => v.to_string(),
        };
        [
            ("nofile", Resource::RLIMIT_NOFILE, u64::MAX),
            ("nproc", Resource::RLIMIT_NPROC, NPROC_CAP),
        ]
        .into_iter()
        .filter_map(|(name, resource, cap)| {
            let (soft, hard) = getrlimit(resource).ok()?;
            Some(format!(
                "{name}={}:{}",
                limit(soft.min(cap)),
                limit(hard.min(cap))
            ))
        })
        .collect()
    }

    pub(crate) fn stop_timeout_value(&self) -> Duration {
        self.stop_timeout
    }

    pub(crate) fn engine_binary(&self) -> &std::path::Path {
        &self.engine
    }

    /// The source of the root filesystem.
    pub fn source(&self) -> &ContainerSource {
        &self.source
    }

    /// The published ports.
    pub fn ports(&self) -> &[PortSpec] {
        &self.ports
    }

    pub(crate) fn validate(&self) -> Result<(), InvalidSpec> {
        let invalid = |field: &'static str, reason: String| InvalidSpec { field, reason };
        if self.engine.as_os_str().is_empty() {
            return Err(invalid("engine", "must not be empty".into()));
        }
        match &self.source {
            ContainerSource::Image(image) if image.is_empty() || image.starts_with('-') => {
                return Err(invalid(
                    "image",
                    format!("must name an image, got `{image}`"),
                ))
            }
            ContainerSource::Rootfs(dir) if !dir.is_absolute() => {
                return Err(invalid(
                    "rootfs",
                    format!("must be an absolute path, got `{}`", dir.display()),
                ))
            }
            _ => {}
        }
        for (field, values) in [("volumes", &self.volumes), ("ulimits", &self.ulimits)] {
            if let Some(bad) = values.iter().find(|v| v.is_empty() || v.starts_with('-')) {
                return Err(invalid(field, format!("holds an invalid entry `{bad}`")));
            }
        }
        for (field, value) in [
            ("network", &self.network),
            ("memory", &self.memory),
            ("cpus", &self.cpus),
            ("user", &self.user),
        ] {
            if let Some(value) = value
                .as_deref()
                .filter(|v| v.is_empty() || v.starts_with('-'))
            {
                return Err(invalid(
                    field,
                    format!("must not be empty or start with `-`, got `{value}`"),
                ));
            }
        }
        check_engine_args(&self.engine_args).map_err(|reason| invalid("engine_args", reason))?;
        if let Some(memory) = self.memory.as_deref().filter(|m| !memory_ok(m)) {
            return Err(invalid(
                "memory",
                format!(
                    "must be a number with an optional unit b, k, m or g (`512m`), got `{memory}`"
                ),
            ));
        }
        if let Some(cpus) = self.cpus.as_deref().filter(|c| !cpus_ok(c)) {
            return Err(invalid(
                "cpus",
                format!("must be a positive number of CPUs (`1.5`), got `{cpus}`"),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(port) = self
            .ports
            .iter()
            .find(|p| !seen.insert((p.host_ip, p.host_port, p.udp)))
        {
            return Err(invalid(
                "ports",
                format!("publishes host port {port} twice"),
            ));
        }
        Ok(())
    }

    /// Checks what only the host can say, before the engine is asked: a
    /// root filesystem that is not a directory.
    pub(crate) fn check_host(&self) -> Result<(), String> {
        if let ContainerSource::Rootfs(dir) = &self.source {
            match std::fs::metadata(dir) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    return Err(format!(
                        "the root filesystem `{}` is not a directory",
                        dir.display()
                    ))
                }
                Err(e) => return Err(format!("the root filesystem `{}`: {e}", dir.display())),
            }
        }
        Ok(())
    }

    /// The arguments of `ENGINE run` for one start.
    pub(crate) fn run_args(&self, run: &Run<'_>) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut push = |a: &str| args.push(a.into());
        push("run");
        // The user's options first: the runtime's, which it relies on to
        // find, stop and remove the container, come after and win.
        for arg in &self.engine_args {
            push(arg);
        }
        push("--name");
        push(&run.name);
        push("--label");
        push(&format!("{LABEL_POD}={}", run.pod));
        push("--label");
        push(&format!("{LABEL_OWNER}={}", run.owner));
        push("--label");
        push(&format!("{LABEL_GENERATION}={}", run.generation));
        // The engine tells `NOTIFY_SOCKET` (of its own environment) its
        // monitor's pid, and the container's `READY=1` when the probe is
        // notify (else the monitor's own, which other probes ignore).
        push(if run.notify_probe {
            "--sdnotify=container"
        } else {
            "--sdnotify=conmon"
        });
        push("--stop-signal");
        push(&run.stop_signal.to_string());
        push("--stop-timeout");
        push(&whole_seconds(self.stop_timeout).to_string());
        push("--pull=never");
        // The container's stdin is the engine's: /dev/null.
        if run.channel {
            push("--preserve-fds=1");
        }
        for key in run.env_keys {
            push("--env");
            push(key);
        }
        for port in &self.ports {
            push("--publish");
            push(&port.to_string());
        }
        for volume in &self.volumes {
            push("--volume");
            push(volume);
        }
        if let Some(network) = &self.network {
            push("--network");
            push(network);
        }
        if let Some(memory) = &self.memory {
            push("--memory");
            push(memory);
        }
        if let Some(cpus) = &self.cpus {
            push("--cpus");
            push(cpus);
        }
        if let Some(limit) = self.pids_limit {
            push("--pids-limit");
            push(&limit.to_string());
        }
        if let Some(user) = &self.user {
            push("--user");
            push(user);
        }
        let given = |name: &str| {
            self.ulimits
                .iter()
                .any(|u| u.split('=').next() == Some(name))
        };
        for ulimit in &self.ulimits {
            push("--ulimit");
            push(ulimit);
        }
        for ulimit in ContainerSpec::owner_ulimits() {
            let name = ulimit.split('=').next().unwrap_or_default();
            if !given(name) {
                push("--ulimit");
                push(&ulimit);
            }
        }
        match &self.source {
            ContainerSource::Image(image) => push(image),
            ContainerSource::Rootfs(dir) => {
                args.push("--rootfs".into());
                args.push(dir.into());
            }
        }
        if let Some(command) = run.command {
            args.push(command.into());
        }
        args.extend(run.args.iter().map(OsString::from));
        args
    }
}

/// Options of `ENGINE run` that the runtime sets and relies on (to name,
/// label, attach to, stop and remove the container), and the engine's
/// global options that would put it where `ps`, `stop` and `rm` do not look.
const RESERVED: &[&str] = &[
    "--name",
    "-d",
    "--detach",
    "--sdnotify",
    "--stop-signal",
    "--stop-timeout",
    "--preserve-fds",
    "--pull",
    "--rootfs",
    "--cidfile",
    "--conmon-pidfile",
    "--root",
    "--runroot",
    "--url",
    "--connection",
    "-c",
    "--remote",
    "-r",
    "--storage-driver",
    "--storage-opt",
];

fn check_engine_args(args: &[String]) -> Result<(), String> {
    let mut args = args.iter().peekable();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if arg.starts_with('-') => (flag, Some(value)),
            _ => (arg.as_str(), None),
        };
        if RESERVED.contains(&flag) {
            return Err(format!(
                "must not set `{flag}`: the pod sets it, or relies on the engine's default"
            ));
        }
        if flag == "--label" || flag == "-l" {
            let value = inline
                .or_else(|| args.peek().map(|v| v.as_str()))
                .unwrap_or("");
            if value.starts_with("io.pod-actor.") {
                return Err(format!("must not set the pod's own label `{value}`"));
            }
        }
    }
    Ok(())
}

/// A decimal number, `1` or `1.5`.
fn decimal(text: &str) -> bool {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, "0"));
    !whole.is_empty()
        && !fraction.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit())
}

/// podman's `--memory`: a number and an optional unit (`b`, `k`, `m`, `g`,
/// either case, with an optional `b` after the last three).
fn memory_ok(memory: &str) -> bool {
    let lower = memory.to_ascii_lowercase();
    let number = lower
        .strip_suffix("kb")
        .or_else(|| lower.strip_suffix("mb"))
        .or_else(|| lower.strip_suffix("gb"))
        .or_else(|| lower.strip_suffix(['b', 'k', 'm', 'g']))
        .unwrap_or(&lower);
    decimal(number)
}

fn cpus_ok(cpus: &str) -> bool {
    decimal(cpus) && cpus.bytes().any(|b| b.is_ascii_digit() && b != b'0')
}

/// What one start adds to the spec.
pub(crate) struct Run<'a> {
    pub(crate) name: String,
    pub(crate) pod: &'a str,
    pub(crate) owner: &'a str,
    pub(crate) generation: u64,
    pub(crate) notify_probe: bool,
    pub(crate) channel: bool,
    pub(crate) stop_signal: i32,
    pub(crate) env_keys: &'a [String],
    pub(crate) command: Option<&'a std::path::Path>,
    pub(crate) args: &'a [String],
}

fn whole_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// A container name for a start of `pod`: the pod's name made safe, the
/// owner's pid, and a number unique in this process.
pub(crate) fn name_for(pod: &str) -> String {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let safe: String = pod
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '.' | '-' => c,
            _ => '_',
        })
        .take(48)
        .collect();
    let safe = match safe.chars().next() {
        Some(c) if c.is_ascii_alphanumeric() => safe,
        _ => format!("pod{safe}"),
    };
    let n = RUNS.fetch_add(1, Ordering::Relaxed);
    // The owner's mark, not its pid alone: owners in other pid namespaces
    // may share the engine, and have the same pids.
    let owner = procfs::owner_mark().unwrap_or_else(|| std::process::id().to_string());
    format!("{safe}-{owner}-{n}")
}

/// The container's id and main pid, read from the host's `/proc` without
/// asking the engine: the main process is the child of the engine's
/// monitor (`monitor`, which the engine named with `MAINPID=`), and its
/// cgroup is named after the container's id (`libpod-<id>`).
pub(crate) fn locate(monitor: u32) -> Option<(String, u32)> {
    let children =
        std::fs::read_to_string(format!("/proc/{monitor}/task/{monitor}/children")).ok()?;
    let main: u32 = children.split_whitespace().next()?.parse().ok()?;
    let cgroup = std::fs::read_to_string(format!("/proc/{main}/cgroup")).ok()?;
    let id = cgroup.lines().find_map(|line| {
        let (_, rest) = line.split_once("libpod-")?;
        let id: String = rest.chars().take_while(char::is_ascii_hexdigit).collect();
        (id.len() == 64).then_some(id)
    })?;
    Some((id, main))
}

/// The engine's CLI as the runtime calls it: with the environment the
/// container's `run` had (an engine reads its settings, `CONTAINERS_CONF`
/// say, from there), so that `stop`, `rm` and `ps` see the same containers.
#[derive(Debug, Clone)]
pub(crate) struct EngineCli {
    pub(crate) binary: PathBuf,
    pub(crate) clean_env: bool,
    pub(crate) env: Vec<(String, String)>,
}

impl EngineCli {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.binary);
        if self.clean_env {
            cmd.env_clear();
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .env_remove("NOTIFY_SOCKET")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Why the engine could not be run at all.
    fn missing(&self, e: &io::Error) -> String {
        match self.binary.components().count() > 1 {
            true => format!(
                "the container engine `{}` does not exist or cannot be run: {e}",
                self.binary.display()
            ),
            false => format!(
                "the container engine `{}` is not installed (not found in PATH)",
                self.binary.display()
            ),
        }
    }

    /// Runs `ENGINE args…` to its end (at most `limit`); its stdout, or an
    /// error with its last lines of stderr.
    pub(crate) async fn run(&self, args: &[&str], limit: Duration) -> Result<String, String> {
        let what = format!("`{} {}`", self.binary.display(), args.join(" "));
        let output = match tokio::time::timeout(limit, self.command(args).output()).await {
            Err(_) => return Err(format!("{what} took longer than {limit:?}")),
            Ok(Err(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
                ) =>
            {
                return Err(self.missing(&e))
            }
            Ok(Err(e)) => return Err(format!("{what}: {e}")),
            Ok(Ok(output)) => output,
        };
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        Err(format!(
            "{what} failed ({}): {}",
            output.status,
            tail.join(" | ")
        ))
    }

    /// [`EngineCli::remove_leftovers`], the first time this process starts
    /// a pod of this name with this engine: what an owner that died before
    /// us left. Later starts of the name (restarts) find nothing new.
    pub(crate) async fn remove_leftovers_once(&self, pod: &str) -> Result<Vec<String>, String> {
        type Swept = std::sync::Mutex<std::collections::HashSet<(PathBuf, String)>>;
        static SWEPT: std::sync::OnceLock<Swept> = std::sync::OnceLock::new();
        let swept = SWEPT.get_or_init(Default::default);
        let key = (self.binary.clone(), pod.to_owned());
        if swept.lock().is_ok_and(|set| set.contains(&key)) {
            return Ok(Vec::new());
        }
        let removed = self.remove_leftovers(pod).await?;
        if let Ok(mut set) = swept.lock() {
            set.insert(key);
        }
        Ok(removed)
    }

    /// Removes the containers of `pod` whose owner process is dead; their
    /// names. Selected by the label's key, the value compared here: the
    /// engine's filters split values on commas and may match patterns.
    pub(crate) async fn remove_leftovers(&self, pod: &str) -> Result<Vec<String>, String> {
        let filter = format!("label={LABEL_POD}");
        let format = format!(
            "{{{{.Names}}}}\t{{{{index .Labels \"{LABEL_OWNER}\"}}}}\t{{{{index .Labels \"{LABEL_POD}\"}}}}"
        );
        let listed = self
            .run(
                &["ps", "--all", "--filter", &filter, "--format", &format],
                ENGINE_COMMAND,
            )
            .await?;
        let dead: Vec<String> = listed
            .lines()
            .filter_map(|line| {
                let mut fields = line.splitn(3, '\t');
                Some((fields.next()?, fields.next()?, fields.next()?))
            })
            .filter(|(_, owner, label)| {
                *label == pod && procfs::left_by_dead_owner(std::ffi::OsStr::new(owner), "", false)
            })
            .map(|(name, _, _)| name.to_owned())
            .collect();
        if dead.is_empty() {
            return Ok(dead);
        }
        let mut args = vec!["rm", "--force", "--ignore", "--time", "0"];
        args.extend(dead.iter().map(String::as_str));
        self.run(&args, ENGINE_COMMAND).await?;
        Ok(dead)
    }

    /// The container's id and main pid, as the engine says them.
    pub(crate) async fn inspect(&self, name: &str) -> Result<(String, u32), String> {
        let out = self
            .run(
                &["inspect", "--format", "{{.Id}} {{.State.Pid}}", name],
                ENGINE_COMMAND,
            )
            .await?;
        let mut words = out.split_whitespace();
        match (
            words.next(),
            words.next().and_then(|p| p.parse::<u32>().ok()),
        ) {
            (Some(id), Some(pid)) if pid > 0 => Ok((id.to_owned(), pid)),
            _ => Err(format!("unexpected `inspect` output: {out:?}")),
        }
    }

    /// Stops the container through the engine: its stop signal, then
    /// SIGKILL after `timeout`. An error when there is no such container
    /// (yet): the caller then signals the engine's process instead.
    pub(crate) async fn stop(&self, name: &str, timeout: Duration) -> Result<(), String> {
        let secs = timeout.as_secs().to_string();
        self.run(&["stop", "--time", &secs, name], timeout + ENGINE_COMMAND)
            .await
            .map(drop)
    }

    /// Removes the container, killing it if it runs.
    pub(crate) async fn remove(&self, name: &str) -> Result<(), String> {
        self.run(
            &["rm", "--force", "--ignore", "--time", "0", name],
            ENGINE_COMMAND,
        )
        .await
        .map(drop)
    }

    /// Removes the container where nothing can be awaited (a runtime
    /// dropped): waits for the engine up to `limit`, then leaves it to
    /// finish on a thread of its own.
    pub(crate) fn remove_blocking(&self, name: &str, limit: Duration) {
        let mut cmd = std::process::Command::new(&self.binary);
        if self.clean_env {
            cmd.env_clear();
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .env_remove("NOTIFY_SOCKET")
            .args(["rm", "--force", "--ignore", "--time", "0", name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let name = name.to_owned();
        let (done, finished) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("pod-container-rm".into())
            .spawn(move || {
                let status = cmd.status();
                if !matches!(&status, Ok(s) if s.success()) {
                    tracing::warn!(container = %name, status = ?status, "cannot remove the container of a dropped runtime");
                }
                let _ = done.send(());
            });
        match spawned {
            Ok(_) => {
                let _ = finished.recv_timeout(limit);
            }
            Err(e) => tracing::warn!(error = %e, "cannot start a thread to remove a container"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_with_loopback_by_default() {
        let p: PortSpec = "8080:80".parse().unwrap();
        assert_eq!(p.to_string(), "127.0.0.1:8080:80/tcp");
        let p: PortSpec = "0.0.0.0:53:5353/udp".parse().unwrap();
        assert_eq!(p.to_string(), "0.0.0.0:53:5353/udp");
        let p: PortSpec = "[::1]:9000:9000".parse().unwrap();
        assert_eq!(p.to_string(), "[::1]:9000:9000/tcp");
        for bad in [
            "80",
            "x:80",
            "0:80",
            "8080:70000",
            "1.2.3:8080:80",
            "8080:80/sctp",
            "",
        ] {
            assert!(bad.parse::<PortSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_safe_and_unique() {
        let a = name_for("encoder/0");
        let b = name_for("encoder/0");
        assert!(a.starts_with("encoder_0-"), "{a}");
        assert_ne!(a, b);
        assert!(name_for("_x").starts_with("pod_x-"));
    }

    #[test]
    fn run_args_carry_labels_ports_limits_and_the_command_last() {
        let spec = ContainerSpec::rootfs("/srv/rootfs")
            .port("8080:80".parse().unwrap())
            .ulimit("nofile=64:64")
            .engine_args(["--runtime", "runc"]);
        let env = vec!["MODEL".to_owned()];
        let args = spec.run_args(&Run {
            name: "enc-1-0".into(),
            pod: "enc",
            owner: "1-2",
            generation: 3,
            notify_probe: true,
            channel: true,
            stop_signal: 15,
            env_keys: &env,
            command: Some(std::path::Path::new("/bin/worker")),
            args: &["--flag".to_owned()],
        });
        let args: Vec<String> = args.into_iter().map(|a| a.into_string().unwrap()).collect();
        let joined = args.join(" ");
        for part in [
            "run --runtime runc --name enc-1-0",
            "--label io.pod-actor.pod=enc",
            "--label io.pod-actor.owner=1-2",
            "--label io.pod-actor.generation=3",
            "--sdnotify=container",
            "--preserve-fds=1",
            "--env MODEL",
            "--publish 127.0.0.1:8080:80/tcp",
            "--ulimit nofile=64:64",
            "--ulimit nproc=",
            "--rootfs /srv/rootfs /bin/worker --flag",
        ] {
            assert!(joined.contains(part), "{part} not in {joined}");
        }
        // Given, nofile is not also taken from the owner.
        assert_eq!(joined.matches("nofile=").count(), 1, "{joined}");
        assert!(joined.ends_with("/bin/worker --flag"));
    }

    #[test]
    fn invalid_specs_name_their_field() {
        let cases = [
            (ContainerSpec::image(""), "image"),
            (ContainerSpec::rootfs("relative/dir"), "rootfs"),
            (ContainerSpec::image("x").volume("-v"), "volumes"),
            (ContainerSpec::image("x").network(""), "network"),
            (ContainerSpec::image("x").memory("2t"), "memory"),
            (ContainerSpec::image("x").memory("lots"), "memory"),
            (ContainerSpec::image("x").cpus("abc"), "cpus"),
            (ContainerSpec::image("x").cpus("0"), "cpus"),
            (
                ContainerSpec::image("x").engine_args(["--name", "other"]),
                "engine_args",
            ),
            (
                ContainerSpec::image("x").engine_args(["--name=other"]),
                "engine_args",
            ),
            (
                ContainerSpec::image("x").engine_args(["-l", "io.pod-actor.owner=1-1"]),
                "engine_args",
            ),
            (
                ContainerSpec::image("x").engine_args(["--label=io.pod-actor.pod=x"]),
                "engine_args",
            ),
            (
                ContainerSpec::image("x").engine_args(["--detach"]),
                "engine_args",
            ),
            (
                ContainerSpec::image("x").engine_args(["--root", "/elsewhere"]),
                "engine_args",
            ),
            (
                ContainerSpec::image("x")
                    .port("8080:80".parse().unwrap())
                    .port("8080:81".parse().unwrap()),
                "ports",
            ),
        ];
        for (spec, field) in cases {
            assert_eq!(spec.validate().unwrap_err().field, field);
        }
        assert!(ContainerSpec::image("alpine").validate().is_ok());
        for memory in ["512m", "1.5g", "512M", "100kb", "1048576", "2GB"] {
            assert!(
                ContainerSpec::image("x").memory(memory).validate().is_ok(),
                "{memory}"
            );
        }
        assert!(ContainerSpec::image("x").cpus("0.5").validate().is_ok());
        let allowed =
            ContainerSpec::image("x").engine_args(["--runtime", "runc", "--label", "team=ml"]);
        assert!(allowed.validate().is_ok());
    }
}
