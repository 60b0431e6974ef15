#!/bin/sh
# tests/stress/tsan-run.sh: the two halves of `make check-tsan`
# (tests/stress/Makefile.inc).
#
#   tsan-run.sh --probe CC   Can CC build and run a -fsanitize=thread
#                            program? Prints the extra warning flags the
#                            TSan build needs; exits 77 (skip) with the
#                            reason on stderr when TSan is not usable.
#   tsan-run.sh PROGRAM...   Runs each program (tests/stress/tsan/NAME_VARIANT)
#                            in its variant's mode, log in PROGRAM.log;
#                            fails if any program fails or TSan reports
#                            anything.
#
# Per-program environment: st_model_* run the model once (its short run);
# st_helpers_* choose their own (background thread, no purge delay);
# t_threads_* and t_fork_* are the integration tests, told their variant
# (HAKMEM_TEST_VARIANT) and with no library to check for (they are linked,
# not preloaded). *_lean programs run LEAN on, budget 0, DONTNEED.
# TSAN_OPTIONS from the caller's environment are added to ours.

set -u

if [ "${1:-}" = --probe ]; then
  cc=${2:?usage: tsan-run.sh --probe CC}
  dir=tests/stress/tsan
  mkdir -p "$dir" || exit 99
  cat > "$dir/probe.c" <<'EOF'
#include <pthread.h>
#include <stdatomic.h>
static _Atomic int n;
static void *run(void *a) { atomic_fetch_add(&n, 1); return a; }
int main(void)
{
    pthread_t t;
    if (pthread_create(&t, 0, run, 0) != 0)
        return 1;
    pthread_join(t, 0);
    return atomic_load(&n) == 1 ? 0 : 1;
}
EOF
  if ! $cc -fsanitize=thread -pthread "$dir/probe.c" -o "$dir/probe" 2> "$dir/probe.log"; then
    echo "check-tsan: SKIP: $cc cannot link -fsanitize=thread programs (GCC's runtime is libtsan, Debian package libtsan2, pulled in by gcc-12):" >&2
    sed 's/^/  /' "$dir/probe.log" >&2
    exit 77
  fi
  if ! "$dir/probe" > "$dir/probe.log" 2>&1 && ! setarch "$(uname -m)" -R "$dir/probe" > /dev/null 2>&1; then
    echo "check-tsan: SKIP: a -fsanitize=thread program does not run here:" >&2
    sed 's/^/  /' "$dir/probe.log" >&2
    exit 77
  fi
  if $cc -Werror -Wno-error=tsan -fsanitize=thread -c "$dir/probe.c" -o "$dir/probe.o" 2> /dev/null; then
    echo "-Wno-error=tsan"
  fi
  rm -f "$dir/probe.o"
  exit 0
fi

[ $# -gt 0 ] || { echo "usage: tsan-run.sh PROGRAM..." >&2; exit 99; }

# Kernels with more mmap randomisation than older TSan runtimes expect make
# every TSan program die at start ("unexpected memory mapping"); running
# without address randomisation avoids it.
wrap=
if [ -x tests/stress/tsan/probe ] && ! tests/stress/tsan/probe > /dev/null 2>&1; then
  wrap="setarch $(uname -m) -R"
  echo "check-tsan: TSan programs need address randomisation off here: running under '$wrap'"
fi

# die_after_fork=0: t_fork's children start threads after a fork from a
# threaded parent, which TSan refuses by default (it cannot vouch for its own
# state there); the children are what the test is about.
tsan_opts="exitcode=0 halt_on_error=0 die_after_fork=0 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
# CK_FORK=no: Check's fork mode would run every test in the child of a
# fork, where TSan watches less well (see die_after_fork); the test's own
# threads are judged best in one process. The fork paths are still run (and
# judged) by the tests that fork on purpose.
failed=0
total_t0=$(date +%s)
for prog in "$@"; do
  name=$(basename "$prog")
  variant=${name##*_}
  log=$prog.log
  case "$variant" in
    fast) modeenv= ;;
    lean) modeenv="HAKMEM_SS_MEM_LEAN=1 HAKMEM_SS_MEM_LEAN_TARGET_MB=0 HAKMEM_SS_MEM_LEAN_DECOMMIT=DONTNEED" ;;
    *) echo "tsan-run.sh: $name: unknown variant '$variant'" >&2; exit 99 ;;
  esac
  if [ ! -x "$prog" ]; then
    echo "FAIL: $name: $prog was not built" >&2
    failed=$((failed + 1))
    continue
  fi
  # Reports go to files (log_path), one per process: a test that checks a
  # child's stderr must see only what hakmem and the test wrote there.
  rm -f "$prog".tsan.*
  t0=$(date +%s)
  # shellcheck disable=SC2086  # modeenv and wrap are word lists
  env -u LD_PRELOAD -u HAKMEM_TEST_LIB -u HAKMEM_TEST_ALLOW_GLIBC $modeenv \
    HAKMEM_TEST_VARIANT="$variant" TSAN_OPTIONS="$tsan_opts log_path=$prog.tsan" CK_FORK=no \
    timeout -k 10 900 $wrap "$prog" > "$log" 2>&1
  rc=$?
  t1=$(date +%s)
  reports=0
  for f in "$prog".tsan.*; do
    [ -f "$f" ] || continue
    { echo "=== TSan log of process ${f##*.}"; cat "$f"; } >> "$log"
    reports=$((reports + $(grep -c '^WARNING: ThreadSanitizer' "$f")))
  done
  rm -f "$prog".tsan.*
  if [ "$rc" -eq 0 ] && [ "$reports" -eq 0 ]; then
    echo "PASS: $name ($((t1 - t0)) s)"
  else
    echo "FAIL: $name: exit $rc, $reports TSan report(s) ($((t1 - t0)) s); log: $log"
    # Test failures and every kind of report but data races first (a
    # double lock, say, explains the races that follow it), then the most
    # frequent races; everything is in the log.
    grep -E '^(SUMMARY: ThreadSanitizer|fail=|.*:[0-9]+:[EF]:)' "$log" | grep -v 'ThreadSanitizer: data race' \
      | cut -c1-240 | sort | uniq -c | sort -rn | sed 's/^/    /'
    grep -E '^SUMMARY: ThreadSanitizer: data race' "$log" | sort | uniq -c | sort -rn | sed 's/^/    /' > "$log.top"
    head -n 10 "$log.top"
    more=$(($(wc -l < "$log.top") - 10))
    [ "$more" -le 0 ] || echo "    ... and $more more distinct races in $log"
    rm -f "$log.top"
    failed=$((failed + 1))
  fi
done
echo "check-tsan: $# programs, $failed failed, $(( $(date +%s) - total_t0 )) s"
[ "$failed" -eq 0 ]
