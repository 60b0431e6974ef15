/* ss_release_policy_box: keep or release, and how. See the header. */
#include "hakmem_internal.h"
#include "backend/ss_release_policy_box.h"
#include "base/diag_box.h"
#include "base/env_box.h"
#include "base/superslab_stats.h"
#include "os/madvise_guard_box.h"
#include "os/ss_os_acquire_box.h"
#include "os/ss_registry_box.h"

#include <time.h>

static ss_release_state_t ss_release_state;

int64_t ss_release_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t ss_release_bonus_at(ss_release_state_t *st, int64_t now_ms)
{
    return ss_release_bonus_delay_at(st, now_ms, ss_purge_delay_ms());
}

int64_t ss_release_bonus_delay_at(ss_release_state_t *st, int64_t now_ms, int64_t delay_ms)
{
    int64_t b = atomic_load_explicit(&st->bonus, memory_order_relaxed);
    if (!b)
        return 0;
    int64_t last = atomic_load_explicit(&st->last_use_ms, memory_order_relaxed);
    if (delay_ms >= 0 && now_ms - last >= delay_ms) {
        /* Memory kept for a loop that stopped is idle memory like any other. */
        if (atomic_compare_exchange_strong(&st->bonus, &b, 0))
            return 0;
        return atomic_load_explicit(&st->bonus, memory_order_relaxed);
    }
    int64_t idle = (now_ms - last) / SS_RELEASE_BONUS_HALVING_MS;
    if (idle >= 1) {
        int64_t nb = idle >= 40 ? 0 : b >> idle;
        if (atomic_compare_exchange_strong(&st->bonus, &b, nb))
            atomic_store_explicit(&st->last_use_ms, last + idle * SS_RELEASE_BONUS_HALVING_MS,
                                  memory_order_relaxed);
        b = nb;
    }
    return b;
}

void ss_release_reuse_at(ss_release_state_t *st, int64_t now_ms, size_t bytes)
{
    /* Twice what bounced: the budget then covers the loop's footprint with
     * room to spare, instead of creeping up to it one round at a time. */
    int64_t b = atomic_load_explicit(&st->bonus, memory_order_relaxed);
    if (b < SS_RELEASE_BONUS_MAX)
        atomic_fetch_add_explicit(&st->bonus, 2 * (int64_t)bytes, memory_order_relaxed);
    atomic_store_explicit(&st->last_use_ms, now_ms, memory_order_relaxed);
}

/* The bonus just decided to keep memory the target alone would release:
 * it is in use (the program is still looping), so it does not decay. */
static void bonus_in_use(ss_release_state_t *st, int64_t now_ms)
{
    atomic_store_explicit(&st->last_use_ms, now_ms, memory_order_relaxed);
}

bool ss_release_shrinking_at(ss_release_state_t *st, int64_t now_ms)
{
    int64_t shrink = atomic_load_explicit(&st->shrink_ms, memory_order_relaxed);
    return shrink && now_ms - shrink < SS_RELEASE_SHRINK_MS;
}

bool ss_release_keep_at(ss_release_state_t *st, int64_t now_ms, int64_t target_bytes, int64_t cached,
                        int64_t committed)
{
    int64_t bonus = ss_release_bonus_at(st, now_ms);
    /* A program that was over budget a moment ago is shrinking: the
     * target does not hold its last empty superslab back (a burst freed
     * at once goes back whole). */
    if (!ss_release_shrinking_at(st, now_ms) && cached < SS_RELEASE_CACHE_BASE && committed <= target_bytes)
        return true;
    if (bonus && cached < SS_RELEASE_CACHE_BASE + bonus / (int64_t)HK_SS_SIZE &&
        committed <= target_bytes + bonus) {
        bonus_in_use(st, now_ms);
        return true;
    }
    if (committed > target_bytes + bonus)
        atomic_store_explicit(&st->shrink_ms, now_ms, memory_order_relaxed);
    return false;
}

