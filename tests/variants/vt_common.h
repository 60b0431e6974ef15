/* vt_common.h: helpers shared by the variant-matrix tests (tests/variants).
 *
 * Each test program is both the test and its own subject. Run without
 * arguments it is a Check suite, running under glibc's malloc; every test
 * case spawns the same executable again as
 *     PROGRAM --scenario NAME
 * with LD_PRELOAD of one hakmem library (libhakmem.so, libhakmem_lean.so or
 * libhakmem_debug.so from $abs_top_builddir/src/.libs) and an environment
 * of its own (HAKMEM_SS_MEM_LEAN, ..._DECOMMIT, ...). The scenario runs
 * under hakmem, prints `key=value` lines on stdout, and the parent checks
 * them, the exit status and stderr. A fresh process per configuration is
 * the only way to test start-up settings, and keeps Check's own
 * allocations out of the allocator under test.
 *
 * A variant whose library was not built is skipped (its cases are not
 * registered, with a note); a program with nothing to run exits 77.
 *
 * Header-only (static functions): each test is one .c file.
 */
#ifndef VT_COMMON_H
#define VT_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hakmem.h"

#define VT_EXIT_SKIP 77
#define VT_EXIT_HARD 99
#define VT_MIB ((size_t)1 << 20)

extern char **environ;

/* ------------------------------------------------------------------------ */
/* Variants and their libraries (parent side). */

enum { VT_FAST, VT_LEAN, VT_DEBUG, VT_NVARIANTS };
static const char *const vt_variant_names[VT_NVARIANTS] = {"fast", "lean", "debug"};
static const char *const vt_variant_libs[VT_NVARIANTS] = {"libhakmem.so", "libhakmem_lean.so",
                                                          "libhakmem_debug.so"};

__attribute__((unused)) static const char *vt_builddir(void)
{
    const char *b = getenv("abs_top_builddir");
    return (b && *b) ? b : NULL;
}

/* Path of a variant's library; 1 if it exists. */
__attribute__((unused)) static int vt_lib_path(int variant, char *buf, size_t n)
{
    const char *b = vt_builddir();
    struct stat st;
    if (!b) {
        snprintf(buf, n, "(abs_top_builddir not set)");
        return 0;
    }
    snprintf(buf, n, "%s/src/.libs/%s", b, vt_variant_libs[variant]);
    return stat(buf, &st) == 0 && S_ISREG(st.st_mode);
}

__attribute__((unused)) static int vt_have(int variant)
{
    char p[PATH_MAX];
    return vt_lib_path(variant, p, sizeof p);
}

/* A (variant, environment) pair a test runs its scenario under. */
struct vt_mode {
    int variant;
    const char *env[5]; /* NULL-terminated */
};

/* Keep the modes whose library is built (into out[], returning how many)
 * and say which libraries are missing. */
__attribute__((unused)) static size_t vt_select_modes(const struct vt_mode *all, size_t n,
                                                      const struct vt_mode **out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (vt_have(all[i].variant))
            out[k++] = &all[i];
    for (int v = 0; v < VT_NVARIANTS; v++)
        if (!vt_have(v))
            printf("note: the %s library is not built: its cases are skipped\n", vt_variant_names[v]);
    return k;
}

/* Exit 77 unless abs_top_builddir is known (the tests run through make check). */
__attribute__((unused)) static void vt_require_builddir(void)
{
    if (!vt_builddir()) {
        printf("SKIP: abs_top_builddir is not set; run through `make check`\n");
        exit(VT_EXIT_SKIP);
    }
}

/* ------------------------------------------------------------------------ */
/* Spawning a scenario (parent side). */

struct vt_result {
    int status;
    char out[65536];
    size_t out_len;
    char err[65536];
    size_t err_len;
    char desc[512]; /* variant, scenario and environment, for messages */
};

/* Run `PROGRAM --scenario NAME` with the variant's library preloaded, the
 * parent's environment minus every HAKMEM_* variable, plus `env` (a
 * NULL-terminated list of "NAME=VALUE"). alarm(timeout_s) in the child
 * survives exec, so a hang ends as SIGALRM. */
