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

/* The heap profiler (prof:1, README "Heap profiles"): write the profile
 * of the sampled blocks still allocated, in the text form jeprof reads, to
 * `path` (NULL: PREFIX.PID.SEQ.heap, prof_prefix's name). Async-signal-
 * safe. Returns 0, or -1 with errno: ENOTSUP when the profiler is off, or
 * the error of opening or writing the file. From a signal handler that
 * interrupted the profiler itself on the same thread, it returns 0 and the
 * file is written as soon as the interrupted call leaves the profiler. */
int hakmem_prof_dump(const char *path);

/* Statistics (README, "Operating hakmem").
 *
 * Gauges are kept in every build and are exact; counters (system calls,
 * decommits, ...) exist only where configure --enable-ss-stats compiled
 * them in: `stats_built_in` says so, and where it is 0 they read 0 here
 * and are left out of the printed forms. Sizes are bytes.
 *
 * bytes_allocated: bytes of blocks handed out and not freed, counted by
 * usable size (malloc_usable_size; in the debug library the whole block,
 * canary included): every small block that its slab's owner has not taken
 * back, less the blocks other threads freed that wait on the slab's remote
 * list, plus every live medium block and every live large block's mapping. A block freed by any thread
 * is not allocated any more the moment free() returns. It is derived on
 * demand from the allocator's metadata under its locks (no counter on the
 * fast paths), so it is exact when no other thread allocates or frees
 * during the call, and otherwise a value the heap had at some instant of
 * it. */
struct hakmem_stats {
    uint64_t stats_built_in;       /* 1 if the counters are built in */
    uint64_t lean_mode;            /* 1 if LEAN behaviour is active */
    uint64_t bytes_allocated;      /* in use, by usable size (see above) */
    uint64_t mmap_calls;           /* counters: 0 unless stats_built_in */
    uint64_t munmap_calls;
    uint64_t mremap_calls;
    uint64_t madvise_calls;
    uint64_t madvise_failures;
    uint64_t madvise_guard_refusals;
    uint64_t mmap_failures;
    uint64_t lean_decommit;        /* g_ss_lean_decommit_calls */
    uint64_t lean_retire;          /* g_ss_lean_retire_calls */
    uint64_t ss_live;              /* gauges: superslabs in use (owned or abandoned) */
    uint64_t ss_live_peak;
    uint64_t ss_cached;            /* empty superslabs kept committed */
    uint64_t ss_decommitted;       /* empty superslabs kept, pages given back */
    uint64_t bytes_mapped;         /* address space mapped to be used (superslabs, large
                                      blocks, metadata; not bytes_reserved) */
    uint64_t bytes_mapped_peak;
    uint64_t bytes_committed;      /* mapped and not given back */
    uint64_t bytes_committed_peak;
    uint64_t large_live;           /* large blocks in use */
    uint64_t large_cached_bytes;   /* freed large ranges kept for reuse */
    /* Added later (a caller passing the older, shorter size gets the fields
     * above only). */
    uint64_t bytes_active;         /* pages of slabs in use that hold or held blocks,
                                      plus live large blocks */
    uint64_t bytes_resident;       /* estimate of what is resident: active, cached,
                                      superslab headers (Rss may be lower) */
    uint64_t bytes_cached;         /* kept committed for reuse: empty superslabs,
                                      freed large ranges */
    uint64_t bytes_retained;       /* mapped but given back (mapped - committed) */
    uint64_t large_live_bytes;     /* bytes of live large blocks */
    uint64_t slabs_in_use;         /* 64 KiB slabs serving a size class */
    uint64_t heaps_live;           /* thread heaps in use */
    uint64_t ss_abandoned;         /* superslabs of exited threads not yet adopted */
    uint64_t bytes_reserved;       /* address space reserved, never used as memory (the
                                      registry's 64 MiB): in none of the figures above */
    uint64_t thp_advise;           /* counters: superslabs asked to be huge pages (thp:1) */
    uint64_t thp_kept_whole;       /* parts of huge-page superslabs not given back (thp:1) */
    uint64_t prof_bytes;           /* the heap profiler's own memory (tables, pool) */
    uint64_t prof_samples;         /* sampled blocks live */
    uint64_t medium_live;          /* medium blocks (32 KiB-256 KiB) in use */
    uint64_t medium_live_bytes;    /* their bytes (the blocks' usable sizes) */
    uint64_t medium_regions;       /* 2 MiB regions medium blocks come from */
    uint64_t medium_cached_bytes;  /* free medium blocks whose pages may be resident */
    uint64_t guard_samples;        /* guarded blocks live (guard_sample) */
    uint64_t guard_skipped;        /* counter: guarded samples skipped, the pool full */
};

/* Fill *out. size: sizeof(struct hakmem_stats) (or the older size, up to
 * large_cached_bytes). Returns 0, or -1 with errno EINVAL for a bad
 * argument. Does not allocate. */
int hakmem_stats_get(struct hakmem_stats *out, size_t size);

/* One size class. */
struct hakmem_class_stats {
    uint64_t block_size;           /* bytes (the usable size of its blocks) */
    uint64_t blocks_in_use;
    uint64_t slabs;
};
/* Fill out[0..n-1] for classes 0..n-1 (n may exceed or fall short of the
 * number of classes); returns the number of classes. Does not allocate. */
int hakmem_stats_classes(struct hakmem_class_stats *out, size_t n);

/* The human-readable form (sizes with units), written to fd without
 * allocating. malloc_stats() prints the same to stderr. */
void hakmem_stats_print(int fd);
/* The JSON form (keys: README), like snprintf: writes at most size bytes
 * (NUL included) and returns the length of the whole document. */
size_t hakmem_stats_json(char *buf, size_t size);
/* The JSON form written to fd without allocating. */
void hakmem_stats_print_json(int fd);

#ifdef __cplusplus
}
#endif
#endif /* HAKMEM_H */
