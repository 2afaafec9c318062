#define _GNU_SOURCE
#include "integration_helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* The kernel's AIO interface through raw system calls: no libaio needed. */
static long aio_setup(unsigned events, aio_context_t *context) { return syscall(SYS_io_setup, events, context); }
static long aio_destroy(aio_context_t context) { return syscall(SYS_io_destroy, context); }
static long aio_submit(aio_context_t context, long count, struct iocb **iocbs) {
    return syscall(SYS_io_submit, context, count, iocbs);
}
static long aio_getevents(aio_context_t context, long min, long max, struct io_event *events) {
    return syscall(SYS_io_getevents, context, min, max, events, NULL);
}

struct buffered_reader {
    int fd;
    uint64_t size;
    atomic_int stop;
};

/* Buffered reads of the whole file, over and over: what fills the kernel's cache while a
 * direct write is in flight (generic/451's reader). */
static void *read_buffered(void *argument) {
    struct buffered_reader *reader = argument;
    char *buffer = malloc(1 << 16);
    if (buffer == NULL) return NULL;
    while (!atomic_load(&reader->stop)) {
        for (uint64_t offset = 0; offset < reader->size && !atomic_load(&reader->stop); offset += 1 << 16) {
            if (pread(reader->fd, buffer, 1 << 16, (off_t)offset) < 0) break;
        }
    }
    free(buffer);
    return NULL;
}

int extentfs_test_async_direct_writes(const char *path, uint64_t size, uint32_t rounds,
                                      struct extentfs_async_direct_outcome *outcome) {
    memset(outcome, 0, sizeof *outcome);
    int direct_fd = open(path, O_WRONLY | O_DIRECT | O_CLOEXEC);
    int buffered_fd = open(path, O_RDONLY | O_CLOEXEC);
    int check_fd = open(path, O_RDONLY | O_CLOEXEC);
    void *block = NULL;
    char *check = malloc(size);
    aio_context_t context = 0;
    int error = 0;
    if (direct_fd < 0 || buffered_fd < 0 || check_fd < 0 || check == NULL ||
        posix_memalign(&block, 4096, size) != 0 || aio_setup(4, &context) != 0) {
        error = errno ? errno : ENOMEM;
        goto out;
    }

    struct buffered_reader reader = { .fd = buffered_fd, .size = size };
    atomic_init(&reader.stop, 0);
    pthread_t thread;
    if ((error = pthread_create(&thread, NULL, read_buffered, &reader)) != 0) goto out;

    for (uint32_t round = 0; round < rounds && error == 0; round++) {
        unsigned char value = (unsigned char)(0x41 + round % 50);
        memset(block, value, size);
        struct iocb request;
        memset(&request, 0, sizeof request);
        request.aio_fildes = (uint32_t)direct_fd;
        request.aio_lio_opcode = IOCB_CMD_PWRITE;
        request.aio_buf = (uint64_t)(uintptr_t)block;
        request.aio_nbytes = size;
        request.aio_offset = 0;
        struct iocb *requests[1] = { &request };
        if (aio_submit(context, 1, requests) != 1) { error = errno; break; }
        struct io_event event;
        long got;
        while ((got = aio_getevents(context, 1, 1, &event)) < 0 && errno == EINTR) {}
        if (got != 1) { error = errno ? errno : EIO; break; }
        if (event.res != (int64_t)size) {
            error = event.res < 0 ? (int)-event.res : EIO;
            break;
        }
        /* The write has completed: every buffered read must see it now. */
        if (pread(check_fd, check, size, 0) != (ssize_t)size) { error = errno ? errno : EIO; break; }
        uint64_t stale = 0;
        for (uint64_t i = 0; i < size; i++) if ((unsigned char)check[i] != value) stale++;
        if (stale > 0) {
            outcome->stale_rounds++;
            outcome->stale_bytes += stale;
        }
        outcome->rounds++;
    }
    atomic_store(&reader.stop, 1);
    pthread_join(thread, NULL);
out:
    if (context != 0) aio_destroy(context);
    free(block);
    free(check);
    if (direct_fd >= 0) close(direct_fd);
    if (buffered_fd >= 0) close(buffered_fd);
    if (check_fd >= 0) close(check_fd);
    return -error;
}
