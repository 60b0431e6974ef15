/* diag_box: the library's only voice. Writes one-line messages to stderr
 * with write(2): no heap, no stdio, safe in any state of the allocator.
 * Owns: message formatting and the decision to abort on misuse.
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

/* "hakmem: warning: <text>" */
void hk_warn(const char *text);
/* Heap misuse: "hakmem: error: <what> <ptr> (<why>)". The debug build then
 * aborts; the others carry on without touching the block. */
void hk_report_misuse(const char *what, const void *ptr, const char *why);
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
