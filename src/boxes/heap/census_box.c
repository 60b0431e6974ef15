/* census_box: statistics of the heaps, and the stranded census. See
 * census_box.h. */
#include "hakmem_internal.h"
#include "heap/census_box.h"
#include "heap/reclaim_box.h"
#include "base/diag_box.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Statistics. */

/* The counters of a slab on its owner's class list are the owner's: its
 * fast paths write them with plain stores, no lock. Read here without
 * synchronising with them on purpose (adding any would cost the fast
 * paths): each is one aligned word, so the read gives a value it had at
 * some instant, and the exact one when the owner is not allocating or
 * freeing meanwhile. ThreadSanitizer is told so. */
__attribute__((no_sanitize_thread)) static void census_slab(hk_slab_t *s, hk_census_t *c)
{
    if (!s->block_size)
        return;
    int64_t used = __atomic_load_n(&s->used, __ATOMIC_RELAXED) & ~HK_USED_PARKED;
    /* Blocks other threads freed, not collected yet: the remote list
     * carries its length. */
    used -= HK_TF_COUNT(atomic_load_explicit(&s->thread_free, memory_order_acquire));
    if (used < 0)
        used = 0;
    c->allocated += (uint64_t)used * s->block_size;
    c->active += hk_align_up((size_t)s->reserved * s->block_size, HK_PAGE_SIZE);
    c->slabs++;
    c->cls_blocks[s->cls] += (uint64_t)used;
    c->cls_slabs[s->cls]++;
}

static void census_superslab(hk_superslab_t *ss, void *arg)
{
    hk_census_t *c = arg;
    for (int i = 1; i < HK_SLABS_PER_SS; i++)
        if (!(ss->free_mask & (1u << i)))
            census_slab(&ss->slabs[i], c);
}

void hk_heap_census(hk_census_t *c)
{
    memset(c, 0, sizeof *c);
    /* Lock order as for fork: heap locks in list order, then the
     * abandoned list's (no superslab moves between them meanwhile). The
     * list only grows at its head: one head for all three walks, so a
     * heap made meanwhile is neither counted nor unlocked. */
    hk_heap_t *first = hk_heap_first();
    for (hk_heap_t *h = first; h; h = h->all_next)
        hk_heap_lock(h);
    for (hk_heap_t *h = first; h; h = h->all_next) {
        if (h->alive && hk_heap_has_owner(h))
            c->heaps_live++;
        for (hk_superslab_t *ss = h->ss_list; ss; ss = ss->next)
            census_superslab(ss, c);
    }
    c->ss_abandoned = superslab_for_each_abandoned(census_superslab, c);
    for (hk_heap_t *h = first; h; h = h->all_next)
        hk_heap_unlock(h);
}

void hk_heap_count_superslabs(hk_ss_count_t *c)
{
    for (hk_heap_t *h = hk_heap_first(); h; h = h->all_next)
        for (hk_superslab_t *ss = h->ss_list; ss; ss = ss->next)
            superslab_count_one(ss, c);
}

/* ------------------------------------------------------------------------ */
/* The stranded census (debug library). */

static _Atomic int g_census_busy;
static uint32_t g_census_epoch; /* written by the census holder only */

/* Every block of s is free (its words read once, together). */
static bool slab_words_all_free(hk_slab_t *s, int32_t *used, uintptr_t *tf)
{
    *used = hk_slab_used(s);
    *tf = atomic_load_explicit(&s->thread_free, memory_order_acquire);
    return hk_slab_all_free(*used & ~HK_USED_PARKED, *tf);
}

/* Mark the slabs of ss whose blocks are all free; h: their heap (NULL:
 * abandoned). */
static void mark_superslab(hk_superslab_t *ss, void *arg)
{
    hk_heap_t *h = arg;
    for (int i = 1; i < HK_SLABS_PER_SS; i++) {
        hk_slab_t *s = &ss->slabs[i];
        int32_t used;
        uintptr_t tf;
        if ((ss->free_mask & (1u << i)) || !slab_words_all_free(s, &used, &tf))
            continue;
        s->census_tf = tf;
        s->census_used = used;
        s->census_takes = s->takes;
        s->census_head = h && !s->parked && h->cur[s->cls] == s;
        s->census_epoch = g_census_epoch;
    }
}

