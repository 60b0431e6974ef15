// static_new.cc: a C++ program linked statically with hakmem (t_static.sh,
// check-deb.sh): operator new is hakmem's, and a request that cannot be
// met runs the new-handler until it gives up (here: at its third call),
// then throws std::bad_alloc, which the program catches. Prints
// "bad_alloc after 3 handler calls" and exits 0.
#include <cstdint>
#include <cstdio>
#include <new>
#include <hakmem.h>

static int calls;

static void handler()
{
    if (++calls == 3)
        std::set_new_handler(nullptr);
}

int main()
{
    int *p = new int(5);
    if (!hakmem_owns(p)) {
        std::printf("operator new is not hakmem's\n");
        return 1;
    }
    delete p;
    std::set_new_handler(handler);
    try {
        volatile std::size_t huge = SIZE_MAX / 2;
        char *q = new char[huge];
        std::printf("new char[%zu] returned %p\n", (std::size_t)huge, (void *)q);
        return 1;
    } catch (const std::bad_alloc &) {
        std::printf("bad_alloc after %d handler calls\n", calls);
    }
    return calls == 3 ? 0 : 1;
}
