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
HK_EXPORT void *realloc(void *p, size_t size) { return hk_api_realloc(p, size); }
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
HK_EXPORT void *__libc_realloc(void *p, size_t size) { return hk_api_realloc(p, size); }
HK_EXPORT void *__libc_memalign(size_t align, size_t size) { return hk_api_memalign(align, size); }
HK_EXPORT void *__libc_valloc(size_t size) { return hk_api_valloc(size); }
HK_EXPORT void *__libc_pvalloc(size_t size) { return hk_api_pvalloc(size); }
HK_EXPORT int __posix_memalign(void **memptr, size_t align, size_t size)
{
    return hk_api_posix_memalign(memptr, align, size);
}

HK_EXPORT int malloc_trim(size_t pad) { return hakmem_malloc_trim(pad); }

/* glibc's mallinfo fields, with glibc's meanings and identities, from
 * hakmem's data (hk_stats_glibc says which figure is which):
 *  arena    the heap obtained from the system, not counting the large
 *           blocks' own mappings: arena = uordblks + fordblks
 *  uordblks small blocks in use        fordblks  free bytes of that heap
 *  hblks    live large blocks          hblkhd    their bytes
 *  keepcost what malloc_trim could give back now (cached bytes)
 *  ordblks  1                          usmblks   peak bytes mapped
 * uordblks + hblkhd is what the program has in use; address space only
 * reserved (the registry's) is in no field. */
HK_EXPORT struct mallinfo2 mallinfo2(void)
{
    hk_stats_view_t v;
    hk_glibc_figures_t g;
    hk_stats_view(&v);
    hk_stats_glibc(&v.s, &g);
    struct mallinfo2 mi = {0};
    mi.arena = g.arena;
    mi.ordblks = 1;
    mi.hblks = g.hblks;
    mi.hblkhd = g.hblkhd;
    mi.uordblks = g.uordblks;
    mi.fordblks = g.fordblks;
    mi.keepcost = g.keepcost;
    mi.usmblks = v.s.bytes_mapped_peak;
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
    mi.keepcost = HK_SAT(m2.keepcost);
#undef HK_SAT
    return mi;
}
#pragma GCC diagnostic pop

/* The human form (hakmem_stats_print) on stderr, as glibc's. */
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

static void file_sink(void *ctx, const char *s, size_t n) { fwrite(s, 1, n, (FILE *)ctx); }

/* A complete XML document in glibc's layout (superslab_stats.c says which
 * figure goes where). Formatted without the heap; the caller's stream may
 * buffer as it always does. */
HK_EXPORT int malloc_info(int options, FILE *fp)
{
    if (options != 0 || !fp) {
        errno = EINVAL;
        return -1;
    }
    hk_stats_view_t v;
    hk_out_t o;
    hk_stats_view(&v);
    hk_out_init_sink(&o, file_sink, fp);
    hk_stats_write_xml(&o, &v);
    hk_out_flush(&o);
    return ferror(fp) ? -1 : 0;
}
