/* large_box: large objects, their table and cache. See the header. */
#include "hakmem_internal.h"
#include "large_box.h"
#include "env_box.h"
#include "ss_os_acquire_box.h"
#include "ss_registry_box.h"
#include "superslab_stats.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

typedef struct {
    uintptr_t user; /* key: pointer handed out; 0 = empty, 1 = deleted */
    uintptr_t base; /* mapping start (== user: large blocks start their mapping) */
    size_t size;    /* mapping length, page multiple */
} hk_large_entry_t;

#define HK_LT_EMPTY 0
#define HK_LT_DELETED 1
#define HK_LARGE_CACHE_SLOTS 64

static pthread_mutex_t g_large_lock = PTHREAD_MUTEX_INITIALIZER;
static hk_large_entry_t *g_table;
static size_t g_table_cap; /* power of two */
static size_t g_table_used; /* live + deleted */
static size_t g_table_live;

typedef struct {
    uintptr_t base;
    size_t size;
} hk_cached_range_t;
static hk_cached_range_t g_cache[HK_LARGE_CACHE_SLOTS];
static int g_cache_n;
static size_t g_cache_bytes;

static inline size_t hash_ptr(uintptr_t p)
{
    return (size_t)((p >> 12) * 0x9E3779B97F4A7C15ull);
}

static hk_large_entry_t *table_find(uintptr_t user)
{
    if (!g_table)
        return NULL;
    size_t mask = g_table_cap - 1;
    for (size_t i = hash_ptr(user) & mask;; i = (i + 1) & mask) {
        hk_large_entry_t *e = &g_table[i];
        if (e->user == user)
            return e;
        if (e->user == HK_LT_EMPTY)
            return NULL;
    }
}

static void table_put_nogrow(hk_large_entry_t *t, size_t cap, uintptr_t user, uintptr_t base, size_t size)
{
    size_t mask = cap - 1;
    size_t i = hash_ptr(user) & mask;
    while (t[i].user > HK_LT_DELETED)
        i = (i + 1) & mask;
    t[i].user = user;
    t[i].base = base;
    t[i].size = size;
}

/* Make room for one more entry. Called without the lock held (it maps);
 * returns with the lock held. false if no memory for the table. */
static bool table_reserve_locked(void)
{
    pthread_mutex_lock(&g_large_lock);
    while ((g_table_used + 1) * 2 > g_table_cap) {
        size_t ncap = g_table_cap ? g_table_cap * 2 : 512;
        if (g_table_live * 4 < g_table_cap)
            ncap = g_table_cap; /* mostly tombstones: rebuild at the same size */
        pthread_mutex_unlock(&g_large_lock);
        hk_large_entry_t *nt = hk_os_map(ncap * sizeof *nt);
        if (!nt)
            return false;
        pthread_mutex_lock(&g_large_lock);
        if ((g_table_used + 1) * 2 <= g_table_cap) {
            /* Another thread grew it meanwhile. */
            pthread_mutex_unlock(&g_large_lock);
            hk_os_unmap(nt, ncap * sizeof *nt);
            pthread_mutex_lock(&g_large_lock);
            continue;
        }
        hk_large_entry_t *old = g_table;
        size_t ocap = g_table_cap;
        for (size_t i = 0; i < ocap; i++)
            if (old[i].user > HK_LT_DELETED)
                table_put_nogrow(nt, ncap, old[i].user, old[i].base, old[i].size);
        g_table = nt;
        g_table_cap = ncap;
        g_table_used = g_table_live;
        if (old) {
            pthread_mutex_unlock(&g_large_lock);
            hk_os_unmap(old, ocap * sizeof *old);
            pthread_mutex_lock(&g_large_lock);
        }
    }
    return true;
}

static void table_insert_locked(uintptr_t user, uintptr_t base, size_t size)
{
    table_put_nogrow(g_table, g_table_cap, user, base, size);
    g_table_used++;
    g_table_live++;
}

static inline size_t cache_limit(void) { return (size_t)hk_opt(HK_OPT_LARGE_CACHE_MB) << 20; }

/* Best fit from the cache: at least `need`, at most need + need/4 + 64 KiB
 * (so a small request does not pin a huge resident range). */
static bool cache_take_locked(size_t need, hk_cached_range_t *out)
{
    int best = -1;
    for (int i = 0; i < g_cache_n; i++) {
        size_t s = g_cache[i].size;
        if (s >= need && s <= need + need / 4 + 65536 && (best < 0 || s < g_cache[best].size))
            best = i;
    }
    if (best < 0)
        return false;
    *out = g_cache[best];
    g_cache[best] = g_cache[--g_cache_n];
    g_cache_bytes -= out->size;
    HK_GAUGE_ADD(large_cached_bytes, -(int64_t)out->size);
    return true;
}

void *hk_large_alloc(size_t size, size_t align, bool zero)
{
    if (size > HK_MAX_REQUEST) {
        errno = ENOMEM;
        return NULL;
    }
    size_t need = hk_align_up(size, HK_PAGE_SIZE);
    if (align < HK_PAGE_SIZE)
        align = HK_PAGE_SIZE;
    uintptr_t base = 0;
    size_t msize = need;
    bool fresh = true;

    if (!table_reserve_locked()) {
        errno = ENOMEM;
        return NULL;
    }
    hk_cached_range_t r;
    if (align == HK_PAGE_SIZE && cache_take_locked(need, &r)) {
        base = r.base;
        msize = r.size;
        fresh = false;
        table_insert_locked(base, base, msize);
    }
    pthread_mutex_unlock(&g_large_lock);

    if (!base) {
        void *p = align > HK_PAGE_SIZE ? hk_os_map_aligned(need, align) : hk_os_map(need);
        if (!p) {
            errno = ENOMEM;
            return NULL;
        }
        base = (uintptr_t)p;
        hk_registry_set(base, msize, HK_REG_LARGE);
        if (!table_reserve_locked()) {
            hk_os_unmap(p, msize);
            errno = ENOMEM;
            return NULL;
        }
        table_insert_locked(base, base, msize);
        pthread_mutex_unlock(&g_large_lock);
        HK_GAUGE_ADD(bytes_committed, (int64_t)msize);
    }
    HK_GAUGE_ADD(large_live, 1);
    if (zero && !fresh)
        memset((void *)base, 0, size);
    return (void *)base;
}

