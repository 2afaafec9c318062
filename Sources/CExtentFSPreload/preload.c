/*
 * libExtentFSPreload.so: makes unmodified programs reach extentfs's space operations.
 *
 * Why this exists: the kernel hands a FUSE daemon fallocate only for KEEP_SIZE, PUNCH_HOLE and
 * ZERO_RANGE, and answers FICLONE, FICLONERANGE, FIDEDUPERANGE and FS_IOC_FIEMAP itself with
 * EOPNOTSUPP, so xfs_io, fallocate(1), cp --reflink, duperemove and fsx never get to ask extentfs.
 * extentfs serves those operations through its own ioctls (extentfs_ioctl.h), which the kernel
 * does pass on. Loaded with LD_PRELOAD, this library turns exactly those standard calls, on files
 * of an extentfs mount, into the extentfs ioctls, and behaves as the kernel would on a local
 * filesystem that supports them (XFS): the same argument checks in the same order, the same errno
 * values, the same in/out struct semantics. Every other call goes to the next definition
 * (normally glibc) untouched, and costs one comparison on the way.
 *
 * What is interposed:
 *   fallocate, fallocate64  COLLAPSE_RANGE, INSERT_RANGE, UNSHARE_RANGE [| KEEP_SIZE]
 *   ioctl                   FICLONE, FICLONERANGE, FIDEDUPERANGE, FS_IOC_FIEMAP
 *   fstatfs, statfs (+64)   only in duperemove (or with EXTENTFS_PRELOAD_FAKE_XFS=1): see below
 *
 * "A file of an extentfs mount": the file's mount is listed in /proc/self/mountinfo with type
 * fuse.extentfs (the daemon mounts with subtype=extentfs). Other FUSE filesystems must not get
 * extentfs ioctl numbers, so the FUSE magic from fstatfs alone is not enough. Reading mountinfo
 * costs a file read and fstatfs costs a FUSE round trip, so positive answers are cached per mount,
 * keyed by the kernel's never-reused 64-bit mount id (STATX_MNT_ID_UNIQUE, Linux 6.8+) or, on
 * older kernels, by device number and mount id. Negative answers are not cached (they would go
 * stale when a mount appears later; the only cost is on calls that then pass through anyway).
 *
 * Dirty pages: the daemon sees file data only once the kernel has written it to it. Writes through
 * write(2) are written through at once (extentfs mounts without the FUSE writeback cache), but
 * pages dirtied through mmap stay in the kernel until writeback. XFS writes back the affected range
 * before collapse, insert, unshare, clone and dedupe; the kernel does not know these ioctls move
 * data, and the daemon cannot ask for the pages while it serves the ioctl (that would deadlock, see
 * DESIGN.md), so the library writes the range back itself (sync_file_range) before the ioctl.
 *
 * Thread and fork safety: the cache is a small array of atomic words and the real functions are
 * resolved into atomic pointers, so no lock is ever held across fork() and no call blocks another.
 * The untouched path is async-signal-safe as before; a translated call may allocate (the first
 * time a mount is seen, to read mountinfo), so it is not, unlike the system call it replaces.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "extentfs_ioctl.h"

#define EXPORT __attribute__((visibility("default")))

#define FUSE_SUPER_MAGIC 0x65735546
#define XFS_SUPER_MAGIC 0x58465342
/* The kernel's limit on fm_extent_count (fs/ioctl.c). */
#define FIEMAP_MAX_EXTENTS (UINT_MAX / sizeof(struct fiemap_extent))
/* A FUSE superblock's s_maxbytes (MAX_LFS_FILESIZE): fiemap and fallocate limits. */
#define FUSE_MAXBYTES ((uint64_t)LLONG_MAX)
/* vfs_dedupe_file_range: "Arbitrary 1G limit on a single dedupe request". */
#define DEDUPE_MAX_LENGTH ((uint64_t)1 << 30)

#ifndef STATX_MNT_ID
#define STATX_MNT_ID 0x00001000U
#endif
#ifndef STATX_MNT_ID_UNIQUE
#define STATX_MNT_ID_UNIQUE 0x00004000U
#endif
#ifndef AT_STATX_DONT_SYNC
#define AT_STATX_DONT_SYNC 0x4000
#endif

/* ---------------------------------------------------------------------------------------------
 * The next definitions of the interposed functions.
 *
 * Resolved lazily (another library's constructor may call ioctl before ours runs); a race only
 * makes two threads store the same pointer. If dlsym finds nothing (a static or unusual libc),
 * the raw system call stands in, which is what glibc's wrappers are.
 * ------------------------------------------------------------------------------------------- */

