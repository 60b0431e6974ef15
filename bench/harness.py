#!/usr/bin/env python3
"""hakmem benchmark harness (Python 3, standard library only).

Runs the workload programs of bench/ against several allocators, each
selected by LD_PRELOAD (glibc: no preload), interleaved and repeated, and
reports medians with their min-max spread and ratios against a baseline.

  harness.py run   [--mode quick|full|tiny] ...   make bench / bench-full
  harness.py soak  [--minutes N] ...              make soak SOAK_MIN=N
  harness.py longrun [--ops N] ...                make bench-longrun
  harness.py demo                                 make demo
  harness.py instr [--cycles N] ...               make bench-instr (callgrind)
  harness.py list                                 allocators found

Output: a Markdown report on stdout (also written to OUT/report.md), CSV
files and, when gnuplot exists, SVG plots in OUT (default bench/out under
the build directory). Exit status 0 when every run succeeded, 1 when any
run failed (crashed, timed out, printed output that does not parse, or
printed nonsense numbers), 2 on a usage error. A failed run is reported as
FAIL with its reason, never as a number.

See bench/README for the workloads and the figures.
"""
import argparse
import csv
import json
import math
import os
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

PEER_LIBS = [
    ("mimalloc", "libmimalloc.so.2"),
    ("jemalloc", "libjemalloc.so.2"),
    ("tcmalloc", "libtcmalloc_minimal.so.4"),
]
LIB_DIRS = ["/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib",
            "/usr/local/lib", "/lib/x86_64-linux-gnu"]
# The newest peers, built from source (bench/README, "The newest peers"):
# name -> the library's fixed path below bench/peers/ of the source or the
# build tree. BENCH_PEERS='NAME=PATH ...' and --peer NAME=PATH name others
# (or the same ones elsewhere); --peer wins over BENCH_PEERS, both over the
# fixed path. Absent ones are skipped with a note: nothing needs them.
NEWEST_PEERS = [
    ("mimalloc3", "mimalloc3/libmimalloc.so"),
    ("snmalloc", "snmalloc/libsnmallocshim.so"),
]
PEERS_DIR = os.path.join("bench", "peers")

# Workload -> program and arguments per size. Threads are filled in later.
WORKLOADS = {
    "random_mixed": ("bench_random_mixed", {
        "tiny": ["20000", "256"],
        "quick": ["5000000", "8192"],
        "full": ["10000000", "8192"],
    }),
    # One burst: allocate, free everything, read Rss right after.
    "burst": ("bench_burst", {
        "tiny": ["4", "1", "0"],
        "quick": ["256", "1", "200"],
        "full": ["256", "1", "500"],
    }),
    # The same burst in a loop: free and re-allocate the same amount again
    # and again (LEAN's hysteresis should make it as cheap as FAST).
    "loop": ("bench_burst", {
        "tiny": ["4", "3", "0"],
        "quick": ["64", "20", "20"],
        "full": ["64", "40", "20"],
    }),
    "prodcons": ("bench_prodcons", {
        "tiny": ["{threads}", "20000"],
        "quick": ["{threads}", "1000000"],
        "full": ["{threads}", "4000000"],
    }),
    "churn": ("bench_churn", {
        "tiny": ["{threads}", "20000", "256"],
        "quick": ["{threads}", "1000000", "4096"],
        "full": ["{threads}", "4000000", "4096"],
    }),
    # Threads retired and replaced every round, objects freed by other
    # threads (live and dead). quick and full have the same shape (10000
    # steps per thread per round); full runs twice as many rounds.
    "server": ("bench_server", {
        "tiny": ["{threads}", "4000", "128", "4"],
        "quick": ["{threads}", "4000000", "8000", "400"],
        "full": ["{threads}", "8000000", "8000", "800"],
    }),
    "realloc": ("bench_realloc", {
        "tiny": ["20000", "32", "128"],
        "quick": ["1000000", "256", "1024"],
        "full": ["4000000", "256", "1024"],
    }),
    "large": ("bench_large", {
        "tiny": ["400", "8"],
        "quick": ["40000", "32"],
        "full": ["200000", "32"],
    }),
    # Skewed sizes and lifetimes (power laws), one thread: the shape of
    # interpreters, compilers and solvers.
    "skewed": ("bench_skewed", {
        "tiny": ["20000", "1024"],
        "quick": ["2000000", "262144"],
        "full": ["8000000", "262144"],
    }),
    # One thread fills every block it gets (16 B..4 KiB, 1..1600 live,
    # LIFO and FIFO frees).
    "fill": ("bench_fill", {
        "tiny": ["20000", "256", "1024"],
        "quick": ["20000000"],
        "full": ["50000000"],
    }),
    # Every size class up to 64 KiB, live at once, in random order.
    "classes": ("bench_classes", {
        "tiny": ["20000", "256"],
        "quick": ["10000000", "4096"],
        "full": ["20000000", "4096"],
    }),
    "soak": ("bench_soak", {
        "tiny": ["1", "0", "100", "1024"],
        "quick": ["{seconds}", "{warmup}", "1000", "16384"],
        "full": ["{seconds}", "{warmup}", "1000", "16384"],
    }),
    # A server that runs for months, compressed: Rss sampled at every 1 %
    # of the operations (make bench-longrun; the longrun command sets ops,
    # trim_every and late_tsd).
    "longrun": ("bench_longrun", {
        "tiny": ["1000000", "4", "0"],
        "quick": ["{ops}", "4", "{trim_every}", "1234567", "{late_tsd}", "{roles}"],
        "full": ["{ops}", "4", "{trim_every}", "1234567", "{late_tsd}", "{roles}"],
    }),
}
RUN_WORKLOADS = ["random_mixed", "burst", "loop", "prodcons", "churn", "server", "realloc",
                 "large", "skewed", "fill", "classes"]
REPS = {"tiny": 1, "quick": 7, "full": 9}
TIMEOUT = {"tiny": 60, "quick": 300, "full": 600}
MEM_SYSCALLS = ["mmap", "munmap", "madvise", "mremap", "brk"]

RE_THR = re.compile(r"^Throughput = ([0-9.]+) ops/s \[([^\]]*)\] time=([0-9.]+) s$", re.M)
RE_PEAK = re.compile(r"^Peak RSS = (\d+) KiB Page faults = (\d+) minor$", re.M)
RE_END = re.compile(r"^End Rss = (-?\d+) KiB LazyFree = (-?\d+) KiB(?: AnonHugePages = (-?\d+) KiB)?$", re.M)
RE_BEFORE = re.compile(r"^Burst before Rss = (\d+) KiB LazyFree = (\d+) KiB$", re.M)
RE_ROUND = re.compile(r"^Burst round=(\d+) objects=(\d+) after-alloc Rss = (\d+) KiB "
                      r"after-free Rss = (\d+) KiB LazyFree = (\d+) KiB$", re.M)
RE_AFTER = re.compile(r"^Burst after Rss = (\d+) KiB LazyFree = (\d+) KiB delta = (-?\d+) KiB$", re.M)
RE_SAMPLE = re.compile(r"^sample t=([0-9.]+) rss=(-?\d+) lazyfree=(-?\d+) ops=(\d+)$", re.M)
RE_LONGRUN_SAMPLE = re.compile(r"^sample n=(\d+) ops=(\d+) rss=(-?\d+) lazyfree=(-?\d+) "
                               r"vsz=(-?\d+) faults=(\d+)((?: [a-z_]+=\d+)*)$", re.M)
RE_LONGRUN = re.compile(r"^Longrun Rss at 10% = (\d+) KiB end = (\d+) KiB drift = (-?[0-9.]+) % "
                        r"\(Rss - LazyFree: (-?[0-9.]+) %\)$", re.M)
RE_STAT = re.compile(r"^([A-Za-z_][A-Za-z0-9_.]*)[ \t:=]+(-?\d+)$", re.M)


class RunError(Exception):
    pass


# --------------------------------------------------------------------------
# Allocators
# --------------------------------------------------------------------------
class Alloc:
    """An allocator under test: extra environment and/or a wrapper command."""

    def __init__(self, name, env=None, wrap=None, lib=None, hakmem=False, only=None, newest=False):
        self.name = name
        self.env = env or {}
        self.wrap = wrap or []
        self.lib = lib
        self.hakmem = hakmem
        self.only = only  # the workloads it can run (None: every one)
        self.newest = newest  # a peer built from source (--peer, BENCH_PEERS, bench/peers/)

    def runs(self, wl):
        return self.only is None or wl in self.only

    def describe(self):
        parts = ["%s=%s" % kv for kv in sorted(self.env.items())]
        if self.wrap:
            parts.append("wrap: " + " ".join(shlex.quote(w) for w in self.wrap))
        if self.newest:
            parts.append("(newest peer)")
        return " ".join(parts) or "(system malloc, no preload)"


def find_lib(soname):
    for d in LIB_DIRS:
        p = os.path.join(d, soname)
        if os.path.exists(p):
            return p
    try:
        out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.strip().startswith(soname + " ") and "=>" in line:
                p = line.split("=>", 1)[1].strip()
                if os.path.exists(p):
                    return p
    except OSError:
        pass
    return None


