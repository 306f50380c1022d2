//! The pod configuration: loaded from TOML, YAML or JSON, overridden from the
//! environment, then validated.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::time::Duration;

use ::config::{FileFormat, Format, Map, Value, ValueKind};

use crate::limits;

mod reader;
mod toml_table;
use runtime_actor::{
    ChannelSpec, ContainerSpec, NotifyAccess, PortSpec, ProcessSpec, ReadinessProbe, RuntimeEnv,
};
use serde::{Deserialize, Serialize};
use supervisor::{Backoff, Intensity, RestartPolicy, Strategy, SupervisorConfig};

/// Prefix of the environment variables that override a loaded config.
const ENV_PREFIX: &str = "POD__";
/// Separator between key segments in an override's name.
const ENV_SEPARATOR: &str = "__";
/// Every duration is capped at one year, so that `Instant + Duration` and
/// backoff maths cannot overflow.
const MAX_MS: u64 = 31_536_000_000;
/// Origin used by [`PodConfig::validate`], which does not know the source.
const CODE_ORIGIN: &str = "pod config";

// ===== PodRole =====

/// The role of a pod in a deployment (Jina's `PodRoleType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum PodRole {
    /// Runs an executor (Jina's `WORKER`).
    #[default]
    Worker,
    /// Fans requests out to the shards of a deployment (Jina's `HEAD`).
    Head,
    /// Accepts client requests for a flow (Jina's `GATEWAY`).
    Gateway,
}

impl TryFrom<String> for PodRole {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        one_of(
            &name,
            &[
                ("worker", PodRole::Worker),
                ("head", PodRole::Head),
                ("gateway", PodRole::Gateway),
            ],
        )
    }
}

impl PodRole {
    /// The lowercase name used in config files.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            PodRole::Worker => "worker",
            PodRole::Head => "head",
            PodRole::Gateway => "gateway",
        }
    }
}

impl fmt::Display for PodRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ===== PodConfig =====

/// The configuration of one pod.
///
/// Durations are integers in milliseconds, as in Jina. Load one with
/// [`from_file`](Self::from_file) or [`from_str`](Self::from_str), or build
/// one in code with [`new`](Self::new) and check it with
/// [`validate`](Self::validate).
///
/// # Examples
///
/// ```
/// use pod_actor::{ConfigFormat, PodConfig, RuntimeSpec};
///
/// let text = r#"
/// name = "encoder"
/// runtime = { kind = "in-process", name = "echo" }
///
/// [restart]
/// max_restarts = 3
/// "#;
/// let config = PodConfig::from_str(text, ConfigFormat::Toml, "example")?;
/// assert_eq!(config.restart.max_restarts, 3);
/// assert_eq!(config.timeout_ctrl, 60_000);
/// assert_eq!(config.runtime, RuntimeSpec::InProcess { name: "echo".into() });
/// # Ok::<(), pod_actor::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodConfig {
    /// The pod's name; non-empty, without control characters.
    pub name: String,
    /// The pod's role; worker by default.
    #[serde(default)]
    pub role: PodRole,
    /// How long to wait for the runtime to be ready, in ms; zero or less
    /// waits for ever. Jina's default of 600 000 (ten minutes).
    #[serde(default = "default_timeout_ready")]
    pub timeout_ready: i64,
    /// How long a graceful stop may take, in ms; positive. Jina documents
    /// its `--timeout-ctrl` in ms but uses it as seconds; here it is ms.
    #[serde(default = "default_timeout_ctrl")]
    pub timeout_ctrl: u64,
    /// Variables handed to the runtime (not to the process environment).
    /// Names are non-empty and contain neither `=` nor NUL.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// What the pod runs.
    pub runtime: RuntimeSpec,
    /// When and how fast the pod's runtime is restarted.
    #[serde(default)]
    pub restart: RestartConfig,
    /// Periodic health checks once ready; none by default.
    #[serde(default)]
    pub health: Option<HealthConfig>,
    /// Whether the pod's runtime gets its own arbiter or shares the
    /// pod's: `auto` (the default: its own for an in-process runtime, the
    /// pod's for a process), `dedicated` or `shared`.
    #[serde(default)]
    pub placement: PlacementKind,
}

fn default_timeout_ready() -> i64 {
    600_000
}

fn default_timeout_ctrl() -> u64 {
    60_000
}

/// Which runtime the pod runs, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
#[non_exhaustive]
// One per pod config: the size of the `process` variant costs nothing worth
// a box.
#[allow(clippy::large_enum_variant)]
pub enum RuntimeSpec {
    /// An in-process runtime registered in code under `name`.
    InProcess {
        /// The name the runtime was registered under; non-empty.
        name: String,
    },
    /// An OS child process, described fully here.
    Process {
        /// The executable; non-empty. Looked up in `PATH` when it has no `/`.
        command: String,
        /// Its arguments, passed as they are (never through a shell).
        #[serde(default)]
        args: Vec<String>,
        /// Its working directory; the pod's when absent.
        #[serde(default)]
        cwd: Option<String>,
        /// Start it with an empty environment instead of the pod process's
        /// (the pod's `env` is set either way).
        #[serde(default)]
        clean_env: bool,
        /// How readiness is detected; `notify` (sd_notify) when absent.
        #[serde(default)]
        probe: ProbeConfig,
        /// Expect `WATCHDOG=1` at least this often (ms) once ready.
        #[serde(default)]
        watchdog: Option<u64>,
        /// Whose sd_notify datagrams count: `main` (the default), `exec` or
        /// `all` (systemd's `NotifyAccess=`).
        #[serde(default)]
        notify_access: NotifyAccessKind,
        /// Run the child as this user, a name or a uid (the owner must be
        /// privileged); its group and supplementary groups follow unless set.
        #[serde(default)]
        user: Option<String>,
        /// Run the child with this primary group, a name or a gid.
        #[serde(default)]
        group: Option<String>,
        /// The child's supplementary groups, names or gids, instead of the
        /// user's.
        #[serde(default)]
        groups: Option<Vec<String>>,
        /// The child's umask, in octal with a leading zero (`"0027"`).
        #[serde(default)]
        umask: Option<String>,
        /// The signal that asks the child to stop: a name (`SIGINT` or `INT`)
        /// or a number; SIGKILL follows after `timeout_ctrl`.
        #[serde(default = "default_stop_signal")]
        stop_signal: String,
        /// How many of the child's last output lines status and failures
        /// carry (20 by default, at most 10,000).
        #[serde(default = "default_output_lines")]
        output_lines: u64,
        /// A request channel to the child (its fd 3), so that calls reach
        /// it; none by default. `channel = {}` opens one with the default
        /// limits.
        #[serde(default)]
        channel: Option<ChannelConfig>,
    },
    /// A container run by a container engine's CLI (podman by default),
    /// from an image the engine has or a root filesystem directory; see
    /// [`ContainerSpec`](runtime_actor::ContainerSpec). The probes, the
    /// stop signal, the output and the request channel work as for a
    /// process; the container is stopped through the engine (`stop -t`
    /// with `timeout_ctrl`) and removed on close, on restart and on drop.
    Container {
        /// An image the engine already has (it is never pulled); or `rootfs`.
        #[serde(default)]
        image: Option<String>,
        /// A root filesystem directory, an absolute path; or `image`.
        #[serde(default)]
        rootfs: Option<String>,
        /// The command inside the container; the image's own when absent.
        #[serde(default)]
        command: Option<String>,
        /// Its arguments.
        #[serde(default)]
        args: Vec<String>,
        /// How readiness is detected; `notify` (sd_notify through the
        /// engine's `--sdnotify=container`) when absent.
        #[serde(default)]
        probe: ProbeConfig,
        /// Published ports, `[HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|/udp]`,
        /// on 127.0.0.1 unless an address is given.
        #[serde(default)]
        ports: Vec<String>,
        /// Volumes, as the engine's `-v` takes them (`HOST:CONTAINER[:OPTS]`).
        #[serde(default)]
        volumes: Vec<String>,
        /// The network mode (`host`, `none`, `bridge`, …); the engine's
        /// default when absent.
        #[serde(default)]
        network: Option<String>,
        /// A memory limit (`512m`).
        #[serde(default)]
        memory: Option<String>,
        /// A CPU limit (`1.5`).
        #[serde(default)]
        cpus: Option<String>,
        /// A limit on the container's processes.
        #[serde(default)]
        pids_limit: Option<u64>,
        /// Resource limits (`nofile=1024:1024`); `nofile` and `nproc`
        /// default to the owner's own.
        #[serde(default)]
        ulimits: Vec<String>,
        /// The user inside the container (`NAME|UID[:GROUP|GID]`).
        #[serde(default)]
        user: Option<String>,
        /// The engine's binary; `podman` by default.
        #[serde(default = "default_engine")]
        engine: String,
        /// Options for `ENGINE run`, passed as they are (`["--runtime",
        /// "runc"]`).
        #[serde(default)]
        engine_args: Vec<String>,
        /// The signal that asks the container to stop, as for a process.
        #[serde(default = "default_stop_signal")]
        stop_signal: String,
        /// How many of its last output lines status and failures carry.
        #[serde(default = "default_output_lines")]
        output_lines: u64,
        /// A request channel to the container's fd 3 (passed with
        /// `--preserve-fds`).
        #[serde(default)]
        channel: Option<ChannelConfig>,
    },
}

