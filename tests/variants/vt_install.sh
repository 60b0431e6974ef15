#!/bin/sh
# vt_install.sh: install into a private DESTDIR, then build and run a tiny
# program against each built variant through its pkg-config file
# (hakmem.pc, hakmem-lean.pc, hakmem-debug.pc), and check that
# hakmem_variant() names the variant and that malloc is hakmem's.
# Also the layout of a clean install: no libtool archive (.la), the man
# pages, the launcher (whose library directory is the installed libdir),
# and each .pc file's URL: and variables (variant=, lean_default=,
# decommit=, stats=).
#
# Runs `make install DESTDIR=<temporary directory>` in the build tree: the
# build itself is not touched (the libraries are already built when `make
# check` runs the tests), and a private DESTDIR keeps parallel tests apart.
# Skips (77) without pkg-config or a C compiler.

set -u
b=${abs_top_builddir:-}
if [ -z "$b" ]; then
  echo "SKIP: abs_top_builddir is not set; run through make check"
  exit 77
fi
command -v pkg-config >/dev/null 2>&1 || { echo "SKIP: pkg-config not found"; exit 77; }
cc=${CC:-cc}
command -v "$cc" >/dev/null 2>&1 || { echo "SKIP: no C compiler ($cc)"; exit 77; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hakmem-install.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT INT TERM
dest=$tmp/root

# A nested make must not inherit the outer make's jobserver or flags.
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES GNUMAKEFLAGS
if ! ${MAKE:-make} -C "$b" install DESTDIR="$dest" >"$tmp/install.log" 2>&1; then
  echo "FAIL: make install DESTDIR=$dest failed:"
  tail -30 "$tmp/install.log"
  exit 1
fi

pcdir=$(find "$dest" -type f -name 'hakmem*.pc' -exec dirname {} \; | sort -u | head -1)
if [ -z "$pcdir" ]; then
  echo "FAIL: no hakmem*.pc installed under $dest"
  exit 1
fi
echo "pkg-config files in ${pcdir#$dest}: $(cd "$pcdir" && ls hakmem*.pc | tr '\n' ' ')"
if [ -z "$(find "$dest" -name hakmem.h)" ]; then
  echo "FAIL: hakmem.h was not installed"
  exit 1
fi

fail=0
if [ -n "$(find "$dest" -name '*.la')" ]; then
  echo "FAIL: libtool archives installed: $(find "$dest" -name '*.la' | tr '\n' ' ')"
  fail=1
fi
for f in share/man/man1/hakmem.1 share/man/man1/rss-trace.1 share/man/man3/hakmem.3 bin/hakmem bin/rss-trace; do
  [ -n "$(find "$dest" -path "*/$f")" ] || { echo "FAIL: $f was not installed"; fail=1; }
done
launcher=$(find "$dest" -path '*/bin/hakmem' | head -1)
if [ -n "$launcher" ]; then
  pclibdir=$(PKG_CONFIG_PATH=$pcdir PKG_CONFIG_LIBDIR=$pcdir pkg-config --variable=libdir hakmem)
  which=$(sh "$launcher" --which 2>/dev/null)
  echo "installed launcher: --which prints $which"
  [ "$which" = "$pclibdir/libhakmem.so.0" ] || { echo "FAIL: the launcher preloads '$which', not $pclibdir/libhakmem.so.0"; fail=1; }
fi

cat > "$tmp/probe.c" <<'EOC'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hakmem.h>
int main(int argc, char **argv)
{
    void *p = malloc(100);
    if (!p || !hakmem_owns(p)) {
        printf("malloc is not hakmem's\n");
        return 1;
    }
    free(p);
    printf("%s\n", hakmem_variant());
    return argc > 1 && strcmp(argv[1], hakmem_variant()) != 0;
}
EOC

tested=0
for v in fast lean debug; do
  case $v in
    fast) pc=hakmem; so=libhakmem.so ;;
    lean) pc=hakmem-lean; so=libhakmem_lean.so ;;
    debug) pc=hakmem-debug; so=libhakmem_debug.so ;;
  esac
  if [ ! -f "$b/src/.libs/$so" ]; then
    if [ -f "$pcdir/$pc.pc" ]; then
      echo "FAIL: $pc.pc installed, but the $v variant was not built"
      fail=1
    else
      echo "note: $v variant not built: skipped"
    fi
    continue
  fi
  if [ ! -f "$pcdir/$pc.pc" ]; then
    echo "FAIL: the $v variant is built but $pc.pc was not installed"
    fail=1
    continue
  fi
  flags=$(PKG_CONFIG_PATH=$pcdir PKG_CONFIG_LIBDIR=$pcdir PKG_CONFIG_SYSROOT_DIR=$dest \
          pkg-config --cflags --libs "$pc") || { echo "FAIL: pkg-config --cflags --libs $pc"; fail=1; continue; }
  echo "$pc: $flags"
  grep -q '^URL: ' "$pcdir/$pc.pc" || { echo "FAIL: $pc.pc has no URL:"; fail=1; }
  vars=
  for var in variant lean_default decommit stats; do
    val=$(PKG_CONFIG_PATH=$pcdir PKG_CONFIG_LIBDIR=$pcdir pkg-config --variable=$var "$pc")
    [ -n "$val" ] || { echo "FAIL: $pc.pc: no $var="; fail=1; }
    vars="$vars $var=$val"
  done
  echo "$pc:$vars"
  case "$vars" in
    *" variant=$v "*) ;;
    *) echo "FAIL: $pc.pc says variant is not $v"; fail=1 ;;
  esac
  libdir=$(PKG_CONFIG_PATH=$pcdir PKG_CONFIG_LIBDIR=$pcdir pkg-config --variable=libdir "$pc")
  # shellcheck disable=SC2086
  if ! "$cc" -o "$tmp/probe-$v" "$tmp/probe.c" $flags >"$tmp/cc-$v.log" 2>&1; then
    echo "FAIL: cannot build against $pc:"
    cat "$tmp/cc-$v.log"
    fail=1
    continue
  fi
  out=$(LD_LIBRARY_PATH=$dest$libdir "$tmp/probe-$v" "$v" 2>&1)
  rc=$?
  # The program must use the installed copy, not the build tree's.
  used=$(LD_LIBRARY_PATH=$dest$libdir ldd "$tmp/probe-$v" 2>/dev/null | grep hakmem)
  echo "$v: variant '$out', exit $rc; $used"
  if [ $rc -ne 0 ] || [ "$out" != "$v" ]; then
    echo "FAIL: the program linked with $pc reports '$out' (exit $rc), expected '$v'"
    fail=1
  fi
  case $used in
    *"$dest"*) ;;
    *) if command -v ldd >/dev/null 2>&1; then
         echo "FAIL: the program does not load the installed library"; fail=1
       fi ;;
  esac
  tested=$((tested + 1))
done
[ $tested -gt 0 ] || { echo "FAIL: no variant tested"; exit 1; }
exit $fail
