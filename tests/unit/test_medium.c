/* test_medium.c: unit tests of medium_box's promises, as its header states
 * them (src/boxes/backend/medium_box.h), against the internal FAST copy.
 *
 *  - a block is page-aligned, whole pages, in a region the registry marks
 *    MEDIUM; zero=true reads zero, also when the pages were used before;
 *  - free: a second free is ALREADY_FREE, an interior pointer, the header
 *    page or a never handed out page NOT_OURS, and neither touches a live
 *    block; usable and was_freed agree;
 *  - a free run is merged with its neighbours and the shortest fitting run
 *    is taken; resize grows into the free run behind and gives tail pages
 *    back; it fails where a live block is behind; a block expected to grow
 *    is cut from the longest free run, with room behind it;
 *  - trim: an empty region goes back to the OS; free runs of a region in
 *    use give their pages back; bytes_committed follows the headers
 *    exactly at every step;
 *  - threads: blocks allocated, written, freed by other threads, trimmed
 *    meanwhile: no two live blocks overlap, everything ends freed;
 *  - fork: the box's lock is taken around fork; a child allocates
 *    medium blocks while another thread of the parent held the lock;
 *  - thp:1 (HAKMEM_THP=1, where the system's mode is madvise): a trim whose
 *    free runs cannot go back (a huge page is given back whole) ends.
 *
 * Each test runs in a child of its own (Check forks), which has made no
 * medium allocation before it.
 */
#include "../integration/hk_test.h"

#include <check.h>
#include <pthread.h>
#include <sys/mman.h>

#include "backend/medium_box.h"
#include "base/superslab_stats.h"
#include "os/ss_registry_box.h"

#define PG ((size_t)HK_PAGE_SIZE)

static int all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

/* The process is set up (registry, settings) and no medium region exists. */
static void start(void)
{
    void *p = hakmem_malloc(16);
    ck_assert_ptr_nonnull(p);
    hakmem_free(p);
    (void)hk_medium_trim();
    hk_medium_stats_t st;
    hk_medium_stats(&st);
    ck_assert_uint_eq(st.regions, 0);
}

/* bytes_committed moved by exactly what the medium headers say. */
static void committed_agrees(int64_t gauge0, int64_t medium0)
{
    int64_t g = (int64_t)HK_GAUGE_GET(bytes_committed) - gauge0;
    int64_t m = hk_medium_count_committed() - medium0;
    ck_assert_msg(g == m, "bytes_committed moved by %lld, the medium headers by %lld", (long long)g, (long long)m);
}

