#define _GNU_SOURCE
#include "integration_helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <extentfs_ioctl.h>

/* A child that hangs on a stuck mount dies instead, and its parent sees the pipe close. */
static const unsigned child_time_limit_seconds = 120;

static int drop_privileges(const struct extentfs_test_user *user) {
    gid_t group = (gid_t)user->group;
    if (setgroups(user->has_group ? 1 : 0, &group) != 0) return -1;
    if (setgid((gid_t)user->gid) != 0) return -1;
    if (setuid((uid_t)user->uid) != 0) return -1;
    return 0;
}

static void write_all(int fd, const void *bytes, size_t count) {
    const char *cursor = bytes;
    while (count > 0) {
        ssize_t written = write(fd, cursor, count);
        if (written < 0 && errno == EINTR) continue;
        if (written <= 0) return;
        cursor += written;
        count -= (size_t)written;
    }
}

/* Forks; the child runs `child(argument, report)` and writes `report_size` bytes of `report`
 * to the pipe; the parent reads them into `report`. 0, or -errno when no full report came. */
static int run_in_child(void (*child)(const void *argument, void *report), const void *argument,
                        void *report, size_t report_size) {
    int pipe_ends[2];
    if (pipe2(pipe_ends, O_CLOEXEC) != 0) return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        int error = errno;
        close(pipe_ends[0]);
        close(pipe_ends[1]);
        return -error;
    }
    if (pid == 0) {
        close(pipe_ends[0]);
        alarm(child_time_limit_seconds);
        child(argument, report);
        write_all(pipe_ends[1], report, report_size);
        _exit(0);
    }
    close(pipe_ends[1]);
    size_t received = 0;
    while (received < report_size) {
        ssize_t count = read(pipe_ends[0], (char *)report + received, report_size - received);
        if (count < 0 && errno == EINTR) continue;
        if (count <= 0) break;
        received += (size_t)count;
    }
    close(pipe_ends[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (received < report_size) return -ECHILD;
    return 0;
}

/* ---- one ioctl as another user ---- */

struct ioctl_request {
    const struct extentfs_test_user *user;
    int32_t operation;
    const char *path;
    const char *source_path;
    int32_t source_descriptor;
    uint64_t offset;
    uint64_t length;
};

static void ioctl_child(const void *argument, void *report) {
    const struct ioctl_request *request = argument;
    struct extentfs_test_ioctl_result *result = report;
    memset(result, 0, sizeof *result);
    if (drop_privileges(request->user) != 0) {
        result->failed_step = EXTENTFS_STEP_DROP_PRIVILEGES;
        result->setup_error = errno;
        return;
    }
    int destination = open(request->path, O_RDWR | O_CLOEXEC);
    if (destination < 0) {
        result->failed_step = EXTENTFS_STEP_OPEN_DESTINATION;
        result->setup_error = errno;
        return;
    }
    int source = request->source_descriptor;
    if (source == -1 && (request->operation == EXTENTFS_TEST_CLONE || request->operation == EXTENTFS_TEST_DEDUPE)) {
        source = open(request->source_path, O_RDONLY | O_CLOEXEC);
        if (source < 0) {
            result->failed_step = EXTENTFS_STEP_OPEN_SOURCE;
            result->setup_error = errno;
            return;
        }
    }
    struct extentfs_range_args range = { .offset = request->offset, .length = request->length };
    int outcome = 0;
    switch (request->operation) {
    case EXTENTFS_TEST_CLONE: {
        struct extentfs_clone_args args = {
            .src_fd = source, .src_offset = 0, .length = request->length, .dest_offset = request->offset,
        };
        outcome = ioctl(destination, EXTENTFS_IOC_CLONE_RANGE, &args);
        break;
    }
    case EXTENTFS_TEST_DEDUPE: {
        struct extentfs_dedupe_args args = {
            .src_fd = source, .src_offset = 0, .length = request->length, .dest_offset = request->offset,
        };
        outcome = ioctl(destination, EXTENTFS_IOC_DEDUPE_RANGE, &args);
        result->dedupe_status = args.status;
        result->bytes_deduped = args.bytes_deduped;
        break;
    }
    case EXTENTFS_TEST_INSERT: outcome = ioctl(destination, EXTENTFS_IOC_INSERT_RANGE, &range); break;
    case EXTENTFS_TEST_COLLAPSE: outcome = ioctl(destination, EXTENTFS_IOC_COLLAPSE_RANGE, &range); break;
    case EXTENTFS_TEST_UNSHARE: outcome = ioctl(destination, EXTENTFS_IOC_UNSHARE_RANGE, &range); break;
    case EXTENTFS_TEST_WRITE: {
        char bytes[4096];
        memset(bytes, 'x', sizeof bytes);
        size_t count = request->length < sizeof bytes ? (size_t)request->length : sizeof bytes;
        ssize_t written = pwrite(destination, bytes, count, (off_t)request->offset);
        outcome = written == (ssize_t)count ? 0 : -1;
        if (written >= 0 && written != (ssize_t)count) errno = EIO;
        break;
    }
    case EXTENTFS_TEST_TRUNCATE: outcome = ftruncate(destination, (off_t)request->offset); break;
    default: errno = EINVAL; outcome = -1; break;
    }
    result->operation_result = outcome < 0 ? -errno : 0;
}

int extentfs_test_ioctl_as_user(const struct extentfs_test_user *user, int32_t operation, const char *path,
                                const char *source_path, int32_t source_descriptor, uint64_t offset,
                                uint64_t length, struct extentfs_test_ioctl_result *result) {
    struct ioctl_request request = {
        .user = user, .operation = operation, .path = path, .source_path = source_path,
        .source_descriptor = source_descriptor, .offset = offset, .length = length,
    };
    return run_in_child(ioctl_child, &request, result, sizeof *result);
}

/* ---- the source descriptor race ---- */

struct race_state {
    const struct extentfs_race_setup *setup;
    struct extentfs_race_outcome *outcome;
    int secret_path_descriptor;
    int own_descriptor;
    int destination;
    atomic_int stop;
};

/* Flips the swapped descriptor between the two files until told to stop. dup2 replaces it in
 * one step: the number is never closed in between. */
static void *swap_descriptor(void *argument) {
    struct race_state *state = argument;
    int number = state->setup->swapped_descriptor;
    uint32_t swaps = 0;
    while (!atomic_load(&state->stop)) {
        dup2(state->secret_path_descriptor, number);
        dup2(state->own_descriptor, number);
        swaps += 2;
    }
    state->outcome->swaps = swaps;
    return NULL;
}

static uint64_t monotonic_milliseconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
}

