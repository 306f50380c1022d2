//! Starting a child process at a cost that does not grow with the owner.
//!
//! `std::process::Command` with a `pre_exec` hook forks, and a fork copies
//! the owner's page tables: 28 ms in an owner with 1 GiB resident against
//! 1.7 ms in a small one, measured by podbench. A pod needs what only such
//! a hook gives (its cgroup, its user, the parent-death signal, fd 3), so
//! this module does what `posix_spawn` does inside glibc, with those steps
//! added: `clone(CLONE_VM | CLONE_VFORK)` runs the child on a stack of its
//! own in the owner's memory until `execve`, while the thread that spawns
//! it waits. Nothing is copied, so the cost is flat in the owner's size.
//!
//! The child's steps are system calls only: it allocates nothing, takes no
//! lock and calls no glibc function that keeps state for threads (the
//! identity changes are raw system calls: glibc's `setuid` would try to
//! signal the owner's other threads). Every value it uses was made before
//! the clone, in [`Spawn::spawn`]. A step that fails writes its name and
//! `errno` into memory the spawning thread reads once the child has exited;
//! no pipe is needed to report it.
//!
//! The child comes with a pidfd (`CLONE_PIDFD`, Linux 5.2), through which it
//! is awaited and then reaped with `waitpid`.

use std::collections::BTreeMap;
use std::ffi::{c_int, c_void, CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::Arc;

use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid};

/// The descriptor the request channel gets in the child.
pub(crate) const CHANNEL_FD: RawFd = 3;

/// The shell that runs a script without `#!`.
const SH: &std::ffi::CStr = c"/bin/sh";

/// The child's stack. Its steps are a few system calls deep; glibc's own
/// `posix_spawn` child runs on 32 KiB plus the size of its arguments.
const STACK: usize = 64 * 1024;

/// The child process's uid, gid and groups, resolved before the spawn.
#[derive(Debug, Default, Clone)]
pub(crate) struct Identity {
    pub(crate) uid: Option<Uid>,
    pub(crate) gid: Option<Gid>,
    pub(crate) groups: Option<Vec<Gid>>,
    pub(crate) umask: Option<Mode>,
}

/// Where the child's stdout and stderr go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    /// A pipe each, whose reading ends [`Spawned`] carries.
    Piped,
    /// `/dev/null`.
    Null,
}

/// What to start, and how. Built like a `Command`.
#[derive(Debug)]
pub(crate) struct Spawn {
    program: PathBuf,
    args: Vec<OsString>,
    inherit_env: bool,
    env: BTreeMap<OsString, OsString>,
    removed: Vec<OsString>,
    cwd: Option<PathBuf>,
    identity: Identity,
    cgroup: Option<Arc<File>>,
    channel: Option<RawFd>,
    new_group: bool,
    output: Output,
}

/// A started child. Its pid stays its own until [`Spawned::reap`] (or the
/// drop of the value, which kills and reaps it).
#[derive(Debug)]
pub(crate) struct Spawned {
    pid: u32,
    pidfd: OwnedFd,
    reaped: bool,
    /// The reading end of the child's stdout, when piped.
    pub(crate) stdout: Option<OwnedFd>,
    /// The reading end of the child's stderr, when piped.
    pub(crate) stderr: Option<OwnedFd>,
}

/// The step of the child that failed, and its `errno`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Signals = 1,
    Group,
    Cgroup,
    Groups,
    Gid,
    Uid,
    DeathSignal,
    ParentGone,
    Stdio,
    Channel,
    Chdir,
    Exec,
}

impl Step {
    const ALL: [Step; 12] = [
        Step::Signals,
        Step::Group,
        Step::Cgroup,
        Step::Groups,
        Step::Gid,
        Step::Uid,
        Step::DeathSignal,
        Step::ParentGone,
        Step::Stdio,
        Step::Channel,
        Step::Chdir,
        Step::Exec,
    ];

    fn from_code(code: usize) -> Option<Step> {
        Step::ALL.into_iter().find(|step| *step as usize == code)
    }

    /// The step in words, or `None` where the OS error says enough (a
    /// missing directory, a missing executable).
    fn describe(self) -> Option<&'static str> {
        Some(match self {
            Step::Signals => "resetting the signal handlers",
            Step::Group => "setpgid",
            Step::Cgroup => "entering the pod's cgroup",
            Step::Groups => "setgroups",
            Step::Gid => "setgid",
            Step::Uid => "setuid",
            Step::DeathSignal => "setting the parent-death signal",
            Step::ParentGone => "the thread that spawned it ended first",
            Step::Stdio => "setting up stdin, stdout and stderr",
            Step::Channel => "moving the request channel to fd 3",
            Step::Chdir | Step::Exec => return None,
        })
    }
}

