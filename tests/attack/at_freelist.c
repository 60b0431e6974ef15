/* at_freelist: attacks on the in-band free-list links (CONFORMANCE H.39,
 * B.16).
 *
 * A freed small block holds its free-list link in its first 8 bytes. A
 * program with a write-after-free or an overflow bug can overwrite that
 * link; an allocator that follows it blindly then hands out whatever
 * address the attacker planted (a global, the stack, another live block),
 * and the program's next writes through that pointer corrupt it. hakmem
 * keeps every such link encoded with a per-process secret and the link's
 * own address, and checks each link it follows: a decoded pointer that is
 * not a block start in the same slab aborts with
 * `hakmem: error: corrupted free list`. So after each attack below the
 * only acceptable outcomes are that abort, or harmless completion with the
 * planted address never handed out.
 *
 * Families (sizes 16, 48, 256, 4096; planted address: a global, a stack
 * buffer, a live block of another size, a live block of the same size in
 * the same slab; the first 8 bytes overwritten, or the first 16, link and
 * tag):
 *   uaf     free two blocks, overwrite the link of the first one freed (the
 *           second on the list), then malloc up to 8 times;
 *   ovf     three adjacent blocks, free the middle one, overflow the first
 *           into the middle one's link, then malloc up to 8 times;
 *   remote  two blocks allocated by this thread and freed by another (they
 *           sit on the slab's remote list), overwrite the link of the last
 *           one freed, then malloc until the owner has collected the remote
 *           list (the attacked blocks come back) and 8 more.
 * Every planted address is a fake free block laid out to pass every other
 * check (at_fake_prepare): only the check of the link can refuse it.
 */
#include "at_common.h"

#include <pthread.h>

/* ------------------------------------------------------------------------ */
/* Scenarios (under hakmem). */

/* The planted address for target kind `t`: a fake block in a global, in
 * the caller's stack buffer (which lives as long as the scenario), in a
 * live block of another size (8192 bytes: a class none of the victims
 * uses), or `live`, a live block of the victims' own size and slab. That
 * last one is the target a check of the link's range alone does not
 * refuse (it is a block start in the right slab): only an encoding bound
 * to the secret and the address does. `stride` is the block size. */
static void *target_of(const char *t, void *stackbuf, void *live, size_t stride)
{
    void *p;
    if (strcmp(t, "live") == 0) {
        at_fake_prepare(live, stride);
        return live;
    }
    if (strcmp(t, "global") == 0)
        p = at_global_fake;
    else if (strcmp(t, "stack") == 0)
        p = stackbuf;
    else if (strcmp(t, "heap") == 0) {
        p = malloc(AT_FAKE_BYTES);
        if (!p)
            vt_fail("malloc(%d) for the target failed", AT_FAKE_BYTES);
    } else
        vt_fail("unknown target `%s`", t);
    at_fake_prepare(p, AT_FAKE_BYTES);
    return p;
}

/* Overwrite the link (width 8) or the link and the tag (width 16) of the
 * freed block `victim` with the planted address. `window`: at_plant_window. */
static void plant_over(void *victim, void *planted, int width, size_t window)
{
    if (width != 8 && width != 16)
        vt_fail("width %d: 8 or 16", width);
    vt_report("victim", "%p", victim);
    at_plant_window(planted, window);
    at_set_word(victim, 0, (uintptr_t)planted);
    if (width == 16)
        at_set_word(victim, 1, (uintptr_t)planted);
}

/* Mallocs of `size`, each watched, until `victim` comes back (a freed
 * block is not handed out at once: it waits until the free blocks before
 * it are taken, at most a slab's worth), then 8 more, whose links are the
 * ones followed after it. Returns how often victim came back. */
static int watch_until_back(size_t size, const void *victim)
{
    long limit = 2 * (long)(65536 / size) + 64;
    int reused = 0, more = 0;
    for (long i = 0; i < limit && more < 8; i++) {
        void *q = malloc(size);
        at_watch(q, i < 8);
        if (q == victim) {
            reused++;
            vt_report("reused_at", "%ld", i);
        }
        if (reused)
            more++;
    }
    return reused;
}

