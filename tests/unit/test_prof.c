/* test_prof.c: the heap profiler's lower boxes, as their headers promise,
 * against the internal FAST copy.
 *
 *  - stack_box: the walk by the cached call-frame rules gives the same
 *    frames as libgcc's unwinder, through frames that keep their CFA in
 *    rsp, in rbp (a frame pointer) and with alloca, a second time (from
 *    the cache) too; it walks ordinary frames itself (it does not always
 *    hand them to libgcc); through a signal frame it hands the capture to
 *    libgcc, which walks on into the interrupted code; skip and max; a
 *    stack deeper than HK_STACK_MAX; a thread's stack ends where libgcc's
 *    does.
 *  - heap_profile_box: P(s) = 1 - exp(-s/R) (at s = R, and small s); the
 *    gaps drawn from uniform numbers are exponential (mean R, and the
 *    share below s is P(s)); s/P(s); the profile's text: heap_v2/R, a
 *    stack per @ line, and the values on each t line are those jeprof's
 *    scaling turns into the unbiased estimates (per stack and per thread),
 *    also for a stack whose blocks differ in size; the leak summary.
 */
#include "unit_common.h"

#include <alloca.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>

#include "base/heap_profile_box.h"
#include "base/stack_box.h"

typedef int (*capture_fn)(void **buf, int max, int skip);

/* ---- stack_box ---------------------------------------------------------------- */

static void *g_a[HK_STACK_MAX], *g_b[HK_STACK_MAX];
static int g_na, g_nb, g_ncfi;

/* The three walks from one call site, so that all their frames agree. */
__attribute__((noinline)) static int grab_with(capture_fn fn, void **buf)
{
    int n = fn(buf, HK_STACK_MAX, 0);
    __asm__ volatile("" ::: "memory");
    return n;
}

__attribute__((noinline)) static void grab(void)
{
    void *c[HK_STACK_MAX];
    capture_fn fns[3] = {hk_stack_capture, hk_stack_capture_libgcc, hk_stack_capture_cfi};
    void **bufs[3] = {g_a, g_b, c};
    int *ns[3] = {&g_na, &g_nb, &g_ncfi};
    for (int k = 0; k < 3; k++)
        *ns[k] = grab_with(fns[k], bufs[k]);
    __asm__ volatile("" ::: "memory");
}

static void expect_same_walk(const char *what)
{
    ck_assert_msg(g_na >= 3, "%s: only %d frames", what, g_na);
    ck_assert_msg(g_na == g_nb, "%s: %d frames, libgcc %d", what, g_na, g_nb);
    for (int i = 0; i < g_na; i++)
        ck_assert_msg(g_a[i] == g_b[i], "%s: frame %d is %p, libgcc's %p", what, i, g_a[i], g_b[i]);
}

__attribute__((noinline)) static void plain(void)
{
    grab();
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void with_alloca(int n)
{
    volatile char *p = alloca((size_t)n);
    p[0] = 1;
    plain();
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline, optimize("no-omit-frame-pointer"))) static void with_frame_pointer(int n)
{
    with_alloca(n);
    __asm__ volatile("" ::: "memory");
}

START_TEST(walks_agree)
{
    plain();
    expect_same_walk("plain");
    ck_assert_msg(g_ncfi == g_na, "the tables' walk gave %d frames for ordinary frames (-1: handed to libgcc)",
                  g_ncfi);
    with_frame_pointer(37);
    expect_same_walk("frame pointer, alloca");
    ck_assert_msg(g_ncfi == g_na, "the tables' walk gave %d frames through rbp and alloca frames", g_ncfi);
    with_frame_pointer(1000); /* the same return addresses, another frame size: from the cache */
    expect_same_walk("cached rules, another alloca");
}
END_TEST

static void on_signal(int sig) { plain(); }

__attribute__((noinline)) static void raise_it(void)
{
    raise(SIGUSR1);
    __asm__ volatile("" ::: "memory");
}

START_TEST(signal_frame_falls_back)
{
    signal(SIGUSR1, on_signal);
    raise_it();
    expect_same_walk("through a signal frame");
    ck_assert_msg(g_ncfi == -1, "the tables' walk went through a signal frame (%d frames)", g_ncfi);
    bool beyond = false;
    for (int i = 0; i < g_na; i++) {
        uintptr_t ip = (uintptr_t)g_a[i];
        /* a return address inside raise_it: the walk crossed the frame */
        if (ip > (uintptr_t)raise_it && ip < (uintptr_t)raise_it + 64)
            beyond = true;
    }
    ck_assert_msg(beyond, "the walk did not reach the interrupted function");
}
END_TEST

