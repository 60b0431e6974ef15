/* ss_hot_prewarm_box (prewarm box): at start-up in FAST, make the
 * superslabs that the hot size classes will be carved from resident in one
 * call each (no page fault per page later, in the program's timed loops).
 * LEAN does no prewarm (HAKMEM_SS_MEM_LEAN=1: returns 0 at once).
 * Owns: how much is prewarmed (HAKMEM_PREWARM_SS superslabs, default 2).
 * Must not: hand blocks out; it only prepares superslabs in the cache. */
#ifndef HAKMEM_SS_HOT_PREWARM_BOX_H
#define HAKMEM_SS_HOT_PREWARM_BOX_H

/* Returns the number of superslabs prewarmed. */
int box_ss_hot_prewarm_all(void);

#endif
