/*
 * extentfs ioctls: space operations that the kernel does not pass to a FUSE filesystem.
 *
 * The kernel hands a FUSE daemon fallocate only for KEEP_SIZE, PUNCH_HOLE and ZERO_RANGE, and
 * answers FICLONE, FICLONERANGE, FIDEDUPERANGE and FS_IOC_FIEMAP itself (EOPNOTSUPP). extentfs
 * serves the rest through these ioctls on files of an extentfs mount (and reports its counters
 * through EXTENTFS_IOC_STATS). Every argument struct has a fixed size (FUSE passes only such
 * ioctls). libExtentFSPreload.so turns the standard calls into these, so unmodified programs
 * reach them.
 *
 * Errors are the errno values the standard calls give (fallocate(2), ioctl_ficlonerange(2),
 * ioctl_fideduperange(2)). A source file descriptor (src_fd) is a descriptor of the calling
 * process: it must be open (else EBADF), on the same extentfs mount (else EXDEV), a regular file
 * (else EISDIR or EINVAL) and open for reading (else EBADF; an O_PATH descriptor is not), and its
 * mode bits and access ACL must let the caller read it now (else EACCES). The file the ioctl is
 * issued on is the destination: a regular file (else EISDIR), open for writing (else EBADF; for clone also
 * not O_APPEND). Dedupe relaxes that as FIDEDUPERANGE does: a destination open read-only will
 * do if the caller owns it or is root (else EPERM). Offsets and lengths are unsigned here but
 * loff_t in the standard calls: one above INT64_MAX is EINVAL, a range ending past it EFBIG.
 * An unknown command is ENOTTY, as on any filesystem.
 *
 * As a write does, COLLAPSE_RANGE, INSERT_RANGE, UNSHARE_RANGE and CLONE_RANGE take from the
 * file they change its set-user-ID bit and, when the group may execute it, its set-group-ID bit
 * (unless the caller is root), and its security.capability (also for root). DEDUPE_RANGE leaves
 * what the file reads as, and so its mode, capabilities and times, as they were.
 *
 * After COLLAPSE_RANGE, call extentfs_refresh_size (below) before relying on the file's size.
 *
 * Include this header from C or C++; it needs only the C library and <linux/ioctl.h>.
 */
#ifndef EXTENTFS_IOCTL_H
#define EXTENTFS_IOCTL_H

#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#include <linux/ioctl.h>

#define EXTENTFS_IOC_MAGIC 0xE5

/* COLLAPSE_RANGE, INSERT_RANGE, UNSHARE_RANGE: the fallocate(2) modes of the same names.
 * After COLLAPSE_RANGE, call extentfs_refresh_size(fd), as libExtentFSPreload does.
 * UNSHARE_RANGE acts as FALLOC_FL_UNSHARE_RANGE|FALLOC_FL_KEEP_SIZE does on XFS (private copies
 * of shared blocks, holes of the range preallocated, size unchanged); without KEEP_SIZE, follow it
 * with a mode-0 fallocate(2) of the same range, as libExtentFSPreload does. */
struct extentfs_range_args {
    uint64_t offset;
    uint64_t length;
};

/* Clone [src_offset, src_offset + length) of src_fd to dest_offset of the ioctl's file, sharing
 * blocks. length 0 means through the end of the source (FICLONE is all zeros). Nothing comes
 * back: success is the ioctl returning 0. */
struct extentfs_clone_args {
    int64_t src_fd;
    uint64_t src_offset;
    uint64_t length;
    uint64_t dest_offset;
};

/* Dedupe one destination (the ioctl's file) against src_fd: compares the ranges and shares the
 * source's blocks only if they are identical, atomically. As with FIDEDUPERANGE, whose source is
 * the file its ioctl is issued on, a problem with the source (src_fd) fails the ioctl itself;
 * once the source is accepted the ioctl returns 0 and status tells the rest: 0 (shared, and
 * bytes_deduped says how much), 1 (EXTENTFS_DEDUPE_DIFFERS: nothing changed) or a negative
 * errno about the destination or the ranges (EPERM, EINVAL, ...). Set reserved to 0. */
struct extentfs_dedupe_args {
    int64_t src_fd;
    uint64_t src_offset;
    uint64_t length;
    uint64_t dest_offset;
    int32_t status;
    uint32_t reserved;
    uint64_t bytes_deduped;
};
#define EXTENTFS_DEDUPE_SAME 0
#define EXTENTFS_DEDUPE_DIFFERS 1

/* Extent map of [offset, offset + length): up to EXTENTFS_MAP_MAX extents per call; on return
 * count says how many were filled. Call again from the end of the last one to continue; the
 * file's final extent carries EXTENTFS_EXTENT_LAST, and count 0 means nothing more in the range.
 * Holes are not listed. Offsets and lengths in bytes. Needs only a descriptor open for reading.
 * The map shows what the daemon holds: pages dirtied through mmap and not yet written back are
 * not in it (msync or fsync first). */
#define EXTENTFS_MAP_MAX 64
#define EXTENTFS_EXTENT_UNWRITTEN 0x1 /* allocated, reads as zeros */
#define EXTENTFS_EXTENT_SHARED 0x2    /* blocks shared with another extent (clone, dedupe) */
#define EXTENTFS_EXTENT_DELALLOC 0x4  /* dirty data not yet given blocks; physical is 0 */
#define EXTENTFS_EXTENT_LAST 0x8      /* the file's last extent */
struct extentfs_extent {
    uint64_t logical;
    uint64_t physical;
    uint64_t length;
    uint32_t flags;
    uint32_t reserved;
};
struct extentfs_map_args {
    uint64_t offset;
    uint64_t length;
    uint32_t count;
    uint32_t reserved;
    struct extentfs_extent extents[EXTENTFS_MAP_MAX];
};

