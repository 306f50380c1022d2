//! The receiving end of systemd's sd_notify protocol.
//!
//! The pod binds a unix datagram socket, hands its path to the child as
//! `NOTIFY_SOCKET`, and reads `KEY=VALUE` lines from it. The kernel stamps
//! every datagram with the sender's credentials (`SO_PASSCRED`), so messages
//! from any process other than the child are dropped.

use std::io::{self, IoSliceMut};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags};
use tokio::io::Interest;
use tokio::net::UnixDatagram;

/// One thing the child said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Notice {
    Ready,
    Status(String),
    ExtendTimeout(Duration),
    Watchdog,
    Stopping,
    Errno(i32),
}

/// A bound notify socket; its file is removed on drop.
#[derive(Debug)]
pub(crate) struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
}

impl NotifySocket {
    /// Binds a fresh socket in the temporary directory.
    pub(crate) fn bind() -> io::Result<NotifySocket> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "pod-notify-{}-{}.sock",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&path);
        let socket = UnixDatagram::bind(&path)?;
        setsockopt(&socket, sockopt::PassCred, &true).map_err(io::Error::from)?;
        Ok(NotifySocket { socket, path })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The next notices sent by process `from`; datagrams from any other
    /// process are skipped.
    pub(crate) async fn recv_from(&self, from: u32) -> io::Result<Vec<Notice>> {
        let mut buf = [0u8; 4096];
        loop {
            let (len, sender) = self
                .socket
                .async_io(Interest::READABLE, || {
                    let mut cmsg = nix::cmsg_space!(nix::sys::socket::UnixCredentials);
                    let mut iov = [IoSliceMut::new(&mut buf)];
                    let msg = recvmsg::<()>(
                        self.socket.as_raw_fd(),
                        &mut iov,
                        Some(&mut cmsg),
                        MsgFlags::MSG_DONTWAIT,
                    )
                    .map_err(io::Error::from)?;
                    let sender = msg.cmsgs().map_err(io::Error::from)?.find_map(|c| match c {
                        ControlMessageOwned::ScmCredentials(creds) => Some(creds.pid()),
                        _ => None,
                    });
                    Ok((msg.bytes, sender))
                })
                .await?;
            if sender.and_then(|pid| u32::try_from(pid).ok()) != Some(from) {
                tracing::debug!(
                    ?sender,
                    child = from,
                    "ignored a notify datagram from another process"
                );
                continue;
            }
            return Ok(parse(&String::from_utf8_lossy(&buf[..len])));
        }
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
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
            ]
        );
    }

    #[test]
    fn garbage_is_ignored() {
        assert!(parse("READY=0\nEXTEND_TIMEOUT_USEC=soon\n\u{0}\u{1}garbage\n=\n").is_empty());
    }
}
