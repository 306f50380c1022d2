//! `worker`: a small, scriptable OS child process. The process-runtime tests
//! and the demo spawn it to get a real program that starts (slowly, never, or
//! not at all), announces readiness, serves TCP, crashes, feeds or starves a
//! watchdog, and reacts to SIGTERM, each on demand.
//!
//! `cargo run -p examples --bin worker -- --announce stdout`, or
//! `cargo run -p examples --bin demo -- worker --announce stdout`
//!
//! then `printf 'hi\n' | nc 127.0.0.1 PORT` echoes `hi`. `--help` lists every
//! option. Readiness goes out by systemd's `sd_notify` protocol
//! (`$NOTIFY_SOCKET`) by default, or as one stdout line. Unlike the other
//! binaries it runs until told to stop (SIGTERM, SIGINT or `--exit-after-ms`),
//! so CI builds it but does not run it bare.

use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
use std::process::{self, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use nix::sys::signal::{raise, Signal};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{signal, SignalKind};

/// What the worker does after its options (`--help` prints it).
const AFTER_HELP: &str = "\
Serving: a connection whose first line starts with `GET ` gets `200 OK` with
body `ok`; any other connection gets each line echoed back. SIGTERM (unless
ignored) and SIGINT: send STOPPING=1, print `terminated` or `interrupted` to
stderr, exit 0.

Request channel: with $POD_CHANNEL_FD set (a process pod's `runtime.channel`),
requests on that descriptor are answered too, many at a time. A request is
echoed back, except these commands:
  sleep MS TEXT   answer TEXT after MS ms (answers come out of order)
  fail TEXT       answer with the error TEXT
  count           answer how many requests were answered before, over TCP
                  and the channel
  pid             answer the worker's pid
  hold            answer only at release-and-exit
  held            answer how many requests are held
  release-and-exit CODE
                  answer every held request and this one in one write,
                  then exit with CODE
  exit CODE       exit with CODE at once
  malformed       write a frame too short to hold an id
  oversized       write a frame that announces 4 GiB
  close           close the channel and go on running
  close-stdout    close stdout and go on serving
  stall           stop reading the channel
End of file on the channel: exit 0.";

/// Echoed lines answered so far, over all connections.
static ANSWERED: AtomicU64 = AtomicU64::new(0);

const HTTP_OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Announce {
    /// sd_notify `READY=1` over $NOTIFY_SOCKET
    Notify,
    /// the stdout line `ready and listening on ADDR`
    Stdout,
    /// nothing
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CrashSignal {
    /// SIGSEGV
    Segv,
    /// SIGABRT
    Abort,
    /// exit 3
    Exit,
}

/// A scriptable child process for process pods: it serves TCP, says it is
/// ready in the way asked, and misbehaves on demand.
#[derive(Debug, Parser)]
// As the hand-written parser before it: values may start with `-`
// (`--fail-startup -1`), and an option given twice takes the last value.
#[command(
    name = "worker",
    after_help = AFTER_HELP,
    allow_negative_numbers = true,
    args_override_self = true
)]
struct Options {
    /// TCP address to serve on
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    listen: String,
    /// How to say ready
    #[arg(long, value_enum, default_value_t = Announce::Notify)]
    announce: Announce,
    /// Sleep N ms before binding
    #[arg(long = "startup-delay-ms", value_name = "N", value_parser = millis)]
    startup_delay: Option<Duration>,
    /// Before that sleep, send EXTEND_TIMEOUT_USEC=N*1000
    #[arg(long = "extend-timeout-ms", value_name = "N", value_parser = millis)]
    extend_timeout: Option<Duration>,
    /// Never bind nor announce
    #[arg(long)]
    hang_startup: bool,
    /// Fail startup (stderr says why), exit with CODE
    #[arg(long, value_name = "CODE")]
    fail_startup: Option<i32>,
    /// Crash once N echoed lines have been answered
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    crash_after: Option<u64>,
    /// How to crash
    #[arg(long, value_enum, default_value_t = CrashSignal::Abort)]
    crash_signal: CrashSignal,
    /// Send WATCHDOG=1 every $WATCHDOG_USEC/2
    #[arg(long)]
    watchdog: bool,
    /// Stop feeding the watchdog after N ms
    #[arg(long = "stop-watchdog-after-ms", value_name = "N", value_parser = millis)]
    stop_watchdog_after: Option<Duration>,
    /// Log SIGTERM and keep running
    #[arg(long)]
    ignore_sigterm: bool,
    /// After announcing, spawn `sleep 3600`
    #[arg(long)]
    spawn_grandchild: bool,
    /// After announcing, write stdout without end
    #[arg(long)]
    flood_stdout: bool,
    /// Around READY=1, send garbage datagrams, a second READY=1 and an
    /// unknown key (notify mode)
    #[arg(long)]
    notify_noise: bool,
    /// Exit 0 after N ms of running
    #[arg(long = "exit-after-ms", value_name = "N", value_parser = millis)]
    exit_after: Option<Duration>,
    /// Instead of serving, fork `sleep 3600`, send MAINPID=<its pid> and
    /// READY=1, and exit 0 (a forking daemon that hands over its main role)
    #[arg(long)]
    hand_over: bool,
    /// Only send MESSAGE (a backslash and n for a new line) to
    /// $NOTIFY_SOCKET, wait (at most 5 s) until it was read, and exit, as
    /// `systemd-notify` does
    #[arg(long, value_name = "MESSAGE", allow_hyphen_values = true)]
    send: Option<String>,
    /// Also serve the request channel's protocol on a unix socket at PATH,
    /// one connection each (a baseline without the pod, to the same child)
    #[arg(long, value_name = "PATH")]
    channel_listen: Option<std::path::PathBuf>,
}

fn millis(text: &str) -> Result<Duration, String> {
    text.parse()
        .map(Duration::from_millis)
        .map_err(|_| format!("{text:?} is not a number of milliseconds"))
}

/// The sending end of systemd's `sd_notify` protocol.
#[derive(Debug)]
struct Notifier {
    socket: UnixDatagram,
    addr: UnixAddr,
}

impl Notifier {
    /// `None` (after a warning) when `$NOTIFY_SOCKET` is unset or unusable.
    fn from_env() -> Option<Self> {
        let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
            eprintln!("worker: warning: NOTIFY_SOCKET is not set; not notifying");
            return None;
        };
        match Self::connect(&path) {
            Ok(notifier) => Some(notifier),
            Err(e) => {
                eprintln!("worker: warning: cannot use NOTIFY_SOCKET {path:?}: {e}");
                None
            }
        }
    }

    fn connect(path: &OsStr) -> io::Result<Self> {
        let addr = match path.as_bytes().strip_prefix(b"@") {
            Some(name) => abstract_addr(name)?,
            None => UnixAddr::from_pathname(path)?,
        };
        let socket = UnixDatagram::unbound()?;
        // A supervisor that stops reading must not freeze our one thread
        // (and with it SIGTERM handling); a full queue drops the message.
        socket.set_nonblocking(true)?;
        Ok(Self { socket, addr })
    }

    fn send(&self, message: &str) {
        if let Err(e) = self.socket.send_to_addr(message.as_bytes(), &self.addr) {
            eprintln!("worker: warning: cannot send {message:?} to NOTIFY_SOCKET: {e}");
        }
    }
}

