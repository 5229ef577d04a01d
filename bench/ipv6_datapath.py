#!/usr/bin/env python3
"""Issue 22: the IPv6 data path through a published port against the
direct path (target: at least 90%), beside the same IPv4 pair (section 6's
measurement, in the same run). One container on a dual-stack network
(`--subnet 10.88.0.0/24 --subnet fd88::/64`, gateway mode nat-unprotected,
which lets a host that routes the subnets via this host in, as section 6
needs for its direct leg) publishing 15201:5201 and 15202:5202, in a
throwaway host namespace joined by a veth to an "outside" namespace
(198.51.100.1/24 and 2001:db8:100::1/64 on the host end, .2 and ::2
outside, routes to both container subnets via the host). From the outside:

- throughput: iperf3 TCP, SECS per run, to [2001:db8:100::1]:15201 (DNAT
  to the container) and to [container's IPv6]:5201 (routed), and the same
  pair over IPv4;
- connection rate: new TCP connections per second for SECS, one after
  another from one Python client (connect, read the one byte the server
  sends, close), through the published port 15202 (to 5202) and directly
  to 5203, both families.

Every round runs every leg once, the order rotated each round; medians.
Run as root after `scripts/build.sh`:

    python3 bench/ipv6_datapath.py [ROUNDS] [SECS] [nat-unprotected|routed]

Needs iperf3 (scripts/install-deps.sh installs it). Traffic stays inside
the namespaces this script makes; it deletes them (and its processes) at
the end, even on failure.
"""
import json, os, shutil, signal, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OCINET = os.environ.get("OCINET_BIN") or os.path.join(ROOT, "target/release/ocinet")
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
SECS = float(sys.argv[2]) if len(sys.argv) > 2 else 3
# nat-unprotected (section 6's), or routed (no masquerade; from outside
# only published container ports answer, directly at the container's
# addresses too: every port the legs use is published for that).
MODE = sys.argv[3] if len(sys.argv) > 3 else "nat-unprotected"
PID = os.getpid()
work = tempfile.mkdtemp(prefix="dp6-", dir="/dev/shm")
made, procs = [], []
HOST4, OUT4 = "198.51.100.1", "198.51.100.2"
HOST6, OUT6 = "2001:db8:100::1", "2001:db8:100::2"

# The container's side of the connection-rate legs: accept, send one byte,
# close (the server closes first, so TIME_WAIT stays in the container and
# the client's ports are free again at once). The published leg goes to
# 5202, the direct one to 5203: the client reuses its ports within
# TIME_WAIT's minute, and a SYN arriving through the DNAT for a 4-tuple the
# direct leg left in TIME_WAIT carries the timestamps the client keeps for
# the host's address, not the container's, so PAWS drops it and the client
# waits out a 1 s SYN retransmission (seen: a few such stalls made the
# published leg look 2-10x slower).
SERVER = r"""
import socket, threading
def serve(fam, addr, port):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, port)); s.listen(1024)
    while True:
        c, _ = s.accept(); c.send(b"x"); c.close()
for fam, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
    for port in (5202, 5203):
        threading.Thread(target=serve, args=(fam, addr, port), daemon=True).start()
threading.Event().wait()
"""

CLIENT = r"""
import socket, sys, time
addr, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
n, end = 0, time.perf_counter() + secs
start = time.perf_counter()
while time.perf_counter() < end:
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect((addr, port))
    if s.recv(1) != b"x":
        raise SystemExit("no byte from the server")
    s.close(); n += 1
print(n / (time.perf_counter() - start))
"""


def sh(*a, **kw):
    return subprocess.run(list(a), check=True, stdout=subprocess.DEVNULL, **kw)


def ns(name):
    sh("ip", "netns", "add", name)
    made.append(name)
    sh("ip", "-n", name, "link", "set", "lo", "up")
    return name


def ocinet(host, *args):
    return subprocess.run(["nsenter", f"--net=/run/netns/{host}", OCINET, *args,
                           "--state-dir", os.path.join(work, "s"), "--config-dir", os.path.join(work, "c")],
                          check=True, capture_output=True, text=True).stdout


def iperf(out, target, port):
    # iperf3 takes whole seconds (-t 0 would run forever).
    r = subprocess.run(["ip", "netns", "exec", out, "iperf3", "-c", target, "-p", str(port), "-t", str(max(1, round(SECS))), "-J"],
                       capture_output=True, text=True, check=True, timeout=SECS + 30)
    return json.loads(r.stdout)["end"]["sum_received"]["bits_per_second"] / 1e9


def conns(out, target, port, secs=SECS):
    r = subprocess.run(["ip", "netns", "exec", out, "python3", "-c", CLIENT, target, str(port), str(secs)],
                       capture_output=True, text=True, check=True, timeout=secs + 30)
    return float(r.stdout)


# A SIGTERM (timeout, kill) ends the run through the cleanup below.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))

