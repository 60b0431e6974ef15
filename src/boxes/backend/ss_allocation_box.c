/* ss_allocation_box: acquire and free superslabs; the empty cache and the
 * abandoned list. See the header. */
#include "hakmem_internal.h"
#include "backend/ss_allocation_box.h"
#include "base/diag_box.h"
#include "os/madvise_guard_box.h"
#include "os/ss_os_acquire_box.h"
#include "os/ss_registry_box.h"
#include "backend/ss_release_policy_box.h"
#include "base/superslab_stats.h"

#include <pthread.h>
#include <string.h>

_Static_assert(sizeof(hk_slab_t) == 128, "slab metadata is two cache lines");
_Static_assert(sizeof(hk_superslab_t) == HK_PAGE_SIZE, "the metadata is one page of slab 0");
_Static_assert(offsetof(hk_superslab_t, slab_idle_ms) + sizeof(int64_t) <= sizeof(hk_slab_t),
               "the header fits in slabs[0]");
_Static_assert(offsetof(hk_superslab_t, zero_div_magic) == offsetof(hk_slab_t, div_magic) &&
                   offsetof(hk_superslab_t, zero_carved_limit) == offsetof(hk_slab_t, carved_limit),
               "slabs[0] refuses every free: its div_magic and carved_limit read 0");

/* Empty superslabs kept committed for reuse. A plain mutex: this is the slow
 * path, reached once per 2 MiB, and never with a syscall inside. */
static pthread_mutex_t g_cache_lock = PTHREAD_MUTEX_INITIALIZER;
static hk_superslab_t *g_cache;
static pthread_mutex_t g_abandon_lock = PTHREAD_MUTEX_INITIALIZER;
static hk_superslab_t *g_abandoned;
/* LEAN: superslabs whose pages were given back; their address range (and
 * header) is kept for reuse, up to SS_RELEASE_DECOMMITTED_MAX (the
 * policy's); beyond, unmapped. */
static hk_superslab_t *g_decommitted;
static unsigned g_decommitted_n;

static void ss_init_header(hk_superslab_t *ss)
{
    ss->magic = HK_SS_MAGIC;
    atomic_store_explicit(&ss->heap, NULL, memory_order_relaxed);
    ss->used_slabs = 0;
    ss->free_mask = HK_SS_ALL_SLABS_FREE;
    ss->state = HK_SS_CACHED;
    ss->decommitted_slabs = 0;
    ss->pending_decommit = 0;
    ss->touched_mask = 0;
    ss->next = ss->prev = NULL;
    ss->zero_div_magic = 0;
    ss->zero_carved_limit = 0;
    for (int i = 1; i < HK_SLABS_PER_SS; i++) { /* slabs[0] is the header */
        hk_slab_t *s = &ss->slabs[i];
        memset(s, 0, sizeof *s);
        s->index = (uint8_t)i;
    }
}

/* Handed down at init (superslab_set_range_source). */
static _Atomic(hk_range_source_t) g_range_source;
static _Atomic(hk_range_poison_t) g_range_poison;

void superslab_set_range_source(hk_range_source_t take, hk_range_poison_t poison)
{
    atomic_store_explicit(&g_range_source, take, memory_order_relaxed);
    atomic_store_explicit(&g_range_poison, poison, memory_order_relaxed);
}

/* A new superslab's range may be where large blocks were freed lately,
 * whether it came from the large-block cache or from the OS (which maps
 * freed ranges again): no block starts where one of them started. */
static void ss_poison_recent_starts(hk_superslab_t *ss)
{
    hk_range_poison_t poison = atomic_load_explicit(&g_range_poison, memory_order_relaxed);
    if (!poison)
        return;
    uint16_t pages[HK_SLABS_PER_SS];
    poison((uintptr_t)ss, HK_SS_SIZE, pages);
    for (int i = 1; i < HK_SLABS_PER_SS; i++)
        ss->slabs[i].poison_pages = pages[i];
}

