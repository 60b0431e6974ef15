/* at_misuse: double free, invalid free and realloc of a freed block must
 * never corrupt the heap (CONFORMANCE B.14, B.15, H.37, H.38).
 *
 * The FAST-only and LEAN-capable libraries print one `hakmem: error: ...`
 * line naming the problem and ignore the call (realloc returns NULL); the
 * debug library aborts after that line, and so does every library with
 * abort_on_error:1 (the columns at_abort_modes adds: HAKMEM_ABORT_ON_ERROR=1
 * in the FAST library, HAKMEM_CONF=abort_on_error:1 in the LEAN one with
 * LEAN on; the debug library with HAKMEM_ABORT_ON_ERROR=0 goes on). Where
 * the program goes on, a
 * batch of mallocs of the same size must hand out distinct blocks that
 * overlap neither each other nor the blocks that were live before the
 * misuse (all stamped, all verified at the end): a double free that put a
 * block on a free list twice would show here as a block handed out twice.
 *
 * Families:
 *   double   immediate (p, p) and delayed (p, q, p) at sizes 16, 48, 256,
 *            4096; immediate of large blocks (40000 bytes, 1 MiB);
 *   invalid  free((void*)1), free(p+1) at each size, free(p+16) of a
 *            64-byte block, a stack address, a global, and a block carved
 *            but never handed out (p = malloc(16); free(p+16): it may be
 *            called an invalid or a double free, but must not be taken),
 *            and addresses in the first 64 KiB of a block's 2 MiB
 *            superslab (its metadata: never a block, left as it was);
 *   realloc  p = malloc(n); free(p); realloc(p, n + 8) at several sizes,
 *            and of large blocks (40000 and 1 MiB growing, 40000 shrinking
 *            to 100 bytes).
 */
#include "at_common.h"

/* ------------------------------------------------------------------------ */
/* Scenarios (under hakmem). */

/* How many blocks of `size` the check after the misuse allocates. */
static int batch_count(size_t size) { return size > 32768 ? 8 : 64; }

/* Blocks live across the misuse: they must come out of it intact. */
static void live_setup(size_t size)
{
    for (int i = 0; i < (size > 32768 ? 4 : 16); i++) {
        void *p = malloc(size);
        if (!p)
            vt_fail("malloc(%zu) failed", size);
        at_live_add(p, size);
    }
}

/* df_imm:SIZE */
static int sc_df_imm(void)
{
    size_t size = at_arg_size(1);
    live_setup(size);
    void *p = malloc(size);
    if (!p)
        vt_fail("malloc(%zu) failed", size);
    vt_stamp(p, size, 99);
    at_free(p);
    at_bad_free(p);
    vt_report("misuse", "done");
    at_batch_check(size, batch_count(size));
    return 0;
}

/* df_delayed:SIZE */
static int sc_df_delayed(void)
{
    size_t size = at_arg_size(1);
    live_setup(size);
    void *p = malloc(size), *q = malloc(size);
    if (!p || !q)
        vt_fail("malloc(%zu) failed", size);
    at_free(p);
    at_free(q);
    at_bad_free(p);
    vt_report("misuse", "done");
    at_batch_check(size, batch_count(size));
    return 0;
}

/* if_one */
static int sc_if_one(void)
{
    live_setup(64);
    at_bad_free((void *)1);
    vt_report("misuse", "done");
    at_batch_check(64, 64);
    return 0;
}

/* if_plus1:SIZE */
static int sc_if_plus1(void)
{
    size_t size = at_arg_size(1);
    live_setup(size);
    char *p = malloc(size);
    if (!p)
        vt_fail("malloc(%zu) failed", size);
    at_bad_free(p + 1);
    vt_report("misuse", "done");
    /* p itself was never freed: it is still live and must stay intact. */
    at_live_add(p, size);
    at_batch_check(size, batch_count(size));
    return 0;
}

