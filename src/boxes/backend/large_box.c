/* large_box: large objects, their table and cache. See the header. */
#include "hakmem_internal.h"
#include "backend/large_box.h"
#include "base/env_box.h"
#include "backend/ss_allocation_box.h"
#include "backend/ss_release_policy_box.h"
#include "os/ss_os_acquire_box.h"
#include "os/ss_registry_box.h"
#include "base/superslab_stats.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

typedef struct {
    uintptr_t user; /* key: pointer handed out; 0 = empty */
    uintptr_t base; /* mapping start (== user: large blocks start their mapping) */
    size_t size;    /* mapping length, page multiple */
} hk_large_entry_t;

#define HK_LT_EMPTY 0
#define HK_LARGE_CACHE_SLOTS 256

/* The table: open addressing with linear probing and backward-shift
 * deletion, so a delete leaves no tombstone behind: the table grows only
 * when live blocks do, never because blocks were freed (a table that must
 * grow to serve a request from the cache is what failed under RLIMIT_AS).
 * Entries taken out while their block is moved by mremap keep their room
 * (g_table_moving): putting them back never needs the table to grow. */
static pthread_mutex_t g_large_lock = PTHREAD_MUTEX_INITIALIZER;
static hk_large_entry_t *g_table;
static size_t g_table_cap; /* power of two */
static size_t g_table_live;
static size_t g_table_moving;  /* entries out for a move in flight */
static size_t g_moving_bytes;  /* their mapping lengths (the debug recount) */
static size_t g_live_bytes;    /* mapping lengths of the live blocks (mallinfo) */

typedef struct {
    uintptr_t base;
    size_t size;
    int64_t since_ms; /* unused since (the purge delay); a merge renews it */
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
    while (t[i].user != HK_LT_EMPTY)
        i = (i + 1) & mask;
    t[i].user = user;
    t[i].base = base;
    t[i].size = size;
}

/* Remove an entry: later entries of its probe run move back into the hole
 * unless that would put them before their home slot. */
static void table_delete_locked(hk_large_entry_t *e)
{
    __atomic_fetch_sub(&g_live_bytes, e->size, __ATOMIC_RELAXED);
    size_t mask = g_table_cap - 1;
    size_t i = (size_t)(e - g_table);
    for (size_t j = (i + 1) & mask; g_table[j].user != HK_LT_EMPTY; j = (j + 1) & mask) {
        size_t home = hash_ptr(g_table[j].user) & mask;
        /* Does home lie cyclically in (i, j]? Then the entry stays. */
        bool stays = i < j ? (i < home && home <= j) : (i < home || home <= j);
        if (!stays) {
            g_table[i] = g_table[j];
            i = j;
        }
    }
    g_table[i].user = HK_LT_EMPTY;
    g_table_live--;
}

static void table_insert_locked(uintptr_t user, uintptr_t base, size_t size)
{
    __atomic_fetch_add(&g_live_bytes, size, __ATOMIC_RELAXED);
    table_put_nogrow(g_table, g_table_cap, user, base, size);
    g_table_live++;
}

/* Make room for one more entry (at most half full, counting the entries
 * out for a move). Called without the lock held (it maps); returns with
 * the lock held, or false (lock not held) if no memory for the table even
 * after giving back every cached range. */
static bool table_reserve_locked(void)
{
    bool trimmed = false;
    pthread_mutex_lock(&g_large_lock);
    for (;;) {
        size_t need = g_table_live + g_table_moving + 1;
        if (need * 2 <= g_table_cap)
            return true;
        size_t ncap = g_table_cap ? g_table_cap * 2 : 512;
        while (need * 4 > ncap)
            ncap *= 2;
        pthread_mutex_unlock(&g_large_lock);
        hk_large_entry_t *nt = hk_os_map(ncap * sizeof *nt);
        if (!nt && !trimmed) {
            /* Address space is short (RLIMIT_AS): cached ranges hold some. */
            trimmed = true;
            hk_large_trim();
            superslab_trim();
            nt = hk_os_map(ncap * sizeof *nt);
        }
        if (!nt)
            return false;
        pthread_mutex_lock(&g_large_lock);
        /* Sizes are decided again under the lock: another thread may have
         * grown the table meanwhile, or added so many entries that ours is
         * too small by now. */
        need = g_table_live + g_table_moving + 1;
        if (need * 2 <= g_table_cap || need * 4 > ncap) {
            pthread_mutex_unlock(&g_large_lock);
            hk_os_unmap(nt, ncap * sizeof *nt);
            pthread_mutex_lock(&g_large_lock);
            continue;
        }
        hk_large_entry_t *old = g_table;
        size_t ocap = g_table_cap;
        for (size_t i = 0; i < ocap; i++)
            if (old[i].user != HK_LT_EMPTY)
                table_put_nogrow(nt, ncap, old[i].user, old[i].base, old[i].size);
        g_table = nt;
        g_table_cap = ncap;
        if (old) {
            pthread_mutex_unlock(&g_large_lock);
            hk_os_unmap(old, ocap * sizeof *old);
            pthread_mutex_lock(&g_large_lock);
        }
    }
}

