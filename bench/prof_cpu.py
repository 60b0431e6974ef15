#!/usr/bin/env python3
"""prof_cpu.py: what a heap profiler costs in time, for hakmem (HAKMEM_PROF=1)
and jemalloc (MALLOC_CONF=prof:true), both at their default mean of 512 KiB
between samples, each against itself with the profiler off.

  bench/prof_cpu.py [--builddir DIR] [--reps N] [--workloads a,b]

Runs each workload under the four configurations, interleaved (rep 1: all
four in turn, rep 2: again, ...; the order rotates each rep), and reports
per configuration the median throughput by the clock (ops / the program's
own timed seconds) and by CPU time (ops / user + system seconds of the
whole process, from wait4: time spent waiting for a CPU on a loaded
machine does not count), and for each allocator the median over the reps
of the ratio on/off of the runs of the same rep. On a shared, loaded
machine the CPU-time ratios are the steadier ones; see bench/README,
"Reading the results honestly".
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

WORKLOADS = {
    "random_mixed": ["bench_random_mixed", "20000000", "8192"],
    "prodcons": ["bench_prodcons", "2", "2000000"],
    "churn": ["bench_churn", "2", "2000000", "4096"],
    "server": ["bench_server", "2", "4000000", "8000", "400"],
}


def find_jemalloc():
    for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib"):
        p = os.path.join(d, "libjemalloc.so.2")
        if os.path.exists(p):
            return p
    return None


def run(argv, env):
    """(ops, wall seconds of the timed part, CPU seconds of the process)."""
    full = dict(os.environ)
    for k in list(full):
        if k.startswith("HAKMEM_") or k in ("LD_PRELOAD", "MALLOC_CONF"):
            del full[k]
    full.update(env)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.dup2(w, 1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.execve(argv[0], argv, full)
    os.close(w)
    out = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        out += chunk
    os.close(r)
    _, status, ru = os.wait4(pid, 0)
    text = out.decode(errors="replace")
    if status != 0:
        raise RuntimeError("%s exited with status %d: %s" % (argv[0], status, text[-200:]))
    m = re.search(r"\[(?:ops|iter)=(\d+)", text)
    t = re.search(r"time=([0-9.]+) s", text)
    if not m or not t:
        raise RuntimeError("%s: no ops or time in: %s" % (argv[0], text[:200]))
    return int(m.group(1)), float(t.group(1)), ru.ru_utime + ru.ru_stime


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--builddir", default=".")
    ap.add_argument("--reps", type=int, default=11)
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--csv", default=None, help="write every run here (workload,rep,allocator,clock,cpu)")
    args = ap.parse_args()
    b = os.path.abspath(args.builddir)
    lib = os.path.join(b, "src", ".libs", "libhakmem.so")
    je = find_jemalloc()
    configs = [("hakmem", {"LD_PRELOAD": lib}), ("hakmem prof:1", {"LD_PRELOAD": lib, "HAKMEM_PROF": "1"})]
    if je:
        configs += [("jemalloc", {"LD_PRELOAD": je}), ("jemalloc prof:true", {"LD_PRELOAD": je, "MALLOC_CONF": "prof:true"})]
    wls = [w for w in args.workloads.split(",") if w]
    res = {(w, c[0]): [] for w in wls for c in configs}
    runs = []
    for rep in range(args.reps):
        for w in wls:
            argv = [os.path.join(b, "bench", WORKLOADS[w][0])] + WORKLOADS[w][1:]
            k = rep % len(configs)
            for name, env in configs[k:] + configs[:k]:
                ops, wall, cpu = run(argv, env)
                res[(w, name)].append((ops / wall / 1e6, ops / cpu / 1e6))
                runs.append((w, rep + 1, name, ops / wall / 1e6, ops / cpu / 1e6))
        sys.stderr.write("rep %d/%d done\n" % (rep + 1, args.reps))
    if args.csv:
        with open(args.csv, "w") as f:
            f.write("workload,rep,allocator,mops_clock,mops_cpu\n")
            for r in runs:
                f.write("%s,%d,%s,%.3f,%.3f\n" % r)
    load = os.getloadavg()
    print("- command: `bench/prof_cpu.py %s`" % " ".join(sys.argv[1:]))
    print("- %d interleaved repetitions; load average at the end %.1f %.1f %.1f; %s" %
          (args.reps, load[0], load[1], load[2], time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())))
    print("")
    print("| workload | allocator | Mops/s by the clock | Mops/s by CPU time | on/off by the clock | on/off by CPU time |")
    print("|---|---|---|---|---|---|")
    for w in wls:
        for i, (name, _) in enumerate(configs):
            v = res[(w, name)]
            clock = statistics.median(x[0] for x in v)
            cpu = statistics.median(x[1] for x in v)
            ratios = ["", ""]
            if i % 2 == 1:
                off = res[(w, configs[i - 1][0])]
                ratios = ["%.3f" % statistics.median(a[j] / o[j] for a, o in zip(v, off)) for j in (0, 1)]
            print("| %s | %s | %.2f | %.2f | %s | %s |" % (w, name, clock, cpu, ratios[0], ratios[1]))


if __name__ == "__main__":
    main()
