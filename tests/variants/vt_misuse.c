/* vt_misuse: CONFORMANCE B.14-B.17 in every variant and decommit mode.
 *
 * B.14 double free (immediate; delayed p,q,p; large; a block whose
 *      superslab was released in between) and B.15 invalid free ((void*)1,
 *      p+1, an interior pointer, a stack address, a foreign PROT_NONE
 *      mapping at a 2 MiB boundary, which hakmem must not read): the
 *      FAST-only and LEAN-capable libraries print one `hakmem: error: ...`
 *      line and go on, and no later allocation overlaps a live one; the
 *      debug library aborts (SIGABRT) after that line.
 * B.16 write after free and overflow into a free neighbour: the debug
 *      library aborts with `hakmem: error: write after free ...`; the
 *      others go on handing out only their own blocks.
 * B.17 HAKMEM_SS_MEM_LEAN=banana, HAKMEM_SS_MEM_LEAN_TARGET_MB=-5,
 *      HAKMEM_SS_MEM_LEAN_DECOMMIT=maybe: exactly one line on stderr,
 *      `hakmem: warning: ...` naming the variable, the default kept (as
 *      HAKMEM_VERBOSE=1 and hakmem_stats_get show), the program runs.
 * Each runs with LEAN off and with LEAN on under FREE, DONTNEED and OFF
 * (TARGET_MB=0, so superslabs are released as soon as they empty).
 */
#include "vt_common.h"

#include <check.h>

/* ------------------------------------------------------------------------ */
/* Scenarios (under hakmem). */

/* The misuse is deliberate: called through volatile pointers so that the
 * compiler neither warns about it nor optimises it away. */
static void (*volatile bad_free)(void *) = free;
static void *volatile sink;

/* No allocation overlaps another: many live blocks of mixed sizes, each
 * stamped with its own salt, all checked afterwards. */
static void no_overlap(size_t extra_size)
{
    enum { N = 3000 };
    void **v = vt_map(N * sizeof(void *));
    size_t *sz = vt_map(N * sizeof(size_t));
    for (int i = 0; i < N; i++) {
        sz[i] = (i % 3 == 0 && extra_size) ? extra_size : 16 + (size_t)(i * 37) % 1025;
        v[i] = malloc(sz[i]);
        if (!v[i])
            vt_fail("malloc(%zu) failed after the misuse", sz[i]);
        if (vt_owns(v[i]) != 1)
            vt_fail("malloc returned %p, which hakmem does not own", v[i]);
        vt_stamp(v[i], sz[i], (unsigned)i);
    }
    for (int i = 0; i < N; i++)
        if (vt_check(v[i], sz[i], (unsigned)i) != (size_t)-1)
            vt_fail("block %d (%p, %zu bytes) overlaps another after the misuse", i, v[i], sz[i]);
    for (int i = 0; i < N; i++)
        free(v[i]);
    vt_report("after", "ok");
}

static int sc_df_immediate(void)
{
    void *p = malloc(40);
    vt_stamp(p, 40, 1);
    bad_free(p);
    bad_free(p);
    no_overlap(40);
    return 0;
}

static int sc_df_delayed(void)
{
    void *p = malloc(72), *q = malloc(72);
    bad_free(p);
    bad_free(q);
    bad_free(p);
    no_overlap(72);
    return 0;
}

static int sc_df_large(void)
{
    void *p = malloc(VT_MIB);
    memset(p, 1, VT_MIB);
    bad_free(p);
    bad_free(p);
    void *q = malloc(VT_MIB), *r = malloc(VT_MIB);
    if (!q || !r || q == r)
        vt_fail("large allocations after a large double free: %p %p", q, r);
    memset(q, 2, VT_MIB);
    memset(r, 3, VT_MIB);
    if (((unsigned char *)q)[VT_MIB - 1] != 2)
        vt_fail("large blocks overlap after a large double free");
    free(q);
    free(r);
    no_overlap(0);
    return 0;
}

/* Free a block again after its whole superslab emptied (in LEAN with
 * TARGET_MB=0 it has been released: decommitted or unmapped). */
