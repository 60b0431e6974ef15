/* cgroup_box: the memory limit of the process's cgroup, for LEAN's budget
 * (lean_target_mb:auto or N%).
 * Owns: reading /proc/self/cgroup and the limit files below the cgroup
 * root: cgroup v2 `memory.max` (unified line "0::PATH") under the root
 * or, on a hybrid host, under ROOT/unified; else cgroup v1
 * `memory/PATH/memory.limit_in_bytes`. The limit of a cgroup is the
 * smallest of its own and its ancestors' (up to the root), as the kernel
 * applies them. Read with open/read/close into stack buffers: no heap.
 * The root is /sys/fs/cgroup unless the setting HAKMEM_CGROUP_ROOT names
 * another (a fake tree in tests).
 * Must not: allocate, or read any box's state. */
#ifndef HAKMEM_CGROUP_BOX_H
#define HAKMEM_CGROUP_BOX_H

#include <stddef.h>
#include <stdint.h>

/* The limit in bytes, or -1 if none is set (or none can be read). where
 * (wn bytes) gets the file it came from, or why there is none. */
int64_t hk_cgroup_memory_limit(const char *root, char *where, size_t wn);

#endif
