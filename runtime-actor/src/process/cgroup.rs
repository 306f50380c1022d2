//! Containment of a process pod's whole tree in a cgroup v2.
//!
//! A process group is not a boundary: a daemon calls `setsid` and leaves it.
//! A cgroup is: the kernel puts every descendant in its parent's cgroup, and
//! `cgroup.kill` kills them all at once (systemd's `KillMode=control-group`).
//!
//! Layout, under the cgroup the owner process runs in:
//!
//! ```text
//! <own cgroup>/pod-actor-<owner pid>-<owner start time>/   one per owner process
//!     <n>-<pod name>/                                      one per child process
//! ```
//!
//! The owner's directory is watched by a *keeper*: a `/bin/sh` started once
//! per owner process, in a process group of its own, that blocks reading a
//! pipe whose only writer is the owner. When the owner ends, however it ends
//! (SIGKILL included), the pipe closes, the keeper wakes up, kills the whole
//! directory with `cgroup.kill` and removes it. Whatever survives even that
//! (the keeper killed too) is found by the next owner, which removes the
//! directories of owners that are no longer alive.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::time::{self, Instant};

use super::procfs::{left_by_dead_owner, owner_mark};
use super::spawn::{Output, Spawn};

/// The cgroup v2 hierarchy as the owner process sees it, set up once.
struct Owner {
    /// `<mount>/<own cgroup>/pod-actor-<pid>-<start>`.
    dir: PathBuf,
    /// The same directory as `/proc/<pid>/cgroup` names it (`/a/b/pod-actor-…`).
    name: String,
    /// The writing end of the keeper's pipe; dropped only when the process ends.
    _keeper: Option<OwnedFd>,
    /// Run directories that still held dying processes when their runtime was
    /// dropped; removed at the next chance.
    pending: Mutex<Vec<PathBuf>>,
}

/// Why the cgroup containment is not in force, or the owner's directory.
static OWNER: OnceLock<Result<Owner, String>> = OnceLock::new();

/// The prefix of an owner's directory.
const OWNER_PREFIX: &str = "pod-actor-";