static int sc_df_released(void)
{
    enum { N = 3 * 2 * 1024 * 1024 / 256 };
    void **v = vt_map(N * sizeof(void *));
    for (int i = 0; i < N; i++) {
        v[i] = malloc(256);
        if (!v[i])
            vt_fail("malloc failed");
        memset(v[i], 7, 256);
    }
    void *p = v[N / 2];
    for (int i = 0; i < N; i++)
        free(v[i]);
    bad_free(p);
    no_overlap(256);
    return 0;
}

static int sc_if_one(void)
{
    bad_free((void *)1);
    no_overlap(0);
    return 0;
}

static int sc_if_plus1(void)
{
    char *p = malloc(64);
    bad_free(p + 1);
    free(p);
    no_overlap(64);
    return 0;
}

static int sc_if_interior(void)
{
    char *p = malloc(256);
    bad_free(p + 128);
    free(p);
    no_overlap(256);
    return 0;
}

static int sc_if_stack(void)
{
    char buf[256];
    memset(buf, 0, sizeof buf);
    bad_free(buf + 16);
    no_overlap(0);
    return 0;
}

/* A foreign mapping with no access at all, at a 2 MiB boundary (where a
 * superslab header would be): reading it would crash. */
static int sc_if_foreign(void)
{
    size_t len = 4 * VT_MIB;
    char *m = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        vt_fail("mmap: %s", strerror(errno));
    char *a = (char *)(((uintptr_t)m + 2 * VT_MIB - 1) & ~(uintptr_t)(2 * VT_MIB - 1));
    bad_free(a + 65536 + 256);
    no_overlap(0);
    munmap(m, len);
    return 0;
}

/* Write into a freed block, then allocate its class again (LIFO: the next
 * malloc hands it out). */
static int sc_waf(void)
{
    unsigned char *p = malloc(96);
    bad_free(p);
    ((volatile unsigned char *)p)[40] = 0x41; /* deliberate write after free */
    for (int i = 0; i < 64; i++) {
        void *q = malloc(96);
        if (!q || vt_owns(q) != 1)
            vt_fail("malloc after a write after free returned %p", q);
    }
    vt_report("after", "ok");
    return 0;
}

/* Overflow a block into the free block just after it (debug only: in the
 * other builds this is undefined behaviour that may legitimately crash).
 * The neighbour is the nearest block above; the overflow runs over any
 * gap or canary between them and 48 bytes into the neighbour. */
static int sc_overflow(void)
{
    enum { N = 32, SZ = 128 };
    unsigned char *v[N];
    for (int i = 0; i < N; i++)
        v[i] = malloc(SZ);
    int a = -1, b = -1;
    size_t best = (size_t)-1;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            if (v[j] > v[i] && (size_t)(v[j] - v[i]) < best) {
                best = (size_t)(v[j] - v[i]);
                a = i;
                b = j;
            }
    if (a < 0 || best > 4096)
        vt_fail("no two neighbouring %d-byte blocks among %d", SZ, N);
    free(v[b]);
    /* Deliberate overflow into the freed neighbour (volatile: not a dead
     * store the compiler may drop). */
    volatile unsigned char *o = v[a];
    for (size_t i = SZ; i < best + 48; i++)
        o[i] = 'X';
    for (int i = 0; i < 64; i++)
        sink = malloc(SZ);
    vt_report("after", "ok");
    return 0;
}

/* Runs normally under the given settings; reports lean_mode. */
static int sc_env(void)
{
    enum { N = 20000 };
    void **v = vt_map(N * sizeof(void *));
    for (int i = 0; i < N; i++) {
        v[i] = malloc(16 + (size_t)i % 1025);
        if (!v[i])
            vt_fail("malloc failed");
        vt_stamp(v[i], 16, (unsigned)i);
    }
    for (int i = 0; i < N; i++) {
        if (vt_check(v[i], 16, (unsigned)i) != (size_t)-1)
            vt_fail("block %d corrupted", i);
        free(v[i]);
    }
    struct hakmem_stats st;
    vt_stats(&st);
    vt_report("lean_mode", "%llu", (unsigned long long)st.lean_mode);
    return 0;
}

