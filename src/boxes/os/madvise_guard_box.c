/* madvise_guard_box: guarded madvise. See the header. */
#include "hakmem_internal.h"
#include "os/madvise_guard_box.h"
#include "base/env_box.h"
#include "os/ss_registry_box.h"
#include "base/superslab_stats.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

static _Atomic bool g_madvise_off;     /* ENOMEM seen: fail fast from now on */
static _Atomic bool g_free_refused;    /* EINVAL to MADV_FREE seen */
static _Atomic uint64_t g_madvise_seq; /* debug fault injection */

bool hk_os_madvise_disabled(void) { return atomic_load_explicit(&g_madvise_off, memory_order_relaxed); }
bool hk_os_madv_free_refused(void) { return atomic_load_explicit(&g_free_refused, memory_order_relaxed); }

/* Debug builds: should this call fail, and with which errno? */
static int injected_errno(void)
{
    if (!config_debug)
        return 0;
    int64_t n = hk_opt(HK_OPT_FAULT_MADVISE);
    if (n <= 0 || atomic_fetch_add_explicit(&g_madvise_seq, 1, memory_order_relaxed) + 1 != (uint64_t)n)
        return 0;
    return hk_opt(HK_OPT_FAULT_MADVISE_ERRNO) == 1 ? EINVAL : ENOMEM;
}

int ss_os_madvise_guarded(void *p, size_t size, hk_advice_t advice)
{
    uintptr_t a = (uintptr_t)p;
    if (size == 0 || (a & (HK_PAGE_SIZE - 1)) || (size & (HK_PAGE_SIZE - 1)) ||
        !hk_os_registry_covers_regions(a, size)) {
        HK_STAT_INC(madvise_guard_refusals);
        return -1;
    }
    if (hk_os_madvise_disabled())
        return -1;
    if (advice == HK_ADVICE_FREE && (hk_os_madv_free_refused() || !have_madv_free))
        advice = HK_ADVICE_DONTNEED;

    for (;;) {
        int err = injected_errno();
        int r;
        if (err) {
            HK_STAT_INC(madvise_calls);
            HK_STAT_INC(madvise_failures);
            r = -1;
        } else {
            r = hk_os_madvise_raw(p, size, advice, &err);
        }
        if (r == 0)
            return 0;
        if (err == EINVAL && advice == HK_ADVICE_FREE) {
            /* An old kernel without MADV_FREE: use DONTNEED from now on. */
            atomic_store_explicit(&g_free_refused, true, memory_order_relaxed);
            advice = HK_ADVICE_DONTNEED;
            continue;
        }
        if (err == ENOMEM)
            atomic_store_explicit(&g_madvise_off, true, memory_order_relaxed);
        return -1;
    }
}

/* ---- Transparent huge pages ---------------------------------------------- */

#define HK_THP_ENABLED_FILE "/kernel/mm/transparent_hugepage/enabled"
#define HK_THP_PATH_MAX 320 /* a root of up to 255 bytes (the setting's limit) and the file */

/* The mode, read once: -1 until then. Two threads reading it at once read
 * the same file and store the same answer. */
static _Atomic int g_thp_mode = -1;

/* The bracketed word of "always [madvise] never". */
static hk_thp_mode_t thp_mode_of(const char *s)
{
    const char *open = strchr(s, '[');
    if (!open)
        return HK_THP_UNKNOWN;
    static const struct {
        const char *word;
        hk_thp_mode_t mode;
    } words[] = {{"[always]", HK_THP_ALWAYS}, {"[madvise]", HK_THP_MADVISE}, {"[never]", HK_THP_NEVER}};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strncmp(open, words[i].word, strlen(words[i].word)) == 0)
            return words[i].mode;
    return HK_THP_UNKNOWN;
}

static hk_thp_mode_t thp_mode_read(void)
{
    const char *root = hk_opt_str(HK_OPT_SYSFS_ROOT);
    char path[HK_THP_PATH_MAX];
    size_t rl = strlen(root[0] ? root : "/sys");
    if (rl + sizeof HK_THP_ENABLED_FILE > sizeof path)
        return HK_THP_UNKNOWN;
    memcpy(path, root[0] ? root : "/sys", rl);
    memcpy(path + rl, HK_THP_ENABLED_FILE, sizeof HK_THP_ENABLED_FILE);
    int saved = errno;
    int fd;
    do
        fd = open(path, O_RDONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    hk_thp_mode_t mode = HK_THP_UNKNOWN;
    if (fd >= 0) {
        char buf[96]; /* the whole file: a sysfs read returns it in one go */
        ssize_t n;
        do
            n = read(fd, buf, sizeof buf - 1);
        while (n < 0 && errno == EINTR);
        close(fd);
        if (n > 0) {
            buf[n] = '\0';
            mode = thp_mode_of(buf);
        }
    }
    errno = saved;
    return mode;
}

hk_thp_mode_t hk_os_thp_mode(void)
{
    int m = atomic_load_explicit(&g_thp_mode, memory_order_relaxed);
    if (HK_UNLIKELY(m < 0)) {
        m = (int)thp_mode_read();
        atomic_store_explicit(&g_thp_mode, m, memory_order_relaxed);
    }
    return (hk_thp_mode_t)m;
}

bool hk_os_thp_superslabs(void)
{
    if (!hk_opt(HK_OPT_THP))
        return false;
    hk_thp_mode_t m = hk_os_thp_mode();
    return m == HK_THP_MADVISE || m == HK_THP_ALWAYS;
}

int ss_os_advise_huge(void *p, size_t size)
{
    uintptr_t a = (uintptr_t)p;
    if (!hk_opt(HK_OPT_THP) || hk_os_thp_mode() != HK_THP_MADVISE)
        return -1;
    if (size == 0 || (a & HK_SS_MASK) || (size & HK_SS_MASK) || !hk_os_registry_covers_regions(a, size)) {
        HK_STAT_INC(madvise_guard_refusals);
        return -1;
    }
    int err;
    HK_STAT_INC(thp_advise); /* asked; a refusal also counts as a madvise failure */
    if (hk_os_madvise_raw(p, size, HK_ADVICE_HUGEPAGE, &err) != 0)
        return -1; /* a kernel without THP (EINVAL): small pages, as before */
    return 0;
}