/* The cache's byte limit: HAKMEM_LARGE_CACHE_MB, within LEAN's budget
 * (the release policy says). */
static size_t cache_limit(void)
{
    return ss_release_large_cache_limit((size_t)hk_opt_bytes(HK_OPT_LARGE_CACHE_MB));
}

/* LEAN: bytes of large blocks given back to the OS because of the budget
 * and not yet asked for again; a fresh mapping while this is positive is a
 * bounce. */
static _Atomic int64_t g_large_released;

static void note_large_release(size_t bytes)
{
    if (config_lean && ss_release_lean())
        atomic_fetch_add_explicit(&g_large_released, (int64_t)bytes, memory_order_relaxed);
}

static void note_large_fresh(size_t bytes)
{
    if (!config_lean || atomic_load_explicit(&g_large_released, memory_order_relaxed) <= 0)
        return;
    int64_t was = atomic_fetch_sub_explicit(&g_large_released, (int64_t)bytes, memory_order_relaxed);
    int64_t bounced = was < (int64_t)bytes ? was : (int64_t)bytes;
    if (bounced > 0)
        ss_release_policy_note_reuse((size_t)bounced);
}

/* Cached ranges are kept sorted by address and merged with their
 * neighbours, so freed blocks coalesce and a request can be cut from any
 * range large enough: big buffers freed and re-allocated at other sizes
 * reuse resident pages instead of faulting fresh ones in. */
static void cache_remove_at(int i)
{
    memmove(&g_cache[i], &g_cache[i + 1], (size_t)(g_cache_n - 1 - i) * sizeof g_cache[0]);
    g_cache_n--;
}

/* Take the largest cached range off the cache into evict[] (the caller
 * unmaps it once the lock is dropped); returns the slot it had. */
static int cache_evict_largest_locked(hk_cached_range_t *evict, int *nevict)
{
    int big = 0;
    for (int k = 1; k < g_cache_n; k++)
        if (g_cache[k].size > g_cache[big].size)
            big = k;
    evict[(*nevict)++] = g_cache[big];
    g_cache_bytes -= g_cache[big].size;
    cache_remove_at(big);
    return big;
}

static void cache_insert_at(int i, uintptr_t base, size_t size, int64_t since_ms)
{
    memmove(&g_cache[i + 1], &g_cache[i], (size_t)(g_cache_n - i) * sizeof g_cache[0]);
    g_cache[i].base = base;
    g_cache[i].size = size;
    g_cache[i].since_ms = since_ms;
    g_cache_n++;
}

/* Cut [need] bytes aligned to `align` from the best-fitting range. */
static bool cache_take_locked(size_t need, size_t align, uintptr_t *out)
{
    int best = -1;
    uintptr_t best_at = 0;
    for (int i = 0; i < g_cache_n; i++) {
        uintptr_t at = hk_align_up(g_cache[i].base, align);
        uintptr_t end = g_cache[i].base + g_cache[i].size;
        if (at + need <= end && (best < 0 || g_cache[i].size < g_cache[best].size)) {
            best = i;
            best_at = at;
        }
    }
    if (best < 0)
        return false;
    /* A cut in the middle leaves two ranges: that needs a free slot. */
    uintptr_t base = g_cache[best].base, end = base + g_cache[best].size;
    bool head = best_at > base, tail = best_at + need < end;
    if (head && tail && g_cache_n == HK_LARGE_CACHE_SLOTS)
        return false;
    if (head && tail) {
        g_cache[best].size = best_at - base;
        cache_insert_at(best + 1, best_at + need, end - (best_at + need), g_cache[best].since_ms);
    } else if (head) {
        g_cache[best].size = best_at - base;
    } else if (tail) {
        g_cache[best].base = best_at + need;
        g_cache[best].size = end - (best_at + need);
    } else {
        cache_remove_at(best);
    }
    g_cache_bytes -= need;
    *out = best_at;
    return true;
}