fn default_engine() -> String {
    "podman".into()
}

/// The request channel of a process runtime; see
/// [`ChannelSpec`](runtime_actor::ChannelSpec) for the protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// The largest frame either way, in bytes (9 of id and kind plus the
    /// payload); 4 MiB by default, at most 1 GiB.
    #[serde(default = "default_max_frame")]
    pub max_frame: u64,
    /// How many requests may be in flight at once; past that a call gets
    /// `Busy`. 1,024 by default.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: u64,
    /// How long a request may wait for its answer, in ms; 0 waits for ever.
    /// 60,000 by default.
    #[serde(default = "default_channel_timeout")]
    pub timeout: u64,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig {
            max_frame: default_max_frame(),
            max_in_flight: default_max_in_flight(),
            timeout: default_channel_timeout(),
        }
    }
}

impl ChannelConfig {
    /// The runtime's view of it. Values out of range stay out of range, for
    /// [`ProcessSpec::validate`] to name.
    pub fn spec(&self) -> ChannelSpec {
        ChannelSpec::default()
            .max_frame(usize::try_from(self.max_frame).unwrap_or(usize::MAX))
            .max_in_flight(usize::try_from(self.max_in_flight).unwrap_or(usize::MAX))
            .timeout((self.timeout > 0).then(|| Duration::from_millis(self.timeout)))
    }
}

fn default_max_frame() -> u64 {
    ChannelSpec::DEFAULT_MAX_FRAME as u64
}

fn default_max_in_flight() -> u64 {
    ChannelSpec::DEFAULT_MAX_IN_FLIGHT as u64
}

fn default_channel_timeout() -> u64 {
    ChannelSpec::DEFAULT_TIMEOUT.as_millis() as u64
}

fn default_stop_signal() -> String {
    "SIGTERM".into()
}

fn default_output_lines() -> u64 {
    20
}

/// The most output lines a process pod may keep.
const MAX_OUTPUT_LINES: u64 = 10_000;

/// Whose sd_notify datagrams a process pod hears; see
/// [`NotifyAccess`](runtime_actor::NotifyAccess).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum NotifyAccessKind {
    /// The main process only.
    #[default]
    Main,
    /// The main process and the spawned one.
    Exec,
    /// Any process of the pod.
    All,
}

impl TryFrom<String> for NotifyAccessKind {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        one_of(
            &name,
            &[
                ("main", NotifyAccessKind::Main),
                ("exec", NotifyAccessKind::Exec),
                ("all", NotifyAccessKind::All),
            ],
        )
    }
}

impl From<NotifyAccessKind> for NotifyAccess {
    fn from(kind: NotifyAccessKind) -> Self {
        match kind {
            NotifyAccessKind::Main => NotifyAccess::Main,
            NotifyAccessKind::Exec => NotifyAccess::Exec,
            NotifyAccessKind::All => NotifyAccess::All,
        }
    }
}

/// A signal by name (`SIGINT`, `INT`, any case) or number.
fn parse_signal(text: &str) -> Result<i32, String> {
    if let Ok(number) = text.parse::<i32>() {
        return nix::sys::signal::Signal::try_from(number)
            .map(|s| s as i32)
            .map_err(|_| format!("must name a signal, got {number}"));
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| format!("must name a signal (like SIGTERM, INT or 2), got {text:?}"))
}

/// A umask in octal with a leading zero: `"0027"`, `"077"`, `"0"`.
fn parse_umask(text: &str) -> Result<u32, String> {
    let octal = text
        .strip_prefix('0')
        .filter(|rest| rest.len() <= 3 && rest.chars().all(|c| ('0'..='7').contains(&c)));
    match octal {
        Some("") => Ok(0),
        Some(digits) => u32::from_str_radix(digits, 8).map_err(|e| e.to_string()),
        // What a bare number in the file became: the loader read it in
        // decimal (TOML's 0o22 is 18), so say how to write it.
        None if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => Err(format!(
            "must be octal digits with a leading 0 in quotes, like \"0027\", got {text} \
             (a number without quotes is read as decimal)"
        )),
        None => Err(format!(
            "must be octal digits with a leading 0, like \"0027\", got {text:?}"
        )),
    }
}

impl RuntimeSpec {
    /// A `process` runtime running `command`, every other field at its
    /// default (no arguments, the `notify` probe, SIGTERM to stop).
    pub fn process(command: impl Into<String>) -> RuntimeSpec {
        RuntimeSpec::Process {
            command: command.into(),
            args: Vec::new(),
            cwd: None,
            clean_env: false,
            probe: ProbeConfig::default(),
            watchdog: None,
            notify_access: NotifyAccessKind::default(),
            user: None,
            group: None,
            groups: None,
            umask: None,
            stop_signal: default_stop_signal(),
            output_lines: default_output_lines(),
            channel: None,
        }
    }

