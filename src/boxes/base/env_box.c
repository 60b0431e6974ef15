/* env_box: the settings table and its parser. See env_box.h. */
#include "hakmem_internal.h"
#include "base/env_box.h"
#include "base/cgroup_box.h"
#include "base/diag_box.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

extern char **environ;

typedef enum {
    HK_KIND_BOOL,   /* 1/0, true/false, yes/no, on/off */
    HK_KIND_INT,    /* a signed integer in [min, max] */
    HK_KIND_SIZE,   /* N[K|M|G], a bare N in `unit` bytes; [min, max] in units */
    HK_KIND_BUDGET, /* a size, or auto, or N% of the cgroup's memory limit */
    HK_KIND_ENUM,   /* one of `names`, any case */
    HK_KIND_STR,    /* free text (a path), up to HK_STR_MAX - 1 bytes */
    HK_KIND_OUT,    /* where output goes: hk_stats_out_t, a file's name as the string */
} hk_opt_kind_t;

/* Where a setting has an effect. */
typedef enum { HK_IN_ALL, HK_IN_LEAN, HK_IN_DEBUG } hk_opt_scope_t;

typedef struct {
    const char *name;  /* the HAKMEM_* variable */
    const char *key;   /* its key in HAKMEM_CONF */
    const char *alias; /* a second accepted key, or NULL */
    hk_opt_kind_t kind;
    int64_t def, min, max; /* in units */
    int64_t unit;          /* SIZE/BUDGET: bytes per unit */
    const char *const *names;
    hk_opt_scope_t scope;
    const char *help;
} hk_opt_desc_t;

static const char *const decommit_names[] = {"FREE", "DONTNEED", "OFF", NULL};
static const char *const errno_names[] = {"ENOMEM", "EINVAL", NULL};

#define MiB ((int64_t)1 << 20)
#define HK_STR_MAX 256
/* LEAN's budget under `auto`: this share of the cgroup's memory limit. */
#define HK_BUDGET_AUTO_PERCENT 5

