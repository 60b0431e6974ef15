/* test_policy.c: unit tests of the release policy (ss_release_policy_box)
 * against the internal LEAN copy. The decisions are told the time, so a
 * fake clock drives the hysteresis here instead of sleeping: a program that
 * frees and re-allocates the same memory in a loop keeps it after its
 * first round, and gets the target back once it stops looping.
 *
 * Each test has its own state (ss_release_state_t), so the library's own
 * decisions during the run do not interfere.
 */
#include "unit_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "backend/ss_release_policy_box.h"

#define MIB ((int64_t)1 << 20)
#define T0 ((int64_t)1000000) /* any start: only differences count */

START_TEST(fresh_state_follows_target)
{
    ss_release_state_t st = {0};
    ck_assert_int_eq(ss_release_bonus_at(&st, T0), 0);
    /* within the target: one superslab is cached, the next is released */
    ck_assert(ss_release_keep_at(&st, T0, 10 * MIB, 0, 10 * MIB));
    ck_assert(!ss_release_keep_at(&st, T0, 10 * MIB, SS_RELEASE_CACHE_BASE, 4 * MIB));
    /* over the target: released, even with an empty cache */
    ck_assert(!ss_release_keep_at(&st, T0, 10 * MIB, 0, 10 * MIB + 1));
    /* slabs go back only over the target */
    ck_assert(!ss_release_decommit_slab_at(&st, T0, 10 * MIB, 10 * MIB));
    ck_assert(ss_release_decommit_slab_at(&st, T0, 10 * MIB, 10 * MIB + 1));
    ck_assert_int_eq(ss_release_allowance_at(&st, T0), SS_RELEASE_CACHE_BASE);
}
END_TEST

START_TEST(bounce_raises_budget_twice)
{
    ss_release_state_t st = {0};
    ss_release_reuse_at(&st, T0, 16 * MIB);
    ck_assert_int_eq(ss_release_bonus_at(&st, T0), 32 * MIB);
    /* one superslab more in the cache per 2 MiB of bonus */
    ck_assert_int_eq(ss_release_allowance_at(&st, T0), SS_RELEASE_CACHE_BASE + 16);
    ck_assert(ss_release_keep_at(&st, T0, 0, 15, 32 * MIB));
    ck_assert(!ss_release_keep_at(&st, T0, 0, 17, 32 * MIB));
    ck_assert(!ss_release_keep_at(&st, T0, 0, 0, 32 * MIB + 1));
    ck_assert(!ss_release_decommit_slab_at(&st, T0, 0, 32 * MIB));
    ck_assert(ss_release_decommit_slab_at(&st, T0, 0, 32 * MIB + 1));
}
END_TEST

START_TEST(bonus_halves_each_idle_second)
{
    ss_release_state_t st = {0};
    ss_release_reuse_at(&st, T0, 32 * MIB); /* bonus 64 MiB */
    ck_assert_int_eq(ss_release_bonus_at(&st, T0 + SS_RELEASE_BONUS_HALVING_MS - 1), 64 * MIB);
    ck_assert_int_eq(ss_release_bonus_at(&st, T0 + SS_RELEASE_BONUS_HALVING_MS), 32 * MIB);
    /* asked again later: counted from the start, not from the last look */
    ck_assert_int_eq(ss_release_bonus_at(&st, T0 + 3 * SS_RELEASE_BONUS_HALVING_MS + 500), 8 * MIB);
    ck_assert_int_eq(ss_release_bonus_at(&st, T0 + 4 * SS_RELEASE_BONUS_HALVING_MS), 4 * MIB);
    /* gone after long enough */
    ck_assert_int_eq(ss_release_bonus_at(&st, T0 + 60 * SS_RELEASE_BONUS_HALVING_MS), 0);
    ck_assert_int_eq(ss_release_allowance_at(&st, T0 + 60 * SS_RELEASE_BONUS_HALVING_MS), SS_RELEASE_CACHE_BASE);
}
END_TEST

/* A keep that only the bonus allowed counts as use: a program still
 * looping does not lose its budget. */
