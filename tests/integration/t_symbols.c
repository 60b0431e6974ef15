/* t_symbols.c: the whole glibc allocation API is exported by the preloaded
 * library, and memory that glibc functions allocate internally is ours and
 * frees correctly (CONFORMANCE A.12).
 *
 * A symbol the library forgets to export silently stays glibc's: a block
 * from glibc's memalign freed into hakmem (or the reverse) corrupts a heap
 * much later. So each name is looked up in the global scope and must
 * resolve into the preloaded file itself. Then the libc functions that
 * malloc behind the caller's back (strdup, getline, asprintf, ...) must
 * return blocks hakmem owns, which the caller frees with our free.
 */
#include "hk_test.h"

#include <check.h>
#include <dirent.h>
#include <malloc.h>
#include <netdb.h>
#include <regex.h>
#include <sys/socket.h>

static const char *const exported[] = {
    "malloc", "free", "calloc", "realloc", "reallocarray", "posix_memalign", "aligned_alloc",
    "memalign", "valloc", "pvalloc", "malloc_usable_size", "cfree", "free_sized",
    "free_aligned_sized", "__libc_malloc", "__libc_free", "__libc_calloc", "__libc_realloc",
    "__libc_memalign", "__libc_valloc", "__libc_pvalloc", "malloc_trim", "mallinfo",
    "mallinfo2", "malloc_stats", "mallopt",
    /* the prefixed API of hakmem.h */
    "hakmem_malloc", "hakmem_free", "hakmem_calloc", "hakmem_realloc", "hakmem_reallocarray",
    "hakmem_posix_memalign", "hakmem_aligned_alloc", "hakmem_memalign", "hakmem_valloc",
    "hakmem_pvalloc", "hakmem_malloc_usable_size", "hakmem_free_sized",
    "hakmem_free_aligned_sized", "hakmem_malloc_trim", "hakmem_owns", "hakmem_version",
    "hakmem_variant", "hakmem_stats_get", "hakmem_stats_print",
    /* C++ operator new and delete, every form (cxx_new_box.h) */
    "_Znwm", "_Znam", "_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t", "_ZnwmSt11align_val_t",
    "_ZnamSt11align_val_t", "_ZnwmSt11align_val_tRKSt9nothrow_t", "_ZnamSt11align_val_tRKSt9nothrow_t",
    "_ZdlPv", "_ZdaPv", "_ZdlPvm", "_ZdaPvm", "_ZdlPvRKSt9nothrow_t", "_ZdaPvRKSt9nothrow_t",
    "_ZdlPvSt11align_val_t", "_ZdaPvSt11align_val_t", "_ZdlPvmSt11align_val_t", "_ZdaPvmSt11align_val_t",
    "_ZdlPvSt11align_val_tRKSt9nothrow_t", "_ZdaPvSt11align_val_tRKSt9nothrow_t",
};

START_TEST(symbol_resolves_into_library)
{
    const char *name = exported[_i];
    const char *lib = hk_expected_lib();
    char where[PATH_MAX + 32];
    if (!lib)
        lib = getenv("LD_PRELOAD");
    ck_assert_msg(lib != NULL, "HAKMEM_TEST_LIB not set (run through tests/run-variant)");
    ck_assert_msg(hk_symbol_in_lib(name, lib, where, sizeof where), "%s resolves to %s, not to %s", name,
                  where, lib);
}
END_TEST

/* The aliases are more than names: each must behave as its glibc twin. */
typedef void *(*malloc_fn)(size_t);
typedef void (*free_fn)(void *);
typedef void *(*calloc_fn)(size_t, size_t);
typedef void *(*realloc_fn)(void *, size_t);
typedef void *(*memalign_fn)(size_t, size_t);
typedef void (*free_sized_fn)(void *, size_t);
typedef void (*free_aligned_sized_fn)(void *, size_t, size_t);

