/* reclaim_box: how memory freed anywhere gets back to where it is used or
 * given back: remote frees and the notifications they send, parking,
 * helpers doing an owner's work, adoption of abandoned superslabs,
 * collection of orphans, thread exit and the reaping of heaps whose thread
 * is gone, malloc_trim, the sweep and the purge delay of heaps, fork.
 *
 * The protocol: who may touch a slab, and when.
 *
 * A slab of a heap is LISTED (on its class list), PARKED (off it, full:
 * HK_USED_PARKED in used, slab->parked) or unused (its superslab's
 * free_mask). Its thread_free word (slab_box.h) is NORMAL, FULL or
 * NOTIFYING. The actors:
 *  - the owner: pops from its class heads and frees into the slabs it
 *    holds a live block of, with no lock (heap_box.h); everything else
 *    under its heap's lock.
 *  - a remote freer: pushes the block on thread_free with one CAS and
 *    touches nothing of the slab afterwards, unless the CAS moved the slab
 *    FULL -> NOTIFYING: then it pushes the slab on the owner's
 *    notification stack and clears NOTIFYING (a fork waits for it:
 *    notify_begin/end). Every HK_HELP_AFTER notifications it helps.
 *  - a helper: any thread that holds the owner's lock while the owner is
 *    alive (h->foreign): a notifier past the threshold, the sweep, the
 *    purge delay, malloc_trim. It may:
 *      * drain the notification stack: take a parked slab's remote list;
 *        release the slab if every block is free, else re-arm it FULL, and
 *        only while its list is empty (hk_slab_arm_full): a block freed
 *        between the take and the re-arm is taken too, never left behind
 *        on a FULL slab, where no notification would ever come for it;
 *      * release a LISTED slab that is not its class's head and has every
 *        block free (out == remote count): nobody holds a block of it, so
 *        the owner's fast paths cannot be touching it, and the class links
 *        are touched only under the lock;
 *      * give back unused slabs' pages and empty superslabs.
 *    It never changes a class head and never puts a slab on a list: the
 *    owner's fast paths read the heads without the lock.
 *  - an adopter / collector: whoever takes an abandoned superslab off the
 *    abandoned list owns it (hk_slab_take_over on its slabs).
 *  - a reaper: a thread that finds a heap whose owner thread is gone
 *    (tgkill(tid, 0) answers ESRCH: its exit hook never ran, as for a
 *    thread whose first allocation came in the last round of key
 *    destructors) does its exit for it, under its lock.
 * Invariants: a FULL slab has an empty remote list; a slab is on a
 * notification stack at most once (only the FULL -> NOTIFYING mover pushes
 * it, and FULL is set only once it is off the stack); nobody takes a
 * slab's last block while a notifier is in it (NOTIFYING is waited out);
 * no superslab leaves a heap while its lock holder walks the heap's slabs
 * (hold) or while the notification stack may point into it (drained
 * first).
 *
 * Owns: the protocol above and everything that releases slabs and
 * superslabs of heaps: slab_release and its hysteresis (the slab a class
 * keeps, the empty superslab a heap keeps), LEAN's pending decommits, the
 * purge delay of heaps, thread exit, reaping, fork's notification gate.
 * Must not: decide about releasing memory to the OS (the release policy
 * does), call the OS for memory (the superslab box does), or touch a class
 * head of a heap with a live owner other than itself. */
#ifndef HAKMEM_RECLAIM_BOX_H
#define HAKMEM_RECLAIM_BOX_H

#include "hakmem_internal.h"
#include "heap/heap_lists_box.h"

/* A free of block b (tag already set) into a slab of another heap (owner),
 * or of no heap (NULL: abandoned). */
void hk_heap_free_remote(hk_block_t *b, hk_heap_t *owner);

/* Owner, lock held: */
/* Handle the notification stack (a slow path calls it every time: the
 * test for an empty stack is inline). */
void hk_reclaim_drain_stack(hk_heap_t *h);
HK_INLINE void hk_reclaim_drain(hk_heap_t *h)
{
    if (atomic_load_explicit(&h->remote_slabs, memory_order_relaxed))
        hk_reclaim_drain_stack(h);
}
/* Park an exhausted slab off its class list; false (and left on the list)
 * if remote frees arrived meanwhile. */
