/* heap_box: per-thread heaps and the slow paths of small malloc/free.
 * See heap_box.h for the model. */
#include "hakmem_internal.h"
#include "heap_box.h"
#include "diag_box.h"
#include "ss_os_acquire_box.h"
#include "ss_registry_box.h"
#include "ss_mem_lean_env_box.h"
#include "ss_release_policy_box.h"
#include "superslab_stats.h"
#include "thread_box.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <time.h>

hk_slab_t g_hk_slab_empty;
hk_heap_t g_hk_heap_empty = {
#define HK_E1 &g_hk_slab_empty
#define HK_E8 HK_E1, HK_E1, HK_E1, HK_E1, HK_E1, HK_E1, HK_E1, HK_E1
    .cur = {HK_E8, HK_E8, HK_E8, HK_E8, HK_E8, HK_E8, HK_E8, HK_E8, HK_E8},
#undef HK_E8
#undef HK_E1
};
_Static_assert(HK_NUM_CLASSES == 72, "g_hk_heap_empty initialiser lists 72 classes");

__thread hk_heap_t *hk_tls_heap = &g_hk_heap_empty;
uintptr_t g_hk_cookie;

/* Blocks carved per refill: about a page's worth, so a slab is made
 * resident gradually rather than 64 KiB at once. */
#define HK_CARVE_BYTES 4096

static inline void cpu_relax(void) { __builtin_ia32_pause(); }

/* ------------------------------------------------------------------------ */
/* Heap pool: heap structs live in memory that is never unmapped, because a
 * remote thread may still read a heap pointer it loaded from a superslab
 * (see hk_heap_thread_done for why that read is then harmless). */

static pthread_mutex_t g_heap_pool_lock = PTHREAD_MUTEX_INITIALIZER;
static hk_heap_t *g_heap_pool;
static uint8_t *g_heap_chunk;
static size_t g_heap_chunk_left;

static hk_heap_t *heap_struct_alloc(void)
{
    pthread_mutex_lock(&g_heap_pool_lock);
    hk_heap_t *h = g_heap_pool;
    if (h) {
        g_heap_pool = h->next_free;
    } else {
        size_t sz = hk_align_up(sizeof(hk_heap_t), 64);
        if (g_heap_chunk_left < sz) {
            /* A syscall under this lock is fine: the fast path never takes it. */
            g_heap_chunk = hk_os_map(HK_SLAB_SIZE);
            g_heap_chunk_left = g_heap_chunk ? HK_SLAB_SIZE : 0;
        }
        if (g_heap_chunk_left >= sz) {
            h = (hk_heap_t *)g_heap_chunk;
            g_heap_chunk += sz;
            g_heap_chunk_left -= sz;
        }
    }
    pthread_mutex_unlock(&g_heap_pool_lock);
    return h;
}

static void heap_struct_free(hk_heap_t *h)
{
    pthread_mutex_lock(&g_heap_pool_lock);
    h->next_free = g_heap_pool;
    g_heap_pool = h;
    pthread_mutex_unlock(&g_heap_pool_lock);
}

void hk_heap_fork_prepare(void) { pthread_mutex_lock(&g_heap_pool_lock); }
void hk_heap_fork_parent(void) { pthread_mutex_unlock(&g_heap_pool_lock); }
void hk_heap_fork_child(void) { pthread_mutex_init(&g_heap_pool_lock, NULL); }

static void heap_reset(hk_heap_t *h)
{
    for (int c = 0; c < HK_NUM_CLASSES; c++)
        h->cur[c] = &g_hk_slab_empty;
    atomic_store_explicit(&h->remote_slabs, NULL, memory_order_relaxed);
    h->ss_list = NULL;
    h->ss_count = 0;
    h->empty_ss = 0;
    h->next_free = NULL;
    h->alive = 0;
    h->draining = 0;
}

/* ------------------------------------------------------------------------ */
/* Class lists (owner only). A slab is either on its class list or parked
 * full (HK_USED_PARKED set in used); the list head is where malloc pops from. */