/// Everything the child reads, laid out before the clone. Raw pointers into
/// the vectors of [`Prepared`], which outlives the child's use of them (the
/// spawning thread is suspended until the child execs or exits).
struct ChildArgs {
    /// The paths to try in turn, as `execvp` does: the program itself when
    /// it has a `/`, else one per `PATH` entry (relative entries resolve
    /// after the `chdir`, and permissions are those of the child's user).
    candidates: *const *const libc::c_char,
    candidate_count: usize,
    argv: *const *const libc::c_char,
    /// For each candidate, `/bin/sh CANDIDATE ARGS…`, for a program the
    /// kernel cannot exec (`ENOEXEC`: a script without `#!`).
    sh_argvs: *const *const *const libc::c_char,
    envp: *const *const libc::c_char,
    cwd: *const libc::c_char,
    uid: Option<libc::uid_t>,
    gid: Option<libc::gid_t>,
    groups: Option<(*const libc::gid_t, usize)>,
    umask: Option<libc::mode_t>,
    cgroup: RawFd,
    new_group: bool,
    parent: libc::pid_t,
    /// Targets 0, 1, 2 and 3, from descriptors all above 3 (or -1: none).
    stdio: [RawFd; 3],
    channel: RawFd,
    /// Written by a failing child: the step and its errno.
    failed_step: AtomicUsize,
    failed_errno: AtomicI32,
}

/// The owned values [`ChildArgs`] points into.
struct Prepared {
    _candidates: Vec<CString>,
    candidate_ptrs: Vec<*const libc::c_char>,
    _argv: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    _sh_argvs: Vec<Vec<*const libc::c_char>>,
    sh_argv_ptrs: Vec<*const *const libc::c_char>,
    _envp: Vec<CString>,
    envp_ptrs: Vec<*const libc::c_char>,
    cwd: Option<CString>,
    groups: Option<Vec<libc::gid_t>>,
}

impl Spawn {
    pub(crate) fn new(program: impl Into<PathBuf>) -> Spawn {
        Spawn {
            program: program.into(),
            args: Vec::new(),
            inherit_env: true,
            env: BTreeMap::new(),
            removed: Vec::new(),
            cwd: None,
            identity: Identity::default(),
            cgroup: None,
            channel: None,
            new_group: false,
            output: Output::Piped,
        }
    }

    pub(crate) fn args<I, S>(&mut self, args: I) -> &mut Spawn
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Starts from an empty environment instead of the owner's.
    pub(crate) fn env_clear(&mut self) -> &mut Spawn {
        self.inherit_env = false;
        self.env.clear();
        self
    }

    pub(crate) fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Spawn {
        self.env
            .insert(key.as_ref().to_owned(), value.as_ref().to_owned());
        self
    }

    /// Leaves `key` out of the inherited environment (until set again).
    pub(crate) fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Spawn {
        self.env.remove(key.as_ref());
        self.removed.push(key.as_ref().to_owned());
        self
    }

