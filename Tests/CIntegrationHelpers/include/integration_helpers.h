/*
 * What the integration tests do as an unprivileged user: a forked child of the test process
 * drops to another uid and gid, makes extentfs ioctls (and, for the race, runs two threads),
 * and reports back through a pipe. In C, because a child forked from the multithreaded test
 * process may not run Swift: only the calling thread survives fork, and Swift's runtime locks
 * may be held by threads that did not.
 */
#ifndef EXTENTFS_INTEGRATION_HELPERS_H
#define EXTENTFS_INTEGRATION_HELPERS_H

#include <stdint.h>
#include <sys/types.h>

/* Who the child becomes: uid and gid, and one supplementary group when has_group is set
 * (none otherwise). */
struct extentfs_test_user {
    uint32_t uid;
    uint32_t gid;
    uint32_t group;
    int32_t has_group;
};

/* Where a child's setup went wrong: the step, and errno there. */
enum extentfs_test_step {
    EXTENTFS_STEP_NONE = 0,
    EXTENTFS_STEP_DROP_PRIVILEGES,
    EXTENTFS_STEP_OPEN_DESTINATION,
    EXTENTFS_STEP_OPEN_SOURCE,
    EXTENTFS_STEP_OPEN_SECRET_PATH,
    EXTENTFS_STEP_SWAP_DESCRIPTOR,
    EXTENTFS_STEP_START_THREADS,
    EXTENTFS_STEP_READ_DESTINATION,
};

enum extentfs_test_operation {
    EXTENTFS_TEST_CLONE = 1,  /* source_path's [0, length) to offset of path */
    EXTENTFS_TEST_DEDUPE,     /* source_path's [0, length) against offset of path */
    EXTENTFS_TEST_INSERT,     /* [offset, offset + length) of path */
    EXTENTFS_TEST_COLLAPSE,
    EXTENTFS_TEST_UNSHARE,
    EXTENTFS_TEST_WRITE,      /* pwrite of `length` bytes 'x' at offset of path (no ioctl) */
    EXTENTFS_TEST_TRUNCATE,   /* ftruncate of path to offset (no ioctl) */
};

struct extentfs_test_ioctl_result {
    int32_t failed_step;       /* enum extentfs_test_step; EXTENTFS_STEP_NONE if setup went well */
    int32_t setup_error;       /* errno of the failed step */
    int32_t operation_result;  /* the ioctl: 0 or -errno */
    int32_t dedupe_status;     /* for DEDUPE: EXTENTFS_DEDUPE_SAME, _DIFFERS or -errno */
    uint64_t bytes_deduped;
};

/* One extentfs ioctl (or write, or truncate) on `path` (opened O_RDWR) as `user`, with no extentfs_refresh_size after
 * it: what the daemon does, alone. The source of a clone or dedupe is `source_descriptor` when
 * it is not -1 (a descriptor of the test process, which the child inherits: one the user did
 * not open), else `source_path` opened O_RDONLY by the user. Returns 0 once the child has
 * reported into *result, or -errno if the child could not be run or died. */
int extentfs_test_ioctl_as_user(const struct extentfs_test_user *user, int32_t operation, const char *path,
                                const char *source_path, int32_t source_descriptor, uint64_t offset,
                                uint64_t length, struct extentfs_test_ioctl_result *result);

struct extentfs_race_setup {
    struct extentfs_test_user user;
    /* A file the user may not read, in a directory the user may search: opened O_PATH. */
    const char *secret_path;
    /* The secret file's first bytes, to recognize them in the destination. */
    const uint8_t *secret_prefix;
    uint32_t secret_prefix_length;
    /* A file the user may read (opened O_RDONLY) and one the user may write (O_RDWR). */
    const char *own_source_path;
    const char *destination_path;
    int32_t dedupe;            /* 0: clone; 1: dedupe, the destination holding the secret's bytes */
    uint64_t length;           /* bytes of each clone or dedupe, from offset 0 of both files */
    uint32_t milliseconds;     /* how long to race */
    uint32_t max_attempts;
    int32_t swapped_descriptor; /* the descriptor number the swapping thread keeps changing */
};

