#!/usr/bin/env python3
"""Stress run through an extentfs mount: the counterpart of Tests/ExtentFSTests/StressTests.swift.

Threads loop until a deadline over three shared files, choosing among: pwrite of records (through
the buffered descriptor or one opened with O_DIRECT), pread (buffered or O_DIRECT) with
validation, mmap read (MAP_SHARED of the file's current size, every word validated; see
Stress.safe_size for which size), mmap write of records (then msync), punch (fallocate PUNCH_HOLE|KEEP_SIZE), zero range (fallocate ZERO_RANGE,
with or without KEEP_SIZE), collapse and insert (EXTENTFS_IOC_COLLAPSE_RANGE / INSERT_RANGE),
clone (EXTENTFS_IOC_CLONE_RANGE), dedupe (EXTENTFS_IOC_DEDUPE_RANGE, sometimes of a range just
copied so that the ranges match), ftruncate and fsync.

Every write stores self-validating 8-byte records at 8-byte-aligned offsets, and every operation
keeps that alignment (collapse, insert, clone and dedupe are block-aligned; punch, zero and
truncate 8-aligned), so every 8-byte word any read returns must be 0 or a valid record: anything
else is data that was never written there (stale blocks, another structure's bytes, torn pages).

A fault in a mapping past EOF raises SIGBUS, which a Python thread cannot survive, so mmap
operations hold a per-file lock that the operations which shrink a file or drop its pages
(truncate, collapse, punch) also take; everything else runs concurrently.

    stress_mount.py DIR [--seconds 20] [--block-size 4096] [--threads 4] [--seed 1]
    stress_mount.py DIR --ops "mmap read,insert,pwrite"   # only these, to narrow a failure down
    stress_mount.py DIR --verify          # only validate every word of the files already in DIR

Errors EINVAL, ENOSPC, EFBIG and ENXIO (operations made invalid by a concurrent size change) are
expected and counted. Prints per-operation counts; exits 1 on any invalid word, any other errno
or any exception.
"""

import argparse
import array
import ctypes
import errno
import mmap
import os
import random
import sys
import threading
import time
import traceback

MAGIC = 0xE5F5
FILES = 3


def mix(value):
    x = (value * 0x9E3779B1) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x85EBCA77) & 0xFFFFFFFF
    return x ^ (x >> 13)


def record(sequence):
    high = (MAGIC << 16) | (sequence & 0xFFFF)
    return (high << 32) | mix(high)


# The sequence is 16 bits wide, so there are only 65536 records: a word is valid when it is 0 or
# one of them.
RECORDS = [record(s) for s in range(1 << 16)]
VALID = frozenset(RECORDS) | {0}
assert array.array("Q").itemsize == 8

# --- fallocate(2) and the extentfs ioctls (Sources/CExtentFSIoctl/include/extentfs_ioctl.h) ---

libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
libc.fallocate.restype = ctypes.c_int
libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
libc.ioctl.restype = ctypes.c_int

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10


class RangeArgs(ctypes.Structure):
    _fields_ = [("offset", ctypes.c_uint64), ("length", ctypes.c_uint64)]


class CloneArgs(ctypes.Structure):
    _fields_ = [("src_fd", ctypes.c_int64), ("src_offset", ctypes.c_uint64),
                ("length", ctypes.c_uint64), ("dest_offset", ctypes.c_uint64)]


class DedupeArgs(ctypes.Structure):
    _fields_ = [("src_fd", ctypes.c_int64), ("src_offset", ctypes.c_uint64),
                ("length", ctypes.c_uint64), ("dest_offset", ctypes.c_uint64),
                ("status", ctypes.c_int32), ("reserved", ctypes.c_uint32),
                ("bytes_deduped", ctypes.c_uint64)]


assert (ctypes.sizeof(RangeArgs), ctypes.sizeof(CloneArgs), ctypes.sizeof(DedupeArgs)) == (16, 32, 48)

IOC_WRITE, IOC_READ = 1, 2
IOC_MAGIC = 0xE5


