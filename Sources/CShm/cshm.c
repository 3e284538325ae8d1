#define _GNU_SOURCE
#include "cshm.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

int tsv_memfd_create(const char *name, size_t size) {
    int fd = memfd_create(name, 0);
    if (fd < 0) return -1;
    if (ftruncate(fd, (off_t)size) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

void *tsv_map_shared(int fd, size_t size) {
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    return p == MAP_FAILED ? NULL : p;
}

int tsv_unmap(void *address, size_t size) { return munmap(address, size); }

static _Atomic uint32_t *field(uint32_t *p) { return (_Atomic uint32_t *)p; }

void tsv_barrier_reset(tsv_barrier *b) {
    atomic_store(field(&b->count), 0);
    atomic_store(field(&b->generation), 0);
    atomic_store(field(&b->aborted), 0);
}

void tsv_barrier_abort(tsv_barrier *b) { atomic_store(field(&b->aborted), 1); }

int tsv_barrier_is_aborted(const tsv_barrier *b) {
    return atomic_load(field((uint32_t *)&b->aborted)) != 0;
}

int tsv_barrier_wait(tsv_barrier *b, uint32_t parties, pid_t parent) {
    if (atomic_load(field(&b->aborted))) return -1;
    uint32_t gen = atomic_load(field(&b->generation));
    if (atomic_fetch_add(field(&b->count), 1) + 1 == parties) {
        atomic_store(field(&b->count), 0);
        atomic_fetch_add(field(&b->generation), 1);
        return 0;
    }
    unsigned long spins = 0;
    while (atomic_load(field(&b->generation)) == gen) {
        if (atomic_load(field(&b->aborted))) return -1;
        spins++;
        if (spins < 2000) {
#if defined(__x86_64__)
            __builtin_ia32_pause();
#endif
        } else if (spins < 200000) {
            sched_yield();
        } else {
            struct timespec ts = {0, 20000};
            nanosleep(&ts, NULL);
            if ((spins & 1023) == 0 && parent > 0 && getppid() != parent) return -1;
        }
    }
    return 0;
}

int tsv_spawn(const char *path, char *const argv[], char *const envp[], int stderr_fd, pid_t *pid,
              int *to_child, int *from_child) {
    int in_pipe[2], out_pipe[2];
    if (pipe2(in_pipe, O_CLOEXEC) != 0) return errno;
    if (pipe2(out_pipe, O_CLOEXEC) != 0) {
        int saved = errno;
        close(in_pipe[0]);
        close(in_pipe[1]);
        return saved;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in_pipe[0], 0);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
    if (stderr_fd >= 0) posix_spawn_file_actions_adddup2(&actions, stderr_fd, 2);
    int rc = posix_spawn(pid, path, &actions, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&actions);
    close(in_pipe[0]);
    close(out_pipe[1]);
    if (rc != 0) {
        close(in_pipe[1]);
        close(out_pipe[0]);
        return rc;
    }
    *to_child = in_pipe[1];
    *from_child = out_pipe[0];
    return 0;
}

int tsv_pin_to_cpu(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof(set), &set) == 0 ? 0 : errno;
}

int tsv_allowed_cpu_count(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0) return 1;
    return CPU_COUNT(&set);
}

int tsv_nth_allowed_cpu(int n) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0) return 0;
    int count = CPU_COUNT(&set);
    if (count <= 0) return 0;
    int want = n % count;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (CPU_ISSET(cpu, &set)) {
            if (want == 0) return cpu;
            want--;
        }
    }
    return 0;
}

void tsv_ignore_sigpipe(void) { signal(SIGPIPE, SIG_IGN); }
