/* bench/bench_longrun.c: a server that runs for months, compressed.
 *
 *   bench_longrun [ops] [workers] [trim_every] [seed] [late_tsd] [roles]
 *                                    (100000000 4 0 1234567 16 rilkt)
 *
 * Nothing a long-running server does should make its allocator grow with
 * the program's age. This program does, for `ops` operations (one op is
 * one malloc or one free), the things that make memory strand:
 *
 *   - workers: `workers` threads, each with a private table of WS blocks
 *     that it replaces at random (the long-lived data), scratch blocks
 *     freed at once, and blocks handed to another worker, which frees them
 *     (a producer allocates, a consumer frees). Each worker thread is
 *     retired once an epoch (at its own point of the epoch, so that
 *     retirements are spread): it creates its replacement, which inherits the
 *     table, the inbox and the random state, joins it, and frees what it
 *     left behind. Each worker thread (and each idle owner below) also sets
 *     a key whose destructor runs in every round up to the last and
 *     allocates there, after the allocator's own thread cleanup.
 *   - the listener: one thread that lives the whole run and only
 *     allocates requests, handed round-robin to the workers, which free
 *     them: the slabs of a long-lived owner emptied by other threads.
 *   - idle owners: one thread per epoch allocates a batch of blocks, hands
 *     all but one in IDLE_KEEP to the workers (who free them), and goes
 *     idle holding the rest for IDLE_EPOCHS epochs; then it frees them and
 *     exits. Its slabs are emptied behind its back while it sleeps. (It
 *     hands its blocks over without waiting for room in the inboxes.)
 *   - late threads: late_tsd threads per epoch whose FIRST allocation is
 *     in the last round of pthread key destructors (a key whose
 *     destructor sets itself again until round PTHREAD_DESTRUCTOR_ITERATIONS
 *     and then mallocs and frees there), and LATE_TLS threads per epoch
 *     with a C++-style thread_local destructor (registered with
 *     __cxa_thread_atexit_impl, as g++ does) that mallocs and frees.
 *   - with trim_every = K > 0, a side thread calls malloc_trim(0) at the
 *     start of every K-th epoch, while the others run (as some servers
 *     do from a timer).
 * Sizes: 16..1039 bytes mostly, 1..5 KiB one time in 32, 32..288 KiB (large
 * blocks) one time in 1024; the same mix for every role.
 *
 * `roles` turns parts on, one letter each, to find which one makes an
 * allocator grow: r retire the workers, i idle owners, l large blocks,
 * k allocation in the last destructor round of workers and idle owners,
 * t the thread_local threads (late_tsd counts the others). The workers'
 * tables, scratch and handoffs and the listener always run. Each block holds
 * its size and a check byte at its end, verified when it is freed: a block
 * handed out twice, or written by the allocator, stops the run (exit 3).
 *
 * The run is EPOCHS epochs of ops/EPOCHS operations. Every thread that
 * steps (the listener and the workers) does a fixed number of steps in an
 * epoch, then all meet, the workers free what waits in their inboxes, and
 * the main thread samples the process (no thread allocates meanwhile):
 *   sample n=E ops=N rss=KiB lazyfree=KiB vsz=KiB faults=N [heaps=N ss_live=N
 *          ss_abandoned=N ss_cached=N slabs=N large_live=KiB large_cached=KiB
 *          committed=KiB mapped=KiB]
 * The bracketed fields are hakmem's gauges (hakmem_stats_get, found with
 * dlsym when hakmem is the allocator). So the samples sit at fixed
 * fractions of the operation count, not of time: a slow run is compared
 * with a fast one at the same point of its life, in the same state (the
 * same threads alive, the same blocks live). At the end:
 *   Longrun Rss at 10% = N KiB end = N KiB drift = P % (Rss - LazyFree: Q %)
 * drift = end / at-10% - 1. At the default size, every table is full
 * within the first epoch and by 10 % of the run every role has run several
 * times, so what grows after it grows with the program's age.
 *
 * Deterministic given the seed: which blocks each thread allocates and
 * frees and in which order; only the interleaving between threads is the
 * scheduler's. ops counts the mallocs and frees the program made (exactly;
 * not the allocations glibc makes for itself, such as the thread_local
 * destructor list). Timed from the first epoch's start to the last
 * sample, thread creation and exit included.
 */
