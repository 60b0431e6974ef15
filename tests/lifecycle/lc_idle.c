/* lc_idle: slabs emptied behind an idle owner's back come back, and no
 * slab is stranded by a helper (DESIGN.md section 8, issue "servers that
 * run for months").
 *
 * idle    An owner thread fills 40 slabs of 64-byte blocks, frees one
 *         block of each (so every slab is back on its class list, not
 *         parked) and goes idle, alive, holding nothing else. Another
 *         thread frees every other block. malloc_trim from a third thread
 *         must give those slabs back although their owner never calls the
 *         allocator again: at most the one slab its class keeps may stay
 *         (its class's slabs fall from 40 to at most 1), and the resident size
 *         falls by at least 1.5 MiB of the 2.5 MiB. Without trim, the
 *         threads still calling the allocator give them back too, within
 *         a few settle intervals (the sweep helps an idle owner).
 * handoff Two threads hand 64-byte blocks to two others, which free them
 *         (remote frees, every other block each), while the owners park and unpark their slabs and
 *         the freers' notifications pass the notification threshold (a
 *         helper drains the owners' notifications). At the end every
 *         thread is idle and malloc_trim runs: no slab may be left with
 *         every block free (slabs_in_use back to what it was before the
 *         rounds, plus the slab each class keeps per owner). The debug
 *         library's census checks the same inside malloc_trim.
 * Modes: FAST, LEAN off and on (budget 10, DONTNEED; budget 0, FREE), the
 * debug library.
 */
#include "lc_common.h"

#define ID_SLABS 40
/* A size no other code of the process uses (glibc allocates a little for
 * each thread): its class's slabs are the test's alone. */
#define ID_BLOCK 176
#define ID_PER_SLAB (65536 / ID_BLOCK + 1)
#define ID_N (ID_SLABS * ID_PER_SLAB)

/* Slabs serving the class of ID_BLOCK (hakmem_stats_classes; the class
 * is found by allocating one block: the debug library's blocks are larger
 * than the request). */
typedef int (*id_classes_fn)(struct hakmem_class_stats *, size_t);
static struct hakmem_class_stats id_cs[128];
static int id_cls = -1;

static int id_classes(void)
{
    static id_classes_fn f;
    if (!f)
        f = (id_classes_fn)(uintptr_t)dlsym(RTLD_DEFAULT, "hakmem_stats_classes");
    int n = f ? f(id_cs, 128) : -1;
    if (n <= 0 || n > 128)
        vt_fail("hakmem_stats_classes unavailable or failed");
    return n;
}

static long id_class_slabs(void)
{
    if (id_cls < 0) {
        static struct hakmem_class_stats before[128];
        int n = id_classes();
        memcpy(before, id_cs, sizeof before);
        static void *volatile probe;
        probe = malloc(ID_BLOCK);
        id_classes();
        for (int i = 0; i < n && id_cls < 0; i++)
            if (id_cs[i].blocks_in_use == before[i].blocks_in_use + 1)
                id_cls = i;
        free(probe);
        if (id_cls < 0)
            vt_fail("cannot tell which class serves %d bytes", ID_BLOCK);
    }
    id_classes();
    return (long)id_cs[id_cls].slabs;
}

static void **id_blocks;
static pthread_mutex_t id_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t id_cond = PTHREAD_COND_INITIALIZER;
static int id_stage; /* 1: owner filled; 2: remote frees done, tests over */

static void id_wait(int stage)
{
    pthread_mutex_lock(&id_lock);
    while (id_stage < stage)
        pthread_cond_wait(&id_cond, &id_lock);
    pthread_mutex_unlock(&id_lock);
}

static void id_set(int stage)
{
    pthread_mutex_lock(&id_lock);
    id_stage = stage;
    pthread_cond_broadcast(&id_cond);
    pthread_mutex_unlock(&id_lock);
}

/* The owner: fill, free one block of each slab (its first), go idle. */
static void *id_owner(void *arg)
{
    (void)arg;
    for (int i = 0; i < ID_N; i++) {
        id_blocks[i] = malloc(ID_BLOCK);
        if (!id_blocks[i])
            vt_fail("idle: malloc failed");
        memset(id_blocks[i], 0x5a, ID_BLOCK);
    }
    uintptr_t last = 0;
    int slabs = 0;
    for (int i = 0; i < ID_N; i++) {
        uintptr_t s = (uintptr_t)id_blocks[i] >> 16;
        if (s == last)
            continue;
        last = s;
        slabs++;
        free(id_blocks[i]);
        id_blocks[i] = NULL;
    }
    vt_report("owner_slabs", "%d", slabs);
    id_set(1);
    id_wait(2); /* idle, alive, until the scenario is over */
    return NULL;
}

