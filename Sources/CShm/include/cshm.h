#ifndef TETRISERVE_CSHM_H
#define TETRISERVE_CSHM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/// A reusable barrier that lives in shared memory (64 bytes, all zero when fresh).
typedef struct tsv_barrier {
    uint32_t count;
    uint32_t generation;
    uint32_t aborted;
    uint32_t padding[13];
} tsv_barrier;

/// Creates an anonymous shared-memory file of `size` bytes (inherited by spawned children).
/// Returns the descriptor, or -1 with errno set.
int tsv_memfd_create(const char *name, size_t size);

/// Maps `size` bytes of `fd` shared and read-write. Returns NULL on failure.
void *tsv_map_shared(int fd, size_t size);

/// Unmaps a mapping made by tsv_map_shared.
int tsv_unmap(void *address, size_t size);

/// Resets a barrier to its fresh state.
void tsv_barrier_reset(tsv_barrier *barrier);

/// Waits until `parties` callers have arrived. Returns 0 when all arrived, -1 when the barrier
/// was aborted (by tsv_barrier_abort) or the process that started the caller went away.
int tsv_barrier_wait(tsv_barrier *barrier, uint32_t parties, pid_t parent);

/// Marks the barrier aborted: every waiter, now or later, returns -1.
void tsv_barrier_abort(tsv_barrier *barrier);

/// Whether the barrier has been aborted.
int tsv_barrier_is_aborted(const tsv_barrier *barrier);

/// Spawns `path` with `argv` and `envp`; the child's stdin and stdout are pipes whose parent
/// ends (close-on-exec) are returned in `to_child` and `from_child`; the child's stderr is
/// `stderr_fd` (or inherited when negative). Returns 0 or an errno value.
int tsv_spawn(const char *path, char *const argv[], char *const envp[], int stderr_fd, pid_t *pid,
              int *to_child, int *from_child);

/// Pins the calling thread to one CPU. Returns 0 or an errno value.
int tsv_pin_to_cpu(int cpu);

/// Number of CPUs this process may run on.
int tsv_allowed_cpu_count(void);

/// The `n`-th CPU (counting from 0, wrapping around) this process may run on.
int tsv_nth_allowed_cpu(int n);

/// Ignores SIGPIPE so that writes to a dead worker fail with EPIPE instead of killing the caller.
void tsv_ignore_sigpipe(void);

#endif
