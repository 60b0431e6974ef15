#!/bin/sh
# check-deb.sh: `make check-deb`. Builds the Debian packages from the
# release tree (`make distdir`, debian/ included) with dpkg-buildpackage,
# runs lintian on them, installs them into this system with dpkg -i and
# uses what they installed:
#  - each library package alone (installed, preloaded, removed), then all
#    five together;
#  - no .la file in any package;
#  - a program linked with `pkg-config --cflags --libs hakmem-lean` runs on
#    the installed LEAN library; the .pc variables answer;
#  - static programs linked with `pkg-config --static --libs hakmem`: a C
#    one without a C++ runtime, a C++ one whose failed operator new runs
#    its new-handler and throws std::bad_alloc;
#  - the launcher runs a program against each installed variant, and a C++
#    program (tests/integration/t_cxx_new.cc) under `hakmem --lean`;
#  - the man pages are installed.
# Packages of these names already installed are replaced; all are removed
# at the end (HK_DEB_KEEP=1 keeps them).
# Work files: deb-build/ in the build tree (build.log, lintian.log, the
# .deb files).
#
# Needs root (dpkg -i), dpkg-dev, debhelper, lintian and the
# Build-Depends of debian/control (`apt-get build-dep ./`); without them it
# says what is missing and exits 77.

set -u
b=${abs_top_builddir:?run through make check-deb}
s=${abs_top_srcdir:?run through make check-deb}
distdir=${distdir:?run through make check-deb}
version=${PACKAGE_VERSION:?run through make check-deb}
pkgs="libhakmem0 libhakmem-lean0 libhakmem-debug0 libhakmem-dev hakmem-tools"