/* if_interior64: an interior pointer of a 64-byte block, 16-byte aligned
 * (so alignment alone does not give it away). */
static int sc_if_interior64(void)
{
    live_setup(64);
    char *p = malloc(64);
    if (!p)
        vt_fail("malloc failed");
    at_bad_free(p + 16);
    vt_report("misuse", "done");
    at_live_add(p, 64);
    at_batch_check(64, 64);
    return 0;
}

/* if_stack */
static int sc_if_stack(void)
{
    unsigned char buf[256] __attribute__((aligned(64)));
    memset(buf, 0, sizeof buf);
    live_setup(64);
    at_bad_free(buf + 64);
    vt_report("misuse", "done");
    at_batch_check(64, 64);
    /* The stack buffer was not written through either. */
    for (size_t i = 0; i < sizeof buf; i++)
        if (((volatile unsigned char *)buf)[i] != 0)
            vt_fail("the stack buffer was written at offset %zu by free()", i);
    return 0;
}

/* if_global */
static int sc_if_global(void)
{
    live_setup(64);
    at_bad_free(at_global_obj);
    vt_report("misuse", "done");
    at_batch_check(64, 64);
    for (size_t i = 0; i < sizeof at_global_obj; i++)
        if (((volatile unsigned char *)at_global_obj)[i] != 0)
            vt_fail("the global was written at offset %zu by free()", i);
    return 0;
}

/* if_carved: p + 16 is the next 16-byte block of the slab (outside the
 * debug build, whose 16-byte requests use larger blocks): carved onto the
 * free list but never handed out. Taking that free would put the block on
 * the list twice. */
static int sc_if_carved(void)
{
    live_setup(16);
    char *p = malloc(16);
    if (!p)
        vt_fail("malloc failed");
    vt_report("carved", "%p", (void *)(p + 16));
    at_bad_free(p + 16);
    vt_report("misuse", "done");
    at_live_add(p, 16);
    /* Enough to run through the rest of the carved blocks: a second copy
     * of p + 16 would come out as a duplicate. */
    at_batch_check(16, 600);
    return 0;
}

/* if_header:OFFSET: an address OFFSET bytes into the 2 MiB-aligned
 * region that holds a 64-byte block: in hakmem, the first 64 KiB of a
 * superslab, where its metadata lies and no block ever does (the words a
 * free of it would read there must say so). The first page, where the
 * metadata is, must read the same after the free. */
static unsigned char g_header_copy[4096];
static int sc_if_header(void)
{
    size_t off = at_arg_size(1);
    live_setup(64);
    char *p = malloc(64);
    if (!p)
        vt_fail("malloc failed");
    at_live_add(p, 64);
    const unsigned char *base = (const unsigned char *)((uintptr_t)p & ~(((uintptr_t)2 << 20) - 1));
    memcpy(g_header_copy, base, sizeof g_header_copy);
    at_bad_free((void *)(base + off));
    vt_report("misuse", "done");
    if (memcmp(g_header_copy, base, sizeof g_header_copy) != 0)
        vt_fail("free(%p) wrote into the first page of the superslab", (const void *)(base + off));
    at_batch_check(64, 64);
    return 0;
}

/* rf:SIZE:NEWSIZE */
static int sc_rf(void)
{
    size_t size = at_arg_size(1), nsize = at_arg_size(2);
    live_setup(size);
    void *p = malloc(size);
    if (!p)
        vt_fail("malloc(%zu) failed", size);
    at_free(p);
    void *r = at_bad_realloc(p, nsize);
    vt_report("realloc", "%p", r);
    if (r)
        vt_fail("realloc(%p, %zu) of a freed block returned %p, not NULL", p, nsize, r);
    vt_report("misuse", "done");
    at_batch_check(size, batch_count(size));
    at_batch_check(nsize, batch_count(nsize));
    return 0;
}

