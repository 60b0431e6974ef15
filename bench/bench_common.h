/* bench/bench_common.h: helpers shared by the benchmark programs.
 *
 * Owns: the clock, argument parsing, reading /proc/self/smaps_rollup and
 * getrusage, and the report lines that bench/harness.py parses:
 *
 *   Throughput = N ops/s [k=v ...] time=T s
 *   Peak RSS = N KiB Page faults = M minor
 *   End Rss = N KiB LazyFree = M KiB AnonHugePages = H KiB
 *
 * Must not allocate through malloc: the burst workload reads smaps_rollup
 * right after freeing, and any allocator call there would disturb what it
 * measures. stdout gets a static buffer (bench_init) so that stdio never
 * asks the allocator for one; /proc files are read with open/read into a
 * static buffer and parsed by hand.
 *
 * Peak RSS is VmHWM (see bench_peak_rss), page faults are getrusage's
 * ru_minflt (minor faults of the whole process, all threads).
 */
#ifndef HAKMEM_BENCH_COMMON_H
#define HAKMEM_BENCH_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static char bench_stdout_buf[16384];

/* Call first in main: line-buffered stdout in a static buffer. */
static inline void bench_init(void)
{
    setvbuf(stdout, bench_stdout_buf, _IOLBF, sizeof bench_stdout_buf);
}

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Unsigned argument argv[i], or def when absent; exits 2 on a bad value. */
/* Write one byte of every page of the benchmark's own array (n bytes at p)
 * before the clock starts. Some allocators clear a large calloc at once
 * (its pages fault then, before the timed loop), others hand out fresh
 * zero pages and the faults come when the loop first reads and writes
 * them (two per page: the zero page, then the copy). The array is the
 * benchmark's, not the workload's: its first touches belong to no
 * allocator's timed work. (Every fault still counts in "Page faults".) */
static inline void bench_touch(void *p, size_t n)
{
    for (size_t i = 0; i < n; i += 4096)
        ((volatile char *)p)[i] = 0;
}

static inline unsigned long long bench_arg(int argc, char **argv, int i,
                                           unsigned long long def)
{
    if (i >= argc)
        return def;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(argv[i], &end, 0);
    if (errno || end == argv[i] || *end != '\0') {
        fprintf(stderr, "%s: bad argument %d: '%s'\n", argv[0], i, argv[i]);
        exit(2);
    }
    return v;
}

static inline void bench_die(const char *what)
{
    fprintf(stderr, "bench: %s failed\n", what);
    fflush(stdout);
    _exit(3);
}

/* Value in kB of the smaps field named key (with its leading "\n" and the
 * trailing ':'), or -1 when absent. */
static inline long bench_smaps_field(const char *buf, const char *key)
{
    const char *p = strstr(buf, key);
    if (!p)
        return -1;
    p += strlen(key);
    while (*p == ' ' || *p == '\t')
        p++;
    long v = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (*p - '0');
        p++;
        digits++;
    }
    return digits ? v : -1;
}

/* Reads a /proc file into a static buffer with open/read (no allocator
 * call). Returns the buffer, empty when unreadable. Not thread-safe: call
 * from one thread. */
static inline const char *bench_read_proc(const char *path)
{
    static char buf[8192];
    size_t n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        while (n < sizeof buf - 1) {
            ssize_t r = read(fd, buf + n, sizeof buf - 1 - n);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            n += (size_t)r;
        }
        close(fd);
    }
    buf[n] = '\0';
    return buf;
}

/* Rss and LazyFree of the whole process in KiB (-1 when unknown). */
static inline int bench_smaps(long *rss_kib, long *lazyfree_kib)
{
    const char *buf = bench_read_proc("/proc/self/smaps_rollup");
    *rss_kib = bench_smaps_field(buf, "\nRss:");
    *lazyfree_kib = bench_smaps_field(buf, "\nLazyFree:");
    return *rss_kib < 0 ? -1 : 0;
}

/* Peak RSS in KiB of this program: VmHWM of /proc/self/status, the high
 * water mark of this address space. getrusage's ru_maxrss is the fallback
 * only: Linux carries the pre-exec high water mark of the launching process
 * across execve, so a small program started by a big one (vfork + exec from
 * Python, say) reports its launcher's peak instead of its own. */
static inline long bench_peak_rss(const struct rusage *ru)
{
    long v = bench_smaps_field(bench_read_proc("/proc/self/status"), "\nVmHWM:");
    return v > 0 ? v : (long)ru->ru_maxrss;
}

/* The three report lines. params is printed inside the brackets. */
static inline void bench_report(double ops, double secs, const char *params)
{
    struct rusage ru;
    long rss, lazy;
    getrusage(RUSAGE_SELF, &ru);
    long peak = bench_peak_rss(&ru);
    bench_smaps(&rss, &lazy);
    /* Transparent huge pages still mapped (thp:1, or an allocator that
     * asks for them): what the few faults of such a run cost in Rss. */
    long huge = bench_smaps_field(bench_read_proc("/proc/self/smaps_rollup"), "\nAnonHugePages:");
    printf("Throughput = %.0f ops/s [%s] time=%.6f s\n",
           secs > 0 ? ops / secs : 0.0, params, secs);
    printf("Peak RSS = %ld KiB Page faults = %ld minor\n",
           peak, (long)ru.ru_minflt);
    printf("End Rss = %ld KiB LazyFree = %ld KiB AnonHugePages = %ld KiB\n", rss, lazy, huge);
    fflush(stdout);
}

/* After the clock stops: free the blocks still in the n slots, then the
 * slot array itself (not counted as ops). */
static inline void bench_free_slots(void **slots, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(slots[i]);
    free(slots);
}

/* xorshift32 (13, 17, 5): the original benchmark's generator. Never 0. */
static inline uint32_t bench_xs32(uint32_t *x)
{
    uint32_t v = *x;
    v ^= v << 13;
    v ^= v >> 17;
    v ^= v << 5;
    return *x = v;
}

#endif /* HAKMEM_BENCH_COMMON_H */
