/* ss_hot_prewarm_box: start-up prewarm. See the header. */
#include "hakmem_internal.h"
#include "front/ss_hot_prewarm_box.h"
#include "base/env_box.h"
#include "front/thread_box.h"
#include "heap/heap_box.h"
#include "backend/ss_allocation_box.h"
#include "backend/ss_release_policy_box.h"

int box_ss_hot_prewarm_all(void)
{
    /* LEAN: no prewarm; memory is committed only when asked for. */
    if (ss_release_lean())
        return 0;
    int done = 0;
    /* Whole superslabs first (opt-in), so the hot slabs below land in them. */
    for (int64_t i = 0; i < hk_opt(HK_OPT_PREWARM_SS); i++) {
        if (superslab_prewarm_one() != 0)
            break;
        done++;
    }
    size_t max = (size_t)hk_opt(HK_OPT_PREWARM_CLASS_MAX);
    if (max > HK_SMALL_MAX)
        max = HK_SMALL_MAX;
    if (max == 0)
        return done;
    /* One block per hot class, freed at once: the slab stays (a heap keeps
     * the last slab of each class) with its first page carved. */
    for (unsigned cls = 0; cls <= hk_size_to_class(max); cls++) {
        void *p = hk_small_alloc(cls, hk_thread_start);
        if (!p)
            break;
        if (config_debug) /* a block of the debug library, as any */
            hk_debug_canary_set(p, hk_class_size(cls), 0);
        hk_small_free(p);
        done++;
    }
    return done;
}