size_t hk_large_usable(const void *p)
{
    pthread_mutex_lock(&g_large_lock);
    hk_large_entry_t *e = table_find((uintptr_t)p);
    size_t s = e ? e->size - ((uintptr_t)p - e->base) : 0;
    pthread_mutex_unlock(&g_large_lock);
    return s;
}

int hk_large_free(void *p)
{
    hk_cached_range_t evict[HK_LARGE_CACHE_SLOTS];
    int nevict = 0;
    uintptr_t unmap_base = 0;
    size_t unmap_size = 0;

    pthread_mutex_lock(&g_large_lock);
    hk_large_entry_t *e = table_find((uintptr_t)p);
    if (!e) {
        int r = HK_LARGE_NOT_OURS;
        for (int i = 0; i < g_cache_n; i++)
            if (g_cache[i].base == (uintptr_t)p)
                r = HK_LARGE_ALREADY_FREE;
        pthread_mutex_unlock(&g_large_lock);
        return r;
    }
    uintptr_t base = e->base;
    size_t size = e->size;
    e->user = HK_LT_DELETED;
    g_table_live--;
    size_t limit = cache_limit();
    if (size <= limit) {
        /* Make room: evict the oldest (front) entries. */
        while (g_cache_n > 0 && (g_cache_n == HK_LARGE_CACHE_SLOTS || g_cache_bytes + size > limit)) {
            evict[nevict++] = g_cache[0];
            g_cache_bytes -= g_cache[0].size;
            memmove(&g_cache[0], &g_cache[1], (size_t)(g_cache_n - 1) * sizeof g_cache[0]);
            g_cache_n--;
        }
        g_cache[g_cache_n].base = base;
        g_cache[g_cache_n].size = size;
        g_cache_n++;
        g_cache_bytes += size;
    } else {
        unmap_base = base;
        unmap_size = size;
    }
    pthread_mutex_unlock(&g_large_lock);

    HK_GAUGE_ADD(large_live, -1);
    int64_t cached_delta = unmap_base ? 0 : (int64_t)size;
    for (int i = 0; i < nevict; i++) {
        cached_delta -= (int64_t)evict[i].size;
        hk_os_unmap((void *)evict[i].base, evict[i].size);
        HK_GAUGE_ADD(bytes_committed, -(int64_t)evict[i].size);
    }
    HK_GAUGE_ADD(large_cached_bytes, cached_delta);
    if (unmap_base) {
        hk_os_unmap((void *)unmap_base, unmap_size);
        HK_GAUGE_ADD(bytes_committed, -(int64_t)unmap_size);
    }
    return HK_LARGE_FREED;
}

void *hk_large_realloc(void *p, size_t new_size, bool *found)
{
    pthread_mutex_lock(&g_large_lock);
    hk_large_entry_t *e = table_find((uintptr_t)p);
    if (!e) {
        pthread_mutex_unlock(&g_large_lock);
        *found = false;
        return NULL;
    }
    *found = true;
    uintptr_t base = e->base;
    size_t size = e->size;
    size_t need = hk_align_up(new_size, HK_PAGE_SIZE);
    if (need <= size && need >= size / 2) {
        /* Fits, and does not waste more than half: stay. */
        pthread_mutex_unlock(&g_large_lock);
        return p;
    }
    /* Take it out of the table while the mapping changes. */
    e->user = HK_LT_DELETED;
    g_table_live--;
    pthread_mutex_unlock(&g_large_lock);

    void *q = hk_os_remap((void *)base, size, need);
    uintptr_t nbase = q ? (uintptr_t)q : base;
    size_t nsize = q ? need : size;
    if (q) {
        hk_registry_set(nbase, nsize, HK_REG_LARGE);
        HK_GAUGE_ADD(bytes_committed, (int64_t)nsize - (int64_t)size);
    }
    if (!table_reserve_locked()) {
        /* Cannot even re-register: extremely unlikely; keep it mapped. */
        errno = ENOMEM;
        return NULL;
    }
    table_insert_locked(nbase, nbase, nsize);
    pthread_mutex_unlock(&g_large_lock);
    if (!q) {
        if (need <= size)
            return p; /* shrink refused: the block still fits */
        errno = ENOMEM;
        return NULL;
    }
    return q;
}

size_t hk_large_trim(void)
{
    hk_cached_range_t all[HK_LARGE_CACHE_SLOTS];
    pthread_mutex_lock(&g_large_lock);
    int n = g_cache_n;
    memcpy(all, g_cache, (size_t)n * sizeof all[0]);
    g_cache_n = 0;
    g_cache_bytes = 0;
    pthread_mutex_unlock(&g_large_lock);
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        hk_os_unmap((void *)all[i].base, all[i].size);
        total += all[i].size;
    }
    HK_GAUGE_ADD(large_cached_bytes, -(int64_t)total);
    HK_GAUGE_ADD(bytes_committed, -(int64_t)total);
    return total;
}

void hk_large_fork_prepare(void) { pthread_mutex_lock(&g_large_lock); }
void hk_large_fork_parent(void) { pthread_mutex_unlock(&g_large_lock); }
void hk_large_fork_child(void) { pthread_mutex_init(&g_large_lock, NULL); }
