/* test_api.c: unit tests of the prefixed API of hakmem.h (hakmem_malloc ...
 * hakmem_malloc_usable_size, hakmem_owns, hakmem_stats_get/print, identity).
 *
 * Linked against the internal, non-overriding copy of the FAST library, so
 * the process's malloc (and Check's) stays glibc's and every hakmem block
 * comes from an explicit hakmem_* call. That lets the tests tell hakmem's
 * blocks from glibc's, which an LD_PRELOAD test cannot.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "hakmem.h"

static volatile size_t v_huge = (size_t)PTRDIFF_MAX + 1;
static volatile size_t v_zero = 0;

START_TEST(identity)
{
    ck_assert_str_eq(hakmem_variant(), "fast");
}
END_TEST

/* HAKMEM_VERSION_NUMBER must work in #if (a program's feature tests). */
#if HAKMEM_VERSION_NUMBER != HAKMEM_VERSION_MAJOR * 10000 + HAKMEM_VERSION_MINOR * 100 + HAKMEM_VERSION_PATCH
#error "HAKMEM_VERSION_NUMBER does not evaluate in #if"
#endif

/* The header's version macros, the library's hakmem_version() and
 * configure's PACKAGE_VERSION (AC_INIT) are one version: a release that
 * bumps one and forgets another fails here. */
START_TEST(version_macros)
{
    char buf[64];
    ck_assert_str_eq(hakmem_version(), PACKAGE_VERSION);
    ck_assert_str_eq(HAKMEM_VERSION_STRING, PACKAGE_VERSION);
    snprintf(buf, sizeof buf, "%d.%d.%d", HAKMEM_VERSION_MAJOR, HAKMEM_VERSION_MINOR, HAKMEM_VERSION_PATCH);
    ck_assert_str_eq(buf, PACKAGE_VERSION);
    ck_assert_int_eq(HAKMEM_VERSION_NUMBER,
                     HAKMEM_VERSION_MAJOR * 10000 + HAKMEM_VERSION_MINOR * 100 + HAKMEM_VERSION_PATCH);
}
END_TEST

START_TEST(malloc_free_basic)
{
    static const size_t sizes[] = {0, 1, 15, 16, 17, 100, 1024, 4096, 5000, 65536, 300000, 4u << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        unsigned char *p = hakmem_malloc(n);
        ck_assert_msg(p != NULL, "hakmem_malloc(%zu) = NULL", n);
        ck_assert_msg(((uintptr_t)p & 15) == 0, "hakmem_malloc(%zu) = %p, not 16-aligned", n, p);
        size_t us = hakmem_malloc_usable_size(p);
        ck_assert_msg(us >= n, "usable %zu < %zu", us, n);
        memset(p, 0xa5, us);
        ck_assert_int_eq(hakmem_owns(p), 1);
        int e = errno = 777;
        hakmem_free(p);
        ck_assert_int_eq(errno, e);
    }
    hakmem_free(NULL);
    ck_assert_uint_eq(hakmem_malloc_usable_size(NULL), 0);
}
END_TEST

START_TEST(calloc_realloc)
{
    unsigned char *p = hakmem_calloc(100, 10);
    ck_assert_ptr_nonnull(p);
    for (int i = 0; i < 1000; i++)
        if (p[i])
            ck_abort_msg("hakmem_calloc byte %d = %u", i, p[i]);
    for (int i = 0; i < 1000; i++)
        p[i] = (unsigned char)i;
    p = hakmem_realloc(p, 100000);
    ck_assert_ptr_nonnull(p);
    for (int i = 0; i < 1000; i++)
        if (p[i] != (unsigned char)i)
            ck_abort_msg("hakmem_realloc lost byte %d", i);
    p = hakmem_realloc(p, 10);
    ck_assert_ptr_nonnull(p);
    for (int i = 0; i < 10; i++)
        ck_assert_uint_eq(p[i], (unsigned char)i);
    ck_assert_ptr_null(hakmem_realloc(p, v_zero)); /* frees */

    errno = 0;
    ck_assert_ptr_null(hakmem_calloc(SIZE_MAX / 2, 3));
    ck_assert_int_eq(errno, ENOMEM);
    void *q = hakmem_reallocarray(NULL, 10, 10);
    ck_assert_ptr_nonnull(q);
    errno = 0;
    ck_assert_ptr_null(hakmem_reallocarray(q, SIZE_MAX / 4, 8));
    ck_assert_int_eq(errno, ENOMEM);
    hakmem_free(q);
}
END_TEST