static void class_list_push_front(hk_heap_t *h, hk_slab_t *s)
{
    hk_slab_t *head = h->cur[s->cls];
    s->prev = NULL;
    s->next = head == &g_hk_slab_empty ? NULL : head;
    if (s->next)
        s->next->prev = s;
    h->cur[s->cls] = s;
}

/* Put a slab that has free blocks again just behind the head, so the head
 * keeps serving and fuller slabs are used before emptier ones drain. */
static void class_list_insert_second(hk_heap_t *h, hk_slab_t *s)
{
    hk_slab_t *head = h->cur[s->cls];
    if (head == &g_hk_slab_empty) {
        class_list_push_front(h, s);
        return;
    }
    s->prev = head;
    s->next = head->next;
    if (s->next)
        s->next->prev = s;
    head->next = s;
}

static void class_list_remove(hk_heap_t *h, hk_slab_t *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        h->cur[s->cls] = s->next ? s->next : &g_hk_slab_empty;
    if (s->next)
        s->next->prev = s->prev;
    s->next = s->prev = NULL;
}

/* ------------------------------------------------------------------------ */
/* Superslab list of a heap: superslabs with an unused slab come first. */

static void ss_list_remove(hk_heap_t *h, hk_superslab_t *ss)
{
    if (ss->prev)
        ss->prev->next = ss->next;
    else
        h->ss_list = ss->next;
    if (ss->next)
        ss->next->prev = ss->prev;
    ss->next = ss->prev = NULL;
}

static void ss_list_push_front(hk_heap_t *h, hk_superslab_t *ss)
{
    ss->prev = NULL;
    ss->next = h->ss_list;
    if (ss->next)
        ss->next->prev = ss;
    h->ss_list = ss;
}

static void ss_list_move_back(hk_heap_t *h, hk_superslab_t *ss)
{
    if (!ss->next)
        return;
    ss_list_remove(h, ss);
    hk_superslab_t *t = h->ss_list;
    while (t->next)
        t = t->next;
    t->next = ss;
    ss->prev = t;
}

/* ------------------------------------------------------------------------ */
/* Remote frees. */

/* Owner: take the slab's remote-freed blocks. Waits out a notifier, so that
 * once the owner has taken every block no other thread is still touching
 * this slab's metadata. Returns the list; the state bits are kept. */
static hk_block_t *slab_collect_remote(hk_slab_t *s)
{
    uintptr_t old = atomic_load_explicit(&s->thread_free, memory_order_relaxed);
    for (;;) {
        if (HK_TF_STATE(old) == HK_TF_NOTIFYING) {
            cpu_relax();
            old = atomic_load_explicit(&s->thread_free, memory_order_relaxed);
            continue;
        }
        if (!HK_TF_LIST(old))
            return NULL;
        if (atomic_compare_exchange_weak_explicit(&s->thread_free, &old, HK_TF_STATE(old),
                                                  memory_order_acquire, memory_order_relaxed))
            return HK_TF_LIST(old);
    }
}

/* Owner: set the state bits (keeping the list), waiting out a notifier. */
static void slab_set_tf_state(hk_slab_t *s, uintptr_t state)
{
    uintptr_t old = atomic_load_explicit(&s->thread_free, memory_order_relaxed);
    for (;;) {
        if (HK_TF_STATE(old) == HK_TF_NOTIFYING) {
            cpu_relax();
            old = atomic_load_explicit(&s->thread_free, memory_order_relaxed);
            continue;
        }
        uintptr_t nw = (uintptr_t)HK_TF_LIST(old) | state;
        if (atomic_compare_exchange_weak_explicit(&s->thread_free, &old, nw, memory_order_acq_rel,
                                                  memory_order_relaxed))
            return;
    }
}

/* Move collected remote frees onto the owner's free list. */
static void slab_absorb_remote(hk_slab_t *s, hk_block_t *list)
{
    HK_ASSERT(s->block_size != 0);
    int32_t n = 0;
    hk_block_t *tail = list;
    for (;;) {
        n++;
        if (!tail->next)
            break;
        tail = tail->next;
    }
    tail->next = s->free;
    s->free = list;
    s->used -= n; /* keeps HK_USED_PARKED */
}

