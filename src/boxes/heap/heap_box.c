/* heap_box: per-thread heaps and the slow paths of small malloc/free.
 * See heap_box.h for the model. */
#include "hakmem_internal.h"
#include "heap/heap_box.h"
#include "base/diag_box.h"
#include "os/ss_os_acquire_box.h"
#include "os/ss_registry_box.h"
#include "backend/large_box.h"
#include "backend/ss_allocation_box.h"
#include "backend/ss_release_policy_box.h"
#include "base/superslab_stats.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

hk_slab_t g_hk_slab_empty;
#define HK_CUR_EMPTY {[0 ... HK_NUM_CLASSES - 1] = &g_hk_slab_empty}
#define HK_BY_SIZE_EMPTY {[0 ... HK_DIRECT_SLOTS - 1] = &g_hk_slab_empty}
hk_heap_t g_hk_heap_empty = {.by_size = HK_BY_SIZE_EMPTY, .cur = HK_CUR_EMPTY};
hk_heap_t g_hk_heap_exited = {.by_size = HK_BY_SIZE_EMPTY, .cur = HK_CUR_EMPTY};
/* The heap of threads whose own heap is gone (g_hk_heap_exited): no thread
 * has it as hk_tls_heap, so it is only ever used under its lock. */
static hk_heap_t g_shared_heap = {.by_size = HK_BY_SIZE_EMPTY, .cur = HK_CUR_EMPTY, .alive = 1};
#undef HK_CUR_EMPTY
#undef HK_BY_SIZE_EMPTY

__thread hk_tls_t hk_tls = {.heap = &g_hk_heap_empty};
uintptr_t g_hk_key[2];

/* Blocks carved per refill: about a page's worth, so a slab is made
 * resident gradually rather than 64 KiB at once. */
#define HK_CARVE_BYTES 4096
/* Notifications an owner may leave undrained before the thread that sends
 * the next one drains them for it (an owner that stopped allocating). */
#define HK_HELP_AFTER 16
/* Slabs of its class list a dry head looks through for free blocks before
 * it carves fresh ones. */
#define HK_FREE_SEARCH 8
/* Abandoned superslabs a heap adopts at most while it looks for a slab. */
#define HK_ADOPT_PER_SLAB 8

static inline void cpu_relax(void) { __builtin_ia32_pause(); }

/* ------------------------------------------------------------------------ */
/* Heap pool: heap structs live in memory that is never unmapped, because a
 * remote thread may still read a heap pointer it loaded from a superslab
 * (see hk_heap_thread_done for why that read is then harmless). Every
 * struct ever made stays on g_heap_all, which only grows (at its head), so
 * it can be walked without a lock. */

static pthread_mutex_t g_heap_pool_lock = PTHREAD_MUTEX_INITIALIZER;
static hk_heap_t *g_heap_pool;
static hk_heap_t *_Atomic g_heap_all = &g_shared_heap;
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
            atomic_store_explicit(&h->lock, 0, memory_order_relaxed);
            h->all_next = atomic_load_explicit(&g_heap_all, memory_order_relaxed);
            atomic_store_explicit(&g_heap_all, h, memory_order_release);
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

static void heap_reset(hk_heap_t *h)
{
    for (int c = 0; c < HK_NUM_CLASSES; c++) {
        h->cur[c] = &g_hk_slab_empty;
        h->tail[c] = NULL;
    }
    for (int i = 0; i < HK_DIRECT_SLOTS; i++)
        h->by_size[i] = &g_hk_slab_empty;
    atomic_store_explicit(&h->remote_slabs, NULL, memory_order_relaxed);
    atomic_store_explicit(&h->notified, 0, memory_order_relaxed);
    h->ss_list = NULL;
    h->ss_count = 0;
    h->empty_ss = 0;
    h->hold = 0;
    h->foreign = 0;
    __atomic_store_n(&h->pending_since_ms, 0, __ATOMIC_RELAXED);
    h->next_free = NULL;
    h->alive = 0;
}

/* The lock is taken by the owner in its slow paths and by helpers; a
 * foreign holder says so in h->foreign, so that the drain below keeps its
 * hands off the class lists. */
static HK_NOINLINE void heap_lock_wait(hk_heap_t *h)
{
    for (unsigned i = 0;; i++) {
        if (!atomic_load_explicit(&h->lock, memory_order_relaxed) &&
            !atomic_exchange_explicit(&h->lock, 1, memory_order_acquire))
            return;
        if (i < 100)
            cpu_relax();
        else
            sched_yield(); /* the holder may be descheduled, or in a syscall */
    }
}
static inline void heap_lock(hk_heap_t *h)
{
    if (HK_UNLIKELY(atomic_exchange_explicit(&h->lock, 1, memory_order_acquire)))
        heap_lock_wait(h);
}
static inline bool heap_trylock(hk_heap_t *h)
{
    return !atomic_load_explicit(&h->lock, memory_order_relaxed) &&
           !atomic_exchange_explicit(&h->lock, 1, memory_order_acquire);
}
static inline void heap_unlock(hk_heap_t *h) { atomic_store_explicit(&h->lock, 0, memory_order_release); }

/* ------------------------------------------------------------------------ */
/* Fork. A remote free that moved a slab to NOTIFYING finishes its
 * notification before fork() may go on: in the child that thread is gone,
 * and every owner path that meets the slab would wait for it forever. The
 * gate is a Dekker pair: a notifier announces itself, then looks for a
 * fork; fork_prepare announces the fork, then waits for notifiers. */

static _Atomic int g_notifiers;
static _Atomic int g_fork_pending;

