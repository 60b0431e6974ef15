/* slab_box: one 64 KiB slab serving a size class, inside its superslab.
 *
 * A slab's blocks are carved lazily (a page's worth at a time), handed out
 * from its `free` list, and come back either onto `free` (its owner) or
 * onto `thread_free` (any other thread, one CAS). Every free block carries
 * a free tag and an encoded link, both derived from a per-process secret
 * and the block's own address, and every pop checks them: a freed block
 * written to is caught before its link is followed.
 *
 * thread_free is one word: list head | count << HK_TF_COUNT_SHIFT | state
 * (ss_allocation_box.h). Its states and who moves them:
 *   NORMAL -> FULL        the owner parking the slab, or a helper
 *                         re-arming a parked one; both only while the list
 *                         is empty (hk_slab_arm_full): a FULL slab never
 *                         holds a remote list, so the next remote free is
 *                         always the one that notifies;
 *   FULL -> NOTIFYING     the remote free that finds FULL (reclaim_box:
 *                         it pushes the slab on the owner's notification
 *                         stack), then NOTIFYING -> NORMAL, by that thread;
 *   any -> NORMAL         a taker (hk_slab_take_over).
 * Everyone else waits out NOTIFYING: while it lasts the notifier still
 * touches the slab, so nobody may take its last block and release it.
 *
 * Owns: hk_slab_t's meaning (the struct is in the superslab header,
 * ss_allocation_box.h), the per-process secrets, block tags and links,
 * the block-start test, carving (and the block starts it must skip:
 * poison_pages), taking a remote list, the thread_free transitions above,
 * giving back the pages of a superslab's unused slabs (LEAN), and naming a
 * misuse found at free.
 * Must not: know heaps, class lists or who owns a slab (heap_lists_box,
 * reclaim_box); decide about releasing memory (the release policy does). */
#ifndef HAKMEM_SLAB_BOX_H
#define HAKMEM_SLAB_BOX_H

#include "hakmem_internal.h"
#include "base/size_class_box.h"
#include "backend/ss_allocation_box.h"
#include "heap/debug_box.h"

extern HK_HIDDEN hk_slab_t g_hk_slab_empty; /* sentinel slab: no free blocks */
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
/* The block after b, or at the end of its list *end, which is then taken
 * (set to NULL): the end sits in the branch that checks the link, so a
 * caller that joins another list there pays nothing for it. */
HK_INLINE hk_block_t *hk_link_next_or_take(const hk_block_t *b, uintptr_t t, hk_block_t **end)
{
    uintptr_t d = b->link ^ t;
    if (HK_UNLIKELY(d >= HK_SLAB_SIZE || b->tag != t)) {
        if ((d ^ (uintptr_t)b) != 0 || b->tag != t)
            hk_free_list_corrupt(b, d ^ (uintptr_t)b);
        hk_block_t *n = *end;
        *end = NULL;
        return n;
    }
    return (hk_block_t *)(d ^ (uintptr_t)b);
}
HK_INLINE hk_block_t *hk_link_next(const hk_block_t *b, uintptr_t t)
{
    hk_block_t *none = NULL;
    return hk_link_next_or_take(b, t, &none);
}
HK_INLINE uintptr_t hk_link_encode(const hk_block_t *b, uintptr_t t, const hk_block_t *next)
{
    return (uintptr_t)next ^ (uintptr_t)b ^ t;
}

/* slab->used is the owner's counter; a helper holding the heap lock reads
 * it on listed slabs (to find those with every block free) and writes it
 * on slabs the owner's fast paths cannot touch (parked ones, and listed
 * ones with no block out). The owner's free fast path reads it before it
 * knows whether the slab is parked, and writes it while a helper may read
 * it: a helper that reads the count a free left also sees the block that
 * free put on the list, so loads acquire and stores release (plain moves
 * on x86-64). The pop's increment stays plain: it is on a class head,
 * which no helper reads. */
HK_INLINE int32_t hk_slab_used(const hk_slab_t *s) { return __atomic_load_n(&s->used, __ATOMIC_ACQUIRE); }
HK_INLINE void hk_slab_used_set(hk_slab_t *s, int32_t v) { __atomic_store_n(&s->used, v, __ATOMIC_RELEASE); }
/* Blocks out, without the parked bit. */
HK_INLINE int32_t hk_slab_out(const hk_slab_t *s) { return hk_slab_used(s) & ~HK_USED_PARKED; }

/* Every block of the slab is free: none out, or all that are out wait on
 * its remote list (tf: a thread_free word read after `out`). Nobody can
 * then free into it legitimately, so its owner's fast paths never touch it
 * unless it is their class head. */
HK_INLINE bool hk_slab_all_free(int32_t out, uintptr_t tf) { return (uint32_t)out == HK_TF_COUNT(tf); }

/* Pop b, the first block of the free list of a slab its owner allocates
 * from (never parked: no helper touches it). */
