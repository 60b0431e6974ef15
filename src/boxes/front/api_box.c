/* api_box: the prefixed API (hakmem_*), the out-of-line slow paths of
 * every entry point, and the library's constructor. See api_box.h. */
#include "hakmem_internal.h"
#include "front/api_box.h"
#include "base/diag_box.h"
#include "base/misuse_box.h"
#include "hakmem.h"
#include "backend/ss_allocation_box.h"
#include "base/superslab_stats.h"
#include "front/ss_hot_prewarm_box.h"
#include "front/thread_box.h"
#include "backend/ss_release_policy_box.h"
#include "front/background_box.h"
#include "heap/census_box.h"
#include "front/guard_box.h"
#include "backend/medium_box.h"

#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

/* A block above HK_SMALL_MAX (or one no size class can align): a medium
 * block up to HK_MEDIUM_MAX where page alignment is enough (medium blocks
 * are page-aligned), else a mapping of its own. NULL + ENOMEM. */
static void *big_alloc_as(size_t size, size_t align, bool zero, bool growing)
{
    if (size > HK_MEDIUM_MAX || align > HK_PAGE_SIZE)
        return growing ? hk_large_alloc_growing(size) : hk_large_alloc(size ? size : 1, align, zero);
    /* The registry must exist (a first allocation may be this one). */
    if (HK_UNLIKELY(!g_hk_reg_limit) && hk_global_init() != 0) {
        errno = ENOMEM;
        return NULL;
    }
    size_t s = size > HK_SMALL_MAX ? size : HK_SMALL_MAX + 1;
    void *p = growing ? hk_medium_alloc_growing(s) : hk_medium_alloc(s, zero);
    if (HK_UNLIKELY(!p) && hk_release_cached() > 0) /* cached ranges held address space (RLIMIT_AS) */
        p = growing ? hk_medium_alloc_growing(s) : hk_medium_alloc(s, zero);
    if (!p)
        errno = ENOMEM;
    return p;
}

static void *big_alloc(size_t size, size_t align, bool zero) { return big_alloc_as(size, align, zero, false); }

/* The usable size of a live medium or large block (by its registry kind). */
static size_t big_usable(void *p, unsigned kind)
{
    return kind == HK_REG_MEDIUM ? hk_medium_usable(p) : hk_large_usable(p);
}

void *hk_debug_small_alloc(size_t size, size_t align)
{
    /* Room for the canary (one byte at least) and the trailer: the class
     * of size + HK_DEBUG_SLACK, or a medium or large block with them at
     * its end. */
    if (size > HK_MAX_REQUEST)
        return hk_large_alloc(size, align, false); /* ENOMEM */
    size_t total = size + HK_DEBUG_SLACK;
    int cls = total > HK_SMALL_MAX ? -1
              : align > 16         ? hk_class_for_aligned(total, align)
                                   : (int)hk_size_to_class(total);
    if (cls >= 0) {
        void *p = hk_alloc_class((unsigned)cls);
        if (p)
            hk_debug_canary_set(p, hk_class_size((unsigned)cls), size);
        return p;
    }
    void *p = big_alloc(total, align, false);
    if (p)
        hk_debug_canary_set(p, big_usable(p, hk_os_registry_kind((uintptr_t)p)), size);
    return p;
}

/* The debug library: a medium or large block's requested size, its canary
 * checked (a profiler's sample has none; 0 if p is no live block). */
static size_t debug_big_check(void *p, unsigned kind, bool sampled)
{
    size_t u = big_usable(p, kind);
    return u && !sampled ? hk_debug_canary_check_large(p, u) : u;
}

void *hk_malloc_slow(size_t size)
{
    if (config_debug)
        return hk_debug_small_alloc(size, 0);
    if (size <= HK_SMALL_MAX)
        return hk_alloc_class(hk_size_to_class(size));
    return big_alloc(size, 0, false);
}

/* Medium frees between two purge ticks (a clock read each). */
#define HK_MEDIUM_TICK_EVERY 64
static __thread uint32_t hk_tls_medium_frees;

