/* lc_rlimit: freed large blocks serve smaller requests under a tight
 * address-space limit (CONFORMANCE D.22), made deterministic.
 *
 * vt_faults' RLIMIT_AS test failed now and then: after each thread freed
 * every other object it could not allocate 40,000-byte objects again,
 * though the memory it had just freed was more than enough: serving them
 * needed new address space (the table of large blocks grew, counting the
 * freed blocks' deleted entries). This test makes that case exact: in the
 * spawned child only, allocate K objects of 100,000 bytes (K = 200, 255,
 * 460, 500: each made it fail before), set RLIMIT_AS to the current
 * address-space size (VmSize) plus four pages, free every other object,
 * then allocate K/2 objects of 40,000 bytes. Each freed object can hold
 * two of them, so all must succeed (glibc's malloc serves every one). The
 * survivors keep their stamps; the limit is lifted before everything is
 * freed.
 */
#include "lc_common.h"

#include <sys/resource.h>

#define RL_BIG 100000
#define RL_SMALL 40000
/* Four pages: less than the table of large blocks needs to grow once
 * (24 KiB at 1024 entries), so the freed memory alone must serve. With a
 * MiB or more of room the table's growth fits and the case passes even
 * when the allocator cannot serve from what was freed. */
#define RL_HEADROOM ((size_t)16 << 10)

/* VmSize of this process in bytes, from /proc/self/status (read without
 * allocating). */
static size_t rl_vmsize(void)
{
    static char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        vt_fail("open /proc/self/status: %s", strerror(errno));
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        vt_fail("read /proc/self/status");
    buf[n] = '\0';
    const char *p = strstr(buf, "VmSize:");
    if (!p)
        vt_fail("no VmSize in /proc/self/status");
    return (size_t)strtoull(p + 7, NULL, 10) * 1024;
}

static int sc_rlimit(void)
{
    const char *ks = getenv("LC_RLIMIT_K");
    int k = ks ? atoi(ks) : 0;
    if (k <= 0 || k > 1000)
        vt_fail("LC_RLIMIT_K=%s: expected 1..1000", ks ? ks : "(unset)");
    static void *big[1000], *small[500];
    for (int i = 0; i < k; i++) {
        big[i] = malloc(RL_BIG);
        if (!big[i])
            vt_fail("malloc(%d) #%d failed before the limit", RL_BIG, i);
        vt_stamp(big[i], 64, (unsigned)i);
    }
    struct rlimit old, rl;
    getrlimit(RLIMIT_AS, &old);
    size_t vm = rl_vmsize();
    rl.rlim_cur = vm + RL_HEADROOM;
    rl.rlim_max = old.rlim_max;
    if (old.rlim_cur != RLIM_INFINITY && old.rlim_cur < rl.rlim_cur)
        rl.rlim_cur = old.rlim_cur;
    if (setrlimit(RLIMIT_AS, &rl) != 0)
        vt_fail("setrlimit: %s", strerror(errno));
    vt_report("vmsize_kib", "%zu", vm / 1024);
    for (int i = 0; i < k; i += 2)
        free(big[i]);
    int got = 0, err = 0;
    for (int i = 0; i < k / 2; i++) {
        errno = 0;
        small[i] = malloc(RL_SMALL);
        if (!small[i]) {
            err = errno;
            break;
        }
        vt_stamp(small[i], 64, 1000u + (unsigned)i);
        got++;
    }
    setrlimit(RLIMIT_AS, &old);
    vt_report("got", "%d", got);
    if (got < k / 2)
        vt_fail("K=%d: malloc(%d) #%d of %d failed (errno %d, %s) with %d objects of %d bytes just freed", k,
                RL_SMALL, got, k / 2, err, strerror(err), (k + 1) / 2, RL_BIG);
    for (int i = 1; i < k; i += 2)
        if (vt_check(big[i], 64, (unsigned)i) != (size_t)-1)
            vt_fail("surviving object %d lost its stamp", i);
    for (int i = 0; i < got; i++)
        if (vt_check(small[i], 64, 1000u + (unsigned)i) != (size_t)-1)
            vt_fail("new object %d lost its stamp", i);
    for (int i = 1; i < k; i += 2)
        free(big[i]);
    for (int i = 0; i < got; i++)
        free(small[i]);
    return 0;
}

static const struct vt_scenario scenarios[] = {
    {"rlimit", sc_rlimit, 0},
    {NULL, NULL, 0},
};

/* ------------------------------------------------------------------------ */
/* Parent. */

static const struct vt_mode all_modes[] = {
    {VT_FAST, {NULL}},
    {VT_LEAN, {LC_LEAN_OFF}},
    {VT_LEAN, {LC_LEAN_ON, LC_BUDGET0, LC_FREE}},
    {VT_LEAN, {LC_LEAN_ON, LC_BUDGET0, LC_DONTNEED}},
    {VT_LEAN, {LC_LEAN_ON, LC_OFF}},
    {VT_DEBUG, {LC_LEAN_OFF}},
    {VT_DEBUG, {LC_LEAN_ON, LC_BUDGET0, LC_DONTNEED}},
};
#define NMODES (sizeof all_modes / sizeof all_modes[0])
static struct lc_modes modes;

static const char *const rl_ks[] = {"LC_RLIMIT_K=200", "LC_RLIMIT_K=255", "LC_RLIMIT_K=460", "LC_RLIMIT_K=500"};
#define NK (sizeof rl_ks / sizeof rl_ks[0])

/* _i = mode * NK + k */
START_TEST(test_rlimit)
{
    const struct vt_mode *m = modes.m[_i / (int)NK];
    const char *extra[] = {rl_ks[_i % (int)NK], NULL};
    const char *env[8];
    lc_env(m, extra, env, 8);
    struct vt_result *r = malloc(sizeof *r);
    vt_spawn(m->variant, "rlimit", env, 60, r);
    lc_assert_clean(r, "small large objects into freed ones under RLIMIT_AS");
    free(r);
}
END_TEST

int main(int argc, char **argv)
{
    return lc_main(argc, argv, scenarios, all_modes, NMODES, &modes, "lifecycle_rlimit", "rlimit", test_rlimit, (int)NK, 70);
}
