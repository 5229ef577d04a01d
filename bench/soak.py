#!/usr/bin/env python3
"""Soak: N start/stop cycles of a real runc container networked by the
ocinet hook (release build), each publishing 8080:80 and answering one HTTP
request through it from an outside namespace; then count everything a leak
would leave. Runs in throwaway namespaces it deletes (the network rule).

    scripts/build.sh && sudo python3 bench/soak.py [--cycles 2000]

Writes bench/SOAK.md, which bench/run.py puts into BENCHMARKS.md, and
patches the soak section of BENCHMARKS.md in place. Not part of CI.
"""
import argparse, datetime, json, os, platform, re, shutil, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as bench  # noqa: E402  (helpers: namespaces, setns, binaries)

ROOT = bench.ROOT
SOAK_MD = os.path.join(ROOT, "bench/SOAK.md")
START, END = "<!-- soak -->", "<!-- /soak -->"
HOST_VETH = re.compile(r'"oc[0-9a-f]{12}"')


def rootfs(work):
    r = os.path.join(work, "rootfs")
    for d in ("bin", "proc", "sys", "dev", "tmp", "etc", "www"):
        os.makedirs(os.path.join(r, d))
    shutil.copy("/bin/busybox", os.path.join(r, "bin/busybox"))
    for app in ("sh", "httpd"):
        os.symlink("busybox", os.path.join(r, "bin", app))
    with open(os.path.join(r, "www/index.html"), "w") as f:
        f.write("soak\n")
    return r


def bundle(work, root, state, config):
    b = os.path.join(work, "bundle")
    os.makedirs(b)
    hook = lambda stage: {"path": bench.OCINET, "args": ["ocinet", "hook", stage, "--state-dir", state, "--config-dir", config]}
    caps = ["CAP_NET_BIND_SERVICE", "CAP_KILL"]
    cfg = {
        "ociVersion": "1.0.2",
        "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": ["httpd", "-f", "-p", "80", "-h", "/www"],
                    "env": ["PATH=/bin"], "cwd": "/", "noNewPrivileges": True,
                    "capabilities": {"bounding": caps, "effective": caps, "permitted": caps}},
        "root": {"path": root, "readonly": True},
        "hostname": "soak",
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                   {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755", "size=1024k"]}],
        "annotations": {"io.ocinet.ports": "8080:80"},
        "hooks": {"createRuntime": [hook("createRuntime")], "poststop": [hook("poststop")]},
        "linux": {"namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount", "network")]},
    }
    with open(os.path.join(b, "config.json"), "w") as f:
        json.dump(cfg, f)
    return b


def count_lines(args):
    r = subprocess.run(args, capture_output=True, text=True)
    return len([l for l in r.stdout.splitlines() if l.strip()])


