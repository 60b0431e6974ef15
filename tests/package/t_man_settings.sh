#!/bin/sh
# t_man_settings.sh: every run-time setting in the code is documented in
# hakmem(3), as an item of its ENVIRONMENT list (`.It Ev NAME`), and every
# setting documented there exists in the code.
#
# The settings are read from the code, so a setting added later is caught
# without touching this test:
#  - every string literal that is a HAKMEM_ name ("HAKMEM_X" or
#    "HAKMEM_X=...") in any source under src/: the settings table of
#    env_box.c and any other getenv() of one;
#  - every HAKMEM_ name in ss_mem_lean_env_box.h, which documents the
#    LEAN settings by their names (its include guard aside).
# C macros such as HAKMEM_DEFAULT_DECOMMIT are not string literals and are
# not counted.

set -u
top=${abs_top_srcdir:?run through make check}
man=$top/doc/hakmem.3
[ -f "$man" ] || { echo "FAIL: $man is missing"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hk_mans.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT INT TERM

envc=$(find "$top/src" -name env_box.c | head -1)
[ -n "$envc" ] || { echo "FAIL: no env_box.c under src/: where is the settings table?"; exit 1; }
leanh=$(find "$top/src" -name ss_mem_lean_env_box.h | head -1)

find "$top/src" -name '*.[ch]' -exec grep -hoE '"HAKMEM_[A-Z0-9_]*[A-Z0-9]["=]' {} + |
  sed 's/^"//; s/["=]$//' > "$tmp/code"
if [ -n "$leanh" ]; then
  grep -hoE 'HAKMEM_[A-Z0-9_]*[A-Z0-9]' "$leanh" | grep -v '_H$' >> "$tmp/code"
fi
sort -u "$tmp/code" -o "$tmp/code"
grep -E '^\.It Ev HAKMEM_' "$man" | sed 's/^\.It Ev //; s/ .*//' | sort -u > "$tmp/man"

n=$(wc -l < "$tmp/code")
# The table had eleven settings when this test was written: finding far
# fewer means the extraction broke, not that the settings went away.
if [ "$n" -lt 8 ]; then
  echo "FAIL: only $n settings found in the code ($envc); the extraction is broken:"
  cat "$tmp/code"
  exit 1
fi
grep -qx HAKMEM_VERBOSE "$tmp/code" || { echo "FAIL: HAKMEM_VERBOSE not found in the code"; exit 1; }

fail=0
for s in $(comm -23 "$tmp/code" "$tmp/man"); do
  echo "FAIL: $s is a setting in the code but has no '.It Ev $s' in doc/hakmem.3"
  fail=1
done
for s in $(comm -13 "$tmp/code" "$tmp/man"); do
  echo "FAIL: doc/hakmem.3 documents $s, which the code does not read"
  fail=1
done
echo "$n settings in the code, $(wc -l < "$tmp/man") in hakmem(3)"
exit $fail