/* Cut [need] bytes for a block that is expected to grow (realloc moving a
 * growing buffer): at the front of the smallest range that also has
 * HK_LARGE_GROW_ROOM times need to spare behind it, so that the block
 * grows in place next time, with no copy and no fault (a vector growing by
 * 1.5x finds room for two more steps). The smallest such range keeps the
 * big ranges whole for big requests; without one, the best fit for need
 * alone. Room is taken only while the cache holds more than
 * HK_LARGE_ROOM_CACHE times the live blocks' bytes: while blocks grow
 * faster than others are freed (a program's start), it would be taken
 * from the blocks that must move next, which would then map fresh pages
 * (bench_realloc's peak RSS rose 5 % without the rule, not with it).
 * Measured on bench_realloc: room 1 saved as many copies as 2 but left
 * more fragments (more fresh mappings); room 4 faulted more in LEAN. */
#define HK_LARGE_GROW_ROOM 2
#define HK_LARGE_ROOM_CACHE 2
_Static_assert(HK_LARGE_GROW_ROOM >= 1, "a range cut for room keeps a remainder");
static bool cache_take_roomy_locked(size_t need, uintptr_t *out)
{
    size_t want = need + need * HK_LARGE_GROW_ROOM;
    int best = -1;
    if (g_cache_bytes > HK_LARGE_ROOM_CACHE * __atomic_load_n(&g_live_bytes, __ATOMIC_RELAXED))
        for (int i = 0; i < g_cache_n; i++)
            if (g_cache[i].size >= want && (best < 0 || g_cache[i].size < g_cache[best].size))
                best = i;
    if (best < 0)
        return cache_take_locked(need, HK_PAGE_SIZE, out);
    *out = g_cache[best].base;
    g_cache[best].base += need;
    g_cache[best].size -= need; /* not 0: room was asked for */
    g_cache_bytes -= need;
    return true;
}

/* Index of the cached range that starts at `at`, or -1 (binary search:
 * the ranges are sorted by address). */
