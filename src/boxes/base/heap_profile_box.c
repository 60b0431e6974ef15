/* heap_profile_box: the sampling model's math and the profile's text. See
 * the header. */
#include "hakmem_internal.h"
#include "base/heap_profile_box.h"
#include "base/diag_box.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* exp and log, for the ranges the model uses (libm's would be a new
 * dependency for a static link, and nothing here may call what might
 * allocate). Both to about 1e-15 relative. */

#define HK_LN2_HI 6.93147180369123816490e-01
#define HK_LN2_LO 1.90821492927058770002e-10
#define HK_LN2 0.69314718055994530942

/* exp(x) for x <= 0. */
static double exp_neg(double x)
{
    if (x < -700.0)
        return 0.0;
    /* x = k ln 2 + r, |r| <= ln 2 / 2: exp(x) = 2^k exp(r). */
    int64_t k = (int64_t)(x / HK_LN2 - 0.5);
    double r = (x - (double)k * HK_LN2_HI) - (double)k * HK_LN2_LO;
    /* Taylor to r^14/14!, by Horner: multiplications only. */
    static const double inv[15] = {1.0,      1.0,      1.0 / 2,  1.0 / 3,  1.0 / 4,
                                   1.0 / 5,  1.0 / 6,  1.0 / 7,  1.0 / 8,  1.0 / 9,
                                   1.0 / 10, 1.0 / 11, 1.0 / 12, 1.0 / 13, 1.0 / 14};
    double sum = 1.0;
    for (int i = 14; i >= 1; i--)
        sum = 1.0 + r * inv[i] * sum;
    uint64_t bits = (uint64_t)(k + 1023) << 52; /* k >= -1011 here */
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return sum * scale;
}

/* ln(u) for 0 < u <= 1 (a normal double). */
static double ln_unit(double u)
{
    uint64_t bits;
    memcpy(&bits, &u, sizeof bits);
    int e = (int)((bits >> 52) & 0x7ff) - 1023;
    bits = (bits & (((uint64_t)1 << 52) - 1)) | ((uint64_t)1023 << 52);
    double m;
    memcpy(&m, &bits, sizeof m);
    if (m > 1.4142135623730951) {
        m *= 0.5;
        e++;
    }
    /* ln m = 2 atanh(z), z = (m - 1) / (m + 1), |z| <= 0.172: the odd
     * series to z^23/23, by Horner in z^2. */
    static const double inv_odd[12] = {1.0,      1.0 / 3,  1.0 / 5,  1.0 / 7,  1.0 / 9,  1.0 / 11,
                                       1.0 / 13, 1.0 / 15, 1.0 / 17, 1.0 / 19, 1.0 / 21, 1.0 / 23};
    double z = (m - 1.0) / (m + 1.0), z2 = z * z, sum = 0.0;
    for (int i = 11; i >= 0; i--)
        sum = inv_odd[i] + z2 * sum;
    return 2.0 * z * sum + (double)e * HK_LN2;
}

int64_t hk_prof_gap(uint64_t bits53, double mean)
{
    double u = (double)((bits53 & (((uint64_t)1 << 53) - 1)) + 1) * (1.0 / 9007199254740992.0);
    double g = -ln_unit(u) * mean;
    if (g > 4.0e18)
        return (int64_t)4e18;
    return (int64_t)g + 1; /* a gap of g bytes is crossed by the byte after it */
}

static double inclusion(double size, double mean)
{
    double x = size / mean;
    if (x < 1e-3) /* 1 - exp(-x) without the cancellation */
        return x * (1.0 - x * (0.5 - x * (1.0 / 6.0 - x * (1.0 / 24.0))));
    return 1.0 - exp_neg(-x);
}

double hk_prof_inclusion(uint64_t size, double mean) { return inclusion((double)size, mean); }

uint64_t hk_prof_estimate_bytes(uint64_t size, double mean)
{
    if (!size)
        return 0;
    return (uint64_t)((double)size / hk_prof_inclusion(size, mean) + 0.5);
}

/* ------------------------------------------------------------------------ */
/* Estimates and the values jeprof reads. */

typedef struct {
    double objs, bytes; /* unbiased estimates */
} hk_est_t;

static void est_add(hk_est_t *e, uint64_t size, double mean)
{
    /* A malloc(0) was counted as 0 bytes and can only have been sampled as
     * part of a larger gap crossing: it stands for itself. */
    double p = size ? hk_prof_inclusion(size, mean) : 1.0;
    e->objs += 1.0 / p;
    e->bytes += (double)size / p;
}

