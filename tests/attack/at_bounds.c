/* at_bounds: writes outside a block, and a freed block handed straight
 * back (the guards of hakmem(3), "Misuse").
 *
 * Families:
 *   reuse    p = malloc(n); free(p); q = malloc(n) never gives q == p, in
 *            every library and mode, 2000 times in a row at each size
 *            (sizes 8, 16, 48, 256, 4096 and 20000: small blocks, each
 *            freed into a slab that stays in use), and with a block of
 *            another size freed in between: a dangling pointer must not be
 *            certain to alias the next object of its size.
 *   bounds   a 1-byte overflow (p[n] written), a 32-byte memcpy past the
 *            end, and a 1-byte underflow (p[-1] written) of blocks of 8 B,
 *            4 KiB, 100000 B (a medium block) and 256 KiB (the underflow
 *            of the small ones only: a medium or large block is checked at
 *            its end), then
 *            free(p): one `hakmem: error: heap overflow` or `heap
 *            underflow` line and SIGABRT in the debug library; the
 *            release libraries do not claim these (their cases pass
 *            without running).
 *   guarded  with guard_sample:1 (every block of up to 8 KiB guarded), in
 *            the FAST and LEAN libraries: an overflow of 1 byte or a
 *            memcpy of 32 past blocks of 8 B, 4 KiB and 8 KiB, a read
 *            after free, and an underflow of a 4 KiB block each fault
 *            (SIGSEGV) after one `heap-buffer-overflow` or
 *            `heap-use-after-free` report; a double free of a guarded
 *            block is named like any. The small victims have a live neighbour on
 *            each side in their slab, so that the memcpy lands in a live
 *            block, as in a program.
 */
#include "at_common.h"

/* ------------------------------------------------------------------------ */
/* Scenarios (under hakmem). */

/* reuse:SIZE */
static int sc_reuse(void)
{
    size_t size = at_arg_size(1);
    void *keep[16];
    for (int i = 0; i < 16; i++)
        keep[i] = malloc(size);
    for (int i = 0; i < 2000; i++) {
        void *p = malloc(size);
        if (!p)
            vt_fail("malloc(%zu) failed", size);
        at_free(p);
        void *q = malloc(size);
        if (q == p)
            vt_fail("round %d: malloc(%zu) handed back %p, the block freed just before", i, size, p);
        /* Another size in between changes nothing. */
        void *o = malloc(size * 2 + 1);
        at_free(o);
        void *r = malloc(size);
        if (r == q)
            vt_fail("round %d: the live block %p handed out twice", i, q);
        at_free(q);
        at_free(r);
    }
    for (int i = 0; i < 16; i++)
        free(keep[i]);
    vt_report("after", "ok");
    return 0;
}

/* A victim of `size` bytes with live blocks of the same size right before
 * and right after it in its slab (small sizes); the neighbours stay live
 * for good. A large block is allocated as it is. */
static unsigned char *victim(size_t size)
{
    if (size > 32768)
        return malloc(size);
    size_t stride = at_block_stride(size);
    enum { K = 48 };
    uintptr_t v[K];
    for (int i = 0; i < K; i++)
        if (!(v[i] = (uintptr_t)malloc(size)))
            vt_fail("malloc(%zu) failed", size);
    for (int i = 0; i < K; i++) {
        int before = 0, after = 0;
        for (int j = 0; j < K; j++) {
            before |= v[j] == v[i] - stride;
            after |= v[j] == v[i] + stride;
        }
        if (before && after && (v[i] & 0xffff) >= stride)
            return (unsigned char *)v[i];
    }
    vt_fail("no %zu-byte block among %d with live neighbours on both sides", size, K);
}

/* over:SIZE:BYTES: BYTES written past the end (1: a plain store; more: a
 * memcpy, as from a buffer one struct too long). */
static int sc_over(void)
{
    size_t size = at_arg_size(1), n = at_arg_size(2);
    unsigned char *p = victim(size);
    unsigned char src[64];
    memset(src, 'x', sizeof src);
    if (n == 1)
        ((volatile unsigned char *)p)[size] = 'x';
    else
        memcpy(p + size, (const unsigned char *volatile)src, n);
    vt_report("written", "%zu", n);
    at_free(p);
    vt_report("freed", "ok");
    vt_report("after", "ok");
    return 0;
}

/* under:SIZE: the byte before the block written. */
static int sc_under(void)
{
    size_t size = at_arg_size(1);
    unsigned char *p = victim(size);
    ((volatile unsigned char *)p)[-1] = 'x';
    vt_report("written", "1");
    at_free(p);
    vt_report("freed", "ok");
    vt_report("after", "ok");
    return 0;
}

/* Guarded sampling (guard_sample:1: every block of up to 8 KiB guarded). */

/* malloc, through a volatile pointer: the accesses below are outside the
 * block on purpose, and the compiler must neither warn nor reason about
 * them. */
static unsigned char *g_malloc(size_t size)
{
    unsigned char *volatile p = malloc(size);
    if (!p)
        vt_fail("malloc(%zu) failed", size);
    return p;
}

/* gover:SIZE:BYTES */
static int sc_gover(void)
{
    size_t size = at_arg_size(1), n = at_arg_size(2);
    unsigned char *p = g_malloc(size);
    unsigned char src[64];
    memset(src, 'x', sizeof src);
    vt_report("block", "%p", (void *)p);
    if (n == 1)
        ((volatile unsigned char *)p)[size] = 'x';
    else
        memcpy(p + size, (const unsigned char *volatile)src, n);
    vt_report("past", "the overflow");
    return 0;
}

