/* st_model.c: randomized multi-thread stress checked against a shadow model.
 *
 * CONFORMANCE C.18-C.21 and C.36 (threads, cross-thread frees, thread exit,
 * fork under load), E.27 (LEAN with budget 0), G.31-G.33 (the memory of
 * threads that exit with live blocks comes back), H (no allocation overlaps
 * a live block).
 *
 * A pool of worker slots runs threads that each do a random number of
 * random operations and exit; the main thread joins each one and starts a
 * replacement. Operations: malloc (1 byte to 256 KiB, mostly small), calloc,
 * posix_memalign / aligned_alloc / memalign (alignment 16 B to 64 KiB),
 * realloc up and down, free of the thread's own blocks, blocks handed to
 * other threads through a shared exchange (freed, realloc'ed or kept by a
 * thread that did not allocate them, often after their owner exited),
 * malloc_trim(0), and fork(): the child checks and frees blocks from before
 * the fork, allocates a bit and exits; a child that hangs or fails fails
 * the run.
 *
 * The model: every live block has a record (struct blk: address, requested
 * size, usable size, alignment, allocating worker, serial number). The
 * block is stamped with a pattern derived from its serial number, over its
 * whole usable size (beyond 16 KiB: both ends and 64 bytes of every page),
 * and the stamp is checked before every free and realloc. On allocation:
 * alignment, malloc_usable_size >= size, calloc's zeroes, and no overlap with
 * any live block (an address-ordered index, sharded by 1 MiB region). After
 * realloc the old prefix must be there. The first failure ends the run with
 * a message naming the block, the operation and the seed; so does a crash
 * (on_crash names the call in progress).
 *
 * At the end, with every thread joined, everything freed and
 * malloc_trim(0): hakmem's gauges must say where the memory went:
 * large_live == 0 and ss_live back to (about) its value at the start.
 *
 * Seeds: each worker's PRNG is derived from the run's seed and the worker's
 * number. HK_STRESS_SEED=N repeats a run's operation streams (thread
 * interleaving is the scheduler's); HK_STRESS_SEED=random picks one and
 * prints it. Default: a fixed seed. Length: a short fixed number of workers,
 * or HK_STRESS_SECONDS per configuration (`make stress`).
 *
 * Two builds:
 *  - default: a Check suite under glibc's malloc that re-runs itself with
 *    LD_PRELOAD of each built library and mode (vt_common.h);
 *  - -DST_USE_PREFIXED (make check-tsan): linked with a ThreadSanitizer
 *    build of hakmem's internal copy; the TSan runtime owns malloc, so the
 *    model calls hakmem_malloc & co., and the program runs the scenario once
 *    in the environment it is given.
 */
#include "vt_common.h"

#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/random.h>

#ifdef ST_USE_PREFIXED
#define st_malloc hakmem_malloc
#define st_calloc hakmem_calloc
#define st_realloc hakmem_realloc
#define st_free hakmem_free
#define st_posix_memalign hakmem_posix_memalign
#define st_aligned_alloc hakmem_aligned_alloc
#define st_memalign hakmem_memalign
#define st_usable hakmem_malloc_usable_size
#define st_trim hakmem_malloc_trim
#else
#include <check.h>
#define st_malloc malloc
#define st_calloc calloc
#define st_realloc realloc
#define st_free free
#define st_posix_memalign posix_memalign
#define st_aligned_alloc aligned_alloc
#define st_memalign memalign
#define st_usable malloc_usable_size
#define st_trim malloc_trim
#endif

#define ST_DEFAULT_SEED 20250101ull
#define ST_WS 256           /* blocks a worker holds at most */
#define ST_XCAP 4096        /* blocks waiting in the exchange at most */
#define ST_MAX_SIZE (256u << 10)
#define ST_MAX_ALIGN_SHIFT 16 /* alignments up to 64 KiB */
#define ST_MAX_SLOTS 16
#define ST_CHILD_TIMEOUT 20 /* seconds a fork child may take */
/* ss_live may end this far above its start: the main thread's own heap may
 * keep a superslab for the little it allocated (thread start-up). */
#define ST_SS_SLACK 2

/* ------------------------------------------------------------------------ */
/* Randomness: splitmix64 to derive seeds, xorshift64* per thread. */

static inline uint64_t st_mix(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint64_t st_rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static inline size_t st_below(uint64_t *s, size_t n) { return (size_t)(st_rnd(s) % n); }

/* Mostly small, some large: 70% up to 256 B, 20% up to 4 KiB, 8% up to
 * 32 KiB, 2% up to 256 KiB (hakmem's large objects start above 32 KiB). */
static size_t st_size(uint64_t *s)
{
    size_t r = st_below(s, 1000);
    if (r < 700)
        return 1 + st_below(s, 256);
    if (r < 900)
        return 257 + st_below(s, 4096 - 256);
    if (r < 980)
        return 4097 + st_below(s, 32768 - 4096);
    return 32769 + st_below(s, ST_MAX_SIZE - 32768);
}

/* ------------------------------------------------------------------------ */
/* Run parameters (scenario side). */

static uint64_t g_seed;
static int g_slots;
static long g_workers_max; /* workers to run in all; 0: until the deadline */
static double g_deadline;
static _Atomic int g_stop;
static _Atomic long g_forks_left;

/* Outcome counters, summed when a worker ends. */
static _Atomic long c_ops, c_mallocs, c_callocs, c_aligned, c_reallocs, c_frees, c_foreign_frees,
    c_foreign_reallocs, c_kept, c_trims, c_forks, c_max_live;

static uint64_t seed_from_env(void)
{
    const char *s = getenv("HK_STRESS_SEED");
    if (!s || !*s)
        return ST_DEFAULT_SEED;
    if (strcmp(s, "random") == 0) {
        uint64_t v = 0;
        if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v)
            v = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
        return v % 1000000000000ull; /* short enough to type back */
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end) {
        printf("hard error: HK_STRESS_SEED=%s is not a number (nor \"random\")\n", s);
        exit(VT_EXIT_HARD);
    }
    return v;
}