static hk_superslab_t *ss_map_new(void)
{
    hk_superslab_t *ss = hk_os_map_aligned(HK_SS_SIZE, HK_SS_SIZE);
    if (!ss)
        return NULL;
    if ((uintptr_t)ss >= ((uintptr_t)1 << 47) - HK_SS_SIZE) {
        /* Beyond the registry's 47 bits (a kernel that maps above them
         * unasked): free() could not recognise these blocks, and the
         * remote-free word keeps a count in the bits above 47. */
        hk_os_unmap(ss, HK_SS_SIZE);
        return NULL;
    }
    /* Registered first (the guard advises only ranges of our superslabs),
     * advised before the first touch: the header's write then faults in
     * one huge page for the whole superslab (thp:1), not one small page.
     * Until the header is written, every word of it reads 0 (no slab has
     * a div_magic before a heap carves it), so a free into the range is
     * refused as before. */
    hk_os_registry_set((uintptr_t)ss, HK_SS_SIZE, HK_REG_SUPERSLAB);
    ss_os_advise_huge(ss, HK_SS_SIZE);
    ss_init_header(ss);
    ss_poison_recent_starts(ss);
    HK_GAUGE_ADD(bytes_committed, (int64_t)HK_SS_SIZE);
    return ss;
}

static hk_superslab_t *cache_pop(void)
{
    bool reused_decommitted = false;
    pthread_mutex_lock(&g_cache_lock);
    hk_superslab_t *ss = g_cache;
    if (ss) {
        g_cache = ss->next;
    } else if (config_lean && (ss = g_decommitted) != NULL) {
        g_decommitted = ss->next;
        g_decommitted_n--;
        reused_decommitted = true;
    }
    pthread_mutex_unlock(&g_cache_lock);
    if (!ss)
        return NULL;
    ss->next = NULL;
    ss->cached_since_ms = 0;
    if (reused_decommitted) {
        /* Its pages come back on first touch; the header stayed resident. */
        HK_GAUGE_ADD(ss_decommitted, -1);
        HK_GAUGE_ADD(bytes_committed, (int64_t)(HK_SS_SIZE - HK_SLAB_SIZE));
        ss->magic = HK_SS_MAGIC;
        ss_release_policy_note_reuse(HK_SS_SIZE - HK_SLAB_SIZE);
    } else {
        HK_GAUGE_ADD(ss_cached, -1);
    }
    return ss;
}

static void cache_push(hk_superslab_t *ss)
{
    ss->state = HK_SS_CACHED;
    /* Unused since then: when its heap saw it empty (that heap kept it a
     * while), else now. */
    if (!ss->cached_since_ms)
        ss->cached_since_ms = ss_release_now_ms();
    pthread_mutex_lock(&g_cache_lock);
    ss->next = g_cache;
    g_cache = ss;
    pthread_mutex_unlock(&g_cache_lock);
    HK_GAUGE_ADD(ss_cached, 1);
}

/* A superslab built in a range the large-block cache held: its pages are
 * resident already (freed big buffers), so a program whose small blocks
 * grow while its big ones shrink does not fault fresh pages in for them.
 * The range was used: its header is cleared before it is set up (carving
 * writes every block's link and tag, so the rest needs nothing). */
static hk_superslab_t *ss_from_large_cache(void)
{
    hk_range_source_t take = atomic_load_explicit(&g_range_source, memory_order_relaxed);
    hk_superslab_t *ss = take ? take(HK_SS_SIZE) : NULL;
    if (!ss)
        return NULL;
    memset(ss, 0, sizeof *ss);
    ss_init_header(ss);
    ss_poison_recent_starts(ss);
    hk_os_registry_set((uintptr_t)ss, HK_SS_SIZE, HK_REG_SUPERSLAB);
    /* Its pages are small ones already; advised like every superslab, so
     * the kernel may collapse them, and so that no superslab of a thp:1
     * process is split later (the release policy treats all alike). */
    ss_os_advise_huge(ss, HK_SS_SIZE);
    return ss;
}

hk_superslab_t *superslab_acquire(void)
{
    /* Cache first (committed), then a decommitted range, then a range of
     * the large-block cache (committed), then the OS. */
    hk_superslab_t *ss = cache_pop();
    if (!ss)
        ss = ss_from_large_cache();
    if (!ss)
        ss = ss_map_new();
    if (!ss)
        return NULL;
    ss->state = HK_SS_ACTIVE;
    HK_GAUGE_ADD(ss_live, 1);
    return ss;
}

static void superslab_release(hk_superslab_t *ss);

