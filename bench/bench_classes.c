/* bench/bench_classes.c: many size classes, up to 64 KiB, in random order.
 *
 *   bench_classes [ops] [ws] [max_size] [seed]      (4000000 4096 65536 1234567)
 *
 * The random-mixed pattern (a full slot is freed, an empty one gets a new
 * block) over ws slots, with sizes spread over every size class up to
 * max_size: a power of two 2^e with e uniform in 4..log2(max_size)-1,
 * plus a uniform part below it (16..31, 32..63, ..., 32768..65535 bytes:
 * each octave as likely as the next, so the small classes and the big
 * ones all see traffic, and every class is live at once). Blocks are
 * allocated and freed in random order. Each new block gets its first
 * byte, one byte in every 4 KiB and its last byte written (what a program
 * that uses its block touches; a fill of the whole block would be most of
 * the time). One op is one malloc or one free; the slots still full at the
 * end are freed after the clock stops and are not counted. The loop is
 * bench_loop.
 */
#include "bench_common.h"

#define CLASSES_TOUCH 4096u

void bench_loop(void **slots, uint64_t ops, uint32_t ws, unsigned octaves, uint32_t seed);

__attribute__((noinline)) void bench_loop(void **slots, uint64_t ops, uint32_t ws, unsigned octaves,
                                          uint32_t seed)
{
    uint32_t x = seed;
    for (uint64_t i = 0; i < ops; i++) {
        uint32_t r = bench_xs32(&x);
        uint32_t s = r % ws;
        if (slots[s]) {
            free(slots[s]);
            slots[s] = NULL;
            continue;
        }
        uint32_t r2 = bench_xs32(&x);
        size_t base = (size_t)16 << (r2 % octaves);
        size_t sz = base + (size_t)(r2 >> 8) % base;
        char *p = malloc(sz);
        if (__builtin_expect(p == NULL, 0))
            bench_die("malloc");
        for (size_t off = 0; off < sz; off += CLASSES_TOUCH)
            p[off] = (char)r2;
        p[sz - 1] = (char)r2;
        slots[s] = p;
    }
}

int main(int argc, char **argv)
{
    bench_init();
    uint64_t ops = bench_arg(argc, argv, 1, 4000000ULL);
    uint64_t ws = bench_arg(argc, argv, 2, 4096);
    uint64_t max_size = bench_arg(argc, argv, 3, 65536);
    uint32_t seed = (uint32_t)bench_arg(argc, argv, 4, 1234567);
    if (ws < 1 || ws > (1u << 24)) {
        fprintf(stderr, "%s: ws must be 1..2^24\n", argv[0]);
        return 2;
    }
    if (max_size < 32 || max_size > (1u << 24)) {
        fprintf(stderr, "%s: max_size must be 32..16777216\n", argv[0]);
        return 2;
    }
    /* Octaves 16..31, 32..63, ... whose top stays below max_size. */
    unsigned octaves = 0;
    while (((uint64_t)32 << octaves) <= max_size)
        octaves++;
    if (!seed)
        seed = 1; /* 0 is a fixed point of xorshift */
    void **slots = calloc(ws, sizeof *slots);
    if (!slots)
        bench_die("calloc");
    bench_touch(slots, ws * sizeof *slots);

    double t0 = bench_now();
    bench_loop(slots, ops, (uint32_t)ws, octaves, seed);
    double t1 = bench_now();

    bench_free_slots(slots, ws);

    char params[128];
    snprintf(params, sizeof params, "ops=%llu ws=%llu max_size=%llu octaves=%u",
             (unsigned long long)ops, (unsigned long long)ws, (unsigned long long)max_size, octaves);
    bench_report((double)ops, t1 - t0, params);
    return 0;
}
