/* ss_registry_box: the byte map of owned 2 MiB chunks. See the header. */
#include "hakmem_internal.h"
#include "os/ss_registry_box.h"
#include "os/ss_os_acquire_box.h"

uint8_t *g_hk_reg_map;
uintptr_t g_hk_reg_limit;

int hk_os_registry_init(void)
{
    if (g_hk_reg_map)
        return 0;
    uint8_t *map = hk_os_reserve(HK_REG_ENTRIES);
    if (!map)
        return -1;
    g_hk_reg_map = map;
    atomic_thread_fence(memory_order_release);
    g_hk_reg_limit = HK_REG_ENTRIES;
    return 0;
}

void hk_os_registry_set(uintptr_t base, size_t size, unsigned kind)
{
    uintptr_t first = base >> HK_SS_SHIFT;
    uintptr_t last = (base + size - 1) >> HK_SS_SHIFT;
    for (uintptr_t i = first; i <= last && i < g_hk_reg_limit; i++) {
        /* A large mapping may share a chunk with another large mapping, never
         * with a superslab (superslabs fill whole chunks): a LARGE mark is
         * only a hint, so it is never downgraded to NONE here. */
        if (kind == HK_REG_NONE && __atomic_load_n(&g_hk_reg_map[i], __ATOMIC_RELAXED) == HK_REG_LARGE)
            continue;
        __atomic_store_n(&g_hk_reg_map[i], (uint8_t)kind, __ATOMIC_RELEASE);
    }
}

bool hk_os_registry_covers_regions(uintptr_t base, size_t size)
{
    if (size == 0 || base + size < base)
        return false;
    uintptr_t first = base >> HK_SS_SHIFT;
    uintptr_t last = (base + size - 1) >> HK_SS_SHIFT;
    for (uintptr_t i = first; i <= last; i++) {
        if (i >= g_hk_reg_limit)
            return false;
        unsigned kind = __atomic_load_n(&g_hk_reg_map[i], __ATOMIC_RELAXED);
        if (kind != HK_REG_SUPERSLAB && kind != HK_REG_MEDIUM)
            return false;
    }
    return true;
}
