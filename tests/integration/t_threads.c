/* t_threads.c: concurrency and thread lifetime (CONFORMANCE C.18-C.20).
 *
 * - stress: rounds of freshly created threads allocate objects of mixed
 *   sizes, stamp them with an address-derived pattern, and pass a share of
 *   them to other threads through a shared exchange, which frees them
 *   (cross-thread frees, also of blocks whose allocating thread has already
 *   exited). Every free checks the pattern first: a block handed out twice,
 *   or a remote free that lands in the wrong place, shows up as a pattern
 *   failure. RSS must stay bounded across rounds, and once everything is
 *   freed, the threads joined and malloc_trim(0) called, hakmem's gauges
 *   must be back at their level before the phase (hk_end_state_ok): memory
 *   that exited threads or remote frees left behind is found again.
 * - thread-exit churn: many short threads that allocate and exit, threads
 *   that only free, and pthread key destructors that allocate (run after
 *   the allocator may have done its own per-thread cleanup). Memory mapped
 *   by hakmem must not grow with the number of threads that have exited,
 *   and the end state is checked as for the stress phase.
 * - exit() while other threads allocate: the process must exit cleanly
 *   with the status given, from the main thread or from another thread.
 *
 * Each phase runs for HK_STRESS_SECONDS (default 2; `make stress` sets more).
 */
#include "hk_test.h"

#include <check.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>

static size_t random_size(uint32_t *s)
{
    uint32_t r = hk_rnd(s) % 1000;
    if (r < 800)
        return 1 + hk_rnd(s) % 512;
    if (r < 950)
        return 512 + hk_rnd(s) % 7680;
    if (r < 998)
        return 8192 + hk_rnd(s) % (256 * 1024);
    return (1u << 20) + hk_rnd(s) % (3u << 20);
}

struct obj {
    void *p;
    size_t n;
    unsigned salt;
};

/* ---- the shared exchange --------------------------------------------------- */
enum { XCAP = 4096 };
static struct {
    pthread_mutex_t mu;
    struct obj o[XCAP];
    size_t len;
} xch = {.mu = PTHREAD_MUTEX_INITIALIZER};

static atomic_long pattern_failures;
static atomic_long alloc_failures;

static void check_and_free(struct obj *o)
{
    if (!hk_stamp_sparse_ok(o->p, o->n, o->salt)) {
        if (atomic_fetch_add(&pattern_failures, 1) < 5)
            printf("pattern failure: block %p size %zu salt %u\n", o->p, o->n, o->salt);
    }
    free(o->p);
    o->p = NULL;
}

/* Push o; if full, take a random victim out instead and free it here. */
static void xch_push(struct obj *o, uint32_t *seed)
{
    struct obj victim = {0};
    pthread_mutex_lock(&xch.mu);
    if (xch.len < XCAP) {
        xch.o[xch.len++] = *o;
    } else {
        size_t i = hk_rnd(seed) % XCAP;
        victim = xch.o[i];
        xch.o[i] = *o;
    }
    pthread_mutex_unlock(&xch.mu);
    o->p = NULL;
    if (victim.p)
        check_and_free(&victim);
}

static int xch_pop(struct obj *out, uint32_t *seed)
{
    int got = 0;
    pthread_mutex_lock(&xch.mu);
    if (xch.len) {
        size_t i = hk_rnd(seed) % xch.len;
        *out = xch.o[i];
        xch.o[i] = xch.o[--xch.len];
        got = 1;
    }
    pthread_mutex_unlock(&xch.mu);
    return got;
}

/* Free all but `keep` objects of the exchange (from the calling thread). */
static void xch_drain(size_t keep)
{
    for (;;) {
        struct obj o;
        pthread_mutex_lock(&xch.mu);
        if (xch.len <= keep) {
            pthread_mutex_unlock(&xch.mu);
            return;
        }
        o = xch.o[--xch.len];
        pthread_mutex_unlock(&xch.mu);
        check_and_free(&o);
    }
}

/* ---- C.18 stress ------------------------------------------------------------ */
enum { SLOTS = 256 };

struct worker_arg {
    uint32_t seed;
    double until;
};

