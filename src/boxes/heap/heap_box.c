/* heap_box: the slow paths of small malloc and free. See heap_box.h. */
#include "hakmem_internal.h"
#include "heap/heap_box.h"
#include "backend/medium_box.h"
#include "backend/ss_allocation_box.h"

#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Slabs of its class list a dry head looks through for free blocks before
 * it carves fresh ones. */
#define HK_FREE_SEARCH 8
/* Abandoned superslabs a heap adopts at most while it looks for a slab. */
#define HK_ADOPT_PER_SLAB 8

/* An unused slab of ss that can serve cls (hk_slab_serves), one whose
 * pages are still resident first (it served a class before and was not
 * given back): a slab in a fresh place would touch new pages while the old
 * ones stay resident, and a steady program whose slabs come and go would
 * grow until every slab of its superslabs had been touched once. -1: none. */
static int slab_pick(hk_superslab_t *ss, unsigned cls, bool warm_only)
{
    uint32_t warm = ss->free_mask & ss->touched_mask;
    for (int pass = 0; pass < (warm_only ? 1 : 2); pass++)
        for (uint32_t m = pass ? ss->free_mask & ~warm : warm; m; m &= m - 1)
            if (hk_slab_serves(&ss->slabs[__builtin_ctz(m)], cls))
                return __builtin_ctz(m);
    return -1;
}

/* New superslabs tried for a class none of whose slabs can serve it (every
 * block start of its slabs lies where large blocks were freed lately)
 * before one of them serves it anyway. */
#define HK_SERVE_TRIES 4

/* A fresh slab for class cls, from an owned superslab with an unused slab,
 * else an adopted or new superslab. NULL when out of memory. */
/* The owned superslab with an unused slab for cls: a warm slab first, in
 * the superslab with the most slabs in use (so that the emptiest ones
 * drain and go back whole, instead of every superslab keeping a few slabs
 * for good); else the fullest with any unused slab for the class. NULL if
 * none; *idx: the slab. (Superslabs with unused slabs come first on the
 * list.) */
static hk_superslab_t *heap_find_unused(hk_heap_t *h, unsigned cls, int *idx)
{
    for (int warm_only = 1; warm_only >= 0; warm_only--) {
        hk_superslab_t *best = NULL;
        int best_idx = -1;
        for (hk_superslab_t *t = h->ss_list; t && t->free_mask; t = t->next) {
            if (best && t->used_slabs <= best->used_slabs)
                continue;
            int i = slab_pick(t, cls, warm_only);
            if (i >= 0) {
                best = t;
                best_idx = i;
            }
        }
        if (best) {
            *idx = best_idx;
            return best;
        }
    }
    return NULL;
}

static hk_slab_t *heap_new_slab(hk_heap_t *h, unsigned cls)
{
    int idx = -1;
    hk_superslab_t *ss = heap_find_unused(h, cls, &idx);
    /* No unused slab of our own: abandoned superslabs first (a few, each
     * with its unused slabs and partly free slabs of every class), then a
     * new one. An adopted superslab may be gone by the time adoption
     * returns (emptied, and released): look through the heap's list again,
     * never at it. */
    for (int n = 0; n < HK_ADOPT_PER_SLAB && !ss; n++) {
        hk_superslab_t *adopted = superslab_adopt();
        if (!adopted)
            break;
        hk_reclaim_adopt(h, adopted);
        if (h->cur[cls] != &g_hk_slab_empty)
            return h->cur[cls];
        ss = heap_find_unused(h, cls, &idx);
    }
    for (int n = 0; idx < 0; n++) {
        ss = superslab_acquire();
        if (!ss)
            return NULL;
        atomic_store_explicit(&ss->heap, h, memory_order_release);
        h->ss_count++;
        h->empty_ss++;
        hk_heap_ss_push_front(h, ss);
        idx = slab_pick(ss, cls, false);
        if (idx < 0 && n + 1 >= HK_SERVE_TRIES) {
            /* Never in practice: the class gets a slab, skipping nothing. */
            idx = __builtin_ctz(ss->free_mask);
            ss->slabs[idx].poison_pages = 0;
        }
    }
    HK_ASSERT(idx >= 1 && idx < HK_SLABS_PER_SS);
    ss->free_mask &= ~(1u << idx);
    if (ss->used_slabs++ == 0) {
        h->empty_ss--;
        ss->cached_since_ms = 0; /* in use again */
    }
    if (ss->free_mask == 0)
        hk_heap_ss_move_back(h, ss);
    hk_slab_t *s = &ss->slabs[idx];
    hk_slab_format(ss, s, cls);
    hk_class_push_front(h, s);
    return s;
}

