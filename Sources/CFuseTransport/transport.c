#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fuse_transport.h"

// One session per daemon process, so the negotiation state is the process's.
static _Atomic uint64_t init_unique;          // the INIT request's unique, 0 until it arrives
static atomic_int kernel_offers_killpriv_v2;
static atomic_int killpriv_v2_accepted;

// libfuse's loop threads each read a request and serve it on the same thread before reading
// the next (fuse_session_loop_mt: fuse_do_work), so the last request this thread read is the
// one its handler is serving, and its buffer stays untouched until the handler returns.
static __thread const struct fuse_in_header *request_in_progress;
static __thread size_t request_length;

// FUSE_STATX's opcode and request (linux/fuse.h, 7.39).
enum { transport_statx_opcode = 52 };
struct transport_statx_in {
    uint32_t getattr_flags;
    uint32_t reserved;
    uint64_t fh;
    uint32_t sx_flags;
    uint32_t sx_mask;
};

_Static_assert(sizeof(struct fuse_transport_statx) == 256, "struct fuse_statx is 256 bytes");
_Static_assert(sizeof(struct fuse_transport_statx_out) == 288, "struct fuse_statx_out is 288 bytes");
_Static_assert(sizeof(struct transport_statx_in) == 24, "struct fuse_statx_in is 24 bytes");

// Set before the loop starts, read by every loop thread after.
static fuse_transport_statx_handler statx_handler;
static void *statx_context;

void fuse_transport_serve_statx(fuse_transport_statx_handler handler, void *context) {
    statx_context = context;
    statx_handler = handler;
}

// Answers one FUSE_STATX on `fd`, as libfuse answers a request: one writev of the header and
// the reply (an error has the header alone). A reply the kernel no longer waits for (the
// request was interrupted) fails with ENOENT, which libfuse ignores too.
static void serve_statx(int fd, const struct fuse_in_header *header) {
    struct fuse_transport_statx_out reply;
    memset(&reply, 0, sizeof reply);
    int result = statx_handler(statx_context, header->nodeid, &reply);
    struct fuse_out_header out = { .len = sizeof out, .error = result < 0 ? result : 0, .unique = header->unique };
    struct iovec vector[2] = { { .iov_base = &out, .iov_len = sizeof out }, { .iov_base = &reply, .iov_len = sizeof reply } };
    if (result == 0) out.len += sizeof reply;
    (void)!writev(fd, vector, result == 0 ? 2 : 1);
}

// Requests and error replies by opcode, for `extentfs stats`: relaxed atomic adds, no lock.
// Every request is read here, and every reply written here, whichever thread sends it (space
// workers reply after the loop thread has moved on), so a reply finds its request's opcode in
// a table indexed by its unique. The kernel numbers requests in steps of 2 (the low bit marks
// an INTERRUPT, which shares its request's number), so a slot is reused only after
// EXTENTFS_IN_FLIGHT_SLOTS more requests: an error reply to a request older than that is
// counted in the last kind, with opcodes past it.
static _Atomic uint64_t request_counts[EXTENTFS_REQUEST_KINDS];
static _Atomic uint64_t error_counts[EXTENTFS_REQUEST_KINDS];
#define EXTENTFS_IN_FLIGHT_SLOTS 4096
static _Atomic uint64_t in_flight_unique[EXTENTFS_IN_FLIGHT_SLOTS];
static _Atomic uint32_t in_flight_opcode[EXTENTFS_IN_FLIGHT_SLOTS];

static inline uint32_t request_kind(uint32_t opcode) {
    return opcode < EXTENTFS_REQUEST_KINDS - 1 ? opcode : EXTENTFS_REQUEST_KINDS - 1;
}

static inline size_t in_flight_slot(uint64_t unique) { return (size_t)((unique >> 1) % EXTENTFS_IN_FLIGHT_SLOTS); }

static void count_request(const struct fuse_in_header *header) {
    atomic_fetch_add_explicit(&request_counts[request_kind(header->opcode)], 1, memory_order_relaxed);
    if (header->unique == 0 || (header->unique & 1) != 0) return;
    size_t slot = in_flight_slot(header->unique);
    atomic_store_explicit(&in_flight_opcode[slot], header->opcode, memory_order_relaxed);
    atomic_store_explicit(&in_flight_unique[slot], header->unique, memory_order_release);
}

