/* t_sizes.c: every size through every allocating entry point
 * (CONFORMANCE A.3).
 *
 * Sizes 0..4096 and the powers of two (and their neighbours +-1) up to
 * 64 MiB, through malloc, calloc, realloc and reallocarray. Each block must
 * be 16-byte aligned, report malloc_usable_size >= the request, and accept
 * writes over its whole usable size without harming any other live block.
 * Blocks of many nearby sizes stay live together (a ring of recent blocks),
 * so an off-by-one in a size class or in usable_size shows up as a damaged
 * neighbour when the ring slot is checked and recycled.
 */
/* Note: Check records every passing ck_assert (a write to its channel), so
 * per-byte loops use a plain if + ck_abort_msg. */
#include "hk_test.h"

#include <check.h>
#include <malloc.h>

enum { RING = 61 };

struct slot {
    void *p;
    size_t usable;
    unsigned salt;
};

enum entry { E_MALLOC, E_CALLOC, E_REALLOC_NULL, E_REALLOC_GROW, E_REALLOCARRAY, E_COUNT };
static const char *const entry_name[E_COUNT] = {"malloc", "calloc", "realloc(NULL)", "realloc(grow)",
                                                "reallocarray"};

static void *alloc_via(enum entry e, size_t n)
{
    switch (e) {
    case E_MALLOC:
        return malloc(n);
    case E_CALLOC:
        return calloc(1, n);
    case E_REALLOC_NULL:
        return realloc(NULL, n);
    case E_REALLOC_GROW: {
        /* realloc of an existing small block: covers the in-place and the
         * moving paths. n == 0 would free, so use 1 there. */
        void *p = malloc(1);
        if (!p)
            return NULL;
        *(unsigned char *)p = 0xee;
        void *q = realloc(p, n ? n : 1);
        if (q && *(unsigned char *)q != 0xee)
            return (void *)(uintptr_t)1; /* flagged below as prefix loss */
        return q;
    }
    case E_REALLOCARRAY:
        return (n & 1) ? reallocarray(NULL, n, 1) : reallocarray(NULL, 1, n);
    default:
        return NULL;
    }
}

static void check_slot(const struct slot *s, enum entry e)
{
    size_t bad = hk_check_stamp(s->p, s->usable, s->salt);
    ck_assert_msg(bad == (size_t)-1,
                  "%s: block %p (request %u, usable %zu) damaged at offset %zu: a neighbour wrote into it",
                  entry_name[e], s->p, s->salt, s->usable, bad);
}

static void one(enum entry e, size_t n, struct slot *ring, size_t *ri)
{
    void *p = alloc_via(e, n);
    ck_assert_msg(p != (void *)(uintptr_t)1, "%s(%zu): realloc lost the first byte", entry_name[e], n);
    ck_assert_msg(p != NULL, "%s(%zu) returned NULL", entry_name[e], n);
    ck_assert_msg(((uintptr_t)p & 15) == 0, "%s(%zu) returned %p, not 16-byte aligned", entry_name[e], n, p);
    size_t us = malloc_usable_size(p);
    ck_assert_msg(us >= n, "%s(%zu): malloc_usable_size %zu < request", entry_name[e], n, us);
    if (e == E_CALLOC) {
        const unsigned char *c = p;
        for (size_t i = 0; i < n; i++)
            if (c[i] != 0)
                ck_abort_msg("calloc(1,%zu): byte %zu is %u", n, i, c[i]);
    }
    hk_stamp(p, us, (unsigned)n);

    struct slot *s = &ring[*ri % RING];
    (*ri)++;
    if (s->p) {
        check_slot(s, e);
        free(s->p);
    }
    s->p = p;
    s->usable = us;
    s->salt = (unsigned)n;
}

static void drain(struct slot *ring, enum entry e)
{
    for (int i = 0; i < RING; i++) {
        if (ring[i].p) {
            check_slot(&ring[i], e);
            free(ring[i].p);
            ring[i].p = NULL;
        }
    }
}

START_TEST(sizes_0_to_4096)
{
    enum entry e = (enum entry)_i;
    struct slot ring[RING];
    size_t ri = 0;
    memset(ring, 0, sizeof ring);
    /* upwards then downwards, so each size meets neighbours of both sides */
    for (size_t n = 0; n <= 4096; n++)
        one(e, n, ring, &ri);
    for (size_t n = 4096 + 1; n-- > 0;)
        one(e, n, ring, &ri);
    drain(ring, e);
}
END_TEST

START_TEST(powers_of_two_to_64mib)
{
    enum entry e = (enum entry)_i;
    /* a smaller ring: big blocks should not all be live at once */
    struct slot ring[RING];
    size_t ri = 0;
    memset(ring, 0, sizeof ring);
    for (int k = 0; k <= 26; k++) {
        size_t n = (size_t)1 << k;
        one(e, n - 1, ring, &ri);
        one(e, n, ring, &ri);
        one(e, n + 1, ring, &ri);
        /* keep the live set small once blocks are large */
        if (n >= (1u << 20))
            drain(ring, e);
    }
    drain(ring, e);
}
END_TEST

int main(void)
{
    hk_require_preloaded();
    Suite *s = suite_create("sizes");
    TCase *tc = tcase_create("sizes");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, sizes_0_to_4096, 0, E_COUNT);
    tcase_add_loop_test(tc, powers_of_two_to_64mib, 0, E_COUNT);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