#include <dlfcn.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>

#include "bench_common.h"
#include "hakmem.h"

#define EPOCHS 100        /* one sample per 1 % of the operations */
#define WS 4096           /* blocks in a worker's private table */
#define DRAIN_EVERY 64    /* steps between a worker's frees of its inbox */
#define INBOX_CAP 1024    /* blocks waiting in an inbox before producers wait */
#define IDLE_EPOCHS 4     /* epochs an idle owner sleeps */
#define IDLE_KEEP 128     /* an idle owner keeps one block in IDLE_KEEP */
#define IDLE_MAX_BLOCKS 8192
#define LATE_TSD_MAX 64   /* late_tsd: threads per epoch, first malloc in the last TSD round */
#define LATE_TLS 4        /* threads per epoch, malloc in a thread_local destructor */

/* Every block starts with this header (16 bytes, the smallest size): the
 * link while it waits in an inbox, its size, and a check byte at its end. */
struct blk {
    struct blk *next;
    uint32_t size;
    uint32_t pad;
};

/* A worker's inbox: a stack that producers push onto and its worker takes
 * whole. `count` bounds what waits there: a producer that finds INBOX_CAP
 * blocks waiting waits for the consumer (see hand_to), so that the blocks
 * in flight do not depend on how the scheduler runs the threads (a
 * listener left alone on a CPU for a time slice would otherwise pile up a
 * whole epoch of requests, and every allocator's footprint would follow
 * that peak instead of the server's steady state). */
struct inbox {
    _Atomic(struct blk *) head;
    atomic_long count;
    char pad[64 - sizeof(void *) - sizeof(long)];
};

struct worker {
    int id;
    int listener;        /* the long-lived producer: never retired */
    uint32_t x;          /* xorshift32 state, handed to the replacement */
    void **slots;        /* private table (workers) */
    uint64_t steps;      /* steps per epoch */
    uint64_t step;       /* steps done in this epoch */
    uint64_t retire_at;  /* the step of each epoch at which the thread retires */
    int epoch;           /* epochs finished */
    int in_epoch;
    pthread_t prev;      /* the retired thread, joined by its replacement */
    int has_prev;
    pthread_t cur;       /* the thread now running this worker */
    uint64_t mallocs, frees, handoffs, retired;
} __attribute__((aligned(64)));

struct idle_owner {
    pthread_t th;
    uint32_t x;
    int nblocks;
    sem_t ready, wake;
    struct blk *kept[IDLE_MAX_BLOCKS / IDLE_KEEP + 1];
    uint64_t mallocs, frees;
};

static int g_nw;                     /* workers */
static struct worker *g_w;           /* g_nw workers, then the listener */
static struct inbox *g_inbox;        /* one per worker */
static pthread_barrier_t g_barrier;  /* the steppers and main */
static atomic_int g_stepping;        /* steppers still stepping in this epoch */
static pthread_key_t g_key;          /* its destructor allocates in round 4 */
static _Atomic uint64_t g_late_ops;  /* ops of late threads and destructors */
static int g_trim_stop;
static sem_t g_trim_sem;
static _Atomic uint64_t g_trims;
static int (*g_hakmem_stats)(struct hakmem_stats *, size_t);
static int g_large = 1;              /* roles: l */
static int g_key_alloc = 1;          /* roles: k */

extern int __cxa_thread_atexit_impl(void (*fn)(void *), void *obj, void *dso);
extern void *__dso_handle;

