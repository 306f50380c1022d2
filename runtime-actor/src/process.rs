use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::rc::Rc;
use std::sync::{Arc, Once};
use std::time::Duration;

use bytes::Bytes;
use futures::channel::oneshot;
use futures::future::LocalBoxFuture;
use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Group, Pid, Uid, User};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::net::unix::pipe;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::{self, Instant};

use crate::context::{FailureReporter, PidReporter, RuntimeContext};
use crate::env::RuntimeEnv;
use crate::error::RequestError;
use crate::error::{FailureCause, RuntimeError};
use crate::notify::{Notice, NotifySocket};
use crate::runtime::{Dispatch, Runtime, RuntimeFactory};

pub(crate) mod cgroup;
mod channel;
mod container;
mod pidfd;
mod probe;
pub(crate) mod procfs;
mod spawn;

use cgroup::Cgroup;
pub use channel::ChannelSpec;
use channel::{Broken, Channel, Drain, Pair};
pub use container::{ContainerInfo, ContainerSource, ContainerSpec, PortSpec};
use pidfd::PidFd;
pub use probe::InvalidSpec;
use procfs::{descends_from, group_members, running};
use spawn::{Identity, Spawn, Spawned};

/// Longest output line kept; the rest of a longer line is dropped, so a child
/// that never writes a newline cannot grow the pod's memory.
const MAX_LINE: usize = 8 * 1024;

/// The most supplementary groups Linux takes (`NGROUPS_MAX`).
const MAX_GROUPS: usize = 65_536;

/// Whether `signal`'s default action ends the process (so a stop signal
/// that the child does not handle still stops it).
fn ends_by_default(signal: Signal) -> bool {
    !matches!(
        signal,
        Signal::SIGSTOP
            | Signal::SIGTSTP
            | Signal::SIGTTIN
            | Signal::SIGTTOU
            | Signal::SIGCONT
            | Signal::SIGCHLD
            | Signal::SIGWINCH
            | Signal::SIGURG
    )
}

/// A user or group as a name or a numeric id: an id is digits only, and
/// never `4294967295`, which the kernel reads as "no id".
fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("must not be empty".into());
    }
    if !id.bytes().all(|b| b.is_ascii_digit()) {
        // A name; `+0` or `-1` are not ids.
        if id.starts_with(['+', '-']) && id[1..].bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "must be a name or an id of digits only, got {id:?}"
            ));
        }
        return Ok(());
    }
    match id.parse::<u32>() {
        Ok(u32::MAX) | Err(_) => Err(format!("must be an id below 4294967295, got {id}")),
        Ok(_) => Ok(()),
    }
}

/// A numeric id, when `name` is digits only.
fn numeric_id(name: &str) -> Option<u32> {
    name.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| name.parse().ok())
        .flatten()
}

/// How long a closed request channel waits for the child's exit, before it
/// is reported as the cause.
const EXIT_GRACE: Duration = Duration::from_secs(1);

/// How long the end of the main process waits for the last lines of the
/// pod's output before it is reported. The pod's processes are dead by
/// then, and what they wrote is in the pipes: only a process that left
/// the pod and holds a pipe open makes the wait last.
const OUTPUT_GRACE: Duration = Duration::from_millis(100);

/// How long the end of the main process waits for the rest of the pod's
/// processes to die once killed.
const KILL_WAIT: Duration = Duration::from_secs(2);

/// How a process runtime learns that its child is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadinessProbe {
    /// The child sends `READY=1` on `$NOTIFY_SOCKET` (systemd's sd_notify);
    /// `EXTEND_TIMEOUT_USEC=` extends the start deadline, `STATUS=` is kept,
    /// `MAINPID=` hands the main process over.
    Notify,
    /// A line of the child's stdout contains `pattern` (Jina's
    /// `ready and listening`).
    Stdout {
        /// The text to look for.
        pattern: String,
    },
    /// A TCP connect to `address` (`host:port`, IPv6 hosts in brackets)
    /// succeeds.
    Tcp {
        /// Where to connect.
        address: String,
        /// Time between tries.
        interval: Duration,
        /// Time allowed for one try.
        timeout: Duration,
    },
    /// `GET url` (`http://host[:port][/path]`, port 80 by default) answers
    /// 2xx or 3xx.
    Http {
        /// What to get.
        url: String,
        /// Time between tries.
        interval: Duration,
        /// Time allowed for one try.
        timeout: Duration,
    },
    /// Ready as soon as the process is spawned.
    None,
}

impl ReadinessProbe {
    /// Checks that the probe's target can be reached at all: a tcp address
    /// needs a host and a port, an http URL must parse as `http://` with a
    /// host. [`ProcessSpec::validate`] includes this.
    pub fn validate(&self) -> Result<(), InvalidSpec> {
        match self {
            ReadinessProbe::Tcp { address, .. } => probe::tcp_target(address).map(drop),
            ReadinessProbe::Http { url, .. } => probe::http_target(url).map(drop),
            _ => Ok(()),
        }
    }
}

/// Whose sd_notify datagrams count, as systemd's `NotifyAccess=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum NotifyAccess {
    /// Only the main process: the one spawned, or the one it handed over
    /// to with `MAINPID=`.
    #[default]
    Main,
    /// The main process and the process that was spawned (which may have
    /// handed the main role to another).
    Exec,
    /// Any process of the pod (in its cgroup, or below its first process).
    All,
}

/// How the processes of a process pod are held together, so that closing
/// or restarting it ends all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Containment {
    /// A cgroup v2 of the pod's own: everything the child starts, daemons
    /// included, is in it and is killed with it; a keeper process kills it
    /// if the owner process dies.
    Cgroup {
        /// The cgroup's directory.
        path: PathBuf,
    },
    /// The child's process group only (the host allows no cgroup of ours):
    /// a descendant that calls `setsid` leaves it and can outlive the pod.
    ProcessGroup {
        /// Why no cgroup is used.
        reason: String,
    },
}

/// An OS child process to run as a runtime: the command and its arguments
/// (a vector, never a shell line), working directory, environment, identity
/// and readiness probe.
#[derive(Debug, Clone)]
#[must_use]
pub struct ProcessSpec {
    command: PathBuf,
    args: Vec<String>,
    cwd: Option<PathBuf>,
    inherit_env: bool,
    env: BTreeMap<String, String>,
    probe: ReadinessProbe,
    watchdog: Option<Duration>,
    output_lines: usize,
    forward_output: bool,
    notify_access: NotifyAccess,
    user: Option<String>,
    group: Option<String>,
    groups: Option<Vec<String>>,
    umask: Option<u32>,
    stop_signal: i32,
    cgroup: bool,
    channel: Option<ChannelSpec>,
    container: Option<ContainerSpec>,
}

