/* heap_profile_box: the heap profile's numbers and text, from a snapshot it
 * is handed.
 *
 * The sampling model: the gaps between samples, counted in bytes
 * allocated, are exponential with mean R, so the sample points form a
 * Poisson process along the bytes a thread allocates, and a block of s
 * bytes is sampled with probability P(s) = 1 - exp(-s/R), whatever its
 * neighbours. A sampled block stands for 1/P(s) blocks and s/P(s) bytes:
 * summed over the sampled blocks still live, an unbiased estimate of what
 * is allocated (jemalloc's and tcmalloc's model).
 *
 * The text is jemalloc's heap profile, which jeprof reads: a `heap_v2/R`
 * header with the totals on a `t*:` line, then per stack an `@` line of
 * return addresses, innermost first, its `t*:` line and a `tN:` line per
 * thread (N numbers threads in the order they first sampled), each
 * "objects: bytes [0: 0]" (the bracket holds jemalloc's cumulative counts,
 * which hakmem does not keep), then `MAPPED_LIBRARIES:` and the process's
 * /proc/self/maps. jeprof scales each line by 1/(1 - exp(-(bytes /
 * objects) / R)), the average size's probability, which is wrong for a
 * stack whose blocks differ in size; so, as jemalloc does, each line holds
 * the values that jeprof's scaling turns into the estimate above (see
 * jeprof_values()).
 *
 * Owns: that math (with its own exp and log: no libm, nothing that might
 * allocate or lock) and those two text forms, the profile and the one-line
 * leak summary.
 * Must not: allocate (it sorts the snapshot in place), lock, or read the
 * profiler's tables; only the leak summary, at exit, asks the loader
 * (dladdr) for the name of its sites. The profile is written with
 * write(2) alone: async-signal-safe. */
#ifndef HAKMEM_HEAP_PROFILE_BOX_H
#define HAKMEM_HEAP_PROFILE_BOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A live sampled block. */
typedef struct hk_prof_sample {
    uint32_t stack;  /* its stack's number in the snapshot */
    uint32_t thread; /* the thread that allocated it (1, 2, ...) */
    uint64_t size;   /* bytes asked for (what the sampler counted) */
} hk_prof_sample_t;

typedef struct hk_prof_snapshot {
    double mean;                /* R: the mean gap, bytes */
    hk_prof_sample_t *samples;  /* the caller's memory; sorted in place */
    size_t n;
    /* The return addresses of stack `stack`, innermost first. */
    const void *const *(*frames)(const void *ctx, uint32_t stack, unsigned *depth);
    const void *ctx;
} hk_prof_snapshot_t;

/* The next gap, in bytes, from 53 random bits (a uniform number in (0, 1]). */
int64_t hk_prof_gap(uint64_t bits53, double mean);
/* P(s): the probability that a block of s bytes is sampled. */
double hk_prof_inclusion(uint64_t size, double mean);
/* What a sampled block of s bytes stands for, in bytes: s / P(s). */
uint64_t hk_prof_estimate_bytes(uint64_t size, double mean);

/* Write the profile to fd. 0, or -1 with errno (a failed write). */
int hk_prof_write(int fd, hk_prof_snapshot_t *s);

/* The leak summary, one line on stderr ("hakmem: prof_leak: ..."): the
 * estimated bytes and blocks still allocated and the sites (the innermost
 * return address of each stack, named by dladdr where the loader can)
 * that hold most, with `where` (the final profile's name, or NULL). */
void hk_prof_leak_line(hk_prof_snapshot_t *s, const char *where);

#endif