    /// Appends arguments, for a `process` runtime; other runtimes are
    /// returned as they are.
    #[must_use]
    pub fn with_args<I, S>(mut self, more: I) -> RuntimeSpec
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        if let RuntimeSpec::Process { args, .. } = &mut self {
            args.extend(more.into_iter().map(Into::into));
        }
        self
    }

    /// The process to run, for a `process` runtime. Values that
    /// [`PodConfig::validate`] refuses fall back to their defaults here.
    pub fn process_spec(&self) -> Option<ProcessSpec> {
        if let RuntimeSpec::Container { .. } = self {
            return self.container_spec();
        }
        let RuntimeSpec::Process {
            command,
            args,
            cwd,
            clean_env,
            probe,
            watchdog,
            notify_access,
            user,
            group,
            groups,
            umask,
            stop_signal,
            output_lines,
            channel,
        } = self
        else {
            return None;
        };
        let mut spec = ProcessSpec::new(command)
            .args(args.iter().cloned())
            .probe(probe.readiness_probe())
            .notify_access((*notify_access).into())
            .output_lines(usize::try_from((*output_lines).min(MAX_OUTPUT_LINES)).unwrap_or(20));
        if let Ok(signal) = parse_signal(stop_signal) {
            spec = spec.stop_signal(signal);
        }
        if let Some(user) = user {
            spec = spec.user(user);
        }
        if let Some(group) = group {
            spec = spec.group(group);
        }
        if let Some(groups) = groups {
            spec = spec.supplementary_groups(groups.iter().cloned());
        }
        if let Some(Ok(mask)) = umask.as_deref().map(parse_umask) {
            spec = spec.umask(mask);
        }
        if let Some(cwd) = cwd {
            spec = spec.cwd(cwd);
        }
        if *clean_env {
            spec = spec.clean_env();
        }
        if let Some(watchdog) = watchdog {
            spec = spec.watchdog(Duration::from_millis(*watchdog));
        }
        if let Some(channel) = channel {
            spec = spec.channel(channel.spec());
        }
        Some(spec)
    }
}

impl RuntimeSpec {
    /// The process spec of a `container` runtime: the engine's `run`, with
    /// the container's command. Values that [`PodConfig::validate`]
    /// refuses fall back to their defaults or are left out here.
    fn container_spec(&self) -> Option<ProcessSpec> {
        let RuntimeSpec::Container {
            image,
            rootfs,
            command,
            args,
            probe,
            ports,
            volumes,
            network,
            memory,
            cpus,
            pids_limit,
            ulimits,
            user,
            engine,
            engine_args,
            stop_signal,
            output_lines,
            channel,
        } = self
        else {
            return None;
        };
        let mut container = match (image, rootfs) {
            (_, Some(rootfs)) => ContainerSpec::rootfs(rootfs),
            (Some(image), None) => ContainerSpec::image(image),
            (None, None) => ContainerSpec::image(""),
        };
        container = container
            .engine(engine)
            .engine_args(engine_args.iter().cloned());
        for port in ports.iter().filter_map(|p| p.parse().ok()) {
            container = container.port(port);
        }
        for volume in volumes {
            container = container.volume(volume);
        }
        for ulimit in ulimits {
            container = container.ulimit(ulimit);
        }
        if let Some(network) = network {
            container = container.network(network);
        }
        if let Some(memory) = memory {
            container = container.memory(memory);
        }
        if let Some(cpus) = cpus {
            container = container.cpus(cpus);
        }
        if let Some(limit) = pids_limit {
            container = container.pids_limit(*limit);
        }
        if let Some(user) = user {
            container = container.user(user);
        }
        let mut spec = ProcessSpec::new(command.as_deref().unwrap_or(""))
            .args(args.iter().cloned())
            .probe(probe.readiness_probe())
            .output_lines(usize::try_from((*output_lines).min(MAX_OUTPUT_LINES)).unwrap_or(20))
            .container(container);
        if let Ok(signal) = parse_signal(stop_signal) {
            spec = spec.stop_signal(signal);
        }
        if let Some(channel) = channel {
            spec = spec.channel(channel.spec());
        }
        Some(spec)
    }
}

/// How a process runtime's readiness is detected, tagged by `kind`.
///
/// Times are in milliseconds; probes poll at `interval` (default 100) with
/// `timeout` per try (default 1000), against `127.0.0.1` unless told.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
#[non_exhaustive]
pub enum ProbeConfig {
    /// `READY=1` over sd_notify.
    #[default]
    Notify,
    /// A stdout line containing `pattern`.
    Stdout {
        /// The text to look for; non-empty.
        pattern: String,
    },
    /// A TCP connect to `address` (`host:port`) succeeds.
    Tcp {
        /// Where to connect; non-empty.
        address: String,
        /// Time between tries.
        #[serde(default = "default_probe_interval")]
        interval: u64,
        /// Time allowed for one try.
        #[serde(default = "default_probe_timeout")]
        timeout: u64,
    },
    /// `GET url` answers 2xx or 3xx.
    Http {
        /// An `http://` URL.
        url: String,
        /// Time between tries.
        #[serde(default = "default_probe_interval")]
        interval: u64,
        /// Time allowed for one try.
        #[serde(default = "default_probe_timeout")]
        timeout: u64,
    },
    /// Ready once spawned.
    None,
}

fn default_probe_interval() -> u64 {
    100
}

fn default_probe_timeout() -> u64 {
    1000
}

impl ProbeConfig {
    fn readiness_probe(&self) -> ReadinessProbe {
        match self {
            ProbeConfig::Notify => ReadinessProbe::Notify,
            ProbeConfig::Stdout { pattern } => ReadinessProbe::Stdout {
                pattern: pattern.clone(),
            },
            ProbeConfig::Tcp {
                address,
                interval,
                timeout,
            } => ReadinessProbe::Tcp {
                address: address.clone(),
                interval: Duration::from_millis(*interval),
                timeout: Duration::from_millis(*timeout),
            },
            ProbeConfig::Http {
                url,
                interval,
                timeout,
            } => ReadinessProbe::Http {
                url: url.clone(),
                interval: Duration::from_millis(*interval),
                timeout: Duration::from_millis(*timeout),
            },
            ProbeConfig::None => ReadinessProbe::None,
        }
    }
}

/// Where a pod's runtime actor runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum PlacementKind {
    /// The default: an in-process runtime gets an arbiter of its own (its
    /// code may block its thread); a process runtime shares its pod's (the
    /// child process is its isolation, and the pod only moves bytes, so a
    /// thread of its own would add two thread hops to every request and a
    /// thread and its descriptors to every pod).
    #[default]
    Auto,
    /// On an arbiter (thread) of its own.
    Dedicated,
    /// On the arbiter of whoever starts the pod.
    Shared,
}

impl TryFrom<String> for PlacementKind {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        one_of(
            &name,
            &[
                ("auto", PlacementKind::Auto),
                ("dedicated", PlacementKind::Dedicated),
                ("shared", PlacementKind::Shared),
            ],
        )
    }
}

/// When a pod whose runtime ended is restarted (OTP restart types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum RestartKind {
    /// Always.
    #[default]
    Permanent,
    /// Only after a failure.
    Transient,
    /// Never.
    Temporary,
}

impl TryFrom<String> for RestartKind {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        one_of(
            &name,
            &[
                ("permanent", RestartKind::Permanent),
                ("transient", RestartKind::Transient),
                ("temporary", RestartKind::Temporary),
            ],
        )
    }
}

