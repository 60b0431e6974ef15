/* test_lean_heap.c: the heap box with LEAN on, at the default budget
 * (10 MiB) and DONTNEED, against the internal LEAN copy: when the slab each
 * class keeps goes back with its superslab.
 *
 *  - a steady program whose classes all empty at once keeps those slabs
 *    where they are, and its next blocks come from them: giving them back
 *    would only move the classes onto other pages that become resident
 *    too (the soak's Rss grew in steps of 0.4-0.9 MiB that way);
 *  - a program that was over budget a moment ago is shrinking: the same
 *    kept slabs go back with their superslab as soon as the last block is
 *    freed, with no trim call (a burst is given back whole), and so do
 *    slabs kept before the shrink began, once the rest of their
 *    superslab is released.
 *
 * The settings are pinned by running again with them (the library reads
 * them at load). Each test runs in its own process (Check's fork mode)
 * and compares the statistics before and after, so what the runner
 * itself allocated does not count.
 */
#include "unit_common.h"

#include "front/api_box.h"
#include "heap/heap_box.h"

/* One block size of a few classes, all from the first slabs of a fresh
 * superslab. */
static const size_t kSizes[] = {48, 160, 448, 960, 1664, 2048};
enum { NSIZES = sizeof kSizes / sizeof kSizes[0] };

static struct hakmem_stats stats_now(void)
{
    struct hakmem_stats st;
    ck_assert_int_eq(hakmem_stats_get(&st, sizeof st), 0);
    return st;
}

/* Slabs in use and superslabs in use are as they were in `was`. */
static void assert_same_slabs(const char *what, struct hakmem_stats was, struct hakmem_stats now)
{
    ck_assert_msg(now.slabs_in_use == was.slabs_in_use && now.ss_live == was.ss_live,
                  "%s: slabs in use %llu -> %llu, superslabs %llu -> %llu", what,
                  (unsigned long long)was.slabs_in_use, (unsigned long long)now.slabs_in_use,
                  (unsigned long long)was.ss_live, (unsigned long long)now.ss_live);
}

static void alloc_each(void *p[NSIZES])
{
    for (int i = 0; i < NSIZES; i++) {
        p[i] = hk_alloc_class(hk_size_to_class(kSizes[i]));
        ck_assert_ptr_nonnull(p[i]);
        memset(p[i], 0x11, kSizes[i]);
    }
}

/* 24 MiB of one class, over the 10 MiB budget, then freed: the
 * superslabs it emptied go back for the budget, so the program is
 * shrinking. */
static void burst_over_budget(void)
{
    unsigned big = hk_size_to_class(1000);
    enum { N = 24 * 1024 };
    static void *v[N];
    for (int i = 0; i < N; i++) {
        v[i] = hk_alloc_class(big);
        ck_assert_ptr_nonnull(v[i]);
        memset(v[i], 0x22, 1000);
    }
    for (int i = 0; i < N; i++)
        hk_small_free(v[i]);
}

START_TEST(steady_classes_keep_their_slabs)
{
    struct hakmem_stats before = stats_now();
    void *p[NSIZES], *q[NSIZES];
    alloc_each(p);
    struct hakmem_stats full = stats_now();
    ck_assert_uint_eq(full.slabs_in_use, before.slabs_in_use + NSIZES);
    for (int i = 0; i < NSIZES; i++)
        hk_small_free(p[i]);
    struct hakmem_stats empty = stats_now();
    assert_same_slabs("a steady program's kept slabs", full, empty);
    ck_assert_uint_eq(empty.bytes_committed, full.bytes_committed);
    /* the next blocks of those classes come from the same slabs */
    alloc_each(q);
    for (int i = 0; i < NSIZES; i++) {
        ck_assert_uint_eq((uintptr_t)q[i] >> 16, (uintptr_t)p[i] >> 16);
        hk_small_free(q[i]);
    }
}
END_TEST

START_TEST(shrinking_program_gives_kept_slabs_back)
{
    struct hakmem_stats before = stats_now();
    void *p[NSIZES];
    alloc_each(p);
    burst_over_budget();
    /* Now the first superslab is held by the kept slabs only: when the
     * last of them empties, it goes back at once. */
    for (int i = 0; i < NSIZES; i++)
        hk_small_free(p[i]);
    assert_same_slabs("a shrinking program's kept slabs", before, stats_now());
}
END_TEST

/* The same, when the kept slabs emptied before the shrink began: no free
 * into them comes to release them, so the release of another superslab
 * for the budget must (the burst's slabs around them would otherwise wait
 * to be given back one batch at a time). */
START_TEST(slabs_kept_before_a_shrink_go_back_with_it)
{
    struct hakmem_stats before = stats_now();
    void *p[NSIZES];
    alloc_each(p);
    for (int i = 0; i < NSIZES; i++)
        hk_small_free(p[i]);
    ck_assert_uint_eq(stats_now().slabs_in_use, before.slabs_in_use + NSIZES); /* kept: not shrinking */
    burst_over_budget();
    assert_same_slabs("slabs kept before a shrink", before, stats_now());
}
END_TEST

int main(int argc, char **argv)
{
    (void)argc;
    static const char *const set[] = {"HAKMEM_SS_MEM_LEAN=1", "HAKMEM_SS_MEM_LEAN_DECOMMIT=DONTNEED", NULL};
    static const char *const unset[] = {"HAKMEM_SS_MEM_LEAN_TARGET_MB", "HAKMEM_CONF", "HAKMEM_PURGE_DELAY_MS",
                                        "HAKMEM_BACKGROUND", NULL};
    hk_unit_pin_settings(argv, "HAKMEM_TEST_LEAN_HEAP_PINNED", set, unset);
    Suite *s = suite_create("lean_heap");
    TCase *tc = tcase_create("kept slabs");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, steady_classes_keep_their_slabs);
    tcase_add_test(tc, shrinking_program_gives_kept_slabs_back);
    tcase_add_test(tc, slabs_kept_before_a_shrink_go_back_with_it);
    suite_add_tcase(s, tc);
    return hk_unit_run(s);
}
