"""Timing loops for scripts/bench-fsync.sh: fsync latency of an overwrite and of a create, the
population of a volume with many small files, and SQLite commits. Prints one JSON object.
scripts/lib/bench_jobs.py (scripts/bench.sh) imports populate and sqlite_commits from here."""
import json
import os
import sqlite3
import sys
import time


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def populate(root, count, per_directory=1000):
    made = 0
    directory = 0
    while made < count:
        path = os.path.join(root, "pop", "d%05d" % directory)
        os.makedirs(path, exist_ok=True)
        for index in range(min(per_directory, count - made)):
            fd = os.open(os.path.join(path, "f%04d" % index), os.O_CREAT | os.O_WRONLY, 0o644)
            os.write(fd, b"x" * 100)
            os.close(fd)
        made += min(per_directory, count - made)
        directory += 1
    os.sync()


def fsync_overwrite(root, rounds):
    path = os.path.join(root, "overwrite.dat")
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    block = os.urandom(4096)
    os.pwrite(fd, block * 16, 0)
    os.fsync(fd)
    times = []
    for index in range(rounds):
        os.pwrite(fd, block, (index % 16) * 4096)
        start = time.perf_counter()
        os.fsync(fd)
        times.append(time.perf_counter() - start)
    os.close(fd)
    return times


def fsync_create(root, rounds):
    directory = os.path.join(root, "creates")
    os.makedirs(directory, exist_ok=True)
    dirfd = os.open(directory, os.O_RDONLY)
    times = []
    for index in range(rounds):
        start = time.perf_counter()
        fd = os.open(os.path.join(directory, "c%05d" % index), os.O_CREAT | os.O_WRONLY, 0o644)
        os.write(fd, b"y" * 100)
        os.fsync(fd)
        os.fsync(dirfd)
        os.close(fd)
        times.append(time.perf_counter() - start)
    os.close(dirfd)
    return times


def sqlite_commits(root, seconds):
    path = os.path.join(root, "bench.sqlite")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
    commits = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        db.execute("BEGIN")
        db.execute("INSERT INTO t (v) VALUES (?)", (os.urandom(100),))
        db.execute("COMMIT")
        commits += 1
    elapsed = time.perf_counter() - start
    db.close()
    return commits / elapsed


def main():
    command, root = sys.argv[1], sys.argv[2]
    if command == "populate":
        start = time.perf_counter()
        populate(root, int(sys.argv[3]))
        print(json.dumps({"seconds": time.perf_counter() - start}))
    elif command == "fsync":
        rounds = int(sys.argv[3])
        overwrite = fsync_overwrite(root, rounds)
        create = fsync_create(root, rounds)
        ms = lambda value: round(value * 1000, 3)
        print(json.dumps({
            "overwrite_p50": ms(percentile(overwrite, 0.5)), "overwrite_p99": ms(percentile(overwrite, 0.99)),
            "create_p50": ms(percentile(create, 0.5)), "create_p99": ms(percentile(create, 0.99)),
        }))
    elif command == "sqlite":
        print(json.dumps({"commits_per_second": round(sqlite_commits(root, float(sys.argv[3])), 1)}))
    else:
        raise SystemExit("unknown command " + command)


if __name__ == "__main__":
    main()
