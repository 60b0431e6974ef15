/* hk_loop: helper of t_lean_hysteresis.sh. Allocates MIB MiB of 256-byte
 * blocks and frees them all, ROUNDS times; then sleeps SLEEP_S seconds and
 * does one more round. After each round it prints the LEAN counters, read
 * from the preloaded library with dlsym (no link-time dependency). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hakmem.h"

typedef int (*stats_fn)(struct hakmem_stats *, size_t);

static void report(stats_fn get, const char *label)
{
    struct hakmem_stats st;
    if (get(&st, sizeof st) != 0) {
        fprintf(stderr, "hakmem_stats_get failed\n");
        exit(99);
    }
    printf("%s lean_mode=%llu stats=%llu decommit=%llu madvise=%llu\n", label, (unsigned long long)st.lean_mode,
           (unsigned long long)st.stats_built_in, (unsigned long long)st.lean_decommit,
           (unsigned long long)st.madvise_calls);
}

static void one_round(void **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        v[i] = malloc(256);
        if (!v[i]) {
            fprintf(stderr, "malloc failed\n");
            exit(99);
        }
        memset(v[i], (int)(i & 0xff), 256);
    }
    for (size_t i = 0; i < n; i++) {
        if (((unsigned char *)v[i])[255] != (unsigned char)(i & 0xff)) {
            fprintf(stderr, "block %zu corrupted\n", i);
            exit(1);
        }
        free(v[i]);
    }
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 32;
    int rounds = argc > 2 ? atoi(argv[2]) : 6;
    int sleep_s = argc > 3 ? atoi(argv[3]) : 3;
    stats_fn get = (stats_fn)dlsym(RTLD_DEFAULT, "hakmem_stats_get");
    if (!get) {
        fprintf(stderr, "hakmem is not loaded\n");
        return 99;
    }
    size_t n = mib * 1024 * 1024 / 256;
    void **v = calloc(n, sizeof *v);
    if (!v)
        return 99;
    char label[32];
    for (int r = 0; r < rounds; r++) {
        one_round(v, n);
        snprintf(label, sizeof label, "round=%d", r);
        report(get, label);
    }
    sleep((unsigned)sleep_s);
    one_round(v, n);
    report(get, "after-idle");
    free(v);
    return 0;
}
