#!/bin/sh
# t_launcher.sh: the hakmem launcher (tools/hakmem, from tools/hakmem.in).
#
# The built script carries the configured libdir; a copy with that one line
# pointed at the build tree's libraries (src/.libs, where libtool keeps
# libhakmem.so.0 and the others) runs the real script logic against the
# built libraries:
#  - --version, --help, --which [--lean|--debug], and the exit status 125 for
#    its own errors (unknown option, no command, --lean with --debug,
#    a library that is not installed);
#  - each built variant is really preloaded (hk_probe prints the variant of
#    the library malloc resolves into);
#  - a preload already in LD_PRELOAD is kept, after hakmem's;
#  - --stats and --conf set HAKMEM_SS_OS_STATS=1 and HAKMEM_CONF;
#  - settings that ask for LEAN (HAKMEM_SS_MEM_LEAN=1, lean:1 in --conf or
#    HAKMEM_CONF) choose the LEAN-capable library, the variable winning;
#  - the command's exit status comes back; 127 for a missing command, 126
#    for one that cannot run, said in one line without the script's line
#    number;
#  - --profile [--prof-sample SIZE] [--prof-prefix PATH]: the command runs
#    with the profiler on (its final profile written under the prefix,
#    ./hakmem.COMMAND by default), the launcher names the profile and the
#    jeprof command that reads it, the tools it runs itself are not
#    profiled, the exit status is the command's; a prefix in a directory
#    that cannot be written is refused (125).
# And the installed script's library directory is the configured libdir.

set -u
b=${abs_top_builddir:?run through make check}
script=$b/tools/hakmem
[ -x "$script" ] || { echo "FAIL: $script was not built"; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hk_launch.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT INT TERM
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# The configured libdir, as the pkg-config file has it.
libdir=$(sed -n 's/^libdir=//p' "$b/hakmem.pc")
case $libdir in *'${'*) libdir=$(prefix=$(sed -n 's/^prefix=//p' "$b/hakmem.pc"); exec_prefix=$prefix; eval echo "$libdir") ;; esac
got=$(sh "$script" --which 2>/dev/null)
[ "$got" = "$libdir/libhakmem.so.0" ] || bad "tools/hakmem --which says '$got', expected '$libdir/libhakmem.so.0'"
grep -q '@libdir@\|@HAKMEM_SOVERSION@\|@PACKAGE_VERSION@' "$script" && bad "tools/hakmem has unsubstituted @...@ names"

# The copy that uses the build tree's libraries.
libs=$b/src/.libs
sed "s|^libdir=.*|libdir='$libs'|" "$script" > "$tmp/hakmem"
l="sh $tmp/hakmem"
probe=$b/tests/integration/hk_probe

version=$(sed -n 's/^version=//p' "$script" | tr -d "'")
out=$($l --version); [ "$out" = "hakmem $version" ] || bad "--version prints '$out'"
out=$($l --help) || bad "--help exits $?"
for o in --lean --debug --stats --conf --which --version --help --profile --prof-sample --prof-prefix; do
  case $out in *"$o"*) ;; *) bad "--help does not mention $o" ;; esac
done
[ "$($l --which)" = "$libs/libhakmem.so.0" ] || bad "--which: $($l --which)"

expect_125() {
  what=$1; shift
  "$@" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  if [ $rc -ne 125 ] || ! grep -q '^hakmem: ' "$tmp/err"; then
    bad "$what: exit $rc (want 125 and a 'hakmem:' message); stderr: $(cat "$tmp/err")"
  fi
}
expect_125 "unknown option" $l --bogus true
expect_125 "no command" $l --stats
expect_125 "--lean --debug" $l --lean --debug true
expect_125 "--conf without a value" $l --conf
expect_125 "--prof-sample without a value" $l --prof-sample
expect_125 "--profile into a missing directory" $l --prof-prefix "$tmp/nodir/p" "$probe"
sed "s|^libdir=.*|libdir='$tmp/empty'|" "$script" > "$tmp/hakmem-none"
expect_125 "library not installed" sh "$tmp/hakmem-none" true
expect_125 "--which of a missing library" sh "$tmp/hakmem-none" --which --debug

