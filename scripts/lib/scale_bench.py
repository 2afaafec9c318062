"""The loops of scripts/bench-scale.sh (issue 9, requirement 6), and its results table.

    scale_bench.py populate ROOT FROM TO       untimed: files FROM..TO-1 of the volume (file i is
                                              ROOT/pop/d%05d/f%04d, i // 1000 and i % 1000: 1,000 a directory)
    scale_bench.py walk ROOT COUNT             stat every file under ROOT/pop (os.scandir recursion,
                                              lstat of each entry); fails unless it finds COUNT files
    scale_bench.py stat ROOT COUNT SAMPLE SEED       stat SAMPLE random existing files of the COUNT
    scale_bench.py stat2 ROOT COUNT SAMPLE SEED      the same files, by two processes at once (half each)
    scale_bench.py lookup ROOT COUNT SAMPLE SEED     stat SAMPLE random missing names (ENOENT) in existing directories
    scale_bench.py create ROOT COUNT SAMPLE SEED     create SAMPLE new 100-byte files in min(10, directories) directories
    scale_bench.py unlink ROOT COUNT SAMPLE SEED     unlink the files create made (same SEED)
    scale_bench.py big-populate DIR COUNT      untimed: COUNT empty files DIR/e%07d in one new directory
    scale_bench.py small-populate ROOT DIRS    untimed: DIRS directories ROOT/s%05d of 100 empty files each
    scale_bench.py big-lookup DIR COUNT SAMPLE SEED  stat SAMPLE random existing names of DIR (which holds COUNT)
    scale_bench.py big-readdir DIR COUNT       list DIR (os.scandir, names only); fails unless COUNT entries
    scale_bench.py small-lookup ROOT DIRS SEED       stat every file of the DIRS small directories, in random order
    scale_bench.py small-readdir ROOT DIRS     list each small directory in turn (entries/s over all)
    scale_bench.py daemon-pid MOUNTPOINT       the pid of the extentfs daemon serving MOUNTPOINT
    scale_bench.py rss PID                     VmRSS of PID in bytes (from /proc/PID/status)
    scale_bench.py hwm PID                     VmHWM of PID in bytes: its peak RSS so far
    scale_bench.py cpu PID                     CPU seconds PID has used, all threads (user + system, /proc/PID/stat)
    scale_bench.py table RESULTS.json          the figures and the goals

A timed command prints one JSON object: {"value": ops per second, "seconds": ..., "ops": ...}.
Progress goes to stderr. Any surprise (a missing file, a wrong count, an unexpected errno) raises:
the caller fails rather than print a figure that was not measured.
"""
import json
import os
import random
import statistics
import sys
import time

PER_DIRECTORY = 1000
SMALL_DIRECTORY = 100
PAYLOAD = b"x" * 100
CREATE_DIRECTORIES = 10


def progress(text):
    sys.stderr.write("    %s\n" % text)
    sys.stderr.flush()


