//! The proxy process: one per host network namespace (per state
//! directory), a TCP and/or UDP socket on `[::1]:PORT` for each port the
//! records ask for (`desired`), each copying to its container. It reads
//! the records again when a hook asks it to (`sync` on the control
//! socket, under the state lock: the hook's answer says the port is
//! accepting, or why not), when the record directory's mtime moves, and
//! every few seconds (a container killed without its poststop is stale
//! and its port closed). It ends when no record has asked for a port for
//! `LINGER` (deciding
//! so under the state lock, so a hook either sees it gone and starts
//! another, or is seen), or when its state directory or namespace is gone.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ocinet_common::model::{ProcessId, Protocol};
use ocinet_common::store::lock::StateLock;
use ocinet_common::store::proxy::ProxyState;
use ocinet_common::store::StateDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};

use crate::desired::{self, Key, Listener};
use crate::wire::{Served, Status, MAX_REQUEST};

/// How often the loop looks at the records' directory, retries a port it
/// could not bind, and asks whether it should end.
const TICK: Duration = Duration::from_secs(1);
/// Every record read again this often even when the directory did not
/// move: a container that died without its poststop leaves its record.
const RELOAD: Duration = Duration::from_secs(5);
/// A UDP client's flow (its own socket to the container) ends after this
/// long without a datagram either way. docker-proxy keeps 90 s too.
pub const UDP_IDLE: Duration = Duration::from_secs(90);
/// UDP clients one port keeps flows for at once; datagrams of a client
/// beyond are dropped until one ends.
const UDP_FLOWS: usize = 1024;
/// TCP connections over every port at once (each holds two sockets and
/// two pipes); beyond, a new one is closed at once.
const TCP_CONNECTIONS: usize = 4096;
/// How long a connection to the container may take before the client's
/// is reset.
const CONNECT: Duration = Duration::from_secs(5);
/// Each direction's copy buffer, where no pipe can be had for splice(2).
const BUFFER: usize = 64 * 1024;
/// How long a control client has to send its request and take the answer.
const CONTROL_IO: Duration = Duration::from_secs(1);
/// How long an on-demand proxy stays once no record asks for a port: a
/// container set up again at once (a `run --rm` loop, a restart) finds it
/// running instead of waiting for a new one to start.
const LINGER: Duration = Duration::from_secs(2);

/// How long the proxy runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// Started by a hook: until no record asks for a port.
    OnDemand,
    /// Run by a service manager (`--persistent`): until SIGTERM or SIGINT.
    Persistent,
}

/// Run until `lifetime` ends (SIGTERM and SIGINT end either).
pub fn run(state: StateDir, lifetime: Lifetime) -> Result<(), String> {
    raise_nofile();
    // One thread: what a copy costs is the kernel's; the resident set
    // stays small.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    rt.block_on(serve(state, lifetime))
}

/// The soft descriptor limit up to the hard one (no privilege needed):
/// each proxied connection holds two.
fn raise_nofile() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut l = getrlimit(Resource::Nofile);
    if l.current < l.maximum {
        l.current = l.maximum;
        let _ = setrlimit(Resource::Nofile, l);
    }
}

/// One bound listener and the task serving it (its connections are the
/// task's: ending it closes them).
struct Active {
    listener: Listener,
    task: JoinHandle<()>,
    open: Arc<AtomicU64>,
}

struct Proxy {
    state: StateDir,
    me: ProcessId,
    persistent: bool,
    /// What the records asked for when last read.
    want: BTreeMap<Key, Listener>,
    active: BTreeMap<Key, Active>,
    /// Wanted, but the bind failed: why.
    failed: BTreeMap<Key, String>,
    /// The record directory's mtime at the last read, and when that was.
    seen: Option<SystemTime>,
    loaded: Instant,
    slots: Arc<Semaphore>,
    /// Since when no record has asked for a port.
    unwanted_since: Option<Instant>,
}

impl Proxy {
    /// Read the records again: the live ones' listeners.
    fn reload(&mut self) {
        let (eps, bad) = self.state.list_endpoints();
        for e in bad {
            tracing::debug!("a record the proxy cannot read: {e}");
        }
        self.seen = mtime(&self.state.endpoints_dir());
        self.loaded = Instant::now();
        self.want = desired::of_records(eps.iter().filter(|e| !e.is_stale()));
    }

