/* size_class_box: request size <-> size class.
 *
 * Classes: 16..128 in steps of 16 (classes 0-7), then eight classes per
 * doubling up to 32 KiB (classes 8-71). Every class size is a multiple of
 * 16, so every block is 16-byte aligned. From 128 bytes up, the space a
 * request wastes is under 12.5% of it; between 64 and 128 bytes the 16-byte
 * step (needed for alignment) allows up to 23%.
 * Owns: the class tables, and the divisibility constants that let free()
 * check "is this the start of a block" with one multiply.
 * Must not: depend on any other box. */
#ifndef HAKMEM_SIZE_CLASS_BOX_H
#define HAKMEM_SIZE_CLASS_BOX_H

#include "hakmem_internal.h"

/* Sizes up to this use the direct lookup table. */
#define HK_DIRECT_MAX 1024

extern HK_HIDDEN const uint8_t g_hk_class_direct[HK_DIRECT_MAX / 16 + 1];
extern HK_HIDDEN const uint32_t g_hk_class_size[HK_NUM_CLASSES];

/* Class of a request of `size` bytes (size <= HK_SMALL_MAX). */
HK_INLINE unsigned hk_size_to_class(size_t size)
{
    if (HK_LIKELY(size <= HK_DIRECT_MAX))
        return g_hk_class_direct[(size + 15) >> 4];
    size_t s = size - 1;
    unsigned b = 63u - (unsigned)__builtin_clzl(s); /* floor(log2(s)), >= 10 here */
    unsigned sub = (unsigned)(s >> (b - 3)) - 8u;
    return 8u + (b - 7u) * 8u + sub;
}

HK_INLINE size_t hk_class_size(unsigned cls) { return g_hk_class_size[cls]; }

/* Computed form of the mapping, used to build and to test the tables. */
unsigned hk_size_to_class_slow(size_t size);
/* ceil(2^32 / size): off % size == 0 iff (uint32_t)(off * m) < m, and
 * off / size == (off * m) >> 32, for off < 64 KiB and size <= 32 KiB. */
uint32_t hk_div_magic(uint32_t size);
/* Smallest class >= `size` whose block size is a multiple of `align`, so
 * every block of it is `align`-aligned in a 64 KiB-aligned slab; -1 if none. */
int hk_class_for_aligned(size_t size, size_t align);

#endif
