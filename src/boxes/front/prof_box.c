/* prof_box: the sampled heap profiler. See the header. */
#include "hakmem_internal.h"
#include "front/prof_box.h"
#include "backend/large_box.h"
#include "base/diag_box.h"
#include "base/env_box.h"
#include "base/heap_profile_box.h"
#include "base/stack_box.h"
#include "hakmem.h"
#include "os/ss_os_acquire_box.h"
#include "os/ss_registry_box.h"

#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The countdown while the profiler is off: 2^62 bytes, more than any
 * sequence of allocations that succeed (should one run it out, the slow
 * path sets it again). */
#define HK_PROF_LEFT_OFF ((int64_t)1 << 62)
/* Frames kept per stack: the innermost; deeper ones are dropped. */
#define HK_PROF_DEPTH 62
/* The caps: live sampled blocks (1 Mi: 512 GiB live at the default
 * rate) and live stacks. */
#define HK_PROF_MAX_SAMPLES ((size_t)1 << 20)
#define HK_PROF_MAX_STACKS ((size_t)1 << 15)
#define HK_PROF_PATH_MAX 256

/* ------------------------------------------------------------------------ */
/* Settings, read once. */

enum { PROF_UNKNOWN, PROF_OFF, PROF_ON };
static _Atomic int g_state;
static double g_mean;
static uint64_t g_peak_step;
static bool g_final, g_leak;
static char g_prefix[HK_PROF_PATH_MAX];

void hk_prof_init(void)
{
    static _Atomic int claimed;
    int expect = 0;
    if (atomic_load_explicit(&g_state, memory_order_acquire) != PROF_UNKNOWN)
        return;
    if (!atomic_compare_exchange_strong(&claimed, &expect, 1)) {
        while (atomic_load_explicit(&g_state, memory_order_acquire) == PROF_UNKNOWN)
            sched_yield();
        return;
    }
    g_mean = (double)hk_opt_bytes(HK_OPT_PROF_SAMPLE);
    g_peak_step = (uint64_t)hk_opt_bytes(HK_OPT_PROF_PEAK_STEP);
    g_final = hk_opt(HK_OPT_PROF_FINAL) != 0;
    g_leak = hk_opt(HK_OPT_PROF_LEAK) != 0;
    const char *prefix = hk_opt_str(HK_OPT_PROF_PREFIX);
    strcpy(g_prefix, *prefix ? prefix : "hakmem");
    atomic_store_explicit(&g_state, hk_opt(HK_OPT_PROF) ? PROF_ON : PROF_OFF, memory_order_release);
}

static int prof_state(void)
{
    int st = atomic_load_explicit(&g_state, memory_order_acquire);
    if (HK_UNLIKELY(st == PROF_UNKNOWN)) {
        hk_prof_init();
        st = atomic_load_explicit(&g_state, memory_order_acquire);
    }
    return st;
}

/* ------------------------------------------------------------------------ */
/* Per thread: the generator and the guards. */

typedef struct {
    uint64_t rng;                  /* xorshift64* state; 0: not seeded yet */
    uint32_t tid;                  /* the thread's number in the profile; 0: none yet */
    uint32_t busy;                 /* inside the profiler: what it allocates is not sampled */
    volatile sig_atomic_t in_lock; /* holds, or is taking, the profiler's lock */
} hk_prof_tls_t;
static __thread hk_prof_tls_t t_prof;
_Atomic uint64_t g_hk_prof_live;
static _Atomic uint32_t g_next_tid;

static uint64_t mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A seed of this thread's own: its TLS address, a process-wide counter, the
 * clock (no system call: the vDSO). */
static uint64_t new_seed(void)
{
    static _Atomic uint64_t counter;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t z = (uint64_t)(uintptr_t)&t_prof ^ atomic_fetch_add(&counter, 1) * 0xD1B54A32D192ED03ull ^
                 ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid() << 40;
    z = mix64(z);
    return z ? z : 1;
}

