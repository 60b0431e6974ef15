/* vt_integrity: CONFORMANCE E.25-E.27, LEAN data integrity.
 *
 * E.25 `survivors`: fill 30 superslabs with 1024-byte objects, keep one
 *      live object in every third superslab, free the rest with LEAN on,
 *      TARGET_MB=0 and DONTNEED or FREE (every release happens at once):
 *      every page of every survivor is still resident (mincore, looked at
 *      before anything reads the survivors, since a read would fault a
 *      dropped page back in) and the survivors keep their pattern; with
 *      DONTNEED the empty superslabs have no resident page left beyond
 *      their header slab, or are unmapped. After everything is freed and
 *      malloc_trim(0) called, the gauges are back at their level before the
 *      fill.
 * E.26/E.27 `churn`: 8 threads allocate batches of stamped 16..1040-byte
 *      objects, free some themselves and hand the others through a shared
 *      exchange to be freed by another thread, in two rounds of fresh
 *      threads, for about 1.5 s (HK_STRESS_SECONDS), with TARGET_MB=0 under
 *      DONTNEED and FREE: zero pattern failures, superslabs were really
 *      released meanwhile (lean_decommit: needs the counters), and once
 *      everything is freed, the threads joined and malloc_trim(0) called,
 *      the gauges are back at their level before the churn (memory that
 *      exited threads and remote frees left behind was found again).
 * Without the counters, the program ends with exit 77 after the other
 * checks, naming the ones it could not make.
 */
#include "vt_common.h"

#include <check.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>

#define SS_SIZE (2 * VT_MIB)
#define SLAB_SIZE ((size_t)65536)

/* ------------------------------------------------------------------------ */
/* E.25 */

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

/* Resident pages of [p, p+len): -1 if the range is not mapped. */
static long resident_pages(void *p, size_t len)
{
    static unsigned char vec[SS_SIZE / 4096];
    size_t pages = len / 4096;
    if (mincore(p, len, vec) != 0)
        return -1;
    long n = 0;
    for (size_t i = 0; i < pages; i++)
        n += vec[i] & 1;
    return n;
}

/* 1 if every page holding [p, p+len) is resident. */
static int all_resident(const void *p, size_t len)
{
    uintptr_t a = (uintptr_t)p & ~(uintptr_t)4095;
    uintptr_t e = ((uintptr_t)p + len + 4095) & ~(uintptr_t)4095;
    return resident_pages((void *)a, e - a) == (long)((e - a) / 4096);
}

