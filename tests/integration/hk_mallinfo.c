/* hk_mallinfo.c: glibc's reporting calls, checked the same way under
 * glibc's malloc and under hakmem's (t_mallinfo.sh runs it both ways:
 * `hk_mallinfo glibc` with no preload, `hk_mallinfo hakmem` in the
 * column). Whatever holds under glibc must hold under hakmem:
 *  - arena = uordblks + fordblks, keepcost within fordblks;
 *  - 10 blocks of 1 MiB (own mappings in both allocators): hblks grows by
 *    10, hblkhd by their bytes, uordblks not at all;
 *  - 4096 blocks of 1000 bytes: uordblks grows by their bytes, hblkhd not;
 *  - uordblks + hblkhd grows by what the program holds;
 *  - mallinfo equals mallinfo2 where the values fit an int;
 *  - malloc_info's totals: <system type="current"> is arena, <total
 *    type="mmap"> is hblks/hblkhd;
 *  - after everything is freed, hblks and hblkhd are back.
 * Prints the figures; exit 0, or 1 with what failed. */
#include "hk_test.h"

#include <malloc.h>
#include <stdbool.h>

static int g_fail;

#define CHECK(cond, ...)                          \
    do {                                          \
        if (!(cond)) {                            \
            printf("FAIL: " __VA_ARGS__);         \
            printf("\n");                         \
            g_fail = 1;                           \
        }                                         \
    } while (0)

typedef struct mallinfo (*mallinfo_fn)(void);

static void show(const char *when, const struct mallinfo2 *m)
{
    printf("%-12s arena %10zu uordblks %10zu fordblks %10zu hblks %3zu hblkhd %10zu keepcost %10zu\n", when,
           m->arena, m->uordblks, m->fordblks, m->hblks, m->hblkhd, m->keepcost);
}

static void identities(const char *when, const struct mallinfo2 *m)
{
    show(when, m);
    CHECK(m->arena == m->uordblks + m->fordblks, "%s: arena %zu != uordblks %zu + fordblks %zu", when, m->arena,
          m->uordblks, m->fordblks);
    CHECK(m->keepcost <= m->fordblks, "%s: keepcost %zu above fordblks %zu", when, m->keepcost, m->fordblks);
}

/* The figure of `<TAG type="TYPE" ... ATTR="N"` after the last </heap>
 * (the totals of the whole process), or -1. */
static long long xml_total(const char *doc, const char *tag, const char *type, const char *attr)
{
    const char *p = strstr(doc, "</heap>"), *last = NULL;
    char pat[64], key[32];
    snprintf(pat, sizeof pat, "<%s type=\"%s\"", tag, type);
    snprintf(key, sizeof key, " %s=\"", attr);
    for (const char *q = p; q && (q = strstr(q, pat)) != NULL; q++)
        last = q;
    if (!last)
        return -1;
    const char *v = strstr(last, key), *end = strchr(last, '>');
    return v && end && v < end ? atoll(v + strlen(key)) : -1;
}

