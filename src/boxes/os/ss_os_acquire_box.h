/* ss_os_acquire_box (os box): the only code that talks to the kernel about
 * memory (mmap, munmap, mremap, madvise, mprotect); the only file that includes
 * <sys/mman.h>.
 *
 * Contract, for every function: sizes are non-zero multiples of the page
 * size, addresses page-aligned; errno is saved and restored, so callers see
 * the errno they had (they set ENOMEM themselves when they fail a request);
 * every call is counted (stats box); the bytes_mapped gauge follows
 * map/unmap/remap, bytes_reserved what hk_os_reserve reserved. In the debug build HAKMEM_FAULT_MMAP=N makes the Nth
 * mapping fail, for tests.
 * Must not: call up into any allocator box. */
#ifndef HAKMEM_SS_OS_ACQUIRE_BOX_H
#define HAKMEM_SS_OS_ACQUIRE_BOX_H

#include <stdbool.h>
#include <stddef.h>

/* Fresh zeroed read-write memory, or NULL. */
void *hk_os_map(size_t size);
/* Fresh zeroed memory aligned to `align` (a power of two >= page size), or
 * NULL. Tries an aligned hint first (one syscall), else over-maps and trims. */
void *hk_os_map_aligned(size_t size, size_t align);
/* Reserve address space without committing memory (MAP_NORESERVE), or NULL.
 * Counted as reserved, not mapped: untouched address space is no memory. */
void *hk_os_reserve(size_t size);
/* Give a range back. Returns 0, or -1 (the range stays mapped). */
int hk_os_unmap(void *p, size_t size);
/* Grow or shrink a mapping, moving it if needed; NULL on failure (the old
 * mapping is then unchanged). */
void *hk_os_remap(void *p, size_t old_size, size_t new_size);
/* Replace the pages of [p, p+size), part of a mapping of ours, with fresh
 * zero pages in place (mmap MAP_FIXED over it: one call, the range never
 * unmapped in between): how a build without the LEAN code gives pages
 * back. Only the release policy calls it, for ranges inside hakmem's
 * superslabs. 0, or -1 (the pages stay). Saves errno. */
int hk_os_reset(void *p, size_t size);
/* Make a range resident now (one call instead of a page fault per page),
 * so the first touches of a prewarmed range cost nothing. Best effort. */
void hk_os_populate(void *p, size_t size);

/* Make [p, p+size), part of a mapping of ours, accessible (read-write)
 * or not (PROT_NONE: any access faults): the guarded pool's pages
 * (front/guard_box). 0, or -1 (the protection is unchanged). Saves errno. */
int hk_os_protect(void *p, size_t size, bool accessible);

/* Advice kinds for hk_os_madvise_raw. */
typedef enum {
    HK_ADVICE_FREE,     /* MADV_FREE */
    HK_ADVICE_DONTNEED, /* MADV_DONTNEED */
    HK_ADVICE_HUGEPAGE, /* MADV_HUGEPAGE (ss_os_advise_huge only: gives nothing back) */
} hk_advice_t;
/* Raw madvise: 0, or -1 with *err set to the kernel's errno. Only the madvise
 * guard calls this; everyone else goes through ss_os_madvise_guarded(). */
int hk_os_madvise_raw(void *p, size_t size, hk_advice_t advice, int *err);

#endif
