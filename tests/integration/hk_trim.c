/* hk_trim: helper of t_lean_trim.sh. Fills SLABS slabs of 1 KiB blocks (64
 * blocks a slab), keeps one block alive at the start so the superslab stays
 * in use, frees the rest, and prints hakmem's committed bytes before and
 * after malloc_trim(0), and what malloc_trim returned. Reads the counters
 * through dlsym from the preloaded library. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hakmem.h"

typedef int (*stats_fn)(struct hakmem_stats *, size_t);

int main(int argc, char **argv)
{
    int slabs = argc > 1 ? atoi(argv[1]) : 10;
    stats_fn get = (stats_fn)dlsym(RTLD_DEFAULT, "hakmem_stats_get");
    if (!get) {
        fprintf(stderr, "hakmem is not loaded\n");
        return 99;
    }
    void *keep = malloc(1000);
    size_t n = (size_t)slabs * 64;
    void **v = calloc(n, sizeof *v);
    if (!keep || !v)
        return 99;
    for (size_t i = 0; i < n; i++) {
        v[i] = malloc(1000);
        if (!v[i])
            return 99;
        memset(v[i], 7, 1000);
    }
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    struct hakmem_stats a, b;
    get(&a, sizeof a);
    int r = malloc_trim(0);
    get(&b, sizeof b);
    printf("lean_mode=%llu committed_before=%llu committed_after=%llu trim=%d\n",
           (unsigned long long)a.lean_mode, (unsigned long long)a.bytes_committed,
           (unsigned long long)b.bytes_committed, r);
    free(keep);
    free(v);
    return 0;
}