#[cfg(target_os = "linux")]
fn abstract_addr(name: &[u8]) -> io::Result<UnixAddr> {
    use std::os::linux::net::SocketAddrExt;
    UnixAddr::from_abstract_name(name)
}

#[cfg(not(target_os = "linux"))]
fn abstract_addr(_name: &[u8]) -> io::Result<UnixAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract socket names need Linux",
    ))
}

/// Runs the worker with `args` (the program name left out) until it exits
/// the process.
///
/// # Panics
///
/// Panics when the tokio runtime cannot be built (no thread or file
/// descriptor left).
pub fn run(args: Vec<String>) -> ! {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("cannot build the worker's tokio runtime");
    runtime.block_on(worker_main(args));
    process::exit(0)
}

async fn worker_main(args: Vec<String>) {
    let mut o = match Options::try_parse_from(std::iter::once("worker".to_owned()).chain(args)) {
        Ok(o) => o,
        // --help prints to stdout and exits 0; errors to
        // stderr with exit 2.
        Err(e) => e.exit(),
    };
    if let Some(message) = &mut o.send {
        *message = message.replace("\\n", "\n");
    }
    if let Some(message) = &o.send {
        send_once(message);
    }
    let pid = process::id();
    let notify_announce = o.announce == Announce::Notify;
    let notifier = if notify_announce || o.watchdog {
        Notifier::from_env().map(Arc::new)
    } else {
        None
    };
    // Readiness and stopping go over notify only when announcing by notify;
    // the watchdog uses the socket whenever one is given.
    let announcer = notifier.clone().filter(|_| notify_announce);

    // First, so that SIGTERM during a slow or hung startup is handled too.
    if let Err(e) = handle_signals(o.ignore_sigterm, announcer.clone()) {
        eprintln!("worker: cannot install signal handlers: {e}");
        process::exit(1);
    }
    if let Some(after) = o.exit_after {
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            eprintln!("worker {pid} exiting after {} ms", after.as_millis());
            process::exit(0);
        });
    }

    if let (Some(extend), Some(n)) = (o.extend_timeout, &announcer) {
        n.send(&format!("EXTEND_TIMEOUT_USEC={}", extend.as_micros()));
    }
    if let Some(delay) = o.startup_delay {
        eprintln!("worker {pid} starting slowly ({} ms)", delay.as_millis());
        tokio::time::sleep(delay).await;
    }
    if o.hang_startup {
        eprintln!("worker {pid} hanging in startup");
        std::future::pending::<()>().await;
    }
    if o.hand_over {
        hand_over(announcer.as_deref());
    }
    if let Some(code) = o.fail_startup {
        eprintln!("loading config");
        eprintln!("opening weights.bin");
        eprintln!("cannot load model: weights.bin missing");
        process::exit(code);
    }

    let listener = match TcpListener::bind(&o.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("worker: cannot listen on {}: {e}", o.listen);
            process::exit(1);
        }
    };
    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("worker: cannot read the listening address: {e}");
            process::exit(1);
        }
    };

    match o.announce {
        Announce::Notify => {
            if let Some(n) = &announcer {
                if o.notify_noise {
                    n.send("\u{0}\u{1}\u{2} not a notification");
                    n.send("READY=maybe\nEXTEND_TIMEOUT_USEC=soon\n=\nCOLOUR=blue");
                }
                n.send(&format!(
                    "READY=1\nSTATUS=listening on {addr}\nMAINPID={pid}"
                ));
                if o.notify_noise {
                    n.send("READY=1\nSTATUS=ready again");
                    n.send("\u{ff}garbage");
                }
            }
        }
        Announce::Stdout => {
            let mut out = io::stdout().lock();
            // The reader waits for this line; a block-buffered pipe must not hold it.
            let _ = writeln!(out, "ready and listening on {addr}").and_then(|()| out.flush());
        }
        Announce::None => {}
    }
    eprintln!("worker {pid} listening on {addr}");

    if o.watchdog {
        feed_watchdog(notifier, o.stop_watchdog_after);
    }
    if o.spawn_grandchild {
        spawn_grandchild();
    }
    if o.flood_stdout {
        flood_stdout();
    }

    let crash = o.crash_after.map(|after| (after, o.crash_signal));
    if let Some(channel) = channel::from_env() {
        tokio::spawn(async move {
            if let Err(e) = channel::serve(channel, crash, true).await {
                eprintln!("worker: request channel failed: {e}");
            }
        });
    }
    if let Some(path) = &o.channel_listen {
        match tokio::net::UnixListener::bind(path) {
            Ok(listener) => {
                tokio::spawn(async move {
                    while let Ok((stream, _)) = listener.accept().await {
                        tokio::spawn(async move {
                            if let Err(e) = channel::serve(stream, crash, false).await {
                                eprintln!("worker: channel connection failed: {e}");
                            }
                        });
                    }
                });
            }
            Err(e) => {
                eprintln!("worker: cannot listen on {}: {e}", path.display());
                process::exit(1);
            }
        }
    }
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(async move {
                    if let Err(e) = serve(stream, crash).await {
                        eprintln!("worker: connection failed: {e}");
                    }
                });
            }
            Err(e) => {
                // E.g. out of file descriptors: back off instead of spinning.
                eprintln!("worker: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// `--send`: one datagram to `$NOTIFY_SOCKET`, then a barrier (as
/// `systemd-notify` does: `BARRIER=1` with a pipe's write end, and a wait
/// until the supervisor has closed it, so that this process is still alive
/// when its message is read), then exit (1 if it could not be sent).
fn send_once(message: &str) -> ! {
    let sent = std::env::var_os("NOTIFY_SOCKET")
        .ok_or_else(|| io::Error::other("NOTIFY_SOCKET is not set"))
        .and_then(|path| Notifier::connect(&path))
        .and_then(|n| {
            n.socket.send_to_addr(message.as_bytes(), &n.addr)?;
            barrier(&n)
        });
    match sent {
        Ok(_) => process::exit(0),
        Err(e) => {
            eprintln!("worker: cannot send {message:?}: {e}");
            process::exit(1);
        }
    }
}

fn barrier(n: &Notifier) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let (read_end, write_end) = nix::unistd::pipe()?;
    let mut read_end = std::fs::File::from(read_end);
    let fds = [write_end.as_raw_fd()];
    // Datagrams from one process reach the socket in the order sent.
    let socket = UnixDatagram::unbound()?;
    socket.connect_addr(&n.addr)?;
    nix::sys::socket::sendmsg::<()>(
        socket.as_raw_fd(),
        &[io::IoSlice::new(b"BARRIER=1")],
        &[nix::sys::socket::ControlMessage::ScmRights(&fds)],
        nix::sys::socket::MsgFlags::empty(),
        None,
    )?;
    drop(write_end);
    // EOF once the supervisor has closed its copy; like systemd-notify,
    // give up after 5 s (a supervisor that never reads).
    let mut wait = [nix::poll::PollFd::new(
        std::os::fd::AsFd::as_fd(&read_end),
        nix::poll::PollFlags::POLLIN,
    )];
    match nix::poll::poll(&mut wait, nix::poll::PollTimeout::from(5000u16))? {
        0 => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the supervisor did not read the message within 5 s",
        )),
        _ => {
            std::io::Read::read_to_end(&mut read_end, &mut Vec::new())?;
            Ok(())
        }
    }
}

