#!/bin/sh
# Idle memory returned on a timer (README, "Operating hakmem"). hk_burst
# frees a 256 MiB burst (small blocks of 64 classes, large blocks) and
# sleeps without any
# allocator call:
#  - background:1 with the default purge delay (10 s with LEAN off, 1 s
#    with LEAN on): its Rss - LazyFree is back within the budget + 4 MiB of
#    its level before the burst within delay + 1 s, and one thread more
#    than the program's (the background thread) exists;
#  - without it (purge_delay_ms:200): no thread beyond the program's; with
#    LEAN off nothing is given back while the program sleeps (1.2 s: the
#    delay is applied on the allocator's calls only), and its next call
#    (a 1 MiB block allocated and freed) gives it back (all but that block,
#    cut from a cached range and freed just now: it stays for its delay).
#  - fork() with the background thread running: the child starts with
#    the calling thread only, and has its own background thread once its
#    allocator's slow paths ran (created lazily, hk_bgfork).
#  - in the lean and debug columns, LEAN on at its default budget with the
#    background thread: back within 4 MiB (the budget's share too) within
#    the delay + 1 s.
#  - in the lean column, LEAN on at its default budget, no background
#    thread, FREE and DONTNEED: right after the burst is freed, Rss -
#    LazyFree within 2 MiB of its level before (a program that was over
#    budget a moment ago is shrinking: the budget keeps no empty superslab
#    and no large range for it).
# The budget is LEAN's (the column's TARGET_MB) when LEAN is on, else 0.
set -u
prog="${abs_top_builddir:-.}/tests/integration/hk_burst"
[ -x "$prog" ] || { echo "hk_burst not built"; exit 99; }
column=${HAKMEM_TEST_COLUMN:-${HAKMEM_TEST_VARIANT:-fast}}
case "$column" in
  leanfree|leandontneed) lean=1; delay=1000; budget_kb=$(( ${HAKMEM_SS_MEM_LEAN_TARGET_MB:-10} * 1024 )) ;;
  *) lean=0; delay=10000; budget_kb=0 ;;
esac
slack_kb=$((budget_kb + 4096))
fail=0
val() { echo "$out" | sed -n "s/.*$1=\([0-9-]*\).*/\1/p"; }

out=$(HAKMEM_BACKGROUND=1 "$prog" $((delay + 1000)) $slack_kb 2>&1); rc=$?
echo "background, default delay ${delay} ms: $out"
[ $rc = 77 ] && { echo "SKIP: $out"; exit 77; }
[ $rc = 0 ] || { echo "FAIL: hk_burst exited $rc"; exit 1; }
if [ "$(val peak_kb)" -lt $(( $(val base_kb) + 200 * 1024 )) ]; then
  echo "FAIL: the burst did not show in Rss (peak $(val peak_kb) KiB, base $(val base_kb) KiB)"; fail=1
fi
if [ "$(val reached_ms)" -lt 0 ]; then
  echo "FAIL: Rss - LazyFree still $(val idle_kb) KiB after $((delay + 1000)) ms, bound $(( $(val base_kb) + slack_kb )) KiB"
  fail=1
fi
[ "$(val threads)" = 2 ] || { echo "FAIL: $(val threads) threads with the background thread, expected 2"; fail=1; }

out=$(HAKMEM_CONF=purge_delay_ms:200 "$prog" 1200 $slack_kb 2>&1); rc=$?
echo "no background, delay 200 ms: $out"
[ $rc = 0 ] || { echo "FAIL: hk_burst exited $rc"; exit 1; }
[ "$(val threads)" = 1 ] || { echo "FAIL: $(val threads) threads without the background thread, expected 1"; fail=1; }
if [ $lean = 0 ] && [ "$(val reached_ms)" -ge 0 ]; then
  echo "FAIL: with LEAN off and no allocator call, memory went back anyway after $(val reached_ms) ms"; fail=1
fi
if [ "$(val called_kb)" -gt $(( $(val base_kb) + slack_kb + 1024 )) ]; then
  echo "FAIL: after the delay, an allocator call left Rss - LazyFree at $(val called_kb) KiB, bound $(( $(val base_kb) + slack_kb + 1024 )) KiB"
  fail=1
fi

# LEAN at its default budget (10 MiB): run hk_burst with LIMIT_MS and
# SLACK_KB under the extra settings, and fail unless Rss - LazyFree came
# back within the slack in time.
lean_burst() { # what limit_ms slack_kb [VAR=value...]
  what=$1 limit=$2 slack=$3; shift 3
  out=$(env HAKMEM_SS_MEM_LEAN=1 "$@" "$prog" $limit $slack 2>&1); rc=$?
  echo "LEAN, budget 10 MiB, $what: $out"
  [ $rc = 0 ] || { echo "FAIL: hk_burst exited $rc"; exit 1; }
  if [ "$(val reached_ms)" -lt 0 ]; then
    echo "FAIL: LEAN, $what: Rss - LazyFree still $(val idle_kb) KiB after $limit ms, bound $(( $(val base_kb) + slack )) KiB"
    fail=1
  fi
}
# In the columns that have the LEAN code and do not force it: what the
# budget lets it keep goes back too, with the background thread; and in
# the lean column, without it, right after the free in both decommit
# modes (a program over budget a moment ago is shrinking).
case "$column" in
  lean|debug) lean_burst "background, default delay 1000 ms" 2000 4096 HAKMEM_BACKGROUND=1 ;;
esac
if [ "$column" = lean ]; then
  for mode in FREE DONTNEED; do
    lean_burst "$mode, right after the free" 0 2048 HAKMEM_SS_MEM_LEAN_DECOMMIT=$mode
  done
fi

bgfork="${abs_top_builddir:-.}/tests/integration/hk_bgfork"
out=$(HAKMEM_BACKGROUND=1 "$bgfork" 2>&1); rc=$?
echo "fork: $out"
if [ $rc != 0 ]; then
  echo "FAIL: hk_bgfork exited $rc"; fail=1
elif [ "$(val parent)" != 2 ] || [ "$(val child_before)" != 1 ] || [ "$(val child_after)" != 2 ]; then
  echo "FAIL: threads: parent $(val parent) (expected 2), child at fork $(val child_before) (1), after allocating $(val child_after) (2)"
  fail=1
fi
exit $fail
