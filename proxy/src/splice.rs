//! TCP copying without userspace buffers: each direction moves bytes
//! socket -> pipe -> socket with splice(2), so the proxy's CPU per byte is
//! a page reference rather than two copies (measured in BENCHMARKS.md
//! section 15). Each end's EOF is passed on as a half-close (shutdown of
//! the other's write side); an error on either direction ends both.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::fcntl::{splice, OFlag, SpliceFFlags};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Most bytes one splice moves (a pipe holds 64 KiB unless grown).
const CHUNK: usize = 1 << 20;

/// A pipe for one direction, both ends non-blocking; `None` when no
/// descriptors are left (the caller copies through a buffer instead).
pub fn pipe() -> Option<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).ok()?;
    // A larger pipe moves more per call; refused (the system's
    // pipe-max-size, or pipe-user-pages-soft reached): the default.
    let _ = nix::fcntl::fcntl(&w, nix::fcntl::FcntlArg::F_SETPIPE_SZ(256 * 1024));
    Some((r, w))
}

/// Both directions until both ends are done.
pub async fn both_ways(
    a: &TcpStream,
    b: &TcpStream,
    ab: (OwnedFd, OwnedFd),
    ba: (OwnedFd, OwnedFd),
) -> io::Result<()> {
    tokio::try_join!(one_way(a, b, ab), one_way(b, a, ba)).map(|_| ())
}

async fn one_way(from: &TcpStream, to: &TcpStream, (r, w): (OwnedFd, OwnedFd)) -> io::Result<()> {
    let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
    loop {
        let n = loop {
            from.readable().await?;
            match from.try_io(Interest::READABLE, || {
                splice(from.as_fd(), None, w.as_fd(), None, CHUNK, flags).map_err(io::Error::from)
            }) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            // EOF: pass it on, and this direction is done.
            let _ = nix::sys::socket::shutdown(to.as_raw_fd(), nix::sys::socket::Shutdown::Write);
            return Ok(());
        }
        let mut left = n;
        while left > 0 {
            to.writable().await?;
            match to.try_io(Interest::WRITABLE, || {
                splice(r.as_fd(), None, to.as_fd(), None, left, flags).map_err(io::Error::from)
            }) {
                Ok(m) => left -= m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }
}
