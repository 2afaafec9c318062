// What Swift cannot call directly in libfuse3 (macros, versioned symbols, bitfields), and the
// system calls the adapter needs through variadic syscall().
#ifndef EXTENTFS_CFUSE_SHIM_H
#define EXTENTFS_CFUSE_SHIM_H

// 3.12: the opaque loop config (fuse_loop_cfg_*) and fuse_session_loop_mt_312.
#define FUSE_USE_VERSION 312

#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

static inline struct fuse_args cfuse_args_init(int argc, char **argv) {
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    return args;
}

/// The multithreaded loop, named by its 3.12 symbol so no macro has to expand in Swift.
static inline int cfuse_session_loop_mt(struct fuse_session *se, unsigned max_threads) {
    struct fuse_loop_config *config = fuse_loop_cfg_create();
    if (config == NULL) return -ENOMEM;
    fuse_loop_cfg_set_clone_fd(config, 0);
    fuse_loop_cfg_set_max_threads(config, max_threads);
    int result = fuse_session_loop_mt_312(se, config);
    fuse_loop_cfg_destroy(config);
    return result;
}

// fuse_file_info bitfields.
static inline int cfuse_fi_flags(const struct fuse_file_info *fi) { return fi ? fi->flags : 0; }
static inline void cfuse_fi_set_keep_cache(struct fuse_file_info *fi, int on) { fi->keep_cache = on ? 1 : 0; }
static inline void cfuse_fi_set_direct_io(struct fuse_file_info *fi, int on) { fi->direct_io = on ? 1 : 0; }

/// Leaves the kernel in charge of O_TRUNC, suid/sgid clearing and page-cache write-back:
/// the engine sees each of those as a plain setattr or write. Turns FUSE_AUTO_INVAL_DATA off:
/// with it the kernel fetches attributes before every read that follows a write, and each
/// GETATTR reply clears the inode's S_NOSEC, so the next write asks GETXATTR security.capability
/// first (two requests more per read-write pair); every change to a file's data the kernel does
/// not make itself is followed by an explicit invalidation instead (KernelCache.swift), and the
/// daemon is the image's only writer. Asks for, when the kernel offers
/// them: POSIX ACLs checked by the kernel (the engine keeps them and the mode consistent and
/// inherits default ACLs), with the umask left to the engine (FUSE_DONT_MASK: a default ACL
/// replaces it), and export support (LOOKUP of "." and ".." for file handles whose inode the
/// kernel no longer caches: node ids are inode numbers, stable across mounts).
static inline void cfuse_conn_configure(struct fuse_conn_info *conn, unsigned max_bytes) {
    conn->max_write = max_bytes;
    conn->max_readahead = max_bytes;
    conn->want &= ~(unsigned)(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_ATOMIC_O_TRUNC | FUSE_CAP_HANDLE_KILLPRIV | FUSE_CAP_AUTO_INVAL_DATA);
    conn->want |= conn->capable & (unsigned)(FUSE_CAP_POSIX_ACL | FUSE_CAP_DONT_MASK | FUSE_CAP_EXPORT_SUPPORT);
}

/// A page that can be neither read nor written, or NULL: the data of cfuse_raise_kernel_size.
static inline void *cfuse_unreadable_page(void) {
    void *page = mmap(NULL, (size_t)sysconf(_SC_PAGESIZE), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return page == MAP_FAILED ? NULL : page;
}

/// Raises the kernel's cached size of `ino` to `size` (never lowers it) without changing a byte
/// of its page cache, by a FUSE_NOTIFY_STORE of the file's last byte whose data cannot be read.
/// The kernel's fuse_notify_store raises i_size to offset + length before it copies any data,
/// unconditionally (GETATTR replies are dropped when a WRITE raced them); the copy from
/// `unreadable` then fails with EFAULT, leaving the page as it was. libfuse's
/// fuse_lowlevel_notify_store would print that expected failure, so this writes the
/// notification itself. Returns 0 when the kernel took the size, -ENOENT when it caches nothing
/// of the inode (so nothing to correct), another -errno on failure.
static inline int cfuse_raise_kernel_size(struct fuse_session *se, uint64_t ino, uint64_t size,
                                          void *unreadable) {
    if (size == 0) return 0;
    struct fuse_notify_store_out store = { .nodeid = ino, .offset = size - 1, .size = 1, .padding = 0 };
    struct fuse_out_header header = {
        .len = (uint32_t)(sizeof header + sizeof store + 1), .error = FUSE_NOTIFY_STORE, .unique = 0,
    };
    struct iovec iov[3] = {
        { .iov_base = &header, .iov_len = sizeof header },
        { .iov_base = &store, .iov_len = sizeof store },
        { .iov_base = unreadable, .iov_len = 1 },
    };
    if (writev(fuse_session_fd(se), iov, 3) >= 0) return -EIO;  /* it read the unreadable byte? */
    return errno == EFAULT ? 0 : -errno;
}

/// Asks the kernel to let go of the inodes `ids` names, those it does not use (FUSE_NOTIFY_PRUNE,
/// protocol 7.45, Linux 6.18): it drops their unused dentries, and each inode that then has no
/// user is evicted and FORGET sent for it. Returns 0, or -errno (-EINVAL: a kernel without it).
/// libfuse 3.14 does not know the notification, so this writes it itself.
static inline int cfuse_notify_prune(struct fuse_session *se, const uint64_t *ids, uint32_t count) {
    struct { uint32_t count, padding; uint64_t spare; } prune = { .count = count, .padding = 0, .spare = 0 };
    struct fuse_out_header header = {
        .len = (uint32_t)(sizeof header + sizeof prune + count * sizeof(uint64_t)), .error = 9 /* FUSE_NOTIFY_PRUNE */, .unique = 0,
    };
    struct iovec iov[3] = {
        { .iov_base = &header, .iov_len = sizeof header },
        { .iov_base = &prune, .iov_len = sizeof prune },
        { .iov_base = (void *)ids, .iov_len = count * sizeof(uint64_t) },
    };
    return writev(fuse_session_fd(se), iov, 3) < 0 ? -errno : 0;
}

/// PIDFD_THREAD (Linux 6.9): a pidfd of one thread rather than of a thread-group leader.
#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif

/// A descriptor in this process for the very open file that descriptor `fd` of thread `tid`
/// refers to, or -errno: pidfd_open + pidfd_getfd, which take a reference to the file in one
/// step, so that what is checked and used afterwards is one file however the thread's
/// descriptor table changes meanwhile. The copy is close-on-exec. The thread need not lead its
/// process: a FUSE request carries the sender's thread id. (syscall() is variadic, so Swift
/// cannot call it.)
static inline int cfuse_take_thread_descriptor(pid_t tid, int fd) {
    int pidfd = (int)syscall(SYS_pidfd_open, tid, PIDFD_THREAD);
    if (pidfd < 0 && errno == EINVAL) {
        /* Before 6.9 there is no PIDFD_THREAD, and a leader's pidfd is all there is. */
        pidfd = (int)syscall(SYS_pidfd_open, tid, 0);
    }
    if (pidfd < 0) return -errno;
    int copy = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
    int error = errno;
    close(pidfd);
    return copy < 0 ? -error : copy;
}

#endif
