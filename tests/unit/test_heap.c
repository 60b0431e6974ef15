/* test_heap.c: unit tests of the heap box (per-thread heaps, slabs, local
 * and remote free) against the internal LEAN copy, through the box's own
 * interface: hk_small_alloc with the front's slow path, hk_small_free,
 * hk_small_usable, hk_heap_trim_all.
 *
 *  - every class hands out 16-byte aligned blocks of its class size;
 *  - a block freed by its owner is the next one handed out (LIFO, still in
 *    cache);
 *  - blocks freed by another thread come back into use: the owner does not
 *    map memory again for them;
 *  - a second free of a block is reported (the debug build aborts; here it
 *    is one line and the block stays free once);
 *  - after everything is freed, malloc_trim gives the slabs back;
 *  - a steady random pattern's footprint (the pages its slabs have carved)
 *    follows the peaks of live blocks of its classes, by a margin that
 *    does not grow: no slab carves fresh blocks while another slab of its
 *    class has free ones.
 */
#include "unit_common.h"
#include <pthread.h>

#include "front/api_box.h"
#include "heap/heap_box.h"

START_TEST(classes_hand_out_their_size)
{
    for (unsigned cls = 0; cls < HK_NUM_CLASSES; cls++) {
        void *p = hk_alloc_class(cls);
        ck_assert_ptr_nonnull(p);
        ck_assert_msg(((uintptr_t)p & 15) == 0, "class %u: %p not 16-byte aligned", cls, p);
        ck_assert_uint_eq(hk_small_usable(p), hk_class_size(cls));
        memset(p, 0x5a, hk_class_size(cls));
        ck_assert_uint_eq(hk_small_usable((char *)p + 8), 0); /* not a block start */
        hk_small_free(p);
    }
}
END_TEST

START_TEST(owner_free_is_reused_first)
{
    unsigned cls = hk_size_to_class(100);
    void *a = hk_alloc_class(cls);
    void *b = hk_alloc_class(cls);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_ne(a, b);
    hk_small_free(a);
    ck_assert_ptr_eq(hk_alloc_class(cls), a);
    hk_small_free(b);
    hk_small_free(a);
}
END_TEST

#define REMOTE_N 20000
static void *blocks[REMOTE_N];

static void *free_all(void *arg)
{
    (void)arg;
    for (int i = 0; i < REMOTE_N; i++)
        hk_small_free(blocks[i]);
    return NULL;
}

START_TEST(remote_frees_come_back)
{
    unsigned cls = hk_size_to_class(64);
    for (int i = 0; i < REMOTE_N; i++) {
        blocks[i] = hk_alloc_class(cls);
        ck_assert_ptr_nonnull(blocks[i]);
        memset(blocks[i], i & 0xff, 64);
    }
    struct hakmem_stats before, after;
    ck_assert_int_eq(hakmem_stats_get(&before, sizeof before), 0);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, free_all, NULL), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    /* The same number again: served from the blocks the other thread
     * freed, with no superslab more. */
    for (int i = 0; i < REMOTE_N; i++) {
        blocks[i] = hk_alloc_class(cls);
        ck_assert_ptr_nonnull(blocks[i]);
    }
    ck_assert_int_eq(hakmem_stats_get(&after, sizeof after), 0);
    ck_assert_msg(after.ss_live <= before.ss_live, "remote frees not reused: superslabs %llu -> %llu",
                  (unsigned long long)before.ss_live, (unsigned long long)after.ss_live);
    for (int i = 0; i < REMOTE_N; i++)
        hk_small_free(blocks[i]);
}
END_TEST

START_TEST(double_free_is_reported_once)
{
    unsigned cls = hk_size_to_class(48);
    void *keep = hk_alloc_class(cls); /* the slab stays in use */
    void *p = hk_alloc_class(cls);
    ck_assert_ptr_nonnull(p);
    hk_small_free(p);
    hk_small_free(p); /* reported, ignored (this build does not abort) */
    void *x = hk_alloc_class(cls);
    void *y = hk_alloc_class(cls);
    ck_assert_ptr_eq(x, p);
    ck_assert_ptr_ne(y, p); /* on the free list once, not twice */
    hk_small_free(x);
    hk_small_free(y);
    hk_small_free(keep);
}
END_TEST

START_TEST(trim_gives_slabs_back)
{
    unsigned cls = hk_size_to_class(1000);
    enum { N = 3000 }; /* about 3 MiB: more than one superslab */
    static void *v[N];
    for (int i = 0; i < N; i++) {
        v[i] = hk_alloc_class(cls);
        ck_assert_ptr_nonnull(v[i]);
        memset(v[i], 1, 1000);
    }
    for (int i = 0; i < N; i++)
        hk_small_free(v[i]);
    (void)hk_heap_trim_all();
    struct hakmem_stats st;
    ck_assert_int_eq(hakmem_stats_get(&st, sizeof st), 0);
    /* no superslab of ours is in use any more: the heap keeps none */
    ck_assert_msg(st.ss_live == 0, "superslabs still live after trim: %llu", (unsigned long long)st.ss_live);
}
END_TEST

/* The soak's shape (bench/bench_soak.c, small sizes only): a working set
 * of SLOTS slots, xorshift32, a full slot freed, an empty one filled with
 * 16..1039 bytes. Deterministic: a fixed seed, one thread, and nothing in
 * it depends on the clock within a few seconds (the purge delay is
 * longer). */
