#!/bin/sh
# The settings (README, "Operating hakmem"): one string HAKMEM_CONF, strict
# about keys, lenient about values, the precedence variable > HAKMEM_CONF >
# built-in > default, and the verbose dump; LEAN's budget from a cgroup
# tree (a fake one in a temporary directory, named by HAKMEM_CGROUP_ROOT).
# hk_probe runs under the column's library with each environment; every
# bad form must get exactly one `hakmem: warning:` line that says what is
# allowed (or names the closest setting), and the program must run on.
set -u
probe="${abs_top_builddir:-.}/tests/integration/hk_probe"
[ -x "$probe" ] || { echo "hk_probe not built"; exit 99; }
variant=${HAKMEM_TEST_VARIANT:-fast}
column=${HAKMEM_TEST_COLUMN:-$variant}
fail=0
tmp=$(mktemp -d) || exit 99
trap 'rm -rf "$tmp"' EXIT

# The column's LEAN variables would win over HAKMEM_CONF: run without them.
unset HAKMEM_SS_MEM_LEAN HAKMEM_SS_MEM_LEAN_TARGET_MB HAKMEM_SS_MEM_LEAN_DECOMMIT

# run VAR=VALUE...: hk_probe's stderr in $err, its status in $rc
run() {
  env "$@" "$probe" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  err=$(cat "$tmp/err")
}

# warns TEXT VAR=VALUE...: one warning line, containing TEXT
warns() {
  want=$1; shift
  run "$@"
  n=$(grep -c '^hakmem: warning: ' "$tmp/err")
  if [ "$rc" != 0 ]; then
    echo "FAIL: $*: hk_probe exited $rc: $err"; fail=1
  elif [ "$n" != 1 ]; then
    echo "FAIL: $*: $n warning lines, expected one:"; echo "$err"; fail=1
  elif ! grep -F -q -- "$want" "$tmp/err"; then
    echo "FAIL: $*: the warning does not say '$want':"; echo "$err"; fail=1
  else
    echo "ok: $* -> $(cat "$tmp/err")"
  fi
}

# Unknown names: the closest known one is named.
warns "closest is HAKMEM_SS_MEM_LEAN" HAKMEM_SS_MEM_LAEN=1
warns "closest is HAKMEM_VERBOSE" HAKMEM_VERBSE=1
warns "closest is lean_target_mb" HAKMEM_CONF=lean_traget_mb:64
warns "closest is decommit" "HAKMEM_CONF=lean:0,decomit:free"
warns "key lean has no value" HAKMEM_CONF=lean
# The obvious guesses: a variable named after a key, a variable's form in
# the string.
warns "'HAKMEM_LEAN' is not a hakmem setting (ignored); the closest is HAKMEM_SS_MEM_LEAN" HAKMEM_LEAN=1
warns "'HAKMEM_BACKGROUN' is not a hakmem setting (ignored); the closest is HAKMEM_BACKGROUND" HAKMEM_BACKGROUN=1
warns "'lean=1' is not key:value (ignored); write lean:1" HAKMEM_CONF=lean=1
warns "'HAKMEM_SS_MEM_LEAN=0' is not key:value (ignored); write lean:0" HAKMEM_CONF=HAKMEM_SS_MEM_LEAN=0
warns "key 'ss_mem_lean' is not a hakmem setting (ignored); the closest is lean" HAKMEM_CONF=ss_mem_lean:0
warns "key 'laen' is not a hakmem setting (ignored); the closest is lean" HAKMEM_CONF=laen=1
# Bad values: the allowed range is stated.
warns "allowed 1/0, true/false, yes/no or on/off" HAKMEM_VERBOSE=maybe
warns "allowed a size from 0 to 1048576 MiB" HAKMEM_SS_MEM_LEAN_TARGET_MB=12X
warns "allowed a size from 0 to 1048576 MiB" HAKMEM_CONF=lean_target_mb:2048G
warns "allowed an integer from -1 to 3600000; using the default (10000 in FAST, 1000 in LEAN)" HAKMEM_PURGE_DELAY_MS=-5
warns "allowed an integer from 0 to 64" HAKMEM_CONF=prewarm_ss:65
warns "allowed FREE, DONTNEED or OFF" HAKMEM_CONF=decommit:sideways
warns "allowed a size from 0 to 32768 bytes" HAKMEM_PREWARM_CLASS_MAX=64K
warns "allowed 1% to 100% of the cgroup's memory limit" HAKMEM_CONF=lean_target:101%
warns "allowed 1% to 100% of the cgroup's memory limit" HAKMEM_SS_MEM_LEAN_TARGET_MB=0%
# HAKMEM_STATS: booleans, human, json, file:NAME or a path; a bare word
# could be a file or a typo: refused.
warns "HAKMEM_STATS='stats.json' is not valid: allowed on/off (or another boolean), human, json, file:NAME or a path with a '/'" HAKMEM_STATS=stats.json
warns "allowed 1/0, true/false, yes/no or on/off" HAKMEM_THP=huge
warns "closest is thp" HAKMEM_CONF=tph:1

