/* env_box: the settings table and its parser. See env_box.h. */
#include "hakmem_internal.h"
#include "base/env_box.h"
#include "base/diag_box.h"

#include <stdlib.h>
#include <string.h>

typedef enum { HK_KIND_BOOL, HK_KIND_UINT, HK_KIND_ENUM } hk_opt_kind_t;

typedef struct {
    const char *name;
    hk_opt_kind_t kind;
    int64_t def;
    int64_t max;               /* HK_KIND_UINT: largest accepted value */
    const char *const *names;  /* HK_KIND_ENUM: accepted words, NULL-terminated */
    const char *help;
} hk_opt_desc_t;

static const char *const decommit_names[] = {"FREE", "DONTNEED", "OFF", NULL};
static const char *const errno_names[] = {"ENOMEM", "EINVAL", NULL};

/* Defaults that depend on the build are filled in by hk_env_init(). */
static hk_opt_desc_t g_opts[HK_OPT_COUNT] = {
    [HK_OPT_VERBOSE] = {"HAKMEM_VERBOSE", HK_KIND_BOOL, 0, 1, NULL, "print the settings at start-up"},
    [HK_OPT_SS_MEM_LEAN] = {"HAKMEM_SS_MEM_LEAN", HK_KIND_BOOL, 0, 1, NULL, "LEAN mode (memory first)"},
    /* The default is the release policy's (SS_RELEASE_TARGET_MB_DEFAULT),
     * set through hk_opt_set_default() before the first parse. */
    [HK_OPT_LEAN_TARGET_MB] = {"HAKMEM_SS_MEM_LEAN_TARGET_MB", HK_KIND_UINT, 0, 1 << 20, NULL,
                               "LEAN: keep empty superslabs only while the footprint is under this (MiB)"},
    [HK_OPT_LEAN_DECOMMIT] = {"HAKMEM_SS_MEM_LEAN_DECOMMIT", HK_KIND_ENUM, 0, 2, decommit_names,
                              "LEAN: how pages are given back"},
    [HK_OPT_SS_OS_STATS] = {"HAKMEM_SS_OS_STATS", HK_KIND_BOOL, 0, 1, NULL, "print the counters at exit"},
    [HK_OPT_PREWARM_SS] = {"HAKMEM_PREWARM_SS", HK_KIND_UINT, 0, 64, NULL,
                           "FAST: whole superslabs (2 MiB each) made resident at start-up"},
    [HK_OPT_PREWARM_CLASS_MAX] = {"HAKMEM_PREWARM_CLASS_MAX", HK_KIND_UINT, 1024, (int64_t)HK_SMALL_MAX, NULL,
                                  "FAST: classes up to this size get a resident first page at start-up"},
    [HK_OPT_LARGE_CACHE_MB] = {"HAKMEM_LARGE_CACHE_MB", HK_KIND_UINT, 256, 1 << 20, NULL,
                               "freed large blocks kept mapped for reuse (MiB)"},
    [HK_OPT_FAULT_MMAP] = {"HAKMEM_FAULT_MMAP", HK_KIND_UINT, 0, INT64_MAX, NULL,
                           "debug: the Nth mmap fails (0 = never)"},
    [HK_OPT_FAULT_MADVISE] = {"HAKMEM_FAULT_MADVISE", HK_KIND_UINT, 0, INT64_MAX, NULL,
                              "debug: the Nth madvise fails (0 = never)"},
    [HK_OPT_FAULT_MADVISE_ERRNO] = {"HAKMEM_FAULT_MADVISE_ERRNO", HK_KIND_ENUM, 0, 1, errno_names,
                                    "debug: the errno of the injected madvise failure"},
};

static int64_t g_values[HK_OPT_COUNT];
static bool g_set[HK_OPT_COUNT];
/* 0 = not parsed, 1 = parsing, 2 = parsed. */
static _Atomic int g_env_state;

static void bad_value(const hk_opt_desc_t *d, const char *v, const char *expect)
{
    hk_msg_t m = {.len = 0};
    hk_msg_str(&m, "hakmem: warning: ");
    hk_msg_str(&m, d->name);
    hk_msg_str(&m, "='");
    hk_msg_str(&m, v);
    hk_msg_str(&m, "' is not ");
    hk_msg_str(&m, expect);
    hk_msg_str(&m, "; using the default (");
    if (d->kind == HK_KIND_ENUM)
        hk_msg_str(&m, d->names[d->def]);
    else
        hk_msg_u64(&m, (uint64_t)d->def);
    hk_msg_str(&m, ")");
    hk_msg_flush(&m);
}

