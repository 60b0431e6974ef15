/* ss_allocation_box (superslab box): superslabs and their slab metadata.
 *
 * A superslab is 2 MiB, 2 MiB-aligned; its first 64 KiB (slab 0) hold this
 * header, the other 31 slabs serve size classes. A superslab belongs to one
 * thread heap at a time (hk_superslab_t.heap), or to nobody: then it is
 * either abandoned (its thread exited with live blocks in it; any heap may
 * adopt it) or empty and cached for reuse.
 * Owns: acquiring superslabs (cache, then a range of the large-block
 * cache, then the OS), superslab_free(), the empty-superslab cache and the
 * abandoned list.
 * Must not: touch a heap's class lists (heap_box does), or call mmap itself
 * (the os box does). */
#ifndef HAKMEM_SS_ALLOCATION_BOX_H
#define HAKMEM_SS_ALLOCATION_BOX_H

#include "hakmem_internal.h"

struct hk_heap;

/* Low bits of hk_slab_t.thread_free (the rest is the list head). */
enum {
    HK_TF_NORMAL = 0,    /* remote frees just push */
    HK_TF_FULL = 1,      /* owner parked the slab as full: next remote free notifies */
    HK_TF_NOTIFYING = 2, /* a remote thread is notifying the owner right now */
};
/* The word is list head | count << HK_TF_COUNT_SHIFT | state: the number
 * of blocks on the list rides in the pointer's unused high bits (blocks lie
 * in superslabs below 2^47, and a slab holds at most 4096 blocks), so the
 * owner takes a remote list without walking it; its links are checked as
 * malloc pops them, like any free list's. */
#define HK_TF_COUNT_SHIFT 48
#define HK_TF_STATE(w) ((w) & (uintptr_t)3)
#define HK_TF_LIST(w) ((hk_block_t *)((w) & (((uintptr_t)1 << HK_TF_COUNT_SHIFT) - 4)))
#define HK_TF_COUNT(w) ((uint32_t)((w) >> HK_TF_COUNT_SHIFT))
#define HK_TF_WITHOUT_STATE(w) ((w) & ~(uintptr_t)3)

/* Set in hk_slab_t.used while the slab is parked full: the free fast path
 * then sees used <= 0 as a signed number and takes the slow path, with one
 * test for both "now empty" and "parked". */
#define HK_USED_PARKED INT32_MIN

/* Per-slab metadata, in the superslab header. The first half is the
 * owner's; thread_free is shared with other threads (its own line). */
typedef struct hk_slab {
    hk_block_t *free;       /* owner: blocks ready to hand out */
    uintptr_t carved_limit; /* address where uncarved space begins (0 while
                               unused): every block below it was carved */
    int32_t used;           /* blocks handed out and not back (on `free` or
                               `local_free`), plus
                               HK_USED_PARKED while parked off the class list */
    uint32_t div_magic;     /* hk_div_magic(block_size); 0 while unused, so
                               every free into an unused slab is refused */
    uint32_t block_size;    /* 0 while unused */
    uint16_t poison_pages;  /* bit k: page k of the slab starts where a large
                               block recently freed started: no block is
                               handed out there (slab_box: carving) */
    uint16_t pad0;
    uint16_t capacity;      /* blocks that fit */
    uint16_t reserved;      /* blocks carved so far (carving is lazy) */
    uint8_t cls;
    uint8_t parked;         /* owner (under the heap lock): off the class list, full */
    uint8_t index;          /* position in the superslab */
    uint8_t decommitted;    /* LEAN: unused and its pages given back */
    struct hk_slab *next, *prev; /* owner: class list */
    hk_block_t *local_free; /* owner: blocks it freed since `free` was refilled
                               (slab_box.h: hk_slab_take_local) */
    struct hk_slab *remote_next; /* link in the owner heap's notification stack */
    _Atomic uintptr_t thread_free; /* remote frees: list head | HK_TF_* state */
    uint32_t takes;         /* remote lists taken so far, and (debug build)
                               times it became its class's head: the census's
                               sign of use (by the lock holder) */
    /* The debug build's census (census_box), under the owner's lock: the
     * slab as it was when a malloc_trim began with every block free. */
    uint32_t census_epoch;
    uintptr_t census_tf;
    int32_t census_used;
    uint32_t census_takes;
    uint8_t census_head;    /* it was its class's head then */
    uint8_t pad2[3];
    uint32_t idle_ms;       /* unused since (the purge delay; by its heap's lock holder) */
    uint8_t pad3[64 - 8 - 8 - 8 - 8 - 4 - 4 - 8]; /* (remote_next, 8, is on this line) */
} hk_slab_t;

typedef enum {
    HK_SS_ACTIVE = 1,      /* owned by a heap */
    HK_SS_ABANDONED = 2,   /* its heap's thread exited; on the abandoned list */
    HK_SS_CACHED = 3,      /* empty, committed, on the cache */
    HK_SS_DECOMMITTED = 4, /* empty, pages given back, range kept for reuse */
} hk_ss_state_t;

/* The header shares its first 128 bytes with slabs[0], which is never a
 * slab: the whole metadata then fits in one page (4096 bytes), so a
 * superslab in use makes one page of slab 0 resident, not two, and so
 * does every decommitted superslab kept for reuse (its header stays). The
 * words that alias slabs[0].carved_limit and .div_magic stay 0 for good,
 * so a free of a pointer into slab 0 is refused as it always was
 * (hk_slab_is_block_start). */