void hk_free_other(void *p, unsigned kind)
{
    if (!p)
        return;
    if (kind == HK_REG_SAMPLED) {
        hk_prof_free_pooled(p);
        return;
    }
    if (kind == HK_REG_GUARDED) {
        hk_guard_free(p);
        return;
    }
    if (kind == HK_REG_MEDIUM) {
        if (config_debug)
            debug_big_check(p, kind, false);
        int m = hk_medium_free(p);
        if (HK_LIKELY(m == HK_MEDIUM_FREED)) {
            if (HK_UNLIKELY(++hk_tls_medium_frees % HK_MEDIUM_TICK_EVERY == 0))
                hk_idle_tick();
            return;
        }
        int saved = errno;
        if (m == HK_MEDIUM_ALREADY_FREE)
            hk_report_misuse("double free", p, "block is already free");
        else
            hk_report_misuse("invalid free", p, "not the start of a block hakmem handed out");
        errno = saved;
        return;
    }
    /* A large block may be a sample: its record goes before the block, so
     * that no other thread's sample at the same address can be taken for
     * it. */
    bool sampled = kind == HK_REG_LARGE && hk_prof_may_own() && hk_prof_is_sampled(p);
    if (config_debug && kind == HK_REG_LARGE)
        debug_big_check(p, kind, sampled);
    if (kind == HK_REG_LARGE && hk_prof_may_own())
        hk_prof_forget(p);
    /* Not in a range of ours: a large or medium block freed a while ago
     * whose range went back to the OS (trim, the purge delay, eviction) is
     * still named a double free. */
    int r = kind == HK_REG_LARGE      ? hk_large_free(p)
            : hk_large_recently_freed(p) ? HK_LARGE_ALREADY_FREE
                                         : HK_LARGE_NOT_OURS;
    if (r == HK_LARGE_FREED) {
        hk_idle_tick(); /* the purge delay, on the allocator's own calls */
        return;
    }
    int saved = errno;
    if (r == HK_LARGE_ALREADY_FREE)
        hk_report_misuse("double free", p, kind == HK_REG_LARGE ? "large block is already free" : "block is already free");
    else
        hk_report_misuse("invalid free", p, "not a block hakmem handed out");
    errno = saved;
}

size_t hk_usable_other(void *p, unsigned kind)
{
    if (!p)
        return 0;
    if (kind == HK_REG_GUARDED) {
        size_t s = hk_guard_usable(p);
        if (s)
            return s;
    }
    if (kind == HK_REG_LARGE || kind == HK_REG_MEDIUM || kind == HK_REG_SAMPLED) {
        size_t s = kind == HK_REG_SAMPLED ? hk_prof_usable_pooled(p)
                   : config_debug        ? debug_big_check(p, kind, kind == HK_REG_LARGE && hk_prof_may_own() && hk_prof_is_sampled(p))
                                         : big_usable(p, kind);
        if (s)
            return s;
    }
    int saved = errno;
    hk_report_misuse("malloc_usable_size", p, "not a block hakmem handed out");
    errno = saved;
    return 0;
}

void *hk_calloc_slow(size_t total)
{
    if (config_debug) {
        /* With a canary, like every block of the debug library. */
        void *p = hk_debug_small_alloc(total, 0);
        if (p)
            memset(p, 0, total);
        return p;
    }
    /* Fresh pages are already zero: the medium and large boxes clear only
     * reused ones. */
    return big_alloc(total, 0, true);
}

void *hk_alloc_aligned(size_t align, size_t size, bool zero)
{
    if (size > HK_MAX_REQUEST || align > HK_MAX_REQUEST) {
        errno = ENOMEM;
        return NULL;
    }
    if (align <= 16) {
        void *p = hk_malloc_untracked(size);
        if (p && zero)
            memset(p, 0, size);
        return p;
    }
    if (config_debug) {
        void *p = hk_debug_small_alloc(size, align);
        if (p && zero)
            memset(p, 0, size);
        return p;
    }
    if (size <= HK_SMALL_MAX) {
        /* A class whose block size is a multiple of align: every block of
         * it is aligned, because slabs are 64 KiB-aligned. */
        int cls = hk_class_for_aligned(size, align);
        if (cls >= 0) {
            void *p = hk_alloc_class((unsigned)cls);
            if (p && zero)
                memset(p, 0, size);
            return p;
        }
    }
    return big_alloc(size, align, zero);
}