/* uaf:TARGET:WIDTH:SIZE */
static int sc_uaf(void)
{
    unsigned char stackbuf[AT_FAKE_BYTES] __attribute__((aligned(64)));
    int width = (int)at_arg_size(2);
    size_t size = at_arg_size(3);
    size_t stride = at_block_stride(size);
    /* keep and live stay allocated, so the slab never empties and is never
     * given back: a and b go onto its free list, newest first (b, a). */
    void *g[4];
    at_group_alloc(size, g, 4);
    void *keep = g[0], *a = g[1], *b = g[2];
    void *t = target_of(at_arg(1), stackbuf, g[3], stride);
    at_free(a);
    at_free(b);
    /* Deliberate write after free over a's link (a is second on the list
     * of blocks freed, b first: no freed block is handed out at once, so
     * they come back once the slab's other free blocks are gone; then
     * malloc takes b, legitimately, and follows b's link to a, then takes
     * a and follows the planted link). */
    plant_over(a, t, width, strcmp(at_arg(1), "live") == 0 ? stride : 64);
    int reused = watch_until_back(size, a);
    vt_report("reused", "%d", reused);
    vt_report("after", "ok");
    (void)keep;
    return 0;
}

/* ovf:TARGET:WIDTH:SIZE */
static int sc_ovf(void)
{
    enum { N = 48 };
    unsigned char stackbuf[AT_FAKE_BYTES] __attribute__((aligned(64)));
    int width = (int)at_arg_size(2);
    size_t size = at_arg_size(3);
    size_t stride = at_block_stride(size);
    unsigned char *v[N];
    for (int i = 0; i < N; i++) {
        v[i] = malloc(size);
        if (!v[i])
            vt_fail("malloc(%zu) failed", size);
    }
    /* Three adjacent blocks (first, mid, last: one stride apart) and a
     * fourth live one in their slab (the `live` target), searched from the
     * newest blocks down: those are in the slab malloc is serving from, so
     * mid, once freed, is the next block handed out and its link the next
     * one followed. (An older slab may be parked full; a block freed there
     * waits behind the current one.) */
    int ia = -1, ib = -1, ic = -1, id = -1;
    for (int i = N - 1; i >= 0 && ia < 0; i--) {
        int j = -1, k = -1, l = -1;
        for (int x = 0; x < N; x++) {
            if (v[x] == v[i] + stride)
                j = x;
            if (v[x] == v[i] + 2 * stride)
                k = x;
        }
        if (j < 0 || k < 0)
            continue;
        for (int x = N - 1; x >= 0; x--)
            if (x != i && x != j && x != k && ((uintptr_t)v[x] >> 16) == ((uintptr_t)v[j] >> 16))
                l = x;
        if (l < 0 || ((uintptr_t)v[i] >> 16) != ((uintptr_t)v[j] >> 16))
            continue;
        ia = i;
        ib = j;
        ic = k;
        id = l;
    }
    if (ia < 0)
        vt_fail("no three adjacent %zu-byte blocks (and a fourth in their slab) among %d", size, N);
    unsigned char *first = v[ia], *mid = v[ib];
    vt_report("adjacent", "%p,%p,%p", (void *)first, (void *)mid, (void *)v[ic]);
    void *t = target_of(at_arg(1), stackbuf, v[id], stride);
    at_free(mid);
    /* Deliberate overflow of `first`: from its usable end over any gap up
     * to the middle block (the debug build's canary), then the planted
     * address over mid's link (and tag). Volatile writes: not dead stores
     * the compiler may drop. */
    volatile unsigned char *o = first;
    for (size_t i = malloc_usable_size(first); i < stride; i++)
        o[i] = 'A';
    plant_over(mid, t, width, strcmp(at_arg(1), "live") == 0 ? stride : 64);
    int reused = watch_until_back(size, mid);
    vt_report("reused", "%d", reused);
    /* `first` is never freed: its tail (a canary in the debug build) is
     * overwritten on purpose, and the case is about the free list. */
    vt_report("after", "ok");
    return 0;
}

