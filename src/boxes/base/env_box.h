/* env_box: run-time settings.
 * Owns: the one table of settings (variable, key, kind, default, range,
 * where it applies), their three sources and their precedence:
 *   HAKMEM_* variable  >  HAKMEM_CONF="key:value,..."  >  the string
 *   compiled in by ./configure --with-conf=...  >  the built-in default,
 * the warnings for unknown keys and HAKMEM_* names (with the closest known
 * name) and for bad values (with the allowed range), and the verbose dump
 * (HAKMEM_VERBOSE=1).
 * Values: booleans 1/0, true/false, yes/no, on/off; sizes N with K, M, G
 * (KB/KiB, ...), a bare number in the setting's unit; LEAN's budget also
 * `auto` or `N%` of the cgroup's memory limit (cgroup_box); the statistics'
 * output a boolean, human, json, file:NAME or a path with a '/'.
 * A setting given explicitly (variable or HAKMEM_CONF) whose code this
 * library does not have (LEAN's in the FAST library, fault injection
 * outside the debug one) gets one warning too, unless it asks for the
 * default (which is what the library does anyway).
 * Promises: parsed once on first use, thread-safe, without the heap; a bad
 * value gets one warning line on stderr and the next source's value.
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
    HK_OPT_LEAN_TARGET_MB,   /* HAKMEM_SS_MEM_LEAN_TARGET_MB: LEAN budget, MiB (auto, N%) */
    HK_OPT_LEAN_DECOMMIT,    /* HAKMEM_SS_MEM_LEAN_DECOMMIT: FREE|DONTNEED|OFF */
    HK_OPT_SS_OS_STATS,      /* HAKMEM_SS_OS_STATS: print the statistics at exit */
    HK_OPT_STATS,            /* HAKMEM_STATS: at exit, hk_stats_out_t (a file: hk_opt_str) */
    HK_OPT_PREWARM_SS,       /* HAKMEM_PREWARM_SS: whole superslabs prewarmed (FAST) */
    HK_OPT_PREWARM_CLASS_MAX, /* HAKMEM_PREWARM_CLASS_MAX: hot classes prewarmed (FAST), bytes */
    HK_OPT_THP,              /* HAKMEM_THP: superslabs on transparent huge pages */
    HK_OPT_LARGE_CACHE_MB,   /* HAKMEM_LARGE_CACHE_MB: freed large ranges kept, MiB */
    HK_OPT_PURGE_DELAY_MS,   /* HAKMEM_PURGE_DELAY_MS: idle memory kept this long (-1 never) */
    HK_OPT_BACKGROUND,       /* HAKMEM_BACKGROUND: a thread applies the delay */
    HK_OPT_CGROUP_ROOT,      /* HAKMEM_CGROUP_ROOT: where the cgroup tree is mounted */
    HK_OPT_SYSFS_ROOT,       /* HAKMEM_SYSFS_ROOT: where sysfs is mounted (the THP mode) */
    HK_OPT_PROF,             /* HAKMEM_PROF: the sampled heap profiler */
    HK_OPT_PROF_SAMPLE,      /* HAKMEM_PROF_SAMPLE: mean bytes allocated between samples */
    HK_OPT_PROF_FINAL,       /* HAKMEM_PROF_FINAL: a profile at exit */
    HK_OPT_PROF_LEAK,        /* HAKMEM_PROF_LEAK: the leak summary at exit */
    HK_OPT_PROF_PREFIX,      /* HAKMEM_PROF_PREFIX: profiles are PREFIX.PID.SEQ.heap */
    HK_OPT_PROF_PEAK_STEP,   /* HAKMEM_PROF_PEAK_STEP: a profile per new peak by this many bytes */
    HK_OPT_FAULT_MMAP,       /* HAKMEM_FAULT_MMAP: make the Nth mmap fail (debug) */
    HK_OPT_FAULT_MADVISE,    /* HAKMEM_FAULT_MADVISE: make the Nth madvise fail (debug) */
    HK_OPT_FAULT_MADVISE_ERRNO, /* HAKMEM_FAULT_MADVISE_ERRNO: ENOMEM|EINVAL (debug) */
    HK_OPT_COUNT
} hk_opt_t;

/* HAKMEM_STATS: what is printed at exit, and where. */
typedef enum {
    HK_STATS_OFF = 0,   /* a boolean off (0, false, no, off): nothing */
    HK_STATS_HUMAN = 1, /* a boolean on, or `human`: the human form on stderr */
    HK_STATS_JSON = 2,  /* `json`: the JSON form on stderr */
    HK_STATS_FILE = 3,  /* `file:NAME` or a path with a '/': the JSON into that file */
} hk_stats_out_t;

/* Value of a setting (enums as their index; sizes in the setting's unit,
 * rounded down). Parses the settings on the first call. */
int64_t hk_opt(hk_opt_t which);
/* A size setting in bytes. */
int64_t hk_opt_bytes(hk_opt_t which);
/* A string setting ("" when not given; HAKMEM_STATS: the file's name). */
const char *hk_opt_str(hk_opt_t which);
/* Was the setting given validly by any source (variable, HAKMEM_CONF, the
 * compiled-in string)? */
bool hk_opt_is_set(hk_opt_t which);
/* A box above owns the default of one of its settings: it sets it here,
 * before the first parse (from the allocator's init), and may describe it
 * in words for the dump and the warnings (a default that depends on the
 * mode: static text). */
void hk_opt_set_default(hk_opt_t which, int64_t def);
void hk_opt_set_default_text(hk_opt_t which, const char *text);
/* The purge delay's default: the mode's (the release policy resolves it). */
#define HK_PURGE_DELAY_BY_MODE (-2)
/* Parse now (idempotent); called from the allocator's init. */
void hk_env_init(void);
/* Print the version, the variant and every setting with its value and
 * source to stderr (HAKMEM_VERBOSE=1). */
void hk_env_dump(void);

#endif