/* The one table. Build-dependent defaults are filled in by hk_env_init(). */
static hk_opt_desc_t g_opts[HK_OPT_COUNT] = {
    [HK_OPT_VERBOSE] = {"HAKMEM_VERBOSE", "verbose", NULL, HK_KIND_BOOL, 0, 0, 1, 1, NULL, HK_IN_ALL,
                        "print the version and every setting at start-up"},
    [HK_OPT_SS_MEM_LEAN] = {"HAKMEM_SS_MEM_LEAN", "lean", NULL, HK_KIND_BOOL, 0, 0, 1, 1, NULL, HK_IN_LEAN,
                            "LEAN mode (memory first)"},
    /* The default is the release policy's (SS_RELEASE_TARGET_MB_DEFAULT),
     * set through hk_opt_set_default() before the first parse; so is the
     * purge delay's (by mode: HK_PURGE_DELAY_BY_MODE). */
    [HK_OPT_LEAN_TARGET_MB] = {"HAKMEM_SS_MEM_LEAN_TARGET_MB", "lean_target_mb", "lean_target", HK_KIND_BUDGET, 0,
                               0, 1 << 20, MiB, NULL, HK_IN_LEAN,
                               "LEAN budget: empty memory is kept only while the footprint is under it "
                               "(MiB, or auto = 5% or N% of the cgroup's memory limit)"},
    [HK_OPT_LEAN_DECOMMIT] = {"HAKMEM_SS_MEM_LEAN_DECOMMIT", "decommit", NULL, HK_KIND_ENUM, 0, 0, 2, 1,
                              decommit_names, HK_IN_LEAN, "LEAN: how pages are given back"},
    [HK_OPT_SS_OS_STATS] = {"HAKMEM_SS_OS_STATS", "os_stats", NULL, HK_KIND_BOOL, 0, 0, 1, 1, NULL, HK_IN_ALL,
                            "print the statistics (human form) to stderr at exit"},
    [HK_OPT_STATS] = {"HAKMEM_STATS", "stats", NULL, HK_KIND_OUT, HK_STATS_OFF, 0, 0, 1, NULL, HK_IN_ALL,
                      "at exit: on/human (human form to stderr), json (JSON to stderr), file:NAME or a "
                      "path with a '/' (JSON into that file; %p is the process id), off"},
    [HK_OPT_PREWARM_SS] = {"HAKMEM_PREWARM_SS", "prewarm_ss", NULL, HK_KIND_INT, 0, 0, 64, 1, NULL, HK_IN_ALL,
                           "FAST: whole superslabs (2 MiB each) made resident at start-up"},
    [HK_OPT_PREWARM_CLASS_MAX] = {"HAKMEM_PREWARM_CLASS_MAX", "prewarm_class_max", NULL, HK_KIND_SIZE, 1024, 0,
                                  (int64_t)HK_SMALL_MAX, 1, NULL, HK_IN_ALL,
                                  "FAST: classes up to this size get a resident first page at start-up (bytes)"},
    [HK_OPT_THP] = {"HAKMEM_THP", "thp", NULL, HK_KIND_BOOL, 0, 0, 1, 1, NULL, HK_IN_ALL,
                    "superslabs asked to be transparent huge pages (MADV_HUGEPAGE where the system's "
                    "THP mode is madvise); LEAN then gives back only whole superslabs"},
    [HK_OPT_LARGE_CACHE_MB] = {"HAKMEM_LARGE_CACHE_MB", "large_cache_mb", NULL, HK_KIND_SIZE, 256, 0, 1 << 20, MiB,
                               NULL, HK_IN_ALL, "freed large blocks kept mapped for reuse (MiB)"},
    [HK_OPT_PURGE_DELAY_MS] = {"HAKMEM_PURGE_DELAY_MS", "purge_delay_ms", NULL, HK_KIND_INT, HK_PURGE_DELAY_BY_MODE, -1, 3600000, 1,
                               NULL, HK_IN_ALL,
                               "memory kept for reuse goes back after this long unused (ms; -1 never, 0 at once)"},
    [HK_OPT_BACKGROUND] = {"HAKMEM_BACKGROUND", "background", NULL, HK_KIND_BOOL, 0, 0, 1, 1, NULL, HK_IN_ALL,
                           "a background thread applies the purge delay while the program is quiet"},
    [HK_OPT_CGROUP_ROOT] = {"HAKMEM_CGROUP_ROOT", "cgroup_root", NULL, HK_KIND_STR, 0, 0, 0, 1, NULL, HK_IN_LEAN,
                            "where the cgroup tree is mounted (default /sys/fs/cgroup; a fake tree in tests)"},
    [HK_OPT_SYSFS_ROOT] = {"HAKMEM_SYSFS_ROOT", "sysfs_root", NULL, HK_KIND_STR, 0, 0, 0, 1, NULL, HK_IN_ALL,
                           "where sysfs is mounted, for the THP mode (default /sys; a fake tree in tests)"},
    [HK_OPT_PROF] = {"HAKMEM_PROF", "prof", NULL, HK_KIND_BOOL, 0, 0, 1, 1, NULL, HK_IN_ALL,
                     "the sampled heap profiler: profiles that jeprof reads"},
    [HK_OPT_PROF_SAMPLE] = {"HAKMEM_PROF_SAMPLE", "prof_sample", NULL, HK_KIND_SIZE, 512 * 1024, 1, (int64_t)1 << 40, 1,
                            NULL, HK_IN_ALL, "profiler: mean bytes allocated between two samples"},
    [HK_OPT_PROF_FINAL] = {"HAKMEM_PROF_FINAL", "prof_final", NULL, HK_KIND_BOOL, 0, 0, 1, 1, NULL, HK_IN_ALL,
                           "profiler: write a profile at exit"},
    [HK_OPT_PROF_LEAK] = {"HAKMEM_PROF_LEAK", "prof_leak", NULL, HK_KIND_BOOL, 0, 0, 1, 1, NULL, HK_IN_ALL,
                          "profiler: at exit, one line on what is estimated still allocated, by top site"},
    [HK_OPT_PROF_PREFIX] = {"HAKMEM_PROF_PREFIX", "prof_prefix", NULL, HK_KIND_STR, 0, 0, 0, 1, NULL, HK_IN_ALL,
                            "profiler: profiles are PREFIX.PID.SEQ.heap (default hakmem, in the current directory)"},
    [HK_OPT_PROF_PEAK_STEP] = {"HAKMEM_PROF_PEAK_STEP", "prof_peak_step", NULL, HK_KIND_SIZE, 0, 0, (int64_t)1 << 50, 1,
                               NULL, HK_IN_ALL,
                               "profiler: a profile whenever the estimated allocated bytes pass their last peak by "
                               "this much (bytes; 0 never)"},
    [HK_OPT_FAULT_MMAP] = {"HAKMEM_FAULT_MMAP", "fault_mmap", NULL, HK_KIND_INT, 0, 0, INT64_MAX, 1, NULL,
                           HK_IN_DEBUG, "debug: the Nth mmap fails (0 = never)"},
    [HK_OPT_FAULT_MADVISE] = {"HAKMEM_FAULT_MADVISE", "fault_madvise", NULL, HK_KIND_INT, 0, 0, INT64_MAX, 1, NULL,
                              HK_IN_DEBUG, "debug: the Nth madvise fails (0 = never)"},
    [HK_OPT_FAULT_MADVISE_ERRNO] = {"HAKMEM_FAULT_MADVISE_ERRNO", "fault_madvise_errno", NULL, HK_KIND_ENUM, 0, 0,
                                    1, 1, errno_names, HK_IN_DEBUG,
                                    "debug: the errno of the injected madvise failure"},
};

