/* background_box: the background thread. See the header. */
#include "hakmem_internal.h"
#include "front/background_box.h"
#include "base/env_box.h"
#include "heap/heap_box.h"
#include "backend/large_box.h"
#include "backend/medium_box.h"
#include "backend/ss_allocation_box.h"
#include "backend/ss_release_policy_box.h"

#include <pthread.h>
#include <signal.h>
#include <time.h>

/* 0 = not looked at yet, 1 = starting, 2 = running, 3 = failed to start,
 * 4 = not asked for. */
static _Atomic int g_state;
/* Held for the length of every purge (the thread's passes and the
 * allocator's ticks); fork_prepare takes it first, so no purge is ever
 * half done in a child, and the debug recount never meets one. */
static pthread_mutex_t g_pass_lock = PTHREAD_MUTEX_INITIALIZER;

/* What is past the purge delay goes back (lock held): the heaps' empty
 * superslabs first (to the cache, keeping their age), then the cache. */
static void purge_locked(int64_t now)
{
    hk_heap_purge_empty(now);
    superslab_purge(now);
    hk_large_purge(now);
    hk_medium_purge(now);
    ss_release_policy_bonus(); /* the bonus decays while nobody asks */
}

static void pass(int64_t now)
{
    pthread_mutex_lock(&g_pass_lock);
    hk_heap_idle_work();
    purge_locked(now);
    pthread_mutex_unlock(&g_pass_lock);
}

static void *background_main(void *arg)
{
    (void)arg;
    for (;;) {
        int64_t every = ss_release_purge_interval_ms(ss_purge_delay_ms());
        if (every < 0)
            every = 1000; /* never purge: the delay is fixed, but stay cheap */
        struct timespec ts = {(time_t)(every / 1000), (long)(every % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0)
            ;
        pass(ss_release_now_ms());
    }
    return NULL;
}

void hk_background_maybe_start(void)
{
    if (HK_LIKELY(atomic_load_explicit(&g_state, memory_order_relaxed) != 0))
        return;
    int expect = 0;
    if (!hk_opt(HK_OPT_BACKGROUND)) {
        atomic_compare_exchange_strong(&g_state, &expect, 4);
        return;
    }
    if (!atomic_compare_exchange_strong(&g_state, &expect, 1))
        return;
    /* Every signal blocked in the new thread: the program's signals go to
     * its own threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_t t;
    int ok = pthread_attr_init(&attr) == 0;
    if (ok) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 64 * 1024);
        ok = pthread_create(&t, &attr, background_main, NULL) == 0;
        pthread_attr_destroy(&attr);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (ok)
        pthread_setname_np(t, "hakmem-bg");
    /* A failed start is not retried: the allocator's own calls still
     * apply the delay. */
    atomic_store_explicit(&g_state, ok ? 2 : 3, memory_order_release);
}

bool hk_background_running(void) { return atomic_load_explicit(&g_state, memory_order_acquire) == 2; }

/* Ticks closer than a pass interval have nothing to do: one compare. */
static _Atomic int64_t g_next_tick_ms;

void hk_idle_tick(void)
{
    hk_background_maybe_start();
    int64_t now = ss_release_now_ms();
    int64_t next = atomic_load_explicit(&g_next_tick_ms, memory_order_relaxed);
    if (now < next)
        return;
    int64_t every = ss_release_purge_interval_ms(ss_purge_delay_ms());
    if (every < 0 || !atomic_compare_exchange_strong(&g_next_tick_ms, &next, now + every - every / 8))
        return;
    /* Busy: the background thread is at it, or a fork or the debug
     * recount holds the lock; the next tick will do. */
    if (pthread_mutex_trylock(&g_pass_lock) != 0)
        return;
    purge_locked(now);
    pthread_mutex_unlock(&g_pass_lock);
}

void hk_background_fork_prepare(void) { pthread_mutex_lock(&g_pass_lock); }
void hk_background_fork_parent(void) { pthread_mutex_unlock(&g_pass_lock); }

void hk_background_fork_child(void)
{
    /* The thread did not come along: the next slow path makes a new one. */
    pthread_mutex_unlock(&g_pass_lock);
    atomic_store_explicit(&g_state, 0, memory_order_relaxed);
}
