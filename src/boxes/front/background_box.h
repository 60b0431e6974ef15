/* background_box: the opt-in background thread (HAKMEM_BACKGROUND=1,
 * key background), for programs that go quiet: it applies the purge
 * delay (cached superslabs and large ranges, LEAN's pending slabs and
 * bonus) and collects abandoned superslabs while the program makes no
 * allocator call at all.
 * Owns: the thread, its start and its passes; also the purge tick that the
 * allocator's own large-block calls run.
 * Lifecycle: never created unless asked; created lazily, by the first
 * thread heap made after the settings are read (a thread's first
 * allocation) or by a later slow path, never while any hakmem lock is
 * held. fork(): a pass never runs across a fork (fork_prepare holds the
 * pass lock); the child has no such thread, and creates its own lazily
 * on its next slow path. All signals are blocked in it. It never
 * allocates.
 * Decisions (what is due, how often): the release policy's.
 * Must not: allocate, or hold its pass lock while waiting for anything but
 * the locks of the boxes it calls. */
#ifndef HAKMEM_BACKGROUND_BOX_H
#define HAKMEM_BACKGROUND_BOX_H

#include <stdbool.h>

/* Start the thread if asked for and not running in this process. Cheap
 * when there is nothing to do (one load). */
void hk_background_maybe_start(void);
/* Is it running (in this process)? For tests and the statistics. */
bool hk_background_running(void);
/* The allocator's own slow paths (large-block frees, the heaps' sweep):
 * start the thread if due, and purge what has waited past the delay. */
void hk_idle_tick(void);
/* Fork handlers (thread_box calls them first in prepare, last after). */
void hk_background_fork_prepare(void);
void hk_background_fork_parent(void);
void hk_background_fork_child(void);

#endif
