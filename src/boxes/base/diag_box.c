/* diag_box: one-line diagnostics written without the heap. See diag_box.h. */
#include "hakmem_internal.h"
#include "base/diag_box.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void hk_msg_str(hk_msg_t *m, const char *s)
{
    while (*s && m->len < sizeof m->buf - 2)
        m->buf[m->len++] = *s++;
}

void hk_msg_u64(hk_msg_t *m, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n > 0 && m->len < sizeof m->buf - 2)
        m->buf[m->len++] = tmp[--n];
}

void hk_msg_hex(hk_msg_t *m, uintptr_t v)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = digits[v & 15];
        v >>= 4;
    } while (v);
    hk_msg_str(m, "0x");
    while (n > 0 && m->len < sizeof m->buf - 2)
        m->buf[m->len++] = tmp[--n];
}

void hk_msg_flush(hk_msg_t *m)
{
    int saved = errno;
    m->buf[m->len++] = '\n';
    size_t off = 0;
    while (off < m->len) {
        ssize_t w = write(2, m->buf + off, m->len - off);
        if (w <= 0) {
            if (w < 0 && errno == EINTR)
                continue;
            break;
        }
        off += (size_t)w;
    }
    m->len = 0;
    errno = saved;
}

void hk_warn(const char *text)
{
    hk_msg_t m = {.len = 0};
    hk_msg_str(&m, "hakmem: warning: ");
    hk_msg_str(&m, text);
    hk_msg_flush(&m);
}

void hk_report_misuse(const char *what, const void *ptr, const char *why)
{
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
    if (config_debug)
        abort();
}

void hk_fatal(const char *text)
{
    hk_msg_t m = {.len = 0};
    hk_msg_str(&m, "hakmem: error: ");
    hk_msg_str(&m, text);
    hk_msg_flush(&m);
    abort();
}
