#!/usr/bin/env python3
"""Issue 22: what the port proxy costs a published port on the host's
IPv6 loopback. One dual-stack container publishing `[::1]:5201:5201`,
set up by the hook in a throwaway host namespace (state on a tmpfs);
iperf3 TCP from the host namespace to `[::1]:5201` (through the proxy)
and straight to the container's IPv6 address, alternating; then the
proxy's resident set idle, at its peak, and with 100 more ports. Run as
root after `scripts/build.sh`:

    python3 bench/loopback_proxy.py [RUNS] [SECONDS]

Traffic stays inside the namespaces this script makes.
"""
import json, os, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OCINET = os.environ.get("OCINET_BIN") or os.path.join(ROOT, "target/release/ocinet")
RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
SECS = int(sys.argv[2]) if len(sys.argv) > 2 else 4
PID = os.getpid()
work = tempfile.mkdtemp(prefix="lp-", dir="/dev/shm")
host = f"lph{PID}"
made = []
procs = []
# Every container the hook was run for: torn down even when a step fails
# (the hook pins its namespace under /run/netns).
started = []
dirs = ["--state-dir", os.path.join(work, "s"), "--config-dir", os.path.join(work, "c")]


def run(args, **kw):
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{args[:4]} failed: {r.stderr.decode()[-500:]}")
    return r.stdout


def in_host(args):
    return ["nsenter", f"--net=/run/netns/{host}", *args]


def ocinet(*args):
    return run(in_host([OCINET, *args, *dirs]))


def container(name, ports):
    subprocess.run(["ip", "netns", "add", name], check=True)
    made.append(name)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    bd = os.path.join(work, name)
    os.makedirs(bd)
    cfg = {"ociVersion": "1.0.2", "root": {"path": "rootfs"},
           "annotations": {"io.ocinet.ports": ports, "io.ocinet.network": "ds"},
           "linux": {"namespaces": [{"type": "network", "path": f"/run/netns/{name}"}]}}
    json.dump(cfg, open(os.path.join(bd, "config.json"), "w"))
    st = json.dumps({"ociVersion": "1.0", "id": name, "status": "creating", "bundle": bd}).encode()
    started.append(st)
    run(in_host([OCINET, "hook", "createRuntime", *dirs]), input=st)
    return st


def rss(pid):
    out = {}
    for line in open(f"/proc/{pid}/status"):
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            out[k] = int(v.split()[0])
    return out


def iperf(target):
    r = json.loads(run(in_host(["iperf3", "-J", "-c", target, "-p", "5201", "-t", str(SECS)])))
    return r["end"]["sum_received"]["bits_per_second"] / 1e9


try:
    subprocess.run(["ip", "netns", "add", host], check=True)
    made.append(host)
    subprocess.run(["ip", "-n", host, "link", "set", "lo", "up"], check=True)
    ocinet("network", "create", "ds", "--subnet", "10.91.0.0/24", "--subnet", "fd91::/64", "--disable-dns")
    c = f"lpc{PID}"
    container(c, "[::1]:5201:5201")
    ip6 = [a["ip6"] for a in json.loads(ocinet("ps", "--json"))[0]["attachments"]][0]
    procs.append(subprocess.Popen(["nsenter", f"--net=/run/netns/{c}", "iperf3", "-s"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(0.5)
    subprocess.run(in_host(["ping", "-6", "-c", "2", "-W", "1", ip6]), stdout=subprocess.DEVNULL)
    pid = json.loads(ocinet("proxy", "status", "--json"))["Pid"]
    idle = rss(pid)["VmRSS"]
    got = {"proxy": [], "direct": []}
    for i in range(RUNS):
        order = [("proxy", "::1"), ("direct", ip6)]
        if i % 2:
            order.reverse()
        for side, target in order:
            got[side].append(iperf(target))
    peak = rss(pid)["VmHWM"]
    # 100 more ports (200 sockets: tcp and udp) in one more container.
    container(f"lpd{PID}", "[::1]:20000-20099:20000-20099,[::1]:20000-20099:20000-20099/udp")
    more = rss(pid)["VmRSS"]
    p, d = statistics.median(got["proxy"]), statistics.median(got["direct"])
    print(f"runs {RUNS} x {SECS} s, iperf3 TCP, one stream")
    print(f"| via [::1] (port proxy) | {p:.2f} Gbit/s | runs {', '.join(f'{x:.2f}' for x in got['proxy'])} |")
    print(f"| direct to [{ip6}] | {d:.2f} Gbit/s | runs {', '.join(f'{x:.2f}' for x in got['direct'])} |")
    print(f"| proxy / direct | {100 * p / d:.0f}% | |")
    print(f"proxy RSS: idle with 1 port {idle} KiB, peak during the runs {peak} KiB, with 201 sockets {more} KiB")
finally:
    for st in reversed(started):
        subprocess.run(in_host([OCINET, "hook", "poststop", *dirs]), input=st,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for p in procs:
        p.kill()
        p.wait()
    for n in reversed(made):
        subprocess.run(["ip", "netns", "del", n])
    shutil.rmtree(work, ignore_errors=True)