static uint64_t round_u64(double d) { return d <= 0 ? 0 : (uint64_t)(d + 0.5); }

/* jeprof turns a line "c: s" into c/P(s/c), s/P(s/c): it scales by the
 * probability of the average size. For it to arrive at our estimates
 * (objs, bytes), with x = bytes/objs: c = objs P(x), s = c x. c is written
 * as an integer (the form has no fractions): rounded, both come out off by
 * the same share, at most half a sample's worth (x/P(x) bytes, about R for
 * small blocks). */
static void jeprof_values(const hk_est_t *e, double mean, uint64_t *c, uint64_t *s)
{
    *c = *s = 0;
    if (e->objs <= 0)
        return;
    double x = e->bytes / e->objs;
    uint64_t cc = round_u64(x > 0 ? e->objs * inclusion(x, mean) : e->objs);
    *c = cc ? cc : 1;
    *s = round_u64((double)*c * x);
}

/* ------------------------------------------------------------------------ */
/* In-place heapsort (no memory, no recursion): by (stack, thread), or by
 * site (the stack's innermost address). */

typedef int (*hk_cmp_t)(const hk_prof_snapshot_t *s, const hk_prof_sample_t *a, const hk_prof_sample_t *b);

static int by_stack(const hk_prof_snapshot_t *s, const hk_prof_sample_t *a, const hk_prof_sample_t *b)
{
    if (a->stack != b->stack)
        return a->stack < b->stack ? -1 : 1;
    return a->thread < b->thread ? -1 : a->thread > b->thread;
}

static uintptr_t site_of(const hk_prof_snapshot_t *s, uint32_t stack)
{
    unsigned depth;
    const void *const *f = s->frames(s->ctx, stack, &depth);
    return depth ? (uintptr_t)f[0] : 0;
}

static int by_site(const hk_prof_snapshot_t *s, const hk_prof_sample_t *a, const hk_prof_sample_t *b)
{
    uintptr_t x = site_of(s, a->stack), y = site_of(s, b->stack);
    return x < y ? -1 : x > y;
}

static void sift(hk_prof_snapshot_t *s, hk_cmp_t cmp, size_t root, size_t n)
{
    hk_prof_sample_t *v = s->samples;
    for (;;) {
        size_t child = 2 * root + 1;
        if (child >= n)
            return;
        if (child + 1 < n && cmp(s, &v[child], &v[child + 1]) < 0)
            child++;
        if (cmp(s, &v[root], &v[child]) >= 0)
            return;
        hk_prof_sample_t t = v[root];
        v[root] = v[child];
        v[child] = t;
        root = child;
    }
}

static void sort_samples(hk_prof_snapshot_t *s, hk_cmp_t cmp)
{
    size_t n = s->n;
    for (size_t i = n / 2; i-- > 0;)
        sift(s, cmp, i, n);
    while (n > 1) {
        hk_prof_sample_t t = s->samples[0];
        s->samples[0] = s->samples[n - 1];
        s->samples[n - 1] = t;
        sift(s, cmp, 0, --n);
    }
}

/* ------------------------------------------------------------------------ */
/* The profile. */

static void out_hex(hk_out_t *o, uintptr_t v)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[20];
    int n = 20;
    do {
        tmp[--n] = digits[v & 15];
        v >>= 4;
    } while (v);
    tmp[--n] = 'x';
    tmp[--n] = '0';
    hk_out_mem(o, tmp + n, (size_t)(20 - n));
}

static void out_counts(hk_out_t *o, const char *label, uint32_t thread, const hk_est_t *e, double mean)
{
    uint64_t c, sz;
    jeprof_values(e, mean, &c, &sz);
    hk_out_str(o, label);
    if (!label[0]) {
        hk_out_str(o, "  t");
        hk_out_u64(o, thread);
        hk_out_str(o, ": ");
    }
    hk_out_u64(o, c);
    hk_out_str(o, ": ");
    hk_out_u64(o, sz);
    hk_out_str(o, " [0: 0]\n");
}

/* /proc/self/maps, copied as it is (jeprof finds the objects and their
 * load addresses there). */
static void out_maps(hk_out_t *o)
{
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char buf[1024];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        hk_out_mem(o, buf, (size_t)r);
    }
    close(fd);
}

