#!/bin/sh
# CONFORMANCE F.30 with LEAN forced on in its most eager setting (budget 0,
# MADV_DONTNEED): the real programs must behave exactly as without hakmem.
case "${HAKMEM_TEST_VARIANT:-}" in
  lean|debug) ;;
  *) echo "SKIP: variant '${HAKMEM_TEST_VARIANT:-}' has no LEAN code"; exit 77 ;;
esac
HAKMEM_SS_MEM_LEAN=1 HAKMEM_SS_MEM_LEAN_TARGET_MB=0 HAKMEM_SS_MEM_LEAN_DECOMMIT=DONTNEED
export HAKMEM_SS_MEM_LEAN HAKMEM_SS_MEM_LEAN_TARGET_MB HAKMEM_SS_MEM_LEAN_DECOMMIT
exec /bin/sh "$(dirname "$0")/t_real_programs.sh" "$@"
