//! The receiving end of systemd's sd_notify protocol.
//!
//! The pod binds a unix datagram socket, hands its path to the child as
//! `NOTIFY_SOCKET`, and reads `KEY=VALUE` lines from it. The kernel stamps
//! every datagram with the sender's credentials (`SO_PASSCRED`); the process
//! runtime decides whose datagrams count (`notify_access`).
//!
//! The socket lives in a directory of its own, made by `mkdtemp` (a random
//! name nobody can guess or take first), mode 0711: others can reach the
//! socket through it, so a child that dropped privileges can still report,
//! but cannot list it or put anything in it. The socket itself is 0666, as
//! systemd's own `/run/systemd/notify` is: who may *speak* is decided by the
//! kernel's credentials, not by the file mode. Directories of owners that
//! died without removing theirs are removed by the next owner.
//!
//! A datagram that is oversized, truncated, carries descriptors (closed at
//! once) or cannot be read is logged and skipped: nothing a child sends can
//! end the listener. `BARRIER=1` with one descriptor (`sd_notify_barrier`,
//! what `systemd-notify` sends after its message) works as in systemd: the
//! datagrams before it have been handled when its descriptor is closed.

use std::fs;
use std::io::{self, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use nix::sys::socket::{
    recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, UnixCredentials,
};
use tokio::io::Interest;
use tokio::net::UnixDatagram;

use crate::process::procfs::{left_by_dead_owner, owner_mark};

/// The largest datagram read, as systemd's `NOTIFY_BUFFER_MAX`; longer ones
/// are skipped whole.
pub(crate) const MAX_DATAGRAM: usize = 4096;

/// The prefix of a socket's directory name.
const DIR_PREFIX: &str = "pod-notify-";

/// One thing the child said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Notice {
    Ready,
    Status(String),
    ExtendTimeout(Duration),
    Watchdog,
    Stopping,
    Errno(i32),
    MainPid(u32),
}

/// A datagram that was read whole: who sent it, and what it said.
#[derive(Debug)]
pub(crate) struct Datagram {
    pub(crate) sender: Option<u32>,
    pub(crate) notices: Vec<Notice>,
}

/// A bound notify socket; its file and directory are removed on drop.
#[derive(Debug)]
pub(crate) struct NotifySocket {
    socket: UnixDatagram,
    dir: PathBuf,
    path: PathBuf,
    skipped: std::cell::Cell<u64>,
}