static bool parse_uint(const char *s, int64_t max, int64_t *out)
{
    if (!*s)
        return false;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > (uint64_t)max)
            return false;
    }
    *out = (int64_t)v;
    return true;
}

static void parse_one(hk_opt_t i)
{
    const hk_opt_desc_t *d = &g_opts[i];
    g_values[i] = d->def;
    const char *v = getenv(d->name);
    if (!v)
        return;
    int64_t x;
    switch (d->kind) {
    case HK_KIND_BOOL:
        if (strcmp(v, "0") == 0 || strcmp(v, "1") == 0) {
            g_values[i] = v[0] - '0';
            g_set[i] = true;
        } else {
            bad_value(d, v, "0 or 1");
        }
        return;
    case HK_KIND_UINT:
        if (parse_uint(v, d->max, &x)) {
            g_values[i] = x;
            g_set[i] = true;
        } else {
            bad_value(d, v, "a non-negative integer in range");
        }
        return;
    case HK_KIND_ENUM:
        for (int k = 0; d->names[k]; k++) {
            if (strcasecmp(v, d->names[k]) == 0) {
                g_values[i] = k;
                g_set[i] = true;
                return;
            }
        }
        bad_value(d, v, d->names == decommit_names ? "FREE, DONTNEED or OFF" : "ENOMEM or EINVAL");
        return;
    }
}

void hk_env_init(void)
{
    int expect = 0;
    if (atomic_load_explicit(&g_env_state, memory_order_acquire) == 2)
        return;
    if (!atomic_compare_exchange_strong(&g_env_state, &expect, 1)) {
        /* Another thread is parsing: wait; parsing takes microseconds. */
        while (atomic_load_explicit(&g_env_state, memory_order_acquire) != 2)
            ;
        return;
    }
    /* Build-dependent defaults. */
    g_opts[HK_OPT_SS_MEM_LEAN].def = config_lean && config_lean_default_on;
    g_opts[HK_OPT_LEAN_DECOMMIT].def = config_default_decommit;
    for (int i = 0; i < HK_OPT_COUNT; i++)
        parse_one((hk_opt_t)i);
    atomic_store_explicit(&g_env_state, 2, memory_order_release);
}

void hk_opt_set_default(hk_opt_t which, int64_t def)
{
    g_opts[which].def = def;
    /* Already parsed (a setting was read before init): the value follows,
     * unless the environment gave one. */
    if (atomic_load_explicit(&g_env_state, memory_order_acquire) == 2 && !g_set[which])
        g_values[which] = def;
}

int64_t hk_opt(hk_opt_t which)
{
    if (HK_UNLIKELY(atomic_load_explicit(&g_env_state, memory_order_acquire) != 2))
        hk_env_init();
    return g_values[which];
}

bool hk_opt_is_set(hk_opt_t which)
{
    hk_opt(which);
    return g_set[which];
}

void hk_env_dump(void)
{
    hk_msg_t m = {.len = 0};
    hk_msg_str(&m, "hakmem: variant ");
    hk_msg_str(&m, config_variant_name);
    hk_msg_str(&m, config_lean ? ", lean code built in" : ", lean not built in");
    hk_msg_str(&m, config_stats ? ", stats built in" : ", stats not built in");
    hk_msg_flush(&m);
    for (int i = 0; i < HK_OPT_COUNT; i++) {
        const hk_opt_desc_t *d = &g_opts[i];
        hk_msg_str(&m, "hakmem: ");
        hk_msg_str(&m, d->name);
        hk_msg_str(&m, "=");
        if (d->kind == HK_KIND_ENUM)
            hk_msg_str(&m, d->names[hk_opt((hk_opt_t)i)]);
        else
            hk_msg_u64(&m, (uint64_t)hk_opt((hk_opt_t)i));
        hk_msg_str(&m, g_set[i] ? " (set)  # " : " (default)  # ");
        hk_msg_str(&m, d->help);
        hk_msg_flush(&m);
    }
}