static int64_t draw_gap(void)
{
    uint64_t x = t_prof.rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    t_prof.rng = x;
    return hk_prof_gap((x * 0x2545F4914F6CDD1Dull) >> 11, g_mean);
}

bool hk_prof_sample_now(size_t size)
{
    if (prof_state() != PROF_ON) {
        hk_tls.prof_left = HK_PROF_LEFT_OFF;
        return false;
    }
    /* The count ran out inside this allocation: a sample point fell in it.
     * The next gap starts at its end (the gaps are memoryless). A thread's
     * first count (0 at its start) decides with a gap of its own. */
    if (!t_prof.rng) {
        t_prof.rng = new_seed();
        int64_t gap = draw_gap();
        if ((uint64_t)gap >= size) {
            hk_tls.prof_left = gap - (int64_t)size;
            return false;
        }
    }
    hk_tls.prof_left = draw_gap();
    return t_prof.busy == 0;
}

/* ------------------------------------------------------------------------ */
/* The lock (a leaf; see the header for dumps from signal handlers). */

static _Atomic int g_lock;
/* A dump asked while its own thread held the lock: 0 none, 1 being
 * written, 2 ready for whoever releases the lock next. */
static _Atomic int g_pending;
static char g_pending_path[HK_PROF_PATH_MAX];

static void prof_lock(void)
{
    t_prof.in_lock = 1;
    atomic_signal_fence(memory_order_seq_cst);
    for (unsigned spins = 0;; spins++) {
        int expect = 0;
        if (!atomic_load_explicit(&g_lock, memory_order_relaxed) &&
            atomic_compare_exchange_weak_explicit(&g_lock, &expect, 1, memory_order_acquire, memory_order_relaxed))
            return;
        if (spins > 64)
            sched_yield();
    }
}

static int dump_locked(const char *path);

static void prof_unlock(void)
{
    for (;;) {
        if (atomic_load_explicit(&g_pending, memory_order_acquire) == 2) {
            char path[HK_PROF_PATH_MAX];
            memcpy(path, g_pending_path, sizeof path);
            atomic_store_explicit(&g_pending, 0, memory_order_release);
            int saved = errno;
            dump_locked(path[0] ? path : NULL);
            errno = saved;
        }
        atomic_store_explicit(&g_lock, 0, memory_order_release);
        atomic_signal_fence(memory_order_seq_cst);
        t_prof.in_lock = 0;
        atomic_signal_fence(memory_order_seq_cst);
        /* A handler may have asked between the check and the release. */
        if (atomic_load_explicit(&g_pending, memory_order_acquire) != 2)
            return;
        prof_lock();
    }
}

/* ------------------------------------------------------------------------ */
/* Tables: open addressing over entries of four words, linear probing,
 * backward-shift deletion (no tombstones: a table grows only with what is
 * live). Each is its own mapping, doubled when half full. */

typedef struct {
    uint64_t key, a, b, c;
} hk_pent_t;

typedef struct {
    hk_pent_t *e;
    size_t cap, n;
    unsigned shift; /* 64 - log2(cap) */
} hk_pmap_t;

static _Atomic uint64_t g_mapped; /* bytes of the profiler's mappings */

static void *prof_map(size_t bytes)
{
    void *p = hk_os_map(bytes);
    if (p)
        atomic_fetch_add_explicit(&g_mapped, bytes, memory_order_relaxed);
    return p;
}

static void prof_unmap(void *p, size_t bytes)
{
    if (p && hk_os_unmap(p, bytes) == 0)
        atomic_fetch_sub_explicit(&g_mapped, bytes, memory_order_relaxed);
}

static size_t pmap_home(const hk_pmap_t *m, uint64_t key) { return (size_t)((key * 0x9E3779B97F4A7C15ull) >> m->shift); }

static hk_pent_t *pmap_find(const hk_pmap_t *m, uint64_t key)
{
    if (!m->e)
        return NULL;
    for (size_t i = pmap_home(m, key);; i = (i + 1) & (m->cap - 1)) {
        if (m->e[i].key == key)
            return &m->e[i];
        if (!m->e[i].key)
            return NULL;
    }
}