static int sc_survivors(void)
{
    enum { NSS = 30, OBJ = 1024, PER_SS = 31 * (int)(SLAB_SIZE / OBJ), N = NSS * PER_SS + PER_SS };
    void **v = vt_map(N * sizeof(void *));
    uintptr_t *bases = vt_map(N * sizeof(uintptr_t));
    vt_report_gauges("base_");
    for (int i = 0; i < N; i++) {
        v[i] = malloc(OBJ);
        if (!v[i])
            vt_fail("malloc failed");
        vt_stamp(v[i], OBJ, 11);
        bases[i] = (uintptr_t)v[i] & ~(uintptr_t)(SS_SIZE - 1);
    }
    qsort(bases, N, sizeof *bases, cmp_ptr);
    int nss = 0;
    for (int i = 0; i < N; i++)
        if (i == 0 || bases[i] != bases[i - 1])
            bases[nss++] = bases[i];
    vt_report("superslabs", "%d", nss);
    if (nss < NSS)
        vt_fail("only %d superslabs for %d objects", nss, N);
    /* Survivor: the first object found in every third superslab. */
    static void *surv[N];
    static char has_surv[N];
    int nsurv = 0;
    for (int i = 0; i < N; i++) {
        uintptr_t b = (uintptr_t)v[i] & ~(uintptr_t)(SS_SIZE - 1);
        int k = (int)((uintptr_t *)bsearch(&b, bases, (size_t)nss, sizeof *bases, cmp_ptr) - bases);
        if (k % 3 == 0 && !has_surv[k]) {
            has_surv[k] = 1;
            surv[nsurv++] = v[i];
            continue;
        }
        free(v[i]);
    }
    vt_report("survivors", "%d", nsurv);
    /* Residency first: reading a survivor would fault a dropped page back
     * in (as zeros, which the pattern check below would also catch, but
     * under FREE not necessarily). */
    int surv_not_resident = 0;
    for (int i = 0; i < nsurv; i++)
        if (!all_resident(surv[i], OBJ))
            surv_not_resident++;
    vt_report("survivors_not_resident", "%d", surv_not_resident);
    for (int i = 0; i < nsurv; i++)
        if (vt_check(surv[i], OBJ, 11) != (size_t)-1)
            vt_fail("survivor %d (%p) lost its pattern", i, surv[i]);
    long resident_empty = 0, unmapped = 0, empty = 0, resident_live = 0;
    for (int k = 0; k < nss; k++) {
        long r = resident_pages((char *)bases[k] + SLAB_SIZE, SS_SIZE - SLAB_SIZE);
        if (has_surv[k]) {
            resident_live += r > 0 ? r : 0;
            continue;
        }
        empty++;
        if (r < 0)
            unmapped++;
        else
            resident_empty += r;
    }
    vt_report("empty_superslabs", "%ld", empty);
    vt_report("empty_unmapped", "%ld", unmapped);
    vt_report("empty_resident_pages", "%ld", resident_empty);
    vt_report("live_resident_pages", "%ld", resident_live);
    /* Allocate everything again (the released ranges come back), and the
     * survivors still hold. */
    for (int i = 0; i < N - nsurv; i++) {
        v[i] = malloc(OBJ);
        if (!v[i])
            vt_fail("malloc after the release failed");
        vt_stamp(v[i], OBJ, 12);
    }
    for (int i = 0; i < nsurv; i++)
        if (vt_check(surv[i], OBJ, 11) != (size_t)-1)
            vt_fail("survivor %d lost its pattern after re-allocation", i);
    for (int i = 0; i < N - nsurv; i++) {
        if (vt_check(v[i], OBJ, 12) != (size_t)-1)
            vt_fail("re-allocated object %d corrupted", i);
        free(v[i]);
    }
    for (int i = 0; i < nsurv; i++)
        free(surv[i]);
    vt_report_stats("");
    malloc_trim(0);
    vt_report_gauges("end_");
    return 0;
}

/* ------------------------------------------------------------------------ */
/* E.26 / E.27 */

#define CH_THREADS 8
#define CH_BATCH 1500
#define CH_XCAP 65536

struct obj {
    void *p;
    uint32_t size, salt;
};

static pthread_mutex_t x_lock = PTHREAD_MUTEX_INITIALIZER;
static struct obj *xring;
static size_t x_head, x_count;
static _Atomic long ch_failures, ch_ops, ch_remote;
static double ch_deadline;

static int obj_ok(const struct obj *o)
{
    size_t n = o->size <= 64 ? o->size - 1 : 64;
    return vt_check(o->p, n, o->salt) == (size_t)-1 &&
           ((unsigned char *)o->p)[o->size - 1] == (unsigned char)(o->salt ^ 0xa5);
}

static void obj_stamp(struct obj *o)
{
    vt_stamp(o->p, o->size <= 64 ? o->size - 1 : 64, o->salt);
    ((unsigned char *)o->p)[o->size - 1] = (unsigned char)(o->salt ^ 0xa5);
}

static void obj_free(const struct obj *o)
{
    if (!obj_ok(o))
        atomic_fetch_add(&ch_failures, 1);
    free(o->p);
}

/* Hand o to some other thread; false if the exchange is full. */
static int x_push(const struct obj *o)
{
    pthread_mutex_lock(&x_lock);
    int ok = x_count < CH_XCAP;
    if (ok) {
        xring[(x_head + x_count) % CH_XCAP] = *o;
        x_count++;
    }
    pthread_mutex_unlock(&x_lock);
    return ok;
}

