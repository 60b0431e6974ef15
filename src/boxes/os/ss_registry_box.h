/* ss_registry_box: which address ranges hakmem owns.
 *
 * Owns: a byte map with one entry per 2 MiB of the 47-bit user address
 * space (64 MiB of reserved, lazily committed address space; a touched page
 * of it covers 8 GiB): NONE, SUPERSLAB (the chunk is one of our superslabs),
 * MEDIUM (one of our medium regions: medium_box), LARGE (some large
 * mapping of ours touches the chunk: ask large_box), SAMPLED or GUARDED
 * (the profiler's and guarded sampling's pools).
 * It lets free/realloc/malloc_usable_size decide whether a pointer is ours
 * from our own metadata, without reading the pointed-to memory.
 * Must not: read the memory it describes. */
#ifndef HAKMEM_SS_REGISTRY_BOX_H
#define HAKMEM_SS_REGISTRY_BOX_H

#include "hakmem_internal.h"

/* SAMPLED: a chunk of the heap profiler's sampled small blocks
 * (front/prof_box). MEDIUM: one of our medium regions (medium_box).
 * GUARDED: the pool of guarded sampling (front/guard_box). */
enum {
    HK_REG_NONE = 0,
    HK_REG_SUPERSLAB = 1,
    HK_REG_LARGE = 2,
    HK_REG_SAMPLED = 3,
    HK_REG_MEDIUM = 4,
    HK_REG_GUARDED = 5
};

#define HK_REG_ENTRIES ((size_t)1 << (47 - HK_SS_SHIFT))

/* g_hk_reg_limit is 0 until the map exists, so every lookup before init
 * answers NONE without touching the (absent) map. */
extern HK_HIDDEN uint8_t *g_hk_reg_map;
extern HK_HIDDEN uintptr_t g_hk_reg_limit;

/* Map an address to its entry; NONE for anything outside the map. */
HK_INLINE unsigned hk_os_registry_kind(uintptr_t addr)
{
    uintptr_t idx = addr >> HK_SS_SHIFT;
    if (HK_UNLIKELY(idx >= g_hk_reg_limit))
        return HK_REG_NONE;
    return __atomic_load_n(&g_hk_reg_map[idx], __ATOMIC_RELAXED); /* set by other threads */
}

/* Reserve the map. 0 on success, -1 if the address space is not there. */
int hk_os_registry_init(void);
/* Mark every 2 MiB chunk touching [base, base+size) with kind. */
void hk_os_registry_set(uintptr_t base, size_t size, unsigned kind);
/* Is [base, base+size) wholly inside superslabs or medium regions hakmem
 * mapped (whole 2 MiB chunks of its own, never shared with anyone)? */
bool hk_os_registry_covers_regions(uintptr_t base, size_t size);

#endif
