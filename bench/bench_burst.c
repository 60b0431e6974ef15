/* bench/bench_burst.c: burst-and-release.
 *
 *   bench_burst [MiB] [rounds] [pause_ms] [seed]      (256 2 200 1234567)
 *
 * Each round allocates MiB mebibytes of 16..1039-byte objects (the sizes of
 * bench_random_mixed), writes the first byte of each, then frees them all
 * in allocation order and sleeps pause_ms. Rss and LazyFree of the process
 * (/proc/self/smaps_rollup) are read before the first round, after each
 * round's allocations, and after each round's frees, with no allocator
 * call in between: the pointer array is mmap'ed and touched before the
 * first reading, stdout has a static buffer, smaps_rollup is read with
 * open/read. What an allocator gives back shows as the drop from the
 * "after-alloc" to the "after-free" Rss; MADV_FREE'd memory stays in Rss
 * and shows as LazyFree until the kernel reclaims it.
 *
 * Lines (besides bench_common.h's report):
 *   Burst before Rss = N KiB LazyFree = M KiB
 *   Burst round=R objects=K after-alloc Rss = N KiB after-free Rss = N KiB LazyFree = M KiB
 *   Burst after Rss = N KiB LazyFree = M KiB delta = D KiB
 * One op is one malloc or one free; the pauses are not timed.
 */
#include <sys/mman.h>

#include "bench_common.h"

int main(int argc, char **argv)
{
    bench_init();
    uint64_t mib = bench_arg(argc, argv, 1, 256);
    uint64_t rounds = bench_arg(argc, argv, 2, 2);
    uint64_t pause_ms = bench_arg(argc, argv, 3, 200);
    uint32_t seed = (uint32_t)bench_arg(argc, argv, 4, 1234567);
    if (!seed)
        seed = 1;
    uint64_t bytes = mib << 20;

    /* Count the objects first so that the pointer array can be touched
     * before the "before" reading. */
    uint64_t n = 0, sum = 0;
    uint32_t x = seed;
    while (sum < bytes) {
        sum += 16 + (bench_xs32(&x) & 0x3FF);
        n++;
    }
    size_t arr_bytes = (size_t)(n ? n : 1) * sizeof(void *);
    void **ptrs = mmap(NULL, arr_bytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ptrs == MAP_FAILED)
        bench_die("mmap");
    memset(ptrs, 0, arr_bytes);

    long rss0, lazy0, rss, lazy;
    bench_smaps(&rss0, &lazy0);
    printf("Burst before Rss = %ld KiB LazyFree = %ld KiB\n", rss0, lazy0);

    double timed = 0;
    for (uint64_t r = 1; r <= rounds; r++) {
        x = seed;
        double t0 = bench_now();
        for (uint64_t i = 0; i < n; i++) {
            uint32_t v = bench_xs32(&x);
            char *p = malloc(16 + (v & 0x3FF));
            if (!p)
                bench_die("malloc");
            p[0] = (char)v;
            ptrs[i] = p;
        }
        double t1 = bench_now();
        long rss_a, lazy_a;
        bench_smaps(&rss_a, &lazy_a);
        double t2 = bench_now();
        for (uint64_t i = 0; i < n; i++)
            free(ptrs[i]);
        double t3 = bench_now();
        timed += (t1 - t0) + (t3 - t2);
        bench_smaps(&rss, &lazy);
        printf("Burst round=%llu objects=%llu after-alloc Rss = %ld KiB "
               "after-free Rss = %ld KiB LazyFree = %ld KiB\n",
               (unsigned long long)r, (unsigned long long)n, rss_a, rss, lazy);
        if (pause_ms) {
            struct timespec ts = {(time_t)(pause_ms / 1000),
                                  (long)(pause_ms % 1000) * 1000000L};
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
                ;
        }
    }
    bench_smaps(&rss, &lazy);
    printf("Burst after Rss = %ld KiB LazyFree = %ld KiB delta = %ld KiB\n",
           rss, lazy, rss - rss0);
    munmap(ptrs, arr_bytes);

    char params[128];
    snprintf(params, sizeof params, "ops=%llu mib=%llu rounds=%llu",
             (unsigned long long)(2 * n * rounds), (unsigned long long)mib,
             (unsigned long long)rounds);
    bench_report((double)(2 * n * rounds), timed, params);
    return 0;
}
