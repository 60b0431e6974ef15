#!/bin/sh
# malloc_trim in LEAN: unused slabs that wait to be given back together (a
# superslab still in use, fewer than sixteen of them) go back at once when
# the program asks. Lean and debug variants only.
set -u
prog="${abs_top_builddir:-.}/tests/integration/hk_trim"
[ -x "$prog" ] || { echo "hk_trim not built"; exit 99; }
case "${HAKMEM_TEST_VARIANT:-}" in
  lean|debug) ;;
  *) echo "SKIP: variant '${HAKMEM_TEST_VARIANT:-}' has no LEAN code"; exit 77 ;;
esac
out=$(HAKMEM_SS_MEM_LEAN=1 HAKMEM_SS_MEM_LEAN_TARGET_MB=0 HAKMEM_SS_MEM_LEAN_DECOMMIT=DONTNEED "$prog" 10 2>&1) \
  || { echo "FAIL: hk_trim failed: $out"; exit 1; }
echo "$out"
val() { echo "$out" | sed -n "s/.*$1=\([0-9-]*\).*/\1/p"; }
[ "$(val lean_mode)" = 1 ] || { echo "FAIL: LEAN not active"; exit 1; }
before=$(val committed_before); after=$(val committed_after)
# Ten 64 KiB slabs were waiting: at least most of them must go.
[ $((before - after)) -ge $((8 * 65536)) ] || { echo "FAIL: malloc_trim gave back $((before - after)) bytes"; exit 1; }
[ "$(val trim)" = 1 ] || { echo "FAIL: malloc_trim returned $(val trim), not 1"; exit 1; }
exit 0
