/* hk_test.h: helpers shared by the integration tests.
 *
 * The integration tests run with a hakmem library in LD_PRELOAD (see
 * tests/run-variant). A test that silently ran against glibc's malloc would
 * pass for the wrong reason, so every program starts with
 * hk_require_preloaded(): it finds hakmem's API through dlsym(RTLD_DEFAULT)
 * (the programs do not link against hakmem), checks that malloc itself
 * resolves into the preloaded file and that the variant is the one the
 * driver asked for.
 *
 * Header-only (static functions) so that each test is one .c file.
 */
#ifndef HK_TEST_H
#define HK_TEST_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hakmem.h"

/* Exit status the automake harness reads as "skipped" / "hard error". */
#define HK_EXIT_SKIP 77
#define HK_EXIT_HARD 99

typedef const char *(*hk_str_fn)(void);
typedef int (*hk_owns_fn)(const void *);
typedef int (*hk_stats_fn)(struct hakmem_stats *, size_t);

__attribute__((unused, format(printf, 1, 2), noreturn))
static void hk_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("FAIL: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* The variant the driver asked for ("fast", "lean", "debug"); "fast" when
 * the program is run by hand without the driver. */
__attribute__((unused))
static const char *hk_variant(void)
{
    const char *v = getenv("HAKMEM_TEST_VARIANT");
    return (v && *v) ? v : "fast";
}

__attribute__((unused))
static int hk_is_debug(void)
{
    return strcmp(hk_variant(), "debug") == 0;
}

/* Path of the preloaded library as the driver gave it (may be NULL when
 * run by hand). */
__attribute__((unused))
static const char *hk_expected_lib(void)
{
    const char *p = getenv("HAKMEM_TEST_LIB");
    return (p && *p) ? p : NULL;
}

/* Does the symbol `name` (looked up in the global scope) live in the file
 * `lib`? Compares canonical paths, so a relative LD_PRELOAD still matches. */
__attribute__((unused))
static int hk_symbol_in_lib(const char *name, const char *lib, char *where, size_t wsz)
{
    void *sym = dlsym(RTLD_DEFAULT, name);
    Dl_info info;
    char a[PATH_MAX], b[PATH_MAX];

    if (where && wsz)
        snprintf(where, wsz, "%s", "(not found)");
    if (!sym)
        return 0;
    if (!dladdr(sym, &info) || !info.dli_fname)
        return 0;
    if (where && wsz)
        snprintf(where, wsz, "%s", info.dli_fname);
    if (!realpath(info.dli_fname, a) || !realpath(lib, b))
        return 0;
    return strcmp(a, b) == 0;
}

/* Abort the test program (exit 99, a hard error) unless hakmem is really
 * the allocator in use. */
__attribute__((unused))
static void hk_require_preloaded(void)
{
    hk_str_fn variant = (hk_str_fn)(uintptr_t)dlsym(RTLD_DEFAULT, "hakmem_variant");
    hk_owns_fn owns = (hk_owns_fn)(uintptr_t)dlsym(RTLD_DEFAULT, "hakmem_owns");
    const char *lib = hk_expected_lib();
    char where[PATH_MAX + 32];
    void *p;

    /* For debugging the tests themselves against glibc, by hand only:
     * tests/run-variant always unsets this. */
    if (getenv("HAKMEM_TEST_ALLOW_GLIBC") && !variant)
        return;
    if (!variant || !owns) {
        fprintf(stderr, "hard error: hakmem is not loaded (hakmem_variant/hakmem_owns "
                        "not found); LD_PRELOAD=%s\n",
                getenv("LD_PRELOAD") ? getenv("LD_PRELOAD") : "(unset)");
        exit(HK_EXIT_HARD);
    }
    if (strcmp(variant(), hk_variant()) != 0) {
        fprintf(stderr, "hard error: preloaded variant is '%s', expected '%s'\n",
                variant(), hk_variant());
        exit(HK_EXIT_HARD);
    }
    if (lib && !hk_symbol_in_lib("malloc", lib, where, sizeof where)) {
        fprintf(stderr, "hard error: malloc resolves to %s, not to %s\n", where, lib);
        exit(HK_EXIT_HARD);
    }
    /* The final proof: a block from malloc is one hakmem owns. */
    p = malloc(24);
    if (!p || !owns(p)) {
        fprintf(stderr, "hard error: malloc(24)=%p is not owned by hakmem\n", p);
        exit(HK_EXIT_HARD);
    }
    free(p);
}

/* hakmem_owns() through dlsym, usable from tests that do not link hakmem. */
__attribute__((unused))
static int hk_owns(const void *p)
{
    static hk_owns_fn owns;
    if (!owns)
        owns = (hk_owns_fn)(uintptr_t)dlsym(RTLD_DEFAULT, "hakmem_owns");
    return owns ? owns(p) : -1;
}

/* hakmem_stats_get() through dlsym; returns 0 on success. */
__attribute__((unused))
static int hk_stats(struct hakmem_stats *st)
{
    static hk_stats_fn get;
    if (!get)
        get = (hk_stats_fn)(uintptr_t)dlsym(RTLD_DEFAULT, "hakmem_stats_get");
    memset(st, 0, sizeof *st);
    return get ? get(st, sizeof *st) : -1;
}

/* LEAN's budget in bytes as the column set it (HAKMEM_SS_MEM_LEAN_TARGET_MB,
 * default 10 MiB); meaningful only while LEAN is active. */
__attribute__((unused))
static size_t hk_lean_budget_bytes(void)
{
    const char *e = getenv("HAKMEM_SS_MEM_LEAN_TARGET_MB");
    long mb = (e && *e) ? atol(e) : 10;
    return mb > 0 ? (size_t)mb << 20 : 0;
}

/* The gauges a program's end state is judged by, on one line. */
__attribute__((unused))
static int hk_gauges_str(const struct hakmem_stats *s, char *buf, size_t n)
{
    return snprintf(buf, n,
                    "ss_live=%llu ss_cached=%llu ss_decommitted=%llu large_live=%llu "
                    "large_cached_bytes=%llu bytes_committed=%llu bytes_mapped=%llu",
                    (unsigned long long)s->ss_live, (unsigned long long)s->ss_cached,
                    (unsigned long long)s->ss_decommitted, (unsigned long long)s->large_live,
                    (unsigned long long)s->large_cached_bytes, (unsigned long long)s->bytes_committed,
                    (unsigned long long)s->bytes_mapped);
}

/* Slack of the end-state check: a couple of superslabs and a few MiB stay
 * for what the program itself (stdio, Check's bookkeeping, the calling
 * thread's current slabs) still holds. Far below what one leaked thread
 * heap per thread or one lost superslab per round would add up to. */
#define HK_SS_BYTES ((size_t)2 << 20) /* one superslab (README) */
#define HK_END_SS_SLACK 2
#define HK_END_COMMITTED_SLACK ((uint64_t)4 << 20)

/* End state after a stress phase: everything the phase allocated has been
 * freed, its threads joined, and malloc_trim(0) called. Then the memory
 * must be back where it was before the phase (`base`, taken at its
 * start): no large block alive beyond the baseline, superslabs in use back
 * to about the baseline, committed bytes within a few MiB of it. Returns 1
 * if so; 0 with both gauge lines in msg otherwise. */
__attribute__((unused))
static int hk_end_state_ok(const struct hakmem_stats *base, char *msg, size_t n)
{
    struct hakmem_stats now;
    char a[320], b[320];
    if (hk_stats(&now) != 0) {
        snprintf(msg, n, "hakmem_stats_get failed");
        return 0;
    }
    int ok = now.large_live <= base->large_live && now.ss_live <= base->ss_live + HK_END_SS_SLACK &&
             now.bytes_committed <= base->bytes_committed + HK_END_COMMITTED_SLACK;
    hk_gauges_str(base, a, sizeof a);
    hk_gauges_str(&now, b, sizeof b);
    snprintf(msg, n,
             "after everything was freed, joined and malloc_trim(0) (bounds: large_live <= baseline, "
             "ss_live <= baseline + %d, bytes_committed <= baseline + %llu MiB):\n  baseline: %s\n  end:      %s",
             HK_END_SS_SLACK, (unsigned long long)(HK_END_COMMITTED_SLACK >> 20), a, b);
    return ok;
}

/* Resident set size of this process in bytes (from /proc/self/statm). */
__attribute__((unused))
static size_t hk_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, rss = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &rss) != 2)
        rss = 0;
    fclose(f);
    return (size_t)rss * (size_t)sysconf(_SC_PAGESIZE);
}