/* A failure: one line with the seed, then exit 1 (vt_fail). Any thread. */
__attribute__((format(printf, 1, 2), noreturn)) static void st_fail(const char *fmt, ...)
{
    char buf[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    vt_fail("%s [seed %llu: rerun with HK_STRESS_SEED=%llu]", buf, (unsigned long long)g_seed,
            (unsigned long long)g_seed);
}

/* What the calling thread is doing, for the crash report: the allocator
 * call in progress (a string that lives as long as the call). */
static __thread const char *t_doing = "start-up";
static __thread uint32_t t_worker;

/* A crash (or an abort from the debug library) ends the run like any other
 * failure: one fail= line naming the call in progress, the worker and the
 * seed, then the signal's default action, so the parent sees it too.
 * snprintf is not async-signal-safe, but the process dies next anyway and
 * a message that names the seed is worth the risk. */
static void on_crash(int sig, siginfo_t *si, void *uctx)
{
    (void)uctx;
    char buf[400];
    int n = snprintf(buf, sizeof buf,
                     "fail=crash: signal %d (%s) at address %p in worker %u, in or just after %s [seed %llu: rerun with "
                     "HK_STRESS_SEED=%llu]\n",
                     sig, strsignal(sig), si->si_addr, t_worker, t_doing, (unsigned long long)g_seed,
                     (unsigned long long)g_seed);
    if (n > 0) {
        ssize_t w = write(1, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
        (void)w;
    }
    raise(sig); /* SA_RESETHAND: the default action now */
}

static void crash_reporter_install(void)
{
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_crash;
    sa.sa_flags = SA_SIGINFO | SA_RESETHAND | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaction(sigs[i], &sa, NULL);
}

/* ------------------------------------------------------------------------ */
/* Block records, from a pool outside the allocator under test (so that a
 * broken allocator cannot corrupt the model itself). */

enum { HOW_MALLOC, HOW_CALLOC, HOW_REALLOC, HOW_POSIX_MEMALIGN, HOW_ALIGNED_ALLOC, HOW_MEMALIGN };
static const char *const how_name[] = {"malloc", "calloc", "realloc", "posix_memalign", "aligned_alloc",
                                       "memalign"};

struct blk {
    uintptr_t addr;
    size_t size;     /* requested */
    size_t usable;   /* malloc_usable_size when allocated: the stamped length */
    size_t align;    /* alignment promised: asked for, or 16 */
    uint64_t serial; /* unique per allocation; the stamp derives from it */
    uint32_t owner;  /* worker that allocated it */
    uint32_t holder; /* worker that holds it now (0: the exchange or main) */
    int how;
    struct blk *next; /* pool free list */
};

#define ST_NBLK 32768 /* > slots * ST_WS + ST_XCAP + in-flight */
static struct blk *g_blk_pool;
static struct blk *g_blk_free;
static long g_blk_used;
static pthread_mutex_t g_blk_mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic uint64_t g_serial;

static struct blk *blk_new(void)
{
    pthread_mutex_lock(&g_blk_mu);
    struct blk *b = g_blk_free;
    if (b) {
        g_blk_free = b->next;
        g_blk_used++;
        if (g_blk_used > atomic_load_explicit(&c_max_live, memory_order_relaxed))
            atomic_store_explicit(&c_max_live, g_blk_used, memory_order_relaxed);
    }
    pthread_mutex_unlock(&g_blk_mu);
    if (!b)
        st_fail("model: more than %d live blocks (test bug)", ST_NBLK);
    memset(b, 0, sizeof *b);
    return b;
}

static void blk_del(struct blk *b)
{
    pthread_mutex_lock(&g_blk_mu);
    b->next = g_blk_free;
    g_blk_free = b;
    g_blk_used--;
    pthread_mutex_unlock(&g_blk_mu);
}

static void blk_pool_init(void)
{
    g_blk_pool = vt_map(ST_NBLK * sizeof *g_blk_pool);
    for (int i = ST_NBLK - 1; i >= 0; i--) {
        g_blk_pool[i].next = g_blk_free;
        g_blk_free = &g_blk_pool[i];
    }
}

static const char *blk_desc(const struct blk *b, char *buf, size_t n)
{
    snprintf(buf, n, "[%#lx, +%zu) from %s(size %zu, align %zu), serial %llu, allocated by worker %u, held by %u",
             (unsigned long)b->addr, b->usable, how_name[b->how], b->size, b->align,
             (unsigned long long)b->serial, b->owner, b->holder);
    return buf;
}

/* ------------------------------------------------------------------------ */
/* Stamps. Byte i of a block is byte i % 8 of the word w(i / 8) =
 * h + (i / 8) * odd, with h = mix(serial): a different pattern for every
 * allocation, so a block handed out twice, a lost write or a stale page
 * all show as a mismatch. */

#define ST_FULL_STAMP 16384
#define ST_EDGE 4096
#define ST_PAGE_SAMPLE 64

static inline uint64_t st_word(uint64_t h, size_t k) { return h + (uint64_t)k * 0x9E3779B97F4A7C15ull; }

static inline unsigned char st_byte(uint64_t h, size_t i)
{
    uint64_t w = st_word(h, i >> 3);
    return ((const unsigned char *)&w)[i & 7];
}

/* Stamp [off, off+len) of p; returns SIZE_MAX (the range walker's "ok"). */
static size_t range_fill(unsigned char *p, size_t off, size_t len, uint64_t h)
{
    size_t i = off, end = off + len;
    for (; i < end && (i & 7); i++)
        p[i] = st_byte(h, i);
    for (; i + 8 <= end; i += 8) {
        uint64_t w = st_word(h, i >> 3);
        memcpy(p + i, &w, 8);
    }
    for (; i < end; i++)
        p[i] = st_byte(h, i);
    return SIZE_MAX;
}

/* First offset in [off, off+len) that does not hold the stamp; SIZE_MAX. */
static size_t range_check(unsigned char *p, size_t off, size_t len, uint64_t h)
{
    size_t i = off, end = off + len;
    for (; i < end && (i & 7); i++)
        if (p[i] != st_byte(h, i))
            return i;
    for (; i + 8 <= end; i += 8) {
        uint64_t w = st_word(h, i >> 3), v;
        memcpy(&v, p + i, 8);
        if (v != w)
            break;
    }
    for (; i < end; i++)
        if (p[i] != st_byte(h, i))
            return i;
    return SIZE_MAX;
}

typedef size_t (*range_fn)(unsigned char *p, size_t off, size_t len, uint64_t h);

/* Apply fn to the stamped ranges of an n-byte block, clipped to [0, limit):
 * all of it up to 16 KiB; beyond, the first and last 4 KiB and 64 bytes of
 * every page in between (every page is written, so a page given back under
 * a live block cannot go unseen). Returns the first bad offset or SIZE_MAX. */
static size_t each_range(unsigned char *p, size_t n, size_t limit, uint64_t h, range_fn fn)
{
    size_t bad;
#define ST_RANGE(o, l)                                                              \
    do {                                                                            \
        size_t o_ = (o), l_ = (l);                                                  \
        if (o_ < limit && (bad = fn(p, o_, o_ + l_ <= limit ? l_ : limit - o_, h)) != SIZE_MAX) \
            return bad;                                                             \
    } while (0)
    if (n <= ST_FULL_STAMP) {
        ST_RANGE(0, n);
        return SIZE_MAX;
    }
    ST_RANGE(0, ST_EDGE);
    size_t in_page = (size_t)(h >> 40) % (4096 - ST_PAGE_SAMPLE) & ~(size_t)7;
    for (size_t o = ST_EDGE + in_page; o + ST_PAGE_SAMPLE <= n - ST_EDGE; o += 4096)
        ST_RANGE(o, ST_PAGE_SAMPLE);
    ST_RANGE(n - ST_EDGE, ST_EDGE);
#undef ST_RANGE
    return SIZE_MAX;
}

static uint64_t blk_hash(const struct blk *b) { return st_mix(b->serial); }

static void blk_stamp(struct blk *b) { each_range((unsigned char *)b->addr, b->usable, SIZE_MAX, blk_hash(b), range_fill); }

/* The stamp must be intact (before free, realloc, hand-over checks). */
static void blk_verify(const struct blk *b, const char *when, uint32_t by)
{
    unsigned char *p = (unsigned char *)b->addr;
    uint64_t h = blk_hash(b);
    size_t bad = each_range(p, b->usable, SIZE_MAX, h, range_check);
    if (bad != SIZE_MAX) {
        char d[256];
        st_fail("corruption: block %s: byte %zu is %#x, expected %#x (checked %s by worker %u)", blk_desc(b, d, sizeof d),
                bad, p[bad], st_byte(h, bad), when, by);
    }
}

/* ------------------------------------------------------------------------ */
/* The address index of live blocks: NB buckets, each a sorted array of
 * [start, end) under its own lock; a block is filed under the 1 MiB region
 * of its start, bucket = region % NB. A new block [a, e) can only overlap
 * a live block that starts in a region between (a - longest block) and
 * (e - 1); in each of those buckets, the live block with the greatest start
 * below e is the one to test (live blocks are disjoint, so it has the
 * greatest end of them all). A block leaves the index before it is freed
 * and enters it after it was allocated, so a reuse is never mistaken for an
 * overlap. The price: a block is out of the index while realloc runs on it,
 * so an allocation that lands on it then shows as a stamp failure, a short
 * usable size or a crash (reported by on_crash), not as an overlap. */

#define IDX_NB 64
#define IDX_SHIFT 20

struct ient {
    uintptr_t start, end;
    struct blk *b;
};

static struct ibucket {
    pthread_mutex_t mu;
    size_t n;
    struct ient *e; /* ST_NBLK entries, mapped lazily */
    char pad[64];
} g_idx[IDX_NB];
static _Atomic size_t g_max_span;

static void idx_init(void)
{
    for (int i = 0; i < IDX_NB; i++) {
        pthread_mutex_init(&g_idx[i].mu, NULL);
        g_idx[i].e = mmap(NULL, ST_NBLK * sizeof(struct ient), PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (g_idx[i].e == MAP_FAILED)
            vt_fail("mmap for the index: %s", strerror(errno));
    }
}

/* Entries of bucket k with start < key (the insertion point of key). */
static size_t idx_lower(const struct ibucket *k, uintptr_t key)
{
    size_t lo = 0, hi = k->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (k->e[mid].start < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void idx_overlap_fail(const struct blk *b, const struct ient *other)
{
    char d1[256], d2[256];
    st_fail("corruption: new block %s overlaps live block %s", blk_desc(b, d1, sizeof d1),
            blk_desc(other->b, d2, sizeof d2));
}

static void idx_insert(struct blk *b)
{
    uintptr_t a = b->addr, e = a + (b->usable > b->size ? b->usable : b->size);
    if (e == a)
        e = a + 1;
    size_t span = e - a, ms = atomic_load(&g_max_span);
    while (span > ms && !atomic_compare_exchange_weak(&g_max_span, &ms, span))
        ;
    ms = atomic_load(&g_max_span);
    uintptr_t own = a >> IDX_SHIFT, lo = (a > ms ? a - ms : 0) >> IDX_SHIFT, hi = (e - 1) >> IDX_SHIFT;
    if (hi - lo >= IDX_NB)
        hi = lo + IDX_NB - 1;
    for (uintptr_t r = lo; r <= hi; r++) {
        if (r % IDX_NB == own % IDX_NB)
            continue;
        struct ibucket *k = &g_idx[r % IDX_NB];
        struct ient hit = {0, 0, NULL};
        pthread_mutex_lock(&k->mu);
        size_t i = idx_lower(k, e);
        if (i > 0 && k->e[i - 1].end > a) {
            hit = k->e[i - 1];
            /* the other block's record may change once unlocked: copy */
            static __thread struct blk copy;
            copy = *hit.b;
            hit.b = &copy;
        }
        pthread_mutex_unlock(&k->mu);
        if (hit.b)
            idx_overlap_fail(b, &hit);
    }
    struct ibucket *k = &g_idx[own % IDX_NB];
    pthread_mutex_lock(&k->mu);
    size_t i = idx_lower(k, e);
    if (i > 0 && k->e[i - 1].end > a) {
        static __thread struct blk copy;
        copy = *k->e[i - 1].b;
        struct ient hit = {k->e[i - 1].start, k->e[i - 1].end, &copy};
        pthread_mutex_unlock(&k->mu);
        idx_overlap_fail(b, &hit);
    }
    if (k->n >= ST_NBLK) {
        pthread_mutex_unlock(&k->mu);
        st_fail("model: index bucket full (test bug)");
    }
    i = idx_lower(k, a);
    memmove(&k->e[i + 1], &k->e[i], (k->n - i) * sizeof k->e[0]);
    k->e[i] = (struct ient){a, e, b};
    k->n++;
    pthread_mutex_unlock(&k->mu);
}

static void idx_remove(struct blk *b)
{
    struct ibucket *k = &g_idx[(b->addr >> IDX_SHIFT) % IDX_NB];
    pthread_mutex_lock(&k->mu);
    size_t i = idx_lower(k, b->addr);
    int ok = i < k->n && k->e[i].start == b->addr && k->e[i].b == b;
    if (ok) {
        memmove(&k->e[i], &k->e[i + 1], (k->n - i - 1) * sizeof k->e[0]);
        k->n--;
    }
    pthread_mutex_unlock(&k->mu);
    if (!ok) {
        char d[256];
        st_fail("model: block %s is not in the index (test bug)", blk_desc(b, d, sizeof d));
    }
}

static size_t idx_count(void)
{
    size_t n = 0;
    for (int i = 0; i < IDX_NB; i++) {
        pthread_mutex_lock(&g_idx[i].mu);
        n += g_idx[i].n;
        pthread_mutex_unlock(&g_idx[i].mu);
    }
    return n;
}

/* ------------------------------------------------------------------------ */
/* Model operations. */

/* A block the allocator just returned: check it, file it, stamp it. */
static struct blk *blk_adopt(void *p, size_t size, size_t align, int how, uint32_t by, const char *call)
{
    if (!p)
        st_fail("%s returned NULL (errno %d) by worker %u; nothing else is short of memory", call, errno, by);
    uintptr_t a = (uintptr_t)p;
    size_t us = st_usable(p);
    if (a % align)
        st_fail("%s = %p by worker %u: not aligned to %zu", call, p, by, align);
    if (us < size)
        st_fail("%s = %p by worker %u: malloc_usable_size %zu < %zu", call, p, by, us, size);
    if (how == HOW_CALLOC) {
        const unsigned char *c = p;
        for (size_t i = 0; i < size; i++)
            if (c[i])
                st_fail("%s = %p by worker %u: byte %zu is %#x, not 0", call, p, by, i, c[i]);
    }
    struct blk *b = blk_new();
    b->addr = a;
    b->size = size;
    b->usable = us;
    b->align = align;
    b->serial = atomic_fetch_add_explicit(&g_serial, 1, memory_order_relaxed) + 1;
    b->owner = by;
    b->holder = by;
    b->how = how;
    idx_insert(b);
    blk_stamp(b);
    return b;
}

static void blk_free(struct blk *b, uint32_t by)
{
    blk_verify(b, "before free", by);
    idx_remove(b);
    t_doing = "free";
    st_free((void *)b->addr);
    blk_del(b);
}

/* realloc to n: the old prefix must survive; returns the new record. */
static struct blk *blk_realloc(struct blk *b, size_t n, uint32_t by)
{
    static __thread char call[96]; /* thread-local: t_doing may point here */
    blk_verify(b, "before realloc", by);
    struct blk old = *b;
    idx_remove(b);
    blk_del(b);
    snprintf(call, sizeof call, "realloc(%#lx, %zu)", (unsigned long)old.addr, n);
    t_doing = call;
    void *q = st_realloc((void *)old.addr, n);
    if (!q)
        st_fail("%s returned NULL (errno %d) by worker %u", call, errno, by);
    size_t keep = old.size < n ? old.size : n;
    size_t bad = each_range(q, old.usable, keep, blk_hash(&old), range_check);
    if (bad != SIZE_MAX) {
        char d[256];
        st_fail("corruption: %s = %p by worker %u lost the old contents at byte %zu (%#x, expected %#x) of %s", call, q,
                by, bad, ((unsigned char *)q)[bad], st_byte(blk_hash(&old), bad), blk_desc(&old, d, sizeof d));
    }
    struct blk *nb = blk_adopt(q, n, 16, HOW_REALLOC, by, call);
    nb->owner = old.owner; /* still the same object */
    return nb;
}

/* ------------------------------------------------------------------------ */
/* The exchange: blocks in transit between threads. */

static struct {
    pthread_mutex_t mu;
    struct blk *b[ST_XCAP];
    size_t n;
} xch = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* Put b in; if the exchange is full, a random block comes out instead and
 * the caller frees it (a block allocated by someone else). */
static void xch_put(struct blk *b, uint64_t *rng, uint32_t by)
{
    struct blk *out = NULL;
    b->holder = 0;
    pthread_mutex_lock(&xch.mu);
    if (xch.n < ST_XCAP) {
        xch.b[xch.n++] = b;
    } else {
        size_t i = st_below(rng, ST_XCAP);
        out = xch.b[i];
        xch.b[i] = b;
    }
    pthread_mutex_unlock(&xch.mu);
    if (out) {
        out->holder = by;
        if (out->owner != by)
            atomic_fetch_add_explicit(&c_foreign_frees, 1, memory_order_relaxed);
        blk_free(out, by);
    }
}

static struct blk *xch_take(uint64_t *rng, uint32_t by)
{
    struct blk *b = NULL;
    pthread_mutex_lock(&xch.mu);
    if (xch.n) {
        size_t i = st_below(rng, xch.n);
        b = xch.b[i];
        xch.b[i] = xch.b[--xch.n];
    }
    pthread_mutex_unlock(&xch.mu);
    if (b)
        b->holder = by;
    return b;
}

/* ------------------------------------------------------------------------ */
/* Workers. */

struct worker {
    pthread_t th;
    uint32_t id; /* 1, 2, ... in start order: the PRNG stream */
    uint64_t rng;
    long ops_left;
    struct blk *own[ST_WS];
    size_t nown;
    long ops, mallocs, callocs, aligned, reallocs, frees, foreign_frees, foreign_reallocs, kept, trims, forks;
    _Atomic int done;
};

static void own_add(struct worker *w, struct blk *b)
{
    if (w->nown == ST_WS) {
        /* full: free a random one first */
        size_t i = st_below(&w->rng, ST_WS);
        blk_free(w->own[i], w->id);
        w->frees++;
        w->own[i] = w->own[--w->nown];
    }
    w->own[w->nown++] = b;
}

static struct blk *own_take(struct worker *w)
{
    if (!w->nown)
        return NULL;
    size_t i = st_below(&w->rng, w->nown);
    struct blk *b = w->own[i];
    w->own[i] = w->own[--w->nown];
    return b;
}

/* New size for a realloc: anything, or about double, or about half. */
static size_t realloc_size(struct worker *w, size_t old)
{
    switch (st_below(&w->rng, 4)) {
    case 0: {
        size_t n = old * 2 + st_below(&w->rng, 64);
        return n < 2 * ST_MAX_SIZE ? n : 2 * ST_MAX_SIZE;
    }
    case 1:
        return old / 2 + 1;
    default:
        return st_size(&w->rng);
    }
}

static struct blk *do_aligned(struct worker *w)
{
    size_t align = (size_t)1 << (4 + st_below(&w->rng, ST_MAX_ALIGN_SHIFT - 3));
    size_t n = st_size(&w->rng);
    static __thread char call[80]; /* thread-local: t_doing may point here */
    void *p = NULL;
    int how = HOW_POSIX_MEMALIGN + (int)st_below(&w->rng, 3);
    snprintf(call, sizeof call, "%s(%zu, %zu)", how_name[how], align, n);
    t_doing = call;
    switch (how) {
    case HOW_POSIX_MEMALIGN: {
        int rc = st_posix_memalign(&p, align, n);
        if (rc != 0) {
            errno = rc;
            p = NULL;
        }
        break;
    }
    case HOW_ALIGNED_ALLOC:
        p = st_aligned_alloc(align, n);
        break;
    default:
        p = st_memalign(align, n);
        break;
    }
    w->aligned++;
    return blk_adopt(p, n, align, how, w->id, call);
}

static void fork_child(struct worker *w);

/* fork() from a worker while the others run; the child must exit 0 within
 * ST_CHILD_TIMEOUT (it arms alarm() itself; a hang past that is killed). */
static void do_fork(struct worker *w)
{
    fflush(stdout);
    t_doing = "fork";
    pid_t pid = fork();
    if (pid < 0)
        st_fail("fork by worker %u: %s", w->id, strerror(errno));
    if (pid == 0)
        fork_child(w);
    w->forks++;
    double t0 = vt_now();
    int st = 0;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR)
            st_fail("waitpid for the fork child of worker %u: %s", w->id, strerror(errno));
        if (vt_now() - t0 > ST_CHILD_TIMEOUT + 10) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            st_fail("the fork child of worker %u hung for %d s", w->id, ST_CHILD_TIMEOUT + 10);
        }
        usleep(1000);
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        st_fail("the fork child of worker %u ended with %s%s", w->id, vt_status_str(st),
                WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM ? " (hung)" : "");
}

static void one_op(struct worker *w)
{
    if (st_below(&w->rng, 4000) == 0) {
        t_doing = "malloc_trim(0)";
        st_trim(0);
        w->trims++;
    }
    if (st_below(&w->rng, 3000) == 0 && atomic_fetch_sub(&g_forks_left, 1) > 0)
        do_fork(w);
    size_t r = st_below(&w->rng, 100);
    struct blk *b;
    static __thread char call[64]; /* thread-local: t_doing may point here */
    if (r < 22 || (r < 46 && !w->nown)) {
        size_t n = st_size(&w->rng);
        snprintf(call, sizeof call, "malloc(%zu)", n);
        t_doing = call;
        own_add(w, blk_adopt(st_malloc(n), n, 16, HOW_MALLOC, w->id, call));
        w->mallocs++;
    } else if (r < 28) {
        size_t n = st_size(&w->rng), k = 1 + st_below(&w->rng, 4);
        n = (n + k - 1) / k;
        snprintf(call, sizeof call, "calloc(%zu, %zu)", k, n);
        t_doing = call;
        own_add(w, blk_adopt(st_calloc(k, n), k * n, 16, HOW_CALLOC, w->id, call));
        w->callocs++;
    } else if (r < 36) {
        own_add(w, do_aligned(w));
    } else if (r < 46) {
        b = own_take(w);
        own_add(w, blk_realloc(b, realloc_size(w, b->size), w->id));
        w->reallocs++;
    } else if (r < 70) {
        if ((b = own_take(w)) != NULL) {
            blk_free(b, w->id);
            w->frees++;
        }
    } else if (r < 78) {
        if ((b = own_take(w)) != NULL)
            xch_put(b, &w->rng, w->id);
    } else if ((b = xch_take(&w->rng, w->id)) != NULL) {
        /* a block someone else handed over, its allocator maybe gone */
        uint32_t owner = b->owner;
        if (r < 90) {
            blk_free(b, w->id);
            w->frees++;
            w->foreign_frees += owner != w->id;
        } else if (r < 95) {
            own_add(w, blk_realloc(b, realloc_size(w, b->size), w->id));
            w->reallocs++;
            w->foreign_reallocs += owner != w->id;
        } else {
            blk_verify(b, "when taken over", w->id);
            own_add(w, b);
            w->kept++;
        }
    }
    w->ops++;
}

static pthread_mutex_t g_done_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_done_cv = PTHREAD_COND_INITIALIZER;

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    t_worker = w->id;
    while (w->ops_left-- > 0 && !atomic_load_explicit(&g_stop, memory_order_relaxed))
        one_op(w);
    /* Exit with live blocks: the exchange takes them all, and threads
     * started later free or realloc them. */
    while (w->nown)
        xch_put(w->own[--w->nown], &w->rng, w->id);
    atomic_fetch_add(&c_ops, w->ops);
    atomic_fetch_add(&c_mallocs, w->mallocs);
    atomic_fetch_add(&c_callocs, w->callocs);
    atomic_fetch_add(&c_aligned, w->aligned);
    atomic_fetch_add(&c_reallocs, w->reallocs);
    atomic_fetch_add(&c_frees, w->frees);
    atomic_fetch_add(&c_foreign_frees, w->foreign_frees);
    atomic_fetch_add(&c_foreign_reallocs, w->foreign_reallocs);
    atomic_fetch_add(&c_kept, w->kept);
    atomic_fetch_add(&c_trims, w->trims);
    atomic_fetch_add(&c_forks, w->forks);
    pthread_mutex_lock(&g_done_mu);
    atomic_store(&w->done, 1);
    pthread_cond_signal(&g_done_cv);
    pthread_mutex_unlock(&g_done_mu);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* The fork child: single-threaded now. Only this thread's own blocks are
 * certainly consistent (another thread may have been inside the index or
 * the exchange at the fork), so the model stays untouched: the child keeps
 * its own books, writes one line and _exits with a status that names the
 * failure. */

__attribute__((format(printf, 3, 4), noreturn)) static void child_fail(struct worker *w, int code, const char *fmt, ...)
{
    char buf[400];
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(buf, sizeof buf, "fork child of worker %u: ", w->id);
    n += vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof buf - 2)
        n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    ssize_t wr = write(1, buf, (size_t)n);
    (void)wr;
    _exit(code);
}

static void fork_child(struct worker *w)
{
    alarm(ST_CHILD_TIMEOUT);
    t_doing = "the fork child's checks";
    /* 1. the parent's blocks, as this thread left them: intact; free half */
    for (size_t i = 0; i < w->nown; i++) {
        struct blk *b = w->own[i];
        size_t bad = each_range((unsigned char *)b->addr, b->usable, SIZE_MAX, blk_hash(b), range_check);
        if (bad != SIZE_MAX)
            child_fail(w, 3, "pre-fork block %#lx (size %zu) differs at byte %zu", (unsigned long)b->addr, b->size, bad);
        if (i & 1)
            st_free((void *)b->addr);
    }
    /* 2. blocks of other threads (threads that do not exist here), if the
     * exchange was not locked at the fork */
    if (pthread_mutex_trylock(&xch.mu) == 0) {
        for (int k = 0; k < 16 && xch.n; k++) {
            struct blk *b = xch.b[--xch.n];
            size_t bad = each_range((unsigned char *)b->addr, b->usable, SIZE_MAX, blk_hash(b), range_check);
            if (bad != SIZE_MAX)
                child_fail(w, 4, "exchange block %#lx (size %zu) differs at byte %zu", (unsigned long)b->addr, b->size,
                           bad);
            st_free((void *)b->addr);
        }
    }
    /* 3. allocate, realloc and free a bit, in every size range */
    enum { N = 64 };
    struct {
        unsigned char *p;
        size_t n;
        uint64_t h;
    } v[N];
    memset(v, 0, sizeof v);
    uint64_t rng = st_mix(g_seed ^ w->id ^ 0xf0f0);
    for (int op = 0; op < 600; op++) {
        int i = (int)st_below(&rng, N);
        if (v[i].p) {
            size_t bad = each_range(v[i].p, v[i].n, SIZE_MAX, v[i].h, range_check);
            if (bad != SIZE_MAX)
                child_fail(w, 5, "own block %p (size %zu) differs at byte %zu", (void *)v[i].p, v[i].n, bad);
            if (op & 1) {
                size_t n = st_size(&rng);
                unsigned char *q = st_realloc(v[i].p, n);
                if (!q)
                    child_fail(w, 6, "realloc(%p, %zu) = NULL", (void *)v[i].p, n);
                bad = each_range(q, v[i].n, v[i].n < n ? v[i].n : n, v[i].h, range_check);
                if (bad != SIZE_MAX)
                    child_fail(w, 5, "realloc lost byte %zu", bad);
                v[i].p = q;
                v[i].n = n;
                v[i].h = st_mix(rng);
                each_range(q, n, SIZE_MAX, v[i].h, range_fill);
                continue;
            }
            st_free(v[i].p);
            v[i].p = NULL;
            continue;
        }
        size_t n = st_size(&rng);
        v[i].p = (op % 5 == 0) ? st_calloc(1, n) : st_malloc(n);
        if (!v[i].p)
            child_fail(w, 6, "malloc(%zu) = NULL", n);
        if (op % 5 == 0)
            for (size_t k = 0; k < n; k++)
                if (v[i].p[k])
                    child_fail(w, 7, "calloc(1, %zu): byte %zu is not 0", n, k);
        v[i].n = n;
        v[i].h = st_mix(rng);
        each_range(v[i].p, n, SIZE_MAX, v[i].h, range_fill);
    }
    for (int i = 0; i < N; i++)
        st_free(v[i].p);
    st_trim(0);
    _exit(0);
}

/* ------------------------------------------------------------------------ */
/* The scenario. */

static void st_stats(struct hakmem_stats *st)
{
#ifdef ST_USE_PREFIXED
    memset(st, 0, sizeof *st);
    if (hakmem_stats_get(st, sizeof *st) != 0)
        vt_fail("hakmem_stats_get failed");
#else
    vt_stats(st);
#endif
}

static const char *gauges(const struct hakmem_stats *s, char *buf, size_t n)
{
    snprintf(buf, n,
             "ss_live %llu, ss_cached %llu, ss_decommitted %llu, large_live %llu, large_cached_bytes %llu, "
             "bytes_mapped %llu, bytes_committed %llu",
             (unsigned long long)s->ss_live, (unsigned long long)s->ss_cached, (unsigned long long)s->ss_decommitted,
             (unsigned long long)s->large_live, (unsigned long long)s->large_cached_bytes,
             (unsigned long long)s->bytes_mapped, (unsigned long long)s->bytes_committed);
    return buf;
}

static struct worker *g_w[ST_MAX_SLOTS];
static uint32_t g_next_id;

static void start_worker(int slot)
{
    struct worker *w = g_w[slot];
    memset(w, 0, sizeof *w);
    w->id = ++g_next_id;
    w->rng = st_mix(g_seed ^ st_mix(w->id)) | 1;
    w->ops_left = 1000 + (long)st_below(&w->rng, 5000);
    if (pthread_create(&w->th, NULL, worker_main, w) != 0)
        st_fail("pthread_create: %s", strerror(errno));
}

static int sc_model(void)
{
    struct hakmem_stats base, end;
    char gb[2][400];
    double secs = 0;
    const char *s = getenv("HK_STRESS_SECONDS");
    if (s && atof(s) > 0)
        secs = atof(s);

    g_seed = seed_from_env();
    vt_report("seed", "%llu", (unsigned long long)g_seed);
    crash_reporter_install();
#ifdef ST_USE_PREFIXED
    /* under ThreadSanitizer everything is 5-15 times slower */
    g_slots = 4;
    g_workers_max = secs > 0 ? 0 : 40;
#else
    g_slots = 6;
    g_workers_max = secs > 0 ? 0 : 240;
#endif
    g_deadline = vt_now() + (secs > 0 ? secs : 60);
    atomic_store(&g_forks_left, secs > 0 ? 4 + (long)secs : 6);
    blk_pool_init();
    idx_init();
    for (int i = 0; i < g_slots; i++)
        g_w[i] = vt_map(sizeof(struct worker));

    st_trim(0);
    st_stats(&base);
    vt_report("base", "%s", gauges(&base, gb[0], sizeof gb[0]));

    /* The pool: a finished worker is joined and replaced by a new one
     * until enough have run (or the time is up). */
    for (int i = 0; i < g_slots; i++)
        start_worker(i);
    int running = g_slots;
    while (running > 0) {
        pthread_mutex_lock(&g_done_mu);
        int any = 0;
        while (!any) {
            for (int i = 0; i < g_slots; i++)
                any |= g_w[i] && atomic_load(&g_w[i]->done);
            if (!any) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 50 * 1000000;
                if (ts.tv_nsec >= 1000000000) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000;
                }
                pthread_cond_timedwait(&g_done_cv, &g_done_mu, &ts);
                if (vt_now() > g_deadline)
                    atomic_store(&g_stop, 1);
            }
        }
        pthread_mutex_unlock(&g_done_mu);
        for (int i = 0; i < g_slots; i++) {
            if (!g_w[i] || !atomic_load(&g_w[i]->done))
                continue;
            pthread_join(g_w[i]->th, NULL);
            if (!atomic_load(&g_stop) && vt_now() < g_deadline && (!g_workers_max || g_next_id < g_workers_max)) {
                start_worker(i);
            } else {
                g_w[i] = NULL;
                running--;
            }
        }
    }

    /* Everything still live is in the exchange now: free it from here (the
     * threads that allocated it are gone). */
    struct blk *b;
    uint64_t rng = st_mix(g_seed);
    long drained = 0;
    while ((b = xch_take(&rng, 0)) != NULL) {
        blk_free(b, 0);
        drained++;
    }
    size_t left = idx_count();
    if (left || g_blk_used)
        st_fail("model: %zu blocks indexed, %ld records in use after the drain (test bug)", left, g_blk_used);

    st_trim(0);
    st_stats(&end);
    gauges(&end, gb[1], sizeof gb[1]);
    vt_report("end", "%s", gb[1]);
    vt_report("workers", "%u", g_next_id);
    vt_report("ops", "%ld", (long)c_ops);
    vt_report("mallocs", "%ld", (long)c_mallocs);
    vt_report("callocs", "%ld", (long)c_callocs);
    vt_report("aligned", "%ld", (long)c_aligned);
    vt_report("reallocs", "%ld", (long)c_reallocs);
    vt_report("frees", "%ld", (long)c_frees);
    vt_report("foreign_frees", "%ld", (long)c_foreign_frees + drained);
    vt_report("foreign_reallocs", "%ld", (long)c_foreign_reallocs);
    vt_report("taken_over", "%ld", (long)c_kept);
    vt_report("trims", "%ld", (long)c_trims);
    vt_report("forks", "%ld", (long)c_forks);
    vt_report("max_live", "%ld", (long)c_max_live);

    /* Where the memory went: no large object is left, and the superslabs
     * of exited threads came back (G.31: freed by others, then trimmed). */
    if (end.large_live != 0)
        st_fail("after freeing everything and malloc_trim(0): large_live is %llu, not 0; gauges at the start: %s; "
                "now: %s",
                (unsigned long long)end.large_live, gb[0], gb[1]);
    if (end.ss_live > base.ss_live + ST_SS_SLACK)
        st_fail("after freeing everything and malloc_trim(0): ss_live is %llu, at the start %llu (allowed: +%d); "
                "gauges at the start: %s; now: %s",
                (unsigned long long)end.ss_live, (unsigned long long)base.ss_live, ST_SS_SLACK, gb[0], gb[1]);
    vt_report("summary", "%ld operations by %u workers, seed %llu, corruptions found: 0", (long)c_ops, g_next_id,
              (unsigned long long)g_seed);
    return 0;
}