static int cache_find_at_locked(uintptr_t at)
{
    int lo = 0, hi = g_cache_n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (g_cache[mid].base == at)
            return mid;
        if (g_cache[mid].base < at)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/* The starts of the last HK_LARGE_RECENT large blocks freed (lock held):
 * a second free of one is named a double free after its range went back
 * to the OS, and no small block is handed out at one of them when a
 * superslab is built over its range (hk_large_recent_pages). A FIFO ring
 * of the addresses, and a hash set of ring positions to find one in O(1)
 * (open addressing, linear probing, backward-shift deletion). A start
 * handed out again as a large block leaves the set. 12 KiB in all, only
 * touched once large blocks are freed. */
#define HK_LARGE_RECENT 1024
#define HK_RECENT_SLOTS (2 * HK_LARGE_RECENT)
static uintptr_t g_recent[HK_LARGE_RECENT];
static uint16_t g_recent_set[HK_RECENT_SLOTS]; /* ring positions + 1; 0: empty */
static unsigned g_recent_next;

static inline size_t recent_home(uintptr_t p) { return hash_ptr(p) & (HK_RECENT_SLOTS - 1); }

/* The set slot that holds p, or HK_RECENT_SLOTS. */
static size_t recent_find_locked(uintptr_t p)
{
    for (size_t i = recent_home(p);; i = (i + 1) & (HK_RECENT_SLOTS - 1)) {
        uint16_t v = g_recent_set[i];
        if (!v)
            return HK_RECENT_SLOTS;
        if (g_recent[v - 1] == p)
            return i;
    }
}

static bool recent_contains_locked(uintptr_t p) { return p && recent_find_locked(p) < HK_RECENT_SLOTS; }

/* Take p out (its ring entry becomes 0). */
static void recent_remove_locked(uintptr_t p)
{
    size_t i = recent_find_locked(p);
    if (i == HK_RECENT_SLOTS)
        return;
    g_recent[g_recent_set[i] - 1] = 0;
    const size_t mask = HK_RECENT_SLOTS - 1;
    for (size_t j = (i + 1) & mask; g_recent_set[j]; j = (j + 1) & mask) {
        size_t home = recent_home(g_recent[g_recent_set[j] - 1]);
        bool stays = i < j ? (i < home && home <= j) : (i < home || home <= j);
        if (!stays) {
            g_recent_set[i] = g_recent_set[j];
            i = j;
        }
    }
    g_recent_set[i] = 0;
}

static void recent_add_locked(uintptr_t p)
{
    recent_remove_locked(p);
    unsigned at = g_recent_next++ % HK_LARGE_RECENT;
    if (g_recent[at])
        recent_remove_locked(g_recent[at]); /* the oldest goes */
    g_recent[at] = p;
    size_t i = recent_home(p);
    while (g_recent_set[i])
        i = (i + 1) & (HK_RECENT_SLOTS - 1);
    g_recent_set[i] = (uint16_t)(at + 1);
}

/* Is p inside a cached (free) range? */
static bool cache_contains_locked(uintptr_t p)
{
    for (int i = 0; i < g_cache_n; i++)
        if (p >= g_cache[i].base && p < g_cache[i].base + g_cache[i].size)
            return true;
    return false;
}

/* Put a freed range into the cache, merging with its neighbours; ranges
 * that no longer fit (slots or bytes) are handed back in evict[] for the
 * caller to unmap outside the lock. The largest ranges go first: one
 * munmap returns the most. Returns false if the range itself must go. */
static bool cache_put_locked(uintptr_t base, size_t size, int64_t now, hk_cached_range_t *evict, int *nevict)
{
    size_t limit = cache_limit();
    if (size > limit) {
        ss_release_large_over_limit((size_t)hk_opt_bytes(HK_OPT_LARGE_CACHE_MB));
        return false;
    }
    int i = 0;
    while (i < g_cache_n && g_cache[i].base < base)
        i++;
    bool merged = false;
    if (i > 0 && g_cache[i - 1].base + g_cache[i - 1].size == base) {
        g_cache[i - 1].size += size;
        g_cache[i - 1].since_ms = now;
        merged = true;
        i--;
    }
    if (i + (merged ? 1 : 0) < g_cache_n && base + size == g_cache[i + (merged ? 1 : 0)].base) {
        int nx = i + (merged ? 1 : 0);
        if (merged) {
            g_cache[i].size += g_cache[nx].size;
            cache_remove_at(nx);
        } else {
            g_cache[nx].base = base;
            g_cache[nx].size += size;
            g_cache[nx].since_ms = now;
            merged = true;
        }
    }
    if (!merged) {
        if (g_cache_n == HK_LARGE_CACHE_SLOTS) {
            /* Make a slot: evict the largest range. */
            if (cache_evict_largest_locked(evict, nevict) < i)
                i--;
        }
        cache_insert_at(i, base, size, now);
    }
    g_cache_bytes += size;
    if (g_cache_bytes > limit)
        ss_release_large_over_limit((size_t)hk_opt_bytes(HK_OPT_LARGE_CACHE_MB));
    while (g_cache_bytes > limit && g_cache_n > 0 && *nevict < HK_LARGE_CACHE_SLOTS)
        cache_evict_largest_locked(evict, nevict);
    return true;
}

static int cache_take_due_locked(int64_t now_ms, hk_cached_range_t *due);
static _Atomic int64_t g_last_purge_ms;

/* Gauges of this box change under its lock, together with the table and
 * the cache, so that the debug recount (which holds the lock) always finds
 * them in agreement. The unmaps themselves come after unlocking. */

/* A block of need bytes cut from the cache (roomy: for a growing block,
 * see cache_take_roomy_locked; else the best fit), entered in the table,
 * which has room for it (table_reserve_locked); 0 if no range holds it. */
static uintptr_t cache_alloc_locked(size_t need, size_t align, bool roomy)
{
    uintptr_t base;
    if (!(roomy ? cache_take_roomy_locked(need, &base) : cache_take_locked(need, align, &base)))
        return 0;
    table_insert_locked(base, base, need);
    recent_remove_locked(base); /* live again */
    HK_GAUGE_ADD(large_live, 1);
    HK_GAUGE_ADD(large_cached_bytes, -(int64_t)need);
    return base;
}

static void *large_alloc(size_t size, size_t align, bool zero, bool roomy)
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

    if (!table_reserve_locked()) {
        errno = ENOMEM;
        return NULL;
    }
    base = cache_alloc_locked(need, align, roomy);
    pthread_mutex_unlock(&g_large_lock);
    if (base) {
        if (zero)
            memset((void *)base, 0, size);
        return (void *)base;
    }

    void *p = align > HK_PAGE_SIZE ? hk_os_map_aligned(need, align) : hk_os_map(need);
    if (!p && hk_large_trim() + superslab_trim() > 0) {
        /* Address space is short (RLIMIT_AS): the cached ranges gave some back. */
        p = align > HK_PAGE_SIZE ? hk_os_map_aligned(need, align) : hk_os_map(need);
    }
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    base = (uintptr_t)p;
    note_large_fresh(msize);
    hk_os_registry_set(base, msize, HK_REG_LARGE);
    if (!table_reserve_locked()) {
        hk_os_unmap(p, msize);
        errno = ENOMEM;
        return NULL;
    }
    table_insert_locked(base, base, msize);
    recent_remove_locked(base); /* live again */
    HK_GAUGE_ADD(large_live, 1);
    HK_GAUGE_ADD(bytes_committed, (int64_t)msize);
    pthread_mutex_unlock(&g_large_lock);
    return (void *)base;
}

