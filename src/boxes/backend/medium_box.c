/* medium_box: medium blocks, runs of pages in 2 MiB regions. See the
 * header. */
#include "hakmem_internal.h"
#include "backend/medium_box.h"
#include "backend/large_box.h"
#include "backend/ss_allocation_box.h"
#include "backend/ss_release_policy_box.h"
#include "base/diag_box.h"
#include "base/superslab_stats.h"
#include "os/madvise_guard_box.h"
#include "os/ss_os_acquire_box.h"
#include "os/ss_registry_box.h"

#include <sched.h>
#include <string.h>

#define HK_MEDIUM_MAGIC 0x48414b4d454d4d44ULL /* "HAKMEMMD" */
#define NPAGES ((unsigned)(HK_SS_SIZE / HK_PAGE_SIZE)) /* 512; page 0 is the header */
#define WORDS (NPAGES / 64)
/* Free runs up to this many pages have a bin each; longer ones share bin 0.
 * A medium block is at most this long. */
#define BIN_MAX ((unsigned)(HK_MEDIUM_MAX / HK_PAGE_SIZE))
_Static_assert(BIN_MAX == 64, "a bin per length fits a 64-bit mask");

/* A page map entry: a length in pages and what the page is. Every page
 * that is neither the first page of a run nor the last of a free run reads
 * 0, so a pointer into a block is never taken for the start of one. */
#define PM_LEN 0x03FFu
#define PM_FREE 0x0400u /* first page of a free run (or its only page) */
#define PM_LIVE 0x0800u /* first page of a block handed out */
#define PM_TAIL 0x1000u /* last page of a free run of two pages or more */
#define PM_BUSY 0x2000u /* with FREE's place: a free run whose pages are being given
                           back; with LIVE: a block being freed (LEAN) */
#define PM_QUICK 0x8000u /* first page of a freed block kept whole on a quick list */

/* Lists: the buckets (regions with blocks out and a free run, by their
 * longest free run: bucket L for L <= BIN_MAX pages, bucket 0 longer), the
 * empty regions (committed) and the gone ones (every page given back); a
 * region with no free run is on none. */
enum { ON_NONE, ON_BUCKET, ON_EMPTY, ON_GONE };

typedef struct hk_medium_region {
    uint64_t magic;
    struct hk_medium_region *next, *prev;         /* its list */
    struct hk_medium_region *all_next, *all_prev; /* every region */
    uint64_t binmask;    /* bit L-1: bin[L] holds a free run (1 <= L <= BIN_MAX) */
    uint32_t pages;      /* pages blocks may use: 511 */
    uint32_t nlive;      /* blocks not in free runs: handed out, or on a quick list */
    uint32_t nquick;     /* those on a quick list */
    uint32_t live_pages; /* pages of the blocks handed out */
    uint32_t gone_n;     /* pages given back (bits of gone_pages) */
    uint32_t nbusy;      /* runs and blocks whose pages are being given back */
    uint32_t frontier;   /* pages from here on were not handed out since they last
                            read zero (a fresh mapping, or DONTNEED) */
    uint8_t list;        /* ON_* */
    uint8_t bucket;      /* its bucket while ON_BUCKET */
    uint8_t active;      /* used since the last purge pass looked */
    uint8_t taken;       /* from the large box's cache, its bytes in g_taken until attached */
    int64_t idle_since_ms;                /* the purge pass that found it unused first */
    uint16_t bin[BIN_MAX + 1];            /* first page of a free run of each length; [0]: longer */
    uint64_t freed_pages[WORDS];          /* a freed block started here, none started since */
    uint64_t gone_pages[WORDS];           /* given back, not handed out since */
    uint16_t pm[NPAGES];                  /* the page map */
    uint16_t nxt[NPAGES], prv[NPAGES];    /* bin links of free runs (by first page; 0: none) */
} hk_medium_region_t;

_Static_assert(sizeof(hk_medium_region_t) <= HK_PAGE_SIZE, "the header is the region's first page");

/* A spin-then-yield lock, as the heaps': taken once a malloc or free,
 * held for a few dozen instructions, never across a syscall. */
static _Atomic int g_lock;
static hk_medium_region_t *g_bucket[BIN_MAX + 1];
static uint64_t g_bucketmask; /* bit L-1: g_bucket[L] is not empty */
static hk_medium_region_t *g_empty, *g_gone, *g_all;
static unsigned g_empty_n, g_gone_n;
static _Atomic int64_t g_last_purge_ms;
/* Committed bytes of regions taken from the large box's cache and not
 * attached yet: the large box no longer counts them, the headers not yet;
 * the debug recount adds them, so the gauge agrees at every moment the
 * locks are free. */
