/* test_reclaim.c: unit tests of the reclaim box (reclaim_box.h: who may
 * touch a parked slab) and of the debug library's stranded census
 * (census_box.h), against the internal debug copy, with the box's test
 * hook and defect switches (internal copies only).
 *
 *  - A helper that takes a parked slab's remote list while its owner is
 *    alive must not leave blocks freed in between behind a re-armed FULL
 *    state: stopped between its two steps (the hook) while another thread
 *    frees every other block of the slab, it still gives the slab back.
 *  - The census catches each defect it exists for, put back by a switch:
 *    a slab re-armed FULL with blocks on its remote list; an idle owner's
 *    listed slab that every block came back to and that malloc_trim kept;
 *    the heap of a thread that is gone (its first allocation came in the
 *    last round of key destructors) that malloc_trim did not give up.
 *    Each: `hakmem: error: stranded ...` and abort. Without the switch the
 *    same program passes the census and the memory comes back.
 */
#include "unit_common.h"
#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "front/api_box.h"
#include "heap/heap_box.h"
#include "heap/census_box.h"

#define BLK 64
#define PER_SLAB ((int)(HK_SLAB_SIZE / BLK))

static void **blk;
static int nblk;

static void run_in_thread(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, fn, arg), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
}

static hk_slab_t *slab_of(void *p) { return hk_slab_of(hk_ss_of(p), (uintptr_t)p); }

/* A block of class cls as the debug library hands it out (with its
 * canary and trailer, which free checks: CLASS_USABLE bytes are the
 * program's), without the class lookup of malloc. */
#define CLASS_USABLE(cls) (hk_class_size(cls) - HK_DEBUG_SLACK)
static void *class_alloc(unsigned cls)
{
    void *p = hk_alloc_class(cls);
    if (p)
        hk_debug_canary_set(p, hk_class_size(cls), CLASS_USABLE(cls));
    return p;
}

/* This thread fills one slab and starts a second: the first is parked
 * full. Returns it. */
