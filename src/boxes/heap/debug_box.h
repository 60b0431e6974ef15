/* debug_box (heap): the debug build's checks on small blocks, apart from
 * the hot paths that call them under `if (config_debug)`.
 *  - Junk: a free block is filled with HK_JUNK_BYTE past its link and tag;
 *    the junk is checked when the block is handed out again, so a write
 *    after free is reported.
 *  - Canary: a debug block is laid out as [requested bytes][canary ...]
 *    [requested size, 8 bytes]; the canary is checked at free (a write past
 *    the end), and the stored size is the block's usable size.
 * Owns: the junk and canary formats and their checks.
 * Must not: touch slabs or heaps; report otherwise than through diag_box. */
#ifndef HAKMEM_DEBUG_BOX_H
#define HAKMEM_DEBUG_BOX_H

#include "hakmem_internal.h"

#define HK_JUNK_BYTE 0xDF
void hk_debug_junk_fill(hk_block_t *b, size_t block_size);
void hk_debug_junk_check(hk_block_t *b, size_t block_size);

#define HK_CANARY_BYTE 0xCA
void hk_debug_canary_set(void *p, size_t block_size, size_t size);
/* Checks the canary; returns the requested size (block size if none). */
size_t hk_debug_canary_check(void *p, size_t block_size);

#endif
