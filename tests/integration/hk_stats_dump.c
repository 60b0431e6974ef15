/* hk_stats_dump.c: holds a known set of blocks (1000 of 100 bytes, 100 of
 * 4000, three large ones of 1 MiB) and writes malloc_info's XML to argv[1]
 * and hakmem_stats_json's document to argv[2], for t_stats_parse.sh. */
#include "hk_test.h"

#include <malloc.h>

typedef size_t (*json_fn)(char *, size_t);

int main(int argc, char **argv)
{
    static void *keep[1103];
    static char json[1 << 16];
    if (argc != 3)
        return 2;
    hk_require_preloaded();
    for (int i = 0; i < 1000; i++)
        keep[i] = malloc(100);
    for (int i = 0; i < 100; i++)
        keep[1000 + i] = malloc(4000);
    for (int i = 0; i < 3; i++)
        keep[1100 + i] = malloc(1 << 20);
    FILE *x = fopen(argv[1], "w");
    if (!x || malloc_info(0, x) != 0 || fclose(x) != 0)
        hk_die("malloc_info into %s failed", argv[1]);
    json_fn f = (json_fn)(uintptr_t)dlsym(RTLD_DEFAULT, "hakmem_stats_json");
    if (!f)
        hk_die("hakmem_stats_json not found");
    size_t n = f(json, sizeof json);
    if (n >= sizeof json)
        hk_die("JSON of %zu bytes does not fit", n);
    FILE *j = fopen(argv[2], "w");
    if (!j || fwrite(json, 1, n, j) != n || fclose(j) != 0)
        hk_die("writing %s failed", argv[2]);
    for (int i = 0; i < 1103; i++)
        free(keep[i]);
    return 0;
}