enum { SLOTS = 16384 };
static void *slot[SLOTS];
static uint8_t slot_cls[SLOTS];
static int64_t cls_live[HK_NUM_CLASSES], cls_peak[HK_NUM_CLASSES];

static void steady_run(uint32_t *x, uint64_t ops)
{
    for (uint64_t i = 0; i < ops; i++) {
        uint32_t r = *x;
        r ^= r << 13;
        r ^= r >> 17;
        r ^= r << 5;
        *x = r;
        uint32_t k = r % SLOTS;
        if (slot[k]) {
            hk_small_free(slot[k]);
            slot[k] = NULL;
            cls_live[slot_cls[k]]--;
        } else {
            unsigned cls = hk_size_to_class(16 + (r & 0x3FF));
            slot[k] = hk_alloc_class(cls);
            if (!slot[k]) /* (no ck_assert in the loop: each one writes to Check's pipe) */
                ck_abort_msg("out of memory after %llu operations", (unsigned long long)i);
            slot_cls[k] = (uint8_t)cls;
            if (++cls_live[cls] > cls_peak[cls])
                cls_peak[cls] = cls_live[cls];
        }
    }
}

/* Pages carved by the slabs in use, less the bytes the classes' peaks
 * needed. */
static int64_t steady_margin(void)
{
    struct hakmem_stats st;
    ck_assert_int_eq(hakmem_stats_get(&st, sizeof st), 0);
    int64_t need = 0;
    for (unsigned c = 0; c < HK_NUM_CLASSES; c++)
        need += cls_peak[c] * (int64_t)hk_class_size(c);
    return (int64_t)st.bytes_active - (int64_t)st.large_live_bytes - need;
}

START_TEST(steady_footprint_follows_class_peaks)
{
    uint32_t x = 1234567;
    /* The peaks themselves still rise now and then (a class reaches a new
     * high of live blocks): that is the program's demand. What the heap
     * adds on top must not. Carving on a slab while others of the class
     * had free blocks added 34 KiB between these two points. */
    steady_run(&x, 2000000);
    int64_t warm = steady_margin();
    steady_run(&x, 28000000);
    int64_t end = steady_margin();
    ck_assert_msg(end <= warm + 16 * 1024, "footprint beyond the class peaks grew: %lld -> %lld KiB",
                  (long long)(warm >> 10), (long long)(end >> 10));
    for (int k = 0; k < SLOTS; k++)
        if (slot[k])
            hk_small_free(slot[k]);
}
END_TEST

/* A new slab goes to the owned superslab with the most slabs in use (that
 * has an unused slab whose pages are resident), so that the emptiest
 * superslabs drain and can go back whole. */
#define PL_PER_SLAB 64 /* blocks of 1000 bytes (class 1024) per slab */
#define PL_SLABS 40
static void *pl_blocks[PL_PER_SLAB * PL_SLABS];
static hk_superslab_t *pl_a, *pl_b;
static void *pl_new;

static void *placement(void *arg)
{
    (void)arg;
    unsigned cls = hk_size_to_class(1000), big = hk_size_to_class(2000);
    for (int i = 0; i < PL_PER_SLAB * PL_SLABS; i++)
        pl_blocks[i] = hk_alloc_class(cls);
    pl_a = hk_ss_of(pl_blocks[0]);
    pl_b = hk_ss_of(pl_blocks[PL_PER_SLAB * PL_SLABS - 1]);
    /* Empty two slabs of B, then 25 of A (A goes to the front of the
     * heap's list, which used to decide). */
    int freed_b = 0, freed_a = 0;
    for (int sl = PL_SLABS - 1; sl >= 0; sl--) {
        hk_superslab_t *ss = hk_ss_of(pl_blocks[sl * PL_PER_SLAB]);
        if (ss == pl_b && freed_b < 2)
            freed_b++;
        else
            continue;
        for (int j = 0; j < PL_PER_SLAB; j++)
            hk_small_free(pl_blocks[sl * PL_PER_SLAB + j]);
    }
    for (int sl = 0; sl < PL_SLABS; sl++) {
        hk_superslab_t *ss = hk_ss_of(pl_blocks[sl * PL_PER_SLAB]);
        if (ss == pl_a && freed_a < 25)
            freed_a++;
        else
            continue;
        for (int j = 0; j < PL_PER_SLAB; j++)
            hk_small_free(pl_blocks[sl * PL_PER_SLAB + j]);
    }
    pl_new = hk_alloc_class(big);
    return NULL;
}

START_TEST(new_slab_goes_to_the_fullest_superslab)
{
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, placement, NULL), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_ptr_ne(pl_a, pl_b);
    ck_assert_msg(pl_a->used_slabs < pl_b->used_slabs, "A %u, B %u slabs in use", pl_a->used_slabs,
                  pl_b->used_slabs);
    ck_assert_msg(hk_ss_of(pl_new) == pl_b, "the new slab went to the superslab with %u slabs in use, not the one with %u",
                  hk_ss_of(pl_new)->used_slabs, pl_b->used_slabs);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("heap");
    TCase *tc = tcase_create("heap");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, classes_hand_out_their_size);
    tcase_add_test(tc, owner_free_is_reused_first);
    tcase_add_test(tc, remote_frees_come_back);
    tcase_add_test(tc, double_free_is_reported_once);
    tcase_add_test(tc, trim_gives_slabs_back);
    tcase_add_test(tc, steady_footprint_follows_class_peaks);
    tcase_add_test(tc, new_slab_goes_to_the_fullest_superslab);
    suite_add_tcase(s, tc);
    return hk_unit_run(s);
}