static void notify_begin(void)
{
    for (;;) {
        atomic_fetch_add(&g_notifiers, 1);
        if (!atomic_load(&g_fork_pending))
            return;
        atomic_fetch_sub(&g_notifiers, 1);
        while (atomic_load(&g_fork_pending))
            sched_yield();
    }
}

static void notify_end(void) { atomic_fetch_sub(&g_notifiers, 1); }

/* Lock order: pool lock, heap locks (list order), then the superslab box's
 * and the large box's locks (thread_box takes those after these). */
void hk_heap_fork_prepare(void)
{
    pthread_mutex_lock(&g_heap_pool_lock);
    for (hk_heap_t *h = atomic_load(&g_heap_all); h; h = h->all_next)
        heap_lock(h);
    atomic_store(&g_fork_pending, 1);
    while (atomic_load(&g_notifiers))
        cpu_relax();
}

void hk_heap_fork_parent(void)
{
    atomic_store(&g_fork_pending, 0);
    for (hk_heap_t *h = atomic_load(&g_heap_all); h; h = h->all_next)
        heap_unlock(h);
    pthread_mutex_unlock(&g_heap_pool_lock);
}

/* The other threads' heaps stay as they were (their memory is leaked in the
 * child, safely: nothing waits for those threads, and their slabs still
 * take frees); every lock is new. */
void hk_heap_fork_child(void)
{
    atomic_store(&g_notifiers, 0);
    atomic_store(&g_fork_pending, 0);
    for (hk_heap_t *h = atomic_load(&g_heap_all); h; h = h->all_next)
        atomic_store_explicit(&h->lock, 0, memory_order_relaxed);
    /* The forking thread holds it (prepare): unlock, do not re-initialise
     * a locked mutex (undefined). */
    pthread_mutex_unlock(&g_heap_pool_lock);
}

/* ------------------------------------------------------------------------ */
/* Class lists (owner only). A slab is either on its class list or parked
 * full (HK_USED_PARKED set in used); the list head is where malloc pops from. */

/* The head of class cls is now s: in cur[] and in the entries of by_size[]
 * whose sizes fall in the class (those of sizes in (size of cls - 1, size
 * of cls], every class size being a multiple of 16; none above
 * HK_DIRECT_MAX). */
static void class_head_set(hk_heap_t *h, unsigned cls, hk_slab_t *s)
{
    h->cur[cls] = s;
    size_t lo = cls ? g_hk_class_size[cls - 1] / 16 + 1 : 0;
    size_t hi = g_hk_class_size[cls] / 16;
    for (size_t i = lo; i <= hi && i < HK_DIRECT_SLOTS; i++)
        h->by_size[i] = s;
}

static void class_list_push_front(hk_heap_t *h, hk_slab_t *s)
{
    hk_slab_t *head = h->cur[s->cls];
    s->prev = NULL;
    s->next = head == &g_hk_slab_empty ? NULL : head;
    if (s->next)
        s->next->prev = s;
    else
        h->tail[s->cls] = s;
    class_head_set(h, s->cls, s);
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
    else
        h->tail[s->cls] = s;
    head->next = s;
}

static void class_list_remove(hk_heap_t *h, hk_slab_t *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        class_head_set(h, s->cls, s->next ? s->next : &g_hk_slab_empty);
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
static void class_list_head_to_tail(hk_heap_t *h, hk_slab_t *s)
{
    HK_ASSERT(h->cur[s->cls] == s && s->next);
    hk_slab_t *tail = h->tail[s->cls];
    class_head_set(h, s->cls, s->next);
    s->next->prev = NULL;
    s->prev = tail;
    s->next = NULL;
    tail->next = s;
    h->tail[s->cls] = s;
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

/* Owner: take the slab's remote-freed blocks onto its free list; false if
 * there were none. Waits out a notifier, so that once the owner has taken
 * every block no other thread is still touching this slab's metadata. The
 * state bits are kept. */
static bool slab_take_remote(hk_slab_t *s)
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
    return true;
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
        uintptr_t nw = HK_TF_WITHOUT_STATE(old) | state;
        if (atomic_compare_exchange_weak_explicit(&s->thread_free, &old, nw, memory_order_acq_rel,
                                                  memory_order_relaxed))
            return;
    }
}

static void heap_help(hk_heap_t *h);
/* The shared heap has no owner thread (no fast path ever uses it): who
 * holds its lock may do all of an owner's work. */
static inline bool heap_has_owner(const hk_heap_t *h) { return h != &g_shared_heap; }
static bool heap_adopt_on_free(hk_superslab_t *ss, hk_block_t *b);

/* Frees into abandoned superslabs that a thread made without adopting:
 * every HK_ORPHAN_RECLAIM_EVERY of them it collects what was freed into a
 * few abandoned superslabs and gives back those now empty, so memory freed
 * into an exited thread's superslabs comes back while the frees go on. */
#define HK_ORPHAN_RECLAIM_EVERY 256
#define HK_ORPHAN_RECLAIM_SS 2
static __thread uint32_t hk_tls_orphan_frees;
static bool ss_collect_orphan(hk_superslab_t *ss);

static HK_NOINLINE void orphan_free_tick(void)
{
    if (++hk_tls_orphan_frees % HK_ORPHAN_RECLAIM_EVERY == 0)
        superslab_reclaim_abandoned(ss_collect_orphan, HK_ORPHAN_RECLAIM_SS, false);
}