def ioc(direction, number, struct_type):
    # asm-generic/ioctl.h: direction in bits 30-31, size in 16-29, type in 8-15, number in 0-7.
    return direction << 30 | ctypes.sizeof(struct_type) << 16 | IOC_MAGIC << 8 | number


IOC_COLLAPSE_RANGE = ioc(IOC_WRITE, 1, RangeArgs)
IOC_INSERT_RANGE = ioc(IOC_WRITE, 2, RangeArgs)
IOC_CLONE_RANGE = ioc(IOC_WRITE, 4, CloneArgs)
IOC_DEDUPE_RANGE = ioc(IOC_WRITE | IOC_READ, 5, DedupeArgs)
DEDUPE_SAME, DEDUPE_DIFFERS = 0, 1


def check(result, what):
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, "%s: %s" % (what, os.strerror(code)))
    return result


def fallocate(fd, mode, offset, length):
    check(libc.fallocate(fd, mode, offset, length), "fallocate mode %#x" % mode)


def ioctl(fd, command, args):
    check(libc.ioctl(fd, command, ctypes.addressof(args)), "ioctl %#x" % command)


# Errors an operation may meet because another thread changed the file's size under it.
EXPECTED = {errno.EINVAL, errno.ENOSPC, errno.EFBIG, errno.ENXIO}