void *hk_realloc_impl(void *p, size_t size, const void *sample)
{
    if (!p)
        return sample ? hk_prof_alloc(size, 0, false, sample) : hk_malloc_untracked(size);
    if (size == 0) {
        /* glibc: realloc(p, 0) frees p and returns NULL. */
        hk_api_free(p);
        return NULL;
    }
    if (size > HK_MAX_REQUEST) {
        errno = ENOMEM;
        return NULL;
    }
    unsigned kind = hk_os_registry_kind((uintptr_t)p);
    size_t old;
    if (kind == HK_REG_SUPERSLAB) {
        /* The free tag is read below, after the slab's metadata: ask for
         * both lines at once (a growing buffer is written at its end, so
         * its first line is seldom in cache). */
        __builtin_prefetch(p);
        old = hk_small_usable(p);
        /* A block of malloc(0) has usable size 0 in the debug build. */
        bool block = old || hk_small_is_block(p);
        if (!block || ((hk_block_t *)p)->tag == hk_block_secret(p)) {
            /* Not a block start, or a free block: handing it back in place
             * would let the caller's writes overwrite the free list. */
            if (block)
                hk_report_misuse("realloc after free", p, "block is already free");
            else
                hk_free_misuse(p, HK_MISUSE_INVALID);
            errno = ENOMEM;
            return NULL;
        }
        /* Stay in place if it fits and would not waste more than half
         * (unless the new block is a sample: it moves to one). */
        if (size <= old && (size > old / 2 || old <= 16) && !sample)
            return p;
    } else if (kind == HK_REG_MEDIUM) {
        old = config_debug ? debug_big_check(p, kind, false) : hk_medium_usable(p);
        if (!old) {
            if (hk_medium_was_freed(p))
                hk_report_misuse("realloc after free", p, "block is already free");
            else
                hk_report_misuse("invalid realloc", p, "not a block hakmem handed out");
            errno = ENOMEM;
            return NULL;
        }
        /* Not in place when the new block is a sample: it moves to one;
         * nor in the debug library: the new block gets its canary. */
        if (size <= old && size > old / 2 && !sample && !config_debug)
            return p;
        /* In place where the pages behind are free (growing: a quarter
         * more, as below), or giving its tail pages back to the region. */
        if (size > HK_SMALL_MAX && size <= HK_MEDIUM_MAX && !sample && !config_debug) {
            size_t roomy = size > old && old + old / 4 > size ? old + old / 4 : size;
            if (roomy > HK_MEDIUM_MAX)
                roomy = HK_MEDIUM_MAX;
            if (hk_medium_resize(p, roomy) || (roomy != size && hk_medium_resize(p, size)))
                return p;
        }
    } else if (kind == HK_REG_LARGE) {
        /* One lookup: in place (also a size a class could serve, if the
         * mapping fits it without wasting half: a buffer that crossed into
         * a mapping with room to spare must not bounce back to a class and
         * out again at every step), by mremap, or the block's size. But a
         * sample, or a sampled block, moves: for the profiler a realloc is
         * a new allocation, each sampled by its own size. */
        bool sampled = hk_prof_may_own() && hk_prof_is_sampled(p);
        /* The debug library's blocks move too: each new block gets its
         * canary, after the old one's was checked. */
        bool moves = sample || sampled || config_debug;
        void *q = moves ? NULL : hk_large_realloc(p, size, &old);
        if (moves)
            old = config_debug ? debug_big_check(p, kind, sampled) : hk_large_usable(p);
        if (q) {
            if (q != p)
                hk_idle_tick(); /* p was freed: the purge delay, as at a free */
            return q;
        }
        if (!old) {
            if (!hk_large_was_freed(p))
                goto foreign;
            hk_report_misuse("realloc after free", p, "large block is already free");
            errno = ENOMEM;
            return NULL;
        }
    } else if (kind == HK_REG_GUARDED) {
        /* A guarded block moves to an ordinary one. */
        old = hk_guard_usable(p);
        if (!old) {
            hk_guard_free(p); /* names the misuse, touches nothing */
            errno = ENOMEM;
            return NULL;
        }
    } else if (kind == HK_REG_SAMPLED) {
        /* A sampled block of the profiler's pool: it moves, as above. */
        old = hk_prof_usable_pooled(p);
        if (!old) {
            if (!hk_prof_owns_pooled(p))
                goto foreign;
            hk_report_misuse("realloc after free", p, "sampled block is already free");
            errno = ENOMEM;
            return NULL;
        }
    } else {
        goto foreign;
    }
    /* A block that grows gets a quarter more room, so a buffer growing
     * step by step is copied a logarithmic number of times, and a small one
     * skips a class or two (they are 12.5 % apart: a string that grows by
     * a few bytes a step would be copied at every one of them). */
    size_t want = size;
    if (size > old && old + old / 4 > size && old + old / 4 <= HK_MAX_REQUEST && !sample)
        want = old + old / 4;
    /* A block that grows past the small classes is placed where it can
     * grow further in place (a medium one with free pages behind it, a
     * mapping with cached pages behind it). */
    void *q = sample                               ? hk_prof_alloc(size, 0, false, sample)
              : want > HK_SMALL_MAX && want > old && !config_debug ? big_alloc_as(want, 0, false, true)
                                                  : hk_malloc_untracked(want);
    if (!q && want != size)
        q = hk_malloc_untracked(size);
    if (!q)
        return NULL;
    memcpy(q, p, old < size ? old : size);
    hk_api_free(p);
    return q;

foreign:
    /* Its size is unknown (the memory is never read): nothing can be
     * copied. The block is left as it is. */
    if (hk_large_recently_freed(p))
        hk_report_misuse("realloc after free", p, "block is already free"); /* large or medium */
    else
        hk_report_misuse("invalid realloc", p, "not a block hakmem handed out");
    errno = ENOMEM;
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* The profiler's countdown ran out (api_box.h). The return address of
 * these is where the sample's stack starts: the program's, when the entry
 * point jumped here, else the entry point's (prof_box skips the library's
 * own frames after it). */

