/* slab_box: one slab of a size class. See slab_box.h. */
#include "hakmem_internal.h"
#include "heap/slab_box.h"
#include "base/diag_box.h"
#include "backend/large_box.h"
#include "backend/ss_release_policy_box.h"
#include "base/superslab_stats.h"

#include <errno.h>
#include <stdlib.h>

hk_slab_t g_hk_slab_empty;
uintptr_t g_hk_key[2];

/* Blocks carved per refill: about a page's worth, so a slab is made
 * resident gradually rather than 64 KiB at once. */
#define HK_CARVE_BYTES 4096

static inline void cpu_relax(void) { __builtin_ia32_pause(); }

void hk_slab_format(hk_superslab_t *ss, hk_slab_t *s, unsigned cls)
{
    uint32_t bs = (uint32_t)hk_class_size(cls);
    /* Waiting to be given back: it never was, so just keep it. */
    ss->pending_decommit &= ~(1u << s->index);
    if (s->decommitted) { /* LEAN's, or the purge delay's */
        /* Its pages come back as they are touched: in LEAN, a bounce. */
        s->decommitted = 0;
        ss->decommitted_slabs--;
        HK_GAUGE_ADD(bytes_committed, (int64_t)HK_SLAB_SIZE);
        if (config_lean)
            ss_release_policy_note_reuse(HK_SLAB_SIZE);
    }
    ss->touched_mask |= 1u << s->index;
    s->free = NULL;
    hk_slab_used_set(s, 0);
    s->parked = 0;
    s->block_size = bs;
    s->capacity = (uint16_t)(HK_SLAB_SIZE / bs);
    s->reserved = 0;
    s->carved_limit = 0;
    s->cls = (uint8_t)cls;
    s->next = s->prev = NULL;
    atomic_store_explicit(&s->thread_free, 0, memory_order_relaxed);
    /* Publish div_magic last: from here on frees into the slab are accepted. */
    __atomic_store_n(&s->div_magic, hk_div_magic(bs), __ATOMIC_RELEASE);
}

/* A block that starts a page where a large block recently started
 * (poison_pages) is never handed out: a second free of that large block
 * would otherwise free it under its new owner. It is marked free (so such
 * a free is named a double free) and left off the list. */
static inline bool carve_skips(uint16_t poison_pages, uintptr_t b)
{
    return (b & (HK_PAGE_SIZE - 1)) == 0 && (poison_pages >> ((b >> 12) & 15) & 1);
}

/* Link blocks start .. start + (n - 1) * bs in front of head, back to front
 * (so the list runs in address order), each with its free tag; the ones
 * poison says to skip get the tag only. poison is 0 or not at each call,
 * so the common loop has no test in it. */
HK_INLINE hk_block_t *carve_run(uint8_t *start, uint32_t n, uint32_t bs, hk_block_t *head, uint16_t poison)
{
    for (uint32_t i = n; i-- > 0;) {
        hk_block_t *b = (hk_block_t *)(start + (size_t)i * bs);
        uintptr_t t = hk_block_secret(b);
        b->tag = t;
        if (config_debug)
            hk_debug_junk_fill(b, bs);
        if (poison && carve_skips(poison, (uintptr_t)b))
            continue;
        b->link = hk_link_encode(b, t, head);
        head = b;
    }
    return head;
}

/* Carve up to a page's worth of fresh blocks onto the free list. Each
 * carved block carries the free tag: free() of a block that was carved but
 * never handed out is then a double free, not a second copy on the list.
 * false if nothing was left to carve. */
static bool slab_carve_once(hk_slab_t *s, hk_superslab_t *ss)
{
    uint32_t left = (uint32_t)s->capacity - s->reserved;
    if (!left)
        return false;
    uint32_t n = HK_CARVE_BYTES / s->block_size;
    uint32_t off = (uint32_t)s->reserved * s->block_size;
    if (ss_release_lean()) {
        /* LEAN: only the blocks that start in the page of the first one,
         * so carving makes no page resident before a block in it is
         * handed out (the links and tags are written at each block's
         * start): a class's pages stop at its high-water mark. */
        uint32_t page_end = (uint32_t)hk_align_up(off + 1, HK_PAGE_SIZE);
        n = (page_end - off + s->block_size - 1) / s->block_size;
    }
    if (n == 0)
        n = 1;
    if (n > left)
        n = left;
    uint8_t *start = hk_slab_base(ss, s) + off;
    uint16_t poison = s->poison_pages;
    s->free = poison ? carve_run(start, n, s->block_size, s->free, poison)
                     : carve_run(start, n, s->block_size, s->free, 0);
    s->reserved = (uint16_t)(s->reserved + n);
    /* Read by other threads' frees (hk_slab_is_block_start). */
    __atomic_store_n(&s->carved_limit, (uintptr_t)start + (size_t)n * s->block_size, __ATOMIC_RELEASE);
    return true;
}