void hk_heap_free_remote(hk_block_t *b, hk_heap_t *owner)
{
    hk_superslab_t *ss = hk_ss_of(b);
    /* No owner: the superslab was abandoned (or its thread is exiting right
     * now). A thread whose heap needs memory takes it over, so that what it
     * frees there is reused at once; other threads free remotely and now
     * and then collect a few abandoned superslabs (orphan_free_tick). */
    bool orphan = owner == NULL;
    if (HK_UNLIKELY(orphan) && heap_adopt_on_free(ss, b))
        return;
    hk_slab_t *slab = hk_slab_of(ss, (uintptr_t)b);
    uintptr_t t = b->tag; /* hk_block_secret(b): the fast path just set it */
    uintptr_t old = atomic_load_explicit(&slab->thread_free, memory_order_relaxed);
    bool gated = false;
    for (;;) {
        uintptr_t st = HK_TF_STATE(old);
        if (st == HK_TF_FULL && !gated) {
            /* This free may become a notification: pass the fork gate first. */
            notify_begin();
            gated = true;
            old = atomic_load_explicit(&slab->thread_free, memory_order_relaxed);
            continue;
        }
        b->link = hk_link_encode(b, t, HK_TF_LIST(old));
        uintptr_t count = (uintptr_t)HK_TF_COUNT(old) + 1;
        uintptr_t nw = (uintptr_t)b | count << HK_TF_COUNT_SHIFT | (st == HK_TF_FULL ? HK_TF_NOTIFYING : st);
        /* Acquire too: the FULL we may see was set by a helper (re-arming
         * a parked slab in heap_drain_notifications) after it read
         * slab->remote_next; our write of remote_next below must come after
         * that read. */
        if (atomic_compare_exchange_weak_explicit(&slab->thread_free, &old, nw, memory_order_acq_rel,
                                                  memory_order_relaxed))
            break;
    }
    if (HK_TF_STATE(old) != HK_TF_FULL) {
        /* The common case: nothing of the slab is touched after the CAS. */
        if (gated)
            notify_end();
        if (HK_UNLIKELY(orphan))
            orphan_free_tick();
        return;
    }

    /* We moved the slab FULL -> NOTIFYING: tell its owner, then clear the
     * state. While NOTIFYING, the owner cannot take our block, so the slab
     * (and its superslab) cannot be released under us. */
    hk_heap_t *h = atomic_load_explicit(&ss->heap, memory_order_acquire);
    bool help = false;
    if (h) {
        hk_slab_t *head = atomic_load_explicit(&h->remote_slabs, memory_order_relaxed);
        do {
            slab->remote_next = head;
        } while (!atomic_compare_exchange_weak_explicit(&h->remote_slabs, &head, slab, memory_order_release,
                                                        memory_order_relaxed));
        help = atomic_fetch_add_explicit(&h->notified, 1, memory_order_relaxed) + 1 >= HK_HELP_AFTER;
    }
    old = atomic_load_explicit(&slab->thread_free, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&slab->thread_free, &old, HK_TF_WITHOUT_STATE(old),
                                                  memory_order_release, memory_order_relaxed))
        ;
    notify_end();
    /* The owner has let notifications pile up: it is idle (or busy
     * elsewhere). Do its work, if nobody holds its lock. A heap struct is
     * never unmapped, so h is safe to touch even if its thread has gone. */
    if (help)
        heap_help(h);
}

/* Owner: a parked slab has free blocks again: back onto its class list.
 * Its thread_free state may still say FULL: the next remote free then
 * sends one needless notification (ignored by heap_drain_notifications,
 * since the slab is no longer parked) and the state becomes NORMAL. That is
 * cheaper than a CAS here. */
static void slab_unpark(hk_heap_t *h, hk_slab_t *s)
{
    hk_slab_used_set(s, hk_slab_used(s) & ~HK_USED_PARKED);
    s->parked = 0;
    class_list_insert_second(h, s);
}

static void slab_release(hk_heap_t *h, hk_superslab_t *ss, hk_slab_t *s);
static void heap_trim_empty(hk_heap_t *h, unsigned keep);
static void heap_release_idle_superslab(hk_heap_t *h, hk_superslab_t *ss);

/* Handle the notification stack (lock held). The owner puts slabs with
 * free blocks back on their class lists; a helper (h->foreign) must not
 * touch class lists, so it re-arms them instead (still parked, FULL: the
 * next remote free notifies again). Either gives back slabs now empty. */
static void heap_drain_notifications(hk_heap_t *h)
{
    if (!atomic_load_explicit(&h->remote_slabs, memory_order_relaxed))
        return;
    /* While the list is walked, no superslab may go back to the OS: a slab
     * further down the list may belong to it. */
    h->hold++;
    atomic_store_explicit(&h->notified, 0, memory_order_relaxed);
    hk_slab_t *s = atomic_exchange_explicit(&h->remote_slabs, NULL, memory_order_acquire);
    while (s) {
        hk_slab_t *next = s->remote_next;
        hk_superslab_t *ss = hk_ss_of(s);
        if (atomic_load_explicit(&ss->heap, memory_order_relaxed) == h && s->parked) {
            slab_take_remote(s);
            if ((hk_slab_used(s) & ~HK_USED_PARKED) == 0)
                slab_release(h, ss, s);
            else if (h->foreign)
                slab_set_tf_state(s, HK_TF_FULL);
            else
                slab_unpark(h, s);
        }
        s = next;
    }
    h->hold--;
    heap_trim_empty(h, ss_release_heap_keep_empty());
}

/* Hysteresis: in FAST a heap keeps one empty superslab for its next slabs;
 * more (in LEAN, all) go to superslab_free(), where the release policy
 * decides. The notification stack is emptied first: a superslab given
 * back must not be reachable from it. */