/* Names that are not settings but are not misspellings either: the
 * settings string itself, and the variables of hakmem's own test suite. */
static bool reserved_name(const char *name, size_t len)
{
    return (len == 11 && memcmp(name, "HAKMEM_CONF", 11) == 0) || (len >= 12 && memcmp(name, "HAKMEM_TEST_", 12) == 0);
}

typedef enum { HK_SRC_DEFAULT, HK_SRC_BUILD, HK_SRC_CONF, HK_SRC_ENV } hk_src_t;
static const char *const src_names[] = {"default", "--with-conf", "HAKMEM_CONF", "environment"};

static int64_t g_values[HK_OPT_COUNT];
static int64_t g_bytes[HK_OPT_COUNT];
static hk_src_t g_src[HK_OPT_COUNT];
static char g_strs[HK_OPT_COUNT][HK_STR_MAX];
/* LEAN's budget from the cgroup: how it was derived (the dump shows it). */
static char g_budget_origin[HK_STR_MAX];
/* 0 = not parsed, 1 = parsing, 2 = parsed. */
static _Atomic int g_env_state;

static const char g_build_conf[] = HAKMEM_BUILD_CONF;
/* Defaults that a box above describes in words (hk_opt_set_default_text). */
static const char *g_def_text[HK_OPT_COUNT];

/* ------------------------------------------------------------------------ */
/* Warnings. */

/* Where a value came from, as the warning names it. */
static void say_origin(hk_msg_t *m, const hk_opt_desc_t *d, hk_src_t src)
{
    if (src == HK_SRC_ENV) {
        hk_msg_str(m, d->name);
        hk_msg_str(m, "=");
    } else {
        hk_msg_str(m, src == HK_SRC_CONF ? "HAKMEM_CONF " : "built-in conf (--with-conf) ");
        hk_msg_str(m, d->key);
        hk_msg_str(m, ":");
    }
}

static void say_range(hk_msg_t *m, const hk_opt_desc_t *d, const char *v)
{
    size_t vl = strlen(v);
    if (d->kind == HK_KIND_BUDGET && vl && v[vl - 1] == '%') {
        /* A share asked for: its range first. */
        hk_msg_str(m, "1% to 100% of the cgroup's memory limit (or auto, or a size in MiB)");
        return;
    }
    switch (d->kind) {
    case HK_KIND_BOOL:
        hk_msg_str(m, "1/0, true/false, yes/no or on/off");
        return;
    case HK_KIND_INT:
    case HK_KIND_SIZE:
    case HK_KIND_BUDGET:
        hk_msg_str(m, d->kind == HK_KIND_INT ? "an integer from " : "a size from ");
        if (d->min < 0) {
            hk_msg_str(m, "-");
            hk_msg_u64(m, (uint64_t)-d->min);
        } else {
            hk_msg_u64(m, (uint64_t)d->min);
        }
        hk_msg_str(m, " to ");
        hk_msg_u64(m, (uint64_t)d->max);
        if (d->kind != HK_KIND_INT)
            hk_msg_str(m, d->unit == MiB ? " MiB (suffix K, M or G for other units" : " bytes (suffix K, M or G");
        if (d->kind == HK_KIND_BUDGET)
            hk_msg_str(m, "; or auto, or 1% to 100% of the cgroup's memory limit");
        if (d->kind != HK_KIND_INT)
            hk_msg_str(m, ")");
        return;
    case HK_KIND_ENUM:
        for (int k = 0; d->names[k]; k++) {
            if (k)
                hk_msg_str(m, d->names[k + 1] ? ", " : " or ");
            hk_msg_str(m, d->names[k]);
        }
        return;
    case HK_KIND_STR:
        hk_msg_str(m, "at most 255 bytes");
        return;
    case HK_KIND_OUT:
        /* A bare word is refused: HAKMEM_STATS=stats.json would otherwise
         * be read as a file, and 1 or on were, once. */
        hk_msg_str(m, "on/off (or another boolean), human, json, file:NAME or a path with a '/'");
        return;
    }
}