# bench/floor_malloc.c replaces malloc and free only, for one thread: the
# workloads whose loop calls nothing else.
FLOOR_WORKLOADS = ("random_mixed", "skewed")


def parse_peer_specs(specs, origin):
    """[(name, path)] from NAME=PATH items (--peer, BENCH_PEERS); a bad
    item or a path that does not exist is a usage error (exit 2): a peer
    asked for by name must not silently become a glibc run or vanish."""
    out = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        name = name.strip()
        if not sep or not name or not path or not re.match(r"^[A-Za-z0-9_.+-]+$", name):
            sys.stderr.write("harness: %s wants NAME=PATH, not '%s'\n" % (origin, spec))
            raise SystemExit(2)
        path = os.path.abspath(os.path.expanduser(path))
        if not os.path.isfile(path):
            sys.stderr.write("harness: %s %s: %s does not exist\n" % (origin, name, path))
            raise SystemExit(2)
        out.append((name, path))
    return out


def newest_peers(peer_dirs, peer_specs, notes):
    """The peers built from source, as Allocs, in NEWEST_PEERS order, then
    any other name given. peer_dirs: where bench/peers/ may be (source and
    build tree); peer_specs: [(name, path)], later entries winning."""
    chosen = {}
    for name, rel in NEWEST_PEERS:
        for d in peer_dirs:
            p = os.path.join(d, rel)
            if os.path.isfile(p):
                chosen[name] = p
                break
    env_specs = os.environ.get("BENCH_PEERS", "").replace(",", " ").split()
    for name, p in parse_peer_specs(env_specs, "BENCH_PEERS") + list(peer_specs):
        chosen[name] = p
    order = [n for n, _ in NEWEST_PEERS] + sorted(n for n in chosen if n not in dict(NEWEST_PEERS))
    out = []
    for name in order:
        if name in chosen:
            out.append(Alloc(name, {"LD_PRELOAD": chosen[name]}, lib=chosen[name], newest=True))
        else:
            notes.append("%s: not built (bench/README, 'The newest peers'; or --peer %s=PATH), skipped"
                         % (name, name))
    return out


def discover(libdir, notes, bindir=None, peer_dirs=(), peer_specs=()):
    """All allocators found, in report order."""
    found = [Alloc("glibc")]
    for name, soname in PEER_LIBS:
        p = find_lib(soname)
        if p:
            found.append(Alloc(name, {"LD_PRELOAD": p}, lib=p))
        else:
            notes.append("%s: %s not found, skipped" % (name, soname))
    found += newest_peers(peer_dirs, peer_specs, notes)
    fast = os.path.join(libdir, "libhakmem.so")
    lean = os.path.join(libdir, "libhakmem_lean.so")
    debug = os.path.join(libdir, "libhakmem_debug.so")
    if os.path.exists(fast):
        found.append(Alloc("hakmem", {"LD_PRELOAD": fast}, lib=fast, hakmem=True))
        # FAST with its superslabs on transparent huge pages (thp:1): the
        # same as hakmem where the system's THP mode is not madvise.
        found.append(Alloc("hakmem-thp", {"LD_PRELOAD": fast, "HAKMEM_THP": "1"}, lib=fast, hakmem=True))
    else:
        notes.append("hakmem: %s not built, skipped" % fast)
    if os.path.exists(lean):
        for suffix, env in (("off", {"HAKMEM_SS_MEM_LEAN": "0"}),
                            ("free", {"HAKMEM_SS_MEM_LEAN": "1",
                                      "HAKMEM_SS_MEM_LEAN_DECOMMIT": "FREE"}),
                            ("dontneed", {"HAKMEM_SS_MEM_LEAN": "1",
                                          "HAKMEM_SS_MEM_LEAN_DECOMMIT": "DONTNEED"}),
                            ("nodecommit", {"HAKMEM_SS_MEM_LEAN": "1",
                                            "HAKMEM_SS_MEM_LEAN_DECOMMIT": "OFF"}),
                            # LEAN FREE on huge pages: whole superslabs go back
                            ("free-thp", {"HAKMEM_SS_MEM_LEAN": "1",
                                          "HAKMEM_SS_MEM_LEAN_DECOMMIT": "FREE",
                                          "HAKMEM_THP": "1"})):
            e = {"LD_PRELOAD": lean}
            e.update(env)
            found.append(Alloc("hakmem-lean-" + suffix, e, lib=lean, hakmem=True))
    if os.path.exists(debug):
        found.append(Alloc("hakmem-debug", {"LD_PRELOAD": debug}, lib=debug, hakmem=True))
    floor = os.path.join(bindir, ".libs", "libfloor.so") if bindir else None
    if floor and os.path.exists(floor):
        found.append(Alloc("floor", {"LD_PRELOAD": floor}, lib=floor, only=FLOOR_WORKLOADS))
    return found


def default_set(found, purpose):
    names = [a.name for a in found]
    if purpose == "run":
        skip = {"hakmem-lean-off", "hakmem-lean-free-thp", "hakmem-debug"}
        return [n for n in names if n not in skip]
    if purpose == "soak":
        return [n for n in names if n.startswith("hakmem") and n != "hakmem-debug"]
    if purpose == "check":
        return [n for n in names if n.startswith("hakmem")]
    return names


def parse_alloc_spec(spec):
    """NAME=/path/lib.so | NAME=env:K=V[,K=V] | NAME=wrap:COMMAND | NAME=none."""
    if "=" not in spec:
        raise SystemExit("harness: --alloc wants NAME=SPEC, not '%s'" % spec)
    name, val = spec.split("=", 1)
    if val.startswith("wrap:"):
        return Alloc(name, wrap=shlex.split(val[5:]))
    if val.startswith("env:"):
        env = {}
        for kv in val[4:].split(","):
            if "=" not in kv:
                raise SystemExit("harness: bad env entry '%s'" % kv)
            k, v = kv.split("=", 1)
            env[k] = v
        return Alloc(name, env)
    if val == "none":
        return Alloc(name)
    return Alloc(name, {"LD_PRELOAD": val}, lib=val, hakmem="hakmem" in os.path.basename(val))


def discover_args(args, notes):
    return discover(args.libdir, notes, args.bindir, args.peer_dirs, args.peer_specs)


def select_allocs(args, purpose, notes):
    found = discover_args(args, notes)
    byname = {a.name: a for a in found}
    if args.allocs:
        if args.allocs == "all":
            chosen = [a.name for a in found]
        elif args.allocs == "none":
            chosen = []
        else:
            chosen = [n.strip() for n in args.allocs.split(",") if n.strip()]
    else:
        chosen = default_set(found, purpose)
    out = []
    for n in chosen:
        if n in byname:
            out.append(byname[n])
        else:
            notes.append("%s: not available, skipped" % n)
    # A peer given with --peer runs whatever --allocs says (as --alloc).
    for name, _ in args.peer_specs:
        if name not in [a.name for a in out]:
            out.append(byname[name])
    for spec in args.alloc or []:
        out.append(parse_alloc_spec(spec))
    return out


def pick_baseline(args, allocs):
    names = [a.name for a in allocs]
    if args.baseline:
        return args.baseline if args.baseline in names else None
    for n in ("mimalloc", "glibc"):
        if n in names:
            return n
    return names[0] if names else None


# --------------------------------------------------------------------------
# Running one workload
# --------------------------------------------------------------------------
def workload_argv(args, wl, mode, extra=None):
    prog, sizes = WORKLOADS[wl]
    path = os.path.join(args.bindir, prog)
    subst = {"threads": str(args.threads), "seconds": "60", "warmup": "10",
             "ops": "100000000", "trim_every": "0", "late_tsd": "16", "roles": "rilkt"}
    subst.update(extra or {})
    return [path] + [a.format(**subst) for a in sizes[mode]]


def proc_env(alloc, stats):
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("HAKMEM_") or k == "LD_PRELOAD":
            del env[k]
    env.update(alloc.env)
    if stats and alloc.hakmem:
        env["HAKMEM_STATS"] = "json"
    return env


def check_num(name, v, lo=0.0):
    if v is None or math.isnan(v) or math.isinf(v) or v < lo:
        raise RunError("bad %s value %r" % (name, v))
    return v


