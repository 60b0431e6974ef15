/* guard_box (front): guarded sampling, GWP-ASan's way (off unless
 * guard_sample:N).
 *
 * On average one block of up to 8 KiB every N bytes allocated (malloc and
 * calloc; 1: every one) is placed in a slot of its own pool: a slot is an
 * inaccessible guard page and two data pages; the block is right-aligned
 * against the next slot's guard page (to its natural alignment, at most
 * 16 bytes), and the data pages it does not use stay inaccessible. When it
 * is freed its pages become inaccessible and the slot waits in a FIFO
 * quarantine (half the pool) before it is used again. So an overflow of a
 * sampled block, an underflow past its page, and any use after its free
 * fault at once; a SIGSEGV handler (installed only when guard_sample is
 * on, chained to the handler before it) prints one report,
 *     hakmem: error: heap-buffer-overflow ... / heap-use-after-free ...
 * with the allocation (and free) stack, then restores the default action
 * and lets the access fault again. The pool is one 2 MiB chunk (128
 * slots, marked GUARDED in the registry, so free, realloc and
 * malloc_usable_size find their blocks); when every slot is live or in
 * quarantine, sampling skips (counted: guard_skipped).
 * The countdown is the profiler's (prof_box.h: hk_prof_tick, one
 * subtraction and one branch on the fast path): guarded sampling uses it
 * while the profiler is off; with both on, the profiler has it and
 * guard_sample is ignored (one warning).
 *
 * Owns: the pool, its slots' states and stacks, the quarantine, the
 * SIGSEGV handler and its report.
 * Must not: allocate; hold its lock across a system call; do in the
 * handler what is not async-signal-safe. */
#ifndef HAKMEM_GUARD_BOX_H
#define HAKMEM_GUARD_BOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* From the process's init: read the setting, map the pool, install the
 * handler. */
void hk_guard_init(void);
/* The countdown ran out and the profiler is off: true if this allocation
 * of `size` is to be guarded (the countdown is set for the next one). */
bool hk_guard_sample_now(size_t size);
/* A guarded block (zeroed if `zero`), its stack recorded from `anchor`
 * on; NULL if the pool is full or size is above the limit (the caller
 * then allocates as usual). */
void *hk_guard_alloc(size_t size, bool zero, const void *anchor);
/* The calls on a pointer in the GUARDED chunk: free (a misuse is reported
 * here), its usable size (0 if it is not a live guarded block: the caller
 * reports). */
void hk_guard_free(void *p);
size_t hk_guard_usable(const void *p);
/* Guarded blocks live, samples skipped. */
void hk_guard_stats(uint64_t *live, uint64_t *skipped);
/* fork(): the pool's lock is held across it; the child keeps the pool. */
void hk_guard_fork_prepare(void);
void hk_guard_fork_parent(void);
void hk_guard_fork_child(void);

#endif