typedef int (*ioctl_fn)(int, unsigned long, ...);
typedef int (*fallocate_fn)(int, int, off_t, off_t);
typedef int (*fstatfs_fn)(int, struct statfs *);
typedef int (*statfs_fn)(const char *, struct statfs *);
typedef int (*fstatfs64_fn)(int, struct statfs64 *);
typedef int (*statfs64_fn)(const char *, struct statfs64 *);

static _Atomic(void *) next_ioctl, next_fallocate, next_fallocate64;
static _Atomic(void *) next_fstatfs, next_fstatfs64, next_statfs, next_statfs64;

static void *resolve(_Atomic(void *) *slot, const char *name) {
    void *fn = atomic_load_explicit(slot, memory_order_acquire);
    if (fn == NULL) {
        fn = dlsym(RTLD_NEXT, name);
        if (fn != NULL) atomic_store_explicit(slot, fn, memory_order_release);
    }
    return fn;
}

static int real_ioctl(int fd, unsigned long request, void *arg) {
    ioctl_fn fn = (ioctl_fn)resolve(&next_ioctl, "ioctl");
    return fn ? fn(fd, request, arg) : (int)syscall(SYS_ioctl, fd, request, arg);
}

static int real_fallocate(int fd, int mode, off_t offset, off_t len) {
    fallocate_fn fn = (fallocate_fn)resolve(&next_fallocate, "fallocate");
    return fn ? fn(fd, mode, offset, len) : (int)syscall(SYS_fallocate, fd, mode, offset, len);
}

static int real_fallocate64(int fd, int mode, off_t offset, off_t len) {
    fallocate_fn fn = (fallocate_fn)resolve(&next_fallocate64, "fallocate64");
    return fn ? fn(fd, mode, offset, len) : real_fallocate(fd, mode, offset, len);
}

static int real_fstatfs(int fd, struct statfs *buf) {
    fstatfs_fn fn = (fstatfs_fn)resolve(&next_fstatfs, "fstatfs");
    return fn ? fn(fd, buf) : (int)syscall(SYS_fstatfs, fd, buf);
}

static int real_statfs(const char *path, struct statfs *buf) {
    statfs_fn fn = (statfs_fn)resolve(&next_statfs, "statfs");
    return fn ? fn(path, buf) : (int)syscall(SYS_statfs, path, buf);
}

/* ---------------------------------------------------------------------------------------------
 * Is this file on an extentfs mount?
 * ------------------------------------------------------------------------------------------- */

/* The kernel's struct statx, so that stx_mnt_id is there whatever the installed headers say. */
struct kernel_statx {
    uint32_t mask, blksize;
    uint64_t attributes;
    uint32_t nlink, uid, gid;
    uint16_t mode, pad1;
    uint64_t ino, size, blocks, attributes_mask;
    struct { int64_t sec; uint32_t nsec; int32_t pad; } atime, btime, ctime, mtime;
    uint32_t rdev_major, rdev_minor, dev_major, dev_minor;
    uint64_t mnt_id;
    uint64_t spare[13];
};

/* What the checks below need to know about an open file (or a path, for statfs). */
struct file_identity {
    dev_t dev;
    mode_t mode;
    /* Cache key of the file's mount; 0 if the kernel cannot tell which mount it is. */
    uint64_t mount_key;
};

/* Marks keys built from a device number and a legacy (reusable) mount id, so that they never
 * equal a unique mount id; those count up from 2^31 and stay far below 2^63. */
#define LEGACY_KEY_BIT ((uint64_t)1 << 63)

static uint64_t legacy_mount_key(dev_t dev, uint64_t mnt_id) {
    uint64_t key = ((uint64_t)major(dev) << 44) ^ ((uint64_t)minor(dev) << 24) ^ mnt_id;
    return (key | LEGACY_KEY_BIT);
}

/* statx without a round trip to the daemon: type, device and mount never change under an open
 * file, so the kernel's cached attributes are good enough (AT_STATX_DONT_SYNC). */