static bool heap_free_empty(hk_heap_t *h, unsigned keep)
{
    if (h->hold || h->empty_ss <= keep)
        return false;
    heap_drain_notifications(h);
    if (h->hold || h->empty_ss <= keep)
        return false;
    bool freed = false;
    hk_superslab_t *ss = h->ss_list;
    while (ss && h->empty_ss > keep) {
        hk_superslab_t *next = ss->next;
        if (ss->used_slabs == 0) {
            h->empty_ss--;
            h->ss_count--;
            ss_list_remove(h, ss);
            superslab_free(ss);
            freed = true;
        }
        ss = next;
    }
    return freed;
}

static void heap_trim_empty(hk_heap_t *h, unsigned keep)
{
    /* LEAN: once a release has made the program shrinking, superslabs
     * that only the empty slabs kept by their classes hold go back too.
     * Those slabs may have emptied before the shrink began, so no free
     * into them comes to release them; the burst's slabs around them
     * would otherwise wait to be given back one batch at a time. */
    if (heap_free_empty(h, keep) && config_lean && !h->foreign && ss_release_idle_superslab()) {
        h->hold++;
        for (hk_superslab_t *ss = h->ss_list, *next; ss; ss = next) {
            next = ss->next; /* a release moves ss to the front */
            if (ss->used_slabs)
                heap_release_idle_superslab(h, ss);
        }
        h->hold--;
        heap_free_empty(h, keep);
    }
}

/* ------------------------------------------------------------------------ */
/* Slabs. */

static void slab_format(hk_superslab_t *ss, hk_slab_t *s, unsigned cls)
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

/* Bits first .. first + n - 1. */
static inline uint32_t m_run(unsigned first, unsigned n) { return ((n < 32 ? (1u << n) : 0u) - 1u) << first; }

/* LEAN: give back the pages of every unused slab of the superslab that
 * still has them (the pending ones and any other unused one), one madvise
 * per run of adjacent slabs: all of them are free, and longer runs mean
 * fewer syscalls. */