void *hk_large_alloc(size_t size, size_t align, bool zero) { return large_alloc(size, align, zero, false); }

void *hk_large_alloc_growing(size_t size) { return large_alloc(size, 0, false, true); }

void *hk_large_cache_take_chunk(size_t size)
{
    uintptr_t base = 0;
    pthread_mutex_lock(&g_large_lock);
    if (cache_take_locked(size, size, &base))
        HK_GAUGE_ADD(large_cached_bytes, -(int64_t)size); /* still committed: the caller's now */
    pthread_mutex_unlock(&g_large_lock);
    return (void *)base;
}

void hk_large_remember_freed(const uintptr_t *starts, unsigned n)
{
    pthread_mutex_lock(&g_large_lock);
    for (unsigned i = 0; i < n; i++)
        recent_add_locked(starts[i]);
    pthread_mutex_unlock(&g_large_lock);
}

bool hk_large_recently_freed(const void *p)
{
    pthread_mutex_lock(&g_large_lock);
    bool r = recent_contains_locked((uintptr_t)p);
    pthread_mutex_unlock(&g_large_lock);
    return r;
}

void hk_large_recent_pages(uintptr_t base, size_t size, uint16_t *pages)
{
    memset(pages, 0, (size >> 16) * sizeof *pages);
    pthread_mutex_lock(&g_large_lock);
    for (int i = 0; i < HK_LARGE_RECENT; i++) {
        uintptr_t p = g_recent[i];
        if (p >= base && p - base < size)
            pages[(p - base) >> 16] |= (uint16_t)(1u << (((p - base) >> 12) & 15));
    }
    pthread_mutex_unlock(&g_large_lock);
}

