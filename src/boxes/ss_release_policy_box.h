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
 * Purge delay (FAST and LEAN): what is kept for reuse beyond what is in use
 * (cached superslabs and large ranges, LEAN's bonus) goes back once unused
 * for purge_delay_ms (HAKMEM_PURGE_DELAY_MS; defaults below), checked on
 * the allocator's slow paths and, when asked, by a background thread
 * (background_box). The caches carry the time; the decisions are here.
 *
 * Must not: touch heaps or slabs, or call madvise except through the guard. */
#ifndef HAKMEM_SS_RELEASE_POLICY_BOX_H
#define HAKMEM_SS_RELEASE_POLICY_BOX_H

#include "hakmem_internal.h"
#include "ss_allocation_box.h"

/* The purge delay's defaults (HAKMEM_PURGE_DELAY_MS / purge_delay_ms
 * unset): FAST keeps idle memory 10 s (as jemalloc's decay), so loops and
 * short pauses never pay for it again; LEAN 1 s. */
#define HK_PURGE_DELAY_FAST_MS 10000
#define HK_PURGE_DELAY_LEAN_MS 1000
/* Purge passes come a quarter of the delay apart, but never closer than
 * the minimum, nor further than the maximum (memory goes back at most
 * that long after its delay). */
#define HK_PURGE_INTERVAL_MIN_MS 10
#define HK_PURGE_INTERVAL_MAX_MS 500
/* The clock every time-dependent decision here is given (ms, monotonic). */
int64_t ss_policy_now_ms(void);
/* The effective purge delay in ms: -1 never, 0 at once. */
int64_t ss_purge_delay_ms(void);
/* Memory unused since since_ms: does it go back at now_ms? (_at: with an
 * explicit delay, for the unit tests' fake clock.) */
bool ss_purge_due(int64_t since_ms, int64_t now_ms);
bool ss_purge_due_at(int64_t since_ms, int64_t now_ms, int64_t delay_ms);
/* Claim a purge pass over one cache at now_ms (last_ms: that cache's last
 * pass); false if one ran less than an interval ago, or the delay is -1. */
bool ss_purge_pass_claim(_Atomic int64_t *last_ms, int64_t now_ms);
bool ss_purge_pass_claim_at(_Atomic int64_t *last_ms, int64_t now_ms, int64_t delay_ms);
/* How long the background thread sleeps between passes (-1: no passes). */
int64_t ss_purge_interval_ms(int64_t delay_ms);
/* Does a purged superslab keep its range, pages decommitted (LEAN, unless
 * DECOMMIT=OFF), or is it unmapped (FAST)? */
bool ss_purge_by_decommit(void);

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
/* Current extra budget from bounces, in bytes (for tests); _at: at a
 * given time (the bonus decays, and is dropped once unused for the purge
 * delay). */
int64_t ss_release_policy_bonus(void);
int64_t ss_release_policy_bonus_at(int64_t now_ms);

#endif