/* The entry of key, or the free entry where it goes (room assured by
 * pmap_reserve). */
static hk_pent_t *pmap_probe(const hk_pmap_t *m, uint64_t key)
{
    size_t i = pmap_home(m, key);
    while (m->e[i].key && m->e[i].key != key)
        i = (i + 1) & (m->cap - 1);
    return &m->e[i];
}

/* A free entry for key (room assured by pmap_reserve); keys may repeat. */
static hk_pent_t *pmap_slot(hk_pmap_t *m, uint64_t key)
{
    size_t i = pmap_home(m, key);
    while (m->e[i].key)
        i = (i + 1) & (m->cap - 1);
    m->n++;
    m->e[i].key = key;
    return &m->e[i];
}

static void pmap_delete(hk_pmap_t *m, hk_pent_t *e)
{
    size_t mask = m->cap - 1, i = (size_t)(e - m->e);
    for (size_t j = (i + 1) & mask; m->e[j].key; j = (j + 1) & mask) {
        size_t home = pmap_home(m, m->e[j].key);
        bool stays = i < j ? (i < home && home <= j) : (i < home || home <= j);
        if (!stays) {
            m->e[i] = m->e[j];
            i = j;
        }
    }
    m->e[i].key = 0;
    m->n--;
}

/* Room for one more entry; false if no memory (the sample is dropped). */
static bool pmap_reserve(hk_pmap_t *m, size_t first_cap)
{
    if ((m->n + 1) * 2 <= m->cap)
        return true;
    size_t cap = m->cap ? m->cap * 2 : first_cap;
    hk_pent_t *e = prof_map(cap * sizeof *e);
    if (!e)
        return false;
    hk_pmap_t nm = {e, cap, 0, (unsigned)(64 - __builtin_ctzll(cap))};
    for (size_t i = 0; i < m->cap; i++)
        if (m->e[i].key)
            *pmap_slot(&nm, m->e[i].key) = m->e[i];
    prof_unmap(m->e, m->cap * sizeof *m->e);
    *m = nm;
    return true;
}

/* The sampled blocks: key = address, a = size, b = thread << 32 | stack,
 * c = the bytes it stands for (s / P(s)). */
static hk_pmap_t g_blocks;
/* The stacks: slots of a growing array (slot 0: the stack that counts
 * samples beyond the stack cap), indexed by hash (key = hash, a = slot). */
typedef struct {
    uint64_t hash;
    uint32_t depth;
    uint32_t live; /* live samples; 0 and free: `hash` links the free list */
    const void *frames[HK_PROF_DEPTH];
} hk_pstack_t;
_Static_assert(sizeof(hk_pstack_t) == 512, "a stack slot is 512 bytes");
static hk_pstack_t *g_stacks;
static size_t g_stacks_cap, g_stacks_used;
static uint64_t g_stack_free; /* free slot + 1; 0: none */
static size_t g_stacks_live;
static hk_pmap_t g_stack_index;
/* The estimate of allocated bytes (sum of s / P(s)), and the last peak a
 * dump was written at. */
static uint64_t g_est_bytes, g_peak_mark;
static bool g_warned_samples, g_warned_stacks;

static uint64_t hash_frames(const void *const *f, unsigned depth)
{
    uint64_t h = depth;
    for (unsigned i = 0; i < depth; i++)
        h = mix64(h ^ (uint64_t)(uintptr_t)f[i]);
    return h ? h : 1;
}

/* A free stack slot, growing the array; 0 (the overflow slot) at the cap
 * or without memory. */
