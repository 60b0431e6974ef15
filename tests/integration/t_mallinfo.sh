#!/bin/sh
# mallinfo2, mallinfo and malloc_info with glibc's meanings: hk_mallinfo
# checks glibc's identities (arena = uordblks + fordblks; blocks of their
# own mapping in hblks/hblkhd only; uordblks + hblkhd = what is held;
# malloc_info's totals = mallinfo2's) on a known allocation, first under
# glibc's malloc (no preload: the checks themselves are right), then under
# the column's library.
set -u
prog="${abs_top_builddir:-.}/tests/integration/hk_mallinfo"
[ -x "$prog" ] || { echo "hk_mallinfo not built"; exit 99; }
fail=0
echo "== glibc"
env -u LD_PRELOAD "$prog" glibc || { echo "FAIL: the checks do not hold under glibc"; fail=1; }
echo "== hakmem (${HAKMEM_TEST_COLUMN:-?})"
"$prog" hakmem || fail=1
exit $fail
