/* ss_release_policy_box (release policy): LEAN's policy room. Every
 * decision to keep memory or give it back, and every knob of those
 * decisions, is here; the boxes that hold the memory ask. It is also the
 * single conversion point of every decommit: ss_maybe_decommit_superslab().
 *
 * FAST: keep everything (persistent backend).
 * LEAN: an empty superslab stays cached (committed, cheap to reuse) only
 * while hakmem's committed footprint is within HAKMEM_SS_MEM_LEAN_TARGET_MB
 * and the cache holds fewer than its allowance (one superslab); otherwise
 * it is released at once: decommitted (MADV_FREE or MADV_DONTNEED; the
 * 64 KiB header slab stays), or unmapped if that fails. Unused slabs of a
 * superslab still in use are given back too while over budget,
 * SS_RELEASE_SLAB_BATCH at a time once the first has waited
 * SS_RELEASE_SETTLE_MS (heap_box keeps them waiting), so a superslab that
 * is emptying fast is released whole, in one call. Freed large blocks stay
 * cached only within the same budget (large_box).
 *
 * Hysteresis: each time released memory is needed again (a "bounce": a
 * decommitted superslab or slab taken back into use, a large block mapped
 * again), the budget grows by twice its size, and the cache's allowance by
 * one superslab per 2 MiB of it, so a program that frees and re-allocates
 * the same amount in a loop stops paying syscalls and re-faulting pages
 * after its first round. The extra (at most SS_RELEASE_BONUS_MAX) halves
 * for every second in which it neither grew nor kept memory the target
 * alone would have released, so a program that stops looping returns to
 * the target; the cache is trimmed back to its allowance whenever a
 * superslab is released. A single burst freed at once (no bounce before
 * it) is released at once.
 *
 * Time is passed in: the decisions (the *_at functions) are told the
 * current time and the footprint by their caller, so tests drive them with
 * a fake clock; the original entry points read the clock and the gauges
 * and call them.
 * Must not: touch heaps, slabs or superslab lists, or call madvise except
 * through the guard. */
#ifndef HAKMEM_SS_RELEASE_POLICY_BOX_H
#define HAKMEM_SS_RELEASE_POLICY_BOX_H

#include "hakmem_internal.h"
#include "base/ss_mem_lean_env_box.h"

/* ---- The knobs ---------------------------------------------------------- */
/* HAKMEM_SS_MEM_LEAN_TARGET_MB's default: the budget, MiB. */
#define SS_RELEASE_TARGET_MB_DEFAULT 10
/* Empty superslabs the LEAN cache holds before any bounce. */
#define SS_RELEASE_CACHE_BASE 1
/* Bounces never raise the budget beyond this. */
#define SS_RELEASE_BONUS_MAX ((int64_t)256 << 20)
/* The bonus halves for each whole period of this without use. */
#define SS_RELEASE_BONUS_HALVING_MS 1000
/* After a superslab was released over budget, the cache keeps nothing on
 * the target's account for this long (a shrinking program's last empty
 * superslab goes back with the rest). */
#define SS_RELEASE_SHRINK_MS 1000
/* Unused slabs of one superslab given back together, in one madvise... */
#define SS_RELEASE_SLAB_BATCH 16
/* ...once the first has waited this long (and every waiting slab of a heap
 * goes back when its first has); also the period of the process-wide sweep
 * that helps idle heaps. */
#define SS_RELEASE_SETTLE_MS 50
/* Decommitted superslabs whose address range is kept for reuse; beyond,
 * they are unmapped. */
#define SS_RELEASE_DECOMMITTED_MAX 64

/* The purge delay's defaults (HAKMEM_PURGE_DELAY_MS / purge_delay_ms
 * unset): FAST keeps idle memory 10 s (as jemalloc's decay), so loops and
 * short pauses never pay for it again; LEAN 1 s. */
#define SS_RELEASE_PURGE_DELAY_FAST_MS 10000
#define SS_RELEASE_PURGE_DELAY_LEAN_MS 1000
/* Purge passes come a quarter of the delay apart, but never closer than
 * the minimum, nor further than the maximum (memory goes back at most
 * that long after its delay). */
