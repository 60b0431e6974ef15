/* lc_large: large blocks (above 32 KiB, each its own mapping) under
 * concurrency: realloc by mremap, and the table of live large blocks
 * growing while other threads use it.
 *
 * remap   One thread grows blocks with realloc by big steps (40 KiB up to
 *         16 MiB, doubling), so that mremap moves them; another allocates
 *         and frees fresh large blocks at the same time. A move unmaps the
 *         old range before the table is told, so the other thread's fresh
 *         mapping could land at the old address while the table still
 *         keys the moving block there. Every block is stamped at both ends
 *         and at its last usable byte (malloc_usable_size must be at least
 *         the request, and writing all of it must harm nothing); at the end
 *         everything is freed and the gauge large_live must be 0.
 * table   Eight threads allocate 600 large blocks each at once (thousands
 *         live, so the table grows several times while the others insert),
 *         growing every other one by realloc as they go (moves), then free
 *         them all; each round in a fresh child, so that each starts from an
 *         empty table. A table rebuilt at a stale size can fill up: lookups
 *         then never end (a hang, caught by a timeout) or lose entries (a
 *         free refused as invalid, a wrong usable size). Stamps are checked
 *         at every step; large_live must be 0 at the end.
 * moves   One thread grows 255 blocks six times each (most growths move
 *         them, none allocates): every block is then still found with its
 *         size, a pointer inside one is "not ours", large_live ends at 0.
 * grow    Four threads grow 64 shared buffers by realloc, whichever thread
 *         draws a buffer takes its next step: strings (1-80 bytes a step,
 *         across every class boundary and into a mapping of their own) and
 *         vectors (1.5x a step up to 2 MiB: copies into the cache, then
 *         growth in place into the room left behind); at its target a
 *         buffer shrinks (a mapping down to a size a class serves, at
 *         times) and is freed. So blocks grow in threads that did not
 *         allocate them, into ranges other threads freed. Every byte is
 *         checked at every step (its value depends on its offset only);
 *         large_live is 0 at the end.
 * reuse   An 8 MiB block is freed, then 16 MiB of 16 KiB blocks are
 *         allocated: with the large-block cache on (FAST), the superslabs
 *         they need are built in the cached range (resident pages) instead
 *         of fresh mappings, so some of them lie in it. Every block keeps
 *         its stamp; a second free of the big block is diagnosed, not
 *         taken; large_live and large_cached come back as expected.
 * All but reuse: nothing on stderr (every free accepted silently); reuse:
 * exactly one diagnosis, then the program goes on (the debug library
 * aborts in that free). Modes: FAST, with
 * and without the large-block cache (HAKMEM_LARGE_CACHE_MB=0: every free
 * unmaps, every grow is an mremap), LEAN budget 0, debug.
 */
#include "lc_common.h"

/* 64 bytes of a pattern that depends on the salt only (not on the
 * address: realloc moves the contents). */
static void lg_put(void *at, unsigned salt)
{
    uint32_t s = salt * 2654435761u + 1;
    for (int i = 0; i < 64; i++)
        ((unsigned char *)at)[i] = (unsigned char)vt_xorshift(&s);
}

static int lg_is(const void *at, unsigned salt)
{
    uint32_t s = salt * 2654435761u + 1;
    for (int i = 0; i < 64; i++)
        if (((const unsigned char *)at)[i] != (unsigned char)vt_xorshift(&s))
            return 0;
    return 1;
}

/* Stamp a large block at both ends. */
static void lg_stamp(void *p, size_t size, unsigned salt)
{
    lg_put(p, salt);
    lg_put((char *)p + size - 64, salt + 1);
}

static int lg_ok(void *p, size_t size, unsigned salt)
{
    return lg_is(p, salt) && lg_is((char *)p + size - 64, salt + 1);
}

/* malloc_usable_size must cover the request and be writable to its end;
 * the byte written there is checked again when the block is freed. (The
 * requests are 100 bytes short of a page multiple, so that byte lies past
 * the stamped end, except in the debug library, whose usable size is the
 * request: there the stamp covers the end, and the byte is not written.) */
