# hk_cxx.sh: sourced by the C++ tests (t_thread_local.sh, t_cxx_new.sh).
# configure does not look for a C++ compiler (the library is C), so each
# test compiles its program itself: this sets cxx to $CXX, else the first
# of c++, g++, clang++ found, or skips the test (exit 77) saying why; and
# defines hk_cxx_run.
cxx=${CXX:-}
if [ -z "$cxx" ]; then
  for c in c++ g++ clang++; do
    if command -v "$c" >/dev/null 2>&1; then cxx=$c; break; fi
  done
fi
if [ -z "$cxx" ]; then
  echo "SKIP: no C++ compiler (c++, g++, clang++) found; set CXX"; exit 77
fi

# hk_cxx_run NAME SOURCE [FLAG...]: compiles SOURCE (C++17, warnings as
# errors, -ldl) without the library preloaded (a compiler crash would be
# t_real_programs' to report), runs it with LD_PRELOAD=$lib within 120 s,
# and exits with its status.
hk_cxx_run() {
  name=$1; source=$2; shift 2
  work=$(mktemp -d "${TMPDIR:-/tmp}/hk_cxx.XXXXXX") || exit 99
  trap 'rm -rf "$work"' EXIT INT TERM
  if ! env -u LD_PRELOAD $cxx -std=c++17 -Wall -Wextra -Werror "$@" -o "$work/$name" "$source" -ldl; then
    echo "FAIL: could not compile $source with $cxx"; exit 99
  fi
  LD_PRELOAD="$lib" timeout -k 5 120 "$work/$name"
  rc=$?
  [ $rc = 0 ] || echo "FAIL: $name exited with $rc"
  exit $rc
}
