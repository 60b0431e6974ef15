/* heap_box: per-thread heaps, size-class slabs, small malloc/free.
 *
 * Each thread has a heap: for every size class a list of slabs (the head
 * is where malloc pops from; a head that runs dry goes to the back, and is
 * parked off the list if it comes round still dry). A slab belongs to the heap
 * that owns its superslab. The owner allocates from and frees into the
 * slab's `free` list with no atomics. Any other thread frees into the slab's
 * `thread_free` with one CAS; a slab the owner parked as full tells the
 * owner through the heap's notification stack (HK_TF_FULL -> NOTIFYING).
 * A slab whose blocks all came back is returned to its superslab (except the
 * last slab of a class: hysteresis); an empty superslab goes to
 * superslab_free(). An exiting thread abandons its superslabs; a heap that
 * needs memory adopts them (also a thread that frees into one while its own
 * heap has no unused slab); other frees into them collect a few now and
 * then, so that empty ones go back.
 *
 * Heap lock: everything of a heap except what the fast paths touch (the
 * class-list heads and the slabs on them) is guarded by heap->lock. The
 * owner takes it in its slow paths; another thread may take it to do the
 * owner's work for it: drain its notification stack, give back its slabs
 * that other threads emptied, flush LEAN's pending decommits (an owner
 * that went idle, malloc_trim). Such a helper touches parked slabs only:
 * the owner's fast paths never touch a parked slab (a free into one goes to
 * the slow path, which takes the lock), so the helper and the owner never
 * write the same field.
 *
 * Owns: hk_heap_t, the class lists, carving, local/remote free, thread
 * exit (abandon) and adoption, the list of all heaps.
 * Must not: call the OS itself (its one mapping, the chunks heap structs
 * are cut from and never given back, goes through the os layer's door), or
 * decide about releasing memory to the OS (the superslab box and release
 * policy do). */
#ifndef HAKMEM_HEAP_BOX_H
#define HAKMEM_HEAP_BOX_H

#include "hakmem_internal.h"
#include "base/size_class_box.h"
#include "backend/ss_allocation_box.h"
#include "heap/debug_box.h"

typedef struct hk_heap {
    /* The head of the class of every request size up to HK_DIRECT_MAX, by
     * (size + 15) / 16: malloc's fast path goes from the size to the slab
     * in one load, without the class table (kept equal to cur[] of the
     * size's class by the owner, wherever a class list head changes). */
    hk_slab_t *by_size[HK_DIRECT_SLOTS];
    hk_slab_t *cur[HK_NUM_CLASSES];     /* class list heads; &g_hk_slab_empty if none */
    hk_slab_t *tail[HK_NUM_CLASSES];    /* class list tails (owner only; NULL if none) */
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
    struct hk_heap *next_free;          /* heap pool */
    struct hk_heap *all_next;           /* list of every heap struct (never unlinked) */
} hk_heap_t;

extern HK_HIDDEN hk_heap_t g_hk_heap_empty;  /* every thread starts here: all lists empty */
/* A thread whose heap is gone (thread exit ran, later destructors still
 * allocate) points here: all lists empty, so every malloc takes the slow
 * path, which serves it from the shared heap under its lock. */
extern HK_HIDDEN hk_heap_t g_hk_heap_exited;
extern HK_HIDDEN hk_slab_t g_hk_slab_empty; /* sentinel slab: no free blocks */
/* The thread's words malloc's fast path reads: its heap, and the bytes
 * left before the heap profiler's next sample (front/prof_box.h), side by
 * side so that one TLS address serves both. */
typedef struct hk_tls {
    hk_heap_t *heap;
    int64_t prof_left;
} hk_tls_t;
extern HK_HIDDEN __thread hk_tls_t hk_tls;
#define hk_tls_heap (hk_tls.heap)
/* Per-process secrets (random at init): key[0] is xored into a block's
 * address, key[1] (odd) multiplies the result. */
extern HK_HIDDEN uintptr_t g_hk_key[2];

