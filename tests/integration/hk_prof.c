/* hk_prof.c: the programs t_prof.sh profiles. `hk_prof SCENARIO DIR`, the
 * profiler's settings in the environment (the script sets them):
 *
 *  sites    two allocation sites in two named functions: keep_site
 *           allocates 64 MiB in 1 KiB blocks and keeps them; churn_site
 *           allocates 256 MiB in 100-byte blocks, then frees them all.
 *           Prints the statistics' prof_samples and prof_bytes.
 *  paths    one site per entry point (calloc, realloc, posix_memalign,
 *           aligned_alloc, memalign, valloc), 3 MiB each in blocks of
 *           about 3000 bytes, and big_site's 3 MB of 20000-byte blocks
 *           (a sampled one takes 8 pages of the pool), kept; every block checked (zeroed, aligned,
 *           data kept across realloc, also of sampled blocks); then
 *           DIR/paths.heap written with hakmem_prof_dump; then everything
 *           freed: the live samples must be back to their number before.
 *  threads  four threads allocate and free (sampled) while: a fifth dumps
 *           to DIR/thr.N.heap in a loop; threads exit and dump from their
 *           thread-specific-data destructor (DIR/exit.N.heap); SIGALRM every
 *           2 ms dumps from its handler (DIR/sig.heap), also when it lands
 *           inside the profiler; fork() from a sixth thread every 20 ms,
 *           each child allocating, dumping (DIR/child.PID.heap) and
 *           exiting. Children that do not exit within 10 s fail the run.
 *           The main thread keeps 1 MiB to the end, so that every profile
 *           has samples.
 *  caps     every allocation sampled (prof_sample:1): 32768 blocks kept,
 *           each allocated from a call path of its own (a binary tree of
 *           calls 15 deep), more live stacks than the profiler keeps: one
 *           warning, the rest counted under the stack "@ 0x0" (DIR/caps.heap);
 *           a stack 100 calls deep is cut to its 62 innermost frames
 *           (deep_site, in the same profile); the pool's pages count as
 *           allocated; once everything is freed no sample is left, and a
 *           new stack is recorded again.
 *  misuse WHAT  every allocation sampled (prof_sample:1), so that a
 *           100-byte block is a page of the profiler's pool: WHAT is double
 *           (freed twice: reported, and the page is not handed out twice
 *           after it), interior (a pointer inside it freed: reported, the
 *           block stays usable) or realloc (realloc after free: reported,
 *           NULL with ENOMEM). The debug library aborts at the report.
 *  off      the profiler off: hakmem_prof_dump fails with ENOTSUP, no block
 *           is served by the profiler, its statistics are 0, and the
 *           process has one thread at the end.
 */
#include "hk_test.h"

#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>

typedef int (*hk_dump_fn)(const char *);
static hk_dump_fn g_dump;
static const char *g_dir;

static void dump_to(const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    if (g_dump(path) != 0)
        hk_die("hakmem_prof_dump(%s): %s", path, strerror(errno));
}

/* ---- sites ---------------------------------------------------------------- */

/* The sites: global (the leak summary names them through the loader),
 * never inlined (each is a frame of its own in the profile). */
void keep_site(void);
void churn_site(void **v, size_t n);
void calloc_site(void);
void realloc_site(void);
void posix_memalign_site(void);
void aligned_alloc_site(void);
void memalign_site(void);
void valloc_site(void);
void big_site(void);

#define KEEP_N 65536
void *g_keep[KEEP_N];

__attribute__((noinline)) void keep_site(void)
{
    for (int i = 0; i < KEEP_N; i++)
        if (!(g_keep[i] = malloc(1024)))
            hk_die("malloc(1024)");
}

__attribute__((noinline)) void churn_site(void **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(v[i] = malloc(100)))
            hk_die("malloc(100)");
}

static void print_prof_stats(void)
{
    struct hakmem_stats st;
    if (hk_stats(&st) != 0)
        hk_die("hakmem_stats_get");
    printf("prof_samples=%llu prof_bytes=%llu\n", (unsigned long long)st.prof_samples,
           (unsigned long long)st.prof_bytes);
}

