/* t_api.c: the glibc allocation API contract under LD_PRELOAD
 * (CONFORMANCE A.1, A.2, A.4-A.11).
 *
 * Programs written for glibc rely on these corner cases (malloc(0) being
 * non-NULL, free keeping errno, realloc(p,0) freeing, EINVAL vs ENOMEM, ...);
 * a drop-in allocator that differs breaks them in ways that are hard to
 * trace back. Each case is a separate Check test so a failure names it.
 * A.3 (every size) is in t_sizes.c, A.12 in t_symbols.c, A.13 in t_early.c.
 */
#include "hk_test.h"

#include <check.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>

/* Sizes the compiler cannot see, so -Walloc-size-larger-than does not turn
 * the deliberate impossible requests into build errors. */
static volatile size_t v_huge = (size_t)PTRDIFF_MAX + 1;
static volatile size_t v_sizemax = SIZE_MAX;
static volatile size_t v_zero = 0;

#define SENTINEL 12345

static void fill(void *p, size_t n, unsigned char c) { memset(p, c, n); }

static int all_bytes(const void *p, size_t n, unsigned char c)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != c)
            return 0;
    return 1;
}

/* ---- A.1: zero-size requests --------------------------------------------- */
START_TEST(zero_sizes_non_null_distinct)
{
    size_t z = v_zero;
    void *p[6];
    p[0] = malloc(z);
    p[1] = calloc(z, 8);
    p[2] = calloc(8, z);
    p[3] = realloc(NULL, z);
    p[4] = aligned_alloc(16, z);
    p[5] = malloc(z);
    for (int i = 0; i < 6; i++) {
        ck_assert_msg(p[i] != NULL, "zero-size request #%d returned NULL", i);
        ck_assert_msg(((uintptr_t)p[i] & 15) == 0, "zero-size #%d not 16-aligned: %p", i, p[i]);
        for (int j = 0; j < i; j++)
            ck_assert_msg(p[i] != p[j], "zero-size requests #%d and #%d both returned %p", j, i, p[i]);
    }
    for (int i = 0; i < 6; i++)
        free(p[i]);
}
END_TEST

/* ---- A.2: free preserves errno ------------------------------------------- */
START_TEST(free_preserves_errno)
{
    static const size_t sizes[] = {1, 16, 100, 1024, 4096, 40000, 300000, 4u << 20, 64u << 20};
    errno = SENTINEL;
    free(NULL);
    ck_assert_int_eq(errno, SENTINEL);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = malloc(sizes[i]);
        ck_assert_ptr_nonnull(p);
        fill(p, sizes[i], 0x11);
        errno = SENTINEL;
        free(p);
        ck_assert_msg(errno == SENTINEL, "free of %zu-byte block changed errno to %d", sizes[i], errno);
    }
    /* A burst then a mass free, which may make the allocator give memory
     * back to the OS (munmap/madvise inside free). */
    enum { N = 4096 };
    void **v = malloc(N * sizeof *v);
    ck_assert_ptr_nonnull(v);
    for (int i = 0; i < N; i++) {
        v[i] = malloc((size_t)(i % 64 + 1) * 64);
        ck_assert_ptr_nonnull(v[i]);
    }
    for (int i = 0; i < N; i++) {
        errno = SENTINEL;
        free(v[i]);
        ck_assert_msg(errno == SENTINEL, "free #%d changed errno to %d", i, errno);
    }
    free(v);
}
END_TEST

/* ---- A.4: calloc returns zeroed memory, also on reuse ---------------------- */
START_TEST(calloc_zero_on_dirty_reuse)
{
    static const size_t sizes[] = {8, 16, 24, 100, 512, 1000, 4096, 5000, 65536, 200000, 1u << 20, 8u << 20};
    enum { K = 32 };
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        int k = n > 100000 ? 4 : K;
        void *p[K];
        /* Dirty a batch of blocks of this size, free them, then calloc the
         * same size: the allocator is likely to hand the dirty blocks back. */
        for (int round = 0; round < 3; round++) {
            for (int i = 0; i < k; i++) {
                p[i] = malloc(n);
                ck_assert_ptr_nonnull(p[i]);
                fill(p[i], malloc_usable_size(p[i]), 0xA5);
            }
            for (int i = 0; i < k; i++)
                free(p[i]);
            for (int i = 0; i < k; i++) {
                p[i] = calloc(1, n);
                ck_assert_ptr_nonnull(p[i]);
                ck_assert_msg(all_bytes(p[i], n, 0), "calloc(1,%zu) round %d block %d not zero", n, round, i);
            }
            for (int i = 0; i < k; i++)
                free(p[i]);
        }
        /* calloc(n, size) with the product == n too */
        void *q = calloc(n / 8 ? n / 8 : 1, 8);
        ck_assert_ptr_nonnull(q);
        ck_assert(all_bytes(q, (n / 8 ? n / 8 : 1) * 8, 0));
        free(q);
    }
}
END_TEST

