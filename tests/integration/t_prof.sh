#!/bin/sh
# The sampled heap profiler (README "Heap profiles", hakmem(3) PROFILING),
# with hk_prof.c's programs, read by jeprof (Debian: libjemalloc-dev):
#  - two sites: keep_site keeps 64 MiB in 1 KiB blocks, churn_site
#    allocates 256 MiB in 100-byte blocks and frees them. `jeprof --text`
#    on the final profile (prof_final) ranks keep_site first, within 15 %
#    of 64 MiB, and churn_site near zero; the last peak profile
#    (prof_peak_step:64M) shows both, churn_site above 128 MiB; the leak
#    summary (prof_leak) is one line on stderr that names keep_site; the
#    statistics count the samples and the profiler's own memory.
#  - every entry point samples: calloc, realloc, posix_memalign,
#    aligned_alloc, memalign and valloc each show as a site of the size
#    they keep (a dump by hakmem_prof_dump); sampled blocks are zeroed,
#    aligned and keep their data across realloc; freeing them forgets them.
#  - threads that come and go, dumps from a thread loop, from exiting
#    threads' destructors, from a signal handler every millisecond, and
#    fork() while others sample (the children dump too): no crash, no hang
#    (the driver's timeout), every file in the profile's form, and jeprof
#    reads them.
#  - the caps: more live stacks than the table keeps (32768) give one
#    warning and a stack "@ 0x0" for the rest; a stack 100 calls deep is
#    cut to 62 frames; freed, they leave no sample, and a new stack is
#    recorded again.
#  - misuse of a sampled block of the profiler's pool (a double free, a
#    free of an interior pointer, realloc after free): one `hakmem: error:`
#    line naming it, the call ignored (the debug library aborts), the page
#    never handed out twice.
#  - prof off (prof_final and prof_leak set all the same): no file, nothing
#    on stderr, no block from the profiler, one thread, hakmem_prof_dump
#    refuses with ENOTSUP.
#  - a bad prof_sample: one warning line, the default kept.
set -u
prog="${abs_top_builddir:-.}/tests/integration/hk_prof"
[ -x "$prog" ] || { echo "hk_prof not built"; exit 99; }
if ! command -v jeprof >/dev/null 2>&1; then
  echo "SKIP: jeprof not found (Debian: apt-get install libjemalloc-dev)"; exit 77
fi
unset HAKMEM_CONF HAKMEM_PROF HAKMEM_PROF_SAMPLE HAKMEM_PROF_FINAL HAKMEM_PROF_LEAK HAKMEM_PROF_PREFIX \
  HAKMEM_PROF_PEAK_STEP
dir=$(mktemp -d "${TMPDIR:-/tmp}/hk_prof.XXXXXX") || exit 99
trap 'rm -rf "$dir"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# The profile's form, line by line: heap_v2/N, then @ stacks with their
# t*: and tN: lines, then MAPPED_LIBRARIES: and the maps.
check_form() {
  awk 'NR == 1 { if ($0 !~ /^heap_v2\/[0-9]+$/) { bad = "header: " $0; exit } next }
       maps { next }
       /^MAPPED_LIBRARIES:$/ { maps = 1; next }
       /^$/ || /^@( 0x[0-9a-f]+)+$/ || /^  t(\*|[0-9]+): [0-9]+: [0-9]+ \[0: 0\]$/ { next }
       { bad = "line " NR ": " $0; exit }
       END { if (bad == "" && !maps) bad = "no MAPPED_LIBRARIES:"; if (bad != "") { print bad; exit 1 } }' "$1"
}
# jeprof's text view in bytes; fields: flat flat% sum% cum cum% function.
view() { jeprof --text --show_bytes "$prog" "$1" 2>/dev/null; }
flat() { echo "$2" | awk -v f="$1" '$6 == f { print $1; found = 1; exit } END { if (!found) print 0 }'; }
first_site() { echo "$1" | awk '/^ *[0-9]+ +[0-9.]+%/ { print $6; exit }'; }
# within VALUE TARGET PERCENT
within() { awk -v v="$1" -v t="$2" -v p="$3" 'BEGIN { d = v - t; if (d < 0) d = -d; exit !(d * 100 <= t * p) }'; }
seq_of() { s=${1%.heap}; echo "${s##*.}"; }

# ---- two sites ---------------------------------------------------------------
out=$(HAKMEM_CONF="prof:1,prof_sample:64K,prof_final:1,prof_leak:1,prof_peak_step:64M,prof_prefix:$dir/sites" \
  "$prog" sites "$dir" 2>"$dir/sites.err"); rc=$?