bool hk_large_was_freed(const void *p)
{
    pthread_mutex_lock(&g_large_lock);
    bool r = !table_find((uintptr_t)p) && (cache_contains_locked((uintptr_t)p) || recent_contains_locked((uintptr_t)p));
    pthread_mutex_unlock(&g_large_lock);
    return r;
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

    pthread_mutex_lock(&g_large_lock);
    hk_large_entry_t *e = table_find((uintptr_t)p);
    if (!e) {
        int r = cache_contains_locked((uintptr_t)p) || recent_contains_locked((uintptr_t)p) ? HK_LARGE_ALREADY_FREE
                                                                                          : HK_LARGE_NOT_OURS;
        pthread_mutex_unlock(&g_large_lock);
        return r;
    }
    uintptr_t base = e->base;
    size_t size = e->size;
    table_delete_locked(e);
    /* Ranges past the purge delay go first: merged with this fresh one,
     * they would look fresh too. */
    int64_t now = ss_release_now_ms();
    if (ss_purge_pass_claim(&g_last_purge_ms, now))
        nevict = cache_take_due_locked(now, evict);
    int purged = nevict;
    bool cached = cache_put_locked(base, size, now, evict, &nevict);
    recent_add_locked(base);
    int64_t cached_delta = cached ? (int64_t)size : 0;
    int64_t released = cached ? 0 : (int64_t)size;
    for (int i = purged; i < nevict; i++) {
        cached_delta -= (int64_t)evict[i].size;
        released += (int64_t)evict[i].size;
    }
    HK_GAUGE_ADD(large_live, -1);
    HK_GAUGE_ADD(large_cached_bytes, cached_delta);
    HK_GAUGE_ADD(bytes_committed, -released);
    pthread_mutex_unlock(&g_large_lock);

    if (!cached)
        note_large_release(size);
    for (int i = 0; i < nevict; i++) {
        if (i >= purged) /* the budget's evictions, not the delay's */
            note_large_release(evict[i].size);
        hk_os_unmap((void *)evict[i].base, evict[i].size);
    }
    if (!cached)
        hk_os_unmap((void *)base, size);
    return HK_LARGE_FREED;
}

/* Growing blocks up to this size may move into a cached range by copying. */
#define HK_LARGE_COPY_MAX ((size_t)4 << 20)

void *hk_large_realloc(void *p, size_t new_size, size_t *usable)
{
    size_t need = hk_align_up(new_size, HK_PAGE_SIZE);
    pthread_mutex_lock(&g_large_lock);
    hk_large_entry_t *e = table_find((uintptr_t)p);
    if (!e) {
        pthread_mutex_unlock(&g_large_lock);
        *usable = 0;
        return NULL;
    }
    uintptr_t base = e->base;
    size_t size = e->size;
    *usable = size - ((uintptr_t)p - base);
    if (need <= size && need >= size / 2) {
        /* Fits, and does not waste more than half: stay. */
        pthread_mutex_unlock(&g_large_lock);
        return p;
    }
    if (new_size <= HK_SMALL_MAX) {
        /* Shrunk to a small size: a size class serves it better than a
         * mapping of its own (the caller moves it there). */
        pthread_mutex_unlock(&g_large_lock);
        return NULL;
    }
    if (need > size) {
        /* Growing: leave room for more (a quarter), so a buffer that grows
         * step by step comes back here geometrically, not every page. */
        size_t roomy = hk_align_up(size + size / 4, HK_PAGE_SIZE);
        if (roomy > need && roomy - size <= ((size_t)64 << 20))
            need = roomy;
        /* Grow in place into a cached range right behind the block. */
        int i = cache_find_at_locked(base + size);
        if (i >= 0 && g_cache[i].size >= need - size) {
            size_t extra = need - size;
            g_cache[i].base += extra;
            g_cache[i].size -= extra;
            if (g_cache[i].size == 0)
                cache_remove_at(i);
            g_cache_bytes -= extra;
            e->size = need;
            __atomic_fetch_add(&g_live_bytes, extra, __ATOMIC_RELAXED);
            HK_GAUGE_ADD(large_cached_bytes, -(int64_t)extra);
            pthread_mutex_unlock(&g_large_lock);
            return p;
        }
        /* A resident cached range and a copy beat fresh pages: on a virtual
         * machine each page fault costs far more than copying a page. The
         * new place has cached pages behind it where it can, so the next
         * growth happens in place. p stays in the table, live, until the
         * copy is done; the new block is nobody's until it is returned. */
        /* The new place needs room in the table (as table_reserve_locked
         * keeps it); the table grows at the next allocation, mremap
         * serves this one. */
        bool room = (g_table_live + g_table_moving + 1) * 2 <= g_table_cap;
        uintptr_t q = room && need <= HK_LARGE_COPY_MAX ? cache_alloc_locked(need, HK_PAGE_SIZE, true) : 0;
        if (q) {
            pthread_mutex_unlock(&g_large_lock);
            memcpy((void *)q, p, *usable);
            hk_large_free(p);
            return (void *)q;
        }
    }

    /* mremap: grows in place when the address space behind is free, else
     * moves the pages (no copy); shrinking gives the tail back. The entry
     * leaves the table first: once the old range is unmapped, another
     * thread's new mapping may land there and insert its own entry under
     * the same key. Its room stays reserved (g_table_moving), so putting it
     * back cannot fail. */
    table_delete_locked(e);
    g_table_moving++;
    g_moving_bytes += size;
    pthread_mutex_unlock(&g_large_lock);
    void *q = hk_os_remap((void *)base, size, need);
    if (q)
        hk_os_registry_set((uintptr_t)q, need, HK_REG_LARGE);
    pthread_mutex_lock(&g_large_lock);
    g_table_moving--;
    g_moving_bytes -= size;
    if (q) {
        table_insert_locked((uintptr_t)q, (uintptr_t)q, need);
        HK_GAUGE_ADD(bytes_committed, (int64_t)need - (int64_t)size);
    } else {
        table_insert_locked(base, base, size);
    }
    pthread_mutex_unlock(&g_large_lock);
    if (!q) {
        /* The caller falls back to allocate, copy and free (a shrink that
         * was refused just stays). */
        return need <= size ? p : NULL;
    }
    return q;
}