void hk_heap_free_remote(hk_block_t *b)
{
    hk_superslab_t *ss = hk_ss_of(b);
    hk_slab_t *slab = hk_slab_of(ss, (uintptr_t)b);
    uintptr_t old = atomic_load_explicit(&slab->thread_free, memory_order_relaxed);
    uintptr_t nw;
    do {
        b->next = HK_TF_LIST(old);
        uintptr_t st = HK_TF_STATE(old);
        nw = (uintptr_t)b | (st == HK_TF_FULL ? HK_TF_NOTIFYING : st);
    } while (!atomic_compare_exchange_weak_explicit(&slab->thread_free, &old, nw, memory_order_release,
                                                    memory_order_relaxed));
    if (HK_TF_STATE(old) != HK_TF_FULL)
        return; /* the common case: nothing of the slab is touched after the CAS */

    /* We moved the slab FULL -> NOTIFYING: tell its owner, then clear the
     * state. While NOTIFYING, the owner cannot take our block, so the slab
     * (and its superslab) cannot be released under us. */
    hk_heap_t *h = atomic_load_explicit(&ss->heap, memory_order_acquire);
    if (h) {
        hk_slab_t *head = atomic_load_explicit(&h->remote_slabs, memory_order_relaxed);
        do {
            slab->remote_next = head;
        } while (!atomic_compare_exchange_weak_explicit(&h->remote_slabs, &head, slab, memory_order_release,
                                                        memory_order_relaxed));
    }
    old = atomic_load_explicit(&slab->thread_free, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&slab->thread_free, &old, (uintptr_t)HK_TF_LIST(old),
                                                  memory_order_release, memory_order_relaxed))
        ;
}

/* Owner: a parked slab has free blocks again: back onto its class list.
 * Its thread_free state may still say FULL: the next remote free then
 * sends one needless notification (ignored by heap_drain_notifications,
 * since the slab is no longer parked) and the state becomes NORMAL. That is
 * cheaper than a CAS here, on the path every local free to a parked slab
 * takes. */
static void slab_unpark(hk_heap_t *h, hk_slab_t *s)
{
    s->used &= ~HK_USED_PARKED;
    class_list_insert_second(h, s);
}

static void slab_release(hk_heap_t *h, hk_superslab_t *ss, hk_slab_t *s);

/* Owner: handle the notification stack. */
static void heap_trim_empty(hk_heap_t *h);

static void heap_drain_notifications(hk_heap_t *h)
{
    if (!atomic_load_explicit(&h->remote_slabs, memory_order_relaxed))
        return;
    /* While the list is walked, no superslab may go back to the OS: a slab
     * further down the list may belong to it. heap_trim_empty() waits. */
    bool outer = !h->draining;
    h->draining = 1;
    hk_slab_t *s = atomic_exchange_explicit(&h->remote_slabs, NULL, memory_order_acquire);
    while (s) {
        hk_slab_t *next = s->remote_next;
        hk_superslab_t *ss = hk_ss_of(s);
        if (atomic_load_explicit(&ss->heap, memory_order_relaxed) == h && (s->used & HK_USED_PARKED)) {
            hk_block_t *list = slab_collect_remote(s);
            if (list)
                slab_absorb_remote(s, list);
            slab_unpark(h, s);
            if (s->used == 0)
                slab_release(h, ss, s);
        }
        s = next;
    }
    if (outer) {
        h->draining = 0;
        heap_trim_empty(h);
    }
}

/* Hysteresis: in FAST a heap keeps one empty superslab for its next slabs;
 * more (in LEAN, all) go to superslab_free(), where the release policy
 * decides. The notification stack is emptied first: a superslab given
 * back must not be reachable from it. */
static void heap_trim_empty(hk_heap_t *h)
{
    if (h->draining || h->empty_ss <= ss_heap_keep_empty())
        return;
    heap_drain_notifications(h);
    hk_superslab_t *ss = h->ss_list;
    while (ss && h->empty_ss > ss_heap_keep_empty()) {
        hk_superslab_t *next = ss->next;
        if (ss->used_slabs == 0) {
            h->empty_ss--;
            h->ss_count--;
            ss_list_remove(h, ss);
            superslab_free(ss);
        }
        ss = next;
    }
}

