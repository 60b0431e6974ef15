/* ss_hot_prewarm_box (prewarm box): FAST start-up prewarm.
 *
 * At load time, in the thread that loads the library, every hot size class
 * (requests up to HAKMEM_PREWARM_CLASS_MAX bytes, default 1024) gets its
 * slab formatted and its first page of blocks carved and made resident, so
 * a program's first allocations of those sizes take no page fault and no
 * slab set-up. That costs about 4 KiB per class (128 KiB). Programs that
 * want more memory resident up front can ask for whole superslabs with
 * HAKMEM_PREWARM_SS=N (2 MiB each, one populate call each).
 * LEAN does no prewarm (HAKMEM_SS_MEM_LEAN=1: returns 0 at once).
 * Called from the library's constructor (api_box), after init, with the
 * calling thread started: it allocates through that thread's heap.
 * Owns: what is prewarmed and how much.
 * Must not: keep blocks: whatever it allocates it frees again. */
#ifndef HAKMEM_SS_HOT_PREWARM_BOX_H
#define HAKMEM_SS_HOT_PREWARM_BOX_H

/* Returns the number of classes plus superslabs prewarmed. */
int box_ss_hot_prewarm_all(void);

#endif
