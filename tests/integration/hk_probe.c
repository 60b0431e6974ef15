/* hk_probe.c: prints the variant of the hakmem library in use, or fails.
 *
 * The script tests (t_real_programs.sh, ...) run it under the same
 * LD_PRELOAD as the programs they test, to prove the library is really
 * loaded and malloc really resolves into it; otherwise a broken preload
 * would make them pass against glibc. Exit 0 and print the variant name;
 * exit 99 with a message otherwise.
 */
#include "hk_test.h"

int main(void)
{
    hk_require_preloaded();
    printf("%s\n", hk_variant());
    return 0;
}