static int64_t g_taken;

/* Quick lists: freed blocks kept whole, a LIFO per length, for the next
 * request of that length. A program's frees and mallocs mostly reuse
 * lengths it used a moment ago: a push and a pop then replace merging and
 * splitting (about 140 instructions each way, where these take a few
 * dozen). Bounded: what they hold serves no other length (FAST 4 MiB,
 * LEAN 1 MiB), and every purge pass empties them into the runs. */
#define QUICK_PER_LEN 8
#define QUICK_BYTES_FAST ((size_t)4 << 20)
#define QUICK_BYTES_LEAN ((size_t)1 << 20)
static uintptr_t g_quick[BIN_MAX + 1][QUICK_PER_LEN];
static uint8_t g_quick_n[BIN_MAX + 1];
static size_t g_quick_bytes;

static HK_NOINLINE void lock_wait(void)
{
    for (unsigned i = 0;; i++) {
        if (!atomic_load_explicit(&g_lock, memory_order_relaxed) &&
            !atomic_exchange_explicit(&g_lock, 1, memory_order_acquire))
            return;
        if (i < 100)
            __builtin_ia32_pause();
        else
            sched_yield(); /* the holder may be descheduled */
    }
}
static inline void lock(void)
{
    if (HK_UNLIKELY(atomic_exchange_explicit(&g_lock, 1, memory_order_acquire)))
        lock_wait();
}
static inline void unlock(void) { atomic_store_explicit(&g_lock, 0, memory_order_release); }

static inline hk_medium_region_t *region_of(uintptr_t a) { return (hk_medium_region_t *)(a & ~(uintptr_t)HK_SS_MASK); }

/* ---- Page bitmaps ---------------------------------------------------------- */

static inline bool page_bit(const uint64_t *m, unsigned page) { return (m[page / 64] >> (page % 64)) & 1; }
static inline void page_set(uint64_t *m, unsigned page) { m[page / 64] |= (uint64_t)1 << (page % 64); }
static inline void page_clear(uint64_t *m, unsigned page) { m[page / 64] &= ~((uint64_t)1 << (page % 64)); }

/* Set (set) or clear the bits of pages [first, first + n) of m; returns how
 * many changed. */
static unsigned pages_mark(uint64_t *m, unsigned first, unsigned n, bool set)
{
    unsigned changed = 0;
    while (n) {
        unsigned w = first / 64, b = first % 64, k = 64 - b < n ? 64 - b : n;
        uint64_t bits = (k == 64 ? ~(uint64_t)0 : (((uint64_t)1 << k) - 1)) << b;
        changed += (unsigned)__builtin_popcountll(set ? bits & ~m[w] : bits & m[w]);
        m[w] = set ? m[w] | bits : m[w] & ~bits;
        first += k;
        n -= k;
    }
    return changed;
}

/* Set bits of pages [first, first + n) of m. */
static unsigned pages_count(const uint64_t *m, unsigned first, unsigned n)
{
    unsigned k = 0;
    while (n) {
        unsigned w = first / 64, b = first % 64, c = 64 - b < n ? 64 - b : n;
        uint64_t bits = (c == 64 ? ~(uint64_t)0 : (((uint64_t)1 << c) - 1)) << b;
        k += (unsigned)__builtin_popcountll(m[w] & bits);
        first += c;
        n -= c;
    }
    return k;
}

/* ---- Free runs and their bins (lock held) ---------------------------------- */

static inline unsigned bin_of(unsigned len) { return len <= BIN_MAX ? len : 0; }

HK_INLINE void bin_push(hk_medium_region_t *r, unsigned s, unsigned len)
{
    unsigned b = bin_of(len);
    r->prv[s] = 0;
    r->nxt[s] = r->bin[b];
    if (r->bin[b])
        r->prv[r->bin[b]] = (uint16_t)s;
    r->bin[b] = (uint16_t)s;
    if (b)
        r->binmask |= (uint64_t)1 << (b - 1);
}

HK_INLINE void bin_unlink(hk_medium_region_t *r, unsigned s, unsigned len)
{
    unsigned b = bin_of(len), n = r->nxt[s], p = r->prv[s];
    if (p) {
        r->nxt[p] = (uint16_t)n;
    } else {
        r->bin[b] = (uint16_t)n;
        if (!n && b)
            r->binmask &= ~((uint64_t)1 << (b - 1));
    }
    if (n)
        r->prv[n] = (uint16_t)p;
}