HK_INLINE void *hk_slab_pop(hk_slab_t *slab, hk_block_t *b)
{
    /* The end of `free` hands over local_free (see below): the block
     * popped now, not one freed before, is the one that empties `free`;
     * whatever is freed after it goes onto the emptied local_free. */
    slab->free = hk_link_next_or_take(b, hk_block_secret(b), &slab->local_free);
    slab->used++;
    b->tag = 0; /* a live block never carries the free tag */
    if (config_debug)
        hk_debug_junk_check(b, slab->block_size);
    return b;
}

/* No immediate reuse: the blocks a slab's owner frees wait on local_free,
 * not on `free`, so the block just freed is never the next one malloc
 * hands out, and a dangling pointer does not alias the very next object of
 * its size. Free's fast path costs the same (another field of the same
 * line); the lists meet where `free` runs out: in the pop that takes its
 * last block (hk_slab_pop), or, if `free` was empty already, here. */

/* A slab that is not its class's head (or the head as a last resort):
 * local_free becomes the allocation list, if `free` is empty and it holds
 * a block. The block freed last is not handed out next by the head, so
 * order does not matter here. */
HK_INLINE bool hk_slab_take_local(hk_slab_t *s)
{
    if (s->free || !s->local_free)
        return false;
    s->free = s->local_free;
    s->local_free = NULL;
    return true;
}

/* The head of its class whose `free` is empty: local_free (two blocks or
 * more) becomes the allocation list, all but its first block, the one
 * freed last, which stays behind on local_free alone, so that the block
 * just freed is not the next one out. Returns the block to pop (its link
 * is checked by the pop), or NULL. The caller owns the slab, as for
 * hk_slab_pop (the stand-ins' heads are the empty slab, whose lists stay
 * empty). */
HK_INLINE hk_block_t *hk_slab_refill_local(hk_slab_t *s)
{
    hk_block_t *l = s->local_free;
    if (!l)
        return NULL;
    uintptr_t tl = hk_block_secret(l);
    hk_block_t *n = hk_link_next(l, tl);
    if (n) {
        l->link = hk_link_encode(l, tl, NULL);
        s->local_free = l;
    }
    return n;
}

/* The owner frees b (its tag, the free tag, already set) onto local_free. */
HK_INLINE void hk_slab_push_local(hk_slab_t *s, hk_block_t *b, uintptr_t tag)
{
    b->link = hk_link_encode(b, tag, s->local_free);
    s->local_free = b;
}

/* Does the slab hold blocks its owner can hand out without carving? */
HK_INLINE bool hk_slab_has_free(const hk_slab_t *s) { return s->free || s->local_free; }

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

/* Make an unused slab serve class cls (its pages come back if they were
 * given back). Frees into it are accepted from here on. */
void hk_slab_format(hk_superslab_t *ss, hk_slab_t *s, unsigned cls);
/* Can an unused slab serve class cls: does a block start that carving
 * does not skip (poison_pages) exist? Only a class of 4 KiB blocks or more
 * can have every block start on a skipped page. */
bool hk_slab_serves(const hk_slab_t *s, unsigned cls);
/* Carve fresh blocks onto the free list (a page's worth, at least one);
 * false if the slab is carved whole. */
bool hk_slab_carve_more(hk_slab_t *s, hk_superslab_t *ss);
HK_INLINE bool hk_slab_carve(hk_slab_t *s, hk_superslab_t *ss)
{
    return s->reserved < s->capacity && hk_slab_carve_more(s, ss);
}
/* Forget a slab's class: every free into it is refused from now on. */
void hk_slab_clear(hk_slab_t *s);

/* Take the slab's remote-freed blocks onto its free list; false if there
 * were none. Waits out a notifier, so that once every block is taken no
 * other thread still touches the slab's metadata. The state bits are
 * kept. The caller owns the slab (its owner, or whoever holds the owner's
 * lock and may touch it, reclaim_box). */
bool hk_slab_take_remote(hk_slab_t *s);
/* NORMAL -> FULL, only while the remote list is empty (waiting out a
 * notifier): true if the slab is now FULL; false if blocks wait on its
 * list (the caller takes them and decides again). */
bool hk_slab_arm_full(hk_slab_t *s);
/* Taking a slab over (adoption, thread exit, an abandoned superslab's
 * collection): no notification is pending or wanted any more, and every
 * remote-freed block is back on the free list. */
void hk_slab_take_over(hk_slab_t *s);

/* The unused slabs of ss whose pages were not given back. */
uint32_t hk_slab_unused_resident(const hk_superslab_t *ss);
/* Give back, with give_back(ptr, size) (0: done), the pages of the unused
 * slabs in m (of hk_slab_unused_resident), one call per run of adjacent
 * slabs. */
void hk_slab_give_back(hk_superslab_t *ss, uint32_t m, int (*give_back)(void *ptr, size_t size));
/* LEAN: the same with LEAN's strategy (the slabs waiting to be given back,
 * and any other unused one). */
void hk_slab_flush_pending(hk_superslab_t *ss);

/* Name a misuse found at free: HK_MISUSE_INVALID (not a block start) or
 * HK_MISUSE_DOUBLE (the block carries its free tag). One line (the debug
 * build aborts); errno is kept. */
enum { HK_MISUSE_INVALID = 1, HK_MISUSE_DOUBLE = 2 };
void hk_free_misuse(void *p, int kind);

#endif