static size_t lg_usable(void *p, size_t size, const char *who)
{
    size_t us = malloc_usable_size(p);
    if (us < size)
        vt_fail("%s: malloc_usable_size(%p) = %zu, less than the %zu requested", who, p, us, size);
    if (us > size)
        ((volatile unsigned char *)p)[us - 1] = (unsigned char)(us ^ 0x3c);
    return us;
}

/* (size: the request; see lg_usable) */
static int lg_tail_ok(void *p, size_t us, size_t size)
{
    return us == size || ((volatile unsigned char *)p)[us - 1] == (unsigned char)(us ^ 0x3c);
}

/* ------------------------------------------------------------------------ */
/* remap */

static _Atomic int rm_stop;

#define RM_GROWERS 4
#define RM_MAX ((size_t)16 << 20)

static void *remap_grower(void *arg)
{
    (void)arg;
    void *p[RM_GROWERS] = {0};
    size_t sz[RM_GROWERS] = {0};
    unsigned salt[RM_GROWERS] = {0};
    uint32_t seed = 0x9e3779b9u;
    long reallocs = 0;
    while (!atomic_load(&rm_stop)) {
        int i = (int)(vt_xorshift(&seed) % RM_GROWERS);
        if (!p[i] || sz[i] >= RM_MAX) {
            if (p[i]) {
                if (!lg_ok(p[i], sz[i], salt[i]))
                    vt_fail("remap: a grown block lost its stamp before free");
                free(p[i]);
            }
            sz[i] = 40960 + (vt_xorshift(&seed) % 16) * 4096 - 100;
            p[i] = malloc(sz[i]);
            if (!p[i])
                vt_fail("remap: malloc(%zu) failed", sz[i]);
            salt[i] = vt_xorshift(&seed);
            lg_stamp(p[i], sz[i], salt[i]);
            continue;
        }
        /* Grow by a big step: the block rarely fits where it is. */
        size_t nsz = (sz[i] + 100) * 2 + (vt_xorshift(&seed) % 8) * 4096 - 100;
        void *q = realloc(p[i], nsz);
        if (!q)
            vt_fail("remap: realloc(%zu -> %zu) failed", sz[i], nsz);
        reallocs++;
        /* The head and the old tail moved with the block. */
        if (!lg_ok(q, sz[i], salt[i]))
            vt_fail("remap: realloc %zu -> %zu lost the block's contents", sz[i], nsz);
        size_t us = lg_usable(q, nsz, "remap grower");
        if (!lg_tail_ok(q, us, nsz))
            vt_fail("remap: cannot read back the last usable byte");
        p[i] = q;
        sz[i] = nsz;
        lg_stamp(q, nsz, salt[i]);
    }
    for (int i = 0; i < RM_GROWERS; i++)
        if (p[i]) {
            if (!lg_ok(p[i], sz[i], salt[i]))
                vt_fail("remap: a grown block lost its stamp");
            free(p[i]);
        }
    vt_report("reallocs", "%ld", reallocs);
    return NULL;
}

static void *remap_churner(void *arg)
{
    (void)arg;
    enum { N = 16 };
    void *p[N] = {0};
    size_t sz[N] = {0}, us[N] = {0};
    uint32_t seed = 0x12345u;
    long allocs = 0;
    while (!atomic_load(&rm_stop)) {
        int i = (int)(vt_xorshift(&seed) % N);
        if (p[i]) {
            if (!lg_ok(p[i], sz[i], (unsigned)i * 7 + 1) || !lg_tail_ok(p[i], us[i], sz[i]))
                vt_fail("remap: a fresh block of %zu bytes lost its stamp: another block overlaps it", sz[i]);
            free(p[i]);
            p[i] = NULL;
            continue;
        }
        /* Sizes like the grower's, so a fresh mapping fits where a moved
         * block was. */
        sz[i] = (size_t)40960 << (vt_xorshift(&seed) % 8);
        sz[i] += (size_t)(vt_xorshift(&seed) % 4) * 4096 - 100; /* size_t: 0 pages less 100 must not wrap at 4 GiB */
        p[i] = malloc(sz[i]);
        if (!p[i])
            vt_fail("remap: malloc(%zu) failed", sz[i]);
        allocs++;
        us[i] = lg_usable(p[i], sz[i], "remap churner");
        lg_stamp(p[i], sz[i], (unsigned)i * 7 + 1);
    }
    for (int i = 0; i < N; i++)
        if (p[i]) {
            if (!lg_ok(p[i], sz[i], (unsigned)i * 7 + 1) || !lg_tail_ok(p[i], us[i], sz[i]))
                vt_fail("remap: a fresh block lost its stamp");
            free(p[i]);
        }
    vt_report("allocs", "%ld", allocs);
    return NULL;
}

