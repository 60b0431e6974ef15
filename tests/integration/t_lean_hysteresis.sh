#!/bin/sh
# LEAN release hysteresis (the release policy box's promise), end to end: a
# program that frees and re-allocates the same memory in a loop pays
# decommits in its first rounds only; once it stops looping, the next large
# free is released again. The decay itself (how fast, by how much) is
# tests/unit/test_policy's, with a fake clock; here 2 idle seconds, which
# quarter the loop's extra budget, are enough. Needs the LEAN code and the
# counters; other variants skip.
set -u
here=$(dirname "$0")
prog="${abs_top_builddir:-.}/tests/integration/hk_loop"
[ -x "$prog" ] || { echo "hk_loop not built"; exit 99; }
# It sets its own LEAN settings and runs both decommit modes: lean and
# debug columns only (the LEAN-on columns would run the same thing again).
case "${HAKMEM_TEST_COLUMN:-${HAKMEM_TEST_VARIANT:-}}" in
  lean|debug) ;;
  leanfree|leandontneed)
    echo "SKIP: sets its own LEAN settings, both decommit modes; it runs in the lean and debug columns"; exit 77 ;;
  *) echo "SKIP: variant '${HAKMEM_TEST_VARIANT:-}' has no LEAN code"; exit 77 ;;
esac
fail=0
for mode in FREE DONTNEED; do
  out=$(HAKMEM_SS_MEM_LEAN=1 HAKMEM_SS_MEM_LEAN_TARGET_MB=0 HAKMEM_SS_MEM_LEAN_DECOMMIT=$mode \
        "$prog" 32 6 2 2>&1) || { echo "FAIL: $mode: hk_loop failed:"; echo "$out"; exit 1; }
  echo "$mode:"; echo "$out"
  if echo "$out" | grep -q 'stats=0'; then
    echo "SKIP: counters not built in (configure --enable-ss-stats)"; exit 77
  fi
  get() { echo "$out" | grep "^$1 " | sed -n 's/.*decommit=\([0-9]*\).*/\1/p'; }
  d0=$(get round=0); d2=$(get round=2); d5=$(get round=5); di=$(get after-idle)
  echo "$out" | grep -q 'lean_mode=1' || { echo "FAIL: $mode: LEAN not active"; fail=1; }
  [ "$d0" -gt 0 ] || { echo "FAIL: $mode: the first free of 32 MiB released nothing"; fail=1; }
  [ "$d5" -eq "$d2" ] || { echo "FAIL: $mode: the loop still decommits in rounds 3-5 ($d2 -> $d5)"; fail=1; }
  [ "$di" -gt "$d5" ] || { echo "FAIL: $mode: after 2 idle seconds a large free was not released ($d5 -> $di)"; fail=1; }
done
exit $fail
