/* t_stats.c: the statistics against a known allocation pattern (README,
 * "Operating hakmem").
 *  - allocated: exactly the bytes the test holds, by usable size (the
 *    debug library: whole blocks, canary included, which the test computes
 *    from the class table), with blocks held by this thread, blocks freed
 *    by another thread (on remote lists: not allocated), blocks of a thread
 *    that exited (abandoned superslabs: allocated until freed), large
 *    blocks; per class, the blocks in use;
 *  - the registry's address reservation: reported as reserved, not as
 *    mapped or retained memory;
 *  - mallinfo2 with glibc's meanings and identities: with nothing
 *    allocated (the reservation is in no field) and with 100 MiB live
 *    (small blocks in uordblks, large ones in hblks/hblkhd only, arena =
 *    uordblks + fordblks); mallinfo the same, saturated;
 *  - hakmem_stats_json's snprintf contract;
 *  - printing at exit (HAKMEM_SS_OS_STATS=1, HAKMEM_STATS=json/FILE) with
 *    stderr closed, or a pipe nobody reads: the exit status stays;
 *    HAKMEM_STATS's booleans (on: human form, off: nothing, never a file
 *    named "1"), file:NAME with %p, a bare word refused.
 * The JSON and XML are parsed by t_stats_parse.sh (python3). */
#include "hk_test.h"

#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>

typedef int (*classes_fn)(struct hakmem_class_stats *, size_t);
typedef size_t (*json_fn)(char *, size_t);
#define SYM(type, name) ((type)(uintptr_t)dlsym(RTLD_DEFAULT, name))

static struct hakmem_class_stats g_cls[128];
static int g_ncls;

static void load_classes(struct hakmem_class_stats *out)
{
    classes_fn f = SYM(classes_fn, "hakmem_stats_classes");
    ck_assert_ptr_nonnull(f);
    g_ncls = f(out, 128);
    /* Every class, smallest first, up to the largest small size. */
    ck_assert_int_gt(g_ncls, 8);
    ck_assert_int_le(g_ncls, 128);
    for (int c = 1; c < g_ncls; c++)
        ck_assert_uint_gt(out[c].block_size, out[c - 1].block_size);
    ck_assert_uint_eq(out[g_ncls - 1].block_size, 32768);
}

/* The class of a small request as the library serves it; -1 for large. */
static int class_of(size_t size)
{
    /* The debug library's blocks hold a canary and a 16-byte trailer:
     * 17 bytes more (hakmem(3), Misuse). */
    size_t need = hk_is_debug() ? size + 17 : size;
    if (need == 0)
        need = 1;
    for (int c = 0; c < g_ncls; c++)
        if (g_cls[c].block_size >= need)
            return c;
    return -1;
}

/* What the test expects `allocated` to grow by for a block of this size. */
static size_t expected_bytes(void *p, size_t size)
{
    int c = class_of(size);
    if (hk_is_debug() && c >= 0)
        return g_cls[c].block_size;
    if (hk_is_debug()) /* a large block: its mapping, 17 bytes more than asked */
        return (size + 17 + 4095) & ~(size_t)4095;
    return malloc_usable_size(p);
}

#define N_OWN 3000
#define N_REMOTE 800
#define N_EXITED 600
static void *own[N_OWN], *remote[N_REMOTE], *exited[N_EXITED], *big[4];
static size_t own_sz[N_OWN], exited_sz[N_EXITED];
static const size_t big_sz[4] = {40000, 300000, 3 << 20, 9 << 20};

static void *free_all_remote(void *arg)
{
    (void)arg;
    for (int i = 0; i < N_REMOTE; i++)
        free(remote[i]);
    return NULL;
}

static void *alloc_and_exit(void *arg)
{
    (void)arg;
    for (int i = 0; i < N_EXITED; i++) {
        exited_sz[i] = 24 + (size_t)(i * 53) % 2000;
        exited[i] = malloc(exited_sz[i]);
    }
    return NULL;
}

