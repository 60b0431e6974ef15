/* size_class_box: the class tables. See size_class_box.h.
 * The tables are constants, expanded at compile time from the definition
 * in the header, so lookups need no set-up; tests/unit checks them against
 * hk_size_to_class_slow() too. */
#include "hakmem_internal.h"
#include "base/size_class_box.h"

/* g_hk_class_direct[i] = class of a request of i * 16 bytes, i <= 128. */
#define D1(i) HK_SIZE_CLASS((size_t)(i) * 16)
#define D4(i) D1(i), D1((i) + 1), D1((i) + 2), D1((i) + 3)
#define D16(i) D4(i), D4((i) + 4), D4((i) + 8), D4((i) + 12)
#define D64(i) D16(i), D16((i) + 16), D16((i) + 32), D16((i) + 48)
_Static_assert(HK_DIRECT_MAX / 16 + 1 == 129, "the direct table is written out for 2 KiB");
const uint8_t g_hk_class_direct[HK_DIRECT_SLOTS] = {D64(0), D64(64), D1(128)};

#define S1(c) HK_CLASS_SIZE(c)
#define S4(c) S1(c), S1((c) + 1), S1((c) + 2), S1((c) + 3)
#define S16(c) S4(c), S4((c) + 4), S4((c) + 8), S4((c) + 12)
#define S64(c) S16(c), S16((c) + 16), S16((c) + 32), S16((c) + 48)
_Static_assert(HK_CLASS_TABLE_CAP == 128, "the size table is written out for 128 classes");
const uint32_t g_hk_class_size[HK_CLASS_TABLE_CAP] = {S64(0), S64(64)};

unsigned hk_size_to_class_slow(size_t size) { return HK_SIZE_CLASS(size); }

uint32_t hk_div_magic(uint32_t size)
{
    return (uint32_t)((((uint64_t)1 << 32) + size - 1) / size);
}

int hk_class_for_aligned(size_t size, size_t align)
{
    if (size > HK_SMALL_MAX || align > HK_SMALL_MAX)
        return -1;
    for (unsigned c = hk_size_to_class(size); c < HK_NUM_CLASSES; c++) {
        if (g_hk_class_size[c] % align == 0)
            return (int)c;
    }
    return -1;
}