static int identify(int dirfd, const char *path, int flags, struct file_identity *out) {
    struct kernel_statx stx;
    memset(&stx, 0, sizeof stx);
    long r = syscall(SYS_statx, dirfd, path, flags | AT_STATX_DONT_SYNC,
                     STATX_TYPE | STATX_MODE | STATX_MNT_ID_UNIQUE, &stx);
    if (r == 0) {
        out->dev = makedev(stx.dev_major, stx.dev_minor);
        out->mode = stx.mode;
        if (stx.mask & STATX_MNT_ID_UNIQUE)
            out->mount_key = stx.mnt_id;
        else if (stx.mask & STATX_MNT_ID)
            out->mount_key = legacy_mount_key(out->dev, stx.mnt_id);
        else
            out->mount_key = 0;
        return 0;
    }
    if (errno != ENOSYS) return -1;
    /* Kernels before statx (4.11): no mount id, and no caching either. */
    struct stat st;
    int sr = (flags & AT_EMPTY_PATH) && path[0] == '\0' ? fstat(dirfd, &st)
                                                        : fstatat(dirfd, path, &st, flags & AT_SYMLINK_NOFOLLOW);
    if (sr != 0) return -1;
    out->dev = st.st_dev;
    out->mode = st.st_mode;
    out->mount_key = 0;
    return 0;
}

/* The id that /proc/self/mountinfo shows (the legacy, reusable one), or -1 if unknown. */
static long long legacy_mount_id(int dirfd, const char *path, int flags) {
    struct kernel_statx stx;
    memset(&stx, 0, sizeof stx);
    if (syscall(SYS_statx, dirfd, path, flags | AT_STATX_DONT_SYNC, STATX_MNT_ID, &stx) != 0) return -1;
    return (stx.mask & STATX_MNT_ID) ? (long long)stx.mnt_id : -1;
}

#define CACHE_SLOTS 16
static _Atomic uint64_t mount_cache[CACHE_SLOTS];
static _Atomic unsigned mount_cache_next;

static int cache_contains(uint64_t key) {
    if (key == 0) return 0;
    for (int i = 0; i < CACHE_SLOTS; i++)
        if (atomic_load_explicit(&mount_cache[i], memory_order_relaxed) == key) return 1;
    return 0;
}

static void cache_insert(uint64_t key) {
    if (key == 0 || cache_contains(key)) return;
    unsigned slot = atomic_fetch_add_explicit(&mount_cache_next, 1, memory_order_relaxed) % CACHE_SLOTS;
    atomic_store_explicit(&mount_cache[slot], key, memory_order_relaxed);
}

/* Reads a whole /proc file (its size reads as 0, so grow as needed). NULL on failure. */
static char *read_proc_file(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    size_t cap = 16384, len = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        if (len + 1 >= cap) {
            char *bigger = realloc(buf, cap * 2);
            if (bigger == NULL) { free(buf); buf = NULL; break; }
            buf = bigger;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) { free(buf); buf = NULL; break; }
        if (n == 0) { buf[len] = '\0'; break; }
        len += (size_t)n;
    }
    close(fd);
    return buf;
}

/* Finds the mount in /proc/self/mountinfo and says whether it is extentfs. A line reads
 *   "36 35 0:40 / /mnt rw,relatime shared:1 - fuse.extentfs /img rw,user_id=0"
 * (mount id, parent id, major:minor, root, mount point, options, optional fields, "-", type, ...).
 * Matched by mount id and device; by device alone when the id is unknown or not listed (a file
 * opened in another mount namespace). Stacked mounts: the last match is the visible one. */
static int mountinfo_says_extentfs(dev_t dev, long long mount_id) {
    char *text = read_proc_file("/proc/self/mountinfo");
    if (text == NULL) return 0;
    int by_id = -1, by_dev = -1;
    char want_dev[48];
    snprintf(want_dev, sizeof want_dev, "%u:%u", major(dev), minor(dev));
    for (char *line = text; line != NULL && *line != '\0';) {
        char *next = strchr(line, '\n');
        if (next != NULL) *next++ = '\0';
        long long id = -1;
        char devfield[48];
        int consumed = 0;
        if (sscanf(line, "%lld %*s %47s%n", &id, devfield, &consumed) == 2 &&
            strcmp(devfield, want_dev) == 0) {
            const char *sep = strstr(line + consumed, " - ");
            if (sep != NULL) {
                const char *type = sep + 3;
                size_t tlen = strcspn(type, " ");
                int is_extentfs = (tlen == 13 && strncmp(type, "fuse.extentfs", 13) == 0) ||
                                  (tlen == 16 && strncmp(type, "fuseblk.extentfs", 16) == 0);
                by_dev = is_extentfs;
                if (mount_id >= 0 && id == mount_id) by_id = is_extentfs;
            }
        }
        line = next;
    }
    free(text);
    return by_id >= 0 ? by_id : (by_dev > 0);
}