/* ------------------------------------------------------------------------ */
/* Slabs. */

static void slab_format(hk_superslab_t *ss, hk_slab_t *s, unsigned cls)
{
    uint32_t bs = (uint32_t)hk_class_size(cls);
    /* Waiting to be given back: it never was, so just keep it. */
    ss->pending_decommit &= ~(1u << s->index);
    if (config_lean && s->decommitted) {
        /* Its pages come back as they are touched: a bounce. */
        s->decommitted = 0;
        ss->decommitted_slabs--;
        HK_GAUGE_ADD(bytes_committed, (int64_t)HK_SLAB_SIZE);
        ss_release_policy_note_reuse(HK_SLAB_SIZE);
    }
    s->free = NULL;
    s->used = 0;
    s->block_size = bs;
    s->capacity = (uint16_t)(HK_SLAB_SIZE / bs);
    s->reserved = 0;
    s->carved_end = 0;
    s->cls = (uint8_t)cls;
    s->next = s->prev = NULL;
    atomic_store_explicit(&s->thread_free, 0, memory_order_relaxed);
    /* Publish div_magic last: from here on frees into the slab are accepted. */
    __atomic_store_n(&s->div_magic, hk_div_magic(bs), __ATOMIC_RELEASE);
}

/* LEAN: give back the pages of every unused slab of the superslab that
 * still has them (the pending ones and any other unused one), one madvise
 * per run of adjacent slabs: all of them are free, and longer runs mean
 * fewer syscalls. */
#define HK_DECOMMIT_BATCH 16
#define HK_DECOMMIT_SETTLE_MS 50

static int64_t hk_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
static void slab_flush_pending_decommit(hk_superslab_t *ss)
{
    uint32_t m = ss->free_mask & HK_SS_ALL_SLABS_FREE;
    for (int i = 1; i < HK_SLABS_PER_SS; i++)
        if (ss->slabs[i].decommitted)
            m &= ~(1u << i);
    ss->pending_decommit = 0;
    while (m) {
        unsigned first = (unsigned)__builtin_ctz(m);
        unsigned n = (unsigned)__builtin_ctz(~(m >> first)); /* run length */
        if (ss_maybe_decommit_superslab((uint8_t *)ss + ((size_t)first << HK_SLAB_SHIFT),
                                        (size_t)n << HK_SLAB_SHIFT) == 0) {
            for (unsigned i = first; i < first + n; i++)
                ss->slabs[i].decommitted = 1;
            ss->decommitted_slabs += n;
            HK_GAUGE_ADD(bytes_committed, -(int64_t)((size_t)n << HK_SLAB_SHIFT));
        }
        m &= ~(((n < 32 ? (1u << n) : 0u) - 1u) << first);
    }
}

/* Owner taking a slab over (adoption, or its own thread's exit): no
 * notification is pending or wanted any more, and every remote-freed block
 * is back on the free list. */
static void slab_take_over(hk_slab_t *s)
{
    slab_set_tf_state(s, HK_TF_NORMAL);
    s->used &= ~HK_USED_PARKED;
    hk_block_t *list = slab_collect_remote(s);
    if (list)
        slab_absorb_remote(s, list);
    s->next = s->prev = NULL;
}

/* Forget a slab's class: every free into it is refused from now on. */
static void slab_clear(hk_slab_t *s)
{
    __atomic_store_n(&s->div_magic, 0, __ATOMIC_RELAXED);
    s->block_size = 0;
    s->capacity = 0;
    s->reserved = 0;
    s->carved_end = 0;
    s->free = NULL;
    s->used = 0;
}

