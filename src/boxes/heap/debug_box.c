/* debug_box: the debug build's checks around blocks. See the header. */
#include "hakmem_internal.h"
#include "heap/debug_box.h"
#include "base/misuse_box.h"

#include <string.h>

/* The trailer's mark ("HKCANARY"), and the size word of a free block. */
#define HK_CANARY_MARK 0x59524148414e4b48ull
#define HK_DEBUG_FREE UINT64_MAX

static uint64_t word_at(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static void trailer_set(uint8_t *b, size_t bs, uint64_t size)
{
    uint64_t t[2] = {size, HK_CANARY_MARK};
    memcpy(b + bs - HK_DEBUG_TRAILER, t, sizeof t);
}

void hk_debug_junk_fill(hk_block_t *b, size_t bs)
{
    uint8_t *p = (uint8_t *)b;
    if (bs < sizeof *b + HK_DEBUG_TRAILER) {
        /* A 16-byte block (never one of a debug request): no trailer. */
        memset(p + sizeof *b, HK_JUNK_BYTE, bs - sizeof *b);
        return;
    }
    memset(p + sizeof *b, HK_JUNK_BYTE, bs - sizeof *b - HK_DEBUG_TRAILER);
    trailer_set(p, bs, HK_DEBUG_FREE);
}

void hk_debug_junk_check(hk_block_t *b, size_t bs)
{
    const uint8_t *p = (const uint8_t *)b;
    size_t end = bs < sizeof *b + HK_DEBUG_TRAILER ? bs : bs - HK_DEBUG_TRAILER;
    for (size_t i = sizeof *b; i < end; i++) {
        if (p[i] != HK_JUNK_BYTE) {
            hk_report_misuse("write after free", p + i, "a freed block was modified");
            return;
        }
    }
    if (end != bs && (word_at(p + end) != HK_DEBUG_FREE || word_at(p + end + 8) != HK_CANARY_MARK))
        hk_report_misuse("write after free", p + end, "a freed block was modified");
}

void hk_debug_canary_set(void *p, size_t bs, size_t size)
{
    uint8_t *b = (uint8_t *)p;
    if (bs < sizeof(hk_block_t) + HK_DEBUG_TRAILER)
        return; /* a 16-byte block: no room (never a debug request) */
    memset(b + size, HK_CANARY_BYTE, bs - HK_DEBUG_TRAILER - size);
    trailer_set(b, bs, size);
}

/* The block's own canary and trailer. Returns the requested size. `next`:
 * a block follows in the same slab (whose underflow would land on this
 * trailer). */
static size_t check_own(uint8_t *b, size_t bs, bool next)
{
    uint64_t size = word_at(b + bs - HK_DEBUG_TRAILER);
    uint64_t mark = word_at(b + bs - 8);
    size_t last = bs - HK_DEBUG_SLACK; /* the last canary byte */
    if (mark == HK_CANARY_MARK && size == HK_DEBUG_FREE)
        return last; /* a free block (a realloc after free: the caller says so) */
    if (mark != HK_CANARY_MARK || size > last) {
        /* An overflow runs on from the requested end, over the last
         * canary byte, into the trailer; a trailer broken behind an intact
         * canary was written from the other side. */
        if (next && b[last] == HK_CANARY_BYTE)
            hk_report_misuse("heap underflow", b + bs, "write before the start of a block");
        else
            hk_report_misuse("heap overflow", b, "write past the end of a block");
        return last;
    }
    for (size_t i = size; i <= last; i++) {
        if (b[i] != HK_CANARY_BYTE) {
            hk_report_misuse("heap overflow", b, "write past the end of a block");
            break;
        }
    }
    return (size_t)size;
}

size_t hk_debug_canary_check(void *p, size_t bs)
{
    uint8_t *b = (uint8_t *)p;
    if (bs < sizeof(hk_block_t) + HK_DEBUG_TRAILER)
        return bs; /* a 16-byte block: no canary (never a debug request) */
    size_t off = (uintptr_t)p & (HK_SLAB_SIZE - 1);
    /* The block before, in the same slab, carved before this one. */
    if (off >= bs && word_at(b - 8) != HK_CANARY_MARK) {
        const uint8_t *prev = b - bs;
        uint64_t psize = word_at(b - HK_DEBUG_TRAILER);
        /* Its own overflow would have run over its canary from its
         * requested end; a free block (junk) does not overflow. */
        bool from_prev = psize != HK_DEBUG_FREE && !(psize <= bs - HK_DEBUG_SLACK && prev[psize] == HK_CANARY_BYTE) &&
                         b[-HK_DEBUG_SLACK] != HK_CANARY_BYTE && b[-HK_DEBUG_SLACK] != HK_JUNK_BYTE;
        if (from_prev)
            hk_report_misuse("heap overflow", prev, "write past the end of a block");
        else
            hk_report_misuse("heap underflow", b, "write before the start of a block");
    }
    return check_own(b, bs, off + 2 * bs <= HK_SLAB_SIZE);
}

size_t hk_debug_canary_check_large(void *p, size_t bs)
{
    if (bs < HK_DEBUG_SLACK)
        return bs;
    return check_own((uint8_t *)p, bs, false);
}
