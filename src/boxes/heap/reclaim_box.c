/* reclaim_box: remote frees, notifications, helpers, adoption, orphans,
 * thread exit and reaping, trim, sweep, fork. See reclaim_box.h for the
 * protocol. */
#include "hakmem_internal.h"
#include "heap/reclaim_box.h"
#include "backend/ss_allocation_box.h"
#include "backend/ss_release_policy_box.h"
#include "base/superslab_stats.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Notifications an owner may leave undrained before the thread that sends
 * the next one drains them for it (an owner that stopped allocating). */
#define HK_HELP_AFTER 16
/* The sweep looks at another heap's class lists at most this often. */
#define HK_LISTED_SCAN_MS 1000

void (*hk_reclaim_rearm_hook)(hk_slab_t *s);
int hk_reclaim_test_defect;
/* Is the test defect d switched on? Never in a built library. */
static inline bool defect(int d) { return config_internal_copy && (hk_reclaim_test_defect & d); }

static inline void cpu_relax(void) { __builtin_ia32_pause(); }

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

void hk_heap_fork_prepare(void)
{
    hk_heap_lists_lock_all();
    atomic_store(&g_fork_pending, 1);
    while (atomic_load(&g_notifiers))
        cpu_relax();
}

void hk_heap_fork_parent(void)
{
    atomic_store(&g_fork_pending, 0);
    hk_heap_lists_unlock_all();
}

/* The other threads' heaps stay as they were: their threads are not in
 * the child (their kernel ids answer ESRCH there), so the child's next
 * reaping gives their superslabs up like an exited thread's; until then
 * their slabs still take frees. */