START_TEST(bonus_in_use_does_not_decay)
{
    ss_release_state_t st = {0};
    ss_release_reuse_at(&st, T0, 32 * MIB);
    int64_t t = T0;
    for (int i = 0; i < 10; i++) {
        t += SS_RELEASE_BONUS_HALVING_MS - 100;
        ck_assert_msg(!ss_release_decommit_slab_at(&st, t, 0, 40 * MIB), "round %d released", i);
        ck_assert_int_eq(ss_release_bonus_at(&st, t), 64 * MIB);
    }
    t += SS_RELEASE_BONUS_HALVING_MS - 100;
    ck_assert(ss_release_keep_at(&st, t, 0, 1, 40 * MIB));
    ck_assert_int_eq(ss_release_bonus_at(&st, t + SS_RELEASE_BONUS_HALVING_MS - 1), 64 * MIB);
}
END_TEST

START_TEST(bonus_is_capped)
{
    ss_release_state_t st = {0};
    for (int i = 0; i < 100; i++)
        ss_release_reuse_at(&st, T0, 64 * MIB);
    int64_t b = ss_release_bonus_at(&st, T0);
    ck_assert_int_ge(b, SS_RELEASE_BONUS_MAX);
    ck_assert_int_lt(b, SS_RELEASE_BONUS_MAX + 2 * 64 * MIB); /* the last bounce below the cap may overshoot */
}
END_TEST

/* The scenario of tests/integration/t_lean_hysteresis.sh, with a fake
 * clock: target 0, a loop frees and re-allocates 32 MiB. */
START_TEST(loop_pays_first_round_only)
{
    ss_release_state_t st = {0};
    int64_t t = T0;
    int released = 0;
    for (int round = 0; round < 6; round++, t += 200) {
        bool rel = ss_release_decommit_slab_at(&st, t, 0, 32 * MIB);
        if (rel) {
            released++;
            ss_release_reuse_at(&st, t + 100, 32 * MIB); /* the next round takes it back: a bounce */
        }
    }
    ck_assert_int_eq(released, 1);
    /* idle: after the bonus has halved below the footprint, released again */
    ck_assert(!ss_release_decommit_slab_at(&st, t + SS_RELEASE_BONUS_HALVING_MS - 1, 0, 32 * MIB));
    ck_assert(ss_release_decommit_slab_at(&st, t + 3 * SS_RELEASE_BONUS_HALVING_MS, 0, 32 * MIB));
}
END_TEST

/* A burst freed at once: superslabs go back while the footprint is over
 * the target; once it is under, the target alone would cache the last
 * empty one, but the program was large a moment ago and is shrinking:
 * that one goes back too. After SS_RELEASE_SHRINK_MS the target keeps
 * one again; a loop (a bounce) keeps on the bonus's account at once. */
START_TEST(shrink_releases_last_superslab)
{
    ss_release_state_t st = {0};
    int64_t t = T0;
    ck_assert(!ss_release_keep_at(&st, t, 10 * MIB, 0, 200 * MIB)); /* over budget */
    ck_assert(!ss_release_keep_at(&st, t + 5, 10 * MIB, 0, 4 * MIB)); /* under, but shrinking */
    ck_assert(!ss_release_keep_at(&st, t + SS_RELEASE_SHRINK_MS - 1, 10 * MIB, 0, 4 * MIB));
    ck_assert(ss_release_keep_at(&st, t + SS_RELEASE_SHRINK_MS, 10 * MIB, 0, 4 * MIB));
    /* the same window caps the large-block cache at the bonus */
    ck_assert(ss_release_shrinking_at(&st, t + SS_RELEASE_SHRINK_MS - 1));
    ck_assert(!ss_release_shrinking_at(&st, t + SS_RELEASE_SHRINK_MS));
    /* Over the target only by what the bonus allows: not a shrink. */
    ss_release_state_t loop = {0};
    ss_release_reuse_at(&loop, t, 16 * MIB); /* bonus 32 MiB */
    ck_assert(!ss_release_keep_at(&loop, t, 10 * MIB, 17, 20 * MIB)); /* cache full, within budget + bonus */
    ck_assert(ss_release_keep_at(&loop, t + 1, 10 * MIB, 0, 4 * MIB));
    /* Over even the bonus, then back under: the bonus still keeps (a loop
     * that comes back within the window is not refused), the target no. */
    ck_assert(!ss_release_keep_at(&loop, t + 2, 10 * MIB, 0, 43 * MIB));
    ck_assert(ss_release_keep_at(&loop, t + 3, 10 * MIB, 5, 4 * MIB));
    ss_release_state_t none = {0};
    ck_assert(!ss_release_keep_at(&none, t, 10 * MIB, 0, 11 * MIB));
    ck_assert(!ss_release_keep_at(&none, t + 1, 10 * MIB, 0, 4 * MIB));
}
END_TEST