/* The other thread: clone (or dedupe) from the swapped descriptor until the time is up. */
static void *call_with_swapped_source(void *argument) {
    struct race_state *state = argument;
    const struct extentfs_race_setup *setup = state->setup;
    struct extentfs_race_outcome *outcome = state->outcome;
    uint8_t readback[256];
    uint32_t compared = setup->secret_prefix_length < sizeof readback ? setup->secret_prefix_length : sizeof readback;
    uint64_t deadline = monotonic_milliseconds() + setup->milliseconds;
    while (outcome->attempts < setup->max_attempts && monotonic_milliseconds() < deadline) {
        outcome->attempts++;
        int result;
        int32_t status = 0;
        if (setup->dedupe) {
            struct extentfs_dedupe_args args = {
                .src_fd = setup->swapped_descriptor, .src_offset = 0, .length = setup->length, .dest_offset = 0,
            };
            result = ioctl(state->destination, EXTENTFS_IOC_DEDUPE_RANGE, &args);
            status = args.status;
        } else {
            struct extentfs_clone_args args = {
                .src_fd = setup->swapped_descriptor, .src_offset = 0, .length = setup->length, .dest_offset = 0,
            };
            result = ioctl(state->destination, EXTENTFS_IOC_CLONE_RANGE, &args);
        }
        if (result < 0) {
            if (errno == EBADF) {
                outcome->refused++;
            } else if (outcome->unexpected_error == 0) {
                outcome->unexpected_error = errno;
            }
            continue;
        }
        outcome->accepted++;
        if (setup->dedupe) {
            /* The destination holds the secret's bytes and the user's own file does not: only
             * the secret file itself can compare equal. */
            if (status == EXTENTFS_DEDUPE_SAME) outcome->leaks++;
            else if (status < 0 && outcome->unexpected_error == 0) outcome->unexpected_error = -status;
        } else {
            ssize_t count = pread(state->destination, readback, compared, 0);
            if (count < 0) {
                outcome->failed_step = EXTENTFS_STEP_READ_DESTINATION;
                outcome->setup_error = errno;
                break;
            }
            if ((uint32_t)count == compared && memcmp(readback, setup->secret_prefix, compared) == 0) outcome->leaks++;
        }
    }
    atomic_store(&state->stop, 1);
    return NULL;
}