#define SYM(type, name) ((type)(uintptr_t)dlsym(RTLD_DEFAULT, name))

START_TEST(aliases_work)
{
    malloc_fn lm = SYM(malloc_fn, "__libc_malloc");
    free_fn lf = SYM(free_fn, "__libc_free");
    calloc_fn lc = SYM(calloc_fn, "__libc_calloc");
    realloc_fn lr = SYM(realloc_fn, "__libc_realloc");
    memalign_fn lma = SYM(memalign_fn, "__libc_memalign");
    free_fn cf = SYM(free_fn, "cfree");
    free_sized_fn fs = SYM(free_sized_fn, "free_sized");
    free_aligned_sized_fn fas = SYM(free_aligned_sized_fn, "free_aligned_sized");
    ck_assert(lm && lf && lc && lr && lma && cf && fs && fas);

    char *a = lm(100);
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(hk_owns(a), 1);
    memset(a, 'x', 100);
    a = lr(a, 5000);
    ck_assert_ptr_nonnull(a);
    ck_assert(a[99] == 'x');
    free(a); /* __libc_* blocks and plain free are interchangeable */

    int *c = lc(10, sizeof(int));
    ck_assert_ptr_nonnull(c);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(c[i], 0);
    lf(c);

    void *m = lma(4096, 10);
    ck_assert_ptr_nonnull(m);
    ck_assert(((uintptr_t)m & 4095) == 0);
    cf(m);

    void *s = malloc(300);
    ck_assert_ptr_nonnull(s);
    fs(s, 300);
    void *al = aligned_alloc(256, 512);
    ck_assert_ptr_nonnull(al);
    fas(al, 256, 512);
    fs(NULL, 0);
    fas(NULL, 64, 0);
}
END_TEST

/* ---- glibc's reporting calls, answered with hakmem's data --------------- */

typedef struct mallinfo (*mallinfo_fn)(void);

/* mallinfo2 with glibc's meanings (DESIGN 6): against a known allocation of
 * N bytes in large blocks (one mapping each, like glibc's mmapped chunks):
 * hblks counts them, hblkhd ("bytes in blocks currently allocated using
 * mmap") grows by at least N while they are live and falls by at least N
 * once they are freed, whether or not the allocator keeps the freed ranges
 * for reuse (those are free bytes); uordblks ("in-use bytes" of the
 * non-mmapped heap, as glibc counts them) does not count them. */
START_TEST(mallinfo2_tracks_large_blocks)
{
    enum { N = 32 };
    const size_t blk = (size_t)1 << 20, total = N * blk;
    void *v[N];
    struct mallinfo2 before = mallinfo2();
    for (int i = 0; i < N; i++) {
        v[i] = malloc(blk);
        ck_assert_ptr_nonnull(v[i]);
        memset(v[i], 1, blk);
    }
    struct mallinfo2 during = mallinfo2();
    ck_assert_msg(during.hblks == before.hblks + N, "hblks went %zu -> %zu with %d large blocks more live",
                  before.hblks, during.hblks, N);
    ck_assert_msg(during.hblkhd >= before.hblkhd + total, "hblkhd went %zu -> %zu with %zu bytes more live",
                  before.hblkhd, during.hblkhd, total);
    ck_assert_msg(during.uordblks < before.uordblks + ((size_t)1 << 20),
                  "uordblks went %zu -> %zu with %zu bytes more live in large blocks (hblkhd's, not uordblks')",
                  before.uordblks, during.uordblks, total);
    for (int i = 0; i < N; i++)
        free(v[i]);
    struct mallinfo2 after = mallinfo2();
    ck_assert_msg(after.hblks == before.hblks, "hblks is %zu after freeing, %zu before the allocation", after.hblks,
                  before.hblks);
    ck_assert_msg(after.hblkhd + total <= during.hblkhd,
                  "hblkhd went %zu -> %zu after freeing %zu bytes of large blocks (a freed block kept for "
                  "reuse is not in use: fordblks is %zu; before the allocation hblkhd was %zu with hblks %zu)",
                  during.hblkhd, after.hblkhd, total, after.fordblks, before.hblkhd, before.hblks);
}
END_TEST