tested=0
for v in fast lean debug; do
  case $v in fast) opt= ; so=libhakmem.so.0 ;; lean) opt=--lean; so=libhakmem_lean.so.0 ;; debug) opt=--debug; so=libhakmem_debug.so.0 ;; esac
  if [ ! -f "$libs/$so" ]; then
    echo "note: $v not built: skipped"
    continue
  fi
  [ "$($l --which $opt)" = "$libs/$so" ] || bad "--which $opt: $($l --which $opt)"
  # shellcheck disable=SC2086
  out=$(HAKMEM_TEST_VARIANT=$v HAKMEM_TEST_LIB=$libs/$so $l $opt -- "$probe" 2>&1)
  [ "$out" = "$v" ] || bad "hakmem $opt -- hk_probe: '$out' (want '$v')"
  # shellcheck disable=SC2086
  out=$($l $opt sh -c 'printf %s "$LD_PRELOAD"')
  [ "$out" = "$libs/$so" ] || bad "hakmem $opt: LD_PRELOAD='$out'"
  tested=$((tested + 1))
done
[ $tested -gt 0 ] || bad "no variant built"

# An existing preload is kept, after hakmem's (a real library, so ld.so
# has nothing to complain about).
other=$(find "$b/tests/integration/.libs" -name 'early_ctor_lib.so' 2>/dev/null | head -1)
[ -n "$other" ] || other=$libs/libhakmem.so.0
out=$(LD_PRELOAD=$other $l sh -c 'printf %s "$LD_PRELOAD"')
[ "$out" = "$libs/libhakmem.so.0 $other" ] || bad "existing LD_PRELOAD: '$out' (want ours, then '$other')"

out=$(env -u HAKMEM_SS_OS_STATS $l --stats sh -c 'printf %s "$HAKMEM_SS_OS_STATS"' 2>/dev/null)
[ "$out" = 1 ] || bad "--stats: HAKMEM_SS_OS_STATS='$out'"
out=$(HAKMEM_CONF=old $l --conf 'verbose:0' sh -c 'printf %s "$HAKMEM_CONF"' 2>/dev/null)
[ "$out" = "verbose:0" ] || bad "--conf: HAKMEM_CONF='$out'"
out=$($l --conf=a:1 -- sh -c 'printf %s "$HAKMEM_CONF"' 2>/dev/null)
[ "$out" = "a:1" ] || bad "--conf=: HAKMEM_CONF='$out'"
out=$(env -u HAKMEM_CONF $l sh -c 'printf %s "${HAKMEM_CONF-unset}"' 2>/dev/null)
[ "$out" = unset ] || bad "HAKMEM_CONF set without --conf: '$out'"

# Settings that ask for LEAN: the LEAN-capable library (the FAST one has no
# LEAN code); a valid variable wins over the string; --debug stays debug
# (it has LEAN code). Each line: what --which must end with, then the
# environment and options.
if [ -f "$libs/libhakmem_lean.so.0" ]; then
  while IFS='|' read -r want vars opts; do
    # shellcheck disable=SC2086
    got=$(env -u HAKMEM_SS_MEM_LEAN -u HAKMEM_CONF $vars sh "$tmp/hakmem" $opts --which 2>&1)
    case $got in
      */$want) echo "ok: $vars $opts -> ${got##*/}" ;;
      *) bad "$vars $opts: --which says '$got', want .../$want" ;;
    esac
  done <<'EOT'
libhakmem_lean.so.0|HAKMEM_SS_MEM_LEAN=1|
libhakmem_lean.so.0|HAKMEM_SS_MEM_LEAN=on|
libhakmem_lean.so.0|HAKMEM_CONF=lean:1|
libhakmem_lean.so.0|HAKMEM_CONF=decommit:free,lean:yes|
libhakmem_lean.so.0|HAKMEM_CONF=old|--conf=lean:true
libhakmem_lean.so.0|HAKMEM_SS_MEM_LEAN=banana HAKMEM_CONF=lean:1|
libhakmem.so.0|HAKMEM_CONF=lean:1|--conf=lean:0
libhakmem.so.0|HAKMEM_SS_MEM_LEAN=0 HAKMEM_CONF=lean:1|
libhakmem.so.0|HAKMEM_CONF=lean:1,lean:off|
libhakmem.so.0|HAKMEM_CONF=lean_target_mb:1|
libhakmem_debug.so.0|HAKMEM_SS_MEM_LEAN=1|--debug
EOT
  out=$(env -u HAKMEM_CONF HAKMEM_SS_MEM_LEAN=1 HAKMEM_TEST_VARIANT=lean HAKMEM_TEST_LIB=$libs/libhakmem_lean.so.0 \
    $l -- "$probe" 2>&1)
  [ "$out" = lean ] || bad "HAKMEM_SS_MEM_LEAN=1 hakmem -- hk_probe: '$out' (want lean, no warning)"