START_TEST(medium_alloc_free)
{
    start();
    int local;
    int64_t g0 = (int64_t)HK_GAUGE_GET(bytes_committed), m0 = hk_medium_count_committed();
    unsigned char *p = hk_medium_alloc(HK_SMALL_MAX + 1, true);
    ck_assert_ptr_nonnull(p);
    ck_assert(((uintptr_t)p & (PG - 1)) == 0);
    ck_assert_uint_eq(hk_os_registry_kind((uintptr_t)p), HK_REG_MEDIUM);
    ck_assert_uint_eq(hk_medium_usable(p), HK_SMALL_MAX + PG); /* rounded up to whole pages */
    ck_assert(all_zero(p, HK_SMALL_MAX + 1));
    memset(p, 0x5a, hk_medium_usable(p));
    committed_agrees(g0, m0);
    ck_assert_int_eq(hk_medium_count_committed() - m0, (int64_t)HK_SS_SIZE);

    unsigned char *q = hk_medium_alloc(HK_MEDIUM_MAX, false);
    ck_assert_ptr_nonnull(q);
    ck_assert_uint_eq(hk_medium_usable(q), HK_MEDIUM_MAX);
    ck_assert(q + HK_MEDIUM_MAX <= p || p + hk_medium_usable(p) <= q);
    memset(q, 0x6b, HK_MEDIUM_MAX);

    hk_medium_stats_t st;
    hk_medium_stats(&st);
    ck_assert_uint_eq(st.live, 2);
    ck_assert_uint_eq(st.live_bytes, HK_SMALL_MAX + PG + HK_MEDIUM_MAX);
    ck_assert_uint_eq(st.regions, 1);

    /* Refused without touching the block: interior, header, never handed out. */
    ck_assert_int_eq(hk_medium_free(p + PG), HK_MEDIUM_NOT_OURS);
    ck_assert_int_eq(hk_medium_free(p + 16), HK_MEDIUM_NOT_OURS);
    ck_assert_int_eq(hk_medium_free((void *)((uintptr_t)p & ~(uintptr_t)HK_SS_MASK)), HK_MEDIUM_NOT_OURS);
    ck_assert_int_eq(hk_medium_free((void *)(((uintptr_t)p | HK_SS_MASK) + 1 - PG)), HK_MEDIUM_NOT_OURS);
    ck_assert_uint_eq(hk_medium_usable(p + PG), 0);
    ck_assert_uint_eq(hk_medium_usable(&local), 0);
    ck_assert(!hk_medium_was_freed(p));
    ck_assert_uint_eq(hk_medium_usable(p), HK_SMALL_MAX + PG);
    for (size_t i = 0; i < HK_SMALL_MAX + PG; i++)
        if (p[i] != 0x5a)
            ck_abort_msg("a refused free changed byte %zu of the block", i);

    ck_assert_int_eq(hk_medium_free(p), HK_MEDIUM_FREED);
    ck_assert(hk_medium_was_freed(p));
    ck_assert_uint_eq(hk_medium_usable(p), 0);
    ck_assert_int_eq(hk_medium_free(p), HK_MEDIUM_ALREADY_FREE);
    hk_medium_stats(&st);
    ck_assert_uint_eq(st.live, 1);
    ck_assert_uint_eq(st.live_bytes, HK_MEDIUM_MAX);

    /* The same length again: the freed pages, cleared for zero=true. */
    unsigned char *z = hk_medium_alloc(HK_SMALL_MAX + 1, true);
    ck_assert_ptr_eq(z, p);
    ck_assert(!hk_medium_was_freed(z));
    ck_assert(all_zero(z, HK_SMALL_MAX + 1));
    ck_assert_int_eq(hk_medium_free(z), HK_MEDIUM_FREED);
    ck_assert_int_eq(hk_medium_free(q), HK_MEDIUM_FREED);
    ck_assert_int_eq(hk_medium_free(q), HK_MEDIUM_ALREADY_FREE);
    committed_agrees(g0, m0);

    /* Everything free: trim gives the region back whole. */
    ck_assert_uint_ge(hk_medium_trim(), HK_SS_SIZE);
    hk_medium_stats(&st);
    ck_assert_uint_eq(st.regions, 0);
    ck_assert_uint_eq(st.live, 0);
    ck_assert_uint_eq(hk_os_registry_kind((uintptr_t)p), HK_REG_NONE);
    committed_agrees(g0, m0);
    ck_assert_int_eq(hk_medium_count_committed(), m0);
}
END_TEST

/* Blocks a, b, c cut one after another from a fresh region; b and a freed
 * (merged into one run by the trim, which empties the quick lists), then a
 * request of exactly their length takes that run, not the region's long
 * tail. */
