/* at_common.h: helpers shared by the attack suite (tests/attack).
 *
 * The attack programs follow the variant-matrix pattern (vt_common.h): run
 * without arguments, a program is a Check suite under glibc's malloc; each
 * test case runs the same executable again as
 *     PROGRAM --scenario FAMILY:ARG:ARG...
 * with LD_PRELOAD of one hakmem library and the mode's environment. The
 * scenario, running under hakmem, attacks the heap the way a program with
 * a memory-safety bug would (a write after free over a free-list link, an
 * overflow into a free neighbour, a double free, a replayed link or tag)
 * and reports what malloc handed back as `key=value` lines. The parent
 * accepts exactly:
 *   - attack cases: SIGABRT after one `hakmem: error: corrupted free list`
 *     line, or exit 0 with the planted address never handed out;
 *   - misuse cases: the expected `hakmem: error: ...` line, then SIGABRT
 *     (debug build) or exit 0 with the heap intact (other builds).
 * Anything else (the planted address returned, SIGSEGV, a block handed out
 * twice while live, a hang) fails with the scenario's own account.
 *
 * The arguments travel in the scenario name (not in the environment) so
 * that every failure message names the exact case, and so that a case can
 * be rerun by hand:
 *     LD_PRELOAD=$PWD/src/.libs/libhakmem.so VT_VARIANT=fast \
 *         tests/attack/at_freelist --scenario uaf:global:8:48
 *
 * Header-only (static functions): each program is one .c file.
 */
#ifndef AT_COMMON_H
#define AT_COMMON_H

#include "vt_common.h"

#include <check.h>
#include <malloc.h>

/* The modes every case runs in: the FAST-only library; the LEAN-capable
 * one with LEAN off, and with LEAN on and a budget of 0 (every superslab
 * and unused slab given back at once) under both decommit strategies; the
 * debug library. */
static const struct vt_mode at_all_modes[] = {
    {VT_FAST, {NULL}},
    {VT_LEAN, {"HAKMEM_SS_MEM_LEAN=0"}},
    {VT_LEAN, {"HAKMEM_SS_MEM_LEAN=1", "HAKMEM_SS_MEM_LEAN_TARGET_MB=0", "HAKMEM_SS_MEM_LEAN_DECOMMIT=FREE"}},
    {VT_LEAN, {"HAKMEM_SS_MEM_LEAN=1", "HAKMEM_SS_MEM_LEAN_TARGET_MB=0", "HAKMEM_SS_MEM_LEAN_DECOMMIT=DONTNEED"}},
    {VT_DEBUG, {NULL}},
};
#define AT_NMODES (sizeof at_all_modes / sizeof at_all_modes[0])

/* The columns of abort_on_error, for the suites of misuse the libraries
 * name (at_misuse, at_bounds): the release libraries with it on (as a
 * variable, and as a key of HAKMEM_CONF), where every misuse named must
 * stop the program; the debug library with it off, where a misuse named
 * is ignored as in the release libraries. */
static const struct vt_mode at_abort_modes[] = {
    {VT_FAST, {"HAKMEM_ABORT_ON_ERROR=1"}},
    {VT_LEAN, {"HAKMEM_CONF=abort_on_error:1", "HAKMEM_SS_MEM_LEAN=1", "HAKMEM_SS_MEM_LEAN_TARGET_MB=0"}},
    {VT_DEBUG, {"HAKMEM_ABORT_ON_ERROR=0"}},
};
#define AT_NABORT_MODES (sizeof at_abort_modes / sizeof at_abort_modes[0])
#define AT_MAX_MODES 16

/* The table at_main runs (a suite may set its own before at_main). */
static const struct vt_mode *at_mode_table = at_all_modes;
static size_t at_mode_count = AT_NMODES;

/* Does the mode stop the program after naming a misuse: the debug library
 * unless abort_on_error is off, any library with it on? */
