/* debug_box (heap): the debug build's checks around every block, apart
 * from the hot paths that call them under `if (config_debug)`.
 *  - Junk: a free block is filled with HK_JUNK_BYTE past its link and tag,
 *    up to its trailer; the junk is checked when the block is handed out
 *    again, so a write after free is reported.
 *  - Canary: a debug block (small or large) is laid out as
 *        [requested bytes][canary: HK_CANARY_BYTE ...][size, 8][mark, 8]
 *    with at least one canary byte (HK_DEBUG_SLACK: a request takes its
 *    class for size + 17 bytes), so the first byte of every overflow lands
 *    on the canary. The mark stays in place while the block is free (its
 *    size then reads HK_DEBUG_FREE), so the last bytes of every carved
 *    small block are known: the byte before a block is its neighbour's
 *    mark, and an underflow shows there.
 *    At free, realloc and malloc_usable_size: the block's own canary and
 *    trailer (an overflow; a trailer broken behind an intact canary is the
 *    next block's underflow) and, for a small block that is not the first
 *    of its slab, the mark of the block before it (this block's underflow,
 *    or that block's overflow run on). The first block of a 64 KiB slab
 *    has no neighbour before it in the slab: an underflow of it is not
 *    seen. A large block is checked at its end only (the page before it
 *    is another mapping).
 * Owns: the junk and canary formats and their checks.
 * Must not: touch slabs' metadata or heaps; report otherwise than through
 * misuse_box. */
#ifndef HAKMEM_DEBUG_BOX_H
#define HAKMEM_DEBUG_BOX_H

#include "hakmem_internal.h"

#define HK_JUNK_BYTE 0xDF
#define HK_CANARY_BYTE 0xCA
/* The trailer (size, mark) and at least one canary byte. */
#define HK_DEBUG_TRAILER 16
#define HK_DEBUG_SLACK (HK_DEBUG_TRAILER + 1)

/* bs: the block's size (a small block's class size; a large block's
 * usable size). Small blocks of debug classes are at least 32 bytes:
 * the trailer never overlaps a free block's link and tag. */
void hk_debug_junk_fill(hk_block_t *b, size_t bs);
void hk_debug_junk_check(hk_block_t *b, size_t bs);

void hk_debug_canary_set(void *p, size_t bs, size_t size);
/* Checks the canary of a small block and its neighbour before it in the
 * slab (p is the start of a carved block); returns the requested size
 * (bs - HK_DEBUG_SLACK if its trailer was overwritten). */
size_t hk_debug_canary_check(void *p, size_t bs);
/* The same for a large block of usable size bs (its end only; every large
 * block of the debug library carries a canary, but the profiler's samples,
 * which the caller does not check). Returns the requested size. */
size_t hk_debug_canary_check_large(void *p, size_t bs);

#endif