impl ProcessSpec {
    /// Runs `command` with no arguments, the parent's environment, and the
    /// [`ReadinessProbe::Notify`] probe.
    pub fn new(command: impl Into<PathBuf>) -> Self {
        ProcessSpec {
            command: command.into(),
            args: Vec::new(),
            cwd: None,
            inherit_env: true,
            env: BTreeMap::new(),
            probe: ReadinessProbe::Notify,
            watchdog: None,
            output_lines: 20,
            forward_output: false,
            notify_access: NotifyAccess::Main,
            user: None,
            group: None,
            groups: None,
            umask: None,
            stop_signal: Signal::SIGTERM as i32,
            cgroup: true,
            channel: None,
            container: None,
        }
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// The child's working directory.
    pub fn cwd(mut self, cwd: impl Into<PathBuf>) -> Self {
        self.cwd = Some(cwd.into());
        self
    }

    /// Starts the child with an empty environment instead of the parent's;
    /// the spec's and the pod's variables are still set.
    pub fn clean_env(mut self) -> Self {
        self.inherit_env = false;
        self
    }

    /// Sets a variable for the child (the pod's env is applied after these).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    /// How readiness is detected.
    pub fn probe(mut self, probe: ReadinessProbe) -> Self {
        self.probe = probe;
        self
    }

    /// Expects `WATCHDOG=1` at least this often once ready (the child gets
    /// `WATCHDOG_USEC`); a missed one fails the runtime as unhealthy.
    pub fn watchdog(mut self, interval: Duration) -> Self {
        self.watchdog = Some(interval);
        self
    }

    /// How many of the last output lines are kept for status and failure
    /// reports (20 by default).
    pub fn output_lines(mut self, lines: usize) -> Self {
        self.output_lines = lines;
        self
    }

    /// Copies each line of the child's stdout and stderr to the owner's
    /// (besides `tracing` and the output tail): for an owner whose own
    /// output is the child's log, a container's main process say. Off by
    /// default. An owner about to exit awaits
    /// [`forwarded_output_written`] first.
    pub fn forward_output(mut self, forward: bool) -> Self {
        self.forward_output = forward;
        self
    }

    /// Whose sd_notify datagrams count ([`NotifyAccess::Main`] by default).
    pub fn notify_access(mut self, access: NotifyAccess) -> Self {
        self.notify_access = access;
        self
    }

    /// Runs the child as this user (a name or a numeric id): its uid, and
    /// unless told otherwise its primary group and supplementary groups (a
    /// numeric id with no passwd entry gets the group of the same number and
    /// no supplementary groups). Needs the owner to be privileged.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// Runs the child with this primary group (a name or a numeric id).
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// Sets the child's supplementary groups (names or numeric ids) instead
    /// of the user's.
    pub fn supplementary_groups<I, S>(mut self, groups: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.groups = Some(groups.into_iter().map(Into::into).collect());
        self
    }

    /// The child's file mode creation mask (for example `0o027`).
    pub fn umask(mut self, umask: u32) -> Self {
        self.umask = Some(umask);
        self
    }

    /// The signal that asks the child to stop (SIGTERM by default; SIGINT is
    /// a fast shutdown for some databases). SIGKILL follows once the stop
    /// timeout has passed.
    pub fn stop_signal(mut self, signal: i32) -> Self {
        self.stop_signal = signal;
        self
    }

    /// Holds the child by its process group only, as on a host that allows
    /// no cgroup of ours ([`Containment::ProcessGroup`]): for a child whose
    /// cgroup another manager owns. A daemon that calls `setsid` escapes it.
    pub fn without_cgroup(mut self) -> Self {
        self.cgroup = false;
        self
    }

    /// Opens a request channel to the child (fd 3, see [`ChannelSpec`] for
    /// the protocol), so that [`ProcessRequest::Call`] reaches it.
    pub fn channel(mut self, channel: ChannelSpec) -> Self {
        self.channel = Some(channel);
        self
    }

    /// Runs `command` and `args` in a container instead (see
    /// [`ContainerSpec`]): the child is the engine's `run`, attached. The
    /// spec's and the pod's variables reach the container; the probes, the
    /// stop signal, the output and the request channel work as for a
    /// process. An empty `command` runs the image's own.
    pub fn container(mut self, container: ContainerSpec) -> Self {
        self.container = Some(container);
        self
    }

    /// The container, for a container pod.
    pub fn container_spec(&self) -> Option<&ContainerSpec> {
        self.container.as_ref()
    }

    /// Checks every value that could never work, naming its field: the
    /// probe's target; a stop signal that does not end a process by default
    /// (SIGSTOP, SIGCONT, SIGCHLD, …); a umask beyond 0o777; a user or group
    /// id of `4294967295` (the kernel's "no id") or written with a sign;
    /// more supplementary groups than the kernel takes (65,536); channel
    /// limits out of range. The runtime refuses to start with an invalid
    /// spec.
    pub fn validate(&self) -> Result<(), InvalidSpec> {
        self.probe.validate()?;
        if let Some(channel) = &self.channel {
            channel.validate()?;
        }
        let invalid = |field: &'static str, reason: String| InvalidSpec { field, reason };
        if let Some(container) = &self.container {
            container.validate()?;
            // These would apply to the engine's process, not the container.
            let process_only = [
                ("user", self.user.is_some()),
                ("group", self.group.is_some()),
                ("groups", self.groups.is_some()),
                ("umask", self.umask.is_some()),
                ("cwd", self.cwd.is_some()),
                ("watchdog", self.watchdog.is_some()),
            ];
            if let Some((field, _)) = process_only.iter().find(|(_, set)| *set) {
                return Err(invalid(
                    field,
                    "applies to a process, not to a container".into(),
                ));
            }
        }
        match Signal::try_from(self.stop_signal) {
            Err(_) => {
                return Err(invalid(
                    "stop_signal",
                    format!("must name a signal, got {}", self.stop_signal),
                ))
            }
            Ok(signal) if !ends_by_default(signal) => {
                return Err(invalid(
                    "stop_signal",
                    format!("must be a signal that ends a process by default, got {signal}"),
                ))
            }
            Ok(_) => {}
        }
        if let Some(mask) = self.umask.filter(|&mask| mask > 0o777) {
            return Err(invalid(
                "umask",
                format!("must be at most 0777, got {mask:#o}"),
            ));
        }
        if let Some(user) = &self.user {
            check_id(user).map_err(|r| invalid("user", r))?;
        }
        if let Some(group) = &self.group {
            check_id(group).map_err(|r| invalid("group", r))?;
        }
        if let Some(groups) = &self.groups {
            if groups.len() > MAX_GROUPS {
                return Err(invalid(
                    "groups",
                    format!(
                        "must hold at most {MAX_GROUPS} groups, got {}",
                        groups.len()
                    ),
                ));
            }
            groups
                .iter()
                .try_for_each(|g| check_id(g))
                .map_err(|r| invalid("groups", r))?;
        }
        Ok(())
    }

    /// The command.
    pub fn command(&self) -> &std::path::Path {
        &self.command
    }
}

/// What a process pod can be asked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProcessRequest {
    /// The child's pids, status line, processes and last output; answered
    /// [`ProcessResponse::Info`].
    Info,
    /// Send this signal number to the main process; answered
    /// [`ProcessResponse::Info`].
    Signal(i32),
    /// A request for the child itself, sent over its request channel
    /// ([`ProcessSpec::channel`]) and answered [`ProcessResponse::Reply`]
    /// with the child's answer. Many may be in flight at once.
    Call(Bytes),
}

impl ProcessRequest {
    /// A [`ProcessRequest::Call`] of these bytes.
    pub fn call(payload: impl Into<Bytes>) -> Self {
        ProcessRequest::Call(payload.into())
    }
}

/// The answer to a [`ProcessRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProcessResponse {
    /// The answer to [`ProcessRequest::Info`] and
    /// [`ProcessRequest::Signal`].
    Info(ProcessInfo),
    /// The child's answer to a [`ProcessRequest::Call`].
    Reply(Bytes),
}

impl ProcessResponse {
    /// The process information, for an `Info` answer.
    pub fn info(&self) -> Option<&ProcessInfo> {
        match self {
            ProcessResponse::Info(info) => Some(info),
            ProcessResponse::Reply(_) => None,
        }
    }

    /// The process information, for an `Info` answer.
    pub fn into_info(self) -> Option<ProcessInfo> {
        match self {
            ProcessResponse::Info(info) => Some(info),
            ProcessResponse::Reply(_) => None,
        }
    }

    /// The child's answer, for a `Reply`.
    pub fn into_reply(self) -> Option<Bytes> {
        match self {
            ProcessResponse::Reply(reply) => Some(reply),
            ProcessResponse::Info(_) => None,
        }
    }
}

/// The process information of a [`ProcessResponse::Info`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessInfo {
    /// The process that was spawned.
    pub pid: u32,
    /// The main process: the one spawned, or the one it handed over to with
    /// sd_notify's `MAINPID=`. Its end is the runtime's end.
    pub main_pid: u32,
    /// The last `STATUS=` it sent over sd_notify.
    pub status: Option<String>,
    /// Every process of the pod still running, sorted.
    pub processes: Vec<u32>,
    /// How they are held together.
    pub containment: Containment,
    /// Its last lines of output, oldest first.
    pub output: Vec<String>,
    /// The container, for a container pod.
    pub container: Option<Box<ContainerInfo>>,
}

