/* t_misuse.c: double free and invalid free (CONFORMANCE B.14, B.15).
 *
 * Heap misuse is the program's bug, but what the allocator does next
 * decides whether it becomes a security hole: a double free that goes
 * unnoticed puts one block twice on a free list, and two later mallocs
 * return the same memory. So every misuse must be recognised from hakmem's
 * own metadata (the foreign pointers below point into PROT_NONE memory, so
 * an allocator that reads a header in front of them crashes), reported with
 * one line `hakmem: error: ...`, and then:
 *  - release builds (fast, lean): the program goes on, and no later
 *    allocation overlaps a live one;
 *  - debug build: abort() (SIGABRT) after the same line.
 * Each misuse runs in its own forked child whose stderr is captured; that
 * one line must be the whole of it. Where LEAN is on, a double free may be
 * reported as an invalid free (see expect_double_free).
 */
#include "hk_test.h"

#include <check.h>
#include <malloc.h>
#include <signal.h>
#include <sys/mman.h>

/* Opaque to the compiler, so -Wfree-nonheap-object and friends do not
 * reject the deliberate misuse at build time. */
static void *volatile launder_sink;
static void *launder(void *p)
{
    launder_sink = p;
    return launder_sink;
}

static void do_free(void *p)
{
    free(launder(p));
}

/* After the misuse: allocate many blocks of `size`, stamp each over its
 * whole usable size, and check that they are pairwise disjoint, disjoint
 * from the still-live block `live` (may be NULL), and keep their stamps.
 * Returns 0 if all is well, 1 (with a message on stdout) otherwise. */
static int no_overlap_after(size_t size, void *live, size_t live_len)
{
    int n = size >= (1u << 20) ? 24 : size >= 65536 ? 200 : 3000;
    void **v = calloc((size_t)n, sizeof *v);
    size_t *len = calloc((size_t)n, sizeof *len);
    if (!v || !len) {
        printf("no_overlap_after: calloc failed\n");
        return 1;
    }
    if (live)
        hk_stamp(live, live_len, 0xabc);
    for (int i = 0; i < n; i++) {
        v[i] = malloc(size);
        if (!v[i]) {
            printf("malloc(%zu) #%d failed after the misuse\n", size, i);
            return 1;
        }
        len[i] = malloc_usable_size(v[i]);
        if (len[i] < size)
            len[i] = size;
        hk_stamp(v[i], len[i], (unsigned)i);
    }
    for (int i = 0; i < n; i++) {
        uintptr_t a = (uintptr_t)v[i];
        if (live && a < (uintptr_t)live + live_len && (uintptr_t)live < a + len[i]) {
            printf("block %p (%zu bytes) overlaps the live block %p after the misuse\n", v[i], len[i], live);
            return 1;
        }
        if (hk_check_stamp(v[i], len[i], (unsigned)i) != (size_t)-1) {
            /* find the culprit for the message */
            for (int j = 0; j < n; j++) {
                uintptr_t b = (uintptr_t)v[j];
                if (j != i && a < b + len[j] && b < a + len[i])
                    printf("blocks %p and %p (size %zu) overlap after the misuse\n", v[i], v[j], size);
            }
            printf("block %p (size %zu) lost its contents after the misuse\n", v[i], size);
            return 1;
        }
    }
    if (live && hk_check_stamp(live, live_len, 0xabc) != (size_t)-1) {
        printf("the live block %p was overwritten after the misuse\n", live);
        return 1;
    }
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
    free(len);
    return 0;
}

/* ---- the misuses (each runs in a child) ----------------------------------- */
static int df_immediate(void *arg)
{
    size_t size = (size_t)(uintptr_t)arg;
    void *p = malloc(size);
    do_free(p);
    do_free(p);
    return no_overlap_after(size, NULL, 0);
}

static int df_delayed(void *arg)
{
    size_t size = (size_t)(uintptr_t)arg;
    void *p = malloc(size);
    void *q = malloc(size);
    do_free(p);
    do_free(q);
    do_free(p);
    return no_overlap_after(size, NULL, 0);
}

