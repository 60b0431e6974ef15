// t_cxx_new.cc: C++ operator new and delete are hakmem's, in every standard
// form, with the standard's semantics; compiled and run by t_cxx_new.sh
// with the library preloaded (HAKMEM_TEST_LIB names it).
//
// - every form, as the program's own calls see it, resolves into the
//   preloaded library (a form left to libstdc++ would hand a block of
//   glibc's to hakmem's delete, or the reverse);
// - blocks are hakmem's (hakmem_owns), aligned as asked, and freed by each
//   delete form (sized, aligned, nothrow), with container and over-aligned
//   type use in between;
// - a throwing new that cannot allocate calls the new-handler while one is
//   installed (and succeeds once the handler made room), then throws
//   std::bad_alloc; an exception the handler throws
//   crosses hakmem's frames to the caller; nothrow new returns NULL after
//   the handler gives up.
// Exits 0, or 1 after printing each failure.
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/resource.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <new>
#include <string>
#include <vector>

static int failures = 0;
#define CHECK(cond, ...)                                   \
    do {                                                   \
        if (!(cond)) {                                     \
            std::printf("FAIL: %s: ", #cond);              \
            std::printf(__VA_ARGS__);                      \
            std::printf("\n");                             \
            failures++;                                    \
        }                                                  \
    } while (0)

static int (*owns)(const void *);
static char lib_real[PATH_MAX];

// Is the code at addr in the preloaded library?
static bool in_lib(const void *addr)
{
    Dl_info di;
    char real[PATH_MAX];
    if (!dladdr(addr, &di) || !di.dli_fname || !realpath(di.dli_fname, real))
        return false;
    return std::strcmp(real, lib_real) == 0;
}

static const char *where(const void *addr)
{
    Dl_info di;
    return dladdr(addr, &di) && di.dli_fname ? di.dli_fname : "?";
}

// A size no allocator can serve (but below PTRDIFF_MAX, so it reaches the
// allocator instead of the compiler's own length check).
static volatile size_t huge = (size_t)1 << 62;
static void *volatile sink;

static int handler_calls;
static void handler_gives_up()
{
    if (++handler_calls == 3)
        std::set_new_handler(nullptr);
}
struct handler_error {};

// Frees the way: lifts the address-space limit the test set, so the
// allocation that failed succeeds when new retries it.
static struct rlimit saved_as;
static void handler_lifts_limit()
{
    handler_calls++;
    setrlimit(RLIMIT_AS, &saved_as);
}

// The process's address space now, in bytes (/proc/self/statm, pages).
static size_t vm_bytes()
{
    unsigned long pages = 0;
    FILE *f = std::fopen("/proc/self/statm", "r");
    if (f) {
        if (std::fscanf(f, "%lu", &pages) != 1)
            pages = 0;
        std::fclose(f);
    }
    return (size_t)pages * 4096;
}
static void handler_throws() { throw handler_error(); }

struct alignas(256) Over {
    char c[300];
};

int main()
{
    const char *lib = std::getenv("HAKMEM_TEST_LIB");
    if (!lib || !realpath(lib, lib_real)) {
        std::printf("FAIL: HAKMEM_TEST_LIB not set or not found\n");
        return 99;
    }
    owns = reinterpret_cast<int (*)(const void *)>(dlsym(RTLD_DEFAULT, "hakmem_owns"));
    if (!owns) {
        std::printf("FAIL: hakmem_owns not found: the library is not preloaded\n");
        return 99;
    }

    // 1. Every form resolves into the library, as the program calls it.
    using del_t = void (*)(void *) noexcept;
    using del_sized_t = void (*)(void *, std::size_t) noexcept;
    using del_nt_t = void (*)(void *, const std::nothrow_t &) noexcept;
    using del_al_t = void (*)(void *, std::align_val_t) noexcept;
    using del_sized_al_t = void (*)(void *, std::size_t, std::align_val_t) noexcept;
    using del_al_nt_t = void (*)(void *, std::align_val_t, const std::nothrow_t &) noexcept;
    using new_t = void *(*)(std::size_t);
    using new_nt_t = void *(*)(std::size_t, const std::nothrow_t &) noexcept;
    using new_al_t = void *(*)(std::size_t, std::align_val_t);
    using new_al_nt_t = void *(*)(std::size_t, std::align_val_t, const std::nothrow_t &) noexcept;
    struct {
        const char *name;
        const void *addr;
    } forms[] = {
        {"new", (const void *)static_cast<new_t>(&::operator new)},
        {"new[]", (const void *)static_cast<new_t>(&::operator new[])},
        {"new nothrow", (const void *)static_cast<new_nt_t>(&::operator new)},
        {"new[] nothrow", (const void *)static_cast<new_nt_t>(&::operator new[])},
        {"new aligned", (const void *)static_cast<new_al_t>(&::operator new)},
        {"new[] aligned", (const void *)static_cast<new_al_t>(&::operator new[])},
        {"new aligned nothrow", (const void *)static_cast<new_al_nt_t>(&::operator new)},
        {"new[] aligned nothrow", (const void *)static_cast<new_al_nt_t>(&::operator new[])},
        {"delete", (const void *)static_cast<del_t>(&::operator delete)},
        {"delete[]", (const void *)static_cast<del_t>(&::operator delete[])},
        {"delete sized", (const void *)static_cast<del_sized_t>(&::operator delete)},
        {"delete[] sized", (const void *)static_cast<del_sized_t>(&::operator delete[])},
        {"delete nothrow", (const void *)static_cast<del_nt_t>(&::operator delete)},
        {"delete[] nothrow", (const void *)static_cast<del_nt_t>(&::operator delete[])},
        {"delete aligned", (const void *)static_cast<del_al_t>(&::operator delete)},
        {"delete[] aligned", (const void *)static_cast<del_al_t>(&::operator delete[])},
        {"delete sized aligned", (const void *)static_cast<del_sized_al_t>(&::operator delete)},
        {"delete[] sized aligned", (const void *)static_cast<del_sized_al_t>(&::operator delete[])},
        {"delete aligned nothrow", (const void *)static_cast<del_al_nt_t>(&::operator delete)},
        {"delete[] aligned nothrow", (const void *)static_cast<del_al_nt_t>(&::operator delete[])},
    };
    for (auto &f : forms)
        CHECK(in_lib(f.addr), "operator %s resolves into %s, not %s", f.name, where(f.addr), lib_real);

    // 2. Blocks are hakmem's, aligned as asked, and every delete frees them.
    static const std::size_t sizes[] = {0, 1, 24, 100, 1000, 5000, 40000, 300000};
    for (std::size_t n : sizes) {
        void *a = ::operator new(n), *b = ::operator new[](n);
        void *c = ::operator new(n, std::nothrow), *d = ::operator new[](n, std::nothrow);
        CHECK(a && b && c && d, "new(%zu) returned NULL", n);
        // (n > 0: the debug library's hakmem_owns() answers 0 for a
        // zero-byte block, whose usable size is 0 there.)
        for (void *p : {a, b, c, d})
            CHECK(owns(p), "new(%zu) = %p is not hakmem's", n, p);
        std::memset(a, 1, n);
        ::operator delete(a, n);
        ::operator delete[](b, n);
        ::operator delete(c, std::nothrow);
        ::operator delete[](d);
        for (std::size_t al : {(std::size_t)32, (std::size_t)256, (std::size_t)4096, (std::size_t)65536,
                               (std::size_t)1 << 21}) {
            auto av = static_cast<std::align_val_t>(al);
            void *e = ::operator new(n, av), *g = ::operator new[](n, av, std::nothrow);
            CHECK(e && g, "aligned new(%zu, %zu) returned NULL", n, al);
            CHECK(((uintptr_t)e % al) == 0 && ((uintptr_t)g % al) == 0, "new(%zu, align %zu) = %p, %p", n, al,
                  e, g);
            CHECK(owns(e) && owns(g), "aligned new(%zu, %zu) not hakmem's", n, al);
            if (n)
                std::memset(e, 2, n);
            ::operator delete(e, n, av);
            if (al == 4096)
                ::operator delete[](g, av, std::nothrow);
            else
                ::operator delete[](g, av);
        }
    }
    {
        Over *o = new Over[7];
        CHECK(((uintptr_t)o % alignof(Over)) == 0, "new Over[7] = %p, not %zu-aligned", (void *)o, alignof(Over));
        delete[] o;
        std::vector<std::string> v;
        std::map<int, std::string> m;
        for (int i = 0; i < 20000; i++) {
            v.emplace_back(std::string((size_t)(i % 300 + 20), 'a' + i % 26));
            m[i] = v.back();
        }
        CHECK(owns(v.data()), "std::vector's storage is not hakmem's");
        for (int i = 0; i < 20000; i += 997)
            CHECK(m[i] == v[(size_t)i], "map and vector disagree at %d", i);
    }

    // 3. Failure: the handler is called until it gives up, then bad_alloc.
    bool thrown = false;
    handler_calls = 0;
    std::set_new_handler(handler_gives_up);
    try {
        sink = ::operator new(huge);
    } catch (const std::bad_alloc &) {
        thrown = true;
    }
    CHECK(thrown && handler_calls == 3, "new(huge): thrown %d, handler called %d times (want 3)", thrown,
          handler_calls);

    thrown = false;
    try {
        sink = new char[huge];
    } catch (const std::bad_alloc &) {
        thrown = true;
    }
    CHECK(thrown, "new char[huge] without a handler did not throw bad_alloc");

    thrown = false;
    try {
        sink = ::operator new(huge, std::align_val_t(4096));
    } catch (const std::bad_alloc &) {
        thrown = true;
    }
    CHECK(thrown, "aligned new(huge) did not throw bad_alloc");

    // A handler that makes room: new retries and succeeds, no exception.
    // The room is address space: under RLIMIT_AS with 64 MiB to spare, a
    // 256 MiB block cannot be mapped until the handler lifts the limit.
    getrlimit(RLIMIT_AS, &saved_as);
    size_t vm = vm_bytes();
    struct rlimit tight = saved_as;
    tight.rlim_cur = vm + ((size_t)64 << 20);
    if (vm && (saved_as.rlim_cur == RLIM_INFINITY || saved_as.rlim_cur > tight.rlim_cur) &&
        setrlimit(RLIMIT_AS, &tight) == 0) {
        handler_calls = 0;
        std::set_new_handler(handler_lifts_limit);
        thrown = false;
        char *big = nullptr;
        try {
            big = static_cast<char *>(::operator new((size_t)256 << 20));
        } catch (const std::bad_alloc &) {
            thrown = true;
        }
        CHECK(!thrown && big && handler_calls == 1,
              "new(256 MiB) under RLIMIT_AS: thrown %d, %p, handler called %d times (want 1, then success)", thrown,
              (void *)big, handler_calls);
        if (big) {
            big[0] = big[((size_t)256 << 20) - 1] = 1;
            CHECK(owns(big), "the block new returned after the handler is not hakmem's");
            ::operator delete(big, (size_t)256 << 20);
        }
        setrlimit(RLIMIT_AS, &saved_as);
        std::set_new_handler(nullptr);
    } else {
        std::printf("note: RLIMIT_AS cannot be lowered here: the handler's retry is not tested\n");
    }

    // The handler's own exception reaches the caller through hakmem's frames.
    thrown = false;
    std::set_new_handler(handler_throws);
    try {
        sink = ::operator new[](huge);
    } catch (const handler_error &) {
        thrown = true;
    }
    CHECK(thrown, "the new-handler's exception did not reach the caller");

    // nothrow: NULL once the handler gives up, and without one.
    handler_calls = 0;
    std::set_new_handler(handler_gives_up);
    void *p = ::operator new(huge, std::nothrow);
    CHECK(p == nullptr && handler_calls == 3, "new(huge, nothrow) = %p, handler called %d times (want NULL, 3)",
          p, handler_calls);
    std::set_new_handler(nullptr);
    CHECK(::operator new[](huge, std::nothrow) == nullptr, "new[](huge, nothrow) is not NULL");
    CHECK(::operator new(huge, std::align_val_t(64), std::nothrow) == nullptr,
          "new(huge, align, nothrow) is not NULL");
    CHECK(new (std::nothrow) char[huge] == nullptr, "new (nothrow) char[huge] is not NULL");

    if (failures)
        std::printf("%d failures\n", failures);
    else
        std::printf("operator new/delete: 20 forms in %s, semantics as the standard says\n", lib_real);
    return failures ? 1 : 0;
}
