#!/usr/bin/env python3
"""Where a setup's growth goes, by the hook's own spans: PER containers on
NETS networks (round robin, as section 3b; or with `by-network`, one network
filled after the other, as 3d), each set up by the hook and its stand-in
process ended (as in 3b: each network's first keeps running), two windows of WIN setups run with
`--log-level debug` so that every span logs its time when it closes: the
first WIN, and the last WIN (round robin) or the last network's first WIN
(by network: both windows add ports to bridges of the same sizes, so the
difference is what the other networks' containers cost).
Prints the median of each successive 100 setups, then the spans whose time
per setup grew most from the first WIN to the last WIN (milliseconds per
setup: growth, first, last; a span's path without its fields; the two
windows' logs are left in /tmp/span_growth-{first,last}.log). With
PERF=1 it also records `perf record -a -g` over each window
(/tmp/span_growth-{first,last}.data) for kernel stacks (needs
`sysctl kernel.kptr_restrict=0 kernel.perf_event_paranoid=-1`). Run as root
after scripts/build.sh:

    sudo python3 bench/span_growth.py [PER] [WIN] [NETS] [by-network]    # 1000 100 1

One network of 1,000 is section 3b's bridge growth alone (each of 3b's
last setups adds a port to a bridge of ~950). State under /run, as
bench/run.py keeps it; all of it removed at the end."""
import collections, importlib.util, json, os, re, statistics, subprocess, sys, tempfile, time

spec = importlib.util.spec_from_file_location("br", os.path.join(os.path.dirname(os.path.abspath(__file__)), "run.py"))
br = importlib.util.module_from_spec(spec); spec.loader.exec_module(br)
per = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
win = int(sys.argv[2]) if len(sys.argv) > 2 else 100
nets = int(sys.argv[3]) if len(sys.argv) > 3 else 1
by_network = len(sys.argv) > 4 and sys.argv[4] == "by-network"
total = per * nets
# Where the second window starts.
late = (nets - 1) * per if by_network else total - win
if not 0 < win <= per or late < win:
    sys.exit(__doc__)
UNIT = {"ns": 1e-6, "µs": 1e-3, "ms": 1.0, "s": 1000.0}
CLOSE = re.compile(r" (?:TRACE|DEBUG|INFO) (.+?): close time\.busy=([\d.]+)(ns|µs|ms|s) time\.idle=([\d.]+)(ns|µs|ms|s)")


def spans(text):
    """Milliseconds per span path (fields dropped), summed over the window."""
    out = collections.defaultdict(float)
    for m in CLOSE.finditer(text):
        path = re.sub(r"\{[^}]*\}", "", m.group(1))
        out[path] += float(m.group(2)) * UNIT[m.group(3)] + float(m.group(4)) * UNIT[m.group(5)]
    return out


work = tempfile.mkdtemp(prefix="ocinet-spangrowth-", dir="/run")
own = os.open("/proc/self/ns/net", os.O_RDONLY)
ids, times, logs, perf, running = [], [], {}, None, []
try:
    name = br.netns_add(f"{br.TAG}-spans")
    br.enter(name)
    br.sh("ip", "link", "set", "lo", "up")
    oc = br.Ocinet(os.path.join(work, "o"))
    log = os.path.join(oc.state, "ocinet.log")
    for n in range(nets):
        oc.cli("network", "create", f"sg{n}", "--subnet", f"10.{100 + n}.0.0/16")
    for i in range(late + win):
        which = "first" if i < win else "last" if late <= i < late + win else None
        if os.environ.get("PERF") and i in (0, late):
            perf = subprocess.Popen(["perf", "record", "-a", "-g", "-q", "-o", f"/tmp/span_growth-{which}.data"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
        if i in (win, late) and os.path.exists(log):
            os.truncate(log, 0)
        cid = f"sg{i:05d}"; ids.append(cid); br.used_ids.add(cid)
        c = br.Fresh()
        b = oc.bundle(cid, None, f"{20000 + i}:80", network=f"sg{i // per if by_network else i % nets}")
        st = {"ociVersion": "1.0", "id": cid, "status": "creating", "bundle": b, "pid": c.pid}
        args = [br.OCINET, "hook", "createRuntime", "--state-dir", oc.state, "--config-dir", oc.config]
        times.append(br.timed_cpu(args + (["--log-level", "debug"] if which else []), json.dumps(st).encode())[0])
        # Each network's first keeps running (as bench/run.py's 3b and 3d
        # do): the resolver always has a live container to serve.
        if i < nets if not by_network else i % per == 0:
            running.append(c)
        else:
            c.end(); br.started.remove(c.p)
        if i in (win - 1, late + win - 1):
            if perf:
                perf.send_signal(2); perf.wait(); perf = None
            with open(log, encoding="utf-8", errors="replace") as f:
                text = f.read()
            logs[which] = spans(text)
            # Kept for a closer look (the spans with their fields).
            with open(f"/tmp/span_growth-{which}.log", "w") as f:
                f.write(text)
    print("median of each successive 100 setups (ms; the first and last", win, "with debug logging):")
    print([round(statistics.median(times[j:j + 100]) * 1000, 2) for j in range(0, len(times), 100)])
    print(f"first {win}: {statistics.median(times[:win]) * 1000:.2f} ms, "
          f"second window: {statistics.median(times[late:late + win]) * 1000:.2f} ms")
    print("growth  first  last   span (ms per setup)")
    rows = [((logs["last"].get(k, 0) - logs["first"].get(k, 0)) / win, logs["first"].get(k, 0) / win, logs["last"].get(k, 0) / win, k)
            for k in set(logs["first"]) | set(logs["last"])]
    for d, a, b, k in sorted(rows, reverse=True)[:15]:
        print(f"{d:+.3f}  {a:.3f}  {b:.3f}  {k}")
finally:
    if perf and perf.poll() is None:
        perf.send_signal(2); perf.wait()
    # No teardown here: the resolver the hooks started would end on its
    # own, and could recreate its lock file after the directory went.
    try:
        with open(os.path.join(work, "o", "state", "dns", "resolver.json")) as f:
            pid = json.load(f)["pid"]
        os.kill(pid, 15)
        for _ in range(200):
            if not os.path.exists(f"/proc/{pid}"):
                break
            time.sleep(0.01)
    except (OSError, ValueError, KeyError):
        pass
    br.libc.setns(own, br.CLONE_NEWNET)
    br.clean_up(work, ids)