static inline size_t draw_size(uint32_t r)
{
    uint32_t sel = r >> 22; /* 10 bits */
    if (sel == 0 && g_large)
        return (32u << 10) + 16 + (r & 0x3FFFF); /* above 32 KiB, up to 288 KiB */
    if ((sel & 31) == 0)
        return 1024 + (r & 0xFFF);          /* 1..5 KiB */
    return 16 + (r & 0x3FF);                /* 16..1039 B */
}

static inline unsigned char check_byte(uint32_t size)
{
    return (unsigned char)(size ^ (size >> 8) ^ 0x5A);
}

static struct blk *blk_alloc(size_t sz)
{
    struct blk *b = malloc(sz);
    if (__builtin_expect(b == NULL, 0))
        bench_die("malloc");
    b->next = NULL;
    b->size = (uint32_t)sz;
    /* A large block is a buffer that gets filled: one byte per page. */
    if (sz > (32u << 10))
        for (size_t i = 4096; i < sz; i += 4096)
            ((volatile char *)b)[i] = (char)i;
    ((unsigned char *)b)[sz - 1] = check_byte((uint32_t)sz);
    return b;
}

static inline struct blk *blk_new(uint32_t r)
{
    return blk_alloc(draw_size(r));
}

static void blk_free(struct blk *b)
{
    if (__builtin_expect(((unsigned char *)b)[b->size - 1] != check_byte(b->size), 0)) {
        fprintf(stderr, "bench: block %p of %u bytes was overwritten\n", (void *)b, b->size);
        fflush(stdout);
        _exit(3);
    }
    free(b);
}

static inline void inbox_push(struct inbox *ib, struct blk *b)
{
    struct blk *old = atomic_load_explicit(&ib->head, memory_order_relaxed);
    do
        b->next = old;
    while (!atomic_compare_exchange_weak_explicit(&ib->head, &old, b, memory_order_release,
                                                  memory_order_relaxed));
}

/* Frees what waits in the inbox; returns the number of frees. */
static uint64_t inbox_drain(struct inbox *ib)
{
    struct blk *b = atomic_exchange_explicit(&ib->head, NULL, memory_order_acquire);
    uint64_t n = 0;
    while (b) {
        struct blk *next = b->next;
        blk_free(b);
        b = next;
        n++;
    }
    if (n)
        atomic_fetch_sub_explicit(&ib->count, (long)n, memory_order_relaxed);
    return n;
}

/* A stepper hands b to worker `to`, first waiting while that inbox is
 * full. A worker frees its own inbox while it waits (two workers waiting
 * on each other's inboxes both make progress), and every worker keeps
 * freeing its inbox until the last stepper is done (see worker_main), so
 * the wait ends. */
static void hand_to(struct worker *w, int to, struct blk *b)
{
    struct inbox *ib = &g_inbox[to];
    while (atomic_load_explicit(&ib->count, memory_order_relaxed) >= INBOX_CAP) {
        if (!w->listener)
            w->frees += inbox_drain(&g_inbox[w->id]);
        sched_yield();
    }
    inbox_push(ib, b);
    atomic_fetch_add_explicit(&ib->count, 1, memory_order_relaxed);
    w->mallocs++;
    w->handoffs++;
}

/* The destructor of g_key: runs in every round (it sets the key again)
 * and allocates in the last one, PTHREAD_DESTRUCTOR_ITERATIONS. */
static void key_destructor(void *v)
{
    uintptr_t round = (uintptr_t)v;
    if (round < PTHREAD_DESTRUCTOR_ITERATIONS) {
        pthread_setspecific(g_key, (void *)(round + 1));
        return;
    }
    blk_free(blk_alloc(16 + (round * 2654435761u & 0x3FF)));
    atomic_fetch_add_explicit(&g_late_ops, 2, memory_order_relaxed);
}

static void tls_destructor(void *obj)
{
    blk_free(blk_alloc(16 + ((uintptr_t)obj & 0x3FF)));
    atomic_fetch_add_explicit(&g_late_ops, 2, memory_order_relaxed);
}

/* A late thread: nothing but a key set (pthread_setspecific of a key
 * below 32 does not allocate), so its first malloc is in round 4. */