/* [s, s + len) is a free run: its first and last entries, its bin. */
HK_INLINE void run_put(hk_medium_region_t *r, unsigned s, unsigned len)
{
    r->pm[s] = (uint16_t)(PM_FREE | len);
    if (len > 1)
        r->pm[s + len - 1] = (uint16_t)(PM_TAIL | len);
    bin_push(r, s, len);
}

/* [s, s + len), a block or a busy run, becomes free, merged with the free
 * runs on either side. */
HK_INLINE void run_release(hk_medium_region_t *r, unsigned s, unsigned len)
{
    r->pm[s] = 0;
    if (len > 1)
        r->pm[s + len - 1] = 0;
    unsigned e = s + len;
    if (e < NPAGES && (r->pm[e] & PM_FREE)) {
        unsigned l2 = r->pm[e] & PM_LEN;
        bin_unlink(r, e, l2);
        r->pm[e] = 0;
        len += l2;
    }
    if (s > 1) {
        unsigned t = r->pm[s - 1], l1 = 0;
        if (t & PM_TAIL)
            l1 = r->pm[s - (t & PM_LEN)] == (PM_FREE | (t & PM_LEN)) ? t & PM_LEN : 0;
        else if (t == (PM_FREE | 1))
            l1 = 1;
        if (l1) {
            bin_unlink(r, s - l1, l1);
            r->pm[s - 1] = 0;
            s -= l1;
            len += l1;
        }
    }
    run_put(r, s, len);
}

/* The longest free run of r, as a bucket: its length up to BIN_MAX, 0 for
 * longer; -1 if r has none. */
static inline int region_longest(const hk_medium_region_t *r)
{
    if (r->bin[0])
        return 0;
    return r->binmask ? 64 - __builtin_clzll(r->binmask) : -1;
}

/* Cut n pages from the shortest free run of r that holds them (growing:
 * the longest, so that the block has free pages behind it): its first
 * page, or 0 if none does. */
HK_INLINE unsigned run_take(hk_medium_region_t *r, unsigned n, bool growing)
{
    uint64_t m = r->binmask >> (n - 1);
    unsigned s, len;
    if (HK_UNLIKELY(growing) && (r->bin[0] || m)) {
        s = r->bin[0] ? r->bin[0] : r->bin[64 - __builtin_clzll(r->binmask)];
        len = r->pm[s] & PM_LEN;
    } else if (m) {
        len = n + (unsigned)__builtin_ctzll(m);
        s = r->bin[len];
    } else if (r->bin[0]) {
        s = r->bin[0];
        len = r->pm[s] & PM_LEN;
    } else {
        return 0;
    }
    bin_unlink(r, s, len);
    if (len > n)
        run_put(r, s + n, len - n); /* rewrites the old last entry */
    else if (len > 1)
        r->pm[s + len - 1] = 0;
    r->pm[s] = (uint16_t)(PM_LIVE | n);
    return s;
}

/* ---- Lists (lock held) ------------------------------------------------------ */

static hk_medium_region_t **list_head(unsigned which, unsigned bucket)
{
    return which == ON_BUCKET ? &g_bucket[bucket] : which == ON_EMPTY ? &g_empty : &g_gone;
}

static void list_remove(hk_medium_region_t *r)
{
    if (r->list == ON_NONE)
        return;
    hk_medium_region_t **head = list_head(r->list, r->bucket);
    if (r->prev)
        r->prev->next = r->next;
    else
        *head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    if (r->list == ON_BUCKET && !*head && r->bucket)
        g_bucketmask &= ~((uint64_t)1 << (r->bucket - 1));
    g_empty_n -= r->list == ON_EMPTY;
    g_gone_n -= r->list == ON_GONE;
    r->next = r->prev = NULL;
    r->list = ON_NONE;
}

static void list_push(hk_medium_region_t *r, unsigned which, unsigned bucket)
{
    hk_medium_region_t **head = list_head(which, bucket);
    r->list = (uint8_t)which;
    r->bucket = (uint8_t)bucket;
    r->prev = NULL;
    r->next = *head;
    if (r->next)
        r->next->prev = r;
    *head = r;
    if (which == ON_BUCKET && bucket)
        g_bucketmask |= (uint64_t)1 << (bucket - 1);
    g_empty_n += which == ON_EMPTY;
    g_gone_n += which == ON_GONE;
}

/* Put r on the list its state says: blocks out, on the bucket of its
 * longest free run (none if it has none); no block out, on the empty
 * list, or the gone one if every page went back. */
HK_INLINE void region_relist(hk_medium_region_t *r)
{
    unsigned want, bucket = 0;
    if (r->nlive || r->nbusy) {
        int l = region_longest(r);
        want = l < 0 ? ON_NONE : ON_BUCKET;
        bucket = l < 0 ? 0 : (unsigned)l;
    } else {
        want = r->gone_n == r->pages ? ON_GONE : ON_EMPTY;
    }
    if (HK_LIKELY(want == r->list && bucket == r->bucket))
        return;
    list_remove(r);
    if (want != ON_NONE)
        list_push(r, want, bucket);
}