    pub(crate) fn envs<I, K, V>(&mut self, vars: I) -> &mut Spawn
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (key, value) in vars {
            self.env(key, value);
        }
        self
    }

    pub(crate) fn current_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Spawn {
        self.cwd = Some(dir.into());
        self
    }

    pub(crate) fn identity(&mut self, identity: Identity) -> &mut Spawn {
        self.identity = identity;
        self
    }

    /// The child writes itself into this `cgroup.procs` first of all.
    pub(crate) fn cgroup(&mut self, procs: Arc<File>) -> &mut Spawn {
        self.cgroup = Some(procs);
        self
    }

    /// The child gets a copy of `fd` as fd 3, without close-on-exec.
    pub(crate) fn channel(&mut self, fd: RawFd) -> &mut Spawn {
        self.channel = Some(fd);
        self
    }

    /// The child leads a process group of its own.
    pub(crate) fn process_group(&mut self) -> &mut Spawn {
        self.new_group = true;
        self
    }

    pub(crate) fn output(&mut self, output: Output) -> &mut Spawn {
        self.output = output;
        self
    }

    /// Starts the child. Errors name the OS error and, where that alone
    /// would not say it, the step that failed (`setuid: Operation not
    /// permitted`); a missing executable or directory is the bare OS error.
    pub(crate) fn spawn(&self) -> io::Result<Spawned> {
        let env = self.environment();
        let prepared = self.prepare(&env)?;

        let stdin = above_stdio(
            File::open("/dev/null")
                .map(OwnedFd::from)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot open /dev/null: {e}")))?,
        )?;
        let (stdout, stderr) = match self.output {
            Output::Piped => {
                let (out_r, out_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
                let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
                (
                    (Some(out_r), above_stdio(out_w)?),
                    (Some(err_r), above_stdio(err_w)?),
                )
            }
            Output::Null => (
                (None, above_stdio(dev_null_for_writing()?)?),
                (None, above_stdio(dev_null_for_writing()?)?),
            ),
        };
        // The channel's descriptor belongs to the caller; a copy above 3
        // keeps `dup2` from clobbering it (or it from clobbering 0–2).
        let channel = match self.channel {
            Some(fd) => Some(dup_above_stdio(fd)?),
            None => None,
        };

        let args = ChildArgs {
            candidates: prepared.candidate_ptrs.as_ptr(),
            candidate_count: prepared.candidate_ptrs.len(),
            argv: prepared.argv_ptrs.as_ptr(),
            sh_argvs: prepared.sh_argv_ptrs.as_ptr(),
            envp: prepared.envp_ptrs.as_ptr(),
            cwd: prepared
                .cwd
                .as_ref()
                .map_or(std::ptr::null(), |c| c.as_ptr()),
            uid: self.identity.uid.map(Uid::as_raw),
            gid: self.identity.gid.map(Gid::as_raw),
            groups: prepared.groups.as_ref().map(|g| (g.as_ptr(), g.len())),
            umask: self.identity.umask.map(|m| m.bits()),
            cgroup: self.cgroup.as_ref().map_or(-1, |f| f.as_raw_fd()),
            new_group: self.new_group,
            parent: nix::unistd::getpid().as_raw(),
            stdio: [
                stdin.as_raw_fd(),
                stdout.1.as_raw_fd(),
                stderr.1.as_raw_fd(),
            ],
            channel: channel.as_ref().map_or(-1, |fd| fd.as_raw_fd()),
            failed_step: AtomicUsize::new(0),
            failed_errno: AtomicI32::new(0),
        };
        let (pid, pidfd) = clone_vfork(&args)?;
        // Only now may `prepared` and the descriptors go: the child has
        // exec'd (its copies are its own) or exited.
        drop((stdin, stdout.1, stderr.1, channel, prepared));
        let mut spawned = Spawned {
            pid,
            pidfd,
            reaped: false,
            stdout: stdout.0,
            stderr: stderr.0,
        };
        let step = args.failed_step.load(Ordering::Acquire);
        if step == 0 {
            return Ok(spawned);
        }
        // The child has exited already: reaping it does not wait.
        let _ = spawned.reap();
        let os = io::Error::from_raw_os_error(args.failed_errno.load(Ordering::Acquire));
        Err(match Step::from_code(step).and_then(Step::describe) {
            Some(what) => io::Error::new(os.kind(), ChildStepError { what, os }),
            None => os,
        })
    }

    /// The child's environment: the owner's unless cleared, then what was set.
    fn environment(&self) -> BTreeMap<OsString, OsString> {
        let mut env: BTreeMap<OsString, OsString> = match self.inherit_env {
            true => std::env::vars_os().collect(),
            false => BTreeMap::new(),
        };
        for key in &self.removed {
            env.remove(key);
        }
        env.extend(self.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env
    }

    fn prepare(&self, env: &BTreeMap<OsString, OsString>) -> io::Result<Prepared> {
        let candidates = candidates(&self.program, env.get(OsStr::new("PATH")).map(|p| &**p))
            .into_iter()
            .map(|path| cstring(path.into_os_string().into_vec(), "the program"))
            .collect::<io::Result<Vec<_>>>()?;
        let mut argv = Vec::with_capacity(self.args.len() + 1);
        argv.push(cstring(
            self.program.as_os_str().as_bytes().to_vec(),
            "the program",
        )?);
        for arg in &self.args {
            argv.push(cstring(arg.as_bytes().to_vec(), "an argument")?);
        }
        let mut envp = Vec::with_capacity(env.len());
        for (key, value) in env {
            // What the owner inherited passes as it came; what was set is
            // checked.
            let set = self.env.contains_key(key);
            if set && (key.is_empty() || key.as_bytes().contains(&b'=')) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("invalid environment variable name {key:?}"),
                ));
            }
            let mut pair = key.as_bytes().to_vec();
            pair.push(b'=');
            pair.extend_from_slice(value.as_bytes());
            envp.push(cstring(pair, "an environment variable")?);
        }
        let cwd = match &self.cwd {
            Some(dir) => Some(cstring(
                dir.as_os_str().as_bytes().to_vec(),
                "the working directory",
            )?),
            None => None,
        };
        let pointers = |strings: &[CString]| {
            strings
                .iter()
                .map(|s| s.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect::<Vec<_>>()
        };
        let sh_argvs: Vec<Vec<*const libc::c_char>> = candidates
            .iter()
            .map(|candidate| {
                [SH.as_ptr(), candidate.as_ptr()]
                    .into_iter()
                    .chain(argv[1..].iter().map(|s| s.as_ptr()))
                    .chain(std::iter::once(std::ptr::null()))
                    .collect()
            })
            .collect();
        Ok(Prepared {
            candidate_ptrs: candidates.iter().map(|c| c.as_ptr()).collect(),
            _candidates: candidates,
            sh_argv_ptrs: sh_argvs.iter().map(|a| a.as_ptr()).collect(),
            _sh_argvs: sh_argvs,
            argv_ptrs: pointers(&argv),
            _argv: argv,
            envp_ptrs: pointers(&envp),
            _envp: envp,
            cwd,
            groups: self
                .identity
                .groups
                .as_ref()
                .map(|g| g.iter().map(|gid| gid.as_raw()).collect()),
        })
    }
}

