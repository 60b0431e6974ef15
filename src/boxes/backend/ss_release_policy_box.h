/* ss_release_policy_box (release policy): the single conversion point for
 * superslab lifecycle decisions: keep an empty superslab, or release it,
 * and how its pages go back. Every decommit in the library flows through
 * ss_maybe_decommit_superslab().
 *
 * FAST: keep everything (persistent backend).
 * LEAN: an empty superslab stays cached (committed, cheap to reuse) only
 * while hakmem's committed footprint is within HAKMEM_SS_MEM_LEAN_TARGET_MB
 * and the cache holds fewer than its allowance (one superslab); otherwise
 * it is released at once: decommitted (MADV_FREE or MADV_DONTNEED; the
 * 64 KiB header slab stays), or unmapped if that fails. Unused slabs of a
 * superslab still in use are given back too while over budget, sixteen at
 * a time once the first has waited 50 ms (heap_box), so a superslab that
 * is emptying fast is released whole, in one call.
 *
 * Hysteresis: each time released memory is needed again (a "bounce": a
 * decommitted superslab or slab taken back into use), the budget grows by
 * twice its size, and the cache's allowance by one superslab per 2 MiB of it, so
 * a program that frees and re-allocates the same amount in a loop stops
 * paying syscalls and re-faulting pages after its first round. The extra
 * (at most 256 MiB) halves for every second in which it neither grew nor
 * kept memory the target alone would have released, so a program that
 * stops looping returns to the target; the cache is trimmed back to its
 * allowance whenever a superslab is released. A single burst freed at once
 * (no bounce before it) is released at once.
 *
 * Must not: touch heaps or slabs, or call madvise except through the guard. */
#ifndef HAKMEM_SS_RELEASE_POLICY_BOX_H
#define HAKMEM_SS_RELEASE_POLICY_BOX_H

#include "hakmem_internal.h"
#include "backend/ss_allocation_box.h"

/* Keep (cache) this empty superslab? class_idx: the class of its last slab,
 * or -1. FAST: always true. */
bool ss_should_keep_superslab(hk_superslab_t *ss, int class_idx);
/* Give the pages of [ptr, ptr+size) back with LEAN's strategy. 0 on success
 * (pages released, range still mapped); -1 if the strategy is OFF, the guard
 * refused, or madvise failed: the caller then keeps or unmaps the range. */
int ss_maybe_decommit_superslab(void *ptr, size_t size);
/* LEAN: should the pages of a slab that just became unused (in a superslab
 * still in use) go back now? True when the footprint is over budget. */
bool ss_should_decommit_slab(void);
/* Released memory (a superslab, or a slab) was taken again: a bounce. */
void ss_release_policy_note_reuse(size_t bytes);
/* How many empty superslabs the LEAN cache may hold now. */
int64_t ss_lean_cache_allowance(void);
/* Empty superslabs a heap keeps for itself before handing them to
 * superslab_free(): FAST 1, LEAN 0 (the cache decides instead). */
unsigned ss_heap_keep_empty(void);
/* Current extra budget from bounces, in bytes (for tests). */
int64_t ss_release_policy_bonus(void);

#endif