    /// Close what is no longer wanted (before binding, so a port that
    /// passed from one container to another is free), then bind what is
    /// wanted and not bound.
    async fn reconcile(&mut self) {
        let gone: Vec<Key> = self
            .active
            .iter()
            .filter(|(k, a)| self.want.get(k) != Some(&a.listener))
            .map(|(k, _)| *k)
            .collect();
        for k in gone {
            if let Some(a) = self.active.remove(&k) {
                a.task.abort();
                // Done once the task is dropped: its socket and its
                // connections are closed when this returns.
                let _ = a.task.await;
                tracing::info!(key = %k, owner = %a.listener.owner, "closed");
            }
        }
        self.failed.retain(|k, _| self.want.contains_key(k));
        let todo: Vec<Listener> = self
            .want
            .values()
            .filter(|l| !self.active.contains_key(&l.key))
            .cloned()
            .collect();
        for l in todo {
            let open = Arc::new(AtomicU64::new(0));
            match start(&l, open.clone(), self.slots.clone()) {
                Ok(task) => {
                    tracing::info!(key = %l.key, upstream = %l.upstream, owner = %l.owner, "listening");
                    self.failed.remove(&l.key);
                    self.active.insert(
                        l.key,
                        Active {
                            listener: l,
                            task,
                            open,
                        },
                    );
                }
                Err(e) => {
                    let why = format!("cannot bind {}: {e}", l.key);
                    if self.failed.get(&l.key) != Some(&why) {
                        tracing::warn!(owner = %l.owner, "{why}");
                    }
                    self.failed.insert(l.key, why);
                }
            }
        }
    }

    fn status(&self) -> Status {
        Status {
            pid: self.me.pid,
            persistent: self.persistent,
            listeners: self
                .want
                .values()
                .map(|l| Served {
                    listener: l.clone(),
                    error: match self.active.get(&l.key) {
                        Some(_) => None,
                        None => Some(
                            self.failed
                                .get(&l.key)
                                .cloned()
                                .unwrap_or_else(|| "not bound yet".into()),
                        ),
                    },
                    open: self
                        .active
                        .get(&l.key)
                        .map_or(0, |a| a.open.load(Ordering::Relaxed)),
                })
                .collect(),
        }
    }

    /// One control client: its request, then the answer.
    async fn control(&mut self, mut conn: UnixStream) {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(CONTROL_IO, async {
            let mut b = [0u8; MAX_REQUEST];
            loop {
                let n = conn.read(&mut b).await?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&b[..n]);
                if buf.contains(&b'\n') || buf.len() > MAX_REQUEST {
                    break;
                }
            }
            Ok::<(), std::io::Error>(())
        })
        .await;
        if !matches!(read, Ok(Ok(()))) {
            return;
        }
        let reply = match std::str::from_utf8(&buf).map(str::trim) {
            Ok("sync") => {
                self.reload();
                self.reconcile().await;
                serde_json::to_string(&self.status())
            }
            Ok("status") => serde_json::to_string(&self.status()),
            _ => {
                tracing::warn!("a control request that is not sync or status: ignored");
                return;
            }
        };
        let Ok(mut reply) = reply else { return };
        reply.push('\n');
        let _ = tokio::time::timeout(CONTROL_IO, conn.write_all(reply.as_bytes())).await;
    }

    /// Whether to end (not persistent, nothing wanted): decided under the
    /// state lock with the records read again, so a hook setting up a
    /// container either is seen, or finds the pid file gone and starts
    /// another proxy.
    async fn done(&mut self) -> bool {
        if self.persistent || !self.want.is_empty() {
            self.unwanted_since = None;
            return false;
        }
        if self
            .unwanted_since
            .get_or_insert_with(Instant::now)
            .elapsed()
            < LINGER
        {
            return false;
        }
        // Not waited for: whoever holds it may be `gc` ending this proxy.
        let Ok(Some(_lock)) = StateLock::try_acquire(&self.state.lock_file()) else {
            return false;
        };
        self.reload();
        if !self.want.is_empty() {
            self.reconcile().await;
            return false;
        }
        self.forget();
        true
    }

    /// The pid file and the socket gone (this proxy is ending).
    fn forget(&self) {
        let _ = self.state.forget_proxy(&self.me);
        let _ = std::fs::remove_file(self.state.proxy_socket());
    }
}

fn mtime(p: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Bind `l`'s socket on `[::1]` and start serving it.
fn start(
    l: &Listener,
    open: Arc<AtomicU64>,
    slots: Arc<Semaphore>,
) -> std::io::Result<JoinHandle<()>> {
    let at = SocketAddr::from((Ipv6Addr::LOCALHOST, l.key.port));
    let upstream = l.upstream;
    match l.key.protocol {
        Protocol::Tcp => {
            let s = socket2::Socket::new(
                socket2::Domain::IPV6,
                socket2::Type::STREAM.cloexec(),
                Some(socket2::Protocol::TCP),
            )?;
            s.set_only_v6(true)?;
            // A port closed with connections in TIME_WAIT is taken again
            // at once (not while anyone listens on it: Linux refuses that).
            s.set_reuse_address(true)?;
            s.set_nonblocking(true)?;
            s.bind(&at.into())?;
            s.listen(1024)?;
            let listener = TcpListener::from_std(s.into())?;
            Ok(tokio::spawn(serve_tcp(listener, upstream, open, slots)))
        }
        Protocol::Udp => {
            let s = socket2::Socket::new(
                socket2::Domain::IPV6,
                socket2::Type::DGRAM.cloexec(),
                Some(socket2::Protocol::UDP),
            )?;
            s.set_only_v6(true)?;
            s.set_nonblocking(true)?;
            s.bind(&at.into())?;
            let sock = UdpSocket::from_std(s.into())?;
            Ok(tokio::spawn(serve_udp(Arc::new(sock), upstream, open)))
        }
        Protocol::Sctp => Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "sctp is not proxied",
        )),
    }
}