/* Release the range of an empty superslab: unmap it. -1 if munmap failed
 * (then the caller keeps it). */
static int ss_unmap(hk_superslab_t *ss)
{
    int64_t still = (int64_t)HK_SS_SIZE - (int64_t)ss->decommitted_slabs * (int64_t)HK_SLAB_SIZE;
    ss->magic = 0;
    hk_os_registry_set((uintptr_t)ss, HK_SS_SIZE, HK_REG_NONE);
    if (hk_os_unmap(ss, HK_SS_SIZE) != 0) {
        hk_os_registry_set((uintptr_t)ss, HK_SS_SIZE, HK_REG_SUPERSLAB);
        ss->magic = HK_SS_MAGIC;
        return -1;
    }
    HK_GAUGE_ADD(bytes_committed, -still);
    return 0;
}

void superslab_free(hk_superslab_t *ss)
{
    HK_ASSERT(ss->used_slabs == 0 && ss->free_mask == HK_SS_ALL_SLABS_FREE);
    HK_GAUGE_ADD(ss_live, -1);
    ss->pending_decommit = 0; /* the whole superslab is decided on now */
    atomic_store_explicit(&ss->heap, NULL, memory_order_release);
    /* FAST (a constant true here) keeps every superslab for reuse; LEAN keeps
     * it while the release policy's budget allows. */
    if (!config_lean || ss_should_keep_superslab(ss, -1)) {
        cache_push(ss);
        return;
    }
    superslab_release(ss);
    /* The allowance may have shrunk (the bounce bonus decays): trim the
     * cache back to it. */
    int64_t allow = ss_release_cache_allowance();
    while (HK_GAUGE_GET(ss_cached) > allow) {
        hk_superslab_t *extra = NULL;
        pthread_mutex_lock(&g_cache_lock);
        if ((extra = g_cache) != NULL)
            g_cache = extra->next;
        pthread_mutex_unlock(&g_cache_lock);
        if (!extra)
            break;
        HK_GAUGE_ADD(ss_cached, -1);
        extra->next = NULL;
        superslab_release(extra);
    }
}

/* LEAN: give an empty superslab back to the OS: decommit its slabs (keep
 * the header and the range for reuse), or unmap it. */
static void superslab_release(hk_superslab_t *ss)
{
    /* No slab is in use, no heap list or remote list points into it (every
     * block came back before used_slabs reached 0). Slabs already given
     * back one by one are committed no more: */
    int64_t still = (int64_t)(HK_SS_SIZE - HK_SLAB_SIZE) - (int64_t)ss->decommitted_slabs * (int64_t)HK_SLAB_SIZE;
    if (ss_maybe_decommit_superslab((uint8_t *)ss + HK_SLAB_SIZE, HK_SS_SIZE - HK_SLAB_SIZE) == 0) {
        ss->magic = 0; /* cleared while decommitted, as on unmap */
        ss->state = HK_SS_DECOMMITTED;
        for (int i = 1; i < HK_SLABS_PER_SS; i++)
            ss->slabs[i].decommitted = 0;
        ss->decommitted_slabs = 0;
        ss->touched_mask = 0;
        HK_STAT_INC(lean_retire);
        HK_GAUGE_ADD(bytes_committed, -still);
        pthread_mutex_lock(&g_cache_lock);
        bool room = g_decommitted_n < SS_RELEASE_DECOMMITTED_MAX;
        if (room) {
            ss->next = g_decommitted;
            g_decommitted = ss;
            g_decommitted_n++;
        }
        pthread_mutex_unlock(&g_cache_lock);
        if (room) {
            HK_GAUGE_ADD(ss_decommitted, 1);
            return;
        }
        /* Beyond the bound: unmap. Only the header slab is still counted;
         * ss_unmap subtracts the whole range, so add the rest back first. */
        HK_GAUGE_ADD(bytes_committed, (int64_t)(HK_SS_SIZE - HK_SLAB_SIZE));
    }
    /* Decommit failed or refused (or the bound is reached): munmap. */
    if (ss_unmap(ss) != 0)
        cache_push(ss); /* munmap failed too (map-count limit): keep it */
}

