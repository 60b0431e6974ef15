/* madvise_guard_box (os box, guard): the only way the allocator gives pages
 * back with madvise.
 *
 * ss_os_madvise_guarded() refuses any range that is not wholly inside
 * superslabs hakmem mapped itself (so never a DSO, a stack, or a foreign
 * mapping) and counts the refusal. The kernel's answers are remembered:
 * EINVAL to MADV_FREE switches to MADV_DONTNEED once, for the process;
 * ENOMEM disables madvise for the process (fail-fast) and callers fall back
 * to munmap. Saves and restores errno. In the debug build
 * HAKMEM_FAULT_MADVISE=N makes the Nth call fail with
 * HAKMEM_FAULT_MADVISE_ERRNO (ENOMEM or EINVAL), for tests.
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

#endif