static uint32_t stack_slot_new(void)
{
    if (g_stack_free) {
        uint32_t s = (uint32_t)(g_stack_free - 1);
        g_stack_free = g_stacks[s].hash;
        return s;
    }
    if (g_stacks_used == g_stacks_cap) {
        size_t cap = g_stacks_cap ? g_stacks_cap * 2 : 64;
        if (cap > HK_PROF_MAX_STACKS) {
            if (!g_warned_stacks) {
                g_warned_stacks = true;
                hk_warn("profiler: 32768 live stacks (the cap); samples from new stacks are counted under one "
                        "stack whose only frame is 0");
            }
            return 0;
        }
        hk_pstack_t *s = prof_map(cap * sizeof *s);
        if (!s)
            return 0;
        if (g_stacks)
            memcpy(s, g_stacks, g_stacks_used * sizeof *s);
        prof_unmap(g_stacks, g_stacks_cap * sizeof *s);
        g_stacks = s;
        g_stacks_cap = cap;
    }
    return (uint32_t)g_stacks_used++;
}

/* The slot of this stack (found or added), with one more live sample on
 * it; -1 if there is no memory for the table at all. */
static int64_t stack_ref(const void *const *frames, unsigned depth)
{
    uint64_t h = hash_frames(frames, depth);
    if (g_stack_index.e) {
        hk_pmap_t *m = &g_stack_index;
        for (size_t i = pmap_home(m, h); m->e[i].key; i = (i + 1) & (m->cap - 1)) {
            hk_pstack_t *s = &g_stacks[m->e[i].a];
            if (m->e[i].key == h && s->depth == depth && !memcmp(s->frames, frames, depth * sizeof *frames)) {
                s->live++;
                return (uint32_t)m->e[i].a;
            }
        }
    }
    if (!g_stacks_used) {
        /* Slot 0 first: the overflow stack. */
        if (stack_slot_new() != 0 || !g_stacks)
            return -1;
        g_stacks[0] = (hk_pstack_t){.hash = 0, .depth = 1, .live = 0, .frames = {NULL}};
    }
    uint32_t slot = pmap_reserve(&g_stack_index, 256) ? stack_slot_new() : 0;
    if (slot) {
        hk_pstack_t *s = &g_stacks[slot];
        s->hash = h;
        s->depth = depth;
        s->live = 0;
        memcpy(s->frames, frames, depth * sizeof *frames);
        pmap_slot(&g_stack_index, h)->a = slot;
        g_stacks_live++;
    }
    g_stacks[slot].live++;
    return slot;
}

static void stack_unref(uint32_t slot)
{
    hk_pstack_t *s = &g_stacks[slot];
    if (--s->live || slot == 0)
        return;
    hk_pmap_t *m = &g_stack_index;
    for (size_t i = pmap_home(m, s->hash); m->e[i].key; i = (i + 1) & (m->cap - 1))
        if (m->e[i].a == slot) {
            pmap_delete(m, &m->e[i]);
            break;
        }
    s->hash = g_stack_free;
    g_stack_free = (uint64_t)slot + 1;
    g_stacks_live--;
}

/* Remove a block's record (lock held). */
static void forget_entry(hk_pent_t *e)
{
    uint32_t slot = (uint32_t)e->b;
    g_est_bytes -= e->c;
    pmap_delete(&g_blocks, e);
    stack_unref(slot);
    atomic_fetch_sub_explicit(&g_hk_prof_live, 1, memory_order_relaxed);
}

/* ------------------------------------------------------------------------ */
/* The pool of sampled small blocks (see the header): chunks of 2 MiB, cut
 * from the front into slots of 1, 2, 4 or 8 pages (a block of up to 32 KiB
 * takes the smallest that holds it); freed slots on a stack per size, in a
 * mapping of their own, each always with room for every page of the pool
 * (a slot is a page at least). */
#define HK_POOL_CLASSES 4
#define HK_POOL_MAX (HK_PAGE_SIZE << (HK_POOL_CLASSES - 1))
#define HK_POOL_CHUNK_PAGES (HK_SS_SIZE / HK_PAGE_SIZE)
static uintptr_t g_pool_next, g_pool_end; /* the part of the last chunk not handed out yet */
static uintptr_t *g_pool_stacks;          /* HK_POOL_CLASSES stacks of g_pool_pages each */
static size_t g_pool_free_n[HK_POOL_CLASSES], g_pool_pages;
static uint64_t g_pool_live_bytes;

