#!/bin/sh
# t_symbols_file.sh: each built library exports exactly the symbols its
# Debian symbols file lists (debian/libhakmem0.symbols, ...). The package
# build fails on any difference (dpkg-gensymbols -c4); this says so at
# `make check` time, with the names. A new API function is added to the
# three files with the release that brings it.
# Skips (77) without nm.

set -u
b=${abs_top_builddir:?run through make check}
s=${abs_top_srcdir:-$b}
command -v nm >/dev/null 2>&1 || { echo "SKIP: nm not found (binutils)"; exit 77; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hk_syms.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT INT TERM
fail=0
tested=0
for v in "" _lean _debug; do
  so=$b/src/.libs/libhakmem$v.so
  pkg=$(echo "libhakmem$v" | tr _ -)0
  file=$s/debian/$pkg.symbols
  [ -f "$so" ] || { echo "note: libhakmem$v.so not built"; continue; }
  [ -f "$file" ] || { echo "FAIL: $file is missing"; fail=1; continue; }
  head -1 "$file" | grep -q "^libhakmem$v\.so\.0 $pkg " || { echo "FAIL: $file: first line names another library"; fail=1; }
  nm -D --defined-only "$so" | awk '$2 ~ /^[TDBWVRi]$/ {print $3}' | sort -u > "$tmp/built"
  sed -n 's/^ \([^@ ]*\)@.*/\1/p' "$file" | sort -u > "$tmp/listed"
  n=$(wc -l < "$tmp/built")
  [ "$n" -gt 40 ] || { echo "FAIL: nm lists only $n symbols of $so"; fail=1; }
  for sym in $(comm -23 "$tmp/built" "$tmp/listed"); do
    echo "FAIL: libhakmem$v.so exports $sym, which debian/$pkg.symbols does not list"; fail=1
  done
  for sym in $(comm -13 "$tmp/built" "$tmp/listed"); do
    echo "FAIL: debian/$pkg.symbols lists $sym, which libhakmem$v.so does not export"; fail=1
  done
  echo "libhakmem$v.so: $n symbols, as debian/$pkg.symbols lists"
  tested=$((tested + 1))
done
[ $tested -gt 0 ] || { echo "FAIL: no library built"; exit 1; }
exit $fail