static void *heap_alloc_locked(hk_heap_t *heap, unsigned cls)
{
    hk_reclaim_drain(heap);
    hk_reclaim_flush_pending(heap, false);
    bool rotated = false;
    for (;;) {
        hk_slab_t *s = heap->cur[cls];
        if (s == &g_hk_slab_empty) {
            s = heap_new_slab(heap, cls);
            if (!s)
                return NULL;
        }
        hk_superslab_t *ss = hk_ss_of(s);
        if (!s->free) {
            hk_block_t *b = hk_slab_refill_local(s);
            if (b)
                return hk_slab_pop(s, b);
        }
        if (!s->free && !hk_slab_take_remote(s) && s->reserved < s->capacity) {
            /* Before carving fresh blocks (and touching a fresh page),
             * a slab further down the list that has free blocks takes
             * over: else each slab that happens to be at the head when its
             * neighbour is dry too would carve, until every slab of the
             * class was carved whole, and a steady program's pages would
             * creep up to that. */
            hk_slab_t *w = s->next;
            for (int n = 0; w && !hk_slab_has_free(w) && n < HK_FREE_SEARCH; n++)
                w = w->next;
            if (w && (w->free || hk_slab_take_local(w))) {
                hk_class_remove(heap, w);
                hk_class_push_front(heap, w);
                return hk_slab_pop(w, w->free);
            }
        }
        if (s->free || hk_slab_carve(s, ss)) {
            HK_ASSERT(hk_slab_used(s) < (int32_t)s->capacity);
            return hk_slab_pop(s, s->free);
        }
        /* Exhausted. The first such slab of this call goes to the back of
         * the list; one that comes round still exhausted is parked (off
         * the list until a free gives it blocks). So each call does at
         * most one rotation, and parks a slab at most once. */
        if (!rotated && s->next) {
            hk_class_head_to_tail(heap, s);
            rotated = true;
            continue;
        }
        /* A lone block freed into it (maybe the one just freed: so only
         * once every other slab of the class had its turn). */
        if (hk_slab_take_local(s))
            return hk_slab_pop(s, s->free);
        if (!hk_reclaim_park(heap, s))
            continue; /* remote frees arrived: refill from them */
    }
}

/* The rest of a malloc's slow path, heap's lock held (and released). */
static HK_NOINLINE void *heap_alloc_slow_locked(hk_heap_t *heap, unsigned cls)
{
    __atomic_store_n(&heap->slow_calls, heap->slow_calls + 1, __ATOMIC_RELAXED); /* the sweep reads it */
    void *p = heap_alloc_locked(heap, cls);
    hk_heap_unlock(heap);
    if (HK_UNLIKELY(!p) && hk_release_cached() > 0) {
        /* The OS refused a superslab: cached ranges hold address space
         * (RLIMIT_AS) that a retry can use. */
        hk_heap_lock(heap);
        p = heap_alloc_locked(heap, cls);
        hk_heap_unlock(heap);
    }
    hk_reclaim_sweep(heap);
    if (!p)
        errno = ENOMEM;
    return p;
}