impl NotifySocket {
    /// Binds a fresh socket in a new private directory under the temporary
    /// directory.
    pub(crate) fn bind() -> io::Result<NotifySocket> {
        let base = std::env::temp_dir();
        // Without a start time, a mark that no sweep can judge.
        let mark = owner_mark().unwrap_or_else(|| format!("x{}", std::process::id()));
        let template = base.join(format!("{DIR_PREFIX}{mark}-XXXXXX"));
        let dir = nix::unistd::mkdtemp(&template).map_err(|e| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!("cannot make a directory like `{}`: {e}", template.display()),
            )
        })?;
        let bound = (|| -> io::Result<_> {
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o711))?;
            let path = dir.join("notify.sock");
            let socket = UnixDatagram::bind(&path)?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o666))?;
            setsockopt(&socket, sockopt::PassCred, &true).map_err(io::Error::from)?;
            Ok((socket, path))
        })();
        match bound {
            Ok((socket, path)) => Ok(NotifySocket {
                socket,
                dir,
                path,
                skipped: std::cell::Cell::new(0),
            }),
            Err(e) => {
                let _ = fs::remove_file(dir.join("notify.sock"));
                let _ = fs::remove_dir(&dir);
                Err(io::Error::new(
                    e.kind(),
                    format!("cannot bind a socket in `{}`: {e}", dir.display()),
                ))
            }
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The next datagram read whole. Unreadable ones are logged and skipped,
    /// so this only returns a datagram.
    pub(crate) async fn recv(&self) -> Datagram {
        let mut buf = [0u8; MAX_DATAGRAM];
        loop {
            let got = self
                .socket
                .async_io(Interest::READABLE, || {
                    receive(self.socket.as_raw_fd(), &mut buf)
                })
                .await;
            match got {
                Ok(Received::Whole { len, sender }) => {
                    return Datagram {
                        sender,
                        notices: parse(&String::from_utf8_lossy(&buf[..len])),
                    };
                }
                Ok(Received::Skipped { why, sender }) => self.skip(why, sender),
                Err(e) => {
                    self.skip("it could not be read", None);
                    tracing::debug!(error = %e, "notify socket read failed");
                    // Not a busy loop if the error persists.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }

    /// Logs a skipped datagram: the first at WARN, then every 1000th.
    pub(crate) fn skip(&self, why: &str, sender: Option<u32>) {
        let n = self.skipped.get() + 1;
        self.skipped.set(n);
        if n == 1 || n % 1000 == 0 {
            tracing::warn!(socket = %self.path.display(), ?sender, skipped = n, "skipped a notify datagram: {why}");
        } else {
            tracing::debug!(socket = %self.path.display(), ?sender, "skipped a notify datagram: {why}");
        }
    }
}

enum Received {
    Whole {
        len: usize,
        sender: Option<u32>,
    },
    Skipped {
        why: &'static str,
        sender: Option<u32>,
    },
}

/// One `recvmsg`, with room for the sender's credentials *and* the most
/// descriptors one datagram can carry (`SCM_MAX_FD`), so that a datagram
/// with descriptors is read whole; they are closed at once.
fn receive(fd: RawFd, buf: &mut [u8]) -> io::Result<Received> {
    let mut cmsg = nix::cmsg_space!(UnixCredentials, [RawFd; 253]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(
        fd,
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    let (len, flags) = (msg.bytes, msg.flags);
    let mut sender = None;
    let mut descriptors = 0;
    let mut readable = true;
    match msg.cmsgs() {
        Ok(cmsgs) => {
            for cmsg in cmsgs {
                match cmsg {
                    ControlMessageOwned::ScmCredentials(creds) => {
                        sender = u32::try_from(creds.pid()).ok();
                    }
                    ControlMessageOwned::ScmRights(fds) => {
                        descriptors += fds.len();
                        fds.into_iter().for_each(close);
                    }
                    _ => {}
                }
            }
        }
        Err(_) => readable = false,
    }
    let why = if !readable || flags.contains(MsgFlags::MSG_CTRUNC) {
        "its control data was cut short"
    } else if flags.contains(MsgFlags::MSG_TRUNC) {
        "it is longer than 4096 bytes"
    } else if descriptors > 0 && !(descriptors == 1 && &buf[..len] == b"BARRIER=1") {
        "it carries file descriptors (closed; FDSTORE is not supported)"
    } else {
        return Ok(Received::Whole { len, sender });
    };
    Ok(Received::Skipped { why, sender })
}

/// Closes a descriptor the kernel installed for us with a datagram.
fn close(fd: RawFd) {
    #[allow(unsafe_code)]
    // SAFETY: the kernel has just installed `fd` in this process's table as
    // part of the datagram we read; nothing else knows it or owns it.
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
        let _ = fs::remove_dir(&self.dir);
    }
}

/// On its first call in a process, removes the socket directories that
/// owners which are no longer alive left in the temporary directory, and
/// returns them; later calls return nothing.
pub(crate) fn sweep_once() -> Vec<PathBuf> {
    static SWEPT: OnceLock<()> = OnceLock::new();
    let mut removed = Vec::new();
    SWEPT.get_or_init(|| removed = sweep(&std::env::temp_dir()));
    removed
}

/// Removes the socket directories that owners which are no longer alive
/// left in `base`: only directories (not links) owned by this user, and in
/// them only the socket.
fn sweep(base: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = fs::read_dir(base) else {
        return removed;
    };
    let uid = nix::unistd::getuid().as_raw();
    for entry in entries.flatten() {
        if !left_by_dead_owner(&entry.file_name(), DIR_PREFIX, true) {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.is_dir() || meta.uid() != uid {
            continue;
        }
        let _ = fs::remove_file(path.join("notify.sock"));
        if fs::remove_dir(&path).is_ok() {
            removed.push(path);
        }
    }
    removed
}

/// Parses one datagram; unknown or malformed lines are ignored, as systemd
/// does.
pub(crate) fn parse(datagram: &str) -> Vec<Notice> {
    datagram
        .lines()
        .filter_map(|line| {
            let (key, value) = line.split_once('=')?;
            match key {
                "READY" if value == "1" => Some(Notice::Ready),
                "STATUS" => Some(Notice::Status(value.to_owned())),
                "EXTEND_TIMEOUT_USEC" => value
                    .parse()
                    .ok()
                    .map(|us| Notice::ExtendTimeout(Duration::from_micros(us))),
                "WATCHDOG" if value == "1" => Some(Notice::Watchdog),
                "STOPPING" if value == "1" => Some(Notice::Stopping),
                "ERRNO" => value.parse().ok().map(Notice::Errno),
                "MAINPID" => value
                    .parse()
                    .ok()
                    .filter(|&pid| pid > 0)
                    .map(Notice::MainPid),
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_keys_systemd_knows() {
        let notices = parse(
            "READY=1\nSTATUS=listening on 127.0.0.1:80\nEXTEND_TIMEOUT_USEC=5000000\n\
             WATCHDOG=1\nSTOPPING=1\nERRNO=2\nMAINPID=42\n",
        );
        assert_eq!(
            notices,
            [
                Notice::Ready,
                Notice::Status("listening on 127.0.0.1:80".into()),
                Notice::ExtendTimeout(Duration::from_secs(5)),
                Notice::Watchdog,
                Notice::Stopping,
                Notice::Errno(2),
                Notice::MainPid(42),
            ]
        );
    }

    #[test]
    fn garbage_is_ignored() {
        assert!(parse(
            "READY=0\nEXTEND_TIMEOUT_USEC=soon\n\u{0}\u{1}garbage\n=\nMAINPID=0\nMAINPID=-1\n"
        )
        .is_empty());
    }
}