/// `--hand-over`: the classic forking daemon under a notify supervisor.
fn hand_over(announcer: Option<&Notifier>) -> ! {
    let helper = process::Command::new("sleep")
        .arg("3600")
        .stdin(process::Stdio::null())
        .spawn();
    match (helper, announcer) {
        (Ok(helper), Some(n)) => {
            eprintln!("worker handing over to {}", helper.id());
            n.send(&format!("MAINPID={}\nREADY=1", helper.id()));
            process::exit(0);
        }
        (Ok(_), None) => {
            eprintln!("worker: --hand-over needs NOTIFY_SOCKET");
            process::exit(1);
        }
        (Err(e), _) => {
            eprintln!("worker: cannot start the helper: {e}");
            process::exit(1);
        }
    }
}

/// SIGTERM and SIGINT: say STOPPING=1 and exit 0 (SIGTERM may be ignored).
fn handle_signals(ignore_sigterm: bool, announcer: Option<Arc<Notifier>>) -> io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        loop {
            let word = tokio::select! {
                _ = term.recv() => {
                    if ignore_sigterm {
                        eprintln!("ignoring SIGTERM");
                        continue;
                    }
                    "terminated"
                }
                _ = int.recv() => "interrupted",
            };
            if let Some(n) = &announcer {
                n.send("STOPPING=1");
            }
            eprintln!("{word}");
            process::exit(0);
        }
    });
    Ok(())
}