/* The same for small blocks: N bytes of 1 KiB blocks need N bytes of
 * superslab space, of which at most `arena` (in use before) was already
 * there, so arena and uordblks grow by at least N - arena_before. */
START_TEST(mallinfo2_tracks_small_blocks)
{
    enum { OBJ = 1024, COUNT = 16384 };
    const size_t total = (size_t)OBJ * COUNT;
    void **v = calloc(COUNT, sizeof *v);
    ck_assert_ptr_nonnull(v);
    struct mallinfo2 before = mallinfo2();
    for (int i = 0; i < COUNT; i++) {
        v[i] = malloc(OBJ);
        ck_assert_ptr_nonnull(v[i]);
        memset(v[i], 2, OBJ);
    }
    struct mallinfo2 during = mallinfo2();
    size_t need = total > before.arena ? total - before.arena : 0;
    ck_assert_msg(during.arena >= total && during.arena >= before.arena + need,
                  "arena went %zu -> %zu with %zu bytes of small blocks live", before.arena, during.arena, total);
    ck_assert_msg(during.uordblks >= before.uordblks + total && during.hblkhd == before.hblkhd,
                  "uordblks went %zu -> %zu (hblkhd %zu -> %zu) with %zu bytes of small blocks live",
                  before.uordblks, during.uordblks, before.hblkhd, during.hblkhd, total);
    for (int i = 0; i < COUNT; i++)
        free(v[i]);
    free(v);
    struct mallinfo2 after = mallinfo2();
    /* Everything allocated above is free again: what stays counted as in
     * use is at most what was in use before, plus the end-state slack of
     * hk_test.h (a couple of superslabs the calling thread may keep for its
     * current slabs), far below the 16 MiB freed. */
    ck_assert_msg(after.uordblks <= before.uordblks + HK_END_SS_SLACK * HK_SS_BYTES,
                  "uordblks %zu before, %zu with %zu bytes live, %zu after freeing them all", before.uordblks,
                  during.uordblks, total, after.uordblks);
}
END_TEST

/* mallinfo's int fields: glibc's meanings as mallinfo2's, saturated at
 * INT_MAX when a value does not fit (hakmem's choice, documented in
 * override_box.c: glibc wraps). Read back to back, with nothing allocated
 * between, the two calls must agree field by field. */
static int sat(size_t x)
{
    return x > (size_t)INT_MAX ? INT_MAX : (int)x;
}

START_TEST(mallinfo_matches_mallinfo2)
{
    mallinfo_fn mi_fn = SYM(mallinfo_fn, "mallinfo"); /* deprecated: call through dlsym */
    ck_assert_ptr_nonnull(mi_fn);
    enum { N = 8 };
    void *v[N];
    for (int i = 0; i < N; i++) {
        v[i] = malloc((size_t)1 << 20);
        ck_assert_ptr_nonnull(v[i]);
        memset(v[i], 3, (size_t)1 << 20);
    }
    struct mallinfo2 m2 = mallinfo2();
    struct mallinfo mi = mi_fn();
    ck_assert_int_eq(mi.arena, sat(m2.arena));
    ck_assert_int_eq(mi.ordblks, sat(m2.ordblks));
    ck_assert_int_eq(mi.hblks, sat(m2.hblks));
    ck_assert_int_eq(mi.hblkhd, sat(m2.hblkhd));
    ck_assert_int_eq(mi.usmblks, sat(m2.usmblks));
    ck_assert_int_eq(mi.uordblks, sat(m2.uordblks));
    ck_assert_int_eq(mi.fordblks, sat(m2.fordblks));
    ck_assert_int_eq(mi.keepcost, sat(m2.keepcost));
    /* 8 MiB live fits an int: it must be there, not saturated or wrapped */
    ck_assert_msg(mi.hblks >= N && mi.hblkhd >= (N << 20),
                  "mallinfo with %d MiB of large blocks live: hblks %d hblkhd %d uordblks %d", N, mi.hblks,
                  mi.hblkhd, mi.uordblks);
    for (int i = 0; i < N; i++)
        free(v[i]);
}
END_TEST