/* A thread not started yet, or one whose heap is gone. */
static HK_NOINLINE void *heap_alloc_stand_in(hk_heap_t *heap, unsigned cls, hk_thread_start_t start)
{
    if (heap == &g_hk_heap_empty) {
        heap = start();
        if (!heap) {
            errno = ENOMEM;
            return NULL;
        }
    } else {
        heap = &g_hk_shared_heap;
    }
    hk_heap_lock(heap);
    return heap_alloc_slow_locked(heap, cls);
}

/* Lock held: the head of cls ran dry; if the next slab of the class has
 * blocks it takes over, else the rest of the slow path. */
HK_INLINE void *heap_alloc_rotate_locked(hk_heap_t *heap, unsigned cls)
{
    hk_slab_t *head = heap->cur[cls];
    hk_slab_t *next = head->next; /* NULL for g_hk_slab_empty */
    if (HK_LIKELY(next && (next->free || hk_slab_take_local(next)))) {
        hk_class_head_to_tail(heap, head);
        void *p = hk_slab_pop(next, next->free);
        hk_heap_unlock(heap);
        return p;
    }
    return heap_alloc_slow_locked(heap, cls);
}

/* The slow path when the lock was busy, or the heap is a stand-in. */
static HK_NOINLINE void *heap_alloc_slow_wait(hk_heap_t *heap, unsigned cls, hk_thread_start_t start)
{
    /* The stand-ins (a thread not started, or exited) are never alive; a
     * thread's own heap is while the thread runs. */
    if (HK_UNLIKELY(!__atomic_load_n(&heap->alive, __ATOMIC_RELAXED)))
        return heap_alloc_stand_in(heap, cls, start);
    hk_heap_lock(heap);
    return heap_alloc_rotate_locked(heap, cls);
}

void *hk_heap_alloc_slow(hk_heap_t *heap, unsigned cls, hk_thread_start_t start)
{
    /* Most calls: the head ran dry and the next slab of the class takes
     * over. Under the lock, like every change of the class lists (a helper
     * may be giving back slabs further down the list; the head itself is
     * the owner's and stays). Only calls to tails here, so this path saves
     * no register: the read of head->next before the lock is a hint (the
     * stand-ins' heads have no next), and a busy lock goes the long way. */
    hk_slab_t *head = heap->cur[cls];
    if (HK_LIKELY(__atomic_load_n(&head->next, __ATOMIC_RELAXED) != NULL) &&
        HK_LIKELY(!atomic_exchange_explicit(&heap->lock, 1, memory_order_acquire)))
        return heap_alloc_rotate_locked(heap, cls);
    return heap_alloc_slow_wait(heap, cls, start);
}

HK_NOINLINE void *hk_heap_alloc_refill(hk_heap_t *heap, hk_slab_t *slab, unsigned cls, hk_thread_start_t start)
{
    hk_block_t *b = hk_slab_refill_local(slab);
    if (HK_LIKELY(b != NULL))
        return hk_slab_pop(slab, b);
    return hk_heap_alloc_slow(heap, cls, start);
}

void hk_heap_free_slow_local(hk_heap_t *heap, hk_slab_t *slab, hk_block_t *b)
{
    hk_heap_lock(heap);
    __atomic_store_n(&heap->slow_calls, heap->slow_calls + 1, __ATOMIC_RELAXED); /* the sweep reads it */
    hk_reclaim_free_locked(heap, slab, b);
    hk_reclaim_flush_pending(heap, false);
    hk_heap_unlock(heap);
    hk_reclaim_sweep(heap);
}

hk_heap_t *hk_heap_thread_init(void)
{
    hk_heap_t *h = hk_heap_struct_alloc();
    if (!h)
        return NULL;
    hk_heap_lock(h);
    hk_heap_reset(h);
    __atomic_store_n(&h->gen, h->gen + 1, __ATOMIC_RELEASE);
    __atomic_store_n(&h->tid, (int32_t)syscall(SYS_gettid), __ATOMIC_RELAXED);
    __atomic_store_n(&h->alive, 1, __ATOMIC_RELAXED);
    hk_heap_unlock(h);
    hk_tls_heap = h;
    hk_reclaim_thread_born();
    return h;
}