/// Sends WATCHDOG=1 every `$WATCHDOG_USEC / 2`, until `stop_after` if given.
fn feed_watchdog(notifier: Option<Arc<Notifier>>, stop_after: Option<Duration>) {
    let Some(notifier) = notifier else {
        eprintln!("worker: warning: --watchdog without a NOTIFY_SOCKET; not feeding");
        return;
    };
    let usec = std::env::var("WATCHDOG_USEC")
        .ok()
        .and_then(|v| v.parse::<u64>().ok());
    let Some(usec) = usec.filter(|&usec| usec > 0) else {
        eprintln!("worker: warning: --watchdog without a valid WATCHDOG_USEC; not feeding");
        return;
    };
    // As sd_watchdog_enabled(3): a WATCHDOG_PID naming another process means
    // the watchdog is not ours.
    let watchdog_pid = std::env::var("WATCHDOG_PID")
        .ok()
        .and_then(|v| v.parse::<u32>().ok());
    if watchdog_pid.is_some_and(|p| p != process::id()) {
        eprintln!("worker: warning: WATCHDOG_PID names another process; not feeding");
        return;
    }
    let period = Duration::from_micros(usec / 2).max(Duration::from_millis(1));
    tokio::spawn(async move {
        let feeding = async {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                notifier.send("WATCHDOG=1");
            }
        };
        match stop_after {
            Some(after) => {
                let _ = tokio::time::timeout(after, feeding).await;
                eprintln!("worker: stopped feeding the watchdog");
            }
            None => feeding.await,
        }
    });
}

