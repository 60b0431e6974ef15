/* tests/stress/st_helpers.c: the paths where threads do an idle owner's
 * work, under ThreadSanitizer (make check-tsan).
 *
 * Owners allocate rounds of blocks (so their slabs fill up and are parked)
 * and hand them over, then go idle; freers free them from other threads, so
 * parked slabs notify their owner, notifications pile up and the freers
 * help: they drain the idle owner's notification stack, give back slabs now
 * empty, and re-arm the parked slabs that still hold live blocks (the next
 * free into one notifies again, while the helper may still be walking).
 * Meanwhile a reader takes the statistics (a census walks every heap's
 * slabs), writes the JSON form, and calls malloc_trim, which helps every
 * heap; the background thread purges too, with no delay (the program runs
 * itself again with those settings, and in a LEAN copy with LEAN on at
 * budget 0, unless HAKMEM_BACKGROUND is already set). Owners also free some blocks of their own
 * and exit and are replaced, so heaps are abandoned and adopted under the
 * helpers.
 *
 * Every block carries its length and a pattern of its own address, written
 * when it is allocated and checked when it is freed: a block handed out twice, or
 * written by the allocator while live, fails the run. TSan fails it on any
 * race report (tsan-run.sh). In make check it runs linked with the
 * internal LEAN copy and (st_helpers_debug) with the internal debug copy,
 * without TSan; the debug copy's malloc_trim runs the stranded census
 * (census_box.h) each time, while the helpers work. At the end, every
 * block freed and every owner gone, malloc_trim must leave no slab in use.
 * Arguments: [seconds] (default 3).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sched.h>
#include <unistd.h>

#include "hakmem.h"

#define OWNERS 2
#define FREERS 3
#define ROUND 3000 /* blocks an owner hands over per round */

/* Handed-over blocks; NULL: empty. A block's first word holds its length
 * in words (xored with its address), so whoever frees it needs nothing else. */
static _Atomic(uintptr_t *) g_slots[OWNERS][ROUND];
static _Atomic int g_stop;
static _Atomic long g_bad, g_freed, g_rounds, g_stats;

static uint32_t rnd(uint32_t *x)
{
    uint32_t v = *x;
    v ^= v << 13;
    v ^= v >> 17;
    v ^= v << 5;
    return *x = v;
}

static uintptr_t *take_block(size_t words)
{
    uintptr_t *p = hakmem_malloc(words * sizeof *p);
    if (!p) {
        fprintf(stderr, "st_helpers: malloc(%zu) failed\n", words * sizeof *p);
        exit(1);
    }
    p[0] = (uintptr_t)p ^ words;
    for (size_t i = 1; i < words; i++)
        p[i] = (uintptr_t)p ^ (i << 32);
    return p;
}

static void give_block(uintptr_t *p)
{
    size_t words = p[0] ^ (uintptr_t)p;
    if (words < 2 || words > 64) {
        atomic_fetch_add(&g_bad, 1);
    } else {
        for (size_t i = 1; i < words; i++)
            if (p[i] != ((uintptr_t)p ^ (i << 32))) {
                atomic_fetch_add(&g_bad, 1);
                break;
            }
    }
    hakmem_free(p);
}

/* One owner's life: a few rounds, then it exits (its heap is abandoned) and
 * main starts another in its place. */
static void *owner(void *arg)
{
    int id = (int)(intptr_t)arg;
    uint32_t x = 0x9e3779b9u ^ (uint32_t)id ^ (uint32_t)time(NULL);
    for (int round = 0; round < 4 && !atomic_load(&g_stop); round++) {
        /* Wait until the freers have emptied the previous round. */
        for (int i = 0; i < ROUND; i++)
            while (atomic_load_explicit(&g_slots[id][i], memory_order_acquire) && !atomic_load(&g_stop))
                usleep(100);
        if (atomic_load(&g_stop))
            break; /* a slot may still hold a block: never overwrite one */
        uintptr_t *mine[64];
        for (int i = 0; i < 64; i++)
            mine[i] = take_block(2 + rnd(&x) % 30);
        for (int i = 0; i < ROUND; i++) {
            size_t words = 2 + rnd(&x) % 62; /* 16..504 bytes: many blocks per slab */
            atomic_store_explicit(&g_slots[id][i], take_block(words), memory_order_release);
        }
        for (int i = 0; i < 64; i++)
            give_block(mine[i]);
        atomic_fetch_add(&g_rounds, 1);
        usleep(20000); /* idle: the freers' notifications pile up */
    }
    return NULL;
}