static unsigned pool_class(size_t size)
{
    size_t pages = (size + HK_PAGE_SIZE - 1) / HK_PAGE_SIZE;
    return pages <= 1 ? 0 : 64 - (unsigned)__builtin_clzll(pages - 1);
}

static uintptr_t *pool_stack(unsigned k) { return g_pool_stacks + k * g_pool_pages; }

/* A new chunk, and stacks that can hold all its pages too (lock held). */
static bool pool_grow(void)
{
    size_t pages = g_pool_pages + HK_POOL_CHUNK_PAGES;
    size_t bytes = HK_POOL_CLASSES * pages * sizeof(uintptr_t);
    uintptr_t *stacks = prof_map(bytes);
    void *chunk = stacks ? hk_os_map_aligned(HK_SS_SIZE, HK_SS_SIZE) : NULL;
    if (!chunk) {
        prof_unmap(stacks, bytes);
        return false;
    }
    atomic_fetch_add_explicit(&g_mapped, HK_SS_SIZE, memory_order_relaxed);
    for (unsigned k = 0; k < HK_POOL_CLASSES; k++)
        if (g_pool_free_n[k])
            memcpy(stacks + k * pages, pool_stack(k), g_pool_free_n[k] * sizeof *stacks);
    prof_unmap(g_pool_stacks, HK_POOL_CLASSES * g_pool_pages * sizeof(uintptr_t));
    g_pool_stacks = stacks;
    g_pool_pages = pages;
    hk_os_registry_set((uintptr_t)chunk, HK_SS_SIZE, HK_REG_SAMPLED);
    g_pool_next = (uintptr_t)chunk;
    g_pool_end = g_pool_next + HK_SS_SIZE;
    return true;
}

/* A slot of class k (lock held), or 0 without memory; *fresh: never handed
 * out, still zero. */
static uintptr_t pool_take(unsigned k, bool *fresh)
{
    size_t bytes = HK_PAGE_SIZE << k;
    *fresh = false;
    if (g_pool_free_n[k]) {
        g_pool_live_bytes += bytes;
        return pool_stack(k)[--g_pool_free_n[k]];
    }
    if (g_pool_end - g_pool_next < bytes && !pool_grow())
        return 0;
    *fresh = true;
    uintptr_t p = g_pool_next;
    g_pool_next += bytes;
    g_pool_live_bytes += bytes;
    return p;
}

static void pool_put(uintptr_t p, unsigned k)
{
    pool_stack(k)[g_pool_free_n[k]++] = p;
    g_pool_live_bytes -= HK_PAGE_SIZE << k;
}

/* Was p handed out by the pool (live or freed)? A page start below the
 * part of the last chunk not handed out yet. */
static bool pool_handed_out(uintptr_t p)
{
    if (p & (HK_PAGE_SIZE - 1))
        return false;
    return (p & ~HK_SS_MASK) != ((g_pool_end - 1) & ~HK_SS_MASK) || p < g_pool_next;
}

/* Record a sample of `size` bytes at p; p NULL: a page of the pool, taken
 * here. Returns the block (NULL if not recorded: the cap, or no memory;
 * the caller then allocates without recording). */