/// `sleep 3600` in our process group, for tests that the whole group is killed.
fn spawn_grandchild() {
    match Command::new("sleep")
        .arg("3600")
        .stdin(Stdio::null())
        .spawn()
    {
        Ok(mut child) => {
            eprintln!("grandchild {}", child.id());
            // Reaped on a side thread so it never lingers as a zombie, and
            // the worker itself does not wait.
            std::thread::spawn(move || child.wait());
        }
        Err(e) => eprintln!("worker: cannot spawn the grandchild: {e}"),
    }
}

/// Writes stdout without end on a thread of its own: when the reader stalls,
/// only that thread blocks, and serving and signals go on.
fn flood_stdout() {
    std::thread::spawn(|| {
        let mut out = io::BufWriter::new(io::stdout().lock());
        for n in 0u64.. {
            if let Err(e) = writeln!(out, "flood line {n}: the quick brown fox jumps") {
                eprintln!("worker: stdout flood stopped: {e}");
                break;
            }
        }
    });
}

/// One connection: an HTTP probe (`GET ...`) or the line echo.
async fn serve(mut stream: TcpStream, crash: Option<(u64, CrashSignal)>) -> io::Result<()> {
    let (read, mut write) = stream.split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    if reader.read_until(b'\n', &mut line).await? == 0 {
        return Ok(());
    }
    if line.starts_with(b"GET ") {
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line).await?;
            if n == 0 || line == b"\r\n" || line == b"\n" {
                break;
            }
        }
        write.write_all(HTTP_OK).await?;
        write.shutdown().await?;
        return Ok(());
    }
    loop {
        if line.last() != Some(&b'\n') {
            line.push(b'\n');
        }
        write.write_all(&line).await?;
        count_answer(crash);
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
    }
}

/// Counts one answer, and crashes if that was the last one allowed.
fn count_answer(crash: Option<(u64, CrashSignal)>) {
    let answered = ANSWERED.fetch_add(1, Ordering::SeqCst) + 1;
    if let Some((after, how)) = crash {
        if answered >= after {
            crash_now(how, answered);
        }
    }
}

fn crash_now(how: CrashSignal, answered: u64) -> ! {
    eprintln!("worker: crashing ({how:?}) after {answered} requests");
    match how {
        CrashSignal::Segv => {
            // std's stack-overflow handler catches the first SIGSEGV, restores
            // the default action and returns (a raised signal is not re-raised
            // as a real fault would be), so the second one kills.
            for _ in 0..2 {
                let _ = raise(Signal::SIGSEGV);
            }
            process::abort()
        }
        CrashSignal::Abort => process::abort(),
        CrashSignal::Exit => process::exit(3),
    }
}

/// The request channel of a process pod, as its protocol describes it
/// (`runtime_actor::ChannelSpec`): frames of a big-endian u32 length, a u64
/// id, a kind byte and the payload.
mod channel {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::net::UnixStream as StdUnixStream;
    use std::process;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::UnixStream;
    use tokio::sync::mpsc;

    use super::{count_answer, CrashSignal, ANSWERED};

    const ANSWER: u8 = 0;
    const ERROR: u8 = 1;

    /// The descriptor named by `$POD_CHANNEL_FD`, taken over once.
    pub(super) fn from_env() -> Option<UnixStream> {
        let fd: i32 = std::env::var("POD_CHANNEL_FD").ok()?.parse().ok()?;
        if fd < 3 {
            eprintln!("worker: ignoring POD_CHANNEL_FD={fd}: not a descriptor of its own");
            return None;
        }
        // SAFETY: the parent passed this descriptor for the channel alone,
        // and nothing else in the worker owns or closes it; it is taken
        // over once, at start.
        #[allow(unsafe_code)]
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        // Not for the programs the worker may start (the protocol's advice).
        if let Err(e) = nix::fcntl::fcntl(
            &owned,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        ) {
            eprintln!("worker: POD_CHANNEL_FD={fd} is not a descriptor: {e}");
            return None;
        }
        let stream = StdUnixStream::from(owned);
        let stream = stream
            .set_nonblocking(true)
            .and_then(|()| UnixStream::from_std(stream));
        match stream {
            Ok(stream) => Some(stream),
            Err(e) => {
                eprintln!("worker: POD_CHANNEL_FD={fd} is not a usable socket: {e}");
                None
            }
        }
    }

    fn frame(id: u64, kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut frame = Vec::with_capacity(13 + payload.len());
        frame.extend_from_slice(&(9 + payload.len() as u32).to_be_bytes());
        frame.extend_from_slice(&id.to_be_bytes());
        frame.push(kind);
        frame.extend_from_slice(payload);
        frame
    }