/* The region to cut n pages from: the one whose longest free run is the
 * shortest that holds n (long runs stay whole for long blocks), else an
 * empty one (committed first); growing: one with a run longer than a
 * block can be first. NULL: map a new one. */
HK_INLINE hk_medium_region_t *region_fit(unsigned n, bool growing)
{
    if (HK_UNLIKELY(growing) && g_bucket[0])
        return g_bucket[0];
    uint64_t m = g_bucketmask >> (n - 1);
    if (HK_LIKELY(m))
        return g_bucket[n + (unsigned)__builtin_ctzll(m)];
    if (g_bucket[0])
        return g_bucket[0];
    return g_empty ? g_empty : g_gone;
}

static void all_push(hk_medium_region_t *r)
{
    r->all_prev = NULL;
    r->all_next = g_all;
    if (g_all)
        g_all->all_prev = r;
    g_all = r;
}

static void all_remove(hk_medium_region_t *r)
{
    if (r->all_prev)
        r->all_prev->all_next = r->all_next;
    else
        g_all = r->all_next;
    if (r->all_next)
        r->all_next->all_prev = r->all_prev;
}

static inline int64_t region_committed(const hk_medium_region_t *r)
{
    return (int64_t)HK_SS_SIZE - (int64_t)r->gone_n * (int64_t)HK_PAGE_SIZE;
}

/* A region joins (attach) or leaves (detach) the set of regions, its
 * committed bytes with it, under the lock: the gauge and the headers agree
 * whenever the lock is free (the debug recount holds it). */
static void region_attach(hk_medium_region_t *r)
{
    if (r->taken) {
        /* Counted committed already (by the large box, then in g_taken). */
        r->taken = 0;
        g_taken -= (int64_t)HK_SS_SIZE;
        HK_GAUGE_ADD(bytes_committed, -(int64_t)HK_SS_SIZE);
    }
    all_push(r);
    region_relist(r);
    HK_GAUGE_ADD(bytes_committed, region_committed(r));
}

static void region_detach(hk_medium_region_t *r)
{
    list_remove(r);
    all_remove(r);
    HK_GAUGE_ADD(bytes_committed, -region_committed(r));
}

/* ---- Regions from the OS and back ------------------------------------------- */

/* A new region's header (no lock held; r is nobody's yet): every page but
 * the header one free run. The pages where a block freed lately started
 * (the large box's ring: large blocks, medium blocks of a region that was
 * here before) are marked freed, so a second free of one is named a double
 * free until a block starts there again. They are not kept from use:
 * pinned, the starts of a region that goes and comes back at the same
 * address (the kernel's choice, common) would cut its runs into pieces
 * too short for the longer blocks (once hundreds of them). A new block
 * may start there, the case README's "Misuse" says no allocator can tell
 * apart. dirty: its pages were used (a range of the large box's cache).
 * Then registered: until then a free into the range finds no block. */
static void region_init(hk_medium_region_t *r, bool dirty)
{
    memset(r, 0, sizeof *r);
    r->magic = HK_MEDIUM_MAGIC;
    uint16_t pages[HK_SLABS_PER_SS];
    hk_large_recent_pages((uintptr_t)r, HK_SS_SIZE, pages);
    for (unsigned p = 1; p < NPAGES; p++)
        if ((pages[p / 16] >> (p % 16)) & 1)
            page_set(r->freed_pages, p);
    run_put(r, 1, NPAGES - 1);
    r->pages = NPAGES - 1;
    r->frontier = dirty ? NPAGES : 1;
    hk_os_registry_set((uintptr_t)r, HK_SS_SIZE, HK_REG_MEDIUM);
}

/* A fresh region, detached: from the large box's cache (resident pages
 * that were freed large blocks), else from the OS. NULL if refused. */