static void *record(void *p, size_t size, bool zero, const void *const *frames, unsigned depth)
{
    if (t_prof.in_lock) /* a signal handler's malloc on a thread inside the profiler */
        return p;
    if (!t_prof.tid)
        t_prof.tid = atomic_fetch_add_explicit(&g_next_tid, 1, memory_order_relaxed) + 1;
    uint64_t est = hk_prof_estimate_bytes(size, g_mean);
    int64_t slot;
    bool fresh = true, pooled = !p;
    void *block = p;
    prof_lock();
    if (g_blocks.n >= HK_PROF_MAX_SAMPLES) {
        if (!g_warned_samples) {
            g_warned_samples = true;
            hk_warn("profiler: 1048576 sampled blocks live (the cap); new samples are not recorded until some "
                    "are freed");
        }
    } else if (pmap_reserve(&g_blocks, 1024) && (!pooled || (p = (void *)pool_take(pool_class(size), &fresh))) &&
               (slot = stack_ref(frames, depth)) >= 0) {
        block = p;
        hk_pent_t *e = pmap_probe(&g_blocks, (uintptr_t)p);
        if (e->key) { /* a record a free from a signal handler could not remove */
            forget_entry(e);
            e = pmap_probe(&g_blocks, (uintptr_t)p);
        }
        e->key = (uintptr_t)p;
        g_blocks.n++;
        e->a = size;
        e->b = (uint64_t)t_prof.tid << 32 | (uint64_t)slot;
        e->c = est;
        atomic_fetch_add_explicit(&g_hk_prof_live, 1, memory_order_relaxed);
        g_est_bytes += est;
        if (g_peak_step && g_est_bytes >= g_peak_mark + g_peak_step) {
            g_peak_mark = g_est_bytes;
            int saved = errno;
            dump_locked(NULL);
            errno = saved;
        }
    } else if (pooled && p) {
        pool_put((uintptr_t)p, pool_class(size)); /* no room for its stack: back to the pool */
    }
    prof_unlock();
    if (block && pooled && zero && !fresh)
        memset(block, 0, size);
    return block;
}

/* The code of this library when it is a shared object, whose frames a
 * sample's stack skips at its start (an entry point that called its slow
 * path instead of jumping to it); empty when the library is linked into
 * the program. Found at the first sample (the loader's lock, once). */
static uintptr_t g_self_lo, g_self_hi;
static _Atomic int g_self_known;

static int self_range_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    uintptr_t at = (uintptr_t)arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) && at - lo < ph->p_memsz) {
            if (info->dlpi_name && info->dlpi_name[0]) { /* not the program itself */
                g_self_lo = lo;
                g_self_hi = lo + ph->p_memsz;
            }
            return 1;
        }
    }
    return 0;
}

static bool in_self(const void *ip)
{
    /* 0: not known, 1: being found by one thread (the others skip nothing
     * meanwhile: waiting for a thread that waits for the loader's lock
     * could wait for a thread inside dlopen that samples), 2: known. */
    int st = atomic_load_explicit(&g_self_known, memory_order_acquire);
    if (HK_UNLIKELY(st != 2)) {
        int expect = 0;
        if (st != 0 || !atomic_compare_exchange_strong(&g_self_known, &expect, 1))
            return false;
        dl_iterate_phdr(self_range_cb, (void *)(uintptr_t)hk_prof_alloc);
        atomic_store_explicit(&g_self_known, 2, memory_order_release);
    }
    return (uintptr_t)ip - g_self_lo < g_self_hi - g_self_lo;
}

/* Stacks are walked once the library's constructor has run: before, a
 * static program's C library may still be building the table of objects
 * the walk looks up (and allocates while it does), and libgcc may not know
 * the program's unwind tables yet. A sample taken earlier records the
 * frame that called the allocator only. */
static _Atomic bool g_walk_ok;
void hk_prof_startup_done(void) { atomic_store_explicit(&g_walk_ok, true, memory_order_release); }

void *hk_prof_alloc(size_t size, size_t align, bool zero, const void *anchor)
{
    t_prof.busy++;
    void *frames[HK_PROF_DEPTH + 16];
    int n = 1;
    frames[0] = (void *)anchor;
    if (atomic_load_explicit(&g_walk_ok, memory_order_acquire))
        n = hk_stack_capture(frames, HK_PROF_DEPTH + 16, 0);
    int start = 0;
    for (int i = 0; i < n && i < 16; i++)
        if (frames[i] == anchor) {
            start = i;
            break;
        }
    while (start + 1 < n && in_self(frames[start]))
        start++;
    int depth = n - start < HK_PROF_DEPTH ? n - start : HK_PROF_DEPTH;
    const void *const *stack = (const void *const *)frames + start;
    void *p = NULL;
    bool large = size > HK_POOL_MAX || align > HK_PAGE_SIZE;
    if (!large)
        p = record(NULL, size, zero, stack, (unsigned)depth);
    if (!p) { /* a large block, or the pool had no slot (it is then not recorded) */
        p = hk_large_alloc(size ? size : 1, align, zero);
        if (p && large)
            record(p, size, zero, stack, (unsigned)depth);
    }
    t_prof.busy--;
    return p;
}