__attribute__((unused))
static double hk_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Deterministic pattern byte for offset i of an object at p. Tying the
 * pattern to the address catches both lost writes and blocks handed out
 * twice (the second owner stamps a different pattern). */
__attribute__((unused))
static inline unsigned char hk_pat(const void *p, size_t i, unsigned salt)
{
    uintptr_t a = (uintptr_t)p;
    return (unsigned char)((a >> 4) ^ (a >> 12) ^ i ^ (i >> 8) ^ salt ^ 0x5a);
}

__attribute__((unused))
static void hk_stamp(void *p, size_t n, unsigned salt)
{
    unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        c[i] = hk_pat(p, i, salt);
}

/* Returns the first bad offset, or (size_t)-1 if the pattern is intact. */
__attribute__((unused))
static size_t hk_check_stamp(const void *p, size_t n, unsigned salt)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != hk_pat(p, i, salt))
            return i;
    return (size_t)-1;
}

/* Stamping a few MiB byte by byte is slow; for blocks over 8 KiB stamp the
 * head, the tail and one word per 512 bytes in between: enough to see a
 * block handed out twice or a range given back under a live block. */
__attribute__((unused))
static void hk_stamp_sparse(void *p, size_t n, unsigned salt)
{
    if (n <= 8192) {
        hk_stamp(p, n, salt);
        return;
    }
    unsigned char *c = p;
    hk_stamp(c, 4096, salt);
    hk_stamp(c + n - 4096, 4096, salt ^ 1);
    for (size_t i = 4096; i + 4096 + 8 <= n; i += 512)
        hk_stamp(c + i, 8, salt ^ 2);
}

