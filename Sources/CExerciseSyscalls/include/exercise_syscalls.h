/*
 * Calls the exerciser's mount mode makes that Swift cannot: ioctl() is variadic, and MAP_FAILED
 * is a cast macro. Every function returns 0 or a negative errno, so Swift needs no errno dance.
 */
#ifndef EXERCISE_SYSCALLS_H
#define EXERCISE_SYSCALLS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <extentfs_ioctl.h>
#include "exercise_bytes.h"

static inline int exercise_range_ioctl(int fd, unsigned long request, uint64_t offset, uint64_t length) {
    struct extentfs_range_args args = { .offset = offset, .length = length };
    return ioctl(fd, request, &args) < 0 ? -errno : 0;
}

/* With the size refresh the header asks of every collapse caller. */
static inline int exercise_collapse_range(int fd, uint64_t offset, uint64_t length) {
    int result = exercise_range_ioctl(fd, EXTENTFS_IOC_COLLAPSE_RANGE, offset, length);
    if (result == 0) (void)extentfs_refresh_size(fd);
    return result;
}

static inline int exercise_insert_range(int fd, uint64_t offset, uint64_t length) {
    return exercise_range_ioctl(fd, EXTENTFS_IOC_INSERT_RANGE, offset, length);
}

static inline int exercise_unshare_range(int fd, uint64_t offset, uint64_t length) {
    return exercise_range_ioctl(fd, EXTENTFS_IOC_UNSHARE_RANGE, offset, length);
}

static inline int exercise_clone_range(int destination_fd, int source_fd, uint64_t source_offset,
                                       uint64_t length, uint64_t destination_offset) {
    struct extentfs_clone_args args = {
        .src_fd = source_fd, .src_offset = source_offset, .length = length, .dest_offset = destination_offset,
    };
    return ioctl(destination_fd, EXTENTFS_IOC_CLONE_RANGE, &args) < 0 ? -errno : 0;
}

/* On success *status is EXTENTFS_DEDUPE_SAME, EXTENTFS_DEDUPE_DIFFERS or a negative errno. */
static inline int exercise_dedupe_range(int destination_fd, int source_fd, uint64_t source_offset,
                                        uint64_t length, uint64_t destination_offset,
                                        int32_t *status, uint64_t *bytes_deduped) {
    struct extentfs_dedupe_args args = {
        .src_fd = source_fd, .src_offset = source_offset, .length = length, .dest_offset = destination_offset,
    };
    if (ioctl(destination_fd, EXTENTFS_IOC_DEDUPE_RANGE, &args) < 0) return -errno;
    *status = args.status;
    *bytes_deduped = args.bytes_deduped;
    return 0;
}

/* One EXTENTFS_IOC_MAP call: fills up to EXTENTFS_MAP_MAX extents of [offset, offset + length). */
static inline int exercise_map(int fd, uint64_t offset, uint64_t length, struct extentfs_extent *extents,
                               uint32_t *count) {
    struct extentfs_map_args args;
    memset(&args, 0, sizeof args);
    args.offset = offset;
    args.length = length;
    if (ioctl(fd, EXTENTFS_IOC_MAP, &args) < 0) return -errno;
    *count = args.count > EXTENTFS_MAP_MAX ? EXTENTFS_MAP_MAX : args.count;
    memcpy(extents, args.extents, *count * sizeof args.extents[0]);
    return 0;
}

static inline int exercise_map_capacity(void) { return EXTENTFS_MAP_MAX; }

/* EXTENTFS_IOC_STATS as a client of version 1 asks it: the version field the daemon answers with
 * (or -errno). */
static inline int64_t exercise_stats_version1(int fd) {
    struct extentfs_stats stats;
    memset(&stats, 0, sizeof stats);
    if (ioctl(fd, EXTENTFS_IOC_STATS, &stats) < 0) return -errno;
    return stats.version;
}

/* A shared read-write mapping, or NULL with *error set. */
static inline void *exercise_mmap_shared(int fd, size_t length, int64_t offset, int *error) {
    void *address = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)offset);
    if (address == MAP_FAILED) {
        *error = errno;
        return NULL;
    }
    return address;
}

/* fallocate(2) and copy_file_range(2) are _GNU_SOURCE declarations Swift's Glibc may not show. */
static inline int exercise_fallocate(int fd, int mode, int64_t offset, int64_t length) {
    return fallocate(fd, mode, (off_t)offset, (off_t)length) < 0 ? -errno : 0;
}

/* Returns bytes copied (maybe short, 0 at the source's EOF) or a negative errno. */
static inline int64_t exercise_copy_file_range(int source_fd, int64_t source_offset, int destination_fd,
                                               int64_t destination_offset, uint64_t length) {
    off_t in = (off_t)source_offset, out = (off_t)destination_offset;
    ssize_t copied = copy_file_range(source_fd, &in, destination_fd, &out, (size_t)length, 0);
    return copied < 0 ? -errno : (int64_t)copied;
}

#endif