static int run_sites(void)
{
    size_t n = ((size_t)256 << 20) / 100;
    void **v = mmap(NULL, n * sizeof *v, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (v == MAP_FAILED)
        hk_die("mmap");
    keep_site();
    churn_site(v, n);
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    munmap(v, n * sizeof *v);
    print_prof_stats();
    return 0;
}

/* ---- paths ---------------------------------------------------------------- */

#define PATH_N 1024 /* 3 MiB per path */
#define PATH_SIZE 3000
static void *g_path[6][PATH_N];
#define BIG_N 150 /* 3 MB in blocks of 20000 bytes: 5 pages, sampled into 8-page slots */
#define BIG_SIZE 20000
static unsigned char *g_big[BIG_N];

/* A block the profiler served: a sampled block is a large block of its
 * own, a page at least, where a request of at most 3072 bytes (aligned to
 * at most 256) gets a size class below 4096 (valloc's blocks excepted:
 * their class is the page). */
static int served_by_profiler(void *p) { return malloc_usable_size(p) >= 4096; }

__attribute__((noinline)) void calloc_site(void)
{
    for (int i = 0; i < PATH_N; i++) {
        unsigned char *p = calloc(1, PATH_SIZE);
        if (!p)
            hk_die("calloc");
        for (int k = 0; k < PATH_SIZE; k++)
            if (p[k])
                hk_die("calloc block %p not zero at %d", (void *)p, k);
        g_path[0][i] = p;
    }
}

__attribute__((noinline)) void realloc_site(void)
{
    for (int i = 0; i < PATH_N; i++) {
        char *p = malloc(16);
        if (!p)
            hk_die("malloc");
        memset(p, 'a' + i % 26, 16);
        char *q = realloc(p, PATH_SIZE);
        if (!q)
            hk_die("realloc");
        for (int k = 0; k < 16; k++)
            if (q[k] != 'a' + i % 26)
                hk_die("realloc lost the data of block %d", i);
        memset(q, 'b', PATH_SIZE);
        g_path[1][i] = q;
    }
}

__attribute__((noinline)) void posix_memalign_site(void)
{
    for (int i = 0; i < PATH_N; i++)
        if (posix_memalign(&g_path[2][i], 64, PATH_SIZE) || ((uintptr_t)g_path[2][i] & 63))
            hk_die("posix_memalign");
}

__attribute__((noinline)) void aligned_alloc_site(void)
{
    for (int i = 0; i < PATH_N; i++)
        if (!(g_path[3][i] = aligned_alloc(256, 2816)) || ((uintptr_t)g_path[3][i] & 255))
            hk_die("aligned_alloc");
}

__attribute__((noinline)) void memalign_site(void)
{
    for (int i = 0; i < PATH_N; i++)
        if (!(g_path[4][i] = memalign(128, PATH_SIZE)) || ((uintptr_t)g_path[4][i] & 127))
            hk_die("memalign");
}

__attribute__((noinline)) void valloc_site(void)
{
    for (int i = 0; i < PATH_N; i++)
        if (!(g_path[5][i] = valloc(PATH_SIZE)) || ((uintptr_t)g_path[5][i] & 4095))
            hk_die("valloc");
}

__attribute__((noinline)) void big_site(void)
{
    for (int i = 0; i < BIG_N; i++) {
        if (!(g_big[i] = malloc(BIG_SIZE)))
            hk_die("malloc(%d)", BIG_SIZE);
        memset(g_big[i], i & 255, BIG_SIZE);
    }
}

static int run_paths(void)
{
    struct hakmem_stats st;
    printf("paths\n"); /* stdio's buffer first: it may be a sample of its own */
    fflush(stdout);
    hk_stats(&st);
    uint64_t before = st.prof_samples;
    calloc_site();
    realloc_site();
    posix_memalign_site();
    aligned_alloc_site();
    memalign_site();
    valloc_site();
    big_site();
    int big_sampled = 0;
    for (int i = 0; i < BIG_N; i++) {
        big_sampled += malloc_usable_size(g_big[i]) >= 32768;
        for (int k = 0; k < BIG_SIZE; k++)
            if (g_big[i][k] != (i & 255))
                hk_die("block %d of 20000 bytes lost byte %d", i, k);
    }
    if (!big_sampled)
        hk_die("no block of 20000 bytes was sampled (into a slot of 8 pages)");
    /* Sampled blocks moved by realloc keep their data; a sampled block
     * realloc'd without being sampled again leaves the profiler. */
    int moved = 0;
    for (int i = 0; i < PATH_N; i += 2) { /* half: the others stay realloc_site's */
        char *p = g_path[1][i];
        if (!served_by_profiler(p))
            continue;
        char *q = realloc(p, PATH_SIZE + 100);
        if (!q)
            hk_die("realloc of a sampled block");
        for (int k = 0; k < PATH_SIZE; k++)
            if (q[k] != 'b')
                hk_die("realloc of a sampled block lost its data at %d", k);
        q = realloc(q, PATH_SIZE);
        if (!q)
            hk_die("realloc back");
        g_path[1][i] = q;
        moved++;
    }
    dump_to("paths.heap");
    hk_stats(&st);
    uint64_t live = st.prof_samples - before;
    size_t served = 0;
    for (int k = 0; k < 5; k++)
        for (int i = 0; i < PATH_N; i++)
            served += served_by_profiler(g_path[k][i]);
    printf("samples=%llu served=%zu moved=%d\n", (unsigned long long)live, served, moved);
    /* Every block the profiler served is a live sample (valloc's add
     * samples that are not counted as served). */
    if (!served || served > live)
        hk_die("%llu samples live, but %zu blocks were served by the profiler", (unsigned long long)live, served);
    for (int k = 0; k < 6; k++)
        for (int i = 0; i < PATH_N; i++)
            free(g_path[k][i]);
    for (int i = 0; i < BIG_N; i++)
        free(g_big[i]);
    hk_stats(&st);
    if (st.prof_samples != before)
        hk_die("%llu samples live after every block was freed, %llu before", (unsigned long long)st.prof_samples,
               (unsigned long long)before);
    return 0;
}

/* ---- threads -------------------------------------------------------------- */

static _Atomic int g_stop;
static pthread_key_t g_key;
static _Atomic int g_exit_dumps, g_sig_dumps;

static void sig_dump(int sig)
{
    int saved = errno;
    char path[PATH_MAX];
    /* Built without snprintf (not async-signal-safe). */
    size_t n = strlen(g_dir);
    memcpy(path, g_dir, n);
    memcpy(path + n, "/sig.heap", 10);
    if (g_dump(path) == 0)
        g_sig_dumps++;
    errno = saved;
}

static void exit_dump(void *arg)
{
    char name[64];
    snprintf(name, sizeof name, "exit.%d.heap", (int)(intptr_t)arg);
    dump_to(name);
    g_exit_dumps++;
}

/* Allocate and free blocks of 16 B..64 KiB, some kept a while. */
static void churn(unsigned seed, int rounds)
{
    void *keep[256] = {0};
    for (int r = 0; r < rounds && !g_stop; r++) {
        seed = seed * 1103515245 + 12345;
        unsigned k = (seed >> 8) % 256;
        free(keep[k]);
        size_t size = 16 + (seed >> 4) % ((seed & 15) ? 2048 : 65536);
        char *p = (seed & 3) ? malloc(size) : calloc(1, size);
        if (!p)
            hk_die("malloc in a thread");
        p[0] = p[size - 1] = 1;
        keep[k] = p;
    }
    for (int k = 0; k < 256; k++)
        free(keep[k]);
}

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int gen = 0; !g_stop; gen++) {
        churn((unsigned)(id * 7919 + gen), 10000);
        if (gen % 3 == 2)
            break; /* exit: a new thread takes over (below) */
    }
    pthread_setspecific(g_key, (void *)(intptr_t)(id * 100 + 1));
    return NULL;
}