/* The secret of one block: its free tag, and the mask of its link. One
 * multiply: a leaked (address, secret) pair does not give the keys, so it
 * lets nobody forge the tag or link of another block. Never 0 (key[0] has
 * low bits set, block addresses are 16-aligned, key[1] is odd), so a live
 * block's cleared tag never reads as free. */
HK_INLINE uintptr_t hk_block_secret(const void *b) { return ((uintptr_t)b ^ g_hk_key[0]) * g_hk_key[1]; }

/* A free list's link found corrupted (written after free, or by an
 * overflow): one line, then abort: continuing would hand out memory an
 * attacker chose. */
__attribute__((noreturn)) void hk_free_list_corrupt(const void *block, uintptr_t decoded);

/* Follow the link of free block b, whose secret is t: the next block, or
 * NULL. b must carry its tag, and the next block must lie in b's slab (a
 * block there that is not free is caught by its tag when it is popped in
 * turn). The link is stored as next ^ b ^ t, so that decoding gives the
 * distance bits next ^ b, and "same slab" is one compare of them; the end
 * of a list (next ^ b == b) takes the unlikely branch. */
HK_INLINE hk_block_t *hk_link_next(const hk_block_t *b, uintptr_t t)
{
    uintptr_t d = b->link ^ t;
    if (HK_UNLIKELY(d >= HK_SLAB_SIZE || b->tag != t)) {
        if ((d ^ (uintptr_t)b) != 0 || b->tag != t)
            hk_free_list_corrupt(b, d ^ (uintptr_t)b);
        return NULL;
    }
    return (hk_block_t *)(d ^ (uintptr_t)b);
}
HK_INLINE uintptr_t hk_link_encode(const hk_block_t *b, uintptr_t t, const hk_block_t *next)
{
    return (uintptr_t)next ^ (uintptr_t)b ^ t;
}

/* slab->used is the owner's counter; a helper holding the heap lock reads
 * and writes it on parked slabs only. The owner's free fast path reads it
 * before it knows whether the slab is parked: relaxed atomics say so (and
 * compile to plain moves). Writes to a slab known not to be parked stay
 * plain. */
HK_INLINE int32_t hk_slab_used(const hk_slab_t *s) { return __atomic_load_n(&s->used, __ATOMIC_RELAXED); }
HK_INLINE void hk_slab_used_set(hk_slab_t *s, int32_t v) { __atomic_store_n(&s->used, v, __ATOMIC_RELAXED); }

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
void hk_heap_free_remote(hk_block_t *b, hk_heap_t *owner);
void hk_free_misuse(void *p, int kind);

/* Pop b, the first block of the free list of a slab on its class list
 * (never parked: no helper touches it, and used is the owner's alone). */
HK_INLINE void *hk_slab_pop(hk_slab_t *slab, hk_block_t *b)
{
    slab->free = hk_link_next(b, hk_block_secret(b));
    slab->used++;
    b->tag = 0; /* a live block never carries the free tag */
    if (config_debug)
        hk_debug_junk_check(b, slab->block_size);
    return b;
}

/* Allocate a block of class `cls`. NULL + ENOMEM when memory runs out.
 * `start`: the caller's thread start (a constant at every call). */
HK_INLINE void *hk_small_alloc(unsigned cls, hk_thread_start_t start)
{
    hk_heap_t *heap = hk_tls_heap;
    hk_slab_t *slab = heap->cur[cls];
    hk_block_t *b = slab->free;
    if (HK_UNLIKELY(!b))
        return hk_heap_alloc_slow(heap, cls, start);
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
        return hk_heap_alloc_slow(heap, g_hk_class_direct[i], start);
    return hk_slab_pop(slab, b);
}

enum { HK_MISUSE_INVALID = 1, HK_MISUSE_DOUBLE = 2 };

/* Is p the start of a carved block of this slab? One multiply: see
 * hk_div_magic(). Unused slabs have div_magic 0 and always fail. */
