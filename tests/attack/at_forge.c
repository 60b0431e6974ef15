/* at_forge: a freed block read back must not let a program forge a link or
 * a free tag that passes for another block (CONFORMANCE H.40).
 *
 * A program with a use-after-free bug can read a freed block: its link
 * (8 bytes) and its free tag (the next 8). hakmem binds both to the
 * block's own address and a per-process secret, so what is read from one
 * block is worthless at any other address. Each case reads block A, then
 * uses what it read at block B or C:
 *
 *   replay        free A, read it, free B, copy A's 16 bytes over B's. With
 *                 links bound to their address the copy decodes to garbage
 *                 at B: `corrupted free list` abort (or harmless run).
 *   replay_cycle  the same with B freed before A, so A's link leads to B:
 *                 an unbound copy makes B's link point at B itself, and
 *                 malloc hands B out again and again while it is live
 *                 (the blocks handed out are written past their first 16
 *                 bytes only, so that nothing but the allocator's own
 *                 check can stop it).
 *   forge_link    known plaintext: A's link is known to lead to X (freed
 *                 just before A). Assuming the encoding is one of the
 *                 simple linear ones (stored = target ^ key, ^ address,
 *                 ^ address >> 12), recover the key from A and forge B's
 *                 link to a live block of the same slab (laid out as a
 *                 free block: the one target a range check of the decoded
 *                 link lets through). It must never be handed out: either
 *                 the model is wrong (the forged link decodes to garbage:
 *                 abort) or, if the encoding is that linear, the leak did
 *                 let the program forge a link, which H.40 rules out.
 *   tag_live      write A's free tag (copied, or adjusted for C's address
 *                 under the same linear models) into a LIVE block C at
 *                 offset 8, then free C: a normal free (no diagnosis, C is
 *                 reused), not a double free.
 *   tag_twice     the same, then free C again: that second free must still
 *                 be diagnosed as a double free (and only it).
 * Sizes 16, 48, 256, 4096. Afterwards a batch of mallocs is kept live and
 * checked: no block handed out twice while live.
 */
#include "at_common.h"

/* ------------------------------------------------------------------------ */
/* Scenarios (under hakmem). */

/* Blocks live throughout, so the slab never empties and the frees below
 * stay on its free list. */
static void live_setup(size_t size)
{
    for (int i = 0; i < 8; i++) {
        void *p = malloc(size);
        if (!p)
            vt_fail("malloc(%zu) failed", size);
        at_live_add(p, size);
    }
}

/* After the attack: mallocs kept live, each checked against every live
 * block (at_live_add_from stops at the first duplicate), each stamped from
 * byte `skip` on. Returns whether `c` came back. With a `c`: `count` is a
 * limit, and the batch ends 8 mallocs after c came back (a freed block is
 * not handed out at once: it waits until the free blocks before it are
 * taken, at most a slab's worth). */
static int batch_after(size_t size, int count, const void *c, size_t skip)
{
    int back = 0, more = 0;
    for (int i = 0; i < count && more < 8; i++) {
        void *q = malloc(size);
        at_watch(q, i < 8);
        back |= q == c;
        more += c && back;
        at_live_add_from(q, size, skip);
    }
    at_live_verify();
    return back;
}

/* replay:SIZE and replay_cycle:SIZE */
static int replay(int cycle)
{
    size_t size = at_arg_size(1);
    live_setup(size);
    /* g[0] stays live: the slab never empties while x, a, b are free. */
    void *g[4];
    at_group_alloc(size, g, 4);
    void *x = g[1], *a = g[2], *b = g[3];
    uintptr_t leak[2];
    at_free(x);
    if (cycle) {
        at_free(b);
        at_free(a); /* a's link leads to b */
        leak[0] = at_word(a, 0);
        leak[1] = at_word(a, 1);
    } else {
        at_free(a); /* a's link leads to x */
        leak[0] = at_word(a, 0);
        leak[1] = at_word(a, 1);
        at_free(b);
    }
    vt_report("a", "%p", a);
    vt_report("b", "%p", b);
    vt_report("x", "%p", x);
    /* Deliberate write after free: A's link and tag replayed at B. */
    at_set_word(b, 0, leak[0]);
    at_set_word(b, 1, leak[1]);
    /* The blocks handed out are stamped past their first 16 bytes only: a
     * program that has not written a block's start yet must not get it
     * twice either (writing there would change what a later pop reads). */
    batch_after(size, 32, NULL, 16);
    vt_report("after", "ok");
    return 0;
}

static int sc_replay(void) { return replay(0); }
static int sc_replay_cycle(void) { return replay(1); }

/* The address term of a linear encoding model. */
static uintptr_t model_term(const char *model, uintptr_t addr)
{
    if (strcmp(model, "copy") == 0 || strcmp(model, "xor") == 0)
        return 0;
    if (strcmp(model, "addr") == 0)
        return addr;
    if (strcmp(model, "addr_shr12") == 0)
        return addr >> 12;
    vt_fail("unknown model `%s`", model);
}

