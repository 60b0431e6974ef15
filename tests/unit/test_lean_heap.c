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
    ck_assert_msg(empty.slabs_in_use == full.slabs_in_use && empty.ss_live == full.ss_live,
                  "kept slabs given back in a steady program: slabs %llu -> %llu, superslabs %llu -> %llu",
                  (unsigned long long)full.slabs_in_use, (unsigned long long)empty.slabs_in_use,
                  (unsigned long long)full.ss_live, (unsigned long long)empty.ss_live);
    ck_assert_uint_eq(empty.bytes_committed, full.bytes_committed);
    /* the next blocks of those classes are the same ones (LIFO) */
    alloc_each(q);
    for (int i = 0; i < NSIZES; i++) {
        ck_assert_ptr_eq(q[i], p[i]);
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
    struct hakmem_stats after = stats_now();
    ck_assert_msg(after.slabs_in_use == before.slabs_in_use && after.ss_live == before.ss_live,
                  "a shrinking program kept slabs %llu (before %llu), superslabs %llu (before %llu)",
                  (unsigned long long)after.slabs_in_use, (unsigned long long)before.slabs_in_use,
                  (unsigned long long)after.ss_live, (unsigned long long)before.ss_live);
}
END_TEST

/* The same, when the kept slabs emptied before the shrink began: no free
 * into them comes to release them, so the release of the burst's last
 * slab in their superslab must (the burst's slabs around them would
 * otherwise wait to be given back one batch at a time). */
START_TEST(slabs_kept_before_a_shrink_go_back_with_it)
{
    struct hakmem_stats before = stats_now();
    void *p[NSIZES];
    alloc_each(p);
    for (int i = 0; i < NSIZES; i++)
        hk_small_free(p[i]);
    ck_assert_uint_eq(stats_now().slabs_in_use, before.slabs_in_use + NSIZES); /* kept: not shrinking */
    burst_over_budget();
    struct hakmem_stats after = stats_now();
    ck_assert_msg(after.slabs_in_use == before.slabs_in_use && after.ss_live == before.ss_live,
                  "slabs kept before a shrink stayed: slabs %llu (before %llu), superslabs %llu (before %llu)",
                  (unsigned long long)after.slabs_in_use, (unsigned long long)before.slabs_in_use,
                  (unsigned long long)after.ss_live, (unsigned long long)before.ss_live);
}
END_TEST

int main(int argc, char **argv)
{
    (void)argc;
    if (!getenv("HAKMEM_TEST_LEAN_HEAP_PINNED")) {
        setenv("HAKMEM_TEST_LEAN_HEAP_PINNED", "1", 1);
        setenv("HAKMEM_SS_MEM_LEAN", "1", 1);
        setenv("HAKMEM_SS_MEM_LEAN_DECOMMIT", "DONTNEED", 1);
        unsetenv("HAKMEM_SS_MEM_LEAN_TARGET_MB");
        unsetenv("HAKMEM_CONF");
        unsetenv("HAKMEM_PURGE_DELAY_MS");
        unsetenv("HAKMEM_BACKGROUND");
        execv("/proc/self/exe", argv);
        perror("test_lean_heap: execv /proc/self/exe");
        return 99;
    }
    Suite *s = suite_create("lean_heap");
    TCase *tc = tcase_create("kept slabs");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, steady_classes_keep_their_slabs);
    tcase_add_test(tc, shrinking_program_gives_kept_slabs_back);
    tcase_add_test(tc, slabs_kept_before_a_shrink_go_back_with_it);
    suite_add_tcase(s, tc);
    return hk_unit_run(s);
}
