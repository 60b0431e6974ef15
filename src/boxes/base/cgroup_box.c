/* cgroup_box: the cgroup's memory limit, without the heap. See the header. */
#include "hakmem_internal.h"
#include "base/cgroup_box.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define HK_CG_PATH_MAX 512

/* Read a small file into buf (NUL-terminated); length or -1. */
static ssize_t read_small(const char *path, char *buf, size_t n)
{
    int fd;
    do
        fd = open(path, O_RDONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return -1;
    size_t len = 0;
    while (len + 1 < n) {
        ssize_t r = read(fd, buf + len, n - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    return (ssize_t)len;
}

static bool cat(char *dst, size_t n, const char *s)
{
    size_t l = strlen(dst), k = strlen(s);
    if (l + k + 1 > n)
        return false;
    memcpy(dst + l, s, k + 1);
    return true;
}

/* A limit file's value: bytes, or -1 for "max" / no limit (cgroup v1
 * writes a huge page-rounded number instead), or -2 if unreadable. */
static int64_t read_limit(const char *path)
{
    char buf[64];
    if (read_small(path, buf, sizeof buf) <= 0)
        return -2;
    if (strncmp(buf, "max", 3) == 0)
        return -1;
    uint64_t v = 0;
    const char *p = buf;
    if (*p < '0' || *p > '9')
        return -2;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    return v >= ((uint64_t)1 << 60) ? -1 : (int64_t)v;
}

/* The smallest limit of dir/PATH/file and its ancestors up to dir. */
static int64_t limit_up(const char *dir, const char *cgpath, const char *file, char *where, size_t wn, bool *any)
{
    char rel[HK_CG_PATH_MAX], path[HK_CG_PATH_MAX];
    size_t rl = strlen(cgpath);
    if (rl >= sizeof rel)
        return -1;
    memcpy(rel, cgpath, rl + 1);
    int64_t best = -1;
    for (;;) {
        while (rl > 0 && rel[rl - 1] == '/')
            rel[--rl] = '\0';
        path[0] = '\0';
        if (!cat(path, sizeof path, dir) || !cat(path, sizeof path, rel) || !cat(path, sizeof path, "/") ||
            !cat(path, sizeof path, file))
            return -1;
        int64_t v = read_limit(path);
        if (v != -2)
            *any = true;
        if (v >= 0 && (best < 0 || v < best)) {
            best = v;
            if (where && wn) {
                where[0] = '\0';
                cat(where, wn, path);
            }
        }
        if (rl == 0)
            break;
        char *slash = strrchr(rel, '/');
        rl = slash ? (size_t)(slash - rel) : 0;
        rel[rl] = '\0';
    }
    return best;
}

int64_t hk_cgroup_memory_limit(const char *root, char *where, size_t wn)
{
    char buf[4096];
    if (where && wn)
        where[0] = '\0';
    if (!root || !*root)
        root = "/sys/fs/cgroup";
    if (read_small("/proc/self/cgroup", buf, sizeof buf) <= 0) {
        if (where && wn)
            cat(where, wn, "/proc/self/cgroup unreadable");
        return -1;
    }
    const char *v2 = NULL, *v1 = NULL;
    size_t v2len = 0, v1len = 0;
    for (char *line = buf; *line;) {
        char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        /* hierarchy-ID:controllers:path */
        char *c1 = memchr(line, ':', len);
        char *c2 = c1 ? memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - line)) : NULL;
        if (c2) {
            size_t plen = len - (size_t)(c2 + 1 - line);
            if (c1 - line == 1 && line[0] == '0' && c2 == c1 + 1) {
                v2 = c2 + 1;
                v2len = plen;
            } else {
                /* a v1 line naming the memory controller */
                for (const char *p = c1 + 1; p < c2;) {
                    const char *q = memchr(p, ',', (size_t)(c2 - p));
                    size_t k = q ? (size_t)(q - p) : (size_t)(c2 - p);
                    if (k == 6 && memcmp(p, "memory", 6) == 0) {
                        v1 = c2 + 1;
                        v1len = plen;
                    }
                    p += k + 1;
                }
            }
        }
        line += len + (end ? 1 : 0);
    }
    char cg[HK_CG_PATH_MAX], dir[HK_CG_PATH_MAX];
    bool any = false;
    if (v2 && v2len < sizeof cg) {
        memcpy(cg, v2, v2len);
        cg[v2len] = '\0';
        int64_t lim = limit_up(root, cg, "memory.max", where, wn, &any);
        if (lim >= 0)
            return lim;
        /* A hybrid host (systemd's "hybrid" layout): v1 controllers under
         * the root, v2 mounted at ROOT/unified. */
        dir[0] = '\0';
        if (cat(dir, sizeof dir, root) && cat(dir, sizeof dir, "/unified")) {
            lim = limit_up(dir, cg, "memory.max", where, wn, &any);
            if (lim >= 0)
                return lim;
        }
    }
    if (v1 && v1len < sizeof cg) {
        memcpy(cg, v1, v1len);
        cg[v1len] = '\0';
        dir[0] = '\0';
        if (cat(dir, sizeof dir, root) && cat(dir, sizeof dir, "/memory")) {
            int64_t lim = limit_up(dir, cg, "memory.limit_in_bytes", where, wn, &any);
            if (lim >= 0)
                return lim;
        }
    }
    if (where && wn) {
        where[0] = '\0';
        cat(where, wn, any ? "no limit set" : "no cgroup memory limit file under ");
        if (!any)
            cat(where, wn, root);
    }
    return -1;
}
