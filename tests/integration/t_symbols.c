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

START_TEST(introspection_reports_own_data)
{
    /* mallinfo2 must move with our allocations: 32 MiB live then freed. */
    enum { N = 32 };
    void *v[N];
    struct mallinfo2 before = mallinfo2();
    for (int i = 0; i < N; i++) {
        v[i] = malloc(1u << 20);
        ck_assert_ptr_nonnull(v[i]);
        memset(v[i], 1, 1u << 20);
    }
    struct mallinfo2 during = mallinfo2();
    size_t used_before = before.uordblks + before.hblkhd;
    size_t used_during = during.uordblks + during.hblkhd;
    ck_assert_msg(used_during >= used_before + (size_t)N * (1u << 20) / 2,
                  "mallinfo2 in-use bytes went %zu -> %zu with 32 MiB more live", used_before, used_during);
    for (int i = 0; i < N; i++)
        free(v[i]);
    struct mallinfo2 after = mallinfo2();
    size_t used_after = after.uordblks + after.hblkhd;
    ck_assert_msg(used_after < used_during, "mallinfo2 in-use bytes did not drop after free (%zu -> %zu)",
                  used_during, used_after);

    /* mallinfo (int fields) must not crash and must be consistent-ish */
    typedef struct mallinfo (*mallinfo_fn)(void);
    mallinfo_fn mi_fn = SYM(mallinfo_fn, "mallinfo"); /* deprecated: call through dlsym */
    ck_assert_ptr_nonnull(mi_fn);
    struct mallinfo mi = mi_fn();
    ck_assert_int_ge(mi.uordblks, 0);

    /* mallopt: 1 = accepted, 0 = ignored; anything else is a bug */
    int r = mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    ck_assert_msg(r == 0 || r == 1, "mallopt returned %d", r);
    r = malloc_trim(0);
    ck_assert_msg(r == 0 || r == 1, "malloc_trim returned %d", r);
}
END_TEST

static int do_malloc_stats(void *arg)
{
    (void)arg;
    malloc_stats();
    return 0;
}

START_TEST(malloc_stats_prints)
{
    struct hk_child c;
    char st[64];
    hk_run_child(do_malloc_stats, NULL, 10, &c);
    ck_assert_msg(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0, "malloc_stats child: %s",
                  hk_status_str(c.status, st, sizeof st));
    ck_assert_msg(c.err_len > 0, "malloc_stats printed nothing on stderr");
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
    tcase_add_test(tl, introspection_reports_own_data);
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