struct extentfs_race_outcome {
    int32_t failed_step;
    int32_t setup_error;
    int32_t secret_open_error;       /* errno of open(secret, O_RDONLY) as the user: EACCES */
    int32_t path_descriptor_result;  /* the ioctl with the O_PATH descriptor, before any race */
    uint32_t attempts;
    uint32_t accepted;               /* ioctls that returned 0 */
    uint32_t refused;                /* ioctls that failed with EBADF (the O_PATH descriptor) */
    uint32_t leaks;                  /* clone: the secret read back from the destination; dedupe: SAME */
    int32_t unexpected_error;        /* the first errno other than EBADF, 0 if none */
    uint32_t swaps;
};

/* As `user`, one thread swaps `swapped_descriptor` between an O_PATH descriptor of the secret
 * and a readable descriptor of the user's own file (dup2, over and over) while another issues
 * the clone (or dedupe) ioctl on the destination with that descriptor as source, after each
 * accepted clone reading the destination back. Returns 0 once the child has reported into
 * *outcome, or -errno. */
int extentfs_test_race_source_descriptor(const struct extentfs_race_setup *setup,
                                         struct extentfs_race_outcome *outcome);

struct extentfs_async_direct_outcome {
    uint32_t rounds;        /* writes that completed and were checked */
    uint32_t stale_rounds;  /* of those, how many a buffered read afterwards did not see whole */
    uint64_t stale_bytes;
};

/* xfstests generic/451: `rounds` times, one asynchronous O_DIRECT write (io_submit) of `size`
 * bytes (a multiple of 4096) over the whole of `path`, each round with other bytes, while a
 * thread keeps reading the file through the kernel's cache; after each write completes, a
 * buffered read of the file must return exactly what it wrote. Returns 0 or -errno. */
int extentfs_test_async_direct_writes(const char *path, uint64_t size, uint32_t rounds,
                                      struct extentfs_async_direct_outcome *outcome);

/* ---- extended attributes as another user ---- */

struct extentfs_xattr_flood_outcome {
    int32_t failed_step;           /* enum extentfs_test_step */
    int32_t setup_error;
    int32_t long_name_error;       /* setxattr with a 256-byte name: ERANGE (the kernel's) */
    int32_t oversized_value_error; /* a value of 64 KiB + 1: E2BIG (the kernel's) */
    int32_t second_value_error;    /* a second 64 KiB value on one file: ENOSPC (the inode's bound) */
    uint32_t files;                /* files created that took a 64 KiB value */
    int32_t flood_error;           /* what stopped the flood: ENOSPC */
    int32_t flood_step;            /* 1: creating the next file, 2: setting its value */
};

/* As `user`, in `directory` (which the user may write): first the three single cases on a file
 * of its own, then files f0, f1, ... each given user.v of 64 KiB until something fails, at most
 * `max_files`. Returns 0 once the child has reported into *outcome, or -errno. */
int extentfs_test_xattr_flood_as_user(const struct extentfs_test_user *user, const char *directory,
                                      uint32_t max_files, struct extentfs_xattr_flood_outcome *outcome);

struct extentfs_listxattr_result {
    int32_t failed_step;
    int32_t setup_error;
    int32_t result;                /* the bytes listed, or -errno */
    char names[4096];              /* NUL-separated, as llistxattr gives them */
};

/* llistxattr of `path` as `user`. Returns 0 once the child has reported, or -errno. */
int extentfs_test_listxattr_as_user(const struct extentfs_test_user *user, const char *path,
                                    struct extentfs_listxattr_result *result);

/* A file handle as name_to_handle_at gives it (struct file_handle with MAX_HANDLE_SZ bytes),
 * in a fixed-size struct Swift can hold. */
struct extentfs_test_file_handle {
    uint32_t handle_bytes;
    int32_t handle_type;
    unsigned char bytes[128];
};

/* name_to_handle_at(AT_FDCWD, path, ..., 0). Returns 0, or -errno. */
int extentfs_test_handle_of(const char *path, struct extentfs_test_file_handle *handle);

/* open_by_handle_at of `handle` on the filesystem that `mount_path` is on, with `flags`.
 * Returns the new descriptor, or -errno (ESTALE for a handle whose file is gone). */
int extentfs_test_open_by_handle(const char *mount_path, const struct extentfs_test_file_handle *handle, int flags);

#endif