echo "sites: $out"; cat "$dir/sites.err"
[ $rc = 0 ] || bad "hk_prof sites exited $rc"
final= peak= nfiles=0
for f in "$dir"/sites.*.heap; do
  [ -f "$f" ] || continue
  nfiles=$((nfiles + 1))
  if [ -z "$final" ] || [ "$(seq_of "$f")" -gt "$(seq_of "$final")" ]; then final=$f; fi
done
for f in "$dir"/sites.*.heap; do
  [ -f "$f" ] && [ "$f" != "$final" ] || continue
  if [ -z "$peak" ] || [ "$(seq_of "$f")" -gt "$(seq_of "$peak")" ]; then peak=$f; fi
done
echo "sites: $nfiles profiles, final $final, last peak $peak"
mib64=67108864
if [ -z "$final" ] || [ -z "$peak" ]; then
  bad "expected peak profiles and a final one under $dir/sites.*"
else
  for f in "$final" "$peak"; do
    why=$(check_form "$f") || bad "$f is not a profile: $why"
  done
  text=$(view "$final"); echo "$text" | head -8
  top=$(first_site "$text") keep=$(flat keep_site "$text") churn=$(flat churn_site "$text")
  [ "$top" = keep_site ] || bad "final profile: the top site is '$top', not keep_site"
  within "$keep" $mib64 15 || bad "final profile: keep_site holds $keep bytes, not 64 MiB within 15 %"
  [ "$churn" -lt $((mib64 / 32)) ] || bad "final profile: churn_site still holds $churn bytes"
  text=$(view "$peak"); echo "$text" | head -8
  keep=$(flat keep_site "$text") churn=$(flat churn_site "$text")
  within "$keep" $mib64 15 || bad "last peak profile: keep_site holds $keep bytes, not 64 MiB within 15 %"
  [ "$churn" -gt $((2 * mib64)) ] || bad "last peak profile: churn_site holds $churn bytes, expected over 128 MiB"
fi
leak=$(grep -c 'hakmem: prof_leak: ' "$dir/sites.err")
[ "$leak" = 1 ] || bad "$leak leak summary lines, expected one"
grep 'hakmem: prof_leak: ' "$dir/sites.err" | grep -q 'top: keep_site+' || bad "the leak summary does not name keep_site first"
[ "$(grep -vc 'hakmem: prof_leak: ' "$dir/sites.err")" = 0 ] || bad "stderr has more than the leak summary"
samples=$(echo "$out" | sed -n 's/.*prof_samples=\([0-9]*\).*/\1/p')
pbytes=$(echo "$out" | sed -n 's/.*prof_bytes=\([0-9]*\).*/\1/p')
[ "${samples:-0}" -gt 500 ] || bad "statistics: ${samples:-?} samples live with 64 MiB kept at a 64 KiB rate"
[ "${pbytes:-0}" -gt 0 ] || bad "statistics: the profiler's memory is ${pbytes:-?} bytes"

# ---- every entry point ---------------------------------------------------------
out=$(HAKMEM_CONF="prof:1,prof_sample:16K" "$prog" paths "$dir" 2>&1); rc=$?
echo "paths: $out"
[ $rc = 0 ] || bad "hk_prof paths exited $rc"
if [ -f "$dir/paths.heap" ]; then
  text=$(view "$dir/paths.heap"); echo "$text" | head -12
  for site in calloc_site:3072000 posix_memalign_site:3072000 aligned_alloc_site:2883584 \
              memalign_site:3072000 valloc_site:3072000 big_site:3000000; do
    b=$(flat "${site%%:*}" "$text")
    within "$b" "${site##*:}" 35 || bad "paths: ${site%%:*} holds $b bytes, expected ${site##*:} within 35 %"
  done
  # Half of its sampled blocks were realloc'd again (their new blocks are
  # run_paths').
  b=$(flat realloc_site "$text")
  within "$b" 1536000 40 || bad "paths: realloc_site holds $b bytes, expected 1536000 within 40 %"
else
  bad "paths: no $dir/paths.heap"
fi