size_t superslab_trim(void)
{
    /* The unmaps happen under the cache lock: the lock is not on any fast
     * path, and a superslab is then never in between (off every list, yet
     * counted), which the debug recount of the gauges relies on. */
    pthread_mutex_lock(&g_cache_lock);
    hk_superslab_t *cached = g_cache, *dec = g_decommitted;
    g_cache = g_decommitted = NULL;
    g_decommitted_n = 0;
    size_t released = 0;
    while (cached) {
        hk_superslab_t *next = cached->next;
        size_t resident = HK_SS_SIZE - (size_t)cached->decommitted_slabs * HK_SLAB_SIZE;
        if (ss_unmap(cached) == 0) {
            HK_GAUGE_ADD(ss_cached, -1);
            released += resident;
        } else {
            cached->next = g_cache; /* munmap refused (map-count limit): keep it */
            g_cache = cached;
        }
        cached = next;
    }
    while (dec) {
        hk_superslab_t *next = dec->next;
        /* Its slabs were already given back: only the header remains, and
         * ss_unmap subtracts the whole range from the committed bytes. */
        HK_GAUGE_ADD(bytes_committed, (int64_t)(HK_SS_SIZE - HK_SLAB_SIZE));
        if (ss_unmap(dec) == 0) {
            HK_GAUGE_ADD(ss_decommitted, -1);
        } else {
            HK_GAUGE_ADD(bytes_committed, -(int64_t)(HK_SS_SIZE - HK_SLAB_SIZE));
            dec->next = g_decommitted;
            g_decommitted = dec;
            g_decommitted_n++;
        }
        dec = next;
    }
    pthread_mutex_unlock(&g_cache_lock);
    return released;
}

static _Atomic int64_t g_last_purge_ms;

size_t superslab_purge(int64_t now_ms)
{
    if (!ss_purge_pass_claim(&g_last_purge_ms, now_ms))
        return 0;
    /* Take the due ones off the cache, gauge and all, under its lock (the
     * debug recount then never finds one in between), release them after. */
    hk_superslab_t *due = NULL;
    int64_t n = 0;
    pthread_mutex_lock(&g_cache_lock);
    for (hk_superslab_t **pp = &g_cache; *pp;) {
        hk_superslab_t *ss = *pp;
        if (ss_purge_due(ss->cached_since_ms, now_ms)) {
            *pp = ss->next;
            ss->next = due;
            due = ss;
            n++;
        } else {
            pp = &ss->next;
        }
    }
    if (n)
        HK_GAUGE_ADD(ss_cached, -n);
    pthread_mutex_unlock(&g_cache_lock);
    size_t released = 0;
    bool decommit = ss_purge_by_decommit();
    while (due) {
        hk_superslab_t *ss = due;
        due = ss->next;
        ss->next = NULL;
        released += HK_SS_SIZE - (size_t)ss->decommitted_slabs * HK_SLAB_SIZE;
        if (config_lean && decommit)
            superslab_release(ss);
        else if (ss_unmap(ss) != 0)
            cache_push(ss); /* munmap refused (map-count limit): keep it */
    }
    return released;
}

int superslab_prewarm_one(void)
{
    hk_superslab_t *ss = ss_map_new();
    if (!ss)
        return -1;
    /* Header page, then the slabs: slab 0 beyond its first page is never
     * touched, so it is not made resident. */
    hk_os_populate(ss, HK_PAGE_SIZE);
    hk_os_populate((uint8_t *)ss + HK_SLAB_SIZE, HK_SS_SIZE - HK_SLAB_SIZE);
    ss->touched_mask = HK_SS_ALL_SLABS_FREE;
    cache_push(ss);
    return 0;
}

/* The abandoned list is doubly linked (next/prev are free while a
 * superslab is abandoned), so a freeing thread can take one particular
 * superslab off it. */
static void abandoned_unlink(hk_superslab_t *ss)
{
    if (ss->prev)
        ss->prev->next = ss->next;
    else
        __atomic_store_n(&g_abandoned, ss->next, __ATOMIC_RELAXED); /* peeked without the lock */
    if (ss->next)
        ss->next->prev = ss->prev;
    ss->next = ss->prev = NULL;
}

void superslab_abandon(hk_superslab_t *ss)
{
    pthread_mutex_lock(&g_abandon_lock);
    ss->state = HK_SS_ABANDONED;
    ss->prev = NULL;
    ss->next = g_abandoned;
    if (g_abandoned)
        g_abandoned->prev = ss;
    __atomic_store_n(&g_abandoned, ss, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&g_abandon_lock);
}

