#!/bin/sh
# t_static.sh: each static archive (./configure --enable-static:
# src/.libs/libhakmem.a, libhakmem_lean.a, libhakmem_debug.a) links into a
# program that then allocates from hakmem: malloc, a thread, strdup inside
# libc, hakmem_variant() and hakmem_owns(). Twice: the archive with the
# shared C library, and a fully static program (`cc -static`, where the C
# library's own static archive is installed).
# Skips (77) when configure did not build the archives, or with no C
# compiler.

set -u
b=${abs_top_builddir:?run through make check}
s=${abs_top_srcdir:-$b}
cc=${CC:-cc}
command -v "$cc" >/dev/null 2>&1 || { echo "SKIP: no C compiler ($cc)"; exit 77; }
if ! ls "$b"/src/.libs/libhakmem*.a 2>/dev/null | grep -qv internal; then
  echo "SKIP: no static archives: configure with --enable-static to test them"
  exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hk_static.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT INT TERM
cat > "$tmp/prog.c" <<'EOC'
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hakmem.h>
static void *worker(void *arg)
{
    void *p = malloc(1000);
    if (!p || !hakmem_owns(p))
        return NULL;
    free(p);
    return arg;
}
int main(void)
{
    char *s = strdup("hakmem");
    void *big = malloc(1 << 20);
    pthread_t t;
    void *r = NULL;
    if (!s || !big || !hakmem_owns(s) || !hakmem_owns(big)) {
        printf("not hakmem's\n");
        return 1;
    }
    if (pthread_create(&t, NULL, worker, &t) || pthread_join(t, &r) || r != &t) {
        printf("thread failed\n");
        return 1;
    }
    free(s);
    free(big);
    printf("%s\n", hakmem_variant());
    return 0;
}
EOC

fail=0
tested=0
for v in fast lean debug; do
  case $v in fast) a=libhakmem.a ;; lean) a=libhakmem_lean.a ;; debug) a=libhakmem_debug.a ;; esac
  [ -f "$b/src/.libs/$a" ] || { echo "note: $a not built"; continue; }
  for mode in archive static; do
    flag=
    [ $mode = static ] && flag=-static
    if ! "$cc" $flag -I"$s/src" -o "$tmp/prog-$v-$mode" "$tmp/prog.c" "$b/src/.libs/$a" -lpthread \
        >"$tmp/cc.log" 2>&1; then
      if [ $mode = static ] && grep -q 'cannot find -l' "$tmp/cc.log"; then
        echo "note: no static C library: -static skipped for $v"
        continue
      fi
      echo "FAIL: linking $a ($mode):"; cat "$tmp/cc.log"; fail=1; continue
    fi
    out=$("$tmp/prog-$v-$mode" 2>&1); rc=$?
    echo "$a ($mode): exit $rc, '$out'"
    if [ $rc -ne 0 ] || [ "$out" != "$v" ]; then
      echo "FAIL: the program linked with $a ($mode) says '$out', exit $rc"; fail=1
    fi
    # No shared hakmem in the picture: the archive's copy is the one in use.
    if [ $mode = archive ] && command -v ldd >/dev/null 2>&1 && ldd "$tmp/prog-$v-$mode" | grep -q hakmem; then
      echo "FAIL: the program linked with $a loads a shared hakmem"; fail=1
    fi
    tested=$((tested + 1))
  done
done
[ $tested -gt 0 ] || { echo "FAIL: nothing tested"; exit 1; }
exit $fail