/* ---- A.5: calloc overflow ------------------------------------------------- */
START_TEST(calloc_overflow)
{
    size_t m = v_sizemax;
    errno = 0;
    ck_assert_ptr_null(calloc(m, 2));
    ck_assert_int_eq(errno, ENOMEM);
    errno = 0;
    ck_assert_ptr_null(calloc(2, m));
    ck_assert_int_eq(errno, ENOMEM);
    errno = 0;
    ck_assert_ptr_null(calloc(v_sizemax / 4 + ((size_t)1 << 32), 4));
    ck_assert_int_eq(errno, ENOMEM);
    errno = 0;
    ck_assert_ptr_null(calloc(m / 2 + 1, 2));
    ck_assert_int_eq(errno, ENOMEM);
}
END_TEST

/* ---- A.6: impossible sizes for every entry point ------------------------- */
#define EXPECT_ENOMEM(expr)                                                          \
    do {                                                                             \
        errno = 0;                                                                   \
        void *r_ = (expr);                                                           \
        ck_assert_msg(r_ == NULL, "%s returned %p, expected NULL", #expr, r_);       \
        ck_assert_msg(errno == ENOMEM, "%s set errno %d, expected ENOMEM", #expr, errno); \
    } while (0)

START_TEST(impossible_sizes)
{
    const size_t bigs[] = {v_huge, v_sizemax, v_sizemax - 4096, v_huge + 4096};
    for (size_t i = 0; i < sizeof bigs / sizeof bigs[0]; i++) {
        size_t big = bigs[i];
        EXPECT_ENOMEM(malloc(big));
        EXPECT_ENOMEM(calloc(1, big));
        EXPECT_ENOMEM(calloc(big, 1));
        EXPECT_ENOMEM(realloc(NULL, big));
        EXPECT_ENOMEM(reallocarray(NULL, 1, big));
        EXPECT_ENOMEM(aligned_alloc(16, big));
        EXPECT_ENOMEM(aligned_alloc(4096, big));
        EXPECT_ENOMEM(aligned_alloc(1u << 20, big));
        EXPECT_ENOMEM(memalign(64, big));
        EXPECT_ENOMEM(valloc(big));
        EXPECT_ENOMEM(pvalloc(big));

        void *sentinel = (void *)(uintptr_t)0xdeadbeef;
        void *mp = sentinel;
        int rc = posix_memalign(&mp, 64, big);
        ck_assert_msg(rc == ENOMEM, "posix_memalign(64, %zu) returned %d, expected ENOMEM", big, rc);
        ck_assert_msg(mp == sentinel, "posix_memalign changed *memptr on failure");

        /* realloc / reallocarray must leave the old block intact. */
        char *old = malloc(100);
        ck_assert_ptr_nonnull(old);
        fill(old, 100, 0x3c);
        EXPECT_ENOMEM(realloc(old, big));
        EXPECT_ENOMEM(reallocarray(old, 1, big));
        ck_assert_msg(all_bytes(old, 100, 0x3c), "failed realloc damaged the old block");
        free(old);
    }
}
END_TEST

/* ---- A.7: realloc semantics ------------------------------------------------ */
START_TEST(realloc_semantics)
{
    /* NULL acts as malloc */
    unsigned char *p = realloc(NULL, 40);
    ck_assert_ptr_nonnull(p);
    ck_assert(malloc_usable_size(p) >= 40);
    for (size_t i = 0; i < 40; i++)
        p[i] = (unsigned char)(i * 7 + 3);

    /* grow through small, medium and large sizes, shrink back: the common
     * prefix is kept at every step. Byte i always holds (i*7+3). */
    static const size_t steps[] = {41, 64, 100, 1000, 4096, 4097, 40000, 300000, 5u << 20,
                                   300000, 1000, 17, 40, 1u << 20, 40};
    size_t keep = 40;
    for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
        size_t n = steps[s];
        unsigned char *q = realloc(p, n);
        ck_assert_msg(q != NULL, "realloc to %zu failed", n);
        size_t pre = keep < n ? keep : n;
        for (size_t i = 0; i < pre; i++)
            if (q[i] != (unsigned char)(i * 7 + 3))
                ck_abort_msg("byte %zu lost at realloc %zu -> %zu", i, keep, n);
        ck_assert(malloc_usable_size(q) >= n);
        for (size_t i = pre; i < n; i++)
            q[i] = (unsigned char)(i * 7 + 3);
        keep = n;
        p = q;
    }
    free(p);

    /* a full-size pattern is kept across a grow of a large block */
    size_t n = 3u << 20;
    unsigned char *b = malloc(n);
    ck_assert_ptr_nonnull(b);
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(i ^ (i >> 9));
    b = realloc(b, 7u << 20);
    ck_assert_ptr_nonnull(b);
    for (size_t i = 0; i < n; i++)
        if (b[i] != (unsigned char)(i ^ (i >> 9)))
            ck_abort_msg("large grow lost byte %zu", i);
    free(b);

    /* realloc(p, 0) frees and returns NULL (glibc behaviour) */
    void *z = malloc(100);
    ck_assert_ptr_nonnull(z);
    ck_assert_ptr_null(realloc(z, v_zero));
    void *zl = malloc(2u << 20);
    ck_assert_ptr_nonnull(zl);
    ck_assert_ptr_null(realloc(zl, v_zero));

    /* A block of malloc(0) grows (its usable size is 0 in the debug build:
     * still a block) */
    char *g = realloc(malloc(v_zero), 128);
    ck_assert_ptr_nonnull(g);
    memset(g, 7, 128);
    free(g);
}
END_TEST

/* ---- A.8: reallocarray overflow ------------------------------------------ */
START_TEST(reallocarray_overflow)
{
    unsigned char *p = reallocarray(NULL, 10, 10);
    ck_assert_ptr_nonnull(p);
    ck_assert(malloc_usable_size(p) >= 100);
    fill(p, 100, 0x77);
    errno = 0;
    ck_assert_ptr_null(reallocarray(p, v_sizemax, 2));
    ck_assert_int_eq(errno, ENOMEM);
    errno = 0;
    ck_assert_ptr_null(reallocarray(p, v_sizemax / 8 + 2, 8));
    ck_assert_int_eq(errno, ENOMEM);
    ck_assert_msg(all_bytes(p, 100, 0x77), "failed reallocarray damaged the block");
    p = reallocarray(p, 1000, 8);
    ck_assert_ptr_nonnull(p);
    ck_assert(all_bytes(p, 100, 0x77));
    free(p);
}
END_TEST

/* ---- A.9: posix_memalign argument checks --------------------------------- */
START_TEST(posix_memalign_checks)
{
    static const size_t bad[] = {0, 1, 2, 4, 12, 24, 48, 100, 4095, 4097, ((size_t)1 << 20) + 8};
    void *const sentinel = (void *)(uintptr_t)0x1234560;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        void *mp = sentinel;
        errno = SENTINEL;
        int rc = posix_memalign(&mp, bad[i], 64);
        ck_assert_msg(rc == EINVAL, "posix_memalign(align=%zu) returned %d, expected EINVAL", bad[i], rc);
        ck_assert_msg(mp == sentinel, "posix_memalign(align=%zu) changed *memptr on EINVAL", bad[i]);
        ck_assert_msg(errno == SENTINEL, "posix_memalign changed errno (it reports through its return value)");
    }
    /* size 0 succeeds; the result (NULL or a block) is freeable */
    void *mp = sentinel;
    ck_assert_int_eq(posix_memalign(&mp, 64, v_zero), 0);
    ck_assert_ptr_ne(mp, sentinel);
    ck_assert(((uintptr_t)mp & 63) == 0);
    free(mp);
    /* every valid power of two >= sizeof(void*) */
    for (size_t a = sizeof(void *); a <= (8u << 20); a <<= 1) {
        void *q = NULL;
        ck_assert_int_eq(posix_memalign(&q, a, 100), 0);
        ck_assert_ptr_nonnull(q);
        ck_assert_msg(((uintptr_t)q & (a - 1)) == 0, "posix_memalign(%zu) gave %p", a, q);
        fill(q, 100, 0x5e);
        free(q);
    }
}
END_TEST

