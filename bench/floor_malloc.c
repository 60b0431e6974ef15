/* bench/floor_malloc.c: the floor of a workload's loop, not an allocator.
 *
 *   LD_PRELOAD=bench/.libs/libfloor.so bench/bench_random_mixed ...
 *
 * The cheapest malloc/free a single-threaded loop can have: requests up to
 * 2 KiB get 16-byte size classes, each class its own 64 MiB stretch of one
 * address reservation, carved by a bump pointer and recycled LIFO through a
 * list linked in the blocks; free finds the class from the address (one
 * subtract, one compare, one shift). No thread safety, no checks of any
 * kind, no memory ever given back; larger requests and pointers outside the
 * reservation go to glibc (__libc_malloc/__libc_free). Only malloc and free
 * are replaced: use it for workloads whose loop calls nothing else
 * (random_mixed, skewed).
 *
 * What it measures: how fast the workload's loop runs when the allocator
 * costs (almost) nothing, on this machine, in the same run as the real
 * allocators. A ratio to mimalloc close to an allocator's target says the
 * target is at the floor of the loop (the benchmark's own instructions,
 * its branch mispredictions and the cache misses on its blocks), not in
 * the allocator. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

extern void *__libc_malloc(size_t size);
extern void __libc_free(void *p);

#define FLOOR_CLASSES 129 /* (size + 15) / 16 for size <= 2048 */
#define FLOOR_SHIFT 26    /* 64 MiB per class */

static char *g_base;
static char *g_bump[FLOOR_CLASSES];
static void *g_head[FLOOR_CLASSES];

__attribute__((constructor)) static void floor_init(void)
{
    void *m = mmap(NULL, (size_t)FLOOR_CLASSES << FLOOR_SHIFT, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return; /* everything goes to glibc */
    g_base = m;
    for (int c = 0; c < FLOOR_CLASSES; c++)
        g_bump[c] = g_base + ((size_t)c << FLOOR_SHIFT);
}

void *malloc(size_t size)
{
    if (size > 2048 || !g_base)
        return __libc_malloc(size);
    size_t c = (size + 15) >> 4;
    void *b = g_head[c];
    if (b) {
        g_head[c] = *(void **)b;
        return b;
    }
    b = g_bump[c];
    g_bump[c] += c ? c << 4 : 16;
    return b;
}

void free(void *p)
{
    uintptr_t off = (uintptr_t)p - (uintptr_t)g_base;
    if (!g_base || off >= (uintptr_t)FLOOR_CLASSES << FLOOR_SHIFT) {
        __libc_free(p);
        return;
    }
    size_t c = off >> FLOOR_SHIFT;
    *(void **)p = g_head[c];
    g_head[c] = p;
}
