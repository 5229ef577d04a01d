#!/usr/bin/env python3
"""Overlay networks across hosts (issue 23), side by side in one run.

Self-contained: this script makes an underlay namespace (bridge ulbr,
10.99.0.254/24), two host namespaces joined to it by veths (ul0,
10.99.0.1 and 10.99.0.2), a real etcd (Debian's etcd-server) that it runs
itself inside the underlay namespace with a data directory of its own,
and one namespace per container. Every packet stays inside these
namespaces (the 50 "simulated hosts" of part 3 are store keys: their
advertise addresses 10.99.1.x are routed to, never sent to). Everything
is removed at the end, also on failure or Ctrl-C: the agents and
resolvers the hooks started (found by this run's state directories), etcd
and iperf3 by pid, the namespaces, the files.

Run as root from the repository root after `scripts/build.sh`:

    python3 bench/overlay.py [--rounds 30] [--iperf-runs 5] [--only 1,2,...] [--out FILE]

OCINET_BIN=PATH measures another build of `ocinet` (hook, agent, CLI).

Parts:
 1. setup/teardown of an overlay container vs a bridge container on one
    host (medians, ratios), and etcd round trips per setup/teardown
    (etcd's grpc_server_handled_total by grpc_method, hosts' agents paused
    so that only the hook talks to etcd);
 2. convergence: hook start on host A until a container on host B gets
    an ICMP echo reply from the new container (1 ms ping loop); and for
    removal: A's poststop until B's resolver answers NXDOMAIN for the
    container's name (1 ms query loop), and A's last container's poststop
    until B's kernel drops the route to A's block;
 3. 50 simulated hosts: 50 node + 50 block keys in one etcd transaction
    until host A's kernel has 50 more routes on ocv<VNI>; and removal;
 4. iperf3 container-to-container over VXLAN vs host-to-host over the
    underlay; MTUs, and IP fragmentation counters before/after;
 5. per-container (Docker) vs per-host-block (ours) VXLAN entries: time
    to program them with ip/bridge -batch, and their count.
"""
import argparse, ctypes, datetime, fcntl, json, os, platform, select, shutil, signal, socket
import statistics, struct, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OCINET = os.environ.get("OCINET_BIN") or os.path.join(ROOT, "target/release/ocinet")
CLONE_NEWNET = 0x40000000
libc = ctypes.CDLL("libc.so.6", use_errno=True)
TAG = f"ov{os.getpid() % 100000}"
UL = f"{TAG}-ul"
UL_GW = "10.99.0.254"
ETCD_URL = f"http://{UL_GW}:2379"
OV_SUBNET = "10.77.0.0/16"
BR_SUBNET = "10.88.0.0/24"
TTL = "60"  # long enough that pausing the agents for part 1's count keeps the leases

created_ns = []
procs = []  # Popen objects this script started directly (etcd, iperf3 servers)
WORK = None
NS_SEQ = 0
SELF_NS = os.open("/proc/self/ns/net", os.O_RDONLY)


class Failed(Exception):
    pass


def run(*args, check=True, input=None, timeout=120, env=None):
    r = subprocess.run(list(args), input=input, capture_output=True, timeout=timeout, env=env)
    if check and r.returncode != 0:
        raise Failed(f"{' '.join(map(str, args))}: exit {r.returncode}: {r.stderr.decode()[-600:]}")
    return r.stdout.decode()


def ns_add(name):
    run("ip", "netns", "add", name)
    created_ns.append(name)
    run("ip", "-n", name, "link", "set", "lo", "up")
    return name


def ns_del(name):
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    if name in created_ns:
        created_ns.remove(name)


def in_ns(ns, *args, **kw):
    return run("nsenter", f"--net=/run/netns/{ns}", *args, **kw)


def setns(fd):
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")


def socket_in(ns, family, kind, proto=0):
    """A socket living in namespace NS (a socket keeps the namespace it was
    made in), made without leaving this process there."""
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        setns(fd)
        return socket.socket(family, kind, proto)
    finally:
        setns(SELF_NS)
        os.close(fd)


def ipv4_of(ns, ifname="eth0"):
    """The interface's IPv4 address (SIOCGIFADDR), read in microseconds."""
    s = socket_in(ns, socket.AF_INET, socket.SOCK_DGRAM)
    try:
        r = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", ifname.encode()))
        return socket.inet_ntoa(r[20:24])
    finally:
        s.close()


def med(xs):
    return statistics.median(xs) * 1000


# ---------------------------------------------------------------- etcd

def etcd_env():
    e = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
    e["ETCDCTL_API"] = "3"
    return e


def etcdctl(*args, input=None):
    return in_ns(UL, "etcdctl", f"--endpoints={ETCD_URL}", "--dial-timeout=2s",
                 "--command-timeout=10s", *args, input=input, env=etcd_env())


def start_etcd():
    d = os.path.join(WORK, "etcd")
    os.makedirs(d)
    log = open(os.path.join(d, "etcd.log"), "wb")
    peer = f"http://{UL_GW}:2380"
    p = subprocess.Popen(["nsenter", f"--net=/run/netns/{UL}", "etcd", "--name", "s1",
                          "--data-dir", os.path.join(d, "data"),
                          "--listen-client-urls", ETCD_URL, "--advertise-client-urls", ETCD_URL,
                          "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                          "--initial-cluster", f"s1={peer}", "--initial-cluster-state", "new",
                          "--initial-cluster-token", TAG],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=etcd_env())
    procs.append(p)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise Failed(f"etcd exited: see {d}/etcd.log")
        r = subprocess.run(["nsenter", f"--net=/run/netns/{UL}", "etcdctl", f"--endpoints={ETCD_URL}",
                            "endpoint", "health"], capture_output=True, env=etcd_env())
        if r.returncode == 0:
            return
        time.sleep(0.2)
    raise Failed("etcd not healthy within 30 s")


def grpc_calls():
    """etcd's finished gRPC calls by method (all codes), from /metrics on
    the client URL (an HTTP request: it counts in none of them)."""
    text = in_ns(UL, "curl", "-s", "--max-time", "5", f"{ETCD_URL}/metrics")
    out = {}
    for line in text.splitlines():
        if not line.startswith("grpc_server_handled_total{"):
            continue
        labels, value = line.rsplit(" ", 1)
        m = labels.split('grpc_method="', 1)[1].split('"', 1)[0]
        out[m] = out.get(m, 0) + int(float(value))
    return out