# ---- threads, signals, fork ------------------------------------------------------
mkdir "$dir/thr"
out=$(HAKMEM_CONF="prof:1,prof_sample:16K,prof_final:1,prof_prefix:$dir/thr/final" "$prog" threads "$dir/thr" 2>&1); rc=$?
echo "threads: $out"
[ $rc = 0 ] || bad "hk_prof threads exited $rc"
n=0
for f in "$dir"/thr/*.heap; do
  [ -f "$f" ] || continue
  n=$((n + 1))
  why=$(check_form "$f") || bad "$f is not a profile: $why"
done
echo "threads: $n profiles"
for kind in sig exit child thr final; do
  [ -n "$(ls "$dir"/thr/$kind*.heap 2>/dev/null)" ] || bad "threads: no $kind profile"
done
# Every file passed check_form; jeprof itself reads the one a signal
# handler wrote last.
[ -f "$dir/thr/sig.heap" ] && ! view "$dir/thr/sig.heap" | grep -q '^Total: ' &&
  bad "threads: jeprof cannot read $dir/thr/sig.heap"

# ---- caps --------------------------------------------------------------------------
out=$(HAKMEM_CONF="prof:1,prof_sample:1" "$prog" caps "$dir" 2>"$dir/caps.err"); rc=$?
echo "caps: $out"; cat "$dir/caps.err"
[ $rc = 0 ] || bad "hk_prof caps exited $rc"
[ "$(grep -c 'hakmem: warning: profiler: 32768 live stacks (the cap)' "$dir/caps.err")" = 1 ] &&
  [ "$(wc -l < "$dir/caps.err")" = 1 ] || bad "caps: not exactly one line, the stack cap's warning, on stderr"
if [ -f "$dir/caps.heap" ]; then
  why=$(check_form "$dir/caps.heap") || bad "caps.heap is not a profile: $why"
  grep -q '^@ 0x0$' "$dir/caps.heap" || bad "caps: no stack '@ 0x0' for the stacks beyond the cap"
  deepest=$(awk '/^@ / { if (NF - 1 > m) m = NF - 1 } END { print m + 0 }' "$dir/caps.heap")
  [ "$deepest" = 62 ] || bad "caps: the deepest stack has $deepest frames, expected 62"
  grep -q '^@ 0x[0-9a-f]* 0x' "$dir/caps-after.heap" || bad "caps: after freeing, the new stack is not recorded"
else
  bad "caps: no $dir/caps.heap"
fi

# ---- misuse of pooled samples -----------------------------------------------------------
for m in "double:double free" "interior:invalid free" "realloc:realloc after free"; do
  out=$(HAKMEM_CONF="prof:1,prof_sample:1" "$prog" misuse "$dir" "${m%%:*}" 2>"$dir/misuse.err"); rc=$?
  lines=$(grep -c '^hakmem: error: ' "$dir/misuse.err")
  if [ "$lines" != 1 ] || ! grep -q "^hakmem: error: ${m#*:} " "$dir/misuse.err"; then
    bad "misuse ${m%%:*}: expected one 'hakmem: error: ${m#*:}' line; stderr: $(cat "$dir/misuse.err")"
  fi
  if [ "${HAKMEM_TEST_VARIANT:-fast}" = debug ]; then
    [ $rc -gt 128 ] || bad "misuse ${m%%:*}: the debug library did not abort (exit $rc)"
  elif [ $rc != 0 ] || [ "$out" != ok ]; then
    bad "misuse ${m%%:*}: exit $rc, '$out'; stderr: $(cat "$dir/misuse.err")"
  fi
done

# ---- off ---------------------------------------------------------------------------
mkdir "$dir/off"
out=$(HAKMEM_CONF="prof_final:1,prof_leak:1,prof_prefix:$dir/off/x" "$prog" off "$dir/off" 2>"$dir/off.err"); rc=$?
echo "off: $out"
[ $rc = 0 ] || { cat "$dir/off.err"; bad "hk_prof off exited $rc"; }
[ ! -s "$dir/off.err" ] || { cat "$dir/off.err"; bad "prof off: something on stderr"; }
[ -z "$(ls -A "$dir/off")" ] || bad "prof off: files written: $(ls "$dir/off")"

# ---- a bad setting -------------------------------------------------------------------
out=$(HAKMEM_PROF=0 HAKMEM_PROF_SAMPLE=0 HAKMEM_VERBOSE=1 "$prog" off "$dir/off" 2>&1)
warn=$(echo "$out" | grep -c 'warning: HAKMEM_PROF_SAMPLE=.0. is not valid')
[ "$warn" = 1 ] || bad "HAKMEM_PROF_SAMPLE=0: $warn warnings, expected one"
echo "$out" | grep -q '^hakmem: HAKMEM_PROF_SAMPLE=512.00 KiB (default)' || bad "HAKMEM_PROF_SAMPLE=0: the default is not kept"

exit $fail
