/* bench/bench_fill.c: a single-thread loop that fills every block it gets.
 *
 *   bench_fill [ops] [max_live] [max_size]          (4000000 1600 4096)
 *
 * For each size of 16 bytes, 24, 32, 48, ... (powers of two and the
 * midpoints between them) up to max_size, each count of live blocks of 1,
 * 4, 16, 64, 256 and 1600 (up to max_live), and each order of freeing
 * (LIFO: the last allocated first; FIFO: the first allocated first), the
 * loop allocates `count` blocks of that size, fills each one whole with
 * memset, and frees them all in that order; it repeats that until the
 * combination has had its share of the ops (at least one round). The
 * shape of a program that builds small buffers and throws them away:
 * the allocator's fast path, and whether the blocks it hands out are warm
 * in the cache (LIFO reuse) or spread over fresh lines (FIFO).
 *
 * One op is one malloc or one free; the whole loop is timed, the fills
 * included (they are the program's work: an allocator whose blocks are
 * cold in the cache shows here). The loop is bench_loop (callgrind's
 * --toggle-collect=bench_loop counts it alone).
 */
#include "bench_common.h"

#define FILL_MAX_LIVE 1600

static const uint32_t fill_counts[] = {1, 4, 16, 64, 256, 1600};
#define FILL_NCOUNTS (sizeof fill_counts / sizeof fill_counts[0])

/* The sizes: 16, 24, 32, 48, 64, ... up to max_size. Returns how many. */
static unsigned fill_sizes(uint32_t *out, unsigned cap, uint32_t max_size)
{
    unsigned n = 0;
    for (uint32_t p = 16; p <= max_size && n < cap; p <<= 1) {
        out[n++] = p;
        if (p + p / 2 <= max_size && n < cap)
            out[n++] = p + p / 2;
    }
    return n;
}

uint64_t bench_loop(void **live, const uint32_t *sizes, unsigned nsizes, uint32_t max_live,
                    uint64_t share);

/* Runs every combination; returns the ops done. */
__attribute__((noinline)) uint64_t bench_loop(void **live, const uint32_t *sizes, unsigned nsizes,
                                              uint32_t max_live, uint64_t share)
{
    uint64_t ops = 0;
    for (unsigned si = 0; si < nsizes; si++) {
        size_t size = sizes[si];
        for (unsigned ci = 0; ci < FILL_NCOUNTS; ci++) {
            uint32_t count = fill_counts[ci];
            if (count > max_live)
                continue;
            uint64_t rounds = share / (2u * count);
            if (rounds == 0)
                rounds = 1;
            for (int fifo = 0; fifo < 2; fifo++) {
                for (uint64_t r = 0; r < rounds; r++) {
                    for (uint32_t k = 0; k < count; k++) {
                        char *p = malloc(size);
                        if (__builtin_expect(p == NULL, 0))
                            bench_die("malloc");
                        memset(p, (int)(k + r), size);
                        /* The fill is a real store: a compiler may not
                         * drop it as dead before the free. */
                        __asm__ volatile("" : : "r"(p) : "memory");
                        live[k] = p;
                    }
                    if (fifo) {
                        for (uint32_t k = 0; k < count; k++)
                            free(live[k]);
                    } else {
                        for (uint32_t k = count; k-- > 0;)
                            free(live[k]);
                    }
                    ops += 2u * count;
                }
            }
        }
    }
    return ops;
}

int main(int argc, char **argv)
{
    bench_init();
    uint64_t ops_target = bench_arg(argc, argv, 1, 4000000ULL);
    uint64_t max_live = bench_arg(argc, argv, 2, FILL_MAX_LIVE);
    uint64_t max_size = bench_arg(argc, argv, 3, 4096);
    if (max_live < 1 || max_live > FILL_MAX_LIVE) {
        fprintf(stderr, "%s: max_live must be 1..%d\n", argv[0], FILL_MAX_LIVE);
        return 2;
    }
    if (max_size < 16 || max_size > (1u << 20)) {
        fprintf(stderr, "%s: max_size must be 16..1048576\n", argv[0]);
        return 2;
    }
    static void *live[FILL_MAX_LIVE];
    uint32_t sizes[64];
    unsigned nsizes = fill_sizes(sizes, 64, (uint32_t)max_size);
    unsigned ncounts = 0;
    for (unsigned ci = 0; ci < FILL_NCOUNTS; ci++)
        ncounts += fill_counts[ci] <= max_live;
    /* Each (size, count, order) gets an equal share of the ops. */
    uint64_t share = ops_target / ((uint64_t)nsizes * ncounts * 2u);
    bench_touch(live, sizeof live);

    double t0 = bench_now();
    uint64_t ops = bench_loop(live, sizes, nsizes, (uint32_t)max_live, share);
    double t1 = bench_now();

    char params[128];
    snprintf(params, sizeof params, "ops=%llu max_live=%llu max_size=%llu sizes=%u",
             (unsigned long long)ops, (unsigned long long)max_live, (unsigned long long)max_size,
             nsizes);
    bench_report((double)ops, t1 - t0, params);
    return 0;
}
