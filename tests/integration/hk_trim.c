/* hk_trim: helper of t_lean_trim.sh. Fills SLABS slabs of 1 KiB blocks (64
 * blocks a slab), keeps one block alive at the start so the superslab stays
 * in use, frees the rest, and then, by MODE:
 *   trim  calls malloc_trim(0) at once and prints what it returned;
 *   wait  calls nothing but a tiny malloc/free every 50 ms, as a program
 *         that goes on working at a slow pace does, for up to WAIT_MS
 *         (default 3000) or until the freed slabs are given back.
 * It prints hakmem's committed bytes and the process's Rss (KiB) before the
 * fill (base), after it (filled), after the frees (freed) and at the end
 * (after). The counters come from the preloaded library through dlsym;
 * Rss is read with open/read, so that measuring calls no malloc. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hakmem.h"

typedef int (*stats_fn)(struct hakmem_stats *, size_t);
static stats_fn get;

/* Resident pages of this process in KiB, from /proc/self/statm. */
static long rss_kb(void)
{
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *sp = strchr(buf, ' ');
    if (!sp)
        return -1;
    return strtol(sp + 1, NULL, 10) * (sysconf(_SC_PAGESIZE) / 1024);
}

static unsigned long long committed(void)
{
    struct hakmem_stats st;
    if (get(&st, sizeof st) != 0) {
        fprintf(stderr, "hakmem_stats_get failed\n");
        exit(99);
    }
    return (unsigned long long)st.bytes_committed;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

int main(int argc, char **argv)
{
    int slabs = argc > 1 ? atoi(argv[1]) : 10;
    const char *mode = argc > 2 ? argv[2] : "trim";
    int wait_ms = argc > 3 ? atoi(argv[3]) : 3000;
    struct hakmem_stats st;
    get = (stats_fn)dlsym(RTLD_DEFAULT, "hakmem_stats_get");
    if (!get || (strcmp(mode, "trim") != 0 && strcmp(mode, "wait") != 0)) {
        fprintf(stderr, get ? "usage: hk_trim SLABS trim|wait [WAIT_MS]\n" : "hakmem is not loaded\n");
        return 99;
    }
    void *keep = malloc(1000);
    size_t n = (size_t)slabs * 64;
    void **v = calloc(n, sizeof *v);
    if (!keep || !v)
        return 99;
    unsigned long long c_base = committed();
    long r_base = rss_kb();
    for (size_t i = 0; i < n; i++) {
        v[i] = malloc(1000);
        if (!v[i])
            return 99;
        memset(v[i], 7, 1000);
    }
    unsigned long long c_filled = committed();
    long r_filled = rss_kb();
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    unsigned long long c_freed = committed();
    long r_freed = rss_kb();
    int trim = -1;
    double waited = 0;
    if (strcmp(mode, "trim") == 0) {
        trim = malloc_trim(0);
    } else {
        /* Stop early once most of the slabs went back (eight of ten: the
         * bound t_lean_trim.sh checks), so a fixed allocator costs the test
         * a fraction of WAIT_MS. */
        unsigned long long goal = (unsigned long long)(slabs - slabs / 5) * 65536;
        double t0 = now_ms();
        while (c_freed - (committed() < c_freed ? committed() : c_freed) < goal && now_ms() - t0 < wait_ms) {
            usleep(50000);
            void *p = malloc(16);
            if (!p)
                return 99;
            memset(p, 1, 16);
            free(p);
        }
        waited = now_ms() - t0;
    }
    unsigned long long c_after = committed();
    long r_after = rss_kb();
    get(&st, sizeof st);
    printf("lean_mode=%llu mode=%s trim=%d waited_ms=%.0f\n", (unsigned long long)st.lean_mode, mode, trim, waited);
    printf("committed_base=%llu committed_filled=%llu committed_freed=%llu committed_after=%llu\n", c_base,
           c_filled, c_freed, c_after);
    printf("rss_base_kb=%ld rss_filled_kb=%ld rss_freed_kb=%ld rss_after_kb=%ld\n", r_base, r_filled, r_freed,
           r_after);
    free(keep);
    free(v);
    return 0;
}