/// A [`Runtime`] that is an OS child process.
///
/// - **Start**: spawned with stdout and stderr piped, in a process group
///   and (where the host allows it) a cgroup v2 of its own, as the
///   configured user and group, with a parent-death signal. Ready per its
///   [`ReadinessProbe`]. A spawn failure (missing executable, permission
///   denied, bad cwd, unknown user) or an exit before ready fails the start,
///   naming the OS error or the exit and the last lines of output; a start
///   deadline that passes names the probe, its tries and its last error.
/// - **Watch**: the end of the main process is observed at once and reported
///   as [`FailureCause::Exited`] with code, signal and last output; the rest
///   of the pod's processes are killed with it. Output lines go to `tracing`
///   with the pod's name and stream.
/// - **Stop**: teardown sends the stop signal to the process group and to
///   the main process and waits for the main process; everything else in
///   the pod is then killed. The owner's stop deadline forces the runtime
///   down, and dropping it kills every process of the pod. The child is
///   always reaped, and never signalled by pid after it was reaped.
pub struct ProcessRuntime {
    spec: ProcessSpec,
    env: RuntimeEnv,
    child: Option<Child>,
}

struct Child {
    state: Rc<ChildState>,
    channel: Option<Channel>,
    exit: watch::Receiver<Option<Option<ExitStatus>>>,
    tasks: Vec<JoinHandle<()>>,
}

/// Readiness as the output readers and the notify listener see it.
#[derive(Debug, Default)]
struct Readiness {
    ready: Cell<bool>,
    extend: Cell<Option<Duration>>,
    wake: Notify,
}

impl Readiness {
    fn set_ready(&self) {
        self.ready.set(true);
        self.wake.notify_one();
    }

    fn extend(&self, by: Duration) {
        self.extend
            .set(Some(self.extend.get().map_or(by, |e| e.max(by))));
        self.wake.notify_one();
    }
}

struct ChildState {
    name: String,
    /// The process that was spawned.
    pid: u32,
    /// The main process (see [`ProcessInfo::main_pid`]).
    main: Cell<u32>,
    /// A pidfd of the main process, when it is not the spawned one.
    main_fd: RefCell<Option<(Rc<PidFd>, JoinHandle<()>)>>,
    cgroup: Option<Rc<Cgroup>>,
    containment: Containment,
    notify_access: NotifyAccess,
    stop_signal: Signal,
    /// The session the child was started in (the owner's).
    session: u32,
    /// The child's process group was seen empty: its id is not ours anymore.
    group_gone: Cell<bool>,
    reaped: Cell<bool>,
    ended: Cell<bool>,
    /// How many other processes of the pod still ran when the main ended.
    left_running: Cell<usize>,
    serving: Cell<bool>,
    stopping: Cell<bool>,
    /// The child said `STOPPING=1`.
    shutting_down: Cell<bool>,
    readiness: Readiness,
    output: RefCell<VecDeque<String>>,
    output_lines: usize,
    forward_output: bool,
    /// How many of the child's output streams are still read (until their
    /// end of file), and word when one ends.
    outputs_open: Cell<usize>,
    output_ended: Notify,
    status: RefCell<Option<String>>,
    last_watchdog: Cell<Instant>,
    /// Datagrams refused by `notify_access`: how many, and the last sender.
    refused: Cell<(u64, u32)>,
    exit: watch::Sender<Option<Option<ExitStatus>>>,
    reporter: FailureReporter,
    pids: PidReporter,
    /// The request channel's answers, which the end of the main process
    /// lets reach their callers before it is reported.
    channel: Option<Drain>,
    /// The container, for a container pod.
    container: Option<Engine>,
}

/// How long a dropped runtime waits for the engine to remove its container.
const REMOVE_ON_DROP: Duration = Duration::from_secs(10);

/// A container pod's engine side of one start.
struct Engine {
    spec: ContainerSpec,
    cli: container::EngineCli,
    info: RefCell<ContainerInfo>,
    /// The pid the engine named with `MAINPID=` (its monitor), whose
    /// notifications count.
    notifier: Cell<Option<u32>>,
    /// The container was removed: nothing is left to remove on drop.
    removed: Cell<bool>,
    /// Notices that came before the engine named its monitor, by sender
    /// (the last few only).
    early: RefCell<VecDeque<(u32, Vec<Notice>)>>,
}

impl Engine {
    /// How many early datagrams are kept.
    const EARLY: usize = 8;

    fn keep_early(&self, sender: u32, notices: Vec<Notice>) {
        if self.notifier.get().is_some() {
            return;
        }
        let mut early = self.early.borrow_mut();
        if early.len() == Engine::EARLY {
            early.pop_front();
        }
        early.push_back((sender, notices));
    }

    fn take_early(&self, from: u32) -> Vec<Notice> {
        let early = std::mem::take(&mut *self.early.borrow_mut());
        early
            .into_iter()
            .filter(|(sender, _)| *sender == from)
            .flat_map(|(_, notices)| notices)
            .collect()
    }

    fn name(&self) -> String {
        self.info.borrow().name.clone()
    }

    /// Removes the container (once), bounded; a failure is logged.
    async fn remove(&self, pod: &str) {
        if self.removed.replace(true) {
            return;
        }
        if let Err(e) = self.cli.remove(&self.name()).await {
            tracing::warn!(pod, container = %self.name(), error = %e, "cannot remove the container");
        }
    }
}

impl ChildState {
    fn record(&self, stream: &'static str, line: String) {
        tracing::info!(pod = %self.name, pid = self.pid, stream, "{line}");
        let mut output = self.output.borrow_mut();
        if output.len() == self.output_lines {
            output.pop_front();
        }
        if self.output_lines > 0 {
            output.push_back(line);
        }
    }

    fn output(&self) -> Vec<String> {
        self.output.borrow().iter().cloned().collect()
    }

    fn exited(&self, status: Option<ExitStatus>) -> FailureCause {
        FailureCause::Exited {
            code: status.and_then(|s| s.code()),
            signal: status.and_then(|s| s.signal()),
            output: self.output(),
        }
    }

    /// Why the main process's end before ready failed the start; a main
    /// that left others running most likely daemonized, and is told so.
    fn ended_before_ready(&self, status: Option<ExitStatus>) -> FailureCause {
        let exited = self.exited(status);
        if let Some(engine) = &self.container {
            // The other processes were the engine's monitor: no daemon.
            return match exited {
                FailureCause::Exited { .. } => FailureCause::Error(RuntimeError::fatal(format!(
                    "the container engine `{}` ended before the container was ready: it {exited}",
                    engine.cli.binary.display()
                ))),
                other => other,
            };
        }
        match self.left_running.get() {
            0 => exited,
            others => FailureCause::Error(RuntimeError::fatal(format!(
                "the main process ended before it was ready while {others} other process(es) \
                 of the pod still ran (all killed now): it probably put itself in the \
                 background. Run it in the foreground (nginx: `daemon off;`, redis: \
                 `--daemonize no`), or have it name its new main process with MAINPID= \
                 (notify probe). It {exited}"
            ))),
        }
    }

    /// Whether `pid` is one of the pod's processes.
    fn holds(&self, pid: u32) -> bool {
        if pid == self.pid || pid == self.main.get() {
            return true;
        }
        match &self.cgroup {
            Some(cgroup) => cgroup.contains(pid),
            None => self.group().contains(&pid) || descends_from(pid, self.pid),
        }
    }

    /// Whether a datagram from `sender` counts, per `notify_access`.
    fn may_notify(&self, sender: u32) -> bool {
        if let Some(engine) = &self.container {
            if engine.notifier.get() == Some(sender) {
                return true;
            }
        }
        let main = self.main.get();
        match self.notify_access {
            NotifyAccess::Main => sender == main,
            NotifyAccess::Exec => sender == main || sender == self.pid,
            NotifyAccess::All => self.holds(sender),
        }
    }

    /// The members of the spawned child's process group (zombies
    /// included), or none once the group was seen empty.
    ///
    /// A group's id cannot be taken by another group while the group has a
    /// member; once it has been empty, another process may lead a group of
    /// that id, which is never ours again. Members must also be in the
    /// session the child was started in.
    fn group(&self) -> Vec<u32> {
        if self.group_gone.get() {
            return Vec::new();
        }
        let members = group_members(self.pid, self.session);
        if members.is_empty() && self.reaped.get() {
            self.group_gone.set(true);
        }
        members
    }