__attribute__((noreturn)) static void stranded(const char *what, uintptr_t at, const char *why)
{
    hk_msg_t m = {.len = 0};
    hk_msg_str(&m, "hakmem: error: stranded ");
    hk_msg_str(&m, what);
    hk_msg_str(&m, " ");
    hk_msg_hex(&m, at);
    hk_msg_str(&m, " (");
    hk_msg_str(&m, why);
    hk_msg_str(&m, ")");
    hk_msg_flush(&m);
    abort();
}

/* A heap's slabs after the trim; keep_heads: the heap has an owner thread
 * other than the caller, whose class heads stay. */
static void check_superslab(hk_superslab_t *ss, hk_heap_t *h, bool keep_heads)
{
    for (int i = 1; i < HK_SLABS_PER_SS; i++) {
        hk_slab_t *s = &ss->slabs[i];
        int32_t used;
        uintptr_t tf;
        if (ss->free_mask & (1u << i))
            continue;
        bool all_free = slab_words_all_free(s, &used, &tf);
        if (HK_TF_STATE(tf) == HK_TF_FULL && HK_TF_LIST(tf))
            stranded("slab", (uintptr_t)hk_slab_base(ss, s),
                     "armed full with blocks on its remote list: no free will ever notify its owner");
        if (!all_free || s->census_epoch != g_census_epoch || s->census_tf != tf || s->census_used != used ||
            s->census_takes != s->takes)
            continue; /* in use, or changed since the mark (and maybe back): not judged */
        if (keep_heads && h && ((!s->parked && h->cur[s->cls] == s) || s->census_head))
            continue; /* the slab its class keeps (then, or now: its owner may have moved on since) */
        stranded("slab", (uintptr_t)hk_slab_base(ss, s),
                 "every block was free before malloc_trim, and it was not given back");
    }
}

static void check_abandoned(hk_superslab_t *ss, void *arg)
{
    (void)arg;
    check_superslab(ss, NULL, false);
}

bool hk_census_begin(void)
{
    int idle = 0;
    if (!config_debug || !atomic_compare_exchange_strong(&g_census_busy, &idle, 1))
        return false;
    g_census_epoch++;
    for (hk_heap_t *h = hk_heap_first(); h; h = h->all_next) {
        /* A heap is marked if its thread is gone before the trim starts
         * (the syscall before the lock: none is made under a heap lock;
         * the owner's generation says it is still the same one). */
        uint32_t gone = h != hk_tls_heap ? hk_reclaim_gone_owner(h) : 0;
        hk_heap_lock(h);
        if (gone && h->alive && h->gen == gone)
            h->census_dead_epoch = g_census_epoch;
        for (hk_superslab_t *ss = h->ss_list; ss; ss = ss->next)
            mark_superslab(ss, h);
        hk_heap_unlock(h);
    }
    superslab_for_each_abandoned(mark_superslab, NULL);
    return true;
}

void hk_census_end(void)
{
    hk_heap_t *self = hk_tls_heap;
    for (hk_heap_t *h = hk_heap_first(); h; h = h->all_next) {
        hk_heap_lock(h);
        if (h->alive && h->census_dead_epoch == g_census_epoch)
            stranded("heap", (uintptr_t)h, "its thread was gone before malloc_trim, and it was not given up");
        bool keep_heads = h != self && hk_heap_has_owner(h);
        for (hk_superslab_t *ss = h->ss_list; ss; ss = ss->next)
            check_superslab(ss, h, keep_heads);
        hk_heap_unlock(h);
    }
    superslab_for_each_abandoned(check_abandoned, NULL);
    atomic_store(&g_census_busy, 0);
}

void hk_census_fork_child(void) { atomic_store(&g_census_busy, 0); }
