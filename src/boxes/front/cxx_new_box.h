/* cxx_new_box: C++'s global operator new and operator delete, in every
 * standard form (plain, array, nothrow, sized, aligned, and their
 * combinations), so that a C++ program's allocations, and its sized deletes,
 * reach hakmem directly instead of going through libstdc++'s copies.
 *
 * Written in C under the Itanium C++ ABI's mangled names (the way mimalloc
 * does it), so the C libraries need no C++ compiler and carry no libstdc++
 * dependency. The standard's semantics need two libstdc++ functions,
 * std::get_new_handler and std::__throw_bad_alloc; they are weak
 * references, resolved when the process has libstdc++ (every C++ program)
 * and null otherwise:
 *  - a throwing new that cannot allocate calls the new-handler while one is
 *    installed and retries; with none, it throws std::bad_alloc. Where
 *    libstdc++ cannot be reached (a C program that dlopens a C++ library
 *    later, a program on libc++ alone, or a static link that did not pull
 *    these functions in), it prints one `hakmem: error:` line and aborts,
 *    as a C++ program built without exceptions does;
 *  - a nothrow new calls the new-handler the same way and returns NULL when
 *    none is installed. (libstdc++ would also turn a bad_alloc thrown by the
 *    handler into NULL; plain C cannot catch, so such a handler ends the
 *    program through std::terminate.)
 *  - every delete (sized or not, aligned or not) is free(): hakmem finds a
 *    block's size and alignment itself.
 * Owns: these symbols and the new-handler loop.
 * Must not: contain allocation logic (api_box.h has it), or be linked into
 * the internal copies (they must not replace anything). */
#ifndef HAKMEM_CXX_NEW_BOX_H
#define HAKMEM_CXX_NEW_BOX_H

#include <stddef.h>

/* The mangled names spell std::size_t as unsigned long ('m'), as on every
 * 64-bit Linux ABI; align_val_t is an enum of size_t, nothrow_t a struct
 * passed by reference. */
void *_Znwm(size_t size);                                           /* new */
void *_Znam(size_t size);                                           /* new[] */
void *_ZnwmRKSt9nothrow_t(size_t size, const void *nt);             /* new nothrow */
void *_ZnamRKSt9nothrow_t(size_t size, const void *nt);             /* new[] nothrow */
void *_ZnwmSt11align_val_t(size_t size, size_t align);              /* new aligned */
void *_ZnamSt11align_val_t(size_t size, size_t align);              /* new[] aligned */
void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t size, size_t align, const void *nt);
void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t size, size_t align, const void *nt);

void _ZdlPv(void *p);                                               /* delete */
void _ZdaPv(void *p);                                               /* delete[] */
void _ZdlPvm(void *p, size_t size);                                 /* sized */
void _ZdaPvm(void *p, size_t size);
void _ZdlPvRKSt9nothrow_t(void *p, const void *nt);                 /* nothrow */
void _ZdaPvRKSt9nothrow_t(void *p, const void *nt);
void _ZdlPvSt11align_val_t(void *p, size_t align);                  /* aligned */
void _ZdaPvSt11align_val_t(void *p, size_t align);
void _ZdlPvmSt11align_val_t(void *p, size_t size, size_t align);    /* sized, aligned */
void _ZdaPvmSt11align_val_t(void *p, size_t size, size_t align);
void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *p, size_t align, const void *nt);
void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *p, size_t align, const void *nt);

#endif