int main(int argc, char **argv)
{
    enum { NL = 10, NS = 4096, SMALL = 1000 };
    static void *l[NL], *s[NS];
    static char xml[1 << 16];
    if (argc != 2 || (strcmp(argv[1], "glibc") != 0 && strcmp(argv[1], "hakmem") != 0)) {
        fprintf(stderr, "usage: hk_mallinfo glibc|hakmem\n");
        return 2;
    }
    bool hakmem = strcmp(argv[1], "hakmem") == 0;
    if (hakmem)
        hk_require_preloaded();
    else if (dlsym(RTLD_DEFAULT, "hakmem_owns"))
        hk_die("hk_mallinfo glibc: hakmem is loaded (LD_PRELOAD?)");
    mallinfo_fn mi_fn = (mallinfo_fn)(uintptr_t)dlsym(RTLD_DEFAULT, "mallinfo"); /* deprecated */
    if (!mi_fn)
        hk_die("mallinfo not found");
    /* The stream is opened before the figures are taken: it allocates. */
    FILE *x = fmemopen(xml, sizeof xml - 1, "w");
    if (!x)
        hk_die("fmemopen: %s", strerror(errno));

    struct mallinfo2 m0 = mallinfo2();
    identities("start", &m0);

    size_t large = 0, small = 0;
    for (int i = 0; i < NL; i++) {
        l[i] = malloc((size_t)1 << 20);
        if (!l[i])
            hk_die("malloc(1 MiB) failed");
        memset(l[i], 1, (size_t)1 << 20);
        large += malloc_usable_size(l[i]);
    }
    struct mallinfo2 m1 = mallinfo2();
    identities("10 x 1 MiB", &m1);
    CHECK(m1.hblks == m0.hblks + NL, "hblks %zu -> %zu with %d blocks of 1 MiB", m0.hblks, m1.hblks, NL);
    CHECK(m1.hblkhd >= m0.hblkhd + large && m1.hblkhd <= m0.hblkhd + large + NL * ((size_t)64 << 10),
          "hblkhd %zu -> %zu with %zu bytes of 1 MiB blocks", m0.hblkhd, m1.hblkhd, large);
    CHECK(m1.uordblks < m0.uordblks + ((size_t)256 << 10),
          "uordblks %zu -> %zu: the 1 MiB blocks are counted in hblkhd, not uordblks", m0.uordblks, m1.uordblks);

    for (int i = 0; i < NS; i++) {
        s[i] = malloc(SMALL);
        if (!s[i])
            hk_die("malloc(%d) failed", SMALL);
        memset(s[i], 2, SMALL);
        small += malloc_usable_size(s[i]);
    }
    struct mallinfo2 m2 = mallinfo2();
    struct mallinfo mi = mi_fn();
    int info = malloc_info(0, x);
    fclose(x);
    identities("+ 4096 x 1000", &m2);
    /* Each allocator's own overhead per block: glibc's chunk header, the
     * debug library's canary. */
    CHECK(m2.uordblks >= m1.uordblks + small && m2.uordblks <= m1.uordblks + small + small / 8 + ((size_t)64 << 10),
          "uordblks %zu -> %zu with %zu bytes of small blocks", m1.uordblks, m2.uordblks, small);
    CHECK(m2.hblkhd == m1.hblkhd && m2.hblks == m1.hblks, "hblks/hblkhd moved with small blocks: %zu/%zu -> %zu/%zu",
          m1.hblks, m1.hblkhd, m2.hblks, m2.hblkhd);
    size_t held = large + small, grew = (m2.uordblks + m2.hblkhd) - (m0.uordblks + m0.hblkhd);
    printf("held %zu bytes; uordblks + hblkhd grew by %zu\n", held, grew);
    CHECK(grew >= held && grew <= held + held / 8 + ((size_t)1 << 20),
          "uordblks + hblkhd grew by %zu for %zu bytes held", grew, held);

    /* mallinfo: the same figures, as int. */
    CHECK((size_t)mi.arena == m2.arena && (size_t)mi.uordblks == m2.uordblks && (size_t)mi.fordblks == m2.fordblks &&
              (size_t)mi.hblks == m2.hblks && (size_t)mi.hblkhd == m2.hblkhd && (size_t)mi.keepcost == m2.keepcost,
          "mallinfo: arena %d uordblks %d fordblks %d hblks %d hblkhd %d keepcost %d differ from mallinfo2's",
          mi.arena, mi.uordblks, mi.fordblks, mi.hblks, mi.hblkhd, mi.keepcost);

    /* malloc_info's totals for the whole process. */
    CHECK(info == 0, "malloc_info returned %d", info);
    long long cur = xml_total(xml, "system", "current", "size");
    long long mc = xml_total(xml, "total", "mmap", "count"), ms = xml_total(xml, "total", "mmap", "size");
    printf("malloc_info: system current %lld, mmap count %lld size %lld\n", cur, mc, ms);
    CHECK(cur >= 0 && (size_t)cur <= m2.arena + ((size_t)256 << 10) && (size_t)cur + ((size_t)256 << 10) >= m2.arena,
          "malloc_info <system type=current> %lld, mallinfo2 arena %zu", cur, m2.arena);
    CHECK(mc == (long long)m2.hblks && ms == (long long)m2.hblkhd,
          "malloc_info <total type=mmap> count %lld size %lld, mallinfo2 hblks %zu hblkhd %zu", mc, ms, m2.hblks,
          m2.hblkhd);

    for (int i = 0; i < NL; i++)
        free(l[i]);
    for (int i = 0; i < NS; i++)
        free(s[i]);
    struct mallinfo2 m3 = mallinfo2();
    identities("all freed", &m3);
    CHECK(m3.hblks == m0.hblks && m3.hblkhd == m0.hblkhd, "after freeing: hblks %zu hblkhd %zu, at the start %zu %zu",
          m3.hblks, m3.hblkhd, m0.hblks, m0.hblkhd);
    CHECK(m3.uordblks <= m0.uordblks + ((size_t)256 << 10), "after freeing: uordblks %zu, at the start %zu",
          m3.uordblks, m0.uordblks);
    printf("%s: %s\n", argv[1], g_fail ? "FAIL" : "ok");
    return g_fail;
}
