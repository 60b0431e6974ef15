#!/bin/sh
# Thread scaling: bench_churn and bench_prodcons at 1, 2, 4, 8, 16 threads
# (or $THREADS) for hakmem FAST and each peer found, interleaved, REPS times;
# one CSV line per run on stdout:
#   workload,threads,alloc,rep,ops_per_s,peak_rss_kib
# Usage: bench/scaling.sh BUILDDIR [REPS]
set -u
b=${1:?usage: bench/scaling.sh BUILDDIR [REPS]}
reps=${2:-3}
threads=${THREADS:-"1 2 4 8 16"}
lib() {
  case $1 in
    hakmem) echo "$b/src/.libs/libhakmem.so" ;;
    glibc) echo "" ;;
    *) for d in /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib; do
         [ -e "$d/$2" ] && { echo "$d/$2"; return; }
       done; echo "MISSING" ;;
  esac
}
echo "workload,threads,alloc,rep,ops_per_s,peak_rss_kib"
for t in $threads; do
  for rep in $(seq "$reps"); do
    for a in hakmem:x mimalloc:libmimalloc.so.2 jemalloc:libjemalloc.so.2 \
             tcmalloc:libtcmalloc_minimal.so.4 glibc:x; do
      name=${a%%:*}; p=$(lib "$name" "${a#*:}")
      [ "$p" = MISSING ] && continue
      for w in churn prodcons; do
        o=$(LD_PRELOAD=$p timeout 60 "$b/bench/bench_$w" "$t" 2>&1)
        tp=$(echo "$o" | awk '/^Throughput/ {print $3}')
        rss=$(echo "$o" | awk '/^Peak RSS/ {print $4}')
        echo "$w,$t,$name,$rep,${tp:-FAIL},${rss:-}"
      done
    done
  done
done
