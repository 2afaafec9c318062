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

/// Kinds of request counted: one per FUSE opcode below the last, which counts every opcode
/// from EXTENTFS_REQUEST_KINDS - 1 up (CUSE_INIT, opcodes of later kernels).
#define EXTENTFS_REQUEST_KINDS 64

/// Requests read since the transport was installed, and error replies written, by opcode
/// (index = opcode, the last index for the rest). Each count is read on its own.
void fuse_transport_request_counts(uint64_t requests[EXTENTFS_REQUEST_KINDS], uint64_t errors[EXTENTFS_REQUEST_KINDS]);

#endif
