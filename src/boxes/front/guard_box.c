/* guard_box: guarded sampling. See the header. */
#include "hakmem_internal.h"
#include "front/guard_box.h"
#include "heap/heap_lists_box.h"
#include "base/diag_box.h"
#include "base/misuse_box.h"
#include "base/env_box.h"
#include "base/stack_box.h"
#include "os/ss_os_acquire_box.h"
#include "os/ss_registry_box.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The pool: one 2 MiB chunk of slots of three pages (a guard page, two
 * data pages), 128 of them (1.5 MiB), the page after the last one a guard
 * too. The largest block guarded: two pages. */
#define HK_GUARD_SLOTS 128
#define HK_GUARD_SLOT_BYTES (3 * HK_PAGE_SIZE)
#define HK_GUARD_MAX (2 * HK_PAGE_SIZE)
/* Freed slots wait this long (in frees) before reuse: half the pool. */
#define HK_GUARD_QUARANTINE (HK_GUARD_SLOTS / 2)
/* Frames kept per stack. */
#define HK_GUARD_DEPTH 16

enum { SLOT_FREE = 0, SLOT_LIVE = 1, SLOT_FREED = 2 };

typedef struct {
    _Atomic int state;
    uint32_t size;
    uintptr_t user;
    int32_t alloc_tid, free_tid;
    int nalloc, nfree;
    void *alloc_pcs[HK_GUARD_DEPTH], *free_pcs[HK_GUARD_DEPTH];
} hk_guard_slot_t;

static uintptr_t g_base; /* 0: guarded sampling off (or its pool missing) */
/* Settled by hk_guard_init: until then a thread's countdown stays at 0, so
 * that its next allocation asks again. */
enum { GUARD_UNKNOWN, GUARD_OFF, GUARD_ON };
static _Atomic int g_state;
static uint64_t g_mean;  /* guard_sample */
static hk_guard_slot_t g_slots[HK_GUARD_SLOTS];
/* Under g_lock: the free slots (a stack) and the quarantine (a FIFO). */
static _Atomic int g_lock;
static int g_free[HK_GUARD_SLOTS], g_nfree;
static int g_quar[HK_GUARD_QUARANTINE], g_qhead, g_qlen;
static _Atomic uint64_t g_live, g_skipped;
static struct sigaction g_prev;

static __thread uint64_t t_rng;

static void guard_lock(void)
{
    int expect = 0;
    while (!atomic_compare_exchange_weak_explicit(&g_lock, &expect, 1, memory_order_acquire, memory_order_relaxed))
        expect = 0;
}

static void guard_unlock(void) { atomic_store_explicit(&g_lock, 0, memory_order_release); }

static uintptr_t slot_base(int i) { return g_base + (uintptr_t)i * HK_GUARD_SLOT_BYTES; }
/* Where the slot's data ends: the next slot's guard page. */
static uintptr_t slot_end(int i) { return slot_base(i) + HK_GUARD_SLOT_BYTES; }

/* ------------------------------------------------------------------------ */
/* The report, from the SIGSEGV handler: write(2) only. */

static void print_stack(const char *what, int32_t tid, void *const *pcs, int n)
{
    hk_msg_t m = {.len = 0};
    hk_msg_str(&m, "hakmem:   ");
    hk_msg_str(&m, what);
    hk_msg_str(&m, " by thread ");
    hk_msg_u64(&m, (uint64_t)tid);
    hk_msg_str(&m, ":");
    hk_msg_flush(&m);
    for (int k = 0; k < n; k++) {
        m.len = 0;
        hk_msg_str(&m, "hakmem:     #");
        hk_msg_u64(&m, (uint64_t)k);
        hk_msg_str(&m, " ");
        hk_msg_hex(&m, (uintptr_t)pcs[k]);
        hk_msg_flush(&m);
    }
}

/* Name the fault at address a in the pool: the block it belongs to, or
 * the one whose guard page it hit. */