/* realloc across every boundary: each class's block size to one byte more
 * (the next class, or past 32 KiB a mapping of its own) and one byte less,
 * and back; a block walked through the large sizes (page boundaries, to a
 * small size and back out, past the 4 MiB up to which growth copies into
 * the cache). The bytes both sizes hold survive every step, and a block
 * that still fits without wasting half stays where it is. */
static unsigned char rb_byte(size_t i) { return (unsigned char)(i * 7 + (i >> 8)); }

static unsigned char *rb_step(unsigned char *p, size_t old, size_t ns)
{
    size_t us = hakmem_malloc_usable_size(p);
    unsigned char *q = hakmem_realloc(p, ns);
    ck_assert_msg(q != NULL, "realloc(%zu -> %zu) failed", old, ns);
    for (size_t i = 0; i < (ns < old ? ns : old); i++)
        if (q[i] != rb_byte(i))
            ck_abort_msg("realloc(%zu -> %zu) lost byte %zu", old, ns, i);
    if (ns <= us && ns > us / 2)
        ck_assert_msg(q == p, "realloc(%zu -> %zu) moved a block of %zu usable bytes", old, ns, us);
    ck_assert_uint_ge(hakmem_malloc_usable_size(q), ns);
    for (size_t i = old; i < ns; i++)
        q[i] = rb_byte(i);
    return q;
}

START_TEST(realloc_across_boundaries)
{
    struct hakmem_class_stats cls[256];
    int n = hakmem_stats_classes(cls, 256);
    ck_assert_int_gt(n, 0);
    for (int k = 0; k < n; k++) {
        size_t s = cls[k].block_size;
        for (int d = -1; d <= 1; d += 2) {
            unsigned char *p = rb_step(hakmem_malloc(1), 0, s);
            p = rb_step(p, s, s + d);
            p = rb_step(p, s + d, s);
            hakmem_free(p);
        }
    }
    static const size_t walk[] = {32768,    32769,    40000,      32000,          65535,    65536,   65537,
                                  100000,   30000,    100,        32769,          1u << 20, (1u << 20) + 1,
                                  3u << 20, (4u << 20) + 4096, 8u << 20, 5000000, 40000, 20000, 70000};
    unsigned char *p = rb_step(hakmem_malloc(1), 0, 1);
    size_t cur = 1;
    for (size_t i = 0; i < sizeof walk / sizeof walk[0]; i++) {
        p = rb_step(p, cur, walk[i]);
        cur = walk[i];
    }
    hakmem_free(p);
}
END_TEST

START_TEST(impossible_sizes)
{
    size_t big = v_huge;
    errno = 0;
    ck_assert_ptr_null(hakmem_malloc(big));
    ck_assert_int_eq(errno, ENOMEM);
    errno = 0;
    ck_assert_ptr_null(hakmem_aligned_alloc(64, big));
    ck_assert_int_eq(errno, ENOMEM);
    errno = 0;
    ck_assert_ptr_null(hakmem_memalign(64, big));
    ck_assert_int_eq(errno, ENOMEM);
    errno = 0;
    ck_assert_ptr_null(hakmem_valloc(big));
    ck_assert_int_eq(errno, ENOMEM);
    errno = 0;
    ck_assert_ptr_null(hakmem_pvalloc(big));
    ck_assert_int_eq(errno, ENOMEM);
    void *mp = (void *)(uintptr_t)0x999;
    ck_assert_int_eq(hakmem_posix_memalign(&mp, 64, big), ENOMEM);
    ck_assert_ptr_eq(mp, (void *)(uintptr_t)0x999);
    char *p = hakmem_malloc(50);
    ck_assert_ptr_nonnull(p);
    memset(p, 7, 50);
    errno = 0;
    ck_assert_ptr_null(hakmem_realloc(p, big));
    ck_assert_int_eq(errno, ENOMEM);
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(p[i], 7);
    hakmem_free(p);
}
END_TEST