START_TEST(slab_batches_settle)
{
    uint32_t since = 5000;
    ck_assert(!ss_release_settled(since, since + SS_RELEASE_SETTLE_MS - 1));
    ck_assert(ss_release_settled(since, since + SS_RELEASE_SETTLE_MS));
    /* the 32-bit clock wraps */
    ck_assert(ss_release_settled(0xFFFFFFF0u, 0xFFFFFFF0u + SS_RELEASE_SETTLE_MS));
    ck_assert(!ss_release_settled(0xFFFFFFF0u, 0xFFFFFFF0u + 1));
    /* A heap's start is stored as now | 1: on an even clock reading it is
     * one millisecond ahead, and has not waited (not 2^32 - 1 ms). */
    ck_assert(!ss_release_settled(since | 1, since & ~1u));
    ck_assert(!ss_release_settled(0u | 1, 0u));
    ck_assert(ss_release_settled(since | 1, (since | 1) + SS_RELEASE_SETTLE_MS));
    uint32_t batch = (1u << SS_RELEASE_SLAB_BATCH) - 1u; /* that many slabs waiting */
    ck_assert(ss_release_batch_due(batch << 1, since, since + SS_RELEASE_SETTLE_MS));
    ck_assert(!ss_release_batch_due(batch, since, since + SS_RELEASE_SETTLE_MS - 1));
    ck_assert(!ss_release_batch_due(batch >> 1, since, since + 10 * SS_RELEASE_SETTLE_MS));
}
END_TEST

/* The library's entry points in the build's default mode (LEAN off): keep
 * everything, give nothing back, and the large cache is what is set. */
START_TEST(lean_off_keeps_everything)
{
    if (ss_release_lean())
        return; /* HAKMEM_SS_MEM_LEAN=1 in the environment: not this case */
    ck_assert(ss_should_keep_superslab(NULL, -1));
    ck_assert(!ss_should_decommit_slab());
    ck_assert_uint_eq(ss_release_heap_keep_empty(), 1);
    ck_assert_uint_eq(ss_release_large_cache_limit(123 * MIB), 123 * MIB);
    ck_assert_int_eq(hk_opt(HK_OPT_LEAN_TARGET_MB), SS_RELEASE_TARGET_MB_DEFAULT);
}
END_TEST

/* ---- The purge delay, on the same fake clock ------------------------------ */
START_TEST(purge_due_on_fake_clock)
{
    /* Idle since T0, delay 1000: due from T0 + 1000 on. */
    ck_assert(!ss_release_purge_due_at(T0, T0 + 999, 1000));
    ck_assert(ss_release_purge_due_at(T0, T0 + 1000, 1000));
    /* 0: at once; -1: never. */
    ck_assert(ss_release_purge_due_at(T0, T0, 0));
    ck_assert(!ss_release_purge_due_at(T0, T0 + 1000000000, -1));
}
END_TEST