try:
    host, out, ctr = ns(f"dp6h{PID}"), ns(f"dp6o{PID}"), ns(f"dp6c{PID}")
    hv, ov = f"dp6h{PID}", f"dp6o{PID}"
    sh("ip", "-n", host, "link", "add", hv, "type", "veth", "peer", "name", ov, "netns", out)
    sh("ip", "-n", host, "addr", "add", f"{HOST4}/24", "dev", hv)
    sh("ip", "-n", host, "addr", "add", f"{HOST6}/64", "dev", hv, "nodad")
    sh("ip", "-n", out, "addr", "add", f"{OUT4}/24", "dev", ov)
    sh("ip", "-n", out, "addr", "add", f"{OUT6}/64", "dev", ov, "nodad")
    sh("ip", "-n", host, "link", "set", hv, "up")
    sh("ip", "-n", out, "link", "set", ov, "up")
    sh("ip", "-n", out, "route", "add", "10.88.0.0/24", "via", HOST4)
    sh("ip", "-n", out, "route", "add", "fd88::/64", "via", HOST6)

    ocinet(host, "network", "create", "dp", "--subnet", "10.88.0.0/24", "--subnet", "fd88::/64",
           "--gateway-mode", MODE, "--disable-dns")
    bd = os.path.join(work, "b")
    os.makedirs(bd)
    json.dump({"ociVersion": "1.0.2", "root": {"path": "rootfs"},
               "annotations": {"io.ocinet.ports": "15201:5201,15202:5202,15203:5203", "io.ocinet.network": "dp"},
               "linux": {"namespaces": [{"type": "network", "path": f"/run/netns/{ctr}"}]}},
              open(os.path.join(bd, "config.json"), "w"))
    state = json.dumps({"ociVersion": "1.0", "id": "dp6", "status": "creating", "bundle": bd})
    hook = lambda stage: subprocess.run(["nsenter", f"--net=/run/netns/{host}", OCINET, "hook", stage,
                                         "--state-dir", os.path.join(work, "s"), "--config-dir", os.path.join(work, "c")],
                                        input=state, text=True, check=True)
    hook("createRuntime")
    att = json.loads(ocinet(host, "ps", "--json"))[0]
    ip4, ip6 = att["ip"], att["ip6"]

    for a in (["iperf3", "-s", "-p", "5201"], ["python3", "-c", SERVER]):
        procs.append(subprocess.Popen(["ip", "netns", "exec", ctr, *a], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    # A freshly-up link answers its first IPv6 packet only after the
    # kernel's repeated neighbour solicitation (~1 s): prime every path.
    # (A TCP connection, not a ping: a routed network answers only
    # published ports from outside.)
    time.sleep(0.5)
    for target, port in ((HOST6, 15202), (ip6, 5203), (HOST4, 15202), (ip4, 5203)):
        conns(out, target, port, 0.3)

    legs = {
        ("IPv6", "published"): (HOST6, 15201, 15202), ("IPv6", "direct"): (ip6, 5201, 5203),
        ("IPv4", "published"): (HOST4, 15201, 15202), ("IPv4", "direct"): (ip4, 5201, 5203),
    }
    tput = {k: [] for k in legs}
    rate = {k: [] for k in legs}
    keys = list(legs)
    for i in range(ROUNDS):
        order = keys[i % len(keys):] + keys[:i % len(keys)]
        for k in order:
            target, p_bulk, p_conn = legs[k]
            tput[k].append(iperf(out, target, p_bulk))
        for k in reversed(order):
            target, p_bulk, p_conn = legs[k]
            rate[k].append(conns(out, target, p_conn))
    med = lambda xs: statistics.median(xs)
    print(f"{ROUNDS} rounds, {SECS:g} s per run, medians; gateway mode {MODE}; container {ip4} / {ip6}")
    print("| family | throughput, published | throughput, direct | published / direct | connections/s, published | connections/s, direct | published / direct |")
    print("|---|---|---|---|---|---|---|")
    for fam in ("IPv6", "IPv4"):
        tp, td = med(tput[fam, "published"]), med(tput[fam, "direct"])
        cp, cd = med(rate[fam, "published"]), med(rate[fam, "direct"])
        print(f"| {fam} | {tp:.2f} Gbit/s | {td:.2f} Gbit/s | {100 * tp / td:.0f}% | {cp:.0f} | {cd:.0f} | {100 * cp / cd:.0f}% |")
    print("raw:", json.dumps({f"{f} {p}": {"gbit": [round(x, 2) for x in tput[f, p]], "conn": [round(x) for x in rate[f, p]]}
                              for f, p in keys}))
    for p in procs:
        p.terminate()
        p.wait()
    procs.clear()
    hook("poststop")
finally:
    for p in procs:
        p.kill()
        p.wait()
    for n in made:
        subprocess.run(["ip", "netns", "del", n])
    shutil.rmtree(work, ignore_errors=True)
