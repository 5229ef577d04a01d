#!/usr/bin/env python3
"""Two builds of the hook side by side at scale: each in a throwaway host
namespace of its own, NETS networks of PER containers filled one network
after the other (as section 3d), one setup of each build in turn (which
goes first alternates), then all torn down the same way. Prints each
build's median of every successive 1,000 setups, last / first, and its
teardown medians. Run as root after building both (see compare.py), each
binary beside its ocinet-dns and ocinet-proxy, which the hook looks for next
to itself:

    sudo python3 bench/compare_scale.py OLD_OCINET NEW_OCINET [NETS] [PER]

State under /run, as bench/run.py keeps it; start from a machine quiet for
minutes (run.py's section 3d says why)."""
import importlib.util, json, os, statistics, subprocess, sys, tempfile, time
if len(sys.argv) < 3:
    sys.exit(__doc__)
spec = importlib.util.spec_from_file_location("br", os.path.join(os.path.dirname(os.path.abspath(__file__)), "run.py"))
br = importlib.util.module_from_spec(spec); spec.loader.exec_module(br)
bins = {"old": sys.argv[1], "new": sys.argv[2]}
nets = int(sys.argv[3]) if len(sys.argv) > 3 else 4
per = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
work = tempfile.mkdtemp(prefix="ocinet-cmpscale-", dir="/run")
own = os.open("/proc/self/ns/net", os.O_RDONLY)
hosts, ocs, ids = {}, {}, {k: [] for k in bins}
times = {k: [] for k in bins}; downs = {k: [] for k in bins}
def into(k): br.libc.setns(hosts[k], br.CLONE_NEWNET)
try:
    for k in bins:
        name = br.netns_add(f"{br.TAG}-ab{k}")
        hosts[k] = os.open(f"/run/netns/{name}", os.O_RDONLY)
        into(k); br.sh("ip", "link", "set", "lo", "up")
        ocs[k] = br.Ocinet(os.path.join(work, k))
        for n in range(nets):
            subprocess.run([bins[k], "network", "create", f"n{n}", "--subnet", f"10.{100 + n}.0.0/16",
                            "--state-dir", ocs[k].state, "--config-dir", ocs[k].config], check=True, capture_output=True)
    for i in range(nets * per):
        for k in (("old", "new") if i % 2 == 0 else ("new", "old")):
            into(k); oc = ocs[k]
            cid = f"ab{k[0]}{i:05d}"; ids[k].append(cid); br.used_ids.add(cid)
            c = br.Fresh()
            b = oc.bundle(cid, None, f"{20000 + i}:80", network=f"n{i // per}")
            st = {"ociVersion": "1.0", "id": cid, "status": "creating", "bundle": b, "pid": c.pid}
            times[k].append(br.timed_cpu([bins[k], "hook", "createRuntime", "--state-dir", oc.state, "--config-dir", oc.config], json.dumps(st).encode())[0])
            c.end(); br.started.remove(c.p)
        if (i + 1) % 1000 == 0:
            print(i + 1, {k: round(statistics.median(times[k][-1000:]) * 1000, 2) for k in bins}, file=sys.stderr, flush=True)
    for i in range(nets * per):
        for k in (("old", "new") if i % 2 == 0 else ("new", "old")):
            into(k); oc = ocs[k]; cid = ids[k][i]
            st = {"ociVersion": "1.0", "id": cid, "status": "stopped", "bundle": os.path.join(oc.bundles, cid)}
            downs[k].append(br.timed_cpu([bins[k], "hook", "poststop", "--state-dir", oc.state, "--config-dir", oc.config], json.dumps(st).encode())[0])
    for k in bins:
        t = times[k]
        print(k, "setup per 1000:", [round(statistics.median(t[j:j + 1000]) * 1000, 2) for j in range(0, len(t), 1000)],
              "ratio", round(statistics.median(t[-1000:]) / statistics.median(t[:1000]), 2),
              "teardown median", round(statistics.median(downs[k]) * 1000, 2),
              "teardown first/last 1000", round(statistics.median(downs[k][:1000]) * 1000, 2), round(statistics.median(downs[k][-1000:]) * 1000, 2))
finally:
    br.libc.setns(own, br.CLONE_NEWNET)
    br.clean_up(work, [cid for k in bins for cid in ids[k]])
