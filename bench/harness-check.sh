#!/bin/sh
# bench/harness-check.sh: quick test of the benchmark programs and harness.
#
# Not a benchmark: no timing figure is judged here. It checks that
#  1. every workload program runs at a tiny size against every built hakmem
#     variant (and each LEAN mode) and prints output the harness parses;
#  2. the strace, rss-trace and plot paths of the harness work, and the
#     longrun command (make bench-longrun) runs and writes its table;
#  3. peers given by path (--peer, BENCH_PEERS) are run and compared, and a
#     missing one is a usage error;
#  4. the harness reports a broken allocator as a failure, not a number:
#     a command that crashes, one that prints garbage, one that prints a
#     partial report, one that exits non-zero after a good report, one that
#     hangs, and a preload library that does not exist (ld.so would only
#     warn and run glibc).
# Run from the top build directory (make check does); $srcdir is the top
# source directory. Exit 77 (skip) without python3.

PYTHON3=${PYTHON3:-python3}
command -v "$PYTHON3" >/dev/null 2>&1 || { echo "SKIP: python3 not found"; exit 77; }
srcdir=${srcdir:-.}
builddir=$(pwd)
harness="$srcdir/bench/harness.py"
[ -f "$harness" ] || { echo "FAIL: $harness not found"; exit 1; }

if ! ls "$builddir"/src/.libs/libhakmem*.so >/dev/null 2>&1; then
    echo "FAIL: no hakmem library in $builddir/src/.libs"
    exit 1
fi