__attribute__((unused)) static void vt_spawn(int variant, const char *scenario, const char *const *env,
                                             unsigned timeout_s, struct vt_result *r)
{
    static char lib[PATH_MAX + 64], var[64];
    char self[PATH_MAX];
    int po[2], pe[2];
    size_t nenv = 0;

    memset(r, 0, sizeof *r);
    if (!vt_lib_path(variant, lib + 11, sizeof lib - 11)) {
        fprintf(stderr, "vt_spawn: library %s missing\n", lib + 11);
        exit(VT_EXIT_HARD);
    }
    memcpy(lib, "LD_PRELOAD=", 11);
    snprintf(var, sizeof var, "VT_VARIANT=%s", vt_variant_names[variant]);
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl <= 0) {
        fprintf(stderr, "vt_spawn: readlink /proc/self/exe: %s\n", strerror(errno));
        exit(VT_EXIT_HARD);
    }
    self[sl] = '\0';

    size_t off = (size_t)snprintf(r->desc, sizeof r->desc, "[%s %s", vt_variant_names[variant], scenario);
    for (size_t i = 0; env && env[i]; i++)
        if (off < sizeof r->desc)
            off += (size_t)snprintf(r->desc + off, sizeof r->desc - off, " %s", env[i]);
    if (off < sizeof r->desc)
        snprintf(r->desc + off, sizeof r->desc - off, "]");

    for (char **e = environ; *e; e++)
        nenv++;
    for (size_t i = 0; env && env[i]; i++)
        nenv++;
    char **envp = calloc(nenv + 4, sizeof *envp);
    size_t k = 0;
    for (char **e = environ; *e; e++)
        if (strncmp(*e, "HAKMEM_", 7) != 0 && strncmp(*e, "LD_PRELOAD=", 11) != 0 &&
            strncmp(*e, "VT_VARIANT=", 11) != 0)
            envp[k++] = *e;
    for (size_t i = 0; env && env[i]; i++)
        envp[k++] = (char *)env[i];
    envp[k++] = lib;
    envp[k++] = var;
    envp[k] = NULL;

    if (pipe(po) != 0 || pipe(pe) != 0) {
        fprintf(stderr, "vt_spawn: pipe: %s\n", strerror(errno));
        exit(VT_EXIT_HARD);
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "vt_spawn: fork: %s\n", strerror(errno));
        exit(VT_EXIT_HARD);
    }
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]);
        close(po[1]);
        close(pe[0]);
        close(pe[1]);
        char *argv[] = {self, (char *)"--scenario", (char *)scenario, NULL};
        if (timeout_s)
            alarm(timeout_s);
        execve(self, argv, envp);
        _exit(127);
    }
    free(envp);
    close(po[1]);
    close(pe[1]);
    struct pollfd fds[2] = {{.fd = po[0], .events = POLLIN}, {.fd = pe[0], .events = POLLIN}};
    int open_fds = 2;
    while (open_fds > 0) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char *buf = i == 0 ? r->out : r->err;
            size_t *len = i == 0 ? &r->out_len : &r->err_len;
            size_t cap = i == 0 ? sizeof r->out : sizeof r->err;
            char sink[4096];
            ssize_t n;
            if (*len + 1 < cap)
                n = read(fds[i].fd, buf + *len, cap - 1 - *len);
            else
                n = read(fds[i].fd, sink, sizeof sink);
            if (n > 0 && *len + 1 < cap)
                *len += (size_t)n;
            if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
            }
        }
    }
    r->out[r->out_len] = '\0';
    r->err[r->err_len] = '\0';
    while (waitpid(pid, &r->status, 0) < 0 && errno == EINTR)
        ;
}