class Stress:
    def __init__(self, directory, block_size, seconds, threads, seed, only=None):
        self.only = only          # None, or the names of the operations to run
        self.directory = directory
        self.bs = block_size
        self.seconds = seconds
        self.threads = threads
        self.seed = seed
        self.span = 64 * max(block_size, 4096)
        self.page = mmap.PAGESIZE
        self.report_lock = threading.Lock()
        self.failures = []        # invalid words: (file, offset, word)
        self.errors = []          # unexpected errnos and exceptions
        self.counts = {}          # op -> [done, expected errors]
        self.details = {}         # dedupe outcomes: "same", "differ" -> count
        self.paths = [os.path.join(directory, "stress%d" % i) for i in range(FILES)]
        self.fds = []
        self.direct_fds = []
        self.locks = [threading.Lock() for _ in range(FILES)]

    # --- bookkeeping ---

    def count(self, op, ok):
        with self.report_lock:
            entry = self.counts.setdefault(op, [0, 0])
            entry[0 if ok else 1] += 1

    def detail(self, op, outcome):
        with self.report_lock:
            outcomes = self.details.setdefault(op, {})
            outcomes[outcome] = outcomes.get(outcome, 0) + 1

    def validate(self, file, offset, data, how):
        """Every 8-byte word of data, read at offset (8-aligned) of file, must be 0 or a record."""
        words = array.array("Q")
        words.frombytes(bytes(data[:len(data) // 8 * 8]))
        if VALID.issuperset(words):
            return
        bad = [(i, w) for i, w in enumerate(words) if w not in VALID]
        with self.report_lock:
            for i, w in bad[:8]:
                self.failures.append((file, offset + 8 * i, w, how))
            if len(bad) > 8:
                self.failures.append((file, None, len(bad) - 8, how))

    def records(self, rng, words):
        start = rng.getrandbits(16)
        return array.array("Q", (RECORDS[(start + i) & 0xFFFF] for i in range(words))).tobytes()

    # --- operations ---

    def op_pwrite(self, rng, f):
        data = self.records(rng, rng.randrange(3 * self.bs // 8) + 1)
        offset = rng.randrange(self.span // 8) * 8
        view = memoryview(data)
        while view:
            written = os.pwrite(self.fds[f], view, offset)
            view, offset = view[written:], offset + written

    def op_direct_pwrite(self, rng, f):
        # O_DIRECT: page-aligned buffer (an anonymous mapping), block-aligned offset and length.
        length = (rng.randrange(3) + 1) * self.bs
        offset = rng.randrange(self.span // self.bs) * self.bs
        buffer = mmap.mmap(-1, length)
        try:
            buffer[:] = self.records(rng, length // 8)
            written = os.pwrite(self.direct_fds[f], buffer, offset)
            if written != length:
                raise RuntimeError("O_DIRECT pwrite of %d bytes at %d wrote %d" % (length, offset, written))
        finally:
            buffer.close()

    def op_pread(self, rng, f):
        offset = rng.randrange(self.span // 8) * 8
        data = os.pread(self.fds[f], rng.randrange(4 * self.bs) + 8, offset)
        self.validate(f, offset, data, "pread")

    def op_direct_pread(self, rng, f):
        length = (rng.randrange(4) + 1) * self.bs
        offset = rng.randrange(self.span // self.bs) * self.bs
        buffer = mmap.mmap(-1, length)
        try:
            got = os.preadv(self.direct_fds[f], [buffer], offset)
            self.validate(f, offset, buffer[:got], "O_DIRECT pread")
        finally:
            buffer.close()

    def safe_size(self, f):
        """A size within which a mapping of file f can be touched without SIGBUS: the kernel's
        own copy of the size (i_size: lseek SEEK_END) and the size fstat reports, whichever is
        smaller. The caller holds the file's lock, so neither can shrink until it lets go.

        fstat alone is not enough on any FUSE filesystem: while another thread's pwrite that
        extends the file is on its way, fstat reports the size the daemon already has, and the
        kernel raises i_size only once the write's reply is back (seen here with just mmap read,
        pwrite and truncate); an insert or clone has the same moment, before extentfs raises
        i_size itself, which it does before the ioctl returns. op_collapse refreshes i_size as
        extentfs_ioctl.h asks of every caller."""
        return min(os.lseek(self.fds[f], 0, os.SEEK_END), os.fstat(self.fds[f]).st_size)

    def op_mmap_read(self, rng, f):
        with self.locks[f]:
            size = self.safe_size(f)
            if size == 0:
                return
            mapping = mmap.mmap(self.fds[f], size, mmap.MAP_SHARED, mmap.PROT_READ)
            try:
                data = mapping[:]
            finally:
                mapping.close()
        self.validate(f, 0, data, "mmap read")

    def op_mmap_write(self, rng, f):
        words = rng.randrange(3 * self.bs // 8) + 1
        offset = rng.randrange(self.span // 8) * 8
        data = self.records(rng, words)
        end = offset + len(data)
        with self.locks[f]:
            # Under the lock the size can only grow, so the mapping stays within the file. The
            # truncate (up, or down to the size fstat saw if the file grew meanwhile, which is
            # just another truncate) sets the kernel's i_size from its reply, unconditionally.
            if self.safe_size(f) < end:
                os.ftruncate(self.fds[f], max(end, os.fstat(self.fds[f]).st_size))
            start = offset // self.page * self.page
            mapping = mmap.mmap(self.fds[f], end - start, mmap.MAP_SHARED,
                                mmap.PROT_READ | mmap.PROT_WRITE, offset=start)
            try:
                mapping[offset - start:end - start] = data
                mapping.flush()  # msync(MS_SYNC)
            finally:
                mapping.close()

    def op_punch(self, rng, f):
        offset = rng.randrange(self.span // 8) * 8
        length = rng.randrange(4 * self.bs // 8) * 8 + 8
        with self.locks[f]:
            fallocate(self.fds[f], FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length)

    def op_zero(self, rng, f):
        offset = rng.randrange(self.span // 8) * 8
        length = rng.randrange(4 * self.bs // 8) * 8 + 8
        mode = FALLOC_FL_ZERO_RANGE | (FALLOC_FL_KEEP_SIZE if rng.randrange(2) else 0)
        fallocate(self.fds[f], mode, offset, length)

    def op_collapse(self, rng, f):
        args = RangeArgs(rng.randrange(self.span // self.bs) * self.bs, (rng.randrange(3) + 1) * self.bs)
        with self.locks[f]:
            ioctl(self.fds[f], IOC_COLLAPSE_RANGE, args)
            os.fchown(self.fds[f], -1, -1)  # extentfs_refresh_size: the kernel's size goes down

    def op_insert(self, rng, f):
        args = RangeArgs(rng.randrange(self.span // self.bs) * self.bs, (rng.randrange(3) + 1) * self.bs)
        ioctl(self.fds[f], IOC_INSERT_RANGE, args)

    def op_clone(self, rng, f):
        other = rng.randrange(FILES)
        args = CloneArgs(self.fds[other], rng.randrange(self.span // self.bs // 2) * self.bs,
                         (rng.randrange(4) + 1) * self.bs, rng.randrange(self.span // self.bs) * self.bs)
        ioctl(self.fds[f], IOC_CLONE_RANGE, args)

    def op_dedupe(self, rng, f):
        other = rng.randrange(FILES)
        length = (rng.randrange(4) + 1) * self.bs
        source = rng.randrange(self.span // self.bs) * self.bs
        dest = rng.randrange(self.span // self.bs) * self.bs
        copied = rng.randrange(2) == 0
        if copied:
            # Copy the source range first, so that the ranges match unless another thread
            # changes one of them in between.
            data = os.pread(self.fds[other], length, source)
            self.validate(other, source, data, "pread for dedupe")
            if len(data) == length:
                os.pwrite(self.fds[f], data, dest)
        args = DedupeArgs(self.fds[other], source, length, dest, 0, 0, 0)
        ioctl(self.fds[f], IOC_DEDUPE_RANGE, args)
        if args.status == DEDUPE_SAME:
            if args.bytes_deduped != length:
                raise RuntimeError("dedupe said same but deduped %d of %d bytes" % (args.bytes_deduped, length))
            self.detail("dedupe", "same" + (" after a copy" if copied else ""))
        elif args.status == DEDUPE_DIFFERS:
            self.detail("dedupe", "differ" + (" after a copy" if copied else ""))
        elif -args.status in EXPECTED:
            raise OSError(-args.status, "dedupe status: %s" % os.strerror(-args.status))
        else:
            raise RuntimeError("dedupe status %d" % args.status)

    def op_truncate(self, rng, f):
        with self.locks[f]:
            os.ftruncate(self.fds[f], rng.randrange(self.span // 8) * 8)

    def op_fsync(self, rng, f):
        os.fsync(self.fds[f])

    # Weights as in StressTests.swift: writes 3, reads 3, punch, zero, collapse/insert, clone,
    # dedupe and truncate 1 each; fsync now and then.
    OPS = [
        ("pwrite", op_pwrite, 12), ("O_DIRECT pwrite", op_direct_pwrite, 6), ("mmap write", op_mmap_write, 6),
        ("pread", op_pread, 12), ("O_DIRECT pread", op_direct_pread, 6), ("mmap read", op_mmap_read, 6),
        ("punch", op_punch, 8), ("zero range", op_zero, 8),
        ("collapse", op_collapse, 4), ("insert", op_insert, 4),
        ("clone", op_clone, 8), ("dedupe", op_dedupe, 8), ("truncate", op_truncate, 8),
        ("fsync", op_fsync, 2),
    ]

    def worker(self, index, deadline):
        rng = random.Random(self.seed * 1000003 + index)
        chosen = [op for op in self.OPS if self.only is None or op[0] in self.only]
        names = [name for name, _, _ in chosen]
        functions = {name: function for name, function, _ in chosen}
        weights = [weight for _, _, weight in chosen]
        while time.monotonic() < deadline:
            name = rng.choices(names, weights)[0]
            f = rng.randrange(FILES)
            try:
                functions[name](self, rng, f)
                self.count(name, True)
            except OSError as error:
                if error.errno in EXPECTED:
                    self.count(name, False)
                else:
                    with self.report_lock:
                        self.errors.append("thread %d, %s on stress%d: %s" % (index, name, f, error))
            except Exception:
                with self.report_lock:
                    self.errors.append("thread %d, %s on stress%d: %s" % (index, name, f, traceback.format_exc()))

    def open_files(self, create):
        flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT | os.O_EXCL if create else 0)
        self.fds = [os.open(path, flags, 0o644) for path in self.paths]
        self.direct_fds = [os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_DIRECT) for path in self.paths]

    def close_files(self):
        for fd in self.fds + self.direct_fds:
            os.close(fd)
        self.fds, self.direct_fds = [], []

    def verify_all(self, how):
        """Reads every file whole with pread and validates every word."""
        total = 0
        for f in range(FILES):
            size = os.fstat(self.fds[f]).st_size
            offset = 0
            while offset < size:
                data = os.pread(self.fds[f], min(1 << 20, size - offset), offset)
                if not data:
                    break
                self.validate(f, offset, data, how)
                offset += len(data)
            total += size
        return total

    def run(self):
        self.open_files(create=True)
        deadline = time.monotonic() + self.seconds
        workers = [threading.Thread(target=self.worker, args=(i, deadline), daemon=True) for i in range(self.threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(max(0, deadline - time.monotonic()) + 300)
            if worker.is_alive():
                self.errors.append("a thread was still running 300 s after the deadline (a hung operation?)")
                return  # leaves the descriptors to the process's exit
        # After the storm: everything written back, then every word of every file once more.
        for fd in self.fds:
            os.fsync(fd)
        self.verify_all("final read")
        self.close_files()

    def verify(self):
        self.open_files(create=False)
        total = self.verify_all("verify read")
        self.close_files()
        return total

    def summary(self):
        lines = []
        width = max(len(name) for name in self.counts) if self.counts else 0
        total = 0
        for name in sorted(self.counts):
            done, refused = self.counts[name]
            total += done + refused
            line = "  %-*s %7d ok %6d refused" % (width, name, done, refused)
            if name in self.details:
                line += "  (%s)" % ", ".join("%d %s" % (n, outcome) for outcome, n in sorted(self.details[name].items()))
            lines.append(line)
        return lines, total

    def report_problems(self):
        for f, offset, word, how in self.failures[:50]:
            if offset is None:
                print("INVALID: stress%d: %d more invalid words in that %s" % (f, word, how))
            else:
                print("INVALID: stress%d offset %d (%#x): word %016x (%s)" % (f, offset, offset, word, how))
        if len(self.failures) > 50:
            print("INVALID: ... %d more" % (len(self.failures) - 50))
        for error in self.errors[:20]:
            print("ERROR: %s" % error.rstrip())
        if len(self.errors) > 20:
            print("ERROR: ... %d more" % (len(self.errors) - 20))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", help="a directory on an extentfs mount")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--block-size", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--ops", help="comma-separated operation names to run (default: all), to narrow down a failure: "
                        + ", ".join(name for name, _, _ in Stress.OPS))
    parser.add_argument("--verify", action="store_true",
                        help="only validate every word of the stress files already in the directory")
    args = parser.parse_args()
    if args.block_size < 512 or args.block_size & (args.block_size - 1):
        parser.error("--block-size must be a power of two, at least 512")

    only = None
    if args.ops:
        only = {name.strip() for name in args.ops.split(",")}
        unknown = only - {name for name, _, _ in Stress.OPS}
        if unknown:
            parser.error("unknown operations: %s" % ", ".join(sorted(unknown)))
    stress = Stress(args.directory, args.block_size, args.seconds, args.threads, args.seed, only)
    if args.verify:
        total = stress.verify()
        stress.report_problems()
        bad = bool(stress.failures or stress.errors)
        print("verify: %d bytes in %d files read, %s" % (total, FILES, "INVALID WORDS" if bad else "all words valid"))
        return 1 if bad else 0

    started = time.monotonic()
    stress.run()
    elapsed = time.monotonic() - started
    lines, total = stress.summary()
    print("stress: block size %d, %d threads, seed %d, %.1f s, %d operations (%.0f/s)"
          % (args.block_size, args.threads, args.seed, elapsed, total, total / max(elapsed, 1e-9)))
    print("  (refused: EINVAL, ENOSPC, EFBIG or ENXIO, an operation another thread's size change made invalid)")
    for line in lines:
        print(line)
    stress.report_problems()
    print("stress: %d invalid words, %d unexpected errors" % (len(stress.failures), len(stress.errors)))
    return 1 if stress.failures or stress.errors else 0


if __name__ == "__main__":
    sys.exit(main())