static void *late_tsd_main(void *arg)
{
    (void)arg;
    pthread_setspecific(g_key, (void *)1);
    return NULL;
}

/* A late thread with a thread_local object whose destructor allocates.
 * glibc allocates the destructor's list entry at registration. */
static void *late_tls_main(void *arg)
{
    if (__cxa_thread_atexit_impl(tls_destructor, arg, &__dso_handle) != 0)
        bench_die("__cxa_thread_atexit_impl");
    return NULL;
}

static void *worker_main(void *arg);

/* Retire the calling worker thread: its replacement carries on. */
static void retire(struct worker *w)
{
    pthread_t th;
    w->prev = pthread_self();
    w->has_prev = 1;
    w->retired++;
    if (pthread_create(&th, NULL, worker_main, w))
        bench_die("pthread_create");
}

/* One step of a worker or of the listener. */
static inline void step(struct worker *w)
{
    uint32_t r = bench_xs32(&w->x);
    uint32_t rs = bench_xs32(&w->x);
    if (w->listener) {
        hand_to(w, (int)(w->step % (uint64_t)g_nw), blk_new(rs));
        return;
    }
    uint32_t kind = r & 15;
    if (kind < 8) {
        /* Replace a block of the private table. */
        uint32_t s = (r >> 4) % WS;
        if (w->slots[s]) {
            blk_free(w->slots[s]);
            w->frees++;
        }
        w->slots[s] = blk_new(rs);
        w->mallocs++;
    } else if (kind < 12) {
        /* Hand a block to another worker. */
        int to = w->id;
        if (g_nw > 1)
            to = (w->id + 1 + (int)((r >> 4) % (uint32_t)(g_nw - 1))) % g_nw;
        hand_to(w, to, blk_new(rs));
    } else {
        /* Scratch: allocated and freed at once. */
        blk_free(blk_new(rs));
        w->mallocs++;
        w->frees++;
    }
    if ((w->step + 1) % DRAIN_EVERY == 0)
        w->frees += inbox_drain(&g_inbox[w->id]);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    w->cur = pthread_self();
    if (w->has_prev) {
        if (pthread_join(w->prev, NULL))
            bench_die("pthread_join");
        w->has_prev = 0;
    }
    if (!w->listener && g_key_alloc)
        pthread_setspecific(g_key, (void *)1);
    for (;;) {
        if (!w->in_epoch) {
            pthread_barrier_wait(&g_barrier); /* start (or the end of the run) */
            if (w->epoch == EPOCHS)
                return NULL;
            w->in_epoch = 1;
            w->step = 0;
        }
        while (w->step < w->steps) {
            step(w);
            w->step++;
            if (!w->listener && w->step == w->retire_at) {
                retire(w);
                return NULL;
            }
        }
        /* Done: free what others hand over until every stepper is done
         * (a producer may be waiting for room in this inbox). */
        atomic_fetch_sub_explicit(&g_stepping, 1, memory_order_acq_rel);
        while (atomic_load_explicit(&g_stepping, memory_order_acquire) > 0) {
            if (!w->listener)
                w->frees += inbox_drain(&g_inbox[w->id]);
            sched_yield();
        }
        pthread_barrier_wait(&g_barrier); /* every step done */
        if (!w->listener)
            w->frees += inbox_drain(&g_inbox[w->id]);
        pthread_barrier_wait(&g_barrier); /* every inbox drained */
        w->in_epoch = 0;
        w->epoch++;
    }
}

static void *idle_main(void *arg)
{
    struct idle_owner *o = arg;
    int nk = 0;
    for (int i = 0; i < o->nblocks; i++) {
        struct blk *b = blk_new(bench_xs32(&o->x));
        o->mallocs++;
        if (i % IDLE_KEEP == 0)
            o->kept[nk++] = b;
        else
            inbox_push(&g_inbox[i % g_nw], b);
    }
    if (g_key_alloc)
        pthread_setspecific(g_key, (void *)1);
    sem_post(&o->ready);
    while (sem_wait(&o->wake) != 0)
        ;
    for (int i = 0; i < nk; i++) {
        blk_free(o->kept[i]);
        o->frees++;
    }
    return NULL;
}

