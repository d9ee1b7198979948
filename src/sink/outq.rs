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

/// Asks the kernel to acknowledge received data at once instead of delaying the
/// ACK (Linux `TCP_QUICKACK`, which lasts until the next delayed ACK, so it is set
/// after every read). RELP receivers answer each event with a small `rsp`; with
/// Nagle's algorithm on their side, delayed ACKs here would stall them ~40 ms.
#[cfg(target_os = "linux")]
pub(crate) fn quick_ack(fd: RawFd) {
    let one: libc::c_int = 1;
    // SAFETY: `fd` is an open TCP socket; the option value is one c_int.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Elsewhere: nothing to do.
#[cfg(not(target_os = "linux"))]
pub(crate) fn quick_ack(_fd: RawFd) {}