static hk_medium_region_t *region_new(void)
{
    /* The large box's lock is taken inside this one's (never the reverse;
     * fork takes them in that order): the range moves from its count to
     * g_taken while neither can be recounted. */
    lock();
    hk_medium_region_t *r = hk_large_cache_take_chunk(HK_SS_SIZE);
    if (r)
        g_taken += (int64_t)HK_SS_SIZE;
    unlock();
    if (r) {
        region_init(r, true);
        r->taken = 1; /* region_attach moves its bytes from g_taken */
        ss_os_advise_huge(r, HK_SS_SIZE);
    } else {
        r = hk_os_map_aligned(HK_SS_SIZE, HK_SS_SIZE);
        if (!r)
            return NULL;
        if ((uintptr_t)r >= ((uintptr_t)1 << 47) - HK_SS_SIZE) { /* beyond the registry */
            hk_os_unmap(r, HK_SS_SIZE);
            return NULL;
        }
        /* Advised before its first touch (thp:1): one huge page. The guard
         * wants it registered; its zero page map refuses every free. */
        hk_os_registry_set((uintptr_t)r, HK_SS_SIZE, HK_REG_MEDIUM);
        ss_os_advise_huge(r, HK_SS_SIZE);
        region_init(r, false);
    }
    HK_GAUGE_ADD(medium_regions, 1);
    return r;
}

/* Unmap an empty region, detached (no lock held). Its freed block starts
 * join the large box's ring first, so that a second free of one is named
 * a double free whatever the range becomes. false: munmap failed. */
static bool region_unmap(hk_medium_region_t *r)
{
    uintptr_t starts[NPAGES];
    unsigned n = 0;
    for (unsigned w = 0; w < WORDS; w++)
        for (uint64_t m = r->freed_pages[w]; m; m &= m - 1)
            starts[n++] = (uintptr_t)r + ((uintptr_t)(w * 64 + (unsigned)__builtin_ctzll(m)) << 12);
    hk_large_remember_freed(starts, n);
    r->magic = 0;
    hk_os_registry_set((uintptr_t)r, HK_SS_SIZE, HK_REG_NONE);
    if (hk_os_unmap(r, HK_SS_SIZE) != 0) {
        r->magic = HK_MEDIUM_MAGIC;
        hk_os_registry_set((uintptr_t)r, HK_SS_SIZE, HK_REG_MEDIUM);
        return false;
    }
    HK_GAUGE_ADD(medium_regions, -1);
    return true;
}

/* Do the pages given back with LEAN's strategy read zero afterwards? */
static bool give_back_zeroes(void)
{
    return !ss_purge_by_decommit() || ss_mem_lean_decommit_mode() == HK_DECOMMIT_DONTNEED ||
           hk_os_madv_free_refused();
}

/* Pages [s, s + n) of r went back (lock held). (Zeroed ones, DONTNEED's,
 * are not told apart from the others: a calloc clears them again.) */
static void pages_gone(hk_medium_region_t *r, unsigned s, unsigned n)
{
    unsigned k = pages_mark(r->gone_pages, s, n, true);
    r->gone_n += k;
    HK_GAUGE_ADD(bytes_committed, -(int64_t)k * (int64_t)HK_PAGE_SIZE);
}

/* Give back an empty region, detached (no lock held): LEAN decommits it and
 * keeps its range and header for reuse (the double-free record stays), up
 * to the policy's count of such ranges; otherwise, and where that fails
 * (thp:1: a huge page goes back whole), it is unmapped. Returns the
 * committed bytes given back. */
static size_t region_release(hk_medium_region_t *r, bool keep_range)
{
    int64_t before = region_committed(r);
    if (keep_range && ss_purge_by_decommit() && g_gone_n < SS_RELEASE_DECOMMITTED_MAX &&
        ss_maybe_decommit_superslab((uint8_t *)r + HK_PAGE_SIZE, HK_SS_SIZE - HK_PAGE_SIZE) == 0) {
        bool zeroed = give_back_zeroes();
        lock();
        r->gone_n = 0;
        memset(r->gone_pages, 0, sizeof r->gone_pages);
        pages_mark(r->gone_pages, 1, NPAGES - 1, true);
        r->gone_n = r->pages;
        r->frontier = zeroed ? 1 : NPAGES;
        region_attach(r);
        unlock();
        HK_STAT_INC(lean_retire);
        return (size_t)(before - region_committed(r));
    }
    if (region_unmap(r))
        return (size_t)before;
    lock();
    region_attach(r);
    unlock();
    return 0;
}

/* ---- malloc, free, resize ---------------------------------------------------- */

/* Pages [s, s + n) of r go out (lock held): true if any of them may not
 * read zero. *back: how many were given back (committed again). */
HK_INLINE bool pages_out(hk_medium_region_t *r, unsigned s, unsigned n, unsigned *back)
{
    bool dirty = s < r->frontier;
    if (s + n > r->frontier)
        r->frontier = s + n;
    *back = 0;
    if (HK_UNLIKELY(r->gone_n)) {
        *back = pages_mark(r->gone_pages, s, n, false);
        r->gone_n -= *back;
        if (*back)
            HK_GAUGE_ADD(bytes_committed, (int64_t)*back * (int64_t)HK_PAGE_SIZE);
    }
    return dirty;
}

