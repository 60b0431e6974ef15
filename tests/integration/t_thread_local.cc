// t_thread_local.cc: C++ thread_local destructors that allocate
// (CONFORMANCE C.19), compiled and run by t_thread_local.sh.
//
// A thread_local object's destructor runs at thread exit through
// __cxa_thread_atexit, in an order relative to pthread key destructors
// (where an allocator typically flushes its thread cache) that the
// allocator does not control. Destructors here allocate, free blocks the
// thread allocated earlier, and leave blocks for other threads to free, so
// an allocator that tears its per-thread state down too early, or does not
// rebuild it on demand, crashes or loses memory.
//
// Losing memory is measured, not assumed: after a few warm-up rounds and
// again after all 960 threads (60 rounds of 16), with everything freed and
// malloc_trim(0) called, hakmem's gauges (read through dlsym from the
// preloaded library) and the process's Rss must be where they were. A heap
// or a slab leaked per thread, or destructor allocations that are never
// found again, would add up to tens of MiB over 900 threads; the bounds
// allow two superslabs and a few MiB.
#include <dlfcn.h>
#include <malloc.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>
#include <map>
#include <mutex>

#include "hakmem.h"

static std::atomic<long> dtor_runs{0};
static std::atomic<long> failures{0};
static std::mutex leftovers_mu;
static std::vector<char *> leftovers;  // freed by the main thread

struct Holder {
    std::vector<std::string> strings;
    std::map<int, std::string> map;
    char *raw = nullptr;
    Holder() {
        for (int i = 0; i < 100; i++)
            strings.emplace_back(std::string(static_cast<size_t>(i * 13 + 1), 'a' + i % 26));
        raw = static_cast<char *>(std::malloc(4096));
        if (raw) std::memset(raw, 0x5a, 4096);
    }
    ~Holder() {
        // allocate in the destructor, after the thread may have been torn down
        for (int i = 0; i < 200; i++)
            map[i] = std::string(static_cast<size_t>(i + 20), 'x');
        size_t total = 0;
        for (auto &kv : map) total += kv.second.size();
        if (total != 200 * 20 + 199 * 200 / 2) failures++;
        for (size_t i = 0; i < strings.size(); i++)
            if (strings[i].size() != i * 13 + 1 || strings[i][0] != char('a' + i % 26)) failures++;
        if (raw) {
            for (int i = 0; i < 4096; i++)
                if (raw[i] != 0x5a) { failures++; break; }
            std::free(raw);
        }
        char *left = static_cast<char *>(std::malloc(777));
        if (!left) { failures++; return; }
        std::memset(left, 0x33, 777);
        {
            std::lock_guard<std::mutex> g(leftovers_mu);
            leftovers.push_back(left);
        }
        dtor_runs++;
    }
};

thread_local Holder holder;
thread_local std::string tl_string(300, 'q');

static void thread_body(int k) {
    holder.strings.push_back(std::to_string(k));  // touch: constructs it
    tl_string += std::to_string(k);
    std::vector<void *> v;
    for (int i = 0; i < 300; i++) v.push_back(std::malloc(static_cast<size_t>(16 + i * 7)));
    for (void *p : v) std::free(p);
    holder.strings.pop_back();
}

using stats_fn = int (*)(struct hakmem_stats *, size_t);

static long rss_kb() {
    long size = 0, rss = 0;
    FILE *f = std::fopen("/proc/self/statm", "r");
    if (!f) return -1;
    if (std::fscanf(f, "%ld %ld", &size, &rss) != 2) rss = -1;
    std::fclose(f);
    return rss < 0 ? -1 : rss * (sysconf(_SC_PAGESIZE) / 1024);
}

struct snapshot {
    hakmem_stats st;
    long rss_kb;
};

static snapshot take(stats_fn get) {
    snapshot s{};
    malloc_trim(0);
    if (get(&s.st, sizeof s.st) != 0) {
        std::printf("hakmem_stats_get failed\n");
        std::exit(99);
    }
    s.rss_kb = rss_kb();
    return s;
}

static void print(const char *what, const snapshot &s) {
    std::printf("%s: ss_live=%llu large_live=%llu bytes_committed=%llu rss_kb=%ld\n", what,
                static_cast<unsigned long long>(s.st.ss_live), static_cast<unsigned long long>(s.st.large_live),
                static_cast<unsigned long long>(s.st.bytes_committed), s.rss_kb);
}

int main() {
    const int rounds = 60, per_round = 16, warmup = 5;
    auto get = reinterpret_cast<stats_fn>(reinterpret_cast<uintptr_t>(dlsym(RTLD_DEFAULT, "hakmem_stats_get")));
    if (!get) {
        std::printf("hakmem is not loaded (hakmem_stats_get not found)\n");
        return 99;
    }
    snapshot base{};
    for (int r = 0; r < rounds; r++) {
        if (r == warmup) base = take(get);
        std::vector<std::thread> ts;
        for (int i = 0; i < per_round; i++) ts.emplace_back(thread_body, r * per_round + i);
        for (auto &t : ts) t.join();
        std::lock_guard<std::mutex> g(leftovers_mu);
        for (char *p : leftovers) {
            for (int i = 0; i < 777; i++)
                if (p[i] != 0x33) { failures++; break; }
            std::free(p);
        }
        leftovers.clear();
    }
    snapshot end = take(get);
    long expect = static_cast<long>(rounds) * per_round;
    std::printf("thread_local destructors run: %ld of %ld, failures: %ld\n", dtor_runs.load(), expect,
                failures.load());
    print("after the warm-up rounds", base);
    print("after all rounds        ", end);
    int ok = dtor_runs.load() == expect && failures.load() == 0;
    const long threads = static_cast<long>(rounds - warmup) * per_round;
    if (end.st.large_live > base.st.large_live || end.st.ss_live > base.st.ss_live + 2 ||
        end.st.bytes_committed > base.st.bytes_committed + (4u << 20)) {
        std::printf("FAIL: hakmem's gauges grew over %ld threads whose thread_local destructors allocate "
                    "(bounds: large_live <= baseline, ss_live <= baseline + 2, bytes_committed <= baseline + 4 MiB)\n",
                    threads);
        ok = 0;
    }
    if (base.rss_kb < 0 || end.rss_kb < 0) {
        std::printf("FAIL: Rss unreadable (/proc/self/statm)\n");
        ok = 0;
    } else if (end.rss_kb > base.rss_kb + 8 * 1024) {
        std::printf("FAIL: Rss grew by %ld KiB over %ld threads (bound 8 MiB)\n", end.rss_kb - base.rss_kb, threads);
        ok = 0;
    }
    return ok ? 0 : 1;
}