/* ---- A.10: aligned_alloc, memalign, valloc, pvalloc ------------------------ */
typedef void *(*align_fn)(size_t, size_t);

static void check_alignment_fn(align_fn fn, const char *name)
{
    static const size_t sizes[] = {1, 8, 24, 100, 4096, 70000, 1u << 20};
    for (size_t a = 1; a <= (8u << 20); a <<= 1) {
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            size_t n = sizes[s];
            /* keep the test fast: the biggest alignments with small sizes */
            if (a >= (1u << 20) && n > 4096)
                continue;
            void *p[3];
            for (int k = 0; k < 3; k++) {
                p[k] = fn(a, n);
                ck_assert_msg(p[k] != NULL, "%s(%zu, %zu) returned NULL", name, a, n);
                ck_assert_msg(((uintptr_t)p[k] & (a - 1)) == 0, "%s(%zu, %zu) returned %p, misaligned",
                              name, a, n, p[k]);
                ck_assert_msg(((uintptr_t)p[k] & 15) == 0, "%s(%zu, %zu) returned %p, not 16-aligned",
                              name, a, n, p[k]);
                size_t us = malloc_usable_size(p[k]);
                ck_assert_msg(us >= n, "%s(%zu, %zu): usable size %zu", name, a, n, us);
                fill(p[k], us, (unsigned char)(0x40 + k));
            }
            for (int k = 0; k < 3; k++) {
                ck_assert_msg(all_bytes(p[k], n, (unsigned char)(0x40 + k)),
                              "%s(%zu, %zu): blocks overlap", name, a, n);
                free(p[k]);
            }
        }
    }
}