/* malloc_trim (README): gives back everything kept for reuse and returns 1
 * if anything went back, 0 otherwise. 64 MiB of large blocks, touched and
 * freed: with LEAN off the cache of freed large blocks (256 MiB by
 * default) keeps them, so malloc_trim(0) must return 1 and Rss must fall by
 * most of them; with LEAN on the cache follows LEAN's budget, so what is
 * above it went back at the free already. Either way, a second call finds
 * nothing left and returns 0. */
START_TEST(malloc_trim_returns)
{
    enum { N = 16 };
    const size_t blk = (size_t)4 << 20, total = N * blk;
    void *v[N];
    struct hakmem_stats st;

    malloc_trim(0); /* start from nothing cached */
    size_t rss0 = hk_rss_bytes();
    for (int i = 0; i < N; i++) {
        v[i] = malloc(blk);
        ck_assert_ptr_nonnull(v[i]);
        memset(v[i], 4, blk);
    }
    size_t rss1 = hk_rss_bytes();
    ck_assert_msg(rss1 >= rss0 + total * 3 / 4, "touching %zu MiB raised Rss by %zu MiB only", total >> 20,
                  (rss1 - rss0) >> 20);
    for (int i = 0; i < N; i++)
        free(v[i]);
    size_t rss2 = hk_rss_bytes();
    ck_assert_int_eq(hk_stats(&st), 0);
    if (!st.lean_mode) {
        ck_assert_msg(st.large_cached_bytes >= total, "LEAN off: %llu bytes cached after freeing %zu",
                      (unsigned long long)st.large_cached_bytes, total);
        int r = malloc_trim(0);
        size_t rss3 = hk_rss_bytes();
        ck_assert_msg(r == 1, "malloc_trim(0) returned %d with %zu MiB of freed large blocks cached", r,
                      total >> 20);
        ck_assert_msg(rss3 + total * 3 / 4 <= rss2, "malloc_trim(0) took Rss from %zu to %zu MiB only",
                      rss2 >> 20, rss3 >> 20);
        ck_assert_int_eq(hk_stats(&st), 0);
        ck_assert_msg(st.large_cached_bytes == 0, "%llu bytes still cached after malloc_trim",
                      (unsigned long long)st.large_cached_bytes);
    } else {
        size_t budget = hk_lean_budget_bytes();
        ck_assert_msg(st.large_cached_bytes <= budget, "LEAN on: %llu bytes cached, budget %zu",
                      (unsigned long long)st.large_cached_bytes, budget);
        ck_assert_msg(rss2 <= rss0 + budget + ((size_t)4 << 20),
                      "LEAN on: Rss %zu MiB before, %zu MiB after freeing %zu MiB (budget %zu MiB)", rss0 >> 20,
                      rss2 >> 20, total >> 20, budget >> 20);
        int r = malloc_trim(0);
        ck_assert_msg(r == 0 || r == 1, "malloc_trim returned %d", r);
        if (st.large_cached_bytes > 0)
            ck_assert_msg(r == 1, "malloc_trim(0) returned %d with %llu bytes of large blocks cached", r,
                          (unsigned long long)st.large_cached_bytes);
    }
    int r2 = malloc_trim(0);
    ck_assert_msg(r2 == 0, "a second malloc_trim(0), with nothing left to give back, returned %d", r2);
}
END_TEST