START_TEST(medium_runs_merge_and_fit)
{
    start();
    int64_t g0 = (int64_t)HK_GAUGE_GET(bytes_committed), m0 = hk_medium_count_committed();
    unsigned char *a = hk_medium_alloc(10 * PG, false);
    unsigned char *b = hk_medium_alloc(20 * PG, false);
    unsigned char *c = hk_medium_alloc(30 * PG, false);
    ck_assert(a && b && c);
    ck_assert_ptr_eq(b, a + 10 * PG);
    ck_assert_ptr_eq(c, b + 20 * PG);
    memset(a, 1, 10 * PG);
    memset(b, 2, 20 * PG);
    memset(c, 3, 30 * PG);
    ck_assert_int_eq(hk_medium_free(b), HK_MEDIUM_FREED);
    ck_assert_int_eq(hk_medium_free(a), HK_MEDIUM_FREED);
    /* The trim also gives back the free runs' pages (c is live: the
     * region stays). */
    size_t back = hk_medium_trim();
    ck_assert_uint_ge(back, 30 * PG);
    committed_agrees(g0, m0);
    ck_assert_int_lt(hk_medium_count_committed() - m0, (int64_t)HK_SS_SIZE);

    unsigned char *d = hk_medium_alloc(30 * PG, true);
    ck_assert_ptr_eq(d, a);
    ck_assert(all_zero(d, 30 * PG));
    committed_agrees(g0, m0);
    for (size_t i = 0; i < 30 * PG; i++)
        if (c[i] != 3)
            ck_abort_msg("byte %zu of the live block changed", i);
    /* d's pages came back: committed again. */
    hk_medium_stats_t st;
    hk_medium_stats(&st);
    ck_assert_uint_eq(st.live, 2);
    ck_assert_uint_eq(st.live_bytes, 60 * PG);

    ck_assert_int_eq(hk_medium_free(d), HK_MEDIUM_FREED);
    ck_assert_int_eq(hk_medium_free(c), HK_MEDIUM_FREED);
    (void)hk_medium_trim();
    hk_medium_stats(&st);
    ck_assert_uint_eq(st.regions, 0);
    committed_agrees(g0, m0);
}
END_TEST

START_TEST(medium_resize)
{
    start();
    unsigned char *a = hk_medium_alloc(40 * PG, false);
    unsigned char *b = hk_medium_alloc(9 * PG, false);
    ck_assert(a && b);
    ck_assert_ptr_eq(b, a + 40 * PG);
    memset(a, 7, 40 * PG);
    /* b is live behind a: a cannot grow, and stays as it is. */
    ck_assert(!hk_medium_resize(a, 41 * PG));
    ck_assert_uint_eq(hk_medium_usable(a), 40 * PG);
    /* Shrink: the tail pages go free... */
    ck_assert(hk_medium_resize(a, 20 * PG));
    ck_assert_uint_eq(hk_medium_usable(a), 20 * PG);
    ck_assert_int_eq(hk_medium_free(a + 20 * PG), HK_MEDIUM_NOT_OURS);
    /* ...and a grows into them again; b's free gives the room for more. */
    ck_assert(hk_medium_resize(a, 40 * PG - 100));
    ck_assert_uint_eq(hk_medium_usable(a), 40 * PG);
    ck_assert_int_eq(hk_medium_free(b), HK_MEDIUM_FREED);
    (void)hk_medium_trim(); /* b off the quick list, merged behind a */
    ck_assert(hk_medium_resize(a, HK_MEDIUM_MAX));
    ck_assert_uint_eq(hk_medium_usable(a), HK_MEDIUM_MAX);
    for (size_t i = 0; i < 20 * PG; i++)
        if (a[i] != 7)
            ck_abort_msg("resize lost byte %zu", i);
    /* Beyond the box, or below it: refused. */
    ck_assert(!hk_medium_resize(a, HK_MEDIUM_MAX + 1));
    ck_assert(!hk_medium_resize(a, HK_SMALL_MAX));
    ck_assert(!hk_medium_resize(a + PG, 40 * PG));
    hk_medium_stats_t st;
    hk_medium_stats(&st);
    ck_assert_uint_eq(st.live_bytes, HK_MEDIUM_MAX);
    ck_assert_int_eq(hk_medium_free(a), HK_MEDIUM_FREED);
    ck_assert(!hk_medium_resize(a, 40 * PG)); /* freed */
}
END_TEST

