// What Swift cannot call directly in libfuse3: macros, versioned symbols, bitfields.
#ifndef EXTENTFS_CFUSE_SHIM_H
#define EXTENTFS_CFUSE_SHIM_H

// 3.12: the opaque loop config (fuse_loop_cfg_*) and fuse_session_loop_mt_312.
#define FUSE_USE_VERSION 312

#include <fuse_lowlevel.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
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
/// the engine sees each of those as a plain setattr or write.
static inline void cfuse_conn_configure(struct fuse_conn_info *conn, unsigned max_bytes) {
    conn->max_write = max_bytes;
    conn->max_readahead = max_bytes;
    conn->want &= ~(unsigned)(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_ATOMIC_O_TRUNC | FUSE_CAP_HANDLE_KILLPRIV);
}

#endif
