#!/bin/sh
# t_thread_local.sh: builds and runs t_thread_local.cc (C++ thread_local
# destructors that allocate, CONFORMANCE C.19) with the library preloaded:
# no crash, every destructor ran intact, and no memory lost per thread.
#
# configure does not look for a C++ compiler (the library is C), so the
# test compiles its program itself with $CXX (default c++, g++) and skips
# (exit 77) if there is none. (With AC_PROG_CXX in configure.ac this could
# become an ordinary check_PROGRAM.)

set -u
lib=${HAKMEM_TEST_LIB:?run through tests/run-variant}
top=${abs_top_builddir:?run through tests/run-variant}
src=${abs_top_srcdir:-$top}/tests/integration/t_thread_local.cc

. "${abs_top_srcdir:-$top}/tests/integration/hk_cxx.sh"

LD_PRELOAD="$lib" "$top/tests/integration/hk_probe" >/dev/null || {
  echo "FAIL: hk_probe: the library is not in use"; exit 99; }

work=$(mktemp -d "${TMPDIR:-/tmp}/hk_tl.XXXXXX") || exit 99
trap 'rm -rf "$work"' EXIT INT TERM
# Build without the library preloaded: a compiler crash here would be
# reported by t_real_programs, not blamed on thread_local.
if ! env -u LD_PRELOAD $cxx -std=c++17 -O2 -Wall -Wextra -Werror -pthread -I"${abs_top_srcdir:-$top}/src" \
    -o "$work/t_thread_local" "$src" -ldl; then
  echo "FAIL: could not compile $src with $cxx"; exit 99
fi
LD_PRELOAD="$lib" timeout -k 5 120 "$work/t_thread_local"
rc=$?
[ $rc = 0 ] || echo "FAIL: t_thread_local exited with $rc"
exit $rc