int hk_prof_write(int fd, hk_prof_snapshot_t *s)
{
    int saved = errno;
    hk_out_t o;
    hk_out_init_fd(&o, fd);
    sort_samples(s, by_stack);
    hk_est_t all = {0, 0};
    for (size_t i = 0; i < s->n; i++)
        est_add(&all, s->samples[i].size, s->mean);
    hk_out_str(&o, "heap_v2/");
    hk_out_u64(&o, round_u64(s->mean));
    hk_out_str(&o, "\n");
    out_counts(&o, "  t*: ", 0, &all, s->mean);
    for (size_t i = 0; i < s->n;) {
        uint32_t stack = s->samples[i].stack;
        size_t end = i;
        hk_est_t st = {0, 0};
        while (end < s->n && s->samples[end].stack == stack)
            est_add(&st, s->samples[end++].size, s->mean);
        unsigned depth;
        const void *const *f = s->frames(s->ctx, stack, &depth);
        hk_out_str(&o, "@");
        for (unsigned k = 0; k < depth; k++) {
            hk_out_str(&o, " ");
            out_hex(&o, (uintptr_t)f[k]);
        }
        hk_out_str(&o, "\n");
        out_counts(&o, "  t*: ", 0, &st, s->mean);
        while (i < end) {
            uint32_t th = s->samples[i].thread;
            hk_est_t t = {0, 0};
            while (i < end && s->samples[i].thread == th)
                est_add(&t, s->samples[i++].size, s->mean);
            out_counts(&o, "", th, &t, s->mean);
        }
    }
    hk_out_str(&o, "\nMAPPED_LIBRARIES:\n");
    out_maps(&o);
    hk_out_flush(&o);
    if (o.failed) {
        if (errno == saved || !errno)
            errno = EIO;
        return -1;
    }
    errno = saved;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The leak summary. */

#define HK_LEAK_TOP 3

static void out_site(hk_out_t *o, uintptr_t site)
{
    Dl_info info;
    if (site && dladdr((void *)site, &info) && info.dli_fname) {
        if (info.dli_sname && info.dli_saddr) {
            hk_out_str(o, info.dli_sname);
            hk_out_str(o, "+");
            out_hex(o, site - (uintptr_t)info.dli_saddr);
        } else {
            out_hex(o, site);
        }
        const char *base = strrchr(info.dli_fname, '/');
        hk_out_str(o, " (");
        hk_out_str(o, base ? base + 1 : info.dli_fname);
        hk_out_str(o, ")");
        return;
    }
    out_hex(o, site);
}

void hk_prof_leak_line(hk_prof_snapshot_t *s, const char *where)
{
    int saved = errno;
    hk_out_t o;
    hk_out_init_fd(&o, 2);
    hk_out_str(&o, "hakmem: prof_leak: ");
    if (!s->n) {
        hk_out_str(&o, "no sampled block is still allocated at exit\n");
        hk_out_flush(&o);
        errno = saved;
        return;
    }
    sort_samples(s, by_site);
    hk_est_t all = {0, 0};
    struct {
        uintptr_t site;
        double bytes;
    } top[HK_LEAK_TOP] = {{0, 0}};
    size_t sites = 0;
    for (size_t i = 0; i < s->n;) {
        uintptr_t site = site_of(s, s->samples[i].stack);
        hk_est_t e = {0, 0};
        while (i < s->n && site_of(s, s->samples[i].stack) == site)
            est_add(&e, s->samples[i++].size, s->mean);
        all.objs += e.objs;
        all.bytes += e.bytes;
        sites++;
        for (int k = 0; k < HK_LEAK_TOP; k++)
            if (e.bytes > top[k].bytes) {
                memmove(&top[k + 1], &top[k], (HK_LEAK_TOP - 1 - k) * sizeof top[0]);
                top[k].site = site;
                top[k].bytes = e.bytes;
                break;
            }
    }
    hk_out_str(&o, "~");
    hk_out_size(&o, round_u64(all.bytes));
    hk_out_str(&o, " in ~");
    hk_out_u64(&o, round_u64(all.objs));
    hk_out_str(&o, " blocks still allocated at exit (estimated from ");
    hk_out_u64(&o, s->n);
    hk_out_str(&o, s->n == 1 ? " sample, " : " samples, ");
    hk_out_u64(&o, sites);
    hk_out_str(&o, sites == 1 ? " site); top: " : " sites); top: ");
    for (int k = 0; k < HK_LEAK_TOP && top[k].bytes > 0; k++) {
        if (k)
            hk_out_str(&o, ", ");
        out_site(&o, top[k].site);
        hk_out_str(&o, " ~");
        hk_out_size(&o, round_u64(top[k].bytes));
    }
    if (where) {
        hk_out_str(&o, "; profile ");
        hk_out_str(&o, where);
    }
    hk_out_str(&o, "\n");
    hk_out_flush(&o);
    errno = saved;
}
