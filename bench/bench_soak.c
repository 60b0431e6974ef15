/* bench/bench_soak.c: long-running steady state.
 *
 *   bench_soak [seconds] [warmup_s] [interval_ms] [ws] [seed]
 *                                               (60 10 1000 16384 1234567)
 *
 * The random-mixed pattern over ws slots for `seconds` seconds, with a
 * stationary size mix: 16..1039 bytes mostly, 1..17 KiB one time in 64,
 * 64..320 KiB one time in 2048. The working set is steady (about ws/2 live
 * objects of the same size distribution from start to end), so a process
 * whose Rss still grows after the warm-up is drifting: fragmentation,
 * leaked caches, or a release policy that never settles.
 *
 * Every interval_ms it prints, reading smaps_rollup without allocating:
 *   sample t=SECONDS rss=KiB lazyfree=KiB ops=N
 * and at the end:
 *   Soak warmup Rss = N KiB end Rss = N KiB drift = P %
 * where the warm-up reading is the first sample at or after warmup_s and the
 * end reading the last sample. The clock is read every 1024 ops.
 */
#include "bench_common.h"

int main(int argc, char **argv)
{
    bench_init();
    uint64_t seconds = bench_arg(argc, argv, 1, 60);
    uint64_t warmup = bench_arg(argc, argv, 2, 10);
    uint64_t interval_ms = bench_arg(argc, argv, 3, 1000);
    uint64_t ws = bench_arg(argc, argv, 4, 16384);
    uint32_t x = (uint32_t)bench_arg(argc, argv, 5, 1234567);
    if (ws < 1 || ws > (1u << 24) || interval_ms < 1 || seconds < 1) {
        fprintf(stderr, "%s: bad arguments\n", argv[0]);
        return 2;
    }
    if (warmup >= seconds)
        warmup = seconds / 2;
    if (!x)
        x = 1;
    char **slots = calloc(ws, sizeof *slots);
    if (!slots)
        bench_die("calloc");

    double t0 = bench_now(), next = t0 + (double)interval_ms / 1000.0;
    double end = t0 + (double)seconds;
    long rss_warm = -1, rss_last = -1, lazy;
    uint64_t ops = 0;
    for (;;) {
        for (int k = 0; k < 1024; k++) {
            uint32_t r = bench_xs32(&x);
            uint64_t s = r % ws;
            if (slots[s]) {
                free(slots[s]);
                slots[s] = NULL;
            } else {
                size_t sz;
                uint32_t sel = r >> 21; /* 11 bits */
                if (sel == 0)
                    sz = (64u << 10) + ((size_t)(r & 0x3FFFF));
                else if ((sel & 63) == 0)
                    sz = 1024 + (size_t)(r & 0x3FFF);
                else
                    sz = 16 + (r & 0x3FF);
                char *p = malloc(sz);
                if (!p)
                    bench_die("malloc");
                p[0] = (char)r;
                slots[s] = p;
            }
        }
        ops += 1024;
        double now = bench_now();
        if (now >= next || now >= end) {
            bench_smaps(&rss_last, &lazy);
            double t = now - t0;
            if (rss_warm < 0 && t >= (double)warmup)
                rss_warm = rss_last;
            printf("sample t=%.3f rss=%ld lazyfree=%ld ops=%llu\n", t, rss_last,
                   lazy, (unsigned long long)ops);
            while (next <= now)
                next += (double)interval_ms / 1000.0;
        }
        if (now >= end)
            break;
    }
    double t1 = bench_now();
    printf("Soak warmup Rss = %ld KiB end Rss = %ld KiB drift = %.2f %%\n",
           rss_warm, rss_last,
           rss_warm > 0 ? 100.0 * (double)(rss_last - rss_warm) / (double)rss_warm : 0.0);

    for (uint64_t i = 0; i < ws; i++)
        free(slots[i]);
    free(slots);

    char params[128];
    snprintf(params, sizeof params, "ops=%llu ws=%llu seconds=%llu",
             (unsigned long long)ops, (unsigned long long)ws,
             (unsigned long long)seconds);
    bench_report((double)ops, t1 - t0, params);
    return 0;
}