static void *trim_main(void *arg)
{
    (void)arg;
    for (;;) {
        while (sem_wait(&g_trim_sem) != 0)
            ;
        if (__atomic_load_n(&g_trim_stop, __ATOMIC_ACQUIRE))
            return NULL;
        malloc_trim(0);
        atomic_fetch_add_explicit(&g_trims, 1, memory_order_relaxed);
    }
}

struct sample {
    uint64_t ops;
    long rss, lazy, vsz, faults;
    int have_hk;
    struct hakmem_stats hk;
};

static struct sample g_s[EPOCHS];

static void take_sample(int n, uint64_t ops)
{
    struct sample *s = &g_s[n];
    struct rusage ru;
    s->ops = ops;
    bench_smaps(&s->rss, &s->lazy);
    s->vsz = bench_smaps_field(bench_read_proc("/proc/self/status"), "\nVmSize:");
    getrusage(RUSAGE_SELF, &ru);
    s->faults = ru.ru_minflt;
    s->have_hk = g_hakmem_stats && g_hakmem_stats(&s->hk, sizeof s->hk) == 0;
    printf("sample n=%d ops=%llu rss=%ld lazyfree=%ld vsz=%ld faults=%ld", n + 1,
           (unsigned long long)ops, s->rss, s->lazy, s->vsz, s->faults);
    if (s->have_hk)
        printf(" heaps=%llu ss_live=%llu ss_abandoned=%llu ss_cached=%llu slabs=%llu"
               " large_live=%llu large_cached=%llu committed=%llu mapped=%llu",
               (unsigned long long)s->hk.heaps_live, (unsigned long long)s->hk.ss_live,
               (unsigned long long)s->hk.ss_abandoned, (unsigned long long)s->hk.ss_cached,
               (unsigned long long)s->hk.slabs_in_use,
               (unsigned long long)(s->hk.large_live_bytes >> 10),
               (unsigned long long)(s->hk.large_cached_bytes >> 10),
               (unsigned long long)(s->hk.bytes_committed >> 10),
               (unsigned long long)(s->hk.bytes_mapped >> 10));
    printf("\n");
}

static uint64_t ops_so_far(const struct idle_owner *idle, int nidle)
{
    uint64_t ops = atomic_load(&g_late_ops);
    for (int i = 0; i <= g_nw; i++)
        ops += g_w[i].mallocs + g_w[i].frees;
    for (int i = 0; i < nidle; i++)
        ops += idle[i].mallocs + idle[i].frees;
    return ops;
}

static double pct(long a, long b)
{
    return b > 0 ? 100.0 * ((double)a / (double)b - 1.0) : 0.0;
}