static void *dumper(void *arg)
{
    char name[64];
    for (int i = 0; !g_stop; i++) {
        snprintf(name, sizeof name, "thr.%d.heap", i % 4);
        dump_to(name);
        usleep(5000);
    }
    return NULL;
}

static void *forker(void *arg)
{
    int children = 0;
    while (!g_stop && children < 4) {
        usleep(20000);
        pid_t pid = fork();
        if (pid < 0)
            hk_die("fork: %s", strerror(errno));
        if (pid == 0) {
            alarm(10);
            churn(777, 5000);
            char name[64];
            snprintf(name, sizeof name, "child.%d.heap", (int)getpid());
            dump_to(name);
            _exit(0);
        }
        int st;
        for (int t = 0; waitpid(pid, &st, WNOHANG) == 0; t++) {
            if (t > 1000) {
                kill(pid, SIGKILL);
                hk_die("child %d of a fork during sampling hung", (int)pid);
            }
            usleep(10000);
        }
        if (!WIFEXITED(st) || WEXITSTATUS(st))
            hk_die("child of a fork during sampling: status %#x", st);
        children++;
    }
    printf("children=%d\n", children);
    return NULL;
}

static int run_threads(void)
{
    pthread_key_create(&g_key, exit_dump);
    struct sigaction sa = {.sa_handler = sig_dump};
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    for (int i = 0; i < KEEP_N / 64; i++)
        if (!(g_keep[i] = malloc(1024)))
            hk_die("malloc(1024)");
    struct itimerval it = {{0, 2000}, {0, 2000}};
    setitimer(ITIMER_REAL, &it, NULL);
    pthread_t w[4], d, f;
    for (int i = 0; i < 4; i++)
        pthread_create(&w[i], NULL, worker, (void *)(intptr_t)i);
    pthread_create(&d, NULL, dumper, NULL);
    pthread_create(&f, NULL, forker, NULL);
    int gens = 0;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 4; i++) {
            pthread_join(w[i], NULL);
            pthread_create(&w[i], NULL, worker, (void *)(intptr_t)(i + 4 * (round + 1)));
            gens++;
        }
        churn(4242 + round, 10000); /* the main thread samples too, under the timer's signals */
    }
    pthread_join(f, NULL);
    g_stop = 1;
    for (int i = 0; i < 4; i++)
        pthread_join(w[i], NULL);
    pthread_join(d, NULL);
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    sig_dump(0); /* at least one, whatever the timer managed */
    printf("exit_dumps=%d sig_dumps=%d threads_replaced=%d\n", g_exit_dumps, g_sig_dumps, gens);
    if (g_exit_dumps < 4)
        hk_die("only %d dumps from exiting threads", g_exit_dumps);
    return 0;
}