def snapshot(state, host_link):
    """Everything a cycle could leak, in the host namespace this process is in."""
    veths = [l for l in subprocess.run(["ip", "-o", "link", "show", "type", "veth"], capture_output=True, text=True).stdout.splitlines()
             if f": {host_link}@" not in l]
    # Leases and port claims are one symlink each (ipam/<network>/<address>,
    # ports/<proto>-<port>[.d/<address>]).
    leases = claims = 0
    for root, _, files in os.walk(os.path.join(state, "ipam")):
        leases += sum(1 for f in files if os.path.islink(os.path.join(root, f)))
    for root, _, files in os.walk(os.path.join(state, "ports")):
        claims += sum(1 for f in files if os.path.islink(os.path.join(root, f)))
    ruleset = json.loads(subprocess.run(["nft", "-j", "list", "ruleset"], capture_output=True, text=True).stdout or "{}")
    elements = 0
    for o in ruleset.get("nftables", []):
        s = o.get("set") or o.get("map")
        if s and s.get("table") == "ocinet":
            # Per-container elements: published ports and port guards.
            elements += sum(1 for e in s.get("elem", []) if "8080" in json.dumps(e) or HOST_VETH.search(json.dumps(e)))
    conntrack = count_lines(["conntrack", "-L", "-p", "tcp", "--orig-port-dst", "8080"]) + \
        count_lines(["conntrack", "-L", "-p", "tcp", "--reply-port-src", "80"])
    with open("/proc/self/mountinfo") as f:
        mounts = sum(1 for l in f if "/run/netns/ocinet-soak" in l)
    eps = os.path.join(state, "endpoints")
    records = len(os.listdir(eps)) if os.path.isdir(eps) else 0
    with open("/proc/sys/fs/file-nr") as f:
        fds = int(f.read().split()[0])
    return {"veths": len(veths), "leases": leases, "port claims": claims, "nftables elements": elements, "conntrack entries": conntrack,
            "netns bind mounts": mounts, "endpoint records": records, "open files (system)": fds}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=2000)
    a = ap.parse_args()
    if not os.path.exists(bench.OCINET):
        sys.exit("run `scripts/build.sh` first")
    work = tempfile.mkdtemp(prefix="ocinet-soak-", dir="/run")
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    state, config = os.path.join(work, "state"), os.path.join(work, "config")
    cycle_s, failures = [], []
    try:
        out, _ov, _ctr = bench.host_outside_container("soak")
        host_link = f"{bench.TAG}hsoak"
        b = bundle(work, rootfs(work), state, config)
        errlog = os.path.join(work, "runc.err")
        before = snapshot(state, host_link)
        for i in range(a.cycles):
            cid = f"soak{i}"
            t = time.perf_counter()
            # The detached container inherits runc's stdio: a pipe would
            # keep this call waiting for as long as the container runs.
            with open(errlog, "w+b") as err:
                r = subprocess.run(["runc", "run", "--detach", "--bundle", b, cid], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=err)
                err.seek(0)
                runc_err = err.read().decode(errors="replace")[-300:]
            if r.returncode != 0:
                failures.append(f"cycle {i}: runc run: {runc_err}")
            else:
                got = ""
                for _ in range(40):  # httpd starts right after the hook
                    w = subprocess.run(["nsenter", f"--net=/run/netns/{out}", "timeout", "3", "busybox", "wget", "-q", "-O", "-",
                                        "http://198.51.100.1:8080/"], capture_output=True, text=True)
                    got = w.stdout
                    if w.returncode == 0:
                        break
                    time.sleep(0.025)
                if got.strip() != "soak":
                    failures.append(f"cycle {i}: published port did not answer")
            subprocess.run(["runc", "kill", cid, "KILL"], capture_output=True)
            r = subprocess.run(["runc", "delete", "--force", cid], capture_output=True)
            if r.returncode != 0:
                failures.append(f"cycle {i}: runc delete: {r.stderr.decode()[-300:]}")
            cycle_s.append(time.perf_counter() - t)
            if (i + 1) % 100 == 0:
                print(f"{i + 1} cycles, last 100 median {bench.median_ms(cycle_s[-100:]):.0f} ms, {len(failures)} failures",
                      file=sys.stderr, flush=True)
        time.sleep(1)
        after = snapshot(state, host_link)
    finally:
        # The cycle in flight, if interrupted.
        subprocess.run(["runc", "delete", "--force", f"soak{len(cycle_s)}"], capture_output=True)
        bench.libc.setns(own, bench.CLONE_NEWNET)
        subprocess.run(["ip", "-force", "-batch", "-"], input="".join(f"netns del {n}\n" for n in bench.created_ns).encode(),
                       stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)
    n = len(cycle_s)
    first, last = bench.median_ms(cycle_s[:100]), bench.median_ms(cycle_s[-100:])
    md = [START, "## 7. Soak: start/stop cycles with runc", "",
          f"{n} cycles of `runc run --detach` / HTTP through the published port 8080 from the outside namespace / "
          f"`runc kill` / `runc delete`, one busybox httpd container networked by the ocinet hook (release build), "
          f"{datetime.date.today()}, kernel {platform.release()}. Reproduce: "
          f"`scripts/build.sh && sudo python3 bench/soak.py --cycles {n}`.", "",
          f"Failures: {len(failures)}" + (f" (first: {failures[0]})" if failures else "") + ". "
          f"Median cycle: {first:.0f} ms over the first 100, {last:.0f} ms over the last 100 ({last / first:.2f}x).", "",
          "| left behind | before | after |", "|---|---|---|"]
    for k in before:
        md.append(f"| {k} | {before[k]} | {after[k]} |")
    md += ["", "Every count but system-wide open files must be equal before and after; open files is the whole "
           "machine's (`/proc/sys/fs/file-nr`), shown to catch a descriptor leak in a long-lived process.", END]
    text = "\n".join(md)
    print(text)
    with open(SOAK_MD, "w") as f:
        f.write(text + "\n")
    path = os.path.join(ROOT, "BENCHMARKS.md")
    doc = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    if START in doc and END in doc:
        doc = doc[:doc.index(START)] + text + doc[doc.index(END) + len(END):]
    else:
        doc = doc.rstrip("\n") + "\n\n" + text + "\n"
    with open(path, "w") as f:
        f.write(doc)


if __name__ == "__main__":
    main()
