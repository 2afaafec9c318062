#!/usr/bin/env python3
"""A model of what XFS does to files under the space operations, and checks of real files against it.

Used by scripts/tools-test.sh: the script runs xfs_io, fallocate(1), cp --reflink and duperemove on
a mount, tells this model the same operations (in xfs_io's command syntax), and asks it to compare
the real files with what fallocate(2), ioctl_ficlonerange(2) and ioctl_fideduperange(2) say must
happen, the way XFS does it:

  contents and size      byte for byte, after every step and again after unmount and remount;
  holes                  every block the model knows is a hole must be one for SEEK_DATA/SEEK_HOLE
                         and FIEMAP, every block holding data must be data; allocated blocks that
                         were never written (preallocation, zero range, unshare of a hole) may be
                         reported either way by lseek, as POSIX and XFS allow, but must be mapped;
  extent map (FIEMAP)    mapped exactly where the model has blocks, never UNWRITTEN over written
                         data, SHARED exactly where a block is referenced more than once (across
                         all files of the volume), the same physical block for the same shared
                         block and different ones otherwise, LAST on the final extent;
  st_blocks              the mapped blocks, after FIEMAP_FLAG_SYNC has written everything back.

Each check prints one line, "PASS: ..." or "FAIL: ...". State (per volume) lives in a directory:
state.json (sizes, per-block allocation) and one NAME.bin per file with the expected contents.

Blocks are modelled as None (hole) or [token, unwritten]: a token names one physical block, so two
file blocks with the same token share it. Block size = the volume's (st_blksize on extentfs).
"""

import argparse
import ctypes
import errno
import fcntl
import json
import os
import shlex
import struct
import sys

FS_IOC_FIEMAP = 0xC020660B
FICLONE = 0x40049409
FICLONERANGE = 0x4020940D
FIDEDUPERANGE = 0xC0189436
FIEMAP_FLAG_SYNC = 0x1
FIEMAP_FLAG_XATTR = 0x2
FIEMAP_EXTENT_LAST = 0x1
FIEMAP_EXTENT_UNKNOWN = 0x2
FIEMAP_EXTENT_DELALLOC = 0x4
FIEMAP_EXTENT_UNWRITTEN = 0x800
FIEMAP_EXTENT_SHARED = 0x2000
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_COLLAPSE_RANGE = 0x08
FALLOC_FL_ZERO_RANGE = 0x10
FALLOC_FL_INSERT_RANGE = 0x20
FALLOC_FL_UNSHARE_RANGE = 0x40
DEDUPE_MAX = 1 << 30

# Per-block seek checks cost two lseeks per block; above this many blocks only run edges are probed.
SEEK_EVERY_BLOCK_LIMIT = 4096


class OpError(Exception):
    """The operation must fail with this errno (and change nothing)."""

    def __init__(self, err):
        super().__init__(errno.errorcode[err])
        self.errno = err


def parse_number(text):
    """xfs_io's cvtnum for what the scripts use: decimal, 0x hex, and k/m/g/t suffixes."""
    text = text.strip().lower()
    scale = 1
    for suffix, factor in (("k", 1 << 10), ("m", 1 << 20), ("g", 1 << 30), ("t", 1 << 40)):
        if text.endswith(suffix):
            text, scale = text[:-1], factor
            break
    return int(text, 0) * scale


def align_down(value, bs):
    return value - value % bs