/// The OS error number of a spawn error, also when a step is named.
pub(crate) fn errno(e: &io::Error) -> Option<c_int> {
    e.raw_os_error().or_else(|| {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<ChildStepError>())
            .and_then(|step| step.os.raw_os_error())
    })
}

/// A step of the child that failed, with the OS error.
#[derive(Debug)]
struct ChildStepError {
    what: &'static str,
    os: io::Error,
}

impl std::fmt::Display for ChildStepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, self.os)
    }
}

impl std::error::Error for ChildStepError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.os)
    }
}

fn dev_null_for_writing() -> io::Result<OwnedFd> {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .map(OwnedFd::from)
}

fn cstring(bytes: Vec<u8>, what: &str) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} holds a NUL byte"),
        )
    })
}

/// The paths `execvp` would try for `program`, in order: itself when it
/// holds a `/`, else one per entry of the child's `PATH` (or the default
/// `/bin:/usr/bin`), an empty entry meaning the working directory. The
/// child tries them after its `chdir` and identity change, so relative
/// entries and permissions are the child's.
fn candidates(program: &Path, path: Option<&OsStr>) -> Vec<PathBuf> {
    if program.as_os_str().is_empty() || program.as_os_str().as_bytes().contains(&b'/') {
        return vec![program.to_owned()];
    }
    let path = path.unwrap_or(OsStr::new("/bin:/usr/bin"));
    path.as_bytes()
        .split(|&b| b == b':')
        .map(|dir| match dir.is_empty() {
            true => program.to_owned(),
            false => Path::new(OsStr::from_bytes(dir)).join(program),
        })
        .collect()
}

/// `fd` itself when it is above 3, else a close-on-exec copy above 3 (and
/// `fd` closed): the child's `dup2` onto 0–3 must not overwrite a source.
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > CHANNEL_FD {
        return Ok(fd);
    }
    dup_above_stdio(fd.as_raw_fd())
}

fn dup_above_stdio(fd: RawFd) -> io::Result<OwnedFd> {
    let copy = nix::fcntl::fcntl(
        // SAFETY: `fd` is open for the duration of this call; fcntl only
        // reads its number.
        #[allow(unsafe_code)]
        unsafe {
            std::os::fd::BorrowedFd::borrow_raw(fd)
        },
        nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(CHANNEL_FD + 1),
    )?;
    #[allow(unsafe_code)]
    // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nobody owns.
    Ok(unsafe { OwnedFd::from_raw_fd(copy) })
}

/// Blocks every signal in this thread while the child shares its memory,
/// and restores the mask when dropped.
struct SignalsBlocked(libc::sigset_t);

impl SignalsBlocked {
    #[allow(unsafe_code)]
    fn new() -> io::Result<SignalsBlocked> {
        // SAFETY: sigfillset and pthread_sigmask write only the sets given.
        unsafe {
            let mut all = std::mem::zeroed::<libc::sigset_t>();
            let mut old = std::mem::zeroed::<libc::sigset_t>();
            libc::sigfillset(&mut all);
            let rc = libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
            if rc != 0 {
                return Err(io::Error::from_raw_os_error(rc));
            }
            Ok(SignalsBlocked(old))
        }
    }
}

impl Drop for SignalsBlocked {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: restores the mask read in `new`.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut());
        }
    }
}

/// Clones the child on a stack of its own, sharing this process's memory;
/// returns once it has exec'd or exited, with its pid and pidfd.
#[allow(unsafe_code)]
fn clone_vfork(args: &ChildArgs) -> io::Result<(u32, OwnedFd)> {
    // u128 elements: the stack's top is 16-byte aligned, as the ABI wants.
    let mut stack = vec![0u128; STACK / std::mem::size_of::<u128>()];
    let top = stack.as_mut_ptr_range().end.cast::<c_void>();
    let mut pidfd: c_int = -1;
    let flags = libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD;
    let blocked = SignalsBlocked::new()?;
    // SAFETY: the child runs `child_main` on `stack`, which lives until
    // this function returns; CLONE_VFORK suspends this thread until the
    // child has exec'd or exited, so `args` and everything it points to
    // (owned by the caller, alive across this call) stay valid for as long
    // as the child reads them. The child only makes system calls (see
    // `child_main`). Signals are blocked so that no handler of the owner
    // runs on the child's stack before the child has reset them.
    let pid = unsafe {
        libc::clone(
            child_main,
            top,
            flags,
            std::ptr::from_ref(args).cast_mut().cast::<c_void>(),
            &mut pidfd as *mut c_int,
        )
    };
    let error = io::Error::last_os_error();
    drop(blocked);
    drop(stack);
    if pid < 0 {
        return Err(match error.raw_os_error() {
            Some(libc::EINVAL) | Some(libc::ENOSYS) => io::Error::new(
                error.kind(),
                format!("clone with CLONE_PIDFD (Linux 5.2 or later) failed: {error}"),
            ),
            _ => error,
        });
    }
    // SAFETY: CLONE_PIDFD stored a new descriptor that nobody owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    Ok((pid as u32, pidfd))
}