static int x_pop(struct obj *o)
{
    pthread_mutex_lock(&x_lock);
    int ok = x_count > 0;
    if (ok) {
        *o = xring[x_head];
        x_head = (x_head + 1) % CH_XCAP;
        x_count--;
    }
    pthread_mutex_unlock(&x_lock);
    return ok;
}

static void *ch_main(void *arg)
{
    uint32_t seed = (uint32_t)(uintptr_t)arg * 2654435761u + 1;
    static __thread struct obj batch[CH_BATCH];
    long ops = 0;
    while (vt_now() < ch_deadline) {
        int n = 100 + (int)(vt_xorshift(&seed) % (CH_BATCH - 100));
        for (int i = 0; i < n; i++) {
            batch[i].size = 16 + vt_xorshift(&seed) % 1025;
            batch[i].salt = vt_xorshift(&seed);
            batch[i].p = malloc(batch[i].size);
            if (!batch[i].p) {
                atomic_fetch_add(&ch_failures, 1);
                n = i;
                break;
            }
            obj_stamp(&batch[i]);
        }
        ops += n;
        /* Half goes to other threads, half is freed here (after a few
         * objects from others). */
        struct obj o;
        for (int k = 0; k < n / 2 && x_pop(&o); k++) {
            obj_free(&o);
            atomic_fetch_add_explicit(&ch_remote, 1, memory_order_relaxed);
        }
        for (int i = 0; i < n; i++) {
            if ((i & 1) && x_push(&batch[i]))
                continue;
            obj_free(&batch[i]);
        }
    }
    atomic_fetch_add(&ch_ops, ops);
    return NULL;
}

static int sc_churn(void)
{
    xring = vt_map(CH_XCAP * sizeof *xring);
    vt_report_gauges("base_");
    double secs = vt_seconds(1.5);
    for (int round = 0; round < 2; round++) {
        pthread_t t[CH_THREADS];
        ch_deadline = vt_now() + secs / 2;
        for (int i = 0; i < CH_THREADS; i++)
            if (pthread_create(&t[i], NULL, ch_main, (void *)(uintptr_t)(i + 1 + round * CH_THREADS)) != 0)
                vt_fail("pthread_create");
        for (int i = 0; i < CH_THREADS; i++)
            pthread_join(t[i], NULL);
    }
    struct obj o;
    while (x_pop(&o))
        obj_free(&o);
    vt_report("ops", "%ld", (long)ch_ops);
    vt_report("remote_frees", "%ld", (long)ch_remote);
    vt_report("failures", "%ld", (long)ch_failures);
    vt_report_stats("");
    malloc_trim(0);
    vt_report_gauges("end_");
    return ch_failures ? 1 : 0;
}

static const struct vt_scenario scenarios[] = {
    {"survivors", sc_survivors, 0},
    {"churn", sc_churn, 0},
    {NULL, NULL, 0},
};

/* ------------------------------------------------------------------------ */
/* Parent. */

static const struct vt_mode all_modes[] = {
    {VT_LEAN, {"HAKMEM_SS_MEM_LEAN=1", "HAKMEM_SS_MEM_LEAN_TARGET_MB=0", "HAKMEM_SS_MEM_LEAN_DECOMMIT=DONTNEED"}},
    {VT_LEAN, {"HAKMEM_SS_MEM_LEAN=1", "HAKMEM_SS_MEM_LEAN_TARGET_MB=0", "HAKMEM_SS_MEM_LEAN_DECOMMIT=FREE"}},
    {VT_DEBUG, {"HAKMEM_SS_MEM_LEAN=1", "HAKMEM_SS_MEM_LEAN_TARGET_MB=0", "HAKMEM_SS_MEM_LEAN_DECOMMIT=DONTNEED"}},
    {VT_DEBUG, {"HAKMEM_SS_MEM_LEAN=1", "HAKMEM_SS_MEM_LEAN_TARGET_MB=0", "HAKMEM_SS_MEM_LEAN_DECOMMIT=FREE"}},
};
#define NMODES (sizeof all_modes / sizeof all_modes[0])
static const struct vt_mode *modes[NMODES];
static int nmodes;
static int counters; /* built in? (vt_counters_built_in, before the forks) */

