# hk_cxx.sh: sourced by the C++ tests (t_thread_local.sh, t_cxx_new.sh).
# configure does not look for a C++ compiler (the library is C), so each
# test compiles its program itself: this sets cxx to $CXX, else the first
# of c++, g++, clang++ found, or skips the test (exit 77) saying why.
cxx=${CXX:-}
if [ -z "$cxx" ]; then
  for c in c++ g++ clang++; do
    if command -v "$c" >/dev/null 2>&1; then cxx=$c; break; fi
  done
fi
if [ -z "$cxx" ]; then
  echo "SKIP: no C++ compiler (c++, g++, clang++) found; set CXX"; exit 77
fi
