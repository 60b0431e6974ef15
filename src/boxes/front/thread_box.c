/* thread_box: global init, thread exit, fork. See the header. */
#include "hakmem_internal.h"
#include "front/thread_box.h"
#include "front/background_box.h"
#include "front/prof_box.h"
#include "front/guard_box.h"
#include "base/diag_box.h"
#include "base/env_box.h"
#include "heap/heap_box.h"
#include "heap/census_box.h"
#include "backend/large_box.h"
#include "backend/medium_box.h"
#include "backend/ss_allocation_box.h"
#include "backend/ss_release_policy_box.h"
#include "os/ss_registry_box.h"
#include "base/superslab_stats.h"

#include <pthread.h>
#include <stdlib.h>
#include <sched.h>
#include <sys/auxv.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* 0 = not done (or failed: retried), 1 = in progress, 2 = done. */
static _Atomic int g_init_state;
static pthread_key_t g_exit_key;

static void thread_exit_hook(void *arg)
{
    hk_heap_thread_done((hk_heap_t *)arg);
}

/* Lock order, everywhere: the background thread's pass lock, the heap
 * pool and heap locks, the abandoned
 * list, the superslab cache, the medium regions, the large-block table;
 * the profiler's lock is
 * a leaf (held with no other). fork() holds them all. */
static void fork_prepare(void)
{
    /* An init in progress on another thread would stay "in progress"
     * forever in the child: let it finish first. */
    while (atomic_load_explicit(&g_init_state, memory_order_acquire) == 1)
        sched_yield();
    hk_background_fork_prepare();
    hk_heap_fork_prepare();
    superslab_fork_prepare();
    hk_medium_fork_prepare();
    hk_large_fork_prepare();
    hk_prof_fork_prepare();
    hk_guard_fork_prepare();
}

static void fork_parent(void)
{
    hk_prof_fork_parent();
    hk_guard_fork_parent();
    hk_large_fork_parent();
    hk_medium_fork_parent();
    superslab_fork_parent();
    hk_heap_fork_parent();
    hk_background_fork_parent();
}

static void fork_child(void)
{
    hk_prof_fork_child();
    hk_guard_fork_child();
    hk_large_fork_child();
    hk_medium_fork_child();
    superslab_fork_child();
    hk_heap_fork_child();
    hk_census_fork_child();
    hk_background_fork_child();
}

void hk_check_gauges(void)
{
    if (!config_debug || atomic_load_explicit(&g_init_state, memory_order_acquire) != 2)
        return;
    /* Every lock, as for fork: nothing moves while we count. */
    fork_prepare();
    hk_ss_count_t c = {0};
    hk_heap_count_superslabs(&c);
    superslab_count_lists(&c);
    hk_large_count_t lc = {0};
    hk_large_count(&lc);
    int64_t medium_committed = hk_medium_count_committed();
    int64_t g[6] = {HK_GAUGE_GET(ss_live),          HK_GAUGE_GET(ss_cached),  HK_GAUGE_GET(ss_decommitted),
                    HK_GAUGE_GET(bytes_committed), HK_GAUGE_GET(large_live), HK_GAUGE_GET(large_cached_bytes)};
    int64_t r[6] = {c.live, c.cached, c.decommitted, c.committed + lc.committed + medium_committed, lc.live,
                    lc.cached_bytes};
    static const char *const names[6] = {"ss_live",         "ss_cached",  "ss_decommitted",
                                         "bytes_committed", "large_live", "large_cached_bytes"};
    fork_parent();
    for (int i = 0; i < 6; i++) {
        if (g[i] == r[i])
            continue;
        hk_msg_t m = {.len = 0};
        hk_msg_str(&m, "hakmem: error: gauge ");
        hk_msg_str(&m, names[i]);
        hk_msg_str(&m, " is ");
        hk_msg_u64(&m, (uint64_t)g[i]);
        hk_msg_str(&m, " but a recount finds ");
        hk_msg_u64(&m, (uint64_t)r[i]);
        hk_msg_flush(&m);
        abort();
    }
}

