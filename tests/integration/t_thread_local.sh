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

hk_cxx_run t_thread_local "$src" -O2 -pthread -I"${abs_top_srcdir:-$top}/src"
