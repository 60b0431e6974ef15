/* misuse_box: the one door through which every misuse of the heap found by
 * the library is reported: double and invalid frees, a realloc or
 * malloc_usable_size of a block that is not live, the debug library's
 * overflows, underflows and writes after free. One line,
 *     hakmem: error: <what> of <ptr> (<why>)
 * then abort() when abort_on_error is on (HAKMEM_ABORT_ON_ERROR, the key
 * abort_on_error of HAKMEM_CONF; on by default in the debug library only):
 * a service that would rather stop than run on after a double free, as
 * under glibc, sets it; otherwise the call that found the misuse ignores
 * it and the program goes on with the heap intact.
 * Owns: that line's form and the decision to abort after it.
 * Must not: allocate, lock, touch the block it names, or change errno. */
#ifndef HAKMEM_MISUSE_BOX_H
#define HAKMEM_MISUSE_BOX_H

#include <stdbool.h>

/* Report a misuse of ptr (why may be NULL); aborts if abort_on_error. */
void hk_report_misuse(const char *what, const void *ptr, const char *why);
/* Is abort_on_error on (for the callers that decide what to do next)? */
bool hk_misuse_aborts(void);

#endif