static void *stress_worker(void *argp)
{
    struct worker_arg *a = argp;
    uint32_t seed = a->seed;
    struct obj slot[SLOTS];
    memset(slot, 0, sizeof slot);
    unsigned long ops = 0;

    while ((ops & 255) || hk_now() < a->until) {
        ops++;
        struct obj *o = &slot[hk_rnd(&seed) % SLOTS];
        uint32_t action = hk_rnd(&seed) % 100;
        if (o->p) {
            if (action < 60) {
                check_and_free(o);
            } else if (action < 85) {
                xch_push(o, &seed);
            } else {
                /* realloc keeps the stamped prefix */
                size_t n = random_size(&seed);
                if (!hk_stamp_sparse_ok(o->p, o->n, o->salt)) {
                    atomic_fetch_add(&pattern_failures, 1);
                    printf("pattern failure before realloc: %p size %zu\n", o->p, o->n);
                }
                void *q = realloc(o->p, n);
                if (!q) {
                    atomic_fetch_add(&alloc_failures, 1);
                    continue;
                }
                o->p = q;
                o->n = n;
                o->salt = hk_rnd(&seed);
                hk_stamp_sparse(q, n, o->salt);
            }
        } else {
            struct obj in;
            if (action < 30 && xch_pop(&in, &seed)) {
                check_and_free(&in);
            }
            size_t n = random_size(&seed);
            o->p = (action & 1) ? malloc(n) : calloc(1, n);
            if (!o->p) {
                atomic_fetch_add(&alloc_failures, 1);
                continue;
            }
            o->n = n;
            o->salt = hk_rnd(&seed);
            hk_stamp_sparse(o->p, n, o->salt);
        }
    }
    /* leave a few objects to outlive this thread, freed by others */
    for (int i = 0; i < SLOTS; i++) {
        if (!slot[i].p)
            continue;
        if (i % 4 == 0)
            xch_push(&slot[i], &seed);
        else
            check_and_free(&slot[i]);
    }
    return NULL;
}

START_TEST(stress_cross_thread)
{
    enum { T = 8 };
    double total = hk_budget_s();
    double t0 = hk_now();
    int rounds = 0;
    size_t rss_ref = 0, rss_max = 0;
    double round_len = total / 8 > 0.05 ? total / 8 : 0.05;
    struct hakmem_stats base;
    char msg[1024];

    ck_assert_int_eq(hk_stats(&base), 0);
    atomic_store(&pattern_failures, 0);
    atomic_store(&alloc_failures, 0);
    while (hk_now() - t0 < total || rounds < 4) {
        pthread_t th[T];
        struct worker_arg args[T];
        for (int i = 0; i < T; i++) {
            args[i].seed = (uint32_t)(0x9e3779b9u * (unsigned)(rounds * T + i + 1));
            args[i].until = hk_now() + round_len;
            ck_assert_int_eq(pthread_create(&th[i], NULL, stress_worker, &args[i]), 0);
        }
        for (int i = 0; i < T; i++)
            pthread_join(th[i], NULL);
        /* half of the exchange survives into the next round, whose threads
         * free blocks allocated by threads that no longer exist */
        xch_drain(XCAP / 2);
        rounds++;
        size_t rss = hk_rss_bytes();
        if (rounds == 2)
            rss_ref = rss;
        if (rss > rss_max)
            rss_max = rss;
    }
    xch_drain(0);
    ck_assert_msg(atomic_load(&pattern_failures) == 0, "%ld pattern failures in %d rounds",
                  atomic_load(&pattern_failures), rounds);
    ck_assert_msg(atomic_load(&alloc_failures) == 0, "%ld allocation failures", atomic_load(&alloc_failures));
    /* The live set is the same every round; the footprint must not keep
     * growing with the number of rounds (lost thread caches, leaked remote
     * frees). */
    ck_assert_msg(rss_max <= 2 * rss_ref + (128u << 20), "RSS grew from %zu MiB (round 2) to %zu MiB over %d rounds",
                  rss_ref >> 20, rss_max >> 20, rounds);
    printf("stress: %d rounds of %d threads, RSS round 2 %zu MiB, max %zu MiB\n", rounds, T, rss_ref >> 20,
           rss_max >> 20);
    malloc_trim(0);
    ck_assert_msg(hk_end_state_ok(&base, msg, sizeof msg), "stress: %s", msg);
}
END_TEST

/* ---- C.19 thread-exit churn ------------------------------------------------ */
static pthread_key_t churn_key;
static atomic_long key_dtor_calls;
static atomic_long key_dtor_failures;

/* Destructor that allocates: runs after the thread's own cleanup may have
 * started. On the first pass it installs a new value, so pthread runs a
 * second destructor pass (PTHREAD_DESTRUCTOR_ITERATIONS). */
static void key_dtor(void *v)
{
    struct obj *o = v;
    atomic_fetch_add(&key_dtor_calls, 1);
    if (!hk_stamp_sparse_ok(o->p, o->n, o->salt))
        atomic_fetch_add(&key_dtor_failures, 1);
    free(o->p);
    int second = o->salt == 7777;
    free(o);
    char *tmp = malloc(300);
    if (!tmp) {
        atomic_fetch_add(&key_dtor_failures, 1);
        return;
    }
    memset(tmp, 1, 300);
    if (!second) {
        struct obj *again = malloc(sizeof *again);
        if (!again) {
            atomic_fetch_add(&key_dtor_failures, 1);
            free(tmp);
            return;
        }
        again->p = tmp;
        again->n = 300;
        again->salt = 7777;
        hk_stamp_sparse(tmp, 300, 7777);
        pthread_setspecific(churn_key, again);
    } else {
        free(tmp);
    }
}