START_TEST(allocated_is_exact)
{
    struct hakmem_stats a, b, c;
    static struct hakmem_class_stats before[128], after[128];
    static int64_t want_cls[128];
    load_classes(g_cls);
    pthread_t t;
    /* Blocks of a thread that exits before the count. */
    ck_assert_int_eq(pthread_create(&t, NULL, alloc_and_exit, NULL), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);

    ck_assert_int_eq(hk_stats(&a), 0);
    load_classes(before);
    size_t want = 0;
    memset(want_cls, 0, sizeof want_cls);
    for (int i = 0; i < N_OWN; i++) {
        own_sz[i] = (size_t)(i * 37) % 4097;
        own[i] = malloc(own_sz[i]);
        ck_assert_ptr_nonnull(own[i]);
        want += expected_bytes(own[i], own_sz[i]);
        want_cls[class_of(own_sz[i])]++;
    }
    for (int i = 0; i < N_REMOTE; i++)
        remote[i] = malloc(16 + (size_t)(i % 64) * 16);
    for (int i = 0; i < 4; i++) {
        big[i] = malloc(big_sz[i]);
        ck_assert_ptr_nonnull(big[i]);
        want += expected_bytes(big[i], big_sz[i]);
    }
    /* Another thread frees the remote set: those blocks wait on this
     * heap's remote lists, and are not allocated any more. */
    ck_assert_int_eq(pthread_create(&t, NULL, free_all_remote, NULL), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_int_eq(hk_stats(&b), 0);
    load_classes(after);
    ck_assert_msg(b.bytes_allocated - a.bytes_allocated == want,
                  "allocated grew by %llu; the test holds %zu (usable sizes)",
                  (unsigned long long)(b.bytes_allocated - a.bytes_allocated), want);
    for (int k = 0; k < g_ncls; k++)
        ck_assert_msg((int64_t)(after[k].blocks_in_use - before[k].blocks_in_use) == want_cls[k],
                      "class %d (%llu bytes): blocks in use grew by %lld, the test holds %lld", k,
                      (unsigned long long)after[k].block_size,
                      (long long)(after[k].blocks_in_use - before[k].blocks_in_use), (long long)want_cls[k]);
    ck_assert_uint_ge(b.large_live_bytes - a.large_live_bytes, (3u << 20) + (9u << 20));
    ck_assert_uint_ge(b.bytes_active, b.bytes_allocated);
    ck_assert_uint_ge(b.bytes_committed, b.bytes_resident);
    ck_assert_uint_ge(b.heaps_live, 1);

    /* The exited thread's blocks: allocated until freed, then not, though
     * nobody adopted their superslabs (frees into them are remote). */
    size_t ex = 0;
    for (int i = 0; i < N_EXITED; i++)
        ex += expected_bytes(exited[i], exited_sz[i]);
    for (int i = 0; i < N_EXITED; i++)
        free(exited[i]);
    ck_assert_int_eq(hk_stats(&c), 0);
    ck_assert_msg(b.bytes_allocated - c.bytes_allocated == ex,
                  "freeing an exited thread's blocks (%zu bytes) moved allocated by %lld", ex,
                  (long long)(b.bytes_allocated - c.bytes_allocated));

    /* Everything back: allocated returns to its level before. */
    for (int i = 0; i < N_OWN; i++)
        free(own[i]);
    for (int i = 0; i < 4; i++)
        free(big[i]);
    ck_assert_int_eq(hk_stats(&c), 0);
    ck_assert_msg(c.bytes_allocated + ex == a.bytes_allocated,
                  "after freeing everything allocated is %llu, before it was %llu (with %zu of the exited thread's)",
                  (unsigned long long)c.bytes_allocated, (unsigned long long)a.bytes_allocated, ex);
}
END_TEST

/* The older, shorter struct is still filled (binary compatibility). */
START_TEST(stats_get_old_size)
{
    struct hakmem_stats s;
    hk_stats_fn get = SYM(hk_stats_fn, "hakmem_stats_get");
    memset(&s, 0xAB, sizeof s);
    ck_assert_int_eq(get(&s, offsetof(struct hakmem_stats, bytes_active)), 0);
    ck_assert_uint_eq(s.bytes_active, 0xABABABABABABABABull); /* not written */
    ck_assert_uint_gt(s.bytes_allocated, 0);
    errno = 0;
    ck_assert_int_eq(get(&s, offsetof(struct hakmem_stats, bytes_allocated)), -1);
    ck_assert_int_eq(errno, EINVAL);
}
END_TEST

/* The registry's 64 MiB address reservation is never touched beyond what
 * is used: it is reported apart (reserved), and is neither mapped nor
 * retained memory. The test's own process holds a few MiB at most here. */
START_TEST(reservation_is_not_memory)
{
    struct hakmem_stats s;
    ck_assert_int_eq(hk_stats(&s), 0);
    ck_assert_msg(s.bytes_reserved >= ((uint64_t)64 << 20), "reserved %llu, the registry reserves 64 MiB",
                  (unsigned long long)s.bytes_reserved);
    ck_assert_msg(s.bytes_mapped < ((uint64_t)32 << 20) && s.bytes_retained < ((uint64_t)32 << 20),
                  "an idle process: mapped %llu, retained %llu (the reservation counted as memory?)",
                  (unsigned long long)s.bytes_mapped, (unsigned long long)s.bytes_retained);
    ck_assert_uint_ge(s.bytes_mapped, s.bytes_committed);
}
END_TEST

/* mallinfo2 with glibc's meanings and identities (the same program under
 * glibc: t_mallinfo.sh): arena = uordblks + fordblks; small blocks count in
 * uordblks only, large ones (own mappings) in hblks/hblkhd only; keepcost
 * within fordblks. */
START_TEST(mallinfo2_sane)
{
    struct mallinfo2 idle = mallinfo2();
    /* Nothing of the test's is live: in use is what libc and Check hold,
     * and the registry's reservation is in no field. */
    ck_assert_msg(idle.uordblks < ((size_t)4 << 20) && idle.hblkhd < ((size_t)4 << 20) &&
                      idle.arena < ((size_t)32 << 20),
                  "idle: uordblks %zu hblkhd %zu arena %zu", idle.uordblks, idle.hblkhd, idle.arena);
    ck_assert_msg(idle.arena == idle.uordblks + idle.fordblks, "idle: arena %zu != uordblks %zu + fordblks %zu",
                  idle.arena, idle.uordblks, idle.fordblks);

    /* 100 MiB live: 60 large blocks of 1 MiB, 40 MiB of 1000-byte blocks. */
    enum { NL = 60, NS = 40 * 1024 * 1024 / 1000 };
    static void *l[NL], *s[NS];
    size_t small = 0, large = 0;
    for (int i = 0; i < NL; i++) {
        l[i] = malloc(1 << 20);
        ck_assert_ptr_nonnull(l[i]);
        large += malloc_usable_size(l[i]);
    }
    for (int i = 0; i < NS; i++) {
        s[i] = malloc(1000);
        ck_assert_ptr_nonnull(s[i]);
        small += malloc_usable_size(s[i]);
    }
    /* The debug library counts whole blocks (1000 bytes + canary and trailer: 1024). */
    size_t small_hi = small + small / 8 + ((size_t)1 << 20);
    struct mallinfo2 m = mallinfo2();
    ck_assert_msg(m.uordblks >= idle.uordblks + small - ((size_t)1 << 20) && m.uordblks <= idle.uordblks + small_hi,
                  "%zu bytes of small blocks live: uordblks %zu (idle %zu); large blocks are hblkhd's only",
                  small, m.uordblks, idle.uordblks);
    ck_assert_msg(m.hblks == idle.hblks + NL && m.hblkhd >= idle.hblkhd + large &&
                      m.hblkhd <= idle.hblkhd + large + ((size_t)1 << 20),
                  "large: hblks %zu hblkhd %zu, expected %d more blocks and %zu more bytes", m.hblks, m.hblkhd, NL,
                  large);
    ck_assert_msg(m.arena == m.uordblks + m.fordblks && m.keepcost <= m.fordblks,
                  "arena %zu != uordblks %zu + fordblks %zu, or keepcost %zu above fordblks", m.arena, m.uordblks,
                  m.fordblks, m.keepcost);
    ck_assert_msg(m.arena < m.uordblks + ((size_t)64 << 20), "arena %zu for %zu in use: the large blocks in it?",
                  m.arena, m.uordblks);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    struct mallinfo mi = mallinfo();
#pragma GCC diagnostic pop
    ck_assert_msg((size_t)mi.uordblks >= small - ((size_t)1 << 20) && (size_t)mi.hblkhd >= large &&
                      mi.hblks == (int)m.hblks,
                  "mallinfo: uordblks %d hblkhd %d hblks %d", mi.uordblks, mi.hblkhd, mi.hblks);
    for (int i = 0; i < NL; i++)
        free(l[i]);
    for (int i = 0; i < NS; i++)
        free(s[i]);
    struct mallinfo2 e = mallinfo2();
    ck_assert_msg(e.uordblks <= idle.uordblks + ((size_t)1 << 20) && e.hblkhd <= idle.hblkhd,
                  "after freeing: uordblks %zu hblkhd %zu, idle was %zu %zu", e.uordblks, e.hblkhd, idle.uordblks,
                  idle.hblkhd);
    ck_assert_msg(e.arena == e.uordblks + e.fordblks, "after freeing: arena %zu != uordblks %zu + fordblks %zu",
                  e.arena, e.uordblks, e.fordblks);
}
END_TEST

START_TEST(json_snprintf_contract)
{
    json_fn json = SYM(json_fn, "hakmem_stats_json");
    ck_assert_ptr_nonnull(json);
    size_t need = json(NULL, 0);
    ck_assert_uint_gt(need, 100);
    char small[32];
    memset(small, 'x', sizeof small);
    size_t n = json(small, sizeof small);
    ck_assert_uint_ge(n, need - 64); /* the figures may have moved a digit */
    ck_assert_int_eq(small[31], '\0');
    ck_assert_int_eq(strncmp(small, "{\"version\": ", 12), 0);
    static char full[65536];
    n = json(full, sizeof full);
    ck_assert_uint_eq(strlen(full), n);
    ck_assert_msg(strstr(full, "\"allocated\": ") && strstr(full, "\"classes\": ["), "%s", full);
    struct hakmem_stats s;
    hk_stats(&s);
    /* Counters not built in are absent, not 0. */
    ck_assert_msg((strstr(full, "\"counters\": {") != NULL) == (s.stats_built_in != 0),
                  "counters object present=%d with stats_built_in=%llu", strstr(full, "\"counters\"") != NULL,
                  (unsigned long long)s.stats_built_in);
}
END_TEST

/* ---- printing at exit -------------------------------------------------- */

/* `t_stats --exit HOW`: allocate a little, arrange stderr as HOW says,
 * exit with 3. */
static void *volatile g_keep[2];

static int exit_mode(const char *how)
{
    g_keep[0] = malloc(1000);
    g_keep[1] = malloc(100000);
    if (strcmp(how, "closed") == 0) {
        close(2);
    } else if (strcmp(how, "broken-pipe") == 0) {
        int fds[2];
        if (pipe(fds) != 0)
            return 99;
        dup2(fds[1], 2);
        close(fds[1]);
        close(fds[0]); /* nobody will read: a write raises SIGPIPE */
    }
    exit(3);
}

static const char *g_self;

struct exit_case {
    const char *how;
    const char *env[3];
    const char *dir; /* the child's working directory, or NULL */
};

static int run_exit_case(void *arg)
{
    const struct exit_case *c = arg;
    for (int i = 0; c->env[i]; i++)
        putenv((char *)c->env[i]);
    if (c->dir && chdir(c->dir) != 0)
        return 126;
    execl(g_self, g_self, "--exit", c->how, (char *)NULL);
    return 127;
}

START_TEST(exit_printing_keeps_status)
{
    static char file_env[PATH_MAX + 16], path[PATH_MAX];
    snprintf(path, sizeof path, "/tmp/t_stats_exit_%d.json", (int)getpid());
    snprintf(file_env, sizeof file_env, "HAKMEM_STATS=%s", path);
    const struct exit_case cases[] = {
        {"normal", {"HAKMEM_SS_OS_STATS=1", NULL}, NULL},
        {"normal", {"HAKMEM_STATS=json", NULL}, NULL},
        {"normal", {file_env, NULL}, NULL},
        {"closed", {"HAKMEM_SS_OS_STATS=1", "HAKMEM_STATS=json", NULL}, NULL},
        {"broken-pipe", {"HAKMEM_SS_OS_STATS=1", "HAKMEM_STATS=json", NULL}, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct hk_child ch;
        char st[64];
        unlink(path);
        hk_run_child(run_exit_case, (void *)&cases[i], 20, &ch);
        ck_assert_msg(WIFEXITED(ch.status) && WEXITSTATUS(ch.status) == 3, "case %zu (%s, %s): %s; stderr:\n%s", i,
                      cases[i].how, cases[i].env[0], hk_status_str(ch.status, st, sizeof st), ch.err);
        if (i == 0)
            ck_assert_msg(strstr(ch.err, "\n  allocated ") && strstr(ch.err, " KiB"),
                          "HAKMEM_SS_OS_STATS=1: no human form with units at exit:\n%s", ch.err);
        if (i == 1)
            ck_assert_msg(strstr(ch.err, "{\"version\": ") && strstr(ch.err, "\"gauges\""),
                          "HAKMEM_STATS=json: no JSON on stderr:\n%s", ch.err);
        if (i == 2) {
            char buf[256] = "";
            int fd = open(path, O_RDONLY);
            ck_assert_msg(fd >= 0, "HAKMEM_STATS=%s: no file written", path);
            ck_assert_int_gt(read(fd, buf, sizeof buf - 1), 0);
            close(fd);
            ck_assert_msg(strncmp(buf, "{\"version\": ", 12) == 0, "file: %s", buf);
            ck_assert_msg(ch.err_len == 0, "HAKMEM_STATS=FILE also wrote to stderr:\n%s", ch.err);
        }
    }
    unlink(path);
}
END_TEST

/* The files in dir (not . and ..): their number; the first name in name. */
static int dir_files(const char *dir, char *name, size_t n)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int count = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (count++ == 0 && name)
            snprintf(name, n, "%s", e->d_name);
    }
    closedir(d);
    return count;
}