/* ---- caps ----------------------------------------------------------------- */

#define TREE_DEPTH 15
static void *g_leaf[1 << TREE_DEPTH];
static int g_nleaf;
void deep_site(int depth);
static void tree(int depth);

/* Two call sites per level: each leaf's stack is its own. */
__attribute__((noinline)) static void tree_left(int depth)
{
    tree(depth);
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void tree_right(int depth)
{
    tree(depth);
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void tree(int depth)
{
    if (!depth) {
        if (!(g_leaf[g_nleaf++] = malloc(16)))
            hk_die("malloc(16)");
        return;
    }
    tree_left(depth - 1);
    tree_right(depth - 1);
    __asm__ volatile("" ::: "memory");
}

static void *g_deep;
__attribute__((noinline)) void deep_site(int depth)
{
    if (depth)
        deep_site(depth - 1);
    else if (!(g_deep = malloc(64)))
        hk_die("malloc(64)");
    __asm__ volatile("" ::: "memory");
}

static int run_caps(void)
{
    struct hakmem_stats st;
    deep_site(100); /* before the table is full */
    tree(TREE_DEPTH);
    dump_to("caps.heap");
    hk_stats(&st);
    printf("samples=%llu prof_bytes=%llu\n", (unsigned long long)st.prof_samples, (unsigned long long)st.prof_bytes);
    fflush(stdout);
    if (st.prof_samples < (1u << TREE_DEPTH))
        hk_die("%llu samples live, every allocation sampled", (unsigned long long)st.prof_samples);
    /* Each 16-byte block is a page of the profiler's pool: allocated by
     * its usable size. */
    if (st.bytes_allocated < ((uint64_t)1 << TREE_DEPTH) * 4096)
        hk_die("%llu bytes allocated with 32768 pooled samples live", (unsigned long long)st.bytes_allocated);
    for (int i = 0; i < g_nleaf; i++)
        free(g_leaf[i]);
    free(g_deep);
    hk_stats(&st);
    if (st.prof_samples > 4)
        hk_die("%llu samples left after the blocks were freed", (unsigned long long)st.prof_samples);
    deep_site(3); /* a new stack: the table has room again */
    dump_to("caps-after.heap");
    free(g_deep);
    return 0;
}

/* ---- misuse ----------------------------------------------------------------- */

/* The compiler may not see the misuse (it would warn, or drop the call). */
static void *volatile launder_sink;
__attribute__((noinline)) static void *launder(void *p)
{
    launder_sink = p;
    return launder_sink;
}

static int run_misuse(const char *what)
{
    char *p = malloc(100);
    if (!p || malloc_usable_size(p) < 4096)
        hk_die("malloc(100) with every allocation sampled: not a page of the pool");
    memset(p, 1, 100);
    char *alias = launder(p); /* the same pointer, used after the free */
    if (!strcmp(what, "double")) {
        free(p);
        free(alias);
        char *q1 = malloc(100), *q2 = malloc(100);
        if (!q1 || !q2 || q1 == q2)
            hk_die("after a double free the page was handed out twice (%p, %p)", (void *)q1, (void *)q2);
        free(q1);
        free(q2);
    } else if (!strcmp(what, "interior")) {
        free(launder(alias + 16));
        for (int k = 0; k < 100; k++)
            if (p[k] != 1)
                hk_die("the block changed after an invalid free of its interior");
        free(p);
    } else if (!strcmp(what, "realloc")) {
        free(p);
        errno = 0;
        void *q = realloc(alias, 200);
        if (q || errno != ENOMEM)
            hk_die("realloc after free: %p, errno %d", q, errno);
    } else {
        hk_die("unknown misuse %s", what);
    }
    printf("ok\n");
    return 0;
}

/* ---- off ------------------------------------------------------------------ */

static int task_count(void)
{
    int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return -1;
    char buf[4096];
    int n = 0;
    long r;
    while ((r = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0)
        for (long off = 0; off < r;) {
            const char *name = buf + off + 19;
            unsigned short reclen;
            memcpy(&reclen, buf + off + 16, sizeof reclen);
            if (name[0] != '.')
                n++;
            off += reclen;
        }
    close(fd);
    return n;
}

static int run_off(void)
{
    keep_site();
    for (int i = 0; i < KEEP_N; i++)
        if (served_by_profiler(g_keep[i]))
            hk_die("block %d (%zu usable bytes for 1024) came from the profiler with prof off", i,
                   malloc_usable_size(g_keep[i]));
    errno = 0;
    if (g_dump(NULL) != -1 || errno != ENOTSUP)
        hk_die("hakmem_prof_dump with prof off: not -1/ENOTSUP (errno %d)", errno);
    struct hakmem_stats st;
    hk_stats(&st);
    if (st.prof_samples || st.prof_bytes)
        hk_die("prof off: prof_samples %llu, prof_bytes %llu", (unsigned long long)st.prof_samples,
               (unsigned long long)st.prof_bytes);
    int tasks = task_count();
    printf("threads=%d\n", tasks);
    if (tasks != 1)
        hk_die("prof off: %d threads", tasks);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        hk_die("usage: hk_prof sites|paths|threads|caps|off DIR | misuse DIR double|interior|realloc");
    hk_require_preloaded();
    g_dir = argv[2];
    g_dump = (hk_dump_fn)(uintptr_t)dlsym(RTLD_DEFAULT, "hakmem_prof_dump");
    if (!g_dump)
        hk_die("hakmem_prof_dump is not exported");
    if (!strcmp(argv[1], "sites"))
        return run_sites();
    if (!strcmp(argv[1], "paths"))
        return run_paths();
    if (!strcmp(argv[1], "threads"))
        return run_threads();
    if (!strcmp(argv[1], "off"))
        return run_off();
    if (!strcmp(argv[1], "caps"))
        return run_caps();
    if (!strcmp(argv[1], "misuse") && argc > 3)
        return run_misuse(argv[3]);
    hk_die("unknown scenario %s", argv[1]);
}