def parse_output(wl, out, err):
    """Figures of one run, or RunError. Strict: every line the workload must
    print is required, with sane values."""
    r = {}
    m = RE_THR.findall(out)
    if len(m) != 1:
        raise RunError("no (or several) 'Throughput = N ops/s [..] time=T s' lines")
    thr, params, secs = m[0]
    r["throughput"] = check_num("throughput", float(thr))
    r["time_s"] = check_num("time", float(secs))
    if r["throughput"] <= 0:
        raise RunError("throughput is 0")
    kv = dict(p.split("=", 1) for p in params.split() if "=" in p)
    ops = kv.get("ops", kv.get("iter"))
    if ops is None or not ops.isdigit() or int(ops) <= 0:
        raise RunError("no op count in [%s]" % params)
    r["ops"] = int(ops)
    if abs(r["ops"] / r["throughput"] - r["time_s"]) > 0.05 * r["time_s"] + 1e-3:
        raise RunError("throughput, ops and time disagree")
    m = RE_PEAK.findall(out)
    if len(m) != 1:
        raise RunError("no 'Peak RSS = N KiB Page faults = M minor' line")
    r["peak_rss_kib"] = int(m[0][0])
    r["minor_faults"] = int(m[0][1])
    if r["peak_rss_kib"] <= 0:
        raise RunError("peak RSS is 0")
    m = RE_END.findall(out)
    if len(m) != 1:
        raise RunError("no 'End Rss = N KiB LazyFree = M KiB' line")
    r["end_rss_kib"] = int(m[0][0])
    r["end_lazyfree_kib"] = int(m[0][1])
    r["end_anonhuge_kib"] = int(m[0][2]) if m[0][2] else -1
    if wl in ("burst", "loop"):
        b = RE_BEFORE.findall(out)
        a = RE_AFTER.findall(out)
        rounds = RE_ROUND.findall(out)
        if len(b) != 1 or len(a) != 1 or not rounds:
            raise RunError("burst lines missing")
        r["burst_before_kib"] = int(b[0][0])
        r["burst_peak_kib"] = max(int(x[2]) for x in rounds)
        r["burst_after_kib"] = int(a[0][0])
        r["burst_after_lazyfree_kib"] = int(a[0][1])
        r["burst_delta_kib"] = int(a[0][2])
        if r["burst_after_kib"] - r["burst_before_kib"] != r["burst_delta_kib"]:
            raise RunError("burst delta inconsistent")
    if wl == "longrun":
        r.update(parse_longrun(out))
    if wl == "soak":
        samples = [(float(t), int(rss), int(lz), int(n)) for t, rss, lz, n in RE_SAMPLE.findall(out)]
        if len(samples) < 2:
            raise RunError("soak printed fewer than 2 samples")
        r["samples"] = samples
    r["stats"] = parse_stats(err)
    return r


def drift_pct(end, start):
    return 100.0 * (end / start - 1.0) if start > 0 else float("nan")


