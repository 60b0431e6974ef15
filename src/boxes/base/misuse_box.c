/* misuse_box: the report of a misuse and abort_on_error. See the header. */
#include "hakmem_internal.h"
#include "base/misuse_box.h"
#include "base/diag_box.h"
#include "base/env_box.h"

#include <errno.h>
#include <stdlib.h>

bool hk_misuse_aborts(void) { return hk_opt(HK_OPT_ABORT_ON_ERROR) != 0; }

void hk_report_misuse(const char *what, const void *ptr, const char *why)
{
    int saved = errno;
    hk_msg_t m = {.len = 0};
    hk_msg_str(&m, "hakmem: error: ");
    hk_msg_str(&m, what);
    hk_msg_str(&m, " of ");
    hk_msg_hex(&m, (uintptr_t)ptr);
    if (why) {
        hk_msg_str(&m, " (");
        hk_msg_str(&m, why);
        hk_msg_str(&m, ")");
    }
    hk_msg_flush(&m);
    /* After the line, never before: the program's last words say why. The
     * settings are parsed without the heap, so a misuse before the first
     * malloc still obeys them. */
    if (hk_misuse_aborts())
        abort();
    errno = saved;
}