#ifdef ST_USE_PREFIXED
/* ------------------------------------------------------------------------ */
/* Linked with hakmem (make check-tsan): the environment is the run's. */

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    void *p = hakmem_malloc(24);
    if (!p || !hakmem_owns(p)) {
        printf("hard error: hakmem_malloc(24)=%p is not owned by hakmem\n", p);
        return VT_EXIT_HARD;
    }
    hakmem_free(p);
    printf("st_model (prefixed API) variant=%s\n", hakmem_variant());
    return sc_model();
}

#else
/* ------------------------------------------------------------------------ */
/* Parent: one run per library and mode. */

static const struct vt_scenario scenarios[] = {
    {"model", sc_model, 0},
    {NULL, NULL, 0},
};

static const struct vt_mode all_modes[] = {
    {VT_FAST, {NULL}},
    {VT_LEAN, {"HAKMEM_SS_MEM_LEAN=1", "HAKMEM_SS_MEM_LEAN_TARGET_MB=0", "HAKMEM_SS_MEM_LEAN_DECOMMIT=FREE"}},
    {VT_LEAN, {"HAKMEM_SS_MEM_LEAN=1", "HAKMEM_SS_MEM_LEAN_TARGET_MB=0", "HAKMEM_SS_MEM_LEAN_DECOMMIT=DONTNEED"}},
    {VT_LEAN, {"HAKMEM_SS_MEM_LEAN=1", "HAKMEM_SS_MEM_LEAN_TARGET_MB=0", "HAKMEM_SS_MEM_LEAN_DECOMMIT=OFF"}},
    {VT_DEBUG, {NULL}},
    {VT_DEBUG, {"HAKMEM_SS_MEM_LEAN=1", "HAKMEM_SS_MEM_LEAN_TARGET_MB=0", "HAKMEM_SS_MEM_LEAN_DECOMMIT=DONTNEED"}},
};
#define NMODES (sizeof all_modes / sizeof all_modes[0])
static const struct vt_mode *modes[NMODES];
static int nmodes;
static double run_seconds; /* HK_STRESS_SECONDS, 0 for the short run */

