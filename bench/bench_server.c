/* bench/bench_server.c: a threaded server that retires and replaces its
 * threads (the shape of the "larson" server benchmark, written anew here).
 *
 *   bench_server [threads] [steps] [ws] [rounds] [seed]
 *                                        (2 4000000 8000 400 1234567)
 *
 * `threads` workers run at once, each on a slot array of ws objects. A step
 * draws a slot at random (xorshift32), reads the object in it and frees it,
 * then puts a new object of 10..500 bytes there and writes a few bytes of
 * it. Each worker runs `steps` steps in all, split into `rounds` rounds;
 * at the end of a round the worker's thread creates its replacement and
 * exits, and the replacement carries on with the same slot array and the
 * same random state. So objects move between threads three ways:
 *   - the main thread fills every array before the start: each first free
 *     of a slot frees an object of another (live, waiting) thread;
 *   - a retiring thread leaves its live objects to its replacement, which
 *     frees them after their allocating thread has exited (an allocator
 *     must take the dead thread's memory over, or lose it);
 *   - SWAPS times per round a worker exchanges its array for the spare
 *     one (one atomic exchange; there are threads + 1 arrays), which is
 *     usually the array another worker left there, so that objects of a
 *     live thread are freed by another live thread.
 * The default rounds are short (10000 steps over 8000 slots): threads come
 * and go often, as in a server that recycles its workers, and a retiring
 * thread leaves most of its array's objects still live. With rounds of
 * hundreds of thousands of steps the workload becomes a plain remote-free
 * one (bench_churn, bench_prodcons measure that).
 *
 * Each object carries the serial number of the thread that allocated it in
 * its first 4 bytes; a free of an object whose serial is not the freeing
 * thread's is counted as foreign (reported in percent): all but the frees
 * of objects a thread allocated itself.
 *
 * Timed from the start signal (all first threads created) until the last
 * worker has finished, thread creation and exit included, as in a server.
 * One op is one malloc or one free: ops = 2 * threads * rounds *
 * (steps / rounds). The filling before the start and the freeing of every
 * array at the end are not timed and not counted. The sequence of slots and
 * sizes of each worker is fixed by the seed; which array a swap hands over
 * depends on the scheduling.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "bench_common.h"

/* Array exchanges per round: often enough that most objects are freed by a
 * thread other than their allocator while it is still alive, rarely enough
 * that the exchange itself costs nothing (one atomic op per several
 * thousand steps). */
#define SWAPS 4

#define MIN_SIZE 10
#define MAX_SIZE 500

struct worker {
    int id;
    uint32_t ws;
    uint64_t rounds;
    uint64_t round_steps;
    uint64_t round; /* rounds finished by this worker's lineage */
    uint32_t x;     /* xorshift32 state, handed to the replacement */
    void **slots;   /* current array, handed to the replacement */
    pthread_t prev; /* the retiring thread, joined by its replacement */
    int has_prev;
    uint64_t foreign;
    uint64_t sum;
};

static _Atomic(void **) g_spare; /* the array between two workers */
static atomic_int g_go;
static pthread_mutex_t g_done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_done_cond = PTHREAD_COND_INITIALIZER;
static int g_done;
static pthread_t *g_last; /* the last thread of each worker, joined by main */

/* Serial of the thread of worker id in round r; 0 is the main thread. */
static inline uint32_t serial_of(int id, uint64_t r, uint64_t rounds)
{
    return 1u + (uint32_t)((uint64_t)id * rounds + r);
}

static inline void *new_object(uint32_t *x, uint32_t serial)
{
    size_t sz = MIN_SIZE + bench_xs32(x) % (MAX_SIZE - MIN_SIZE + 1);
    unsigned char *p = malloc(sz);
    if (__builtin_expect(p == NULL, 0))
        bench_die("malloc");
    /* A few bytes, like a request header: the owner serial at the front
     * (read back on free) and the last byte, so that both ends of the
     * object are touched. */
    memcpy(p, &serial, sizeof serial);
    p[sz - 1] = (unsigned char)serial;
    return p;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    if (w->has_prev && pthread_join(w->prev, NULL))
        bench_die("pthread_join");
    while (!atomic_load_explicit(&g_go, memory_order_acquire))
        sched_yield();
    uint32_t me = serial_of(w->id, w->round, w->rounds);
    uint32_t x = w->x;
    void **slots = w->slots;
    uint64_t foreign = 0, sum = 0;
    uint64_t swap_every = w->round_steps / SWAPS;
    for (uint64_t i = 0; i < w->round_steps; i++) {
        uint32_t s = bench_xs32(&x) % w->ws;
        uint32_t owner;
        memcpy(&owner, slots[s], sizeof owner);
        foreign += owner != me;
        sum += owner;
        free(slots[s]);
        slots[s] = new_object(&x, me);
        if (swap_every && (i + 1) % swap_every == 0)
            slots = atomic_exchange_explicit(&g_spare, slots, memory_order_acq_rel);
    }
    w->x = x;
    w->slots = slots;
    w->foreign += foreign;
    w->sum += sum;
    w->round++;
    if (w->round < w->rounds) {
        /* Retire: the replacement gets the array (and the objects this
         * thread allocated), then joins this thread once it has exited. */
        pthread_t th;
        w->prev = pthread_self();
        w->has_prev = 1;
        if (pthread_create(&th, NULL, worker_main, w))
            bench_die("pthread_create");
        return NULL;
    }
    pthread_mutex_lock(&g_done_lock);
    g_last[w->id] = pthread_self();
    g_done++;
    pthread_cond_signal(&g_done_cond);
    pthread_mutex_unlock(&g_done_lock);
    return NULL;
}