static const struct vt_scenario scenarios[] = {
    {"df_immediate", sc_df_immediate, 0},
    {"df_delayed", sc_df_delayed, 0},
    {"df_large", sc_df_large, 0},
    {"df_released", sc_df_released, 0},
    {"if_one", sc_if_one, 0},
    {"if_plus1", sc_if_plus1, 0},
    {"if_interior", sc_if_interior, 0},
    {"if_stack", sc_if_stack, 0},
    {"if_foreign", sc_if_foreign, 0},
    {"waf", sc_waf, 0},
    {"overflow", sc_overflow, 0},
    {"env", sc_env, 0},
    {NULL, NULL, 0},
};

/* ------------------------------------------------------------------------ */
/* Parent. */

static const struct vt_mode all_modes[] = {
    {VT_FAST, {NULL}},
    {VT_LEAN, {"HAKMEM_SS_MEM_LEAN=0"}},
    {VT_LEAN, {"HAKMEM_SS_MEM_LEAN=1", "HAKMEM_SS_MEM_LEAN_TARGET_MB=0", "HAKMEM_SS_MEM_LEAN_DECOMMIT=FREE"}},
    {VT_LEAN, {"HAKMEM_SS_MEM_LEAN=1", "HAKMEM_SS_MEM_LEAN_TARGET_MB=0", "HAKMEM_SS_MEM_LEAN_DECOMMIT=DONTNEED"}},
    {VT_LEAN, {"HAKMEM_SS_MEM_LEAN=1", "HAKMEM_SS_MEM_LEAN_TARGET_MB=0", "HAKMEM_SS_MEM_LEAN_DECOMMIT=OFF"}},
    {VT_DEBUG, {"HAKMEM_SS_MEM_LEAN=0"}},
    {VT_DEBUG, {"HAKMEM_SS_MEM_LEAN=1", "HAKMEM_SS_MEM_LEAN_TARGET_MB=0", "HAKMEM_SS_MEM_LEAN_DECOMMIT=FREE"}},
    {VT_DEBUG, {"HAKMEM_SS_MEM_LEAN=1", "HAKMEM_SS_MEM_LEAN_TARGET_MB=0", "HAKMEM_SS_MEM_LEAN_DECOMMIT=DONTNEED"}},
    {VT_DEBUG, {"HAKMEM_SS_MEM_LEAN=1", "HAKMEM_SS_MEM_LEAN_TARGET_MB=0", "HAKMEM_SS_MEM_LEAN_DECOMMIT=OFF"}},
};
#define NMODES (sizeof all_modes / sizeof all_modes[0])
static const struct vt_mode *modes[NMODES];
static int nmodes;

struct misuse {
    const char *scenario;
    const char *kind;  /* expected in `hakmem: error: KIND`; NULL: double or invalid free */
    int debug_only;
};

static const struct misuse misuses[] = {
    {"df_immediate", "double free", 0},
    {"df_delayed", "double free", 0},
    {"df_large", "double free", 0},
    {"df_released", NULL, 0},
    {"if_one", "invalid free", 0},
    {"if_plus1", "invalid free", 0},
    {"if_interior", "invalid free", 0},
    {"if_stack", "invalid free", 0},
    {"if_foreign", "invalid free", 0},
};
#define NMISUSES (sizeof misuses / sizeof misuses[0])

