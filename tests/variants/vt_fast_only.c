/* vt_fast_only: the FAST-only library has no LEAN code (DESIGN 1, 4).
 *
 * - `nm` of src/.libs/libhakmem.so lists none of ss_maybe_decommit_superslab,
 *   ss_os_madvise_guarded, ss_release_policy_note_reuse,
 *   ss_should_keep_superslab, while libhakmem_lean.so (and the debug
 *   library, which carries the LEAN code) list them all;
 * - with libhakmem.so, HAKMEM_SS_MEM_LEAN=1 (+ DONTNEED, TARGET_MB=0)
 *   changes nothing: lean_mode 0, no decommit, no superslab decommitted,
 *   Rss stays up after a freed burst; and HAKMEM_VERBOSE=1 says on a
 *   `hakmem:` line that lean is not built in (the lean library says it is).
 */
#include "vt_common.h"

#include <check.h>

static const char *const lean_syms[] = {"ss_maybe_decommit_superslab", "ss_os_madvise_guarded",
                                        "ss_release_policy_note_reuse", "ss_should_keep_superslab"};
#define NSYMS (sizeof lean_syms / sizeof lean_syms[0])

/* ------------------------------------------------------------------------ */
/* Scenario. */

static int sc_probe(void)
{
    enum { N = 40000 };
    void **v = vt_map(N * sizeof(void *));
    long rss0 = vt_smaps_field("Rss");
    for (int i = 0; i < N; i++) {
        v[i] = malloc(1024);
        if (!v[i])
            vt_fail("malloc failed");
        memset(v[i], 1, 1024);
    }
    long rss1 = vt_smaps_field("Rss");
    for (int i = 0; i < N; i++)
        free(v[i]);
    long rss2 = vt_smaps_field("Rss");
    vt_report("rss0_kb", "%ld", rss0);
    vt_report("rss1_kb", "%ld", rss1);
    vt_report("rss2_kb", "%ld", rss2);
    vt_report_stats("");
    return 0;
}

static const struct vt_scenario scenarios[] = {
    {"probe", sc_probe, 0},
    {NULL, NULL, 0},
};

/* ------------------------------------------------------------------------ */
/* Parent. */

/* How many of the LEAN symbols `nm` lists for the library; -1 if nm
 * cannot be run. */
static int count_syms(int variant, char *missing, size_t n)
{
    char lib[PATH_MAX], cmd[PATH_MAX + 64], line[1024];
    int found[NSYMS] = {0};
    vt_lib_path(variant, lib, sizeof lib);
    snprintf(cmd, sizeof cmd, "nm '%s' 2>/dev/null", lib);
    FILE *f = popen(cmd, "r");
    if (!f)
        return -1;
    int lines = 0;
    while (fgets(line, sizeof line, f)) {
        lines++;
        char *name = strrchr(line, ' ');
        name = name ? name + 1 : line;
        name[strcspn(name, "\n")] = '\0';
        for (size_t i = 0; i < NSYMS; i++)
            if (strcmp(name, lean_syms[i]) == 0)
                found[i] = 1;
    }
    int st = pclose(f);
    if (!lines || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return -1;
    int c = 0;
    missing[0] = '\0';
    for (size_t i = 0; i < NSYMS; i++) {
        c += found[i];
        if (found[i] == (variant == VT_FAST)) /* fast: list those present; others: those absent */
            snprintf(missing + strlen(missing), n - strlen(missing), " %s", lean_syms[i]);
    }
    return c;
}

START_TEST(test_symbols)
{
    char which[512];
    int c = count_syms(VT_FAST, which, sizeof which);
    if (c < 0) {
        printf("note: `nm` is not available or lists nothing for libhakmem.so: symbol check skipped\n");
        return;
    }
    /* The positive control: nm sees these names where the code is in. */
    int control = 0;
    for (int v = VT_LEAN; v <= VT_DEBUG; v++) {
        char absent[512];
        if (!vt_have(v))
            continue;
        int k = count_syms(v, absent, sizeof absent);
        ck_assert_msg(k == (int)NSYMS, "%s library lacks LEAN symbols:%s", vt_variant_names[v], absent);
        control = 1;
    }
    if (!control)
        printf("note: no lean or debug library: no positive control for the symbol check\n");
    ck_assert_msg(c == 0, "libhakmem.so contains LEAN code:%s", which);
}
END_TEST

START_TEST(test_lean_setting_ignored)
{
    static const char *const env[] = {"HAKMEM_SS_MEM_LEAN=1", "HAKMEM_SS_MEM_LEAN_DECOMMIT=DONTNEED",
                                      "HAKMEM_SS_MEM_LEAN_TARGET_MB=0", "HAKMEM_VERBOSE=1", NULL};
    struct vt_result *r = malloc(sizeof *r);
    vt_spawn(VT_FAST, "probe", env, 60, r);
    vt_assert_r(r, vt_exited_ok(r), "probe");
    vt_assert_r(r, vt_num(r, "lean_mode", NULL) == 0, "lean_mode must be 0");
    vt_assert_r(r, vt_num(r, "lean_decommit", NULL) == 0 && vt_num(r, "lean_retire", NULL) == 0,
                "no decommit in the FAST-only library");
    vt_assert_r(r, vt_num(r, "ss_decommitted", NULL) == 0, "no superslab decommitted");
    long rss0 = (long)vt_num(r, "rss0_kb", NULL), rss1 = (long)vt_num(r, "rss1_kb", NULL);
    long rss2 = (long)vt_num(r, "rss2_kb", NULL);
    if (rss0 >= 0)
        vt_assert_r(r, rss2 - rss0 >= (rss1 - rss0) * 3 / 4, "Rss must stay up (%ld -> %ld -> %ld KiB)", rss0,
                    rss1, rss2);
    /* One `hakmem:` line says lean is not built in. */
    int said = 0;
    for (const char *p = r->err; p && *p;) {
        size_t len = strcspn(p, "\n");
        if (strncmp(p, "hakmem:", 7) == 0 && memmem(p, len, "lean not built in", 17))
            said = 1;
        p += len;
        if (*p)
            p++;
    }
    vt_assert_r(r, said, "HAKMEM_VERBOSE=1 must say that lean is not built in");
    if (vt_have(VT_LEAN)) {
        vt_spawn(VT_LEAN, "probe", env, 60, r);
        vt_assert_r(r, vt_exited_ok(r), "probe (lean)");
        vt_assert_r(r, !strstr(r->err, "lean not built in"), "the lean library has the lean code");
        vt_assert_r(r, vt_num(r, "lean_mode", NULL) == 1, "the same settings turn LEAN on in libhakmem_lean");
    }
    free(r);
}
END_TEST

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--scenario") == 0)
        return vt_scenario_main(scenarios, argv[2]);
    vt_require_builddir();
    if (!vt_have(VT_FAST)) {
        printf("SKIP: libhakmem.so (the FAST-only library) is not built\n");
        return VT_EXIT_SKIP;
    }
    Suite *s = suite_create("fast_only");
    TCase *tc = tcase_create("fast_only");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_symbols);
    tcase_add_test(tc, test_lean_setting_ignored);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