static int if_small_int(void *arg)
{
    do_free(arg);
    return no_overlap_after(64, NULL, 0);
}

static int if_offset(void *arg)
{
    size_t off = (size_t)(uintptr_t)arg;
    size_t size = off >= 4096 ? (4u << 20) : off > 1 ? 1000 : 64;
    char *p = malloc(size);
    do_free(p + off);
    /* p is still live: later blocks must not overlap it */
    int rc = no_overlap_after(size, p, size);
    free(p);
    return rc;
}

static int if_stack(void *arg)
{
    (void)arg;
    char buf[256];
    memset(buf, 0x11, sizeof buf);
    do_free(buf + 16);
    return no_overlap_after(64, NULL, 0);
}

static int if_foreign_mmap(void *arg)
{
    size_t off = (size_t)(uintptr_t)arg;
    long page = sysconf(_SC_PAGESIZE);
    /* PROT_NONE: reading the memory (e.g. a header before the pointer)
     * faults, so only a decision from hakmem's own metadata survives. */
    char *m = mmap(NULL, (size_t)page * 3, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        printf("mmap: %s\n", strerror(errno));
        return 2;
    }
    do_free(m + page + off);
    munmap(m, (size_t)page * 3);
    return no_overlap_after(64, NULL, 0);
}

/* ---- expectations ---------------------------------------------------------- */
/* Count the lines mentioning hakmem; return the first one in *line. */
static int hakmem_lines(const char *err, const char **first, size_t *first_len)
{
    int count = 0;
    const char *s = err;
    *first = NULL;
    *first_len = 0;
    while (*s) {
        const char *e = strchr(s, '\n');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (memmem(s, len, "hakmem", 6)) {
            if (!count) {
                *first = s;
                *first_len = len;
            }
            count++;
        }
        s += len + (e ? 1 : 0);
    }
    return count;
}

/* Is LEAN active in this column? */
static int lean_active(void)
{
    struct hakmem_stats st;
    return hk_stats(&st) == 0 && st.lean_mode;
}

/* `what` must appear in the line; `alt` (may be NULL) is an accepted
 * alternative wording. */
static void expect_report_alt(int (*fn)(void *), void *arg, const char *what, const char *alt, const char *desc)
{
    struct hk_child c;
    char st[64];
    const char *line;
    size_t len;

    hk_run_child(fn, arg, 30, &c);
    int n = hakmem_lines(c.err, &line, &len);
    ck_assert_msg(n == 1, "%s: expected exactly one hakmem line on stderr, got %d; status %s; stderr:\n%s", desc, n,
                  hk_status_str(c.status, st, sizeof st), c.err);
    /* The child writes nothing to stderr itself: the whole of it must be
     * that one line, complete, and nothing else (a second message that does
     * not say "hakmem", a partial write). */
    ck_assert_msg(line == c.err && c.err_len == len + 1 && c.err[len] == '\n',
                  "%s: stderr must be exactly the one hakmem line; it was (%zu bytes):\n%s", desc, c.err_len,
                  c.err);
    ck_assert_msg(len >= 14 && memcmp(line, "hakmem: error:", 14) == 0,
                  "%s: the hakmem line does not begin with 'hakmem: error:': %.*s", desc, (int)len, line);
    ck_assert_msg(memmem(line, len, what, strlen(what)) != NULL || (alt && memmem(line, len, alt, strlen(alt))),
                  "%s: the line does not mention '%s'%s%s: %.*s", desc, what, alt ? " nor " : "", alt ? alt : "",
                  (int)len, line);
    if (hk_is_debug()) {
        ck_assert_msg(WIFSIGNALED(c.status) && WTERMSIG(c.status) == SIGABRT, "%s: debug build should abort, got %s",
                      desc, hk_status_str(c.status, st, sizeof st));
    } else {
        ck_assert_msg(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0,
                      "%s: release build should report and go on without corruption, got %s; stderr:\n%s", desc,
                      hk_status_str(c.status, st, sizeof st), c.err);
    }
}

