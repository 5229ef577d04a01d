#!/usr/bin/env python3
"""ocinet benchmarks, side by side with the peers, in one run.

Everything runs inside throwaway network namespaces this script creates and
deletes (the network rule: no traffic leaves them). Run as root from the
repository root after `scripts/build.sh`:

    python3 bench/run.py [--quick] [--only N,...] [--out BENCHMARKS.md]

Each comparison alternates the two sides and reports medians and the ratio.
"""
import argparse, collections, ctypes, datetime, json, os, platform, shutil, socket, statistics
import subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# OCINET_BIN: another build of the hook (an earlier release, to tell a
# regression from this machine's drift).
OCINET = os.environ.get("OCINET_BIN") or os.path.join(ROOT, "target/release/ocinet")
EXPORTER = os.path.join(ROOT, "target/release/ocinet-exporter")
# `--netavark PATH` (e.g. a netavark 2.1 built by `cargo install netavark
# --version 2.1.0 --locked --root /opt/netavark-2.1`); the tables name the
# version it reports.
NETAVARK = "/usr/lib/podman/netavark"
NV = "netavark"
CLONE_NEWNET = 0x40000000
MNT_DETACH = 2
libc = ctypes.CDLL("libc.so.6", use_errno=True)
TAG = f"ob{os.getpid() % 100000}"
created_ns = []
started = []
results = []  # (section, markdown)
used_ids = set()  # container ids this run set up (their pins are cleaned up)


def sh(*args, check=True, **kw):
    return subprocess.run(list(args), check=check, **kw)


def netns_add(name):
    sh("ip", "netns", "add", name)
    created_ns.append(name)
    return name


def enter(name):
    """Move this (single-threaded) process into /run/netns/NAME."""
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")
    os.close(fd)


def clean_up(work, ids):
    """What a run made, gone: the processes it started, the namespaces it
    made, the pins of its containers (named after their `ids`: another
    run's are not ours to remove), whatever is still mounted under its
    directory `work` (a pin of a section that failed half-way; deepest
    first: rmtree cannot remove a mount point and would leave the mount
    behind), then `work`. Called from the bench's own namespace."""
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait()
    subprocess.run(["ip", "-force", "-batch", "-"], input="".join(f"netns del {n}\n" for n in created_ns).encode(),
                   stderr=subprocess.DEVNULL)
    for f in os.listdir("/run/netns") if os.path.isdir("/run/netns") else []:
        if any(f.startswith(f"ocinet-{cid[:12]}") for cid in ids):
            libc.umount2(f"/run/netns/{f}".encode(), MNT_DETACH)
            try:
                os.unlink(f"/run/netns/{f}")
            except FileNotFoundError:
                pass
    with open("/proc/self/mountinfo") as f:
        ours = [line.split()[4] for line in f if line.split()[4].startswith(work + "/")]
    for m in sorted(ours, key=len, reverse=True):
        subprocess.run(["umount", "-l", m], stderr=subprocess.DEVNULL)
    shutil.rmtree(work, ignore_errors=True)


def median_ms(xs):
    return statistics.median(xs) * 1000


def timed_cpu(args, stdin=None):
    """(wall seconds, CPU seconds of the process: user + system)."""
    t = time.perf_counter()
    p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    p.stdin.write(stdin or b"")
    p.stdin.close()
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t
    if status != 0:
        raise RuntimeError(f"{args[0]} failed: {err.decode()[-400:]}")
    return dt, ru.ru_utime + ru.ru_stime