// Notifications have unique 0 and a positive code in `error`: only replies with -errno count.
static void count_reply(const struct iovec *iov, int count) {
    if (count < 1 || iov[0].iov_len < sizeof(struct fuse_out_header)) return;
    const struct fuse_out_header *header = iov[0].iov_base;
    if (header->unique == 0 || header->error >= 0) return;
    size_t slot = in_flight_slot(header->unique);
    uint32_t kind = EXTENTFS_REQUEST_KINDS - 1;
    if (atomic_load_explicit(&in_flight_unique[slot], memory_order_acquire) == header->unique) {
        kind = request_kind(atomic_load_explicit(&in_flight_opcode[slot], memory_order_relaxed));
    }
    atomic_fetch_add_explicit(&error_counts[kind], 1, memory_order_relaxed);
}

static ssize_t transport_read(int fd, void *buffer, size_t length, void *userdata) {
    (void)userdata;
    ssize_t count;
    // A FUSE_STATX is answered here and the next request read in its place.
    for (;;) {
        count = read(fd, buffer, length);
        const struct fuse_in_header *header = buffer;
        if (statx_handler == NULL || count < (ssize_t)(sizeof *header + sizeof(struct transport_statx_in)) ||
            header->opcode != transport_statx_opcode) {
            break;
        }
        count_request(header);
        serve_statx(fd, header);
    }
    if (count < (ssize_t)sizeof(struct fuse_in_header)) {
        request_in_progress = NULL;
        request_length = 0;
        return count;
    }
    const struct fuse_in_header *header = buffer;
    request_in_progress = header;
    request_length = (size_t)count;
    count_request(header);
    if (header->opcode == FUSE_INIT && (size_t)count >= sizeof *header + offsetof(struct fuse_init_in, flags) + sizeof(uint32_t)) {
        const struct fuse_init_in *init = (const void *)(header + 1);
        atomic_store(&kernel_offers_killpriv_v2, (init->flags & FUSE_HANDLE_KILLPRIV_V2) != 0);
        atomic_store(&init_unique, header->unique);
    }
    return count;
}

// The INIT reply gets FUSE_HANDLE_KILLPRIV_V2 when the kernel offered it; every other reply
// goes out as libfuse built it.
static ssize_t transport_writev(int fd, struct iovec *iov, int count, void *userdata) {
    (void)userdata;
    count_reply(iov, count);
    uint64_t unique = atomic_load(&init_unique);
    if (unique == 0 || count != 2 || iov[0].iov_len < sizeof(struct fuse_out_header)) return writev(fd, iov, count);
    const struct fuse_out_header *header = iov[0].iov_base;
    size_t flags_end = offsetof(struct fuse_init_out, flags) + sizeof(uint32_t);
    if (header->unique != unique || header->error != 0 || iov[1].iov_len < flags_end || iov[1].iov_len > sizeof(struct fuse_init_out)) {
        return writev(fd, iov, count);
    }
    atomic_store(&init_unique, 0);
    struct fuse_init_out reply;
    memcpy(&reply, iov[1].iov_base, iov[1].iov_len);
    if (atomic_load(&kernel_offers_killpriv_v2)) reply.flags |= FUSE_HANDLE_KILLPRIV_V2;
    struct iovec patched[2] = { iov[0], { .iov_base = &reply, .iov_len = iov[1].iov_len } };
    ssize_t written = writev(fd, patched, 2);
    if (written >= 0 && (reply.flags & FUSE_HANDLE_KILLPRIV_V2)) atomic_store(&killpriv_v2_accepted, 1);
    return written;
}

int fuse_transport_install(struct fuse_session *session) {
    static const struct fuse_custom_io io = { .read = transport_read, .writev = transport_writev };
    return fuse_session_custom_io(session, &io, fuse_session_fd(session));
}

int fuse_transport_killpriv_v2(void) { return atomic_load(&killpriv_v2_accepted); }

uint32_t fuse_transport_write_flags(void) {
    const struct fuse_in_header *header = request_in_progress;
    if (header == NULL || header->opcode != FUSE_WRITE || request_length < sizeof *header + sizeof(struct fuse_write_in)) return 0;
    return ((const struct fuse_write_in *)(header + 1))->write_flags;
}

uint32_t fuse_transport_setattr_valid(void) {
    const struct fuse_in_header *header = request_in_progress;
    if (header == NULL || header->opcode != FUSE_SETATTR || request_length < sizeof *header + sizeof(struct fuse_setattr_in)) return 0;
    return ((const struct fuse_setattr_in *)(header + 1))->valid;
}

void fuse_transport_request_counts(uint64_t requests[EXTENTFS_REQUEST_KINDS], uint64_t errors[EXTENTFS_REQUEST_KINDS]) {
    for (size_t kind = 0; kind < EXTENTFS_REQUEST_KINDS; kind++) {
        requests[kind] = atomic_load_explicit(&request_counts[kind], memory_order_relaxed);
        errors[kind] = atomic_load_explicit(&error_counts[kind], memory_order_relaxed);
    }
}