/* forge_link:MODEL:SIZE */
static int sc_forge_link(void)
{
    const char *model = at_arg(1);
    size_t size = at_arg_size(2);
    size_t stride = at_block_stride(size);
    /* The target: a live block of the same size and slab (laid out as a
     * free block), which a forged link that decodes correctly would make
     * malloc hand out a second time. Any other address fails the range
     * check of the link whatever the encoding. */
    void *g[4];
    at_group_alloc(size, g, 4);
    void *x = g[0], *a = g[1], *b = g[2], *target = g[3];
    at_fake_prepare(target, stride);
    at_free(x);
    at_free(a); /* a's link leads to x: a known plaintext */
    uintptr_t stored = at_word(a, 0);
    at_free(b); /* b heads the list, its link leads to a */
    uintptr_t key = stored ^ (uintptr_t)x ^ model_term(model, (uintptr_t)a);
    uintptr_t forged = (uintptr_t)target ^ key ^ model_term(model, (uintptr_t)b);
    vt_report("a", "%p", a);
    vt_report("b", "%p", b);
    vt_report("forged", "0x%lx", (unsigned long)forged);
    at_plant_window(target, stride);
    at_set_word(b, 0, forged); /* deliberate write after free */
    /* The target's own link: the end of the list, encoded under the same
     * model, so that an allocator that accepts the forged link finds
     * nothing wrong when it takes the target either. */
    at_set_word(target, 0, key ^ model_term(model, (uintptr_t)target));
    for (int i = 0; i < 8; i++)
        at_watch(malloc(size), 1);
    vt_report("after", "ok");
    return 0;
}

/* tag_live:MODEL:SIZE and tag_twice:MODEL:SIZE */
static int tag_forge(int twice)
{
    const char *model = at_arg(1);
    size_t size = at_arg_size(2);
    live_setup(size);
    void *g[4];
    at_group_alloc(size, g, 4);
    void *x = g[1], *a = g[2], *c = g[3];
    at_free(x);
    at_free(a);
    uintptr_t tag = at_word(a, 1);
    uintptr_t forged = tag ^ model_term(model, (uintptr_t)a) ^ model_term(model, (uintptr_t)c);
    vt_report("c", "%p", c);
    at_set_word(c, 1, forged); /* c is live: an ordinary write */
    at_free(c);
    vt_report("first_free", "ok");
    if (twice) {
        at_bad_free(c);
        vt_report("second_free", "done");
    }
    int back = batch_after(size, (int)(65536 / size) + 64, c, 0);
    vt_report("c_reused", "%d", back);
    vt_report("after", "ok");
    return 0;
}

static int sc_tag_live(void) { return tag_forge(0); }
static int sc_tag_twice(void) { return tag_forge(1); }

static const struct vt_scenario scenarios[] = {
    {"replay", sc_replay, 0},
    {"replay_cycle", sc_replay_cycle, 0},
    {"forge_link", sc_forge_link, 0},
    {"tag_live", sc_tag_live, 0},
    {"tag_twice", sc_tag_twice, 0},
    {NULL, NULL, 0},
};

/* ------------------------------------------------------------------------ */
/* Parent. */

static const char *const link_models[] = {"xor", "addr", "addr_shr12"};
static const char *const tag_models[] = {"copy", "addr", "addr_shr12"};
#define NLM (sizeof link_models / sizeof link_models[0])
#define NTM (sizeof tag_models / sizeof tag_models[0])

static struct at_case replay_cases[2 * AT_NSIZES], link_cases[NLM * AT_NSIZES],
    tag_cases[(NTM + 1) * AT_NSIZES];

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--scenario") == 0)
        return at_scenario_main(scenarios, argv[2]);
    struct at_family fams[] = {
        {"replay", replay_cases, 0, NULL},
        {"forge_link", link_cases, 0, NULL},
        {"forge_tag", tag_cases, 0, NULL},
    };
    for (size_t s = 0; s < AT_NSIZES; s++) {
        at_add(&fams[0], AT_ATTACK, "replay:%zu", at_sizes[s]);
        at_add(&fams[0], AT_ATTACK, "replay_cycle:%zu", at_sizes[s]);
        for (size_t m = 0; m < NLM; m++)
            at_add(&fams[1], AT_ATTACK, "forge_link:%s:%zu", link_models[m], at_sizes[s]);
        for (size_t m = 0; m < NTM; m++)
            at_add(&fams[2], AT_CLEAN, "tag_live:%s:%zu", tag_models[m], at_sizes[s]);
        at_add(&fams[2], AT_MISUSE_SECOND, "tag_twice:copy:%zu", at_sizes[s]);
        fams[2].cases[fams[2].n - 1].kinds[0] = "double free";
    }
    return at_main("forge", fams, (int)(sizeof fams / sizeof fams[0]));
}