static void *freer(void *arg)
{
    uint32_t x = 0x85ebca6bu ^ (uint32_t)(intptr_t)arg;
    while (!atomic_load(&g_stop)) {
        int o = (int)(rnd(&x) % OWNERS), i = (int)(rnd(&x) % ROUND);
        uintptr_t *p = atomic_exchange_explicit(&g_slots[o][i], NULL, memory_order_acq_rel);
        if (!p) {
            sched_yield();
            continue;
        }
        give_block(p);
        atomic_fetch_add(&g_freed, 1);
    }
    return NULL;
}

static void *reader(void *arg)
{
    (void)arg;
    char json[16384];
    while (!atomic_load(&g_stop)) {
        struct hakmem_stats st;
        if (hakmem_stats_get(&st, sizeof st) != 0 || hakmem_stats_json(json, sizeof json) == 0) {
            fprintf(stderr, "st_helpers: statistics refused\n");
            atomic_fetch_add(&g_bad, 1);
        }
        if (atomic_fetch_add(&g_stats, 1) % 8 == 0)
            hakmem_malloc_trim(0);
        usleep(2000);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    /* The settings are read at load time: run again with them, unless the
     * caller chose its own (HAKMEM_BACKGROUND set). LEAN copies release
     * everything at once, so the helpers give memory back too. */
    if (!getenv("HAKMEM_BACKGROUND")) {
        setenv("HAKMEM_BACKGROUND", "1", 1);
        setenv("HAKMEM_PURGE_DELAY_MS", "0", 1);
        if (strcmp(hakmem_variant(), "lean") == 0) {
            setenv("HAKMEM_SS_MEM_LEAN", "1", 1);
            setenv("HAKMEM_SS_MEM_LEAN_TARGET_MB", "0", 1);
        }
        execv("/proc/self/exe", argv);
        perror("st_helpers: execv /proc/self/exe");
        return 99;
    }
    int seconds = argc > 1 ? atoi(argv[1]) : 3;
    pthread_t own[OWNERS], fr[FREERS], rd;
    for (int i = 0; i < FREERS; i++)
        pthread_create(&fr[i], NULL, freer, (void *)(intptr_t)i);
    pthread_create(&rd, NULL, reader, NULL);
    for (int i = 0; i < OWNERS; i++)
        pthread_create(&own[i], NULL, owner, (void *)(intptr_t)i);
    time_t end = time(NULL) + seconds;
    int generations = 0;
    while (time(NULL) < end) {
        /* Owners that finished their rounds are replaced by new threads. */
        for (int i = 0; i < OWNERS; i++) {
            pthread_join(own[i], NULL);
            pthread_create(&own[i], NULL, owner, (void *)(intptr_t)i);
            generations++;
        }
    }
    atomic_store(&g_stop, 1);
    for (int i = 0; i < OWNERS; i++)
        pthread_join(own[i], NULL);
    for (int i = 0; i < FREERS; i++)
        pthread_join(fr[i], NULL);
    pthread_join(rd, NULL);
    for (int o = 0; o < OWNERS; o++)
        for (int i = 0; i < ROUND; i++) {
            uintptr_t *p = atomic_load(&g_slots[o][i]);
            if (p)
                give_block(p);
        }
    /* Nothing is live and every thread that allocated is gone: a slab
     * still in use after malloc_trim is one nobody reaches any more. */
    hakmem_malloc_trim(0);
    struct hakmem_stats st;
    hakmem_stats_get(&st, sizeof st);
    printf("st_helpers: %ld rounds by %d owner threads, %ld remote frees, %ld statistics, %ld bad, "
           "%llu slabs in use at the end\n",
           atomic_load(&g_rounds), generations + OWNERS, atomic_load(&g_freed), atomic_load(&g_stats),
           atomic_load(&g_bad), (unsigned long long)st.slabs_in_use);
    if (st.slabs_in_use > 0) {
        printf("st_helpers: FAIL: slabs stranded after every block was freed and malloc_trim ran\n");
        return 1;
    }
    if (atomic_load(&g_rounds) < 4 || atomic_load(&g_freed) < ROUND) {
        printf("st_helpers: FAIL: the run did too little to mean anything\n");
        return 1;
    }
    return atomic_load(&g_bad) == 0 ? 0 : 1;
}
