/* medium_box: blocks above HK_SMALL_MAX (32 KiB) up to HK_MEDIUM_MAX
 * (256 KiB): too big for a 64 KiB slab, and too common for a mapping, a
 * table entry and a cache search each (the large box's way: about 1000
 * instructions a malloc and 500 a free, where this box takes about 60).
 *
 * They come from medium regions: 2 MiB, 2 MiB-aligned, marked MEDIUM in
 * the registry. A region's first page holds its header; the other 511
 * pages are cut into runs: a block is a run of whole pages (its request
 * rounded up to 4 KiB, so it wastes under 4 KiB), a free run lies between
 * blocks. The header's page map says what each page is: the first page of
 * a block, of a free run (with its length), the last page of a free run,
 * or neither. Free runs are kept in bins by length (exact up to 64 pages,
 * one bin above), a bitmap of the non-empty ones: a malloc takes the
 * shortest free run that fits from the first region that has one and
 * splits it; a free merges the block with the free runs on either side.
 * So blocks of every size share the pages a region has touched (a
 * segregated class per size would keep each size's peak resident), and
 * the region a program uses stays as small as its blocks.
 *
 * Misuse (README, "Misuse"): a pointer that is not the first page of a
 * live block is refused without touching the block. The header keeps a
 * bitmap of the pages where a freed block started, cleared when a block
 * starts there again: a second free is named a double free while the
 * region lives; when a region goes back to the OS, those starts join the
 * large box's ring of recently freed starts, so it still is after that,
 * and no small block starts there later (the ring poisons new
 * superslabs); a region built there marks them freed again (a new medium
 * block may start on one: README's case no allocator can tell apart).
 *
 * Memory: committed (bytes_committed) is 2 MiB a region, less the free
 * pages given back. Empty regions are kept (FAST) until the purge delay,
 * and so are the free runs of regions nobody used for it; LEAN keeps
 * empty regions while the release policy's budget allows, and gives back
 * the pages of blocks freed while the footprint is over budget (the
 * policy's bounce bonus stops that for a loop). With thp:1 a region is one
 * huge page, and only whole regions go back.
 *
 * Owns: medium regions, their headers (page map, bins, bitmaps), their
 * lists and lock.
 * Must not: call the OS except through the os box, or while holding its
 * lock; decide about giving memory back (the release policy does); call
 * the large box while holding its lock, but to take a range of its cache
 * (the large box's lock inside this one's, as fork takes them; the large
 * box never calls this one). */
#ifndef HAKMEM_MEDIUM_BOX_H
#define HAKMEM_MEDIUM_BOX_H

#include "hakmem_internal.h"

#include <stdbool.h>
#include <stddef.h>

/* The largest medium request; larger ones are the large box's. */
#define HK_MEDIUM_MAX ((size_t)256 << 10)

/* A block of a request of size bytes (HK_SMALL_MAX < size <= HK_MEDIUM_MAX),
 * page-aligned, its size rounded up to whole pages; zero: its first size
 * bytes read as zero. NULL when the OS
 * refuses memory (errno untouched: the caller sets ENOMEM). The registry
 * must exist (the front initialises the process first). */
void *hk_medium_alloc(size_t size, bool zero);
/* The same for a block expected to grow (realloc): cut from the start of
 * the longest free run there is, so that hk_medium_resize finds free pages
 * behind it next time. */
void *hk_medium_alloc_growing(size_t size);
/* Free p, a pointer in a MEDIUM chunk: HK_MEDIUM_FREED, HK_MEDIUM_NOT_OURS
 * (not the start of a block handed out), HK_MEDIUM_ALREADY_FREE (a block
 * start freed before and not handed out since: a double free). */
enum { HK_MEDIUM_FREED = 0, HK_MEDIUM_NOT_OURS = 1, HK_MEDIUM_ALREADY_FREE = 2 };
int hk_medium_free(void *p);
/* Usable size of a live medium block (whole pages); 0 if p is none. */
size_t hk_medium_usable(const void *p);
/* Is p a medium block start freed and not handed out since? */
bool hk_medium_was_freed(const void *p);

/* Grow or shrink live block p in place to new_size (<= HK_MEDIUM_MAX):
 * into the free run behind it, or giving its tail pages to it. true if p
 * now holds new_size bytes. */
bool hk_medium_resize(void *p, size_t new_size);

/* The purge delay: give back what has been unused for it at now_ms (empty
 * regions: unmapped, or in LEAN decommitted with their header kept; the
 * free runs of regions nobody used for it: their pages), if a pass is
 * due. Returns bytes given back. */
size_t hk_medium_purge(int64_t now_ms);
/* malloc_trim: the same for everything free, now. */
size_t hk_medium_trim(void);

/* Statistics, under the lock. */
typedef struct hk_medium_stats {
    uint64_t live, live_bytes, regions, free_bytes, touched_bytes;
} hk_medium_stats_t;
void hk_medium_stats(hk_medium_stats_t *s);
/* Debug recount (lock held: hk_medium_fork_prepare): bytes committed,
 * from the headers themselves. */
int64_t hk_medium_count_committed(void);

void hk_medium_fork_prepare(void);
void hk_medium_fork_parent(void);
void hk_medium_fork_child(void);

/* Memory ran out: give back every cached range (medium regions, large
 * blocks, empty and decommitted superslabs) so that a retry can map.
 * Returns bytes released. */
size_t hk_release_cached(void);

#endif
