#!/bin/sh
# prof_instr.sh: what a heap profiler costs, in instructions (callgrind),
# for hakmem (HAKMEM_PROF=1) and jemalloc (MALLOC_CONF=prof:true), both at
# their default mean of 512 KiB between samples, each against itself with
# the profiler off. Deterministic where wall-clock time on a shared machine
# is not (bench/README, "Reading the results honestly").
#
#   bench/prof_instr.sh [BUILDDIR]        (default: the current directory)
#
# Counts the instructions executed inside each workload's own functions
# (--toggle-collect: bench_loop for random_mixed; the producer and consumer
# threads of prodcons; the worker threads of churn and server), allocator
# calls included, start-up and exit excluded. Prints one Markdown table:
# instructions per op, and on/off for each allocator. A workload whose
# threads wait for each other (prodcons: a full or empty ring yields) also
# counts the instructions of waiting, which vary a little between runs.
set -eu
b=$(cd "${1:-.}" && pwd)
lib=$b/src/.libs/libhakmem.so
je=
for d in /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib /usr/local/lib; do
  [ -f "$d/libjemalloc.so.2" ] && { je=$d/libjemalloc.so.2; break; }
done
command -v valgrind >/dev/null || { echo "prof_instr: valgrind not found" >&2; exit 77; }
[ -f "$lib" ] || { echo "prof_instr: $lib not built" >&2; exit 2; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/prof_instr.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# name:toggles:program args
workloads="random_mixed:bench_loop:bench_random_mixed 2000000 8192
prodcons:producer,consumer:bench_prodcons 2 400000
churn:worker_main:bench_churn 2 400000 4096
server:worker_main:bench_server 2 400000 8000 40"

# Instructions per op of one run: TOGGLES "VAR=VALUE ..." PROGRAM ARGS...;
# the ops are the program's own count.
count() {
  toggles=$1 settings=$2; shift 2
  t=
  for f in $(echo "$toggles" | tr , ' '); do t="$t --toggle-collect=$f"; done
  # shellcheck disable=SC2086
  env $settings valgrind --tool=callgrind $t --callgrind-out-file="$tmp/cg" "$@" >"$tmp/out" 2>/dev/null ||
    { echo "prof_instr: failed: $settings $*" >&2; exit 1; }
  ir=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$tmp/cg")
  ops=$(sed -n 's/.*\[ops=\([0-9]*\).*/\1/p; s/.*\[iter=\([0-9]*\).*/\1/p' "$tmp/out" | head -1)
  awk -v ir="$ir" -v ops="$ops" 'BEGIN { printf "%.2f\n", ir / ops }'
}

echo "| workload | hakmem | hakmem prof:1 | on/off | jemalloc | jemalloc prof:true | on/off |"
echo "|---|---|---|---|---|---|---|"
echo "$workloads" | while IFS=: read -r name toggles cmd; do
  set -- $cmd
  prog=$b/bench/$1; shift
  h0=$(count "$toggles" "LD_PRELOAD=$lib" "$prog" "$@")
  h1=$(count "$toggles" "LD_PRELOAD=$lib HAKMEM_PROF=1" "$prog" "$@")
  if [ -n "$je" ]; then
    j0=$(count "$toggles" "LD_PRELOAD=$je" "$prog" "$@")
    j1=$(count "$toggles" "LD_PRELOAD=$je MALLOC_CONF=prof:true" "$prog" "$@")
  else
    j0=0 j1=0
  fi
  awk -v n="$name" -v h0="$h0" -v h1="$h1" -v j0="$j0" -v j1="$j1" 'BEGIN {
    printf "| %s | %.2f | %.2f | %.3f |", n, h0, h1, h1 / h0
    if (j0 > 0) printf " %.2f | %.2f | %.3f |\n", j0, j1, j1 / j0; else print " - | - | - |" }'
done