static const char *const out_names[] = {"off", "human", "json", "file:"};

static void say_value(hk_msg_t *m, const hk_opt_desc_t *d, int64_t v)
{
    if (g_def_text[d - g_opts] && v == d->def) {
        /* A default that a box above describes (the purge delay's). */
        hk_msg_str(m, "the default (");
        hk_msg_str(m, g_def_text[d - g_opts]);
        hk_msg_str(m, ")");
        return;
    }
    if (d->kind == HK_KIND_ENUM) {
        hk_msg_str(m, d->names[v]);
    } else if (d->kind == HK_KIND_OUT) {
        hk_msg_str(m, out_names[v]);
        if (v == HK_STATS_FILE)
            hk_msg_str(m, g_strs[d - g_opts]);
    } else if (d->kind == HK_KIND_STR) {
        hk_msg_str(m, "\"\"");
    } else if (v < 0) {
        hk_msg_str(m, "-");
        hk_msg_u64(m, (uint64_t)-v);
    } else {
        hk_msg_u64(m, (uint64_t)v);
        if (d->unit == MiB)
            hk_msg_str(m, " MiB");
    }
}

static void bad_value(const hk_opt_desc_t *d, hk_src_t src, const char *v, int64_t keep)
{
    hk_msg_t m = {.len = 0};
    hk_msg_str(&m, "hakmem: warning: ");
    say_origin(&m, d, src);
    hk_msg_str(&m, "'");
    hk_msg_str(&m, v);
    hk_msg_str(&m, "' is not valid: allowed ");
    say_range(&m, d, v);
    hk_msg_str(&m, "; using ");
    say_value(&m, d, keep);
    hk_msg_flush(&m);
}

/* Edit distance, case-insensitive, names up to 63 bytes (longer ones are
 * cut: they are far from every name anyway). */
