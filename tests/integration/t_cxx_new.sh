#!/bin/sh
# t_cxx_new.sh: builds t_cxx_new.cc (C++ operator new/delete, every form)
# and runs it with the library preloaded; first checks that the library
# does not depend on the C++ runtime (it finds what it needs of libstdc++
# through weak references, src/boxes/cxx_new_box.h).
#
# Like t_thread_local.sh, the program is compiled here (hk_cxx.sh finds a
# C++ compiler; the test skips, exit 77, if there is none).

set -u
lib=${HAKMEM_TEST_LIB:?run through tests/run-variant}
top=${abs_top_builddir:?run through tests/run-variant}
src=${abs_top_srcdir:-$top}/tests/integration/t_cxx_new.cc

if command -v readelf >/dev/null 2>&1; then
  needed=$(readelf -d "$lib" | grep NEEDED)
  case $needed in
    *libstdc++*|*libc++*|*libsupc++*)
      echo "FAIL: $lib depends on a C++ runtime:"; echo "$needed"; exit 1 ;;
  esac
  echo "dependencies of ${lib##*/}: $(echo "$needed" | sed 's/.*\[\(.*\)\]/\1/' | tr '\n' ' ')"
else
  echo "note: no readelf: the dependency check is skipped"
fi

. "${abs_top_srcdir:-$top}/tests/integration/hk_cxx.sh"

# -fno-builtin: the calls to ::operator new must stay calls (GCC may
# otherwise drop a new/delete pair it can see through).
hk_cxx_run t_cxx_new "$src" -O1 -fno-builtin