#define SS_RELEASE_PURGE_INTERVAL_MIN_MS 10
#define SS_RELEASE_PURGE_INTERVAL_MAX_MS 500

/* ---- Which mode ---------------------------------------------------------- */
/* LEAN is on: no prewarm, heaps keep no empty superslab. */
static inline bool ss_release_lean(void) { return ss_mem_lean_enabled(); }
/* LEAN gives memory back (on, and its strategy is not OFF). */
static inline bool ss_release_gives_back(void)
{
    return ss_mem_lean_enabled() && ss_mem_lean_decommit_mode() != HK_DECOMMIT_OFF;
}
/* A superslab held only by the empty slab each class keeps goes back
 * whole while the program is shrinking (a release for the budget within
 * SS_RELEASE_SHRINK_MS): a burst freed at once leaves nothing behind. Not
 * otherwise: in a steady program those slabs are the next ones their
 * classes use, and giving them back only moves the classes onto other
 * pages that become resident too (the soak grew by 0.4-0.9 MiB in steps,
 * one per such release). Not in the debug build either, where a kept slab
 * keeps the junk of its freed blocks, the evidence of a write after free. */
bool ss_release_idle_superslab(void);

/* ---- The clock ----------------------------------------------------------- */
/* Milliseconds; the coarse clock is a few ms fine and costs no syscall. */
int64_t ss_release_now_ms(void);
/* Slabs waiting since `since_ms` (low 32 bits of the clock) have waited
 * long enough at `now_ms`. The difference is signed: a heap stores its
 * start as `now | 1` (0 means "nothing waits"), one millisecond after an
 * even clock reading, and a start a little ahead of the clock has not
 * waited at all (an unsigned difference would wrap to "long ago"). */
static inline bool ss_release_settled(uint32_t since_ms, uint32_t now_ms)
{
    return (int32_t)(now_ms - since_ms) >= SS_RELEASE_SETTLE_MS;
}
/* A superslab's waiting slabs (pending: their mask) go back now. */
static inline bool ss_release_batch_due(uint32_t pending, uint32_t since_ms, uint32_t now_ms)
{
    return __builtin_popcount(pending) >= SS_RELEASE_SLAB_BATCH && ss_release_settled(since_ms, now_ms);
}

/* ---- The decisions, time and footprint passed in ------------------------- */
/* The hysteresis state: the extra budget that bounces earned, and when it
 * was last grown or used. The library has one (ss_release_state). */
typedef struct ss_release_state {
    _Atomic int64_t bonus;       /* bytes */
    _Atomic int64_t last_use_ms; /* last bounce, or last keep the bonus made */
    _Atomic int64_t shrink_ms;   /* last release with the footprint over budget (0: none) */
} ss_release_state_t;

/* The bonus at now_ms, decayed; gone once unused for the purge delay
 * (delay_ms; -1: never). */
int64_t ss_release_bonus_at(ss_release_state_t *st, int64_t now_ms);
int64_t ss_release_bonus_delay_at(ss_release_state_t *st, int64_t now_ms, int64_t delay_ms);

/* The purge delay (FAST and LEAN): what is kept for reuse beyond what is
 * in use (cached superslabs and large ranges, the empty superslab a heap
 * keeps, the bonus) goes back once unused for the delay. The caches
 * record since when an entry is unused; these decide. Memory unused since
 * since_ms: does it go back at now_ms? */
bool ss_release_purge_due_at(int64_t since_ms, int64_t now_ms, int64_t delay_ms);
/* How long between passes over one cache (-1: no passes). */
int64_t ss_release_purge_interval_ms(int64_t delay_ms);
/* Claim a pass over one cache at now_ms (last_ms: that cache's last pass);
 * false if one ran less than an interval ago (an eighth of slack: the
 * background thread sleeps one interval and the coarse clock may see a
 * few ms less), or the delay is -1. 0 = at once: every call may pass. */
bool ss_release_purge_claim_at(_Atomic int64_t *last_ms, int64_t now_ms, int64_t delay_ms);
/* Released memory of `bytes` was taken again at now_ms: a bounce. */
void ss_release_reuse_at(ss_release_state_t *st, int64_t now_ms, size_t bytes);
/* Keep an empty superslab, with `cached` superslabs in the cache and
 * `committed` bytes resident, under a target of target_bytes? No on the
 * target's account within SS_RELEASE_SHRINK_MS of a release over budget
 * (a "no" over budget starts that window). */