START_TEST(alignment_api)
{
    for (size_t a = 1; a <= (8u << 20); a <<= 1) {
        void *p = hakmem_aligned_alloc(a, 48);
        ck_assert_msg(p && ((uintptr_t)p & (a - 1)) == 0, "hakmem_aligned_alloc(%zu) = %p", a, p);
        ck_assert_int_eq(hakmem_owns(p), 1);
        void *q = hakmem_memalign(a, 5000);
        ck_assert_msg(q && ((uintptr_t)q & (a - 1)) == 0, "hakmem_memalign(%zu) = %p", a, q);
        ck_assert(hakmem_malloc_usable_size(q) >= 5000);
        memset(q, 1, 5000);
        hakmem_free_aligned_sized(p, a, 48);
        hakmem_free(q);
        if (a >= sizeof(void *)) {
            void *r = NULL;
            ck_assert_int_eq(hakmem_posix_memalign(&r, a, 100), 0);
            ck_assert((((uintptr_t)r) & (a - 1)) == 0);
            hakmem_free(r);
        }
    }
    void *mp = (void *)(uintptr_t)0x888;
    ck_assert_int_eq(hakmem_posix_memalign(&mp, 24, 100), EINVAL);
    ck_assert_int_eq(hakmem_posix_memalign(&mp, 4, 100), EINVAL);
    ck_assert_ptr_eq(mp, (void *)(uintptr_t)0x888);
    errno = 0;
    ck_assert_ptr_null(hakmem_aligned_alloc(24, 100));
    ck_assert_int_eq(errno, EINVAL);

    long page = sysconf(_SC_PAGESIZE);
    void *v = hakmem_valloc(10);
    void *pv = hakmem_pvalloc(10);
    ck_assert(v && ((uintptr_t)v & (uintptr_t)(page - 1)) == 0);
    ck_assert(pv && ((uintptr_t)pv & (uintptr_t)(page - 1)) == 0);
    ck_assert(hakmem_malloc_usable_size(pv) >= (size_t)page);
    hakmem_free(v);
    hakmem_free(pv);

    void *s = hakmem_malloc(200);
    ck_assert_ptr_nonnull(s);
    hakmem_free_sized(s, 200);
    int r = hakmem_malloc_trim(0);
    ck_assert(r == 0 || r == 1);
}
END_TEST

/* hakmem_owns decides from hakmem's metadata: never true for memory it did
 * not hand out, and it must not read the memory (PROT_NONE cases). */