/* HAKMEM_STATS takes booleans as every boolean setting does: on prints the
 * human form on stderr, off prints nothing, and neither writes a file (a
 * file named "1" was once written in the working directory). A file needs
 * file:NAME or a path with a '/', and %p in it is the process id: two
 * processes, two files. A bare word is refused with one warning, and
 * writes nothing. */
START_TEST(stats_switches_leave_no_file)
{
    char dir[] = "/tmp/t_stats_cwd_XXXXXX", name[256];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    static const char *const on[] = {"HAKMEM_STATS=1", "HAKMEM_STATS=on", "HAKMEM_STATS=true", "HAKMEM_STATS=yes"};
    static const char *const off[] = {"HAKMEM_STATS=0", "HAKMEM_STATS=off", "HAKMEM_STATS=false", "HAKMEM_STATS=no"};
    for (int k = 0; k < 8; k++) {
        const char *env = k < 4 ? on[k] : off[k - 4];
        struct exit_case c = {"normal", {env, NULL}, dir};
        struct hk_child ch;
        char st[64];
        hk_run_child(run_exit_case, &c, 20, &ch);
        ck_assert_msg(WIFEXITED(ch.status) && WEXITSTATUS(ch.status) == 3, "%s: %s; stderr:\n%s", env,
                      hk_status_str(ch.status, st, sizeof st), ch.err);
        int files = dir_files(dir, name, sizeof name);
        ck_assert_msg(files == 0, "%s wrote a file '%s' in the working directory", env, name);
        if (k < 4)
            ck_assert_msg(strstr(ch.err, "\n  allocated ") && !strstr(ch.err, "{\"version\""),
                          "%s: no human form on stderr at exit:\n%s", env, ch.err);
        else
            ck_assert_msg(ch.err_len == 0, "%s: stderr is not empty:\n%s", env, ch.err);
    }
    /* A bare word: one warning, no file. */
    struct exit_case bare = {"normal", {"HAKMEM_STATS=stats.json", NULL}, dir};
    struct hk_child ch;
    hk_run_child(run_exit_case, &bare, 20, &ch);
    ck_assert_msg(strstr(ch.err, "hakmem: warning: HAKMEM_STATS='stats.json' is not valid") &&
                      strchr(ch.err, '\n') == ch.err + ch.err_len - 1,
                  "HAKMEM_STATS=stats.json: expected one warning line:\n%s", ch.err);
    ck_assert_msg(dir_files(dir, name, sizeof name) == 0, "HAKMEM_STATS=stats.json wrote '%s'", name);
    /* file:NAME with %p, twice: two files named after two processes. */
    struct exit_case file = {"normal", {"HAKMEM_STATS=file:st-%p.json", NULL}, dir};
    for (int run = 1; run <= 2; run++) {
        hk_run_child(run_exit_case, &file, 20, &ch);
        ck_assert_msg(WIFEXITED(ch.status) && WEXITSTATUS(ch.status) == 3 && ch.err_len == 0,
                      "HAKMEM_STATS=file:st-%%p.json: status 0x%x, stderr:\n%s", ch.status, ch.err);
        ck_assert_int_eq(dir_files(dir, name, sizeof name), run);
    }
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        unsigned long pid = 0;
        char tail[16] = "";
        ck_assert_msg(sscanf(e->d_name, "st-%lu%15s", &pid, tail) == 2 && pid > 1 &&
                          pid != (unsigned long)getpid() && strcmp(tail, ".json") == 0,
                      "file:st-%%p.json wrote '%s': %%p is not a process id", e->d_name);
        char path[PATH_MAX], buf[64] = "";
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        int fd = open(path, O_RDONLY);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_gt(read(fd, buf, sizeof buf - 1), 0);
        close(fd);
        unlink(path);
        ck_assert_msg(strncmp(buf, "{\"version\": ", 12) == 0, "%s: %s", e->d_name, buf);
    }
    closedir(d);
    ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--exit") == 0)
        return exit_mode(argv[2]);
    hk_require_preloaded();
    g_self = argv[0];
    static char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        g_self = self;
    }
    Suite *s = suite_create("stats");
    TCase *tc = tcase_create("stats");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, reservation_is_not_memory);
    tcase_add_test(tc, allocated_is_exact);
    tcase_add_test(tc, stats_get_old_size);
    tcase_add_test(tc, mallinfo2_sane);
    tcase_add_test(tc, json_snprintf_contract);
    tcase_add_test(tc, exit_printing_keeps_status);
    tcase_add_test(tc, stats_switches_leave_no_file);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
