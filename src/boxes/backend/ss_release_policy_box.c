/* ss_release_policy_box: keep or release, and how. See the header. */
#include "hakmem_internal.h"
#include "backend/ss_release_policy_box.h"
#include "base/env_box.h"
#include "base/superslab_stats.h"
#include "os/madvise_guard_box.h"

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
    int64_t b = atomic_load_explicit(&st->bonus, memory_order_relaxed);
    if (!b)
        return 0;
    int64_t last = atomic_load_explicit(&st->last_use_ms, memory_order_relaxed);
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

bool ss_release_keep_at(ss_release_state_t *st, int64_t now_ms, int64_t target_bytes, int64_t cached,
                        int64_t committed)
{
    int64_t bonus = ss_release_bonus_at(st, now_ms);
    if (cached < SS_RELEASE_CACHE_BASE && committed <= target_bytes)
        return true;
    if (bonus && cached < SS_RELEASE_CACHE_BASE + bonus / (int64_t)HK_SS_SIZE &&
        committed <= target_bytes + bonus) {
        bonus_in_use(st, now_ms);
        return true;
    }
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

/* ---- The library's entry points ---------------------------------------- */

static int64_t target_bytes(void) { return (int64_t)ss_mem_lean_target_mb() << 20; }

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

bool ss_should_keep_superslab(struct hk_superslab *ss, int class_idx)
{
    (void)ss; /* the original design's signature: the footprint decides, not the superslab */
    (void)class_idx;
    if (!ss_release_gives_back())
        return true; /* FAST: persistent backend; OFF: LEAN only suppresses prewarm */
    return ss_release_keep_at(&ss_release_state, ss_release_now_ms(), target_bytes(), HK_GAUGE_GET(ss_cached),
                              HK_GAUGE_GET(bytes_committed));
}

bool ss_should_decommit_slab(void)
{
    if (!ss_release_gives_back())
        return false;
    return ss_release_decommit_slab_at(&ss_release_state, ss_release_now_ms(), target_bytes(),
                                       HK_GAUGE_GET(bytes_committed));
}

size_t ss_release_large_cache_limit(size_t configured)
{
    if (!ss_release_gives_back())
        return configured;
    size_t lean = (size_t)target_bytes() + (size_t)ss_release_policy_bonus();
    return lean < configured ? lean : configured;
}

void ss_release_policy_init(void)
{
    hk_opt_set_default(HK_OPT_LEAN_TARGET_MB, SS_RELEASE_TARGET_MB_DEFAULT);
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
    if (ss_os_madvise_guarded(ptr, size, how) != 0)
        return -1;
    HK_STAT_INC(lean_decommit);
    return 0;
}