    /// Gives the group up if the spawned child, exited but not yet reaped,
    /// is all that is left of it.
    fn last_look_at_group(&self) {
        if group_members(self.pid, self.session)
            .iter()
            .all(|&pid| pid == self.pid)
        {
            self.group_gone.set(true);
        }
    }

    /// Sends `signal` to the spawned child's process group, while it is
    /// provably still that group.
    fn signal_group(&self, signal: Signal) {
        if !self.reaped.get() || !self.group().is_empty() {
            let _ = killpg(Pid::from_raw(self.pid as i32), signal);
        }
    }

    /// Every process of the pod still running (zombies left out), sorted.
    fn processes(&self) -> Vec<u32> {
        let main = self.main.get();
        let mut pids = match &self.cgroup {
            Some(cgroup) => cgroup.pids(),
            None => self.group(),
        };
        pids.retain(|&pid| running(pid));
        if main != self.pid && !self.ended.get() && !pids.contains(&main) {
            pids.push(main);
            pids.sort_unstable();
        }
        pids
    }

    /// Sends `signal` to the main process, by pidfd when it was handed
    /// over, by pid only while the spawned child is not reaped.
    fn signal_main(&self, signal: Signal) -> io::Result<()> {
        if let Some((fd, _)) = &*self.main_fd.borrow() {
            return fd.signal(signal);
        }
        if self.reaped.get() {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        kill(Pid::from_raw(self.pid as i32), signal).map_err(io::Error::from)
    }

    /// Hands the main role to `pid` (sd_notify's `MAINPID=`), if it is one
    /// of the pod's processes.
    fn set_main(self: &Rc<Self>, pid: u32) {
        if pid == self.main.get() || self.ended.get() {
            return;
        }
        if let Some(engine) = &self.container {
            // The engine names its monitor once, and the monitor speaks for
            // the container; the engine's own process stays the one
            // watched: its exit status is the container's.
            match engine.notifier.get() {
                None => {
                    tracing::debug!(pod = %self.name, notifier = pid, "the container engine's monitor speaks for the container");
                    engine.notifier.set(Some(pid));
                    for notice in engine.take_early(pid) {
                        if !matches!(notice, Notice::MainPid(_)) {
                            self.apply(pid, notice);
                        }
                    }
                }
                Some(notifier) => {
                    tracing::warn!(pod = %self.name, pid, notifier, "ignored MAINPID: the engine named its monitor already")
                }
            }
            return;
        }
        if !self.holds(pid) {
            tracing::warn!(pod = %self.name, pid, "ignored MAINPID: not a process of this pod");
            return;
        }
        if pid == self.pid {
            if self.reaped.get() {
                return;
            }
            if let Some((_, watch)) = self.main_fd.borrow_mut().take() {
                watch.abort();
            }
        } else {
            let fd = match PidFd::open(pid) {
                Ok(fd) => Rc::new(fd),
                Err(e) => {
                    tracing::warn!(pod = %self.name, pid, error = %e, "ignored MAINPID: cannot watch it");
                    return;
                }
            };
            let state = Rc::clone(self);
            let watched = Rc::clone(&fd);
            let watch = tokio::task::spawn_local(async move {
                watched.exited().await;
                if state.main.get() == pid {
                    tracing::debug!(pod = %state.name, pid, "main process ended");
                    state.main_ended(None).await;
                }
            });
            if let Some((_, old)) = self.main_fd.replace(Some((fd, watch))) {
                old.abort();
            }
        }
        tracing::info!(pod = %self.name, from = self.main.get(), to = pid, "main process handed over");
        self.main.set(pid);
        self.pids.report(pid);
    }

    /// The main process has ended: kill the rest of the pod, report the end
    /// if it was not asked for, and wake whoever waits for it. Once.
    async fn main_ended(&self, status: Option<ExitStatus>) {
        if self.ended.replace(true) {
            return;
        }
        let main = self.main.get();
        let others = self
            .processes()
            .into_iter()
            .filter(|&pid| pid != main)
            .count();
        self.left_running.set(others);
        // The container first: the engine's monitor may share the pod's
        // cgroup, and must see the container go.
        if let Some(engine) = &self.container {
            engine.remove(&self.name).await;
        }
        match &self.cgroup {
            Some(cgroup) => {
                if !cgroup.kill_and_wait(KILL_WAIT).await {
                    tracing::warn!(pod = %self.name, cgroup = %cgroup.path().display(), "processes of the pod still run after SIGKILL");
                }
            }
            None => self.signal_group(Signal::SIGKILL),
        }
        if self.serving.get() && !self.stopping.get() {
            // Its last lines are read (recorded for the cause, forwarded)
            // before its exit is told, which may end the owner.
            let _ = time::timeout(OUTPUT_GRACE, self.output_read()).await;
            // Answers the child wrote before it ended are delivered, not
            // replaced by its exit: the rest of the pod is dead by now, so
            // the channel is at its end of file.
            if let Some(channel) = &self.channel {
                let _ = time::timeout(EXIT_GRACE, channel.drained()).await;
            }
            self.reporter.report(self.exited(status));
        }
        let _ = self.exit.send(Some(status));
    }

    /// Until every output stream of the child has been read to its end.
    async fn output_read(&self) {
        loop {
            // Registered before the count is read: an end in between is
            // not missed.
            let ended = self.output_ended.notified();
            let mut ended = std::pin::pin!(ended);
            ended.as_mut().enable();
            if self.outputs_open.get() == 0 {
                return;
            }
            ended.await;
        }
    }

    /// Kills every process of the pod at once, without waiting.
    fn kill_all(&self) {
        self.signal_group(Signal::SIGKILL);
        if let Some((fd, _)) = &*self.main_fd.borrow() {
            let _ = fd.signal(Signal::SIGKILL);
        }
        if let Some(cgroup) = &self.cgroup {
            cgroup.kill();
        }
    }
}

impl ProcessRuntime {
    /// A factory of process runtimes for `spec`, for
    /// [`RuntimeActor::spawn`](crate::RuntimeActor::spawn) or a pod.
    pub fn factory(spec: ProcessSpec) -> RuntimeFactory<ProcessRuntime> {
        RuntimeFactory::new(move |env| ProcessRuntime {
            spec: spec.clone(),
            env: env.clone(),
            child: None,
        })
    }

    fn command(
        &self,
        notify: Option<&NotifySocket>,
        identity: Identity,
        cgroup: Option<Arc<File>>,
        channel: Option<RawFd>,
        container: Option<container::Run<'_>>,
    ) -> Spawn {
        let spec = &self.spec;
        let mut cmd = match (&container, &spec.container) {
            (Some(run), Some(engine)) => {
                let mut cmd = Spawn::new(engine.engine_binary());
                cmd.args(engine.run_args(run));
                cmd
            }
            _ => {
                let mut cmd = Spawn::new(&spec.command);
                cmd.args(&spec.args);
                cmd
            }
        };
        cmd.process_group().identity(identity);
        if !spec.inherit_env {
            cmd.env_clear();
        }
        // Not the owner's own: a child speaks to the pod, or to no one.
        cmd.env_remove("NOTIFY_SOCKET");
        cmd.envs(&spec.env);
        cmd.envs(self.env.iter());
        if let Some(cwd) = &spec.cwd {
            cmd.current_dir(cwd);
        }
        if let Some(notify) = notify {
            cmd.env("NOTIFY_SOCKET", notify.path());
        }
        if let Some(watchdog) = spec.watchdog {
            cmd.env("WATCHDOG_USEC", watchdog.as_micros().to_string());
        }
        if let Some(procs) = cgroup {
            cmd.cgroup(procs);
        }
        if let Some(fd) = channel {
            cmd.env(channel::FD_VAR, channel::CHILD_FD.to_string());
            cmd.channel(fd);
        }
        cmd
    }

    /// The variables a container gets (`--env KEY`, their values in the
    /// engine's environment): the spec's, the pod's, and the channel's.
    fn container_env_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.spec.env.keys().cloned().collect();
        keys.extend(self.env.iter().map(|(k, _)| k.to_owned()));
        if self.spec.channel.is_some() {
            keys.push(channel::FD_VAR.to_owned());
        }
        keys.sort();
        keys.dedup();
        keys
    }