/* Hand a slab with no live block back to its superslab. */
static void slab_release(hk_heap_t *h, hk_superslab_t *ss, hk_slab_t *s)
{
    HK_ASSERT((s->used & ~HK_USED_PARKED) == 0);
    HK_ASSERT(atomic_load_explicit(&ss->heap, memory_order_relaxed) == h);
    HK_ASSERT(!(ss->free_mask & (1u << s->index)) && ss->used_slabs > 0);
    if (!(s->used & HK_USED_PARKED))
        class_list_remove(h, s);
    slab_clear(s);
    bool had_none_free = ss->free_mask == 0;
    ss->free_mask |= 1u << s->index;
    /* LEAN over budget: the slab's pages go back (unless the whole
     * superslab is about to be released anyway), sixteen slabs at a time and
     * only once the first has waited 50 ms, so that a large free costs about
     * one syscall per superslab, not one per slab. */
    if (config_lean && ss->used_slabs > 1 && ss_should_decommit_slab()) {
        uint32_t now = (uint32_t)hk_now_ms();
        if (!ss->pending_decommit)
            ss->pending_since_ms = now;
        ss->pending_decommit |= 1u << s->index;
        /* A superslab that is draining fast (a large free in progress) is
         * about to be released whole, in one call: give it a moment. */
        if (__builtin_popcount(ss->pending_decommit) >= HK_DECOMMIT_BATCH &&
            now - ss->pending_since_ms >= HK_DECOMMIT_SETTLE_MS)
            slab_flush_pending_decommit(ss);
    }
    if (had_none_free) {
        ss_list_remove(h, ss);
        ss_list_push_front(h, ss);
    }
    if (--ss->used_slabs == 0) {
        h->empty_ss++;
        heap_trim_empty(h);
    }
}

/* Carve up to a page's worth of fresh blocks onto the free list. */
static bool slab_carve(hk_slab_t *s, hk_superslab_t *ss)
{
    uint32_t left = (uint32_t)s->capacity - s->reserved;
    if (!left)
        return false;
    uint32_t n = HK_CARVE_BYTES / s->block_size;
    if (n == 0)
        n = 1;
    if (n > left)
        n = left;
    uint8_t *start = hk_slab_base(ss, s) + (size_t)s->reserved * s->block_size;
    hk_block_t *b = (hk_block_t *)start;
    for (uint32_t i = 1; i < n; i++) {
        hk_block_t *nx = (hk_block_t *)(start + (size_t)i * s->block_size);
        b->next = nx;
        b = nx;
    }
    b->next = s->free;
    s->free = (hk_block_t *)start;
    if (config_debug) {
        for (uint32_t i = 0; i < n; i++)
            hk_debug_junk_fill((hk_block_t *)(start + (size_t)i * s->block_size), s->block_size);
    }
    s->reserved = (uint16_t)(s->reserved + n);
    s->carved_end = (uint32_t)s->reserved * s->block_size;
    return true;
}

/* Give the slab's free list some blocks; false if it has none at all. */
static bool slab_refill(hk_slab_t *s, hk_superslab_t *ss)
{
    hk_block_t *list = slab_collect_remote(s);
    if (list) {
        slab_absorb_remote(s, list);
        return true;
    }
    return slab_carve(s, ss);
}

/* Park an exhausted slab off its class list. Returns false (and leaves it on
 * the list) if remote frees arrived in the meantime. */
static bool slab_park(hk_heap_t *h, hk_slab_t *s)
{
    /* The notification stack must not still hold this slab from an earlier
     * parking when a remote thread may push it again. */
    heap_drain_notifications(h);
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
            break;
    }
    class_list_remove(h, s);
    s->used |= HK_USED_PARKED;
    return true;
}

/* Take over an abandoned superslab: collect what other threads freed into
 * it, release slabs that are empty now, and list the rest. */
static void heap_adopt(hk_heap_t *h, hk_superslab_t *ss)
{
    atomic_store_explicit(&ss->heap, h, memory_order_seq_cst);
    h->ss_count++;
    ss_list_push_front(h, ss);
    if (ss->used_slabs == 0) {
        h->empty_ss++;
        return;
    }
    for (int i = 1; i < HK_SLABS_PER_SS; i++) {
        hk_slab_t *s = &ss->slabs[i];
        if (ss->free_mask & (1u << i))
            continue;
        slab_take_over(s);
        class_list_insert_second(h, s);
        if (s->used == 0)
            slab_release(h, ss, s);
    }
    if (ss->free_mask == 0)
        ss_list_move_back(h, ss);
}

