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

HK_API int hakmem_stats_get(struct hakmem_stats *out, size_t size)
{
    if (!out || size < sizeof *out) {
        errno = EINVAL;
        return -1;
    }
    memset(out, 0, sizeof *out);
    out->stats_built_in = config_stats;
    out->lean_mode = (uint64_t)ss_mem_lean_enabled();
#define HK_COPY_COUNTER(name) out->name = atomic_load_explicit(&g_hk_stats.name, memory_order_relaxed);
    HK_STAT_COUNTERS(HK_COPY_COUNTER)
#undef HK_COPY_COUNTER
    out->ss_live = (uint64_t)HK_GAUGE_GET(ss_live);
    out->ss_live_peak = (uint64_t)HK_GAUGE_GET(ss_live_peak);
    out->ss_cached = (uint64_t)HK_GAUGE_GET(ss_cached);
    out->ss_decommitted = (uint64_t)HK_GAUGE_GET(ss_decommitted);
    out->bytes_mapped = (uint64_t)HK_GAUGE_GET(bytes_mapped);
    out->bytes_mapped_peak = (uint64_t)HK_GAUGE_GET(bytes_mapped_peak);
    out->bytes_committed = (uint64_t)HK_GAUGE_GET(bytes_committed);
    out->bytes_committed_peak = (uint64_t)HK_GAUGE_GET(bytes_committed_peak);
    out->large_live = (uint64_t)HK_GAUGE_GET(large_live);
    out->large_cached_bytes = (uint64_t)HK_GAUGE_GET(large_cached_bytes);
    return 0;
}

/* Lines at exit carry a prefix so they are recognisable among a program's
 * own stderr output; hakmem_stats_print() writes bare `name value`. */
static const char *g_line_prefix = "";

static void print_line(int fd, const char *name, uint64_t v)
{
    hk_msg_t m = {.len = 0};
    hk_msg_str(&m, g_line_prefix);
    hk_msg_str(&m, name);
    hk_msg_str(&m, " ");
    hk_msg_u64(&m, v);
    m.buf[m.len++] = '\n';
    ssize_t r = write(fd, m.buf, m.len);
    (void)r;
}

HK_API void hakmem_stats_print(int fd)
{
    int saved = errno;
    struct hakmem_stats s;
    hakmem_stats_get(&s, sizeof s);
    print_line(fd, "stats_built_in", s.stats_built_in);
    print_line(fd, "lean_mode", s.lean_mode);
#define HK_PRINT_COUNTER(name) print_line(fd, #name, s.name);
    HK_STAT_COUNTERS(HK_PRINT_COUNTER)
#undef HK_PRINT_COUNTER
#define HK_PRINT_GAUGE(name, peak)                   \
    print_line(fd, #name, s.name);                   \
    if (peak)                                        \
        print_line(fd, #name "_peak", (uint64_t)HK_GAUGE_GET(name##_peak));
    HK_STAT_GAUGES(HK_PRINT_GAUGE)
#undef HK_PRINT_GAUGE
    errno = saved;
}

void hk_stats_at_exit(void)
{
    if (!hk_opt(HK_OPT_SS_OS_STATS))
        return;
    if (!config_stats) {
        hk_warn("HAKMEM_SS_OS_STATS=1, but the counters are not built in (configure --enable-ss-stats)");
        return;
    }
    g_line_prefix = "hakmem: stat ";
    hakmem_stats_print(2);
    g_line_prefix = "";
}