/* The profiler is off (hk_prof_sample_now answered no and left the
 * countdown off): guarded sampling, if on, sets it again, and says whether
 * this allocation is guarded. Every *_ticked path asks, so that the
 * countdown never stays off while guarded sampling is on. */
HK_NOINLINE void *hk_malloc_ticked(size_t size)
{
    if (hk_prof_sample_now(size))
        return hk_prof_alloc(size, 0, false, __builtin_return_address(0));
    if (hk_guard_sample_now(size)) {
        void *p = hk_guard_alloc(size, false, __builtin_return_address(0));
        if (p)
            return p;
    }
    return hk_malloc_untracked(size);
}

HK_NOINLINE void *hk_calloc_ticked(size_t total)
{
    if (hk_prof_sample_now(total))
        return hk_prof_alloc(total, 0, true, __builtin_return_address(0));
    if (hk_guard_sample_now(total)) {
        void *p = hk_guard_alloc(total, true, __builtin_return_address(0));
        if (p)
            return p;
    }
    return hk_calloc_untracked(total);
}

HK_NOINLINE void *hk_aligned_ticked(size_t align, size_t size)
{
    if (size > HK_MAX_REQUEST || align > HK_MAX_REQUEST) {
        errno = ENOMEM;
        return NULL;
    }
    if (hk_prof_sample_now(size))
        return hk_prof_alloc(size, align, false, __builtin_return_address(0));
    hk_guard_sample_now(size); /* (aligned blocks are not guarded) */
    return hk_alloc_aligned(align, size, false);
}

HK_NOINLINE void *hk_realloc_ticked(void *p, size_t size)
{
    if (hk_prof_sample_now(size))
        return hk_realloc_impl(p, size, __builtin_return_address(0));
    hk_guard_sample_now(size); /* (realloc's blocks are not guarded) */
    return hk_realloc_impl(p, size, NULL);
}

/* ------------------------------------------------------------------------ */
/* The prefixed API. */

HK_API void *hakmem_malloc(size_t size) { return hk_api_malloc(size); }
HK_API void hakmem_free(void *p) { hk_api_free(p); }
HK_API void *hakmem_calloc(size_t n, size_t size) { return hk_api_calloc(n, size); }
HK_API void *hakmem_realloc(void *p, size_t size) { return hk_api_realloc(p, size); }
HK_API void *hakmem_reallocarray(void *p, size_t n, size_t size) { return hk_api_reallocarray(p, n, size); }
HK_API int hakmem_posix_memalign(void **memptr, size_t align, size_t size)
{
    return hk_api_posix_memalign(memptr, align, size);
}
HK_API void *hakmem_aligned_alloc(size_t align, size_t size) { return hk_api_aligned_alloc(align, size); }
HK_API void *hakmem_memalign(size_t align, size_t size) { return hk_api_memalign(align, size); }
HK_API void *hakmem_valloc(size_t size) { return hk_api_valloc(size); }
HK_API void *hakmem_pvalloc(size_t size) { return hk_api_pvalloc(size); }
HK_API size_t hakmem_malloc_usable_size(void *p) { return hk_api_usable(p); }
HK_API void hakmem_free_sized(void *p, size_t size) { hk_api_free(p); }
HK_API void hakmem_free_aligned_sized(void *p, size_t align, size_t size) { hk_api_free(p); }

