//! The resolver process: one per host network namespace, listening on UDP
//! and TCP port 53 of each DNS-enabled network's gateway (both gateways of
//! a dual-stack network). It reads ocinet's state itself (no signal needed): it
//! watches the record directory (inotify) and, before each query, reads
//! again the records named by the events since (the whole directory after
//! an overflow, or by its mtime where no watch could be set), and the
//! network definitions when their directory's mtime moved, so a container
//! that went is gone at the next query. It ends when no DNS-enabled network has a container
//! (deciding so under the state lock, so a hook starting a container
//! either sees it gone and starts another, or is seen).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use ocinet_common::model::ProcessId;
use ocinet_common::store::dns::ResolverState;
use ocinet_common::store::lock::StateLock;
use ocinet_common::store::networks::ConfigDir;
use ocinet_common::store::watch::FinishedRecords;
use ocinet_common::store::StateDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

use crate::answer::{self, Decision, Outcome};
use crate::catalog::{Catalog, Named};
use crate::forward;
use crate::limit::{Limiter, PerClient};
use crate::stats::Stats;

const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";
/// A directory modified this recently may change again within the same
/// mtime tick (the kernel's coarse clock): not trusted as "unchanged".
const RACY: Duration = Duration::from_millis(50);
/// How soon a new network's listener is up, and a change without a
/// query seen.
const TICK: Duration = Duration::from_millis(50);
/// A full rebuild this often even when nothing moved: a container killed
/// without its poststop is stale (and its names go) without a change of
/// the record directory.
const REBUILD: Duration = Duration::from_secs(5);
/// Forwards in flight at once, over every client: beyond, SERVFAIL at
/// once (each holds a socket and a buffer).
const FORWARDS: usize = 256;
/// Forwards one client has in flight at once: a container asking for
/// names its upstream never answers (each held up to the deadline) keeps
/// at most this many of the others' slots.
const FORWARDS_PER_CLIENT: usize = 32;
const TCP_IDLE: Duration = Duration::from_secs(3);
const TCP_CONNECTIONS: usize = 128;
/// Connections one client holds at once, so that one container cannot
/// take every slot from the others.
const TCP_PER_CLIENT: usize = 8;

struct Seen {
    endpoints: Option<SystemTime>,
    networks: Option<SystemTime>,
    /// When anything was last read (what "too recent to trust" counts from).
    loaded: SystemTime,
    /// When every record was last read and every container asked.
    rebuilt: SystemTime,
}

/// What moved in the record directory since the last look.
enum Moved {
    Nothing,
    Names(Vec<std::ffi::OsString>),
    All,
}

/// The watch on the record directory: the names of files renamed into,
/// out of, deleted from or written in it. `None` after it broke (the
/// directory removed): the mtime is looked at instead.
struct Watch(Mutex<Option<nix::sys::inotify::Inotify>>);

impl Watch {
    fn on(dir: &std::path::Path) -> Watch {
        use nix::sys::inotify::{AddWatchFlags as F, InitFlags, Inotify};
        let w = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).and_then(|i| {
            i.add_watch(
                dir,
                F::IN_MOVED_TO
                    | F::IN_MOVED_FROM
                    | F::IN_DELETE
                    | F::IN_CLOSE_WRITE
                    | F::IN_DELETE_SELF
                    | F::IN_MOVE_SELF,
            )
            .map(|_| i)
        });
        match w {
            Ok(i) => Watch(Mutex::new(Some(i))),
            Err(e) => {
                tracing::warn!("no watch on the record directory ({e}): its mtime is looked at");
                Watch(Mutex::new(None))
            }
        }
    }

    /// `None`: no watch (look at the mtime).
    fn drain(&self) -> Option<Moved> {
        use nix::sys::inotify::AddWatchFlags as F;
        let mut w = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let i = w.as_ref()?;
        let mut names = Vec::new();
        loop {
            match i.read_events() {
                Ok(events) => {
                    for e in events {
                        if e.mask.contains(F::IN_Q_OVERFLOW) {
                            return Some(Moved::All);
                        }
                        if e.mask
                            .intersects(F::IN_IGNORED | F::IN_DELETE_SELF | F::IN_MOVE_SELF)
                        {
                            *w = None;
                            return Some(Moved::All);
                        }
                        if let Some(n) = e.name {
                            names.push(n);
                        }
                    }
                }
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(e) => {
                    tracing::warn!(
                        "the record directory's watch failed ({e}): its mtime is looked at"
                    );
                    *w = None;
                    return Some(Moved::All);
                }
            }
        }
        Some(if names.is_empty() {
            Moved::Nothing
        } else {
            names.sort();
            names.dedup();
            Moved::Names(names)
        })
    }
}

