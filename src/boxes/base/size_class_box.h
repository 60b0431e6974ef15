/* size_class_box: request size <-> size class.
 *
 * The classes come from one definition, two parameters and the small-object
 * limit: a quantum (16 bytes) and a number of classes per doubling (8).
 * Up to quantum x steps (128 bytes) the classes are multiples of the
 * quantum (classes 0-7); above, each doubling up to HK_SMALL_MAX (32 KiB)
 * is cut into 8 equal steps (classes 8-71). Every class size is a multiple
 * of 16, so every block is 16-byte aligned. From 128 bytes up, the space a
 * request wastes is under 12.5% of it; between 64 and 128 bytes the 16-byte
 * step (needed for alignment) allows up to 23%. The number of classes, both
 * tables and both lookups are derived from HK_CLASS_SIZE / HK_SIZE_CLASS
 * below; changing a parameter changes all of them (static assertions check
 * the shape).
 * Owns: the class definition and tables, and the divisibility constants
 * that let free() check "is this the start of a block" with one multiply.
 * Must not: depend on any other box. */
#ifndef HAKMEM_SIZE_CLASS_BOX_H
#define HAKMEM_SIZE_CLASS_BOX_H

#include "hakmem_internal.h"

/* ---- The definition ------------------------------------------------------ */
#define HK_CLASS_QUANTUM_SHIFT 4 /* 16 bytes: alignment, and the step up to 128 */
#define HK_CLASS_STEPS_SHIFT 3   /* 8 classes per doubling */

#define HK_CLASS_STEPS (1u << HK_CLASS_STEPS_SHIFT)
#define HK_CLASS_LINEAR_SHIFT (HK_CLASS_QUANTUM_SHIFT + HK_CLASS_STEPS_SHIFT)
#define HK_NUM_CLASSES ((int)(HK_CLASS_STEPS * (1 + HK_SMALL_MAX_SHIFT - HK_CLASS_LINEAR_SHIFT)))

/* Size of class c (a constant expression for constant c; 0 past the last). */
#define HK_CLASS_SIZE(c)                                                                                          \
    ((unsigned)(c) >= (unsigned)HK_NUM_CLASSES ? 0u                                                               \
     : (unsigned)(c) < HK_CLASS_STEPS          ? ((unsigned)(c) + 1u) << HK_CLASS_QUANTUM_SHIFT                    \
                                               : (HK_CLASS_STEPS + 1u + (unsigned)(c) % HK_CLASS_STEPS)              \
                                          << (HK_CLASS_QUANTUM_SHIFT + (unsigned)(c) / HK_CLASS_STEPS - 1u))
/* Class of a request of s bytes, s <= HK_SMALL_MAX (0 for 0): the smallest
 * class that fits. Above the linear range, b = floor(log2(s - 1)) picks
 * the doubling and the next HK_CLASS_STEPS_SHIFT bits the step. */
#define HK_SIZE_CLASS_LOG2(s) (63u - (unsigned)__builtin_clzl((unsigned long)(s) - 1))
#define HK_SIZE_CLASS(s)                                                                                          \
    ((size_t)(s) <= ((size_t)1 << HK_CLASS_LINEAR_SHIFT)                                                          \
         ? ((size_t)(s) == 0 ? 0u : (unsigned)(((size_t)(s) - 1) >> HK_CLASS_QUANTUM_SHIFT))                    \
         : (HK_SIZE_CLASS_LOG2(s) - HK_CLASS_LINEAR_SHIFT + 1u) * HK_CLASS_STEPS +                               \
               (unsigned)(((size_t)(s) - 1) >> (HK_SIZE_CLASS_LOG2(s) - HK_CLASS_STEPS_SHIFT)) - HK_CLASS_STEPS)

_Static_assert(HK_CLASS_SIZE(HK_NUM_CLASSES - 1) == HK_SMALL_MAX, "the last class is HK_SMALL_MAX");
_Static_assert(HK_CLASS_SIZE(HK_CLASS_STEPS) % (1u << HK_CLASS_QUANTUM_SHIFT) == 0 &&
                   HK_CLASS_SIZE(HK_NUM_CLASSES - 1) % (1u << HK_CLASS_QUANTUM_SHIFT) == 0,
               "class sizes are multiples of the quantum");
_Static_assert(HK_SIZE_CLASS(HK_SMALL_MAX) == HK_NUM_CLASSES - 1 && HK_SIZE_CLASS(HK_CLASS_SIZE(9) + 1) == 10,
               "size -> class inverts class -> size");
_Static_assert(HK_NUM_CLASSES <= 255, "a class fits hk_slab_t.cls (uint8_t)");

/* ---- The tables (size_class_box.c, built from the definition) ----------- */
/* Sizes up to this use the direct lookup table (129 bytes: two cache
 * lines and a byte; requests of 1-2 KiB are common enough to earn it). */
#define HK_DIRECT_MAX 2048
/* Room for this many classes in g_hk_class_size (entries past the last read 0). */
#define HK_CLASS_TABLE_CAP 128
_Static_assert(HK_NUM_CLASSES <= HK_CLASS_TABLE_CAP, "g_hk_class_size has room for every class");

/* Entries of the direct table: one per 16 bytes of request size. */
#define HK_DIRECT_SLOTS (HK_DIRECT_MAX / 16 + 1)
extern HK_HIDDEN const uint8_t g_hk_class_direct[HK_DIRECT_SLOTS];
extern HK_HIDDEN const uint32_t g_hk_class_size[HK_CLASS_TABLE_CAP];

/* The direct table's entry of a request of `size` <= HK_DIRECT_MAX bytes. */
HK_INLINE size_t hk_size_slot(size_t size) { return (size + 15) >> 4; }
/* Class of a request of `size` <= HK_DIRECT_MAX bytes: one load. */
HK_INLINE unsigned hk_size_to_class_direct(size_t size) { return g_hk_class_direct[hk_size_slot(size)]; }

/* Class of a request of `size` bytes (size <= HK_SMALL_MAX). */
HK_INLINE unsigned hk_size_to_class(size_t size)
{
    if (HK_LIKELY(size <= HK_DIRECT_MAX))
        return hk_size_to_class_direct(size);
    return HK_SIZE_CLASS(size);
}

HK_INLINE size_t hk_class_size(unsigned cls) { return g_hk_class_size[cls]; }

/* Computed form of the mapping (no table), to test the tables against. */
unsigned hk_size_to_class_slow(size_t size);
/* ceil(2^32 / size): off % size == 0 iff (uint32_t)(off * m) < m, and
 * off / size == (off * m) >> 32, for off < 64 KiB and size <= 32 KiB. */
uint32_t hk_div_magic(uint32_t size);
/* Smallest class >= `size` whose block size is a multiple of `align`, so
 * every block of it is `align`-aligned in a 64 KiB-aligned slab; -1 if none. */
int hk_class_for_aligned(size_t size, size_t align);

#endif