/// Accept and copy; the connections are this task's (dropped with it).
async fn serve_tcp(
    listener: TcpListener,
    upstream: SocketAddr,
    open: Arc<AtomicU64>,
    slots: Arc<Semaphore>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((client, _)) => {
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        tracing::warn!(%upstream, "{TCP_CONNECTIONS} connections open: one refused");
                        continue;
                    };
                    let open = open.clone();
                    open.fetch_add(1, Ordering::Relaxed);
                    conns.spawn(async move {
                        copy_tcp(client, upstream).await;
                        open.fetch_sub(1, Ordering::Relaxed);
                        drop(slot);
                    });
                }
                // Out of descriptors, say: not a busy loop.
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Both directions until both ends are done, each end's EOF passed on as
/// a half-close (shutdown of the other's write side). A container that
/// does not answer gets the client reset, as a refused port would.
async fn copy_tcp(mut client: TcpStream, upstream: SocketAddr) {
    let _ = client.set_nodelay(true);
    match tokio::time::timeout(CONNECT, TcpStream::connect(upstream)).await {
        Ok(Ok(mut up)) => {
            let _ = up.set_nodelay(true);
            match (crate::splice::pipe(), crate::splice::pipe()) {
                (Some(ab), Some(ba)) => {
                    let _ = crate::splice::both_ways(&client, &up, ab, ba).await;
                }
                // Out of descriptors for pipes: through buffers.
                _ => {
                    let _ = tokio::io::copy_bidirectional_with_sizes(
                        &mut client,
                        &mut up,
                        BUFFER,
                        BUFFER,
                    )
                    .await;
                }
            }
        }
        Ok(Err(e)) => {
            tracing::debug!(%upstream, "connecting to the container: {e}");
            let _ = socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO));
        }
        Err(_) => {
            tracing::debug!(%upstream, "connecting to the container timed out");
            let _ = socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO));
        }
    }
}

/// A UDP client's flow: its own socket connected to the container, whose
/// replies go back to the client from the listening socket.
struct Flow {
    up: Arc<UdpSocket>,
    /// Milliseconds since the listener started of the last datagram
    /// either way.
    last: Arc<AtomicU64>,
    task: tokio::task::AbortHandle,
}

thread_local! {
    /// The one receive buffer of every UDP socket: the runtime has one
    /// thread, and a datagram is sent on (`try_send`, no await) before the
    /// next is read, so no port or flow keeps 64 KiB of its own.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 65535]);
}

/// A socket of its own towards `upstream` for one client.
fn flow_socket(upstream: SocketAddr) -> std::io::Result<UdpSocket> {
    let bind: SocketAddr = match upstream {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let s = std::net::UdpSocket::bind(bind)?;
    s.connect(upstream)?;
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s)
}

async fn serve_udp(sock: Arc<UdpSocket>, upstream: SocketAddr, open: Arc<AtomicU64>) {
    let epoch = Instant::now();
    let now_ms = move || epoch.elapsed().as_millis() as u64;
    let mut flows: HashMap<SocketAddr, Flow> = HashMap::new();
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            r = sock.readable() => if r.is_err() { continue },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {
                flows.retain(|_, f| !f.task.is_finished());
                open.store(flows.len() as u64, Ordering::Relaxed);
                continue;
            }
        }
        // Every datagram queued, each sent on before the next is read.
        loop {
            let r = SCRATCH.with_borrow_mut(|buf| {
                let (n, client) = sock.try_recv_from(buf)?;
                if flows.get(&client).is_some_and(|f| f.task.is_finished()) {
                    flows.remove(&client);
                }
                if !flows.contains_key(&client) {
                    if flows.len() >= UDP_FLOWS {
                        return Ok(());
                    }
                    let Ok(up) = flow_socket(upstream) else {
                        return Ok(());
                    };
                    let up = Arc::new(up);
                    let last = Arc::new(AtomicU64::new(now_ms()));
                    let (u, l, s) = (up.clone(), last.clone(), sock.clone());
                    let task = tasks.spawn(replies(u, s, client, l, now_ms));
                    flows.insert(client, Flow { up, last, task });
                    open.store(flows.len() as u64, Ordering::Relaxed);
                }
                if let Some(f) = flows.get(&client) {
                    f.last.store(now_ms(), Ordering::Relaxed);
                    // A full socket buffer drops the datagram, as the
                    // network may.
                    let _ = f.up.try_send(&buf[..n]);
                }
                Ok::<(), std::io::Error>(())
            });
            match r {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {}
            }
        }
    }
}

