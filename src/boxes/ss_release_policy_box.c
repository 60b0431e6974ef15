/* ss_release_policy_box: keep or release, and how. See the header. */
#include "hakmem_internal.h"
#include "ss_release_policy_box.h"
#include "madvise_guard_box.h"
#include "ss_mem_lean_env_box.h"
#include "superslab_stats.h"

#include <time.h>

/* The cache's own allowance in LEAN, before bounces. */
#define HK_LEAN_CACHE_BASE 1
/* Bounces never raise the allowance beyond this (256 MiB). */
#define HK_LEAN_BONUS_MAX 128

static _Atomic unsigned g_bonus;          /* extra superslabs allowed, from bounces */
static _Atomic int64_t g_last_bounce_sec; /* when the last bounce happened */

static int64_t now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec;
}

/* Halve the bonus for each whole second since the last bounce. */
static unsigned current_bonus(void)
{
    unsigned b = atomic_load_explicit(&g_bonus, memory_order_relaxed);
    if (!b)
        return 0;
    int64_t idle = now_sec() - atomic_load_explicit(&g_last_bounce_sec, memory_order_relaxed);
    if (idle >= 1) {
        unsigned nb = idle >= 16 ? 0 : b >> idle;
        if (atomic_compare_exchange_strong(&g_bonus, &b, nb))
            atomic_store_explicit(&g_last_bounce_sec, now_sec(), memory_order_relaxed);
        b = nb;
    }
    return b;
}

unsigned ss_release_policy_bonus(void) { return config_lean ? current_bonus() : 0; }

void ss_release_policy_note_reuse(void)
{
    if (!config_lean)
        return;
    unsigned b = atomic_load_explicit(&g_bonus, memory_order_relaxed);
    if (b < HK_LEAN_BONUS_MAX)
        atomic_fetch_add_explicit(&g_bonus, 1, memory_order_relaxed);
    atomic_store_explicit(&g_last_bounce_sec, now_sec(), memory_order_relaxed);
}

unsigned ss_heap_keep_empty(void) { return ss_mem_lean_enabled() ? 0 : 1; }

bool ss_should_keep_superslab(hk_superslab_t *ss, int class_idx)
{
    if (!ss_mem_lean_enabled())
        return true; /* FAST: persistent backend */
    if (ss_mem_lean_decommit_mode() == HK_DECOMMIT_OFF)
        return true; /* OFF: LEAN only suppresses prewarm */
    unsigned bonus = current_bonus();
    int64_t cached = HK_GAUGE_GET(ss_cached);
    int64_t committed = HK_GAUGE_GET(bytes_committed);
    int64_t budget = ((int64_t)ss_mem_lean_target_mb() << 20) + (int64_t)bonus * (int64_t)HK_SS_SIZE;
    return cached < (int64_t)(HK_LEAN_CACHE_BASE + bonus) && committed <= budget;
}

bool ss_should_decommit_slab(void)
{
    if (!ss_mem_lean_enabled() || ss_mem_lean_decommit_mode() == HK_DECOMMIT_OFF)
        return false;
    int64_t budget = ((int64_t)ss_mem_lean_target_mb() << 20) + (int64_t)current_bonus() * (int64_t)HK_SS_SIZE;
    return HK_GAUGE_GET(bytes_committed) > budget;
}

int ss_maybe_decommit_superslab(void *ptr, size_t size)
{
    if (!config_lean)
        return -1;
    hk_advice_t how;
    switch (ss_mem_lean_decommit_mode()) {
    case HK_DECOMMIT_FREE:
        how = HK_ADVICE_FREE;
        break;
    case HK_DECOMMIT_DONTNEED:
        how = HK_ADVICE_DONTNEED;
        break;
    default:
        return -1;
    }
    if (ss_os_madvise_guarded(ptr, size, how) != 0)
        return -1;
    HK_STAT_INC(lean_decommit);
    return 0;
}
