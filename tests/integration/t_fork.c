/* t_fork.c: fork() in a threaded program (CONFORMANCE C.21).
 *
 * fork() copies only the calling thread; any allocator lock another thread
 * held at that instant stays locked forever in the child unless the
 * allocator takes its locks around fork (pthread_atfork or equivalent).
 * The classic symptom is a child that hangs in its first malloc.
 *
 * - under load: worker threads allocate and free continuously while forker
 *   threads fork. Workers stamp every block they allocate and check the
 *   stamp before they free it. Each child checks the stamps of the blocks
 *   the forking thread allocated before the fork and of every block the
 *   workers had published at the fork, frees them all (blocks of heaps whose
 *   threads do not exist in the child), allocates, and exits 0. Every child
 *   runs under alarm(), so a hang ends as SIGALRM and fails the test. In the
 *   parent, once everything is joined and freed and malloc_trim(0) called,
 *   hakmem's gauges must be back at their level before the phase.
 * - fork from a thread before main ever allocated: the program re-executes
 *   itself (fresh process, no allocation yet in main), creates a thread as
 *   its very first action, and that thread forks; child and parent then
 *   allocate.
 */
#include "hk_test.h"

#include <check.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

static atomic_int stop_workers;
static atomic_long worker_failures;

/* A worker's blocks, in memory the child inherits, so that it can check
 * them. A slot is published (p stored with release order) only after its
 * block is stamped and n and salt are set, and unpublished (p = NULL)
 * before the block is freed: whatever instant fork() copies, a non-NULL p
 * that the child reads is a complete, live block. */
enum { W = 4, WSLOTS = 128 };
struct wslot {
    void *_Atomic p;
    size_t n;
    unsigned salt;
};
static struct wslot wslots[W + 1][WSLOTS]; /* the last row: the child's own worker */

struct worker_arg {
    uint32_t seed;
    struct wslot *slots;
};

static void slot_check_and_free(struct wslot *s)
{
    void *p = atomic_load_explicit(&s->p, memory_order_relaxed);
    if (!p)
        return;
    if (!hk_stamp_sparse_ok(p, s->n, s->salt)) {
        if (atomic_fetch_add(&worker_failures, 1) < 5)
            printf("worker block %p (%zu bytes) lost its stamp before free\n", p, s->n);
    }
    atomic_store_explicit(&s->p, NULL, memory_order_release);
    free(p);
}

static void *worker(void *argp)
{
    struct worker_arg *a = argp;
    uint32_t seed = a->seed | 1;
    while (!atomic_load_explicit(&stop_workers, memory_order_relaxed)) {
        struct wslot *s = &a->slots[hk_rnd(&seed) % WSLOTS];
        slot_check_and_free(s);
        uint32_t r = hk_rnd(&seed) % 100;
        size_t n = r < 90 ? 1 + hk_rnd(&seed) % 1024 : r < 99 ? 1024 + hk_rnd(&seed) % 65536 : (1u << 20);
        void *p = malloc(n);
        if (!p) {
            atomic_fetch_add(&worker_failures, 1);
            continue;
        }
        s->n = n;
        s->salt = hk_rnd(&seed);
        hk_stamp_sparse(p, n, s->salt);
        atomic_store_explicit(&s->p, p, memory_order_release);
    }
    for (int i = 0; i < WSLOTS; i++)
        slot_check_and_free(&a->slots[i]);
    return NULL;
}

/* What a child does: returns its exit status (0 = all good). */
static int child_body(void **pre, size_t *pre_n, int npre)
{
    alarm(20);
    for (int i = 0; i < npre; i++) {
        if (hk_check_stamp(pre[i], pre_n[i], (unsigned)i) != (size_t)-1)
            return 3;
        free(pre[i]);
    }
    /* The workers' blocks as they were at the fork: intact, and freeable
     * although their heaps' threads do not exist here. */
    for (int w = 0; w < W; w++)
        for (int i = 0; i < WSLOTS; i++) {
            struct wslot *sl = &wslots[w][i];
            void *p = atomic_load_explicit(&sl->p, memory_order_acquire);
            if (!p)
                continue;
            if (!hk_stamp_sparse_ok(p, sl->n, sl->salt))
                return 7;
            atomic_store_explicit(&sl->p, NULL, memory_order_relaxed);
            free(p);
        }
    void *v[256];
    for (int r = 0; r < 4; r++) {
        for (int i = 0; i < 256; i++) {
            size_t n = (size_t)(i * 37 % 3000) + 1;
            v[i] = malloc(n);
            if (!v[i])
                return 4;
            memset(v[i], i, n);
        }
        for (int i = 0; i < 256; i++)
            free(v[i]);
    }
    void *big = malloc(5u << 20);
    if (!big)
        return 5;
    memset(big, 1, 5u << 20);
    free(big);
    /* a thread in the child, allocating too (its own slots) */
    pthread_t th;
    struct worker_arg wa = {.seed = 77, .slots = wslots[W]};
    memset(wslots[W], 0, sizeof wslots[W]);
    atomic_store(&stop_workers, 0);
    atomic_store(&worker_failures, 0);
    if (pthread_create(&th, NULL, worker, &wa) != 0)
        return 6;
    usleep(2000);
    atomic_store(&stop_workers, 1);
    pthread_join(th, NULL);
    return atomic_load(&worker_failures) ? 8 : 0;
}

struct forker_arg {
    double until;
    int forks;
    int bad;
    char msg[160];
};

