/* hakmem.h: public interface of the hakmem allocator.
 *
 * Linking against (or preloading) libhakmem replaces the process's malloc,
 * free and the rest of glibc's allocation API. This header adds:
 *  - a prefixed API (hakmem_malloc, hakmem_free, ...) with the same
 *    semantics, usable where the process's malloc is not replaced;
 *  - read access to the allocator's counters and configuration.
 */
#ifndef HAKMEM_H
#define HAKMEM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Version of this header. hakmem_version() answers the library's: a program
 * built against one release and run with another can compare the two. The
 * numbers must equal configure's (AC_INIT): a unit test checks it. */
#define HAKMEM_VERSION_MAJOR 0
#define HAKMEM_VERSION_MINOR 1
#define HAKMEM_VERSION_PATCH 0
#define HAKMEM_VERSION_STRING "0.1.0"
/* One number for #if: 10000 * major + 100 * minor + patch (0.1.0: 100). */
#define HAKMEM_VERSION_NUMBER \
    (HAKMEM_VERSION_MAJOR * 10000 + HAKMEM_VERSION_MINOR * 100 + HAKMEM_VERSION_PATCH)

/* Prefixed allocation API: glibc semantics (errno, NULL on failure). */
void *hakmem_malloc(size_t size);
void hakmem_free(void *ptr);
void *hakmem_calloc(size_t nmemb, size_t size);
void *hakmem_realloc(void *ptr, size_t size);
void *hakmem_reallocarray(void *ptr, size_t nmemb, size_t size);
int hakmem_posix_memalign(void **memptr, size_t alignment, size_t size);
void *hakmem_aligned_alloc(size_t alignment, size_t size);
void *hakmem_memalign(size_t alignment, size_t size);
void *hakmem_valloc(size_t size);
void *hakmem_pvalloc(size_t size);
size_t hakmem_malloc_usable_size(void *ptr);
void hakmem_free_sized(void *ptr, size_t size);
void hakmem_free_aligned_sized(void *ptr, size_t alignment, size_t size);
int hakmem_malloc_trim(size_t pad);

/* Does hakmem own this pointer (a live or free block it handed out)?
 * Decided from hakmem's own metadata; never reads the pointed-to memory. */
int hakmem_owns(const void *ptr);

/* Library identity. */
const char *hakmem_version(void);      /* the library's, e.g. "0.1.0" */
const char *hakmem_variant(void);      /* "fast", "lean" or "debug" */

/* Counters. Fields are 0 where the build does not maintain them;
 * `stats_built_in` says whether the optional OS counters were compiled in
 * (configure --enable-ss-stats). Always-maintained fields are marked. */
struct hakmem_stats {
    uint64_t stats_built_in;       /* 1 if the OS/superslab counters are built in */
    uint64_t lean_mode;            /* 1 if LEAN behaviour is active (always maintained) */
    uint64_t bytes_allocated;      /* live bytes handed out, by usable size (approx.) */
    uint64_t mmap_calls;
    uint64_t munmap_calls;
    uint64_t mremap_calls;
    uint64_t madvise_calls;
    uint64_t madvise_failures;
    uint64_t madvise_guard_refusals;
    uint64_t mmap_failures;
    uint64_t lean_decommit;        /* g_ss_lean_decommit_calls */
    uint64_t lean_retire;          /* g_ss_lean_retire_calls */
    uint64_t ss_live;              /* superslabs in use */
    uint64_t ss_live_peak;
    uint64_t ss_cached;            /* empty superslabs kept committed */
    uint64_t ss_decommitted;       /* empty superslabs kept, pages given back */
    uint64_t bytes_mapped;         /* address space mapped by hakmem (always maintained) */
    uint64_t bytes_mapped_peak;
    uint64_t bytes_committed;      /* estimate of hakmem's resident footprint */
    uint64_t bytes_committed_peak;
    uint64_t large_live;           /* large objects in use */
    uint64_t large_cached_bytes;   /* freed large ranges kept for reuse */
};

/* Fill *out (size = sizeof(struct hakmem_stats), for forward compatibility).
 * Returns 0, or -1 with errno EINVAL for a bad argument. Does not allocate. */
int hakmem_stats_get(struct hakmem_stats *out, size_t size);

/* Write the counters to file descriptor fd, one `name value` per line,
 * without allocating. (At exit, HAKMEM_SS_OS_STATS=1 prints the same lines
 * to stderr prefixed with `hakmem: stat `.) */
void hakmem_stats_print(int fd);

#ifdef __cplusplus
}
#endif
#endif /* HAKMEM_H */