static void *remote_free_thread(void *arg)
{
    void **blocks = arg;
    free(blocks[0]);
    free(blocks[1]);
    return NULL;
}

/* remote:TARGET:WIDTH:SIZE */
static int sc_remote(void)
{
    unsigned char stackbuf[AT_FAKE_BYTES] __attribute__((aligned(64)));
    int width = (int)at_arg_size(2);
    size_t size = at_arg_size(3);
    size_t stride = at_block_stride(size);
    void *g[4];
    at_group_alloc(size, g, 4);
    void *keep = g[0], *blocks[2] = {g[1], g[2]};
    void *t = target_of(at_arg(1), stackbuf, g[3], stride);
    /* Freed by another thread: they go onto the slab's remote list, which
     * this thread (the owner) collects when its local list runs dry. */
    pthread_t th;
    if (pthread_create(&th, NULL, remote_free_thread, blocks) != 0)
        vt_fail("pthread_create failed");
    pthread_join(th, NULL);
    /* The last one freed heads the remote list; its link leads to the
     * other. Overwrite it: a write after free on the remote list. */
    plant_over(blocks[1], t, width, strcmp(at_arg(1), "live") == 0 ? stride : 64);
    /* Enough mallocs to exhaust the slab's local list (at most a slab's
     * worth) so the owner must take the remote list, then 8 more. */
    long limit = 2 * (long)(65536 / size) + 64;
    int reused = 0, more = 0;
    for (long i = 0; i < limit && more < 8; i++) {
        void *q = malloc(size);
        at_watch(q, i < 8);
        if (q == blocks[0] || q == blocks[1]) {
            reused++;
            char k[32];
            snprintf(k, sizeof k, "reused_at_%d", reused);
            vt_report(k, "%ld", i);
        }
        if (reused)
            more++;
    }
    vt_report("mallocs", "%d", at_nwatched);
    vt_report("reused", "%d", reused);
    vt_report("after", "ok");
    (void)keep;
    return 0;
}

static const struct vt_scenario scenarios[] = {
    {"uaf", sc_uaf, 0},
    {"ovf", sc_ovf, 0},
    {"remote", sc_remote, 0},
    {NULL, NULL, 0},
};

/* ------------------------------------------------------------------------ */
/* Parent. */

static const char *const targets[] = {"global", "stack", "heap", "live"};
static const int widths[] = {8, 16};
#define NT (sizeof targets / sizeof targets[0])
#define NW (sizeof widths / sizeof widths[0])

static struct at_case uaf_cases[NT * NW * AT_NSIZES], ovf_cases[NT * NW * AT_NSIZES],
    remote_cases[NT * NW * AT_NSIZES];

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--scenario") == 0)
        return at_scenario_main(scenarios, argv[2]);
    struct at_family fams[] = {
        {"uaf", uaf_cases, 0, NULL},
        {"overflow", ovf_cases, 0, NULL},
        {"remote", remote_cases, 0, NULL},
    };
    for (size_t s = 0; s < AT_NSIZES; s++)
        for (size_t t = 0; t < NT; t++)
            for (size_t w = 0; w < NW; w++) {
                at_add(&fams[0], AT_ATTACK_REUSED, "uaf:%s:%d:%zu", targets[t], widths[w], at_sizes[s]);
                at_add(&fams[1], AT_ATTACK_REUSED, "ovf:%s:%d:%zu", targets[t], widths[w], at_sizes[s]);
                /* The debug build may catch the overflow by the canary of
                 * the first block instead, as long as it does so before
                 * following the link. */
                fams[1].cases[fams[1].n - 1].kinds[0] = "heap overflow";
                at_add(&fams[2], AT_ATTACK_REUSED, "remote:%s:%d:%zu", targets[t], widths[w], at_sizes[s]);
            }
    return at_main("freelist", fams, (int)(sizeof fams / sizeof fams[0]));
}