/* A fresh slab for class cls, from an owned superslab with an unused slab,
 * else an adopted or new superslab. NULL when out of memory. */
static hk_slab_t *heap_new_slab(hk_heap_t *h, unsigned cls)
{
    hk_superslab_t *ss = h->ss_list;
    if (!ss || ss->free_mask == 0) {
        hk_superslab_t *adopted = superslab_adopt();
        if (adopted) {
            heap_adopt(h, adopted);
            if (h->cur[cls] != &g_hk_slab_empty)
                return h->cur[cls];
            ss = h->ss_list;
        }
    }
    if (!ss || ss->free_mask == 0) {
        ss = superslab_acquire();
        if (!ss)
            return NULL;
        atomic_store_explicit(&ss->heap, h, memory_order_release);
        h->ss_count++;
        h->empty_ss++;
        ss_list_push_front(h, ss);
    }
    unsigned idx = (unsigned)__builtin_ctz(ss->free_mask);
    HK_ASSERT(idx >= 1 && idx < (unsigned)HK_SLABS_PER_SS);
    ss->free_mask &= ~(1u << idx);
    if (ss->used_slabs++ == 0)
        h->empty_ss--;
    if (ss->free_mask == 0)
        ss_list_move_back(h, ss);
    hk_slab_t *s = &ss->slabs[idx];
    slab_format(ss, s, cls);
    class_list_push_front(h, s);
    return s;
}

void *hk_heap_alloc_slow(hk_heap_t *heap, unsigned cls)
{
    if (HK_UNLIKELY(heap == &g_hk_heap_empty)) {
        heap = hk_heap_thread_init();
        if (!heap) {
            errno = ENOMEM;
            return NULL;
        }
    }
    heap_drain_notifications(heap);
    for (;;) {
        hk_slab_t *s = heap->cur[cls];
        if (s == &g_hk_slab_empty) {
            s = heap_new_slab(heap, cls);
            if (!s) {
                errno = ENOMEM;
                return NULL;
            }
        }
        hk_superslab_t *ss = hk_ss_of(s);
        if (s->free || slab_refill(s, ss)) {
            hk_block_t *b = s->free;
            s->free = b->next;
            s->used++;
            HK_ASSERT(s->used <= (int32_t)s->capacity);
            b->tag = 0;
            if (config_debug)
                hk_debug_junk_check(b, s->block_size);
            return b;
        }
        if (!slab_park(heap, s))
            continue; /* remote frees arrived: refill from them */
    }
}

void hk_heap_free_slow_local(hk_heap_t *heap, hk_slab_t *slab)
{
    if (slab->used & HK_USED_PARKED)
        slab_unpark(heap, slab);
    if (slab->used == 0) {
        /* Hysteresis: keep the last slab of a class, so a class that empties
         * and refills in a loop does not churn slabs; in LEAN, not when the
         * footprint is over budget. */
        if (heap->cur[slab->cls] == slab && slab->next == NULL && !(config_lean && ss_should_decommit_slab()))
            return;
        slab_release(heap, hk_ss_of(slab), slab);
    }
}

size_t hk_heap_trim_current(void)
{
    hk_heap_t *h = hk_tls_heap;
    if (!config_lean || h == &g_hk_heap_empty || !ss_mem_lean_enabled() ||
        ss_mem_lean_decommit_mode() == HK_DECOMMIT_OFF)
        return 0;
    int64_t before = HK_GAUGE_GET(bytes_committed);
    for (hk_superslab_t *ss = h->ss_list; ss; ss = ss->next)
        if (ss->pending_decommit)
            slab_flush_pending_decommit(ss);
    int64_t after = HK_GAUGE_GET(bytes_committed);
    return before > after ? (size_t)(before - after) : 0;
}

/* ------------------------------------------------------------------------ */
/* Thread lifecycle. */

hk_heap_t *hk_heap_thread_init(void)
{
    if (hk_global_init() != 0)
        return NULL;
    /* The first init of the process prewarms through this very thread's
     * heap, which it creates on the way: use that one. */
    if (hk_tls_heap != &g_hk_heap_empty)
        return hk_tls_heap;
    hk_heap_t *h = heap_struct_alloc();
    if (!h)
        return NULL;
    heap_reset(h);
    h->alive = 1;
    hk_tls_heap = h;
    hk_thread_register_exit(h);
    return h;
}

