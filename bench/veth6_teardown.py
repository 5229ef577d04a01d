#!/usr/bin/env python3
"""Issue 22: where the dual-stack teardown's extra time goes. A bare
kernel experiment, no ocinet: a host namespace with a bridge (IPv4
gateway, and the IPv6 one when the variant has IPv6) and a container
namespace; each round makes one veth pair the way the hook does (host end
on the bridge, both ends `addrgenmode none`, the inside end's addresses
and default routes, IPv6 ones with `nodad`), then deletes it and times
the deletion as a whole `ip` process, and what a variant does before it.
Variants alternate within every round (order rotated), medians over the
rounds. Run as root:

    python3 bench/veth6_teardown.py [ROUNDS] [VARIANT,...]

Everything lives in namespaces the script makes and deletes.
"""
import os, signal, statistics, subprocess, sys, time

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 30
PID = os.getpid()
made = []

# name: (host namespace kind, inside IPv6?, steps before the deletion, delete from)
#   host kind "v4": the bridge has an IPv4 address only and IPv6 forwarding
#   is off in the host namespace (an IPv4-only ocinet host); "dual": the bridge
#   also has fd93::1/64 and net.ipv6.conf.all.forwarding=1 (what a dual-stack
#   network turns on).
VARIANTS = {
    "v4": ("v4", False, [], "host"),
    "v4-on-dualhost": ("dual", False, [], "host"),
    "dual": ("dual", True, [], "host"),
    "dual-flush6": ("dual", True, ["flush6"], "host"),
    "dual-disable6-inside": ("dual", True, ["disable6_inside"], "host"),
    "dual-disable6-both": ("dual", True, ["disable6_inside", "disable6_host"], "host"),
    "dual-from-inside": ("dual", True, [], "inside"),
    "dual-down-first": ("dual", True, ["down_inside"], "host"),
    "dual-host6off": ("dual", True, ["host6off_at_setup"], "host"),
}


def sh(*a, check=True):
    return subprocess.run(list(a), check=check, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def ns(name):
    sh("ip", "netns", "add", name)
    made.append(name)
    sh("ip", "-n", name, "link", "set", "lo", "up")
    return name


def timed(*a):
    s = time.perf_counter()
    r = subprocess.run(list(a), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if r.returncode != 0:
        raise RuntimeError(f"{a}: {r.stderr.decode()}")
    return time.perf_counter() - s


def host(kind):
    h = ns(f"v6h{kind}{PID}")
    sh("ip", "-n", h, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
    sh("ip", "-n", h, "addr", "add", "10.93.0.1/24", "dev", "br0")
    if kind == "dual":
        sh("ip", "-n", h, "addr", "add", "fd93::1/64", "dev", "br0", "nodad")
        sh("ip", "netns", "exec", h, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
    sh("ip", "-n", h, "link", "set", "br0", "up")
    return h


def cycle(hosts, name, i):
    kind, inside6, steps, where = VARIANTS[name]
    h = hosts[kind]
    c = ns(f"v6c{i}-{PID}")
    hv, cv = f"vh{i}", "eth0"
    sh("ip", "-n", h, "link", "add", hv, "type", "veth", "peer", "name", cv, "netns", c)
    sh("ip", "-n", h, "link", "set", hv, "addrgenmode", "none")
    sh("ip", "-n", c, "link", "set", cv, "addrgenmode", "none")
    if "host6off_at_setup" in steps:
        sh("ip", "netns", "exec", h, "sysctl", "-qw", f"net.ipv6.conf.{hv}.disable_ipv6=1")
    sh("ip", "-n", h, "link", "set", hv, "master", "br0", "up")
    sh("ip", "-n", c, "link", "set", cv, "up")
    sh("ip", "-n", c, "addr", "add", "10.93.0.5/24", "dev", cv)
    sh("ip", "-n", c, "route", "add", "default", "via", "10.93.0.1")
    if inside6:
        sh("ip", "-n", c, "addr", "add", "fd93::5/64", "dev", cv, "nodad")
        sh("ip", "-n", c, "-6", "route", "add", "default", "via", "fd93::1")
    time.sleep(0.05)  # settle: link-watch and carrier work done, as in a running container
    pre = 0.0
    for st in steps:
        if st == "flush6":
            pre += timed("ip", "-n", c, "-6", "route", "flush", "dev", cv)
            pre += timed("ip", "-n", c, "-6", "addr", "flush", "dev", cv)
        elif st == "disable6_inside":
            pre += timed("ip", "netns", "exec", c, "sysctl", "-qw", f"net.ipv6.conf.{cv}.disable_ipv6=1")
        elif st == "disable6_host":
            pre += timed("ip", "netns", "exec", h, "sysctl", "-qw", f"net.ipv6.conf.{hv}.disable_ipv6=1")
        elif st == "down_inside":
            pre += timed("ip", "-n", c, "link", "set", cv, "down")
    if where == "host":
        d = timed("ip", "-n", h, "link", "del", hv)
    else:
        d = timed("ip", "-n", c, "link", "del", cv)
    sh("ip", "netns", "del", c)
    made.remove(c)
    return pre, d


# A SIGTERM (timeout, kill) ends the run through the cleanup below.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))

try:
    names = sys.argv[2].split(",") if len(sys.argv) > 2 else list(VARIANTS)
    hosts = {k: host(k) for k in ("v4", "dual")}
    t = {n: ([], []) for n in names}
    for i in range(ROUNDS + 1):
        order = names[i % len(names):] + names[:i % len(names)]
        for n in order:
            pre, d = cycle(hosts, n, i)
            if i:
                t[n][0].append(pre)
                t[n][1].append(d)
    # An `ip` process that does nothing, timed the same way: the floor.
    print(f"{ROUNDS} rounds, medians (ms); the deletion as a whole `ip link del` process")
    print("| variant | steps before | link del | total | total - v4 |")
    print("|---|---|---|---|---|")
    med = lambda xs: statistics.median(xs) * 1000
    base = med([p + d for p, d in zip(*t["v4"])]) if "v4" in t else None
    for n in names:
        pre, d = t[n]
        tot = med([p + x for p, x in zip(pre, d)])
        print(f"| {n} | {med(pre):.2f} | {med(d):.2f} | {tot:.2f} | {'' if base is None else f'{tot - base:+.2f}'} |")
finally:
    for n in made:
        subprocess.run(["ip", "netns", "del", n])
