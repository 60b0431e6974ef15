/* bench/bench_random_mixed.c: the headline workload of the original design.
 *
 *   bench_random_mixed [cycles] [ws] [seed]     (10000000 8192 1234567)
 *
 * A working set of ws slots. Each cycle draws r from xorshift32; slot =
 * r % ws; a full slot is freed, an empty one gets malloc(16 + (r & 0x3FF))
 * (16..1039 bytes) and its first byte written. Only this loop is timed
 * (CLOCK_MONOTONIC); one cycle is one op. The slots still full afterwards
 * are drained (freed) outside the timed region and are not counted as ops.
 *
 * The loop lives in bench_loop(), a separate non-inlined function, so that
 * `valgrind --tool=callgrind --toggle-collect=bench_loop` counts the
 * instructions of the workload and nothing else (bench/harness.py instr).
 */
#include "bench_common.h"

void bench_loop(void **slots, uint64_t cycles, uint32_t ws, uint32_t seed);

__attribute__((noinline)) void bench_loop(void **slots, uint64_t cycles,
                                          uint32_t ws, uint32_t seed)
{
    uint32_t x = seed;
    for (uint64_t i = 0; i < cycles; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        uint32_t slot = x % ws;
        if (slots[slot]) {
            free(slots[slot]);
            slots[slot] = NULL;
        } else {
            char *p = malloc(16 + (x & 0x3FF));
            if (__builtin_expect(p == NULL, 0))
                bench_die("malloc");
            p[0] = (char)x;
            slots[slot] = p;
        }
    }
}

int main(int argc, char **argv)
{
    bench_init();
    uint64_t cycles = bench_arg(argc, argv, 1, 10000000ULL);
    uint64_t ws64 = bench_arg(argc, argv, 2, 8192);
    uint64_t seed64 = bench_arg(argc, argv, 3, 1234567);
    if (ws64 == 0 || ws64 > (1u << 28)) {
        fprintf(stderr, "%s: ws must be 1..2^28\n", argv[0]);
        return 2;
    }
    uint32_t ws = (uint32_t)ws64;
    uint32_t seed = (uint32_t)seed64 ? (uint32_t)seed64 : 1; /* 0 is a fixed point */

    void **slots = calloc(ws, sizeof *slots);
    if (!slots)
        bench_die("calloc");
    bench_touch(slots, ws * sizeof *slots);

    double t0 = bench_now();
    bench_loop(slots, cycles, ws, seed);
    double t1 = bench_now();

    bench_free_slots(slots, ws);

    char params[96];
    snprintf(params, sizeof params, "iter=%llu ws=%u",
             (unsigned long long)cycles, ws);
    bench_report((double)cycles, t1 - t0, params);
    return 0;
}