START_TEST(test_model)
{
    const struct vt_mode *m = modes[_i];
    struct vt_result *r = malloc(sizeof *r);
    double t0 = vt_now();
    vt_spawn(m->variant, "model", m->env, (unsigned)(run_seconds * 3 + 120), r);
    double dt = vt_now() - t0;
    const char *seed = vt_str(r, "seed");
    char seedbuf[32];
    snprintf(seedbuf, sizeof seedbuf, "%s", seed ? seed : getenv("HK_STRESS_SEED"));
    printf("%s %.1f s, %s: %lld operations by %lld workers, reallocs %lld, cross-thread frees %lld, forks %lld, "
           "trims %lld\n",
           r->desc, dt, vt_status_str(r->status), (long long)vt_num(r, "ops", NULL),
           (long long)vt_num(r, "workers", NULL), (long long)vt_num(r, "reallocs", NULL),
           (long long)vt_num(r, "foreign_frees", NULL), (long long)vt_num(r, "forks", NULL),
           (long long)vt_num(r, "trims", NULL));
    fflush(stdout); /* Check's fork mode: a failing test does not return here */
    vt_assert_r(r, vt_exited_ok(r), "the run must end cleanly (seed %s)", seedbuf);
    vt_assert_r(r, r->err_len == 0, "nothing on stderr (seed %s)", seedbuf);
    vt_assert_r(r, vt_num(r, "ops", NULL) >= 10000, "at least 10000 operations (seed %s)", seedbuf);
    vt_assert_r(r, vt_num(r, "foreign_frees", NULL) > 100, "cross-thread frees happened (seed %s)", seedbuf);
    printf("%s %s\n", r->desc, vt_str(r, "summary"));
    free(r);
}
END_TEST

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--scenario") == 0)
        return vt_scenario_main(scenarios, argv[2]);
    vt_require_builddir();
    /* One seed for every run, chosen here and handed down through the
     * environment, so that a failure names a seed that repeats it. */
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)seed_from_env());
    setenv("HK_STRESS_SEED", seed, 1);
    const char *s = getenv("HK_STRESS_SECONDS");
    run_seconds = s && atof(s) > 0 ? atof(s) : 0;
    printf("seed %s (repeat with HK_STRESS_SEED=%s), %s\n", seed, seed,
           run_seconds > 0 ? "time-bounded run" : "short run");
    nmodes = (int)vt_select_modes(all_modes, NMODES, modes);
    if (!nmodes) {
        printf("SKIP: no hakmem library is built\n");
        return VT_EXIT_SKIP;
    }
    Suite *su = suite_create("stress_model");
    TCase *tc = tcase_create("model");
    tcase_set_timeout(tc, run_seconds * 3 + 150);
    tcase_add_loop_test(tc, test_model, 0, nmodes);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
#endif