/* 1 if the file is on an extentfs mount, 0 if not (or if it cannot be told), with *id filled in
 * either way when the file exists; -1 with errno set if it cannot even be stat'ed.
 * known_fuse: the caller already has statfs's answer that it is FUSE. Keeps errno on success. */
static int is_extentfs_at(int dirfd, const char *path, int flags, int known_fuse, struct file_identity *id) {
    int saved = errno;
    if (identify(dirfd, path, flags, id) != 0) return -1;
    int answer = 0;
    if (cache_contains(id->mount_key)) {
        answer = 1;
    } else {
        int fuse = known_fuse;
        if (!fuse) {
            struct statfs sfs;
            if (flags & AT_EMPTY_PATH)
                fuse = real_fstatfs(dirfd, &sfs) == 0 && sfs.f_type == FUSE_SUPER_MAGIC;
            else
                fuse = real_statfs(path, &sfs) == 0 && sfs.f_type == FUSE_SUPER_MAGIC;
        }
        if (fuse && mountinfo_says_extentfs(id->dev, legacy_mount_id(dirfd, path, flags))) {
            cache_insert(id->mount_key);
            answer = 1;
        }
    }
    errno = saved;
    return answer;
}

static int is_extentfs_fd(int fd, struct file_identity *id) {
    return is_extentfs_at(fd, "", AT_EMPTY_PATH, 0, id);
}

/* ---------------------------------------------------------------------------------------------
 * Helpers shared by the translations.
 * ------------------------------------------------------------------------------------------- */

static int fail(int err) {
    errno = err;
    return -1;
}

/* A daemon that does not know an extentfs ioctl answers ENOSYS, which the kernel turns into
 * ENOTTY; to the caller of fallocate or FICLONE that means "this filesystem cannot do that". */
static int extentfs_ioctl(int fd, unsigned long request, void *arg) {
    int r = real_ioctl(fd, request, arg);
    if (r < 0 && errno == ENOTTY) errno = EOPNOTSUPP;
    return r;
}

/* Writes back the kernel's dirty pages of [offset, offset + length) (length 0: through EOF) so
 * that the daemon sees them before it moves or compares blocks. Clean ranges cost no request. */
static int write_back(int fd, uint64_t offset, uint64_t length) {
    if (offset > (uint64_t)LLONG_MAX) return 0;
    if (length > (uint64_t)LLONG_MAX - offset) length = 0;
    int saved = errno;
    int r = sync_file_range(fd, (off64_t)offset, (off64_t)length,
                            SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
    if (r == 0) errno = saved;
    return r;
}

/* remap_verify_area: a range must not be negative or wrap as a signed 64-bit offset. */
static int range_ok(uint64_t offset, uint64_t length) {
    return offset <= (uint64_t)LLONG_MAX && length <= (uint64_t)LLONG_MAX &&
           offset + length <= (uint64_t)LLONG_MAX;
}

static int access_mode(int fd, int *flags_out) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0) return -1;
    *flags_out = flags;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * fallocate: COLLAPSE_RANGE, INSERT_RANGE, UNSHARE_RANGE.
 * ------------------------------------------------------------------------------------------- */

/* Only these exact modes are translated. Anything else, including invalid mixes such as
 * COLLAPSE_RANGE | KEEP_SIZE, goes to the kernel, whose vfs_fallocate rejects them with the
 * right errno before the filesystem is asked. */
static int translated_mode(int mode) {
    return mode == FALLOC_FL_COLLAPSE_RANGE || mode == FALLOC_FL_INSERT_RANGE ||
           mode == FALLOC_FL_UNSHARE_RANGE || mode == (FALLOC_FL_UNSHARE_RANGE | FALLOC_FL_KEEP_SIZE);
}