bool ss_release_keep_at(ss_release_state_t *st, int64_t now_ms, int64_t target_bytes, int64_t cached,
                        int64_t committed);
/* Give the pages of a slab that just became unused back now? */
bool ss_release_decommit_slab_at(ss_release_state_t *st, int64_t now_ms, int64_t target_bytes, int64_t committed);
/* How many empty superslabs the cache may hold at now_ms. */
int64_t ss_release_allowance_at(ss_release_state_t *st, int64_t now_ms);

/* ---- The library's entry points (its own state, clock and gauges) -------- */
/* Keep (cache) this empty superslab? class_idx: the class of its last slab,
 * or -1. FAST: always true. */
struct hk_superslab;
bool ss_should_keep_superslab(struct hk_superslab *ss, int class_idx);
/* Keep an empty medium region committed, `cached` such regions being
 * kept already? The same decision as for an empty superslab, the regions
 * counted with the cached superslabs. FAST: always true. */
bool ss_should_keep_region(int64_t cached);
/* Give the pages of [ptr, ptr+size) back with LEAN's strategy. 0 on success
 * (pages released, range still mapped); -1 if the strategy is OFF, the guard
 * refused, or madvise failed: the caller then keeps or unmaps the range. */
int ss_maybe_decommit_superslab(void *ptr, size_t size);
/* LEAN: should the pages of a slab that just became unused (in a superslab
 * still in use) go back now? True when the footprint is over budget. */
bool ss_should_decommit_slab(void);
/* Released memory (a superslab, a slab, a large block) was taken again. */
void ss_release_policy_note_reuse(size_t bytes);
/* How many empty superslabs the LEAN cache may hold now. */
int64_t ss_release_cache_allowance(void);
/* Empty superslabs a heap keeps for itself before handing them to
 * superslab_free(): FAST 1, LEAN 0 (the cache decides instead). */
unsigned ss_release_heap_keep_empty(void);
/* The byte limit of the large-block cache, given the configured one
 * (HAKMEM_LARGE_CACHE_MB): LEAN (giving back) caps it at the budget, target
 * plus bonus, so freed large blocks do not outlive it, while a program
 * that frees and re-allocates big buffers in a loop earns the cache back.
 * Within SS_RELEASE_SHRINK_MS of a release over budget, the bonus alone. */
size_t ss_release_large_cache_limit(size_t configured);
/* The large-block cache gave ranges back to stay within that limit: if
 * the limit was LEAN's budget (below the configured one), the program is
 * over budget and shrinking, as for a superslab released over budget. */
void ss_release_large_over_limit(size_t configured);
/* Within SS_RELEASE_SHRINK_MS of a release over budget at now_ms? */
bool ss_release_shrinking_at(ss_release_state_t *st, int64_t now_ms);
/* Current extra budget from bounces, in bytes (for tests). */
int64_t ss_release_policy_bonus(void);
/* The effective purge delay, ms (-1 never, 0 at once). */
int64_t ss_purge_delay_ms(void);
/* The purge decisions with the library's delay. */
bool ss_purge_due(int64_t since_ms, int64_t now_ms);
bool ss_purge_pass_claim(_Atomic int64_t *last_ms, int64_t now_ms);
/* The purge delay's way of giving back the pages of unused slabs of a
 * superslab still in use: LEAN's strategy when LEAN gives back (on, and
 * DECOMMIT not OFF), else fresh zero pages in place (FAST behaviour: the
 * FAST-only library has no madvise, and LEAN's counters stay LEAN's).
 * [ptr, ptr+size) must lie in hakmem's superslabs. 0 on success. */
int ss_release_purge_pages(void *ptr, size_t size);
/* Does a purged superslab keep its range, pages decommitted (LEAN giving
 * back), or is it unmapped (FAST, OFF)? */
static inline bool ss_purge_by_decommit(void) { return config_lean && ss_release_gives_back(); }
/* Sets the settings' defaults that are the policy's (before the first
 * parse: from the library's init, and at load). */
void ss_release_policy_init(void);

#endif
