#!/usr/bin/env python3
"""Runs a command as a child subreaper: subreaper.py COMMAND [ARG...]

Makes this process a child subreaper (prctl PR_SET_CHILD_SUBREAPER, which execve keeps) and
execs the command in it. Processes orphaned below it (the daemon `extentfs mount` leaves, an
nbdkit that forks into the background) are then reparented to the command rather than to PID 1;
a bash script reaps every child that ends, its own or adopted. Under a container's PID 1 that
reaps late or never, they would otherwise stay zombies, which `kill -0` takes for live processes.
If the prctl fails (not Linux, or an old kernel), says so and runs the command anyway: where
orphans go is not what a test checks.
"""
import ctypes
import os
import sys

PR_SET_CHILD_SUBREAPER = 36

if len(sys.argv) < 2:
    sys.exit("usage: subreaper.py COMMAND [ARG...]")
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
    print(f"subreaper.py: prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}; orphans go to PID 1",
          file=sys.stderr)
os.execvp(sys.argv[1], sys.argv[1:])