# dumped VAR=VALUE... -- TEXT...: no warning, and the dump has each TEXT
dumped() {
  n=0
  for a in "$@"; do
    [ "$a" = "--" ] && break
    n=$((n + 1))
  done
  envs=$(for a in "$@"; do [ "$a" = "--" ] && break; printf '%s ' "$a"; done)
  i=0
  for a in "$@"; do
    i=$((i + 1))
    [ $i -gt $((n + 1)) ] && printf '%s\n' "$a"
  done >"$tmp/expect"
  # the environment: the first n arguments
  set -- "$@"
  k=0
  for a in "$@"; do
    k=$((k + 1))
    [ $k -le $n ] && set -- "$@" "$a"
  done
  shift $((k))
  run HAKMEM_VERBOSE=on "$@"
  if [ "$rc" != 0 ] || grep -q '^hakmem: warning: ' "$tmp/err"; then
    echo "FAIL: $envs: status $rc or a warning:"; echo "$err"; fail=1; return
  fi
  while IFS= read -r t; do
    if ! grep -F -q -- "$t" "$tmp/err"; then
      echo "FAIL: $envs: the dump lacks '$t':"; echo "$err"; fail=1
    fi
  done <"$tmp/expect"
  echo "ok: $envs"
}

first=$(HAKMEM_VERBOSE=1 "$probe" 2>&1 >/dev/null | head -1)
case "$first" in
  "hakmem: version "*", variant $variant,"*) echo "ok: first line: $first" ;;
  *) echo "FAIL: the dump's first line should give version and variant: $first"; fail=1 ;;
esac
dumped HAKMEM_CONF=verbose:yes,large_cache_mb:1G -- "HAKMEM_LARGE_CACHE_MB=1.00 GiB (HAKMEM_CONF)" \
  "precedence: HAKMEM_* variable > HAKMEM_CONF > built-in conf (--with-conf) > default"
dumped "HAKMEM_CONF=large_cache_mb:64" HAKMEM_LARGE_CACHE_MB=32 -- "HAKMEM_LARGE_CACHE_MB=32.00 MiB (environment)"
dumped "HAKMEM_CONF=purge_delay_ms:250,background:off" -- "HAKMEM_PURGE_DELAY_MS=250 (HAKMEM_CONF)" "HAKMEM_BACKGROUND=0 (HAKMEM_CONF)"
# Huge pages: off by default; the key, the variable over it, the sysfs root.
dumped -- "HAKMEM_THP=0 (default)"
dumped "HAKMEM_CONF=thp:yes,sysfs_root:$tmp" -- "HAKMEM_THP=1 (HAKMEM_CONF)" "HAKMEM_SYSFS_ROOT=\"$tmp\" (HAKMEM_CONF)"
dumped HAKMEM_CONF=thp:on HAKMEM_THP=off -- "HAKMEM_THP=0 (environment)"
if [ "$variant" = fast ]; then # (LEAN's keys would warn: no LEAN code)
  dumped "HAKMEM_CONF= large_cache_mb : 512K , purge_delay_ms: 5" -- "HAKMEM_LARGE_CACHE_MB=512.00 KiB (HAKMEM_CONF" \
    "HAKMEM_PURGE_DELAY_MS=5 (HAKMEM_CONF)"
else
  dumped "HAKMEM_CONF= lean_target_mb : 512K , decommit: dontneed" -- "HAKMEM_SS_MEM_LEAN_TARGET_MB=512.00 KiB (HAKMEM_CONF" \
    "HAKMEM_SS_MEM_LEAN_DECOMMIT=DONTNEED (HAKMEM_CONF)"
fi
dumped HAKMEM_STATS=0 -- "HAKMEM_STATS=off (environment)"
dumped HAKMEM_CONF=stats:on -- "HAKMEM_STATS=human (HAKMEM_CONF)"
dumped HAKMEM_STATS=file:/tmp/s-%p.json -- "HAKMEM_STATS=file:/tmp/s-%p.json (environment)"
# A setting given explicitly that this library has no code for: one
# warning (asking for the default, which is what the library does: none).
if [ "$variant" = fast ]; then
  warns "HAKMEM_SS_MEM_LEAN=1 has no effect: this library (fast) has no LEAN code; libhakmem_lean.so has (hakmem --lean)" \
    HAKMEM_SS_MEM_LEAN=true
  warns "HAKMEM_CONF lean:1 has no effect: this library (fast) has no LEAN code" HAKMEM_CONF=lean:1
  warns "HAKMEM_SS_MEM_LEAN_DECOMMIT=DONTNEED has no effect" HAKMEM_CONF=decommit:free HAKMEM_SS_MEM_LEAN_DECOMMIT=dontneed
  dumped HAKMEM_SS_MEM_LEAN=0 -- "HAKMEM_SS_MEM_LEAN=0 (environment) (ignored: not built in)" "lean not built in"
  dumped HAKMEM_FAULT_MMAP=0 -- "HAKMEM_FAULT_MMAP=0 (environment) (ignored: not built in)"