HK_INLINE bool hk_slab_is_block_start(const hk_slab_t *slab, uintptr_t a)
{
    uint32_t off = (uint32_t)(a & (HK_SLAB_SIZE - 1));
    /* Written by the owner while other threads free into the slab. */
    uint32_t magic = __atomic_load_n(&slab->div_magic, __ATOMIC_RELAXED);
    uint32_t low = (uint32_t)((uint64_t)off * magic);
    /* Compared as an address: a lies in this slab, so this is off < the
     * carved bytes, without keeping off for a second use. */
    uintptr_t limit = __atomic_load_n(&slab->carved_limit, __ATOMIC_RELAXED);
    return (low < magic) & (a < limit);
}

/* slabs[i] is at byte offset 128 * i of the superslab; computed as one
 * shift and mask of the address. */
HK_INLINE hk_slab_t *hk_slab_of(hk_superslab_t *ss, uintptr_t a)
{
    _Static_assert(sizeof(hk_slab_t) == 128 && offsetof(hk_superslab_t, slabs) == 0, "slab layout");
    return (hk_slab_t *)((uintptr_t)ss + ((a >> (HK_SLAB_SHIFT - 7)) & (31u << 7)));
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
        /* Straight back onto the allocation list: the next malloc of this
         * class reuses the block while it is still in cache. */
        b->link = hk_link_encode(b, tag, slab->free);
        slab->free = b;
        slab->used = used - 1;
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

/* malloc_trim: for every heap, drain its notifications, give back the
 * slabs and superslabs other threads emptied and (LEAN) the pages of unused
 * slabs still waiting; collect what was freed into abandoned superslabs and
 * release those now empty. Returns the committed bytes given back. */
size_t hk_heap_trim_all(void);
/* Count the superslabs every heap owns (for the debug recount; the caller
 * holds every lock: hk_heap_fork_prepare). */
void hk_heap_count_superslabs(hk_ss_count_t *c);

/* Statistics, derived on demand from the metadata (no counter on any fast
 * path). Every heap lock and the abandoned list's lock are held while the
 * slabs are walked, so the figures are one consistent snapshot of the
 * heaps: a slab's blocks in use are `used` (blocks handed out, less those
 * the owner took back onto its free list) less the blocks on its remote
 * list (freed by other threads, not collected yet; the list's word carries
 * their number, and only the holder of the owner's lock takes the list, so
 * used and the count are read together). Exact when no
 * thread is allocating or freeing at the same moment; otherwise a value
 * some instant during the walk could have had. */
typedef struct hk_census {
    uint64_t allocated;   /* bytes of small blocks in use (block sizes) */
    uint64_t active;      /* pages of slabs in use that were carved (bytes) */
    uint64_t slabs;       /* slabs serving a class */
    uint64_t heaps_live;  /* thread heaps in use */
    uint64_t ss_abandoned; /* superslabs of exited threads, waiting for adoption */
    uint64_t cls_blocks[HK_NUM_CLASSES]; /* blocks in use per class */
    uint64_t cls_slabs[HK_NUM_CLASSES];  /* slabs per class */
} hk_census_t;
void hk_heap_census(hk_census_t *c);

/* The background thread's share of the sweep (any thread, no lock held):
 * collect a few abandoned superslabs, and in LEAN give back the slabs of
 * idle heaps that have waited past their settle delay. */
void hk_heap_idle_work(void);
/* The purge delay for the empty superslabs heaps keep for their next slabs
 * (FAST keeps one per heap): those idle for it go to superslab_free(). */
void hk_heap_purge_empty(int64_t now_ms);
/* The purge tick the heaps' sweep runs on the allocator's slow paths (the
 * front's: handed down once at init, so this box never calls up). */
void hk_heap_set_idle_tick(void (*tick)(void));


/* Thread lifecycle (thread_box calls these): a heap for the calling
 * thread, made its own (NULL: no memory for the struct); and its end. */
hk_heap_t *hk_heap_thread_init(void);
void hk_heap_thread_done(hk_heap_t *heap);
/* Fork: hold every heap lock and wait out remote frees that are notifying
 * an owner, so the child finds no lock held and no slab in NOTIFYING. */
void hk_heap_fork_prepare(void);
void hk_heap_fork_parent(void);
void hk_heap_fork_child(void);

#endif