impl From<RestartKind> for RestartPolicy {
    fn from(kind: RestartKind) -> Self {
        match kind {
            RestartKind::Permanent => RestartPolicy::Permanent,
            RestartKind::Transient => RestartPolicy::Transient,
            RestartKind::Temporary => RestartPolicy::Temporary,
        }
    }
}

/// Restart limits and pacing. The defaults match
/// [`SupervisorConfig::default`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestartConfig {
    /// When to restart; permanent by default.
    pub policy: RestartKind,
    /// Whether a failure before the first start succeeded is restarted too.
    /// By default (`false`) it fails the start instead.
    pub on_start_failure: bool,
    /// Restarts allowed within `within`; one more gives up. Default 5.
    pub max_restarts: u32,
    /// The sliding window of the restart limit, in ms; positive. Default
    /// 10 000.
    pub within: u64,
    /// The delay before each restart.
    pub backoff: BackoffConfig,
}

impl Default for RestartConfig {
    fn default() -> Self {
        RestartConfig {
            policy: RestartKind::Permanent,
            on_start_failure: false,
            max_restarts: 5,
            within: 10_000,
            backoff: BackoffConfig::default(),
        }
    }
}

/// Exponential backoff between restarts; see [`Backoff`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackoffConfig {
    /// Delay before the first restart, in ms; 0 restarts at once. Default
    /// 100.
    pub initial: u64,
    /// Growth per attempt; finite and at least 1. Default 2.
    pub multiplier: f64,
    /// Upper bound of any delay, in ms; at least `initial`. Default 30 000.
    pub max: u64,
    /// Share of a delay cut at random, in `0..=1`. Default 0.1.
    pub jitter: f64,
    /// Readiness time after which attempts count from 1 again, in ms.
    /// Default 10 000.
    pub reset_after: u64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: 100,
            multiplier: 2.0,
            max: 30_000,
            jitter: 0.1,
            reset_after: 10_000,
        }
    }
}

/// Periodic health checks of a ready pod.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Time between checks, in ms; positive. Default 10 000.
    pub interval: u64,
    /// How long one check may take, in ms; positive. Default 1 000.
    pub timeout: u64,
    /// Consecutive failed checks that count as a failure; at least 1.
    /// Default 3.
    pub failure_threshold: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            interval: 10_000,
            timeout: 1_000,
            failure_threshold: 3,
        }
    }
}

/// The syntax of a config source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigFormat {
    /// TOML (`.toml`).
    Toml,
    /// YAML (`.yaml`, `.yml`).
    Yaml,
    /// JSON (`.json`).
    Json,
}

impl ConfigFormat {
    /// The format named by `path`'s extension (ignoring case), if known.
    #[must_use]
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "toml" => Some(ConfigFormat::Toml),
            "yaml" | "yml" => Some(ConfigFormat::Yaml),
            "json" => Some(ConfigFormat::Json),
            _ => None,
        }
    }

    fn file_format(self) -> FileFormat {
        match self {
            ConfigFormat::Toml => FileFormat::Toml,
            ConfigFormat::Yaml => FileFormat::Yaml,
            ConfigFormat::Json => FileFormat::Json,
        }
    }
}

impl PodConfig {
    /// A config with defaults for everything but the name and runtime.
    #[must_use]
    pub fn new(name: impl Into<String>, runtime: RuntimeSpec) -> Self {
        PodConfig {
            name: name.into(),
            role: PodRole::default(),
            timeout_ready: default_timeout_ready(),
            timeout_ctrl: default_timeout_ctrl(),
            env: BTreeMap::new(),
            runtime,
            restart: RestartConfig::default(),
            health: None,
            placement: PlacementKind::default(),
        }
    }