void hk_heap_fork_child(void)
{
    atomic_store(&g_notifiers, 0);
    atomic_store(&g_fork_pending, 0);
    hk_heap_lists_reset_locks();
    hk_heap_t *h = hk_tls_heap;
    if (h != &g_hk_heap_empty && h != &g_hk_heap_exited)
        __atomic_store_n(&h->tid, (int32_t)syscall(SYS_gettid), __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------------ */
/* Remote frees. */

static void heap_help(hk_heap_t *h);
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
         * a parked slab in hk_reclaim_drain) after it read
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

/* ------------------------------------------------------------------------ */
/* Releasing slabs and superslabs (lock held). */

static void slab_release(hk_heap_t *h, hk_superslab_t *ss, hk_slab_t *s);
static void heap_trim_empty(hk_heap_t *h, unsigned keep);

/* Owner: a parked slab has free blocks again: back onto its class list.
 * Its thread_free state may still say FULL: the next remote free then
 * sends one needless notification (ignored by the drain, since the slab is
 * no longer parked) and the state becomes NORMAL. That is cheaper than a
 * CAS here. */
static void slab_unpark(hk_heap_t *h, hk_slab_t *s)
{
    hk_slab_used_set(s, hk_slab_out(s));
    s->parked = 0;
    hk_class_insert_second(h, s);
}

void hk_reclaim_drain_stack(hk_heap_t *h)
{
    /* While the list is walked, no superslab may go back to the OS: a slab
     * further down the list may belong to it. */
    h->hold++;
    atomic_store_explicit(&h->notified, 0, memory_order_relaxed);
    hk_slab_t *s = atomic_exchange_explicit(&h->remote_slabs, NULL, memory_order_acquire);
    while (s) {
        hk_slab_t *next = s->remote_next;
        hk_superslab_t *ss = hk_ss_of(s);
        if (atomic_load_explicit(&ss->heap, memory_order_relaxed) == h && s->parked) {
            for (;;) {
                hk_slab_take_remote(s);
                if (hk_slab_out(s) == 0) {
                    slab_release(h, ss, s);
                    break;
                }
                if (!h->foreign) {
                    slab_unpark(h, s);
                    break;
                }
                /* A helper may not list it: re-armed, it stays parked
                 * until the next remote free notifies again; blocks that
                 * came meanwhile are taken first (else they would wait on
                 * a FULL slab for a notification that never comes). */
                if (config_internal_copy && hk_reclaim_rearm_hook)
                    hk_reclaim_rearm_hook(s);
                if (defect(HK_DEFECT_REARM) || hk_slab_arm_full(s))
                    break;
            }
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
    hk_reclaim_drain(h);
    if (h->hold || h->empty_ss <= keep)
        return false;
    bool freed = false;
    hk_superslab_t *ss = h->ss_list;
    while (ss && h->empty_ss > keep) {
        hk_superslab_t *next = ss->next;
        if (ss->used_slabs == 0) {
            h->empty_ss--;
            h->ss_count--;
            hk_heap_ss_remove(h, ss);
            superslab_free(ss);
            freed = true;
        }
        ss = next;
    }
    return freed;
}

static void heap_release_idle_superslab(hk_heap_t *h, hk_superslab_t *ss);

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

void hk_reclaim_flush_waiting(hk_heap_t *h, bool force)
{
    if (!force && !ss_release_settled(h->pending_since_ms, (uint32_t)ss_release_now_ms()))
        return;
    __atomic_store_n(&h->pending_since_ms, 0, __ATOMIC_RELAXED);
    for (hk_superslab_t *ss = h->ss_list; ss; ss = ss->next)
        if (ss->pending_decommit)
            hk_slab_flush_pending(ss);
}

/* Hand a slab with no block out back to its superslab. */
static void slab_release(hk_heap_t *h, hk_superslab_t *ss, hk_slab_t *s)
{
    HK_ASSERT(hk_slab_out(s) == 0);
    HK_ASSERT(atomic_load_explicit(&ss->heap, memory_order_relaxed) == h);
    HK_ASSERT(!(ss->free_mask & (1u << s->index)) && ss->used_slabs > 0);
    if (!s->parked)
        hk_class_remove(h, s);
    hk_slab_clear(s);
    bool had_none_free = ss->free_mask == 0;
    ss->free_mask |= 1u << s->index;
    /* The purge delay: each unused slab's pages go back once it has been
     * unused for it, however busy the rest of the superslab is. */
    int64_t idle = ss_release_now_ms();
    s->idle_ms = (uint32_t)idle;
    if (!ss->slab_idle_ms)
        ss->slab_idle_ms = idle;
    /* LEAN over budget: the slab's pages go back (unless the whole
     * superslab is about to be released anyway), in batches once the first
     * has settled (ss_release_batch_due), so that a large free costs about
     * one syscall per superslab, not one per slab; what is left waiting is
     * flushed by hk_reclaim_flush_pending() once it is due. */
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
            hk_slab_flush_pending(ss);
    }
    if (had_none_free) {
        hk_heap_ss_remove(h, ss);
        hk_heap_ss_push_front(h, ss);
    }
    if (--ss->used_slabs == 0) {
        h->empty_ss++;
        ss->cached_since_ms = ss_release_now_ms(); /* idle from now: the purge delay */
        heap_trim_empty(h, ss_release_heap_keep_empty());
    }
}

/* LEAN, shrinking: a superslab whose slabs are all empty, kept only as the
 * last slab of their classes, goes back whole: the kept slabs would
 * otherwise pin 2 MiB for a few classes that may never be used again (a
 * burst freed at once). The policy says when (ss_release_idle_superslab);
 * it is asked when a kept slab empties, and for every superslab of the
 * heap when one is released (heap_trim_empty). Owner only (class heads). */
static void heap_release_idle_superslab(hk_heap_t *h, hk_superslab_t *ss)
{
    for (int i = 1; i < HK_SLABS_PER_SS; i++)
        if (!(ss->free_mask & (1u << i)) && hk_slab_out(&ss->slabs[i]) != 0)
            return; /* a live block: the superslab stays anyway */
    h->hold++;
    for (int i = 1; i < HK_SLABS_PER_SS; i++)
        if (!(ss->free_mask & (1u << i)) && !ss->slabs[i].parked)
            slab_release(h, ss, &ss->slabs[i]);
    h->hold--;
    heap_trim_empty(h, ss_release_heap_keep_empty());
}

/* Every listed slab with every block free (its remote list holds all that
 * are out) goes back; with an owner that is not the caller (h->foreign),
 * not a class's head, which its fast paths may be using (reclaim_box.h). */
static void heap_release_listed_free(hk_heap_t *h)
{
    if (defect(HK_DEFECT_LISTED) && h->foreign)
        return;
    h->hold++;
    for (int c = 0; c < HK_NUM_CLASSES; c++) {
        for (hk_slab_t *s = h->cur[c], *next; s && s != &g_hk_slab_empty; s = next) {
            next = s->next;
            if (h->foreign && s == h->cur[c])
                continue;
            int32_t out = hk_slab_out(s);
            if (!hk_slab_all_free(out, atomic_load_explicit(&s->thread_free, memory_order_acquire)))
                continue;
            hk_slab_take_remote(s);
            if (hk_slab_out(s) == 0)
                slab_release(h, hk_ss_of(s), s);
        }
    }
    h->hold--;
}

/* ------------------------------------------------------------------------ */
/* Parking and local frees (owner, lock held). */

bool hk_reclaim_park(hk_heap_t *h, hk_slab_t *s)
{
    /* The notification stack must not still hold this slab from an earlier
     * parking when a remote thread may push it again. */
    hk_reclaim_drain(h);
    if (!hk_slab_arm_full(s))
        return false;
    hk_class_remove(h, s);
    hk_slab_used_set(s, hk_slab_used(s) | HK_USED_PARKED);
    s->parked = 1;
    return true;
}

void hk_reclaim_free_locked(hk_heap_t *h, hk_slab_t *slab, hk_block_t *b)
{
    int32_t used = hk_slab_used(slab);
    if (HK_UNLIKELY((used & ~HK_USED_PARKED) == 0)) {
        /* No block of the slab is out: this one cannot be live. */
        hk_free_misuse(b, HK_MISUSE_DOUBLE);
        return;
    }
    hk_slab_push_local(slab, b, b->tag); /* as the fast path */
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

/* ------------------------------------------------------------------------ */
/* Adoption and orphans. */

void hk_reclaim_adopt(hk_heap_t *h, hk_superslab_t *ss)
{
    atomic_store_explicit(&ss->heap, h, memory_order_seq_cst);
    h->ss_count++;
    hk_heap_ss_push_front(h, ss);
    if (ss->pending_decommit && !h->pending_since_ms)
        __atomic_store_n(&h->pending_since_ms, (uint32_t)ss_release_now_ms() | 1, __ATOMIC_RELAXED);
    /* No release in the middle of the walk: it would let the superslab be
     * unmapped, or taken by another heap, while we still walk its slabs. */
    h->hold++;
    if (ss->used_slabs == 0)
        h->empty_ss++;
    for (int i = 1; i < HK_SLABS_PER_SS; i++) {
        hk_slab_t *s = &ss->slabs[i];
        if (ss->free_mask & (1u << i))
            continue;
        hk_slab_take_over(s);
        hk_class_insert_second(h, s);
        if (hk_slab_used(s) == 0)
            slab_release(h, ss, s);
    }
    if (ss->free_mask == 0)
        hk_heap_ss_move_back(h, ss);
    h->hold--;
    heap_trim_empty(h, ss_release_heap_keep_empty());
}

/* A thread with a heap frees into an abandoned superslab: adopt it and free
 * the block locally. false if it cannot (no heap of its own, or another
 * thread took the superslab first): the caller frees remotely. */
static bool heap_adopt_on_free(hk_superslab_t *ss, hk_block_t *b)
{
    hk_heap_t *h = hk_tls_heap;
    if (h == &g_hk_heap_empty || h == &g_hk_heap_exited)
        return false;
    hk_heap_lock(h);
    /* Only a heap without unused slabs of its own takes it (we hold a live
     * block of ss, so it cannot be released meanwhile): a heap that adopted
     * whatever it freed into would hoard superslabs of unused slabs while
     * the others map new ones (a server whose threads are replaced ran at
     * 4 x the peak RSS that way). */
    bool taken = (!h->ss_list || h->ss_list->free_mask == 0) && superslab_adopt_this(ss);
    if (taken) {
        h->hold++;
        hk_reclaim_adopt(h, ss);
        hk_reclaim_free_locked(h, hk_slab_of(ss, (uintptr_t)b), b);
        h->hold--;
        heap_trim_empty(h, ss_release_heap_keep_empty());
    }
    hk_heap_unlock(h);
    return taken;
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
        hk_slab_take_over(s);
        if (hk_slab_used(s) == 0) {
            hk_slab_clear(s);
            ss->free_mask |= 1u << i;
            ss->used_slabs--;
        }
    }
    if (config_lean && ss->used_slabs && (ss->pending_decommit || ss_should_decommit_slab()))
        hk_slab_flush_pending(ss);
    return ss->used_slabs == 0;
}

/* ------------------------------------------------------------------------ */
/* Helpers. */

/* Do an owner's work for it (trylock: never wait for a busy owner). */
static void heap_help(hk_heap_t *h)
{
    if (!hk_heap_trylock(h))
        return;
    if (h->alive) {
        h->foreign = hk_heap_has_owner(h);
        hk_reclaim_drain(h);
        hk_reclaim_flush_pending(h, false);
        h->foreign = 0;
    }
    hk_heap_unlock(h);
}

/* ------------------------------------------------------------------------ */
/* Thread exit and reaping. */

static _Atomic uint32_t g_heaps_alive;   /* heaps with an owner thread */
static _Atomic uint32_t g_reap_at = 32;  /* heaps alive at which a start reaps */

/* Give every superslab up (lock held, h alive). Order matters:
 *  1. clear ss->heap, so no new remote free will pick this heap to notify;
 *  2. wait out notifiers that already picked it (NOTIFYING), collect what
 *     was freed remotely, and release the slabs that are empty now;
 *  3. drop the notification stack; the heap struct can then be reused.
 * Superslabs with live blocks are abandoned for another heap to adopt. */
static void heap_give_up_locked(hk_heap_t *h)
{
    __atomic_store_n(&h->alive, 0, __ATOMIC_RELAXED);
    atomic_fetch_sub_explicit(&g_heaps_alive, 1, memory_order_relaxed);
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
    hk_heap_reset(h);
}

/* Whatever the thread allocates after this (a later thread-specific-data
 * destructor) comes from the shared heap: a new heap of its own would
 * never be given back, since no destructor round may follow. */
void hk_heap_thread_done(hk_heap_t *h)
{
    if (h == &g_hk_heap_empty || h == &g_hk_heap_exited || !h->alive)
        return;
    hk_tls_heap = &g_hk_heap_exited;
    hk_heap_lock(h);
    heap_give_up_locked(h);
    hk_heap_unlock(h);
    hk_heap_struct_free(h);
}

uint32_t hk_reclaim_gone_owner(const hk_heap_t *h)
{
    /* The generation first: a thread start resets the id, then counts the
     * generation, then sets the new id, so an id read after a generation
     * is that owner's, or 0. */
    uint32_t gen = __atomic_load_n(&h->gen, __ATOMIC_ACQUIRE);
    int32_t tid = __atomic_load_n(&h->tid, __ATOMIC_RELAXED);
    if (tid <= 0 || !hk_heap_has_owner(h) || !__atomic_load_n(&h->alive, __ATOMIC_RELAXED))
        return 0;
    int saved = errno;
    bool gone = syscall(SYS_tgkill, (int)getpid(), (int)tid, 0) != 0 && errno == ESRCH;
    errno = saved;
    return gone ? gen : 0;
}

/* The thread of h is gone without its exit hook: do its exit for it (the
 * owner checked again under the lock). */
static void heap_reap(hk_heap_t *h)
{
    uint32_t gen = h == hk_tls_heap ? 0 : hk_reclaim_gone_owner(h);
    if (!gen)
        return;
    hk_heap_lock(h);
    bool reap = h->alive && h->gen == gen;
    if (reap)
        heap_give_up_locked(h);
    hk_heap_unlock(h);
    if (reap)
        hk_heap_struct_free(h);
}

static void heap_reap_all(void)
{
    if (defect(HK_DEFECT_REAP))
        return;
    for (hk_heap_t *h = hk_heap_first(); h; h = h->all_next)
        heap_reap(h);
}

void hk_reclaim_thread_born(void)
{
    uint32_t alive = atomic_fetch_add_explicit(&g_heaps_alive, 1, memory_order_relaxed) + 1;
    uint32_t at = atomic_load_explicit(&g_reap_at, memory_order_relaxed);
    if (alive < at || !atomic_compare_exchange_strong(&g_reap_at, &at, UINT32_MAX))
        return;
    /* One thread reaps; the next pass comes when the heaps alive have
     * doubled again: one tgkill per heap a pass, a few per thread start. */
    heap_reap_all();
    alive = atomic_load_explicit(&g_heaps_alive, memory_order_relaxed);
    atomic_store_explicit(&g_reap_at, alive * 2 > 32 ? alive * 2 : 32, memory_order_relaxed);
}

/* ------------------------------------------------------------------------ */
/* The sweep: from any thread's slow path (every 64th of a thread), at most
 * every settle interval for the whole process, work nobody else would do
 * soon:
 *  - collect what was freed into a few abandoned superslabs, and give back
 *    those now empty (a thread without a heap of its own freed an exited
 *    thread's blocks);
 *  - for every other heap, at most every HK_LISTED_SCAN_MS: give back its
 *    listed slabs that other threads emptied (but its classes' heads); an
 *    owner whose slow paths have not run since the last sweep (idle) is
 *    reaped if its thread is gone;
 *  - LEAN: help heaps with decommits waiting (an owner that went idle right
 *    after freeing);
 *  - the purge tick. */
#define HK_SWEEP_ABANDONED 8
static _Atomic uint32_t g_next_sweep_ms;
__thread uint32_t hk_tls_slow_calls;
/* The front's purge tick (hk_heap_set_idle_tick). */
static void (*_Atomic g_idle_tick)(void);

/* Another heap's slabs that other threads emptied, at most every
 * HK_LISTED_SCAN_MS for each heap (trylock: a heap whose lock is busy
 * waits for the next sweep): its listed slabs with every block free go
 * back, but for its classes' heads. An owner whose frees all come back
 * from other threads (a producer) never frees into its own slabs, so
 * nothing else would release them: they would stay listed, full of free
 * blocks, each pinning its superslab. An owner idle since the last sweep
 * whose thread is gone is reaped instead. */
static void heap_help_listed(hk_heap_t *h, bool idle)
{
    if (idle && !defect(HK_DEFECT_REAP) && hk_reclaim_gone_owner(h)) {
        heap_reap(h);
        return;
    }
    if (!hk_heap_trylock(h))
        return;
    if (h->alive) {
        h->foreign = 1;
        hk_reclaim_drain(h);
        heap_release_listed_free(h);
        heap_trim_empty(h, ss_release_heap_keep_empty());
        hk_reclaim_flush_pending(h, false);
        h->foreign = 0;
    }
    hk_heap_unlock(h);
}

static void heap_sweep_work(hk_heap_t *self)
{
    superslab_reclaim_abandoned(ss_collect_orphan, HK_SWEEP_ABANDONED, false);
    uint32_t now = (uint32_t)ss_release_now_ms();
    for (hk_heap_t *h = hk_heap_first(); h; h = h->all_next) {
        if (h == self || !hk_heap_has_owner(h) || !__atomic_load_n(&h->alive, __ATOMIC_RELAXED))
            continue;
        uint32_t calls = __atomic_load_n(&h->slow_calls, __ATOMIC_RELAXED);
        bool idle = calls == __atomic_load_n(&h->sweep_seen, __ATOMIC_RELAXED);
        __atomic_store_n(&h->sweep_seen, calls, __ATOMIC_RELAXED);
        if (now - __atomic_load_n(&h->idle_scan_ms, __ATOMIC_RELAXED) >= HK_LISTED_SCAN_MS) {
            __atomic_store_n(&h->idle_scan_ms, now, __ATOMIC_RELAXED);
            heap_help_listed(h, idle);
        } else if (config_lean && __atomic_load_n(&h->pending_since_ms, __ATOMIC_RELAXED)) {
            heap_help(h);
        }
    }
}

void hk_reclaim_sweep_now(hk_heap_t *self)
{
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

/* The purge delay for the empty superslabs a heap keeps for its next
 * slabs (FAST keeps one): those idle since longer go to superslab_free(),
 * which caches them with that time, so the cache's purge releases them
 * in the same pass. Any thread, under the heap's lock (trylock: a busy
 * heap is not idle). */
static _Atomic int64_t g_last_heap_purge_ms;

/* The purge delay for the unused slabs of a superslab in use: those unused
 * since longer than it give their pages back (one call per run of them);
 * the oldest of the others is when to look again. */
static void heap_purge_unused_slabs(hk_superslab_t *ss, int64_t now)
{
    uint32_t resident = hk_slab_unused_resident(ss) & ss->touched_mask, due = 0;
    int64_t oldest = 0;
    for (uint32_t m = resident; m; m &= m - 1) {
        hk_slab_t *s = &ss->slabs[__builtin_ctz(m)];
        int64_t since = now - (int64_t)(uint32_t)((uint32_t)now - s->idle_ms);
        if (ss_purge_due(since, now))
            due |= m & -m;
        else if (!oldest || since < oldest)
            oldest = since;
    }
    if (due)
        hk_slab_give_back(ss, due, ss_release_purge_pages);
    ss->slab_idle_ms = oldest;
}

void hk_heap_purge_empty(int64_t now)
{
    if (!ss_purge_pass_claim(&g_last_heap_purge_ms, now))
        return;
    hk_heap_t *self = hk_tls_heap;
    for (hk_heap_t *h = hk_heap_first(); h; h = h->all_next) {
        if (!hk_heap_trylock(h))
            continue;
        if (h->alive && !h->hold) {
            h->foreign = h != self && hk_heap_has_owner(h);
            /* A superslab given back must not be reachable from the
             * notification stack: drain it first, but only then (a drain
             * may release superslabs: before the walk, not in it). */
            for (hk_superslab_t *ss = h->ss_list; ss; ss = ss->next)
                if (ss->used_slabs == 0 && ss_purge_due(ss->cached_since_ms, now)) {
                    hk_reclaim_drain(h);
                    break;
                }
            for (hk_superslab_t *ss = h->ss_list, *next; ss && !h->hold; ss = next) {
                next = ss->next;
                /* Unused slabs of a superslab still in use (a few live
                 * blocks, or the empty slab a class keeps, hold it): the
                 * pages of those unused for the delay go back too, the
                 * range stays. */
                if (ss->used_slabs && ss->slab_idle_ms && ss_purge_due(ss->slab_idle_ms, now))
                    heap_purge_unused_slabs(ss, now);
                if (ss->used_slabs == 0 && ss_purge_due(ss->cached_since_ms, now)) {
                    h->empty_ss--;
                    h->ss_count--;
                    hk_heap_ss_remove(h, ss);
                    superslab_free(ss);
                }
            }
            h->foreign = 0;
        }
        hk_heap_unlock(h);
    }
}

/* ------------------------------------------------------------------------ */
/* malloc_trim. */

size_t hk_heap_trim_all(void)
{
    int64_t before = HK_GAUGE_GET(bytes_committed);
    heap_reap_all();
    hk_heap_t *self = hk_tls_heap;
    for (hk_heap_t *h = hk_heap_first(); h; h = h->all_next) {
        hk_heap_lock(h);
        if (h->alive) {
            h->foreign = h != self && hk_heap_has_owner(h);
            hk_reclaim_drain(h);
            heap_release_listed_free(h);
            hk_reclaim_flush_pending(h, true);
            heap_trim_empty(h, 0);
            h->foreign = 0;
        }
        hk_heap_unlock(h);
    }
    superslab_reclaim_abandoned(ss_collect_orphan, UINT32_MAX, true);
    int64_t after = HK_GAUGE_GET(bytes_committed);
    return before > after ? (size_t)(before - after) : 0;
}