tmp=$(mktemp -d "$builddir/bench-check.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
fail=0
H() { "$PYTHON3" "$harness" --builddir "$builddir" --srcdir "$srcdir" "$@"; }

# 1. Every workload, every hakmem variant (the default set in tiny mode).
if H run --mode tiny --workloads random_mixed,burst,prodcons,churn,server,realloc,large,skewed,fill,classes,soak,longrun \
       --no-strace --no-trace --no-plots --out "$tmp/ok" >"$tmp/ok.md" 2>"$tmp/ok.err"; then
    for wl in random_mixed burst prodcons churn server realloc large skewed fill classes soak longrun; do
        grep -q "^## $wl " "$tmp/ok.md" || { echo "FAIL: no $wl section"; fail=1; }
    done
    if grep -q FAIL "$tmp/ok.md"; then echo "FAIL: a run failed"; fail=1; fi
    grep -q '^| hakmem' "$tmp/ok.md" || { echo "FAIL: no hakmem row"; fail=1; }
    [ -s "$tmp/ok/runs.csv" ] || { echo "FAIL: no runs.csv"; fail=1; }
else
    echo "FAIL: harness failed on the hakmem variants:"; fail=1
fi
cat "$tmp/ok.md" "$tmp/ok.err"

# 2. strace, rss-trace and plots (each one skips itself with a note when its
#    tool is missing; a failure of the harness itself fails the test).
if ! H run --mode tiny --workloads random_mixed,burst --allocs hakmem \
       --out "$tmp/tools" >"$tmp/tools.md" 2>&1; then
    echo "FAIL: harness with strace/rss-trace/plots failed"; cat "$tmp/tools.md"; fail=1
fi

# 2b. The longrun command (make bench-longrun) at the tiny size: its table
#     and its per-allocator sample files (no figure is judged).
if H longrun --mode tiny --allocs hakmem --no-plots --out "$tmp/longrun" \
       >"$tmp/longrun.md" 2>&1; then
    grep -q '^| hakmem | [0-9]' "$tmp/longrun.md" || { echo "FAIL: no longrun row"; fail=1; }
    [ -s "$tmp/longrun/longrun_hakmem.csv" ] || { echo "FAIL: no longrun samples"; fail=1; }
else
    echo "FAIL: harness longrun failed"; cat "$tmp/longrun.md"; fail=1
fi

# 3. Peers built from source, given by path (--peer, BENCH_PEERS): run by
#    default and compared in their own section; a path that does not exist
#    is a usage error (exit 2), not a skipped or a glibc run. A hakmem
#    library stands in for the peer here: nothing in make check needs one.
peerlib=$(ls "$builddir"/src/.libs/libhakmem*.so | head -n 1)
if H run --mode tiny --workloads random_mixed,fill --allocs hakmem --peer "standin=$peerlib" \
       --no-strace --no-trace --no-plots --out "$tmp/peer" >"$tmp/peer.md" 2>&1; then
    grep -q '^## Against the newest peers (standin)' "$tmp/peer.md" ||
        { echo "FAIL: no 'Against the newest peers' section for --peer"; fail=1; }
    grep -q '^| fill | standin | [0-9]' "$tmp/peer.md" ||
        { echo "FAIL: no fill row against the --peer stand-in"; fail=1; }
    grep -q '^| `standin`: LD_PRELOAD=.* (newest peer)' "$tmp/peer.md" ||
        grep -q '^- `standin`: LD_PRELOAD=.* (newest peer)' "$tmp/peer.md" ||
        { echo "FAIL: the report does not list the --peer stand-in"; fail=1; }
else
    echo "FAIL: harness with --peer failed:"; cat "$tmp/peer.md"; fail=1
fi
BENCH_PEERS="viaenv=$peerlib" H list >"$tmp/list.txt" 2>&1
grep -q "^viaenv .*LD_PRELOAD=$peerlib (newest peer)" "$tmp/list.txt" ||
    { echo "FAIL: BENCH_PEERS not listed:"; cat "$tmp/list.txt"; fail=1; }
for bad in "--peer nolib=$tmp/libnone.so" "--peer noequals"; do
    # shellcheck disable=SC2086
    H list $bad >"$tmp/bad.txt" 2>&1
    rc=$?
    if [ "$rc" != 2 ] || ! grep -q 'harness: --peer' "$tmp/bad.txt"; then
        echo "FAIL: '$bad' gave status $rc, expected 2 and a message:"; cat "$tmp/bad.txt"; fail=1
    fi
done
BENCH_PEERS="gone=$tmp/libnone.so" H list >"$tmp/bad.txt" 2>&1
rc=$?
if [ "$rc" != 2 ] || ! grep -q 'harness: BENCH_PEERS gone: .* does not exist' "$tmp/bad.txt"; then
    echo "FAIL: BENCH_PEERS with a missing library gave status $rc:"; cat "$tmp/bad.txt"; fail=1
fi
echo "ok: --peer and BENCH_PEERS"

# 4. Broken allocators must be reported as failures.
expect_fail() {
    name=$1; why=$2; shift 2
    if H run --mode tiny --workloads random_mixed --allocs none --no-strace --no-trace \
           --no-plots --timeout 3 --out "$tmp/$name" "$@" >"$tmp/$name.md" 2>&1; then
        echo "FAIL: harness exited 0 for broken allocator '$name'"; fail=1
    fi
    if ! grep -q "^| $name | \*\*FAIL\*\*: .*$why" "$tmp/$name.md"; then
        echo "FAIL: no FAIL row saying '$why' for broken allocator '$name':"
        cat "$tmp/$name.md"; fail=1
    fi
    if grep -q "^| $name | [0-9]" "$tmp/$name.md"; then
        echo "FAIL: a number was reported for broken allocator '$name'"; fail=1
    fi
    echo "ok: '$name' reported as: $(grep "^| $name |" "$tmp/$name.md" | head -n 1)"
}
expect_fail crash 'killed by signal 11' --alloc 'crash=wrap:sh -c "kill -SEGV $$"'
expect_fail garbage 'no (or several)' \
    --alloc 'garbage=wrap:sh -c "echo Throughput = lots ops/s; echo Peak RSS = little"'
expect_fail partial "no 'Peak RSS" --alloc "partial=wrap:sh -c '\"\$0\" \"\$@\" | head -n 1'"
expect_fail badexit 'exit status 3' --alloc "badexit=wrap:sh -c '\"\$0\" \"\$@\"; exit 3'"
expect_fail hang 'timed out' --alloc 'hang=wrap:sh -c "sleep 30"'
expect_fail nolib 'does not exist' --alloc "nolib=$tmp/libdoes-not-exist.so"

exit $fail
