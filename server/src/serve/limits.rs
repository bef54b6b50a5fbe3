//! How long a client may take, and how many may be connected at once.

use std::time::Duration;

/// File descriptors kept free for data files, the metadata database and outgoing
/// connections when the connection cap is derived from the fd limit: a quarter of the limit,
/// at least this many.
const MIN_FD_RESERVE: u64 = 64;

/// The cap used when the fd limit cannot be read.
pub const FALLBACK_MAX_CONNECTIONS: usize = 768;

/// Timeouts and the connection cap of a server (router or peer, plain or TLS).
///
/// A client that sends its request headers a line at a time, holds an idle connection, or
/// stops in the middle of a body would otherwise keep its socket (and file descriptor) for
/// as long as it likes; enough of them and the server fails to accept anyone.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mictlanx_server::serve::ConnectionLimits;
///
/// let limits = ConnectionLimits {
///     header_read_timeout: Duration::from_secs(5),
///     ..ConnectionLimits::default()
/// };
/// assert_eq!(limits.idle_timeout, Duration::from_secs(60));
/// assert!(limits.max_connections > 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time allowed to send a request's headers, counted from when the server starts
    /// waiting for them; a new connection must also send its first byte within it. For
    /// HTTP/1.1 it also bounds the wait for the next request on a keep-alive connection,
    /// because hyper starts this timer as soon as the previous response is sent.
    /// Default 10 s.
    pub header_read_timeout: Duration,
    /// A connection with no request in progress that moves no byte for this long is
    /// closed: idle HTTP/2 connections, clients that stop reading a response. Default 60 s.
    pub idle_timeout: Duration,
    /// Time allowed between two pieces of a request body; a body that stalls longer fails
    /// and the request with it. Default 30 s.
    pub body_timeout: Duration,
    /// Connections served at once; past it a client gets `503` and is closed. Default:
    /// three quarters of the soft fd limit (`RLIMIT_NOFILE`), the rest left for files and
    /// outgoing connections; 768 when the limit cannot be read.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            max_connections: default_max_connections(),
        }
    }
}

/// The default connection cap: the soft fd limit minus a reserve (a quarter of it, at least
/// 64), or [`FALLBACK_MAX_CONNECTIONS`] when the limit is unknown.
///
/// ```
/// assert!(mictlanx_server::serve::default_max_connections() >= 1);
/// ```
pub fn default_max_connections() -> usize {
    match fd_soft_limit() {
        Some(limit) => cap_for(limit),
        None => FALLBACK_MAX_CONNECTIONS,
    }
}

/// The cap for a soft fd limit of `limit`.
fn cap_for(limit: u64) -> usize {
    // "Unlimited" or huge limits: no point in more than this many sockets.
    let limit = limit.min(1 << 20);
    let reserve = (limit / 4).max(MIN_FD_RESERVE);
    usize::try_from(limit.saturating_sub(reserve).max(16)).unwrap_or(FALLBACK_MAX_CONNECTIONS)
}

#[cfg(unix)]
fn fd_soft_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass, which lives for the call.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if rc != 0 {
        return None;
    }
    if limit.rlim_cur == libc::RLIM_INFINITY {
        return Some(u64::MAX);
    }
    // `rlim_t` is u64 on Linux but not on every unix.
    #[allow(clippy::useless_conversion)]
    u64::try_from(limit.rlim_cur).ok()
}

#[cfg(not(unix))]
fn fd_soft_limit() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_below_the_fd_limit() {
        assert_eq!(cap_for(1024), 768);
        assert_eq!(cap_for(256), 192);
        assert_eq!(cap_for(100), 36);
        assert_eq!(cap_for(10), 16);
        assert_eq!(cap_for(u64::MAX), 786_432);
        assert!(default_max_connections() >= 16);
    }
}
