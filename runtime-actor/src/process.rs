use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::rc::Rc;
use std::time::Duration;

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{self, Instant};

use crate::context::{FailureReporter, RuntimeContext};
use crate::env::RuntimeEnv;
use crate::error::{FailureCause, RuntimeError};
use crate::notify::{Notice, NotifySocket};
use crate::runtime::{Runtime, RuntimeFactory};

/// Longest output line kept; the rest of a longer line is dropped, so a child
/// that never writes a newline cannot grow the pod's memory.
const MAX_LINE: usize = 8 * 1024;

/// How a process runtime learns that its child is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadinessProbe {
    /// The child sends `READY=1` on `$NOTIFY_SOCKET` (systemd's sd_notify);
    /// `EXTEND_TIMEOUT_USEC=` extends the start deadline, `STATUS=` is kept.
    Notify,
    /// A line of the child's stdout contains `pattern` (Jina's
    /// `ready and listening`).
    Stdout {
        /// The text to look for.
        pattern: String,
    },
    /// A TCP connect to `address` (`host:port`) succeeds.
    Tcp {
        /// Where to connect.
        address: String,
        /// Time between tries.
        interval: Duration,
        /// Time allowed for one try.
        timeout: Duration,
    },
    /// `GET url` (plain `http://host:port/path`) answers 2xx or 3xx.
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

/// An OS child process to run as a runtime: the command and its arguments
/// (a vector, never a shell line), working directory, environment and
/// readiness probe.
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

    /// How many of the last output lines are kept for failure reports.
    pub fn output_lines(mut self, lines: usize) -> Self {
        self.output_lines = lines;
        self
    }

    /// The command.
    pub fn command(&self) -> &std::path::Path {
        &self.command
    }
}

/// What a process pod can be asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProcessRequest {
    /// The child's pid, status line and last output.
    Info,
    /// Send this signal number to the child.
    Signal(i32),
}

/// The answer to a [`ProcessRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// The child's pid.
    pub pid: u32,
    /// The last `STATUS=` it sent over sd_notify.
    pub status: Option<String>,
    /// Its last lines of output, oldest first.
    pub output: Vec<String>,
}

/// A [`Runtime`] that is an OS child process.
///
/// - **Start**: spawned in a process group of its own, with stdout and stderr
///   piped, and (on Linux) a parent-death signal so it cannot outlive the
///   thread that spawned it. Ready per its [`ReadinessProbe`]. A spawn
///   failure (missing executable, permission denied, bad cwd) or an exit
///   before ready fails the start, naming the OS error or the exit and the
///   last lines of output.
/// - **Watch**: the exit is observed at once and reported as
///   [`FailureCause::Exited`] with code, signal and last output. Output lines
///   go to `tracing` with the pod's name and stream.
/// - **Stop**: teardown sends SIGTERM to the process group and waits; the
///   owner's stop deadline then forces the runtime down, and dropping it sends
///   SIGKILL to the group. The child is always reaped, and never signalled
///   after it was reaped (its pid could belong to someone else by then).
pub struct ProcessRuntime {
    spec: ProcessSpec,
    env: RuntimeEnv,
    child: Option<Child>,
}

struct Child {
    pid: Pid,
    state: Rc<ChildState>,
    exit: watch::Receiver<Option<ExitStatus>>,
    tasks: Vec<JoinHandle<()>>,
}

#[derive(Debug)]
struct ChildState {
    name: String,
    pid: u32,
    reaped: Cell<bool>,
    serving: Cell<bool>,
    stopping: Cell<bool>,
    output: RefCell<VecDeque<String>>,
    output_lines: usize,
    status: RefCell<Option<String>>,
    last_watchdog: Cell<Instant>,
    reporter: FailureReporter,
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

    fn exited(&self, status: ExitStatus) -> FailureCause {
        FailureCause::Exited {
            code: status.code(),
            signal: status.signal(),
            output: self.output(),
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

    fn command(&self, notify: Option<&NotifySocket>) -> tokio::process::Command {
        let spec = &self.spec;
        let mut cmd = tokio::process::Command::new(&spec.command);
        cmd.args(&spec.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        if !spec.inherit_env {
            cmd.env_clear();
        }
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
        die_with_parent(&mut cmd);
        cmd
    }
}

/// Asks the kernel to SIGKILL the child when the thread that spawned it
/// ends, so not even a SIGKILL of the whole parent leaves it running.
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut tokio::process::Command) {
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs in the forked child before exec. It makes two
    // async-signal-safe system calls (prctl, getppid) and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            // The parent may have died between fork and prctl.
            if nix::unistd::getppid() != parent {
                return Err(nix::errno::Errno::ESRCH.into());
            }
            Ok(())
        });
    }
}

