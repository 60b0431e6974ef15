/* size_class_box: the class tables. See size_class_box.h.
 * The tables are constants, written out so that lookups need no set-up;
 * tests/unit checks them against hk_size_to_class_slow(). */
#include "hakmem_internal.h"
#include "base/size_class_box.h"

/* g_hk_class_direct[(size + 15) / 16] = class of size, for size <= 1024. */
const uint8_t g_hk_class_direct[HK_DIRECT_MAX / 16 + 1] = {
    0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
    15, 16, 16, 17, 17, 18, 18, 19, 19, 20, 20, 21, 21, 22, 22, 23,
    23, 24, 24, 24, 24, 25, 25, 25, 25, 26, 26, 26, 26, 27, 27, 27,
    27, 28, 28, 28, 28, 29, 29, 29, 29, 30, 30, 30, 30, 31, 31, 31,
    31,
};

const uint32_t g_hk_class_size[HK_NUM_CLASSES] = {
    16, 32, 48, 64, 80, 96, 112, 128,
    144, 160, 176, 192, 208, 224, 240, 256,
    288, 320, 352, 384, 416, 448, 480, 512,
    576, 640, 704, 768, 832, 896, 960, 1024,
    1152, 1280, 1408, 1536, 1664, 1792, 1920, 2048,
    2304, 2560, 2816, 3072, 3328, 3584, 3840, 4096,
    4608, 5120, 5632, 6144, 6656, 7168, 7680, 8192,
    9216, 10240, 11264, 12288, 13312, 14336, 15360, 16384,
    18432, 20480, 22528, 24576, 26624, 28672, 30720, 32768,
};

unsigned hk_size_to_class_slow(size_t size)
{
    if (size <= 128)
        return size == 0 ? 0 : (unsigned)((size - 1) >> 4);
    size_t s = size - 1;
    unsigned b = 63u - (unsigned)__builtin_clzl(s);
    return 8u + (b - 7u) * 8u + ((unsigned)(s >> (b - 3)) - 8u);
}

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
