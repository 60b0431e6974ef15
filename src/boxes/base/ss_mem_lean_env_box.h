/* ss_mem_lean_env_box (env box, LEAN part): the three LEAN settings as the
 * original design names them. Header-only: in the FAST-only build
 * config_lean is a false constant and every call folds to its FAST answer.
 *   HAKMEM_SS_MEM_LEAN=0/1                   LEAN on/off (build default)
 *   HAKMEM_SS_MEM_LEAN_TARGET_MB=N           LEAN budget, MiB (default 10)
 *   HAKMEM_SS_MEM_LEAN_DECOMMIT=FREE|DONTNEED|OFF  (configure's default)
 * Parsing (once, lazily, thread-safe, without the heap) is env_box's. */
#ifndef HAKMEM_SS_MEM_LEAN_ENV_BOX_H
#define HAKMEM_SS_MEM_LEAN_ENV_BOX_H

#include "hakmem_internal.h"
#include "base/env_box.h"

typedef hk_decommit_mode_t ss_mem_lean_decommit_mode_t;

static inline int ss_mem_lean_enabled(void)
{
    return config_lean && hk_opt(HK_OPT_SS_MEM_LEAN) != 0;
}

static inline int ss_mem_lean_target_mb(void)
{
    return config_lean ? (int)hk_opt(HK_OPT_LEAN_TARGET_MB) : 0;
}

static inline ss_mem_lean_decommit_mode_t ss_mem_lean_decommit_mode(void)
{
    return config_lean ? (ss_mem_lean_decommit_mode_t)hk_opt(HK_OPT_LEAN_DECOMMIT) : HK_DECOMMIT_OFF;
}

#endif