static void check_misuse(const struct vt_mode *m, const char *scenario, const char *kind)
{
    struct vt_result *r = malloc(sizeof *r);
    vt_spawn(m->variant, scenario, m->env, 60, r);
    int errors = vt_count_lines(r->err, "hakmem: error: ");
    int matching = 0;
    if (kind) {
        char pfx[96];
        snprintf(pfx, sizeof pfx, "hakmem: error: %s", kind);
        matching = vt_count_lines(r->err, pfx);
    } else {
        matching = vt_count_lines(r->err, "hakmem: error: double free") +
                   vt_count_lines(r->err, "hakmem: error: invalid free");
    }
    /* The scenario writes nothing to stderr itself: the one line is all of
     * it (not merely the only line that starts with `hakmem: error:`). */
    vt_assert_r(r, vt_total_lines(r->err) == 1, "stderr must be that one line only");
    if (m->variant == VT_DEBUG) {
        vt_assert_r(r, WIFSIGNALED(r->status) && WTERMSIG(r->status) == SIGABRT, "the debug build must abort");
        vt_assert_r(r, errors == 1 && matching == 1, "one `hakmem: error: %s` line expected",
                    kind ? kind : "double/invalid free");
    } else {
        vt_assert_r(r, vt_exited_ok(r), "the program must go on after the misuse");
        vt_assert_r(r, errors == 1 && matching == 1, "one `hakmem: error: %s` line expected",
                    kind ? kind : "double/invalid free");
        vt_assert_r(r, vt_str(r, "after") && strcmp(vt_str(r, "after"), "ok") == 0, "allocation after the misuse");
    }
    free(r);
}

/* _i = mode * NMISUSES + misuse */
START_TEST(test_misuse)
{
    const struct vt_mode *m = modes[_i / NMISUSES];
    const struct misuse *u = &misuses[_i % NMISUSES];
    check_misuse(m, u->scenario, u->kind);
}
END_TEST

/* B.16: _i = mode. */
START_TEST(test_write_after_free)
{
    const struct vt_mode *m = modes[_i];
    struct vt_result *r = malloc(sizeof *r);
    vt_spawn(m->variant, "waf", m->env, 60, r);
    if (m->variant == VT_DEBUG) {
        vt_assert_r(r, WIFSIGNALED(r->status) && WTERMSIG(r->status) == SIGABRT, "the debug build must abort");
        vt_assert_r(r, vt_count_lines(r->err, "hakmem: error: write after free") == 1 &&
                           vt_total_lines(r->err) == 1,
                    "one `hakmem: error: write after free` line expected, and nothing else");
        vt_spawn(m->variant, "overflow", m->env, 60, r);
        vt_assert_r(r, WIFSIGNALED(r->status) && WTERMSIG(r->status) == SIGABRT,
                    "the debug build must abort on an overflow into a free block");
        /* The overflow runs over the free neighbour's link first: caught as
         * a corrupted free list when the link is followed (every build),
         * or by the junk check (debug) if only the junk was hit. */
        vt_assert_r(r, vt_count_lines(r->err, "hakmem: error: write after free") +
                                   vt_count_lines(r->err, "hakmem: error: corrupted free list") == 1 &&
                           vt_total_lines(r->err) == 1,
                    "one `hakmem: error: write after free` or `corrupted free list` line expected, and nothing else");
    } else {
        /* Not detected, but every block handed out is still hakmem's own. */
        vt_assert_r(r, vt_exited_ok(r), "the program must go on");
        vt_assert_r(r, vt_str(r, "after") != NULL, "allocation after the write");
    }
    free(r);
}
END_TEST

/* B.17 */
struct badenv {
    const char *var;  /* "NAME=VALUE" */
    const char *name; /* NAME */
};
static const struct badenv badenvs[] = {
    {"HAKMEM_SS_MEM_LEAN=banana", "HAKMEM_SS_MEM_LEAN"},
    {"HAKMEM_SS_MEM_LEAN_TARGET_MB=-5", "HAKMEM_SS_MEM_LEAN_TARGET_MB"},
    {"HAKMEM_SS_MEM_LEAN_DECOMMIT=maybe", "HAKMEM_SS_MEM_LEAN_DECOMMIT"},
};
#define NBAD (sizeof badenvs / sizeof badenvs[0])

/* The `hakmem: NAME=...` line of a verbose dump, up to the comment. */
static const char *dump_line(const char *err, const char *name, char *buf, size_t n)
{
    char pfx[128];
    snprintf(pfx, sizeof pfx, "hakmem: %s=", name);
    const char *p = strstr(err, pfx);
    if (!p)
        return NULL;
    size_t len = strcspn(p, "#\n");
    while (len && p[len - 1] == ' ')
        len--;
    if (len >= n)
        len = n - 1;
    memcpy(buf, p, len);
    buf[len] = '\0';
    return buf;
}