typedef struct hk_superslab {
    union {
        struct {
            uint64_t magic;                   /* HK_SS_MAGIC while in use; cleared on release */
            uintptr_t zero_carved_limit;      /* always 0: slabs[0].carved_limit */
            uint32_t used_slabs;              /* slabs serving a class */
            uint32_t zero_div_magic;          /* always 0: slabs[0].div_magic */
            uint32_t state;                   /* hk_ss_state_t */
            uint32_t free_mask;               /* bit i set: slab i is unused (i >= 1) */
            _Atomic(struct hk_heap *) heap;   /* owner, NULL when abandoned or cached */
            uint32_t decommitted_slabs;       /* unused slabs whose pages were given back */
            uint32_t pending_decommit;        /* LEAN: unused slabs waiting to be given back together */
            struct hk_superslab *next, *prev; /* heap list, cache or abandoned list */
            uint32_t pending_since_ms;        /* when the first of them started waiting */
            uint32_t touched_mask;            /* bit i: slab i served a class since its pages
                                                 were last given back, so they may be
                                                 resident: a new slab goes there first (no
                                                 fresh pages touched) */
            int64_t cached_since_ms;          /* on the cache: since when (the purge delay) */
            int64_t slab_idle_ms;             /* the oldest idle_ms of its unused slabs whose pages
                                                 are still resident (0: none; the purge delay) */
        };
        hk_slab_t slabs[HK_SLABS_PER_SS]; /* slabs[0] is the header above, never a slab */
    };
} hk_superslab_t;

#define HK_SS_ALL_SLABS_FREE 0xFFFFFFFEu

HK_INLINE hk_superslab_t *hk_ss_of(const void *p)
{
    return (hk_superslab_t *)((uintptr_t)p & ~(uintptr_t)HK_SS_MASK);
}
HK_INLINE uint8_t *hk_slab_base(hk_superslab_t *ss, const hk_slab_t *slab)
{
    return (uint8_t *)ss + ((size_t)slab->index << HK_SLAB_SHIFT);
}

/* Where superslabs come from before the OS: take(size) hands over a
 * size-aligned range of size committed bytes, or NULL (the large-block
 * cache's hk_large_cache_take_chunk, handed over at init: the large box
 * calls this one, so this one does not include it). */
typedef void *(*hk_range_source_t)(size_t size);
/* Which pages of a new superslab's range [base, base + size) must not
 * start a block (a large block freed there lately: its second free must
 * not free a small block): pages[k] for slab k (the large cache's
 * hk_large_recent_pages). */
typedef void (*hk_range_poison_t)(uintptr_t base, size_t size, uint16_t *pages);
void superslab_set_range_source(hk_range_source_t take, hk_range_poison_t poison);
/* A superslab with every slab unused, owned by nobody yet; NULL when the OS
 * refuses memory (errno untouched: the caller sets ENOMEM). */
hk_superslab_t *superslab_acquire(void);
/* Take back an empty superslab (used_slabs == 0, owner cleared). FAST keeps
 * it cached for reuse; the LEAN release policy may decommit or unmap it. */
void superslab_free(hk_superslab_t *ss);
/* malloc_trim: unmap every cached and decommitted superslab. Returns the
 * number of bytes that were resident and went back. */
size_t superslab_trim(void);
/* The purge delay: release the cached superslabs unused for it at now_ms
 * (LEAN: decommitted, range kept; FAST: unmapped), if a pass over the
 * cache is due (the release policy decides both). Returns bytes released. */
size_t superslab_purge(int64_t now_ms);
/* Make a fresh superslab resident and cache it (prewarm). 0 on success. */
int superslab_prewarm_one(void);

/* Abandoned superslabs: pushed by an exiting thread, adopted by any heap. */
void superslab_abandon(hk_superslab_t *ss);
/* Take the first abandoned superslab off the list (NULL: none). */
hk_superslab_t *superslab_adopt(void);
/* Take this superslab off the abandoned list; false if it is not on it
 * (another thread adopted it first). */
bool superslab_adopt_this(hk_superslab_t *ss);
/* Call collect(ss) on abandoned superslabs while holding the list's lock
 * (so nobody adopts one meanwhile); those it reports empty go to
 * superslab_free(), the others to the back of the list. max: how many to
 * look at (malloc_trim: all; a sweep: a few, and only if the lock is free). */
void superslab_reclaim_abandoned(bool (*collect)(hk_superslab_t *ss), unsigned max, bool wait);

/* Statistics: fn(ss, arg) for every abandoned superslab, under the list's
 * lock (nobody collects or adopts one meanwhile). Returns how many. */
uint64_t superslab_for_each_abandoned(void (*fn)(hk_superslab_t *ss, void *arg), void *arg);

/* Debug recount of the gauges (every lock held, as for fork). */
typedef struct hk_ss_count {
    int64_t live, cached, decommitted, committed;
} hk_ss_count_t;
/* Count one superslab in use (owned or abandoned). */
void superslab_count_one(const hk_superslab_t *ss, hk_ss_count_t *c);
/* Count the abandoned list, the cache and the decommitted ranges. */
void superslab_count_lists(hk_ss_count_t *c);

/* Fork: hold the box's locks across fork() so the child finds them free.
 * Order: the abandoned list's lock, then the cache's (a superslab taken off
 * the abandoned list may go to superslab_free()). */
void superslab_fork_prepare(void);
void superslab_fork_parent(void);
void superslab_fork_child(void);

#endif
