/* census_box: counting what the heaps hold, and (debug build) proving
 * that nothing is stranded.
 *
 * Statistics are derived on demand from the metadata (no counter on any
 * fast path). Every heap lock and the abandoned list's lock are held while
 * the slabs are walked, so the figures are one consistent snapshot of the
 * heaps: a slab's blocks in use are `used` (blocks handed out, less those
 * the owner took back onto its free list) less the blocks on its remote
 * list (freed by other threads, not collected yet; the list's word carries
 * their number, and only the holder of the owner's lock takes the list, so
 * used and the count are read together). Exact when no thread is
 * allocating or freeing at the same moment; otherwise a value some instant
 * during the walk could have had.
 *
 * The stranded census (debug library, inside malloc_trim): before the trim
 * it marks every slab whose blocks are all free and every heap whose
 * thread is gone; after it, each marked slab that nobody touched since
 * must have been given back (or be the head its class keeps in a heap
 * whose owner is another live thread), and each marked heap must be gone;
 * a parked slab must never be FULL with blocks on its remote list. A
 * failure is `hakmem: error: stranded ...` and abort. Marks are compared
 * word for word, so the census is exact whatever other threads do: what
 * they change meanwhile is not judged.
 *
 * Owns: hk_census_t and the walks that fill it; the stranded census.
 * Must not: change any heap, slab or list (it only reads, under locks). */
#ifndef HAKMEM_CENSUS_BOX_H
#define HAKMEM_CENSUS_BOX_H

#include "hakmem_internal.h"
#include "base/size_class_box.h"
#include "heap/heap_lists_box.h"

typedef struct hk_census {
    uint64_t allocated;   /* bytes of small blocks in use (block sizes) */
    uint64_t active;      /* pages of slabs in use that were carved (bytes) */
    uint64_t slabs;       /* slabs serving a class */
    uint64_t heaps_live;  /* thread heaps in use */
    uint64_t ss_abandoned; /* superslabs of exited threads, waiting for adoption */
    uint64_t cls_blocks[HK_NUM_CLASSES]; /* blocks in use per class */
    uint64_t cls_slabs[HK_NUM_CLASSES];  /* slabs per class */
} hk_census_t;
void hk_heap_census(hk_census_t *c);

/* Count the superslabs every heap owns (for the debug recount; the caller
 * holds every lock: hk_heap_fork_prepare). */
void hk_heap_count_superslabs(hk_ss_count_t *c);

/* The stranded census around a malloc_trim (debug library; a no-op
 * elsewhere): begin marks, end checks. begin answers false if another
 * census is running (then this trim goes without one, and end is not
 * called). */
bool hk_census_begin(void);
void hk_census_end(void);
void hk_census_fork_child(void);

#endif
