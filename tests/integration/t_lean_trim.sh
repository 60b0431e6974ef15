#!/bin/sh
# LEAN gives back the unused slabs of a superslab still in use (the release
# policy's promise, DESIGN 3: memory freed comes back to the OS within the
# budget without waiting for malloc_trim; the threads still calling the
# allocator do the bounded work). hk_trim fills ten 64 KiB slabs of 1 KiB
# blocks next to one block kept alive, frees them, and then:
#  - wait: the program goes on calling malloc/free now and then (every
#    50 ms) for up to 3 s: the ten slabs must go back by themselves, though
#    fewer than sixteen wait (a batch that never fills up must not keep
#    them forever);
#  - trim: malloc_trim(0) gives them back at once and returns 1.
# Both with budget 0 and DONTNEED, so that "given back" shows in Rss: it
# falls to within three slabs of its level before the fill.
#
# It sets its own LEAN settings: lean and debug columns only (the LEAN-on
# columns would run the same thing again).
set -u
prog="${abs_top_builddir:-.}/tests/integration/hk_trim"
[ -x "$prog" ] || { echo "hk_trim not built"; exit 99; }
case "${HAKMEM_TEST_COLUMN:-${HAKMEM_TEST_VARIANT:-}}" in
  lean|debug) ;;
  leanfree|leandontneed)
    echo "SKIP: sets its own LEAN settings (budget 0, DONTNEED); it runs in the lean and debug columns"; exit 77 ;;
  *) echo "SKIP: variant '${HAKMEM_TEST_VARIANT:-}' has no LEAN code"; exit 77 ;;
esac
slab=65536
fail=0
for mode in wait trim; do
  out=$(HAKMEM_SS_MEM_LEAN=1 HAKMEM_SS_MEM_LEAN_TARGET_MB=0 HAKMEM_SS_MEM_LEAN_DECOMMIT=DONTNEED \
        "$prog" 10 $mode 3000 2>&1) || { echo "FAIL: hk_trim $mode failed: $out"; exit 1; }
  echo "$mode:"; echo "$out"
  val() { echo "$out" | sed -n "s/.*$1=\([0-9-]*\).*/\1/p"; }
  [ "$(val lean_mode)" = 1 ] || { echo "FAIL: $mode: LEAN not active"; exit 1; }
  freed=$(val committed_freed); after=$(val committed_after)
  rss_base=$(val rss_base_kb); rss_after=$(val rss_after_kb)
  if [ $mode = wait ]; then
    how="without malloc_trim, after $(val waited_ms) ms of a malloc/free every 50 ms,"
  else
    how="malloc_trim(0)"
  fi
  # Ten slabs were waiting: at least eight must go.
  if [ $((freed - after)) -lt $((8 * slab)) ]; then
    echo "FAIL: $mode: $how gave back $((freed - after)) committed bytes of $((10 * slab)) freed"; fail=1
  fi
  if [ "$rss_base" -lt 0 ] || [ "$rss_after" -lt 0 ]; then
    echo "FAIL: $mode: Rss unreadable (/proc/self/statm)"; fail=1
  elif [ $((rss_after - rss_base)) -gt $((3 * slab / 1024)) ]; then
    echo "FAIL: $mode: $how Rss is $((rss_after - rss_base)) KiB above its level before the fill (bound $((3 * slab / 1024)) KiB)"
    fail=1
  fi
  if [ $mode = trim ] && [ "$(val trim)" != 1 ]; then
    echo "FAIL: trim: malloc_trim returned $(val trim), not 1"; fail=1
  fi
done
exit $fail