def diff(a, b):
    return {k: b.get(k, 0) - a.get(k, 0) for k in set(a) | set(b) if b.get(k, 0) != a.get(k, 0)}


# ---------------------------------------------------------------- hosts

class Host:
    def __init__(self, letter, index):
        self.letter = letter
        self.ns = ns_add(f"{TAG}-{letter}")
        self.dir = os.path.join(WORK, f"host-{letter}")
        self.state = os.path.join(self.dir, "state")
        self.config = os.path.join(self.dir, "config")
        self.bundles = os.path.join(self.dir, "bundles")
        os.makedirs(self.bundles)
        self.addr = f"10.99.0.{index}"
        self.node = f"h{letter}"
        end = f"{TAG}u{letter}"
        run("ip", "-n", UL, "link", "add", end, "type", "veth", "peer", "name", "ul0", "netns", self.ns)
        run("ip", "-n", UL, "link", "set", end, "master", "ulbr")
        run("ip", "-n", UL, "link", "set", end, "up")
        run("ip", "-n", self.ns, "addr", "add", f"{self.addr}/24", "dev", "ul0")
        run("ip", "-n", self.ns, "link", "set", "ul0", "up")
        self.containers = {}  # cid -> (netns, bundle)

    def oc(self, *args):
        return in_ns(self.ns, OCINET, *args, "--state-dir", self.state, "--config-dir", self.config)

    def hook(self, stage, cid):
        ns, bundle = self.containers[cid]
        st = json.dumps({"ociVersion": "1.0", "id": cid, "status": "creating", "bundle": bundle}).encode()
        t = time.perf_counter()
        r = subprocess.run(["nsenter", f"--net=/run/netns/{self.ns}", OCINET, "hook", stage,
                            "--state-dir", self.state, "--config-dir", self.config],
                           input=st, capture_output=True, timeout=30)
        dt = time.perf_counter() - t
        if r.returncode != 0:
            raise Failed(f"hook {stage} {cid} on {self.node}: {r.stderr.decode()[-600:]}")
        return dt

    def container(self, cid, network, name=None):
        global NS_SEQ
        NS_SEQ += 1
        ns = ns_add(f"{TAG}-{self.letter}{NS_SEQ}")
        b = os.path.join(self.bundles, cid)
        os.makedirs(os.path.join(b, "rootfs", "etc"), exist_ok=True)
        cfg = {"ociVersion": "1.0.2", "root": {"path": "rootfs"},
               "annotations": dict({"io.ocinet.network": network}, **({"io.ocinet.name": name} if name else {})),
               "linux": {"namespaces": [{"type": "network", "path": f"/run/netns/{ns}"}]}}
        with open(os.path.join(b, "config.json"), "w") as f:
            json.dump(cfg, f)
        self.containers[cid] = (ns, b)
        return ns

    def setup(self, cid, network, name=None):
        self.container(cid, network, name)
        return self.hook("createRuntime", cid)

    def teardown(self, cid):
        dt = self.hook("poststop", cid)
        ns, _ = self.containers.pop(cid)
        ns_del(ns)
        return dt

    def daemons(self):
        """Processes started for this host (agent, resolver): their command
        line names this host's state directory."""
        out = []
        for e in os.listdir("/proc"):
            if not e.isdigit() or int(e) == os.getpid():
                continue
            try:
                with open(f"/proc/{e}/cmdline", "rb") as f:
                    args = f.read().split(b"\0")
            except OSError:
                continue
            if self.state.encode() in args:
                out.append(int(e))
        return out

    def agent(self):
        for pid in self.daemons():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if b"agent" in f.read().split(b"\0"):
                        return pid
            except OSError:
                pass
        return None

    def routes(self, dev):
        r = subprocess.run(["ip", "-n", self.ns, "-4", "route", "show", "dev", dev], capture_output=True)
        return len([l for l in r.stdout.decode().splitlines() if l.strip()]) if r.returncode == 0 else -1

    def count(self, what, dev):
        cmd = {"neigh": ["ip", "-n", self.ns, "-4", "neigh", "show", "dev", dev],
               "fdb": ["bridge", "-n", self.ns, "fdb", "show", "dev", dev]}[what]
        r = subprocess.run(cmd, capture_output=True)
        return len([l for l in r.stdout.decode().splitlines() if l.strip()])

    def vxlan(self):
        r = run("ip", "-n", self.ns, "-j", "link", "show", "type", "vxlan")
        links = json.loads(r or "[]")
        return links[0]["ifname"] if links else None