static void slab_give_back_unused(hk_superslab_t *ss, int (*give_back)(void *ptr, size_t size))
{
    uint32_t m = ss->free_mask & HK_SS_ALL_SLABS_FREE;
    for (int i = 1; i < HK_SLABS_PER_SS; i++)
        if (ss->slabs[i].decommitted)
            m &= ~(1u << i);
    ss->pending_decommit = 0;
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

/* LEAN: the pages of every unused slab go back with LEAN's strategy. */
static void slab_flush_pending_decommit(hk_superslab_t *ss) { slab_give_back_unused(ss, ss_maybe_decommit_superslab); }

/* LEAN: give back every slab of the heap still waiting, if the first has
 * waited long enough (ss_release_settled; or at once: force). Lock held. Any path
 * that holds the lock calls this: the owner's slow paths, helpers,
 * malloc_trim; so slabs do not wait for a later release in their own
 * superslab. */
static void heap_flush_pending(hk_heap_t *h, bool force)
{
    if (!config_lean || !h->pending_since_ms)
        return;
    if (!force && !ss_release_settled(h->pending_since_ms, (uint32_t)ss_release_now_ms()))
        return;
    __atomic_store_n(&h->pending_since_ms, 0, __ATOMIC_RELAXED);
    for (hk_superslab_t *ss = h->ss_list; ss; ss = ss->next)
        if (ss->pending_decommit)
            slab_flush_pending_decommit(ss);
}

/* From any thread's slow path (every 64th of a thread), at most every
 * settle interval for the whole process: work nobody else would do soon.
 * LEAN: help other heaps with decommits waiting whose lock is free (an
 * owner that went idle right after freeing): heap_help. Every build: collect what was
 * freed into a few abandoned superslabs, and give back those now empty
 * (a thread without a heap of its own freed an exited thread's blocks). */
#define HK_SWEEP_EVERY 64
#define HK_SWEEP_ABANDONED 8
static _Atomic uint32_t g_next_sweep_ms;
static __thread uint32_t hk_tls_slow_calls;

/* The purge delay for the empty superslabs a heap keeps for its next
 * slabs (FAST keeps one): those idle since longer go to superslab_free(),
 * which caches them with that time, so the cache's purge releases them
 * in the same pass. Any thread, under the heap's lock (trylock: a busy
 * heap is not idle). */
static _Atomic int64_t g_last_heap_purge_ms;

static void heap_purge_empty(hk_heap_t *self, int64_t now)
{
    if (!ss_purge_pass_claim(&g_last_heap_purge_ms, now))
        return;
    for (hk_heap_t *h = atomic_load_explicit(&g_heap_all, memory_order_acquire); h; h = h->all_next) {
        if (!heap_trylock(h))
            continue;
        if (h->alive && !h->hold) {
            h->foreign = h != self && heap_has_owner(h);
            /* A superslab given back must not be reachable from the
             * notification stack: drain it first, but only then (a drain
             * may release superslabs: before the walk, not in it). */
            for (hk_superslab_t *ss = h->ss_list; ss; ss = ss->next)
                if (ss->used_slabs == 0 && ss_purge_due(ss->cached_since_ms, now)) {
                    heap_drain_notifications(h);
                    break;
                }
            for (hk_superslab_t *ss = h->ss_list, *next; ss && !h->hold; ss = next) {
                next = ss->next;
                /* Unused slabs of a superslab still in use (a few live
                 * blocks, or the empty slab a class keeps, hold it): their
                 * pages go back too, the range stays. */
                if (ss->used_slabs && ss->slab_idle_ms &&
                    ss->decommitted_slabs < (uint32_t)HK_SLABS_PER_SS - 1 - ss->used_slabs &&
                    ss_purge_due(ss->slab_idle_ms, now)) {
                    slab_give_back_unused(ss, ss_release_purge_pages);
                    ss->slab_idle_ms = 0; /* until a slab is given up again */
                }
                if (ss->used_slabs == 0 && ss_purge_due(ss->cached_since_ms, now)) {
                    h->empty_ss--;
                    h->ss_count--;
                    ss_list_remove(h, ss);
                    superslab_free(ss);
                }
            }
            h->foreign = 0;
        }
        heap_unlock(h);
    }
}

void hk_heap_purge_empty(int64_t now) { heap_purge_empty(hk_tls_heap, now); }

/* The front's purge tick (hk_heap_set_idle_tick). */
static void (*_Atomic g_idle_tick)(void);

static void heap_sweep_work(hk_heap_t *self)
{
    superslab_reclaim_abandoned(ss_collect_orphan, HK_SWEEP_ABANDONED, false);
    if (!config_lean)
        return;
    for (hk_heap_t *h = atomic_load_explicit(&g_heap_all, memory_order_acquire); h; h = h->all_next)
        if (h != self && __atomic_load_n(&h->pending_since_ms, __ATOMIC_RELAXED))
            heap_help(h);
}

/* The sweep also applies the purge delay (hk_idle_tick: a pass only when
 * the release policy says one is due) and starts the background thread if
 * it was asked for and is not running here (a child after fork). */
static void heap_sweep(hk_heap_t *self)
{
    if (++hk_tls_slow_calls % HK_SWEEP_EVERY != 0)
        return;
    uint32_t now = (uint32_t)ss_release_now_ms();
    uint32_t next = atomic_load_explicit(&g_next_sweep_ms, memory_order_relaxed);
    if ((int32_t)(now - next) < 0 ||
        !atomic_compare_exchange_strong(&g_next_sweep_ms, &next, now + SS_RELEASE_SETTLE_MS))
        return;
    heap_sweep_work(self);
    void (*tick)(void) = atomic_load_explicit(&g_idle_tick, memory_order_acquire);
    if (tick)
        tick();
}

void hk_heap_set_idle_tick(void (*tick)(void)) { atomic_store_explicit(&g_idle_tick, tick, memory_order_release); }

void hk_heap_idle_work(void) { heap_sweep_work(NULL); }

/* Taking a slab over (adoption, its own thread's exit, malloc_trim of an
 * abandoned superslab): no notification is pending or wanted any more, and
 * every remote-freed block is back on the free list. */
static void slab_take_over(hk_slab_t *s)
{
    slab_set_tf_state(s, HK_TF_NORMAL);
    hk_slab_used_set(s, hk_slab_used(s) & ~HK_USED_PARKED);
    s->parked = 0;
    slab_take_remote(s);
    s->next = s->prev = NULL;
}

/* Forget a slab's class: every free into it is refused from now on. */
static void slab_clear(hk_slab_t *s)
{
    __atomic_store_n(&s->div_magic, 0, __ATOMIC_RELAXED);
    s->block_size = 0;
    s->capacity = 0;
    s->reserved = 0;
    __atomic_store_n(&s->carved_limit, 0, __ATOMIC_RELAXED);
    s->free = NULL;
    s->parked = 0;
    hk_slab_used_set(s, 0);
}

/* Hand a slab with no live block back to its superslab. */
static void slab_release(hk_heap_t *h, hk_superslab_t *ss, hk_slab_t *s)
{
    HK_ASSERT((hk_slab_used(s) & ~HK_USED_PARKED) == 0);
    HK_ASSERT(atomic_load_explicit(&ss->heap, memory_order_relaxed) == h);
    HK_ASSERT(!(ss->free_mask & (1u << s->index)) && ss->used_slabs > 0);
    if (!s->parked)
        class_list_remove(h, s);
    slab_clear(s);
    bool had_none_free = ss->free_mask == 0;
    ss->free_mask |= 1u << s->index;
    ss->slab_idle_ms = ss_release_now_ms(); /* the purge delay */
    /* LEAN over budget: the slab's pages go back (unless the whole
     * superslab is about to be released anyway), in batches once the first
     * has settled (ss_release_batch_due), so that a large free costs about
     * one syscall per superslab, not one per slab; what is left waiting is
     * flushed by heap_flush_pending() once it is due. */
    if (config_lean && ss->used_slabs > 1 && ss_should_decommit_slab()) {
        uint32_t now = (uint32_t)ss_release_now_ms();
        if (!ss->pending_decommit)
            ss->pending_since_ms = now;
        if (!h->pending_since_ms)
            __atomic_store_n(&h->pending_since_ms, now | 1, __ATOMIC_RELAXED);
        ss->pending_decommit |= 1u << s->index;
        /* A superslab that is draining fast (a large free in progress) is
         * about to be released whole, in one call: give it a moment. */
        if (ss_release_batch_due(ss->pending_decommit, ss->pending_since_ms, now))
            slab_flush_pending_decommit(ss);
    }
    if (had_none_free) {
        ss_list_remove(h, ss);
        ss_list_push_front(h, ss);
    }
    if (--ss->used_slabs == 0) {
        h->empty_ss++;
        ss->cached_since_ms = ss_release_now_ms(); /* idle from now: the purge delay */
        heap_trim_empty(h, ss_release_heap_keep_empty());
    }
}

/* Carve up to a page's worth of fresh blocks onto the free list. Each
 * carved block carries the free tag: free() of a block that was carved but
 * never handed out is then a double free, not a second copy on the list. */
static bool slab_carve(hk_slab_t *s, hk_superslab_t *ss)
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
    hk_block_t *b = (hk_block_t *)start;
    for (uint32_t i = 1; i < n; i++) {
        hk_block_t *nx = (hk_block_t *)(start + (size_t)i * s->block_size);
        uintptr_t t = hk_block_secret(b);
        b->link = hk_link_encode(b, t, nx);
        b->tag = t;
        b = nx;
    }
    uintptr_t t = hk_block_secret(b);
    b->link = hk_link_encode(b, t, s->free);
    b->tag = t;
    s->free = (hk_block_t *)start;
    if (config_debug) {
        for (uint32_t i = 0; i < n; i++)
            hk_debug_junk_fill((hk_block_t *)(start + (size_t)i * s->block_size), s->block_size);
    }
    s->reserved = (uint16_t)(s->reserved + n);
    /* Read by other threads' frees (hk_slab_is_block_start). */
    __atomic_store_n(&s->carved_limit, (uintptr_t)start + (size_t)n * s->block_size, __ATOMIC_RELEASE);
    return true;
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
    hk_slab_used_set(s, hk_slab_used(s) | HK_USED_PARKED);
    s->parked = 1;
    return true;
}