__attribute__((unused)) static int at_mode_aborts(const struct vt_mode *m)
{
    int aborts = m->variant == VT_DEBUG;
    for (int i = 0; i < 5 && m->env[i]; i++) {
        if (strstr(m->env[i], "ABORT_ON_ERROR=1") || strstr(m->env[i], "abort_on_error:1"))
            aborts = 1;
        if (strstr(m->env[i], "ABORT_ON_ERROR=0") || strstr(m->env[i], "abort_on_error:0"))
            aborts = 0;
    }
    return aborts;
}

/* Block sizes the attacks run with: the smallest class, a small odd one, a
 * mid-size one, and a page-sized one (16 blocks per 64 KiB slab). */
static const size_t at_sizes[] = {16, 48, 256, 4096};
#define AT_NSIZES (sizeof at_sizes / sizeof at_sizes[0])

/* A child that hangs (a free-list cycle followed for ever) ends as SIGALRM. */
#define AT_CHILD_TIMEOUT_S 10

/* ------------------------------------------------------------------------ */
/* Scenario side (runs under hakmem). */

/* Scenario arguments: the name's fields after the family, split on ':'. */
static char at_argbuf[256];
static const char *at_argv[8];
static int at_argc;

/* Field i of the scenario name (0 is the family); "" if absent. */
__attribute__((unused)) static const char *at_arg(int i) { return i < at_argc ? at_argv[i] : ""; }

__attribute__((unused)) static size_t at_arg_size(int i)
{
    const char *s = at_arg(i);
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end)
        vt_fail("scenario argument %d (`%s`) is not a size", i, s);
    return (size_t)v;
}

/* The misuse is deliberate: called through volatile pointers so that the
 * compiler neither warns about it nor drops it. */
static void (*volatile at_bad_free)(void *) = free;
static void *(*volatile at_bad_realloc)(void *, size_t) = realloc;
/* An ordinary free of a block the scenario goes on to read or write after
 * the free on purpose: through a volatile pointer too, so that the
 * compiler does not reject (or reason away) the later use. */
static void (*volatile at_free)(void *) = free;

/* Word i of a block, read or written through a volatile pointer: these
 * are writes to freed memory, which the compiler may otherwise assume dead. */
__attribute__((unused)) static uintptr_t at_word(const void *p, int i)
{
    return ((const volatile uintptr_t *)p)[i];
}

__attribute__((unused)) static void at_set_word(void *p, int i, uintptr_t v)
{
    ((volatile uintptr_t *)p)[i] = v;
}

/* A fake free block at the planted address, laid out the way an attacker
 * who knows the allocator would lay it out: a NULL link (the list ends
 * there cleanly, so an allocator that hands it out goes on working and the
 * failure is reported rather than turning into a crash), an empty tag, and
 * the rest filled with 0xDF, the debug build's junk byte, so that its check
 * of a block being handed out again does not catch the fake either. Only a
 * check of the link itself can refuse it. */
#define AT_FAKE_BYTES 8192 /* more than the largest victim block (4096 + debug canary room) */
__attribute__((unused)) static void at_fake_prepare(void *p, size_t n)
{
    memset(p, 0xDF, n);
    at_set_word(p, 0, 0);
    at_set_word(p, 1, 0);
}

/* Global targets: a fake block, and an object for the invalid-free case. */
__attribute__((unused)) static unsigned char at_global_fake[AT_FAKE_BYTES] __attribute__((aligned(64)));
__attribute__((unused)) static unsigned char at_global_obj[256] __attribute__((aligned(64)));

/* The distance between neighbouring blocks of `size`: the block size
 * (larger than the request in the debug build, which keeps a canary after
 * each block). The probe blocks stay allocated. */