def file_path(root, index):
    return os.path.join(root, "pop", "d%05d" % (index // PER_DIRECTORY), "f%04d" % (index % PER_DIRECTORY))


def directories(count):
    return (count + PER_DIRECTORY - 1) // PER_DIRECTORY


def timed(ops, run):
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    return {"value": round(ops / seconds, 1), "seconds": round(seconds, 3), "ops": ops}


def populate(root, first, last):
    start = time.perf_counter()
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY
    report = start
    for index in range(first, last):
        if index % PER_DIRECTORY == 0 or index == first:
            os.makedirs(os.path.dirname(file_path(root, index)), exist_ok=True)
        fd = os.open(file_path(root, index), flags, 0o644)
        try:
            if os.write(fd, PAYLOAD) != len(PAYLOAD):
                raise SystemExit("populate: short write")
        finally:
            os.close(fd)
        now = time.perf_counter()
        if now - report >= 10:
            report = now
            done = index + 1 - first
            progress("populated %d of %d (%.0f files/s)" % (done, last - first, done / (now - start)))
    os.sync()
    return time.perf_counter() - start


def walk(root, expected):
    files = 0
    start = time.perf_counter()
    report = start
    stack = [os.path.join(root, "pop")]
    while stack:
        directory = stack.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                    continue
                if entry.stat(follow_symlinks=False).st_size != len(PAYLOAD):
                    raise SystemExit("walk: %s has the wrong size" % entry.path)
                files += 1
        now = time.perf_counter()
        if now - report >= 10:
            report = now
            progress("walked %d of %d files" % (files, expected))
    seconds = time.perf_counter() - start
    if files != expected:
        raise SystemExit("walk: found %d files under %s, expected %d" % (files, root, expected))
    return {"value": round(files / seconds, 1), "seconds": round(seconds, 3), "ops": files}


def stat_existing(root, count, sample, seed):
    indexes = random.Random(seed).sample(range(count), min(sample, count))

    def run():
        for index in indexes:
            if os.stat(file_path(root, index)).st_size != len(PAYLOAD):
                raise SystemExit("stat: %s has the wrong size" % file_path(root, index))
    return timed(len(indexes), run)


def stat_in_parallel(root, count, sample, seed, processes=2):
    """stat_existing's files, split among `processes` processes that run at once."""
    indexes = random.Random(seed).sample(range(count), min(sample, count))

    def run():
        children = []
        for part in range(processes):
            pid = os.fork()
            if pid == 0:
                status = 0
                try:
                    for index in indexes[part::processes]:
                        if os.stat(file_path(root, index)).st_size != len(PAYLOAD):
                            status = 1
                            break
                finally:
                    os._exit(status)
            children.append(pid)
        for pid in children:
            _, status = os.waitpid(pid, 0)
            if status != 0:
                raise SystemExit("stat2: a process failed (status %d)" % status)
    return timed(len(indexes), run)


def lookup_missing(root, count, sample, seed):
    rng = random.Random(seed)
    paths = [os.path.join(root, "pop", "d%05d" % rng.randrange(directories(count)), "missing%07d" % n)
             for n in range(sample)]

    def run():
        for path in paths:
            try:
                os.stat(path)
            except FileNotFoundError:
                continue
            raise SystemExit("lookup: %s exists" % path)
    return timed(len(paths), run)


def created_paths(root, count, sample, seed):
    rng = random.Random(seed)
    chosen = rng.sample(range(directories(count)), min(CREATE_DIRECTORIES, directories(count)))
    return [os.path.join(root, "pop", "d%05d" % chosen[n % len(chosen)], "new%07d" % n) for n in range(sample)]


def create_new(root, count, sample, seed):
    paths = created_paths(root, count, sample, seed)
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY

    def run():
        for path in paths:
            fd = os.open(path, flags, 0o644)
            try:
                os.write(fd, PAYLOAD)
            finally:
                os.close(fd)
    return timed(len(paths), run)


def unlink_new(root, count, sample, seed):
    paths = created_paths(root, count, sample, seed)

    def run():
        for path in paths:
            os.unlink(path)
    return timed(len(paths), run)


def big_name(directory, index):
    return os.path.join(directory, "e%07d" % index)


def make_empty(paths):
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY
    start = time.perf_counter()
    report = start
    for done, path in enumerate(paths, 1):
        os.close(os.open(path, flags, 0o644))
        now = time.perf_counter()
        if now - report >= 10:
            report = now
            progress("created %d entries (%.0f/s)" % (done, done / (now - start)))
    os.sync()
    return time.perf_counter() - start


def big_populate(directory, count):
    os.makedirs(directory)
    return make_empty(big_name(directory, index) for index in range(count))


def small_directory(root, number):
    return os.path.join(root, "s%05d" % number)


def small_populate(root, count):
    for number in range(count):
        os.makedirs(small_directory(root, number))
    return make_empty(os.path.join(small_directory(root, number), "e%03d" % index)
                      for number in range(count) for index in range(SMALL_DIRECTORY))


def big_lookup(directory, count, sample, seed):
    indexes = random.Random(seed).sample(range(count), min(sample, count))

    def run():
        for index in indexes:
            os.stat(big_name(directory, index))
    return timed(len(indexes), run)


def list_directory(directory, expected):
    with os.scandir(directory) as entries:
        seen = sum(1 for _ in entries)
    if seen != expected:
        raise SystemExit("readdir: %s holds %d entries, expected %d" % (directory, seen, expected))
    return seen


def big_readdir(directory, count):
    return timed(count, lambda: list_directory(directory, count))


def small_lookup(root, count, seed):
    paths = [os.path.join(small_directory(root, number), "e%03d" % index)
             for number in range(count) for index in range(SMALL_DIRECTORY)]
    random.Random(seed).shuffle(paths)

    def run():
        for path in paths:
            os.stat(path)
    return timed(len(paths), run)


def small_readdir(root, count):
    def run():
        for number in range(count):
            list_directory(small_directory(root, number), SMALL_DIRECTORY)
    return timed(count * SMALL_DIRECTORY, run)


def daemon_pid(mountpoint):
    """The extentfs daemon of MOUNTPOINT: `extentfs mount` runs itself again in the foreground
    (argv: mount IMAGE MOUNTPOINT --foreground --ready-fd N ...)."""
    mountpoint = os.path.realpath(mountpoint)
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % name, "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        if len(argv) >= 4 and argv[1] == "mount" and "--foreground" in argv and "--ready-fd" in argv \
                and os.path.realpath(argv[3]) == mountpoint:
            found.append(int(name))
    if not found:
        raise SystemExit("daemon-pid: no extentfs daemon serves %s" % mountpoint)
    # The daemon of the previous mount may still be exiting after it let the image go
    # (`extentfs umount` returns then): the newest is this mount's.
    def started(pid):
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    return max(found, key=started)


def status_bytes(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                value, unit = line.split()[1:3]
                if unit != "kB":
                    raise SystemExit("%s: unexpected unit %r" % (key, unit))
                return int(value) * 1024
    raise SystemExit("no %s in /proc/%d/status" % (key, pid))


def cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After the command: state is field 3; utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------
# The table. RESULTS.json, written by bench-scale.sh one JSON line at a time (a JSON object per
# line, each {"kind": ..., ...}); every figure printed comes from one of those lines.

MIB = 1 << 20
RATES = [("stat", "stat existing files, cold"), ("lookup", "lookup missing names, cold"),
         ("create", "create 100-byte files"), ("unlink", "unlink files, cold")]
# Printed beside them, without a goal of their own.
OTHER_RATES = [("stat2", "stat, cold, 2 processes at once")]


def mib(value):
    return "%.1f MiB" % (value / MIB)


def verdict(ok):
    return "PASS" if ok else "FAIL"


def table(path):
    records = []
    with open(path) as f:
        for line in f:
            if line.strip():
                records.append(json.loads(line))
    config = next(r for r in records if r["kind"] == "config")
    steps = config["steps"]
    out = []
    out.append("extentfs scale benchmark (%s build, %s cores, load average at the end %s, %s)"
               % (config["build"], config["cores"], " ".join("%.2f" % x for x in os.getloadavg()), config["date"]))
    out.append("--cache-size %s (%d bytes), --metadata-cache-size %s (%d bytes); files of 100 bytes, 1,000 a directory;"
               % (config["cache_size"], config["cache_bytes"], config["metadata_size"], config["metadata_bytes"]))
    out.append("rates: median of %d runs, each after an unmount, drop_caches and mount; %d operations a run"
               % (config["repeat"], config["sample"]))
    out.append("")

    def of(kind, files, **match):
        found = [r for r in records if r["kind"] == kind and r.get("files") == files
                 and all(r.get(k) == v for k, v in match.items())]
        return found

    width = 20
    header = "%-44s" % "files on the volume" + "".join(("%d" % n).rjust(width) for n in steps)
    out.append(header)
    out.append("-" * len(header))

    def row(label, cells):
        out.append("%-44s" % label + "".join(c.rjust(width) for c in cells))

    first_mount = {n: of("mount", n, first=True)[0] for n in steps}
    row("populate (files/s; no goal)", ["%.0f" % of("populate", n)[0]["rate"] for n in steps])
    row("mount, first after growing (s)", ["%.3f" % first_mount[n]["seconds"] for n in steps])
    mounts = {n: [r["seconds"] for r in of("mount", n)] for n in steps}
    row("mount, median of all mounts (s)", ["%.3f" % statistics.median(mounts[n]) for n in steps])
    row("mount, slowest (s)", ["%.3f" % max(mounts[n]) for n in steps])
    row("mounts timed", ["%d" % len(mounts[n]) for n in steps])
    row("  daemon CPU in mount, median (s)", ["%.2f" % statistics.median(r["cpu"] for r in of("mount", n)) for n in steps])
    row("daemon RSS after mount", [mib(first_mount[n]["rss"]) for n in steps])
    row("  peak RSS in mount (VmHWM)", [mib(first_mount[n]["hwm"]) for n in steps])
    walks = {n: of("walk", n)[0] for n in steps}
    row("full walk, stat of every file (files/s)", ["%.0f" % walks[n]["value"] for n in steps])
    row("full walk (s)", ["%.1f" % walks[n]["seconds"] for n in steps])
    row("  daemon CPU per file (us)", ["%.0f" % (walks[n]["cpu"] / walks[n]["ops"] * 1e6) for n in steps])
    row("daemon RSS after the walk", [mib(walks[n]["rss"]) for n in steps])
    row("  peak RSS, mount and walk (VmHWM)", [mib(walks[n]["hwm"]) for n in steps])
    medians = {}
    for key, label in RATES + OTHER_RATES:
        cells = []
        for n in steps:
            values = [r["value"] for r in of("rate", n, rate=key)]
            if len(values) != config["repeat"]:
                raise SystemExit("table: %d runs of %s at %d files, expected %d" % (len(values), key, n, config["repeat"]))
            medians[(key, n)] = statistics.median(values)
            cells.append("%.0f" % medians[(key, n)])
        row(label + " (/s)", cells)
        row("  runs", ["/".join("%.0f" % v for v in sorted(r["value"] for r in of("rate", n, rate=key))) for n in steps])
        row("  daemon CPU per op, median (us)",
            ["%.0f" % statistics.median(r["cpu"] / r["ops"] * 1e6 for r in of("rate", n, rate=key)) for n in steps])

    first, last = steps[0], steps[-1]
    budget = config["cache_bytes"] + config["metadata_bytes"] + 64 * MIB
    out.append("")
    out.append("goals")
    results = []
    walked = walks[last]["rss"]
    ok = walked <= budget
    results.append(ok)
    out.append("  RSS after the walk of %d files %s <= %s (cache %s + metadata cache %s + 64 MiB): %s"
               % (last, mib(walked), mib(budget), mib(config["cache_bytes"]), mib(config["metadata_bytes"]), verdict(ok)))
    for n in steps:
        median = statistics.median(mounts[n])
        ok = median < 0.3
        results.append(ok)
        out.append("  mount at %d files: median %.3f s (first %.3f, slowest %.3f, %d mounts) < 0.3 s: %s"
                   % (n, median, first_mount[n]["seconds"], max(mounts[n]), len(mounts[n]), verdict(ok)))
    for key, label in RATES:
        ratio = medians[(key, last)] / medians[(key, first)]
        ok = ratio >= 0.8
        results.append(ok)
        out.append("  %s at %d / at %d files: %.0f / %.0f = %.2fx >= 0.80x: %s"
                   % (label, last, first, medians[(key, last)], medians[(key, first)], ratio, verdict(ok)))
        anchored = {n: [r["value"] for r in records if r["kind"] == "anchor" and r["files"] == n and r["rate"] == key]
                    for n in (first, last)}
        if all(anchored.values()):
            a_last, a_first = statistics.median(anchored[last]), statistics.median(anchored[first])
            out.append("    the anchor, XFS on a loop image on this disk (no goal): %.0f / %.0f = %.2fx; extentfs / XFS at %d files: %.2fx"
                       % (a_last, a_first, a_last / a_first, last, medians[(key, last)] / a_last))

    big = [r for r in records if r["kind"] == "big"]
    if big:
        entries = config["big_directory"]
        out.append("")
        out.append("one directory of %d entries next to %d directories of %d entries (empty files; per entry, median of %d)"
                   % (entries, config["small_directories"], SMALL_DIRECTORY, config["repeat"]))
        out.append("%-44s%16s%16s%16s" % ("", "%d entries" % entries, "%d entries" % SMALL_DIRECTORY, "ratio"))
        for key, label in [("lookup", "lookup of random names, cold (/s)"), ("readdir", "readdir, cold (entries/s)")]:
            b = statistics.median(r["value"] for r in big if r["rate"] == key and r["where"] == "big")
            s = statistics.median(r["value"] for r in big if r["rate"] == key and r["where"] == "small")
            out.append("%-44s%16.0f%16.0f%15.2fx" % (label, b, s, b / s))
            cb = statistics.median(r["cpu"] / r["ops"] * 1e6 for r in big if r["rate"] == key and r["where"] == "big")
            cs = statistics.median(r["cpu"] / r["ops"] * 1e6 for r in big if r["rate"] == key and r["where"] == "small")
            out.append("%-44s%16.1f%16.1f" % ("  daemon CPU per entry, median (us)", cb, cs))
            rb = statistics.median(r["rss"] for r in big if r["rate"] == key and r["where"] == "big")
            rs = statistics.median(r["rss"] for r in big if r["rate"] == key and r["where"] == "small")
            out.append("%-44s%16s%16s" % ("  daemon RSS after the run, median", mib(rb), mib(rs)))
            ok = b / s >= 0.8
            results.append(ok)
            out.append("  goal: as fast per entry (read here as >= 0.80x): %s" % verdict(ok))
            anchor = {where: [r["value"] for r in records if r["kind"] == "anchor-big" and r["where"] == where]
                      for where in ("big", "small")}
            if key == "lookup" and all(anchor.values()):
                ab, a_s = statistics.median(anchor["big"]), statistics.median(anchor["small"])
                out.append("  the anchor, XFS on a loop image on this disk (no goal): %.0f / %.0f = %.2fx; extentfs / XFS, big directory: %.2fx"
                           % (ab, a_s, ab / a_s, b / ab))
        mount_big = [r["seconds"] for r in records if r["kind"] == "mount" and r.get("files") == "big"]
        if mount_big:
            out.append("%-44s%16.3f" % ("mount of that volume, median (s)", statistics.median(mount_big)))
            out.append("%-44s%16s" % ("  RSS after mount, median", mib(statistics.median(
                r["rss"] for r in records if r["kind"] == "mount" and r.get("files") == "big"))))
            out.append("%-44s%16s" % ("  peak RSS in mount (VmHWM), highest", mib(max(
                r["hwm"] for r in records if r["kind"] == "mount" and r.get("files") == "big"))))
    out.append("")
    out.append("goals passed: %d of %d" % (sum(results), len(results)))
    return "\n".join(out)


def main():
    command = sys.argv[1]
    args = sys.argv[2:]
    if command == "populate":
        seconds = populate(args[0], int(args[1]), int(args[2]))
        print(json.dumps({"seconds": round(seconds, 3), "rate": round((int(args[2]) - int(args[1])) / seconds, 1)}))
    elif command == "walk":
        print(json.dumps(walk(args[0], int(args[1]))))
    elif command in ("stat", "stat2", "lookup", "create", "unlink"):
        run = {"stat": stat_existing, "stat2": stat_in_parallel, "lookup": lookup_missing, "create": create_new,
               "unlink": unlink_new}[command]
        print(json.dumps(run(args[0], int(args[1]), int(args[2]), int(args[3]))))
    elif command == "big-populate":
        print(json.dumps({"seconds": round(big_populate(args[0], int(args[1])), 3)}))
    elif command == "small-populate":
        print(json.dumps({"seconds": round(small_populate(args[0], int(args[1])), 3)}))
    elif command == "big-lookup":
        print(json.dumps(big_lookup(args[0], int(args[1]), int(args[2]), int(args[3]))))
    elif command == "big-readdir":
        print(json.dumps(big_readdir(args[0], int(args[1]))))
    elif command == "small-lookup":
        print(json.dumps(small_lookup(args[0], int(args[1]), int(args[2]))))
    elif command == "small-readdir":
        print(json.dumps(small_readdir(args[0], int(args[1]))))
    elif command == "daemon-pid":
        print(daemon_pid(args[0]))
    elif command == "rss":
        print(status_bytes(int(args[0]), "VmRSS"))
    elif command == "hwm":
        print(status_bytes(int(args[0]), "VmHWM"))
    elif command == "cpu":
        print("%.2f" % cpu(int(args[0])))
    elif command == "table":
        print(table(args[0]))
    else:
        raise SystemExit("unknown command " + command)


if __name__ == "__main__":
    main()
