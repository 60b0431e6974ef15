/* madvise_guard_box: guarded madvise. See the header. */
#include "hakmem_internal.h"
#include "os/madvise_guard_box.h"
#include "base/env_box.h"
#include "os/ss_registry_box.h"
#include "base/superslab_stats.h"

#include <errno.h>

static _Atomic bool g_madvise_off;     /* ENOMEM seen: fail fast from now on */
static _Atomic bool g_free_refused;    /* EINVAL to MADV_FREE seen */
static _Atomic uint64_t g_madvise_seq; /* debug fault injection */

bool hk_os_madvise_disabled(void) { return atomic_load_explicit(&g_madvise_off, memory_order_relaxed); }
bool hk_os_madv_free_refused(void) { return atomic_load_explicit(&g_free_refused, memory_order_relaxed); }

/* Debug builds: should this call fail, and with which errno? */
static int injected_errno(void)
{
    if (!config_debug)
        return 0;
    int64_t n = hk_opt(HK_OPT_FAULT_MADVISE);
    if (n <= 0 || atomic_fetch_add_explicit(&g_madvise_seq, 1, memory_order_relaxed) + 1 != (uint64_t)n)
        return 0;
    return hk_opt(HK_OPT_FAULT_MADVISE_ERRNO) == 1 ? EINVAL : ENOMEM;
}

int ss_os_madvise_guarded(void *p, size_t size, hk_advice_t advice)
{
    uintptr_t a = (uintptr_t)p;
    if (size == 0 || (a & (HK_PAGE_SIZE - 1)) || (size & (HK_PAGE_SIZE - 1)) ||
        !hk_os_registry_covers_superslabs(a, size)) {
        HK_STAT_INC(madvise_guard_refusals);
        return -1;
    }
    if (hk_os_madvise_disabled())
        return -1;
    if (advice == HK_ADVICE_FREE && (hk_os_madv_free_refused() || !have_madv_free))
        advice = HK_ADVICE_DONTNEED;

    for (;;) {
        int err = injected_errno();
        int r;
        if (err) {
            HK_STAT_INC(madvise_calls);
            HK_STAT_INC(madvise_failures);
            r = -1;
        } else {
            r = hk_os_madvise_raw(p, size, advice, &err);
        }
        if (r == 0)
            return 0;
        if (err == EINVAL && advice == HK_ADVICE_FREE) {
            /* An old kernel without MADV_FREE: use DONTNEED from now on. */
            atomic_store_explicit(&g_free_refused, true, memory_order_relaxed);
            advice = HK_ADVICE_DONTNEED;
            continue;
        }
        if (err == ENOMEM)
            atomic_store_explicit(&g_madvise_off, true, memory_order_relaxed);
        return -1;
    }
}
