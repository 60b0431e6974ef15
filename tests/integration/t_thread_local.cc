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
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>
#include <map>
#include <mutex>

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

int main() {
    const int rounds = 60, per_round = 16;
    for (int r = 0; r < rounds; r++) {
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
    long expect = static_cast<long>(rounds) * per_round;
    std::printf("thread_local destructors run: %ld of %ld, failures: %ld\n", dtor_runs.load(), expect,
                failures.load());
    return (dtor_runs.load() == expect && failures.load() == 0) ? 0 : 1;
}
