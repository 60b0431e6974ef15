/* superslab_stats (stats box): counters, snapshot and printer. */
#include "hakmem_internal.h"
#include "base/superslab_stats.h"
#include "base/diag_box.h"
#include "base/env_box.h"
#include "base/ss_mem_lean_env_box.h"
#include "hakmem.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

hk_stats_t g_hk_stats;

void hk_gauge_add_peak(_Atomic int64_t *g, _Atomic int64_t *peak, int64_t delta)
{
    int64_t now = atomic_fetch_add_explicit(g, delta, memory_order_relaxed) + delta;
    int64_t p = atomic_load_explicit(peak, memory_order_relaxed);
    while (now > p && !atomic_compare_exchange_weak_explicit(peak, &p, now, memory_order_relaxed,
                                                             memory_order_relaxed))
        ;
}

void hk_stats_fill_gauges(struct hakmem_stats *out)
{
    memset(out, 0, sizeof *out);
    out->stats_built_in = config_stats;
    out->lean_mode = (uint64_t)ss_mem_lean_enabled();
#define HK_COPY_COUNTER(name) out->name = atomic_load_explicit(&g_hk_stats.name, memory_order_relaxed);
    HK_STAT_COUNTERS(HK_COPY_COUNTER)
#undef HK_COPY_COUNTER
#define HK_COPY_GAUGE(name, peak) out->name = (uint64_t)HK_GAUGE_GET(name);
    HK_STAT_GAUGES(HK_COPY_GAUGE)
#undef HK_COPY_GAUGE
    out->ss_live_peak = (uint64_t)HK_GAUGE_GET(ss_live_peak);
    out->bytes_mapped_peak = (uint64_t)HK_GAUGE_GET(bytes_mapped_peak);
    out->bytes_committed_peak = (uint64_t)HK_GAUGE_GET(bytes_committed_peak);
}

void hk_stats_glibc(const struct hakmem_stats *s, hk_glibc_figures_t *g)
{
    uint64_t large = s->large_live_bytes;
    g->hblks = s->large_live;
    g->hblkhd = large;
    g->uordblks = s->bytes_allocated > large ? s->bytes_allocated - large : 0;
    g->arena = s->bytes_committed > large ? s->bytes_committed - large : 0;
    /* The snapshot's figures come from several instants while other
     * threads run: the identity holds whatever they did. */
    if (g->arena < g->uordblks)
        g->arena = g->uordblks;
    g->fordblks = g->arena - g->uordblks;
    g->keepcost = s->bytes_cached < g->fordblks ? s->bytes_cached : g->fordblks;
}

/* The figures every form prints, one list: JSON key, field, whether it is
 * a size in bytes (the human form gives it a unit). Counters come from the
 * X-macro list and are printed only where they are built in. */
#define HK_VIEW_GAUGES(X)                           \
    X(allocated, bytes_allocated, 1)                \
    X(active, bytes_active, 1)                      \
    X(resident, bytes_resident, 1)                  \
    X(mapped, bytes_mapped, 1)                      \
    X(mapped_peak, bytes_mapped_peak, 1)            \
    X(committed, bytes_committed, 1)                \
    X(committed_peak, bytes_committed_peak, 1)      \
    X(cached, bytes_cached, 1)                      \
    X(retained, bytes_retained, 1)                  \
    X(reserved, bytes_reserved, 1)                  \
    X(large_live, large_live, 0)                    \
    X(large_live_bytes, large_live_bytes, 1)        \
    X(large_cached, large_cached_bytes, 1)          \
    X(medium_live, medium_live, 0)                  \
    X(medium_live_bytes, medium_live_bytes, 1)      \
    X(medium_regions, medium_regions, 0)            \
    X(medium_cached, medium_cached_bytes, 1)        \
    X(ss_live, ss_live, 0)                          \
    X(ss_live_peak, ss_live_peak, 0)                \
    X(ss_cached, ss_cached, 0)                      \
    X(ss_decommitted, ss_decommitted, 0)            \
    X(ss_abandoned, ss_abandoned, 0)                \
    X(slabs, slabs_in_use, 0)                       \
    X(heaps_live, heaps_live, 0)                    \
    X(prof_bytes, prof_bytes, 1)                    \
    X(prof_samples, prof_samples, 0)                \
    X(guard_samples, guard_samples, 0)              \
    X(guard_skipped, guard_skipped, 0)