/* A block expected to grow (realloc) is cut from the longest free run, not
 * the tightest: it then grows in place. A tight run of exactly its length
 * lies between two live blocks. */
START_TEST(medium_growing_placed_with_room)
{
    start();
    unsigned char *a = hk_medium_alloc(10 * PG, false);
    unsigned char *b = hk_medium_alloc(20 * PG, false);
    unsigned char *c = hk_medium_alloc(30 * PG, false);
    ck_assert(a && b && c);
    ck_assert_ptr_eq(c, b + 20 * PG);
    ck_assert_int_eq(hk_medium_free(b), HK_MEDIUM_FREED);
    (void)hk_medium_trim(); /* b's pages a free run of 20, off the quick list */
    unsigned char *g = hk_medium_alloc_growing(20 * PG);
    ck_assert_ptr_nonnull(g);
    ck_assert_ptr_ne(g, b);
    ck_assert(hk_medium_resize(g, HK_MEDIUM_MAX));
    /* The best fit takes the tight run. */
    unsigned char *t = hk_medium_alloc(20 * PG, false);
    ck_assert_ptr_eq(t, b);
    ck_assert(!hk_medium_resize(t, 21 * PG));
    ck_assert_int_eq(hk_medium_free(a), HK_MEDIUM_FREED);
    ck_assert_int_eq(hk_medium_free(c), HK_MEDIUM_FREED);
    ck_assert_int_eq(hk_medium_free(g), HK_MEDIUM_FREED);
    ck_assert_int_eq(hk_medium_free(t), HK_MEDIUM_FREED);
}
END_TEST

/* ---- threads ---------------------------------------------------------------- */

#define TH_N 4
#define TH_SLOTS 64
#define TH_ROUNDS 10000

/* Slots shared by every thread: a thread takes one (exchange), checks the
 * stamp of the block in it (written over its usable size by whichever
 * thread allocated it), frees it, and puts a new block there. */
static _Atomic(unsigned char *) th_slot[TH_SLOTS];
static _Atomic int th_bad;

static void *th_work(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u + 1;
    for (int i = 0; i < TH_ROUNDS; i++) {
        seed = seed * 1103515245u + 12345u;
        unsigned k = (seed >> 8) % TH_SLOTS;
        unsigned char *p = atomic_exchange(&th_slot[k], NULL);
        if (p) {
            size_t n = hk_medium_usable(p);
            if (!n || !hk_stamp_sparse_ok(p, n, (unsigned)n))
                atomic_store(&th_bad, 1);
            if (hk_medium_free(p) != HK_MEDIUM_FREED)
                atomic_store(&th_bad, 2);
        }
        if ((seed >> 20) % 256 == 0)
            (void)hk_medium_trim();
        size_t n = HK_SMALL_MAX + 1 + (seed >> 12) % (HK_MEDIUM_MAX - HK_SMALL_MAX);
        p = hk_medium_alloc(n, false);
        if (!p) {
            atomic_store(&th_bad, 3);
            break;
        }
        size_t u = hk_medium_usable(p);
        if (u < n)
            atomic_store(&th_bad, 5);
        hk_stamp_sparse(p, u, (unsigned)u);
        unsigned char *old = atomic_exchange(&th_slot[k], p);
        if (old) {
            /* Another thread filled it meanwhile: that block goes. */
            if (hk_medium_free(old) != HK_MEDIUM_FREED)
                atomic_store(&th_bad, 4);
        }
    }
    return NULL;
}