bool ss_release_decommit_slab_at(ss_release_state_t *st, int64_t now_ms, int64_t target_bytes, int64_t committed)
{
    if (committed <= target_bytes)
        return false;
    int64_t bonus = ss_release_bonus_at(st, now_ms);
    if (bonus && committed <= target_bytes + bonus) {
        bonus_in_use(st, now_ms);
        return false;
    }
    return true;
}

int64_t ss_release_allowance_at(ss_release_state_t *st, int64_t now_ms)
{
    return SS_RELEASE_CACHE_BASE + ss_release_bonus_at(st, now_ms) / (int64_t)HK_SS_SIZE;
}

/* ---- The purge delay ------------------------------------------------------ */
/* A pass claimed every interval (a quarter of the delay, within the
 * bounds), so memory goes back between delay and delay + interval after it
 * was last used, and passes cost nothing in between. */

bool ss_release_purge_due_at(int64_t since_ms, int64_t now_ms, int64_t delay_ms)
{
    return delay_ms >= 0 && now_ms - since_ms >= delay_ms;
}

int64_t ss_release_purge_interval_ms(int64_t delay_ms)
{
    if (delay_ms < 0)
        return -1;
    int64_t q = delay_ms / 4;
    if (q > SS_RELEASE_PURGE_INTERVAL_MAX_MS)
        q = SS_RELEASE_PURGE_INTERVAL_MAX_MS;
    return q < SS_RELEASE_PURGE_INTERVAL_MIN_MS ? SS_RELEASE_PURGE_INTERVAL_MIN_MS : q;
}

bool ss_release_purge_claim_at(_Atomic int64_t *last_ms, int64_t now_ms, int64_t delay_ms)
{
    if (delay_ms < 0)
        return false;
    int64_t last = atomic_load_explicit(last_ms, memory_order_relaxed);
    int64_t every = ss_release_purge_interval_ms(delay_ms);
    if (delay_ms > 0 && now_ms - last < every - every / 8)
        return false;
    return atomic_compare_exchange_strong(last_ms, &last, now_ms);
}

/* ---- The library's entry points ---------------------------------------- */

/* The budget in bytes (it may be given in K, or as a share of the cgroup's
 * memory limit). */
static int64_t target_bytes(void) { return ss_mem_lean_target_bytes(); }

/* Settings never change once read: the delay is worked out once. */
#define SS_RELEASE_DELAY_UNKNOWN INT64_MIN
static _Atomic int64_t g_purge_delay = SS_RELEASE_DELAY_UNKNOWN;

int64_t ss_purge_delay_ms(void)
{
    int64_t d = atomic_load_explicit(&g_purge_delay, memory_order_relaxed);
    if (HK_LIKELY(d != SS_RELEASE_DELAY_UNKNOWN))
        return d;
    d = hk_opt(HK_OPT_PURGE_DELAY_MS);
    if (d == HK_PURGE_DELAY_BY_MODE)
        d = ss_release_lean() ? SS_RELEASE_PURGE_DELAY_LEAN_MS : SS_RELEASE_PURGE_DELAY_FAST_MS;
    atomic_store_explicit(&g_purge_delay, d, memory_order_relaxed);
    return d;
}

bool ss_purge_due(int64_t since_ms, int64_t now_ms)
{
    return ss_release_purge_due_at(since_ms, now_ms, ss_purge_delay_ms());
}

/* thp:1: a superslab is one huge page (or asked to be). Giving back part
 * of it would make the kernel split that page into small ones for good,
 * and every later touch a small fault again: only whole superslabs go
 * back (superslab_release then unmaps the range, 2 MiB at a time); the
 * parts stay resident, counted (thp_kept_whole). */
static bool splits_huge_page(const void *ptr, size_t size)
{
    if (((uintptr_t)ptr & HK_SS_MASK) == 0 && (size & HK_SS_MASK) == 0)
        return false;
    if (!hk_os_thp_superslabs())
        return false;
    HK_STAT_INC(thp_kept_whole);
    return true;
}