__attribute__((noinline)) static int recurse(int depth, void **buf, int max, int skip)
{
    int n = depth ? recurse(depth - 1, buf, max, skip) : hk_stack_capture(buf, max, skip);
    __asm__ volatile("" ::: "memory");
    return n;
}

START_TEST(skip_max_deep)
{
    void *full[HK_STACK_MAX], *part[HK_STACK_MAX];
    int n = recurse(5, full, HK_STACK_MAX, 0);
    int k = recurse(5, part, 3, 2);
    ck_assert_int_eq(k, 3);
    for (int i = 0; i < 3; i++)
        ck_assert_ptr_eq(part[i], full[i + 2]);
    ck_assert_int_ge(n, 8);
    ck_assert_int_eq(recurse(200, full, HK_STACK_MAX, 0), HK_STACK_MAX);
    ck_assert_int_eq(recurse(200, full, 1000, 0), HK_STACK_MAX);
    ck_assert_int_eq(recurse(2, full, 0, 0), 0);
}
END_TEST

static void *thread_walk(void *arg)
{
    with_frame_pointer(64);
    return NULL;
}

START_TEST(thread_stack_ends)
{
    pthread_t t;
    pthread_create(&t, NULL, thread_walk, NULL);
    pthread_join(t, NULL);
    expect_same_walk("a thread");
}
END_TEST

/* ---- heap_profile_box ------------------------------------------------------- */

#define R 524288.0

START_TEST(model)
{
    ck_assert_msg(fabs(hk_prof_inclusion(524288, R) - (1 - exp(-1.0))) < 1e-12, "P(R)");
    ck_assert_msg(fabs(hk_prof_inclusion(16, R) / -expm1(-16 / R) - 1) < 1e-12, "P(16)");
    ck_assert_msg(fabs(hk_prof_inclusion(100000000, R) - 1) < 1e-12, "P(100 MB)");
    ck_assert_msg(fabs(hk_prof_inclusion(3 << 20, R) / -expm1(-(3 << 20) / R) - 1) < 1e-12, "P(3 MiB)");
    uint64_t e = hk_prof_estimate_bytes(1024, R);
    ck_assert_msg(fabs((double)e - 1024 / -expm1(-1024 / R)) <= 1, "s/P(s) for 1 KiB: %llu", (unsigned long long)e);
    /* The gaps, over a fine grid of the uniform numbers: mean R, and the
     * share below s is P(s). */
    double sum = 0;
    int below = 0, n = 1 << 20;
    for (int i = 0; i < n; i++) {
        uint64_t bits = ((uint64_t)i << 33) + ((uint64_t)1 << 32);
        int64_t g = hk_prof_gap(bits, R);
        if (g < 0)
            ck_abort_msg("negative gap");
        sum += (double)g;
        below += g < 100000;
    }
    ck_assert_msg(fabs(sum / n / R - 1) < 0.002, "mean gap %.0f, not R", sum / n);
    ck_assert_msg(fabs((double)below / n - hk_prof_inclusion(100000, R)) < 0.001, "P(gap < 100000) = %f",
                  (double)below / n);
}
END_TEST

static const void *g_frames[2][3] = {{(void *)0x1111, (void *)0x2222, (void *)0x3333},
                                     {(void *)0x4444, (void *)0x5555, (void *)0x6666}};

static const void *const *frames_of(const void *ctx, uint32_t stack, unsigned *depth)
{
    *depth = stack == 0 ? 3 : 2;
    return g_frames[stack];
}

/* What jeprof makes of "c: s": c/P(s/c), s/P(s/c). */
static void jeprof_scale(double c, double s, double *objs, double *bytes)
{
    double scale = c ? 1 / -expm1(-(s / c) / R) : 1;
    *objs = c * scale;
    *bytes = s * scale;
}

/* The line's values, scaled as jeprof scales them, give the estimates:
 * up to the rounding of c to an integer (half a sample of the line's
 * average size, x/P(x) bytes a sample) and 1 %. */
static void expect_line(const char *text, const char *line_start, double objs, double bytes)
{
    const char *p = strstr(text, line_start);
    ck_assert_msg(p, "no line '%s' in:\n%s", line_start, text);
    unsigned long long c, s;
    ck_assert_msg(sscanf(p + strlen(line_start), "%llu: %llu [0: 0]", &c, &s) == 2, "line '%s'", line_start);
    double o, b, x = bytes / objs, px = -expm1(-x / R);
    jeprof_scale((double)c, (double)s, &o, &b);
    ck_assert_msg(fabs(b - bytes) <= 0.5 * x / px + 0.01 * bytes, "'%s': jeprof reads %.0f bytes, the estimate is %.0f",
                  line_start, b, bytes);
    ck_assert_msg(fabs(o - objs) <= 0.5 / px + 0.01 * objs, "'%s': jeprof reads %.1f objects, the estimate is %.1f",
                  line_start, o, objs);
}