static void human_line(hk_out_t *o, const char *name, uint64_t v, int bytes)
{
    size_t start = o->total;
    hk_out_str(o, "  ");
    hk_out_str(o, name);
    hk_out_pad(o, start, 26);
    if (bytes) {
        hk_out_size(o, v);
        hk_out_pad(o, start, 40);
        hk_out_str(o, "(");
        hk_out_u64(o, v);
        hk_out_str(o, " bytes)");
    } else {
        hk_out_u64(o, v);
    }
    hk_out_str(o, "\n");
}

void hk_stats_write_human(hk_out_t *o, const hk_stats_view_t *v)
{
    const struct hakmem_stats *s = &v->s;
    hk_out_str(o, "hakmem ");
    hk_out_str(o, PACKAGE_VERSION);
    hk_out_str(o, " (");
    hk_out_str(o, config_variant_name);
    hk_out_str(o, s->lean_mode ? ", LEAN on" : ", LEAN off");
    hk_out_str(o, config_stats ? ", counters built in)\n" : ", counters not built in)\n");
    hk_out_str(o, "gauges:\n");
#define HK_HUMAN_GAUGE(key, field, bytes) human_line(o, #key, s->field, bytes);
    HK_VIEW_GAUGES(HK_HUMAN_GAUGE)
#undef HK_HUMAN_GAUGE
    if (config_stats) {
        hk_out_str(o, "counters:\n");
#define HK_HUMAN_COUNTER(name) human_line(o, #name, s->name, 0);
        HK_STAT_COUNTERS(HK_HUMAN_COUNTER)
#undef HK_HUMAN_COUNTER
    } else {
        hk_out_str(o, "counters: not built in (configure --enable-ss-stats)\n");
    }
    hk_out_str(o, "size classes in use:\n  block size   blocks in use   slabs   bytes in use\n");
    for (int c = 0; c < HK_NUM_CLASSES; c++) {
        const struct hakmem_class_stats *k = &v->cls[c];
        if (!k->slabs)
            continue;
        size_t start = o->total;
        hk_out_pad(o, start, 2);
        hk_out_u64(o, k->block_size);
        hk_out_pad(o, start, 15);
        hk_out_u64(o, k->blocks_in_use);
        hk_out_pad(o, start, 31);
        hk_out_u64(o, k->slabs);
        hk_out_pad(o, start, 39);
        hk_out_size(o, k->blocks_in_use * k->block_size);
        hk_out_str(o, "\n");
    }
}

static void json_num(hk_out_t *o, const char *key, uint64_t v, int *first)
{
    hk_out_str(o, *first ? "\"" : ", \"");
    *first = 0;
    hk_out_str(o, key);
    hk_out_str(o, "\": ");
    hk_out_u64(o, v);
}

void hk_stats_write_json(hk_out_t *o, const hk_stats_view_t *v)
{
    const struct hakmem_stats *s = &v->s;
    int first = 1;
    hk_out_str(o, "{\"version\": \"");
    hk_out_str(o, PACKAGE_VERSION);
    hk_out_str(o, "\", \"variant\": \"");
    hk_out_str(o, config_variant_name);
    hk_out_str(o, s->lean_mode ? "\", \"lean_mode\": true" : "\", \"lean_mode\": false");
    hk_out_str(o, config_stats ? ", \"counters_built_in\": true" : ", \"counters_built_in\": false");
    hk_out_str(o, ",\n \"gauges\": {");
#define HK_JSON_GAUGE(key, field, bytes) json_num(o, #key, s->field, &first);
    HK_VIEW_GAUGES(HK_JSON_GAUGE)
#undef HK_JSON_GAUGE
    hk_out_str(o, "}");
    if (config_stats) {
        /* Absent, not 0, where they are not built in. */
        first = 1;
        hk_out_str(o, ",\n \"counters\": {");
#define HK_JSON_COUNTER(name) json_num(o, #name, s->name, &first);
        HK_STAT_COUNTERS(HK_JSON_COUNTER)
#undef HK_JSON_COUNTER
        hk_out_str(o, "}");
    }
    hk_out_str(o, ",\n \"classes\": [");
    for (int c = 0; c < HK_NUM_CLASSES; c++) {
        const struct hakmem_class_stats *k = &v->cls[c];
        first = 1;
        hk_out_str(o, c ? ",\n  {" : "\n  {");
        json_num(o, "class", (uint64_t)c, &first);
        json_num(o, "block_size", k->block_size, &first);
        json_num(o, "blocks_in_use", k->blocks_in_use, &first);
        json_num(o, "slabs", k->slabs, &first);
        hk_out_str(o, "}");
    }
    hk_out_str(o, "]}\n");
}