static void *memalign_wrap(size_t a, size_t n) { return memalign(a, n); }

START_TEST(aligned_alloc_every_alignment) { check_alignment_fn(aligned_alloc, "aligned_alloc"); }
END_TEST

START_TEST(memalign_every_alignment) { check_alignment_fn(memalign_wrap, "memalign"); }
END_TEST

START_TEST(invalid_alignment_einval)
{
    static const size_t bad[] = {3, 24, 100, 1000, 4097, ((size_t)1 << 20) + 16};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        void *p = aligned_alloc(bad[i], 64);
        ck_assert_msg(p == NULL && errno == EINVAL, "aligned_alloc(%zu, 64) = %p errno %d, expected NULL+EINVAL",
                      bad[i], p, errno);
        errno = 0;
        p = memalign(bad[i], 64);
        ck_assert_msg(p == NULL && errno == EINVAL, "memalign(%zu, 64) = %p errno %d, expected NULL+EINVAL",
                      bad[i], p, errno);
    }
    errno = 0;
    void *p = aligned_alloc(v_zero, 64);
    ck_assert_msg(p == NULL && errno == EINVAL, "aligned_alloc(0, 64) = %p errno %d, expected NULL+EINVAL", p, errno);
}
END_TEST

START_TEST(valloc_pvalloc_page_aligned)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    static const size_t sizes[] = {1, 100, 4095, 4096, 4097, 10000, 1u << 20, 3u << 20};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        void *v = valloc(n);
        ck_assert_msg(v && ((uintptr_t)v & (page - 1)) == 0, "valloc(%zu) = %p", n, v);
        ck_assert(malloc_usable_size(v) >= n);
        fill(v, n, 0x21);
        void *pv = pvalloc(n);
        ck_assert_msg(pv && ((uintptr_t)pv & (page - 1)) == 0, "pvalloc(%zu) = %p", n, pv);
        size_t rounded = (n + page - 1) & ~(page - 1);
        ck_assert_msg(malloc_usable_size(pv) >= rounded, "pvalloc(%zu): usable %zu < %zu", n,
                      malloc_usable_size(pv), rounded);
        fill(pv, rounded, 0x22);
        ck_assert(all_bytes(v, n, 0x21));
        free(v);
        free(pv);
    }
}
END_TEST

/* ---- A.11 ------------------------------------------------------------------ */
START_TEST(usable_size_null)
{
    ck_assert_uint_eq(malloc_usable_size(NULL), 0);
}
END_TEST

/* The blocks the API hands out are hakmem's (proves the preload works for
 * every entry point, not just malloc). */
START_TEST(every_entry_point_is_hakmem)
{
    void *mp = NULL;
    void *p[9];
    p[8] = malloc(0); /* a block too (its usable size is 0 in the debug build) */
    p[0] = malloc(10);
    p[1] = calloc(3, 10);
    p[2] = realloc(NULL, 10);
    p[3] = reallocarray(NULL, 3, 10);
    p[4] = aligned_alloc(64, 64);
    p[5] = memalign(256, 10);
    p[6] = valloc(10);
    ck_assert_int_eq(posix_memalign(&mp, 128, 10), 0);
    p[7] = mp;
    for (int i = 0; i < 9; i++) {
        ck_assert_ptr_nonnull(p[i]);
        ck_assert_msg(hk_owns(p[i]) == 1, "block #%d (%p) is not owned by hakmem", i, p[i]);
    }
    for (int i = 0; i < 9; i++)
        free(p[i]);
}
END_TEST

static Suite *api_suite(void)
{
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("contract");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, zero_sizes_non_null_distinct);
    tcase_add_test(tc, free_preserves_errno);
    tcase_add_test(tc, calloc_zero_on_dirty_reuse);
    tcase_add_test(tc, calloc_overflow);
    tcase_add_test(tc, impossible_sizes);
    tcase_add_test(tc, realloc_semantics);
    tcase_add_test(tc, reallocarray_overflow);
    tcase_add_test(tc, posix_memalign_checks);
    tcase_add_test(tc, aligned_alloc_every_alignment);
    tcase_add_test(tc, memalign_every_alignment);
    tcase_add_test(tc, invalid_alignment_einval);
    tcase_add_test(tc, valloc_pvalloc_page_aligned);
    tcase_add_test(tc, usable_size_null);
    tcase_add_test(tc, every_entry_point_is_hakmem);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    hk_require_preloaded();
    SRunner *sr = srunner_create(api_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
