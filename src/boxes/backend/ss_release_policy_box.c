/* ss_release_policy_box: keep or release, and how. See the header. */
#include "hakmem_internal.h"
#include "backend/ss_release_policy_box.h"
#include "os/madvise_guard_box.h"
#include "base/ss_mem_lean_env_box.h"
#include "base/superslab_stats.h"

#include <time.h>

/* The cache's own allowance in LEAN, before bounces. */
#define HK_LEAN_CACHE_BASE 1
/* Bounces never raise the budget beyond this. */
#define HK_LEAN_BONUS_MAX ((int64_t)256 << 20)

static _Atomic int64_t g_bonus;           /* extra bytes allowed, from bounces */
static _Atomic int64_t g_last_use_ms; /* last bounce, or last keep the bonus made */

/* Milliseconds; the coarse clock is a few ms fine and costs no syscall. */
static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The bonus, halved for each whole second since it was last used. */
static int64_t current_bonus(void)
{
    int64_t b = atomic_load_explicit(&g_bonus, memory_order_relaxed);
    if (!b)
        return 0;
    int64_t now = now_ms();
    int64_t last = atomic_load_explicit(&g_last_use_ms, memory_order_relaxed);
    int64_t idle_s = (now - last) / 1000;
    if (idle_s >= 1) {
        int64_t nb = idle_s >= 40 ? 0 : b >> idle_s;
        if (atomic_compare_exchange_strong(&g_bonus, &b, nb))
            atomic_store_explicit(&g_last_use_ms, last + idle_s * 1000, memory_order_relaxed);
        b = nb;
    }
    return b;
}

int64_t ss_release_policy_bonus(void) { return config_lean ? current_bonus() : 0; }

void ss_release_policy_note_reuse(size_t bytes)
{
    if (!config_lean)
        return;
    /* Twice what bounced: the budget then covers the loop's footprint with
     * room to spare, instead of creeping up to it one round at a time. */
    int64_t b = atomic_load_explicit(&g_bonus, memory_order_relaxed);
    if (b < HK_LEAN_BONUS_MAX)
        atomic_fetch_add_explicit(&g_bonus, 2 * (int64_t)bytes, memory_order_relaxed);
    atomic_store_explicit(&g_last_use_ms, now_ms(), memory_order_relaxed);
}

unsigned ss_heap_keep_empty(void) { return ss_mem_lean_enabled() ? 0 : 1; }

static int64_t lean_budget(int64_t bonus)
{
    return ((int64_t)ss_mem_lean_target_mb() << 20) + bonus;
}

/* The bonus just decided to keep memory the target alone would release:
 * it is in use (the program is still looping), so it does not decay. */
static void bonus_in_use(void)
{
    atomic_store_explicit(&g_last_use_ms, now_ms(), memory_order_relaxed);
}

int64_t ss_lean_cache_allowance(void)
{
    return HK_LEAN_CACHE_BASE + current_bonus() / (int64_t)HK_SS_SIZE;
}

bool ss_should_keep_superslab(hk_superslab_t *ss, int class_idx)
{
    if (!ss_mem_lean_enabled())
        return true; /* FAST: persistent backend */
    if (ss_mem_lean_decommit_mode() == HK_DECOMMIT_OFF)
        return true; /* OFF: LEAN only suppresses prewarm */
    int64_t bonus = current_bonus();
    int64_t cached = HK_GAUGE_GET(ss_cached);
    int64_t committed = HK_GAUGE_GET(bytes_committed);
    if (cached < HK_LEAN_CACHE_BASE && committed <= lean_budget(0))
        return true;
    if (bonus && cached < HK_LEAN_CACHE_BASE + bonus / (int64_t)HK_SS_SIZE && committed <= lean_budget(bonus)) {
        bonus_in_use();
        return true;
    }
    return false;
}

bool ss_should_decommit_slab(void)
{
    if (!ss_mem_lean_enabled() || ss_mem_lean_decommit_mode() == HK_DECOMMIT_OFF)
        return false;
    int64_t committed = HK_GAUGE_GET(bytes_committed);
    if (committed <= lean_budget(0))
        return false;
    int64_t bonus = current_bonus();
    if (bonus && committed <= lean_budget(bonus)) {
        bonus_in_use();
        return false;
    }
    return true;
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