    /// Resolves `user`, `group` and the supplementary groups to ids, before
    /// the spawn (the lookups read files and allocate).
    fn identity(&self) -> Result<Identity, RuntimeError> {
        let spec = &self.spec;
        let mut identity = Identity::default();
        if let Some(mask) = spec.umask {
            identity.umask = Some(Mode::from_bits_truncate(mask & 0o777));
        }
        let user = match &spec.user {
            Some(name) => Some(lookup_user(name)?),
            None => None,
        };
        if let Some(user) = &user {
            identity.uid = Some(user.uid);
            identity.gid = Some(user.gid);
        }
        if let Some(group) = &spec.group {
            identity.gid = Some(lookup_group(group)?);
        }
        identity.groups = match (&spec.groups, &user) {
            (Some(names), _) => Some(
                names
                    .iter()
                    .map(|name| lookup_group(name))
                    .collect::<Result<_, _>>()?,
            ),
            (None, Some(user)) => {
                let gid = identity.gid.unwrap_or(user.gid);
                let name = CString::new(user.name.as_str())
                    .map_err(|_| RuntimeError::fatal("a user name holds NUL"))?;
                Some(nix::unistd::getgrouplist(&name, gid).map_err(|e| {
                    RuntimeError::fatal(format!("cannot list the groups of user `{}`", user.name))
                        .with_source(e)
                })?)
            }
            // Only the group changes: drop the owner's supplementary groups.
            (None, None) if identity.gid.is_some() => Some(Vec::new()),
            (None, None) => None,
        };
        Ok(identity)
    }

    /// Sends `payload` to the child over its request channel; the answer
    /// is the child's reply.
    fn call_child(
        &self,
        payload: Bytes,
    ) -> LocalBoxFuture<'static, Result<ProcessResponse, RequestError>> {
        let refused = match &self.child {
            Some(Child {
                channel: Some(channel),
                ..
            }) => {
                let reply = channel.call(payload);
                return Box::pin(async move { reply.await.map(ProcessResponse::Reply) });
            }
            Some(_) => {
                RuntimeError::new("this process pod has no request channel (runtime.channel)")
            }
            None => RuntimeError::new("no child process"),
        };
        Box::pin(std::future::ready(Err(RequestError::Runtime(refused))))
    }
}

fn lookup_user(name: &str) -> Result<User, RuntimeError> {
    let found = match numeric_id(name) {
        Some(uid) => User::from_uid(Uid::from_raw(uid)),
        None => User::from_name(name),
    };
    match found {
        Ok(Some(user)) => Ok(user),
        Ok(None) => match numeric_id(name) {
            // A numeric id with no passwd entry is still a valid identity.
            Some(uid) => Ok(User {
                name: uid.to_string(),
                passwd: CString::default(),
                uid: Uid::from_raw(uid),
                gid: Gid::from_raw(uid),
                gecos: CString::default(),
                dir: PathBuf::from("/"),
                shell: PathBuf::from("/bin/sh"),
            }),
            None => Err(RuntimeError::fatal(format!("unknown user `{name}`"))),
        },
        Err(e) => Err(RuntimeError::fatal(format!("cannot look up user `{name}`")).with_source(e)),
    }
}

fn lookup_group(name: &str) -> Result<Gid, RuntimeError> {
    if let Some(gid) = numeric_id(name) {
        return Ok(Gid::from_raw(gid));
    }
    match Group::from_name(name) {
        Ok(Some(group)) => Ok(group.gid),
        Ok(None) => Err(RuntimeError::fatal(format!("unknown group `{name}`"))),
        Err(e) => Err(RuntimeError::fatal(format!("cannot look up group `{name}`")).with_source(e)),
    }
}

/// Which containment the pods of this process get; said once per process.
fn containment(pod: &str, wanted: bool) -> (Option<Cgroup>, Containment) {
    static SAID: Once = Once::new();
    let (owner, leftovers) = cgroup::init();
    if let Some(leftovers) = leftovers.filter(|l| !l.cgroups.is_empty()) {
        tracing::warn!(
            cgroups = leftovers.cgroups.len(),
            processes = leftovers.processes,
            first = %leftovers.cgroups[0].display(),
            "removed what owners that died had left running"
        );
    }
    let sockets = crate::notify::sweep_once();
    if let Some(first) = sockets.first() {
        tracing::warn!(
            count = sockets.len(),
            first = %first.display(),
            "removed notify sockets that owners which died had left behind"
        );
    }
    let made = match wanted {
        true => owner.and_then(|()| Cgroup::create(pod)),
        false => Err("the spec asks for the process group only".to_owned()),
    };
    let containment = match &made {
        Ok(cgroup) => Containment::Cgroup {
            path: cgroup.path().to_owned(),
        },
        Err(reason) => Containment::ProcessGroup {
            reason: reason.clone(),
        },
    };
    if !wanted {
        return (None, containment);
    }
    SAID.call_once(|| match &containment {
        Containment::Cgroup { path } => {
            let parent = path.parent().unwrap_or(path);
            tracing::info!(cgroup = %parent.display(), "process pods are contained by cgroup v2");
        }
        Containment::ProcessGroup { reason } => tracing::warn!(
            %reason,
            "process pods are contained by their process group only: a daemon that calls setsid can outlive its pod"
        ),
    });
    (made.ok(), containment)
}

impl Runtime for ProcessRuntime {
    type Request = ProcessRequest;
    type Response = ProcessResponse;

