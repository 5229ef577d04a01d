#!/usr/bin/env python3
"""Two builds of the hook side by side, to tell a regression from this
machine's drift between runs: setup and teardown of one container with one
published port, alternating, each build in a throwaway host namespace of
its own (their table layouts may differ), state on a tmpfs (so the root
file system's state does not weigh in). Run as root:

    sudo python3 bench/compare.py OLD_OCINET NEW_OCINET [ROUNDS]

e.g. with the previous release built by `git worktree add /tmp/old REV &&
(cd /tmp/old && CARGO_TARGET_DIR=/tmp/old-target scripts/build.sh)`.
"""
import json, os, shutil, statistics, subprocess, sys, tempfile, time
if len(sys.argv) < 3:
    sys.exit(__doc__)
BINS = {"old": sys.argv[1], "new": sys.argv[2]}
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 30
work = tempfile.mkdtemp(prefix="cmp-", dir="/dev/shm")
made = []
def ns(name):
    subprocess.run(["ip", "netns", "add", name], check=True); made.append(name); return name
t = {(k, s): [] for k in BINS for s in ("setup", "teardown")}
# CPU time (user + system) of the process: nsenter execs the hook, so it is
# the hook's own, and far less shaken by the other processes of this
# 2-core machine than the wall time.
cpu = {(k, s): [] for k in BINS for s in ("setup", "teardown")}
try:
    hosts = {k: ns(f"cmph{k}{os.getpid()}") for k in BINS}
    for k, h in hosts.items():
        subprocess.run(["ip", "-n", h, "link", "set", "lo", "up"], check=True)
    for i in range(ROUNDS):
        for k, b in BINS.items():
            c = ns(f"cmpc{k}{i}-{os.getpid()}")
            bd = os.path.join(work, k, f"b{i}"); os.makedirs(bd)
            json.dump({"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "annotations": {"io.ocinet.ports": "8080:80"},
                       "linux": {"namespaces": [{"type": "network", "path": f"/run/netns/{c}"}]}}, open(os.path.join(bd, "config.json"), "w"))
            st = json.dumps({"ociVersion": "1.0", "id": f"cmp{i}", "status": "creating", "bundle": bd}).encode()
            args = lambda stage: ["nsenter", f"--net=/run/netns/{hosts[k]}", b, "hook", stage, "--state-dir", os.path.join(work, k, "s"), "--config-dir", os.path.join(work, k, "c")]
            for stage, key in (("createRuntime", "setup"), ("poststop", "teardown")):
                s = time.perf_counter()
                p = subprocess.Popen(args(stage), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
                p.stdin.write(st); p.stdin.close()
                _, status, ru = os.wait4(p.pid, 0)
                t[k, key].append(time.perf_counter() - s)
                if status: raise SystemExit(f"{b} {stage} failed")
                cpu[k, key].append(ru.ru_utime + ru.ru_stime)
            subprocess.run(["ip", "netns", "del", c], check=True); made.remove(c)
    for s in ("setup", "teardown"):
        o, n = statistics.median(t["old", s][1:]) * 1000, statistics.median(t["new", s][1:]) * 1000
        print(f"{s}: old {o:.2f} ms, new {n:.2f} ms, new/old {n / o:.2f} (medians of {ROUNDS - 1}, first round left out)")
        o, n = statistics.median(cpu["old", s][1:]) * 1000, statistics.median(cpu["new", s][1:]) * 1000
        print(f"{s} CPU: old {o:.2f} ms, new {n:.2f} ms, new/old {n / o:.2f}")
finally:
    for n in made: subprocess.run(["ip", "netns", "del", n])
    shutil.rmtree(work, ignore_errors=True)
