#!/usr/bin/env python3
"""Issue 22: what IPv6 costs a container's setup and teardown. One
container with one published port (8080:80), set up and torn down by the
hook as whole processes, on an IPv4-only network and on a dual-stack one
of the same build, and (when a netavark 2.x binary is given) by netavark
on a dual-stack network with `ipv6_enabled`. Each side in a throwaway
host namespace of its own, state on a tmpfs; the order of the sides
rotates every round (on this machine the side that goes later in a round
gains ~10%). Run as root after `scripts/build.sh`:

    python3 bench/dual_stack.py [ROUNDS] [NETAVARK_BIN]

e.g. `python3 bench/dual_stack.py 40 /opt/netavark-2.1/bin/netavark`
(netavark built by `cargo install netavark --version 2.1.0 --locked
--root /opt/netavark-2.1`, which needs Debian's protobuf-compiler).
"""
import json, os, random, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OCINET = os.environ.get("OCINET_BIN") or os.path.join(ROOT, "target/release/ocinet")
ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 30
NETAVARK = sys.argv[2] if len(sys.argv) > 2 else None
PID = os.getpid()
work = tempfile.mkdtemp(prefix="ds-", dir="/dev/shm")
made = []


def ns(name):
    subprocess.run(["ip", "netns", "add", name], check=True)
    made.append(name)
    return name


def timed(args, stdin, env=None):
    s = time.perf_counter()
    r = subprocess.run(args, input=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    dt = time.perf_counter() - s
    if r.returncode != 0:
        raise RuntimeError(f"{args[:3]} failed: {r.stderr.decode()[-500:]}")
    return dt


def in_host(host, args):
    return ["nsenter", f"--net=/run/netns/{host}", *args]


class Ocinet:
    def __init__(self, side, network, subnets):
        self.side, self.network = side, network
        self.host = ns(f"dsh{side}{PID}")
        subprocess.run(["ip", "-n", self.host, "link", "set", "lo", "up"], check=True)
        self.dirs = ["--state-dir", os.path.join(work, side, "s"), "--config-dir", os.path.join(work, side, "c")]
        args = [OCINET, "network", "create", network, "--disable-dns"]
        for s in subnets:
            args += ["--subnet", s]
        subprocess.run(in_host(self.host, args + self.dirs), check=True, stdout=subprocess.DEVNULL)

    def cycle(self, i):
        c = ns(f"dsc{self.side}{i}-{PID}")
        bd = os.path.join(work, self.side, f"b{i}")
        os.makedirs(bd)
        cfg = {"ociVersion": "1.0.2", "root": {"path": "rootfs"},
               "annotations": {"io.ocinet.ports": "8080:80", "io.ocinet.network": self.network},
               "linux": {"namespaces": [{"type": "network", "path": f"/run/netns/{c}"}]}}
        json.dump(cfg, open(os.path.join(bd, "config.json"), "w"))
        st = json.dumps({"ociVersion": "1.0", "id": f"ds{self.side}{i}", "status": "creating", "bundle": bd}).encode()
        out = []
        for stage in ("createRuntime", "poststop"):
            out.append(timed(in_host(self.host, [OCINET, "hook", stage, *self.dirs]), st))
        subprocess.run(["ip", "netns", "del", c], check=True)
        made.remove(c)
        return out


class Netavark:
    side = "netavark"

    def __init__(self):
        self.host = ns(f"dshnv{PID}")
        subprocess.run(["ip", "-n", self.host, "link", "set", "lo", "up"], check=True)
        self.cfg = os.path.join(work, "netavark")
        os.makedirs(self.cfg)
        self.env = dict(os.environ, NETAVARK_FW="nftables")

    def opts(self, cid):
        return json.dumps({
            "container_id": cid.ljust(64, "0"), "container_name": "bench",
            "port_mappings": [{"host_ip": "", "container_port": 80, "host_port": 8080, "range": 1, "protocol": "tcp"}],
            "networks": {"podman": {"static_ips": ["10.92.0.14", "fd92::14"], "interface_name": "eth0"}},
            "network_info": {"podman": {
                "name": "podman", "id": "2f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9",
                "driver": "bridge", "network_interface": "podman0",
                "subnets": [{"subnet": "10.92.0.0/24", "gateway": "10.92.0.1"},
                            {"subnet": "fd92::/64", "gateway": "fd92::1"}],
                "ipv6_enabled": True, "internal": False, "dns_enabled": False,
                "ipam_options": {"driver": "host-local"}}}}).encode()

    def cycle(self, i):
        c = ns(f"dscnv{i}-{PID}")
        o = self.opts(f"nv{i}")
        out = [timed(in_host(self.host, [NETAVARK, "--config", self.cfg, verb, f"/run/netns/{c}"]), o, self.env)
               for verb in ("setup", "teardown")]
        subprocess.run(["ip", "netns", "del", c], check=True)
        made.remove(c)
        return out


try:
    sides = [Ocinet("v4", "four", ["10.90.0.0/24"]), Ocinet("dual", "dual", ["10.91.0.0/24", "fd91::/64"])]
    if NETAVARK:
        sides.append(Netavark())
    t = {(s.side, k): [] for s in sides for k in ("setup", "teardown", "cycle")}
    for i in range(ROUNDS + 1):
        order = sides[i % len(sides):] + sides[:i % len(sides)]
        for s in order:
            setup, teardown = s.cycle(i)
            if i == 0:
                continue  # warm-up round, left out
            t[s.side, "setup"].append(setup)
            t[s.side, "teardown"].append(teardown)
            t[s.side, "cycle"].append(setup + teardown)
    med = lambda side, k: statistics.median(t[side, k]) * 1000
    print(f"{ROUNDS} rounds, medians, each call a whole process, order rotated every round")
    print("| | ocinet IPv4-only | ocinet dual stack | dual - IPv4 |" + (" netavark 2.1 dual stack | netavark / ocinet (dual) |" if NETAVARK else ""))
    print("|---|---|---|---|" + ("---|---|" if NETAVARK else ""))
    for k in ("setup", "teardown", "cycle"):
        v4, ds = med("v4", k), med("dual", k)
        row = f"| {k} | {v4:.2f} ms | {ds:.2f} ms | {ds - v4:+.2f} ms |"
        if NETAVARK:
            nv = med("netavark", k)
            row += f" {nv:.1f} ms | {nv / ds:.1f}x |"
        print(row)
    # How far the medians' difference moves by chance: a teardown's RCU
    # wait varies from 15 to 60 ms here, so a median of 30 moves by a few
    # ms (a first run read +9 ms for dual stack, six later ones -3.4 to
    # +3.3 ms). A bootstrap of the rounds, 2,000 resamples.
    rng = random.Random(1)
    for k in ("setup", "teardown"):
        a, b = t["v4", k], t["dual", k]
        diffs = sorted((statistics.median(rng.choices(b, k=len(b))) - statistics.median(rng.choices(a, k=len(a)))) * 1000
                       for _ in range(2000))
        print(f"dual - IPv4 {k}: 95% of resampled differences within {diffs[50]:+.2f} .. {diffs[1949]:+.2f} ms")
finally:
    for n in made:
        subprocess.run(["ip", "netns", "del", n])
    shutil.rmtree(work, ignore_errors=True)