else
  dumped HAKMEM_SS_MEM_LEAN=true -- "HAKMEM_SS_MEM_LEAN=1 (environment)  #" "lean code built in"
fi
if [ "$variant" != debug ]; then
  warns "HAKMEM_FAULT_MMAP=5 has no effect: this library ($variant) is not the debug library" HAKMEM_FAULT_MMAP=5
fi

# ---- LEAN's budget from the cgroup ------------------------------------------
if [ "$variant" = fast ]; then
  echo "(cgroup budget: no LEAN code in this library)"
  exit $fail
fi
root="$tmp/cgroup"
v2=$(sed -n 's/^0::\(.*\)$/\1/p' /proc/self/cgroup | head -1)
v1=$(sed -n 's/^[0-9]*:\([^:]*,\)*memory\(,[^:]*\)*:\(.*\)$/\3/p' /proc/self/cgroup | head -1)
budget() { # budget CONF TEXT: the dump shows TEXT for lean_target_mb
  dumped HAKMEM_CGROUP_ROOT="$root" HAKMEM_CONF="$1" -- "$2"
}
if [ -n "$v2" ]; then
  leaf="$root${v2%/}"
  mkdir -p "$leaf"
  echo 1073741824 >"$leaf/memory.max"
  budget lean_target_mb:auto "HAKMEM_SS_MEM_LEAN_TARGET_MB=51.19 MiB (HAKMEM_CONF: 5% of 1024 MiB from $leaf/memory.max)"
  budget lean_target:10% "HAKMEM_SS_MEM_LEAN_TARGET_MB=102.39 MiB (HAKMEM_CONF: 10% of 1024 MiB from $leaf/memory.max)"
  # A smaller limit higher up applies (the tree's own root here).
  if [ "$leaf" != "$root" ]; then
    echo max >"$leaf/memory.max"
    echo 536870912 >"$root/memory.max"
    budget lean_target_mb:auto "HAKMEM_SS_MEM_LEAN_TARGET_MB=25.59 MiB (HAKMEM_CONF: 5% of 512 MiB from $root/memory.max)"
  fi
  # A hybrid host: v1 controllers under the root, v2 mounted at unified/.
  echo max >"$leaf/memory.max"; echo max >"$root/memory.max"
  mkdir -p "$root/unified${v2%/}"
  echo 268435456 >"$root/unified${v2%/}/memory.max"
  budget lean_target_mb:auto "(HAKMEM_CONF: 5% of 256 MiB from $root/unified${v2%/}/memory.max)"
  rm -rf "$root/unified"
  # No limit at all: the fixed figure stays.
  echo max >"$leaf/memory.max"; echo max >"$root/memory.max"
  budget lean_target_mb:auto "HAKMEM_SS_MEM_LEAN_TARGET_MB=10.00 MiB (default: 5% of the cgroup's memory limit: none (no limit set), so the fixed figure)"
  # The budget takes effect: LEAN keeps less than that committed once
  # everything is freed (hk_stats_dump holds about 4 MiB).
  rm -rf "$root"
else
  echo "(no cgroup v2 line in /proc/self/cgroup: v2 not checked)"
fi
if [ -n "$v1" ]; then
  leaf="$root/memory${v1%/}"
  mkdir -p "$leaf"
  echo 2147483648 >"$leaf/memory.limit_in_bytes"
  budget lean_target_mb:auto "HAKMEM_SS_MEM_LEAN_TARGET_MB=102.39 MiB (HAKMEM_CONF: 5% of 2048 MiB from $leaf/memory.limit_in_bytes)"
  # cgroup v1's "no limit" is a huge number
  echo 9223372036854771712 >"$leaf/memory.limit_in_bytes"
  budget lean_target_mb:auto "HAKMEM_SS_MEM_LEAN_TARGET_MB=10.00 MiB (default: 5% of the cgroup's memory limit: none (no limit set)"
  rm -rf "$root"
else
  echo "(no cgroup v1 memory line in /proc/self/cgroup: v1 not checked)"
fi
# A tree without any limit file: said so.
mkdir -p "$root"
budget lean_target_mb:auto "none (no cgroup memory limit file under $root)"
# A percentage over the variable wins over HAKMEM_CONF, as any value does.
dumped HAKMEM_CGROUP_ROOT="$root" HAKMEM_CONF=lean_target_mb:auto HAKMEM_SS_MEM_LEAN_TARGET_MB=7 -- \
  "HAKMEM_SS_MEM_LEAN_TARGET_MB=7.00 MiB (environment)"
exit $fail
