/* bench/bench_large.c: large objects, 64 KiB to 8 MiB.
 *
 *   bench_large [ops] [ws] [seed]                   (200000 32 1234567)
 *
 * The random-mixed pattern (a full slot is freed, an empty one allocated)
 * over ws slots with sizes drawn log-uniformly: 64 KiB << k (k = 0..7)
 * plus a random part below that, capped at 8 MiB. Each new object gets
 * one byte written every 64 KiB and at its last byte, so an allocator that
 * hands back fresh pages pays page faults on every reuse and one that
 * caches them does not (the Page faults figure shows which). One op is one
 * malloc or one free.
 */
#include "bench_common.h"

#define LARGE_MIN (64u << 10)
#define LARGE_MAX (8u << 20)
#define TOUCH_STRIDE (64u << 10)

int main(int argc, char **argv)
{
    bench_init();
    uint64_t ops = bench_arg(argc, argv, 1, 200000);
    uint64_t ws = bench_arg(argc, argv, 2, 32);
    uint32_t x = (uint32_t)bench_arg(argc, argv, 3, 1234567);
    if (ws < 1 || ws > (1u << 20)) {
        fprintf(stderr, "%s: ws must be 1..2^20\n", argv[0]);
        return 2;
    }
    if (!x)
        x = 1;
    char **slots = calloc(ws, sizeof *slots);
    if (!slots)
        bench_die("calloc");

    double t0 = bench_now();
    for (uint64_t i = 0; i < ops; i++) {
        uint32_t r = bench_xs32(&x);
        uint64_t s = r % ws;
        if (slots[s]) {
            free(slots[s]);
            slots[s] = NULL;
        } else {
            uint32_t r2 = bench_xs32(&x);
            size_t base = (size_t)LARGE_MIN << (r2 & 7);
            size_t sz = base + (size_t)(r2 >> 3) % base;
            if (sz > LARGE_MAX)
                sz = LARGE_MAX;
            char *p = malloc(sz);
            if (!p)
                bench_die("malloc");
            for (size_t off = 0; off < sz; off += TOUCH_STRIDE)
                p[off] = (char)r2;
            p[sz - 1] = (char)r2;
            slots[s] = p;
        }
    }
    double t1 = bench_now();

    for (uint64_t i = 0; i < ws; i++)
        free(slots[i]);
    free(slots);

    char params[96];
    snprintf(params, sizeof params, "ops=%llu ws=%llu",
             (unsigned long long)ops, (unsigned long long)ws);
    bench_report((double)ops, t1 - t0, params);
    return 0;
}