struct churn_arg {
    int kind;
    uint32_t seed;
    struct obj give[32]; /* kind 0 hands these to main; kind 1 frees them */
};

static void *churn_thread(void *argp)
{
    struct churn_arg *a = argp;
    uint32_t seed = a->seed;
    if (a->kind == 1) {
        /* only frees: blocks allocated by the main thread */
        for (int i = 0; i < 32; i++)
            check_and_free(&a->give[i]);
        return NULL;
    }
    /* allocate and free enough that the thread's caches hold memory when it
     * exits; leave 32 blocks for main to free after we are gone */
    void *v[512];
    for (int r = 0; r < 4; r++) {
        for (int i = 0; i < 512; i++) {
            v[i] = malloc(16 + (size_t)(hk_rnd(&seed) % 2048));
            if (!v[i])
                atomic_fetch_add(&alloc_failures, 1);
        }
        for (int i = 0; i < 512; i++)
            free(v[i]);
    }
    for (int i = 0; i < 32; i++) {
        a->give[i].n = 8 + hk_rnd(&seed) % 4000;
        a->give[i].salt = hk_rnd(&seed);
        a->give[i].p = malloc(a->give[i].n);
        if (!a->give[i].p) {
            atomic_fetch_add(&alloc_failures, 1);
            continue;
        }
        hk_stamp_sparse(a->give[i].p, a->give[i].n, a->give[i].salt);
    }
    if (a->kind == 2) {
        struct obj *o = malloc(sizeof *o);
        if (o) {
            o->n = 1000;
            o->salt = 1;
            o->p = malloc(1000);
            if (o->p) {
                hk_stamp_sparse(o->p, 1000, 1);
                pthread_setspecific(churn_key, o);
            } else {
                free(o);
            }
        }
    }
    return NULL;
}

START_TEST(thread_exit_churn)
{
    enum { BATCH = 16 };
    struct hakmem_stats st;
    double total = hk_budget_s();
    double t0 = hk_now();
    int batches = 0;
    long threads = 0;
    size_t mapped_ref = 0, rss_ref = 0;
    struct hakmem_stats base;
    char msg[1024];

    ck_assert_int_eq(hk_stats(&base), 0);
    ck_assert_int_eq(pthread_key_create(&churn_key, key_dtor), 0);
    atomic_store(&alloc_failures, 0);
    atomic_store(&pattern_failures, 0);
    while (hk_now() - t0 < total || batches < 40) {
        pthread_t th[BATCH];
        struct churn_arg *args = calloc(BATCH, sizeof *args);
        ck_assert_ptr_nonnull(args);
        for (int i = 0; i < BATCH; i++) {
            args[i].kind = i % 3;
            args[i].seed = (uint32_t)(batches * BATCH + i + 1) * 2654435761u;
            if (args[i].kind == 1) {
                for (int k = 0; k < 32; k++) {
                    args[i].give[k].n = 1 + (size_t)k * 97;
                    args[i].give[k].salt = (unsigned)k;
                    args[i].give[k].p = malloc(args[i].give[k].n);
                    ck_assert_ptr_nonnull(args[i].give[k].p);
                    hk_stamp_sparse(args[i].give[k].p, args[i].give[k].n, (unsigned)k);
                }
            }
            ck_assert_int_eq(pthread_create(&th[i], NULL, churn_thread, &args[i]), 0);
        }
        for (int i = 0; i < BATCH; i++)
            pthread_join(th[i], NULL);
        /* main frees what the exited threads left behind */
        for (int i = 0; i < BATCH; i++)
            if (args[i].kind != 1)
                for (int k = 0; k < 32; k++)
                    if (args[i].give[k].p)
                        check_and_free(&args[i].give[k]);
        free(args);
        threads += BATCH;
        batches++;
        if (batches == 10) {
            ck_assert_int_eq(hk_stats(&st), 0);
            mapped_ref = st.bytes_mapped;
            rss_ref = hk_rss_bytes();
        }
    }
    ck_assert_int_eq(hk_stats(&st), 0);
    size_t rss = hk_rss_bytes();
    ck_assert_msg(atomic_load(&pattern_failures) == 0, "%ld pattern failures", atomic_load(&pattern_failures));
    ck_assert_msg(atomic_load(&alloc_failures) == 0, "%ld allocation failures", atomic_load(&alloc_failures));
    ck_assert_msg(atomic_load(&key_dtor_failures) == 0, "%ld failures inside key destructors",
                  atomic_load(&key_dtor_failures));
    long expected_dtor = 2 * (threads / BATCH) * (BATCH / 3 + (BATCH % 3 > 2));
    ck_assert_msg(atomic_load(&key_dtor_calls) >= expected_dtor, "key destructor ran %ld times, expected %ld",
                  atomic_load(&key_dtor_calls), expected_dtor);
    /* Each exited thread cycled ~1 MiB through its caches. If exited
     * threads' caches were lost, the mapped size would grow by that much
     * per thread; allow a fixed 64 MiB of slack. */
    ck_assert_msg(st.bytes_mapped <= mapped_ref + (64u << 20),
                  "bytes mapped by hakmem grew from %zu to %zu MiB over %ld exited threads", (size_t)mapped_ref >> 20,
                  (size_t)st.bytes_mapped >> 20, threads);
    ck_assert_msg(rss <= rss_ref + (64u << 20), "RSS grew from %zu to %zu MiB over %ld exited threads", rss_ref >> 20,
                  rss >> 20, threads);
    printf("churn: %ld threads, mapped %zu -> %zu MiB, RSS %zu -> %zu MiB\n", threads, (size_t)mapped_ref >> 20,
           (size_t)st.bytes_mapped >> 20, rss_ref >> 20, rss >> 20);
    malloc_trim(0);
    ck_assert_msg(hk_end_state_ok(&base, msg, sizeof msg), "churn: %s over %ld exited threads", msg, threads);
}
END_TEST

