#!/usr/bin/env python3
"""Where processes that delete a link wait (off-CPU time), from a
scheduler trace with kernel stacks:

    perf record -e sched:sched_switch -a -g -o sched.data -- COMMAND
    perf script -i sched.data > sched.txt
    python3 bench/offcpu.py sched.txt COMM [SIDES]

For every process named COMM whose waits include an RTM_DELLINK
(`rtnl_dellink` on the stack), each wait from switch-out to switch-in is
charged to its stack (up to the syscall), and the totals are printed per
process. SIDES (e.g. `v4,dual` for bench/dual_stack.py without netavark):
the processes are split, in the order they ran, between sides rotated the
way that script rotates them, each side's teardown in turn.
"""
import collections, re, statistics, sys

SKIP = {"__schedule", "schedule", "schedule_timeout", "schedule_preempt_disabled", "__cond_resched",
        "preempt_schedule_common", "io_schedule"}


def events(path):
    ev = None
    for line in open(path):
        if not line.strip():
            if ev:
                yield ev
            ev = None
        elif not line[0].isspace():
            m = re.search(r"\s(\d+\.\d+): sched:sched_switch: prev_comm=(.*?) prev_pid=(\d+) .*==> next_comm=(.*?) next_pid=(\d+)", line)
            ev = m and {"t": float(m.group(1)), "pcomm": m.group(2), "prev": int(m.group(3)), "next": int(m.group(5)), "stack": []}
        elif ev:
            ev["stack"].append(line.split()[1].split("+")[0])
    if ev:
        yield ev


def main():
    path, comm = sys.argv[1], sys.argv[2]
    sides = sys.argv[3].split(",") if len(sys.argv) > 3 else None
    out, waits, first = {}, collections.defaultdict(list), {}
    for e in events(path):
        if e["next"] in out:
            t0, st = out.pop(e["next"])
            waits[e["next"]].append((e["t"] - t0, st))
        if e["pcomm"] == comm:
            out[e["prev"]] = (e["t"], e["stack"])
            first.setdefault(e["prev"], e["t"])
    pids = sorted((p for p, w in waits.items() if any("rtnl_dellink" in st for _, st in w)), key=first.get)
    groups = collections.defaultdict(list)
    for k, pid in enumerate(pids):
        if sides:
            i, pos = divmod(k, len(sides))
            groups[sides[(i % len(sides) + pos) % len(sides)]].append(pid)
        else:
            groups[comm].append(pid)
    for side, ps in groups.items():
        tot, cnt, per = collections.Counter(), collections.Counter(), []
        for pid in ps:
            s = 0
            for dt, st in waits[pid]:
                key = []
                for f in (f for f in st if f not in SKIP):
                    key.append(f)
                    if f == "rtnl_dellink" or f.startswith("__x64_sys") or f.startswith("do_syscall") or f == "do_exit":
                        break
                k = " <- ".join(key[:6])
                tot[k] += dt
                cnt[k] += 1
                s += dt
            per.append(s)
        print(f"== {side}: {len(ps)} processes, off-CPU median {statistics.median(per) * 1e3:.2f} ms, mean {statistics.mean(per) * 1e3:.2f} ms")
        for k, v in tot.most_common(8):
            print(f"  {v / len(ps) * 1e3:7.2f} ms  {cnt[k] / len(ps):5.2f} waits  {k}")


main()