START_TEST(owns)
{
    int local;
    ck_assert_int_eq(hakmem_owns(NULL), 0);
    ck_assert_int_eq(hakmem_owns((void *)(uintptr_t)1), 0);
    ck_assert_int_eq(hakmem_owns((void *)(uintptr_t)4096), 0);
    ck_assert_int_eq(hakmem_owns(&local), 0);
    ck_assert_int_eq(hakmem_owns((void *)(uintptr_t)&identity), 0);
    void *g = malloc(100); /* glibc's: this copy does not override malloc */
    ck_assert_int_eq(hakmem_owns(g), 0);
    free(g);
    long page = sysconf(_SC_PAGESIZE);
    char *m = mmap(NULL, (size_t)page * 3, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert(m != MAP_FAILED);
    ck_assert_int_eq(hakmem_owns(m + page), 0);
    ck_assert_int_eq(hakmem_owns(m + page + 16), 0);
    munmap(m, (size_t)page * 3);

    void *small = hakmem_malloc(32);
    void *large = hakmem_malloc(8u << 20);
    ck_assert_int_eq(hakmem_owns(small), 1);
    ck_assert_int_eq(hakmem_owns(large), 1);
    hakmem_free(small);
    hakmem_free(large);
}
END_TEST

START_TEST(stats_get)
{
    struct hakmem_stats st, st2;
    errno = 0;
    ck_assert_int_eq(hakmem_stats_get(NULL, sizeof st), -1);
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_int_eq(hakmem_stats_get(&st, 3), -1);
    ck_assert_int_eq(errno, EINVAL);

    void *warm = hakmem_malloc(64);
    ck_assert_int_eq(hakmem_stats_get(&st, sizeof st), 0);
    ck_assert_uint_eq(st.lean_mode, 0); /* FAST */
    ck_assert_msg(st.bytes_mapped > 0, "bytes_mapped is 0 with a live block");
    /* The counters are built in exactly when configure said so. */
    ck_assert_uint_eq(st.stats_built_in, HAKMEM_SS_STATS ? 1 : 0);

    enum { N = 16 };
    void *v[N];
    for (int i = 0; i < N; i++) {
        v[i] = hakmem_malloc(1u << 20);
        ck_assert_ptr_nonnull(v[i]);
        memset(v[i], 1, 1u << 20);
    }
    ck_assert_int_eq(hakmem_stats_get(&st2, sizeof st2), 0);
    ck_assert_msg(st2.bytes_mapped >= st.bytes_mapped + (size_t)N * (1u << 20) / 2 ||
                      st.bytes_mapped >= (size_t)N * (1u << 20),
                  "bytes_mapped %llu -> %llu with 16 MiB more live", (unsigned long long)st.bytes_mapped,
                  (unsigned long long)st2.bytes_mapped);
    ck_assert(st2.bytes_mapped_peak >= st2.bytes_mapped);
    for (int i = 0; i < N; i++)
        hakmem_free(v[i]);
    hakmem_free(warm);
}
END_TEST

START_TEST(stats_print)
{
    int fds[2];
    char buf[16384];
    ck_assert_int_eq(pipe(fds), 0);
    hakmem_stats_print(fds[1]);
    close(fds[1]);
    size_t len = 0;
    ssize_t n;
    while ((n = read(fds[0], buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)n;
    close(fds[0]);
    buf[len] = '\0';
    ck_assert_msg(len > 0, "hakmem_stats_print wrote nothing");
    /* The human form: version and variant first, gauges with units. */
    ck_assert_msg(strncmp(buf, "hakmem " PACKAGE_VERSION " (fast, LEAN off, counters ", 30) == 0, "first line:\n%s", buf);
    char *m = strstr(buf, "\n  mapped ");
    ck_assert_msg(m != NULL, "no mapped line in:\n%s", buf);
    char *unit = strstr(m, " MiB");
    ck_assert_msg(unit && unit < strchr(m + 1, '\n'), "mapped has no unit in:\n%s", buf);
    ck_assert_msg(strstr(buf, "\nsize classes in use:\n") != NULL, "no size classes in:\n%s", buf);
}
END_TEST

/* malloc_trim gives back what is cached: a freed large block's range goes
 * back (1), and a second trim finds nothing left (0). */
START_TEST(malloc_trim_releases)
{
    hakmem_malloc_trim(0);
    void *p = hakmem_malloc(3u << 20);
    ck_assert_ptr_nonnull(p);
    memset(p, 1, 3u << 20);
    hakmem_free(p);
    struct hakmem_stats st;
    ck_assert_int_eq(hakmem_stats_get(&st, sizeof st), 0);
    ck_assert_uint_ge(st.large_cached_bytes, 3u << 20);
    ck_assert_int_eq(hakmem_malloc_trim(0), 1);
    ck_assert_int_eq(hakmem_stats_get(&st, sizeof st), 0);
    ck_assert_uint_eq(st.large_cached_bytes, 0);
    ck_assert_int_eq(hakmem_malloc_trim(0), 0);
    /* and the allocator works afterwards */
    p = hakmem_malloc(3u << 20);
    ck_assert_ptr_nonnull(p);
    hakmem_free(p);
}
END_TEST

START_TEST(many_blocks_distinct)
{
    /* blocks are disjoint: stamp all, check all */
    enum { N = 20000 };
    unsigned char **v = malloc(N * sizeof *v);
    ck_assert_ptr_nonnull(v);
    for (int i = 0; i < N; i++) {
        size_t n = (size_t)(i % 300) + 1;
        v[i] = hakmem_malloc(n);
        ck_assert_ptr_nonnull(v[i]);
        memset(v[i], i & 0xff, n);
    }
    for (int i = 0; i < N; i++) {
        size_t n = (size_t)(i % 300) + 1;
        for (size_t k = 0; k < n; k++)
            if (v[i][k] != (unsigned char)(i & 0xff))
                ck_abort_msg("block %d (%p, %zu bytes) overwritten at %zu", i, (void *)v[i], n, k);
    }
    for (int i = 0; i < N; i++)
        hakmem_free(v[i]);
    free(v);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("prefixed");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, identity);
    tcase_add_test(tc, version_macros);
    tcase_add_test(tc, malloc_free_basic);
    tcase_add_test(tc, calloc_realloc);
    tcase_add_test(tc, realloc_across_boundaries);
    tcase_add_test(tc, impossible_sizes);
    tcase_add_test(tc, alignment_api);
    tcase_add_test(tc, owns);
    tcase_add_test(tc, stats_get);
    tcase_add_test(tc, stats_print);
    tcase_add_test(tc, many_blocks_distinct);
    tcase_add_test(tc, malloc_trim_releases);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