static const struct vt_scenario scenarios[] = {
    {"df_imm", sc_df_imm, 0},
    {"df_delayed", sc_df_delayed, 0},
    {"if_one", sc_if_one, 0},
    {"if_plus1", sc_if_plus1, 0},
    {"if_interior64", sc_if_interior64, 0},
    {"if_stack", sc_if_stack, 0},
    {"if_global", sc_if_global, 0},
    {"if_carved", sc_if_carved, 0},
    {"if_header", sc_if_header, 0},
    {"rf", sc_rf, 0},
    {NULL, NULL, 0},
};

/* ------------------------------------------------------------------------ */
/* Parent. */

static struct at_case df_cases[16], if_cases[16], rf_cases[8];

static void kinds(struct at_family *f, const char *k0, const char *k1)
{
    f->cases[f->n - 1].kinds[0] = k0;
    f->cases[f->n - 1].kinds[1] = k1;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--scenario") == 0)
        return at_scenario_main(scenarios, argv[2]);
    struct at_family fams[] = {
        {"double", df_cases, 0, NULL},
        {"invalid", if_cases, 0, NULL},
        {"realloc", rf_cases, 0, NULL},
    };
    struct at_family *df = &fams[0], *inv = &fams[1], *rf = &fams[2];
    for (size_t s = 0; s < AT_NSIZES; s++) {
        at_add(df, AT_MISUSE, "df_imm:%zu", at_sizes[s]);
        kinds(df, "double free", NULL);
        at_add(df, AT_MISUSE, "df_delayed:%zu", at_sizes[s]);
        kinds(df, "double free", NULL);
    }
    at_add(df, AT_MISUSE, "df_imm:40000");
    kinds(df, "double free", NULL);
    at_add(df, AT_MISUSE, "df_imm:1048576");
    kinds(df, "double free", NULL);

    at_add(inv, AT_MISUSE, "if_one");
    kinds(inv, "invalid free", NULL);
    for (size_t s = 0; s < AT_NSIZES; s++) {
        at_add(inv, AT_MISUSE, "if_plus1:%zu", at_sizes[s]);
        kinds(inv, "invalid free", NULL);
    }
    at_add(inv, AT_MISUSE, "if_interior64");
    kinds(inv, "invalid free", NULL);
    at_add(inv, AT_MISUSE, "if_stack");
    kinds(inv, "invalid free", NULL);
    at_add(inv, AT_MISUSE, "if_global");
    kinds(inv, "invalid free", NULL);
    at_add(inv, AT_MISUSE, "if_carved");
    kinds(inv, "invalid free", "double free");
    static const size_t hdr_off[] = {0, 32, 128, 4096};
    for (size_t i = 0; i < sizeof hdr_off / sizeof hdr_off[0]; i++) {
        at_add(inv, AT_MISUSE, "if_header:%zu", hdr_off[i]);
        kinds(inv, "invalid free", NULL);
    }

    /* Large blocks too: growing (in place into the cache, or by a copy),
     * and shrinking to a size a class serves. */
    static const size_t rsz[][2] = {{40, 48},          {16, 24},           {256, 264}, {4096, 4104},
                                    {40000, 60000},    {1048576, 1572864}, {40000, 100}};
    for (size_t i = 0; i < sizeof rsz / sizeof rsz[0]; i++) {
        at_add(rf, AT_MISUSE, "rf:%zu:%zu", rsz[i][0], rsz[i][1]);
        kinds(rf, "realloc after free", "double free");
    }
    /* Every column of the suite, and those of abort_on_error: every misuse
     * named stops the program where it is on, goes on where it is off. */
    static struct vt_mode modes[AT_NMODES + AT_NABORT_MODES];
    memcpy(modes, at_all_modes, sizeof at_all_modes);
    memcpy(modes + AT_NMODES, at_abort_modes, sizeof at_abort_modes);
    at_mode_table = modes;
    at_mode_count = AT_NMODES + AT_NABORT_MODES;
    return at_main("misuse", fams, (int)(sizeof fams / sizeof fams[0]));
}