bool hk_reclaim_park(hk_heap_t *h, hk_slab_t *s);
/* A local free that the fast path left to the lock holder (the slab is
 * parked, or about to be empty). */
void hk_reclaim_free_locked(hk_heap_t *h, hk_slab_t *slab, hk_block_t *b);
/* Take over an abandoned superslab (off the abandoned list already). */
void hk_reclaim_adopt(hk_heap_t *h, hk_superslab_t *ss);
/* LEAN: give back every slab of the heap still waiting, if the first has
 * waited long enough (or at once: force). */
void hk_reclaim_flush_waiting(hk_heap_t *h, bool force);
HK_INLINE void hk_reclaim_flush_pending(hk_heap_t *h, bool force)
{
    if (config_lean && h->pending_since_ms)
        hk_reclaim_flush_waiting(h, force);
}

/* Any thread's slow path, no lock held: every HK_SWEEP_EVERY-th of a
 * thread, at most every settle interval for the process, work nobody else
 * would do soon (abandoned superslabs, idle owners, LEAN's waiting
 * decommits, the purge tick). */
#define HK_SWEEP_EVERY 64
extern HK_HIDDEN __thread uint32_t hk_tls_slow_calls;
void hk_reclaim_sweep_now(hk_heap_t *self);
HK_INLINE void hk_reclaim_sweep(hk_heap_t *self)
{
    if (HK_UNLIKELY(++hk_tls_slow_calls % HK_SWEEP_EVERY == 0))
        hk_reclaim_sweep_now(self);
}
/* A thread starts: now and then, the heaps of threads that are gone are
 * given up, so that they stay a bounded multiple of the live threads. */
void hk_reclaim_thread_born(void);

/* malloc_trim: for every heap, drain its notifications, give back the
 * slabs other threads emptied (an idle owner's too, but for each class's
 * head) and (LEAN) the pages of unused slabs still waiting; give up the
 * heaps of threads that are gone; collect what was freed into abandoned
 * superslabs and release those now empty. Returns the committed bytes
 * given back. */
size_t hk_heap_trim_all(void);
/* The background thread's share of the sweep (any thread, no lock held). */
void hk_heap_idle_work(void);
/* The purge delay for the empty superslabs heaps keep for their next slabs
 * (FAST keeps one per heap): those idle for it go to superslab_free(). */
void hk_heap_purge_empty(int64_t now_ms);
/* The purge tick the heaps' sweep runs on the allocator's slow paths (the
 * front's: handed down once at init, so this box never calls up). */
void hk_heap_set_idle_tick(void (*tick)(void));

/* Thread exit: give every superslab up (abandon those with live blocks),
 * then the heap struct. */
void hk_heap_thread_done(hk_heap_t *heap);
/* If h's owner thread is gone without its exit (its kernel id answers
 * ESRCH), that owner's generation (h->gen), else 0; never for a heap
 * without an owner thread. No lock held (a syscall): the caller compares
 * the generation under the lock, since the struct may have found a new
 * owner meanwhile. */
uint32_t hk_reclaim_gone_owner(const hk_heap_t *h);

/* Fork: hold every heap lock and wait out remote frees that are notifying
 * an owner, so the child finds no lock held and no slab in NOTIFYING. The
 * child's heap of the forking thread takes the child's thread id. */
void hk_heap_fork_prepare(void);
void hk_heap_fork_parent(void);
void hk_heap_fork_child(void);

/* Unit tests (internal copies only, never a built library): the hook is
 * called by a helper between taking a parked slab's remote list and
 * re-arming it; a defect bit puts one of the old defects back, so that a
 * test can show the debug census catching it: REARM stops a helper right
 * after the hook (which re-arms the slab its own way), LISTED keeps a
 * foreign heap's listed slabs that every block came back to, REAP never
 * gives up a heap whose thread is gone. */
extern HK_HIDDEN void (*hk_reclaim_rearm_hook)(hk_slab_t *s);
enum { HK_DEFECT_REARM = 1, HK_DEFECT_LISTED = 2, HK_DEFECT_REAP = 4 };
extern HK_HIDDEN int hk_reclaim_test_defect;

#endif
