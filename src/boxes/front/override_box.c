/* override_box: the process-wide allocation symbols. Linking or preloading
 * the library makes these the program's malloc, free, ... (and glibc's
 * __libc_* names, which some programs and libraries call directly).
 * Owns: symbol names and glibc's reporting calls (mallinfo, malloc_stats,
 * mallopt, malloc_trim, malloc_info), answered with hakmem's own data.
 * Must not: contain allocation logic (api_box.h has it). */
#include "hakmem_internal.h"
#include "front/api_box.h"
#include "hakmem.h"
#include "backend/large_box.h"
#include "base/superslab_stats.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define HK_EXPORT __attribute__((visibility("default")))

/* Not declared by every glibc's headers. */
void cfree(void *p);
void free_sized(void *p, size_t size);
void free_aligned_sized(void *p, size_t align, size_t size);
void *__libc_malloc(size_t size);
void __libc_free(void *p);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t size);
void *__libc_memalign(size_t align, size_t size);
void *__libc_valloc(size_t size);
void *__libc_pvalloc(size_t size);
int __posix_memalign(void **memptr, size_t align, size_t size);

HK_EXPORT void *malloc(size_t size) { return hk_api_malloc(size); }
HK_EXPORT void free(void *p) { hk_api_free(p); }
HK_EXPORT void *calloc(size_t n, size_t size) { return hk_api_calloc(n, size); }
HK_EXPORT void *realloc(void *p, size_t size) { return hk_realloc_impl(p, size); }
HK_EXPORT void *reallocarray(void *p, size_t n, size_t size) { return hk_api_reallocarray(p, n, size); }
HK_EXPORT int posix_memalign(void **memptr, size_t align, size_t size)
{
    return hk_api_posix_memalign(memptr, align, size);
}
HK_EXPORT void *aligned_alloc(size_t align, size_t size) { return hk_api_aligned_alloc(align, size); }
HK_EXPORT void *memalign(size_t align, size_t size) { return hk_api_memalign(align, size); }
HK_EXPORT void *valloc(size_t size) { return hk_api_valloc(size); }
HK_EXPORT void *pvalloc(size_t size) { return hk_api_pvalloc(size); }
HK_EXPORT size_t malloc_usable_size(void *p) { return hk_api_usable(p); }
HK_EXPORT void cfree(void *p) { hk_api_free(p); }
HK_EXPORT void free_sized(void *p, size_t size) { hk_api_free(p); }
HK_EXPORT void free_aligned_sized(void *p, size_t align, size_t size) { hk_api_free(p); }

HK_EXPORT void *__libc_malloc(size_t size) { return hk_api_malloc(size); }
HK_EXPORT void __libc_free(void *p) { hk_api_free(p); }
HK_EXPORT void *__libc_calloc(size_t n, size_t size) { return hk_api_calloc(n, size); }
HK_EXPORT void *__libc_realloc(void *p, size_t size) { return hk_realloc_impl(p, size); }
HK_EXPORT void *__libc_memalign(size_t align, size_t size) { return hk_api_memalign(align, size); }
HK_EXPORT void *__libc_valloc(size_t size) { return hk_api_valloc(size); }
HK_EXPORT void *__libc_pvalloc(size_t size) { return hk_api_pvalloc(size); }
HK_EXPORT int __posix_memalign(void **memptr, size_t align, size_t size)
{
    return hk_api_posix_memalign(memptr, align, size);
}

HK_EXPORT int malloc_trim(size_t pad) { return hakmem_malloc_trim(pad); }

/* glibc's mallinfo fields, filled with hakmem's view:
 *  arena    bytes in superslabs in use      hblks/hblkhd  live large blocks, bytes
 *  fordblks empty memory kept for reuse     usmblks       peak bytes mapped
 *  uordblks arena + hblkhd (an upper bound of bytes in use) */
HK_EXPORT struct mallinfo2 mallinfo2(void)
{
    struct hakmem_stats s;
    hakmem_stats_get(&s, sizeof s);
    struct mallinfo2 mi = {0};
    mi.arena = s.ss_live * HK_SS_SIZE;
    mi.hblks = s.large_live;
    mi.hblkhd = hk_large_live_bytes();
    mi.fordblks = s.ss_cached * HK_SS_SIZE + s.large_cached_bytes;
    mi.usmblks = s.bytes_mapped_peak;
    mi.uordblks = mi.arena + mi.hblkhd;
    mi.ordblks = 1;
    return mi;
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
HK_EXPORT struct mallinfo mallinfo(void)
{
    struct mallinfo2 m2 = mallinfo2();
    struct mallinfo mi = {0};
    /* The int fields saturate instead of wrapping. */
#define HK_SAT(x) ((x) > (size_t)0x7fffffff ? 0x7fffffff : (int)(x))
    mi.arena = HK_SAT(m2.arena);
    mi.ordblks = HK_SAT(m2.ordblks);
    mi.hblks = HK_SAT(m2.hblks);
    mi.hblkhd = HK_SAT(m2.hblkhd);
    mi.usmblks = HK_SAT(m2.usmblks);
    mi.uordblks = HK_SAT(m2.uordblks);
    mi.fordblks = HK_SAT(m2.fordblks);
#undef HK_SAT
    return mi;
}
#pragma GCC diagnostic pop

HK_EXPORT void malloc_stats(void) { hakmem_stats_print(2); }

/* Accept glibc's parameters (returning 1, success, as glibc does); hakmem
 * has its own settings (environment), so they change nothing. */
HK_EXPORT int mallopt(int param, int value)
{
    switch (param) {
    case M_MXFAST:
    case M_TRIM_THRESHOLD:
    case M_TOP_PAD:
    case M_MMAP_THRESHOLD:
    case M_MMAP_MAX:
    case M_CHECK_ACTION:
    case M_PERTURB:
    case M_ARENA_TEST:
    case M_ARENA_MAX:
        return 1;
    default:
        return 0;
    }
}

HK_EXPORT int malloc_info(int options, FILE *fp)
{
    if (options != 0 || !fp) {
        errno = EINVAL;
        return -1;
    }
    struct hakmem_stats s;
    hakmem_stats_get(&s, sizeof s);
    fprintf(fp,
            "<malloc version=\"hakmem-%s\">\n"
            "<total type=\"mmap\" count=\"%llu\" size=\"%llu\"/>\n"
            "<system type=\"current\" size=\"%llu\"/>\n"
            "<system type=\"max\" size=\"%llu\"/>\n"
            "</malloc>\n",
            hakmem_version(), (unsigned long long)s.large_live, (unsigned long long)s.bytes_mapped,
            (unsigned long long)s.bytes_committed, (unsigned long long)s.bytes_mapped_peak);
    return 0;
}
