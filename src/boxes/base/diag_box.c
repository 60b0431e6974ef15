/* diag_box: one-line diagnostics written without the heap. See diag_box.h. */
#include "hakmem_internal.h"
#include "base/diag_box.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <time.h>
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

void hk_out_init_fd(hk_out_t *o, int fd)
{
    o->fd = fd;
    o->buf = NULL;
    o->cap = 0;
    o->sink = NULL;
    o->ctx = NULL;
    o->total = o->len = 0;
    o->failed = 0;
}

void hk_out_init_buf(hk_out_t *o, char *buf, size_t cap)
{
    hk_out_init_fd(o, -1);
    o->buf = buf;
    o->cap = buf ? cap : 0;
    if (o->cap)
        buf[0] = '\0';
}

void hk_out_init_sink(hk_out_t *o, void (*sink)(void *ctx, const char *s, size_t n), void *ctx)
{
    hk_out_init_fd(o, -1);
    o->sink = sink;
    o->ctx = ctx;
}

/* write(2) with SIGPIPE blocked: a reader that went away makes the write
 * fail with EPIPE instead of killing the process; a SIGPIPE this write
 * raised is taken back, one that was pending before stays. */
static void out_write_fd(hk_out_t *o, const char *s, size_t n)
{
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    sigpending(&pending);
    bool was_pending = sigismember(&pending, SIGPIPE);
    while (n && !o->failed) {
        ssize_t w = write(o->fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            o->failed = 1;
            if (w < 0 && errno == EPIPE && !was_pending) {
                struct timespec zero = {0, 0};
                sigtimedwait(&pipe_set, NULL, &zero);
            }
            break;
        }
        s += w;
        n -= (size_t)w;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void out_drain(hk_out_t *o)
{
    if (!o->len)
        return;
    if (o->fd >= 0)
        out_write_fd(o, o->chunk, o->len);
    else if (o->sink)
        o->sink(o->ctx, o->chunk, o->len);
    o->len = 0;
}

void hk_out_mem(hk_out_t *o, const char *s, size_t n)
{
    if (o->fd < 0 && !o->sink) {
        /* Into the caller's buffer: keep room for the NUL. */
        for (size_t i = 0; i < n; i++, o->total++)
            if (o->total + 1 < o->cap) {
                o->buf[o->total] = s[i];
                o->buf[o->total + 1] = '\0';
            }
        return;
    }
    o->total += n;
    while (n) {
        size_t k = sizeof o->chunk - o->len;
        if (k > n)
            k = n;
        memcpy(o->chunk + o->len, s, k);
        o->len += k;
        s += k;
        n -= k;
        if (o->len == sizeof o->chunk)
            out_drain(o);
    }
}

void hk_out_str(hk_out_t *o, const char *s) { hk_out_mem(o, s, strlen(s)); }

void hk_out_u64(hk_out_t *o, uint64_t v)
{
    char tmp[24];
    int n = 24;
    do {
        tmp[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    hk_out_mem(o, tmp + n, (size_t)(24 - n));
}

void hk_out_i64(hk_out_t *o, int64_t v)
{
    if (v < 0) {
        hk_out_str(o, "-");
        hk_out_u64(o, (uint64_t)0 - (uint64_t)v);
    } else {
        hk_out_u64(o, (uint64_t)v);
    }
}

void hk_out_size(hk_out_t *o, uint64_t bytes)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    uint64_t scale = 1;
    while (u < 4 && bytes >= scale * 1024) {
        scale *= 1024;
        u++;
    }
    hk_out_u64(o, bytes / scale);
    if (u) {
        /* Two decimals, truncated: enough to tell 1.00 from 1.99 MiB. */
        uint64_t frac = (bytes % scale) * 100 / scale;
        hk_out_str(o, frac < 10 ? ".0" : ".");
        hk_out_u64(o, frac);
    }
    hk_out_str(o, " ");
    hk_out_str(o, units[u]);
}

void hk_out_pad(hk_out_t *o, size_t line_start, size_t col)
{
    while (o->total - line_start < col)
        hk_out_mem(o, " ", 1);
}

size_t hk_out_flush(hk_out_t *o)
{
    out_drain(o);
    return o->total;
}

void hk_warn(const char *text)
{
    hk_msg_t m = {.len = 0};
    hk_msg_str(&m, "hakmem: warning: ");
    hk_msg_str(&m, text);
    hk_msg_flush(&m);
}

void hk_fatal(const char *text)
{
    hk_msg_t m = {.len = 0};
    hk_msg_str(&m, "hakmem: error: ");
    hk_msg_str(&m, text);
    hk_msg_flush(&m);
    abort();
}