/* mallopt (README, override_box.c): glibc's parameters are accepted, and
 * answered as glibc answers success, 1; they change nothing (hakmem's
 * settings are environment variables). A parameter glibc does not know is
 * refused: 0. */
START_TEST(mallopt_answers)
{
    static const struct {
        int param;
        const char *name;
    } known[] = {
        {M_MXFAST, "M_MXFAST"},
        {M_TRIM_THRESHOLD, "M_TRIM_THRESHOLD"},
        {M_TOP_PAD, "M_TOP_PAD"},
        {M_MMAP_THRESHOLD, "M_MMAP_THRESHOLD"},
        {M_MMAP_MAX, "M_MMAP_MAX"},
        {M_CHECK_ACTION, "M_CHECK_ACTION"},
        {M_PERTURB, "M_PERTURB"},
        {M_ARENA_TEST, "M_ARENA_TEST"},
        {M_ARENA_MAX, "M_ARENA_MAX"},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        int r = mallopt(known[i].param, 64);
        ck_assert_msg(r == 1, "mallopt(%s, 64) returned %d, expected 1", known[i].name, r);
    }
    static const int unknown[] = {0, 12345, -12345, INT_MAX, INT_MIN};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        int r = mallopt(unknown[i], 1);
        ck_assert_msg(r == 0, "mallopt(%d, 1), an unknown parameter, returned %d, expected 0", unknown[i], r);
    }
    /* and nothing changed: allocation works as before */
    void *p = malloc(200000);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(hk_owns(p), 1);
    free(p);
}
END_TEST

/* malloc_stats writes the human form of the statistics to stderr
 * (hakmem_stats_print): a first line with version and variant, the gauges
 * with units, the counters only where they are built in (else one line
 * saying they are not), the size classes in use. */
static int do_malloc_stats(void *arg)
{
    (void)arg;
    /* one large block live, so that large_live is known to be at least 1 */
    void *big = malloc((size_t)3 << 20);
    if (!big)
        return 2;
    malloc_stats();
    free(big);
    return 0;
}

START_TEST(malloc_stats_prints)
{
    struct hk_child c;
    struct hakmem_stats st;
    char status[64], head[128];
    hk_run_child(do_malloc_stats, NULL, 10, &c);
    ck_assert_msg(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0, "malloc_stats child: %s",
                  hk_status_str(c.status, status, sizeof status));
    ck_assert_int_eq(hk_stats(&st), 0);
    hk_str_fn version = (hk_str_fn)(uintptr_t)dlsym(RTLD_DEFAULT, "hakmem_version");
    snprintf(head, sizeof head, "hakmem %s (%s, LEAN %s", version(), hk_variant(), st.lean_mode ? "on" : "off");
    ck_assert_msg(strncmp(c.err, head, strlen(head)) == 0, "first line should start '%s':\n%s", head, c.err);
    const char *lb = strstr(c.err, "\n  large_live_bytes ");
    ck_assert_msg(lb && strncmp(lb + 20 + strspn(lb + 20, " "), "3.00 MiB", 8) == 0, "a 3 MiB block live, in MiB:\n%s",
                  c.err);
    ck_assert_msg(strstr(c.err, "\n  allocated ") && strstr(c.err, "\n  committed "), "gauges missing:\n%s", c.err);
    if (st.stats_built_in)
        ck_assert_msg(strstr(c.err, "\n  mmap_calls ") && !strstr(c.err, "not built in"), "counters:\n%s", c.err);
    else
        ck_assert_msg(!strstr(c.err, "mmap_calls") && strstr(c.err, "counters: not built in"),
                      "counters not built in must be absent, not 0:\n%s", c.err);
    ck_assert_msg(strstr(c.err, "size classes in use:\n"), "no size classes:\n%s", c.err);
}
END_TEST