skip() { echo "check-deb: SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "check-deb installs packages with dpkg -i: run it as root"
for t in dpkg-buildpackage dpkg-checkbuilddeps dpkg lintian pkg-config cc; do
  command -v $t >/dev/null 2>&1 || skip "$t not found (Debian: apt-get install dpkg-dev debhelper lintian pkg-config gcc)"
done

work=$b/deb-build
rm -rf "$work" && mkdir -p "$work" || exit 99
src=$work/hakmem-$version
cp -a "$b/$distdir" "$src" || exit 99
cd "$src" || exit 99
if ! dpkg-checkbuilddeps >"$work/builddeps.log" 2>&1; then
  cat "$work/builddeps.log"
  skip "build dependencies missing: apt-get build-dep ./ (or the list above)"
fi

fail=0
bad() { echo "FAIL: $*"; fail=1; }

echo "== dpkg-buildpackage -us -uc -b (DEB_BUILD_OPTIONS='${DEB_BUILD_OPTIONS:-}'), log in $work/build.log"
if ! dpkg-buildpackage -us -uc -b >"$work/build.log" 2>&1; then
  tail -60 "$work/build.log"
  echo "FAIL: the package build failed"
  exit 1
fi
cd "$work" || exit 99
grep -E '^# (TOTAL|PASS|SKIP|FAIL|ERROR):' "$work/build.log" | sed 's/^/make check in the package build: /'

echo "== packages"
for p in $pkgs; do
  deb=$(ls "$work/${p}_"*.deb 2>/dev/null | head -1)
  if [ -z "$deb" ]; then bad "package $p was not built"; continue; fi
  echo "$(basename "$deb"): $(dpkg-deb -f "$deb" Installed-Size) KiB, Depends: $(dpkg-deb -f "$deb" Depends)"
  dpkg-deb -c "$deb" | awk '{print "    " $6 ($7 ? " " $7 " " $8 : "")}' | grep -v '/$'
  if dpkg-deb -c "$deb" | grep -q '\.la$'; then bad "$p ships a .la file"; fi
done
[ $fail -eq 0 ] || exit 1

echo "== lintian (log in $work/lintian.log)"
lintian --display-info --tag-display-limit 0 "$work"/hakmem_*.changes >"$work/lintian.log" 2>&1
lrc=$?
cat "$work/lintian.log"
if grep -q '^E: ' "$work/lintian.log" || [ $lrc -ne 0 ]; then
  bad "lintian reports errors (exit $lrc)"
fi
# Every warning and info tag that remains must be explained in
# debian/README.source.
for tag in $(sed -n 's/^[WI]: [^ ]* [^ ]*: *\([a-z0-9-]*\).*/\1/p; s/^[WI]: [^:]*: \([a-z0-9-]*\).*/\1/p' "$work/lintian.log" | sort -u); do
  grep -q "$tag" "$s/debian/README.source" || bad "lintian tag $tag is not explained in debian/README.source"
done
# The libraries are compiled with dpkg-buildflags' hardening flags
# (README.source says so, to explain hardening-no-fortify-functions).
for f in $(dpkg-buildflags --get CPPFLAGS) -fstack-protector-strong; do
  grep -E 'libtool: compile: .* -c src/boxes/base/env_box.c  -fPIC' "$work/build.log" | grep -q -- "$f" ||
    bad "the libraries are not compiled with $f (dpkg-buildflags)"
done

echo "== dpkg -i, each library package alone"
# shellcheck disable=SC2086
dpkg -P $pkgs >/dev/null 2>&1
cat > "$work/dlprobe.c" <<'EOC'
/* Not linked with hakmem: finds it in the process (a preload) and checks
 * that malloc is its. Prints the variant. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
int main(void)
{
    const char *(*variant)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "hakmem_variant");
    int (*owns)(const void *) = (int (*)(const void *))dlsym(RTLD_DEFAULT, "hakmem_owns");
    void *p = malloc(100);
    if (!variant || !owns || !owns(p)) {
        printf("hakmem is not in use\n");
        return 1;
    }
    free(p);
    printf("%s\n", variant());
    return 0;
}
EOC
cc -o "$work/dlprobe" "$work/dlprobe.c" -ldl || exit 99
for p in libhakmem0 libhakmem-lean0 libhakmem-debug0; do
  case $p in libhakmem0) v=fast ;; libhakmem-lean0) v=lean ;; libhakmem-debug0) v=debug ;; esac
  if ! dpkg -i "$work/${p}_"*.deb >"$work/dpkg.log" 2>&1; then
    cat "$work/dpkg.log"; bad "dpkg -i $p (alone) failed"; continue
  fi
  lib=$(dpkg -L $p | grep '\.so\.[0-9]*$' | head -1)
  out=$(LD_PRELOAD=$lib "$work/dlprobe" 2>&1)
  echo "$p alone: $lib -> $out"
  [ "$out" = "$v" ] || bad "$p alone: LD_PRELOAD=$lib gives '$out'"
  dpkg -P $p >/dev/null || bad "dpkg -P $p failed"
done

echo "== dpkg -i, all together"
# shellcheck disable=SC2086
if ! dpkg -i $(for p in $pkgs; do ls "$work/${p}_"*.deb; done) >"$work/dpkg.log" 2>&1; then
  cat "$work/dpkg.log"; bad "dpkg -i of all packages failed"; exit 1
fi
dpkg -l $pkgs | grep '^ii' | awk '{print "    " $2 " " $3 " " $4}'
if dpkg -L $pkgs | grep '\.la$'; then bad "a .la file is installed"; fi
for m in /usr/share/man/man3/hakmem.3.gz /usr/share/man/man1/hakmem.1.gz /usr/share/man/man1/rss-trace.1.gz; do
  [ -f "$m" ] || bad "$m is not installed"
done
for p in libhakmem0 libhakmem-lean0 libhakmem-debug0; do
  for d in README NEWS; do
    [ -f "/usr/share/doc/$p/$d" ] || [ -f "/usr/share/doc/$p/$d.gz" ] || bad "/usr/share/doc/$p/$d is not installed"
  done
done

echo "== a program linked with pkg-config --libs hakmem-lean"
cat > "$work/linked.c" <<'EOC'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hakmem.h>
int main(void)
{
    char *s = strdup("lean");
    if (!s || !hakmem_owns(s) || strcmp(hakmem_version(), HAKMEM_VERSION_STRING) != 0)
        return 1;
    printf("%s %s\n", hakmem_variant(), hakmem_version());
    free(s);
    return 0;
}
EOC
flags=$(pkg-config --cflags --libs hakmem-lean) || bad "pkg-config --cflags --libs hakmem-lean failed"
echo "pkg-config --cflags --libs hakmem-lean: $flags"
# shellcheck disable=SC2086
if cc -o "$work/linked" "$work/linked.c" $flags; then
  out=$("$work/linked" 2>&1)
  echo "linked program: $out; $(ldd "$work/linked" | grep hakmem)"
  [ "$out" = "lean $version" ] || bad "the program linked with hakmem-lean says '$out'"
else
  bad "cannot link with pkg-config --libs hakmem-lean"
fi
for var in variant lean_default decommit stats; do
  echo "pkg-config --variable=$var: hakmem=$(pkg-config --variable=$var hakmem) hakmem-lean=$(pkg-config --variable=$var hakmem-lean) hakmem-debug=$(pkg-config --variable=$var hakmem-debug)"
done
[ "$(pkg-config --variable=variant hakmem-lean)" = lean ] || bad "pkg-config --variable=variant hakmem-lean"
[ "$(pkg-config --variable=lean_default hakmem-lean)" = on ] || bad "the packaged LEAN library is not LEAN by default"
grep -q '^URL: ' "$(pkg-config --variable=pcfiledir hakmem)/hakmem.pc" || bad "hakmem.pc has no URL:"

echo "== static programs: cc/c++ -static ... \$(pkg-config --static --libs hakmem)"
slibs=$(pkg-config --static --libs hakmem)
echo "pkg-config --static --libs hakmem: $slibs"
cat > "$work/static.c" <<'EOC'
#include <stdio.h>
#include <stdlib.h>
#include <hakmem.h>
int main(void)
{
    void *p = malloc(100);
    if (!hakmem_owns(p))
        return 1;
    free(p);
    printf("%s\n", hakmem_variant());
    return 0;
}
EOC
# shellcheck disable=SC2086
if cc -static -o "$work/static" "$work/static.c" $slibs; then
  out=$("$work/static" 2>&1)
  echo "static C program: $out"
  [ "$out" = fast ] || bad "the static C program says '$out'"
else
  bad "cannot link a C program with cc -static \$(pkg-config --static --libs hakmem)"
fi
if command -v c++ >/dev/null 2>&1; then
  # shellcheck disable=SC2086
  if c++ -static -o "$work/static-cxx" "$s/tests/package/static_new.cc" $slibs; then
    out=$("$work/static-cxx" 2>&1)
    echo "static C++ program: $out"
    [ "$out" = "bad_alloc after 3 handler calls" ] || bad "the static C++ program says '$out'"
  else
    bad "cannot link a C++ program with c++ -static \$(pkg-config --static --libs hakmem)"
  fi
fi

echo "== the launcher against each installed variant"
command -v hakmem >/dev/null || bad "hakmem is not on PATH"
for opt in "" --lean --debug; do
  case $opt in "") v=fast ;; --lean) v=lean ;; --debug) v=debug ;; esac
  # shellcheck disable=SC2086
  lib=$(hakmem --which $opt)
  # shellcheck disable=SC2086
  out=$(hakmem $opt -- "$work/dlprobe" 2>&1)
  echo "hakmem $opt: $lib -> $out"
  [ "$out" = "$v" ] || bad "hakmem $opt -- dlprobe gives '$out'"
  [ -f "$lib" ] || bad "hakmem --which $opt: $lib does not exist"
done
out=$(hakmem --version); [ "$out" = "hakmem $version" ] || bad "hakmem --version: $out"
out=$(HAKMEM_SS_MEM_LEAN=1 hakmem -- "$work/dlprobe" 2>&1)
[ "$out" = lean ] || bad "HAKMEM_SS_MEM_LEAN=1 hakmem -- dlprobe gives '$out' (want lean)"
out=$(hakmem --conf lean:1 -- "$work/dlprobe" 2>&1)
[ "$out" = lean ] || bad "hakmem --conf lean:1 -- dlprobe gives '$out' (want lean)"
out=$(hakmem no-such-command-$$ 2>&1); rc=$?
[ $rc -eq 127 ] && [ "$out" = "hakmem: no-such-command-$$: command not found" ] ||
  bad "hakmem no-such-command: exit $rc, '$out'"
# The packages are built with the counters: --stats prints the statistics
# at exit (the human form), counters included.
out=$(hakmem --stats -- "$work/dlprobe" 2>&1 >/dev/null)
case $out in
  *"counters built in"*"gauges:"*"counters:"*"mmap_calls "*)
    echo "hakmem --stats: statistics printed at exit, $(echo "$out" | sed -n '/^counters:/,$p' | grep -c '^  ') counters" ;;
  *) bad "hakmem --stats printed no counters: $out" ;;
esac
if command -v c++ >/dev/null 2>&1; then
  if c++ -std=c++17 -O1 -fno-builtin -o "$work/t_cxx_new" "$s/tests/integration/t_cxx_new.cc" -ldl; then
    HAKMEM_TEST_LIB=$(hakmem --which --lean) hakmem --lean -- "$work/t_cxx_new" || bad "C++ operators under hakmem --lean"
  else
    bad "cannot compile t_cxx_new.cc"
  fi
else
  echo "note: no C++ compiler: the C++ check is skipped"
fi

if [ -z "${HK_DEB_KEEP:-}" ]; then
  # shellcheck disable=SC2086
  dpkg -P $pkgs >/dev/null || bad "dpkg -P failed"
  echo "== packages removed (HK_DEB_KEEP=1 keeps them)"
fi
[ $fail -eq 0 ] && echo "check-deb: packages built, lintian clean of errors, installed, used: ok"
exit $fail
