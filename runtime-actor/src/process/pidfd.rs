//! Process file descriptors: watching and signalling a process that is not
//! our child (a main process handed over with `MAINPID=`) without the races
//! of a bare pid, which the kernel may give to another process once the
//! first one has ended.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// An open pidfd (Linux 5.3 and later).
#[derive(Debug)]
pub(crate) struct PidFd {
    fd: AsyncFd<OwnedFd>,
}

impl PidFd {
    /// Opens a pidfd for `pid`; fails with `ESRCH` if there is no such process.
    pub(crate) fn open(pid: u32) -> io::Result<PidFd> {
        let pid =
            libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
        #[allow(unsafe_code)]
        // SAFETY: pidfd_open takes a pid and flags and returns a new
        // descriptor or -1; it touches no memory of ours.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, libc::PIDFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let fd = i32::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
        #[allow(unsafe_code)]
        // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        PidFd::register(fd)
    }

    /// Takes a pidfd the kernel gave (`CLONE_PIDFD`); sets it non-blocking.
    pub(crate) fn from_owned(fd: OwnedFd) -> io::Result<PidFd> {
        let flags = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFL)?;
        let flags = nix::fcntl::OFlag::from_bits_retain(flags) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(flags))?;
        PidFd::register(fd)
    }

    fn register(fd: OwnedFd) -> io::Result<PidFd> {
        #[allow(unsafe_code)]
        // SAFETY: the AsyncFd takes the OwnedFd, which keeps the descriptor
        // open and the same for as long as the AsyncFd lives.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?;
        Ok(PidFd { fd })
    }

    /// Resolves once the process has ended (the pidfd turns readable).
    pub(crate) async fn exited(&self) {
        loop {
            match self.fd.readable().await {
                // Readable stays true once the process has ended: no clear.
                Ok(_guard) => return,
                Err(_) => std::future::pending::<()>().await,
            }
        }
    }

    /// Sends `signal` to the process, never to a later owner of its pid.
    pub(crate) fn signal(&self, signal: nix::sys::signal::Signal) -> io::Result<()> {
        #[allow(unsafe_code)]
        // SAFETY: pidfd_send_signal with a null siginfo sends `signal` as
        // kill(2) would; it reads no memory of ours.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.get_ref().as_raw_fd(),
                signal as libc::c_int,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_process_has_no_pidfd() {
        let err = PidFd::open(u32::MAX).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ESRCH));
    }
}
