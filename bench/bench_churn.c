/* bench/bench_churn.c: server-like churn.
 *
 *   bench_churn [threads] [steps] [ws] [seed]       (2 2000000 4096 1234567)
 *
 * Each of `threads` threads runs `steps` steps of a request-serving
 * pattern, drawing r from its own xorshift32:
 *   8/16  scratch: malloc 16..527 bytes, write, free at once (short-lived);
 *   6/16  session: slot (r >> 8) % ws of a per-thread table; free the
 *         occupant if any, else allocate 16..4111 bytes, or 4..36 KiB one
 *         time in 32 (long-lived: lifetime ~ 2 * ws steps);
 *   2/16  hand-off: malloc 64..2111 bytes and push it onto the next thread's
 *         mailbox (a mutex-protected intrusive list), which that thread
 *         drains and frees every 64 steps (freed by another thread); a
 *         sender waits while the mailbox holds MAILBOX_CAP objects, and
 *         frees the object itself once the receiver has finished.
 * After the timed region the tables and the mailboxes are freed (not timed).
 * One op is one malloc or one free (counted per thread, summed).
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "bench_common.h"

struct mailbox {
    pthread_mutex_t lock;
    void *head; /* intrusive singly linked list through each object's first word */
    uint64_t count;
    atomic_int closed; /* the receiver has finished: do not wait for it */
    char pad[64];
};

/* Back-pressure: a sender whose destination holds this many objects drains
 * its own mailbox and yields until the receiver catches up. Without it a
 * descheduled receiver lets hand-offs pile up by the tens of MiB, and peak
 * RSS would measure the scheduler rather than the allocator. */
#define MAILBOX_CAP 1024

struct worker {
    pthread_t th;
    int id;
    int nthreads;
    uint64_t steps;
    uint32_t ws;
    uint32_t seed;
    void **slots;
    uint64_t ops;
};

static struct mailbox *g_boxes;
static atomic_int g_go;

static uint64_t drain_mailbox(struct mailbox *mb)
{
    pthread_mutex_lock(&mb->lock);
    void *p = mb->head;
    mb->head = NULL;
    mb->count = 0;
    pthread_mutex_unlock(&mb->lock);
    uint64_t n = 0;
    while (p) {
        void *next = *(void **)p;
        free(p);
        p = next;
        n++;
    }
    return n;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct mailbox *dst = &g_boxes[(w->id + 1) % w->nthreads];
    struct mailbox *own = &g_boxes[w->id];
    uint32_t x = w->seed;
    uint64_t ops = 0;
    while (!atomic_load_explicit(&g_go, memory_order_acquire))
        sched_yield();
    for (uint64_t i = 0; i < w->steps; i++) {
        uint32_t r = bench_xs32(&x);
        uint32_t kind = r & 15;
        if (kind < 8) {
            char *p = malloc(16 + ((r >> 4) & 0x1FF));
            if (!p)
                bench_die("malloc");
            p[0] = (char)r;
            __asm__ volatile("" : : "r"(p) : "memory");
            free(p);
            ops += 2;
        } else if (kind < 14) {
            uint32_t s = (r >> 8) % w->ws;
            if (w->slots[s]) {
                free(w->slots[s]);
                w->slots[s] = NULL;
            } else {
                size_t sz = (r >> 27) == 0 ? 4096 + ((size_t)(r >> 4) & 0x7FFF)
                                           : 16 + ((size_t)(r >> 4) & 0xFFF);
                char *p = malloc(sz);
                if (!p)
                    bench_die("malloc");
                p[0] = (char)r;
                w->slots[s] = p;
            }
            ops++;
        } else {
            void **p = malloc(64 + ((r >> 4) & 0x7FF));
            if (!p)
                bench_die("malloc");
            int closed = 0;
            for (;;) {
                pthread_mutex_lock(&dst->lock);
                closed = atomic_load_explicit(&dst->closed, memory_order_acquire);
                if (dst->count < MAILBOX_CAP || dst == own || closed)
                    break;
                pthread_mutex_unlock(&dst->lock);
                ops += drain_mailbox(own);
                sched_yield();
            }
            if (closed) {
                /* The receiver is gone: nobody would free it before the end. */
                pthread_mutex_unlock(&dst->lock);
                free(p);
                ops++;
            } else {
                *p = dst->head;
                dst->head = p;
                dst->count++;
                pthread_mutex_unlock(&dst->lock);
            }
            ops++;
        }
        if ((i & 63) == 63)
            ops += drain_mailbox(own);
    }
    atomic_store_explicit(&own->closed, 1, memory_order_release);
    w->ops = ops;
    return NULL;
}

int main(int argc, char **argv)
{
    bench_init();
    uint64_t threads = bench_arg(argc, argv, 1, 2);
    uint64_t steps = bench_arg(argc, argv, 2, 2000000);
    uint64_t ws = bench_arg(argc, argv, 3, 4096);
    uint32_t seed = (uint32_t)bench_arg(argc, argv, 4, 1234567);
    if (threads < 1 || threads > 256 || ws < 1 || ws > (1u << 24)) {
        fprintf(stderr, "%s: threads must be 1..256, ws 1..2^24\n", argv[0]);
        return 2;
    }
    int nt = (int)threads;
    struct worker *ws_ = calloc((size_t)nt, sizeof *ws_);
    g_boxes = calloc((size_t)nt, sizeof *g_boxes);
    if (!ws_ || !g_boxes)
        bench_die("calloc");
    for (int i = 0; i < nt; i++) {
        pthread_mutex_init(&g_boxes[i].lock, NULL);
        ws_[i].id = i;
        ws_[i].nthreads = nt;
        ws_[i].steps = steps;
        ws_[i].ws = (uint32_t)ws;
        ws_[i].seed = seed + (uint32_t)i * 7919u;
        if (!ws_[i].seed)
            ws_[i].seed = 1;
        ws_[i].slots = calloc(ws, sizeof(void *));
        if (!ws_[i].slots)
            bench_die("calloc");
        bench_touch(ws_[i].slots, ws * sizeof(void *));
    }
    for (int i = 0; i < nt; i++)
        if (pthread_create(&ws_[i].th, NULL, worker_main, &ws_[i]))
            bench_die("pthread_create");
    double t0 = bench_now();
    atomic_store_explicit(&g_go, 1, memory_order_release);
    for (int i = 0; i < nt; i++)
        pthread_join(ws_[i].th, NULL);
    double t1 = bench_now();

    uint64_t ops = 0;
    for (int i = 0; i < nt; i++) {
        ops += ws_[i].ops;
        for (uint64_t s = 0; s < ws; s++)
            free(ws_[i].slots[s]);
        free(ws_[i].slots);
        drain_mailbox(&g_boxes[i]);
        pthread_mutex_destroy(&g_boxes[i].lock);
    }
    free(ws_);
    free(g_boxes);

    char params[128];
    snprintf(params, sizeof params, "ops=%llu threads=%d ws=%llu",
             (unsigned long long)ops, nt, (unsigned long long)ws);
    bench_report((double)ops, t1 - t0, params);
    return 0;
}
