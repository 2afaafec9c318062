// The adapter's own transport under libfuse: libfuse 3.14 (Debian 12) reads requests and writes
// replies through it (fuse_session_custom_io), so the adapter can see the raw request a loop
// thread is serving and negotiate what libfuse 3.14 does not know.
#ifndef EXTENTFS_FUSE_TRANSPORT_H
#define EXTENTFS_FUSE_TRANSPORT_H

#include <stdint.h>

struct fuse_session;

/// Puts the transport under a mounted session, on the session's own /dev/fuse descriptor.
/// Call after fuse_session_mount and before the loop starts. Returns 0 or -errno.
int fuse_transport_install(struct fuse_session *session);

/// Whether the kernel accepted FUSE_HANDLE_KILLPRIV_V2: the kernel then stops asking for
/// security.capability before every write (it sets SB_NOSEC) and leaves it to us to clear the
/// set-user-ID and set-group-ID bits and capabilities on write, truncate and chown. Known once
/// INIT has been answered.
int fuse_transport_killpriv_v2(void);

/// For the WRITE this thread is serving: its write_flags (FUSE_WRITE_CACHE,
/// FUSE_WRITE_KILL_SUIDGID), 0 when this thread serves no WRITE.
uint32_t fuse_transport_write_flags(void);

/// For the SETATTR this thread is serving: its valid bits as the kernel sent them (libfuse
/// 3.14 drops FATTR_KILL_SUIDGID), 0 when this thread serves no SETATTR.
uint32_t fuse_transport_setattr_valid(void);

// FUSE_STATX (protocol 7.39, Linux 6.6): the only request through which the kernel asks a FUSE
// filesystem for the birth time (statx STATX_BTIME). libfuse 3.14 does not know it (it answers
// ENOSYS, and the kernel stops asking); the transport answers it itself when a handler is set.
// The layouts are the kernel's (linux/fuse.h of 7.39 on; Debian 12's headers are 7.38).
struct fuse_transport_sx_time {
    int64_t tv_sec;
    uint32_t tv_nsec;
    int32_t reserved;
};

struct fuse_transport_statx {
    uint32_t mask;
    uint32_t blksize;
    uint64_t attributes;
    uint32_t nlink;
    uint32_t uid;
    uint32_t gid;
    uint16_t mode;
    uint16_t spare0;
    uint64_t ino;
    uint64_t size;
    uint64_t blocks;
    uint64_t attributes_mask;
    struct fuse_transport_sx_time atime;
    struct fuse_transport_sx_time btime;
    struct fuse_transport_sx_time ctime;
    struct fuse_transport_sx_time mtime;
    uint32_t rdev_major;
    uint32_t rdev_minor;
    uint32_t dev_major;
    uint32_t dev_minor;
    uint64_t spare2[14];
};

struct fuse_transport_statx_out {
    uint64_t attr_valid;
    uint32_t attr_valid_nsec;
    uint32_t flags;
    uint64_t spare[2];
    struct fuse_transport_statx stat;
};

/// Fills `out` (zeroed) for inode `nodeid`; returns 0 or -errno. Called on a loop thread, in
/// place of libfuse, for every FUSE_STATX; it must not block on the kernel.
typedef int (*fuse_transport_statx_handler)(void *context, uint64_t nodeid, struct fuse_transport_statx_out *out);

/// From now on FUSE_STATX requests go to `handler` (with `context`) and never reach libfuse.
/// Call before the loop starts.
void fuse_transport_serve_statx(fuse_transport_statx_handler handler, void *context);

/// Kinds of request counted: one per FUSE opcode below the last, which counts every opcode
/// from EXTENTFS_REQUEST_KINDS - 1 up (CUSE_INIT, opcodes of later kernels).
#define EXTENTFS_REQUEST_KINDS 64

/// Requests read since the transport was installed, and error replies written, by opcode
/// (index = opcode, the last index for the rest). Each count is read on its own.
void fuse_transport_request_counts(uint64_t requests[EXTENTFS_REQUEST_KINDS], uint64_t errors[EXTENTFS_REQUEST_KINDS]);

#endif