static void *id_remote(void *arg)
{
    (void)arg;
    for (int i = 0; i < ID_N; i++)
        free(id_blocks[i]);
    return NULL;
}

static long id_remote_free(pthread_t *owner, struct hakmem_stats *before, long *cls_before)
{
    id_blocks = vt_map(ID_N * sizeof *id_blocks);
    id_stage = 0;
    if (pthread_create(owner, NULL, id_owner, NULL) != 0)
        vt_fail("pthread_create");
    id_wait(1);
    vt_stats(before);
    *cls_before = id_class_slabs();
    long rss0 = lc_rss_kib();
    pthread_t r;
    if (pthread_create(&r, NULL, id_remote, NULL) != 0)
        vt_fail("pthread_create");
    pthread_join(r, NULL);
    return rss0;
}

static int sc_idle(void)
{
    pthread_t owner;
    struct hakmem_stats before, after;
    long cls_before;
    malloc_trim(0); /* the baseline: nothing kept from start-up */
    long rss0 = id_remote_free(&owner, &before, &cls_before);
    malloc_trim(0);
    vt_stats(&after);
    long rss1 = lc_rss_kib();
    vt_report("slabs_before", "%ld", cls_before);
    vt_report("slabs_after", "%ld", id_class_slabs());
    vt_report("rss_drop_kib", "%ld", rss0 - rss1);
    id_set(2);
    pthread_join(owner, NULL);
    return 0;
}

/* No trim: the threads still calling the allocator do the idle owner's
 * work, a bounded amount at a time. */
