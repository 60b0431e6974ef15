/* early_ctor_lib.c: a second preloaded library whose constructor allocates
 * (helper of t_early.c, CONFORMANCE A.13).
 *
 * Preloaded next to hakmem, its constructor may run before hakmem's own
 * initialisation (constructor order between independent preloaded
 * libraries is the loader's choice), so the allocator must initialise
 * itself lazily from whatever call comes first. The results are left in
 * exported variables for t_early to check from main.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Read by t_early through dlsym. */
int hk_early_ctor_ran;
int hk_early_ctor_ok;
void *hk_early_ctor_keep[4];

/* Priority 101: as early as a constructor can ask. */
__attribute__((constructor(101))) static void early_ctor(void)
{
    int ok = 1;
    char *a = malloc(40);
    char *b = calloc(100, 3);
    void *c = NULL;
    if (!a || !b || posix_memalign(&c, 4096, 5000) != 0)
        ok = 0;
    if (ok) {
        memset(a, 'a', 40);
        for (int i = 0; i < 300; i++)
            if (b[i] != 0)
                ok = 0;
        if ((uintptr_t)c & 4095)
            ok = 0;
        char *d = realloc(a, 100000);
        if (!d || d[39] != 'a')
            ok = 0;
        else
            a = d;
    }
    /* A few freed now, the rest kept for main to free (crossing from the
     * pre-initialisation phase into normal running). */
    void *tmp = malloc(24);
    free(tmp);
    hk_early_ctor_keep[0] = a;
    hk_early_ctor_keep[1] = b;
    hk_early_ctor_keep[2] = c;
    hk_early_ctor_keep[3] = strdup("from the early constructor");
    if (!hk_early_ctor_keep[3])
        ok = 0;
    hk_early_ctor_ok = ok;
    hk_early_ctor_ran = 1;
}
