/* hakmem_config.h: compile-time configuration as constants.
 *
 * configure writes 0/1 macros into config.h (platform facts, build-wide
 * defaults); each variant's header in variants/ (force-included) says which
 * variant a translation unit belongs to. This header turns both into
 * `static const` values so code tests them with a plain `if`: dead branches
 * vanish, yet every variant compiles and type-checks all the code.
 *
 * Name spaces: config_* = chosen at configure time / by the variant,
 * have_* = platform fact. Run-time settings are not here: they are read
 * with hk_opt(HK_OPT_*) (src/boxes/base/env_box.h).
 */
#ifndef HAKMEM_CONFIG_H
#define HAKMEM_CONFIG_H

#include "config.h"
#include <stdbool.h>

#ifndef HAKMEM_VARIANT_NAME
#error "a variants/<name>.h header must be force-included (-include)"
#endif
#ifndef HAKMEM_VARIANT_LEAN
#define HAKMEM_VARIANT_LEAN 0
#endif
#ifndef HAKMEM_VARIANT_DEBUG
#define HAKMEM_VARIANT_DEBUG 0
#endif
#ifndef HAKMEM_VARIANT_STATS
#ifdef HAKMEM_SS_STATS
#define HAKMEM_VARIANT_STATS HAKMEM_SS_STATS
#else
#define HAKMEM_VARIANT_STATS 0
#endif
#endif
#ifndef HAKMEM_LEAN_DEFAULT_ON
#define HAKMEM_LEAN_DEFAULT_ON 0
#endif
#ifndef HAKMEM_DEFAULT_DECOMMIT
#define HAKMEM_DEFAULT_DECOMMIT 0 /* 0 = FREE, 1 = DONTNEED, 2 = OFF */
#endif
#ifndef HAKMEM_INTERNAL_COPY
#define HAKMEM_INTERNAL_COPY 0
#endif

/* The LEAN code is compiled in (LEAN-capable and debug builds). */
static const bool config_lean = HAKMEM_VARIANT_LEAN || HAKMEM_VARIANT_DEBUG;
/* LEAN is the run-time default when HAKMEM_SS_MEM_LEAN is unset
 * (--enable-lean=on; the LEAN-capable library only, never debug). */
static const bool config_lean_default_on = HAKMEM_VARIANT_LEAN && HAKMEM_LEAN_DEFAULT_ON;
/* Every check on: assertions, junk fill, misuse aborts. */
static const bool config_debug = HAKMEM_VARIANT_DEBUG;
/* OS / superslab counters compiled in (--enable-ss-stats). */
static const bool config_stats = HAKMEM_VARIANT_STATS;
/* Default decommit strategy of the LEAN-capable build (--with-decommit). */
static const int config_default_decommit = HAKMEM_DEFAULT_DECOMMIT;
/* This copy does not replace malloc (unit-test library). */
static const bool config_internal_copy = HAKMEM_INTERNAL_COPY;

static const bool have_madv_free = HAVE_MADV_FREE_FLAG;
static const bool have_mremap = HAVE_MREMAP_CALL;
/* The profiler's own stack walk (stack_box): x86-64 frames, tables found
 * with _dl_find_object; elsewhere libgcc's unwinder walks. */
#if defined(__x86_64__)
#define HK_ARCH_X86_64 1
#else
#define HK_ARCH_X86_64 0
#endif
static const bool have_cfi_walk = HK_ARCH_X86_64 && HAVE_DL_FIND_OBJECT_CALL;

static const char config_variant_name[] = HAKMEM_VARIANT_NAME;

#if HAKMEM_VARIANT_LEAN && HAKMEM_VARIANT_DEBUG
#error "a variant is either lean or debug (debug already carries the lean code)"
#endif

#endif /* HAKMEM_CONFIG_H */