    /// Loads a file, applies overrides from the process environment, then
    /// validates.
    ///
    /// The format follows the extension: `.toml`, `.yaml` or `.yml`, `.json`.
    /// Overrides are the variables named `POD__` and a key path with `__`
    /// between segments, in any case: `POD__TIMEOUT_READY=5000`,
    /// `POD__RESTART__BACKOFF__INITIAL=0`. Under `POD__ENV__` the rest of
    /// the name is kept verbatim as a variable of [`env`](Self::env):
    /// `POD__ENV__MODEL_PATH=/m` sets `MODEL_PATH`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Load`] if the file cannot be read or parsed, has an
    /// unknown extension, an unknown key or a value of the wrong type, or if
    /// an override is malformed; [`ConfigError::Invalid`] if a value is out
    /// of range.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let env = process_overrides(&path.display().to_string())?;
        Self::from_file_with_env(path, &env)
    }

    /// Like [`from_file`](Self::from_file), from a string; `origin` names the
    /// source in errors (for example `"embedded default"`).
    ///
    /// # Errors
    ///
    /// As for [`from_file`](Self::from_file), except reading.
    pub fn from_str(text: &str, format: ConfigFormat, origin: &str) -> Result<Self, ConfigError> {
        let env = process_overrides(origin)?;
        Self::from_str_with_env(text, format, origin, &env)
    }

    /// Like [`from_file`](Self::from_file), with the overrides taken from
    /// `env` (variable name to value) instead of the process environment.
    ///
    /// # Errors
    ///
    /// As for [`from_file`](Self::from_file).
    pub fn from_file_with_env(
        path: impl AsRef<Path>,
        env: &HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let (text, format, origin) = read_file(path.as_ref())?;
        Self::from_str_with_env(&text, format, &origin, env)
    }

    /// Like [`from_str`](Self::from_str), with the overrides taken from `env`
    /// (variable name to value) instead of the process environment.
    ///
    /// # Errors
    ///
    /// As for [`from_file`](Self::from_file), except reading.
    pub fn from_str_with_env(
        text: &str,
        format: ConfigFormat,
        origin: &str,
        env: &HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let mut table = parse_text(text, format, origin)?;
        apply_overrides(&mut table, env).map_err(|message| ConfigError::Load {
            origin: origin.to_owned(),
            message,
        })?;
        Self::from_table(table, origin)
    }

    /// Reads a pod config from a table of a program's own config file (a
    /// `[deployment.pod]` section, say), with the checks and messages of
    /// [`from_file`](Self::from_file) and no overrides. The text the table
    /// was parsed from should have passed [`check_limits`](Self::check_limits)
    /// first. Keys in errors are relative to the table.
    ///
    /// # Errors
    ///
    /// As for [`from_file`](Self::from_file), except reading and parsing.
    pub fn from_table(mut table: Map<String, Value>, origin: &str) -> Result<Self, ConfigError> {
        whole_numbers(&mut table, origin)?;
        let config = reader::read(table, origin)?;
        config.validate_in(origin)?;
        Ok(config)
    }

    /// Checks a config text against the loader's limits before any parser
    /// sees it: at most 256 KiB, nesting at most 32 deep, no YAML anchors or
    /// aliases. Every loader of this crate applies it; a program with a file
    /// format of its own that embeds pod configs should too.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Limit`] naming the limit and the line (or size).
    pub fn check_limits(text: &str, format: ConfigFormat, origin: &str) -> Result<(), ConfigError> {
        limits::check_text(text, format).map_err(|e| ConfigError::Limit {
            origin: origin.to_owned(),
            limit: e.limit,
            max: e.max,
            at: e.at,
        })
    }

    /// Checks every value, in field order.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] for the first value out of range, naming its
    /// dotted key path (such as `restart.backoff.multiplier`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_in(CODE_ORIGIN)
    }

    fn validate_in(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            origin: origin.to_owned(),
            key: key.to_owned(),
            reason,
        };
        check_name(&self.name).map_err(|r| invalid("name", r))?;
        if self.timeout_ready > 0 {
            // As for `check_ms`: `MAX` is what a saturated huge number became.
            let ms = match self.timeout_ready {
                i64::MAX => u64::MAX,
                ms => ms.unsigned_abs(),
            };
            check_ms(ms, true).map_err(|r| invalid("timeout_ready", r))?;
        }
        check_ms(self.timeout_ctrl, false).map_err(|r| invalid("timeout_ctrl", r))?;
        for (name, value) in &self.env {
            check_env(name, value).map_err(|(key, r)| invalid(&key, r))?;
        }
        match &self.runtime {
            RuntimeSpec::InProcess { name } => {
                check_name(name).map_err(|r| invalid("runtime.name", r))?;
            }
            RuntimeSpec::Process {
                command,
                args,
                cwd,
                probe,
                watchdog,
                user,
                group,
                groups,
                umask,
                stop_signal,
                output_lines,
                ..
            } => {
                check_name(command).map_err(|r| invalid("runtime.command", r))?;
                if let Some(index) = args.iter().position(|arg| arg.contains('\0')) {
                    return Err(invalid(
                        &format!("runtime.args[{index}]"),
                        "must not contain NUL".into(),
                    ));
                }
                if let Some(cwd) = cwd {
                    check_name(cwd).map_err(|r| invalid("runtime.cwd", r))?;
                }
                if let Some(watchdog) = watchdog {
                    check_ms(*watchdog, false).map_err(|r| invalid("runtime.watchdog", r))?;
                }
                check_probe(probe).map_err(|(key, r)| invalid(&key, r))?;
                if let Some(user) = user {
                    check_name(user).map_err(|r| invalid("runtime.user", r))?;
                }
                if let Some(group) = group {
                    check_name(group).map_err(|r| invalid("runtime.group", r))?;
                }
                for (index, group) in groups.iter().flatten().enumerate() {
                    check_name(group)
                        .map_err(|r| invalid(&format!("runtime.groups[{index}]"), r))?;
                }
                if let Some(umask) = umask {
                    parse_umask(umask).map_err(|r| invalid("runtime.umask", r))?;
                }
                self.check_child(stop_signal, *output_lines)
                    .map_err(|(key, r)| invalid(&key, r))?;
            }
            RuntimeSpec::Container {
                image,
                rootfs,
                command,
                args,
                probe,
                ports,
                engine,
                stop_signal,
                output_lines,
                ..
            } => {
                match (image, rootfs) {
                    (Some(_), Some(_)) => {
                        return Err(invalid(
                            "runtime.rootfs",
                            "is given with `runtime.image`: say one of them".into(),
                        ))
                    }
                    (None, None) => {
                        return Err(invalid(
                            "runtime.image",
                            "is missing: a container needs `image` or `rootfs`".into(),
                        ))
                    }
                    _ => {}
                }
                check_name(engine).map_err(|r| invalid("runtime.engine", r))?;
                if let Some(command) = command {
                    check_name(command).map_err(|r| invalid("runtime.command", r))?;
                }
                if let Some(index) = args.iter().position(|arg| arg.contains('\0')) {
                    return Err(invalid(
                        &format!("runtime.args[{index}]"),
                        "must not contain NUL".into(),
                    ));
                }
                for (index, port) in ports.iter().enumerate() {
                    port.parse::<PortSpec>()
                        .map_err(|r| invalid(&format!("runtime.ports[{index}]"), r))?;
                }
                check_probe(probe).map_err(|(key, r)| invalid(&key, r))?;
                self.check_child(stop_signal, *output_lines)
                    .map_err(|(key, r)| invalid(&key, r))?;
            }
        }
        let restart = &self.restart;
        check_ms(restart.within, false).map_err(|r| invalid("restart.within", r))?;
        let backoff = &restart.backoff;
        check_ms(backoff.initial, true).map_err(|r| invalid("restart.backoff.initial", r))?;
        if !backoff.multiplier.is_finite() {
            let got = backoff.multiplier;
            return Err(invalid(
                "restart.backoff.multiplier",
                format!("must be finite, got {got}"),
            ));
        }
        if backoff.multiplier < 1.0 {
            let got = backoff.multiplier;
            return Err(invalid(
                "restart.backoff.multiplier",
                format!("must be at least 1, got {got}"),
            ));
        }
        check_ms(backoff.max, true).map_err(|r| invalid("restart.backoff.max", r))?;
        if backoff.max < backoff.initial {
            return Err(invalid(
                "restart.backoff.max",
                format!(
                    "must be at least `restart.backoff.initial` ({}), got {}",
                    backoff.initial, backoff.max
                ),
            ));
        }
        if !(0.0..=1.0).contains(&backoff.jitter) {
            let got = backoff.jitter;
            return Err(invalid(
                "restart.backoff.jitter",
                format!("must be between 0 and 1, got {got}"),
            ));
        }
        check_ms(backoff.reset_after, true)
            .map_err(|r| invalid("restart.backoff.reset_after", r))?;
        if let Some(health) = &self.health {
            check_ms(health.interval, false).map_err(|r| invalid("health.interval", r))?;
            check_ms(health.timeout, false).map_err(|r| invalid("health.timeout", r))?;
            if health.failure_threshold == 0 {
                return Err(invalid(
                    "health.failure_threshold",
                    "must be at least 1, got 0".into(),
                ));
            }
        }
        // The supervisor's own rules, in case they ever grow beyond ours.
        self.supervisor_config().validate().map_err(|e| match e {
            supervisor::Error::InvalidConfig { field, reason } => {
                let key = match field {
                    "intensity.within" => "restart.within".to_owned(),
                    other => format!("restart.{other}"),
                };
                invalid(&key, reason.to_owned())
            }
            other => invalid("restart", other.to_string()),
        })
    }

    /// What a process and a container both check: the stop signal, the
    /// output tail, and, once, what the runtime checks (probe targets that
    /// can never answer, signals that do not end a process, ids the kernel
    /// refuses, too many groups, a container's options); the key and why.
    fn check_child(&self, stop_signal: &str, output_lines: u64) -> Result<(), (String, String)> {
        parse_signal(stop_signal).map_err(|r| ("runtime.stop_signal".to_owned(), r))?;
        if output_lines > MAX_OUTPUT_LINES {
            return Err((
                "runtime.output_lines".to_owned(),
                format!("must be at most {MAX_OUTPUT_LINES}, got {output_lines}"),
            ));
        }
        match self.runtime.process_spec() {
            Some(spec) => spec
                .validate()
                .map_err(|e| (format!("runtime.{}", e.field), e.reason)),
            None => Ok(()),
        }
    }

    /// How long to wait for readiness; `None` (for ever) when
    /// `timeout_ready <= 0`.
    #[must_use]
    pub fn timeout_ready(&self) -> Option<Duration> {
        u64::try_from(self.timeout_ready)
            .ok()
            .filter(|&ms| ms > 0)
            .map(Duration::from_millis)
    }

    /// How long a graceful stop may take.
    #[must_use]
    pub fn timeout_ctrl(&self) -> Duration {
        Duration::from_millis(self.timeout_ctrl)
    }

    /// The supervisor config for a standalone pod: one-for-one, with the
    /// intensity and backoff of [`restart`](Self::restart).
    #[must_use]
    pub fn supervisor_config(&self) -> SupervisorConfig {
        let r = &self.restart;
        let b = &r.backoff;
        let backoff = Backoff::new(
            Duration::from_millis(b.initial),
            b.multiplier,
            Duration::from_millis(b.max),
        )
        .with_jitter(b.jitter)
        .with_reset_after(Duration::from_millis(b.reset_after));
        SupervisorConfig::default()
            .with_strategy(Strategy::OneForOne)
            .with_intensity(Intensity::new(
                r.max_restarts,
                Duration::from_millis(r.within),
            ))
            .with_backoff(backoff)
    }

    /// The restart policy of [`restart`](Self::restart).
    #[must_use]
    pub fn restart_policy(&self) -> RestartPolicy {
        self.restart.policy.into()
    }

    /// The environment handed to the runtime: exactly [`env`](Self::env),
    /// with nothing added.
    #[must_use]
    pub fn runtime_env(&self) -> RuntimeEnv {
        self.env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.contains('\0') {
        return Err("must not contain NUL".into());
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

fn check_probe(probe: &ProbeConfig) -> Result<(), (String, String)> {
    let at = |field: &str| format!("runtime.probe.{field}");
    let (interval, timeout) = match probe {
        ProbeConfig::Stdout { pattern } => {
            return check_name(pattern).map_err(|r| (at("pattern"), r));
        }
        ProbeConfig::Tcp {
            address,
            interval,
            timeout,
        } => {
            // The address itself is parsed by `ProcessSpec::validate`.
            check_name(address).map_err(|r| (at("address"), r))?;
            (interval, timeout)
        }
        ProbeConfig::Http {
            url,
            interval,
            timeout,
        } => {
            // The URL itself is parsed by `ProcessSpec::validate`, with a
            // real parser that refuses spaces and control characters too,
            // which would forge a request line.
            check_name(url).map_err(|r| (at("url"), r))?;
            (interval, timeout)
        }
        _ => return Ok(()),
    };
    check_ms(*interval, false).map_err(|r| (at("interval"), r))?;
    check_ms(*timeout, false).map_err(|r| (at("timeout"), r))
}

fn check_ms(ms: u64, zero_ok: bool) -> Result<(), String> {
    if ms == 0 && !zero_ok {
        return Err("must be positive, got 0".into());
    }
    if ms > MAX_MS {
        let limit = format!("too large: at most {MAX_MS} ms (one year)");
        // `config` saturates numbers that do not fit, so `MAX` means "huge".
        return Err(match ms {
            u64::MAX => limit,
            _ => format!("{limit}, got {ms}"),
        });
    }
    Ok(())
}

fn check_env(name: &str, value: &str) -> Result<(), (String, String)> {
    let key = format!("env.{}", name.escape_debug());
    if name.is_empty() {
        return Err(("env".into(), "variable names must not be empty".into()));
    }
    if name.contains('\0') {
        return Err((key, "variable name must not contain NUL".into()));
    }
    if name.contains('=') {
        return Err((key, "variable name must not contain `=`".into()));
    }
    if value.contains('\0') {
        return Err((key, "value must not contain NUL".into()));
    }
    Ok(())
}

/// Reads at most one byte more than the size limit, so that a huge file
/// (or an endless one, such as `/dev/zero`) is refused without being read
/// whole; the limit check then names it.
/// A config file's text, its format (from its extension) and its name for
/// errors.
pub(crate) fn read_file(path: &Path) -> Result<(String, ConfigFormat, String), ConfigError> {
    let origin = path.display().to_string();
    let Some(format) = ConfigFormat::from_path(path) else {
        return Err(ConfigError::Load {
            origin,
            message: "unknown file extension, expected .toml, .yaml, .yml or .json".into(),
        });
    };
    match read_bounded(path) {
        Ok(text) => Ok((text, format, origin)),
        Err(e) => Err(ConfigError::Load {
            origin,
            message: e.to_string(),
        }),
    }
}

fn read_bounded(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limits::MAX_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not valid UTF-8 (at byte {at})"),
        )
    })
}