/// The child, from the clone to `execve`. System calls only: no allocation,
/// no lock, no glibc wrapper that keeps per-thread state (the identity
/// changes are raw system calls, see the module's docs). On failure it
/// writes the step and `errno` into `args` and exits 127.
#[allow(unsafe_code)]
extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `ChildArgs` the suspended parent keeps alive.
    let args = unsafe { &*(arg.cast_const().cast::<ChildArgs>()) };
    // SAFETY: see `child_steps`.
    let (step, errno) = unsafe { child_steps(args) };
    args.failed_errno.store(errno, Ordering::Release);
    args.failed_step.store(step as usize, Ordering::Release);
    // SAFETY: _exit ends the child (exit_group: its thread group is itself).
    unsafe { libc::_exit(127) }
}

/// Runs the child's steps in order; returns only on failure.
///
/// # Safety
///
/// To be called only in the child of [`clone_vfork`], with the `ChildArgs`
/// its parent prepared.
#[allow(unsafe_code)]
unsafe fn child_steps(args: &ChildArgs) -> (Step, c_int) {
    let errno = || {
        io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    };
    macro_rules! check {
        ($step:expr, $call:expr) => {
            if $call == -1 {
                return ($step, errno());
            }
        };
    }
    // Handlers of the owner would run the owner's code in shared memory:
    // back to the default, except what is ignored (kept ignored across
    // exec, as std does). SIGPIPE, which Rust ignores, goes back to default
    // as with std's `Command`. glibc's internal signals refuse the change.
    let mut action = std::mem::zeroed::<libc::sigaction>();
    let default = {
        let mut d = std::mem::zeroed::<libc::sigaction>();
        d.sa_sigaction = libc::SIG_DFL;
        d
    };
    // Linux numbers its signals 1 to 64.
    for signal in 1..=64 {
        if signal == libc::SIGKILL || signal == libc::SIGSTOP {
            continue;
        }
        if libc::sigaction(signal, std::ptr::null(), &mut action) == -1 {
            continue;
        }
        let handled = action.sa_sigaction != libc::SIG_DFL && action.sa_sigaction != libc::SIG_IGN;
        if handled || signal == libc::SIGPIPE {
            libc::sigaction(signal, &default, std::ptr::null_mut());
        }
    }
    let mut empty = std::mem::zeroed::<libc::sigset_t>();
    libc::sigemptyset(&mut empty);
    check!(
        Step::Signals,
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut())
    );
    if args.new_group {
        check!(Step::Group, libc::setpgid(0, 0));
    }
    if args.cgroup >= 0 {
        check!(
            Step::Cgroup,
            libc::write(args.cgroup, b"0".as_ptr().cast(), 1) as c_int
        );
    }
    if let Some(mask) = args.umask {
        libc::umask(mask);
    }
    if let Some((groups, len)) = args.groups {
        check!(
            Step::Groups,
            libc::syscall(libc::SYS_setgroups, len, groups) as c_int
        );
    }
    if let Some(gid) = args.gid {
        check!(Step::Gid, libc::syscall(libc::SYS_setgid, gid) as c_int);
    }
    if let Some(uid) = args.uid {
        check!(Step::Uid, libc::syscall(libc::SYS_setuid, uid) as c_int);
    }
    // After the uid change, which clears it.
    check!(
        Step::DeathSignal,
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0
        )
    );
    // The owner may have died before the prctl.
    if libc::getppid() != args.parent {
        return (Step::ParentGone, libc::ESRCH);
    }
    // Every source is above 3 (see `above_stdio`), so no dup2 overwrites
    // another's source; dup2 clears close-on-exec on the copy.
    for (target, &source) in args.stdio.iter().enumerate() {
        check!(Step::Stdio, libc::dup2(source, target as c_int));
    }
    if args.channel >= 0 {
        check!(Step::Channel, libc::dup2(args.channel, CHANNEL_FD));
    }
    if !args.cwd.is_null() {
        check!(Step::Chdir, libc::chdir(args.cwd));
    }
    // As `execvp`: a candidate that is missing or not allowed is skipped,
    // a script without `#!` runs in sh, any other error ends the search.
    let mut denied = false;
    for i in 0..args.candidate_count {
        let candidate = *args.candidates.add(i);
        libc::execve(candidate, args.argv, args.envp);
        match errno() {
            libc::ENOEXEC => {
                libc::execve(SH.as_ptr(), *args.sh_argvs.add(i), args.envp);
                return (Step::Exec, errno());
            }
            libc::EACCES => denied = true,
            libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
            other => return (Step::Exec, other),
        }
    }
    (Step::Exec, if denied { libc::EACCES } else { libc::ENOENT })
}