    async fn setup(&mut self, ctx: &mut RuntimeContext) -> Result<(), RuntimeError> {
        let probe = self.spec.probe.clone();
        self.spec.validate().map_err(|e| {
            RuntimeError::fatal(format!("invalid process spec: {e}")).with_source(e)
        })?;
        let stop_signal = Signal::try_from(self.spec.stop_signal).map_err(|e| {
            RuntimeError::fatal(format!("no stop signal {}", self.spec.stop_signal)).with_source(e)
        })?;
        let identity = self.identity()?;
        // A container pod always listens: the engine names its monitor
        // there, which is how the container's main process is found.
        let wants_notify = probe == ReadinessProbe::Notify
            || self.spec.watchdog.is_some()
            || self.spec.container.is_some();
        let notify = if wants_notify {
            Some(NotifySocket::bind().map_err(|e| {
                RuntimeError::fatal(format!("cannot bind the notify socket: {e}")).with_source(e)
            })?)
        } else {
            None
        };
        let wanted = self.spec.cgroup;
        let (cgroup, containment) = if cgroup::initialized() {
            containment(ctx.name(), wanted)
        } else {
            // The first time in a process: a throwaway child, the keeper,
            // and a sweep that may wait for a dead owner's processes to
            // die; not on the actor's thread.
            let name = ctx.name().to_owned();
            tokio::task::spawn_blocking(move || containment(&name, wanted))
                .await
                .map_err(|e| {
                    RuntimeError::fatal("setting up the process containment failed").with_source(e)
                })?
        };
        let procs = cgroup.as_ref().map(Cgroup::procs);
        let command = match &self.spec.container {
            Some(container) => container.engine_binary().display().to_string(),
            None => self.spec.command.display().to_string(),
        };
        let owner = procfs::owner_mark().unwrap_or_else(|| std::process::id().to_string());
        let env_keys = self.container_env_keys();
        let mut engine = None;
        if let Some(container) = &self.spec.container {
            container.check_host().map_err(RuntimeError::fatal)?;
            if ctx.name().chars().any(char::is_control) {
                return Err(RuntimeError::fatal(
                    "a container pod's name must not hold control characters (it is a label)",
                ));
            }
            let binary = container.engine_binary();
            let cli = container::EngineCli {
                binary: binary.to_owned(),
                clean_env: !self.spec.inherit_env,
                env: self
                    .spec
                    .env
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .chain(self.env.iter().map(|(k, v)| (k.to_owned(), v.to_owned())))
                    .collect(),
            };
            let removed = cli
                .remove_leftovers_once(ctx.name())
                .await
                .map_err(|e| RuntimeError::fatal(format!("cannot start the container: {e}")))?;
            if let Some(first) = removed.first() {
                tracing::warn!(
                    pod = %ctx.name(),
                    count = removed.len(),
                    first = %first,
                    "removed containers that owners which died had left behind"
                );
            }
            engine = Some(Engine {
                spec: container.clone(),
                cli,
                info: RefCell::new(ContainerInfo {
                    engine: binary.to_owned(),
                    name: container::name_for(ctx.name()),
                    id: None,
                    source: container.source().clone(),
                    main_pid: None,
                    ports: container.ports().to_vec(),
                    leftovers_removed: removed.len(),
                }),
                notifier: Cell::new(None),
                removed: Cell::new(false),
                early: RefCell::new(VecDeque::new()),
            });
        }
        let run = engine.as_ref().map(|engine| container::Run {
            name: engine.name(),
            pod: ctx.name(),
            owner: &owner,
            generation: ctx.generation(),
            notify_probe: probe == ReadinessProbe::Notify,
            channel: self.spec.channel.is_some(),
            stop_signal: self.spec.stop_signal,
            env_keys: &env_keys,
            command: Some(self.spec.command.as_path()).filter(|c| !c.as_os_str().is_empty()),
            args: &self.spec.args,
        });
        let (channel, child_end) = match &self.spec.channel {
            Some(spec) => {
                let opened = Pair::new().and_then(|Pair { ours, child }| {
                    Ok((Channel::open(spec.clone(), ours)?, child))
                });
                let (channel, child_end) = opened.map_err(|e| {
                    RuntimeError::fatal(format!("cannot open the request channel: {e}"))
                        .with_source(e)
                })?;
                (Some(channel), Some(child_end))
            }
            None => (None, None),
        };
        let spawned = self
            .command(
                notify.as_ref(),
                identity,
                procs,
                child_end.as_ref().map(AsRawFd::as_raw_fd),
                run,
            )
            .spawn();
        // The child has its copy (or failed): the parent's is closed, so
        // that the child's exit ends the channel.
        drop(child_end);
        let mut child = spawned.map_err(|e| {
            let place = match &self.spec.cwd {
                Some(cwd) => format!(" in `{}`", cwd.display()),
                None => String::new(),
            };
            let spec = &self.spec;
            let mut who = String::new();
            if let Some(user) = &spec.user {
                who.push_str(&format!(" as user `{user}`"));
            }
            if let Some(group) = &spec.group {
                who.push_str(&format!(" with group `{group}`"));
            }
            if let Some(groups) = &spec.groups {
                who.push_str(&format!(" and {} supplementary group(s)", groups.len()));
            }
            let changes_identity =
                spec.user.is_some() || spec.group.is_some() || spec.groups.is_some();
            if changes_identity && spawn::errno(&e) == Some(libc::EPERM) {
                who.push_str(
                    " (changing the user or groups needs root, or CAP_SETUID and CAP_SETGID)",
                );
            }
            RuntimeError::fatal(format!("cannot start `{command}`{place}{who}: {e}")).with_source(e)
        })?;
        let raw_pid = child.pid();
        let pidfd = child.pidfd().and_then(PidFd::from_owned).map_err(|e| {
            RuntimeError::fatal(format!("cannot watch `{command}` (pid {raw_pid}): {e}"))
                .with_source(e)
        })?;
        ctx.set_pid(raw_pid);
        let (exit_tx, exit) = watch::channel(None);
        let state = Rc::new(ChildState {
            name: ctx.name().to_owned(),
            pid: raw_pid,
            main: Cell::new(raw_pid),
            main_fd: RefCell::new(None),
            cgroup: cgroup.map(Rc::new),
            containment,
            notify_access: self.spec.notify_access,
            stop_signal,
            session: nix::unistd::getsid(None).map_or(0, |sid| sid.as_raw() as u32),
            group_gone: Cell::new(false),
            reaped: Cell::new(false),
            ended: Cell::new(false),
            left_running: Cell::new(0),
            serving: Cell::new(false),
            stopping: Cell::new(false),
            shutting_down: Cell::new(false),
            readiness: Readiness::default(),
            output: RefCell::new(VecDeque::new()),
            output_lines: self.spec.output_lines,
            forward_output: self.spec.forward_output,
            outputs_open: Cell::new(0),
            output_ended: Notify::new(),
            status: RefCell::new(None),
            last_watchdog: Cell::new(Instant::now()),
            refused: Cell::new((0, 0)),
            exit: exit_tx,
            reporter: ctx.failure_reporter(),
            pids: ctx.pid_reporter(),
            channel: channel.as_ref().map(|(channel, _)| channel.drain()),
            container: engine,
        });
        let pattern = match &probe {
            ReadinessProbe::Stdout { pattern } => Some(pattern.clone()),
            _ => None,
        };
        let mut tasks = Vec::new();
        let pipes = [
            (child.stdout.take(), "stdout", pattern),
            (child.stderr.take(), "stderr", None),
        ];
        for (fd, name, pattern) in pipes {
            let Some(fd) = fd else { continue };
            match pipe::Receiver::from_owned_fd(fd) {
                Ok(stream) => {
                    state.outputs_open.set(state.outputs_open.get() + 1);
                    tasks.push(spawn_reader(stream, name, Rc::clone(&state), pattern));
                }
                // Unread, the child's writes end with EPIPE: say why.
                Err(e) => {
                    tracing::warn!(pod = %state.name, stream = name, error = %e, "cannot read the child's output")
                }
            }
        }
        if let Some(notify) = notify {
            tasks.push(spawn_notify(notify, Rc::clone(&state)));
        }
        let channel = channel.map(|(channel, broken)| {
            tasks.push(spawn_channel_guard(broken, Rc::clone(&state)));
            channel
        });
        // The watcher is not aborted with the others: it must live to reap.
        spawn_watcher(child, pidfd, Rc::clone(&state));
        self.child = Some(Child {
            state: Rc::clone(&state),
            channel,
            exit: exit.clone(),
            tasks,
        });

        let what = describe(&probe, &state);
        tracing::info!(pod = %state.name, pid = raw_pid, waiting_for = %what, "waiting for readiness");
        ctx.waiting_for(what.clone());
        let mut exit = exit;
        let ctx = &*ctx;
        let ready = async {
            match &probe {
                ReadinessProbe::None => Ok(()),
                ReadinessProbe::Notify | ReadinessProbe::Stdout { .. } => {
                    let mut refused = state.refused.get().0;
                    loop {
                        if state.readiness.ready.get() {
                            return Ok(());
                        }
                        if let Some(by) = state.readiness.extend.take() {
                            ctx.extend_deadline(by, "EXTEND_TIMEOUT_USEC");
                        }
                        let (count, sender) = state.refused.get();
                        if count != refused {
                            refused = count;
                            ctx.waiting_for(format!(
                                "{}; ignored {count} datagram(s), the last from pid {sender}, \
                                 which notify_access = {} does not allow",
                                describe(&probe, &state),
                                access_name(state.notify_access)
                            ));
                        }
                        state.readiness.wake.notified().await;
                    }
                }
                ReadinessProbe::Tcp {
                    address,
                    interval,
                    timeout,
                } => {
                    poll_probe(ctx, &what, *interval, || probe::tcp(address, *timeout)).await;
                    Ok(())
                }
                ReadinessProbe::Http {
                    url,
                    interval,
                    timeout,
                } => {
                    let target = probe::http_target(url).map_err(|e| {
                        RuntimeError::fatal(format!("invalid probe: {e}")).with_source(e)
                    })?;
                    poll_probe(ctx, &what, *interval, || probe::http(&target, *timeout)).await;
                    Ok(())
                }
            }
        };
        tokio::select! {
            ready = ready => ready?,
            status = exit.wait_for(Option::is_some) => {
                let cause = match status {
                    Ok(status) => (*status).map(|s| state.ended_before_ready(s)),
                    Err(_) => None,
                };
                // Reported as the exit it was, not as a setup error.
                state.reporter.report(cause.unwrap_or(FailureCause::Lost));
                std::future::pending::<()>().await;
            }
        }
        if let Some(engine) = &state.container {
            // Ready, the container runs: its id and main process for the
            // status and `Started`.
            let found = match engine.notifier.get().and_then(container::locate) {
                Some(found) => Ok(found),
                None => engine.cli.inspect(&engine.name()).await,
            };
            match found {
                Ok((id, pid)) => {
                    tracing::info!(pod = %state.name, container = %engine.name(), id = %id, pid, "container ready");
                    let mut info = engine.info.borrow_mut();
                    info.id = Some(id);
                    info.main_pid = Some(pid);
                    state.pids.report(pid);
                }
                Err(e) => {
                    tracing::warn!(pod = %state.name, container = %engine.name(), error = %e, "cannot inspect the container")
                }
            }
        }
        state.serving.set(true);
        if let Some(watchdog) = self.spec.watchdog {
            state.last_watchdog.set(Instant::now());
            if let Some(child) = &mut self.child {
                child
                    .tasks
                    .push(spawn_watchdog(watchdog, Rc::clone(&state)));
            }
        }
        Ok(())
    }

