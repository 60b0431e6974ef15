/* ss_allocation_box: acquire and free superslabs; the empty cache and the
 * abandoned list. See the header. */
#include "hakmem_internal.h"
#include "ss_allocation_box.h"
#include "ss_os_acquire_box.h"
#include "ss_registry_box.h"
#include "superslab_stats.h"

#include <pthread.h>
#include <string.h>

_Static_assert(sizeof(hk_slab_t) == 128, "slab metadata is two cache lines");
_Static_assert(sizeof(hk_superslab_t) <= HK_SLAB_SIZE, "header fits in slab 0");

/* Empty superslabs kept committed for reuse. A plain mutex: this is the slow
 * path, reached once per 2 MiB, and never with a syscall inside. */
static pthread_mutex_t g_cache_lock = PTHREAD_MUTEX_INITIALIZER;
static hk_superslab_t *g_cache;
static pthread_mutex_t g_abandon_lock = PTHREAD_MUTEX_INITIALIZER;
static hk_superslab_t *g_abandoned;

static void ss_init_header(hk_superslab_t *ss)
{
    ss->magic = HK_SS_MAGIC;
    atomic_store_explicit(&ss->heap, NULL, memory_order_relaxed);
    ss->used_slabs = 0;
    ss->free_mask = HK_SS_ALL_SLABS_FREE;
    ss->state = HK_SS_CACHED;
    ss->next = ss->prev = NULL;
    for (int i = 0; i < HK_SLABS_PER_SS; i++) {
        hk_slab_t *s = &ss->slabs[i];
        memset(s, 0, sizeof *s);
        s->index = (uint8_t)i;
    }
}

static hk_superslab_t *ss_map_new(void)
{
    hk_superslab_t *ss = hk_os_map_aligned(HK_SS_SIZE, HK_SS_SIZE);
    if (!ss)
        return NULL;
    ss_init_header(ss);
    hk_registry_set((uintptr_t)ss, HK_SS_SIZE, HK_REG_SUPERSLAB);
    HK_GAUGE_ADD(bytes_committed, (int64_t)HK_SS_SIZE);
    return ss;
}

static hk_superslab_t *cache_pop(void)
{
    pthread_mutex_lock(&g_cache_lock);
    hk_superslab_t *ss = g_cache;
    if (ss)
        g_cache = ss->next;
    pthread_mutex_unlock(&g_cache_lock);
    if (ss) {
        HK_GAUGE_ADD(ss_cached, -1);
        ss->next = NULL;
    }
    return ss;
}

static void cache_push(hk_superslab_t *ss)
{
    ss->state = HK_SS_CACHED;
    pthread_mutex_lock(&g_cache_lock);
    ss->next = g_cache;
    g_cache = ss;
    pthread_mutex_unlock(&g_cache_lock);
    HK_GAUGE_ADD(ss_cached, 1);
}

hk_superslab_t *superslab_acquire(void)
{
    hk_superslab_t *ss = cache_pop();
    if (!ss)
        ss = ss_map_new();
    if (!ss)
        return NULL;
    ss->state = HK_SS_ACTIVE;
    HK_GAUGE_ADD(ss_live, 1);
    return ss;
}

void superslab_free(hk_superslab_t *ss)
{
    HK_GAUGE_ADD(ss_live, -1);
    atomic_store_explicit(&ss->heap, NULL, memory_order_release);
    /* FAST: the persistent backend keeps every superslab for reuse. */
    cache_push(ss);
}

int superslab_prewarm_one(void)
{
    hk_superslab_t *ss = ss_map_new();
    if (!ss)
        return -1;
    /* Header page, then the slabs: slab 0 beyond its first page is never
     * touched, so it is not made resident. */
    hk_os_populate(ss, HK_PAGE_SIZE * 2);
    hk_os_populate((uint8_t *)ss + HK_SLAB_SIZE, HK_SS_SIZE - HK_SLAB_SIZE);
    cache_push(ss);
    return 0;
}

void superslab_abandon(hk_superslab_t *ss)
{
    ss->state = HK_SS_ABANDONED;
    pthread_mutex_lock(&g_abandon_lock);
    ss->next = g_abandoned;
    g_abandoned = ss;
    pthread_mutex_unlock(&g_abandon_lock);
}

hk_superslab_t *superslab_adopt(void)
{
    if (!__atomic_load_n(&g_abandoned, __ATOMIC_RELAXED))
        return NULL;
    pthread_mutex_lock(&g_abandon_lock);
    hk_superslab_t *ss = g_abandoned;
    if (ss)
        g_abandoned = ss->next;
    pthread_mutex_unlock(&g_abandon_lock);
    if (ss) {
        ss->next = NULL;
        ss->state = HK_SS_ACTIVE;
    }
    return ss;
}

void superslab_fork_prepare(void)
{
    pthread_mutex_lock(&g_cache_lock);
    pthread_mutex_lock(&g_abandon_lock);
}

void superslab_fork_parent(void)
{
    pthread_mutex_unlock(&g_abandon_lock);
    pthread_mutex_unlock(&g_cache_lock);
}

void superslab_fork_child(void)
{
    pthread_mutex_init(&g_abandon_lock, NULL);
    pthread_mutex_init(&g_cache_lock, NULL);
}