static void report(uintptr_t a)
{
    uintptr_t off = a - g_base;
    int i = (int)(off / HK_GUARD_SLOT_BYTES);
    bool guard_page = (off % HK_GUARD_SLOT_BYTES) < HK_PAGE_SIZE;
    int s = i;
    const char *kind = "heap-buffer-overflow";
    /* A guard page lies right after the block of the slot before it. */
    if ((guard_page || i >= HK_GUARD_SLOTS) && i > 0 &&
        atomic_load_explicit(&g_slots[i - 1].state, memory_order_acquire) != SLOT_FREE)
        s = i - 1;
    if (s >= HK_GUARD_SLOTS)
        s = HK_GUARD_SLOTS - 1;
    hk_guard_slot_t *sl = &g_slots[s];
    int st = atomic_load_explicit(&sl->state, memory_order_acquire);
    if (st != SLOT_LIVE && a >= slot_base(s) + HK_PAGE_SIZE && a < slot_end(s))
        kind = "heap-use-after-free"; /* its data pages */
    hk_msg_t m = {.len = 0};
    hk_msg_str(&m, "hakmem: error: ");
    hk_msg_str(&m, kind);
    hk_msg_str(&m, " at ");
    hk_msg_hex(&m, a);
    if (a >= sl->user + sl->size) {
        hk_msg_str(&m, ", ");
        hk_msg_u64(&m, a - (sl->user + sl->size));
        hk_msg_str(&m, " bytes after the ");
    } else if (a < sl->user) {
        hk_msg_str(&m, ", ");
        hk_msg_u64(&m, sl->user - a);
        hk_msg_str(&m, " bytes before the ");
    } else {
        hk_msg_str(&m, ", ");
        hk_msg_u64(&m, a - sl->user);
        hk_msg_str(&m, " bytes into the ");
    }
    hk_msg_u64(&m, sl->size);
    hk_msg_str(&m, "-byte block ");
    hk_msg_hex(&m, sl->user);
    hk_msg_str(&m, st == SLOT_LIVE ? " (guarded sample)" : " (guarded sample, freed)");
    hk_msg_flush(&m);
    print_stack("allocated", sl->alloc_tid, sl->alloc_pcs, sl->nalloc);
    if (st != SLOT_LIVE)
        print_stack("freed", sl->free_tid, sl->free_pcs, sl->nfree);
}

static void restore_default(int sig)
{
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
}

static void guard_segv(int sig, siginfo_t *si, void *uc)
{
    uintptr_t a = (uintptr_t)si->si_addr;
    if (g_base && a >= g_base && a < g_base + HK_SS_SIZE) {
        int saved = errno;
        report(a);
        errno = saved;
        /* Returning re-runs the access, which now takes the default
         * action: the program dies of SIGSEGV where it went wrong. */
        restore_default(sig);
        return;
    }
    /* Not ours: the handler that was there before. */
    if ((g_prev.sa_flags & SA_SIGINFO) && g_prev.sa_sigaction) {
        g_prev.sa_sigaction(sig, si, uc);
    } else if (g_prev.sa_handler != SIG_DFL && g_prev.sa_handler != SIG_IGN) {
        g_prev.sa_handler(sig);
    } else {
        restore_default(sig); /* the fault comes again, with the default */
    }
}

/* ------------------------------------------------------------------------ */

void hk_guard_init(void)
{
    static _Atomic int done;
    int expect = 0;
    if (!atomic_compare_exchange_strong(&done, &expect, 1))
        return;
    int64_t mean = hk_opt_bytes(HK_OPT_GUARD_SAMPLE);
    if (mean <= 0) {
        atomic_store_explicit(&g_state, GUARD_OFF, memory_order_release);
        return;
    }
    if (hk_opt(HK_OPT_PROF)) {
        hk_warn("guard_sample is ignored while the heap profiler is on (prof:1): they share a countdown");
        atomic_store_explicit(&g_state, GUARD_OFF, memory_order_release);
        return;
    }
    void *p = hk_os_map_aligned(HK_SS_SIZE, HK_SS_SIZE);
    if (!p || hk_os_protect(p, HK_SS_SIZE, false) != 0) {
        if (p)
            hk_os_unmap(p, HK_SS_SIZE);
        hk_warn("guard_sample: no memory for the guarded pool; off");
        atomic_store_explicit(&g_state, GUARD_OFF, memory_order_release);
        return;
    }
    for (int i = 0; i < HK_GUARD_SLOTS; i++)
        g_free[i] = HK_GUARD_SLOTS - 1 - i; /* slot 0 first */
    g_nfree = HK_GUARD_SLOTS;
    g_mean = (uint64_t)mean;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = guard_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &g_prev);
    hk_os_registry_set((uintptr_t)p, HK_SS_SIZE, HK_REG_GUARDED);
    __atomic_store_n(&g_base, (uintptr_t)p, __ATOMIC_RELEASE);
    atomic_store_explicit(&g_state, GUARD_ON, memory_order_release);
}

bool hk_guard_sample_now(size_t size)
{
    int st = atomic_load_explicit(&g_state, memory_order_acquire);
    if (st != GUARD_ON) {
        if (st == GUARD_UNKNOWN && !hk_opt(HK_OPT_PROF))
            hk_tls.prof_left = 0; /* ask again at the next allocation */
        return false;             /* (off: the profiler left the countdown off) */
    }
    if (!t_rng)
        t_rng = ((uint64_t)(uintptr_t)&t_rng * 0x9E3779B97F4A7C15ull) ^ (uint64_t)syscall(SYS_gettid) ^ 1;
    t_rng ^= t_rng << 13;
    t_rng ^= t_rng >> 7;
    t_rng ^= t_rng << 17;
    /* The next gap: uniform in [0, 2 * mean - 2], mean - 1 bytes, so that
     * the tick falls on an allocation every `mean` bytes on average (1:
     * every allocation of a byte or more). */
    hk_tls.prof_left = (int64_t)(t_rng % (2 * g_mean - 1));
    return size <= HK_GUARD_MAX && size > 0;
}

