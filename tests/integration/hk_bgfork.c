/* hk_bgfork.c: the background thread across fork(), for t_purge.sh (run
 * with HAKMEM_BACKGROUND=1). The parent's thread starts with its first
 * allocations; a child forked while it runs has no such thread at first
 * (fork copies only the caller) and gets its own once it allocates again
 * (the allocator's slow paths start it lazily); the child's allocator
 * works meanwhile. Prints parent=N child_before=N child_after=N. */
#include "hk_test.h"

#include <dirent.h>

static int threads(void)
{
    char path[64];
    int n = 0;
    snprintf(path, sizeof path, "/proc/%d/task", (int)getpid());
    DIR *d = opendir(path);
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

int main(void)
{
    hk_require_preloaded();
    void *keep[64];
    for (int i = 0; i < 64; i++)
        keep[i] = malloc(100 + i);
    int parent = threads();
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        hk_die("fork: %s", strerror(errno));
    if (pid == 0) {
        int before = threads();
        for (int i = 0; i < 64; i++)
            free(keep[i]);
        /* Slow paths for a while (each 4000-byte block refills a slab). */
        double t0 = hk_now();
        int after = before;
        while (hk_now() - t0 < 3 && after < 2) {
            static void *v[4096];
            for (int i = 0; i < 4096; i++)
                v[i] = malloc(4000);
            for (int i = 0; i < 4096; i++)
                free(v[i]);
            after = threads();
        }
        printf("parent=%d child_before=%d child_after=%d\n", parent, before, after);
        fflush(stdout);
        _exit(0);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        hk_die("child failed: status 0x%x", st);
    return 0;
}