static void race_child(const void *argument, void *report) {
    const struct extentfs_race_setup *setup = argument;
    struct extentfs_race_outcome *outcome = report;
    memset(outcome, 0, sizeof *outcome);
    if (drop_privileges(&setup->user) != 0) {
        outcome->failed_step = EXTENTFS_STEP_DROP_PRIVILEGES;
        outcome->setup_error = errno;
        return;
    }
    int readable_secret = open(setup->secret_path, O_RDONLY | O_CLOEXEC);
    outcome->secret_open_error = readable_secret < 0 ? errno : 0;
    struct race_state state = { .setup = setup, .outcome = outcome };
    atomic_init(&state.stop, 0);
    state.secret_path_descriptor = open(setup->secret_path, O_PATH | O_CLOEXEC);
    if (state.secret_path_descriptor < 0) {
        outcome->failed_step = EXTENTFS_STEP_OPEN_SECRET_PATH;
        outcome->setup_error = errno;
        return;
    }
    state.own_descriptor = open(setup->own_source_path, O_RDONLY | O_CLOEXEC);
    if (state.own_descriptor < 0) {
        outcome->failed_step = EXTENTFS_STEP_OPEN_SOURCE;
        outcome->setup_error = errno;
        return;
    }
    state.destination = open(setup->destination_path, O_RDWR | O_CLOEXEC);
    if (state.destination < 0) {
        outcome->failed_step = EXTENTFS_STEP_OPEN_DESTINATION;
        outcome->setup_error = errno;
        return;
    }
    /* Without a race, the O_PATH descriptor must be refused. */
    if (setup->dedupe) {
        struct extentfs_dedupe_args args = {
            .src_fd = state.secret_path_descriptor, .src_offset = 0, .length = setup->length, .dest_offset = 0,
        };
        int result = ioctl(state.destination, EXTENTFS_IOC_DEDUPE_RANGE, &args);
        outcome->path_descriptor_result = result < 0 ? -errno : (args.status == EXTENTFS_DEDUPE_SAME ? 1 : 0);
    } else {
        struct extentfs_clone_args args = {
            .src_fd = state.secret_path_descriptor, .src_offset = 0, .length = setup->length, .dest_offset = 0,
        };
        outcome->path_descriptor_result = ioctl(state.destination, EXTENTFS_IOC_CLONE_RANGE, &args) < 0 ? -errno : 0;
    }
    if (dup2(state.own_descriptor, setup->swapped_descriptor) < 0) {
        outcome->failed_step = EXTENTFS_STEP_SWAP_DESCRIPTOR;
        outcome->setup_error = errno;
        return;
    }
    /* Both in threads other than the process's first: the daemon gets the caller's thread id. */
    pthread_t swapper, caller;
    int error = pthread_create(&swapper, NULL, swap_descriptor, &state);
    if (error != 0) {
        outcome->failed_step = EXTENTFS_STEP_START_THREADS;
        outcome->setup_error = error;
        return;
    }
    error = pthread_create(&caller, NULL, call_with_swapped_source, &state);
    if (error != 0) {
        atomic_store(&state.stop, 1);
        pthread_join(swapper, NULL);
        outcome->failed_step = EXTENTFS_STEP_START_THREADS;
        outcome->setup_error = error;
        return;
    }
    pthread_join(caller, NULL);
    pthread_join(swapper, NULL);
}