static inline size_t quick_limit(void) { return ss_release_lean() ? QUICK_BYTES_LEAN : QUICK_BYTES_FAST; }

/* Empty the quick lists into the runs (lock held); the regions they leave
 * empty stay on the empty list (the purge pass decides about them). */
static void quick_flush(void)
{
    for (unsigned n = 1; n <= BIN_MAX; n++) {
        while (g_quick_n[n]) {
            uintptr_t q = g_quick[n][--g_quick_n[n]];
            hk_medium_region_t *r = region_of(q);
            r->nquick--;
            r->nlive--;
            run_release(r, (unsigned)((q & HK_SS_MASK) >> 12), n);
            region_relist(r);
        }
    }
    g_quick_bytes = 0;
}

static void *medium_alloc(size_t size, bool zero, bool growing)
{
    unsigned n = (unsigned)((size + HK_PAGE_SIZE - 1) / HK_PAGE_SIZE), s;
    HK_ASSERT(n > HK_SMALL_MAX / HK_PAGE_SIZE && n <= BIN_MAX);
    lock();
    if (g_quick_n[n] && !growing) {
        uintptr_t q = g_quick[n][--g_quick_n[n]];
        g_quick_bytes -= (size_t)n << 12;
        hk_medium_region_t *qr = region_of(q);
        s = (unsigned)((q & HK_SS_MASK) >> 12);
        qr->pm[s] = (uint16_t)(PM_LIVE | n);
        qr->nquick--;
        qr->live_pages += n;
        qr->active = 1;
        page_clear(qr->freed_pages, s);
        unlock();
        if (zero)
            memset((void *)q, 0, size);
        return (void *)q;
    }
    hk_medium_region_t *r = region_fit(n, growing);
    for (int fresh = 0; !(s = r ? run_take(r, n, growing) : 0);) {
        if (r) {
            /* The lists promise a run of n here (never false in practice):
             * off the lists, so the fit does not meet it again; its next
             * free puts it back, the purge delay or malloc_trim gives it
             * back if empty. */
            list_remove(r);
            r = region_fit(n, growing);
            continue;
        }
        if (g_quick_bytes) {
            /* Blocks kept whole may leave a run long enough once merged. */
            quick_flush();
            r = region_fit(n, growing);
            continue;
        }
        unlock();
        if (fresh++ == 4 || !(r = region_new()))
            return NULL;
        lock();
        region_attach(r);
    }
    r->nlive++;
    r->live_pages += n;
    r->active = 1;
    page_clear(r->freed_pages, s); /* a block starts here again */
    unsigned back;
    bool dirty = pages_out(r, s, n, &back);
    region_relist(r);
    unlock();
    if (config_lean && back)
        ss_release_policy_note_reuse((size_t)back * HK_PAGE_SIZE); /* a bounce */
    void *p = (uint8_t *)r + ((size_t)s << 12);
    if (zero && dirty)
        memset(p, 0, size);
    return p;
}

void *hk_medium_alloc(size_t size, bool zero) { return medium_alloc(size, zero, false); }

void *hk_medium_alloc_growing(size_t size) { return medium_alloc(size, false, true); }

/* The first page of the live block at p, or 0 (lock held). */
static inline unsigned block_page(const hk_medium_region_t *r, uintptr_t a)
{
    uint32_t off = (uint32_t)(a & HK_SS_MASK);
    unsigned s = off / (unsigned)HK_PAGE_SIZE;
    if ((off & (HK_PAGE_SIZE - 1)) || !s || (r->pm[s] & (PM_LIVE | PM_BUSY)) != PM_LIVE)
        return 0;
    return s;
}

/* What p is, when it is no live block (lock held): a block start freed and
 * not handed out since, or one being freed now, is a double free; the rest
 * is not ours. */
static int refused(const hk_medium_region_t *r, uintptr_t a)
{
    uint32_t off = (uint32_t)(a & HK_SS_MASK);
    unsigned s = off / (unsigned)HK_PAGE_SIZE;
    if ((off & (HK_PAGE_SIZE - 1)) || !s)
        return HK_MEDIUM_NOT_OURS;
    bool twice = page_bit(r->freed_pages, s) || (r->pm[s] & (PM_LIVE | PM_BUSY)) == (PM_LIVE | PM_BUSY);
    return twice ? HK_MEDIUM_ALREADY_FREE : HK_MEDIUM_NOT_OURS;
}

/* An empty region (lock held, unlocked on return): kept, or (LEAN, over
 * budget) given back whole. */
