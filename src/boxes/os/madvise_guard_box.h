/* madvise_guard_box (os box, guard): the only way the allocator gives pages
 * back with madvise.
 *
 * ss_os_madvise_guarded() refuses any range that is not wholly inside
 * superslabs or medium regions hakmem mapped itself (so never a DSO, a
 * stack, or a foreign mapping) and counts the refusal. The kernel's answers are remembered:
 * EINVAL to MADV_FREE switches to MADV_DONTNEED once, for the process;
 * ENOMEM disables madvise for the process (fail-fast) and callers fall back
 * to munmap. Saves and restores errno. In the debug build
 * HAKMEM_FAULT_MADVISE=N makes the Nth call fail with
 * HAKMEM_FAULT_MADVISE_ERRNO (ENOMEM or EINVAL), for tests.
 * Also the one door of the other advice, MADV_HUGEPAGE (thp:1): it reads
 * the system's THP mode once (SYSFS_ROOT/kernel/mm/transparent_hugepage/
 * enabled, SYSFS_ROOT being /sys unless HAKMEM_SYSFS_ROOT names a fake
 * tree), and asks only where that mode is `madvise` (under `always` the
 * kernel needs no asking; under `never` asking changes nothing).
 * Must not: decide what to release (the release policy does). */
#ifndef HAKMEM_MADVISE_GUARD_BOX_H
#define HAKMEM_MADVISE_GUARD_BOX_H

#include <stdbool.h>
#include <stddef.h>
#include "os/ss_os_acquire_box.h"

/* 0 on success; -1 if refused by the guard, disabled, or failed. */
int ss_os_madvise_guarded(void *p, size_t size, hk_advice_t advice);
/* Has ENOMEM switched madvise off for this process? */
bool hk_os_madvise_disabled(void);
/* Has the kernel refused MADV_FREE (so DONTNEED is used instead)? */
bool hk_os_madv_free_refused(void);

/* The system's transparent hugepage mode, the bracketed word of the
 * sysfs file; UNKNOWN when it cannot be read (no THP in the kernel). */
typedef enum { HK_THP_UNKNOWN, HK_THP_NEVER, HK_THP_MADVISE, HK_THP_ALWAYS } hk_thp_mode_t;
hk_thp_mode_t hk_os_thp_mode(void);
/* Are superslabs huge pages, or asked to be: thp:1 and a mode of madvise
 * or always? Then giving back part of one would split its huge page (the
 * release policy gives back whole superslabs only). */
bool hk_os_thp_superslabs(void);
/* A superslab's or medium region's range [p, p+size), fresh, whole 2 MiB
 * chunks of ours: ask
 * for huge pages (MADV_HUGEPAGE) when thp:1 and the mode is madvise;
 * each request counted (thp_advise). Best effort: a refusal changes
 * nothing else. Returns 0 when the kernel took the advice, -1 otherwise. */
int ss_os_advise_huge(void *p, size_t size);

#endif