static void *forker(void *argp)
{
    struct forker_arg *a = argp;
    enum { NPRE = 16 };
    void *pre[NPRE];
    size_t pre_n[NPRE];
    char st[64];

    while (hk_now() < a->until || a->forks < 10) {
        for (int i = 0; i < NPRE; i++) {
            pre_n[i] = (size_t)(i * 113 + 1) * (i == NPRE - 1 ? 1000 : 1);
            pre[i] = malloc(pre_n[i]);
            if (!pre[i]) {
                a->bad++;
                return NULL;
            }
            hk_stamp(pre[i], pre_n[i], (unsigned)i);
        }
        pid_t pid = fork();
        if (pid < 0) {
            a->bad++;
            snprintf(a->msg, sizeof a->msg, "fork: %s", strerror(errno));
            return NULL;
        }
        if (pid == 0)
            _exit(child_body(pre, pre_n, NPRE));
        for (int i = 0; i < NPRE; i++)
            free(pre[i]);
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        a->forks++;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            if (!a->bad)
                snprintf(a->msg, sizeof a->msg, "child %d of fork #%d: %s%s", (int)pid, a->forks,
                         hk_status_str(status, st, sizeof st),
                         WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM ? " (hung)" : "");
            a->bad++;
        }
    }
    return NULL;
}

START_TEST(fork_under_load)
{
    enum { F = 2 };
    pthread_t wt[W], ft[F];
    struct worker_arg wa[W];
    struct forker_arg fa[F];
    struct hakmem_stats base;
    char msg[1024];
    double until = hk_now() + hk_budget_s();

    ck_assert_int_eq(hk_stats(&base), 0);
    memset(wslots, 0, sizeof wslots);
    atomic_store(&stop_workers, 0);
    atomic_store(&worker_failures, 0);
    for (int i = 0; i < W; i++) {
        wa[i].seed = (uint32_t)(i + 1) * 31;
        wa[i].slots = wslots[i];
        ck_assert_int_eq(pthread_create(&wt[i], NULL, worker, &wa[i]), 0);
    }
    for (int i = 0; i < F; i++) {
        memset(&fa[i], 0, sizeof fa[i]);
        fa[i].until = until;
        ck_assert_int_eq(pthread_create(&ft[i], NULL, forker, &fa[i]), 0);
    }
    for (int i = 0; i < F; i++)
        pthread_join(ft[i], NULL);
    atomic_store(&stop_workers, 1);
    for (int i = 0; i < W; i++)
        pthread_join(wt[i], NULL);
    int forks = 0;
    for (int i = 0; i < F; i++) {
        forks += fa[i].forks;
        ck_assert_msg(fa[i].bad == 0,
                      "forker %d: %d bad children of %d; first: %s (exit 3: a pre-fork block of the forking "
                      "thread lost its stamp, 7: a worker's block did, 8: the child's worker's block did; "
                      "4-6: allocation failed)",
                      i, fa[i].bad, fa[i].forks, fa[i].msg);
    }
    ck_assert_msg(atomic_load(&worker_failures) == 0, "%ld worker blocks lost their stamp or failed to allocate",
                  atomic_load(&worker_failures));
    printf("fork_under_load: %d children, all exited 0\n", forks);
    malloc_trim(0);
    ck_assert_msg(hk_end_state_ok(&base, msg, sizeof msg), "fork_under_load: %s", msg);
}
END_TEST

/* ---- fork from a thread before main allocated ------------------------------- */
static void *early_fork_thread(void *arg)
{
    (void)arg;
    pid_t pid = fork();
    if (pid < 0)
        return (void *)(uintptr_t)10;
    if (pid == 0) {
        void *dummy[1];
        size_t n[1] = {0};
        (void)dummy;
        _exit(child_body(dummy, n, 0));
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return (void *)(uintptr_t)11;
    void *p = malloc(100);
    free(p);
    return NULL;
}

/* Runs in the re-executed process: nothing in main has allocated yet. */
static int early_fork_main(void)
{
    pthread_t th;
    void *ret = NULL;
    alarm(30);
    if (pthread_create(&th, NULL, early_fork_thread, NULL) != 0)
        return 20;
    pthread_join(th, &ret);
    if (ret)
        return (int)(uintptr_t)ret;
    /* main's first allocation, after the fork */
    void *v[100];
    for (int i = 0; i < 100; i++) {
        v[i] = malloc((size_t)i * 50 + 1);
        if (!v[i])
            return 21;
    }
    for (int i = 0; i < 100; i++)
        free(v[i]);
    return 0;
}

START_TEST(fork_from_thread_before_main_allocated)
{
    char self[PATH_MAX], st[64];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    ck_assert_int_gt(n, 0);
    self[n] = '\0';
    for (int rep = 0; rep < 5; rep++) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            execl(self, self, "--early-fork", (char *)NULL);
            _exit(127);
        }
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "early fork process: %s (10: fork failed, 11: child failed, 2x: parent failed)",
                      hk_status_str(status, st, sizeof st));
    }
}
END_TEST

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--early-fork") == 0)
        return early_fork_main();
    hk_require_preloaded();
    double b = hk_budget_s();
    Suite *s = suite_create("fork");
    TCase *tc = tcase_create("fork");
    tcase_set_timeout(tc, b * 10 + 60);
    tcase_add_test(tc, fork_under_load);
    tcase_add_test(tc, fork_from_thread_before_main_allocated);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
