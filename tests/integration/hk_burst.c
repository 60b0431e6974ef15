/* hk_burst.c: a program that frees a 256 MiB burst and then sleeps, for
 * t_purge.sh. `hk_burst LIMIT_MS SLACK_KB`:
 *  1. base: Rss - LazyFree (pages given back with MADV_FREE still show in
 *     Rss until the kernel needs them; they are not the program's);
 *  2. the burst: 128 MiB of blocks of 16..4048 bytes (64 size classes)
 *     and 128 blocks of 1 MiB, every page written; then all freed (each
 *     class keeps a slab, in superslabs whose other slabs were touched);
 *  3. sleeps in steps of 50 ms, making no allocator call, until Rss -
 *     LazyFree is within SLACK_KB of the base or LIMIT_MS have passed;
 *  4. one allocator call (a 1 MiB block allocated and freed), and Rss
 *     again.
 * Prints base_kb, peak_kb, idle_kb (at the end of step 3), reached_ms (-1
 * if never), called_kb (after step 4), threads (in /proc/self/task at the
 * end of step 3). Steps 3 and 4 read /proc with open/read only. */
#include "hk_test.h"

#include <fcntl.h>
#include <sys/syscall.h>

#define SMALL_BYTES ((size_t)128 << 20)
#define NSMALL 70000 /* more than 128 MiB / the mean size */
#define NLARGE 128
static void *g_small[NSMALL], *g_large[NLARGE];
static char g_buf[8192];

/* A field of /proc/self/smaps_rollup in KiB, or -1. */
static long field_kb(const char *text, const char *name)
{
    const char *p = strstr(text, name);
    if (!p)
        return -1;
    p += strlen(name);
    while (*p == ' ' || *p == ':' || *p == '\t')
        p++;
    long v = 0;
    while (*p >= '0' && *p <= '9')
        v = v * 10 + (*p++ - '0');
    return v;
}

static long resident_kb(void)
{
    int fd = open("/proc/self/smaps_rollup", O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, g_buf, sizeof g_buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    g_buf[n] = '\0';
    long rss = field_kb(g_buf, "\nRss"), lazy = field_kb(g_buf, "\nLazyFree");
    return rss < 0 ? -1 : rss - (lazy > 0 ? lazy : 0);
}

/* Entries of /proc/self/task, without opendir (which allocates). */
static int threads(void)
{
    int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY);
    int n = 0;
    if (fd < 0)
        return -1;
    for (;;) {
        long r = syscall(SYS_getdents64, fd, g_buf, sizeof g_buf);
        if (r <= 0)
            break;
        for (long off = 0; off < r;) {
            unsigned short reclen = *(unsigned short *)(g_buf + off + 16);
            const char *name = g_buf + off + 19;
            if (name[0] != '.')
                n++;
            off += reclen;
        }
    }
    close(fd);
    return n;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    hk_require_preloaded();
    long limit_ms = atol(argv[1]), slack_kb = atol(argv[2]);
    long base = resident_kb();
    if (base < 0) {
        printf("SKIP: /proc/self/smaps_rollup unreadable\n");
        return HK_EXIT_SKIP;
    }
    size_t total = 0;
    int nsmall = 0;
    while (total < SMALL_BYTES && nsmall < NSMALL) {
        size_t sz = 16 + (size_t)(nsmall % 64) * 64;
        g_small[nsmall] = malloc(sz);
        if (!g_small[nsmall])
            hk_die("malloc(%zu) failed", sz);
        memset(g_small[nsmall++], 1, sz);
        total += sz;
    }
    for (int i = 0; i < NLARGE; i++) {
        g_large[i] = malloc(1 << 20);
        if (!g_large[i])
            hk_die("malloc(1 MiB) failed");
        memset(g_large[i], 1, 1 << 20);
    }
    long peak = resident_kb();
    for (int i = 0; i < nsmall; i++)
        free(g_small[i]);
    for (int i = 0; i < NLARGE; i++)
        free(g_large[i]);
    double t0 = hk_now();
    long idle = resident_kb(), reached = -1;
    for (;;) {
        long ms = (long)((hk_now() - t0) * 1000);
        if (idle <= base + slack_kb) {
            reached = ms;
            break;
        }
        if (ms >= limit_ms)
            break;
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
        idle = resident_kb();
    }
    int nthreads = threads();
    void *volatile p = malloc(1 << 20);
    free(p);
    long called = resident_kb();
    printf("base_kb=%ld peak_kb=%ld idle_kb=%ld reached_ms=%ld called_kb=%ld threads=%d\n", base, peak, idle,
           reached, called, nthreads);
    return 0;
}
