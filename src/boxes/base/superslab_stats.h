/* superslab_stats (stats box): the allocator's counters.
 * Owns: every counter, listed once in the X-macros below; the struct, the
 * public snapshot (hakmem_stats_get) and the printer all expand from them.
 * Event counters cost nothing unless configure --enable-ss-stats compiled
 * them in (config_stats); gauges (bytes mapped, superslabs live, ...) are
 * always kept because the LEAN release policy reads them.
 * Must not: allocate or print unless asked (HAKMEM_SS_OS_STATS=1). */
#ifndef HAKMEM_SUPERSLAB_STATS_H
#define HAKMEM_SUPERSLAB_STATS_H

#include "hakmem_internal.h"

/* Event counters: only with --enable-ss-stats. */
#define HK_STAT_COUNTERS(X) \
    X(mmap_calls)           \
    X(mmap_failures)        \
    X(munmap_calls)         \
    X(mremap_calls)         \
    X(madvise_calls)        \
    X(madvise_failures)     \
    X(madvise_guard_refusals) \
    X(lean_decommit)        \
    X(lean_retire)

/* Gauges: always kept; those with a peak keep it too. */
#define HK_STAT_GAUGES(X)   \
    X(ss_live, 1)           \
    X(ss_cached, 0)         \
    X(ss_decommitted, 0)    \
    X(bytes_mapped, 1)      \
    X(bytes_committed, 1)   \
    X(large_live, 0)        \
    X(large_cached_bytes, 0)

typedef struct hk_stats {
#define HK_DECL_COUNTER(name) _Atomic uint64_t name;
#define HK_DECL_GAUGE(name, peak) _Atomic int64_t name; _Atomic int64_t name##_peak;
    HK_STAT_COUNTERS(HK_DECL_COUNTER)
    HK_STAT_GAUGES(HK_DECL_GAUGE)
#undef HK_DECL_COUNTER
#undef HK_DECL_GAUGE
} hk_stats_t;

extern HK_HIDDEN hk_stats_t g_hk_stats;

/* The original design's names for the two LEAN counters. */
#define g_ss_lean_decommit_calls (g_hk_stats.lean_decommit)
#define g_ss_lean_retire_calls (g_hk_stats.lean_retire)

/* Count an event (no-op unless stats are built in). */
#define HK_STAT_INC(name)                                                     \
    do {                                                                      \
        if (config_stats)                                                     \
            atomic_fetch_add_explicit(&g_hk_stats.name, 1, memory_order_relaxed); \
    } while (0)

/* Move a gauge by delta, keeping its peak. */
void hk_gauge_add_peak(_Atomic int64_t *g, _Atomic int64_t *peak, int64_t delta);
#define HK_GAUGE_ADD(name, delta) hk_gauge_add_peak(&g_hk_stats.name, &g_hk_stats.name##_peak, (delta))
#define HK_GAUGE_GET(name) atomic_load_explicit(&g_hk_stats.name, memory_order_relaxed)

/* At exit: print the counters to stderr if HAKMEM_SS_OS_STATS=1. */
void hk_stats_at_exit(void);

#endif