def parse_longrun(out):
    """The samples of bench_longrun and the figures derived from them: the
    readings at 10 % of the operations and at the end, the drift between
    them, and the same from the medians of the 5 samples around each point
    (glibc's Rss swings by 10-20 % from one sample to the next)."""
    samples = []
    for n, ops, rss, lz, vsz, flt, tail in RE_LONGRUN_SAMPLE.findall(out):
        kv = dict(p.split("=", 1) for p in tail.split())
        samples.append({"n": int(n), "ops": int(ops), "rss": int(rss), "lazyfree": int(lz),
                        "vsz": int(vsz), "faults": int(flt),
                        "hk": {k: int(v) for k, v in kv.items()}})
    if len(samples) < 10 or [x["n"] for x in samples] != list(range(1, len(samples) + 1)):
        raise RunError("longrun printed %d samples, not numbered 1..N" % len(samples))
    if any(samples[i]["ops"] <= samples[i - 1]["ops"] for i in range(1, len(samples))):
        raise RunError("longrun samples: op counts do not grow")
    m = RE_LONGRUN.findall(out)
    if len(m) != 1:
        raise RunError("no 'Longrun Rss at 10% = ..' line")
    a, z = samples[len(samples) // 10 - 1], samples[-1]
    if int(m[0][0]) != a["rss"] or int(m[0][1]) != z["rss"] or \
            abs(float(m[0][2]) - drift_pct(z["rss"], a["rss"])) > 0.01:
        raise RunError("longrun summary disagrees with its samples")
    i10 = len(samples) // 10 - 1
    win10 = [x["rss"] for x in samples[max(0, i10 - 2):i10 + 3]]
    winz = [x["rss"] for x in samples[-5:]]
    r = {"samples_lr": samples,
         "lr_rss10_kib": a["rss"], "lr_rss_end_kib": z["rss"],
         "lr_drift_pct": drift_pct(z["rss"], a["rss"]),
         "lr_drift_nolazy_pct": drift_pct(z["rss"] - z["lazyfree"], a["rss"] - a["lazyfree"]),
         "lr_drift_med5_pct": drift_pct(statistics.median(winz), statistics.median(win10)),
         "lr_rss_max_after10_kib": max(x["rss"] for x in samples[i10:]),
         "lr_vsz10_kib": a["vsz"], "lr_vsz_end_kib": z["vsz"]}
    for k in ("heaps", "ss_live", "ss_abandoned", "slabs", "committed"):
        if k in a["hk"] and k in z["hk"]:
            r["lr_%s10" % k] = a["hk"][k]
            r["lr_%s_end" % k] = z["hk"][k]
    return r


def parse_stats(err):
    """hakmem's statistics at exit: the JSON form (HAKMEM_STATS=json, what
    --stats asks for), its gauges and counters by name; else any `name
    value` lines (HAKMEM_SS_OS_STATS=1 given by hand). {} without either."""
    start = err.find('{"version"')
    if start >= 0:
        try:
            doc, _ = json.JSONDecoder().raw_decode(err[start:])
            out = {}
            for part in ("gauges", "counters"):
                for k, v in doc.get(part, {}).items():
                    if isinstance(v, int):
                        out[k] = v
            return out
        except ValueError:
            pass
    return {k: int(v) for k, v in RE_STAT.findall(err)}


def run_once(args, alloc, wl, mode, extra=None, timeout=None):
    argv = alloc.wrap + workload_argv(args, wl, mode, extra)
    env = proc_env(alloc, args.stats)
    timeout = args.timeout or timeout or TIMEOUT[mode]
    pre = alloc.env.get("LD_PRELOAD")
    if pre and not all(os.path.exists(x) for x in pre.replace(":", " ").split()):
        # ld.so would only warn and run the program on glibc: a number for
        # the wrong allocator. Refuse instead.
        raise RunError("preload library %s does not exist" % pre)
    try:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        p = subprocess.run(argv, env=env, capture_output=True, text=True,
                           errors="replace", timeout=timeout)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    except subprocess.TimeoutExpired:
        raise RunError("timed out after %d s" % timeout)
    except OSError as e:
        raise RunError("cannot run: %s" % e)
    tail = (p.stderr.strip().splitlines() or [""])[-1][:120].replace("|", "/")
    if p.returncode < 0:
        raise RunError(("killed by signal %d %s" % (-p.returncode, tail)).strip())
    if p.returncode != 0:
        raise RunError(("exit status %d %s" % (p.returncode, tail)).strip())
    if "cannot be preloaded" in p.stderr:
        raise RunError("ld.so did not preload %s" % pre)
    r = parse_output(wl, p.stdout, p.stderr)
    # CPU seconds of the whole program (all threads, start-up and drain
    # included; the runs are one at a time, so the children's usage grew
    # by this run's alone). On a busy machine a program waits for a CPU
    # without its CPU time growing: for one thread, a figure that other
    # work disturbs far less than the loop's wall-clock time.
    r["cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return r


def strace_counts(args, alloc, wl, mode):
    """{syscall: calls} of the memory syscalls of one run under strace."""
    fd, path = tempfile.mkstemp(prefix="strace-", suffix=".txt")
    os.close(fd)
    try:
        cmd = ["strace", "-f", "-c", "-e", "trace=memory", "-o", path]
        if args.seccomp:
            cmd.insert(1, "--seccomp-bpf")
        for k, v in sorted(alloc.env.items()):
            cmd += ["-E", "%s=%s" % (k, v)]
        cmd += ["--"] + alloc.wrap + workload_argv(args, wl, mode)
        env = proc_env(Alloc("x"), False)
        p = subprocess.run(cmd, env=env, capture_output=True, text=True,
                           errors="replace", timeout=TIMEOUT[mode] * 3)
        if p.returncode != 0:
            raise RunError("under strace: exit status %d" % p.returncode)
        r = parse_output(wl, p.stdout, p.stderr)
        counts = {}
        with open(path) as f:
            for line in f:
                t = line.split()
                if len(t) >= 5 and t[-1] != "total" and t[0][0].isdigit():
                    try:
                        counts[t[-1]] = int(t[3])
                    except ValueError:
                        pass
        return counts, r["ops"]
    finally:
        os.unlink(path)


# --------------------------------------------------------------------------
# Statistics and formatting
# --------------------------------------------------------------------------
def med(xs):
    return statistics.median(xs) if xs else None


def fmt_spread(xs, scale=1.0, digits=1):
    if not xs:
        return "-"
    f = "%%.%df" % digits
    m = f % (med(xs) / scale)
    if len(xs) == 1:
        return m
    return "%s (%s-%s)" % (m, f % (min(xs) / scale), f % (max(xs) / scale))


def fmt_kib_mib(xs):
    """Median of KiB figures in MiB; '-' where the program did not say
    (a negative figure: the field was absent)."""
    v = med([x for x in xs if x >= 0])
    return "-" if v is None else "%.1f" % (v / 1024.0)


def fmt_ratio(a, b):
    if a is None or b is None or b == 0:
        return "-"
    return "%.2fx" % (a / b)


def md_table(header, rows):
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(lines)


class Results:
    def __init__(self):
        self.runs = {}      # (wl, alloc) -> [figures]
        self.fails = {}     # (wl, alloc) -> [reason]
        self.sys = {}       # (wl, alloc) -> (counts, ops)
        self.rawrows = []

    def add(self, wl, alloc, rep, r=None, err=None):
        key = (wl, alloc)
        if err is not None:
            self.fails.setdefault(key, []).append(err)
        else:
            self.runs.setdefault(key, []).append(r)
        row = {"workload": wl, "allocator": alloc, "rep": rep,
               "ok": int(err is None), "error": err or ""}
        if r:
            for k, v in r.items():
                if k not in ("samples", "samples_lr", "stats"):
                    row[k] = v
            for k, v in r.get("stats", {}).items():
                row["stat_" + k] = v
        self.rawrows.append(row)

    def vals(self, wl, alloc, field):
        return [r[field] for r in self.runs.get((wl, alloc), []) if field in r]

    def failed(self, wl, alloc):
        return (wl, alloc) in self.fails


def syscalls_per_op(res, wl, a):
    s = res.sys.get((wl, a))
    if not s:
        return None
    counts, ops = s
    return sum(counts.get(k, 0) for k in MEM_SYSCALLS) / float(ops)


def report_workload(res, wl, allocs, base):
    header = ["allocator", "Mops/s median (min-max)", "vs %s" % base,
              "peak RSS MiB median (min-max)", "vs %s" % base,
              "end Rss MiB", "end LazyFree MiB", "end AnonHugePages MiB", "minor faults",
              "mem syscalls/op"]
    if wl in ("burst", "loop"):
        header += ["Rss before MiB", "Rss at burst peak MiB", "Rss after MiB",
                   "after - before MiB", "LazyFree after MiB"]
    if wl == "longrun":
        header += ["Rss at 10% MiB", "Rss at end MiB", "drift"]
    bt = med(res.vals(wl, base, "throughput")) if base else None
    br = med(res.vals(wl, base, "peak_rss_kib")) if base else None
    rows = []
    for a in allocs:
        if res.failed(wl, a):
            reasons = sorted(set(res.fails[(wl, a)]))
            rows.append([a, "**FAIL**: " + "; ".join(reasons)] + [""] * (len(header) - 2))
            continue
        t = res.vals(wl, a, "throughput")
        if not t:
            continue
        pr = res.vals(wl, a, "peak_rss_kib")
        spo = syscalls_per_op(res, wl, a)
        row = [a, fmt_spread(t, 1e6, 2), fmt_ratio(med(t), bt),
               fmt_spread(pr, 1024.0, 1), fmt_ratio(med(pr), br),
               "%.1f" % (med(res.vals(wl, a, "end_rss_kib")) / 1024.0),
               "%.1f" % (med(res.vals(wl, a, "end_lazyfree_kib")) / 1024.0),
               fmt_kib_mib(res.vals(wl, a, "end_anonhuge_kib")),
               "%d" % med(res.vals(wl, a, "minor_faults")),
               ("%.2e" % spo) if spo is not None else "-"]
        if wl in ("burst", "loop"):
            for f in ("burst_before_kib", "burst_peak_kib", "burst_after_kib",
                      "burst_delta_kib", "burst_after_lazyfree_kib"):
                row.append("%.1f" % (med(res.vals(wl, a, f)) / 1024.0))
        if wl == "longrun":
            row += ["%.1f" % (med(res.vals(wl, a, "lr_rss10_kib")) / 1024.0),
                    "%.1f" % (med(res.vals(wl, a, "lr_rss_end_kib")) / 1024.0),
                    "%+.1f %%" % med(res.vals(wl, a, "lr_drift_pct"))]
        rows.append(row)
    return md_table(header, rows)


def targets_report(res, names):
    """The issue's targets, evaluated from this run's medians (when the
    allocators involved were measured)."""
    def m(wl, a, f):
        v = res.vals(wl, a, f)
        return med(v) if v and not res.failed(wl, a) else None

    rows = []

    def add(desc, val, ok_fn, fmt="%.2f"):
        if val is None:
            return
        rows.append([desc, fmt % val, "met" if ok_fn(val) else "**not met**"])

    def ratio(x, y):
        return x / y if x is not None and y else None

    H, M, G = "hakmem", "mimalloc", "glibc"
    if H in names and M in names:
        add("random_mixed: hakmem/mimalloc throughput >= 1.15",
            ratio(m("random_mixed", H, "throughput"), m("random_mixed", M, "throughput")),
            lambda v: v >= 1.15)
        add("random_mixed: hakmem/mimalloc peak RSS <= 1.5",
            ratio(m("random_mixed", H, "peak_rss_kib"), m("random_mixed", M, "peak_rss_kib")),
            lambda v: v <= 1.5)
        for wl in ("prodcons", "churn"):
            add("%s: hakmem/mimalloc throughput >= 1.0" % wl,
                ratio(m(wl, H, "throughput"), m(wl, M, "throughput")), lambda v: v >= 1.0)
            add("%s: hakmem/mimalloc peak RSS <= 1.25" % wl,
                ratio(m(wl, H, "peak_rss_kib"), m(wl, M, "peak_rss_kib")), lambda v: v <= 1.25)
    if M in names:
        # The server workload's targets hold for FAST and for LEAN in each
        # of its decommit modes.
        for a in (H, "hakmem-lean-free", "hakmem-lean-dontneed", "hakmem-lean-nodecommit"):
            if a not in names:
                continue
            add("server: %s/mimalloc throughput >= 1.0" % a,
                ratio(m("server", a, "throughput"), m("server", M, "throughput")),
                lambda v: v >= 1.0)
            add("server: %s/mimalloc peak RSS <= 1.25" % a,
                ratio(m("server", a, "peak_rss_kib"), m("server", M, "peak_rss_kib")),
                lambda v: v <= 1.25)
    for lean in ("hakmem-lean-free", "hakmem-lean-dontneed"):
        if lean not in names:
            continue
        if G in names:
            add("random_mixed: %s/glibc peak RSS <= 1.0" % lean,
                ratio(m("random_mixed", lean, "peak_rss_kib"), m("random_mixed", G, "peak_rss_kib")),
                lambda v: v <= 1.0)
        if H in names:
            add("random_mixed: %s/hakmem (FAST) peak RSS <= 0.5" % lean,
                ratio(m("random_mixed", lean, "peak_rss_kib"), m("random_mixed", H, "peak_rss_kib")),
                lambda v: v <= 0.5)
            add("random_mixed: %s/hakmem (FAST) throughput >= 0.95" % lean,
                ratio(m("random_mixed", lean, "throughput"), m("random_mixed", H, "throughput")),
                lambda v: v >= 0.95)
    if "hakmem-lean-dontneed" in names:
        add("burst: hakmem-lean-dontneed Rss after - before <= 4 MiB (MiB)",
            (lambda d: d / 1024.0 if d is not None else None)(
                m("burst", "hakmem-lean-dontneed", "burst_delta_kib")),
            lambda v: v <= 4.0, "%.1f")
    if "hakmem-lean-free" in names:
        d = m("burst", "hakmem-lean-free", "burst_delta_kib")
        lz = m("burst", "hakmem-lean-free", "burst_after_lazyfree_kib")
        if d is not None and lz is not None:
            add("burst: hakmem-lean-free (Rss - LazyFree) after - before <= 4 MiB (MiB)",
                (d - lz) / 1024.0, lambda v: v <= 4.0 and lz > 0, "%.1f")
    if H in names:
        for lean in ("hakmem-lean-free", "hakmem-lean-dontneed"):
            if lean not in names:
                continue
            add("loop: %s/hakmem (FAST) mem syscalls per op <= 2" % lean,
                ratio(syscalls_per_op(res, "loop", lean), syscalls_per_op(res, "loop", H)),
                lambda v: v <= 2.0)
            add("loop: %s/hakmem (FAST) minor faults <= 2" % lean,
                ratio(m("loop", lean, "minor_faults"), m("loop", H, "minor_faults")),
                lambda v: v <= 2.0)
    if not rows:
        return None
    return md_table(["target (issue)", "measured", "status"], rows)


# The workloads of the newest peers' target (issue: every workload at or
# ahead of the best of them): all but burst and loop, which measure what is
# given back rather than speed (they are shown, not counted).
NEWEST_UNCOUNTED = ("burst", "loop", "soak")
NEWEST_HAKMEM = ("hakmem", "hakmem-thp", "hakmem-lean-free", "hakmem-lean-dontneed")


def newest_report(res, wls, allocs):
    """hakmem against the best of the newest peers on each workload: the
    best by median throughput, the ratios, peak RSS and faults side by
    side; the geometric mean over the counted workloads and the targets.
    None when no newest peer or no hakmem ran."""
    newest = [a.name for a in allocs if a.newest]
    ours = [n for n in NEWEST_HAKMEM if n in [a.name for a in allocs]]
    if not newest or not ours:
        return None

    def m(wl, a, f):
        v = res.vals(wl, a, f)
        return med(v) if v and not res.failed(wl, a) else None

    header = ["workload", "best newest peer", "its Mops/s"] + ["%s / best" % n for n in ours] + \
        ["CPU s (whole program): best, " + ", ".join(ours),
         "peak RSS MiB: best, " + ", ".join(ours) + (", glibc" if "glibc" in [a.name for a in allocs] else ""),
         "minor faults: best, " + ", ".join(ours)]
    rows, logs = [], {n: [] for n in ours}
    worst = {n: None for n in ours}
    for wl in wls:
        cands = [(m(wl, p, "throughput"), p) for p in newest if m(wl, p, "throughput")]
        if not cands:
            continue
        bt, best = max(cands)
        counted = wl not in NEWEST_UNCOUNTED
        row = [wl if counted else wl + " (not counted)", best, "%.2f" % (bt / 1e6)]
        for n in ours:
            t = m(wl, n, "throughput")
            row.append(fmt_ratio(t, bt))
            if t and counted:
                logs[n].append(math.log(t / bt))
                if worst[n] is None or t / bt < worst[n][0]:
                    worst[n] = (t / bt, wl)
        cpu = [m(wl, best, "cpu_s")] + [m(wl, n, "cpu_s") for n in ours]
        row.append(", ".join("-" if v is None else "%.3f" % v for v in cpu))
        rss = [m(wl, best, "peak_rss_kib")] + [m(wl, n, "peak_rss_kib") for n in ours]
        if "glibc" in [a.name for a in allocs]:
            rss.append(m(wl, "glibc", "peak_rss_kib"))
        row.append(", ".join("-" if v is None else "%.1f" % (v / 1024.0) for v in rss))
        flt = [m(wl, best, "minor_faults")] + [m(wl, n, "minor_faults") for n in ours]
        row.append(", ".join("-" if v is None else "%d" % v for v in flt))
        rows.append(row)
    if not rows:
        return None
    gm = {n: math.exp(sum(v) / len(v)) if v else None for n, v in logs.items()}
    rows.append(["geomean (counted)", "", ""] + [("%.2fx" % gm[n]) if gm[n] else "-" for n in ours] + ["", "", ""])
    text = [md_table(header, rows), ""]
    trows = []
    for n in ours:
        if gm[n] is None:
            continue
        trows.append(["%s / best newest peer, geomean >= 1.10" % n, "%.2f" % gm[n],
                      "met" if gm[n] >= 1.10 else "**not met**"])
        w, wwl = worst[n]
        trows.append(["%s / best newest peer, every workload >= 1.0" % n, "%.2f (%s)" % (w, wwl),
                      "met" if w >= 1.0 else "**not met**"])
    text.append(md_table(["target (issue)", "measured", "status"], trows))
    return "\n".join(text)


THP_PAIRS = (("hakmem", "hakmem-thp"), ("hakmem-lean-free", "hakmem-lean-free-thp"))


def thp_report(res, wls, names):
    """The trade of thp:1, from this run's medians: each hakmem mode with
    and without huge pages, time, page faults, peak RSS and the huge pages
    still mapped at the end. None unless a pair ran."""
    pairs = [(a, b) for a, b in THP_PAIRS if a in names and b in names]
    if not pairs:
        return None

    def m(wl, a, f):
        v = [x for x in res.vals(wl, a, f) if x >= 0]
        return med(v) if v and not res.failed(wl, a) else None

    rows = []
    for wl in wls:
        for a, b in pairs:
            t0, t1 = m(wl, a, "time_s"), m(wl, b, "time_s")
            f0, f1 = m(wl, a, "minor_faults"), m(wl, b, "minor_faults")
            r0, r1 = m(wl, a, "peak_rss_kib"), m(wl, b, "peak_rss_kib")
            h1 = m(wl, b, "end_anonhuge_kib")
            if None in (t0, t1, f0, f1, r0, r1):
                continue
            rows.append([wl, "%s -> %s" % (a, b), "%.3f -> %.3f (%s)" % (t0, t1, fmt_ratio(t1, t0)),
                         "%d -> %d (%s)" % (f0, f1, fmt_ratio(f1, f0)),
                         "%.1f -> %.1f (%+.1f)" % (r0 / 1024.0, r1 / 1024.0, (r1 - r0) / 1024.0),
                         "-" if h1 is None else "%.1f" % (h1 / 1024.0)])
    if not rows:
        return None
    return md_table(["workload", "without -> with thp:1", "time s (ratio)", "minor faults (ratio)",
                     "peak RSS MiB (difference)", "end AnonHugePages MiB"], rows)


LEAN_BYTES = ("hakmem-lean-free", "hakmem-lean-dontneed", "hakmem")


def lean_bytes_report(res, wls, names):
    """Where hakmem's bytes are (--stats), beside glibc's peak RSS: per
    workload and hakmem mode, the medians of peak RSS, of hakmem's own
    peaks (bytes committed: superslabs and large blocks not given back;
    superslabs in use) and of what it still holds at exit (resident
    estimate, cached for reuse). None without stats or without glibc."""
    ours = [n for n in LEAN_BYTES if n in names]
    if "glibc" not in names or not ours:
        return None

    def m(wl, a, f, stat=False):
        if res.failed(wl, a):
            return None
        v = [r["stats"][f] for r in res.runs.get((wl, a), []) if f in r.get("stats", {})] if stat \
            else res.vals(wl, a, f)
        return med(v) if v else None

    MiB = 1024.0 * 1024.0
    rows = []
    for wl in wls:
        g = m(wl, "glibc", "peak_rss_kib")
        for a in ours:
            p = m(wl, a, "peak_rss_kib")
            cp = m(wl, a, "committed_peak", True)
            if p is None or cp is None:
                continue
            ssp = m(wl, a, "ss_live_peak", True)
            rows.append([wl, a, "%.1f" % (g / 1024.0) if g else "-", "%.1f" % (p / 1024.0),
                         ("%+.1f" % ((p - g) / 1024.0)) if g else "-",
                         "%.1f" % (cp / MiB), "%d" % ssp if ssp is not None else "-",
                         "%.1f" % (m(wl, a, "resident", True) / MiB),
                         "%.1f" % (m(wl, a, "cached", True) / MiB),
                         "%.1f" % (m(wl, a, "large_cached", True) / MiB)])
    if not rows:
        return None
    return md_table(["workload", "allocator", "glibc peak RSS MiB", "peak RSS MiB", "above glibc MiB",
                     "committed peak MiB", "superslabs peak", "resident at exit MiB",
                     "cached at exit MiB", "large cached at exit MiB"], rows)


def write_csv(path, rows):
    keys = []
    for r in rows:
        for k in r:
            if k not in keys:
                keys.append(k)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow(r)


# --------------------------------------------------------------------------
# Plots (gnuplot)
# --------------------------------------------------------------------------
def gnuplot(outdir, name, script, notes):
    if not shutil.which("gnuplot"):
        notes.append("gnuplot not found: %s.svg not drawn" % name)
        return None
    gp = os.path.join(outdir, name + ".gp")
    with open(gp, "w") as f:
        f.write("set terminal svg size 900,500 dynamic enhanced font 'sans,11' background rgb 'white'\n")
        f.write("set output '%s.svg'\n" % name)
        f.write(script)
    p = subprocess.run(["gnuplot", name + ".gp"], cwd=outdir, capture_output=True, text=True)
    if p.returncode != 0:
        notes.append("gnuplot failed on %s: %s" % (name, p.stderr.strip()[:200]))
        return None
    return name + ".svg"


def gp_str(s):
    return "'" + s.replace("'", "''").replace("_", "\\\\_") + "'"


def plot_bars(outdir, name, res, wls, allocs, field, base, title, ylabel, notes):
    dat = os.path.join(outdir, name + ".dat")
    with open(dat, "w") as f:
        f.write("workload " + " ".join(allocs) + "\n")
        for wl in wls:
            b = med(res.vals(wl, base, field)) if base else None
            cells = []
            for a in allocs:
                v = med(res.vals(wl, a, field))
                if v is None or res.failed(wl, a) or (base and not b):
                    cells.append("NaN")
                else:
                    cells.append("%.4f" % (v / b if base else v / 1024.0))
            f.write(wl + " " + " ".join(cells) + "\n")
    n = len(allocs)
    script = ("set title %s\nset ylabel %s\nset style data histograms\n"
              "set style histogram clustered gap 1\nset style fill solid 0.8 border -1\n"
              "set boxwidth 0.9\nset key outside right top noenhanced\nset grid ytics\n"
              "set yrange [0:*]\nset xtics noenhanced\n"
              "plot for [i=2:%d] '%s.dat' using i:xtic(1) title columnheader(i)\n"
              % (gp_str(title), gp_str(ylabel), n + 1, name))
    return gnuplot(outdir, name, script, notes)


def plot_lines(outdir, name, series, title, notes, xlabel="time (s)", logy=False):
    """series: [(label, csv file name, x col, y col)], CSV with a header row."""
    if not series:
        return None
    plots = ["'%s' using %d:($%d/1024) every ::1 with lines lw 2 title %s"
             % (fn, xc, yc, gp_str(label)) for label, fn, xc, yc in series]
    script = ("set title %s\nset xlabel %s\nset ylabel 'Rss (MiB)'\n"
              "set datafile separator ','\nset key outside right top noenhanced\n"
              "set grid\n%s\nplot %s\n"
              % (gp_str(title), gp_str(xlabel),
                 "set logscale y\nset yrange [*:*]" if logy else "set yrange [0:*]",
                 ", \\\n  ".join(plots)))
    return gnuplot(outdir, name, script, notes)


# --------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------
def thp_mode_text():
    """The system's transparent hugepage settings, as sysfs shows them."""
    parts = []
    for f in ("enabled", "defrag"):
        try:
            with open("/sys/kernel/mm/transparent_hugepage/" + f) as fh:
                parts.append("%s: %s" % (f, fh.read().strip()))
        except OSError:
            parts.append("%s: unreadable" % f)
    return "/sys/kernel/mm/transparent_hugepage " + ", ".join(parts)


def header_lines(args, allocs, base, cmdline):
    lines = ["# hakmem benchmark report", "",
             "- command: `%s`" % cmdline,
             "- date: %s" % time.strftime("%Y-%m-%d %H:%M:%S %Z"),
             "- host: %s, %d CPUs online, kernel %s" % ("this machine",
                                                     os.cpu_count() or 0, os.uname().release),
             ("- load average at the start (1, 5, 15 min): %.2f %.2f %.2f" % args.load_start)
             if getattr(args, "load_start", None) else "- load average at the start: -",
             "- load average at the end (1, 5, 15 min): %.2f %.2f %.2f (other work on the machine"
             " shows here)" % os.getloadavg(),
             "- transparent huge pages: %s" % thp_mode_text(),
             "- baseline for ratios: %s" % (base or "none")]
    try:
        rev = subprocess.run(["git", "-C", args.srcdir, "log", "-1", "--format=%h %s"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        if rev:
            lines.insert(3, "- source: %s" % rev)
    except (OSError, subprocess.TimeoutExpired):
        pass
    for a in allocs:
        lines.append("- `%s`: %s" % (a.name, a.describe()))
    return lines


def cmd_run(args):
    notes = []
    mode = args.mode
    allocs = select_allocs(args, "run" if mode != "tiny" else "check", notes)
    if not allocs:
        sys.stderr.write("harness: no allocator to run\n")
        return 2
    names = [a.name for a in allocs]
    base = pick_baseline(args, allocs)
    wls = args.workloads.split(",") if args.workloads else list(RUN_WORKLOADS)
    for wl in wls:
        if wl not in WORKLOADS:
            sys.stderr.write("harness: unknown workload '%s'\n" % wl)
            return 2
        prog = os.path.join(args.bindir, WORKLOADS[wl][0])
        if not os.access(prog, os.X_OK):
            sys.stderr.write("harness: %s not built (make %s)\n" % (prog, WORKLOADS[wl][0]))
            return 2
    reps = args.reps or REPS[mode]
    os.makedirs(args.out, exist_ok=True)
    res = Results()
    extra = {"seconds": "2", "warmup": "1"}
    t_start = time.time()
    # Interleaved: for each repetition, every workload, every allocator in
    # turn (A B C A B C ...), so that a slow phase of the machine hits all.
    for rep in range(1, reps + 1):
        for wl in wls:
            for a in allocs:
                if not a.runs(wl):
                    continue
                try:
                    r = run_once(args, a, wl, mode, extra)
                    res.add(wl, a.name, rep, r)
                except RunError as e:
                    res.add(wl, a.name, rep, err=str(e))
                if args.verbose:
                    sys.stderr.write("[%5.0fs] rep %d %s %s\n" % (time.time() - t_start, rep, wl, a.name))
    # Syscall counts: separate runs under strace (not timed).
    if args.strace and shutil.which("strace"):
        for wl in wls:
            for a in allocs:
                if res.failed(wl, a.name) or not a.runs(wl):
                    continue
                try:
                    res.sys[(wl, a.name)] = strace_counts(args, a, wl, mode)
                except (RunError, subprocess.TimeoutExpired) as e:
                    notes.append("strace %s/%s: %s" % (wl, a.name, e))
    elif args.strace:
        notes.append("strace not found: syscalls per op not measured")
    # RSS over time of the burst workload, one traced run per allocator.
    traces = []
    if "burst" in wls and args.trace:
        tool = os.path.join(args.srcdir, "tools", "rss-trace")
        for a in allocs:
            if res.failed("burst", a.name) or a.wrap or not a.runs("burst"):
                continue
            fn = "rss_burst_%s.csv" % a.name
            cmd = [sys.executable, tool, "-q", "-i", "10", "-o", os.path.join(args.out, fn)]
            for k, v in sorted(a.env.items()):
                cmd += ["-E", "%s=%s" % (k, v)]
            cmd += ["--"] + workload_argv(args, "burst", mode)
            p = subprocess.run(cmd, env=proc_env(Alloc("x"), False), capture_output=True,
                               text=True, timeout=TIMEOUT[mode])
            if p.returncode == 0:
                traces.append((a.name, fn, 1, 2))
            else:
                notes.append("rss-trace of burst/%s failed (exit %d)" % (a.name, p.returncode))

    # ---- report
    cmdline = args.cmdline
    out = header_lines(args, allocs, base, cmdline)
    out.insert(3, "- mode: %s, %d interleaved repetitions per (workload, allocator), threads=%d"
               % (mode, reps, args.threads))
    out.append("")
    for wl in wls:
        out.append("## %s `%s`" % (wl, " ".join(workload_argv(args, wl, mode, extra)[1:])))
        out.append("")
        out.append(report_workload(res, wl, names, base))
        out.append("")
    t = targets_report(res, names)
    if t:
        out += ["## Targets", "", t, ""]
    t = thp_report(res, wls, names)
    if t:
        out += ["## Huge pages (thp:1): the trade", "",
                "Medians of this run; the system's THP mode decides whether thp:1 asks for"
                " anything (%s)." % thp_mode_text(), "", t, ""]
    t = lean_bytes_report(res, wls, names) if args.stats else None
    if t:
        out += ["## Where hakmem's bytes are (--stats), beside glibc's peak RSS", "",
                "hakmem's statistics at exit (HAKMEM_STATS=json), medians: its peaks (bytes"
                " committed: superslabs and large blocks not given back; superslabs in use) and"
                " what it still holds after the program freed everything.", "", t, ""]
    t = newest_report(res, wls, allocs)
    if t:
        out += ["## Against the newest peers (%s)" % ", ".join(a.name for a in allocs if a.newest), "",
                "Per workload, the newest peer with the highest median throughput, and each"
                " hakmem mode's median throughput divided by it.", "", t, ""]
    # CSVs
    write_csv(os.path.join(args.out, "runs.csv"), res.rawrows)
    summ = []
    ran = {a.name: a for a in allocs}
    for wl in wls:
        for a in names:
            if not ran[a].runs(wl):
                continue
            row = {"workload": wl, "allocator": a, "ok": int(not res.failed(wl, a))}
            for f in ("throughput", "peak_rss_kib", "end_rss_kib", "end_lazyfree_kib",
                      "end_anonhuge_kib", "minor_faults", "time_s", "cpu_s", "burst_before_kib", "burst_after_kib",
                      "burst_after_lazyfree_kib", "burst_delta_kib"):
                v = res.vals(wl, a, f)
                if v:
                    row[f + "_median"] = med(v)
                    row[f + "_min"] = min(v)
                    row[f + "_max"] = max(v)
            spo = syscalls_per_op(res, wl, a)
            if spo is not None:
                row["mem_syscalls_per_op"] = spo
                for k, v in res.sys[(wl, a)][0].items():
                    row["sys_" + k] = v
            summ.append(row)
    write_csv(os.path.join(args.out, "summary.csv"), summ)
    # Plots
    if args.plots:
        plots = []
        plots.append(plot_bars(args.out, "throughput", res, wls, names, "throughput", base,
                               "Throughput relative to %s (median, higher is better)" % base,
                               "throughput / %s" % base, notes))
        plots.append(plot_bars(args.out, "peak_rss", res, wls, names, "peak_rss_kib", None,
                               "Peak RSS (median, lower is better)", "MiB", notes))
        plots.append(plot_lines(args.out, "rss_burst", traces,
                                "burst-and-release: Rss over time", notes))
        plots = [p for p in plots if p]
        if plots:
            out.append("Plots in %s: %s" % (args.out, ", ".join(plots)))
            out.append("")
    else:
        notes.append("plots not drawn (--no-plots)")
    failed = sorted(res.fails)
    if failed:
        out.append("## Failures")
        out.append("")
        for wl, a in failed:
            out.append("- %s / %s: %s" % (wl, a, "; ".join(sorted(set(res.fails[(wl, a)])))))
        out.append("")
    if notes:
        out.append("Notes:")
        out += ["- " + n for n in notes]
        out.append("")
    out.append("CSV: %s/runs.csv (every run), %s/summary.csv (medians, min, max, syscalls)"
               % (args.out, args.out))
    text = "\n".join(out) + "\n"
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write(text)
    sys.stdout.write(text)
    if failed:
        sys.stderr.write("harness: %d (workload, allocator) pairs FAILED\n" % len(failed))
        return 1
    return 0


def cmd_soak(args):
    notes = []
    allocs = select_allocs(args, "soak", notes)
    if not allocs:
        sys.stderr.write("harness: no allocator to soak\n")
        return 2
    base = pick_baseline(args, allocs)
    seconds = max(2, int(round(args.minutes * 60)))
    warmup = args.warmup if args.warmup is not None else max(1, min(30, seconds // 10))
    os.makedirs(args.out, exist_ok=True)
    mode = "tiny" if args.mode == "tiny" else "full"
    extra = {"seconds": str(seconds), "warmup": str(warmup)}
    rows, series, fails, summ = [], [], {}, []
    for a in allocs:
        sys.stderr.write("soak: %s for %d s\n" % (a.name, seconds))
        try:
            r = run_once(args, a, "soak", mode, extra, timeout=seconds * 2 + 60)
        except RunError as e:
            fails[a.name] = str(e)
            rows.append([a.name, "**FAIL**: %s" % e, "", "", "", "", ""])
            continue
        s = r["samples"]
        fn = "soak_%s.csv" % a.name
        with open(os.path.join(args.out, fn), "w") as f:
            f.write("t_s,rss_kib,lazyfree_kib,ops\n")
            for t, rss, lz, n in s:
                f.write("%.3f,%d,%d,%d\n" % (t, rss, lz, n))
        series.append((a.name, fn, 1, 2))
        warm = next((x for x in s if x[0] >= warmup), s[-1])
        end = s[-1]
        after = [x[1] for x in s if x[0] >= warmup]
        drift = 100.0 * (end[1] - warm[1]) / warm[1] if warm[1] > 0 else float("nan")
        rows.append([a.name, "%.2f" % (r["throughput"] / 1e6), "%.1f" % (warm[1] / 1024.0),
                     "%.1f" % (end[1] / 1024.0), "%.1f" % (max(after) / 1024.0),
                     "%.1f" % (end[2] / 1024.0), "%+.2f %%" % drift])
        summ.append({"allocator": a.name, "throughput": r["throughput"],
                     "rss_warm_kib": warm[1], "rss_end_kib": end[1],
                     "rss_max_after_warmup_kib": max(after), "lazyfree_end_kib": end[2],
                     "drift_pct": drift, "peak_rss_kib": r["peak_rss_kib"],
                     "minor_faults": r["minor_faults"], "seconds": seconds, "warmup_s": warmup})
    out = header_lines(args, allocs, base, args.cmdline)
    out += ["- soak: %d s per allocator, warm-up %d s, one sample a second" % (seconds, warmup), "",
            "## soak (steady working set)", "",
            md_table(["allocator", "Mops/s", "Rss at warm-up end MiB", "Rss at end MiB",
                      "max Rss after warm-up MiB", "LazyFree at end MiB", "drift"], rows), ""]
    write_csv(os.path.join(args.out, "soak.csv"), summ)
    if args.plots:
        p = plot_lines(args.out, "soak_rss", series, "soak: Rss over time", notes)
        if p:
            out.append("Plot: %s/%s" % (args.out, p))
            out.append("")
    if notes:
        out += ["Notes:"] + ["- " + n for n in notes] + [""]
    text = "\n".join(out) + "\n"
    with open(os.path.join(args.out, "soak.md"), "w") as f:
        f.write(text)
    sys.stdout.write(text)
    return 1 if fails else 0


LONGRUN_ALLOCS = ["hakmem", "hakmem-lean-free", "glibc", "mimalloc", "jemalloc", "tcmalloc"]


def cmd_longrun(args):
    """bench_longrun against each allocator, interleaved and repeated: Rss at
    10 % of the operations and at the end, and the drift between them."""
    notes = []
    if not args.allocs:
        found = {a.name for a in discover_args(args, notes)}
        args.allocs = ",".join(n for n in LONGRUN_ALLOCS if n in found)
    allocs = select_allocs(args, "longrun", notes)
    if not allocs:
        sys.stderr.write("harness: no allocator to run\n")
        return 2
    prog = os.path.join(args.bindir, WORKLOADS["longrun"][0])
    if not os.access(prog, os.X_OK):
        sys.stderr.write("harness: %s not built (make %s)\n" % (prog, WORKLOADS["longrun"][0]))
        return 2
    mode = "tiny" if args.mode == "tiny" else "full"
    ops = args.ops or 100000000
    extra = {"ops": str(ops), "trim_every": str(args.trim_every), "late_tsd": str(args.late_tsd),
             "roles": args.roles}
    reps = args.reps or (1 if mode == "tiny" else 3)
    os.makedirs(args.out, exist_ok=True)
    res = Results()
    series = []
    t_start = time.time()
    for rep in range(1, reps + 1):
        for a in allocs:
            try:
                r = run_once(args, a, "longrun", mode, extra,
                             timeout=max(600, ops // 100000))
                res.add("longrun", a.name, rep, r)
                if rep == 1:
                    fn = "longrun_%s.csv" % a.name
                    with open(os.path.join(args.out, fn), "w") as f:
                        f.write("pct_ops,rss_kib,lazyfree_kib,vsz_kib,faults,heaps,ss_live\n")
                        n = len(r["samples_lr"])
                        for x in r["samples_lr"]:
                            f.write("%.1f,%d,%d,%d,%d,%s,%s\n"
                                    % (100.0 * x["n"] / n, x["rss"], x["lazyfree"], x["vsz"],
                                       x["faults"], x["hk"].get("heaps", ""),
                                       x["hk"].get("ss_live", "")))
                    series.append((a.name, fn, 1, 2))
            except RunError as e:
                res.add("longrun", a.name, rep, err=str(e))
            if args.verbose:
                sys.stderr.write("[%5.0fs] rep %d longrun %s\n" % (time.time() - t_start, rep, a.name))

    def mv(a, f, scale=1.0, fmt="%.1f"):
        v = res.vals("longrun", a, f)
        if not v:
            return "-"
        if len(v) == 1:
            return fmt % (v[0] / scale)
        return (fmt + " (" + fmt + ".." + fmt + ")") % (med(v) / scale, min(v) / scale,
                                                         max(v) / scale)

    def pair(a, k):
        x, y = res.vals("longrun", a, "lr_%s10" % k), res.vals("longrun", a, "lr_%s_end" % k)
        return "%d / %d" % (med(x), med(y)) if x and y else "-"

    rows, trows = [], []
    for a in allocs:
        n = a.name
        if res.failed("longrun", n):
            rows.append([n, "**FAIL**: " + "; ".join(sorted(set(res.fails[("longrun", n)])))]
                        + [""] * 10)
            if not res.vals("longrun", n, "throughput"):
                continue
        rows.append([n, mv(n, "throughput", 1e6, "%.2f"), mv(n, "lr_rss10_kib", 1024.0),
                     mv(n, "lr_rss_end_kib", 1024.0), mv(n, "lr_drift_pct", 1.0, "%+.1f"),
                     mv(n, "lr_drift_nolazy_pct", 1.0, "%+.1f"),
                     mv(n, "lr_drift_med5_pct", 1.0, "%+.1f"),
                     mv(n, "lr_vsz_end_kib", 1024.0, "%.0f"),
                     mv(n, "minor_faults", 1.0, "%.0f"), pair(n, "heaps"), pair(n, "ss_live")])
        if a.hakmem:
            d = res.vals("longrun", n, "lr_drift_pct")
            if d:
                trows.append(["%s: Rss at the end within 5 %% of Rss at 10 %%" % n,
                              "%+.1f %%" % med(d), "met" if abs(med(d)) <= 5.0 else "**not met**"])
    out = header_lines(args, allocs, pick_baseline(args, allocs), args.cmdline)
    out += ["- longrun: `%s`, %d interleaved repetitions; medians (min..max)"
            % (" ".join(workload_argv(args, "longrun", mode, extra)[1:]), reps), "",
            "## longrun (a server that runs for months, compressed)", "",
            md_table(["allocator", "Mops/s", "Rss at 10 % MiB", "Rss at end MiB", "drift %",
                      "drift of Rss - LazyFree %", "drift, medians of 5 samples %",
                      "VmSize at end MiB", "minor faults", "hakmem heaps at 10 % / end",
                      "hakmem superslabs at 10 % / end"], rows), ""]
    if trows:
        out += ["## Targets", "", md_table(["target (issue)", "measured", "status"], trows), ""]
    write_csv(os.path.join(args.out, "longrun.csv"), res.rawrows)
    if args.plots:
        p = plot_lines(args.out, "longrun_rss", series, "longrun: Rss over the run",
                       notes, xlabel="operations done (% of the run)", logy=True)
        if p:
            out += ["Plot: %s/%s" % (args.out, p), ""]
    if notes:
        out += ["Notes:"] + ["- " + x for x in notes] + [""]
    out.append("CSV: %s/longrun.csv (every run), %s/longrun_NAME.csv (the samples of the "
               "first repetition)" % (args.out, args.out))
    text = "\n".join(out) + "\n"
    with open(os.path.join(args.out, "longrun.md"), "w") as f:
        f.write(text)
    sys.stdout.write(text)
    if res.fails:
        sys.stderr.write("harness: longrun FAILED for %s\n"
                         % ", ".join(sorted(a for _, a in res.fails)))
        return 1
    return 0


def cmd_demo(args):
    notes = []
    found = {a.name: a for a in discover_args(args, notes)}
    if "hakmem" not in found:
        sys.stderr.write("demo: %s/libhakmem.so is not built\n" % args.libdir)
        return 1
    allocs = [found["hakmem"], found["glibc"]]
    if "mimalloc" in found:
        allocs.append(found["mimalloc"])
    cycles = str(args.cycles or 5000000)
    reps = args.reps or 3
    res = Results()
    print("demo: bench_random_mixed %s 8192, %d interleaved runs each (%s)"
          % (cycles, reps, ", ".join(a.name for a in allocs)))
    for rep in range(reps):
        for a in allocs:
            argv = [os.path.join(args.bindir, "bench_random_mixed"), cycles, "8192"]
            try:
                p = subprocess.run(argv, env=proc_env(a, False), capture_output=True,
                                   text=True, timeout=120)
                if p.returncode != 0:
                    raise RunError("exit status %d" % p.returncode)
                r = parse_output("random_mixed", p.stdout, p.stderr)
                res.add("rm", a.name, rep, r)
                print("  %-9s %8.2f Mops/s  peak RSS %6.1f MiB  %6d minor faults"
                      % (a.name, r["throughput"] / 1e6, r["peak_rss_kib"] / 1024.0,
                         r["minor_faults"]))
            except (RunError, subprocess.TimeoutExpired) as e:
                res.add("rm", a.name, rep, err=str(e))
                print("  %-9s FAIL: %s" % (a.name, e))
    bt = med(res.vals("rm", "glibc", "throughput"))
    br = med(res.vals("rm", "glibc", "peak_rss_kib"))
    rows = []
    for a in allocs:
        if res.failed("rm", a.name):
            rows.append([a.name, "FAIL", "", "", ""])
            continue
        t = med(res.vals("rm", a.name, "throughput"))
        rr = med(res.vals("rm", a.name, "peak_rss_kib"))
        rows.append([a.name, "%.2f" % (t / 1e6), fmt_ratio(t, bt), "%.1f" % (rr / 1024.0),
                     fmt_ratio(rr, br)])
    print("")
    print(md_table(["allocator", "Mops/s (median)", "vs glibc", "peak RSS MiB (median)",
                    "vs glibc"], rows))
    print("")
    print("(medians of %d runs; see bench/README for `make bench`)" % reps)
    return 1 if res.fails else 0


def callgrind_ir(args, alloc, cycles):
    fd, path = tempfile.mkstemp(prefix="callgrind-", suffix=".out")
    os.close(fd)
    try:
        cmd = ["valgrind", "--tool=callgrind", "--toggle-collect=bench_loop",
               "--callgrind-out-file=" + path,
               os.path.join(args.bindir, "bench_random_mixed"), str(cycles), "8192"]
        p = subprocess.run(cmd, env=proc_env(alloc, False), capture_output=True, text=True,
                           timeout=1200)
        if p.returncode != 0:
            raise RunError("valgrind exit status %d: %s" % (p.returncode, p.stderr.strip()[-200:]))
        parse_output("random_mixed", p.stdout, "")
        ir = None
        with open(path) as f:
            for line in f:
                if line.startswith("totals:") or (ir is None and line.startswith("summary:")):
                    ir = int(line.split()[1])
        if not ir:
            raise RunError("no instruction total in callgrind output")
        return ir
    finally:
        os.unlink(path)


def cmd_instr(args):
    notes = []
    if not shutil.which("valgrind"):
        sys.stderr.write("instr: valgrind not found\n")
        return 77
    allocs = select_allocs(args, "instr", notes)
    if not args.allocs:
        allocs = [a for a in allocs if a.name in ("glibc", "mimalloc", "hakmem", "floor") or a.newest
                  or a.name.startswith("hakmem-lean-") and a.name != "hakmem-lean-off"]
    cycles = args.cycles or 2000000
    rows, irs, fails = [], {}, 0
    for a in allocs:
        try:
            irs[a.name] = callgrind_ir(args, a, cycles) / float(cycles)
        except (RunError, subprocess.TimeoutExpired) as e:
            rows.append([a.name, "**FAIL**: %s" % e, ""])
            fails += 1
    base = "mimalloc" if "mimalloc" in irs else pick_baseline(args, allocs)
    for a in allocs:
        if a.name in irs:
            rows.append([a.name, "%.1f" % irs[a.name],
                         fmt_ratio(irs[a.name], irs.get(base))])
    out = ["# Instructions per op (callgrind)", "",
           "- command: `%s`" % args.cmdline,
           "- `valgrind --tool=callgrind --toggle-collect=bench_loop bench_random_mixed %d 8192`:"
           " instructions executed inside the timed loop (malloc/free included), divided by"
           " the cycles" % cycles, "",
           md_table(["allocator", "instructions/op", "vs %s" % base], rows), ""]
    if "hakmem" in irs and "mimalloc" in irs:
        v = irs["hakmem"] / irs["mimalloc"]
        out.append("Target hakmem/mimalloc <= 0.85: %.2f, %s" % (v, "met" if v <= 0.85 else "**not met**"))
        out.append("")
    if notes:
        out += ["Notes:"] + ["- " + n for n in notes] + [""]
    text = "\n".join(out) + "\n"
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "instr.md"), "w") as f:
        f.write(text)
    sys.stdout.write(text)
    return 1 if fails else 0


def cmd_list(args):
    notes = []
    for a in discover_args(args, notes):
        print("%-22s %s" % (a.name, a.describe()))
    for n in notes:
        print("note: " + n)
    return 0


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(prog="harness.py", description=__doc__.split("\n")[0])
    ap.add_argument("command", nargs="?", default="run",
                    choices=["run", "soak", "longrun", "demo", "instr", "list"])
    ap.add_argument("--builddir", default=None,
                    help="top build directory (default: the parent of this script's directory)")
    ap.add_argument("--srcdir", default=os.path.dirname(here), help="top source directory")
    ap.add_argument("--bindir", default=None, help="where the bench programs are (BUILDDIR/bench)")
    ap.add_argument("--libdir", default=None, help="where libhakmem*.so are (BUILDDIR/src/.libs)")
    ap.add_argument("--out", default=None, help="results directory (BUILDDIR/bench/out)")
    ap.add_argument("--mode", default="quick", choices=["tiny", "quick", "full"])
    ap.add_argument("--reps", type=int, default=None, help="repetitions (tiny 1, quick 7, full 9)")
    ap.add_argument("--workloads", default=None, help="comma list (default: all but soak)")
    ap.add_argument("--allocs", default=None,
                    help="comma list of allocator names, 'all' or 'none' (see `list`)")
    ap.add_argument("--alloc", action="append",
                    help="extra allocator NAME=/path.so | NAME=env:K=V,.. | NAME=wrap:CMD")
    ap.add_argument("--peer", action="append", default=[],
                    help="a peer built from source NAME=/path/lib.so (also BENCH_PEERS='NAME=PATH ...'),"
                         " run by default and compared in 'against the newest peers'")
    ap.add_argument("--baseline", default=None, help="ratios against (default mimalloc, else glibc)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timeout", type=int, default=None,
                    help="seconds per run before it counts as failed (tiny 60, quick 300, full 600)")
    ap.add_argument("--minutes", type=float, default=1.0, help="soak: minutes per allocator")
    ap.add_argument("--warmup", type=int, default=None, help="soak: warm-up seconds")
    ap.add_argument("--cycles", type=int, default=None, help="demo / instr: cycles")
    ap.add_argument("--ops", type=int, default=None, help="longrun: operations (default 10^8)")
    ap.add_argument("--trim-every", type=int, default=0,
                    help="longrun: malloc_trim from a side thread every N %% of the run (0: never)")
    ap.add_argument("--late-tsd", type=int, default=16,
                    help="longrun: threads per 1 %% of the run whose first malloc is in the"
                    " last TSD destructor round")
    ap.add_argument("--roles", default="rilkt",
                    help="longrun: the parts that run (r retire, i idle owners, l large blocks,"
                    " k destructor allocation, t thread_local threads; see bench_longrun.c)")
    ap.add_argument("--no-strace", dest="strace", action="store_false")
    ap.add_argument("--no-seccomp", dest="seccomp", action="store_false",
                    help="plain ptrace strace (older strace without --seccomp-bpf)")
    ap.add_argument("--no-trace", dest="trace", action="store_false", help="no rss-trace runs")
    ap.add_argument("--no-plots", dest="plots", action="store_false")
    ap.add_argument("--stats", action="store_true",
                    help="HAKMEM_STATS=json for hakmem runs: gauges and counters go to runs.csv,"
                         " and the report shows where LEAN's bytes are")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    args.cmdline = " ".join(shlex.quote(a) for a in ["bench/harness.py"] + argv)
    args.load_start = os.getloadavg()
    b = args.builddir or os.path.dirname(here)
    args.bindir = os.path.abspath(args.bindir or os.path.join(b, "bench"))
    args.libdir = os.path.abspath(args.libdir or os.path.join(b, "src", ".libs"))
    args.out = os.path.abspath(args.out or os.path.join(b, "bench", "out"))
    args.peer_dirs = []
    for d in (args.srcdir, b):
        d = os.path.abspath(os.path.join(d, PEERS_DIR))
        if d not in args.peer_dirs:
            args.peer_dirs.append(d)
    args.peer_specs = parse_peer_specs(args.peer, "--peer")
    if args.threads < 1:
        ap.error("--threads must be >= 1")
    return {"run": cmd_run, "soak": cmd_soak, "longrun": cmd_longrun, "demo": cmd_demo,
            "instr": cmd_instr, "list": cmd_list}[args.command](args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