static void xml_attr(hk_out_t *o, const char *name, uint64_t v)
{
    hk_out_str(o, " ");
    hk_out_str(o, name);
    hk_out_str(o, "=\"");
    hk_out_u64(o, v);
    hk_out_str(o, "\"");
}

/* The totals glibc writes inside <heap> and again for the whole process
 * (there with the mmapped blocks). system and aspace: the heap obtained
 * from the system that is not one mapping per block (mallinfo2's arena);
 * its peak is at least the superslabs' peak. */
static void xml_totals(hk_out_t *o, const struct hakmem_stats *s, const hk_glibc_figures_t *g, uint64_t small_n,
                       bool mmap)
{
    uint64_t peak = s->ss_live_peak * HK_SS_SIZE;
    hk_out_str(o, "<total type=\"fast\" count=\"0\" size=\"0\"/>\n<total type=\"rest\"");
    xml_attr(o, "count", small_n);
    xml_attr(o, "size", g->uordblks);
    if (mmap) {
        hk_out_str(o, "/>\n<total type=\"mmap\"");
        xml_attr(o, "count", g->hblks);
        xml_attr(o, "size", g->hblkhd);
    }
    hk_out_str(o, "/>\n<system type=\"current\"");
    xml_attr(o, "size", g->arena);
    hk_out_str(o, "/>\n<system type=\"max\"");
    xml_attr(o, "size", peak > g->arena ? peak : g->arena);
    hk_out_str(o, "/>\n<aspace type=\"total\"");
    xml_attr(o, "size", g->arena);
    hk_out_str(o, "/>\n<aspace type=\"mprotect\"");
    xml_attr(o, "size", g->arena);
    hk_out_str(o, "/>\n");
}

/* glibc's layout: one <heap> (hakmem's small blocks: <size> per class in
 * use, from/to the request sizes it serves, total/count the blocks in
 * use), then the totals: "rest" = small blocks in use, "mmap" = large
 * blocks, system and aspace = mallinfo2's arena; then hakmem's own figures
 * (the reserved address space only there). */
void hk_stats_write_xml(hk_out_t *o, const hk_stats_view_t *v)
{
    const struct hakmem_stats *s = &v->s;
    hk_glibc_figures_t g;
    hk_stats_glibc(s, &g);
    uint64_t small_n = 0;
    hk_out_str(o, "<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n");
    uint64_t from = 1;
    for (int c = 0; c < HK_NUM_CLASSES; c++) {
        const struct hakmem_class_stats *k = &v->cls[c];
        if (k->slabs) {
            hk_out_str(o, "  <size");
            xml_attr(o, "from", from);
            xml_attr(o, "to", k->block_size);
            xml_attr(o, "total", k->blocks_in_use * k->block_size);
            xml_attr(o, "count", k->blocks_in_use);
            xml_attr(o, "slabs", k->slabs);
            hk_out_str(o, "/>\n");
        }
        small_n += k->blocks_in_use;
        from = k->block_size + 1;
    }
    hk_out_str(o, "</sizes>\n");
    xml_totals(o, s, &g, small_n, false);
    hk_out_str(o, "</heap>\n");
    xml_totals(o, s, &g, small_n, true);
    hk_out_str(o, "<hakmem");
    xml_attr(o, "allocated", s->bytes_allocated);
    xml_attr(o, "active", s->bytes_active);
    xml_attr(o, "cached", s->bytes_cached);
    xml_attr(o, "mapped", s->bytes_mapped);
    xml_attr(o, "committed", s->bytes_committed);
    xml_attr(o, "retained", s->bytes_retained);
    xml_attr(o, "reserved", s->bytes_reserved);
    hk_out_str(o, "/>\n</malloc>\n");
}
