/* t_early.c: allocation before main (CONFORMANCE A.13).
 *
 * Real programs allocate long before main: C++ static initialisers,
 * constructors of other libraries, .preinit_array entries of sanitizers and
 * profilers. The allocator cannot rely on its own constructor having run
 * first, so each of these paths allocates, frees, and keeps some blocks that
 * main then checks (still ours, contents intact) and frees.
 *
 * Three ways in:
 *  - a .preinit_array entry of this executable (runs before any
 *    constructor, even those of preloaded libraries);
 *  - a priority-101 constructor of this executable;
 *  - the constructor of a second preloaded library (early_ctor_lib.c).
 *    For that, main re-executes this program twice with the helper library
 *    added to LD_PRELOAD, once after hakmem and once before it, because the
 *    loader's constructor order between them is not ours to choose.
 *
 * Plain C rather than Check: the interesting work happens before main.
 */
#include "hk_test.h"

#include <malloc.h>
#include <stdbool.h>

enum { KEEP = 4 };

struct phase {
    const char *name;
    int ran;
    int ok;
    void *keep[KEEP];
    size_t keep_len[KEEP];
};

static struct phase preinit_phase = {.name = "preinit_array"};
static struct phase ctor_phase = {.name = "constructor(101)"};

/* Allocate in several ways; keep KEEP blocks stamped with a pattern. */
static void exercise(struct phase *ph)
{
    static const size_t sizes[KEEP] = {16, 1000, 70000, 3u << 20};
    int ok = 1;
    void *tmp[16];

    for (int i = 0; i < 16; i++) {
        tmp[i] = malloc((size_t)(i + 1) * 48);
        if (!tmp[i])
            ok = 0;
    }
    for (int i = 0; i < 16; i += 2)
        free(tmp[i]);
    void *al = NULL;
    if (posix_memalign(&al, 65536, 100) != 0 || ((uintptr_t)al & 65535))
        ok = 0;
    free(al);
    char *z = calloc(1000, 1);
    if (!z)
        ok = 0;
    else
        for (int i = 0; i < 1000; i++)
            if (z[i])
                ok = 0;
    z = realloc(z, 5000);
    if (!z)
        ok = 0;
    free(z);
    for (int i = 1; i < 16; i += 2)
        free(tmp[i]);

    for (int k = 0; k < KEEP; k++) {
        ph->keep[k] = malloc(sizes[k]);
        ph->keep_len[k] = sizes[k];
        if (!ph->keep[k])
            ok = 0;
        else
            hk_stamp(ph->keep[k], sizes[k], (unsigned)k + 100);
    }
    ph->ok = ok;
    ph->ran = 1;
}

static void preinit_fn(int argc, char **argv, char **envp)
{
    (void)argc;
    (void)argv;
    (void)envp;
    exercise(&preinit_phase);
}

__attribute__((section(".preinit_array"), used)) static void (*const preinit_entry)(int, char **, char **) =
    preinit_fn;

__attribute__((constructor(101))) static void early_ctor(void)
{
    exercise(&ctor_phase);
}

static int check_phase(const struct phase *ph)
{
    int fails = 0;
    if (!ph->ran) {
        fprintf(stderr, "FAIL: %s did not run\n", ph->name);
        return 1;
    }
    if (!ph->ok) {
        fprintf(stderr, "FAIL: an allocation in %s failed or returned bad memory\n", ph->name);
        fails++;
    }
    for (int k = 0; k < KEEP; k++) {
        void *p = ph->keep[k];
        if (!p)
            continue;
        if (hk_owns(p) != 1) {
            fprintf(stderr, "FAIL: block %p allocated in %s is not hakmem's\n", p, ph->name);
            fails++;
        }
        if (malloc_usable_size(p) < ph->keep_len[k]) {
            fprintf(stderr, "FAIL: block %p from %s: usable size %zu < %zu\n", p, ph->name,
                    malloc_usable_size(p), ph->keep_len[k]);
            fails++;
        }
        size_t bad = hk_check_stamp(p, ph->keep_len[k], (unsigned)k + 100);
        if (bad != (size_t)-1) {
            fprintf(stderr, "FAIL: block %p from %s damaged at offset %zu\n", p, ph->name, bad);
            fails++;
        }
        free(p);
    }
    return fails;
}

/* Checks made in a run where early_ctor_lib.so is preloaded too. */
static int check_ctor_lib(void)
{
    int *ran = dlsym(RTLD_DEFAULT, "hk_early_ctor_ran");
    int *ok = dlsym(RTLD_DEFAULT, "hk_early_ctor_ok");
    void **keep = dlsym(RTLD_DEFAULT, "hk_early_ctor_keep");
    int fails = 0;
    if (!ran || !ok || !keep) {
        fprintf(stderr, "FAIL: the constructor library is not loaded (LD_PRELOAD=%s)\n", getenv("LD_PRELOAD"));
        return 1;
    }
    if (!*ran || !*ok) {
        fprintf(stderr, "FAIL: the other library's constructor: ran=%d ok=%d\n", *ran, *ok);
        fails++;
    }
    for (int i = 0; i < 4; i++) {
        if (keep[i] && hk_owns(keep[i]) != 1) {
            fprintf(stderr, "FAIL: block %p from the other library's constructor is not hakmem's\n", keep[i]);
            fails++;
        }
        free(keep[i]);
    }
    if (fails == 0)
        printf("ok: allocations in another preloaded library's constructor (LD_PRELOAD=%s)\n", getenv("LD_PRELOAD"));
    return fails;
}

static int run_with_preload(const char *self, const char *preload)
{
    char st[64];
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        hk_die("fork: %s", strerror(errno));
    if (pid == 0) {
        setenv("LD_PRELOAD", preload, 1);
        setenv("HK_EARLY_CTOR_LIB_EXPECTED", "1", 1);
        alarm(60);
        execl(self, self, (char *)NULL);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "FAIL: run with LD_PRELOAD=%s: %s\n", preload, hk_status_str(status, st, sizeof st));
        return 1;
    }
    return 0;
}

int main(void)
{
    int fails = 0;

    /* hk_require_preloaded() allocates; the phases above have already run,
     * so their results are not disturbed by it. */
    hk_require_preloaded();
    fails += check_phase(&preinit_phase);
    fails += check_phase(&ctor_phase);
    if (fails == 0)
        printf("ok: allocations in .preinit_array and constructor(101)\n");

    if (getenv("HK_EARLY_CTOR_LIB_EXPECTED"))
        return (check_ctor_lib() + fails) ? 1 : 0;

    /* The second preloaded library, if the build made it. */
    const char *top = getenv("abs_top_builddir");
    const char *hak = getenv("LD_PRELOAD");
    if (!top || !hak) {
        printf("note: abs_top_builddir or LD_PRELOAD unset (not run by tests/run-variant): "
               "other-library constructor part not run\n");
        return fails ? 1 : 0;
    }
    char lib[PATH_MAX], self[PATH_MAX], pre[2 * PATH_MAX + 2];
    snprintf(lib, sizeof lib, "%s/tests/integration/.libs/early_ctor_lib.so", top);
    if (access(lib, R_OK) != 0) {
        fprintf(stderr, "FAIL: %s missing (make check builds it)\n", lib);
        return 1;
    }
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        hk_die("readlink /proc/self/exe: %s", strerror(errno));
    self[n] = '\0';
    snprintf(pre, sizeof pre, "%s:%s", hak, lib);
    fails += run_with_preload(self, pre);
    snprintf(pre, sizeof pre, "%s:%s", lib, hak);
    fails += run_with_preload(self, pre);
    return fails ? 1 : 0;
}