/// A flow's replies, back to `client` from the listening socket, until
/// `UDP_IDLE` passed without a datagram either way.
async fn replies(
    up: Arc<UdpSocket>,
    listening: Arc<UdpSocket>,
    client: SocketAddr,
    last: Arc<AtomicU64>,
    now_ms: impl Fn() -> u64,
) {
    loop {
        match tokio::time::timeout(UDP_IDLE, up.readable()).await {
            Ok(Ok(())) => loop {
                let r = SCRATCH.with_borrow_mut(|buf| {
                    let n = up.try_recv(buf)?;
                    let _ = listening.try_send_to(&buf[..n], client);
                    Ok::<(), std::io::Error>(())
                });
                match r {
                    Ok(()) => last.store(now_ms(), Ordering::Relaxed),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    // An ICMP error from the container's side (port
                    // closed): the flow stays until idle.
                    Err(_) => {}
                }
            },
            Ok(Err(_)) => {}
            Err(_) => {
                let idle = now_ms().saturating_sub(last.load(Ordering::Relaxed));
                if idle >= UDP_IDLE.as_millis() as u64 {
                    return;
                }
            }
        }
    }
}

async fn serve(state: StateDir, lifetime: Lifetime) -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM: {e}"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT: {e}"))?;
    let me = ProcessId::of(std::process::id() as i32).ok_or("cannot read own process")?;
    state
        .ensure_proxy_dir()
        .map_err(|e| format!("the proxy directory: {e}"))?;
    // One proxy per state directory. One that is ending (it decided so
    // under the state lock a moment ago) is waited for a little; a second
    // started by a racing hook ends.
    let waited = Instant::now();
    let _one = loop {
        match StateLock::try_acquire(&state.proxy_lock_file())
            .map_err(|e| format!("the proxy lock: {e}"))?
        {
            Some(lock) => break lock,
            None if lifetime == Lifetime::OnDemand && waited.elapsed() > Duration::from_secs(2) => {
                tracing::info!("another proxy runs for this state directory");
                return Ok(());
            }
            None => {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                    _ = term.recv() => return Ok(()),
                    _ = int.recv() => return Ok(()),
                }
            }
        }
    };
    // Whatever is at the socket's path is a dead proxy's: this one holds
    // the lock.
    let path = state.proxy_socket();
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{}: {e}", path.display())),
    }
    let control =
        UnixListener::bind(&path).map_err(|e| format!("binding {}: {e}", path.display()))?;
    let served = ocinet_common::gone::Served::now(state.root());
    let persistent = lifetime == Lifetime::Persistent;
    let mut proxy = Proxy {
        state,
        me,
        persistent,
        want: BTreeMap::new(),
        active: BTreeMap::new(),
        failed: BTreeMap::new(),
        seen: None,
        loaded: Instant::now(),
        slots: Arc::new(Semaphore::new(TCP_CONNECTIONS)),
        unwanted_since: None,
    };
    // Every port the records ask for, before the pid file says this proxy
    // runs (a proxy started after a crash serves them all again).
    proxy.reload();
    proxy.reconcile().await;
    proxy
        .state
        .save_proxy(&ProxyState {
            process: me,
            persistent,
        })
        .map_err(|e| format!("writing the pid file: {e}"))?;
    tracing::info!(persistent, ports = proxy.active.len(), "port proxy running");
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            r = control.accept() => {
                if let Ok((conn, _)) = r {
                    proxy.control(conn).await;
                }
            }
            _ = tick.tick() => {
                if let Some(why) = served.gone() {
                    tracing::warn!("{why}: exiting");
                    proxy.forget();
                    return Ok(());
                }
                let moved = mtime(&proxy.state.endpoints_dir()) != proxy.seen;
                if moved || proxy.loaded.elapsed() >= RELOAD {
                    proxy.reload();
                }
                // Also retries what could not be bound.
                proxy.reconcile().await;
                if proxy.done().await {
                    tracing::info!("no published port on [::1]: exiting");
                    return Ok(());
                }
            }
            _ = term.recv() => {
                proxy.forget();
                tracing::info!("SIGTERM: exiting");
                return Ok(());
            }
            _ = int.recv() => {
                proxy.forget();
                tracing::info!("SIGINT: exiting");
                return Ok(());
            }
        }
    }
}