bool hk_prof_forget(const void *p)
{
    if (t_prof.in_lock)
        return false;
    prof_lock();
    hk_pent_t *e = pmap_find(&g_blocks, (uintptr_t)p);
    if (e)
        forget_entry(e);
    prof_unlock();
    return e != NULL;
}

bool hk_prof_is_sampled(const void *p)
{
    if (t_prof.in_lock)
        return false;
    prof_lock();
    bool r = pmap_find(&g_blocks, (uintptr_t)p) != NULL;
    prof_unlock();
    return r;
}

void hk_prof_free_pooled(void *p)
{
    if (t_prof.in_lock) /* a signal handler's free inside the profiler: the page stays */
        return;
    prof_lock();
    hk_pent_t *e = pmap_find(&g_blocks, (uintptr_t)p);
    bool freed = pool_handed_out((uintptr_t)p);
    if (e) {
        unsigned k = pool_class(e->a);
        forget_entry(e);
        pool_put((uintptr_t)p, k);
    }
    prof_unlock();
    if (!e) {
        int saved = errno;
        if (freed)
            hk_report_misuse("double free", p, "sampled block is already free");
        else
            hk_report_misuse("invalid free", p, "not a block hakmem handed out");
        errno = saved;
    }
}

size_t hk_prof_usable_pooled(const void *p)
{
    if (t_prof.in_lock)
        return 0;
    prof_lock();
    hk_pent_t *e = pmap_find(&g_blocks, (uintptr_t)p);
    size_t usable = e ? HK_PAGE_SIZE << pool_class(e->a) : 0;
    prof_unlock();
    return usable;
}

bool hk_prof_owns_pooled(const void *p)
{
    if (t_prof.in_lock)
        return false;
    prof_lock();
    bool r = pool_handed_out((uintptr_t)p);
    prof_unlock();
    return r;
}

/* ------------------------------------------------------------------------ */
/* Dumps. */

static const void *const *stack_frames(const void *ctx, uint32_t stack, unsigned *depth)
{
    *depth = g_stacks[stack].depth;
    return g_stacks[stack].frames;
}

/* The innermost frame of each stack, copied for a snapshot that is read
 * after the lock is released (the leak summary). */
static const void *const *site_frames(const void *ctx, uint32_t stack, unsigned *depth)
{
    *depth = 1;
    return (const void *const *)ctx + stack;
}

/* The live samples, copied into a mapping of their own (lock held); with
 * `sites`, the innermost frame of every stack too, so that the snapshot
 * can be read without the lock. */
static bool snapshot_locked(hk_prof_snapshot_t *s, size_t *bytes, bool sites)
{
    *s = (hk_prof_snapshot_t){.mean = g_mean, .frames = stack_frames};
    *bytes = 0;
    if (!g_blocks.n)
        return true;
    size_t nsamples = hk_align_up(g_blocks.n * sizeof(hk_prof_sample_t), sizeof(void *));
    *bytes = hk_align_up(nsamples + (sites ? g_stacks_used * sizeof(void *) : 0), HK_PAGE_SIZE);
    s->samples = prof_map(*bytes);
    if (!s->samples)
        return false;
    for (size_t i = 0; i < g_blocks.cap; i++) {
        const hk_pent_t *e = &g_blocks.e[i];
        if (e->key)
            s->samples[s->n++] = (hk_prof_sample_t){(uint32_t)e->b, (uint32_t)(e->b >> 32), e->a};
    }
    if (sites) {
        const void **site = (const void **)((char *)s->samples + nsamples);
        for (size_t k = 0; k < g_stacks_used; k++)
            site[k] = g_stacks[k].depth ? g_stacks[k].frames[0] : NULL;
        s->frames = site_frames;
        s->ctx = site;
    }
    return true;
}