static unsigned distance(const char *a, size_t la, const char *b)
{
    unsigned row[64];
    size_t lb = strlen(b);
    if (la > 63)
        la = 63;
    if (lb > 63)
        lb = 63;
    for (size_t j = 0; j <= lb; j++)
        row[j] = (unsigned)j;
    for (size_t i = 1; i <= la; i++) {
        unsigned diag = row[0];
        row[0] = (unsigned)i;
        for (size_t j = 1; j <= lb; j++) {
            unsigned up = row[j];
            unsigned cost = ((a[i - 1] | 32) == (b[j - 1] | 32)) ? 0 : 1;
            unsigned best = diag + cost;
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* One warning naming an unknown key or variable and the closest known one.
 * A name is measured against every setting's variable, key and alias, the
 * part after HAKMEM_ of a variable against the keys too, and the closest
 * is named in the form asked for (a variable for a variable, a key for a
 * key): the obvious guesses HAKMEM_LEAN and HAKMEM_CONF=SS_MEM_LEAN:1 then
 * find their setting. */
static void unknown_name(const char *what, const char *name, size_t len, bool env)
{
    const char *best = NULL;
    unsigned bd = ~0u;
    const char *tail = name;
    size_t tlen = len;
    if (env && len > 7) {
        tail += 7; /* after "HAKMEM_" */
        tlen -= 7;
    }
    for (int i = 0; i < HK_OPT_COUNT; i++) {
        const hk_opt_desc_t *d = &g_opts[i];
        const char *cands[3] = {d->name, d->key, d->alias};
        for (int k = 0; k < 3; k++) {
            if (!cands[k])
                continue;
            /* A variable's name against the name in full (or, for a key
             * that does not start with HAKMEM_, against SS_MEM_LEAN); a key
             * against a variable's tail. */
            bool full = env || (len >= 7 && strncasecmp(name, "HAKMEM_", 7) == 0);
            unsigned dd = k ? distance(tail, tlen, cands[k]) : distance(name, len, cands[k] + (full ? 0 : 7));
            if (dd < bd) {
                bd = dd;
                best = env ? d->name : (k == 2 ? d->alias : d->key);
            }
        }
    }
    hk_msg_t m = {.len = 0};
    char tmp[96];
    size_t n = len < sizeof tmp - 1 ? len : sizeof tmp - 1;
    memcpy(tmp, name, n);
    tmp[n] = '\0';
    hk_msg_str(&m, "hakmem: warning: ");
    hk_msg_str(&m, what);
    hk_msg_str(&m, " '");
    hk_msg_str(&m, tmp);
    hk_msg_str(&m, "' is not a hakmem setting (ignored); the closest is ");
    hk_msg_str(&m, best);
    hk_msg_flush(&m);
}

/* ------------------------------------------------------------------------ */
/* Values. */

static bool parse_bool(const char *s, int64_t *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"}, *const no[] = {"0", "false", "no", "off"};
    for (int k = 0; k < 4; k++) {
        if (strcasecmp(s, yes[k]) == 0) {
            *out = 1;
            return true;
        }
        if (strcasecmp(s, no[k]) == 0) {
            *out = 0;
            return true;
        }
    }
    return false;
}

/* Digits into *out, no overflow; returns the first byte after them. */
static const char *parse_digits(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (*s < '0' || *s > '9')
        return NULL;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (UINT64_MAX - 9) / 10)
            return NULL;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return s;
}

static bool parse_int(const char *s, int64_t *out)
{
    bool neg = *s == '-';
    uint64_t v;
    const char *e = parse_digits(s + neg, &v);
    if (!e || *e || v > (uint64_t)INT64_MAX)
        return false;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return true;
}

/* A size: bytes into *out. A bare number counts in `unit`; K, M, G (also
 * KB/KiB, ..., any case) are powers of 1024, B is bytes. */
static bool parse_size(const char *s, int64_t unit, int64_t *out)
{
    uint64_t v;
    const char *e = parse_digits(s, &v);
    if (!e)
        return false;
    uint64_t mul = (uint64_t)unit;
    if (*e) {
        static const char *const suf[] = {"B", "K", "KB", "KiB", "M", "MB", "MiB", "G", "GB", "GiB"};
        static const uint64_t mult[] = {1, 1 << 10, 1 << 10, 1 << 10, 1 << 20, 1 << 20, 1 << 20, 1 << 30, 1 << 30, 1 << 30};
        mul = 0;
        for (int k = 0; k < 10; k++)
            if (strcasecmp(e, suf[k]) == 0)
                mul = mult[k];
        if (!mul)
            return false;
    }
    if (v && mul > (uint64_t)INT64_MAX / v)
        return false;
    *out = (int64_t)(v * mul);
    return true;
}

/* LEAN's budget from the cgroup: `auto` or N% (1..100). false if s is
 * neither; else *out is the budget in bytes, or -1 if the cgroup sets no
 * limit (the caller keeps the previous value). */
static bool parse_share(const char *s, int64_t *out)
{
    uint64_t pct;
    if (strcasecmp(s, "auto") == 0) {
        pct = HK_BUDGET_AUTO_PERCENT;
    } else {
        const char *e = parse_digits(s, &pct);
        if (!e || strcmp(e, "%") != 0 || pct < 1 || pct > 100)
            return false;
    }
    char where[200];
    int64_t lim = hk_cgroup_memory_limit(g_strs[HK_OPT_CGROUP_ROOT], where, sizeof where);
    hk_msg_t m = {.len = 0};
    hk_msg_u64(&m, pct);
    hk_msg_str(&m, "% of ");
    if (lim < 0) {
        hk_msg_str(&m, "the cgroup's memory limit: none (");
        hk_msg_str(&m, where);
        hk_msg_str(&m, "), so the fixed figure");
        *out = -1;
    } else {
        hk_msg_u64(&m, (uint64_t)lim >> 20);
        hk_msg_str(&m, " MiB from ");
        hk_msg_str(&m, where);
        *out = (int64_t)((uint64_t)lim / 100 * pct);
    }
    m.buf[m.len] = '\0';
    memcpy(g_budget_origin, m.buf, m.len + 1);
    return true;
}

/* Parse value v for setting i from source src; on success store it. */
static bool take(int i, const char *v, hk_src_t src)
{
    const hk_opt_desc_t *d = &g_opts[i];
    int64_t x = 0, bytes = 0;
    bool ok = false;
    switch (d->kind) {
    case HK_KIND_BOOL:
        ok = parse_bool(v, &x);
        break;
    case HK_KIND_INT:
        ok = parse_int(v, &x) && x >= d->min && x <= d->max;
        break;
    case HK_KIND_BUDGET:
        if (parse_share(v, &bytes)) {
            if (bytes < 0)
                return true; /* no limit: the value below stays */
            x = bytes / d->unit;
            ok = x <= d->max;
            break;
        }
        __attribute__((fallthrough)); /* a plain size */
    case HK_KIND_SIZE:
        ok = parse_size(v, d->unit, &bytes) && bytes / d->unit >= d->min && bytes <= d->max * d->unit;
        x = bytes / d->unit;
        if (ok && d->kind == HK_KIND_BUDGET)
            g_budget_origin[0] = '\0';
        break;
    case HK_KIND_ENUM:
        for (int k = 0; d->names[k]; k++)
            if (strcasecmp(v, d->names[k]) == 0) {
                x = k;
                ok = true;
            }
        break;
    case HK_KIND_STR: {
        size_t n = strlen(v);
        ok = n < HK_STR_MAX;
        if (ok)
            memcpy(g_strs[i], v, n + 1);
        break;
    }
    case HK_KIND_OUT: {
        /* Only an unambiguous form names a file: file:NAME, or a path. */
        const char *file = strncasecmp(v, "file:", 5) == 0 && v[5] ? v + 5 : strchr(v, '/') ? v : NULL;
        if (file) {
            size_t n = strlen(file);
            ok = n < HK_STR_MAX;
            if (ok)
                memcpy(g_strs[i], file, n + 1);
            x = HK_STATS_FILE;
            break;
        }
        ok = true;
        if (strcasecmp(v, "human") == 0)
            x = HK_STATS_HUMAN;
        else if (strcasecmp(v, "json") == 0)
            x = HK_STATS_JSON;
        else if (*v) /* a boolean: on is the human form, off is nothing */
            ok = parse_bool(v, &x);
        if (ok)
            g_strs[i][0] = '\0';
        break;
    }
    }
    if (!ok) {
        bad_value(d, src, v, g_values[i]);
        return false;
    }
    g_values[i] = x;
    g_bytes[i] = (d->kind == HK_KIND_SIZE || d->kind == HK_KIND_BUDGET) ? bytes : x;
    g_src[i] = src;
    return true;
}

/* ------------------------------------------------------------------------ */
/* The settings string: "key:value,key:value". Keys must be known (a
 * warning names the closest one otherwise). pass: which settings to take
 * (the cgroup root first, so that a budget in the same string sees it). */
static int find_key(const char *k, size_t n)
{
    for (int i = 0; i < HK_OPT_COUNT; i++) {
        const char *a = g_opts[i].key, *b = g_opts[i].alias;
        if ((strlen(a) == n && strncasecmp(a, k, n) == 0) || (b && strlen(b) == n && strncasecmp(b, k, n) == 0))
            return i;
    }
    return -1;
}

/* "lean=1" (or "HAKMEM_SS_MEM_LEAN=1") inside the string: a variable's
 * form where a key:value belongs. Says how to write it; false if the name
 * before '=' is no setting's (then it is an unknown key). */
static bool wrong_form(const char *what, const char *p, size_t len)
{
    const char *eq = memchr(p, '=', len);
    if (!eq)
        return false;
    size_t kl = (size_t)(eq - p);
    while (kl && (p[kl - 1] == ' ' || p[kl - 1] == '\t'))
        kl--;
    int i = find_key(p, kl);
    for (int k = 0; k < HK_OPT_COUNT && i < 0; k++)
        if (strlen(g_opts[k].name) == kl && strncasecmp(g_opts[k].name, p, kl) == 0)
            i = k;
    if (i < 0)
        return false;
    char entry[96], value[64];
    size_t el = len < sizeof entry - 1 ? len : sizeof entry - 1, vl = len - (size_t)(eq + 1 - p);
    if (vl > sizeof value - 1)
        vl = sizeof value - 1;
    memcpy(entry, p, el);
    entry[el] = '\0';
    memcpy(value, eq + 1, vl);
    value[vl] = '\0';
    hk_msg_t m = {.len = 0};
    hk_msg_str(&m, "hakmem: warning: ");
    hk_msg_str(&m, what);
    hk_msg_str(&m, " '");
    hk_msg_str(&m, entry);
    hk_msg_str(&m, "' is not key:value (ignored); write ");
    hk_msg_str(&m, g_opts[i].key);
    hk_msg_str(&m, ":");
    hk_msg_str(&m, value);
    hk_msg_flush(&m);
    return true;
}

static void parse_conf(const char *conf, hk_src_t src, int only, bool warn)
{
    const char *what = src == HK_SRC_CONF ? "HAKMEM_CONF key" : "built-in conf (--with-conf) key";
    for (const char *p = conf; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *colon = memchr(p, ':', len);
        while (len && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }
        if (len) {
            size_t kl = colon ? (size_t)(colon - p) : len;
            while (kl && (p[kl - 1] == ' ' || p[kl - 1] == '\t'))
                kl--;
            int i = find_key(p, kl);
            if (!colon && memchr(p, '=', len)) {
                /* key=value: say how to write it, or name the closest key */
                if (warn && !wrong_form(what, p, len))
                    unknown_name(what, p, (size_t)((const char *)memchr(p, '=', len) - p), false);
            } else if (i < 0) {
                if (warn)
                    unknown_name(what, p, kl, false);
            } else if (!colon) {
                if (warn) {
                    hk_msg_t m = {.len = 0};
                    hk_msg_str(&m, "hakmem: warning: ");
                    hk_msg_str(&m, src == HK_SRC_CONF ? "HAKMEM_CONF" : "built-in conf (--with-conf)");
                    hk_msg_str(&m, ": key ");
                    hk_msg_str(&m, g_opts[i].key);
                    hk_msg_str(&m, " has no value (key:value)");
                    hk_msg_flush(&m);
                }
            } else if (only < 0 || i == only) {
                char val[HK_STR_MAX];
                size_t vl = len - (size_t)(colon + 1 - p);
                const char *v = colon + 1;
                while (vl && (*v == ' ' || *v == '\t')) {
                    v++;
                    vl--;
                }
                while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                    vl--;
                if (vl >= sizeof val)
                    vl = sizeof val - 1;
                memcpy(val, v, vl);
                val[vl] = '\0';
                if (only >= 0 || i != HK_OPT_CGROUP_ROOT)
                    take(i, val, src);
            }
        }
        p = end ? end + 1 : NULL;
    }
}

static bool built_in(const hk_opt_desc_t *d)
{
    return d->scope == HK_IN_ALL || (d->scope == HK_IN_LEAN && config_lean) || (d->scope == HK_IN_DEBUG && config_debug);
}

/* A setting given explicitly (a variable or HAKMEM_CONF, not the string
 * compiled into every variant of a build) that this library has no code
 * for: one warning, as for an unknown one, unless it asks for the default
 * (LEAN off in the FAST library is what that library does). */
static void warn_not_built_in(void)
{
    for (int i = 0; i < HK_OPT_COUNT; i++) {
        const hk_opt_desc_t *d = &g_opts[i];
        if (built_in(d) || (g_src[i] != HK_SRC_ENV && g_src[i] != HK_SRC_CONF))
            continue;
        if (d->kind == HK_KIND_STR ? !g_strs[i][0] : g_values[i] == d->def)
            continue;
        hk_msg_t m = {.len = 0};
        hk_msg_str(&m, "hakmem: warning: ");
        say_origin(&m, d, g_src[i]);
        if (d->kind == HK_KIND_STR)
            hk_msg_str(&m, g_strs[i]);
        else
            say_value(&m, d, g_values[i]);
        hk_msg_str(&m, " has no effect: this library (");
        hk_msg_str(&m, config_variant_name);
        hk_msg_str(&m, d->scope == HK_IN_LEAN ? ") has no LEAN code; libhakmem_lean.so has (hakmem --lean)"
                                              : ") is not the debug library (libhakmem_debug.so, hakmem --debug)");
        hk_msg_flush(&m);
    }
}

/* HAKMEM_* variables that name no setting. */
static void check_environment(void)
{
    for (char **e = environ; e && *e; e++) {
        const char *s = *e;
        if (strncmp(s, "HAKMEM_", 7) != 0)
            continue;
        const char *eq = strchr(s, '=');
        size_t n = eq ? (size_t)(eq - s) : strlen(s);
        if (reserved_name(s, n))
            continue;
        bool known = false;
        for (int i = 0; i < HK_OPT_COUNT && !known; i++)
            known = strlen(g_opts[i].name) == n && memcmp(g_opts[i].name, s, n) == 0;
        if (!known)
            unknown_name("variable", s, n, true);
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
    for (int i = 0; i < HK_OPT_COUNT; i++) {
        g_values[i] = g_opts[i].def;
        g_bytes[i] = g_opts[i].def * g_opts[i].unit;
        g_src[i] = HK_SRC_DEFAULT;
    }
    const char *conf = getenv("HAKMEM_CONF");
    /* Lowest precedence first; each source overrides the one before. The
     * cgroup root is settled before any budget is derived from it. */
    const char *root_env = getenv(g_opts[HK_OPT_CGROUP_ROOT].name);
    parse_conf(g_build_conf, HK_SRC_BUILD, HK_OPT_CGROUP_ROOT, false);
    parse_conf(conf, HK_SRC_CONF, HK_OPT_CGROUP_ROOT, false);
    if (root_env)
        take(HK_OPT_CGROUP_ROOT, root_env, HK_SRC_ENV);
    parse_conf(g_build_conf, HK_SRC_BUILD, -1, true);
    parse_conf(conf, HK_SRC_CONF, -1, true);
    for (int i = 0; i < HK_OPT_COUNT; i++) {
        const char *v = getenv(g_opts[i].name);
        if (v && i != HK_OPT_CGROUP_ROOT)
            take(i, v, HK_SRC_ENV);
    }
    check_environment();
    warn_not_built_in();
    atomic_store_explicit(&g_env_state, 2, memory_order_release);
}

void hk_opt_set_default(hk_opt_t which, int64_t def)
{
    g_opts[which].def = def;
    /* Already parsed (a setting was read before init): the value follows,
     * unless a source gave one. */
    if (atomic_load_explicit(&g_env_state, memory_order_acquire) == 2 && g_src[which] == HK_SRC_DEFAULT) {
        g_values[which] = def;
        g_bytes[which] = def * g_opts[which].unit;
    }
}

void hk_opt_set_default_text(hk_opt_t which, const char *text) { g_def_text[which] = text; }

int64_t hk_opt(hk_opt_t which)
{
    if (HK_UNLIKELY(atomic_load_explicit(&g_env_state, memory_order_acquire) != 2))
        hk_env_init();
    return g_values[which];
}

int64_t hk_opt_bytes(hk_opt_t which)
{
    hk_opt(which);
    return g_bytes[which];
}

const char *hk_opt_str(hk_opt_t which)
{
    hk_opt(which);
    return g_strs[which];
}

bool hk_opt_is_set(hk_opt_t which)
{
    hk_opt(which);
    return g_src[which] != HK_SRC_DEFAULT;
}

void hk_env_dump(void)
{
    hk_out_t o;
    hk_out_init_fd(&o, 2);
    hk_out_str(&o, "hakmem: version ");
    hk_out_str(&o, PACKAGE_VERSION);
    hk_out_str(&o, ", variant ");
    hk_out_str(&o, config_variant_name);
    hk_out_str(&o, config_lean ? ", lean code built in" : ", lean not built in");
    hk_out_str(&o, config_stats ? ", stats built in\n" : ", stats not built in\n");
    hk_out_str(&o, "hakmem: precedence: HAKMEM_* variable > HAKMEM_CONF > built-in conf (--with-conf) > default\n");
    hk_out_str(&o, "hakmem: built-in conf \"");
    hk_out_str(&o, g_build_conf);
    hk_out_str(&o, "\", HAKMEM_CONF \"");
    const char *conf = getenv("HAKMEM_CONF");
    hk_out_str(&o, conf ? conf : "");
    hk_out_str(&o, "\"\n");
    for (int i = 0; i < HK_OPT_COUNT; i++) {
        const hk_opt_desc_t *d = &g_opts[i];
        int64_t v = hk_opt((hk_opt_t)i);
        hk_out_str(&o, "hakmem: ");
        hk_out_str(&o, d->name);
        hk_out_str(&o, "=");
        switch (d->kind) {
        case HK_KIND_ENUM:
            hk_out_str(&o, d->names[v]);
            break;
        case HK_KIND_STR:
            hk_out_str(&o, "\"");
            hk_out_str(&o, g_strs[i]);
            hk_out_str(&o, "\"");
            break;
        case HK_KIND_OUT:
            hk_out_str(&o, out_names[v]);
            hk_out_str(&o, g_strs[i]);
            break;
        case HK_KIND_SIZE:
        case HK_KIND_BUDGET:
            hk_out_size(&o, (uint64_t)g_bytes[i]);
            break;
        default:
            if (g_def_text[i] && g_src[i] == HK_SRC_DEFAULT) {
                hk_out_str(&o, g_def_text[i]);
            } else {
                hk_out_i64(&o, v);
            }
        }
        hk_out_str(&o, " (");
        hk_out_str(&o, src_names[g_src[i]]);
        if (d->kind == HK_KIND_BUDGET && g_budget_origin[0]) {
            hk_out_str(&o, ": ");
            hk_out_str(&o, g_budget_origin);
        }
        hk_out_str(&o, built_in(d) ? ")" : ") (ignored: not built in)");
        hk_out_str(&o, "  # key ");
        hk_out_str(&o, d->key);
        hk_out_str(&o, ": ");
        hk_out_str(&o, d->help);
        hk_out_str(&o, "\n");
    }
    hk_out_flush(&o);
}