__attribute__((unused)) static size_t at_block_stride(size_t size)
{
    enum { K = 8 };
    uintptr_t v[K];
    size_t best = (size_t)-1;
    for (int i = 0; i < K; i++) {
        v[i] = (uintptr_t)malloc(size);
        if (!v[i])
            vt_fail("malloc(%zu) failed", size);
    }
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++)
            if (v[j] > v[i] && v[j] - v[i] < best)
                best = v[j] - v[i];
    if (best < size || best > 2 * size + 4096)
        vt_fail("no two neighbouring %zu-byte blocks among %d", size, K);
    return best;
}

/* Blocks of `size` all in one 64 KiB slab: allocated in a row, retried
 * (the strays stay allocated) until a row does not straddle two slabs. The
 * newest blocks are in the slab malloc is serving from, so a block freed
 * among them is the next one handed out and its link the next followed.
 * Callers keep at least one of the row live, so that the slab never
 * empties (and is never given back) while the others are free. */
__attribute__((unused)) static void at_group_alloc(size_t size, void **out, int n)
{
    for (int attempt = 0; attempt < 16; attempt++) {
        int same = 1;
        for (int i = 0; i < n; i++) {
            out[i] = malloc(size);
            if (!out[i])
                vt_fail("malloc(%zu) failed", size);
            same &= ((uintptr_t)out[i] >> 16) == ((uintptr_t)out[0] >> 16);
        }
        if (same)
            return;
    }
    vt_fail("no %d %zu-byte blocks in one slab", n, size);
}

/* The planted address, how close to it a returned pointer counts as
 * handing it out, and how many mallocs have been watched. */
static uintptr_t at_planted;
static size_t at_planted_window;
static int at_nwatched;

/* A planted address outside the victims' slab: any pointer within 64
 * bytes of it is a hit. A live block of the victims' own slab (`window`
 * is its block size): only a pointer into that block is; its neighbours
 * are ordinary blocks. */
__attribute__((unused)) static void at_plant_window(const void *p, size_t window)
{
    at_planted = (uintptr_t)p;
    at_planted_window = window;
    vt_report("planted", "%p", p);
}

__attribute__((unused)) static void at_plant(const void *p) { at_plant_window(p, 64); }

/* Check one pointer malloc returned after the attack. Handing out the
 * planted address (or memory near it: at_plant_window) is the failure the
 * suite exists to catch: report it and stop at once, before the program
 * writes through it. `report` is 0 for the long loops (only the hit and a
 * count are reported). */
__attribute__((unused)) static void at_watch(void *q, int report)
{
    int i = at_nwatched++;
    if (report) {
        char k[32];
        snprintf(k, sizeof k, "got%d", i);
        vt_report(k, "%p", q);
    }
    if (q && at_planted) {
        uintptr_t a = (uintptr_t)q;
        uintptr_t d = a > at_planted ? a - at_planted : at_planted - a;
        if (d < at_planted_window) {
            vt_report("planted_hit", "%d", i);
            vt_report("planted_hit_addr", "%p", q);
            _exit(3);
        }
    }
    if (!q)
        vt_fail("malloc #%d after the attack returned NULL", i);
    if (vt_owns(q) != 1)
        vt_fail("malloc #%d after the attack returned %p, which hakmem does not own", i, q);
}

/* Live blocks the scenario holds, each stamped with its own salt: a block
 * handed out twice, or overlapping another, shows as a duplicate, an
 * overlap or a broken stamp. Kept in memory of our own (mmap), not the
 * heap under attack. */
struct at_live {
    void *p;
    size_t n;
    size_t skip; /* bytes at the start left unstamped */
};
static struct at_live *at_live_v;
static int at_live_n, at_live_cap;