/* Give back what is kept for reuse: freed large ranges; every heap's
 * slabs and superslabs that other threads emptied (an idle owner's too);
 * what was freed into abandoned superslabs; empty superslabs; in LEAN the
 * unused slabs waiting to be given back. Blocks in use stay. 1 if any
 * memory went back, as glibc answers. The debug build then recounts the
 * gauges. */
HK_API int hakmem_malloc_trim(size_t pad)
{
    /* The debug library proves around it that nothing was stranded. */
    bool census = config_debug && hk_census_begin();
    size_t released = hk_medium_trim();
    released += hk_large_trim();
    released += hk_heap_trim_all();
    released += superslab_trim();
    if (census)
        hk_census_end();
    hk_check_gauges();
    return released > 0;
}

HK_API int hakmem_owns(const void *p)
{
    unsigned kind = hk_os_registry_kind((uintptr_t)p);
    if (kind == HK_REG_SUPERSLAB)
        return hk_small_is_block(p); /* not the usable size: malloc(0)'s is 0 in the debug build */
    if (kind == HK_REG_LARGE)
        return hk_large_usable(p) != 0;
    if (kind == HK_REG_MEDIUM)
        return hk_medium_usable(p) != 0;
    if (kind == HK_REG_SAMPLED)
        return hk_prof_owns_pooled(p);
    if (kind == HK_REG_GUARDED)
        return hk_guard_usable(p) != 0;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Statistics. */

void hk_stats_view(hk_stats_view_t *v)
{
    hk_census_t c;
    hk_heap_census(&c);
    struct hakmem_stats *s = &v->s;
    hk_stats_fill_gauges(s);
    uint64_t large = hk_large_live_bytes();
    hk_medium_stats_t m;
    hk_medium_stats(&m);
    s->large_live_bytes = large;
    s->medium_live = m.live;
    s->medium_live_bytes = m.live_bytes;
    s->medium_regions = m.regions;
    s->medium_cached_bytes = m.free_bytes;
    s->bytes_allocated = c.allocated + m.live_bytes + large;
    s->bytes_active = c.active + m.live_bytes + large;
    s->bytes_cached = s->ss_cached * HK_SS_SIZE + s->large_cached_bytes + m.free_bytes;
    s->bytes_retained = s->bytes_mapped > s->bytes_committed ? s->bytes_mapped - s->bytes_committed : 0;
    /* What is touched at most: active pages, what is cached, and the
     * header page of each superslab and medium region; never above
     * committed. */
    uint64_t res = s->bytes_active + s->bytes_cached + (s->ss_live + s->ss_decommitted + m.regions) * HK_PAGE_SIZE;
    s->bytes_resident = res < s->bytes_committed ? res : s->bytes_committed;
    s->slabs_in_use = c.slabs;
    s->heaps_live = c.heaps_live;
    s->ss_abandoned = c.ss_abandoned;
    /* The profiler's pooled samples are blocks in use too, a page each. */
    uint64_t pooled;
    hk_prof_stats(&s->prof_bytes, &s->prof_samples, &pooled);
    hk_guard_stats(&s->guard_samples, &s->guard_skipped);
    s->bytes_allocated += pooled;
    s->bytes_active += pooled;
    for (unsigned k = 0; k < HK_NUM_CLASSES; k++) {
        v->cls[k].block_size = hk_class_size(k);
        v->cls[k].blocks_in_use = c.cls_blocks[k];
        v->cls[k].slabs = c.cls_slabs[k];
    }
}

HK_API int hakmem_stats_get(struct hakmem_stats *out, size_t size)
{
    /* Callers built against the first, shorter struct get its fields. */
    if (!out || size < offsetof(struct hakmem_stats, bytes_active)) {
        errno = EINVAL;
        return -1;
    }
    hk_stats_view_t v;
    hk_stats_view(&v);
    memcpy(out, &v.s, size < sizeof v.s ? size : sizeof v.s);
    return 0;
}

HK_API int hakmem_stats_classes(struct hakmem_class_stats *out, size_t n)
{
    if (n) {
        hk_stats_view_t v;
        hk_stats_view(&v);
        for (size_t k = 0; k < n; k++) {
            if (k < HK_NUM_CLASSES)
                out[k] = v.cls[k];
            else
                memset(&out[k], 0, sizeof out[k]);
        }
    }
    return HK_NUM_CLASSES;
}

static void stats_to_fd(int fd, bool json)
{
    int saved = errno;
    hk_stats_view_t v;
    hk_out_t o;
    hk_stats_view(&v);
    hk_out_init_fd(&o, fd);
    if (json)
        hk_stats_write_json(&o, &v);
    else
        hk_stats_write_human(&o, &v);
    hk_out_flush(&o);
    errno = saved;
}

HK_API void hakmem_stats_print(int fd) { stats_to_fd(fd, false); }
HK_API void hakmem_stats_print_json(int fd) { stats_to_fd(fd, true); }

HK_API size_t hakmem_stats_json(char *buf, size_t size)
{
    hk_stats_view_t v;
    hk_out_t o;
    hk_stats_view(&v);
    hk_out_init_buf(&o, buf, size);
    hk_stats_write_json(&o, &v);
    return hk_out_flush(&o);
}

/* The file HAKMEM_STATS names, with each %p replaced by the process id
 * (several processes of one program would otherwise overwrite one file).
 * false if the result does not fit. */
static bool stats_file_name(const char *tmpl, char *out, size_t n)
{
    hk_msg_t pid = {.len = 0};
    hk_msg_u64(&pid, (uint64_t)getpid());
    size_t len = 0;
    for (const char *s = tmpl; *s; s++) {
        bool subst = s[0] == '%' && s[1] == 'p';
        const char *add = subst ? pid.buf : s;
        size_t k = subst ? pid.len : 1;
        if (len + k >= n)
            return false;
        memcpy(out + len, add, k);
        len += k;
        s += subst;
    }
    out[len] = '\0';
    return true;
}

void hk_stats_at_exit(void)
{
    int64_t how = hk_opt(HK_OPT_STATS);
    bool human = hk_opt(HK_OPT_SS_OS_STATS) != 0 || how == HK_STATS_HUMAN;
    if (!human && how == HK_STATS_OFF)
        return;
    int saved = errno;
    if (human)
        stats_to_fd(2, false);
    if (how == HK_STATS_JSON) {
        stats_to_fd(2, true);
    } else if (how == HK_STATS_FILE) {
        char path[PATH_MAX];
        int fd = -1;
        if (stats_file_name(hk_opt_str(HK_OPT_STATS), path, sizeof path))
            fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            hk_msg_t m = {.len = 0};
            hk_msg_str(&m, "hakmem: warning: HAKMEM_STATS: cannot write ");
            hk_msg_str(&m, hk_opt_str(HK_OPT_STATS));
            hk_msg_flush(&m);
        } else {
            stats_to_fd(fd, true);
            close(fd);
        }
    }
    errno = saved;
}

HK_API const char *hakmem_version(void) { return PACKAGE_VERSION; }
HK_API const char *hakmem_variant(void) { return config_variant_name; }

/* Init and prewarm at load time, before main, so the first timed loop of a
 * program finds its memory resident. Prewarm allocates through this
 * thread's heap, so it runs here, after init and with the thread started,
 * not inside init. */
__attribute__((constructor(101))) static void hakmem_load(void)
{
    hk_prof_startup_done();
    if (hk_global_init() == 0 && !ss_release_lean() && hk_thread_start())
        box_ss_hot_prewarm_all();
}

/* At exit: the profiler's final profile and leak summary, the statistics
 * if asked (HAKMEM_SS_OS_STATS, HAKMEM_STATS), and the debug build's
 * recount of the gauges. */
__attribute__((destructor)) static void hakmem_unload(void)
{
    hk_prof_at_exit();
    hk_stats_at_exit();
    hk_check_gauges();
}