struct Shared {
    state: StateDir,
    config: ConfigDir,
    catalog: RwLock<Arc<Catalog>>,
    seen: Mutex<Seen>,
    records: Mutex<FinishedRecords<Named>>,
    watch: Watch,
    host_upstreams: Mutex<(Option<SystemTime>, Vec<IpAddr>)>,
    limiter: Mutex<Limiter>,
    stats: Stats,
    tcp_slots: Arc<tokio::sync::Semaphore>,
    tcp_clients: Arc<PerClient>,
    forwards: tokio::sync::Semaphore,
    client_forwards: Arc<PerClient>,
    health: forward::UpstreamHealth,
}

fn mtime(p: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

impl Shared {
    /// The catalog from the records, re-reading the files that `moved`
    /// (all of them when the networks did: which are DNS-enabled decides
    /// what is kept); `recheck`: ask every container whether it is alive.
    fn load(&self, recheck: bool, networks_moved: bool, moved: Moved) -> Catalog {
        let (networks, _) = self.config.list();
        let dns: std::collections::HashSet<&str> = networks
            .iter()
            .filter(|n| n.dns)
            .map(|n| n.name.as_str())
            .collect();
        let keep = |e: &ocinet_common::model::Endpoint| Named::of(e, &dns);
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        if networks_moved {
            records.clear();
        }
        match moved {
            Moved::Names(names) if !recheck && !networks_moved => {
                records.refresh_names(&self.state, names.iter().map(|n| n.as_os_str()), keep);
            }
            Moved::Nothing if !recheck && !networks_moved => {}
            _ => {
                records.refresh(&self.state, recheck, keep);
            }
        }
        // Containers of other hosts on overlay networks, as this host's
        // agent last read them from the cluster store.
        let remote: Vec<Named> = self
            .state
            .remote_names()
            .into_iter()
            .filter(|r| dns.contains(r.network.as_str()))
            .filter_map(|r| {
                let ip = r.addresses.iter().find_map(|a| match a {
                    IpAddr::V4(v4) => Some(*v4),
                    IpAddr::V6(_) => None,
                });
                let ip6 = r.addresses.iter().find_map(|a| match a {
                    IpAddr::V6(v6) => Some(*v6),
                    IpAddr::V4(_) => None,
                });
                if ip.is_none() && ip6.is_none() {
                    return None;
                }
                Some(Named {
                    id: r.id,
                    name: r.name.unwrap_or_default(),
                    dns_servers: Vec::new(),
                    attachments: vec![crate::catalog::Named1 {
                        network: r.network,
                        ip,
                        ip6,
                        aliases: r.aliases,
                    }],
                })
            })
            .collect();
        Catalog::build(&networks, records.live().chain(remote.iter()))
    }

    /// The catalog, brought up to date first if the state moved since.
    fn fresh(&self) -> Arc<Catalog> {
        let now = SystemTime::now();
        // The other hosts' names (overlay networks) count as the
        // networks do: a change rebuilds the catalog.
        let n = mtime(&self.config.networks_dir()).max(mtime(&self.state.remote_names_file()));
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let racy = |m: Option<SystemTime>| {
            m.is_some_and(|m| seen.loaded.duration_since(m).map_or(true, |d| d < RACY))
        };
        let old = now
            .duration_since(seen.rebuilt)
            .map_or(true, |d| d >= REBUILD);
        let networks_moved = seen.networks != n || racy(n);
        let (moved, e) = match self.watch.drain() {
            Some(m) => (m, seen.endpoints),
            None => {
                let e = mtime(&self.state.endpoints_dir());
                let m = if seen.endpoints != e || racy(e) {
                    Moved::All
                } else {
                    Moved::Nothing
                };
                (m, e)
            }
        };
        if matches!(moved, Moved::Nothing) && !networks_moved && !old {
            return self
                .catalog
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
        }
        let cat = Arc::new(self.load(old, networks_moved, moved));
        *self.catalog.write().unwrap_or_else(|p| p.into_inner()) = cat.clone();
        *seen = Seen {
            endpoints: e,
            networks: n,
            loaded: now,
            rebuilt: if old { now } else { seen.rebuilt },
        };
        cat
    }

    /// Where a query of `client` on network `net` is forwarded: the
    /// container's own servers, then the network's, else the host's.
    fn upstreams(&self, cat: &Catalog, client: IpAddr, net: usize) -> Vec<IpAddr> {
        let mut out: Vec<IpAddr> = cat.client_servers.get(&client).cloned().unwrap_or_default();
        let n = &cat.networks[net];
        if n.upstreams.is_empty() {
            out.extend(self.host_upstreams());
        } else {
            out.extend(n.upstreams.iter().copied());
        }
        let ours = cat.listen_addresses();
        let mut seen = Vec::new();
        out.retain(|u| {
            !ours.contains(u) && !seen.contains(u) && {
                seen.push(*u);
                true
            }
        });
        out
    }

    /// The host's nameservers, read again when /etc/resolv.conf changed.
    fn host_upstreams(&self) -> Vec<IpAddr> {
        let m = mtime(std::path::Path::new(HOST_RESOLV_CONF));
        let mut h = self
            .host_upstreams
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // Changed within the mtime tick it was read in: read again.
        let racy = m.is_some_and(|m| {
            SystemTime::now()
                .duration_since(m)
                .map_or(true, |d| d < RACY)
        });
        if h.0 != m || m.is_none() || racy {
            let text = std::fs::read_to_string(HOST_RESOLV_CONF).unwrap_or_default();
            *h = (m, forward::nameservers(&text));
        }
        h.1.clone()
    }

    /// One query from `client` to the resolver address `at` (over UDP:
    /// `udp`), as far as it can go without waiting: the reply (or nothing
    /// to send), or the upstreams to forward it to.
    fn local(&self, query: &[u8], client: IpAddr, at: IpAddr, udp: bool) -> Local {
        self.local_in(&self.fresh(), query, client, at, udp)
    }

    /// `local`, with the catalog as brought up to date after the query was
    /// read (a batch of datagrams shares one look at the state).
    fn local_in(
        &self,
        cat: &Catalog,
        query: &[u8],
        client: IpAddr,
        at: IpAddr,
        udp: bool,
    ) -> Local {
        // Anyone but the containers of a DNS-enabled network (the host, a
        // neighbour on the segment) is refused before the limiter, which
        // keeps a bucket per client it sees; so is a container asking at
        // another network's address (the host routes it there: isolation
        // holds for the resolver too, and a source forged on a macvlan
        // segment reaches only that network's address).
        let Some(i) = cat.serving(client, at) else {
            self.stats.count(Outcome::Refused);
            return match answer::decide(query, None, udp) {
                Decision::Reply(b, _) => Local::Reply(Some(b)),
                _ => Local::Reply(None),
            };
        };
        let rate = cat.networks[i].rate;
        // No limit (0): no bucket, and no lock taken.
        let allowed = rate == 0
            || self
                .limiter
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .allow(client, rate, Instant::now());
        if !allowed {
            self.stats.count(Outcome::Refused);
            return Local::Reply(None);
        }
        if let Some(reply) = answer::quick(query, &cat.networks[i]) {
            self.stats.count(Outcome::Answered);
            return Local::Reply(Some(reply));
        }
        match answer::decide(query, Some(&cat.networks[i]), udp) {
            Decision::Reply(bytes, outcome) => {
                self.stats.count(outcome);
                Local::Reply(Some(bytes))
            }
            Decision::Drop => {
                self.stats.count(Outcome::Refused);
                Local::Reply(None)
            }
            Decision::Forward => Local::Forward(self.upstreams(cat, client, i)),
        }
    }

    /// Forward `client`'s `query`; the upstream's answer, or SERVFAIL.
    /// `limit`: the largest answer the client takes.
    async fn forwarded(
        &self,
        query: &[u8],
        client: IpAddr,
        upstreams: &[IpAddr],
        limit: usize,
    ) -> Option<Vec<u8>> {
        let (Some(_mine), Ok(_slot)) = (
            self.client_forwards.take(client),
            self.forwards.try_acquire(),
        ) else {
            self.stats.count(Outcome::ServFail);
            return answer::servfail(query);
        };
        let start = Instant::now();
        match forward::forward(query, upstreams, limit, &self.health, client).await {
            Some(reply) => {
                self.stats.count(Outcome::Forwarded);
                self.stats.forward_took(start.elapsed());
                Some(reply)
            }
            None => {
                self.stats.count(Outcome::ServFail);
                answer::servfail(query)
            }
        }
    }

    /// One query from `client` over TCP: the reply to send, if any.
    async fn handle_tcp(&self, query: &[u8], client: IpAddr, at: IpAddr) -> Option<Vec<u8>> {
        match self.local(query, client, at, false) {
            Local::Reply(r) => r,
            Local::Forward(ups) => {
                self.forwarded(query, client, &ups, usize::from(u16::MAX))
                    .await
            }
        }
    }
}

enum Local {
    Reply(Option<Vec<u8>>),
    Forward(Vec<IpAddr>),
}

/// A socket bound to `ip:53` before the address exists on the host
/// (IP_FREEBIND, IPV6_FREEBIND): the bridge gets its addresses at the
/// first setup. An IPv6 socket takes IPv6 alone (its IPv4 twin is bound
/// on the IPv4 gateway).
fn bind(ip: IpAddr, kind: socket2::Type) -> std::io::Result<socket2::Socket> {
    let proto = if kind == socket2::Type::DGRAM {
        socket2::Protocol::UDP
    } else {
        socket2::Protocol::TCP
    };
    let s = socket2::Socket::new(
        socket2::Domain::for_address((ip, 53).into()),
        kind,
        Some(proto),
    )?;
    match ip {
        IpAddr::V4(_) => s.set_freebind_v4(true)?,
        IpAddr::V6(_) => {
            s.set_only_v6(true)?;
            s.set_freebind_v6(true)?;
        }
    }
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::from((ip, 53)).into())?;
    if kind == socket2::Type::STREAM {
        s.listen(128)?;
    }
    Ok(s)
}