int main(int argc, char **argv)
{
    bench_init();
    uint64_t ops = bench_arg(argc, argv, 1, 100000000);
    uint64_t nw = bench_arg(argc, argv, 2, 4);
    uint64_t trim_every = bench_arg(argc, argv, 3, 0);
    uint32_t seed = (uint32_t)bench_arg(argc, argv, 4, 1234567);
    uint64_t late_tsd = bench_arg(argc, argv, 5, 16);
    const char *roles = argc > 6 ? argv[6] : "rilkt";
    if (nw < 1 || nw > 64 || ops < 100000 || ops > (1ull << 40) || trim_every > EPOCHS ||
        late_tsd > LATE_TSD_MAX || strspn(roles, "rilkt") != strlen(roles)) {
        fprintf(stderr, "%s: ops must be 100000..2^40, workers 1..64, trim_every "
                "0..%d, late_tsd 0..%d, roles letters of 'rilkt'\n", argv[0], EPOCHS,
                LATE_TSD_MAX);
        return 2;
    }
    int retire_on = strchr(roles, 'r') != NULL, idle_on = strchr(roles, 'i') != NULL;
    g_large = strchr(roles, 'l') != NULL;
    g_key_alloc = strchr(roles, 'k') != NULL;
    int nlate = (int)late_tsd + (strchr(roles, 't') ? LATE_TLS : 0);
    if (!seed)
        seed = 1;
    g_nw = (int)nw;
    /* Before the run: dlsym may allocate (its error string). */
    g_hakmem_stats = (int (*)(struct hakmem_stats *, size_t))dlsym(RTLD_DEFAULT,
                                                                    "hakmem_stats_get");
    if (pthread_key_create(&g_key, key_destructor))
        bench_die("pthread_key_create");

    /* The budget of an epoch: the idle owner and the late threads take
     * their fixed share, the listener and each worker a step count of the
     * rest (a step is about two ops: a malloc and, now or later, a free). */
    uint64_t per_epoch = ops / EPOCHS;
    int idle_blocks = (int)(per_epoch / 128 < IDLE_MAX_BLOCKS ? per_epoch / 128 : IDLE_MAX_BLOCKS);
    if (!idle_on)
        idle_blocks = 0;
    uint64_t fixed = 2 * (uint64_t)idle_blocks + 2 * (uint64_t)nlate;
    uint64_t steps = (per_epoch - fixed) / 2 / (nw + 1);

    g_w = aligned_alloc(64, (nw + 1) * sizeof *g_w);
    g_inbox = aligned_alloc(64, nw * sizeof *g_inbox);
    struct idle_owner *idle = calloc(EPOCHS, sizeof *idle);
    if (!g_w || !g_inbox || !idle)
        bench_die("malloc");
    memset(g_w, 0, (nw + 1) * sizeof *g_w);
    for (int i = 0; i <= g_nw; i++) {
        struct worker *w = &g_w[i];
        w->id = i;
        w->listener = i == g_nw;
        w->x = seed + (uint32_t)i * 7919u;
        if (!w->x)
            w->x = 1;
        w->steps = steps;
        /* Once an epoch, each at its own point of it (never at step 0:
         * the check follows a step). */
        w->retire_at = retire_on ? steps * (uint64_t)(i + 1) / (nw + 1) : 0;
        if (!w->listener) {
            w->slots = calloc(WS, sizeof *w->slots);
            if (!w->slots)
                bench_die("calloc");
            bench_touch(w->slots, WS * sizeof *w->slots);
            atomic_init(&g_inbox[i].head, NULL);
            atomic_init(&g_inbox[i].count, 0);
        }
    }
    for (int e = 0; e < EPOCHS; e++) {
        idle[e].x = seed ^ (0x9E3779B9u * (uint32_t)(e + 1));
        if (!idle[e].x)
            idle[e].x = 1;
        idle[e].nblocks = idle_blocks;
        if (sem_init(&idle[e].ready, 0, 0) || sem_init(&idle[e].wake, 0, 0))
            bench_die("sem_init");
    }
    if (pthread_barrier_init(&g_barrier, NULL, (unsigned)nw + 2))
        bench_die("pthread_barrier_init");
    pthread_t trim_th;
    if (trim_every) {
        if (sem_init(&g_trim_sem, 0, 0) || pthread_create(&trim_th, NULL, trim_main, NULL))
            bench_die("trim thread");
    }
    for (int i = 0; i <= g_nw; i++) {
        pthread_t th;
        if (pthread_create(&th, NULL, worker_main, &g_w[i]))
            bench_die("pthread_create");
    }

    double t0 = bench_now();
    pthread_t late[LATE_TSD_MAX + LATE_TLS];
    for (int e = 0; e < EPOCHS; e++) {
        if (trim_every && e % (int)trim_every == 0)
            sem_post(&g_trim_sem);
        if (idle_on && e >= IDLE_EPOCHS)
            sem_post(&idle[e - IDLE_EPOCHS].wake);
        atomic_store(&g_stepping, g_nw + 1);
        pthread_barrier_wait(&g_barrier); /* start */
        if (idle_on && pthread_create(&idle[e].th, NULL, idle_main, &idle[e]))
            bench_die("pthread_create");
        for (int i = 0; i < nlate; i++) {
            void *(*fn)(void *) = i < (int)late_tsd ? late_tsd_main : late_tls_main;
            void *a = (void *)(uintptr_t)(seed + (uint32_t)(e * 64 + i));
            if (pthread_create(&late[i], NULL, fn, a))
                bench_die("pthread_create");
        }
        for (int i = 0; i < nlate; i++)
            if (pthread_join(late[i], NULL))
                bench_die("pthread_join");
        while (idle_on && sem_wait(&idle[e].ready) != 0)
            ;
        if (idle_on && e >= IDLE_EPOCHS && pthread_join(idle[e - IDLE_EPOCHS].th, NULL))
            bench_die("pthread_join");
        pthread_barrier_wait(&g_barrier); /* every step done */
        pthread_barrier_wait(&g_barrier); /* every inbox drained */
        take_sample(e, ops_so_far(idle, e + 1));
    }
    double t1 = bench_now();
    uint64_t total = g_s[EPOCHS - 1].ops;

    /* The end: the steppers exit, the sleeping owners wake and exit, and
     * every block still live is freed (not timed, not counted). */
    pthread_barrier_wait(&g_barrier);
    for (int i = 0; i <= g_nw; i++)
        if (pthread_join(g_w[i].cur, NULL))
            bench_die("pthread_join");
    for (int e = EPOCHS - IDLE_EPOCHS; idle_on && e < EPOCHS; e++) {
        sem_post(&idle[e].wake);
        if (pthread_join(idle[e].th, NULL))
            bench_die("pthread_join");
    }
    if (trim_every) {
        __atomic_store_n(&g_trim_stop, 1, __ATOMIC_RELEASE);
        sem_post(&g_trim_sem);
        if (pthread_join(trim_th, NULL))
            bench_die("pthread_join");
    }
    uint64_t handoffs = 0, retired = 0;
    for (int i = 0; i <= g_nw; i++) {
        handoffs += g_w[i].handoffs;
        retired += g_w[i].retired;
        if (!g_w[i].listener) {
            inbox_drain(&g_inbox[i]);
            for (int s = 0; s < WS; s++)
                if (g_w[i].slots[s])
                    blk_free(g_w[i].slots[s]);
            free(g_w[i].slots);
        }
    }
    free(g_w);
    free(g_inbox);
    free(idle);

    /* The reading at 10 % of the operations against the last one. */
    const struct sample *a = &g_s[EPOCHS / 10 - 1], *z = &g_s[EPOCHS - 1];
    printf("Longrun Rss at 10%% = %ld KiB end = %ld KiB drift = %.2f %% "
           "(Rss - LazyFree: %.2f %%)\n",
           a->rss, z->rss, pct(z->rss, a->rss), pct(z->rss - z->lazy, a->rss - a->lazy));
    if (a->have_hk && z->have_hk)
        printf("Longrun hakmem at 10%% heaps=%llu ss_live=%llu end heaps=%llu ss_live=%llu\n",
               (unsigned long long)a->hk.heaps_live, (unsigned long long)a->hk.ss_live,
               (unsigned long long)z->hk.heaps_live, (unsigned long long)z->hk.ss_live);

    char params[256];
    snprintf(params, sizeof params,
             "ops=%llu workers=%d trim_every=%llu late_tsd=%llu roles=%s threads=%llu "
             "handoffs=%llu trims=%llu",
             (unsigned long long)total, g_nw, (unsigned long long)trim_every,
             (unsigned long long)late_tsd, *roles ? roles : "-",
             (unsigned long long)(retired + (uint64_t)EPOCHS * ((uint64_t)idle_on + (uint64_t)nlate) +
                                  nw + 1),
             (unsigned long long)handoffs, (unsigned long long)atomic_load(&g_trims));
    bench_report((double)total, t1 - t0, params);
    return 0;
}
