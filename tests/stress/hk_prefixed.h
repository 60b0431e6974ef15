/* hk_prefixed.h: force-included (-include) into integration tests that
 * `make check-tsan` links with a ThreadSanitizer build of hakmem's internal
 * copy (tests/stress/Makefile.inc).
 *
 * Under TSan the process's malloc belongs to the TSan runtime, so hakmem
 * can only be reached through its prefixed API. This header renames the
 * allocation calls a test makes to hakmem_malloc, hakmem_free, ... so the
 * test source stays as it is. The system headers come first, so their own
 * declarations keep glibc's names; the renaming covers what the test writes
 * after them. Memory that libc allocates for itself (stdio, pthread) stays
 * TSan's and is freed by libc.
 *
 * strdup is renamed too: a string from glibc's strdup would come from TSan's
 * malloc and go to hakmem_free, which rightly refuses a foreign pointer.
 */
#ifndef HK_PREFIXED_H
#define HK_PREFIXED_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "hakmem.h"

#define malloc(n) hakmem_malloc(n)
#define free(p) hakmem_free(p)
#define calloc(n, s) hakmem_calloc((n), (s))
#define realloc(p, n) hakmem_realloc((p), (n))
#define reallocarray(p, n, s) hakmem_reallocarray((p), (n), (s))
#define posix_memalign(m, a, n) hakmem_posix_memalign((m), (a), (n))
#define aligned_alloc(a, n) hakmem_aligned_alloc((a), (n))
#define memalign(a, n) hakmem_memalign((a), (n))
#define valloc(n) hakmem_valloc(n)
#define pvalloc(n) hakmem_pvalloc(n)
#define malloc_usable_size(p) hakmem_malloc_usable_size(p)
#define malloc_trim(n) hakmem_malloc_trim(n)
#define strdup(s) hk_prefixed_strdup(s)

static inline char *hk_prefixed_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = hakmem_malloc(n);
    return d ? memcpy(d, s, n) : NULL;
}

#endif /* HK_PREFIXED_H */