/* 1 if the stamp of hk_stamp_sparse is intact. */
__attribute__((unused))
static int hk_stamp_sparse_ok(const void *p, size_t n, unsigned salt)
{
    if (n <= 8192)
        return hk_check_stamp(p, n, salt) == (size_t)-1;
    const unsigned char *c = p;
    if (hk_check_stamp(c, 4096, salt) != (size_t)-1 || hk_check_stamp(c + n - 4096, 4096, salt ^ 1) != (size_t)-1)
        return 0;
    for (size_t i = 4096; i + 4096 + 8 <= n; i += 512)
        if (hk_check_stamp(c + i, 8, salt ^ 2) != (size_t)-1)
            return 0;
    return 1;
}

/* Result of running a function in a forked child with stderr captured. */
struct hk_child {
    int status;        /* waitpid status */
    char err[8192];    /* captured stderr, NUL-terminated (truncated) */
    size_t err_len;
};

/* Run fn(arg) in a child; its stderr goes to a pipe we collect. The child
 * exits with fn's return value. `timeout_s` > 0 arms alarm() in the child
 * so a hang ends as SIGALRM rather than hanging the suite. */
__attribute__((unused))
static void hk_run_child(int (*fn)(void *), void *arg, unsigned timeout_s, struct hk_child *out)
{
    int fds[2];
    pid_t pid;

    memset(out, 0, sizeof *out);
    if (pipe(fds) != 0)
        hk_die("pipe: %s", strerror(errno));
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0)
        hk_die("fork: %s", strerror(errno));
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        close(fds[1]);
        if (timeout_s)
            alarm(timeout_s);
        _exit(fn(arg));
    }
    close(fds[1]);
    for (;;) {
        ssize_t n;
        if (out->err_len + 1 >= sizeof out->err) {
            char sink[512];
            n = read(fds[0], sink, sizeof sink);
        } else {
            n = read(fds[0], out->err + out->err_len, sizeof out->err - 1 - out->err_len);
            if (n > 0)
                out->err_len += (size_t)n;
        }
        if (n == 0)
            break;
        if (n < 0 && errno != EINTR)
            break;
    }
    out->err[out->err_len] = '\0';
    close(fds[0]);
    while (waitpid(pid, &out->status, 0) < 0 && errno == EINTR)
        ;
}

/* Human-readable description of a wait status, for failure messages. */
__attribute__((unused))
static const char *hk_status_str(int st, char *buf, size_t n)
{
    if (WIFEXITED(st))
        snprintf(buf, n, "exit %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, n, "signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else
        snprintf(buf, n, "status 0x%x", st);
    return buf;
}


/* Seconds each time-bounded phase runs: HK_STRESS_SECONDS, default 2
 * (`make stress` sets 60). */
__attribute__((unused)) static double hk_budget_s(void)
{
    const char *e = getenv("HK_STRESS_SECONDS");
    double v = (e && *e) ? atof(e) : 0;
    return v > 0 ? v : 2.0;
}

/* xorshift32: cheap per-thread randomness */
__attribute__((unused)) static inline uint32_t hk_rnd(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

#endif /* HK_TEST_H */