__attribute__((unused)) static void at_live_add_from(void *p, size_t n, size_t skip)
{
    if (!at_live_v) {
        at_live_cap = 16384; /* a slab of 16-byte blocks, and more */
        at_live_v = vt_map((size_t)at_live_cap * sizeof *at_live_v);
    }
    if (at_live_n == at_live_cap)
        vt_fail("more than %d live blocks", at_live_cap);
    uintptr_t a = (uintptr_t)p;
    for (int i = 0; i < at_live_n; i++) {
        uintptr_t b = (uintptr_t)at_live_v[i].p;
        if (a < b + at_live_v[i].n && b < a + n) {
            vt_report("dup", "%p", p);
            vt_fail("malloc returned %p (%zu bytes), which overlaps live block %p (%zu bytes) it handed out "
                    "before: a block handed out twice",
                    p, n, at_live_v[i].p, at_live_v[i].n);
        }
    }
    if (skip < n)
        vt_stamp((char *)p + skip, n - skip, (unsigned)at_live_n);
    at_live_v[at_live_n].p = p;
    at_live_v[at_live_n].n = n;
    at_live_v[at_live_n].skip = skip;
    at_live_n++;
}

__attribute__((unused)) static void at_live_add(void *p, size_t n) { at_live_add_from(p, n, 0); }

/* Every live block still carries its stamp. */
__attribute__((unused)) static void at_live_verify(void)
{
    for (int i = 0; i < at_live_n; i++) {
        struct at_live *l = &at_live_v[i];
        size_t off = l->skip < l->n ? vt_check((char *)l->p + l->skip, l->n - l->skip, (unsigned)i) : (size_t)-1;
        if (off != (size_t)-1)
            vt_fail("live block %p (%zu bytes) was overwritten at offset %zu: it overlaps another block",
                    l->p, l->n, l->skip + off);
    }
}

/* `count` mallocs of `size`, all kept live and checked against every live
 * block, then every stamp verified: the heap is intact after the misuse. */
__attribute__((unused)) static void at_batch_check(size_t size, int count)
{
    for (int i = 0; i < count; i++) {
        void *q = malloc(size);
        if (!q)
            vt_fail("malloc(%zu) #%d after the misuse returned NULL", size, i);
        if (vt_owns(q) != 1)
            vt_fail("malloc(%zu) #%d after the misuse returned %p, which hakmem does not own", size, i, q);
        at_live_add(q, size);
    }
    at_live_verify();
    vt_report("after", "ok");
}

/* Scenario entry: split the name, then run the family's function through
 * vt_scenario_main (which first proves the right hakmem is preloaded). */
__attribute__((unused)) static int at_scenario_main(const struct vt_scenario *table, const char *name)
{
    snprintf(at_argbuf, sizeof at_argbuf, "%s", name);
    at_argc = 0;
    for (char *s = at_argbuf; s && at_argc < (int)(sizeof at_argv / sizeof at_argv[0]);) {
        at_argv[at_argc++] = s;
        s = strchr(s, ':');
        if (s)
            *s++ = '\0';
    }
    return vt_scenario_main(table, at_argv[0]);
}

/* ------------------------------------------------------------------------ */
/* Parent side. */

enum at_expect {
    /* The free-list attacks: abort with `corrupted free list`, or exit 0
     * with the planted address never handed out. */
    AT_ATTACK,
    /* The same, and on exit 0 the attacked block must have come back
     * (otherwise its link was never followed: the case tested nothing). */
    AT_ATTACK_REUSED,
    /* Misuse: the named `hakmem: error:` line; debug aborts, the others go
     * on with the heap intact. */
    AT_MISUSE,
    /* Misuse that must be diagnosed at the second of two calls, never the
     * first (scenario reports first_free=ok in between). */
    AT_MISUSE_SECOND,
    /* No misuse at all (a forged tag on a live block): no diagnosis, exit 0,
     * the block taken back as a normal free. */
    AT_CLEAN,
    /* A property of the allocator the scenario checks itself: no
     * diagnosis, exit 0, the scenario finished. */
    AT_OK,
    /* A bad access that guarded sampling turns into a fault: SIGSEGV
     * after exactly one `hakmem: error: KIND` line (the report), and the
     * scenario never went past the access. */
    AT_FAULT,
};