int ss_release_purge_pages(void *ptr, size_t size)
{
    if (config_lean && ss_release_gives_back())
        return ss_maybe_decommit_superslab(ptr, size);
    if (splits_huge_page(ptr, size))
        return -1;
    /* The guard's promise holds here too: never a range that is not wholly
     * inside hakmem's superslabs. */
    if (!hk_os_registry_covers_regions((uintptr_t)ptr, size))
        return -1;
    return hk_os_reset(ptr, size);
}

bool ss_purge_pass_claim(_Atomic int64_t *last_ms, int64_t now_ms)
{
    return ss_release_purge_claim_at(last_ms, now_ms, ss_purge_delay_ms());
}

int64_t ss_release_policy_bonus(void)
{
    return config_lean ? ss_release_bonus_at(&ss_release_state, ss_release_now_ms()) : 0;
}

void ss_release_policy_note_reuse(size_t bytes)
{
    if (config_lean)
        ss_release_reuse_at(&ss_release_state, ss_release_now_ms(), bytes);
}

unsigned ss_release_heap_keep_empty(void) { return ss_release_lean() ? 0 : 1; }

int64_t ss_release_cache_allowance(void) { return ss_release_allowance_at(&ss_release_state, ss_release_now_ms()); }

bool ss_should_keep_region(int64_t cached)
{
    if (!ss_release_gives_back())
        return true; /* FAST: persistent backend; OFF: LEAN only suppresses prewarm */
    return ss_release_keep_at(&ss_release_state, ss_release_now_ms(), target_bytes(),
                              HK_GAUGE_GET(ss_cached) + cached, HK_GAUGE_GET(bytes_committed));
}

bool ss_should_keep_superslab(struct hk_superslab *ss, int class_idx)
{
    (void)ss; /* the original design's signature: the footprint decides, not the superslab */
    (void)class_idx;
    return ss_should_keep_region(0);
}

bool ss_release_idle_superslab(void)
{
    return !config_debug && ss_release_gives_back() && ss_release_shrinking_at(&ss_release_state, ss_release_now_ms());
}

bool ss_should_decommit_slab(void)
{
    if (!ss_release_gives_back())
        return false;
    return ss_release_decommit_slab_at(&ss_release_state, ss_release_now_ms(), target_bytes(),
                                       HK_GAUGE_GET(bytes_committed));
}

/* LEAN's cap on the large-block cache at now_ms: the budget, or the
 * bonus alone while the program is shrinking. */
static size_t large_lean_limit(int64_t now_ms)
{
    size_t bonus = (size_t)ss_release_bonus_at(&ss_release_state, now_ms);
    return ss_release_shrinking_at(&ss_release_state, now_ms) ? bonus : (size_t)target_bytes() + bonus;
}

size_t ss_release_large_cache_limit(size_t configured)
{
    if (!ss_release_gives_back())
        return configured;
    size_t lean = large_lean_limit(ss_release_now_ms());
    return lean < configured ? lean : configured;
}

void ss_release_large_over_limit(size_t configured)
{
    if (!ss_release_gives_back())
        return;
    int64_t now = ss_release_now_ms();
    if (large_lean_limit(now) < configured)
        atomic_store_explicit(&ss_release_state.shrink_ms, now, memory_order_relaxed);
}

void ss_release_policy_init(void)
{
    hk_opt_set_default(HK_OPT_LEAN_TARGET_MB, SS_RELEASE_TARGET_MB_DEFAULT);
    hk_opt_set_default_text(HK_OPT_PURGE_DELAY_MS, HK_STR(SS_RELEASE_PURGE_DELAY_FAST_MS) " in FAST, " HK_STR(
                                                       SS_RELEASE_PURGE_DELAY_LEAN_MS) " in LEAN");
}

/* Also at load, in any program this box is linked into, even one that
 * reads the settings without allocating (the library's init calls it
 * first, for a malloc from another library's constructor that runs before
 * this one). */
__attribute__((constructor(101))) static void ss_release_policy_load(void) { ss_release_policy_init(); }

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
    if (splits_huge_page(ptr, size))
        return -1;
    if (ss_os_madvise_guarded(ptr, size, how) != 0)
        return -1;
    HK_STAT_INC(lean_decommit);
    return 0;
}
