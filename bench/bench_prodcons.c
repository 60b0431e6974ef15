/* bench/bench_prodcons.c: producer-consumer (every free is a remote free).
 *
 *   bench_prodcons [threads] [objects] [ring] [seed]   (2 2000000 1024 1234567)
 *
 * threads = P producers + C consumers, P = ceil(threads/2), C = threads/2
 * (at least one of each; threads=1 runs one producer and one consumer).
 * Each producer allocates `objects` objects of 16..1039 bytes, writes the
 * first byte and pushes the pointer into its own bounded single-producer
 * single-consumer lock-free ring (`ring` entries); consumer j drains the
 * rings of producers j, j+C, ... and frees every object after reading its
 * first byte. A full or empty ring yields the CPU (sched_yield).
 *
 * One op is one malloc or one free: ops = 2 * P * objects. Timed from the
 * start signal (all threads created) to the last join.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "bench_common.h"

struct ring {
    _Atomic uint64_t head; /* next slot to write (producer) */
    char pad0[56];
    _Atomic uint64_t tail; /* next slot to read (consumer) */
    char pad1[56];
    void **buf;
    uint64_t cap;
    char pad2[48]; /* sizeof == 192, a multiple of 64 for aligned_alloc */
};

struct prod {
    pthread_t th;
    struct ring *ring;
    uint64_t objects;
    uint32_t seed;
};

struct cons {
    pthread_t th;
    struct ring **rings;
    int nrings;
    uint64_t expect;
    uint64_t checksum;
};

static atomic_int g_go;

static void wait_go(void)
{
    while (!atomic_load_explicit(&g_go, memory_order_acquire))
        sched_yield();
}

static void *producer(void *arg)
{
    struct prod *p = arg;
    struct ring *r = p->ring;
    uint32_t x = p->seed;
    wait_go();
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    for (uint64_t i = 0; i < p->objects; i++) {
        uint32_t v = bench_xs32(&x);
        char *o = malloc(16 + (v & 0x3FF));
        if (!o)
            bench_die("malloc");
        o[0] = (char)v;
        while (head - atomic_load_explicit(&r->tail, memory_order_acquire) >= r->cap)
            sched_yield();
        r->buf[head % r->cap] = o;
        head++;
        atomic_store_explicit(&r->head, head, memory_order_release);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    struct cons *c = arg;
    uint64_t done = 0, sum = 0;
    wait_go();
    while (done < c->expect) {
        int got = 0;
        for (int k = 0; k < c->nrings; k++) {
            struct ring *r = c->rings[k];
            uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
            uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
            for (; tail != head; tail++) {
                char *o = r->buf[tail % r->cap];
                sum += (unsigned char)o[0];
                free(o);
                done++;
                got = 1;
            }
            atomic_store_explicit(&r->tail, tail, memory_order_release);
        }
        if (!got)
            sched_yield();
    }
    c->checksum = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    bench_init();
    uint64_t threads = bench_arg(argc, argv, 1, 2);
    uint64_t objects = bench_arg(argc, argv, 2, 2000000);
    uint64_t cap = bench_arg(argc, argv, 3, 1024);
    uint32_t seed = (uint32_t)bench_arg(argc, argv, 4, 1234567);
    if (threads < 1 || threads > 256 || cap < 1) {
        fprintf(stderr, "%s: threads must be 1..256, ring >= 1\n", argv[0]);
        return 2;
    }
    if (!seed)
        seed = 1;
    int np = (int)((threads + 1) / 2), nc = (int)(threads / 2);
    if (nc < 1)
        nc = 1;

    struct prod *prods = calloc((size_t)np, sizeof *prods);
    struct cons *conss = calloc((size_t)nc, sizeof *conss);
    struct ring *rings = aligned_alloc(64, sizeof *rings * (size_t)np);
    if (!prods || !conss || !rings)
        bench_die("calloc");
    for (int i = 0; i < np; i++) {
        atomic_init(&rings[i].head, 0);
        atomic_init(&rings[i].tail, 0);
        rings[i].cap = cap;
        rings[i].buf = calloc(cap, sizeof(void *));
        if (!rings[i].buf)
            bench_die("calloc");
        bench_touch(rings[i].buf, cap * sizeof(void *));
        prods[i].ring = &rings[i];
        prods[i].objects = objects;
        prods[i].seed = seed + (uint32_t)i * 7919u;
        if (!prods[i].seed)
            prods[i].seed = 1;
    }
    for (int j = 0; j < nc; j++) {
        conss[j].rings = calloc((size_t)np, sizeof(struct ring *));
        if (!conss[j].rings)
            bench_die("calloc");
        for (int i = j; i < np; i += nc) {
            conss[j].rings[conss[j].nrings++] = &rings[i];
            conss[j].expect += objects;
        }
    }
    for (int i = 0; i < np; i++)
        if (pthread_create(&prods[i].th, NULL, producer, &prods[i]))
            bench_die("pthread_create");
    for (int j = 0; j < nc; j++)
        if (pthread_create(&conss[j].th, NULL, consumer, &conss[j]))
            bench_die("pthread_create");

    double t0 = bench_now();
    atomic_store_explicit(&g_go, 1, memory_order_release);
    for (int i = 0; i < np; i++)
        pthread_join(prods[i].th, NULL);
    for (int j = 0; j < nc; j++)
        pthread_join(conss[j].th, NULL);
    double t1 = bench_now();

    uint64_t sum = 0;
    for (int j = 0; j < nc; j++) {
        sum += conss[j].checksum;
        free(conss[j].rings);
    }
    for (int i = 0; i < np; i++)
        free(rings[i].buf);
    free(rings);
    free(prods);
    free(conss);

    uint64_t ops = 2 * (uint64_t)np * objects;
    char params[160];
    snprintf(params, sizeof params,
             "ops=%llu threads=%llu producers=%d consumers=%d checksum=%llu",
             (unsigned long long)ops, (unsigned long long)threads, np, nc,
             (unsigned long long)sum);
    bench_report((double)ops, t1 - t0, params);
    return 0;
}