struct at_case {
    char name[64];       /* the scenario name: FAMILY:ARGS */
    enum at_expect expect;
    const char *kinds[3]; /* accepted `hakmem: error: KIND` (misuse; attack: besides
                             `corrupted free list`) */
};

static const struct vt_mode *at_modes[AT_MAX_MODES];
static int at_nmodes;

static int at_is_abort(const struct vt_result *r)
{
    return WIFSIGNALED(r->status) && WTERMSIG(r->status) == SIGABRT;
}

/* The scenario's own account of a failure (its fail= line), for messages. */
static const char *at_fail_line(const struct vt_result *r)
{
    const char *f = vt_str(r, "fail");
    return f ? f : "(none)";
}

static int at_matching_kind(const struct vt_result *r, const struct at_case *c)
{
    int n = 0;
    for (int i = 0; i < 3 && c->kinds[i]; i++) {
        char pfx[96];
        snprintf(pfx, sizeof pfx, "hakmem: error: %s", c->kinds[i]);
        n += vt_count_lines(r->err, pfx);
    }
    return n;
}

static const char *at_kinds_str(const struct at_case *c)
{
    static char buf[160];
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; i < 3 && c->kinds[i]; i++)
        off += (size_t)snprintf(buf + off, sizeof buf - off, "%s`hakmem: error: %s`", i ? " or " : "",
                                c->kinds[i]);
    return buf;
}

/* Attack cases. Checked in this order, so that the message names the worst
 * thing that happened. */
static void at_check_attack(const struct vt_result *r, const struct at_case *c)
{
    int hit_found;
    char hit[64], addr[64], planted[64];
    /* vt_str returns a static buffer: copy each value out. */
    snprintf(hit, sizeof hit, "%s", vt_str(r, "planted_hit") ? vt_str(r, "planted_hit") : "?");
    snprintf(addr, sizeof addr, "%s", vt_str(r, "planted_hit_addr") ? vt_str(r, "planted_hit_addr") : "?");
    snprintf(planted, sizeof planted, "%s", vt_str(r, "planted") ? vt_str(r, "planted") : "?");
    vt_num(r, "planted_hit", &hit_found);
    vt_assert_r(r, !hit_found,
                "malloc handed out the planted address: malloc #%s returned %s, planted %s. A forged free-list "
                "link was followed without being checked",
                hit, addr, planted);
    vt_assert_r(r, !vt_str(r, "dup"), "a block was handed out twice while live: %s", at_fail_line(r));
    int errors = vt_count_lines(r->err, "hakmem: error: ");
    int corrupt = vt_count_lines(r->err, "hakmem: error: corrupted free list");
    if (at_is_abort(r)) {
        /* Another diagnosis (the debug build's `write after free`) means
         * the forged link was accepted and something later caught it. A
         * case may accept more kinds (an overflow caught by its canary). */
        int accepted = c->kinds[0] ? at_matching_kind(r, c) + corrupt : corrupt;
        vt_assert_r(r, accepted == 1 && errors == 1,
                    "an abort must follow exactly one `hakmem: error: corrupted free list` line%s%s (found %d "
                    "error lines): a different diagnosis means the forged link was accepted and only a later "
                    "check stopped the program",
                    c->kinds[0] ? " or " : "", c->kinds[0] ? at_kinds_str(c) : "", errors);
        return;
    }
    vt_assert_r(r, !WIFSIGNALED(r->status),
                "the attacked program died of %s: a corrupted free-list link was followed without being "
                "checked (expected SIGABRT with `hakmem: error: corrupted free list`, or harmless completion)",
                vt_status_str(r->status));
    vt_assert_r(r, vt_exited_ok(r), "the scenario failed: %s", at_fail_line(r));
    vt_assert_r(r, corrupt == 0, "`corrupted free list` was reported but the program was not aborted");
    vt_assert_r(r, errors == 0, "harmless completion, yet a `hakmem: error:` line");
    if (c->expect == AT_ATTACK_REUSED)
        vt_assert_r(r, vt_num(r, "reused", NULL) > 0,
                    "the attacked block never came back, so its link was never followed: the case tested "
                    "nothing");
    vt_assert_r(r, vt_str(r, "after") && strcmp(vt_str(r, "after"), "ok") == 0, "the scenario did not finish");
}

