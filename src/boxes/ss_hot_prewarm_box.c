/* ss_hot_prewarm_box: start-up prewarm of superslabs. See the header. */
#include "hakmem_internal.h"
#include "ss_hot_prewarm_box.h"
#include "env_box.h"
#include "ss_mem_lean_env_box.h"
#include "ss_allocation_box.h"

int box_ss_hot_prewarm_all(void)
{
    /* LEAN: no prewarm; memory is committed only when asked for. */
    if (ss_mem_lean_enabled())
        return 0;
    int n = (int)hk_opt(HK_OPT_PREWARM_SS);
    int done = 0;
    for (int i = 0; i < n; i++) {
        if (superslab_prewarm_one() != 0)
            break;
        done++;
    }
    return done;
}