/* Take over an abandoned superslab (lock held): collect what other threads
 * freed into it, release slabs that are empty now, and list the rest. No
 * superslab leaves the heap during the walk (hold): a release in the
 * middle would let the superslab be unmapped, or taken by another heap,
 * while we still walk its slabs. */
static void heap_adopt(hk_heap_t *h, hk_superslab_t *ss)
{
    atomic_store_explicit(&ss->heap, h, memory_order_seq_cst);
    h->ss_count++;
    ss_list_push_front(h, ss);
    if (ss->pending_decommit && !h->pending_since_ms)
        __atomic_store_n(&h->pending_since_ms, (uint32_t)ss_release_now_ms() | 1, __ATOMIC_RELAXED);
    h->hold++;
    if (ss->used_slabs == 0)
        h->empty_ss++;
    for (int i = 1; i < HK_SLABS_PER_SS; i++) {
        hk_slab_t *s = &ss->slabs[i];
        if (ss->free_mask & (1u << i))
            continue;
        slab_take_over(s);
        class_list_insert_second(h, s);
        if (hk_slab_used(s) == 0)
            slab_release(h, ss, s);
    }
    if (ss->free_mask == 0)
        ss_list_move_back(h, ss);
    h->hold--;
    heap_trim_empty(h, ss_release_heap_keep_empty());
}

/* A thread with a heap frees into an abandoned superslab: adopt it and free
 * the block locally. false if it cannot (no heap of its own, or another
 * thread took the superslab first): the caller frees remotely. */
static void slab_free_locked(hk_heap_t *h, hk_slab_t *slab, hk_block_t *b);

static bool heap_adopt_on_free(hk_superslab_t *ss, hk_block_t *b)
{
    hk_heap_t *h = hk_tls_heap;
    if (h == &g_hk_heap_empty || h == &g_hk_heap_exited)
        return false;
    heap_lock(h);
    /* Only a heap without unused slabs of its own takes it (we hold a live
     * block of ss, so it cannot be released meanwhile): a heap that adopted
     * whatever it freed into would hoard superslabs of unused slabs while
     * the others map new ones (a server whose threads are replaced ran at
     * 4 x the peak RSS that way). */
    bool taken = (!h->ss_list || h->ss_list->free_mask == 0) && superslab_adopt_this(ss);
    if (taken) {
        h->hold++;
        heap_adopt(h, ss);
        slab_free_locked(h, hk_slab_of(ss, (uintptr_t)b), b);
        h->hold--;
        heap_trim_empty(h, ss_release_heap_keep_empty());
    }
    heap_unlock(h);
    return taken;
}

/* A fresh slab for class cls, from an owned superslab with an unused slab,
 * else an adopted or new superslab. NULL when out of memory. */
