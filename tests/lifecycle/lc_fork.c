/* lc_fork: fork() while another thread is in the middle of a remote free
 * (CONFORMANCE G.36, C.21).
 *
 * A slab its owner parked as full tells the owner about its first remote
 * free: the freeing thread moves the slab's state FULL -> NOTIFYING, pushes
 * the slab onto the owner heap's notification stack, then clears the
 * state. The owner waits while a slab is NOTIFYING. A fork() that lands
 * inside that window leaves the state NOTIFYING in the child for good (the
 * notifier does not exist there), and the child's thread, which owns the
 * slab, spins forever the next time it drains its notifications or refills
 * from that slab.
 *
 * The window is a few instructions. Rather than hope that fork() meets it,
 * the test stops the freeing thread at a random instruction, as the
 * scheduler may: main allocates a batch of 256 blocks of 16 to 32 KiB (two
 * to four per slab, so its slabs are parked full and a good part of the
 * frees notify), hands them to a freeing thread and, once that thread has
 * freed a random number of them, sends it a signal whose handler only
 * waits (no allocation, nothing unsafe) until main's fork() has returned,
 * 10 ms at most (so that an allocator whose fork() rightly waits for a
 * notification in flight still makes progress). A signal taking effect
 * inside a notification leaves the window open across the fork; that
 * happens in a few rounds in a hundred (signals often take effect only at
 * the next timer tick, when the batch may be over), so this is a stress,
 * run for about HK_STRESS_SECONDS (default 2.5 s) per mode.
 *
 * The child frees the blocks of the batch still waiting (main's: local
 * frees) and those a second owner thread left (remote frees into slabs
 * whose owner does not exist in the child), allocates through every slab
 * of the batch's class and a few blocks of every size class and a large
 * block, checks its stamps and exits. The parent waits for each child with a
 * timeout: a child that does not exit within it hung; the scenario fails.
 */
#include "lc_common.h"

#define FK_BATCH 256 /* main's blocks handed to the freeing thread per round */
#define FK_OWNER_SLOTS 64
#define FK_CHILD_TIMEOUT_S 5.0
#define FK_FREEZE_MS 10

struct fk_shared {
    _Atomic(void *) batch[FK_BATCH];        /* main's blocks, freed on `go` */
    _Atomic(void *) owner_slots[FK_OWNER_SLOTS];
    _Atomic int hot;                        /* a batch is coming: the freer spins */
    _Atomic unsigned go;                    /* round released to the freer */
    _Atomic unsigned progress;              /* blocks of the batch taken so far */
    _Atomic unsigned done;                  /* last round the freer finished */
    _Atomic unsigned freezes;               /* handler entries */
    _Atomic int frozen;                     /* the freer waits in the handler */
    _Atomic int thaw;                       /* main forked: the freer may go on */
    _Atomic int stop;
    _Atomic unsigned owner_round;           /* round the owner is asked to fill */
    _Atomic long bad;
    size_t size;                            /* size of the batch's blocks */
};
static struct fk_shared fk;

/* Few blocks per 64 KiB slab: main's slabs are full, and parked, all the
 * time, so a first remote free into each one notifies. */
static const size_t fk_sizes[] = {32768, 24576, 32768, 16384};
#define FK_NSIZES (sizeof fk_sizes / sizeof fk_sizes[0])

static void fk_stamp(void *p) { *(volatile uintptr_t *)p = (uintptr_t)p ^ 0xa5a5a5a5u; }
static int fk_ok(void *p) { return *(volatile uintptr_t *)p == ((uintptr_t)p ^ 0xa5a5a5a5u); }

static void fk_free_checked(void *p)
{
    if (!fk_ok(p))
        atomic_fetch_add(&fk.bad, 1);
    free(p);
}

/* SIGUSR1 on the freeing thread: stop where it is until main's fork() has
 * returned, FK_FREEZE_MS at most. Only atomics, clock_gettime and
 * nanosleep, all async-signal-safe. */
static void fk_freeze(int sig)
{
    (void)sig;
    int saved = errno;
    double until = vt_now() + FK_FREEZE_MS / 1000.0;
    atomic_store(&fk.frozen, 1);
    atomic_fetch_add(&fk.freezes, 1);
    while (!atomic_load(&fk.thaw) && vt_now() < until) {
        struct timespec ts = {0, 20000};
        nanosleep(&ts, NULL);
    }
    atomic_store(&fk.frozen, 0);
    errno = saved;
}

