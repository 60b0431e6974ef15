/* env_box: run-time settings from the environment.
 * Owns: the one table of settings (name, kind, default, bounds), parsing it
 * once, and the verbose dump (HAKMEM_VERBOSE=1).
 * Promises: parsed once on first use, thread-safe, without the heap; a bad
 * value gets one warning line on stderr and the default.
 * Must not: allocate, or read any other box's state. */
#ifndef HAKMEM_ENV_BOX_H
#define HAKMEM_ENV_BOX_H

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    HK_DECOMMIT_FREE = 0,     /* MADV_FREE: lazy reclaim, contents may survive */
    HK_DECOMMIT_DONTNEED = 1, /* MADV_DONTNEED: RSS drops now, reads back zero */
    HK_DECOMMIT_OFF = 2,      /* never give pages back (LEAN only skips prewarm) */
} hk_decommit_mode_t;

/* The settings, in table order. */
typedef enum {
    HK_OPT_VERBOSE,          /* HAKMEM_VERBOSE: print every setting at start */
    HK_OPT_SS_MEM_LEAN,      /* HAKMEM_SS_MEM_LEAN: LEAN mode */
    HK_OPT_LEAN_TARGET_MB,   /* HAKMEM_SS_MEM_LEAN_TARGET_MB: LEAN budget, MiB */
    HK_OPT_LEAN_DECOMMIT,    /* HAKMEM_SS_MEM_LEAN_DECOMMIT: FREE|DONTNEED|OFF */
    HK_OPT_SS_OS_STATS,      /* HAKMEM_SS_OS_STATS: print counters at exit */
    HK_OPT_PREWARM_SS,       /* HAKMEM_PREWARM_SS: whole superslabs prewarmed (FAST) */
    HK_OPT_PREWARM_CLASS_MAX, /* HAKMEM_PREWARM_CLASS_MAX: hot classes prewarmed (FAST), bytes */
    HK_OPT_LARGE_CACHE_MB,   /* HAKMEM_LARGE_CACHE_MB: freed large ranges kept, MiB */
    HK_OPT_FAULT_MMAP,       /* HAKMEM_FAULT_MMAP: make the Nth mmap fail (debug) */
    HK_OPT_FAULT_MADVISE,    /* HAKMEM_FAULT_MADVISE: make the Nth madvise fail (debug) */
    HK_OPT_FAULT_MADVISE_ERRNO, /* HAKMEM_FAULT_MADVISE_ERRNO: ENOMEM|EINVAL (debug) */
    HK_OPT_COUNT
} hk_opt_t;

/* Value of a setting (enums as their index). Parses the environment on the
 * first call. */
int64_t hk_opt(hk_opt_t which);
/* Was the setting given (validly) in the environment? */
bool hk_opt_is_set(hk_opt_t which);
/* A box above owns the default of one of its settings: it sets it here,
 * before the first parse (from the allocator's init). */
void hk_opt_set_default(hk_opt_t which, int64_t def);
/* Parse now (idempotent); called from the allocator's init. */
void hk_env_init(void);
/* Print every setting and its value to stderr (HAKMEM_VERBOSE=1). */
void hk_env_dump(void);

#endif
