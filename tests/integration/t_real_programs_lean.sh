#!/bin/sh
# CONFORMANCE F.30 with LEAN forced on in its most eager setting (budget 0,
# MADV_DONTNEED): the real programs must behave exactly as without hakmem.
# The LEAN-on columns run t_real_programs itself with LEAN on (budget 0,
# each decommit mode): this one is for the columns where LEAN is off.
case "${HAKMEM_TEST_COLUMN:-${HAKMEM_TEST_VARIANT:-}}" in
  lean|debug) ;;
  leanfree|leandontneed)
    echo "SKIP: this column runs t_real_programs with LEAN on (budget 0) already"; exit 77 ;;
  *) echo "SKIP: variant '${HAKMEM_TEST_VARIANT:-}' has no LEAN code"; exit 77 ;;
esac
HAKMEM_SS_MEM_LEAN=1 HAKMEM_SS_MEM_LEAN_TARGET_MB=0 HAKMEM_SS_MEM_LEAN_DECOMMIT=DONTNEED
export HAKMEM_SS_MEM_LEAN HAKMEM_SS_MEM_LEAN_TARGET_MB HAKMEM_SS_MEM_LEAN_DECOMMIT
exec /bin/sh "$(dirname "$0")/t_real_programs.sh" "$@"