static void *freer_main(void *arg)
{
    (void)arg;
    unsigned seen = 0;
    while (!atomic_load(&fk.stop)) {
        unsigned go = atomic_load(&fk.go);
        if (go == seen) {
            if (!atomic_load(&fk.hot)) {
                struct timespec ts = {0, 20000};
                nanosleep(&ts, NULL);
            }
            continue;
        }
        for (unsigned i = 0; i < FK_BATCH; i++) {
            /* Taken out before it is freed: a child forked while this free
             * is in progress must not free it again. */
            void *p = atomic_exchange(&fk.batch[i], NULL);
            atomic_store_explicit(&fk.progress, i + 1, memory_order_relaxed);
            if (p)
                fk_free_checked(p);
        }
        for (unsigned i = 0; i < FK_OWNER_SLOTS; i++) {
            void *p = atomic_exchange(&fk.owner_slots[i], NULL);
            if (p)
                fk_free_checked(p);
        }
        seen = go;
        atomic_store(&fk.done, go);
    }
    return NULL;
}

/* A second heap whose blocks are freed remotely: in the child its slabs
 * are orphans. */
static void *owner_main(void *arg)
{
    (void)arg;
    unsigned seen = 0;
    while (!atomic_load(&fk.stop)) {
        unsigned r = atomic_load(&fk.owner_round);
        if (r == seen) {
            struct timespec ts = {0, 50000};
            nanosleep(&ts, NULL);
            continue;
        }
        seen = r;
        size_t sz = fk_sizes[r % FK_NSIZES];
        for (unsigned i = 0; i < FK_OWNER_SLOTS; i++) {
            void *expect = NULL;
            void *p = malloc(sz);
            if (!p) {
                atomic_fetch_add(&fk.bad, 1);
                continue;
            }
            fk_stamp(p);
            if (!atomic_compare_exchange_strong(&fk.owner_slots[i], &expect, p))
                free(p);
        }
    }
    return NULL;
}

/* In the child: nothing but malloc and free, nothing that could wait for a
 * thread of the parent. */
static int child_work(void)
{
    /* Main's blocks the freeing thread had not reached (local frees here)
     * and the owner's (remote frees into orphaned slabs). */
    int mine = 0;
    for (unsigned i = 0; i < FK_BATCH; i++) {
        void *p = atomic_load(&fk.batch[i]);
        if (p) {
            if (!fk_ok(p))
                return 3;
            free(p);
            mine++;
        }
    }
    for (unsigned i = 0; i < FK_OWNER_SLOTS; i++) {
        void *p = atomic_load(&fk.owner_slots[i]);
        if (p) {
            if (!fk_ok(p))
                return 4;
            free(p);
        }
    }
    /* The batch's class: as many blocks as came back plus a few slabs'
     * worth, so the child goes through every slab of the class it owns (a
     * parked one, one being notified) and refills from it. */
    static void *v[FK_BATCH + 32];
    int n = mine + 16;
    for (int i = 0; i < n; i++) {
        v[i] = malloc(fk.size);
        if (!v[i])
            return 5;
        fk_stamp(v[i]);
    }
    for (int i = 0; i < n; i++) {
        if (!fk_ok(v[i]))
            return 6;
        free(v[i]);
    }
    /* Every size class (16..128 by 16, then eight steps per power of two,
     * as the class table). */
    for (size_t sz = 16; sz <= 32768;) {
        for (int i = 0; i < 2; i++) {
            v[i] = malloc(sz);
            if (!v[i])
                return 7;
            fk_stamp(v[i]);
        }
        for (int i = 0; i < 2; i++) {
            if (!fk_ok(v[i]))
                return 8;
            free(v[i]);
        }
        sz = sz < 128 ? sz + 16 : sz + ((size_t)1 << (63 - __builtin_clzl(sz))) / 8;
    }
    void *big = malloc(1 << 20);
    if (!big)
        return 9;
    fk_stamp(big);
    free(big);
    return 0;
}

