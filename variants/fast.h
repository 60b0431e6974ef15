/* variants/fast.h: identity of libhakmem.so, the FAST-only library.
 * Speed first: LEAN code compiled out, no debug checks. Force-included
 * (-include) before every source file of the variant; src/hakmem_config.h
 * turns these macros into constants. */
#define HAKMEM_VARIANT_NAME "fast"
#define HAKMEM_VARIANT_LEAN 0
#define HAKMEM_VARIANT_DEBUG 0
