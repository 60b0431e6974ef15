/* bench/bench_skewed.c: skewed sizes, random lifetimes.
 *
 *   bench_skewed [steps] [max_life] [seed]          (4000000 262144 1234567)
 *
 * The shape of many real single-threaded programs (interpreters, compilers,
 * symbolic solvers): most blocks are small, a few are large, most die young
 * and some live long. Every step allocates one block and frees the blocks
 * whose lifetime ended at that step:
 *   size      drawn from a power law: P(size > s) = (16 / s)^1.1 for s >= 16
 *             bytes, cut at 256 KiB (55 % of blocks <= 32 bytes, 5 % >
 *             256 bytes, 0.2 % > 4 KiB, 0.02 % > 32 KiB; 107 bytes on
 *             average);
 *   lifetime  drawn from a power law too: P(life > l) = (1 / l)^0.5 steps,
 *             cut at max_life (42 % of the blocks die within 2 steps, the
 *             mean is about 1000 steps, a few live max_life steps);
 * A block lives on a timing wheel of max_life buckets, linked through its
 * first word, and its last byte is written when it is allocated, so the
 * allocator's memory is touched the way a program touches it. One op is one
 * malloc or one free; blocks still live at the end are freed outside the
 * timed region. The laws are sampled from 4096-entry quantile tables built
 * before the clock starts (no libm in the loop).
 */
#include "bench_common.h"

#include <math.h>

#define TABLE 4096

void bench_loop(void **wheel, uint32_t mask, uint64_t steps, const uint32_t *sizes,
                const uint32_t *lives, uint32_t seed, uint64_t *ops);

/* Separate and not inlined, so that callgrind can count the loop alone
 * (--toggle-collect=bench_loop). */
__attribute__((noinline)) void bench_loop(void **wheel, uint32_t mask, uint64_t steps,
                                          const uint32_t *sizes, const uint32_t *lives,
                                          uint32_t seed, uint64_t *ops)
{
    uint32_t x = seed;
    uint64_t n = 0;
    for (uint64_t t = 0; t < steps; t++) {
        void **bucket = &wheel[t & mask];
        void *p = *bucket;
        *bucket = NULL;
        while (p) {
            void *next = *(void **)p;
            free(p);
            n++;
            p = next;
        }
        uint32_t r = bench_xs32(&x);
        uint32_t size = sizes[r & (TABLE - 1)];
        uint32_t life = lives[(r >> 12) & (TABLE - 1)];
        char *q = malloc(size);
        if (__builtin_expect(q == NULL, 0))
            bench_die("malloc");
        n++;
        q[size - 1] = (char)r;
        void **due = &wheel[(t + life) & mask];
        *(void **)q = *due;
        *due = q;
    }
    *ops = n;
}

int main(int argc, char **argv)
{
    bench_init();
    uint64_t steps = bench_arg(argc, argv, 1, 4000000);
    uint64_t max_life = bench_arg(argc, argv, 2, 262144);
    uint32_t seed = (uint32_t)bench_arg(argc, argv, 3, 1234567);
    if (max_life < 2 || max_life > (1u << 24) || (max_life & (max_life - 1))) {
        fprintf(stderr, "%s: max_life must be a power of two, 2..2^24\n", argv[0]);
        return 2;
    }
    if (!seed)
        seed = 1; /* 0 is a fixed point of the generator */

    static uint32_t sizes[TABLE], lives[TABLE];
    for (int i = 0; i < TABLE; i++) {
        double u = (TABLE - i - 0.5) / TABLE; /* upper quantile, (0, 1) */
        double s = 16.0 * pow(u, -1.0 / 1.1);
        double l = pow(u, -1.0 / 0.5);
        sizes[i] = s > 262144.0 ? 262144u : (uint32_t)s;
        lives[i] = l >= (double)(max_life - 1) ? (uint32_t)(max_life - 1) : (uint32_t)l;
        if (lives[i] < 1)
            lives[i] = 1;
    }

    void **wheel = calloc(max_life, sizeof *wheel);
    if (!wheel)
        bench_die("calloc");
    bench_touch(wheel, max_life * sizeof *wheel);
    uint64_t ops = 0;
    double t0 = bench_now();
    bench_loop(wheel, (uint32_t)(max_life - 1), steps, sizes, lives, seed, &ops);
    double t1 = bench_now();

    for (uint64_t i = 0; i < max_life; i++) {
        void *p = wheel[i];
        while (p) {
            void *next = *(void **)p;
            free(p);
            p = next;
        }
    }
    free(wheel);

    char params[96];
    snprintf(params, sizeof params, "ops=%llu steps=%llu max_life=%llu", (unsigned long long)ops,
             (unsigned long long)steps, (unsigned long long)max_life);
    bench_report((double)ops, t1 - t0, params);
    return 0;
}