static hk_slab_t *heap_new_slab(hk_heap_t *h, unsigned cls)
{
    /* An unused slab whose pages are still resident first (it served a
     * class before and was not given back): a slab in a fresh place would
     * touch new pages while the old ones stay resident, and a steady
     * program whose slabs come and go would grow until every slab of its
     * superslabs had been touched once. The superslabs with unused slabs
     * come first on the list. */
    hk_superslab_t *ss = h->ss_list;
    for (hk_superslab_t *t = ss; t && t->free_mask; t = t->next)
        if (t->free_mask & t->touched_mask) {
            ss = t;
            break;
        }
    /* No unused slab of our own: abandoned superslabs first (a few, each
     * with its unused slabs and partly free slabs of every class), then a
     * new one. */
    for (int n = 0; n < HK_ADOPT_PER_SLAB && (!ss || ss->free_mask == 0); n++) {
        hk_superslab_t *adopted = superslab_adopt();
        if (!adopted)
            break;
        heap_adopt(h, adopted);
        if (h->cur[cls] != &g_hk_slab_empty)
            return h->cur[cls];
        ss = h->ss_list;
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
    uint32_t warm = ss->free_mask & ss->touched_mask;
    unsigned idx = (unsigned)__builtin_ctz(warm ? warm : ss->free_mask);
    HK_ASSERT(idx >= 1 && idx < (unsigned)HK_SLABS_PER_SS);
    ss->free_mask &= ~(1u << idx);
    if (ss->used_slabs++ == 0) {
        h->empty_ss--;
        ss->cached_since_ms = 0; /* in use again */
    }
    if (ss->free_mask == 0)
        ss_list_move_back(h, ss);
    hk_slab_t *s = &ss->slabs[idx];
    slab_format(ss, s, cls);
    class_list_push_front(h, s);
    return s;
}

static void *heap_alloc_locked(hk_heap_t *heap, unsigned cls)
{
    heap_drain_notifications(heap);
    heap_flush_pending(heap, false);
    bool rotated = false;
    for (;;) {
        hk_slab_t *s = heap->cur[cls];
        if (s == &g_hk_slab_empty) {
            s = heap_new_slab(heap, cls);
            if (!s)
                return NULL;
        }
        hk_superslab_t *ss = hk_ss_of(s);
        if (!s->free && !slab_take_remote(s) && s->reserved < s->capacity) {
            /* Before carving fresh blocks (and touching a fresh page),
             * a slab further down the list that has free blocks takes
             * over: else each slab that happens to be at the head when its
             * neighbour is dry too would carve, until every slab of the
             * class was carved whole, and a steady program's pages would
             * creep up to that. */
            hk_slab_t *w = s->next;
            for (int n = 0; w && !w->free && n < HK_FREE_SEARCH; n++)
                w = w->next;
            if (w && w->free) {
                class_list_remove(heap, w);
                class_list_push_front(heap, w);
                return hk_slab_pop(w, w->free);
            }
        }
        if (s->free || slab_carve(s, ss)) {
            HK_ASSERT(hk_slab_used(s) < (int32_t)s->capacity);
            return hk_slab_pop(s, s->free);
        }
        /* Exhausted. The first such slab of this call goes to the back of
         * the list; one that comes round still exhausted is parked (off
         * the list until a free gives it blocks). So each call does at
         * most one rotation, and parks a slab at most once. */
        if (!rotated && s->next) {
            class_list_head_to_tail(heap, s);
            rotated = true;
            continue;
        }
        if (!slab_park(heap, s))
            continue; /* remote frees arrived: refill from them */
    }
}

void *hk_heap_alloc_slow(hk_heap_t *heap, unsigned cls, hk_thread_start_t start)
{
    /* The head ran dry and the next slab of the class has blocks: it takes
     * over, without the lock (class lists and the slabs on them are the
     * owner's; a heap with no owner has no slab on any list). */
    hk_slab_t *head = heap->cur[cls];
    hk_slab_t *next = head->next; /* NULL for g_hk_slab_empty */
    if (next && next->free) {
        class_list_head_to_tail(heap, head);
        return hk_slab_pop(next, next->free);
    }
    if (HK_UNLIKELY(heap == &g_hk_heap_empty)) {
        heap = start();
        if (!heap) {
            errno = ENOMEM;
            return NULL;
        }
    } else if (HK_UNLIKELY(heap == &g_hk_heap_exited)) {
        heap = &g_shared_heap;
    }
    heap_lock(heap);
    void *p = heap_alloc_locked(heap, cls);
    heap_unlock(heap);
    if (HK_UNLIKELY(!p) && hk_release_cached() > 0) {
        /* The OS refused a superslab: cached ranges hold address space
         * (RLIMIT_AS) that a retry can use. */
        heap_lock(heap);
        p = heap_alloc_locked(heap, cls);
        heap_unlock(heap);
    }
    heap_sweep(heap);
    if (!p)
        errno = ENOMEM;
    return p;
}

/* LEAN, shrinking: a superslab whose slabs are all empty, kept only as the
 * last slab of their classes, goes back whole: the kept slabs would
 * otherwise pin 2 MiB for a few classes that may never be used again (a
 * burst freed at once). The policy says when (ss_release_idle_superslab);
 * it is asked when a kept slab empties, and for every superslab of the
 * heap when one is released (heap_trim_empty). Owner only (class lists). */
static void heap_release_idle_superslab(hk_heap_t *h, hk_superslab_t *ss)
{
    for (int i = 1; i < HK_SLABS_PER_SS; i++)
        if (!(ss->free_mask & (1u << i)) && (hk_slab_used(&ss->slabs[i]) & ~HK_USED_PARKED) != 0)
            return; /* a live block: the superslab stays anyway */
    h->hold++;
    for (int i = 1; i < HK_SLABS_PER_SS; i++)
        if (!(ss->free_mask & (1u << i)) && !ss->slabs[i].parked)
            slab_release(h, ss, &ss->slabs[i]);
    h->hold--;
    heap_trim_empty(h, ss_release_heap_keep_empty());
}

/* A free into a slab the owner holds the lock of: the fast path's work, and
 * what follows when the slab was parked or is now empty. */
static void slab_free_locked(hk_heap_t *h, hk_slab_t *slab, hk_block_t *b)
{
    int32_t used = hk_slab_used(slab);
    if (HK_UNLIKELY((used & ~HK_USED_PARKED) == 0)) {
        /* No block of the slab is out: this one cannot be live. */
        hk_free_misuse(b, HK_MISUSE_DOUBLE);
        return;
    }
    b->link = hk_link_encode(b, b->tag, slab->free);
    slab->free = b;
    hk_slab_used_set(slab, used - 1);
    if (slab->parked)
        slab_unpark(h, slab);
    if (hk_slab_used(slab) == 0) {
        /* Hysteresis: keep the last slab of a class, so a class that empties
         * and refills in a loop does not churn slabs; in LEAN, not when the
         * footprint is over budget, nor when only such kept slabs would
         * hold their superslab of a shrinking program
         * (heap_release_idle_superslab). */
        hk_superslab_t *ss = hk_ss_of(slab);
        if (h->cur[slab->cls] == slab && slab->next == NULL && !(config_lean && ss_should_decommit_slab())) {
            if (config_lean && ss_release_idle_superslab())
                heap_release_idle_superslab(h, ss);
            return;
        }
        slab_release(h, ss, slab);
    }
}

void hk_heap_free_slow_local(hk_heap_t *heap, hk_slab_t *slab, hk_block_t *b)
{
    heap_lock(heap);
    slab_free_locked(heap, slab, b);
    heap_flush_pending(heap, false);
    heap_unlock(heap);
}

/* Do an owner's work for it (trylock: never wait for a busy owner). */
static void heap_help(hk_heap_t *h)
{
    if (!heap_trylock(h))
        return;
    if (h->alive) {
        h->foreign = heap_has_owner(h);
        heap_drain_notifications(h);
        heap_flush_pending(h, false);
        h->foreign = 0;
    }
    heap_unlock(h);
}

/* An abandoned superslab, owned by whoever holds it off the abandoned list:
 * collect what was freed into it, forget the slabs now empty (LEAN over
 * budget: give their pages back). True if no slab is in use any more. */
static bool ss_collect_orphan(hk_superslab_t *ss)
{
    for (int i = 1; i < HK_SLABS_PER_SS; i++) {
        hk_slab_t *s = &ss->slabs[i];
        if (ss->free_mask & (1u << i))
            continue;
        slab_take_over(s);
        if (hk_slab_used(s) == 0) {
            slab_clear(s);
            ss->free_mask |= 1u << i;
            ss->used_slabs--;
        }
    }
    if (config_lean && ss->used_slabs && (ss->pending_decommit || ss_should_decommit_slab()))
        slab_flush_pending_decommit(ss);
    return ss->used_slabs == 0;
}

/* malloc_trim, owner only (class lists): the empty slab each class keeps
 * for hysteresis goes back too, or it would pin its superslab. */
static void heap_release_kept_slabs(hk_heap_t *h)
{
    h->hold++;
    for (int c = 0; c < HK_NUM_CLASSES; c++) {
        for (hk_slab_t *s = h->cur[c]; s && s != &g_hk_slab_empty;) {
            hk_slab_t *next = s->next;
            if (hk_slab_used(s) == 0)
                slab_release(h, hk_ss_of(s), s);
            s = next;
        }
    }
    h->hold--;
}

size_t hk_heap_trim_all(void)
{
    int64_t before = HK_GAUGE_GET(bytes_committed);
    hk_heap_t *self = hk_tls_heap;
    for (hk_heap_t *h = atomic_load_explicit(&g_heap_all, memory_order_acquire); h; h = h->all_next) {
        heap_lock(h);
        if (h->alive) {
            h->foreign = h != self && heap_has_owner(h);
            heap_drain_notifications(h);
            if (!h->foreign)
                heap_release_kept_slabs(h);
            heap_flush_pending(h, true);
            heap_trim_empty(h, 0);
            h->foreign = 0;
        }
        heap_unlock(h);
    }
    superslab_reclaim_abandoned(ss_collect_orphan, UINT32_MAX, true);
    int64_t after = HK_GAUGE_GET(bytes_committed);
    return before > after ? (size_t)(before - after) : 0;
}

/* ------------------------------------------------------------------------ */
/* Thread lifecycle. */

hk_heap_t *hk_heap_thread_init(void)
{
    hk_heap_t *h = heap_struct_alloc();
    if (!h)
        return NULL;
    heap_lock(h);
    heap_reset(h);
    h->alive = 1;
    heap_unlock(h);
    hk_tls_heap = h;
    return h;
}

/* Thread exit: give every superslab up. Order matters:
 *  1. clear ss->heap, so no new remote free will pick this heap to notify;
 *  2. wait out notifiers that already picked it (NOTIFYING), collect what
 *     was freed remotely, and release the slabs that are empty now;
 *  3. drop the notification stack; the heap struct can then be reused.
 * Superslabs with live blocks are abandoned for another heap to adopt.
 * Whatever the thread allocates after this (a later thread-specific-data
 * destructor) comes from the shared heap: a new heap of its own would never
 * be given back, since no destructor round may follow. */
void hk_heap_thread_done(hk_heap_t *h)
{
    if (h == &g_hk_heap_empty || h == &g_hk_heap_exited || !h->alive)
        return;
    hk_tls_heap = &g_hk_heap_exited;
    heap_lock(h);
    h->alive = 0;
    for (hk_superslab_t *ss = h->ss_list; ss; ss = ss->next)
        atomic_store_explicit(&ss->heap, NULL, memory_order_seq_cst);
    hk_superslab_t *ss = h->ss_list;
    while (ss) {
        hk_superslab_t *next = ss->next;
        ss->next = ss->prev = NULL;
        if (ss_collect_orphan(ss))
            superslab_free(ss);
        else
            superslab_abandon(ss);
        ss = next;
    }
    heap_reset(h);
    heap_unlock(h);
    heap_struct_free(h);
}

/* ------------------------------------------------------------------------ */

void hk_heap_count_superslabs(hk_ss_count_t *c)
{
    for (hk_heap_t *h = atomic_load(&g_heap_all); h; h = h->all_next)
        for (hk_superslab_t *ss = h->ss_list; ss; ss = ss->next)
            superslab_count_one(ss, c);
}

/* ------------------------------------------------------------------------ */
/* Statistics (heap_box.h: hk_census_t says what is counted and why it is
 * exact). */

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
    hk_heap_t *first = atomic_load_explicit(&g_heap_all, memory_order_acquire);
    for (hk_heap_t *h = first; h; h = h->all_next)
        heap_lock(h);
    for (hk_heap_t *h = first; h; h = h->all_next) {
        if (h->alive && heap_has_owner(h))
            c->heaps_live++;
        for (hk_superslab_t *ss = h->ss_list; ss; ss = ss->next)
            census_superslab(ss, c);
    }
    c->ss_abandoned = superslab_for_each_abandoned(census_superslab, c);
    for (hk_heap_t *h = first; h; h = h->all_next)
        heap_unlock(h);
}

/* ------------------------------------------------------------------------ */

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
