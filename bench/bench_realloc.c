/* bench/bench_realloc.c: realloc growth.
 *
 *   bench_realloc [ops] [ws] [max_kib] [seed]       (2000000 256 1024 1234567)
 *
 * ws buffers grow by realloc, interleaved at random. Each op draws r and
 * slot = r % ws:
 *   empty slot: malloc 16..79 bytes; the slot gets a target size, 1..64 KiB
 *               for an "appending" buffer (grows by 16..79 bytes a step, as
 *               a string builder does) or 64 KiB..max_kib for a "doubling"
 *               buffer (grows by 1.5x a step, as a vector does);
 *   below target: realloc to the next size, write the new last byte;
 *   at target:  check the first byte survived, free.
 * One op is one malloc, realloc or free. Live buffers are freed after the
 * timed region.
 */
#include "bench_common.h"

struct buf {
    char *p;
    size_t size;
    size_t target;
    int doubling;
};

int main(int argc, char **argv)
{
    bench_init();
    uint64_t ops = bench_arg(argc, argv, 1, 2000000);
    uint64_t ws = bench_arg(argc, argv, 2, 256);
    uint64_t max_kib = bench_arg(argc, argv, 3, 1024);
    uint32_t x = (uint32_t)bench_arg(argc, argv, 4, 1234567);
    if (ws < 1 || ws > (1u << 24) || max_kib < 64) {
        fprintf(stderr, "%s: ws must be 1..2^24, max_kib >= 64\n", argv[0]);
        return 2;
    }
    if (!x)
        x = 1;
    size_t max_bytes = (size_t)max_kib << 10;
    struct buf *b = calloc(ws, sizeof *b);
    if (!b)
        bench_die("calloc");

    double t0 = bench_now();
    for (uint64_t i = 0; i < ops; i++) {
        uint32_t r = bench_xs32(&x);
        struct buf *s = &b[r % ws];
        uint32_t r2 = bench_xs32(&x);
        if (!s->p) {
            s->size = 16 + (r2 & 63);
            s->p = malloc(s->size);
            if (!s->p)
                bench_die("malloc");
            s->p[0] = (char)0x5a;
            s->doubling = (r2 >> 6) & 1;
            if (s->doubling)
                s->target = 65536 + (size_t)(r2 >> 7) % (max_bytes - 65536 + 1);
            else
                s->target = 1024 + (size_t)(r2 >> 7) % (65536 - 1024 + 1);
        } else if (s->size < s->target) {
            size_t ns = s->doubling ? s->size + s->size / 2 : s->size + 16 + (r2 & 63);
            if (ns > s->target)
                ns = s->target;
            char *np = realloc(s->p, ns);
            if (!np)
                bench_die("realloc");
            np[ns - 1] = (char)r2;
            s->p = np;
            s->size = ns;
        } else {
            if (s->p[0] != (char)0x5a)
                bench_die("realloc content check");
            free(s->p);
            s->p = NULL;
        }
    }
    double t1 = bench_now();

    for (uint64_t i = 0; i < ws; i++)
        free(b[i].p);
    free(b);

    char params[128];
    snprintf(params, sizeof params, "ops=%llu ws=%llu max_kib=%llu",
             (unsigned long long)ops, (unsigned long long)ws,
             (unsigned long long)max_kib);
    bench_report((double)ops, t1 - t0, params);
    return 0;
}