/* ---- C.20 exit() while other threads allocate ------------------------------ */
static atomic_int spin_started;

static void *alloc_forever(void *argp)
{
    uint32_t seed = (uint32_t)(uintptr_t)argp | 1;
    void *v[64] = {0};
    atomic_fetch_add(&spin_started, 1);
    for (;;) {
        int i = (int)(hk_rnd(&seed) % 64);
        free(v[i]);
        size_t n = random_size(&seed) % 20000 + 1;
        v[i] = malloc(n);
        if (v[i])
            memset(v[i], 0x55, n < 16 ? n : 16); /* never past the request: the debug build checks */
    }
    return NULL;
}

static void atexit_allocates(void)
{
    void *p = malloc(12345);
    if (p)
        memset(p, 1, 12345);
    free(p);
    char *s = strdup("atexit");
    free(s);
}

static void start_spinners(int n)
{
    pthread_t th;
    atomic_store(&spin_started, 0);
    for (int i = 0; i < n; i++)
        if (pthread_create(&th, NULL, alloc_forever, (void *)(uintptr_t)(i * 7919 + 1)) != 0)
            _exit(90);
    while (atomic_load(&spin_started) < n)
        sched_yield();
}

static int exit_from_main(void *arg)
{
    (void)arg;
    atexit(atexit_allocates);
    start_spinners(6);
    usleep(20000);
    exit(0);
}

static void *exit_from_thread_fn(void *arg)
{
    (void)arg;
    usleep(20000);
    exit(3);
}

static int exit_from_thread(void *arg)
{
    (void)arg;
    pthread_t th;
    atexit(atexit_allocates);
    start_spinners(5);
    if (pthread_create(&th, NULL, exit_from_thread_fn, NULL) != 0)
        return 91;
    /* the main thread allocates too until the other thread's exit() */
    alloc_forever((void *)(uintptr_t)4242);
    return 92;
}

START_TEST(exit_while_allocating)
{
    struct hk_child c;
    char st[64];
    int reps = 10;
    for (int r = 0; r < reps; r++) {
        hk_run_child(exit_from_main, NULL, 30, &c);
        ck_assert_msg(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0,
                      "exit(0) from main while 6 threads allocate: %s (rep %d); stderr:\n%s",
                      hk_status_str(c.status, st, sizeof st), r, c.err);
        ck_assert_msg(c.err_len == 0, "unexpected stderr: %s", c.err);
        hk_run_child(exit_from_thread, NULL, 30, &c);
        ck_assert_msg(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 3,
                      "exit(3) from a thread while others allocate: %s (rep %d); stderr:\n%s",
                      hk_status_str(c.status, st, sizeof st), r, c.err);
        ck_assert_msg(c.err_len == 0, "unexpected stderr: %s", c.err);
    }
}
END_TEST

int main(void)
{
    hk_require_preloaded();
    double b = hk_budget_s();
    Suite *s = suite_create("threads");
    TCase *tc = tcase_create("threads");
    /* each phase runs about b seconds; leave room for slow machines */
    tcase_set_timeout(tc, b * 10 + 60);
    tcase_add_test(tc, stress_cross_thread);
    tcase_add_test(tc, thread_exit_churn);
    tcase_add_test(tc, exit_while_allocating);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