/* "exit 0", "signal 6 (Aborted)", ... */
__attribute__((unused)) static const char *vt_status_str(int st)
{
    static char buf[96];
    if (WIFEXITED(st))
        snprintf(buf, sizeof buf, "exit %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, sizeof buf, "signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else
        snprintf(buf, sizeof buf, "status 0x%x", st);
    return buf;
}

__attribute__((unused)) static int vt_exited_ok(const struct vt_result *r)
{
    return WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0;
}

/* Value of `key=` on a line of the scenario's stdout; NULL if absent. */
__attribute__((unused)) static const char *vt_str(const struct vt_result *r, const char *key)
{
    static char val[512];
    size_t kl = strlen(key);
    const char *p = r->out;
    while (p && *p) {
        if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
            const char *v = p + kl + 1;
            size_t n = strcspn(v, "\n");
            if (n >= sizeof val)
                n = sizeof val - 1;
            memcpy(val, v, n);
            val[n] = '\0';
            return val;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return NULL;
}

/* Numeric value of `key=`; `found` (may be NULL) says whether it was there. */
__attribute__((unused)) static int64_t vt_num(const struct vt_result *r, const char *key, int *found)
{
    const char *v = vt_str(r, key);
    if (found)
        *found = v != NULL;
    return v ? strtoll(v, NULL, 10) : 0;
}

/* Lines of `text` starting with `prefix`. */
__attribute__((unused)) static int vt_count_lines(const char *text, const char *prefix)
{
    int n = 0;
    size_t pl = strlen(prefix);
    const char *p = text;
    while (p && *p) {
        if (strncmp(p, prefix, pl) == 0)
            n++;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return n;
}

/* All lines of `text`. */
__attribute__((unused)) static int vt_total_lines(const char *text)
{
    int n = 0;
    for (const char *p = text; *p; p++)
        if (*p == '\n')
            n++;
    if (*text && text[strlen(text) - 1] != '\n')
        n++;
    return n;
}

/* ------------------------------------------------------------------------ */
/* Scenario side (runs under hakmem). Nothing here allocates. */

typedef int (*vt_scenario_fn)(void);
struct vt_scenario {
    const char *name;
    vt_scenario_fn fn;
    int no_probe; /* skip the malloc(24) probe (fault-injection scenarios) */
};

/* Print `key=value` on stdout with one write(2) (no stdio buffers). */
__attribute__((unused, format(printf, 2, 3))) static void vt_report(const char *key, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    int n = snprintf(buf, sizeof buf, "%s=", key);
    va_start(ap, fmt);
    n += vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof buf - 2)
        n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    ssize_t w = write(1, buf, (size_t)n);
    (void)w;
}

/* A failure inside a scenario: one line on stdout (fail=...), exit 1. */
__attribute__((unused, format(printf, 1, 2), noreturn)) static void vt_fail(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof buf - 2)
        n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    ssize_t w = write(1, "fail=", 5);
    w = write(1, buf, (size_t)n);
    (void)w;
    _exit(1);
}

typedef const char *(*vt_str_fn)(void);
typedef int (*vt_owns_fn)(const void *);
typedef int (*vt_stats_fn)(struct hakmem_stats *, size_t);

__attribute__((unused)) static int vt_owns(const void *p)
{
    static vt_owns_fn f;
    if (!f)
        f = (vt_owns_fn)(uintptr_t)dlsym(RTLD_DEFAULT, "hakmem_owns");
    return f ? f(p) : -1;
}

__attribute__((unused)) static void vt_stats(struct hakmem_stats *st)
{
    static vt_stats_fn f;
    if (!f)
        f = (vt_stats_fn)(uintptr_t)dlsym(RTLD_DEFAULT, "hakmem_stats_get");
    memset(st, 0, sizeof *st);
    if (!f || f(st, sizeof *st) != 0)
        vt_fail("hakmem_stats_get unavailable or failed");
}

/* Report the counters the parents check. */
__attribute__((unused)) static void vt_report_stats(const char *prefix)
{
    struct hakmem_stats st;
    char k[96];
    vt_stats(&st);
#define VT_R(field)                                                    \
    snprintf(k, sizeof k, "%s%s", prefix, #field);                     \
    vt_report(k, "%llu", (unsigned long long)st.field);
    VT_R(stats_built_in)
    VT_R(lean_mode)
    VT_R(lean_decommit)
    VT_R(lean_retire)
    VT_R(madvise_calls)
    VT_R(madvise_failures)
    VT_R(madvise_guard_refusals)
    VT_R(mmap_calls)
    VT_R(mmap_failures)
    VT_R(munmap_calls)
    VT_R(ss_live)
    VT_R(ss_cached)
    VT_R(ss_decommitted)
    VT_R(bytes_mapped)
    VT_R(bytes_committed)
#undef VT_R
}

/* Report the gauges an end state is judged by (always maintained, with or
 * without the counters), as PREFIX<name>=<value>. */
__attribute__((unused)) static void vt_report_gauges(const char *prefix)
{
    struct hakmem_stats st;
    char k[96];
    vt_stats(&st);
#define VT_G(field)                                                    \
    snprintf(k, sizeof k, "%s%s", prefix, #field);                     \
    vt_report(k, "%llu", (unsigned long long)st.field);
    VT_G(ss_live)
    VT_G(ss_cached)
    VT_G(ss_decommitted)
    VT_G(large_live)
    VT_G(large_cached_bytes)
    VT_G(bytes_committed)
    VT_G(bytes_mapped)
#undef VT_G
}

/* Rss and LazyFree of this process in KiB, from /proc/self/smaps_rollup,
 * read with open/read into a static buffer (no allocation). -1 if the
 * file or the field is missing. */
__attribute__((unused)) static long vt_smaps_field(const char *field)
{
    static char buf[8192];
    int fd = open("/proc/self/smaps_rollup", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len >= sizeof buf - 1)
            break;
    }
    close(fd);
    buf[len] = '\0';
    size_t fl = strlen(field);
    for (char *p = buf; p && *p;) {
        if (strncmp(p, field, fl) == 0 && p[fl] == ':')
            return strtol(p + fl + 1, NULL, 10);
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return -1;
}

/* Deterministic pattern tied to the address (a block handed out twice gets
 * two different stamps). */
__attribute__((unused)) static inline unsigned char vt_pat(const void *p, size_t i, unsigned salt)
{
    uintptr_t a = (uintptr_t)p;
    return (unsigned char)((a >> 4) ^ (a >> 12) ^ i ^ (i >> 8) ^ salt ^ 0x5a);
}

__attribute__((unused)) static void vt_stamp(void *p, size_t n, unsigned salt)
{
    unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        c[i] = vt_pat(p, i, salt);
}

/* First bad offset, or (size_t)-1 if intact. */
__attribute__((unused)) static size_t vt_check(const void *p, size_t n, unsigned salt)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != vt_pat(p, i, salt))
            return i;
    return (size_t)-1;
}

__attribute__((unused)) static inline uint32_t vt_xorshift(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* Anonymous memory for the tests' own bookkeeping, outside the allocator. */
__attribute__((unused)) static void *vt_map(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        vt_fail("mmap of %zu bytes for bookkeeping: %s", size, strerror(errno));
    return p;
}

__attribute__((unused)) static double vt_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Seconds a time-bounded phase runs: HK_STRESS_SECONDS or `def`. */
__attribute__((unused)) static double vt_seconds(double def)
{
    const char *s = getenv("HK_STRESS_SECONDS");
    double v = s ? atof(s) : 0;
    return v > 0 ? v : def;
}

/* Scenario entry: prove hakmem (of the variant the parent asked for) is the
 * allocator, then run the scenario; exit status is its return value. */
__attribute__((unused)) static int vt_scenario_main(const struct vt_scenario *table, const char *name)
{
    vt_str_fn variant = (vt_str_fn)(uintptr_t)dlsym(RTLD_DEFAULT, "hakmem_variant");
    const char *want = getenv("VT_VARIANT");
    if (!variant || vt_owns(NULL) < 0) {
        printf("hard error: hakmem is not loaded (LD_PRELOAD=%s)\n", getenv("LD_PRELOAD"));
        return VT_EXIT_HARD;
    }
    if (want && strcmp(variant(), want) != 0) {
        printf("hard error: preloaded variant is '%s', expected '%s'\n", variant(), want);
        return VT_EXIT_HARD;
    }
    /* Every program answers this one: are the counters built in? */
    if (strcmp(name, "vt-counters") == 0) {
        struct hakmem_stats st;
        vt_stats(&st);
        vt_report("stats_built_in", "%llu", (unsigned long long)st.stats_built_in);
        return 0;
    }
    for (const struct vt_scenario *s = table; s->name; s++)
        if (strcmp(s->name, name) == 0) {
            if (!s->no_probe) {
                void *p = malloc(24);
                if (!p || vt_owns(p) != 1) {
                    printf("hard error: malloc(24)=%p is not owned by hakmem\n", p);
                    return VT_EXIT_HARD;
                }
                free(p);
            }
            int rc = s->fn();
            vt_report("done", "%d", rc);
            return rc;
        }
    printf("hard error: unknown scenario %s\n", name);
    return VT_EXIT_HARD;
}

/* Check helpers (parent side): a failure message with the run's details. */
#define vt_assert_r(r, cond, ...)                                                       \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            char vt_msg_[768];                                                          \
            snprintf(vt_msg_, sizeof vt_msg_, __VA_ARGS__);                             \
            ck_abort_msg("%s %s: %s\n--- status: %s\n--- stdout:\n%.3000s\n--- stderr:\n%.3000s", \
                         (r)->desc, #cond, vt_msg_, vt_status_str((r)->status), (r)->out, (r)->err); \
        }                                                                               \
    } while (0)

/* Are the counters (configure --enable-ss-stats) built into the libraries?
 * One configure builds every variant with the same choice, so the first
 * built library answers for all. Checks that read counters run only when
 * they are; otherwise the program ends with exit 77 and says which checks
 * it could not make (vt_finish), never with a pass. */
__attribute__((unused)) static int vt_counters_built_in(void)
{
    for (int v = 0; v < VT_NVARIANTS; v++) {
        if (!vt_have(v))
            continue;
        struct vt_result *r = malloc(sizeof *r);
        if (!r)
            exit(VT_EXIT_HARD);
        vt_spawn(v, "vt-counters", NULL, 30, r);
        int found = 0;
        int64_t built = vt_num(r, "stats_built_in", &found);
        if (!vt_exited_ok(r) || !found) {
            fprintf(stderr, "vt_counters_built_in: %s: %s\n%s%s\n", r->desc, vt_status_str(r->status), r->out,
                    r->err);
            exit(VT_EXIT_HARD);
        }
        free(r);
        return built != 0;
    }
    return 0;
}

/* The program's exit status: 1 if a check failed; 77, with the reason, if
 * all passed but the checks named in `gated` needed the counters and they
 * are not built in; 0 otherwise. */
__attribute__((unused)) static int vt_finish(int failed, int counters, const char *gated)
{
    if (failed)
        return 1;
    if (!counters) {
        printf("SKIP: the counters are not built in (configure --enable-ss-stats): %s not checked\n", gated);
        return VT_EXIT_SKIP;
    }
    return 0;
}

/* Slack of the end-state checks: as tests/integration/hk_test.h. */
#define VT_END_SS_SLACK 2
#define VT_END_COMMITTED_SLACK (4 * VT_MIB)

/* Parent side: the scenario reported its gauges as base_* at the start of a
 * phase and end_* once everything was freed, its threads joined and
 * malloc_trim(0) called. The memory must be back where it was: no large
 * block alive beyond the baseline, superslabs in use back to about the
 * baseline, committed bytes within a few MiB. */
#define vt_assert_end_state(r)                                                                            \
    do {                                                                                                  \
        int vt_f1_, vt_f2_;                                                                               \
        long long vt_bl_ = vt_num((r), "base_large_live", &vt_f1_), vt_el_ = vt_num((r), "end_large_live", &vt_f2_); \
        long long vt_bs_ = vt_num((r), "base_ss_live", NULL), vt_es_ = vt_num((r), "end_ss_live", NULL);  \
        long long vt_bc_ = vt_num((r), "base_bytes_committed", NULL);                                     \
        long long vt_ec_ = vt_num((r), "end_bytes_committed", NULL);                                      \
        vt_assert_r((r), vt_f1_ && vt_f2_, "the scenario reported no base_/end_ gauges");                 \
        int end_state_back = vt_el_ <= vt_bl_ && vt_es_ <= vt_bs_ + VT_END_SS_SLACK &&                     \
                             vt_ec_ <= vt_bc_ + (long long)VT_END_COMMITTED_SLACK;                        \
        vt_assert_r((r), end_state_back,                                                                  \
                    "after everything was freed and malloc_trim(0): large_live %lld -> %lld, ss_live %lld -> %lld " \
                    "(slack %d), bytes_committed %lld -> %lld (slack %zu MiB); see base_* and end_* below",  \
                    vt_bl_, vt_el_, vt_bs_, vt_es_, VT_END_SS_SLACK, vt_bc_, vt_ec_,                      \
                    VT_END_COMMITTED_SLACK / VT_MIB);                                                     \
    } while (0)

#endif /* VT_COMMON_H */
