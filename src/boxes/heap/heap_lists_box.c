/* heap_lists_box: heap structs, their pool and lock. See heap_lists_box.h. */
#include "hakmem_internal.h"
#include "heap/heap_lists_box.h"
#include "os/ss_os_acquire_box.h"

#include <pthread.h>
#include <sched.h>

#define HK_CUR_EMPTY {[0 ... HK_NUM_CLASSES - 1] = &g_hk_slab_empty}
#define HK_BY_SIZE_EMPTY {[0 ... HK_DIRECT_SLOTS - 1] = &g_hk_slab_empty}
hk_heap_t g_hk_heap_empty = {.by_size = HK_BY_SIZE_EMPTY, .cur = HK_CUR_EMPTY};
hk_heap_t g_hk_heap_exited = {.by_size = HK_BY_SIZE_EMPTY, .cur = HK_CUR_EMPTY};
hk_heap_t g_hk_shared_heap = {.by_size = HK_BY_SIZE_EMPTY, .cur = HK_CUR_EMPTY, .alive = 1};
#undef HK_CUR_EMPTY
#undef HK_BY_SIZE_EMPTY

__thread hk_tls_t hk_tls = {.heap = &g_hk_heap_empty};

static inline void cpu_relax(void) { __builtin_ia32_pause(); }

void hk_heap_lock_wait(hk_heap_t *h)
{
    for (unsigned i = 0;; i++) {
        if (!atomic_load_explicit(&h->lock, memory_order_relaxed) &&
            !atomic_exchange_explicit(&h->lock, 1, memory_order_acquire))
            return;
        if (i < 100)
            cpu_relax();
        else
            sched_yield(); /* the holder may be descheduled, or in a syscall */
    }
}

/* ------------------------------------------------------------------------ */
/* The pool. */

static pthread_mutex_t g_heap_pool_lock = PTHREAD_MUTEX_INITIALIZER;
static hk_heap_t *g_heap_pool;
static hk_heap_t *_Atomic g_heap_all = &g_hk_shared_heap;
static uint8_t *g_heap_chunk;
static size_t g_heap_chunk_left;

hk_heap_t *hk_heap_first(void) { return atomic_load_explicit(&g_heap_all, memory_order_acquire); }

hk_heap_t *hk_heap_struct_alloc(void)
{
    pthread_mutex_lock(&g_heap_pool_lock);
    hk_heap_t *h = g_heap_pool;
    if (h) {
        g_heap_pool = h->next_free;
    } else {
        size_t sz = hk_align_up(sizeof(hk_heap_t), 64);
        if (g_heap_chunk_left < sz) {
            /* A syscall under this lock is fine: the fast path never takes it. */
            g_heap_chunk = hk_os_map(HK_SLAB_SIZE);
            g_heap_chunk_left = g_heap_chunk ? HK_SLAB_SIZE : 0;
        }
        if (g_heap_chunk_left >= sz) {
            h = (hk_heap_t *)g_heap_chunk;
            g_heap_chunk += sz;
            g_heap_chunk_left -= sz;
            atomic_store_explicit(&h->lock, 0, memory_order_relaxed);
            h->all_next = atomic_load_explicit(&g_heap_all, memory_order_relaxed);
            atomic_store_explicit(&g_heap_all, h, memory_order_release);
        }
    }
    pthread_mutex_unlock(&g_heap_pool_lock);
    return h;
}

void hk_heap_struct_free(hk_heap_t *h)
{
    pthread_mutex_lock(&g_heap_pool_lock);
    h->next_free = g_heap_pool;
    g_heap_pool = h;
    pthread_mutex_unlock(&g_heap_pool_lock);
}

void hk_heap_reset(hk_heap_t *h)
{
    for (int c = 0; c < HK_NUM_CLASSES; c++) {
        h->cur[c] = &g_hk_slab_empty;
        h->tail[c] = NULL;
    }
    for (int i = 0; i < HK_DIRECT_SLOTS; i++)
        h->by_size[i] = &g_hk_slab_empty;
    atomic_store_explicit(&h->remote_slabs, NULL, memory_order_relaxed);
    atomic_store_explicit(&h->notified, 0, memory_order_relaxed);
    h->ss_list = NULL;
    h->ss_count = 0;
    h->empty_ss = 0;
    h->hold = 0;
    h->foreign = 0;
    __atomic_store_n(&h->pending_since_ms, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&h->tid, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&h->slow_calls, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&h->sweep_seen, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&h->idle_scan_ms, 0, __ATOMIC_RELAXED);
    h->census_dead_epoch = 0;
    h->next_free = NULL;
    __atomic_store_n(&h->alive, 0, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------------ */
/* Fork. Lock order: pool lock, heap locks (list order), then the
 * superslab box's and the large box's locks (thread_box takes those after
 * these). */

void hk_heap_lists_lock_all(void)
{
    pthread_mutex_lock(&g_heap_pool_lock);
    for (hk_heap_t *h = hk_heap_first(); h; h = h->all_next)
        hk_heap_lock(h);
}

void hk_heap_lists_unlock_all(void)
{
    for (hk_heap_t *h = hk_heap_first(); h; h = h->all_next)
        hk_heap_unlock(h);
    pthread_mutex_unlock(&g_heap_pool_lock);
}

/* Every lock is new in the child. */
void hk_heap_lists_reset_locks(void)
{
    for (hk_heap_t *h = hk_heap_first(); h; h = h->all_next)
        atomic_store_explicit(&h->lock, 0, memory_order_relaxed);
    /* The forking thread holds it (prepare): unlock, do not re-initialise
     * a locked mutex (undefined). */
    pthread_mutex_unlock(&g_heap_pool_lock);
}