def cpu_seconds(pid):
    """user + system CPU seconds of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for(f, limit=20.0, every=0.002):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if f():
            return time.monotonic()
        time.sleep(every)
    return None


# ---------------------------------------------------------------- ICMP

def icmp_echo(ident, seq):
    payload = b"ocinet-bench-ov!"
    data = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + payload
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return struct.pack("!BBHHH", 8, 0, ~s & 0xffff, ident, seq) + payload


def ping_loop(sock, ip, limit=10.0, every=0.001):
    """Echo requests every `every` s until one is answered: the monotonic
    time of the first reply, or None."""
    ident = os.getpid() & 0xffff
    seq = 0
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        seq = (seq + 1) & 0xffff
        try:
            sock.sendto(icmp_echo(ident, seq), (ip, 0))
        except OSError:
            pass
        end = time.monotonic() + every
        while True:
            r, _, _ = select.select([sock], [], [], max(0.0, end - time.monotonic()))
            if not r:
                break
            data, addr = sock.recvfrom(4096)
            ihl = (data[0] & 0x0f) * 4
            if addr[0] == ip and len(data) >= ihl + 8 and data[ihl] == 0 \
                    and struct.unpack("!H", data[ihl + 4:ihl + 6])[0] == ident:
                return time.monotonic()
    return None


# ---------------------------------------------------------------- DNS

def dns_query(ident, name):
    """An A query for `name` (one label or more), recursion desired."""
    h = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0)
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return h + q + struct.pack("!HH", 1, 1)


def dns_rcode(sock, server, name, ident, wait=0.05):
    """Ask `server` (UDP 53) for `name`'s A record over `sock`: the rcode,
    or None if no answer came within `wait` s."""
    sock.sendto(dns_query(ident, name), (server, 53))
    end = time.monotonic() + wait
    while True:
        r, _, _ = select.select([sock], [], [], max(0.0, end - time.monotonic()))
        if not r:
            return None
        data, _ = sock.recvfrom(4096)
        if len(data) >= 4 and struct.unpack("!H", data[:2])[0] == ident:
            return data[3] & 0x0f


def rcode_loop(sock, server, name, want, limit=10.0, every=0.001):
    """Ask every `every` s until the answer's rcode is `want`: the monotonic
    time that answer came, or None."""
    deadline = time.monotonic() + limit
    i = 0
    while time.monotonic() < deadline:
        i = (i + 1) & 0xffff
        if dns_rcode(sock, server, name, i) == want:
            return time.monotonic()
        time.sleep(every)
    return None


# ---------------------------------------------------------------- parts

def part1(A, rounds, md):
    """Setup/teardown overlay vs bridge on host A, two conditions:
    'steady' (A already has a container on each network: the overlay
    setup takes an address from A's block, no block claim, no device) and
    'first' (A has none: the overlay setup claims a block and makes the
    VXLAN device; the teardown gives the block back and deletes it)."""
    t = {(c, n, s): [] for c in ("first", "steady") for n in ("ov", "br") for s in ("setup", "teardown")}
    k = 0

    def cycle(cond, net):
        nonlocal k
        k += 1
        cid = f"p1{cond[0]}{net}{k:06d}".ljust(16, "0")
        t[cond, net, "setup"].append(A.setup(cid, net))
        t[cond, net, "teardown"].append(A.teardown(cid))

    # warm-up: page cache, the agent's and resolver's first start
    A.setup("warm00000000ov01", "ov")
    A.setup("warm00000000br01", "br")
    A.teardown("warm00000000ov01")
    A.teardown("warm00000000br01")
    for i in range(rounds):
        for net in (("ov", "br") if i % 2 == 0 else ("br", "ov")):
            cycle("first", net)
    A.setup("resident0000ov01", "ov")
    A.setup("resident0000br01", "br")
    for i in range(rounds):
        for net in (("ov", "br") if i % 2 == 0 else ("br", "ov")):
            cycle("steady", net)
    rows = []
    md += [f"Host A, {rounds} rounds per condition, overlay and bridge alternating (order swapped every round); each hook call timed as a whole process (`nsenter` into the host namespace + `ocinet hook`), medians:", "",
           "| | overlay | bridge | overlay / bridge |", "|---|---|---|---|"]
    for cond, label in (("steady", "A already has a container on the network"),
                        ("first", "first container on A (block claim + VXLAN device; last one gives them back)")):
        for step in ("setup", "teardown"):
            o, b = med(t[cond, "ov", step]), med(t[cond, "br", step])
            md.append(f"| {step}, {label} | {o:.1f} ms | {b:.1f} ms | {o / b:.2f}x |")
            rows.append((cond, step, o, b))
        co = med([x + y for x, y in zip(t[cond, "ov", "setup"], t[cond, "ov", "teardown"])])
        cb = med([x + y for x, y in zip(t[cond, "br", "setup"], t[cond, "br", "teardown"])])
        md.append(f"| setup + teardown, {label} | {co:.1f} ms | {cb:.1f} ms | {co / cb:.2f}x |")
    md.append("")
    return rows


def part1_rtt(A, B, n, md):
    """etcd calls per setup/teardown, with both agents SIGSTOPped so that
    the hook is etcd's only client while counting (their leases have a
    60 s TTL; they are continued right after)."""
    agents = [h.agent() for h in (A, B)]
    if None in agents:
        raise Failed(f"agents not running: {agents}")
    per = {("steady", "setup"): [], ("steady", "teardown"): [], ("first", "setup"): [], ("first", "teardown"): []}
    for pid in agents:
        os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(0.3)
        # steady: A keeps resident0000ov01 (from part 1)
        for i in range(n):
            cid = f"rt{i:04d}steadyov00"
            m0 = grpc_calls()
            A.setup(cid, "ov")
            m1 = grpc_calls()
            A.teardown(cid)
            m2 = grpc_calls()
            per["steady", "setup"].append(diff(m0, m1))
            per["steady", "teardown"].append(diff(m1, m2))
        A.teardown("resident0000ov01")
        for i in range(n):
            cid = f"rt{i:04d}firstovx00"
            m0 = grpc_calls()
            A.setup(cid, "ov")
            m1 = grpc_calls()
            A.teardown(cid)
            m2 = grpc_calls()
            per["first", "setup"].append(diff(m0, m1))
            per["first", "teardown"].append(diff(m1, m2))
    finally:
        for pid in agents:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
    A.setup("resident0000ov01", "ov")
    # The same with the agents running: what one steady setup + teardown
    # costs the cluster (the hook's calls, and the passes each host's agent
    # makes on the changes it watches), less the agents' idle rate.
    time.sleep(2.5)
    watched = [A.agent(), B.agent(), procs[0].pid]  # nsenter execs etcd: its pid is etcd's
    u0 = [cpu_seconds(p) for p in watched]
    i0, ti = grpc_calls(), time.monotonic()
    time.sleep(10)
    i1, ti = grpc_calls(), time.monotonic() - ti
    u1 = [cpu_seconds(p) for p in watched]
    idle_cpu = [(b - a) / ti * 100 for a, b in zip(u0, u1)]
    idle_by = diff(i0, i1)
    idle = sum(idle_by.values()) / ti
    c0, tc = grpc_calls(), time.monotonic()
    for i in range(n):
        cid = f"ra{i:04d}steadyov00"
        A.setup(cid, "ov")
        time.sleep(0.25)
        A.teardown(cid)
        time.sleep(0.25)
    c1, tc = grpc_calls(), time.monotonic() - tc
    busy = diff(c0, c1)
    cluster = (sum(busy.values()) - idle * tc) / n
    methods = sorted({m for v in per.values() for d in v for m in d})
    md += [f"etcd calls per hook call, {n} of each, counted on etcd's side (`grpc_server_handled_total` from `/metrics` on the client URL, read before and after every call; both hosts' agents SIGSTOPped meanwhile, so the hook was etcd's only client). Mean per call:", "",
           "| | " + " | ".join(methods) + " | total |", "|---|" + "---|" * (len(methods) + 1)]
    out = {}
    for key, label in ((("steady", "setup"), "setup, A already holds a block"),
                       (("steady", "teardown"), "teardown, not the last container"),
                       (("first", "setup"), "setup, first container (claims a block)"),
                       (("first", "teardown"), "teardown, last container (gives the block back)")):
        v = per[key]
        means = [sum(d.get(m, 0) for d in v) / len(v) for m in methods]
        tot = sum(means)
        out[key] = tot
        md.append(f"| {label} | " + " | ".join(f"{x:.1f}" for x in means) + f" | {tot:.1f} |")
    md += ["", f"Idle cluster (2 hosts, 1 container each, nothing changing, 10 s): etcd finished {idle:.1f} calls/s ({', '.join(f'{k} {v / ti:.0f}/s' for k, v in sorted(idle_by.items()))}); CPU used: agent A {idle_cpu[0]:.0f}%, agent B {idle_cpu[1]:.0f}%, etcd {idle_cpu[2]:.0f}% of one core.", "",
           f"With both agents running: {n} steady setup + teardown cycles, 0.25 s apart, made {sum(busy.values())} calls in {tc:.1f} s ({', '.join(f'{k} {v}' for k, v in sorted(busy.items()))}): {cluster:.1f} calls per cycle above the idle rate, hook and agents together.", ""]
    out["cluster_cycle"] = cluster
    out["idle_rate"] = idle
    out["idle_cpu"] = idle_cpu
    return out


def proxy_delay(h, value=None):
    """Read (or set, on every interface there is: a network namespace other
    than the first has no default for new ones) the
    host's proxy-ARP reply delay, in USER_HZ (1/100 s)."""
    if value is not None:
        in_ns(h.ns, "sh", "-c", f"for f in /proc/sys/net/ipv4/neigh/*/proxy_delay; do echo {value} > $f; done")
    return int(in_ns(h.ns, "cat", "/proc/sys/net/ipv4/neigh/lo/proxy_delay").strip())