/* gunder:SIZE */
static int sc_gunder(void)
{
    size_t size = at_arg_size(1);
    unsigned char *p = g_malloc(size);
    vt_report("block", "%p", (void *)p);
    ((volatile unsigned char *)p)[-1] = 'x';
    vt_report("past", "the underflow");
    return 0;
}

/* guaf:SIZE: a read of the block after its free. */
static int sc_guaf(void)
{
    size_t size = at_arg_size(1);
    unsigned char *p = g_malloc(size);
    vt_report("block", "%p", (void *)p);
    at_free(p);
    vt_report("read", "%d", ((volatile unsigned char *)p)[0]);
    vt_report("past", "the use after free");
    return 0;
}

/* gdouble:SIZE: a double free of a guarded block is named like any. */
static int sc_gdouble(void)
{
    size_t size = at_arg_size(1);
    void *p = malloc(size);
    at_free(p);
    at_bad_free(p);
    vt_report("misuse", "done");
    at_batch_check(size, 64);
    return 0;
}

static const struct vt_scenario scenarios[] = {
    {"gover", sc_gover, 0},
    {"gunder", sc_gunder, 0},
    {"guaf", sc_guaf, 0},
    {"gdouble", sc_gdouble, 0},
    {"reuse", sc_reuse, 0},
    {"over", sc_over, 0},
    {"under", sc_under, 0},
    {NULL, NULL, 0},
};

/* ------------------------------------------------------------------------ */
/* Parent. */

static struct at_case reuse_cases[8], bounds_cases[16], guard_cases[16];

/* Guarded sampling's columns: every block guarded, in the FAST library
 * (a variable) and the LEAN one with LEAN on (a key of HAKMEM_CONF). */
static const struct vt_mode guard_modes[] = {
    {VT_FAST, {"HAKMEM_GUARD_SAMPLE=1"}},
    {VT_LEAN, {"HAKMEM_CONF=guard_sample:1", "HAKMEM_SS_MEM_LEAN=1", "HAKMEM_SS_MEM_LEAN_TARGET_MB=0"}},
};

static int guarded(const struct vt_mode *m)
{
    return m->env[0] && (strstr(m->env[0], "GUARD_SAMPLE=1") || strstr(m->env[0], "guard_sample:1"));
}

/* The libraries that claim to stop writes outside a block. */
static int bounds_apply(const struct vt_mode *m) { return m->variant == VT_DEBUG && at_mode_aborts(m); }
static int guard_apply(const struct vt_mode *m) { return guarded(m); }

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--scenario") == 0)
        return at_scenario_main(scenarios, argv[2]);
    struct at_family fams[] = {
        {"reuse", reuse_cases, 0, NULL},
        {"bounds", bounds_cases, 0, bounds_apply},
        {"guarded", guard_cases, 0, guard_apply},
    };
    struct at_family *g = &fams[2];
    static const size_t gsz[] = {8, 4096, 8192};
    for (size_t i = 0; i < sizeof gsz / sizeof gsz[0]; i++) {
        at_add(g, AT_FAULT, "gover:%zu:1", gsz[i]);
        guard_cases[g->n - 1].kinds[0] = "heap-buffer-overflow";
        at_add(g, AT_FAULT, "gover:%zu:32", gsz[i]);
        guard_cases[g->n - 1].kinds[0] = "heap-buffer-overflow";
        at_add(g, AT_FAULT, "guaf:%zu", gsz[i]);
        guard_cases[g->n - 1].kinds[0] = "heap-use-after-free";
    }
    /* Right-aligned: a block of a whole page starts at one, and the page
     * before it is inaccessible (a smaller block's underflow stays in its
     * page, as with GWP-ASan's right-aligned blocks). */
    at_add(g, AT_FAULT, "gunder:4096");
    guard_cases[g->n - 1].kinds[0] = "heap-buffer-overflow";
    at_add(g, AT_MISUSE, "gdouble:64");
    guard_cases[g->n - 1].kinds[0] = "double free";
    static const size_t rsz[] = {8, 16, 48, 256, 4096, 20000};
    for (size_t i = 0; i < sizeof rsz / sizeof rsz[0]; i++)
        at_add(&fams[0], AT_OK, "reuse:%zu", rsz[i]);
    static const size_t bsz[] = {8, 4096, 100000, 262144}; /* 100000: a medium block */
    for (size_t i = 0; i < sizeof bsz / sizeof bsz[0]; i++) {
        at_add(&fams[1], AT_MISUSE, "over:%zu:1", bsz[i]);
        bounds_cases[fams[1].n - 1].kinds[0] = "heap overflow";
        at_add(&fams[1], AT_MISUSE, "over:%zu:32", bsz[i]);
        bounds_cases[fams[1].n - 1].kinds[0] = "heap overflow";
        if (bsz[i] <= 32768) {
            at_add(&fams[1], AT_MISUSE, "under:%zu", bsz[i]);
            bounds_cases[fams[1].n - 1].kinds[0] = "heap underflow";
        }
    }
    static struct vt_mode modes[AT_NMODES + 2];
    memcpy(modes, at_all_modes, sizeof at_all_modes);
    memcpy(modes + AT_NMODES, guard_modes, sizeof guard_modes);
    at_mode_table = modes;
    at_mode_count = AT_NMODES + 2;
    return at_main("bounds", fams, (int)(sizeof fams / sizeof fams[0]));
}
