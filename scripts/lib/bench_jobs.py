"""The jobs of scripts/bench.sh that fio does not run, and its results table.

    bench_jobs.py sqlite DIR SECONDS        SQLite commits per second (WAL, synchronous=FULL)
    bench_jobs.py create DIR COUNT          create COUNT files of 4 KiB in the new directory DIR
    bench_jobs.py stat DIR COUNT            stat the files create made
    bench_jobs.py unlink DIR COUNT          unlink them (DIR is left empty)
    bench_jobs.py populate ROOT COUNT       untimed: COUNT small files in ROOT/pop/d00000, prints that directory
    bench_jobs.py readdir DIR COUNT         list DIR (names only), which must hold COUNT entries
    bench_jobs.py table WORK REPEAT JOBS FILESYSTEMS   medians, one column a filesystem, and the ratios

A timed job prints one JSON object {"value": ..., "unit": ...}. The loops shared with
scripts/bench-fsync.sh (SQLite commits, populating a directory) live in fsync_bench.py.
"""
import json
import os
import statistics
import sys
import time

from fsync_bench import populate, sqlite_commits

SMALL_FILE = b"s" * 4096


def name(directory, index):
    return os.path.join(directory, "f%06d" % index)


def create_files(directory, count):
    os.makedirs(directory)
    start = time.perf_counter()
    for index in range(count):
        fd = os.open(name(directory, index), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        os.write(fd, SMALL_FILE)
        os.close(fd)
    return count / (time.perf_counter() - start)


def stat_files(directory, count):
    start = time.perf_counter()
    for index in range(count):
        if os.stat(name(directory, index)).st_size != len(SMALL_FILE):
            raise SystemExit("stat: %s has the wrong size" % name(directory, index))
    return count / (time.perf_counter() - start)


def unlink_files(directory, count):
    start = time.perf_counter()
    for index in range(count):
        os.unlink(name(directory, index))
    elapsed = time.perf_counter() - start
    left = os.listdir(directory)
    if left:
        raise SystemExit("unlink: %d entries left in %s" % (len(left), directory))
    return count / elapsed


def read_directory(directory, count):
    start = time.perf_counter()
    with os.scandir(directory) as entries:
        seen = sum(1 for _ in entries)
    elapsed = time.perf_counter() - start
    if seen != count:
        raise SystemExit("readdir: %s holds %d entries, expected %d" % (directory, seen, count))
    return seen / elapsed


# The jobs in table order: name, unit, and where the figure comes from (fio: the direction(s)
# and the field, bandwidth in MiB/s or IOPS; otherwise the helper's own JSON).
JOBS = [
    ("seq-write", "sequential write 1 MiB", "MiB/s", ("fio", ("write",), "bw")),
    ("seq-read", "sequential read 1 MiB, cold", "MiB/s", ("fio", ("read",), "bw")),
    ("rand-read", "random read 4 KiB, cold", "IOPS", ("fio", ("read",), "iops")),
    ("rand-write", "random write 4 KiB", "IOPS", ("fio", ("write",), "iops")),
    ("rand-rw", "random read+write 4 KiB, 2 jobs", "IOPS", ("fio", ("read", "write"), "iops")),
    ("cached-read", "cached re-read 1 MiB", "MiB/s", ("fio", ("read",), "bw")),
    ("sqlite", "SQLite commits (WAL, sync=FULL)", "commits/s", ("helper",)),
    ("create", "create 4 KiB files", "files/s", ("helper",)),
    ("stat", "stat files, cold", "files/s", ("helper",)),
    ("unlink", "unlink files", "files/s", ("helper",)),
    ("readdir", "readdir large directory, cold", "entries/s", ("helper",)),
]


def fio_value(path, directions, field):
    with open(path) as f:
        text = f.read()
    # fio may print notices before the JSON document.
    job = json.loads(text[text.index("{"):])["jobs"][0]
    if field == "bw":
        return sum(job[d]["bw_bytes"] for d in directions) / (1 << 20)
    return sum(job[d]["iops"] for d in directions)


def run_value(work, repeat, fs, job, source):
    base = os.path.join(work, "runs", "r%d" % repeat, fs, job)
    if source[0] == "fio":
        return fio_value(base + ".fio.json", source[1], source[2])
    with open(base + ".json") as f:
        return json.load(f)["value"]


def number(value):
    if value is None:
        return "-"
    if value >= 100:
        return "%.0f" % value
    return "%.1f" % value


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "-"
    return "%.2fx" % (a / b)


def table(work, repeat, jobs, filesystems):
    names = {job: (label, unit, source) for job, label, unit, source in JOBS}
    unknown = [job for job in jobs if job not in names]
    if unknown:
        raise SystemExit("unknown jobs: " + " ".join(unknown))
    widths = [34, 10] + [max(12, len(fs) + 2) for fs in filesystems] + [25, 22]
    header = ["job", "unit"] + filesystems + ["extentfs/passthrough_ll", "extentfs/host"]

    def line(cells):
        first = cells[0].ljust(widths[0]) + cells[1].ljust(widths[1])
        return first + "".join(cell.rjust(width) for cell, width in zip(cells[2:], widths[2:]))

    rows = [line(header), "-" * sum(widths)]
    for job, label, unit, source in JOBS:
        if job not in jobs:
            continue
        medians = {}
        for fs in filesystems:
            values = [run_value(work, r, fs, job, source) for r in range(1, repeat + 1)]
            medians[fs] = statistics.median(values)
        efs = medians.get("extentfs")
        host_ratio = ratio(efs, medians.get("host"))
        if job == "cached-read" and host_ratio != "-":
            host_ratio += " (goal 0.80x)"
        rows.append(line([label, unit] + [number(medians[fs]) for fs in filesystems]
                         + [ratio(efs, medians.get("passthrough_ll")), host_ratio]))
    rows.append("median of %d run%s each" % (repeat, "" if repeat == 1 else "s"))
    return "\n".join(rows)


def main():
    command = sys.argv[1]
    if command == "table":
        work, repeat = sys.argv[2], int(sys.argv[3])
        print(table(work, repeat, sys.argv[4].split(), sys.argv[5].split()))
        return
    path, arg = sys.argv[2], sys.argv[3]
    if command == "populate":
        populate(path, int(arg), per_directory=int(arg))
        print(os.path.join(path, "pop", "d00000"))
        return
    jobs = {
        "sqlite": (lambda: sqlite_commits(path, float(arg)), "commits/s"),
        "create": (lambda: create_files(path, int(arg)), "files/s"),
        "stat": (lambda: stat_files(path, int(arg)), "files/s"),
        "unlink": (lambda: unlink_files(path, int(arg)), "files/s"),
        "readdir": (lambda: read_directory(path, int(arg)), "entries/s"),
    }
    if command not in jobs:
        raise SystemExit("unknown command " + command)
    run, unit = jobs[command]
    print(json.dumps({"value": round(run(), 1), "unit": unit}))


if __name__ == "__main__":
    main()