bool hk_slab_serves(const hk_slab_t *s, unsigned cls)
{
    uint32_t bs = (uint32_t)hk_class_size(cls);
    if (HK_LIKELY(!s->poison_pages) || bs < HK_PAGE_SIZE)
        return true; /* the second block does not start a page */
    for (uint32_t off = 0; off + bs <= HK_SLAB_SIZE; off += bs)
        if (!carve_skips(s->poison_pages, off))
            return true;
    return false;
}

bool hk_slab_carve_more(hk_slab_t *s, hk_superslab_t *ss)
{
    /* Every block of a batch may have been skipped (one block per batch
     * in the largest classes): carve on until one is on the list. */
    do {
        if (!slab_carve_once(s, ss))
            return false;
    } while (!s->free);
    return true;
}

void hk_slab_clear(hk_slab_t *s)
{
    __atomic_store_n(&s->div_magic, 0, __ATOMIC_RELAXED);
    s->block_size = 0;
    s->capacity = 0;
    s->reserved = 0;
    __atomic_store_n(&s->carved_limit, 0, __ATOMIC_RELAXED);
    s->free = NULL;
    s->parked = 0;
    hk_slab_used_set(s, 0);
    s->census_epoch = 0; /* a mark is about the slab as it was */
}

bool hk_slab_take_remote(hk_slab_t *s)
{
    uintptr_t old = atomic_load_explicit(&s->thread_free, memory_order_relaxed);
    for (;;) {
        if (HK_TF_STATE(old) == HK_TF_NOTIFYING) {
            cpu_relax();
            old = atomic_load_explicit(&s->thread_free, memory_order_relaxed);
            continue;
        }
        if (!HK_TF_LIST(old))
            return false;
        if (atomic_compare_exchange_weak_explicit(&s->thread_free, &old, HK_TF_STATE(old),
                                                  memory_order_acquire, memory_order_relaxed))
            break;
    }
    HK_ASSERT(s->block_size != 0);
    hk_block_t *list = HK_TF_LIST(old);
    if (s->free) {
        /* Rare (the owner refills only an exhausted slab; a parked one got
         * a local free): join the lists at the remote list's tail. */
        hk_block_t *tail = list, *nx;
        while ((nx = hk_link_next(tail, hk_block_secret(tail))) != NULL)
            tail = nx;
        tail->link = hk_link_encode(tail, hk_block_secret(tail), s->free);
    }
    s->free = list;
    hk_slab_used_set(s, hk_slab_used(s) - (int32_t)HK_TF_COUNT(old)); /* keeps HK_USED_PARKED */
    s->takes++;
    return true;
}

/* Set the state bits (keeping the list), waiting out a notifier. */
static void slab_set_tf_state(hk_slab_t *s, uintptr_t state)
{
    uintptr_t old = atomic_load_explicit(&s->thread_free, memory_order_relaxed);
    for (;;) {
        if (HK_TF_STATE(old) == HK_TF_NOTIFYING) {
            cpu_relax();
            old = atomic_load_explicit(&s->thread_free, memory_order_relaxed);
            continue;
        }
        uintptr_t nw = HK_TF_WITHOUT_STATE(old) | state;
        if (atomic_compare_exchange_weak_explicit(&s->thread_free, &old, nw, memory_order_acq_rel,
                                                  memory_order_relaxed))
            return;
    }
}