START_TEST(purge_passes_on_fake_clock)
{
    /* A pass every quarter of the delay, within the bounds. */
    ck_assert_int_eq(ss_release_purge_interval_ms(1000), 250);
    ck_assert_int_eq(ss_release_purge_interval_ms(60000), SS_RELEASE_PURGE_INTERVAL_MAX_MS);
    ck_assert_int_eq(ss_release_purge_interval_ms(20), SS_RELEASE_PURGE_INTERVAL_MIN_MS);
    ck_assert_int_eq(ss_release_purge_interval_ms(-1), -1);
    _Atomic int64_t last = 0;
    ck_assert(ss_release_purge_claim_at(&last, T0, 1000));
    ck_assert(!ss_release_purge_claim_at(&last, T0 + 100, 1000));
    ck_assert(!ss_release_purge_claim_at(&last, T0 + 218, 1000)); /* 250 less an eighth */
    ck_assert(ss_release_purge_claim_at(&last, T0 + 219, 1000));
    ck_assert(!ss_release_purge_claim_at(&last, T0 + 99999, -1));
    ck_assert(ss_release_purge_claim_at(&last, T0 + 219, 0)); /* 0: every call */
    ck_assert(ss_release_purge_claim_at(&last, T0 + 219, 0));
    /* Memory freed at F, passes claimed as often as they may be: it goes
     * back between F + delay and F + delay + interval. */
    static const int64_t delays[] = {1000, 10000};
    for (int k = 0; k < 2; k++) {
        int64_t d = delays[k], f = T0 + 345, gone = -1;
        last = 0;
        for (int64_t now = T0; now < T0 + 3 * d && gone < 0; now += 10)
            if (ss_release_purge_claim_at(&last, now, d) && ss_release_purge_due_at(f, now, d))
                gone = now;
        ck_assert_msg(gone >= f + d && gone <= f + d + ss_release_purge_interval_ms(d), "delay %lld: released at +%lld",
                      (long long)d, (long long)(gone - f));
    }
}
END_TEST

START_TEST(bonus_dropped_after_purge_delay)
{
    ss_release_state_t st = {0};
    ss_release_reuse_at(&st, T0, 32 * MIB); /* bonus 64 MiB */
    /* Unused for the delay: all of it goes at once, not by halves. */
    ck_assert_int_eq(ss_release_bonus_delay_at(&st, T0 + 999, 1000), 64 * MIB);
    ck_assert_int_eq(ss_release_bonus_delay_at(&st, T0 + 1000, 1000), 0);
    ss_release_reuse_at(&st, T0, 32 * MIB);
    /* -1 (never): only the halving. */
    ck_assert_int_eq(ss_release_bonus_delay_at(&st, T0 + 2 * SS_RELEASE_BONUS_HALVING_MS, -1), 16 * MIB);
}
END_TEST

START_TEST(purge_delay_by_mode)
{
    /* This copy runs with LEAN off: FAST's default, unmapping. */
    ck_assert_int_eq(ss_purge_delay_ms(), SS_RELEASE_PURGE_DELAY_FAST_MS);
    ck_assert(!ss_purge_by_decommit());
}
END_TEST

int main(int argc, char **argv)
{
    /* The decisions read the purge delay, whose default depends on the
     * mode, and a LEAN copy may be built with LEAN on by default (the
     * Debian package's is): pin LEAN off, drop settings the caller's
     * environment may carry, and run again, since the library reads its
     * settings at load. */
    (void)argc;
    static const char *const set[] = {"HAKMEM_SS_MEM_LEAN=0", NULL};
    static const char *const unset[] = {"HAKMEM_CONF", "HAKMEM_PURGE_DELAY_MS", NULL};
    hk_unit_pin_settings(argv, "HAKMEM_TEST_POLICY_PINNED", set, unset);
    Suite *s = suite_create("release_policy");
    TCase *tc = tcase_create("hysteresis");
    tcase_add_test(tc, fresh_state_follows_target);
    tcase_add_test(tc, bounce_raises_budget_twice);
    tcase_add_test(tc, bonus_halves_each_idle_second);
    tcase_add_test(tc, bonus_in_use_does_not_decay);
    tcase_add_test(tc, bonus_is_capped);
    tcase_add_test(tc, loop_pays_first_round_only);
    tcase_add_test(tc, shrink_releases_last_superslab);
    tcase_add_test(tc, slab_batches_settle);
    tcase_add_test(tc, lean_off_keeps_everything);
    tcase_add_test(tc, purge_due_on_fake_clock);
    tcase_add_test(tc, purge_passes_on_fake_clock);
    tcase_add_test(tc, bonus_dropped_after_purge_delay);
    tcase_add_test(tc, purge_delay_by_mode);
    suite_add_tcase(s, tc);
    return hk_unit_run(s);
}
