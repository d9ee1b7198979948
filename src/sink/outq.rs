//! How many bytes a TCP socket holds that the peer has not acknowledged yet: the
//! difference between "written" and "received by the peer's TCP stack".

use std::os::fd::RawFd;

/// Bytes in the socket's send queue not yet acknowledged by the peer (Linux
/// `SIOCOUTQ`: unsent plus sent-but-unacknowledged).
#[cfg(target_os = "linux")]
pub(crate) fn unacknowledged_bytes(fd: RawFd) -> std::io::Result<u64> {
    let mut n: libc::c_int = 0;
    // SAFETY: `fd` is an open TCP socket owned by the caller for the duration of the
    // call, and SIOCOUTQ (== TIOCOUTQ) writes one c_int through the pointer.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut n as *mut libc::c_int) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Elsewhere there is no portable probe: written counts as acknowledged.
#[cfg(not(target_os = "linux"))]
pub(crate) fn unacknowledged_bytes(_fd: RawFd) -> std::io::Result<u64> {
    Ok(0)
}