static int sc_idle_sweep(void)
{
    pthread_t owner;
    struct hakmem_stats before;
    long cls_before, cls_after;
    id_remote_free(&owner, &before, &cls_before);
    /* This thread keeps allocating and freeing (other sizes; its slow
     * paths run the sweep) for up to 3 s, until the slabs are back. */
    double end = vt_now() + 3;
    void *v[256];
    uint32_t seed = 7;
    do {
        for (int i = 0; i < 256; i++) {
            v[i] = malloc(256 + vt_xorshift(&seed) % 2000);
            if (!v[i])
                vt_fail("malloc failed");
        }
        for (int i = 0; i < 256; i++)
            free(v[i]);
        cls_after = id_class_slabs();
    } while (cls_after > 2 && vt_now() < end);
    vt_report("slabs_before", "%ld", cls_before);
    vt_report("slabs_after", "%ld", cls_after);
    id_set(2);
    pthread_join(owner, NULL);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* handoff (blocks of ID_BLOCK) */

#define HO_ROUNDS 1500
#define HO_BATCH 200
#define HO_OWNERS 2

struct ho_queue {
    void *_Atomic slot[HO_BATCH];
};
static struct ho_queue ho_q[HO_OWNERS];
static _Atomic int ho_turn[HO_OWNERS];

static void *ho_owner(void *arg)
{
    int me = (int)(uintptr_t)arg;
    for (int r = 0; r < HO_ROUNDS; r++) {
        while (atomic_load(&ho_turn[me]) != 2 * r)
            sched_yield();
        /* Hand out a batch: the head slab runs dry every few rounds and
         * is parked full, then filled again by the freers. */
        for (int i = 0; i < HO_BATCH; i++) {
            void *p = malloc(ID_BLOCK);
            if (!p)
                vt_fail("handoff: malloc failed");
            memset(p, me, ID_BLOCK);
            atomic_store(&ho_q[me].slot[i], p);
        }
        atomic_store(&ho_turn[me], 2 * r + 1);
    }
    return NULL;
}

/* Two freers share each batch (every other block), so that one of them
 * frees into a slab while the other drains its owner's notifications. */
#define HO_FREERS 2
static _Atomic int ho_done[HO_OWNERS];

static void *ho_freer(void *arg)
{
    int me = (int)(uintptr_t)arg;
    for (int r = 0; r < HO_ROUNDS; r++)
        for (int o = 0; o < HO_OWNERS; o++) {
            while (atomic_load(&ho_turn[o]) != 2 * r + 1)
                sched_yield();
            for (int i = me; i < HO_BATCH; i += HO_FREERS)
                free(atomic_exchange(&ho_q[o].slot[i], NULL));
            if (atomic_fetch_add(&ho_done[o], 1) + 1 == HO_FREERS) {
                atomic_store(&ho_done[o], 0);
                atomic_store(&ho_turn[o], 2 * r + 2);
            }
            /* Wait for the round to close before the next owner's turn
             * check (the other freer may still be at this batch). */
            while (atomic_load(&ho_turn[o]) == 2 * r + 1)
                sched_yield();
        }
    return NULL;
}

static void *ho_idle_until_done(void *arg)
{
    ho_owner(arg);
    id_wait(2);
    return NULL;
}

static int sc_handoff(void)
{
    malloc_trim(0);
    long before = id_class_slabs();
    id_stage = 0;
    pthread_t o[HO_OWNERS], f[HO_FREERS];
    for (int i = 0; i < HO_OWNERS; i++)
        if (pthread_create(&o[i], NULL, ho_idle_until_done, (void *)(uintptr_t)i) != 0)
            vt_fail("pthread_create");
    for (int i = 0; i < HO_FREERS; i++)
        if (pthread_create(&f[i], NULL, ho_freer, (void *)(uintptr_t)i) != 0)
            vt_fail("pthread_create");
    for (int i = 0; i < HO_FREERS; i++)
        pthread_join(f[i], NULL);
    /* Every block is free; the owners are alive and idle. */
    malloc_trim(0);
    vt_report("slabs_before", "%ld", before);
    vt_report("slabs_after", "%ld", id_class_slabs());
    id_set(2);
    for (int i = 0; i < HO_OWNERS; i++)
        pthread_join(o[i], NULL);
    return 0;
}

static const struct vt_scenario scenarios[] = {
    {"idle", sc_idle, 0},
    {"idle_sweep", sc_idle_sweep, 0},
    {"handoff", sc_handoff, 0},
    {NULL, NULL, 0},
};

/* ------------------------------------------------------------------------ */
/* Parent. */

static const struct vt_mode all_modes[] = {
    {VT_FAST, {NULL}},
    {VT_LEAN, {LC_LEAN_OFF}},
    {VT_LEAN, {LC_LEAN_ON, LC_BUDGET10, LC_DONTNEED}},
    {VT_LEAN, {LC_LEAN_ON, LC_BUDGET0, LC_FREE}},
    {VT_DEBUG, {LC_LEAN_OFF}},
};
#define NMODES (sizeof all_modes / sizeof all_modes[0])
static struct lc_modes modes;

static struct vt_result *id_run(const char *scenario, int i)
{
    const struct vt_mode *m = modes.m[i];
    struct vt_result *r = malloc(sizeof *r);
    vt_spawn(m->variant, scenario, m->env, 60, r);
    lc_assert_clean(r, scenario);
    printf("%s slabs in use %lld -> %lld", r->desc, (long long)vt_num(r, "slabs_before", NULL),
           (long long)vt_num(r, "slabs_after", NULL));
    if (vt_str(r, "rss_drop_kib"))
        printf(", resident -%lld KiB", (long long)vt_num(r, "rss_drop_kib", NULL));
    printf("\n");
    return r;
}

START_TEST(test_idle)
{
    struct vt_result *r = id_run("idle", _i);
    vt_assert_r(r, vt_num(r, "owner_slabs", NULL) >= ID_SLABS, "the owner filled %lld slabs",
                (long long)vt_num(r, "owner_slabs", NULL));
    long before = (long)vt_num(r, "slabs_before", NULL), after = (long)vt_num(r, "slabs_after", NULL);
    vt_assert_r(r, before >= ID_SLABS && after <= 1,
                "malloc_trim left %ld of the idle owner's %ld emptied slabs in use (its class keeps 1)", after,
                before);
    vt_assert_r(r, vt_num(r, "rss_drop_kib", NULL) >= 1536, "the resident size fell by only %lld KiB",
                (long long)vt_num(r, "rss_drop_kib", NULL));
    free(r);
}
END_TEST

START_TEST(test_idle_sweep)
{
    struct vt_result *r = id_run("idle_sweep", _i);
    long before = (long)vt_num(r, "slabs_before", NULL), after = (long)vt_num(r, "slabs_after", NULL);
    /* The owner's class keeps a slab, and so does this thread's (the
     * probe that found the class). */
    vt_assert_r(r, before >= ID_SLABS && after <= 2,
                "without trim, 3 s of other threads' calls left the idle owner's emptied slabs in use "
                "(%ld -> %ld)",
                before, after);
    free(r);
}
END_TEST

START_TEST(test_handoff)
{
    struct vt_result *r = id_run("handoff", _i);
    long before = (long)vt_num(r, "slabs_before", NULL), after = (long)vt_num(r, "slabs_after", NULL);
    /* Each owner may keep its class's slab. */
    vt_assert_r(r, after <= before + HO_OWNERS,
                "after every block was freed and malloc_trim ran, %ld slabs are in use (%ld before): "
                "a slab with every block free was stranded",
                after, before);
    free(r);
}
END_TEST

int main(int argc, char **argv)
{
    const struct lc_case cases[] = {
        {"idle", test_idle, 70, 1},
        {"idle_sweep", test_idle_sweep, 70, 1},
        {"handoff", test_handoff, 70, 1},
    };
    return lc_main_cases(argc, argv, scenarios, all_modes, NMODES, &modes, "lifecycle_idle", cases,
                         sizeof cases / sizeof cases[0]);
}
