/* superslab_stats (stats box): the allocator's counters.
 * Owns: every counter, listed once in the X-macros below; the struct, the
 * public snapshot (hakmem_stats_get) and the printer all expand from them.
 * Event counters cost nothing unless configure --enable-ss-stats compiled
 * them in (config_stats); gauges (bytes mapped, superslabs live, ...) are
 * always kept because the LEAN release policy reads them.
 * Formats the statistics (human, JSON, malloc_info's XML) from a snapshot
 * it is handed (hk_stats_view_t).
 * Must not: allocate, print unless asked, or read other boxes' metadata. */
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
    X(lean_retire)          \
    X(thp_advise)           \
    X(thp_kept_whole)

/* Gauges: always kept; those with a peak keep it too. */
#define HK_STAT_GAUGES(X)   \
    X(ss_live, 1)           \
    X(ss_cached, 0)         \
    X(ss_decommitted, 0)    \
    X(bytes_mapped, 1)      \
    X(bytes_committed, 1)   \
    X(large_live, 0)        \
    X(large_cached_bytes, 0) \
    X(bytes_reserved, 0)    \
    X(medium_regions, 1)

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

/* What the printers print: the public snapshot and the size classes.
 * Filled by api_box (hk_stats_view), which asks the boxes that own the
 * metadata; this box only formats it. */
#include "hakmem.h"
#include "base/diag_box.h"
#include "base/size_class_box.h"
typedef struct hk_stats_view {
    struct hakmem_stats s;
    struct hakmem_class_stats cls[HK_NUM_CLASSES];
} hk_stats_view_t;

/* glibc's mallinfo2 figures from a snapshot, with glibc's meanings and
 * identities: the heap that is not one mapping per block (superslabs and
 * the freed large ranges kept for reuse: committed, less the live large
 * blocks) is `arena`, of which `uordblks` is in use (small blocks) and
 * `fordblks` is free, arena = uordblks + fordblks; the live large blocks
 * (each its own mapping, as glibc's mmapped chunks) are hblks/hblkhd only.
 * So uordblks + hblkhd is what is in use. Reserved address space is in
 * none. keepcost: what malloc_trim gives back now (cached), within
 * fordblks. mallinfo2, mallinfo and malloc_info all read these. */
typedef struct hk_glibc_figures {
    uint64_t arena, uordblks, fordblks, hblks, hblkhd, keepcost;
} hk_glibc_figures_t;
void hk_stats_glibc(const struct hakmem_stats *s, hk_glibc_figures_t *g);

/* The counters and the gauges this box keeps, into *out (the rest 0). */
void hk_stats_fill_gauges(struct hakmem_stats *out);
/* The three forms, without the heap. */
void hk_stats_write_human(hk_out_t *o, const hk_stats_view_t *v);
void hk_stats_write_json(hk_out_t *o, const hk_stats_view_t *v);
/* glibc's malloc_info document (version="1"), with hakmem's figures. */
void hk_stats_write_xml(hk_out_t *o, const hk_stats_view_t *v);

#endif