/* vfs_fallocate's checks, in its order, for the modes that never reach it; then the ioctl. */
static int extentfs_fallocate(int fd, int mode, int64_t offset, int64_t len, const struct file_identity *id,
                              int (*next)(int, int, off_t, off_t)) {
    if (offset < 0 || len <= 0) return fail(EINVAL);
    int flags;
    if (access_mode(fd, &flags) != 0) return -1;
    if ((flags & O_ACCMODE) == O_RDONLY || (flags & O_PATH)) return fail(EBADF);
    if (S_ISFIFO(id->mode)) return fail(ESPIPE);
    if (S_ISDIR(id->mode)) return fail(EISDIR);
    if (!S_ISREG(id->mode) && !S_ISBLK(id->mode)) return fail(ENODEV);
    if ((uint64_t)offset + (uint64_t)len > FUSE_MAXBYTES) return fail(EFBIG);

    struct extentfs_range_args args = { .offset = (uint64_t)offset, .length = (uint64_t)len };
    unsigned long request;
    if (mode == FALLOC_FL_COLLAPSE_RANGE) {
        request = EXTENTFS_IOC_COLLAPSE_RANGE;
        if (write_back(fd, args.offset, 0) != 0) return -1; /* everything after offset moves */
    } else if (mode == FALLOC_FL_INSERT_RANGE) {
        request = EXTENTFS_IOC_INSERT_RANGE;
        if (write_back(fd, args.offset, 0) != 0) return -1;
    } else {
        request = EXTENTFS_IOC_UNSHARE_RANGE;
        if (write_back(fd, args.offset, args.length) != 0) return -1;
    }
    if (extentfs_ioctl(fd, request, &args) != 0) return -1;
    /* The kernel's copy of the size goes down only when it asks (extentfs_ioctl.h). The collapse
     * is done either way, so a failure here is not fallocate's. */
    if (mode == FALLOC_FL_COLLAPSE_RANGE) {
        int saved = errno;
        (void)extentfs_refresh_size(fd);
        errno = saved;
    }

    /* The ioctl has no KEEP_SIZE bit. UNSHARE_RANGE without it is unshare plus preallocation:
     * XFS unshares, allocates the range and extends the file past its end. Plain preallocation of
     * the same range (mode 0, which the kernel does pass on) is exactly that second part, and a
     * no-op where the range is already allocated and inside the file. Always asking, rather than
     * comparing with a possibly stale st_size, keeps the answer right. */
    if (mode == FALLOC_FL_UNSHARE_RANGE) return next(fd, 0, offset, len);
    return 0;
}

EXPORT int fallocate(int fd, int mode, off_t offset, off_t len) {
    struct file_identity id;
    if (translated_mode(mode) && is_extentfs_fd(fd, &id) == 1)
        return extentfs_fallocate(fd, mode, offset, len, &id, real_fallocate);
    return real_fallocate(fd, mode, offset, len);
}

EXPORT int fallocate64(int fd, int mode, off64_t offset, off64_t len) {
    struct file_identity id;
    if (translated_mode(mode) && is_extentfs_fd(fd, &id) == 1)
        return extentfs_fallocate(fd, mode, offset, len, &id, real_fallocate64);
    return real_fallocate64(fd, mode, offset, len);
}

/* ---------------------------------------------------------------------------------------------
 * FICLONE, FICLONERANGE.
 * ------------------------------------------------------------------------------------------- */

/* ioctl_file_clone and vfs_clone_file_range's checks, then the extentfs ioctl on the destination
 * (the file the call was made on). The source must be on the same filesystem: a source elsewhere
 * gets EXDEV, as the kernel says across filesystems. */
static int extentfs_clone(int dest_fd, const struct file_identity *dest, int64_t src_fd,
                          uint64_t src_offset, uint64_t length, uint64_t dest_offset) {
    /* fdget takes an unsigned int, so the kernel looks at the low 32 bits only. */
    unsigned int src_ufd = (unsigned int)src_fd;
    if (src_ufd > INT_MAX) return fail(EBADF);
    src_fd = (int)src_ufd;
    struct file_identity src;
    if (identify((int)src_fd, "", AT_EMPTY_PATH, &src) != 0) return fail(EBADF);
    if (src.dev != dest->dev) return fail(EXDEV);
    /* generic_file_rw_checks */
    if (S_ISDIR(src.mode) || S_ISDIR(dest->mode)) return fail(EISDIR);
    if (!S_ISREG(src.mode) || !S_ISREG(dest->mode)) return fail(EINVAL);
    int src_flags, dest_flags;
    if (access_mode((int)src_fd, &src_flags) != 0 || access_mode(dest_fd, &dest_flags) != 0) return -1;
    if ((src_flags & O_ACCMODE) == O_WRONLY || (dest_flags & O_ACCMODE) == O_RDONLY ||
        (dest_flags & O_APPEND))
        return fail(EBADF);
    /* remap_verify_area on both ranges */
    if (!range_ok(src_offset, length) || !range_ok(dest_offset, length)) return fail(EINVAL);

    if (write_back((int)src_fd, src_offset, length) != 0 || write_back(dest_fd, dest_offset, length) != 0)
        return -1;
    struct extentfs_clone_args args = {
        .src_fd = src_fd, .src_offset = src_offset, .length = length, .dest_offset = dest_offset,
    };
    return extentfs_ioctl(dest_fd, EXTENTFS_IOC_CLONE_RANGE, &args);
}

