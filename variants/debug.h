/* variants/debug.h: identity of libhakmem_debug.so. Every check on:
 * assertions, freed memory junk-filled, heap misuse aborts with one
 * `hakmem: error:` line, fault injection (HAKMEM_FAULT_MMAP,
 * HAKMEM_FAULT_MADVISE). Carries the LEAN code too, so LEAN paths can be
 * debugged (LEAN stays off unless HAKMEM_SS_MEM_LEAN=1). */
#define HAKMEM_VARIANT_NAME "debug"
#define HAKMEM_VARIANT_LEAN 0
#define HAKMEM_VARIANT_DEBUG 1