static void at_check_misuse(const struct vt_result *r, const struct at_case *c, int aborts)
{
    int errors = vt_count_lines(r->err, "hakmem: error: ");
    int matching = at_matching_kind(r, c);
    vt_assert_r(r, !vt_str(r, "dup"), "a block was handed out twice while live: %s", at_fail_line(r));
    if (c->expect == AT_MISUSE_SECOND)
        vt_assert_r(r, vt_str(r, "first_free") != NULL,
                    "the first free, of a live block carrying a copied free tag, was taken for a double free "
                    "(the tag of one block must not pass for another's)");
    if (aborts) {
        vt_assert_r(r, at_is_abort(r),
                    "the debug build, or abort_on_error:1, must abort after the diagnosis (got %s)",
                    vt_status_str(r->status));
        vt_assert_r(r, errors == 1 && matching == 1, "exactly one %s line expected (found %d error lines)",
                    at_kinds_str(c), errors);
        return;
    }
    vt_assert_r(r, !WIFSIGNALED(r->status), "the program died of %s after the misuse; it must go on",
                vt_status_str(r->status));
    vt_assert_r(r, vt_exited_ok(r), "the scenario failed: %s", at_fail_line(r));
    vt_assert_r(r, errors == 1 && matching == 1, "exactly one %s line expected (found %d error lines)",
                at_kinds_str(c), errors);
    vt_assert_r(r, vt_str(r, "after") && strcmp(vt_str(r, "after"), "ok") == 0,
                "the heap was not checked after the misuse");
    if (c->expect == AT_MISUSE_SECOND)
        vt_assert_r(r, vt_str(r, "second_free") != NULL, "the second free did not return");
}

static void at_check_clean(const struct vt_result *r)
{
    int errors = vt_count_lines(r->err, "hakmem: error: ");
    vt_assert_r(r, errors == 0,
                "a free of a live block was diagnosed (%d error lines): a free tag copied or computed from "
                "another block must not pass for this one's",
                errors);
    vt_assert_r(r, !vt_str(r, "dup"), "a block was handed out twice while live: %s", at_fail_line(r));
    vt_assert_r(r, vt_exited_ok(r), "the scenario failed (%s): %s", vt_status_str(r->status), at_fail_line(r));
    vt_assert_r(r, vt_num(r, "c_reused", NULL) == 1,
                "the freed block never came back: its free was ignored instead of taken as a normal free");
    vt_assert_r(r, vt_str(r, "after") && strcmp(vt_str(r, "after"), "ok") == 0, "the scenario did not finish");
}

