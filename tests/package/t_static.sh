#!/bin/sh
# t_static.sh: each static archive (./configure --enable-static:
# src/.libs/libhakmem.a, libhakmem_lean.a, libhakmem_debug.a) links into a
# program that then allocates from hakmem: malloc, a thread, strdup inside
# libc, hakmem_variant() and hakmem_owns(). Twice: the archive with the
# shared C library, and a fully static program (`cc -static`, where the C
# library's own static archive is installed) linked with what `pkg-config
# --static --libs` says (the build tree's .pc file, pointed at src/.libs):
# a C program needs no C++ runtime for it.
# Then a C++ program (static_new.cc), both ways (`g++ -static prog.cc
# $(pkg-config --static --libs hakmem)` as hakmem(3) says): operator new is
# hakmem's, and a request that cannot be met runs the new-handler until it
# gives up, then throws std::bad_alloc, which the program catches (a static
# libstdc++'s were once left out, and the program aborted).
# Skips (77) when configure did not build the archives, or with no C
# compiler; the C++ part is left out (said so) without a C++ compiler.

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

cxx=${CXX:-c++}
command -v "$cxx" >/dev/null 2>&1 || { echo "note: no C++ compiler ($cxx): the C++ program is not tested"; cxx=; }

# What `pkg-config --static --libs NAME` gives for the build tree's .pc
# file, with its libdir pointed at the built archives.
static_libs() {
  if command -v pkg-config >/dev/null 2>&1; then
    PKG_CONFIG_PATH=$b pkg-config --static --libs --define-variable=libdir="$b/src/.libs" "$1"
  else
    sed -n 's/^Libs\.private: //p' "$b/$1.pc" | sed "s|^|-L$b/src/.libs -l$2 |"
  fi
}

fail=0
tested=0
for v in fast lean debug; do
  case $v in fast) a=libhakmem.a; pc=hakmem ;; lean) a=libhakmem_lean.a; pc=hakmem-lean ;; debug) a=libhakmem_debug.a; pc=hakmem-debug ;; esac
  [ -f "$b/src/.libs/$a" ] || { echo "note: $a not built"; continue; }
  libs=$(static_libs $pc "$(basename $a .a | sed 's/^lib//')") || { echo "FAIL: pkg-config --static --libs $pc"; fail=1; continue; }
  echo "pkg-config --static --libs $pc: $libs"
  for mode in archive static cxx-archive cxx-static; do
    case $mode in
      archive) set -- "$cc" -o "$tmp/prog-$v-$mode" "$tmp/prog.c" "$b/src/.libs/$a" -lpthread; want=$v ;;
      # shellcheck disable=SC2086
      static) set -- "$cc" -static -o "$tmp/prog-$v-$mode" "$tmp/prog.c" $libs; want=$v ;;
      cxx-*) [ -n "$cxx" ] || continue; want="bad_alloc after 3 handler calls" ;;
    esac
    case $mode in
      cxx-archive) set -- "$cxx" -o "$tmp/prog-$v-$mode" "$s/tests/package/static_new.cc" "$b/src/.libs/$a" -lpthread ;;
      # shellcheck disable=SC2086
      cxx-static) set -- "$cxx" -static -o "$tmp/prog-$v-$mode" "$s/tests/package/static_new.cc" $libs ;;
    esac
    if ! "$@" -I"$s/src" >"$tmp/cc.log" 2>&1; then
      case $mode in *static) if grep -q 'cannot find -l' "$tmp/cc.log"; then
        echo "note: no static C (or C++) library: $mode skipped for $v"
        continue
      fi ;; esac
      echo "FAIL: linking $a ($mode): $*"; cat "$tmp/cc.log"; fail=1; continue
    fi
    out=$("$tmp/prog-$v-$mode" 2>&1); rc=$?
    echo "$a ($mode): exit $rc, '$out'"
    if [ $rc -ne 0 ] || [ "$out" != "$want" ]; then
      echo "FAIL: the program linked with $a ($mode) says '$out', exit $rc (want '$want', exit 0)"; fail=1
    fi
    # No shared hakmem in the picture: the archive's copy is the one in use.
    if [ $mode != static ] && [ $mode != cxx-static ] && command -v ldd >/dev/null 2>&1 && ldd "$tmp/prog-$v-$mode" | grep -q hakmem; then
      echo "FAIL: the program linked with $a loads a shared hakmem"; fail=1
    fi
    tested=$((tested + 1))
  done
done
[ $tested -gt 0 ] || { echo "FAIL: nothing tested"; exit 1; }
exit $fail
