#!/bin/sh
# t_configure.sh: configure checks --with-conf with the library's own
# parser (the rules of HAKMEM_CONF at run time): a misspelt key, a value
# out of range or a key=value entry fails configure and says why; a valid
# string passes. Runs configure in a scratch copy of what it reads before
# it writes anything (configure, build-aux/, src/), since the source tree
# may be configured already; it stops at the first error or, for the
# valid string, at AC_OUTPUT (no Makefile.in in the copy), which is after
# the check.
set -u
s=${abs_top_srcdir:?run through make check}
[ -x "$s/configure" ] || { echo "SKIP: no configure script in $s"; exit 77; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hk_conf.XXXXXX") || exit 99
# (a read-only source tree, as in make distcheck, gives read-only copies)
trap 'chmod -R u+w "$tmp"; rm -rf "$tmp"' EXIT INT TERM
cp -R "$s/configure" "$s/build-aux" "$s/src" "$tmp/" || exit 99
chmod -R u+w "$tmp"
cd "$tmp" || exit 99
fail=0
# run CONF: configure's output in $out
run() { out=$(./configure -C --with-conf="$1" 2>&1); }

# One string with four faults: configure stops at the check, naming each.
bad="laen:1,lean_target:200%,lean=1,verbose:maybe,stats:stats.json"
run "$bad"
case $out in
  *"checking the settings of --with-conf... no"*"error: --with-conf=\"$bad\" is not valid"*) ;;
  *) echo "FAIL: --with-conf=\"$bad\" should fail configure:"; echo "$out" | tail -8; fail=1 ;;
esac
while IFS= read -r why; do
  case $out in
    *"$why"*) echo "ok: says: $why" ;;
    *) echo "FAIL: --with-conf=\"$bad\": configure does not say '$why'"; fail=1 ;;
  esac
done <<'EOT'
key 'laen' is not a hakmem setting; the closest is lean
lean_target_mb:'200%' is not valid: allowed 1% to 100%
'lean=1' is not key:value; write lean:1
verbose:'maybe' is not valid: allowed 1/0, true/false, yes/no or on/off
stats:'stats.json' is not valid
EOT
run "lean:1,lean_target_mb:64,decommit:dontneed,stats:off"
case $out in
  *"checking the settings of --with-conf... valid"*) echo "ok: a valid string passes the check" ;;
  *) echo "FAIL: a valid --with-conf string:"; echo "$out" | tail -5; fail=1 ;;
esac
exit $fail
