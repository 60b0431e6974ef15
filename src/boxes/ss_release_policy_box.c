/* ss_release_policy_box: keep or release, and how. See the header. */
#include "hakmem_internal.h"
#include "ss_release_policy_box.h"
#include "madvise_guard_box.h"
#include "ss_mem_lean_env_box.h"
#include "superslab_stats.h"

#include <time.h>

/* The cache's own allowance in LEAN, before bounces. */
#define HK_LEAN_CACHE_BASE 1
/* Bounces never raise the budget beyond this. */
#define HK_LEAN_BONUS_MAX ((int64_t)256 << 20)

static _Atomic int64_t g_bonus;           /* extra bytes allowed, from bounces */
static _Atomic int64_t g_last_use_ms; /* last bounce, or last keep the bonus made */

/* Milliseconds; the coarse clock is a few ms fine and costs no syscall.
 * The purge decisions take `now` from their caller (this clock in the
 * library, a fake one in the unit tests). */
static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t ss_policy_now_ms(void) { return now_ms(); }

/* The bonus at `now`: halved for each whole second since it was last
 * used, and gone once it has been unused for the purge delay (memory kept
 * for a loop that stopped is idle memory like any other). */
static int64_t current_bonus_at(int64_t now)
{
    int64_t b = atomic_load_explicit(&g_bonus, memory_order_relaxed);
    if (!b)
        return 0;
    int64_t last = atomic_load_explicit(&g_last_use_ms, memory_order_relaxed);
    int64_t delay = ss_purge_delay_ms();
    if (delay >= 0 && now - last >= delay) {
        if (atomic_compare_exchange_strong(&g_bonus, &b, 0))
            return 0;
        return atomic_load_explicit(&g_bonus, memory_order_relaxed);
    }
    int64_t idle_s = (now - last) / 1000;
    if (idle_s >= 1) {
        int64_t nb = idle_s >= 40 ? 0 : b >> idle_s;
        if (atomic_compare_exchange_strong(&g_bonus, &b, nb))
            atomic_store_explicit(&g_last_use_ms, last + idle_s * 1000, memory_order_relaxed);
        b = nb;
    }
    return b;
}

static int64_t current_bonus(void) { return current_bonus_at(now_ms()); }

int64_t ss_release_policy_bonus_at(int64_t now) { return config_lean ? current_bonus_at(now) : 0; }

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
    return ss_mem_lean_target_bytes() + bonus;
}

/* Settings never change once read: the delay is worked out once. */
#define HK_DELAY_UNKNOWN INT64_MIN
static _Atomic int64_t g_purge_delay = HK_DELAY_UNKNOWN;

int64_t ss_purge_delay_ms(void)
{
    int64_t d = atomic_load_explicit(&g_purge_delay, memory_order_relaxed);
    if (HK_LIKELY(d != HK_DELAY_UNKNOWN))
        return d;
    if (hk_opt_is_set(HK_OPT_PURGE_DELAY_MS))
        d = hk_opt(HK_OPT_PURGE_DELAY_MS);
    else
        d = ss_mem_lean_enabled() ? HK_PURGE_DELAY_LEAN_MS : HK_PURGE_DELAY_FAST_MS;
    atomic_store_explicit(&g_purge_delay, d, memory_order_relaxed);
    return d;
}

/* ------------------------------------------------------------------------ */
/* The purge delay. Memory kept for reuse (a cached superslab, a cached
 * large range) records since when it is unused; it goes back once it has
 * stayed so for the delay. Passes over a cache are claimed at most every
 * quarter of the delay and at least every half second, so that memory
 * goes back between delay and delay + min(delay / 4, 0.5 s) after it was
 * last used, and a pass costs nothing in between. */

bool ss_purge_due_at(int64_t since_ms, int64_t now_ms, int64_t delay_ms)
{
    return delay_ms >= 0 && now_ms - since_ms >= delay_ms;
}

bool ss_purge_due(int64_t since_ms, int64_t now_ms)
{
    return ss_purge_due_at(since_ms, now_ms, ss_purge_delay_ms());
}

int64_t ss_purge_interval_ms(int64_t delay_ms)
{
    if (delay_ms < 0)
        return -1;
    int64_t q = delay_ms / 4;
    if (q > HK_PURGE_INTERVAL_MAX_MS)
        q = HK_PURGE_INTERVAL_MAX_MS;
    return q < HK_PURGE_INTERVAL_MIN_MS ? HK_PURGE_INTERVAL_MIN_MS : q;
}

bool ss_purge_pass_claim_at(_Atomic int64_t *last_ms, int64_t now_ms, int64_t delay_ms)
{
    if (delay_ms < 0)
        return false;
    int64_t last = atomic_load_explicit(last_ms, memory_order_relaxed);
    /* 0 = at once: every call may pass (the cache is then empty at once).
     * An eighth of slack: the background thread sleeps one interval
     * between passes, and the coarse clock may see a few ms less. */
    int64_t every = ss_purge_interval_ms(delay_ms);
    if (delay_ms > 0 && now_ms - last < every - every / 8)
        return false;
    return atomic_compare_exchange_strong(last_ms, &last, now_ms);
}

bool ss_purge_pass_claim(_Atomic int64_t *last_ms, int64_t now_ms)
{
    return ss_purge_pass_claim_at(last_ms, now_ms, ss_purge_delay_ms());
}

bool ss_purge_by_decommit(void)
{
    return config_lean && ss_mem_lean_enabled() && ss_mem_lean_decommit_mode() != HK_DECOMMIT_OFF;
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