static int sc_remap(void)
{
    pthread_t g, c;
    if (pthread_create(&g, NULL, remap_grower, NULL) != 0 || pthread_create(&c, NULL, remap_churner, NULL) != 0)
        vt_fail("pthread_create");
    lc_sleep_ms((long)(vt_seconds(1.5) * 1000));
    atomic_store(&rm_stop, 1);
    pthread_join(g, NULL);
    pthread_join(c, NULL);
    struct hakmem_stats st;
    vt_stats(&st);
    vt_report("large_live", "%llu", (unsigned long long)st.large_live);
    if (st.large_live != 0)
        vt_fail("large_live is %llu after every large block was freed", (unsigned long long)st.large_live);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* table */

#define TB_THREADS 8
#define TB_BLOCKS 600

static pthread_barrier_t tb_barrier;
static _Atomic int tb_stop;

static void *table_thread(void *arg)
{
    unsigned me = (unsigned)(uintptr_t)arg;
    void **p = vt_map(TB_BLOCKS * sizeof(void *));
    size_t *sz = vt_map(TB_BLOCKS * sizeof(size_t));
    uint32_t seed = 0x51ed27u + me * 0x1000193u;
    for (int round = 0;; round++) {
        /* Everybody starts a round together, so the table grows while
         * all of them insert; main decides before this barrier whether
         * there is one more. */
        pthread_barrier_wait(&tb_barrier);
        if (atomic_load(&tb_stop))
            break;
        /* Every other new block, the one before it grows by realloc (a
         * move, mostly): entries are re-keyed while all threads insert. */
        for (int i = 0; i < TB_BLOCKS; i++) {
            sz[i] = 33 * 1024 + (vt_xorshift(&seed) % 32) * 4096;
            p[i] = malloc(sz[i]);
            if (!p[i])
                vt_fail("table: malloc(%zu) failed", sz[i]);
            lg_stamp(p[i], sz[i], me * 100000 + (unsigned)i);
            if (i % 2 == 0)
                continue;
            size_t nsz = sz[i - 1] * 2 + (vt_xorshift(&seed) % 16) * 4096;
            void *q = realloc(p[i - 1], nsz);
            if (!q)
                vt_fail("table: realloc(%zu -> %zu) failed", sz[i - 1], nsz);
            if (!lg_ok(q, sz[i - 1], me * 100000 + (unsigned)(i - 1)))
                vt_fail("table: realloc lost the block's contents");
            p[i - 1] = q;
            sz[i - 1] = nsz;
            lg_stamp(q, nsz, me * 100000 + (unsigned)(i - 1));
        }
        for (int i = 0; i < TB_BLOCKS; i++) {
            if (!lg_ok(p[i], sz[i], me * 100000 + (unsigned)i))
                vt_fail("table: round %d, block %d (%zu bytes) lost its stamp", round, i, sz[i]);
            if (malloc_usable_size(p[i]) < sz[i])
                vt_fail("table: malloc_usable_size %zu < %zu", malloc_usable_size(p[i]), sz[i]);
        }
        for (int i = 0; i < TB_BLOCKS; i++)
            free(p[i]);
        pthread_barrier_wait(&tb_barrier); /* round over */
    }
    munmap(p, TB_BLOCKS * sizeof(void *));
    munmap(sz, TB_BLOCKS * sizeof(size_t));
    return NULL;
}

/* One round in a fresh child of the scenario, so that each starts with an
 * empty table and grows it from its smallest size, with all the threads
 * inserting at once. */
static int table_child(void)
{
    pthread_t t[TB_THREADS];
    pthread_barrier_init(&tb_barrier, NULL, TB_THREADS + 1);
    for (int i = 0; i < TB_THREADS; i++)
        if (pthread_create(&t[i], NULL, table_thread, (void *)(uintptr_t)i) != 0)
            vt_fail("pthread_create");
    pthread_barrier_wait(&tb_barrier); /* start */
    pthread_barrier_wait(&tb_barrier); /* round over */
    atomic_store(&tb_stop, 1);
    pthread_barrier_wait(&tb_barrier); /* stop */
    for (int i = 0; i < TB_THREADS; i++)
        pthread_join(t[i], NULL);
    struct hakmem_stats st;
    vt_stats(&st);
    if (st.large_live != 0)
        vt_fail("large_live is %llu after every large block was freed", (unsigned long long)st.large_live);
    return 0;
}

static int sc_table(void)
{
    double end = vt_now() + vt_seconds(1.5);
    int rounds = 0;
    do {
        pid_t pid = fork();
        if (pid < 0)
            vt_fail("fork: %s", strerror(errno));
        if (pid == 0)
            _exit(table_child());
        int st;
        int w = lc_wait_child(pid, 20, &st);
        if (w == -1)
            vt_fail("round %d: the large-block table hung (no progress in 20 s)", rounds);
        if (w != 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            vt_fail("round %d ended with %s", rounds, vt_status_str(st));
        rounds++;
    } while (vt_now() < end);
    vt_report("rounds", "%d", rounds);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* moves: the table's bookkeeping of realloc moves, in one thread. */

#define MV_BLOCKS 255
#define MV_ROUNDS 6

static int sc_moves(void)
{
    static void *p[MV_BLOCKS];
    static size_t sz[MV_BLOCKS];
    long moves = 0;
    for (int i = 0; i < MV_BLOCKS; i++) {
        sz[i] = 40960 - 100;
        p[i] = malloc(sz[i]);
        if (!p[i])
            vt_fail("moves: malloc failed");
        lg_stamp(p[i], sz[i], (unsigned)i);
    }
    /* Each block grows four times by doubling: its neighbours sit right
     * behind it, so most of the growths move it. A move re-keys the
     * block's entry without making room first. */
    for (int r = 0; r < MV_ROUNDS; r++)
        for (int i = 0; i < MV_BLOCKS; i++) {
            size_t nsz = (sz[i] + 100) * 2 - 100;
            void *q = realloc(p[i], nsz);
            if (!q)
                vt_fail("moves: realloc(%zu -> %zu) failed", sz[i], nsz);
            if (!lg_ok(q, sz[i], (unsigned)i))
                vt_fail("moves: realloc lost the block's contents");
            moves += q != p[i];
            p[i] = q;
            sz[i] = nsz;
            lg_stamp(q, nsz, (unsigned)i);
        }
    vt_report("moves", "%ld", moves);
    /* Lookups: every block is found with its size; a pointer inside one
     * (not a block hakmem handed out) is answered "not ours", promptly. */
    for (int i = 0; i < MV_BLOCKS; i++) {
        if (vt_owns(p[i]) != 1 || malloc_usable_size(p[i]) < sz[i])
            vt_fail("moves: block %d (%zu bytes) is not known with its size", i, sz[i]);
        if (vt_owns((char *)p[i] + 4096) != 0)
            vt_fail("moves: a pointer inside block %d passes for a block", i);
    }
    for (int i = 0; i < MV_BLOCKS; i++) {
        if (!lg_ok(p[i], sz[i], (unsigned)i))
            vt_fail("moves: block %d lost its stamp", i);
        free(p[i]);
    }
    struct hakmem_stats st;
    vt_stats(&st);
    if (st.large_live != 0)
        vt_fail("large_live is %llu after every large block was freed", (unsigned long long)st.large_live);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* grow */

#define GR_SLOTS 64
#define GR_THREADS 4

struct gr_slot {
    pthread_mutex_t lock;
    unsigned char *p;
    size_t size, target;
    unsigned salt;
    int vector;
};
static struct gr_slot gr[GR_SLOTS];
static _Atomic int gr_stop;
static _Atomic long gr_steps, gr_moves;

static inline unsigned char gr_byte(unsigned salt, size_t i) { return (unsigned char)(salt + i * 131 + (i >> 9)); }

static void gr_fill(unsigned char *p, size_t from, size_t to, unsigned salt)
{
    for (size_t i = from; i < to; i++)
        p[i] = gr_byte(salt, i);
}

static void gr_verify(const unsigned char *p, size_t n, unsigned salt, size_t from, size_t to)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != gr_byte(salt, i))
            vt_fail("grow: realloc %zu -> %zu lost byte %zu of %zu", from, to, i, n);
}

/* realloc s to ns bytes; the bytes both sizes hold must survive. */
static void gr_resize(struct gr_slot *s, size_t ns, long *moves)
{
    unsigned char *q = realloc(s->p, ns);
    if (!q)
        vt_fail("grow: realloc(%zu -> %zu) failed", s->size, ns);
    gr_verify(q, ns < s->size ? ns : s->size, s->salt, s->size, ns);
    if (ns > s->size)
        gr_fill(q, s->size, ns, s->salt);
    *moves += q != s->p;
    s->p = q;
    s->size = ns;
}

static void *gr_thread(void *arg)
{
    uint32_t seed = 0x2545f491u * ((uint32_t)(uintptr_t)arg + 1);
    long steps = 0, moves = 0;
    while (!atomic_load(&gr_stop)) {
        struct gr_slot *s = &gr[vt_xorshift(&seed) % GR_SLOTS];
        uint32_t r = vt_xorshift(&seed);
        pthread_mutex_lock(&s->lock);
        if (!s->p) {
            /* A string (1-80 bytes a step, to 1-70 KiB), or a vector
             * (1.5x a step, to 40 KiB-2 MiB). */
            s->size = 1 + r % 64;
            s->vector = (r >> 6) % 3 != 0;
            s->target = s->vector ? 40000 + (r >> 8) % (2u << 20) : 1024 + (r >> 8) % 70000;
            s->salt = r;
            s->p = malloc(s->size);
            if (!s->p)
                vt_fail("grow: malloc(%zu) failed", s->size);
            gr_fill(s->p, 0, s->size, s->salt);
        } else if (s->size < s->target) {
            size_t ns = s->vector ? s->size + s->size / 2 + 1 : s->size + 1 + (r >> 4) % 80;
            gr_resize(s, ns < s->target ? ns : s->target, &moves);
        } else {
            /* At the target: shrink (to a third, or to a small size now and
             * then), then free. */
            gr_resize(s, r % 4 == 0 ? 1 + (r >> 2) % 30000 : s->size / 3 + 1, &moves);
            free(s->p);
            s->p = NULL;
        }
        pthread_mutex_unlock(&s->lock);
        steps++;
    }
    atomic_fetch_add(&gr_steps, steps);
    atomic_fetch_add(&gr_moves, moves);
    return NULL;
}

static int sc_grow(void)
{
    pthread_t t[GR_THREADS];
    for (int i = 0; i < GR_SLOTS; i++)
        pthread_mutex_init(&gr[i].lock, NULL);
    for (int i = 0; i < GR_THREADS; i++)
        if (pthread_create(&t[i], NULL, gr_thread, (void *)(uintptr_t)i) != 0)
            vt_fail("pthread_create");
    lc_sleep_ms((long)(vt_seconds(1.5) * 1000));
    atomic_store(&gr_stop, 1);
    for (int i = 0; i < GR_THREADS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < GR_SLOTS; i++)
        if (gr[i].p) {
            gr_verify(gr[i].p, gr[i].size, gr[i].salt, gr[i].size, gr[i].size);
            free(gr[i].p);
        }
    vt_report("steps", "%ld", atomic_load(&gr_steps));
    vt_report("moves", "%ld", atomic_load(&gr_moves));
    struct hakmem_stats st;
    vt_stats(&st);
    if (st.large_live != 0)
        vt_fail("large_live is %llu after every large block was freed", (unsigned long long)st.large_live);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* reuse */

#define RU_BIG ((size_t)8 << 20)
#define RU_SMALL 16384
#define RU_N 1024

static int sc_reuse(void)
{
    const char *cache = getenv("HAKMEM_LARGE_CACHE_MB");
    const char *lean = getenv("HAKMEM_SS_MEM_LEAN");
    int expect_reuse = !(cache && strcmp(cache, "0") == 0) && !(lean && strcmp(lean, "1") == 0);
    unsigned char *big = malloc(RU_BIG);
    if (!big)
        vt_fail("reuse: malloc(%zu) failed", RU_BIG);
    memset(big, 0x77, RU_BIG);
    uintptr_t lo = (uintptr_t)big, hi = lo + RU_BIG;
    void *volatile again = big; /* for the second free: not `big`, which is dead */
    free(big);
    struct hakmem_stats before;
    vt_stats(&before);
    void **v = vt_map(RU_N * sizeof *v);
    long inside = 0;
    for (int i = 0; i < RU_N; i++) {
        v[i] = malloc(RU_SMALL);
        if (!v[i])
            vt_fail("reuse: malloc(%d) failed", RU_SMALL);
        vt_stamp(v[i], RU_SMALL, (unsigned)i);
        inside += (uintptr_t)v[i] >= lo && (uintptr_t)v[i] < hi;
    }
    vt_report("inside", "%ld", inside); /* (without the cache too: the kernel maps there again) */
    struct hakmem_stats mid;
    vt_stats(&mid);
    vt_report("cache_taken", "%lld", (long long)before.large_cached_bytes - (long long)mid.large_cached_bytes);
    if (expect_reuse && (inside == 0 || mid.large_cached_bytes + (2u << 20) > before.large_cached_bytes))
        vt_fail("reuse: the large-block cache still holds %llu bytes (%llu before the small blocks): the "
                "superslabs were mapped afresh",
                (unsigned long long)mid.large_cached_bytes, (unsigned long long)before.large_cached_bytes);
    for (int i = 0; i < RU_N; i++) {
        size_t bad = vt_check(v[i], RU_SMALL, (unsigned)i);
        if (bad != (size_t)-1)
            vt_fail("reuse: block %d lost byte %zu", i, bad);
    }
    /* The big block is long gone: freeing it again is misuse, diagnosed
     * (a double or an invalid free, as its first page now serves), never
     * taken: the blocks live in its range must stay intact. */
    free(again);
    for (int i = 0; i < RU_N; i++) {
        size_t bad = vt_check(v[i], RU_SMALL, (unsigned)i);
        if (bad != (size_t)-1)
            vt_fail("reuse: block %d lost byte %zu after the second free", i, bad);
        free(v[i]);
    }
    struct hakmem_stats st;
    vt_stats(&st);
    if (st.large_live != 0)
        vt_fail("large_live is %llu after every large block was freed", (unsigned long long)st.large_live);
    vt_report("after", "ok");
    return 0;
}

static const struct vt_scenario scenarios[] = {
    {"remap", sc_remap, 0},
    {"table", sc_table, 0},
    {"moves", sc_moves, 0},
    {"grow", sc_grow, 0},
    {"reuse", sc_reuse, 0},
    {NULL, NULL, 0},
};

/* ------------------------------------------------------------------------ */
/* Parent. */

/* Without the large-block cache every free unmaps and every allocation
 * maps afresh, which is where a moved block's old range is taken again. */
#define LC_NO_LARGE_CACHE "HAKMEM_LARGE_CACHE_MB=0"
static const struct vt_mode all_modes[] = {
    {VT_FAST, {NULL}},
    {VT_FAST, {LC_NO_LARGE_CACHE}},
    {VT_LEAN, {LC_LEAN_ON, LC_BUDGET0, LC_DONTNEED, LC_NO_LARGE_CACHE}},
    {VT_DEBUG, {LC_LEAN_OFF, LC_NO_LARGE_CACHE}},
};
#define NMODES (sizeof all_modes / sizeof all_modes[0])
static struct lc_modes modes;

/* Run a scenario in mode i; print its two counts. misuse: it makes one
 * deliberate misuse (lc_assert_misuse), else nothing may be said. */
static void lg_run(int i, const char *scenario, unsigned timeout, const char *k1, const char *k2, const char *what,
                   int misuse)
{
    const struct vt_mode *m = modes.m[i];
    struct vt_result *r = malloc(sizeof *r);
    vt_spawn(m->variant, scenario, m->env, timeout, r);
    printf("%s %lld %s, %lld %s\n", r->desc, (long long)vt_num(r, k1, NULL), k1, (long long)vt_num(r, k2, NULL), k2);
    if (misuse)
        lc_assert_misuse(r, m->variant, what);
    else
        lc_assert_clean(r, what);
    free(r);
}

START_TEST(test_remap)
{
    lg_run(_i, "remap", (unsigned)(vt_seconds(1.5) + 30), "reallocs", "allocs",
           "realloc by mremap while another thread maps", 0);
}
END_TEST

START_TEST(test_table)
{
    const struct vt_mode *m = modes.m[_i];
    struct vt_result *r = malloc(sizeof *r);
    vt_spawn(m->variant, "table", m->env, (unsigned)(vt_seconds(1.5) + 60), r);
    printf("%s %s rounds\n", r->desc, vt_str(r, "rounds") ? vt_str(r, "rounds") : "?");
    lc_assert_clean(r, "large-block table growth under concurrency");
    free(r);
}
END_TEST

START_TEST(test_moves)
{
    const struct vt_mode *m = modes.m[_i];
    struct vt_result *r = malloc(sizeof *r);
    vt_spawn(m->variant, "moves", m->env, 60, r);
    printf("%s %lld moves\n", r->desc, (long long)vt_num(r, "moves", NULL));
    lc_assert_clean(r, "realloc moves without allocations");
    free(r);
}
END_TEST

START_TEST(test_grow)
{
    lg_run(_i, "grow", (unsigned)(vt_seconds(1.5) + 60), "steps", "moves",
           "buffers grown by realloc in turn by several threads", 0);
}
END_TEST

START_TEST(test_reuse)
{
    lg_run(_i, "reuse", 60, "inside", "cache_taken", "superslabs built in the large-block cache", 1);
}
END_TEST

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--scenario") == 0)
        return vt_scenario_main(scenarios, argv[2]);
    vt_require_builddir();
    lc_note_missing();
    lc_select(all_modes, NMODES, &modes);
    if (!modes.n) {
        printf("SKIP: no library to test\n");
        return VT_EXIT_SKIP;
    }
    Suite *s = suite_create("lifecycle_large");
    const struct {
        const char *name;
        const TTest *test;
        double timeout;
    } cases[] = {
        {"remap", test_remap, 40}, {"table", test_table, 70}, {"moves", test_moves, 70},
        {"grow", test_grow, 70},   {"reuse", test_reuse, 70},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        TCase *tc = tcase_create(cases[k].name);
        /* The time-bounded ones run vt_seconds(1.5) more. */
        tcase_set_timeout(tc, cases[k].timeout + (k == 2 || k == 4 ? 0 : vt_seconds(1.5)));
        tcase_add_loop_test(tc, cases[k].test, 0, modes.n);
        suite_add_tcase(s, tc);
    }
    return lc_run_suite(s);
}
