/* debug_box: the debug build's checks on small blocks. See the header. */
#include "hakmem_internal.h"
#include "heap/debug_box.h"
#include "base/diag_box.h"

#include <string.h>

void hk_debug_junk_fill(hk_block_t *b, size_t block_size)
{
    memset((uint8_t *)b + sizeof *b, HK_JUNK_BYTE, block_size - sizeof *b);
}

void hk_debug_junk_check(hk_block_t *b, size_t block_size)
{
    const uint8_t *p = (const uint8_t *)b + sizeof *b;
    for (size_t i = 0; i < block_size - sizeof *b; i++) {
        if (p[i] != HK_JUNK_BYTE) {
            hk_report_misuse("write after free", (uint8_t *)b + sizeof *b + i,
                             "a freed block was modified");
            return;
        }
    }
}

/* The trailer: requested size in the low half, a marker in the high half,
 * so a block allocated without a canary is never mistaken for one. */
#define HK_CANARY_MARK 0x43414e41ull /* "CANA" */

void hk_debug_canary_set(void *p, size_t block_size, size_t size)
{
    uint8_t *b = (uint8_t *)p;
    uint64_t trailer = (HK_CANARY_MARK << 32) | (uint64_t)size;
    memset(b + size, HK_CANARY_BYTE, block_size - 8 - size);
    memcpy(b + block_size - 8, &trailer, 8);
}

size_t hk_debug_canary_check(void *p, size_t block_size)
{
    const uint8_t *b = (const uint8_t *)p;
    uint64_t trailer;
    memcpy(&trailer, b + block_size - 8, 8);
    uint64_t size = trailer & 0xffffffffu;
    if ((trailer >> 32) != HK_CANARY_MARK || size + 16 > block_size) {
        /* Not a canaried block (the largest small sizes have no room for
         * one), or its trailer was overwritten: nothing to check. */
        return block_size;
    }
    for (size_t i = size; i < block_size - 8; i++) {
        if (b[i] != HK_CANARY_BYTE) {
            hk_report_misuse("heap overflow", b + i, "write past the end of a block");
            break;
        }
    }
    return (size_t)size;
}