static void expect_report(int (*fn)(void *), void *arg, const char *what, const char *desc)
{
    expect_report_alt(fn, arg, what, NULL, desc);
}

/* A double free where LEAN is on: between the first free and the second
 * the block's slab may have been given back (budget 0 releases at once,
 * or after LEAN's hysteresis runs out, which depends on timing), and then
 * the pointer is indistinguishable from one hakmem never handed out:
 * "invalid free" is the right diagnosis. With LEAN off the slab stays and
 * the report must say "double free". */
static void expect_double_free(int (*fn)(void *), void *arg, const char *desc)
{
    expect_report_alt(fn, arg, "double free", lean_active() ? "invalid free" : NULL, desc);
}

#define ARG(x) ((void *)(uintptr_t)(x))

static const size_t df_sizes[] = {16, 64, 1000, 40000, 4u << 20};

START_TEST(double_free_immediate)
{
    char desc[64];
    snprintf(desc, sizeof desc, "free(p); free(p) with malloc(%zu)", df_sizes[_i]);
    expect_double_free(df_immediate, ARG(df_sizes[_i]), desc);
}
END_TEST

START_TEST(double_free_delayed)
{
    char desc[64];
    snprintf(desc, sizeof desc, "free(p); free(q); free(p) with malloc(%zu)", df_sizes[_i]);
    expect_double_free(df_delayed, ARG(df_sizes[_i]), desc);
}
END_TEST

/* Small bogus integers: a null-page value must not be dereferenced. */
static const uintptr_t bogus[] = {1, 8, 16, 4096, 0x10000};

START_TEST(invalid_free_small_integer)
{
    char desc[64];
    snprintf(desc, sizeof desc, "free((void*)%#lx)", (unsigned long)bogus[_i]);
    expect_report(if_small_int, ARG(bogus[_i]), "invalid free", desc);
}
END_TEST

/* p+1, interior pointers of a small and a large block */
static const size_t offsets[] = {1, 8, 16, 256, 4096, 65536 + 16};

START_TEST(invalid_free_offset)
{
    char desc[64];
    snprintf(desc, sizeof desc, "free(p + %zu)", offsets[_i]);
    expect_report(if_offset, ARG(offsets[_i]), "invalid free", desc);
}
END_TEST

START_TEST(invalid_free_stack)
{
    expect_report(if_stack, NULL, "invalid free", "free(stack address)");
}
END_TEST

START_TEST(invalid_free_foreign_mmap)
{
    static const size_t offs[] = {0, 16, 64};
    char desc[64];
    snprintf(desc, sizeof desc, "free(foreign PROT_NONE mmap + page + %zu)", offs[_i]);
    expect_report(if_foreign_mmap, ARG(offs[_i]), "invalid free", desc);
}
END_TEST

int main(void)
{
    hk_require_preloaded();
    Suite *s = suite_create("misuse");
    TCase *df = tcase_create("double_free");
    tcase_set_timeout(df, 60);
    tcase_add_loop_test(df, double_free_immediate, 0, (int)(sizeof df_sizes / sizeof df_sizes[0]));
    tcase_add_loop_test(df, double_free_delayed, 0, (int)(sizeof df_sizes / sizeof df_sizes[0]));
    suite_add_tcase(s, df);
    TCase *inv = tcase_create("invalid_free");
    tcase_set_timeout(inv, 60);
    tcase_add_loop_test(inv, invalid_free_small_integer, 0, (int)(sizeof bogus / sizeof bogus[0]));
    tcase_add_loop_test(inv, invalid_free_offset, 0, (int)(sizeof offsets / sizeof offsets[0]));
    tcase_add_test(inv, invalid_free_stack);
    tcase_add_loop_test(inv, invalid_free_foreign_mmap, 0, 3);
    suite_add_tcase(s, inv);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