def align_up(value, bs):
    return -(-value // bs) * bs


class FileModel:
    def __init__(self, volume, name, size=0, blocks=None, data=None):
        self.volume = volume
        self.name = name
        self.size = size
        self.blocks = blocks if blocks is not None else []
        self.data = data if data is not None else bytearray()

    @property
    def bs(self):
        return self.volume.bs

    def ensure_blocks(self, count):
        if len(self.blocks) < count:
            self.blocks.extend([None] * (count - len(self.blocks)))

    def set_data_size(self, size):
        if size > len(self.data):
            self.data.extend(bytes(size - len(self.data)))
        else:
            del self.data[size:]
        self.size = size

    def shared(self, index):
        block = self.blocks[index] if index < len(self.blocks) else None
        return block is not None and self.volume.refcount(block[0]) > 1

    def written(self, index):
        block = self.blocks[index] if index < len(self.blocks) else None
        return block is not None and not block[1]

    # -- writes ------------------------------------------------------------------------------

    def write(self, offset, payload):
        end = offset + len(payload)
        if end > self.size:
            self.set_data_size(end)
        self.data[offset:end] = payload
        if not payload:
            return
        first, last = offset // self.bs, (end - 1) // self.bs
        self.ensure_blocks(last + 1)
        for index in range(first, last + 1):
            block = self.blocks[index]
            if block is None or self.shared(index):
                self.blocks[index] = [self.volume.new_token(), False]  # allocate, or copy on write
            else:
                block[1] = False

    def zero_bytes(self, start, end):
        """Zeroes [start, end) of the contents that lie inside EOF (what partial blocks get)."""
        end = min(end, self.size)
        if end > start:
            self.data[start:end] = bytes(end - start)

    def cow_partial(self, start, end):
        """A partial block that gets zeroes written: a shared block is copied first."""
        if start >= end or start >= self.size:
            return
        for index in range(start // self.bs, (min(end, self.size) - 1) // self.bs + 1):
            if index < len(self.blocks) and self.blocks[index] is not None and not self.blocks[index][1] \
                    and self.shared(index):
                self.blocks[index] = [self.volume.new_token(), False]

    def unmap(self, first, end):
        for index in range(first, min(end, len(self.blocks))):
            self.blocks[index] = None

    def allocate(self, first, end):
        self.ensure_blocks(end)
        for index in range(first, end):
            if self.blocks[index] is None:
                self.blocks[index] = [self.volume.new_token(), True]

    # -- fallocate(2) modes, with vfs_fallocate's and XFS's argument checks ----------------

    def punch(self, offset, length):
        check_range(offset, length)
        end = offset + length
        whole_first, whole_end = align_up(offset, self.bs), align_down(end, self.bs)
        for start, stop in ((offset, min(end, whole_first)), (max(offset, whole_end), end)):
            self.cow_partial(start, stop)
        self.unmap(whole_first // self.bs, whole_end // self.bs)
        self.zero_bytes(offset, end)

    def zero_range(self, offset, length, keep_size):
        check_range(offset, length)
        end = offset + length
        self.punch(offset, length)
        if not keep_size and end > self.size:
            self.set_data_size(end)
        self.allocate(offset // self.bs, align_up(end, self.bs) // self.bs)

    def preallocate(self, offset, length, keep_size):
        check_range(offset, length)
        end = offset + length
        self.allocate(offset // self.bs, align_up(end, self.bs) // self.bs)
        if not keep_size and end > self.size:
            self.set_data_size(end)

    def collapse(self, offset, length):
        check_range(offset, length)
        if offset % self.bs or length % self.bs:
            raise OpError(errno.EINVAL)
        if offset + length >= self.size:
            raise OpError(errno.EINVAL)
        del self.data[offset:offset + length]
        self.size -= length
        self.ensure_blocks((offset + length) // self.bs)
        del self.blocks[offset // self.bs:(offset + length) // self.bs]

    def insert(self, offset, length):
        check_range(offset, length)
        if offset % self.bs or length % self.bs:
            raise OpError(errno.EINVAL)
        if offset >= self.size:
            raise OpError(errno.EINVAL)
        self.data[offset:offset] = bytes(length)
        self.size += length
        self.ensure_blocks(offset // self.bs)
        self.blocks[offset // self.bs:offset // self.bs] = [None] * (length // self.bs)

    def unshare(self, offset, length, keep_size):
        check_range(offset, length)
        end = offset + length
        first, stop = offset // self.bs, align_up(end, self.bs) // self.bs
        self.ensure_blocks(stop)
        for index in range(first, stop):
            block = self.blocks[index]
            if block is not None and self.shared(index):
                self.blocks[index] = [self.volume.new_token(), block[1]]
        self.allocate(first, stop)  # XFS allocates the holes in the range too
        if not keep_size and end > self.size:
            self.set_data_size(end)

    def truncate(self, size):
        if size < 0:
            raise OpError(errno.EINVAL)
        if size <= self.size:
            # XFS frees everything past EOF, also on a truncate to the same size (generic/092)
            del self.blocks[align_up(size, self.bs) // self.bs:]
        self.set_data_size(size)

    # -- remapping: generic_remap_file_range_prep and generic_remap_checks ------------------

    def remap_checks(self, source, src_offset, dest_offset, length, dedupe):
        """Returns (count, block_count) or raises; length 0 was resolved by the caller."""
        bs = self.bs
        if src_offset % bs or dest_offset % bs:
            raise OpError(errno.EINVAL)
        if dedupe and (src_offset >= source.size or src_offset + length > source.size or
                       dest_offset >= self.size or dest_offset + length > self.size):
            raise OpError(errno.EINVAL)
        if src_offset >= source.size:
            raise OpError(errno.EINVAL)
        count = min(length, source.size - src_offset)
        if src_offset + count == source.size and (not dedupe or dest_offset + count == self.size):
            block_count = align_up(source.size, bs) - src_offset
        else:
            count = align_down(count, bs)
            block_count = count
        if source is self and dest_offset + block_count > src_offset and dest_offset < src_offset + block_count:
            raise OpError(errno.EINVAL)
        if count != length and not dedupe:
            raise OpError(errno.EINVAL)  # clone may not be shortened
        # A partial EOF block may only be linked at or past the destination's EOF.
        if count % bs and dest_offset + count < self.size:
            raise OpError(errno.EINVAL)
        return count, block_count

    def link_blocks(self, source, src_offset, dest_offset, block_count):
        first_src, first_dest = src_offset // self.bs, dest_offset // self.bs
        source.ensure_blocks(first_src + block_count // self.bs)
        self.ensure_blocks(first_dest + block_count // self.bs)
        for i in range(block_count // self.bs):
            block = source.blocks[first_src + i]
            # XFS maps holes and unwritten source extents as holes in the destination.
            self.blocks[first_dest + i] = [block[0], False] if block is not None and not block[1] else None

    def clone(self, source, src_offset, dest_offset, length):
        if length == 0:
            if src_offset == source.size:
                return
            if src_offset > source.size:
                raise OpError(errno.EINVAL)
            length = source.size - src_offset
        count, block_count = self.remap_checks(source, src_offset, dest_offset, length, dedupe=False)
        payload = bytes(source.data[src_offset:src_offset + count])
        self.link_blocks(source, src_offset, dest_offset, block_count)
        if dest_offset + count > self.size:
            self.set_data_size(dest_offset + count)
        self.data[dest_offset:dest_offset + count] = payload

    def dedupe(self, source, src_offset, dest_offset, length):
        """Returns the bytes FIDEDUPERANGE reports deduped: the length asked for (capped at
        1 GiB), also when a partial EOF block is left out (generic/517); raises OpError(EBADE)
        when the ranges differ."""
        if src_offset + length > source.size:
            raise OpError(errno.EINVAL)
        length = min(length, DEDUPE_MAX)
        if length == 0:
            return 0
        count, block_count = self.remap_checks(source, src_offset, dest_offset, length, dedupe=True)
        if source.data[src_offset:src_offset + count] != self.data[dest_offset:dest_offset + count]:
            raise OpError(errno.EBADE)
        self.link_blocks(source, src_offset, dest_offset, block_count)
        return length


def check_range(offset, length):
    if offset < 0 or length <= 0:
        raise OpError(errno.EINVAL)


class Volume:
    def __init__(self, state_dir, bs=None):
        self.dir = state_dir
        path = os.path.join(state_dir, "state.json")
        state = {}
        if os.path.exists(path):
            with open(path) as f:
                state = json.load(f)
        self.bs = state.get("bs") or bs
        if bs is not None and self.bs != bs:
            raise SystemExit(f"model: state in {state_dir} has block size {self.bs}, not {bs}")
        if not self.bs:
            raise SystemExit("model: no block size (pass --bs)")
        self.next_token = state.get("next_token", 1)
        self.files = {}
        for name, info in state.get("files", {}).items():
            with open(os.path.join(state_dir, name + ".bin"), "rb") as f:
                data = bytearray(f.read())
            self.files[name] = FileModel(self, name, info["size"], info["blocks"], data)
        self._refcounts = None

    def save(self):
        os.makedirs(self.dir, exist_ok=True)
        files = {}
        for name, model in self.files.items():
            with open(os.path.join(self.dir, name + ".bin"), "wb") as f:
                f.write(model.data)
            files[name] = {"size": model.size, "blocks": model.blocks}
        with open(os.path.join(self.dir, "state.json.tmp"), "w") as f:
            json.dump({"bs": self.bs, "next_token": self.next_token, "files": files}, f)
        os.replace(os.path.join(self.dir, "state.json.tmp"), os.path.join(self.dir, "state.json"))

    def new_token(self):
        self.next_token += 1
        self._refcounts = None
        return self.next_token - 1

    def refcount(self, token):
        if self._refcounts is None:
            counts = {}
            for model in self.files.values():
                for block in model.blocks:
                    if block is not None:
                        counts[block[0]] = counts.get(block[0], 0) + 1
            self._refcounts = counts
        return self._refcounts.get(token, 0)

    def invalidate(self):
        self._refcounts = None

    def file(self, name):
        if name not in self.files:
            self.files[name] = FileModel(self, name)
        return self.files[name]

    def apply(self, name, command):
        """Applies one xfs_io command (the subset the scripts use) to file `name`."""
        words = shlex.split(command)
        op, args = words[0], words[1:]
        flags = set()
        pattern = 0xCD  # xfs_io's default pwrite pattern
        rest = []
        i = 0
        while i < len(args):
            if args[i] == "-S":
                pattern = parse_number(args[i + 1])
                i += 2
                continue
            if args[i].startswith("-") and len(args[i]) > 1 and not args[i][1].isdigit():
                flags.update(args[i][1:])
                i += 1
                continue
            rest.append(args[i])
            i += 1
        f = self.file(name)
        numbers = lambda items: [parse_number(x) for x in items]
        try:
            if op == "pwrite":
                offset, length = numbers(rest)
                f.write(offset, bytes([pattern]) * length)
            elif op == "fpunch":
                f.punch(*numbers(rest))
            elif op == "fzero":
                f.zero_range(*numbers(rest), keep_size="k" in flags)
            elif op == "fcollapse":
                f.collapse(*numbers(rest))
            elif op == "finsert":
                f.insert(*numbers(rest))
            elif op == "funshare":
                f.unshare(*numbers(rest), keep_size=False)
            elif op == "falloc":
                f.preallocate(*numbers(rest), keep_size="k" in flags)
            elif op == "truncate":
                f.truncate(*numbers(rest))
            elif op == "reflink":
                source = self.file(os.path.basename(rest[0]))
                if len(rest) == 1:
                    f.clone(source, 0, 0, 0)
                else:
                    f.clone(source, *numbers(rest[1:]))
            elif op == "dedupe":
                source = self.file(os.path.basename(rest[0]))
                f.dedupe(source, *numbers(rest[1:]))
            elif op == "import":
                with open(rest[0], "rb") as src:
                    payload = src.read()
                f.truncate(0)
                f.write(0, payload)
            elif op in ("fiemap", "seek", "fsync", "stat", "open"):
                pass  # reads nothing into the model
            else:
                raise SystemExit(f"model: unknown command {command!r}")
        finally:
            self.invalidate()


# ---------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------

class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def result(self, ok, label, detail=""):
        if ok:
            self.passed += 1
            print(f"PASS: {label}")
        else:
            self.failed += 1
            print(f"FAIL: {label}{': ' + detail if detail else ''}")
        sys.stdout.flush()
        return ok


def fiemap(fd, flags=FIEMAP_FLAG_SYNC, count=512):
    """All extents of the file, as (logical, physical, length, flags), asking again when the array fills."""
    extents = []
    start = 0
    while True:
        header = struct.pack("=QQIIII", start, (1 << 64) - 1 - start, flags, 0, count, 0)
        buf = bytearray(header + bytes(56 * count))
        fcntl.ioctl(fd, FS_IOC_FIEMAP, buf, True)
        mapped = struct.unpack_from("=I", buf, 20)[0]
        for i in range(mapped):
            logical, physical, ext_len, _, _, ext_flags, _ = struct.unpack_from("=QQQQQII", buf, 32 + 56 * i)
            extents.append((logical, physical, ext_len, ext_flags))
        if mapped < count or extents[-1][3] & FIEMAP_EXTENT_LAST:
            return extents
        start = extents[-1][0] + extents[-1][2]


def check_file(volume, report, name, path, label):
    model = volume.files.get(name)
    if model is None:
        raise SystemExit(f"model: no file {name!r} in the model")
    bs = volume.bs
    what = f"{label}: {name}"
    try:
        st = os.stat(path)
    except OSError as e:
        report.result(False, f"{what} exists", str(e))
        return
    report.result(st.st_size == model.size, f"{what} size is {model.size}", f"st_size {st.st_size}")

    with open(path, "rb") as f:
        actual = f.read()
    if actual == bytes(model.data):
        report.result(True, f"{what} contents match the model ({len(actual)} bytes)")
    else:
        first = next((i for i in range(min(len(actual), len(model.data))) if actual[i] != model.data[i]),
                     min(len(actual), len(model.data)))
        got = actual[first:first + 8].hex() or "EOF"
        want = bytes(model.data[first:first + 8]).hex() or "EOF"
        report.result(False, f"{what} contents match the model",
                      f"first difference at byte {first} (block {first // bs}): read {got}, expected {want}")

    fd = os.open(path, os.O_RDONLY)
    try:
        check_seek(model, report, fd, what)
        check_extents(volume, model, report, fd, what, st)
    finally:
        os.close(fd)


def block_class(model, index):
    """'D' holds data (must read as data), 'H' a hole (must be one), 'U' allocated, never written."""
    block = model.blocks[index] if index < len(model.blocks) else None
    if block is None:
        return "H"
    return "U" if block[1] else "D"


def seek_problem(classes, bs, size, offset, data, hole):
    """What is wrong with SEEK_DATA(offset) = data and SEEK_HOLE(offset) = hole (None: ENXIO), or None.

    SEEK_DATA: every block before the answer must be allowed to be a hole, the answer must be
    allowed to be data; ENXIO only if nothing after offset must be data. SEEK_HOLE: every block
    before the answer must be allowed to be data; the answer is EOF or a block that may be a hole."""
    nblocks = len(classes)
    index = offset // bs
    if data is None:
        bad = next((i for i in range(index, nblocks) if classes[i] == "D"), None)
        if bad is not None:
            return f"SEEK_DATA({offset}) = ENXIO but block {bad} holds data"
    elif data < offset or data > size or (data % bs and data != offset):
        return f"SEEK_DATA({offset}) = {data}, not a block start within the file"
    else:
        stop = data // bs
        bad = next((i for i in range(index, stop) if classes[i] == "D"), None)
        if bad is not None:
            return f"SEEK_DATA({offset}) = {data} skips block {bad}, which holds data"
        if stop < nblocks and classes[stop] == "H":
            return f"SEEK_DATA({offset}) = {data}, but block {stop} is a hole"
        if data == size:
            return f"SEEK_DATA({offset}) = {data} (EOF) instead of ENXIO"
    if hole is None:
        return f"SEEK_HOLE({offset}) = ENXIO inside the file"
    if hole < offset or hole > size:
        return f"SEEK_HOLE({offset}) = {hole}, outside [offset, EOF]"
    stop = hole // bs if hole < size else nblocks
    bad = next((i for i in range(index, min(stop, nblocks)) if classes[i] == "H"), None)
    if bad is not None:
        return f"SEEK_HOLE({offset}) = {hole} skips block {bad}, which is a hole"
    if hole < size and (hole % bs or classes[hole // bs] == "D"):
        return f"SEEK_HOLE({offset}) = {hole}, but block {hole // bs} holds data"
    return None


def block_classes(model):
    return [block_class(model, i) for i in range(align_up(model.size, model.bs) // model.bs)]


def check_seek(model, report, fd, what):
    bs, size = model.bs, model.size
    classes = block_classes(model)
    nblocks = len(classes)
    if nblocks <= SEEK_EVERY_BLOCK_LIMIT:
        probes = range(nblocks)
    else:
        edges = {0, nblocks - 1}
        for i in range(1, nblocks):
            if classes[i] != classes[i - 1]:
                edges.update((i - 1, i))
        probes = sorted(edges)

    def lseek(offset, whence):
        try:
            return os.lseek(fd, offset, whence)
        except OSError as e:
            if e.errno == errno.ENXIO:
                return None
            raise

    problem = None
    for index in probes:
        offset = index * bs
        problem = seek_problem(classes, bs, size, offset, lseek(offset, os.SEEK_DATA), lseek(offset, os.SEEK_HOLE))
        if problem:
            break
    counts = {c: classes.count(c) for c in "DHU"}
    report.result(problem is None,
                  f"{what} SEEK_DATA/SEEK_HOLE agree with the model "
                  f"({counts['D']} data, {counts['H']} hole, {counts['U']} unwritten blocks)",
                  problem or "")


def check_extents(volume, model, report, fd, what, st_before):
    bs = volume.bs
    try:
        extents = fiemap(fd)
    except OSError as e:
        report.result(False, f"{what} FIEMAP works", os.strerror(e.errno))
        return
    mapped = {}
    problem = None
    for logical, physical, length, flags in extents:
        if flags & (FIEMAP_EXTENT_DELALLOC | FIEMAP_EXTENT_UNKNOWN):
            problem = problem or f"extent at {logical} is delalloc after FIEMAP_FLAG_SYNC"
        if logical % bs or length % bs or physical % bs:
            problem = problem or f"extent ({logical}, {physical}, {length}) is not block aligned"
        for i in range(length // bs):
            mapped[logical // bs + i] = (physical + i * bs, flags)
    if extents and not extents[-1][3] & FIEMAP_EXTENT_LAST:
        problem = problem or "the last extent lacks FIEMAP_EXTENT_LAST"
    for i, (_, _, _, flags) in enumerate(extents[:-1]):
        if flags & FIEMAP_EXTENT_LAST:
            problem = problem or f"extent {i} of {len(extents)} carries FIEMAP_EXTENT_LAST"
    token_physical, physical_token = {}, {}
    for index in range(max(len(model.blocks), max(mapped, default=-1) + 1)):
        block = model.blocks[index] if index < len(model.blocks) else None
        got = mapped.get(index)
        if block is None:
            if got is not None:
                problem = problem or f"block {index} should be a hole but is mapped (flags {got[1]:#x})"
            continue
        if got is None:
            state = "unwritten" if block[1] else "data"
            problem = problem or f"block {index} ({state}) is not mapped"
            continue
        physical, flags = got
        if not block[1] and flags & FIEMAP_EXTENT_UNWRITTEN:
            problem = problem or f"block {index} holds written data but is mapped UNWRITTEN"
        shared = volume.refcount(block[0]) > 1
        if shared and not flags & FIEMAP_EXTENT_SHARED:
            problem = problem or f"block {index} is shared but not flagged SHARED"
        if not shared and flags & FIEMAP_EXTENT_SHARED:
            problem = problem or f"block {index} is flagged SHARED but nothing else references it"
        if shared:
            known = token_physical.setdefault(block[0], physical)
            if known != physical:
                problem = problem or f"block {index} should share physical block {known}, maps {physical}"
        owner = physical_token.setdefault(physical, block[0])
        if owner != block[0]:
            problem = problem or f"block {index} maps physical {physical}, which another unshared block maps"
    report.result(problem is None,
                  f"{what} FIEMAP agrees with the model ({len(extents)} extents, {len(mapped)} blocks mapped)",
                  problem or "")
    st = os.fstat(fd)
    report.result(st.st_blocks * 512 == len(mapped) * bs,
                  f"{what} st_blocks counts the {len(mapped)} mapped blocks",
                  f"st_blocks {st.st_blocks} = {st.st_blocks * 512} bytes, mapped {len(mapped) * bs}")
    # Cross-volume physical uniqueness is checked by check_volume; remember this file's mapping.
    volume.mapped_physical = getattr(volume, "mapped_physical", {})
    volume.mapped_physical[model.name] = {i: mapped[i][0] for i in mapped}


def check_volume_sharing(volume, report, label):
    """Blocks of different files: same token <=> same physical block."""
    seen = {}
    problem = None
    for name, blocks in getattr(volume, "mapped_physical", {}).items():
        model = volume.files[name]
        for index, physical in blocks.items():
            block = model.blocks[index] if index < len(model.blocks) else None
            if block is None:
                continue
            other = seen.setdefault(physical, (block[0], name, index))
            if other[0] != block[0]:
                problem = problem or (f"{name} block {index} and {other[1]} block {other[2]} map the same "
                                      f"physical block {physical} but should not share it")
    report.result(problem is None, f"{label}: no physical block is shared that should not be", problem or "")


# ---------------------------------------------------------------------------------------------
# Edge cases of the translation, called directly (under LD_PRELOAD, like any program)
# ---------------------------------------------------------------------------------------------

def libc():
    # The process's global scope, not libc's own handle: symbols resolve as for any program, so
    # an LD_PRELOAD library's fallocate and ioctl come first.
    lib = ctypes.CDLL(None, use_errno=True)
    lib.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
    lib.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
    return lib


def check_edges(report, directory, outside, bs, reference):
    """Argument checks and errno values of the translated calls, which must be the kernel's."""
    c = libc()
    label = "edge"

    def call(fn):
        ctypes.set_errno(0)
        result = fn()
        return result, ctypes.get_errno()

    def expect_errno(description, fn, want):
        result, err = call(fn)
        ok = result == -1 and err == want
        got = "success" if result != -1 else errno.errorcode.get(err, str(err))
        report.result(ok, f"{label}: {description} fails with {errno.errorcode[want]}", f"got {got}")

    path = os.path.join(directory, "edges")
    with open(path, "wb") as f:
        f.write(b"\x5a" * (8 * bs))
    fd = os.open(path, os.O_RDWR)
    ro = os.open(path, os.O_RDONLY)
    out_path = os.path.join(outside, "edges-outside")
    with open(out_path, "wb") as f:
        f.write(b"\x5a" * (8 * bs))
    out_fd = os.open(out_path, os.O_RDONLY)
    out_rw = os.open(out_path, os.O_RDWR)
    try:
        # Invalid mixes of modes are the kernel's to reject (EINVAL or EOPNOTSUPP, depending on
        # its version): the answer must be the one a local file gets.
        for mode, name in ((FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_KEEP_SIZE, "COLLAPSE_RANGE|KEEP_SIZE"),
                           (FALLOC_FL_INSERT_RANGE | FALLOC_FL_KEEP_SIZE, "INSERT_RANGE|KEEP_SIZE"),
                           (FALLOC_FL_UNSHARE_RANGE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                            "UNSHARE_RANGE|PUNCH_HOLE|KEEP_SIZE")):
            local, local_err = call(lambda: c.fallocate(out_rw, mode, 0, bs))
            if local == -1:
                expect_errno(f"{name} (an invalid mix, left to the kernel)",
                             lambda: c.fallocate(fd, mode, 0, bs), local_err)
            else:
                report.result(False, f"{label}: {name} is rejected on a local file", "it succeeded")
        expect_errno("INSERT_RANGE of length 0", lambda: c.fallocate(fd, FALLOC_FL_INSERT_RANGE, 0, 0), errno.EINVAL)
        expect_errno("COLLAPSE_RANGE at a negative offset",
                     lambda: c.fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, -bs, bs), errno.EINVAL)
        expect_errno("COLLAPSE_RANGE on a read-only descriptor",
                     lambda: c.fallocate(ro, FALLOC_FL_COLLAPSE_RANGE, 0, bs), errno.EBADF)
        expect_errno("UNSHARE_RANGE on a read-only descriptor",
                     lambda: c.fallocate(ro, FALLOC_FL_UNSHARE_RANGE, 0, bs), errno.EBADF)
        expect_errno("COLLAPSE_RANGE on a bad descriptor", lambda: c.fallocate(9999, FALLOC_FL_COLLAPSE_RANGE, 0, bs),
                     errno.EBADF)
        expect_errno("FICLONE from a file on another filesystem", lambda: c.ioctl(fd, FICLONE, out_fd), errno.EXDEV)
        expect_errno("FICLONE from a bad descriptor", lambda: c.ioctl(fd, FICLONE, 9999), errno.EBADF)
        expect_errno("FICLONE into a read-only descriptor", lambda: c.ioctl(ro, FICLONE, fd), errno.EBADF)
        clone_range = struct.pack("=qQQQ", out_fd, 0, bs, 0)
        expect_errno("FICLONERANGE from another filesystem",
                     lambda: c.ioctl(fd, FICLONERANGE, ctypes.c_char_p(clone_range)), errno.EXDEV)

        fm = bytearray(struct.pack("=QQIIII", 0, 0, 0, 0, 0, 0))
        buf = (ctypes.c_char * len(fm)).from_buffer(fm)
        expect_errno("FIEMAP of length 0", lambda: c.ioctl(fd, FS_IOC_FIEMAP, ctypes.addressof(buf)), errno.EINVAL)

        dedupe = bytearray(struct.pack("=QQHHI", 0, bs, 1, 1, 0) + struct.pack("=qQQiI", fd, bs, 0, 0, 0))
        dbuf = (ctypes.c_char * len(dedupe)).from_buffer(dedupe)
        expect_errno("FIDEDUPERANGE with reserved1 set",
                     lambda: c.ioctl(fd, FIDEDUPERANGE, ctypes.addressof(dbuf)), errno.EINVAL)
        dedupe = bytearray(struct.pack("=QQHHI", 7 * bs, 2 * bs, 1, 0, 0) + struct.pack("=qQQiI", fd, 0, 0, 0, 0))
        dbuf = (ctypes.c_char * len(dedupe)).from_buffer(dedupe)
        expect_errno("FIDEDUPERANGE of a source range past EOF",
                     lambda: c.ioctl(fd, FIDEDUPERANGE, ctypes.addressof(dbuf)), errno.EINVAL)

        # Per-destination status: a bad descriptor and another filesystem are reported in info[],
        # and the call itself succeeds.
        for dest_fd, want, what in ((9999, -errno.EBADF, "a bad destination descriptor"),
                                    (out_fd, -errno.EXDEV, "a destination on another filesystem")):
            dedupe = bytearray(struct.pack("=QQHHI", 0, bs, 1, 0, 0) + struct.pack("=qQQiI", dest_fd, 0, 0, 0, 0))
            dbuf = (ctypes.c_char * len(dedupe)).from_buffer(dedupe)
            result, err = call(lambda: c.ioctl(fd, FIDEDUPERANGE, ctypes.addressof(dbuf)))
            status = struct.unpack_from("=i", dedupe, 24 + 24)[0]
            report.result(result == 0 and status == want,
                          f"{label}: FIDEDUPERANGE with {what} reports status {errno.errorcode[-want]}",
                          f"ioctl {result} ({errno.errorcode.get(err, err)}), status {status}")

        # Dedupe into a destination opened read-only: the kernel allows it to the file's owner and
        # to anyone who may write it (duperemove -A relies on that).
        with open(path, "r+b") as f:
            f.seek(4 * bs)
            f.write(b"\x5a" * bs)
        dedupe = bytearray(struct.pack("=QQHHI", 0, bs, 1, 0, 0) + struct.pack("=qQQiI", ro, 4 * bs, 0, 0, 0))
        dbuf = (ctypes.c_char * len(dedupe)).from_buffer(dedupe)
        result, err = call(lambda: c.ioctl(fd, FIDEDUPERANGE, ctypes.addressof(dbuf)))
        status, = struct.unpack_from("=i", dedupe, 24 + 24)
        deduped, = struct.unpack_from("=Q", dedupe, 24 + 16)
        report.result(result == 0 and status == 0 and deduped == bs,
                      f"{label}: FIDEDUPERANGE into a read-only descriptor of the owner's file succeeds",
                      f"ioctl {result} ({errno.errorcode.get(err, err)}), status {status}, bytes {deduped}")

        # FIEMAP: counting only (fm_extent_count 0), and a one-entry array.
        try:
            everything = fiemap(fd)
            header = bytearray(struct.pack("=QQIIII", 0, (1 << 64) - 1, FIEMAP_FLAG_SYNC, 0, 0, 0))
            fcntl.ioctl(fd, FS_IOC_FIEMAP, header, True)
            counted = struct.unpack_from("=I", header, 20)[0]
            report.result(counted == len(everything),
                          f"{label}: FIEMAP with fm_extent_count 0 counts the {len(everything)} extents",
                          f"counted {counted}")
            one = bytearray(struct.pack("=QQIIII", 0, (1 << 64) - 1, 0, 0, 1, 0) + bytes(56))
            fcntl.ioctl(fd, FS_IOC_FIEMAP, one, True)
            got = struct.unpack_from("=I", one, 20)[0]
            first = struct.unpack_from("=QQQ", one, 32)
            report.result(got == min(1, len(everything)) and (not everything or first == everything[0][:3]),
                          f"{label}: FIEMAP with room for one extent returns the first",
                          f"mapped {got}, extent {first}, expected {everything[:1]}")
            if not reference:
                # extentfs maps no extended-attribute fork: an incompatible flag (XFS would map it).
                xattr = bytearray(struct.pack("=QQIIII", 0, (1 << 64) - 1, FIEMAP_FLAG_XATTR, 0, 0, 0))
                try:
                    fcntl.ioctl(fd, FS_IOC_FIEMAP, xattr, True)
                    report.result(False, f"{label}: FIEMAP_FLAG_XATTR fails with EBADR", "it succeeded")
                except OSError as e:
                    flags_back = struct.unpack_from("=I", xattr, 16)[0]
                    report.result(e.errno == errno.EBADR and flags_back == FIEMAP_FLAG_XATTR,
                                  f"{label}: FIEMAP_FLAG_XATTR fails with EBADR and names the flag",
                                  f"{errno.errorcode.get(e.errno)}, fm_flags {flags_back:#x}")
        except OSError as e:
            report.result(False, f"{label}: FIEMAP works", os.strerror(e.errno))
    finally:
        for descriptor in (fd, ro, out_fd, out_rw):
            os.close(descriptor)
        os.unlink(path)
        os.unlink(out_path)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state", required=True, help="model state directory (one per volume)")
    parser.add_argument("--bs", type=int, help="block size (needed when the state is new)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("apply", help="apply xfs_io commands to file NAME; they must succeed")
    p.add_argument("name")
    p.add_argument("ops", nargs="+")

    p = sub.add_parser("expect-error", help="check that the model agrees OP fails with ERRNO on NAME")
    p.add_argument("name")
    p.add_argument("errno_name")
    p.add_argument("op")

    p = sub.add_parser("check", help="compare files with the model")
    p.add_argument("label")
    p.add_argument("directory")
    p.add_argument("names", nargs="*", help="default: every file in the model")

    p = sub.add_parser("seek-answer", help="check a SEEK_DATA and a SEEK_HOLE answer (-1: ENXIO) for NAME")
    p.add_argument("label")
    p.add_argument("name")
    p.add_argument("offset", type=int)
    p.add_argument("data", type=int)
    p.add_argument("hole", type=int)

    p = sub.add_parser("forget", help="drop files from the model (after rm)")
    p.add_argument("names", nargs="+")

    p = sub.add_parser("edges", help="errno and struct checks of the translated calls")
    p.add_argument("directory")
    p.add_argument("outside", help="a directory on another filesystem")
    p.add_argument("--reference", action="store_true", help="not extentfs: skip extentfs-only expectations")

    args = parser.parse_args()
    volume = Volume(args.state, args.bs)
    report = Report()

    if args.command == "apply":
        for op in args.ops:
            try:
                volume.apply(args.name, op)
            except OpError as e:
                print(f"model: {op!r} on {args.name} would fail with {e}; the script expects success",
                      file=sys.stderr)
                return 2
        volume.save()
        return 0
    if args.command == "expect-error":
        want = getattr(errno, args.errno_name)
        try:
            volume.apply(args.name, args.op)
        except OpError as e:
            if e.errno == want:
                return 0
            print(f"model: {args.op!r} fails with {e}, not {args.errno_name}", file=sys.stderr)
            return 2
        print(f"model: {args.op!r} succeeds; the script expects {args.errno_name}", file=sys.stderr)
        return 2
    if args.command == "forget":
        for name in args.names:
            volume.files.pop(name, None)
            for leftover in (os.path.join(args.state, name + ".bin"),):
                if os.path.exists(leftover):
                    os.unlink(leftover)
        volume.save()
        return 0
    if args.command == "check":
        names = args.names or sorted(volume.files)
        # Write everything back first: a pending copy on write in one file still shares the old
        # block with another file until it is written, on XFS as anywhere.
        for name in names:
            try:
                fd = os.open(os.path.join(args.directory, name), os.O_RDONLY)
            except OSError:
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        for name in names:
            check_file(volume, report, name, os.path.join(args.directory, name), args.label)
        if len(names) > 1 or not args.names:
            check_volume_sharing(volume, report, args.label)
    elif args.command == "seek-answer":
        model = volume.files[args.name]
        problem = seek_problem(block_classes(model), volume.bs, model.size, args.offset,
                               None if args.data < 0 else args.data, None if args.hole < 0 else args.hole)
        report.result(problem is None, f"{args.label}: {args.name} SEEK_DATA({args.offset}) = {args.data}, "
                      f"SEEK_HOLE({args.offset}) = {args.hole} agree with the model", problem or "")
    elif args.command == "edges":
        check_edges(report, args.directory, args.outside, volume.bs, args.reference)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