/* The free-list secrets: from the kernel's random source (no heap, no
 * file); should that fail, from AT_RANDOM and the clock, mixed. */
static void make_secrets(uintptr_t key[2])
{
    if (getrandom(key, 2 * sizeof key[0], GRND_NONBLOCK) != (ssize_t)(2 * sizeof key[0])) {
        uintptr_t c = 0;
        const uint8_t *rnd = (const uint8_t *)getauxval(AT_RANDOM);
        for (int i = 0; rnd && i < 8; i++)
            c = (c << 8) | (uintptr_t)(rnd[i] ^ rnd[15 - i]);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        c ^= (uintptr_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uintptr_t)&g_init_state;
        key[0] = c;
        key[1] = (c ^ (uintptr_t)ts.tv_sec) * 0xBF58476D1CE4E5B9ull;
        key[1] ^= key[1] >> 31;
    }
    key[0] |= 0xF; /* low bits set: (address ^ key[0]) is never 0 */
    key[1] |= 1;   /* odd: the multiply loses nothing */
}

int hk_global_init(void)
{
    int st = atomic_load_explicit(&g_init_state, memory_order_acquire);
    if (HK_LIKELY(st == 2))
        return 0;
    int expect = 0;
    if (st == 0 && atomic_compare_exchange_strong(&g_init_state, &expect, 1)) {
        /* Steps that cannot fail for lack of memory, done once. */
        static bool once_done;
        if (!once_done) {
            ss_release_policy_init(); /* its settings' defaults, before they are parsed */
            hk_env_init();
            hk_prof_init();
            make_secrets(g_hk_key);
            if (pthread_key_create(&g_exit_key, thread_exit_hook) != 0)
                hk_fatal("cannot create the thread-exit key");
            pthread_atfork(fork_prepare, fork_parent, fork_child);
            /* The heaps' sweep runs the purge tick (handed down: the heap
             * box never calls up). */
            hk_heap_set_idle_tick(hk_idle_tick);
            /* New superslabs may be built in freed large blocks' ranges;
             * no small block starts where a large one lately did. */
            superslab_set_range_source(hk_large_cache_take_chunk, hk_large_recent_pages);
            if (hk_opt(HK_OPT_VERBOSE)) {
                hk_env_dump();
                hk_msg_t m = {.len = 0};
                hk_msg_str(&m, "hakmem: purge delay in effect: ");
                int64_t d = ss_purge_delay_ms();
                if (d < 0) {
                    hk_msg_str(&m, "never");
                } else {
                    hk_msg_u64(&m, (uint64_t)d);
                    hk_msg_str(&m, " ms");
                }
                hk_msg_flush(&m);
            }
            once_done = true;
        }
        /* The registry needs address space. If the kernel refuses it now,
         * this call fails (ENOMEM) and the next allocation tries again. */
        if (hk_os_registry_init() != 0) {
            atomic_store_explicit(&g_init_state, 0, memory_order_release);
            return -1;
        }
        hk_guard_init(); /* its pool is marked in the registry */
        atomic_store_explicit(&g_init_state, 2, memory_order_release);
        return 0;
    }
    /* Another thread is initialising (it never allocates through us while
     * doing so): wait for it. */
    while ((st = atomic_load_explicit(&g_init_state, memory_order_acquire)) == 1)
        sched_yield();
    return st == 2 ? 0 : -1;
}

/* A thread's first malloc: the process first, then the thread's heap and
 * its exit hook. */
hk_heap_t *hk_thread_start(void)
{
    if (hk_tls_heap != &g_hk_heap_empty)
        return hk_tls_heap; /* started already (or exited: the shared heap serves it) */
    if (hk_global_init() != 0)
        return NULL;
    hk_heap_t *h = hk_heap_thread_init();
    /* The main thread never runs key destructors (exit() does not), which
     * is fine: the process is going away. */
    if (h)
        pthread_setspecific(g_exit_key, h);
    /* A thread's first allocation: the background thread starts here if
     * it was asked for (no lock is held). */
    hk_background_maybe_start();
    return h;
}