bool hk_slab_arm_full(hk_slab_t *s)
{
    uintptr_t old = atomic_load_explicit(&s->thread_free, memory_order_relaxed);
    for (;;) {
        if (HK_TF_LIST(old))
            return false;
        if (HK_TF_STATE(old) == HK_TF_NOTIFYING) {
            cpu_relax();
            old = atomic_load_explicit(&s->thread_free, memory_order_relaxed);
            continue;
        }
        if (atomic_compare_exchange_weak_explicit(&s->thread_free, &old, HK_TF_FULL, memory_order_acq_rel,
                                                  memory_order_relaxed))
            return true;
    }
}

void hk_slab_take_over(hk_slab_t *s)
{
    slab_set_tf_state(s, HK_TF_NORMAL);
    hk_slab_used_set(s, hk_slab_out(s));
    s->parked = 0;
    hk_slab_take_remote(s);
    s->next = s->prev = NULL;
}

/* Bits first .. first + n - 1. */
static inline uint32_t m_run(unsigned first, unsigned n) { return ((n < 32 ? (1u << n) : 0u) - 1u) << first; }

uint32_t hk_slab_unused_resident(const hk_superslab_t *ss)
{
    uint32_t m = ss->free_mask & HK_SS_ALL_SLABS_FREE;
    for (uint32_t t = m; t; t &= t - 1)
        if (ss->slabs[__builtin_ctz(t)].decommitted)
            m &= ~(1u << __builtin_ctz(t));
    return m;
}

void hk_slab_give_back(hk_superslab_t *ss, uint32_t m, int (*give_back)(void *ptr, size_t size))
{
    ss->pending_decommit &= ~m;
    while (m) {
        unsigned first = (unsigned)__builtin_ctz(m);
        unsigned n = (unsigned)__builtin_ctz(~(m >> first)); /* run length */
        if (give_back((uint8_t *)ss + ((size_t)first << HK_SLAB_SHIFT), (size_t)n << HK_SLAB_SHIFT) == 0) {
            for (unsigned i = first; i < first + n; i++)
                ss->slabs[i].decommitted = 1;
            ss->touched_mask &= ~m_run(first, n);
            ss->decommitted_slabs += n;
            HK_GAUGE_ADD(bytes_committed, -(int64_t)((size_t)n << HK_SLAB_SHIFT));
        }
        m &= ~m_run(first, n);
    }
}

void hk_slab_flush_pending(hk_superslab_t *ss)
{
    ss->pending_decommit = 0;
    hk_slab_give_back(ss, hk_slab_unused_resident(ss), ss_maybe_decommit_superslab);
}

void hk_free_misuse(void *p, int kind)
{
    int saved = errno;
    /* Not a block start of its slab now: if the slab went back to its
     * superslab after the block was freed, the block still carries its free
     * tag (until its pages are given back): a double free, said as such.
     * The memory is ours (the registry says so) and is only read. */
    if (kind == HK_MISUSE_INVALID && ((uintptr_t)p & 15) == 0 && ((uintptr_t)p & HK_SS_MASK) >= HK_SLAB_SIZE &&
        __atomic_load_n(&hk_slab_of(hk_ss_of(p), (uintptr_t)p)->div_magic, __ATOMIC_RELAXED) == 0 &&
        ((hk_block_t *)p)->tag == hk_block_secret(p))
        kind = HK_MISUSE_DOUBLE; /* (in a slab now in use by another class, an old tag means nothing) */
    /* A large block freed a while ago whose range now serves small
     * blocks: its start is remembered (hk_large_recently_freed). */
    if (kind == HK_MISUSE_INVALID && hk_large_recently_freed(p)) {
        hk_report_misuse("double free", p, "large block is already free");
        errno = saved;
        return;
    }
    if (kind == HK_MISUSE_DOUBLE)
        hk_report_misuse("double free", p, "block is already free");
    else
        hk_report_misuse("invalid free", p, "not the start of a block hakmem handed out");
    errno = saved;
}

void hk_free_list_corrupt(const void *block, uintptr_t decoded)
{
    hk_msg_t m = {.len = 0};
    hk_msg_str(&m, "hakmem: error: corrupted free list at ");
    hk_msg_hex(&m, (uintptr_t)block);
    hk_msg_str(&m, " (link decodes to ");
    hk_msg_hex(&m, decoded);
    hk_msg_str(&m, ": a freed block was written to)");
    hk_msg_flush(&m);
    abort();
}