static int is_dontneed(const struct vt_mode *m)
{
    return strstr(m->env[2], "DONTNEED") != NULL;
}

START_TEST(test_survivors)
{
    const struct vt_mode *m = modes[_i];
    struct vt_result *r = malloc(sizeof *r);
    vt_spawn(m->variant, "survivors", m->env, 60, r);
    vt_assert_r(r, vt_exited_ok(r), "survivors must keep their pattern");
    long empty = (long)vt_num(r, "empty_superslabs", NULL);
    long res = (long)vt_num(r, "empty_resident_pages", NULL);
    long live_res = (long)vt_num(r, "live_resident_pages", NULL);
    int found = 0;
    long surv_nr = (long)vt_num(r, "survivors_not_resident", &found);
    printf("%s %ld empty superslabs (%ld unmapped), %ld resident pages in them; %ld in the live ones; "
           "%ld survivors not wholly resident\n",
           r->desc, empty, (long)vt_num(r, "empty_unmapped", NULL), res, live_res, surv_nr);
    vt_assert_r(r, empty >= 15, "at least 15 superslabs emptied");
    vt_assert_r(r, found && surv_nr == 0, "%ld survivors have pages that are not resident", surv_nr);
    vt_assert_r(r, live_res >= (long)vt_num(r, "survivors", NULL), "the superslabs with a survivor have %ld "
                "resident pages past their first slab, fewer than the survivors", live_res);
    if (is_dontneed(m))
        vt_assert_r(r, res == 0, "empty superslabs still have %ld resident pages", res);
    vt_assert_r(r, vt_num(r, "stats_built_in", NULL) == counters, "stats_built_in differs between runs");
    if (counters)
        vt_assert_r(r, vt_num(r, "lean_retire", NULL) >= empty, "every empty superslab was retired");
    vt_assert_end_state(r);
    free(r);
}
END_TEST

START_TEST(test_churn)
{
    const struct vt_mode *m = modes[_i];
    struct vt_result *r = malloc(sizeof *r);
    vt_spawn(m->variant, "churn", m->env, 90, r);
    printf("%s ops %lld, remote frees %lld, failures %lld, lean_decommit %lld\n", r->desc,
           (long long)vt_num(r, "ops", NULL), (long long)vt_num(r, "remote_frees", NULL),
           (long long)vt_num(r, "failures", NULL), (long long)vt_num(r, "lean_decommit", NULL));
    vt_assert_r(r, vt_exited_ok(r) && vt_num(r, "failures", NULL) == 0, "zero pattern failures");
    vt_assert_r(r, vt_num(r, "remote_frees", NULL) > 1000, "cross-thread frees happened");
    vt_assert_r(r, vt_num(r, "stats_built_in", NULL) == counters, "stats_built_in differs between runs");
    if (counters)
        vt_assert_r(r, vt_num(r, "lean_decommit", NULL) > 0, "pages were given back during the run");
    vt_assert_end_state(r);
    free(r);
}
END_TEST

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--scenario") == 0)
        return vt_scenario_main(scenarios, argv[2]);
    vt_require_builddir();
    nmodes = (int)vt_select_modes(all_modes, NMODES, modes);
    if (!nmodes) {
        printf("SKIP: LEAN integrity needs the lean or debug library (--enable-lean, --enable-debug)\n");
        return VT_EXIT_SKIP;
    }
    counters = vt_counters_built_in();
    Suite *s = suite_create("integrity");
    TCase *tc = tcase_create("survivors");
    tcase_set_timeout(tc, 70);
    tcase_add_loop_test(tc, test_survivors, 0, nmodes);
    suite_add_tcase(s, tc);
    tc = tcase_create("churn");
    tcase_set_timeout(tc, 100);
    tcase_add_loop_test(tc, test_churn, 0, nmodes);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return vt_finish(failed, counters, "lean_retire (survivors) and lean_decommit (churn)");
}