/* ---- pointers that libc allocates for the caller ------------------------- */
static void must_be_ours(const void *p, const char *what)
{
    ck_assert_msg(p != NULL, "%s returned NULL", what);
    ck_assert_msg(hk_owns(p) == 1, "%s returned %p, not a hakmem block", what, p);
}

START_TEST(libc_allocated_pointers)
{
    char *s = strdup("hakmem strdup test");
    must_be_ours(s, "strdup");
    free(s);
    s = strndup("abcdefgh", 3);
    must_be_ours(s, "strndup");
    ck_assert_str_eq(s, "abc");
    free(s);

    /* getline grows its buffer with realloc */
    char *line = NULL;
    size_t cap = 0;
    char text[5000];
    memset(text, 'q', sizeof text - 2);
    text[sizeof text - 2] = '\n';
    text[sizeof text - 1] = '\0';
    FILE *f = fmemopen(text, strlen(text), "r");
    ck_assert_ptr_nonnull(f);
    ssize_t n = getline(&line, &cap, f);
    ck_assert_int_eq(n, (ssize_t)sizeof text - 1);
    must_be_ours(line, "getline");
    fclose(f);
    free(line);

    char *as = NULL;
    ck_assert_int_gt(asprintf(&as, "%d-%s-%0500d", 42, "x", 7), 500);
    must_be_ours(as, "asprintf");
    free(as);

    char *ms = NULL;
    size_t mslen = 0;
    FILE *m = open_memstream(&ms, &mslen);
    ck_assert_ptr_nonnull(m);
    for (int i = 0; i < 1000; i++)
        fprintf(m, "line %d\n", i);
    fclose(m);
    ck_assert_uint_gt(mslen, 5000);
    must_be_ours(ms, "open_memstream");
    free(ms);

    char *rp = realpath("/usr/../usr/bin", NULL);
    must_be_ours(rp, "realpath");
    free(rp);

    struct dirent **names = NULL;
    int nd = scandir("/", &names, NULL, alphasort);
    ck_assert_int_gt(nd, 2);
    must_be_ours(names, "scandir (array)");
    for (int i = 0; i < nd; i++) {
        must_be_ours(names[i], "scandir (entry)");
        free(names[i]);
    }
    free(names);

    regex_t re;
    ck_assert_int_eq(regcomp(&re, "^(ab|cd)+[0-9]{2,5}x*$", REG_EXTENDED), 0);
    ck_assert_int_eq(regexec(&re, "abcdab123xx", 0, NULL, 0), 0);
    ck_assert_int_ne(regexec(&re, "abq1", 0, NULL, 0), 0);
    regfree(&re);
}
END_TEST

START_TEST(getaddrinfo_localhost)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo("localhost", "80", &hints, &res);
    ck_assert_msg(rc == 0, "getaddrinfo(localhost): %s", gai_strerror(rc));
    ck_assert_ptr_nonnull(res);
    must_be_ours(res, "getaddrinfo");
    freeaddrinfo(res);
}
END_TEST

int main(void)
{
    hk_require_preloaded();
    Suite *s = suite_create("symbols");
    TCase *tc = tcase_create("exported");
    tcase_add_loop_test(tc, symbol_resolves_into_library, 0, (int)(sizeof exported / sizeof exported[0]));
    tcase_add_test(tc, aliases_work);
    suite_add_tcase(s, tc);
    TCase *tl = tcase_create("libc");
    tcase_set_timeout(tl, 30);
    tcase_add_test(tl, mallinfo2_tracks_large_blocks);
    tcase_add_test(tl, mallinfo2_tracks_small_blocks);
    tcase_add_test(tl, mallinfo_matches_mallinfo2);
    tcase_add_test(tl, malloc_trim_returns);
    tcase_add_test(tl, mallopt_answers);
    tcase_add_test(tl, malloc_stats_prints);
    tcase_add_test(tl, libc_allocated_pointers);
    tcase_add_test(tl, getaddrinfo_localhost);
    suite_add_tcase(s, tl);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