START_TEST(profile_text)
{
    /* Stack 0: thread 1 has 3 blocks of 100 B and one of 1 MiB, thread 2
     * two of 4000 B; stack 1: thread 2, one of 64 B. */
    hk_prof_sample_t s[] = {{0, 1, 100}, {1, 2, 64}, {0, 2, 4000}, {0, 1, 1 << 20},
                            {0, 1, 100}, {0, 2, 4000}, {0, 1, 100}};
    hk_prof_snapshot_t snap = {R, s, sizeof s / sizeof s[0], frames_of, NULL};
    char path[] = "/tmp/hk_test_prof.XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(hk_prof_write(fd, &snap), 0);
    static char text[1 << 16];
    ssize_t n = pread(fd, text, sizeof text - 1, 0);
    close(fd);
    unlink(path);
    ck_assert_int_gt(n, 0);
    text[n] = '\0';
    ck_assert_msg(!strncmp(text, "heap_v2/524288\n  t*: ", 21), "header: %.40s", text);
    ck_assert_msg(strstr(text, "\n@ 0x1111 0x2222 0x3333\n  t*: "), "stack 0:\n%s", text);
    ck_assert_msg(strstr(text, "\n@ 0x4444 0x5555\n  t*: "), "stack 1:\n%s", text);
    ck_assert_msg(strstr(text, "\n\nMAPPED_LIBRARIES:\n") && strstr(text, "r-xp"), "maps:\n%s", text);
    double o1 = 3 / hk_prof_inclusion(100, R), b1 = 300 / hk_prof_inclusion(100, R);
    double o1m = 1 / hk_prof_inclusion(1 << 20, R), b1m = (1 << 20) / hk_prof_inclusion(1 << 20, R);
    double o2 = 2 / hk_prof_inclusion(4000, R), b2 = 8000 / hk_prof_inclusion(4000, R);
    double o3 = 1 / hk_prof_inclusion(64, R), b3 = 64 / hk_prof_inclusion(64, R);
    expect_line(text, "heap_v2/524288\n  t*: ", o1 + o1m + o2 + o3, b1 + b1m + b2 + b3);
    expect_line(text, "0x3333\n  t*: ", o1 + o1m + o2, b1 + b1m + b2);
    expect_line(text, "0x3333\n  t*: ", o1 + o1m + o2, b1 + b1m + b2);
    const char *st0 = strstr(text, "0x3333\n");
    expect_line(st0, "  t1: ", o1 + o1m, b1 + b1m);
    expect_line(st0, "  t2: ", o2, b2);
    expect_line(text, "0x5555\n  t*: ", o3, b3);
}
END_TEST

START_TEST(leak_line)
{
    hk_prof_sample_t s[] = {{0, 1, 1000}, {1, 1, 10}};
    hk_prof_snapshot_t snap = {R, s, 2, frames_of, NULL};
    int pipefd[2];
    ck_assert_int_eq(pipe(pipefd), 0);
    int saved = dup(2);
    dup2(pipefd[1], 2);
    hk_prof_leak_line(&snap, "/x/y.heap");
    snap.n = 0;
    hk_prof_leak_line(&snap, NULL);
    dup2(saved, 2);
    close(pipefd[1]);
    char text[1024];
    ssize_t n = read(pipefd[0], text, sizeof text - 1);
    close(pipefd[0]);
    ck_assert_int_gt(n, 0);
    text[n] = '\0';
    ck_assert_msg(!strncmp(text, "hakmem: prof_leak: ~", 20), "%s", text);
    ck_assert_msg(strstr(text, "estimated from 2 samples, 2 sites); top: 0x1111 ~"), "%s", text);
    ck_assert_msg(strstr(text, ", 0x4444 ~") && strstr(text, "; profile /x/y.heap\n"), "%s", text);
    ck_assert_msg(strstr(text, "\nhakmem: prof_leak: no sampled block is still allocated at exit\n"), "%s", text);
}
END_TEST

int main(int argc, char **argv)
{
    Suite *s = suite_create("prof");
    TCase *tc = tcase_create("stack");
    tcase_add_test(tc, walks_agree);
    tcase_add_test(tc, signal_frame_falls_back);
    tcase_add_test(tc, skip_max_deep);
    tcase_add_test(tc, thread_stack_ends);
    suite_add_tcase(s, tc);
    tc = tcase_create("profile");
    tcase_add_test(tc, model);
    tcase_add_test(tc, profile_text);
    tcase_add_test(tc, leak_line);
    suite_add_tcase(s, tc);
    return hk_unit_run(s);
}