fn listen(shared: &Arc<Shared>, ip: IpAddr) -> std::io::Result<[JoinHandle<()>; 2]> {
    let udp = UdpSocket::from_std(bind(ip, socket2::Type::DGRAM)?.into())?;
    let tcp = TcpListener::from_std(bind(ip, socket2::Type::STREAM)?.into())?;
    let u = tokio::spawn(serve_udp(shared.clone(), Arc::new(udp), ip));
    let s = shared.clone();
    let t = tokio::spawn(async move {
        loop {
            let (conn, peer) = match tcp.accept().await {
                Ok(c) => c,
                Err(_) => {
                    // Out of descriptors, say: not a busy loop.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if s.fresh().serving(peer.ip(), ip).is_none() {
                s.stats.count(Outcome::Refused);
                continue;
            }
            // Over a limit, a connection is closed at once.
            let Some(mine) = s.tcp_clients.take(peer.ip()) else {
                s.stats.count(Outcome::Refused);
                continue;
            };
            let Ok(permit) = s.tcp_slots.clone().try_acquire_owned() else {
                continue;
            };
            let s = s.clone();
            tokio::spawn(async move {
                let _permit = (permit, mine);
                let mut conn = conn;
                loop {
                    let mut lb = [0u8; 2];
                    match tokio::time::timeout(TCP_IDLE, conn.read_exact(&mut lb)).await {
                        Ok(Ok(_)) => {}
                        _ => return,
                    }
                    let mut q = vec![0u8; usize::from(u16::from_be_bytes(lb))];
                    if tokio::time::timeout(TCP_IDLE, conn.read_exact(&mut q))
                        .await
                        .map_or(true, |r| r.is_err())
                    {
                        return;
                    }
                    let Some(reply) = s.handle_tcp(&q, peer.ip(), ip).await else {
                        return;
                    };
                    let Ok(len) = u16::try_from(reply.len()) else {
                        return;
                    };
                    let mut out = len.to_be_bytes().to_vec();
                    out.extend(reply);
                    if conn.write_all(&out).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok([u, t])
}

/// Datagrams read in one system call (recvmmsg) and answered in one
/// (sendmmsg): under load, one wakeup, one look at the state and two calls
/// serve a batch, where each query took a wakeup, a look and two calls.
const BATCH: usize = 16;
/// The longest query read over UDP (a longer one is cut, as before).
const UDP_QUERY: usize = 4096;

/// UDP on `ip:53`: a batch of queries at a time, each answered at once
/// from the catalog, or forwarded on a task of its own so that a slow
/// upstream holds up no one.
async fn serve_udp(s: Arc<Shared>, udp: Arc<UdpSocket>, ip: IpAddr) {
    use tokio::io::Interest;
    // Pages are touched only as far as queries fill them.
    let mut bufs = vec![0u8; BATCH * UDP_QUERY];
    let mut got: Vec<(usize, SocketAddr)> = Vec::with_capacity(BATCH);
    let mut replies: Vec<(Vec<u8>, SocketAddr)> = Vec::with_capacity(BATCH);
    loop {
        if udp.readable().await.is_err() {
            continue;
        }
        got.clear();
        match udp.try_io(Interest::READABLE, || {
            recv_batch(udp.as_raw_fd(), &mut bufs, &mut got)
        }) {
            Ok(()) => {}
            // Nothing after all, or an error a datagram left (ICMP): as
            // before, the next one is waited for.
            Err(_) => continue,
        }
        // One look at the state for the batch, taken after it was read:
        // whatever a hook changed before a query was sent is seen.
        let cat = s.fresh();
        for (k, (n, peer)) in got.iter().enumerate() {
            let query = &bufs[k * UDP_QUERY..k * UDP_QUERY + n];
            match s.local_in(&cat, query, peer.ip(), ip, true) {
                Local::Reply(Some(reply)) => replies.push((reply, *peer)),
                Local::Reply(None) => {}
                Local::Forward(ups) => {
                    let (s, udp, q, peer) = (s.clone(), udp.clone(), query.to_vec(), *peer);
                    // What the client takes over UDP: 512 bytes, or its
                    // EDNS payload size.
                    let limit = hickory_proto::op::Message::from_vec(&q)
                        .map_or(512, |m| answer::udp_limit(&m));
                    tokio::spawn(async move {
                        if let Some(reply) = s.forwarded(&q, peer.ip(), &ups, limit).await {
                            let _ = udp.send_to(&reply, peer).await;
                        }
                    });
                }
            }
        }
        send_batch(&udp, &replies).await;
        replies.clear();
    }
}

/// Read the datagrams waiting on `fd` (as many as `bufs` has room for,
/// `UDP_QUERY` bytes each) into `got`: each one's length and sender.
fn recv_batch(
    fd: std::os::fd::RawFd,
    bufs: &mut [u8],
    got: &mut Vec<(usize, SocketAddr)>,
) -> std::io::Result<()> {
    use nix::sys::socket::{recvmmsg, MsgFlags, MultiHeaders, SockaddrStorage};
    let mut slices: Vec<[std::io::IoSliceMut; 1]> = bufs
        .chunks_mut(UDP_QUERY)
        .map(|c| [std::io::IoSliceMut::new(c)])
        .collect();
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(slices.len(), None);
    let read = recvmmsg(fd, &mut headers, slices.iter_mut(), MsgFlags::empty(), None)
        .map_err(std::io::Error::from)?;
    for m in read {
        let from = m.address.and_then(|a| {
            a.as_sockaddr_in()
                .map(|v4| SocketAddr::V4((*v4).into()))
                .or_else(|| a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into())))
        });
        if let Some(from) = from {
            got.push((m.bytes, from));
        }
    }
    Ok(())
}

/// Send each reply to its client, as many per system call as the kernel
/// takes; one that cannot be sent is dropped, as a lost datagram is.
async fn send_batch(udp: &UdpSocket, replies: &[(Vec<u8>, SocketAddr)]) {
    use nix::sys::socket::{sendmmsg, ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage};
    use tokio::io::Interest;
    let mut done = 0;
    while done < replies.len() {
        let left = &replies[done..];
        let sent = udp.try_io(Interest::WRITABLE, || {
            let slices: Vec<[std::io::IoSlice; 1]> = left
                .iter()
                .map(|(r, _)| [std::io::IoSlice::new(r)])
                .collect();
            let to: Vec<Option<SockaddrStorage>> = left
                .iter()
                .map(|(_, peer)| Some(SockaddrStorage::from(*peer)))
                .collect();
            let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(left.len(), None);
            let no_cmsgs: [ControlMessage; 0] = [];
            sendmmsg(
                udp.as_raw_fd(),
                &mut headers,
                slices.iter(),
                &to,
                no_cmsgs,
                MsgFlags::empty(),
            )
            .map(|r| r.count())
            .map_err(std::io::Error::from)
        });
        match sent {
            Ok(n) if n > 0 => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if udp.writable().await.is_err() {
                    return;
                }
            }
            // The first one failed (its client unreachable, say): it is
            // dropped, the others go on.
            _ => done += 1,
        }
    }
}

/// The resolver lives as long as DNS containers do, and its catalog is
/// rebuilt whole at each change: with glibc's defaults the tables of the
/// catalogs it has dropped stay in its resident set (its mmap threshold
/// rises to the largest block freed, and a heap top held by a small block
/// is never given back).
mod heap {
    /// Blocks of 64 KiB and more (the catalog's and the records' tables)
    /// get pages of their own, given back when freed.
    pub fn settle() {
        #[cfg(target_env = "gnu")]
        // SAFETY: mallopt only sets the allocator's tuning; called before
        // any other thread exists.
        unsafe {
            nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, 64 * 1024);
        }
    }

    /// Give back to the kernel the free pages a rebuild left in the heap.
    pub fn trim() {
        #[cfg(target_env = "gnu")]
        // SAFETY: malloc_trim only walks the allocator's free lists.
        unsafe {
            nix::libc::malloc_trim(0);
        }
    }
}

/// How long the resolver runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// Started by a hook: until no DNS-enabled network has a container.
    OnDemand,
    /// Run by a service manager (`--persistent`): until SIGTERM or SIGINT.
    /// Hooks find it and start none, so it is in no runtime's process
    /// tree: a foreground `crun run` (a child subreaper that waits for
    /// every descendant) does not wait on it.
    Persistent,
}

/// Run until `lifetime` ends (SIGTERM and SIGINT end either). The pid file
/// is written once the listeners are bound (a hook waits for it), at once
/// when persistent.
pub fn run(state: StateDir, config: ConfigDir, lifetime: Lifetime) -> Result<(), String> {
    heap::settle();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    rt.block_on(serve(state, config, lifetime))
}

async fn serve(state: StateDir, config: ConfigDir, lifetime: Lifetime) -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM: {e}"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT: {e}"))?;
    let me = ProcessId::of(std::process::id() as i32).ok_or("cannot read own process")?;
    // One resolver per state directory: a second one started meanwhile
    // (two hooks racing, a port taken) ends at once.
    state
        .ensure_dns_dir()
        .map_err(|e| format!("the dns directory: {e}"))?;
    let _one = loop {
        match StateLock::try_acquire(&state.resolver_lock_file())
            .map_err(|e| format!("the resolver lock: {e}"))?
        {
            Some(lock) => break lock,
            None if lifetime == Lifetime::OnDemand => {
                tracing::info!("another resolver runs for this state directory");
                return Ok(());
            }
            // A service started while one a hook started still runs (it
            // was restarted, and a hook came in between): it takes over
            // when that one ends, rather than leave the host to it.
            None => {
                tracing::info!("another resolver runs: waiting for it to end");
                tokio::select! {
                    _ = tokio::time::sleep(TICK) => {}
                    _ = term.recv() => return Ok(()),
                    _ = int.recv() => return Ok(()),
                }
            }
        }
    };
    let served = crate::gone::Served::now(state.root());
    let mut looked_gone = Instant::now();
    // Before the first read, so that no change falls between the two.
    let watch = Watch::on(&state.endpoints_dir());
    let shared = Arc::new(Shared {
        state,
        config,
        catalog: RwLock::new(Arc::new(Catalog::default())),
        seen: Mutex::new(Seen {
            endpoints: None,
            networks: None,
            loaded: SystemTime::UNIX_EPOCH,
            rebuilt: SystemTime::UNIX_EPOCH,
        }),
        records: Mutex::new(FinishedRecords::default()),
        watch,
        host_upstreams: Mutex::new((None, Vec::new())),
        limiter: Mutex::new(Limiter::default()),
        stats: Stats::default(),
        tcp_slots: Arc::new(tokio::sync::Semaphore::new(TCP_CONNECTIONS)),
        tcp_clients: PerClient::new(TCP_PER_CLIENT),
        forwards: tokio::sync::Semaphore::new(FORWARDS),
        client_forwards: PerClient::new(FORWARDS_PER_CLIENT),
        health: forward::UpstreamHealth::default(),
    });
    let mut listeners: HashMap<IpAddr, [JoinHandle<()>; 2]> = HashMap::new();
    let persistent = lifetime == Lifetime::Persistent;
    if persistent {
        tracing::info!("persistent: runs until SIGTERM");
    }
    // What the pid file says it listens on, once written.
    let mut announced: Option<Vec<IpAddr>> = None;
    let mut last_stats = None;
    let mut stats_at = Instant::now();
    // The catalog last seen here: a new one means the old was dropped, and
    // what its rebuild freed is given back.
    let mut built: *const Catalog = std::ptr::null();
    loop {
        let cat = shared.fresh();
        if !std::ptr::eq(Arc::as_ptr(&cat), built) {
            built = Arc::as_ptr(&cat);
            heap::trim();
        }
        // Every DNS-enabled network's address, for as long as it runs,
        // serving anyone or not: the pid file says where it listens, and a
        // hook that reads it while this resolver is about to end (or cannot
        // end yet: the state lock is busy, with that very hook's setup)
        // trusts it, so its container's first query must find a socket.
        let want = cat.listen_addresses();
        listeners.retain(|ip, tasks| {
            let keep = want.contains(ip);
            if !keep {
                tasks.iter().for_each(JoinHandle::abort);
                tracing::info!(%ip, "stopped listening");
            }
            keep
        });
        for ip in &want {
            if listeners.contains_key(ip) {
                continue;
            }
            match listen(&shared, *ip) {
                Ok(tasks) => {
                    tracing::info!(%ip, "listening on port 53");
                    listeners.insert(*ip, tasks);
                }
                Err(e) => tracing::error!(%ip, "cannot listen on port 53: {e}"),
            }
        }
        if !cat.serves_anyone() && !persistent && done(&shared, &me) {
            let _ = shared.state.save_dns_stats(&shared.stats.snapshot());
            tracing::info!("no container on a DNS-enabled network: exiting");
            return Ok(());
        }
        // Written once listening (at once when persistent: hooks that come
        // before any network has containers find it), and again when the
        // addresses change: a hook waits for its network's.
        let mut bound: Vec<IpAddr> = listeners.keys().copied().collect();
        bound.sort();
        if (persistent || !bound.is_empty()) && announced.as_ref() != Some(&bound) {
            let s = ResolverState {
                process: me,
                listening: Some(bound.clone()),
                persistent: Some(persistent),
            };
            shared
                .state
                .save_resolver(&s)
                .map_err(|e| format!("writing the pid file: {e}"))?;
            if announced.is_none() {
                // Start-up is over: its code and read-only data (argument
                // parsing, configuration, logging set-up) need not stay
                // mapped for as long as containers run.
                ocinet_common::memory::release_unused_file_pages();
            }
            announced = Some(bound);
        }
        // Persistent or not: nobody reaches it again (and `done` cannot
        // take a lock in a state directory that is gone).
        if looked_gone.elapsed() >= Duration::from_secs(1) {
            if let Some(why) = served.gone() {
                let _ = shared.state.forget_resolver(&me);
                tracing::warn!("{why}: exiting");
                return Ok(());
            }
            looked_gone = Instant::now();
        }
        if stats_at.elapsed() >= Duration::from_secs(1) {
            let snap = shared.stats.snapshot();
            if last_stats.as_ref() != Some(&snap) {
                if let Err(e) = shared.state.save_dns_stats(&snap) {
                    tracing::warn!("stats: {e}");
                }
                last_stats = Some(snap);
            }
            stats_at = Instant::now();
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = term.recv() => {
                stop(&shared, &me, "SIGTERM");
                return Ok(());
            }
            _ = int.recv() => {
                stop(&shared, &me, "SIGINT");
                return Ok(());
            }
        }
    }
}

/// Ended by a signal: the figures kept and the pid file gone, so the next
/// hook starts a resolver at once.
fn stop(shared: &Shared, me: &ProcessId, why: &str) {
    let _ = shared.state.save_dns_stats(&shared.stats.snapshot());
    let _ = shared.state.forget_resolver(me);
    tracing::info!("{why}: exiting");
}

/// Whether to end: decided under the state lock, with the state read
/// again, so a hook that just set up a container is either seen, or finds
/// the pid file gone and starts a new resolver.
fn done(shared: &Shared, me: &ProcessId) -> bool {
    // Not waited for: whoever holds it may be `gc` ending this resolver,
    // and a signal is only handled back in the loop.
    let Ok(Some(_lock)) = StateLock::try_acquire(&shared.state.lock_file()) else {
        return false;
    };
    if shared.load(true, false, Moved::All).serves_anyone() {
        return false;
    }
    let _ = shared.state.forget_resolver(me);
    true
}