    async fn handle(&mut self, req: ProcessRequest) -> Result<ProcessResponse, RuntimeError> {
        if let ProcessRequest::Call(payload) = req {
            // Sent on by `dispatch`; here only when called directly.
            return self.call_child(payload).await.map_err(|e| match e {
                RequestError::Runtime(e) => e,
                e => RuntimeError::new(e.to_string()).with_source(e),
            });
        }
        let Some(child) = &self.child else {
            return Err(RuntimeError::new("no child process"));
        };
        let state = &child.state;
        if let ProcessRequest::Signal(number) = req {
            let signal = Signal::try_from(number)
                .map_err(|e| RuntimeError::new(format!("no signal {number}")).with_source(e))?;
            if state.ended.get() {
                return Err(RuntimeError::new("the main process has already exited"));
            }
            state
                .signal_main(signal)
                .map_err(|e| RuntimeError::new(format!("cannot send {signal}")).with_source(e))?;
        }
        Ok(ProcessResponse::Info(ProcessInfo {
            pid: state.pid,
            main_pid: state.main.get(),
            status: state.status.borrow().clone(),
            processes: state.processes(),
            containment: state.containment.clone(),
            output: state.output(),
            container: state
                .container
                .as_ref()
                .map(|e| Box::new(e.info.borrow().clone())),
        }))
    }

    fn dispatch(&mut self, req: ProcessRequest) -> Dispatch<ProcessRequest, ProcessResponse> {
        match req {
            ProcessRequest::Call(payload) => Dispatch::Later(self.call_child(payload)),
            other => Dispatch::Handle(other),
        }
    }

    async fn health(&mut self) -> Result<(), RuntimeError> {
        match &self.child {
            Some(child) if !child.state.ended.get() => Ok(()),
            _ => Err(RuntimeError::fatal("the main process has exited")),
        }
    }

    async fn teardown(&mut self) {
        let Some(child) = &mut self.child else {
            return;
        };
        let state = &child.state;
        state.stopping.set(true);
        // The requests in flight are answered (or timed out) by now: the
        // child reads end of file first, then gets the stop signal.
        if let Some(channel) = &child.channel {
            channel.close();
        }
        if !state.ended.get() {
            let stopped = match &state.container {
                // Through the engine: the stop signal, then SIGKILL after
                // the container's stop timeout; the engine's process then
                // exits with the container.
                Some(engine) => {
                    let stopped = engine
                        .cli
                        .stop(&engine.name(), engine.spec.stop_timeout_value())
                        .await;
                    // Not created yet (a close right after the start), or
                    // the engine failed: the engine's process forwards the
                    // signal to its container, or gives up creating it.
                    if let Err(e) = &stopped {
                        tracing::debug!(pod = %state.name, container = %engine.name(), error = %e, "the engine did not stop the container; signalling its process");
                    }
                    stopped.is_ok()
                }
                None => false,
            };
            if !stopped {
                state.signal_group(state.stop_signal);
                if state.main.get() != state.pid {
                    let _ = state.signal_main(state.stop_signal);
                }
            }
        }
        let _ = child.exit.wait_for(Option::is_some).await;
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.state.stopping.set(true);
        if !self.state.ended.get() {
            self.state.kill_all();
        }
        if let Some(engine) = &self.state.container {
            if !engine.removed.replace(true) {
                // Waited for (bounded): a close that was forced returns
                // with the container gone, even if the owner exits next.
                engine.cli.remove_blocking(&engine.name(), REMOVE_ON_DROP);
            }
        }
        for task in &self.tasks {
            task.abort();
        }
        if let Some((_, watch)) = self.state.main_fd.borrow_mut().take() {
            watch.abort();
        }
    }
}

impl std::fmt::Debug for ProcessRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessRuntime")
            .field("command", &self.spec.command)
            .field("pid", &self.child.as_ref().map(|c| c.state.pid))
            .finish()
    }
}

fn access_name(access: NotifyAccess) -> &'static str {
    match access {
        NotifyAccess::Main => "main",
        NotifyAccess::Exec => "exec",
        NotifyAccess::All => "all",
    }
}

/// What the probe waits for, in words.
fn describe(probe: &ReadinessProbe, state: &ChildState) -> String {
    match probe {
        ReadinessProbe::Notify if state.container.is_some() => {
            "READY=1 from the container, through the engine's --sdnotify=container".into()
        }
        ReadinessProbe::Notify => match state.notify_access {
            NotifyAccess::Main => format!(
                "READY=1 on the notify socket from the main process (pid {})",
                state.main.get()
            ),
            NotifyAccess::Exec => format!(
                "READY=1 on the notify socket from pid {} or the main process (pid {})",
                state.pid,
                state.main.get()
            ),
            NotifyAccess::All => "READY=1 on the notify socket from any process of the pod".into(),
        },
        ReadinessProbe::Stdout { pattern } => format!("a stdout line containing {pattern:?}"),
        ReadinessProbe::Tcp { address, .. } => format!("the tcp probe to {address}"),
        ReadinessProbe::Http { url, .. } => format!("the http probe of {url}"),
        ReadinessProbe::None => "nothing".into(),
    }
}

// ===== tasks =====