static hk_slab_t *fill_until_parked(void)
{
    unsigned cls = hk_size_to_class(BLK);
    nblk = PER_SLAB + 1;
    blk = mmap(NULL, (size_t)nblk * sizeof *blk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(blk, MAP_FAILED);
    for (int i = 0; i < nblk; i++) {
        blk[i] = class_alloc(cls);
        ck_assert_ptr_nonnull(blk[i]);
        memset(blk[i], 0x11, CLASS_USABLE(cls));
    }
    hk_slab_t *s = slab_of(blk[0]);
    ck_assert_msg(s->parked, "the first slab of the class is not parked after it filled");
    ck_assert_ptr_eq(slab_of(blk[PER_SLAB - 1]), s);
    return s;
}

static void *free_first(void *arg)
{
    (void)arg;
    hk_small_free(blk[0]); /* a remote free into a parked slab: a notification */
    return NULL;
}

static hk_slab_t *hooked;
static _Atomic int hook_calls;

/* The helper is stopped between taking the list and re-arming: another
 * free (here, from the helper's own thread, which is remote to the owner
 * just the same) brings every other block of the slab back. */
static void free_rest_in_between(hk_slab_t *s)
{
    if (s != hooked || atomic_fetch_add(&hook_calls, 1) != 0)
        return;
    for (int i = 1; i < PER_SLAB; i++)
        hk_small_free(blk[i]);
}

static void *trim_as_helper(void *arg)
{
    (void)arg;
    hk_heap_trim_all(); /* the owner (main) is alive: a helper's drain */
    return NULL;
}

START_TEST(helper_rearm_takes_what_came_in_between)
{
    hk_slab_t *s = fill_until_parked();
    run_in_thread(free_first, NULL);
    hooked = s;
    hk_reclaim_rearm_hook = free_rest_in_between;
    run_in_thread(trim_as_helper, NULL);
    hk_reclaim_rearm_hook = NULL;
    ck_assert_int_eq(atomic_load(&hook_calls), 1);
    /* Every block came back: the slab was given back, not left parked. */
    ck_assert_msg(__atomic_load_n(&s->div_magic, __ATOMIC_RELAXED) == 0,
                  "a slab whose every block was freed stays parked (used %d, remote list of %u, state %u)",
                  (int)(hk_slab_used(s) & ~HK_USED_PARKED), HK_TF_COUNT(s->thread_free),
                  (unsigned)HK_TF_STATE(s->thread_free));
    hk_small_free(blk[PER_SLAB]);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The census, in a child: run fn there; the child's stderr and status. */

static int run_child(void (*fn)(void), char *err, size_t cap)
{
    int pe[2];
    ck_assert_int_eq(pipe(pe), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(pe[1], 2);
        close(pe[0]);
        fn();
        _exit(0);
    }
    close(pe[1]);
    size_t len = 0;
    ssize_t n;
    while (len + 1 < cap && (n = read(pe[0], err + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    err[len] = '\0';
    close(pe[0]);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    return st;
}

static void assert_stranded(int st, const char *err, const char *what)
{
    ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "%s: the census did not abort (status %#x): %s",
                  what, st, err);
    ck_assert_msg(strstr(err, "hakmem: error: stranded ") != NULL, "%s: no `stranded` line: %s", what, err);
}

static void assert_passed(int st, const char *err, const char *what)
{
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: the census failed (status %#x): %s", what, st, err);
}

/* The old re-arm: FULL, keeping the list. */
static void rearm_keeping_list(hk_slab_t *s)
{
    free_rest_in_between(s);
    uintptr_t old = atomic_load(&s->thread_free);
    while (!atomic_compare_exchange_weak(&s->thread_free, &old, HK_TF_WITHOUT_STATE(old) | HK_TF_FULL))
        ;
}

static void rearm_scenario(void)
{
    hk_slab_t *s = fill_until_parked();
    run_in_thread(free_first, NULL);
    hooked = s;
    hk_reclaim_rearm_hook = rearm_keeping_list;
    hk_reclaim_test_defect = HK_DEFECT_REARM;
    run_in_thread(trim_as_helper, NULL);
    hakmem_malloc_trim(0); /* the census */
}

START_TEST(census_sees_a_full_slab_with_remote_blocks)
{
    char err[4096];
    int st = run_child(rearm_scenario, err, sizeof err);
    assert_stranded(st, err, "re-armed with remote blocks");
    ck_assert_msg(strstr(err, "remote list") != NULL, "the census names another cause: %s", err);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* An idle owner's listed slabs. */

#define IDLE_SLABS 4
static pthread_barrier_t idle_ready, idle_done;

static void *idle_owner(void *arg)
{
    (void)arg;
    unsigned cls = hk_size_to_class(BLK);
    nblk = IDLE_SLABS * PER_SLAB;
    blk = mmap(NULL, (size_t)nblk * sizeof *blk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (int i = 0; i < nblk; i++)
        blk[i] = class_alloc(cls);
    /* One block of each slab freed here: every slab is listed again. */
    for (int i = 0; i < nblk; i += PER_SLAB) {
        hk_small_free(blk[i]);
        blk[i] = NULL;
    }
    pthread_barrier_wait(&idle_ready);
    pthread_barrier_wait(&idle_done); /* idle, alive */
    return NULL;
}

static uint64_t slabs_in_use(void)
{
    struct hakmem_stats st;
    hakmem_stats_get(&st, sizeof st);
    return st.slabs_in_use;
}

static void idle_scenario(void)
{
    pthread_t t;
    pthread_barrier_init(&idle_ready, NULL, 2);
    pthread_barrier_init(&idle_done, NULL, 2);
    pthread_create(&t, NULL, idle_owner, NULL);
    pthread_barrier_wait(&idle_ready);
    uint64_t before = slabs_in_use();
    for (int i = 0; i < nblk; i++)
        if (blk[i])
            hk_small_free(blk[i]); /* remote: the owner is idle */
    hakmem_malloc_trim(0);
    uint64_t after = slabs_in_use();
    if (after + IDLE_SLABS - 1 > before) {
        fprintf(stderr, "slabs in use %llu -> %llu\n", (unsigned long long)before, (unsigned long long)after);
        _exit(3);
    }
    pthread_barrier_wait(&idle_done);
    pthread_join(t, NULL);
}

static void idle_defect_scenario(void)
{
    hk_reclaim_test_defect = HK_DEFECT_LISTED;
    idle_scenario();
}

START_TEST(census_sees_an_idle_owners_emptied_slabs)
{
    char err[4096];
    int st = run_child(idle_defect_scenario, err, sizeof err);
    assert_stranded(st, err, "listed slabs kept");
    ck_assert_msg(strstr(err, "every block was free") != NULL, "the census names another cause: %s", err);
    st = run_child(idle_scenario, err, sizeof err);
    assert_passed(st, err, "an idle owner's emptied slabs");
}
END_TEST

/* ------------------------------------------------------------------------ */
/* A heap made in the last round of key destructors. */

static pthread_key_t late_key;

static void late_destructor(void *v)
{
    uintptr_t round = (uintptr_t)v;
    if (round < PTHREAD_DESTRUCTOR_ITERATIONS) {
        pthread_setspecific(late_key, (void *)(round + 1));
        return;
    }
    void *p = class_alloc(hk_size_to_class(48)); /* this thread's first */
    hk_small_free(p);
}

static void *late_thread(void *arg)
{
    (void)arg;
    pthread_setspecific(late_key, (void *)1);
    return NULL;
}

static void late_scenario(void)
{
    pthread_key_create(&late_key, late_destructor);
    void *p = hk_alloc_class(0); /* this thread has a heap */
    hk_small_free(p);
    for (int i = 0; i < 3; i++) {
        pthread_t t;
        pthread_create(&t, NULL, late_thread, NULL);
        pthread_join(t, NULL);
    }
    hakmem_malloc_trim(0);
    struct hakmem_stats st;
    hakmem_stats_get(&st, sizeof st);
    if (st.heaps_live != 1) {
        fprintf(stderr, "%llu heaps live after malloc_trim\n", (unsigned long long)st.heaps_live);
        _exit(3);
    }
}

static void late_defect_scenario(void)
{
    hk_reclaim_test_defect = HK_DEFECT_REAP;
    late_scenario();
}

START_TEST(census_sees_the_heap_of_a_thread_gone)
{
    char err[4096];
    int st = run_child(late_defect_scenario, err, sizeof err);
    assert_stranded(st, err, "a heap of a thread gone");
    ck_assert_msg(strstr(err, "stranded heap") != NULL, "the census names another cause: %s", err);
    st = run_child(late_scenario, err, sizeof err);
    assert_passed(st, err, "heaps made in the last destructor round");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("reclaim");
    TCase *tc = tcase_create("reclaim");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, helper_rearm_takes_what_came_in_between);
    tcase_add_test(tc, census_sees_a_full_slab_with_remote_blocks);
    tcase_add_test(tc, census_sees_an_idle_owners_emptied_slabs);
    tcase_add_test(tc, census_sees_the_heap_of_a_thread_gone);
    suite_add_tcase(s, tc);
    return hk_unit_run(s);
}