/// `waitid`'s id type for a pidfd (Linux 5.4); not in the libc crate.
const P_PIDFD: libc::idtype_t = 3;

/// `waitid` on a pidfd for its exit (`WEXITED | flags`): what it filled in,
/// zeroed when `WNOHANG` found the child running.
fn waitid(pidfd: &OwnedFd, flags: c_int) -> io::Result<libc::siginfo_t> {
    #[allow(unsafe_code)]
    // SAFETY: an all-zero siginfo_t is valid; waitid writes into it only.
    let mut info = unsafe { std::mem::zeroed::<libc::siginfo_t>() };
    #[allow(unsafe_code)]
    // SAFETY: waitid reads the pidfd's number and writes `info` only.
    let rc = unsafe {
        libc::waitid(
            P_PIDFD,
            pidfd.as_raw_fd() as libc::id_t,
            &mut info,
            libc::WEXITED | flags,
        )
    };
    match rc {
        -1 => Err(io::Error::last_os_error()),
        _ => Ok(info),
    }
}

impl Spawned {
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// A copy of the pidfd, for awaiting the child's end.
    pub(crate) fn pidfd(&self) -> io::Result<OwnedFd> {
        self.pidfd.try_clone()
    }

    /// Reaps the child if it has ended: `Ok(None)` while it runs. The status
    /// is `None` when something else in the process reaped it first.
    /// Through the pidfd: never another process that got the pid since.
    pub(crate) fn reap(&mut self) -> io::Result<Option<Option<ExitStatus>>> {
        self.wait(libc::WNOHANG)
    }

    /// Whether the child can be reaped now (a zombie), without reaping it.
    pub(crate) fn reapable(&self) -> io::Result<bool> {
        if self.reaped {
            return Ok(false);
        }
        let info = waitid(&self.pidfd, libc::WNOHANG | libc::WNOWAIT)?;
        #[allow(unsafe_code)]
        // SAFETY: waitid filled `info` for a child (or left it zeroed).
        Ok(unsafe { info.si_pid() } != 0)
    }

