/* variants/lean.h: identity of libhakmem_lean.so, the LEAN-capable library.
 * The LEAN code is compiled in; HAKMEM_SS_MEM_LEAN=0/1 switches between FAST
 * and LEAN behaviour at run time (same binary A/B). The run-time default and
 * the default decommit strategy come from configure (config.h). */
#define HAKMEM_VARIANT_NAME "lean"
#define HAKMEM_VARIANT_LEAN 1
#define HAKMEM_VARIANT_DEBUG 0
