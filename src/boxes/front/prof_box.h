/* prof_box (front): the sampled heap profiler (off unless prof:1).
 *
 * Sampling: each thread counts down the bytes it allocates (the countdown
 * lives beside its heap pointer: heap_box.h, hk_tls); when the count
 * passes zero the allocation is sampled and a new gap is drawn, exponential
 * with mean prof_sample (heap_profile_box.h: the model), from the
 * thread's own generator. With prof off the count starts at 2^62 and the
 * fast path pays one subtraction and one branch never taken.
 * A sampled block lives outside the superslabs, so free() finds it on the
 * path it already takes for blocks that are not in one: an unsampled small
 * block's free is the same code as without the profiler. One of up to
 * 32 KiB (aligned to at most a page) takes a slot of 1, 2, 4 or 8 pages of
 * the profiler's own pool: 2 MiB chunks marked SAMPLED in the registry,
 * whose free slots wait on stacks kept out of band (a write into a freed
 * slot plants nothing); a larger one is a large block (its own mapping),
 * looked up in the sampled-block table when a large block is freed, while
 * samples live.
 * Each sample records the stack (stack_box: the unwind tables, no
 * allocation) and its size; the profile is written from the samples still
 * live: at exit (prof_final), on demand (hakmem_prof_dump), and whenever
 * the estimate of allocated bytes passes its last peak by prof_peak_step.
 *
 * Memory: the sampled-block table, the stack table and its index, and the
 * pool come from the os box's mappings; the tables grow by doubling, the
 * pool by a chunk (its pages are kept for the next samples: it holds at
 * most the peak of live small samples), and they stop at a cap (1 Mi live
 * samples, 32 Ki live stacks: one warning, then samples beyond are not
 * recorded, stacks beyond are counted under one stack whose only frame
 * is 0). A stack with no live sample is given back to the table.
 *
 * Locks: one lock over the tables, a leaf: nothing else is taken while
 * it is held, and the stack is captured before it is taken. A dump holds
 * it while it writes (open, read, write: async-signal-safe); a dump
 * asked from a signal handler that interrupted its own thread while that
 * thread holds (or is taking) the lock is done by that thread as it
 * releases it, so it never waits for itself. fork() holds the lock, and
 * the child keeps the parent's samples.
 *
 * Owns: the countdown's slow path, the generators, the tables, the dump
 * files (PREFIX.PID.SEQ.heap) and their triggers.
 * Must not: allocate through the heaps it measures; hold its lock across
 * any other lock; capture a stack while holding it. */
#ifndef HAKMEM_PROF_BOX_H
#define HAKMEM_PROF_BOX_H

#include "hakmem_internal.h"
#include "heap/heap_box.h"

#include <stdbool.h>
#include <stddef.h>

/* The countdown of the fast paths: true when this allocation of `size`
 * bytes ran it out (the caller then takes its *_ticked slow path, which
 * asks hk_prof_sample_now). One subtraction and one branch. */
HK_INLINE bool hk_prof_tick(size_t size)
{
    uint64_t left = (uint64_t)hk_tls.prof_left - size;
    hk_tls.prof_left = (int64_t)left;
    return HK_UNLIKELY((int64_t)left < 0);
}

/* The countdown ran out on an allocation of `size` bytes: draw the next
 * gap; true if this allocation is to be sampled. */
bool hk_prof_sample_now(size_t size);
/* A sampled block (a large-box block of `size` bytes, aligned as asked,
 * zeroed if `zero`) with its stack recorded from the frame whose return
 * address is `anchor` (the API entry point's: the stack starts in the
 * program). NULL + ENOMEM. */
void *hk_prof_alloc(size_t size, size_t align, bool zero, const void *anchor);

/* Live sampled blocks (free and realloc look a large block up only while
 * there are some). */
extern HK_HIDDEN _Atomic uint64_t g_hk_prof_live;
HK_INLINE bool hk_prof_may_own(void) { return atomic_load_explicit(&g_hk_prof_live, memory_order_relaxed) != 0; }
/* p is being freed: forget its sample. True if p was sampled. */
bool hk_prof_forget(const void *p);
/* Is p a live sampled block? */
bool hk_prof_is_sampled(const void *p);
/* The calls on a pointer in a SAMPLED chunk: free (a misuse is reported
 * here), its usable size (0 if it is not a live sampled block: the caller
 * reports), and whether it is a page handed out (live or freed). */
void hk_prof_free_pooled(void *p);
size_t hk_prof_usable_pooled(const void *p);
bool hk_prof_owns_pooled(const void *p);

/* From the process's init: read the settings. */
void hk_prof_init(void);
/* From the library's constructor: from now on samples walk their stacks
 * (before, they record their caller only). */
void hk_prof_startup_done(void);
/* At exit: the final profile (prof_final) and the leak summary (prof_leak). */
void hk_prof_at_exit(void);
/* The profiler's own memory (its mappings: tables and pool), its live
 * samples, and the bytes of the pool's pages that hold live samples (they
 * are allocated, by usable size). */
void hk_prof_stats(uint64_t *bytes, uint64_t *samples, uint64_t *pooled);
void hk_prof_fork_prepare(void);
void hk_prof_fork_parent(void);
void hk_prof_fork_child(void);

#endif