static void region_emptied(hk_medium_region_t *r)
{
    if (!config_lean || !ss_release_gives_back() || ss_should_keep_region((int64_t)g_empty_n)) {
        region_relist(r);
        unlock();
        return;
    }
    region_detach(r);
    unlock();
    region_release(r, true);
}

int hk_medium_free(void *p)
{
    uintptr_t a = (uintptr_t)p;
    hk_medium_region_t *r = region_of(a);
    lock();
    unsigned s = block_page(r, a);
    if (HK_UNLIKELY(!s)) {
        int why = refused(r, a);
        unlock();
        return why;
    }
    unsigned n = r->pm[s] & PM_LEN;
    r->active = 1;
    page_set(r->freed_pages, s);
    r->live_pages -= n;
    bool give_back = config_lean && HK_UNLIKELY(ss_release_gives_back()) && ss_should_decommit_slab();
    if (!give_back && g_quick_n[n] < QUICK_PER_LEN && g_quick_bytes + ((size_t)n << 12) <= quick_limit()) {
        g_quick[n][g_quick_n[n]++] = a;
        g_quick_bytes += (size_t)n << 12;
        r->pm[s] = (uint16_t)(PM_QUICK | n);
        r->nquick++;
        unlock();
        return HK_MEDIUM_FREED;
    }
    if (give_back) {
        /* LEAN over budget: the block's pages go back before it is free
         * (busy meanwhile: nobody takes it, a second free is refused). */
        r->pm[s] |= PM_BUSY;
        r->nbusy++;
        unlock();
        bool back = ss_release_purge_pages((uint8_t *)r + ((size_t)s << 12), (size_t)n << 12) == 0;
        lock();
        r->pm[s] &= (uint16_t)~PM_BUSY;
        r->nbusy--;
        if (back)
            pages_gone(r, s, n);
    }
    r->nlive--;
    run_release(r, s, n);
    if (HK_UNLIKELY(r->nlive == 0) && !r->nbusy) {
        region_emptied(r);
        return HK_MEDIUM_FREED;
    }
    region_relist(r);
    unlock();
    return HK_MEDIUM_FREED;
}

bool hk_medium_resize(void *p, size_t new_size)
{
    unsigned want = (unsigned)((new_size + HK_PAGE_SIZE - 1) / HK_PAGE_SIZE);
    if (want > BIN_MAX || want <= HK_SMALL_MAX / HK_PAGE_SIZE)
        return false;
    uintptr_t a = (uintptr_t)p;
    hk_medium_region_t *r = region_of(a);
    lock();
    unsigned s = block_page(r, a), back = 0;
    if (!s) {
        unlock();
        return false;
    }
    unsigned n = r->pm[s] & PM_LEN, e = s + n;
    bool ok = true;
    if (want < n) {
        /* The tail pages join the free run behind. */
        r->pm[s] = (uint16_t)(PM_LIVE | want);
        run_release(r, s + want, n - want);
        r->live_pages -= n - want;
    } else if (want > n) {
        unsigned l = e < NPAGES && (r->pm[e] & PM_FREE) ? r->pm[e] & PM_LEN : 0;
        ok = l >= want - n;
        if (ok) {
            bin_unlink(r, e, l);
            r->pm[e] = 0;
            if (l > want - n)
                run_put(r, s + want, l - (want - n));
            else if (l > 1)
                r->pm[e + l - 1] = 0;
            r->pm[s] = (uint16_t)(PM_LIVE | want);
            r->live_pages += want - n;
            pages_out(r, e, want - n, &back);
        }
    }
    if (ok) {
        r->active = 1;
        region_relist(r);
    }
    unlock();
    if (config_lean && back)
        ss_release_policy_note_reuse((size_t)back * HK_PAGE_SIZE);
    return ok;
}

size_t hk_medium_usable(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    hk_medium_region_t *r = region_of(a);
    lock();
    unsigned s = block_page(r, a);
    size_t bytes = s ? (size_t)(r->pm[s] & PM_LEN) << 12 : 0;
    unlock();
    return bytes;
}

bool hk_medium_was_freed(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    lock();
    bool twice = refused(region_of(a), a) == HK_MEDIUM_ALREADY_FREE;
    unlock();
    return twice;
}

/* ---- Giving back: the purge delay, malloc_trim ------------------------------- */

#define PURGE_BATCH 64

/* One pass (all: malloc_trim, everything free now). Regions unused for the
 * delay: an empty one goes (FAST: unmapped; LEAN: decommitted, range and
 * header kept; malloc_trim unmaps those too), the free runs of one in use
 * give their pages back. The work is chosen under the lock and done
 * without it (the runs busy meanwhile), in batches. */