    /// Waits, blocking, until the child can be reaped, without reaping it.
    /// Its pidfd turns readable a moment before that; reaping stays a
    /// non-blocking step for the owner's thread (see [`Spawned::reap`]).
    pub(crate) fn wait_reapable(pidfd: &OwnedFd) -> io::Result<()> {
        loop {
            match waitid(pidfd, libc::WNOWAIT) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                waited => return waited.map(drop),
            }
        }
    }

    /// Reaps the child, waiting for it (for a probe run to its end).
    pub(crate) fn wait_blocking(&mut self) -> io::Result<Option<ExitStatus>> {
        loop {
            match self.wait(0) {
                Ok(Some(status)) => return Ok(status),
                Ok(None) => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn wait(&mut self, flags: c_int) -> io::Result<Option<Option<ExitStatus>>> {
        if self.reaped {
            return Ok(Some(None));
        }
        let info = match waitid(&self.pidfd, flags) {
            Ok(info) => info,
            Err(e) if e.raw_os_error() == Some(libc::ECHILD) => {
                self.reaped = true;
                return Ok(Some(None));
            }
            Err(e) => return Err(e),
        };
        #[allow(unsafe_code)]
        // SAFETY: waitid filled `info` for a child (or left it zeroed).
        let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
        if pid == 0 {
            // WNOHANG, and it runs.
            return Ok(None);
        }
        self.reaped = true;
        // As the wait status `waitpid` gives, which ExitStatus decodes.
        let raw = match info.si_code {
            libc::CLD_EXITED => (status & 0xff) << 8,
            libc::CLD_DUMPED => (status & 0x7f) | 0x80,
            _ => status & 0x7f,
        };
        Ok(Some(Some(ExitStatus::from_raw(raw))))
    }

    /// SIGKILL through the pidfd.
    fn kill(&self) {
        #[allow(unsafe_code)]
        // SAFETY: pidfd_send_signal with a null siginfo reads no memory of ours.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            );
        }
    }
}

impl Drop for Spawned {
    /// A child nobody awaited any more is killed and reaped: at once when
    /// it is gone already, else by a thread of its own.
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        if let Ok(Some(_)) = self.reap() {
            return;
        }
        self.kill();
        if let Ok(Some(_)) = self.reap() {
            return;
        }
        let pid = self.pid;
        let Ok(pidfd) = self.pidfd.try_clone() else {
            tracing::warn!(
                pid,
                "cannot reap a killed child; it stays a zombie until the owner exits"
            );
            return;
        };
        let mut rest = Spawned {
            pid,
            pidfd,
            reaped: false,
            stdout: None,
            stderr: None,
        };
        self.reaped = true;
        let spawned = std::thread::Builder::new()
            .name("pod-reaper".into())
            .spawn(move || {
                let _ = rest.wait_blocking();
            });
        if let Err(e) = spawned {
            tracing::warn!(pid, error = %e, "cannot start a thread to reap a killed child; it stays a zombie until the owner exits");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(spawn: &mut Spawn) -> io::Result<(Option<ExitStatus>, String)> {
        let mut child = spawn_retrying_busy(spawn)?;
        let mut out = String::new();
        if let Some(fd) = child.stdout.take() {
            use std::io::Read;
            File::from(fd).read_to_string(&mut out)?;
        }
        Ok((child.wait_blocking()?, out))
    }

    /// Spawns, trying again while the program is "busy": a script a test
    /// has just written stays open for writing in any child that another
    /// test's thread forked meanwhile, until that child execs, and exec
    /// refuses such a file (ETXTBSY).
    fn spawn_retrying_busy(spawn: &Spawn) -> io::Result<Spawned> {
        let mut tries = 0;
        loop {
            match spawn.spawn() {
                Err(e) if e.kind() == io::ErrorKind::ExecutableFileBusy && tries < 50 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                spawned => return spawned,
            }
        }
    }

    fn sh(script: &str) -> Spawn {
        let mut spawn = Spawn::new("/bin/sh");
        spawn.args(["-c", script]);
        spawn
    }

    #[test]
    fn argv_env_and_cwd_reach_the_child() {
        let mut spawn = sh(r#"printf '%s|%s|%s|%s' "$0" "$FOO" "$(pwd)" "${HOME-unset}""#);
        spawn.env_clear().env("FOO", "bar baz").current_dir("/tmp");
        let (status, out) = run(&mut spawn).unwrap();
        assert!(status.unwrap().success());
        assert_eq!(out, "/bin/sh|bar baz|/tmp|unset");
    }

    #[test]
    fn a_removed_variable_is_not_inherited_until_set_again() {
        // PATH is in this test process's environment (a shell would set
        // its own: `env` shows what the child got).
        let mut spawn = Spawn::new("/usr/bin/env");
        spawn
            .env_remove("PATH")
            .env_remove("HOME")
            .env("HOME", "/h");
        let (_, out) = run(&mut spawn).unwrap();
        assert!(!out.lines().any(|l| l.starts_with("PATH=")), "{out}");
        assert!(out.lines().any(|l| l == "HOME=/h"), "{out}");
    }

    #[test]
    fn a_bare_name_is_found_in_the_childs_path() {
        let mut spawn = Spawn::new("sh");
        spawn
            .args(["-c", "echo found"])
            .env("PATH", "/nonexistent:/bin");
        let (status, out) = run(&mut spawn).unwrap();
        assert!(status.unwrap().success());
        assert_eq!(out, "found\n");
        let err = Spawn::new("no-such-program-anywhere").spawn().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn a_script_without_a_shebang_runs_in_sh() {
        let dir = std::env::temp_dir().join(format!("spawn-script-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("job");
        std::fs::write(&script, "echo \"ran $1\"\n").unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let mut spawn = Spawn::new(&script);
        spawn.args(["with-arg"]);
        let result = run(&mut spawn);
        std::fs::remove_dir_all(&dir).unwrap();
        let (status, out) = result.unwrap();
        assert!(status.unwrap().success());
        assert_eq!(out, "ran with-arg\n");
    }

    /// A private directory under the temporary one, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir = std::env::temp_dir().join(format!("spawn-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn script(&self, at: &str, mode: u32, text: &str) {
            use std::os::unix::fs::PermissionsExt;
            let path = self.0.join(at);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, format!("#!/bin/sh\n{text}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn relative_path_entries_are_searched_from_the_childs_directory() {
        let dir = TempDir::new("relpath");
        dir.script("bin/prog", 0o755, "echo ran");
        let mut spawn = Spawn::new("prog");
        spawn.env("PATH", "bin").current_dir(&dir.0);
        assert_eq!(run(&mut spawn).unwrap().1, "ran\n");
        // An empty entry is the working directory: the child's.
        let mut spawn = Spawn::new("prog");
        spawn.env("PATH", ":").current_dir(dir.0.join("bin"));
        assert_eq!(run(&mut spawn).unwrap().1, "ran\n");
    }

    #[test]
    fn the_path_is_searched_with_the_childs_permissions() {
        if !nix::unistd::geteuid().is_root() {
            println!("skipped: changing the user needs root");
            return;
        }
        let dir = TempDir::new("uidpath");
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        // Root may run a/prog; nobody may not, and gets b/prog.
        dir.script("a/prog", 0o700, "echo a");
        dir.script("b/prog", 0o755, "echo b");
        let path = format!(
            "{}:{}",
            dir.0.join("a").display(),
            dir.0.join("b").display()
        );
        let nobody = Identity {
            uid: Some(Uid::from_raw(65534)),
            gid: Some(Gid::from_raw(65534)),
            groups: Some(Vec::new()),
            umask: None,
        };
        let mut spawn = Spawn::new("prog");
        spawn.env("PATH", &path).identity(nobody.clone());
        assert_eq!(run(&mut spawn).unwrap().1, "b\n");
        // Only a/prog: not allowed is EACCES, as execvp says.
        let mut spawn = Spawn::new("prog");
        spawn.env("PATH", dir.0.join("a")).identity(nobody);
        assert_eq!(
            spawn.spawn().unwrap_err().raw_os_error(),
            Some(libc::EACCES)
        );
    }

    #[test]
    fn inherited_variables_pass_as_they_came_and_set_ones_are_checked() {
        // A key std read from an odd environ entry of the owner's.
        let env: BTreeMap<OsString, OsString> = [("=ODD".into(), "1".into())].into();
        let spawn = Spawn::new("/bin/true");
        let prepared = spawn.prepare(&env).unwrap();
        assert_eq!(prepared._envp[0].to_bytes(), b"=ODD=1");
        let mut set = Spawn::new("/bin/true");
        set.env("=ODD", "1");
        let err = set.prepare(&set.environment()).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn exec_and_chdir_failures_are_the_bare_os_error() {
        let err = Spawn::new("/nonexistent/bin/x").spawn().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
        let err = sh("exit 0")
            .current_dir("/nonexistent/dir")
            .spawn()
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn a_failing_step_is_named() {
        // Moving into a cgroup.procs that is a plain file fails the write
        // only if the file is read-only: open it so.
        let dir = std::env::temp_dir().join(format!("spawn-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("procs");
        std::fs::write(&path, b"").unwrap();
        let read_only = Arc::new(File::open(&path).unwrap());
        let err = sh("exit 0").cgroup(read_only).spawn().unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(errno(&err), Some(libc::EBADF), "{err}");
        assert!(
            err.to_string().starts_with("entering the pod's cgroup: "),
            "{err}"
        );
    }

    #[test]
    fn the_child_starts_with_no_signal_blocked_and_sigpipe_default() {
        // SigBlk and SigIgn of the child: nothing blocked, SIGPIPE (bit 13)
        // not ignored although this test process ignores it.
        let mut spawn = sh("grep -E '^Sig(Blk|Ign)' /proc/self/status");
        let (_, out) = run(&mut spawn).unwrap();
        let field = |name: &str| {
            let line = out.lines().find(|l| l.starts_with(name)).unwrap();
            u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
        };
        assert_eq!(field("SigBlk:"), 0, "{out}");
        assert_eq!(field("SigIgn:") & (1 << (libc::SIGPIPE - 1)), 0, "{out}");
    }

    #[test]
    fn the_channel_is_fd_3_and_nothing_else_leaks() {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut spawn = sh("ls /proc/self/fd | sort -n | tr '\\n' ' '; echo x >&3");
        spawn.channel(theirs.as_raw_fd());
        let (status, out) = run(&mut spawn).unwrap();
        drop(theirs);
        assert!(status.unwrap().success());
        // 0-3, the one `ls` opens to list the directory, and what this test
        // process itself was given without close-on-exec.
        let mut expected: Vec<RawFd> = vec![0, 1, 2, 3, 4];
        for entry in std::fs::read_dir("/proc/self/fd").unwrap() {
            let fd: RawFd = entry
                .unwrap()
                .file_name()
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            // SAFETY: F_GETFD reads a flag; a descriptor closed meanwhile
            // just fails.
            #[allow(unsafe_code)]
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
            if fd > 4 && flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
                expected.push(fd);
            }
        }
        expected.sort_unstable();
        let expected: String = expected.iter().map(|fd| format!("{fd} ")).collect();
        assert_eq!(out, expected);
        let mut got = String::new();
        use std::io::Read;
        (&ours).read_to_string(&mut got).unwrap();
        assert_eq!(got, "x\n");
    }

    #[test]
    fn a_new_process_group_is_led_by_the_child() {
        // Field 5 of /proc/PID/stat is the process group (the shell's name,
        // field 2, has no space).
        let pgid = |new_group: bool| {
            let mut spawn = sh("echo $$ $(cut -d' ' -f5 /proc/$$/stat)");
            if new_group {
                spawn.process_group();
            }
            let (_, out) = run(&mut spawn).unwrap();
            let (pid, pgid) = out.trim().split_once(' ').unwrap();
            (pid.to_owned(), pgid.to_owned())
        };
        let (pid, group) = pgid(true);
        assert_eq!(group, pid);
        let (pid, group) = pgid(false);
        assert_ne!(group, pid, "without process_group the child joins ours");
    }

    #[test]
    fn a_dropped_child_is_killed_and_reaped() {
        let child = sh("sleep 30").spawn().unwrap();
        let pid = child.pid();
        drop(child);
        // Reaped: no such process left, zombie or not (the reaper thread
        // may need a moment after SIGKILL).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::path::Path::new(&format!("/proc/{pid}")).exists() {
            assert!(std::time::Instant::now() < deadline, "pid {pid} not reaped");
            std::thread::yield_now();
        }
    }
}