def part2(A, B, rounds, md, first_rounds=None, first_only=False, agent_lag=0):
    """Convergence: from the start of the hook on A until B's container
    gets a reply from the new container; with the kernel's default
    proxy-ARP delay and with it set to 0. `first_rounds` (default
    `rounds`) rounds of A's first container, the case whose ARP can come
    before B routes A's new block; `first_only`: those rounds alone, with
    their distribution. `agent_lag` (ms, first-only): B's agent is
    stopped (SIGSTOP) over A's setup and continued that long after A's
    hook returned, so B routes A's new block late every round: what a
    busy host B does by chance."""
    first_rounds = first_rounds or rounds
    cb_ns = B.containers["resident0000ovB1"][0]
    sock = socket_in(cb_ns, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    res, hook, ips = {}, {}, {}
    dev_b = B.vxlan()
    default_delay = proxy_delay(A)
    k = 0
    try:
        # (resident on A?, proxy_delay): A's resident container exists at the start
        conds = (("first", None),) if first_only else \
            (("steady", None), ("first", None), ("first", 0), ("steady", 0))
        for cond, delay in conds:
            if delay is not None:
                for h in (A, B):
                    proxy_delay(h, delay)
            if cond == "first" and "resident0000ov01" in A.containers:
                A.teardown("resident0000ov01")
            if cond == "steady" and "resident0000ov01" not in A.containers:
                A.setup("resident0000ov01", "ov")
            key = (cond, default_delay if delay is None else delay)
            res[key], hook[key] = [], []
            for i in range(first_rounds if cond == "first" else rounds):
                if cond == "first":
                    # B must have forgotten A's block before A claims one again
                    if wait_for(lambda: A.vxlan() is None and B.routes(dev_b) == 0, 20) is None:
                        raise Failed(f"B kept {B.routes(dev_b)} routes to A's block")
                if delay is not None:
                    for h in (A, B):
                        proxy_delay(h, delay)
                k += 1
                cid = f"cv{k:05d}ov000000"
                lagged = B.agent() if first_only and agent_lag else None
                if lagged:
                    os.kill(lagged, signal.SIGSTOP)
                t0 = time.monotonic()
                try:
                    A.setup(cid, "ov")
                finally:
                    if lagged:
                        threading.Timer(agent_lag / 1000, os.kill, (lagged, signal.SIGCONT)).start()
                t1 = time.monotonic()
                ip = ipv4_of(A.containers[cid][0])
                t2 = ping_loop(sock, ip)
                if t2 is None:
                    raise Failed(f"B's container never reached {ip}")
                res[key].append(t2 - t0)
                hook[key].append(t1 - t0)
                ips.setdefault(key, []).append(ip)
                A.teardown(cid)
        if first_only:
            return part2_first(res, hook, ips, first_rounds, md, absent_times(cb_ns), agent_lag)
        # Programming alone: A's first container until B's kernel routes
        # A's new block (no ping, so no neighbour resolution in the way).
        A.teardown("resident0000ov01")
        prog = []
        for i in range(rounds):
            if wait_for(lambda: A.vxlan() is None and B.routes(dev_b) == 0, 20) is None:
                raise Failed(f"B kept {B.routes(dev_b)} routes to A's block")
            k += 1
            cid = f"cv{k:05d}ov000000"
            t0 = time.monotonic()
            A.setup(cid, "ov")
            t2 = wait_for(lambda: B.routes(dev_b) == 1, 20, 0.001)
            if t2 is None:
                raise Failed("B never routed A's new block")
            prog.append(t2 - t0)
            A.teardown(cid)
        # Removal, the routes: A's last container's teardown until B's
        # kernel no longer routes A's block.
        unprog, unhook = [], []
        for i in range(rounds):
            if wait_for(lambda: A.vxlan() is None and B.routes(dev_b) == 0, 20) is None:
                raise Failed(f"B kept {B.routes(dev_b)} routes to A's block")
            k += 1
            cid = f"cv{k:05d}ov000000"
            A.setup(cid, "ov")
            if wait_for(lambda: B.routes(dev_b) == 1, 20, 0.001) is None:
                raise Failed("B never routed A's new block")
            t0 = time.monotonic()
            A.teardown(cid)
            t1 = time.monotonic()
            t2 = wait_for(lambda: B.routes(dev_b) == 0, 20, 0.001)
            if t2 is None:
                raise Failed("B kept the route to A's block after its last container left")
            unprog.append(t2 - t0)
            unhook.append(t1 - t0)
    finally:
        sock.close()
    if "resident0000ov01" not in A.containers:
        A.setup("resident0000ov01", "ov")
    # Removal, the name: a container with a name on A (A holds a block, so
    # only its entry changes), asked by name from B's container to B's
    # resolver (the network's gateway on B) every 1 ms from the start of
    # A's poststop hook until B answers NXDOMAIN.
    gw = OV_SUBNET.split("/")[0].rsplit(".", 1)[0] + ".1"
    dsock = socket_in(cb_ns, socket.AF_INET, socket.SOCK_DGRAM)
    gone, gone_hook = [], []
    try:
        for i in range(rounds):
            k += 1
            cid, name = f"cv{k:05d}ov000000", f"gone{k}"
            A.setup(cid, "ov", name)
            if rcode_loop(dsock, gw, name, 0, 20) is None:
                raise Failed(f"B's resolver never answered {name}")
            t0 = time.monotonic()
            A.teardown(cid)
            t1 = time.monotonic()
            t2 = rcode_loop(dsock, gw, name, 3, 20)
            if t2 is None:
                raise Failed(f"B's resolver still answers {name} 20 s after its teardown on A")
            gone.append(t2 - t0)
            gone_hook.append(t1 - t0)
    finally:
        dsock.close()
    md += [f"Host A sets up a container on the overlay; B's container (already running) sends ICMP echo requests to it every 1 ms from the moment A's hook returned (a raw socket in B's container namespace); time from the start of A's hook to B's first reply, {rounds} rounds each, medians (max). `proxy_delay` is the kernel's delay before a proxy-ARP reply (`net.ipv4.neigh.<dev>.proxy_delay`, in 1/100 s; the reply waits a random time up to it); the bench sets it in its own host namespaces for the second pair of rows:", "",
           "| | proxy_delay | hook on A | hook start -> first reply on B | rounds over 100 ms | rounds over 500 ms |", "|---|---|---|---|---|---|"]
    for key in res:
        cond, d = key
        label = {"steady": "A already holds a block (routed on B)",
                 "first": "A's first container: new block, new VXLAN device"}[cond]
        over = lambda t: sum(1 for x in res[key] if x > t)
        md.append(f"| {label} | {d} | {med(hook[key]):.1f} ms | {med(res[key]):.1f} ms ({max(res[key]) * 1000:.1f}) | {over(0.1)} of {len(res[key])} | {over(0.5)} of {len(res[key])} |")
        print(f"part2 {key}: " + " ".join(f"{x * 1000:.0f}({ip.split('.')[-1]})" for x, ip in zip(res[key], ips[key])), file=sys.stderr)
    md += ["", f"Programming alone, {rounds} rounds: from the start of A's hook for its first container until B's kernel has the route to A's new block on {dev_b} (polled every 1 ms, no ping): median {med(prog):.1f} ms (max {max(prog) * 1000:.1f}).", "",
           f"Removal, {rounds} rounds each, medians (max): from the start of A's poststop hook until B no longer has what the container (or the block) brought.", "",
           "| | hook on A | hook start -> B converged | hook end -> B converged |", "|---|---|---|---|",
           f"| a named container on A stops (A keeps its block): B's resolver answers NXDOMAIN (asked every 1 ms from B's container) | {med(gone_hook):.1f} ms | {med(gone):.1f} ms ({max(gone) * 1000:.1f}) | {med([g - h for g, h in zip(gone, gone_hook)]):.1f} ms ({max(g - h for g, h in zip(gone, gone_hook)) * 1000:.1f}) |",
           f"| A's last container stops (A gives its block back): B's kernel drops the route to A's block (polled every 1 ms) | {med(unhook):.1f} ms | {med(unprog):.1f} ms ({max(unprog) * 1000:.1f}) | {med([g - h for g, h in zip(unprog, unhook)]):.1f} ms ({max(g - h for g, h in zip(unprog, unhook)) * 1000:.1f}) |", ""]
    out = {f"{c}/{d}": (med(hook[(c, d)]), med(res[(c, d)]), max(res[(c, d)]) * 1000) for c, d in res}
    out["program"] = (med(prog), max(prog) * 1000)
    out["gone"] = (med(gone), max(gone) * 1000)
    out["unprogram"] = (med(unprog), max(unprog) * 1000)
    return out


def absent_times(ns, rounds=3):
    """Seconds a TCP connect from the container namespace `ns` to an
    on-link overlay address no host holds takes to fail (its neighbour
    entry gives up after mcast_solicit x retrans_time_ms; the ICMP host
    unreachable that follows ends the connect), and the errno."""
    ip = OV_SUBNET.split("/")[0].rsplit(".", 2)[0] + ".250.250"
    out = []
    for _ in range(rounds):
        s = socket_in(ns, socket.AF_INET, socket.SOCK_STREAM)
        t = time.monotonic()
        err = s.connect_ex((ip, 9))
        out.append((time.monotonic() - t, os.strerror(err) if err else "connected"))
        s.close()
    return ip, out


def part2_first(res, hook, ips, rounds, md, absent, agent_lag=0):
    """The distribution of A's first-container rounds alone (`--first-only`):
    the rounds whose first ARP from B's container came before B routed A's
    new block wait for the container's next ARP retransmission."""
    (key, xs), = res.items()
    ms = sorted(x * 1000 for x in xs)
    over = lambda t: sum(1 for x in ms if x > t)
    q = lambda f: ms[min(len(ms) - 1, int(f * len(ms)))]
    md += [f"A's first container on the overlay (new block, new VXLAN device), {rounds} rounds; B's container (already running) pings the new address every 1 ms from the moment A's hook returned; time from the start of A's hook to B's first reply" + (f"; B's agent stopped from before A's hook until {agent_lag} ms after it returned" if agent_lag else "") + ":", "",
           "| hook on A (median) | median | p90 | max | rounds over 100 ms | rounds over 500 ms |", "|---|---|---|---|---|---|",
           f"| {med(hook[key]):.1f} ms | {med(xs):.1f} ms | {q(0.9):.1f} ms | {ms[-1]:.1f} ms | {over(100)} of {len(ms)} | {over(500)} of {len(ms)} |", "",
           "Every round, sorted (ms): " + " ".join(f"{x:.0f}" for x in ms), "",
           f"An address no host holds ({absent[0]}, on-link in the subnet): a TCP connect from B's container fails after " + ", ".join(f"{t:.2f} s ({e})" for t, e in absent[1]) + ".", ""]
    print(f"part2 first: " + " ".join(f"{x * 1000:.0f}({ip.split('.')[-1]})" for x, ip in zip(xs, ips[key])), file=sys.stderr)
    return {"first": (med(hook[key]), med(xs), q(0.9), ms[-1], over(100), over(500), len(ms))}


def txn(ops):
    body = "\n" + "\n".join(ops) + "\n\n\n"  # no compares, the ops, no failure ops
    return etcdctl("txn", input=body.encode())


def part3(A, rounds, md):
    """50 simulated hosts join (node + block keys, one transaction) and
    leave; until A's kernel has (or has dropped) their routes."""
    dev = A.vxlan()
    base = A.routes(dev)
    bn, bf = A.count("neigh", dev), A.count("fdb", dev)
    adds, dels, wr_add, wr_del = [], [], [], []
    after = None

    def keys(i):
        node = f"sim{i:02d}"
        adv = f"10.99.1.{i}"
        return (f"/ocinet/v1/nodes/{node}", json.dumps({"version": 1, "node": node, "advertise": adv}, separators=(",", ":")),
                f"/ocinet/v1/blocks/ov/10.77.{100 + i}.0-24", json.dumps({"version": 1, "node": node, "advertise": adv}, separators=(",", ":")))

    def q(v):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    for r in range(rounds):
        ops = []
        for i in range(1, 51):
            nk, nv, bk, bv = keys(i)
            ops += [f"put {nk} {q(nv)}", f"put {bk} {q(bv)}"]
        t0 = time.monotonic()
        out = txn(ops)
        t1 = time.monotonic()
        if not out.startswith("SUCCESS"):
            raise Failed(f"txn: {out[:200]}")
        t2 = wait_for(lambda: A.routes(dev) == base + 50, 30)
        if t2 is None:
            raise Failed(f"A has {A.routes(dev)} routes on {dev}, not {base + 50}")
        adds.append(t2 - t0)
        wr_add.append(t1 - t0)
        if after is None:
            after = (A.routes(dev), A.count("neigh", dev), A.count("fdb", dev))
        ops = []
        for i in range(1, 51):
            nk, _, bk, _ = keys(i)
            ops += [f"del {nk}", f"del {bk}"]
        t0 = time.monotonic()
        txn(ops)
        t1 = time.monotonic()
        t2 = wait_for(lambda: A.routes(dev) == base, 30)
        if t2 is None:
            raise Failed(f"A kept {A.routes(dev)} routes on {dev}")
        dels.append(t2 - t0)
        wr_del.append(t1 - t0)
        time.sleep(0.3)
    left = (A.routes(dev), A.count("neigh", dev), A.count("fdb", dev))
    md += [f"100 keys (50 nodes `sim01`..`sim50`, advertise 10.99.1.1-50, each with a /24 block of 10.77.0.0/16) written by `etcdctl txn` in one transaction; time from the start of etcdctl until `ip route show dev {dev}` on host A counts 50 more routes (polled every 2 ms); then the same 100 keys deleted in one transaction until they are gone. {rounds} rounds, medians (max):", "",
           "| | etcdctl txn (write) | txn start -> A's kernel programmed |", "|---|---|---|",
           f"| 50 hosts join | {med(wr_add):.1f} ms | {med(adds):.1f} ms ({max(adds) * 1000:.1f}) |",
           f"| 50 hosts leave | {med(wr_del):.1f} ms | {med(dels):.1f} ms ({max(dels) * 1000:.1f}) |", "",
           f"Entries on {dev} (routes / neighbours / FDB): before {base} / {bn} / {bf}; with the 50 simulated hosts {after[0]} / {after[1]} / {after[2]}; after they left {left[0]} / {left[1]} / {left[2]}.", ""]
    return med(adds), med(dels), after, (base, bn, bf), left


def snmp_ip(ns):
    text = in_ns(ns, "cat", "/proc/net/snmp")
    lines = [l.split() for l in text.splitlines() if l.startswith("Ip:")]
    return dict(zip(lines[0][1:], map(int, lines[1][1:])))


def link_stats(ns, dev):
    j = json.loads(run("ip", "-n", ns, "-s", "-j", "link", "show", dev))[0]
    return j["stats64"]["tx"]["bytes"], j["stats64"]["tx"]["packets"], j["mtu"]


def iperf(ns, ip, port, secs):
    out = in_ns(ns, "iperf3", "-c", ip, "-p", str(port), "-t", str(secs), "-J", timeout=secs + 30)
    j = json.loads(out)
    return (j["end"]["sum_received"]["bits_per_second"] / 1e9, j["end"]["sum_sent"].get("retransmits", 0),
            j["start"].get("tcp_mss_default"))


def part4(A, B, runs, secs, md):
    ca = A.containers["resident0000ov01"][0]
    cb = B.containers["resident0000ovB1"][0]
    ipb = ipv4_of(cb)
    for args in ((cb, "5201"), (B.ns, "5202")):
        p = subprocess.Popen(["nsenter", f"--net=/run/netns/{args[0]}", "iperf3", "-s", "-p", args[1]],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(p)
    time.sleep(0.5)
    nss = {"host A": A.ns, "host B": B.ns, "container on A": ca, "container on B": cb}
    before = {k: snmp_ip(v) for k, v in nss.items()}
    vx, ov = {"ov": [], "ul": []}, {}
    mss = {}
    for i in range(runs):
        for side in (("ov", "ul") if i % 2 == 0 else ("ul", "ov")):
            if side == "ov":
                bps, rt, m = iperf(ca, ipb, 5201, secs)
            else:
                bps, rt, m = iperf(A.ns, B.addr, 5202, secs)
            vx[side].append((bps, rt))
            mss[side] = m
    after = {k: snmp_ip(v) for k, v in nss.items()}
    dev = A.vxlan()
    mtus = {"ul0 (underlay)": link_stats(A.ns, "ul0")[2], f"{dev} (VXLAN)": link_stats(A.ns, dev)[2],
            "container eth0": link_stats(ca, "eth0")[2]}
    frag = {k: {c: after[k][c] - before[k][c] for c in ("FragCreates", "FragOKs", "FragFails", "ReasmReqds", "ReasmOKs")} for k in nss}
    g = lambda s: statistics.median([x[0] for x in vx[s]])
    md += [f"iperf3 TCP, one stream, {secs} s per run, {runs} runs per side alternating: container on A -> container on B over the overlay (VXLAN on the underlay), and host A -> host B straight over the underlay (the same two namespaces, routed directly). Medians:", "",
           "| | Gbit/s (median) | runs | retransmits (sum) | iperf3's MSS |", "|---|---|---|---|---|",
           f"| container -> container over VXLAN | {g('ov'):.2f} | " + ", ".join(f"{x[0]:.2f}" for x in vx["ov"]) + f" | {sum(x[1] for x in vx['ov'])} | {mss.get('ov')} |",
           f"| host -> host over the underlay | {g('ul'):.2f} | " + ", ".join(f"{x[0]:.2f}" for x in vx["ul"]) + f" | {sum(x[1] for x in vx['ul'])} | {mss.get('ul')} |",
           f"| VXLAN / direct | {g('ov') / g('ul') * 100:.0f}% | | | |", "",
           "MTUs: " + ", ".join(f"{k} {v}" for k, v in mtus.items()) + ".", "",
           "IP fragmentation counters (`/proc/net/snmp`, Ip:) changed by all the runs:", "",
           "| namespace | FragCreates | FragOKs | FragFails | ReasmReqds | ReasmOKs |", "|---|---|---|---|---|---|"]
    for k in nss:
        f = frag[k]
        md.append(f"| {k} | {f['FragCreates']} | {f['FragOKs']} | {f['FragFails']} | {f['ReasmReqds']} | {f['ReasmOKs']} |")
    md.append("")
    # The arithmetic, shown by the kernel: 1422 bytes of ICMP payload +
    # 28 = 1450 pass with DF, 1423 do not.
    okp = subprocess.run(["nsenter", f"--net=/run/netns/{ca}", "ping", "-c1", "-W2", "-M", "do", "-s", "1422", ipb], capture_output=True)
    bad = subprocess.run(["nsenter", f"--net=/run/netns/{ca}", "ping", "-c1", "-W2", "-M", "do", "-s", "1423", ipb], capture_output=True)
    badmsg = (bad.stdout + bad.stderr).decode().strip().splitlines()
    badmsg = next((l for l in badmsg if "mtu" in l.lower() or "too long" in l.lower()), badmsg[-1] if badmsg else "")
    md.append(f"`ping -M do -s 1422` (1450-byte packet, DF) from A's container to B's: {'answered' if okp.returncode == 0 else 'NOT answered'}; `-s 1423` (1451 bytes): {'answered (!)' if bad.returncode == 0 else 'refused: ' + badmsg.strip()}.")
    md.append("")
    return g("ov"), g("ul"), frag, mtus, mss


def part5(rounds, md, n_containers=1000, n_hosts=50):
    """Docker's per-container layout vs ours, on one VXLAN device in a
    throwaway namespace (nothing is sent)."""
    ns = ns_add(f"{TAG}-lay")
    run("ip", "-n", ns, "addr", "add", "10.98.0.1/32", "dev", "lo")
    bdir = os.path.join(WORK, "layout")
    os.makedirs(bdir)
    mac = lambda a, b, c: f"02:42:0a:{a:02x}:{b:02x}:{c:02x}"
    vmac = lambda h: f"0a:58:0a:63:01:{h:02x}"
    per_c_ip, per_c_br, ours_ip, ours_br = [], [], [], []
    for k in range(n_containers):
        h = k % n_hosts + 1
        a, b = 80 + k // 250, k % 250 + 2
        per_c_ip.append(f"neigh add 10.{a}.0.{b} lladdr {mac(a, 0, b)} dev vx0 nud permanent")
        per_c_br.append(f"fdb add {mac(a, 0, b)} dev vx0 dst 10.99.1.{h} self permanent")
    for h in range(1, n_hosts + 1):
        ours_ip.append(f"route add 10.77.{h}.0/24 via 10.77.{h}.0 dev vx0 onlink")
        ours_ip.append(f"neigh add 10.77.{h}.0 lladdr {vmac(h)} dev vx0 nud permanent")
        ours_br.append(f"fdb add {vmac(h)} dev vx0 dst 10.99.1.{h} self permanent")
    files = {}
    for name, lines in (("pc_ip", per_c_ip), ("pc_br", per_c_br), ("ours_ip", ours_ip), ("ours_br", ours_br),
                        ("none_ip", []), ("none_br", [])):
        files[name] = os.path.join(bdir, name)
        with open(files[name], "w") as f:
            f.write("\n".join(lines) + "\n")
    times = {"per-container": [], "per-host": [], "none": []}
    counts = {}
    for r in range(rounds):
        for layout in (("per-container", "per-host", "none") if r % 2 == 0 else ("none", "per-host", "per-container")):
            run("ip", "-n", ns, "link", "add", "vx0", "type", "vxlan", "id", "4242", "local", "10.98.0.1",
                "dstport", "4789", "nolearning")
            run("ip", "-n", ns, "link", "set", "vx0", "up")
            ipf, brf = {"per-container": (files["pc_ip"], files["pc_br"]), "per-host": (files["ours_ip"], files["ours_br"]),
                        "none": (files["none_ip"], files["none_br"])}[layout]
            t = time.perf_counter()
            run("ip", "-n", ns, "-batch", ipf)
            run("bridge", "-n", ns, "-batch", brf)
            times[layout].append(time.perf_counter() - t)
            if layout not in counts:
                routes = len(run("ip", "-n", ns, "-4", "route", "show", "dev", "vx0").strip().splitlines())
                neigh = len(run("ip", "-n", ns, "-4", "neigh", "show", "dev", "vx0").strip().splitlines())
                fdb = len([l for l in run("bridge", "-n", ns, "fdb", "show", "dev", "vx0").splitlines()
                           if "dst" in l])
                counts[layout] = (routes, neigh, fdb)
            run("ip", "-n", ns, "link", "del", "vx0")
    ns_del(ns)
    pc, ph, p0 = med(times["per-container"]), med(times["per-host"]), med(times["none"])
    md += [f"{n_containers} containers on {n_hosts} other hosts, as one host must program them on one VXLAN device (learning off) in a throwaway namespace, with `ip -batch` + `bridge -batch` (two processes per layout), {rounds} rounds alternating, device made afresh each time, medians:", "",
           "| layout | routes | neighbours | FDB entries | total entries | time to program |", "|---|---|---|---|---|---|",
           f"| per container (Docker's: neighbour + FDB entry per remote container) | {counts['per-container'][0]} | {counts['per-container'][1]} | {counts['per-container'][2]} | {sum(counts['per-container'])} | {pc:.1f} ms |",
           f"| per host block (ours, flannel's: route + neighbour per remote block, FDB per remote host; here one block per host) | {counts['per-host'][0]} | {counts['per-host'][1]} | {counts['per-host'][2]} | {sum(counts['per-host'])} | {ph:.1f} ms |",
           f"| per container / per host | | | | {sum(counts['per-container']) / sum(counts['per-host']):.1f}x | {pc / ph:.1f}x |",
           f"| (the two processes with empty batches) | | | | 0 | {p0:.1f} ms |", "",
           (f"Without the two processes' start: {pc - p0:.1f} ms per container layout against {ph - p0:.1f} ms for ours ({(pc - p0) / (ph - p0):.0f}x)."
            if ph - p0 >= 0.5 else
            f"Without the two processes' start: {pc - p0:.1f} ms per container layout; ours ({ph:.1f} ms) is within the noise of the two processes' start ({p0:.1f} ms), so no ratio is given."), ""]
    return counts, pc, ph, p0


# ---------------------------------------------------------------- main

def cleanup(hosts):
    # Containers still set up (the residents of each part) are torn down by
    # the hook first: their pins in /run/netns are the hook's to remove.
    for h in hosts:
        for cid in list(getattr(h, "containers", {})):
            try:
                h.teardown(cid)
            except Exception as e:  # etcd stopped or paused: the hook's local part still ran
                print(f"cleanup: teardown of {cid} on {h.node}: {e}", file=sys.stderr)
                ns, _ = h.containers.pop(cid, (None, None))
                if ns:
                    ns_del(ns)
    for h in hosts:
        for pid in h.daemons():
            try:
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for p in procs:
        if p.poll() is None:
            p.kill()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    for ns in list(reversed(created_ns)):
        ns_del(ns)
    if WORK and os.environ.get("OCINET_KEEP_BENCH") is None:
        shutil.rmtree(WORK, ignore_errors=True)


def main():
    global WORK
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--rtt", type=int, default=20, help="hook calls per kind counted in etcd")
    ap.add_argument("--conv", type=int, default=20)
    ap.add_argument("--conv-first", type=int, help="rounds of A's first container in part 2 (default: --conv)")
    ap.add_argument("--first-only", action="store_true",
                    help="part 2: only A's first-container rounds, with their distribution")
    ap.add_argument("--agent-lag", type=int, default=0,
                    help="with --first-only: B's agent stopped over A's setup and continued this many ms after it")
    ap.add_argument("--sim", type=int, default=5)
    ap.add_argument("--iperf-runs", type=int, default=5)
    ap.add_argument("--iperf-secs", type=int, default=4)
    ap.add_argument("--layout", type=int, default=10)
    ap.add_argument("--only", default="1,2,3,4,5")
    ap.add_argument("--out")
    a = ap.parse_args()
    only = set(a.only.split(","))
    if not os.access(OCINET, os.X_OK):
        sys.exit(f"{OCINET} missing: scripts/build.sh")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    WORK = tempfile.mkdtemp(prefix="ocinet-ovbench-", dir=base)
    hosts = []
    md = []
    try:
        ns_add(UL)
        run("ip", "-n", UL, "link", "add", "ulbr", "type", "bridge")
        run("ip", "-n", UL, "addr", "add", f"{UL_GW}/24", "dev", "ulbr")
        run("ip", "-n", UL, "link", "set", "ulbr", "up")
        start_etcd()
        A, B = Host("a", 1), Host("b", 2)
        hosts += [A, B]
        for h in hosts:
            h.oc("cluster", "join", "--store", ETCD_URL, "--advertise-addr", h.addr, "--node", h.node, "--lease-ttl", TTL)
        A.oc("network", "create", "ov", "--driver", "overlay", "--subnet", OV_SUBNET)
        A.oc("network", "create", "br", "--subnet", BR_SUBNET)
        # B's agent copies the definition from the store (one pass)
        if wait_for(lambda: any(l.split()[:1] == ["ov"] for l in B.oc("network", "ls").splitlines()), 20, 0.1) is None:
            raise Failed("host B never saw network ov")
        B.setup("resident0000ovB1", "ov")
        summary = {}
        if "1" in only:
            md += ["### 16.1 Setup and teardown: overlay vs bridge, and etcd round trips", ""]
            summary["p1"] = part1(A, a.rounds, md)
            summary["rtt"] = part1_rtt(A, B, a.rtt, md)
        else:
            A.setup("resident0000ov01", "ov")
            A.setup("resident0000br01", "br")
        if "2" in only:
            md += ["### 16.2 Convergence across hosts", ""]
            summary["p2"] = part2(A, B, a.conv, md, a.conv_first, a.first_only, a.agent_lag)
        if "3" in only:
            md += ["### 16.3 50 simulated hosts joining and leaving", ""]
            summary["p3"] = part3(A, a.sim, md)
        if "4" in only:
            md += ["### 16.4 Throughput over VXLAN vs the underlay, and the MTU", ""]
            summary["p4"] = part4(A, B, a.iperf_runs, a.iperf_secs, md)
        if "5" in only:
            md += ["### 16.5 Per-host blocks vs per-container entries", ""]
            summary["p5"] = part5(a.layout, md)
        head = [f"Run {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores ({platform.processor() or platform.machine()}), kernel {platform.release()}, etcd {run('etcd', '--version').splitlines()[0].split()[-1]}; `python3 bench/overlay.py {' '.join(sys.argv[1:])}`.", ""]
        text = "\n".join(head + md)
        print(text)
        if a.out:
            with open(a.out, "w") as f:
                f.write(text + "\n")
    finally:
        cleanup(hosts)


if __name__ == "__main__":
    main()
