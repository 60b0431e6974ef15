/* ss_os_acquire_box (os box): mmap, munmap, mremap, madvise. See the header. */
#include "hakmem_internal.h"
#include "os/ss_os_acquire_box.h"
#include "base/env_box.h"
#include "base/superslab_stats.h"

#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* Debug builds: fail the Nth mmap (HAKMEM_FAULT_MMAP=N), for tests of the
 * out-of-memory paths. */
static _Atomic uint64_t g_map_seq;

static bool inject_map_failure(void)
{
    if (!config_debug)
        return false;
    int64_t n = hk_opt(HK_OPT_FAULT_MMAP);
    if (n <= 0)
        return false;
    return atomic_fetch_add_explicit(&g_map_seq, 1, memory_order_relaxed) + 1 == (uint64_t)n;
}

/* reserve: address space only (the registry's): counted apart from what is
 * mapped to be used, since it is never touched beyond what is used. */
static void *raw_map(void *hint, size_t size, int extra_flags, bool reserve)
{
    if (inject_map_failure()) {
        HK_STAT_INC(mmap_failures);
        return NULL;
    }
    HK_STAT_INC(mmap_calls);
    void *p = mmap(hint, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | extra_flags, -1, 0);
    if (p == MAP_FAILED) {
        HK_STAT_INC(mmap_failures);
        return NULL;
    }
    if (reserve)
        HK_GAUGE_ADD(bytes_reserved, (int64_t)size);
    else
        HK_GAUGE_ADD(bytes_mapped, (int64_t)size);
    return p;
}

static int raw_unmap(void *p, size_t size)
{
    HK_STAT_INC(munmap_calls);
    if (munmap(p, size) != 0)
        return -1;
    HK_GAUGE_ADD(bytes_mapped, -(int64_t)size);
    return 0;
}

void *hk_os_map(size_t size)
{
    int saved = errno;
    void *p = raw_map(NULL, size, 0, false);
    errno = saved;
    return p;
}

int hk_os_protect(void *p, size_t size, bool accessible)
{
    int saved = errno;
    int r = mprotect(p, size, accessible ? PROT_READ | PROT_WRITE : PROT_NONE);
    errno = saved;
    return r == 0 ? 0 : -1;
}

void *hk_os_reserve(size_t size)
{
    int saved = errno;
    void *p = raw_map(NULL, size, MAP_NORESERVE, true);
    errno = saved;
    return p;
}

/* Where the next aligned mapping is likely to fit: just below the last one,
 * since the kernel hands out addresses top-down. A hint only. */
static _Atomic uintptr_t g_aligned_hint;

void *hk_os_map_aligned(size_t size, size_t align)
{
    int saved = errno;
    void *result = NULL;
    uintptr_t hint = atomic_load_explicit(&g_aligned_hint, memory_order_relaxed);
    if (hint > size + align) {
        void *p = raw_map((void *)(hint - size), size, 0, false);
        if (p && ((uintptr_t)p & (align - 1)) == 0) {
            result = p;
        } else if (p) {
            raw_unmap(p, size);
        }
    }
    if (!result && size + align > size) {
        /* Over-map by `align`, then trim both ends to the aligned part. */
        size_t span = size + align;
        uint8_t *p = raw_map(NULL, span, 0, false);
        if (p) {
            uintptr_t a = hk_align_up((uintptr_t)p, align);
            size_t head = a - (uintptr_t)p;
            size_t tail = span - head - size;
            if (head)
                raw_unmap(p, head);
            if (tail)
                raw_unmap((void *)(a + size), tail);
            result = (void *)a;
        }
    }
    if (result)
        atomic_store_explicit(&g_aligned_hint, (uintptr_t)result, memory_order_relaxed);
    errno = saved;
    return result;
}

int hk_os_reset(void *p, size_t size)
{
    int saved = errno;
    HK_STAT_INC(mmap_calls);
    void *q = mmap(p, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (q == MAP_FAILED)
        HK_STAT_INC(mmap_failures);
    errno = saved;
    return q == p ? 0 : -1;
}

int hk_os_unmap(void *p, size_t size)
{
    int saved = errno;
    int r = raw_unmap(p, size);
    errno = saved;
    return r;
}

void *hk_os_remap(void *p, size_t old_size, size_t new_size)
{
    if (!have_mremap)
        return NULL;
    int saved = errno;
    HK_STAT_INC(mremap_calls);
    void *q = mremap(p, old_size, new_size, MREMAP_MAYMOVE);
    errno = saved;
    if (q == MAP_FAILED)
        return NULL;
    HK_GAUGE_ADD(bytes_mapped, (int64_t)new_size - (int64_t)old_size);
    return q;
}

/* 0 = untried, 1 = works, -1 = refused by this kernel (then we touch pages). */
static _Atomic int g_populate_ok;

void hk_os_populate(void *p, size_t size)
{
    int saved = errno;
    if (atomic_load_explicit(&g_populate_ok, memory_order_relaxed) >= 0) {
        HK_STAT_INC(madvise_calls);
        if (madvise(p, size, MADV_POPULATE_WRITE) == 0) {
            atomic_store_explicit(&g_populate_ok, 1, memory_order_relaxed);
            errno = saved;
            return;
        }
        HK_STAT_INC(madvise_failures);
        if (errno == EINVAL)
            atomic_store_explicit(&g_populate_ok, -1, memory_order_relaxed);
    }
    /* Fallback: one write per page. The memory is ours and freshly mapped. */
    for (size_t off = 0; off < size; off += HK_PAGE_SIZE)
        ((volatile char *)p)[off] = 0;
    errno = saved;
}

int hk_os_madvise_raw(void *p, size_t size, hk_advice_t advice, int *err)
{
    int saved = errno;
    int how = advice == HK_ADVICE_HUGEPAGE ? MADV_HUGEPAGE : MADV_DONTNEED;
    if (advice == HK_ADVICE_FREE) {
#if HAVE_MADV_FREE_FLAG
        how = MADV_FREE;
#else
        *err = EINVAL;
        return -1;
#endif
    }
    HK_STAT_INC(madvise_calls);
    int r = madvise(p, size, how);
    if (r != 0) {
        *err = errno;
        HK_STAT_INC(madvise_failures);
    }
    errno = saved;
    return r;
}
