/* stack_box: the calling thread's stack as return addresses, read from the
 * unwind tables (programs, and Debian's packages, are built without frame
 * pointers).
 *
 * The unwinder, and why:
 *  - glibc's backtrace() loads libgcc_s with dlopen on its first call,
 *    which calls malloc (this library is malloc) and is not safe in a
 *    signal handler; once loaded it is libgcc's unwinder below.
 *  - libgcc's _Unwind_Backtrace allocates nothing and takes no lock on
 *    glibc 2.35 and later (it finds the tables with _dl_find_object), but
 *    it interprets each frame's call-frame program from the start every
 *    time: about 160 ns a frame here, 1.6 us for a ten-frame stack, which
 *    alone would cost a small-block workload some 8 % at the profiler's
 *    default rate (one sample per 512 KiB).
 *  - libunwind's unw_backtrace is fast (a cache per thread), but it is a
 *    new dependency, maps 256 KiB of cache in every thread that samples,
 *    and takes the loader's lock (dl_iterate_phdr) on a miss.
 * So: a walk of x86-64 frames by the call-frame information (.eh_frame),
 * found with _dl_find_object (lock-free, async-signal-safe) and read in
 * place; the rule of each return address (the CFA from rsp or rbp plus an
 * offset, rbp's save slot) is cached in one lock-free table shared by all
 * threads: a frame costs a hash lookup and two loads once its rule is
 * known. A frame the walk does not model (a signal frame, a CFA given by
 * an expression or by another register) hands the whole capture to
 * libgcc's _Unwind_Backtrace, which is also the walk on other
 * architectures, without _dl_find_object, and in a fully static program
 * (linked without eh_frame_hdr; libgcc is asked only once it knows the
 * program's tables, which its start-up code registers).
 *
 * Owns: the walk and the rule cache (static memory: nothing to map or
 * initialise, so a capture works before main, in a signal handler, in an
 * exiting thread and in a fork child).
 * Must not: allocate, lock, make a system call; read memory other than the
 * stack being walked and the loaded objects' unwind tables. A frame whose
 * CFA is not above the previous one, or more than 1 MiB above it, ends
 * the walk (a corrupt or foreign stack is not followed). */
#ifndef HAKMEM_STACK_BOX_H
#define HAKMEM_STACK_BOX_H

/* The deepest stack a capture records. */
#define HK_STACK_MAX 128

/* Fill buf[0..] with return addresses, innermost first: buf[0] lies in the
 * function that called hk_stack_capture, buf[1] in its caller, ...; the
 * first `skip` of them are dropped. At most `max` (<= HK_STACK_MAX) are
 * stored; returns how many. Async-signal-safe. */
int hk_stack_capture(void **buf, int max, int skip);

/* The two walks alone, for tests that compare them: libgcc's, and the
 * tables' (-1 where a frame would need libgcc's). */
int hk_stack_capture_libgcc(void **buf, int max, int skip);
int hk_stack_capture_cfi(void **buf, int max, int skip);

#endif