else
  echo "note: lean not built: the choice of the LEAN library by its settings is not tested"
fi
out=$(env -u HAKMEM_CONF HAKMEM_SS_MEM_LEAN=1 sh "$tmp/hakmem-none" true 2>&1); rc=$?
case $out in
  "hakmem: HAKMEM_SS_MEM_LEAN=1 asks for LEAN, and "*"libhakmem_lean.so.0 is not installed"*) [ $rc -eq 125 ] || bad "LEAN asked, not installed: exit $rc" ;;
  *) bad "LEAN asked, not installed: '$out' (exit $rc)" ;;
esac

$l sh -c 'exit 7'; rc=$?
[ $rc -eq 7 ] || bad "the command's exit status 7 came back as $rc"
# A command that cannot run: the shell's status, and one line that names
# it without this script's line number.
: > "$tmp/not-executable"
for c in "127 no-such-command-$$" "127 $tmp/no-such-command" "126 $tmp/not-executable" "126 $tmp"; do
  want=${c%% *} cmd=${c#* }
  $l "$cmd" 2>"$tmp/err"; rc=$?
  err=$(cat "$tmp/err")
  [ $rc -eq "$want" ] || bad "'hakmem $cmd': exit $rc (want $want)"
  case $err in
    "hakmem: $cmd: "*[0-9]": "*|*"
"*) bad "'hakmem $cmd' says: $err" ;;
    "hakmem: $cmd: "*) echo "ok: hakmem $cmd -> $err (exit $rc)" ;;
    *) bad "'hakmem $cmd' says: $err" ;;
  esac
done

# --profile.
mkdir "$tmp/prof"
out=$(cd "$tmp/prof" && HAKMEM_TEST_VARIANT=fast HAKMEM_TEST_LIB=$libs/libhakmem.so.0 \
  $l --profile --prof-sample 4K -- "$probe" 2>"$tmp/prof.err"); rc=$?
err=$(cat "$tmp/prof.err")
[ $rc = 0 ] && [ "$out" = fast ] || bad "--profile hk_probe: exit $rc, output '$out', stderr: $err"
files=$(cd "$tmp/prof" && ls)
case $files in
  hakmem.hk_probe.[0-9]*.0.heap) ;;
  *) bad "--profile: files '$files', expected one hakmem.hk_probe.PID.0.heap" ;;
esac
[ "$(head -1 "$tmp/prof/$files" 2>/dev/null)" = heap_v2/4096 ] || bad "--profile: $files is not a profile at 4 KiB"
echo "$err" | grep -q "^hakmem: to read it: jeprof --text $probe \./$files\$" ||
  bad "--profile: no 'jeprof --text $probe ./$files' line: $err"
echo "$err" | grep -q '^hakmem: prof_leak: ' || bad "--profile: no leak summary: $err"
out=$($l --prof-prefix "$tmp/prof/x" sh -c 'exit 5' 2>"$tmp/prof.err"); rc=$?
[ $rc = 5 ] || bad "--profile: the command's exit status 5 came back as $rc"
grep -q 'wrote no profile' "$tmp/prof.err" || bad "--profile, a command that wrote none: $(cat "$tmp/prof.err")"
[ -z "$(ls "$tmp/prof" | grep -v '^hakmem\.hk_probe')" ] || bad "--profile: other files: $(ls "$tmp/prof")"

[ $fail -eq 0 ] && echo "launcher: options, preload of each built variant, environment, exit status, profiling: ok"
exit $fail