size_t hk_large_trim(void)
{
    hk_cached_range_t all[HK_LARGE_CACHE_SLOTS];
    pthread_mutex_lock(&g_large_lock);
    int n = g_cache_n;
    memcpy(all, g_cache, (size_t)n * sizeof all[0]);
    size_t total = g_cache_bytes;
    g_cache_n = 0;
    g_cache_bytes = 0;
    HK_GAUGE_ADD(large_cached_bytes, -(int64_t)total);
    HK_GAUGE_ADD(bytes_committed, -(int64_t)total);
    pthread_mutex_unlock(&g_large_lock);
    for (int i = 0; i < n; i++)
        hk_os_unmap((void *)all[i].base, all[i].size);
    return total;
}

/* The purge delay (lock held; the caller claimed a pass): take the ranges
 * unused for it into due[] (unmapped by the caller after unlocking). */
static int cache_take_due_locked(int64_t now_ms, hk_cached_range_t *due)
{
    int n = 0;
    size_t total = 0;
    for (int i = 0; i < g_cache_n;) {
        if (ss_purge_due(g_cache[i].since_ms, now_ms)) {
            due[n++] = g_cache[i];
            total += g_cache[i].size;
            cache_remove_at(i);
        } else {
            i++;
        }
    }
    g_cache_bytes -= total;
    HK_GAUGE_ADD(large_cached_bytes, -(int64_t)total);
    HK_GAUGE_ADD(bytes_committed, -(int64_t)total);
    return n;
}

size_t hk_large_purge(int64_t now_ms)
{
    hk_cached_range_t due[HK_LARGE_CACHE_SLOTS];
    if (!ss_purge_pass_claim(&g_last_purge_ms, now_ms))
        return 0;
    pthread_mutex_lock(&g_large_lock);
    int n = cache_take_due_locked(now_ms, due);
    pthread_mutex_unlock(&g_large_lock);
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        hk_os_unmap((void *)due[i].base, due[i].size);
        total += due[i].size;
    }
    return total;
}

size_t hk_large_live_bytes(void) { return __atomic_load_n(&g_live_bytes, __ATOMIC_RELAXED); }

void hk_large_count(hk_large_count_t *c)
{
    int64_t table = 0;
    for (size_t i = 0; i < g_table_cap; i++)
        if (g_table[i].user != HK_LT_EMPTY)
            table += (int64_t)g_table[i].size;
    c->live = (int64_t)(g_table_live + g_table_moving);
    c->cached_bytes = (int64_t)g_cache_bytes;
    c->committed = table + (int64_t)g_moving_bytes + (int64_t)g_cache_bytes;
}

void hk_large_fork_prepare(void) { pthread_mutex_lock(&g_large_lock); }
void hk_large_fork_parent(void) { pthread_mutex_unlock(&g_large_lock); }
void hk_large_fork_child(void) { pthread_mutex_unlock(&g_large_lock); } /* held since prepare */

