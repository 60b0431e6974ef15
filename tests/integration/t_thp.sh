#!/bin/sh
# thp:1 (README, "Huge pages"; hakmem(3), HAKMEM_THP): superslabs are asked
# to be transparent huge pages with MADV_HUGEPAGE only where the system's
# THP mode is `madvise`, never by default; and LEAN never splits a huge
# page it holds: it gives back whole superslabs or nothing.
#
# The mode comes from a fake sysfs tree in a temporary directory, named by
# HAKMEM_SYSFS_ROOT, so the test means the same on every machine. (The
# madvise itself is real: on a kernel without THP it fails, which counts
# as a failure of the call, not of the test.)
#  1. Every column, counters needed: the thp_advise counter (requests
#     issued) of a program that allocates (hk_trim) is above 0 with thp:1
#     in madvise mode, and 0 with thp:1 in always or never mode, without
#     the sysfs file, and with thp off (the default) in madvise mode.
#  2. lean and debug columns (they set their own LEAN settings, budget 0,
#     DONTNEED): hk_trim frees ten slabs of a superslab still in use and
#     calls malloc_trim. With thp off, or thp:1 in never mode, their pages
#     go back (committed bytes fall by eight slabs or more: the control
#     that shows the test can fail); with thp:1 in madvise or always mode
#     nothing is given back in parts: the committed bytes stay, LEAN gives
#     back no part of a superslab (lean_decommit 0) and counts what it kept
#     (thp_kept_whole), and no superslab is kept decommitted at exit (the
#     empty ones were unmapped whole).
set -u
prog="${abs_top_builddir:-.}/tests/integration/hk_trim"
[ -x "$prog" ] || { echo "hk_trim not built"; exit 99; }
column=${HAKMEM_TEST_COLUMN:-${HAKMEM_TEST_VARIANT:-fast}}
tmp=$(mktemp -d) || exit 99
trap 'rm -rf "$tmp"' EXIT
sys="$tmp/sys"
thpdir="$sys/kernel/mm/transparent_hugepage"
mkdir -p "$thpdir"
fail=0
slab=65536

# mode WORD: the fake file says WORD is the mode; none: no file.
mode() {
  if [ "$1" = none ]; then
    rm -f "$thpdir/enabled"
  else
    echo "always madvise never" | sed "s/$1/[$1]/" >"$thpdir/enabled"
  fi
}

# run VAR=VALUE... -- ARGS: hk_trim ARGS with the stats' JSON at exit;
# stdout in $out, the JSON in $json.
run() {
  envs=""
  while [ "$1" != "--" ]; do envs="$envs $1"; shift; done
  shift
  # shellcheck disable=SC2086
  env HAKMEM_SYSFS_ROOT="$sys" HAKMEM_STATS=json $envs "$prog" "$@" >"$tmp/out" 2>"$tmp/err" ||
    { echo "FAIL: hk_trim $* ($envs) failed: $(cat "$tmp/err")"; exit 1; }
  out=$(cat "$tmp/out")
  json=$(cat "$tmp/err")
}
key() { echo "$json" | sed -n "s/.*\"$1\": \([0-9]*\).*/\1/p" | head -n 1; }
val() { echo "$out" | sed -n "s/.*$1=\([0-9-]*\).*/\1/p"; }

counters=0
run -- 1 trim
case "$json" in *'"counters_built_in": true'*) counters=1 ;; esac

# ---- 1. the advice, only in madvise mode ------------------------------------
if [ $counters = 1 ]; then
  for m in madvise always never none; do
    mode $m
    for thp in 1 0; do
      run HAKMEM_THP=$thp -- 1 trim
      n=$(key thp_advise)
      if [ $m = madvise ] && [ $thp = 1 ]; then
        [ "${n:-0}" -gt 0 ] || { echo "FAIL: thp:1, mode madvise: no MADV_HUGEPAGE asked (thp_advise=$n)"; fail=1; }
      else
        [ "${n:-x}" = 0 ] || { echo "FAIL: thp:$thp, mode $m: thp_advise=$n, expected 0"; fail=1; }
      fi
      echo "ok: thp:$thp mode $m: thp_advise=$n"
    done
  done
else
  echo "(counters not built in: the MADV_HUGEPAGE requests are not checked)"
fi

# ---- 2. LEAN gives back whole superslabs or nothing -----------------------------
case "$column" in
  lean|debug)
    lean="HAKMEM_SS_MEM_LEAN=1 HAKMEM_SS_MEM_LEAN_TARGET_MB=0 HAKMEM_SS_MEM_LEAN_DECOMMIT=DONTNEED"
    for c in "0 madvise" "1 never" "1 madvise" "1 always"; do
      thp=${c% *}; m=${c#* }
      mode "$m"
      # shellcheck disable=SC2086
      run $lean HAKMEM_THP=$thp -- 10 trim
      [ "$(val lean_mode)" = 1 ] || { echo "FAIL: LEAN not active"; exit 1; }
      back=$(( $(val committed_freed) - $(val committed_after) ))
      if [ "$thp" = 0 ] || [ "$m" = never ]; then
        # The control: slabs are given back in parts.
        if [ $back -lt $((8 * slab)) ]; then
          echo "FAIL: thp:$thp mode $m: malloc_trim gave back $back bytes of ten free slabs"; fail=1
        fi
        if [ $counters = 1 ] && [ "$(key lean_decommit)" -eq 0 ]; then
          echo "FAIL: thp:$thp mode $m: lean_decommit is 0"; fail=1
        fi
      else
        if [ $back -ne 0 ]; then
          echo "FAIL: thp:1 mode $m: $back bytes of a huge-page superslab given back in parts"; fail=1
        fi
        if [ "$(key ss_decommitted)" != 0 ]; then
          echo "FAIL: thp:1 mode $m: $(key ss_decommitted) superslabs kept decommitted at exit"; fail=1
        fi
        if [ $counters = 1 ]; then
          [ "$(key lean_decommit)" = 0 ] ||
            { echo "FAIL: thp:1 mode $m: lean_decommit=$(key lean_decommit), expected 0"; fail=1; }
          [ "$(key thp_kept_whole)" -gt 0 ] ||
            { echo "FAIL: thp:1 mode $m: thp_kept_whole is 0 (nothing was kept whole)"; fail=1; }
        fi
      fi
      echo "ok: LEAN thp:$thp mode $m: $back bytes given back in parts by malloc_trim"
    done
    ;;
  *) echo "(column $column: LEAN's whole superslabs are checked in the lean and debug columns)" ;;
esac

if [ $fail = 0 ] && [ $counters = 0 ]; then
  echo "SKIP: counters not built in (configure --enable-ss-stats): the MADV_HUGEPAGE requests and LEAN's decommit counts were not checked"
  exit 77
fi
exit $fail