static int sc_fork_notify(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fk_freeze;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGUSR1, &sa, NULL) != 0)
        vt_fail("sigaction: %s", strerror(errno));
    pthread_t fr, ow;
    if (pthread_create(&fr, NULL, freer_main, NULL) != 0 || pthread_create(&ow, NULL, owner_main, NULL) != 0)
        vt_fail("pthread_create");
    double end = vt_now() + vt_seconds(2.5);
    unsigned round = 0;
    uint32_t seed = 0x2545f491u;
    long forks = 0;
    while (vt_now() < end) {
        size_t sz = fk_sizes[round % FK_NSIZES];
        fk.size = sz;
        atomic_store(&fk.hot, 1);
        for (int i = 0; i < FK_BATCH; i++) {
            void *p = malloc(sz);
            if (!p)
                vt_fail("malloc(%zu) failed", sz);
            fk_stamp(p);
            atomic_store(&fk.batch[i], p);
        }
        /* Release the batch; once the freer is into it (a random number
         * of blocks), stop it wherever it is and fork as soon as the
         * signal has taken effect. */
        unsigned target = 1 + vt_xorshift(&seed) % (FK_BATCH - 2);
        unsigned freezes = atomic_load(&fk.freezes);
        atomic_store(&fk.thaw, 0);
        atomic_store(&fk.progress, 0);
        atomic_store(&fk.go, ++round);
        while (atomic_load_explicit(&fk.progress, memory_order_relaxed) < target)
            ;
        pthread_kill(fr, SIGUSR1);
        while (atomic_load(&fk.freezes) == freezes)
            ;
        pid_t pid = fork();
        if (pid == 0)
            _exit(child_work());
        atomic_store(&fk.thaw, 1);
        if (pid < 0)
            vt_fail("fork: %s", strerror(errno));
        int st;
        int w = lc_wait_child(pid, FK_CHILD_TIMEOUT_S, &st);
        if (w == -1)
            vt_fail("fork %ld: the child hung (killed after %.0f s)", forks, FK_CHILD_TIMEOUT_S);
        if (w != 0)
            vt_fail("waitpid: %s", strerror(errno));
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            vt_fail("fork %ld: the child ended with %s", forks, vt_status_str(st));
        forks++;
        /* Let the freer finish the batch, then the owner refill its slots. */
        atomic_store(&fk.hot, 0);
        while (atomic_load(&fk.done) != round || atomic_load(&fk.frozen))
            sched_yield();
        atomic_store(&fk.owner_round, round);
    }
    atomic_store(&fk.stop, 1);
    pthread_join(fr, NULL);
    pthread_join(ow, NULL);
    for (unsigned i = 0; i < FK_OWNER_SLOTS; i++) {
        void *p = atomic_exchange(&fk.owner_slots[i], NULL);
        if (p)
            fk_free_checked(p);
    }
    vt_report("forks", "%ld", forks);
    if (atomic_load(&fk.bad))
        vt_fail("%ld blocks lost their stamp or could not be allocated", (long)atomic_load(&fk.bad));
    return 0;
}

static const struct vt_scenario scenarios[] = {
    {"fork_notify", sc_fork_notify, 0},
    {NULL, NULL, 0},
};

/* ------------------------------------------------------------------------ */
/* Parent. */

static const struct vt_mode all_modes[] = {
    {VT_FAST, {NULL}},
    {VT_LEAN, {LC_LEAN_ON, LC_BUDGET0, LC_DONTNEED}},
    {VT_DEBUG, {LC_LEAN_OFF}},
};
#define NMODES (sizeof all_modes / sizeof all_modes[0])
static struct lc_modes modes;

START_TEST(test_fork_notify)
{
    const struct vt_mode *m = modes.m[_i];
    struct vt_result *r = malloc(sizeof *r);
    vt_spawn(m->variant, "fork_notify", m->env, (unsigned)(vt_seconds(2.5) * 4 + 30), r);
    printf("%s %s forks\n", r->desc, vt_str(r, "forks") ? vt_str(r, "forks") : "?");
    lc_assert_clean(r, "fork during remote frees");
    free(r);
}
END_TEST

int main(int argc, char **argv)
{
    return lc_main(argc, argv, scenarios, all_modes, NMODES, &modes, "lifecycle_fork", "fork_notify", test_fork_notify, 1, vt_seconds(2.5) * 4 + 40);
}
