/* hakmem_internal.h: what every box shares: compiler helpers, the geometry
 * of superslabs and slabs, and the layout of their metadata.
 *
 * Geometry: a superslab is a 2 MiB region aligned to 2 MiB, so the superslab
 * of any small block is `ptr & ~(2 MiB - 1)`. It is cut into 32 slabs of
 * 64 KiB. Slab 0 holds the superslab header (only its first page is ever
 * touched); slabs 1..31 each serve one size class at a time.
 */
#ifndef HAKMEM_INTERNAL_H
#define HAKMEM_INTERNAL_H

#include "hakmem_config.h"
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define HK_LIKELY(x) __builtin_expect(!!(x), 1)
#define HK_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define HK_NOINLINE __attribute__((noinline))
#define HK_INLINE static inline __attribute__((always_inline))
/* Library-internal globals: declared hidden so that code reaches them
 * directly, not through the GOT. */
#define HK_HIDDEN __attribute__((visibility("hidden")))
/* Exported API symbols (the library builds with -fvisibility=hidden). */
#define HK_API __attribute__((visibility("default")))

#define HK_PAGE_SIZE ((size_t)4096)
#define HK_SS_SHIFT 21
#define HK_SS_SIZE ((size_t)1 << HK_SS_SHIFT)
#define HK_SS_MASK (HK_SS_SIZE - 1)
#define HK_SLAB_SHIFT 16
#define HK_SLAB_SIZE ((size_t)1 << HK_SLAB_SHIFT)
#define HK_SLABS_PER_SS ((int)(HK_SS_SIZE / HK_SLAB_SIZE)) /* 32, slab 0 = header */
#define HK_SS_MAGIC 0x48414b4d454d5353ULL                 /* "HAKMEMSS" */

/* Largest size served from slabs; larger requests are mapped on their own.
 * The size classes below it: size_class_box.h. */
#define HK_SMALL_MAX_SHIFT 15
#define HK_SMALL_MAX ((size_t)1 << HK_SMALL_MAX_SHIFT)

/* Requests above this can never be satisfied (glibc's limit). */
#define HK_MAX_REQUEST ((size_t)PTRDIFF_MAX - 2 * HK_SS_SIZE)

static inline uintptr_t hk_align_up(uintptr_t x, uintptr_t a) { return (x + a - 1) & ~(a - 1); }

/* A free block: its free-list link and its free tag, both derived from a
 * per-process secret and the block's own address (heap_box.h:
 * hk_block_secret): the link is stored as next ^ this ^ secret, so that
 * decoding it gives the distance bits and "same slab" is one compare; the
 * tag is the secret. A freed block read back reveals neither the secret
 * nor another block's tag; a link overwritten after free decodes to
 * garbage, which is caught before it is followed (heap_box.h:
 * hk_link_next). */
typedef struct hk_block {
    uintptr_t link; /* encoded: next ^ this ^ hk_block_secret(this) */
    uintptr_t tag;  /* hk_block_secret(this) while free; 0 while live */
} hk_block_t;

#endif /* HAKMEM_INTERNAL_H */