impl Runtime for ProcessRuntime {
    type Request = ProcessRequest;
    type Response = ProcessInfo;

    async fn setup(&mut self, ctx: &mut RuntimeContext) -> Result<(), RuntimeError> {
        let wants_notify =
            self.spec.probe == ReadinessProbe::Notify || self.spec.watchdog.is_some();
        let notify =
            if wants_notify {
                Some(NotifySocket::bind().map_err(|e| {
                    RuntimeError::fatal("cannot bind the notify socket").with_source(e)
                })?)
            } else {
                None
            };
        let command = self.spec.command.display().to_string();
        let mut child = self.command(notify.as_ref()).spawn().map_err(|e| {
            let place = match &self.spec.cwd {
                Some(cwd) => format!(" in `{}`", cwd.display()),
                None => String::new(),
            };
            RuntimeError::fatal(format!("cannot start `{command}`{place}: {e}")).with_source(e)
        })?;
        let Some(raw_pid) = child.id() else {
            return Err(RuntimeError::fatal(format!("`{command}` exited at once")));
        };
        ctx.set_pid(raw_pid);
        let state = Rc::new(ChildState {
            name: ctx.name().to_owned(),
            pid: raw_pid,
            reaped: Cell::new(false),
            serving: Cell::new(false),
            stopping: Cell::new(false),
            output: RefCell::new(VecDeque::new()),
            output_lines: self.spec.output_lines,
            status: RefCell::new(None),
            last_watchdog: Cell::new(Instant::now()),
            reporter: ctx.failure_reporter(),
        });
        let pid = Pid::from_raw(raw_pid as i32);
        let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
        let pattern = match &self.spec.probe {
            ReadinessProbe::Stdout { pattern } => Some(pattern.clone()),
            _ => None,
        };
        let mut tasks = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            tasks.push(spawn_reader(
                stdout,
                "stdout",
                Rc::clone(&state),
                pattern,
                ready_tx.clone(),
            ));
        }
        if let Some(stderr) = child.stderr.take() {
            tasks.push(spawn_reader(
                stderr,
                "stderr",
                Rc::clone(&state),
                None,
                ready_tx.clone(),
            ));
        }
        if let Some(notify) = notify {
            tasks.push(spawn_notify(notify, Rc::clone(&state), ready_tx.clone()));
        }
        // The watcher is not aborted with the others: it must live to reap.
        let exit = spawn_watcher(child, pid, Rc::clone(&state));
        self.child = Some(Child {
            pid,
            state: Rc::clone(&state),
            exit: exit.clone(),
            tasks,
        });