// ===== duplicate keys =====

/// A JSON object that gives a key twice, found with the key's dotted path.
mod duplicates {
    use std::collections::HashSet;
    use std::fmt;

    use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

    /// A mapping or sequence open in [`check_yaml`]: its dotted path, and
    /// for a mapping the keys seen and whether a key comes next.
    struct Open {
        path: String,
        mapping: Option<(HashSet<String>, bool, String)>,
        index: usize,
    }

    /// Finds a YAML mapping that gives a key twice, on the parser's events
    /// (the text has passed the depth limit, so the stack stays small). A
    /// syntax error ends the check: the loader's parse reports it.
    pub(super) fn check_yaml(text: &str) -> Result<(), String> {
        use yaml_rust2::parser::{Event, Parser};
        use yaml_rust2::scanner::TScalarStyle;
        use yaml_rust2::Yaml;
        let mut parser = Parser::new_from_str(text);
        let mut open: Vec<Open> = Vec::new();
        loop {
            let Ok((event, mark)) = parser.next_token() else {
                return Ok(());
            };
            let (scalar, starts) = match &event {
                Event::StreamEnd => return Ok(()),
                Event::SequenceEnd | Event::MappingEnd => {
                    open.pop();
                    continue;
                }
                Event::Scalar(value, ..) => (Some(value.as_str()), None),
                Event::SequenceStart(..) => (None, Some(false)),
                Event::MappingStart(..) => (None, Some(true)),
                Event::Alias(_) => (None, None),
                _ => continue,
            };
            // The path of this node, and whether it is a mapping's key.
            let (path, is_key) = match open.last_mut() {
                None => (String::new(), false),
                Some(Open {
                    path,
                    mapping: Some((keys, key_next, last_key)),
                    ..
                }) => {
                    let is_key = *key_next;
                    *key_next = !is_key;
                    if is_key {
                        // The key as the loader will name it: a plain `0x1`
                        // or `+1` is the integer 1, the same key as `"1"`.
                        let key = match (&event, scalar) {
                            (Event::Scalar(_, TScalarStyle::Plain, ..), Some(text)) => {
                                match Yaml::from_str(text) {
                                    Yaml::Integer(n) => n.to_string(),
                                    Yaml::Boolean(b) => b.to_string(),
                                    _ => text.to_owned(),
                                }
                            }
                            _ => scalar.unwrap_or_default().to_owned(),
                        };
                        // Named escaped in paths: a key may hold a newline.
                        let shown = key.escape_debug().to_string();
                        let full = join(path, &shown);
                        if scalar.is_some() && !keys.insert(key) {
                            return Err(format!("duplicate key `{full}` at line {}", mark.line()));
                        }
                        *last_key = shown;
                        (full, true)
                    } else {
                        (join(path, last_key), false)
                    }
                }
                Some(Open { path, index, .. }) => {
                    *index += 1;
                    (format!("{path}[{}]", *index - 1), false)
                }
            };
            if let Some(mapping) = starts {
                open.push(Open {
                    // A collection used as a key has no path of its own.
                    path: if is_key { String::new() } else { path },
                    mapping: mapping.then(|| (HashSet::new(), true, String::new())),
                    index: 0,
                });
            }
        }
    }

