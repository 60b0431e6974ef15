/* heap_box: small malloc and free: the fast paths (inline) and their slow
 * paths, a thread's heap at its start.
 *
 * Each thread has a heap (heap_lists_box): for every size class a list of
 * slabs; malloc pops from the head of its class with no lock and no
 * atomic, free pushes onto the slab's list when the slab is the caller's
 * (its superslab's heap) and otherwise frees remotely (reclaim_box). A
 * head that runs dry goes to the back of its list, and is parked off the
 * list if it comes round still dry; a new slab comes from an owned
 * superslab with an unused slab, an adopted one, or a new one. Everything
 * but the fast paths happens under the heap's lock.
 *
 * Owns: the fast paths, the allocation slow path (rotation, carving,
 * parking, new slabs), the local free slow path, a thread's heap at start.
 * Must not: release slabs or superslabs, or touch another heap (reclaim_box
 * does both); call the OS (the superslab box does). */
#ifndef HAKMEM_HEAP_BOX_H
#define HAKMEM_HEAP_BOX_H

#include "hakmem_internal.h"
#include "base/size_class_box.h"
#include "heap/slab_box.h"
#include "heap/heap_lists_box.h"
#include "heap/reclaim_box.h"

/* Starts the calling thread (and the process, the first time): a heap of
 * its own, and its exit hook; NULL if either cannot be had. The front
 * layer's (thread_box: hk_thread_start) is handed down to the heap through
 * hk_small_alloc, so this box never calls up. */
typedef hk_heap_t *(*hk_thread_start_t)(void);
/* A malloc whose class list is empty: the next slab, a refill, or a new
 * slab; a thread not started yet (&g_hk_heap_empty) is started with
 * `start` first; one that has exited (&g_hk_heap_exited) is served from
 * the shared heap. NULL + ENOMEM when memory runs out (after the backend's
 * caches were given back and the allocation tried again). */
void *hk_heap_alloc_slow(hk_heap_t *heap, unsigned cls, hk_thread_start_t start);
void hk_heap_free_slow_local(hk_heap_t *heap, hk_slab_t *slab, hk_block_t *b);
/* A malloc whose class head (slab) ran dry: the blocks freed into it since
 * (slab_box.h: hk_slab_refill_local), else hk_heap_alloc_slow. Apart from
 * the slow path, with no register to save: it runs once per batch of
 * blocks freed into the head. */
void *hk_heap_alloc_refill(hk_heap_t *heap, hk_slab_t *slab, unsigned cls, hk_thread_start_t start);

/* Allocate a block of class `cls`. NULL + ENOMEM when memory runs out.
 * `start`: the caller's thread start (a constant at every call). */
HK_INLINE void *hk_small_alloc(unsigned cls, hk_thread_start_t start)
{
    hk_heap_t *heap = hk_tls_heap;
    hk_slab_t *slab = heap->cur[cls];
    hk_block_t *b = slab->free;
    if (HK_UNLIKELY(!b))
        return hk_heap_alloc_refill(heap, slab, cls, start);
    return hk_slab_pop(slab, b);
}

/* Allocate a block for a request of `size` <= HK_DIRECT_MAX bytes: the
 * same as hk_small_alloc of its class, with the class looked up only when
 * the slab is dry. */
HK_INLINE void *hk_small_alloc_direct(size_t size, hk_thread_start_t start)
{
    size_t i = hk_size_slot(size);
    hk_heap_t *heap = hk_tls_heap;
    hk_slab_t *slab = heap->by_size[i];
    hk_block_t *b = slab->free;
    if (HK_UNLIKELY(!b))
        return hk_heap_alloc_refill(heap, slab, g_hk_class_direct[i], start);
    return hk_slab_pop(slab, b);
}

/* Free a pointer that lies in one of our superslabs. */
HK_INLINE void hk_small_free(void *p)
{
    uintptr_t a = (uintptr_t)p;
    hk_superslab_t *ss = hk_ss_of(p);
    hk_slab_t *slab = hk_slab_of(ss, a);
    if (HK_UNLIKELY(!hk_slab_is_block_start(slab, a))) {
        hk_free_misuse(p, HK_MISUSE_INVALID);
        return;
    }
    hk_block_t *b = (hk_block_t *)p;
    uintptr_t tag = hk_block_secret(b);
    if (HK_UNLIKELY(b->tag == tag)) {
        hk_free_misuse(p, HK_MISUSE_DOUBLE);
        return;
    }
    if (config_debug) {
        hk_debug_canary_check(p, slab->block_size);
        hk_debug_junk_fill(b, slab->block_size); /* past link and tag */
    }
    b->tag = tag;
    hk_heap_t *heap = hk_tls_heap;
    hk_heap_t *owner = atomic_load_explicit(&ss->heap, memory_order_relaxed);
    if (HK_LIKELY(owner == heap)) {
        /* <= 1: the slab is about to be empty, or parked (HK_USED_PARKED
         * bit): the slow path does it under the heap lock, and a parked
         * slab is never written here (another thread may be helping). */
        int32_t used = hk_slab_used(slab);
        if (HK_UNLIKELY(used <= 1)) {
            hk_heap_free_slow_local(heap, slab, b);
            return;
        }
        /* Onto the slab's local list, not the allocation list: the next
         * malloc of this class does not hand the block straight back
         * (slab_box.h: hk_slab_take_local). (used is stored as an atomic,
         * a plain move: a helper may read it while it looks for slabs with
         * every block free.) */
        hk_slab_push_local(slab, b, tag);
        hk_slab_used_set(slab, used - 1);
        return;
    }
    hk_heap_free_remote(b, owner);
}

/* Is p the start of a block of its slab (p already known to be in a
 * superslab)? */
HK_INLINE bool hk_small_is_block(const void *p)
{
    return hk_slab_is_block_start(hk_slab_of(hk_ss_of(p), (uintptr_t)p), (uintptr_t)p);
}

/* Usable size of a small block (p already known to be in a superslab);
 * 0 if p is not the start of a block (and, in the debug build, for a
 * block of a malloc(0), whose usable size is its requested size). */
HK_INLINE size_t hk_small_usable(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    hk_slab_t *slab = hk_slab_of(hk_ss_of(p), a);
    if (!hk_slab_is_block_start(slab, a))
        return 0;
    if (config_debug)
        return hk_debug_canary_check((void *)p, slab->block_size);
    return slab->block_size;
}

/* Thread lifecycle (thread_box calls these): a heap for the calling
 * thread, made its own (NULL: no memory for the struct); its end is
 * reclaim_box's hk_heap_thread_done. */
hk_heap_t *hk_heap_thread_init(void);

#endif