/* STATS: the daemon's counters since mount (what `extentfs stats MOUNTPOINT` prints), on any
 * file or directory of the mount (the mount point itself will do), open for anything; any user
 * who can open one may read them. Counters only grow; the *_bytes fields but written_back_bytes
 * are gauges. version is EXTENTFS_STATS_VERSION: a later daemon may add fields at the end of a
 * larger struct under a new number. */
#define EXTENTFS_STATS_VERSION 1
#define EXTENTFS_STATS_REQUEST_KINDS 64
#define EXTENTFS_STATS_REASON_BYTES 256
struct extentfs_stats {
    uint32_t version;
    uint32_t shut_down;            /* 1 once a failed log or metadata write shut the volume down */
    uint64_t page_cache_hits;      /* pages a read found in the daemon's cache, uptodate */
    uint64_t page_cache_misses;    /* pages a read had to read from the image */
    uint64_t cached_bytes;         /* file data in the daemon's page cache now */
    uint64_t dirty_bytes;          /* of it, not yet written back */
    uint64_t cache_budget_bytes;   /* --cache-size */
    uint64_t written_back_bytes;   /* dirty data written to the image since mount */
    uint64_t writeback_errors;     /* writebacks that failed (reported to the file's next fsync) */
    uint64_t log_commits;          /* log records written, each one flush */
    uint64_t checkpoints;          /* metadata checkpoints written */
    uint64_t log_used_bytes;       /* of the log ring, what a mount would replay now */
    uint64_t log_capacity_bytes;
    /* FUSE requests the kernel sent, and those answered with an error (ENOENT for a lookup of a
     * name that does not exist counts), by opcode (linux/fuse.h): index = opcode, the last
     * index for opcodes from EXTENTFS_STATS_REQUEST_KINDS - 1 up. */
    uint64_t requests[EXTENTFS_STATS_REQUEST_KINDS];
    uint64_t request_errors[EXTENTFS_STATS_REQUEST_KINDS];
    char shutdown_reason[EXTENTFS_STATS_REASON_BYTES];  /* NUL-terminated; empty while running */
};

/* STATS2: version 1's struct (its version field says 2), then the fields version 2 added. The
 * daemon answers STATS and STATS2 alike; `extentfs stats` asks for STATS2 and, from a daemon
 * that answers ENOTTY (one older than version 2), takes STATS. */
#define EXTENTFS_STATS2_VERSION 2
struct extentfs_stats2 {
    struct extentfs_stats base;
    uint64_t written_through_bytes;  /* data written straight to the image, past the daemon's page
                                      * cache (small overwrites in place, O_DIRECT writes over them) */
};

/* Every struct has the same layout for 32-bit and 64-bit callers (no padding anywhere), so the
 * numbers are the same for both. */
#define EXTENTFS_IOC_COLLAPSE_RANGE _IOW(EXTENTFS_IOC_MAGIC, 1, struct extentfs_range_args)
#define EXTENTFS_IOC_INSERT_RANGE   _IOW(EXTENTFS_IOC_MAGIC, 2, struct extentfs_range_args)
#define EXTENTFS_IOC_UNSHARE_RANGE  _IOW(EXTENTFS_IOC_MAGIC, 3, struct extentfs_range_args)
#define EXTENTFS_IOC_CLONE_RANGE    _IOW(EXTENTFS_IOC_MAGIC, 4, struct extentfs_clone_args)
#define EXTENTFS_IOC_DEDUPE_RANGE   _IOWR(EXTENTFS_IOC_MAGIC, 5, struct extentfs_dedupe_args)
#define EXTENTFS_IOC_MAP            _IOWR(EXTENTFS_IOC_MAGIC, 6, struct extentfs_map_args)
#define EXTENTFS_IOC_STATS          _IOR(EXTENTFS_IOC_MAGIC, 7, struct extentfs_stats)
#define EXTENTFS_IOC_STATS2         _IOR(EXTENTFS_IOC_MAGIC, 8, struct extentfs_stats2)

/* The kernel keeps its own copy of each file's size, and the ioctls above change the size behind
 * its back. extentfs tells it of a file that grew (INSERT_RANGE, CLONE_RANGE past the end) before
 * the ioctl returns, but a FUSE daemon has no way to lower it: until something refreshes it, the
 * kernel goes on reading to the old end after COLLAPSE_RANGE, and an O_APPEND write lands there,
 * leaving a gap. Call this on the collapsed file right after the ioctl. It asks for a SETATTR
 * that changes nothing (fchown to -1, -1), whose reply the kernel always applies; like any
 * chown, it clears the set-user-ID bit (as XFS's collapse does for anyone but root). Where even
 * that is refused (a set-user-ID file of someone else's), it falls back on fstat(2), whose
 * answer the kernel applies unless a write to the file raced it. 0, or -1 with errno set. */
static inline int extentfs_refresh_size(int fd) {
    struct stat st;
    if (fchown(fd, (uid_t)-1, (gid_t)-1) == 0) return 0;
    return fstat(fd, &st);
}

#endif