    fn join(path: &str, key: &str) -> String {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    }

    pub(super) fn check_json(text: &str) -> Result<(), serde_json::Error> {
        let mut json = serde_json::Deserializer::from_str(text);
        Unique {
            path: String::new(),
        }
        .deserialize(&mut json)?;
        json.end()
    }

    /// Walks one value, refusing a repeated key in any object under it.
    struct Unique {
        path: String,
    }

    impl Unique {
        fn child(&self, key: &str) -> Unique {
            let path = if self.path.is_empty() {
                key.to_owned()
            } else {
                format!("{}.{key}", self.path)
            };
            Unique { path }
        }
    }

    impl<'de> DeserializeSeed<'de> for Unique {
        type Value = ();

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Unique {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON value")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                let child = self.child(&key);
                if !seen.insert(key) {
                    return Err(de::Error::custom(format_args!(
                        "duplicate key `{}`",
                        child.path
                    )));
                }
                map.next_value_seed(child)?;
            }
            Ok(())
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut index = 0;
            while seq
                .next_element_seed(Unique {
                    path: format!("{}[{index}]", self.path),
                })?
                .is_some()
            {
                index += 1;
            }
            Ok(())
        }

        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }

        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }

        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }

        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }

        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }

        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
    }
}

/// The value named `name` among `choices`; the error lists them all.
fn one_of<T: Copy>(name: &str, choices: &[(&str, T)]) -> Result<T, String> {
    match choices.iter().find(|(choice, _)| *choice == name) {
        Some((_, value)) => Ok(*value),
        None => {
            let names: Vec<String> = choices.iter().map(|(n, _)| format!("`{n}`")).collect();
            Err(format!(
                "unknown value {name:?}, expected one of {}",
                names.join(", ")
            ))
        }
    }
}

/// A config text parsed to a table under the loader's rules: its limits
/// checked before any parser sees it, repeated keys refused in every format.
pub(crate) fn parse_text(
    text: &str,
    format: ConfigFormat,
    origin: &str,
) -> Result<Map<String, Value>, ConfigError> {
    let load = |message: String| ConfigError::Load {
        origin: origin.to_owned(),
        message,
    };
    PodConfig::check_limits(text, format, origin)?;
    match format {
        // TOML refuses a key given twice; JSON's parser keeps the last
        // one, and YAML's says so in its own notation
        // (`String("a"): duplicated key in mapping`), so the same rule
        // and message apply to both here.
        ConfigFormat::Json => duplicates::check_json(text).map_err(|e| load(e.to_string()))?,
        ConfigFormat::Yaml => duplicates::check_yaml(text).map_err(load)?,
        ConfigFormat::Toml => {}
    }
    // Parsed to a table without `config::Config`: its builder reads
    // top-level file keys and override names as path expressions, so a
    // key like `x[99999999999]` would allocate a huge array, and its
    // `Environment` lowercases the names of `env` variables.
    let table = match format {
        ConfigFormat::Toml => toml_table::parse(text).map_err(load)?,
        _ => format
            .file_format()
            .parse(None, text)
            .map_err(|e| load(e.to_string()))?,
    };
    Ok(table)
}

// ===== whole numbers =====

/// The keys whose values are whole numbers (milliseconds and counts).
const WHOLE_KEYS: [&[&str]; 17] = [
    &["runtime", "output_lines"],
    &["runtime", "channel", "max_frame"],
    &["runtime", "channel", "max_in_flight"],
    &["runtime", "channel", "timeout"],
    &["timeout_ready"],
    &["timeout_ctrl"],
    &["restart", "max_restarts"],
    &["restart", "within"],
    &["restart", "backoff", "initial"],
    &["restart", "backoff", "max"],
    &["restart", "backoff", "reset_after"],
    &["health", "interval"],
    &["health", "timeout"],
    &["health", "failure_threshold"],
    &["runtime", "watchdog"],
    &["runtime", "probe", "interval"],
    &["runtime", "probe", "timeout"],
];

/// Refuses a fraction, NaN or infinity where a whole number is expected,
/// which the loader would otherwise round (`1.5` to 2) or zero (`nan`); a
/// whole float (`2000.0`) becomes the integer it is.
fn whole_numbers(table: &mut Map<String, Value>, origin: &str) -> Result<(), ConfigError> {
    for path in WHOLE_KEYS {
        let Some(value) = lookup(table, path) else {
            continue;
        };
        let ValueKind::Float(n) = value.kind else {
            continue;
        };
        if !n.is_finite() || n.fract() != 0.0 {
            return Err(ConfigError::Invalid {
                origin: origin.to_owned(),
                key: path.join("."),
                reason: format!("must be a whole number, got {n}"),
            });
        }
        if n.abs() > 9.0e15 {
            // Whole but huge: validation says how large it may be.
            continue;
        }
        // Exact: `n` is whole and well inside i64's range.
        #[allow(clippy::cast_possible_truncation)]
        let whole = n as i64;
        value.kind = ValueKind::I64(whole);
    }
    Ok(())
}

/// The value at `path`, if every segment but the last is a table.
fn lookup<'a>(table: &'a mut Map<String, Value>, path: &[&str]) -> Option<&'a mut Value> {
    let (first, rest) = path.split_first()?;
    let value = table.get_mut(*first)?;
    if rest.is_empty() {
        return Some(value);
    }
    match &mut value.kind {
        ValueKind::Table(next) => lookup(next, rest),
        _ => None,
    }
}

// ===== environment overrides =====

/// The `POD__*` variables of the process environment.
fn process_overrides(origin: &str) -> Result<HashMap<String, String>, ConfigError> {
    let mut env = HashMap::new();
    for (name, value) in std::env::vars_os() {
        // Variables that are not ours are skipped whatever their encoding.
        let Some(name) = name.to_str().filter(|n| strip_prefix(n).is_some()) else {
            continue;
        };
        let value = value.into_string().map_err(|_| ConfigError::Load {
            origin: origin.to_owned(),
            message: format!("environment variable `{name}` is not valid unicode"),
        })?;
        env.insert(name.to_owned(), value);
    }
    Ok(env)
}

fn strip_prefix(name: &str) -> Option<&str> {
    let head = name.get(..ENV_PREFIX.len())?;
    head.eq_ignore_ascii_case(ENV_PREFIX)
        .then(|| &name[ENV_PREFIX.len()..])
}