        let probe = self.spec.probe.clone();
        let mut exit = exit;
        let ready = async {
            match probe {
                ReadinessProbe::None => Ok(()),
                ReadinessProbe::Notify | ReadinessProbe::Stdout { .. } => loop {
                    match ready_rx.recv().await {
                        Some(Notice::Ready) => return Ok(()),
                        Some(Notice::ExtendTimeout(by)) => {
                            ctx.extend_deadline(by, "EXTEND_TIMEOUT_USEC")
                        }
                        Some(_) => {}
                        None => std::future::pending::<()>().await,
                    }
                },
                ReadinessProbe::Tcp {
                    address,
                    interval,
                    timeout,
                } => poll_probe(interval, || probe_tcp(&address, timeout)).await,
                ReadinessProbe::Http {
                    url,
                    interval,
                    timeout,
                } => poll_probe(interval, || probe_http(&url, timeout)).await,
            }
        };
        tokio::select! {
            ready = ready => ready?,
            status = exit.wait_for(Option::is_some) => {
                let cause = match status {
                    Ok(status) => status.map(|s| state.exited(s)),
                    Err(_) => None,
                };
                // Reported as the exit it was, not as a setup error.
                state.reporter.report(cause.unwrap_or(FailureCause::Lost));
                std::future::pending::<()>().await;
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

    async fn handle(&mut self, req: ProcessRequest) -> Result<ProcessInfo, RuntimeError> {
        let Some(child) = &self.child else {
            return Err(RuntimeError::new("no child process"));
        };
        if let ProcessRequest::Signal(number) = req {
            let signal = Signal::try_from(number)
                .map_err(|e| RuntimeError::new(format!("no signal {number}")).with_source(e))?;
            if child.state.reaped.get() {
                return Err(RuntimeError::new("the child has already exited"));
            }
            kill(child.pid, signal)
                .map_err(|e| RuntimeError::new(format!("cannot send {signal}")).with_source(e))?;
        }
        Ok(ProcessInfo {
            pid: child.state.pid,
            status: child.state.status.borrow().clone(),
            output: child.state.output(),
        })
    }

    async fn health(&mut self) -> Result<(), RuntimeError> {
        match &self.child {
            Some(child) if !child.state.reaped.get() => Ok(()),
            _ => Err(RuntimeError::fatal("the child has exited")),
        }
    }

    async fn teardown(&mut self) {
        let Some(child) = &mut self.child else {
            return;
        };
        child.state.stopping.set(true);
        if !child.state.reaped.get() {
            let _ = killpg(child.pid, Signal::SIGTERM);
        }
        let _ = child.exit.wait_for(Option::is_some).await;
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.state.stopping.set(true);
        if !self.state.reaped.get() {
            let _ = killpg(self.pid, Signal::SIGKILL);
        }
        for task in &self.tasks {
            task.abort();
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

// ===== tasks =====

/// Waits for the child, reaps it, and kills what is left of its group.
fn spawn_watcher(
    mut child: tokio::process::Child,
    pid: Pid,
    state: Rc<ChildState>,
) -> watch::Receiver<Option<ExitStatus>> {
    let (tx, rx) = watch::channel(None);
    tokio::task::spawn_local(async move {
        let status = child.wait().await;
        state.reaped.set(true);
        // The group outlives its leader while a grandchild is in it, and its
        // id cannot be reused while it does: this only reaches leftovers.
        let _ = killpg(pid, Signal::SIGKILL);
        let Ok(status) = status else {
            return;
        };
        tracing::debug!(pod = %state.name, pid = state.pid, %status, "child exited");
        if state.serving.get() && !state.stopping.get() {
            state.reporter.report(state.exited(status));
        }
        let _ = tx.send(Some(status));
    });
    rx
}

fn spawn_reader(
    stream: impl AsyncRead + Unpin + 'static,
    name: &'static str,
    state: Rc<ChildState>,
    pattern: Option<String>,
    ready: mpsc::UnboundedSender<Notice>,
) -> JoinHandle<()> {
    tokio::task::spawn_local(async move {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        loop {
            let chunk = match reader.fill_buf().await {
                Ok([]) | Err(_) => break,
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
                let text = String::from_utf8_lossy(&line).trim_end().to_owned();
                line.clear();
                if pattern.as_deref().is_some_and(|p| text.contains(p)) {
                    let _ = ready.send(Notice::Ready);
                }
                state.record(name, text);
            }
        }
    })
}

fn spawn_notify(
    socket: NotifySocket,
    state: Rc<ChildState>,
    ready: mpsc::UnboundedSender<Notice>,
) -> JoinHandle<()> {
    tokio::task::spawn_local(async move {
        while let Ok(notices) = socket.recv_from(state.pid).await {
            for notice in notices {
                match notice {
                    Notice::Status(status) => *state.status.borrow_mut() = Some(status),
                    Notice::Watchdog => state.last_watchdog.set(Instant::now()),
                    Notice::Stopping => state.stopping.set(true),
                    Notice::Errno(errno) => {
                        tracing::warn!(pod = %state.name, errno, "child reported an error")
                    }
                    notice => {
                        let _ = ready.send(notice);
                    }
                }
            }
        }
    })
}

fn spawn_watchdog(interval: Duration, state: Rc<ChildState>) -> JoinHandle<()> {
    tokio::task::spawn_local(async move {
        loop {
            let due = state.last_watchdog.get() + interval;
            time::sleep_until(due).await;
            if state.stopping.get() || state.reaped.get() {
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

// ===== network probes =====

async fn poll_probe<F, Fut>(interval: Duration, mut probe: F) -> Result<(), RuntimeError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = io::Result<bool>>,
{
    loop {
        match probe().await {
            Ok(true) => return Ok(()),
            Ok(false) => tracing::trace!("readiness probe answered not ready"),
            Err(e) => tracing::trace!(error = %e, "readiness probe failed"),
        }
        time::sleep(interval).await;
    }
}

async fn probe_tcp(address: &str, timeout: Duration) -> io::Result<bool> {
    time::timeout(timeout, TcpStream::connect(address))
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    Ok(true)
}

/// `GET url` over HTTP/1.1; true for a 2xx or 3xx status.
async fn probe_http(url: &str, timeout: Duration) -> io::Result<bool> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "only http:// URLs"))?;
    // The URL goes into the request line as it is.
    if rest.chars().any(|c| c.is_control() || c == ' ') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "spaces or control characters in the URL",
        ));
    }
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, "/"),
    };
    let get = async {
        let mut stream = TcpStream::connect(authority).await?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut status_line = String::new();
        BufReader::new(stream).read_line(&mut status_line).await?;
        let code: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an HTTP answer"))?;
        Ok((200..400).contains(&code))
    };
    time::timeout(timeout, get)
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
}