static void at_run_case(const struct vt_mode *m, const struct at_case *c)
{
    struct vt_result *r = malloc(sizeof *r);
    vt_spawn(m->variant, c->name, m->env, AT_CHILD_TIMEOUT_S, r);
    /* A scenario that could not even start (wrong library) is a hard error
     * of the harness, not a verdict on the allocator. */
    if (WIFEXITED(r->status) && WEXITSTATUS(r->status) == VT_EXIT_HARD)
        ck_abort_msg("%s: the scenario could not run: %s", r->desc, r->out);
    vt_assert_r(r, !(WIFSIGNALED(r->status) && WTERMSIG(r->status) == SIGALRM),
                "the scenario hung (killed after %d s): a corrupted free list was followed in a cycle?",
                AT_CHILD_TIMEOUT_S);
    switch (c->expect) {
    case AT_ATTACK:
    case AT_ATTACK_REUSED:
        at_check_attack(r, c);
        break;
    case AT_MISUSE:
    case AT_MISUSE_SECOND:
        at_check_misuse(r, c, at_mode_aborts(m));
        break;
    case AT_CLEAN:
        at_check_clean(r);
        break;
    case AT_FAULT: {
        int errors = vt_count_lines(r->err, "hakmem: error: ");
        vt_assert_r(r, WIFSIGNALED(r->status) && WTERMSIG(r->status) == SIGSEGV,
                    "the bad access must fault (SIGSEGV), got %s", vt_status_str(r->status));
        vt_assert_r(r, errors == 1 && at_matching_kind(r, c) == 1, "exactly one %s line expected (found %d error lines)",
                    at_kinds_str(c), errors);
        vt_assert_r(r, !vt_str(r, "past"), "the scenario went on after the bad access");
        break;
    }
    case AT_OK:
        vt_assert_r(r, vt_exited_ok(r), "the scenario failed (%s): %s", vt_status_str(r->status), at_fail_line(r));
        vt_assert_r(r, vt_count_lines(r->err, "hakmem: error: ") == 0, "a `hakmem: error:` line");
        vt_assert_r(r, vt_str(r, "after") && strcmp(vt_str(r, "after"), "ok") == 0, "the scenario did not finish");
        break;
    }
    free(r);
}

/* A family of cases, and the Check loop test that runs each in every mode:
 * _i = mode * ncases + case. */
struct at_family {
    const char *tcase; /* CK_RUN_CASE name */
    struct at_case *cases;
    int n;
    /* NULL: every mode; else the modes the family runs in (the others
     * pass without running, as their library does not claim the check). */
    int (*applies)(const struct vt_mode *m);
};

static struct at_family *at_families;
static int at_nfamilies;

START_TEST(at_test_case)
{
    /* The family is found from the loop index ranges set up in at_main. */
    int i = _i;
    for (int f = 0; f < at_nfamilies; f++) {
        int span = at_nmodes * at_families[f].n;
        if (i < span) {
            const struct vt_mode *m = at_modes[i / at_families[f].n];
            if (!at_families[f].applies || at_families[f].applies(m))
                at_run_case(m, &at_families[f].cases[i % at_families[f].n]);
            return;
        }
        i -= span;
    }
    ck_abort_msg("loop index %d out of range", _i);
}
END_TEST

/* Parent main: one Check test case per family, each looping over every
 * (mode, case). Returns the exit status. */
__attribute__((unused)) static int at_main(const char *suite, struct at_family *fams, int nfams)
{
    vt_require_builddir();
    at_nmodes = (int)vt_select_modes(at_mode_table, at_mode_count, at_modes);
    if (!at_nmodes) {
        printf("SKIP: no hakmem library is built\n");
        return VT_EXIT_SKIP;
    }
    at_families = fams;
    at_nfamilies = nfams;
    Suite *s = suite_create(suite);
    int base = 0;
    for (int f = 0; f < nfams; f++) {
        TCase *tc = tcase_create(fams[f].tcase);
        tcase_set_timeout(tc, 60);
        int span = at_nmodes * fams[f].n;
        tcase_add_loop_test(tc, at_test_case, base, base + span);
        suite_add_tcase(s, tc);
        base += span;
    }
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

/* Add a case to a family's table (the tables are static arrays sized by
 * the caller). */
__attribute__((unused, format(printf, 3, 4))) static void at_add(struct at_family *f, enum at_expect e,
                                                                 const char *fmt, ...)
{
    va_list ap;
    struct at_case *c = &f->cases[f->n++];
    memset(c, 0, sizeof *c);
    va_start(ap, fmt);
    vsnprintf(c->name, sizeof c->name, fmt, ap);
    va_end(ap);
    c->expect = e;
}

#endif /* AT_COMMON_H */