int extentfs_test_race_source_descriptor(const struct extentfs_race_setup *setup,
                                         struct extentfs_race_outcome *outcome) {
    return run_in_child(race_child, setup, outcome, sizeof *outcome);
}

/* ---- extended attributes as another user ---- */

struct xattr_flood_request {
    const struct extentfs_test_user *user;
    const char *directory;
    uint32_t max_files;
};

static int create_empty(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    close(fd);
    return 0;
}

static void xattr_flood_child(const void *argument, void *report) {
    const struct xattr_flood_request *request = argument;
    struct extentfs_xattr_flood_outcome *outcome = report;
    memset(outcome, 0, sizeof *outcome);
    if (drop_privileges(request->user) != 0) {
        outcome->failed_step = EXTENTFS_STEP_DROP_PRIVILEGES;
        outcome->setup_error = errno;
        return;
    }
    enum { largest = 65536 };
    char *value = calloc(largest + 1, 1);
    char path[4096];
    char name[300];
    snprintf(path, sizeof path, "%s/single", request->directory);
    if (value == NULL || create_empty(path) != 0) {
        outcome->failed_step = EXTENTFS_STEP_OPEN_DESTINATION;
        outcome->setup_error = errno;
        free(value);
        return;
    }
    memset(name, 'n', 256);
    memcpy(name, "user.", 5);
    name[256] = 0;
    outcome->long_name_error = lsetxattr(path, name, value, 1, 0) == 0 ? 0 : errno;
    outcome->oversized_value_error = lsetxattr(path, "user.big", value, largest + 1, 0) == 0 ? 0 : errno;
    if (lsetxattr(path, "user.a", value, largest, 0) != 0) {
        outcome->failed_step = EXTENTFS_STEP_OPEN_DESTINATION;
        outcome->setup_error = errno;
        free(value);
        return;
    }
    outcome->second_value_error = lsetxattr(path, "user.b", value, largest, 0) == 0 ? 0 : errno;

    for (uint32_t index = 0; index < request->max_files; index++) {
        snprintf(path, sizeof path, "%s/f%u", request->directory, index);
        if (create_empty(path) != 0) {
            outcome->flood_error = errno;
            outcome->flood_step = 1;
            break;
        }
        if (lsetxattr(path, "user.v", value, largest, 0) != 0) {
            outcome->flood_error = errno;
            outcome->flood_step = 2;
            break;
        }
        outcome->files++;
    }
    free(value);
}

int extentfs_test_xattr_flood_as_user(const struct extentfs_test_user *user, const char *directory,
                                      uint32_t max_files, struct extentfs_xattr_flood_outcome *outcome) {
    struct xattr_flood_request request = { .user = user, .directory = directory, .max_files = max_files };
    return run_in_child(xattr_flood_child, &request, outcome, sizeof *outcome);
}

struct listxattr_request {
    const struct extentfs_test_user *user;
    const char *path;
};

static void listxattr_child(const void *argument, void *report) {
    const struct listxattr_request *request = argument;
    struct extentfs_listxattr_result *result = report;
    memset(result, 0, sizeof *result);
    if (drop_privileges(request->user) != 0) {
        result->failed_step = EXTENTFS_STEP_DROP_PRIVILEGES;
        result->setup_error = errno;
        return;
    }
    ssize_t count = llistxattr(request->path, result->names, sizeof result->names);
    result->result = count < 0 ? -errno : (int32_t)count;
}

int extentfs_test_listxattr_as_user(const struct extentfs_test_user *user, const char *path,
                                    struct extentfs_listxattr_result *result) {
    struct listxattr_request request = { .user = user, .path = path };
    return run_in_child(listxattr_child, &request, result, sizeof *result);
}