/* _i = mode * NBAD + bad. The bad value comes on top of the mode's own
 * settings (minus the variable it replaces). */
START_TEST(test_bad_env)
{
    const struct vt_mode *m = modes[_i / NBAD];
    const struct badenv *b = &badenvs[_i % NBAD];
    const char *env[8], *envv[8];
    int k = 0;
    size_t nl = strlen(b->name);
    for (int i = 0; m->env[i]; i++)
        if (!(strncmp(m->env[i], b->name, nl) == 0 && m->env[i][nl] == '='))
            env[k++] = m->env[i];
    int base_n = k;
    env[k++] = b->var;
    env[k] = NULL;
    for (int i = 0; i < k; i++)
        envv[i] = env[i];
    envv[k] = "HAKMEM_VERBOSE=1";
    envv[k + 1] = NULL;

    struct vt_result *r = malloc(sizeof *r), *base = malloc(sizeof *base);
    vt_spawn(m->variant, "env", env, 60, r);
    vt_assert_r(r, vt_exited_ok(r), "the program must run");
    int warnings = vt_count_lines(r->err, "hakmem: warning: ");
    int lines = vt_total_lines(r->err);
    if (m->variant == VT_FAST) {
        /* No LEAN code here: warning about it is allowed, not required. */
        vt_assert_r(r, lines == warnings && warnings <= 1, "at most one line, a warning");
    } else {
        vt_assert_r(r, lines == 1 && warnings == 1, "exactly one line on stderr, a warning");
    }
    if (warnings)
        vt_assert_r(r, strstr(r->err, b->name) != NULL, "the warning names %s", b->name);

    /* Default kept: same lean_mode and same dumped value as without it. */
    int64_t lean_mode = vt_num(r, "lean_mode", NULL);
    const char *benv[8];
    for (int i = 0; i < base_n; i++)
        benv[i] = env[i];
    benv[base_n] = "HAKMEM_VERBOSE=1";
    benv[base_n + 1] = NULL;
    vt_spawn(m->variant, "env", benv, 60, base);
    vt_assert_r(base, vt_exited_ok(base), "baseline run");
    vt_assert_r(r, lean_mode == vt_num(base, "lean_mode", NULL), "lean_mode %lld differs from the default's %lld",
                (long long)lean_mode, (long long)vt_num(base, "lean_mode", NULL));
    vt_spawn(m->variant, "env", envv, 60, r);
    vt_assert_r(r, vt_exited_ok(r), "the program must run with HAKMEM_VERBOSE=1");
    char l1[256], l2[256];
    const char *a = dump_line(r->err, b->name, l1, sizeof l1);
    const char *d = dump_line(base->err, b->name, l2, sizeof l2);
    vt_assert_r(base, d != NULL, "HAKMEM_VERBOSE=1 lists %s", b->name);
    vt_assert_r(r, a != NULL && strcmp(a, d) == 0, "dump says `%s`, default run says `%s`", a ? a : "(none)", d);
    vt_assert_r(r, strstr(a, "(default)") != NULL, "the value is the default");
    free(r);
    free(base);
}
END_TEST

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--scenario") == 0)
        return vt_scenario_main(scenarios, argv[2]);
    vt_require_builddir();
    nmodes = (int)vt_select_modes(all_modes, NMODES, modes);
    if (!nmodes) {
        printf("SKIP: no library to test\n");
        return VT_EXIT_SKIP;
    }
    Suite *s = suite_create("misuse");
    TCase *tc = tcase_create("free");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_misuse, 0, nmodes * (int)NMISUSES);
    suite_add_tcase(s, tc);
    tc = tcase_create("write_after_free");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_write_after_free, 0, nmodes);
    suite_add_tcase(s, tc);
    tc = tcase_create("bad_env");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_bad_env, 0, nmodes * (int)NBAD);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