/// The keeper: a shell that starts the watch in the background and exits,
/// so that the watch is not the owner's child (the owner's children stay
/// the pods'). The watch waits for the owner's end (its stdin, the pipe,
/// closes), then kills and removes the owner's directory (`$1`), retrying
/// while processes die.
const KEEPER: &str = r#"exec 3<&0
{
  read _
  echo 1 > "$1/cgroup.kill"
  n=0
  while [ "$n" -lt 200 ]; do
    for d in "$1"/*/; do [ -d "$d" ] && rmdir "$d"; done
    rmdir "$1" && exit 0
    n=$((n+1)); sleep 0.05
  done
} <&3 3<&- >/dev/null 2>&1 &"#;

/// A cgroup of one child process and everything it starts.
#[derive(Debug)]
pub(crate) struct Cgroup {
    dir: PathBuf,
    /// As `/proc/<pid>/cgroup` names it.
    name: String,
    /// `cgroup.procs`, opened for the child to move itself in before exec.
    procs: Arc<File>,
}

/// What the owner found and removed when it set up its cgroups: the
/// directories of owners that had died without cleaning up.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Leftovers {
    /// Directories removed.
    pub(crate) cgroups: Vec<PathBuf>,
    /// Processes that were still running in them and were killed.
    pub(crate) processes: usize,
}

/// Sets up the owner's directory once per process. On the first call it also
/// removes what dead owners left behind, and returns that.
pub(crate) fn init() -> (Result<(), String>, Option<Leftovers>) {
    let mut found = None;
    let owner = OWNER.get_or_init(|| {
        let (owner, leftovers) = Owner::create()?;
        found = Some(leftovers);
        Ok(owner)
    });
    (owner.as_ref().map(|_| ()).map_err(Clone::clone), found)
}

/// Whether [`init`] has run in this process (so it returns at once).
pub(crate) fn initialized() -> bool {
    OWNER.get().is_some()
}

impl Owner {
    fn create() -> Result<(Owner, Leftovers), String> {
        let mount = cgroup2_mount().ok_or("no cgroup v2 hierarchy is mounted")?;
        let own = own_cgroup().ok_or("this process is in no cgroup v2")?;
        let base = mount.join(own.trim_start_matches('/'));
        let leftovers = sweep(&base);
        let mark = owner_mark().ok_or("cannot read this process's start time")?;
        let leaf = format!("{OWNER_PREFIX}{mark}");
        let dir = base.join(&leaf);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("cannot create `{}`: {e}", dir.display())),
        }
        // Creating a directory is not enough: moving a process in needs write
        // access to the cgroup.procs of the common ancestor too, which no
        // file mode shows. A throwaway child tries it.
        let probe = fs::metadata(dir.join("cgroup.kill")).and_then(|_| try_entering(&dir));
        if let Err(e) = probe {
            let _ = fs::remove_dir(&dir);
            return Err(format!(
                "cannot move a process into `{}`: {e}",
                dir.display()
            ));
        }
        let keeper = match spawn_keeper(&dir) {
            Ok(keeper) => Some(keeper),
            Err(e) => {
                tracing::warn!(
                    cgroup = %dir.display(),
                    error = %e,
                    "cannot start the keeper that kills the pods' processes if this process dies; \
                     they are removed when the next owner starts"
                );
                None
            }
        };
        let name = format!("{}/{leaf}", own.trim_end_matches('/'));
        Ok((
            Owner {
                dir,
                name,
                _keeper: keeper,
                pending: Mutex::new(Vec::new()),
            },
            leftovers,
        ))
    }
}

/// Starts `/bin/sh -c 'exit 0'` in a new cgroup under `dir`, as a child of
/// a pod would be started, and removes that cgroup.
fn try_entering(dir: &Path) -> io::Result<()> {
    let leaf = dir.join("probe");
    match fs::create_dir(&leaf) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    let entered = (|| {
        let procs = OpenOptions::new()
            .write(true)
            .open(leaf.join("cgroup.procs"))?;
        let mut child = Spawn::new("/bin/sh")
            .args(["-c", "exit 0"])
            .output(Output::Null)
            .cgroup(Arc::new(procs))
            .spawn()?;
        match child.wait_blocking()? {
            Some(status) if status.success() => Ok(()),
            Some(status) => Err(io::Error::other(format!("/bin/sh {status}"))),
            None => Err(io::Error::other("/bin/sh was reaped by someone else")),
        }
    })();
    let _ = fs::remove_dir(&leaf);
    entered
}

fn spawn_keeper(dir: &Path) -> io::Result<OwnedFd> {
    // Close-on-exec: no other child of the owner may hold the writing end.
    let (reader, writer) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let status = Command::new("/bin/sh")
        .arg("-c")
        .arg(KEEPER)
        .arg("pod-actor-keeper")
        .arg(dir)
        .stdin(reader)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Not in the owner's group: a Ctrl-C to the owner must not end the
        // keeper before the keeper has done its work.
        .process_group(0)
        .status()?;
    if !status.success() {
        return Err(io::Error::other(format!("/bin/sh {status}")));
    }
    Ok(writer)
}

impl Cgroup {
    /// A new cgroup for one child of the pod `pod`, when containment by
    /// cgroup is in force; the error says why it is not.
    pub(crate) fn create(pod: &str) -> Result<Cgroup, String> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let owner = match OWNER.get() {
            Some(Ok(owner)) => owner,
            Some(Err(why)) => return Err(why.clone()),
            None => return Err("cgroup containment was not set up".into()),
        };
        owner.retry_pending();
        let leaf = format!("{}-{}", NEXT.fetch_add(1, Ordering::Relaxed), sanitize(pod));
        let dir = owner.dir.join(&leaf);
        fs::create_dir(&dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
        let procs = OpenOptions::new()
            .write(true)
            .open(dir.join("cgroup.procs"))
            .map_err(|e| {
                let _ = fs::remove_dir(&dir);
                format!("cannot open `{}/cgroup.procs`: {e}", dir.display())
            })?;
        Ok(Cgroup {
            dir,
            name: format!("{}/{leaf}", owner.name),
            procs: Arc::new(procs),
        })
    }

    /// The file the child writes `0` to, between clone and exec, to move
    /// itself in; so not even its first fork escapes.
    pub(crate) fn procs(&self) -> Arc<File> {
        Arc::clone(&self.procs)
    }

    /// The cgroup's directory.
    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }

    /// The processes in the cgroup, sorted.
    pub(crate) fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.trim().parse().ok())
            .collect();
        pids.sort_unstable();
        pids
    }

    /// Whether process `pid` is in this cgroup (or one below it).
    pub(crate) fn contains(&self, pid: u32) -> bool {
        let Ok(text) = fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
            return false;
        };
        text.lines()
            .filter_map(|line| line.strip_prefix("0::"))
            .any(|path| {
                path == self.name
                    || path
                        .strip_prefix(self.name.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            })
    }

    /// Kills every process in the cgroup at once.
    pub(crate) fn kill(&self) {
        if let Err(e) = fs::write(self.dir.join("cgroup.kill"), b"1") {
            tracing::warn!(cgroup = %self.dir.display(), error = %e, "cannot kill the pod's cgroup");
        }
    }

    fn populated(&self) -> bool {
        populated(&self.dir)
    }

    /// Kills what is left and waits until the cgroup is empty (the kernel
    /// takes a few milliseconds to end killed processes), at most `within`.
    /// True when it is empty.
    pub(crate) async fn kill_and_wait(&self, within: Duration) -> bool {
        let until = Instant::now() + within;
        if !self.populated() {
            return true;
        }
        self.kill();
        let mut pause = Duration::from_millis(1);
        while self.populated() {
            if Instant::now() >= until {
                return false;
            }
            time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(20));
        }
        true
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        if self.populated() {
            self.kill();
        }
        if fs::remove_dir(&self.dir).is_ok() {
            return;
        }
        // Its processes are still dying (a forced stop does not wait for
        // them): remove it once they are gone, off this thread.
        let dir = self.dir.clone();
        let removing = std::thread::Builder::new()
            .name("pod-cgroup-rmdir".into())
            .spawn(move || {
                for _ in 0..500 {
                    std::thread::sleep(Duration::from_millis(10));
                    if fs::remove_dir(&dir).is_ok() || !dir.exists() {
                        return;
                    }
                }
                pend(dir);
            });
        if removing.is_err() {
            pend(self.dir.clone());
        }
    }
}

/// Leaves `dir` for the next cgroup made, or the keeper, to remove.
fn pend(dir: PathBuf) {
    if let Some(Ok(owner)) = OWNER.get() {
        if let Ok(mut pending) = owner.pending.lock() {
            pending.push(dir);
        }
    }
}

impl Owner {
    fn retry_pending(&self) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        pending.retain(|dir| fs::remove_dir(dir).is_err() && dir.exists());
    }
}

/// Removes the directories of owners that are no longer alive, killing what
/// still runs in them.
fn sweep(base: &Path) -> Leftovers {
    let mut leftovers = Leftovers::default();
    let Ok(entries) = fs::read_dir(base) else {
        return leftovers;
    };
    let mut stale = Vec::new();
    for entry in entries.flatten() {
        if left_by_dead_owner(&entry.file_name(), OWNER_PREFIX, false) {
            stale.push(entry.path());
        }
    }
    for dir in stale {
        let runs: Vec<PathBuf> = fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default();
        let mut pids = HashSet::new();
        for run in runs.iter().chain(std::iter::once(&dir)) {
            if let Ok(text) = fs::read_to_string(run.join("cgroup.procs")) {
                pids.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
            }
        }
        let _ = fs::write(dir.join("cgroup.kill"), b"1");
        // Killed processes take a moment to leave; a bounded, blocking wait
        // is fine here: this runs once per owner process.
        for _ in 0..200 {
            if !populated(&dir) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        for run in &runs {
            let _ = fs::remove_dir(run);
        }
        if fs::remove_dir(&dir).is_ok() {
            leftovers.processes += pids.len();
            leftovers.cgroups.push(dir);
        }
    }
    leftovers
}

fn populated(dir: &Path) -> bool {
    fs::read_to_string(dir.join("cgroup.events"))
        .map(|text| text.lines().any(|line| line == "populated 1"))
        .unwrap_or(false)
}

/// Where the cgroup v2 hierarchy is mounted: `/sys/fs/cgroup` on a unified
/// host, `/sys/fs/cgroup/unified` on a hybrid one.
fn cgroup2_mount() -> Option<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|line| {
        // `id parent major:minor root mountpoint options… - fstype source super`
        let (left, right) = line.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let mountpoint = left.split_whitespace().nth(4)?;
        Some(PathBuf::from(unescape_mountinfo(mountpoint)))
    })
}

/// `/proc/self/mountinfo` writes space, tab, newline and backslash as octal
/// escapes.
fn unescape_mountinfo(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 4);
        match code.and_then(|c| u8::from_str_radix(c, 8).ok()) {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &rest[at + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// This process's cgroup v2 path (`0::/path`).
fn own_cgroup() -> Option<String> {
    let text = fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("0::"))
        .map(str::to_owned)
}

/// A pod name made safe as one path segment: at most 48 of its letters,
/// digits, `-`, `_` and `.`, the rest as `_`.
fn sanitize(name: &str) -> String {
    let safe: String = name
        .chars()
        .take(48)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    match safe.as_str() {
        "" | "." | ".." => "pod".into(),
        _ => safe,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_names_become_one_safe_segment() {
        assert_eq!(sanitize("redis/0"), "redis_0");
        assert_eq!(sanitize(".."), "pod");
        assert_eq!(sanitize(""), "pod");
        assert_eq!(sanitize(&"x".repeat(100)).len(), 48);
    }

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape_mountinfo(r"/a\040b"), "/a b");
        assert_eq!(unescape_mountinfo(r"/a\\"), r"/a\\");
    }
}
