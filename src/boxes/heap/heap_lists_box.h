/* heap_lists_box: what a heap is: hk_heap_t, its lock, its class lists and
 * its superslab list; the pool heap structs come from and the list of
 * every heap ever made; the stand-in heaps of threads not started yet and
 * of threads that have exited.
 *
 * A slab of a heap is either on its class list (the head is where malloc
 * pops from; by_size[] mirrors the heads) or parked full, off the list.
 * Who may touch what:
 *  - the owner thread's fast paths, with no lock: by_size[], cur[], the
 *    head slab's free list and counter, and the free list and counter of a
 *    slab it frees a live block into;
 *  - whoever holds heap->lock: everything else of the heap, including the
 *    links of the class lists. The owner takes it on its slow paths;
 *    another thread (a helper, malloc_trim, a reaper) may take it to do
 *    the owner's work for it (reclaim_box says what it may do there).
 * The heads (cur[], by_size[]) change only under the lock and only by the
 * owner (or by a helper of a heap with no owner thread: the shared heap,
 * a reaped one).
 *
 * Owns: hk_heap_t and its pool, the list of every heap, the heap lock,
 * class-list and superslab-list operations, g_hk_heap_empty,
 * g_hk_heap_exited, the shared heap.
 * Must not: free blocks, move slabs between heaps or give anything back
 * (reclaim_box); call the OS itself (its one mapping, the chunks heap
 * structs are cut from and never given back, goes through the os box). */
#ifndef HAKMEM_HEAP_LISTS_BOX_H
#define HAKMEM_HEAP_LISTS_BOX_H

#include "hakmem_internal.h"
#include "base/diag_box.h"
#include "base/size_class_box.h"
#include "backend/ss_allocation_box.h"
#include "heap/slab_box.h"

typedef struct hk_heap {
    /* The head of the class of every request size up to HK_DIRECT_MAX, by
     * (size + 15) / 16: malloc's fast path goes from the size to the slab
     * in one load, without the class table (kept equal to cur[] of the
     * size's class by the owner, wherever a class list head changes). */
    hk_slab_t *by_size[HK_DIRECT_SLOTS];
    hk_slab_t *cur[HK_NUM_CLASSES];     /* class list heads; &g_hk_slab_empty if none */
    hk_slab_t *tail[HK_NUM_CLASSES];    /* class list tails (NULL if none) */
    _Atomic(hk_slab_t *) remote_slabs;  /* slabs that got remote frees while parked full */
    _Atomic uint32_t notified;          /* pushes onto remote_slabs since the last drain */
    uint32_t alive;                     /* a thread (or the shared heap) uses it */
    /* Below: guarded by lock (a spin-then-yield lock: it is taken on every
     * slow path, almost never contended, and held briefly). */
    _Atomic int lock;
    hk_superslab_t *ss_list;            /* owned superslabs, those with unused slabs first */
    uint32_t ss_count;
    uint32_t empty_ss;                  /* owned superslabs with no slab in use */
    uint32_t hold;                      /* > 0: no superslab may leave the heap (a walk is
                                           in progress over its slabs or notifications) */
    uint32_t foreign;                   /* the holder of the lock is not the owner */
    uint32_t pending_since_ms;          /* LEAN: since when slabs wait for decommit (0: none) */
    int32_t tid;                        /* the owner thread's kernel id (0: none) */
    uint32_t gen;                       /* owners so far (a reaper checks it is the same) */
    uint32_t slow_calls;                /* the owner's slow paths so far */
    uint32_t sweep_seen;                /* slow_calls at the last sweep (idle if unchanged) */
    uint32_t idle_scan_ms;              /* when a sweep last looked at its class lists */
    uint32_t census_dead_epoch;         /* debug census: its thread was gone at that mark */
    struct hk_heap *next_free;          /* heap pool */
    struct hk_heap *all_next;           /* list of every heap struct (never unlinked) */
} hk_heap_t;

extern HK_HIDDEN hk_heap_t g_hk_heap_empty;  /* every thread starts here: all lists empty */
/* A thread whose heap is gone (thread exit ran, later destructors still
 * allocate) points here: all lists empty, so every malloc takes the slow
 * path, which serves it from the shared heap under its lock. */
extern HK_HIDDEN hk_heap_t g_hk_heap_exited;
/* The heap of threads whose own heap is gone (g_hk_heap_exited): no thread
 * has it as hk_tls_heap, so it is only ever used under its lock. */
extern HK_HIDDEN hk_heap_t g_hk_shared_heap;
/* The thread's words malloc's fast path reads: its heap, and the bytes
 * left before the heap profiler's next sample (front/prof_box.h), side by
 * side so that one TLS address serves both. */
typedef struct hk_tls {
    hk_heap_t *heap;
    int64_t prof_left;
} hk_tls_t;
extern HK_HIDDEN __thread hk_tls_t hk_tls;
#define hk_tls_heap (hk_tls.heap)

/* The shared heap has no owner thread (no fast path ever uses it): who
 * holds its lock may do all of an owner's work. */
HK_INLINE bool hk_heap_has_owner(const hk_heap_t *h) { return h != &g_hk_shared_heap; }

/* ------------------------------------------------------------------------ */
/* The lock. */

void hk_heap_lock_wait(hk_heap_t *h);
HK_INLINE void hk_heap_lock(hk_heap_t *h)
{
    if (HK_UNLIKELY(atomic_exchange_explicit(&h->lock, 1, memory_order_acquire)))
        hk_heap_lock_wait(h);
}
HK_INLINE bool hk_heap_trylock(hk_heap_t *h)
{
    return !atomic_load_explicit(&h->lock, memory_order_relaxed) &&
           !atomic_exchange_explicit(&h->lock, 1, memory_order_acquire);
}
HK_INLINE void hk_heap_unlock(hk_heap_t *h) { atomic_store_explicit(&h->lock, 0, memory_order_release); }