def timed(args, stdin=None):
    t = time.perf_counter()
    r = subprocess.run(args, input=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError(f"{args[0]} failed: {r.stderr.decode()[-400:]}")
    return dt


class Ocinet:
    def __init__(self, work):
        self.state = os.path.join(work, "state")
        self.config = os.path.join(work, "config")
        self.bundles = os.path.join(work, "bundles")

    def bundle(self, cid, netns, ports, network=None):
        b = os.path.join(self.bundles, cid)
        # An /etc for the resolv.conf of a network with DNS on.
        os.makedirs(os.path.join(b, "rootfs", "etc"), exist_ok=True)
        ann = {"io.ocinet.ports": ports} if ports else {}
        if network:
            ann["io.ocinet.network"] = network
        # No path: a namespace of the container's own, as runc and crun
        # make one (the hook finds it by the state's pid).
        ns = {"type": "network", "path": f"/run/netns/{netns}"} if netns else {"type": "network"}
        cfg = {"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "annotations": ann,
               "linux": {"namespaces": [ns]}}
        with open(os.path.join(b, "config.json"), "w") as f:
            json.dump(cfg, f)
        return b

    def hook(self, stage, cid, bundle, pid=None, cpu=False):
        used_ids.add(cid)
        state = {"ociVersion": "1.0", "id": cid, "status": "creating", "bundle": bundle}
        if pid is not None:
            state["pid"] = pid
        st = json.dumps(state).encode()
        args = [OCINET, "hook", stage, "--state-dir", self.state, "--config-dir", self.config]
        return timed_cpu(args, st) if cpu else timed(args, st)

    def cli(self, *args):
        return subprocess.run([OCINET, *args, "--state-dir", self.state, "--config-dir", self.config],
                              check=True, capture_output=True, text=True).stdout


class Fresh:
    """A stand-in for a runtime's container: a process in a network
    namespace of its own (config.json names no path, the state gives its
    pid), which has ended by poststop, as under runc and crun."""

    def __init__(self):
        own = os.readlink("/proc/self/ns/net")
        # A mount namespace of its own too, as a runtime's container has:
        # the hook mounts the container's resolv.conf there. (Sharing the
        # host's left one mount per container in the bench's namespace,
        # 10,000 of them after section 3b, slowing every later mount.)
        self.p = subprocess.Popen(["unshare", "-n", "-m", "--propagation", "private", "sleep", "600"])
        started.append(self.p)
        self.pid = self.p.pid
        for _ in range(1000):
            try:
                if os.readlink(f"/proc/{self.pid}/ns/net") != own and \
                        open(f"/proc/{self.pid}/comm").read().strip() == "sleep":
                    break
            except OSError:
                pass
            time.sleep(0.002)

    def end(self):
        self.p.kill()
        self.p.wait()


def netavark_opts(cid, ip, host_port, ports=1):
    return json.dumps({
        "container_id": cid, "container_name": "bench",
        "port_mappings": [{"host_ip": "", "container_port": 80, "host_port": host_port, "range": ports, "protocol": "tcp"}],
        "networks": {"podman": {"static_ips": [ip], "interface_name": "eth0"}},
        "network_info": {"podman": {
            "name": "podman", "id": "2f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9",
            "driver": "bridge", "network_interface": "podman0",
            "subnets": [{"subnet": "10.88.0.0/16", "gateway": "10.88.0.1"}],
            "ipv6_enabled": False, "internal": False, "dns_enabled": False,
            "ipam_options": {"driver": "host-local"}}}}).encode()


def reach_published(port):
    """One TCP connection attempt from the host namespace to a published
    port on 127.0.0.1: DNATed to the container (nothing listens there, so
    it ends in a reset), which leaves a conntrack entry for teardown."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(0.5)
    try:
        s.connect(("127.0.0.1", port))
    except OSError:
        pass
    finally:
        s.close()


# A hook timed by a small program of its own instead of by this Python
# process: a runtime can run it in the hook's place (section 1b), and the
# hook's peak RSS is its own (a child spawned from Python starts with
# Python's resident set as its `ru_maxrss`: the kernel keeps the larger of
# the image it replaced and its own). It runs PROG with stdio and
# environment passed on, timed from its spawn to the return of the wait,
# and appends "LABEL wall_us cpu_us maxrss_kib" to LOG.
TIMER_C = r"""
#include <spawn.h>
#include <stdio.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/wait.h>
extern char **environ;
int main(int argc, char **argv) {
    struct timespec a, b;
    struct rusage ru;
    pid_t p;
    int st;
    if (argc < 4) return 2;
    clock_gettime(CLOCK_MONOTONIC, &a);
    if (posix_spawn(&p, argv[3], NULL, NULL, argv + 3, environ) != 0) return 127;
    if (wait4(p, &st, 0, &ru) < 0) return 1;
    clock_gettime(CLOCK_MONOTONIC, &b);
    FILE *f = fopen(argv[1], "a");
    if (f) {
        fprintf(f, "%s %ld %ld %ld\n", argv[2],
                (long)((b.tv_sec - a.tv_sec) * 1000000 + (b.tv_nsec - a.tv_nsec) / 1000),
                (long)((ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec),
                ru.ru_maxrss);
        fclose(f);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}
"""
_timer = {}


def timer(work):
    """The timer's binary, built once per run (needs `cc`)."""
    if "path" not in _timer:
        path = os.path.join(work, "timer")
        with open(path + ".c", "w") as f:
            f.write(TIMER_C)
        subprocess.run(["cc", "-O2", "-o", path, path + ".c"], check=True)
        _timer["path"] = path
    return _timer["path"]


def read_timer_log(log):
    """{label: (wall_us, cpu_us, maxrss_kib)} from a timer's log, emptied."""
    with open(log) as f:
        got = {label: (int(w), int(c), int(r)) for label, w, c, r in (line.split() for line in f)}
    open(log, "w").close()
    return got


def timed_rss(work, args, stdin):
    """(wall seconds, peak RSS in KiB) of one process run through the timer."""
    log = os.path.join(work, "timer.log")
    p = subprocess.run([timer(work), log, "x", *args], input=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    got = read_timer_log(log).get("x")
    if p.returncode != 0 or got is None:
        raise RuntimeError(f"{args[0]} failed: {p.stderr.decode()[-400:]}")
    return got[0] / 1e6, got[2]


def bench_setup_teardown(work, n):
    """1. One container, one published port: ocinet hook vs netavark, on an
    idle host, on one tracking connections, and for a container that was
    reached through its published port (where ocinet's teardown walks the
    conntrack table for its entries; netavark leaves them)."""
    host = netns_add(f"{TAG}-h1")
    enter(host)
    oc = Ocinet(os.path.join(work, "s1"))
    nv_cfg = os.path.join(work, "netavark")
    conds = ("idle", "busy", "served")
    times = {(c, side, step): [] for c in conds for side in ("ocinet", "netavark") for step in ("setup", "teardown")}
    # One UDP flow over loopback in the host namespace: one tracked
    # connection, renewed before every teardown (UDP entries last 30 s).
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    flow = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(n):
        for cond in conds:
            for side in ("ocinet", "netavark"):
                if cond == "idle":
                    # The busy round's flow is still tracked (30 s): forget it.
                    subprocess.run(["conntrack", "-F"], stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
                ns = netns_add(f"{TAG}-c1-{side}-{cond}-{i}")
                cid = f"s{i:03d}{cond}{side}"
                if side == "ocinet":
                    c = Fresh()
                    b = oc.bundle(cid, None, "8080:80")
                    times[cond, side, "setup"].append(oc.hook("createRuntime", cid, b, pid=c.pid))
                    if cond != "idle":
                        flow.sendto(b"x", ("127.0.0.1", 9))
                    if cond == "served":
                        reach_published(8080)
                    c.end()
                    times[cond, side, "teardown"].append(oc.hook("poststop", cid, b))
                else:
                    opts = netavark_opts(cid.ljust(64, "0"), "10.88.0.14", 8080)
                    times[cond, side, "setup"].append(timed([NETAVARK, "--config", nv_cfg, "setup", f"/run/netns/{ns}"], opts))
                    if cond != "idle":
                        flow.sendto(b"x", ("127.0.0.1", 9))
                    if cond == "served":
                        reach_published(8080)
                    times[cond, side, "teardown"].append(timed([NETAVARK, "--config", nv_cfg, "teardown", f"/run/netns/{ns}"], opts))
    flow.close()

    def table(cond):
        t = lambda side, step: times[cond, side, step]
        cyc = lambda side: [a + b for a, b in zip(t(side, "setup"), t(side, "teardown"))]
        rows = [("setup", median_ms(t("ocinet", "setup")), median_ms(t("netavark", "setup"))),
                ("teardown", median_ms(t("ocinet", "teardown")), median_ms(t("netavark", "teardown"))),
                ("setup + teardown", median_ms(cyc("ocinet")), median_ms(cyc("netavark")))]
        md = [f"| | ocinet (median) | {NV} (median) | netavark / ocinet |", "|---|---|---|---|"]
        md += [f"| {name} | {o:.1f} ms | {v:.1f} ms | {v / o:.1f}x |" for name, o, v in rows]
        return rows, md
    idle, idle_md = table("idle")
    busy, busy_md = table("busy")
    served, served_md = table("served")
    md = [f"Each side {n} times per condition, alternating; each hook or netavark call timed as a whole process; one container, one published port (8080:80).", "",
          "Idle host (no connection tracked in the host namespace):", ""] + idle_md + [
          "", "Host tracking connections (one UDP flow over loopback, renewed before each teardown), container never reached through its port: ocinet's teardown looks its address up in `dnat_seen` and skips the conntrack walk.", ""] + busy_md + [
          "", f"Container reached through its published port before teardown (one TCP connection attempt from the host to 127.0.0.1:8080, plus the UDP flow): ocinet's teardown deletes the container's entries (whatever {NV} does about them is in its figure).", ""] + served_md
    md.append("")
    ratio = idle[2][2] / idle[2][1]
    busy_ratio = busy[2][2] / busy[2][1]
    served_ratio = served[2][2] / served[2][1]
    met = lambda ok: "met" if ok else "missed"
    md.append(f"Targets (issue 24): a cycle at least 15x {NV}'s on an idle host: {met(ratio >= 15)} ({ratio:.1f}x; "
              f"{busy_ratio:.1f}x on a host tracking connections); at least 10x for a container reached through its port: "
              f"{met(served_ratio >= 10)} ({served_ratio:.1f}x); setup under 3 ms: {met(idle[0][1] < 3)} ({idle[0][1]:.1f} ms); "
              f"teardown under 3 ms: {met(idle[1][1] < 3)} ({idle[1][1]:.1f} ms idle, {served[1][1]:.1f} ms reached).")
    results.append(("1. Setup and teardown: ocinet hook vs netavark", "\n".join(md)))


def fs_type(path):
    """The file system `path` is on, and for ext4 whether it has a journal:
    without one, the kernel's inode allocator skips every inode deleted in
    the last minutes one by one (`recently_deleted`), so file creation there
    slows down with recent deletions."""
    out = subprocess.run(["findmnt", "-no", "SOURCE,FSTYPE", "--target", path], capture_output=True, text=True).stdout.split()
    if len(out) < 2:
        return "?"
    source, fstype = out[0], out[1]
    if fstype == "ext4":
        try:
            with open(f"/sys/fs/ext4/{os.path.basename(source)}/journal_task") as f:
                if f.read().strip() == "<none>":
                    return "ext4, no journal"
        except OSError:
            pass
    return fstype


def scale_run(state_root, count, tag):
    """`count` setups one at a time, then their teardowns, in a fresh host
    namespace; returns (setup times, rule counts, teardown times)."""
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        enter(netns_add(f"{TAG}-h3{tag}"))
        oc = Ocinet(state_root)
        times, rules, downs = [], {}, []
        for i in range(count):
            cid = f"sc{tag}{i:05d}"
            # Its process ends right after setup: the hook's pin keeps the
            # namespace, as for a container that runs on.
            c = Fresh()
            b = oc.bundle(cid, None, f"{20000 + i}:80")
            times.append(oc.hook("createRuntime", cid, b, pid=c.pid))
            c.end()
            started.remove(c.p)
            if i + 1 in (1, 100, count):
                rules[i + 1] = int(oc.cli("firewall", "rules").strip())
        for i in range(count):
            cid = f"sc{tag}{i:05d}"
            downs.append(oc.hook("poststop", cid, os.path.join(oc.bundles, cid)))
        return times, rules, downs
    finally:
        if libc.setns(own, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns back")
        os.close(own)


def bench_scale(work, count):
    """3. `count` containers on one network, one at a time: with the state
    directory under this machine's /run, and on a tmpfs (what /run is on
    systemd hosts)."""
    run_fs = fs_type(work)
    tmp = os.path.join(work, "tmpfs")
    os.makedirs(tmp)
    sh("mount", "-t", "tmpfs", "-o", "mode=0700,size=256m", "ocinet-bench", tmp)
    try:
        variants = [(f"/run ({run_fs})", scale_run(os.path.join(work, "s3"), count, "d")),
                    ("tmpfs", scale_run(os.path.join(tmp, "s3"), count, "t"))]
    finally:
        sh("umount", tmp)
    md = [f"{count} containers, each publishing one port, set up one after another by the hook (release build), then torn down; "
          "once with the state directory under this machine's /run, once on a tmpfs (as /run is on systemd hosts).", "",
          "| state directory on | first 100 (median setup) | last 100 | last / first | teardown median, all |", "|---|---|---|---|---|"]
    ratios = []
    for name, (times, rules, downs) in variants:
        first, last = median_ms(times[:100]), median_ms(times[-100:])
        ratios.append(last / first)
        md.append(f"| {name} | {first:.1f} ms | {last:.1f} ms | {last / first:.2f}x | {median_ms(downs):.1f} ms |")
    best = min(ratios)
    md += ["", f"Target last / first within 1.25x: {'met' if max(ratios) <= 1.25 else 'missed'} "
           f"({ratios[0]:.2f}x with the state on /run, {ratios[1]:.2f}x on tmpfs).", "",
           "| containers | nftables rules in ocinet's tables |", "|---|---|"]
    rules = variants[0][1][1]
    md += [f"| {k} | {v} |" for k, v in sorted(rules.items())]
    md += ["", f"Rule count constant: {'yes' if len(set(rules.values())) == 1 else 'NO'}."]
    results.append((f"3. Scale: {count} containers on one network", "\n".join(md)))


def bench_growth_side_by_side(work, n):
    """3c. `n` containers on one bridge, the hook and netavark side by side
    (one setup of each in turn, each side in a host namespace of its own),
    then all torn down: how each side's setup grows with the ports on one
    bridge, the Linux bridge's share of section 3b's growth."""
    hosts = {side: netns_add(f"{TAG}-h3c{side[0]}") for side in ("ocinet", "netavark")}
    for h in hosts.values():
        enter(h)
        sh("ip", "link", "set", "lo", "up")
    oc = Ocinet(os.path.join(work, "s3c"))
    nv_cfg = os.path.join(work, "netavark3c")
    setups = {"ocinet": [], "netavark": []}
    teardowns = {"ocinet": [], "netavark": []}
    nv = []
    for i in range(n):
        enter(hosts["ocinet"])
        cid = f"g{i:04d}"
        used_ids.add(cid)
        c = Fresh()
        b = oc.bundle(cid, None, f"{20000 + i}:80")
        setups["ocinet"].append(oc.hook("createRuntime", cid, b, pid=c.pid))
        c.end()
        started.remove(c.p)
        enter(hosts["netavark"])
        ns = netns_add(f"{TAG}-c3c-{i}")
        opts = netavark_opts(f"g{i:04d}".ljust(64, "0"), f"10.88.{(i + 2) // 256}.{(i + 2) % 256}", 20000 + i)
        setups["netavark"].append(timed([NETAVARK, "--config", nv_cfg, "setup", f"/run/netns/{ns}"], opts))
        nv.append((ns, opts))
    enter(hosts["ocinet"])
    for i in range(n):
        teardowns["ocinet"].append(oc.hook("poststop", f"g{i:04d}", os.path.join(oc.bundles, f"g{i:04d}")))
    enter(hosts["netavark"])
    for ns, opts in nv:
        teardowns["netavark"].append(timed([NETAVARK, "--config", nv_cfg, "teardown", f"/run/netns/{ns}"], opts))
    k = max(1, n // 10)
    md = [f"{n:,} containers on one network (one Linux bridge, {n:,} ports), each publishing one port; one setup of each "
          f"side in turn, each side in a host namespace of its own, every container kept until all are set up, then all "
          f"torn down. First and last {k:,} setups, medians.", "",
          f"| | first {k:,} setups | last {k:,} setups | last / first | teardown (median, all) |", "|---|---|---|---|---|"]
    for side in ("ocinet", NV):
        xs = setups["ocinet" if side == "ocinet" else "netavark"]
        ys = teardowns["ocinet" if side == "ocinet" else "netavark"]
        first, last = median_ms(xs[:k]), median_ms(xs[-k:])
        md.append(f"| {side} | {first:.1f} ms | {last:.1f} ms | {last / first:.2f}x (+{last - first:.1f} ms) | {median_ms(ys):.1f} ms |")
    results.append((f"3c. Growth on one bridge: ocinet hook vs {NV}", "\n".join(md)))


def bench_concurrency(work, n=32):
    """4. n hooks at once."""
    host = netns_add(f"{TAG}-h4")
    enter(host)
    oc = Ocinet(os.path.join(work, "s4"))
    containers = [Fresh() for _ in range(n)]
    bundles = [oc.bundle(f"cc{i:03d}", None, f"{21000 + i}:80") for i in range(n)]
    errors = []

    def one(i):
        try:
            oc.hook("createRuntime", f"cc{i:03d}", bundles[i], pid=containers[i].pid)
        except Exception as e:  # noqa: BLE001 - counted, reported
            errors.append(str(e))

    t = time.perf_counter()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    total = time.perf_counter() - t
    eps = json.loads(oc.cli("ps", "--json"))
    ips = {e["ip"] for e in eps}
    for c in containers:
        c.end()
    t = time.perf_counter()
    threads = [threading.Thread(target=oc.hook, args=("poststop", f"cc{i:03d}", bundles[i])) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    down = time.perf_counter() - t
    md = [f"{n} setup hooks started at once (threads, one process each), then {n} teardowns at once.", "",
          "| | |", "|---|---|",
          f"| total wall time, {n} setups | {total * 1000:.0f} ms ({total * 1000 / n:.1f} ms per container) |",
          f"| total wall time, {n} teardowns | {down * 1000:.0f} ms |",
          f"| distinct addresses | {len(ips)} of {n} |",
          f"| errors | {len(errors)} |"]
    md += ["", f"Target (issue 24): {n} teardowns under 200 ms in all: {'met' if down < 0.2 else 'missed'}."]
    results.append((f"4. Concurrency: {n} hooks at once", "\n".join(md)))


def bench_scale_networks(work, nets, per_net, by_network=False):
    """3b. `nets` networks of `per_net` containers each, set up one at a
    time (round robin over the networks), then all torn down. 3d
    (`by_network`): the same, one network filled after the other, so the
    first and the last 1,000 setups see bridges of the same sizes and
    differ by what the other networks hold. Start either with the machine
    quiet for some minutes: right after another run of thousands of
    containers, the first 1,000 setups read 0.8-1.5 ms high."""
    key, tag = ("3d", "sd") if by_network else ("3b", "sn")
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        enter(netns_add(f"{TAG}-h{key}"))
        sh("ip", "link", "set", "lo", "up")
        oc = Ocinet(os.path.join(work, f"s{key}"))
        for k in range(nets):
            oc.cli("network", "create", f"n{k}", "--subnet", f"10.{100 + k}.0.0/16")
        total = nets * per_net
        # Peak RSS: of setups joining a network that has containers, and of
        # a network's first (which runs `nft -j -f -` for the network's
        # chains; the timer's wait4 counts the largest of the hook and the
        # children it waited for).
        times, rules, rss_of = [], {}, {False: [], True: []}
        # The hook's own CPU time (user + system, its syscalls' kernel work
        # included): apart from the wall time, what it did rather than what
        # it waited for or lost to other work on the machine.
        cpus, running = [], []
        t0 = time.perf_counter()
        for i in range(total):
            cid = f"{tag}{i:05d}"
            used_ids.add(cid)
            c = Fresh()
            b = oc.bundle(cid, None, f"{20000 + i}:80", network=f"n{i // per_net if by_network else i % nets}")
            st = {"ociVersion": "1.0", "id": cid, "status": "creating", "bundle": b, "pid": c.pid}
            args = [OCINET, "hook", "createRuntime", "--state-dir", oc.state, "--config-dir", oc.config]
            if i % 500 == 0 or i == total - 1:
                # Every 500th through the timer, for the hook's own peak RSS
                # (its wall time, from the spawn, stands in its place).
                wall, rss = timed_rss(work, args, json.dumps(st).encode())
                times.append(wall)
                rss_of[i % per_net == 0 if by_network else i < nets].append(rss)
            else:
                wall, cpu = timed_cpu(args, json.dumps(st).encode())
                times.append(wall)
                cpus.append((i, cpu))
            # Each network's first container keeps running, as a service
            # would: with every container's process gone, the resolver the
            # hooks start finds no live container, ends, and the next setup
            # starts it again, reading every record (a bench artifact, ~3 ms
            # a setup on average by the last network).
            if i % per_net == 0 if by_network else i < nets:
                running.append(c)
            else:
                c.end()
                started.remove(c.p)
            if i + 1 in (1, 1000, total):
                rules[i + 1] = int(oc.cli("firewall", "rules").strip())
        up_all = time.perf_counter() - t0
        state_kib = int(subprocess.run(["du", "-sk", oc.state], capture_output=True, text=True).stdout.split()[0])
        # Poststop comes after the container's process has gone.
        for c in running:
            c.end()
            started.remove(c.p)
        t0 = time.perf_counter()
        downs = [oc.hook("poststop", f"{tag}{i:05d}", os.path.join(oc.bundles, f"{tag}{i:05d}")) for i in range(total)]
        down_all = time.perf_counter() - t0
        left = json.loads(oc.cli("ps", "--json"))
        # The pins (/run/netns/ocinet-<id>) and anything mounted under the
        # bench's own directory (a resolv.conf mount that reached the host).
        pins = {f"/run/netns/ocinet-{tag}{i:05d}" for i in range(total)}
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f]
        # (A pin whose name was taken gets `-<hash>` after it.)
        mounts_left = sum(1 for m in points if "-".join(m.split("-")[:2]) in pins or m.startswith(work + "/"))
        # What the kernel still holds of them once the namespaces went.
        for _ in range(100):
            veths = subprocess.run(["ip", "-o", "link", "show", "type", "veth"], capture_output=True, text=True).stdout.count("\n")
            if veths == 0:
                break
            time.sleep(0.1)
        elements = 0
        for m in ("pub_any_addr", "pub_any_port"):
            out = subprocess.run(["nft", "-j", "list", "map", "inet", "ocinet", m], capture_output=True, text=True).stdout
            elements += sum(len(o["map"].get("elem", [])) for o in json.loads(out or "{}").get("nftables", []) if "map" in o)
    finally:
        if libc.setns(own, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns back")
        os.close(own)
    first, last = median_ms(times[:1000]), median_ms(times[-1000:])
    ratio = last / first
    cpu_first = median_ms([c for i, c in cpus if i < 1000])
    cpu_last = median_ms([c for i, c in cpus if i >= total - 1000])
    order = "one network after the other" if by_network else "round robin"
    md = [f"{total:,} containers over {nets} networks ({per_net:,} each, {order}), each publishing one port, set up one after "
          "another by the hook (release build, state under this machine's /run), each container's process ended after its setup "
          "(the pin keeps its namespace) but each network's first, kept running until the teardown as a service would be (so "
          "that the resolver the hooks start always has a live container to serve), then all torn down.", "",
          "| | |", "|---|---|",
          f"| first 1,000 setups (median) | {first:.1f} ms |",
          f"| last 1,000 setups (median) | {last:.1f} ms |",
          f"| last / first | {ratio:.2f}x |",
          f"| median of each successive 1,000 | {', '.join(f'{median_ms(times[k:k + 1000]):.1f}' for k in range(0, total, 1000))} ms |",
          f"| the hook's CPU time, user + system (median, first / last 1,000) | {cpu_first:.1f} / {cpu_last:.1f} ms "
          f"({cpu_last / cpu_first:.2f}x) |",
          f"| all setups | {up_all:.1f} s |",
          f"| teardown (median, all) | {median_ms(downs):.1f} ms |",
          f"| all teardowns | {down_all:.1f} s |",
          f"| hook's peak RSS (largest of {len(rss_of[False])} setups, one every 500 and the last, on a network with containers) "
          f"| {max(rss_of[False], default=0) / 1024:.1f} MiB |",
          f"| peak RSS of a network's first setup, its `nft -j -f -` included (largest of {len(rss_of[True])}) "
          f"| {max(rss_of[True], default=0) / 1024:.1f} MiB |",
          f"| state directory with {total:,} containers | {state_kib / 1024:.1f} MiB |",
          f"| records left after teardown | {len(left)} |",
          f"| veths left after teardown | {veths} |",
          f"| published-port elements left | {elements} |",
          f"| mounts left (pins, resolv.conf) | {mounts_left} |"]
    md += ["", "| containers | nftables rules in ocinet's tables |", "|---|---|"]
    md += [f"| {k:,} | {v} |" for k, v in sorted(rules.items())]
    md += ["", f"Targets (issue 24): last 1,000 within 1.25x of the first 1,000: {'met' if ratio <= 1.25 else 'missed'} ({ratio:.2f}x); "
           f"rules constant: {'yes' if len(set(rules.values())) == 1 else 'NO'}; nothing left: "
           f"{'yes' if not left and veths == 0 and elements == 0 and mounts_left == 0 else 'NO'}."]
    if by_network:
        md += ["", f"Each window's setups add ports to a bridge of 0 to {per_net:,} (network 1 for the first 1,000, network "
               f"{nets} for the last), so what the ratio measures is what the other {total - per_net:,} containers and {nets - 1} "
               "networks cost a setup; section 3b (round robin) adds the bridges' own growth, section 3c shows that part alone."]
        results.append((f"3d. Scale across networks, one network at a time: {total:,} containers over {nets} networks", "\n".join(md)))
    else:
        results.append((f"3b. Scale across networks: {total:,} containers over {nets} networks", "\n".join(md)))


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def curl_time(url):
    r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{time_total}", url], capture_output=True, text=True, check=True)
    return float(r.stdout)


def bench_exporter(work, count, scrapes=20):
    """5a. One scrape with `count` containers vs node_exporter's netdev."""
    host = netns_add(f"{TAG}-h5")
    enter(host)
    sh("ip", "link", "set", "lo", "up")
    oc = Ocinet(os.path.join(work, "s5"))
    names = [f"{TAG}-c5-{i}" for i in range(count)]
    subprocess.run(["ip", "-batch", "-"], input="".join(f"netns add {n}\n" for n in names).encode(), check=True)
    created_ns.extend(names)
    for i, ns in enumerate(names):
        cid = f"ex{i:05d}"
        oc.hook("createRuntime", cid, oc.bundle(cid, ns, None))
    node_version = subprocess.run(["prometheus-node-exporter", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    node_version = node_version.split(" (")[0].replace("node_exporter, version ", "") or "?"
    exp = subprocess.Popen([EXPORTER, "--web.listen-address", "127.0.0.1:19870", "--state-dir", oc.state, "--config-dir", oc.config,
                            "--no-collector.portmap"], stderr=subprocess.DEVNULL)
    started.append(exp)
    node = subprocess.Popen(["prometheus-node-exporter", "--web.listen-address=127.0.0.1:19100", "--collector.disable-defaults",
                             "--collector.netdev"], stderr=subprocess.DEVNULL)
    started.append(node)
    time.sleep(1.0)
    ot, nt = [], []
    for _ in range(scrapes):
        ot.append(curl_time("http://127.0.0.1:19870/metrics"))
        nt.append(curl_time("http://127.0.0.1:19100/metrics"))
    # Peak resident memory over the process's life, after all the scrapes.
    o_rss, n_rss = vm_hwm_kib(exp.pid), vm_hwm_kib(node.pid)
    body = subprocess.run(["curl", "-s", "http://127.0.0.1:19870/metrics"], capture_output=True, text=True).stdout
    series = body.count("ocinet_container_network_receive_bytes_total{")
    netdev = next((float(l.split()[-1]) for l in body.splitlines()
                   if l.startswith('ocinet_scrape_collector_duration_seconds{collector="netdev"}')), 0.0)
    for p in (exp, node):
        p.terminate()
        p.wait()
    for i in range(count):
        cid = f"ex{i:05d}"
        oc.hook("poststop", cid, os.path.join(oc.bundles, cid))
    o, n = median_ms(ot), median_ms(nt)
    speed_ok, rss_ok = n / o >= 2, o_rss < 20 * 1024
    md = [f"{count} containers ({series} series per counter); {scrapes} scrapes each, alternating, timed by curl on loopback. "
          f"node_exporter {node_version} (Debian's prometheus-node-exporter) runs only its netdev collector, in the same namespace, "
          f"so it reports the same veths. Reproduce: `scripts/build.sh && sudo python3 bench/run.py --only 5 --out -`.", "",
          "| | ocinet-exporter (netdev, conntrack, ipam, dns, attachments) | node_exporter (netdev only) | ratio |", "|---|---|---|---|",
          f"| scrape, median | {o:.1f} ms | {n:.1f} ms | node / ocinet = {n / o:.1f}x |",
          f"| peak RSS (VmHWM, after the scrapes) | {o_rss / 1024:.1f} MiB | {n_rss / 1024:.1f} MiB | node / ocinet = {n_rss / o_rss:.1f}x |", "",
          f"ocinet's netdev collector took {netdev * 1000:.1f} ms of the last scrape (`ocinet_scrape_collector_duration_seconds`).", "",
          f"Targets (issue 24): a scrape at least 2x faster than node_exporter's netdev: {'met' if speed_ok else 'missed'} ({n / o:.1f}x); "
          f"peak RSS under 20 MiB: {'met' if rss_ok else 'missed'} ({o_rss / 1024:.1f} MiB)."]
    results.append((f"5a. Exporter: one scrape with {count} containers vs node_exporter", "\n".join(md)))


def host_outside_container(n):
    """A host namespace (entered), an outside namespace joined to it by a
    veth (host 198.51.100.1, outside 198.51.100.2) and a container's."""
    host, out, ctr = netns_add(f"{TAG}-h{n}"), netns_add(f"{TAG}-o{n}"), netns_add(f"{TAG}-c{n}")
    enter(host)
    hv, ov = f"{TAG}h{n}", f"{TAG}o{n}"
    sh("ip", "link", "set", "lo", "up")
    sh("ip", "link", "add", hv, "type", "veth", "peer", "name", ov, "netns", out)
    sh("ip", "addr", "add", "198.51.100.1/24", "dev", hv)
    sh("ip", "link", "set", hv, "up")
    for a in (["link", "set", ov, "up"], ["link", "set", "lo", "up"], ["addr", "add", "198.51.100.2/24", "dev", ov]):
        sh("ip", "-n", out, *a)
    return out, ov, ctr


def bench_portmap(work, flows):
    """5b. The port-mapping collector with `flows` conntrack entries."""
    out, ov, ctr = host_outside_container(6)
    srcs = [f"198.51.100.{10 + k}" for k in range((flows + 49999) // 50000)]
    for s in srcs:
        sh("ip", "-n", out, "addr", "add", f"{s}/24", "dev", ov)
    oc = Ocinet(os.path.join(work, "s6"))
    oc.hook("createRuntime", "pm0", oc.bundle("pm0", ctr, "5353:53/udp"))
    # Send from the outside namespace: one datagram per source port makes one
    # conntrack entry each (unreplied UDP lives 30 s).
    code = ("import socket,sys\n"
            "srcs=sys.argv[1].split(','); n=int(sys.argv[2]); sent=0\n"
            "for s in srcs:\n"
            " for p in range(10000, 60000):\n"
            "  if sent>=n: break\n"
            "  k=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); k.bind((s,p)); k.sendto(b'x',('198.51.100.1',5353)); k.close(); sent+=1\n")
    t = time.perf_counter()
    sh("ip", "netns", "exec", out, "python3", "-c", code, ",".join(srcs), str(flows))
    made = time.perf_counter() - t
    exp = subprocess.Popen([EXPORTER, "--web.listen-address", "127.0.0.1:19871", "--state-dir", oc.state, "--config-dir", oc.config,
                            "--no-collector.netdev", "--no-collector.conntrack", "--no-collector.ipam"], stderr=subprocess.DEVNULL)
    started.append(exp)
    time.sleep(0.5)
    base_rss = vm_hwm_kib(exp.pid)
    body = subprocess.run(["curl", "-s", "http://127.0.0.1:19871/metrics"], capture_output=True, text=True).stdout
    durations = []
    for _ in range(3):
        body = subprocess.run(["curl", "-s", "http://127.0.0.1:19871/metrics"], capture_output=True, text=True).stdout
        for line in body.splitlines():
            if line.startswith('ocinet_scrape_collector_duration_seconds{collector="portmap"}'):
                durations.append(float(line.split()[-1]))
    counted = next((float(l.split()[-1]) for l in body.splitlines() if l.startswith("ocinet_port_mapping_connections{")), 0)
    entries = int(open("/proc/sys/net/netfilter/nf_conntrack_count").read())
    rss = vm_hwm_kib(exp.pid)
    exp.terminate()
    exp.wait()
    oc.hook("poststop", "pm0", os.path.join(oc.bundles, "pm0"))
    d = statistics.median(durations)
    md = [f"{entries} conntrack entries in the namespace ({flows} UDP flows to a published port, made in {made:.1f} s from an outside namespace); "
          "the exporter with only the portmap collector; duration from `ocinet_scrape_collector_duration_seconds`, median of 3.", "",
          "| | |", "|---|---|",
          f"| portmap collector, one scrape | {d * 1000:.0f} ms (target under 500 ms: {'met' if d < 0.5 else 'missed'}) |",
          f"| connections counted for the port | {counted:.0f} |",
          f"| exporter peak RSS (VmHWM) | {rss / 1024:.1f} MiB, {base_rss / 1024:.1f} MiB before the scrapes (target under 20 MiB: {'met' if rss < 20 * 1024 else 'missed'}) |"]
    results.append((f"5b. Port-mapping collector with {flows} conntrack entries", "\n".join(md)))


def iperf(client_ns, target, port, secs):
    r = subprocess.run(["ip", "netns", "exec", client_ns, "iperf3", "-c", target, "-p", str(port), "-t", str(secs), "-J"],
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout)["end"]["sum_received"]["bits_per_second"]


def bench_datapath(work, rounds, secs):
    """6. iperf3 through a published port vs straight to the container. The
    direct leg needs a network that lets a host routing its subnet in:
    gateway mode nat-unprotected (a nat network drops it)."""
    out, _, ctr = host_outside_container(7)
    sh("ip", "-n", out, "route", "add", "10.86.0.0/24", "via", "198.51.100.1")
    oc = Ocinet(os.path.join(work, "s7"))
    oc.cli("network", "create", "direct", "--subnet", "10.86.0.0/24", "--gateway-mode", "nat-unprotected")
    oc.hook("createRuntime", "dp0", oc.bundle("dp0", ctr, "15201:5201", network="direct"))
    ip = json.loads(oc.cli("ps", "--json"))[0]["ip"]
    srv = subprocess.Popen(["ip", "netns", "exec", ctr, "iperf3", "-s", "-p", "5201"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started.append(srv)
    time.sleep(0.5)
    via, direct = [], []
    for _ in range(rounds):
        via.append(iperf(out, "198.51.100.1", 15201, secs))
        direct.append(iperf(out, ip, 5201, secs))
    srv.terminate()
    srv.wait()
    oc.hook("poststop", "dp0", os.path.join(oc.bundles, "dp0"))
    v, d = statistics.median(via) / 1e9, statistics.median(direct) / 1e9
    md = [f"iperf3 TCP from the outside namespace, {secs} s per run, {rounds} runs each, alternating; the container on a "
          "`--gateway-mode nat-unprotected` network, which the outside namespace routes via the host (a `nat` network, the default, "
          "drops connections that did not come through a published port).", "",
          "| path | median throughput |", "|---|---|",
          f"| through the published port (DNAT) | {v:.2f} Gbit/s |", f"| straight to the container's address | {d:.2f} Gbit/s |",
          f"| published / direct | {100 * v / d:.0f}% (target at least 90%: {'met' if v / d >= 0.9 else 'missed'}) |"]
    results.append(("6. Data path: published port vs direct", "\n".join(md)))


def bench_ports(work, rounds):
    """8. One container publishing N ports (one range): ocinet's elements
    grow with N, netavark one rule per range."""
    host = netns_add(f"{TAG}-h8")
    enter(host)
    sh("ip", "link", "set", "lo", "up")
    oc = Ocinet(os.path.join(work, "s8"))
    nv_cfg = os.path.join(work, "netavark8")
    counts = (1, 64, 1024, 4096)
    sides = ("ocinet", "netavark")
    t = {(n, side, step): [] for n in counts for side in sides for step in ("setup", "teardown")}
    for i in range(rounds):
        for n in counts:
            for side in sides:
                ns = netns_add(f"{TAG}-c8-{side[0]}{n}-{i}")
                cid = f"pp{n}x{i}{side}"
                if side == "ocinet":
                    c = Fresh()
                    b = oc.bundle(cid, None, f"30000-{30000 + n - 1}:80-{80 + n - 1}")
                    t[n, side, "setup"].append(oc.hook("createRuntime", cid, b, pid=c.pid))
                    c.end()
                    t[n, side, "teardown"].append(oc.hook("poststop", cid, b))
                else:
                    opts = netavark_opts(cid.ljust(64, "0"), "10.88.0.14", 30000, n)
                    t[n, side, "setup"].append(timed([NETAVARK, "--config", nv_cfg, "setup", f"/run/netns/{ns}"], opts))
                    t[n, side, "teardown"].append(timed([NETAVARK, "--config", nv_cfg, "teardown", f"/run/netns/{ns}"], opts))
    m = lambda n, side, step: median_ms(t[n, side, step])
    cyc = lambda n, side: m(n, side, "setup") + m(n, side, "teardown")
    md = [f"One container publishing N ports as one range (`30000-…:80-…`), each side {rounds} times per N, alternating; "
          "each hook or netavark call timed as a whole process. ocinet adds two map elements per port in one nf_tables "
          f"transaction (one netlink message per set, however many elements); {NV} writes one rule for the whole range.", "",
          f"| ports | ocinet setup | ocinet teardown | {NV} setup | {NV} teardown | netavark / ocinet per cycle |",
          "|---|---|---|---|---|---|"]
    md += [f"| {n} | {m(n, 'ocinet', 'setup'):.1f} ms | {m(n, 'ocinet', 'teardown'):.1f} ms | {m(n, 'netavark', 'setup'):.1f} ms | "
           f"{m(n, 'netavark', 'teardown'):.1f} ms | {cyc(n, 'netavark') / cyc(n, 'ocinet'):.1f}x |" for n in counts]
    per = lambda step: (m(4096, "ocinet", step) - m(1, "ocinet", step)) / 4095 * 1000
    md += ["", f"Cost per port for ocinet, from 1 to 4,096: {per('setup'):.0f} µs per setup and {per('teardown'):.0f} µs per teardown "
           "(the two map elements in the batch and in the record, and a range's look-up of each of its ports for single claims; a range is one claim entry)."]
    results.append(("8. Many published ports per container", "\n".join(md)))


def bench_macvlan(work, n):
    """9. One container on a macvlan network: ocinet hook vs netavark's
    macvlan driver, same parent, same kind of subnet."""
    host, out = netns_add(f"{TAG}-h9"), netns_add(f"{TAG}-o9")
    enter(host)
    sh("ip", "link", "set", "lo", "up")
    parent = f"{TAG}mv"
    sh("ip", "link", "add", parent, "type", "veth", "peer", "name", f"{TAG}mo", "netns", out)
    sh("ip", "link", "set", parent, "up")
    sh("ip", "-n", out, "link", "set", f"{TAG}mo", "up")
    oc = Ocinet(os.path.join(work, "s9"))
    oc.cli("network", "create", "mvb", "--driver", "macvlan", "--parent", parent, "--subnet", "10.76.0.0/24", "--disable-dns")
    nv_cfg = os.path.join(work, "netavark9")
    t = {(side, step): [] for side in ("ocinet", "netavark") for step in ("setup", "teardown")}
    for i in range(n):
        for side in ("ocinet", "netavark"):
            ns = netns_add(f"{TAG}-c9-{side[0]}-{i}")
            cid = f"mv{i:03d}{side}"
            if side == "ocinet":
                c = Fresh()
                b = oc.bundle(cid, None, None, network="mvb")
                t[side, "setup"].append(oc.hook("createRuntime", cid, b, pid=c.pid))
                c.end()
                t[side, "teardown"].append(oc.hook("poststop", cid, b))
            else:
                opts = json.dumps({
                    "container_id": cid.ljust(64, "0"), "container_name": "bench", "port_mappings": [],
                    "networks": {"mvb": {"static_ips": ["10.77.0.14"], "interface_name": "eth0"}},
                    "network_info": {"mvb": {
                        "name": "mvb", "id": "3f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9",
                        "driver": "macvlan", "network_interface": parent,
                        "subnets": [{"subnet": "10.77.0.0/24", "gateway": "10.77.0.1"}],
                        "ipv6_enabled": False, "internal": False, "dns_enabled": False,
                        "ipam_options": {"driver": "host-local"}, "options": {"mode": "bridge"}}}}).encode()
                t[side, "setup"].append(timed([NETAVARK, "--config", nv_cfg, "setup", f"/run/netns/{ns}"], opts))
                t[side, "teardown"].append(timed([NETAVARK, "--config", nv_cfg, "teardown", f"/run/netns/{ns}"], opts))
    m = lambda side, step: median_ms(t[side, step])
    cyc = lambda side: m(side, "setup") + m(side, "teardown")
    rows = [("setup", m("ocinet", "setup"), m("netavark", "setup")),
            ("teardown", m("ocinet", "teardown"), m("netavark", "teardown")),
            ("setup + teardown", cyc("ocinet"), cyc("netavark"))]
    md = [f"Each side {n} times, alternating; each hook or netavark call timed as a whole process; one container on a "
          "macvlan network (mode bridge) over the same veth parent, no published ports (macvlan has none).", "",
          f"| | ocinet (median) | {NV} (median) | netavark / ocinet |", "|---|---|---|---|"]
    md += [f"| {name} | {o:.1f} ms | {v:.1f} ms | {v / o:.1f}x |" for name, o, v in rows]
    results.append(("9. macvlan: ocinet hook vs netavark", "\n".join(md)))


def netavark_two_opts(cid, host_port):
    """netavark's options for a container on two bridge networks, eth0
    and eth1, publishing one port (DNATed to eth0's address)."""
    net = lambda name, bridge, subnet, gw, nid: {
        "name": name, "id": nid * 64, "driver": "bridge", "network_interface": bridge,
        "subnets": [{"subnet": subnet, "gateway": gw}], "ipv6_enabled": False, "internal": False,
        "dns_enabled": False, "ipam_options": {"driver": "host-local"}}
    return json.dumps({
        "container_id": cid, "container_name": "bench",
        "port_mappings": [{"host_ip": "", "container_port": 80, "host_port": host_port, "range": 1, "protocol": "tcp"}],
        "networks": {"front": {"static_ips": ["10.66.0.14"], "interface_name": "eth0"},
                     "back": {"static_ips": ["10.67.0.14"], "interface_name": "eth1"}},
        "network_info": {"front": net("front", "nvfront0", "10.66.0.0/24", "10.66.0.1", "a"),
                         "back": net("back", "nvback0", "10.67.0.0/24", "10.67.0.1", "b")}}).encode()


def bench_two_networks(work, n):
    """10. One container on two bridge networks (eth0, eth1), one published
    port: ocinet hook vs netavark, with the one-network cycle of each
    beside it in the same run."""
    host = netns_add(f"{TAG}-h10")
    enter(host)
    sh("ip", "link", "set", "lo", "up")
    oc = Ocinet(os.path.join(work, "s10"))
    oc.cli("network", "create", "front", "--subnet", "10.64.0.0/24", "--disable-dns")
    oc.cli("network", "create", "back", "--subnet", "10.65.0.0/24", "--disable-dns")
    nv_cfg = os.path.join(work, "netavark10")
    kinds = ("one", "two")
    t = {(side, k, step): [] for side in ("ocinet", "netavark") for k in kinds for step in ("setup", "teardown")}
    for i in range(n):
        for k in kinds:
            for side in ("ocinet", "netavark"):
                ns = netns_add(f"{TAG}-c10-{side[0]}{k}-{i}")
                cid = f"tn{i:03d}{k}{side}"
                if side == "ocinet":
                    c = Fresh()
                    b = oc.bundle(cid, None, "8080:80", network="front" if k == "one" else "front,back")
                    t[side, k, "setup"].append(oc.hook("createRuntime", cid, b, pid=c.pid))
                    c.end()
                    t[side, k, "teardown"].append(oc.hook("poststop", cid, b))
                else:
                    opts = netavark_opts(cid.ljust(64, "0"), "10.88.0.14", 8080) if k == "one" \
                        else netavark_two_opts(cid.ljust(64, "0"), 8080)
                    t[side, k, "setup"].append(timed([NETAVARK, "--config", nv_cfg, "setup", f"/run/netns/{ns}"], opts))
                    t[side, k, "teardown"].append(timed([NETAVARK, "--config", nv_cfg, "teardown", f"/run/netns/{ns}"], opts))
    m = lambda side, k, step: median_ms(t[side, k, step])
    cyc = lambda side, k: median_ms([a + b for a, b in zip(t[side, k, "setup"], t[side, k, "teardown"])])
    md = [f"Each side {n} times per kind, alternating; each hook or netavark call timed as a whole process; "
          "one published port (8080:80), DNATed to eth0's address. `one`: eth0 on one bridge network; `two`: eth0 and "
          "eth1 on two (`io.ocinet.network=front,back`; netavark's options name both networks).", "",
          f"| | ocinet one | ocinet two | two / one | {NV} one | {NV} two | netavark / ocinet (two) |",
          "|---|---|---|---|---|---|---|"]
    for name, f in (("setup", lambda s, k: m(s, k, "setup")), ("teardown", lambda s, k: m(s, k, "teardown")),
                    ("setup + teardown", cyc)):
        o1, o2, v1, v2 = f("ocinet", "one"), f("ocinet", "two"), f("netavark", "one"), f("netavark", "two")
        md.append(f"| {name} | {o1:.1f} ms | {o2:.1f} ms | {o2 / o1:.2f}x | {v1:.1f} ms | {v2:.1f} ms | {v2 / o2:.1f}x |")
    results.append(("10. Two networks per container: ocinet hook vs netavark", "\n".join(md)))


DNS_CLIENT = r"""
import socket, struct, sys
# Correctness, before the load: each name asked once, over UDP; an answer
# is good when it is a NOERROR reply to that query with the address the
# name was given (dnsperf counts response codes, not what they carry).
server, pairs = sys.argv[1], [p.split("=") for p in sys.argv[2].split(",")]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.connect((server, 53))
bad = 0
for i, (name, ip) in enumerate(pairs):
    q = struct.pack(">HHHHHH", i, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0\0\1\0\1"
    s.send(q)
    try:
        r = s.recv(4096)
    except socket.timeout:
        bad += 1
        continue
    # Header, the question echoed, then one A record (its last 4 bytes).
    if r[:2] != q[:2] or r[3] & 15 != 0 or r[7] != 1 or socket.inet_ntoa(r[-4:]) != ip:
        bad += 1
print(bad)
"""


def cpu_ns(pid):
    """CPU time the process has run, over all its threads, in ns
    (schedstat's first field: exact, where stat's ticks are 10 ms)."""
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for l in f:
            if l.startswith("VmRSS:"):
                return int(l.split()[1])
    return 0


def proc_memory(pid):
    """VmRSS, VmHWM (the peak), RssAnon, RssFile and Threads of a process, in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for l in f:
            k, _, v = l.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
                out[k] = int(v.split()[0])
    return out


def dnsperf(ns, server, qfile, out, secs, rate=None, inflight=100):
    """One dnsperf run from the namespace `ns` (UDP, one client socket,
    `inflight` queries outstanding at most, `rate` a second if given):
    qps, lost, the latencies of each answer (from -v), response codes."""
    args = ["nsenter", f"--net=/run/netns/{ns}", "dnsperf", "-s", server, "-d", qfile, "-l", str(secs),
            "-q", str(inflight), "-t", "1", "-v"]
    if rate:
        args += ["-Q", str(rate)]
    with open(out, "w") as f:
        subprocess.run(args, stdout=f, stderr=subprocess.STDOUT, check=True)
    lat, codes, qps, lost = [], collections.Counter(), 0.0, 0
    with open(out) as f:
        for l in f:
            if l.startswith("> "):
                p = l.split()
                codes[p[1]] += 1
                if p[1] not in ("T", "I"):
                    lat.append(float(p[-1]))
            elif "Queries per second:" in l:
                qps = float(l.split(":")[1])
            elif "Queries lost:" in l:
                lost = int(l.split(":")[1].split()[0])
    os.unlink(out)
    lat.sort()
    pct = lambda p: lat[min(len(lat) - 1, int(len(lat) * p))] * 1000 if lat else float("inf")
    return {"qps": qps, "lost": lost, "p50": pct(0.5), "p99": pct(0.99), "p999": pct(0.999),
            "codes": codes, "n": len(lat)}


def aardvark_binary():
    """aardvark-dns: AARDVARK_DNS names it (the peer built for issue 24:
    AARDVARK_DNS=/work/peers/bin/aardvark-dns), else the first on PATH,
    in ~/.cargo/bin, or where podman's package puts it. With its version,
    as it says it."""
    for c in (os.environ.get("AARDVARK_DNS"), shutil.which("aardvark-dns"),
              os.path.expanduser("~/.cargo/bin/aardvark-dns"), "/usr/libexec/podman/aardvark-dns"):
        if c and os.access(c, os.X_OK):
            v = subprocess.run([c, "--version"], capture_output=True, text=True).stdout.split()
            return c, (v[-1] if v else "?")
    sys.exit("aardvark-dns not found: set AARDVARK_DNS (cargo install aardvark-dns --version 2.1.0 --locked)")


def bench_dns(work, count, secs, rounds):
    """11. Name resolution: ocinet's resolver vs aardvark-dns, the same
    `count` names, queried by dnsperf from a container's namespace; and
    what a DNS-enabled network adds to the hook's setup and teardown."""
    import random, re
    aardvark, av_version = aardvark_binary()
    peer = f"aardvark-dns {av_version}"
    host = netns_add(f"{TAG}-h11")
    enter(host)
    sh("ip", "link", "set", "lo", "up")
    oc = Ocinet(os.path.join(work, "s11"))
    oc.cli("network", "create", "named", "--subnet", "10.68.0.0/21", "--dns-upstream", "127.0.0.9",
           "--dns-rate-limit", "0")
    # The network without DNS, for what DNS adds to a setup, holds as many
    # containers (the same IPAM fill, the same number of records).
    oc.cli("network", "create", "plain", "--subnet", "10.70.0.0/21", "--disable-dns")
    names = [f"n{i}" for i in range(count)]
    fill = [(f"dn{i:05d}", "named", names[i]) for i in range(count)] + \
           [(f"pn{i:05d}", "plain", f"p{i}") for i in range(count)]
    nss = [f"{TAG}-c11-{cid}" for cid, _, _ in fill]
    subprocess.run(["ip", "-batch", "-"], input="".join(f"netns add {n}\n" for n in nss).encode(), check=True)
    created_ns.extend(nss)
    def start(i):
        (cid, net, name), ns = fill[i], nss[i]
        b = oc.bundle(cid, ns, None, network=net)
        cfg = json.load(open(os.path.join(b, "config.json")))
        cfg["annotations"]["io.ocinet.name"] = name
        json.dump(cfg, open(os.path.join(b, "config.json"), "w"))
        oc.hook("createRuntime", cid, b)
    # What DNS adds to a setup: the hook on a DNS-enabled network (the
    # resolver already running) against one without, with one container on
    # each network, then again with `count` on each.
    rootfs = os.path.join(work, "rootfs11")
    os.makedirs(os.path.join(rootfs, "etc"))
    cost_rounds = 20 if count < 1000 else 100
    def setup_cost(tag):
        t = collections.defaultdict(list)
        # Each "container" a process in a mount namespace of its own and a
        # root file system, so the DNS-enabled setup does all it does for a
        # real one (its resolv.conf generated and bind-mounted there).
        for i in range(cost_rounds):
            # Alternating which goes first, so neither always follows the
            # other's teardown.
            for kind, net in (("dns", "named"), ("plain", "plain"))[:: 1 if i % 2 else -1]:
                ns = netns_add(f"{TAG}-d11{tag}{kind}{i}")
                cid = f"dd{tag}{kind}{i:03d}"
                b = oc.bundle(cid, ns, None, network=net)
                cfg = json.load(open(os.path.join(b, "config.json")))
                cfg["root"] = {"path": rootfs}
                json.dump(cfg, open(os.path.join(b, "config.json"), "w"))
                proc = subprocess.Popen(["ip", "netns", "exec", ns, "unshare", "-m", "--propagation", "private",
                                         "sleep", "60"])
                started.append(proc)
                time.sleep(0.02)
                kids = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
                pid = int(kids[0]) if kids else proc.pid
                for step, stage in (("setup", "createRuntime"), ("teardown", "poststop")):
                    wall, cpu = oc.hook(stage, cid, b, pid if step == "setup" else None, cpu=True)
                    t[f"{kind} {step}"].append(wall)
                    t[f"{kind} {step} cpu"].append(cpu)
                proc.kill()
                proc.wait()
        return t
    start(0)
    start(count)
    costs = {1: setup_cost("a")}
    for i in range(len(fill)):
        if i not in (0, count):
            start(i)
    costs[count] = setup_cost("b")
    pid_file = os.path.join(oc.state, "dns", "resolver.json")
    oc_pid = json.load(open(pid_file))["pid"]
    # aardvark-dns on a bridge of its own, the client in a namespace on it,
    # the same names (the client's own address among them: aardvark answers
    # only containers it knows).
    sh("ip", "link", "add", "nvdns0", "type", "bridge")
    sh("ip", "addr", "add", "10.69.0.1/21", "dev", "nvdns0")
    sh("ip", "link", "set", "nvdns0", "up")
    cl = netns_add(f"{TAG}-cl11")
    sh("ip", "link", "add", f"{TAG}v", "type", "veth", "peer", "name", "eth0", "netns", cl)
    sh("ip", "link", "set", f"{TAG}v", "master", "nvdns0", "up")
    sh("ip", "-n", cl, "addr", "add", "10.69.0.2/21", "dev", "eth0")
    sh("ip", "-n", cl, "link", "set", "eth0", "up")
    sh("ip", "-n", cl, "link", "set", "lo", "up")
    adir = os.path.join(work, "aardvark")
    os.makedirs(adir)
    lines = ["10.69.0.1"]
    av_ips = {}
    for i, n in enumerate(names):
        ip = f"10.69.{(i + 2) // 256}.{(i + 2) % 256}"
        av_ips[n] = ip
        lines.append(f"{i:064x} {ip}  {n}")
    open(os.path.join(adir, "bench"), "w").write("\n".join(lines) + "\n")
    # One query file for both: every name once, A, in a shuffled order
    # (the same order for both), dnsperf going round it.
    rnd = random.Random(11)
    order = names[:]
    rnd.shuffle(order)
    qfile = os.path.join(work, "queries11")
    open(qfile, "w").write("".join(f"{n} A\n" for n in order))
    out = os.path.join(work, "dnsperf11.out")
    oc_ips = {}
    for cid, net, name in fill[:count]:
        rec = json.load(open(os.path.join(oc.state, "endpoints", f"{cid}.json")))
        oc_ips[name] = next(x.split("/")[0] for a in rec["attachments"] if a["network"] == net
                            for x in a["addresses"] if "." in x)
    sh(aardvark, "--config", adir, "-p", "53", "run")
    av_pid = int(open(os.path.join(adir, "aardvark.pid")).read().strip())
    sides = {"ocinet": (nss[0], "10.68.0.1", oc_pid, oc_ips), peer: (cl, "10.69.0.1", av_pid, av_ips)}
    # The offered rates: a ladder of steps of 1.2x; each side climbs it
    # until it falls short twice running (under 97% of the rate reached, or
    # queries lost): its p99 is recorded at every rate on the way, met
    # (under 1 ms) or not, so that both are compared at equal rates.
    ladder = [int(20000 * 1.2 ** k) // 1000 * 1000 for k in range(20)]
    mem, bad, peak, climb = {}, {}, collections.defaultdict(list), collections.defaultdict(dict)
    try:
        for side, (ns, server, pid, ips) in sides.items():
            mem[side + " idle"] = proc_memory(pid)
            bad[side] = int(subprocess.run(["nsenter", f"--net=/run/netns/{ns}", "python3", "-c", DNS_CLIENT, server,
                                            ",".join(f"{n}={ips[n]}" for n in names)],
                                           check=True, capture_output=True, text=True).stdout)
        for r in range(rounds):
            order_ = list(sides) if r % 2 == 0 else list(sides)[::-1]
            # At most throughput: dnsperf's own window (100 in flight), no
            # rate limit; with the resolver's CPU per query.
            for side in order_:
                ns, server, pid, _ = sides[side]
                before = cpu_ns(pid)
                res = dnsperf(ns, server, qfile, out, secs)
                res["cpu_us"] = (cpu_ns(pid) - before) / 1000 / max(res["n"], 1)
                peak[side].append(res)
            misses = {s: 0 for s in sides}
            for k, rate in enumerate(ladder):
                live = [s for s in (order_ if k % 2 == 0 else order_[::-1]) if misses[s] < 2]
                if not live:
                    break
                for side in live:
                    ns, server, pid, _ = sides[side]
                    res = dnsperf(ns, server, qfile, out, secs, rate=rate)
                    keeps_up = res["lost"] == 0 and res["qps"] >= 0.97 * rate
                    res["ok"] = keeps_up and res["p99"] < 1
                    climb[side].setdefault(rate, []).append(res)
                    misses[side] = 0 if keeps_up else misses[side] + 1
        for side, (_, _, pid, _) in sides.items():
            mem[side] = proc_memory(pid)
    finally:
        os.kill(av_pid, 15)
    for cid, _, _ in fill:
        oc.hook("poststop", cid, os.path.join(oc.bundles, cid))
    med = lambda xs: statistics.median(xs)
    # Each round's best rate met, per side; the median over rounds.
    def best(side):
        per_round = []
        for r in range(rounds):
            met = [rate for rate, rs in climb[side].items() if len(rs) > r and rs[r]["ok"]]
            per_round.append(max(met, default=0))
        return med(per_round), per_round
    v = re.search(r"Version (\S+)", subprocess.run(["dnsperf", "-h"], capture_output=True, text=True).stdout)
    dnsperf_version = v.group(1) if v else "?"
    md = [f"{count} names on one network, served by each resolver ({peer}: `{aardvark}`); the load generator is "
          f"Debian's dnsperf {dnsperf_version}"
          f" in a container's namespace on that network (for aardvark, a namespace on its bridge whose address is one "
          f"of its records: it answers only containers it knows), over UDP, A queries of the {count} names in one shuffled "
          f"order, the same file for both; {secs} s per run, {rounds} rounds, the sides alternating at every step; p50 and "
          "p99 from dnsperf -v (each answer's latency), medians over rounds. "
          "The resolvers and dnsperf share this machine's 2 cores.", "",
          f"Before the load, each name asked once and its answer checked (NOERROR, one A record, the name's address): "
          f"wrong or missing answers: ocinet {bad['ocinet']}, {peer} {bad[peer]}.", "",
          "At most throughput (no rate limit, 100 queries in flight):", "",
          f"| | ocinet | {peer} | ocinet / aardvark |", "|---|---|---|---|"]
    mp = lambda side, k: med([r[k] for r in peak[side]])
    o, a = mp("ocinet", "qps"), mp(peer, "qps")
    md.append(f"| queries per second | {o:.0f} | {a:.0f} | {o / a:.2f}x |")
    for k, name in (("p50", "p50 latency"), ("p99", "p99 latency"), ("p999", "p99.9 latency")):
        o, a = mp("ocinet", k), mp(peer, k)
        md.append(f"| {name} | {o:.3f} ms | {a:.3f} ms | {o / a:.2f}x |")
    o, a = mp("ocinet", "cpu_us"), mp(peer, "cpu_us")
    md.append(f"| resolver CPU per answer (all threads, schedstat) | {o:.2f} µs | {a:.2f} µs | {o / a:.2f}x |")
    lost = {s: sum(r["lost"] for r in peak[s]) for s in sides}
    md.append(f"| queries lost, all rounds | {lost['ocinet']} | {lost[peer]} | |")
    md += ["", "At a given rate (dnsperf -Q): the p99 latency of each side at each offered rate (median over the rounds "
           "that ran it; a side stops climbing once it falls short twice running: under 97% of the rate reached, or a "
           "query lost; ✗: p99 of 1 ms or more, or short of the rate; `-`: not run):", "",
           f"| offered qps | ocinet p99 | ocinet qps reached | {peer} p99 | {peer.split()[0]} qps reached |", "|---|---|---|---|---|"]
    cell = lambda side, rate, k, f: (f.format(med([r[k] for r in climb[side][rate]])) +
                                      ("" if all(r["ok"] for r in climb[side][rate]) else " ✗")) \
        if rate in climb[side] else "-"
    for rate in sorted(set(climb["ocinet"]) | set(climb[peer])):
        md.append(f"| {rate} | {cell('ocinet', rate, 'p99', '{:.3f} ms')} | {cell('ocinet', rate, 'qps', '{:.0f}')} | "
                  f"{cell(peer, rate, 'p99', '{:.3f} ms')} | {cell(peer, rate, 'qps', '{:.0f}')} |")
    (ob, obr), (ab, abr) = best("ocinet"), best(peer)
    md += ["", f"Highest offered rate met (p99 under 1 ms, nothing lost), per round: ocinet {obr}, {peer} {abr}; "
           f"medians {ob:.0f} against {ab:.0f} queries per second"
           f"{f' (**{ob / ab:.2f}x**)' if ab else ''}.", "",
           "Resident memory (/proc/PID/status), idle with the names loaded before the load, and after it "
           "(VmHWM: the peak over the process's life):", "",
           f"| | ocinet | {peer} | ocinet / aardvark |", "|---|---|---|---|"]
    for when, key, name in (("idle", "VmRSS", "VmRSS before the load"), ("", "VmRSS", "VmRSS after"),
                            ("", "VmHWM", "VmHWM (peak) after"), ("", "RssAnon", "of which anonymous"),
                            ("", "RssFile", "of which file pages (binary, libraries)")):
        o, a = mem["ocinet" + (" " + when if when else "")][key], mem[peer + (" " + when if when else "")][key]
        md.append(f"| {name} | {o / 1024:.1f} MiB | {a / 1024:.1f} MiB | {o / max(a, 1):.2f}x |")
    md.append(f"| threads | {mem['ocinet']['Threads']} | {mem[peer]['Threads']} | |")
    md += ["", f"What a DNS-enabled network adds to the hook ({cost_rounds} each, alternating, the resolver running; each container a process "
           "in a mount namespace of its own with a root file system, so the DNS side generates and bind-mounts its resolv.conf), "
           f"with one container on each network, then with {count} on each:", "",
           "Wall time, and the hook process's CPU time (user + system, from wait4: far less shaken by the other processes "
           "on these two cores):", "",
           "| containers per network | | DNS-enabled network | --disable-dns | difference | CPU: DNS | CPU: --disable-dns | CPU difference |",
           "|---|---|---|---|---|---|---|---|"]
    for n, t in costs.items():
        m = lambda k: median_ms(t[k])
        for step in ("setup", "teardown"):
            d, p = m('dns ' + step), m('plain ' + step)
            dc, pc = m(f'dns {step} cpu'), m(f'plain {step} cpu')
            md.append(f"| {n} | {step} | {d:.2f} ms | {p:.2f} ms | {d - p:+.2f} ms | {dc:.2f} ms | {pc:.2f} ms | {dc - pc:+.2f} ms |")
    m = lambda k: median_ms(costs[1][k])
    o_rss, a_rss = mem["ocinet"]["VmRSS"], mem[peer]["VmRSS"]
    o_hwm, a_hwm = mem["ocinet"]["VmHWM"], mem[peer]["VmHWM"]
    if ab:
        qps_verdict = f"{'met' if ob >= 1.5 * ab else 'missed'} ({ob / ab:.2f}x)"
    else:
        # aardvark's median is no rate at all: compared with its best round.
        top = max(abr)
        qps_verdict = (f"{'met' if ob and ob >= 1.5 * top else 'missed'} (ocinet {ob:.0f} queries per second; aardvark "
                       f"met no rate in most rounds, {top} in its best: "
                       f"{f'{ob / top:.2f}x' if top else 'no ratio'})")
    md += ["", f"Targets (issue 24, item 7): at least 1.5x aardvark's queries per second at p99 under 1 ms: {qps_verdict}; "
           f"resident memory no larger than aardvark's: "
           f"{'met' if o_rss <= a_rss else 'missed'} (VmRSS {o_rss / 1024:.1f} against {a_rss / 1024:.1f} MiB after the load; "
           f"peak {o_hwm / 1024:.1f} against {a_hwm / 1024:.1f} MiB). Earlier targets: DNS under 0.5 ms of setup: "
           f"{'met' if m('dns setup cpu') - m('plain setup cpu') < 0.5 else 'missed'} (CPU, one container per network: "
           f"{m('dns setup cpu') - m('plain setup cpu'):+.2f} ms; wall {m('dns setup') - m('plain setup'):+.2f} ms)."]
    results.append(("11. Name resolution: ocinet's resolver vs aardvark-dns", "\n".join(md)))


def bench_cni(work, n):
    """12. One container with one port mapping, ADD then DEL through CNI:
    ocinet's plugin against Debian's reference chain bridge + host-local +
    portmap, on the same subnet and port, each in a host namespace of its
    own, alternating; the plugins executed as libcni does (environment,
    stdin, prevResult)."""
    plugins = "/usr/lib/cni"
    bindir = os.path.join(work, "cni-bin")
    os.makedirs(bindir)
    os.symlink(OCINET, os.path.join(bindir, "ocinet"))
    path = f"{bindir}:{plugins}"
    hosts = {"ocinet": netns_add(f"{TAG}-h12o"), "reference": netns_add(f"{TAG}-h12r")}
    for h in hosts.values():
        sh("ip", "-n", h, "link", "set", "lo", "up")
    state = os.path.join(work, "s12")
    caps = {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}
    lists = {
        "ocinet": [{"type": "ocinet", "subnet": "10.95.0.0/24", "disableDns": True,
                    "stateDir": os.path.join(state, "state"), "configDir": os.path.join(state, "config"),
                    "capabilities": {"portMappings": True}}],
        "reference": [{"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": True,
                       "ipam": {"type": "host-local", "subnet": "10.95.0.0/24", "dataDir": os.path.join(work, "hl"),
                                "routes": [{"dst": "0.0.0.0/0"}]}},
                      {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}],
    }

    def request(entry, prev):
        conf = dict(entry, name="pods", cniVersion="1.0.0")
        if any(conf.get("capabilities", {}).get(k) for k in caps):
            conf["runtimeConfig"] = {k: v for k, v in caps.items() if conf["capabilities"].get(k)}
        if prev is not None:
            conf["prevResult"] = prev
        return json.dumps(conf).encode()

    def run(host, entry, verb, cid, netns, prev):
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": verb, "CNI_CONTAINERID": cid,
               "CNI_NETNS": netns, "CNI_IFNAME": "eth0", "CNI_ARGS": "", "CNI_PATH": path}
        exe = next(os.path.join(d, entry["type"]) for d in path.split(":") if os.path.exists(os.path.join(d, entry["type"])))
        r = subprocess.run(["nsenter", f"--net=/run/netns/{host}", exe], input=request(entry, prev), env=env,
                           capture_output=True)
        if r.returncode != 0:
            raise RuntimeError(f"{entry['type']} {verb}: {r.stdout.decode()[-300:]} {r.stderr.decode()[-300:]}")
        return json.loads(r.stdout) if r.stdout.strip() else None

    def cycle(side, i):
        pod = netns_add(f"{TAG}-p12{side[0]}{i}")
        cid = f"bench12{side[0]}{i:04d}"
        t0 = time.perf_counter()
        prev = None
        for e in lists[side]:
            prev = run(hosts[side], e, "ADD", cid, f"/run/netns/{pod}", prev)
        t1 = time.perf_counter()
        for e in reversed(lists[side]):
            run(hosts[side], e, "DEL", cid, f"/run/netns/{pod}", prev)
        t2 = time.perf_counter()
        sh("ip", "netns", "del", pod)
        created_ns.remove(pod)
        return t1 - t0, t2 - t1

    t = {(side, step): [] for side in lists for step in ("add", "del")}
    for side in lists:  # warm up: the bridge, the tables, page cache
        cycle(side, 9999)
    for i in range(n):
        for side in (lists if i % 2 else list(reversed(list(lists)))):
            a, d = cycle(side, i)
            t[side, "add"].append(a)
            t[side, "del"].append(d)
    m = lambda side, step: median_ms(t[side, step])
    cyc = lambda side: median_ms([a + d for a, d in zip(t[side, "add"], t[side, "del"])])
    md = [f"ADD then DEL of one container with one port mapping (8080:80/tcp), cniVersion 1.0.0, {n} cycles each, alternating; "
          "each side in a host namespace of its own on the same subnet (10.95.0.0/24), the plugins executed as libcni does. "
          "The reference chain is Debian's containernetworking-plugins 1.1.1: `bridge` (isGateway, ipMasq) with `host-local`, "
          "then `portmap` (snat; it drives iptables-nft).", "",
          "| | ocinet (CNI) | bridge + host-local + portmap | reference / ocinet |", "|---|---|---|---|"]
    for name, f in (("ADD", lambda s: m(s, "add")), ("DEL", lambda s: m(s, "del")), ("ADD + DEL", cyc)):
        o, r = f("ocinet"), f("reference")
        md.append(f"| {name} | {o:.1f} ms | {r:.1f} ms | {r / o:.1f}x |")
    ratio = cyc("reference") / cyc("ocinet")
    md += ["", f"Target: at least 10x faster per cycle: {'met' if ratio >= 10 else 'missed'} ({ratio:.1f}x)."]
    results.append(("12. CNI: ADD + DEL against the reference chain", "\n".join(md)))


def bench_runtimes(work, n, rootfs):
    """1b. The hook's setup and teardown timed inside real `runc run` and
    `crun run` cycles: what a container start really costs, with whatever
    the runtime does around the hook (runc and crun bring the container's
    `lo` up themselves before createRuntime)."""
    host = netns_add(f"{TAG}-h1b")
    enter(host)
    sh("ip", "link", "set", "lo", "up")
    d = os.path.join(work, "s1b")
    os.makedirs(d)
    oc = Ocinet(d)
    log = os.path.join(d, "times")
    hook = lambda stage, label: {"path": timer(work), "args": ["timer", log, label, OCINET, "hook", stage,
                                                        "--state-dir", oc.state, "--config-dir", oc.config]}
    bundle = os.path.join(d, "bundle")
    os.makedirs(bundle)
    cfg = {
        "ociVersion": "1.0.2",
        "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": ["/bin/true"], "env": ["PATH=/bin"], "cwd": "/"},
        "root": {"path": rootfs, "readonly": True},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                   {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755", "size=1024k"]}],
        "annotations": {"io.ocinet.ports": "8080:80"},
        "hooks": {"createRuntime": [hook("createRuntime", "setup")], "poststop": [hook("poststop", "teardown")]},
        "linux": {"namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount", "network")]},
    }
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(cfg, f)
    runtimes = {
        "runc": ["runc", "--root", os.path.join(d, "runc")],
        # crun needs this machine's cgroup v2 mount out of sight (ENVIRONMENT.md).
        "crun": ["unshare", "-m", "--propagation", "private", "sh", "-c",
                 'umount /sys/fs/cgroup/unified 2>/dev/null; exec crun "$@"', "crun", "--root", os.path.join(d, "crun")],
    }
    times = {(rt, step): [] for rt in runtimes for step in ("setup", "teardown", "run")}
    for i in range(n + 1):
        for rt, cmd in runtimes.items():
            cid = f"r{i:03d}{rt}"
            used_ids.add(cid)
            open(log, "w").close()
            t = time.perf_counter()
            r = subprocess.run([*cmd, "run", "--bundle", bundle, cid], stdin=subprocess.DEVNULL, capture_output=True)
            wall = time.perf_counter() - t
            if r.returncode != 0:
                raise RuntimeError(f"{rt} run: {r.stderr.decode()[-400:]}")
            got = read_timer_log(log)
            if set(got) != {"setup", "teardown"}:
                raise RuntimeError(f"{rt} run: the hook ran {sorted(got)}")
            if i:  # the first of each warms the page cache
                for step in ("setup", "teardown"):
                    times[rt, step].append(got[step])
                times[rt, "run"].append(wall)
    med = lambda xs, k: statistics.median(x[k] for x in xs) / 1000
    md = [f"`runc run` and `crun run` of a busybox `true` with the hook at createRuntime and poststop, one published port "
          f"(8080:80), {n} runs each, alternating. The runtime runs a small timer in the hook's place, which runs the hook "
          f"(stdio and environment passed on) and times it as a whole process, from its spawn to the return of the wait; "
          f"its own start is outside the figure.", "",
          "| runtime | setup (median) | its CPU | teardown (median) | its CPU | hook's peak RSS (largest) | whole `run` (median) |",
          "|---|---|---|---|---|---|---|"]
    for rt in runtimes:
        rss = max(x[2] for step in ("setup", "teardown") for x in times[rt, step])
        md.append(f"| {rt} | {med(times[rt, 'setup'], 0):.1f} ms | {med(times[rt, 'setup'], 1):.1f} ms "
                  f"| {med(times[rt, 'teardown'], 0):.1f} ms | {med(times[rt, 'teardown'], 1):.1f} ms "
                  f"| {rss / 1024:.1f} MiB | {median_ms(times[rt, 'run']):.0f} ms |")
    worst = max(med(times[rt, "setup"], 0) for rt in runtimes)
    md += ["", f"Target (issue 24), setup under 3 ms as a whole process, as the runtimes run the hook: "
           f"{'met' if worst < 3 else 'missed'} ({worst:.2f} ms, the slower runtime's median)."]
    results.append(("1b. The hook as runc and crun run it", "\n".join(md)))


def podman_cmd(work, *args):
    p = os.path.join(work, "podman")
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", 'umount /sys/fs/cgroup/unified 2>/dev/null; exec podman "$@"', "podman",
            "--root", f"{p}/root", "--runroot", f"{p}/runroot", "--tmpdir", f"{p}/tmp", "--runtime", "crun",
            "--cgroup-manager", "cgroupfs", "--events-backend", "none", *args]


def bench_podman(work, n, rootfs):
    """2. Whole `podman run --rm`: netavark -p vs --network none + ocinet hook vs none."""
    host = netns_add(f"{TAG}-h2")
    enter(host)
    sh("ip", "link", "set", "lo", "up")
    oc = Ocinet(os.path.join(work, "s2"))
    hooks = os.path.join(work, "hooks.d")
    subprocess.run([OCINET, "install-podman-hook", "--hooks-dir", hooks, "--state-dir", oc.state, "--config-dir", oc.config],
                   check=True, capture_output=True)
    common = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--rootfs", rootfs, "true"]
    backend = subprocess.run(podman_cmd(work, "info", "--format", "{{.Host.NetworkBackend}}"),
                             capture_output=True, text=True).stdout.strip() or "podman's own"
    variants = {
        f"{backend} (-p 8080:80)": ["run", "--rm", "-p", "8080:80", *common],
        "ocinet hook (--network none, io.ocinet.ports=8080:80)": ["--hooks-dir", hooks, "run", "--rm", "--network", "none",
                                                                  "--annotation", "io.ocinet.ports=8080:80", *common],
        "--network none, no networking (floor)": ["run", "--rm", "--network", "none", *common],
    }
    subprocess.run(podman_cmd(work, "run", "--rm", "--network", "none", *common), check=True, capture_output=True)
    times = {k: [] for k in variants}
    for _ in range(n):
        for k, args in variants.items():
            times[k].append(timed(podman_cmd(work, *args)))
    floor = median_ms(times["--network none, no networking (floor)"])
    md = [f"`podman run --rm` of a busybox `true`, crun, {n} runs each, alternating (private mount namespace and lowered ulimits, as ENVIRONMENT.md requires).", "",
          "| variant | median wall time | networking cost over the floor |", "|---|---|---|"]
    for k, v in times.items():
        m = median_ms(v)
        md.append(f"| {k} | {m:.0f} ms | {m - floor:+.0f} ms |")
    hook = median_ms(times["ocinet hook (--network none, io.ocinet.ports=8080:80)"])
    md += ["", f"Target (issue 24): with the hook and a published port within 10% of `--network none`: "
           f"{'met' if hook <= floor * 1.1 else 'missed'} ({(hook / floor - 1) * 100:+.0f}%). The peer row is the network backend "
           f"this podman really uses (`podman info`: {backend})."]
    results.append(("2. Whole podman run --rm", "\n".join(md)))


def main():
    global NETAVARK, NV
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller counts, for a smoke run")
    ap.add_argument("--only", default="1,1b,2,3,4,5,6,8,9,10,11,12")
    ap.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    ap.add_argument("--netavark", default=NETAVARK, help="the netavark binary sections 1, 8, 9 and 10 compare with")
    a = ap.parse_args()
    NETAVARK = a.netavark
    version = subprocess.run([NETAVARK, "--version"], capture_output=True, text=True).stdout.split() \
        if os.path.exists(NETAVARK) else []
    NV = "netavark " + ".".join(version[-1].split(".")[:2]) if version else "netavark"
    only = set(a.only.split(","))
    q = a.quick
    for b in (OCINET, EXPORTER):
        if not os.path.exists(b):
            sys.exit(f"{b} missing: run `scripts/build.sh` first")
    if os.geteuid() != 0:
        sys.exit("run as root")
    # State under /run, where the hook keeps it by default (/run/ocinet): tmpfs
    # on most systems, the root disk (ext4) on these machines.
    work = tempfile.mkdtemp(prefix="ocinet-bench-", dir="/run" if os.path.isdir("/run") else None)
    rootfs = os.path.join(work, "rootfs")
    os.makedirs(os.path.join(rootfs, "bin"))
    for d in ("proc", "sys", "dev", "tmp", "etc"):
        os.makedirs(os.path.join(rootfs, d))
    shutil.copy("/bin/busybox", os.path.join(rootfs, "bin/busybox"))
    for app in ("sh", "true", "ip"):
        os.symlink("busybox", os.path.join(rootfs, "bin", app))
    # Each section enters a fresh host namespace; children inherit it.
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        sections = [
            ("1", lambda: bench_setup_teardown(work, 5 if q else 20)),
            ("1b", lambda: bench_runtimes(work, 5 if q else 20, rootfs)),
            ("2", lambda: bench_podman(work, 3 if q else 20, rootfs)),
            ("3", lambda: bench_scale(work, 150 if q else 1000)),
            ("3b", lambda: bench_scale_networks(work, 10, 100 if q else 1000)),
            ("3c", lambda: bench_growth_side_by_side(work, 100 if q else 1000)),
            ("3d", lambda: bench_scale_networks(work, 10, 100 if q else 1000, by_network=True)),
            ("4", lambda: bench_concurrency(work, 32)),
            ("5", lambda: (bench_exporter(work, 100 if q else 1000), bench_portmap(work, 5000 if q else 100000))),
            ("6", lambda: bench_datapath(work, 1 if q else 5, 2 if q else 5)),
            ("8", lambda: bench_ports(work, 2 if q else 5)),
            ("9", lambda: bench_macvlan(work, 5 if q else 20)),
            ("10", lambda: bench_two_networks(work, 5 if q else 20)),
            ("11", lambda: bench_dns(work, 200 if q else 1000, 1 if q else 2, 1 if q else 3)),
            ("12", lambda: bench_cni(work, 5 if q else 30)),
        ]
        for key, fn in sections:
            if key in only:
                print(f"== section {key}", file=sys.stderr, flush=True)
                fn()
                libc.setns(own, CLONE_NEWNET)
    finally:
        libc.setns(own, CLONE_NEWNET)
        clean_up(work, used_ids)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    head = [f"Machine: {os.cpu_count()} cores ({cpu}), {round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB, "
            f"kernel {platform.release()}; date {datetime.date.today()}; ocinet release build. "
            f"Reproduce: `scripts/build.sh && sudo python3 bench/run.py{' --quick' if q else ''}`."]
    text = "\n\n".join(head + [f"## {t}\n\n{m}" for t, m in results])
    # The soak (bench/soak.py, minutes of runc cycles) keeps its own figures.
    soak = os.path.join(ROOT, "bench/SOAK.md")
    if os.path.exists(soak) and not q:
        with open(soak) as f:
            text += "\n\n" + f.read().strip()
    analysis = os.path.join(ROOT, "bench/ANALYSIS.md")
    if os.path.exists(analysis) and not q and only == set("123456") | {"1b", "8", "9", "10", "11", "12"}:
        with open(analysis) as f:
            text += "\n\n" + f.read().strip()
    print(text)
    if a.out != "-":
        with open(a.out, "w") as f:
            f.write("# Benchmarks\n\n" + text + "\n")


if __name__ == "__main__":
    main()
