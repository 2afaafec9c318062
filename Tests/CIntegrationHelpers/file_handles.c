// name_to_handle_at and open_by_handle_at for the export tests: struct file_handle ends in a
// flexible array, which Swift cannot allocate.
#define _GNU_SOURCE
#include "integration_helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int extentfs_test_handle_of(const char *path, struct extentfs_test_file_handle *handle) {
    struct file_handle *raw = malloc(sizeof *raw + sizeof handle->bytes);
    if (raw == NULL) return -ENOMEM;
    raw->handle_bytes = sizeof handle->bytes;
    int mount_id;
    int result = name_to_handle_at(AT_FDCWD, path, raw, &mount_id, 0) == 0 ? 0 : -errno;
    if (result == 0) {
        handle->handle_bytes = raw->handle_bytes;
        handle->handle_type = raw->handle_type;
        memcpy(handle->bytes, raw->f_handle, raw->handle_bytes);
    }
    free(raw);
    return result;
}

int extentfs_test_open_by_handle(const char *mount_path, const struct extentfs_test_file_handle *handle, int flags) {
    if (handle->handle_bytes > sizeof handle->bytes) return -EINVAL;
    int mount_fd = open(mount_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (mount_fd < 0) return -errno;
    struct file_handle *raw = malloc(sizeof *raw + handle->handle_bytes);
    if (raw == NULL) {
        close(mount_fd);
        return -ENOMEM;
    }
    raw->handle_bytes = handle->handle_bytes;
    raw->handle_type = handle->handle_type;
    memcpy(raw->f_handle, handle->bytes, handle->handle_bytes);
    int fd = open_by_handle_at(mount_fd, raw, flags | O_CLOEXEC);
    int result = fd >= 0 ? fd : -errno;
    free(raw);
    close(mount_fd);
    return result;
}