START_TEST(medium_threads)
{
    start();
    int64_t g0 = (int64_t)HK_GAUGE_GET(bytes_committed), m0 = hk_medium_count_committed();
    pthread_t t[TH_N];
    for (uintptr_t i = 0; i < TH_N; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, th_work, (void *)i), 0);
    for (int i = 0; i < TH_N; i++)
        pthread_join(t[i], NULL);
    ck_assert_msg(atomic_load(&th_bad) == 0, "a thread saw failure %d", atomic_load(&th_bad));
    for (int k = 0; k < TH_SLOTS; k++) {
        unsigned char *p = atomic_load(&th_slot[k]);
        if (p)
            ck_assert_int_eq(hk_medium_free(p), HK_MEDIUM_FREED);
    }
    hk_medium_stats_t st;
    hk_medium_stats(&st);
    ck_assert_uint_eq(st.live, 0);
    ck_assert_uint_eq(st.live_bytes, 0);
    committed_agrees(g0, m0);
    (void)hk_medium_trim();
    hk_medium_stats(&st);
    ck_assert_uint_eq(st.regions, 0);
    committed_agrees(g0, m0);
}
END_TEST

/* ---- fork ------------------------------------------------------------------- */

static _Atomic int fk_stop;

static void *fk_work(void *arg)
{
    (void)arg;
    while (!atomic_load(&fk_stop)) {
        void *p = hk_medium_alloc(100000, false);
        if (p)
            hk_medium_free(p);
    }
    return NULL;
}

START_TEST(medium_fork)
{
    start();
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, fk_work, NULL), 0);
    for (int i = 0; i < 50; i++) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            /* The lock the other thread held at fork is free here. */
            alarm(10);
            void *p = hk_medium_alloc(200000, true);
            _exit(p && hk_medium_free(p) == HK_MEDIUM_FREED ? 0 : 1);
        }
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d: status 0x%x", i, status);
    }
    atomic_store(&fk_stop, 1);
    pthread_join(t, NULL);
}
END_TEST

/* ---- thp:1 ------------------------------------------------------------------ */

static int thp_probe_main(void)
{
    unsigned char *a = hk_medium_alloc(10 * PG, false);
    unsigned char *b = hk_medium_alloc(10 * PG, false);
    if (!a || !b)
        return 2;
    memset(a, 1, 10 * PG);
    hk_medium_free(a);
    (void)hk_medium_trim(); /* a's run cannot go back: the region is one huge page */
    hk_medium_free(b);
    (void)hk_medium_trim(); /* the region can, whole */
    hk_medium_stats_t st;
    hk_medium_stats(&st);
    return st.regions == 0 ? 0 : 3;
}

static int thp_child(void *arg)
{
    (void)arg;
    char self[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0)
        return 126;
    self[len] = '\0';
    setenv("HAKMEM_THP", "1", 1);
    execl(self, self, "--thp-probe", (char *)NULL);
    return 127;
}

START_TEST(medium_thp_trim_ends)
{
    char mode[128] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (f) {
        if (!fgets(mode, sizeof mode, f))
            mode[0] = '\0';
        fclose(f);
    }
    if (!strstr(mode, "[madvise]")) {
        printf("note: the system's THP mode is not madvise (%s): thp:1 changes nothing here\n", mode);
        return;
    }
    struct hk_child ch;
    hk_run_child(thp_child, NULL, 20, &ch);
    char why[64];
    ck_assert_msg(WIFEXITED(ch.status) && WEXITSTATUS(ch.status) == 0, "thp probe: %s\n%s",
                  hk_status_str(ch.status, why, sizeof why), ch.err);
}
END_TEST

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--thp-probe") == 0) {
        void *p = hakmem_malloc(16); /* the process set up */
        hakmem_free(p);
        return thp_probe_main();
    }
    SRunner *sr = srunner_create(NULL);
    Suite *s = suite_create("medium");
    TCase *tc = tcase_create("medium");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, medium_alloc_free);
    tcase_add_test(tc, medium_runs_merge_and_fit);
    tcase_add_test(tc, medium_resize);
    tcase_add_test(tc, medium_growing_placed_with_room);
    tcase_add_test(tc, medium_threads);
    tcase_add_test(tc, medium_fork);
    tcase_add_test(tc, medium_thp_trim_ends);
    suite_add_tcase(s, tc);
    srunner_add_suite(sr, s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
