/* thread_box (front): process and thread lifecycle.
 * Owns: one-time global initialisation (settings, free-list secrets,
 * registry), the start of a thread (its heap and its exit hook: a pthread
 * key whose destructor abandons the heap; handed down to the heap box as
 * hk_small_alloc's `start`), and the fork handlers that keep every lock
 * consistent across fork().
 * Must not: allocate through malloc. */
#ifndef HAKMEM_THREAD_BOX_H
#define HAKMEM_THREAD_BOX_H

#include "heap/heap_box.h"

#include <stddef.h>

/* Initialise the process state once (any thread, any time, reentrant-safe).
 * 0 on success, -1 if the allocator cannot work (no address space). */
int hk_global_init(void);
/* A thread's first malloc (hk_small_alloc hands it to the heap box): the
 * process first (hk_global_init), then the thread's heap and its exit
 * hook. NULL if either cannot be had. */
hk_heap_t *hk_thread_start(void);
/* Debug build: recount the gauges (superslabs live, cached, decommitted,
 * committed bytes, large blocks) from every box's own lists under every
 * lock, and abort with one line if one disagrees. No-op elsewhere. Runs at
 * malloc_trim and at exit. */
void hk_check_gauges(void);

#endif
