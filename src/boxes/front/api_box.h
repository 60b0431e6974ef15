/* api_box: the semantics of every allocation entry point (glibc's rules:
 * errno, NULL, overflow, alignment validation), written once as inline
 * functions. api_box.c instantiates them as the prefixed hakmem_* API and
 * override_box.c as malloc, free, ...; both get the fast paths inlined.
 * Owns: argument validation and the small/large split; the library's
 * constructor (api_box.c: init, then FAST prewarm, at load), beside the
 * hakmem_* API: a program that links the library reaches this file.
 * Must not: know about slabs beyond heap_box's inline interface. */
#ifndef HAKMEM_API_BOX_H
#define HAKMEM_API_BOX_H

#include "hakmem_internal.h"
#include "front/prof_box.h"
#include "front/thread_box.h"
#include "heap/heap_box.h"
#include "backend/large_box.h"
#include "os/ss_registry_box.h"

#include <errno.h>
#include <string.h>

/* Slow paths, out of line (api_box.c). */
/* malloc of sizes above the direct table, and of every size in the debug
 * build. */
void *hk_malloc_slow(size_t size);
/* Debug build: small blocks carry their requested size and a canary after
 * it (checked at free: overflow into the neighbour). */
void *hk_debug_small_alloc(size_t size, size_t align);
void hk_free_other(void *p, unsigned kind);
void *hk_alloc_aligned(size_t align, size_t size, bool zero);
void *hk_calloc_slow(size_t total);
/* realloc; `sample`: NULL, or this realloc's new block is a sample (the
 * anchor of hk_prof_alloc). */
void *hk_realloc_impl(void *p, size_t size, const void *sample);
size_t hk_usable_other(void *p, unsigned kind);

/* The profiler's countdown ran out on this allocation (prof_box.h): ask it
 * whether to sample it, and allocate, a sampled block or as usual. Each
 * entry point counts its request once, then calls one of these (mostly a
 * tail call: their return address is then the program's), and the paths
 * below count nothing (the *_untracked forms). */
void *hk_malloc_ticked(size_t size);
void *hk_calloc_ticked(size_t total);
void *hk_aligned_ticked(size_t align, size_t size);
void *hk_realloc_ticked(void *p, size_t size);

/* A block of class `cls`; NULL + ENOMEM when memory runs out. */
HK_INLINE void *hk_alloc_class(unsigned cls) { return hk_small_alloc(cls, hk_thread_start); }

/* Statistics: ask every box that owns metadata (heaps and abandoned
 * superslabs, large blocks, the gauges) for one snapshot. */
struct hk_stats_view;
void hk_stats_view(struct hk_stats_view *v);
/* At exit: HAKMEM_SS_OS_STATS=1 prints the human form to stderr,
 * HAKMEM_STATS=json the JSON form, HAKMEM_STATS=FILE the JSON into FILE. */
void hk_stats_at_exit(void);

HK_INLINE void *hk_malloc_untracked(size_t size)
{
    /* One compare on the hot path: sizes up to 2 KiB use the direct table
     * (the debug build's blocks carry a canary: hk_malloc_slow). */
    if (HK_LIKELY(size <= HK_DIRECT_MAX) && !config_debug)
        return hk_small_alloc_direct(size, hk_thread_start);
    return hk_malloc_slow(size);
}

HK_INLINE void *hk_api_malloc(size_t size)
{
    if (hk_prof_tick(size))
        return hk_malloc_ticked(size);
    return hk_malloc_untracked(size);
}

HK_INLINE void hk_api_free(void *p)
{
    unsigned kind = hk_os_registry_kind((uintptr_t)p);
    if (HK_LIKELY(kind == HK_REG_SUPERSLAB)) {
        hk_small_free(p);
        return;
    }
    hk_free_other(p, kind);
}

HK_INLINE void *hk_calloc_untracked(size_t total)
{
    if (HK_LIKELY(total <= HK_SMALL_MAX)) {
        void *p = config_debug ? hk_debug_small_alloc(total, 0) : hk_alloc_class(hk_size_to_class(total));
        if (HK_LIKELY(p != NULL))
            memset(p, 0, total);
        return p;
    }
    return hk_calloc_slow(total);
}

HK_INLINE void *hk_api_calloc(size_t n, size_t size)
{
    size_t total;
    if (HK_UNLIKELY(__builtin_mul_overflow(n, size, &total))) {
        errno = ENOMEM;
        return NULL;
    }
    if (hk_prof_tick(total))
        return hk_calloc_ticked(total);
    return hk_calloc_untracked(total);
}

HK_INLINE size_t hk_api_usable(void *p)
{
    unsigned kind = hk_os_registry_kind((uintptr_t)p);
    if (HK_LIKELY(kind == HK_REG_SUPERSLAB))
        return hk_small_usable(p);
    return hk_usable_other(p, kind);
}

HK_INLINE bool hk_is_pow2(size_t x) { return x && !(x & (x - 1)); }

/* Every aligned entry point, once its alignment is valid. */
HK_INLINE void *hk_api_alloc_aligned(size_t align, size_t size)
{
    if (hk_prof_tick(size))
        return hk_aligned_ticked(align, size);
    return hk_alloc_aligned(align, size, false);
}

HK_INLINE void *hk_api_realloc(void *p, size_t size)
{
    if (hk_prof_tick(size))
        return hk_realloc_ticked(p, size);
    return hk_realloc_impl(p, size, NULL);
}

HK_INLINE int hk_api_posix_memalign(void **memptr, size_t align, size_t size)
{
    if (!hk_is_pow2(align) || align % sizeof(void *) != 0)
        return EINVAL;
    int saved = errno;
    void *p = hk_api_alloc_aligned(align, size);
    if (!p) {
        errno = saved;
        return ENOMEM;
    }
    *memptr = p;
    return 0;
}

/* C11 aligned_alloc: the alignment must be a power of two. */
HK_INLINE void *hk_api_aligned_alloc(size_t align, size_t size)
{
    if (!hk_is_pow2(align)) {
        errno = EINVAL;
        return NULL;
    }
    return hk_api_alloc_aligned(align, size);
}

/* memalign: like aligned_alloc, an alignment that is not a power of two is
 * EINVAL (glibc would round it up; refusing it finds the bug instead). */
HK_INLINE void *hk_api_memalign(size_t align, size_t size)
{
    if (!hk_is_pow2(align)) {
        errno = EINVAL;
        return NULL;
    }
    return hk_api_alloc_aligned(align, size);
}

HK_INLINE void *hk_api_valloc(size_t size) { return hk_api_alloc_aligned(HK_PAGE_SIZE, size); }

HK_INLINE void *hk_api_pvalloc(size_t size)
{
    if (size > HK_MAX_REQUEST) {
        errno = ENOMEM;
        return NULL;
    }
    size_t rounded = hk_align_up(size ? size : 1, HK_PAGE_SIZE);
    return hk_api_alloc_aligned(HK_PAGE_SIZE, rounded);
}

HK_INLINE void *hk_api_reallocarray(void *p, size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return hk_api_realloc(p, total);
}

#endif