/* ------------------------------------------------------------------------ */
/* Every heap, and the pool. Heap structs live in memory that is never
 * unmapped, because a remote thread may still read a heap pointer it
 * loaded from a superslab. Every struct ever made stays on the list, which
 * only grows (at its head), so it can be walked without a lock. */

hk_heap_t *hk_heap_first(void);
/* A struct from the pool (its lock free, everything else undefined: the
 * caller resets it under its lock); NULL when no memory is left. */
hk_heap_t *hk_heap_struct_alloc(void);
void hk_heap_struct_free(hk_heap_t *h);
/* Empty lists, not alive, no owner. */
void hk_heap_reset(hk_heap_t *h);

/* Fork: the pool lock and every heap lock, in list order (the first
 * steps of the process-wide lock order); the child frees them all. */
void hk_heap_lists_lock_all(void);
void hk_heap_lists_unlock_all(void);
void hk_heap_lists_reset_locks(void);

/* ------------------------------------------------------------------------ */
/* Class lists (lock held; the heads change by the owner only). */

/* The head of class cls is now s: in cur[] and in the entries of by_size[]
 * whose sizes fall in the class (those of sizes in (size of cls - 1, size
 * of cls], every class size being a multiple of 16; none above
 * HK_DIRECT_MAX). */
HK_INLINE void hk_class_head_set(hk_heap_t *h, unsigned cls, hk_slab_t *s)
{
    /* The stranded census (census_box) sees a slab that served as head
     * since its mark as used, though its counts may be back where they
     * were: its owner may have handed out and taken back all its blocks
     * and moved on while a malloc_trim ran. */
    if (config_debug && s != &g_hk_slab_empty)
        s->takes++;
    h->cur[cls] = s;
    size_t lo = cls ? g_hk_class_size[cls - 1] / 16 + 1 : 0;
    size_t hi = g_hk_class_size[cls] / 16;
    for (size_t i = lo; i <= hi && i < HK_DIRECT_SLOTS; i++)
        h->by_size[i] = s;
}

HK_INLINE void hk_class_push_front(hk_heap_t *h, hk_slab_t *s)
{
    hk_slab_t *head = h->cur[s->cls];
    s->prev = NULL;
    s->next = head == &g_hk_slab_empty ? NULL : head;
    if (s->next)
        s->next->prev = s;
    else
        h->tail[s->cls] = s;
    hk_class_head_set(h, s->cls, s);
}

/* Put a slab that has free blocks again just behind the head, so the head
 * keeps serving and fuller slabs are used before emptier ones drain. */
HK_INLINE void hk_class_insert_second(hk_heap_t *h, hk_slab_t *s)
{
    hk_slab_t *head = h->cur[s->cls];
    if (head == &g_hk_slab_empty) {
        hk_class_push_front(h, s);
        return;
    }
    s->prev = head;
    s->next = head->next;
    if (s->next)
        s->next->prev = s;
    else
        h->tail[s->cls] = s;
    head->next = s;
}

HK_INLINE void hk_class_remove(hk_heap_t *h, hk_slab_t *s)
{
    if (s->prev) /* the head's next is read before the lock (a hint: heap_box) */
        __atomic_store_n(&s->prev->next, s->next, __ATOMIC_RELAXED);
    else
        hk_class_head_set(h, s->cls, s->next ? s->next : &g_hk_slab_empty);
    if (s->next)
        s->next->prev = s->prev;
    else
        h->tail[s->cls] = s->prev;
    s->next = s->prev = NULL;
}

/* The head ran out of blocks while other slabs of its class wait behind
 * it: it goes to the back. Frees into it meanwhile stay on the fast path
 * (a parked slab's would not), and by the time it comes round again it
 * has blocks. */
HK_INLINE void hk_class_head_to_tail(hk_heap_t *h, hk_slab_t *s)
{
    HK_ASSERT(h->cur[s->cls] == s && s->next);
    hk_slab_t *tail = h->tail[s->cls];
    hk_class_head_set(h, s->cls, s->next);
    s->next->prev = NULL;
    s->prev = tail;
    s->next = NULL;
    tail->next = s;
    h->tail[s->cls] = s;
}

/* ------------------------------------------------------------------------ */
/* Superslab list of a heap (lock held): superslabs with an unused slab
 * come first. */

HK_INLINE void hk_heap_ss_remove(hk_heap_t *h, hk_superslab_t *ss)
{
    if (ss->prev)
        ss->prev->next = ss->next;
    else
        h->ss_list = ss->next;
    if (ss->next)
        ss->next->prev = ss->prev;
    ss->next = ss->prev = NULL;
}

HK_INLINE void hk_heap_ss_push_front(hk_heap_t *h, hk_superslab_t *ss)
{
    ss->prev = NULL;
    ss->next = h->ss_list;
    if (ss->next)
        ss->next->prev = ss;
    h->ss_list = ss;
}

HK_INLINE void hk_heap_ss_move_back(hk_heap_t *h, hk_superslab_t *ss)
{
    if (!ss->next)
        return;
    hk_heap_ss_remove(h, ss);
    hk_superslab_t *t = h->ss_list;
    while (t->next)
        t = t->next;
    t->next = ss;
    ss->prev = t;
}

#endif
