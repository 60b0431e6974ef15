/* large_box: objects above HK_MEDIUM_MAX (256 KiB), each in its own
 * mapping; also those of any size whose alignment is above a page (the
 * small and medium boxes cannot give it).
 *
 * Owns: the table of live large mappings (keyed by the user pointer, so a
 * pointer is recognised without reading the memory it points to), the
 * bounded cache of freed mappings (HAKMEM_LARGE_CACHE_MB, default 256):
 * a program that frees and reallocates big buffers reuses resident pages
 * instead of faulting them in again, and in-place/mremap realloc: a
 * growing block that must move is placed with cached pages behind it, so
 * it grows in place next time. Hands 2 MiB-aligned cached ranges to the
 * superslab and medium boxes on request (hk_large_cache_take_chunk).
 * Must not: call mmap directly (os box), or syscall while holding its lock. */
#ifndef HAKMEM_LARGE_BOX_H
#define HAKMEM_LARGE_BOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* size > 0; align a power of two (0 or <= page: page-aligned). zero: the
 * first `size` bytes must read as zero. NULL + ENOMEM on failure. */
void *hk_large_alloc(size_t size, size_t align, bool zero);
/* A block of size bytes (page-aligned) that is expected to grow: placed
 * with free cached pages behind it where the cache has them, so that
 * hk_large_realloc grows it in place. NULL + ENOMEM on failure. */
void *hk_large_alloc_growing(size_t size);
/* A size-aligned range of size bytes (a power of two) cut from the cache
 * of freed blocks, for the superslab box to build a superslab in: pages
 * already resident serve the small classes instead of fresh ones. It
 * leaves this box for good (its bytes stay committed, counted by the
 * taker); NULL if no cached range holds one. */
void *hk_large_cache_take_chunk(size_t size);
/* Free a large block: HK_LARGE_FREED, HK_LARGE_NOT_OURS, or
 * HK_LARGE_ALREADY_FREE (p is a large block freed before and still cached:
 * a double free). */
enum { HK_LARGE_FREED = 0, HK_LARGE_NOT_OURS = 1, HK_LARGE_ALREADY_FREE = 2 };
int hk_large_free(void *p);
/* Is p a large block freed before (cached, or recently given back)? For
 * the diagnosis of a realloc after free. */
bool hk_large_was_freed(const void *p);
/* Is p the start of one of the last 1024 large blocks freed (and not
 * handed out again as a large block)? Whatever its range serves now: for
 * naming a second free a double free. */
bool hk_large_recently_freed(const void *p);
/* The starts of blocks of another box (medium regions) freed and not
 * handed out again, whose range goes back to the OS: they join the ring
 * of the last 1024 large blocks freed, with what that brings (a second
 * free is a double free; no block starts there while they are in it). */
void hk_large_remember_freed(const uintptr_t *starts, unsigned n);
/* For a superslab built over [base, base + size) (64 KiB-aligned): in
 * pages[k], bit j is set if page j of its k-th 64 KiB slab starts where
 * one of the last 1024 large blocks freed started (slab_box: no small
 * block is handed out there). */
void hk_large_recent_pages(uintptr_t base, size_t size, uint16_t *pages);
/* Usable size of a live large block; 0 if p is not one. */
size_t hk_large_usable(const void *p);
/* Resize a live large block (new_size > 0) in place, from the cache or with
 * mremap. Returns the block (maybe moved), or NULL when it cannot (p is then
 * untouched and the caller allocates, copies and frees; a new_size of
 * HK_SMALL_MAX or less that does not fit in place always comes back NULL,
 * for a size class to take it). *usable: p's usable size before the call,
 * 0 if p is not a live large block (one lookup answers both). */
void *hk_large_realloc(void *p, size_t new_size, size_t *usable);
/* Bytes of live large blocks (their mappings), for mallinfo. */
size_t hk_large_live_bytes(void);
/* The purge delay: unmap the cached ranges unused for it at now_ms, if a
 * pass is due (the release policy decides). Returns bytes released. */
size_t hk_large_purge(int64_t now_ms);
/* Unmap every cached range. Returns bytes released. */
size_t hk_large_trim(void);
/* Debug recount (lock held: hk_large_fork_prepare): live blocks, cached
 * bytes, committed bytes from the table and the cache themselves. */
typedef struct hk_large_count {
    int64_t live, cached_bytes, committed;
} hk_large_count_t;
void hk_large_count(hk_large_count_t *c);

void hk_large_fork_prepare(void);
void hk_large_fork_parent(void);
void hk_large_fork_child(void);

#endif