/* ---------------------------------------------------------------------------------------------
 * FIDEDUPERANGE: one extentfs ioctl per destination, issued on that destination.
 * ------------------------------------------------------------------------------------------- */

/* vfs_dedupe_file_range_one for one destination; returns the status to report. */
static int32_t dedupe_one(int src_fd, const struct file_identity *src, uint64_t offset, uint64_t length,
                          struct file_dedupe_range_info *info, int *unsupported) {
    unsigned int dest_ufd = (unsigned int)info->dest_fd; /* fdget(unsigned int), as above */
    if (dest_ufd > INT_MAX) return -EBADF;
    int dest_fd = (int)dest_ufd;
    struct file_identity dest;
    if (identify(dest_fd, "", AT_EMPTY_PATH, &dest) != 0) return -EBADF;
    if (info->reserved != 0) return -EINVAL;
    if (!range_ok(info->dest_offset, length)) return -EINVAL;
    if (dest.dev != src->dev) return -EXDEV;
    if (S_ISDIR(dest.mode)) return -EISDIR;
    if (!S_ISREG(dest.mode)) return -EINVAL;
    int flags;
    if (access_mode(dest_fd, &flags) != 0) return -EBADF;

    /* The kernel lets a caller dedupe into a file it opened read-only if it could have opened it
     * for writing (allow_file_dedupe: owner, write permission or CAP_SYS_ADMIN); duperemove -A
     * relies on that. The daemon only sees how this descriptor was opened, so open the same
     * file for writing here: that succeeds exactly when the kernel's permission check would. */
    int write_fd = dest_fd, reopened = -1;
    if ((flags & O_ACCMODE) == O_RDONLY || (flags & O_PATH)) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", dest_fd);
        reopened = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (reopened < 0) return -EPERM;
        write_fd = reopened;
    }

    int32_t status = FILE_DEDUPE_RANGE_SAME;
    if (length > 0) {
        if (write_back(src_fd, offset, length) != 0 || write_back(write_fd, info->dest_offset, length) != 0) {
            status = -errno;
        } else {
            struct extentfs_dedupe_args args = {
                .src_fd = src_fd, .src_offset = offset, .length = length, .dest_offset = info->dest_offset,
            };
            if (real_ioctl(write_fd, EXTENTFS_IOC_DEDUPE_RANGE, &args) != 0) {
                if (errno == ENOTTY || errno == EOPNOTSUPP) *unsupported = 1;
                status = errno == ENOTTY ? -EOPNOTSUPP : -errno;
            } else {
                status = args.status;
                /* vfs_dedupe_file_range reports the length asked for (capped at 1 GiB), not what
                 * the remap shortened it to (a partial EOF block is left out when it would land
                 * in the middle of the destination): generic/517 expects 557771/557771 where the
                 * blocks shared are 557056 bytes. (The extentfs ioctl reports the shortened length.) */
                if (status == FILE_DEDUPE_RANGE_SAME) info->bytes_deduped = length;
            }
        }
    }
    if (reopened >= 0) close(reopened);
    return status;
}

/* vfs_dedupe_file_range: checks on the source and the request as a whole fail the ioctl; each
 * destination then gets its own status, and the call returns 0. */