/* PREFIX.PID.SEQ.heap */
static void next_name(char *out, size_t cap)
{
    static uint64_t seq;
    hk_out_t o;
    hk_out_init_buf(&o, out, cap);
    hk_out_str(&o, g_prefix);
    hk_out_str(&o, ".");
    hk_out_u64(&o, (uint64_t)getpid());
    hk_out_str(&o, ".");
    hk_out_u64(&o, seq++);
    hk_out_str(&o, ".heap");
}

/* Write a profile to path (NULL: the next name). 0, or -1 with errno. */
static int dump_locked(const char *path)
{
    char name[HK_PROF_PATH_MAX + 48];
    if (!path) {
        next_name(name, sizeof name);
        path = name;
    }
    hk_prof_snapshot_t s;
    size_t bytes;
    if (!snapshot_locked(&s, &bytes, false)) {
        errno = ENOMEM;
        return -1;
    }
    int r = -1, fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
        r = hk_prof_write(fd, &s);
        int e = errno;
        if (close(fd) != 0 && r == 0) {
            r = -1;
            e = errno;
        }
        errno = e;
    }
    int e = errno;
    prof_unmap(s.samples, bytes);
    errno = e;
    return r;
}

HK_API int hakmem_prof_dump(const char *path)
{
    if (prof_state() != PROF_ON) {
        errno = ENOTSUP;
        return -1;
    }
    if (path && strlen(path) >= HK_PROF_PATH_MAX) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (t_prof.in_lock) {
        /* A signal handler interrupted this thread inside the profiler:
         * the thread writes the profile as it leaves. */
        int expect = 0;
        if (!atomic_compare_exchange_strong(&g_pending, &expect, 1)) {
            errno = EBUSY;
            return -1;
        }
        strcpy(g_pending_path, path ? path : "");
        atomic_store_explicit(&g_pending, 2, memory_order_release);
        return 0;
    }
    int saved = errno;
    prof_lock();
    int r = dump_locked(path);
    int e = errno;
    prof_unlock();
    errno = r ? e : saved;
    return r;
}

void hk_prof_at_exit(void)
{
    if (prof_state() != PROF_ON || (!g_final && !g_leak) || t_prof.in_lock)
        return;
    int saved = errno;
    char name[HK_PROF_PATH_MAX + 48];
    const char *where = NULL;
    hk_prof_snapshot_t s;
    size_t bytes;
    prof_lock();
    if (g_final) {
        next_name(name, sizeof name);
        if (dump_locked(name) == 0)
            where = name;
    }
    bool leak = g_leak && snapshot_locked(&s, &bytes, true);
    prof_unlock();
    /* Outside the lock: the line names its sites through the loader
     * (dladdr takes the loader's lock; a thread inside dlopen may be
     * waiting for ours). */
    if (leak) {
        hk_prof_leak_line(&s, where);
        prof_unmap(s.samples, bytes);
    }
    errno = saved;
}

void hk_prof_stats(uint64_t *bytes, uint64_t *samples, uint64_t *pooled)
{
    *bytes = atomic_load_explicit(&g_mapped, memory_order_relaxed);
    *samples = atomic_load_explicit(&g_hk_prof_live, memory_order_relaxed);
    *pooled = 0;
    if (!t_prof.in_lock) {
        prof_lock();
        *pooled = g_pool_live_bytes;
        prof_unlock();
    }
}

/* fork(): no table changes across it; the child's generator is its own. */
void hk_prof_fork_prepare(void) { prof_lock(); }
void hk_prof_fork_parent(void) { prof_unlock(); }
void hk_prof_fork_child(void)
{
    atomic_store_explicit(&g_pending, 0, memory_order_relaxed);
    atomic_store_explicit(&g_lock, 0, memory_order_release);
    t_prof.in_lock = 0;
    if (t_prof.rng)
        t_prof.rng = new_seed();
}