void *hk_guard_alloc(size_t size, bool zero, const void *anchor)
{
    (void)anchor;
    if (!g_base || size == 0 || size > HK_GUARD_MAX)
        return NULL;
    guard_lock();
    int i = g_nfree ? g_free[--g_nfree] : -1;
    guard_unlock();
    if (i < 0) {
        atomic_fetch_add_explicit(&g_skipped, 1, memory_order_relaxed);
        return NULL;
    }
    hk_guard_slot_t *sl = &g_slots[i];
    /* Right-aligned against the next guard page, to the block's natural
     * alignment (its size's lowest set bit, at most 16): malloc(8) ends
     * exactly at the guard page. */
    size_t align = size & (0 - size);
    if (align > 16)
        align = 16;
    size_t room = (size + align - 1) & ~(align - 1);
    uintptr_t user = slot_end(i) - room;
    size_t pages = size > HK_PAGE_SIZE ? 2 : 1;
    uintptr_t data = slot_end(i) - pages * HK_PAGE_SIZE;
    if (hk_os_protect((void *)data, pages * HK_PAGE_SIZE, true) != 0) {
        guard_lock();
        g_free[g_nfree++] = i;
        guard_unlock();
        atomic_fetch_add_explicit(&g_skipped, 1, memory_order_relaxed);
        return NULL;
    }
    if (zero)
        memset((void *)user, 0, size);
    sl->size = (uint32_t)size;
    sl->user = user;
    sl->alloc_tid = (int32_t)syscall(SYS_gettid);
    sl->nalloc = hk_stack_capture(sl->alloc_pcs, HK_GUARD_DEPTH, 2);
    sl->nfree = 0;
    atomic_store_explicit(&sl->state, SLOT_LIVE, memory_order_release);
    atomic_fetch_add_explicit(&g_live, 1, memory_order_relaxed);
    return (void *)user;
}

/* The slot of p (in the pool), or -1. */
static int slot_of(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    if (!g_base || a < g_base || a >= g_base + (uintptr_t)HK_GUARD_SLOTS * HK_GUARD_SLOT_BYTES)
        return -1;
    return (int)((a - g_base) / HK_GUARD_SLOT_BYTES);
}

size_t hk_guard_usable(const void *p)
{
    int i = slot_of(p);
    if (i < 0 || atomic_load_explicit(&g_slots[i].state, memory_order_acquire) != SLOT_LIVE ||
        g_slots[i].user != (uintptr_t)p)
        return 0;
    return g_slots[i].size;
}

void hk_guard_free(void *p)
{
    int i = slot_of(p);
    hk_guard_slot_t *sl = i >= 0 ? &g_slots[i] : NULL;
    int expect = SLOT_LIVE;
    if (!sl || sl->user != (uintptr_t)p ||
        !atomic_compare_exchange_strong_explicit(&sl->state, &expect, SLOT_FREED, memory_order_acq_rel,
                                                 memory_order_relaxed)) {
        int saved = errno;
        if (sl && sl->user == (uintptr_t)p)
            hk_report_misuse("double free", p, "guarded block is already free");
        else
            hk_report_misuse("invalid free", p, "not a block hakmem handed out");
        errno = saved;
        return;
    }
    sl->free_tid = (int32_t)syscall(SYS_gettid);
    sl->nfree = hk_stack_capture(sl->free_pcs, HK_GUARD_DEPTH, 1);
    size_t pages = sl->size > HK_PAGE_SIZE ? 2 : 1;
    hk_os_protect((void *)(slot_end(i) - pages * HK_PAGE_SIZE), pages * HK_PAGE_SIZE, false);
    atomic_fetch_sub_explicit(&g_live, 1, memory_order_relaxed);
    /* Into the quarantine; the oldest there is free again once it is full. */
    guard_lock();
    if (g_qlen == HK_GUARD_QUARANTINE) {
        int old = g_quar[g_qhead];
        g_qhead = (g_qhead + 1) % HK_GUARD_QUARANTINE;
        g_qlen--;
        atomic_store_explicit(&g_slots[old].state, SLOT_FREE, memory_order_release);
        g_free[g_nfree++] = old;
    }
    g_quar[(g_qhead + g_qlen++) % HK_GUARD_QUARANTINE] = i;
    guard_unlock();
}

void hk_guard_stats(uint64_t *live, uint64_t *skipped)
{
    *live = atomic_load_explicit(&g_live, memory_order_relaxed);
    *skipped = atomic_load_explicit(&g_skipped, memory_order_relaxed);
}

void hk_guard_fork_prepare(void) { guard_lock(); }
void hk_guard_fork_parent(void) { guard_unlock(); }
void hk_guard_fork_child(void) { guard_unlock(); }
