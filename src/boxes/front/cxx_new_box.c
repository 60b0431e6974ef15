/* cxx_new_box: C++ operator new / delete. See cxx_new_box.h. */
#include "hakmem_internal.h"
#include "front/cxx_new_box.h"
#include "front/api_box.h"
#include "base/diag_box.h"

_Static_assert(_Generic((size_t)0, unsigned long: 1, default: 0),
               "the mangled names spell size_t as unsigned long");

#define HK_EXPORT __attribute__((visibility("default")))

/* libstdc++'s, when the process has it (weak: no dependency on it). */
typedef void (*hk_new_handler_t)(void);
extern hk_new_handler_t _ZSt15get_new_handlerv(void) __attribute__((weak, visibility("default")));
extern void _ZSt17__throw_bad_allocv(void) __attribute__((weak, noreturn, visibility("default")));

/* The standard's loop after a failed allocation, for align 0 (plain) or a
 * power of two. Kept out of line: the fast path is one call to the
 * allocator and a test. The frames in between have unwind tables (the
 * library is built with -funwind-tables), so bad_alloc crosses them. */
static __attribute__((cold)) HK_NOINLINE void *new_failed(size_t size, size_t align, bool nothrow)
{
    for (;;) {
        hk_new_handler_t h = _ZSt15get_new_handlerv ? _ZSt15get_new_handlerv() : NULL;
        if (!h)
            break;
        h();
        void *p = align ? hk_api_memalign(align, size) : hk_api_malloc(size);
        if (p)
            return p;
    }
    if (nothrow)
        return NULL;
    if (_ZSt17__throw_bad_allocv)
        _ZSt17__throw_bad_allocv();
    hk_fatal("out of memory in operator new, and no C++ runtime to throw std::bad_alloc");
}

HK_INLINE void *cxx_new(size_t size, bool nothrow)
{
    void *p = hk_api_malloc(size);
    return HK_LIKELY(p != NULL) ? p : new_failed(size, 0, nothrow);
}

/* align_val_t is always a power of two above the default new alignment
 * (the compiler only calls these forms for over-aligned types); one that is
 * not is the caller's bug and fails like an impossible size. */
HK_INLINE void *cxx_new_aligned(size_t size, size_t align, bool nothrow)
{
    void *p = hk_api_memalign(align, size);
    if (HK_LIKELY(p != NULL))
        return p;
    if (!hk_is_pow2(align))
        return new_failed(SIZE_MAX, 0, nothrow);
    return new_failed(size, align, nothrow);
}

HK_EXPORT void *_Znwm(size_t size) { return cxx_new(size, false); }
HK_EXPORT void *_Znam(size_t size) { return cxx_new(size, false); }
HK_EXPORT void *_ZnwmRKSt9nothrow_t(size_t size, const void *nt) { return cxx_new(size, true); }
HK_EXPORT void *_ZnamRKSt9nothrow_t(size_t size, const void *nt) { return cxx_new(size, true); }
HK_EXPORT void *_ZnwmSt11align_val_t(size_t size, size_t align) { return cxx_new_aligned(size, align, false); }
HK_EXPORT void *_ZnamSt11align_val_t(size_t size, size_t align) { return cxx_new_aligned(size, align, false); }
HK_EXPORT void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t size, size_t align, const void *nt)
{
    return cxx_new_aligned(size, align, true);
}
HK_EXPORT void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t size, size_t align, const void *nt)
{
    return cxx_new_aligned(size, align, true);
}

HK_EXPORT void _ZdlPv(void *p) { hk_api_free(p); }
HK_EXPORT void _ZdaPv(void *p) { hk_api_free(p); }
HK_EXPORT void _ZdlPvm(void *p, size_t size) { hk_api_free(p); }
HK_EXPORT void _ZdaPvm(void *p, size_t size) { hk_api_free(p); }
HK_EXPORT void _ZdlPvRKSt9nothrow_t(void *p, const void *nt) { hk_api_free(p); }
HK_EXPORT void _ZdaPvRKSt9nothrow_t(void *p, const void *nt) { hk_api_free(p); }
HK_EXPORT void _ZdlPvSt11align_val_t(void *p, size_t align) { hk_api_free(p); }
HK_EXPORT void _ZdaPvSt11align_val_t(void *p, size_t align) { hk_api_free(p); }
HK_EXPORT void _ZdlPvmSt11align_val_t(void *p, size_t size, size_t align) { hk_api_free(p); }
HK_EXPORT void _ZdaPvmSt11align_val_t(void *p, size_t size, size_t align) { hk_api_free(p); }
HK_EXPORT void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *p, size_t align, const void *nt) { hk_api_free(p); }
HK_EXPORT void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *p, size_t align, const void *nt) { hk_api_free(p); }