    /// Answers requests until the other end closes the channel; then, for
    /// the pod's channel (`exit_at_end`), exits 0.
    pub(super) async fn serve(
        stream: UnixStream,
        crash: Option<(u64, CrashSignal)>,
        exit_at_end: bool,
    ) -> io::Result<()> {
        let fd = stream.as_raw_fd();
        let (read, mut write) = stream.into_split();
        // Frames to write; an exit code with one ends the worker once it is
        // written.
        let (answers, mut queued) = mpsc::unbounded_channel::<(Vec<u8>, Option<i32>)>();
        tokio::spawn(async move {
            let mut batch = Vec::new();
            while let Some((frame, mut exit)) = queued.recv().await {
                batch.extend_from_slice(&frame);
                while exit.is_none() {
                    let Ok((frame, then)) = queued.try_recv() else {
                        break;
                    };
                    batch.extend_from_slice(&frame);
                    exit = then;
                }
                if let Err(e) = write.write_all(&batch).await {
                    eprintln!("worker: cannot answer on the request channel: {e}");
                    return;
                }
                if let Some(code) = exit {
                    eprintln!("worker: answers written; exiting with {code}");
                    process::exit(code);
                }
                batch.clear();
            }
        });
        let mut held = Vec::new();
        let mut reader = BufReader::with_capacity(64 * 1024, read);
        loop {
            let length = match reader.read_u32().await {
                Ok(length) => length as usize,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && exit_at_end => {
                    eprintln!("worker: the request channel is closed; exiting");
                    process::exit(0);
                }
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            };
            if length < 9 {
                return Err(io::Error::other(format!("a frame of {length} bytes")));
            }
            let id = reader.read_u64().await?;
            let _kind = reader.read_u8().await?;
            let mut payload = vec![0; length - 9];
            reader.read_exact(&mut payload).await?;
            let text = String::from_utf8_lossy(&payload).into_owned();
            let (command, rest) = text.split_once(' ').unwrap_or((text.as_str(), ""));
            let answer = |kind: u8, payload: &[u8]| {
                let _ = answers.send((frame(id, kind, payload), None));
                count_answer(crash);
            };
            match command {
                "sleep" => {
                    let (ms, then) = rest.split_once(' ').unwrap_or((rest, ""));
                    let ms = ms.parse().unwrap_or(0);
                    let (answers, then) = (answers.clone(), then.to_owned());
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        let _ = answers.send((frame(id, ANSWER, then.as_bytes()), None));
                        count_answer(crash);
                    });
                }
                "fail" => answer(ERROR, rest.as_bytes()),
                "count" => answer(
                    ANSWER,
                    ANSWERED
                        .load(std::sync::atomic::Ordering::SeqCst)
                        .to_string()
                        .as_bytes(),
                ),
                "pid" => answer(ANSWER, process::id().to_string().as_bytes()),
                "hold" => held.push(id),
                "held" => answer(ANSWER, held.len().to_string().as_bytes()),
                "release-and-exit" => {
                    let mut all = Vec::new();
                    for held in held.drain(..) {
                        all.extend_from_slice(&frame(held, ANSWER, b"released"));
                    }
                    all.extend_from_slice(&frame(id, ANSWER, b"released"));
                    let _ = answers.send((all, Some(rest.parse().unwrap_or(0))));
                }
                "exit" => {
                    eprintln!("worker: exiting as asked by request {id}");
                    process::exit(rest.parse().unwrap_or(1));
                }
                "malformed" => {
                    let _ = answers.send((vec![0, 0, 0, 3, 1, 2, 3], None));
                }
                "oversized" => {
                    let _ = answers.send((u32::MAX.to_be_bytes().to_vec(), None));
                }
                "close" => {
                    eprintln!("worker: closing the request channel");
                    // Both ways, whatever still holds a half of it.
                    nix::sys::socket::shutdown(fd, nix::sys::socket::Shutdown::Both)?;
                    return Ok(());
                }
                "close-stdout" => {
                    // /dev/null over fd 1 closes the pod's stdout pipe.
                    let closed = std::fs::File::open("/dev/null")
                        .and_then(|null| nix::unistd::dup2_stdout(null).map_err(io::Error::from));
                    match closed {
                        Ok(()) => answer(ANSWER, b"stdout closed"),
                        Err(e) => answer(ERROR, e.to_string().as_bytes()),
                    }
                }
                "stall" => {
                    eprintln!("worker: no longer reading the request channel");
                    std::future::pending::<()>().await;
                }
                _ => answer(ANSWER, &payload),
            }
        }
    }
}