/// Waits for the spawned child and reaps it; its end is the runtime's end
/// unless it handed the main role to another process.
fn spawn_watcher(mut child: Spawned, pidfd: PidFd, state: Rc<ChildState>) {
    tokio::task::spawn_local(async move {
        pidfd.exited().await;
        // Readable, the pidfd says the child has exited; a moment may pass
        // before it is a zombie that can be reaped. That wait happens off
        // this thread and reaps nothing.
        let reapable = match child.reapable() {
            Ok(true) => Ok(()),
            Ok(false) => match child.pidfd() {
                Ok(fd) => tokio::task::spawn_blocking(move || Spawned::wait_reapable(&fd))
                    .await
                    .unwrap_or_else(|e| Err(io::Error::other(e))),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        if let Err(e) = &reapable {
            tracing::debug!(pod = %state.name, error = %e, "waiting for the child to be reapable");
        }
        if reapable.is_ok() && state.cgroup.is_none() {
            // The group's last look, while the zombie still holds its pid:
            // no other process can have taken that id for a group of its
            // own yet. Once it is reaped, one may (and the group would
            // seem alive again, to be listed and signalled).
            state.last_look_at_group();
        }
        let status = match child.reap() {
            Ok(Some(status)) => Ok(status),
            Ok(None) => tokio::task::spawn_blocking(move || child.wait_blocking())
                .await
                .unwrap_or_else(|e| Err(io::Error::other(e))),
            Err(e) => Err(e),
        };
        let status = status.ok().flatten();
        state.reaped.set(true);
        if state.cgroup.is_none() {
            // Seen empty now, the group is never signalled again.
            state.group();
        }
        if let Some(status) = status {
            tracing::debug!(pod = %state.name, pid = state.pid, %status, "child exited");
        }
        if state.main.get() == state.pid {
            state.main_ended(status).await;
        } else if let Some(status) = status {
            tracing::debug!(
                pod = %state.name,
                pid = state.pid,
                main = state.main.get(),
                %status,
                "the spawned process exited after handing over the main role"
            );
        }
    });
}

/// What the thread that copies children's lines is given.
enum Forward {
    /// A line of a child's stdout (or stderr).
    Line { stderr: bool, line: String },
    /// Answered once every line queued before it is written.
    Written(oneshot::Sender<()>),
}

/// The queue of the thread that copies children's lines to this process's
/// stdout and stderr (detached: a stdout nobody reads never holds the exit).
static FORWARDER: std::sync::OnceLock<tokio::sync::mpsc::Sender<Forward>> =
    std::sync::OnceLock::new();

fn forwarder() -> &'static tokio::sync::mpsc::Sender<Forward> {
    FORWARDER.get_or_init(|| {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Forward>(1024);
        let _ = std::thread::Builder::new()
            .name("output-forwarder".into())
            .spawn(move || {
                use std::io::Write;
                while let Some(forward) = rx.blocking_recv() {
                    // A closed stdout is not the child's failure.
                    match forward {
                        Forward::Line { stderr: true, line } => {
                            let _ = writeln!(std::io::stderr().lock(), "{line}");
                        }
                        Forward::Line {
                            stderr: false,
                            line,
                        } => {
                            let _ = writeln!(std::io::stdout().lock(), "{line}");
                        }
                        Forward::Written(done) => {
                            let _ = std::io::stdout().lock().flush();
                            let _ = done.send(());
                        }
                    }
                }
            });
        tx
    })
}

/// Waits until the lines that children forwarding their output
/// ([`ProcessSpec::forward_output`]) wrote so far are written to this
/// process's stdout and stderr, for at most `within`.
///
/// They are written by a thread of their own, so that a stdout nobody reads
/// never holds a pod; an owner about to exit calls this first, or its
/// children's last lines may be lost with the process.
///
/// Returns `false` when they were not all written in time (a stdout nobody
/// reads, say); `true` at once when no child forwards its output.
pub async fn forwarded_output_written(within: Duration) -> bool {
    let Some(forwarder) = FORWARDER.get() else {
        return true;
    };
    let (done, written) = oneshot::channel();
    time::timeout(within, async {
        forwarder.send(Forward::Written(done)).await.is_ok() && written.await.is_ok()
    })
    .await
    .unwrap_or(false)
}

fn spawn_reader(
    stream: impl AsyncRead + Unpin + 'static,
    name: &'static str,
    state: Rc<ChildState>,
    pattern: Option<String>,
) -> JoinHandle<()> {
    tokio::task::spawn_local(async move {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        loop {
            let chunk = match reader.fill_buf().await {
                Ok([]) | Err(_) => {
                    // The last line, without its newline.
                    if !line.is_empty() {
                        take_line(&state, name, pattern.as_deref(), &line).await;
                    }
                    state
                        .outputs_open
                        .set(state.outputs_open.get().saturating_sub(1));
                    state.output_ended.notify_waiters();
                    break;
                }
                Ok(chunk) => chunk,
            };
            let (taken, ended) = match chunk.iter().position(|&b| b == b'\n') {
                Some(at) => (at + 1, true),
                None => (chunk.len(), false),
            };
            let room = MAX_LINE.saturating_sub(line.len());
            line.extend_from_slice(&chunk[..taken.min(room)]);
            reader.consume(taken);
            if ended {
                take_line(&state, name, pattern.as_deref(), &line).await;
                line.clear();
                // A line from the buffer costs no read, so tokio's budget
                // would not see it: a child that floods its output would
                // hold the arbiter, which may be its owner's, for
                // thousands of lines at a time.
                tokio::task::consume_budget().await;
            }
        }
    })
}

/// One line of the child's `name` stream: the stdout probe's, the output
/// tail's and `tracing`'s, and copied to the owner's own stream when the
/// spec forwards output.
async fn take_line(state: &ChildState, name: &'static str, pattern: Option<&str>, line: &[u8]) {
    let text = String::from_utf8_lossy(line).trim_end().to_owned();
    if pattern.is_some_and(|p| text.contains(p)) {
        state.readiness.set_ready();
    }
    if state.forward_output {
        // Written by a thread of its own: a full stdout holds this reader
        // (and so the child), never the arbiter.
        let _ = forwarder()
            .send(Forward::Line {
                stderr: name == "stderr",
                line: text.clone(),
            })
            .await;
    }
    state.record(name, text);
}

fn spawn_notify(socket: NotifySocket, state: Rc<ChildState>) -> JoinHandle<()> {
    tokio::task::spawn_local(async move {
        loop {
            let datagram = socket.recv().await;
            let Some(sender) = datagram.sender.filter(|&pid| state.may_notify(pid)) else {
                // A barrier or unknown keys say nothing: not worth a hint.
                if !datagram.notices.is_empty() {
                    if let (Some(engine), Some(sender)) = (&state.container, datagram.sender) {
                        // The engine may name its monitor after the
                        // monitor spoke: kept until then.
                        engine.keep_early(sender, datagram.notices.clone());
                    }
                    let (count, _) = state.refused.get();
                    let sender = datagram.sender.unwrap_or(0);
                    state.refused.set((count + 1, sender));
                    state.readiness.wake.notify_one();
                    socket.skip("its sender may not notify (notify_access)", datagram.sender);
                }
                continue;
            };
            for notice in datagram.notices {
                state.apply(sender, notice);
            }
        }
    })
}

impl ChildState {
    /// Acts on one notice from `sender`, who may notify.
    fn apply(self: &Rc<Self>, sender: u32, notice: Notice) {
        let state = self;
        match notice {
            Notice::Ready => state.readiness.set_ready(),
            Notice::ExtendTimeout(by) => state.readiness.extend(by),
            Notice::Status(status) => *state.status.borrow_mut() = Some(status),
            Notice::Watchdog => state.last_watchdog.set(Instant::now()),
            // Only said, not asked for: an exit that follows is still
            // reported as the exit it is. As in systemd, the
            // watchdog no longer applies while it shuts down.
            Notice::Stopping => {
                state.shutting_down.set(true);
                tracing::info!(pod = %state.name, pid = sender, "the child says it is stopping")
            }
            Notice::MainPid(pid) => state.set_main(pid),
            Notice::Errno(errno) => {
                tracing::warn!(pod = %state.name, pid = sender, errno, "child reported an error")
            }
        }
    }
}

/// Fails the runtime when its request channel breaks: at once when the
/// child broke the protocol; when it closed its end, only if it is not
/// exiting (its exit, with code and output, is the better cause).
fn spawn_channel_guard(broken: oneshot::Receiver<Broken>, state: Rc<ChildState>) -> JoinHandle<()> {
    tokio::task::spawn_local(async move {
        let Ok(broken) = broken.await else {
            return;
        };
        if !broken.protocol {
            let mut exit = state.exit.subscribe();
            let _ = time::timeout(EXIT_GRACE, exit.wait_for(Option::is_some)).await;
        }
        if state.stopping.get() || state.ended.get() {
            return;
        }
        tracing::warn!(pod = %state.name, pid = state.pid, reason = %broken.reason, "request channel broken");
        state
            .reporter
            .report(FailureCause::Error(RuntimeError::fatal(broken.reason)));
    })
}

fn spawn_watchdog(interval: Duration, state: Rc<ChildState>) -> JoinHandle<()> {
    tokio::task::spawn_local(async move {
        loop {
            let due = state.last_watchdog.get() + interval;
            time::sleep_until(due).await;
            if state.stopping.get() || state.shutting_down.get() || state.ended.get() {
                return;
            }
            if state.last_watchdog.get() + interval <= Instant::now() {
                state.reporter.report(FailureCause::Unhealthy {
                    reason: format!("no WATCHDOG=1 within {interval:?}"),
                });
                return;
            }
        }
    })
}

/// Tries `probe` every `interval` until it succeeds, telling the context
/// what it waits for: the tries so far and the last error.
async fn poll_probe<F, Fut>(ctx: &RuntimeContext, what: &str, interval: Duration, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = io::Result<()>>,
{
    let mut tries: u64 = 0;
    loop {
        tries += 1;
        match probe().await {
            Ok(()) => return,
            Err(e) => {
                tracing::trace!(error = %e, tries, "readiness probe failed");
                let s = if tries == 1 { "try" } else { "tries" };
                ctx.waiting_for(format!("{what} ({tries} {s}, last error: {e})"));
            }
        }
        time::sleep(interval).await;
    }
}