/* Thread exit: give every superslab up. Order matters:
 *  1. clear ss->heap, so no new remote free will pick this heap to notify;
 *  2. wait out notifiers that already picked it (NOTIFYING), collect what
 *     was freed remotely, and release the slabs that are empty now;
 *  3. drop the notification stack; the heap struct can then be reused.
 * Superslabs with live blocks are abandoned for another heap to adopt. */
void hk_heap_thread_done(hk_heap_t *h)
{
    if (h == &g_hk_heap_empty || !h->alive)
        return;
    hk_tls_heap = &g_hk_heap_empty;
    for (hk_superslab_t *ss = h->ss_list; ss; ss = ss->next)
        atomic_store_explicit(&ss->heap, NULL, memory_order_seq_cst);
    hk_superslab_t *ss = h->ss_list;
    while (ss) {
        hk_superslab_t *next = ss->next;
        for (int i = 1; i < HK_SLABS_PER_SS; i++) {
            hk_slab_t *s = &ss->slabs[i];
            if (ss->free_mask & (1u << i))
                continue;
            slab_take_over(s);
            if (s->used == 0) {
                slab_clear(s);
                ss->free_mask |= 1u << i;
                ss->used_slabs--;
            }
        }
        ss->next = ss->prev = NULL;
        if (ss->used_slabs == 0)
            superslab_free(ss);
        else
            superslab_abandon(ss);
        ss = next;
    }
    atomic_store_explicit(&h->remote_slabs, NULL, memory_order_relaxed);
    heap_reset(h);
    heap_struct_free(h);
}

/* ------------------------------------------------------------------------ */

void hk_free_misuse(void *p, int kind)
{
    int saved = errno;
    if (kind == HK_MISUSE_DOUBLE)
        hk_report_misuse("double free", p, "block is already free");
    else
        hk_report_misuse("invalid free", p, "not the start of a block hakmem handed out");
    errno = saved;
}

void hk_debug_junk_fill(hk_block_t *b, size_t block_size)
{
    memset((uint8_t *)b + sizeof *b, HK_JUNK_BYTE, block_size - sizeof *b);
}

void hk_debug_junk_check(hk_block_t *b, size_t block_size)
{
    const uint8_t *p = (const uint8_t *)b + sizeof *b;
    for (size_t i = 0; i < block_size - sizeof *b; i++) {
        if (p[i] != HK_JUNK_BYTE) {
            hk_report_misuse("write after free", (uint8_t *)b + sizeof *b + i,
                             "a freed block was modified");
            return;
        }
    }
}

/* The trailer: requested size in the low half, a marker in the high half,
 * so a block allocated without a canary is never mistaken for one. */
#define HK_CANARY_MARK 0x43414e41ull /* "CANA" */

void hk_debug_canary_set(void *p, size_t block_size, size_t size)
{
    uint8_t *b = (uint8_t *)p;
    uint64_t trailer = (HK_CANARY_MARK << 32) | (uint64_t)size;
    memset(b + size, HK_CANARY_BYTE, block_size - 8 - size);
    memcpy(b + block_size - 8, &trailer, 8);
}

size_t hk_debug_canary_check(void *p, size_t block_size)
{
    const uint8_t *b = (const uint8_t *)p;
    uint64_t trailer;
    memcpy(&trailer, b + block_size - 8, 8);
    uint64_t size = trailer & 0xffffffffu;
    if ((trailer >> 32) != HK_CANARY_MARK || size + 16 > block_size) {
        /* Not a canaried block (the largest small sizes have no room for
         * one), or its trailer was overwritten: nothing to check. */
        return block_size;
    }
    for (size_t i = size; i < block_size - 8; i++) {
        if (b[i] != HK_CANARY_BYTE) {
            hk_report_misuse("heap overflow", b + i, "write past the end of a block");
            break;
        }
    }
    return (size_t)size;
}