/// Merges the `POD__*` entries of `env` into `table`, as strings: typed
/// fields parse them (`"5000"` into a number), and string fields keep them
/// as written (`"007"` stays `"007"`).
fn apply_overrides(
    table: &mut Map<String, Value>,
    env: &HashMap<String, String>,
) -> Result<(), String> {
    // Sorted, so that `POD__RESTART` is applied before `POD__RESTART__WITHIN`
    // whatever the map's order.
    let sorted: BTreeMap<&str, &str> = env
        .iter()
        .filter_map(|(k, v)| strip_prefix(k).map(|_| (k.as_str(), v.as_str())))
        .collect();
    for (name, value) in sorted {
        let rest = strip_prefix(name).unwrap_or_default();
        let env_head = rest.get(..5).filter(|h| h.eq_ignore_ascii_case("ENV__"));
        let path: Vec<String> = match env_head {
            // Variable names are case-sensitive: keep them as written.
            Some(_) => vec!["env".to_owned(), rest[5..].to_owned()],
            None => rest
                .split(ENV_SEPARATOR)
                .map(str::to_ascii_lowercase)
                .collect(),
        };
        if path.len() > limits::MAX_OVERRIDE_SEGMENTS {
            return Err(format!(
                "environment variable `{}…` has {} key segments, at most {} are allowed",
                name.chars().take(40).collect::<String>(),
                path.len(),
                limits::MAX_OVERRIDE_SEGMENTS
            ));
        }
        if path.iter().any(String::is_empty) {
            return Err(format!(
                "environment variable `{name}` does not name a key (expected `POD__KEY` or `POD__SECTION__KEY`)"
            ));
        }
        let origin = format!("environment variable `{name}`");
        let leaf = if LIST_KEYS.iter().any(|key| path.iter().eq(key.iter())) {
            let items = list_override(value)
                .map_err(|why| format!("environment variable `{name}` {why}"))?;
            let items = items
                .into_iter()
                .map(|item| Value::new(Some(&origin), ValueKind::String(item)))
                .collect();
            Value::new(Some(&origin), ValueKind::Array(items))
        } else {
            Value::new(Some(&origin), ValueKind::String(value.to_owned()))
        };
        set_path(table, &path, leaf);
    }
    Ok(())
}

/// The keys whose values are lists of strings, which an override sets as a
/// JSON array (`["--port", "6380"]`) or as words split at whitespace
/// (`--port 6380`).
const LIST_KEYS: [&[&str]; 2] = [&["runtime", "args"], &["runtime", "groups"]];

fn list_override(value: &str) -> Result<Vec<String>, String> {
    // The limits of a config file hold for what an override brings too.
    if value.len() > limits::MAX_BYTES {
        return Err(format!(
            "is {} bytes long, at most {} are allowed",
            value.len(),
            limits::MAX_BYTES
        ));
    }
    let items: Vec<String> = if value.trim_start().starts_with('[') {
        serde_json::from_str(value).map_err(|e| {
            format!("must be a JSON array of strings or words separated by spaces ({e})")
        })?
    } else {
        value.split_whitespace().map(str::to_owned).collect()
    };
    if items.len() > limits::MAX_VALUES {
        return Err(format!(
            "holds {} values, at most {} are allowed",
            items.len(),
            limits::MAX_VALUES
        ));
    }
    Ok(items)
}

/// Sets `path` in `table`, replacing any non-table on the way by a table.
fn set_path(table: &mut Map<String, Value>, path: &[String], leaf: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = table;
    for segment in parents {
        let slot = current
            .entry(segment.clone())
            .or_insert_with(|| Value::from(Map::<String, Value>::new()));
        if !matches!(slot.kind, ValueKind::Table(_)) {
            *slot = Value::from(Map::<String, Value>::new());
        }
        let ValueKind::Table(next) = &mut slot.kind else {
            return;
        };
        current = next;
    }
    current.insert(last.clone(), leaf);
}

// ===== ConfigError =====

/// Why a pod config could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The source could not be read or parsed: a syntax error, an unknown
    /// key, a value of the wrong type, a malformed override.
    Load {
        /// The source: a path, or the origin given to
        /// [`PodConfig::from_str`].
        origin: String,
        /// What went wrong; it names the key when one is known
        /// (as in "... for key \`restart.within\`").
        message: String,
    },
    /// The source went over one of the loader's limits (size, nesting
    /// depth, YAML anchors), checked before it is parsed.
    Limit {
        /// The source.
        origin: String,
        /// Which limit, such as `nesting depth`.
        limit: &'static str,
        /// The limit's value.
        max: usize,
        /// Where it was passed: a line, or the size found.
        at: String,
    },
    /// A value is out of range or inconsistent with another.
    Invalid {
        /// The source: a path, the origin given to [`PodConfig::from_str`],
        /// or `pod config` from [`PodConfig::validate`].
        origin: String,
        /// The dotted key path, such as `restart.backoff.multiplier`.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl ConfigError {
    /// The source the error comes from.
    #[must_use]
    pub fn origin(&self) -> &str {
        match self {
            ConfigError::Load { origin, .. }
            | ConfigError::Limit { origin, .. }
            | ConfigError::Invalid { origin, .. } => origin,
        }
    }

    /// The dotted key path of an invalid value; `None` for a load error.
    #[must_use]
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Load { .. } | ConfigError::Limit { .. } => None,
            ConfigError::Invalid { key, .. } => Some(key),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Load { origin, message } => write!(f, "cannot load {origin}: {message}"),
            ConfigError::Limit {
                origin,
                limit,
                max,
                at,
            } => write!(
                f,
                "cannot load {origin}: over the limit of {max} for {limit} ({at})"
            ),
            ConfigError::Invalid {
                origin,
                key,
                reason,
            } => write!(f, "invalid `{key}` in {origin}: {reason}"),
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn overrides(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn prefix_is_case_insensitive_and_char_safe() {
        assert_eq!(strip_prefix("POD__A"), Some("A"));
        assert_eq!(strip_prefix("pod__a"), Some("a"));
        assert_eq!(strip_prefix("POD_A"), None);
        assert_eq!(strip_prefix("PO€"), None);
        assert_eq!(strip_prefix("POD"), None);
    }

    #[test]
    fn overrides_nest_and_keep_env_names() {
        let mut table = Map::new();
        let env = overrides(&[
            ("POD__RESTART__BACKOFF__INITIAL", "0"),
            ("POD__ENV__Model_Path", "/m"),
            ("OTHER", "x"),
        ]);
        apply_overrides(&mut table, &env).unwrap();
        let root = Value::from(table);
        let text = format!("{root:?}");
        assert!(text.contains("Model_Path"), "{text}");
        assert!(text.contains("initial"), "{text}");
        assert!(!text.contains("OTHER"), "{text}");
    }

    #[test]
    fn scalar_is_replaced_by_a_table() {
        let mut table = Map::new();
        let env = overrides(&[("POD__RESTART", "5"), ("POD__RESTART__WITHIN", "1")]);
        apply_overrides(&mut table, &env).unwrap();
        assert!(matches!(table["restart"].kind, ValueKind::Table(_)));
    }

    #[test]
    fn empty_segments_are_rejected() {
        for name in ["POD__", "POD__RESTART__", "POD__ENV__", "POD____X"] {
            let mut table = Map::new();
            let err = apply_overrides(&mut table, &overrides(&[(name, "1")])).unwrap_err();
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn durations_are_capped() {
        assert!(check_ms(MAX_MS, false).is_ok());
        assert!(check_ms(MAX_MS + 1, true).is_err());
        assert!(check_ms(0, false).is_err());
        assert!(check_ms(0, true).is_ok());
    }
}
