/* diag_box: the library's only voice. Writes one-line messages to stderr
 * with write(2): no heap, no stdio, safe in any state of the allocator.
 * Owns: message formatting (a misuse's line and its abort: misuse_box).
 * Must not: allocate, lock, or call anything that might. */
#ifndef HAKMEM_DIAG_BOX_H
#define HAKMEM_DIAG_BOX_H

#include <stddef.h>
#include <stdint.h>

/* A tiny formatter into a caller-supplied buffer. */
typedef struct hk_msg {
    char buf[256];
    size_t len;
} hk_msg_t;

void hk_msg_str(hk_msg_t *m, const char *s);
void hk_msg_u64(hk_msg_t *m, uint64_t v);
void hk_msg_hex(hk_msg_t *m, uintptr_t v);
/* Write the message plus a newline to fd 2. */
void hk_msg_flush(hk_msg_t *m);

/* A longer output (statistics, the settings dump) without the heap: text
 * goes through a 512-byte stack chunk to a file descriptor, into a caller's
 * buffer (snprintf's contract: `total` counts every byte, at most cap - 1
 * are stored, always NUL-terminated), or to a callback. Writes to a file
 * descriptor never raise SIGPIPE and stop quietly at the first error (a
 * closed stderr, a reader gone), so that printing at exit cannot change a
 * program's exit status. */
typedef struct hk_out {
    int fd;                 /* >= 0: write here */
    char *buf;              /* else, if cap: store here */
    size_t cap;
    void (*sink)(void *ctx, const char *s, size_t n); /* else, if set */
    void *ctx;
    size_t total;           /* bytes produced so far */
    size_t len;             /* bytes waiting in chunk */
    int failed;             /* the fd refused a write: drop the rest */
    char chunk[512];
} hk_out_t;

void hk_out_init_fd(hk_out_t *o, int fd);
void hk_out_init_buf(hk_out_t *o, char *buf, size_t cap);
void hk_out_init_sink(hk_out_t *o, void (*sink)(void *ctx, const char *s, size_t n), void *ctx);
void hk_out_mem(hk_out_t *o, const char *s, size_t n);
void hk_out_str(hk_out_t *o, const char *s);
void hk_out_u64(hk_out_t *o, uint64_t v);
void hk_out_i64(hk_out_t *o, int64_t v);
/* A size with a binary unit: "512 B", "3.5 KiB", "12.0 MiB", "1.25 GiB". */
void hk_out_size(hk_out_t *o, uint64_t bytes);
/* Pad with spaces up to column `col` of the current line. */
void hk_out_pad(hk_out_t *o, size_t line_start, size_t col);
/* Write what is buffered; returns total. */
size_t hk_out_flush(hk_out_t *o);

/* "hakmem: warning: <text>" */
void hk_warn(const char *text);
/* Heap misuse is reported by misuse_box (hk_report_misuse), which decides
 * whether to abort after the line (abort_on_error). */
/* Unrecoverable: "hakmem: error: <text>", then abort(). */
__attribute__((noreturn)) void hk_fatal(const char *text);

/* Invariant checks: compiled in every build (so they type-check), executed
 * only in the debug build. */
#define HK_STR2(x) #x
#define HK_STR(x) HK_STR2(x)
#define HK_ASSERT(cond)                                                               \
    do {                                                                              \
        if (config_debug && !(cond))                                                  \
            hk_fatal("internal check failed: " #cond " (" __FILE__ ":" HK_STR(__LINE__) ")"); \
    } while (0)

#endif