static int extentfs_dedupe(int src_fd, const struct file_identity *src, struct file_dedupe_range *range) {
    if (range == NULL) return fail(EFAULT);
    uint16_t count = range->dest_count;
    long page = sysconf(_SC_PAGESIZE);
    if (offsetof(struct file_dedupe_range, info) + (size_t)count * sizeof(struct file_dedupe_range_info) >
        (size_t)(page > 0 ? page : 4096))
        return fail(ENOMEM);
    int flags;
    if (access_mode(src_fd, &flags) != 0) return -1;
    if ((flags & O_ACCMODE) == O_WRONLY || (flags & O_PATH)) return fail(EINVAL);
    if (range->reserved1 != 0 || range->reserved2 != 0) return fail(EINVAL);
    if (S_ISDIR(src->mode)) return fail(EISDIR);
    if (!S_ISREG(src->mode)) return fail(EINVAL);
    uint64_t offset = range->src_offset, length = range->src_length;
    if (!range_ok(offset, length)) return fail(EINVAL);
    struct stat st;
    if (fstat(src_fd, &st) != 0) return -1;
    if (offset + length > (uint64_t)st.st_size) return fail(EINVAL);
    if (length > DEDUPE_MAX_LENGTH) length = DEDUPE_MAX_LENGTH;

    for (uint16_t i = 0; i < count; i++) {
        range->info[i].bytes_deduped = 0;
        range->info[i].status = FILE_DEDUPE_RANGE_SAME;
    }
    int unsupported = 0;
    for (uint16_t i = 0; i < count; i++) {
        range->info[i].status = dedupe_one(src_fd, src, offset, length, &range->info[i], &unsupported);
        /* A daemon without dedupe: the kernel reports that for the call, not per destination. */
        if (unsupported) return fail(EOPNOTSUPP);
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * FS_IOC_FIEMAP, from EXTENTFS_IOC_MAP calls.
 * ------------------------------------------------------------------------------------------- */

static uint32_t fiemap_flags(uint32_t extentfs_flags) {
    uint32_t flags = 0;
    if (extentfs_flags & EXTENTFS_EXTENT_UNWRITTEN) flags |= FIEMAP_EXTENT_UNWRITTEN;
    if (extentfs_flags & EXTENTFS_EXTENT_SHARED) flags |= FIEMAP_EXTENT_SHARED;
    /* fiemap_fill_next_extent adds UNKNOWN to DELALLOC: no physical location yet. */
    if (extentfs_flags & EXTENTFS_EXTENT_DELALLOC) flags |= FIEMAP_EXTENT_DELALLOC | FIEMAP_EXTENT_UNKNOWN;
    if (extentfs_flags & EXTENTFS_EXTENT_LAST) flags |= FIEMAP_EXTENT_LAST;
    return flags;
}

/* ioctl_fiemap + fiemap_prep + fiemap_fill_next_extent: fm_extent_count 0 only counts; filling
 * stops when the caller's array is full or at the file's last extent. */
static int extentfs_fiemap(int fd, struct fiemap *fm) {
    if (fm == NULL) return fail(EFAULT);
    if (fm->fm_extent_count > FIEMAP_MAX_EXTENTS) return fail(EINVAL);
    uint64_t start = fm->fm_start, length = fm->fm_length;
    if (length == 0) return fail(EINVAL);
    if (start >= FUSE_MAXBYTES) return fail(EFBIG);
    if (length > FUSE_MAXBYTES || FUSE_MAXBYTES - length < start) length = FUSE_MAXBYTES - start;
    uint32_t incompatible = fm->fm_flags & ~(uint32_t)FIEMAP_FLAG_SYNC;
    if (incompatible != 0) {
        /* fiemap_prep names the flags it cannot honour (extentfs maps no xattr fork). */
        fm->fm_flags = incompatible;
        fm->fm_mapped_extents = 0;
        return fail(EBADR);
    }
    if (fm->fm_flags & FIEMAP_FLAG_SYNC) {
        /* Also makes the daemon write back its own cache, so that extents have real locations. */
        if (fsync(fd) != 0) return -1;
    } else if (write_back(fd, start, length) != 0) {
        return -1;
    }

    const uint32_t capacity = fm->fm_extent_count;
    uint32_t mapped = 0;
    uint64_t position = start, end = start + length;
    struct extentfs_map_args args;
    int done = 0;
    while (!done && position < end) {
        memset(&args, 0, sizeof args);
        args.offset = position;
        args.length = end - position;
        if (extentfs_ioctl(fd, EXTENTFS_IOC_MAP, &args) != 0) {
            fm->fm_mapped_extents = mapped; /* the kernel reports what it filled, error or not */
            return -1;
        }
        uint32_t count = args.count < EXTENTFS_MAP_MAX ? args.count : EXTENTFS_MAP_MAX;
        if (count == 0) break;
        for (uint32_t i = 0; i < count && !done; i++) {
            const struct extentfs_extent *e = &args.extents[i];
            uint32_t flags = fiemap_flags(e->flags);
            if (capacity == 0) {
                mapped++;
            } else {
                struct fiemap_extent *out = &fm->fm_extents[mapped];
                memset(out, 0, sizeof *out);
                out->fe_logical = e->logical;
                out->fe_physical = e->physical;
                out->fe_length = e->length;
                out->fe_flags = flags;
                mapped++;
                if (mapped == capacity) done = 1;
            }
            if (flags & FIEMAP_EXTENT_LAST) done = 1;
        }
        const struct extentfs_extent *last = &args.extents[count - 1];
        uint64_t next = last->logical + last->length;
        if (next <= position) break; /* no progress: never loop forever on a confused reply */
        position = next;
    }
    fm->fm_mapped_extents = mapped;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * ioctl
 * ------------------------------------------------------------------------------------------- */

/* The kernel's ioctl takes an unsigned int command; callers that pass an int (sign-extended) or
 * garbage in the high bits still mean the same request. */
static int translated_request(uint32_t cmd) {
    return cmd == (uint32_t)FICLONE || cmd == (uint32_t)FICLONERANGE || cmd == (uint32_t)FIDEDUPERANGE ||
           cmd == (uint32_t)FS_IOC_FIEMAP;
}

EXPORT int ioctl(int fd, unsigned long request, ...) {
    va_list ap;
    va_start(ap, request);
    void *arg = va_arg(ap, void *);
    va_end(ap);

    uint32_t cmd = (uint32_t)request;
    struct file_identity id;
    if (!translated_request(cmd) || is_extentfs_fd(fd, &id) != 1) return real_ioctl(fd, request, arg);

    if (cmd == (uint32_t)FICLONE) return extentfs_clone(fd, &id, (int64_t)(uintptr_t)arg, 0, 0, 0);
    if (cmd == (uint32_t)FICLONERANGE) {
        const struct file_clone_range *r = arg;
        if (r == NULL) return fail(EFAULT);
        return extentfs_clone(fd, &id, r->src_fd, r->src_offset, r->src_length, r->dest_offset);
    }
    if (cmd == (uint32_t)FIDEDUPERANGE) return extentfs_dedupe(fd, &id, arg);
    return extentfs_fiemap(fd, arg);
}

/* ---------------------------------------------------------------------------------------------
 * statfs: duperemove only.
 *
 * duperemove 0.11 refuses to dedupe unless fstatfs says btrfs or XFS ("Can only dedupe files on
 * btrfs or xfs"), and has no way to override that. In duperemove, files of an extentfs mount
 * therefore report XFS's magic; nothing else in it depends on the filesystem type. Everywhere
 * else statfs is left alone: xfs_io, for one, would take an XFS magic as an invitation to issue
 * XFS-only ioctls. EXTENTFS_PRELOAD_FAKE_XFS=1 turns the same behaviour on for any program
 * (another tool with the same check), =0 turns it off for duperemove too.
 * ------------------------------------------------------------------------------------------- */

static int fake_xfs = -1; /* decided once, in the constructor (or on first use) */

static int fake_xfs_enabled(void) {
    int value = __atomic_load_n(&fake_xfs, __ATOMIC_RELAXED);
    if (value < 0) {
        const char *env = getenv("EXTENTFS_PRELOAD_FAKE_XFS");
        if (env != NULL && env[0] != '\0')
            value = strcmp(env, "0") != 0;
        else
            value = strcmp(program_invocation_short_name, "duperemove") == 0;
        __atomic_store_n(&fake_xfs, value, __ATOMIC_RELAXED);
    }
    return value;
}

__attribute__((constructor)) static void preload_init(void) {
    (void)fake_xfs_enabled();
}

/* f_type is the first member of both struct statfs and struct statfs64, with the same type. */
static void maybe_fake_xfs(int dirfd, const char *path, int flags, __fsword_t *f_type) {
    struct file_identity id;
    if (fake_xfs_enabled() && *f_type == FUSE_SUPER_MAGIC && is_extentfs_at(dirfd, path, flags, 1, &id) == 1)
        *f_type = XFS_SUPER_MAGIC;
}

EXPORT int fstatfs(int fd, struct statfs *buf) {
    int r = real_fstatfs(fd, buf);
    if (r == 0) maybe_fake_xfs(fd, "", AT_EMPTY_PATH, &buf->f_type);
    return r;
}

EXPORT int fstatfs64(int fd, struct statfs64 *buf) {
    fstatfs64_fn fn = (fstatfs64_fn)resolve(&next_fstatfs64, "fstatfs64");
    int r = fn ? fn(fd, buf) : (int)syscall(SYS_fstatfs, fd, buf);
    if (r == 0) maybe_fake_xfs(fd, "", AT_EMPTY_PATH, &buf->f_type);
    return r;
}

EXPORT int statfs(const char *path, struct statfs *buf) {
    int r = real_statfs(path, buf);
    if (r == 0) maybe_fake_xfs(AT_FDCWD, path, 0, &buf->f_type);
    return r;
}

EXPORT int statfs64(const char *path, struct statfs64 *buf) {
    statfs64_fn fn = (statfs64_fn)resolve(&next_statfs64, "statfs64");
    int r = fn ? fn(path, buf) : (int)syscall(SYS_statfs, path, buf);
    if (r == 0) maybe_fake_xfs(AT_FDCWD, path, 0, &buf->f_type);
    return r;
}