static size_t purge(int64_t now_ms, bool all)
{
    size_t total = 0;
    lock();
    quick_flush();
    unlock();
    for (;;) {
        hk_medium_region_t *go[PURGE_BATCH], *run_r[PURGE_BATCH];
        uint16_t run_s[PURGE_BATCH], run_n[PURGE_BATCH];
        unsigned ngo = 0, nrun = 0;
        lock();
        for (hk_medium_region_t *r = g_all; r && ngo < PURGE_BATCH && nrun < PURGE_BATCH; r = r->all_next) {
            if (!all) {
                if (r->active || !r->idle_since_ms) {
                    r->active = 0;
                    r->idle_since_ms = now_ms;
                    continue;
                }
                if (!ss_purge_due(r->idle_since_ms, now_ms))
                    continue;
            }
            if (r->nbusy || (r->list == ON_GONE && !all))
                continue; /* in the works; or given back already, its header kept for reuse */
            if (r->nlive == 0) {
                go[ngo++] = r; /* detached below, once the walk is done with its links */
                continue;
            }
            /* Free runs with pages not given back yet. */
            for (unsigned b = 0; b <= BIN_MAX && nrun < PURGE_BATCH; b++) {
                for (unsigned s = r->bin[b], nx; s && nrun < PURGE_BATCH; s = nx) {
                    nx = r->nxt[s];
                    unsigned len = r->pm[s] & PM_LEN;
                    if (pages_count(r->gone_pages, s, len) == len)
                        continue;
                    bin_unlink(r, s, len);
                    r->pm[s] = (uint16_t)(PM_BUSY | len);
                    r->nbusy++;
                    run_r[nrun] = r;
                    run_s[nrun] = (uint16_t)s;
                    run_n[nrun++] = (uint16_t)len;
                }
            }
            region_relist(r);
        }
        for (unsigned k = 0; k < ngo; k++)
            region_detach(go[k]);
        unlock();
        if (!ngo && !nrun)
            return total;
        /* What the OS refuses (thp:1 keeps huge pages whole, a failed
         * munmap) is back on the lists as it was: the next walk would
         * choose it again, so the pass ends with this batch. */
        bool stuck = false;
        for (unsigned k = 0; k < ngo; k++) {
            size_t got = region_release(go[k], !all);
            stuck |= got == 0;
            total += got;
        }
        for (unsigned k = 0; k < nrun; k++) {
            hk_medium_region_t *r = run_r[k];
            unsigned s = run_s[k], n = run_n[k];
            bool back = ss_release_purge_pages((uint8_t *)r + ((size_t)s << 12), (size_t)n << 12) == 0;
            stuck |= !back;
            lock();
            if (back) {
                unsigned before = r->gone_n;
                pages_gone(r, s, n);
                total += (size_t)(r->gone_n - before) * HK_PAGE_SIZE;
            }
            r->nbusy--;
            run_release(r, s, n);
            if (!r->nlive && !r->nbusy)
                r->active = 0; /* empty now: the next pass takes it whole */
            region_relist(r);
            unlock();
        }
        if (stuck)
            return total;
    }
}

size_t hk_medium_purge(int64_t now_ms)
{
    if (!ss_purge_pass_claim(&g_last_purge_ms, now_ms))
        return 0;
    return purge(now_ms, false);
}

size_t hk_medium_trim(void) { return purge(0, true); }

size_t hk_release_cached(void) { return hk_medium_trim() + hk_large_trim() + superslab_trim(); }

/* ---- Statistics, recount, fork -------------------------------------------------- */

void hk_medium_stats(hk_medium_stats_t *st)
{
    memset(st, 0, sizeof *st);
    lock();
    for (hk_medium_region_t *r = g_all; r; r = r->all_next) {
        st->regions++;
        st->live += r->nlive - r->nquick;
        st->live_bytes += (uint64_t)r->live_pages * HK_PAGE_SIZE;
        /* Pages handed out and not given back, less the live ones. */
        unsigned touched = r->frontier - 1 - pages_count(r->gone_pages, 1, r->frontier - 1);
        st->touched_bytes += (uint64_t)touched * HK_PAGE_SIZE;
        st->free_bytes += (uint64_t)(touched > r->live_pages ? touched - r->live_pages : 0) * HK_PAGE_SIZE;
    }
    unlock();
}

int64_t hk_medium_count_committed(void)
{
    int64_t committed = g_taken;
    for (hk_medium_region_t *r = g_all; r; r = r->all_next)
        committed += region_committed(r);
    return committed;
}

void hk_medium_fork_prepare(void) { lock(); }
void hk_medium_fork_parent(void) { unlock(); }
void hk_medium_fork_child(void) { unlock(); } /* held since prepare */