hk_superslab_t *superslab_adopt(void)
{
    if (!__atomic_load_n(&g_abandoned, __ATOMIC_RELAXED))
        return NULL;
    pthread_mutex_lock(&g_abandon_lock);
    hk_superslab_t *ss = g_abandoned;
    if (ss) {
        abandoned_unlink(ss);
        ss->state = HK_SS_ACTIVE;
    }
    pthread_mutex_unlock(&g_abandon_lock);
    return ss;
}

bool superslab_adopt_this(hk_superslab_t *ss)
{
    pthread_mutex_lock(&g_abandon_lock);
    bool ok = ss->state == HK_SS_ABANDONED;
    if (ok) {
        abandoned_unlink(ss);
        ss->state = HK_SS_ACTIVE;
    }
    pthread_mutex_unlock(&g_abandon_lock);
    return ok;
}

void superslab_reclaim_abandoned(bool (*collect)(hk_superslab_t *ss), unsigned max, bool wait)
{
    if (!__atomic_load_n(&g_abandoned, __ATOMIC_RELAXED))
        return;
    if (wait)
        pthread_mutex_lock(&g_abandon_lock);
    else if (pthread_mutex_trylock(&g_abandon_lock) != 0)
        return;
    hk_superslab_t *kept = NULL, *kept_tail = NULL;
    for (unsigned n = 0; g_abandoned && n < max; n++) {
        hk_superslab_t *ss = g_abandoned;
        abandoned_unlink(ss);
        if (collect(ss)) {
            ss->state = HK_SS_ACTIVE; /* superslab_free() takes it from here */
            superslab_free(ss);
            continue;
        }
        ss->prev = kept_tail; /* still abandoned: to the back, in order */
        if (kept_tail)
            kept_tail->next = ss;
        else
            kept = ss;
        kept_tail = ss;
    }
    if (kept) {
        hk_superslab_t *t = g_abandoned;
        if (!t) {
            __atomic_store_n(&g_abandoned, kept, __ATOMIC_RELAXED);
        } else {
            while (t->next)
                t = t->next;
            t->next = kept;
            kept->prev = t;
        }
    }
    pthread_mutex_unlock(&g_abandon_lock);
}

uint64_t superslab_for_each_abandoned(void (*fn)(hk_superslab_t *ss, void *arg), void *arg)
{
    uint64_t n = 0;
    pthread_mutex_lock(&g_abandon_lock);
    for (hk_superslab_t *ss = g_abandoned; ss; ss = ss->next, n++)
        fn(ss, arg);
    pthread_mutex_unlock(&g_abandon_lock);
    return n;
}

static int64_t ss_committed(const hk_superslab_t *ss)
{
    return (int64_t)HK_SS_SIZE - (int64_t)ss->decommitted_slabs * (int64_t)HK_SLAB_SIZE;
}

void superslab_count_one(const hk_superslab_t *ss, hk_ss_count_t *c)
{
    c->live++;
    c->committed += ss_committed(ss);
}

void superslab_count_lists(hk_ss_count_t *c)
{
    for (hk_superslab_t *ss = g_abandoned; ss; ss = ss->next)
        superslab_count_one(ss, c);
    for (hk_superslab_t *ss = g_cache; ss; ss = ss->next) {
        c->cached++;
        c->committed += ss_committed(ss);
    }
    for (hk_superslab_t *ss = g_decommitted; ss; ss = ss->next) {
        c->decommitted++;
        c->committed += (int64_t)HK_SLAB_SIZE; /* the header slab stays */
    }
}

void superslab_fork_prepare(void)
{
    pthread_mutex_lock(&g_abandon_lock);
    pthread_mutex_lock(&g_cache_lock);
}

void superslab_fork_parent(void)
{
    pthread_mutex_unlock(&g_cache_lock);
    pthread_mutex_unlock(&g_abandon_lock);
}

void superslab_fork_child(void)
{
    /* Both held since prepare by this very thread: unlock (re-initialising
     * a locked mutex is undefined). */
    pthread_mutex_unlock(&g_cache_lock);
    pthread_mutex_unlock(&g_abandon_lock);
}