static void **fill_array(uint32_t ws, uint32_t *x)
{
    void **a = malloc(ws * sizeof *a);
    if (!a)
        bench_die("malloc");
    for (uint32_t s = 0; s < ws; s++)
        a[s] = new_object(x, 0);
    return a;
}

static void free_array(void **a, uint32_t ws)
{
    for (uint32_t s = 0; s < ws; s++)
        free(a[s]);
    free(a);
}

int main(int argc, char **argv)
{
    bench_init();
    uint64_t threads = bench_arg(argc, argv, 1, 2);
    uint64_t steps = bench_arg(argc, argv, 2, 4000000);
    uint64_t ws = bench_arg(argc, argv, 3, 8000);
    uint64_t rounds = bench_arg(argc, argv, 4, 400);
    uint32_t seed = (uint32_t)bench_arg(argc, argv, 5, 1234567);
    if (threads < 1 || threads > 256 || ws < 1 || ws > (1u << 24) || rounds < 1 ||
        rounds > (1u << 20) || steps < rounds) {
        fprintf(stderr, "%s: threads must be 1..256, ws 1..2^24, rounds 1..2^20, "
                "steps >= rounds\n", argv[0]);
        return 2;
    }
    if (!seed)
        seed = 1;
    int nt = (int)threads;
    /* The workers touch their struct only between rounds (the loop runs
     * on locals), so false sharing between them does not matter. */
    struct worker *wk = calloc((size_t)nt, sizeof *wk);
    g_last = calloc((size_t)nt, sizeof *g_last);
    if (!wk || !g_last)
        bench_die("calloc");
    uint32_t fx = seed;
    for (int i = 0; i < nt; i++) {
        wk[i].id = i;
        wk[i].ws = (uint32_t)ws;
        wk[i].rounds = rounds;
        wk[i].round_steps = steps / rounds;
        wk[i].x = seed + (uint32_t)i * 7919u;
        if (!wk[i].x)
            wk[i].x = 1;
        wk[i].slots = fill_array((uint32_t)ws, &fx);
    }
    atomic_init(&g_spare, fill_array((uint32_t)ws, &fx));

    for (int i = 0; i < nt; i++) {
        pthread_t th;
        if (pthread_create(&th, NULL, worker_main, &wk[i]))
            bench_die("pthread_create");
    }
    double t0 = bench_now();
    atomic_store_explicit(&g_go, 1, memory_order_release);
    pthread_mutex_lock(&g_done_lock);
    while (g_done < nt)
        pthread_cond_wait(&g_done_cond, &g_done_lock);
    pthread_mutex_unlock(&g_done_lock);
    double t1 = bench_now();
    for (int i = 0; i < nt; i++)
        if (pthread_join(g_last[i], NULL))
            bench_die("pthread_join");

    uint64_t foreign = 0, sum = 0;
    for (int i = 0; i < nt; i++) {
        foreign += wk[i].foreign;
        sum += wk[i].sum;
        free_array(wk[i].slots, (uint32_t)ws);
    }
    free_array(atomic_load(&g_spare), (uint32_t)ws);
    free(wk);
    free(g_last);

    uint64_t frees = (uint64_t)nt * rounds * (steps / rounds);
    char params[192];
    snprintf(params, sizeof params,
             "ops=%llu threads=%d ws=%llu rounds=%llu foreign=%.1f%% checksum=%llu",
             (unsigned long long)(2 * frees), nt, (unsigned long long)ws,
             (unsigned long long)rounds, 100.0 * (double)foreign / (double)frees,
             (unsigned long long)sum);
    bench_report((double)(2 * frees), t1 - t0, params);
    return 0;
}
